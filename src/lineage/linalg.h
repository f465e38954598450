#pragma once
// Dense linear algebra for lineage: linear assignment, orthogonal Procrustes,
// linear CKA and its randomization test.
#include <cstdint>
#include <vector>

#include <Eigen/Core>

namespace kaival::lineage {

using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Products through BLAS (OpenBLAS picks the CPU's vector kernels at run time,
// while this code is compiled for the baseline ISA): a * b^T and a^T * b.
MatF mul_abt(const MatF& a, const MatF& b);
MatD mul_atb(const MatD& a, const MatD& b);

// Minimum-cost assignment of every row of `cost` (n x m, n <= m) to a distinct
// column: shortest augmenting paths with dual potentials (Jonker-Volgenant /
// Hungarian family), O(n^2 m). Returns the column of each row.
std::vector<int64_t> linear_assignment(const MatD& cost);
// Same, maximizing total similarity.
std::vector<int64_t> linear_assignment_max(const MatD& similarity);

// Orthogonal Procrustes: R (B.cols x A.cols, orthonormal columns when
// B.cols >= A.cols) minimizing ||A - B R||_F. Rows of A and B are paired
// observations (e.g. embeddings of shared tokens).
MatD orthogonal_procrustes(const MatD& a, const MatD& b);

// Whitened (CCA-style) Procrustes: a map M (B.cols x A.cols) taking B's row
// vectors into A's basis (v_B M ~ v_A). Both sides are whitened before the
// orthogonal fit, so directions are not paired merely because both carry a
// lot of variance (plain Procrustes pairs the principal axes of unrelated
// data); for B = A Q with Q orthogonal it returns Q^T exactly.
MatD whitened_procrustes(const MatD& a, const MatD& b);

// Linear CKA between representations X (n x p) and Y (n x q) of the same n
// samples (rows). `center`: subtract column means first (the usual CKA).
double linear_cka(const MatD& x, const MatD& y, bool center = true);

// Similarity of two Gram matrices over the same n samples (K = X X^T,
// L = Y Y^T, uncentred) with a randomization test: under the null the sample
// labels of L are composed with a uniformly random signed permutation (the
// symmetry of an independently trained model's residual coordinates). The
// first two moments of T = tr(K L) under that randomization are exact; the
// p-value uses the normal approximation.
struct GramTest {
  double cka = 0;     // tr(KL) / sqrt(tr(KK) tr(LL))
  double z = 0;       // (T - E T) / sd(T)
  double log10p = 0;  // one-sided, upper tail
};
GramTest gram_similarity_test(const MatD& k, const MatD& l);

}  // namespace kaival::lineage
