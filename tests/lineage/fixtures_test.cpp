// Lineage verdicts on the trained fixtures and on variants built from them,
// checked against the true relations in testdata/lineage/manifest.json.
#include <cmath>
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "lineage/analysis.h"
#include "lineage/stats.h"
#include "variants.h"

using namespace kaival::lineage;
using namespace lineage_test;
using nlohmann::json;

namespace {

json manifest() {
  std::ifstream f(std::string(KAIVAL_TESTDATA) + "/lineage/manifest.json");
  return json::parse(f);
}

class LineageFixtures : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = fs::temp_directory_path() / ("kaival-lineage-" + std::to_string(::getpid()));
    fs::create_directories(tmp_);
  }
  static void TearDownTestSuite() { fs::remove_all(tmp_); }

  // A model path: a fixture name, or a variant built from {"from", "ops"}.
  static std::string materialize(const json& spec, const std::string& name) {
    if (spec.is_string()) return models_dir() + "/" + spec.get<std::string>();
    State s = load(models_dir() + "/" + spec["from"].get<std::string>());
    for (const auto& op : spec["ops"]) {
      const std::string kind = op[0];
      if (kind == "permute_units") {
        permute_units(s, op[1].get<uint64_t>());
      } else if (kind == "rotate_residual") {
        rotate_residual(s, op[1].get<uint64_t>());
      } else if (kind == "prune_units") {
        prune_units(s, op[1].get<double>(), op[2].get<uint64_t>());
      } else if (kind == "prune_residual") {
        prune_residual(s, op[1].get<int64_t>(), op[2].get<uint64_t>());
      } else if (kind == "keep_layers") {
        keep_layers(s, op[1].get<std::vector<int>>());
      } else if (kind == "copy_prefix") {
        State src = load(models_dir() + "/" + op[1].get<std::string>());
        copy_prefix(s, src, op[2].get<std::string>());
      } else if (kind == "vocabulary") {
        change_vocabulary(s, models_dir() + "/" + op[1].get<std::string>(), 5);
      } else if (kind == "moe") {
        upcycle_to_moe(s, op[1].get<int>(), op[2].get<double>(), 6);
      } else if (kind == "vision") {
        auto tower = make_vision_tower(op[1].get<uint64_t>());
        double noise = op[2].get<double>();
        if (noise > 0) {
          State t;
          t.t = tower;
          add_noise(t, noise, op[1].get<uint64_t>() + 1000);
          tower = t.t;
        }
        add_vision_tower(s, tower);
      } else if (kind == "trained_audio") {
        add_trained_audio_tower(s, op[1].get<std::string>());
      } else if (kind == "trained_vision") {
        add_trained_vision_tower(s, op[1].get<std::string>());
      } else {
        ADD_FAILURE() << "unknown op " << kind;
      }
    }
    fs::path dir = tmp_ / name;
    save(s, dir);
    return dir.string();
  }

  static Options quiet() { return Options{}; }

  static const ComponentResult* find(const PairResult& p, const std::string& name) {
    for (const auto& c : p.components)
      if (c.name == name) return &c;
    return nullptr;
  }

  static inline fs::path tmp_;
};

std::string describe(const PairResult& p) {
  std::string s = "verdict " + p.verdict + ", matched:";
  for (auto& m : p.matched) s += " " + m;
  return s;
}

}  // namespace

