// Streamed JSON splits (eval/json_split.h): the records cut out of small chunks
// equal a whole-file nlohmann parse, the reader holds O(largest element + chunk)
// bytes even past a large unrelated key, and each malformed file fails with a
// message naming the file, the problem and where.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/json_split.h"
#include "eval/task.h"
#include "../support/files.h"

namespace kaival::eval {
namespace {

namespace fs = std::filesystem;
using OJ = nlohmann::ordered_json;

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("kaival_json_split_" + std::to_string(getpid()));
  TempDir() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

using kaival::testing_support::write_file;

// Every record of `text` through a reader with chunks of `chunk` bytes.
std::vector<OJ> read_all(const std::string& text, const std::string& field, size_t chunk) {
  std::istringstream in(text);
  JsonArrayReader r(in, "t.json", field, chunk);
  std::vector<OJ> out;
  while (auto j = r.next()) out.push_back(std::move(*j));
  return out;
}

// The records as the old loader had them: one nlohmann parse of the whole text.
std::vector<OJ> reference(const std::string& text, const std::string& field) {
  OJ j = OJ::parse(text);
  const OJ& list = field.empty() ? j : j.at(field);
  return std::vector<OJ>(list.begin(), list.end());
}

// The message of the FormatError that reading all of `text` throws ("" if none).
std::string error_of(const std::string& text, const std::string& field = "", size_t chunk = 7) {
  try {
    read_all(text, field, chunk);
  } catch (const FormatError& e) {
    EXPECT_EQ(e.where(), "t.json");
    return e.what();
  }
  return "";
}

// Records with text that looks like structure: brackets, braces, quotes, escapes,
// multi-byte UTF-8 (2, 3 and 4 bytes), nested lists and objects.
std::string tricky_records() {
  return R"([
  {"q": "a [tricky] {one}, \"quoted\" \\ and \\\" too", "n": [1, [2, [3, {"x": "]"}]]], "e": {}},
  {"q": "한국어 – 日本語 – 😀 – é", "choices": ["[", "]", "{", "}", "\\", "\""], "a": null},
  {"q": "\u00e9\ud83d\ude00 \/ \b\f\n\r\t", "deep": {"a": {"b": {"c": [[], [[]], {}]}}}, "t": true, "f": -1.5e3}
])";
}

TEST(JsonSplit, TrickyStringsEqualWholeParseAtEveryChunkSize) {
  const std::string text = tricky_records();
  auto want = reference(text, "");
  ASSERT_EQ(want.size(), 3u);
  // Chunk sizes 1..64 put every boundary inside every string, escape and UTF-8 sequence.
  for (size_t chunk = 1; chunk <= 64; ++chunk) ASSERT_EQ(read_all(text, "", chunk), want) << "chunk " << chunk;
  // Inside a field, after other keys that hold lookalike text.
  const std::string wrapped = R"({"note": "not [ the { list", "other": [{"q": "]"}], "rows": )" + text +
                              R"(, "after": {"k": ["}", "]"]}, "n": 3})";
  auto want2 = reference(wrapped, "rows");
  EXPECT_EQ(want2, want);
  for (size_t chunk : {1, 2, 3, 5, 8, 13, 4096}) ASSERT_EQ(read_all(wrapped, "rows", chunk), want) << chunk;
}

TEST(JsonSplit, EmptyListsAndWhiteSpace) {
  EXPECT_TRUE(read_all("[]", "", 1).empty());
  EXPECT_TRUE(read_all(" \n[ \r\n\t]\n ", "", 3).empty());
  EXPECT_TRUE(read_all(R"({"a": 1, "rows": []})", "rows", 2).empty());
  EXPECT_TRUE(read_all("\xEF\xBB\xBF[{\"a\": 1}]", "", 1).size() == 1);  // byte-order mark, as nlohmann allows
}

