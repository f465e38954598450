#include "weights/gguf.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

// PLACEHOLDER: replaced by the GGUF reader work in progress.
namespace kaival::weights {
std::shared_ptr<GgufFile> GgufFile::parse(const MappedFile& f, uint32_t) {
  fail<UnsupportedError>(f.path(), "GGUF reader not built yet");
}
const GgufValue* GgufFile::get(const std::string&) const { return nullptr; }
std::optional<std::string> GgufFile::get_string(const std::string&) const { return std::nullopt; }
std::optional<int64_t> GgufFile::get_int(const std::string&) const { return std::nullopt; }
std::optional<double> GgufFile::get_float(const std::string&) const { return std::nullopt; }
std::vector<std::string> GgufFile::get_strings(const std::string&) const { return {}; }
std::vector<float> GgufFile::get_floats(const std::string&) const { return {}; }
std::vector<int64_t> GgufFile::get_ints(const std::string&) const { return {}; }
nlohmann::json GgufFile::metadata_json(bool) const { return nlohmann::json::object(); }
}  // namespace kaival::weights
