#include "report/site.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "report/svg.h"

namespace kaival::report {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double num(const json& j) { return j.is_number() ? j.get<double>() : kNaN; }
std::string str(const json& j) { return j.is_string() ? j.get<std::string>() : std::string(); }
// A bilingual {"ko","en"} object in the page's language.
std::string name(const json& j, const std::string& lang) {
  if (j.is_string()) return j.get<std::string>();
  if (!j.is_object()) return "";
  std::string v = str(j.value(lang, json()));
  return v.empty() ? str(j.value("en", json())) : v;
}
std::string fixed(double v, int d = 1) { return std::isfinite(v) ? fmt::format("{:.{}f}", v, d) : "–"; }
std::string ci_text(const json& ci, double scale = 1, int d = 1) {
  if (!ci.is_array() || ci.size() != 2) return "";
  return fmt::format("[{}, {}]", fixed(num(ci[0]) * scale, d), fixed(num(ci[1]) * scale, d));
}

struct Text {
  const std::string& lang;
  std::string operator()(const char* en, const char* ko) const { return lang == "ko" ? ko : en; }
};

std::string decision_label(const std::string& d, const Text& t) {
  if (d == "advance") return t("advances", "진출");
  if (d == "eliminate") return t("eliminated", "탈락");
  return t("ineligible", "부적격");
}

std::string source_html(const json& s) {
  if (!s.is_object()) return "";
  std::string sha = str(s.value("sha256", json()));
  return fmt::format("<span class=src title=\"sha256 {}\">{}{}{}</span>", escape(sha), escape(str(s.value("file", json()))),
                     str(s.value("key", json())).empty() ? "" : " · " + escape(str(s["key"])),
                     sha.empty() ? "" : " · " + escape(sha.substr(0, 12)));
}

// ---- charts ----

std::string leaderboard_svg(const json& r, const std::string& lang, const Text& t) {
  const json& teams = r["teams"];
  const json& parts = r["parts"];
  double maxw = 0;
  for (const auto& p : parts) maxw += num(p["weight"]);
  if (!(maxw > 0)) maxw = 100;
  const double left = 150, width = 560, row = 34, top = 30;
  double h = top + row * teams.size() + 40;
  std::string s = fmt::format(
      "<svg id=chart-leaderboard class=chart role=img viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">"
      "<title>{}</title>",
      px(left + width + 90), px(h), px(left + width + 90), px(h), escape(t("Leaderboard: stage total with confidence interval", "순위표: 단계 총점과 신뢰구간")));
  auto X = [&](double v) { return left + width * std::clamp(v, 0.0, maxw) / maxw; };
  for (int g = 0; g <= 10; ++g) {
    double v = maxw * g / 10;
    s += fmt::format("<line x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\" class=grid /><text x=\"{0}\" y=\"{3}\" class=axis text-anchor=middle>{4}</text>",
                     px(X(v)), px(top - 6), px(h - 30), px(h - 16), fixed(v, 0));
  }
  size_t i = 0;
  for (const auto& team : teams) {
    double y = top + row * i++;
    bool elig = team.value("eligible", true);
    s += fmt::format("<text x=\"{}\" y=\"{}\" class=label text-anchor=end>{}</text>", px(left - 8), px(y + row / 2 + 4),
                     escape(name(team["name"], lang)));
    double x = left;
    size_t k = 0;
    for (const auto& p : team["parts"]) {
      double w = width * std::max(0.0, num(p["points"])) / maxw;
      s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" opacity=\"{}\"><title>{}: {}</title></rect>", px(x),
                       px(y + 6), px(w), px(row - 12), part_colour(k++), elig ? "1" : "0.35", escape(name(p["name"], lang)),
                       fixed(num(p["points"])));
      x += w;
    }
    const json& ci = team["total_ci"];
    if (ci.is_array()) {
      double a = X(num(ci[0])), b = X(num(ci[1])), ym = y + row / 2;
      s += fmt::format("<g class=whisker><line x1=\"{0}\" x2=\"{1}\" y1=\"{2}\" y2=\"{2}\" /><line x1=\"{0}\" x2=\"{0}\" y1=\"{3}\" y2=\"{4}\" />"
                       "<line x1=\"{1}\" x2=\"{1}\" y1=\"{3}\" y2=\"{4}\" /></g>",
                       px(a), px(b), px(ym), px(ym - 7), px(ym + 7));
    }
    s += fmt::format("<text x=\"{}\" y=\"{}\" class=value>{} {}</text>", px(left + width + 6), px(y + row / 2 + 4),
                     fixed(num(team["total"])), escape(elig ? "" : t("(ineligible)", "(부적격)")));
  }
  double cut = num(r["sensitivity"]["cut"]);
  if (std::isfinite(cut))
    s += fmt::format("<line x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\" class=cut /><text x=\"{0}\" y=\"{3}\" class=axis text-anchor=middle>{4}</text>",
                     px(X(cut)), px(top - 10), px(h - 30), px(top - 14), escape(t("cut", "경계")));
  size_t k = 0;
  double lx = left;
  for (const auto& p : parts) {
    s += fmt::format("<rect x=\"{}\" y=\"{}\" width=10 height=10 fill=\"{}\" /><text x=\"{}\" y=\"{}\" class=axis>{} ({})</text>", px(lx),
                     px(h - 10), part_colour(k++), px(lx + 14), px(h - 1), escape(name(p["name"], lang)), fixed(num(p["weight"]), 0));
    lx += 170;
  }
  return s + "</svg>";
}

