#!/usr/bin/env python3
"""Builds the stage fixture under testdata/stage/first/ and computes the
reference numbers (expected.json) independently of kaival's C++ engine.

The fixture is shaped so that the top team reproduces the published
first-stage figures of the K-AI program: benchmark 33.6 + expert 31.6 +
user 25.0 = 90.2, team-chosen benchmark averages 72.03 against the target's
69.37 (103.8%), and a cohort average of 79.7. Items, reviews and battles are
synthetic (seeded); the files say so.

Run from the repository root: python3 testdata/stage/make_fixture.py
(lineage/*.json of hana, dul, daseot, yeoseot and derived are real
`kaival lineage --json` outputs on testdata/models; set.json and net.json are
edited copies of dul.json, see below.)
"""
import json
import math
import os
import random

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "first")

# ---- the rules (mirrors program.yaml; written independently of the engine) ----
KO = [("ko_math", 0), ("ko_knowledge", 25), ("ko_longctx", 0), ("ko_safety", 0)]
GL = [("mmlu_pro", 10), ("gpqa_diamond", 25), ("aime25", 0), ("ifeval", 0), ("kobalt", 0)]
W_KO, W_GL, W_CH, W_EXPERT, W_USER = 10, 20, 10, 35, 25
PENALTY = {"set": 2.0}          # partial verdict on the embedding: penalty gate
INELIGIBLE = {"net"}            # partial verdict on a foreign vision encoder
ADVANCE = {"s1": 3, "s2": 3}

# percent correct per task (n = 100 items each)
TEAMS = {
    "hana":   {"ko": [80, 85, 74, 78], "gl": [82, 70, 85, 90, 80]},
    "dul":    {"ko": [76, 80, 70, 75], "gl": [78, 66, 70, 85, 74]},
    "set":    {"ko": [70, 76, 66, 72], "gl": [74, 62, 60, 80, 70]},
    "net":    {"ko": [72, 78, 68, 74], "gl": [76, 64, 66, 82, 72]},
    "daseot": {"ko": [66, 72, 62, 70], "gl": [70, 58, 56, 76, 66]},
    "yeoseot": {"ko": [74, 79, 69, 76], "gl": [77, 65, 68, 84, 73]},
}
MODEL = {t: f"{t}-llm" for t in TEAMS}
# stage -> team -> (target, tasks, team percents, target percents, n items)
CHOSEN = {
    "s1": {
        "hana": ("gx-2", ["livecodebench", "tau2_bench", "aa_lcr"], None, None, None),
        "dul": ("gy-1", ["hle", "ifbench", "clicK"], [55, 70, 62], [58, 72, 60], 100),
        "set": ("gx-2", ["kmmlu_pro", "hrm8k", "tau2_bench"], [60, 66, 58], [64, 70, 61], 100),
        "net": ("gz-3", ["hle", "ifbench", "aa_lcr"], [70, 68, 66], [68, 70, 66], 100),
        "daseot": ("gy-1", ["hle", "ifbench", "clicK"], [50, 64, 58], [58, 72, 60], 100),
    },
    "s2": {
        "hana": ("gx-3", ["livecodebench", "tau2_bench", "aa_lcr"], [74, 70, 71], [76, 72, 70], 100),
        "dul": ("gy-2", ["hle", "ifbench", "clicK"], [58, 72, 64], [60, 73, 63], 100),
        "set": ("gx-3", ["kmmlu_pro", "hrm8k", "tau2_bench"], [64, 69, 62], [66, 70, 64], 100),
        "yeoseot": ("gy-2", ["hle", "ifbench", "clicK"], [57, 71, 65], [60, 73, 63], 100),
    },
}
TRUE_RATING = {
    "s1": {"hana": 1160, "dul": 1090, "set": 1050, "net": 1060, "daseot": 1045},
    "s2": {"hana": 1120, "dul": 1100, "set": 1060, "yeoseot": 1095},
}
# Final totals the fixture aims at (after penalties); expert scores are solved for them.
TARGET_TOTAL = {
    "s1": {"dul": 82.4, "set": 76.0, "net": 74.6, "daseot": 75.3},
    "s2": {"hana": 88.0, "dul": 84.1, "set": 78.2, "yeoseot": 83.5},
}
EXPERT_FIXED = {"s1": {"hana": 90.29}}  # 35 * 0.9029 = 31.6 as published
PERF = {
    "hana": (0.42, 95.0, 310.0), "dul": (0.35, 110.0, 280.0), "set": (0.60, 80.0, 420.0),
    "net": (0.50, 90.0, 350.0), "daseot": (0.30, 120.0, 260.0), "yeoseot": (0.38, 105.0, 300.0),
}  # cost per 1M tokens (USD), output tokens/s, median TTFT ms
RIPPLE = {"hana": (120000, 40), "dul": (80000, 25), "set": (30000, 8), "net": (50000, 12),
          "daseot": (20000, 5), "yeoseot": (60000, 30)}


