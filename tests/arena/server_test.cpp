// Arena web service, in process on 127.0.0.1:0: escaping of model output,
// CSRF, cookies, size and rate limits, server-side role checks, voting by form
// and by API, reviews, and a bounded concurrent load test.
#include "server/arena_server.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <regex>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

using namespace kaival;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string testdata(const std::string& name) { return std::string(KAIVAL_TESTDATA) + "/arena/" + name; }

struct Fixture {
  fs::path dir;
  std::unique_ptr<arena::ArenaStore> store;
  std::unique_ptr<server::ArenaServer> srv;
  int port = 0;
  int64_t arena_id = 0, review_id = 0;

  explicit Fixture(server::ArenaServerOptions o = {}) {
    dir = fs::temp_directory_path() / ("kaival-arena-web-" + std::to_string(::getpid()) + "-" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
    arena::StoreOptions so;
    so.fast_password_hashing = true;
    store = arena::ArenaStore::open((dir / "arena.db").string(), so);
    int64_t admin = store->create_account("admin", "admin password", arena::Role::Admin);
    store->create_account("voter", "voter password", arena::Role::Voter);
    store->create_account("expert", "expert password", arena::Role::Expert, "University");
    store->create_account("expert2", "expert password", arena::Role::Expert, "Institute");
    arena_id = store->add_campaign(arena::load_campaign_file(testdata("arena_campaign.yaml")), admin);
    review_id = store->add_campaign(arena::load_campaign_file(testdata("review_campaign.yaml")), admin);
    store->assign_reviewers(review_id);
    srv = std::make_unique<server::ArenaServer>(*store, o);
    port = srv->start();
  }
  ~Fixture() {
    srv->stop();
    srv.reset();
    store.reset();
    fs::remove_all(dir);
  }
};

// A signed-in client: session cookie and CSRF token from /api/login.
struct User {
  httplib::Client cli;
  std::string csrf, cookie;
  User(int port, const std::string& name, const std::string& password) : cli("127.0.0.1", port) {
    auto r = cli.Post("/api/login", json{{"name", name}, {"password", password}}.dump(), "application/json");
    EXPECT_TRUE(r);
    if (!r) return;
    EXPECT_EQ(r->status, 200) << r->body;
    if (r->status != 200) return;
    csrf = json::parse(r->body)["csrf"];
    std::string set = r->get_header_value("Set-Cookie");
    cookie = set.substr(0, set.find(';'));
    cli.set_default_headers({{"Cookie", cookie}});
  }
  httplib::Result post_form(const std::string& path, httplib::Params params) {
    return cli.Post(path.c_str(), params);
  }
  httplib::Result api(const std::string& path, const json& body, bool with_csrf = true) {
    httplib::Headers h{{"Cookie", cookie}};
    if (with_csrf) h.emplace("X-CSRF-Token", csrf);
    return cli.Post(path.c_str(), h, body.dump(), "application/json");
  }
};

std::string field(const std::string& html, const std::string& name) {
  std::smatch m;
  std::regex re("name=\"" + name + "\" value=\"([^\"]*)\"");
  return std::regex_search(html, m, re) ? m[1].str() : "";
}

}  // namespace

TEST(ArenaServer, ModelOutputIsEscapedEverywhere) {
  Fixture f;
  User v(f.port, "voter", "voter password");
  bool saw_payload = false;
  for (int k = 0; k < 80 && !saw_payload; ++k) {
    auto r = v.cli.Get("/arena/demo-arena");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    EXPECT_EQ(r->body.find("<script>alert"), std::string::npos);
    EXPECT_EQ(r->body.find("<b>bold"), std::string::npos);
    saw_payload = r->body.find("&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;&lt;b&gt;bold") != std::string::npos;
  }
  EXPECT_TRUE(saw_payload) << "the hostile answer never came up";
  User e(f.port, "expert", "expert password");
  auto list = e.cli.Get("/review");
  ASSERT_TRUE(list);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(list->body, m, std::regex("/review/(\\d+)\">Team A")));
  auto item = e.cli.Get(("/review/" + m[1].str()).c_str());
  ASSERT_TRUE(item);
  EXPECT_EQ(item->body.find("<img src=x"), std::string::npos);
  EXPECT_NE(item->body.find("&lt;img src=x onerror=alert(1)&gt;"), std::string::npos);
  EXPECT_NE(item->get_header_value("Content-Security-Policy").find("script-src 'self'"), std::string::npos);
}

