// Jinja2 subset: lexer -> AST -> tree-walking renderer. See jinja.h for scope.
#include "core/jinja.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <utf8proc.h>

namespace kaival::jinja {

using J = nlohmann::ordered_json;

// ---------------------------------------------------------------- text helpers
namespace {

// UTF-8 code point boundaries; an invalid byte counts as one character.
std::vector<std::string_view> chars_of(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t cp;
    auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                              static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
    size_t len = n > 0 ? static_cast<size_t>(n) : 1;
    out.push_back(s.substr(i, len));
    i += len;
  }
  return out;
}

template <typename F>
std::string map_codepoints(std::string_view s, F f) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  bool first = true;
  while (i < s.size()) {
    utf8proc_int32_t cp;
    auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                              static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
    if (n <= 0) {
      out.push_back(s[i]);
      ++i;
      first = false;
      continue;
    }
    utf8proc_uint8_t buf[4];
    auto m = utf8proc_encode_char(f(cp, first), buf);
    out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(m));
    i += static_cast<size_t>(n);
    first = false;
  }
  return out;
}

std::string to_upper(std::string_view s) {
  return map_codepoints(s, [](utf8proc_int32_t c, bool) { return utf8proc_toupper(c); });
}
std::string to_lower(std::string_view s) {
  return map_codepoints(s, [](utf8proc_int32_t c, bool) { return utf8proc_tolower(c); });
}
std::string capitalize(std::string_view s) {
  return map_codepoints(s, [](utf8proc_int32_t c, bool first) {
    return first ? utf8proc_toupper(c) : utf8proc_tolower(c);
  });
}
std::string title_case(std::string_view s) {
  bool prev_alnum = false;
  return map_codepoints(s, [&](utf8proc_int32_t c, bool) {
    auto cat = utf8proc_category(c);
    bool alnum = (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
                 (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
    utf8proc_int32_t r = alnum ? (prev_alnum ? utf8proc_tolower(c) : utf8proc_toupper(c)) : c;
    prev_alnum = alnum;
    return r;
  });
}

constexpr std::string_view kPyWhitespace = " \t\n\r\v\f";

std::string_view strip_chars(std::string_view s, std::string_view chars, bool left, bool right) {
  if (left) {
    size_t a = s.find_first_not_of(chars);
    s = a == std::string_view::npos ? std::string_view() : s.substr(a);
  }
  if (right) {
    size_t b = s.find_last_not_of(chars);
    s = b == std::string_view::npos ? std::string_view() : s.substr(0, b + 1);
  }
  return s;
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to, long count,
                        size_t limit, const std::string& where) {
  std::string out;
  if (from.empty()) {
    // Python inserts `to` between characters (and at both ends).
    auto cs = chars_of(s);
    long done = 0;
    for (size_t i = 0; i <= cs.size(); ++i) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      if (i < cs.size()) out += cs[i];
      if (out.size() > limit) fail(where, "string longer than {} bytes", limit);
    }
    return out;
  }
  size_t i = 0;
  long done = 0;
  while (true) {
    size_t j = (count < 0 || done < count) ? s.find(from, i) : std::string_view::npos;
    if (j == std::string_view::npos) {
      out.append(s.substr(i));
      break;
    }
    out.append(s.substr(i, j - i));
    out.append(to);
    i = j + from.size();
    ++done;
    if (out.size() > limit) fail(where, "string longer than {} bytes", limit);
  }
  if (out.size() > limit) fail(where, "string longer than {} bytes", limit);
  return out;
}

std::string py_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  return J(d).dump();
}

void py_json_string(std::string& out, const std::string& s) {
  out += J(s).dump(-1, ' ', false, J::error_handler_t::replace);
}

void py_json(std::string& out, const J& v, int indent, int level) {
  switch (v.type()) {
    case J::value_t::null: out += "null"; return;
    case J::value_t::boolean: out += v.get<bool>() ? "true" : "false"; return;
    case J::value_t::number_float: {
      double d = v.get<double>();
      if (std::isnan(d)) out += "NaN";
      else if (std::isinf(d)) out += d > 0 ? "Infinity" : "-Infinity";
      else out += J(d).dump();
      return;
    }
    case J::value_t::number_integer:
    case J::value_t::number_unsigned: out += v.dump(); return;
    case J::value_t::string: py_json_string(out, v.get_ref<const std::string&>()); return;
    case J::value_t::array:
    case J::value_t::object: {
      bool obj = v.is_object();
      if (v.empty()) {
        out += obj ? "{}" : "[]";
        return;
      }
      out += obj ? '{' : '[';
      bool first = true;
      auto newline = [&](int lvl) {
        out += '\n';
        out.append(static_cast<size_t>(indent) * static_cast<size_t>(lvl), ' ');
      };
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out += indent >= 0 ? "," : ", ";
        first = false;
        if (indent >= 0) newline(level + 1);
        if (obj) {
          py_json_string(out, it.key());
          out += ": ";
        }
        py_json(out, it.value(), indent, level + 1);
      }
      if (indent >= 0) newline(level);
      out += obj ? '}' : ']';
      return;
    }
    default: out += "null"; return;
  }
}

std::string py_str_repr(const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos;
  bool has_double = s.find('"') != std::string::npos;
  char q = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, q);
  for (char c : s) {
    if (c == q || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else out += c;
  }
  out += q;
  return out;
}

void py_repr(std::string& out, const J& v) {
  switch (v.type()) {
    case J::value_t::null: out += "None"; return;
    case J::value_t::boolean: out += v.get<bool>() ? "True" : "False"; return;
    case J::value_t::number_float: out += py_float_repr(v.get<double>()); return;
    case J::value_t::number_integer:
    case J::value_t::number_unsigned: out += v.dump(); return;
    case J::value_t::string: out += py_str_repr(v.get<std::string>()); return;
    case J::value_t::array: {
      out += '[';
      bool first = true;
      for (const auto& x : v) {
        if (!first) out += ", ";
        first = false;
        py_repr(out, x);
      }
      out += ']';
      return;
    }
    case J::value_t::object: {
      out += '{';
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out += ", ";
        first = false;
        out += py_str_repr(it.key());
        out += ": ";
        py_repr(out, it.value());
      }
      out += '}';
      return;
    }
    default: out += "None"; return;
  }
}

}  // namespace

std::string to_python_json(const J& v, int indent) {
  std::string out;
  py_json(out, v, indent, 0);
  return out;
}

// ---------------------------------------------------------------- lexer
namespace {

enum class Tok { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok type;
  std::string text;
  size_t pos;
};

class Lexer {
 public:
  Lexer(std::string_view src, const std::string& name, const Options& opt)
      : src_(src), name_(name), opt_(opt) {}

  std::vector<Token> run() {
    size_t i = 0;
    bool strip_ws = false;  // previous tag ended with '-'
    bool trim_nl = false;   // previous block tag ended (trim_blocks)
    while (i <= src_.size()) {
      size_t j = find_tag(i);
      size_t text_begin = i;
      size_t text_end = j == std::string_view::npos ? src_.size() : j;
      if (strip_ws) {
        while (text_begin < text_end && is_ws(src_[text_begin])) ++text_begin;
      } else if (trim_nl) {
        if (text_begin < text_end && src_[text_begin] == '\n') ++text_begin;
        else if (text_begin + 1 < text_end && src_[text_begin] == '\r' && src_[text_begin + 1] == '\n') text_begin += 2;
      }
      strip_ws = trim_nl = false;
      if (j == std::string_view::npos) {
        emit_text(text_begin, text_end);
        break;
      }
      char kind = src_[j + 1];
      char mod = j + 2 < src_.size() ? src_[j + 2] : '\0';
      if (mod == '-') {
        while (text_end > text_begin && is_ws(src_[text_end - 1])) --text_end;
      } else if (opt_.lstrip_blocks && kind != '{' && mod != '+') {
        size_t k = text_end;
        while (k > text_begin && (src_[k - 1] == ' ' || src_[k - 1] == '\t')) --k;
        if (k == 0 || src_[k - 1] == '\n') text_end = k;
      }
      emit_text(text_begin, text_end);
      size_t p = j + 2 + ((mod == '-' || mod == '+') ? 1 : 0);
      if (kind == '#') {
        size_t e = src_.find("#}", p);
        if (e == std::string_view::npos) error(j, "unclosed comment");
        strip_ws = e > p && src_[e - 1] == '-';
        trim_nl = opt_.trim_blocks;
        i = e + 2;
        continue;
      }
      bool block = kind == '%';
      toks_.push_back({block ? Tok::BlockBegin : Tok::VarBegin, "", j});
      size_t first_tok = toks_.size();
      p = lex_inside(p, block ? '%' : '}', strip_ws);
      toks_.push_back({block ? Tok::BlockEnd : Tok::VarEnd, "", p - 2});
      trim_nl = block && opt_.trim_blocks && !strip_ws;
      i = p;
      // {% raw %} ... {% endraw %}: everything in between is text.
      if (block && toks_.size() == first_tok + 2 && toks_[first_tok].type == Tok::Name &&
          toks_[first_tok].text == "raw") {
        toks_.resize(first_tok - 1);
        i = lex_raw(i, strip_ws, trim_nl);
      }
    }
    toks_.push_back({Tok::Eof, "", src_.size()});
    return std::move(toks_);
  }

 private:
  static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

