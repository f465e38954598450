#pragma once
// The solver shared by the Bradley-Terry fit and its style-controlled variant:
// both maximise a concave logistic log-likelihood by damped Newton steps and
// turn the fitted natural-log strengths into Elo-like ratings the same way.
#include <functional>
#include <vector>

#include <Eigen/Dense>

#include "arena/bradley_terry.h"

namespace kaival::arena {

// log(1 / (1 + e^-x)) without overflow for large |x|.
double log_sigmoid(double x);

// Newton's method with backtracking from `start`: `system(x, grad, neg_hessian)`
// fills the gradient and a positive definite system matrix at x (sized to x
// already; the caller sets every entry), `loglik(x)` the objective. Stops after
// `max_iter` steps, when the largest coordinate move is below `tol`, or when
// the system gives no finite step.
using NewtonSystem = std::function<void(const Eigen::VectorXd& x, Eigen::VectorXd& grad, Eigen::MatrixXd& neg_hessian)>;
Eigen::VectorXd newton_maximize(Eigen::VectorXd start, const std::function<double(const Eigen::VectorXd&)>& loglik,
                                const NewtonSystem& system, int max_iter, double tol);

// Ratings base + scale * log10(strength) from natural-log strengths `theta`,
// with `o.anchor` at base, or else the mean at base.
std::vector<double> ratings_from_strengths(const Eigen::VectorXd& theta, const BtOptions& o);

}  // namespace kaival::arena
