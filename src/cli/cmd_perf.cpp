// kaival perf --model URL [--chat] [--num-prompts N] [--rate R|inf] [--max-concurrency C]
//             [--sweep 1,2,4,8] [--duration-s S] [--seed N] [--input-len N] [--output-len N]
//             [--prompts FILE] [--slo-ttft-ms X] [--slo-tpot-ms X] [--slo-e2e-ms X]
//             [--price-per-hour USD] [--price-per-1m-input USD] [--price-per-1m-output USD]
//             [--json FILE] [--html FILE] [--no-progress]
// Serving benchmark (TTFT, TPOT, ITL, E2E, throughput, goodput, cost) against
// an OpenAI-compatible server; prints a table, writes kaival.perf/1 JSON and an
// HTML page with SVG charts on request.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "eval/perf.h"

namespace kaival::cli {

namespace {

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  if (!out) fail<IoError>(path, "cannot write");
  out << text;
  if (!out.flush()) fail<IoError>(path, "write failed");
}

double parse_rate(const std::string& s) {
  if (s == "inf" || s == "Inf" || s == "INF") return std::numeric_limits<double>::infinity();
  char* end = nullptr;
  double r = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0' || !(r > 0)) fail("--rate", "expected a positive number or inf, got '{}'", s);
  return r;
}

}  // namespace

void register_perf(CLI::App& app) {
  auto* cmd = app.add_subcommand("perf", "Serving benchmark (TTFT, TPOT, ITL, throughput, goodput, cost) of an OpenAI-compatible server");
  struct Opts {
    eval::PerfOptions perf;
    std::string rate = "inf";
    std::string json_path, html_path;
    bool no_ignore_eos = false;
    bool no_progress = false;
  };
  auto o = std::make_shared<Opts>();
  auto& p = o->perf;
  cmd->add_option("--model", p.model_url, "server URL, e.g. http://127.0.0.1:8000 (with or without /v1)")->required();
  cmd->add_option("--served-model", p.served_model, "the request's \"model\" (default: first of GET /v1/models)");
  cmd->add_flag("--chat", p.chat, "use /v1/chat/completions instead of /v1/completions");
  cmd->add_option("--num-prompts", p.num_prompts, "requests per run (default: all file prompts, else 100)")
      ->check(CLI::Range(1, 10000000));
  cmd->add_option("--rate", o->rate, "Poisson arrival rate in requests/s, or inf for all at once");
  cmd->add_option("--max-concurrency", p.max_concurrency, "requests in flight at most (default min(N, 256))")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--sweep", p.sweep, "closed-loop concurrency levels, e.g. 1,2,4,8 (one run each)")
      ->delimiter(',')
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--duration-s", p.duration_s, "send no new request after this many seconds (per run)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", p.seed, "seed of arrival times and synthetic prompts");
  cmd->add_option("--input-len", p.input_len, "synthetic prompt length in words (about tokens)")->check(CLI::Range(1, 1000000));
  cmd->add_option("--output-len", p.output_len, "max_tokens of every request")->check(CLI::Range(1, 1000000));
  cmd->add_option("--prompts", p.prompts_file, "JSONL file of prompts (field \"prompt\") instead of synthetic ones")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--no-ignore-eos", o->no_ignore_eos, "do not send ignore_eos (for servers that reject it)");
  cmd->add_option("--timeout", p.timeout_s, "per-request timeout in seconds")->check(CLI::PositiveNumber);
  cmd->add_option("--api-key", p.api_key, "bearer token (default: $OPENAI_API_KEY)");
  cmd->add_option("--slo-ttft-ms", p.slo.ttft_ms, "goodput objective: TTFT at most this")->check(CLI::PositiveNumber);
  cmd->add_option("--slo-tpot-ms", p.slo.tpot_ms, "goodput objective: TPOT at most this")->check(CLI::PositiveNumber);
  cmd->add_option("--slo-e2e-ms", p.slo.e2e_ms, "goodput objective: end-to-end latency at most this")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--price-per-hour", p.price.per_hour, "USD per hour of the serving machine")->check(CLI::PositiveNumber);
  cmd->add_option("--price-per-1m-input", p.price.per_1m_input, "API price, USD per 1M input tokens")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--price-per-1m-output", p.price.per_1m_output, "API price, USD per 1M output tokens")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--json", o->json_path, "write the results (schema kaival.perf/1) to FILE");
  cmd->add_option("--html", o->html_path, "write an HTML report with SVG charts to FILE");
  cmd->add_flag("--no-progress", o->no_progress, "no progress lines on stderr");
  cmd->callback([o] {
    auto& p = o->perf;
    p.rate = parse_rate(o->rate);
    p.ignore_eos = !o->no_ignore_eos;
    p.progress = !o->no_progress;
    if (p.api_key.empty())
      if (const char* k = std::getenv("OPENAI_API_KEY")) p.api_key = k;
    auto rep = eval::run_perf(p);
    std::fputs(eval::perf_table(rep).c_str(), stdout);
    if (!o->json_path.empty()) {
      write_file(o->json_path, eval::perf_json(rep).dump(2) + "\n");
      std::fprintf(stderr, "wrote %s\n", o->json_path.c_str());
    }
    if (!o->html_path.empty()) {
      write_file(o->html_path, eval::perf_html(rep));
      std::fprintf(stderr, "wrote %s\n", o->html_path.c_str());
    }
  });
}

}  // namespace kaival::cli
