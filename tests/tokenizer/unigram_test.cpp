// Unigram (Viterbi) tokenization on a hand-made vocabulary. Every expected
// segmentation is worked out by hand from the scores in the comments.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/factories.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unigram.h"

namespace kaival::tokenizer {
namespace {

using json = nlohmann::json;
using Ids = std::vector<int32_t>;

// id: piece (score)
//  0 <unk> (0)   1 ▁ (-2)    2 a (-3)     3 b (-3)    4 ab (-4)   5 ▁ab (-5.5)
//  6 ▁a (-3.5)   7 c (-2.5)  8 bc (-3)    9 abc (-7) 10 <0x78> (0) 11 </s> (0)
// The lowest score is -7, so an unknown character costs -7 - 10 = -17.
json mini_unigram(bool byte_fallback) {
  json j = json::parse(R"({
    "added_tokens":[{"id":0,"content":"<unk>","special":true,"normalized":false},
                    {"id":11,"content":"</s>","special":true,"normalized":false}],
    "normalizer":null,
    "pre_tokenizer":{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true},
    "post_processor":{"type":"TemplateProcessing","single":[{"Sequence":{"id":"A","type_id":0}},
                      {"SpecialToken":{"id":"</s>","type_id":0}}],
                      "special_tokens":{"</s>":{"id":"</s>","ids":[11],"tokens":["</s>"]}}},
    "decoder":{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true},
    "model":{"type":"Unigram","unk_id":0,"vocab":[["<unk>",0.0],["▁",-2.0],["a",-3.0],["b",-3.0],
      ["ab",-4.0],["▁ab",-5.5],["▁a",-3.5],["c",-2.5],["bc",-3.0],["abc",-7.0],["<0x78>",0.0],["</s>",0.0]]}})");
  j["model"]["byte_fallback"] = byte_fallback;
  return j;
}

struct Model {
  std::vector<std::string> texts;
  std::vector<double> scores;
  TokenVocab vocab;
  UnigramModel model;
  explicit Model(bool byte_fallback) {
    const json j = mini_unigram(false);
    for (const auto& e : j["model"]["vocab"]) {
      texts.push_back(e[0].get<std::string>());
      scores.push_back(e[1].get<double>());
    }
    vocab = TokenVocab(std::span<const std::string>(texts));
    model = UnigramModel(&vocab, scores, {0, byte_fallback});
  }
  Ids encode(std::string_view w) const {
    Ids out;
    model.encode_word(w, out);
    return out;
  }
};

TEST(Unigram, PicksTheBestScoringSegmentation) {
  Model m(false);
  // "▁abc": ▁a+bc = -3.5-3 = -6.5 beats ▁ab+c = -8, ▁+a+bc = -8,
  // ▁+ab+c = -8.5, ▁+abc = -9, ▁a+b+c = -9, ▁+a+b+c = -10.5.
  EXPECT_EQ(m.encode("▁abc"), (Ids{6, 8}));
  // "▁ab": ▁ab = -5.5 beats ▁+ab = -6, ▁a+b = -6.5, ▁+a+b = -8.
  EXPECT_EQ(m.encode("▁ab"), (Ids{5}));
  // "abc": a+bc = -6 beats ab+c = -6.5, abc = -7, a+b+c = -8.5.
  EXPECT_EQ(m.encode("abc"), (Ids{2, 8}));
  EXPECT_EQ(m.encode(""), Ids{});
}

TEST(Unigram, UnknownCharactersFuseIntoOneUnk) {
  Model m(false);
  // "▁xa": x starts no piece, so it is unk (-17): ▁ + <unk> + a -> 1, 0, 2.
  EXPECT_EQ(m.encode("▁xa"), (Ids{1, 0, 2}));
  // "▁xéa": x and é are adjacent unknowns and fuse into one unk.
  EXPECT_EQ(m.encode("▁xéa"), (Ids{1, 0, 2}));
}

TEST(Unigram, ByteFallbackSpellsUnknownPieces) {
  Model m(true);
  // x (0x78) has the byte piece <0x78> (id 10): ▁, <0x78>, a.
  EXPECT_EQ(m.encode("▁xa"), (Ids{1, 10, 2}));
  // "xy" fuses into one unknown piece; y has no byte piece, so the whole piece is unk.
  EXPECT_EQ(m.encode("▁xya"), (Ids{1, 0, 2}));
}

TEST(Unigram, TokenizerJsonPipeline) {
  auto tok = unigram_from_json(mini_unigram(false), json(), "mini");
  EXPECT_EQ(tok->type(), "unigram");
  EXPECT_EQ(tok->vocab_size(), 12u);
  // Metaspace: "abc ab" -> words "▁abc", "▁ab" -> (6, 8), (5); then </s>.
  EXPECT_EQ(tok->encode("abc ab"), (Ids{6, 8, 5, 11}));
  EXPECT_EQ(tok->encode("abc ab", false), (Ids{6, 8, 5}));
  // The Metaspace decoder drops the first token's "▁"; </s> is special.
  EXPECT_EQ(tok->decode(Ids{6, 8, 5, 11}, true), "abc ab");
  EXPECT_EQ(tok->decode(Ids{6, 8, 5, 11}, false), "abc ab</s>");
  EXPECT_EQ(tok->special().unk, 0);
  EXPECT_TRUE(unigram_from_json(mini_unigram(true), json(), "mini")->encode("x", false) == (Ids{1, 10}));
}

TEST(Unigram, RejectsBadVocab) {
  json j = mini_unigram(false);
  j["model"]["vocab"][3] = json::array({"b"});
  EXPECT_THROW(unigram_from_json(j, json(), "bad"), FormatError);
  j = mini_unigram(false);
  j["model"]["unk_id"] = 99;
  EXPECT_THROW(unigram_from_json(j, json(), "bad"), FormatError);
}

// ---------------------------------------------------------------- a real SentencePiece model

// testdata/tokenizer/unigram-t5: a unigram model trained by SentencePiece
// (tools/gen_unigram_fixture.py) with its NFKC precompiled_charsmap, written
// as HF writes T5 tokenizers; reference ids from HF tokenizers (Rust).
const std::filesystem::path kT5Dir = std::filesystem::path(KAIVAL_TESTDATA) / "tokenizer" / "unigram-t5";

TEST(UnigramT5, MatchesHuggingFaceOnEveryText) {
  const auto tok = Tokenizer::open(kT5Dir.string());
  ASSERT_EQ(tok->type(), "unigram");
  std::ifstream in(kT5Dir.string() + ".ids.jsonl");
  size_t total = 0, ids_ok = 0, dec_ok = 0, shown = 0;
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line);
    if (j.contains("meta")) continue;
    ++total;
    const std::string text = j.at("text");
    const auto want = j.at("ids").get<Ids>();
    const Ids got = tok->encode(text, true, true);
    if (got == want)
      ++ids_ok;
    else if (shown++ < 5)
      ADD_FAILURE() << "text \"" << text << "\"\n  kaival:    " << fmt::format("{}", got)
                    << "\n  reference: " << fmt::format("{}", want);
    if (tok->decode(want, false) == j.at("decoded").get<std::string>() &&
        tok->decode(want, true) == j.at("decoded_skip").get<std::string>())
      ++dec_ok;
    else if (shown++ < 5)
      ADD_FAILURE() << "decode of \"" << text << "\": \"" << tok->decode(want, true) << "\" vs \""
                    << j.at("decoded_skip").get<std::string>() << "\"";
  }
  std::printf("[ unigram-t5 ] ids %zu/%zu, decode %zu/%zu\n", ids_ok, total, dec_ok, total);
  ASSERT_GT(total, 250u);
  EXPECT_EQ(ids_ok, total);
  EXPECT_EQ(dec_ok, total);
}

