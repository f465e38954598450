// Answer extraction, metrics and card parsing on hand-written inputs whose
// expected values are worked out by hand in the comments.
#include "eval/score.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/task.h"
#include "../support/errors.h"
#include "../support/files.h"

namespace kaival::eval {
namespace {

const std::vector<std::string> kLetters = {"A", "B", "C", "D"};
const std::vector<std::string> kCircled = {"①", "②", "③", "④", "⑤"};
const std::vector<std::string> kHangul = {"가", "나", "다", "라"};

TEST(Extract, KoreanAnswerPhrasesAndCircledNumbers) {
  EXPECT_EQ(extract_choice("정답은 ③입니다.", kCircled), 2);
  EXPECT_EQ(extract_choice("풀이를 보면... 따라서 정답: ⑤", kCircled), 4);
  EXPECT_EQ(extract_choice("답은 2번", kCircled), 1);
  EXPECT_EQ(extract_choice("④", kCircled), 3);
  EXPECT_EQ(extract_choice("정답은 ４", kCircled), 3);  // full-width digit
  EXPECT_EQ(extract_choice("잘 모르겠습니다", kCircled), -1);
}

TEST(Extract, LettersFullWidthAndParentheses) {
  EXPECT_EQ(extract_choice("The answer is (C).", kLetters), 2);
  EXPECT_EQ(extract_choice("Ｂ", kLetters), 1);           // full-width letter
  EXPECT_EQ(extract_choice("(D) because ...", kLetters), 3);
  EXPECT_EQ(extract_choice("**Answer: A**", kLetters), 0);
  EXPECT_EQ(extract_choice("정답은 ③", kLetters), 2);    // a number after an answer phrase
  EXPECT_EQ(extract_choice("I think it is B, not A", kLetters), 1);
  EXPECT_EQ(extract_choice("Absolutely", kLetters), -1);  // 'A' inside a word is no label
}

TEST(Extract, HangulLabels) {
  EXPECT_EQ(extract_choice("(나)", kHangul), 1);
  EXPECT_EQ(extract_choice("정답은 (라)입니다", kHangul), 3);
  EXPECT_EQ(extract_choice("다음과 같이 가정하면 (다)가 맞다", kHangul), 2);  // '다음', '가정' are words
}

TEST(Extract, Numbers) {
  EXPECT_EQ(extract_number("so 3 + 4 = 7 apples"), "7");
  EXPECT_EQ(extract_number("total: 1,000.50 won"), "1000.5");
  EXPECT_EQ(extract_number("정답： ６０"), "60");
  EXPECT_EQ(extract_number("first 12 then 5", false), "12");
  EXPECT_EQ(extract_number("-3.0 degrees"), "-3");
  EXPECT_EQ(extract_number("none here"), "");
  EXPECT_EQ(normalize_number("+2,000"), "2000");
}

TEST(Filters, PipelineRegexThenNumber) {
  std::vector<Filter> f = {{"regex", "#### (\\-?[0-9\\.\\,]+)", 1, ""}, {"last_number", "", 1, "[invalid]"}};
  EXPECT_EQ(apply_filters(f, "1200 - 200 = 1000\n#### 1,000", {}), "1000");
  EXPECT_EQ(apply_filters(f, "no marker", {}), "[invalid]");
  std::vector<Filter> c = {{"choice", "", 1, "[invalid]"}};
  EXPECT_EQ(apply_filters(c, "정답은 ②", kCircled), "②");
}

TEST(Metrics, TokenF1ByHand) {
  // prediction tokens {the→dropped, cat, sat}, reference {cat, sat, down}: common 2, P=2/2, R=2/3, F1=0.8
  EXPECT_NEAR(token_f1("The cat sat.", "cat sat down"), 0.8, 1e-12);
  EXPECT_EQ(token_f1("", ""), 1.0);
  EXPECT_EQ(token_f1("x", "y"), 0.0);
}

TEST(Metrics, BootstrapStderrNearAnalytic) {
  // 400 Bernoulli(0.25) outcomes: analytic stderr sqrt(p(1-p)/(n-1)) ≈ 0.02168.
  std::vector<double> x(400, 0.0);
  for (size_t i = 0; i < x.size(); i += 4) x[i] = 1.0;
  auto m = bootstrap_mean(x, 2000, 7);
  EXPECT_DOUBLE_EQ(m.mean, 0.25);
  EXPECT_NEAR(m.stderr_, std::sqrt(0.25 * 0.75 / 399.0), 0.002);
  EXPECT_EQ(bootstrap_mean({1.0}).stderr_, 0.0);
}

TEST(IFEval, CoreInstructions) {
  using OJ = nlohmann::ordered_json;
  EXPECT_TRUE(ifeval_check("punctuation:no_comma", OJ::object(), "no commas here"));
  EXPECT_FALSE(ifeval_check("punctuation:no_comma", OJ::object(), "a, b"));
  EXPECT_TRUE(ifeval_check("change_case:english_lowercase", OJ::object(), "all lower 서울"));
  EXPECT_TRUE(ifeval_check("length_constraints:number_words", OJ{{"relation", "less than"}, {"num_words", 4}}, "one two three"));
  EXPECT_FALSE(ifeval_check("length_constraints:number_words", OJ{{"relation", "less than"}, {"num_words", 3}}, "one two three"));
  EXPECT_TRUE(ifeval_check("startend:end_checker", OJ{{"end_phrase", "Any other questions?"}}, "Done. Any other questions?  "));
  EXPECT_TRUE(ifeval_check("detectable_format:number_bullet_lists", OJ{{"num_bullets", 2}}, "* a\n* b\ntext"));
  EXPECT_TRUE(ifeval_check("detectable_format:json_format", OJ::object(), "```json\n{\"a\": 1}\n```"));
  EXPECT_TRUE(ifeval_check("length_constraints:number_paragraphs", OJ{{"num_paragraphs", 2}}, "p1\n***\np2"));
  EXPECT_TRUE(ifeval_check("keywords:frequency", OJ{{"keyword", "kimchi"}, {"frequency", 2}, {"relation", "at least"}},
                           "Kimchi is good. I like kimchi."));
  EXPECT_THROW(ifeval_check("keywords:not_an_instruction", OJ::object(), "x"), UnsupportedError);
  EXPECT_THROW(ifeval_check("language:response_language", OJ::object(), "x"), FormatError);  // no language
}

TEST(Cards, CsvQuotingAndErrors) {
  auto rows = parse_csv("a,b\n\"x, y\",\"say \"\"hi\"\"\"\n1,2\n", ',', "t.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["a"], "x, y");
  EXPECT_EQ(rows[0]["b"], "say \"hi\"");
  EXPECT_THROW(parse_csv("a,b\n1\n", ',', "t.csv"), FormatError);
  EXPECT_THROW(parse_csv("a\n\"open\n", ',', "t.csv"), FormatError);
}

TEST(Cards, EveryShippedCardLoadsWithLicenseAndSourceFormat) {
  namespace fs = std::filesystem;
  int n = 0;
  for (const auto& e : fs::directory_iterator(std::string(KAIVAL_SOURCE_DIR) + "/tasks")) {
    if (e.path().extension() != ".yaml") continue;
    SCOPED_TRACE(e.path().string());
    for (const TaskCard& c : load_cards(e.path().string())) {
      EXPECT_FALSE(c.license.empty());
      EXPECT_TRUE(c.raw.contains("description_of_source"));
      EXPECT_EQ(c.name.find("${"), std::string::npos) << c.name;
      for (const auto& [split, src] : c.splits) EXPECT_EQ(src.hf_path.find("${"), std::string::npos) << src.hf_path;
      ++n;
    }
  }
  EXPECT_GE(n, 20 + 44 + 56);  // KMMLU alone is 45 tasks, MMLU 57
}

// One card, one task per value: KMMLU's subjects with their file names and task ids.
TEST(Cards, ExpandedCardGivesOneTaskPerValue) {
  const std::string card = std::string(KAIVAL_SOURCE_DIR) + "/tasks/kmmlu.yaml";
  auto all = load_cards(card);
  ASSERT_EQ(all.size(), 45u);
  EXPECT_EQ(all[0].name, "kmmlu_accounting");
  EXPECT_EQ(all[0].alias, "KMMLU Accounting");
  EXPECT_EQ(all[0].splits.at("test").hf_path, "data/Accounting-test.csv");
  EXPECT_EQ(all[0].splits.at("dev").hf_path, "data/Accounting-dev.csv");
  EXPECT_EQ(all[0].raw["expanded"]["subject"], "Accounting");
  EXPECT_FALSE(all[0].raw.contains("expand"));
  EXPECT_EQ(all[2].name, "kmmlu_aviation_engineering_and_maintenance");
  EXPECT_EQ(all[2].alias, "KMMLU Aviation Engineering and Maintenance");
  EXPECT_EQ(all[44].name, "kmmlu_math");
  EXPECT_EQ(all[44].splits.at("test").hf_path, "data/math-test.csv");
  std::set<std::string> names;
  for (const auto& c : all) {
    names.insert(c.name);
    EXPECT_EQ(c.group, "kmmlu");
    EXPECT_EQ(c.sha256, all[0].sha256);  // the card file's hash
  }
  EXPECT_EQ(names.size(), 45u);
  // "#names" picks tasks; a single pick is what load_card accepts.
  auto two = load_cards(card + "#kmmlu_math,kmmlu_law");
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].name, "kmmlu_math");
  EXPECT_EQ(two[1].name, "kmmlu_law");
  EXPECT_EQ(load_card(card + "#kmmlu_law").splits.at("test").hf_path, "data/Law-test.csv");
  try {
    load_card(card);
    FAIL() << "an expanded card is many tasks";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("45 tasks"), std::string::npos) << e.what();
  }
  try {
    load_cards(card + "#kmmlu_astrology");
    FAIL() << "no such subject";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("kmmlu_astrology"), std::string::npos) << e.what();
  }
}

