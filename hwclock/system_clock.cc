#include "hwclock/system_clock.h"

#include <sys/timex.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "hwclock/clock_adjtime.h"
#include "hwclock/tsc.h"

namespace ntp::hwclock {

namespace {

// The kernel's own disciplines, which must stay off while we steer.
constexpr int kKernelDiscipline = STA_PLL | STA_FLL | STA_PPSFREQ | STA_PPSTIME;

std::string adjtime_error(const char* what, int e) {
  std::string s = std::string("CLOCK_REALTIME: clock_adjtime(") + what + "): " + std::strerror(e);
  if (e == EPERM) s += " (steering the system clock needs CAP_SYS_TIME)";
  return s;
}

}  // namespace

bool RealtimeClock::read_ns(int64_t& ns, std::string& err) {
  timespec ts{};
  if (clock_gettime(CLOCK_REALTIME, &ts) < 0) {
    err = std::string("CLOCK_REALTIME: clock_gettime: ") + std::strerror(errno);
    return false;
  }
  ns = static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  return true;
}

bool RealtimeClock::cross_timestamp(ClockReading& out, std::string& /*err*/) {
  const CrossTimestamp x = hwclock::cross_timestamp(CLOCK_REALTIME, tries_);
  out = ClockReading{x.raw, x.clock_ns, x.width_ticks};
  return true;
}

// Once, before the first frequency setting: zero the phase the kernel PLL
// (ADJ_OFFSET, which only acts with STA_PLL on, hence the status in the
// same call) and adjtime() (ADJ_OFFSET_SINGLESHOT) may still be slewing in,
// so that from then on our frequency is all there is.
bool RealtimeClock::take_over(std::string& err) {
  timex cur{};
  if (clock_adjtime(CLOCK_REALTIME, &cur) < 0) {
    err = adjtime_error("read", errno);
    return false;
  }
  if (cur.offset != 0) {
    timex tx{};
    tx.modes = ADJ_STATUS | ADJ_OFFSET;
    tx.status = (cur.status | STA_PLL) & ~(STA_FLL | STA_PPSFREQ | STA_PPSTIME | STA_FREQHOLD);
    tx.offset = 0;
    if (clock_adjtime(CLOCK_REALTIME, &tx) < 0) {
      err = adjtime_error("ADJ_OFFSET", errno);
      return false;
    }
  }
  timex single{};
  single.modes = ADJ_OFFSET_SINGLESHOT;
  single.offset = 0;
  if (clock_adjtime(CLOCK_REALTIME, &single) < 0) {
    err = adjtime_error("ADJ_OFFSET_SINGLESHOT", errno);
    return false;
  }
  taken_over_ = true;
  return true;
}

bool RealtimeClock::set_frequency_ppb(double ppb, std::string& err) {
  if (!std::isfinite(ppb)) {
    err = "CLOCK_REALTIME: frequency correction is not a number";
    return false;
  }
  if (!taken_over_ && !take_over(err)) return false;
  timex cur{};
  if (clock_adjtime(CLOCK_REALTIME, &cur) < 0) {
    err = adjtime_error("read", errno);
    return false;
  }
  timex tx{};
  tx.modes = ADJ_STATUS;
  tx.status = cur.status & ~kKernelDiscipline;
  if (synchronized_) tx.status &= ~STA_UNSYNC;
  if (max_error_ns_ >= 0) {
    tx.modes |= ADJ_MAXERROR | ADJ_ESTERROR;
    tx.maxerror = static_cast<long>(std::min<int64_t>(max_error_ns_ / 1000, 16'000'000));
    tx.esterror = tx.maxerror;
  }
  const long freq = ppb_to_scaled_ppm(std::clamp(ppb, -max_frequency_ppb(), max_frequency_ppb()));
  if (const int e = adjtime_frequency(CLOCK_REALTIME, freq, tx); e != 0) {
    err = adjtime_error("ADJ_FREQUENCY", e);
    return false;
  }
  return true;
}

bool RealtimeClock::step_ns(int64_t delta_ns, std::string& err) {
  if (const int e = adjtime_step(CLOCK_REALTIME, delta_ns); e != 0) {
    err = adjtime_error("ADJ_SETOFFSET", e);
    return false;
  }
  return true;
}

}  // namespace ntp::hwclock
