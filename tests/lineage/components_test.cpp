// Component tests and vocabulary alignment on synthetic data: power on
// derived matrices, validity (false-positive rate) on independent ones.
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "lineage/component_tests.h"
#include "lineage/signatures.h"
#include "lineage/stats.h"
#include "lineage/vocab_align.h"

using namespace kaival::lineage;

namespace {

MatF gaussian(int64_t r, int64_t c, std::mt19937_64& rng, double sd = 1.0) {
  std::normal_distribution<float> nd(0.0f, static_cast<float>(sd));
  MatF m(r, c);
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) m(i, j) = nd(rng);
  return m;
}

// Rows with unequal scales per residual column, as trained weights have.
MatF structured(int64_t units, int64_t d, std::mt19937_64& rng) {
  MatF m = gaussian(units, d, rng);
  std::uniform_real_distribution<float> u(0.5f, 2.0f);
  for (int64_t j = 0; j < d; ++j) m.col(j) *= u(rng);
  return m;
}

MatF permute_rows(const MatF& m, std::mt19937_64& rng) {
  std::vector<int64_t> p(static_cast<size_t>(m.rows()));
  std::iota(p.begin(), p.end(), 0);
  std::shuffle(p.begin(), p.end(), rng);
  MatF o(m.rows(), m.cols());
  for (int64_t i = 0; i < m.rows(); ++i) o.row(i) = m.row(p[i]);
  return o;
}

}  // namespace

TEST(LineageComponents, CoordinateMatchFindsPermutedNoisyCopy) {
  std::mt19937_64 rng(1);
  const int64_t d = 48, units = 200;
  MatF w = structured(units, d, rng);
  MatF copy = permute_rows(w, rng) + gaussian(units, d, rng, 0.1);  // units permuted, 10% noise
  CoordFeatures fa, fb;
  fa.add_input_side(w);
  fb.add_input_side(copy);
  TestOutcome t = coord_match_features(fa.matrix(), fb.matrix());
  EXPECT_TRUE(t.exact);
  EXPECT_GT(t.statistic, 0.8);
  EXPECT_LT(t.log10p, -30);
  // Heavier drift (30% noise) still leaves a decisive fingerprint.
  MatF drifted = permute_rows(w, rng) + gaussian(units, d, rng, 0.3);
  CoordFeatures fc;
  fc.add_input_side(drifted);
  EXPECT_LT(coord_match_features(fa.matrix(), fc.matrix()).log10p, -10);
}

// Validity: with B drawn independently of A (here both i.i.d.), the bound
// 1/m! is a valid p-value: the rejection rate at alpha is at most alpha.
TEST(LineageComponents, CoordinateMatchIsValidUnderIndependence) {
  std::mt19937_64 rng(2);
  const int trials = 1500;
  int rej05 = 0, rej01 = 0;
  for (int t = 0; t < trials; ++t) {
    CoordFeatures fa, fb;
    fa.add_input_side(structured(40, 24, rng));
    fb.add_input_side(structured(40, 24, rng));
    double lp = coord_match_features(fa.matrix(), fb.matrix()).log10p;
    rej05 += lp <= std::log10(0.05);
    rej01 += lp <= std::log10(0.01);
  }
  EXPECT_LE(rej05, trials * 0.05 + 3 * std::sqrt(trials * 0.05));
  EXPECT_LE(rej01, trials * 0.01 + 3 * std::sqrt(trials * 0.01));
}

TEST(LineageComponents, ColumnMatchUsesSignsAndHandlesWidthChange) {
  std::mt19937_64 rng(3);
  MatF e = gaussian(300, 32, rng);
  TestOutcome same = coord_match_columns(e, e, 512);
  EXPECT_NEAR(same.log10p, log10_fixed_points_bound(32, true), 1e-9);
  MatF flipped = -e;  // every sign flipped: no signed self-match
  EXPECT_EQ(coord_match_columns(e, flipped, 512).log10p, 0.0);
  MatF pruned = e.leftCols(24);  // residual channels pruned: increasing run
  TestOutcome p = coord_match_columns(e, pruned, 512);
  EXPECT_EQ(p.detail["increasing_run"].get<int64_t>(), 24);
  EXPECT_LT(p.log10p, -10);
}

