// kaival inspect PATH [--json] [--tensors] [--stats] [--no-scan] [--sha256]
// Describes a checkpoint: format, architecture, parameters, dtypes, tokenizer,
// and warnings (NaN/Inf, all-zero tensors, shapes that disagree with the
// config). Tensor data is streamed in row blocks and released after each
// tensor, so memory stays bounded whatever the model size.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/hash.h"
#include "tokenizer/tokenizer.h"
#include "weights/checkpoint.h"

namespace kaival::cli {

namespace {

using weights::Checkpoint;
using weights::TensorInfo;
using weights::RoleKind;

struct InspectOptions {
  std::string path;
  bool json = false;
  bool tensors = false;
  bool stats = false;
  bool no_scan = false;
  bool sha256 = false;
};

// Streaming statistics over the finite values of a tensor (Chan et al.'s
// pairwise merge of per-block mean and M2), plus counts of the rest.
struct TensorStats {
  bool scanned = false;
  uint64_t finite = 0, nan = 0, inf = 0, zeros = 0;
  double mean = 0, m2 = 0;
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();

  void add_block(const float* v, size_t n) {
    uint64_t cnt = 0, z = 0;
    double sum = 0, lo = min, hi = max;
    for (size_t k = 0; k < n; ++k) {
      float x = v[k];
      if (std::isfinite(x)) {
        ++cnt;
        sum += x;
        z += x == 0.0f;
        lo = std::min<double>(lo, x);
        hi = std::max<double>(hi, x);
      } else if (std::isnan(x)) {
        ++nan;
      } else {
        ++inf;
      }
    }
    min = lo;
    max = hi;
    zeros += z;
    if (cnt == 0) return;
    const double bmean = sum / static_cast<double>(cnt);
    double bm2 = 0;
    for (size_t k = 0; k < n; ++k)
      if (std::isfinite(v[k])) {
        double d = v[k] - bmean;
        bm2 += d * d;
      }
    const double na = static_cast<double>(finite), nb = static_cast<double>(cnt), nt = na + nb;
    const double delta = bmean - mean;
    mean += delta * nb / nt;
    m2 += bm2 + delta * delta * na * nb / nt;
    finite += cnt;
  }
  double stddev() const { return finite ? std::sqrt(m2 / static_cast<double>(finite)) : 0.0; }
  bool all_zero() const { return scanned && nan == 0 && inf == 0 && finite > 0 && zeros == finite; }
};

constexpr int64_t kBlockFloats = 1 << 20;  // 4 MB of decoded floats per block

TensorStats scan_tensor(const Checkpoint& ck, const TensorInfo& t, std::vector<float>& buf) {
  TensorStats s;
  const int64_t rows = t.rows(), cols = t.cols();
  if (rows > 0 && cols > 0) {
    const int64_t block_rows = std::max<int64_t>(1, kBlockFloats / cols);
    buf.resize(static_cast<size_t>(std::min(rows, block_rows) * cols));
    for (int64_t r = 0; r < rows; r += block_rows) {
      int64_t n = std::min(block_rows, rows - r);
      ck.read_rows(t, r, n, buf.data());
      s.add_block(buf.data(), static_cast<size_t>(n * cols));
    }
  }
  ck.release(t);
  if (buf.size() > static_cast<size_t>(kBlockFloats)) {  // one huge row: don't keep it around
    buf.clear();
    buf.shrink_to_fit();
  }
  s.scanned = true;
  return s;
}

std::string shape_str(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

std::string thousands(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v), out;
  for (size_t k = 0; k < digits.size(); ++k) {
    if (k && (digits.size() - k) % 3 == 0) out += ',';
    out += digits[k];
  }
  return v < 0 ? "-" + out : out;
}

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", b) : fmt::format("{:.1f} {}", v, units[u]);
}

// Shapes that disagree with the architecture description.
void check_shapes(const Checkpoint& ck, std::vector<std::string>& warnings) {
  const weights::Architecture& a = ck.architecture();
  int max_layer = -1;
  auto expect = [&](const TensorInfo& t, int64_t got, int64_t want, const char* what, const char* key) {
    if (want > 0 && got != want)
      warnings.push_back(fmt::format("tensor {} has {} {} but the config says {} = {}", t.name, got, what, key, want));
  };
  const int64_t q_rows = a.num_heads * a.head_dim, kv_rows = a.num_kv_heads * a.head_dim;
  const bool mla = a.kv_lora_rank > 0;
  for (const TensorInfo& t : ck.tensors()) {
    const weights::Role& r = t.role;
    if (r.tower != weights::Tower::Language) continue;
    if (r.layer > max_layer) max_layer = r.layer;
    if (r.bias || t.transposed) continue;
    if (t.shape.size() == 1 && r.kind == RoleKind::FinalNorm) expect(t, t.shape[0], a.hidden_size, "elements", "hidden_size");
    if (t.shape.size() != 2) continue;
    const int64_t rows = t.shape[0], cols = t.shape[1];
    switch (r.kind) {
      case RoleKind::Embedding:
        expect(t, rows, a.vocab_size, "rows", "vocab_size");
        expect(t, cols, a.hidden_size, "columns", "hidden_size");
        break;
      case RoleKind::Head:
        expect(t, rows, a.vocab_size, "rows", "vocab_size");
        expect(t, cols, a.hidden_size, "columns", "hidden_size");
        break;
      case RoleKind::AttnQ:
        if (!mla) expect(t, rows, q_rows, "rows", "num_attention_heads x head_dim");
        expect(t, cols, a.hidden_size, "columns", "hidden_size");
        break;
      case RoleKind::AttnK:
      case RoleKind::AttnV:
        if (!mla) expect(t, rows, kv_rows, "rows", "num_key_value_heads x head_dim");
        expect(t, cols, a.hidden_size, "columns", "hidden_size");
        break;
      case RoleKind::AttnO:
        expect(t, rows, a.hidden_size, "rows", "hidden_size");
        break;
      case RoleKind::MlpGate:
      case RoleKind::MlpUp:
        expect(t, rows, a.intermediate_size, "rows", "intermediate_size");
        expect(t, cols, a.hidden_size, "columns", "hidden_size");
        break;
      case RoleKind::MlpDown:
        expect(t, cols, a.intermediate_size, "columns", "intermediate_size");
        expect(t, rows, a.hidden_size, "rows", "hidden_size");
        break;
      default:
        break;
    }
  }
  if (a.num_layers > 0 && max_layer >= 0 && max_layer + 1 != a.num_layers)
    warnings.push_back(fmt::format("tensors cover {} layers but the config says num_layers = {}", max_layer + 1,
                                   a.num_layers));
}

struct TokenizerInfo {
  std::string type;
  int64_t vocab_size = 0;
  std::string chat_template_sha256;  // empty: no chat template
};

std::optional<TokenizerInfo> open_tokenizer(const Checkpoint& ck, std::vector<std::string>& warnings) {
  namespace fs = std::filesystem;
  try {
    std::unique_ptr<tokenizer::Tokenizer> tok;
    if (ck.gguf()) {
      if (!ck.gguf()->get("tokenizer.ggml.model")) {
        warnings.push_back("no tokenizer in the GGUF metadata");
        return std::nullopt;
      }
      tok = tokenizer::Tokenizer::from_gguf(*ck.gguf(), ck.files().front());
    } else if (!ck.folder().empty() && fs::is_regular_file(fs::path(ck.folder()) / "tokenizer.json")) {
      tok = tokenizer::Tokenizer::open(ck.folder());
    } else {
      warnings.push_back("no tokenizer.json next to the weights");
      return std::nullopt;
    }
    return TokenizerInfo{std::string(tok->type()), static_cast<int64_t>(tok->vocab_size()),
                         tok->chat_template_sha256()};
  } catch (const Error& e) {
    warnings.push_back(fmt::format("tokenizer: {}", e.what()));
    return std::nullopt;
  }
}

nlohmann::json stats_json(const TensorStats& s) {
  nlohmann::json j = {{"finite", s.finite}, {"nan", s.nan}, {"inf", s.inf}, {"zeros", s.zeros}};
  if (s.finite) {
    j["mean"] = s.mean;
    j["std"] = s.stddev();
    j["min"] = s.min;
    j["max"] = s.max;
  } else {
    j["mean"] = j["std"] = j["min"] = j["max"] = nullptr;
  }
  return j;
}

void run_inspect(const InspectOptions& opt) {
  Checkpoint ck = Checkpoint::open(opt.path);
  std::vector<std::string> warnings;

  std::map<std::string, int64_t> dtype_tensors, dtype_params;
  const TensorInfo* embedding = nullptr;
  for (const auto& t : ck.tensors()) {
    ++dtype_tensors[t.type_name];
    dtype_params[t.type_name] += t.numel();
    if (t.role.kind == RoleKind::Embedding && t.role.tower == weights::Tower::Language && !embedding) embedding = &t;
  }

  check_shapes(ck, warnings);
  std::optional<TokenizerInfo> tok = open_tokenizer(ck, warnings);
  if (tok && embedding && embedding->shape.size() == 2 && tok->vocab_size > embedding->shape[0])
    warnings.push_back(fmt::format("tokenizer has {} tokens but the embedding {} has only {} rows", tok->vocab_size,
                                   embedding->name, embedding->shape[0]));

  // Stream every tensor once (unless --no-scan): NaN/Inf/all-zero warnings and --stats.
  std::vector<TensorStats> stats(ck.tensors().size());
  if (!opt.no_scan) {
    std::vector<float> buf;
    for (size_t k = 0; k < ck.tensors().size(); ++k) {
      const TensorInfo& t = ck.tensors()[k];
      if (t.dtype == weights::DType::Unsupported) {
        warnings.push_back(fmt::format("tensor {}: type {} cannot be decoded, not scanned", t.name, t.type_name));
        continue;
      }
      stats[k] = scan_tensor(ck, t, buf);
      const TensorStats& s = stats[k];
      if (s.nan) warnings.push_back(fmt::format("tensor {}: {} NaN values", t.name, s.nan));
      if (s.inf) warnings.push_back(fmt::format("tensor {}: {} infinite values", t.name, s.inf));
      if (s.all_zero()) warnings.push_back(fmt::format("tensor {}: all zeros", t.name));
    }
  }

  const bool list = opt.tensors || opt.stats;
  if (opt.json) {
    nlohmann::json j;
    j["path"] = opt.path;
    j["format"] = weights::format_name(ck.format());
    nlohmann::json files = nlohmann::json::array();
    for (const auto& f : ck.files()) {
      nlohmann::json fj = {{"path", f}, {"bytes", std::filesystem::file_size(f)}};
      if (opt.sha256) fj["sha256"] = sha256_file(f);
      files.push_back(fj);
    }
    j["files"] = files;
    j["architecture"] = ck.architecture().to_json();
    j["parameters"] = ck.parameter_count();
    j["tensors"] = ck.tensors().size();
    j["dtypes"] = dtype_tensors;
    j["dtype_parameters"] = dtype_params;
    j["tokenizer"] = tok ? nlohmann::json{{"type", tok->type},
                                          {"vocab_size", tok->vocab_size},
                                          {"chat_template_sha256", tok->chat_template_sha256.empty()
                                                                       ? nlohmann::json()
                                                                       : nlohmann::json(tok->chat_template_sha256)}}
                         : nlohmann::json();
    j["scanned"] = !opt.no_scan;
    j["warnings"] = warnings;
    if (list) {
      nlohmann::json arr = nlohmann::json::array();
      for (size_t k = 0; k < ck.tensors().size(); ++k) {
        const TensorInfo& t = ck.tensors()[k];
        nlohmann::json tj = {{"name", t.name},   {"role", weights::role_name(t.role)},
                             {"dtype", t.type_name}, {"shape", t.shape},
                             {"file", t.file_index}, {"offset", t.offset},
                             {"bytes", t.nbytes}};
        if (t.transposed) tj["transposed"] = true;
        if (opt.stats && stats[k].scanned) tj["stats"] = stats_json(stats[k]);
        arr.push_back(std::move(tj));
      }
      j["tensor_list"] = std::move(arr);
    }
    std::puts(j.dump(2).c_str());
    return;
  }

  // Human-readable report.
  const weights::Architecture& a = ck.architecture();
  uint64_t total_bytes = 0;
  for (const auto& f : ck.files()) total_bytes += std::filesystem::file_size(f);
  fmt::print("path        {}\n", opt.path);
  fmt::print("format      {} ({} file{}, {})\n", weights::format_name(ck.format()), ck.files().size(),
             ck.files().size() == 1 ? "" : "s", human_bytes(total_bytes));
  if (opt.sha256)
    for (const auto& f : ck.files()) fmt::print("sha256      {}  {}\n", sha256_file(f), f);
  fmt::print("family      {}{}\n", a.family, a.model_type.empty() ? "" : fmt::format(" (model_type {})", a.model_type));
  fmt::print("shape       hidden {} · layers {} · heads {} (kv {}) · head_dim {} · ffn {} · vocab {}\n", a.hidden_size,
             a.num_layers, a.num_heads, a.num_kv_heads, a.head_dim, a.intermediate_size, a.vocab_size);
  if (a.num_experts > 0)
    fmt::print("experts     {} (top-{}, expert ffn {}, shared {})\n", a.num_experts, a.experts_per_token,
               a.moe_intermediate_size, a.num_shared_experts);
  fmt::print("norm        {} (eps {:g}) · rope theta {:g} · tied embeddings {}\n", a.norm_type, a.norm_eps, a.rope.theta,
             a.tied_embeddings ? "yes" : "no");
  if (a.vision) fmt::print("vision      {} (hidden {}, layers {})\n", a.vision->model_type, a.vision->hidden_size, a.vision->num_layers);
  if (a.audio) fmt::print("audio       {} (hidden {}, layers {})\n", a.audio->model_type, a.audio->hidden_size, a.audio->num_layers);
  fmt::print("parameters  {}\n", thousands(ck.parameter_count()));
  std::vector<std::string> dt;
  for (const auto& [name, n] : dtype_tensors) dt.push_back(fmt::format("{} {}", name, n));
  fmt::print("tensors     {} ({})\n", ck.tensors().size(), fmt::join(dt, ", "));
  if (tok)
    fmt::print("tokenizer   {}, vocab {}, chat template {}\n", tok->type, thousands(tok->vocab_size),
               tok->chat_template_sha256.empty() ? "none" : "sha256 " + tok->chat_template_sha256.substr(0, 16));
  else fmt::print("tokenizer   none\n");
  if (opt.no_scan) fmt::print("scan        skipped (--no-scan)\n");
  if (warnings.empty()) fmt::print("warnings    none\n");
  for (size_t k = 0; k < warnings.size(); ++k) fmt::print("{}{}\n", k ? "            " : "warnings    ", warnings[k]);

  if (list) {
    size_t wname = 4, wrole = 4;
    for (const auto& t : ck.tensors()) {
      wname = std::max(wname, t.name.size());
      wrole = std::max(wrole, weights::role_name(t.role).size());
    }
    fmt::print("\n{:<{}}  {:<{}}  {:<8}  {:<20}", "name", wname, "role", wrole, "dtype", "shape");
    if (opt.stats) fmt::print("  {:>12}  {:>12}  {:>12}  {:>12}", "mean", "std", "min", "max");
    fmt::print("\n");
    for (size_t k = 0; k < ck.tensors().size(); ++k) {
      const TensorInfo& t = ck.tensors()[k];
      fmt::print("{:<{}}  {:<{}}  {:<8}  {:<20}", t.name, wname, weights::role_name(t.role), wrole, t.type_name,
                 shape_str(t.shape));
      const TensorStats& s = stats[k];
      if (opt.stats && s.scanned && s.finite)
        fmt::print("  {:>12.5g}  {:>12.5g}  {:>12.5g}  {:>12.5g}", s.mean, s.stddev(), s.min, s.max);
      else if (opt.stats)
        fmt::print("  {:>12}", "-");
      fmt::print("\n");
    }
  }
}

}  // namespace

void register_inspect(CLI::App& app) {
  auto opt = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand("inspect", "Describe a checkpoint (safetensors, GGUF, PyTorch) and check it");
  cmd->add_option("path", opt->path, "Model folder or weights file")->required();
  cmd->add_flag("--json", opt->json, "One JSON object on stdout");
  cmd->add_flag("--tensors", opt->tensors, "List every tensor with its canonical role, shape and dtype");
  cmd->add_flag("--stats", opt->stats, "Add streaming mean/std/min/max per tensor");
  cmd->add_flag("--no-scan", opt->no_scan, "Do not read tensor data (no NaN/Inf/zero checks, no stats)");
  cmd->add_flag("--sha256", opt->sha256, "Add the SHA-256 of every file");
  cmd->callback([opt] {
    if (opt->stats && opt->no_scan) throw CLI::ValidationError("--stats needs the tensor data; drop --no-scan");
    run_inspect(*opt);
  });
}

}  // namespace kaival::cli