TEST(Precompiled, AppliesNfkcRulesPerGraphemeCluster) {
  const json tj = json::parse(std::ifstream(kT5Dir / "tokenizer.json"));
  const auto norm = make_spm_normalizer(tj.at("normalizer").at("normalizers").at(0), "t5");
  ASSERT_TRUE(norm);
  auto apply = [&](std::string s) {
    norm->apply(s);
    return s;
  };
  // NFKC compatibility mappings.
  EXPECT_EQ(apply("ﬁne"), "fine");
  EXPECT_EQ(apply("ｈｅｌｌｏ①"), "hello1");
  EXPECT_EQ(apply("plain ascii"), "plain ascii");
  EXPECT_EQ(apply("한국어"), "한국어");
  // HF's quirk: a short cluster whose first character has a rule is replaced
  // whole by that rule (fullwidth h + combining tilde -> "h").
  EXPECT_EQ(apply("ｈ\u0303"), "h");
  // Invalid UTF-8 is tolerated.
  EXPECT_NO_THROW(apply("\xFF\xFEa"));
  EXPECT_THROW(PrecompiledNormalizer("\x10\0\0\0abc", "bad"), FormatError);
  EXPECT_THROW(make_spm_normalizer(json::parse(R"({"type":"Precompiled","precompiled_charsmap":"!!"})"), "bad"),
               FormatError);
}


