#include "arena/chat_stream.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "arena/backend.h"
#include "eval/http_client.h"

namespace kaival::arena {

using nlohmann::json;

namespace {

// One exchange's state, filled by libcurl's callbacks.
struct Exchange {
  CURL* handle = nullptr;
  const std::function<bool(std::string_view)>* on_piece = nullptr;
  std::string pending;     // an SSE line not yet complete
  std::string error_body;  // body of a non-200 answer (bounded)
  StreamedAnswer* answer = nullptr;
  const std::atomic<bool>* cancel = nullptr;
  bool done = false, cancelled = false, usage_reported = false;
  std::string stream_error;  // an error event inside the stream, or a malformed chunk

  long status() const {
    long s = 0;
    curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &s);
    return s;
  }

  // false: stop the transfer.
  bool line(const std::string& l) {
    if (l.rfind("data:", 0) != 0) return true;  // comments, event names, ids
    std::string payload = l.substr(5);
    payload.erase(0, payload.find_first_not_of(' '));
    if (payload == "[DONE]") {
      done = true;
      return true;
    }
    json j = json::parse(payload, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      stream_error = "malformed SSE chunk";
      return false;
    }
    if (j.contains("error") && !j["error"].is_null()) {
      const json& e = j["error"];
      stream_error = e.is_object() && e.contains("message") && e["message"].is_string()
                         ? e["message"].get<std::string>()
                         : e.dump().substr(0, 300);
      return false;
    }
    if (j.contains("usage") && j["usage"].is_object()) {
      const json& u = j["usage"];
      if (u.contains("completion_tokens") && u["completion_tokens"].is_number_integer()) {
        answer->usage.completion_tokens = u["completion_tokens"].get<int64_t>();
        answer->usage.prompt_tokens = u.value("prompt_tokens", int64_t{0});
        usage_reported = true;
      }
    }
    if (j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
      const json& c = j["choices"][0];
      if (c.is_object() && c.contains("delta") && c["delta"].is_object() && c["delta"].contains("content") &&
          c["delta"]["content"].is_string()) {
        std::string piece = c["delta"]["content"].get<std::string>();
        if (!piece.empty()) {
          answer->text += piece;
          ++answer->pieces;
          if (!(*on_piece)(piece)) {
            cancelled = true;
            return false;
          }
        }
      }
    }
    return true;
  }
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  const size_t len = size * n;
  if (ex->status() != 200) {
    if (ex->error_body.size() < 65536) ex->error_body.append(data, std::min(len, 65536 - ex->error_body.size()));
    return len;
  }
  ex->pending.append(data, len);
  size_t pos;
  while ((pos = ex->pending.find('\n')) != std::string::npos) {
    std::string l = ex->pending.substr(0, pos);
    ex->pending.erase(0, pos + 1);
    if (!l.empty() && l.back() == '\r') l.pop_back();
    if (!l.empty() && !ex->line(l)) return 0;  // 0 aborts the transfer
  }
  if (ex->pending.size() > (size_t{16} << 20)) {
    ex->stream_error = "SSE line over 16 MiB";
    return 0;
  }
  return len;
}

std::string server_message(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("error")) {
    const json& e = j["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string()) return e["message"].get<std::string>();
    if (e.is_string()) return e.get<std::string>();
  }
  return body.substr(0, 300);
}

void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

StreamedAnswer stream_answer(const CampaignModel& model, const std::string& prompt,
                             const std::function<bool(std::string_view)>& on_piece, const ChatStreamOptions& options) {
  if (!model.backend) fail<IoError>(model.id, "model has no backend");
  const ModelBackend& b = *model.backend;
  curl_init_once();
  std::string auth;
  if (!b.api_key_env.empty()) {
    // Read at use, never stored or logged: the campaign names only the variable.
    const char* v = std::getenv(b.api_key_env.c_str());
    if (!v || !*v) fail<IoError>(b.base_url, "environment variable {} (api_key_env) is not set", b.api_key_env);
    auth = std::string("Authorization: Bearer ") + v;
  }
  json body = chat_request(b, prompt);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  const std::string payload = body.dump(-1, ' ', false, json::error_handler_t::replace);
  const std::string url = eval::normalize_base_url(b.base_url) + "/chat/completions";
  const auto timeout_ms = static_cast<long>(b.timeout_s * 1000);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);

