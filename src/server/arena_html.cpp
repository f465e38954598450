#include "server/arena_html.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "core/text.h"

namespace kaival::server::arena_html {

std::string esc(std::string_view s) { return html_escape(s); }

Lang parse_lang(std::string_view chosen, std::string_view accept) {
  if (chosen == "ko") return Lang::Ko;
  if (chosen == "en") return Lang::En;
  return accept.substr(0, 2) == "ko" ? Lang::Ko : Lang::En;
}

const char* lang_code(Lang l) { return l == Lang::Ko ? "ko" : "en"; }

namespace {

struct Pair {
  const char* en;
  const char* ko;
};

const std::map<std::string_view, Pair>& strings() {
  static const std::map<std::string_view, Pair> m{
      {"site", {"kaival arena", "kaival 아레나"}},
      {"home", {"Home", "홈"}},
      {"leaderboard", {"Leaderboard", "순위표"}},
      {"vote", {"Vote", "투표"}},
      {"review", {"Expert review", "전문가 평가"}},
      {"admin", {"Admin", "관리"}},
      {"login", {"Sign in", "로그인"}},
      {"logout", {"Sign out", "로그아웃"}},
      {"join", {"Join with an invitation", "초대로 가입"}},
      {"name", {"Name", "이름"}},
      {"password", {"Password", "비밀번호"}},
      {"invitation", {"Invitation code", "초대 코드"}},
      {"campaigns", {"Campaigns", "캠페인"}},
      {"prompt", {"Prompt", "질문"}},
      {"answer_a", {"Answer A", "답변 A"}},
      {"answer_b", {"Answer B", "답변 B"}},
      {"a_better", {"A is better", "A가 더 좋음"}},
      {"b_better", {"B is better", "B가 더 좋음"}},
      {"tie", {"Tie", "비슷함"}},
      {"both_bad", {"Both are bad", "둘 다 나쁨"}},
      {"keys", {"Keys: 1 = A, 2 = B, 3 = tie, 4 = both bad", "단축키: 1 = A, 2 = B, 3 = 비슷함, 4 = 둘 다 나쁨"}},
      {"blind", {"The models are hidden until you vote; sides are random.",
                 "투표 전에는 모델 이름이 가려지며, 좌우는 무작위입니다."}},
      {"thanks", {"Vote recorded. Here is the next pair.", "투표가 저장되었습니다. 다음 비교입니다."}},
      {"no_battle", {"No pair is available in this campaign.", "이 캠페인에는 비교할 답변이 없습니다."}},
      {"model", {"Model", "모델"}},
      {"rating", {"Rating", "점수"}},
      {"ci", {"95% interval", "95% 신뢰구간"}},
      {"rank", {"Rank", "순위"}},
      {"battles", {"Battles", "대결 수"}},
      {"win_rate", {"Win rate", "승률"}},
      {"heatmap", {"Win rate of row model against column model", "행 모델이 열 모델을 이긴 비율"}},
      {"chart", {"Bradley-Terry ratings with 95% bootstrap intervals", "Bradley-Terry 점수와 95% 부트스트랩 신뢰구간"}},
      {"rank_note", {"Models whose intervals overlap share a rank.", "신뢰구간이 겹치는 모델은 같은 순위입니다."}},
      {"synthetic", {"SYNTHETIC: simulated voters, not real people.", "합성 데이터: 실제 사람이 아닌 모의 투표입니다."}},
      {"assigned", {"Items assigned to you", "배정된 평가 항목"}},
      {"none_assigned", {"Nothing is assigned to you.", "배정된 항목이 없습니다."}},
      {"done", {"reviewed", "평가 완료"}},
      {"todo", {"to review", "평가 대기"}},
      {"score", {"Score", "점수"}},
      {"rationale", {"Rationale", "근거"}},
      {"submit", {"Submit", "제출"}},
      {"saved", {"Saved. Edits are kept in the audit log.", "저장되었습니다. 수정 내역은 감사 로그에 남습니다."}},
      {"upload", {"Create a campaign from a YAML file", "YAML 파일로 캠페인 만들기"}},
      {"invite", {"Create an invitation", "초대 만들기"}},
      {"role", {"Role", "역할"}},
      {"affiliation", {"Affiliation", "소속"}},
      {"suspects", {"Detect suspect voters", "의심 투표자 찾기"}},
      {"bad_login", {"Wrong name or password.", "이름 또는 비밀번호가 틀렸습니다."}},
      {"forbidden", {"You may not do this.", "권한이 없습니다."}},
      {"language", {"한국어", "English"}},
      {"skip", {"Skip to content", "본문으로 건너뛰기"}},
      {"expert_scores", {"Expert scores", "전문가 점수"}},
      {"live_heading", {"Ask your own prompt", "직접 질문하기"}},
      {"live_note", {"Two hidden models answer; this can take a while. Limited per hour.",
                     "숨겨진 두 모델이 답합니다. 시간이 걸릴 수 있으며 시간당 횟수가 제한됩니다."}},
      {"ask", {"Ask both models", "두 모델에게 묻기"}},
      {"live_failed", {"A model did not answer, so nothing was stored. Please try again later.",
                       "모델 하나가 답하지 않아 아무것도 저장되지 않았습니다. 잠시 후 다시 시도해 주세요."}},
      {"live_leak", {"An answer revealed which model wrote it, so this pair was set aside. Please ask again.",
                     "답변 하나가 어느 모델인지 드러내어 이 비교는 제외되었습니다. 다시 질문해 주세요."}},
      {"live_cap", {"You have reached the limit of live prompts for now.", "지금은 직접 질문 한도에 도달했습니다."}},
      {"live_busy", {"Your previous prompt is still being answered.", "이전 질문에 대한 답변을 아직 기다리는 중입니다."}},
      {"live_empty", {"Type a prompt first.", "먼저 질문을 입력해 주세요."}},
      {"live_long", {"The prompt is too long.", "질문이 너무 깁니다."}},
      {"live_off", {"This campaign does not take live prompts.", "이 캠페인은 직접 질문을 받지 않습니다."}},
      {"live_budget", {"This campaign's budget for live prompts is spent, so no new pairs can be asked.",
                       "이 캠페인의 직접 질문 예산이 모두 사용되어 새 질문을 할 수 없습니다."}},
      {"live_streaming", {"Both hidden models are writing their answers…", "숨겨진 두 모델이 답을 쓰는 중입니다…"}},
      {"live_ready", {"Both answers are complete. Which is better?", "두 답변이 완성되었습니다. 어느 쪽이 더 나은가요?"}},
      {"live_side_failed", {"This answer broke off: the pair is void and will not be counted.",
                            "이 답변이 중간에 끊겨 이 비교는 무효이며 집계되지 않습니다."}},
      {"budget", {"Live budget", "직접 질문 예산"}},
      {"completion_tokens", {"completion tokens", "생성 토큰"}},
      {"remaining", {"left", "남음"}},
      {"no_cap", {"no token cap", "토큰 한도 없음"}},
      {"cost", {"cost", "비용"}},
      {"requests", {"requests", "요청"}},
      {"budget_spent", {"spent", "소진"}},
      {"reserved", {"reserved", "예약"}},
      {"in_flight", {"pairs in flight", "진행 중인 비교"}},
  };
  return m;
}

}  // namespace

const char* t(Lang lang, std::string_view key) {
  auto it = strings().find(key);
  if (it == strings().end()) return "?";
  return lang == Lang::Ko ? it->second.ko : it->second.en;
}

std::string page(const PageContext& c, std::string_view title, std::string_view body) {
  Lang other = c.lang == Lang::Ko ? Lang::En : Lang::Ko;
  std::string nav = fmt::format("<a href=\"/\">{}</a>", esc(t(c.lang, "home")));
  if (!c.user.empty()) {
    if (c.role == "expert" || c.role == "admin") nav += fmt::format(" <a href=\"/review\">{}</a>", esc(t(c.lang, "review")));
    if (c.role == "admin") nav += fmt::format(" <a href=\"/admin\">{}</a>", esc(t(c.lang, "admin")));
    nav += fmt::format(
        " <form method=\"post\" action=\"/logout\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" "
        "value=\"{}\"><button type=\"submit\">{} ({})</button></form>",
        esc(c.csrf), esc(t(c.lang, "logout")), esc(c.user));
  } else {
    nav += fmt::format(" <a href=\"/login\">{}</a>", esc(t(c.lang, "login")));
  }
  nav += fmt::format(" <a href=\"?lang={}\" lang=\"{}\">{}</a>", lang_code(other), lang_code(other),
                     esc(t(c.lang, "language")));
  return fmt::format(
      "<!doctype html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>{} · {}</title><link rel=\"stylesheet\" href=\"/static/arena.css\">"
      "<script src=\"/static/arena.js\" defer></script></head><body>"
      "<a class=\"skip\" href=\"#main\">{}</a><header><nav aria-label=\"main\">{}</nav></header>"
      "<main id=\"main\"><h1>{}</h1>\n{}\n</main></body></html>\n",
      lang_code(c.lang), esc(title), esc(t(c.lang, "site")), esc(t(c.lang, "skip")), nav, esc(title), body);
}

namespace {

std::string num(double v, int digits = 1) { return fmt::format("{:.{}f}", v, digits); }

// Diverging palette: 0 -> blue, 0.5 -> white, 1 -> red.
std::string heat_colour(double v) {
  v = std::clamp(v, 0.0, 1.0);
  auto mix = [](int a, int b, double f) { return static_cast<int>(std::lround(a + (b - a) * f)); };
  int r, g, b;
  if (v < 0.5) {
    double f = v / 0.5;
    r = mix(49, 255, f), g = mix(104, 255, f), b = mix(176, 255, f);
  } else {
    double f = (v - 0.5) / 0.5;
    r = mix(255, 196, f), g = mix(255, 60, f), b = mix(255, 48, f);
  }
  return fmt::format("#{:02x}{:02x}{:02x}", r, g, b);
}

}  // namespace

std::string leaderboard_svg(const std::vector<ChartRow>& rows_in, Lang lang) {
  std::vector<ChartRow> rows = rows_in;
  std::sort(rows.begin(), rows.end(), [](const ChartRow& a, const ChartRow& b) { return a.rating > b.rating; });
  const int label_w = 150, plot_w = 420, row_h = 28, top = 30, bottom = 36;
  const int height = top + static_cast<int>(rows.size()) * row_h + bottom;
  double lo = 1e300, hi = -1e300;
  for (const auto& r : rows) {
    lo = std::min({lo, r.ci_low, r.rating});
    hi = std::max({hi, r.ci_high, r.rating});
  }
  if (rows.empty() || !std::isfinite(lo) || !std::isfinite(hi)) lo = 950, hi = 1050;
  double pad = std::max(10.0, (hi - lo) * 0.08);
  lo -= pad;
  hi += pad;
  auto x = [&](double v) { return label_w + (v - lo) / (hi - lo) * plot_w; };
  std::string s = fmt::format(
      "<svg class=\"chart\" role=\"img\" aria-labelledby=\"lbt\" viewBox=\"0 0 {} {}\" xmlns=\"http://www.w3.org/2000/svg\">"
      "<title id=\"lbt\">{}</title>",
      label_w + plot_w + 20, height, esc(t(lang, "chart")));
  // Grid and ticks.
  double step = std::pow(10.0, std::floor(std::log10((hi - lo) / 4)));
  if ((hi - lo) / step > 8) step *= 2;
  if ((hi - lo) / step > 8) step *= 2.5;
  for (double v = std::ceil(lo / step) * step; v <= hi; v += step) {
    s += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#ddd\"/>"
                     "<text x=\"{0:.1f}\" y=\"{3}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#555\">{4}</text>",
                     x(v), top - 6, height - bottom + 4, height - bottom + 18, num(v, 0));
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    double cy = top + (static_cast<double>(i) + 0.5) * row_h;
    s += fmt::format(
        "<g><title>{0}: {1} [{2}, {3}]</title>"
        "<text x=\"{4}\" y=\"{5:.1f}\" font-size=\"13\" text-anchor=\"end\" dominant-baseline=\"middle\" fill=\"#222\">{6}. {0}</text>"
        "<line x1=\"{7:.1f}\" x2=\"{8:.1f}\" y1=\"{5:.1f}\" y2=\"{5:.1f}\" stroke=\"#345\" stroke-width=\"2\"/>"
        "<line x1=\"{7:.1f}\" x2=\"{7:.1f}\" y1=\"{9:.1f}\" y2=\"{10:.1f}\" stroke=\"#345\" stroke-width=\"2\"/>"
        "<line x1=\"{8:.1f}\" x2=\"{8:.1f}\" y1=\"{9:.1f}\" y2=\"{10:.1f}\" stroke=\"#345\" stroke-width=\"2\"/>"
        "<circle cx=\"{11:.1f}\" cy=\"{5:.1f}\" r=\"5\" fill=\"#c0392b\"/></g>",
        esc(r.model), num(r.rating), num(r.ci_low), num(r.ci_high), label_w - 8, cy, r.rank, x(r.ci_low),
        x(r.ci_high), cy - 6, cy + 6, x(r.rating));
  }
  s += "</svg>";
  return s;
}

