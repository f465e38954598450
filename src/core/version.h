#pragma once
#include "core/version_gen.h"

namespace kaival {
// The version string written into every manifest and report.
inline constexpr const char* kVersion = KAIVAL_VERSION;
}  // namespace kaival
