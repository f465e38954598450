#!/usr/bin/python3
"""Write the small sample tasks that `kaival demo` runs on the tiny models.

    python3 tools/gen_demo_tasks.py --out testdata/demo/data

Each task is a JSONL file of multiple-choice items scored by log-likelihood:
{"id": "...", "context": "...", "choices": ["...", ...], "label": i}. The items are
drawn from the same templates as the fixtures' training data (tools/fixtures/
corpus.py) but with other seeds, so a model trained on data set A should beat
chance on the A-style tasks and a model trained on B on the B-style one; that
makes the demo's numbers differ for a reason rather than by noise.

  ko_particles   Korean: choose the grammatical topic/object particle (은/는, 을/를)   A
  arith_add      global: the right sum among near misses                              A
  en_cloze       global: the right word class to finish an everyday sentence          A
  ko_weather     team-chosen: finish a Korean weather report line                     B
"""

import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures.corpus import (ANIMALS, DAYS, ITEMS, K_CITIES, K_DAYS, K_FOODS, K_NAMES,  # noqa: E402
                             K_PLACES, K_WEATHER, NAMES, PLACES, _batchim)

N = 40


def ko_particles(r):
    name, place, day = r.choice(K_NAMES), r.choice(K_PLACES), r.choice(K_DAYS)
    if r.random() < 0.5:
        right = "은" if _batchim(name) else "는"
        wrong = "는" if right == "은" else "은"
        rest = f" {day}에 {place}에 갔다."
        ctx = name
    else:
        food = r.choice(K_FOODS)
        right = "을" if _batchim(food) else "를"
        wrong = "를" if right == "을" else "을"
        ctx = f"{name}{'은' if _batchim(name) else '는'} {food}"
        rest = " 좋아한다."
    choices = [right + rest, wrong + rest]
    r.shuffle(choices)
    return ctx, choices, choices.index(right + rest)


def arith_add(r):
    a, b = r.randint(0, 99), r.randint(0, 99)
    right = a + b
    wrong = sorted({right + d for d in (-10, -1, 1, 10)} - {right})
    choices = [f" {v}." for v in [right] + r.sample(wrong, 3)]
    r.shuffle(choices)
    return f"{a} + {b} =", choices, choices.index(f" {right}.")


def en_cloze(r):
    name, place, day, n = r.choice(NAMES), r.choice(PLACES), r.choice(DAYS), r.randint(2, 12)
    item = r.choice(ITEMS)
    right = f" {item}."
    choices = [right, f" {r.choice(DAYS)}.", f" {r.choice(ANIMALS)}s went.", f" the {r.choice(PLACES)}."]
    r.shuffle(choices)
    return f"{name} went to the {place} on {day} to buy {n}", choices, choices.index(right)


def ko_weather(r):
    city, w, t = r.choice(K_CITIES), r.choice(K_WEATHER), r.randint(-10, 35)
    right = f"도입니다."
    choices = [right, "개 기관이 새 계획을 발표했다.", "에 갔다."]
    r.shuffle(choices)
    return f"{city}의 오늘 날씨는 {w}, 기온은 {t}", choices, choices.index(right)


TASKS = {"ko_particles": ko_particles, "arith_add": arith_add, "en_cloze": en_cloze, "ko_weather": ko_weather}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for k, (name, make) in enumerate(TASKS.items()):
        r = random.Random(9000 + k)
        with open(os.path.join(args.out, f"{name}.jsonl"), "w", encoding="utf-8") as f:
            for i in range(N):
                ctx, choices, label = make(r)
                f.write(json.dumps({"id": f"{name}-{i:03d}", "context": ctx, "choices": choices, "label": label},
                                   ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