std::string heatmap_svg(const std::vector<std::string>& models, const std::vector<std::vector<double>>& w, Lang lang) {
  const int n = static_cast<int>(models.size());
  const int label = 130, cell = 44;
  const int size = label + n * cell + 10;
  std::string s = fmt::format(
      "<svg class=\"chart\" role=\"img\" aria-labelledby=\"hmt\" viewBox=\"0 0 {0} {0}\" xmlns=\"http://www.w3.org/2000/svg\">"
      "<title id=\"hmt\">{1}</title>",
      size, esc(t(lang, "heatmap")));
  for (int i = 0; i < n; ++i) {
    s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>",
                     label - 6, label + i * cell + cell / 2, esc(models[i]));
    s += fmt::format("<text x=\"{0}\" y=\"{1}\" font-size=\"12\" transform=\"rotate(-45 {0} {1})\">{2}</text>",
                     label + i * cell + cell / 2, label - 6, esc(models[i]));
  }
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double v = (i < static_cast<int>(w.size()) && j < static_cast<int>(w[i].size())) ? w[i][j] : NAN;
      bool has = std::isfinite(v);
      s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"#fff\"><title>{} vs {}: {}</title></rect>",
                       label + j * cell, label + i * cell, cell, cell, has ? heat_colour(v) : "#eee", esc(models[i]),
                       esc(models[j]), has ? num(v * 100, 0) + "%" : "-");
      if (has)
        s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\" dominant-baseline=\"middle\">{}</text>",
                         label + j * cell + cell / 2, label + i * cell + cell / 2, num(v * 100, 0));
    }
  s += "</svg>";
  return s;
}

