#include "server/arena_server.h"

#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "arena/backend.h"
#include "arena/chat_stream.h"
#include "core/error.h"
#include "server/arena_html.h"

namespace kaival::server {

using arena::ArenaStore;
using arena::Role;
using nlohmann::json;
using namespace arena_html;

namespace {

using Clock = std::chrono::steady_clock;

// Per-IP token buckets; entries idle for a minute are dropped.
class RateLimiter {
 public:
  RateLimiter(double rate, double burst) : rate_(rate), burst_(burst) {}
  bool allow(const std::string& key, double cost = 1.0) {
    std::lock_guard lk(mu_);
    auto now = Clock::now();
    if (++calls_ % 4096 == 0) {
      for (auto it = buckets_.begin(); it != buckets_.end();)
        it = now - it->second.last > std::chrono::minutes(1) ? buckets_.erase(it) : std::next(it);
    }
    auto [it, fresh] = buckets_.try_emplace(key, Bucket{burst_, now});
    Bucket& b = it->second;
    double dt = std::chrono::duration<double>(now - b.last).count();
    b.tokens = std::min(burst_, b.tokens + dt * rate_);
    b.last = now;
    if (b.tokens < cost) return false;
    b.tokens -= cost;
    return true;
  }

 private:
  struct Bucket {
    double tokens;
    Clock::time_point last;
  };
  std::mutex mu_;
  std::map<std::string, Bucket> buckets_;
  double rate_, burst_;
  uint64_t calls_ = 0;
};

std::string cookie(const httplib::Request& req, const std::string& name) {
  std::string all = req.get_header_value("Cookie");
  size_t pos = 0;
  while (pos < all.size()) {
    size_t end = all.find(';', pos);
    if (end == std::string::npos) end = all.size();
    std::string part = all.substr(pos, end - pos);
    size_t s = part.find_first_not_of(' ');
    if (s != std::string::npos) part = part.substr(s);
    if (part.size() > name.size() && part.compare(0, name.size(), name) == 0 && part[name.size()] == '=')
      return part.substr(name.size() + 1);
    pos = end + 1;
  }
  return "";
}

bool equal_secret(const std::string& a, const std::string& b) {
  return a.size() == b.size() && !a.empty() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string random_token() {
  unsigned char b[24];
  randombytes_buf(b, sizeof b);
  char hex[49];
  sodium_bin2hex(hex, sizeof hex, b, sizeof b);
  return hex;
}

// Code points in `s`; nullopt when it is not valid UTF-8 (overlong, surrogates, cut).
std::optional<size_t> utf8_code_points(std::string_view s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++n) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return std::nullopt;
    uint32_t cp = len == 1 ? c : c & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return std::nullopt;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
    i += len;
  }
  return n;
}

bool valid_campaign_name(const std::string& s) {
  if (s.empty() || s.size() > 100) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

}  // namespace

struct ArenaServer::Impl {
  ArenaStore& store;
  ArenaServerOptions opt;
  httplib::Server http;
  int listen_fd = -1;  // captured from httplib to widen its listen backlog
  std::thread listener;
  std::mutex stop_mu;
  bool stopped = false;
  RateLimiter requests;
  RateLimiter logins;
  struct Cached {
    Clock::time_point at;
    ArenaStore::Ratings ratings;
  };
  std::mutex cache_mu;
  std::map<int64_t, Cached> cache;
  arena::BackendPool backends;
  std::mutex live_mu;
  std::set<int64_t> live_in_flight;  // accounts with a live prompt being answered
  std::atomic<bool> stopping{false};  // streams in progress cancel their backend requests

  static arena::BackendPoolOptions live_pool_options(const ArenaServerOptions& o) {
    arena::BackendPoolOptions p;
    p.concurrency = 8;
    p.max_retries = std::max(0, o.live_retries);
    p.retry_after_max_s = 2;  // a voter is waiting: no long Retry-After pauses
    return p;
  }

  Impl(ArenaStore& s, ArenaServerOptions o)
      : store(s), opt(std::move(o)), requests(opt.requests_per_second_per_ip, opt.burst_per_ip),
        logins(opt.logins_per_minute_per_ip / 60.0, opt.logins_per_minute_per_ip),
        backends(live_pool_options(opt)) {
    if (sodium_init() < 0) fail<IoError>("arena server", "libsodium failed to initialise");
    routes();
  }

  // ---- request context ----
  struct Ctx {
    std::optional<arena::Session> session;
    std::string token;
    PageContext page;
  };

  Ctx context(const httplib::Request& req, httplib::Response& res) {
    Ctx c;
    std::string chosen = req.get_param_value("lang");
    if (chosen == "ko" || chosen == "en") {
      res.set_header("Set-Cookie", fmt::format("lang={}; Path=/; SameSite=Strict; Max-Age=31536000", chosen));
    } else {
      chosen = cookie(req, "lang");
    }
    c.page.lang = parse_lang(chosen, req.get_header_value("Accept-Language"));
    c.token = cookie(req, "kaival_session");
    if (!c.token.empty()) c.session = store.session(c.token);
    if (c.session) {
      c.page.user = c.session->account.name;
      c.page.role = role_name(c.session->account.role);
      c.page.csrf = c.session->csrf;
    }
    return c;
  }

  std::string session_cookie(const std::string& token, int max_age) const {
    return fmt::format("kaival_session={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}", token, max_age,
                       opt.secure_cookies ? "; Secure" : "");
  }

  static bool csrf_ok(const Ctx& c, const httplib::Request& req) {
    if (!c.session) return false;
    std::string sent = req.has_header("X-CSRF-Token") ? req.get_header_value("X-CSRF-Token") : req.get_param_value("csrf");
    return equal_secret(sent, c.session->csrf);
  }

  void html(httplib::Response& res, const Ctx& c, const std::string& title, const std::string& body, int status = 200) {
    res.status = status;
    res.set_content(page(c.page, title, body), "text/html; charset=utf-8");
  }

  void error_page(httplib::Response& res, const Ctx& c, int status, const std::string& message) {
    html(res, c, fmt::format("{}", status), fmt::format("<p class=\"error\" role=\"alert\">{}</p>", esc(message)), status);
  }

  static void json_reply(httplib::Response& res, int status, const json& j) {
    res.status = status;
    res.set_content(j.dump(), "application/json");
  }

  static void redirect(httplib::Response& res, const std::string& to) {
    res.status = 303;
    res.set_header("Location", to);
  }

  std::optional<arena::CampaignInfo> find_campaign(const std::string& name, const std::string& kind) {
    if (!valid_campaign_name(name)) return std::nullopt;
    auto c = store.campaign(name);
    if (!c || c->kind != kind) return std::nullopt;
    return c;
  }

  ArenaStore::Ratings cached_ratings(int64_t campaign) {
    std::lock_guard lk(cache_mu);
    auto it = cache.find(campaign);
    if (it != cache.end() && Clock::now() - it->second.at < std::chrono::seconds(5)) return it->second.ratings;
    auto r = store.ratings(campaign, opt.leaderboard_resamples, 1);
    cache[campaign] = {Clock::now(), r};
    return r;
  }

  // ---- pages ----
  void home(const httplib::Request& req, httplib::Response& res) {
    Ctx c = context(req, res);
    std::string body = fmt::format("<h2>{}</h2><ul>", esc(t(c.page.lang, "campaigns")));
    for (const auto& cp : store.campaigns()) {
      std::string label = cp.title.empty() ? cp.name : cp.title;
      if (cp.kind == "arena")
        body += fmt::format("<li>{}{}: <a href=\"/arena/{}\">{}</a> · <a href=\"/leaderboard/{}\">{}</a></li>", esc(label),
                            cp.synthetic ? " <strong>(synthetic)</strong>" : "", esc(cp.name), esc(t(c.page.lang, "vote")),
                            esc(cp.name), esc(t(c.page.lang, "leaderboard")));
      else
        body += fmt::format("<li>{}: <a href=\"/review\">{}</a></li>", esc(label), esc(t(c.page.lang, "review")));
    }
    body += "</ul>";
    if (!c.session)
      body += fmt::format("<p><a href=\"/login\">{}</a> · <a href=\"/join\">{}</a></p>", esc(t(c.page.lang, "login")),
                          esc(t(c.page.lang, "join")));
    html(res, c, t(c.page.lang, "site"), body);
  }