  [[noreturn]] void error(size_t pos, const std::string& what) const {
    size_t line = 1, col = 1;
    for (size_t k = 0; k < pos && k < src_.size(); ++k) {
      if (src_[k] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw FormatError(fmt::format("{}:{}:{}", name_, line, col), what);
  }

  size_t find_tag(size_t from) const {
    while (from < src_.size()) {
      size_t j = src_.find('{', from);
      if (j == std::string_view::npos || j + 1 >= src_.size()) return std::string_view::npos;
      char c = src_[j + 1];
      if (c == '{' || c == '%' || c == '#') return j;
      from = j + 1;
    }
    return std::string_view::npos;
  }

  void emit_text(size_t a, size_t b) {
    if (b > a) toks_.push_back({Tok::Text, std::string(src_.substr(a, b - a)), a});
  }

  size_t lex_raw(size_t i, bool& strip_ws, bool& trim_nl) {
    size_t from = i;
    while (true) {
      size_t j = src_.find("{%", from);
      if (j == std::string_view::npos) error(i, "unclosed raw block");
      size_t p = j + 2;
      bool minus_open = p < src_.size() && (src_[p] == '-' || src_[p] == '+');
      if (minus_open) ++p;
      while (p < src_.size() && is_ws(src_[p])) ++p;
      if (src_.substr(p, 6) == "endraw") {
        size_t q = p + 6;
        while (q < src_.size() && is_ws(src_[q])) ++q;
        bool minus_close = q < src_.size() && src_[q] == '-';
        if (minus_close) ++q;
        if (src_.substr(q, 2) == "%}") {
          size_t text_begin = i;
          if (trim_nl && text_begin < j && src_[text_begin] == '\n') ++text_begin;
          if (strip_ws) while (text_begin < j && is_ws(src_[text_begin])) ++text_begin;
          size_t text_end = j;
          if (minus_open && src_[j + 2] == '-') while (text_end > text_begin && is_ws(src_[text_end - 1])) --text_end;
          emit_text(text_begin, text_end);
          strip_ws = minus_close;
          trim_nl = opt_.trim_blocks && !minus_close;
          return q + 2;
        }
      }
      from = j + 2;
    }
  }

  // Lexes expression tokens up to the closing "}}" / "%}"; returns the index after it.
  size_t lex_inside(size_t p, char close, bool& strip_after) {
    while (true) {
      while (p < src_.size() && is_ws(src_[p])) ++p;
      if (p >= src_.size()) error(p, close == '%' ? "unclosed '{%' tag" : "unclosed '{{' tag");
      char c = src_[p];
      if ((c == '-' || c == '+') && p + 2 < src_.size() + 0 && src_[p + 1] == close && src_[p + 2] == '}') {
        strip_after = c == '-';
        return p + 3;
      }
      if (c == close && p + 1 < src_.size() && src_[p + 1] == '}') {
        strip_after = false;
        return p + 2;
      }
      // Names: ASCII letters, digits, '_' and (like Python 3) non-ASCII letters such as Hangul.
      auto name_char = [](unsigned char u) { return std::isalnum(u) || u == '_' || u >= 0x80; };
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_' || static_cast<unsigned char>(c) >= 0x80) {
        size_t e = p;
        while (e < src_.size() && name_char(static_cast<unsigned char>(src_[e]))) ++e;
        toks_.push_back({Tok::Name, std::string(src_.substr(p, e - p)), p});
        p = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t e = p;
        bool is_float = false;
        while (e < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        if (e + 1 < src_.size() && src_[e] == '.' && std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
          is_float = true;
          ++e;
          while (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) ++e;
        }
        if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
          size_t f = e + 1;
          if (f < src_.size() && (src_[f] == '+' || src_[f] == '-')) ++f;
          if (f < src_.size() && std::isdigit(static_cast<unsigned char>(src_[f]))) {
            is_float = true;
            e = f;
            while (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) ++e;
          }
        }
        std::string num;
        for (size_t k = p; k < e; ++k)
          if (src_[k] != '_') num += src_[k];
        toks_.push_back({is_float ? Tok::Float : Tok::Int, num, p});
        p = e;
      } else if (c == '\'' || c == '"') {
        std::string s;
        size_t e = p + 1;
        while (true) {
          if (e >= src_.size()) error(p, "unterminated string literal");
          char d = src_[e];
          if (d == c) break;
          if (d == '\\' && e + 1 < src_.size()) {
            char x = src_[e + 1];
            switch (x) {
              case 'n': s += '\n'; break;
              case 't': s += '\t'; break;
              case 'r': s += '\r'; break;
              case '\\': s += '\\'; break;
              case '\'': s += '\''; break;
              case '"': s += '"'; break;
              case '0': s += '\0'; break;
              case '\n': break;
              default: s += '\\'; s += x; break;
            }
            e += 2;
            continue;
          }
          s += d;
          ++e;
        }
        toks_.push_back({Tok::String, std::move(s), p});
        p = e + 1;
      } else {
        static const char* two[] = {"**", "//", "==", "!=", "<=", ">="};
        std::string op;
        for (const char* t : two)
          if (src_.substr(p, 2) == t) op = t;
        if (op.empty()) {
          if (std::string_view("+-*/%~()[]{}.,:|=<>").find(c) == std::string_view::npos)
            error(p, fmt::format("unexpected character '{}'", c));
          op = std::string(1, c);
        }
        toks_.push_back({Tok::Op, op, p});
        p += op.size();
      }
    }
  }

  std::string_view src_;
  const std::string& name_;
  const Options& opt_;
  std::vector<Token> toks_;
};

// ---------------------------------------------------------------- AST
struct Expr;
struct Stmt;
using ExprP = std::unique_ptr<Expr>;
using StmtP = std::unique_ptr<Stmt>;
using Body = std::vector<StmtP>;

struct Args {
  std::vector<ExprP> pos;
  std::vector<std::pair<std::string, ExprP>> kw;
};

struct Expr {
  enum class K { Lit, Name, Attr, Item, Slice, Call, Filter, Test, Neg, Not, Bin, And, Or, Cond, List, Dict };
  K k;
  size_t pos;
  J lit;
  std::string name;  // Name, Attr, Call(method), Filter, Test, Bin op
  ExprP a, b, c;     // operands (Item: a[b]; Slice: a[b:c:d]; Cond: b if a else c)
  ExprP d;
  Args args;
  bool negate = false;  // Test: is not
  std::vector<ExprP> items;
  std::vector<std::pair<ExprP, ExprP>> pairs;
};

struct MacroDef;

struct Stmt {
  enum class K { Text, Out, If, For, Set, SetBlock, Macro, Break, Continue, Body };
  K k;
  size_t pos;
  std::string text;
  ExprP expr;
  std::vector<std::pair<ExprP, Body>> branches;  // If
  Body body, else_body;
  std::vector<std::string> targets;  // For / Set names
  std::string attr;                  // Set ns.attr
  ExprP filter;                      // For ... if cond
  std::shared_ptr<MacroDef> macro;
};

struct MacroDef {
  std::string name;
  std::vector<std::pair<std::string, ExprP>> params;
  Body body;
};

}  // namespace

struct Template::Impl {
  std::string name;
  std::string source;
  Options options;
  Body body;
};

namespace {

std::pair<size_t, size_t> line_col(std::string_view src, size_t pos) {
  size_t line = 1, col = 1;
  for (size_t k = 0; k < pos && k < src.size(); ++k) {
    if (src[k] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return {line, col};
}

std::string where_of(const Template::Impl& t, size_t pos) {
  auto [l, c] = line_col(t.source, pos);
  return fmt::format("{}:{}:{}", t.name, l, c);
}

const std::vector<std::string_view> kFilters = {
    "trim", "upper", "lower", "length", "count", "default", "d", "join", "replace", "tojson", "first",
    "last", "list", "string", "int", "float", "round", "capitalize", "title", "safe", "escape", "e",
    "indent", "abs", "reverse", "sort", "unique", "sum", "min", "max", "map", "select", "reject",
    "selectattr", "rejectattr", "items", "dictsort", "wordcount", "striptags", "center", "batch"};
const std::vector<std::string_view> kTests = {
    "defined", "undefined", "none", "string", "number", "integer", "float", "boolean", "true", "false",
    "mapping", "sequence", "iterable", "callable", "odd", "even", "divisibleby", "eq", "equalto", "==",
    "ne", "!=", "lt", "<", "gt", ">", "le", "<=", "ge", ">=", "in", "lower", "upper", "sameas"};

constexpr int kMaxParseDepth = 200;

class Parser {
 public:
  Parser(std::vector<Token> toks, const Template::Impl& t) : toks_(std::move(toks)), t_(t) {}

  Body parse_template() {
    std::string stop;
    Body b = parse_body({}, stop);
    return b;
  }

 private:
  const Token& cur() const { return toks_[i_]; }
  const Token& peek(size_t k = 1) const { return toks_[std::min(i_ + k, toks_.size() - 1)]; }
  bool is_op(std::string_view op) const { return cur().type == Tok::Op && cur().text == op; }
  bool is_name(std::string_view n) const { return cur().type == Tok::Name && cur().text == n; }

  [[noreturn]] void error(const std::string& what, size_t pos) const { throw FormatError(where_of(t_, pos), what); }
  [[noreturn]] void unsupported(const std::string& what, size_t pos) const {
    throw UnsupportedError(where_of(t_, pos), what + " is not supported by kaival's Jinja subset");
  }

  void expect_op(std::string_view op) {
    if (!is_op(op)) error(fmt::format("expected '{}', found '{}'", op, describe(cur())), cur().pos);
    ++i_;
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) error(fmt::format("expected a name, found '{}'", describe(cur())), cur().pos);
    return toks_[i_++].text;
  }
  void expect(Tok t, const char* what) {
    if (cur().type != t) error(fmt::format("expected {}, found '{}'", what, describe(cur())), cur().pos);
    ++i_;
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::Text: return "text";
      case Tok::VarBegin: return "{{";
      case Tok::VarEnd: return "}}";
      case Tok::BlockBegin: return "{%";
      case Tok::BlockEnd: return "%}";
      case Tok::Eof: return "end of template";
      default: return t.text;
    }
  }

  struct DepthGuard {
    Parser& p;
    DepthGuard(Parser& pp, size_t pos) : p(pp) {
      if (++p.depth_ > kMaxParseDepth) p.error("template nested too deeply", pos);
    }
    ~DepthGuard() { --p.depth_; }
  };

  // Parses statements until a block tag whose keyword is in `ends` (left unconsumed after
  // the keyword: `stop` receives it) or the end of the template.
  Body parse_body(const std::vector<std::string_view>& ends, std::string& stop) {
    DepthGuard g(*this, cur().pos);
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::Eof) {
        if (!ends.empty()) error(fmt::format("missing '{{% {} %}}'", ends.back()), t.pos);
        return body;
      }
      if (t.type == Tok::Text) {
        auto s = std::make_unique<Stmt>();
        s->k = Stmt::K::Text;
        s->pos = t.pos;
        s->text = t.text;
        body.push_back(std::move(s));
        ++i_;
      } else if (t.type == Tok::VarBegin) {
        ++i_;
        auto s = std::make_unique<Stmt>();
        s->k = Stmt::K::Out;
        s->pos = t.pos;
        s->expr = parse_expr();
        expect(Tok::VarEnd, "'}}'");
        body.push_back(std::move(s));
      } else if (t.type == Tok::BlockBegin) {
        size_t bpos = t.pos;
        ++i_;
        if (cur().type != Tok::Name) error("expected a statement keyword", cur().pos);
        const std::string kw = cur().text;
        if (std::find(ends.begin(), ends.end(), kw) != ends.end()) {
          ++i_;
          stop = kw;
          return body;
        }
        body.push_back(parse_statement(kw, bpos));
      } else {
        error(fmt::format("unexpected '{}'", describe(t)), t.pos);
      }
    }
  }

