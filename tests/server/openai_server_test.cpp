// The OpenAI-compatible server, run in-process on 127.0.0.1 (ephemeral port)
// over the base-a fixture and queried with httplib::Client. Reference values
// come from the float64 torch reference (reference_logits.json) or from the
// engine API with an independent log-softmax written here.
#include <gtest/gtest.h>

#include <httplib.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/hash.h"
#include "engine/generate.h"
#include "tokenizer/tokenizer.h"
#include "server/openai_server.h"

namespace kaival::server {
namespace {

using json = nlohmann::json;
const std::string kModels = std::string(KAIVAL_TESTDATA) + "/models/";

json reference() {
  std::ifstream in(kModels + "base-a/reference_logits.json");
  return json::parse(in);
}

// log-softmax in long double, independent of the engine's helper.
std::vector<double> ref_log_softmax(const float* row, size_t n) {
  long double mx = row[0], sum = 0;
  for (size_t i = 0; i < n; ++i) mx = std::max<long double>(mx, row[i]);
  for (size_t i = 0; i < n; ++i) sum += std::exp(static_cast<long double>(row[i]) - mx);
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<double>(row[i] - mx - std::log(sum));
  return out;
}

class ServerTest : public testing::Test {
 protected:
  static void SetUpTestSuite() { served_ = ServedModel::open(kModels + "base-a"); }
  static void TearDownTestSuite() { served_.reset(); }

  void SetUp() override { start({}); }
  void TearDown() override { server_.reset(); }

  void start(ServerOptions o) {
    server_.reset();
    o.host = "127.0.0.1";
    o.port = 0;
    server_ = std::make_unique<OpenAIServer>(served_, o);
    port_ = server_->start();
    ASSERT_GT(port_, 0);
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30);
    return c;
  }
  // POST and parse; status returned through `status`.
  json post(const std::string& path, const std::string& body, int* status = nullptr) const {
    auto c = client();
    auto r = c.Post(path.c_str(), body, "application/json");
    EXPECT_TRUE(r) << "no response from " << path;
    if (!r) return {};
    if (status) *status = r->status;
    return json::parse(r->body);
  }
  json post_ok(const std::string& path, const json& body) const {
    int status = 0;
    auto j = post(path, body.dump(), &status);
    EXPECT_EQ(status, 200) << j.dump();
    return j;
  }
  // Expects an OpenAI-style error with this status (and param, if given).
  void expect_error(const std::string& path, const std::string& body, int status, const std::string& param = "",
                    const std::string& code = "") const {
    int got = 0;
    const auto j = post(path, body, &got);
    EXPECT_EQ(got, status) << body << " -> " << j.dump();
    ASSERT_TRUE(j.contains("error")) << j.dump();
    const auto& e = j["error"];
    for (const char* k : {"message", "type", "param", "code"}) EXPECT_TRUE(e.contains(k)) << k << " in " << j.dump();
    EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty());
    if (!param.empty()) {
      EXPECT_EQ(e["param"], param) << j.dump();
    }
    if (!code.empty()) {
      EXPECT_EQ(e["code"], code) << j.dump();
    }
  }

  static inline std::shared_ptr<const ServedModel> served_;
  std::unique_ptr<OpenAIServer> server_;
  int port_ = 0;
};

// Parses an SSE body into its data payloads ("[DONE]" kept as a string).
std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < body.size()) {
    const size_t end = body.find("\n\n", at);
    if (end == std::string::npos) {
      ADD_FAILURE() << "unterminated SSE event: " << body.substr(at);
      break;
    }
    const std::string ev = body.substr(at, end - at);
    EXPECT_EQ(ev.rfind("data: ", 0), 0u) << ev;
    out.push_back(ev.substr(6));
    at = end + 2;
  }
  return out;
}

