#include "lineage/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace kaival::lineage {
namespace {

constexpr double kLn10 = 2.302585092994045684;
constexpr double kNegInf = -std::numeric_limits<double>::infinity();
constexpr double kPi = 3.14159265358979323846;

// log(exp(a) + exp(b)) without overflow.
double log_add(double a, double b) {
  if (a == kNegInf) return b;
  if (b == kNegInf) return a;
  double m = std::max(a, b);
  return m + std::log1p(std::exp(-std::fabs(a - b)));
}

// log(1 - exp(l)) for l <= 0.
double log1m_exp(double l) {
  if (l >= 0) return kNegInf;
  return l > -0.693 ? std::log(-std::expm1(l)) : std::log1p(-std::exp(l));
}

// ln Q(z) for the standard normal.
double log_normal_sf(double z) {
  if (z < 8.0) return std::log(0.5 * std::erfc(z / std::sqrt(2.0)));
  // Laplace's continued fraction for the Mills ratio R(z) = Q(z)/phi(z):
  // R = 1/(z + 1/(z + 2/(z + 3/(z + ...)))), evaluated from the tail.
  double f = z;
  for (int k = 80; k >= 1; --k) f = z + k / f;
  return -0.5 * z * z - 0.5 * std::log(2.0 * kPi) - std::log(f);
}

// Modified Lentz evaluation of the continued fraction of the incomplete beta
// function (the standard even/odd coefficient form).
double beta_cf(double a, double b, double x) {
  const double tiny = 1e-300;
  double qab = a + b, qap = a + 1.0, qam = a - 1.0;
  double c = 1.0, d = 1.0 - qab * x / qap;
  if (std::fabs(d) < tiny) d = tiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= 10000; ++m) {
    double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1.0 + aa * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1.0 + aa * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    double del = d * c;
    h *= del;
    if (std::fabs(del - 1.0) < 1e-15) break;
  }
  return h;
}

// log I_x(a, b) given log x and log(1 - x) computed without cancellation.
double log_beta_inc_impl(double a, double b, double x, double lx, double l1x) {
  if (x <= 0) return kNegInf;
  if (x >= 1) return 0.0;
  double lbeta = std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b);
  double lfront = a * lx + b * l1x - lbeta;
  if (x < (a + 1.0) / (a + b + 2.0)) return lfront + std::log(beta_cf(a, b, x)) - std::log(a);
  double lother = lfront + std::log(beta_cf(b, a, 1.0 - x)) - std::log(b);
  return log1m_exp(std::min(lother, 0.0));
}

double log10_from_ln(double l) { return l / kLn10; }

}  // namespace

double log_gamma_q(double a, double x) {
  if (x <= 0) return 0.0;
  if (x < a + 1.0) {
    // Series for P(a, x), then Q = 1 - P.
    double sum = 1.0 / a, term = 1.0 / a;
    for (int n = 1; n < 100000; ++n) {
      term *= x / (a + n);
      sum += term;
      if (std::fabs(term) < std::fabs(sum) * 1e-16) break;
    }
    double lp = -x + a * std::log(x) - std::lgamma(a) + std::log(sum);
    return log1m_exp(std::min(lp, 0.0));
  }
  // Continued fraction for Gamma(a, x) (Lentz).
  const double tiny = 1e-300;
  double b = x + 1.0 - a, c = 1.0 / tiny, d = 1.0 / b, h = d;
  for (int i = 1; i < 100000; ++i) {
    double an = -i * (i - a);
    b += 2.0;
    d = an * d + b;
    if (std::fabs(d) < tiny) d = tiny;
    c = b + an / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    double del = d * c;
    h *= del;
    if (std::fabs(del - 1.0) < 1e-15) break;
  }
  return -x + a * std::log(x) - std::lgamma(a) + std::log(h);
}

double log_beta_inc(double a, double b, double x) {
  if (x <= 0) return kNegInf;
  if (x >= 1) return 0.0;
  return log_beta_inc_impl(a, b, x, std::log(x), std::log1p(-x));
}

double log10_normal_sf(double z) {
  if (std::isnan(z)) return 0.0;
  return log10_from_ln(log_normal_sf(z));
}

double log10_t_sf(double t, double df) {
  if (std::isnan(t) || df <= 0) return 0.0;
  if (std::isinf(t)) return t > 0 ? kNegInf : 0.0;
  // P(T > |t|) = 0.5 I_x(df/2, 1/2), x = df / (df + t^2).
  double t2 = t * t;
  double x = df / (df + t2);
  double lx = std::log(df) - std::log(df + t2);
  double l1x = std::log(t2) - std::log(df + t2);
  double lhalf = (t2 == 0) ? std::log(0.5) : std::log(0.5) + log_beta_inc_impl(df / 2, 0.5, x, lx, l1x);
  if (t >= 0) return log10_from_ln(lhalf);
  return log10_from_ln(log1m_exp(lhalf));
}