TEST_F(LineageFixtures, EveryManifestCaseGetsItsTrueVerdictAndComponents) {
  const json cases = manifest()["cases"];
  ASSERT_GE(cases.size(), 15u);
  for (const auto& c : cases) {
    const std::string name = c["name"];
    SCOPED_TRACE(name + ": " + c["why"].get<std::string>());
    std::string a = materialize(c["a"], name + "-a");
    std::string b = materialize(c["b"], name + "-b");
    Prepared pa = prepare(a, quiet()), pb = prepare(b, quiet());
    PairResult r = analyze_pair(pa, pb, quiet());
    EXPECT_EQ(r.verdict, c["truth"].get<std::string>()) << describe(r);
    std::set<std::string> matched(r.matched.begin(), r.matched.end());
    if (c.contains("matched"))
      for (const auto& m : c["matched"]) EXPECT_TRUE(matched.count(m.get<std::string>())) << m << " not matched; " << describe(r);
    if (c.value("only_matched", false)) EXPECT_EQ(matched.size(), c["matched"].size()) << describe(r);
    if (c.value("all_layers_matched", false)) {
      for (const auto& comp : r.components)
        if (comp.kind == "attn" || comp.kind == "mlp") EXPECT_EQ(comp.verdict, "derived") << comp.name;
    }
    if (c["truth"] == "independent") EXPECT_TRUE(r.matched.empty()) << describe(r);
    // Layers without a counterpart are listed, not dropped: every layer of A
    // has its attn component, and the unmatched ones are not comparable.
    std::set<int> layers_a;
    int nc_layers = 0;
    for (const auto& comp : r.components)
      if (comp.kind == "attn") {
        layers_a.insert(comp.layer);
        nc_layers += comp.verdict == "not_comparable" && comp.layer_b < 0;
      }
    if (!layers_a.empty()) EXPECT_EQ(static_cast<size_t>(*layers_a.rbegin() + 1), layers_a.size()) << "a layer of A is missing";
    if (c.contains("not_comparable"))
      for (const auto& n : c["not_comparable"]) {
        const ComponentResult* comp = find(r, n.get<std::string>());
        ASSERT_NE(comp, nullptr) << n;
        EXPECT_EQ(comp->verdict, "not_comparable") << n;
        EXPECT_NE(comp->reason.find("no counterpart"), std::string::npos) << comp->reason;
      }
    EXPECT_EQ(nc_layers, c.value("not_comparable_layers", c.contains("not_comparable") ? 1 : 0)) << describe(r);
    if (c.contains("layer_map")) {
      ASSERT_FALSE(r.layer_map.is_null());
      std::map<int, int> got;
      for (const auto& p : r.layer_map["pairs"]) got[p["a"].get<int>()] = p["b"].get<int>();
      for (auto& [ka, vb] : c["layer_map"].items()) EXPECT_EQ(got[std::stoi(ka)], vb.get<int>()) << "layer " << ka;
    }
    // Derived and partial verdicts come with a small pair p; independent ones not.
    if (c["truth"] != "independent") {
      EXPECT_LT(r.log10p, -6.0);
    }
  }
}

TEST_F(LineageFixtures, MergeIsAttributedToBothParentsPerComponent) {
  const json m = manifest()["merge"];
  std::string merged = materialize(m["model"], "merge");
  std::vector<Prepared> models;
  models.push_back(prepare(merged, quiet()));
  for (auto& [parent, comps] : m["parents"].items()) models.push_back(prepare(models_dir() + "/" + parent, quiet()));
  MultiResult all = analyze_all(models, {}, quiet());
  size_t k = 1;
  for (auto& [parent, comps] : m["parents"].items()) {
    const PairResult* pr = nullptr;
    for (auto& p : all.pairs)
      if (p.a == merged && p.b == models[k].label) pr = &p;
    ASSERT_NE(pr, nullptr);
    std::set<std::string> matched(pr->matched.begin(), pr->matched.end());
    for (const auto& c : comps) EXPECT_TRUE(matched.count(c.get<std::string>())) << parent << ": " << c << "; " << describe(*pr);
    EXPECT_EQ(matched.size(), comps.size()) << parent << ": " << describe(*pr);
    ++k;
  }
  // The two parents are unrelated to each other.
  for (auto& p : all.pairs)
    if (p.a != merged) EXPECT_EQ(p.verdict, "independent") << p.a << " vs " << p.b;
}

