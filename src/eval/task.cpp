#include "eval/task.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include <curl/curl.h>
#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "core/hash.h"
#include "eval/json_split.h"
#include "eval/lmeval_import.h"
#include "eval/parquet.h"
#include "eval/rubric.h"

namespace kaival::eval {

namespace fs = std::filesystem;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail<IoError>(path, "cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

OJson yaml_to_json(const YAML::Node& n, int depth = 0) {
  if (depth > 64) throw FormatError("", "YAML nested too deeply");
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted: always a string
      if (s == "true" || s == "True") return true;
      if (s == "false" || s == "False") return false;
      if (s == "null" || s == "~") return nullptr;
      if (!s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-')) {
        char* end = nullptr;
        long long v = std::strtoll(s.c_str(), &end, 10);
        if (*end == '\0') return static_cast<int64_t>(v);
        double d = std::strtod(s.c_str(), &end);
        if (*end == '\0') return d;
      }
      return s;
    }
    case YAML::NodeType::Sequence: {
      OJson a = OJson::array();
      for (const auto& x : n) a.push_back(yaml_to_json(x, depth + 1));
      return a;
    }
    case YAML::NodeType::Map: {
      OJson o = OJson::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = yaml_to_json(kv.second, depth + 1);
      return o;
    }
  }
  return nullptr;
}

std::string str_field(const OJson& o, const char* key, const std::string& where, bool required = false,
                      std::string def = "") {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) {
    if (required) fail(where, "missing required field '{}'", key);
    return def;
  }
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number() || it->is_boolean()) return it->dump();
  fail(where, "field '{}' must be a string", key);
}

DataSource parse_source(const OJson& s, const std::string& where, const fs::path& card_dir) {
  DataSource d;
  if (s.is_string()) {
    d.path = s.get<std::string>();
  } else if (s.is_object()) {
    d.path = str_field(s, "path", where);
    d.format = str_field(s, "format", where);
    d.json_field = str_field(s, "field", where);
    d.sha256 = str_field(s, "sha256", where);
    if (s.contains("hf")) {
      const OJson& h = s["hf"];
      if (!h.is_object()) fail(where, "'hf' must be a mapping with repo, revision, path");
      d.hf_repo = str_field(h, "repo", where + ".hf", true);
      d.hf_revision = str_field(h, "revision", where + ".hf", true);
      d.hf_path = str_field(h, "path", where + ".hf", true);
      // They become a URL and a cache path: no '..', nothing absolute; a revision is a commit,
      // a branch or tag (`refs/convert/parquet`, the Hub's Parquet conversion, holds '/').
      for (const std::string* f : {&d.hf_repo, &d.hf_revision, &d.hf_path})
        if (f->empty() || f->find("..") != std::string::npos || f->front() == '/' || f->find('\\') != std::string::npos)
          fail(where, "'hf' repo, revision and path must be non-empty, without '..' or '\\', not starting with '/' ('{}')", *f);
      if (!std::all_of(d.hf_revision.begin(), d.hf_revision.end(),
                       [](unsigned char ch) { return std::isalnum(ch) || ch == '/' || ch == '.' || ch == '_' || ch == '-'; }))
        fail(where, "'hf' revision '{}' may only hold letters, digits and / . _ -", d.hf_revision);
    }
  } else {
    fail(where, "a split's source must be a path or a mapping");
  }
  if (d.path.empty() && d.hf_repo.empty()) fail(where, "a split needs 'path' or 'hf'");
  if (!d.path.empty() && fs::path(d.path).is_relative()) d.path = (card_dir / d.path).lexically_normal().string();
  std::string name = d.path.empty() ? d.hf_path : d.path;
  if (d.format.empty()) {
    auto ext = fs::path(name).extension().string();
    if (ext == ".jsonl") d.format = "jsonl";
    else if (ext == ".json") d.format = "json";
    else if (ext == ".csv") d.format = "csv";
    else if (ext == ".tsv") d.format = "tsv";
    else if (ext == ".parquet") d.format = "parquet";
    else fail(where, "cannot tell the format of '{}': set 'format' (jsonl, json, csv, tsv, parquet)", name);
  }
  if (d.format != "jsonl" && d.format != "json" && d.format != "csv" && d.format != "tsv" && d.format != "parquet")
    throw UnsupportedError(where, "format '" + d.format + "' (use jsonl, json, csv, tsv or parquet)");
  return d;
}