double log10_chi2_sf(double x, double df) {
  if (std::isnan(x) || df <= 0) return 0.0;
  if (x <= 0) return 0.0;
  return log10_from_ln(log_gamma_q(df / 2.0, x / 2.0));
}

double log10_binomial_sf(int64_t k, int64_t n, double p) {
  if (k <= 0) return 0.0;
  if (k > n || p <= 0) return kNegInf;
  if (p >= 1) return 0.0;
  // P(X >= k) = I_p(k, n - k + 1).
  return log10_from_ln(log_beta_inc(static_cast<double>(k), static_cast<double>(n - k + 1), p));
}

double pow10_clamped(double log10p) {
  if (log10p >= 0) return 1.0;
  if (log10p < -400) return 0.0;
  return std::pow(10.0, log10p);
}

std::vector<double> ranks(std::span<const double> x) {
  size_t n = x.size();
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> r(n);
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j + 1 < n && x[idx[j + 1]] == x[idx[i]]) ++j;
    double avg = 0.5 * static_cast<double>(i + j) + 1.0;
    for (size_t k = i; k <= j; ++k) r[idx[k]] = avg;
    i = j + 1;
  }
  return r;
}

double pearson(std::span<const double> x, std::span<const double> y) {
  size_t n = std::min(x.size(), y.size());
  if (n < 2) return 0.0;
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    double dx = x[i] - mx, dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx <= 0 || syy <= 0) return 0.0;
  return sxy / std::sqrt(sxx * syy);
}

double spearman(std::span<const double> x, std::span<const double> y) {
  auto rx = ranks(x);
  auto ry = ranks(y);
  return pearson(rx, ry);
}

double log10_correlation_p(double r, int64_t n) {
  if (n < 3 || std::isnan(r)) return 0.0;
  r = std::clamp(r, -1.0, 1.0 - 1e-15);
  double t = r * std::sqrt(static_cast<double>(n - 2) / (1.0 - r * r));
  return log10_t_sf(t, static_cast<double>(n - 2));
}

namespace {
// z such that the upper normal tail equals 10^log10p (solved by bisection on
// the accurate log tail, so it works for any representable log p).
double normal_isf_log10(double log10p) {
  if (log10p >= 0) return -40.0;
  double lo = -40.0, hi = 40.0;
  while (log10_normal_sf(hi) > log10p) hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-13 * std::max(1.0, std::fabs(hi)); ++i) {
    double mid = 0.5 * (lo + hi);
    if (log10_normal_sf(mid) > log10p)
      lo = mid;
    else
      hi = mid;
  }
  return 0.5 * (lo + hi);
}
}  // namespace

double fisher_combine(std::span<const double> log10p) {
  if (log10p.empty()) return 0.0;
  double x = 0;
  for (double l : log10p) x += -2.0 * kLn10 * std::min(l, 0.0);
  return log10_chi2_sf(x, 2.0 * static_cast<double>(log10p.size()));
}

double stouffer_combine(std::span<const double> log10p) {
  if (log10p.empty()) return 0.0;
  double s = 0;
  for (double l : log10p) s += normal_isf_log10(std::min(l, 0.0));
  return log10_normal_sf(s / std::sqrt(static_cast<double>(log10p.size())));
}

double bonferroni_min(std::span<const double> log10p) {
  if (log10p.empty()) return 0.0;
  double m = *std::min_element(log10p.begin(), log10p.end());
  return std::min(0.0, m + std::log10(static_cast<double>(log10p.size())));
}

double cauchy_combine(std::span<const double> log10p) {
  if (log10p.empty()) return 0.0;
  const double k = static_cast<double>(log10p.size());
  // Each term is tan((0.5 - p) pi). Tiny p give huge positive terms
  // (~ 1/(pi p)) kept in log form; the rest are summed directly.
  double log_big = kNegInf;  // log of the sum of huge positive terms
  double plain = 0.0;
  for (double l : log10p) {
    double lp = std::min(l, 0.0) * kLn10;
    if (lp < std::log(1e-12)) {
      log_big = log_add(log_big, -std::log(kPi) - lp);
    } else {
      double p = std::exp(lp);
      if (p > 1.0 - 1e-12) p = 1.0 - 1e-12;
      plain += std::tan((0.5 - p) * kPi);
    }
  }
  double log_t;  // log of T when T is large and positive
  if (log_big == kNegInf || log_big < 600) {
    double t = (log_big == kNegInf ? 0.0 : std::exp(log_big)) + plain;
    t /= k;
    if (t < 1e12) {
      double p = 0.5 - std::atan(t) / kPi;
      return std::log10(std::max(p, 1e-300));
    }
    log_t = std::log(t);
  } else {
    log_t = log_big + std::log1p(plain / std::exp(log_big)) - std::log(k);
  }
  // p = atan(1/T)/pi ~ 1/(pi T) for huge T.
  return (-std::log(kPi) - log_t) / kLn10;
}

