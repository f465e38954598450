#pragma once
// Matrix products over weights kept in their stored type (F16, BF16, Q8_0,
// Q4_0, Q4_K, Q6_K, ... any type weights::dequantize decodes): rows are
// decoded on the fly next to the dot products, so a GGUF model takes about its
// file size in memory instead of 4 bytes per weight. Work is spread over a
// persistent worker pool; the dot kernels pick AVX-512 / AVX2+FMA / portable
// code at run time. Products over Q8_0, Q4_0, Q4_K and Q6_K weights (any
// number of rows) quantize x to 8 bits and use integer dots instead
// (engine/qdot.h): their results carry the activations' rounding error, and
// each row's result is the same whatever n is.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string_view>
#include <thread>
#include <vector>

#include "weights/dtype.h"

namespace kaival::engine {

// Runs index ranges on a fixed set of threads (the caller is one of them).
// One run() at a time: concurrent callers (server requests) take turns, which
// keeps the cores from being oversubscribed.
class WorkerPool {
 public:
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  // Calls fn(begin, end) on disjoint chunks covering [0, n), chunks of at
  // least `grain` items (multiples of it but the last), and returns when all
  // are done. Exceptions from fn are rethrown in the caller (the first one).
  // Chunks shrink as the range runs out (each takes a share of what is
  // left), so the threads finish close together.
  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void worker_loop();
  void work_on_current();

  std::vector<std::thread> workers_;
  std::mutex run_mu_;  // one run() at a time
  std::mutex mu_;
  std::condition_variable wake_, done_;
  // Written under mu_; read without it by threads spinning briefly before
  // they sleep (a forward pass hands out hundreds of jobs per second, and a
  // condition-variable wake-up costs tens of microseconds).
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> quit_{false};
  std::atomic<int64_t> pending_{0};  // items of the current job not finished yet
  // The current job (valid while a run() is in flight).
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, grain_ = 1, next_ = 0;
  std::exception_ptr error_;
};

// Dot product kernels, chosen once for this CPU.
float dot(const float* a, const float* b, int64_t n);
std::string_view dot_isa();  // "avx512", "avx2", "portable"

// A [rows, cols] weight matrix in HF nn.Linear layout, stored as F32 or packed
// in a block type row by row (each row starts on a block boundary).
class WeightMatrix {
 public:
  WeightMatrix() = default;
  static WeightMatrix f32(int64_t rows, int64_t cols, std::vector<float> data);
  // `data`: rows * row_bytes bytes of `type`; cols must be a multiple of its block.
  static WeightMatrix packed(weights::DType type, int64_t rows, int64_t cols, std::vector<uint8_t> data);

  bool empty() const { return rows_ == 0; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  weights::DType type() const { return type_; }
  size_t bytes() const { return type_ == weights::DType::F32 ? f32_.size() * 4 : packed_.size(); }

  // Row r decoded to F32 (cols floats).
  void row(int64_t r, float* out) const;
  // y[n, rows] = x[n, cols] W^T.
  void matmul(const float* x, int64_t n, float* y, WorkerPool& pool) const;
  // ys[i][n, ms[i]->rows()] = x[n, cols] ms[i]^T for matrices over the same
  // input (Q, K and V; gate and up): when they share an integer-kernel type
  // and width, x is quantized once and one pool job covers all their rows.
  // Same results as one matmul() each.
  static void matmul_many(std::span<const WeightMatrix* const> ms, const float* x, int64_t n,
                          std::span<float* const> ys, WorkerPool& pool);

 private:
  // The integer path of matmul / matmul_many (qdot::supported types, same type and cols).
  static void int_matmul(std::span<const WeightMatrix* const> ms, const float* x, int64_t n,
                         std::span<float* const> ys, WorkerPool& pool);

  weights::DType type_ = weights::DType::F32;
  int64_t rows_ = 0, cols_ = 0;
  size_t row_bytes_ = 0;
  std::vector<float> f32_;
  std::vector<uint8_t> packed_;
};

}  // namespace kaival::engine
