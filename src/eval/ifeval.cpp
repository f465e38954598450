#include "eval/ifeval.h"

#include <utf8proc.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "core/error.h"
#include "eval/regex.h"

namespace kaival::eval {
namespace {

using Json = nlohmann::ordered_json;

// ---- Unicode helpers (Python str semantics where the reference relies on them)

struct Cp {
  int32_t c;
  size_t begin, end;  // byte range
};

// Code points with their byte ranges; an invalid byte reads as U+FFFD.
std::vector<Cp> decode(std::string_view s) {
  std::vector<Cp> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t c = 0;
    auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                              static_cast<utf8proc_ssize_t>(s.size() - i), &c);
    if (n <= 0) {
      c = 0xFFFD;
      n = 1;
    }
    out.push_back({c, i, i + static_cast<size_t>(n)});
    i += static_cast<size_t>(n);
  }
  return out;
}

void append_cp(std::string& out, int32_t c) {
  utf8proc_uint8_t buf[4];
  auto n = utf8proc_encode_char(c, buf);
  out.append(reinterpret_cast<char*>(buf), static_cast<size_t>(n));
}

// Python's str.isspace.
bool is_space(int32_t c) {
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F) || c == 0x85) return true;
  if (c < 0x80) return false;
  auto cat = utf8proc_category(c);
  return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

bool is_letter_or_mark(int32_t c) {
  auto cat = utf8proc_category(c);
  return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
         (cat >= UTF8PROC_CATEGORY_MN && cat <= UTF8PROC_CATEGORY_ME);
}

// Python's str.lower (simple case mapping per code point).
std::string lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const auto& cp : decode(s)) append_cp(out, utf8proc_tolower(cp.c));
  return out;
}

// Python's str.strip().
std::string_view strip(std::string_view s) {
  auto cps = decode(s);
  size_t a = 0, b = cps.size();
  while (a < b && is_space(cps[a].c)) ++a;
  while (b > a && is_space(cps[b - 1].c)) --b;
  if (a == b) return {};
  return s.substr(cps[a].begin, cps[b - 1].end - cps[a].begin);
}

bool blank(std::string_view s) { return strip(s).empty(); }

// Python's str.split() (runs of whitespace, no empty fields).
std::vector<std::string_view> split_ws(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = std::string_view::npos;
  for (const auto& cp : decode(s)) {
    if (is_space(cp.c)) {
      if (start != std::string_view::npos) out.push_back(s.substr(start, cp.begin - start));
      start = std::string_view::npos;
    } else if (start == std::string_view::npos) {
      start = cp.begin;
    }
  }
  if (start != std::string_view::npos) out.push_back(s.substr(start));
  return out;
}

// Python's str.split(sep): every field, empty ones included.
std::vector<std::string_view> split_on(std::string_view s, std::string_view sep) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(sep, pos)) != std::string_view::npos; pos = hit + sep.size())
    out.push_back(s.substr(pos, hit - pos));
  out.push_back(s.substr(pos));
  return out;
}

// ---- keyword arguments

class Args {
 public:
  Args(const std::string& id, const Json& kw) : id_(id), kw_(kw) {}
  // Integers may arrive as integral floats (datasets exported through pandas).
  int64_t integer(const char* k) const {
    if (kw_.contains(k)) {
      const auto& v = kw_[k];
      if (v.is_number_integer()) return v.get<int64_t>();
      if (v.is_number_float() && v.get<double>() == static_cast<double>(static_cast<int64_t>(v.get<double>())))
        return static_cast<int64_t>(v.get<double>());
    }
    throw FormatError("ifeval " + id_, std::string("missing integer '") + k + "'");
  }
  std::string string(const char* k) const {
    if (!kw_.contains(k) || !kw_[k].is_string())
      throw FormatError("ifeval " + id_, std::string("missing string '") + k + "'");
    return kw_[k].get<std::string>();
  }
  std::vector<std::string> strings(const char* k) const {
    if (!kw_.contains(k) || !kw_[k].is_array()) throw FormatError("ifeval " + id_, std::string("missing '") + k + "'");
    std::vector<std::string> out;
    for (const auto& v : kw_[k]) {
      if (!v.is_string()) throw FormatError("ifeval " + id_, std::string("'") + k + "' holds a non-string");
      out.push_back(v.get<std::string>());
    }
    return out;
  }
  const std::string& id() const { return id_; }

