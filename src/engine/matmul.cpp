#include "engine/matmul.h"

#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/numeric.h"
#include "engine/qdot.h"
#include "weights/checkpoint.h"

namespace kaival::engine {

// ---- worker pool -------------------------------------------------------------

WorkerPool::WorkerPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(mu_);
    quit_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

namespace {
// Polls before sleeping on a condition variable: about 20-50 us (pause is
// ~10-140 cycles depending on the core), short enough not to matter when
// the machine is busy, long enough to cover the gap between two products.
constexpr int kSpinPolls = 4096;
inline void cpu_relax() { _mm_pause(); }
}  // namespace

void WorkerPool::run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (workers_.empty() || n <= grain) {
    fn(0, n);
    return;
  }
  std::lock_guard run_lock(run_mu_);
  {
    std::lock_guard lock(mu_);
    fn_ = &fn;
    n_ = n;
    grain_ = grain;
    next_ = 0;
    pending_.store(n, std::memory_order_relaxed);
    error_ = nullptr;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  work_on_current();
  for (int i = 0; i < kSpinPolls && pending_.load(std::memory_order_acquire) != 0; ++i) cpu_relax();
  std::exception_ptr error;
  {
    std::unique_lock lock(mu_);
    done_.wait(lock, [&] { return pending_.load(std::memory_order_relaxed) == 0; });
    fn_ = nullptr;
    error = error_;
  }
  if (error) std::rethrow_exception(error);
}

void WorkerPool::work_on_current() {
  for (;;) {
    const std::function<void(int64_t, int64_t)>* fn;
    int64_t begin, end;
    {
      std::lock_guard lock(mu_);
      if (!fn_ || next_ >= n_) return;
      fn = fn_;
      begin = next_;
      // A share of what is left, in multiples of the grain: large chunks
      // first, small ones at the end, so no thread is left with a long one
      // while the others wait (and a slow thread on a shared machine).
      const int64_t left = n_ - begin, share = left / (2 * threads());
      const int64_t chunk = std::max<int64_t>(1, share / grain_) * grain_;
      end = left - chunk < grain_ ? n_ : begin + chunk;
      next_ = end;
    }
    try {
      (*fn)(begin, end);
    } catch (...) {
      std::lock_guard lock(mu_);
      if (!error_) error_ = std::current_exception();
    }
    if (pending_.fetch_sub(end - begin, std::memory_order_acq_rel) == end - begin) {
      std::lock_guard lock(mu_);  // the caller checks pending_ under mu_ before it sleeps
      done_.notify_all();
    }
  }
}

void WorkerPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    for (int i = 0; i < kSpinPolls && generation_.load(std::memory_order_acquire) == seen &&
                    !quit_.load(std::memory_order_relaxed);
         ++i)
      cpu_relax();
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return quit_ || generation_.load(std::memory_order_relaxed) != seen; });
      if (quit_) return;
      seen = generation_.load(std::memory_order_relaxed);
    }
    work_on_current();
  }
}

// ---- dot kernels -----------------------------------------------------------

namespace {

float dot_portable(const float* a, const float* b, int64_t n) {
  float s[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] += a[i + k] * b[i + k];
  float r = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}

__attribute__((target("avx2,fma"))) float dot_avx2(const float* a, const float* b, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  const __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  float r = _mm_cvtss_f32(h);
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}

__attribute__((target("avx512f"))) float dot_avx512(const float* a, const float* b, int64_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
    s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
  }
  for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
  float r = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}

// 4x4 blocks of dot products: out[i * ldo + j] = dot(a_i, b_j) for rows a_0..a_3
// (stride lda) and b_0..b_3 (stride ldb) of length n. Each loaded vector
// feeds four FMAs, which a single dot cannot do.
__attribute__((target("avx512f"))) void dot4x4_avx512(const float* a, int64_t lda, const float* b, int64_t ldb,
                                                        int64_t n, float* out, int64_t ldo) {
  __m512 acc[4][4];
  for (auto& row : acc)
    for (auto& v : row) v = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m512 b0 = _mm512_loadu_ps(b + k), b1 = _mm512_loadu_ps(b + ldb + k),
                 b2 = _mm512_loadu_ps(b + 2 * ldb + k), b3 = _mm512_loadu_ps(b + 3 * ldb + k);
    for (int i = 0; i < 4; ++i) {
      const __m512 ai = _mm512_loadu_ps(a + i * lda + k);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
      acc[i][2] = _mm512_fmadd_ps(ai, b2, acc[i][2]);
      acc[i][3] = _mm512_fmadd_ps(ai, b3, acc[i][3]);
    }
  }
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      float r = _mm512_reduce_add_ps(acc[i][j]);
      for (int64_t t = k; t < n; ++t) r += a[i * lda + t] * b[j * ldb + t];
      out[i * ldo + j] = r;
    }
}

