#include "stage/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <limits>
#include <map>
#include <numeric>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "core/text.h"
#include "core/version.h"

namespace kaival::stage {

using nlohmann::json;
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Deterministic across platforms (std distributions are not), so `verify`
// reproduces the same intervals anywhere.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  double normal() { return std::sqrt(-2 * std::log(uniform())) * std::cos(6.283185307179586 * uniform()); }
};

json src_json(const Source& s) { return {{"file", s.file}, {"sha256", s.sha256}, {"key", s.key}}; }

double mean(const std::vector<double>& v) {
  if (v.empty()) return kNaN;
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

double round_to(double v, int decimals) {
  double f = std::pow(10.0, decimals);
  return std::round(v * f) / f;
}

// ---- what the files say, per entry ----

struct BenchSlot {
  BenchmarkRef ref;
  TaskScores team, target;
  bool relative = false;
  std::vector<std::pair<size_t, size_t>> pairs;  // team item, target item (same doc_id)
  double team_paired_mean = 0, target_paired_mean = 0, team_item_mean = 0;
};
struct SubSlot {
  const Subpart* def;
  std::vector<BenchSlot> benches;
};
struct PartSlot {
  const Part* def;
  std::vector<SubSlot> subs;
  bool has_panel = false;
  ScoreWithCi panel;  // expert score or arena rating
  std::vector<double> reviews;
};
struct EntryPlan {
  const Entry* entry;
  const Program::Team* team;
  const ModelInfo* model;
  const ModelInfo* target;
  std::vector<PartSlot> parts;
  bool eligible = true;
  double penalty = 0;
  json gates = json::array();
  std::vector<LineageFinding> lineage;
  bool has_perf = false;
  Perf perf;
};

// ---- one draw of every uncertain input, and what the rules make of it ----

struct Draw {
  // [entry][part][sub][bench] -> (team percent, target percent); NaN = missing
  std::vector<std::vector<std::vector<std::vector<std::pair<double, double>>>>> bench;
  std::vector<std::vector<double>> panel;  // [entry][part]
};

struct SubEval {
  double points = 0, value = 0, team_mean = kNaN, target_mean = kNaN, ratio_of_means = kNaN, mean_of_ratios = kNaN;
  std::vector<double> ratios, normalized;
};
struct PartEval {
  double points = 0;
  std::vector<SubEval> subs;
};
struct TeamEval {
  std::vector<PartEval> parts;
  std::vector<double> frontier_terms, diffusion_terms;
  double frontier = 0, diffusion = 0, total = 0;
  int rank = 0;
  int decision = 0;  // 1 advance, 0 eliminate, -1 ineligible
  bool tie_at_cut = false;
};

class Engine {
 public:
  Engine(const Program& p, const Stage& s, const Track& t, InputSet& in) : p_(p), s_(s), t_(t), in_(in) {}

  void load();
  void load_entries();
  Draw point_draw() const;
  Draw random_draw(Rng& rng) const;
  std::vector<TeamEval> evaluate(const Draw& d) const;
  void rank(std::vector<TeamEval>& ev) const;
  json build(const std::vector<TeamEval>& point, const std::vector<std::vector<TeamEval>>& reps, int replicates);

  std::vector<EntryPlan> plans;
  std::vector<std::string> warnings;

 private:
  [[noreturn]] void missing_error(const std::string& what) const { fail(p_.path, "{}", what); }
  void missing(const std::string& what) {
    if (p_.missing == MissingPolicy::Error) missing_error(what + " (missing_results: error)");
    warnings.push_back(what);
  }
  double term_value(const IndexTerm& term, size_t e, const std::vector<TeamEval>& ev, Source* src, bool* ok) const;
  void compute_index(const IndexDef& def, std::vector<TeamEval>& ev, bool frontier) const;
  std::vector<double> fit_bt(const std::vector<size_t>& pick) const;

  const Program& p_;
  const Stage& s_;
  const Track& t_;
  InputSet& in_;
  std::map<std::string, EvalResults*> evals_;
  std::vector<std::unique_ptr<EvalResults>> eval_store_;
  PanelScores expert_, ratings_;
  bool has_expert_ = false, has_ratings_ = false;
  std::map<std::string, std::vector<double>> reviews_;
  Source reviews_src_, battles_src_;
  std::vector<Battle> battles_;
  std::vector<std::string> bt_models_;
  std::vector<std::pair<size_t, size_t>> bt_idx_;
  std::vector<double> bt_point_;
  friend struct Collector;

 public:
  bool expert_synthetic() const { return has_expert_ && expert_.synthetic; }
  bool ratings_synthetic() const { return has_ratings_ && ratings_.synthetic; }
};

void Engine::load() {
  for (const auto& [model, dir] : s_.evals) {
    eval_store_.push_back(std::make_unique<EvalResults>(in_, p_.resolve(dir)));
    evals_[model] = eval_store_.back().get();
    const std::string& declared = eval_store_.back()->model_id();
    if (!declared.empty() && declared != model)
      warnings.push_back(fmt::format("{}/results.json says model '{}' but the program lists it for '{}'", dir, declared, model));
  }
  if (!s_.expert_scores.empty()) {
    expert_ = read_expert_scores(in_, p_.resolve(s_.expert_scores));
    has_expert_ = true;
  }
  if (!s_.ratings.empty()) {
    ratings_ = read_ratings(in_, p_.resolve(s_.ratings));
    has_ratings_ = true;
  }
  if (!s_.reviews.empty())
    for (auto& r : read_reviews(in_, p_.resolve(s_.reviews), &reviews_src_)) reviews_[r.model].push_back(r.score);
  if (!s_.battles.empty()) {
    battles_ = read_battles(in_, p_.resolve(s_.battles), &battles_src_);
    std::map<std::string, size_t> idx;
    for (const auto& b : battles_)
      for (const auto* m : {&b.a, &b.b})
        if (!idx.count(*m)) {
          idx[*m] = bt_models_.size();
          bt_models_.push_back(*m);
        }
    // The refit costs models^2 per iteration and replicate: beyond a few
    // hundred models, fall back to the published intervals.
    if (bt_models_.size() > 300) {
      warnings.push_back(fmt::format("{}: {} models is too many to refit per bootstrap replicate; using the published rating intervals",
                                     s_.battles, bt_models_.size()));
      battles_.clear();
      bt_models_.clear();
      return load_entries();
    }
    for (const auto& b : battles_) bt_idx_.emplace_back(idx[b.a], idx[b.b]);
    std::vector<size_t> all(battles_.size());
    std::iota(all.begin(), all.end(), 0);
    bt_point_ = fit_bt(all);
  }
  load_entries();
}

void Engine::load_entries() {
  for (const auto& e : s_.entries) {
    EntryPlan plan;
    plan.entry = &e;
    plan.team = p_.team(e.team);
    plan.model = p_.model(e.model);
    plan.target = p_.model(e.target);
    EvalResults* team_eval = evals_.count(e.model) ? evals_[e.model] : nullptr;
    EvalResults* target_eval = evals_.count(e.target) ? evals_[e.target] : nullptr;
    if (!team_eval) missing(fmt::format("team '{}': no eval results for model '{}' (stages.{}.evals)", e.team, e.model, s_.id));
    for (const auto& part : t_.parts) {
      PartSlot ps;
      ps.def = &part;
      for (const auto& sp : part.subparts) {
        SubSlot ss{&sp, {}};
        for (const auto& ref : sp.team_chosen ? e.chosen : sp.benchmarks) {
          BenchSlot b;
          b.ref = ref;
          b.relative = sp.score == SubScore::RelativeToTarget;
          if (team_eval) b.team = team_eval->task(ref.task, ref.metric, ref.sample_metric());
          if (!b.team.has_value)
            missing(fmt::format("team '{}': model '{}' has no result for {} {}", e.team, e.model, ref.task, ref.metric));
          if (b.relative) {
            if (!target_eval) missing(fmt::format("team '{}': no eval results for target model '{}'", e.team, e.target));
            else b.target = target_eval->task(ref.task, ref.metric, ref.sample_metric());
            if (target_eval && !b.target.has_value)
              missing(fmt::format("team '{}': target '{}' has no result for {} {}", e.team, e.target, ref.task, ref.metric));
            std::map<std::string, size_t> tid;
            for (size_t i = 0; i < b.target.ids.size(); ++i) tid.emplace(b.target.ids[i], i);
            for (size_t i = 0; i < b.team.ids.size(); ++i) {
              auto it = tid.find(b.team.ids[i]);
              if (it != tid.end()) b.pairs.emplace_back(i, it->second);
            }
            if (!b.pairs.empty() && (b.pairs.size() != b.team.ids.size() || b.pairs.size() != b.target.ids.size()))
              warnings.push_back(fmt::format("team '{}': {} pairs {} of {} team items with {} target items by doc_id", e.team,
                                             ref.task, b.pairs.size(), b.team.ids.size(), b.target.ids.size()));
            double st = 0, sg = 0;
            for (auto [i, j] : b.pairs) st += b.team.items[i], sg += b.target.items[j];
            if (!b.pairs.empty()) {
              b.team_paired_mean = st / b.pairs.size();
              b.target_paired_mean = sg / b.pairs.size();
            }
          }
          if (!b.team.items.empty()) {
            b.team_item_mean = mean(b.team.items);
            if (std::abs(b.team_item_mean - b.team.value) > 5e-4 * std::max(1.0, std::abs(b.team.value)))
              warnings.push_back(fmt::format("team '{}': {} value {} in results.json differs from the mean {} of its samples",
                                             e.team, ref.task, b.team.value, b.team_item_mean));
          }
          ss.benches.push_back(std::move(b));
        }
        ps.subs.push_back(std::move(ss));
      }
      if (part.kind == PartKind::Expert) {
        if (!has_expert_) missing_error(fmt::format("stage '{}' has an expert part but no expert_scores file", s_.id));
        auto it = expert_.by_model.find(e.model);
        if (it == expert_.by_model.end()) missing(fmt::format("team '{}': no expert score for model '{}'", e.team, e.model));
        else ps.has_panel = true, ps.panel = it->second;
        if (reviews_.count(e.model)) ps.reviews = reviews_[e.model];
      }
      if (part.kind == PartKind::User) {
        if (!has_ratings_) missing_error(fmt::format("stage '{}' has a user part but no ratings file", s_.id));
        auto it = ratings_.by_model.find(e.model);
        if (it == ratings_.by_model.end()) missing(fmt::format("team '{}': no arena rating for model '{}'", e.team, e.model));
        else ps.has_panel = true, ps.panel = it->second;
      }
      plan.parts.push_back(std::move(ps));
    }
    // Gates: lineage verdicts against foreign models.
    for (const auto& l : e.lineage) {
      auto found = read_lineage(in_, p_.resolve(l.report), l.label);
      for (auto& f : found) plan.lineage.push_back(std::move(f));
    }
    if (!p_.gates.empty() && e.lineage.empty())
      warnings.push_back(fmt::format("team '{}': no lineage report, so no gate could be checked", e.team));
    for (const auto& f : plan.lineage) {
      for (const auto& g : p_.gates) {
        if (f.verdict != g.verdict) continue;
        std::vector<std::string> hit;
        if (g.verdict == "partial") {
          for (const auto& [kind, counts] : f.kinds)
            if (counts.first > 0 && (g.component_kinds.empty() ||
                                     std::find(g.component_kinds.begin(), g.component_kinds.end(), kind) != g.component_kinds.end()))
              hit.push_back(kind);
          if (hit.empty()) continue;
        }
        json gj = {{"verdict", f.verdict}, {"against", f.other}, {"components", hit},
                   {"action", g.action == GateAction::Ineligible ? "ineligible" : "penalty"}, {"rule", g.rule},
                   {"source", src_json(f.source)}};
        if (g.action == GateAction::Ineligible) plan.eligible = false;
        else plan.penalty += g.penalty_points, gj["penalty_points"] = g.penalty_points;
        plan.gates.push_back(gj);
      }
    }
    if (!e.perf.empty()) {
      plan.perf = read_perf(in_, p_.resolve(e.perf), e.perf_concurrency);
      plan.has_perf = true;
    }
    plans.push_back(std::move(plan));
  }
}

// Bradley-Terry strengths (Elo scale) by minorization-maximization; a half
// virtual tie between every pair keeps models with no wins finite.
std::vector<double> Engine::fit_bt(const std::vector<size_t>& pick) const {
  size_t m = bt_models_.size();
  std::vector<double> wins(m * m, 0.0);
  for (size_t k : pick) {
    auto [a, b] = bt_idx_[k];
    wins[a * m + b] += battles_[k].score_a;
    wins[b * m + a] += 1 - battles_[k].score_a;
  }
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j < m; ++j)
      if (i != j) wins[i * m + j] += 0.25;
  std::vector<double> p(m, 1.0);
  for (int it = 0; it < 200; ++it) {
    std::vector<double> np(m);
    for (size_t i = 0; i < m; ++i) {
      double w = 0, den = 0;
      for (size_t j = 0; j < m; ++j) {
        if (i == j) continue;
        w += wins[i * m + j];
        den += (wins[i * m + j] + wins[j * m + i]) / (p[i] + p[j]);
      }
      np[i] = den > 0 ? w / den : p[i];
    }
    double g = 0;
    for (double x : np) g += std::log(x);
    g = std::exp(g / static_cast<double>(m));
    for (auto& x : np) x /= g;
    p.swap(np);
  }
  std::vector<double> r(m);
  for (size_t i = 0; i < m; ++i) r[i] = 1000 + 400 * std::log10(p[i]);
  return r;
}

