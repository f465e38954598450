// `kaival perf` against the mock server (SSE with an injected per-token delay,
// faults) and against kaival's own OpenAI server on the base-a fixture; the
// arrival generator, statistics, goodput and cost on their own.
#include "eval/perf.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>

#include "../support/fixture_sweep.h"
#include "../support/json_schema.h"
#include "core/error.h"
#include "mock_server.h"

namespace kaival::eval {
namespace {

using testing::MockFaults;
using testing::MockServer;
using json = nlohmann::json;
namespace fs = std::filesystem;

const testing_support::JsonSchema& perf_schema() {
  static const auto s = testing_support::JsonSchema::load(std::string(KAIVAL_SOURCE_DIR) + "/schemas/perf.schema.json");
  return s;
}

// What `kaival perf --out` would write for `rep` conforms to schemas/perf.schema.json.
void expect_perf_json_conforms(const PerfReport& rep) {
  auto errs = perf_schema().errors(perf_json(rep));
  EXPECT_TRUE(errs.empty()) << testing_support::join_errors(errs);
}

PerfOptions mock_options(const MockServer& mock) {
  PerfOptions o;
  o.model_url = mock.url();
  o.num_prompts = 8;
  o.input_len = 6;
  o.output_len = 5;
  o.timeout_s = 10;
  o.seed = 3;
  return o;
}

TEST(PerfArrivals, PoissonMeanRateAndExponentialGaps) {
  const double rate = 10;
  auto t = poisson_arrivals(4001, rate, 42);
  ASSERT_EQ(t.size(), 4001u);
  EXPECT_EQ(t[0], 0.0);
  std::vector<double> gaps;
  for (size_t i = 1; i < t.size(); ++i) {
    ASSERT_GE(t[i], t[i - 1]);
    gaps.push_back(t[i] - t[i - 1]);
  }
  double mean = std::accumulate(gaps.begin(), gaps.end(), 0.0) / gaps.size();
  double var = 0;
  for (double g : gaps) var += (g - mean) * (g - mean);
  double cv = std::sqrt(var / gaps.size()) / mean;
  EXPECT_NEAR(1.0 / mean, rate, rate * 0.05);  // 4000 gaps: the mean's sd is ~1.6%
  EXPECT_NEAR(cv, 1.0, 0.08);                  // exponential: sd == mean
  // Same seed, same times; another seed, other times.
  EXPECT_EQ(poisson_arrivals(4001, rate, 42), t);
  EXPECT_NE(poisson_arrivals(4001, rate, 43), t);
  // rate inf: everything at once.
  for (double x : poisson_arrivals(10, std::numeric_limits<double>::infinity(), 1)) EXPECT_EQ(x, 0.0);
}

TEST(PerfStats, PercentilesInterpolateLikeNumpy) {
  auto s = latency_stats_ms({0.001, 0.002, 0.003, 0.004, 0.010});
  EXPECT_EQ(s.n, 5u);
  EXPECT_NEAR(s.mean, 4.0, 1e-9);
  EXPECT_NEAR(s.median, 3.0, 1e-9);
  EXPECT_NEAR(s.p90, 7.6, 1e-9);   // numpy.percentile([1,2,3,4,10], 90)
  EXPECT_NEAR(s.p99, 9.76, 1e-9);
  EXPECT_EQ(latency_stats_ms({}).n, 0u);
}

RequestRecord rec(double ttft, double e2e, int64_t out, bool ok = true) {
  RequestRecord r;
  r.ok = ok;
  r.ttft_s = ttft;
  r.e2e_s = e2e;
  r.output_tokens = out;
  r.input_tokens = 10;
  r.usage_reported = true;
  if (out > 1) r.tpot_s = (e2e - ttft) / (out - 1);
  if (!ok) r.error = "HTTP 500: boom";
  return r;
}

TEST(PerfSummary, GoodputCountsOnlyRequestsMeetingEverySlo) {
  std::vector<RequestRecord> rs = {
      rec(0.050, 0.150, 11),  // ttft 50 ms, tpot 10 ms: good
      rec(0.200, 0.300, 11),  // ttft too slow
      rec(0.050, 0.550, 11),  // tpot 50 ms: too slow
      rec(0.080, 0.080, 1),   // one token: no TPOT, meets it
      rec(0, 0, 0, false),    // failed: never good
  };
  PerfSlo slo;
  slo.ttft_ms = 100;
  slo.tpot_ms = 20;
  PerfPrice price;
  price.per_hour = 3.6;  // 0.001 USD per second
  price.per_1m_input = 1;
  price.per_1m_output = 2;
  auto r = summarize_run(rs, 2.0, 4, 1.0, slo, price);
  EXPECT_EQ(r.sent, 5u);
  EXPECT_EQ(r.completed, 4u);
  EXPECT_EQ(r.failed, 1u);
  EXPECT_EQ(r.failures.at("HTTP 500: boom"), 1u);
  EXPECT_EQ(r.good_requests, 2u);
  ASSERT_TRUE(r.goodput);
  EXPECT_DOUBLE_EQ(*r.goodput, 1.0);
  EXPECT_DOUBLE_EQ(r.request_throughput, 2.0);
  EXPECT_EQ(r.output_tokens, 34);
  EXPECT_EQ(r.input_tokens, 40);
  EXPECT_DOUBLE_EQ(r.output_throughput, 17.0);
  EXPECT_EQ(r.tpot.n, 3u);  // the one-token request has no TPOT
  ASSERT_TRUE(r.cost);
  EXPECT_NEAR(r.cost->usd_per_1m_output_tokens, 0.001 / 17.0 * 1e6, 1e-6);
  EXPECT_NEAR(r.cost->usd_per_1m_total_tokens, 0.001 / 37.0 * 1e6, 1e-6);
  EXPECT_NEAR(r.cost->api_run_usd, 40e-6 * 1 + 34e-6 * 2, 1e-12);
  // A tighter TTFT objective leaves fewer good requests; no objective, no goodput.
  slo.ttft_ms = 60;
  EXPECT_EQ(summarize_run(rs, 2.0, 4, 1.0, slo, {}).good_requests, 1u);
  EXPECT_FALSE(summarize_run(rs, 2.0, 4, 1.0, {}, {}).goodput);
  EXPECT_FALSE(summarize_run(rs, 2.0, 4, 1.0, {}, {}).cost);
}

TEST(PerfMock, StreamsMeasureTtftItlAndTokensFromUsage) {
  MockFaults f;
  f.stream_max_tokens = true;
  f.token_delay_ms = 20;
  f.latency_ms = 30;
  MockServer mock(f);
  mock.start();
  PerfOptions o = mock_options(mock);
  o.max_concurrency = 4;
  auto rep = run_perf(o);
  ASSERT_EQ(rep.runs.size(), 1u);
  const auto& r = rep.runs[0];
  EXPECT_EQ(rep.model, "mock-model");
  EXPECT_EQ(r.sent, 8u);
  EXPECT_EQ(r.completed, 8u) << (r.failures.empty() ? "" : r.failures.begin()->first);
  EXPECT_EQ(r.failed, 0u);
  EXPECT_EQ(mock.completed(), 8);
  EXPECT_EQ(r.usage_reported, 8u);
  EXPECT_EQ(r.output_tokens, 8 * 5);
  EXPECT_EQ(r.input_tokens, 8 * 6);  // the mock's usage counts the six words
  for (const auto& q : r.requests) {
    EXPECT_TRUE(q.ok);
    EXPECT_EQ(q.output_tokens, 5);
    EXPECT_EQ(q.itl_s.size(), 4u);
    EXPECT_GE(q.ttft_s, 0.025);
    EXPECT_LE(q.ttft_s, q.e2e_s);
    EXPECT_NEAR(q.tpot_s, (q.e2e_s - q.ttft_s) / 4, 1e-12);
  }
  EXPECT_EQ(r.itl.n, 8u * 4);
  EXPECT_GE(r.itl.median, 15.0);
  EXPECT_LE(r.itl.median, 60.0);
  EXPECT_GE(r.tpot.median, 15.0);
  EXPECT_LE(r.tpot.median, 60.0);
  EXPECT_GE(r.e2e.median, 30.0 + 4 * 15.0);
  EXPECT_GT(r.request_throughput, 0);
  EXPECT_NEAR(r.output_throughput, 40 / r.duration_s, 1e-9);
}

TEST(PerfMock, CountsChunksWhenTheServerSendsNoUsageAndUsesChat) {
  MockServer mock;  // the default mock: answer "I do not know." in 3-character chunks, no usage
  mock.start();
  PerfOptions o = mock_options(mock);
  o.chat = true;
  o.num_prompts = 3;
  auto rep = run_perf(o);
  const auto& r = rep.runs[0];
  EXPECT_EQ(rep.endpoint, "chat/completions");
  EXPECT_EQ(r.completed, 3u);
  EXPECT_EQ(r.usage_reported, 0u);
  for (const auto& q : r.requests) EXPECT_EQ(q.output_tokens, 5);  // "I d" "o n" "ot " "kno" "w."
  EXPECT_EQ(r.input_tokens, 3 * 6);  // the synthetic prompt's word count
}

TEST(PerfMock, FailuresAreCountedWithReasonsNotFatal) {
  MockFaults f;
  f.stream_max_tokens = true;
  f.error500_first = 2;
  f.cut_stream_first = 2;
  MockServer mock(f);
  mock.start();
  PerfOptions o = mock_options(mock);
  o.max_concurrency = 1;  // requests reach the mock in order, so faults hit the first four
  auto rep = run_perf(o);
  const auto& r = rep.runs[0];
  EXPECT_EQ(r.sent, 8u);
  EXPECT_EQ(r.failed, 4u);
  EXPECT_EQ(r.completed, 4u);
  EXPECT_EQ(mock.posts(), 8);  // no retries
  size_t http500 = 0, cut = 0;
  for (const auto& [why, k] : r.failures) {
    if (why.find("HTTP 500") != std::string::npos) http500 += k;
    if (why.find("stream cut") != std::string::npos) cut += k;
  }
  EXPECT_EQ(http500, 2u);
  EXPECT_EQ(cut, 2u);
  for (size_t i = 0; i < 4; ++i) EXPECT_FALSE(r.requests[i].ok);
  for (size_t i = 4; i < 8; ++i) EXPECT_TRUE(r.requests[i].ok);
  EXPECT_EQ(r.ttft.n, 4u);
  expect_perf_json_conforms(rep);  // failed requests: error set, latencies null
}

TEST(PerfMock, UnreachableServerFailsEveryRequestWithoutThrowing) {
  MockServer mock;
  mock.start();
  PerfOptions o = mock_options(mock);
  mock.stop();
  o.served_model = "m";  // skip GET /v1/models
  o.num_prompts = 3;
  auto rep = run_perf(o);
  EXPECT_EQ(rep.runs[0].failed, 3u);
  EXPECT_EQ(rep.runs[0].completed, 0u);
  expect_perf_json_conforms(rep);  // no latencies at all
}

TEST(PerfMock, PoissonRunSendsAtTheGeneratedTimes) {
  MockFaults f;
  f.stream_max_tokens = true;
  f.keep_alive = false;
  MockServer mock(f);
  mock.start();
  PerfOptions o = mock_options(mock);
  o.num_prompts = 10;
  o.rate = 20;
  o.max_concurrency = 10;
  auto rep = run_perf(o);
  const auto& r = rep.runs[0];
  ASSERT_EQ(r.completed, 10u);
  auto expect = poisson_arrivals(10, 20, o.seed);
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_GE(r.requests[i].start_s, expect[i] - 0.001) << i;
    EXPECT_LE(r.requests[i].start_s, expect[i] + 0.15) << i;
  }
  EXPECT_GE(r.duration_s, expect.back());
}

TEST(PerfMock, DurationCapStopsSendingNewRequests) {
  MockFaults f;
  f.stream_max_tokens = true;
  MockServer mock(f);
  mock.start();
  PerfOptions o = mock_options(mock);
  o.num_prompts = 200;
  o.rate = 10;  // ~20 s for all of them
  o.duration_s = 0.5;
  auto t0 = std::chrono::steady_clock::now();
  auto rep = run_perf(o);
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto expect = poisson_arrivals(200, 10, o.seed);
  size_t due = static_cast<size_t>(std::count_if(expect.begin(), expect.end(), [](double t) { return t < 0.5; }));
  EXPECT_EQ(rep.runs[0].sent, due);
  EXPECT_EQ(rep.runs[0].completed, due);
  EXPECT_LT(wall, 5.0);
}

TEST(PerfMock, SweepRunsClosedLoopsAndWritesJsonAndHtml) {
  MockFaults f;
  f.stream_max_tokens = true;
  f.token_delay_ms = 5;
  MockServer mock(f);
  mock.start();
  PerfOptions o = mock_options(mock);
  o.sweep = {1, 2, 4};
  o.slo.ttft_ms = 10000;
  o.price.per_hour = 2.5;
  auto rep = run_perf(o);
  ASSERT_EQ(rep.runs.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rep.runs[i].concurrency, o.sweep[i]);
    EXPECT_EQ(rep.runs[i].completed, 8u);
    ASSERT_TRUE(rep.runs[i].goodput);
    EXPECT_EQ(rep.runs[i].good_requests, 8u);
  }
  EXPECT_EQ(mock.completed(), 24);
  // At concurrency 1 requests never overlap: each starts after the previous ended.
  const auto& c1 = rep.runs[0].requests;
  for (size_t i = 1; i < c1.size(); ++i) EXPECT_GE(c1[i].start_s, c1[i - 1].start_s + c1[i - 1].e2e_s - 1e-6);

