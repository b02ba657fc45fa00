// The host kernel clock's own view of its state (adjtimex(2) / ntp_adjtime,
// RFC 1589's kernel model): whether whoever disciplines it (chronyd, ntpd,
// ptp4l's phc2sys) calls it synchronized, its error bounds and the leap it
// has been told of. refclock_master with clock.source = "system" serves
// this clock, so its leap and root dispersion must follow it. Pure
// interpretation of a struct timex, plus a read-only reader (modes = 0:
// nothing is ever set).
#pragma once

#include <sys/timex.h>

#include <cstdint>
#include <string>

namespace ntp::hwclock {

struct KernelClockState {
  // Not STA_UNSYNC and the clock state not TIME_ERROR (adjtimex returns
  // TIME_ERROR also when STA_UNSYNC is set, or a PPS signal is lost).
  bool synchronized = false;
  int64_t max_error_ns = 0;  // timex.maxerror (us): the kernel's bound, growing 500 ppm until the next update
  int64_t est_error_ns = 0;  // timex.esterror (us): the discipline's estimate
  // STA_INS: +1 (a second is inserted at the end of the UTC day), STA_DEL:
  // -1, neither (or both, which the kernel never has): 0.
  int leap = 0;
};

// state: adjtimex's return value (TIME_OK, TIME_INS, ..., TIME_ERROR).
KernelClockState kernel_clock_state(const struct timex& tx, int state);

// Reads CLOCK_REALTIME's state (adjtimex with modes = 0); false with err.
bool read_kernel_clock_state(KernelClockState& out, std::string& err);

}  // namespace ntp::hwclock
