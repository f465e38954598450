// The arena's vote path on SQLite (synchronous=FULL, WAL, group commit): votes
// per second acknowledged by ArenaStore::vote, from 1 thread and from 16
// threads sharing commits, on a file under $TMPDIR. Uses only ArenaStore's
// public API, so the same source times any version of the store (bench/RESULTS.md
// compares the store before and after its SQL layer went backend-neutral).
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include "arena/store.h"

using namespace kaival::arena;
namespace fs = std::filesystem;

namespace {

void BM_Votes(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const int per_thread = 400 / threads;
  fs::path dir = fs::temp_directory_path() / ("kaival-vote-bench-" + std::to_string(::getpid()));
  int64_t votes = 0;
  for (auto _ : state) {
    state.PauseTiming();
    fs::remove_all(dir);
    fs::create_directories(dir);
    StoreOptions o;
    o.fast_password_hashing = true;
    auto s = ArenaStore::open((dir / "arena.db").string(), o);
    int64_t u = s->create_account("bench", "bench password", Role::Voter);
    CampaignFile f = load_campaign_file(std::string(KAIVAL_SOURCE_DIR) + "/testdata/arena/arena_campaign.yaml");
    f.arena.caps = {1000000, 1000000};
    int64_t cid = s->add_campaign(f, u);
    std::vector<std::string> ids;
    for (int k = 0; k < threads * per_thread; ++k) ids.push_back(s->new_battle(cid, u, "ip")->id);
    state.ResumeTiming();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        for (int k = 0; k < per_thread; ++k) s->vote({ids[t * per_thread + k], u, "ip", "model_a"});
      });
    for (auto& th : pool) th.join();
    votes += threads * per_thread;
  }
  fs::remove_all(dir);
  state.SetItemsProcessed(votes);
}
BENCHMARK(BM_Votes)->Arg(1)->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
