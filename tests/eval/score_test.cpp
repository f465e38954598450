// Answer extraction, metrics and card parsing on hand-written inputs whose
// expected values are worked out by hand in the comments.
#include "eval/score.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/task.h"

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
    TaskCard c = load_card(e.path().string());
    EXPECT_FALSE(c.license.empty());
    EXPECT_TRUE(c.raw.contains("description_of_source"));
    ++n;
  }
  EXPECT_GE(n, 20);
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
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kaival::eval
