#include "eval/score.h"

#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <set>

#include "core/error.h"
#include "eval/regex.h"

namespace kaival::eval {

std::string nfkc(std::string_view s) {
  std::string in(s);
  utf8proc_uint8_t* out = nullptr;
  auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(in.c_str()), static_cast<utf8proc_ssize_t>(in.size()),
                        &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  if (n < 0 || !out) {
    std::free(out);
    return in;  // invalid UTF-8: leave as is
  }
  std::string r(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  std::free(out);
  return r;
}

namespace {

enum class LabelStyle { Letters, Digits, Hangul, Other };

LabelStyle style_of(const std::vector<std::string>& norm) {
  if (norm.empty()) return LabelStyle::Other;
  auto all = [&](auto pred) { return std::all_of(norm.begin(), norm.end(), pred); };
  if (all([](const std::string& l) { return l.size() == 1 && std::isalpha(static_cast<unsigned char>(l[0])); }))
    return LabelStyle::Letters;
  if (all([](const std::string& l) {
        return !l.empty() && std::all_of(l.begin(), l.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
      }))
    return LabelStyle::Digits;
  if (all([](const std::string& l) { return l.size() == 3 && static_cast<unsigned char>(l[0]) >= 0xEA; }))
    return LabelStyle::Hangul;
  return LabelStyle::Other;
}

}  // namespace

std::vector<std::string> default_labels(size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n && i < 26; ++i) out.emplace_back(1, static_cast<char>('A' + i));
  return out;
}

int extract_choice(std::string_view text, const std::vector<std::string>& labels) {
  if (labels.empty()) return -1;
  std::vector<std::string> norm;
  for (const auto& l : labels) {
    std::string n = nfkc(l);
    // "(가)" / "(A)" / "1." style labels: keep the core.
    std::string core;
    for (char c : n)
      if (c != '(' && c != ')' && c != '.' && c != ' ') core += c;
    norm.push_back(core.empty() ? n : core);
  }
  std::string t = nfkc(text);
  LabelStyle st = style_of(norm);
  std::vector<size_t> order(norm.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return norm[a].size() > norm[b].size(); });
  std::string alt;
  for (size_t i : order) alt += (alt.empty() ? "" : "|") + escape_regex(norm[i]);
  std::string before, after;
  switch (st) {
    case LabelStyle::Letters: before = "(?<![A-Za-z])"; after = "(?![A-Za-z])"; break;
    case LabelStyle::Digits: before = "(?<![0-9.])"; after = "(?![0-9])"; break;
    case LabelStyle::Hangul: before = "(?<=[\\(\\[]|^)"; after = "(?=[\\)\\]\\.,:\\s]|$)"; break;
    case LabelStyle::Other: break;
  }
  auto index_of = [&](const std::string& m) -> int {
    for (size_t i = 0; i < norm.size(); ++i)
      if (norm[i] == m) return static_cast<int>(i);
    return -1;
  };
  std::string m;
  // 1. An explicit answer phrase: "정답은 ③", "답: (B)", "The answer is C". After such a
  // phrase a number 1..n also names a choice when the labels are letters or Hangul.
  {
    std::string phrase_alt = alt;
    if (st == LabelStyle::Letters || st == LabelStyle::Hangul)
      for (size_t i = norm.size(); i >= 1; --i) phrase_alt += "|" + std::to_string(i);
    Regex re("(?:정답|답|[Aa]nswer|ANSWER)\\s*(?:은|는|이|:|is|:)?\\s*:?\\s*(?:\\*\\*)?[\\(\\[]?\\s*(" + phrase_alt +
             ")(?![A-Za-z0-9])");
    if (re.search(t, 0, 1, &m)) {
      int i = index_of(m);
      if (i < 0 && !m.empty() && std::isdigit(static_cast<unsigned char>(m[0]))) i = std::stoi(m) - 1;
      return i;
    }
  }
  // 2. The response opens with a label: "(B) ...", "B. Paris", "③".
  {
    std::string lead_after = st == LabelStyle::Hangul ? std::string("(?=[\\)\\]\\.,:\\s]|$)") : after;
    Regex re("^\\s*(?:\\*\\*)?[\\(\\[]?\\s*(" + alt + ")" + lead_after);
    if (re.search(t, 0, 1, &m)) return index_of(m);
  }
  // 3. The first standalone label anywhere.
  {
    Regex re(before + "(" + alt + ")" + after);
    if (re.search(t, 0, 1, &m)) return index_of(m);
  }
  return -1;
}

std::string normalize_number(std::string_view text) {
  std::string t = nfkc(text);
  std::string s;
  for (char c : t)
    if (c != ',' && c != ' ' && c != '$') s += c;
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

std::string extract_number(std::string_view text, bool last) {
  std::string t = nfkc(text);
  Regex re("[-+]?\\d[\\d,]*(?:\\.\\d+)?");
  std::string found, m;
  size_t pos = 0, end = 0;
  while (pos <= t.size() && re.search(t, pos, 0, &m, &end)) {
    found = m;
    if (!last) break;
    pos = end;
  }
  return found.empty() ? found : normalize_number(found);
}

std::string apply_filters(const std::vector<Filter>& filters, std::string text, const std::vector<std::string>& labels) {
  for (const auto& f : filters) {
    if (f.type == "strip") {
      size_t a = text.find_first_not_of(" \t\r\n");
      size_t b = text.find_last_not_of(" \t\r\n");
      text = a == std::string::npos ? "" : text.substr(a, b - a + 1);
    } else if (f.type == "lower") {
      for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (f.type == "nfkc") {
      text = nfkc(text);
    } else if (f.type == "first_line") {
      size_t a = text.find_first_not_of(" \t\r\n");
      text = a == std::string::npos ? "" : text.substr(a);
      text = text.substr(0, text.find('\n'));
    } else if (f.type == "last_number" || f.type == "first_number") {
      std::string n = extract_number(text, f.type == "last_number");
      text = n.empty() ? f.fallback : n;
    } else if (f.type == "regex") {
      Regex re(f.pattern);
      std::string m;
      text = re.search(text, 0, f.group, &m) ? m : f.fallback;
    } else if (f.type == "choice") {
      int i = extract_choice(text, labels);
      text = i >= 0 ? labels[static_cast<size_t>(i)] : f.fallback;
    } else {
      throw UnsupportedError("filter", f.type);
    }
  }
  return text;
}

namespace {

std::vector<std::string> f1_tokens(std::string_view s) {
  std::string t = nfkc(s);
  std::string clean;
  for (unsigned char c : t) {
    if (c < 0x80 && std::ispunct(c)) clean += ' ';
    else clean += static_cast<char>(std::tolower(c));
  }
  std::vector<std::string> out;
  size_t i = 0;
  while (i < clean.size()) {
    while (i < clean.size() && std::isspace(static_cast<unsigned char>(clean[i]))) ++i;
    size_t j = i;
    while (j < clean.size() && !std::isspace(static_cast<unsigned char>(clean[j]))) ++j;
    if (j > i) {
      std::string w = clean.substr(i, j - i);
      if (w != "a" && w != "an" && w != "the") out.push_back(w);
    }
    i = j;
  }
  return out;
}

}  // namespace

double token_f1(std::string_view prediction, std::string_view reference) {
  auto p = f1_tokens(prediction), r = f1_tokens(reference);
  if (p.empty() || r.empty()) return p == r ? 1.0 : 0.0;
  std::map<std::string, int> count;
  for (const auto& w : r) ++count[w];
  int common = 0;
  for (const auto& w : p)
    if (count[w]-- > 0) ++common;
  if (common == 0) return 0.0;
  double prec = double(common) / double(p.size()), rec = double(common) / double(r.size());
  return 2 * prec * rec / (prec + rec);
}

MeanStderr bootstrap_mean(const std::vector<double>& x, int resamples, uint64_t seed) {
  MeanStderr r;
  if (x.empty()) return r;
  double s = 0;
  for (double v : x) s += v;
  r.mean = s / double(x.size());
  if (x.size() < 2) return r;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, x.size() - 1);
  double m1 = 0, m2 = 0;
  for (int b = 0; b < resamples; ++b) {
    double t = 0;
    for (size_t i = 0; i < x.size(); ++i) t += x[pick(rng)];
    t /= double(x.size());
    m1 += t;
    m2 += t * t;
  }
  m1 /= resamples;
  r.stderr_ = std::sqrt(std::max(0.0, m2 / resamples - m1 * m1) * resamples / std::max(1, resamples - 1));
  return r;
}

}  // namespace kaival::eval
