// Fuzz target: GGUF header, metadata and tensor infos, then the metadata JSON
// and the dequantization of every (small) decodable tensor. Any kaival::Error
// is an expected outcome; anything else (crash, sanitizer report, other
// exception) is a bug.
#include <cstdint>
#include <span>
#include <vector>

#include "core/error.h"
#include "weights/checkpoint.h"
#include "weights/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kaival::weights;
  std::span<const uint8_t> bytes(data, size);
  std::shared_ptr<GgufFile> g;
  try {
    g = GgufFile::parse(bytes, "fuzz.gguf");
  } catch (const kaival::Error&) {
    return 0;
  }
  (void)g->metadata_json().dump();
  (void)g->get_strings("tokenizer.ggml.tokens");
  (void)g->get_floats("tokenizer.ggml.scores");
  (void)g->get_ints("tokenizer.ggml.token_type");
  std::vector<float> out;
  for (const TensorInfo& t : g->tensors) {
    if (t.dtype == DType::Unsupported || t.nbytes > (1u << 20)) continue;
    // The parser validated offset + nbytes against the input size.
    if (t.offset > size || t.nbytes > size - t.offset) __builtin_trap();
    int64_t n = t.numel();
    out.resize(static_cast<size_t>(n));
    dequantize(t.dtype, data + t.offset, n, out.data());
  }
  return 0;
}