Draw Engine::point_draw() const {
  Draw d;
  for (const auto& plan : plans) {
    auto& eb = d.bench.emplace_back();
    auto& ep = d.panel.emplace_back();
    for (const auto& ps : plan.parts) {
      auto& pb = eb.emplace_back();
      for (const auto& ss : ps.subs) {
        auto& sb = pb.emplace_back();
        for (const auto& b : ss.benches)
          sb.emplace_back(b.team.has_value ? b.team.value * b.ref.scale : kNaN,
                          b.target.has_value ? b.target.value * b.ref.scale : kNaN);
      }
      ep.push_back(ps.has_panel ? ps.panel.value : kNaN);
    }
  }
  return d;
}

Draw Engine::random_draw(Rng& rng) const {
  Draw d = point_draw();
  std::vector<double> bt;
  if (!battles_.empty()) {
    std::vector<size_t> pick(battles_.size());
    for (auto& k : pick) k = rng.below(battles_.size());
    bt = fit_bt(pick);
  }
  for (size_t e = 0; e < plans.size(); ++e) {
    const auto& plan = plans[e];
    for (size_t pi = 0; pi < plan.parts.size(); ++pi) {
      const auto& ps = plan.parts[pi];
      for (size_t si = 0; si < ps.subs.size(); ++si) {
        for (size_t bi = 0; bi < ps.subs[si].benches.size(); ++bi) {
          const auto& b = ps.subs[si].benches[bi];
          auto& v = d.bench[e][pi][si][bi];
          if (b.relative && !b.pairs.empty()) {  // paired: the same items for team and target
            double st = 0, sg = 0;
            for (size_t k = 0; k < b.pairs.size(); ++k) {
              auto [i, j] = b.pairs[rng.below(b.pairs.size())];
              st += b.team.items[i], sg += b.target.items[j];
            }
            double n = static_cast<double>(b.pairs.size());
            v.first += (st / n - b.team_paired_mean) * b.ref.scale;
            v.second += (sg / n - b.target_paired_mean) * b.ref.scale;
          } else if (!b.relative && !b.team.items.empty()) {
            double st = 0;
            for (size_t k = 0; k < b.team.items.size(); ++k) st += b.team.items[rng.below(b.team.items.size())];
            v.first += (st / static_cast<double>(b.team.items.size()) - b.team_item_mean) * b.ref.scale;
          }
        }
      }
      if (!ps.has_panel) continue;
      double& pv = d.panel[e][pi];
      if (ps.def->kind == PartKind::Expert && ps.reviews.size() > 1) {
        double s = 0;
        for (size_t k = 0; k < ps.reviews.size(); ++k) s += ps.reviews[rng.below(ps.reviews.size())];
        double m0 = mean(ps.reviews);
        if (m0 != 0) pv *= (s / static_cast<double>(ps.reviews.size())) / m0;
      } else if (ps.def->kind == PartKind::User && !bt.empty() &&
                 std::find(bt_models_.begin(), bt_models_.end(), plan.model->id) != bt_models_.end()) {
        size_t k = std::find(bt_models_.begin(), bt_models_.end(), plan.model->id) - bt_models_.begin();
        pv += bt[k] - bt_point_[k];
      } else if (ps.panel.has_ci) {  // only the published interval: a normal with that width
        double sd = (ps.panel.ci_high - ps.panel.ci_low) / (2 * 1.959964);
        pv += sd * rng.normal();
      }
    }
  }
  return d;
}