// `${var}`, `${var_id}` (lower case, other than letters and digits -> '_') and
// `${var_words}` ('-' and '_' -> ' ') in every string of `j` (keys too).
OJson substitute(const OJson& j, const std::string& var, const std::string& value) {
  std::string id, words;
  for (unsigned char ch : value) {
    id += std::isalnum(ch) ? static_cast<char>(std::tolower(ch)) : (ch >= 0x80 ? static_cast<char>(ch) : '_');
    words += ch == '-' || ch == '_' ? ' ' : static_cast<char>(ch);
  }
  const std::pair<std::string, const std::string*> subs[] = {
      {"${" + var + "_id}", &id}, {"${" + var + "_words}", &words}, {"${" + var + "}", &value}};
  auto in_string = [&](std::string s) {
    for (const auto& [from, to] : subs)
      for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to->size()) s.replace(at, from.size(), *to);
    return s;
  };
  if (j.is_string()) return in_string(j.get<std::string>());
  if (j.is_array()) {
    OJson out = OJson::array();
    for (const auto& x : j) out.push_back(substitute(x, var, value));
    return out;
  }
  if (j.is_object()) {
    OJson out = OJson::object();
    for (auto it = j.begin(); it != j.end(); ++it) out[in_string(it.key())] = substitute(it.value(), var, value);
    return out;
  }
  return j;
}

// A card with `expand: {var: [v1, v2, ...]}` stands for one task per value (KMMLU's 45
// subjects, MMLU's 57): each gets the card with `${var}` and its derived forms substituted.
std::vector<OJson> expand_card(OJson j, const std::string& path) {
  if (!j.contains("expand")) return {std::move(j)};
  const OJson e = j["expand"];
  j.erase("expand");
  if (!e.is_object() || e.size() != 1 || !e.begin().value().is_array() || e.begin().value().empty())
    fail(path, "'expand' must map one variable to a non-empty list of values");
  const std::string var = e.begin().key();
  if (var.empty() || var.size() > 32 || !std::all_of(var.begin(), var.end(), [](unsigned char ch) { return std::islower(ch) || ch == '_'; }))
    fail(path, "expand variable '{}' may only hold a-z and '_'", var);
  const OJson& values = e.begin().value();
  if (values.size() > 10000) fail(path, "'expand' lists {} values (at most 10000)", values.size());
  std::vector<OJson> out;
  std::set<std::string> names;
  for (const auto& v : values) {
    if (!v.is_string() || v.get<std::string>().empty()) fail(path, "expand.{}: every value must be a non-empty string", var);
    OJson one = substitute(j, var, v.get<std::string>());
    one["expanded"] = OJson{{var, v}};
    std::string name = one.value("name", "");
    if (!names.insert(name).second) fail(path, "expanded task name '{}' repeats: put ${{{}}} or ${{{}_id}} in 'name'", name, var, var);
    out.push_back(std::move(one));
  }
  return out;
}

