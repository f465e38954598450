#include "stage/program.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "core/hash.h"

namespace kaival::stage {

namespace fs = std::filesystem;

std::string Date::str() const { return fmt::format("{:04d}-{:02d}-{:02d}", year, month, day); }

static int days_in_month(int y, int m) {
  static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : d[m - 1];
}

Date Date::minus_months(int months) const {
  int total = year * 12 + (month - 1) - months;
  Date r{total / 12, total % 12 + 1, day};
  r.day = std::min(r.day, days_in_month(r.year, r.month));
  return r;
}

Date parse_date(const std::string& s, const std::string& where) {
  Date d;
  char tail = 0;
  if (s.size() != 10 || std::sscanf(s.c_str(), "%4d-%2d-%2d%c", &d.year, &d.month, &d.day, &tail) != 3 ||
      s[4] != '-' || s[7] != '-' || d.year < 1900 || d.year > 9999 || d.month < 1 || d.month > 12 || d.day < 1 ||
      d.day > days_in_month(d.year, d.month))
    fail(where, "'{}' is not a date (YYYY-MM-DD)", s);
  return d;
}

double Normalization::apply(double percent) const {
  double v = (percent - floor) / (ceiling - floor);
  return std::clamp(v, 0.0, 1.0);
}

std::string BenchmarkRef::sample_metric() const { return metric.substr(0, metric.find(',')); }

const char* formula_name(RelFormula f) { return f == RelFormula::RatioOfMeans ? "ratio_of_means" : "mean_of_ratios"; }

const ModelInfo* Program::model(const std::string& id) const {
  for (const auto& m : models)
    if (m.id == id) return &m;
  return nullptr;
}
const Program::Team* Program::team(const std::string& id) const {
  for (const auto& t : teams)
    if (t.id == id) return &t;
  return nullptr;
}
const Track* Program::track(const std::string& id) const {
  for (const auto& t : tracks)
    if (t.id == id) return &t;
  return nullptr;
}
const Stage* Program::stage(const std::string& id) const {
  if (id.empty()) return stages.empty() ? nullptr : &stages.back();
  for (const auto& s : stages)
    if (s.id == id) return &s;
  return nullptr;
}
std::string Program::resolve(const std::string& rel) const {
  if (rel.empty()) return rel;
  fs::path p(rel);
  return (p.is_absolute() ? p : fs::path(dir) / p).lexically_normal().string();
}

namespace {

// A YAML node with its key path, so every error says where it is.
class Node {
 public:
  Node(YAML::Node n, std::string path, const std::string& file) : n_(std::move(n)), path_(std::move(path)), file_(file) {}

