#include "eval/queue.h"

#include <unistd.h>

#include <chrono>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"
#include "store/postgres.h"

namespace kaival::eval {

using json = nlohmann::json;
using store::PgDb;
using store::PgValue;

namespace {

constexpr store::Migration kQueueMigrations[] = {
    {1,
     "CREATE TABLE eval_runs (name TEXT PRIMARY KEY, model_url TEXT NOT NULL, client JSONB NOT NULL, "
     "created TIMESTAMPTZ NOT NULL DEFAULT now());"
     "CREATE TABLE eval_requests (run TEXT NOT NULL REFERENCES eval_runs(name) ON DELETE CASCADE, "
     "hash TEXT NOT NULL, seq BIGINT NOT NULL, endpoint TEXT NOT NULL, body TEXT NOT NULL, "
     "state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'claimed', 'done', 'failed')), "
     "worker TEXT, lease_until TIMESTAMPTZ, attempts INTEGER NOT NULL DEFAULT 0, response TEXT, error TEXT, "
     "answered_at TIMESTAMPTZ, PRIMARY KEY (run, hash));"
     "CREATE INDEX eval_requests_open ON eval_requests (seq) WHERE state IN ('pending', 'claimed')"},
};

int64_t to_i64(const PgValue& v) { return v ? std::stoll(*v) : 0; }

json client_json(const ClientOptions& c) {
  return {{"timeout_ms", c.timeout_ms},         {"connect_timeout_ms", c.connect_timeout_ms},
          {"max_retries", c.max_retries},       {"backoff_initial_s", c.backoff_initial_s},
          {"backoff_max_s", c.backoff_max_s},   {"retry_after_max_s", c.retry_after_max_s}};
}

ClientOptions client_from_json(const json& j, int concurrency) {
  ClientOptions c;
  c.concurrency = concurrency;
  c.timeout_ms = j.value("timeout_ms", c.timeout_ms);
  c.connect_timeout_ms = j.value("connect_timeout_ms", c.connect_timeout_ms);
  c.max_retries = j.value("max_retries", c.max_retries);
  c.backoff_initial_s = j.value("backoff_initial_s", c.backoff_initial_s);
  c.backoff_max_s = j.value("backoff_max_s", c.backoff_max_s);
  c.retry_after_max_s = j.value("retry_after_max_s", c.retry_after_max_s);
  // API keys are never stored in the queue: workers take theirs from KAIVAL_API_KEY.
  if (const char* k = std::getenv("KAIVAL_API_KEY")) c.api_key = k;
  return c;
}

std::string default_worker_id() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "host");
  return fmt::format("{}:{}", host, getpid());
}

}  // namespace

struct RequestQueue::Impl {
  explicit Impl(const std::string& url) : db(PgDb::connect(url)) { store::migrate(db, "eval_queue", kQueueMigrations); }
  PgDb db;
};

RequestQueue::RequestQueue(const std::string& store_url) : impl_(new Impl(store_url)) {}
RequestQueue::~RequestQueue() { delete impl_; }

QueueProgress RequestQueue::enqueue(const std::string& run, const std::string& model_url, const ClientOptions& client,
                                    const std::vector<QueuedRequest>& reqs) {
  PgDb& db = impl_->db;
  db.exec("INSERT INTO eval_runs (name, model_url, client) VALUES ($1, $2, $3::jsonb) ON CONFLICT (name) DO NOTHING",
          {run, model_url, client_json(client).dump()});
  auto rows = db.query("SELECT model_url FROM eval_runs WHERE name = $1", {run});
  if (rows.empty() || rows[0][0].value_or("") != model_url)
    fail(db.where(), "run '{}' already exists for model {}, not {}; choose another --run name", run,
         rows.empty() ? "?" : rows[0][0].value_or("?"), model_url);
  // Batches of rows travel as one JSON array parameter: one round trip per thousand requests.
  auto base = db.query("SELECT COALESCE(MAX(seq), -1) + 1 FROM eval_requests WHERE run = $1", {run});
  int64_t seq0 = to_i64(base.at(0).at(0));
  constexpr size_t kBatch = 1000;
  for (size_t i = 0; i < reqs.size(); i += kBatch) {
    json batch = json::array();
    for (size_t k = i; k < std::min(reqs.size(), i + kBatch); ++k)
      batch.push_back({{"h", reqs[k].hash}, {"s", seq0 + int64_t(k)}, {"e", reqs[k].endpoint}, {"b", reqs[k].body}});
    db.exec(
        "INSERT INTO eval_requests (run, hash, seq, endpoint, body) "
        "SELECT $1, x->>'h', (x->>'s')::bigint, x->>'e', x->>'b' FROM jsonb_array_elements($2::jsonb) AS x "
        "ON CONFLICT (run, hash) DO NOTHING",
        {run, batch.dump(-1, ' ', false, json::error_handler_t::replace)});
  }
  return progress(run);
}

