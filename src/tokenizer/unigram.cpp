#include "tokenizer/unigram.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/factories.h"

namespace kaival::tokenizer {

using json = nlohmann::json;

namespace {
constexpr double kUnkPenalty = 10.0;  // SentencePiece's and HF's unknown-piece penalty
}

UnigramModel::UnigramModel(const TokenVocab* vocab, std::vector<double> scores, Options opt)
    : vocab_(vocab), scores_(std::move(scores)), opt_(opt) {
  const size_t n = vocab_->size();
  scores_.resize(n, 0.0);
  double min_score = std::numeric_limits<double>::infinity();
  for (double s : scores_) min_score = std::min(min_score, s);
  unk_score_ = (n ? min_score : 0.0) - kUnkPenalty;

  // Build the trie level by level from the pieces sorted by text, so every
  // node's children are contiguous and sorted.
  std::vector<int32_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return vocab_->text(a) < vocab_->text(b); });
  nodes_.emplace_back();
  // Work items: (node, depth, [lo, hi) range of `order` sharing the prefix).
  struct Item {
    uint32_t node, depth, lo, hi;
  };
  std::vector<Item> queue{{0, 0, 0, static_cast<uint32_t>(n)}};
  for (size_t q = 0; q < queue.size(); ++q) {
    const Item it = queue[q];
    uint32_t lo = it.lo;
    // Pieces that end exactly at this depth (the last of equal texts wins).
    while (lo < it.hi && vocab_->text(order[lo]).size() == it.depth) nodes_[it.node].id = order[lo++];
    nodes_[it.node].first_edge = static_cast<uint32_t>(edges_.size());
    for (uint32_t a = lo; a < it.hi;) {
      const auto b = static_cast<uint8_t>(vocab_->text(order[a])[it.depth]);
      uint32_t z = a + 1;
      while (z < it.hi && static_cast<uint8_t>(vocab_->text(order[z])[it.depth]) == b) ++z;
      const auto child = static_cast<uint32_t>(nodes_.size());
      nodes_.emplace_back();
      edges_.push_back({b, child});
      queue.push_back({child, it.depth + 1, a, z});
      a = z;
    }
    nodes_[it.node].n_edges = static_cast<uint32_t>(edges_.size()) - nodes_[it.node].first_edge;
  }
  for (int b = 0; b < 256; ++b) byte_ids_[b] = vocab_->find(byte_piece(static_cast<uint8_t>(b)));
}

int32_t UnigramModel::child(const Node& n, uint8_t b) const {
  const Edge* first = edges_.data() + n.first_edge;
  const Edge* last = first + n.n_edges;
  const Edge* e = std::lower_bound(first, last, b, [](const Edge& x, uint8_t v) { return x.byte < v; });
  return e != last && e->byte == b ? static_cast<int32_t>(e->child) : -1;
}

void UnigramModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  const size_t size = word.size();
  if (size == 0) return;
  struct Best {
    double score = 0;
    int32_t id = -1;
    int32_t start = -1;  // -1: no path reaches this position yet
  };
  std::vector<Best> best(size + 1);
  best[0].start = 0;
  for (size_t start = 0; start < size;) {
    const size_t char_len = utf8_char_len(word, start);
    const double base = best[start].score;
    bool has_single = false;
    int32_t node = 0;
    for (size_t k = start; k < size; ++k) {
      node = child(nodes_[node], static_cast<uint8_t>(word[k]));
      if (node < 0) break;
      const int32_t id = nodes_[node].id;
      if (id < 0) continue;
      Best& target = best[k + 1];
      const double cand = base + scores_[id];
      if (target.start < 0 || cand > target.score) target = {cand, id, static_cast<int32_t>(start)};
      if (k + 1 - start == char_len) has_single = true;
    }
    if (!has_single) {
      Best& target = best[start + char_len];
      const double cand = base + unk_score_;
      if (target.start < 0 || cand > target.score) target = {cand, opt_.unk_id, static_cast<int32_t>(start)};
    }
    start += char_len;
  }

  // Walk back; adjacent unknown pieces fuse into one.
  struct Piece {
    uint32_t begin, end;
    int32_t id;
  };
  std::vector<Piece> pieces;
  for (size_t end = size; end > 0;) {
    const Best& b = best[end];
    const auto begin = static_cast<uint32_t>(b.start);
    const bool unk = b.id == opt_.unk_id;
    if (unk && !pieces.empty() && pieces.back().id == opt_.unk_id && pieces.back().begin == end)
      pieces.back().begin = begin;
    else
      pieces.push_back({begin, static_cast<uint32_t>(end), b.id});
    end = begin;
  }
  for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
    const std::string_view text = word.substr(it->begin, it->end - it->begin);
    if (it->id != opt_.unk_id || it->id < 0) {
      if (it->id >= 0) out.push_back(it->id);
      continue;
    }
    // An unknown piece: the piece's own token if its text is one (e.g. the
    // unk token written out), else its bytes, else unk.
    const int32_t id = vocab_->find(text);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    bool bytes = opt_.byte_fallback;
    for (char c : text) bytes = bytes && byte_ids_[static_cast<uint8_t>(c)] >= 0;
    if (bytes) {
      for (char c : text) out.push_back(byte_ids_[static_cast<uint8_t>(c)]);
    } else {
      out.push_back(opt_.unk_id);
    }
  }
}

namespace {

class JsonUnigramTokenizer final : public JsonPipelineTokenizer {
 public:
  JsonUnigramTokenizer(const json& tj, const json& config, const std::string& where) {
    const json& model = tj.at("model");
    const auto vocab = model.find("vocab");
    if (vocab == model.end() || !vocab->is_array()) fail(where, "Unigram model needs a \"vocab\" array");
    std::vector<std::string_view> texts;
    std::vector<double> scores;
    texts.reserve(vocab->size());
    scores.reserve(vocab->size());
    for (const json& e : *vocab) {
      if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number())
        fail(where, "Unigram vocab entries must be [piece, score]");
      texts.push_back(e[0].get_ref<const std::string&>());
      const double s = e[1].get<double>();
      if (!std::isfinite(s)) fail(where, "Unigram score of \"{}\" is not finite", texts.back());
      scores.push_back(s);
    }
    vocab_ = TokenVocab(texts);
    UnigramModel::Options opt;
    std::optional<int32_t> unk;
    if (auto u = model.find("unk_id"); u != model.end() && !u->is_null()) {
      if (!u->is_number_integer() || u->get<int64_t>() < 0 || u->get<uint64_t>() >= texts.size())
        fail(where, "Unigram unk_id is outside the vocab of {} pieces", texts.size());
      unk = u->get<int32_t>();
    }
    opt.unk_id = unk.value_or(-1);
    if (auto b = model.find("byte_fallback"); b != model.end() && b->is_boolean()) opt.byte_fallback = b->get<bool>();
    model_ = UnigramModel(&vocab_, std::move(scores), opt);
    init_pipeline(tj, config, where, &vocab_, unk);
  }
  std::string_view type() const override { return "unigram"; }

 protected:
  void encode_word(std::string_view word, std::vector<int32_t>& out) const override { model_.encode_word(word, out); }

 private:
  TokenVocab vocab_;
  UnigramModel model_;
};

}  // namespace

std::unique_ptr<Tokenizer> unigram_from_json(const json& tj, const json& config, const std::string& where) {
  if (!tj.is_object() || !tj.contains("model") || !tj["model"].is_object())
    fail(where, "tokenizer.json has no \"model\" object");
  return std::make_unique<JsonUnigramTokenizer>(tj, config, where);
}

}  // namespace kaival::tokenizer