// MMLU: the Hub's Parquet files, one folder per subject; the description names the subject.
TEST(Cards, MmluExpandsIntoItsSubjectsParquetFiles) {
  auto all = load_cards(std::string(KAIVAL_SOURCE_DIR) + "/tasks/mmlu.yaml");
  ASSERT_EQ(all.size(), 57u);
  EXPECT_EQ(all[0].name, "mmlu_abstract_algebra");
  EXPECT_EQ(all[0].splits.at("test").hf_repo, "cais/mmlu");
  EXPECT_EQ(all[0].splits.at("test").hf_path, "abstract_algebra/test-00000-of-00001.parquet");
  EXPECT_EQ(all[0].splits.at("dev").hf_path, "abstract_algebra/dev-00000-of-00001.parquet");
  EXPECT_EQ(all[0].splits.at("test").format, "parquet");
  EXPECT_EQ(all[0].raw["description"], "The following are multiple choice questions (with answers) about abstract algebra.");
  EXPECT_EQ(all[56].name, "mmlu_world_religions");
  EXPECT_EQ(all[56].alias, "MMLU world religions");
}

TEST(Cards, BadExpansionsNameTheProblem) {
  testing_support::TempDir dir("expand");
  auto write = [&](const std::string& expand, const std::string& name = "t_${s_id}") {
    auto p = dir.path / "c.yaml";
    testing_support::write_file(p, "schema: kaival.task/1\nname: " + name + "\nsplits: {test: \"${s}.jsonl\"}\n" +
                                       "request: generate_until\nprompt: p\ntarget: t\nexpand: " + expand + "\n");
    return p.string();
  };
  auto problem = [&](const std::string& path) { return testing_support::error_text<FormatError>([&] { load_cards(path); }); };
  EXPECT_EQ(load_cards(write("{s: [a-b, C]}")).size(), 2u);
  EXPECT_EQ(load_cards(write("{s: [a-b, C]}"))[1].name, "t_c");
  EXPECT_NE(problem(write("{s: []}")).find("non-empty list"), std::string::npos);
  EXPECT_NE(problem(write("{s: [a], t: [b]}")).find("one variable"), std::string::npos);
  EXPECT_NE(problem(write("{S1: [a]}")).find("a-z"), std::string::npos);
  EXPECT_NE(problem(write("{s: [a, 3]}")).find("non-empty string"), std::string::npos);
  EXPECT_NE(problem(write("{s: [a, b]}", "same")).find("repeats"), std::string::npos);
  EXPECT_NE(problem(write("{s: [a]}", "t_${x}")).find("letters, digits"), std::string::npos);  // an unknown variable stays
}