__attribute__((target("avx2,fma"))) void dot4x4_avx2(const float* a, int64_t lda, const float* b, int64_t ldb,
                                                       int64_t n, float* out, int64_t ldo) {
  __m256 acc[4][4];
  for (auto& row : acc)
    for (auto& v : row) v = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256 b0 = _mm256_loadu_ps(b + k), b1 = _mm256_loadu_ps(b + ldb + k),
                 b2 = _mm256_loadu_ps(b + 2 * ldb + k), b3 = _mm256_loadu_ps(b + 3 * ldb + k);
    for (int i = 0; i < 4; ++i) {
      const __m256 ai = _mm256_loadu_ps(a + i * lda + k);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
      acc[i][2] = _mm256_fmadd_ps(ai, b2, acc[i][2]);
      acc[i][3] = _mm256_fmadd_ps(ai, b3, acc[i][3]);
    }
  }
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      const __m256 v = acc[i][j];
      __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
      h = _mm_add_ps(h, _mm_movehl_ps(h, h));
      h = _mm_add_ss(h, _mm_movehdup_ps(h));
      float r = _mm_cvtss_f32(h);
      for (int64_t t = k; t < n; ++t) r += a[i * lda + t] * b[j * ldb + t];
      out[i * ldo + j] = r;
    }
}

void dot4x4_portable(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t n, float* out, int64_t ldo) {
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) out[i * ldo + j] = dot_portable(a + i * lda, b + j * ldb, n);
}

// F16 weight rows times F32 activations for decode-sized products (1..3
// input rows): R (1..4) consecutive weight rows, each converted 16 (AVX-512)
// or 8 (AVX2) halves at a time straight from the packed matrix and multiplied
// into all N activation rows, with no staging buffer; the loop is bound by
// the weights' memory traffic. Every (weight row, input row) pair has its own
// accumulator and the same instruction sequence whatever R and N are, so a
// result does not depend on the rows around it. Tail columns: scalar fma.
inline float f16_tail(const uint8_t* w, const float* x, int64_t from, int64_t cols, float r) {
  for (int64_t k = from; k < cols; ++k) {
    uint16_t h;
    std::memcpy(&h, w + 2 * k, 2);
    r = std::fma(f16_to_f32(h), x[k], r);
  }
  return r;
}

template <int R, int N>
__attribute__((target("avx512f,f16c,fma"))) void f16_block_avx512(const uint8_t* w, size_t ldw, const float* x,
                                                                   int64_t cols, float* y, int64_t ldy) {
  __m512 acc[R][N];
  for (auto& row : acc)
    for (auto& v : row) v = _mm512_setzero_ps();
  int64_t c = 0;
  for (; c + 16 <= cols; c += 16) {
    __m512 xv[N];
    for (int t = 0; t < N; ++t) xv[t] = _mm512_loadu_ps(x + t * cols + c);
    for (int r = 0; r < R; ++r) {
      const __m512 wv = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * ldw + 2 * c)));
      for (int t = 0; t < N; ++t) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < N; ++t)
      y[t * ldy + r] = f16_tail(w + r * ldw, x + t * cols, c, cols, _mm512_reduce_add_ps(acc[r][t]));
}

template <int R, int N>
__attribute__((target("avx2,f16c,fma"))) void f16_block_avx2(const uint8_t* w, size_t ldw, const float* x,
                                                              int64_t cols, float* y, int64_t ldy) {
  __m256 acc[R][N];
  for (auto& row : acc)
    for (auto& v : row) v = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 8 <= cols; c += 8) {
    __m256 xv[N];
    for (int t = 0; t < N; ++t) xv[t] = _mm256_loadu_ps(x + t * cols + c);
    for (int r = 0; r < R; ++r) {
      const __m256 wv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + r * ldw + 2 * c)));
      for (int t = 0; t < N; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < N; ++t) {
      const __m256 v = acc[r][t];
      __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
      h = _mm_add_ps(h, _mm_movehl_ps(h, h));
      h = _mm_add_ss(h, _mm_movehdup_ps(h));
      y[t * ldy + r] = f16_tail(w + r * ldw, x + t * cols, c, cols, _mm_cvtss_f32(h));
    }
}

