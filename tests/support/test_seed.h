// The seed of a test program's randomness, like chrony's test/unit: a fresh
// one per run, printed once to stderr as "<program>: TEST_SEED=<n>", or the
// one in the environment's TEST_SEED to replay a run.
#pragma once

#include <errno.h>  // program_invocation_short_name (GNU)

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>

namespace ntp::test {

inline uint64_t seed() {
  static const uint64_t s = [] {
    const char* e = std::getenv("TEST_SEED");
    const uint64_t v = e ? std::strtoull(e, nullptr, 0) : std::random_device{}();
    std::fprintf(stderr, "%s: TEST_SEED=%llu\n", program_invocation_short_name, static_cast<unsigned long long>(v));
    return v;
  }();
  return s;
}

// The seed of run r of scenario k of a simulation: independent
// trajectories per scenario, all replayed by TEST_SEED.
inline uint64_t run_seed(int scenario, int r) {
  return seed() + 1000ull * static_cast<uint64_t>(scenario) + static_cast<uint64_t>(r);
}

// Trajectories per scenario: the environment's `var` (to measure bounds
// over many runs) or `fallback`.
inline int runs_from_env(const char* var, int fallback = 20) {
  const char* e = std::getenv(var);
  const int v = e ? std::atoi(e) : 0;
  return v > 0 ? v : fallback;
}

}  // namespace ntp::test