  StreamedAnswer answer;
  auto finish_usage = [&](const Exchange& ex) {
    if (ex.usage_reported) return;
    answer.usage.counted = true;
    answer.usage.completion_tokens = answer.pieces;
    answer.usage.prompt_tokens = static_cast<int64_t>((b.system.size() + prompt.size() + 3) / 4);
  };
  std::unique_ptr<CURL, void (*)(CURL*)> h(curl_easy_init(), curl_easy_cleanup);
  if (!h) fail<IoError>(model.id, "curl_easy_init failed");
  for (int attempt = 0;; ++attempt) {
    Exchange ex;
    ex.handle = h.get();
    ex.on_piece = &on_piece;
    ex.answer = &answer;
    ex.cancel = options.cancel;
    curl_easy_reset(h.get());
    struct curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Accept: text/event-stream");
    if (!auth.empty()) headers = curl_slist_append(headers, auth.c_str());
    std::unique_ptr<curl_slist, void (*)(curl_slist*)> header_guard(headers, curl_slist_free_all);
    // The whole stream, retries included, stays within timeout_s.
    long left = static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
    if (left <= 0) left = 1;
    curl_easy_setopt(h.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(h.get(), CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h.get(), CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h.get(), CURLOPT_TIMEOUT_MS, left);
    curl_easy_setopt(h.get(), CURLOPT_CONNECTTIMEOUT_MS, std::min<long>(left, options.connect_timeout_ms));
    curl_easy_setopt(h.get(), CURLOPT_POST, 1L);
    curl_easy_setopt(h.get(), CURLOPT_POSTFIELDS, payload.data());
    curl_easy_setopt(h.get(), CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(payload.size()));
    curl_easy_setopt(h.get(), CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h.get(), CURLOPT_WRITEDATA, &ex);
    if (options.cancel) {
      curl_easy_setopt(h.get(), CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(h.get(), CURLOPT_XFERINFODATA, &ex);
      curl_easy_setopt(h.get(), CURLOPT_XFERINFOFUNCTION,
                       +[](void* u, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> int {
                         auto* e = static_cast<Exchange*>(u);
                         if (e->cancel && e->cancel->load()) e->cancelled = true;
                         return e->cancelled ? 1 : 0;
                       });
    }
    CURLcode rc = curl_easy_perform(h.get());
    if (rc == CURLE_OK && !ex.pending.empty() && ex.status() == 200) {
      std::string last = std::move(ex.pending);
      if (!last.empty() && last.back() == '\r') last.pop_back();
      ex.line(last);
    }
    const long status = ex.status();
    std::string why;
    bool retryable = false;
    if (ex.cancelled) {
      finish_usage(ex);
      throw StreamFailure(model.id, "cancelled", answer.usage, true);
    } else if (!ex.stream_error.empty()) {
      why = "error in the stream: " + ex.stream_error;
    } else if (rc != CURLE_OK && status == 200) {
      why = fmt::format("stream cut before [DONE] ({})", curl_easy_strerror(rc));
      retryable = true;
    } else if (rc != CURLE_OK) {
      why = curl_easy_strerror(rc);
      retryable = true;
    } else if (status != 200) {
      why = fmt::format("HTTP {}: {}", status, server_message(ex.error_body));
      retryable = status == 408 || status == 429 || status >= 500;
    } else if (!ex.done) {
      why = "stream ended before [DONE]";
      retryable = true;
    } else {
      finish_usage(ex);
      return answer;
    }
    // Pieces already went to the voter: another try would be another answer.
    if (!retryable || answer.pieces > 0 || attempt >= options.max_retries ||
        std::chrono::steady_clock::now() >= deadline) {
      finish_usage(ex);
      if (answer.usage.counted && answer.pieces == 0) answer.usage = {0, 0, true};  // no sign that it cost anything
      throw StreamFailure(model.id, "backend did not answer: " + why, answer.usage, false);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(options.backoff_s * 1000 * (1 << attempt))));
  }
}

}  // namespace kaival::arena
