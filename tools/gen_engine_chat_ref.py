#!/usr/bin/env python3
"""Reference chat prompts for kaival's engine (src/engine/chat.cpp), rendered
with Python's jinja2 the way Hugging Face transformers' apply_chat_template
does: ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with
loop controls, tojson = json.dumps(ensure_ascii=False), raise_exception(), and
the context {messages, add_generation_prompt, bos_token, eos_token}.

Templates: testdata/engine/templates/*.jinja (the chat templates the model
families ship) with each family's special-token strings, plus the fixture
tokenizer's own template (testdata/models/tokenizer-a/tokenizer_config.json).
Writes testdata/engine/templates/renderings.json.

Run: python3 tools/gen_engine_chat_ref.py   (Debian: python3-jinja2)
"""
import json
import os

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATES = os.path.join(ROOT, "testdata", "engine", "templates")

# template file -> (bos_token, eos_token) as the family's tokenizer_config.json states them.
FAMILIES = {
    "llama3.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama3_1.jinja": ("<|begin_of_text|>", "<|eot_id|>"),
    "qwen2_5.jinja": (None, "<|im_end|>"),
    "qwen3.jinja": (None, "<|im_end|>"),
    "mistral_v3.jinja": ("<s>", "</s>"),
    "gemma.jinja": ("<bos>", "<eos>"),
    "exaone3_5.jinja": ("[BOS]", "[|endofturn|]"),
    "phi3.jinja": ("<s>", "<|endoftext|>"),
    "chatml.jinja": ("<s>", "</s>"),
}

CONVERSATIONS = {
    "user": [{"role": "user", "content": "What is the capital of Korea?"}],
    "system_multi_turn": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello. How can I help?"},
        {"role": "user", "content": "서울의 인구는?\n"},
    ],
    "korean_user": [{"role": "user", "content": "안녕하세요, 오늘 날씨 어때요?"}],
    "bad_roles": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
}


class Raised(Exception):
    pass


def make_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])

    def raise_exception(msg):
        raise Raised(msg)

    env.filters["tojson"] = lambda x, indent=None, **_: json.dumps(x, ensure_ascii=False, indent=indent)
    env.globals["raise_exception"] = raise_exception
    return env


def render(env, template, messages, gen, bos, eos):
    ctx = {"messages": messages, "add_generation_prompt": gen}
    if bos is not None:
        ctx["bos_token"] = bos
    if eos is not None:
        ctx["eos_token"] = eos
    try:
        return {"expected": env.from_string(template).render(**ctx)}
    except Raised:
        return {"error": "raise"}


def main():
    env = make_env()
    cases = []
    sources = [(name, open(os.path.join(TEMPLATES, name), encoding="utf-8").read(), bos, eos)
               for name, (bos, eos) in FAMILIES.items()]
    cfg = json.load(open(os.path.join(ROOT, "testdata", "models", "tokenizer-a", "tokenizer_config.json")))
    sources.append(("models/tokenizer-a", cfg["chat_template"], cfg["bos_token"], cfg["eos_token"]))
    for name, text, bos, eos in sources:
        for conv, messages in CONVERSATIONS.items():
            for gen in (False, True):
                case = {"template": name, "conversation": conv, "add_generation_prompt": gen,
                        "bos_token": bos, "eos_token": eos}
                case.update(render(env, text, messages, gen, bos, eos))
                cases.append(case)
    out = {"generator": "tools/gen_engine_chat_ref.py", "jinja2": jinja2.__version__,
           "conversations": CONVERSATIONS, "cases": cases}
    with open(os.path.join(TEMPLATES, "renderings.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(cases)} cases, {sum('error' in c for c in cases)} expected errors")


if __name__ == "__main__":
    main()
