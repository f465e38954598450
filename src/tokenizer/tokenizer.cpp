// Tokenizer entry points: find the tokenizer files and dispatch to the
// algorithm family (factories.h).
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/hash.h"
#include "core/mmap.h"
#include "tokenizer/factories.h"
#include "weights/gguf.h"

namespace kaival::tokenizer {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// tokenizer.json files of large vocabularies reach tens of MB; anything far
// beyond that is not a tokenizer.
constexpr uintmax_t kMaxJsonBytes = 512ull << 20;

std::string read_file(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) fail<IoError>(path, "cannot read: {}", ec.message());
  if (size > kMaxJsonBytes) fail(path, "file of {} bytes is too large for a tokenizer file", size);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>(path, "cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json parse_json(const std::string& text, const std::string& where) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail(where, "invalid JSON: {}", e.what());
  }
}

bool starts_with_gguf_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::string_view(magic, 4) == "GGUF";
}

}  // namespace

// is_spm_style_bpe (factories.h) is defined with the SentencePiece family in spm.cpp.

std::unique_ptr<Tokenizer> tokenizer_from_json(const json& tj, const json& config, const std::string& where) {
  try {
    if (!tj.is_object() || !tj.contains("model") || !tj["model"].is_object())
      fail(where, "tokenizer.json has no \"model\" object");
    const json& model = tj["model"];
    std::string type = model.value("type", "");
    if (type.empty()) {  // older files omit the type; infer it from the fields
      if (model.contains("merges")) type = "BPE";
      else if (model.contains("vocab") && model["vocab"].is_array()) type = "Unigram";
      else if (model.contains("continuing_subword_prefix") || model.contains("max_input_chars_per_word")) type = "WordPiece";
    }
    if (type == "BPE") return is_spm_style_bpe(tj) ? spm_from_json(tj, config, where) : bpe_from_json(tj, config, where);
    if (type == "Unigram") return unigram_from_json(tj, config, where);
    if (type == "WordPiece") return wordpiece_from_json(tj, config, where);
    fail<UnsupportedError>(where, "unsupported tokenizer model type \"{}\"", type);
  } catch (const json::exception& e) {
    // Wrong JSON types deep inside the file surface as json exceptions.
    fail(where, "unexpected tokenizer.json structure: {}", e.what());
  }
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const weights::GgufFile& gguf, const std::string& where) {
  const auto model = gguf.get_string("tokenizer.ggml.model");
  if (!model) fail(where, "no tokenizer.ggml.model in GGUF metadata");
  if (*model == "gpt2") return bpe_from_gguf(gguf, where);
  if (*model == "llama") return spm_from_gguf(gguf, where);
  if (*model == "bert") return wordpiece_from_gguf(gguf, where);
  fail<UnsupportedError>(where, "unsupported GGUF tokenizer model \"{}\"", *model);
}

std::unique_ptr<Tokenizer> Tokenizer::from_tokenizer_json(const std::string& tokenizer_json_path,
                                                          const std::string& tokenizer_config_path) {
  const json tj = parse_json(read_file(tokenizer_json_path), tokenizer_json_path);
  json config;
  if (!tokenizer_config_path.empty() && fs::exists(tokenizer_config_path)) {
    config = parse_json(read_file(tokenizer_config_path), tokenizer_config_path);
    if (!config.is_object()) fail(tokenizer_config_path, "tokenizer_config.json must be a JSON object");
  }
  // Newer checkpoints keep the chat template in its own file.
  const fs::path jinja = fs::path(tokenizer_json_path).parent_path() / "chat_template.jinja";
  if ((!config.is_object() || !config.contains("chat_template")) && fs::exists(jinja)) {
    if (!config.is_object()) config = json::object();
    config["chat_template"] = read_file(jinja.string());
  }
  return tokenizer_from_json(tj, config, tokenizer_json_path);
}

std::string Tokenizer::chat_template_sha256() const {
  const std::string& t = chat_template();
  return t.empty() ? std::string() : sha256_hex(t);
}

std::unique_ptr<Tokenizer> Tokenizer::open(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path dir(path);
    if (fs::exists(dir / "tokenizer.json"))
      return from_tokenizer_json((dir / "tokenizer.json").string(), (dir / "tokenizer_config.json").string());
    std::vector<std::string> ggufs;
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.is_regular_file() && e.path().extension() == ".gguf") ggufs.push_back(e.path().string());
    std::sort(ggufs.begin(), ggufs.end());
    if (ggufs.empty()) fail<IoError>(path, "folder has neither tokenizer.json nor a .gguf file");
    return open(ggufs.front());
  }
  if (!fs::exists(path, ec)) fail<IoError>(path, "no such file or folder");
  if (starts_with_gguf_magic(path)) {
    MappedFile f(path);
    const auto gguf = weights::GgufFile::parse(f);
    return from_gguf(*gguf, path);
  }
  const fs::path config = fs::path(path).parent_path() / "tokenizer_config.json";
  return from_tokenizer_json(path, config.string());
}

}  // namespace kaival::tokenizer
