#include "eval/lmeval_import.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>

#include <yaml-cpp/yaml.h>

#include "core/error.h"
#include "eval/yaml_json.h"

namespace kaival::eval {

namespace {

namespace fs = std::filesystem;
using OJson = nlohmann::ordered_json;

// Keys an lm-eval file may have; those this importer maps are handled below, the rest are warned about.
const std::set<std::string> kLmevalKeys = {
    "task", "task_alias", "tag", "group", "include", "dataset_path", "dataset_name", "dataset_kwargs",
    "training_split", "validation_split", "test_split", "fewshot_split", "process_docs", "doc_to_text",
    "doc_to_target", "doc_to_choice", "process_results", "use_prompt", "description", "target_delimiter",
    "fewshot_delimiter", "fewshot_config", "num_fewshot", "metric_list", "output_type", "generation_kwargs",
    "repeats", "filter_list", "should_decontaminate", "doc_to_decontamination_query", "metadata", "gen_prefix",
    "unsafe_code", "doc_to_image", "doc_to_audio", "multiple_input", "multiple_target"};

bool is_function(const OJson& v) { return v.is_object() && v.contains("!function"); }

[[noreturn]] void refuse_function(const std::string& file, const std::string& key, const OJson& v) {
  std::string fn = v["!function"].is_string() ? v["!function"].get<std::string>() : v["!function"].dump();
  std::string module = fn.substr(0, fn.rfind('.'));
  throw UnsupportedError(file, fmt::format("{}: !function {} is Python code ({}.py, function {}); kaival cannot run it: "
                                           "write it as a Jinja template in a kaival.task/1 card",
                                           key, fn, module, fn.substr(fn.rfind('.') + 1)));
}

// The file with its includes merged (parent first, the including file's keys win); records where
// each key came from, so that errors name the right file.
OJson load_merged(const std::string& path, std::map<std::string, std::string>& origin, int depth,
                  std::vector<std::string>& chain) {
  if (depth > 8) fail(path, "include: nested more than 8 deep");
  std::string canon = fs::weakly_canonical(path).string();
  if (std::find(chain.begin(), chain.end(), canon) != chain.end()) fail(path, "include: cycle");
  chain.push_back(canon);
  OJson j = read_yaml_file(path);
  if (!j.is_object()) fail(path, "an lm-evaluation-harness task file is a YAML mapping");
  OJson merged = OJson::object();
  if (j.contains("include")) {
    if (!j["include"].is_string()) fail(path, "include: must be a file name");
    fs::path parent = fs::path(path).parent_path() / j["include"].get<std::string>();
    if (!fs::exists(parent)) fail<IoError>(path, "include: {} does not exist (resolved relative to this file)", parent.string());
    merged = load_merged(parent.string(), origin, depth + 1, chain);
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "include") continue;
    merged[it.key()] = it.value();
    origin[it.key()] = path;
  }
  chain.pop_back();
  return merged;
}

bool is_identifier(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

// lm-eval: a string that names a column is that column's value; anything else is Jinja.
std::string field_or_template(const std::string& s) { return is_identifier(s) ? "{{ " + s + " }}" : s; }

// "{{ expr }}" -> "expr" when the template is exactly one expression; "" otherwise.
std::string single_expression(const std::string& t) {
  std::string s = t;
  s.erase(0, s.find_first_not_of(" \t\n"));
  s.erase(s.find_last_not_of(" \t\n") + 1);
  if (s.rfind("{{", 0) != 0 || s.size() < 4 || s.compare(s.size() - 2, 2, "}}") != 0) return "";
  std::string inner = s.substr(2, s.size() - 4);
  if (inner.find("{{") != std::string::npos || inner.find("}}") != std::string::npos || inner.find("{%") != std::string::npos)
    return "";
  if (!inner.empty() && inner.front() == '-') inner.erase(0, 1);  // whitespace control
  if (!inner.empty() && inner.back() == '-') inner.pop_back();
  return inner;
}

std::string as_text(const OJson& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

class Importer {
 public:
  explicit Importer(std::string path) : path_(std::move(path)) {
    std::vector<std::string> chain;
    y_ = load_merged(path_, origin_, 0, chain);
  }

  ImportedTask run() {
    for (auto it = y_.begin(); it != y_.end(); ++it)
      if (is_function(it.value())) refuse_function(where(it.key()), it.key(), it.value());
    OJson c = OJson::object();
    c["schema"] = "kaival.task/1";
    if (!y_.contains("task") || !y_["task"].is_string())
      fail(path_, "'task' must name the task (a group file with a list of tasks is not a task)");
    c["name"] = y_["task"];
    if (y_.contains("task_alias")) c["alias"] = as_text(take("task_alias"));
    take("task");
    if (y_.contains("metadata")) {
      const OJson& m = take("metadata");
      if (m.is_object() && m.contains("version")) c["version"] = as_text(m["version"]);
      if (m.is_object())
        for (auto it = m.begin(); it != m.end(); ++it)
          if (it.key() != "version") warn("metadata." + it.key() + " is not mapped");
    }
    map_group(c);
    std::string out_type = y_.contains("output_type") ? as_text(take("output_type")) : "generate_until";
    bool mc = out_type == "multiple_choice";
    if (out_type == "loglikelihood" && !y_.contains("doc_to_choice"))
      throw UnsupportedError(where("output_type"), "output_type loglikelihood without doc_to_choice (the target's "
                                                   "log-likelihood alone) is not supported; kaival scores choices");
    if (out_type == "loglikelihood") mc = true;
    else if (out_type != "multiple_choice" && out_type != "generate_until")
      throw UnsupportedError(where("output_type"), "output_type '" + out_type + "' (multiple_choice, generate_until, loglikelihood)");
    map_splits(c);
    c["request"] = mc ? "loglikelihood" : "generate_until";
    if (y_.contains("description")) c["description"] = as_text(take("description"));
    std::string target_delim = y_.contains("target_delimiter") ? as_text(take("target_delimiter")) : " ";
    std::string fewshot_delim = y_.contains("fewshot_delimiter") ? as_text(take("fewshot_delimiter")) : "\n\n";
    if (!y_.contains("doc_to_text")) fail(path_, "missing 'doc_to_text'");
    c["prompt"] = field_or_template(as_text(take("doc_to_text")));
    std::string target = y_.contains("doc_to_target") ? target_template(take("doc_to_target")) : "";
    if (mc) {
      map_choices(c);
      c["choice_prefix"] = target_delim;
      if (target.empty()) fail(path_, "multiple_choice task needs 'doc_to_target'");
      // lm-eval: a target that renders digits is the choice's index, anything else the choice's text.
      c["answer_index"] = "{% set t %}" + target + "{% endset %}{% set t = t | trim %}{% if t.isdigit() %}{{ t }}"
                          "{% else %}{{ choice_list.index(t) }}{% endif %}";
    } else {
      if (y_.contains("doc_to_choice")) {
        take("doc_to_choice");
        warn("doc_to_choice is ignored for generate_until");
      }
      c["target"] = target;
    }
    map_fewshot(c, mc, target, target_delim, fewshot_delim);
    if (!mc) map_generation(c, fewshot_delim);
    else if (y_.contains("generation_kwargs")) {
      take("generation_kwargs");
      warn("generation_kwargs is ignored for multiple_choice");
    }
    map_filters(c, mc);
    map_metrics(c, mc);
    for (auto it = y_.begin(); it != y_.end(); ++it)
      warn(it.key() + (kLmevalKeys.count(it.key()) ? " is not supported by the importer; ignored" : " is not an lm-eval key; ignored"));
    return ImportedTask{std::move(c), std::move(warnings_)};
  }

 private:
  std::string where(const std::string& key) const {
    auto it = origin_.find(key);
    return it == origin_.end() ? path_ : it->second;
  }
  OJson take(const std::string& key) {
    OJson v = y_[key];
    if (is_function(v)) refuse_function(where(key), key, v);
    y_.erase(key);
    return v;
  }
  void warn(std::string w) { warnings_.push_back(std::move(w)); }

  void map_group(OJson& c) {
    std::vector<std::string> groups;
    for (const char* k : {"group", "tag"}) {
      if (!y_.contains(k)) continue;
      OJson v = take(k);
      if (v.is_array())
        for (const auto& x : v) groups.push_back(as_text(x));
      else if (!v.is_null())
        groups.push_back(as_text(v));
    }
    if (groups.empty()) return;
    c["group"] = groups[0];
    for (size_t i = 1; i < groups.size(); ++i) warn("group/tag '" + groups[i] + "' dropped: a kaival card has one group");
  }

  void map_splits(OJson& c) {
    std::string repo = y_.contains("dataset_path") ? as_text(take("dataset_path")) : "";
    std::string config = y_.contains("dataset_name") && !y_["dataset_name"].is_null() ? as_text(take("dataset_name")) : "";
    y_.erase("dataset_name");
    OJson kwargs = y_.contains("dataset_kwargs") ? take("dataset_kwargs") : OJson::object();
    OJson data_files = kwargs.is_object() && kwargs.contains("data_files") ? kwargs["data_files"] : OJson();
    std::string revision = kwargs.is_object() && kwargs.contains("revision") ? as_text(kwargs["revision"]) : "";
    if (kwargs.is_object())
      for (auto it = kwargs.begin(); it != kwargs.end(); ++it)
        if (it.key() != "data_files" && it.key() != "revision") warn("dataset_kwargs." + it.key() + " is not mapped");
    std::map<std::string, std::string> role;  // lm-eval split key -> split name
    for (const char* k : {"test_split", "validation_split", "training_split", "fewshot_split"})
      if (y_.contains(k) && !y_[k].is_null()) role[k] = as_text(take(k));
      else y_.erase(k);
    if (role.count("test_split")) c["eval_split"] = role["test_split"];
    else if (role.count("validation_split")) c["eval_split"] = role["validation_split"];
    else fail(path_, "neither test_split nor validation_split is set");
    fewshot_split_ = role.count("fewshot_split") ? role["fewshot_split"]
                     : role.count("training_split") ? role["training_split"]
                     : (role.count("validation_split") && role["validation_split"] != c["eval_split"].get<std::string>())
                         ? role["validation_split"] : "";
    OJson splits = OJson::object();
    fs::path dir = fs::path(path_).parent_path();
    for (const auto& [k, split] : role) {
      if (splits.contains(split)) continue;
      OJson src = OJson::object();
      if (!data_files.is_null()) {
        OJson f = data_files.is_object() ? (data_files.contains(split) ? data_files[split] : OJson()) : data_files;
        if (f.is_array() && f.size() == 1) f = f[0];
        if (!f.is_string())
          throw UnsupportedError(where("dataset_kwargs"), "data_files for split '" + split + "' must be one file");
        fs::path p = fs::path(f.get<std::string>());
        if (p.is_relative()) p = fs::absolute(dir / p);
        src["path"] = p.lexically_normal().string();
      } else {
        if (repo.empty()) fail(path_, "no dataset_path");
        // Every public Hub dataset has a Parquet conversion on the `refs/convert/parquet`
        // branch, one folder per config and split: <config>/<split>/0000.parquet, the config
        // "default" when unnamed: the copy the Hub's dataset viewer serves, and for script-based
        // repos (lm-eval's loader runs their Python) the only copy kaival can read.
        std::string file = (config.empty() ? "default" : config) + "/" + split + "/0000.parquet";
        src["hf"] = {{"repo", repo}, {"revision", "refs/convert/parquet"}, {"path", file}};
        src["format"] = "parquet";
      }
      splits[split] = src;
    }
    if (data_files.is_null()) {
      warn(fmt::format("dataset {}{}: read from the Hub's Parquet conversion (revision refs/convert/parquet, "
                       "{}/<split>/0000.parquet; a split stored in several files reads only the first); "
                       "set dataset_kwargs.data_files otherwise",
                       repo, config.empty() ? "" : " (" + config + ")", config.empty() ? "default" : config));
      // The conversion branch follows the dataset's main branch; what was read is pinned by the
      // SHA-256 of each file in the run's manifest.
      if (revision.empty()) warn("dataset revision not pinned (dataset_kwargs.revision); the manifest's file SHA-256s pin what was read");
      else warn(fmt::format("dataset_kwargs.revision {} is a commit of the dataset's source, which its Parquet conversion "
                            "does not keep: the manifest's file SHA-256s pin what was read", revision));
    }
    c["splits"] = splits;
  }

  std::string target_template(const OJson& v) {
    if (v.is_number_integer()) return "{{ " + v.dump() + " }}";
    if (!v.is_string()) throw UnsupportedError(where("doc_to_target"), "doc_to_target must be a string, a field name or an integer");
    return field_or_template(v.get<std::string>());
  }

  void map_choices(OJson& c) {
    if (!y_.contains("doc_to_choice")) fail(path_, "multiple_choice task needs 'doc_to_choice'");
    OJson v = take("doc_to_choice");
    if (v.is_array()) {
      OJson list = OJson::array();
      for (const auto& x : v) list.push_back(as_text(x));
      c["choices"] = list;
      return;
    }
    std::string s = as_text(v);
    if (is_identifier(s)) {
      c["choices"] = "{{ " + s + " | tojson }}";
      return;
    }
    std::string expr = single_expression(s);
    if (expr.empty())
      throw UnsupportedError(where("doc_to_choice"), "doc_to_choice must be a list, a field name or one {{ expression }}: " + s);
    c["choices"] = "{{ (" + expr + ") | tojson }}";
  }

  void map_fewshot(OJson& c, bool mc, const std::string& target, const std::string& target_delim,
                   const std::string& fewshot_delim) {
    int64_t k = 0;
    if (y_.contains("num_fewshot")) {
      OJson v = take("num_fewshot");
      if (!v.is_number_integer()) fail(where("num_fewshot"), "num_fewshot must be an integer");
      k = v.get<int64_t>();
    }
    if (y_.contains("fewshot_config")) {
      OJson f = take("fewshot_config");
      if (f.is_object() && f.value("sampler", "default") != "default" && f.value("sampler", "") != "first_n")
        warn("fewshot_config.sampler '" + as_text(f["sampler"]) + "' is not mapped; kaival draws a fixed-seed sample");
      else if (f.is_object() && f.contains("sampler") && f["sampler"] == "first_n")
        warn("fewshot_config.sampler first_n is not mapped; kaival draws a fixed-seed sample");
      if (f.is_object())
        for (auto it = f.begin(); it != f.end(); ++it)
          if (it.key() != "sampler") warn("fewshot_config." + it.key() + " is not mapped");
    }
    if (k <= 0) return;
    if (fewshot_split_.empty()) fail(path_, "num_fewshot > 0 but no fewshot_split / training_split / validation_split");
    OJson f = {{"k", k}, {"split", fewshot_split_}, {"seed", 1234}, {"separator", fewshot_delim}};
    if (!mc) f["answer"] = target_delim + target;
    c["fewshot"] = f;
    warn("few-shot examples are a fixed-seed sample (seed 1234) drawn by kaival, not lm-eval's sampler: the same k, "
         "other examples");
  }

  void map_generation(OJson& c, const std::string& fewshot_delim) {
    OJson g = OJson::object();
    OJson kw = y_.contains("generation_kwargs") ? take("generation_kwargs") : OJson::object();
    if (!kw.is_object()) fail(where("generation_kwargs"), "generation_kwargs must be a mapping");
    OJson until = kw.contains("until") ? kw["until"] : OJson::array({fewshot_delim});
    if (until.is_string()) until = OJson::array({until});
    g["stop"] = until;
    for (auto it = kw.begin(); it != kw.end(); ++it) {
      const std::string& key = it.key();
      if (key == "until") continue;
      if (key == "max_gen_toks") g["max_tokens"] = it.value();
      else if (key == "temperature" || key == "top_p" || key == "top_k" || key == "seed") g[key] = it.value();
      else if (key == "do_sample") {
        if (it.value() == true && !kw.contains("temperature")) warn("generation_kwargs.do_sample true without a temperature: kaival samples at temperature 0");
      } else warn("generation_kwargs." + key + " is not mapped");
    }
    c["generation"] = g;
  }

  void map_filters(OJson& c, bool mc) {
    if (!y_.contains("filter_list")) return;
    OJson fl = take("filter_list");
    if (!fl.is_array() || fl.empty()) return;
    if (mc) {
      warn("filter_list is ignored for multiple_choice");
      return;
    }
    for (size_t i = 1; i < fl.size(); ++i)
      warn("filter pipeline '" + as_text(fl[i].value("name", OJson("?"))) + "' dropped: kaival scores one pipeline (the first)");
    const OJson& first = fl[0];
    OJson out = OJson::array();
    for (const auto& f : first.value("filter", OJson::array())) {
      std::string fn = as_text(f.value("function", OJson("")));
      if (fn == "regex") {
        std::string pattern = f.contains("regex_pattern") ? as_text(f["regex_pattern"]) : R"(#### (\-?[0-9\.\,]+))";
        int64_t select = f.value("group_select", int64_t{0});
        if (select == -1) pattern = "(?s).*(?:" + pattern + ")";  // the last match; group numbers unchanged
        else if (select != 0) warn("regex filter group_select " + std::to_string(select) + " is not mapped; the first match is used");
        out.push_back({{"type", "regex"}, {"pattern", pattern}, {"group", 1},
                       {"fallback", f.contains("fallback") ? as_text(f["fallback"]) : "[invalid]"}});
      } else if (fn == "take_first") {
        // one generation per request: nothing to take
      } else if (fn == "remove_whitespace") {
        out.push_back("strip");
      } else if (fn == "lowercase") {
        out.push_back("lower");
      } else {
        warn("filter function '" + fn + "' is not mapped; skipped");
      }
    }
    if (!out.empty()) c["filters"] = out;
  }

  void map_metrics(OJson& c, bool mc) {
    OJson metrics = OJson::array();
    OJson list = y_.contains("metric_list") ? take("metric_list") : OJson::array();
    for (const auto& m : list) {
      std::string name = as_text(m.is_object() ? m.value("metric", OJson("")) : m);
      if (name != "acc" && name != "acc_norm" && name != "exact_match") {
        warn("metric '" + name + "' is not mapped (acc, acc_norm, exact_match)");
        continue;
      }
      if (mc && name == "exact_match") {
        warn("metric exact_match on multiple_choice is scored as acc");
        name = "acc";
      }
      if (!mc && name == "acc_norm") {
        warn("metric acc_norm does not apply to generate_until; skipped");
        continue;
      }
      if (m.is_object()) {
        if (m.contains("aggregation") && as_text(m["aggregation"]) != "mean")
          warn("metric " + name + ": aggregation '" + as_text(m["aggregation"]) + "' is not mapped; kaival takes the mean");
        if (m.value("ignore_case", false)) {
          // Lower both sides: a lower filter on the answer, and the target lowered.
          OJson filters = c.contains("filters") ? c["filters"] : OJson::array();
          filters.push_back("lower");
          c["filters"] = filters;
          c["target"] = "{% set t %}" + c["target"].get<std::string>() + "{% endset %}{{ t | lower }}";
        }
        if (m.value("ignore_punctuation", false)) warn("metric " + name + ": ignore_punctuation is not applied");
        if (m.contains("regexes_to_ignore")) warn("metric " + name + ": regexes_to_ignore is not applied");
        for (auto it = m.begin(); it != m.end(); ++it)
          if (it.key() != "metric" && it.key() != "aggregation" && it.key() != "higher_is_better" &&
              it.key() != "ignore_case" && it.key() != "ignore_punctuation" && it.key() != "regexes_to_ignore")
            warn("metric " + name + ": option " + it.key() + " is not mapped");
      }
      if (std::find(metrics.begin(), metrics.end(), name) == metrics.end()) metrics.push_back(name);
    }
    if (metrics.empty()) {
      metrics = mc ? OJson::array({"acc", "acc_norm"}) : OJson::array({"exact_match"});
      if (!list.empty()) warn("no metric_list entry maps to kaival; scoring with " + metrics.dump());
    }
    c["metrics"] = metrics;
  }

  std::string path_;
  OJson y_;
  std::map<std::string, std::string> origin_;
  std::vector<std::string> warnings_;
  std::string fewshot_split_;
};

void emit(YAML::Emitter& e, const OJson& v) {
  if (v.is_object()) {
    e << YAML::BeginMap;
    for (auto it = v.begin(); it != v.end(); ++it) {
      e << YAML::Key << it.key() << YAML::Value;
      emit(e, it.value());
    }
    e << YAML::EndMap;
  } else if (v.is_array()) {
    e << YAML::Flow << YAML::BeginSeq;
    for (const auto& x : v) emit(e, x);
    e << YAML::EndSeq;
  } else if (v.is_string()) {
    e << YAML::DoubleQuoted << v.get<std::string>();
  } else if (v.is_null()) {
    e << YAML::Null;
  } else {
    e << v.dump();
  }
}

}  // namespace

bool looks_like_lmeval_task(const nlohmann::ordered_json& y) {
  if (!y.is_object() || y.contains("schema")) return false;
  if (!y.contains("task") && !y.contains("include")) return false;
  for (const char* k : {"doc_to_text", "output_type", "dataset_path", "include", "doc_to_target", "metric_list"})
    if (y.contains(k)) return true;
  return false;
}

ImportedTask import_lmeval_task(const std::string& path) { return Importer(path).run(); }

std::string card_to_yaml(const ImportedTask& task, const std::string& source_path) {
  YAML::Emitter e;
  e.SetIndent(2);
  emit(e, task.card);
  std::string out = "# kaival.task/1 card imported from the lm-evaluation-harness file " + source_path + "\n";
  for (const auto& w : task.warnings) out += "# warning: " + w + "\n";
  out += e.c_str();
  out += "\n";
  return out;
}

}  // namespace kaival::eval
