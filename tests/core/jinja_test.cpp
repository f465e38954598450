// Jinja subset: every case's expected output was rendered by Python's jinja2 in
// a Hugging Face-like environment (tools/jinja_reference.py), including the
// chat templates of Llama 3 / 3.1, Qwen2.5, Qwen3, Mistral, Gemma, EXAONE 3.5,
// Phi-3 and ChatML over several conversations.
#include "core/jinja.h"

#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "../support/files.h"

namespace kaival::jinja {
namespace {

using OJ = nlohmann::ordered_json;

using kaival::testing_support::read_file;

const std::string kDir = std::string(KAIVAL_TESTDATA) + "/eval/jinja/";

TEST(Jinja, MatchesPythonJinja2OnAllReferenceCases) {
  OJ doc = OJ::parse(read_file(kDir + "cases.json"));
  const OJ& cases = doc.at("cases");
  ASSERT_GT(cases.size(), 150u);
  int checked = 0;
  for (const auto& c : cases) {
    const std::string name = c.at("name").get<std::string>();
    std::string text = c.contains("template_file") ? read_file(kDir + c.at("template_file").get<std::string>())
                                                   : c.at("template").get<std::string>();
    Options opt;
    if (c.contains("options")) {
      opt.trim_blocks = c["options"].value("trim", true);
      opt.lstrip_blocks = c["options"].value("lstrip", true);
    }
    SCOPED_TRACE(name);
    Template t = Template::parse(text, name, opt);
    if (c.contains("expected")) {
      EXPECT_EQ(t.render(c.at("context")), c.at("expected").get<std::string>());
    } else if (c.at("error") == "raise") {
      EXPECT_THROW(t.render(c.at("context")), TemplateRaised);
    } else {
      EXPECT_THROW(t.render(c.at("context")), Error);
    }
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(cases.size()));
}

TEST(Jinja, PlainJsonContextRendersLikeOrdered) {
  auto t = Template::parse("{{ m.role }}:{{ m['content'] | trim }}", "t");
  nlohmann::json ctx = {{"m", {{"role", "user"}, {"content", " 안녕 "}}}};
  EXPECT_EQ(t.render(ctx), "user:안녕");
}

TEST(Jinja, RaiseExceptionCarriesMessage) {
  auto t = Template::parse("x{{ raise_exception('roles must alternate') }}", "chat");
  try {
    t.render(OJ::object());
    FAIL() << "no exception";
  } catch (const TemplateRaised& e) {
    EXPECT_NE(std::string(e.what()).find("roles must alternate"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("chat:1:"), std::string::npos);
  }
}

void expect_unsupported(const std::string& text, const std::string& construct, const std::string& position) {
  try {
    auto t = Template::parse(text, "tpl");
    t.render(OJ::object());
    FAIL() << "accepted: " << text;
  } catch (const UnsupportedError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(construct), std::string::npos) << msg;
    EXPECT_NE(msg.find(position), std::string::npos) << msg;
  }
}

TEST(Jinja, UnsupportedConstructsNameConstructAndPosition) {
  expect_unsupported("{% include 'x.j2' %}", "statement 'include'", "tpl:1:4");
  expect_unsupported("ab\n  {{ x | wordwrap(3) }}", "filter 'wordwrap'", "tpl:2:10");
  expect_unsupported("{{ x is escaped }}", "test 'escaped'", "tpl:1:9");
  expect_unsupported("{% for x in y recursive %}{% endfor %}", "recursive for loop", "tpl:1:15");
  expect_unsupported("{{ 'a'.zfill(3) }}", "method 'zfill'", "tpl:1:");
  expect_unsupported("{{ lipsum(2) }}", "function 'lipsum'", "tpl:1:");
  expect_unsupported("{% call m() %}x{% endcall %}", "statement 'call'", "tpl:1:4");
}

TEST(Jinja, SyntaxErrorsAreFormatErrorsWithPosition) {
  for (const char* bad : {"{% if x %}never closed", "{{ x ", "{{ 'unterminated }}", "{% for %}{% endfor %}",
                          "{% endif %}", "{{ (1 }}", "{# open comment", "{{ x ! y }}"}) {
    SCOPED_TRACE(bad);
    try {
      Template::parse(bad, "bad.j2");
      FAIL() << "parsed";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("bad.j2:1:"), std::string::npos) << e.what();
    }
  }
}

TEST(Jinja, HostileTemplatesHitBoundsNotResources) {
  Options small;
  small.max_output_bytes = 1 << 16;
  // Exponential string growth through a namespace.
  auto grow = Template::parse(
      "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
      "grow", small);
  EXPECT_THROW(grow.render(OJ::object()), FormatError);
  // Unbounded macro recursion.
  auto rec = Template::parse("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "rec");
  EXPECT_THROW(rec.render(OJ::object()), FormatError);
  // Quadratic loops with no output exhaust the step budget.
  Options steps;
  steps.max_steps = 100000;
  auto loops = Template::parse("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                               "loops", steps);
  EXPECT_THROW(loops.render(OJ::object()), FormatError);
  // String repetition beyond the output bound.
  auto rep = Template::parse("{{ 'x' * 1000000000 }}", "rep", small);
  EXPECT_THROW(rep.render(OJ::object()), FormatError);
  // Deep nesting is refused at parse time instead of overflowing the stack.
  std::string deep = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_THROW(Template::parse(deep, "deep"), FormatError);
  std::string deep_if;
  for (int i = 0; i < 3000; ++i) deep_if += "{% if true %}";
  EXPECT_THROW(Template::parse(deep_if, "deepif"), FormatError);
}

TEST(Jinja, GenerationBlockRendersBody) {
  auto t = Template::parse("{% generation %}gen {{ 1 + 1 }}{% endgeneration %}!", "g");
  EXPECT_EQ(t.render(OJ::object()), "gen 2!");
}

TEST(Jinja, TojsonKeepsOrderedContextKeyOrder) {
  auto t = Template::parse("{{ d | tojson }}", "t");
  OJ ctx = OJ::object();
  ctx["d"] = OJ::object();
  ctx["d"]["zeta"] = 1;
  ctx["d"]["alpha"] = "한";
  EXPECT_EQ(t.render(ctx), "{\"zeta\": 1, \"alpha\": \"한\"}");
}

}  // namespace
}  // namespace kaival::jinja
