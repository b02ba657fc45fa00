// Steering CLOCK_REALTIME (only where `clock.steer_system_clock = true`;
// never in tests): the servo computes, this applies with clock_adjtime,
// with the kernel's own PLL switched off so the two do not fight.
#pragma once

#include <cstdint>
#include <string>

namespace ntp::hwclock {

// Step by step_ns (if non-zero), then set the frequency correction to
// freq_ppb. Needs CAP_SYS_TIME. Returns false with err on failure.
bool steer_realtime(int64_t step_ns, double freq_ppb, std::string& err);

}  // namespace ntp::hwclock
