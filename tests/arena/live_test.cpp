// Campaign models with OpenAI-compatible backends, against the eval tests' mock
// server on 127.0.0.1: backend blocks in campaign files, `kaival arena answer`
// (fills, resumes, fails clearly on a dead backend), and live prompts in the
// web service end to end (escaped answers, vote, leaderboard, identity leaks,
// a dead backend stores nothing, per-account cap).
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "../support/process.h"
#include "../eval/mock_server.h"
#include "arena/backend.h"
#include "arena/store.h"
#include "core/error.h"
#include "server/arena_server.h"
#include "store/sql.h"

using namespace kaival;
namespace fs = std::filesystem;
using eval::testing::MockServer;
using nlohmann::json;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("kaival-arena-live-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

// A URL on 127.0.0.1 where nothing listens: a mock's port after it stopped.
std::string dead_url() {
  MockServer m;
  m.start();
  std::string url = m.url();
  m.stop();
  return url;
}

// stdout and stderr
testing_support::CommandResult run(const std::string& args) {
  return testing_support::run_command(std::string(KAIVAL_BINARY) + " " + args + " 2>&1");
}

std::string prompt_set_campaign(const std::string& url_a, const std::string& url_b) {
  return fmt::format(R"(kind: arena
name: filled
models:
  - id: team-a
    backend: {{base_url: "{}", model: alpha-served, system: "You are brief.", temperature: 0.2, max_tokens: 64}}
  - id: team-b
    backend: {{base_url: "{}"}}
  - id: target-x
prompts:
  - id: p1
    text: "서울의 인구는?"
    answers:
      target-x: "약 1,000만 명."
  - id: p2
    text: "Explain recursion."
)",
                     url_a, url_b);
}

std::string live_campaign(const std::string& url_a, const std::string& url_b, int cap = 20, int timeout_s = 5) {
  return fmt::format(R"(kind: arena
name: live-arena
live_prompts: true
max_prompt_chars: 200
caps:
  live_prompts_per_account_per_hour: {}
models:
  - id: team-a
    organization: Alpha Labs
    aliases: [AlphaChat]
    backend: {{base_url: "{}", timeout_s: {}}}
  - id: team-b
    organization: Beta AI
    backend: {{base_url: "{}", timeout_s: {}}}
)",
                     cap, url_a, timeout_s, url_b, timeout_s);
}

}  // namespace

TEST(ArenaBackends, CampaignFilesValidateBackendBlocks) {
  auto c = arena::parse_campaign(prompt_set_campaign("http://127.0.0.1:1", "https://example.org/v1"), "c.yaml");
  ASSERT_EQ(c.arena.models.size(), 3u);
  ASSERT_TRUE(c.arena.models[0].backend);
  EXPECT_EQ(c.arena.models[0].backend->model, "alpha-served");
  EXPECT_EQ(c.arena.models[0].backend->max_tokens, 64);
  EXPECT_EQ(c.arena.models[1].backend->model, "team-b") << "the served name defaults to the model id";
  EXPECT_FALSE(c.arena.models[2].backend);
  EXPECT_TRUE(c.arena.prompts[1].answers.empty()) << "a prompt set may come without answers";
  EXPECT_FALSE(c.arena.live_prompts);

  auto error = [](const std::string& yaml) -> std::string {
    try {
      arena::parse_campaign(yaml, "bad.yaml");
    } catch (const FormatError& e) {
      return e.what();
    }
    return "(accepted)";
  };
  std::string base = "kind: arena\nname: x\nmodels:\n  - id: a\n    backend: {base_url: 'http://h:1'}\n  - id: b\n";
  EXPECT_EQ(error(base + "    backend: {base_url: 'http://h:2', api_key: sk-123}\nprompts: []\n"),
            "bad.yaml: models[1].backend.api_key: never put a key in a campaign file; name the environment variable "
            "that holds it in api_key_env");
  EXPECT_EQ(error(base + "    backend: {base_url: 'ftp://h'}\nprompts: []\n"),
            "bad.yaml: models[1].backend.base_url: 'ftp://h' is not an http:// or https:// URL");
  EXPECT_EQ(error(base + "    backend: {base_url: 'http://h:2', temperature: 7}\nprompts: []\n"),
            "bad.yaml: models[1].backend.temperature: 7 outside 0..2");
  EXPECT_EQ(error(base + "    backend: {base_url: 'http://h:2', api_key_env: 'MY-KEY'}\nprompts: []\n"),
            "bad.yaml: models[1].backend.api_key_env: 'MY-KEY' is not an environment variable name");
  EXPECT_EQ(error(base + "    backend: {base_url: 'http://h:2', temprature: 1}\nprompts: []\n").substr(0, 55),
            "bad.yaml: models[1].backend.temprature: unknown field (");
  EXPECT_EQ(error(base + "live_prompts: true\n"),
            "bad.yaml: live_prompts: needs at least two models with a backend (models[i].backend.base_url)");
  EXPECT_EQ(error(base + "    backend: {base_url: 'http://h:2'}\nlive_prompts: true\nmax_prompt_chars: 0\n"),
            "bad.yaml: max_prompt_chars: 0 outside 1..100000");
  auto live = arena::parse_campaign(base + "    backend: {base_url: 'http://h:2', api_key_env: KEY_B}\nlive_prompts: true\n",
                                    "ok.yaml");
  EXPECT_TRUE(live.arena.live_prompts) << "a live-only campaign needs no prompt set";
  EXPECT_EQ(live.arena.models[1].backend->api_key_env, "KEY_B");
}