std::string radar_svg(const json& team, const std::string& lang, const Text& t, size_t idx) {
  std::vector<std::pair<std::string, double>> axes;
  for (const auto& p : team["parts"]) {
    double w = num(p["weight"]);
    axes.emplace_back(name(p["name"], lang), w > 0 ? 100 * num(p["points"]) / w : 0);
  }
  axes.emplace_back(t("Frontier", "프런티어"), num(team["frontier_index"]["value"]));
  axes.emplace_back(t("Diffusion", "확산"), num(team["diffusion_index"]["value"]));
  const double cx = 130, cy = 120, R = 80;
  std::string s = fmt::format(
      "<svg class=\"chart radar\" role=img viewBox=\"0 0 260 250\" width=260 height=250 xmlns=\"http://www.w3.org/2000/svg\"><title>{}</title>",
      escape(name(team["name"], lang) + " — " + t("profile (% of each part)", "프로필 (부문별 %)")));
  size_t n = axes.size();
  auto pt = [&](size_t i, double f) {
    double a = -M_PI / 2 + 2 * M_PI * static_cast<double>(i) / static_cast<double>(n);
    return std::pair<double, double>{cx + R * f * std::cos(a), cy + R * f * std::sin(a)};
  };
  for (double ring : {0.25, 0.5, 0.75, 1.0}) {
    std::string poly;
    for (size_t i = 0; i < n; ++i) {
      auto [x, y] = pt(i, ring);
      poly += px(x) + "," + px(y) + " ";
    }
    s += fmt::format("<polygon points=\"{}\" class=grid fill=none />", poly);
  }
  std::string poly;
  for (size_t i = 0; i < n; ++i) {
    auto [x, y] = pt(i, 1.0);
    s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=grid />", px(cx), px(cy), px(x), px(y));
    auto [lx, ly] = pt(i, 1.22);
    s += fmt::format("<text x=\"{}\" y=\"{}\" class=axis text-anchor=middle>{}</text>", px(lx), px(ly + 3), escape(axes[i].first));
    double v = std::isfinite(axes[i].second) ? std::clamp(axes[i].second / 100, 0.0, 1.1) : 0;
    auto [vx, vy] = pt(i, v);
    poly += px(vx) + "," + px(vy) + " ";
  }
  s += fmt::format("<polygon points=\"{}\" fill=\"{}\" fill-opacity=0.35 stroke=\"{}\" />", poly, part_colour(idx), part_colour(idx));
  s += fmt::format("<text x=\"{}\" y=244 class=label text-anchor=middle>{}</text>", px(cx), escape(name(team["name"], lang)));
  return s + "</svg>";
}