// ---------------------------------------------------------------- UnicodeScripts and FixedLength

std::vector<std::string> pre_split(const json& spec, std::string_view text) {
  const auto pre = make_pre_tokenizer(spec, "test");
  PreTokenized pt;
  PreScratch scratch;
  pt.reset(text, true);
  pre->apply(pt, scratch);
  std::vector<std::string> out;
  for (size_t i = 0; i < pt.pieces.size(); ++i) out.emplace_back(pt.piece(i));
  return out;
}

using Pieces = std::vector<std::string>;

TEST(PreTokenizer, UnicodeScriptsSplitsWhereTheScriptChanges) {
  const json us = {{"type", "UnicodeScripts"}};
  // Hugging Face's own examples: kana count as Han, a space joins any script.
  EXPECT_EQ(pre_split(us, "どこで生れ。Yes"), (Pieces{"どこで生れ", "。", "Yes"}));
  EXPECT_EQ(pre_split(us, "Apples are りんご 林檎"), (Pieces{"Apples are ", "りんご 林檎"}));
  EXPECT_EQ(pre_split(us, "한국어text와123"), (Pieces{"한국어", "text", "와", "123"}));
  EXPECT_EQ(pre_split(us, "ーカタカナー"), (Pieces{"ーカタカナー"}));
  // Spaces and characters newer than Unicode 9 (🦙) belong to any script; HF
  // drops such text before the first character with a script.
  EXPECT_EQ(pre_split(us, "  ab"), (Pieces{"ab"}));
  EXPECT_EQ(pre_split(us, "🦙 llama 한"), (Pieces{"llama ", "한"}));
  EXPECT_EQ(pre_split(us, "   "), Pieces{});
  EXPECT_EQ(pre_split(us, ""), Pieces{});
  EXPECT_NO_THROW(pre_split(us, "\xFF\xFEa\xE2\x82"));  // invalid UTF-8 is tolerated
}

TEST(PreTokenizer, FixedLengthCutsCharactersNotBytes) {
  const json fl = {{"type", "FixedLength"}, {"length", 3}};
  EXPECT_EQ(pre_split(fl, "Hello world"), (Pieces{"Hel", "lo ", "wor", "ld"}));
  EXPECT_EQ(pre_split(fl, "Hello 👋 world"), (Pieces{"Hel", "lo ", "👋 w", "orl", "d"}));
  EXPECT_EQ(pre_split(fl, "한국어로"), (Pieces{"한국어", "로"}));
  EXPECT_EQ(pre_split({{"type", "FixedLength"}}, "Hello world"), (Pieces{"Hello", " worl", "d"}));  // default 5
  EXPECT_THROW(make_pre_tokenizer({{"type", "FixedLength"}, {"length", 0}}, "bad"), FormatError);
  EXPECT_THROW(make_pre_tokenizer({{"type", "FixedLength"}, {"length", -3}}, "bad"), FormatError);
  EXPECT_THROW(make_pre_tokenizer({{"type", "FixedLength"}, {"length", "3"}}, "bad"), FormatError);
}

