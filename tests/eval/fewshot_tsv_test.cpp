// Few-shot selection seen from the prompts the server receives (same seed: the same examples in
// the same order; another seed: others; an item is never an example of itself), and TSV task
// data (Korean text, quotes kept literally, CRLF and BOM, bad rows named) run end to end.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../support/files.h"
#include "../support/json_schema.h"
#include "core/error.h"
#include "core/hash.h"
#include "eval/runner.h"
#include "eval/task.h"
#include "eval/yaml_json.h"
#include "mock_server.h"

namespace kaival::eval {
namespace {

namespace fs = std::filesystem;
using testing::MockServer;
using testing_support::TempDir;
using testing_support::write_file;
using OJ = nlohmann::ordered_json;

RunOptions options(const MockServer& m) {
  RunOptions o;
  o.model_url = m.url();
  o.progress = false;
  o.client.concurrency = 2;
  return o;
}

// Rows {"q": "<prefix> <i>번 문제", "a": "답<i>"} as JSON Lines.
std::string rows(const std::string& prefix, int n) {
  std::string s;
  for (int i = 1; i <= n; ++i)
    s += OJ{{"q", prefix + " " + std::to_string(i) + "번 문제"}, {"a", "답" + std::to_string(i)}}.dump() + "\n";
  return s;
}

// A generate_until card over `test` and `dev` files (paths relative to the card) with k shots.
std::string write_card(const fs::path& dir, const std::string& name, const std::string& test, const std::string& dev,
                       int k, int seed) {
  fs::path card = dir / (name + ".yaml");
  write_file(card, "schema: kaival.task/1\nname: " + name + "\nlicense: test\n"
                   "splits: {test: " + test + ", dev: " + dev + "}\n"
                   "request: generate_until\nprompt: \"질문: {{ q }}\\n답:\"\ntarget: \"{{ a }}\"\n"
                   "fewshot: {k: " + std::to_string(k) + ", split: dev, seed: " + std::to_string(seed) +
                   ", answer: \" {{ a }}\"}\n"
                   "generation: {max_tokens: 8}\n");
  return card.string();
}

// The questions in a rendered prompt, in order: the examples, then the item itself.
std::vector<std::string> questions(const std::string& prompt) {
  std::vector<std::string> out;
  const std::string open = "질문: ", close = "\n답:";
  for (size_t at = prompt.find(open); at != std::string::npos; at = prompt.find(open, at)) {
    at += open.size();
    size_t end = prompt.find(close, at);
    if (end == std::string::npos) break;
    out.push_back(prompt.substr(at, end - at));
  }
  return out;
}

// Runs the card and returns, per item (its question), the examples in its prompt in order.
std::map<std::string, std::vector<std::string>> shots_per_item(MockServer& mock, const std::string& card) {
  const size_t before = mock.served_prompts().size();
  run_eval({card}, options(mock));
  auto served = mock.served_prompts();
  std::map<std::string, std::vector<std::string>> out;
  for (size_t i = before; i < served.size(); ++i) {
    auto q = questions(served[i]);
    EXPECT_FALSE(q.empty()) << served[i];
    if (q.empty()) continue;
    std::string item = q.back();
    q.pop_back();
    EXPECT_FALSE(out.count(item)) << "item sent twice: " << item;
    out[item] = q;
  }
  return out;
}

TEST(FewShot, SameSeedSameExamplesInOrderAnotherSeedOthers) {
  TempDir dir("fewshot_seed");
  write_file(dir.path / "test.jsonl", rows("시험", 4));
  write_file(dir.path / "dev.jsonl", rows("예시", 12));
  MockServer mock;
  mock.start();
  auto first = shots_per_item(mock, write_card(dir.path, "shots_seed7", "test.jsonl", "dev.jsonl", 3, 7));
  auto again = shots_per_item(mock, write_card(dir.path, "shots_seed7", "test.jsonl", "dev.jsonl", 3, 7));
  auto other = shots_per_item(mock, write_card(dir.path, "shots_seed8", "test.jsonl", "dev.jsonl", 3, 8));
  ASSERT_EQ(first.size(), 4u);
  EXPECT_EQ(first, again);  // the same examples, in the same order, before every item
  const auto& shots = first.begin()->second;
  ASSERT_EQ(shots.size(), 3u);
  EXPECT_EQ(std::set<std::string>(shots.begin(), shots.end()).size(), 3u) << "an example drawn twice";
  for (const auto& s : shots) EXPECT_EQ(s.rfind("예시 ", 0), 0u) << s << " is not from the dev split";
  for (const auto& [item, s] : first) EXPECT_EQ(s, shots) << item;  // the same for every item
  // The examples are followed by their answers: "질문: 예시 5번 문제\n답: 답5".
  ASSERT_EQ(other.size(), 4u);
  EXPECT_NE(other.begin()->second, shots) << "seeds 7 and 8 drew the same examples in the same order";
  // A draw, not the file's first rows.
  EXPECT_NE(shots, (std::vector<std::string>{"예시 1번 문제", "예시 2번 문제", "예시 3번 문제"}));
}

TEST(FewShot, AnItemIsNeverAnExampleOfItself) {
  // The few-shot split is the evaluation file itself (a card may name one file twice; exports
  // may overlap): each item's examples are drawn from the other rows.
  TempDir dir("fewshot_self");
  write_file(dir.path / "pool.jsonl", rows("문항", 5));
  MockServer mock;
  mock.start();
  for (int k : {3, 4}) {
    SCOPED_TRACE("k = " + std::to_string(k));
    auto got = shots_per_item(mock, write_card(dir.path, "shots_self" + std::to_string(k), "pool.jsonl", "pool.jsonl", k, 7));
    ASSERT_EQ(got.size(), 5u);
    for (const auto& [item, shots] : got) {
      EXPECT_EQ(shots.size(), static_cast<size_t>(k)) << item;
      EXPECT_EQ(std::count(shots.begin(), shots.end(), item), 0) << item << " is among its own examples";
      EXPECT_EQ(std::set<std::string>(shots.begin(), shots.end()).size(), shots.size()) << item;
    }
  }
}

// BOM, CRLF, a blank line, quotes and commas inside fields: TSV has no quoting (a field cannot
// hold a tab), so a quote is an ordinary character.
const std::string kTsv =
    "\xEF\xBB\xBFid\tquestion\tanswer\n"
    "1\t서울은 한국의 수도인가요?\t예\r\n"
    "2\t그는 \"안녕\"이라고 말했다. 인사였나요?\t아니오\n"
    "\n"
    "3\t쉼표, 그리고 세미콜론; 모두 글자인가요?\t예\n";

TEST(TsvData, KoreanRowsRunEndToEndWithQuotesKeptLiterally) {
  TempDir dir("tsv");
  write_file(dir.path / "data.tsv", kTsv);
  fs::path card = dir.path / "tsv_ko.yaml";
  write_file(card, "schema: kaival.task/1\nname: tsv_ko\nlicense: test\n"
                   "splits: {test: {path: data.tsv, format: tsv}}\n"
                   "request: generate_until\ndoc_id: \"{{ id }}\"\nprompt: \"{{ question }}\\n답:\"\n"
                   "target: \"{{ answer }}\"\nfilters: [strip]\nmetrics: [exact_match]\n");
  // The card is a valid kaival.task/1 card.
  auto schema = testing_support::JsonSchema::load(std::string(KAIVAL_SOURCE_DIR) + "/schemas/task.schema.json");
  auto errs = schema.errors(read_yaml_file(card.string()));
  EXPECT_TRUE(errs.empty()) << testing_support::join_errors(errs);

  auto docs = load_split(load_card(card.string()), "test", LoadOptions{});
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].fields["id"], "1");  // the BOM is not part of the first column's name
  EXPECT_EQ(docs[0].fields["answer"], "예");  // no '\r' left from CRLF
  EXPECT_EQ(docs[1].fields["question"], "그는 \"안녕\"이라고 말했다. 인사였나요?");
  EXPECT_EQ(docs[2].fields["question"], "쉼표, 그리고 세미콜론; 모두 글자인가요?");

