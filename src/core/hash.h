#pragma once
// Content hashes for manifests: SHA-256 (what people verify by hand with
// sha256sum) of files and strings.
#include <string>
#include <string_view>

namespace kaival {

std::string sha256_hex(std::string_view data);
// Streams the file through a memory mapping; throws IoError naming the file.
std::string sha256_file(const std::string& path);

}  // namespace kaival