TEST(ArenaBackends, AnswerCommandFillsMissingAnswersAndResumesAfterADeadBackend) {
  TempDir d;
  MockServer a, b;
  a.add_answer("", "Alpha: about 9.4 million.");
  b.add_answer("recursion", "Beta: a function calling itself.");
  b.add_answer("", "Beta: 940만 명.");
  a.start();
  b.start();
  const std::string in = (d.path / "c.yaml").string(), out = (d.path / "filled.yaml").string();

  // team-b's backend is down: team-a's answers are kept, the command fails naming what is missing.
  write(in, prompt_set_campaign(a.url(), dead_url()));
  auto r = run("arena answer " + in + " --out " + out + " --retries 0");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("2 of 4 answers failed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("team-b: backend did not answer"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rerun the same command"), std::string::npos) << r.out;
  auto partial = arena::load_campaign_file(out).arena;
  EXPECT_EQ(partial.prompts[0].answers.size(), 2u);  // target-x (given) + team-a
  EXPECT_EQ(partial.prompts[1].answers.at("team-a"), "Alpha: about 9.4 million.");
  EXPECT_EQ(a.completed(), 2);
  for (const auto& p : a.served_prompts()) EXPECT_EQ(p.rfind("You are brief.", 0), 0u) << "system prompt first: " << p;

  // The backend is back (at a new address): a rerun asks team-b only.
  write(in, prompt_set_campaign(a.url(), b.url()));
  r = run("arena answer " + in + " --out " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("kept 2 answers"), std::string::npos) << r.out;
  EXPECT_EQ(a.completed(), 2) << "answers already in --out are not asked again";
  EXPECT_EQ(b.completed(), 2);
  auto filled = arena::load_campaign_file(out).arena;
  ASSERT_EQ(filled.prompts.size(), 2u);
  EXPECT_EQ(filled.prompts[0].answers.at("target-x"), "약 1,000만 명.");
  EXPECT_EQ(filled.prompts[0].answers.at("team-a"), "Alpha: about 9.4 million.");
  EXPECT_EQ(filled.prompts[0].answers.at("team-b"), "Beta: 940만 명.");
  EXPECT_EQ(filled.prompts[1].answers.at("team-b"), "Beta: a function calling itself.");
  EXPECT_EQ(filled.prompts[1].answers.count("target-x"), 0u) << "no backend: left missing";
  ASSERT_TRUE(filled.models[0].backend) << "backend blocks survive the rewrite";
  EXPECT_EQ(filled.models[0].backend->system, "You are brief.");
  EXPECT_FALSE(fs::exists(out + ".tmp"));
}

TEST(ArenaBackends, AnswerCommandNamesAnUnsetKeyVariable) {
  TempDir d;
  MockServer a;
  a.start();
  std::string yaml = prompt_set_campaign(a.url(), a.url());
  yaml.replace(yaml.find("max_tokens: 64"), 14, "max_tokens: 64, api_key_env: KAIVAL_TEST_UNSET_KEY_VAR");
  write(d.path / "c.yaml", yaml);
  ::unsetenv("KAIVAL_TEST_UNSET_KEY_VAR");
  auto r = run("arena answer " + (d.path / "c.yaml").string() + " --out " + (d.path / "o.yaml").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("environment variable KAIVAL_TEST_UNSET_KEY_VAR (api_key_env) is not set"), std::string::npos)
      << r.out;
}

namespace {

// A live campaign served in process; two voters signed in through /api/login.
struct LiveFixture {
  TempDir d;
  std::unique_ptr<arena::ArenaStore> store;
  std::unique_ptr<server::ArenaServer> srv;
  int port = 0;

  LiveFixture(const std::string& url_a, const std::string& url_b, int cap = 20, int timeout_s = 5)
      : LiveFixture(live_campaign(url_a, url_b, cap, timeout_s)) {}
  explicit LiveFixture(const std::string& campaign_yaml) {
    arena::StoreOptions so;
    so.fast_password_hashing = true;
    store = arena::ArenaStore::open(db(), so);
    int64_t admin = store->create_account("admin", "admin password", arena::Role::Admin);
    store->create_account("voter", "voter password", arena::Role::Voter);
    store->create_account("voter2", "voter password", arena::Role::Voter);
    store->add_campaign(arena::parse_campaign(campaign_yaml, "live.yaml"), admin);
    server::ArenaServerOptions o;
    o.live_retries = 0;
    srv = std::make_unique<server::ArenaServer>(*store, o);
    port = srv->start();
  }
  ~LiveFixture() {
    srv->stop();
    srv.reset();
    store.reset();
  }
  std::string db() const { return (d.path / "arena.db").string(); }
  int64_t count(const std::string& table) {
    auto raw = store::SqlDb::open(db());
    auto s = raw.prepare("SELECT count(*) FROM " + table);
    s.step();
    return s.int64(0);
  }
};

struct Voter {
  httplib::Client cli;
  std::string csrf, cookie;
  Voter(int port, const std::string& name, const std::string& password = "voter password") : cli("127.0.0.1", port) {
    auto r = cli.Post("/api/login", json{{"name", name}, {"password", password}}.dump(), "application/json");
    EXPECT_TRUE(r && r->status == 200);
    if (!r || r->status != 200) return;
    csrf = json::parse(r->body)["csrf"];
    std::string set = r->get_header_value("Set-Cookie");
    cookie = set.substr(0, set.find(';'));
    cli.set_default_headers({{"Cookie", cookie}});
    cli.set_read_timeout(20, 0);
  }
  httplib::Result live(const std::string& prompt) {
    return cli.Post("/api/arena/live-arena/live", {{"X-CSRF-Token", csrf}}, json{{"prompt", prompt}}.dump(),
                    "application/json");
  }
};

std::string field(const std::string& html, const std::string& name) {
  std::smatch m;
  std::regex re("name=\"" + name + "\" value=\"([^\"]*)\"");
  return std::regex_search(html, m, re) ? m[1].str() : "";
}

}  // namespace

