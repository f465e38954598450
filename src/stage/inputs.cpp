#include "stage/inputs.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"
#include "core/hash.h"

namespace kaival::stage {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
constexpr uintmax_t kMaxInputBytes = uintmax_t(1) << 30;  // a stage input above 1 GiB is a mistake

double finite_number(const json& v, const std::string& where, const std::string& key) {
  if (!v.is_number()) fail(where, "{}: expected a number", key);
  double d = v.get<double>();
  if (!std::isfinite(d)) fail(where, "{}: expected a finite number", key);
  return d;
}
}  // namespace

const std::string& InputSet::read(const std::string& path, const std::string& kind) {
  auto it = cache_.find(path);
  if (it != cache_.end()) return *it->second.second;
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  if (ec) fail<IoError>(relative(path), "cannot read {} file: {}", kind, ec.message());
  if (size > kMaxInputBytes) fail(relative(path), "{} bytes is too large for a {} file", size, kind);
  std::ifstream f(path, std::ios::binary);
  if (!f) fail<IoError>(relative(path), "cannot open {} file", kind);
  auto text = std::make_unique<std::string>(static_cast<size_t>(size), '\0');
  f.read(text->data(), static_cast<std::streamsize>(size));
  if (static_cast<uintmax_t>(f.gcount()) != size) fail<IoError>(relative(path), "short read");
  files_.push_back({relative(path), sha256_hex(*text), kind});
  auto& slot = cache_[path];
  slot = {files_.size() - 1, std::move(text)};
  return *slot.second;
}

std::string InputSet::relative(const std::string& path) const {
  auto rel = fs::path(path).lexically_relative(base_);
  if (rel.empty() || *rel.begin() == "..") return path;
  return rel.generic_string();
}

Source InputSet::source(const std::string& path, const std::string& key) const {
  auto it = cache_.find(path);
  std::string sha = it == cache_.end() ? "" : files_[it->second.first].sha256;
  return {relative(path), sha, key};
}

json parse_json_file(InputSet& in, const std::string& path, const std::string& kind) {
  const std::string& text = in.read(path, kind);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(in.relative(path), "not valid JSON: {}", e.what());
  }
}

// Calls f(object, where, line number) for each non-blank line of a JSON Lines
// input; a line that is not a JSON object fails with its number.
template <typename F>
static void for_each_json_line(InputSet& in, const std::string& path, const std::string& kind, F&& f) {
  const std::string& text = in.read(path, kind);
  std::string where = in.relative(path);
  size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      fail(where, "line {}: not valid JSON: {}", line_no, e.what());
    }
    if (!j.is_object()) fail(where, "line {}: expected an object", line_no);
    f(j, where, line_no);
  }
}

static void check_schema(const json& j, const std::string& where, const std::string& expected) {
  if (!j.is_object()) fail(where, "expected a JSON object");
  if (!j.contains("schema")) return;  // older writers omitted it; the shape is checked below
  if (!j["schema"].is_string()) fail(where, "schema: expected a string");
  std::string s = j["schema"];
  std::string name = expected.substr(0, expected.find('/'));
  if (s == expected || (s == name && j.value("schema_version", 1) == 1)) return;
  fail(where, "schema '{}' is not {}", s, expected);
}

EvalResults::EvalResults(InputSet& in, const std::string& dir) : in_(in), dir_(dir) {
  results_path_ = (fs::path(dir) / "results.json").string();
  results_ = parse_json_file(in, results_path_, "eval-results");
  std::string where = in.relative(results_path_);
  check_schema(results_, where, "kaival.eval-results/1");
  if (!results_.contains("results") || !results_["results"].is_object()) fail(where, "results: expected an object");
  if (results_.contains("model") && results_["model"].is_object() && results_["model"].contains("id") &&
      results_["model"]["id"].is_string())
    model_ = results_["model"]["id"];
}

