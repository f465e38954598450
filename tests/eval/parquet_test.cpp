// The Parquet reader (eval/parquet.h) on files written by two independent writers
// (tools/gen_parquet_fixtures.mjs: hyparquet-writer, DATA_PAGE_V2; DuckDB, DATA_PAGE v1),
// compared with the source rows the generator wrote next to each file (and checked there with
// the hyparquet reader); broken files; a task card over Parquet through the runner.
#include "eval/parquet.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/runner.h"
#include "eval/task.h"
#include "mock_server.h"

namespace kaival::eval {
namespace {

namespace fs = std::filesystem;
using OJ = nlohmann::ordered_json;

const std::string kDir = std::string(KAIVAL_TESTDATA) + "/eval/parquet/";

std::vector<OJ> expected(const std::string& parquet_name) {
  std::string name = parquet_name.substr(0, parquet_name.size() - 8) + ".expected.jsonl";
  std::ifstream f(kDir + name);
  EXPECT_TRUE(f.good()) << name;
  std::vector<OJ> out;
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) out.push_back(OJ::parse(line));
  return out;
}

std::vector<uint8_t> bytes_of(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::vector<OJ> read_all(std::span<const uint8_t> b, const std::string& where) {
  ParquetReader r(b, where);
  std::vector<OJ> out;
  while (auto row = r.next()) out.push_back(std::move(*row));
  return out;
}

std::vector<std::string> fixtures() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(kDir))
    if (e.path().extension() == ".parquet") out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Parquet, EveryFixtureReadsBackItsSourceRows) {
  auto files = fixtures();
  ASSERT_GE(files.size(), 15u);
  for (const auto& name : files) {
    SCOPED_TRACE(name);
    auto rows = read_parquet(kDir + name);
    auto want = expected(name);
    ASSERT_EQ(rows.size(), want.size());
    for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(rows[i], want[i]) << "row " << i << ": " << rows[i].dump();
  }
}

TEST(Parquet, EachWriterAndCompressionIsCovered) {
  // What each fixture is made of, so that a change of the generator cannot silently drop a case.
  std::set<std::string> codecs_v1, codecs_v2;
  for (const auto& name : fixtures()) {
    ParquetReader r(kDir + name);
    bool duck = r.created_by().find("DuckDB") != std::string::npos;
    EXPECT_TRUE(duck || r.created_by().find("hyparquet") != std::string::npos) << name << ": " << r.created_by();
    for (const auto& c : r.codecs()) (duck ? codecs_v1 : codecs_v2).insert(c);
  }
  for (const char* c : {"UNCOMPRESSED", "SNAPPY", "GZIP", "ZSTD"}) {
    EXPECT_TRUE(codecs_v1.count(c)) << "DuckDB (v1 pages) " << c;
    EXPECT_TRUE(codecs_v2.count(c)) << "hyparquet-writer (v2 pages) " << c;
  }
}

TEST(Parquet, MmluShapeKoreanStringsListsAndInt64) {
  for (const char* name : {"mmlu_v1_snappy.parquet", "mmlu_v2_dict_gzip.parquet", "mmlu_v2_zstd_groups.parquet"}) {
    SCOPED_TRACE(name);
    ParquetReader r(kDir + name);
    EXPECT_EQ(r.columns(), (std::vector<std::string>{"question", "subject", "choices", "answer"}));
    EXPECT_EQ(r.num_rows(), 6);
    std::vector<OJ> rows;
    while (auto row = r.next()) rows.push_back(*row);
    ASSERT_EQ(rows.size(), 6u);
    EXPECT_EQ(rows[1]["question"], "대한민국의 수도는 어디입니까?");
    EXPECT_EQ(rows[1]["choices"], OJ::parse(R"(["부산", "서울", "대구", "인천"])"));
    EXPECT_TRUE(rows[1]["answer"].is_number_integer());
    EXPECT_EQ(rows[1]["answer"].get<int64_t>(), 1);
    EXPECT_EQ(rows[3]["question"], "다음 중 \"한글\"을 만든 왕은?\n(줄바꿈 포함)");
    EXPECT_EQ(rows[4]["choices"][1], "");  // an empty string, not a null
    EXPECT_EQ(rows[4]["choices"][3], "😀😀");
  }
  EXPECT_EQ(ParquetReader(kDir + "mmlu_v2_zstd_groups.parquet").num_row_groups(), 3u);
}