double Engine::term_value(const IndexTerm& term, size_t e, const std::vector<TeamEval>& ev, Source* src, bool* ok) const {
  *ok = true;
  const std::string& s = term.source;
  auto colon = s.find(':');
  std::string kind = s.substr(0, colon), key = s.substr(colon + 1);
  if (kind == "part") {
    for (size_t pi = 0; pi < t_.parts.size(); ++pi)
      if (t_.parts[pi].id == key) {
        if (t_.parts[pi].kind == PartKind::Index) fail(p_.path, "index term '{}' refers to an index part", s);
        return t_.parts[pi].weight > 0 ? 100 * ev[e].parts[pi].points / t_.parts[pi].weight : 0;
      }
    fail(p_.path, "index term '{}': track '{}' has no such part", s, t_.id);
  }
  if (kind == "relative") {
    for (size_t pi = 0; pi < t_.parts.size(); ++pi)
      for (size_t si = 0; si < t_.parts[pi].subparts.size(); ++si)
        if (t_.parts[pi].subparts[si].id == key) {
          if (t_.parts[pi].subparts[si].score != SubScore::RelativeToTarget)
            fail(p_.path, "index term '{}': subpart is not scored relative_to_target", s);
          double r = ev[e].parts[pi].subs[si].value;
          if (!std::isfinite(r)) *ok = false;
          return std::isfinite(r) ? 100 * r : 0;
        }
    fail(p_.path, "index term '{}': track '{}' has no such subpart", s, t_.id);
  }
  // perf and ripple: relative to the best entry of the stage.
  auto raw = [&](size_t k) -> std::optional<double> {
    if (kind == "perf") return plans[k].has_perf ? plans[k].perf.field(key) : std::nullopt;
    if (key == "downloads") return plans[k].model->ripple.downloads;
    if (key == "derivatives") return plans[k].model->ripple.derivatives;
    fail(p_.path, "index term '{}': ripple inputs are downloads and derivatives", s);
  };
  auto mine = raw(e);
  if (src) *src = kind == "perf" && plans[e].has_perf ? Source{plans[e].perf.source.file, plans[e].perf.source.sha256, key}
                                                      : Source{in_.relative(p_.path), p_.sha256, "models." + plans[e].model->id + ".ripple." + key};
  if (!mine) {
    *ok = false;
    return 0;
  }
  double best = term.lower_is_better ? std::numeric_limits<double>::infinity() : 0;
  for (size_t k = 0; k < plans.size(); ++k)
    if (auto v = raw(k)) best = term.lower_is_better ? std::min(best, *v) : std::max(best, *v);
  if (kind == "ripple") return best > 0 ? 100 * std::log1p(*mine) / std::log1p(best) : 0;
  if (term.lower_is_better) return *mine > 0 ? 100 * best / *mine : 0;
  return best > 0 ? 100 * *mine / best : 0;
}