// y[t * ldy + r] for weight rows r < rows (1..4) and input rows t < n (1..3).
using F16RowsFn = void (*)(const uint8_t* w, size_t ldw, int64_t rows, const float* x, int64_t n, int64_t cols,
                           float* y, int64_t ldy);

template <template <int, int> class B>
void f16_rows(const uint8_t* w, size_t ldw, int64_t rows, const float* x, int64_t n, int64_t cols, float* y,
              int64_t ldy) {
  using Fn = void (*)(const uint8_t*, size_t, const float*, int64_t, float*, int64_t);
  static constexpr Fn table[4][3] = {
      {B<1, 1>::fn, B<1, 2>::fn, B<1, 3>::fn},
      {B<2, 1>::fn, B<2, 2>::fn, B<2, 3>::fn},
      {B<3, 1>::fn, B<3, 2>::fn, B<3, 3>::fn},
      {B<4, 1>::fn, B<4, 2>::fn, B<4, 3>::fn},
  };
  table[rows - 1][n - 1](w, ldw, x, cols, y, ldy);
}

template <int R, int N>
struct F16Avx512 {
  static constexpr auto fn = f16_block_avx512<R, N>;
};
template <int R, int N>
struct F16Avx2 {
  static constexpr auto fn = f16_block_avx2<R, N>;
};

using DotFn = float (*)(const float*, const float*, int64_t);
using Dot4x4Fn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, float*, int64_t);

struct DotKernel {
  DotFn fn;
  Dot4x4Fn fn4x4;
  F16RowsFn f16;  // nullptr: decode F16 rows and use fn
  std::string_view name;
};

DotKernel pick_dot() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("f16c"))
    return {dot_avx512, dot4x4_avx512, f16_rows<F16Avx512>, "avx512"};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return {dot_avx2, dot4x4_avx2, f16_rows<F16Avx2>, "avx2"};
  return {dot_portable, dot4x4_portable, nullptr, "portable"};
}

const DotKernel& dot_kernel() {
  static const DotKernel k = pick_dot();  // immutable once chosen
  return k;
}

// Products with at least this many input rows decode a tile of weight rows
// once and run blocked dot products over it; fewer rows decode each weight
// row next to its dots.
constexpr int64_t kTileMinRows = 4;
constexpr int64_t kTileRows = 16;
// Integer path: weight rows per tile, activation rows per kernel call.
constexpr int64_t kQTileRows = 32;
constexpr int64_t kQGroup = 8;

}  // namespace

float dot(const float* a, const float* b, int64_t n) { return dot_kernel().fn(a, b, n); }
std::string_view dot_isa() { return dot_kernel().name; }

// ---- weight matrices ---------------------------------------------------------

WeightMatrix WeightMatrix::f32(int64_t rows, int64_t cols, std::vector<float> data) {
  if (rows <= 0 || cols <= 0 || data.size() != static_cast<size_t>(rows * cols))
    fail("weight matrix", "F32 data of {} floats does not match [{}, {}]", data.size(), rows, cols);
  WeightMatrix m;
  m.rows_ = rows;
  m.cols_ = cols;
  m.row_bytes_ = static_cast<size_t>(cols) * 4;
  m.f32_ = std::move(data);
  return m;
}

WeightMatrix WeightMatrix::packed(weights::DType type, int64_t rows, int64_t cols, std::vector<uint8_t> data) {
  const auto& tr = weights::traits(type);
  if (!tr.is_float || tr.block_elems == 0 || rows <= 0 || cols <= 0 || cols % tr.block_elems != 0)
    fail("weight matrix", "cannot pack [{}, {}] as {}", rows, cols, tr.name);
  WeightMatrix m;
  m.type_ = type;
  m.rows_ = rows;
  m.cols_ = cols;
  m.row_bytes_ = static_cast<size_t>(cols / tr.block_elems) * tr.block_bytes;
  if (data.size() != m.row_bytes_ * static_cast<size_t>(rows))
    fail("weight matrix", "{} data of {} bytes does not match [{}, {}]", tr.name, data.size(), rows, cols);
  m.packed_ = std::move(data);
  std::vector<float> probe(static_cast<size_t>(cols));
  m.row(0, probe.data());  // a type without a decoder fails here, at load
  return m;
}

