#include "eval/compare.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "core/error.h"
#include "core/hash.h"
#include "core/text.h"
#include "core/version.h"

namespace kaival::eval {

namespace fs = std::filesystem;
using OJ = nlohmann::ordered_json;

namespace {

struct Loaded {
  fs::path dir;
  std::string file;
  OJ results;
};

Loaded load(const std::string& path) {
  Loaded l;
  fs::path p(path);
  if (fs::is_directory(p)) p /= "results.json";
  l.file = p.string();
  l.dir = p.parent_path();
  std::ifstream f(p);
  if (!f) fail<IoError>(l.file, "cannot open");
  l.results = OJ::parse(f, nullptr, false);
  if (l.results.is_discarded() || !l.results.is_object()) fail(l.file, "not valid JSON");
  std::string schema = l.results.value("schema", "");
  if (schema != "kaival.eval-results/1") fail(l.file, "schema '{}' is not kaival.eval-results/1", schema);
  return l;
}

// The task's primary metric: the first "<m>,none" that is not a stderr.
std::string primary_metric(const OJ& res) {
  for (auto it = res.begin(); it != res.end(); ++it) {
    const std::string& k = it.key();
    if (k.size() > 5 && k.compare(k.size() - 5, 5, ",none") == 0 && k.find("_stderr") == std::string::npos)
      return k.substr(0, k.size() - 5);
  }
  return "";
}

std::map<std::string, double> item_scores(const Loaded& l, const std::string& task, const std::string& metric) {
  std::map<std::string, double> out;
  std::ifstream f(l.dir / ("samples_" + task + ".jsonl"));
  if (!f) return out;
  std::string line;
  while (std::getline(f, line)) {
    auto j = OJ::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("doc_id") || !j.contains("metrics") || !j["metrics"].contains(metric)) continue;
    out[j["doc_id"].is_string() ? j["doc_id"].get<std::string>() : j["doc_id"].dump()] = j["metrics"][metric].get<double>();
  }
  return out;
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  double pos = q * double(v.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(v.size() - 1, lo + 1);
  return v[lo] + (pos - double(lo)) * (v[hi] - v[lo]);
}

double ratio(double a, double b) { return b == 0 ? NAN : a / b; }

OJ num(double x) { return std::isfinite(x) ? OJ(x) : OJ(nullptr); }

}  // namespace

OJ compare_results(const std::string& team_path, const std::string& target_path, const CompareOptions& opt) {
  Loaded team = load(team_path), target = load(target_path);
  std::vector<std::string> tasks = opt.tasks;
  if (tasks.empty())
    for (auto it = team.results["results"].begin(); it != team.results["results"].end(); ++it)
      if (target.results["results"].contains(it.key())) tasks.push_back(it.key());
  if (tasks.empty()) fail(team.file, "no task in common with {}", target.file);
  std::mt19937_64 rng(opt.seed);
  struct Bench {
    std::string task, metric;
    double team = 0, target = 0;
    std::vector<double> a, b;  // matched items
  };
  std::vector<Bench> benches;
  OJ rows = OJ::array();
  for (const auto& t : tasks) {
    if (!team.results["results"].contains(t)) fail(team.file, "no results for task '{}'", t);
    if (!target.results["results"].contains(t)) fail(target.file, "no results for task '{}'", t);
    Bench b;
    b.task = t;
    b.metric = primary_metric(team.results["results"][t]);
    if (b.metric.empty() || !target.results["results"][t].contains(b.metric + ",none"))
      fail(target.file, "task '{}' has no metric '{}'", t, b.metric);
    b.team = team.results["results"][t][b.metric + ",none"].get<double>();
    b.target = target.results["results"][t][b.metric + ",none"].get<double>();
    auto sa = item_scores(team, t, b.metric), sb = item_scores(target, t, b.metric);
    for (const auto& [id, v] : sa) {
      auto f = sb.find(id);
      if (f == sb.end()) continue;
      b.a.push_back(v);
      b.b.push_back(f->second);
    }
    // Bootstrap over matched items for the ratio; sign-flip test for the mean difference.
    OJ row = {{"task", t}, {"metric", b.metric}, {"team", b.team}, {"target", b.target}, {"ratio", num(ratio(b.team, b.target))},
              {"matched", b.a.size()}};
    const size_t n = b.a.size();
    if (n > 0) {
      std::uniform_int_distribution<size_t> pick(0, n - 1);
      std::vector<double> rs;
      for (int r = 0; r < opt.resamples; ++r) {
        double x = 0, y = 0;
        for (size_t i = 0; i < n; ++i) {
          size_t k = pick(rng);
          x += b.a[k];
          y += b.b[k];
        }
        if (y > 0) rs.push_back(x / y);
      }
      double obs = 0;
      for (size_t i = 0; i < n; ++i) obs += b.a[i] - b.b[i];
      obs /= double(n);
      std::bernoulli_distribution coin(0.5);
      int extreme = 0;
      for (int r = 0; r < opt.resamples; ++r) {
        double s = 0;
        for (size_t i = 0; i < n; ++i) s += coin(rng) ? (b.a[i] - b.b[i]) : -(b.a[i] - b.b[i]);
        if (std::fabs(s / double(n)) >= std::fabs(obs) - 1e-12) ++extreme;
      }
      row["ci_low"] = num(quantile(rs, 0.025));
      row["ci_high"] = num(quantile(rs, 0.975));
      row["mean_diff"] = obs;
      row["p_value"] = (extreme + 1.0) / (opt.resamples + 1.0);
    }
    rows.push_back(row);
    benches.push_back(std::move(b));
  }
  // Overall: ratio of simple means of the per-benchmark scores; items resampled within each benchmark.
  double tm = 0, gm = 0;
  for (const auto& b : benches) {
    tm += b.team;
    gm += b.target;
  }
  tm /= double(benches.size());
  gm /= double(benches.size());
  std::vector<double> rs;
  bool all_matched = std::all_of(benches.begin(), benches.end(), [](const Bench& b) { return !b.a.empty(); });
  if (all_matched) {
    for (int r = 0; r < opt.resamples; ++r) {
      double x = 0, y = 0;
      for (const auto& b : benches) {
        std::uniform_int_distribution<size_t> pick(0, b.a.size() - 1);
        double sx = 0, sy = 0;
        for (size_t i = 0; i < b.a.size(); ++i) {
          size_t k = pick(rng);
          sx += b.a[k];
          sy += b.b[k];
        }
        x += sx / double(b.a.size());
        y += sy / double(b.a.size());
      }
      if (y > 0) rs.push_back(x / y);
    }
  }
  OJ out = OJ::object();
  out["schema"] = "kaival.compare/1";
  out["team"] = {{"model", team.results["model"].value("id", "")}, {"file", team.file}};
  out["target"] = {{"model", target.results["model"].value("id", "")}, {"file", target.file}};
  out["benchmarks"] = rows;
  out["overall"] = {{"team_mean", tm}, {"target_mean", gm}, {"ratio", num(ratio(tm, gm))},
                    {"ci_low", rs.empty() ? OJ(nullptr) : num(quantile(rs, 0.025))},
                    {"ci_high", rs.empty() ? OJ(nullptr) : num(quantile(rs, 0.975))}};
  out["manifest"] = {{"kaival_version", kVersion},
                     {"inputs", {{{"path", team.file}, {"sha256", sha256_file(team.file)}},
                                 {{"path", target.file}, {"sha256", sha256_file(target.file)}}}},
                     {"parameters", {{"resamples", opt.resamples}, {"seed", opt.seed}}}};
  return out;
}

std::string compare_table(const OJ& c) {
  auto f = [](const OJ& x, const char* fmtstr) {
    if (!x.is_number()) return std::string("-");
    if (std::string_view(fmtstr) == "pct") return fmt::format("{:.1f}%", 100.0 * x.get<double>());
    return fmt::format(fmt::runtime(fmtstr), x.get<double>());
  };
  std::vector<std::array<std::string, 7>> rows = {{"benchmark", "metric", "team", "target", "ratio", "95% CI", "p (paired)"}};
  for (const auto& b : c["benchmarks"])
    rows.push_back({b["task"].get<std::string>(), b["metric"].get<std::string>(), f(b["team"], "{:.4f}"), f(b["target"], "{:.4f}"),
                    f(b["ratio"], "pct"),
                    b.contains("ci_low") ? f(b["ci_low"], "pct") + "–" + f(b["ci_high"], "pct") : "-",
                    b.contains("p_value") ? f(b["p_value"], "{:.4f}") : "-"});
  const auto& o = c["overall"];
  rows.push_back({"OVERALL (mean)", "", f(o["team_mean"], "{:.4f}"), f(o["target_mean"], "{:.4f}"), f(o["ratio"], "pct"),
                  o["ci_low"].is_number() ? f(o["ci_low"], "pct") + "–" + f(o["ci_high"], "pct") : "-", ""});
  std::array<size_t, 7> w{};
  for (const auto& r : rows)
    for (size_t k = 0; k < 7; ++k) w[k] = std::max(w[k], display_width(r[k]));
  std::string out;
  for (const auto& r : rows) {
    for (size_t k = 0; k < 7; ++k) out += pad_right(r[k], w[k]) + (k + 1 < 7 ? "  " : "\n");
  }
  return out;
}

}  // namespace kaival::eval
