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

}  // namespace ntp::test
