// The byte-level BPE tokenizer: added tokens, normalizer, pre-tokenizer, BPE
// model, post-processor and decoder, from tokenizer.json or GGUF metadata.
#include <algorithm>

#include "core/error.h"
#include "tokenizer/bpe.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/factories.h"
#include "tokenizer/normalize.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/special.h"
#include "tokenizer/utf8.h"
#include "weights/gguf.h"

namespace kaival::tokenizer {
namespace {

using json = nlohmann::json;

enum class DecoderKind { ByteLevel, Concat, JoinSpace, BpeSuffix };

struct BpeParts {
  std::vector<std::pair<std::string, int32_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  BpeOptions opts;
  bool strict_merges = true;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre;
  std::vector<AddedToken> added;
  std::vector<int32_t> prefix, suffix;  // what add_special puts around the ids
  DecoderKind decoder = DecoderKind::ByteLevel;
  std::string decoder_suffix;           // BpeSuffix: end-of-word marker
  bool added_raw_in_decode = false;     // GGUF: added tokens decode to their text
  SpecialTokens special;
  std::string chat_template;
};

// Ids index dense tables; a file may not make us allocate far more than it holds.
void check_id_bound(int64_t max_id, size_t entries, const std::string& where) {
  if (max_id >= static_cast<int64_t>(2 * entries + 1024))
    fail(where, "token id {} is far beyond the {} tokens defined", max_id, entries);
}

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(BpeParts p, const std::string& where)
      : model_(p.vocab, p.merges, p.opts, where, p.strict_merges),
        normalizer_(std::move(p.normalizer)),
        pre_(std::move(p.pre)),
        prefix_(std::move(p.prefix)),
        suffix_(std::move(p.suffix)),
        decoder_(p.decoder),
        decoder_suffix_(std::move(p.decoder_suffix)),
        added_raw_in_decode_(p.added_raw_in_decode),
        special_(p.special),
        chat_template_(std::move(p.chat_template)) {
    int64_t max_id = -1;
    for (const auto& [t, id] : p.vocab) max_id = std::max<int64_t>(max_id, id);
    for (const auto& a : p.added) max_id = std::max<int64_t>(max_id, a.id);
    check_id_bound(max_id, p.vocab.size() + p.added.size(), where);
    tokens_.resize(static_cast<size_t>(max_id + 1));
    is_special_.assign(tokens_.size(), false);
    is_added_.assign(tokens_.size(), false);
    for (const auto& [t, id] : p.vocab) tokens_[static_cast<size_t>(id)] = t;
    std::vector<AddedToken> raw, normalized;
    for (const auto& a : p.added) {
      tokens_[static_cast<size_t>(a.id)] = a.content;
      is_special_[static_cast<size_t>(a.id)] = a.special;
      is_added_[static_cast<size_t>(a.id)] = true;
      added_ids_.set(a.content, a.id);
      // Without a normalizer both sets match the same text; keep one pass.
      (a.normalized && normalizer_ ? normalized : raw).push_back(a);
    }
    raw_matcher_ = AddedTokenMatcher(raw);
    norm_matcher_ = AddedTokenMatcher(normalized);
    for (int32_t id : prefix_) special_.add_bos |= special_.bos && id == *special_.bos;
    for (int32_t id : suffix_) special_.add_eos |= special_.eos && id == *special_.eos;
    if (!special_.bos && !prefix_.empty()) special_.bos = prefix_.front();
    if (!special_.eos && !suffix_.empty()) special_.eos = suffix_.back();
    if (!prefix_.empty()) special_.add_bos = true;
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const override {
    std::vector<int32_t> out;
    if (add_special) out = prefix_;
    Scratch s;
    raw_matcher_.split(text, parse_special, s.segments);
    for (const auto& seg : s.segments) {
      if (seg.id >= 0) {
        out.push_back(seg.id);
        continue;
      }
      const bool first = seg.text.data() == text.data();
      if (!normalizer_) {
        encode_text(seg.text, first, s, out);
        continue;
      }
      std::string norm(seg.text);
      normalizer_->apply(norm);
      s.inner.clear();
      norm_matcher_.split(norm, parse_special, s.inner);
      for (const auto& in : s.inner) {
        if (in.id >= 0) out.push_back(in.id);
        else encode_text(in.text, first && in.text.data() == norm.data(), s, out);
      }
    }
    if (add_special) out.insert(out.end(), suffix_.begin(), suffix_.end());
    return out;
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    const auto& map = ByteLevelMap::instance();
    std::string bytes;
    std::vector<std::string_view> toks;
    for (int32_t id : ids) {
      if (id < 0 || static_cast<size_t>(id) >= tokens_.size()) continue;
      if (skip_special && is_special_[static_cast<size_t>(id)]) continue;
      toks.push_back(tokens_[static_cast<size_t>(id)]);
      const std::string_view t = toks.back();
      switch (decoder_) {
        case DecoderKind::ByteLevel:
          // Tokens with characters outside the byte map (added tokens written
          // as plain text) pass through unchanged, as in HF.
          if ((added_raw_in_decode_ && is_added_[static_cast<size_t>(id)]) || !map.decode_append(t, bytes))
            bytes.append(t);
          break;
        case DecoderKind::Concat:
          bytes.append(t);
          break;
        case DecoderKind::JoinSpace:
          if (toks.size() > 1) bytes += ' ';
          bytes.append(t);
          break;
        case DecoderKind::BpeSuffix:
          break;
      }
    }
    if (decoder_ == DecoderKind::BpeSuffix) {
      // HF's BPEDecoder: the end-of-word suffix becomes a space (nothing at the end).
      for (size_t i = 0; i < toks.size(); ++i) {
        const std::string_view t = toks[i], repl = i + 1 == toks.size() ? "" : " ";
        size_t prev = 0;
        for (size_t pos; !decoder_suffix_.empty() && (pos = t.find(decoder_suffix_, prev)) != std::string_view::npos;
             prev = pos + decoder_suffix_.size()) {
          bytes.append(t.substr(prev, pos - prev));
          bytes.append(repl);
        }
        bytes.append(t.substr(prev));
      }
    }
    return utf8::lossy(bytes);
  }

  std::string_view type() const override { return "bpe"; }
  size_t vocab_size() const override { return tokens_.size(); }
  std::string_view token(int32_t id) const override {
    return id >= 0 && static_cast<size_t>(id) < tokens_.size() ? std::string_view(tokens_[static_cast<size_t>(id)])
                                                               : std::string_view();
  }
  std::optional<int32_t> token_id(std::string_view t) const override {
    if (auto id = added_ids_.find(t)) return id;
    return model_.id_of(t);
  }
  const SpecialTokens& special() const override { return special_; }
  const std::string& chat_template() const override { return chat_template_; }

 private:
  struct Scratch {
    std::vector<TextSegment> segments, inner;
    PreTokenized pt;
    PreScratch pre;
  };

  void encode_text(std::string_view text, bool first, Scratch& s, std::vector<int32_t>& out) const {
    // Pieces are 32-bit spans of a buffer that byte mapping may double.
    if (text.size() > (1u << 30)) fail<UnsupportedError>("", "text of {} bytes is too long to encode at once", text.size());
    if (!pre_) {
      model_.encode(text, false, out);
      return;
    }
    s.pt.reset(text, first);
    pre_->apply(s.pt, s.pre);
    s.pt.unmap_bytes();
    for (size_t i = 0; i < s.pt.pieces.size(); ++i) model_.encode(s.pt.piece(i), s.pt.byte_level, out);
  }

  BpeModel model_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_;
  AddedTokenMatcher raw_matcher_, norm_matcher_;
  StringIdMap added_ids_;
  std::vector<int32_t> prefix_, suffix_;
  DecoderKind decoder_;
  std::string decoder_suffix_;
  bool added_raw_in_decode_;
  std::vector<std::string> tokens_;
  std::vector<bool> is_special_, is_added_;
  SpecialTokens special_;
  std::string chat_template_;
};

// ---- tokenizer.json ----

// Collects what the post-processor adds around a single sequence.
void parse_post_processor(const json& j, std::vector<int32_t>& prefix, std::vector<int32_t>& suffix,
                          const std::string& where, int depth = 0) {
  if (!j.is_object()) return;
  if (depth > 32) fail(where, "post_processor Sequences nested too deeply");
  const std::string type = j.value("type", "");
  if (type == "Sequence" && j.contains("processors") && j["processors"].is_array()) {
    for (const auto& p : j["processors"]) parse_post_processor(p, prefix, suffix, where, depth + 1);
    return;
  }
  if (type == "TemplateProcessing") {
    const auto& single = j.value("single", json::array());
    if (!single.is_array()) fail(where, "TemplateProcessing \"single\" must be an array");
    std::vector<int32_t> pre, post;
    bool seen_seq = false;
    for (const auto& item : single) {
      if (item.contains("Sequence")) {
        seen_seq = true;
        continue;
      }
      if (!item.contains("SpecialToken") || !item["SpecialToken"].contains("id")) continue;
      const std::string name = item["SpecialToken"]["id"].get<std::string>();
      const auto& specials = j.value("special_tokens", json::object());
      if (!specials.contains(name) || !specials[name].contains("ids") || !specials[name]["ids"].is_array())
        fail(where, "TemplateProcessing uses special token \"{}\" without ids", name);
      for (const auto& id : specials[name]["ids"]) {
        if (!id.is_number_integer()) fail(where, "TemplateProcessing ids of \"{}\" must be integers", name);
        (seen_seq ? post : pre).push_back(id.get<int32_t>());
      }
    }
    prefix.insert(prefix.begin(), pre.begin(), pre.end());
    suffix.insert(suffix.end(), post.begin(), post.end());
    return;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto id_of = [&](const char* k) -> int32_t {
      if (!j.contains(k) || !j[k].is_array() || j[k].size() != 2 || !j[k][1].is_number_integer())
        fail(where, "{} needs \"{}\": [token, id]", type, k);
      return j[k][1].get<int32_t>();
    };
    prefix.insert(prefix.begin(), id_of("cls"));
    suffix.push_back(id_of("sep"));
    return;
  }
  // ByteLevel (offsets only) and others add no tokens.
}

void parse_decoder(const json& j, BpeParts& p) {
  if (j.is_null()) {
    p.decoder = DecoderKind::JoinSpace;
    return;
  }
  const std::string type = j.value("type", "");
  if (type == "ByteLevel") {
    p.decoder = DecoderKind::ByteLevel;
  } else if (type == "BPEDecoder") {
    p.decoder = DecoderKind::BpeSuffix;
    p.decoder_suffix = j.value("suffix", "</w>");
  } else if (type == "Sequence" && j.contains("decoders") && j["decoders"].is_array()) {
    p.decoder = DecoderKind::Concat;
    for (const auto& d : j["decoders"])
      if (d.value("type", "") == "ByteLevel") p.decoder = DecoderKind::ByteLevel;
  } else {
    p.decoder = DecoderKind::Concat;
  }
}

}  // namespace

std::unique_ptr<Tokenizer> bpe_from_json(const json& tj, const json& config, const std::string& where) {
  const json& model = tj.at("model");
  BpeParts p;
  const auto& vocab = model.value("vocab", json());
  if (!vocab.is_object()) fail(where, "BPE model \"vocab\" must be an object of token -> id");
  p.vocab.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer()) fail(where, "vocab id of \"{}\" is not an integer", it.key());
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id > INT32_MAX) fail(where, "vocab id {} of \"{}\" is out of range", id, it.key());
    p.vocab.emplace_back(it.key(), static_cast<int32_t>(id));
  }
  const auto& merges = model.value("merges", json::array());
  if (!merges.is_array()) fail(where, "BPE model \"merges\" must be an array");
  p.merges.reserve(merges.size());
  for (const auto& m : merges) {
    if (m.is_string()) {
      const auto s = m.get<std::string>();
      const size_t sp = s.find(' ', 1);
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        fail(where, "merge \"{}\" is not two tokens separated by one space", s);
      p.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      p.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      fail(where, "each merge must be \"a b\" or [\"a\", \"b\"]");
    }
  }
  auto str_opt = [&](const char* k) {
    return model.contains(k) && model[k].is_string() ? model[k].get<std::string>() : std::string();
  };
  auto flag = [&](const char* k) { return model.contains(k) && model[k].is_boolean() && model[k].get<bool>(); };
  p.opts.ignore_merges = flag("ignore_merges");
  p.opts.fuse_unk = flag("fuse_unk");
  p.opts.byte_fallback = flag("byte_fallback");
  p.opts.continuing_subword_prefix = str_opt("continuing_subword_prefix");
  p.opts.end_of_word_suffix = str_opt("end_of_word_suffix");
  if (const auto unk = str_opt("unk_token"); !unk.empty()) {
    for (const auto& [t, id] : p.vocab)
      if (t == unk) p.opts.unk = id;
  }
  p.added = parse_added_tokens(tj.value("added_tokens", json()), where);
  p.normalizer = make_normalizer(tj.value("normalizer", json()), where);
  p.pre = make_pre_tokenizer(tj.value("pre_tokenizer", json()), where);
  parse_post_processor(tj.value("post_processor", json()), p.prefix, p.suffix, where);
  parse_decoder(tj.value("decoder", json()), p);

  // Special tokens: tokenizer_config.json names them; resolve against the
  // added tokens first, then the vocabulary.
  StringIdMap names;
  for (const auto& [t, id] : p.vocab) names.set(t, id);
  for (const auto& a : p.added) names.set(a.content, a.id);
  read_tokenizer_config(config, [&](std::string_view n) { return names.find(n); }, p.special, p.chat_template);
  if (p.opts.unk && !p.special.unk) p.special.unk = p.opts.unk;
  return std::make_unique<BpeTokenizer>(std::move(p), where);
}