TEST(JsonSplit, LargeFileEqualsWholeParseAndHoldsChunkPlusLargestElement) {
  // 3,000 records after a 2 MiB unrelated key (a string with lookalike brackets and a list).
  std::string big(2 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 97) big[i] = "[]{}\",:"[i % 7];
  OJ root = OJ::object();
  root["description"] = big;
  root["meta"] = OJ::array();
  for (int i = 0; i < 2000; ++i) root["meta"].push_back(OJ{{"k", std::string(100, '[')}});
  root["rows"] = OJ::array();
  size_t largest = 0;
  for (int i = 0; i < 3000; ++i) {
    OJ r{{"id", i}, {"q", "question " + std::to_string(i) + " {\"[\\]\"} 😀"}, {"choices", {"a", "b", i % 7}}};
    largest = std::max(largest, r.dump().size());
    root["rows"].push_back(std::move(r));
  }
  root["tail"] = "after the list";
  const std::string text = root.dump(1);
  ASSERT_GT(text.size(), 2u << 20);

  std::istringstream in(text);
  constexpr size_t kChunk = 4096;
  JsonArrayReader r(in, "t.json", "rows", kChunk);
  auto want = reference(text, "rows");
  size_t i = 0, held = 0;
  while (auto j = r.next()) {
    ASSERT_LT(i, want.size());
    ASSERT_EQ(*j, want[i]) << "record " << i;
    held = std::max(held, r.held_bytes());
    ++i;
  }
  EXPECT_EQ(i, 3000u);
  // The 2 MiB key and the 200 KB list were skipped, not kept: chunk + largest element (indented) + slack.
  EXPECT_LT(held, kChunk + 4 * largest + 1024) << "largest " << largest;
  EXPECT_LT(held, 64u * 1024);

  // Through SplitReader (default 64 KiB chunks), as Docs, with the hash pass and a limit.
  TempDir tmp;
  write_file(tmp.path / "big.json", text);
  TaskCard c;
  c.file = (tmp.path / "card.yaml").string();
  c.name = "big";
  c.splits["test"] = DataSource{"json", (tmp.path / "big.json").string(), "", "", "", "rows", ""};
  std::string sha;
  auto docs = load_split(c, "test", LoadOptions{}, &sha);
  ASSERT_EQ(docs.size(), 3000u);
  for (size_t k = 0; k < docs.size(); ++k) {
    ASSERT_EQ(docs[k].index, k);
    ASSERT_EQ(docs[k].fields, want[k]);
  }
  EXPECT_EQ(sha.size(), 64u);
  LoadOptions lim;
  lim.limit = 5;
  EXPECT_EQ(load_split(c, "test", lim).size(), 5u);

  // A root list, streamed the same.
  const std::string list = root["rows"].dump();
  write_file(tmp.path / "list.json", list);
  c.splits["test"] = DataSource{"json", (tmp.path / "list.json").string(), "", "", "", "", ""};
  auto docs2 = load_split(c, "test", LoadOptions{});
  ASSERT_EQ(docs2.size(), 3000u);
  for (size_t k = 0; k < docs2.size(); ++k) ASSERT_EQ(docs2[k].fields, want[k]);
}

TEST(JsonSplit, LimitStopsBeforeTheMalformedRest) {
  TempDir tmp;
  write_file(tmp.path / "t.json", R"([{"a": 1}, {"a": 2}, {"a": )");  // truncated after two records
  TaskCard c;
  c.file = (tmp.path / "card.yaml").string();
  c.name = "t";
  c.splits["test"] = DataSource{"json", (tmp.path / "t.json").string(), "", "", "", "", ""};
  LoadOptions two;
  two.limit = 2;
  EXPECT_EQ(load_split(c, "test", two).size(), 2u);
  EXPECT_THROW(load_split(c, "test", LoadOptions{}), FormatError);
}

