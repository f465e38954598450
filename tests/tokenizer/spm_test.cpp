// Unit tests of the SentencePiece-family building blocks on small hand-made
// vocabularies. Expected ids are worked out by hand in the comments.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/factories.h"
#include "tokenizer/spm.h"
#include "tokenizer/unigram.h"
#include "tokenizer/wordpiece.h"
#include "weights/gguf.h"

#include <random>

namespace kaival::tokenizer {
namespace {

using json = nlohmann::json;
using Ids = std::vector<int32_t>;

TEST(TokenVocab, FindsEveryTextAndTheLastOfRepeats) {
  const std::vector<std::string> texts = {"a", "b", "ab", "", "\xE2\x96\x81x", "b"};
  TokenVocab v{std::span<const std::string>(texts)};
  EXPECT_EQ(v.size(), 6u);
  EXPECT_EQ(v.find("a"), 0);
  EXPECT_EQ(v.find("ab"), 2);
  EXPECT_EQ(v.find("▁x"), 4);
  EXPECT_EQ(v.find("b"), 5);  // repeated: last id wins
  EXPECT_EQ(v.find("abc"), -1);
  EXPECT_EQ(v.text(2), "ab");
  EXPECT_EQ(v.text(6), "");
  EXPECT_EQ(v.text(-1), "");
  EXPECT_EQ(v.max_len(), 4u);
}

TEST(BytePiece, FormatsAndParses) {
  EXPECT_EQ(byte_piece(0x0A), "<0x0A>");
  EXPECT_EQ(byte_piece(0xFF), "<0xFF>");
  EXPECT_EQ(parse_byte_piece("<0xE2>"), 0xE2);
  EXPECT_EQ(parse_byte_piece("<0xe2>"), 0xE2);
  EXPECT_FALSE(parse_byte_piece("<0xG2>"));
  EXPECT_FALSE(parse_byte_piece("<0xE2"));
  EXPECT_FALSE(parse_byte_piece("a"));
}

TEST(Utf8CharLen, ValidSequencesWholeInvalidBytesAlone) {
  EXPECT_EQ(utf8_char_len("a", 0), 1u);
  EXPECT_EQ(utf8_char_len("é", 0), 2u);
  EXPECT_EQ(utf8_char_len("▁", 0), 3u);
  EXPECT_EQ(utf8_char_len("🦙", 0), 4u);
  EXPECT_EQ(utf8_char_len("\xE2\x96", 0), 1u);  // truncated
  EXPECT_EQ(utf8_char_len("\xC0\x80", 0), 1u);  // overlong
  EXPECT_EQ(utf8_char_len("\xED\xA0\x80", 0), 1u);  // surrogate
  EXPECT_EQ(utf8_char_len("\x80", 0), 1u);
}

// ---------------------------------------------------------------- ScoreMerger

struct ScoreVocab {
  std::vector<std::string> texts;
  std::vector<float> scores;
  TokenVocab vocab;
  ScoreMerger merger;
  ScoreVocab(std::vector<std::pair<std::string, float>> entries, int32_t unk = 0) {
    for (auto& [t, s] : entries) texts.push_back(t), scores.push_back(s);
    vocab = TokenVocab(std::span<const std::string>(texts));
    merger = ScoreMerger(&vocab, scores, unk);
  }
  Ids encode(std::string_view s) const {
    Ids out;
    merger.encode(s, out);
    return out;
  }
};

TEST(ScoreMerger, MergesTheHighestScoringPairFirst) {
  // "abc": pairs "ab" (-2) and "bc" (-1.5); "bc" scores higher, so a|bc, and
  // "abc" is not a token: ids a=1, bc=5.
  ScoreVocab v1({{"<unk>", 0}, {"a", -1}, {"b", -1}, {"c", -1}, {"ab", -2}, {"bc", -1.5f}});
  EXPECT_EQ(v1.encode("abc"), (Ids{1, 5}));
  // Now "ab" (-1) beats "bc" (-1.5): ab|c = 4, 3.
  ScoreVocab v2({{"<unk>", 0}, {"a", -1}, {"b", -1}, {"c", -1}, {"ab", -1}, {"bc", -1.5f}});
  EXPECT_EQ(v2.encode("abc"), (Ids{4, 3}));
  // With "abc" in the vocab the merged pair merges again: abc = 6.
  ScoreVocab v3({{"<unk>", 0}, {"a", -1}, {"b", -1}, {"c", -1}, {"ab", -2}, {"bc", -1.5f}, {"abc", -9}});
  EXPECT_EQ(v3.encode("abc"), (Ids{6}));
}

TEST(ScoreMerger, TiesGoToTheLeftmostPair) {
  // "aaa": both pairs are "aa" with the same score; the left one merges, the
  // last "a" stays: aa=2, a=1.
  ScoreVocab v({{"<unk>", 0}, {"a", -1}, {"aa", -1}});
  EXPECT_EQ(v.encode("aaa"), (Ids{2, 1}));
  EXPECT_EQ(v.encode("aaaa"), (Ids{2, 2}));
}

TEST(ScoreMerger, BytesOfUnknownCharactersThenUnk) {
  // "é" is C3 A9; only <0xC3> and <0xA9> exist -> 2, 3. "x" has no byte token
  // and no token -> unk (0).
  ScoreVocab v({{"<unk>", 0}, {"a", -1}, {"<0xC3>", 0}, {"<0xA9>", 0}});
  EXPECT_EQ(v.encode("aéa"), (Ids{1, 2, 3, 1}));
  EXPECT_EQ(v.encode("x"), (Ids{0}));
  EXPECT_EQ(v.encode(""), Ids{});
}

// ---------------------------------------------------------------- RankMerger

struct RankVocab {
  std::vector<std::string> texts;
  TokenVocab vocab;
  RankMerger merger;
  RankVocab(std::vector<std::string> t, std::vector<std::pair<std::string, std::string>> merges,
            RankMerger::Options opt)
      : texts(std::move(t)) {
    vocab = TokenVocab(std::span<const std::string>(texts));
    std::vector<RankMerger::Merge> m;
    for (auto& [a, b] : merges) m.push_back({vocab.find(a), vocab.find(b), vocab.find(a + b)});
    merger = RankMerger(&vocab, m, opt);
  }
  Ids encode(std::string_view s) const {
    Ids out;
    merger.encode_word(s, out);
    return out;
  }
};

TEST(RankMerger, AppliesMergesByRank) {
  const std::vector<std::string> t = {"<unk>", "a", "b", "c", "ab", "bc", "abc"};
  // Ranks: b c (0), a b (1), a bc (2): bc first, then a+bc -> abc (6).
  EXPECT_EQ(RankVocab(t, {{"b", "c"}, {"a", "b"}, {"a", "bc"}}, {}).encode("abc"), (Ids{6}));
  // Ranks: a b (0), b c (1): ab first; "ab c" is no merge -> ab, c.
  EXPECT_EQ(RankVocab(t, {{"a", "b"}, {"b", "c"}}, {}).encode("abc"), (Ids{4, 3}));
  // Equal pairs: the leftmost merges first: "aaa" with "a a" -> aa, a.
  const std::vector<std::string> t2 = {"a", "aa"};
  EXPECT_EQ(RankVocab(t2, {{"a", "a"}}, {}).encode("aaa"), (Ids{1, 0}));
}

TEST(RankMerger, ByteFallbackAndUnkFusing) {
  const std::vector<std::string> t = {"<unk>", "a", "b", "<0xC3>", "<0xA9>"};
  RankMerger::Options bytes;
  bytes.unk_id = 0;
  bytes.byte_fallback = true;
  // é (C3 A9) -> its two byte tokens.
  EXPECT_EQ(RankVocab(t, {}, bytes).encode("aéb"), (Ids{1, 3, 4, 2}));
  // x has no byte tokens here: unk.
  EXPECT_EQ(RankVocab(t, {}, bytes).encode("axb"), (Ids{1, 0, 2}));
  RankMerger::Options fuse;
  fuse.unk_id = 0;
  fuse.fuse_unk = true;
  // Without byte fallback: é and x are unknown, fused into one unk.
  EXPECT_EQ(RankVocab(t, {}, fuse).encode("aéxb"), (Ids{1, 0, 2}));
  fuse.fuse_unk = false;
  EXPECT_EQ(RankVocab(t, {}, fuse).encode("aéxb"), (Ids{1, 0, 0, 2}));
  RankMerger::Options no_unk;  // no unk token: unknown characters vanish
  EXPECT_EQ(RankVocab(t, {}, no_unk).encode("xay"), (Ids{1}));
}

TEST(RankMerger, IgnoreMergesTakesWholeTokens) {
  // "abc" is a token but no merge builds it: normally a, b, c; with
  // ignore_merges the whole word is looked up first.
  const std::vector<std::string> t = {"a", "b", "c", "abc"};
  EXPECT_EQ(RankVocab(t, {}, {}).encode("abc"), (Ids{0, 1, 2}));
  RankMerger::Options im;
  im.ignore_merges = true;
  EXPECT_EQ(RankVocab(t, {}, im).encode("abc"), (Ids{3}));
}

// ---------------------------------------------------------------- GgufSpecialSplitter

TEST(GgufSpecialSplitter, LongestFirstStripsAndParseSpecial) {
  const std::vector<std::string> t = {"<s>", "</s>", "<|end|>", "ab", "abc", "<user>"};
  TokenVocab v{std::span<const std::string>(t)};
  GgufSpecialSplitter sp(v, {{0, false}, {1, false}, {2, false, false, true}, {3, false}, {4, false}, {5, true}});
  std::vector<GgufSpecialSplitter::Piece> out;
  auto render = [&] {
    std::string s;
    for (auto& p : out) s += p.token >= 0 ? "[" + std::to_string(p.token) + "]" : "(" + std::string(p.text) + ")";
    return s;
  };
  sp.split("x<s>y</s>z<|end|>  w", true, out);
  EXPECT_EQ(render(), "(x)[0](y)[1](z)[2](w)");  // <|end|> swallows the spaces after it
  sp.split("xabcx ab", true, out);
  EXPECT_EQ(render(), "(x)[4](x )[3]");  // "abc" (longer) before "ab"
  sp.split("a<s>b<user>c", false, out);
  EXPECT_EQ(render(), "(a<s>b)[5](c)");  // only user-defined tokens without parse_special
  sp.split("", true, out);
  EXPECT_TRUE(out.empty());
}

// ---------------------------------------------------------------- SpmDecoder

TEST(SpmDecoder, Llama2ChainRestoresText) {
  const json chain = json::parse(R"({"type":"Sequence","decoders":[
    {"type":"Replace","pattern":{"String":"▁"},"content":" "},
    {"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]})");
  SpmDecoder d = SpmDecoder::from_json(chain, "test");
  // 🦙 is F0 9F A6 99.
  EXPECT_EQ(d.decode({"▁Hello", "▁wor", "ld", "<0xF0>", "<0x9F>", "<0xA6>", "<0x99>", "!"}), "Hello world🦙!");
  // A byte run that is not valid UTF-8 becomes one U+FFFD per byte.
  EXPECT_EQ(d.decode({"▁a", "<0xC3>", "b"}), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(d.decode({}), "");
}

TEST(SpmDecoder, MetaspaceAndWordPiece) {
  SpmDecoder m = SpmDecoder::from_json(json::parse(R"({"type":"Metaspace","replacement":"▁","prepend_scheme":"always"})"), "t");
  EXPECT_EQ(m.decode({"▁Hey", "▁there", "s"}), "Hey theres");
  SpmDecoder w = SpmDecoder::from_json(json::parse(R"({"type":"WordPiece","prefix":"##","cleanup":true})"), "t");
  // Cleanup runs per token (as in HF): " ," -> ",", " !" -> "!".
  EXPECT_EQ(w.decode({"un", "##aff", "##able", ",", "hello", "!"}), "unaffable, hello!");
  EXPECT_EQ(SpmDecoder::from_json(json(), "t").decode({"a", "b"}), "a b");
  EXPECT_THROW(SpmDecoder::from_json(json::parse(R"({"type":"Nope"})"), "t"), UnsupportedError);
}

// ---------------------------------------------------------------- is_spm_style_bpe

TEST(IsSpmStyleBpe, RecognisesSentencePieceMarkers) {
  EXPECT_TRUE(is_spm_style_bpe(json::parse(R"({"model":{"type":"BPE","byte_fallback":true}})")));
  EXPECT_TRUE(is_spm_style_bpe(json::parse(
      R"({"model":{"type":"BPE"},"pre_tokenizer":{"type":"Metaspace","replacement":"▁"}})")));
  EXPECT_TRUE(is_spm_style_bpe(json::parse(
      R"({"model":{"type":"BPE"},"normalizer":{"type":"Replace","pattern":{"String":" "},"content":"▁"}})")));
  EXPECT_FALSE(is_spm_style_bpe(json::parse(
      R"({"model":{"type":"BPE","byte_fallback":false},"pre_tokenizer":{"type":"ByteLevel"}})")));
  EXPECT_FALSE(is_spm_style_bpe(json::parse(R"({"model":{"type":"BPE"},"pre_tokenizer":{"type":"Whitespace"}})")));
  EXPECT_FALSE(is_spm_style_bpe(json::parse(R"({"model":{"type":"Unigram","vocab":[]}})")));
}

// ---------------------------------------------------------------- spm_from_json

// A miniature llama-2 tokenizer.json: Prepend("▁") + Replace(" ", "▁"),
// byte fallback, <s> template.
json mini_llama() {
  return json::parse(R"({
    "added_tokens":[{"id":0,"content":"<unk>","special":true,"normalized":false},
                    {"id":1,"content":"<s>","special":true,"normalized":false},
                    {"id":2,"content":"</s>","special":true,"normalized":false}],
    "normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},
                  {"type":"Replace","pattern":{"String":" "},"content":"▁"}]},
    "pre_tokenizer":null,
    "post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},
                      {"Sequence":{"id":"A","type_id":0}}],
                      "special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]}}},
    "decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},
               {"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]},
    "model":{"type":"BPE","unk_token":"<unk>","fuse_unk":true,"byte_fallback":true,
      "vocab":{"<unk>":0,"<s>":1,"</s>":2,"<0xC3>":3,"<0xA9>":4,"▁":5,"a":6,"b":7,"c":8,
               "▁a":9,"ab":10,"▁ab":11,"▁c":12},
      "merges":["▁ a","▁a b","a b",["▁","c"]]}})");
}

TEST(SpmFromJson, EncodesLikeHuggingFace) {
  const json cfg = json::parse(R"({"bos_token":"<s>","eos_token":"</s>","unk_token":"<unk>"})");
  auto tok = spm_from_json(mini_llama(), cfg, "mini");
  EXPECT_EQ(tok->type(), "spm");
  EXPECT_EQ(tok->vocab_size(), 13u);
  // "ab c" -> "▁ab▁c" -> ▁ a b ▁ c. Rank 0 "▁ a" -> ▁a; then "▁a b" (rank 1)
  // -> ▁ab; the stale "a b" is skipped; "▁ c" (rank 3) -> ▁c. BOS first.
  EXPECT_EQ(tok->encode("ab c"), (Ids{1, 11, 12}));
  EXPECT_EQ(tok->encode("ab c", false), (Ids{11, 12}));
  // é is not a token: its bytes C3 A9.
  EXPECT_EQ(tok->encode("é", false), (Ids{5, 3, 4}));
  // Special tokens split the text; each piece gets its own "▁" prefix.
  EXPECT_EQ(tok->encode("a<s>b", false, true), (Ids{9, 1, 5, 7}));
  EXPECT_EQ(tok->encode("", true), (Ids{1}));
  EXPECT_EQ(tok->decode(Ids{1, 11, 12}, true), "ab c");
  EXPECT_EQ(tok->decode(Ids{1, 11, 12}, false), "<s> ab c");
  EXPECT_EQ(tok->decode(Ids{5, 3, 4}, true), "é");
  const SpecialTokens& sp = tok->special();
  EXPECT_EQ(sp.bos, 1);
  EXPECT_EQ(sp.eos, 2);
  EXPECT_EQ(sp.unk, 0);
  EXPECT_TRUE(sp.add_bos);
  EXPECT_FALSE(sp.add_eos);
  EXPECT_EQ(tok->token_id("▁ab"), 11);
  EXPECT_EQ(tok->token(12), "▁c");
}

TEST(SpmFromJson, RejectsBrokenModels) {
  json j = mini_llama();
  j["model"]["merges"].push_back("▁ zz");
  EXPECT_THROW(spm_from_json(j, json(), "bad"), FormatError);
  j = mini_llama();
  j["model"]["vocab"]["huge"] = 1 << 30;
  EXPECT_THROW(spm_from_json(j, json(), "bad"), FormatError);
  j = mini_llama();
  j["model"]["merges"].push_back("a b c");
  EXPECT_THROW(spm_from_json(j, json(), "bad"), FormatError);
  j = mini_llama();
  j["model"]["vocab"] = json::array();
  EXPECT_THROW(spm_from_json(j, json(), "bad"), FormatError);
}

// ---------------------------------------------------------------- GGUF metadata checks

weights::GgufValue gguf_array(weights::GgufType elem, std::vector<weights::GgufValue> items) {
  auto a = std::make_shared<weights::GgufArray>();
  a->elem_type = elem;
  a->items = std::move(items);
  return {weights::GgufType::ARRAY, a};
}

// A tiny "llama" vocab: <unk> <s> </s> ▁ a b ▁a ab ▁ab.
weights::GgufFile tiny_gguf() {
  using weights::GgufType;
  using weights::GgufValue;
  weights::GgufFile g;
  std::vector<GgufValue> tokens, scores, types;
  const std::vector<std::pair<std::string, float>> v = {{"<unk>", 0}, {"<s>", 0},   {"</s>", 0},
                                                        {"▁", -1},    {"a", -1},    {"b", -1},
                                                        {"▁a", -2},   {"ab", -3},   {"▁ab", -2.5f}};
  for (size_t i = 0; i < v.size(); ++i) {
    tokens.push_back({GgufType::STRING, v[i].first});
    scores.push_back({GgufType::F32, static_cast<double>(v[i].second)});
    types.push_back({GgufType::I32, static_cast<int64_t>(i == 0 ? 2 : i < 3 ? 3 : 1)});
  }
  g.metadata["tokenizer.ggml.model"] = {GgufType::STRING, std::string("llama")};
  g.metadata["tokenizer.ggml.tokens"] = gguf_array(GgufType::STRING, tokens);
  g.metadata["tokenizer.ggml.scores"] = gguf_array(GgufType::F32, scores);
  g.metadata["tokenizer.ggml.token_type"] = gguf_array(GgufType::I32, types);
  return g;
}

TEST(SpmFromGguf, TinyVocab) {
  auto tok = spm_from_gguf(tiny_gguf(), "tiny");
  // "ab" -> "▁ab": pairs ▁a (-2) and ab (-3); ▁a merges first, then ▁a+b =
  // ▁ab (-2.5) -> 8. BOS (1) first by default.
  EXPECT_EQ(tok->encode("ab"), (Ids{1, 8}));
  // "b a" -> "▁b▁a": ▁b is no token; "▁a" (-2) merges -> ▁ b ▁a = 3 5 6.
  EXPECT_EQ(tok->encode("b a", false), (Ids{3, 5, 6}));
  EXPECT_EQ(tok->decode(Ids{1, 3, 5, 6}, true), "b a");
  EXPECT_EQ(tok->special().bos, 1);
  EXPECT_EQ(tok->special().eos, 2);
  EXPECT_TRUE(tok->special().add_bos);
}

TEST(SpmFromGguf, RejectsInconsistentMetadata) {
  using weights::GgufType;
  {
    auto g = tiny_gguf();
    g.metadata.erase("tokenizer.ggml.tokens");
    EXPECT_THROW(spm_from_gguf(g, "x"), FormatError);
  }
  {
    auto g = tiny_gguf();
    g.metadata["tokenizer.ggml.scores"] = gguf_array(GgufType::F32, {{GgufType::F32, 0.0}});
    EXPECT_THROW(spm_from_gguf(g, "x"), FormatError);
  }
  {
    auto g = tiny_gguf();
    g.metadata["tokenizer.ggml.token_type"] = gguf_array(GgufType::I32, {});
    EXPECT_THROW(spm_from_gguf(g, "x"), FormatError);
  }
  {
    auto g = tiny_gguf();
    g.metadata["tokenizer.ggml.tokens"] = gguf_array(GgufType::I32, {{GgufType::I32, int64_t{1}}});
    EXPECT_THROW(spm_from_gguf(g, "x"), FormatError);
  }
  {  // special ids outside the vocab are ignored, not trusted
    auto g = tiny_gguf();
    g.metadata["tokenizer.ggml.bos_token_id"] = {GgufType::U32, uint64_t{1000000}};
    auto tok = spm_from_gguf(g, "x");
    EXPECT_FALSE(tok->special().bos);
    EXPECT_EQ(tok->encode("ab"), (Ids{8}));
  }
}

// Any bytes, valid UTF-8 or not, encode and decode without crashing; ids
// stay inside the vocabulary.
TEST(SpmFamily, ArbitraryBytesAreSafe) {
  std::vector<std::unique_ptr<Tokenizer>> toks;
  toks.push_back(spm_from_gguf(tiny_gguf(), "tiny"));
  toks.push_back(spm_from_json(mini_llama(), json(), "mini"));
  toks.push_back(Tokenizer::open(std::string(KAIVAL_TESTDATA) + "/tokenizer/unigram-t5"));
  std::mt19937 rng(1234);
  const std::string alphabet[] = {"a", "b", " ", "▁", "<s>", "</s>", "\xC3", "\xA9", "\xFF", "\n", "한", "🦙", "\0"};
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    const int n = static_cast<int>(rng() % 24);
    for (int k = 0; k < n; ++k) text += alphabet[rng() % std::size(alphabet)];
    for (const auto& tok : toks) {
      for (bool special : {false, true}) {
        const auto ids = tok->encode(text, special, special);
        for (int32_t id : ids) ASSERT_LT(static_cast<size_t>(id), tok->vocab_size()) << text;
        (void)tok->decode(ids, special);
      }
    }
  }
}

}  // namespace
}  // namespace kaival::tokenizer
