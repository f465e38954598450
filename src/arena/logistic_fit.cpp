#include "arena/logistic_fit.h"

#include <cmath>

#include "core/error.h"

namespace kaival::arena {

double log_sigmoid(double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }

Eigen::VectorXd newton_maximize(Eigen::VectorXd x, const std::function<double(const Eigen::VectorXd&)>& loglik,
                                const NewtonSystem& system, int max_iter, double tol) {
  const Eigen::Index p = x.size();
  Eigen::VectorXd grad(p);
  Eigen::MatrixXd a(p, p);
  double ll = loglik(x);
  for (int it = 0; it < max_iter; ++it) {
    system(x, grad, a);
    Eigen::VectorXd step = a.ldlt().solve(grad);
    if (!step.allFinite()) break;
    // Backtracking keeps each step an ascent step even far from the optimum.
    double t = 1.0;
    Eigen::VectorXd next;
    double next_ll = ll;
    for (int k = 0; k < 30; ++k) {
      next = x + t * step;
      next_ll = loglik(next);
      if (next_ll >= ll - 1e-12 * std::abs(ll)) break;
      t *= 0.5;
    }
    double moved = (t * step).cwiseAbs().maxCoeff();
    x = next;
    ll = next_ll;
    if (moved < tol) break;
  }
  return x;
}

std::vector<double> ratings_from_strengths(const Eigen::VectorXd& theta, const BtOptions& o) {
  const int m = static_cast<int>(theta.size());
  double shift = 0;
  if (o.anchor) {
    if (*o.anchor < 0 || *o.anchor >= m) fail("arena ratings", "anchor model {} outside 0..{}", *o.anchor, m - 1);
    shift = theta[*o.anchor];
  } else if (m > 0) {
    shift = theta.mean();
  }
  std::vector<double> r(m);
  const double k = o.scale / std::log(10.0);
  for (int i = 0; i < m; ++i) r[i] = o.base + k * (theta[i] - shift);
  return r;
}

}  // namespace kaival::arena
