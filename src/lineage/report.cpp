#include "lineage/report.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

#include "core/hash.h"
#include "core/text.h"
#include "core/version.h"
#include "lineage/stats.h"

namespace kaival::lineage {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json p_fields(double log10p) {
  // JSON numbers cannot hold p below ~1e-308; log10_p always carries the value.
  return {{"p_value", pow10_clamped(log10p)}, {"log10_p", std::isfinite(log10p) ? log10p : -1e308}};
}



const char* verdict_en(const std::string& v) {
  if (v == "derived") return "DERIVED: most language-model components of one model match the other";
  if (v == "partial") return "PARTIAL: some components match (listed below); the rest show no evidence of reuse";
  return "INDEPENDENT: no component shows evidence of reuse";
}
const char* verdict_ko(const std::string& v) {
  if (v == "derived") return "파생 모델: 언어 모델 구성 요소 대부분이 상대 모델과 일치합니다";
  if (v == "partial") return "부분 재사용: 일부 구성 요소가 일치합니다 (아래 목록); 나머지에는 재사용 증거가 없습니다";
  return "독립 모델: 재사용을 보여 주는 구성 요소가 없습니다";
}

}  // namespace

std::string format_p(double log10p) {
  if (!std::isfinite(log10p) || log10p < -300) return "< 1e-300";
  if (log10p > -3) return fmt::format("{:.3g}", std::pow(10.0, log10p));
  double e = std::floor(log10p);
  double m = std::pow(10.0, log10p - e);
  return fmt::format("{:.1f}e{}", m, static_cast<int>(e));
}

InputInfo describe_input(const Prepared& p, bool hash) {
  InputInfo in;
  in.label = p.label;
  in.path = p.model->path();
  in.format = std::string(weights::format_name(p.model->checkpoint().format()));
  std::vector<std::string> files = p.model->checkpoint().files();
  const std::string& folder = p.model->checkpoint().folder();
  if (!folder.empty())
    for (const char* extra : {"config.json", "tokenizer.json", "tokenizer_config.json"}) {
      fs::path f = fs::path(folder) / extra;
      std::error_code ec;
      if (fs::is_regular_file(f, ec) && std::find(files.begin(), files.end(), f.string()) == files.end())
        files.push_back(f.string());
    }
  for (const auto& f : files) {
    InputInfo::File e;
    e.path = f;
    std::error_code ec;
    e.bytes = fs::file_size(f, ec);
    if (hash) e.sha256 = sha256_file(f);
    in.files.push_back(e);
  }
  return in;
}

json pair_json(const PairResult& p, double alpha) {
  json comps = json::array();
  for (const auto& c : p.components) {
    json tests = json::array();
    for (const auto& t : c.tests) {
      json tj = {{"method", t.method},       {"basis", t.basis},
                 {"exact", t.exact},         {"decides", t.decides},         {"statistic", t.statistic},
                 {"statistic_name", t.statistic_name}, {"detail", t.detail}};
      tj.update(p_fields(t.log10p));
      tests.push_back(tj);
    }
    json cj = {{"name", c.name},
               {"kind", c.kind},
               {"verdict", c.verdict},
               {"decides", c.decides},
               {"method", c.method},
               {"statistic", c.statistic},
               {"statistic_name", c.statistic_name},
               {"tests", tests},
               {"caveats", c.caveats}};
    if (c.verdict == "not_comparable") {
      cj["p_value"] = nullptr;
      cj["log10_p"] = nullptr;
      cj["p_value_adjusted"] = nullptr;
      cj["log10_p_adjusted"] = nullptr;
      cj["reason"] = c.reason;
    } else {
      cj.update(p_fields(c.log10p));
      cj["p_value_adjusted"] = pow10_clamped(c.log10p_adj);
      cj["log10_p_adjusted"] = std::isfinite(c.log10p_adj) ? c.log10p_adj : -1e308;
    }
    if (c.layer >= 0) {
      cj["layer"] = c.layer;
      cj["layer_b"] = c.layer_b;
    }
    comps.push_back(cj);
  }
  json j = {{"a", p.a},
            {"b", p.b},
            {"verdict", p.verdict},
            {"alpha", alpha},
            {"combination", p.combination},
            {"matched_components", p.matched},
            {"components", comps},
            {"layer_map", p.layer_map},
            {"tokenizer", p.tokenizer},
            {"config", p.config},
            {"alignment", p.alignment},
            {"activations", p.activations},
            {"notes", p.notes}};
  j.update(p_fields(p.log10p));
  return j;
}

