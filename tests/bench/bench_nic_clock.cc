// Cost of the per-packet hardware timestamp path (Google Benchmark):
//
//   nic_to_tsc                 raw NIC timestamp -> TSC ticks (hwclock/nic_clock.h)
//   nic_to_tsc+model_to_ns     raw NIC timestamp -> TSC -> UTC ns, falling back
//                              to a software timestamp when rejected: the
//                              full per-packet path (target < 10 ns)
//   model_to_ns                the clock model alone, for comparison
//   add_round                  one housekeeping round (8 cross-timestamps,
//                              refit over a full window of 32)
//
// Conversions run over an array of 1024 raw values (8 KiB, in L1) spread
// over +-1 s around the anchor of a 32-bit ns counter that wrapped since
// (so both signs of the delta and the wrap are exercised); items/s in the
// output is conversions per second, and ns/conversion = 1e9 / items/s.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "hwclock/clock_model.h"
#include "hwclock/nic_clock.h"

namespace {

using namespace ntp;
using namespace ntp::hwclock;

constexpr double kTscHz = 2.9e9;
constexpr uint64_t kTsc0 = 123456789012345ull;
constexpr int64_t kUtc2026 = 1767225600LL * 1000000000LL;
constexpr size_t kN = 1024;

// Exact rounds for a 32-bit ns counter running 37 ppm fast that wraps
// 0.5 s in; returns the mapper after `rounds` rounds 100 ms apart.
NicClockMapper fitted_mapper(int rounds, long double* t_end = nullptr) {
  NicClockParams p;
  p.counter_bits = 32;
  p.nominal_ticks_per_tsc = 1e9 / kTscHz;
  NicClockMapper m(p);
  const long double nic_hz = 1e9L * (1 + 37e-6L);
  const uint64_t nic_start = (uint64_t{1} << 32) - static_cast<uint64_t>(0.5L * nic_hz);
  long double t = 0;
  for (int r = 0; r < rounds; r++, t += 100e6L) {
    NicCrossTimestamp reads[8];
    for (int k = 0; k < 8; k++) {
      const long double tb = t + k * 2000.0L;
      reads[k].tsc_before = kTsc0 + static_cast<uint64_t>(tb * kTscHz / 1e9L);
      reads[k].tsc_after = kTsc0 + static_cast<uint64_t>((tb + 1500) * kTscHz / 1e9L);
      reads[k].nic_raw = (nic_start + static_cast<uint64_t>((tb + 750) * nic_hz / 1e9L)) & 0xFFFFFFFFu;
    }
    m.add_round(reads);
  }
  if (t_end) *t_end = t;
  return m;
}

struct Fixture {
  NicToTscMap map;
  ClockModelData model;
  std::vector<uint64_t> raw;
  Fixture() : raw(kN) {
    const NicClockMapper m = fitted_mapper(32);
    map = m.map();
    model = make_model(map.tsc0, kUtc2026, 1e9 / kTscHz, static_cast<uint64_t>(kTscHz));
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<int64_t> d(-1000000000, 1000000000);
    for (auto& r : raw) r = (map.nic0 + static_cast<uint64_t>(d(rng))) & map.mask;
  }
};

const Fixture& fixture() {
  static const Fixture f;
  return f;
}

void BM_nic_to_tsc(benchmark::State& state) {
  const Fixture& f = fixture();
  const NicToTscMap m = f.map;  // the worker's per-burst copy
  uint64_t sum = 0, ok = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < kN; i++) {
      uint64_t tsc;
      ok += nic_to_tsc(m, f.raw[i], tsc);
      sum += tsc;
    }
    benchmark::DoNotOptimize(sum);
    benchmark::DoNotOptimize(ok);
  }
  if (ok != state.iterations() * kN) state.SkipWithError("a conversion was rejected");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kN));
}
BENCHMARK(BM_nic_to_tsc)->Name("nic_to_tsc");

void BM_nic_to_utc(benchmark::State& state) {
  const Fixture& f = fixture();
  const NicToTscMap m = f.map;
  const ClockModelData model = f.model;
  const uint64_t sw_tsc = f.map.tsc0;  // the burst's software timestamp, the fallback
  int64_t sum = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < kN; i++) {
      uint64_t tsc;
      const bool hw = nic_to_tsc(m, f.raw[i], tsc);
      sum += model_to_ns(model, hw ? tsc : sw_tsc);
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kN));
}
BENCHMARK(BM_nic_to_utc)->Name("nic_to_tsc+model_to_ns");

void BM_model_to_ns(benchmark::State& state) {
  const Fixture& f = fixture();
  const ClockModelData model = f.model;
  int64_t sum = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < kN; i++) sum += model_to_ns(model, f.map.tsc0 + f.raw[i]);
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kN));
}
BENCHMARK(BM_model_to_ns)->Name("model_to_ns");

void BM_add_round(benchmark::State& state) {
  long double t = 0;
  NicClockMapper m = fitted_mapper(40, &t);
  const long double nic_hz = 1e9L * (1 + 37e-6L);
  const uint64_t nic_start = (uint64_t{1} << 32) - static_cast<uint64_t>(0.5L * nic_hz);
  NicCrossTimestamp reads[8];
  for (auto _ : state) {
    state.PauseTiming();
    for (int k = 0; k < 8; k++) {
      const long double tb = t + k * 2000.0L;
      reads[k].tsc_before = kTsc0 + static_cast<uint64_t>(tb * kTscHz / 1e9L);
      reads[k].tsc_after = kTsc0 + static_cast<uint64_t>((tb + 1500) * kTscHz / 1e9L);
      reads[k].nic_raw = (nic_start + static_cast<uint64_t>((tb + 750) * nic_hz / 1e9L)) & 0xFFFFFFFFu;
    }
    t += 100e6L;
    state.ResumeTiming();
    benchmark::DoNotOptimize(m.add_round(reads));
  }
  if (!m.valid() || m.restarts() != 0) state.SkipWithError("mapper lost its fit");
}
BENCHMARK(BM_add_round)->Name("add_round");

}  // namespace

BENCHMARK_MAIN();
