#include "lineage/model.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "core/error.h"
#include "core/mmap.h"
#include "tokenizer/tokenizer.h"

namespace kaival::lineage {

namespace fs = std::filesystem;
using weights::RoleKind;
using weights::Tower;

namespace {

constexpr uint64_t kMaxTokenizerJson = 512ull << 20;

// Merge rules of a tokenizer.json ("a b" strings or [a, b] pairs), empty when
// absent or unreadable: merges are evidence only.
std::vector<std::string> merges_from_tokenizer_json(const std::string& path) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return out;
  try {
    MappedFile f(path);
    if (f.size() > kMaxTokenizerJson) return out;
    auto j = nlohmann::json::parse(f.data(), f.data() + f.size(), nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("model")) return out;
    const auto& m = j["model"];
    if (!m.is_object() || !m.contains("merges") || !m["merges"].is_array()) return out;
    for (const auto& e : m["merges"]) {
      if (e.is_string())
        out.push_back(e.get<std::string>());
      else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string())
        out.push_back(e[0].get<std::string>() + " " + e[1].get<std::string>());
    }
  } catch (const std::exception&) {
    out.clear();
  }
  return out;
}

bool is_matrix(const TensorInfo& t) { return t.shape.size() >= 2 && t.numel() > 0; }

}  // namespace

std::unique_ptr<Model> Model::open(const std::string& path) {
  std::unique_ptr<Model> m(new Model(weights::Checkpoint::open(path)));
  m->path_ = path;
  const std::string family = m->arch().family;
  m->gain_offset_ = family.rfind("gemma", 0) == 0;
  m->index_tensors();
  m->load_vocab();
  for (const auto& f : m->ckpt_.files()) m->fds_.push_back(::open(f.c_str(), O_RDONLY | O_CLOEXEC));
  return m;
}

Model::~Model() {
  for (int fd : fds_)
    if (fd >= 0) ::close(fd);
}

void Model::read_rows_streaming(const TensorInfo& t, int64_t row0, int64_t n, float* out,
                                std::vector<uint8_t>& scratch) const {
  const auto& tr = weights::traits(t.dtype);
  const int64_t rows = t.rows(), cols = t.cols();
  const bool plain = t.dtype != weights::DType::Unsupported && t.unpermute_heads <= 0 && tr.block_elems > 0 &&
                     cols % tr.block_elems == 0 && t.file_index < fds_.size() && fds_[t.file_index] >= 0 &&
                     row0 >= 0 && n >= 0 && row0 + n <= rows;
  const uint64_t row_bytes = plain ? static_cast<uint64_t>(cols / tr.block_elems) * tr.block_bytes : 0;
  if (!plain || row_bytes * static_cast<uint64_t>(rows) != t.nbytes) {
    ckpt_.read_rows(t, row0, n, out);
    return;
  }
  const uint64_t len = row_bytes * static_cast<uint64_t>(n);
  // A block read that starts a tensor asks the kernel to read the whole tensor
  // ahead: from cold storage the small preads then find their pages already
  // read instead of waiting on each one (the reads of one tensor are
  // sequential; sampled single rows do not trigger this).
  if (row0 == 0 && n > 1)
    ::posix_fadvise(fds_[t.file_index], static_cast<off_t>(t.offset), static_cast<off_t>(t.nbytes),
                    POSIX_FADV_WILLNEED);
  scratch.resize(len);
  uint64_t done = 0;
  const uint64_t start = t.offset + row_bytes * static_cast<uint64_t>(row0);
  while (done < len) {
    ssize_t got = ::pread(fds_[t.file_index], scratch.data() + done, len - done, static_cast<off_t>(start + done));
    if (got <= 0) {  // an I/O problem: let the mapped reader report it properly
      ckpt_.read_rows(t, row0, n, out);
      return;
    }
    done += static_cast<uint64_t>(got);
  }
  weights::dequantize(t.dtype, scratch.data(), n * cols, out);
}

