#pragma once
// PyTorch checkpoints as torch.save writes them (PyTorch >= 1.6): a zip archive
// holding ARCHIVE/data.pkl (a pickle of the state dict whose tensors refer to
// storages by persistent id) and ARCHIVE/data/KEY (raw storage bytes, stored
// uncompressed, so they are read in place through the file mapping).
//
// The pickle is read by a restricted unpickler: it knows only the opcodes and
// the handful of globals that state dicts use, builds plain data, and never
// imports or calls anything. Any other global (os.system, builtins.eval, ...)
// is refused.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/mmap.h"
#include "weights/tensor.h"

namespace kaival::weights {

// One tensor of an unpickled state dict, still in terms of its storage.
struct PickledTensor {
  std::string name;          // dict keys joined with '.' for nested dicts
  DType dtype = DType::F32;
  std::string storage_type;  // "FloatStorage", "BFloat16Storage", ...
  std::string storage_key;   // the storage's entry name under ARCHIVE/data/
  int64_t storage_numel = 0; // elements in the storage, as the pickle says
  int64_t storage_offset = 0;  // in elements
  std::vector<int64_t> shape;
  std::vector<int64_t> stride;
};

struct UnpickleLimits {
  size_t max_stack = 1u << 20;    // values on the stack
  size_t max_memo = 1u << 20;     // memo entries
  size_t max_objects = 1u << 22;  // values created in total
  int max_depth = 16;             // nesting of dicts walked for tensors
};

// Unpickles a state dict from memory. `where` names the input in errors.
// Throws FormatError for malformed pickles and UnsupportedError for opcodes
// or globals outside the allowed set.
std::vector<PickledTensor> unpickle_state_dict(std::span<const uint8_t> pickle, const std::string& where,
                                               const UnpickleLimits& limits = {});

// Reads a torch.save zip archive mapped in `f`: locates data.pkl and the
// storages, unpickles, and maps each tensor to an absolute byte range of the
// file (contiguous tensors only; a non-contiguous one is a clear error).
std::vector<TensorInfo> read_pytorch_zip(const MappedFile& f, uint32_t file_index = 0);

}  // namespace kaival::weights
