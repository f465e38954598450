#include "weights/tensor.h"

// PLACEHOLDER: replaced by the roles work in progress.
namespace kaival::weights {
std::string_view role_kind_name(RoleKind) { return "unknown"; }
std::string role_name(const Role&) { return "unknown"; }
std::string component_name(const Role&) { return "other"; }
int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}
int64_t TensorInfo::cols() const { return shape.empty() ? 1 : shape.back(); }
int64_t TensorInfo::rows() const { return cols() == 0 ? 0 : numel() / cols(); }
}  // namespace kaival::weights