void Engine::compute_index(const IndexDef& def, std::vector<TeamEval>& ev, bool frontier) const {
  for (size_t e = 0; e < ev.size(); ++e) {
    double sw = 0, sv = 0;
    auto& terms = frontier ? ev[e].frontier_terms : ev[e].diffusion_terms;
    terms.clear();
    for (const auto& t : def.terms) {
      bool ok;
      double v = term_value(t, e, ev, nullptr, &ok);
      terms.push_back(v);
      sw += t.weight;
      sv += t.weight * v;
    }
    (frontier ? ev[e].frontier : ev[e].diffusion) = sw > 0 ? sv / sw : 0;
  }
}

std::vector<TeamEval> Engine::evaluate(const Draw& d) const {
  std::vector<TeamEval> ev(plans.size());
  double best_rating = -std::numeric_limits<double>::infinity(), best_user = 0;
  for (size_t e = 0; e < plans.size(); ++e)
    for (size_t pi = 0; pi < t_.parts.size(); ++pi)
      if (t_.parts[pi].kind == PartKind::User && std::isfinite(d.panel[e][pi]))
        best_rating = std::max(best_rating, d.panel[e][pi]), best_user = std::max(best_user, d.panel[e][pi]);
  for (size_t e = 0; e < plans.size(); ++e) {
    auto& te = ev[e];
    for (size_t pi = 0; pi < t_.parts.size(); ++pi) {
      const Part& part = t_.parts[pi];
      PartEval pe;
      for (size_t si = 0; si < part.subparts.size(); ++si) {
        const Subpart& sp = part.subparts[si];
        SubEval se;
        const auto& vals = d.bench[e][pi][si];
        const auto& slots = plans[e].parts[pi].subs[si].benches;
        if (sp.score == SubScore::Absolute) {
          double s = 0;
          for (size_t b = 0; b < vals.size(); ++b) {
            double n = std::isfinite(vals[b].first) ? slots[b].ref.normalize.apply(vals[b].first) : 0;
            se.normalized.push_back(n);
            s += n;
          }
          std::vector<double> tv;
          for (auto& v : vals) tv.push_back(std::isfinite(v.first) ? v.first : 0);
          se.team_mean = mean(tv);
          se.value = vals.empty() ? 0 : s / static_cast<double>(vals.size());
          se.points = sp.weight * se.value;
        } else {
          std::vector<double> tv, gv;
          for (auto& v : vals) {
            if (!std::isfinite(v.second)) {
              se.ratios.push_back(kNaN);
              continue;  // no target value: this benchmark cannot be compared
            }
            double t = std::isfinite(v.first) ? v.first : 0;
            tv.push_back(t);
            gv.push_back(v.second);
            se.ratios.push_back(v.second > 0 ? t / v.second : kNaN);
          }
          se.team_mean = mean(tv);
          se.target_mean = mean(gv);
          se.ratio_of_means = se.target_mean > 0 ? se.team_mean / se.target_mean : kNaN;
          std::vector<double> fr;
          for (double r : se.ratios)
            if (std::isfinite(r)) fr.push_back(r);
          se.mean_of_ratios = mean(fr);
          se.value = sp.formula == RelFormula::RatioOfMeans ? se.ratio_of_means : se.mean_of_ratios;
          se.points = std::isfinite(se.value) ? sp.weight * std::min(1.0, se.value / sp.full_at) : 0;
        }
        pe.points += se.points;
        pe.subs.push_back(std::move(se));
      }
      double pv = d.panel[e][pi];
      if (part.kind == PartKind::Expert) pe.points = std::isfinite(pv) ? part.weight * std::clamp(pv / 100, 0.0, 1.0) : 0;
      if (part.kind == PartKind::User && std::isfinite(pv)) {
        double f = part.user_scale == UserScale::EloVsBest ? 2 / (1 + std::pow(10.0, (best_rating - pv) / part.elo_scale))
                   : part.user_scale == UserScale::Linear ? pv / 100
                                                          : (best_user > 0 ? pv / best_user : 0);
        pe.points = part.weight * std::clamp(f, 0.0, 1.0);
      }
      te.parts.push_back(std::move(pe));
    }
  }
  compute_index(p_.frontier, ev, true);
  compute_index(p_.diffusion, ev, false);
  for (size_t e = 0; e < plans.size(); ++e) {
    auto& te = ev[e];
    te.total = -plans[e].penalty;
    for (size_t pi = 0; pi < t_.parts.size(); ++pi) {
      const Part& part = t_.parts[pi];
      if (part.kind == PartKind::Index)
        te.parts[pi].points = part.weight * std::clamp((part.index == "frontier" ? te.frontier : te.diffusion) / 100, 0.0, 1.0);
      te.total += te.parts[pi].points;
    }
    te.total = std::max(0.0, te.total);
  }
  rank(ev);
  return ev;
}