namespace {
// Counts of run $1's requests by state, narrowed by `and_where` (which may use
// $3 onwards). A claim whose lease ran out after the last allowed attempt ($2)
// will never be answered: failed.
QueueProgress count_states(PgDb& db, std::string_view and_where, std::initializer_list<PgValue> params) {
  auto rows = db.query(
      "SELECT count(*), count(*) FILTER (WHERE state = 'done'), "
      "count(*) FILTER (WHERE state = 'failed' OR (state = 'claimed' AND lease_until < now() AND attempts >= $2)), "
      "count(*) FILTER (WHERE state = 'claimed') FROM eval_requests WHERE run = $1" + std::string(and_where),
      params);
  QueueProgress p;
  p.total = to_i64(rows.at(0)[0]);
  p.done = to_i64(rows.at(0)[1]);
  p.failed = to_i64(rows.at(0)[2]);
  p.claimed = to_i64(rows.at(0)[3]);
  return p;
}
}  // namespace

QueueProgress RequestQueue::progress(const std::string& run, int max_attempts) {
  return count_states(impl_->db, "", {run, std::to_string(max_attempts)});
}

std::map<std::string, json> RequestQueue::responses(const std::string& run) {
  std::map<std::string, json> out;
  for (auto& row : impl_->db.query("SELECT hash, response FROM eval_requests WHERE run = $1 AND state = 'done'", {run})) {
    auto j = json::parse(row[1].value_or(""), nullptr, false);
    if (j.is_discarded()) fail(impl_->db.where(), "run '{}': stored response of {} is not JSON", run, row[0].value_or(""));
    out.emplace(row[0].value_or(""), std::move(j));
  }
  return out;
}

namespace {
// A list of hashes as one JSON parameter ($2), for `hash IN (SELECT jsonb_array_elements_text($2::jsonb))`.
std::string hash_list(const std::vector<std::string>& hashes) { return json(hashes).dump(); }
}  // namespace

QueueProgress RequestQueue::progress(const std::string& run, const std::vector<std::string>& hashes, int max_attempts) {
  return count_states(impl_->db, " AND hash IN (SELECT jsonb_array_elements_text($3::jsonb))",
                      {run, std::to_string(max_attempts), hash_list(hashes)});
}

std::map<std::string, json> RequestQueue::responses(const std::string& run, const std::vector<std::string>& hashes) {
  std::map<std::string, json> out;
  for (auto& row : impl_->db.query("SELECT hash, response FROM eval_requests WHERE run = $1 AND state = 'done' AND "
                                   "hash IN (SELECT jsonb_array_elements_text($2::jsonb))",
                                   {run, hash_list(hashes)})) {
    auto j = json::parse(row[1].value_or(""), nullptr, false);
    if (j.is_discarded()) fail(impl_->db.where(), "run '{}': stored response of {} is not JSON", run, row[0].value_or(""));
    out.emplace(row[0].value_or(""), std::move(j));
  }
  return out;
}

std::vector<std::string> RequestQueue::failures(const std::string& run, int limit) {
  std::vector<std::string> out;
  for (auto& row : impl_->db.query("SELECT hash, COALESCE(error, 'lease expired after the last attempt') FROM "
                                   "eval_requests WHERE run = $1 AND state IN ('failed', 'claimed') AND "
                                   "(state = 'failed' OR lease_until < now()) ORDER BY seq LIMIT $2",
                                   {run, std::to_string(limit)}))
    out.push_back(row[0].value_or("").substr(0, 12) + ": " + row[1].value_or(""));
  return out;
}

