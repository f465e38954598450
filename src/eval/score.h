#pragma once
// Answer extraction (filters) and per-item metrics. Korean-aware: "정답은 ③",
// circled ①-⑩, full-width digits and letters, "(가)/(나)" labels.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "eval/ifeval.h"
#include "eval/task.h"

namespace kaival::eval {

// Unicode NFKC (full-width "Ａ１" -> "A1", circled "③" -> "3").
std::string nfkc(std::string_view s);

// Index of the choice a free-text answer names, or -1. `labels` are the
// card's labels (A/B/C..., 1/2/3..., ①/②..., 가/나/...); answers may use the
// letter, the number, the circled number or the Hangul label in any width,
// with or without parentheses, after "정답은", "답:", "Answer:", "answer is"...
int extract_choice(std::string_view text, const std::vector<std::string>& labels);

// The last (or first) number in the text, normalised: full-width digits,
// thousands separators, a trailing ".0", a leading "+" removed. "" if none.
std::string extract_number(std::string_view text, bool last = true);
// Normalises a reference number the same way ("1,000.50" -> "1000.5").
std::string normalize_number(std::string_view text);

// Runs the card's filters in order over a response.
std::string apply_filters(const std::vector<Filter>& filters, std::string text, const std::vector<std::string>& labels);

// SQuAD-style token F1 (lower case, punctuation and articles dropped).
double token_f1(std::string_view prediction, std::string_view reference);

// Default labels for n choices: A, B, C, ...
std::vector<std::string> default_labels(size_t n);

// IFEval verifiable instructions (ifeval_check, ifeval_check_loose): eval/ifeval.h.

// Mean of x and its bootstrap standard error (fixed seed, `resamples` draws).
struct MeanStderr {
  double mean = 0;
  double stderr_ = 0;
};
MeanStderr bootstrap_mean(const std::vector<double>& x, int resamples = 1000, uint64_t seed = 1234);

}  // namespace kaival::eval
