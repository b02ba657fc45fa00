#include "hwclock/system_clock.h"

#include <sys/timex.h>
#include <time.h>

#include <cerrno>
#include <cmath>
#include <cstring>

namespace ntp::hwclock {

bool steer_realtime(int64_t step_ns, double freq_ppb, std::string& err) {
  if (step_ns != 0) {
    timex tx{};
    tx.modes = ADJ_SETOFFSET | ADJ_NANO;
    int64_t sec = step_ns / 1000000000;
    int64_t nsec = step_ns % 1000000000;
    if (nsec < 0) {  // the kernel wants 0 <= tv_usec (ns with ADJ_NANO) < 1e9
      nsec += 1000000000;
      sec -= 1;
    }
    tx.time.tv_sec = sec;
    tx.time.tv_usec = nsec;
    if (clock_adjtime(CLOCK_REALTIME, &tx) < 0) {
      err = std::string("clock_adjtime(ADJ_SETOFFSET): ") + std::strerror(errno);
      return false;
    }
  }
  timex tx{};
  // ADJ_FREQUENCY takes ppm with a 16-bit binary fraction; STA_PLL off
  // keeps the kernel from disciplining on its own.
  tx.modes = ADJ_FREQUENCY | ADJ_STATUS;
  tx.freq = std::lround(freq_ppb / 1000.0 * 65536.0);
  tx.status = 0;
  if (clock_adjtime(CLOCK_REALTIME, &tx) < 0) {
    err = std::string("clock_adjtime(ADJ_FREQUENCY): ") + std::strerror(errno);
    return false;
  }
  return true;
}

}  // namespace ntp::hwclock