TaskCard card_from_json(OJson j, const std::string& path, const std::string& sha256, std::vector<std::string> warnings) {
  TaskCard c;
  c.file = path;
  c.sha256 = sha256;
  c.warnings = std::move(warnings);
  c.raw = j;
  std::string schema = str_field(j, "schema", path, true);
  if (schema.rfind("kaival.task/", 0) != 0) fail(path, "schema '{}' is not kaival.task/N", schema);
  if (schema != "kaival.task/1") throw UnsupportedError(path, "schema '" + schema + "' is newer than kaival.task/1");
  c.name = str_field(j, "name", path, true);
  for (char ch : c.name)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-' && ch != '.')
      fail(path, "task name '{}' may only hold letters, digits, '_', '-', '.'", c.name);
  c.alias = str_field(j, "alias", path, false, c.name);
  c.version = str_field(j, "version", path, false, "1.0");
  c.group = str_field(j, "group", path);
  c.group_aggregation = str_field(j, "group_aggregation", path, false, "micro");
  if (c.group_aggregation != "micro" && c.group_aggregation != "macro")
    fail(path, "group_aggregation must be micro or macro");
  c.license = str_field(j, "license", path);
  c.description = str_field(j, "description", path);
  fs::path dir = fs::path(path).parent_path();
  if (!j.contains("splits") || !j["splits"].is_object()) fail(path, "missing 'splits' mapping");
  for (auto it = j["splits"].begin(); it != j["splits"].end(); ++it)
    c.splits[it.key()] = parse_source(it.value(), path + ": splits." + it.key(), dir);
  c.eval_split = str_field(j, "eval_split", path, false, "test");
  if (!c.splits.count(c.eval_split)) fail(path, "eval_split '{}' is not among the splits", c.eval_split);
  std::string req = str_field(j, "request", path, true);
  if (req == "loglikelihood") c.request = RequestType::Loglikelihood;
  else if (req == "generate_until") c.request = RequestType::GenerateUntil;
  else if (req == "generative_mc") c.request = RequestType::GenerativeMC;
  else throw UnsupportedError(path, "request type '" + req + "' (loglikelihood, generate_until, generative_mc)");
  c.chat = j.value("chat", false);
  c.circular = j.value("circular", false);
  c.doc_id = str_field(j, "doc_id", path);
  c.prompt = str_field(j, "prompt", path, true);
  c.target = str_field(j, "target", path);
  c.answer_index = str_field(j, "answer_index", path);
  if (j.contains("choices")) {
    if (j["choices"].is_array()) {
      for (const auto& x : j["choices"]) c.choice_templates.push_back(x.is_string() ? x.get<std::string>() : x.dump());
    } else {
      c.choices_template = str_field(j, "choices", path);
    }
  }
  c.choice_prefix = str_field(j, "choice_prefix", path, false, " ");
  if (j.contains("labels")) {
    if (!j["labels"].is_array()) fail(path, "'labels' must be a list");
    for (const auto& x : j["labels"]) c.labels.push_back(x.is_string() ? x.get<std::string>() : x.dump());
  }
  if (j.contains("generation")) c.generation = j["generation"];
  if (j.contains("filters")) {
    for (const auto& f : j["filters"]) {
      Filter flt;
      if (f.is_string()) {
        flt.type = f.get<std::string>();
      } else {
        flt.type = str_field(f, "type", path + ": filters", true);
        flt.pattern = str_field(f, "pattern", path + ": filters");
        flt.group = f.value("group", 1);
        flt.fallback = str_field(f, "fallback", path + ": filters", false, "[invalid]");
      }
      static const char* known[] = {"regex", "strip", "lower", "nfkc", "first_line", "last_number", "first_number", "choice"};
      if (std::find(std::begin(known), std::end(known), flt.type) == std::end(known))
        throw UnsupportedError(path, "filter '" + flt.type + "'");
      if (flt.type == "regex" && flt.pattern.empty()) fail(path, "regex filter needs 'pattern'");
      c.filters.push_back(flt);
    }
  }
  if (j.contains("metrics")) {
    for (const auto& m : j["metrics"]) {
      std::string name = m.is_string() ? m.get<std::string>() : str_field(m, "name", path + ": metrics", true);
      static const char* known[] = {"acc", "acc_norm", "exact_match", "f1", "ifeval", "judge"};
      if (std::find(std::begin(known), std::end(known), name) == std::end(known))
        throw UnsupportedError(path, "metric '" + name + "'");
      c.metrics.push_back(name);
    }
  }
  if (c.metrics.empty()) {
    if (c.request == RequestType::Loglikelihood) c.metrics = {"acc", "acc_norm"};
    else if (c.request == RequestType::GenerativeMC) c.metrics = {"acc"};
    else c.metrics = {"exact_match"};
  }
  if (j.contains("turns")) {
    if (!j["turns"].is_array()) fail(path, "'turns' must be a list of templates (the follow-up user turns)");
    for (const auto& t : j["turns"]) c.turns.push_back(t.is_string() ? t.get<std::string>() : t.dump());
    if (c.request != RequestType::GenerateUntil || !c.chat) fail(path, "'turns' needs request: generate_until and chat: true");
  }
  bool judged = std::find(c.metrics.begin(), c.metrics.end(), "judge") != c.metrics.end();
  if (judged) {
    if (c.request != RequestType::GenerateUntil) fail(path, "metric 'judge' needs request: generate_until");
    if (!j.contains("judge") || !j["judge"].is_object()) fail(path, "metric 'judge' needs a 'judge' mapping with 'rubric'");
    const OJson& jg = j["judge"];
    c.judge_rubric = str_field(jg, "rubric", path + ": judge", true);
    if (fs::path(c.judge_rubric).is_relative()) c.judge_rubric = (fs::path(path).parent_path() / c.judge_rubric).lexically_normal().string();
    if (jg.contains("references")) {
      if (!jg["references"].is_array()) fail(path, "judge.references must be a list of templates, one per turn");
      for (const auto& t : jg["references"]) c.judge_references.push_back(t.is_string() ? t.get<std::string>() : "");
      if (c.judge_references.size() > c.turns.size() + 1) fail(path, "judge.references has more entries than turns");
    }
    load_rubric(c.judge_rubric);  // a broken rubric fails now, not after the model's answers
  } else if (j.contains("judge")) {
    fail(path, "'judge' is set but 'judge' is not among the metrics");
  }
  if (j.contains("fewshot")) {
    const OJson& f = j["fewshot"];
    c.fewshot.k = f.value("k", 0);
    if (c.fewshot.k < 0 || c.fewshot.k > 64) fail(path, "fewshot.k must be within 0..64");
    c.fewshot.seed = f.value("seed", uint64_t{1234});
    c.fewshot.split = str_field(f, "split", path);
    c.fewshot.separator = str_field(f, "separator", path, false, "\n\n");
    c.fewshot.answer = str_field(f, "answer", path);
    if (c.fewshot.k > 0 && c.fewshot.split.empty()) {
      for (const char* s : {"fewshot", "dev", "train", "validation"})
        if (c.splits.count(s)) {
          c.fewshot.split = s;
          break;
        }
      if (c.fewshot.split.empty()) fail(path, "fewshot.k > 0 but no fewshot/dev/train/validation split");
    }
    if (c.fewshot.k > 0 && !c.splits.count(c.fewshot.split)) fail(path, "fewshot split '{}' is not among the splits", c.fewshot.split);
  }
  // Cross-field checks.
  if (c.request == RequestType::Loglikelihood || c.request == RequestType::GenerativeMC) {
    if (c.choice_templates.empty() && c.choices_template.empty()) fail(path, "multiple-choice task needs 'choices'");
    if (c.answer_index.empty()) fail(path, "multiple-choice task needs 'answer_index'");
  } else if (c.target.empty() && std::find(c.metrics.begin(), c.metrics.end(), "ifeval") == c.metrics.end() && !judged) {
    fail(path, "generate_until task needs 'target'");
  }
  // Templates must parse now, not halfway through a run.
  auto check = [&](const std::string& t, const char* what) {
    if (!t.empty()) jinja::Template::parse(t, path + ":" + what);
  };
  check(c.prompt, "prompt");
  check(c.target, "target");
  check(c.answer_index, "answer_index");
  check(c.doc_id, "doc_id");
  check(c.choices_template, "choices");
  check(c.fewshot.answer, "fewshot.answer");
  for (const auto& t : c.choice_templates) check(t, "choices");
  for (const auto& t : c.turns) check(t, "turns");
  for (const auto& t : c.judge_references) check(t, "judge.references");
  return c;
}

}  // namespace

