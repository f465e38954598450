#include "weights/safetensors_writer.h"

#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/numeric.h"

namespace kaival::weights {

namespace {

size_t element_size(const std::string& dtype, const std::string& path, const std::string& name) {
  if (dtype == "F32") return 4;
  if (dtype == "F16" || dtype == "BF16") return 2;
  fail<UnsupportedError>(path, "cannot write dtype {} (tensor {})", dtype, name);
}

void append_values(std::string& out, const TensorToWrite& t) {
  if (t.dtype == "F32") {
    for (float v : t.values) {
      uint32_t b = bits_from_f32(v);
      for (int k = 0; k < 4; ++k) out.push_back(static_cast<char>((b >> (8 * k)) & 0xff));
    }
    return;
  }
  for (float v : t.values) {
    uint16_t h = t.dtype == "BF16" ? f32_to_bf16(v) : f32_to_f16(v);
    out.push_back(static_cast<char>(h & 0xff));
    out.push_back(static_cast<char>(h >> 8));
  }
}

}  // namespace

void write_safetensors_streaming(const std::string& path, const std::vector<TensorToWrite>& specs,
                                 const std::function<void(size_t, std::vector<float>&)>& produce,
                                 const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<int64_t> numels;
  for (const auto& t : specs) {
    int64_t numel = 1;
    for (auto d : t.shape) {
      if (d < 0) fail<UnsupportedError>(path, "negative dimension in tensor {}", t.name);
      numel *= d;
    }
    numels.push_back(numel);
    uint64_t bytes = static_cast<uint64_t>(numel) * element_size(t.dtype, path, t.name);
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string h = header.dump();
  while (h.size() % 8) h.push_back(' ');
  std::ofstream f(path, std::ios::binary);
  if (!f) fail<IoError>(path, "cannot open for writing");
  std::string out;
  uint64_t n = h.size();
  for (int k = 0; k < 8; ++k) out.push_back(static_cast<char>((n >> (8 * k)) & 0xff));
  out += h;
  f.write(out.data(), static_cast<std::streamsize>(out.size()));
  TensorToWrite t;
  for (size_t i = 0; i < specs.size(); ++i) {
    t.dtype = specs[i].dtype;
    t.values.clear();
    produce(i, t.values);
    if (static_cast<int64_t>(t.values.size()) != numels[i])
      fail<UnsupportedError>(path, "tensor {} has {} values for shape of {} elements", specs[i].name, t.values.size(),
                             numels[i]);
    out.clear();
    append_values(out, t);
    f.write(out.data(), static_cast<std::streamsize>(out.size()));
    if (!f) fail<IoError>(path, "write failed");
  }
  f.close();
  if (!f) fail<IoError>(path, "write failed");
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_safetensors_streaming(
      path, tensors, [&](size_t i, std::vector<float>& v) { v = tensors[i].values; }, metadata);
}

}  // namespace kaival::weights
