#include "core/hash.h"

#include <sodium.h>

#include "core/error.h"
#include "core/mmap.h"

namespace kaival {

static std::string to_hex(const unsigned char* d, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = digits[d[i] >> 4];
    s[2 * i + 1] = digits[d[i] & 15];
  }
  return s;
}

std::string sha256_hex(std::string_view data) {
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(out, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  return to_hex(out, sizeof out);
}

std::string sha256_file(const std::string& path) {
  MappedFile f(path);
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  const size_t chunk = 8u << 20;
  for (size_t off = 0; off < f.size(); off += chunk) {
    size_t n = std::min(chunk, f.size() - off);
    f.advise_sequential(off, n);
    crypto_hash_sha256_update(&st, f.data() + off, n);
    f.advise_dontneed(off, n);
  }
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&st, out);
  return to_hex(out, sizeof out);
}

}  // namespace kaival
