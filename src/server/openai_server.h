#pragma once
// An OpenAI-compatible HTTP server over the local CPU engine:
//   GET  /v1/models, /health, /metrics (Prometheus text format)
//   POST /v1/completions       prompt string / token ids / list of them; echo + logprobs
//   POST /v1/chat/completions  messages via the model's chat template; SSE streaming
// Requests run on a bounded worker pool: at most `max_running` generate at
// once (each with its own KV cache over the shared, read-only model), up to
// `max_waiting` more wait for a slot, beyond that the server answers 503.
// Concurrent requests are batched: each prefills its prompt, then one
// scheduler decodes up to `max_batch` sequences per step (engine/batch.h).
// Invalid requests get a 4xx with an OpenAI-style body
// {"error": {"message", "type", "param", "code"}}.
//
// In-process use (tests, `kaival demo`):
//   auto served = server::ServedModel::open("testdata/models/base-a");
//   server::OpenAIServer srv(served);
//   int port = srv.start();   // 127.0.0.1, ephemeral port by default
//   ... talk to http://127.0.0.1:<port>/v1/... ...
//   srv.stop();               // also done by the destructor
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/model.h"
#include "tokenizer/tokenizer.h"

namespace kaival::server {

// A model, its tokenizer and the name clients use for it; read-only once
// loaded, so one instance serves every request.
struct ServedModel {
  std::string id;
  engine::Model model;
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;

  // Loads the checkpoint (HF folder, weights file or .gguf) and its tokenizer.
  // `id` defaults to the folder or file name.
  static std::shared_ptr<const ServedModel> open(const std::string& path, std::string id = "");
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;                           // 0: an ephemeral port, returned by start()
  int max_running = 8;                    // sequences generating at the same time (each holds a KV cache)
  int max_batch = 8;                      // sequences decoded together in one step; <= 1: no batching
  int max_waiting = 64;                   // requests queued for a slot; more get 503
  size_t max_body_bytes = size_t{8} << 20;  // larger bodies get 413
  int64_t context = 0;                    // tokens per sequence; 0: the model's max_position, else 4096
  int32_t max_logprobs = 20;              // largest `logprobs` / `top_logprobs` accepted
};

class OpenAIServer {
 public:
  explicit OpenAIServer(std::shared_ptr<const ServedModel> model, ServerOptions options = {});
  ~OpenAIServer();
  OpenAIServer(const OpenAIServer&) = delete;
  OpenAIServer& operator=(const OpenAIServer&) = delete;

  // Binds host:port and serves on background threads; returns the bound port.
  // Throws IoError when the address cannot be bound.
  int start();
  // Stops accepting, finishes the requests in flight, joins the threads. Idempotent.
  void stop();
  // Blocks until stop() is called from another thread (or a signal handler path).
  void wait();

  int port() const;
  int64_t context() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kaival::server