std::vector<TaskCard> load_cards(const std::string& spec) {
  // "card.yaml#name1,name2" picks tasks of an expanded card by name.
  std::string path = spec, pick;
  if (auto hash = spec.rfind('#'); hash != std::string::npos && !fs::exists(spec)) {
    path = spec.substr(0, hash);
    pick = spec.substr(hash + 1);
  }
  std::string text = read_text(path);
  const std::string sha = sha256_hex(text);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail(path, "YAML: {}", e.what());
  }
  OJson j;
  try {
    j = yaml_to_json(root);
  } catch (const FormatError& e) {
    fail(path, "{}", e.problem());
  }
  if (!j.is_object()) fail(path, "a task card is a YAML mapping");
  std::vector<std::string> warnings;
  if (!j.contains("schema") && looks_like_lmeval_task(j)) {  // an lm-evaluation-harness task file
    ImportedTask imp = import_lmeval_task(path);
    j = std::move(imp.card);
    warnings = std::move(imp.warnings);
  }
  std::vector<TaskCard> cards;
  for (auto& one : expand_card(std::move(j), path)) cards.push_back(card_from_json(std::move(one), path, sha, warnings));
  if (pick.empty()) return cards;
  std::vector<TaskCard> picked;
  std::stringstream names(pick);
  for (std::string name; std::getline(names, name, ',');) {
    auto it = std::find_if(cards.begin(), cards.end(), [&](const TaskCard& c) { return c.name == name; });
    if (it == cards.end()) fail(path, "no task named '{}' in this card (it has {} tasks, the first '{}')", name, cards.size(), cards[0].name);
    picked.push_back(*it);
  }
  return picked;
}

