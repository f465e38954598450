#include "tokenizer/wordpiece.h"

#include <nlohmann/json.hpp>
#include <utf8proc.h>

#include "core/error.h"
#include "tokenizer/factories.h"
#include "tokenizer/normalize.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/unigram.h"
#include "tokenizer/utf8.h"
#include "weights/gguf.h"

namespace kaival::tokenizer {

using json = nlohmann::json;

void WordPieceModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  size_t chars = 0;
  for (size_t i = 0; i < word.size(); i += utf8_char_len(word, i)) ++chars;
  auto unknown = [&] {
    if (opt_.unk_id >= 0) out.push_back(opt_.unk_id);
  };
  if (chars > opt_.max_input_chars_per_word) return unknown();

  const size_t first_out = out.size();
  const size_t max_len = vocab_->max_len();
  std::string candidate;
  for (size_t start = 0; start < word.size();) {
    const std::string& prefix = start == 0 ? opt_.word_prefix : opt_.continuation_prefix;
    int32_t found = -1;
    size_t end = word.size();
    while (end > start) {
      // Pieces longer than the longest token cannot match: skip the lookup.
      if (prefix.size() + (end - start) <= max_len) {
        candidate.assign(prefix);
        candidate.append(word, start, end - start);
        found = vocab_->find(candidate);
        if (found >= 0) break;
      }
      do --end;  // back to the previous character boundary
      while (end > start && (static_cast<uint8_t>(word[end]) & 0xC0) == 0x80);
    }
    if (found < 0) {
      out.resize(first_out);
      return unknown();
    }
    out.push_back(found);
    start = end;
  }
}

namespace {

utf8proc_category_t category_of(char32_t c) { return utf8proc_category(static_cast<utf8proc_int32_t>(c)); }

class HfBertNormalizer final : public Normalizer {
 public:
  HfBertNormalizer(bool clean, bool chinese, bool strip, bool lower)
      : clean_(clean), chinese_(chinese), strip_(strip), lower_(lower) {}

  void apply(std::string& text) const override {
    if (!utf8::is_valid(text)) text = utf8::lossy(text);
    std::string out;
    out.reserve(text.size() + 8);
    for (size_t i = 0; i < text.size();) {
      const auto d = utf8::decode(text, i);
      i += d.len;
      char32_t c = d.cp;
      if (clean_) {
        if (c == 0 || c == 0xFFFD || is_control(c)) continue;
        if (c == '\t' || c == '\n' || c == '\r' || utf8::is_white_space(c)) c = ' ';
      }
      if (chinese_ && is_chinese(c)) {
        out += ' ';
        utf8::append(out, c);
        out += ' ';
        continue;
      }
      utf8::append(out, c);
    }
    if (strip_) {
      const std::string nfd = unicode_normalize(out, NormalForm::NFD);
      out.clear();
      for (size_t i = 0; i < nfd.size();) {
        const auto d = utf8::decode(nfd, i);
        if (category_of(d.cp) != UTF8PROC_CATEGORY_MN) out.append(nfd, i, d.len);
        i += d.len;
      }
    }
    if (lower_) out = lowercase(out);
    text = std::move(out);
  }