TEST_F(ServerTest, ModelsHealthAndMetricsEndpoints) {
  auto c = client();
  auto r = c.Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["status"], "ok");
  r = c.Get("/v1/models");
  ASSERT_TRUE(r);
  const auto models = json::parse(r->body);
  EXPECT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 1u);
  EXPECT_EQ(models["data"][0]["id"], "base-a");
  EXPECT_EQ(models["data"][0]["object"], "model");
  // The shipped chat template's hash, computed here from tokenizer_config.json.
  std::ifstream cfg(kModels + "base-a/tokenizer_config.json");
  const std::string tmpl = json::parse(cfg)["chat_template"];
  EXPECT_EQ(models["data"][0]["chat_template_sha256"], kaival::sha256_hex(tmpl));

  const auto done = post_ok("/v1/completions", {{"prompt", "Alice went"}, {"max_tokens", 3}, {"seed", 1}});
  int status = 0;
  post("/v1/completions", "{", &status);
  EXPECT_EQ(status, 400);
  r = c.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  const std::string& m = r->body;
  EXPECT_NE(m.find("kaival_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("kaival_requests_total{endpoint=\"/v1/completions\",status=\"400\"} 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("kaival_prompt_tokens_total " + std::to_string(done["usage"]["prompt_tokens"].get<int>()) + "\n"),
            std::string::npos);
  EXPECT_NE(m.find("kaival_generation_tokens_total " +
                   std::to_string(done["usage"]["completion_tokens"].get<int>()) + "\n"),
            std::string::npos);
  EXPECT_NE(m.find("kaival_request_duration_seconds_bucket{endpoint=\"/v1/completions\",le=\"+Inf\"} 1\n"),
            std::string::npos) << m;
  EXPECT_NE(m.find("# TYPE kaival_time_to_first_token_seconds histogram"), std::string::npos);
  EXPECT_NE(m.find("kaival_time_to_first_token_seconds_count 1\n"), std::string::npos) << m;
}

TEST_F(ServerTest, GreedyCompletionOfTokenPromptMatchesTorchReference) {
  const auto ref = reference();
  const auto& tok = *served_->tokenizer;
  for (const auto& seq : ref["sequences"]) {
    const auto expect = seq["greedy_continuation"].get<std::vector<int32_t>>();
    const auto j = post_ok("/v1/completions", {{"model", "base-a"},
                                               {"prompt", seq["token_ids"]},
                                               {"max_tokens", expect.size()},
                                               {"temperature", 0},
                                               {"ignore_eos", true}});
    EXPECT_EQ(j["object"], "text_completion");
    ASSERT_EQ(j["choices"].size(), 1u);
    EXPECT_EQ(j["choices"][0]["text"], tok.decode(expect, true));
    EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(j["usage"]["prompt_tokens"], seq["token_ids"].size());
    EXPECT_EQ(j["usage"]["completion_tokens"], expect.size());
    EXPECT_EQ(j["usage"]["total_tokens"], seq["token_ids"].size() + expect.size());
  }
  // A list of prompts gives one choice each, in order.
  const auto& s0 = ref["sequences"][0];
  const auto& s1 = ref["sequences"][1];
  const auto j = post_ok("/v1/completions", {{"prompt", {s0["token_ids"], s1["token_ids"]}},
                                             {"max_tokens", 4}, {"temperature", 0}, {"ignore_eos", true}});
  ASSERT_EQ(j["choices"].size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const auto g = ref["sequences"][i]["greedy_continuation"].get<std::vector<int32_t>>();
    EXPECT_EQ(j["choices"][i]["index"], i);
    EXPECT_EQ(j["choices"][i]["text"], tok.decode(std::vector<int32_t>(g.begin(), g.begin() + 4), true));
  }
}

TEST_F(ServerTest, EchoLogprobsAreLogSoftmaxOfTheModelLogits) {
  const auto ref = reference();
  const auto& seq = ref["sequences"][2];
  const auto ids = seq["token_ids"].get<std::vector<int32_t>>();
  const int64_t V = served_->model.config().vocab;
  const auto logits = served_->model.forward(ids);  // [n, V] through the engine API
  constexpr int kTop = 3;

  const auto j = post_ok("/v1/completions",
                         {{"prompt", ids}, {"max_tokens", 0}, {"echo", true}, {"logprobs", kTop}, {"temperature", 0}});
  const auto& c = j["choices"][0];
  EXPECT_EQ(c["text"], served_->tokenizer->decode(ids, true));
  const auto& lp = c["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), ids.size());
  ASSERT_EQ(lp["token_logprobs"].size(), ids.size());
  ASSERT_EQ(lp["top_logprobs"].size(), ids.size());
  ASSERT_EQ(lp["text_offset"].size(), ids.size());
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  EXPECT_EQ(lp["text_offset"][0], 0);
  double worst = 0;
  for (size_t i = 1; i < ids.size(); ++i) {
    const auto row = ref_log_softmax(logits.data() + (i - 1) * V, static_cast<size_t>(V));
    worst = std::max(worst, std::abs(lp["token_logprobs"][i].get<double>() - row[static_cast<size_t>(ids[i])]));
    // The top alternatives are the kTop largest log-probabilities.
    std::vector<double> sorted = row;
    std::sort(sorted.rbegin(), sorted.rend());
    const auto& top = lp["top_logprobs"][i];
    ASSERT_TRUE(top.is_object());
    ASSERT_LE(top.size(), static_cast<size_t>(kTop));
    for (const auto& [text, v] : top.items()) EXPECT_GE(v.get<double>(), sorted[kTop - 1] - 1e-5) << text;
    EXPECT_NEAR(std::max_element(top.begin(), top.end(), [](auto& a, auto& b) { return a < b; })->get<double>(),
                sorted[0], 1e-5);
    EXPECT_GT(lp["text_offset"][i].get<int64_t>(), lp["text_offset"][i - 1].get<int64_t>());
  }
  // Same float32 logits, log-softmax in float vs long double: rounding only.
  EXPECT_LT(worst, 1e-5);

  // The first generated token's log-probability against the torch float64 logits.
  const auto torch_last = seq["last_logits"].get<std::vector<float>>();
  const auto torch_lp = ref_log_softmax(torch_last.data(), torch_last.size());
  const auto g = post_ok("/v1/completions", {{"prompt", ids}, {"max_tokens", 1}, {"logprobs", 1}, {"temperature", 0}});
  const auto& glp = g["choices"][0]["logprobs"];
  ASSERT_EQ(glp["token_logprobs"].size(), 1u);
  const int32_t greedy = seq["greedy_continuation"][0].get<int32_t>();
  EXPECT_EQ(glp["tokens"][0], served_->tokenizer->decode(std::vector<int32_t>{greedy}, false));
  EXPECT_NEAR(glp["token_logprobs"][0].get<double>(), torch_lp[static_cast<size_t>(greedy)], 1e-4);
}

TEST_F(ServerTest, StreamedCompletionEqualsTheNonStreamedOne) {
  const json req = {{"prompt", "The quick fox"}, {"max_tokens", 12}, {"temperature", 0.9}, {"seed", 42},
                    {"ignore_eos", true}};
  const auto full = post_ok("/v1/completions", req);
  json sreq = req;
  sreq["stream"] = true;
  auto c = client();
  auto r = c.Post("/v1/completions", sreq.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  const auto events = sse_events(r->body);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  std::string finish;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const auto e = json::parse(events[i]);
    EXPECT_EQ(e["object"], "text_completion");
    const auto& ch = e["choices"][0];
    text += ch["text"].get<std::string>();
    if (!ch["finish_reason"].is_null()) {
      EXPECT_EQ(i + 2, events.size()) << "finish_reason before the last chunk";
      finish = ch["finish_reason"];
    }
  }
  EXPECT_EQ(text, full["choices"][0]["text"]);
  EXPECT_EQ(finish, "length");
}

TEST_F(ServerTest, StopStringsAndSeedsBehave) {
  const json base = {{"prompt", "The quick fox"}, {"max_tokens", 16}, {"temperature", 0}, {"ignore_eos", true}};
  const std::string free_text = post_ok("/v1/completions", base)["choices"][0]["text"];
  ASSERT_GE(free_text.size(), 6u);
  json req = base;
  const std::string stop = free_text.substr(free_text.size() / 2, 2);
  req["stop"] = {stop, "zzzz-never"};
  const auto j = post_ok("/v1/completions", req);
  EXPECT_EQ(j["choices"][0]["text"], free_text.substr(0, free_text.find(stop)));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");

  json sampled = {{"prompt", "The quick fox"}, {"max_tokens", 16}, {"temperature", 1.3}, {"top_k", 40},
                  {"top_p", 0.95}, {"min_p", 0.01}, {"seed", 7}, {"ignore_eos", true}};
  const auto a = post_ok("/v1/completions", sampled), b = post_ok("/v1/completions", sampled);
  EXPECT_EQ(a["choices"][0]["text"], b["choices"][0]["text"]);
  sampled["seed"] = 8;
  EXPECT_NE(post_ok("/v1/completions", sampled)["choices"][0]["text"], a["choices"][0]["text"]);
}

TEST_F(ServerTest, InvalidRequestsGetOpenAIErrors) {
  const std::string C = "/v1/completions";
  expect_error(C, "{not json", 400, "", "invalid_json");
  expect_error(C, "[1, 2]", 400, "", "invalid_json");
  expect_error(C, R"({"max_tokens": 3})", 400, "prompt");
  expect_error(C, R"({"prompt": 5})", 400, "prompt");
  expect_error(C, R"({"prompt": "hi", "max_tokens": "ten"})", 400, "max_tokens");
  expect_error(C, R"({"prompt": "hi", "max_tokens": -1})", 400, "max_tokens");
  expect_error(C, R"({"prompt": "hi", "temperature": "hot"})", 400, "temperature");
  expect_error(C, R"({"prompt": "hi", "top_p": 0})", 400, "top_p");
  expect_error(C, R"({"prompt": "hi", "stop": [1]})", 400, "stop");
  expect_error(C, R"({"prompt": "hi", "n": 2})", 400, "n");
  expect_error(C, R"({"prompt": "hi", "logprobs": 1000})", 400, "logprobs");
  expect_error(C, R"({"prompt": "hi", "stream": "yes"})", 400, "stream");
  expect_error(C, R"({"prompt": "hi", "seed": 1.5})", 400, "seed");
  expect_error(C, R"({"prompt": [1, 99999]})", 400, "prompt");
  expect_error(C, R"({"prompt": [1, -3]})", 400, "prompt");
  expect_error(C, R"({"prompt": []})", 400, "prompt");
  expect_error(C, R"({"prompt": "hi", "model": "gpt-4"})", 404, "model", "model_not_found");
  expect_error(C, R"({"prompt": "hi", "model": 3})", 400, "model");
  // Longer than the context (the fixture's max_position_embeddings).
  const int64_t ctx = server_->context();
  const json too_long = {{"prompt", std::vector<int32_t>(static_cast<size_t>(ctx + 1), 1)}, {"max_tokens", 0}};
  expect_error(C, too_long.dump(), 400, "prompt", "context_length_exceeded");
  const json full = {{"prompt", std::vector<int32_t>(static_cast<size_t>(ctx), 1)}, {"max_tokens", 1}};
  expect_error(C, full.dump(), 400, "prompt", "context_length_exceeded");
  // Exactly the context with nothing to generate is fine (log-likelihood scoring).
  const json fits = {{"prompt", std::vector<int32_t>(static_cast<size_t>(ctx), 1)}, {"max_tokens", 0},
                     {"echo", true}, {"logprobs", 0}};
  int status = 0;
  const auto j = post(C, fits.dump(), &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(j["choices"][0]["logprobs"]["token_logprobs"].size(), static_cast<size_t>(ctx));
  // Generation stops at the context.
  const json near = {{"prompt", std::vector<int32_t>(static_cast<size_t>(ctx - 2), 1)}, {"max_tokens", 50},
                     {"ignore_eos", true}, {"seed", 1}};
  const auto n = post_ok(C, near);
  EXPECT_EQ(n["usage"]["completion_tokens"], 2);
  EXPECT_EQ(n["choices"][0]["finish_reason"], "length");

  const std::string CH = "/v1/chat/completions";
  expect_error(CH, R"({"messages": "hi"})", 400, "messages");
  expect_error(CH, R"({"messages": []})", 400, "messages");
  expect_error(CH, R"({"messages": [{"content": "x"}]})", 400, "messages");
  expect_error(CH, R"({"messages": [{"role": "user", "content": 4}]})", 400, "messages");
  expect_error(CH, R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", 400, "top_logprobs");

  // Unknown endpoints and methods also answer in the OpenAI format.
  auto c = client();
  auto r = c.Get("/v1/nothing");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_TRUE(json::parse(r->body).contains("error"));
  // The server is still up and answers normally.
  EXPECT_EQ(post_ok(C, {{"prompt", "hi"}, {"max_tokens", 1}})["choices"].size(), 1u);
}

TEST_F(ServerTest, BodySizeIsLimited) {
  ServerOptions o;
  o.max_body_bytes = 1024;
  start(o);
  const json big = {{"prompt", std::string(4096, 'a')}, {"max_tokens", 1}};
  auto c = client();
  auto r = c.Post("/v1/completions", big.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "payload_too_large");
  EXPECT_EQ(post_ok("/v1/completions", {{"prompt", "hi"}, {"max_tokens", 1}})["choices"].size(), 1u);
}

TEST_F(ServerTest, ConcurrentRequestsMatchSequentialOnes) {
  ServerOptions o;
  o.max_running = 3;
  o.max_waiting = 16;
  start(o);
  constexpr int kRequests = 8;
  auto request = [](int i) {
    return json{{"prompt", i % 2 ? "Alice went to the" : "The quick fox"},
                {"max_tokens", 12},
                {"temperature", 1.0},
                {"top_k", 50},
                {"seed", 100 + i},
                {"ignore_eos", true},
                {"stream", i % 3 == 0}};
  };
  auto text_of = [](const std::string& body, bool stream) {
    if (!stream) return json::parse(body)["choices"][0]["text"].get<std::string>();
    std::string t;
    for (const auto& e : sse_events(body))
      if (e != "[DONE]") t += json::parse(e)["choices"][0]["text"].get<std::string>();
    return t;
  };
  std::vector<std::string> sequential(kRequests), concurrent(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    auto c = client();
    auto r = c.Post("/v1/completions", request(i).dump(), "application/json");
    ASSERT_TRUE(r);
    sequential[i] = text_of(r->body, request(i)["stream"]);
  }
  std::vector<std::thread> threads;
  std::vector<int> status(kRequests, 0);
  for (int i = 0; i < kRequests; ++i)
    threads.emplace_back([&, i] {
      auto c = client();
      auto r = c.Post("/v1/completions", request(i).dump(), "application/json");
      if (!r) return;
      status[i] = r->status;
      concurrent[i] = text_of(r->body, request(i)["stream"]);
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_EQ(status[i], 200) << i;
    EXPECT_EQ(concurrent[i], sequential[i]) << i;
    EXPECT_FALSE(sequential[i].empty());
  }
  EXPECT_NE(sequential[0], sequential[2]);  // different seeds, different samples
  // The concurrent ones shared decode steps (continuous batching, at most 3 running).
  auto c = client();
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  const auto at = m->body.find("\nkaival_decode_batch_largest ");
  ASSERT_NE(at, std::string::npos) << m->body;
  const int largest = std::stoi(m->body.substr(at + 29));
  EXPECT_GE(largest, 2) << m->body;
  EXPECT_LE(largest, 3);
  // Their prompts went through the scheduler's batched prefill too.
  const auto pre = m->body.find("\nkaival_prefill_batch_tokens_total ");
  ASSERT_NE(pre, std::string::npos) << m->body;
  EXPECT_GE(std::stoll(m->body.substr(pre + 35)), 2 * kRequests) << m->body;
}

TEST_F(ServerTest, ChatCompletionRendersTheTemplateAndStreams) {
  // The reference rendering of the fixture's ChatML template (python jinja2).
  std::ifstream in(std::string(KAIVAL_TESTDATA) + "/engine/templates/renderings.json");
  const auto ref = json::parse(in);
  std::string rendered;
  for (const auto& c : ref["cases"])
    if (c["template"] == "models/tokenizer-a" && c["conversation"] == "system_multi_turn" &&
        c["add_generation_prompt"] == true)
      rendered = c["expected"];
  ASSERT_FALSE(rendered.empty());
  const auto& messages = ref["conversations"]["system_multi_turn"];
  const auto& tok = *served_->tokenizer;
  const auto ids = tok.encode(rendered, false, true);
  engine::GenerateOptions o;
  o.max_tokens = 16;
  o.stop_tokens = {*tok.token_id("<|im_end|>")};
  const auto expect = engine::generate(served_->model, tok, ids, o);

  const json req = {{"model", "base-a"}, {"messages", messages}, {"max_tokens", 16}, {"temperature", 0},
                    {"logprobs", true}, {"top_logprobs", 2}};
  const auto j = post_ok("/v1/chat/completions", req);
  EXPECT_EQ(j["object"], "chat.completion");
  const auto& ch = j["choices"][0];
  EXPECT_EQ(ch["message"]["role"], "assistant");
  EXPECT_EQ(ch["message"]["content"], expect.text);
  EXPECT_EQ(ch["finish_reason"], expect.finish == engine::FinishReason::Length ? "length" : "stop");
  EXPECT_EQ(j["usage"]["prompt_tokens"], ids.size());
  EXPECT_EQ(j["usage"]["completion_tokens"], expect.tokens.size());
  const auto& content = ch["logprobs"]["content"];
  ASSERT_EQ(content.size(), expect.tokens.size());
  for (size_t i = 0; i < content.size(); ++i) {
    const std::string piece = tok.decode(std::vector<int32_t>{expect.tokens[i]}, false);
    EXPECT_EQ(content[i]["bytes"].size(), piece.size());
    ASSERT_EQ(content[i]["top_logprobs"].size(), 2u);
    // Greedy: the chosen token is the most likely one.
    EXPECT_EQ(content[i]["logprob"], content[i]["top_logprobs"][0]["logprob"]);
    EXPECT_GE(content[i]["top_logprobs"][0]["logprob"].get<double>(),
              content[i]["top_logprobs"][1]["logprob"].get<double>());
    EXPECT_LE(content[i]["logprob"].get<double>(), 0.0);
  }

  json sreq = req;
  sreq["stream"] = true;
  sreq["stream_options"] = {{"include_usage", true}};
  auto c = client();
  auto r = c.Post("/v1/chat/completions", sreq.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  const auto events = sse_events(r->body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  const auto first = json::parse(events[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  size_t logprob_entries = 0;
  json usage, finish;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const auto e = json::parse(events[i]);
    if (e["choices"].empty()) {
      usage = e["usage"];
      continue;
    }
    const auto& choice = e["choices"][0];
    if (choice["delta"].contains("content")) text += choice["delta"]["content"].get<std::string>();
    if (choice["logprobs"].is_object()) logprob_entries += choice["logprobs"]["content"].size();
    if (!choice["finish_reason"].is_null()) finish = choice["finish_reason"];
  }
  EXPECT_EQ(text, expect.text);
  EXPECT_EQ(finish, ch["finish_reason"]);
  EXPECT_EQ(logprob_entries, expect.tokens.size());
  EXPECT_EQ(usage, j["usage"]);
}

TEST(ServerLifecycleTest, StopIsIdempotentAndFreesThePort) {
  auto served = ServedModel::open(kModels + "base-a");
  EXPECT_EQ(served->id, "base-a");
  OpenAIServer a(served);
  const int port = a.start();
  a.stop();
  a.stop();
  ServerOptions o;
  o.port = port;
  OpenAIServer b(served, o);
  EXPECT_EQ(b.start(), port);
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

}  // namespace
}  // namespace kaival::server