  StmtP parse_statement(const std::string& kw, size_t bpos) {
    auto s = std::make_unique<Stmt>();
    s->pos = bpos;
    size_t kpos = cur().pos;
    ++i_;
    if (kw == "if") {
      s->k = Stmt::K::If;
      ExprP cond = parse_expr();
      expect(Tok::BlockEnd, "'%}'");
      while (true) {
        std::string stop;
        Body b = parse_body({"elif", "else", "endif"}, stop);
        s->branches.emplace_back(std::move(cond), std::move(b));
        if (stop == "elif") {
          cond = parse_expr();
          expect(Tok::BlockEnd, "'%}'");
          continue;
        }
        if (stop == "else") {
          expect(Tok::BlockEnd, "'%}'");
          std::string stop2;
          s->else_body = parse_body({"endif"}, stop2);
        }
        expect(Tok::BlockEnd, "'%}'");
        break;
      }
    } else if (kw == "for") {
      s->k = Stmt::K::For;
      s->targets.push_back(expect_name());
      while (is_op(",")) {
        ++i_;
        s->targets.push_back(expect_name());
      }
      if (!is_name("in")) error("expected 'in' in for loop", cur().pos);
      ++i_;
      s->expr = parse_or_expr_no_cond();
      if (is_name("if")) {
        ++i_;
        s->filter = parse_or_expr_no_cond();
      }
      if (is_name("recursive")) unsupported("recursive for loop", cur().pos);
      expect(Tok::BlockEnd, "'%}'");
      std::string stop;
      s->body = parse_body({"else", "endfor"}, stop);
      if (stop == "else") {
        expect(Tok::BlockEnd, "'%}'");
        std::string stop2;
        s->else_body = parse_body({"endfor"}, stop2);
      }
      expect(Tok::BlockEnd, "'%}'");
    } else if (kw == "set") {
      std::string n = expect_name();
      if (is_op(".")) {
        ++i_;
        s->attr = expect_name();
      }
      s->targets.push_back(n);
      while (is_op(",") && s->attr.empty()) {
        ++i_;
        s->targets.push_back(expect_name());
      }
      if (is_op("=")) {
        ++i_;
        s->k = Stmt::K::Set;
        s->expr = parse_expr();
        if (is_op(",")) {  // {% set a = 1, 2 %} makes a tuple
          auto lst = std::make_unique<Expr>();
          lst->k = Expr::K::List;
          lst->pos = s->expr->pos;
          lst->items.push_back(std::move(s->expr));
          while (is_op(",")) {
            ++i_;
            lst->items.push_back(parse_expr());
          }
          s->expr = std::move(lst);
        }
        expect(Tok::BlockEnd, "'%}'");
      } else {
        if (s->targets.size() != 1 || !s->attr.empty()) error("block set takes one plain name", kpos);
        if (is_op("|")) unsupported("filtered block set", cur().pos);
        expect(Tok::BlockEnd, "'%}'");
        s->k = Stmt::K::SetBlock;
        std::string stop;
        s->body = parse_body({"endset"}, stop);
        expect(Tok::BlockEnd, "'%}'");
      }
    } else if (kw == "macro") {
      s->k = Stmt::K::Macro;
      s->macro = std::make_shared<MacroDef>();
      s->macro->name = expect_name();
      expect_op("(");
      while (!is_op(")")) {
        std::string p = expect_name();
        ExprP def;
        if (is_op("=")) {
          ++i_;
          def = parse_expr();
        }
        s->macro->params.emplace_back(p, std::move(def));
        if (!is_op(",")) break;
        ++i_;
      }
      expect_op(")");
      expect(Tok::BlockEnd, "'%}'");
      std::string stop;
      s->macro->body = parse_body({"endmacro"}, stop);
      if (cur().type == Tok::Name) ++i_;  // {% endmacro name %}
      expect(Tok::BlockEnd, "'%}'");
    } else if (kw == "break" || kw == "continue") {
      s->k = kw == "break" ? Stmt::K::Break : Stmt::K::Continue;
      expect(Tok::BlockEnd, "'%}'");
    } else if (kw == "generation") {
      // Hugging Face's assistant-mask marker: renders its body unchanged.
      s->k = Stmt::K::Body;
      expect(Tok::BlockEnd, "'%}'");
      std::string stop;
      s->body = parse_body({"endgeneration"}, stop);
      expect(Tok::BlockEnd, "'%}'");
    } else if (kw == "elif" || kw == "else" || kw == "endif" || kw == "endfor" || kw == "endmacro" ||
               kw == "endset" || kw == "endgeneration") {
      error(fmt::format("unexpected '{}'", kw), kpos);
    } else {
      unsupported(fmt::format("statement '{}'", kw), kpos);
    }
    return s;
  }

  ExprP make(Expr::K k, size_t pos) {
    auto e = std::make_unique<Expr>();
    e->k = k;
    e->pos = pos;
    return e;
  }

  ExprP parse_expr() {
    DepthGuard g(*this, cur().pos);
    ExprP e = parse_or();
    while (is_name("if")) {
      size_t pos = cur().pos;
      ++i_;
      auto c = make(Expr::K::Cond, pos);
      c->a = parse_or();
      c->b = std::move(e);
      if (is_name("else")) {
        ++i_;
        c->c = parse_expr();
      }
      e = std::move(c);
    }
    return e;
  }
  ExprP parse_or_expr_no_cond() {
    DepthGuard g(*this, cur().pos);
    return parse_or();
  }
  ExprP parse_or() {
    ExprP e = parse_and();
    while (is_name("or")) {
      auto n = make(Expr::K::Or, cur().pos);
      ++i_;
      n->a = std::move(e);
      n->b = parse_and();
      e = std::move(n);
    }
    return e;
  }
  ExprP parse_and() {
    ExprP e = parse_not();
    while (is_name("and")) {
      auto n = make(Expr::K::And, cur().pos);
      ++i_;
      n->a = std::move(e);
      n->b = parse_not();
      e = std::move(n);
    }
    return e;
  }
  ExprP parse_not() {
    if (is_name("not")) {
      DepthGuard g(*this, cur().pos);
      auto n = make(Expr::K::Not, cur().pos);
      ++i_;
      n->a = parse_not();
      return n;
    }
    return parse_compare();
  }
  ExprP parse_compare() {
    ExprP e = parse_math1();
    while (true) {
      std::string op;
      size_t pos = cur().pos;
      if (cur().type == Tok::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                    cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        op = cur().text;
        ++i_;
      } else if (is_name("in")) {
        op = "in";
        ++i_;
      } else if (is_name("not") && peek().type == Tok::Name && peek().text == "in") {
        op = "not in";
        i_ += 2;
      } else {
        return e;
      }
      auto n = make(Expr::K::Bin, pos);
      n->name = op;
      n->a = std::move(e);
      n->b = parse_math1();
      e = std::move(n);
    }
  }
  ExprP parse_math1() {
    ExprP e = parse_concat();
    while (is_op("+") || is_op("-")) {
      auto n = make(Expr::K::Bin, cur().pos);
      n->name = toks_[i_++].text;
      n->a = std::move(e);
      n->b = parse_concat();
      e = std::move(n);
    }
    return e;
  }
  ExprP parse_concat() {
    ExprP e = parse_math2();
    while (is_op("~")) {
      auto n = make(Expr::K::Bin, cur().pos);
      n->name = "~";
      ++i_;
      n->a = std::move(e);
      n->b = parse_math2();
      e = std::move(n);
    }
    return e;
  }
  ExprP parse_math2() {
    ExprP e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      auto n = make(Expr::K::Bin, cur().pos);
      n->name = toks_[i_++].text;
      n->a = std::move(e);
      n->b = parse_pow();
      e = std::move(n);
    }
    return e;
  }
  ExprP parse_pow() {
    ExprP e = parse_unary(true);
    while (is_op("**")) {
      auto n = make(Expr::K::Bin, cur().pos);
      n->name = "**";
      ++i_;
      n->a = std::move(e);
      n->b = parse_unary(true);
      e = std::move(n);
    }
    return e;
  }
  ExprP parse_unary(bool with_filter) {
    DepthGuard g(*this, cur().pos);
    ExprP e;
    if (is_op("-")) {
      e = make(Expr::K::Neg, cur().pos);
      ++i_;
      e->a = parse_unary(false);
    } else if (is_op("+")) {
      ++i_;
      e = parse_unary(false);
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filters(std::move(e));
    return e;
  }
  ExprP parse_primary() {
    const Token& t = cur();
    switch (t.type) {
      case Tok::Name: {
        ++i_;
        if (t.text == "true" || t.text == "True") return lit(J(true), t.pos);
        if (t.text == "false" || t.text == "False") return lit(J(false), t.pos);
        if (t.text == "none" || t.text == "None") return lit(J(nullptr), t.pos);
        auto e = make(Expr::K::Name, t.pos);
        e->name = t.text;
        return e;
      }
      case Tok::String: {
        std::string s = t.text;
        size_t pos = t.pos;
        ++i_;
        while (cur().type == Tok::String) s += toks_[i_++].text;  // adjacent literals concatenate
        return lit(J(s), pos);
      }
      case Tok::Int: {
        ++i_;
        errno = 0;
        long long v = std::strtoll(t.text.c_str(), nullptr, 10);
        if (errno == ERANGE) return lit(J(std::strtod(t.text.c_str(), nullptr)), t.pos);
        return lit(J(static_cast<int64_t>(v)), t.pos);
      }
      case Tok::Float: ++i_; return lit(J(std::strtod(t.text.c_str(), nullptr)), t.pos);
      case Tok::Op:
        if (t.text == "(") {
          ++i_;
          if (is_op(")")) {
            ++i_;
            auto l = make(Expr::K::List, t.pos);
            return l;
          }
          ExprP e = parse_expr();
          if (is_op(",")) {
            auto l = make(Expr::K::List, t.pos);
            l->items.push_back(std::move(e));
            while (is_op(",")) {
              ++i_;
              if (is_op(")")) break;
              l->items.push_back(parse_expr());
            }
            e = std::move(l);
          }
          expect_op(")");
          return e;
        }
        if (t.text == "[") {
          ++i_;
          auto l = make(Expr::K::List, t.pos);
          while (!is_op("]")) {
            l->items.push_back(parse_expr());
            if (!is_op(",")) break;
            ++i_;
          }
          expect_op("]");
          return l;
        }
        if (t.text == "{") {
          ++i_;
          auto d = make(Expr::K::Dict, t.pos);
          while (!is_op("}")) {
            ExprP k = parse_expr();
            expect_op(":");
            ExprP v = parse_expr();
            d->pairs.emplace_back(std::move(k), std::move(v));
            if (!is_op(",")) break;
            ++i_;
          }
          expect_op("}");
          return d;
        }
        break;
      default: break;
    }
    error(fmt::format("unexpected '{}' in expression", describe(t)), t.pos);
  }
  ExprP lit(J v, size_t pos) {
    auto e = make(Expr::K::Lit, pos);
    e->lit = std::move(v);
    return e;
  }
  ExprP parse_postfix(ExprP e) {
    while (true) {
      if (is_op(".")) {
        size_t pos = cur().pos;
        ++i_;
        if (cur().type == Tok::Int) {  // foo.0 means foo[0]
          auto n = make(Expr::K::Item, pos);
          n->a = std::move(e);
          n->b = lit(J(std::stoll(cur().text)), cur().pos);
          ++i_;
          e = std::move(n);
          continue;
        }
        auto n = make(Expr::K::Attr, pos);
        n->name = expect_name();
        n->a = std::move(e);
        e = std::move(n);
      } else if (is_op("[")) {
        size_t pos = cur().pos;
        ++i_;
        ExprP start, stop, step;
        bool slice = false;
        if (!is_op(":")) start = parse_expr();
        if (is_op(":")) {
          slice = true;
          ++i_;
          if (!is_op(":") && !is_op("]")) stop = parse_expr();
          if (is_op(":")) {
            ++i_;
            if (!is_op("]")) step = parse_expr();
          }
        }
        expect_op("]");
        auto n = make(slice ? Expr::K::Slice : Expr::K::Item, pos);
        n->a = std::move(e);
        n->b = std::move(start);
        n->c = std::move(stop);
        n->d = std::move(step);
        e = std::move(n);
      } else if (is_op("(")) {
        auto n = make(Expr::K::Call, cur().pos);
        ++i_;
        n->args = parse_args();
        n->a = std::move(e);
        e = std::move(n);
      } else {
        return e;
      }
    }
  }
  // After '(' ; consumes ')'.
  Args parse_args() {
    Args a;
    while (!is_op(")")) {
      if (is_op("*") || is_op("**")) unsupported("argument unpacking", cur().pos);
      if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == "=") {
        std::string k = cur().text;
        i_ += 2;
        a.kw.emplace_back(k, parse_expr());
      } else {
        a.pos.push_back(parse_expr());
      }
      if (!is_op(",")) break;
      ++i_;
    }
    expect_op(")");
    return a;
  }
  ExprP parse_filters(ExprP e) {
    while (true) {
      if (is_op("|")) {
        size_t pos = cur().pos;
        ++i_;
        auto n = make(Expr::K::Filter, pos);
        size_t npos = cur().pos;
        n->name = expect_name();
        if (std::find(kFilters.begin(), kFilters.end(), n->name) == kFilters.end())
          unsupported(fmt::format("filter '{}'", n->name), npos);
        if (is_op("(")) {
          ++i_;
          n->args = parse_args();
        }
        n->a = std::move(e);
        e = std::move(n);
      } else if (is_name("is")) {
        size_t pos = cur().pos;
        ++i_;
        auto n = make(Expr::K::Test, pos);
        if (is_name("not")) {
          n->negate = true;
          ++i_;
        }
        size_t npos = cur().pos;
        if (cur().type == Tok::Name || (cur().type == Tok::Op && (cur().text == "==" || cur().text == "!=" ||
                                                                  cur().text == "<" || cur().text == ">" ||
                                                                  cur().text == "<=" || cur().text == ">="))) {
          n->name = toks_[i_++].text;
        } else {
          error("expected a test name after 'is'", npos);
        }
        if (std::find(kTests.begin(), kTests.end(), n->name) == kTests.end())
          unsupported(fmt::format("test '{}'", n->name), npos);
        if (is_op("(")) {
          ++i_;
          n->args = parse_args();
        } else if (cur().type == Tok::String || cur().type == Tok::Int || cur().type == Tok::Float ||
                   is_op("[") || is_op("{") ||
                   (cur().type == Tok::Name && cur().text != "and" && cur().text != "or" &&
                    cur().text != "else" && cur().text != "if" && cur().text != "is" && cur().text != "in" &&
                    cur().text != "not")) {
          n->args.pos.push_back(parse_primary());  // `is divisibleby 3`, `is sameas none`
        }
        n->a = std::move(e);
        e = std::move(n);
      } else {
        return e;
      }
    }
  }

  std::vector<Token> toks_;
  size_t i_ = 0;
  int depth_ = 0;
  const Template::Impl& t_;
};

