#pragma once
// Task cards (`schema: kaival.task/1`, YAML; see docs/eval.md and
// schemas/task.schema.json) and the datasets they name: local JSONL / JSON /
// CSV / TSV / Parquet files, or Hugging Face Hub dataset files pinned by repo, revision
// and path, downloaded once into a cache directory.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/jinja.h"

namespace kaival::eval {

using OJson = nlohmann::ordered_json;

enum class RequestType { Loglikelihood, GenerateUntil, GenerativeMC };

struct DataSource {
  std::string format;  // jsonl | json | csv | tsv | parquet (eval/parquet.h)
  std::string path;    // local file (relative paths are relative to the card)
  std::string hf_repo, hf_revision, hf_path;  // Hugging Face Hub dataset file
  std::string json_field;  // json: key of the record list inside an object
  std::string sha256;      // optional expected hash of the file
};

struct Filter {
  std::string type;  // regex | strip | lower | nfkc | first_line | last_number | first_number | choice
  std::string pattern;
  int group = 1;
  std::string fallback = "[invalid]";
};

struct FewShot {
  int k = 0;
  uint64_t seed = 1234;
  std::string split;  // defaults to "fewshot" when present, else "dev"/"train"/"validation"
  std::string separator = "\n\n";
  std::string answer;  // template for an example's answer (appended after its prompt)
};

struct TaskCard {
  std::string file;  // card path
  std::string sha256;
  std::string name, alias, version = "1.0", group, group_aggregation = "micro", license, description;
  std::map<std::string, DataSource> splits;
  std::string eval_split = "test";
  RequestType request = RequestType::Loglikelihood;
  bool chat = false;      // generation through /v1/chat/completions
  bool circular = false;  // generative MC: every rotation of the choices must be right
  std::string doc_id;     // template; default: the row index
  std::string prompt, target, answer_index;  // templates
  std::vector<std::string> choice_templates;  // one template per choice, or
  std::string choices_template;               // one template rendering a JSON list
  std::string choice_prefix = " ";            // loglikelihood: continuation = prefix + choice
  std::vector<std::string> labels;            // generative MC labels (A, B, ... / ①... / 가...)
  OJson generation = OJson::object();          // max_tokens, stop, temperature, ...
  std::vector<Filter> filters;
  std::vector<std::string> metrics;
  FewShot fewshot;
  // Multi-turn chat and LLM-as-judge (eval/judge.h, docs/eval.md "LLM-as-judge").
  std::vector<std::string> turns;             // follow-up user turns (templates), each sent with the history
  std::string judge_rubric;                   // rubric card (metric `judge`), relative paths resolved
  std::vector<std::string> judge_references;  // reference template per turn ("" = none)
  std::vector<std::string> warnings;          // e.g. keys an imported lm-evaluation-harness file had
  OJson raw;  // the whole card as JSON (for the results' config)
};

// Reads and validates a card; throws FormatError naming the card and the field.
// `spec` is a card path, or "path#name1,name2" for some tasks of a card with `expand`
// (one task per value of a variable, e.g. KMMLU's subjects); load_cards returns every task.
std::vector<TaskCard> load_cards(const std::string& spec);
// The card's one task (an error for an expanded card that was not narrowed to one).
TaskCard load_card(const std::string& spec);

struct Doc {
  size_t index = 0;
  OJson fields;
};

struct LoadOptions {
  std::string cache_dir;    // Hub downloads; default $KAIVAL_CACHE or ~/.cache/kaival
  std::string hf_endpoint;  // default $KAIVAL_HF_ENDPOINT or https://huggingface.co
  int64_t limit = -1;       // first N rows only
  // When set, every split is read from <local_dir>/<task name>/<split>.<format>
  // instead of its source (tests: hand-written samples in the source's format).
  std::string local_dir;
};

// Reads one split a row at a time, so a run holds O(window) rows whatever the file's size:
// JSONL line by line, CSV/TSV record by record, JSON element by element (the root list or the
// `field` list is cut out of 64 KiB chunks and each element parsed when read, see
// eval/json_split.h). The file's SHA-256 is computed (and checked against the card's) by a
// first streaming pass, before the first row.
class SplitReader {
 public:
  SplitReader(const TaskCard& card, const std::string& split, const LoadOptions& opt);
  ~SplitReader();
  SplitReader(SplitReader&&) noexcept;
  // The next row (index = its position), or nullopt after the last (or `limit`) row.
  std::optional<Doc> next();
  const std::string& file_sha256() const;
  // The file read: the card's local path, the Hub download in the cache, or the sample under
  // LoadOptions::local_dir (what file_sha256 is the hash of).
  const std::string& file_path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Rows of one split, each a JSON object. `file_sha256` receives the file hash, `file_path`
// the file read (SplitReader::file_path).
std::vector<Doc> load_split(const TaskCard& card, const std::string& split, const LoadOptions& opt,
                            std::string* file_sha256 = nullptr, std::string* file_path = nullptr);

// Downloads <endpoint>/datasets/<repo>/resolve/<revision>/<path> into the cache
// (atomically) unless present; returns the local path. The commit the Hub resolved the
// revision to (its X-Repo-Commit header) is kept beside the file, in <path>.kaival.json.
std::string hub_download(const DataSource& src, const LoadOptions& opt);

// The commit a cached Hub download came from (40 hex digits), or "" when the Hub did not
// say (or the file is not a Hub download). A result's manifest records it, so a card that
// names a branch (main, refs/convert/parquet) still pins the data it was scored on.
std::string hub_commit(const std::string& downloaded_path);

// Parsers, exposed for tests.
std::vector<OJson> parse_csv(const std::string& text, char sep, const std::string& where);

}  // namespace kaival::eval