std::string ratio_svg(const json& r, const std::string& lang, const Text& t) {
  struct Bar {
    std::string team, task;
    double ratio, lo, hi;
  };
  std::vector<Bar> bars;
  for (const auto& team : r["teams"])
    for (const auto& p : team["parts"])
      if (p.contains("subparts"))
        for (const auto& sp : p["subparts"])
          if (str(sp["score"]) == "relative_to_target")
            for (const auto& b : sp["benchmarks"]) {
              const json& ci = b.value("ratio_ci", json());
              bars.push_back({name(team["name"], lang), str(b["task"]), num(b.value("ratio", json())),
                              ci.is_array() ? num(ci[0]) : kNaN, ci.is_array() ? num(ci[1]) : kNaN});
            }
  const double left = 250, width = 440, row = 20, top = 24;
  double h = top + row * bars.size() + 30;
  double lo_axis = 0.5, hi_axis = 1.5;
  std::string s = fmt::format(
      "<svg id=chart-ratio class=chart role=img viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" xmlns=\"http://www.w3.org/2000/svg\"><title>{}</title>",
      px(left + width + 70), px(h), px(left + width + 70), px(h),
      escape(t("Team-chosen benchmarks: score relative to the team's target (100% = equal), with intervals",
               "팀 선택 벤치마크: 목표 모델 대비 점수 (100% = 동일), 신뢰구간 포함")));
  auto X = [&](double v) { return left + width * (std::clamp(v, lo_axis, hi_axis) - lo_axis) / (hi_axis - lo_axis); };
  for (double g = lo_axis; g <= hi_axis + 1e-9; g += 0.1)
    s += fmt::format("<line x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\" class=\"{3}\" /><text x=\"{0}\" y=\"{4}\" class=axis text-anchor=middle>{5}%</text>",
                     px(X(g)), px(top - 4), px(h - 24), std::abs(g - 1) < 1e-9 ? "cut" : "grid", px(h - 10), fixed(100 * g, 0));
  for (size_t i = 0; i < bars.size(); ++i) {
    const auto& b = bars[i];
    double y = top + row * i;
    s += fmt::format("<text x=\"{}\" y=\"{}\" class=label text-anchor=end>{} · {}</text>", px(left - 6), px(y + 14), escape(b.team), escape(b.task));
    if (!std::isfinite(b.ratio)) continue;
    double x0 = X(1.0), x1 = X(b.ratio);
    s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>{}%</title></rect>", px(std::min(x0, x1)), px(y + 4),
                     px(std::abs(x1 - x0)), px(row - 8), b.ratio >= 1 ? "#009E73" : "#D55E00", fixed(100 * b.ratio));
    if (std::isfinite(b.lo))
      s += fmt::format("<g class=whisker><line x1=\"{0}\" x2=\"{1}\" y1=\"{2}\" y2=\"{2}\" /><line x1=\"{0}\" x2=\"{0}\" y1=\"{3}\" y2=\"{4}\" />"
                       "<line x1=\"{1}\" x2=\"{1}\" y1=\"{3}\" y2=\"{4}\" /></g>",
                       px(X(b.lo)), px(X(b.hi)), px(y + row / 2), px(y + 5), px(y + row - 5));
    s += fmt::format("<text x=\"{}\" y=\"{}\" class=value>{}%</text>", px(left + width + 6), px(y + 14), fixed(100 * b.ratio));
  }
  return s + "</svg>";
}