void WeightMatrix::row(int64_t r, float* out) const {
  if (type_ == weights::DType::F32) {
    std::copy_n(f32_.data() + r * cols_, cols_, out);
    return;
  }
  weights::dequantize(type_, packed_.data() + static_cast<size_t>(r) * row_bytes_, cols_, out);
}

void WeightMatrix::matmul_many(std::span<const WeightMatrix* const> ms, const float* x, int64_t n,
                               std::span<float* const> ys, WorkerPool& pool) {
  if (ms.size() != ys.size()) fail("weight matrix", "{} matrices for {} outputs", ms.size(), ys.size());
  bool shared = !ms.empty() && qdot::supported(ms[0]->type_);
  for (const WeightMatrix* m : ms)
    shared = shared && m->type_ == ms[0]->type_ && m->cols_ == ms[0]->cols_ && !m->empty();
  if (!shared || n <= 0) {
    for (size_t i = 0; i < ms.size(); ++i) ms[i]->matmul(x, n, ys[i], pool);
    return;
  }
  int_matmul(ms, x, n, ys, pool);
}

void WeightMatrix::int_matmul(std::span<const WeightMatrix* const> ms, const float* x, int64_t n,
                              std::span<float* const> ys, WorkerPool& pool) {
  // Integer dots, any number of rows: the activations are quantized to 8
  // bits once (rows in parallel), then each packed weight row is multiplied
  // without decoding it (about a quarter of the F32 path's instructions),
  // against up to eight activation rows per pass. A worker takes kQTileRows
  // weight rows (a few KiB, L1/L2-resident) and sweeps all activation rows
  // over them, so each group of activations is loaded once per tile. A row's
  // result does not depend on n or on the tiling (see qdot::rows_kernel).
  // Types with a tile kernel (Q4_K at the VNNI level) get the whole tile per
  // call, so the activation side is prepared once per tile. Error: the
  // activations' rounding, at most half a step of max|x| / 127 per activation
  // block (256 values; see qdot.h).
  const weights::DType type = ms[0]->type_;
  const int64_t cols = ms[0]->cols_;
  const qdot::Isa isa = qdot::best_isa();
  const qdot::RowsFn flipped = qdot::rows_kernel_flipped(isa, type);  // same bits, one XOR fewer per step
  const qdot::RowsFn kernel = flipped ? flipped : qdot::rows_kernel(isa, type);
  const qdot::TileFn tile = qdot::tile_kernel(isa, type);
  // Reused per thread: a fresh buffer per product cost page faults and zeroing (a few % of prefill).
  // (A reference: the workers must read this thread's buffer, not their own thread_local.)
  thread_local qdot::Q8Rows tls_xq;
  qdot::Q8Rows& xq = tls_xq;
  xq.shape(isa, n, cols, qdot::activation_block(type), flipped != nullptr);
  pool.run(n, std::max<int64_t>(1, (int64_t{1} << 14) / cols),
           [&](int64_t begin, int64_t end) { xq.quantize_rows(isa, x, begin, end); });
  // Work items: tiles of kQTileRows weight rows, the matrices' tiles one after another.
  std::vector<int64_t> first(ms.size() + 1, 0);  // first tile of each matrix
  for (size_t i = 0; i < ms.size(); ++i) first[i + 1] = first[i] + (ms[i]->rows_ + kQTileRows - 1) / kQTileRows;
  // Chunks of at least ~64K weights: smaller ones cost more to hand out than to compute.
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / (cols * kQTileRows));
  pool.run(first.back(), grain, [&](int64_t begin, int64_t end) {
    size_t mi = 0;
    for (int64_t ti = begin; ti < end; ++ti) {
      while (ti >= first[mi + 1]) ++mi;
      const WeightMatrix& m = *ms[mi];
      float* y = ys[mi];
      const int64_t rows = m.rows_;
      const int64_t r0 = (ti - first[mi]) * kQTileRows, r1 = std::min(rows, r0 + kQTileRows);
      const uint8_t* w = m.packed_.data() + static_cast<size_t>(r0) * m.row_bytes_;
      for (int64_t t = 0; t < n; t += kQGroup) {
        const int64_t tn = std::min(kQGroup, n - t);
        if (tile) {
          // Same bits per (weight row, activation row) as kernel().
          tile(w, m.row_bytes_, r1 - r0, xq.q(t), xq.d(t), xq.bsum(t), cols, tn, y + t * rows + r0, rows);
          continue;
        }
        for (int64_t r = r0; r < r1; ++r)
          kernel(m.packed_.data() + static_cast<size_t>(r) * m.row_bytes_, xq.q(t), xq.d(t), xq.bsum(t), cols, tn,
                 y + t * rows + r, rows);
      }
    }
  });
}

