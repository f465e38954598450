#pragma once
// A run's requests as a PostgreSQL work queue, so that many machines evaluate
// one run into one store (`kaival eval --store postgresql://...` and
// `kaival worker --store postgresql://...`).
//
// The coordinator plans the run exactly as on one machine (cards, few-shot,
// prompts), enqueues every request under the SHA-256 of its endpoint and body
// (the same key as the SQLite response cache), and scores once every request
// is answered. Workers claim shards with `FOR UPDATE SKIP LOCKED` under a lease;
// an answer is accepted only from the worker that still holds the claim, so a
// worker killed mid-shard loses its claim when the lease runs out, another
// worker answers those requests, and each request is answered exactly once.
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/http_client.h"

namespace kaival::eval {

struct QueuedRequest {
  std::string hash;      // sha256(endpoint + "\n" + body)
  std::string endpoint;  // "completions" | "chat/completions"
  std::string body;      // the JSON body as sent
};

struct QueueProgress {
  int64_t total = 0, done = 0, failed = 0, claimed = 0;
};

struct WorkerOptions {
  std::string store_url;
  std::string run;              // only this run; "" = any run with open work
  std::string worker_id;        // default host:pid
  int concurrency = 8;          // requests in flight in this worker
  int shard = 16;               // requests claimed at a time
  double lease_s = 120;         // a claim not answered by then goes back to the queue
  int max_attempts = 3;         // claims per request before it is marked failed
  double idle_exit_s = -1;      // exit after this long with nothing to claim (<0: never)
  double poll_s = 0.2;
  bool progress = false;
  const std::atomic<bool>* stop = nullptr;  // set by a signal handler or the coordinator
};

struct WorkerStats {
  int64_t answered = 0;  // accepted answers
  int64_t lost = 0;      // answers refused because the lease had passed to another worker
  int64_t failed = 0;    // requests given back after an error
};

class RequestQueue {
 public:
  // Connects and applies the queue's migrations (component "eval_queue").
  explicit RequestQueue(const std::string& store_url);
  ~RequestQueue();
  RequestQueue(const RequestQueue&) = delete;
  RequestQueue& operator=(const RequestQueue&) = delete;

  // Creates the run if it is new (a run of the same name at another model URL is an error) and
  // adds the requests not queued yet; returns the run's progress afterwards.
  QueueProgress enqueue(const std::string& run, const std::string& model_url, const ClientOptions& client,
                        const std::vector<QueuedRequest>& reqs);
  QueueProgress progress(const std::string& run, int max_attempts = 3);
  // Progress over the given requests of the run only (a window of a streamed run).
  QueueProgress progress(const std::string& run, const std::vector<std::string>& hashes, int max_attempts = 3);
  // hash -> response of every answered request of the run.
  std::map<std::string, nlohmann::json> responses(const std::string& run);
  // hash -> response of the given requests that are answered.
  std::map<std::string, nlohmann::json> responses(const std::string& run, const std::vector<std::string>& hashes);
  // "hash: error" of failed requests (at most `limit`).
  std::vector<std::string> failures(const std::string& run, int limit = 5);

 private:
  struct Impl;
  Impl* impl_;
};

// Claims and answers requests until `stop`, or until idle for idle_exit_s.
WorkerStats run_worker(const WorkerOptions& opt);

// Coordinator side of one run, kept across the windows of a streamed run (eval/runner.cpp): each
// window's requests are enqueued as the window is read, and wait() returns the answers of just
// those requests, so the coordinator holds O(window) rows and answers, never the run. A queue row
// carries its request (endpoint and body): workers need no dataset and hold one claimed shard at
// a time. With work_here a worker thread in this process answers too, for the whole run.
// enqueue() may be called from another thread than wait() (the runner's read-ahead thread
// enqueues the next window while this one is waited on and scored).
class QueueRun {
 public:
  QueueRun(const std::string& store_url, const std::string& run, const std::string& model_url,
           const ClientOptions& client, bool work_here, bool progress);
  ~QueueRun();  // stops and joins the in-process worker
  QueueRun(const QueueRun&) = delete;
  QueueRun& operator=(const QueueRun&) = delete;
  void enqueue(const std::vector<QueuedRequest>& reqs);
  // Waits until every given request is answered (or failed: IoError naming them) and returns
  // hash -> response for them.
  std::map<std::string, nlohmann::json> wait(const std::vector<std::string>& hashes);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Coordinator side in one call: enqueue, optionally work in this process too, wait until every request
// is answered (progress bar), and return hash -> response. Throws IoError naming failed requests.
std::map<std::string, nlohmann::json> execute_on_queue(const std::string& store_url, const std::string& run,
                                                       const std::string& model_url, const ClientOptions& client,
                                                       const std::vector<QueuedRequest>& reqs, bool work_here,
                                                       bool progress);

}  // namespace kaival::eval