  // Sign-in and join forms use a double-submit cookie, as there is no session yet.
  std::string pre_csrf(httplib::Response& res) {
    std::string tok = random_token();
    res.set_header("Set-Cookie", fmt::format("kaival_pre={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600{}", tok,
                                             opt.secure_cookies ? "; Secure" : ""));
    return tok;
  }

  void login_form(const httplib::Request& req, httplib::Response& res, const std::string& error = "", int status = 200) {
    Ctx c = context(req, res);
    std::string tok = pre_csrf(res);
    Lang l = c.page.lang;
    std::string next = req.get_param_value("next");
    std::string body = error.empty() ? "" : fmt::format("<p class=\"error\" role=\"alert\">{}</p>", esc(error));
    body += fmt::format(
        "<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">"
        "<input type=\"hidden\" name=\"next\" value=\"{}\">"
        "<label for=\"name\">{}</label><input id=\"name\" name=\"name\" autocomplete=\"username\" required>"
        "<label for=\"password\">{}</label><input id=\"password\" name=\"password\" type=\"password\" "
        "autocomplete=\"current-password\" required><p><button type=\"submit\">{}</button></p></form>",
        tok, esc(next), esc(t(l, "name")), esc(t(l, "password")), esc(t(l, "login")));
    html(res, c, t(l, "login"), body, status);
  }

  static std::string safe_next(const std::string& next) {
    // Only local paths: no scheme, no protocol-relative "//host".
    if (next.size() > 1 && next[0] == '/' && next[1] != '/' && next.find('\\') == std::string::npos &&
        next.size() < 300)
      return next;
    return "/";
  }

  void login_post(const httplib::Request& req, httplib::Response& res) {
    if (!logins.allow(req.remote_addr)) return login_form(req, res, "Too many attempts; wait a minute.", 429);
    if (!equal_secret(req.get_param_value("csrf"), cookie(req, "kaival_pre")))
      return login_form(req, res, "Form expired; please try again.", 403);
    auto a = store.check_password(req.get_param_value("name"), req.get_param_value("password"));
    if (!a) {
      Ctx c = context(req, res);
      return login_form(req, res, t(c.page.lang, "bad_login"), 401);
    }
    res.set_header("Set-Cookie", session_cookie(store.create_session(a->id), 43200));
    redirect(res, safe_next(req.get_param_value("next")));
  }

  void api_login(const httplib::Request& req, httplib::Response& res) {
    if (!logins.allow(req.remote_addr)) return json_reply(res, 429, {{"error", "too many attempts"}});
    // JSON only: a cross-site form cannot send this content type without CORS.
    if (req.get_header_value("Content-Type").rfind("application/json", 0) != 0)
      return json_reply(res, 415, {{"error", "expected application/json"}});
    json j = json::parse(req.body, nullptr, false);
    if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || !j.contains("password") ||
        !j["password"].is_string())
      return json_reply(res, 400, {{"error", "expected {\"name\", \"password\"}"}});
    auto a = store.check_password(j["name"], j["password"]);
    if (!a) return json_reply(res, 401, {{"error", "wrong name or password"}});
    std::string token = store.create_session(a->id);
    res.set_header("Set-Cookie", session_cookie(token, 43200));
    json_reply(res, 200, {{"csrf", store.session(token)->csrf}, {"role", role_name(a->role)}});
  }

  void logout(const httplib::Request& req, httplib::Response& res) {
    Ctx c = context(req, res);
    if (!csrf_ok(c, req)) return error_page(res, c, 403, "CSRF token missing or wrong");
    store.end_session(c.token);
    res.set_header("Set-Cookie", session_cookie("", 0));
    redirect(res, "/");
  }

  void join_form(const httplib::Request& req, httplib::Response& res, const std::string& error = "", int status = 200) {
    Ctx c = context(req, res);
    std::string tok = pre_csrf(res);
    Lang l = c.page.lang;
    std::string body = error.empty() ? "" : fmt::format("<p class=\"error\" role=\"alert\">{}</p>", esc(error));
    body += fmt::format(
        "<form method=\"post\" action=\"/join\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">"
        "<label for=\"token\">{}</label><input id=\"token\" name=\"token\" value=\"{}\" required>"
        "<label for=\"name\">{}</label><input id=\"name\" name=\"name\" autocomplete=\"username\" required>"
        "<label for=\"password\">{}</label><input id=\"password\" name=\"password\" type=\"password\" minlength=\"8\" "
        "autocomplete=\"new-password\" required><p><button type=\"submit\">{}</button></p></form>",
        tok, esc(t(l, "invitation")), esc(req.get_param_value("token")), esc(t(l, "name")), esc(t(l, "password")),
        esc(t(l, "join")));
    html(res, c, t(l, "join"), body, status);
  }

  void join_post(const httplib::Request& req, httplib::Response& res) {
    if (!logins.allow(req.remote_addr)) return join_form(req, res, "Too many attempts; wait a minute.", 429);
    if (!equal_secret(req.get_param_value("csrf"), cookie(req, "kaival_pre")))
      return join_form(req, res, "Form expired; please try again.", 403);
    std::optional<arena::Account> a;
    try {
      a = store.redeem_invitation(req.get_param_value("token"), req.get_param_value("name"),
                                  req.get_param_value("password"));
    } catch (const FormatError& e) {
      return join_form(req, res, e.problem(), 400);
    }
    if (!a) return join_form(req, res, "Unknown or used invitation.", 403);
    res.set_header("Set-Cookie", session_cookie(store.create_session(a->id), 43200));
    redirect(res, "/");
  }

  // ---- arena ----
  // `disabled`: the streamed live pair, enabled by the page once both answers are complete.
  std::string vote_buttons(Lang l, bool disabled = false) {
    return fmt::format(
        "<div class=\"buttons\" role=\"group\" aria-label=\"{0}\">"
        "<button type=\"submit\" name=\"winner\" value=\"model_a\" data-key=\"1\" accesskey=\"1\"{5}>{1}</button>"
        "<button type=\"submit\" name=\"winner\" value=\"model_b\" data-key=\"2\" accesskey=\"2\"{5}>{2}</button>"
        "<button type=\"submit\" name=\"winner\" value=\"tie\" data-key=\"3\" accesskey=\"3\"{5}>{3}</button>"
        "<button type=\"submit\" name=\"winner\" value=\"both_bad\" data-key=\"4\" accesskey=\"4\"{5}>{4}</button></div>"
        "<p class=\"note\">{6}</p>",
        esc(t(l, "vote")), esc(t(l, "a_better")), esc(t(l, "b_better")), esc(t(l, "tie")), esc(t(l, "both_bad")),
        disabled ? " disabled" : "", esc(t(l, "keys")));
  }

