#include "stage/demo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <cctype>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "arena/store.h"
#include "core/error.h"
#include "core/text.h"
#include "engine/generate.h"
#include "eval/runner.h"
#include "lineage/analysis.h"
#include "lineage/report.h"
#include "report/site.h"
#include "server/openai_server.h"
#include "stage/engine.h"
#include "stage/program.h"
#include "tokenizer/tokenizer.h"
#include "weights/checkpoint.h"
#include "weights/safetensors_writer.h"

namespace kaival::stage {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// ---- the cohort ------------------------------------------------------------

struct DemoModel {
  std::string id;        // the program file's model id
  std::string folder;    // under <data>/models, or built into <out>/models
  std::string name_ko, name_en, organization;
  std::string released;  // YYYY-MM-DD
  std::string license, open_source;
  double params_billion = 0;
  bool foreign = false;
  std::string team_id, team_ko, team_en;  // empty for foreign models
  std::string truth;  // what the fixture generator made it (shown after the verdict)
  // Built by the demo: language model folder plus a tower-only file.
  std::string built_from, tower;
  double downloads = 0, derivatives = 0;
};

// Two foreign models; five teams. One team secretly continued training the
// foreign language model; one ships the foreign model's vision encoder
// (tuned) on a language model of its own.
std::vector<DemoModel> cohort() {
  std::vector<DemoModel> m;
  m.push_back({"global-lm", "base-a", "글로벌 LM", "Global LM", "Foreign Lab", "2026-08-01", "apache-2.0", "weights",
               0.3, true, "", "", "", "the foreign language model"});
  m.push_back({"global-vlm", "foreign-vlm", "글로벌 VLM", "Global VLM", "Foreign Lab", "2026-09-01", "apache-2.0",
               "weights", 0.4, true, "", "", "", "the foreign vision-language model", "base-a", "vision-a"});
  m.push_back({"hana-lm", "finetune-a", "하나 LM", "Hana LM", "Team Hana", "2026-11-01", "apache-2.0",
               "weights+code+data", 0.3, false, "hana", "팀 하나", "Team Hana",
               "continued training of the foreign language model"});
  m.push_back({"dul-lm", "indep-s2", "둘 LM", "Dul LM", "Team Dul", "2026-11-02", "apache-2.0", "weights+code", 0.3,
               false, "dul", "팀 둘", "Team Dul", "trained from its own initialisation, same data"});
  m.push_back({"set-vlm", "set-vlm", "셋 VLM", "Set VLM", "Team Set", "2026-11-03", "custom", "weights", 0.4, false,
               "set", "팀 셋", "Team Set",
               "own language model with the foreign model's vision encoder, fine-tuned", "indep-b", "vision-a-tuned"});
  m.push_back({"net-lm", "small-c", "넷 LM", "Net LM", "Team Net", "2026-11-04", "custom", "weights", 0.1, false,
               "net", "팀 넷", "Team Net", "smaller model of its own, other data and tokenizer"});
  m.push_back({"daseot-lm", "indep-s3", "다섯 LM", "Daseot LM", "Team Daseot", "2026-11-05", "apache-2.0",
               "weights+code", 0.3, false, "daseot", "팀 다섯", "Team Daseot",
               "trained from its own initialisation, same data"});
  double dl = 42000;
  for (auto& x : m) {
    x.downloads = dl;
    x.derivatives = std::round(dl / 2500);
    dl *= 0.7;
  }
  return m;
}

constexpr const char* kTarget = "global-lm";  // every team's target in this mini stage
constexpr const char* kJudge = "indep-s5";    // the synthetic panel's judge (not in the cohort)
constexpr const char* kStageDate = "2026-11-20";

const char* const kTaskCards[] = {"demo_ko_particles", "demo_arith_add", "demo_en_cloze", "demo_ko_weather"};

struct Progress {
  int total = 9;
  int n = 0;
  bool quiet = false;
  void step(const std::string& what) {
    ++n;
    if (!quiet) std::printf("\n[%d/%d] %s\n", n, total, what.c_str());
    std::fflush(stdout);
  }
  template <typename... Args>
  void say(fmt::format_string<Args...> f, Args&&... args) {
    if (quiet) return;
    std::fputs(("  " + fmt::format(f, std::forward<Args>(args)...) + "\n").c_str(), stdout);
    std::fflush(stdout);
  }
};

// ---- steps -----------------------------------------------------------------

void inspect_formats(const fs::path& models, Progress& p) {
  const std::vector<fs::path> paths = {
      models / "base-a", models / "base-a-sharded", models / "base-a-pt" / "pytorch_model.bin",
      models / "base-a-gguf" / "base-a-F16.gguf", models / "base-a-gguf" / "base-a-Q8_0.gguf",
      models / "base-a-gguf" / "base-a-Q4_K.gguf"};
  p.say("{:<36} {:<20} {:<8} {:>10} {:>8}", "checkpoint", "format", "family", "parameters", "tensors");
  for (const auto& path : paths) {
    auto ck = weights::Checkpoint::open(path.string());
    p.say("{:<36} {:<20} {:<8} {:>10} {:>8}", fs::relative(path, models).string(),
          std::string(weights::format_name(ck.format())), ck.architecture().family, ck.parameter_count(),
          ck.tensors().size());
  }
}

void tokenize_sample(const fs::path& models, Progress& p) {
  auto tok = tokenizer::Tokenizer::open((models / "base-a").string());
  const std::string text = "독자 AI 파운데이션 모델 evaluation, 2026.";
  auto ids = tok->encode(text);
  std::string list;
  for (auto id : ids) list += fmt::format(" {}", id);
  p.say("tokenizer: {}, {} tokens in vocabulary", std::string(tok->type()), tok->vocab_size());
  p.say("\"{}\" -> {} ids:{}", text, ids.size(), list);
  p.say("decoded back: \"{}\"", tok->decode(ids, true));
}

// A language model folder plus a trained tower (tools/gen_vision_fixtures.py)
// written as one BF16 safetensors VLM with vision_config in config.json.
void build_vlm(const fs::path& models, const DemoModel& m, const fs::path& dir) {
  fs::create_directories(dir);
  std::vector<weights::TensorToWrite> out;
  auto lm = weights::Checkpoint::open((models / m.built_from).string());
  for (const auto& t : lm.tensors()) out.push_back({t.name, "BF16", t.shape, lm.read_f32(t)});
  auto tower = weights::Checkpoint::open((models / m.tower / "vision.safetensors").string());
  for (const auto& t : tower.tensors()) out.push_back({t.name, "BF16", t.shape, tower.read_f32(t)});
  weights::write_safetensors((dir / "model.safetensors").string(), out);
  json cfg = json::parse(std::ifstream(models / m.built_from / "config.json"));
  cfg["vision_config"] = json::parse(std::ifstream(models / m.tower / "vision_config.json"));
  std::ofstream(dir / "config.json") << cfg.dump(1) << "\n";
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(models / m.built_from / f, dir / f, fs::copy_options::overwrite_existing);
}

struct LineageOutcome {
  std::map<std::string, std::string> label;  // model id -> label in the report
  int flagged = 0;
};

LineageOutcome run_lineage(const std::vector<DemoModel>& all, const std::map<std::string, fs::path>& path,
                           const fs::path& out, Progress& p) {
  lineage::Options opt;
  std::vector<lineage::Prepared> prepared;
  LineageOutcome lo;
  for (const auto& m : all) {
    prepared.push_back(lineage::prepare(path.at(m.id).string(), opt));
    lo.label[m.id] = prepared.back().label;
  }
  auto multi = lineage::analyze_all(prepared, {}, opt);
  p.say("{} {:<11} {:<34} {:<9} {}", pad_right("team", 12), "vs", "verdict", "p", "what the fixture really is");
  for (const auto& m : all) {
    if (m.foreign) continue;
    bool flagged = false;
    for (const auto& f : all) {
      if (!f.foreign) continue;
      for (const auto& r : multi.pairs) {
        const bool hit = (r.a == lo.label[m.id] && r.b == lo.label[f.id]) || (r.b == lo.label[m.id] && r.a == lo.label[f.id]);
        if (!hit) continue;
        // The deciding components, abbreviated when a whole model matched.
        std::string matched;
        for (size_t i = 0; i < r.matched.size() && i < 2; ++i) matched += (i ? ", " : " [") + r.matched[i];
        if (r.matched.size() > 2) matched += fmt::format(" +{} more", r.matched.size() - 2);
        if (!matched.empty()) matched += "]";
        p.say("{} {:<11} {:<34} {:<9} {}", pad_right(m.team_en, 12), f.id, r.verdict + matched,
              lineage::format_p(r.log10p), f.id == kTarget ? m.truth : "");
        flagged |= r.verdict != "independent";
      }
    }
    lo.flagged += flagged;
  }
  std::vector<lineage::InputInfo> inputs;
  for (const auto& pr : prepared) inputs.push_back(lineage::describe_input(pr));
  auto report = lineage::report_json(multi, inputs, {}, opt);
  fs::create_directories(out / "lineage");
  std::ofstream(out / "lineage" / "lineage.json") << report.dump(2) << "\n";
  std::ofstream(out / "lineage" / "lineage.html") << lineage::html_report(report);
  return lo;
}

void run_benchmarks(const std::vector<DemoModel>& all, const std::map<std::string, fs::path>& path,
                    const fs::path& data, const fs::path& out, const DemoOptions& o, Progress& p) {
  std::vector<std::string> cards;
  for (const char* c : kTaskCards) cards.push_back((data / "demo" / "tasks" / (std::string(c) + ".yaml")).string());
  for (const auto& m : all) {
    if (m.foreign && m.id != kTarget) continue;
    auto served = server::ServedModel::open(path.at(m.id).string(), m.id);
    server::OpenAIServer srv(served);
    const int port = srv.start();
    eval::RunOptions opt;
    opt.model_url = fmt::format("http://127.0.0.1:{}", port);
    opt.model_id = m.id;
    opt.out_dir = (out / "eval" / m.id).string();
    opt.progress = !p.quiet;
    opt.client.concurrency = 2;
    opt.limit = o.items_per_task;
    auto results = eval::run_eval(cards, opt);
    srv.stop();
    std::string line;
    for (const char* c : kTaskCards) {
      const auto& r = results["results"][c];
      line += fmt::format("  {} {:.3f}", c + 5, r.value("acc,none", 0.0));
    }
    p.say("{:<10} served on 127.0.0.1:{}:{}", m.id, port, line);
  }
}

// Serving speed of each team's model on the local server: a few streamed
// requests, TTFT / inter-token latency / throughput, and a cost per 1M tokens
// from an assumed price of the machine. Written as kaival.perf/1.
void run_perf(const std::vector<DemoModel>& all, const std::map<std::string, fs::path>& path, const fs::path& out,
              const DemoOptions& o, Progress& p) {
  fs::create_directories(out / "perf");
  const double usd_per_hour = 0.10;  // an assumed price for a 2-core machine
  for (const auto& m : all) {
    if (m.foreign) continue;
    auto served = server::ServedModel::open(path.at(m.id).string(), m.id);
    server::OpenAIServer srv(served);
    const int port = srv.start();
    eval::ClientOptions co;
    co.concurrency = 2;
    eval::OpenAIClient client(fmt::format("http://127.0.0.1:{}", port), co);
    std::vector<double> ttft, itl, e2e;
    int64_t tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const char* prompts[] = {"민수는 월요일에", "What is 12 plus 30?", "The quick fox", "서울의 오늘 날씨는",
                             "Alice went to the", "12 + 30 ="};
    const int n = std::max(1, o.perf_requests);
    for (int i = 0; i < n; ++i) {
      json body{{"model", m.id}, {"prompt", prompts[i % 6]}, {"max_tokens", 24}, {"temperature", 0.0},
                {"stream", true}, {"ignore_eos", true}};
      auto r = client.post_stream("completions", body);
      ttft.push_back(r.ttft_s * 1000);
      e2e.push_back(r.e2e_s * 1000);
      for (double g : r.itl_s) itl.push_back(g * 1000);
      tokens += r.chunks;
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    srv.stop();
    auto stats = [](std::vector<double> v) {
      if (v.empty()) return json{{"mean", 0}, {"median", 0}, {"p99", 0}};
      std::sort(v.begin(), v.end());
      double mean = 0;
      for (double x : v) mean += x;
      mean /= static_cast<double>(v.size());
      auto q = [&](double f) { return v[std::min(v.size() - 1, static_cast<size_t>(f * static_cast<double>(v.size())))]; };
      return json{{"mean", mean}, {"median", q(0.5)}, {"p99", q(0.99)}};
    };
    const double tps = static_cast<double>(tokens) / wall;
    json perf{{"schema", "kaival.perf/1"},
              {"model", m.id},
              {"endpoint", "local kaival serve-model (127.0.0.1)"},
              {"ttft_ms", stats(ttft)},
              {"itl_ms", stats(itl)},
              {"tpot_ms", stats(itl)},
              {"e2e_ms", stats(e2e)},
              {"requests", n},
              {"output_tokens_per_s", tps},
              {"requests_per_s", n / wall},
              {"goodput_rps", n / wall},
              {"cost_per_1m_tokens", usd_per_hour / 3600.0 / tps * 1e6},
              {"price", {{"usd_per_hour", usd_per_hour}}},
              {"manifest", {{"tool", "kaival demo"}, {"requests", n}, {"max_tokens", 24}, {"concurrency", 1}}}};
    std::ofstream(out / "perf" / (m.team_id + ".json")) << perf.dump(2) << "\n";
    p.say("{:<10} {:7.0f} tokens/s  TTFT median {:6.2f} ms  cost ${:.4f} per 1M tokens", m.id, tps,
          perf["ttft_ms"]["median"].get<double>(), perf["cost_per_1m_tokens"].get<double>());
  }
}

// ---- synthetic panels ------------------------------------------------------

std::string chatml(const std::string& user) {
  return "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n";
}

const char* const kPanelPrompts[] = {"What is 12 plus 7?",   "민수는 어디에 갔어?", "What is 3 plus 15?",
                                     "지수는 어디에 갔어?",  "What is 20 plus 4?",  "서연은 어디에 갔어?"};

// Mean log-probability per token of `answer` after `prompt` under the judge.
double judge_score(const server::ServedModel& judge, const std::string& prompt, const std::string& answer) {
  const auto& tok = *judge.tokenizer;
  auto ctx = tok.encode(chatml(prompt));
  auto full = tok.encode(chatml(prompt) + answer + "<|im_end|>");
  engine::GenerateOptions go;
  go.max_tokens = 1;
  go.logprobs = 0;
  go.prompt_logprobs = true;
  auto r = engine::generate(judge.model, tok, full, go);
  // prompt_logprobs[i] is the log-probability of full[i + 1].
  double sum = 0;
  int n = 0;
  for (size_t i = ctx.size(); i < full.size(); ++i) {
    sum += r.prompt_logprobs[i - 1].logprob;
    ++n;
  }
  return n ? sum / n : -20.0;
}

struct PanelFiles {
  std::string battles, ratings, reviews, expert_scores;
};

PanelFiles run_panels(const std::vector<DemoModel>& all, const std::map<std::string, fs::path>& path,
                      const fs::path& models, const fs::path& out, const DemoOptions& o, Progress& p) {
  // Answers from every team's model, greedy, on the local engine.
  std::vector<const DemoModel*> teams;
  for (const auto& m : all)
    if (!m.foreign) teams.push_back(&m);
  arena::ArenaCampaign arena;
  arena.name = "demo-arena";
  arena.title = "Demo arena (synthetic voters)";
  arena.synthetic = true;
  for (const auto* m : teams) arena.models.push_back({m->id, m->organization, {m->name_en, m->name_ko}});
  for (size_t i = 0; i < std::size(kPanelPrompts); ++i)
    arena.prompts.push_back({fmt::format("p{}", i + 1), kPanelPrompts[i], {}});
  for (const auto* m : teams) {
    auto served = server::ServedModel::open(path.at(m->id).string(), m->id);
    engine::GenerateOptions go;
    go.max_tokens = 32;
    go.stop = {"<|im_end|>", "<|im_start|>"};
    for (auto& pr : arena.prompts) {
      auto ids = served->tokenizer->encode(chatml(pr.text));
      auto r = engine::generate(served->model, *served->tokenizer, ids, go);
      std::string text = r.text;
      while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
      pr.answers[m->id] = text.empty() ? "(no answer)" : text;
    }
  }
  p.say("answers: {} prompts x {} models, generated greedily on the local engine", arena.prompts.size(), teams.size());

  // The judge: a model outside the cohort scores each answer's fluency.
  auto judge = server::ServedModel::open((models / kJudge).string(), "judge");
  std::map<std::pair<std::string, std::string>, double> score;  // (prompt, answer) -> judge score
  std::map<std::string, double> quality;                        // model -> mean judge score
  for (const auto& pr : arena.prompts)
    for (const auto& [model, answer] : pr.answers) {
      double s = judge_score(*judge, pr.text, answer);
      score[{pr.text, answer}] = s;
      quality[model] += s / static_cast<double>(arena.prompts.size());
    }

  const fs::path db_path = out / "arena.db";
  fs::remove(db_path);
  fs::remove(db_path.string() + "-wal");
  fs::remove(db_path.string() + "-shm");
  arena::StoreOptions so;
  so.fast_password_hashing = true;  // synthetic accounts only
  auto store = arena::ArenaStore::open(db_path.string(), so);
  std::mt19937_64 rng(20261120);
  const int64_t admin = store->create_account("demo-admin", fmt::format("{:016x}", rng()), arena::Role::Admin);
  arena::CampaignFile arena_file;
  arena_file.kind = "arena";
  arena_file.arena = arena;
  const int64_t arena_id = store->add_campaign(arena_file, admin);

  // Synthetic voters: each prefers the answer the judge finds more fluent,
  // through a logistic choice with the voter's own noise.
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> u01;
  int votes = 0;
  for (int v = 0; v < o.voters; ++v) {
    const int64_t voter = store->create_account(fmt::format("synthetic-voter-{:02d}", v),
                                                fmt::format("{:016x}", rng()), arena::Role::Voter);
    const double temperature = 0.15 + 0.1 * u01(rng);
    for (int k = 0; k < o.votes_per_voter; ++k) {
      const std::string ip = fmt::format("10.0.{}.{}", v / 200, v % 200);
      auto b = store->new_battle(arena_id, voter, ip);
      if (!b) break;
      const double sa = score[{b->prompt, b->answer_a}], sb = score[{b->prompt, b->answer_b}];
      const double pa = 1.0 / (1.0 + std::exp(-(sa - sb) / temperature));
      std::string winner;
      if (std::fabs(sa - sb) < 0.02) winner = "tie";
      else if (sa < -6 && sb < -6) winner = "both_bad";
      else winner = u01(rng) < pa ? "model_a" : "model_b";
      if (store->vote({b->id, voter, ip, winner}) == arena::VoteStatus::Stored) ++votes;
    }
  }
  p.say("arena: {} synthetic votes by {} synthetic voters", votes, o.voters);

  // Expert review: each team's answers as one item, rubric of three criteria,
  // three synthetic reviewers per item, none from the item's own team.
  arena::ReviewCampaign review;
  review.name = "demo-review";
  review.title = "Demo expert review (synthetic reviewers)";
  review.synthetic = true;
  review.reviewers_per_item = 3;
  review.rubric.criteria = {{"fluency", 1.0, 1, 5, {{1, "broken text"}, {5, "fluent"}}},
                            {"correctness", 1.5, 1, 5, {{1, "wrong"}, {5, "right"}}},
                            {"helpfulness", 1.0, 1, 5, {{1, "useless"}, {5, "helpful"}}}};
  for (const auto* m : teams) {
    std::string content;
    for (const auto& pr : arena.prompts) content += "Q: " + pr.text + "\nA: " + pr.answers.at(m->id) + "\n\n";
    review.items.push_back({m->id + "-answers", m->id, m->name_en + " answers", content, m->organization});
  }
  arena::CampaignFile review_file;
  review_file.kind = "review";
  review_file.review = review;
  const int64_t review_id = store->add_campaign(review_file, admin);
  const char* const affiliations[] = {"University A", "University B", "Institute C", "Team Hana", "Company D",
                                      "University E"};
  std::vector<std::pair<int64_t, double>> experts;  // account, severity
  for (int e = 0; e < 6; ++e)
    experts.push_back({store->create_account(fmt::format("synthetic-expert-{}", e + 1), fmt::format("{:016x}", rng()),
                                             arena::Role::Expert, affiliations[e]),
                       0.4 * nd(rng)});
  store->assign_reviewers(review_id);
  // Quality on the judge's scale -> z-scores across teams.
  double mean = 0, sd = 0;
  for (auto& [m, q] : quality) mean += q / static_cast<double>(quality.size());
  for (auto& [m, q] : quality) sd += (q - mean) * (q - mean) / static_cast<double>(quality.size());
  sd = std::sqrt(std::max(sd, 1e-12));
  int reviews = 0;
  for (auto [account, severity] : experts) {
    for (const auto& a : store->assignments(account)) {
      if (a.campaign_id != review_id) continue;
      const double z = (quality[a.model] - mean) / sd;
      std::map<std::string, std::pair<double, std::string>> s;
      for (const auto& c : review.rubric.criteria) {
        double x = std::round(3.0 + 1.1 * z + severity + 0.5 * nd(rng));
        s[c.name] = {std::clamp(x, 1.0, 5.0), "synthetic reviewer (demo): score drawn from a judge model's fluency"};
      }
      store->submit_review(account, a.item_id, s);
      ++reviews;
    }
  }
  p.say("expert review: {} synthetic reviews by 6 synthetic experts (conflicts of interest excluded)", reviews);

  arena::ExportOptions eo;
  eo.resamples = 1000;
  const fs::path panel = out / "panel";
  store->export_files(panel.string(), eo);
  return {(panel / "battles.jsonl").string(), (panel / "ratings.json").string(), (panel / "reviews.jsonl").string(),
          (panel / "expert_scores.json").string()};
}

// ---- the program file ------------------------------------------------------

std::string program_yaml(const std::vector<DemoModel>& all, const LineageOutcome& lo, const fs::path& out) {
  auto rel = [&](const fs::path& p) { return fs::relative(p, out).generic_string(); };
  std::string y;
  y += "# Written by `kaival demo`: a mini first stage on the committed tiny models.\n";
  y += "# Expert and user panels are SYNTHETIC (simulated by a judge model).\n";
  y += "schema: kaival.program/1\n";
  y += "title: {ko: \"독자 AI 파운데이션 모델 — kaival 데모 (합성 패널)\", en: \"Sovereign foundation models — kaival demo (synthetic panels)\"}\n";
  y += "models:\n";
  for (const auto& m : all) {
    y += fmt::format(
        "  - {{id: {}, name: {{ko: \"{}\", en: \"{}\"}}, organization: \"{}\", license: {}, open_source_level: {}, "
        "released: {}, params_billion: {}, foreign: {}, ripple: {{downloads: {}, derivatives: {}}}}}\n",
        m.id, m.name_ko, m.name_en, m.organization, m.license, m.open_source, m.released, m.params_billion,
        m.foreign ? "true" : "false", m.downloads, m.derivatives);
  }
  y += R"(tracks:
  - id: main
    name: {ko: 독자 AI 파운데이션 모델, en: Sovereign foundation model}
    parts:
      - id: benchmark
        name: {ko: 벤치마크, en: Benchmarks}
        weight: 40
        kind: benchmarks
        subparts:
          - id: korean
            name: {ko: 한국어 벤치마크, en: Korean benchmarks}
            weight: 10
            score: absolute
            benchmarks:
              - {task: demo_ko_particles, normalize: {floor: 50}}
          - id: global
            name: {ko: 글로벌 공통 벤치마크, en: Common global benchmarks}
            weight: 20
            score: absolute
            benchmarks:
              - {task: demo_arith_add, normalize: {floor: 25}}
              - {task: demo_en_cloze, normalize: {floor: 25}}
          - id: team_chosen
            name: {ko: 팀 선택 벤치마크 (목표 모델 대비), en: Team-chosen benchmarks vs own target}
            weight: 10
            score: relative_to_target
            formula: ratio_of_means
            full_at: 1.0
            benchmarks: team
      - {id: expert, name: {ko: 전문가 평가 (합성), en: Expert review (synthetic)}, weight: 35, kind: expert}
      - {id: user, name: {ko: 사용자 평가 (합성), en: User evaluation (synthetic)}, weight: 25, kind: user, scale: elo_vs_best}
    cost_share: {weights+code+data: 0.1, weights+code: 0.2, weights: 0.3, none: 0.5}
teams:
)";
  for (const auto& m : all)
    if (!m.foreign)
      y += fmt::format("  - {{id: {}, name: {{ko: \"{}\", en: \"{}\"}}, model: {}}}\n", m.team_id, m.team_ko,
                       m.team_en, m.id);
  y += R"(gates:
  - verdict: derived
    action: ineligible
    rule: trained from a foreign model's weights is not independent
  - verdict: partial
    component_kinds: [vision_encoder, audio_encoder]
    action: ineligible
    rule: a foreign vision or audio encoder is not independent
  - verdict: partial
    component_kinds: [embedding, head]
    action: penalty
    penalty_points: 2
    rule: reused foreign embeddings cost points
moving_target: {max_age_months: 6, from_stage: 1}
indices:
  frontier:
    name: {ko: AI 프런티어 지수, en: AI Frontier Index}
    terms:
      - {source: "relative:team_chosen", weight: 2}
      - {source: "part:benchmark", weight: 1}
  diffusion:
    name: {ko: AI 확산 지수, en: AI Diffusion Index}
    terms:
      - {source: "part:user", weight: 0.5}
      - {source: "perf:cost_per_1m_tokens", weight: 0.2, lower_is_better: true}
      - {source: "perf:output_tokens_per_s", weight: 0.1}
      - {source: "perf:ttft_ms.median", weight: 0.1, lower_is_better: true}
      - {source: "ripple:downloads", weight: 0.05}
      - {source: "ripple:derivatives", weight: 0.05}
bootstrap: {replicates: 400, seed: 20261120, level: 0.95}
sensitivity: {weight_delta: 2}
precision: 1
stages:
  - id: s1
    number: 1
    name: {ko: 1차 평가 (데모), en: First stage (demo)}
)";
  y += fmt::format("    date: {}\n    track: main\n    advance: 3\n    tie_breaks: [\"part:expert\", \"part:benchmark\"]\n",
                   kStageDate);
  y += "    evals:\n";
  for (const auto& m : all)
    if (!m.foreign || m.id == kTarget) y += fmt::format("      {}: {}\n", m.id, rel(out / "eval" / m.id));
  y += fmt::format("    expert_scores: {}\n    reviews: {}\n    ratings: {}\n    battles: {}\n",
                   rel(out / "panel" / "expert_scores.json"), rel(out / "panel" / "reviews.jsonl"),
                   rel(out / "panel" / "ratings.json"), rel(out / "panel" / "battles.jsonl"));
  y += "    entries:\n";
  for (const auto& m : all) {
    if (m.foreign) continue;
    y += fmt::format("      - team: {}\n        target: {}\n        chosen: [{{task: demo_ko_weather}}]\n", m.team_id,
                     kTarget);
    y += fmt::format("        lineage: [{{report: {}, label: \"{}\"}}]\n", rel(out / "lineage" / "lineage.json"),
                     lo.label.at(m.id));
    y += fmt::format("        perf: {}\n", rel(out / "perf" / (m.team_id + ".json")));
  }
  return y;
}

}  // namespace