// All pairs among independently trained fixtures: no false positive at the
// pair level, and per-component p-values not smaller than uniform.
TEST_F(LineageFixtures, IndependentModelsZeroFalsePositivesAndCalibratedPValues) {
  std::vector<Prepared> models;
  const json names = manifest()["independent_set"];
  for (const auto& n : names) models.push_back(prepare(models_dir() + "/" + n.get<std::string>(), quiet()));
  ASSERT_GE(models.size(), 6u);
  MultiResult all = analyze_all(models, {}, quiet());
  ASSERT_EQ(all.pairs.size(), models.size() * (models.size() - 1) / 2);
  std::vector<double> component_p;                      // deciding components, uncorrected
  std::map<std::string, std::vector<double>> test_p;    // per deciding test method/basis
  for (const auto& p : all.pairs) {
    EXPECT_EQ(p.verdict, "independent") << p.a << " vs " << p.b << ": " << describe(p);
    EXPECT_GT(p.log10p, std::log10(0.01)) << p.a << " vs " << p.b;
    for (const auto& c : p.components) {
      if (c.verdict == "not_comparable") continue;
      if (c.decides) component_p.push_back(c.log10p);
      for (const auto& t : c.tests)
        if (t.decides) test_p[t.method + "/" + t.basis].push_back(t.log10p);
    }
  }
  EXPECT_EQ(all.families.size(), models.size());
  // Empirical false-positive rate at 0.05 and 0.01 may exceed nominal only by
  // binomial noise: count <= n*alpha + 3 sd (the p-values of one pair share
  // models, so this allowance is loose rather than tight).
  auto check = [](const std::string& what, const std::vector<double>& lp) {
    for (double alpha : {0.05, 0.01}) {
      size_t n = lp.size(), hits = 0;
      for (double x : lp) hits += x <= std::log10(alpha);
      double allowed = n * alpha + 3.0 * std::sqrt(n * alpha * (1 - alpha));
      EXPECT_LE(static_cast<double>(hits), allowed) << what << " at alpha " << alpha << ": " << hits << " of " << n;
      std::printf("[calibration] %-28s alpha %.2f: %zu of %zu below (allowed %.1f)\n", what.c_str(), alpha, hits, n,
                  allowed);
    }
  };
  check("components", component_p);
  for (auto& [k, v] : test_p) check(k, v);
}

TEST_F(LineageFixtures, RawNormCosineIsHighForIndependentModelsButNotEvidence) {
  Prepared a = prepare(models_dir() + "/base-a", quiet());
  Prepared b = prepare(models_dir() + "/indep-s2", quiet());
  PairResult r = analyze_pair(a, b, quiet());
  EXPECT_EQ(r.verdict, "independent");
  int checked = 0;
  for (const auto& c : r.components) {
    if (c.kind != "norm" && c.kind != "final_norm") continue;
    ASSERT_TRUE(c.caveats.contains("raw_cosine")) << c.name;
    EXPECT_GT(c.caveats["raw_cosine"].get<double>(), 0.9) << c.name;
    EXPECT_FALSE(c.decides);
    EXPECT_NE(c.verdict, "derived") << c.name;
    ++checked;
  }
  EXPECT_GE(checked, 4);
}

TEST_F(LineageFixtures, ExactTestsDetectPermutedCopyWithTinyPValues) {
  json spec = {{"from", "base-a"}, {"ops", json::array({json::array({"permute_units", 3})})}};
  std::string b = materialize(spec, "permuted-exact");
  PairResult r = analyze_pair(prepare(models_dir() + "/base-a", quiet()), prepare(b, quiet()), quiet());
  const ComponentResult* emb = find(r, "embedding");
  ASSERT_NE(emb, nullptr);
  // An identical embedding matches all 64 coordinates with signs: p <= 1/(64! 2^64).
  EXPECT_NEAR(emb->log10p, log10_fixed_points_bound(64, true), 1e-9);
  EXPECT_LT(r.log10p, -80);
}

TEST_F(LineageFixtures, ActivationEvidenceIsReportedButNeverDecides) {
  Prepared a = prepare(models_dir() + "/base-a", quiet());
  Prepared b = prepare(models_dir() + "/indep-s3", quiet());
  PairResult r = analyze_pair(a, b, quiet());
  ASSERT_TRUE(r.activations.is_object());
  ASSERT_TRUE(r.activations.contains("layers")) << r.activations.dump();
  EXPECT_EQ(r.activations["layers"].size(), 4u);
  EXPECT_EQ(r.activations["decides"], false);
  for (const auto& l : r.activations["layers"]) {
    double cka = l["cka"].get<double>();
    EXPECT_GE(cka, 0.0);
    EXPECT_LE(cka, 1.0 + 1e-9);
  }
  EXPECT_EQ(r.verdict, "independent");  // whatever the activation similarity
}
