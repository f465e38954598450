#include "arena/campaign.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "core/error.h"

namespace kaival::arena {

namespace {

constexpr size_t kMaxCampaignBytes = 64u << 20;
constexpr size_t kMaxEntries = 100000;

// `label` names the field in errors (e.g. "models[2].id"); defaults to `key`.
std::string str(const YAML::Node& n, const std::string& where, const std::string& key, bool required = true,
                const std::string& label = "") {
  const std::string& name = label.empty() ? key : label;
  if (!n.IsMap()) fail(where, "{}: expected a map", name);
  const YAML::Node v = n[key];
  if (!v || v.IsNull()) {
    if (required) fail(where, "{}: missing", name);
    return "";
  }
  if (!v.IsScalar()) fail(where, "{}: expected a string", name);
  return v.as<std::string>();
}

double num(const YAML::Node& v, const std::string& where, const std::string& key) {
  if (!v.IsScalar()) fail(where, "{}: expected a number", key);
  try {
    return v.as<double>();
  } catch (const YAML::Exception&) {
    fail(where, "{}: '{}' is not a number", key, v.Scalar());
  }
}

bool valid_env_name(const std::string& s) {
  if (s.empty() || s.size() > 128 || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

ModelBackend parse_backend(const YAML::Node& n, const std::string& where, const std::string& w, const std::string& id) {
  if (!n.IsMap()) fail(where, "{}: expected a map (base_url, model, api_key_env, ...)", w);
  static const std::set<std::string> known{"base_url", "model", "api_key_env", "system", "temperature",
                                           "top_p", "max_tokens", "timeout_s",
                                           "cost_per_1m_input", "cost_per_1m_output"};
  for (const auto& kv : n) {
    std::string key = kv.first.as<std::string>();
    if (key == "api_key")
      fail(where, "{}.api_key: never put a key in a campaign file; name the environment variable that holds it "
                  "in api_key_env", w);
    if (!known.count(key)) fail(where, "{}.{}: unknown field (expected one of base_url, model, api_key_env, system, "
                                       "temperature, top_p, max_tokens, timeout_s, cost_per_1m_input, cost_per_1m_output)", w, key);
  }
  ModelBackend b;
  b.base_url = str(n, where, "base_url", true, w + ".base_url");
  if (b.base_url.rfind("http://", 0) != 0 && b.base_url.rfind("https://", 0) != 0)
    fail(where, "{}.base_url: '{}' is not an http:// or https:// URL", w, b.base_url);
  b.model = str(n, where, "model", false, w + ".model");
  if (b.model.empty()) b.model = id;
  b.api_key_env = str(n, where, "api_key_env", false, w + ".api_key_env");
  if (!b.api_key_env.empty() && !valid_env_name(b.api_key_env))
    fail(where, "{}.api_key_env: '{}' is not an environment variable name", w, b.api_key_env);
  b.system = str(n, where, "system", false, w + ".system");
  if (n["temperature"]) {
    b.temperature = num(n["temperature"], where, w + ".temperature");
    if (!(*b.temperature >= 0 && *b.temperature <= 2)) fail(where, "{}.temperature: {} outside 0..2", w, *b.temperature);
  }
  if (n["top_p"]) {
    b.top_p = num(n["top_p"], where, w + ".top_p");
    if (!(*b.top_p > 0 && *b.top_p <= 1)) fail(where, "{}.top_p: {} outside (0, 1]", w, *b.top_p);
  }
  if (n["max_tokens"]) {
    double v = num(n["max_tokens"], where, w + ".max_tokens");
    if (!(v >= 1 && v <= 1000000) || v != std::floor(v)) fail(where, "{}.max_tokens: {} is not an integer in 1..1000000", w, v);
    b.max_tokens = static_cast<int>(v);
  }
  if (n["timeout_s"]) {
    b.timeout_s = num(n["timeout_s"], where, w + ".timeout_s");
    if (!(b.timeout_s > 0 && b.timeout_s <= 3600)) fail(where, "{}.timeout_s: {} outside (0, 3600]", w, b.timeout_s);
  }
  for (const char* k : {"cost_per_1m_input", "cost_per_1m_output"})
    if (n[k]) {
      double v = num(n[k], where, w + "." + k);
      if (!(v >= 0 && v <= 1e6)) fail(where, "{}.{}: {} outside 0..1000000", w, k, v);
      (std::string(k) == "cost_per_1m_input" ? b.cost_per_1m_input : b.cost_per_1m_output) = v;
    }
  return b;
}

// `budget:` limits what live prompts may spend; prices give a money cap.
void parse_budget(const YAML::Node& root, const std::string& where, ArenaCampaign& c) {
  const YAML::Node n = root["budget"];
  if (!n || n.IsNull()) return;
  if (!n.IsMap()) fail(where, "budget: expected a map (max_completion_tokens, max_cost, ...)");
  static const std::set<std::string> known{"max_completion_tokens", "max_completion_tokens_per_model", "max_cost",
                                           "cost_per_1m_input", "cost_per_1m_output"};
  for (const auto& kv : n) {
    std::string key = kv.first.as<std::string>();
    if (!known.count(key))
      fail(where, "budget.{}: unknown field (expected one of max_completion_tokens, max_completion_tokens_per_model, "
                  "max_cost, cost_per_1m_input, cost_per_1m_output)", key);
  }
  auto tokens = [&](const char* key) -> int64_t {
    if (!n[key]) return 0;
    double v = num(n[key], where, std::string("budget.") + key);
    if (!(v >= 1 && v <= 1e15) || v != std::floor(v)) fail(where, "budget.{}: {} is not a positive integer", key, v);
    return static_cast<int64_t>(v);
  };
  auto money = [&](const char* key) -> double {
    if (!n[key]) return 0;
    double v = num(n[key], where, std::string("budget.") + key);
    if (!(v >= 0 && v <= 1e12)) fail(where, "budget.{}: {} outside 0..1e12", key, v);
    return v;
  };
  LiveBudget& b = c.budget;
  b.max_completion_tokens = tokens("max_completion_tokens");
  b.max_completion_tokens_per_model = tokens("max_completion_tokens_per_model");
  b.max_cost = money("max_cost");
  b.cost_per_1m_input = money("cost_per_1m_input");
  b.cost_per_1m_output = money("cost_per_1m_output");
  if (n["max_cost"] && !(b.max_cost > 0)) fail(where, "budget.max_cost: must be above 0");
  if (b.max_cost > 0) {
    bool priced = b.cost_per_1m_input > 0 || b.cost_per_1m_output > 0;
    for (const auto& m : c.models)
      if (m.backend && (m.backend->cost_per_1m_input.value_or(0) > 0 || m.backend->cost_per_1m_output.value_or(0) > 0))
        priced = true;
    if (!priced)
      fail(where, "budget.max_cost: needs a price (budget.cost_per_1m_input/output or "
                  "models[i].backend.cost_per_1m_input/output)");
  }
}

void check_count(const YAML::Node& seq, const std::string& where, const std::string& key) {
  if (!seq || !seq.IsSequence()) fail(where, "{}: expected a list", key);
  if (seq.size() > kMaxEntries) fail(where, "{}: {} entries (limit {})", key, seq.size(), kMaxEntries);
}

void parse_caps(const YAML::Node& root, const std::string& where, ArenaCampaign& c) {
  if (const YAML::Node caps = root["caps"]) {
    if (caps["votes_per_account_per_day"])
      c.caps.per_account_per_day = static_cast<int>(num(caps["votes_per_account_per_day"], where, "caps.votes_per_account_per_day"));
    if (caps["votes_per_ip_per_hour"])
      c.caps.per_ip_per_hour = static_cast<int>(num(caps["votes_per_ip_per_hour"], where, "caps.votes_per_ip_per_hour"));
    if (caps["live_prompts_per_account_per_hour"]) {
      double v = num(caps["live_prompts_per_account_per_hour"], where, "caps.live_prompts_per_account_per_hour");
      if (!(v >= 0 && v <= 1000000)) fail(where, "caps.live_prompts_per_account_per_hour: {} outside 0..1000000", v);
      c.caps.live_prompts_per_account_per_hour = static_cast<int>(v);
    }
  }
}

ArenaCampaign parse_arena(const YAML::Node& root, const std::string& where) {
  ArenaCampaign c;
  c.name = str(root, where, "name");
  c.title = str(root, where, "title", false);
  if (root["synthetic"]) c.synthetic = root["synthetic"].as<bool>();
  check_count(root["models"], where, "models");
  std::set<std::string> ids;
  for (size_t i = 0; i < root["models"].size(); ++i) {
    const YAML::Node m = root["models"][i];
    std::string w = fmt::format("models[{}]", i);
    CampaignModel cm;
    if (m.IsScalar()) {
      cm.id = m.as<std::string>();
    } else {
      cm.id = str(m, where, "id", true, w + ".id");
      cm.organization = m["organization"] ? m["organization"].as<std::string>() : "";
      if (m["aliases"]) {
        check_count(m["aliases"], where, w + ".aliases");
        for (const auto& a : m["aliases"]) cm.aliases.push_back(a.as<std::string>());
      }
      if (m["backend"]) cm.backend = parse_backend(m["backend"], where, w + ".backend", cm.id);
    }
    if (cm.id.empty()) fail(where, "{}: empty model id", w);
    if (!ids.insert(cm.id).second) fail(where, "{}: model '{}' listed twice", w, cm.id);
    c.models.push_back(std::move(cm));
  }
  if (c.models.size() < 2) fail(where, "models: an arena needs at least two models");
  if (const YAML::Node live = root["live_prompts"]) {
    if (!live.IsScalar()) fail(where, "live_prompts: expected true or false");
    try {
      c.live_prompts = live.as<bool>();
    } catch (const YAML::Exception&) {
      fail(where, "live_prompts: '{}' is not true or false", live.Scalar());
    }
  }
  if (root["max_prompt_chars"]) {
    double v = num(root["max_prompt_chars"], where, "max_prompt_chars");
    if (!(v >= 1 && v <= 100000)) fail(where, "max_prompt_chars: {} outside 1..100000", v);
    c.max_prompt_chars = static_cast<int>(v);
  }
  if (c.live_prompts && std::count_if(c.models.begin(), c.models.end(), [](const CampaignModel& m) {
                          return m.backend.has_value();
                        }) < 2)
    fail(where, "live_prompts: needs at least two models with a backend (models[i].backend.base_url)");
  parse_budget(root, where, c);
  // A live-only campaign may have no prompt set.
  const YAML::Node prompts = root["prompts"];
  if (c.live_prompts && !prompts) {
    parse_caps(root, where, c);
    return c;
  }
  check_count(prompts, where, "prompts");
  std::set<std::string> pids;
  for (size_t i = 0; i < root["prompts"].size(); ++i) {
    const YAML::Node p = root["prompts"][i];
    std::string w = fmt::format("prompts[{}]", i);
    CampaignPrompt cp;
    cp.id = p["id"] ? p["id"].as<std::string>() : std::to_string(i);
    if (!pids.insert(cp.id).second) fail(where, "{}: prompt id '{}' used twice", w, cp.id);
    if (!p["text"]) fail(where, "{}.text: missing", w);
    cp.text = p["text"].as<std::string>();
    if (p["answers"] && !p["answers"].IsNull() && !p["answers"].IsMap())
      fail(where, "{}.answers: expected a map model -> answer", w);
    const YAML::Node answers = p["answers"];
    if (answers && answers.IsMap()) {
      for (const auto& kv : answers) {
        std::string model = kv.first.as<std::string>();
        if (!ids.count(model)) fail(where, "{}.answers: unknown model '{}'", w, model);
        if (!kv.second.IsScalar()) fail(where, "{}.answers.{}: expected a string", w, model);
        cp.answers[model] = kv.second.as<std::string>();
      }
    }
    c.prompts.push_back(std::move(cp));
  }
  parse_caps(root, where, c);
  return c;
}

ReviewCampaign parse_review(const YAML::Node& root, const std::string& where) {
  ReviewCampaign c;
  c.name = str(root, where, "name");
  c.title = str(root, where, "title", false);
  if (root["synthetic"]) c.synthetic = root["synthetic"].as<bool>();
  if (root["reviewers_per_item"]) c.reviewers_per_item = static_cast<int>(num(root["reviewers_per_item"], where, "reviewers_per_item"));
  if (c.reviewers_per_item < 1 || c.reviewers_per_item > 100)
    fail(where, "reviewers_per_item: {} outside 1..100", c.reviewers_per_item);
  const YAML::Node rubric = root["rubric"];
  if (!rubric || !rubric.IsMap()) fail(where, "rubric: expected a map with criteria");
  check_count(rubric["criteria"], where, "rubric.criteria");
  std::set<std::string> names;
  for (size_t i = 0; i < rubric["criteria"].size(); ++i) {
    const YAML::Node n = rubric["criteria"][i];
    std::string w = fmt::format("rubric.criteria[{}]", i);
    Criterion cr;
    cr.name = str(n, where, "name", true, w + ".name");
    if (!names.insert(cr.name).second) fail(where, "{}: criterion '{}' twice", w, cr.name);
    if (n["weight"]) cr.weight = num(n["weight"], where, w + ".weight");
    if (!(cr.weight > 0)) fail(where, "{}.weight: must be positive", w);
    if (const YAML::Node s = n["scale"]) {
      if (!s.IsSequence() || s.size() != 2) fail(where, "{}.scale: expected [min, max]", w);
      cr.min = num(s[0], where, w + ".scale[0]");
      cr.max = num(s[1], where, w + ".scale[1]");
    }
    if (!(cr.max > cr.min)) fail(where, "{}.scale: max must exceed min", w);
    if (const YAML::Node a = n["anchors"]) {
      if (!a.IsMap()) fail(where, "{}.anchors: expected a map score -> description", w);
      for (const auto& kv : a) cr.anchors[num(kv.first, where, w + ".anchors")] = kv.second.as<std::string>();
    }
    c.rubric.criteria.push_back(std::move(cr));
  }
  if (c.rubric.criteria.empty()) fail(where, "rubric.criteria: at least one criterion");
  check_count(root["items"], where, "items");
  std::set<std::string> ids;
  for (size_t i = 0; i < root["items"].size(); ++i) {
    const YAML::Node n = root["items"][i];
    std::string w = fmt::format("items[{}]", i);
    ReviewItem it;
    it.id = n["id"] ? n["id"].as<std::string>() : std::to_string(i);
    if (!ids.insert(it.id).second) fail(where, "{}: item id '{}' used twice", w, it.id);
    if (!n["model"]) fail(where, "{}.model: missing", w);
    it.model = n["model"].as<std::string>();
    it.title = n["title"] ? n["title"].as<std::string>() : it.id;
    it.content = n["content"] ? n["content"].as<std::string>() : "";
    it.affiliation = n["affiliation"] ? n["affiliation"].as<std::string>() : "";
    c.items.push_back(std::move(it));
  }
  return c;
}

std::string lower_ascii(std::string s) {
  for (char& ch : s)
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  return s;
}

}  // namespace

CampaignFile parse_campaign(const std::string& text, const std::string& where) {
  if (text.size() > kMaxCampaignBytes) fail(where, "campaign file of {} bytes (limit {})", text.size(), kMaxCampaignBytes);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(where, "not valid YAML: {}", e.what());
  }
  if (!root.IsMap()) fail(where, "expected a YAML map at the top level");
  CampaignFile f;
  try {
    f.kind = str(root, where, "kind");
    if (f.kind == "arena")
      f.arena = parse_arena(root, where);
    else if (f.kind == "review")
      f.review = parse_review(root, where);
    else
      fail(where, "kind: '{}' is neither 'arena' nor 'review'", f.kind);
  } catch (const YAML::Exception& e) {
    fail(where, "unexpected YAML shape: {}", e.what());
  }
  return f;
}

CampaignFile load_campaign_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>(path, "cannot open campaign file");
  in.seekg(0, std::ios::end);
  auto size = static_cast<size_t>(in.tellg());
  if (size > kMaxCampaignBytes) fail(path, "campaign file of {} bytes (limit {})", size, kMaxCampaignBytes);
  in.seekg(0);
  std::string text(size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  return parse_campaign(text, path);
}

bool names_itself(const std::string& answer, const CampaignModel& model) {
  std::string hay = lower_ascii(answer);
  auto has = [&](const std::string& needle) {
    std::string n = lower_ascii(needle);
    return n.size() >= 2 && hay.find(n) != std::string::npos;
  };
  if (has(model.id) || has(model.organization)) return true;
  return std::any_of(model.aliases.begin(), model.aliases.end(), has);
}

}  // namespace kaival::arena
