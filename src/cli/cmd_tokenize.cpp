// kaival tokenize PATH (--text S | --file F) [--decode] [--no-special]
//                 [--add-special | --no-add-special]
// PATH is a model folder, a tokenizer.json or a GGUF file. --text prints the
// ids of S on one line. --file reads llama.cpp's .inp format (strings each
// followed by a line "__ggml_vocab_test__") and prints one line per string in
// the .out format (" id id ..."). --decode turns ids back into text instead.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/commands.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace kaival::cli {
namespace {

constexpr std::string_view kSeparator = "\n__ggml_vocab_test__\n";

struct TokenizeOptions {
  std::string path, text, file;
  bool decode = false;
  bool no_special = false;
  bool add_special = false;
  bool no_add_special = false;
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>(path, "cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Strings of an .inp file; text after the last separator (if any) counts too.
std::vector<std::string> split_inp(const std::string& content) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (size_t k; (k = content.find(kSeparator, pos)) != std::string::npos; pos = k + kSeparator.size())
    out.push_back(content.substr(pos, k - pos));
  if (pos < content.size()) out.push_back(content.substr(pos));
  return out;
}

std::vector<int32_t> parse_ids(std::string_view s, const std::string& where) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == ',' || s[i] == '\r')) ++i;
    if (i >= s.size()) break;
    int64_t v = 0;
    size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && v <= INT32_MAX) v = v * 10 + (s[i++] - '0');
    if (i == start || v > INT32_MAX || (i < s.size() && s[i] != ' ' && s[i] != '\t' && s[i] != ',' && s[i] != '\r'))
      fail(where, "expected token ids (non-negative integers) but found \"{}\"", std::string(s.substr(start, 20)));
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

std::string ids_line(const std::vector<int32_t>& ids, bool leading_space) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (leading_space || i) out += ' ';
    out += std::to_string(ids[i]);
  }
  return out;
}

void run(const TokenizeOptions& o) {
  const auto tok = tokenizer::Tokenizer::open(o.path);
  const bool from_file = !o.file.empty();
  // .out files of llama.cpp's tests hold ids without BOS/EOS; a single text
  // is encoded as a model would see it.
  const bool add_special = o.add_special || (!o.no_add_special && !from_file);
  std::string out;
  if (o.decode) {
    if (!from_file) {
      out = tok->decode(parse_ids(o.text, "--text"), o.no_special) + "\n";
    } else {
      std::istringstream in(read_all(o.file));
      std::string line;
      while (std::getline(in, line)) {
        out += tok->decode(parse_ids(line, o.file), o.no_special);
        out += kSeparator;
      }
    }
  } else if (!from_file) {
    out = ids_line(tok->encode(o.text, add_special, !o.no_special), false) + "\n";
  } else {
    for (const auto& s : split_inp(read_all(o.file)))
      out += ids_line(tok->encode(s, add_special, !o.no_special), true) + "\n";
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto opts = std::make_shared<TokenizeOptions>();
  auto* cmd = app.add_subcommand("tokenize", "Encode text to token ids (or decode ids) with a model's tokenizer");
  cmd->add_option("path", opts->path, "model folder, tokenizer.json or .gguf file")->required();
  auto* text = cmd->add_option("--text", opts->text, "text to encode (with --decode: space-separated ids)");
  auto* file = cmd->add_option("--file", opts->file,
                               "strings separated by lines __ggml_vocab_test__ (llama.cpp .inp); prints one line "
                               "of ids per string (.out format). With --decode: one line of ids per string");
  text->excludes(file);
  cmd->add_flag("--decode", opts->decode, "decode token ids to text");
  cmd->add_flag("--no-special", opts->no_special,
                "treat special-token text as plain text (with --decode: omit special tokens)");
  auto* add = cmd->add_flag("--add-special", opts->add_special, "add BOS/EOS as the tokenizer says (default for --text)");
  auto* no_add = cmd->add_flag("--no-add-special", opts->no_add_special, "never add BOS/EOS (default for --file)");
  add->excludes(no_add);
  cmd->callback([opts, text, file] {
    if (text->count() == 0 && file->count() == 0) throw CLI::RequiredError("--text or --file");
    run(*opts);
  });
}

}  // namespace kaival::cli
