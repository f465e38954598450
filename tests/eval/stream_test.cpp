// Streaming evaluation: a run holds one window of rows, never the dataset, and
// scores exactly as a run that takes every row in one window. The bound is read
// from the runner's RunStats (rows and requests held at once), so a runner that
// loads the whole split fails here.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "eval/runner.h"
#include "eval/task.h"
#include "mock_server.h"
#include "../support/files.h"

namespace kaival::eval {
namespace {

namespace fs = std::filesystem;
using testing::MockServer;
using OJ = nlohmann::ordered_json;

using kaival::testing_support::read_file;

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("kaival_stream_" + std::to_string(getpid()));
  TempDir() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// A generate_until task over `rows` rows: even rows ask what the mock answers "yes" to.
std::string write_task(const fs::path& dir, size_t rows) {
  {
    std::ofstream d(dir / "rows.jsonl", std::ios::binary);
    for (size_t i = 0; i < rows; ++i)
      d << OJ{{"id", "r" + std::to_string(i)}, {"q", "item " + std::to_string(i) + (i % 2 ? " kind odd" : " kind even")},
              {"a", i % 2 ? "no" : "yes"}}
               .dump()
        << '\n';
  }
  std::ofstream c(dir / "stream.yaml", std::ios::binary);
  c << "schema: kaival.task/1\nname: stream_gen\nversion: \"1.0\"\n"
       "splits:\n  test: {path: rows.jsonl, format: jsonl}\n"
       "request: generate_until\ndoc_id: \"{{ id }}\"\nprompt: \"Q: {{ q }}\\nA:\"\ntarget: \"{{ a }}\"\n"
       "generation: {max_tokens: 4}\nmetrics: [exact_match]\n";
  return (dir / "stream.yaml").string();
}

RunOptions options(const MockServer& m, const fs::path& out, size_t window, RunStats* stats) {
  RunOptions o;
  o.model_url = m.url();
  o.progress = false;
  o.client.concurrency = 4;
  o.out_dir = out.string();
  o.window = window;
  o.stats = stats;
  o.bootstrap = 100;
  return o;
}

TEST(Stream, ManyRowsAreHeldOneWindowAtATime) {
  constexpr size_t kRows = 3000, kWindow = 32;
  TempDir tmp;
  std::string card = write_task(tmp.path, kRows);
  MockServer mock;
  mock.add_answer("kind even", "yes");
  mock.start();

  RunStats streamed;
  auto a = run_eval({card}, options(mock, tmp.path / "a", kWindow, &streamed));
  // This window and the next one, read ahead while this one is sent and scored.
  EXPECT_LE(streamed.max_items_held, 2 * kWindow);
  EXPECT_LE(streamed.max_requests_held, 2 * kWindow);  // one request per row
  EXPECT_GE(streamed.chunks, kRows / kWindow);
  EXPECT_GE(streamed.prefetched, streamed.chunks - 1);
  const auto& res = a["results"]["stream_gen"];
  EXPECT_EQ(res["n"].get<size_t>(), kRows);
  EXPECT_DOUBLE_EQ(res["exact_match,none"].get<double>(), 0.5);
  EXPECT_EQ(a["manifest"]["requests"]["total"].get<size_t>(), kRows);

  // Samples keep the dataset's order.
  std::ifstream s(tmp.path / "a" / "samples_stream_gen.jsonl");
  std::string line;
  size_t i = 0;
  while (std::getline(s, line)) {
    auto rec = OJ::parse(line);
    ASSERT_EQ(rec["doc_id"], "r" + std::to_string(i)) << "line " << i + 1;
    ++i;
  }
  EXPECT_EQ(i, kRows);

  // The same rows in a single window score identically, sample for sample.
  RunStats whole;
  auto b = run_eval({card}, options(mock, tmp.path / "b", kRows + 1, &whole));
  EXPECT_EQ(whole.max_items_held, kRows);  // the counter does see a whole-dataset window
  EXPECT_EQ(a["results"].dump(), b["results"].dump());
  EXPECT_EQ(read_file(tmp.path / "a" / "samples_stream_gen.jsonl"), read_file(tmp.path / "b" / "samples_stream_gen.jsonl"));

  // Without read-ahead: one window at a time, the same results.
  RunStats one;
  RunOptions o = options(mock, tmp.path / "c", kWindow, &one);
  o.prefetch = false;
  auto c = run_eval({card}, o);
  EXPECT_LE(one.max_items_held, kWindow);
  EXPECT_LE(one.max_requests_held, kWindow);
  EXPECT_EQ(one.prefetched, 0u);
  EXPECT_EQ(one.chunks, streamed.chunks);
  EXPECT_EQ(c["results"].dump(), a["results"].dump());
  EXPECT_EQ(read_file(tmp.path / "c" / "samples_stream_gen.jsonl"), read_file(tmp.path / "a" / "samples_stream_gen.jsonl"));
}

TEST(Stream, DefaultWindowIsBoundedByConcurrency) {
  TempDir tmp;
  std::string card = write_task(tmp.path, 600);
  MockServer mock;
  mock.start();
  RunStats st;
  auto r = run_eval({card}, options(mock, tmp.path / "a", 0, &st));
  EXPECT_EQ(r["results"]["stream_gen"]["n"].get<size_t>(), 600u);
  EXPECT_LE(st.max_items_held, 2 * 64u);  // two windows of max(64, 8 x concurrency 4)
  EXPECT_GE(st.chunks, 600u / 64u);
}

TEST(Stream, SplitReaderReadsCsvRecordByRecordAsParseCsv) {
  TempDir tmp;
  const std::string text =
      "\xEF\xBB\xBFq,a\r\n\"multi\nline, quoted \"\"x\"\"\",1\n\nplain,2\r\nlast,\"3\"";
  {
    std::ofstream f(tmp.path / "t.csv", std::ios::binary);
    f << text;
  }
  TaskCard c;
  c.file = (tmp.path / "card.yaml").string();
  c.name = "csv";
  c.splits["test"] = DataSource{"csv", (tmp.path / "t.csv").string(), "", "", "", "", ""};
  SplitReader r(c, "test", LoadOptions{});
  auto want = parse_csv(text, ',', "t.csv");
  ASSERT_EQ(want.size(), 3u);
  for (size_t i = 0; i < want.size(); ++i) {
    auto d = r.next();
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(d->index, i);
    EXPECT_EQ(d->fields, want[i]);
  }
  EXPECT_FALSE(r.next().has_value());
  EXPECT_EQ(want[0]["q"], "multi\nline, quoted \"x\"");

  LoadOptions two;
  two.limit = 2;
  auto docs = load_split(c, "test", two);
  EXPECT_EQ(docs.size(), 2u);
}

}  // namespace
}  // namespace kaival::eval
