#pragma once
// Server-rendered HTML for the arena: escaping, Korean/English strings, the
// page frame, and SVG charts (leaderboard with CI whiskers, win-rate heatmap)
// drawn in C++ so the pages need no front-end framework.
#include <string>
#include <string_view>
#include <vector>

namespace kaival::server::arena_html {

// Escapes & < > " ' for element content and quoted attribute values. Every
// piece of user- or model-provided text goes through this.
std::string esc(std::string_view s);

enum class Lang { En, Ko };
Lang parse_lang(std::string_view cookie_or_query, std::string_view accept_language);
const char* lang_code(Lang l);
// The UI string for `key` in `lang` (the key itself when unknown).
const char* t(Lang lang, std::string_view key);

struct PageContext {
  Lang lang = Lang::En;
  std::string user;   // empty when signed out
  std::string role;   // admin | expert | voter
  std::string csrf;   // for the sign-out form
};

// A complete HTML document around `body` (already escaped HTML).
std::string page(const PageContext& ctx, std::string_view title, std::string_view body);

struct ChartRow {
  std::string model;
  double rating = 0, ci_low = 0, ci_high = 0;
  int rank = 0;
};
// Ratings as points with 95% interval whiskers, one row per model, best first.
std::string leaderboard_svg(const std::vector<ChartRow>& rows, Lang lang);
// win_rate[i][j] (NaN = no battles) as a colour grid with values.
std::string heatmap_svg(const std::vector<std::string>& models, const std::vector<std::vector<double>>& win_rate,
                        Lang lang);

extern const char* const kStylesheet;  // served at /static/arena.css
extern const char* const kScript;      // served at /static/arena.js (keyboard voting)

}  // namespace kaival::server::arena_html
