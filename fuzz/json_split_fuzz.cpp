// Fuzz target: bytes -> records of a streamed JSON split (eval/json_split.h). The
// first byte picks the chunk size (1..128) and whether the list is the root or the
// field "rows" of the root object; the rest is the file. Oracle: nlohmann's parse
// of the whole file. A root list streams without error exactly when the whole file
// is a list of objects, with the same records; a "rows" field that the whole parse
// finds as a list of objects streams the same records (other keys are only checked
// for structure, so the stream may accept what the whole parse refuses there, and a
// second "rows" key is refused where the whole parse keeps the last).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "eval/json_split.h"

namespace {

// Counts the root object's keys named "rows" (nlohmann's DOM keeps only the last).
struct RowsKeys : nlohmann::json_sax<nlohmann::ordered_json> {
  int depth = 0, count = 0;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return ++depth, true; }
  bool key(string_t& k) override { return count += depth == 1 && k == "rows", true; }
  bool end_object() override { return --depth, true; }
  bool start_array(std::size_t) override { return ++depth, true; }
  bool end_array() override { return --depth, true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using OJson = nlohmann::ordered_json;
  if (size == 0) return 0;
  const bool field = data[0] & 1;
  const size_t chunk = (data[0] >> 1) + 1;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);

  std::vector<OJson> streamed;
  bool ok = true, twice = false;
  try {
    std::istringstream in(text);
    kaival::eval::JsonArrayReader r(in, "fuzz.json", field ? "rows" : "", chunk);
    while (auto j = r.next()) streamed.push_back(std::move(*j));
  } catch (const kaival::Error& e) {
    ok = false;
    twice = e.problem().find("appears twice") != std::string::npos;
  }

  // nlohmann's lexer takes a NUL byte for the end of input, so its whole-file parse would
  // accept garbage after one; the stream refuses a NUL anywhere outside a skipped string.
  if (text.find('\0') != std::string::npos) {
    if (!field && ok) std::abort();
    return 0;
  }

  // The whole-file reference.
  OJson whole = OJson::parse(text, nullptr, /*allow_exceptions=*/false);
  const OJson* list = nullptr;
  if (!whole.is_discarded()) {
    if (!field && whole.is_array()) list = &whole;
    if (field && whole.is_object() && whole.contains("rows") && whole["rows"].is_array()) list = &whole["rows"];
  }
  bool objects = list != nullptr;
  if (list)
    for (const auto& r : *list) objects = objects && r.is_object();
  if (objects) {
    // A valid file must stream, record for record.
    if (!ok && twice) return 0;
    if (!ok && field) {
      RowsKeys keys;
      OJson::sax_parse(text, &keys);
      if (keys.count > 1) return 0;  // the stream refuses (or takes the first of) duplicate keys
    }
    if (!ok || streamed.size() != list->size()) std::abort();
    for (size_t i = 0; i < streamed.size(); ++i)
      if (streamed[i] != (*list)[i]) std::abort();
  } else if (!field && ok) {
    std::abort();  // a root list was streamed from a file that is not a list of objects
  }
  return 0;
}