void Model::index_tensors() {
  std::map<int, LayerRefs> layers;
  for (const TensorInfo& t : ckpt_.tensors()) {
    const auto& r = t.role;
    if (r.bias) continue;
    if (r.tower != Tower::Language) {
      TowerRefs& tw = r.tower == Tower::Vision ? vision_ : audio_;
      if (!is_matrix(t) && r.kind != RoleKind::TowerNorm) continue;
      if (r.layer >= 0)
        tw.blocks[r.layer].push_back(&t);
      else
        tw.other.push_back(&t);
      continue;
    }
    switch (r.kind) {
      case RoleKind::Embedding: embedding_ = &t; continue;
      case RoleKind::Head: head_ = &t; continue;
      case RoleKind::FinalNorm: final_norm_ = &t; continue;
      default: break;
    }
    if (r.layer < 0) continue;
    LayerRefs& L = layers[r.layer];
    L.index = r.layer;
    switch (r.kind) {
      case RoleKind::AttnNorm: L.attn_norm = &t; break;
      case RoleKind::MlpNorm: L.mlp_norm = &t; break;
      case RoleKind::AttnQ: L.q = &t; break;
      case RoleKind::AttnK: L.k = &t; break;
      case RoleKind::AttnV: L.v = &t; break;
      case RoleKind::AttnQKV: L.qkv = &t; break;
      case RoleKind::AttnO: L.o = &t; break;
      case RoleKind::MlaQA:
      case RoleKind::MlaKVA: L.attn_other_in.push_back(&t); break;
      case RoleKind::MlpGate: L.gate = &t; break;
      case RoleKind::MlpUp: L.up = &t; break;
      case RoleKind::MlpGateUp: L.gate_up = &t; break;
      case RoleKind::MlpDown: L.down = &t; break;
      case RoleKind::ExpertGate:
      case RoleKind::SharedExpertGate: L.expert_gate.push_back(&t); break;
      case RoleKind::ExpertUp:
      case RoleKind::SharedExpertUp: L.expert_up.push_back(&t); break;
      case RoleKind::ExpertGateUp: L.expert_gate_up.push_back(&t); break;
      case RoleKind::ExpertDown:
      case RoleKind::SharedExpertDown: L.expert_down.push_back(&t); break;
      default: break;
    }
  }
  for (auto& [i, L] : layers) layers_.push_back(L);

  hidden_ = arch().hidden_size;
  if (embedding_ && is_matrix(*embedding_)) {
    int64_t cols = embedding_->transposed ? embedding_->shape.front() : embedding_->cols();
    if (hidden_ <= 0) hidden_ = cols;
  }
  for (TowerRefs* tw : {&vision_, &audio_}) {
    if (tw->empty()) continue;
    const auto& cfg = tw == &vision_ ? arch().vision : arch().audio;
    tw->hidden = cfg ? cfg->hidden_size : 0;
    if (tw->hidden <= 0) {
      // The most common dimension among the block matrices is the tower's width.
      std::map<int64_t, int> counts;
      for (auto& [i, ts] : tw->blocks)
        for (auto* t : ts)
          for (auto d : t->shape) counts[d]++;
      int best = 0;
      for (auto& [d, c] : counts)
        if (c > best) best = c, tw->hidden = d;
    }
  }
  if (layers_.empty() && !embedding_) notes_.push_back("no language-model tensors recognised");
}

void Model::load_vocab() {
  std::unique_ptr<tokenizer::Tokenizer> tok;
  std::string source;
  try {
    if (ckpt_.gguf() && ckpt_.gguf()->get("tokenizer.ggml.tokens")) {
      tok = tokenizer::Tokenizer::from_gguf(*ckpt_.gguf(), path_);
      source = "gguf:tokenizer.ggml";
    } else if (!ckpt_.folder().empty() && fs::exists(fs::path(ckpt_.folder()) / "tokenizer.json")) {
      tok = tokenizer::Tokenizer::open(ckpt_.folder());
      source = (fs::path(ckpt_.folder()) / "tokenizer.json").string();
    }
  } catch (const std::exception& e) {
    notes_.push_back(fmt::format("tokenizer not usable: {}", e.what()));
    return;
  }
  if (!tok) return;
  Vocab v = vocab_from_tokenizer(*tok, source);
  if (ckpt_.gguf())
    v.merges = ckpt_.gguf()->get_strings("tokenizer.ggml.merges");
  else
    v.merges = merges_from_tokenizer_json(source);
  vocab_ = std::move(v);
}

MatF Model::read(const TensorInfo& t, bool lead_rows) const {
  if (t.shape.empty() || t.numel() <= 0) fail(t.name, "empty tensor");
  std::vector<float> data = ckpt_.read_f32(t);
  int64_t cols = lead_rows ? t.numel() / t.shape.front() : t.cols();
  int64_t rows = t.numel() / cols;
  MatF m = Eigen::Map<MatF>(data.data(), rows, cols);
  if (t.transposed && t.shape.size() == 2) m.transposeInPlace();
  return m;
}

MatF Model::read_rows(const TensorInfo& t, const std::vector<int64_t>& rows) const {
  if (t.shape.size() != 2) fail(t.name, "expected a matrix, shape has rank {}", t.shape.size());
  if (t.transposed) {
    MatF full = read(t);
    MatF out(static_cast<int64_t>(rows.size()), full.cols());
    for (size_t i = 0; i < rows.size(); ++i) out.row(i) = full.row(rows[i]);
    return out;
  }
  const int64_t cols = t.cols(), nrows = t.rows();
  MatF out(static_cast<int64_t>(rows.size()), cols);
  std::vector<uint8_t> scratch;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0 || rows[i] >= nrows) fail(t.name, "row {} out of range ({} rows)", rows[i], nrows);
    read_rows_streaming(t, rows[i], 1, out.row(static_cast<int64_t>(i)).data(), scratch);
  }
  return out;
}

std::vector<float> Model::read_gain(const TensorInfo& t) const {
  std::vector<float> g = ckpt_.read_f32(t);
  if (gain_offset_)
    for (float& x : g) x += 1.0f;
  return g;
}

MatF Model::read_output_side(const TensorInfo& t) const {
  if (t.shape.size() == 3) {
    // [E, d, f] -> [d, E * f]
    const int64_t e = t.shape[0], d = t.shape[1], f = t.shape[2];
    std::vector<float> data = ckpt_.read_f32(t);
    MatF out(d, e * f);
    for (int64_t x = 0; x < e; ++x)
      for (int64_t r = 0; r < d; ++r)
        std::copy_n(data.data() + (x * d + r) * f, f, out.row(r).data() + x * f);
    return out;
  }
  return read(t);
}

}  // namespace kaival::lineage
