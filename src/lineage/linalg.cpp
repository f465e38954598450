#include "lineage/linalg.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <cblas.h>

#include "core/error.h"
#include "lineage/stats.h"

// LAPACK's divide-and-conquer SVD (Fortran ABI, provided by OpenBLAS).
extern "C" void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
                        double* work, const int* lwork, int* iwork, const int* liwork, int* info);
extern "C" void dgesdd_(const char* jobz, const int* m, const int* n, double* a, const int* lda, double* s,
                        double* u, const int* ldu, double* vt, const int* ldvt, double* work, const int* lwork,
                        int* iwork, int* info);

namespace kaival::lineage {

MatF mul_abt(const MatF& a, const MatF& b) {
  if (a.cols() != b.cols()) fail<UnsupportedError>("mul_abt", "inner sizes differ ({} vs {})", a.cols(), b.cols());
  MatF c(a.rows(), b.rows());
  if (c.size() == 0) return c;
  if (a.cols() == 0) return MatF::Zero(a.rows(), b.rows());
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(a.rows()), static_cast<int>(b.rows()),
              static_cast<int>(a.cols()), 1.0f, a.data(), static_cast<int>(a.cols()), b.data(),
              static_cast<int>(b.cols()), 0.0f, c.data(), static_cast<int>(c.cols()));
  return c;
}

MatD mul_atb(const MatD& a, const MatD& b) {
  if (a.rows() != b.rows()) fail<UnsupportedError>("mul_atb", "inner sizes differ ({} vs {})", a.rows(), b.rows());
  MatD c(a.cols(), b.cols());
  if (c.size() == 0) return c;
  if (a.rows() == 0) return MatD::Zero(a.cols(), b.cols());
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(a.cols()), static_cast<int>(b.cols()),
              static_cast<int>(a.rows()), 1.0, a.data(), static_cast<int>(a.cols()), b.data(),
              static_cast<int>(b.cols()), 0.0, c.data(), static_cast<int>(c.cols()));
  return c;
}

std::vector<int64_t> linear_assignment(const MatD& cost) {
  const int64_t n = cost.rows(), m = cost.cols();
  if (n > m) fail<UnsupportedError>("linear_assignment", "more rows ({}) than columns ({})", n, m);
  const double inf = std::numeric_limits<double>::infinity();
  // 1-based arrays; column 0 is a virtual column used to start each search.
  std::vector<double> u(n + 1, 0.0), v(m + 1, 0.0);
  std::vector<int64_t> owner(m + 1, 0), via(m + 1, 0);
  std::vector<double> dist(m + 1);
  std::vector<char> done(m + 1);
  for (int64_t row = 1; row <= n; ++row) {
    owner[0] = row;
    int64_t col = 0;
    std::fill(dist.begin(), dist.end(), inf);
    std::fill(done.begin(), done.end(), 0);
    // Dijkstra over reduced costs until a free column is reached.
    do {
      done[col] = 1;
      const int64_t r = owner[col];
      double best = inf;
      int64_t next = 0;
      for (int64_t j = 1; j <= m; ++j) {
        if (done[j]) continue;
        double reduced = cost(r - 1, j - 1) - u[r] - v[j];
        if (reduced < dist[j]) {
          dist[j] = reduced;
          via[j] = col;
        }
        if (dist[j] < best) {
          best = dist[j];
          next = j;
        }
      }
      for (int64_t j = 0; j <= m; ++j) {
        if (done[j]) {
          u[owner[j]] += best;
          v[j] -= best;
        } else {
          dist[j] -= best;
        }
      }
      col = next;
    } while (owner[col] != 0);
    // Flip the augmenting path.
    while (col != 0) {
      int64_t prev = via[col];
      owner[col] = owner[prev];
      col = prev;
    }
  }
  std::vector<int64_t> assign(n, -1);
  for (int64_t j = 1; j <= m; ++j)
    if (owner[j] > 0) assign[owner[j] - 1] = j - 1;
  return assign;
}

std::vector<int64_t> linear_assignment_max(const MatD& similarity) {
  MatD cost = -similarity;
  return linear_assignment(cost);
}

MatD orthogonal_procrustes(const MatD& a, const MatD& b) {
  if (a.rows() != b.rows())
    fail<UnsupportedError>("procrustes", "row counts differ ({} vs {})", a.rows(), b.rows());
  // M = B^T A = U S V^T; the optimum is U V^T. LAPACK (OpenBLAS) does the SVD.
  Eigen::MatrixXd m = b.transpose() * a;  // column-major, B.cols x A.cols
  int rows = static_cast<int>(m.rows()), cols = static_cast<int>(m.cols());
  int k = std::min(rows, cols);
  Eigen::MatrixXd u(rows, k), vt(k, cols);
  Eigen::VectorXd s(k);
  char jobz = 'S';
  int lda = rows, ldu = rows, ldvt = k, info = 0, lwork = -1;
  std::vector<int> iwork(8 * static_cast<size_t>(k));
  double query = 0;
  dgesdd_(&jobz, &rows, &cols, m.data(), &lda, s.data(), u.data(), &ldu, vt.data(), &ldvt, &query, &lwork,
          iwork.data(), &info);
  lwork = static_cast<int>(query);
  std::vector<double> work(static_cast<size_t>(std::max(lwork, 1)));
  dgesdd_(&jobz, &rows, &cols, m.data(), &lda, s.data(), u.data(), &ldu, vt.data(), &ldvt, work.data(), &lwork,
          iwork.data(), &info);
  if (info != 0) fail<UnsupportedError>("procrustes", "SVD did not converge (LAPACK info {})", info);
  return u * vt;
}