  [[noreturn]] void error(const std::string& problem) const {
    throw FormatError(file_, path_.empty() ? problem : fmt::format("{}: {}", path_, problem));
  }
  const std::string& path() const { return path_; }
  bool has(const std::string& k) const { return n_.IsMap() && n_[k] && !n_[k].IsNull(); }
  bool is_map() const { return n_.IsMap(); }
  Node at(const std::string& k) const {
    if (!n_.IsMap()) error("expected a mapping");
    if (!has(k)) Node(n_, join(k), file_).error("required key is missing");
    return Node(n_[k], join(k), file_);
  }
  std::vector<Node> list(const std::string& k, bool required = false) const {
    std::vector<Node> out;
    if (!has(k)) {
      if (required) at(k);
      return out;
    }
    Node l = at(k);
    if (!l.n_.IsSequence()) l.error("expected a list");
    for (size_t i = 0; i < l.n_.size(); ++i) out.emplace_back(l.n_[i], fmt::format("{}[{}]", l.path_, i), file_);
    return out;
  }
  std::vector<std::pair<std::string, Node>> entries(const std::string& k) const {
    std::vector<std::pair<std::string, Node>> out;
    if (!has(k)) return out;
    Node m = at(k);
    if (!m.n_.IsMap()) m.error("expected a mapping");
    for (auto it = m.n_.begin(); it != m.n_.end(); ++it) {
      std::string key = it->first.as<std::string>();
      out.emplace_back(key, Node(it->second, m.join(key), file_));
    }
    return out;
  }
  std::string str() const {
    if (!n_.IsScalar()) error("expected a string");
    return n_.as<std::string>();
  }
  double num() const {
    if (!n_.IsScalar()) error("expected a number");
    try {
      double v = n_.as<double>();
      if (!std::isfinite(v)) error("expected a finite number");
      return v;
    } catch (const YAML::Exception&) {
      error(fmt::format("'{}' is not a number", n_.Scalar()));
    }
  }
  bool boolean() const {
    try {
      return n_.as<bool>();
    } catch (const YAML::Exception&) {
      error("expected true or false");
    }
  }
  std::string str(const std::string& k) const { return at(k).str(); }
  std::string str(const std::string& k, const std::string& def) const { return has(k) ? at(k).str() : def; }
  double num(const std::string& k) const { return at(k).num(); }
  double num(const std::string& k, double def) const { return has(k) ? at(k).num() : def; }
  double num_in(const std::string& k, double def, double lo, double hi) const {
    double v = num(k, def);
    if (v < lo || v > hi) at(k).error(fmt::format("{} is outside [{}, {}]", v, lo, hi));
    return v;
  }
  bool boolean(const std::string& k, bool def) const { return has(k) ? at(k).boolean() : def; }
  std::string one_of(const std::string& k, const std::string& def, std::initializer_list<const char*> allowed) const {
    std::string v = str(k, def);
    for (const char* a : allowed)
      if (v == a) return v;
    std::string list;
    for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
    at(k).error(fmt::format("'{}' is not one of: {}", v, list));
  }
  // Strict: a misspelt key is an error, not a silently ignored rule.
  void only(std::initializer_list<const char*> keys) const {
    if (!n_.IsMap()) error("expected a mapping");
    for (auto it = n_.begin(); it != n_.end(); ++it) {
      std::string k = it->first.as<std::string>();
      if (std::none_of(keys.begin(), keys.end(), [&](const char* a) { return k == a; }))
        Node(it->second, join(k), file_).error("unknown key");
    }
  }
  Bilingual bilingual(const std::string& k) const {
    Bilingual b;
    if (!has(k)) return b;
    Node n = at(k);
    if (n.n_.IsScalar()) {
      b.en = b.ko = n.str();
    } else {
      n.only({"ko", "en"});
      b.ko = n.str("ko", "");
      b.en = n.str("en", b.ko);
      if (b.ko.empty()) b.ko = b.en;
    }
    return b;
  }