  auto j = perf_json(rep);
  EXPECT_EQ(j["schema"], "kaival.perf/1");
  auto errs = perf_schema().errors(j);  // with SLO (goodput) and price (cost)
  EXPECT_TRUE(errs.empty()) << testing_support::join_errors(errs);
  auto broken = j;
  broken["runs"][1]["ttft_ms"].erase("p99");
  EXPECT_FALSE(perf_schema().errors(broken).empty());
  EXPECT_EQ(j["runs"].size(), 3u);
  EXPECT_EQ(j["runs"][2]["concurrency"], 4);
  EXPECT_EQ(j["runs"][0]["requests"].size(), 8u);
  EXPECT_EQ(j["config"]["rate"], "inf");
  EXPECT_GT(j["runs"][0]["cost"]["usd_per_1m_output_tokens"].get<double>(), 0);
  // Every key the JSON has is documented in docs/eval.md's kaival.perf/1 section, and vice versa for
  // the top-level, run and statistics keys.
  std::ifstream in(std::string(KAIVAL_SOURCE_DIR) + "/docs/eval.md");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string doc = ss.str();
  auto at = doc.find("kaival.perf/1");
  ASSERT_NE(at, std::string::npos) << "docs/eval.md documents no kaival.perf/1";
  auto end = doc.find("\n## ", at);
  std::string section = doc.substr(at, end == std::string::npos ? std::string::npos : end - at);
  std::set<std::string> keys;
  auto collect = [&](const nlohmann::ordered_json& obj) {
    for (auto it = obj.begin(); it != obj.end(); ++it) keys.insert(it.key());
  };
  collect(j);
  collect(j["config"]);
  collect(j["config"]["slo"]);
  collect(j["config"]["price"]);
  const auto& run0 = j["runs"][0];
  collect(run0);
  collect(run0["ttft_ms"]);
  collect(run0["cost"]);
  collect(run0["requests"][0]);
  for (const auto& k : keys) EXPECT_NE(section.find("`" + k + "`"), std::string::npos) << "undocumented key " << k;

