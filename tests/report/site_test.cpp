// The static stage report: escaping, both languages, and the page as real
// Chromium renders it (DOM after parsing, and a screenshot whose pixels show
// the charts).
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../support/files.h"
#include "../support/process.h"
#include "report/site.h"
#include "report/svg.h"
#include "stage/engine.h"
#include "stage/program.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const json& fixture_result() {
  static const json doc = [] {
    auto p = kaival::stage::load_program(std::string(KAIVAL_TESTDATA) + "/stage/first/program.yaml");
    kaival::stage::RunOptions o;
    o.stage = "s1";
    o.replicates = 100;
    return kaival::stage::run(p, o).doc;
  }();
  return doc;
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
  return n;
}

std::string run_capture(const std::string& cmd) { return kaival::testing_support::run_command(cmd).out; }

// Minimal PNG decoder (8-bit RGB/RGBA, non-interlaced: what Chromium writes).
struct Image {
  uint32_t width = 0, height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;  // rows of width*channels
};

uint32_t be32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }

bool decode_png(const std::string& data, Image& img, std::string& why) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (data.size() < 8 || std::memcmp(data.data(), sig, 8) != 0) return why = "not a PNG", false;
  const auto* d = reinterpret_cast<const uint8_t*>(data.data());
  size_t pos = 8;
  std::vector<uint8_t> idat;
  int depth = 0, ctype = 0, interlace = 0;
  while (pos + 12 <= data.size()) {
    uint32_t len = be32(d + pos);
    std::string type(data.data() + pos + 4, 4);
    if (pos + 12 + len > data.size()) return why = "truncated chunk", false;
    const uint8_t* body = d + pos + 8;
    if (type == "IHDR") {
      img.width = be32(body);
      img.height = be32(body + 4);
      depth = body[8];
      ctype = body[9];
      interlace = body[12];
    } else if (type == "IDAT") {
      idat.insert(idat.end(), body, body + len);
    } else if (type == "IEND") {
      break;
    }
    pos += 12 + len;
  }
  if (depth != 8 || (ctype != 2 && ctype != 6) || interlace != 0) return why = "unsupported PNG layout", false;
  if (img.width == 0 || img.height == 0 || img.width > 10000 || img.height > 20000) return why = "bad size", false;
  img.channels = ctype == 6 ? 4 : 3;
  size_t stride = size_t(img.width) * img.channels;
  std::vector<uint8_t> raw((stride + 1) * img.height);
  uLongf raw_len = raw.size();
  if (uncompress(raw.data(), &raw_len, idat.data(), idat.size()) != Z_OK || raw_len != raw.size()) return why = "inflate failed", false;
  img.pixels.assign(stride * img.height, 0);
  int bpp = img.channels;
  for (uint32_t y = 0; y < img.height; ++y) {
    uint8_t f = raw[y * (stride + 1)];
    const uint8_t* in = &raw[y * (stride + 1) + 1];
    uint8_t* out = &img.pixels[y * stride];
    const uint8_t* up = y ? &img.pixels[(y - 1) * stride] : nullptr;
    for (size_t x = 0; x < stride; ++x) {
      int a = x >= size_t(bpp) ? out[x - bpp] : 0, b = up ? up[x] : 0, c = (up && x >= size_t(bpp)) ? up[x - bpp] : 0;
      int pred = 0;
      switch (f) {
        case 0: pred = 0; break;
        case 1: pred = a; break;
        case 2: pred = b; break;
        case 3: pred = (a + b) / 2; break;
        case 4: {
          int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
          pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
          break;
        }
        default: return why = "bad filter", false;
      }
      out[x] = static_cast<uint8_t>(in[x] + pred);
    }
  }
  return true;
}

}  // namespace

