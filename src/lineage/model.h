#pragma once
// One model as lineage sees it: the checkpoint's tensors grouped by canonical
// role into embedding, head, per-layer attention / MLP / norms and encoder
// towers, read one tensor at a time as F32 matrices in PyTorch [out, in]
// orientation.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lineage/linalg.h"
#include "lineage/vocab_align.h"
#include "weights/checkpoint.h"

namespace kaival::lineage {

using weights::TensorInfo;

// The tensors of one transformer block that touch the residual stream.
struct LayerRefs {
  int index = -1;
  const TensorInfo* attn_norm = nullptr;
  const TensorInfo* mlp_norm = nullptr;
  // Attention: input side (residual coordinates are columns) and output side.
  const TensorInfo* q = nullptr;
  const TensorInfo* k = nullptr;
  const TensorInfo* v = nullptr;
  const TensorInfo* qkv = nullptr;  // packed
  const TensorInfo* o = nullptr;
  std::vector<const TensorInfo*> attn_other_in;  // MLA down-projections
  // MLP (dense, packed gate_up, or experts: one tensor per expert or stacked).
  const TensorInfo* gate = nullptr;
  const TensorInfo* up = nullptr;
  const TensorInfo* gate_up = nullptr;
  const TensorInfo* down = nullptr;
  std::vector<const TensorInfo*> expert_gate, expert_up, expert_gate_up, expert_down;
  bool has_attn() const { return q || qkv || !attn_other_in.empty(); }
  bool has_mlp() const { return gate || up || gate_up || !expert_gate.empty() || !expert_up.empty() ||
                                !expert_gate_up.empty(); }
};

// A vision or audio encoder: its blocks by index plus its other tensors
// (patch / position embeddings, final norm), compared in the tower's own
// residual basis.
struct TowerRefs {
  int64_t hidden = 0;
  std::map<int, std::vector<const TensorInfo*>> blocks;
  std::vector<const TensorInfo*> other;
  bool empty() const { return blocks.empty() && other.empty(); }
};

class Model {
 public:
  // Opens the checkpoint and, when present, its tokenizer (folder or GGUF
  // metadata). Problems with the tokenizer become notes, not errors.
  static std::unique_ptr<Model> open(const std::string& path);

  const std::string& path() const { return path_; }
  const weights::Checkpoint& checkpoint() const { return ckpt_; }
  const weights::Architecture& arch() const { return ckpt_.architecture(); }
  const Vocab* vocab() const { return vocab_ ? &*vocab_ : nullptr; }
  int64_t hidden() const { return hidden_; }
  const TensorInfo* embedding() const { return embedding_; }
  const TensorInfo* head() const { return head_; }
  const TensorInfo* final_norm() const { return final_norm_; }
  const std::vector<LayerRefs>& layers() const { return layers_; }
  const TowerRefs& vision() const { return vision_; }
  const TowerRefs& audio() const { return audio_; }
  const std::vector<std::string>& notes() const { return notes_; }
  // Norm gains act as 1 + w in Gemma-style models.
  bool gain_offset() const { return gain_offset_; }

  // The whole tensor as [rows, cols] in [out, in] orientation (GPT-2 Conv1D
  // transposed back; higher-rank tensors flattened to [shape[0], rest] when
  // `lead_rows`, else to [numel / last, last]).
  MatF read(const TensorInfo& t, bool lead_rows = false) const;
  // Selected rows of a 2-D [out, in] tensor (for embeddings over shared tokens).
  MatF read_rows(const TensorInfo& t, const std::vector<int64_t>& rows) const;
  // A norm gain vector, with Gemma's offset applied.
  std::vector<float> read_gain(const TensorInfo& t) const;
  // Output-side matrix with residual coordinates as rows: [d, units]. Stacked
  // experts [E, d, f] become [d, E * f].
  MatF read_output_side(const TensorInfo& t) const;
  void release(const TensorInfo& t) const { ckpt_.release(t); }
  // Rows [row0, row0 + n) of `t` decoded to F32 like Checkpoint::read_rows,
  // but read with pread() into `scratch` when the rows are stored plainly
  // (no GGUF Q/K reordering): streaming a whole model this way does no page-
  // table work, which matters on virtual machines where page faults are
  // expensive. Falls back to the memory-mapped reader otherwise.
  void read_rows_streaming(const TensorInfo& t, int64_t row0, int64_t n, float* out,
                           std::vector<uint8_t>& scratch) const;

  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

 private:
  explicit Model(weights::Checkpoint ck) : ckpt_(std::move(ck)) {}
  void index_tensors();
  void load_vocab();

  std::string path_;
  weights::Checkpoint ckpt_;
  std::optional<Vocab> vocab_;
  int64_t hidden_ = 0;
  const TensorInfo* embedding_ = nullptr;
  const TensorInfo* head_ = nullptr;
  const TensorInfo* final_norm_ = nullptr;
  std::vector<LayerRefs> layers_;
  TowerRefs vision_, audio_;
  bool gain_offset_ = false;
  std::vector<std::string> notes_;
  std::vector<int> fds_;  // one per checkpoint file, for pread (-1 if it could not be opened)
};

}  // namespace kaival::lineage