WorkerStats run_worker(const WorkerOptions& opt) {
  PgDb db = PgDb::connect(opt.store_url);
  store::migrate(db, "eval_queue", kQueueMigrations);
  const std::string me = opt.worker_id.empty() ? default_worker_id() : opt.worker_id;
  WorkerStats stats;
  std::map<std::string, std::unique_ptr<OpenAIClient>> clients;  // per run
  auto idle_since = std::chrono::steady_clock::now();
  auto stopping = [&] { return opt.stop && opt.stop->load(); };
  while (!stopping()) {
    // Claim a shard: pending requests, or claims whose lease ran out (their worker died).
    auto claimed = db.query(
        "UPDATE eval_requests r SET state = 'claimed', worker = $1, attempts = r.attempts + 1, "
        "lease_until = now() + make_interval(secs => $2::float8) "
        "FROM (SELECT run, hash FROM eval_requests WHERE ($3 = '' OR run = $3) AND attempts < $5 AND "
        "(state = 'pending' OR (state = 'claimed' AND lease_until < now())) "
        "ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED) c "
        "WHERE r.run = c.run AND r.hash = c.hash RETURNING r.run, r.hash, r.endpoint, r.body",
        {me, fmt::format("{}", opt.lease_s), opt.run, std::to_string(std::max(1, opt.shard)),
         std::to_string(std::max(1, opt.max_attempts))});
    if (claimed.empty()) {
      double idle = std::chrono::duration<double>(std::chrono::steady_clock::now() - idle_since).count();
      if (opt.idle_exit_s >= 0 && idle >= opt.idle_exit_s) break;
      std::this_thread::sleep_for(std::chrono::duration<double>(opt.poll_s));
      continue;
    }
    // Requests that can never be claimed again are marked failed, so coordinators stop waiting.
    db.exec("UPDATE eval_requests SET state = 'failed', error = COALESCE(error, 'lease expired after the last attempt') "
            "WHERE state = 'claimed' AND lease_until < now() AND attempts >= $1",
            {std::to_string(std::max(1, opt.max_attempts))});
    for (const auto& row : claimed) {
      const std::string& run = *row[0];
      if (clients.count(run)) continue;
      auto r = db.query("SELECT model_url, client FROM eval_runs WHERE name = $1", {run});
      if (r.empty()) fail(db.where(), "run '{}' vanished", run);
      json cj = json::parse(r[0][1].value_or("{}"), nullptr, false);
      clients[run] = std::make_unique<OpenAIClient>(r[0][0].value_or(""),
                                                    client_from_json(cj.is_object() ? cj : json::object(), opt.concurrency));
    }
    // Answer the shard on up to `concurrency` threads, each with its own connection for results.
    std::atomic<size_t> next{0};
    std::mutex mu;
    std::exception_ptr error;
    auto work = [&] {
      try {
        PgDb out = PgDb::connect(opt.store_url);
        for (;;) {
          size_t i = next.fetch_add(1);
          if (i >= claimed.size() || stopping()) break;
          const auto& row = claimed[i];
          const std::string &run = *row[0], &hash = *row[1], &endpoint = *row[2];
          json body = json::parse(row[3].value_or(""), nullptr, false);
          std::optional<json> resp;
          std::string err;
          try {
            resp = clients.at(run)->post(endpoint, body);
          } catch (const std::exception& e) {
            err = e.what();
          }
          if (resp) {
            int64_t n = out.exec(
                "UPDATE eval_requests SET state = 'done', response = $4, answered_at = now(), error = NULL "
                "WHERE run = $1 AND hash = $2 AND worker = $3 AND state = 'claimed'",
                {run, hash, me, resp->dump(-1, ' ', false, json::error_handler_t::replace)});
            std::lock_guard<std::mutex> lk(mu);
            (n == 1 ? stats.answered : stats.lost)++;
          } else {
            out.exec("UPDATE eval_requests SET state = CASE WHEN attempts >= $4 THEN 'failed' ELSE 'pending' END, "
                     "error = $5, worker = NULL, lease_until = NULL "
                     "WHERE run = $1 AND hash = $2 AND worker = $3 AND state = 'claimed'",
                     {run, hash, me, std::to_string(std::max(1, opt.max_attempts)), err});
            std::lock_guard<std::mutex> lk(mu);
            stats.failed++;
          }
        }
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu);
        if (!error) error = std::current_exception();
      }
    };
    size_t nthreads = std::min<size_t>(claimed.size(), size_t(std::max(1, opt.concurrency)));
    std::vector<std::thread> threads;
    for (size_t t = 0; t < nthreads; ++t) threads.emplace_back(work);
    for (auto& t : threads) t.join();
    if (error) std::rethrow_exception(error);
    if (opt.progress)
      fmt::print(stderr, "\rworker {}: {} answered, {} lost, {} failed", me, stats.answered, stats.lost, stats.failed);
    idle_since = std::chrono::steady_clock::now();
  }
  if (opt.progress) fmt::print(stderr, "\n");
  return stats;
}