json report_json(const MultiResult& r, const std::vector<InputInfo>& inputs,
                 const std::vector<InputInfo>& control_inputs, const Options& opt) {
  auto inputs_json = [](const std::vector<InputInfo>& v) {
    json a = json::array();
    for (const auto& in : v) {
      json files = json::array();
      for (const auto& f : in.files) files.push_back({{"path", f.path}, {"sha256", f.sha256}, {"bytes", f.bytes}});
      a.push_back({{"label", in.label}, {"path", in.path}, {"format", in.format}, {"files", files}});
    }
    return a;
  };
  json pairs = json::array();
  for (const auto& p : r.pairs) pairs.push_back(pair_json(p, opt.alpha));
  json j = {{"schema", "kaival.lineage-report"},
            {"schema_version", 1},
            {"kaival_version", kVersion},
            {"created", utc_now_iso()},
            {"inputs", inputs_json(inputs)},
            {"parameters",
             {{"alpha", opt.alpha},
              {"max_tokens", opt.max_tokens},
              {"max_units", opt.max_units},
              {"max_coords", opt.max_coords},
              {"layer_fraction_for_derived", opt.layer_fraction},
              {"aligned_tests", opt.aligned_tests},
              {"convergence_allowance", opt.convergence_allowance}}},
            {"pairs", pairs},
            {"families", r.families},
            {"methods",
             {{"coord-match",
               "exact: residual coordinates matched by unit-permutation-invariant signatures (or embedding columns over "
               "shared tokens); under independence B's coordinates are a uniformly random signed relabelling, so m "
               "self-matches have P <= 1/m! (1/(m! 2^m) with signs; C(n,m)/m! for the increasing run when widths differ)"},
              {"unit-match",
               "approximate (Zhu et al. 2025 style): hidden units matched on one matrix, validated on another; "
               "mean rank of the validated pair among all units, normal approximation"},
              {"gram-cka",
               "approximate (AWM / CKA style): linear CKA of Gram matrices over residual coordinates after aligning B "
               "to A through the embeddings of shared tokens (orthogonal Procrustes); null moments of a random signed "
               "permutation, normal approximation"},
              {"activation-cka",
               "evidence only (REEF style): linear CKA of residual-stream activations on the same shared-token "
               "sequences; unrelated models trained on similar data also score high, so it never decides"},
              {"combination", "Bonferroni over a component's tests; Holm over the pair's deciding components"}}}};
  if (r.pairs.size() == 1) {
    // Two models: the pair's fields at the top level as well.
    for (auto& [k, v] : pairs[0].items()) j[k] = v;
  } else {
    j["verdict"] = nullptr;
    j["p_value"] = nullptr;
  }
  if (!control_inputs.empty()) {
    json cp = json::array();
    for (const auto& p : r.control_pairs)
      cp.push_back({{"a", p.a}, {"b", p.b}, {"verdict", p.verdict}, {"log10_p", p.log10p}});
    j["controls"] = {{"inputs", inputs_json(control_inputs)}, {"pairs", cp}, {"reference", r.control_reference}};
  }
  return j;
}