namespace {
// S^p for a symmetric positive semi-definite S (eigenvalues floored at `floor`).
Eigen::MatrixXd sym_power(const Eigen::MatrixXd& s, double p, double floor) {
  Eigen::MatrixXd v = s;
  int n = static_cast<int>(s.rows()), info = 0, lwork = -1, liwork = -1;
  Eigen::VectorXd w(n);
  double wq = 0;
  int iq = 0;
  char jobz = 'V', uplo = 'U';
  dsyevd_(&jobz, &uplo, &n, v.data(), &n, w.data(), &wq, &lwork, &iq, &liwork, &info);
  lwork = static_cast<int>(wq);
  liwork = iq;
  std::vector<double> work(static_cast<size_t>(std::max(lwork, 1)));
  std::vector<int> iwork(static_cast<size_t>(std::max(liwork, 1)));
  dsyevd_(&jobz, &uplo, &n, v.data(), &n, w.data(), work.data(), &lwork, iwork.data(), &liwork, &info);
  if (info != 0) fail<UnsupportedError>("procrustes", "eigendecomposition did not converge (LAPACK info {})", info);
  for (int i = 0; i < n; ++i) w(i) = std::pow(std::max(w(i), floor), p);
  return v * w.asDiagonal() * v.transpose();
}
}  // namespace

MatD whitened_procrustes(const MatD& a, const MatD& b) {
  auto cov = [](const MatD& x) {
    Eigen::MatrixXd c = x.transpose() * x / static_cast<double>(std::max<int64_t>(1, x.rows()));
    return c;
  };
  Eigen::MatrixXd ca = cov(a), cb = cov(b);
  double fa = 1e-6 * ca.trace() / std::max<int64_t>(1, ca.rows()) + 1e-300;
  double fb = 1e-6 * cb.trace() / std::max<int64_t>(1, cb.rows()) + 1e-300;
  Eigen::MatrixXd wa = sym_power(ca, -0.5, fa), wb = sym_power(cb, -0.5, fb), ha = sym_power(ca, 0.5, fa);
  MatD at = a * wa, bt = b * wb;
  MatD r = orthogonal_procrustes(at, bt);
  return wb * r * ha;
}

double linear_cka(const MatD& x, const MatD& y, bool center) {
  MatD xc = x, yc = y;
  if (center) {
    xc.rowwise() -= xc.colwise().mean();
    yc.rowwise() -= yc.colwise().mean();
  }
  // ||Y^T X||^2 / (||X^T X|| ||Y^T Y||), via whichever side is smaller.
  double num, dx, dy;
  if (x.rows() <= std::min(x.cols(), y.cols())) {
    MatD k = xc * xc.transpose(), l = yc * yc.transpose();
    num = (k.array() * l.array()).sum();
    dx = k.norm();
    dy = l.norm();
  } else {
    num = (yc.transpose() * xc).squaredNorm();
    dx = (xc.transpose() * xc).norm();
    dy = (yc.transpose() * yc).norm();
  }
  if (dx <= 0 || dy <= 0) return 0.0;
  return num / (dx * dy);
}

GramTest gram_similarity_test(const MatD& k, const MatD& l) {
  const int64_t n = k.rows();
  GramTest out;
  if (n < 3 || l.rows() != n || k.cols() != n || l.cols() != n) return out;
  double t = (k.array() * l.array()).sum();
  double kk = k.squaredNorm(), ll = l.squaredNorm();
  if (kk <= 0 || ll <= 0) return out;
  out.cka = t / std::sqrt(kk * ll);
  // Diagonal part: a linear assignment statistic sum_i K_ii L_pi(i)pi(i)
  // (Hoeffding's moments); off-diagonal part: signs make it mean zero, and
  // only identical pairs contribute to its variance.
  Eigen::VectorXd kd = k.diagonal(), ld = l.diagonal();
  double nd = static_cast<double>(n);
  double mean = kd.sum() * ld.sum() / nd;
  double var_diag = (kd.array() - kd.mean()).square().sum() * (ld.array() - ld.mean()).square().sum() / (nd - 1.0);
  double k_off = kk - kd.squaredNorm(), l_off = ll - ld.squaredNorm();
  double var_off = 2.0 * k_off * l_off / (nd * (nd - 1.0));
  double sd = std::sqrt(var_diag + var_off);
  if (sd <= 0) return out;
  out.z = (t - mean) / sd;
  out.log10p = log10_normal_sf(out.z);
  return out;
}

}  // namespace kaival::lineage
