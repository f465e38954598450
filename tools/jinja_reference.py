#!/usr/bin/env python3
"""Reference outputs for kaival's Jinja subset, computed with Python's jinja2.

The environment mirrors Hugging Face transformers' chat-template renderer:
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with loop
controls, a tojson that is json.dumps(ensure_ascii=False, indent=...), and
raise_exception(). Writes testdata/eval/jinja/cases.json:
  [{"name", "template" | "template_file", "context", "expected" | "error"}]
where "error" is "raise" (raise_exception) or "error" (any other failure).

Run: python3 tools/jinja_reference.py
"""
import json
import os
import sys

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "testdata", "eval", "jinja")


class Raised(Exception):
    pass


def make_env(trim=True, lstrip=True):
    env = ImmutableSandboxedEnvironment(trim_blocks=trim, lstrip_blocks=lstrip, extensions=[loopcontrols])

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def raise_exception(msg):
        raise Raised(msg)

    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "날씨를 알려준다",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]

CONVS = {
    "simple": [{"role": "user", "content": "안녕하세요! 오늘 날씨 어때요?"}],
    "system": [{"role": "system", "content": "  You are a helpful assistant.  "},
               {"role": "user", "content": "What is 2+2?"},
               {"role": "assistant", "content": "4"},
               {"role": "user", "content": "정답은 ③ 입니까?\n"}],
    "multi": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": " Hello! "},
              {"role": "user", "content": "Tell me a joke."}],
    "bad_alternation": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    "think": [{"role": "user", "content": "1+1?"},
              {"role": "assistant", "content": "<think>\nsimple math\n</think>\n\n2"},
              {"role": "user", "content": "2+2?"},
              {"role": "assistant", "reasoning_content": "add", "content": "4"}],
    "tools": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "서울 날씨?"},
              {"role": "assistant", "content": "", "tool_calls": [
                  {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Seoul"}}}]},
              {"role": "tool", "content": "{\"temp\": 3}"},
              {"role": "assistant", "content": "3도입니다."}],
}

CHAT_TEMPLATES = ["llama3", "llama3_1", "qwen2_5", "qwen3", "mistral_v1", "mistral_v3", "gemma", "exaone3_5",
                  "phi3", "chatml"]

BASE = {"bos_token": "<s>", "eos_token": "</s>"}

# Feature cases: (name, template, context[, {"trim": bool, "lstrip": bool}])
FEATURES = [
    ("var", "Hello {{ name }}!", {"name": "세계"}),
    ("attr_index", "{{ a.b[1].c }}-{{ a['b'][0] }}-{{ a.b[-1].c }}", {"a": {"b": [7, {"c": "x"}]}}),
    ("undefined_prints_empty", "[{{ missing }}][{{ a.missing }}]", {"a": {}}),
    ("filters_text", "{{ '  Hi There  ' | trim }}|{{ 'abc' | upper }}|{{ 'ÀBC' | lower }}|{{ 'hello WORLD' | capitalize }}|{{ 'a b' | title }}", {}),
    ("filter_length", "{{ s | length }} {{ l | length }} {{ d | length }}", {"s": "한국어", "l": [1, 2, 3], "d": {"a": 1}}),
    ("filter_default", "{{ x | default('dflt') }} {{ y | default('dflt') }} {{ z | default('e', true) }} {{ z | d('f') }}", {"y": "set", "z": ""}),
    ("filter_join", "{{ l | join(', ') }}|{{ l | join }}", {"l": ["a", "b", 3]}),
    ("filter_replace", "{{ 'a-b-c' | replace('-', '+') }} {{ 'aaa' | replace('a', 'b', 2) }}", {}),
    ("filter_tojson", "{{ d | tojson }}\n{{ d | tojson(indent=2) }}\n{{ 'x\"y' | tojson }}\n{{ l | tojson }}", {"d": {"z": 1, "a": [1, 2.5, None, True], "k": "한글"}, "l": []}),
    ("filter_first_last_list", "{{ l | first }} {{ l | last }} {{ 'abc' | list }} {{ 'xyz' | first }}", {"l": [1, 2, 3]}),
    ("filter_string_int_round", "{{ 3 | string ~ 'x' }} {{ '42' | int + 1 }} {{ 'x' | int }} {{ 3.7 | int }} {{ 2.5 | round }} {{ 3.14159 | round(2) }} {{ 2.1 | round(0, 'ceil') }} {{ 7 | float }}", {}),
    ("filter_safe_indent", "{{ '<b>' | safe }}\n{{ 'a\\nb\\n\\nc' | indent(2) }}\n{{ 'a\\nb' | indent(4, true) }}", {}),
    ("filter_misc", "{{ [3, 1, 2] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} {{ [1, 2, 2, 3] | unique | list }} {{ [1, 2, 3] | sum }} {{ [4, 9] | max }} {{ -3 | abs }} {{ [1, 2] | reverse | list }} {{ 'abc' | reverse }}", {}),
    ("filter_select", "{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}|{{ msgs | rejectattr('role', 'equalto', 'user') | list | length }}|{{ [1, 2, 3, 4] | select('odd') | list }}", {"msgs": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}),
    ("filter_items_dictsort", "{% for k, v in d | items %}{{ k }}={{ v }};{% endfor %}|{% for k, v in d | dictsort %}{{ k }};{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("if_elif_else", "{% for x in [1, 2, 3, 4] %}{% if x == 1 %}one{% elif x == 2 %}two{% elif x > 3 %}big{% else %}other{% endif %} {% endfor %}", {}),
    ("for_loop_vars", "{% for x in l %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.length }}/{{ loop.first }}/{{ loop.last }}/{{ loop.revindex }} {% endfor %}", {"l": ["a", "b", "c"]}),
    ("for_else", "{% for x in l %}{{ x }}{% else %}empty{% endfor %}", {"l": []}),
    ("for_filter_unpack", "{% for k, v in d.items() if v > 1 %}{{ k }}:{{ v }}({{ loop.length }}) {% endfor %}", {"d": {"a": 1, "b": 2, "c": 3}}),
    ("for_dict_keys", "{% for k in d %}{{ k }}{% endfor %}", {"d": {"x": 1, "y": 2}}),
    ("for_break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i > 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("loop_prev_next", "{% for x in [1, 2, 3] %}{{ loop.previtem | default('-') }}{{ x }}{{ loop.nextitem | default('-') }} {% endfor %}", {}),
    ("set_scoping", "{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %}|{{ x }}", {}),
    ("set_namespace", "{% set ns = namespace(total=0, names=[]) %}{% for i in [1, 2, 3] %}{% set ns.total = ns.total + i %}{% set ns.names = ns.names + [i] %}{% endfor %}{{ ns.total }} {{ ns.names }}", {}),
    ("set_block_and_tuple", "{% set a, b = [1, 'two'] %}{{ a }}{{ b }}{% set blk %}in {{ a }} block{% endset %}[{{ blk }}]", {}),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(punct='.', name='C') }}", {}),
    ("macro_recursion", "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * (fact(n - 1) | int) }}{% endif %}{% endmacro %}{{ fact(6) }}", {}),
    ("macro_sees_globals_not_locals", "{% set g = 'G' %}{% macro m() %}{{ g }}{{ loc | default('-') }}{% endmacro %}{% for loc in [1] %}{{ m() }}{% endfor %}", {}),
    ("whitespace_control", "a  {%- if true -%}  b  {%- endif -%}  c\n  {{- ' d ' -}}  \n e", {}),
    ("trim_lstrip_blocks", "<ul>\n  {% for x in l %}\n  <li>{{ x }}</li>\n  {% endfor %}\n</ul>\n", {"l": [1, 2]}),
    ("no_trim_blocks", "<ul>\n  {% for x in l %}\n  <li>{{ x }}</li>\n  {% endfor %}\n</ul>\n", {"l": [1, 2]}, {"trim": False, "lstrip": False}),
    ("lstrip_plus", "x\n  {%+ if true %}y{% endif %}", {}),
    ("tests", "{{ a is defined }} {{ b is defined }} {{ n is none }} {{ s is string }} {{ 3 is number }} {{ l is sequence }} {{ d is mapping }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ b is not defined }} {{ s is not string }}", {"a": 1, "n": None, "s": "x", "l": [1], "d": {}}),
    ("in_operator", "{{ 'a' in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in d }} {{ 'z' not in d }}", {"d": {"k": 1}}),
    ("concat_and_math", "{{ 'a' ~ 1 ~ none ~ true }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 'ab' * 3 }} {{ [1] + [2] }}", {}),
    ("comparisons_logic", "{{ 1 < 2 and 2 < 3 }} {{ 1 > 2 or not false }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ none or 'x' }} {{ 0 and 1 }} {{ 2 >= 2 }} {{ [] or 'empty' }}", {}),
    ("slicing", "{{ s[::-1] }} {{ l[1:] }} {{ l[:-1] }} {{ l[::2] }} {{ s[1:3] }} {{ l[-2:] }} {{ l[5:] }}", {"s": "가나다라", "l": [1, 2, 3, 4, 5]}),
    ("string_methods", "[{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip() }}] {{ s.strip().startswith('He') }} {{ s.strip().endswith('x') }} {{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'abc'.upper() }} {{ 'x-y-z'.split('-', 1) }} {{ 'xxhixx'.strip('x') }} {{ 'a b'.replace(' ', '_') }} {{ 'abc'.startswith(('x', 'a')) }} {{ 'a,b,c'.rsplit(',', 1) }}", {"s": "  Hello  "}),
    ("dict_methods", "{% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %} {{ d.get('a') }} {{ d.get('zz', 'no') }} {{ d.get('zz') }} {{ d.keys() | list }} {{ d.values() | list }}", {"d": {"a": 1, "b": 2}}),
    ("print_values", "{{ none }} {{ true }} {{ 1.5 }} {{ [1, 'a', none, true] }} {{ {'k': 'v'} }} {{ 10 / 4 }} {{ 1e20 }} {{ \"it's\" }} {{ [\"it's\"] }}", {}),
    ("cond_expr", "{{ 'y' if x else 'n' }} {{ 'y' if not x else 'n' }} [{{ 'only' if false }}]", {"x": True}),
    ("list_dict_literals", "{% set d = {'a': [1, 2], 'b': {'c': 'x'}} %}{{ d.a[1] }}{{ d['b'].c }}{% set t = (1, 2) %}{{ t[0] }}{{ t | length }}", {}),
    ("comment", "a{# comment {{ x }} #}b\n{# line comment #}\nc", {}),
    ("raise", "{% if bad %}{{ raise_exception('bad input: ' ~ bad) }}{% endif %}ok", {"bad": "yes"}),
    ("range_forms", "{{ range(3) | list }} {{ range(1, 4) | list }} {{ range(10, 0, -3) | list }}", {}),
    ("string_escape_literals", "{{ 'a\\tb' }}|{{ \"q\\\"q\" }}|{{ 'it\\'s' }}", {}),
    ("raw_block", "{% raw %}{{ not rendered }}{% endraw %}!", {}),
    ("nested_loops_loop_var", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }};{% endfor %}", {}),
    ("is_in_tests", "{{ 'user' is in ['user', 'assistant'] }} {{ 1 is eq 1 }} {{ 'ABC' is upper }}", {}),
    ("unicode_ops", "{{ '정답은 ③'[-1] }} {{ '한국어' | upper }} {{ '한국어'.split('국') }} {{ '가' ~ '나' }}", {}),
]


