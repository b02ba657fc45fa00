// Carrying out the discipline's decisions on every clock the appliance
// steers, in one place, like linuxptp's update_clock() over clockadj.c:
//  - the served timescale: each ctl::ClockAdjustment of the engine becomes
//    the new clock model (Timescale::adjust), to publish;
//  - CLOCK_REALTIME as the discipline's own clock (clock.steer_system_clock
//    with source = "system", where the served timescale follows it): the
//    adjustment goes to the kernel clock instead, as a frequency
//    (hwclock::kernel_slew, the follower's conversion) that poll() sets
//    back to the base when the slew is in, so that the kernel does what the
//    engine's own account of the order (hwclock::Correction) says however
//    late the next update comes;
//  - the followers (clock.steer_phc, and CLOCK_REALTIME with another
//    source): one ctl::SteeredClock each, driven once a second by tick().
// The applier reads no clock of its own: it is handed the drivers (a
// SimulatedClock in the tests) and the TSC readings, and returns what to
// publish and log.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "control/ntp/engine.h"
#include "control/steering.h"
#include "control/timescale.h"
#include "hwclock/clock_driver.h"
#include "hwclock/follower.h"
#include "hwclock/system_clock.h"
#include "hwclock/servo.h"
#include "proto/channel_abi.h"

namespace ntp::ctl {

class ClockApplier {
 public:
  // timescale: the served timescale (outlives the applier); tsc_hz: the
  // timebase's rate, to time a slew's end on the direct target.
  ClockApplier(Timescale& timescale, double tsc_hz);

  // The applier [clock] asks for, owning the targets it opens:
  // clock.steer_phc followed, and CLOCK_REALTIME (clock.steer_system_clock)
  // steered directly with source = "system", else followed. nullptr with
  // err ("clock.steer_phc: ...") when a target cannot be opened; what it
  // will steer goes to log.
  static std::unique_ptr<ClockApplier> open(const config::Clock& clock, Timescale& timescale, double tsc_hz,
                                            std::vector<std::string>& log, std::string& err);

  // The engine's orders go to `target` (outlives the applier) instead of the
  // served model: CLOCK_REALTIME when it is the clock source itself.
  void steer_directly(hwclock::ClockDriver& target);
  // Keep `target` (outlives the applier) on the served time once a second;
  // offset_ns: the target's timescale minus UTC (37 s for a TAI PHC).
  void follow(hwclock::ClockDriver& target, int64_t offset_ns, const hwclock::ServoConfig& servo);

  struct Result {
    std::optional<proto::ClockModelData> publish;  // the served model, when it changed
    std::vector<std::string> log;                  // steps, starts and stops of followers
    std::vector<std::string> errors;               // a clock that could not be read or steered
  };

  // The engine's order, at timebase reading raw_now.
  Result apply(const ClockAdjustment& a, uint64_t raw_now);
  // Every pass of the control loop: the end of a slew, on the served model
  // (re-derived at its slew's end) and on the direct target (set back to
  // its base frequency).
  Result poll(uint64_t raw_now);
  // Once a second: the followers, while the served time is synchronized.
  Result tick(bool synchronized);

  const std::vector<std::unique_ptr<SteeredClock>>& steered() const { return steered_; }

  // A slew is running on the direct target (poll() ends it).
  bool direct_slewing() const { return direct_end_raw_ != 0; }

 private:
  void apply_direct(const ClockAdjustment& a, uint64_t raw_now, Result& r);

  Timescale& timescale_;
  double ticks_per_ns_;
  hwclock::ClockDriver* direct_ = nullptr;
  hwclock::KernelSlew direct_order_;
  uint64_t direct_end_raw_ = 0;          // when poll() sets the base again; 0: no slew running
  std::vector<std::unique_ptr<SteeredClock>> steered_;
  std::vector<std::unique_ptr<hwclock::ClockDriver>> owned_;  // the targets open() opened
};

}  // namespace ntp::ctl