TEST(JsonSplit, MalformedFilesNameTheProblemAndWhere) {
  auto has = [](const std::string& msg, const std::string& part) {
    EXPECT_NE(msg.find(part), std::string::npos) << "message: " << msg << "\nexpected: " << part;
  };
  // Not JSON.
  has(error_of(""), "not JSON: the file is empty");
  has(error_of("  \n"), "not JSON: the file holds only white space");
  has(error_of("hello"), "not JSON: the document starts with 'h' at byte offset 0");
  // Root of the wrong kind.
  has(error_of(R"({"rows": []})"), "the root is an object, not a list of records (set 'field'");
  has(error_of(" 42"), "the root is a number, not a list of records");
  has(error_of(R"([{"a": 1}])", "rows"), "the root is a list, not an object holding field 'rows'");
  // Field missing / not a list.
  has(error_of(R"({"a": [1], "b": {"rows": []}})", "rows"), "no field 'rows' in the root object");
  has(error_of("{}", "rows"), "no field 'rows' in the root object");
  has(error_of(R"({"a": 1, "rows": {"x": 1}})", "rows"), "field 'rows' at byte offset 17 is an object, not a list");
  has(error_of(R"({"rows": "[{}]"})", "rows"), "field 'rows' at byte offset 9 is a string, not a list");
  // Elements.
  has(error_of(R"([{"a": 1}, 7])"), "record 2 (byte offset 11) of the root list is not a JSON object");
  has(error_of(R"([{"a": 1}, ["x"]])"), "record 2 (byte offset 11) of the root list is not a JSON object");
  EXPECT_EQ(error_of(R"({"rows": [{"a": "s"}]})", "rows"), "");
  has(error_of(R"({"rows": [{"a": tru}]})", "rows"),
      "record 1 (byte offset 10) of the list of field 'rows': invalid JSON: ");
  has(error_of(R"([{"a": 1,}])"), "record 1 (byte offset 1) of the root list: invalid JSON");
  has(error_of("[{\"a\": \"\xff\"}]"), "record 1 (byte offset 1) of the root list: invalid JSON");  // bad UTF-8
  has(error_of(R"([{"a": 1} {"a": 2}])"), "invalid JSON at byte offset 10 in the root list: expected ',' or ']' after record 1, found '{'");
  has(error_of(R"([{"a": 1},])"), "expected record 2, found ']'");
  has(error_of(R"([,{"a": 1}])"), "expected record 1, found ','");
  // Truncated.
  has(error_of(R"([{"a": 1}, {"a": "x)"), "truncated JSON: the file ends at byte offset 19 inside a string in record 2");
  has(error_of(R"([{"a": 1}, {"a": [1, 2)"), "truncated JSON: the file ends at byte offset 22 inside record 2");
  has(error_of(R"([{"a": 1},)"), "truncated JSON: the file ends at byte offset 10 inside the root list");
  has(error_of(R"([{"a": 1})"), "truncated JSON: the file ends at byte offset 9 inside the root list");
  has(error_of(R"({"meta": "long)", "rows"), "truncated JSON: the file ends at byte offset 14 inside a string in the value of key 'meta'");
  has(error_of(R"({"rows": [{"a": 1}])", "rows"), "truncated JSON: the file ends at byte offset 19 inside the root object");
  has(error_of(R"({"rows": )", "rows"), "truncated JSON: the file ends at byte offset 9 inside the value of field 'rows'");
  has(error_of(R"({"rows": [{"a": 1}], "x": 2, "rows": []})", "rows"),
      "field 'rows' appears twice in the root object (again at byte offset 29)");
  has(error_of(R"({"rows": [], "\u0072ows": []})", "rows"), "field 'rows' appears twice");
  // Trailing garbage.
  has(error_of(R"([{"a": 1}] x)"), "trailing garbage at byte offset 11 after the JSON document");
  has(error_of(R"([]])"), "trailing garbage at byte offset 2 after the JSON document");
  has(error_of(R"({"rows": []} {})", "rows"), "trailing garbage at byte offset 13 after the JSON document");
  // Structure of the root object around the field.
  has(error_of(R"({"a" 1, "rows": []})", "rows"), "invalid JSON at byte offset 5 in the root object: expected ':' after a key, found '1'");
  has(error_of(R"({"a": nope, "rows": []})", "rows"), "invalid JSON at byte offset 6 in the value of key 'a': 'nope' is not a value");
  has(error_of(R"({"rows": [], "z": 1 "y": 2})", "rows"), "expected ',' or '}', found '\"'");
  has(error_of(R"({"a": 1 "rows": []})", "rows"), "invalid JSON at byte offset 8 in the root object: expected ',' or '}', found '\"'");
}

TEST(JsonSplit, SplitReaderFailsOnTheShapeBeforeAnyRow) {
  TempDir tmp;
  write_file(tmp.path / "t.json", R"({"data": [{"a": 1}]})");
  TaskCard c;
  c.file = (tmp.path / "card.yaml").string();
  c.name = "t";
  c.splits["test"] = DataSource{"json", (tmp.path / "t.json").string(), "", "", "", "rows", ""};
  try {
    SplitReader r(c, "test", LoadOptions{});
    FAIL() << "expected an error";
  } catch (const FormatError& e) {
    EXPECT_EQ(e.where(), (tmp.path / "t.json").string());
    EXPECT_NE(std::string(e.what()).find("no field 'rows'"), std::string::npos) << e.what();
  }
  c.splits["test"].json_field = "data";
  SplitReader r(c, "test", LoadOptions{});
  auto d = r.next();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->fields, (OJ{{"a", 1}}));
  EXPECT_FALSE(r.next().has_value());
  EXPECT_FALSE(r.next().has_value());
}

}  // namespace
}  // namespace kaival::eval