TaskScores EvalResults::task(const std::string& task, const std::string& metric, const std::string& sample_metric) {
  TaskScores t;
  std::string where = in_.relative(results_path_);
  const json& r = results_["results"];
  if (r.contains(task)) {
    const json& tj = r[task];
    if (!tj.is_object()) fail(where, "results.{}: expected an object", task);
    if (tj.contains(metric)) {
      t.value = finite_number(tj[metric], where, fmt::format("results.{}.{}", task, metric));
      t.has_value = true;
      t.value_source = in_.source(results_path_, fmt::format("results.{}.{}", task, metric));
    }
  }
  std::string samples = (fs::path(dir_) / ("samples_" + task + ".jsonl")).string();
  if (!fs::exists(samples)) return t;
  for_each_json_line(in_, samples, "samples", [&](const json& j, const std::string& sw, size_t line_no) {
    if (!j.contains("doc_id") || !j.contains("metrics") || !j["metrics"].is_object())
      fail(sw, "line {}: expected an object with doc_id and metrics", line_no);
    const json& id = j["doc_id"];
    std::string sid = id.is_string() ? id.get<std::string>() : id.is_number_integer() ? std::to_string(id.get<long long>()) : "";
    if (sid.empty()) fail(sw, "line {}: doc_id must be a string or an integer", line_no);
    if (!j["metrics"].contains(sample_metric)) fail(sw, "line {}: metrics has no '{}'", line_no, sample_metric);
    const json& v = j["metrics"][sample_metric];
    double d = v.is_boolean() ? (v.get<bool>() ? 1.0 : 0.0) : finite_number(v, sw, fmt::format("line {}: metrics.{}", line_no, sample_metric));
    t.ids.push_back(std::move(sid));
    t.items.push_back(d);
  });
  t.items_source = in_.source(samples, fmt::format("{} items, metric {}", t.items.size(), sample_metric));
  if (!t.has_value && !t.items.empty()) {  // no aggregate: the mean of the items is the value
    double s = 0;
    for (double x : t.items) s += x;
    t.value = s / static_cast<double>(t.items.size());
    t.has_value = true;
    t.value_source = t.items_source;
  }
  return t;
}

static PanelScores read_panel(InputSet& in, const std::string& path, const std::string& kind, const std::string& schema,
                              const char* value_key) {
  json j = parse_json_file(in, path, kind);
  std::string where = in.relative(path);
  check_schema(j, where, schema);
  if (!j.contains("models") || !j["models"].is_array()) fail(where, "models: expected an array");
  PanelScores p;
  p.synthetic = j.value("synthetic", false);
  if (j.contains("method") && j["method"].is_string()) p.method = j["method"];
  if (j.contains("aggregation") && j["aggregation"].is_string()) p.method = j["aggregation"];
  size_t i = 0;
  for (const auto& m : j["models"]) {
    std::string key = fmt::format("models[{}]", i++);
    if (!m.is_object() || !m.contains("model") || !m["model"].is_string()) fail(where, "{}.model: expected a string", key);
    if (!m.contains(value_key)) fail(where, "{}.{}: missing", key, value_key);
    ScoreWithCi s;
    s.value = finite_number(m[value_key], where, key + "." + value_key);
    if (m.contains("ci_low") && m.contains("ci_high") && m["ci_low"].is_number() && m["ci_high"].is_number()) {
      s.ci_low = finite_number(m["ci_low"], where, key + ".ci_low");
      s.ci_high = finite_number(m["ci_high"], where, key + ".ci_high");
      s.has_ci = s.ci_high >= s.ci_low;
    }
    std::string model = m["model"];
    s.source = in.source(path, fmt::format("{} ({}).{}", key, model, value_key));
    if (!p.by_model.emplace(model, s).second) fail(where, "{}: model '{}' appears twice", key, model);
  }
  return p;
}

PanelScores read_expert_scores(InputSet& in, const std::string& path) {
  return read_panel(in, path, "expert-scores", "kaival.expert-scores/1", "score");
}
PanelScores read_ratings(InputSet& in, const std::string& path) {
  return read_panel(in, path, "ratings", "kaival.arena-ratings/1", "rating");
}

std::vector<Review> read_reviews(InputSet& in, const std::string& path, Source* src) {
  std::vector<Review> out;
  for_each_json_line(in, path, "reviews", [&](const json& j, const std::string& where, size_t line) {
    if (!j.contains("model") || !j["model"].is_string()) fail(where, "line {}: model: expected a string", line);
    Review r;
    r.model = j["model"];
    r.reviewer = j.value("reviewer", "");
    r.item = j.value("item", "");
    r.score = finite_number(j.value("score", json()), where, fmt::format("line {}: score", line));
    out.push_back(std::move(r));
  });
  if (src) *src = in.source(path, fmt::format("{} reviews", out.size()));
  return out;
}