 private:
  const std::string& id_;
  const Json& kw_;
};

bool relation_holds(const std::string& rel, int64_t value, int64_t n) {
  if (rel == "less than") return value < n;
  if (rel == "at least") return value >= n;
  throw UnsupportedError("ifeval", "relation '" + rel + "'");
}

std::string lower_ascii(std::string_view s) {
  std::string o(s);
  for (auto& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return o;
}

size_t count_words(std::string_view s) {
  size_t n = 0;
  bool in = false;
  for (unsigned char c : s) {
    bool w = !std::isspace(c) && !(c < 0x80 && std::ispunct(c));
    if (w && !in) ++n;
    in = w;
  }
  return n;
}

size_t count_word(std::string_view hay, const std::string& word) {
  return Regex("(?i)\\b" + escape_regex(word) + "\\b").count(hay);
}

// ---- language detection

enum class Script { None, Latin, Hangul, Kana, Han, Thai, Bengali, Tamil, Telugu, Kannada, Gujarati, Gurmukhi,
                    Malayalam, Devanagari, Arabic, Hebrew, Cyrillic, Greek, Other };

Script script_of(int32_t c) {
  if (!is_letter_or_mark(c)) return Script::None;
  auto in = [c](int32_t a, int32_t b) { return c >= a && c <= b; };
  if (c < 0x80 || in(0xC0, 0x24F) || in(0x1E00, 0x1EFF)) return Script::Latin;
  if (in(0xAC00, 0xD7AF) || in(0x1100, 0x11FF) || in(0x3130, 0x318F)) return Script::Hangul;
  if (in(0x3040, 0x30FF) || in(0x31F0, 0x31FF) || in(0xFF66, 0xFF9F)) return Script::Kana;
  if (in(0x4E00, 0x9FFF) || in(0x3400, 0x4DBF) || in(0xF900, 0xFAFF)) return Script::Han;
  if (in(0x0E00, 0x0E7F)) return Script::Thai;
  if (in(0x0980, 0x09FF)) return Script::Bengali;
  if (in(0x0B80, 0x0BFF)) return Script::Tamil;
  if (in(0x0C00, 0x0C7F)) return Script::Telugu;
  if (in(0x0C80, 0x0CFF)) return Script::Kannada;
  if (in(0x0A80, 0x0AFF)) return Script::Gujarati;
  if (in(0x0A00, 0x0A7F)) return Script::Gurmukhi;
  if (in(0x0D00, 0x0D7F)) return Script::Malayalam;
  if (in(0x0900, 0x097F) || in(0xA8E0, 0xA8FF)) return Script::Devanagari;
  if (in(0x0600, 0x06FF) || in(0x0750, 0x077F) || in(0xFB50, 0xFDFF) || in(0xFE70, 0xFEFF)) return Script::Arabic;
  if (in(0x0590, 0x05FF)) return Script::Hebrew;
  if (in(0x0400, 0x052F)) return Script::Cyrillic;
  if (in(0x0370, 0x03FF) || in(0x1F00, 0x1FFF)) return Script::Greek;
  return Script::Other;
}

struct Profile {
  const char* lang;
  const char* words;  // space separated, lower case
};

// Frequent function words, chosen to be common in running text of the
// language; words shared by several profiles count for each a share.
constexpr Profile kLatin[] = {
    {"en", "the and of to is in that it for was with as on are this be by have you not or from at which but they we "
           "an has were their will can would there been what more also about your our these those its"},
    {"de", "der die das und ist nicht ich sie es den dem mit sich des auf für ein eine einen einem auch von zu im wir "
           "sind wird werden dass aber oder wie bei nach noch kann hat sein durch über zum zur uns ihr man"},
    {"it", "il di che è e la le per un una non sono del della dei delle nel nella con si lo gli anche come più ma da "
           "al alla questo questa ha essere ci sua suo loro molto"},
    {"pt", "o os de que e do da dos das em um uma para com não no na nos é por mais se como mas foi ao ele ela são "
           "também muito pelo pela seu sua você isso está"},
    {"es", "el la los las de que y en un una es por con no para se del al lo como más pero su sus este esta está son "
           "también muy fue hay ser yo todo"},
    {"fr", "le la les de des et est un une du que qui dans en pour pas ne au aux sur avec ce cette il elle nous vous "
           "sont par plus mais ou son sa ses être été je"},
    {"fi", "ja on ei se että hän oli ovat mutta kun tai jos myös niin kuin sen tämä tämän ne ole olla minä sinä me "
           "te he joka jotka mitä kanssa voi vain nyt sitä siitä hyvin jo"},
    {"vi", "và của là có không những các được cho một người trong này với đã để khi cũng như thì từ đến nhiều tôi "
           "bạn chúng sẽ làm ra về năm vào nên rất"},
    {"sw", "na ya wa kwa ni za katika la kuwa hii huo hiyo ili pia lakini sana kama yake wake watu kwamba au hata tu "
           "wao sisi mimi wewe yeye hapa kutoka zaidi moja baada"},
    {"pl", "i w nie na się z do to że jest jak o co ale po od dla tak jego by przez są czy już może tylko oraz jej "
           "ich był była będzie"},
    {"nl", "de het een en van is dat niet op te zijn met voor die ook als aan er maar om hij bij nog wordt worden dit "
           "naar uit kan ze wij jullie"},
    {"sv", "och att det som en är på för av med till den har inte om ett var jag de men så kan vi från eller hon han "
           "sig detta också"},
    {"tr", "ve bir bu da de için ile çok daha gibi olarak olan ama ne var yok en her değil sonra kadar şey ben sen "
           "biz onlar mi mı"},
    {"id", "yang dan di itu dengan untuk tidak ini dari dalam akan pada juga saya ke karena ada oleh bisa mereka kami "
           "kita sudah atau seperti"},
};
constexpr Profile kDevanagari[] = {
    {"hi", "है हैं में और से नहीं था थे यह वह लिए किया कर रहा रही जाता होता गया भी हम आप इस उस कुछ बहुत"},
    {"mr", "आहे आहेत आणि व हे ते मध्ये नाही होते साठी पण आम्ही तुम्ही त्यांनी केले करणे असे म्हणून आपण त्या या"},
    {"ne", "छ छन् र मा ले लाई पनि यो त्यो थियो हुन्छ गरेको भएको छैन गर्न हुने हामी तपाईं गर्छ"},
};
constexpr Profile kCyrillic[] = {
    {"ru", "что это как был была были который которые его она они мы есть для если только уже или быть можно очень"},
    {"bg", "е са се да че като това този тази които ще във съм от за беше бяха има може много"},
    {"uk", "і що це як та до для є але він вони ми або також дуже може було була якщо"},
};

// Weighted stop-word votes of one script's profiles over the text's words.
std::map<std::string, double> stopword_votes(const std::vector<std::string>& words, const Profile* profiles,
                                             size_t n) {
  std::map<std::string, std::vector<const char*>> owners;
  for (size_t p = 0; p < n; ++p)
    for (auto w : split_ws(profiles[p].words)) owners[std::string(w)].push_back(profiles[p].lang);
  std::map<std::string, double> votes;
  for (const auto& w : words) {
    auto it = owners.find(w);
    if (it == owners.end()) continue;
    for (const char* lang : it->second) votes[lang] += 1.0 / double(it->second.size());
  }
  return votes;
}

std::string best(const std::map<std::string, double>& votes, const std::string& fallback) {
  std::string pick = fallback;
  double top = 0;
  for (const auto& [lang, v] : votes)
    if (v > top) {
      top = v;
      pick = lang;
    }
  return pick;
}

// Lower-case words: runs of letters and marks.
std::vector<std::string> letter_words(const std::vector<Cp>& cps) {
  std::vector<std::string> out;
  std::string cur;
  for (const auto& cp : cps) {
    if (is_letter_or_mark(cp.c)) {
      append_cp(cur, utf8proc_tolower(cp.c));
    } else if (!cur.empty()) {
      out.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

// ---- NLTK-like tokenization

bool starts_lower(std::string_view tok) {
  for (const auto& cp : decode(tok)) {
    if (!is_letter_or_mark(cp.c)) continue;  // skip opening quotes and brackets
    return utf8proc_category(cp.c) == UTF8PROC_CATEGORY_LL;
  }
  return false;
}
bool starts_upper(std::string_view tok) {
  for (const auto& cp : decode(tok)) {
    if (!is_letter_or_mark(cp.c)) continue;
    return utf8proc_category(cp.c) == UTF8PROC_CATEGORY_LU || utf8proc_category(cp.c) == UTF8PROC_CATEGORY_LT;
  }
  return false;
}

// Whether a whitespace-delimited token ends a sentence, given the next token
// ("" at the end of the text).
bool ends_sentence(std::string_view tok, std::string_view next) {
  static const std::set<std::string, std::less<>> kAbbrev = {
      "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "inc", "ltd", "co", "corp",
      "fig", "approx", "dept", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
      "dec", "u.s", "u.k", "a.m", "p.m", "gen", "gov", "sen", "rep", "mt", "ft", "vol", "ed", "al", "cf", "ca",
      "no", "capt", "lt", "col", "messrs"};
  static const std::set<std::string, std::less<>> kStarters = {
      "the", "a", "an", "it", "this", "that", "these", "those", "i", "we", "you", "he", "she", "they", "but",
      "however", "in", "there", "if", "when", "so", "and", "as", "for", "on", "at", "my", "our", "his", "her",
      "their", "what", "how", "why", "then", "also", "finally", "first", "next"};
  // Closing quotes, brackets and markdown emphasis after the final mark.
  std::string_view t = tok;
  for (bool again = true; again && !t.empty();) {
    again = false;
    for (std::string_view closer : {"\"", "'", ")", "]", "}", "*", "_", "\u201D", "\u2019", "\u00BB"}) {
      if (t.size() >= closer.size() && t.substr(t.size() - closer.size()) == closer) {
        t.remove_suffix(closer.size());
        again = true;
      }
    }
  }
  if (t.empty()) return false;
  char last = t.back();
  if (last == '?' || last == '!') return true;
  if (last != '.') return false;
  size_t dots = 0;
  while (!t.empty() && t.back() == '.') {
    t.remove_suffix(1);
    ++dots;
  }
  // The word before the period, without leading quotes or brackets.
  size_t a = 0;
  while (a < t.size() && std::string_view("\"'([{*_").find(t[a]) != std::string_view::npos) ++a;
  std::string word = lower(t.substr(a));
  if (dots >= 2 || word.empty()) return starts_upper(next);  // ellipsis
  if (kAbbrev.count(word)) return starts_upper(next) && kStarters.count(lower_ascii(next.substr(0, next.find_first_of(" ,;:")))) > 0;
  auto cps = decode(word);
  if (cps.size() == 1 && is_letter_or_mark(cps[0].c)) return false;  // an initial
  if (word.find('.') != std::string::npos) {  // "u.s", "a.b.c": abbreviation-like
    bool short_parts = true;
    for (auto part : split_on(word, ".")) short_parts = short_parts && part.size() <= 2;
    if (short_parts) return false;
  }
  bool number = std::all_of(word.begin(), word.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == ',' || c == '.'; });
  if (number) return !starts_lower(next);
  return true;
}

// NLTK word_tokenize splits these contractions into two tokens.
std::vector<std::string_view> split_contraction(std::string_view w) {
  std::string l = lower(w);
  auto ends = [&](std::string_view suf) { return l.size() > suf.size() && l.substr(l.size() - suf.size()) == suf; };
  for (std::string_view suf : {"n't", "n\u2019t"})
    if (ends(suf)) return {w.substr(0, w.size() - suf.size()), w.substr(w.size() - suf.size())};
  for (std::string_view suf : {"'s", "'m", "'d", "'ll", "'re", "'ve", "\u2019s", "\u2019m", "\u2019d", "\u2019ll",
                               "\u2019re", "\u2019ve"})
    if (ends(suf)) return {w.substr(0, w.size() - suf.size()), w.substr(w.size() - suf.size())};
  for (std::string_view whole : {"cannot", "gonna", "gotta", "wanna", "gimme", "lemme"})
    if (l == whole) return {w.substr(0, 3), w.substr(3)};
  return {w};
}

// Python's str.isupper: some cased character and no lower or title case one.
bool is_upper_word(std::string_view w) {
  bool upper = false;
  for (const auto& cp : decode(w)) {
    auto cat = utf8proc_category(cp.c);
    if (cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT) return false;
    upper = upper || cat == UTF8PROC_CATEGORY_LU;
  }
  return upper;
}

// ---- the instructions

const std::set<std::string, std::less<>>& known_ids() {
  static const std::set<std::string, std::less<>> ids = {
      "punctuation:no_comma",
      "change_case:english_lowercase",
      "change_case:english_capital",
      "change_case:capital_word_frequency",
      "length_constraints:number_words",
      "length_constraints:number_paragraphs",
      "length_constraints:number_sentences",
      "length_constraints:nth_paragraph_first_word",
      "detectable_format:number_bullet_lists",
      "detectable_format:title",
      "detectable_format:json_format",
      "detectable_format:number_highlighted_sections",
      "detectable_format:constrained_response",
      "detectable_format:multiple_sections",
      "keywords:existence",
      "keywords:forbidden_words",
      "keywords:frequency",
      "keywords:letter_frequency",
      "startend:end_checker",
      "startend:quotation",
      "detectable_content:postscript",
      "detectable_content:number_placeholders",
      "language:response_language",
      "combination:two_responses",
      "combination:repeat_prompt",
  };
  return ids;
}

bool check(const std::string& id, const Args& a, std::string_view rv) {
  const std::string r(rv);
  if (id == "punctuation:no_comma") return r.find(',') == std::string::npos;
  if (id == "change_case:english_lowercase") return r == lower_ascii(r);
  if (id == "change_case:english_capital") {
    std::string u(r);
    for (auto& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return r == u;
  }
  if (id == "change_case:capital_word_frequency")
    return relation_holds(a.string("capital_relation"), static_cast<int64_t>(ifeval_count_capital_words(r)),
                          a.integer("capital_frequency"));
  if (id == "length_constraints:number_words")
    return relation_holds(a.string("relation"), static_cast<int64_t>(count_words(r)), a.integer("num_words"));
  if (id == "length_constraints:number_sentences")
    return relation_holds(a.string("relation"), static_cast<int64_t>(ifeval_count_sentences(r)),
                          a.integer("num_sentences"));
  if (id == "length_constraints:number_paragraphs") {
    // Split on "***" (markdown divider); an empty part other than the first
    // or last fails the instruction.
    std::vector<std::string_view> parts;
    size_t pos = 0;
    for (auto [b, e] : Regex("\\s?\\*\\*\\*\\s?").find_all(r)) {
      parts.push_back(rv.substr(pos, b - pos));
      pos = e;
    }
    parts.push_back(rv.substr(std::min(pos, r.size())));
    int64_t n = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (blank(parts[i])) {
        if (i == 0 || i + 1 == parts.size()) continue;
        return false;
      }
      ++n;
    }
    return n == a.integer("num_paragraphs");
  }
  if (id == "length_constraints:nth_paragraph_first_word") {
    int64_t want = a.integer("num_paragraphs"), nth = a.integer("nth_paragraph");
    if (nth < 1 || nth > want) throw FormatError("ifeval " + id, fmt::format("nth_paragraph {} outside 1..{}", nth, want));
    auto paras = split_on(rv, "\n\n");
    int64_t n = static_cast<int64_t>(paras.size());
    for (auto p : paras) n -= blank(p);
    if (nth > n) return false;
    std::string_view para = strip(paras[static_cast<size_t>(nth - 1)]);
    if (para.empty()) return false;
    std::string_view word = split_ws(para)[0];
    while (!word.empty() && word.front() == '\'') word.remove_prefix(1);
    while (!word.empty() && word.front() == '"') word.remove_prefix(1);
    std::string first;
    for (const auto& cp : decode(word)) {
      if (cp.c < 0x80 && std::string_view(".,?!'\"").find(static_cast<char>(cp.c)) != std::string_view::npos) break;
      append_cp(first, utf8proc_tolower(cp.c));
    }
    return n == want && first == lower(a.string("first_word"));
  }
  if (id == "detectable_format:number_bullet_lists")
    return static_cast<int64_t>(Regex("(?m)^\\s*[\\*\\-]\\s").count(r)) == a.integer("num_bullets");
  if (id == "detectable_format:title") return Regex("<<[^\\n]+>>").found(r);
  if (id == "detectable_format:json_format") {
    std::string t(strip(r));
    if (t.empty()) return false;
    if (t.rfind("```json", 0) == 0 || t.rfind("```Json", 0) == 0 || t.rfind("```JSON", 0) == 0) t = t.substr(7);
    else if (t.rfind("```", 0) == 0) t = t.substr(3);
    if (t.size() >= 3 && t.compare(t.size() - 3, 3, "```") == 0) t.resize(t.size() - 3);
    return !nlohmann::json::parse(t, nullptr, false).is_discarded();
  }
  if (id == "detectable_format:number_highlighted_sections") {
    int64_t n = 0;
    for (auto [b, e] : Regex("\\*[^\\n\\*]*\\*").find_all(r))
      n += r.substr(b, e - b).find_first_not_of("* ") != std::string::npos;
    return n >= a.integer("num_highlights");
  }
  if (id == "detectable_format:constrained_response") {
    std::string_view t = strip(r);
    for (std::string_view option : {"My answer is yes.", "My answer is no.", "My answer is maybe."})
      if (t.find(option) != std::string_view::npos) return true;
    return false;
  }
  if (id == "detectable_format:multiple_sections") {
    // re.split(r"\s?" + splitter + r"\s?\d+\s?") yields one more part than
    // there are section headers.
    Regex header("\\s?" + escape_regex(a.string("section_spliter")) + "\\s?\\d+\\s?");
    return static_cast<int64_t>(header.count(r)) >= a.integer("num_sections");
  }
  if (id == "keywords:existence") {
    std::string lr = lower_ascii(r);
    for (const auto& k : a.strings("keywords"))
      if (lr.find(lower_ascii(k)) == std::string::npos) return false;
    return true;
  }
  if (id == "keywords:forbidden_words") {
    for (const auto& k : a.strings("forbidden_words"))
      if (count_word(r, k) > 0) return false;
    return true;
  }
  if (id == "keywords:frequency")
    return relation_holds(a.string("relation"), static_cast<int64_t>(count_word(r, a.string("keyword"))),
                          a.integer("frequency"));
  if (id == "keywords:letter_frequency") {
    auto letter = decode(lower(strip(a.string("letter"))));
    if (letter.size() != 1) throw FormatError("ifeval " + id, "'letter' must be one character");
    int64_t n = 0;
    for (const auto& cp : decode(r)) n += utf8proc_tolower(cp.c) == letter[0].c;
    return relation_holds(a.string("let_relation"), n, a.integer("let_frequency"));
  }
  if (id == "startend:end_checker") {
    std::string end = lower_ascii(a.string("end_phrase"));
    std::string t = lower_ascii(r);
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
    return t.size() >= end.size() && t.compare(t.size() - end.size(), end.size(), end) == 0;
  }
  if (id == "startend:quotation") {
    std::string_view t = strip(r);
    return t.size() >= 2 && t.front() == '"' && t.back() == '"';
  }
  if (id == "detectable_content:postscript")
    return Regex("(?im)\\s*" + escape_regex(a.string("postscript_marker")) + ".*$").found(r);
  if (id == "detectable_content:number_placeholders")
    return static_cast<int64_t>(Regex("\\[[^\\n]*?\\]").count(r)) >= a.integer("num_placeholders");
  if (id == "language:response_language") {
    std::string want = a.string("language"), got = detect_language(r);
    return got.empty() || got == want;  // langdetect finding no features counts as followed
  }
  if (id == "combination:two_responses") {
    auto parts = split_on(rv, "******");
    std::vector<std::string_view> answers;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (!blank(parts[i])) answers.push_back(parts[i]);
      else if (i != 0 && i + 1 != parts.size()) return false;
    }
    return answers.size() == 2 && strip(answers[0]) != strip(answers[1]);
  }
  if (id == "combination:repeat_prompt") {
    std::string t = lower(strip(r)), p = lower(strip(a.string("prompt_to_repeat")));
    return t.compare(0, p.size(), p) == 0;
  }
  throw UnsupportedError("ifeval", "instruction '" + id + "' is unknown");
}

}  // namespace

std::string detect_language(std::string_view text) {
  auto cps = decode(text);
  std::map<Script, size_t> share;
  for (const auto& cp : cps) {
    Script s = script_of(cp.c);
    if (s != Script::None) ++share[s];
  }
  if (share.empty()) return "";
  Script top = std::max_element(share.begin(), share.end(), [](const auto& x, const auto& y) {
                 return x.second < y.second;
               })->first;
  auto count_of = [&](std::initializer_list<int32_t> set) {
    size_t n = 0;
    for (const auto& cp : cps) n += std::find(set.begin(), set.end(), cp.c) != set.end();
    return double(n);
  };
  switch (top) {
    case Script::Hangul: return "ko";
    case Script::Kana: return "ja";
    case Script::Han: return share[Script::Kana] * 10 >= share[Script::Han] ? "ja" : "zh-cn";
    case Script::Thai: return "th";
    case Script::Bengali: return "bn";
    case Script::Tamil: return "ta";
    case Script::Telugu: return "te";
    case Script::Kannada: return "kn";
    case Script::Gujarati: return "gu";
    case Script::Gurmukhi: return "pa";
    case Script::Malayalam: return "ml";
    case Script::Hebrew: return "he";
    case Script::Greek: return "el";
    case Script::Devanagari: return best(stopword_votes(letter_words(cps), kDevanagari, std::size(kDevanagari)), "hi");
    case Script::Arabic: {
      // Letters Urdu alone uses (ٹ ڈ ڑ ں ے ہ ھ), those Persian and Urdu use
      // instead of Arabic's (ی ک پ چ ژ گ), and Arabic's own (ة ى ي ك).
      double ur = count_of({0x0679, 0x0688, 0x0691, 0x06BA, 0x06D2, 0x06C1, 0x06BE});
      double fa = count_of({0x06CC, 0x06A9, 0x067E, 0x0686, 0x0698, 0x06AF});
      double ar = count_of({0x0629, 0x0649, 0x064A, 0x0643});
      if (ur >= 0.02 * double(share[Script::Arabic]) && ur > 0) return "ur";
      return fa > ar ? "fa" : "ar";
    }
    case Script::Cyrillic: {
      auto votes = stopword_votes(letter_words(cps), kCyrillic, std::size(kCyrillic));
      votes["uk"] += 2 * count_of({0x0456, 0x0457, 0x0454, 0x0491, 0x0406, 0x0407, 0x0404, 0x0490});
      votes["ru"] += count_of({0x044B, 0x044D, 0x0451, 0x042B, 0x042D, 0x0401});
      votes["bg"] += count_of({0x044A});  // ъ: a frequent vowel in Bulgarian, rare in Russian
      return best(votes, "ru");
    }
    case Script::Latin: {
      auto votes = stopword_votes(letter_words(cps), kLatin, std::size(kLatin));
      // Vietnamese tone-marked and hooked letters.
      for (const auto& cp : cps)
        if ((cp.c >= 0x1EA0 && cp.c <= 0x1EF9) || cp.c == 0x01A1 || cp.c == 0x01B0 || cp.c == 0x0111 || cp.c == 0x0103 ||
            cp.c == 0x01A0 || cp.c == 0x01AF || cp.c == 0x0110 || cp.c == 0x0102)
          votes["vi"] += 0.5;
      return best(votes, "en");
    }
    default: return "und";
  }
}

size_t ifeval_count_sentences(std::string_view text) {
  auto toks = split_ws(text);
  size_t n = 0;
  bool open = false;
  for (size_t i = 0; i < toks.size(); ++i) {
    open = true;
    if (ends_sentence(toks[i], i + 1 < toks.size() ? toks[i + 1] : std::string_view())) {
      ++n;
      open = false;
    }
  }
  return n + (open ? 1 : 0);
}

size_t ifeval_count_capital_words(std::string_view text) {
  size_t n = 0;
  for (auto chunk : split_ws(text)) {
    // Split off punctuation and symbols other than . - / and apostrophes,
    // which NLTK keeps inside a word (contractions are handled below).
    std::vector<std::string_view> pieces;
    size_t start = std::string_view::npos;
    for (const auto& cp : decode(chunk)) {
      auto cat = utf8proc_category(cp.c);
      bool punct = cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_SO;
      bool keep = cp.c == '.' || cp.c == '-' || cp.c == '/' || cp.c == '\'' || cp.c == 0x2019;
      if (punct && !keep) {
        if (start != std::string_view::npos) pieces.push_back(chunk.substr(start, cp.begin - start));
        start = std::string_view::npos;
      } else if (start == std::string_view::npos) {
        start = cp.begin;
      }
    }
    if (start != std::string_view::npos) pieces.push_back(chunk.substr(start));
    for (auto p : pieces)
      for (auto w : split_contraction(p)) n += is_upper_word(w);
  }
  return n;
}

bool ifeval_check(const std::string& id, const nlohmann::ordered_json& kwargs, std::string_view response) {
  if (!known_ids().count(id)) throw UnsupportedError("ifeval", "instruction '" + id + "' is unknown");
  if (blank(response)) return false;
  return check(id, Args(id, kwargs), response);
}

bool ifeval_check_loose(const std::string& id, const nlohmann::ordered_json& kwargs, std::string_view response) {
  auto lines = split_on(response, "\n");
  auto join = [&](size_t from, size_t to) {  // lines [from, to), stripped
    std::string out;
    for (size_t i = from; i < to; ++i) {
      if (i > from) out += '\n';
      out += lines[i];
    }
    return std::string(strip(out));
  };
  auto no_stars = [](std::string s) {
    s.erase(std::remove(s.begin(), s.end(), '*'), s.end());
    return s;
  };
  size_t n = lines.size();
  std::string whole(response), first = join(1, n), last = join(0, n - 1), both = n >= 2 ? join(1, n - 1) : "";
  for (const std::string& v : {whole, no_stars(whole), first, last, both, no_stars(first), no_stars(last), no_stars(both)})
    if (ifeval_check(id, kwargs, v)) return true;
  return false;
}

}  // namespace kaival::eval