 private:
  // HF's "other" test (unicode_categories' is_other): control, format,
  // private use and surrogates. Its tables list no unassigned code points,
  // so those (and noncharacters) are kept.
  static bool is_control(char32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    switch (category_of(c)) {
      case UTF8PROC_CATEGORY_CC:
      case UTF8PROC_CATEGORY_CF:
      case UTF8PROC_CATEGORY_CO:
      case UTF8PROC_CATEGORY_CS:
        return true;
      default:
        return false;
    }
  }
  static bool is_chinese(char32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
  }
  bool clean_, chinese_, strip_, lower_;
};

// Parts of a HF BERT pipeline both loaders share.
const json& bert_normalizer_json() {
  static const json j = {{"type", "BertNormalizer"}, {"clean_text", true}, {"handle_chinese_chars", true},
                         {"strip_accents", nullptr}, {"lowercase", true}};
  return j;
}

// llama.cpp's "bert" vocab: BERT's basic tokenization (clean, split CJK,
// strip accents, lowercase; split on whitespace and punctuation) as in the
// Hugging Face tokenizer the vocab came from, then WordPiece with "▁" marking
// word-initial pieces. Special tokens are split out as llama.cpp does.
class GgufWordPieceTokenizer final : public Tokenizer {
 public:
  GgufWordPieceTokenizer(const weights::GgufFile& gguf, const std::string& where) {
    // llama.cpp's defaults for "bert" vocabs.
    special_.unk = 100, special_.cls = 101, special_.sep = 102, special_.pad = 0, special_.mask = 103;
    GgufVocab v = load_gguf_vocab(gguf, where, special_);
    special_.add_bos = special_.add_eos = false;  // [CLS]/[SEP] are added instead
    vocab_ = std::move(v.vocab);
    types_ = std::move(v.types);
    chat_template_ = std::move(v.chat_template);
    WordPieceModel::Options opt;
    opt.word_prefix = kSpaceMark;
    opt.continuation_prefix = "";
    opt.unk_id = special_.unk.value_or(-1);
    model_ = WordPieceModel(&vocab_, opt);
    normalizer_ = make_spm_normalizer(bert_normalizer_json(), where);
    pre_ = make_pre_tokenizer(json{{"type", "BertPreTokenizer"}}, where);
    std::vector<GgufSpecialSplitter::Entry> entries;
    for (size_t id = 0; id < types_.size(); ++id) {
      const GgufTokenType t = types_[id];
      if (t == GgufTokenType::Control || t == GgufTokenType::UserDefined || t == GgufTokenType::Unknown)
        entries.push_back({static_cast<int32_t>(id), t == GgufTokenType::UserDefined});
    }
    splitter_ = GgufSpecialSplitter(vocab_, std::move(entries));
  }
  GgufWordPieceTokenizer(const GgufWordPieceTokenizer&) = delete;
  GgufWordPieceTokenizer& operator=(const GgufWordPieceTokenizer&) = delete;

  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const override {
    std::vector<int32_t> out;
    out.reserve(text.size() / 4 + 2);
    const bool wrap = add_special && special_.cls && special_.sep;
    if (wrap) out.push_back(*special_.cls);
    std::vector<GgufSpecialSplitter::Piece> pieces;
    splitter_.split(text, parse_special, pieces);
    PreTokenized pt;
    PreScratch scratch;
    std::string normalized;
    for (const auto& p : pieces) {
      if (p.token >= 0) {
        out.push_back(p.token);
        continue;
      }
      normalized.assign(p.text);
      normalizer_->apply(normalized);
      pt.reset(normalized, p.text.data() == text.data());
      pre_->apply(pt, scratch);
      for (size_t i = 0; i < pt.pieces.size(); ++i) model_.encode_word(pt.piece(i), out);
    }
    if (wrap) out.push_back(*special_.sep);
    return out;
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    std::string out;
    for (int32_t id : ids) {
      if (id < 0 || static_cast<size_t>(id) >= vocab_.size()) continue;
      const std::string_view t = vocab_.text(id);
      const GgufTokenType type = types_[id];
      if (type == GgufTokenType::Control || type == GgufTokenType::Unknown) {
        if (!skip_special) out.append(" ").append(t);
      } else if (t.substr(0, kSpaceMark.size()) == kSpaceMark) {
        out.append(" ").append(t.substr(kSpaceMark.size()));
      } else {
        out.append(t);  // a continuation piece
      }
    }
    if (!out.empty() && out[0] == ' ') out.erase(0, 1);
    return out;
  }

  std::string_view type() const override { return "wordpiece"; }
  size_t vocab_size() const override { return vocab_.size(); }
  std::string_view token(int32_t id) const override { return vocab_.text(id); }
  std::optional<int32_t> token_id(std::string_view token) const override {
    const int32_t id = vocab_.find(token);
    return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
  }
  const SpecialTokens& special() const override { return special_; }
  const std::string& chat_template() const override { return chat_template_; }

 private:
  TokenVocab vocab_;
  std::vector<GgufTokenType> types_;
  WordPieceModel model_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_;
  GgufSpecialSplitter splitter_;
  SpecialTokens special_;
  std::string chat_template_;
};

class JsonWordPieceTokenizer final : public JsonPipelineTokenizer {
 public:
  JsonWordPieceTokenizer(const json& tj, const json& config, const std::string& where) {
    const json& model = tj.at("model");
    const auto vocab = model.find("vocab");
    if (vocab == model.end()) fail(where, "WordPiece model has no \"vocab\"");
    vocab_ = TokenVocab(vocab_texts_by_id(*vocab, where));
    WordPieceModel::Options opt;
    if (auto p = model.find("continuing_subword_prefix"); p != model.end() && p->is_string())
      opt.continuation_prefix = p->get<std::string>();
    if (auto m = model.find("max_input_chars_per_word"); m != model.end() && m->is_number_integer()) {
      if (m->get<int64_t>() < 0) fail(where, "max_input_chars_per_word must not be negative");
      opt.max_input_chars_per_word = m->get<size_t>();
    }
    std::optional<int32_t> unk;
    const std::string unk_text = model.value("unk_token", std::string("[UNK]"));
    if (const int32_t id = vocab_.find(unk_text); id >= 0) unk = id;
    opt.unk_id = unk.value_or(-1);
    model_ = WordPieceModel(&vocab_, opt);
    init_pipeline(tj, config, where, &vocab_, unk);
  }
  std::string_view type() const override { return "wordpiece"; }

 protected:
  void encode_word(std::string_view word, std::vector<int32_t>& out) const override { model_.encode_word(word, out); }

 private:
  TokenVocab vocab_;
  WordPieceModel model_;
};

}  // namespace

std::unique_ptr<Normalizer> make_bert_normalizer(bool clean_text, bool handle_chinese_chars, bool strip_accents,
                                                 bool lowercase) {
  return std::make_unique<HfBertNormalizer>(clean_text, handle_chinese_chars, strip_accents, lowercase);
}

std::unique_ptr<Tokenizer> wordpiece_from_gguf(const weights::GgufFile& gguf, const std::string& where) {
  return std::make_unique<GgufWordPieceTokenizer>(gguf, where);
}

std::unique_ptr<Tokenizer> wordpiece_from_json(const json& tj, const json& config, const std::string& where) {
  if (!tj.is_object() || !tj.contains("model") || !tj["model"].is_object())
    fail(where, "tokenizer.json has no \"model\" object");
  return std::make_unique<JsonWordPieceTokenizer>(tj, config, where);
}

}  // namespace kaival::tokenizer