// Ranks eligible teams by total as published (rounded), then by the stage's
// tie-breaks; teams still equal share a rank, and a tie at the cut advances all.
void Engine::rank(std::vector<TeamEval>& ev) const {
  auto key = [&](size_t e) {
    std::vector<double> k{round_to(ev[e].total, p_.precision)};
    for (const auto& tb : s_.tie_breaks) {
      if (tb == "index:frontier") k.push_back(round_to(ev[e].frontier, p_.precision));
      else if (tb == "index:diffusion") k.push_back(round_to(ev[e].diffusion, p_.precision));
      else
        for (size_t pi = 0; pi < t_.parts.size(); ++pi)
          if ("part:" + t_.parts[pi].id == tb) k.push_back(round_to(ev[e].parts[pi].points, p_.precision));
    }
    return k;
  };
  std::vector<size_t> order;
  for (size_t e = 0; e < ev.size(); ++e) {
    ev[e].tie_at_cut = false;
    if (plans[e].eligible) order.push_back(e);
    else ev[e].rank = 0, ev[e].decision = -1;
  }
  std::vector<std::vector<double>> keys(ev.size());
  for (size_t e : order) keys[e] = key(e);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return keys[a] > keys[b]; });
  for (size_t i = 0; i < order.size(); ++i) {
    size_t e = order[i];
    ev[e].rank = i > 0 && keys[e] == keys[order[i - 1]] ? ev[order[i - 1]].rank : static_cast<int>(i) + 1;
    ev[e].decision = ev[e].rank <= s_.advance ? 1 : 0;
  }
  // A tie that straddles the cut: everyone tied at the last advancing rank advances.
  if (s_.advance > 0 && static_cast<int>(order.size()) > s_.advance) {
    size_t last = order[s_.advance - 1], first_out = order[s_.advance];
    if (keys[last] == keys[first_out])
      for (size_t e : order)
        if (keys[e] == keys[last]) ev[e].tie_at_cut = true;
  }
}

// ---- intervals ----

struct Interval {
  double lo = kNaN, hi = kNaN;
};
Interval percentile_ci(std::vector<double> v, double level) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }), v.end());
  if (v.size() < 2) return {};
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    double pos = q * static_cast<double>(v.size() - 1);
    size_t i = static_cast<size_t>(pos);
    double f = pos - static_cast<double>(i);
    return i + 1 < v.size() ? v[i] * (1 - f) + v[i + 1] * f : v[i];
  };
  return {at((1 - level) / 2), at(1 - (1 - level) / 2)};
}

json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json build_ci(const std::vector<std::vector<TeamEval>>& reps, double level,
              const std::function<double(const std::vector<TeamEval>&)>& get) {
  if (reps.empty()) return nullptr;
  std::vector<double> v;
  v.reserve(reps.size());
  for (const auto& r : reps) v.push_back(get(r));
  Interval i = percentile_ci(std::move(v), level);
  if (!std::isfinite(i.lo)) return nullptr;
  return json::array({i.lo, i.hi});
}

const char* decision_name(int d) { return d > 0 ? "advance" : d == 0 ? "eliminate" : "ineligible"; }