std::string terminal_summary(const MultiResult& r, const Options& opt) {
  std::string out;
  for (const auto& p : r.pairs) {
    out += fmt::format("\n== {}  vs  {}\n", p.a, p.b);
    out += fmt::format("Verdict: {} (pair p = {}, alpha {} after correction)\n", verdict_en(p.verdict),
                       format_p(p.log10p), opt.alpha);
    out += fmt::format("판정: {} (쌍 p = {}, 보정 후 유의수준 {})\n", verdict_ko(p.verdict), format_p(p.log10p),
                       opt.alpha);
    size_t comparable = 0;
    for (const auto& c : p.components) comparable += c.decides && c.verdict != "not_comparable";
    if (comparable == 0)
      out += "No component could be compared: this verdict carries no evidence either way. / 비교할 수 있는 구성 "
             "요소가 없어 판정에 근거가 없습니다.\n";
    if (!p.matched.empty()) {
      std::string names;
      for (size_t i = 0; i < p.matched.size(); ++i) names += (i ? ", " : "") + p.matched[i];
      out += fmt::format("Matching components / 일치하는 구성 요소: {}\n", names);
    }
    if (!p.layer_map.is_null()) out += "Layers were paired across different depths (see layer_map in the JSON).\n";
    out += fmt::format("\n{:<22} {:<15} {:>12} {:>10}  {}\n", "component", "verdict", "p (adj.)", "statistic",
                       "method");
    for (const auto& c : p.components) {
      if (c.verdict == "not_comparable") {
        out += fmt::format("{:<22} {:<15} {:>12} {:>10}  {}\n", c.name, c.verdict, "-", "-", c.reason);
        continue;
      }
      std::string note = c.decides ? c.method : c.method + " (evidence only)";
      if (c.caveats.contains("raw_cosine"))
        note += fmt::format("; raw cosine {:.3f} (not evidence)", c.caveats["raw_cosine"].get<double>());
      out += fmt::format("{:<22} {:<15} {:>12} {:>10.3g}  {}\n", c.name, c.verdict, format_p(c.log10p_adj),
                         c.statistic, note);
    }
    if (p.activations.is_object() && p.activations.contains("layers")) {
      out += "Activation CKA per layer (evidence only / 참고용):";
      for (const auto& l : p.activations["layers"]) out += fmt::format(" {}:{:.2f}", l["a"].get<int>(), l["cka"].get<double>());
      out += "\n";
    }
    for (const auto& n : p.notes) out += "note: " + n + "\n";
  }
  if (r.pairs.size() > 1) {
    out += "\nFamilies (models connected by a 'derived' verdict) / 계열:\n";
    for (const auto& f : r.families) {
      std::string s;
      for (size_t i = 0; i < f.size(); ++i) s += (i ? ", " : "") + f[i];
      out += "  { " + s + " }\n";
    }
  }
  if (!r.control_pairs.empty()) {
    out += "\nControls (unrelated models; their p-values show what chance looks like) / 대조 모델:\n";
    for (const auto& p : r.control_pairs)
      out += fmt::format("  {} vs {}: {} (p = {})\n", p.a, p.b, p.verdict, format_p(p.log10p));
  }
  return out;
}

