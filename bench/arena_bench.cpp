// Bradley-Terry + 1,000 bootstrap resamples on 1,000,000 battles among 50
// models (issue target: <= 10 s on 2 cores). Battles are aggregated into pair
// counts once; each resample is a multinomial over the pair-outcome cells.
#include <cmath>
#include <random>

#include <benchmark/benchmark.h>

#include "arena/bradley_terry.h"

using namespace kaival::arena;

namespace {

std::vector<Battle> synthetic_battles(int models, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> strength(0.0, 0.8);
  std::vector<double> s(models);
  for (double& x : s) x = strength(rng);
  std::uniform_int_distribution<int> pick(0, models - 1);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<Battle> out;
  out.reserve(n);
  while (static_cast<int>(out.size()) < n) {
    int a = pick(rng), b = pick(rng);
    if (a == b) continue;
    double p = 1.0 / (1.0 + std::exp(s[b] - s[a]));
    double v = u(rng);
    Outcome o = v < 0.1 ? Outcome::Tie : (u(rng) < p ? Outcome::WinA : Outcome::WinB);
    out.push_back({a, b, o});
  }
  return out;
}

void BM_AggregateBattles(benchmark::State& state) {
  auto battles = synthetic_battles(50, 1000000, 1);
  for (auto _ : state) benchmark::DoNotOptimize(aggregate(50, battles));
  state.SetItemsProcessed(state.iterations() * battles.size());
}
BENCHMARK(BM_AggregateBattles)->Unit(benchmark::kMillisecond);

void BM_RateWithBootstrap(benchmark::State& state) {
  auto battles = synthetic_battles(50, 1000000, 1);
  BootstrapOptions boot;
  boot.resamples = static_cast<int>(state.range(0));
  boot.threads = 2;
  for (auto _ : state) {
    PairTable t = aggregate(50, battles);  // counted: a real export starts from battles
    Leaderboard lb = rate(t, {}, boot);
    benchmark::DoNotOptimize(lb);
  }
}
BENCHMARK(BM_RateWithBootstrap)->Arg(1000)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