// unigram-t5 with its pre_tokenizer replaced (see tools/README.md): reference
// ids from Hugging Face's Rust tokenizers on the corpus plus mixed-script texts.
json t5_variant(const std::string& name) {
  json j = json::parse(std::ifstream(kT5Dir / "tokenizer.json"));
  const json metaspace = j.at("pre_tokenizer");
  if (name == "unicode_scripts")
    j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "UnicodeScripts"}}, metaspace}}};
  else
    j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {metaspace, {{"type", "FixedLength"}, {"length", 3}}}}};
  return j;
}

class T5Variant : public ::testing::TestWithParam<std::string> {};

TEST_P(T5Variant, MatchesHuggingFace) {
  const std::string name = GetParam();
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("kaival-t5-{}-{}", name, ::getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << t5_variant(name).dump();
  const auto tok = Tokenizer::from_tokenizer_json((dir / "tokenizer.json").string(),
                                                  (kT5Dir / "tokenizer_config.json").string());
  std::ifstream in(kT5Dir.string() + "." + name + ".ids.jsonl");
  size_t total = 0, ok = 0, shown = 0, differs_from_plain = 0;
  const auto plain = Tokenizer::open(kT5Dir.string());
  std::vector<std::string> texts;
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line);
    if (j.contains("meta")) continue;
    ++total;
    const std::string text = j.at("text");
    texts.push_back(text);
    const auto want = j.at("ids").get<Ids>();
    const Ids got = tok->encode(text, true, true);
    if (got != plain->encode(text, true, true)) ++differs_from_plain;
    if (got == want) ++ok;
    else if (shown++ < 5)
      ADD_FAILURE() << "text \"" << text << "\"\n  kaival:    " << fmt::format("{}", got)
                    << "\n  reference: " << fmt::format("{}", want);
  }
  std::printf("[ unigram-t5 + %s ] ids %zu/%zu (%zu differ from plain Metaspace)\n", name.c_str(), ok, total,
              differs_from_plain);
  ASSERT_GT(total, 250u);
  EXPECT_EQ(ok, total);
  EXPECT_GT(differs_from_plain, 5u) << "the pre-tokenizer had no effect on the corpus";

  // When node and the reference are installed, the committed ids must be what it gives today.
  const auto npm = std::filesystem::path(KAIVAL_SOURCE_DIR) / "tools" / "npm";
  if (std::filesystem::exists(npm / "node_modules" / "@anush008" / "tokenizers") &&
      std::system("node --version >/dev/null 2>&1") == 0) {
    std::ofstream(dir / "texts.json") << json(texts).dump();
    const std::string cmd = fmt::format("node '{}' '{}' '{}' > '{}'", (npm / "reference_tokenizer_json.js").string(),
                                        (dir / "tokenizer.json").string(), (dir / "texts.json").string(),
                                        (dir / "live.jsonl").string());
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::ifstream live(dir / "live.jsonl");
    std::ifstream committed(kT5Dir.string() + "." + name + ".ids.jsonl");
    std::string a, b;
    std::getline(live, a);  // meta lines name different paths
    std::getline(committed, b);
    for (size_t i = 0; std::getline(committed, b); ++i) {
      ASSERT_TRUE(std::getline(live, a));
      EXPECT_EQ(json::parse(a).at("ids"), json::parse(b).at("ids")) << "text " << i;
    }
  }
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(PreTokenizers, T5Variant, ::testing::Values("unicode_scripts", "fixed_length"));

}  // namespace
}  // namespace kaival::tokenizer
