#include "hwclock/clock_adjtime.h"

#include <cerrno>

#include "hwclock/clock_driver.h"

namespace ntp::hwclock {

int adjtime_step(clockid_t id, int64_t delta_ns) {
  const SecNsec s = normalize_step(delta_ns);
  timex tx{};
  tx.modes = ADJ_SETOFFSET | ADJ_NANO;
  tx.time.tv_sec = s.sec;
  tx.time.tv_usec = s.nsec;  // ns with ADJ_NANO
  return clock_adjtime(id, &tx) < 0 ? errno : 0;
}

int adjtime_frequency(clockid_t id, long scaled_ppm, timex extra) {
  extra.modes |= ADJ_FREQUENCY;
  extra.freq = scaled_ppm;
  return clock_adjtime(id, &extra) < 0 ? errno : 0;
}

}  // namespace ntp::hwclock
