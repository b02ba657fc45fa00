#include "hwclock/kernel_state.h"

#include <cerrno>
#include <cstring>

namespace ntp::hwclock {

KernelClockState kernel_clock_state(const struct timex& tx, int state) {
  KernelClockState s;
  s.synchronized = !(tx.status & STA_UNSYNC) && state != TIME_ERROR;
  // maxerror and esterror are in microseconds whatever STA_NANO says (only
  // offset and time.tv_usec switch to ns).
  s.max_error_ns = static_cast<int64_t>(tx.maxerror) * 1000;
  s.est_error_ns = static_cast<int64_t>(tx.esterror) * 1000;
  const bool ins = tx.status & STA_INS, del = tx.status & STA_DEL;
  s.leap = ins == del ? 0 : (ins ? 1 : -1);
  return s;
}

bool read_kernel_clock_state(KernelClockState& out, std::string& err) {
  struct timex tx {};
  tx.modes = 0;  // read only
  const int state = adjtimex(&tx);
  if (state < 0) {
    err = std::string("adjtimex: ") + std::strerror(errno);
    return false;
  }
  out = kernel_clock_state(tx, state);
  return true;
}

}  // namespace ntp::hwclock
