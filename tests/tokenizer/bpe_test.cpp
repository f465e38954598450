// Unit tests of the byte-level BPE building blocks on small hand-made inputs
// whose results follow from the algorithms' definitions (and, for split
// behaviours, the examples in Hugging Face's documentation).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/factories.h"
#include "tokenizer/normalize.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/special.h"
#include "tokenizer/utf8.h"

namespace {

using json = nlohmann::json;
using namespace kaival::tokenizer;

std::vector<std::string> pieces(const json& pre_json, std::string_view text) {
  auto pre = make_pre_tokenizer(pre_json, "test");
  PreTokenized pt;
  PreScratch s;
  pt.reset(text, true);
  pre->apply(pt, s);
  pt.map_bytes();  // show byte-level pieces as mapped characters
  std::vector<std::string> out;
  for (size_t i = 0; i < pt.pieces.size(); ++i) out.emplace_back(pt.piece(i));
  return out;
}

using V = std::vector<std::string>;

TEST(ByteLevelMap, Gpt2Mapping) {
  const auto& m = ByteLevelMap::instance();
  EXPECT_EQ(m.char_of(' '), 0x120u);   // 'Ġ'
  EXPECT_EQ(m.char_of('\n'), 0x10Au);  // 'Ċ'
  EXPECT_EQ(m.char_of('A'), static_cast<char32_t>('A'));
  EXPECT_EQ(m.char_of(0xAD), 0x143u);  // soft hyphen is the last remapped byte
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    seen.insert(m.char_of(static_cast<uint8_t>(b)));
    EXPECT_EQ(m.byte_of(m.char_of(static_cast<uint8_t>(b))), b);
  }
  EXPECT_EQ(seen.size(), 256u);
  std::string raw;
  EXPECT_FALSE(m.decode_append("<｜x｜>", raw));  // not all mapped characters
}

