#include "eval/json_split.h"

#include <algorithm>

#include "core/error.h"

namespace kaival::eval {

using OJson = nlohmann::ordered_json;

namespace {

constexpr int kEof = -1;

bool is_ws(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Ends a scalar token (number or literal).
bool ends_scalar(int c) {
  return c == kEof || is_ws(c) || c == ',' || c == ':' || c == '[' || c == ']' || c == '{' || c == '}' || c == '"';
}

std::string show(int c) {
  if (c == kEof) return "the end of the file";
  if (c >= 0x20 && c < 0x7f) return fmt::format("'{}'", static_cast<char>(c));
  return fmt::format("byte 0x{:02x}", c);
}

// What a value starting with `c` is, for "root/field is a ..., not ..." messages.
const char* kind_of(int c) {
  switch (c) {
    case '{': return "an object";
    case '[': return "a list";
    case '"': return "a string";
    case 't':
    case 'f': return "a boolean";
    case 'n': return "null";
    default: return (c == '-' || (c >= '0' && c <= '9')) ? "a number" : nullptr;
  }
}

}  // namespace

JsonArrayReader::JsonArrayReader(std::istream& in, std::string where, std::string field, size_t chunk)
    : in_(in), where_(std::move(where)), field_(std::move(field)), chunk_(std::max<size_t>(chunk, 1)) {}

void JsonArrayReader::refill() {
  base_ += len_;
  pos_ = len_ = 0;
  if (eof_) return;
  buf_.resize(chunk_);
  in_.read(buf_.data(), static_cast<std::streamsize>(chunk_));
  len_ = static_cast<size_t>(in_.gcount());
  if (len_ < chunk_) {
    if (in_.bad()) fail<IoError>(where_, "read error at byte offset {}", base_ + len_);
    eof_ = true;
  }
}

int JsonArrayReader::peek() {
  if (pos_ == len_) refill();
  return pos_ < len_ ? static_cast<unsigned char>(buf_[pos_]) : kEof;
}

int JsonArrayReader::get() {
  int c = peek();
  if (c != kEof) ++pos_;
  return c;
}

void JsonArrayReader::skip_ws() {
  while (is_ws(peek())) ++pos_;
}

void JsonArrayReader::truncated(const std::string& what) {
  fail(where_, "truncated JSON: the file ends at byte offset {} inside {}", offset(), what);
}

void JsonArrayReader::unexpected(int c, const std::string& expected, const std::string& inside) {
  if (c == kEof) truncated(inside);
  fail(where_, "invalid JSON at byte offset {} in {}: expected {}, found {}", offset(), inside, expected, show(c));
}

void JsonArrayReader::scan_string(std::string* out, const std::string& what) {
  get();  // the opening quote
  if (out) out->push_back('"');
  bool esc = false;
  for (;;) {
    int c = get();
    if (c == kEof) truncated("a string in " + what);
    if (out) out->push_back(static_cast<char>(c));
    if (esc) esc = false;
    else if (c == '\\') esc = true;
    else if (c == '"') return;
  }
}

void JsonArrayReader::scan_value(std::string* out, const std::string& what) {
  int c = peek();
  if (c == '"') return scan_string(out, what);
  if (c == '{' || c == '[') {
    size_t depth = 0;
    do {
      c = peek();
      if (c == kEof) truncated(what);
      if (c == '"') {
        scan_string(out, what);
        continue;
      }
      ++pos_;
      if (out) out->push_back(static_cast<char>(c));
      if (c == '{' || c == '[') ++depth;
      else if (c == '}' || c == ']') --depth;
    } while (depth > 0);
    return;
  }
  // A number or literal: short, so captured and checked even when skipped.
  const size_t at = offset();
  std::string& tok = out ? *out : scratch_;
  if (!out) tok.clear();
  const size_t from = tok.size();
  while (!ends_scalar(peek())) tok.push_back(static_cast<char>(get()));
  if (tok.size() == from) unexpected(c, "a value", what);
  if (!OJson::accept(std::string_view(tok).substr(from)))
    fail(where_, "invalid JSON at byte offset {} in {}: '{}' is not a value", at, what,
         std::string_view(tok).substr(from, 40));
}

void JsonArrayReader::start() {
  started_ = true;
  if (peek() == 0xEF) {  // a UTF-8 byte-order mark, as nlohmann's whole-file parse allows
    ++pos_;
    if (get() != 0xBB || get() != 0xBF) fail(where_, "not JSON: invalid byte-order mark at byte offset 0");
  }
  skip_ws();
  int c = peek();
  if (c == kEof) fail(where_, "not JSON: the file {}", base_ + pos_ == 0 ? "is empty" : "holds only white space");
  const char* kind = kind_of(c);
  if (!kind) fail(where_, "not JSON: the document starts with {} at byte offset {}", show(c), offset());
  if (field_.empty()) {
    if (c == '[') {
      ++pos_;
      return;
    }
    if (c == '{') fail(where_, "the root is an object, not a list of records (set 'field' for an enclosing object)");
    fail(where_, "the root is {}, not a list of records", kind);
  }
  if (c != '{') fail(where_, "the root is {}, not an object holding field '{}'", kind, field_);
  ++pos_;
  const std::string root = "the root object";
  skip_ws();
  if (peek() == '}') fail(where_, "no field '{}' in the root object (it is empty)", field_);
  for (;;) {
    skip_ws();
    c = peek();
    if (c != '"') unexpected(c, "a key", root);
    const size_t key_at = offset();
    scratch_.clear();
    scan_string(&scratch_, root);
    auto key = OJson::parse(scratch_, nullptr, false);
    if (key.is_discarded()) fail(where_, "invalid JSON at byte offset {}: bad key string", key_at);
    skip_ws();
    if ((c = peek()) != ':') unexpected(c, "':' after a key", root);
    ++pos_;
    skip_ws();
    const std::string& name = key.get_ref<const std::string&>();
    if (name == field_) {
      c = peek();
      if (c == '[') {
        ++pos_;
        return;
      }
      if (c == kEof) truncated("the value of field '" + field_ + "'");
      const char* k = kind_of(c);
      if (!k) unexpected(c, "a value", root);
      fail(where_, "field '{}' at byte offset {} is {}, not a list of records", field_, offset(), k);
    }
    scan_value(nullptr, "the value of key '" + name.substr(0, 60) + "'");
    skip_ws();
    c = peek();
    if (c == '}') fail(where_, "no field '{}' in the root object", field_);
    if (c != ',') unexpected(c, "',' or '}'", root);
    ++pos_;
  }
}

void JsonArrayReader::finish() {
  done_ = true;
  if (!field_.empty()) {  // the rest of the root object: more keys, then '}'
    const std::string root = "the root object";
    for (;;) {
      skip_ws();
      int c = peek();
      if (c == '}') {
        ++pos_;
        break;
      }
      if (c != ',') unexpected(c, "',' or '}'", root);
      ++pos_;
      skip_ws();
      if ((c = peek()) != '"') unexpected(c, "a key", root);
      // A second list under the same key would be ambiguous (a whole-file parse keeps the last).
      const size_t key_at = offset();
      scratch_.clear();
      scan_string(&scratch_, root);
      auto key = OJson::parse(scratch_, nullptr, false);
      if (key.is_discarded()) fail(where_, "invalid JSON at byte offset {}: bad key string", key_at);
      if (key.get_ref<const std::string&>() == field_)
        fail(where_, "field '{}' appears twice in the root object (again at byte offset {})", field_, key_at);
      skip_ws();
      if ((c = peek()) != ':') unexpected(c, "':' after a key", root);
      ++pos_;
      skip_ws();
      scan_value(nullptr, "a value in " + root);
    }
  }
  skip_ws();
  if (peek() != kEof) fail(where_, "trailing garbage at byte offset {} after the JSON document", offset());
}

std::optional<OJson> JsonArrayReader::next() {
  if (done_) return std::nullopt;
  locate();
  const std::string list = field_.empty() ? "the root list" : "the list of field '" + field_ + "'";
  skip_ws();
  int c = peek();
  if (records_ > 0) {
    if (c == ']') {
      ++pos_;
      finish();
      return std::nullopt;
    }
    if (c != ',') unexpected(c, fmt::format("',' or ']' after record {}", records_), list);
    ++pos_;
    skip_ws();
    c = peek();
  } else if (c == ']') {
    ++pos_;
    finish();
    return std::nullopt;
  }
  const size_t at = offset();
  const size_t n = records_ + 1;
  const std::string what = fmt::format("record {} (byte offset {}) of {}", n, at, list);
  if (c == kEof) truncated(list);
  if (c == ']' || c == ',') unexpected(c, fmt::format("record {}", n), list);
  elem_.clear();
  scan_value(&elem_, what);
  OJson j;
  try {
    j = OJson::parse(elem_);
  } catch (const nlohmann::json::exception& e) {
    fail(where_, "{}: invalid JSON: {}", what, e.what());
  }
  if (!j.is_object()) fail(where_, "{} is not a JSON object", what);
  ++records_;
  return j;
}

}  // namespace kaival::eval