std::vector<Battle> read_battles(InputSet& in, const std::string& path, Source* src) {
  std::vector<Battle> out;
  for_each_json_line(in, path, "battles", [&](const json& j, const std::string& where, size_t line) {
    if (!j.contains("model_a") || !j["model_a"].is_string() || !j.contains("model_b") || !j["model_b"].is_string() ||
        !j.contains("winner") || !j["winner"].is_string())
      fail(where, "line {}: expected model_a, model_b and winner strings", line);
    if (j.contains("flags") && j["flags"].is_array())
      for (const auto& f : j["flags"])
        if (f == "quarantined" || f == "identity_leak") return;  // excluded from ratings, as the arena does
    std::string w = j["winner"];
    Battle b{j["model_a"], j["model_b"], 0.5};
    if (w == "model_a") b.score_a = 1;
    else if (w == "model_b") b.score_a = 0;
    // tie and both_bad count half, as in the arena's fit
    else if (w != "tie" && w != "both_bad")
      fail(where, "line {}: winner '{}' is not model_a, model_b, tie or both_bad", line, w);
    if (b.a == b.b) fail(where, "line {}: a model cannot battle itself", line);
    out.push_back(std::move(b));
  });
  if (src) *src = in.source(path, fmt::format("{} battles", out.size()));
  return out;
}