// ---------------------------------------------------------------- values
struct Value {
  enum class K { Undef, Data, Ns, Macro, Func };
  K k = K::Undef;
  J own;
  const J* ref = nullptr;  // borrowed: points into the render's input (immutable, outlives the render)
  std::shared_ptr<J> ns;
  const MacroDef* macro = nullptr;
  std::string func;
  std::string undef_name;  // for error messages

  static Value undef(std::string n = {}) {
    Value v;
    v.undef_name = std::move(n);
    return v;
  }
  static Value data(J j) {
    Value v;
    v.k = K::Data;
    v.own = std::move(j);
    return v;
  }
  static Value borrow(const J* j) {
    Value v;
    v.k = K::Data;
    v.ref = j;
    return v;
  }
  bool is_undef() const { return k == K::Undef; }
  bool is_data() const { return k == K::Data; }
  const J& j() const {
    static const J kNull;
    if (k != K::Data) return kNull;
    return ref ? *ref : own;
  }
  // Child of this value: stays borrowed if this one is borrowed.
  Value child(const J& c) const { return ref ? borrow(&c) : data(c); }
};

using Scope = std::unordered_map<std::string, Value>;

enum class Flow { Normal, Break, Continue };

class Renderer {
 public:
  Renderer(const Template::Impl& t, const J& input) : t_(t), input_(input) {
    scopes_.push_back(std::make_unique<Scope>());
  }

  std::string run() {
    std::string out;
    exec_body(t_.body, out);
    return out;
  }

 private:
  // ---- errors and bounds
  [[noreturn]] void error(size_t pos, const std::string& what) const { throw FormatError(where_of(t_, pos), what); }
  [[noreturn]] void unsupported(size_t pos, const std::string& what) const {
    throw UnsupportedError(where_of(t_, pos), what + " is not supported by kaival's Jinja subset");
  }
  void step(size_t pos) {
    if (++steps_ > t_.options.max_steps)
      error(pos, fmt::format("template exceeded {} evaluation steps", t_.options.max_steps));
  }
  void check_size(size_t n, size_t pos) const {
    if (n > t_.options.max_output_bytes)
      error(pos, fmt::format("output or string longer than {} bytes", t_.options.max_output_bytes));
  }
  void emit(std::string& out, std::string_view s, size_t pos) const {
    check_size(out.size() + s.size(), pos);
    out.append(s);
  }

  // ---- conversions
  static bool truthy(const Value& v) {
    if (v.k == Value::K::Undef) return false;
    if (v.k != Value::K::Data) return true;
    const J& j = v.j();
    switch (j.type()) {
      case J::value_t::null: return false;
      case J::value_t::boolean: return j.get<bool>();
      case J::value_t::number_integer: return j.get<int64_t>() != 0;
      case J::value_t::number_unsigned: return j.get<uint64_t>() != 0;
      case J::value_t::number_float: return j.get<double>() != 0.0;
      case J::value_t::string: return !j.get_ref<const std::string&>().empty();
      case J::value_t::array:
      case J::value_t::object: return !j.empty();
      default: return false;
    }
  }
  static std::string str(const Value& v) {
    if (v.k == Value::K::Undef) return "";
    if (v.k == Value::K::Ns) return "<Namespace>";
    if (v.k == Value::K::Macro) return "<Macro " + v.macro->name + ">";
    if (v.k == Value::K::Func) return "<function " + v.func + ">";
    const J& j = v.j();
    if (j.is_string()) return j.get<std::string>();
    std::string out;
    py_repr(out, j);
    return out;
  }
  J to_json(const Value& v, size_t pos) const {
    if (v.k == Value::K::Data) return v.j();
    if (v.k == Value::K::Undef) return J(nullptr);
    if (v.k == Value::K::Ns) return *v.ns;
    unsupported(pos, "storing a macro or function in data");
  }
  std::string as_string_arg(const Value& v, size_t pos, const char* what) const {
    if (!v.is_data() || !v.j().is_string()) error(pos, fmt::format("{} expects a string", what));
    return v.j().get<std::string>();
  }
  static bool is_int(const J& j) { return j.is_number_integer(); }
  static double num(const J& j) { return j.get<double>(); }
  int64_t as_int(const Value& v, size_t pos, const char* what) const {
    const J& j = v.j();
    if (j.is_number_integer()) return j.get<int64_t>();
    if (j.is_boolean()) return j.get<bool>() ? 1 : 0;
    error(pos, fmt::format("{} expects an integer", what));
  }