TaskCard load_card(const std::string& path) {
  auto cards = load_cards(path);
  if (cards.size() != 1)
    fail(path, "the card expands into {} tasks; pick one as {}#{}", cards.size(), path, cards[0].name);
  return std::move(cards[0]);
}

namespace {

// RFC 4180-ish records read one at a time from a stream: quoted fields (CSV only) may hold
// separators and line breaks, "" is a quote, blank lines are skipped, a UTF-8 BOM is dropped.
class CsvRecords {
 public:
  CsvRecords(std::istream& in, char sep, std::string where) : in_(in), sep_(sep), where_(std::move(where)) {
    if (in_.peek() == 0xEF) {
      char bom[3] = {};
      in_.read(bom, 3);
      if (std::string_view(bom, static_cast<size_t>(in_.gcount())) != "\xEF\xBB\xBF") {
        in_.clear();
        in_.seekg(0);
      }
    }
  }
  // The next non-blank record, or false at the end.
  bool next(std::vector<std::string>& row) {
    row.clear();
    std::string field;
    bool quoted = false, any = false;
    int c;
    while ((c = in_.get()) != std::char_traits<char>::eof()) {
      char ch = static_cast<char>(c);
      if (quoted) {
        if (ch == '"') {
          if (in_.peek() == '"') {
            field += '"';
            in_.get();
          } else {
            quoted = false;
          }
        } else {
          field += ch;
        }
        continue;
      }
      if (ch == '"' && sep_ == ',' && field.empty()) {
        quoted = true;
        any = true;
      } else if (ch == sep_) {
        row.push_back(std::move(field));
        field.clear();
        any = true;
      } else if (ch == '\n' || ch == '\r') {
        if (ch == '\r' && in_.peek() == '\n') in_.get();
        if (any || !field.empty()) {
          row.push_back(std::move(field));
          return true;
        }
        row.clear();
        field.clear();
        any = false;
      } else {
        field += ch;
        any = true;
      }
    }
    if (quoted) fail(where_, "unterminated quoted field");
    if (any || !field.empty()) {
      row.push_back(std::move(field));
      return true;
    }
    return false;
  }

 private:
  std::istream& in_;
  char sep_;
  std::string where_;
};

// Header + records as objects; `row` counts records, the header being row 1.
class CsvObjects {
 public:
  CsvObjects(std::istream& in, char sep, const std::string& where) : rec_(in, sep, where), where_(where) {
    has_header_ = rec_.next(header_);
  }
  std::optional<OJson> next() {
    std::vector<std::string> r;
    if (!has_header_ || !rec_.next(r)) return std::nullopt;
    ++row_;
    if (r.size() != header_.size())
      fail(where_, "row {} has {} fields, the header has {}", row_ + 1, r.size(), header_.size());
    OJson o = OJson::object();
    for (size_t k = 0; k < header_.size(); ++k) o[header_[k]] = std::move(r[k]);
    return o;
  }

 private:
  CsvRecords rec_;
  std::string where_;
  std::vector<std::string> header_;
  bool has_header_ = false;
  size_t row_ = 0;
};

}  // namespace

std::vector<OJson> parse_csv(const std::string& text, char sep, const std::string& where) {
  std::istringstream in(text);
  CsvObjects rows(in, sep, where);
  std::vector<OJson> out;
  while (auto o = rows.next()) out.push_back(std::move(*o));
  return out;
}