TEST(Parquet, NullsEmptyListsAndExtremeIntegers) {
  for (const char* name : {"nulls_v1_snappy.parquet", "nulls_v2_snappy.parquet", "nulls_v2_uncompressed.parquet"}) {
    SCOPED_TRACE(name);
    auto rows = read_parquet(kDir + name);
    ASSERT_EQ(rows.size(), 5u);
    for (const char* k : {"id", "score", "flag", "label", "tags", "big"}) EXPECT_TRUE(rows[1][k].is_null()) << k;
    EXPECT_EQ(rows[2]["tags"], OJ::array());
    EXPECT_EQ(rows[2]["label"], "");
    EXPECT_EQ(rows[3]["tags"], OJ::parse(R"(["z", null, "한"])"));
    EXPECT_EQ(rows[4]["tags"], OJ::parse("[null]"));
    EXPECT_EQ(rows[0]["big"].get<int64_t>(), 9007199254740993);  // not representable as a double
    EXPECT_EQ(rows[3]["big"].get<int64_t>(), INT64_MIN);
    EXPECT_EQ(rows[3]["id"].get<int64_t>(), 2147483647);
    EXPECT_EQ(rows[2]["flag"], false);
    EXPECT_DOUBLE_EQ(rows[3]["score"].get<double>(), 1e300);
  }
}

TEST(Parquet, DictionaryPagesAndStructOfLists) {
  auto rows = read_parquet(kDir + "dict_v1_zstd.parquet");
  ASSERT_EQ(rows.size(), 200u);
  EXPECT_EQ(rows[1]["subject"], "한국사");
  EXPECT_EQ(rows[199]["note"], "item 9");
  EXPECT_TRUE(rows[196]["note"].is_null());  // 196 = 7 * 28
  auto arc = read_parquet(kDir + "arc_v1_snappy.parquet");
  ASSERT_EQ(arc.size(), 2u);
  EXPECT_EQ(arc[1]["choices"]["text"][1], "늘어난다");
  EXPECT_EQ(arc[1]["choices"]["label"], OJ::parse(R"(["1", "2", "3"])"));
}

// Every prefix of a file fails with a FormatError naming it; never a crash.
TEST(Parquet, TruncatedFilesGiveClearErrors) {
  for (const char* name : {"mmlu_v1_snappy.parquet", "nulls_v2_snappy.parquet", "dict_v1_zstd.parquet"}) {
    auto b = bytes_of(kDir + name);
    ASSERT_GT(b.size(), 100u);
    for (size_t n = 0; n < b.size(); ++n) {
      try {
        read_all(std::span<const uint8_t>(b.data(), n), "cut.parquet");
        ADD_FAILURE() << name << " cut to " << n << " bytes was read";
      } catch (const FormatError& e) {
        EXPECT_EQ(e.where(), "cut.parquet");
        if (n >= 12) {
          EXPECT_NE(std::string(e.what()).find("PAR1"), std::string::npos) << e.what();
        }
      }
    }
  }
}

// Every byte changed in turn: either rows come back or a kaival error does; nothing else.
TEST(Parquet, CorruptedBytesNeverCrash) {
  for (const char* name : {"mmlu_v1_snappy.parquet", "mmlu_v2_dict_gzip.parquet", "nulls_v1_snappy.parquet"}) {
    auto orig = bytes_of(kDir + name);
    size_t errors = 0;
    for (size_t i = 0; i < orig.size(); ++i) {
      for (uint8_t x : {uint8_t{0xff}, uint8_t{0x01}}) {
        auto b = orig;
        b[i] ^= x;
        try {
          read_all(b, "bad.parquet");
        } catch (const Error& e) {
          ++errors;
          EXPECT_EQ(e.where(), "bad.parquet");
        }
      }
    }
    EXPECT_GT(errors, orig.size() / 4) << name;  // most damage is noticed (checksums aside)
  }
}