  MockServer mock;
  mock.add_answer("서울은", " 예");
  mock.add_answer("\"안녕\"", "예");  // wrong: the answer is 아니오
  mock.add_answer("쉼표, 그리고", "예\n");
  mock.start();
  RunOptions o = options(mock);
  o.out_dir = (dir.path / "out").string();
  auto r = run_eval({card.string()}, o);
  EXPECT_DOUBLE_EQ(r["results"]["tsv_ko"]["exact_match,none"].get<double>(), 2.0 / 3.0);
  EXPECT_EQ(r["results"]["tsv_ko"]["n"], 3);
  EXPECT_EQ(r["configs"]["tsv_ko"]["dataset_sha256"]["test"], sha256_file((dir.path / "data.tsv").string()));
  std::set<std::string> prompts;
  for (const auto& p : mock.served_prompts()) prompts.insert(p);
  EXPECT_TRUE(prompts.count("그는 \"안녕\"이라고 말했다. 인사였나요?\n답:"));
  std::ifstream samples(dir.path / "out" / "samples_tsv_ko.jsonl");
  std::set<std::string> ids;
  for (std::string line; std::getline(samples, line);) ids.insert(OJ::parse(line)["doc_id"].get<std::string>());
  EXPECT_EQ(ids, (std::set<std::string>{"1", "2", "3"}));
}

TEST(TsvData, ARowWithTheWrongFieldCountNamesTheFileAndRow) {
  TempDir dir("tsv_bad");
  write_file(dir.path / "data.tsv", "id\tquestion\tanswer\n1\t하나\t예\n2\t둘 (탭 하나 빠짐)\n");
  fs::path card = dir.path / "tsv_bad.yaml";
  write_file(card, "schema: kaival.task/1\nname: tsv_bad\nsplits: {test: data.tsv}\n"
                   "request: generate_until\nprompt: \"{{ question }}\"\ntarget: \"{{ answer }}\"\n");
  try {
    load_split(load_card(card.string()), "test", LoadOptions{});
    FAIL() << "a short row was accepted";
  } catch (const FormatError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("data.tsv"), std::string::npos) << m;
    EXPECT_NE(m.find("row 3 has 2 fields, the header has 3"), std::string::npos) << m;
  }
}

TEST(TsvData, CsvQuotedFieldsMayHoldTabsCommasQuotesAndNewlines) {
  // The same reader with ',' honours RFC 4180 quoting; with '\t' it does not quote at all.
  auto rows = parse_csv("q,a\n\"가\t나, \"\"다\"\"\n라\",1\n", ',', "x.csv");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["q"], "가\t나, \"다\"\n라");
  auto tsv = parse_csv("q\ta\n\"가 나\"\t1\n", '\t', "x.tsv");
  ASSERT_EQ(tsv.size(), 1u);
  EXPECT_EQ(tsv[0]["q"], "\"가 나\"");
}

}  // namespace
}  // namespace kaival::eval