std::optional<double> Perf::field(const std::string& dotted) const {
  const json* cur = &data;
  size_t pos = 0;
  while (true) {
    size_t dot = dotted.find('.', pos);
    std::string k = dotted.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (!cur->is_object() || !cur->contains(k)) return std::nullopt;
    cur = &(*cur)[k];
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  if (!cur->is_number()) return std::nullopt;
  double v = cur->get<double>();
  return std::isfinite(v) ? std::optional<double>(v) : std::nullopt;
}

namespace {

// The summary keys (docs/formats.md) from one run of a measurement: the percentiles as measured,
// throughputs, goodput, and a cost per 1M output tokens from the machine price (or, with API
// prices only, per 1M total tokens). Figures a run does not have (no completed request, no
// price) are left out, so program terms on them count as missing, not as zero.
json summarize_measurement(const json& m, const std::string& where, int concurrency) {
  const json& runs = m["runs"];
  if (!runs.is_array() || runs.empty()) fail(where, "runs: expected a non-empty array");
  std::string levels;
  const json* run = nullptr;
  for (size_t i = 0; i < runs.size(); ++i) {
    const json& r = runs[i];
    if (!r.is_object() || !r.contains("concurrency") || !r["concurrency"].is_number_integer())
      fail(where, "runs[{}]: expected an object with an integer concurrency", i);
    const int c = r["concurrency"].get<int>();
    levels += fmt::format("{}{}", levels.empty() ? "" : ", ", c);
    if (concurrency > 0 && c == concurrency) {
      if (run) fail(where, "two runs at concurrency {}", c);
      run = &r;
    }
  }
  if (concurrency > 0 && !run) fail(where, "no run at concurrency {} (runs at {})", concurrency, levels);
  if (concurrency == 0) {
    if (runs.size() != 1)
      fail(where, "{} runs (concurrency {}): name one in the program as perf: {{file: ..., concurrency: N}}", runs.size(), levels);
    run = &runs[0];
  }
  const json& r = *run;
  auto number = [&](const json& obj, const char* key, const std::string& at) -> std::optional<double> {
    if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return std::nullopt;
    if (!obj[key].is_number()) fail(where, "{}.{}: expected a number", at, key);
    return obj[key].get<double>();
  };
  const std::string at = fmt::format("runs[concurrency {}]", r["concurrency"].get<int>());
  auto text = [&](const char* key) { return m.contains(key) && m[key].is_string() ? m[key].get<std::string>() : std::string(); };
  json s{{"schema", "kaival.perf/1"},
         {"model", text("model")},
         {"endpoint", text("endpoint")},
         {"concurrency", r["concurrency"]}};
  for (const char* k : {"ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"}) {
    if (!r.contains(k)) continue;
    if (!r[k].is_object()) fail(where, "{}.{}: expected an object", at, k);
    if (number(r[k], "n", at + "." + k).value_or(0) <= 0) continue;  // no sample: no figure
    json d = json::object();
    for (const char* q : {"mean", "median", "p90", "p99"})
      if (auto v = number(r[k], q, at + "." + k)) d[q] = *v;
    s[k] = d;
  }
  const std::pair<const char*, const char*> keys[] = {{"completed", "requests"},
                                                      {"failed", "failed"},
                                                      {"output_throughput", "output_tokens_per_s"},
                                                      {"request_throughput", "requests_per_s"},
                                                      {"goodput", "goodput_rps"}};
  for (const auto& [from, to] : keys)
    if (auto v = number(r, from, at)) s[to] = *v;
  json price = json::object();
  if (m.contains("config") && m["config"].is_object() && m["config"].contains("price") && m["config"]["price"].is_object())
    price = m["config"]["price"];
  if (r.contains("cost") && r["cost"].is_object()) {
    const bool per_hour = number(price, "per_hour", "config.price").value_or(0) > 0;
    if (auto v = number(r["cost"], per_hour ? "usd_per_1m_output_tokens" : "api_usd_per_1m_total_tokens", at + ".cost"); v && *v > 0)
      s["cost_per_1m_tokens"] = *v;
  }
  s["price"] = price;
  s["manifest"] = {{"tool", "kaival perf"},
                   {"kaival_version", text("kaival_version")},
                   {"created", text("created")},
                   {"model_url", text("model_url")},
                   {"run_concurrency", r["concurrency"]}};
  return s;
}

}  // namespace

Perf read_perf(InputSet& in, const std::string& path, int concurrency) {
  Perf p;
  const std::string where = in.relative(path);
  p.data = parse_json_file(in, path, "perf");
  check_schema(p.data, where, "kaival.perf/1");
  if (p.data.contains("runs")) {
    p.data = summarize_measurement(p.data, where, concurrency);
  } else if (concurrency > 0) {
    fail(where, "a summary (one set of figures) has no runs to pick concurrency {} from", concurrency);
  }
  p.synthetic = p.data.value("synthetic", false);
  p.source = in.source(path, "");
  return p;
}

std::vector<LineageFinding> read_lineage(InputSet& in, const std::string& path, const std::string& label_in) {
  json j = parse_json_file(in, path, "lineage");
  std::string where = in.relative(path);
  if (!j.is_object() || j.value("schema", "") != "kaival.lineage-report" || j.value("schema_version", 0) != 1)
    fail(where, "not a kaival.lineage-report (schema_version 1)");
  if (!j.contains("pairs") || !j["pairs"].is_array()) fail(where, "pairs: expected an array");
  std::string label = label_in;
  if (label.empty()) {
    if (!j.contains("inputs") || !j["inputs"].is_array() || j["inputs"].empty() || !j["inputs"][0].contains("label"))
      fail(where, "inputs: no first input to take the team model's label from");
    label = j["inputs"][0]["label"].get<std::string>();
  }
  std::vector<LineageFinding> out;
  size_t i = 0;
  for (const auto& p : j["pairs"]) {
    std::string key = fmt::format("pairs[{}]", i++);
    if (!p.is_object() || !p.contains("a") || !p.contains("b") || !p.contains("verdict") || !p["verdict"].is_string())
      fail(where, "{}: expected a, b and verdict", key);
    std::string a = p["a"].get<std::string>(), b = p["b"].get<std::string>();
    if (a != label && b != label) continue;
    LineageFinding f;
    f.other = a == label ? b : a;
    f.verdict = p["verdict"];
    if (f.verdict != "independent" && f.verdict != "partial" && f.verdict != "derived")
      fail(where, "{}.verdict: '{}' is not independent, partial or derived", key, f.verdict);
    if (p.contains("log10_p") && p["log10_p"].is_number()) f.log10_p = p["log10_p"];
    if (p.contains("components") && p["components"].is_array()) {
      for (const auto& c : p["components"]) {
        if (!c.is_object() || !c.contains("kind") || !c.contains("verdict")) fail(where, "{}.components: expected kind and verdict", key);
        std::string kind = c["kind"], v = c["verdict"];
        if (v == "not_comparable") continue;
        auto& k = f.kinds[kind];
        k.second++;
        if (v == "derived") {
          k.first++;
          f.derived_components.emplace_back(c.value("name", kind), kind);
        }
      }
    }
    f.source = in.source(path, key + ".verdict");
    out.push_back(std::move(f));
  }
  if (out.empty()) fail(where, "no pair involves the model labelled '{}'", label);
  return out;
}

}  // namespace kaival::stage
