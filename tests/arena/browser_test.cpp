// The arena in real Chromium (Debian's /usr/bin/chromium, headless), driven
// over the DevTools protocol on a pipe (--remote-debugging-pipe): sign in with
// the form, vote with the keyboard and with a click, open the leaderboard,
// check the layout on desktop and phone widths, and check a screenshot; then
// a live prompt whose two answers stream into both panes before the vote opens.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../eval/mock_server.h"
#include "server/arena_server.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kChromium = "/usr/bin/chromium";

// Minimal DevTools client: JSON messages separated by NUL bytes.
class Browser {
 public:
  explicit Browser(const fs::path& profile) {
    int to_chrome[2], from_chrome[2];
    if (pipe(to_chrome) != 0 || pipe(from_chrome) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);  // its own process group, so the destructor can stop its helper processes too
      // Chromium reads commands on fd 3 and writes replies on fd 4.
      dup2(to_chrome[0], 3);
      dup2(from_chrome[1], 4);
      int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, STDOUT_FILENO);
      dup2(devnull, STDERR_FILENO);
      for (int fd = 5; fd < 256; ++fd) close(fd);
      std::string dir = "--user-data-dir=" + profile.string();
      execl(kChromium, kChromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
            "--no-first-run", "--disable-extensions", "--window-size=1280,900", dir.c_str(), "about:blank",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    setpgid(pid_, pid_);  // both sides, so the group exists whichever runs first
    close(to_chrome[0]);
    close(from_chrome[1]);
    out_ = to_chrome[1];
    in_ = from_chrome[0];
  }
  ~Browser() {
    if (out_ >= 0) close(out_);
    if (in_ >= 0) close(in_);
    if (pid_ > 0) {
      // The whole group: helper processes left running kept writing into the
      // profile while the test removed it ("Directory not empty").
      kill(-pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // Sends a command (to the attached page unless `browser_level`) and waits for its reply.
  json call(const std::string& method, const json& params = json::object(), bool browser_level = false) {
    json msg{{"id", ++next_id_}, {"method", method}, {"params", params}};
    if (!browser_level && !session_.empty()) msg["sessionId"] = session_;
    std::string text = msg.dump();
    text.push_back('\0');
    if (write(out_, text.data(), text.size()) != static_cast<ssize_t>(text.size())) throw std::runtime_error("pipe write");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      size_t nul;
      while ((nul = buf_.find('\0')) != std::string::npos) {
        json reply = json::parse(buf_.substr(0, nul), nullptr, false);
        buf_.erase(0, nul + 1);
        if (reply.is_object() && reply.value("id", -1) == next_id_) {
          if (reply.contains("error")) throw std::runtime_error(method + ": " + reply["error"].dump());
          return reply["result"];
        }
      }
      pollfd p{in_, POLLIN, 0};
      if (poll(&p, 1, 200) <= 0) continue;
      char chunk[65536];
      ssize_t n = read(in_, chunk, sizeof chunk);
      if (n <= 0) throw std::runtime_error("browser closed the pipe");
      buf_.append(chunk, static_cast<size_t>(n));
    }
    throw std::runtime_error(method + ": no reply in 20 s");
  }

  void open_page() {
    std::string target = call("Target.createTarget", {{"url", "about:blank"}}, true)["targetId"];
    session_ = call("Target.attachToTarget", {{"targetId", target}, {"flatten", true}}, true)["sessionId"];
  }

  json eval(const std::string& js) {
    json r = call("Runtime.evaluate", {{"expression", js}, {"returnByValue", true}, {"awaitPromise", true}});
    return r["result"].value("value", json());
  }

  // Polls `js` until it returns true (page loads happen asynchronously).
  bool wait_for(const std::string& js, int ms = 10000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < deadline) {
      try {
        if (eval(js) == json(true)) return true;
      } catch (const std::exception&) {
        // context destroyed by a navigation: try again
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
    return false;
  }

  void navigate(const std::string& url) { call("Page.navigate", {{"url", url}}); }
  bool ok() const { return pid_ > 0 && in_ >= 0; }

 private:
  pid_t pid_ = -1;
  int out_ = -1, in_ = -1;
  int next_id_ = 0;
  std::string buf_, session_;
};

struct Png {
  uint32_t width = 0, height = 0;
  std::vector<uint8_t> rgb;  // 3 bytes per pixel
};

// Decodes the 8-bit RGB/RGBA non-interlaced PNGs Chromium writes.
Png decode_png(const std::string& data) {
  Png png;
  if (data.size() < 33 || data.compare(1, 3, "PNG") != 0) return png;
  auto be32 = [&](size_t at) {
    return (uint32_t(uint8_t(data[at])) << 24) | (uint32_t(uint8_t(data[at + 1])) << 16) |
           (uint32_t(uint8_t(data[at + 2])) << 8) | uint32_t(uint8_t(data[at + 3]));
  };
  png.width = be32(16);
  png.height = be32(20);
  int depth = data[24], colour = data[25];
  if (depth != 8 || (colour != 2 && colour != 6) || png.width > 10000 || png.height > 20000) return png;
  const size_t channels = colour == 6 ? 4 : 3;
  std::string idat;
  for (size_t at = 8; at + 8 <= data.size();) {
    uint32_t len = be32(at);
    if (at + 12 + len > data.size()) break;
    if (data.compare(at + 4, 4, "IDAT") == 0) idat.append(data, at + 8, len);
    at += 12 + len;
  }
  const size_t stride = png.width * channels;
  std::vector<uint8_t> raw((stride + 1) * png.height);
  uLongf raw_len = raw.size();
  if (uncompress(raw.data(), &raw_len, reinterpret_cast<const Bytef*>(idat.data()), idat.size()) != Z_OK) return png;
  std::vector<uint8_t> prev(stride, 0), cur(stride);
  png.rgb.reserve(size_t(png.width) * png.height * 3);
  for (uint32_t y = 0; y < png.height; ++y) {
    const uint8_t* line = raw.data() + y * (stride + 1);
    uint8_t filter = line[0];
    for (size_t x = 0; x < stride; ++x) {
      int a = x >= channels ? cur[x - channels] : 0, b = prev[x], c = x >= channels ? prev[x - channels] : 0;
      int v = line[1 + x];
      switch (filter) {
        case 1: v += a; break;
        case 2: v += b; break;
        case 3: v += (a + b) / 2; break;
        case 4: {
          int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          v += (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
          break;
        }
        default: break;
      }
      cur[x] = static_cast<uint8_t>(v);
    }
    for (uint32_t x = 0; x < png.width; ++x)
      for (int k = 0; k < 3; ++k) png.rgb.push_back(cur[x * channels + k]);
    prev.swap(cur);
  }
  return png;
}

}  // namespace

TEST(ArenaBrowser, VoteInChromiumThenLeaderboardScreenshot) {
  if (!fs::exists(kChromium)) GTEST_SKIP() << "no " << kChromium;
  fs::path dir = fs::temp_directory_path() / ("kaival-arena-browser-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "profile");
  {
    kaival::arena::StoreOptions so;
    so.fast_password_hashing = true;
    auto store = kaival::arena::ArenaStore::open((dir / "arena.db").string(), so);
    int64_t voter = store->create_account("voter", "voter password", kaival::arena::Role::Voter);
    store->add_campaign(kaival::arena::load_campaign_file(std::string(KAIVAL_TESTDATA) + "/arena/arena_campaign.yaml"),
                        voter);
    kaival::server::ArenaServer srv(*store);
    const std::string base = "http://127.0.0.1:" + std::to_string(srv.start());

    Browser b(dir / "profile");
    ASSERT_TRUE(b.ok());
    b.open_page();
    b.navigate(base + "/login?lang=en");
    ASSERT_TRUE(b.wait_for("document.readyState === 'complete' && !!document.querySelector('#name')"));
    b.eval("document.querySelector('#name').value = 'voter';"
           "document.querySelector('#password').value = 'voter password';"
           "document.querySelector('form[action=\"/login\"]').submit(); true");
    ASSERT_TRUE(b.wait_for("location.pathname === '/' && document.readyState === 'complete'"));

    b.navigate(base + "/arena/demo-arena");
    // readyState 'complete': the deferred script that handles keys has run.
    ASSERT_TRUE(b.wait_for("document.readyState === 'complete' && !!document.querySelector('button[data-key=\"1\"]')"));
    // Labels and a real key press: "1" votes for answer A through the page's script.
    EXPECT_EQ(b.eval("document.querySelector('.buttons').getAttribute('role')"), "group");
    auto battle = [&] { return b.eval("document.querySelector('input[name=battle]').value").get<std::string>(); };
    auto next_pair = [&](const std::string& old) {
      return b.wait_for("document.readyState === 'complete' && location.search.includes('voted=1') && "
                        "!!document.querySelector('input[name=battle]') && "
                        "document.querySelector('input[name=battle]').value !== '" + old + "'",
                        30000);
    };
    std::string first = battle();
    b.call("Input.dispatchKeyEvent", {{"type", "keyDown"}, {"key", "1"}, {"code", "Digit1"}, {"text", "1"}});
    ASSERT_TRUE(next_pair(first));
    EXPECT_EQ(store->vote_count(), 1);
    std::string second = battle();
    b.eval("document.querySelector('button[data-key=\"2\"]').click(); true");
    ASSERT_TRUE(next_pair(second));
    EXPECT_EQ(store->vote_count(), 2);

    // Desktop: answers side by side; phone: stacked and no sideways scrolling.
    ASSERT_TRUE(b.wait_for("!!document.querySelector('#answer-b')"));
    EXPECT_EQ(b.eval("(() => { const a = document.querySelector('#answer-a').getBoundingClientRect(),"
                     " c = document.querySelector('#answer-b').getBoundingClientRect();"
                     " return Math.abs(a.top - c.top) < 2 && c.left > a.right; })()"),
              json(true));
    b.call("Emulation.setDeviceMetricsOverride", {{"width", 390}, {"height", 844}, {"deviceScaleFactor", 1}, {"mobile", true}});
    b.navigate(base + "/arena/demo-arena");
    ASSERT_TRUE(b.wait_for("document.readyState === 'complete' && !!document.querySelector('#answer-b')"));
    EXPECT_EQ(b.eval("(() => { const a = document.querySelector('#answer-a').getBoundingClientRect(),"
                     " c = document.querySelector('#answer-b').getBoundingClientRect();"
                     " return c.top >= a.bottom && document.documentElement.scrollWidth <= 390; })()"),
              json(true));
    b.call("Emulation.clearDeviceMetricsOverride");

    b.navigate(base + "/leaderboard/demo-arena");
    ASSERT_TRUE(b.wait_for("document.readyState === 'complete' && document.querySelectorAll('svg.chart').length === 2"));
    EXPECT_EQ(b.eval("document.querySelectorAll('#ratings tbody tr').length"), 3);
    EXPECT_EQ(b.eval("document.querySelector('svg.chart').getBoundingClientRect().width > 300"), json(true));
    json shot = b.call("Page.captureScreenshot", {{"format", "png"}});
    std::string b64 = shot["data"];
    std::string png_bytes(b64.size(), '\0');
    size_t len = 0;
    ASSERT_EQ(sodium_base642bin(reinterpret_cast<unsigned char*>(png_bytes.data()), png_bytes.size(), b64.data(),
                                b64.size(), nullptr, &len, nullptr, sodium_base64_VARIANT_ORIGINAL),
              0);
    png_bytes.resize(len);
    Png png = decode_png(png_bytes);
    EXPECT_EQ(png.width, 1280u);
    EXPECT_GE(png.height, 600u);
    ASSERT_EQ(png.rgb.size(), size_t(png.width) * png.height * 3);
    // Not blank: many colours, a fair share of non-background pixels, and the
    // red rating dots of the chart (#c0392b) are present.
    std::set<uint32_t> colours;
    size_t ink = 0, red = 0;
    for (size_t i = 0; i < png.rgb.size(); i += 3) {
      uint8_t r = png.rgb[i], g = png.rgb[i + 1], bl = png.rgb[i + 2];
      colours.insert((uint32_t(r) << 16) | (uint32_t(g) << 8) | bl);
      if (r < 200 || g < 200 || bl < 200) ++ink;
      if (r > 170 && g < 80 && bl < 70) ++red;
    }
    double pixels = static_cast<double>(png.width) * png.height;
    EXPECT_GT(colours.size(), 50u);
    EXPECT_GT(ink / pixels, 0.03);
    EXPECT_GT(red, 30u);
    std::FILE* f = std::fopen((dir / "leaderboard.png").c_str(), "wb");
    if (f) {
      std::fwrite(png_bytes.data(), 1, png_bytes.size(), f);
      std::fclose(f);
    }
    srv.stop();
  }
  fs::remove_all(dir);
}

TEST(ArenaBrowser, LiveAnswersStreamIntoBothPanesBeforeTheVoteOpens) {
  if (!fs::exists(kChromium)) GTEST_SKIP() << "no " << kChromium;
  fs::path dir = fs::temp_directory_path() / ("kaival-arena-browser-live-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "profile");
  const std::string answer_a = "Recursion means a function calls itself on a smaller input until a base case ends it.";
  const std::string answer_b = "<i>Think of two mirrors</i> facing each other: each image holds a smaller copy & so on.";
  {
    kaival::eval::testing::MockFaults slow;
    slow.token_delay_ms = 40;  // about 30 pieces a side: more than a second of streaming
    kaival::eval::testing::MockServer ma(slow), mb(slow);
    ma.add_answer("", answer_a);
    mb.add_answer("", answer_b);
    ma.start();
    mb.start();
    kaival::arena::StoreOptions so;
    so.fast_password_hashing = true;
    auto store = kaival::arena::ArenaStore::open((dir / "arena.db").string(), so);
    int64_t voter = store->create_account("voter", "voter password", kaival::arena::Role::Voter);
    store->add_campaign(kaival::arena::parse_campaign(fmt::format(R"(kind: arena
name: live-arena
live_prompts: true
models:
  - id: team-a
    backend: {{base_url: "{}", timeout_s: 10}}
  - id: team-b
    backend: {{base_url: "{}", timeout_s: 10}}
)",
                                                                  ma.url(), mb.url()),
                                                      "live.yaml"),
                        voter);
    kaival::server::ArenaServer srv(*store);
    const std::string base = "http://127.0.0.1:" + std::to_string(srv.start());

    Browser b(dir / "profile");
    ASSERT_TRUE(b.ok());
    b.open_page();
    b.navigate(base + "/login?lang=en");
    ASSERT_TRUE(b.wait_for("document.readyState === 'complete' && !!document.querySelector('#name')"));
    b.eval("document.querySelector('#name').value = 'voter';"
           "document.querySelector('#password').value = 'voter password';"
           "document.querySelector('form[action=\"/login\"]').submit(); true");
    ASSERT_TRUE(b.wait_for("location.pathname === '/' && document.readyState === 'complete'"));
    b.navigate(base + "/arena/live-arena");
    ASSERT_TRUE(b.wait_for("document.readyState === 'complete' && !!document.querySelector('#live-form')"));
    EXPECT_EQ(b.eval("document.querySelector('#live-battle').hidden"), json(true));
    b.eval("document.querySelector('#live-prompt').value = 'Explain recursion';"
           "document.querySelector('#live-form').requestSubmit(); true");
    // Mid-stream: both panes hold part of their answer and every vote button is disabled.
    const size_t shorter = std::min(answer_a.size(), answer_b.size());
    ASSERT_TRUE(b.wait_for(fmt::format(
        "(() => {{ const a = document.querySelector('#live-a').textContent.length,"
        " c = document.querySelector('#live-b').textContent.length;"
        " const votes = [...document.querySelectorAll('#live-battle button[data-key]')];"
        " return a > 0 && c > 0 && a < {0} && c < {0} && votes.length === 4 && votes.every(v => v.disabled); }})()",
        shorter / 2)))
        << "no moment where both panes were partly written before the vote";
    EXPECT_EQ(b.eval("document.querySelector('#live-battle-id').value"), "");
    // Later: both complete, the pair stored, the buttons enabled.
    ASSERT_TRUE(b.wait_for("document.querySelector('#live-battle-id').value.length === 32 && "
                           "[...document.querySelectorAll('#live-battle button[data-key]')].every(v => !v.disabled)",
                           20000));
    std::set<std::string> shown{b.eval("document.querySelector('#live-a').textContent").get<std::string>(),
                                b.eval("document.querySelector('#live-b').textContent").get<std::string>()};
    EXPECT_EQ(shown, (std::set<std::string>{answer_a, answer_b}));
    EXPECT_EQ(b.eval("document.querySelectorAll('#live-battle i').length"), 0) << "model output is text, not HTML";
    EXPECT_EQ(b.eval("document.body.textContent.includes('team-a') || document.body.textContent.includes('team-b')"),
              json(false));
    b.eval("document.querySelector('#live-battle button[data-key=\"2\"]').click(); true");
    ASSERT_TRUE(b.wait_for("document.readyState === 'complete' && location.search.includes('voted=1')"));
    EXPECT_EQ(store->vote_count(), 1);
    srv.stop();
  }
  fs::remove_all(dir);
}
