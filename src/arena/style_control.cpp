#include "arena/style_control.h"

#include <array>
#include <cmath>
#include <utility>

#include <Eigen/Dense>

#include "arena/logistic_fit.h"
#include "core/error.h"

namespace kaival::arena {

StyleFeatures style_of(std::string_view text) {
  StyleFeatures f;
  f.length = static_cast<double>(text.size());
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    size_t s = line.find_first_not_of(" \t");
    if (s != std::string_view::npos) {
      line.remove_prefix(s);
      if (line.starts_with("#")) {
        f.headers += 1;
      } else if (line.starts_with("- ") || line.starts_with("* ") || line.starts_with("+ ")) {
        f.list_items += 1;
      } else {
        size_t d = 0;
        while (d < line.size() && line[d] >= '0' && line[d] <= '9') ++d;
        if (d > 0 && d + 1 < line.size() && line[d] == '.' && line[d + 1] == ' ') f.list_items += 1;
      }
    }
    pos = end + 1;
  }
  size_t stars = 0;
  for (size_t k = text.find("**"); k != std::string_view::npos; k = text.find("**", k + 2)) ++stars;
  f.bold = static_cast<double>(stars / 2);
  return f;
}

namespace {

constexpr int kStyle = 4;

std::array<double, kStyle> as_array(const StyleFeatures& f) { return {f.length, f.headers, f.list_items, f.bold}; }

double norm_diff(double a, double b) { return a + b > 0 ? (a - b) / (a + b) : 0.0; }

}  // namespace

StyleControlResult fit_style_controlled(int m, std::span<const StyledBattle> battles, const BtOptions& o) {
  const size_t n = battles.size();
  for (size_t k = 0; k < n; ++k) {
    const Battle& b = battles[k].battle;
    if (b.a < 0 || b.a >= m || b.b < 0 || b.b >= m || b.a == b.b)
      fail("arena battles", "battle {} has invalid models ({}, {}) for {} models", k, b.a, b.b, m);
  }
  // Covariates: normalised differences, then z-scored (a constant column stays 0).
  Eigen::MatrixXd s(n, kStyle);
  for (size_t k = 0; k < n; ++k) {
    auto a = as_array(battles[k].style_a), b = as_array(battles[k].style_b);
    for (int c = 0; c < kStyle; ++c) s(k, c) = norm_diff(a[c], b[c]);
  }
  for (int c = 0; c < kStyle; ++c) {
    if (n == 0) break;
    double mean = s.col(c).mean();
    double sd = std::sqrt((s.col(c).array() - mean).square().sum() / static_cast<double>(n));
    if (sd > 1e-12)
      s.col(c) = (s.col(c).array() - mean) / sd;
    else
      s.col(c).setZero();
  }
  std::vector<double> y(n);
  for (size_t k = 0; k < n; ++k) {
    switch (battles[k].battle.outcome) {
      case Outcome::WinA: y[k] = 1.0; break;
      case Outcome::WinB: y[k] = 0.0; break;
      default: y[k] = 0.5; break;
    }
  }
  const int p = m + kStyle;
  Eigen::VectorXd beta = Eigen::VectorXd::Zero(p);
  auto eta = [&](size_t k, const Eigen::VectorXd& bt) {
    const Battle& b = battles[k].battle;
    return bt[b.a] - bt[b.b] + s.row(k).dot(bt.tail(kStyle));
  };
  auto loglik = [&](const Eigen::VectorXd& bt) {
    double ll = -0.5 * o.ridge * bt.head(m).squaredNorm();
    for (size_t k = 0; k < n; ++k) {
      double e = eta(k, bt);
      ll += y[k] * log_sigmoid(e) + (1 - y[k]) * log_sigmoid(-e);
    }
    return ll;
  };
  auto system = [&](const Eigen::VectorXd& bt, Eigen::VectorXd& grad, Eigen::MatrixXd& a) {
    grad.setZero();
    a.setZero();
    a.topLeftCorner(m, m).setConstant(1.0);  // removes the models' translation null space
    for (int i = 0; i < m; ++i) {
      grad[i] -= o.ridge * bt[i];
      a(i, i) += o.ridge;
    }
    for (size_t k = 0; k < n; ++k) {
      const Battle& b = battles[k].battle;
      double e = eta(k, bt);
      double pr = 1.0 / (1.0 + std::exp(-e));
      double g = y[k] - pr, h = pr * (1 - pr);
      std::array<int, 2 + kStyle> idx{b.a, b.b, m, m + 1, m + 2, m + 3};
      std::array<double, 2 + kStyle> x{1.0, -1.0, s(k, 0), s(k, 1), s(k, 2), s(k, 3)};
      for (int u = 0; u < 2 + kStyle; ++u) {
        grad[idx[u]] += g * x[u];
        for (int v = 0; v < 2 + kStyle; ++v) a(idx[u], idx[v]) += h * x[u] * x[v];
      }
    }
    // Constant covariate columns (all zero) would make the system singular.
    for (int c = 0; c < kStyle; ++c)
      if (a(m + c, m + c) == 0.0) a(m + c, m + c) = 1.0;
  };
  beta = newton_maximize(std::move(beta), loglik, system, o.max_iter, o.tol);
  StyleControlResult r;
  r.ratings = ratings_from_strengths(beta.head(m), o);
  for (int c = 0; c < kStyle; ++c) r.coefficients.push_back(beta[m + c]);
  return r;
}

}  // namespace kaival::arena