TEST(LineageComponents, UnitMatchDetectsPermutedUnitsAndIsCalibratedOtherwise) {
  std::mt19937_64 rng(4);
  const int64_t units = 128, d = 40;
  MatF g = gaussian(units, d, rng), u = gaussian(units, d, rng), dn = gaussian(units, d, rng);
  // Derived: same units in another order, with noise.
  std::vector<int64_t> p(units);
  std::iota(p.begin(), p.end(), 0);
  std::shuffle(p.begin(), p.end(), rng);
  MatF g2(units, d), u2(units, d), d2(units, d);
  for (int64_t i = 0; i < units; ++i) g2.row(i) = g.row(p[i]), u2.row(i) = u.row(p[i]), d2.row(i) = dn.row(p[i]);
  g2 += gaussian(units, d, rng, 0.5);
  u2 += gaussian(units, d, rng, 0.5);
  auto t = unit_match(g, g2, {{&u, &u2, {}, {}}, {&dn, &d2, {}, {}}}, 512);
  ASSERT_TRUE(t.has_value());
  EXPECT_GT(t->statistic, 10);
  EXPECT_GT(t->detail["confirmed"].get<int64_t>(), units / 2);

  // Independent, with gate and up coupled inside each unit in both models
  // (the projection must keep this from looking like a match).
  const int trials = 300;
  int rej05 = 0;
  for (int k = 0; k < trials; ++k) {
    MatF ga = gaussian(64, d, rng), gb = gaussian(64, d, rng);
    MatF ua = 0.8 * ga + 0.6 * gaussian(64, d, rng), ub = 0.8 * gb + 0.6 * gaussian(64, d, rng);
    auto r = unit_match(ga, gb, {{&ua, &ub, {}, {}}}, 512);
    ASSERT_TRUE(r.has_value());
    rej05 += r->log10p <= std::log10(0.05);
  }
  EXPECT_LE(rej05, trials * 0.05 + 3 * std::sqrt(trials * 0.05));
}

TEST(LineageComponents, ConfirmedFractionAllowsConvergence) {
  TestOutcome t;
  t.detail = {{"confirmed", 20}, {"units_a", 100}, {"candidates", 100}};
  use_confirmed_fraction(t, 0.25);
  EXPECT_GT(t.log10p, std::log10(0.5));  // 20% confirmed is within a 25% allowance
  t.detail = {{"confirmed", 90}, {"units_a", 100}, {"candidates", 100}};
  use_confirmed_fraction(t, 0.25);
  EXPECT_LT(t.log10p, -30);
}

TEST(LineageComponents, SpacedSubsetIsDeterministicAndCovering) {
  auto s = spaced_subset(1000, 10);
  ASSERT_EQ(s.size(), 10u);
  EXPECT_EQ(s.front(), 50);
  EXPECT_EQ(s.back(), 950);
  EXPECT_EQ(spaced_subset(5, 10).size(), 5u);
}

TEST(LineageVocab, NormalizesTheCommonSpellings) {
  EXPECT_EQ(normalize_token("\xC4\xA0the", TokenSpelling::ByteLevel), " the");
  EXPECT_EQ(normalize_token("\xC4\x8A", TokenSpelling::ByteLevel), "\n");
  // "안" is bytes EC 95 88; byte-level spells them U+00EC U+0137 U+012A.
  EXPECT_EQ(normalize_token("\xC3\xAC\xC4\xB7\xC4\xAA", TokenSpelling::ByteLevel), "\xEC\x95\x88");
  EXPECT_EQ(normalize_token("\xE2\x96\x81the", TokenSpelling::SentencePiece), " the");
  EXPECT_EQ(normalize_token("<0x0A>", TokenSpelling::SentencePiece), "\n");
  EXPECT_EQ(normalize_token("##ing", TokenSpelling::WordPiece), "ing");
  EXPECT_EQ(normalize_token("the", TokenSpelling::WordPiece), " the");
  EXPECT_EQ(normalize_token("[CLS]", TokenSpelling::WordPiece), "[CLS]");
}

TEST(LineageVocab, AlignsAcrossSpellingsAndReorderings) {
  Vocab a, b;
  a.tokens = {"<s>", "\xC4\xA0the", "cat", "\xC4\xA0" "dog", "\xC4\x8A"};
  a.spelling = TokenSpelling::ByteLevel;
  b.tokens = {"<unk>", "\xE2\x96\x81""dog", "<0x0A>", "\xE2\x96\x81the", "fish"};
  b.spelling = TokenSpelling::SentencePiece;
  TokenPairs p = align_vocabularies(a, b);
  ASSERT_EQ(p.shared, 3);
  std::map<int64_t, int64_t> m;
  for (size_t i = 0; i < p.a.size(); ++i) m[p.a[i]] = p.b[i];
  EXPECT_EQ(m[1], 3);
  EXPECT_EQ(m[3], 1);
  EXPECT_EQ(m[4], 2);
  EXPECT_EQ(detect_spelling(a.tokens, "bpe"), TokenSpelling::ByteLevel);
  EXPECT_EQ(detect_spelling(b.tokens, "spm"), TokenSpelling::SentencePiece);
  auto ev = tokenizer_evidence(&a, &b, &p);
  EXPECT_NEAR(ev["overlap_fraction"].get<double>(), 3.0 / 5.0, 1e-12);
  EXPECT_EQ(ev["identical_vocabulary"], false);
}