  void arena_page(const httplib::Request& req, httplib::Response& res) {
    Ctx c = context(req, res);
    std::string name = req.matches[1];
    auto cp = find_campaign(name, "arena");
    if (!cp) return error_page(res, c, 404, "no such arena campaign");
    if (!c.session) return redirect(res, "/login?next=/arena/" + name);
    auto b = store.new_battle(cp->id, c.session->account.id, req.remote_addr);
    Lang l = c.page.lang;
    std::string body;
    if (cp->synthetic) body += fmt::format("<p class=\"synthetic\">{}</p>", esc(t(l, "synthetic")));
    if (req.has_param("voted")) body += fmt::format("<p class=\"ok\" role=\"status\">{}</p>", esc(t(l, "thanks")));
    arena::LiveCampaign live = store.live_campaign(cp->id);
    if (!b) {
      if (!live.enabled) body += fmt::format("<p>{}</p>", esc(t(l, "no_battle")));
      body += live_form(c, *cp, live);
      return html(res, c, cp->title.empty() ? cp->name : cp->title, body);
    }
    body += battle_html(c, *cp, *b);
    body += live_form(c, *cp, live);
    html(res, c, cp->title.empty() ? cp->name : cp->title, body);
  }

  std::string battle_html(const Ctx& c, const arena::CampaignInfo& cp, const arena::BattleView& b) {
    Lang l = c.page.lang;
    return fmt::format(
        "<div id=\"battle\"><p class=\"note\">{}</p><section aria-labelledby=\"ph\"><h2 id=\"ph\">{}</h2><div class=\"prompt\">{}</div></section>"
        "<div class=\"pair\"><section aria-labelledby=\"ah\"><h2 id=\"ah\">{}</h2><div class=\"answer\" id=\"answer-a\">{}</div></section>"
        "<section aria-labelledby=\"bh\"><h2 id=\"bh\">{}</h2><div class=\"answer\" id=\"answer-b\">{}</div></section></div>"
        "<form method=\"post\" action=\"/arena/{}/vote\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">"
        "<input type=\"hidden\" name=\"battle\" value=\"{}\">{}</form>"
        "<p><a href=\"/leaderboard/{}\">{}</a></p></div>",
        esc(t(l, "blind")), esc(t(l, "prompt")), esc(b.prompt), esc(t(l, "answer_a")), esc(b.answer_a),
        esc(t(l, "answer_b")), esc(b.answer_b), esc(cp.name), esc(c.session->csrf), esc(b.id), vote_buttons(l),
        esc(cp.name), esc(t(l, "leaderboard")));
  }

  // The "ask your own prompt" form, on campaigns that take live prompts. The
  // page's script sends it to the stream endpoint and fills the hidden pair
  // below piece by piece; without script the form posts and waits for both.
  std::string live_form(const Ctx& c, const arena::CampaignInfo& cp, const arena::LiveCampaign& live,
                        const std::string& prompt = "") {
    if (!live.enabled) return "";
    Lang l = c.page.lang;
    std::string form = fmt::format(
        "<section aria-labelledby=\"lh\"><h2 id=\"lh\">{}</h2><p class=\"note\">{}</p>"
        "<form id=\"live-form\" method=\"post\" action=\"/arena/{}/live\" data-stream=\"/api/arena/{}/live/stream\">"
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">"
        "<label for=\"live-prompt\">{}</label><textarea id=\"live-prompt\" name=\"prompt\" rows=\"4\" "
        "maxlength=\"{}\" required>{}</textarea><p><button type=\"submit\">{}</button></p></form></section>",
        esc(t(l, "live_heading")), esc(t(l, "live_note")), esc(cp.name), esc(cp.name), esc(c.session->csrf),
        esc(t(l, "prompt")), live.max_prompt_chars, esc(prompt), esc(t(l, "ask")));
    std::string pair = fmt::format(
        "<div id=\"live-battle\" hidden data-streaming=\"{}\" data-ready=\"{}\" data-failed=\"{}\">"
        "<p class=\"note\">{}</p><section aria-labelledby=\"lph\"><h2 id=\"lph\">{}</h2><div class=\"prompt\" id=\"live-shown-prompt\"></div></section>"
        "<div class=\"pair\"><section aria-labelledby=\"lah\"><h2 id=\"lah\">{}</h2><div class=\"answer\" id=\"live-a\" aria-live=\"polite\"></div></section>"
        "<section aria-labelledby=\"lbh\"><h2 id=\"lbh\">{}</h2><div class=\"answer\" id=\"live-b\" aria-live=\"polite\"></div></section></div>"
        "<p id=\"live-status\" role=\"status\"></p>"
        "<form method=\"post\" action=\"/arena/{}/vote\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">"
        "<input type=\"hidden\" name=\"battle\" id=\"live-battle-id\" value=\"\">{}</form></div>",
        esc(t(l, "live_streaming")), esc(t(l, "live_ready")), esc(t(l, "live_failed")), esc(t(l, "blind")), esc(t(l, "prompt")),
        esc(t(l, "answer_a")), esc(t(l, "answer_b")), esc(cp.name), esc(c.session->csrf), vote_buttons(l, true));
    return pair + form;
  }

  // Holds an account's one live prompt in flight; released when the answers
  // are stored or voided (for a stream: when the stream ends).
  struct InFlight {
    Impl& s;
    int64_t account;
    InFlight(Impl& s, int64_t a) : s(s), account(a) {}
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
    ~InFlight() {
      std::lock_guard lk(s.live_mu);
      s.live_in_flight.erase(account);
    }
  };

  // A live pair's hold on the campaign budget: finish() replaces its
  // reservation with the usage collected; when the request ends any other way
  // (an exception, a stream that never ran) the destructor does it.
  struct PairHold {
    Impl& s;
    int64_t campaign, account;
    std::string reservation;  // empty: no budget
    std::vector<arena::LiveUsage> usage;
    bool finished = false;
    PairHold(Impl& s, int64_t campaign, int64_t account, std::string reservation)
        : s(s), campaign(campaign), account(account), reservation(std::move(reservation)) {}
    PairHold(const PairHold&) = delete;
    PairHold& operator=(const PairHold&) = delete;
    void add(const std::string& model, const arena::TokenUsage& u) {
      usage.push_back({model, u.prompt_tokens, u.completion_tokens, u.counted});
    }
    void finish() {
      if (finished) return;
      finished = true;
      s.store.finish_live_pair(campaign, account, reservation, usage);
    }
    ~PairHold() {
      try {
        finish();
      } catch (const std::exception& e) {  // it lapses at its expiry instead
        std::fprintf(stderr, "kaival serve: releasing a live reservation: %s\n", e.what());
      }
    }
  };

  // A live prompt that passed every check: the two models (random, random
  // sides), their reservation against the budget.
  struct LiveStart {
    arena::CampaignModel a, b;
    std::shared_ptr<InFlight> in_flight;
    std::unique_ptr<PairHold> hold;
  };

  // How long a pair's reservation outlives a server that stopped mid-pair:
  // longer than any pair can run (every try of both backends, the pauses between).
  std::chrono::milliseconds reservation_hold(const arena::LiveCampaign& live) const {
    double timeout_s = 0;
    for (const auto& m : live.models) timeout_s = std::max(timeout_s, m.backend->timeout_s);
    const double tries = 1 + std::max(0, opt.live_retries);
    const double pause_s = live_pool_options(opt).retry_after_max_s;
    return std::chrono::milliseconds(static_cast<int64_t>(1000 * (tries * (timeout_s + pause_s) + 60)));
  }

