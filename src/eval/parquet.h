#pragma once
// Apache Parquet reader for task datasets (Hugging Face datasets are mostly Parquet), written
// for kaival: no Arrow. Reads the footer (FileMetaData, Thrift compact protocol), then one row
// group at a time: every leaf column's pages (DATA_PAGE v1/v2, DICTIONARY_PAGE; PLAIN,
// PLAIN_DICTIONARY/RLE_DICTIONARY, RLE for levels and booleans; UNCOMPRESSED, SNAPPY, GZIP,
// ZSTD) are decoded and the rows assembled as JSON objects, one key per top-level column.
//
// Columns: BOOLEAN, INT32, INT64, FLOAT, DOUBLE, BYTE_ARRAY (UTF-8 strings), FIXED_LEN_BYTE_ARRAY
// (DECIMAL as a number, anything else as lowercase hex), optional columns (null), lists of
// primitives (3-level list<element>, 2-level and legacy repeated fields) and structs of those
// (e.g. ARC's choices {text: list<string>, label: list<string>}). Deeper nesting (lists of
// structs, lists of lists, maps), INT96 and DELTA_* / BYTE_STREAM_SPLIT encodings are refused
// with UnsupportedError naming the column and the file.
//
// Hostile input: every offset, length and count is checked against the file and fixed limits;
// a truncated or lying file throws FormatError naming the file and the problem.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kaival::eval {

// Bounds on what one file may make the reader allocate (levels and values are run-length
// encoded, so a few bytes can claim millions of them). Past a bound: FormatError.
struct ParquetLimits {
  uint64_t max_group_rows = 1ull << 22;     // rows in one row group
  uint64_t max_chunk_values = 1ull << 24;   // level entries in one column chunk
  uint64_t max_page_bytes = 256ull << 20;   // one page, uncompressed
  uint64_t max_expanded_bytes = 1ull << 30;  // dictionary strings copied out, per column chunk
};

class ParquetReader {
 public:
  // Memory-maps `path`.
  explicit ParquetReader(const std::string& path, ParquetLimits limits = {});
  // Reads `bytes` (kept by the caller for the reader's lifetime); `where` names it in errors.
  ParquetReader(std::span<const uint8_t> bytes, std::string where, ParquetLimits limits = {});
  ~ParquetReader();
  ParquetReader(ParquetReader&&) noexcept;
  ParquetReader& operator=(ParquetReader&&) noexcept;

  int64_t num_rows() const;
  size_t num_row_groups() const;
  const std::vector<std::string>& columns() const;  // top-level column names
  std::string created_by() const;
  std::vector<std::string> codecs() const;  // compressions its column chunks use (SNAPPY, ...)

  // The next row (a JSON object), decoding the next row group when the current one is used up;
  // nullopt after the last row.
  std::optional<nlohmann::ordered_json> next();
  // Every row of row group `i`.
  std::vector<nlohmann::ordered_json> read_row_group(size_t i);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Every row of a Parquet file.
std::vector<nlohmann::ordered_json> read_parquet(const std::string& path);

}  // namespace kaival::eval