TEST(ArenaLive, PromptToTwoEscapedAnswersToVoteToLeaderboard) {
  MockServer a, b;
  a.add_answer("", "<script>alert(1)</script> A says hi & bye");
  b.add_answer("", "B answers <b>bold</b>");
  a.start();
  b.start();
  LiveFixture f(a.url(), b.url());
  Voter v(f.port, "voter");

  auto page = v.cli.Get("/arena/live-arena");
  ASSERT_TRUE(page);
  EXPECT_NE(page->body.find("action=\"/arena/live-arena/live\""), std::string::npos) << "the prompt form is shown";
  EXPECT_NE(page->body.find("maxlength=\"200\""), std::string::npos);

  auto r = v.cli.Post("/arena/live-arena/live",
                      httplib::Params{{"csrf", v.csrf}, {"prompt", "What is <i>recursion</i>?"}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->body.find("<script>alert(1)"), std::string::npos);
  EXPECT_EQ(r->body.find("<b>bold"), std::string::npos);
  EXPECT_EQ(r->body.find("<i>recursion"), std::string::npos);
  EXPECT_NE(r->body.find("&lt;script&gt;alert(1)&lt;/script&gt; A says hi &amp; bye"), std::string::npos);
  EXPECT_NE(r->body.find("B answers &lt;b&gt;bold&lt;/b&gt;"), std::string::npos);
  EXPECT_NE(r->body.find("What is &lt;i&gt;recursion&lt;/i&gt;?"), std::string::npos);
  EXPECT_EQ(a.completed(), 1);
  EXPECT_EQ(b.completed(), 1);
  ASSERT_EQ(a.served_prompts().size(), 1u);
  EXPECT_EQ(a.served_prompts()[0], "What is <i>recursion</i>?");

  std::string battle = field(r->body, "battle");
  ASSERT_EQ(battle.size(), 32u);
  // The prompt is this voter's: never served to another voter.
  Voter other(f.port, "voter2");
  auto other_page = other.cli.Get("/arena/live-arena");
  ASSERT_TRUE(other_page);
  EXPECT_EQ(other_page->body.find("recursion"), std::string::npos);
  EXPECT_EQ(field(other_page->body, "battle"), "") << "no pair served (the streamed pair's form is empty)";
  auto wrong = other.cli.Post("/arena/live-arena/vote",
                              httplib::Params{{"csrf", other.csrf}, {"battle", battle}, {"winner", "model_a"}});
  EXPECT_EQ(wrong->status, 403);

  auto vote = v.cli.Post("/arena/live-arena/vote", httplib::Params{{"csrf", v.csrf}, {"battle", battle}, {"winner", "model_a"}});
  ASSERT_TRUE(vote);
  EXPECT_EQ(vote->status, 303);
  EXPECT_EQ(f.store->vote_count(), 1);
  auto lb = v.cli.Get("/api/leaderboard/live-arena");
  ASSERT_TRUE(lb);
  json j = json::parse(lb->body);
  EXPECT_EQ(j["battles"], 1);
  int total = 0;
  for (const auto& m : j["models"]) total += m["battles"].get<int>();
  EXPECT_EQ(total, 2);

  // The JSON API: answers as sent by the backends.
  auto api = v.live("second prompt");
  ASSERT_TRUE(api);
  ASSERT_EQ(api->status, 200) << api->body;
  json b2 = json::parse(api->body);
  EXPECT_EQ(b2["prompt"], "second prompt");
  std::set<std::string> answers{b2["answer_a"], b2["answer_b"]};
  EXPECT_EQ(answers, (std::set<std::string>{"<script>alert(1)</script> A says hi & bye", "B answers <b>bold</b>"}));
  EXPECT_EQ(f.count("battles"), 2);

  // Too long (in code points, not bytes), empty, and not UTF-8: refused before any backend is asked.
  EXPECT_EQ(v.live(std::string(201, 'x'))->status, 400);
  std::string korean;
  for (int i = 0; i < 200; ++i) korean += "가";
  EXPECT_EQ(v.live(korean)->status, 200) << "200 code points are allowed";
  EXPECT_EQ(v.live("  \n ")->status, 400);
  EXPECT_EQ(a.completed(), 3);
}

TEST(ArenaLive, AnIdentityLeakInALiveAnswerIsFlaggedAndNotShown) {
  MockServer a, b;
  a.add_answer("", "I am AlphaChat, made by Alpha Labs.");
  b.add_answer("", "I am a language model.");
  a.start();
  b.start();
  LiveFixture f(a.url(), b.url());
  Voter v(f.port, "voter");
  auto r = v.live("Who made you?");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 422) << r->body;
  EXPECT_EQ(json::parse(r->body)["error"], "live_leak");
  EXPECT_EQ(r->body.find("AlphaChat"), std::string::npos);
  EXPECT_EQ(f.count("battles"), 0);
  auto raw = store::SqlDb::open(f.db());
  auto s = raw.prepare("SELECT model, identity_leak FROM answers ORDER BY model");
  std::vector<std::pair<std::string, int64_t>> rows;
  while (s.step()) rows.emplace_back(s.text(0), s.int64(1));
  EXPECT_EQ(rows, (std::vector<std::pair<std::string, int64_t>>{{"team-a", 1}, {"team-b", 0}}));
  auto audit = raw.prepare("SELECT count(*) FROM audit_log WHERE action='live.identity_leak'");
  audit.step();
  EXPECT_EQ(audit.int64(0), 1);
}