std::string lineage_svg(const json& r, const std::string& lang, const Text& t) {
  static const char* kinds[] = {"embedding", "attn", "mlp", "norm", "final_norm", "head", "vision_encoder", "audio_encoder"};
  const double left = 150, cell = 62, top = 60, row = 30;
  const json& teams = r["teams"];
  double h = top + row * teams.size() + 30, w = left + cell * 8 + 10;
  std::string s = fmt::format(
      "<svg id=chart-lineage class=chart role=img viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" xmlns=\"http://www.w3.org/2000/svg\"><title>{}</title>",
      px(w), px(h), px(w), px(h),
      escape(t("Lineage: share of components found derived from a foreign model", "독자성: 외부 모델에서 파생된 것으로 판정된 구성요소 비율")));
  for (size_t k = 0; k < 8; ++k)
    s += fmt::format("<text x=\"{}\" y=\"{}\" class=axis text-anchor=start transform=\"rotate(-30 {} {})\">{}</text>", px(left + cell * k + 8),
                     px(top - 8), px(left + cell * k + 8), px(top - 8), kinds[k]);
  size_t i = 0;
  for (const auto& team : teams) {
    double y = top + row * i++;
    s += fmt::format("<text x=\"{}\" y=\"{}\" class=label text-anchor=end>{}</text>", px(left - 8), px(y + 19), escape(name(team["name"], lang)));
    std::map<std::string, std::pair<int, int>> agg;
    for (const auto& l : team["lineage"])
      for (auto it = l["kinds"].begin(); it != l["kinds"].end(); ++it) {
        agg[it.key()].first += it.value().value("derived", 0);
        agg[it.key()].second += it.value().value("compared", 0);
      }
    for (size_t k = 0; k < 8; ++k) {
      auto it = agg.find(kinds[k]);
      std::string fill = "#eeeeee", label = t("not present", "없음");
      if (it != agg.end() && it->second.second > 0) {
        double f = static_cast<double>(it->second.first) / it->second.second;
        int c = static_cast<int>(std::lround(255 * (1 - f)));
        fill = fmt::format("#{:02x}{:02x}{:02x}", 255, c, c);
        label = fmt::format("{}/{} {}", it->second.first, it->second.second, t("derived", "파생"));
      }
      s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"#999\"><title>{}</title></rect>", px(left + cell * k),
                       px(y + 2), px(cell - 2), px(row - 4), fill, escape(label));
    }
  }
  return s + "</svg>";
}

std::string arena_svg(const json& r, const std::string& lang, const Text& t) {
  struct Pt {
    std::string team;
    double v, lo, hi;
  };
  std::vector<Pt> pts;
  for (const auto& team : r["teams"])
    for (const auto& p : team["parts"])
      if (str(p.value("kind", json())) == "user" && p["input"].is_number()) {
        const json& ci = p["input_ci"];
        pts.push_back({name(team["name"], lang), num(p["input"]), ci.is_array() ? num(ci[0]) : kNaN, ci.is_array() ? num(ci[1]) : kNaN});
      }
  if (pts.empty()) return "";
  double lo = 1e300, hi = -1e300;
  for (const auto& p : pts) {
    lo = std::min({lo, p.v, std::isfinite(p.lo) ? p.lo : p.v});
    hi = std::max({hi, p.v, std::isfinite(p.hi) ? p.hi : p.v});
  }
  lo = std::floor(lo / 25) * 25 - 25, hi = std::ceil(hi / 25) * 25 + 25;
  const double left = 150, width = 480, row = 28, top = 20;
  double h = top + row * pts.size() + 30;
  std::string s = fmt::format(
      "<svg id=chart-arena class=chart role=img viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" xmlns=\"http://www.w3.org/2000/svg\"><title>{}</title>",
      px(left + width + 60), px(h), px(left + width + 60), px(h),
      escape(t("Arena ratings (Bradley-Terry, Elo scale) with intervals", "아레나 레이팅 (Bradley-Terry, Elo 척도)과 신뢰구간")));
  auto X = [&](double v) { return left + width * (v - lo) / (hi - lo); };
  for (double g = lo; g <= hi + 1e-9; g += 25)
    s += fmt::format("<line x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\" class=grid /><text x=\"{0}\" y=\"{3}\" class=axis text-anchor=middle>{4}</text>",
                     px(X(g)), px(top - 4), px(h - 24), px(h - 10), fixed(g, 0));
  for (size_t i = 0; i < pts.size(); ++i) {
    double y = top + row * i + row / 2;
    const auto& p = pts[i];
    s += fmt::format("<text x=\"{}\" y=\"{}\" class=label text-anchor=end>{}</text>", px(left - 8), px(y + 4), escape(p.team));
    if (std::isfinite(p.lo)) s += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" class=whisker />", px(X(p.lo)), px(X(p.hi)), px(y), px(y));
    s += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=5 fill=\"#0072B2\"><title>{}</title></circle><text x=\"{}\" y=\"{}\" class=value>{}</text>",
                     px(X(p.v)), px(y), fixed(p.v), px(left + width + 6), px(y + 4), fixed(p.v, 0));
  }
  return s + "</svg>";
}