def render(env, template, context):
    try:
        return {"expected": env.from_string(template).render(**context)}
    except Raised:
        return {"error": "raise"}
    except Exception as e:  # noqa: BLE001 - any other jinja failure
        return {"error": "error", "python_error": type(e).__name__}


def main():
    cases = []
    for name, template, context, *opt in FEATURES:
        o = opt[0] if opt else {}
        env = make_env(o.get("trim", True), o.get("lstrip", True))
        case = {"name": name, "template": template, "context": context}
        if opt:
            case["options"] = o
        case.update(render(env, template, context))
        cases.append(case)
    env = make_env()
    for t in CHAT_TEMPLATES:
        text = open(os.path.join(OUT, "templates", t + ".jinja"), encoding="utf-8").read()
        for conv_name, conv in CONVS.items():
            for gen in (False, True):
                for tools in ((None, TOOLS) if conv_name == "tools" else (None,)):
                    ctx = dict(BASE, messages=conv, add_generation_prompt=gen)
                    if tools is not None:
                        ctx["tools"] = tools
                    if conv_name == "think" and gen:
                        ctx["enable_thinking"] = False
                    case = {"name": f"{t}/{conv_name}/gen={int(gen)}/tools={int(tools is not None)}",
                            "template_file": f"templates/{t}.jinja", "context": ctx}
                    case.update(render(env, text, ctx))
                    cases.append(case)
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "tools/jinja_reference.py", "jinja2": jinja2.__version__, "cases": cases}, f,
                  ensure_ascii=False, indent=1)
        f.write("\n")
    errors = sum(1 for c in cases if "error" in c)
    print(f"{len(cases)} cases ({errors} expected errors)", file=sys.stderr)
    for c in cases:
        if c.get("error") == "error":
            print("  error:", c["name"], c.get("python_error"), file=sys.stderr)


if __name__ == "__main__":
    main()