json Engine::build(const std::vector<TeamEval>& point, const std::vector<std::vector<TeamEval>>& reps, int replicates) {
  double level = p_.bootstrap.level;
  auto ci = [&](const std::function<double(const std::vector<TeamEval>&)>& f) { return build_ci(reps, level, f); };
  json teams = json::array();
  for (size_t e = 0; e < plans.size(); ++e) {
    const auto& plan = plans[e];
    const auto& te = point[e];
    json parts = json::array();
    for (size_t pi = 0; pi < t_.parts.size(); ++pi) {
      const Part& part = t_.parts[pi];
      const auto& ps = plan.parts[pi];
      json pj = {{"id", part.id}, {"name", {{"ko", part.name.ko}, {"en", part.name.en}}}, {"weight", part.weight},
                 {"points", te.parts[pi].points},
                 {"ci", ci([&](const std::vector<TeamEval>& r) { return r[e].parts[pi].points; })}};
      if (part.kind == PartKind::Expert || part.kind == PartKind::User) {
        pj["kind"] = part.kind == PartKind::Expert ? "expert" : "user";
        pj["input"] = ps.has_panel ? json(ps.panel.value) : json(nullptr);
        pj["input_ci"] = ps.has_panel && ps.panel.has_ci ? json::array({ps.panel.ci_low, ps.panel.ci_high}) : json(nullptr);
        json sources = json::array();
        if (ps.has_panel) sources.push_back(src_json(ps.panel.source));
        if (part.kind == PartKind::Expert && !ps.reviews.empty()) sources.push_back(src_json(reviews_src_));
        if (part.kind == PartKind::User && !battles_.empty()) sources.push_back(src_json(battles_src_));
        pj["sources"] = sources;
        pj["synthetic"] = part.kind == PartKind::Expert ? expert_synthetic() : ratings_synthetic();
        pj["interval_from"] = part.kind == PartKind::Expert ? (ps.reviews.size() > 1 ? "bootstrap over reviews" : ps.panel.has_ci ? "published interval" : "none")
                                                            : (!battles_.empty() ? "bootstrap over battles" : ps.panel.has_ci ? "published interval" : "none");
      } else if (part.kind == PartKind::Index) {
        pj["kind"] = "index";
        pj["index"] = part.index;
      } else {
        pj["kind"] = "benchmarks";
      }
      json subs = json::array();
      for (size_t si = 0; si < part.subparts.size(); ++si) {
        const Subpart& sp = part.subparts[si];
        const auto& se = te.parts[pi].subs[si];
        auto getsub = [&](auto f) { return ci([&, f](const std::vector<TeamEval>& r) { return f(r[e].parts[pi].subs[si]); }); };
        json sj = {{"id", sp.id}, {"name", {{"ko", sp.name.ko}, {"en", sp.name.en}}}, {"weight", sp.weight},
                   {"score", sp.score == SubScore::Absolute ? "absolute" : "relative_to_target"}, {"points", se.points},
                   {"points_ci", getsub([](const SubEval& s) { return s.points; })}, {"value", num(se.value)},
                   {"value_ci", getsub([](const SubEval& s) { return s.value; })}, {"team_mean", num(se.team_mean)},
                   {"team_mean_ci", getsub([](const SubEval& s) { return s.team_mean; })}};
        if (sp.score == SubScore::RelativeToTarget) {
          sj["formula"] = formula_name(sp.formula);
          sj["full_at"] = sp.full_at;
          sj["target_mean"] = num(se.target_mean);
          sj["target_mean_ci"] = getsub([](const SubEval& s) { return s.target_mean; });
          sj["ratio_of_means"] = num(se.ratio_of_means);
          sj["ratio_of_means_ci"] = getsub([](const SubEval& s) { return s.ratio_of_means; });
          sj["mean_of_ratios"] = num(se.mean_of_ratios);
          sj["mean_of_ratios_ci"] = getsub([](const SubEval& s) { return s.mean_of_ratios; });
        }
        json benches = json::array();
        const auto& slots = ps.subs[si].benches;
        for (size_t bi = 0; bi < slots.size(); ++bi) {
          const auto& b = slots[bi];
          json bj = {{"task", b.ref.task}, {"metric", b.ref.metric},
                     {"team", b.team.has_value ? json(b.team.value * b.ref.scale) : json(nullptr)},
                     {"team_items", b.team.items.size()},
                     {"team_source", b.team.has_value ? src_json(b.team.value_source) : json(nullptr)},
                     {"team_items_source", b.team.items.empty() ? json(nullptr) : src_json(b.team.items_source)}};
          if (b.relative) {
            bj["target"] = b.target.has_value ? json(b.target.value * b.ref.scale) : json(nullptr);
            bj["target_items"] = b.target.items.size();
            bj["paired_items"] = b.pairs.size();
            bj["target_source"] = b.target.has_value ? src_json(b.target.value_source) : json(nullptr);
            bj["target_items_source"] = b.target.items.empty() ? json(nullptr) : src_json(b.target.items_source);
            bj["ratio"] = num(se.ratios[bi]);
            bj["ratio_ci"] = getsub([bi](const SubEval& s) { return s.ratios[bi]; });
          } else {
            bj["normalize"] = {{"floor", b.ref.normalize.floor}, {"ceiling", b.ref.normalize.ceiling}};
            bj["normalized"] = se.normalized[bi];
            bj["normalized_ci"] = getsub([bi](const SubEval& s) { return s.normalized[bi]; });
          }
          bj["missing"] = !b.team.has_value || (b.relative && !b.target.has_value);
          benches.push_back(bj);
        }
        sj["benchmarks"] = benches;
        subs.push_back(sj);
      }
      if (!subs.empty()) pj["subparts"] = subs;
      parts.push_back(pj);
    }
    auto index_json = [&](const IndexDef& def, bool frontier) {
      json terms = json::array();
      for (size_t k = 0; k < def.terms.size(); ++k) {
        Source src;
        bool ok;
        term_value(def.terms[k], e, point, &src, &ok);
        json tj = {{"source", def.terms[k].source}, {"weight", def.terms[k].weight},
                   {"value", (frontier ? te.frontier_terms : te.diffusion_terms)[k]}, {"available", ok}};
        if (def.terms[k].source.rfind("perf:", 0) == 0 || def.terms[k].source.rfind("ripple:", 0) == 0) tj["from"] = src_json(src);
        tj["ci"] = ci([&, k, frontier](const std::vector<TeamEval>& r) { return (frontier ? r[e].frontier_terms : r[e].diffusion_terms)[k]; });
        terms.push_back(tj);
      }
      return json{{"value", frontier ? te.frontier : te.diffusion},
                  {"ci", ci([&, frontier](const std::vector<TeamEval>& r) { return frontier ? r[e].frontier : r[e].diffusion; })},
                  {"terms", terms}};
    };
    int adv = 0;
    for (const auto& r : reps) adv += r[e].decision == 1;
    int flips = 0;
    for (const auto& r : reps) flips += r[e].decision != te.decision;
    std::vector<int> ranks;
    const Track* track = &t_;
    std::string level_name = plan.model->open_source_level;
    json lineage = json::array();
    for (const auto& f : plan.lineage) {
      json kinds = json::object();
      for (const auto& [k, c] : f.kinds) kinds[k] = {{"derived", c.first}, {"compared", c.second}};
      lineage.push_back({{"against", f.other}, {"verdict", f.verdict}, {"log10_p", f.log10_p}, {"kinds", kinds},
                         {"source", src_json(f.source)}});
    }
    json tj = {
        {"team", plan.entry->team},
        {"name", {{"ko", plan.team->name.ko}, {"en", plan.team->name.en}}},
        {"model", plan.model->id},
        {"model_name", {{"ko", plan.model->name.ko}, {"en", plan.model->name.en}}},
        {"target", plan.target->id},
        {"target_name", {{"ko", plan.target->name.ko}, {"en", plan.target->name.en}}},
        {"target_released", plan.target->released.str()},
        {"repechage", plan.entry->repechage},
        {"eligible", plan.eligible},
        {"gates", plan.gates},
        {"lineage", lineage},
        {"penalty", plan.penalty},
        {"parts", parts},
        {"total", te.total},
        {"total_published", round_to(te.total, p_.precision)},
        {"total_ci", ci([e](const std::vector<TeamEval>& r) { return r[e].total; })},
        {"rank", te.rank},
        {"decision", decision_name(te.decision)},
        {"tie_at_cut", te.tie_at_cut},
        {"advance_probability", reps.empty() ? json(nullptr) : json(double(adv) / reps.size())},
        {"flip_probability", reps.empty() ? json(nullptr) : json(double(flips) / reps.size())},
        {"frontier_index", index_json(p_.frontier, true)},
        {"diffusion_index", index_json(p_.diffusion, false)},
        {"open_source_level", level_name},
    };
    if (!track->cost_share.empty()) {
      auto it = track->cost_share.find(level_name);
      tj["cost_share"] = it == track->cost_share.end() ? json(nullptr) : json(it->second);
      if (it == track->cost_share.end())
        warnings.push_back(fmt::format("team '{}': open-source level '{}' is not in track '{}' cost_share table", plan.entry->team,
                                       level_name, t_.id));
    }
    if (plan.has_perf) tj["perf_source"] = src_json(plan.perf.source);
    teams.push_back(tj);
  }

  // Sensitivity: moving `delta` points from one part to another.
  json weight_changes = json::array();
  double delta = p_.sensitivity.weight_delta;
  if (delta > 0)
    for (size_t i = 0; i < t_.parts.size(); ++i)
      for (size_t j = 0; j < t_.parts.size(); ++j) {
        if (i == j || t_.parts[i].weight <= 0 || t_.parts[j].weight < delta) continue;
        auto ev = point;
        for (auto& te : ev) {
          te.parts[i].points *= (t_.parts[i].weight + delta) / t_.parts[i].weight;
          te.parts[j].points *= (t_.parts[j].weight - delta) / t_.parts[j].weight;
          te.total = 0;
          for (auto& p : te.parts) te.total += p.points;
        }
        for (size_t e = 0; e < ev.size(); ++e) ev[e].total = std::max(0.0, ev[e].total - plans[e].penalty);
        rank(ev);
        json flips = json::array();
        for (size_t e = 0; e < ev.size(); ++e)
          if (ev[e].decision != point[e].decision)
            flips.push_back({{"team", plans[e].entry->team}, {"from", decision_name(point[e].decision)}, {"to", decision_name(ev[e].decision)}});
        weight_changes.push_back({{"to", t_.parts[i].id}, {"from", t_.parts[j].id}, {"points", delta}, {"flips", flips}});
      }
  // The cut: midway between the last advancing and the first eliminated eligible team.
  double last_in = kNaN, first_out = kNaN;
  for (const auto& te : point) {
    if (te.decision == 1) last_in = std::isfinite(last_in) ? std::min(last_in, te.total) : te.total;
    if (te.decision == 0) first_out = std::isfinite(first_out) ? std::max(first_out, te.total) : te.total;
  }
  double cut = std::isfinite(last_in) && std::isfinite(first_out) ? (last_in + first_out) / 2 : kNaN;
  json within_ci = json::array();
  for (size_t e = 0; e < plans.size(); ++e) {
    const json& tci = teams[e]["total_ci"];
    if (point[e].decision < 0 || !std::isfinite(cut) || tci.is_null()) continue;
    if (tci[0].get<double>() <= cut && cut <= tci[1].get<double>())
      within_ci.push_back({{"team", plans[e].entry->team}, {"decision", decision_name(point[e].decision)},
                           {"total", point[e].total}, {"total_ci", tci}, {"flip_probability", teams[e]["flip_probability"]}});
  }
  std::vector<size_t> order(plans.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    int ra = point[a].rank > 0 ? point[a].rank : 1 << 20, rb = point[b].rank > 0 ? point[b].rank : 1 << 20;
    return ra < rb;
  });
  json ranking = json::array();
  for (size_t e : order) ranking.push_back(plans[e].entry->team);
  json sorted = json::array();
  for (size_t e : order) sorted.push_back(teams[e]);
  double avg = 0;
  for (const auto& te : point) avg += te.total;
  avg = point.empty() ? 0 : avg / point.size();

  json inputs = json::array();
  for (const auto& f : in_.files()) inputs.push_back({{"file", f.path}, {"sha256", f.sha256}, {"kind", f.kind}});
  return {
      {"schema", "kaival.stage-result/1"},
      {"program", {{"file", in_.relative(p_.path)}, {"sha256", p_.sha256}, {"title", {{"ko", p_.title.ko}, {"en", p_.title.en}}}}},
      {"stage", {{"id", s_.id}, {"number", s_.number}, {"name", {{"ko", s_.name.ko}, {"en", s_.name.en}}}, {"date", s_.date.str()},
                 {"track", t_.id}, {"track_name", {{"ko", t_.name.ko}, {"en", t_.name.en}}}, {"advance", s_.advance},
                 {"tie_breaks", s_.tie_breaks}, {"precision", p_.precision}}},
      {"parts", [&] {
         json a = json::array();
         for (const auto& p : t_.parts) a.push_back({{"id", p.id}, {"name", {{"ko", p.name.ko}, {"en", p.name.en}}}, {"weight", p.weight}});
         return a;
       }()},
      {"indices", {{"frontier", {{"ko", p_.frontier.name.ko}, {"en", p_.frontier.name.en}}},
                   {"diffusion", {{"ko", p_.diffusion.name.ko}, {"en", p_.diffusion.name.en}}}}},
      {"teams", sorted},
      {"ranking", ranking},
      {"average_total", avg},
      {"synthetic", {{"expert", expert_synthetic()}, {"user", ratings_synthetic()}}},
      {"sensitivity", {{"cut", num(cut)}, {"within_ci", within_ci}, {"weight_changes", weight_changes},
                       {"weight_delta", delta}}},
      {"bootstrap", {{"replicates", replicates}, {"seed", p_.bootstrap.seed}, {"level", level},
                     {"method", "percentile; items resampled per task (team and target paired by doc_id), reviews and battles resampled; published intervals used as normal when no per-item data"}}},
      {"warnings", warnings},
      {"inputs", inputs},
  };
}


}  // namespace