DemoOutcome run_demo(const DemoOptions& options) {
  const fs::path data = options.data_dir;
  const fs::path models = data / "models";
  const fs::path out = fs::absolute(options.out_dir);
  if (!fs::is_directory(models / "base-a") || !fs::is_directory(data / "demo" / "tasks"))
    fail<IoError>(data.string(), "demo fixtures not found (models/ and demo/tasks/; pass --data to testdata/)");
  fs::create_directories(out);
  const auto t0 = std::chrono::steady_clock::now();
  Progress p;
  p.quiet = options.quiet;
  DemoOutcome outcome;
  if (!p.quiet)
    std::printf("kaival demo: a mini stage of five teams on the committed tiny models (no network)\n"
                "Expert and user panels are SYNTHETIC: simulated by a judge model, labelled so everywhere.\n");

  p.step("Reading the foreign model in every supported format");
  inspect_formats(models, p);

  p.step("Tokenizing Korean and English with the model's own tokenizer");
  tokenize_sample(models, p);

  p.step("Building the cohort (two foreign models, five teams)");
  const auto all = cohort();
  std::map<std::string, fs::path> path;
  for (const auto& m : all) {
    if (m.tower.empty()) {
      path[m.id] = models / m.folder;
    } else {
      path[m.id] = out / "models" / m.folder;
      build_vlm(models, m, path[m.id]);
    }
    p.say("{:<11} {:<12} {}", m.id, m.foreign ? "foreign" : m.team_en,
          m.tower.empty() ? "testdata/models/" + m.folder
                          : fmt::format("{} = {} + vision tower {}", path[m.id].string(), m.built_from, m.tower));
  }

  p.step("Independence (독자성) analysis: every model against every other");
  const auto lo = run_lineage(all, path, out, p);
  outcome.flagged = lo.flagged;

  p.step("Benchmarks through the local OpenAI-compatible server (kaival serve-model, in process)");
  run_benchmarks(all, path, data, out, options, p);

  p.step("Serving speed and cost on the local server");
  run_perf(all, path, out, options, p);

  p.step("Synthetic user and expert panels in the arena store (SQLite)");
  run_panels(all, path, models, out, options, p);

  p.step("Stage decision: scores, gates, ranks, intervals, sensitivity");
  const std::string program_path = (out / "program.yaml").string();
  std::ofstream(program_path) << program_yaml(all, lo, out);
  Program program = load_program(program_path);
  StageResult result = run(program);
  const fs::path report_dir = out / "report";
  fs::create_directories(report_dir);
  outcome.stage_result = (report_dir / "stage-result.json").string();
  std::ofstream(outcome.stage_result) << result.doc.dump(2) << "\n";
  for (const auto& t : result.teams) outcome.ineligible += !t.eligible;
  if (!p.quiet) std::fputs(summary_table(result).c_str(), stdout);
  for (const auto& w : result.warnings) p.say("warning: {}", w);

  p.step("Writing the report");
  report::write_site(result.doc, report_dir.string());
  outcome.report_html = (report_dir / "index.html").string();
  outcome.arena_db = (out / "arena.db").string();
  outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!p.quiet) {
    std::printf("\n%d of 5 teams flagged by the independence analysis; %d ineligible under the program's gates.\n",
                outcome.flagged, outcome.ineligible);
    std::printf("Done in %.1f s.\n\n", outcome.seconds);
    std::printf("Report:        %s  (Korean: index.ko.html)\n", outcome.report_html.c_str());
    std::printf("               open it in a browser, e.g. xdg-open %s\n", outcome.report_html.c_str());
    std::printf("Stage result:  %s\n", outcome.stage_result.c_str());
    std::printf("Lineage:       %s\n", (out / "lineage" / "lineage.html").string().c_str());
    std::printf("Web service:   kaival serve --db %s --port 8080   then open http://127.0.0.1:8080/\n",
                outcome.arena_db.c_str());
  }
  return outcome;
}

}  // namespace kaival::stage