namespace {

std::string default_cache_dir() {
  if (const char* c = std::getenv("KAIVAL_CACHE")) return c;
  if (const char* h = std::getenv("HOME")) return std::string(h) + "/.cache/kaival";
  return ".kaival-cache";
}

size_t write_file_cb(char* data, size_t size, size_t n, void* user) {
  auto* f = static_cast<std::FILE*>(user);
  return std::fwrite(data, 1, size * n, f);
}

bool is_commit_id(std::string_view s) {
  return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// Keeps the first X-Repo-Commit of the response chain (the Hub's answer before a
// redirect to its file store carries it; the store's answer does not).
size_t repo_commit_cb(char* data, size_t size, size_t n, void* user) {
  auto* commit = static_cast<std::string*>(user);
  std::string_view line(data, size * n);
  constexpr std::string_view key = "x-repo-commit:";
  if (commit->empty() && line.size() > key.size()) {
    std::string head(line.substr(0, key.size()));
    for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (head == key) {
      std::string_view v = line.substr(key.size());
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.remove_suffix(1);
      if (is_commit_id(v)) *commit = v;
    }
  }
  return size * n;
}

std::string source_note_path(const std::string& downloaded_path) { return downloaded_path + ".kaival.json"; }

}  // namespace

std::string hub_download(const DataSource& src, const LoadOptions& opt) {
  std::string cache = opt.cache_dir.empty() ? default_cache_dir() : opt.cache_dir;
  std::string endpoint = opt.hf_endpoint;
  if (endpoint.empty()) {
    const char* e = std::getenv("KAIVAL_HF_ENDPOINT");
    endpoint = e ? e : "https://huggingface.co";
  }
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  // A revision with '/' (refs/convert/parquet) is one URL segment, escaped as the Hub expects,
  // and one cache folder.
  std::string rev;
  for (char ch : src.hf_revision) rev += ch == '/' ? std::string("%2F") : std::string(1, ch);
  fs::path local = fs::path(cache) / "hf" / src.hf_repo / rev / src.hf_path;
  if (fs::exists(local)) return local.string();
  std::string url = endpoint + "/datasets/" + src.hf_repo + "/resolve/" + rev + "/" + src.hf_path;
  std::error_code ec;
  fs::create_directories(local.parent_path(), ec);
  if (ec) fail<IoError>(local.parent_path().string(), "cannot create cache directory: {}", ec.message());
  std::string tmp = local.string() + ".part";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail<IoError>(tmp, "cannot write");
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURL* h = curl_easy_init();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 15000L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_file_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
  std::string commit;
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, repo_commit_cb);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &commit);
  struct curl_slist* headers = nullptr;
  std::string auth;
  if (const char* tok = std::getenv("HF_TOKEN")) {
    auth = std::string("Authorization: Bearer ") + tok;
    headers = curl_slist_append(headers, auth.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  }
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(h);
  curl_slist_free_all(headers);
  std::fclose(f);
  if (rc != CURLE_OK || status != 200) {
    fs::remove(tmp, ec);
    if (rc != CURLE_OK) fail<IoError>(url, "download failed: {}", curl_easy_strerror(rc));
    fail<IoError>(url, "download failed: HTTP {}", status);
  }
  if (!src.sha256.empty()) {
    std::string got = sha256_file(tmp);
    if (got != src.sha256) {
      fs::remove(tmp, ec);
      fail<IoError>(url, "SHA-256 {} does not match the card's {}", got, src.sha256);
    }
  }
  // The note goes first: a file in place always has the note its download wrote.
  const std::string note = source_note_path(local.string());
  if (!commit.empty()) {
    const std::string note_tmp = note + ".part";
    std::ofstream out(note_tmp, std::ios::binary | std::ios::trunc);
    out << OJson{{"url", url}, {"commit", commit}}.dump() << "\n";
    out.close();
    if (!out) fail<IoError>(note_tmp, "cannot write");
    fs::rename(note_tmp, note, ec);
    if (ec) fail<IoError>(note, "cannot move into place: {}", ec.message());
  } else {
    fs::remove(note, ec);  // an older download's note would name the wrong commit
  }
  fs::rename(tmp, local, ec);
  if (ec) fail<IoError>(local.string(), "cannot move download into place: {}", ec.message());
  return local.string();
}