TEST(PreTokenize, SplitBehaviours) {
  auto split = [](const char* behavior) {
    return json{{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", false}};
  };
  const std::string t = "the-final--countdown";
  EXPECT_EQ(pieces(split("Removed"), t), (V{"the", "final", "countdown"}));
  EXPECT_EQ(pieces(split("Isolated"), t), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(pieces(split("MergedWithPrevious"), t), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(pieces(split("MergedWithNext"), t), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(pieces(split("Contiguous"), t), (V{"the", "-", "final", "--", "countdown"}));
  json inv = split("Removed");
  inv["pattern"] = {{"Regex", "[a-z]+"}};
  inv["invert"] = true;  // keep only the matches
  EXPECT_EQ(pieces(inv, t), (V{"the", "final", "countdown"}));
}

TEST(PreTokenize, DigitsPunctuationWhitespace) {
  EXPECT_EQ(pieces({{"type", "Digits"}, {"individual_digits", true}}, "ab123c"), (V{"ab", "1", "2", "3", "c"}));
  EXPECT_EQ(pieces({{"type", "Digits"}, {"individual_digits", false}}, "ab123c"), (V{"ab", "123", "c"}));
  EXPECT_EQ(pieces({{"type", "Punctuation"}}, "Hey!! you?"), (V{"Hey", "!", "!", " you", "?"}));
  EXPECT_EQ(pieces({{"type", "WhitespaceSplit"}}, " a\u00a0 b\tc "), (V{"a", "b", "c"}));
  EXPECT_EQ(pieces({{"type", "Whitespace"}}, "Hey, you!"), (V{"Hey", ",", "you", "!"}));
  EXPECT_EQ(pieces({{"type", "BertPreTokenizer"}}, "Hey, you!"), (V{"Hey", ",", "you", "!"}));
}

TEST(PreTokenize, ByteLevelGpt2Regex) {
  const json bl = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  // GPT-2's regex keeps the space with the following word; mapped ' ' is 'Ġ'.
  EXPECT_EQ(pieces(bl, "Hello world"), (V{"ĠHello", "Ġworld"}));
  EXPECT_EQ(pieces(bl, "I'm  here\n"), (V{"ĠI", "'m", "Ġ", "Ġhere", "Ċ"}));
  // Oniguruma's \s includes U+0085 (NEL), so NELs split as whitespace
  // ("\s+(?!\S)" then "\s+"); as non-space they would form one piece.
  const json nop = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  EXPECT_EQ(pieces(nop, "a\u0085\u0085b").size(), 4u);
}

TEST(PreTokenize, MetaspacePrependSchemes) {
  const json always = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "always"}, {"split", true}};
  EXPECT_EQ(pieces(always, "Hey friend"), (V{"▁Hey", "▁friend"}));
  EXPECT_EQ(pieces(always, " Hey"), (V{"▁Hey"}));
  const json never = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "never"}, {"split", false}};
  EXPECT_EQ(pieces(never, "Hey friend"), (V{"Hey▁friend"}));
}

TEST(Normalize, Forms) {
  auto norm = [](const json& j, std::string s) {
    make_normalizer(j, "test")->apply(s);
    return s;
  };
  EXPECT_EQ(norm({{"type", "NFC"}}, "e\u0301"), "\u00e9");
  EXPECT_EQ(norm({{"type", "NFD"}}, "\u00e9"), "e\u0301");
  EXPECT_EQ(norm({{"type", "NFKC"}}, "\ufb01 \u2460"), "fi 1");
  EXPECT_EQ(norm({{"type", "Lowercase"}}, "ÀB İ Σ"), "àb i\u0307 σ");
  EXPECT_EQ(norm({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}, "a b  c"), "a▁b▁▁c");
  EXPECT_EQ(norm({{"type", "Replace"}, {"pattern", {{"Regex", " {2,}"}}}, {"content", " "}}, "a  b   c"), "a b c");
  EXPECT_EQ(norm({{"type", "Prepend"}, {"prepend", "▁"}}, "x"), "▁x");
  EXPECT_EQ(norm({{"type", "Prepend"}, {"prepend", "▁"}}, ""), "");
  EXPECT_EQ(norm({{"type", "Strip"}, {"strip_left", true}, {"strip_right", false}}, "  a  "), "a  ");
  EXPECT_EQ(norm({{"type", "Sequence"}, {"normalizers", {{{"type", "NFD"}}, {{"type", "StripAccents"}}}}}, "café"), "cafe");
  EXPECT_EQ(norm({{"type", "BertNormalizer"}, {"lowercase", true}}, "Héllo\t中文"), "hello  中  文 ");
  // HF's clean_text drops controls, format and private-use characters but keeps
  // unassigned code points (U+0378), which its category tables do not list.
  EXPECT_EQ(norm({{"type", "BertNormalizer"}, {"lowercase", false}}, "a\u0378b\u200bc\ue000d\x01" "e"), "a\u0378bcde");
  EXPECT_EQ(norm({{"type", "NFC"}}, "a\xff"), "a\uFFFD");  // invalid UTF-8 is replaced, not trusted
  EXPECT_THROW(make_normalizer({{"type", "NoSuchThing"}}, "t"), kaival::UnsupportedError);
}

TEST(AddedTokens, LstripRstripSingleWord) {
  std::vector<AddedToken> toks(3);
  toks[0] = {"<mask>", 7, true, true, true, false, false};
  toks[1] = {"ab", 8, false, false, false, true, false};
  toks[2] = {"<s>", 9, true, false, false, false, false};
  AddedTokenMatcher m(toks);
  auto split = [&](std::string_view t, bool parse_special = true) {
    std::vector<TextSegment> out;
    m.split(t, parse_special, out);
    std::vector<std::pair<std::string, int32_t>> r;
    for (const auto& s : out) r.emplace_back(std::string(s.text), s.id);
    return r;
  };
  using R = std::vector<std::pair<std::string, int32_t>>;
  EXPECT_EQ(split("a  <mask>  b"), (R{{"a", -1}, {"  <mask>  ", 7}, {"b", -1}}));
  EXPECT_EQ(split("xab ab"), (R{{"xab ", -1}, {"ab", 8}}));
  EXPECT_EQ(split("<s>hi<s>"), (R{{"<s>", 9}, {"hi", -1}, {"<s>", 9}}));
  EXPECT_EQ(split("<s>hi ab", false), (R{{"<s>hi ", -1}, {"ab", 8}}));
}

// A tiny BPE tokenizer.json whose merge order decides the result.
json tiny_bpe(const json& merges) {
  return {{"model",
           {{"type", "BPE"},
            {"vocab", {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"<s>", 5}, {"aa", 6}}},
            {"merges", merges}}},
          {"added_tokens", {{{"id", 5}, {"content", "<s>"}, {"special", true}, {"normalized", false}}}},
          {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
            {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {5}}, {"tokens", {"<s>"}}}}}}}},
          {"decoder", nullptr}};
}

