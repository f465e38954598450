// Fuzz target: the Parquet reader (footer, schema, pages, decompression, levels, dictionary,
// row assembly) on arbitrary bytes. Any kaival::Error is an expected outcome; anything else
// (crash, sanitizer report, other exception) is a bug. Small limits keep each input cheap.
#include <cstdint>
#include <span>

#include "core/error.h"
#include "eval/parquet.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kaival::eval::ParquetLimits lim;
  lim.max_group_rows = 1 << 14;
  lim.max_chunk_values = 1 << 16;
  lim.max_page_bytes = 1 << 22;
  lim.max_expanded_bytes = 1 << 22;
  try {
    kaival::eval::ParquetReader r(std::span<const uint8_t>(data, size), "fuzz.parquet", lim);
    (void)r.codecs();
    while (auto row = r.next()) (void)row->dump();
  } catch (const kaival::Error&) {
  }
  return 0;
}