const char* const kStylesheet = R"css(
*{box-sizing:border-box}
body{font-family:system-ui,"Noto Sans CJK KR","Noto Sans KR",sans-serif;margin:0;color:#1b1b1b;background:#fafafa;line-height:1.5}
header{background:#1f3a5f;padding:.5rem 1rem}
header a,header button{color:#fff;margin-right:1rem;font-size:1rem}
header button{background:none;border:1px solid #fff;border-radius:4px;padding:.2rem .6rem;cursor:pointer}
.inline{display:inline}
main{max-width:1100px;margin:0 auto;padding:1rem}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem;z-index:9}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
@media (max-width:700px){.pair{grid-template-columns:1fr}}
.answer{background:#fff;border:1px solid #ccd;border-radius:8px;padding:1rem;white-space:pre-wrap;overflow-wrap:anywhere}
.prompt{background:#eef3f8;border-radius:8px;padding:1rem;white-space:pre-wrap}
.buttons{display:flex;flex-wrap:wrap;gap:.5rem;margin:1rem 0}
.buttons button{flex:1 1 10rem;font-size:1.05rem;padding:.8rem;border-radius:8px;border:2px solid #1f3a5f;background:#fff;cursor:pointer}
.buttons button:focus,.buttons button:hover{background:#1f3a5f;color:#fff;outline:3px solid #f0a500}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #ddd;padding:.4rem;text-align:left}
.chart{width:100%;max-width:760px;height:auto;background:#fff;border:1px solid #ddd;border-radius:8px}
.note{color:#555}.synthetic{background:#fff3cd;border:1px solid #e0b000;padding:.5rem;border-radius:6px}
label{display:block;margin:.5rem 0 .2rem}
input,select,textarea{font-size:1rem;padding:.4rem;max-width:100%}
textarea{width:100%}
.error{color:#a00}.ok{color:#060}
.buttons button[disabled]{opacity:.45;cursor:not-allowed;background:#fff;color:#000;outline:none}
.answer .error{font-weight:bold;white-space:normal}
)css";

const char* const kScript = R"js(
// Keyboard voting: 1/2/3/4 press the matching button (forms still work without JS).
document.addEventListener('keydown', function (e) {
  if (e.target && /INPUT|TEXTAREA|SELECT/.test(e.target.tagName)) return;
  var b = document.querySelector('button[data-key="' + e.key + '"]');
  if (b) { e.preventDefault(); b.click(); }
});

// Live prompts, streamed: both answers appear piece by piece (textContent only,
// so model output is never parsed as HTML); the vote buttons stay disabled
// until the server says the pair is stored. Without script the form posts.
document.addEventListener('DOMContentLoaded', function () {
  var form = document.getElementById('live-form');
  var pair = document.getElementById('live-battle');
  if (!form || !pair || !window.fetch || !window.TextDecoder) return;
  form.addEventListener('submit', function (e) {
    e.preventDefault();
    var prompt = form.querySelector('textarea').value;
    var csrf = form.querySelector('input[name=csrf]').value;
    var button = form.querySelector('button');
    var status = document.getElementById('live-status');
    var panes = {a: document.getElementById('live-a'), b: document.getElementById('live-b')};
    var votes = pair.querySelectorAll('button[data-key]');
    var old = document.getElementById('battle');
    if (old) old.remove();
    panes.a.textContent = ''; panes.b.textContent = '';
    document.getElementById('live-battle-id').value = '';
    votes.forEach(function (v) { v.disabled = true; });
    var shown = document.getElementById('live-shown-prompt');
    shown.textContent = prompt;
    pair.hidden = false;
    status.className = '';
    status.textContent = pair.dataset.streaming;
    button.disabled = true;
    function fail(message) {
      status.className = 'error';
      status.textContent = message;
      button.disabled = false;
    }
    var ended = false;  // a battle or void event came: the stream ended as it should
    function handle(name, data) {
      if (name === 'battle' || name === 'void') ended = true;
      if (name === 'piece') panes[data.side].appendChild(document.createTextNode(data.text));
      else if (name === 'error') {
        var p = document.createElement('p');
        p.className = 'error';
        p.textContent = data.message;
        panes[data.side].appendChild(p);
      } else if (name === 'battle') {
        document.getElementById('live-battle-id').value = data.battle;
        votes.forEach(function (v) { v.disabled = false; });
        status.textContent = pair.dataset.ready;
        form.querySelector('textarea').value = '';
        button.disabled = false;
        if (votes.length) votes[0].focus();
      } else if (name === 'void') fail(data.message);
    }
    fetch(form.dataset.stream, {method: 'POST', credentials: 'same-origin',
        headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
        body: JSON.stringify({prompt: prompt})}).then(function (res) {
      if (!res.ok || !res.body) {
        return res.json().then(function (j) { fail(j.message || j.error); }, function () { fail(pair.dataset.failed); });
      }
      var reader = res.body.getReader(), decoder = new TextDecoder(), buffer = '';
      function pump() {
        return reader.read().then(function (r) {
          if (r.done) { if (!ended) fail(pair.dataset.failed); return; }
          buffer += decoder.decode(r.value, {stream: true});
          var end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            var frame = buffer.slice(0, end), name = 'message', data = '';
            buffer = buffer.slice(end + 2);
            frame.split('\n').forEach(function (line) {
              if (line.indexOf('event: ') === 0) name = line.slice(7);
              else if (line.indexOf('data: ') === 0) data += line.slice(6);
            });
            try { handle(name, JSON.parse(data)); } catch (err) { /* a malformed frame: skip it */ }
          }
          return pump();
        });
      }
      return pump();
    }).catch(function () { fail(pair.dataset.failed); });
  });
});
)js";

}  // namespace kaival::server::arena_html