  std::string html = perf_html(rep);
  EXPECT_NE(html.find("<svg id=\"chart-throughput\""), std::string::npos);
  EXPECT_NE(html.find("<svg id=\"chart-ttft\""), std::string::npos);
  EXPECT_NE(html.find("<svg id=\"chart-cdf-0\""), std::string::npos);
  EXPECT_NE(html.find("<polyline"), std::string::npos);
  EXPECT_EQ(html.find("nan"), std::string::npos);
  std::string table = perf_table(rep);
  EXPECT_NE(table.find("Median ITL (ms):"), std::string::npos);
  EXPECT_NE(table.find("Request goodput"), std::string::npos);
}

TEST(PerfSchema, SummaryFilesTheStageReadsConformToo) {
  // The one-line summaries (the demo's, the stage fixtures') are the schema's other form.
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(std::string(KAIVAL_TESTDATA) + "/stage")) {
    if (e.path().parent_path().filename() != "perf" || e.path().extension() != ".json") continue;
    ++n;
    std::ifstream in(e.path());
    auto j = json::parse(in);
    auto errs = perf_schema().errors(j);
    EXPECT_TRUE(errs.empty()) << e.path() << ": " << testing_support::join_errors(errs);
    j.erase("requests");
    EXPECT_FALSE(perf_schema().errors(j).empty()) << e.path();
  }
  EXPECT_GE(n, 5u);
}