TEST(Report, EscapesEveryText) {
  json r = fixture_result();
  r["teams"][0]["name"]["en"] = "<script>alert('x')</script> & \"co\"";
  r["warnings"].push_back("<img src=x onerror=alert(1)>");
  std::string page = kaival::report::stage_page(r, "en");
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_EQ(page.find("<img"), std::string::npos);
  EXPECT_NE(page.find("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;"), std::string::npos);
  EXPECT_EQ(kaival::report::escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
}

TEST(Report, BothLanguagesAndNoExternalResources) {
  const json& r = fixture_result();
  std::string en = kaival::report::stage_page(r, "en"), ko = kaival::report::stage_page(r, "ko");
  EXPECT_NE(en.find("<html lang=\"en\">"), std::string::npos);
  EXPECT_NE(ko.find("<html lang=\"ko\">"), std::string::npos);
  EXPECT_NE(en.find("href=\"index.ko.html\""), std::string::npos);
  EXPECT_NE(ko.find("href=\"index.html\""), std::string::npos);
  EXPECT_NE(ko.find("팀 하나"), std::string::npos);
  EXPECT_NE(ko.find("합성 데이터"), std::string::npos);
  EXPECT_NE(en.find("Team Hana"), std::string::npos);
  EXPECT_NE(en.find("Synthetic data"), std::string::npos);
  for (const auto* page : {&en, &ko}) {
    std::string stripped = std::regex_replace(*page, std::regex("http://www\\.w3\\.org/2000/svg"), "");
    EXPECT_EQ(stripped.find("http://"), std::string::npos);
    EXPECT_EQ(page->find("https://"), std::string::npos);
    EXPECT_EQ(page->find("<script"), std::string::npos);
    EXPECT_EQ(page->find("src="), std::string::npos);
  }
  // One radar per team, one ratio bar per team-chosen benchmark.
  EXPECT_EQ(count(en, "class=\"chart radar\""), 5u);
  EXPECT_NE(en.find("103.8%"), std::string::npos);
}

TEST(Report, RendersInChromium) {
  const char* chromium = "/usr/bin/chromium";
  if (!fs::exists(chromium)) GTEST_SKIP() << "chromium is not installed (scripts/setup installs it)";
  kaival::testing_support::TempDir d("report");  // kaival_report_<pid>, as before
  kaival::report::write_site(fixture_result(), d.path.string());
  fs::path png = d.path / "shot.png";
  std::string cmd = fmt::format(
      "timeout 90 {} --headless --no-sandbox --disable-gpu --no-first-run --disable-extensions --user-data-dir={} "
      "--window-size=1200,1600 --hide-scrollbars --screenshot={} --dump-dom file://{} 2>/dev/null",
      chromium, (d.path / "profile").string(), png.string(), (d.path / "index.html").string());
  std::string dom = run_capture(cmd);
  ASSERT_FALSE(dom.empty()) << "chromium produced no DOM";
  // DOM after Chromium parsed it: the decision table, every chart, the data.
  std::string tbody = dom.substr(dom.find("id=\"decisions\""));
  tbody = tbody.substr(0, tbody.find("</table>"));
  EXPECT_EQ(count(tbody, "<tr data-team="), 5u);
  EXPECT_NE(tbody.find("data-team=\"hana\" data-decision=\"advance\""), std::string::npos);
  EXPECT_NE(tbody.find("data-team=\"net\" data-decision=\"ineligible\""), std::string::npos);
  EXPECT_NE(tbody.find("data-team=\"daseot\" data-decision=\"eliminate\""), std::string::npos);
  for (const char* id : {"chart-leaderboard", "chart-ratio", "chart-lineage", "chart-arena", "chart-radar", "synthetic-banner", "inputs"})
    EXPECT_NE(dom.find(fmt::format("id=\"{}\"", id)), std::string::npos) << id;
  EXPECT_EQ(count(dom, "<svg class=\"chart radar\""), 5u);
  EXPECT_NE(dom.find("90.2"), std::string::npos);

  // The screenshot: right size, not blank, and the charts' colours are on it.
  std::ifstream f(png, std::ios::binary);
  ASSERT_TRUE(f) << "no screenshot";
  std::string data((std::istreambuf_iterator<char>(f)), {});
  Image img;
  std::string why;
  ASSERT_TRUE(decode_png(data, img, why)) << why;
  EXPECT_EQ(img.width, 1200u);
  EXPECT_EQ(img.height, 1600u);
  size_t non_white = 0, bar_blue = 0, total = size_t(img.width) * img.height;
  for (size_t i = 0; i < total; ++i) {
    const uint8_t* p = &img.pixels[i * img.channels];
    if (p[0] < 240 || p[1] < 240 || p[2] < 240) ++non_white;
    // #0072B2: the benchmark part's bars in the leaderboard
    if (std::abs(p[0] - 0x00) < 12 && std::abs(p[1] - 0x72) < 12 && std::abs(p[2] - 0xB2) < 12) ++bar_blue;
  }
  double frac = double(non_white) / double(total);
  EXPECT_GT(frac, 0.03) << "screenshot looks blank";
  EXPECT_LT(frac, 0.9);
  EXPECT_GT(bar_blue, 2000u) << "leaderboard bars not rendered";
}