def write(path, text):
    full = os.path.join(ROOT, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8") as f:
        f.write(text)


def items_for(rng, n, k):
    correct = set(rng.sample(range(n), k))
    return [1 if i in correct else 0 for i in range(n)]


def solve_counts(mean_pct, sizes):
    """Integer correct counts over tasks of the given sizes whose mean accuracy
    rounds to mean_pct (two decimals)."""
    n1, n2, n3 = sizes
    for k1 in range(int(n1 * 0.6), int(n1 * 0.85)):
        for k2 in range(int(n2 * 0.6), int(n2 * 0.85)):
            k3 = round((3 * mean_pct / 100 - k1 / n1 - k2 / n2) * n3)
            if 0 <= k3 <= n3 and round(100 * (k1 / n1 + k2 / n2 + k3 / n3) / 3, 2) == mean_pct:
                if abs(k1 / n1 - k2 / n2) < 0.06 and abs(k3 / n3 - k1 / n1) < 0.06:
                    return [k1, k2, k3]
    raise SystemExit(f"no counts for {mean_pct}")


class Evals:
    """Per model: task -> list of (doc_id, metric)."""

    def __init__(self):
        self.models = {}

    def add(self, model, task, items):
        self.models.setdefault(model, {})[task] = items

    def write_all(self, stage_dir):
        for model, tasks in self.models.items():
            d = f"{stage_dir}/eval/{model}"
            results = {}
            for task, items in sorted(tasks.items()):
                acc = sum(items) / len(items)
                se = math.sqrt(acc * (1 - acc) / (len(items) - 1))
                results[task] = {"acc,none": round(acc, 6), "acc_stderr,none": round(se, 6), "n": len(items), "alias": task}
                lines = [json.dumps({"task": task, "doc_id": str(i), "metrics": {"acc": v}}, separators=(",", ":"))
                         for i, v in enumerate(items)]
                write(f"{d}/samples_{task}.jsonl", "\n".join(lines) + "\n")
            doc = {"schema": "kaival.eval-results/1", "model": {"id": model}, "results": results,
                   "groups": {}, "versions": {t: "1.0" for t in results}, "configs": {},
                   "synthetic": True,
                   "manifest": {"generator": "testdata/stage/make_fixture.py"}}
            write(f"{d}/results.json", json.dumps(doc, indent=1, sort_keys=True) + "\n")


def fit_bt(models, battles):
    """Bradley-Terry by minorization-maximization with a quarter virtual win
    each way between every pair; Elo scale centred on 1000 (geometric mean)."""
    idx = {m: i for i, m in enumerate(models)}
    m = len(models)
    wins = [[0.0] * m for _ in range(m)]
    for a, b, s in battles:
        wins[idx[a]][idx[b]] += s
        wins[idx[b]][idx[a]] += 1 - s
    for i in range(m):
        for j in range(m):
            if i != j:
                wins[i][j] += 0.25
    p = [1.0] * m
    for _ in range(200):
        np_ = []
        for i in range(m):
            w = sum(wins[i][j] for j in range(m) if j != i)
            den = sum((wins[i][j] + wins[j][i]) / (p[i] + p[j]) for j in range(m) if j != i)
            np_.append(w / den)
        g = math.exp(sum(math.log(x) for x in np_) / m)
        p = [x / g for x in np_]
    return {mm: 1000 + 400 * math.log10(p[idx[mm]]) for mm in models}


def percentile(v, q):
    v = sorted(v)
    pos = q * (len(v) - 1)
    i = int(pos)
    f = pos - i
    return v[i] * (1 - f) + v[i + 1] * f if i + 1 < len(v) else v[i]


def norm(pct, floor):
    return min(1.0, max(0.0, (pct - floor) / (100 - floor)))


def build_stage(stage, rng, evals, teams):
    d = stage
    ref = {}
    # Korean and global benchmarks (absolute)
    for t in teams:
        for (task, _), pct in zip(KO, TEAMS[t]["ko"]):
            evals.add(MODEL[t], task, items_for(rng, 100, pct))
        for (task, _), pct in zip(GL, TEAMS[t]["gl"]):
            evals.add(MODEL[t], task, items_for(rng, 100, pct))
    # team-chosen against the target, paired by doc_id
    for t in teams:
        target, tasks, tp, gp, n = CHOSEN[stage][t]
        if tp is None:  # the published team: averages 72.03 vs 69.37
            sizes = [160, 175, 190]
            tk = solve_counts(72.03, sizes)
            gk = solve_counts(69.37, sizes)
        else:
            sizes = [n] * 3
            tk = [p * n // 100 for p in tp]
            gk = [p * n // 100 for p in gp]
        for task, size, a, b in zip(tasks, sizes, tk, gk):
            if task not in evals.models.get(MODEL[t], {}):
                evals.add(MODEL[t], task, items_for(rng, size, a))
            if task not in evals.models.get(target, {}):
                evals.add(target, task, items_for(rng, size, b))
    # reference part scores
    for t in teams:
        e = evals.models[MODEL[t]]
        # the engine reads results.json, which holds accuracies rounded to 6 decimals
        acc = lambda task, model=MODEL[t]: 100 * round(sum(evals.models[model][task]) / len(evals.models[model][task]), 6)
        ko = W_KO * sum(norm(acc(task), f) for task, f in KO) / len(KO)
        gl = W_GL * sum(norm(acc(task), f) for task, f in GL) / len(GL)
        target, tasks, *_ = CHOSEN[stage][t]
        team_vals = [acc(task) for task in tasks]
        tgt_vals = [acc(task, target) for task in tasks]
        rom = (sum(team_vals) / 3) / (sum(tgt_vals) / 3)
        mor = sum(a / b for a, b in zip(team_vals, tgt_vals)) / 3
        ch = W_CH * min(1.0, rom)
        ref[t] = {"korean": ko, "global": gl, "team_chosen": ch, "benchmark": ko + gl + ch,
                  "team_mean": sum(team_vals) / 3, "target_mean": sum(tgt_vals) / 3,
                  "ratio_of_means": rom, "mean_of_ratios": mor, "target": target}
    # arena: battles from the true ratings, ratings fitted
    models = [MODEL[t] for t in teams]
    battles = []
    lines = []
    bid = 0
    for i, a in enumerate(teams):
        for b in teams[i + 1:]:
            pa = 1 / (1 + 10 ** ((TRUE_RATING[stage][b] - TRUE_RATING[stage][a]) / 400))
            for _ in range(70):
                u = rng.random()
                if u < 0.1:
                    w, s = "tie", 0.5
                elif rng.random() < pa:
                    w, s = "model_a", 1.0
                else:
                    w, s = "model_b", 0.0
                battles.append((MODEL[a], MODEL[b], s))
                lines.append(json.dumps({"battle_id": f"{stage}-{bid}", "model_a": MODEL[a], "model_b": MODEL[b],
                                         "winner": w, "voter": f"v{rng.randrange(49):02d}", "time": "2026-01-10T00:00:00Z",
                                         "flags": []}, separators=(",", ":")))
                bid += 1
    # two quarantined votes the engine must ignore
    lines.append(json.dumps({"battle_id": f"{stage}-q1", "model_a": MODEL[teams[-1]], "model_b": MODEL[teams[0]],
                             "winner": "model_a", "voter": "vq", "time": "2026-01-10T00:00:00Z", "flags": ["quarantined"]}))
    write(f"{d}/battles.jsonl", "\n".join(lines) + "\n")
    ratings = fit_bt(models, battles)
    boot = {m: [] for m in models}
    brng = random.Random(7)
    for _ in range(200):
        sample = [battles[brng.randrange(len(battles))] for _ in battles]
        r = fit_bt(models, sample)
        for m in models:
            boot[m].append(r[m])
    ranked = sorted(models, key=lambda m: -ratings[m])
    write(f"{d}/ratings.json", json.dumps({
        "schema": "kaival.arena-ratings/1", "synthetic": True, "method": "bradley-terry", "bootstrap": 200,
        "models": [{"model": m, "rating": round(ratings[m], 4), "ci_low": round(percentile(boot[m], 0.025), 4),
                    "ci_high": round(percentile(boot[m], 0.975), 4), "rank": ranked.index(m) + 1,
                    "battles": sum(1 for b in battles if m in b[:2])} for m in models],
        "manifest": {"generator": "testdata/stage/make_fixture.py"}}, indent=1) + "\n")
    best = max(round(ratings[m], 4) for m in models)
    for t in teams:
        r = round(ratings[MODEL[t]], 4)
        ref[t]["user"] = W_USER * 2 / (1 + 10 ** ((best - r) / 400))
        ref[t]["rating"] = r
    # experts: scores solved for the aimed totals, reviews around them
    expert = {}
    for t in teams:
        if t in EXPERT_FIXED.get(stage, {}):
            expert[t] = EXPERT_FIXED[stage][t]
        else:
            pts = TARGET_TOTAL[stage][t] + PENALTY.get(t, 0) - ref[t]["benchmark"] - ref[t]["user"]
            expert[t] = round(100 * pts / W_EXPERT, 2)
            assert 40 < expert[t] < 100, (t, expert[t])
        ref[t]["expert"] = W_EXPERT * expert[t] / 100
    rev_lines = []
    models_json = []
    for t in teams:
        scores = []
        for reviewer in range(10):
            for crit in ("report", "training_log", "strategy"):
                s = min(10, max(1, round(expert[t] / 10 + rng.gauss(0, 0.8))))
                scores.append(s)
                rev_lines.append(json.dumps({"campaign": stage, "item": crit, "model": MODEL[t], "reviewer": f"r{reviewer}",
                                             "criterion": crit, "score": s, "rationale": "synthetic", "time": "2026-01-12T00:00:00Z"},
                                            separators=(",", ":")))
        m0 = sum(scores) / len(scores)
        bs = []
        for _ in range(200):
            smp = [scores[brng.randrange(len(scores))] for _ in scores]
            bs.append(expert[t] * (sum(smp) / len(smp)) / m0)
        models_json.append({"model": MODEL[t], "score": expert[t], "ci_low": round(percentile(bs, 0.025), 3),
                            "ci_high": round(percentile(bs, 0.975), 3), "reviews": len(scores)})
    write(f"{d}/reviews.jsonl", "\n".join(rev_lines) + "\n")
    write(f"{d}/expert_scores.json", json.dumps({"schema": "kaival.expert-scores/1", "synthetic": True, "models": models_json,
                                                 "alpha": {}, "aggregation": "mean",
                                                 "manifest": {"generator": "testdata/stage/make_fixture.py"}}, indent=1) + "\n")
    # perf
    for t in teams:
        c, tps, ttft = PERF[t]
        write(f"{d}/perf/{t}.json", json.dumps({
            "schema": "kaival.perf/1", "synthetic": True, "model": MODEL[t], "endpoint": "http://127.0.0.1:0/v1",
            "ttft_ms": {"mean": ttft * 1.1, "median": ttft, "p99": ttft * 3}, "tpot_ms": {"mean": 1000 / tps},
            "requests": 200, "output_tokens_per_s": tps, "requests_per_s": 2.0, "goodput_rps": 1.8,
            "cost_per_1m_tokens": c, "price": {"usd_per_hour": 2.5},
            "manifest": {"generator": "testdata/stage/make_fixture.py"}}, indent=1) + "\n")
    # totals, ranks, indices
    for t in teams:
        r = ref[t]
        r["penalty"] = PENALTY.get(t, 0.0)
        r["total"] = max(0.0, r["benchmark"] + r["expert"] + r["user"] - r["penalty"])
        r["eligible"] = t not in INELIGIBLE
    elig = sorted([t for t in teams if ref[t]["eligible"]], key=lambda t: -round(ref[t]["total"], 1))
    for i, t in enumerate(elig):
        ref[t]["rank"] = i + 1
        ref[t]["decision"] = "advance" if i < ADVANCE[stage] else "eliminate"
    for t in teams:
        if not ref[t]["eligible"]:
            ref[t]["rank"], ref[t]["decision"] = 0, "ineligible"
    best_cost = min(PERF[t][0] for t in teams)
    best_tps = max(PERF[t][1] for t in teams)
    best_ttft = min(PERF[t][2] for t in teams)
    best_dl = max(RIPPLE[t][0] for t in teams)
    best_dv = max(RIPPLE[t][1] for t in teams)
    for t in teams:
        r = ref[t]
        r["frontier"] = (2 * 100 * r["ratio_of_means"] + 1 * 100 * r["benchmark"] / 40) / 3
        terms = [(0.5, 100 * r["user"] / 25), (0.2, 100 * best_cost / PERF[t][0]), (0.1, 100 * PERF[t][1] / best_tps),
                 (0.1, 100 * best_ttft / PERF[t][2]), (0.05, 100 * math.log1p(RIPPLE[t][0]) / math.log1p(best_dl)),
                 (0.05, 100 * math.log1p(RIPPLE[t][1]) / math.log1p(best_dv))]
        r["diffusion"] = sum(w * v for w, v in terms) / sum(w for w, _ in terms)
    return ref


def lineage_variants():
    """set.json: the embedding matched a foreign model (partial); net.json: a
    frozen foreign vision encoder (partial). Edited from dul.json's real report."""
    base = json.load(open(os.path.join(ROOT, "lineage", "dul.json")))
    for name, label, comp in (("set", "models/set-llm", {"name": "embedding", "kind": "embedding"}),
                              ("net", "models/net-llm", {"name": "vision_encoder", "kind": "vision_encoder"})):
        doc = json.loads(json.dumps(base))
        doc["inputs"][0]["label"] = label
        doc["a"] = label
        p = doc["pairs"][0]
        p["a"] = label
        p["verdict"] = "partial"
        doc["verdict"] = "partial"
        found = False
        for c in p["components"]:
            if c["name"] == comp["name"]:
                c["verdict"] = "derived"
                c["log10_p"] = c["log10_p_adjusted"] = -40.0
                c["p_value"] = c["p_value_adjusted"] = 1e-40
                found = True
        if not found:
            p["components"].append({"name": comp["name"], "kind": comp["kind"], "verdict": "derived", "decides": True,
                                    "method": "coord-match", "statistic": 0.9951, "statistic_name": "cosine",
                                    "p_value": 1e-40, "log10_p": -40.0, "p_value_adjusted": 1e-40,
                                    "log10_p_adjusted": -40.0, "tests": [], "caveats": {}})
        p["notes"] = ["edited fixture: " + comp["name"] + " marked derived (testdata/stage/make_fixture.py)"]
        with open(os.path.join(ROOT, "lineage", f"{name}.json"), "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")


def main():
    rng = random.Random(20260115)
    lineage_variants()
    evals = Evals()
    ref1 = build_stage("s1", rng, evals, ["hana", "dul", "set", "net", "daseot"])
    evals.write_all("s1")
    evals2 = Evals()
    ref2 = build_stage("s2", rng, evals2, ["hana", "dul", "set", "yeoseot"])
    evals2.write_all("s2")
    avg = sum(r["total"] for r in ref1.values()) / len(ref1)
    with open(os.path.join(ROOT, "expected.json"), "w") as f:
        json.dump({"generator": "testdata/stage/make_fixture.py", "s1": ref1, "s2": ref2, "s1_average_total": avg}, f,
                  indent=1, sort_keys=True)
        f.write("\n")
    print("s1:", {t: round(r["total"], 3) for t, r in ref1.items()}, "avg", round(avg, 3))
    print("s2:", {t: round(r["total"], 3) for t, r in ref2.items()})
    h = ref1["hana"]
    print("hana parts", round(h["benchmark"], 3), round(h["expert"], 3), round(h["user"], 3),
          "means", round(h["team_mean"], 3), round(h["target_mean"], 3), round(100 * h["ratio_of_means"], 2))


if __name__ == "__main__":
    main()
