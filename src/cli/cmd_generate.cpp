// kaival generate MODEL --prompt S [--max-tokens N] [--temperature T] [--top-k K]
//                [--top-p P] [--min-p P] [--repeat-penalty R] [--seed S]
//                [--stop S]... [--ignore-eos] [--chat [--system S]] [--verbose]
// Streams the continuation of S to stdout as it is generated. MODEL is an HF
// folder, a safetensors/.bin file in one, or a GGUF file. The default seed is
// fixed (0), so the same command prints the same text; --temperature 0 is greedy.
// --chat sends S as a user message through the model's chat template.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/commands.h"
#include "engine/chat.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "tokenizer/tokenizer.h"
#include "weights/checkpoint.h"

namespace kaival::cli {
namespace {

struct GenerateCliOptions {
  std::string model, prompt, system;
  bool chat = false;
  engine::GenerateOptions gen;
  bool ignore_eos = false;
  bool verbose = false;
};

void run(GenerateCliOptions o) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  const auto ckpt = weights::Checkpoint::open(o.model);
  const auto tok = engine::open_tokenizer(ckpt);
  const auto model = engine::Model::load(ckpt);
  std::vector<int32_t> prompt;
  if (o.chat) {
    nlohmann::json messages = nlohmann::json::array();
    if (!o.system.empty()) messages.push_back({{"role", "system"}, {"content", o.system}});
    messages.push_back({{"role", "user"}, {"content", o.prompt}});
    // The rendered template holds its own special tokens (BOS included).
    prompt = tok->encode(engine::render_chat(*tok, messages, true), false, true);
    o.gen.stop_tokens = engine::end_of_turn_tokens(*tok);
  } else {
    prompt = tok->encode(o.prompt, true, true);
  }
  o.gen.stop_at_eos = !o.ignore_eos;
  const auto t1 = Clock::now();
  const auto res = engine::generate(model, *tok, prompt, o.gen, [](std::string_view piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (o.verbose) {
    const double load = std::chrono::duration<double>(t1 - t0).count();
    const double gen = std::chrono::duration<double>(Clock::now() - t1).count();
    std::fprintf(stderr, "%s\n",
                 fmt::format("kaival: {} prompt tokens, {} generated ({}), load {:.3f} s, generation {:.3f} s "
                             "({:.1f} tokens/s)",
                             prompt.size(), res.tokens.size(), engine::finish_reason_name(res.finish), load, gen,
                             gen > 0 ? static_cast<double>(res.tokens.size()) / gen : 0.0)
                     .c_str());
  }
}

}  // namespace

void register_generate(CLI::App& app) {
  auto o = std::make_shared<GenerateCliOptions>();
  o->gen.sampling.temperature = 0.8f;
  o->gen.sampling.top_k = 40;
  o->gen.sampling.top_p = 0.95f;
  o->gen.sampling.min_p = 0.05f;
  auto* cmd = app.add_subcommand("generate", "Generate text with a local model (CPU engine)");
  cmd->add_option("model", o->model, "model folder, weights file or .gguf")->required();
  cmd->add_option("--prompt", o->prompt, "prompt text (special tokens written in it are recognised)")->required();
  auto& s = o->gen.sampling;
  cmd->add_option("--max-tokens", o->gen.max_tokens, "maximum tokens to generate")->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--temperature", s.temperature, "sampling temperature; 0 = greedy")->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-k", s.top_k, "keep the K most likely tokens; 0 = off")->capture_default_str()
      ->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--top-p", s.top_p, "nucleus sampling mass; 1 = off")->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--min-p", s.min_p, "drop tokens below P times the top probability; 0 = off")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--repeat-penalty", s.repeat_penalty, "penalty for tokens among the last --repeat-last-n; 1 = off")
      ->capture_default_str()->check(CLI::Range(0.01, 100.0));
  cmd->add_option("--repeat-last-n", s.repeat_last_n, "how many recent tokens the penalty sees; -1 = all")
      ->capture_default_str();
  cmd->add_option("--seed", s.seed, "random seed (fixed default: same command, same text)")->capture_default_str();
  cmd->add_option("--stop", o->gen.stop, "stop before this string (repeatable)");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "keep generating past the end-of-sequence token");
  cmd->add_flag("--chat", o->chat, "format the prompt as a user message with the model's chat template");
  cmd->add_option("--system", o->system, "system message (with --chat)");
  cmd->add_flag("--verbose", o->verbose, "print token counts and speed to stderr");
  cmd->callback([o] {
    if (o->gen.sampling.top_p <= 0) throw CLI::ValidationError("--top-p", "must be > 0");
    if (!o->system.empty() && !o->chat) throw CLI::ValidationError("--system", "needs --chat");
    run(*o);
  });
}

}  // namespace kaival::cli
