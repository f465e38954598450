#include "arena/bradley_terry.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <thread>
#include <utility>

#include <Eigen/Dense>

#include "arena/logistic_fit.h"
#include "arena/quantile.h"
#include "core/error.h"

namespace kaival::arena {

int64_t PairTable::battles() const {
  int64_t n = 0;
  for (const auto& p : pairs) n += p.total();
  return n;
}

PairTable aggregate(int models, std::span<const Battle> battles) {
  if (models < 0) fail("arena battles", "negative model count {}", models);
  std::map<std::pair<int, int>, PairCount> cells;
  for (size_t k = 0; k < battles.size(); ++k) {
    const Battle& b = battles[k];
    if (b.a < 0 || b.a >= models || b.b < 0 || b.b >= models || b.a == b.b)
      fail("arena battles", "battle {} has invalid models ({}, {}) for {} models", k, b.a, b.b, models);
    int i = std::min(b.a, b.b), j = std::max(b.a, b.b);
    PairCount& c = cells[{i, j}];
    c.i = i;
    c.j = j;
    switch (b.outcome) {
      case Outcome::WinA: (b.a == i ? c.wins_i : c.wins_j)++; break;
      case Outcome::WinB: (b.b == i ? c.wins_i : c.wins_j)++; break;
      case Outcome::Tie:
      case Outcome::BothBad: c.ties++; break;
      default: fail("arena battles", "battle {} has an unknown outcome", k);
    }
  }
  PairTable t;
  t.models = models;
  t.pairs.reserve(cells.size());
  for (auto& [key, c] : cells) t.pairs.push_back(c);
  return t;
}

namespace {

// Counts as doubles so resamples can reuse the solver without a PairTable.
struct PairWeights {
  int i, j;
  double w_i, w_j;  // wins with ties counted half
};

double log_likelihood(const std::vector<PairWeights>& pw, const Eigen::VectorXd& theta, double ridge) {
  double ll = -0.5 * ridge * theta.squaredNorm();
  for (const auto& p : pw) {
    double d = theta[p.i] - theta[p.j];
    ll += p.w_i * log_sigmoid(d) + p.w_j * log_sigmoid(-d);
  }
  return ll;
}

// Newton's method on the (concave) log-likelihood in natural-log strengths.
// The 11ᵀ term removes the translation null space; gradients sum to zero on
// centred θ, so it does not change the step.
Eigen::VectorXd fit_theta(int m, const std::vector<PairWeights>& pw, const BtOptions& o) {
  Eigen::VectorXd theta = Eigen::VectorXd::Zero(m);
  if (m == 0) return theta;
  auto system = [&](const Eigen::VectorXd& th, Eigen::VectorXd& grad, Eigen::MatrixXd& a) {
    grad = -o.ridge * th;
    a.setConstant(1.0);
    a.diagonal().array() += o.ridge;
    for (const auto& p : pw) {
      double d = th[p.i] - th[p.j];
      double pr = 1.0 / (1.0 + std::exp(-d));
      double n = p.w_i + p.w_j;
      double g = p.w_i - n * pr;
      grad[p.i] += g;
      grad[p.j] -= g;
      double h = n * pr * (1.0 - pr);
      a(p.i, p.i) += h;
      a(p.j, p.j) += h;
      a(p.i, p.j) -= h;
      a(p.j, p.i) -= h;
    }
  };
  auto loglik = [&](const Eigen::VectorXd& th) { return log_likelihood(pw, th, o.ridge); };
  return newton_maximize(std::move(theta), loglik, system, o.max_iter, o.tol);
}

std::vector<PairWeights> weights_of(const PairTable& t) {
  std::vector<PairWeights> pw;
  pw.reserve(t.pairs.size());
  for (const auto& p : t.pairs)
    pw.push_back({p.i, p.j, p.wins_i + 0.5 * p.ties, p.wins_j + 0.5 * p.ties});
  return pw;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

std::vector<double> fit_bradley_terry(const PairTable& table, const BtOptions& options) {
  return ratings_from_strengths(fit_theta(table.models, weights_of(table), options), options);
}

std::vector<std::vector<double>> bootstrap_ratings(const PairTable& table, const BtOptions& bt,
                                                   const BootstrapOptions& boot) {
  if (boot.resamples < 0 || boot.resamples > 1000000)
    fail("arena bootstrap", "resample count {} outside 0..1000000", boot.resamples);
  std::vector<std::vector<double>> out(boot.resamples);
  // Cells of the multinomial: (pair, outcome), probability = observed share.
  std::vector<int64_t> counts;
  counts.reserve(table.pairs.size() * 3);
  for (const auto& p : table.pairs) {
    counts.push_back(p.wins_i);
    counts.push_back(p.wins_j);
    counts.push_back(p.ties);
  }
  const int64_t total = table.battles();
  int threads = boot.threads > 0 ? boot.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = std::max(1, std::min(threads, boot.resamples));
  std::atomic<int> next{0};
  auto worker = [&] {
    std::vector<PairWeights> pw(table.pairs.size());
    for (int r; (r = next.fetch_add(1)) < boot.resamples;) {
      std::mt19937_64 rng(splitmix64(boot.seed ^ splitmix64(static_cast<uint64_t>(r) + 1)));
      // Conditional binomials: cell k gets Binomial(remaining, p_k / remaining mass).
      int64_t left_n = total, left_mass = total;
      auto draw = [&](int64_t c) -> double {
        if (c == 0 || left_n == 0) {
          left_mass -= c;
          return 0.0;
        }
        int64_t x;
        if (c >= left_mass) {
          x = left_n;
        } else {
          std::binomial_distribution<int64_t> bin(left_n, static_cast<double>(c) / static_cast<double>(left_mass));
          x = bin(rng);
        }
        left_n -= x;
        left_mass -= c;
        return static_cast<double>(x);
      };
      for (size_t k = 0; k < table.pairs.size(); ++k) {
        double wi = draw(counts[3 * k]), wj = draw(counts[3 * k + 1]), ti = draw(counts[3 * k + 2]);
        pw[k] = {table.pairs[k].i, table.pairs[k].j, wi + 0.5 * ti, wj + 0.5 * ti};
      }
      out[r] = ratings_from_strengths(fit_theta(table.models, pw, bt), bt);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
  return out;
}

std::vector<int> overlap_ranks(std::span<const double> lo, std::span<const double> hi) {
  std::vector<int> rank(lo.size(), 1);
  for (size_t i = 0; i < lo.size(); ++i)
    for (size_t j = 0; j < lo.size(); ++j)
      if (j != i && lo[j] > hi[i]) rank[i]++;
  return rank;
}

std::vector<std::vector<double>> win_rate_matrix(const PairTable& table) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<std::vector<double>> w(table.models, std::vector<double>(table.models, nan));
  for (const auto& p : table.pairs) {
    double n = static_cast<double>(p.total());
    if (n == 0) continue;
    w[p.i][p.j] = (p.wins_i + 0.5 * p.ties) / n;
    w[p.j][p.i] = (p.wins_j + 0.5 * p.ties) / n;
  }
  return w;
}

double expected_score(double ri, double rj, double scale) {
  return 1.0 / (1.0 + std::pow(10.0, (rj - ri) / scale));
}

Leaderboard rate(const PairTable& table, const BtOptions& bt, const BootstrapOptions& boot) {
  Leaderboard lb;
  const int m = table.models;
  std::vector<double> point = fit_bradley_terry(table, bt);
  auto samples = bootstrap_ratings(table, bt, boot);
  lb.resamples = static_cast<int>(samples.size());
  lb.models.resize(m);
  std::vector<double> lo(m), hi(m), column(samples.size());
  const double tail = (1.0 - boot.level) / 2.0;
  for (int i = 0; i < m; ++i) {
    for (size_t r = 0; r < samples.size(); ++r) column[r] = samples[r][i];
    lo[i] = samples.empty() ? point[i] : quantile(column, tail);
    hi[i] = samples.empty() ? point[i] : quantile(column, 1.0 - tail);
  }
  std::vector<int> ranks = overlap_ranks(lo, hi);
  std::vector<double> won(m, 0.0);
  std::vector<int64_t> played(m, 0);
  for (const auto& p : table.pairs) {
    played[p.i] += p.total();
    played[p.j] += p.total();
    won[p.i] += p.wins_i + 0.5 * p.ties;
    won[p.j] += p.wins_j + 0.5 * p.ties;
  }
  for (int i = 0; i < m; ++i) {
    ModelRating& r = lb.models[i];
    r.rating = point[i];
    r.ci_low = lo[i];
    r.ci_high = hi[i];
    r.rank = ranks[i];
    r.battles = played[i];
    r.win_rate = played[i] ? won[i] / static_cast<double>(played[i]) : 0.0;
  }
  lb.win_rate = win_rate_matrix(table);
  return lb;
}

}  // namespace kaival::arena
