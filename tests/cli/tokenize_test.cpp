// `kaival tokenize` as a user runs it: the real binary on llama.cpp's vocab
// test files (.inp in, .out format out), --text, --decode and error exits.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "../support/files.h"
#include "../support/process.h"

namespace {

namespace fs = std::filesystem;

using CliRun = kaival::testing_support::CommandResult;

// Runs the CLI with `args` (already shell-quoted), capturing stdout.
CliRun kaival(const std::string& args) {
  return kaival::testing_support::run_command(std::string("'") + KAIVAL_BINARY + "' tokenize " + args + " 2>/dev/null");
}

using kaival::testing_support::read_file;

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

fs::path vocab_dir() { return fs::path(KAIVAL_SHARED_DATA) / "gguf-vocab"; }

TEST(CliTokenize, InpFileGivesOutFileForEveryVocab) {
  if (!fs::exists(vocab_dir())) GTEST_SKIP() << "no " << vocab_dir();
  int checked = 0;
  for (const auto& e : fs::directory_iterator(vocab_dir())) {
    const fs::path g = e.path();
    if (g.extension() != ".gguf" || !fs::exists(g.string() + ".inp")) continue;
    const CliRun r = kaival(q(g) + " --file " + q(g.string() + ".inp"));
    EXPECT_EQ(r.code, 0) << g;
    EXPECT_EQ(r.out, read_file(g.string() + ".out")) << g;
    ++checked;
  }
  EXPECT_GE(checked, 10);
}

TEST(CliTokenize, TextAndDecode) {
  const fs::path g = vocab_dir() / "ggml-vocab-gpt-2.gguf";
  if (!fs::exists(g)) GTEST_SKIP() << "no " << g;
  // Ids from the upstream .out: " Hello World" is 18435 2159 in GPT-2.
  CliRun r = kaival(q(g) + " --text ' Hello World'");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "18435 2159\n");
  r = kaival(q(g) + " --decode --text '18435 2159'");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, " Hello World\n");
  // <|endoftext|> (50256) is a control token: parsed by default, text with --no-special.
  r = kaival(q(g) + " --text '<|endoftext|>'");
  EXPECT_EQ(r.out, "50256\n");
  r = kaival(q(g) + " --no-special --text '<|endoftext|>'");
  EXPECT_NE(r.out, "50256\n");
  r = kaival(q(g) + " --decode --no-special --text '18435 50256 2159'");
  EXPECT_EQ(r.out, " Hello World\n");
}

TEST(CliTokenize, DecodeFileRoundTrip) {
  const fs::path g = vocab_dir() / "ggml-vocab-falcon.gguf";
  if (!fs::exists(g)) GTEST_SKIP() << "no " << g;
  const CliRun r = kaival(q(g) + " --decode --file " + q(g.string() + ".out"));
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, read_file(g.string() + ".inp"));
}

TEST(CliTokenize, ErrorsExitNonZero) {
  EXPECT_NE(kaival("/nonexistent/tokenizer.json --text hi").code, 0);
  EXPECT_NE(kaival(q(fs::path(KAIVAL_TESTDATA) / "tokenizer" / "corpus.txt") + " --text hi").code, 0);
  const fs::path g = vocab_dir() / "ggml-vocab-gpt-2.gguf";
  if (fs::exists(g)) {
    EXPECT_NE(kaival(q(g)).code, 0);  // neither --text nor --file
    EXPECT_NE(kaival(q(g) + " --decode --text 'x y'").code, 0);
  }
}

}  // namespace