// ---- GGUF ----

namespace {

// llama.cpp's tokenizer.ggml.pre names, mapped to the pre-tokenizer of the
// tokenizer.json that each name was converted from (as HF tokenizers runs it).
constexpr const char* kLlama3Re =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Re =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kGpt4oRe =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kTekkenRe =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kDeepseekV3Re =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
    "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";
// Cased letters (written as escapes: literal Greek/letterlike characters here
// would be at risk of Unicode normalization by editors).
constexpr const char* kDeepseekLlmLetters =
    R"(\s?[\x{41}-\x{5A}\x{61}-\x{7A}\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA})"
    R"(\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}-\x{377}\x{37B}-\x{37D})"
    R"(\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481})"
    R"(\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD})"
    R"(\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A})"
    R"(\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57})"
    R"(\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE})"
    R"(\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC})"
    R"(\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115})"
    R"(\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139})"
    R"(\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}-\x{2184}\x{2C00}-\x{2C7B})"
    R"(\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}-\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B})"
    R"(\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06})"
    R"(\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3})"
    R"(\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF})"
    R"(\x{1E900}-\x{1E943}]+)";
constexpr const char* kCjkHangul = "[一-龥ࠀ-一가-퟿]+";

json split_step(const std::string& re) {
  return {{"type", "Split"}, {"pattern", {{"Regex", re}}}, {"behavior", "Isolated"}, {"invert", false}};
}
json byte_level_step(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", use_regex}};
}
json digits_step(bool individual) { return {{"type", "Digits"}, {"individual_digits", individual}}; }
json sequence(std::vector<json> steps) { return {{"type", "Sequence"}, {"pretokenizers", steps}}; }
json regexes(std::initializer_list<const char*> res) {
  std::vector<json> steps;
  for (const char* r : res) steps.push_back(split_step(r));
  steps.push_back(byte_level_step(false));
  return sequence(std::move(steps));
}

struct PreType {
  json pre;
  bool ignore_merges = false;
  bool add_bos = false;  // llama.cpp's default when tokenizer.ggml.add_bos_token is absent
};

bool one_of(const std::string& s, std::initializer_list<const char*> names) {
  return std::any_of(names.begin(), names.end(), [&](const char* n) { return s == n; });
}

PreType gguf_pre_type(const std::string& pre, const std::string& where) {
  if (one_of(pre, {"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",
                   "modern-bert", "exaone4", "jina-v1-en", "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais",
                   "trillion", "granite-docling", "gpt-neox"}))
    return {byte_level_step(true)};
  if (one_of(pre, {"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"}))
    return {sequence({digits_step(true), byte_level_step(true)})};
  if (pre == "falcon")
    return {sequence({{{"type", "Punctuation"}, {"behavior", "Contiguous"}}, byte_level_step(true), digits_step(false),
                      split_step("[0-9][0-9][0-9]")})};
  if (one_of(pre, {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                   "jina-v5-nano"}))
    return {regexes({kLlama3Re}), true, true};
  if (one_of(pre, {"dbrx", "smaug-bpe", "glm4", "chatglm-bpe"})) return {regexes({kLlama3Re})};
  if (one_of(pre, {"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "hunyuan", "grok-2"}))
    return {regexes({kQwen2Re})};
  if (one_of(pre, {"gpt-4o", "llama4", "kanana2"})) return {regexes({kGpt4oRe})};
  if (pre == "tekken") return {regexes({kTekkenRe}), true, true};
  if (one_of(pre, {"deepseek-v3", "hunyuan-dense", "joyai-llm"}))
    return {regexes({"\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+", kDeepseekV3Re})};
  if (pre == "deepseek-coder")
    return {sequence({split_step("[\r\n]"), split_step("\\s?\\p{L}+"), split_step("\\s?\\p{P}+"),
                      split_step(kCjkHangul), digits_step(true), byte_level_step(false)})};
  if (pre == "deepseek-llm")
    return {sequence({split_step("[\r\n]"), split_step(kDeepseekLlmLetters),
                      split_step("\\s?[!-/:-~！-／：-～‘-‟　-。]+"), split_step("\\s+$"), split_step(kCjkHangul),
                      digits_step(true), byte_level_step(false)})};
  if (one_of(pre, {"poro-chat", "bloom", "gpt3-finnish"})) return {regexes({" ?[^(\\s|.,!?…。，、।۔،)]+"})};
  if (pre == "viking") return {regexes({" ?[^(\\s|.,!?…。，、।۔،)]+", "\\p{N}"})};
  if (pre == "seed-coder")
    return {regexes({"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\r\n]+|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"})};
  if (one_of(pre, {"bailingmoe", "bailingmoe2", "llada-moe"}))
    return {regexes({"'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"})};
  if (pre.empty() || pre == "default")
    return {regexes({"[\\p{P}\\$\\+<=>\\^~\\|]+", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
                     "\\p{N}+", "[0-9][0-9][0-9]"})};
  fail<UnsupportedError>(where, "unsupported BPE pre-tokenizer type tokenizer.ggml.pre = \"{}\"", pre);
}

enum GgufTokenType : int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

}  // namespace

std::unique_ptr<Tokenizer> bpe_from_gguf(const weights::GgufFile& gguf, const std::string& where) {
  const std::vector<std::string> tokens = gguf.get_strings("tokenizer.ggml.tokens");
  if (tokens.empty()) fail(where, "tokenizer.ggml.tokens is missing or empty");
  const std::vector<int64_t> types = gguf.get_ints("tokenizer.ggml.token_type");
  if (!types.empty() && types.size() != tokens.size())
    fail(where, "tokenizer.ggml.token_type has {} entries for {} tokens", types.size(), tokens.size());
  BpeParts p;
  p.vocab.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    p.vocab.emplace_back(tokens[i], static_cast<int32_t>(i));
    const int64_t t = types.empty() ? kNormal : types[i];
    if (t == kControl || t == kUserDefined || t == kUnknown) {
      AddedToken a;
      a.content = tokens[i];
      a.id = static_cast<int32_t>(i);
      a.special = t != kUserDefined;
      p.added.push_back(std::move(a));
    }
  }
  for (const std::string& m : gguf.get_strings("tokenizer.ggml.merges")) {
    const size_t sp = m.find(' ', 1);
    if (sp == std::string::npos) fail(where, "tokenizer.ggml.merges entry \"{}\" has no space", m);
    p.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
  }
  p.strict_merges = false;  // llama.cpp ignores merges it cannot use
  const std::string pre_name = gguf.get_string("tokenizer.ggml.pre").value_or("");
  PreType pt = gguf_pre_type(pre_name, where);
  p.pre = make_pre_tokenizer(pt.pre, where);
  p.opts.ignore_merges = pt.ignore_merges;
  p.special.add_bos = pt.add_bos;
  read_gguf_special(gguf, tokens.size(), p.special, p.chat_template);
  if (p.special.add_bos && p.special.bos) p.prefix.push_back(*p.special.bos);
  if (p.special.add_eos && p.special.eos) p.suffix.push_back(*p.special.eos);
  p.decoder = DecoderKind::ByteLevel;
  p.added_raw_in_decode = true;
  return std::make_unique<BpeTokenizer>(std::move(p), where);
}

}  // namespace kaival::tokenizer
