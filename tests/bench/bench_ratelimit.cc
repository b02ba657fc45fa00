// Cost of one rate-limiter decision (dp::RateLimiter::check_v4) on a table
// of 1M entries, the default ratelimit.clients (Google Benchmark). Figures,
// not tests.
//
//   hot              one client, again and again (its bucket stays in L1)
//   random_1M        uniformly random sources among 1M: nearly every call
//                    misses the caches (16 MiB table) and the TLB
//   mix_90_10        90% from 1000 regular clients, 10% random among 1M
//   random_1M_burst32  as random_1M, but as the worker would do it for a
//                    burst: prefetch_v4 for 32 sources, then check_v4 for each
//   source_gen       the source generator alone (subtract it from the above)
//   reply_cap_take   dp::ReplyCap::take
// Time advances 1 us per call (1 Mpps for one worker).
#include <benchmark/benchmark.h>

#include <cstdint>

#include "dataplane/ratelimit.h"

namespace {

using namespace ntp;

constexpr size_t kEntries = size_t{1} << 20;
constexpr uint32_t kPopulation = 1u << 20;

dp::RateLimitParams params() {
  dp::RateLimitParams p;
  p.interval_log2 = 3;
  p.burst = 8;
  p.leak_log2 = 2;
  return p;
}

// A cheap stream of sources: xorshift32 picks one of kPopulation clients,
// spread over the address space by an odd multiply.
struct SourceGen {
  uint32_t s = 0x9E3779B9;
  uint32_t next() {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return ((s & (kPopulation - 1)) + 1) * 2654435761u;
  }
};

dp::RateLimiter& table() {
  // One table for all: built (and touched) once, outside the timings.
  static dp::RateLimiter rl(kEntries, params(), 0x5eed5eed5eedull);
  return rl;
}

void BM_hot(benchmark::State& state) {
  dp::RateLimiter& rl = table();
  int64_t now_ns = 1000000000000;
  for (auto _ : state) {
    now_ns += 1000;
    benchmark::DoNotOptimize(rl.check_v4(0xC0000201, now_ns));
  }
}
BENCHMARK(BM_hot);

void BM_source_gen(benchmark::State& state) {
  SourceGen g;
  for (auto _ : state) benchmark::DoNotOptimize(g.next());
}
BENCHMARK(BM_source_gen);

void BM_random_1M(benchmark::State& state) {
  dp::RateLimiter& rl = table();
  SourceGen g;
  int64_t now_ns = 2000000000000;
  for (auto _ : state) {
    now_ns += 1000;
    benchmark::DoNotOptimize(rl.check_v4(g.next(), now_ns));
  }
  state.counters["fill"] = static_cast<double>(rl.fill());
}
BENCHMARK(BM_random_1M);

void BM_mix_90_10(benchmark::State& state) {
  dp::RateLimiter& rl = table();
  SourceGen g;
  uint32_t regular = 0;
  int64_t now_ns = 3000000000000;
  unsigned i = 0;
  for (auto _ : state) {
    now_ns += 1000;
    const uint32_t ip = (++i % 10 == 0) ? g.next() : 0x0A000000u + (regular++ % 1000);
    benchmark::DoNotOptimize(rl.check_v4(ip, now_ns));
  }
}
BENCHMARK(BM_mix_90_10);

void BM_random_1M_burst32(benchmark::State& state) {
  dp::RateLimiter& rl = table();
  SourceGen g;
  const int64_t step_ns = state.range(0);
  int64_t now_ns = 4000000000000 + step_ns * 1000000000;
  uint32_t burst[32];
  for (auto _ : state) {
    for (uint32_t& ip : burst) {
      ip = g.next();
      rl.prefetch_v4(ip);
    }
    for (uint32_t ip : burst) {
      now_ns += step_ns;
      benchmark::DoNotOptimize(rl.check_v4(ip, now_ns));
    }
  }
  state.SetItemsProcessed(state.iterations() * 32);
  state.counters["ns_per_check"] = benchmark::Counter(static_cast<double>(state.iterations()) * 32,
                                                      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_random_1M_burst32)->Arg(1000)->Arg(10000);

void BM_reply_cap_take(benchmark::State& state) {
  dp::ReplyCap cap(1000000);
  int64_t now_ns = 1000000000;
  for (auto _ : state) {
    now_ns += 1000;
    benchmark::DoNotOptimize(cap.take(now_ns));
  }
}
BENCHMARK(BM_reply_cap_take);

}  // namespace

BENCHMARK_MAIN();
