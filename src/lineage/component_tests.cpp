#include "lineage/component_tests.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "lineage/stats.h"

namespace kaival::lineage {
namespace {

// Each column replaced by its ranks scaled to (0, 1) within the model, so the
// matching uses orderings only (robust to quantization, scale changes and
// outlier coordinates). Columns that are constant in either model carry no
// information and are dropped.
std::pair<MatD, MatD> rank_scores(const MatD& fa, const MatD& fb) {
  std::vector<int64_t> keep;
  auto varies = [](const MatD& m, int64_t c) {
    if (m.rows() < 2) return false;
    double lo = m.col(c).minCoeff(), hi = m.col(c).maxCoeff();
    return std::isfinite(lo) && std::isfinite(hi) && hi > lo;
  };
  for (int64_t c = 0; c < fa.cols(); ++c)
    if (varies(fa, c) && varies(fb, c)) keep.push_back(c);
  auto transform = [&](const MatD& m) {
    MatD out(m.rows(), static_cast<int64_t>(keep.size()));
    std::vector<double> col(m.rows());
    for (size_t k = 0; k < keep.size(); ++k) {
      for (int64_t r = 0; r < m.rows(); ++r) col[r] = m(r, keep[k]);
      auto rk = ranks(col);
      for (int64_t r = 0; r < m.rows(); ++r) out(r, static_cast<int64_t>(k)) = (rk[r] - 0.5) / m.rows();
    }
    return out;
  };
  return {transform(fa), transform(fb)};
}

// For each row of `score` (higher is better) the best column, or -1 when the
// best is tied (a tie has no label-independent winner).
std::vector<int64_t> best_columns(const MatD& score) {
  std::vector<int64_t> best(score.rows(), -1);
  for (int64_t i = 0; i < score.rows(); ++i) {
    double top = -std::numeric_limits<double>::infinity(), second = top;
    int64_t arg = -1;
    for (int64_t j = 0; j < score.cols(); ++j) {
      double s = score(i, j);
      if (s > top) {
        second = top;
        top = s;
        arg = j;
      } else if (s > second) {
        second = s;
      }
    }
    if (arg >= 0 && top > second) best[i] = arg;
  }
  return best;
}

TestOutcome matching_outcome(const std::vector<int64_t>& rows_a, const std::vector<int64_t>& match, int64_t da,
                             int64_t db, bool signed_match) {
  TestOutcome out;
  out.method = "coord-match";
  out.basis = "native";
  out.exact = true;
  const int64_t n = static_cast<int64_t>(match.size());
  if (da == db) {
    int64_t fixed = 0;
    for (int64_t i = 0; i < n; ++i) fixed += match[i] == rows_a[i];
    out.statistic = n ? static_cast<double>(fixed) / static_cast<double>(n) : 0.0;
    out.statistic_name = "fraction of coordinates matched to themselves";
    out.log10p = log10_fixed_points_bound(fixed, signed_match);
    out.detail = {{"matched", fixed}, {"coordinates", n}, {"rule", signed_match ? "signed fixed points, p <= 1/(m! 2^m)" : "fixed points, p <= 1/m!"}};
  } else {
    int64_t lis = longest_increasing(match);
    out.statistic = n ? static_cast<double>(lis) / static_cast<double>(std::min(da, db)) : 0.0;
    out.statistic_name = "longest increasing run of matched coordinates / width";
    out.log10p = log10_increasing_bound(lis, n, signed_match);
    out.detail = {{"increasing_run", lis}, {"coordinates", n}, {"width_a", da}, {"width_b", db},
                  {"rule", signed_match ? "increasing run, p <= C(n,m)/(m! 2^m)" : "increasing run, p <= C(n,m)/m!"}};
  }
  return out;
}

void normalize_rows(MatF& m) {
  for (int64_t i = 0; i < m.rows(); ++i) {
    float nrm = m.row(i).norm();
    if (nrm > 0) m.row(i) /= nrm;
  }
}

}  // namespace

std::vector<int64_t> spaced_subset(int64_t n, int64_t k) {
  std::vector<int64_t> out;
  if (n <= 0) return out;
  if (k >= n || k <= 0) {
    out.resize(n);
    std::iota(out.begin(), out.end(), 0);
    return out;
  }
  for (int64_t i = 0; i < k; ++i) out.push_back((2 * i + 1) * n / (2 * k));
  return out;
}

TestOutcome coord_match_features(const MatD& fa, const MatD& fb) {
  auto [sa, sb] = rank_scores(fa, fb);
  TestOutcome out;
  if (sa.cols() == 0 || sa.rows() < 2 || sb.rows() < 2) {
    out.method = "coord-match";
    out.basis = "native";
    out.exact = true;
    out.detail = {{"note", "no signature varies across coordinates in both models"}};
    return out;
  }
  // Nearest B signature for every A coordinate: argmin |x|^2 + |y|^2 - 2 x.y,
  // with the cross products from BLAS in row blocks (no d x d matrix). Exact
  // ties have no label-independent winner and leave the coordinate unmatched.
  const int64_t nb_ = sb.rows();
  MatF fa32 = sa.cast<float>(), fb32 = sb.cast<float>();
  std::vector<float> yy(static_cast<size_t>(nb_));
  for (int64_t j = 0; j < nb_; ++j) yy[j] = fb32.row(j).squaredNorm();
  std::vector<int64_t> best(static_cast<size_t>(sa.rows()), -1);
  const int64_t block = 256;
  for (int64_t r0 = 0; r0 < sa.rows(); r0 += block) {
    const int64_t n = std::min(block, sa.rows() - r0);
    MatF xb = fa32.middleRows(r0, n);
    MatF dots = mul_abt(xb, fb32);
    for (int64_t i = 0; i < n; ++i) {
      float top = std::numeric_limits<float>::infinity(), second = top;
      int64_t arg = -1;
      const float* row = dots.row(i).data();
      for (int64_t j = 0; j < nb_; ++j) {
        float dist = yy[j] - 2.0f * row[j];  // |x|^2 is the same for the whole row
        if (dist < top) {
          second = top;
          top = dist;
          arg = j;
        } else if (dist < second) {
          second = dist;
        }
      }
      if (arg >= 0 && top < second) best[static_cast<size_t>(r0 + i)] = arg;
    }
  }
  std::vector<int64_t> rows_a(sa.rows());
  std::iota(rows_a.begin(), rows_a.end(), 0);
  out = matching_outcome(rows_a, best, fa.rows(), fb.rows(), false);
  out.detail["features"] = sa.cols();
  return out;
}

TestOutcome coord_match_columns(const MatF& ea, const MatF& eb, int64_t max_coords) {
  const int64_t n = std::min(ea.rows(), eb.rows());
  // Columns (all, or the listed ones) centred and scaled to unit norm over
  // the tokens, returned transposed ([column, token]) as the product needs.
  // Row-major loops, sums in double.
  auto standardized_t = [n](const MatF& m, const std::vector<int64_t>* keep) {
    const int64_t c = keep ? static_cast<int64_t>(keep->size()) : m.cols();
    MatF sel(n, c);
    for (int64_t r = 0; r < n; ++r) {
      const float* src = m.row(r).data();
      float* dst = sel.row(r).data();
      if (keep)
        for (int64_t j = 0; j < c; ++j) dst[j] = src[(*keep)[static_cast<size_t>(j)]];
      else
        std::copy_n(src, c, dst);
    }
    std::vector<double> sum(static_cast<size_t>(c), 0.0), ss(static_cast<size_t>(c), 0.0);
    for (int64_t r = 0; r < n; ++r) {
      const float* x = sel.row(r).data();
      for (int64_t j = 0; j < c; ++j) sum[j] += x[j], ss[j] += static_cast<double>(x[j]) * x[j];
    }
    std::vector<float> mean(static_cast<size_t>(c)), scale(static_cast<size_t>(c));
    for (int64_t j = 0; j < c; ++j) {
      double mu = sum[j] / std::max<int64_t>(1, n), var = ss[j] - mu * sum[j];
      mean[j] = static_cast<float>(mu);
      scale[j] = var > 0 ? static_cast<float>(1.0 / std::sqrt(var)) : 0.0f;
    }
    for (int64_t r = 0; r < n; ++r) {
      float* x = sel.row(r).data();
      for (int64_t j = 0; j < c; ++j) x[j] = (x[j] - mean[j]) * scale[j];
    }
    MatF t = sel.transpose();
    return t;
  };
  std::vector<int64_t> rows_a = spaced_subset(ea.cols(), max_coords);
  MatF subt = standardized_t(ea, &rows_a), zbt = standardized_t(eb, nullptr);
  MatD corr = mul_abt(subt, zbt).cast<double>();  // |S| x dB correlations over tokens
  const int64_t za_cols = ea.cols(), zb_cols = eb.cols();
  MatD absval = corr.cwiseAbs();
  std::vector<int64_t> best = best_columns(absval);
  // A coordinate whose best partner has the opposite sign is not matched.
  std::vector<int64_t> signed_best = best;
  int64_t sign_agree = 0;
  for (size_t i = 0; i < best.size(); ++i) {
    if (best[i] < 0) continue;
    if (corr(static_cast<int64_t>(i), best[i]) <= 0)
      signed_best[i] = -1;
    else
      ++sign_agree;
  }
  TestOutcome out;
  // Positions are A coordinates in increasing order, as the increasing-run
  // statistic needs when the widths differ.
  out = matching_outcome(rows_a, signed_best, za_cols, zb_cols, true);
  double mean_abs_diag = 0;
  if (za_cols == zb_cols) {
    for (size_t i = 0; i < rows_a.size(); ++i) mean_abs_diag += corr(static_cast<int64_t>(i), rows_a[i]);
    mean_abs_diag /= std::max<size_t>(1, rows_a.size());
    out.detail["mean_same_coordinate_correlation"] = mean_abs_diag;
  }
  out.detail["tokens"] = n;
  return out;
}

std::optional<TestOutcome> unit_match(const MatF& xa_in, const MatF& xb_in, const std::vector<Validation>& validations,
                                      int64_t max_units) {
  if (xa_in.rows() < 2 || xb_in.rows() < 2 || xa_in.cols() != xb_in.cols() || validations.empty()) return std::nullopt;
  std::vector<int64_t> units = spaced_subset(xa_in.rows(), max_units);
  MatF xa(static_cast<int64_t>(units.size()), xa_in.cols());
  for (size_t i = 0; i < units.size(); ++i) xa.row(static_cast<int64_t>(i)) = xa_in.row(units[i]);
  MatF xb = xb_in;
  normalize_rows(xa);
  normalize_rows(xb);
  MatF sim = mul_abt(xa, xb);
  std::vector<int64_t> match(units.size());
  for (int64_t i = 0; i < sim.rows(); ++i) sim.row(i).maxCoeff(&match[static_cast<size_t>(i)]);

  std::vector<double> zs;
  double top1_total = 0;
  int64_t top1_count = 0;
  std::vector<char> hit_all(units.size(), 1);
  int64_t fewest_candidates = 0;
  nlohmann::json per = nlohmann::json::array();
  for (const Validation& v : validations) {
    if (!v.a || !v.b || v.a->rows() == 0 || v.b->rows() < 2 || v.a->cols() != v.b->cols()) continue;
    const bool identity = v.a_map.empty() && v.b_map.empty();
    auto a_row = [&](int64_t unit) { return v.a_map.empty() ? unit : v.a_map[static_cast<size_t>(unit)]; };
    auto b_row = [&](int64_t unit) { return v.b_map.empty() ? unit : v.b_map[static_cast<size_t>(unit)]; };
    // Validation rows: A's for the sampled units, all of B's.
    MatF ya(xa.rows(), v.a->cols());
    for (size_t i = 0; i < units.size(); ++i) ya.row(static_cast<int64_t>(i)) = v.a->row(a_row(units[i]));
    MatF yb = *v.b;
    if (identity && v.a->cols() == xa_in.cols() && v.a->rows() == xa_in.rows() && v.b->rows() == xb_in.rows()) {
      // Remove what the validating row shares with the matching row of the
      // same unit, so the validation does not re-measure the match.
      for (int64_t i = 0; i < ya.rows(); ++i) ya.row(i) -= ya.row(i).dot(xa.row(i)) * xa.row(i);
      for (int64_t j = 0; j < yb.rows(); ++j) yb.row(j) -= yb.row(j).dot(xb.row(j)) * xb.row(j);
    }
    normalize_rows(ya);
    normalize_rows(yb);
    MatF vs = mul_abt(ya, yb);
    const double nb = static_cast<double>(yb.rows());
    double sum_u = 0;
    int64_t top1 = 0;
    for (int64_t i = 0; i < vs.rows(); ++i) {
      int64_t target = b_row(match[static_cast<size_t>(i)]);
      float s = vs(i, target);
      int64_t greater = 0, ties = 0;
      for (int64_t j = 0; j < vs.cols(); ++j) {
        if (j == target) continue;
        if (vs(i, j) > s) ++greater;
        else if (vs(i, j) == s) ++ties;
      }
      sum_u += (static_cast<double>(greater) + 0.5 * static_cast<double>(ties) + 0.5) / nb;
      top1 += greater == 0;
      if (greater != 0) hit_all[static_cast<size_t>(i)] = 0;
    }
    const double n = static_cast<double>(vs.rows());
    double var = (nb * nb - 1.0) / (12.0 * nb * nb);
    double z = (0.5 * n - sum_u) / std::sqrt(n * var);
    zs.push_back(z);
    fewest_candidates = fewest_candidates == 0 ? yb.rows() : std::min<int64_t>(fewest_candidates, yb.rows());
    top1_total += static_cast<double>(top1);
    top1_count += vs.rows();
    per.push_back({{"z", z}, {"top1_fraction", static_cast<double>(top1) / n}});
  }
  if (zs.empty()) return std::nullopt;
  double z = std::accumulate(zs.begin(), zs.end(), 0.0) / std::sqrt(static_cast<double>(zs.size()));
  TestOutcome out;
  out.method = "unit-match";
  out.exact = false;
  out.statistic = z;
  out.statistic_name = "mean-rank z of cross-validated unit matches";
  out.log10p = log10_normal_sf(z);
  int64_t hits = std::count(hit_all.begin(), hit_all.end(), 1);
  out.detail = {{"units_a", static_cast<int64_t>(units.size())},
                {"units_b", xb_in.rows()},
                {"confirmed", hits},
                {"candidates", fewest_candidates},
                {"mean_rank_z", z},
                {"top1_fraction", top1_count ? top1_total / static_cast<double>(top1_count) : 0.0},
                {"validations", per}};
  return out;
}

void use_confirmed_fraction(TestOutcome& t, double allowance) {
  int64_t hits = t.detail.value("confirmed", int64_t{0});
  int64_t n = t.detail.value("units_a", int64_t{0});
  int64_t nb = std::max<int64_t>(1, t.detail.value("candidates", int64_t{1}));
  double p0 = allowance + (1.0 - allowance) / static_cast<double>(nb);
  t.statistic = n ? static_cast<double>(hits) / static_cast<double>(n) : 0.0;
  t.statistic_name = "fraction of units whose match every validating matrix confirms (top-1)";
  t.log10p = log10_binomial_sf(hits, n, std::min(1.0, p0));
  t.detail["allowance"] = allowance;
  t.detail["null"] = "confirmed ~ Binomial(units, allowance + (1 - allowance)/candidates)";
}

TestOutcome gram_cka(const MatD& ka, const MatD& kb) {
  GramTest g = gram_similarity_test(ka, kb);
  TestOutcome out;
  out.method = "gram-cka";
  out.exact = false;
  out.statistic = g.cka;
  out.statistic_name = "linear CKA of Gram matrices over residual coordinates";
  out.log10p = g.log10p;
  out.detail = {{"z", g.z}, {"coordinates", ka.rows()}};
  return out;
}

}  // namespace kaival::lineage
