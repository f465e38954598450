// Fuzz target: config.json bytes -> Architecture, then role assignment over
// names taken from the same bytes. Malformed JSON is rejected by the parser
// without exceptions; everything else must end in a kaival::Error at worst.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "weights/architecture.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kaival::weights;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Architecture arch;
  auto config = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (!config.is_discarded()) {
    try {
      arch = architecture_from_config(config, "fuzz/config.json");
      (void)arch.to_json().dump();
    } catch (const kaival::Error&) {
      arch = Architecture{};
    }
  }
  // Every line (and every JSON key) doubles as a tensor name.
  std::vector<TensorInfo> tensors;
  size_t start = 0;
  while (start <= bytes.size() && tensors.size() < 4096) {
    size_t nl = bytes.find('\n', start);
    if (nl == std::string_view::npos) nl = bytes.size();
    TensorInfo t;
    t.name = std::string(bytes.substr(start, nl - start));
    tensors.push_back(std::move(t));
    start = nl + 1;
  }
  if (config.is_object())
    for (auto it = config.begin(); it != config.end(); ++it) {
      TensorInfo t;
      t.name = it.key();
      tensors.push_back(std::move(t));
    }
  for (bool gguf : {false, true}) {
    assign_roles(tensors, arch, gguf);
    for (const auto& t : tensors) {
      (void)role_name(t.role);
      (void)component_name(t.role);
    }
  }
  return 0;
}