TEST(Parquet, LyingHeadersNameTheProblem) {
  auto b = bytes_of(kDir + "mmlu_v1_snappy.parquet");
  auto problem = [](std::vector<uint8_t> d) -> std::string {
    try {
      read_all(d, "lie.parquet");
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  auto d = b;
  std::memcpy(d.data(), "PAR2", 4);
  EXPECT_NE(problem(d).find("not a Parquet file"), std::string::npos);
  d = b;
  uint32_t huge = 0xfffffff0u;
  std::memcpy(d.data() + d.size() - 8, &huge, 4);
  EXPECT_NE(problem(d).find("footer length"), std::string::npos) << problem(d);
  d = b;
  uint32_t small = 3;  // the footer starts inside its own data
  std::memcpy(d.data() + d.size() - 8, &small, 4);
  EXPECT_NE(problem(d).find("lie.parquet: footer"), std::string::npos) << problem(d);
  EXPECT_NE(problem(std::vector<uint8_t>{'P', 'A', 'R', '1'}).find("shorter"), std::string::npos);
  // A page body damaged inside the Snappy stream.
  d = b;
  for (size_t i = 4; i < 60; ++i) d[i] = 0xff;
  EXPECT_NE(problem(d).find("lie.parquet: column"), std::string::npos) << problem(d);
  // A missing file is an IoError naming it.
  EXPECT_THROW(ParquetReader("/nonexistent/x.parquet"), IoError);
}

TEST(Parquet, TaskCardsReadParquetSplits) {
  TaskCard c = load_card(kDir + "mmlu_parquet.yaml");
  EXPECT_EQ(c.splits.at("test").format, "parquet");  // from the extension
  EXPECT_EQ(c.splits.at("dev").format, "parquet");
  LoadOptions opt;
  std::string sha;
  auto docs = load_split(c, "test", opt, &sha);
  ASSERT_EQ(docs.size(), 6u);
  EXPECT_EQ(docs[5].index, 5u);
  EXPECT_EQ(docs[1].fields["choices"][1], "서울");
  EXPECT_EQ(sha.size(), 64u);
  opt.limit = 2;
  EXPECT_EQ(load_split(c, "dev", opt).size(), 2u);
}

// The whole path: card -> Parquet rows -> prompts (with few-shot examples from a Parquet dev
// split) -> mock server -> scores. The mock favours " C", so exactly the items whose answer is 2
// are right; that count comes from the expected rows, not from kaival.
TEST(Parquet, CardRunsEndToEndThroughTheRunner) {
  testing::MockServer mock;
  mock.favour("C");
  mock.start();
  RunOptions o;
  o.model_url = mock.url();
  o.progress = false;
  o.client.concurrency = 2;
  o.client.backoff_initial_s = 0.01;
  auto out = fs::temp_directory_path() / ("kaival_parquet_run_" + std::to_string(getpid()));
  fs::remove_all(out);
  o.out_dir = out.string();
  auto r = run_eval({kDir + "mmlu_parquet.yaml"}, o);
  auto want = expected("mmlu_v1_snappy.parquet");
  double right = 0;
  for (const auto& row : want) right += row["answer"].get<int>() == 2;
  ASSERT_GT(right, 0);
  const auto& res = r["results"]["mmlu_parquet_sample"];
  EXPECT_EQ(res["n"].get<size_t>(), want.size());
  EXPECT_DOUBLE_EQ(res["acc,none"].get<double>(), right / double(want.size()));
  // The prompts held the Korean question and few-shot examples from the dev split.
  bool korean = false;
  for (const auto& p : mock.served_prompts()) korean |= p.find("대한민국의 수도는 어디입니까?\nA. 부산\nB. 서울") != std::string::npos;
  EXPECT_TRUE(korean);
  fs::remove_all(out);
}

}  // namespace
}  // namespace kaival::eval