  // The checks before any backend is asked (live on, prompt, one in flight,
  // hourly cap, budget). 0 = `out` is ready, else an HTTP status with a UI
  // string key in `error`.
  int start_live(const Ctx& c, const arena::CampaignInfo& cp, const std::string& prompt, LiveStart& out,
                 std::string& error) {
    arena::LiveCampaign live = store.live_campaign(cp.id);
    if (!live.enabled || live.models.size() < 2) {
      error = "live_off";
      return 404;
    }
    if (prompt.find_first_not_of(" \t\r\n") == std::string::npos) {
      error = "live_empty";
      return 400;
    }
    auto chars = utf8_code_points(prompt);
    if (!chars || *chars > static_cast<size_t>(live.max_prompt_chars)) {
      error = "live_long";
      return 400;
    }
    const int64_t account = c.session->account.id;
    {
      std::lock_guard lk(live_mu);
      if (!live_in_flight.insert(account).second) {
        error = "live_busy";
        return 429;
      }
    }
    out.in_flight = std::make_shared<InFlight>(*this, account);
    if (store.live_attempts(account, std::chrono::hours(1)) >= live.per_account_per_hour) {
      error = "live_cap";
      return 429;
    }
    // Two models whose worst case fits the budget, reserved before any backend
    // is asked; none: the campaign's budget is spent (or held by pairs in flight).
    std::optional<arena::LivePair> pair = store.start_live_pair(cp.id, account, prompt, reservation_hold(live));
    if (!pair) {
      error = "live_budget";
      return 403;
    }
    out.a = std::move(pair->a);
    out.b = std::move(pair->b);
    out.hold = std::make_unique<PairHold>(*this, cp.id, account, std::move(pair->reservation));
    return 0;
  }

  // A voter's own prompt: both models asked in parallel, then one transaction
  // stores prompt, answers and battle (or nothing, when a backend failed).
  // 0 = a battle in `out`, else an HTTP status with a UI string key in `error`.
  int do_live(const Ctx& c, const arena::CampaignInfo& cp, const std::string& prompt, const std::string& ip,
              std::optional<arena::BattleView>& out, std::string& error) {
    LiveStart start;
    if (int code = start_live(c, cp, prompt, start, error)) return code;
    const int64_t account = c.session->account.id;
    const arena::CampaignModel& ma = start.a;
    const arena::CampaignModel& mb = start.b;
    auto ask = [this, &prompt](const arena::CampaignModel& m) { return backends.answer(m, prompt); };
    auto fa = std::async(std::launch::async, ask, std::cref(ma));
    auto fb = std::async(std::launch::async, ask, std::cref(mb));
    std::string answer_a, answer_b, failure;
    for (auto* f : {&fa, &fb}) {
      const arena::CampaignModel& m = f == &fa ? ma : mb;
      try {
        arena::BackendPool::Answer got = f->get();
        start.hold->add(m.id, got.usage);
        (f == &fa ? answer_a : answer_b) = std::move(got.text);
      } catch (const std::exception& e) {
        failure += (failure.empty() ? "" : "; ") + std::string(e.what());
      }
    }
    start.hold->finish();  // the reservation becomes what the answers cost
    if (!failure.empty()) {
      // The voter learns only that it failed (a URL or message could reveal a model).
      std::fprintf(stderr, "kaival serve: live prompt in %s: %s\n", cp.name.c_str(), failure.c_str());
      store.record_live_failure(cp.id, account, failure);
      error = "live_failed";
      return 502;
    }
    arena::LiveBattle r = store.add_live_battle(cp.id, account, ip, prompt, {ma, answer_a}, {mb, answer_b});
    if (!r.battle) {
      error = "live_leak";
      return 422;
    }
    out = std::move(r.battle);
    return 0;
  }

  // ---- streamed live battles ----
  // Both answers go to the page as server-sent events while the backends write
  // them; events name sides (a, b), never models:
  //   event: start  {"prompt"}            event: piece {"side", "text"}
  //   event: done   {"side"}              event: error {"side", "message"}   (that answer broke off)
  //   event: stopped {"side"}             cancelled: the other side broke off, or the voter left
  //   event: battle {"battle"}            the pair is stored: the vote may start
  //   event: void   {"error", "message"}  nothing to vote on (a failure or an identity leak)
  struct LiveStream {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::string> frames;  // SSE frames not yet written
    int finished = 0;                // sides done or failed
    std::atomic<bool> cancel{false};
    std::string text[2];
    arena::TokenUsage usage[2];
    std::string failure[2];  // why a side failed (logs and audit only)

    void push(std::string frame, bool side_finished = false) {
      {
        std::lock_guard lk(mu);
        frames.push_back(std::move(frame));
        if (side_finished) ++finished;
      }
      cv.notify_all();
    }
  };

  static std::string sse(const char* event, const json& data) {
    // Model output need not be valid UTF-8.
    return fmt::format("event: {}\ndata: {}\n\n", event, data.dump(-1, ' ', false, json::error_handler_t::replace));
  }