  // ---- variables
  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = (*it)->find(name);
      if (f != (*it)->end()) return f->second;
    }
    if (input_.is_object()) {
      auto f = input_.find(name);
      if (f != input_.end()) return Value::borrow(&*f);
    }
    if (name == "range" || name == "namespace" || name == "raise_exception" || name == "strftime_now" ||
        name == "dict") {
      Value v;
      v.k = Value::K::Func;
      v.func = name;
      return v;
    }
    return Value::undef(name);
  }
  Value* lookup_mut(const std::string& name) {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = (*it)->find(name);
      if (f != (*it)->end()) return &f->second;
    }
    return nullptr;
  }
  void assign(const std::string& name, Value v) { (*scopes_.back())[name] = std::move(v); }

  struct ScopeGuard {
    std::vector<std::unique_ptr<Scope>>& s;
    explicit ScopeGuard(std::vector<std::unique_ptr<Scope>>& ss) : s(ss) { s.push_back(std::make_unique<Scope>()); }
    ~ScopeGuard() { s.pop_back(); }
  };

  // ---- statements
  Flow exec_body(const Body& body, std::string& out) {
    for (const auto& s : body) {
      Flow f = exec(*s, out);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  Flow exec(const Stmt& s, std::string& out) {
    step(s.pos);
    switch (s.k) {
      case Stmt::K::Text: emit(out, s.text, s.pos); return Flow::Normal;
      case Stmt::K::Out: emit(out, str(eval(*s.expr)), s.pos); return Flow::Normal;
      case Stmt::K::If:
        for (const auto& [cond, body] : s.branches)
          if (truthy(eval(*cond))) return exec_body(body, out);
        return exec_body(s.else_body, out);
      case Stmt::K::For: return exec_for(s, out);
      case Stmt::K::Set: {
        Value v = eval(*s.expr);
        if (!s.attr.empty()) {
          Value* target = lookup_mut(s.targets[0]);
          if (!target || target->k != Value::K::Ns)
            error(s.pos, fmt::format("'{}' is not a namespace; only namespace attributes can be set", s.targets[0]));
          (*target->ns)[s.attr] = to_json(v, s.pos);
        } else if (s.targets.size() == 1) {
          assign(s.targets[0], std::move(v));
        } else {
          unpack(s.targets, v, s.pos);
        }
        return Flow::Normal;
      }
      case Stmt::K::SetBlock: {
        std::string captured;
        exec_body(s.body, captured);
        assign(s.targets[0], Value::data(J(std::move(captured))));
        return Flow::Normal;
      }
      case Stmt::K::Macro: {
        Value v;
        v.k = Value::K::Macro;
        v.macro = s.macro.get();
        assign(s.macro->name, std::move(v));
        return Flow::Normal;
      }
      case Stmt::K::Break:
        if (loop_depth_ == 0) error(s.pos, "'break' outside a loop");
        return Flow::Break;
      case Stmt::K::Continue:
        if (loop_depth_ == 0) error(s.pos, "'continue' outside a loop");
        return Flow::Continue;
      case Stmt::K::Body: return exec_body(s.body, out);
    }
    return Flow::Normal;
  }

  void unpack(const std::vector<std::string>& names, const Value& v, size_t pos) {
    const J& j = v.j();
    if (!j.is_array() || j.size() != names.size())
      error(pos, fmt::format("cannot unpack into {} names", names.size()));
    for (size_t i = 0; i < names.size(); ++i) assign(names[i], v.child(j[i]));
  }

  // Items of an iterable as values (children stay borrowed when possible).
  std::vector<Value> items_of(const Value& v, size_t pos) {
    std::vector<Value> items;
    if (v.is_undef()) return items;
    if (v.k == Value::K::Ns) error(pos, "a namespace is not iterable");
    if (!v.is_data()) error(pos, "value is not iterable");
    const J& j = v.j();
    if (j.is_array()) {
      items.reserve(j.size());
      for (const auto& x : j) items.push_back(v.child(x));
    } else if (j.is_object()) {
      for (auto it = j.begin(); it != j.end(); ++it) items.push_back(Value::data(J(it.key())));
    } else if (j.is_string()) {
      for (auto c : chars_of(j.get_ref<const std::string&>())) items.push_back(Value::data(J(std::string(c))));
    } else {
      error(pos, fmt::format("{} value is not iterable", j.type_name()));
    }
    return items;
  }

  Flow exec_for(const Stmt& s, std::string& out) {
    Value seq = eval(*s.expr);
    std::vector<Value> all = items_of(seq, s.expr->pos);
    ScopeGuard g(scopes_);
    std::vector<Value> items;
    if (s.filter) {
      for (auto& it : all) {
        bind_targets(s, it);
        if (truthy(eval(*s.filter))) items.push_back(std::move(it));
      }
    } else {
      items = std::move(all);
    }
    ++loop_depth_;
    struct Dec {
      int& d;
      ~Dec() { --d; }
    } dec{loop_depth_};
    const size_t n = items.size();
    for (size_t i = 0; i < n; ++i) {
      step(s.pos);
      scopes_.back()->clear();
      bind_targets(s, items[i]);
      J loop = J::object();
      loop["index"] = i + 1;
      loop["index0"] = i;
      loop["revindex"] = n - i;
      loop["revindex0"] = n - i - 1;
      loop["first"] = i == 0;
      loop["last"] = i + 1 == n;
      loop["length"] = n;
      loop["depth"] = 1;
      loop["depth0"] = 0;
      if (i > 0) loop["previtem"] = to_json(items[i - 1], s.pos);
      if (i + 1 < n) loop["nextitem"] = to_json(items[i + 1], s.pos);
      assign("loop", Value::data(std::move(loop)));
      Flow f = exec_body(s.body, out);
      if (f == Flow::Break) break;
    }
    if (n == 0) {
      scopes_.back()->clear();
      return exec_body(s.else_body, out);
    }
    return Flow::Normal;
  }
  void bind_targets(const Stmt& s, const Value& item) {
    if (s.targets.size() == 1) assign(s.targets[0], item);
    else unpack(s.targets, item, s.pos);
  }

  // ---- expressions
  Value eval(const Expr& e) {
    step(e.pos);
    switch (e.k) {
      case Expr::K::Lit: return Value::data(e.lit);
      case Expr::K::Name: return lookup(e.name);
      case Expr::K::Attr: return get_attr(eval(*e.a), e.name);
      case Expr::K::Item: return get_item(eval(*e.a), eval(*e.b), e.pos);
      case Expr::K::Slice: return slice(e);
      case Expr::K::Call: return call(e);
      case Expr::K::Filter: return filter(e);
      case Expr::K::Test: {
        bool r = test(e);
        return Value::data(J(e.negate ? !r : r));
      }
      case Expr::K::Neg: {
        Value v = eval(*e.a);
        const J& j = v.j();
        if (j.is_number_integer()) return Value::data(J(-j.get<int64_t>()));
        if (j.is_number()) return Value::data(J(-j.get<double>()));
        error(e.pos, "unary '-' expects a number");
      }
      case Expr::K::Not: return Value::data(J(!truthy(eval(*e.a))));
      case Expr::K::And: {
        Value l = eval(*e.a);
        if (!truthy(l)) return l;
        return eval(*e.b);
      }
      case Expr::K::Or: {
        Value l = eval(*e.a);
        if (truthy(l)) return l;
        return eval(*e.b);
      }
      case Expr::K::Cond:
        if (truthy(eval(*e.a))) return eval(*e.b);
        return e.c ? eval(*e.c) : Value::undef();
      case Expr::K::List: {
        J arr = J::array();
        for (const auto& x : e.items) arr.push_back(to_json(eval(*x), x->pos));
        return Value::data(std::move(arr));
      }
      case Expr::K::Dict: {
        J obj = J::object();
        for (const auto& [k, v] : e.pairs) {
          Value kv = eval(*k);
          if (!kv.j().is_string()) unsupported(k->pos, "non-string dictionary key");
          obj[kv.j().get<std::string>()] = to_json(eval(*v), v->pos);
        }
        return Value::data(std::move(obj));
      }
      case Expr::K::Bin: return binary(e);
    }
    return Value::undef();
  }

  Value get_attr(const Value& v, const std::string& name) {
    if (v.k == Value::K::Ns) {
      auto f = v.ns->find(name);
      if (f == v.ns->end()) return Value::undef(name);
      return Value::data(*f);
    }
    if (!v.is_data()) return Value::undef(name);
    const J& j = v.j();
    if (j.is_object()) {
      auto f = j.find(name);
      if (f != j.end()) return v.child(*f);
    }
    return Value::undef(name);
  }

  static std::optional<size_t> py_index(int64_t i, size_t n) {
    if (i < 0) i += static_cast<int64_t>(n);
    if (i < 0 || static_cast<uint64_t>(i) >= n) return std::nullopt;
    return static_cast<size_t>(i);
  }

  Value get_item(const Value& v, const Value& key, size_t pos) {
    if (v.k == Value::K::Ns) {
      if (!key.j().is_string()) return Value::undef();
      return get_attr(v, key.j().get<std::string>());
    }
    if (!v.is_data()) return Value::undef();
    const J& j = v.j();
    const J& k = key.j();
    if (j.is_object() && k.is_string()) {
      auto f = j.find(k.get<std::string>());
      if (f != j.end()) return v.child(*f);
      return Value::undef(k.get<std::string>());
    }
    if ((j.is_array() || j.is_string()) && (k.is_number_integer() || k.is_boolean())) {
      int64_t i = k.is_boolean() ? (k.get<bool>() ? 1 : 0) : k.get<int64_t>();
      if (j.is_array()) {
        auto idx = py_index(i, j.size());
        if (!idx) return Value::undef();
        return v.child(j[*idx]);
      }
      auto cs = chars_of(j.get_ref<const std::string&>());
      auto idx = py_index(i, cs.size());
      if (!idx) return Value::undef();
      return Value::data(J(std::string(cs[*idx])));
    }
    return Value::undef();
  }

  // Python slice indices for a sequence of n elements.
  std::vector<size_t> slice_indices(const Expr& e, size_t n) {
    auto opt = [&](const ExprP& x) -> std::optional<int64_t> {
      if (!x) return std::nullopt;
      Value v = eval(*x);
      if (v.is_undef() || v.j().is_null()) return std::nullopt;
      return as_int(v, x->pos, "slice");
    };
    auto start = opt(e.b), stop = opt(e.c), stepv = opt(e.d);
    int64_t st = stepv.value_or(1);
    if (st == 0) error(e.pos, "slice step cannot be zero");
    int64_t len = static_cast<int64_t>(n);
    auto norm = [&](std::optional<int64_t> x, int64_t def_pos, int64_t def_neg) {
      if (!x) return st > 0 ? def_pos : def_neg;
      int64_t v = *x;
      if (v < 0) v += len;
      if (st > 0) return std::clamp<int64_t>(v, 0, len);
      return std::clamp<int64_t>(v, -1, len - 1);
    };
    int64_t a = norm(start, 0, len - 1);
    int64_t b = norm(stop, len, -1);
    std::vector<size_t> idx;
    if (st > 0)
      for (int64_t i = a; i < b; i += st) idx.push_back(static_cast<size_t>(i));
    else
      for (int64_t i = a; i > b; i += st) idx.push_back(static_cast<size_t>(i));
    return idx;
  }

  Value slice(const Expr& e) {
    Value v = eval(*e.a);
    const J& j = v.j();
    if (j.is_array()) {
      J out = J::array();
      for (size_t i : slice_indices(e, j.size())) out.push_back(j[i]);
      return Value::data(std::move(out));
    }
    if (j.is_string()) {
      auto cs = chars_of(j.get_ref<const std::string&>());
      std::string out;
      for (size_t i : slice_indices(e, cs.size())) out += cs[i];
      return Value::data(J(std::move(out)));
    }
    if (v.is_undef()) return v;
    error(e.pos, fmt::format("cannot slice a {} value", j.type_name()));
  }

  static int cmp_values(const J& a, const J& b, bool& ok) {
    ok = true;
    if (a.is_number() && b.is_number()) {
      if (a.is_number_integer() && b.is_number_integer()) {
        auto x = a.get<int64_t>(), y = b.get<int64_t>();
        return x < y ? -1 : (x > y ? 1 : 0);
      }
      double x = a.get<double>(), y = b.get<double>();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    if (a.is_boolean() && b.is_boolean()) return int(a.get<bool>()) - int(b.get<bool>());
    if (a.is_string() && b.is_string()) {
      int c = a.get_ref<const std::string&>().compare(b.get_ref<const std::string&>());
      return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    if (a.is_array() && b.is_array()) {
      for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
        int c = cmp_values(a[i], b[i], ok);
        if (!ok || c != 0) return c;
      }
      return a.size() < b.size() ? -1 : (a.size() > b.size() ? 1 : 0);
    }
    ok = false;
    return 0;
  }
  static bool equal(const Value& a, const Value& b) {
    if (a.is_undef() || b.is_undef()) return a.is_undef() && b.is_undef();
    if (a.k != Value::K::Data || b.k != Value::K::Data) return false;
    const J& x = a.j();
    const J& y = b.j();
    if (x.is_number() && y.is_number()) return x.get<double>() == y.get<double>() &&
                                               (!x.is_number_integer() || !y.is_number_integer() ||
                                                x.get<int64_t>() == y.get<int64_t>());
    if (x.is_boolean() && y.is_number()) return (x.get<bool>() ? 1.0 : 0.0) == y.get<double>();
    if (y.is_boolean() && x.is_number()) return (y.get<bool>() ? 1.0 : 0.0) == x.get<double>();
    return x == y;
  }
  bool contains(const Value& container, const Value& item, size_t pos) {
    if (container.is_undef()) return false;
    const J& c = container.j();
    if (container.k == Value::K::Ns) return item.j().is_string() && container.ns->contains(item.j().get<std::string>());
    if (c.is_string()) {
      if (!item.j().is_string()) error(pos, "'in <string>' requires a string on the left");
      return c.get_ref<const std::string&>().find(item.j().get_ref<const std::string&>()) != std::string::npos;
    }
    if (c.is_array()) {
      for (const auto& x : c)
        if (equal(Value::borrow(&x), item)) return true;
      return false;
    }
    if (c.is_object()) return item.j().is_string() && c.contains(item.j().get<std::string>());
    error(pos, fmt::format("'in' expects a string, list or mapping, not {}", c.type_name()));
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    Value l = eval(*e.a);
    Value r = eval(*e.b);
    if (op == "==") return Value::data(J(equal(l, r)));
    if (op == "!=") return Value::data(J(!equal(l, r)));
    if (op == "in") return Value::data(J(contains(r, l, e.pos)));
    if (op == "not in") return Value::data(J(!contains(r, l, e.pos)));
    if (op == "~") {
      std::string s = str(l);
      std::string t = str(r);
      check_size(s.size() + t.size(), e.pos);
      return Value::data(J(s + t));
    }
    const J& a = l.j();
    const J& b = r.j();
    if (op == "<" || op == "<=" || op == ">" || op == ">=") {
      bool ok;
      int c = cmp_values(a, b, ok);
      if (!ok || !l.is_data() || !r.is_data())
        error(e.pos, fmt::format("cannot compare {} with {}", l.is_data() ? a.type_name() : "undefined",
                                 r.is_data() ? b.type_name() : "undefined"));
      bool res = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
      return Value::data(J(res));
    }
    if (op == "+") {
      if (a.is_string() && b.is_string() && l.is_data() && r.is_data()) {
        check_size(a.get_ref<const std::string&>().size() + b.get_ref<const std::string&>().size(), e.pos);
        return Value::data(J(a.get<std::string>() + b.get<std::string>()));
      }
      if (a.is_array() && b.is_array()) {
        check_size(a.size() + b.size(), e.pos);
        J out = a;
        for (const auto& x : b) out.push_back(x);
        return Value::data(std::move(out));
      }
    }
    if (op == "*" && ((a.is_string() && b.is_number_integer()) || (b.is_string() && a.is_number_integer()))) {
      const std::string& s = a.is_string() ? a.get_ref<const std::string&>() : b.get_ref<const std::string&>();
      int64_t n = a.is_string() ? b.get<int64_t>() : a.get<int64_t>();
      if (n <= 0 || s.empty()) return Value::data(J(""));
      if (static_cast<uint64_t>(n) > t_.options.max_output_bytes / s.size()) check_size(SIZE_MAX, e.pos);
      std::string out;
      for (int64_t i = 0; i < n; ++i) out += s;
      return Value::data(J(std::move(out)));
    }
    auto numeric = [](const J& x) { return x.is_number() || x.is_boolean(); };
    if (!l.is_data() || !r.is_data() || !numeric(a) || !numeric(b))
      error(e.pos, fmt::format("unsupported operand types for '{}': {} and {}", op,
                               l.is_data() ? a.type_name() : "undefined", r.is_data() ? b.type_name() : "undefined"));
    auto as_i = [](const J& x) { return x.is_boolean() ? int64_t(x.get<bool>()) : x.get<int64_t>(); };
    auto as_d = [](const J& x) { return x.is_boolean() ? double(x.get<bool>()) : x.get<double>(); };
    bool ints = (a.is_number_integer() || a.is_boolean()) && (b.is_number_integer() || b.is_boolean());
    if (op == "/") {
      if (as_d(b) == 0.0) error(e.pos, "division by zero");
      return Value::data(J(as_d(a) / as_d(b)));
    }
    if (ints) {
      int64_t x = as_i(a), y = as_i(b);
      if (op == "+") return Value::data(J(static_cast<int64_t>(static_cast<uint64_t>(x) + static_cast<uint64_t>(y))));
      if (op == "-") return Value::data(J(static_cast<int64_t>(static_cast<uint64_t>(x) - static_cast<uint64_t>(y))));
      if (op == "*") return Value::data(J(static_cast<int64_t>(static_cast<uint64_t>(x) * static_cast<uint64_t>(y))));
      if (op == "//" || op == "%") {
        if (y == 0) error(e.pos, "division by zero");
        if (y == -1) return Value::data(J(op == "%" ? int64_t(0) : static_cast<int64_t>(0 - static_cast<uint64_t>(x))));
        int64_t q = x / y, r2 = x % y;
        if (r2 != 0 && ((r2 < 0) != (y < 0))) {
          --q;
          r2 += y;
        }
        return Value::data(J(op == "%" ? r2 : q));
      }
      if (op == "**") {
        if (y < 0) return Value::data(J(std::pow(double(x), double(y))));
        if (x == 0 || x == 1) return Value::data(J(y == 0 ? int64_t(1) : x));
        if (x == -1) return Value::data(J(y % 2 == 0 ? int64_t(1) : int64_t(-1)));
        int64_t r = 1;
        for (int64_t k = 0; k < y; ++k)  // |x| >= 2 overflows within 63 steps
          if (__builtin_mul_overflow(r, x, &r)) return Value::data(J(std::pow(double(x), double(y))));
        return Value::data(J(r));
      }
    }
    double x = as_d(a), y = as_d(b);
    if (op == "+") return Value::data(J(x + y));
    if (op == "-") return Value::data(J(x - y));
    if (op == "*") return Value::data(J(x * y));
    if (op == "**") return Value::data(J(std::pow(x, y)));
    if (op == "//" || op == "%") {
      if (y == 0.0) error(e.pos, "division by zero");
      double q = std::floor(x / y);
      return Value::data(J(op == "//" ? q : x - q * y));
    }
    error(e.pos, fmt::format("unknown operator '{}'", op));
  }

  // Evaluated arguments of a call / filter / test.
  struct CallArgs {
    std::vector<Value> pos;
    std::vector<std::pair<std::string, Value>> kw;
    const Value* get(size_t i, std::string_view name) const {
      for (const auto& [k, v] : kw)
        if (k == name) return &v;
      return i < pos.size() ? &pos[i] : nullptr;
    }
  };
  CallArgs eval_args(const Args& a) {
    CallArgs out;
    for (const auto& x : a.pos) out.pos.push_back(eval(*x));
    for (const auto& [k, x] : a.kw) out.kw.emplace_back(k, eval(*x));
    return out;
  }

  Value call(const Expr& e) {
    const Expr& callee = *e.a;
    if (callee.k == Expr::K::Attr) {
      Value obj = eval(*callee.a);
      if (obj.is_data()) {
        CallArgs args = eval_args(e.args);
        return method(obj, callee.name, args, e.pos);
      }
      if (obj.is_undef()) error(e.pos, fmt::format("cannot call '{}' on an undefined value", callee.name));
      Value f = get_attr(obj, callee.name);
      if (f.is_undef()) unsupported(e.pos, fmt::format("method '{}'", callee.name));
      return call_value(f, eval_args(e.args), e.pos);
    }
    Value f = eval(callee);
    if (f.is_undef() && callee.k == Expr::K::Name) unsupported(e.pos, fmt::format("function '{}'", callee.name));
    return call_value(f, eval_args(e.args), e.pos);
  }

  Value call_value(const Value& f, const CallArgs& args, size_t pos) {
    if (f.k == Value::K::Macro) return call_macro(*f.macro, args, pos);
    if (f.k == Value::K::Func) return builtin(f.func, args, pos);
    error(pos, "value is not callable");
  }

  Value call_macro(const MacroDef& m, const CallArgs& args, size_t pos) {
    if (call_depth_ >= t_.options.max_call_depth)
      error(pos, fmt::format("macro calls nested deeper than {}", t_.options.max_call_depth));
    if (args.pos.size() > m.params.size()) error(pos, fmt::format("macro '{}' takes {} arguments", m.name, m.params.size()));
    // Macros see the template's top-level names, not the caller's locals.
    std::vector<std::unique_ptr<Scope>> saved;
    for (size_t i = scopes_.size(); i > 1; --i) {
      saved.push_back(std::move(scopes_.back()));
      scopes_.pop_back();
    }
    struct Restore {
      Renderer& r;
      std::vector<std::unique_ptr<Scope>>& saved;
      ~Restore() {
        while (r.scopes_.size() > 1) r.scopes_.pop_back();
        for (auto it = saved.rbegin(); it != saved.rend(); ++it) r.scopes_.push_back(std::move(*it));
        --r.call_depth_;
      }
    } restore{*this, saved};
    ++call_depth_;
    int saved_loop = loop_depth_;
    loop_depth_ = 0;
    scopes_.push_back(std::make_unique<Scope>());
    for (size_t i = 0; i < m.params.size(); ++i) {
      const auto& [pname, def] = m.params[i];
      const Value* v = args.get(i, pname);
      if (v) assign(pname, *v);
      else if (def) assign(pname, eval(*def));
      else assign(pname, Value::undef(pname));
    }
    for (const auto& [k, v] : args.kw) {
      bool known = std::any_of(m.params.begin(), m.params.end(), [&](const auto& p) { return p.first == k; });
      if (!known) error(pos, fmt::format("macro '{}' has no parameter '{}'", m.name, k));
    }
    std::string out;
    exec_body(m.body, out);
    loop_depth_ = saved_loop;
    return Value::data(J(std::move(out)));
  }

  Value builtin(const std::string& name, const CallArgs& args, size_t pos) {
    if (name == "raise_exception") {
      std::string msg = args.pos.empty() ? std::string("raise_exception") : str(args.pos[0]);
      throw TemplateRaised(where_of(t_, pos), msg);
    }
    if (name == "range") {
      if (args.pos.empty() || args.pos.size() > 3) error(pos, "range() takes 1 to 3 arguments");
      int64_t a = 0, b, st = 1;
      if (args.pos.size() == 1) {
        b = as_int(args.pos[0], pos, "range");
      } else {
        a = as_int(args.pos[0], pos, "range");
        b = as_int(args.pos[1], pos, "range");
        if (args.pos.size() == 3) st = as_int(args.pos[2], pos, "range");
      }
      if (st == 0) error(pos, "range() step cannot be zero");
      J out = J::array();
      for (int64_t i = a; st > 0 ? i < b : i > b; i += st) {
        if (out.size() >= 100000) error(pos, "range() longer than 100000 items");
        out.push_back(i);
      }
      return Value::data(std::move(out));
    }
    if (name == "namespace" || name == "dict") {
      auto obj = std::make_shared<J>(J::object());
      for (const auto& p : args.pos) {
        if (!p.j().is_object()) error(pos, fmt::format("{}() positional argument must be a mapping", name));
        for (auto it = p.j().begin(); it != p.j().end(); ++it) (*obj)[it.key()] = it.value();
      }
      for (const auto& [k, v] : args.kw) (*obj)[k] = to_json(v, pos);
      if (name == "dict") return Value::data(std::move(*obj));
      Value v;
      v.k = Value::K::Ns;
      v.ns = std::move(obj);
      return v;
    }
    if (name == "strftime_now") {
      std::string f = args.pos.empty() ? std::string("%Y-%m-%d") : as_string_arg(args.pos[0], pos, "strftime_now");
      std::time_t now = std::time(nullptr);
      std::tm tm{};
      gmtime_r(&now, &tm);
      char buf[256];
      size_t n = std::strftime(buf, sizeof buf, f.c_str(), &tm);
      return Value::data(J(std::string(buf, n)));
    }
    unsupported(pos, fmt::format("function '{}'", name));
  }

  // Python methods on strings, dicts and lists.
  Value method(const Value& obj, const std::string& m, const CallArgs& args, size_t pos) {
    const J& j = obj.j();
    auto sarg = [&](size_t i, const char* what) { return as_string_arg(args.pos.at(i), pos, what); };
    auto need = [&](size_t lo, size_t hi) {
      if (args.pos.size() < lo || args.pos.size() > hi)
        error(pos, fmt::format("{}() takes {} to {} arguments", m, lo, hi));
    };
    if (j.is_string()) {
      const std::string& s = j.get_ref<const std::string&>();
      if (m == "strip" || m == "lstrip" || m == "rstrip") {
        need(0, 1);
        std::string chars = (args.pos.empty() || args.pos[0].j().is_null()) ? std::string(kPyWhitespace) : sarg(0, m.c_str());
        return Value::data(J(std::string(strip_chars(s, chars, m != "rstrip", m != "lstrip"))));
      }
      if (m == "startswith" || m == "endswith") {
        need(1, 1);
        std::vector<std::string> pats;
        if (args.pos[0].j().is_array()) {
          for (const auto& x : args.pos[0].j())
            if (x.is_string()) pats.push_back(x.get<std::string>());
        } else {
          pats.push_back(sarg(0, m.c_str()));
        }
        for (const auto& p : pats) {
          if (m == "startswith" ? s.starts_with(p) : s.ends_with(p)) return Value::data(J(true));
        }
        return Value::data(J(false));
      }
      if (m == "split" || m == "rsplit") {
        need(0, 2);
        int64_t maxsplit = -1;
        if (const Value* ms = args.get(1, "maxsplit")) maxsplit = as_int(*ms, pos, "maxsplit");
        const Value* sepv = args.get(0, "sep");
        J out = J::array();
        if (!sepv || sepv->j().is_null()) {
          std::vector<std::string> parts;
          size_t i = 0;
          while (i < s.size()) {
            while (i < s.size() && kPyWhitespace.find(s[i]) != std::string_view::npos) ++i;
            if (i >= s.size()) break;
            size_t k = i;
            while (k < s.size() && kPyWhitespace.find(s[k]) == std::string_view::npos) ++k;
            parts.push_back(s.substr(i, k - i));
            i = k;
          }
          if (maxsplit >= 0 && parts.size() > static_cast<size_t>(maxsplit) + 1) {
            // Rebuild with the remainder kept whole (left split only; rsplit is rare here).
            size_t i2 = 0, cnt = 0;
            std::vector<std::string> p2;
            while (cnt < static_cast<size_t>(maxsplit)) {
              while (kPyWhitespace.find(s[i2]) != std::string_view::npos) ++i2;
              size_t k = i2;
              while (k < s.size() && kPyWhitespace.find(s[k]) == std::string_view::npos) ++k;
              p2.push_back(s.substr(i2, k - i2));
              i2 = k;
              ++cnt;
            }
            p2.push_back(std::string(strip_chars(std::string_view(s).substr(i2), kPyWhitespace, true, true)));
            parts = std::move(p2);
          }
          for (auto& p : parts) out.push_back(std::move(p));
          return Value::data(std::move(out));
        }
        std::string sep = as_string_arg(*sepv, pos, "split");
        if (sep.empty()) error(pos, "split(): empty separator");
        std::vector<std::string> parts;
        if (m == "split") {
          size_t i = 0;
          int64_t done = 0;
          while (true) {
            size_t k = (maxsplit < 0 || done < maxsplit) ? s.find(sep, i) : std::string::npos;
            if (k == std::string::npos) {
              parts.push_back(s.substr(i));
              break;
            }
            parts.push_back(s.substr(i, k - i));
            i = k + sep.size();
            ++done;
          }
        } else {
          size_t end = s.size();
          int64_t done = 0;
          while (true) {
            size_t k = (maxsplit < 0 || done < maxsplit) && end >= sep.size() ? s.rfind(sep, end - sep.size())
                                                                              : std::string::npos;
            if (k == std::string::npos) {
              parts.insert(parts.begin(), s.substr(0, end));
              break;
            }
            parts.insert(parts.begin(), s.substr(k + sep.size(), end - k - sep.size()));
            end = k;
            ++done;
          }
        }
        for (auto& p : parts) out.push_back(std::move(p));
        return Value::data(std::move(out));
      }
      if (m == "upper") return Value::data(J(to_upper(s)));
      if (m == "lower") return Value::data(J(to_lower(s)));
      if (m == "title") return Value::data(J(title_case(s)));
      if (m == "capitalize") return Value::data(J(capitalize(s)));
      if (m == "replace") {
        need(2, 3);
        long count = args.pos.size() == 3 ? static_cast<long>(as_int(args.pos[2], pos, "replace")) : -1;
        return Value::data(J(replace_all(s, sarg(0, "replace"), sarg(1, "replace"), count,
                                         t_.options.max_output_bytes, where_of(t_, pos))));
      }
      if (m == "find" || m == "rfind" || m == "count" || m == "index") {
        need(1, 1);
        std::string sub = sarg(0, m.c_str());
        if (m == "count") {
          if (sub.empty()) return Value::data(J(chars_of(s).size() + 1));
          int64_t c = 0;
          for (size_t i = s.find(sub); i != std::string::npos; i = s.find(sub, i + sub.size())) ++c;
          return Value::data(J(c));
        }
        size_t i = m == "rfind" ? s.rfind(sub) : s.find(sub);
        if (i == std::string::npos) {
          if (m == "index") error(pos, "substring not found");
          return Value::data(J(-1));
        }
        return Value::data(J(static_cast<int64_t>(chars_of(std::string_view(s).substr(0, i)).size())));
      }
      if (m == "join") {
        need(1, 1);
        std::string out;
        bool first = true;
        for (const auto& it : items_of(args.pos[0], pos)) {
          if (!first) out += s;
          first = false;
          out += str(it);
          check_size(out.size(), pos);
        }
        return Value::data(J(std::move(out)));
      }
      if (m == "splitlines") {
        J out = J::array();
        size_t i = 0;
        while (i < s.size()) {
          size_t k = s.find_first_of("\r\n", i);
          if (k == std::string::npos) {
            out.push_back(s.substr(i));
            break;
          }
          out.push_back(s.substr(i, k - i));
          i = k + ((s[k] == '\r' && k + 1 < s.size() && s[k + 1] == '\n') ? 2 : 1);
        }
        return Value::data(std::move(out));
      }
      if (m == "isdigit" || m == "isspace" || m == "isalpha" || m == "isalnum") {
        if (s.empty()) return Value::data(J(false));
        bool ok = std::all_of(s.begin(), s.end(), [&](char c) {
          unsigned char u = static_cast<unsigned char>(c);
          if (m == "isdigit") return std::isdigit(u) != 0;
          if (m == "isspace") return std::isspace(u) != 0;
          if (m == "isalpha") return std::isalpha(u) != 0;
          return std::isalnum(u) != 0;
        });
        return Value::data(J(ok));
      }
    } else if (j.is_object()) {
      if (m == "items") {
        J out = J::array();
        for (auto it = j.begin(); it != j.end(); ++it) out.push_back(J::array({it.key(), it.value()}));
        return Value::data(std::move(out));
      }
      if (m == "keys") {
        J out = J::array();
        for (auto it = j.begin(); it != j.end(); ++it) out.push_back(it.key());
        return Value::data(std::move(out));
      }
      if (m == "values") {
        J out = J::array();
        for (auto it = j.begin(); it != j.end(); ++it) out.push_back(it.value());
        return Value::data(std::move(out));
      }
      if (m == "get") {
        need(1, 2);
        if (args.pos[0].j().is_string()) {
          auto f = j.find(args.pos[0].j().get<std::string>());
          if (f != j.end()) return obj.child(*f);
        }
        return args.pos.size() == 2 ? args.pos[1] : Value::data(J(nullptr));
      }
      // A mapping's own entry that happens to be called (e.g. data holding no callables): not supported.
    } else if (j.is_array()) {
      if (m == "count") {
        need(1, 1);
        int64_t c = 0;
        for (const auto& x : j) c += equal(Value::borrow(&x), args.pos[0]);
        return Value::data(J(c));
      }
      if (m == "index") {
        need(1, 1);
        for (size_t i = 0; i < j.size(); ++i)
          if (equal(Value::borrow(&j[i]), args.pos[0])) return Value::data(J(i));
        error(pos, "value is not in list");
      }
    }
    unsupported(pos, fmt::format("method '{}' on a {} value", m, j.type_name()));
  }

  // ---- tests
  bool test(const Expr& e) {
    Value v = eval(*e.a);
    CallArgs args = eval_args(e.args);
    const std::string& n = e.name;
    const J& j = v.j();
    auto arg0 = [&]() -> const Value& {
      if (args.pos.empty()) error(e.pos, fmt::format("test '{}' needs an argument", n));
      return args.pos[0];
    };
    if (n == "defined") return !v.is_undef();
    if (n == "undefined") return v.is_undef();
    if (n == "none") return v.is_data() && j.is_null();
    if (n == "string") return v.is_data() && j.is_string();
    if (n == "number") return v.is_data() && j.is_number();
    if (n == "integer") return v.is_data() && j.is_number_integer();
    if (n == "float") return v.is_data() && j.is_number_float();
    if (n == "boolean") return v.is_data() && j.is_boolean();
    if (n == "true") return v.is_data() && j.is_boolean() && j.get<bool>();
    if (n == "false") return v.is_data() && j.is_boolean() && !j.get<bool>();
    if (n == "mapping") return (v.is_data() && j.is_object()) || v.k == Value::K::Ns;
    if (n == "sequence") return v.is_data() && (j.is_array() || j.is_string() || j.is_object());
    if (n == "iterable") return v.is_data() && (j.is_array() || j.is_string() || j.is_object());
    if (n == "callable") return v.k == Value::K::Macro || v.k == Value::K::Func;
    if (n == "odd" || n == "even") {
      int64_t x = as_int(v, e.pos, n.c_str());
      return (x % 2 != 0) == (n == "odd");
    }
    if (n == "divisibleby") {
      int64_t d = as_int(arg0(), e.pos, "divisibleby");
      if (d == 0) error(e.pos, "divisibleby 0");
      return as_int(v, e.pos, "divisibleby") % d == 0;
    }
    if (n == "eq" || n == "equalto" || n == "==" || n == "sameas") return equal(v, arg0());
    if (n == "ne" || n == "!=") return !equal(v, arg0());
    if (n == "in") return contains(arg0(), v, e.pos);
    if (n == "lower") return j.is_string() && to_lower(j.get<std::string>()) == j.get<std::string>();
    if (n == "upper") return j.is_string() && to_upper(j.get<std::string>()) == j.get<std::string>();
    bool ok;
    int c = cmp_values(j, arg0().j(), ok);
    if (!ok) error(e.pos, fmt::format("test '{}' cannot compare these values", n));
    if (n == "lt" || n == "<") return c < 0;
    if (n == "gt" || n == ">") return c > 0;
    if (n == "le" || n == "<=") return c <= 0;
    if (n == "ge" || n == ">=") return c >= 0;
    unsupported(e.pos, fmt::format("test '{}'", n));
  }

  // Named test applied by select/reject/selectattr (no expression node).
  bool apply_test(const std::string& n, const Value& v, const std::vector<Value>& extra, size_t pos) {
    if (std::find(kTests.begin(), kTests.end(), n) == kTests.end()) unsupported(pos, fmt::format("test '{}'", n));
    Expr e;
    e.k = Expr::K::Test;
    e.pos = pos;
    e.name = n;
    // Evaluate through literal nodes so `test` sees ordinary values.
    e.a = std::make_unique<Expr>();
    e.a->k = Expr::K::Lit;
    e.a->pos = pos;
    e.a->lit = to_json(v, pos);
    bool undefined = v.is_undef();
    for (const auto& x : extra) {
      auto l = std::make_unique<Expr>();
      l->k = Expr::K::Lit;
      l->pos = pos;
      l->lit = to_json(x, pos);
      e.args.pos.push_back(std::move(l));
    }
    if (undefined) {
      if (n == "defined") return false;
      if (n == "undefined") return true;
    }
    return test(e);
  }

  // ---- filters
  Value filter(const Expr& e) {
    Value v = eval(*e.a);
    CallArgs args = eval_args(e.args);
    const std::string& n = e.name;
    const J& j = v.j();
    size_t pos = e.pos;
    auto s_of = [&]() { return str(v); };
    if (n == "safe") return v;
    if (n == "default" || n == "d") {
      const Value* dv = args.get(0, "default_value");
      const Value* b = args.get(1, "boolean");
      bool use = v.is_undef() || (b && truthy(*b) && !truthy(v));
      if (use) return dv ? *dv : Value::data(J(""));
      return v;
    }
    if (n == "trim") {
      const Value* c = args.get(0, "chars");
      std::string chars = c && c->j().is_string() ? c->j().get<std::string>() : std::string(kPyWhitespace);
      return Value::data(J(std::string(strip_chars(s_of(), chars, true, true))));
    }
    if (n == "upper") return Value::data(J(to_upper(s_of())));
    if (n == "lower") return Value::data(J(to_lower(s_of())));
    if (n == "capitalize") return Value::data(J(capitalize(s_of())));
    if (n == "title") return Value::data(J(title_case(s_of())));
    if (n == "string") return Value::data(J(s_of()));
    if (n == "length" || n == "count") {
      if (v.is_undef()) return Value::data(J(0));
      if (v.k == Value::K::Ns) return Value::data(J(v.ns->size()));
      if (j.is_string()) return Value::data(J(chars_of(j.get_ref<const std::string&>()).size()));
      if (j.is_array() || j.is_object()) return Value::data(J(j.size()));
      error(pos, fmt::format("length of a {} value", j.type_name()));
    }
    if (n == "join") {
      const Value* sep = args.get(0, "d");
      const Value* attr = args.get(1, "attribute");
      std::string d = sep ? str(*sep) : "";
      std::string out;
      bool first = true;
      for (const auto& it : items_of(v, pos)) {
        if (!first) out += d;
        first = false;
        out += attr ? str(get_attr(it, str(*attr))) : str(it);
        check_size(out.size(), pos);
      }
      return Value::data(J(std::move(out)));
    }
    if (n == "replace") {
      if (args.pos.size() < 2) error(pos, "replace needs old and new strings");
      long count = -1;
      if (const Value* c = args.get(2, "count"); c && !c->j().is_null()) count = static_cast<long>(as_int(*c, pos, "replace"));
      return Value::data(J(replace_all(s_of(), str(args.pos[0]), str(args.pos[1]), count, t_.options.max_output_bytes,
                                       where_of(t_, pos))));
    }
    if (n == "tojson") {
      const Value* ind = args.get(0, "indent");
      int indent = (ind && ind->j().is_number_integer()) ? static_cast<int>(std::clamp<int64_t>(ind->j().get<int64_t>(), 0, 64)) : -1;
      std::string out = to_python_json(to_json(v, pos), indent);
      check_size(out.size(), pos);
      return Value::data(J(std::move(out)));
    }
    if (n == "first" || n == "last") {
      auto items = items_of(v, pos);
      if (items.empty()) return Value::undef();
      return n == "first" ? items.front() : items.back();
    }
    if (n == "list") {
      J out = J::array();
      for (const auto& it : items_of(v, pos)) out.push_back(to_json(it, pos));
      return Value::data(std::move(out));
    }
    if (n == "reverse") {
      if (j.is_string()) {
        auto cs = chars_of(j.get_ref<const std::string&>());
        std::string out;
        for (auto it = cs.rbegin(); it != cs.rend(); ++it) out += *it;
        return Value::data(J(std::move(out)));
      }
      J out = J::array();
      auto items = items_of(v, pos);
      for (auto it = items.rbegin(); it != items.rend(); ++it) out.push_back(to_json(*it, pos));
      return Value::data(std::move(out));
    }
    if (n == "int") {
      const Value* dv = args.get(0, "default");
      J def = dv ? dv->j() : J(0);
      if (j.is_number_integer()) return v;
      if (j.is_number_float()) {
        double d = j.get<double>();
        if (!std::isfinite(d) || std::fabs(d) > 9.2e18) return Value::data(def);
        return Value::data(J(static_cast<int64_t>(d)));
      }
      if (j.is_boolean()) return Value::data(J(int64_t(j.get<bool>())));
      if (j.is_string()) {
        std::string s(strip_chars(j.get_ref<const std::string&>(), kPyWhitespace, true, true));
        char* end = nullptr;
        errno = 0;
        long long x = std::strtoll(s.c_str(), &end, 10);
        if (!s.empty() && end && *end == '\0' && errno == 0) return Value::data(J(static_cast<int64_t>(x)));
        double d = std::strtod(s.c_str(), &end);
        if (!s.empty() && end && *end == '\0' && std::isfinite(d) && std::fabs(d) < 9.2e18)
          return Value::data(J(static_cast<int64_t>(d)));
      }
      return Value::data(def);
    }
    if (n == "float") {
      if (j.is_number()) return Value::data(J(j.get<double>()));
      if (j.is_string()) {
        std::string s(strip_chars(j.get_ref<const std::string&>(), kPyWhitespace, true, true));
        char* end = nullptr;
        double d = std::strtod(s.c_str(), &end);
        if (!s.empty() && end && *end == '\0') return Value::data(J(d));
      }
      const Value* dv = args.get(0, "default");
      return Value::data(dv ? dv->j() : J(0.0));
    }
    if (n == "round") {
      if (!j.is_number()) error(pos, "round expects a number");
      int64_t prec = 0;
      if (const Value* p = args.get(0, "precision")) prec = std::clamp<int64_t>(as_int(*p, pos, "round"), 0, 15);
      std::string method = "common";
      if (const Value* m = args.get(1, "method")) method = str(*m);
      double x = j.get<double>();
      double scale = std::pow(10.0, static_cast<double>(prec));
      double r;
      if (method == "ceil") r = std::ceil(x * scale) / scale;
      else if (method == "floor") r = std::floor(x * scale) / scale;
      else if (method == "common") {
        // Python's round(): exact decimal rounding of the binary value, ties to even.
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(prec), x);
        r = std::strtod(buf, nullptr);
      } else {
        error(pos, fmt::format("round method '{}'", method));
      }
      return Value::data(J(r));
    }
    if (n == "abs") {
      if (j.is_number_integer()) return Value::data(J(j.get<int64_t>() < 0 ? -j.get<int64_t>() : j.get<int64_t>()));
      if (j.is_number()) return Value::data(J(std::fabs(j.get<double>())));
      error(pos, "abs expects a number");
    }
    if (n == "escape" || n == "e") {
      std::string s = s_of(), out;
      for (char c : s) {
        switch (c) {
          case '&': out += "&amp;"; break;
          case '<': out += "&lt;"; break;
          case '>': out += "&gt;"; break;
          case '"': out += "&#34;"; break;
          case '\'': out += "&#39;"; break;
          default: out += c;
        }
      }
      return Value::data(J(std::move(out)));
    }
    if (n == "indent") {
      const Value* w = args.get(0, "width");
      const Value* first = args.get(1, "first");
      const Value* blank = args.get(2, "blank");
      std::string pad;
      if (w && w->j().is_string()) pad = w->j().get<std::string>();
      else pad = std::string(static_cast<size_t>(std::clamp<int64_t>(w ? as_int(*w, pos, "indent") : 4, 0, 256)), ' ');
      bool ind_first = first && truthy(*first);
      bool ind_blank = blank && truthy(*blank);
      std::string s = s_of();
      std::string out;
      size_t i = 0;
      bool first_line = true;
      while (true) {
        size_t k = s.find('\n', i);
        std::string_view line = std::string_view(s).substr(i, k == std::string::npos ? std::string::npos : k - i);
        bool do_pad = (first_line ? ind_first : true) && (ind_blank || !line.empty());
        if (do_pad) out += pad;
        out += line;
        check_size(out.size(), pos);
        if (k == std::string::npos) break;
        out += '\n';
        i = k + 1;
        first_line = false;
      }
      return Value::data(J(std::move(out)));
    }
    if (n == "wordcount") {
      std::string s = s_of();
      int64_t c = 0;
      bool in = false;
      for (char ch : s) {
        bool w = std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || static_cast<unsigned char>(ch) >= 0x80;
        if (w && !in) ++c;
        in = w;
      }
      return Value::data(J(c));
    }
    if (n == "items" || n == "dictsort") {
      if (v.is_undef()) return Value::data(J::array());
      if (!j.is_object()) error(pos, fmt::format("{} expects a mapping", n));
      J out = J::array();
      for (auto it = j.begin(); it != j.end(); ++it) out.push_back(J::array({it.key(), it.value()}));
      if (n == "dictsort")
        std::stable_sort(out.begin(), out.end(), [](const J& a, const J& b) {
          return to_lower(a[0].get<std::string>()) < to_lower(b[0].get<std::string>());
        });
      return Value::data(std::move(out));
    }
    if (n == "sort" || n == "unique" || n == "min" || n == "max" || n == "sum") {
      auto items = items_of(v, pos);
      const Value* attr = args.get(n == "sort" ? 2 : (n == "sum" ? 0 : 1), "attribute");
      auto key = [&](const Value& x) { return attr ? to_json(get_attr(x, str(*attr)), pos) : to_json(x, pos); };
      if (n == "sum") {
        const Value* start = args.get(1, "start");
        J acc = start ? start->j() : J(0);
        for (const auto& x : items) {
          J k = key(x);
          if (!k.is_number() || !acc.is_number()) error(pos, "sum expects numbers");
          if (acc.is_number_integer() && k.is_number_integer()) acc = acc.get<int64_t>() + k.get<int64_t>();
          else acc = acc.get<double>() + k.get<double>();
        }
        return Value::data(std::move(acc));
      }
      std::vector<J> keys;
      J vals = J::array();
      for (const auto& x : items) {
        keys.push_back(key(x));
        vals.push_back(to_json(x, pos));
      }
      std::vector<size_t> order(keys.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      bool bad = false;
      auto less = [&](size_t a, size_t b) {
        bool ok;
        int c = cmp_values(keys[a], keys[b], ok);
        if (!ok) bad = true;
        return c < 0;
      };
      if (n == "unique") {
        J out = J::array();
        std::vector<J> seen;
        for (size_t i = 0; i < keys.size(); ++i) {
          if (std::find(seen.begin(), seen.end(), keys[i]) != seen.end()) continue;
          seen.push_back(keys[i]);
          out.push_back(vals[i]);
        }
        return Value::data(std::move(out));
      }
      if (n == "min" || n == "max") {
        if (order.empty()) return Value::undef();
        size_t best = 0;
        for (size_t i = 1; i < order.size(); ++i)
          if (n == "min" ? less(i, best) : less(best, i)) best = i;
        if (bad) error(pos, fmt::format("{}: values cannot be compared", n));
        return Value::data(vals[best]);
      }
      std::stable_sort(order.begin(), order.end(), less);
      if (bad) error(pos, "sort: values cannot be compared");
      const Value* rev = args.get(0, "reverse");
      if (rev && truthy(*rev)) std::reverse(order.begin(), order.end());
      J out = J::array();
      for (size_t i : order) out.push_back(vals[i]);
      return Value::data(std::move(out));
    }
    if (n == "map") {
      J out = J::array();
      const Value* attr = args.get(SIZE_MAX, "attribute");
      for (const auto& x : items_of(v, pos)) {
        if (attr) {
          Value r = get_attr(x, str(*attr));
          if (r.is_undef()) {
            if (const Value* d = args.get(SIZE_MAX, "default")) r = *d;
          }
          out.push_back(to_json(r, pos));
        } else {
          if (args.pos.empty()) error(pos, "map needs a filter name or attribute=");
          std::string fname = str(args.pos[0]);
          if (fname != "string" && fname != "lower" && fname != "upper" && fname != "trim" && fname != "int" &&
              fname != "length" && fname != "tojson" && fname != "capitalize" && fname != "title")
            unsupported(pos, fmt::format("map('{}')", fname));
          Expr fe;
          fe.k = Expr::K::Filter;
          fe.pos = pos;
          fe.name = fname;
          fe.a = std::make_unique<Expr>();
          fe.a->k = Expr::K::Lit;
          fe.a->pos = pos;
          fe.a->lit = to_json(x, pos);
          out.push_back(to_json(filter(fe), pos));
        }
      }
      return Value::data(std::move(out));
    }
    if (n == "select" || n == "reject" || n == "selectattr" || n == "rejectattr") {
      bool by_attr = n == "selectattr" || n == "rejectattr";
      bool keep_if = n == "select" || n == "selectattr";
      size_t a0 = by_attr ? 1 : 0;
      J out = J::array();
      for (const auto& x : items_of(v, pos)) {
        Value subject = by_attr ? get_attr(x, args.pos.empty() ? std::string() : str(args.pos[0])) : x;
        bool r;
        if (args.pos.size() <= a0) {
          r = truthy(subject);
        } else {
          std::vector<Value> extra(args.pos.begin() + static_cast<long>(a0) + 1, args.pos.end());
          r = apply_test(str(args.pos[a0]), subject, extra, pos);
        }
        if (r == keep_if) out.push_back(to_json(x, pos));
      }
      return Value::data(std::move(out));
    }
    unsupported(pos, fmt::format("filter '{}'", n));
  }

  const Template::Impl& t_;
  const J& input_;
  std::vector<std::unique_ptr<Scope>> scopes_;
  size_t steps_ = 0;
  int call_depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Template Template::parse(std::string_view text, std::string name, Options options) {
  auto impl = std::make_shared<Impl>();
  impl->name = std::move(name);
  impl->source = std::string(text);
  // Jinja drops one trailing newline of the template (keep_trailing_newline=False).
  if (!options.keep_trailing_newline && !impl->source.empty() && impl->source.back() == '\n') {
    impl->source.pop_back();
    if (!impl->source.empty() && impl->source.back() == '\r') impl->source.pop_back();
  }
  impl->options = options;
  Lexer lex(impl->source, impl->name, impl->options);
  Parser p(lex.run(), *impl);
  impl->body = p.parse_template();
  Template t;
  t.impl_ = std::move(impl);
  return t;
}

const std::string& Template::name() const { return impl_->name; }

std::string Template::render(const nlohmann::ordered_json& context) const {
  Renderer r(*impl_, context);
  return r.run();
}

std::string Template::render(const nlohmann::json& context) const {
  return render(nlohmann::ordered_json::parse(context.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
}

}  // namespace kaival::jinja
