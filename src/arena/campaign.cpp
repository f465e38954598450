#include "arena/campaign.h"

#include <algorithm>
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

void check_count(const YAML::Node& seq, const std::string& where, const std::string& key) {
  if (!seq || !seq.IsSequence()) fail(where, "{}: expected a list", key);
  if (seq.size() > kMaxEntries) fail(where, "{}: {} entries (limit {})", key, seq.size(), kMaxEntries);
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
    }
    if (cm.id.empty()) fail(where, "{}: empty model id", w);
    if (!ids.insert(cm.id).second) fail(where, "{}: model '{}' listed twice", w, cm.id);
    c.models.push_back(std::move(cm));
  }
  if (c.models.size() < 2) fail(where, "models: an arena needs at least two models");
  check_count(root["prompts"], where, "prompts");
  std::set<std::string> pids;
  for (size_t i = 0; i < root["prompts"].size(); ++i) {
    const YAML::Node p = root["prompts"][i];
    std::string w = fmt::format("prompts[{}]", i);
    CampaignPrompt cp;
    cp.id = p["id"] ? p["id"].as<std::string>() : std::to_string(i);
    if (!pids.insert(cp.id).second) fail(where, "{}: prompt id '{}' used twice", w, cp.id);
    if (!p["text"]) fail(where, "{}.text: missing", w);
    cp.text = p["text"].as<std::string>();
    if (!p["answers"] || !p["answers"].IsMap()) fail(where, "{}.answers: expected a map model -> answer", w);
    for (const auto& kv : p["answers"]) {
      std::string model = kv.first.as<std::string>();
      if (!ids.count(model)) fail(where, "{}.answers: unknown model '{}'", w, model);
      cp.answers[model] = kv.second.as<std::string>();
    }
    c.prompts.push_back(std::move(cp));
  }
  if (const YAML::Node caps = root["caps"]) {
    if (caps["votes_per_account_per_day"])
      c.caps.per_account_per_day = static_cast<int>(num(caps["votes_per_account_per_day"], where, "caps.votes_per_account_per_day"));
    if (caps["votes_per_ip_per_hour"])
      c.caps.per_ip_per_hour = static_cast<int>(num(caps["votes_per_ip_per_hour"], where, "caps.votes_per_ip_per_hour"));
  }
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