TEST(ArenaLive, ADeadBackendStoresNothingAndAttemptsCountAgainstTheCap) {
  MockServer a;
  a.add_answer("", "fine");
  a.start();
  LiveFixture f(a.url(), dead_url(), /*cap=*/2);
  Voter v(f.port, "voter");
  auto r = v.cli.Post("/arena/live-arena/live", httplib::Params{{"csrf", v.csrf}, {"prompt", "hello"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_NE(r->body.find("A model did not answer, so nothing was stored."), std::string::npos) << r->body;
  EXPECT_EQ(r->body.find("127.0.0.1"), std::string::npos) << "no backend address reaches the voter";
  EXPECT_NE(r->body.find(">hello</textarea>"), std::string::npos) << "the prompt is kept in the form";
  auto api = v.live("hello again");
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 502);
  EXPECT_EQ(json::parse(api->body)["error"], "live_failed");
  EXPECT_EQ(f.count("battles"), 0);
  EXPECT_EQ(f.count("prompts"), 0);
  EXPECT_EQ(f.count("answers"), 0);
  // Two attempts this hour reach the cap of 2: the next one asks no backend.
  int64_t asked = a.posts();
  auto capped = v.live("third");
  ASSERT_TRUE(capped);
  EXPECT_EQ(capped->status, 429);
  EXPECT_EQ(json::parse(capped->body)["error"], "live_cap");
  EXPECT_EQ(a.posts(), asked);
  EXPECT_EQ(f.store->live_attempts(f.store->account_by_name("voter")->id, std::chrono::hours(1)), 2);
}

TEST(ArenaLive, AHangingBackendTimesOutAndStoresNothing) {
  eval::testing::MockFaults hang;
  hang.hang_first = 100;
  hang.hang_ms = 10000;
  MockServer a, b(hang);
  a.add_answer("", "quick");
  a.start();
  b.start();
  LiveFixture f(a.url(), b.url(), 20, /*timeout_s=*/1);
  Voter v(f.port, "voter");
  auto start = std::chrono::steady_clock::now();
  auto r = v.live("hello");
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_LT(waited, 5.0) << "bounded by the backend's timeout_s, not by the hang";
  EXPECT_EQ(f.count("battles"), 0);
  EXPECT_EQ(f.count("prompts"), 0);
}

TEST(ArenaBackends, TheKeyComesFromTheNamedVariableAndIsNeverStored) {
  // A backend that answers only with the right bearer token.
  httplib::Server backend;
  std::atomic<int> authorized{0};
  backend.set_keep_alive_max_count(1);  // stop() need not wait for the client's idle connection
  backend.Post("/v1/chat/completions", [&](const httplib::Request& req, httplib::Response& res) {
    if (req.get_header_value("Authorization") != "Bearer sk-kaival-test-secret") {
      res.status = 401;
      res.set_content(R"({"error":{"message":"bad key"}})", "application/json");
      return;
    }
    ++authorized;
    json body = json::parse(req.body);
    res.set_content(json{{"choices", {{{"message", {{"role", "assistant"}, {"content", "served " + body["model"].get<std::string>()}}}}}}}.dump(),
                    "application/json");
  });
  int port = backend.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  struct Listener {
    httplib::Server& srv;
    std::thread thread;
    ~Listener() {  // also when an assertion returns early
      srv.stop();
      thread.join();
    }
  } listener{backend, std::thread([&] { backend.listen_after_bind(); })};
  while (!backend.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  TempDir d;
  std::string url = fmt::format("http://127.0.0.1:{}", port);
  std::string yaml = live_campaign(url, url);
  const std::string team_a_backend = "timeout_s: 5}";
  ASSERT_NE(yaml.find(team_a_backend), std::string::npos);
  yaml.replace(yaml.find(team_a_backend), team_a_backend.size(),
               "timeout_s: 5, api_key_env: KAIVAL_TEST_ARENA_KEY, model: served-a}");
  auto c = arena::parse_campaign(yaml, "live.yaml");
  ::setenv("KAIVAL_TEST_ARENA_KEY", "sk-kaival-test-secret", 1);
  arena::BackendPool pool({.concurrency = 1, .max_retries = 0});
  EXPECT_EQ(pool.ask(c.arena.models[0], "hi"), "served served-a");
  EXPECT_THROW(pool.ask(c.arena.models[1], "hi"), IoError) << "team-b names no key: the backend refuses it";
  EXPECT_EQ(authorized.load(), 1);
  {
    arena::StoreOptions so;
    so.fast_password_hashing = true;
    auto store = arena::ArenaStore::open((d.path / "a.db").string(), so);
    int64_t id = store->add_campaign(c, 0);
    auto live = store->live_campaign(id);
    ASSERT_EQ(live.models.size(), 2u);
    EXPECT_EQ(live.models[0].backend->api_key_env, "KAIVAL_TEST_ARENA_KEY");
    EXPECT_EQ(live.models[0].backend->model, "served-a");
  }
  ::unsetenv("KAIVAL_TEST_ARENA_KEY");
  for (const auto& f : fs::directory_iterator(d.path)) {
    std::ifstream in(f.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(bytes.find("sk-kaival-test-secret"), std::string::npos) << f.path();
  }
}

// ---- streamed live battles ----

namespace {

// One server-sent event as the voter's browser would see it, with its arrival time.
struct Frame {
  std::string event;
  json data;
  double at_s = 0;
};

struct StreamReply {
  int status = 0;
  std::string content_type, raw;
  std::vector<Frame> frames;

  std::string text(const std::string& side) const {
    std::string t;
    for (const auto& f : frames)
      if (f.event == "piece" && f.data["side"] == side) t += f.data["text"].get<std::string>();
    return t;
  }
  int count(const std::string& event, const std::string& side = "") const {
    int n = 0;
    for (const auto& f : frames) n += f.event == event && (side.empty() || f.data.value("side", "") == side);
    return n;
  }
  // Index of the first frame of `event` (for `side`), or -1.
  int index(const std::string& event, const std::string& side = "") const {
    for (size_t i = 0; i < frames.size(); ++i)
      if (frames[i].event == event && (side.empty() || frames[i].data.value("side", "") == side)) return static_cast<int>(i);
    return -1;
  }
};

StreamReply stream_live(Voter& v, const std::string& prompt, const std::string& campaign = "live-arena") {
  StreamReply out;
  std::string pending;
  auto t0 = std::chrono::steady_clock::now();
  httplib::Request req;
  req.method = "POST";
  req.path = "/api/arena/" + campaign + "/live/stream";
  req.headers = {{"X-CSRF-Token", v.csrf}, {"Cookie", v.cookie}, {"Content-Type", "application/json"}};
  req.body = json{{"prompt", prompt}}.dump();
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    double at = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    out.raw.append(data, n);
    pending.append(data, n);
    size_t end;
    while ((end = pending.find("\n\n")) != std::string::npos) {
      std::string frame = pending.substr(0, end);
      pending.erase(0, end + 2);
      Frame f;
      f.at_s = at;
      std::istringstream lines(frame);
      for (std::string line; std::getline(lines, line);) {
        if (line.rfind("event: ", 0) == 0) f.event = line.substr(7);
        if (line.rfind("data: ", 0) == 0) f.data = json::parse(line.substr(6), nullptr, false);
      }
      out.frames.push_back(std::move(f));
    }
    return true;
  };
  auto r = v.cli.send(req);
  if (r) {
    out.status = r->status;
    out.content_type = r->get_header_value("Content-Type");
  }
  return out;
}

int64_t scalar(const std::string& db, const std::string& sql) {
  auto raw = store::SqlDb::open(db);
  auto s = raw.prepare(sql);
  s.step();
  return s.int64(0);
}

const std::string kAnswerA = "Recursion is when a function calls itself until a base case stops it, step by step.";
const std::string kAnswerB = "<i>A definition that refers to itself</i> & so on: factorial(n) = n * factorial(n-1).";

}  // namespace

TEST(ArenaLiveStream, PiecesArriveInOrderOnBothSidesWithHiddenModelsThenTheVoteOpens) {
  eval::testing::MockFaults slow;
  slow.token_delay_ms = 25;
  MockServer a(slow), b(slow);
  a.add_answer("", kAnswerA);
  b.add_answer("", kAnswerB);
  a.start();
  b.start();
  LiveFixture f(a.url(), b.url());
  Voter v(f.port, "voter");
  StreamReply r = stream_live(v, "What is <b>recursion</b>?");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.content_type.rfind("text/event-stream", 0), 0u);
  ASSERT_GE(r.frames.size(), 4u);
  EXPECT_EQ(r.frames.front().event, "start");
  EXPECT_EQ(r.frames.front().data["prompt"], "What is <b>recursion</b>?");
  // Each side's pieces, joined in arrival order, are exactly one backend's answer.
  std::set<std::string> texts{r.text("a"), r.text("b")};
  EXPECT_EQ(texts, (std::set<std::string>{kAnswerA, kAnswerB}));
  for (const std::string side : {"a", "b"}) {
    EXPECT_GE(r.count("piece", side), 20) << "about three characters a piece";
    EXPECT_EQ(r.count("done", side), 1);
    EXPECT_EQ(r.count("error", side), 0);
    // Nothing of a side after its done.
    int done = r.index("done", side);
    for (size_t i = static_cast<size_t>(done) + 1; i < r.frames.size(); ++i)
      EXPECT_FALSE(r.frames[i].event == "piece" && r.frames[i].data["side"] == side);
  }
  // Side by side: each side has pieces before the other side is done.
  EXPECT_LT(r.index("piece", "a"), r.index("done", "b"));
  EXPECT_LT(r.index("piece", "b"), r.index("done", "a"));
  // Streamed, not buffered: the first pieces arrived well before the end.
  const Frame& last = r.frames.back();
  ASSERT_EQ(last.event, "battle") << r.raw.substr(r.raw.size() > 300 ? r.raw.size() - 300 : 0);
  EXPECT_GT(last.at_s - r.frames[static_cast<size_t>(r.index("piece"))].at_s, 0.3);
  std::string battle = last.data["battle"];
  EXPECT_EQ(battle.size(), 32u);
  // No model identity (ids, organizations, addresses) anywhere in the stream.
  for (const std::string secret : {"team-a", "team-b", "Alpha Labs", "Beta AI", "AlphaChat", "127.0.0.1", "model_a"})
    EXPECT_EQ(r.raw.find(secret), std::string::npos) << secret;

  // The pair is stored as streamed and takes the normal vote path.
  auto vote = v.cli.Post("/api/arena/live-arena/vote", {{"X-CSRF-Token", v.csrf}},
                         json{{"battle", battle}, {"winner", "model_b"}}.dump(), "application/json");
  ASSERT_TRUE(vote);
  EXPECT_EQ(vote->status, 200) << vote->body;
  EXPECT_EQ(f.store->vote_count(), 1);
  EXPECT_EQ(f.count("battles"), 1);
  EXPECT_EQ(scalar(f.db(), "SELECT count(*) FROM answers WHERE identity_leak=0"), 2);
  auto raw = store::SqlDb::open(f.db());
  auto texts_stored = raw.prepare("SELECT text FROM answers ORDER BY id");
  std::set<std::string> stored;
  while (texts_stored.step()) stored.insert(texts_stored.text(0));
  EXPECT_EQ(stored, texts);
  // Usage: the mock sends none, so each side's pieces were counted as tokens.
  auto usage = raw.prepare("SELECT sum(completion_tokens), sum(counted), count(*) FROM live_usage");
  ASSERT_TRUE(usage.step());
  EXPECT_EQ(usage.int64(0), r.count("piece"));
  EXPECT_EQ(usage.int64(1), 2);
  EXPECT_EQ(usage.int64(2), 2);
  EXPECT_EQ(scalar(f.db(), "SELECT count(*) FROM audit_log WHERE action='live.battle'"), 1);
}

TEST(ArenaLiveStream, ABackendBreakingOffMidStreamIsShownAndVoidsThePair) {
  eval::testing::MockFaults slow, cut;
  slow.token_delay_ms = 20;
  cut.token_delay_ms = 20;
  cut.cut_stream_first = 1;  // half the answer, then the connection drops
  MockServer a(slow), b(cut);
  a.add_answer("", kAnswerA + " " + kAnswerA);
  b.add_answer("", kAnswerB);
  a.start();
  b.start();
  LiveFixture f(a.url(), b.url());
  Voter v(f.port, "voter");
  StreamReply r = stream_live(v, "hello");
  ASSERT_EQ(r.status, 200) << r.raw;
  ASSERT_EQ(r.count("error"), 1) << r.raw;
  const Frame& err = r.frames[static_cast<size_t>(r.index("error"))];
  const std::string side = err.data["side"];
  EXPECT_EQ(err.data["message"], "This answer broke off: the pair is void and will not be counted.");
  EXPECT_GT(r.count("piece", side), 0) << "it broke off mid-stream, after some pieces";
  EXPECT_EQ(kAnswerB.rfind(r.text(side), 0), 0u) << "what arrived is the start of the answer";
  EXPECT_LT(r.text(side).size(), kAnswerB.size());
  ASSERT_EQ(r.frames.back().event, "void");
  EXPECT_EQ(r.frames.back().data["error"], "live_failed");
  EXPECT_EQ(r.count("battle"), 0);
  EXPECT_EQ(r.raw.find("127.0.0.1"), std::string::npos) << "no backend address reaches the voter";
  EXPECT_EQ(f.count("battles"), 0);
  EXPECT_EQ(f.count("prompts"), 0);
  EXPECT_EQ(f.count("answers"), 0);
  EXPECT_EQ(scalar(f.db(), "SELECT count(*) FROM audit_log WHERE action='live.failed'"), 1);
  // What the broken side streamed still cost tokens: it is in the usage.
  EXPECT_GE(scalar(f.db(), "SELECT COALESCE(sum(completion_tokens), 0) FROM live_usage WHERE model='team-b'"),
            r.count("piece", side));
  EXPECT_EQ(f.store->ratings(f.store->campaign("live-arena")->id, 0, 1).battles, 0);
  // The in-flight slot is free again: the next prompt streams.
  b.set_faults(slow);
  StreamReply again = stream_live(v, "hello again");
  ASSERT_EQ(again.status, 200);
  EXPECT_EQ(again.frames.back().event, "battle") << again.raw;
}

TEST(ArenaLiveStream, AnIdentityLeakFoundAfterStreamingVoidsThePair) {
  MockServer a, b;
  a.add_answer("", "I am AlphaChat, made by Alpha Labs.");
  b.add_answer("", "I am a language model.");
  a.start();
  b.start();
  LiveFixture f(a.url(), b.url());
  Voter v(f.port, "voter");
  StreamReply r = stream_live(v, "Who made you?");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.count("done"), 2);
  ASSERT_EQ(r.frames.back().event, "void") << r.raw;
  EXPECT_EQ(r.frames.back().data["error"], "live_leak");
  EXPECT_EQ(r.count("battle"), 0);
  EXPECT_EQ(f.count("battles"), 0);
  EXPECT_EQ(scalar(f.db(), "SELECT count(*) FROM answers WHERE identity_leak=1 AND model='team-a'"), 1);
  EXPECT_EQ(scalar(f.db(), "SELECT count(*) FROM audit_log WHERE action='live.identity_leak'"), 1);
}

TEST(ArenaLiveStream, RefusalsComeAsJsonBeforeAnyBackendIsAsked) {
  MockServer a, b;
  a.start();
  b.start();
  LiveFixture f(a.url(), b.url());
  Voter v(f.port, "voter");
  httplib::Client anon("127.0.0.1", f.port);
  auto r = anon.Post("/api/arena/live-arena/live/stream", json{{"prompt", "x"}}.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  r = v.cli.Post("/api/arena/live-arena/live/stream", {{"X-CSRF-Token", "wrong"}}, json{{"prompt", "x"}}.dump(),
                 "application/json");
  EXPECT_EQ(r->status, 403);
  StreamReply empty = stream_live(v, "   ");
  EXPECT_EQ(empty.status, 400);
  EXPECT_EQ(json::parse(empty.raw)["error"], "live_empty");
  EXPECT_EQ(a.posts() + b.posts(), 0);
}

// ---- spending budget ----

TEST(ArenaBackends, BudgetBlocksAreValidated) {
  std::string base = live_campaign("http://127.0.0.1:1", "http://127.0.0.1:2");
  auto c = arena::parse_campaign(base + "budget: {max_completion_tokens: 1000, max_completion_tokens_per_model: 400, "
                                        "max_cost: 2.5, cost_per_1m_input: 0.5, cost_per_1m_output: 1.5}\n",
                                 "ok.yaml");
  EXPECT_EQ(c.arena.budget.max_completion_tokens, 1000);
  EXPECT_EQ(c.arena.budget.max_completion_tokens_per_model, 400);
  EXPECT_DOUBLE_EQ(c.arena.budget.max_cost, 2.5);
  EXPECT_DOUBLE_EQ(c.arena.budget.cost_per_1m_output, 1.5);
  EXPECT_FALSE(arena::parse_campaign(base, "none.yaml").arena.budget.limited());
  auto error = [&](const std::string& extra) -> std::string {
    try {
      arena::parse_campaign(base + extra, "bad.yaml");
    } catch (const FormatError& e) {
      return e.what();
    }
    return "(accepted)";
  };
  EXPECT_EQ(error("budget: {max_completion_tokens: -5}\n"), "bad.yaml: budget.max_completion_tokens: -5 is not a positive integer");
  EXPECT_EQ(error("budget: {max_cost: 10}\n"),
            "bad.yaml: budget.max_cost: needs a price (budget.cost_per_1m_input/output or "
            "models[i].backend.cost_per_1m_input/output)");
  EXPECT_EQ(error("budget: {max_tokens: 10}\n").substr(0, 47), "bad.yaml: budget.max_tokens: unknown field (exp");
  std::string priced = base;
  priced.replace(priced.find("timeout_s: 5}"), 13, "timeout_s: 5, cost_per_1m_output: 3}");
  EXPECT_EQ(arena::parse_campaign(priced + "budget: {max_cost: 1}\n", "ok.yaml").arena.models[0].backend->cost_per_1m_output,
            3.0)
      << "a backend's own price is enough for a money cap";
}

TEST(ArenaLiveBudget, LiveBattlesAreRefusedOnceTheCampaignBudgetIsSpent) {
  // Each backend streams exactly max_tokens pieces and reports usage.
  eval::testing::MockFaults metered;
  metered.stream_max_tokens = true;
  MockServer a(metered), b(metered);
  a.start();
  b.start();
  // Room for exactly one pair's worst case (2 x max_tokens).
  std::string yaml = live_campaign(a.url(), b.url()) + "budget: {max_completion_tokens: 12}\n";
  for (size_t at; (at = yaml.find("timeout_s: 5}")) != std::string::npos;) yaml.replace(at, 13, "timeout_s: 5, max_tokens: 6 }");
  LiveFixture f(yaml);
  Voter v(f.port, "voter");
  Voter admin(f.port, "admin", "admin password");
  auto budget = [&] {
    auto r = admin.cli.Get("/api/admin/budget/live-arena");
    EXPECT_TRUE(r && r->status == 200);
    return r ? json::parse(r->body, nullptr, false) : json();
  };
  json before = budget();
  EXPECT_EQ(before["remaining_completion_tokens"], 12);
  EXPECT_EQ(before["exhausted"], false);

  StreamReply first = stream_live(v, "count to six");
  ASSERT_EQ(first.status, 200);
  ASSERT_EQ(first.frames.back().event, "battle") << first.raw;
  EXPECT_EQ(first.text("a"), " tok tok tok tok tok tok");
  // The backends' own usage (6 each), not counted pieces.
  EXPECT_EQ(scalar(f.db(), "SELECT sum(completion_tokens) FROM live_usage"), 12);
  EXPECT_EQ(scalar(f.db(), "SELECT sum(counted) FROM live_usage"), 0);
  EXPECT_EQ(scalar(f.db(), "SELECT sum(prompt_tokens) FROM live_usage"), 2 * 3) << "the mock's prompt tokens";

  json after = budget();
  EXPECT_EQ(after["completion_tokens"], 12);
  EXPECT_EQ(after["remaining_completion_tokens"], 0);
  EXPECT_EQ(after["exhausted"], true);
  ASSERT_EQ(after["models"].size(), 2u);
  EXPECT_EQ(after["models"][0]["completion_tokens"], 6);

  // Spent: streamed, JSON and form requests are refused before any backend is asked.
  const int64_t asked = a.posts() + b.posts();
  StreamReply refused = stream_live(v, "again");
  EXPECT_EQ(refused.status, 403);
  json j = json::parse(refused.raw);
  EXPECT_EQ(j["error"], "live_budget");
  EXPECT_EQ(j["message"], "This campaign's budget for live prompts is spent, so no new pairs can be asked.");
  auto api = v.live("again");
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 403);
  auto form = v.cli.Post("/arena/live-arena/live", httplib::Params{{"csrf", v.csrf}, {"prompt", "again"}});
  ASSERT_TRUE(form);
  EXPECT_EQ(form->status, 403);
  EXPECT_NE(form->body.find("budget for live prompts is spent"), std::string::npos);
  EXPECT_EQ(a.posts() + b.posts(), asked);
  // Refusals are not attempts: they cost nothing and do not eat the hourly cap.
  EXPECT_EQ(f.store->live_attempts(f.store->account_by_name("voter")->id, std::chrono::hours(1)), 1);

  // The admin page shows what is left; voters may not read the budget.
  auto page = admin.cli.Get("/admin");
  ASSERT_TRUE(page);
  EXPECT_NE(page->body.find("id=\"budget-live-arena\""), std::string::npos);
  EXPECT_NE(page->body.find("left 0"), std::string::npos) << page->body.substr(0, 3000);
  auto denied = v.cli.Get("/api/admin/budget/live-arena");
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 403);
}