struct QueueRun::Impl {
  Impl(const std::string& url, std::string run_, std::string model_url_, const ClientOptions& c, bool progress_)
      : store_url(url), run(std::move(run_)), model_url(std::move(model_url_)), client(c), progress(progress_), q(url) {}
  std::string store_url, run, model_url;
  ClientOptions client;
  bool progress;
  std::mutex mu;  // one connection, used by the reading thread (enqueue) and the waiting one
  RequestQueue q;
  std::atomic<bool> stop{false};
  std::thread helper;
  std::mutex error_mu;
  std::exception_ptr helper_error;

  void rethrow_helper_error() {
    std::lock_guard<std::mutex> lk(error_mu);
    if (helper_error) std::rethrow_exception(helper_error);
  }
};

QueueRun::QueueRun(const std::string& store_url, const std::string& run, const std::string& model_url,
                   const ClientOptions& client, bool work_here, bool progress)
    : impl_(std::make_unique<Impl>(store_url, run, model_url, client, progress)) {
  // The run exists before the helper looks for work (and a name clash fails here, early).
  impl_->q.enqueue(run, model_url, client, {});
  if (work_here) {
    Impl* im = impl_.get();
    im->helper = std::thread([im] {
      try {
        WorkerOptions wo;
        wo.store_url = im->store_url;
        wo.run = im->run;
        wo.concurrency = im->client.concurrency;
        wo.poll_s = 0.05;
        wo.stop = &im->stop;
        run_worker(wo);
      } catch (...) {
        std::lock_guard<std::mutex> lk(im->error_mu);
        im->helper_error = std::current_exception();
      }
    });
  }
}

QueueRun::~QueueRun() {
  impl_->stop = true;
  if (impl_->helper.joinable()) impl_->helper.join();
}

void QueueRun::enqueue(const std::vector<QueuedRequest>& reqs) {
  std::lock_guard<std::mutex> lk(impl_->mu);
  impl_->q.enqueue(impl_->run, impl_->model_url, impl_->client, reqs);
}

std::map<std::string, json> QueueRun::wait(const std::vector<std::string>& hashes) {
  Impl& im = *impl_;
  auto locked = [&](auto f) {
    std::lock_guard<std::mutex> lk(im.mu);
    return f();
  };
  QueueProgress p = locked([&] { return im.q.progress(im.run, hashes); });
  if (p.total < static_cast<int64_t>(std::set<std::string>(hashes.begin(), hashes.end()).size()))
    fail(store::redact_url(im.store_url), "run '{}': {} of the requests waited for were never enqueued", im.run,
         static_cast<int64_t>(hashes.size()) - p.total);
  int64_t shown = -1;
  while (p.done + p.failed < p.total) {
    im.rethrow_helper_error();
    if (im.progress && p.done != shown) {
      QueueProgress all = locked([&] { return im.q.progress(im.run); });
      fmt::print(stderr, "\rqueue {}: {}/{} answered ({} claimed)   ", im.run, all.done, all.total, all.claimed);
      shown = p.done;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    p = locked([&] { return im.q.progress(im.run, hashes); });
  }
  im.rethrow_helper_error();
  if (p.failed > 0) {
    std::string list;
    for (const auto& f : locked([&] { return im.q.failures(im.run); })) list += "\n  " + f;
    fail<IoError>(store::redact_url(im.store_url), "run '{}': {} of {} requests failed:{}", im.run, p.failed, p.total,
                  list);
  }
  auto out = locked([&] { return im.q.responses(im.run, hashes); });
  for (const auto& h : hashes)
    if (!out.count(h)) fail<IoError>(store::redact_url(im.store_url), "run '{}': no answer stored for {}", im.run, h);
  return out;
}

std::map<std::string, json> execute_on_queue(const std::string& store_url, const std::string& run,
                                             const std::string& model_url, const ClientOptions& client,
                                             const std::vector<QueuedRequest>& reqs, bool work_here, bool progress) {
  QueueRun q(store_url, run, model_url, client, work_here, progress);
  q.enqueue(reqs);
  std::vector<std::string> hashes;
  hashes.reserve(reqs.size());
  for (const auto& r : reqs) hashes.push_back(r.hash);
  auto out = q.wait(hashes);
  if (progress) fmt::print(stderr, "\rqueue {}: {} answered                 \n", run, out.size());
  return out;
}

}  // namespace kaival::eval