TEST(ArenaServer, VoteByFormNeedsTheSessionsCsrfToken) {
  Fixture f;
  User v(f.port, "voter", "voter password");
  auto page = v.cli.Get("/arena/demo-arena");
  ASSERT_TRUE(page);
  std::string battle = field(page->body, "battle"), csrf = field(page->body, "csrf");
  ASSERT_EQ(battle.size(), 32u);
  ASSERT_EQ(csrf, v.csrf);
  auto r = v.post_form("/arena/demo-arena/vote", {{"battle", battle}, {"winner", "model_a"}});
  EXPECT_EQ(r->status, 403) << "no CSRF token";
  r = v.post_form("/arena/demo-arena/vote", {{"battle", battle}, {"winner", "model_a"}, {"csrf", std::string(64, 'a')}});
  EXPECT_EQ(r->status, 403) << "wrong CSRF token";
  EXPECT_EQ(f.store->vote_count(), 0);
  r = v.post_form("/arena/demo-arena/vote", {{"battle", battle}, {"winner", "model_a"}, {"csrf", csrf}});
  EXPECT_EQ(r->status, 303);
  EXPECT_EQ(f.store->vote_count(), 1);
  r = v.post_form("/arena/demo-arena/vote", {{"battle", battle}, {"winner", "model_b"}, {"csrf", csrf}});
  EXPECT_EQ(r->status, 409);
  auto api = v.api("/api/arena/demo-arena/battle", json::object(), false);
  EXPECT_EQ(api->status, 403);
  // Another user's CSRF token does not work with this session.
  User e(f.port, "expert", "expert password");
  httplib::Headers h{{"Cookie", v.cookie}, {"X-CSRF-Token", e.csrf}};
  EXPECT_EQ(v.cli.Post("/api/arena/demo-arena/battle", h, "{}", "application/json")->status, 403);
  EXPECT_EQ(f.store->vote_count(), 1);
}

TEST(ArenaServer, LoginFormCookiesAndLogout) {
  Fixture f;
  httplib::Client c("127.0.0.1", f.port);
  auto form = c.Get("/login");
  ASSERT_TRUE(form);
  std::string pre = form->get_header_value("Set-Cookie");
  pre = pre.substr(0, pre.find(';'));
  std::string tok = field(form->body, "csrf");
  auto r = c.Post("/login", httplib::Params{{"name", "voter"}, {"password", "voter password"}, {"csrf", tok}});
  EXPECT_EQ(r->status, 403) << "no double-submit cookie";
  httplib::Headers h{{"Cookie", pre}};
  r = c.Post("/login", h, httplib::detail::params_to_query_str({{"name", "voter"}, {"password", "nope nope"}, {"csrf", tok}}),
             "application/x-www-form-urlencoded");
  EXPECT_EQ(r->status, 401);
  r = c.Post("/login", h, httplib::detail::params_to_query_str({{"name", "voter"}, {"password", "voter password"}, {"csrf", tok}, {"next", "//evil.example"}}),
             "application/x-www-form-urlencoded");
  ASSERT_EQ(r->status, 303);
  EXPECT_EQ(r->get_header_value("Location"), "/") << "open redirect";
  std::string set = r->get_header_value("Set-Cookie");
  EXPECT_NE(set.find("HttpOnly"), std::string::npos);
  EXPECT_NE(set.find("SameSite=Strict"), std::string::npos);
  EXPECT_EQ(set.find("Secure"), std::string::npos);
  User v(f.port, "voter", "voter password");
  EXPECT_EQ(v.post_form("/logout", {{"csrf", v.csrf}})->status, 303);
  EXPECT_EQ(v.api("/api/arena/demo-arena/battle", json::object())->status, 401) << "session survived logout";
}