TEST(ArenaLiveBudget, ModelsOverTheirOwnCapStopAnsweringAndUsageIsAccounted) {
  // Three backends; the two that answer first spend their per-model cap, the
  // third cannot make a pair alone. Non-streamed answers: usage from the JSON body.
  MockServer a, b, c;
  a.add_answer("", "one two three");
  b.add_answer("", "four five six");
  c.add_answer("", "seven eight nine");
  a.start();
  b.start();
  c.start();
  std::string yaml = live_campaign(a.url(), b.url()) +
                     fmt::format("  - id: team-c\n    backend: {{base_url: \"{}\", timeout_s: 5}}\n"
                                 "budget: {{max_completion_tokens_per_model: 3}}\n",
                                 c.url());
  // Each answer may take up to 3 tokens: its worst case fits a fresh model's cap exactly.
  for (size_t at; (at = yaml.find("timeout_s: 5}")) != std::string::npos;) yaml.replace(at, 13, "timeout_s: 5, max_tokens: 3 }");
  LiveFixture f(yaml);
  Voter v(f.port, "voter");
  auto first = v.live("first");
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 200) << first->body;
  const int64_t cid = f.store->campaign("live-arena")->id;
  arena::BudgetStatus st = f.store->live_budget(cid);
  EXPECT_EQ(st.completion_tokens, 6) << "three tokens each, from the backends' usage";
  ASSERT_EQ(st.available.size(), 1u);
  int spent = 0;
  for (const auto& m : st.models) spent += m.spent;
  EXPECT_EQ(spent, 2);
  EXPECT_FALSE(st.exhausted) << "no campaign-wide cap";
  const int64_t asked = a.posts() + b.posts() + c.posts();
  auto second = v.live("second");
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 403);
  EXPECT_EQ(json::parse(second->body)["error"], "live_budget");
  EXPECT_EQ(a.posts() + b.posts() + c.posts(), asked);
}