void WeightMatrix::matmul(const float* x, int64_t n, float* y, WorkerPool& pool) const {
  if (n <= 0) return;
  const int out = static_cast<int>(rows_), in = static_cast<int>(cols_);
  if (type_ == weights::DType::F32) {
    if (n == 1)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, f32_.data(), in, x, 1, 0.0f, y, 1);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), out, in, 1.0f, x, in, f32_.data(),
                  in, 0.0f, y, out);
    return;
  }
  if (qdot::supported(type_)) {
    const WeightMatrix* self = this;
    int_matmul(std::span(&self, 1), x, n, std::span(&y, 1), pool);
    return;
  }
  if (type_ == weights::DType::F16 && n < kTileMinRows && dot_kernel().f16) {
    // Decode over F16: fused convert + multiply, one weight row per call (one
    // sequential stream: on a 100 MB matrix four interleaved rows per call
    // read 18 GB/s, one row 22 GB/s on this machine; the kernel takes up to 4).
    const F16RowsFn kernel = dot_kernel().f16;
    pool.run(rows_, std::max<int64_t>(16, (int64_t{1} << 16) / cols_), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        kernel(packed_.data() + static_cast<size_t>(r) * row_bytes_, row_bytes_, 1, x, n, cols_, y + r, rows_);
    });
    return;
  }
  if (n < kTileMinRows) {
    // Decode: each weight row is decoded into L1 and used at once; memory
    // traffic is the packed size.
    // Chunks of at least ~64K weights: smaller ones cost more to hand out than to compute.
    pool.run(rows_, std::max<int64_t>(16, (int64_t{1} << 16) / cols_), [&](int64_t begin, int64_t end) {
      std::vector<float> w(static_cast<size_t>(cols_));
      for (int64_t r = begin; r < end; ++r) {
        row(r, w.data());
        for (int64_t t = 0; t < n; ++t) y[t * rows_ + r] = dot(x + t * cols_, w.data(), cols_);
      }
    });
    return;
  }
  // Prompt batches: each worker decodes kTileRows weight rows (L2-resident)
  // and sweeps all n inputs over them in 4x4 blocks. Our own pool does all of
  // it, so BLAS threads never compete with it for the cores.
  const auto kernel = dot_kernel().fn4x4;
  pool.run((rows_ + kTileRows - 1) / kTileRows, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> w(static_cast<size_t>(kTileRows * cols_));
    float block[16];
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t r0 = tile * kTileRows, tr = std::min(kTileRows, rows_ - r0);
      for (int64_t r = 0; r < tr; ++r) row(r0 + r, w.data() + r * cols_);
      for (int64_t t = 0; t < n; t += 4) {
        const int64_t tn = std::min<int64_t>(4, n - t);
        for (int64_t r = 0; r < tr; r += 4) {
          const int64_t rn = std::min<int64_t>(4, tr - r);
          if (tn == 4 && rn == 4) {
            kernel(x + t * cols_, cols_, w.data() + r * cols_, cols_, cols_, y + t * rows_ + r0 + r, rows_);
            continue;
          }
          for (int64_t i = 0; i < tn; ++i)
            for (int64_t j = 0; j < rn; ++j)
              block[i * 4 + j] = dot(x + (t + i) * cols_, w.data() + (r + j) * cols_, cols_);
          for (int64_t i = 0; i < tn; ++i)
            for (int64_t j = 0; j < rn; ++j) y[(t + i) * rows_ + r0 + r + j] = block[i * 4 + j];
        }
      }
    }
  });
}

}  // namespace kaival::engine
