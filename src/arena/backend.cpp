#include "arena/backend.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>

#include <yaml-cpp/yaml.h>

#include "core/error.h"

namespace kaival::arena {

using nlohmann::json;

json chat_request(const ModelBackend& b, const std::string& prompt) {
  json messages = json::array();
  if (!b.system.empty()) messages.push_back({{"role", "system"}, {"content", b.system}});
  messages.push_back({{"role", "user"}, {"content", prompt}});
  json body = {{"model", b.model}, {"messages", messages}, {"max_tokens", b.max_tokens}};
  if (b.temperature) body["temperature"] = *b.temperature;
  if (b.top_p) body["top_p"] = *b.top_p;
  return body;
}

eval::OpenAIClient& BackendPool::client(const ModelBackend& b) {
  std::string key = fmt::format("{}\n{}\n{}", b.base_url, b.api_key_env, b.timeout_s);
  std::lock_guard lk(mu_);
  auto it = clients_.find(key);
  if (it != clients_.end()) return *it->second;
  eval::ClientOptions o;
  o.concurrency = std::max(1, opt_.concurrency);
  o.timeout_ms = static_cast<int>(b.timeout_s * 1000);
  o.connect_timeout_ms = std::min(o.timeout_ms, 10000);
  o.max_retries = std::max(0, opt_.max_retries);
  o.backoff_initial_s = opt_.backoff_initial_s;
  o.retry_after_max_s = opt_.retry_after_max_s;
  if (!b.api_key_env.empty()) {
    // Read at use, never stored or logged: the campaign names only the variable.
    const char* v = std::getenv(b.api_key_env.c_str());
    if (!v || !*v) fail<IoError>(b.base_url, "environment variable {} (api_key_env) is not set", b.api_key_env);
    o.api_key = v;
  }
  auto c = std::make_unique<eval::OpenAIClient>(b.base_url, o);
  return *clients_.emplace(key, std::move(c)).first->second;
}

std::string BackendPool::ask(const CampaignModel& model, const std::string& prompt) {
  return answer(model, prompt).text;
}

BackendPool::Answer BackendPool::answer(const CampaignModel& model, const std::string& prompt) {
  if (!model.backend) fail<IoError>(model.id, "model has no backend");
  json r;
  try {
    r = client(*model.backend).post("chat/completions", chat_request(*model.backend, prompt));
  } catch (const Error& e) {
    fail<IoError>(model.id, "backend did not answer: {}", e.what());
  }
  const json* content = nullptr;
  if (r.contains("choices") && r["choices"].is_array() && !r["choices"].empty()) {
    const json& c0 = r["choices"][0];
    if (c0.is_object() && c0.contains("message") && c0["message"].is_object() && c0["message"].contains("content"))
      content = &c0["message"]["content"];
  }
  if (!content || !content->is_string())
    fail<IoError>(model.id, "backend {} answered without choices[0].message.content", model.backend->base_url);
  Answer out{content->get<std::string>(), {}};
  const json* u = r.contains("usage") && r["usage"].is_object() ? &r["usage"] : nullptr;
  if (u && u->contains("completion_tokens") && (*u)["completion_tokens"].is_number_integer()) {
    out.usage.completion_tokens = (*u)["completion_tokens"].get<int64_t>();
    out.usage.prompt_tokens = u->value("prompt_tokens", int64_t{0});
  } else {
    // No usage: about four bytes a token, the usual rule of thumb for English text.
    out.usage.counted = true;
    out.usage.completion_tokens = static_cast<int64_t>((out.text.size() + 3) / 4);
    out.usage.prompt_tokens = static_cast<int64_t>((model.backend->system.size() + prompt.size() + 3) / 4);
  }
  return out;
}

FillResult fill_answers(ArenaCampaign& campaign, const FillOptions& options) {
  struct Job {
    CampaignPrompt* prompt;
    const CampaignModel* model;
  };
  std::vector<Job> jobs;
  FillResult result;
  for (auto& p : campaign.prompts)
    for (const auto& m : campaign.models) {
      if (p.answers.count(m.id)) continue;
      if (m.backend)
        jobs.push_back({&p, &m});
      else
        ++result.skipped;
    }
  result.asked = static_cast<int>(jobs.size());
  if (jobs.empty()) return result;
  BackendPool pool(options.pool);
  std::atomic<size_t> next{0};
  std::mutex mu;  // answers, errors, progress
  FillProgress progress;
  progress.total = result.asked;
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < jobs.size();) {
      const Job& j = jobs[i];
      std::string answer, error;
      try {
        answer = pool.ask(*j.model, j.prompt->text);
      } catch (const Error& e) {
        error = fmt::format("prompt '{}': {}", j.prompt->id, e.what());
      }
      std::lock_guard lk(mu);
      if (error.empty()) {
        j.prompt->answers[j.model->id] = std::move(answer);
        ++progress.done;
      } else {
        result.errors.push_back(std::move(error));
        ++progress.failed;
      }
      if (options.progress) options.progress(progress);
    }
  };
  int n = std::clamp(options.workers, 1, static_cast<int>(jobs.size()));
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t) threads.emplace_back(work);
  for (auto& t : threads) t.join();
  result.answered = progress.done;
  result.failed = progress.failed;
  return result;
}

std::string with_answers(const std::string& yaml_text, const ArenaCampaign& campaign, const std::string& where) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    fail(where, "not valid YAML: {}", e.what());
  }
  // parse_campaign keeps the file's prompt order, so index i is prompts[i].
  YAML::Node prompts = root["prompts"];
  if (campaign.prompts.empty()) return yaml_text;
  if (!prompts.IsSequence() || prompts.size() != campaign.prompts.size())
    fail(where, "prompts: the file changed while answers were collected");
  for (size_t i = 0; i < campaign.prompts.size(); ++i) {
    if (campaign.prompts[i].answers.empty()) continue;
    YAML::Node p = prompts[i];
    if (!p["answers"].IsMap()) p["answers"] = YAML::Node(YAML::NodeType::Map);
    for (const auto& [model, text] : campaign.prompts[i].answers) p["answers"][model] = text;
  }
  YAML::Emitter out;
  out << root;
  if (!out.good()) fail(where, "cannot write YAML: {}", out.GetLastError());
  return std::string(out.c_str()) + "\n";
}

}  // namespace kaival::arena