std::string html_report(const json& report) {
  std::string h;
  h += "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>kaival lineage report</title><style>"
       "body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;font-size:13px}"
       "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f3f3f3}"
       ".derived{color:#b00020;font-weight:bold}.partial{color:#b36b00;font-weight:bold}.independent{color:#1b5e20}"
       ".nc{color:#777}</style></head><body>";
  h += "<h1>kaival lineage report</h1>";
  h += fmt::format("<p>kaival {} &middot; {}</p>", html_escape(report.value("kaival_version", "")),
                   html_escape(report.value("created", "")));
  for (const auto& p : report["pairs"]) {
    std::string v = p["verdict"].get<std::string>();
    h += fmt::format("<h2>{} vs {}</h2>", html_escape(p["a"].get<std::string>()), html_escape(p["b"].get<std::string>()));
    h += fmt::format("<p class=\"{}\">{}<br>{}</p>", v, html_escape(verdict_en(v)), html_escape(verdict_ko(v)));
    h += fmt::format("<p>pair p = {} ({})</p>", html_escape(format_p(p["log10_p"].get<double>())),
                     html_escape(p["combination"].get<std::string>()));

    // Heatmap: rows = layers, columns = roles; colour = -log10 adjusted p.
    std::map<int, std::map<std::string, double>> cells;
    std::vector<std::pair<std::string, double>> global;
    for (const auto& c : p["components"]) {
      double v10 = c["log10_p_adjusted"].is_null() ? std::nan("") : std::max(0.0, -c["log10_p_adjusted"].get<double>());
      if (c.contains("layer"))
        cells[c["layer"].get<int>()][c["kind"].get<std::string>()] = v10;
      else
        global.push_back({c["name"].get<std::string>(), v10});
    }
    const std::vector<std::string> roles = {"attn", "mlp", "norm"};
    const int cw = 90, ch = 18, left = 150, top = 20;
    int rows = static_cast<int>(cells.size() + global.size());
    h += fmt::format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-size=\"11\">",
                     left + cw * static_cast<int>(roles.size()) + 160, top + ch * rows + 30);
    for (size_t k = 0; k < roles.size(); ++k)
      h += fmt::format("<text x=\"{}\" y=\"14\">{}</text>", left + cw * static_cast<int>(k) + 5, roles[k]);
    auto colour = [](double v) {
      if (std::isnan(v)) return std::string("#dddddd");
      double t = std::clamp(v / 20.0, 0.0, 1.0);  // saturate at p = 1e-20
      int r = 255, g = static_cast<int>(255 * (1 - t)), b = static_cast<int>(255 * (1 - t));
      if (v < 2) r = g = b = 255 - static_cast<int>(v * 10);
      return fmt::format("#{:02x}{:02x}{:02x}", r, g, b);
    };
    int row = 0;
    for (auto& [name, v10] : global) {
      int y = top + ch * row++;
      h += fmt::format("<text x=\"0\" y=\"{}\">{}</text>", y + 13, html_escape(name));
      h += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"#999\"><title>-log10 p = {:.1f}</title></rect>",
                       left, y, cw * static_cast<int>(roles.size()), ch - 2, colour(v10), v10);
    }
    for (auto& [layer, m] : cells) {
      int y = top + ch * row++;
      h += fmt::format("<text x=\"0\" y=\"{}\">layer {}</text>", y + 13, layer);
      for (size_t k = 0; k < roles.size(); ++k) {
        auto it = m.find(roles[k]);
        double v10 = it == m.end() ? std::nan("") : it->second;
        h += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"#999\"><title>{} layer {}: -log10 p = {:.1f}</title></rect>",
                         left + cw * static_cast<int>(k), y, cw - 2, ch - 2, colour(v10), roles[k], layer, v10);
      }
    }
    h += fmt::format("<text x=\"{}\" y=\"{}\">colour: -log10 adjusted p (white &lt; 2, red saturates at 20; grey: not comparable)</text>",
                     0, top + ch * rows + 20);
    h += "</svg>";

    h += "<table><tr><th>component</th><th>verdict</th><th>p (adjusted)</th><th>statistic</th><th>method</th><th>notes</th></tr>";
    for (const auto& c : p["components"]) {
      std::string cv = c["verdict"].get<std::string>();
      std::string cls = cv == "not_comparable" ? "nc" : cv;
      std::string pv = c["log10_p_adjusted"].is_null() ? "-" : format_p(c["log10_p_adjusted"].get<double>());
      std::string notes = c.contains("reason") ? c["reason"].get<std::string>() : "";
      if (c["caveats"].contains("raw_cosine"))
        notes += fmt::format("raw cosine {:.3f} (not evidence), centred {:.3f}", c["caveats"]["raw_cosine"].get<double>(),
                             c["caveats"].value("centred_cosine", 0.0));
      if (!c["decides"].get<bool>()) notes += " (evidence only, never decides)";
      h += fmt::format("<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{:.4g}</td><td>{}</td><td>{}</td></tr>",
                       html_escape(c["name"].get<std::string>()), cls, cv, html_escape(pv),
                       c["statistic"].get<double>(), html_escape(c["method"].get<std::string>()), html_escape(notes));
    }
    h += "</table>";
    h += "<h3>Tokenizer and configuration evidence (never decide alone)</h3><pre>" +
         html_escape(p["tokenizer"].dump(1)) + "\n" + html_escape(p["config"].dump(1)) + "</pre>";
    if (!p["layer_map"].is_null()) h += "<h3>Layer map</h3><pre>" + html_escape(p["layer_map"].dump(1)) + "</pre>";
    if (!p["activations"].is_null())
      h += "<h3>Activation evidence (never decides)</h3><pre>" + html_escape(p["activations"].dump(1)) + "</pre>";
    for (const auto& n : p["notes"]) h += "<p>note: " + html_escape(n.get<std::string>()) + "</p>";
  }
  if (report.contains("families") && report["pairs"].size() > 1)
    h += "<h2>Families</h2><pre>" + html_escape(report["families"].dump()) + "</pre>";
  h += "<h2>Methods</h2><ul>";
  for (auto& [k, v] : report["methods"].items())
    h += "<li><b>" + html_escape(k) + "</b>: " + html_escape(v.get<std::string>()) + "</li>";
  h += "</ul><h2>Caveats</h2><ul>"
       "<li>Raw cosine similarity of norm gains is near 1 for unrelated models because gains sit near 1; it is shown only "
       "to be dismissed. Norm components never decide a verdict.</li>"
       "<li>The coordinate-match p-values are exact bounds under the assumption that an independently trained model's "
       "weight distribution is invariant to signed permutations of its residual coordinates (i.i.d. initialisation, "
       "coordinate-wise optimisers such as Adam). Unit-match and Gram-CKA p-values use normal approximations.</li>"
       "<li>Tokenizer and configuration agreement are reported separately and never decide: unrelated models can share "
       "a tokenizer or an architecture.</li>"
       "<li>'independent' for a component means no significant evidence of reuse at the stated alpha, not proof of "
       "independent training.</li></ul>";
  h += "<h2>Inputs</h2><pre>" + html_escape(report["inputs"].dump(1)) + "</pre></body></html>\n";
  return h;
}

}  // namespace kaival::lineage
