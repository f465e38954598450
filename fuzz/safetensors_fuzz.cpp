// Fuzz target: the safetensors header parser and the shard index parser on
// untrusted bytes. Whatever the parser accepts must describe tensors that lie
// inside the input and decode without reading past it.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "weights/checkpoint.h"
#include "weights/safetensors.h"

using namespace kaival::weights;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    SafetensorsFile f = parse_safetensors({data, size}, "fuzz.safetensors");
    std::vector<float> buf;
    for (const TensorInfo& t : f.tensors) {
      if (t.offset > size || t.nbytes > size - t.offset) std::abort();  // accepted a lie
      if (t.dtype == DType::Unsupported) continue;
      auto need = byte_size(t.dtype, static_cast<uint64_t>(t.numel()));
      if (!need || *need != t.nbytes) std::abort();
      if (t.numel() > (1 << 16)) continue;  // keep iterations fast
      buf.resize(static_cast<size_t>(t.numel()));
      dequantize(t.dtype, data + t.offset, t.numel(), buf.data());
    }
  } catch (const kaival::Error&) {
  }
  try {
    parse_shard_index({reinterpret_cast<const char*>(data), size}, "fuzz.index.json");
  } catch (const kaival::Error&) {
  }
  return 0;
}