  // The checks both live JSON APIs make before anything else: signed in,
  // CSRF token, an arena campaign, a {"prompt": string} body. On failure the
  // reply is written and nullopt returned.
  std::optional<std::pair<arena::CampaignInfo, std::string>> live_api_request(const httplib::Request& req,
                                                                              httplib::Response& res, const Ctx& c) {
    auto refuse = [&](int status, const char* why) {
      json_reply(res, status, {{"error", why}});
      return std::nullopt;
    };
    if (!c.session) return refuse(401, "sign in first");
    if (!csrf_ok(c, req)) return refuse(403, "CSRF token missing or wrong");
    auto cp = find_campaign(req.matches[1], "arena");
    if (!cp) return refuse(404, "no such arena campaign");
    json j = json::parse(req.body, nullptr, false);
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string())
      return refuse(400, "expected {\"prompt\"}");
    return std::pair{std::move(*cp), j["prompt"].get<std::string>()};
  }

  void api_live_stream(const httplib::Request& req, httplib::Response& res) {
    Ctx c = context(req, res);
    auto in = live_api_request(req, res, c);
    if (!in) return;
    const arena::CampaignInfo* cp = &in->first;
    std::string prompt = std::move(in->second);
    auto start = std::make_shared<LiveStart>();
    std::string error;
    Lang lang = c.page.lang;
    if (int code = start_live(c, *cp, prompt, *start, error))
      return json_reply(res, code, {{"error", error}, {"message", t(lang, error)}});
    res.status = 200;
    res.set_header("X-Accel-Buffering", "no");  // proxies must not hold the pieces back
    const int64_t account = c.session->account.id;
    const int64_t campaign = cp->id;
    const std::string campaign_name = cp->name, ip = req.remote_addr;
    // The provider runs once, after this handler returns, on the same worker thread.
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, start, prompt, account, campaign, campaign_name, ip, lang](size_t, httplib::DataSink& sink) {
          try {
            run_live_stream(*start, prompt, account, campaign, campaign_name, ip, lang, sink);
          } catch (const std::exception& e) {
            // The status line is sent already: end the stream with a void pair.
            std::fprintf(stderr, "kaival serve: live stream in %s: %s\n", campaign_name.c_str(), e.what());
            start->in_flight.reset();
            std::string frame = sse("void", {{"error", "live_failed"}, {"message", t(lang, "live_failed")}});
            sink.write(frame.data(), frame.size());
          }
          sink.done();
          return true;
        });
  }

  void run_live_stream(LiveStart& start, const std::string& prompt, int64_t account, int64_t campaign,
                       const std::string& campaign_name, const std::string& ip, Lang lang, httplib::DataSink& sink) {
    LiveStream st;
    bool writable = true;
    auto write = [&](const std::string& frame) {
      if (writable && !(sink.is_writable() && sink.write(frame.data(), frame.size()))) writable = false;
      if (!writable) st.cancel = true;  // the voter left: stop paying for answers nobody reads
    };
    write(sse("start", {{"prompt", prompt}}));
    const arena::CampaignModel* models[2] = {&start.a, &start.b};
    std::thread sides[2];
    for (int k = 0; k < 2; ++k)
      sides[k] = std::thread([this, &st, &prompt, k, lang, m = models[k]] {
        const char* side = k == 0 ? "a" : "b";
        arena::ChatStreamOptions o;
        o.max_retries = std::max(0, opt.live_retries);
        o.cancel = &st.cancel;
        try {
          arena::StreamedAnswer got = arena::stream_answer(
              *m, prompt, [&](std::string_view piece) {
                st.push(sse("piece", {{"side", side}, {"text", std::string(piece)}}));
                return !st.cancel.load() && !stopping.load();
              }, o);
          st.text[k] = std::move(got.text);
          st.usage[k] = got.usage;
          st.push(sse("done", {{"side", side}}), true);
        } catch (const arena::StreamFailure& e) {
          st.usage[k] = e.usage;
          st.failure[k] = e.what();
          // Stopped because the pair is void already (or the voter left): not this side's fault.
          if (e.cancelled) return st.push(sse("stopped", {{"side", side}}), true);
          // The battle is void either way: the other side need not finish.
          st.cancel = true;
          st.push(sse("error", {{"side", side}, {"message", t(lang, "live_side_failed")}}), true);
        } catch (const std::exception& e) {
          st.failure[k] = e.what();
          st.cancel = true;
          st.push(sse("error", {{"side", side}, {"message", t(lang, "live_side_failed")}}), true);
        }
      });
    for (;;) {
      std::deque<std::string> frames;
      bool all_done;
      {
        std::unique_lock lk(st.mu);
        st.cv.wait_for(lk, std::chrono::milliseconds(500), [&] { return !st.frames.empty() || st.finished == 2; });
        frames.swap(st.frames);
        all_done = st.finished == 2;
      }
      for (const auto& f : frames) write(f);
      if (stopping.load()) st.cancel = true;
      if (all_done) break;  // a side's last frame is queued before it counts as finished
    }
    for (auto& th : sides) th.join();
    for (int k = 0; k < 2; ++k)
      if (st.usage[k].completion_tokens > 0 || st.usage[k].prompt_tokens > 0 || st.failure[k].empty())
        start.hold->add(models[k]->id, st.usage[k]);
    start.hold->finish();  // the reservation becomes what the answers cost (a void pair's too)
    std::string failure;
    for (int k = 0; k < 2; ++k)
      if (!st.failure[k].empty()) failure += (failure.empty() ? "" : "; ") + st.failure[k];
    if (!writable && failure.empty()) failure = "the voter left before both answers were complete";
    // The voter may ask again as soon as the last frame arrives: the pair is
    // no longer in flight once it is stored or voided, not when the
    // connection is torn down later.
    auto last = [&](const std::string& frame) {
      start.in_flight.reset();
      write(frame);
    };
    if (!failure.empty()) {
      std::fprintf(stderr, "kaival serve: live prompt in %s: %s\n", campaign_name.c_str(), failure.c_str());
      store.record_live_failure(campaign, account, failure);
      return last(sse("void", {{"error", "live_failed"}, {"message", t(lang, "live_failed")}}));
    }
    arena::LiveBattle r =
        store.add_live_battle(campaign, account, ip, prompt, {*models[0], st.text[0]}, {*models[1], st.text[1]});
    if (!r.battle) return last(sse("void", {{"error", "live_leak"}, {"message", t(lang, "live_leak")}}));
    last(sse("battle", {{"battle", r.battle->id}}));
  }

  void arena_live(const httplib::Request& req, httplib::Response& res) {
    Ctx c = context(req, res);
    if (!c.session) return error_page(res, c, 401, "sign in first");
    if (!csrf_ok(c, req)) return error_page(res, c, 403, "CSRF token missing or wrong");
    auto cp = find_campaign(req.matches[1], "arena");
    if (!cp) return error_page(res, c, 404, "no such arena campaign");
    std::string prompt = req.get_param_value("prompt");
    std::optional<arena::BattleView> b;
    std::string error;
    int code = do_live(c, *cp, prompt, req.remote_addr, b, error);
    Lang l = c.page.lang;
    std::string title = cp->title.empty() ? cp->name : cp->title;
    if (code) {
      std::string body = fmt::format("<p class=\"error\" role=\"alert\">{}</p>", esc(t(l, error.c_str())));
      if (code != 404) body += live_form(c, *cp, store.live_campaign(cp->id), prompt);
      return html(res, c, title, body, code);
    }
    html(res, c, title, battle_html(c, *cp, *b));
  }

  void api_live(const httplib::Request& req, httplib::Response& res) {
    Ctx c = context(req, res);
    auto in = live_api_request(req, res, c);
    if (!in) return;
    std::optional<arena::BattleView> b;
    std::string error;
    int code = do_live(c, in->first, in->second, req.remote_addr, b, error);
    if (code) return json_reply(res, code, {{"error", error}, {"message", t(Lang::En, error)}});
    json out = {{"battle", b->id}, {"prompt", b->prompt}, {"answer_a", b->answer_a}, {"answer_b", b->answer_b}};
    res.status = 200;
    // Model output need not be valid UTF-8.
    res.set_content(out.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  }

  // Shared by the form and the JSON API: 0 = stored, else an HTTP status.
  int do_vote(const Ctx& c, const std::string& battle, const std::string& winner, const std::string& ip,
              std::string& status) {
    if (winner != "model_a" && winner != "model_b" && winner != "tie" && winner != "both_bad") {
      status = "bad_winner";
      return 400;
    }
    if (battle.empty() || battle.size() > 64) {
      status = "unknown_battle";
      return 404;
    }
    arena::VoteStatus s = store.vote({battle, c.session->account.id, ip, winner});
    status = arena::vote_status_name(s);
    switch (s) {
      case arena::VoteStatus::Stored: return 0;
      case arena::VoteStatus::AlreadyVoted: return 409;
      case arena::VoteStatus::UnknownBattle: return 404;
      case arena::VoteStatus::NotYourBattle: return 403;
      default: return 429;
    }
  }

  void arena_vote(const httplib::Request& req, httplib::Response& res) {
    Ctx c = context(req, res);
    std::string name = req.matches[1];
    if (!c.session) return error_page(res, c, 401, "sign in first");
    if (!csrf_ok(c, req)) return error_page(res, c, 403, "CSRF token missing or wrong");
    auto cp = find_campaign(name, "arena");
    if (!cp) return error_page(res, c, 404, "no such arena campaign");
    std::string status;
    int code = do_vote(c, req.get_param_value("battle"), req.get_param_value("winner"), req.remote_addr, status);
    if (code) return error_page(res, c, code, status);
    redirect(res, "/arena/" + name + "?voted=1");
  }

  void api_battle(const httplib::Request& req, httplib::Response& res) {
    Ctx c = context(req, res);
    if (!c.session) return json_reply(res, 401, {{"error", "sign in first"}});
    if (!csrf_ok(c, req)) return json_reply(res, 403, {{"error", "CSRF token missing or wrong"}});
    auto cp = find_campaign(req.matches[1], "arena");
    if (!cp) return json_reply(res, 404, {{"error", "no such arena campaign"}});
    auto b = store.new_battle(cp->id, c.session->account.id, req.remote_addr);
    if (!b) return json_reply(res, 404, {{"error", "no pair available"}});
    json_reply(res, 200, {{"battle", b->id}, {"prompt", b->prompt}, {"answer_a", b->answer_a}, {"answer_b", b->answer_b}});
  }

  void api_vote(const httplib::Request& req, httplib::Response& res) {
    Ctx c = context(req, res);
    if (!c.session) return json_reply(res, 401, {{"error", "sign in first"}});
    if (!csrf_ok(c, req)) return json_reply(res, 403, {{"error", "CSRF token missing or wrong"}});
    json j = json::parse(req.body, nullptr, false);
    if (!j.is_object() || !j.contains("battle") || !j["battle"].is_string() || !j.contains("winner") ||
        !j["winner"].is_string())
      return json_reply(res, 400, {{"error", "expected {\"battle\", \"winner\"}"}});
    std::string status;
    int code = do_vote(c, j["battle"], j["winner"], req.remote_addr, status);
    json_reply(res, code ? code : 200, {{"status", status}});
  }

  // ---- leaderboard ----
  void leaderboard(const httplib::Request& req, httplib::Response& res) {
    Ctx c = context(req, res);
    auto cp = find_campaign(req.matches[1], "arena");
    if (!cp) return error_page(res, c, 404, "no such arena campaign");
    auto r = cached_ratings(cp->id);
    Lang l = c.page.lang;
    std::vector<ChartRow> rows;
    for (size_t i = 0; i < r.models.size(); ++i) {
      const auto& m = r.board.models[i];
      rows.push_back({r.models[i], m.rating, m.ci_low, m.ci_high, m.rank});
    }
    std::vector<size_t> order(rows.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rows[a].rating > rows[b].rating; });
    std::string body;
    if (cp->synthetic) body += fmt::format("<p class=\"synthetic\">{}</p>", esc(t(l, "synthetic")));
    body += fmt::format("<p class=\"note\">{} · {}: {} · bootstrap {}</p>", esc(t(l, "rank_note")), esc(t(l, "battles")),
                        r.battles, r.board.resamples);
    body += fmt::format(
        "<table id=\"ratings\"><caption>{}</caption><thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th>"
        "<th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
        esc(t(l, "chart")), esc(t(l, "rank")), esc(t(l, "model")), esc(t(l, "rating")), esc(t(l, "ci")),
        esc(t(l, "battles")), esc(t(l, "win_rate")));
    for (size_t i : order) {
      const auto& m = r.board.models[i];
      body += fmt::format("<tr><td>{}</td><th scope=\"row\">{}</th><td>{:.1f}</td><td>{:.1f} – {:.1f}</td><td>{}</td><td>{:.1f}%</td></tr>",
                          m.rank, esc(r.models[i]), m.rating, m.ci_low, m.ci_high, m.battles, m.win_rate * 100);
    }
    body += "</tbody></table>";
    body += fmt::format("<h2>{}</h2>{}", esc(t(l, "chart")), leaderboard_svg(rows, l));
    body += fmt::format("<h2>{}</h2>{}", esc(t(l, "heatmap")), heatmap_svg(r.models, r.board.win_rate, l));
    html(res, c, std::string(t(l, "leaderboard")) + " · " + (cp->title.empty() ? cp->name : cp->title), body);
  }

  void api_leaderboard(const httplib::Request& req, httplib::Response& res) {
    auto cp = find_campaign(req.matches[1], "arena");
    if (!cp) return json_reply(res, 404, {{"error", "no such arena campaign"}});
    auto r = cached_ratings(cp->id);
    json models = json::array();
    for (size_t i = 0; i < r.models.size(); ++i) {
      const auto& m = r.board.models[i];
      models.push_back({{"model", r.models[i]}, {"rating", m.rating}, {"ci_low", m.ci_low}, {"ci_high", m.ci_high},
                        {"rank", m.rank}, {"battles", m.battles}, {"win_rate", m.win_rate}});
    }
    json_reply(res, 200, {{"campaign", cp->name}, {"synthetic", cp->synthetic}, {"battles", r.battles}, {"models", models}});
  }

  // ---- expert review ----
  bool require_role(const Ctx& c, httplib::Response& res, std::initializer_list<Role> roles) {
    if (!c.session) {
      redirect(res, "/login");
      return false;
    }
    for (Role r : roles)
      if (c.session->account.role == r) return true;
    error_page(res, c, 403, t(c.page.lang, "forbidden"));
    return false;
  }

  void review_list(const httplib::Request& req, httplib::Response& res) {
    Ctx c = context(req, res);
    if (!require_role(c, res, {Role::Expert, Role::Admin})) return;
    Lang l = c.page.lang;
    auto items = store.assignments(c.session->account.id);
    std::string body = fmt::format("<h2>{}</h2>", esc(t(l, "assigned")));
    if (items.empty()) body += fmt::format("<p>{}</p>", esc(t(l, "none_assigned")));
    body += "<ul>";
    for (const auto& a : items)
      body += fmt::format("<li><a href=\"/review/{}\">{}</a> ({}) — {}</li>", a.item_id, esc(a.title), esc(a.campaign),
                          esc(t(l, a.done ? "done" : "todo")));
    body += "</ul>";
    html(res, c, t(l, "review"), body);
  }

  std::optional<arena::ReviewAssignment> assigned(const Ctx& c, const std::string& id_text) {
    for (auto& a : store.assignments(c.session->account.id))
      if (std::to_string(a.item_id) == id_text) return a;
    return std::nullopt;
  }

  void review_form(const httplib::Request& req, httplib::Response& res) {
    Ctx c = context(req, res);
    if (!require_role(c, res, {Role::Expert, Role::Admin})) return;
    auto a = assigned(c, req.matches[1]);
    if (!a) return error_page(res, c, 404, "item not assigned to you");
    Lang l = c.page.lang;
    arena::Rubric rub = store.rubric(a->campaign_id);
    std::string body;
    if (req.has_param("saved")) body += fmt::format("<p class=\"ok\" role=\"status\">{}</p>", esc(t(l, "saved")));
    body += fmt::format("<div class=\"answer\">{}</div><form method=\"post\" action=\"/review/{}\">"
                        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
                        esc(a->content), a->item_id, esc(c.session->csrf));
    for (size_t k = 0; k < rub.criteria.size(); ++k) {
      const auto& cr = rub.criteria[k];
      body += fmt::format("<fieldset><legend>{} (×{})</legend>", esc(cr.name), cr.weight);
      for (double v = cr.min; v <= cr.max + 1e-9; v += 1) {
        std::string anchor;
        auto it = cr.anchors.find(v);
        if (it != cr.anchors.end()) anchor = " — " + esc(it->second);
        body += fmt::format("<label><input type=\"radio\" name=\"score_{0}\" value=\"{1}\" required> {1}{2}</label>", k, v, anchor);
      }
      body += fmt::format("<label for=\"rationale_{0}\">{1}</label><textarea id=\"rationale_{0}\" name=\"rationale_{0}\" rows=\"3\"></textarea></fieldset>",
                          k, esc(t(l, "rationale")));
    }
    body += fmt::format("<p><button type=\"submit\">{}</button></p></form>", esc(t(l, "submit")));
    html(res, c, a->title, body);
  }

  void review_post(const httplib::Request& req, httplib::Response& res) {
    Ctx c = context(req, res);
    if (!require_role(c, res, {Role::Expert, Role::Admin})) return;
    if (!csrf_ok(c, req)) return error_page(res, c, 403, "CSRF token missing or wrong");
    auto a = assigned(c, req.matches[1]);
    if (!a) return error_page(res, c, 404, "item not assigned to you");
    arena::Rubric rub = store.rubric(a->campaign_id);
    std::map<std::string, std::pair<double, std::string>> scores;
    for (size_t k = 0; k < rub.criteria.size(); ++k) {
      std::string v = req.get_param_value("score_" + std::to_string(k));
      if (v.empty()) continue;
      char* end = nullptr;
      double d = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end || !std::isfinite(d)) return error_page(res, c, 400, "score is not a number");
      scores[rub.criteria[k].name] = {d, req.get_param_value("rationale_" + std::to_string(k))};
    }
    try {
      store.submit_review(c.session->account.id, a->item_id, scores);
    } catch (const FormatError& e) {
      return error_page(res, c, 400, e.problem());
    }
    redirect(res, fmt::format("/review/{}?saved=1", a->item_id));
  }

  // ---- admin ----
  void admin_page(const httplib::Request& req, httplib::Response& res, const std::string& message = "") {
    Ctx c = context(req, res);
    if (!require_role(c, res, {Role::Admin})) return;
    Lang l = c.page.lang;
    std::string csrf = esc(c.session->csrf);
    std::string body = message.empty() ? "" : fmt::format("<p class=\"ok\" role=\"status\">{}</p>", message);
    body += fmt::format("<h2>{}</h2><ul>", esc(t(l, "campaigns")));
    for (const auto& cp : store.campaigns()) {
      body += fmt::format("<li>{} ({})", esc(cp.name), esc(cp.kind));
      if (cp.kind == "arena") {
        body += fmt::format(" <form class=\"inline\" method=\"post\" action=\"/admin/suspects/{}\"><input type=\"hidden\" "
                            "name=\"csrf\" value=\"{}\"><button type=\"submit\">{}</button></form>",
                            esc(cp.name), csrf, esc(t(l, "suspects")));
        body += budget_html(l, cp);
      }
      else
        body += fmt::format(" <form class=\"inline\" method=\"post\" action=\"/admin/assign/{}\"><input type=\"hidden\" "
                            "name=\"csrf\" value=\"{}\"><button type=\"submit\">assign</button></form>",
                            esc(cp.name), csrf);
      body += "</li>";
    }
    body += fmt::format(
        "</ul><h2>{0}</h2><form method=\"post\" action=\"/admin/campaign\"><input type=\"hidden\" name=\"csrf\" value=\"{1}\">"
        "<label for=\"yaml\">YAML</label><textarea id=\"yaml\" name=\"yaml\" rows=\"12\" required></textarea>"
        "<p><button type=\"submit\">{2}</button></p></form>"
        "<h2>{3}</h2><form method=\"post\" action=\"/admin/invite\"><input type=\"hidden\" name=\"csrf\" value=\"{1}\">"
        "<label for=\"role\">{4}</label><select id=\"role\" name=\"role\"><option>voter</option><option>expert</option>"
        "<option>admin</option></select><label for=\"aff\">{5}</label><input id=\"aff\" name=\"affiliation\">"
        "<p><button type=\"submit\">{3}</button></p></form>",
        esc(t(l, "upload")), csrf, esc(t(l, "submit")), esc(t(l, "invite")), esc(t(l, "role")), esc(t(l, "affiliation")));
    html(res, c, t(l, "admin"), body);
  }

  // Live spending against the budget, for the admin page.
  std::string budget_html(Lang l, const arena::CampaignInfo& cp) {
    arena::LiveCampaign live = store.live_campaign(cp.id);
    if (live.models.empty()) return "";
    arena::BudgetStatus b = store.live_budget(cp.id);
    std::string out = fmt::format("<div class=\"budget\" id=\"budget-{}\"><strong>{}</strong>: {} {} · ", esc(cp.name),
                                  esc(t(l, "budget")), esc(t(l, "completion_tokens")), b.completion_tokens);
    // Reserved: the worst case of pairs in flight, counted against the caps until they finish.
    out += fmt::format("{} {} ({} {}) · ", esc(t(l, "reserved")), b.reserved_completion_tokens, esc(t(l, "in_flight")),
                       b.pairs_in_flight);
    if (b.remaining_tokens)
      out += fmt::format("{} {}", esc(t(l, "remaining")), *b.remaining_tokens);
    else
      out += esc(t(l, "no_cap"));
    if (b.limits.max_cost > 0 || b.cost > 0)
      out += fmt::format(" · {} {:.4f} ({} {:.4f}){}", esc(t(l, "cost")), b.cost, esc(t(l, "reserved")), b.reserved_cost,
                         b.remaining_cost ? fmt::format(" ({} {:.4f})", esc(t(l, "remaining")), *b.remaining_cost) : "");
    if (b.exhausted || b.available.size() < 2) out += fmt::format(" · <strong>{}</strong>", esc(t(l, "budget_spent")));
    out += "<ul>";
    for (const auto& m : b.models)
      out += fmt::format("<li>{}: {} {} / {} {} / {} {}{}{}</li>", esc(m.model), m.requests, esc(t(l, "requests")),
                         m.completion_tokens, esc(t(l, "completion_tokens")), esc(t(l, "reserved")),
                         m.reserved_completion_tokens,
                         m.remaining_tokens ? fmt::format(" ({} {})", esc(t(l, "remaining")), *m.remaining_tokens) : "",
                         m.spent ? fmt::format(" · {}", esc(t(l, "budget_spent"))) : "");
    return out + "</ul></div>";
  }

  static json budget_json(const arena::BudgetStatus& b) {
    json models = json::array();
    for (const auto& m : b.models) {
      json j = {{"model", m.model}, {"requests", m.requests}, {"prompt_tokens", m.prompt_tokens},
                {"completion_tokens", m.completion_tokens}, {"cost", m.cost}, {"spent", m.spent},
                {"reserved_prompt_tokens", m.reserved_prompt_tokens},
                {"reserved_completion_tokens", m.reserved_completion_tokens}, {"reserved_cost", m.reserved_cost}};
      j["remaining_completion_tokens"] = m.remaining_tokens ? json(*m.remaining_tokens) : json(nullptr);
      models.push_back(std::move(j));
    }
    json limits = {{"max_completion_tokens", b.limits.max_completion_tokens},
                   {"max_completion_tokens_per_model", b.limits.max_completion_tokens_per_model},
                   {"max_cost", b.limits.max_cost},
                   {"cost_per_1m_input", b.limits.cost_per_1m_input},
                   {"cost_per_1m_output", b.limits.cost_per_1m_output}};
    return {{"limits", limits},
            {"prompt_tokens", b.prompt_tokens},
            {"completion_tokens", b.completion_tokens},
            {"cost", b.cost},
            {"pairs_in_flight", b.pairs_in_flight},
            {"reserved_prompt_tokens", b.reserved_prompt_tokens},
            {"reserved_completion_tokens", b.reserved_completion_tokens},
            {"reserved_cost", b.reserved_cost},
            {"remaining_completion_tokens", b.remaining_tokens ? json(*b.remaining_tokens) : json(nullptr)},
            {"remaining_cost", b.remaining_cost ? json(*b.remaining_cost) : json(nullptr)},
            {"exhausted", b.exhausted || b.available.size() < 2},
            {"available_models", b.available},
            {"models", models}};
  }

  void api_budget(const httplib::Request& req, httplib::Response& res) {
    Ctx c = context(req, res);
    if (!c.session) return json_reply(res, 401, {{"error", "sign in first"}});
    if (c.session->account.role != Role::Admin) return json_reply(res, 403, {{"error", "admins only"}});
    auto cp = find_campaign(req.matches[1], "arena");
    if (!cp) return json_reply(res, 404, {{"error", "no such arena campaign"}});
    json j = budget_json(store.live_budget(cp->id));
    j["campaign"] = cp->name;
    json_reply(res, 200, j);
  }

  bool admin_post_ok(const Ctx& c, const httplib::Request& req, httplib::Response& res) {
    if (!require_role(c, res, {Role::Admin})) return false;
    if (!csrf_ok(c, req)) {
      error_page(res, c, 403, "CSRF token missing or wrong");
      return false;
    }
    return true;
  }

  void admin_campaign(const httplib::Request& req, httplib::Response& res) {
    Ctx c = context(req, res);
    if (!admin_post_ok(c, req, res)) return;
    try {
      arena::CampaignFile f = arena::parse_campaign(req.get_param_value("yaml"), "upload");
      int64_t id = store.add_campaign(f, c.session->account.id);
      if (f.kind == "review") store.assign_reviewers(id);
    } catch (const Error& e) {
      return error_page(res, c, 400, e.what());
    }
    redirect(res, "/admin");
  }

  void admin_invite(const httplib::Request& req, httplib::Response& res) {
    Ctx c = context(req, res);
    if (!admin_post_ok(c, req, res)) return;
    auto role = arena::parse_role(req.get_param_value("role"));
    if (!role) return error_page(res, c, 400, "unknown role");
    std::string token = store.create_invitation(*role, req.get_param_value("affiliation"), c.session->account.id);
    // Shown once to the admin; only its hash is stored.
    admin_page(req, res, fmt::format("invitation: <code>{}</code> (/join?token={})", esc(token), esc(token)));
  }

  void admin_suspects(const httplib::Request& req, httplib::Response& res) {
    Ctx c = context(req, res);
    if (!admin_post_ok(c, req, res)) return;
    auto cp = find_campaign(req.matches[1], "arena");
    if (!cp) return error_page(res, c, 404, "no such arena campaign");
    auto found = store.detect_suspects(cp->id, {}, c.session->account.id);
    {
      std::lock_guard lk(cache_mu);
      cache.erase(cp->id);
    }
    std::string msg = fmt::format("{} quarantined:", found.size());
    for (auto& s : found) msg += fmt::format(" {} ({}, {} votes)", esc(s.account), esc(s.reason), s.votes);
    admin_page(req, res, msg);
  }

  void admin_assign(const httplib::Request& req, httplib::Response& res) {
    Ctx c = context(req, res);
    if (!admin_post_ok(c, req, res)) return;
    auto cp = find_campaign(req.matches[1], "review");
    if (!cp) return error_page(res, c, 404, "no such review campaign");
    int short_items = store.assign_reviewers(cp->id);
    admin_page(req, res, fmt::format("assigned; {} item(s) short of reviewers", short_items));
  }

  // ---- wiring ----
  template <typename F>
  httplib::Server::Handler wrap(F f) {
    return [this, f](const httplib::Request& req, httplib::Response& res) {
      try {
        (this->*f)(req, res);
      } catch (const std::exception& e) {
        // The message may name the database file; never request data or secrets.
        std::fprintf(stderr, "kaival serve: %s %s: %s\n", req.method.c_str(), req.path.c_str(), e.what());
        res.status = 500;
        res.set_content("internal error", "text/plain");
      }
    };
  }

  void routes() {
    http.set_payload_max_length(opt.max_body_bytes);
    http.set_read_timeout(10, 0);
    http.set_write_timeout(10, 0);
    // httplib writes headers and body separately: without TCP_NODELAY the body
    // waits for the client's delayed ACK (~40 ms) on every answer.
    http.set_tcp_nodelay(true);
    // httplib closes a keep-alive connection after 5 requests by default, so
    // busy clients reconnect every 2-3 votes; idle ones free their worker
    // thread after 2 s.
    http.set_keep_alive_max_count(100);
    http.set_keep_alive_timeout(2);
    http.set_socket_options([this](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      listen_fd = sock;
    });
    const size_t threads = static_cast<size_t>(std::max(2, opt.threads));
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!requests.allow(req.remote_addr)) {
        res.status = 429;
        res.set_content("too many requests", "text/plain");
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
      res.set_header("Content-Security-Policy",
                     "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; "
                     "form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
      res.set_header("X-Content-Type-Options", "nosniff");
      res.set_header("X-Frame-Options", "DENY");
      res.set_header("Referrer-Policy", "no-referrer");
      res.set_header("Cache-Control", "no-store");
    });
    http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      res.set_content(fmt::format("HTTP {}", res.status), "text/plain");
      return httplib::Server::HandlerResponse::Handled;
    }));
    if (opt.log_requests)
      http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
        std::fprintf(stderr, "%s %s %d\n", req.method.c_str(), req.path.c_str(), res.status);
      });
    http.Get("/static/arena.css", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(kStylesheet, "text/css");
    });
    http.Get("/static/arena.js", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(kScript, "text/javascript");
    });
    http.Get("/", wrap(&Impl::home));
    http.Get("/login", wrap(&Impl::login_get));
    http.Post("/login", wrap(&Impl::login_post));
    http.Post("/api/login", wrap(&Impl::api_login));
    http.Post("/logout", wrap(&Impl::logout));
    http.Get("/join", wrap(&Impl::join_get));
    http.Post("/join", wrap(&Impl::join_post));
    http.Get(R"(/arena/([A-Za-z0-9._-]+))", wrap(&Impl::arena_page));
    http.Post(R"(/arena/([A-Za-z0-9._-]+)/vote)", wrap(&Impl::arena_vote));
    http.Post(R"(/api/arena/([A-Za-z0-9._-]+)/battle)", wrap(&Impl::api_battle));
    http.Post(R"(/api/arena/([A-Za-z0-9._-]+)/vote)", wrap(&Impl::api_vote));
    http.Post(R"(/arena/([A-Za-z0-9._-]+)/live)", wrap(&Impl::arena_live));
    http.Post(R"(/api/arena/([A-Za-z0-9._-]+)/live)", wrap(&Impl::api_live));
    http.Post(R"(/api/arena/([A-Za-z0-9._-]+)/live/stream)", wrap(&Impl::api_live_stream));
    http.Get(R"(/api/admin/budget/([A-Za-z0-9._-]+))", wrap(&Impl::api_budget));
    http.Get(R"(/leaderboard/([A-Za-z0-9._-]+))", wrap(&Impl::leaderboard));
    http.Get(R"(/api/leaderboard/([A-Za-z0-9._-]+))", wrap(&Impl::api_leaderboard));
    http.Get("/review", wrap(&Impl::review_list));
    http.Get(R"(/review/(\d+))", wrap(&Impl::review_form));
    http.Post(R"(/review/(\d+))", wrap(&Impl::review_post));
    http.Get("/admin", wrap(&Impl::admin_get));
    http.Post("/admin/campaign", wrap(&Impl::admin_campaign));
    http.Post("/admin/invite", wrap(&Impl::admin_invite));
    http.Post(R"(/admin/suspects/([A-Za-z0-9._-]+))", wrap(&Impl::admin_suspects));
    http.Post(R"(/admin/assign/([A-Za-z0-9._-]+))", wrap(&Impl::admin_assign));
  }

  void login_get(const httplib::Request& req, httplib::Response& res) { login_form(req, res); }
  void join_get(const httplib::Request& req, httplib::Response& res) { join_form(req, res); }
  void admin_get(const httplib::Request& req, httplib::Response& res) { admin_page(req, res); }
};

