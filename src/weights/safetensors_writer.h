#pragma once
// A small safetensors writer: F32 / F16 / BF16 tensors from F32 values, laid
// out in the order given, header padded to 8 bytes. Used to write derived
// test models (permuted, rotated, pruned, ...) and benchmark inputs.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace kaival::weights {

struct TensorToWrite {
  std::string name;
  std::string dtype = "F32";  // "F32", "F16" or "BF16"
  std::vector<int64_t> shape;
  std::vector<float> values;  // numel values, row-major
};

// Throws IoError naming the file when it cannot be written, and
// UnsupportedError for other dtypes or a shape that disagrees with the values.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Streaming form for large files: `produce(i, values)` fills the values of
// tensor i (shape and dtype from `specs[i]`, values ignored there) just before
// it is written, so only one tensor is in memory at a time.
void write_safetensors_streaming(const std::string& path, const std::vector<TensorToWrite>& specs,
                                 const std::function<void(size_t, std::vector<float>&)>& produce,
                                 const std::map<std::string, std::string>& metadata = {});

}  // namespace kaival::weights