std::string hub_commit(const std::string& downloaded_path) {
  std::ifstream in(source_note_path(downloaded_path), std::ios::binary);
  if (!in) return "";
  OJson j = OJson::parse(in, nullptr, false);
  if (!j.is_object() || !j.contains("commit") || !j["commit"].is_string()) return "";
  std::string c = j["commit"];
  return is_commit_id(c) ? c : "";
}

struct SplitReader::Impl {
  std::string path;
  std::string format;
  int64_t limit = -1;
  size_t count = 0;
  std::string hash;
  std::ifstream in;
  size_t line = 0;                    // jsonl
  std::optional<CsvObjects> csv;      // csv | tsv
  std::optional<JsonArrayReader> json;  // json: the list, one element at a time
  std::optional<ParquetReader> parquet;  // parquet: one row group decoded at a time
};

SplitReader::SplitReader(const TaskCard& card, const std::string& split, const LoadOptions& opt)
    : impl_(std::make_unique<Impl>()) {
  auto it = card.splits.find(split);
  if (it == card.splits.end()) fail(card.file, "no split '{}'", split);
  const DataSource& src = it->second;
  Impl& m = *impl_;
  if (!opt.local_dir.empty()) m.path = (fs::path(opt.local_dir) / card.name / (split + "." + src.format)).string();
  else m.path = src.hf_repo.empty() ? src.path : hub_download(src, opt);
  m.format = src.format;
  m.limit = opt.limit;
  // A first pass hashes the whole file (limit or not), so a mismatch fails before any row is used.
  m.hash = sha256_file(m.path);
  if (!src.sha256.empty() && opt.local_dir.empty() && m.hash != src.sha256)
    fail(m.path, "SHA-256 {} does not match the card's {}", m.hash, src.sha256);
  if (m.format == "parquet") {
    m.parquet.emplace(m.path);  // a broken footer or schema fails here, before any row
    return;
  }
  m.in.open(m.path, std::ios::binary);
  if (!m.in) fail<IoError>(m.path, "cannot open");
  if (m.format == "json") {
    m.json.emplace(m.in, m.path, src.json_field);
    m.json->locate();  // a wrong shape (no field, not a list) fails here, before any row
  }
  else if (m.format != "jsonl") m.csv.emplace(m.in, m.format == "tsv" ? '\t' : ',', m.path);
}

SplitReader::~SplitReader() = default;
SplitReader::SplitReader(SplitReader&&) noexcept = default;

const std::string& SplitReader::file_sha256() const { return impl_->hash; }
const std::string& SplitReader::file_path() const { return impl_->path; }

std::optional<Doc> SplitReader::next() {
  Impl& m = *impl_;
  if (m.limit >= 0 && static_cast<int64_t>(m.count) >= m.limit) return std::nullopt;
  std::optional<OJson> row;
  if (m.format == "jsonl") {
    std::string l;
    while (!row && std::getline(m.in, l)) {
      ++m.line;
      while (!l.empty() && (l.back() == '\r' || l.back() == ' ')) l.pop_back();
      if (l.empty()) continue;
      auto j = OJson::parse(l, nullptr, false);
      if (j.is_discarded()) fail(m.path, "line {}: not valid JSON", m.line);
      row = std::move(j);
    }
  } else if (m.format == "json") {
    row = m.json->next();
  } else if (m.format == "parquet") {
    row = m.parquet->next();
  } else {
    row = m.csv->next();
  }
  if (!row) return std::nullopt;
  if (!row->is_object()) fail(m.path, "record {} is not a JSON object", m.count + 1);
  Doc d;
  d.index = m.count++;
  d.fields = std::move(*row);
  return d;
}

std::vector<Doc> load_split(const TaskCard& card, const std::string& split, const LoadOptions& opt,
                            std::string* file_sha256, std::string* file_path) {
  SplitReader r(card, split, opt);
  if (file_sha256) *file_sha256 = r.file_sha256();
  if (file_path) *file_path = r.file_path();
  std::vector<Doc> docs;
  while (auto d = r.next()) docs.push_back(std::move(*d));
  return docs;
}

}  // namespace kaival::eval
