#pragma once
// Streams the records of a JSON dataset split (format `json`): the root array,
// or the array held by one key of the root object (DataSource::json_field).
// The file is read in fixed-size chunks and cut into elements by tracking
// strings, escapes and bracket depth; each element is parsed on its own when
// asked for, so memory is O(largest element + chunk), never O(file). Values of
// other keys of the root object (before or after the list) are skipped without
// being kept: their strings and bracket nesting are checked, and scalar tokens
// are parsed, but they are not validated as deeply as the records are.
#include <cstddef>
#include <istream>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace kaival::eval {

class JsonArrayReader {
 public:
  static constexpr size_t kDefaultChunk = 64 * 1024;

  // `where` names the file in errors; `field` empty: the root must be the list.
  JsonArrayReader(std::istream& in, std::string where, std::string field = "", size_t chunk = kDefaultChunk);

  // Finds the list (the root, or the field's value); next() does it when not done yet, so
  // calling it first only makes errors about the document's shape come before any record.
  void locate() {
    if (!started_) start();
  }

  // The next record (a JSON object), or nullopt once the list has ended and the rest of
  // the document has been checked. Throws FormatError naming the file, the problem and a
  // byte offset (and the record, 1-based) for: not JSON, a truncated file, a root that is
  // not an array/object, a missing field, a field that is not a list, a record that is not
  // an object or not valid JSON, and trailing garbage after the document.
  std::optional<nlohmann::ordered_json> next();

  // Bytes the reader holds for buffers (chunk + the largest element's text), for tests.
  size_t held_bytes() const { return buf_.capacity() + elem_.capacity() + scratch_.capacity(); }

 private:
  int peek();
  int get();
  size_t offset() const { return base_ + pos_; }
  void refill();
  void skip_ws();
  void start();
  void finish();
  // Scans one value; appends its text to `out` when given (containers: strings and depth
  // only; scalars are always captured into scratch_ and parsed). `what` names it in errors.
  void scan_value(std::string* out, const std::string& what);
  void scan_string(std::string* out, const std::string& what);
  [[noreturn]] void truncated(const std::string& what);
  [[noreturn]] void unexpected(int c, const std::string& expected, const std::string& inside);

  std::istream& in_;
  std::string where_, field_;
  std::string buf_;  // current chunk
  size_t chunk_, pos_ = 0, len_ = 0, base_ = 0;
  bool eof_ = false, started_ = false, done_ = false;
  size_t records_ = 0;   // records returned so far
  std::string elem_;     // text of the current element (capacity kept: O(largest element))
  std::string scratch_;  // keys and skipped scalar tokens
};

}  // namespace kaival::eval