TEST(PerfPrompts, JsonlFileIsReadAndBadLinesNamed) {
  auto dir = fs::temp_directory_path() / ("kaival_perf_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto good = (dir / "p.jsonl").string();
  {
    std::ofstream(good) << "{\"prompt\": \"one two three\"}\n\n{\"prompt\": \"안녕 하세요\", \"x\": 1}\n";
  }
  auto ps = load_prompts_jsonl(good);
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(ps[0].text, "one two three");
  EXPECT_EQ(ps[0].input_tokens_hint, 3);
  EXPECT_EQ(ps[1].input_tokens_hint, 2);
  auto bad = (dir / "bad.jsonl").string();
  {
    std::ofstream(bad) << "{\"prompt\": \"ok\"}\n{\"text\": \"no prompt\"}\n";
  }
  try {
    load_prompts_jsonl(bad);
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_prompts_jsonl((dir / "missing.jsonl").string()), IoError);

  // A file run cycles through its prompts; the mock records what it was sent.
  MockFaults f;
  f.stream_max_tokens = true;
  MockServer mock(f);
  mock.start();
  PerfOptions o = mock_options(mock);
  o.prompts_file = good;
  o.num_prompts = 4;
  o.max_concurrency = 1;
  auto rep = run_perf(o);
  EXPECT_EQ(rep.runs[0].completed, 4u);
  auto served = mock.served_prompts();
  ASSERT_EQ(served.size(), 4u);
  EXPECT_EQ(served[0], "one two three");
  EXPECT_EQ(served[1], "안녕 하세요");
  EXPECT_EQ(served[2], "one two three");
  fs::remove_all(dir);
}

// kaival's own OpenAI server on the tiny base-a fixture: usage arrives in the
// final chunk and ignore_eos makes every answer exactly max_tokens long.
TEST(PerfKaivalServer, SweepAgainstTheFixtureModel) {
  auto rep = testing_support::sweep_fixture_model();
  EXPECT_EQ(rep.model, "base-a");
  ASSERT_EQ(rep.runs.size(), 2u);
  for (const auto& r : rep.runs) {
    EXPECT_EQ(r.completed, 4u) << (r.failures.empty() ? "" : r.failures.begin()->first);
    EXPECT_EQ(r.usage_reported, 4u);
    EXPECT_EQ(r.output_tokens, 4 * 6);
    EXPECT_GT(r.input_tokens, 0);
    for (const auto& q : r.requests) {
      EXPECT_EQ(q.output_tokens, 6);
      EXPECT_LE(q.ttft_s, q.e2e_s);
      EXPECT_GT(q.ttft_s, 0);
    }
    EXPECT_GT(r.output_throughput, 0);
  }
}

}  // namespace
}  // namespace kaival::eval
