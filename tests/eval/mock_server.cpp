#include "mock_server.h"

#include <algorithm>
#include <chrono>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace kaival::eval::testing {

using nlohmann::json;

struct MockServer::Impl {
  httplib::Server srv;
  std::thread thread;
  int port = 0;
  mutable std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  MockFaults faults;
  std::vector<std::pair<std::string, std::string>> answers;
  std::vector<std::string> favoured;
  std::vector<std::string> served;

  // Sleeps unless the server is stopping.
  void nap(int ms) {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait_for(lk, std::chrono::milliseconds(ms), [&] { return stopping; });
  }
};

namespace {

size_t cp_len(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

std::vector<std::pair<std::string, size_t>> MockServer::tokenize(const std::string& text) {
  std::vector<std::pair<std::string, size_t>> out;
  size_t i = 0, cp = 0;
  while (i < text.size()) {
    size_t j = i;
    while (j < text.size() && text[j] == ' ') ++j;
    while (j < text.size() && text[j] != ' ') ++j;
    std::string tok = text.substr(i, j - i);
    out.emplace_back(tok, cp);
    cp += cp_len(tok);
    i = j;
  }
  return out;
}

double MockServer::token_logprob(const std::string& token) const {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    for (const auto& f : impl_->favoured)
      if (token.find(f) != std::string::npos) return -0.05;
  }
  return -(1.0 + static_cast<double>(fnv1a(token) % 400) / 100.0);
}

MockServer::MockServer(MockFaults faults) : impl_(std::make_unique<Impl>()) {
  impl_->faults = std::move(faults);
  auto& srv = impl_->srv;
  if (!impl_->faults.keep_alive) srv.set_keep_alive_max_count(1);
  // httplib writes headers and body separately: with Nagle on, the body waits for the client's
  // delayed ACK (~40 ms), which capped the mock at ~150 req/s at concurrency 4.
  srv.set_tcp_nodelay(true);
  srv.Get("/v1/models", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"object":"list","data":[{"id":"mock-model","object":"model","owned_by":"kaival-tests"}]})",
                    "application/json");
  });
  auto handler = [this](const httplib::Request& req, httplib::Response& res) {
    int64_t k = posts_.fetch_add(1);
    MockFaults f;
    {
      std::lock_guard<std::mutex> lk(impl_->mu);
      f = impl_->faults;
    }
    if (f.latency_ms > 0) impl_->nap(f.latency_ms);
    int64_t edge = f.rate_limit_first;
    if (k < edge) {
      if (!f.retry_after.empty()) res.set_header("Retry-After", f.retry_after);
      res.status = 429;
      res.set_content(R"({"error":{"message":"rate limited","type":"rate_limit"}})", "application/json");
      return;
    }
    if (k < (edge += f.error500_first)) {
      res.status = 500;
      res.set_content(R"({"error":{"message":"internal error"}})", "application/json");
      return;
    }
    if (k < (edge += f.hang_first)) impl_->nap(f.hang_ms);
    bool malformed = k >= edge && k < edge + f.malformed_first;
    edge += f.malformed_first;
    bool cut = k >= edge && k < edge + f.cut_stream_first;

    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      res.status = 400;
      res.set_content(R"({"error":{"message":"bad json"}})", "application/json");
      return;
    }
    bool chat = req.path == "/v1/chat/completions";
    std::string prompt;
    if (chat) {
      for (const auto& m : body.value("messages", json::array())) prompt += m.value("content", "");
    } else {
      prompt = body.value("prompt", "");
    }
    std::string answer = "I do not know.";
    {
      std::lock_guard<std::mutex> lk(impl_->mu);
      for (const auto& [key, ans] : impl_->answers)
        if (prompt.find(key) != std::string::npos) {
          answer = ans;
          break;
        }
    }
    int max_tokens = body.value("max_tokens", 16);
    bool echo = !chat && body.value("echo", false);
    if (echo) answer = max_tokens > 0 ? " x" : "";
    if (malformed) {
      res.set_content("{\"choices\": [ {\"text\": ", "application/json");
      return;
    }
    auto record = [this, prompt] {
      std::lock_guard<std::mutex> lk(impl_->mu);
      impl_->served.push_back(prompt);
    };
    if (body.value("stream", false)) {
      // Chunks of about three characters each.
      std::vector<std::string> pieces;
      std::string cur;
      size_t cps = 0;
      for (unsigned char c : answer) {
        if ((c & 0xC0) != 0x80 && cps == 3) {
          pieces.push_back(cur);
          cur.clear();
          cps = 0;
        }
        cur += static_cast<char>(c);
        if ((c & 0xC0) != 0x80) ++cps;
      }
      if (!cur.empty()) pieces.push_back(cur);
      if (f.stream_max_tokens) pieces.assign(static_cast<size_t>(std::max(0, max_tokens)), " tok");
      bool usage = f.stream_max_tokens && body.contains("stream_options") && body["stream_options"].is_object() &&
                   body["stream_options"].value("include_usage", false);
      size_t prompt_tokens = tokenize(prompt).size();
      auto sent = std::make_shared<size_t>(0);
      res.set_chunked_content_provider(
          "text/event-stream",
          [this, pieces, sent, cut, chat, record, usage, prompt_tokens, delay = f.token_delay_ms](
              size_t, httplib::DataSink& sink) {
            if (cut && *sent >= pieces.size() / 2) return false;  // drop the connection mid-stream
            if (*sent > 0 && *sent < pieces.size() && delay > 0) impl_->nap(delay);
            if (*sent < pieces.size()) {
              json chunk = chat ? json{{"choices", {{{"index", 0}, {"delta", {{"content", pieces[*sent]}}}}}}}
                                : json{{"choices", {{{"index", 0}, {"text", pieces[*sent]}}}}};
              std::string s = "data: " + chunk.dump() + "\n\n";
              sink.write(s.data(), s.size());
              ++*sent;
              return true;
            }
            if (usage) {
              json u = {{"choices", json::array()},
                        {"usage", {{"prompt_tokens", prompt_tokens}, {"completion_tokens", pieces.size()},
                                   {"total_tokens", prompt_tokens + pieces.size()}}}};
              std::string s = "data: " + u.dump() + "\n\n";
              sink.write(s.data(), s.size());
            }
            // Recorded before [DONE] goes out: a client that sends its next request
            // on [DONE] must find this one already counted, in order.
            completed_.fetch_add(1);
            record();
            std::string done = "data: [DONE]\n\n";
            sink.write(done.data(), done.size());
            sink.done();
            return true;
          });
      return;
    }
    json choice = {{"index", 0}, {"finish_reason", "stop"}};
    if (chat) {
      choice["message"] = {{"role", "assistant"}, {"content", answer}};
    } else {
      choice["text"] = echo ? prompt + answer : answer;
      if (echo && body.contains("logprobs") && !f.no_logprobs) {
        json toks = json::array(), lps = json::array(), offs = json::array();
        auto all = tokenize(prompt + answer);
        for (size_t i = 0; i < all.size(); ++i) {
          toks.push_back(all[i].first);
          offs.push_back(all[i].second);
          if (i == 0) lps.push_back(nullptr);
          else lps.push_back(token_logprob(all[i].first));
        }
        choice["logprobs"] = {{"tokens", toks}, {"token_logprobs", lps}, {"text_offset", offs}};
      } else {
        choice["logprobs"] = nullptr;
      }
    }
    json out = {{"id", "cmpl-mock"}, {"object", chat ? "chat.completion" : "text_completion"}, {"model", "mock-model"},
                {"choices", json::array({choice})},
                {"usage", {{"prompt_tokens", tokenize(prompt).size()}, {"completion_tokens", tokenize(answer).size()}}}};
    res.set_content(out.dump(), "application/json");
    completed_.fetch_add(1);
    record();
  };
  srv.Post("/v1/completions", handler);
  srv.Post("/v1/chat/completions", handler);
}

MockServer::~MockServer() { stop(); }

int MockServer::start() {
  impl_->port = impl_->srv.bind_to_any_port("127.0.0.1");
  if (impl_->port <= 0) throw std::runtime_error("mock server: cannot bind 127.0.0.1");
  impl_->thread = std::thread([this] { impl_->srv.listen_after_bind(); });
  while (!impl_->srv.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return impl_->port;
}

void MockServer::stop() {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  impl_->srv.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::string MockServer::url() const { return "http://127.0.0.1:" + std::to_string(impl_->port); }

void MockServer::set_faults(MockFaults f) {
  std::lock_guard<std::mutex> lk(impl_->mu);
  impl_->faults = std::move(f);
}

void MockServer::add_answer(std::string key, std::string answer) {
  std::lock_guard<std::mutex> lk(impl_->mu);
  impl_->answers.emplace_back(std::move(key), std::move(answer));
}

void MockServer::favour(std::string s) {
  std::lock_guard<std::mutex> lk(impl_->mu);
  impl_->favoured.push_back(std::move(s));
}

std::vector<std::string> MockServer::served_prompts() const {
  std::lock_guard<std::mutex> lk(impl_->mu);
  return impl_->served;
}

}  // namespace kaival::eval::testing
