// The invariant TSC: the free-running timebase of the clock model.
#pragma once

#include <cstdint>
#include <string>

#include <x86intrin.h>

namespace ntp::hwclock {

// A TSC read. Not serialising: on the receive path it is taken right after
// rx_burst returns and on the transmit path right before tx_burst, where a
// few cycles of reordering are far below the software timestamp's error.
inline uint64_t read_tsc() { return __rdtsc(); }

// True when CPUID says the TSC runs at a constant rate in all power states
// (CPUID 0x80000007 EDX bit 8), so it can be a timebase at all.
bool tsc_is_invariant();

// Measures the TSC frequency against CLOCK_MONOTONIC_RAW over duration_ms
// (the kernel's unslewed clock, so an NTP daemon on the host does not bias
// it). Returns ticks per second; relative error is about 1e-7 at 100 ms.
double calibrate_tsc_hz(int duration_ms);

// CLOCK_MONOTONIC in seconds: for intervals of the daemons' own loops
// (uptimes, hourly work, holdover), never for served time.
double monotonic_s();

// A cross-timestamp: the TSC read on either side of a system-clock read.
struct CrossTimestamp {
  uint64_t raw = 0;        // midpoint of the two TSC reads
  int64_t clock_ns = 0;    // the other clock, ns
  uint64_t width_ticks = 0;  // TSC ticks between the two reads (the uncertainty)
};

// The tightest of `tries` cross-timestamps against clock_id (CLOCK_REALTIME
// etc.); the narrowest bracket has the least scheduling noise.
CrossTimestamp cross_timestamp(int clock_id, int tries);

}  // namespace ntp::hwclock