std::vector<double> holm_adjust(std::span<const double> log10p) {
  size_t m = log10p.size();
  std::vector<size_t> idx(m);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return log10p[a] < log10p[b]; });
  std::vector<double> out(m);
  double running = kNegInf;
  for (size_t r = 0; r < m; ++r) {
    double v = std::min(0.0, log10p[idx[r]] + std::log10(static_cast<double>(m - r)));
    running = std::max(running, v);
    out[idx[r]] = running;
  }
  return out;
}

std::vector<double> bh_adjust(std::span<const double> log10p) {
  size_t m = log10p.size();
  std::vector<size_t> idx(m);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return log10p[a] < log10p[b]; });
  std::vector<double> out(m);
  double running = 0.0;
  for (size_t r = m; r-- > 0;) {
    double v = std::min(0.0, log10p[idx[r]] + std::log10(static_cast<double>(m) / static_cast<double>(r + 1)));
    running = std::min(running, v);
    out[idx[r]] = running;
  }
  return out;
}

double log10_fixed_points_bound(int64_t m, bool signed_match) {
  if (m <= 0) return 0.0;
  double l = -std::lgamma(static_cast<double>(m) + 1.0) / kLn10;
  if (signed_match) l -= static_cast<double>(m) * std::log10(2.0);
  return std::min(0.0, l);
}

double log10_rencontres_sf(int64_t m, int64_t n) {
  if (m <= 0) return 0.0;
  if (m > n) return kNegInf;
  // P(F = k) = D(n - k) / k!, D(r) = sum_{j<=r} (-1)^j / j!.
  std::vector<double> dr(static_cast<size_t>(n - m + 1));
  double term = 1.0, acc = 0.0;
  for (int64_t r = 0; r <= n - m; ++r) {
    if (r > 0) term *= -1.0 / static_cast<double>(r);
    acc += term;
    dr[static_cast<size_t>(r)] = r > 30 ? std::exp(-1.0) : acc;
  }
  double l = kNegInf;
  for (int64_t k = m; k <= n; ++k) {
    double d = dr[static_cast<size_t>(n - k)];
    if (d <= 0) continue;
    l = log_add(l, std::log(d) - std::lgamma(static_cast<double>(k) + 1.0));
  }
  return std::min(0.0, l / kLn10);
}

double log10_increasing_bound(int64_t m, int64_t n_a, bool signed_match) {
  if (m <= 0) return 0.0;
  if (m > n_a) return kNegInf;
  double lc = std::lgamma(static_cast<double>(n_a) + 1) - std::lgamma(static_cast<double>(m) + 1) -
              std::lgamma(static_cast<double>(n_a - m) + 1);
  double l = (lc - std::lgamma(static_cast<double>(m) + 1.0)) / kLn10;
  if (signed_match) l -= static_cast<double>(m) * std::log10(2.0);
  return std::min(0.0, l);
}

int64_t longest_increasing(std::span<const int64_t> seq, std::vector<int64_t>* pick) {
  // Patience sorting: tails[k] = position whose value ends the best run of length k+1.
  std::vector<int64_t> tails, prev(seq.size(), -1);
  for (size_t i = 0; i < seq.size(); ++i) {
    if (seq[i] < 0) continue;
    auto it = std::lower_bound(tails.begin(), tails.end(), seq[i],
                               [&](int64_t pos, int64_t v) { return seq[static_cast<size_t>(pos)] < v; });
    size_t k = static_cast<size_t>(it - tails.begin());
    if (k > 0) prev[i] = tails[k - 1];
    if (it == tails.end())
      tails.push_back(static_cast<int64_t>(i));
    else
      *it = static_cast<int64_t>(i);
  }
  if (pick) {
    pick->clear();
    if (!tails.empty()) {
      for (int64_t p = tails.back(); p >= 0; p = prev[static_cast<size_t>(p)]) pick->push_back(p);
      std::reverse(pick->begin(), pick->end());
    }
  }
  return static_cast<int64_t>(tails.size());
}

}  // namespace kaival::lineage