TEST(ArenaServer, SecureCookiesBehindTls) {
  server::ArenaServerOptions o;
  o.secure_cookies = true;
  Fixture f(o);
  httplib::Client c("127.0.0.1", f.port);
  auto r = c.Post("/api/login", json{{"name", "voter"}, {"password", "voter password"}}.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_NE(r->get_header_value("Set-Cookie").find("; Secure"), std::string::npos);
}

TEST(ArenaServer, AdminChecksAreOnTheServer) {
  Fixture f;
  User v(f.port, "voter", "voter password");
  EXPECT_EQ(v.cli.Get("/admin")->status, 403);
  std::string yaml = "kind: arena\nname: sneaky\nmodels: [a, b]\nprompts: []\n";
  EXPECT_EQ(v.post_form("/admin/campaign", {{"csrf", v.csrf}, {"yaml", yaml}})->status, 403);
  EXPECT_EQ(v.post_form("/admin/invite", {{"csrf", v.csrf}, {"role", "admin"}})->status, 403);
  EXPECT_EQ(v.cli.Get("/review")->status, 403);
  httplib::Client anon("127.0.0.1", f.port);
  EXPECT_EQ(anon.Get("/admin")->status, 303);
  User a(f.port, "admin", "admin password");
  EXPECT_EQ(a.post_form("/admin/campaign", {{"yaml", yaml}})->status, 403) << "admin without CSRF";
  EXPECT_EQ(a.post_form("/admin/campaign", {{"csrf", a.csrf}, {"yaml", yaml}})->status, 303);
  EXPECT_TRUE(f.store->campaign("sneaky"));
  EXPECT_EQ(a.post_form("/admin/campaign", {{"csrf", a.csrf}, {"yaml", "kind: [oops"}})->status, 400);
  auto inv = a.post_form("/admin/invite", {{"csrf", a.csrf}, {"role", "voter"}});
  ASSERT_EQ(inv->status, 200);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(inv->body, m, std::regex("<code>([0-9a-f]{32})</code>")));
  EXPECT_TRUE(f.store->redeem_invitation(m[1].str(), "newbie", "newbie password"));
}

TEST(ArenaServer, HostileRequestsAreRefused) {
  Fixture f;
  User v(f.port, "voter", "voter password");
  std::string huge(3u << 20, 'x');
  auto r = v.cli.Post("/api/arena/demo-arena/vote", {{"Cookie", v.cookie}, {"X-CSRF-Token", v.csrf}}, huge, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(v.api("/api/arena/demo-arena/vote", json{{"battle", "x"}})->status, 400);
  EXPECT_EQ(v.api("/api/arena/demo-arena/vote", json{{"battle", "' OR 1=1 --"}, {"winner", "tie"}})->status, 404);
  EXPECT_EQ(v.api("/api/arena/demo-arena/vote", json{{"battle", "x"}, {"winner", "<script>"}})->status, 400);
  EXPECT_EQ(v.cli.Post("/api/arena/demo-arena/vote", {{"Cookie", v.cookie}, {"X-CSRF-Token", v.csrf}}, "{not json", "application/json")->status, 400);
  EXPECT_EQ(v.cli.Get("/arena/no-such")->status, 404);
  EXPECT_EQ(v.cli.Get("/leaderboard/%3Cscript%3E")->status, 404);
  EXPECT_EQ(f.store->vote_count(), 0);
}

TEST(ArenaServer, RateLimitPerIp) {
  server::ArenaServerOptions o;
  o.requests_per_second_per_ip = 1;
  o.burst_per_ip = 5;
  Fixture f(o);
  httplib::Client c("127.0.0.1", f.port);
  int limited = 0;
  for (int k = 0; k < 10; ++k) limited += c.Get("/")->status == 429;
  EXPECT_GE(limited, 4);
}

TEST(ArenaServer, LeaderboardShowsChartsAndReviewsAreSaved) {
  Fixture f;
  User v(f.port, "voter", "voter password");
  for (int k = 0; k < 30; ++k) {
    auto b = json::parse(v.api("/api/arena/demo-arena/battle", json::object())->body);
    auto r = v.api("/api/arena/demo-arena/vote", {{"battle", b["battle"]}, {"winner", k % 3 ? "model_a" : "tie"}});
    ASSERT_EQ(r->status, 200) << r->body;
  }
  httplib::Client anon("127.0.0.1", f.port);
  auto page = anon.Get("/leaderboard/demo-arena?lang=ko");
  ASSERT_TRUE(page);
  ASSERT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("<html lang=\"ko\">"), std::string::npos);
  EXPECT_NE(page->body.find("순위표"), std::string::npos);
  EXPECT_EQ(std::count(page->body.begin(), page->body.end(), '<') > 50, true);
  EXPECT_NE(page->body.find("aria-labelledby=\"lbt\""), std::string::npos);  // whisker chart
  EXPECT_NE(page->body.find("aria-labelledby=\"hmt\""), std::string::npos);  // heatmap
  for (const char* m : {"team-a", "team-b", "target-x"}) EXPECT_NE(page->body.find(m), std::string::npos);
  auto lb = json::parse(anon.Get("/api/leaderboard/demo-arena")->body);
  EXPECT_EQ(lb["battles"], 30);
  EXPECT_EQ(lb["models"].size(), 3u);

  User e(f.port, "expert", "expert password");
  auto items = f.store->assignments(f.store->account_by_name("expert")->id);
  ASSERT_FALSE(items.empty());
  std::string path = "/review/" + std::to_string(items[0].item_id);
  EXPECT_EQ(e.post_form(path, {{"csrf", e.csrf}, {"score_0", "9"}})->status, 400);
  EXPECT_EQ(e.post_form(path, {{"csrf", e.csrf}, {"score_0", "4"}, {"rationale_0", "<b>ok</b>"}, {"score_1", "5"}})->status, 303);
  EXPECT_TRUE(f.store->assignments(f.store->account_by_name("expert")->id)[0].done);
  EXPECT_EQ(v.post_form(path, {{"csrf", v.csrf}, {"score_0", "1"}})->status, 403) << "a voter cannot review";
}