ArenaServer::ArenaServer(ArenaStore& store, ArenaServerOptions options)
    : impl_(std::make_unique<Impl>(store, std::move(options))) {}

ArenaServer::~ArenaServer() { stop(); }

int ArenaServer::start() {
  Impl& s = *impl_;
  const int port = s.opt.port == 0 ? s.http.bind_to_any_port(s.opt.host)
                                   : (s.http.bind_to_port(s.opt.host, s.opt.port) ? s.opt.port : -1);
  if (port <= 0) fail<IoError>(fmt::format("{}:{}", s.opt.host, s.opt.port), "cannot bind the arena server");
  // httplib listens with a backlog of 5: a burst of connecting voters would see
  // dropped SYNs and 1 s retries. Listening again widens it.
  if (s.listen_fd >= 0) ::listen(s.listen_fd, 1024);
  s.listener = std::thread([&s] { s.http.listen_after_bind(); });
  while (!s.http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return port;
}

void ArenaServer::run_blocking() {
  // stop() joins the listener; here we only wait for it to finish.
  while (impl_->http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

void ArenaServer::stop() {
  Impl& s = *impl_;
  std::lock_guard lk(s.stop_mu);
  if (s.stopped) return;
  s.stopped = true;
  s.stopping = true;
  s.http.stop();
  if (s.listener.joinable()) s.listener.join();
}

}  // namespace kaival::server