StageResult run(const Program& program, const RunOptions& opt) {
  const Stage* stage = program.stage(opt.stage);
  if (!stage) fail(program.path, "no stage '{}' in the program", opt.stage);
  const Track* track = program.track(stage->track);
  InputSet in(program.dir);
  in.read(program.path, "program");
  Engine eng(program, *stage, *track, in);
  eng.load();
  for (const auto& [file, sha] : program.pins) {
    auto it = std::find_if(in.files().begin(), in.files().end(), [&](const FileRef& f) { return f.path == file; });
    if (it == in.files().end()) continue;  // pinned for another stage
    if (it->sha256 != sha) fail(file, "sha256 is {} but the program file pins {}", it->sha256, sha);
  }
  auto point = eng.evaluate(eng.point_draw());
  int reps_n = opt.replicates >= 0 ? opt.replicates : program.bootstrap.replicates;
  std::vector<std::vector<TeamEval>> reps;
  reps.reserve(reps_n);
  Rng rng{program.bootstrap.seed};
  for (int r = 0; r < reps_n; ++r) reps.push_back(eng.evaluate(eng.random_draw(rng)));
  StageResult res;
  res.doc = eng.build(point, reps, reps_n);
  res.doc["manifest"] = {{"kaival_version", std::string(kVersion)},
                         {"created", opt.timestamp ? json(utc_now_iso()) : json(nullptr)},
                         {"parameters", {{"stage", stage->id}, {"replicates", reps_n}}}};
  res.warnings = eng.warnings;
  res.inputs = in.files();
  for (const auto& t : res.doc["teams"]) {
    TeamSummary s;
    s.team = t["team"];
    s.model = t["model"];
    s.target = t["target"];
    s.name = {t["name"]["ko"], t["name"]["en"]};
    s.eligible = t["eligible"];
    s.repechage = t["repechage"];
    s.decision = t["decision"];
    s.rank = t["rank"];
    s.total = t["total"];
    if (t["total_ci"].is_array()) s.total_ci_low = t["total_ci"][0], s.total_ci_high = t["total_ci"][1];
    else s.total_ci_low = s.total_ci_high = s.total;
    s.frontier = t["frontier_index"]["value"];
    s.diffusion = t["diffusion_index"]["value"];
    s.advance_probability = t["advance_probability"].is_number() ? t["advance_probability"].get<double>() : 0.0;
    for (const auto& p : t["parts"]) s.parts.emplace_back(p["id"], p["points"]);
    res.teams.push_back(std::move(s));
  }
  return res;
}

