// kaival activations MODEL --text S [--json] [--out FILE]
// Runs the model over S (tokenized with BOS as the model expects) and prints
// the L2 norm of the residual stream per layer and position: entry "embed" is
// the embedding output, entry i the output of layer i-1, "final_norm" the
// output of the final norm. --out writes every hidden state:
//   FILE ending in .json: {"tokens", "layers", "hidden", "hidden_states"
//     [layer+1][token][hidden], "final_norm" [token][hidden]}
//   otherwise binary, little-endian: "KVHS", u32 version 1, u32 entries
//     (layers + 1), u32 tokens, u32 hidden, then float32 hidden_states
//     [entries][tokens][hidden], then float32 final_norm [tokens][hidden].
#include <bit>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "tokenizer/tokenizer.h"
#include "weights/checkpoint.h"

namespace kaival::cli {
namespace {

struct ActivationsOptions {
  std::string model, text, out;
  bool json = false;
};

double l2(std::span<const float> v) {
  double ss = 0;
  for (float x : v) ss += static_cast<double>(x) * x;
  return std::sqrt(ss);
}

void write_u32(std::ofstream& f, uint32_t v) {
  const unsigned char b[4] = {static_cast<unsigned char>(v), static_cast<unsigned char>(v >> 8),
                              static_cast<unsigned char>(v >> 16), static_cast<unsigned char>(v >> 24)};
  f.write(reinterpret_cast<const char*>(b), 4);
}

void write_floats(std::ofstream& f, const std::vector<float>& v) {
  static_assert(std::endian::native == std::endian::little, "binary activations are written little-endian");
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
}

void write_out(const std::string& path, const std::vector<int32_t>& ids, const engine::HiddenStates& hs) {
  std::ofstream f(path, std::ios::binary);
  if (!f) fail<IoError>(path, "cannot open for writing");
  if (path.ends_with(".json")) {
    nlohmann::json states = nlohmann::json::array(), final_norm = nlohmann::json::array();
    for (int64_t l = 0; l <= hs.layers; ++l) {
      auto layer = nlohmann::json::array();
      for (int64_t p = 0; p < hs.tokens; ++p) {
        auto s = hs.at(l, p);
        layer.push_back(std::vector<float>(s.begin(), s.end()));
      }
      states.push_back(std::move(layer));
    }
    for (int64_t p = 0; p < hs.tokens; ++p)
      final_norm.push_back(std::vector<float>(hs.final_norm.begin() + p * hs.hidden,
                                              hs.final_norm.begin() + (p + 1) * hs.hidden));
    const nlohmann::json j = {{"tokens", ids},          {"layers", hs.layers}, {"hidden", hs.hidden},
                              {"hidden_states", states}, {"final_norm", final_norm}};
    f << j.dump() << "\n";
  } else {
    f.write("KVHS", 4);
    write_u32(f, 1);
    write_u32(f, static_cast<uint32_t>(hs.layers + 1));
    write_u32(f, static_cast<uint32_t>(hs.tokens));
    write_u32(f, static_cast<uint32_t>(hs.hidden));
    write_floats(f, hs.data);
    write_floats(f, hs.final_norm);
  }
  if (!f.flush()) fail<IoError>(path, "write failed");
}

void run(const ActivationsOptions& o) {
  const auto ckpt = weights::Checkpoint::open(o.model);
  const auto tok = engine::open_tokenizer(ckpt);
  const auto model = engine::Model::load(ckpt);
  const auto ids = tok->encode(o.text, true, true);
  if (ids.empty()) fail("--text", "the text encodes to no tokens");
  const auto hs = model.hidden_states(ids);
  if (!o.out.empty()) write_out(o.out, ids, hs);

  std::vector<std::vector<double>> norms(static_cast<size_t>(hs.layers + 1));
  for (int64_t l = 0; l <= hs.layers; ++l)
    for (int64_t p = 0; p < hs.tokens; ++p) norms[l].push_back(l2(hs.at(l, p)));
  std::vector<double> final_norms;
  for (int64_t p = 0; p < hs.tokens; ++p)
    final_norms.push_back(l2(std::span<const float>(hs.final_norm).subspan(p * hs.hidden, hs.hidden)));

  std::string text;
  if (o.json) {
    const nlohmann::json j = {{"model", o.model},      {"tokens", ids},        {"layers", hs.layers},
                              {"hidden", hs.hidden},   {"hidden_norms", norms}, {"final_norm_norms", final_norms}};
    text = j.dump(2) + "\n";
  } else {
    text = fmt::format("{} tokens, {} layers, hidden {}\ntokens:", hs.tokens, hs.layers, hs.hidden);
    for (auto id : ids) text += fmt::format(" {}", id);
    text += "\nL2 norm per position of the residual stream:\n";
    for (int64_t l = 0; l <= hs.layers; ++l) {
      text += l == 0 ? fmt::format("{:>10}", "embed") : fmt::format("{:>10}", fmt::format("layer {}", l - 1));
      for (double v : norms[l]) text += fmt::format(" {:.4f}", v);
      text += "\n";
    }
    text += fmt::format("{:>10}", "final_norm");
    for (double v : final_norms) text += fmt::format(" {:.4f}", v);
    text += "\n";
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
}

}  // namespace

void register_activations(CLI::App& app) {
  auto o = std::make_shared<ActivationsOptions>();
  auto* cmd = app.add_subcommand("activations", "Per-layer hidden states of a model for a text (for lineage)");
  cmd->add_option("model", o->model, "model folder, weights file or .gguf")->required();
  cmd->add_option("--text", o->text, "input text (BOS added as the tokenizer says)")->required();
  cmd->add_flag("--json", o->json, "print the norms as JSON");
  cmd->add_option("--out", o->out, "write all hidden states to FILE (.json: JSON, otherwise KVHS binary)");
  cmd->callback([o] { run(*o); });
}

}  // namespace kaival::cli