// Many concurrent votes, bounded in time; every acknowledged vote is stored
// exactly once. Latency percentiles are printed (the fsync cost dominates).
TEST(ArenaServer, ConcurrentVotesAreAllStoredOnce) {
  server::ArenaServerOptions o;
  o.requests_per_second_per_ip = 1e6;
  o.burst_per_ip = 1e6;
  Fixture f(o);
  constexpr int kClients = 16;
  std::vector<std::unique_ptr<User>> users;
  for (int k = 0; k < kClients; ++k) users.push_back(std::make_unique<User>(f.port, "voter", "voter password"));
  std::vector<std::vector<std::string>> acked(kClients);
  std::vector<std::vector<double>> latency(kClients);
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1000);
  std::vector<std::thread> pool;
  for (int k = 0; k < kClients; ++k)
    pool.emplace_back([&, k] {
      User& u = *users[k];
      while (std::chrono::steady_clock::now() < until) {
        auto b = u.api("/api/arena/demo-arena/battle", json::object());
        if (!b || b->status != 200) continue;
        std::string id = json::parse(b->body)["battle"];
        auto t0 = std::chrono::steady_clock::now();
        auto r = u.api("/api/arena/demo-arena/vote", {{"battle", id}, {"winner", "model_b"}});
        auto t1 = std::chrono::steady_clock::now();
        if (r && r->status == 200) {
          acked[k].push_back(id);
          latency[k].push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        }
      }
    });
  for (auto& t : pool) t.join();
  std::vector<std::string> all;
  std::vector<double> lat;
  for (int k = 0; k < kClients; ++k) {
    all.insert(all.end(), acked[k].begin(), acked[k].end());
    lat.insert(lat.end(), latency[k].begin(), latency[k].end());
  }
  ASSERT_GT(all.size(), 50u);
  std::sort(lat.begin(), lat.end());
  std::printf("load: %zu votes acknowledged in 1.0 s (%.0f/s), p50 %.1f ms, p99 %.1f ms\n", all.size(),
              all.size() / 1.0, lat[lat.size() / 2], lat[lat.size() * 99 / 100]);
  EXPECT_EQ(f.store->vote_count(), static_cast<int64_t>(all.size()));
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::unique(all.begin(), all.end()), all.end()) << "a battle acknowledged twice";
  kaival::store::Db raw = kaival::store::Db::open((f.dir / "arena.db").string());
  auto q = raw.prepare("SELECT count(*) FROM votes v JOIN battles b ON b.id=v.battle_id WHERE b.public_id=?1");
  for (const auto& id : all) {
    q.reset();
    q.bind(1, id).step();
    ASSERT_EQ(q.int64(0), 1) << id;
  }
}