TEST(ArenaLiveBudget, PairsInFlightHoldTheirWorstCaseAndAdminsSeeReservedVsSpent) {
  // Answers of exactly max_tokens (10) pieces, slow enough that two pairs overlap.
  eval::testing::MockFaults metered;
  metered.stream_max_tokens = true;
  metered.token_delay_ms = 250;
  MockServer a(metered), b(metered);
  a.start();
  b.start();
  std::string yaml = live_campaign(a.url(), b.url()) +
                     "budget: {max_completion_tokens: 40, cost_per_1m_input: 1, cost_per_1m_output: 2}\n";
  for (size_t at; (at = yaml.find("timeout_s: 5}")) != std::string::npos;) yaml.replace(at, 13, "timeout_s: 5, max_tokens: 10 }");
  LiveFixture f(yaml);
  Voter v1(f.port, "voter"), v2(f.port, "voter2");
  Voter admin(f.port, "admin", "admin password");
  auto budget = [&] {
    auto r = admin.cli.Get("/api/admin/budget/live-arena");
    EXPECT_TRUE(r && r->status == 200);
    return r ? json::parse(r->body, nullptr, false) : json();
  };
  StreamReply r1, r2;
  std::thread t1([&] { r1 = stream_live(v1, "first prompt"); });
  std::thread t2([&] { r2 = stream_live(v2, "second prompt"); });
  // Both pairs in flight: each holds 2 x 10 completion tokens, so the 40 are taken.
  json held;
  for (int k = 0; k < 300; ++k) {
    held = budget();
    if (held.value("pairs_in_flight", 0) == 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(held["pairs_in_flight"], 2) << held.dump();
  EXPECT_EQ(held["reserved_completion_tokens"], 40);
  EXPECT_EQ(held["reserved_prompt_tokens"], 2 * (12 + arena::kChatTemplateTokens) + 2 * (13 + arena::kChatTemplateTokens))
      << "each answer's prompt bytes plus the template allowance";
  EXPECT_NEAR(held["reserved_cost"].get<double>(), (held["reserved_prompt_tokens"].get<double>() + 2.0 * 40) / 1e6, 1e-12);
  EXPECT_EQ(held["completion_tokens"], 0) << "nothing spent until a pair finishes";
  EXPECT_EQ(held["remaining_completion_tokens"], 0);
  EXPECT_EQ(held["exhausted"], true);
  // A third pair is refused before any backend is asked: the budget is held, not spent.
  auto page = admin.cli.Get("/admin");
  auto third = admin.live("third prompt");
  ASSERT_TRUE(third);
  EXPECT_EQ(third->status, 403);
  EXPECT_EQ(json::parse(third->body)["error"], "live_budget");
  ASSERT_TRUE(page);
  EXPECT_NE(page->body.find("reserved 40 (pairs in flight 2)"), std::string::npos) << page->body.substr(0, 3000);
  t1.join();
  t2.join();
  ASSERT_FALSE(r1.frames.empty());
  ASSERT_FALSE(r2.frames.empty());
  EXPECT_EQ(r1.frames.back().event, "battle") << r1.raw;
  EXPECT_EQ(r2.frames.back().event, "battle") << r2.raw;
  // Finished: the reservations became the backends' usage (10 each), no more and no less.
  json after = budget();
  EXPECT_EQ(after["pairs_in_flight"], 0);
  EXPECT_EQ(after["reserved_completion_tokens"], 0);
  EXPECT_EQ(after["reserved_cost"], 0.0);
  EXPECT_EQ(after["completion_tokens"], 40);
  EXPECT_EQ(after["remaining_completion_tokens"], 0);
  EXPECT_EQ(scalar(f.db(), "SELECT count(*) FROM live_reservations"), 0);
  EXPECT_EQ(scalar(f.db(), "SELECT sum(completion_tokens) FROM live_usage"), 40);
}

TEST(ArenaLiveBudget, AVoidedPairReleasesItsReservation) {
  // Room for one pair's worst case (20) and a bit: a void pair's reservation
  // must give way to what it actually used, or the next pair cannot start.
  eval::testing::MockFaults slow, broken;
  slow.stream_max_tokens = true;
  slow.token_delay_ms = 50;
  broken = slow;
  broken.error500_first = 1;  // its first request fails at once (no retries in the fixture)
  MockServer a(slow), b(broken);
  a.start();
  b.start();
  std::string yaml = live_campaign(a.url(), b.url()) + "budget: {max_completion_tokens: 30}\n";
  for (size_t at; (at = yaml.find("timeout_s: 5}")) != std::string::npos;) yaml.replace(at, 13, "timeout_s: 5, max_tokens: 10 }");
  LiveFixture f(yaml);
  Voter v(f.port, "voter");
  StreamReply failed = stream_live(v, "hello");
  ASSERT_EQ(failed.status, 200) << failed.raw;
  ASSERT_FALSE(failed.frames.empty());
  EXPECT_EQ(failed.frames.back().event, "void") << failed.raw;
  arena::BudgetStatus st = f.store->live_budget(f.store->campaign("live-arena")->id);
  EXPECT_EQ(st.pairs_in_flight, 0);
  EXPECT_EQ(st.reserved_completion_tokens, 0);
  EXPECT_LT(st.completion_tokens, 10) << "the other side was stopped early; what it streamed is spent";
  EXPECT_EQ(st.completion_tokens, scalar(f.db(), "SELECT COALESCE(sum(completion_tokens), 0) FROM live_usage"));
  EXPECT_EQ(scalar(f.db(), "SELECT count(*) FROM live_reservations"), 0);
  StreamReply next = stream_live(v, "hello again");
  ASSERT_EQ(next.status, 200) << next.raw;
  EXPECT_EQ(next.frames.back().event, "battle") << next.raw;
}