TEST(Cards, BadCardsNameTheProblem) {
  namespace fs = std::filesystem;
  auto dir = fs::temp_directory_path() / "kaival_card_test";
  fs::create_directories(dir);
  auto write = [&](const std::string& text) {
    auto p = dir / "c.yaml";
    std::ofstream(p) << text;
    return p.string();
  };
  EXPECT_THROW(load_card(write("schema: kaival.task/2\nname: x\n")), UnsupportedError);
  EXPECT_THROW(load_card(write("schema: kaival.task/1\nname: x\nsplits: {test: a.jsonl}\nrequest: loglikelihood\nprompt: p\n")),
               FormatError);  // no choices
  EXPECT_THROW(load_card(write("schema: kaival.task/1\nname: x\nsplits: {test: a.jsonl}\nrequest: generate_until\n"
                               "prompt: \"{{ x | wordwrap }}\"\ntarget: t\n")),
               UnsupportedError);  // template outside the Jinja subset
  EXPECT_THROW(load_card(write("schema: kaival.task/1\nname: x\nsplits: {test: {path: a.arrow, format: arrow}}\nrequest: generate_until\n"
                               "prompt: p\ntarget: t\n")),
               UnsupportedError);
  // Hub fields become a URL and a cache path: nothing that escapes the cache folder.
  auto hub = [&](const std::string& hf) {
    return testing_support::error_text<FormatError>([&] {
      load_card(write("schema: kaival.task/1\nname: x\nsplits: {test: {hf: " + hf + ", format: jsonl}}\n"
                      "request: generate_until\nprompt: p\ntarget: t\n"));
    });
  };
  EXPECT_EQ(hub("{repo: o/d, revision: refs/convert/parquet, path: default/test/0000.parquet}"), "no error");
  EXPECT_NE(hub("{repo: o/d, revision: main, path: /etc/passwd}").find("/etc/passwd"), std::string::npos);
  EXPECT_NE(hub("{repo: o/d, revision: main, path: a/../../x}").find("'..'"), std::string::npos);
  EXPECT_NE(hub("{repo: o/d, revision: \"\", path: a}").find("non-empty"), std::string::npos);
  EXPECT_NE(hub("{repo: o/d, revision: \"a b?\", path: a}").find("revision 'a b?'"), std::string::npos);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kaival::eval
