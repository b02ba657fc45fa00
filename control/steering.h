// Keeping other clocks on the served timescale (clock.steer_phc, and
// clock.steer_system_clock where the source is not the system clock
// itself): one hwclock::ClockFollower per target, updated once a second
// through the clock applier (control/clock_applier.h). Thin: the follower computes and steers through the
// ClockDriver it is given (a PhcClock or RealtimeClock in the daemon, a
// SimulatedClock in the tests).
//
// A target follows only while the served time is synchronized (a server
// steering the host clock to a clock that has not been set yet would hand
// its error on); when synchronization is lost, the target is settled at its
// base frequency and left to run, like a kernel clock in holdover.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "control/status/status.h"
#include "hwclock/clock_driver.h"
#include "hwclock/follower.h"
#include "hwclock/servo.h"

namespace ntp::ctl {

class SteeredClock {
 public:
  // offset_ns: the target's timescale minus UTC (37 s for a TAI PHC).
  SteeredClock(hwclock::ClockDriver& target, std::function<int64_t(uint64_t tsc)> served_utc_ns_at_tsc,
               int64_t offset_ns, const hwclock::ServoConfig& servo);

  // Once a second. Returns log lines (a step, an error, a start or a stop).
  std::vector<std::string> tick(bool synchronized);

  const status::SteeredClockStatus& status() const { return status_; }

 private:
  hwclock::ClockDriver& target_;
  std::function<int64_t(uint64_t)> served_;
  int64_t offset_ns_;
  hwclock::ServoConfig servo_cfg_;
  std::unique_ptr<hwclock::ClockFollower> follower_;  // while following
  status::SteeredClockStatus status_;
  uint64_t errors_logged_ = 0;
};

}  // namespace ntp::ctl