const char* kCss = R"(body{font-family:system-ui,"Noto Sans KR","Apple SD Gothic Neo",sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:1.5em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;font-size:.92em}th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.advance{color:#006d4f;font-weight:600}.eliminate{color:#b34700;font-weight:600}.ineligible{color:#a00;font-weight:600}
.synthetic{background:#fff3cd;border:1px solid #e0c060;padding:8px 12px;margin:12px 0}.warn{color:#8a5a00}
.chart text{font-size:11px}.chart .label{font-size:12px}.chart .grid{stroke:#ddd;fill:none}.chart .cut{stroke:#a00;stroke-dasharray:4 3}
.chart .whisker,.chart .whisker line{stroke:#222;stroke-width:1.5}.chart .value{font-size:11px}.radars{display:flex;flex-wrap:wrap;gap:8px}
.src{font-family:monospace;font-size:.82em;color:#555}nav a{margin-right:12px}details{margin:6px 0}
)";

}  // namespace

std::string stage_page(const json& r, const std::string& lang) {
  Text t{lang};
  std::string other = lang == "ko" ? "index.html" : "index.ko.html";
  const json& st = r["stage"];
  std::string title = name(r["program"]["title"], lang) + " — " + name(st["name"], lang);
  std::string h = fmt::format("<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><meta name=viewport content=\"width=device-width\">"
                              "<title>{}</title><style>{}</style></head><body>\n",
                              lang, escape(title), kCss);
  h += fmt::format("<nav><a id=lang-link href=\"{}\" hreflang=\"{}\">{}</a></nav>", other, lang == "ko" ? "en" : "ko",
                   lang == "ko" ? "English" : "한국어");
  h += fmt::format("<h1 id=title>{}</h1><p>{}: {} · {}: {} · {}: {}</p>", escape(title), escape(t("Date", "평가일")), escape(str(st["date"])),
                   escape(t("Track", "트랙")), escape(name(st["track_name"], lang)), escape(t("Teams advancing", "진출 팀 수")),
                   st["advance"].get<int>());
  const json& syn = r["synthetic"];
  if (syn.value("expert", false) || syn.value("user", false))
    h += fmt::format("<div class=synthetic id=synthetic-banner>{}</div>",
                     escape(t("Synthetic data: the expert and/or user panels in this report are simulated, not real people.",
                              "합성 데이터: 이 보고서의 전문가 및/또는 사용자 패널은 실제 사람이 아닌 시뮬레이션입니다.")));

  // Decision table
  h += fmt::format("<h2>{}</h2><table id=decisions><thead><tr><th>{}</th><th>{}</th><th>{}</th>", escape(t("Decision", "결정")),
                   escape(t("Rank", "순위")), escape(t("Team", "팀")), escape(t("Target model", "목표 모델")));
  for (const auto& p : r["parts"]) h += fmt::format("<th>{} ({})</th>", escape(name(p["name"], lang)), fixed(num(p["weight"]), 0));
  h += fmt::format("<th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>", escape(t("Penalty", "감점")),
                   escape(t("Total", "총점")), escape(t("95% interval", "95% 구간")), escape(t("vs target", "목표 대비")),
                   escape(t("Frontier index", "프런티어 지수")), escape(t("Diffusion index", "확산 지수")), escape(t("Decision", "결정")));
  for (const auto& team : r["teams"]) {
    std::string dec = str(team["decision"]);
    std::string rel = "–";
    for (const auto& p : team["parts"])
      if (p.contains("subparts"))
        for (const auto& sp : p["subparts"])
          if (sp.contains("ratio_of_means") && sp["ratio_of_means"].is_number())
            rel = fmt::format("{}% ({}/{})", fixed(100 * num(sp["ratio_of_means"])), fixed(num(sp["team_mean"]), 2), fixed(num(sp["target_mean"]), 2));
    h += fmt::format("<tr data-team=\"{}\" data-decision=\"{}\"><td class=n>{}</td><td>{}{}</td><td>{}</td>", escape(str(team["team"])), escape(dec),
                     team["rank"].get<int>() > 0 ? std::to_string(team["rank"].get<int>()) : "–", escape(name(team["name"], lang)),
                     team.value("repechage", false) ? escape(t(" (repechage)", " (패자부활)")) : "", escape(name(team["target_name"], lang)));
    for (const auto& p : team["parts"]) h += fmt::format("<td class=n>{}</td>", fixed(num(p["points"])));
    h += fmt::format("<td class=n>{}</td><td class=\"n total\">{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=\"{}\">{}</td></tr>",
                     num(team["penalty"]) > 0 ? "−" + fixed(num(team["penalty"])) : "", fixed(num(team["total"])), ci_text(team["total_ci"]), rel,
                     fixed(num(team["frontier_index"]["value"])), fixed(num(team["diffusion_index"]["value"])), escape(dec),
                     escape(decision_label(dec, t)));
  }
  h += "</tbody></table>";
  h += fmt::format("<p>{}: {}</p>", escape(t("Average total", "평균 총점")), fixed(num(r["average_total"])));
  for (const auto& team : r["teams"])
    for (const auto& g : team["gates"])
      h += fmt::format("<p class=ineligible>{}: {} — {} ({})</p>", escape(name(team["name"], lang)), escape(str(g["action"])),
                       escape(str(g["rule"])), escape(str(g["verdict"]) + " vs " + str(g["against"])));

  h += fmt::format("<h2>{}</h2>", escape(t("Leaderboard", "순위표"))) + leaderboard_svg(r, lang, t);
  h += fmt::format("<h2>{}</h2><div class=radars id=chart-radar>", escape(t("Team profiles", "팀별 프로필")));
  size_t idx = 0;
  for (const auto& team : r["teams"]) h += radar_svg(team, lang, t, idx++);
  h += "</div>";
  h += fmt::format("<h2>{}</h2>", escape(t("Against each team's target", "목표 모델 대비"))) + ratio_svg(r, lang, t);
  h += fmt::format("<h2>{}</h2>", escape(t("Independence (lineage)", "독자성 (계보 분석)"))) + lineage_svg(r, lang, t);
  std::string arena = arena_svg(r, lang, t);
  if (!arena.empty()) h += fmt::format("<h2>{}</h2>", escape(t("User arena", "사용자 아레나"))) + arena;

  // Sensitivity
  const json& sens = r["sensitivity"];
  h += fmt::format("<h2>{}</h2><ul id=sensitivity>", escape(t("How sure is the decision?", "결정의 확실성")));
  for (const auto& w : sens["within_ci"])
    h += fmt::format("<li>{}: {} {} {}</li>", escape(str(w["team"])), escape(t("total interval", "총점 구간")), escape(ci_text(w["total_ci"])),
                     escape(t("crosses the cut — the decision could change within the uncertainty", "이 경계를 넘음 — 불확실성 범위 안에서 결정이 바뀔 수 있음")));
  for (const auto& w : sens["weight_changes"])
    for (const auto& f : w["flips"])
      h += fmt::format("<li>{} {} {} → {}: {} {} → {}</li>", escape(t("Moving", "가중치 이동")), fixed(num(w["points"]), 1), escape(str(w["from"])),
                       escape(str(w["to"])), escape(str(f["team"])), escape(str(f["from"])), escape(str(f["to"])));
  if (sens["within_ci"].empty() && std::all_of(sens["weight_changes"].begin(), sens["weight_changes"].end(), [](const json& w) { return w["flips"].empty(); }))
    h += fmt::format("<li>{}</li>", escape(t("No decision changes within the intervals or under the weight changes tried.",
                                             "신뢰구간 안에서나 가중치 변경으로 바뀌는 결정이 없습니다.")));
  for (const auto& team : r["teams"])
    if (team["advance_probability"].is_number())
      h += fmt::format("<li>{}: {} {}%</li>", escape(name(team["name"], lang)), escape(t("advances in", "부트스트랩 진출 확률")),
                       fixed(100 * num(team["advance_probability"])));
  h += "</ul>";

  // Traceability
  h += fmt::format("<h2>{}</h2>", escape(t("Where every number comes from", "모든 수치의 출처")));
  for (const auto& team : r["teams"]) {
    h += fmt::format("<details class=trace data-team=\"{}\"><summary>{} — {}</summary><table><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
                     escape(str(team["team"])), escape(name(team["name"], lang)), escape(str(team["model"])), escape(t("Part", "부문")),
                     escape(t("Item", "항목")), escape(t("Value", "값")), escape(t("Interval", "구간")), escape(t("Source", "출처")));
    for (const auto& p : team["parts"]) {
      if (p.contains("subparts")) {
        for (const auto& sp : p["subparts"])
          for (const auto& b : sp["benchmarks"]) {
            bool rel = b.contains("ratio");
            h += fmt::format("<tr><td>{}</td><td>{}</td><td class=n>{}{}</td><td class=n>{}</td><td>{}{}</td></tr>", escape(name(sp["name"], lang)),
                             escape(str(b["task"])), fixed(num(b["team"]), 2),
                             rel ? " / " + fixed(num(b["target"]), 2) + " = " + fixed(100 * num(b["ratio"])) + "%" : "",
                             rel ? ci_text(b["ratio_ci"], 100) : ci_text(b["normalized_ci"], 1, 3), source_html(b["team_source"]),
                             rel ? "<br>" + source_html(b["target_source"]) : "");
          }
      } else {
        std::string srcs;
        for (const auto& s : p.value("sources", json::array())) srcs += source_html(s) + "<br>";
        h += fmt::format("<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td></tr>", escape(name(p["name"], lang)),
                         escape(p.value("synthetic", false) ? t("synthetic panel", "합성 패널") : ""), fixed(num(p.value("input", json())), 2),
                         ci_text(p.value("input_ci", json())), srcs);
      }
    }
    for (const auto& l : team["lineage"])
      h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td></td><td>{}</td></tr>", escape(t("Lineage", "계보")), escape(str(l["against"])),
                       escape(str(l["verdict"])), source_html(l["source"]));
    h += "</table></details>";
  }
  h += fmt::format("<h2>{}</h2><table id=inputs><tr><th>{}</th><th>{}</th><th>SHA-256</th></tr>", escape(t("Input files", "입력 파일")),
                   escape(t("File", "파일")), escape(t("Kind", "종류")));
  for (const auto& f : r["inputs"])
    h += fmt::format("<tr><td class=src>{}</td><td>{}</td><td class=src>{}</td></tr>", escape(str(f["file"])), escape(str(f["kind"])),
                     escape(str(f["sha256"])));
  h += "</table>";
  if (!r["warnings"].empty()) {
    h += fmt::format("<h2>{}</h2><ul id=warnings>", escape(t("Warnings", "경고")));
    for (const auto& w : r["warnings"]) h += fmt::format("<li class=warn>{}</li>", escape(str(w)));
    h += "</ul>";
  }
  h += fmt::format("<footer><p class=src>kaival.stage-result/1 · {} {} · {} {} · bootstrap {} × seed {}</p></footer></body></html>\n",
                   escape(t("program", "프로그램")), escape(str(r["program"]["file"])), "sha256", escape(str(r["program"]["sha256"])),
                   r["bootstrap"]["replicates"].dump(), r["bootstrap"]["seed"].dump());
  return h;
}

void write_site(const json& result, const std::string& dir) {
  fs::create_directories(dir);
  for (const auto& [file, lang] : {std::pair{"index.html", "en"}, std::pair{"index.ko.html", "ko"}}) {
    fs::path p = fs::path(dir) / file;
    std::ofstream f(p, std::ios::binary);
    if (!f) fail<IoError>(p.string(), "cannot write the report");
    f << stage_page(result, lang);
    if (!f) fail<IoError>(p.string(), "write failed");
  }
}

}  // namespace kaival::report
