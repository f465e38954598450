#pragma once
// The per-component tests.
//
// coordinate match (exact): each residual coordinate of A is matched to the
//   B coordinate with the nearest signature (or the most correlated embedding
//   column). If B was trained independently of A, its distribution is
//   invariant under signed permutations of its residual coordinates (i.i.d.
//   initialisation, coordinate-wise optimisers such as Adam, elementwise norm
//   gains), so the matching is composed with a uniformly random relabelling
//   and the number m of coordinates matched to themselves obeys
//   P(m' >= m) <= 1/m! (1/(m! 2^m) when signs must agree too). When widths
//   differ, the longest increasing run of matches is used instead:
//   P <= C(n, m)/m!. No approximation is involved.
//
// unit match (approximate): hidden units (MLP rows, attention q rows / v
//   rows) of A are matched to B's units on one matrix; the match is then
//   validated on another matrix of the same units (up / down for the MLP,
//   k for q rows via the RoPE pairing, o for v rows). Under independence the
//   validating similarity of the matched pair ranks uniformly among all B
//   units; the mean rank gives a z statistic (normal approximation). The
//   within-unit component of the matching matrix is projected out of the
//   validating matrix first. In an aligned basis the count of confirmed
//   matches is tested against a convergence allowance instead.
//
// gram CKA (approximate): linear CKA between the components' Gram matrices
//   over residual coordinates, after mapping B into A's basis; its null
//   moments are those of a random signed permutation of coordinates.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lineage/linalg.h"

namespace kaival::lineage {

struct TestOutcome {
  std::string method;        // "coord-match", "unit-match", "gram-cka"
  std::string basis;         // "native" or "aligned"
  bool exact = false;        // p-value has no approximation
  bool decides = true;       // enters the component's p-value (else reported as evidence only)
  double statistic = 0;      // fraction matched / mean-rank z / CKA
  std::string statistic_name;
  double log10p = 0;
  nlohmann::json detail = nlohmann::json::object();
};

// Feature-signature matching (features: d x p per model, same feature order).
TestOutcome coord_match_features(const MatD& fa, const MatD& fb);
// Column-correlation matching (embeddings/heads over shared tokens; rows are
// tokens, columns residual coordinates). Signs count.
TestOutcome coord_match_columns(const MatF& ea, const MatF& eb, int64_t max_coords);

// Unit matching: xa/xb [units, k] match; each validation pair [units, k].
struct Validation {
  const MatF* a;
  const MatF* b;
  // Maps a unit index of the matching view to a unit index of this
  // validation view (identity when empty), for q rows -> k rows.
  std::vector<int64_t> a_map, b_map;
};
std::optional<TestOutcome> unit_match(const MatF& xa, const MatF& xb, const std::vector<Validation>& validations,
                                      int64_t max_units);

// In an aligned basis unrelated models can share some units by convergent
// learning, so the mean-rank z is not calibrated there. Instead: count the
// units whose match every validation confirms (top-1) and test that count
// against Binomial(n, allowance + (1 - allowance)/candidates), i.e. allow a
// fraction `allowance` of units a genuine counterpart in an unrelated model.
void use_confirmed_fraction(TestOutcome& t, double allowance);

TestOutcome gram_cka(const MatD& ka, const MatD& kb);

// Deterministic evenly spaced subset of [0, n) of size min(n, k).
std::vector<int64_t> spaced_subset(int64_t n, int64_t k);

}  // namespace kaival::lineage