std::string summary_table(const StageResult& r) {
  const json& d = r.doc;
  std::string out = fmt::format("{} / {} — {} ({})\n", d["stage"]["name"]["ko"].get<std::string>(),
                                d["stage"]["name"]["en"].get<std::string>(), d["stage"]["date"].get<std::string>(),
                                d["stage"]["track"].get<std::string>());
  std::vector<std::string> head = {"순위 rank", "팀 team"};
  for (const auto& p : d["parts"]) head.push_back(p["name"]["ko"].get<std::string>() + " " + p["id"].get<std::string>());
  for (const char* h : {"총점 total", "95% CI", "목표 대비 vs target", "결정 decision"}) head.push_back(h);
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : d["teams"]) {
    std::vector<std::string> row = {t["rank"].get<int>() > 0 ? std::to_string(t["rank"].get<int>()) : "-",
                                    t["name"]["ko"].get<std::string>() + (t["repechage"].get<bool>() ? " (R)" : "")};
    for (const auto& p : t["parts"]) row.push_back(fmt::format("{:.1f}", p["points"].get<double>()));
    row.push_back(fmt::format("{:.1f}", t["total"].get<double>()));
    row.push_back(t["total_ci"].is_array() ? fmt::format("{:.1f}–{:.1f}", t["total_ci"][0].get<double>(), t["total_ci"][1].get<double>()) : "-");
    std::string rel = "-";
    for (const auto& p : t["parts"])
      if (p.contains("subparts"))
        for (const auto& s : p["subparts"])
          if (s.contains("ratio_of_means") && s["ratio_of_means"].is_number()) rel = fmt::format("{:.1f}%", 100 * s["ratio_of_means"].get<double>());
    row.push_back(rel);
    std::string dec = t["decision"];
    row.push_back(dec == "advance" ? "진출 advance" : dec == "eliminate" ? "탈락 eliminated" : "부적격 ineligible");
    rows.push_back(row);
  }
  std::vector<size_t> w(head.size());
  for (size_t i = 0; i < head.size(); ++i) w[i] = display_width(head[i]);
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) w[i] = std::max(w[i], display_width(row[i]));
  auto line = [&](const std::vector<std::string>& row) {
    std::string s = " ";
    for (size_t i = 0; i < row.size(); ++i) s += pad_right(row[i], w[i] + 2);
    return s + "\n";
  };
  out += line(head);
  for (const auto& row : rows) out += line(row);
  if (d["synthetic"]["expert"].get<bool>() || d["synthetic"]["user"].get<bool>())
    out += " 주의: 전문가/사용자 패널은 합성 데이터입니다. Note: expert/user panels are SYNTHETIC.\n";
  for (const auto& w2 : d["sensitivity"]["within_ci"])
    out += fmt::format(" 민감도 sensitivity: {} ({}) — total CI crosses the cut\n", w2["team"].get<std::string>(), w2["decision"].get<std::string>());
  for (const auto& w2 : r.warnings) out += " ! " + w2 + "\n";
  return out;
}

namespace {
void diff_rec(const json& a, const json& b, const std::string& path, std::vector<std::string>& out) {
  if (out.size() > 200) return;
  if (path == "/manifest/created" || path == "/manifest/kaival_version") return;  // not numbers of the decision
  if (a.is_number() && b.is_number()) {
    double x = a.get<double>(), y = b.get<double>();
    if (x != y && !(std::abs(x - y) <= 1e-9 * std::max(1.0, std::abs(x))))
      out.push_back(fmt::format("{}: {} != {}", path, a.dump(), b.dump()));
    return;
  }
  if (a.type() != b.type()) {
    out.push_back(fmt::format("{}: {} != {}", path, a.dump(), b.dump()));
    return;
  }
  if (a.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it) {
      if (!b.contains(it.key())) out.push_back(fmt::format("{}/{}: only in the first", path, it.key()));
      else diff_rec(it.value(), b[it.key()], path + "/" + it.key(), out);
    }
    for (auto it = b.begin(); it != b.end(); ++it)
      if (!a.contains(it.key())) out.push_back(fmt::format("{}/{}: only in the second", path, it.key()));
  } else if (a.is_array()) {
    if (a.size() != b.size()) out.push_back(fmt::format("{}: {} items != {} items", path, a.size(), b.size()));
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) diff_rec(a[i], b[i], fmt::format("{}/{}", path, i), out);
  } else if (a != b) {
    out.push_back(fmt::format("{}: {} != {}", path, a.dump(), b.dump()));
  }
}
}  // namespace

std::vector<std::string> diff_results(const json& a, const json& b) {
  std::vector<std::string> out;
  diff_rec(a, b, "", out);
  return out;
}

}  // namespace kaival::stage
