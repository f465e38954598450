// WordPiece (BERT) on a hand-made vocabulary: BertNormalizer, BertPreTokenizer,
// greedy longest-match-first pieces with "##". Expected ids worked out by hand.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/mmap.h"
#include "weights/gguf.h"

#include "core/error.h"
#include "tokenizer/factories.h"
#include "tokenizer/wordpiece.h"

namespace kaival::tokenizer {
namespace {

using json = nlohmann::json;
using Ids = std::vector<int32_t>;

json mini_bert(int max_chars = 100) {
  json j = json::parse(R"({
    "added_tokens":[{"id":0,"content":"[PAD]","special":true,"normalized":false},
                    {"id":1,"content":"[UNK]","special":true,"normalized":false},
                    {"id":2,"content":"[CLS]","special":true,"normalized":false},
                    {"id":3,"content":"[SEP]","special":true,"normalized":false}],
    "normalizer":{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,
                  "strip_accents":null,"lowercase":true},
    "pre_tokenizer":{"type":"BertPreTokenizer"},
    "post_processor":{"type":"TemplateProcessing",
      "single":[{"SpecialToken":{"id":"[CLS]","type_id":0}},{"Sequence":{"id":"A","type_id":0}},
                {"SpecialToken":{"id":"[SEP]","type_id":0}}],
      "special_tokens":{"[CLS]":{"id":"[CLS]","ids":[2],"tokens":["[CLS]"]},
                        "[SEP]":{"id":"[SEP]","ids":[3],"tokens":["[SEP]"]}}},
    "decoder":{"type":"WordPiece","prefix":"##","cleanup":true},
    "model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##",
      "vocab":{"[PAD]":0,"[UNK]":1,"[CLS]":2,"[SEP]":3,"un":4,"##aff":5,"##able":6,"hello":7,
               ",":8,"!":9,"##s":10,"world":11,"cafe":12,"中":13,"u":14,"##n":15}}})");
  j["model"]["max_input_chars_per_word"] = max_chars;
  return j;
}

TEST(WordPiece, BertPipeline) {
  auto tok = wordpiece_from_json(mini_bert(), json(), "mini");
  EXPECT_EQ(tok->type(), "wordpiece");
  // Normalized: "unaffable, hello worlds! cafe  中  文 " (lowercase, é -> e,
  // CJK padded); words: unaffable , hello worlds ! cafe 中 文.
  //   unaffable -> un (not u: longest first) ##aff ##able = 4 5 6
  //   worlds -> world ##s = 11 10;  文 is not in the vocab -> [UNK] 1.
  EXPECT_EQ(tok->encode("Unaffable, HELLO worlds! Café 中文"),
            (Ids{2, 4, 5, 6, 8, 7, 11, 10, 9, 12, 13, 1, 3}));
  EXPECT_EQ(tok->encode("hello", false), (Ids{7}));
  // "unx": un matches, but "##x" does not: the whole word is [UNK].
  EXPECT_EQ(tok->encode("unx hello", false), (Ids{1, 7}));
  // Special tokens in the text.
  EXPECT_EQ(tok->encode("hello [SEP] world", false, true), (Ids{7, 3, 11}));
  EXPECT_EQ(tok->decode(Ids{2, 4, 5, 6, 8, 7, 9, 3}, true), "unaffable, hello!");
  EXPECT_EQ(tok->special().cls, 2);
  EXPECT_EQ(tok->special().sep, 3);
  EXPECT_EQ(tok->special().unk, 1);
}

TEST(WordPiece, LongWordsAreUnknown) {
  // max_input_chars_per_word 5: "unaffable" (9 characters) -> [UNK]; "hello" (5) is fine.
  auto tok = wordpiece_from_json(mini_bert(5), json(), "mini");
  EXPECT_EQ(tok->encode("unaffable hello", false), (Ids{1, 7}));
}

TEST(WordPieceModel, GgufStylePrefixes) {
  // llama.cpp's GGUF form: word-initial pieces "▁x", continuations bare.
  const std::vector<std::string> t = {"[UNK]", "▁un", "aff", "able", "▁u", "n"};
  TokenVocab v{std::span<const std::string>(t)};
  WordPieceModel::Options opt;
  opt.word_prefix = "\xE2\x96\x81";
  opt.continuation_prefix = "";
  opt.unk_id = 0;
  WordPieceModel m(&v, opt);
  Ids out;
  m.encode_word("unaffable", out);
  EXPECT_EQ(out, (Ids{1, 2, 3}));
  out.clear();
  m.encode_word("unx", out);
  EXPECT_EQ(out, (Ids{0}));
}

// ---------------------------------------------------------------- a real BERT vocab

// The BERT tokenizer.json of bge's vocab, rebuilt from the GGUF the same way
// tools/gen_wordpiece_reference.py builds the one it ran Hugging Face on:
// "▁x" -> "x", "[X]" -> "[X]", other pieces -> "##x".
json bert_tokenizer_json(const std::vector<std::string>& gguf_tokens) {
  json vocab = json::object();
  for (size_t i = 0; i < gguf_tokens.size(); ++i) {
    const std::string& t = gguf_tokens[i];
    std::string piece;
    if (t.rfind("\xE2\x96\x81", 0) == 0) piece = t.substr(3);
    else if (t.size() >= 2 && t.front() == '[' && t.back() == ']') piece = t;
    else piece = "##" + t;
    vocab[piece] = i;
  }
  json tj = mini_bert();
  json added = json::array();
  for (const char* s : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"})
    added.push_back({{"id", vocab.at(s)}, {"content", s}, {"special", true}, {"normalized", false}});
  tj["added_tokens"] = added;
  tj["post_processor"]["special_tokens"]["[CLS]"]["ids"] = {vocab.at("[CLS]")};
  tj["post_processor"]["special_tokens"]["[SEP]"]["ids"] = {vocab.at("[SEP]")};
  tj["model"]["vocab"] = std::move(vocab);
  return tj;
}

TEST(WordPieceBge, MatchesHuggingFaceOnEveryText) {
  const std::string gguf_path = std::string(KAIVAL_SHARED_DATA) + "/gguf-vocab/ggml-vocab-bert-bge.gguf";
  if (!std::filesystem::exists(gguf_path)) GTEST_SKIP() << "MISSING test data " << gguf_path;
  MappedFile file(gguf_path);
  const auto gguf = weights::GgufFile::parse(file);
  const auto tok = wordpiece_from_json(bert_tokenizer_json(gguf->get_strings("tokenizer.ggml.tokens")), json(), "bge");
  std::ifstream in(std::string(KAIVAL_TESTDATA) + "/tokenizer/bert-bge.ids.jsonl");
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
    const std::string d = tok->decode(want, false), ds = tok->decode(want, true);
    if (d == j.at("decoded").get<std::string>() && ds == j.at("decoded_skip").get<std::string>())
      ++dec_ok;
    else if (shown++ < 5)
      ADD_FAILURE() << "decode of \"" << text << "\": \"" << d << "\" vs \"" << j.at("decoded").get<std::string>()
                    << "\"";
  }
  std::printf("[ bert-bge tokenizer.json ] ids %zu/%zu, decode %zu/%zu\n", ids_ok, total, dec_ok, total);
  ASSERT_GT(total, 250u);
  EXPECT_EQ(ids_ok, total);
  EXPECT_EQ(dec_ok, total);
}

}  // namespace
}  // namespace kaival::tokenizer
