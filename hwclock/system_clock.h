// CLOCK_REALTIME as a ClockDriver (hwclock/clock_driver.h). Steering happens
// only where the configuration asks for it (`clock.steer_system_clock =
// true`, through control/clock_applier.h); never in tests: they only read.
//
// Steering takes the kernel's own discipline out of the loop so that the
// two do not fight: every frequency setting clears STA_PLL (and STA_FLL,
// STA_PPSFREQ, STA_PPSTIME), keeping the other status bits (leap second
// flags, STA_UNSYNC) as they are; the first one also zeroes what the
// kernel PLL or adjtime() still had to slew in. ADJ_FREQUENCY is absolute
// (relative to the uncorrected tick), and the kernel clamps it to 500 ppm.
// STA_UNSYNC (what `timedatectl` and the kernel's RTC sync look at) is left
// alone unless set_sync_status() says the clock is synchronized.
#pragma once

#include <cstdint>
#include <string>

#include "hwclock/clock_driver.h"

namespace ntp::hwclock {

class RealtimeClock final : public ClockDriver {
 public:
  explicit RealtimeClock(int tries = 8) : tries_(tries > 0 ? tries : 1) {}

  std::string name() const override { return "CLOCK_REALTIME"; }
  bool read_ns(int64_t& ns, std::string& err) override;
  // TSC-bracketed vDSO reads, the narrowest of `tries` (hwclock::cross_timestamp).
  bool cross_timestamp(ClockReading& out, std::string& err) override;
  // clock_adjtime(CLOCK_REALTIME, ADJ_FREQUENCY | ADJ_STATUS), STA_PLL off. Needs CAP_SYS_TIME.
  bool set_frequency_ppb(double ppb, std::string& err) override;
  // clock_adjtime(CLOCK_REALTIME, ADJ_SETOFFSET | ADJ_NANO). Needs CAP_SYS_TIME.
  bool step_ns(int64_t delta_ns, std::string& err) override;
  double max_frequency_ppb() const override { return 500'000; }  // the kernel's MAXFREQ

  // From the next set_frequency_ppb() on: synchronized clears STA_UNSYNC
  // (else it is left as it is) and, if max_error_ns >= 0, sets the kernel's
  // maximum error (ADJ_MAXERROR, us; the kernel grows it by 500 us/s and
  // sets STA_UNSYNC itself once it passes 16 s) and estimated error to it.
  void set_sync_status(bool synchronized, int64_t max_error_ns) {
    synchronized_ = synchronized;
    max_error_ns_ = max_error_ns;
  }

 private:
  bool take_over(std::string& err);

  int tries_;
  bool taken_over_ = false;
  bool synchronized_ = false;
  int64_t max_error_ns_ = -1;
};

}  // namespace ntp::hwclock