TEST(BpeModel, MergeOrderAndTies) {
  auto t1 = bpe_from_json(tiny_bpe({"b c", "a b", "a a"}), nullptr, "t1");
  EXPECT_EQ(t1->encode("abc", false), (std::vector<int32_t>{0, 4}));  // (b,c) ranks before (a,b)
  auto t2 = bpe_from_json(tiny_bpe({json::array({"a", "b"}), json::array({"b", "c"}), "a a"}), nullptr, "t2");
  EXPECT_EQ(t2->encode("abc", false), (std::vector<int32_t>{3, 2}));
  EXPECT_EQ(t2->encode("aaa", false), (std::vector<int32_t>{6, 0}));  // leftmost pair first on ties
  EXPECT_EQ(t2->encode("abc", true), (std::vector<int32_t>{5, 3, 2}));  // template adds <s>
  EXPECT_EQ(t2->encode("<s>abc", false), (std::vector<int32_t>{5, 3, 2}));
  EXPECT_TRUE(t2->special().add_bos);
  EXPECT_EQ(t2->special().bos, 5);
  EXPECT_EQ(t2->decode(std::vector<int32_t>{5, 3, 2}, true), "ab c");  // no decoder: tokens joined by spaces
  // A long word (heap path) merges exactly like the short path would.
  std::string longw(3001, 'a');
  const auto ids = t2->encode(longw, false);
  ASSERT_EQ(ids.size(), 1501u);
  for (size_t i = 0; i + 1 < ids.size(); ++i) EXPECT_EQ(ids[i], 6);
  EXPECT_EQ(ids.back(), 0);
}

TEST(BpeModel, RejectsBadFiles) {
  EXPECT_THROW(bpe_from_json(tiny_bpe({"a x"}), nullptr, "t"), kaival::FormatError);  // unknown token
  EXPECT_THROW(bpe_from_json(tiny_bpe({"c c"}), nullptr, "t"), kaival::FormatError);  // result not in vocab
  EXPECT_THROW(bpe_from_json(tiny_bpe({"a b c"}), nullptr, "t"), kaival::FormatError);
  json huge = tiny_bpe(json::array());
  huge["model"]["vocab"]["zz"] = 2000000000;  // would size a 2e9-entry table
  EXPECT_THROW(bpe_from_json(huge, nullptr, "t"), kaival::FormatError);
  json bad_re = tiny_bpe(json::array());
  bad_re["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  EXPECT_THROW(bpe_from_json(bad_re, nullptr, "t"), kaival::FormatError);
}

// With a vocabulary of exactly the 256 byte characters and no merges, ids
// are the bytes themselves: any input, including invalid UTF-8, round-trips.
TEST(BpeModel, ByteLevelCoversEveryByte) {
  json vocab = json::object();
  const auto& m = ByteLevelMap::instance();
  for (int b = 0; b < 256; ++b) vocab[std::string(m.utf8_of(static_cast<uint8_t>(b)))] = b;
  json tj = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}},
             {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
             {"decoder", {{"type", "ByteLevel"}}}};
  auto tok = bpe_from_json(tj, nullptr, "bytes");
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  for (const std::string& s : {all, std::string("\xff\xfe\xc3"), std::string("a\0b", 3), std::string("한국어 ok")}) {
    const auto ids = tok->encode(s, false);
    ASSERT_EQ(ids.size(), s.size());
    for (size_t i = 0; i < s.size(); ++i) EXPECT_EQ(ids[i], static_cast<uint8_t>(s[i]));
    EXPECT_EQ(tok->decode(ids), utf8::lossy(s));
  }
  EXPECT_EQ(utf8::lossy("\xe2\x82"), "\uFFFD");        // truncated sequence: one replacement
  EXPECT_EQ(utf8::lossy("\xed\xa0\x80"), "\uFFFD\uFFFD\uFFFD");  // surrogate: each byte
}

}  // namespace
