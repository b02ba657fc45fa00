#include "hwclock/tsc.h"

#include <cpuid.h>
#include <time.h>

#include <algorithm>
#include <limits>

namespace ntp::hwclock {

bool tsc_is_invariant() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_max(0x80000000, nullptr) < 0x80000007u) return false;
  __cpuid(0x80000007, eax, ebx, ecx, edx);
  return (edx >> 8) & 1;
}

CrossTimestamp cross_timestamp(int clock_id, int tries) {
  CrossTimestamp best;
  best.width_ticks = std::numeric_limits<uint64_t>::max();
  for (int i = 0; i < std::max(tries, 1); i++) {
    timespec ts;
    const uint64_t t0 = read_tsc();
    clock_gettime(clock_id, &ts);
    const uint64_t t1 = read_tsc();
    if (t1 - t0 < best.width_ticks) {
      best.width_ticks = t1 - t0;
      best.raw = t0 + (t1 - t0) / 2;
      best.clock_ns = static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
    }
  }
  return best;
}

double calibrate_tsc_hz(int duration_ms) {
  const CrossTimestamp a = cross_timestamp(CLOCK_MONOTONIC_RAW, 16);
  timespec req{duration_ms / 1000, static_cast<long>(duration_ms % 1000) * 1000000L};
  while (clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &req) != 0) {
  }
  const CrossTimestamp b = cross_timestamp(CLOCK_MONOTONIC_RAW, 16);
  return static_cast<double>(b.raw - a.raw) * 1e9 / static_cast<double>(b.clock_ns - a.clock_ns);
}

double monotonic_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace ntp::hwclock