 private:
  std::string join(const std::string& k) const { return path_.empty() ? k : path_ + "." + k; }
  YAML::Node n_;
  std::string path_;
  const std::string& file_;
};

BenchmarkRef parse_benchmark(const Node& n) {
  n.only({"task", "metric", "scale", "normalize"});
  BenchmarkRef b;
  b.task = n.str("task");
  b.metric = n.str("metric", b.metric);
  b.scale = n.num_in("scale", 100, 1e-9, 1e9);
  if (n.has("normalize")) {
    Node m = n.at("normalize");
    m.only({"floor", "ceiling"});
    b.normalize.floor = m.num("floor", 0);
    b.normalize.ceiling = m.num("ceiling", 100);
    if (!(b.normalize.ceiling > b.normalize.floor)) m.error("ceiling must be above floor");
  }
  return b;
}

Subpart parse_subpart(const Node& n) {
  n.only({"id", "name", "weight", "score", "formula", "full_at", "benchmarks"});
  Subpart s;
  s.id = n.str("id");
  s.name = n.bilingual("name");
  if (s.name.en.empty()) s.name = {s.id, s.id};
  s.weight = n.num_in("weight", 0, 0, 1000);
  s.score = n.one_of("score", "absolute", {"absolute", "relative_to_target"}) == "absolute" ? SubScore::Absolute
                                                                                            : SubScore::RelativeToTarget;
  s.formula = n.one_of("formula", "ratio_of_means", {"ratio_of_means", "mean_of_ratios"}) == "ratio_of_means"
                  ? RelFormula::RatioOfMeans
                  : RelFormula::MeanOfRatios;
  s.full_at = n.num_in("full_at", 1.0, 1e-6, 100);
  Node b = n.at("benchmarks");
  // `benchmarks: team` means each team's chosen list; otherwise a list.
  bool scalar = false;
  try {
    scalar = b.str() == "team";
  } catch (const FormatError&) {
  }
  if (scalar) {
    s.team_chosen = true;
    if (s.score != SubScore::RelativeToTarget) b.error("team-chosen benchmarks are scored relative_to_target");
  } else {
    for (const auto& e : n.list("benchmarks", true)) s.benchmarks.push_back(parse_benchmark(e));
    if (s.benchmarks.empty()) b.error("at least one benchmark is needed");
  }
  return s;
}

Part parse_part(const Node& n) {
  n.only({"id", "name", "weight", "kind", "subparts", "scale", "elo_scale", "index"});
  Part p;
  p.id = n.str("id");
  p.name = n.bilingual("name");
  if (p.name.en.empty()) p.name = {p.id, p.id};
  p.weight = n.num_in("weight", 0, 0, 1000);
  std::string kind = n.one_of("kind", "", {"benchmarks", "expert", "user", "index"});
  p.kind = kind == "benchmarks" ? PartKind::Benchmarks
           : kind == "expert"   ? PartKind::Expert
           : kind == "user"     ? PartKind::User
                                : PartKind::Index;
  if (p.kind == PartKind::Benchmarks) {
    double sum = 0;
    std::set<std::string> ids;
    for (const auto& s : n.list("subparts", true)) {
      p.subparts.push_back(parse_subpart(s));
      if (!ids.insert(p.subparts.back().id).second) s.error(fmt::format("duplicate subpart id '{}'", p.subparts.back().id));
      sum += p.subparts.back().weight;
    }
    if (std::abs(sum - p.weight) > 1e-9)
      n.at("subparts").error(fmt::format("subpart weights add up to {} but the part weighs {}", sum, p.weight));
  } else if (n.has("subparts")) {
    n.at("subparts").error("only a benchmarks part has subparts");
  }
  if (p.kind == PartKind::User) {
    std::string sc = n.one_of("scale", "elo_vs_best", {"elo_vs_best", "linear", "relative_to_best"});
    p.user_scale = sc == "elo_vs_best" ? UserScale::EloVsBest : sc == "linear" ? UserScale::Linear : UserScale::RelativeToBest;
    p.elo_scale = n.num_in("elo_scale", 400, 1, 10000);
  }
  if (p.kind == PartKind::Index) p.index = n.one_of("index", "", {"frontier", "diffusion"});
  return p;
}

IndexDef parse_index(const Node& n, const std::string& id) {
  n.only({"name", "terms"});
  IndexDef d;
  d.id = id;
  d.name = n.bilingual("name");
  if (d.name.en.empty()) d.name = {id, id};
  for (const auto& t : n.list("terms", true)) {
    t.only({"source", "weight", "lower_is_better"});
    IndexTerm term;
    term.source = t.str("source");
    static const char* prefixes[] = {"part:", "relative:", "perf:", "ripple:"};
    if (std::none_of(std::begin(prefixes), std::end(prefixes),
                     [&](const char* p) { return term.source.rfind(p, 0) == 0; }))
      t.at("source").error(fmt::format("'{}' must start with part:, relative:, perf: or ripple:", term.source));
    term.weight = t.num_in("weight", 1, 0, 1e6);
    term.lower_is_better = t.boolean("lower_is_better", false);
    d.terms.push_back(term);
  }
  if (d.terms.empty()) n.at("terms").error("at least one term is needed");
  return d;
}

}  // namespace

static Program parse_checked(const std::string& text, const std::string& path, const std::string& dir);

Program parse_program(const std::string& text, const std::string& path, const std::string& dir) {
  try {
    return parse_checked(text, path, dir);
  } catch (const YAML::Exception& e) {  // e.g. a key that is not a scalar
    fail(path, "unexpected YAML structure: {}", e.what());
  }
}

static Program parse_checked(const std::string& text, const std::string& path, const std::string& dir) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(path, "not valid YAML: {}", e.what());
  }
  Program p;
  p.path = path;
  p.dir = dir;
  p.sha256 = sha256_hex(text);
  Node r(root, "", path);
  if (!root.IsMap()) r.error("expected a mapping at the top level");
  r.only({"schema", "title", "models", "teams", "tracks", "gates", "moving_target", "stages", "indices", "bootstrap",
          "sensitivity", "precision", "missing_results", "pins"});
  std::string schema = r.str("schema");
  if (schema != "kaival.program/1") {
    if (schema.rfind("kaival.program/", 0) == 0) r.at("schema").error(fmt::format("version '{}' is newer than this kaival reads (kaival.program/1)", schema));
    r.at("schema").error(fmt::format("'{}' is not kaival.program/1", schema));
  }
  p.title = r.bilingual("title");

  for (const auto& m : r.list("models", true)) {
    m.only({"id", "name", "organization", "license", "open_source_level", "released", "params_billion", "foreign", "ripple"});
    ModelInfo mi;
    mi.id = m.str("id");
    if (p.model(mi.id)) m.at("id").error(fmt::format("duplicate model id '{}'", mi.id));
    mi.name = m.bilingual("name");
    if (mi.name.en.empty()) mi.name = {mi.id, mi.id};
    mi.organization = m.str("organization", "");
    mi.license = m.str("license", "");
    mi.open_source_level = m.str("open_source_level", "");
    mi.released = parse_date(m.str("released"), path + ": " + m.path() + ".released");
    mi.params_billion = m.num_in("params_billion", 0, 0, 1e6);
    mi.foreign = m.boolean("foreign", false);
    if (m.has("ripple")) {
      Node rp = m.at("ripple");
      rp.only({"downloads", "derivatives"});
      mi.ripple.downloads = rp.num_in("downloads", 0, 0, 1e15);
      mi.ripple.derivatives = rp.num_in("derivatives", 0, 0, 1e15);
    }
    p.models.push_back(mi);
  }

  for (const auto& t : r.list("tracks", true)) {
    t.only({"id", "name", "parts", "cost_share"});
    Track tr;
    tr.id = t.str("id");
    if (p.track(tr.id)) t.at("id").error(fmt::format("duplicate track id '{}'", tr.id));
    tr.name = t.bilingual("name");
    if (tr.name.en.empty()) tr.name = {tr.id, tr.id};
    std::set<std::string> ids;
    for (const auto& pn : t.list("parts", true)) {
      tr.parts.push_back(parse_part(pn));
      if (!ids.insert(tr.parts.back().id).second) pn.error(fmt::format("duplicate part id '{}'", tr.parts.back().id));
    }
    for (const auto& [k, v] : t.entries("cost_share")) {
      double s = v.num();
      if (s < 0 || s > 1) v.error("a cost share is a fraction in [0, 1]");
      tr.cost_share[k] = s;
    }
    p.tracks.push_back(tr);
  }

  for (const auto& t : r.list("teams", true)) {
    t.only({"id", "name", "model", "track"});
    Program::Team tm;
    tm.id = t.str("id");
    if (p.team(tm.id)) t.at("id").error(fmt::format("duplicate team id '{}'", tm.id));
    tm.name = t.bilingual("name");
    if (tm.name.en.empty()) tm.name = {tm.id, tm.id};
    tm.model = t.str("model");
    if (!p.model(tm.model)) t.at("model").error(fmt::format("model '{}' is not in the model registry", tm.model));
    tm.track = t.str("track", p.tracks.empty() ? "" : p.tracks.front().id);
    if (!p.track(tm.track)) t.at("track").error(fmt::format("track '{}' is not defined", tm.track));
    p.teams.push_back(tm);
  }

  for (const auto& g : r.list("gates")) {
    g.only({"verdict", "component_kinds", "action", "penalty_points", "rule"});
    Gate gate;
    gate.verdict = g.one_of("verdict", "", {"derived", "partial"});
    for (const auto& k : g.list("component_kinds")) gate.component_kinds.push_back(k.str());
    gate.action = g.one_of("action", "", {"ineligible", "penalty"}) == "ineligible" ? GateAction::Ineligible : GateAction::Penalty;
    gate.penalty_points = g.num_in("penalty_points", 0, 0, 1000);
    if (gate.action == GateAction::Penalty && !g.has("penalty_points")) g.error("a penalty gate needs penalty_points");
    gate.rule = g.str("rule", "");
    p.gates.push_back(gate);
  }

  if (r.has("moving_target")) {
    Node m = r.at("moving_target");
    m.only({"max_age_months", "from_stage"});
    p.moving_target.max_age_months = static_cast<int>(m.num_in("max_age_months", 6, 0, 600));
    p.moving_target.from_stage = static_cast<int>(m.num_in("from_stage", 1, 1, 1000));
  }

  if (r.has("indices")) {
    Node ix = r.at("indices");
    ix.only({"frontier", "diffusion"});
    if (ix.has("frontier")) p.frontier = parse_index(ix.at("frontier"), "frontier");
    if (ix.has("diffusion")) p.diffusion = parse_index(ix.at("diffusion"), "diffusion");
  }
  if (p.frontier.terms.empty()) p.frontier = {"frontier", {"AI 프런티어 지수", "AI Frontier Index"}, {}};
  if (p.diffusion.terms.empty()) p.diffusion = {"diffusion", {"AI 확산 지수", "AI Diffusion Index"}, {}};

  if (r.has("bootstrap")) {
    Node b = r.at("bootstrap");
    b.only({"replicates", "seed", "level"});
    p.bootstrap.replicates = static_cast<int>(b.num_in("replicates", 1000, 0, 100000));
    p.bootstrap.seed = static_cast<uint64_t>(b.num_in("seed", 20260115, 0, 9e15));
    p.bootstrap.level = b.num_in("level", 0.95, 0.5, 0.999);
  }
  if (r.has("sensitivity")) {
    Node s = r.at("sensitivity");
    s.only({"weight_delta"});
    p.sensitivity.weight_delta = s.num_in("weight_delta", 2, 0, 100);
  }
  p.precision = static_cast<int>(r.num_in("precision", 1, 0, 6));
  p.missing = r.one_of("missing_results", "zero", {"zero", "error"}) == "zero" ? MissingPolicy::Zero : MissingPolicy::Error;

  for (const auto& [k, v] : r.entries("pins")) {
    std::string h = v.str();
    if (h.size() != 64 || h.find_first_not_of("0123456789abcdef") != std::string::npos)
      v.error("expected a lowercase hex SHA-256 (64 characters)");
    p.pins[fs::path(k).lexically_normal().generic_string()] = h;
  }
  std::set<std::string> stage_ids;
  for (const auto& s : r.list("stages", true)) {
    s.only({"id", "number", "name", "date", "track", "advance", "entries", "evals", "expert_scores", "reviews", "ratings",
            "battles", "tie_breaks"});
    Stage st;
    st.id = s.str("id");
    if (!stage_ids.insert(st.id).second) s.at("id").error(fmt::format("duplicate stage id '{}'", st.id));
    st.number = static_cast<int>(s.num_in("number", static_cast<double>(p.stages.size() + 1), 1, 1000));
    st.name = s.bilingual("name");
    if (st.name.en.empty()) st.name = {st.id, st.id};
    st.date = parse_date(s.str("date"), path + ": " + s.path() + ".date");
    if (!p.stages.empty() && !(p.stages.back().date < st.date)) s.at("date").error("stages must be in calendar order");
    st.track = s.str("track", p.tracks.empty() ? "" : p.tracks.front().id);
    const Track* track = p.track(st.track);
    if (!track) s.at("track").error(fmt::format("track '{}' is not defined", st.track));
    st.advance = static_cast<int>(s.num_in("advance", 0, 0, 1000));
    for (const auto& [k, v] : s.entries("evals")) {
      if (!p.model(k)) v.error(fmt::format("model '{}' is not in the model registry", k));
      st.evals[k] = v.str();
    }
    st.expert_scores = s.str("expert_scores", "");
    st.reviews = s.str("reviews", "");
    st.ratings = s.str("ratings", "");
    st.battles = s.str("battles", "");
    for (const auto& t : s.list("tie_breaks")) {
      std::string tb = t.str();
      bool ok = tb == "index:frontier" || tb == "index:diffusion";
      if (tb.rfind("part:", 0) == 0)
        ok = std::any_of(track->parts.begin(), track->parts.end(), [&](const Part& pt) { return "part:" + pt.id == tb; });
      if (!ok) t.error(fmt::format("'{}' is not a tie-break (part:<id of this track>, index:frontier, index:diffusion)", tb));
      st.tie_breaks.push_back(tb);
    }
    std::set<std::string> seen;
    for (const auto& e : s.list("entries", true)) {
      e.only({"team", "model", "target", "chosen", "lineage", "perf", "repechage"});
      Entry en;
      en.team = e.str("team");
      const Program::Team* team = p.team(en.team);
      if (!team) e.at("team").error(fmt::format("team '{}' is not defined", en.team));
      if (!seen.insert(en.team).second) e.at("team").error(fmt::format("team '{}' is entered twice", en.team));
      if (team->track != st.track)
        e.at("team").error(fmt::format("team '{}' is on track '{}' but the stage is on '{}'", en.team, team->track, st.track));
      en.model = e.str("model", team->model);
      if (!p.model(en.model)) e.at("model").error(fmt::format("model '{}' is not in the model registry", en.model));
      en.target = e.str("target");
      const ModelInfo* target = p.model(en.target);
      if (!target) e.at("target").error(fmt::format("target model '{}' is not in the model registry", en.target));
      // The moving target: the reference must be recent relative to the stage date.
      if (st.number >= p.moving_target.from_stage) {
        Date oldest = st.date.minus_months(p.moving_target.max_age_months);
        if (target->released < oldest)
          e.at("target").error(fmt::format(
              "team '{}' names target model '{}' released {}, more than {} months before the stage date {} (moving-target rule: released on or after {})",
              en.team, en.target, target->released.str(), p.moving_target.max_age_months, st.date.str(), oldest.str()));
        if (st.date < target->released)
          e.at("target").error(fmt::format("team '{}' names target model '{}' released {}, after the stage date {}", en.team,
                                           en.target, target->released.str(), st.date.str()));
      }
      for (const auto& c : e.list("chosen")) en.chosen.push_back(parse_benchmark(c));
      for (const auto& l : e.list("lineage")) {
        l.only({"report", "label"});
        en.lineage.push_back({l.str("report"), l.str("label", "")});
      }
      // perf: FILE, or {file: FILE, concurrency: N} to pick one run of a `kaival perf` sweep.
      if (e.has("perf") && e.at("perf").is_map()) {
        Node pf = e.at("perf");
        pf.only({"file", "concurrency"});
        en.perf = pf.str("file");
        const double c = pf.num("concurrency");
        if (c < 1 || c > 1e6 || c != std::floor(c)) pf.at("concurrency").error(fmt::format("{} is not a concurrency (an integer >= 1)", c));
        en.perf_concurrency = static_cast<int>(c);
      } else {
        en.perf = e.str("perf", "");
      }
      en.repechage = e.boolean("repechage", false);
      // A team in a later stage either survived the previous one or enters through repechage.
      const Stage* prev_ptr = nullptr;  // the previous stage of the same track
      for (const auto& ps : p.stages)
        if (ps.track == st.track) prev_ptr = &ps;
      if (prev_ptr) {
        const Stage& prev = *prev_ptr;
        bool was_in = std::any_of(prev.entries.begin(), prev.entries.end(), [&](const Entry& x) { return x.team == en.team; });
        if (!was_in && !en.repechage)
          e.at("team").error(fmt::format("team '{}' was not in stage '{}' and is not marked repechage", en.team, prev.id));
      } else if (en.repechage) {
        e.at("repechage").error("the first stage of a track has no repechage entries");
      }
      bool needs_chosen = false;
      for (const auto& part : track->parts)
        for (const auto& sp : part.subparts) needs_chosen |= sp.team_chosen;
      if (needs_chosen && en.chosen.empty())
        e.error(fmt::format("team '{}' has no chosen benchmarks but the track scores team-chosen benchmarks", en.team));
      st.entries.push_back(en);
    }
    if (st.advance > static_cast<int>(st.entries.size()))
      s.at("advance").error(fmt::format("{} advance but only {} teams are entered", st.advance, st.entries.size()));
    p.stages.push_back(st);
  }
  return p;
}

Program load_program(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>(path, "cannot open the program file");
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string dir = fs::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  return parse_program(ss.str(), path, dir);
}

}  // namespace kaival::stage
