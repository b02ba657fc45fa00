// Keeping a kernel clock (a PHC or CLOCK_REALTIME) on the served timescale,
// like linuxptp's phc2sys: once per interval, measure the clock against the
// served timescale through a TSC cross-timestamp, hand the offset to a
// Servo (hwclock/servo.h) and carry out its order with the only means a
// kernel clock has: a frequency, and steps.
//
// Each update(interval):
//   1. target.cross_timestamp() -> (tsc, target_ns); the offset is
//      served(tsc) - target_ns (positive: the target is behind).
//   2. pending = the phase ordered earlier and not yet slewed in, as the
//      kernel really carried it out (below); the servo gets the PREDICTED
//      offset, offset - pending, and pending itself (its thresholds apply to
//      the offset the clock has now).
//   3. The order, as a frequency:
//        kSlew   base = freq_ppb, slew S = pending + phase_ns
//        kStep   step_ns(step), base = freq_ppb, S = 0 (the rest is dropped)
//        kIgnore base = freq_ppb, S = 0 (dropped)
//        kPanic  nothing new: the previous base, S = pending (the last order
//                runs on); the caller logs it and should stop following.
//      A slew of S is run as the frequency base + r for the next interval,
//      with r = slew_rate_ppb(S, base, interval, max): the whole slew in one
//      interval, so that it ends at the next update, which sets the
//      frequency anew; when the frequency limit bounds r, what is not in by
//      then is carried into the next order (it is still pending). The
//      frequency set is base + r, clamped to the target's limit.
//
// The kernel runs at whatever frequency was set last until it is set again:
// it knows nothing of a slew's end. So the pending phase is accounted
// exactly as the kernel carries it out, not as hwclock::Correction would
// (which stops the slew at its end):
//      pending(t) = S - (applied - base) * (t - t_order) / (1 + applied)
// with t on the target's own timescale less the steps we made: the kernel
// scales the oscillator's rate by (1 + applied), so (t - t_order) / (1 +
// applied) is the oscillator's time that the correction acted on (at 500
// ppm of slew, taking t - t_order itself would misplace 500 ns in every ms
// slewed, which the servo's integral would then take for a frequency
// error). An update
// on time finds pending = 0 (or what the limit held back); a late one finds
// pending < 0 (the slew ran over by r * lateness), an early one pending > 0:
// either way it goes into the next order, and the servo's prediction is
// what the clock shows once that is done. If the set frequency was clamped
// (the base at the limit) or failed, applied says what the kernel runs at,
// and the pending phase grows accordingly. Time between the cross-timestamp
// and the clock_adjtime call (microseconds) moves the slew's start by that
// much: r * 10 us is a few picoseconds.
//
// If updates stop, the kernel keeps base + r: call settle() when stopping
// (shutdown, the served timescale lost) to run at the base alone.
//
// Configuration: ServoConfig as for the NTP discipline; its
// max_frequency_ppb is lowered to the target's. A PHC may start anywhere
// (1970 after a reset, or TAI: 37 s from UTC): give a panic threshold of 0
// (never panic) for PHCs and fold the timescale offset (e.g. +37 s for a
// TAI PHC) into served_ns_at_tsc.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "hwclock/clock_driver.h"
#include "hwclock/servo.h"

namespace ntp::hwclock {

// A slew as a kernel clock carries it out: it knows only a frequency, so it
// runs at base + rate (applied, clamped to the clock's limit) from the
// order until it is told a new frequency. Pure; the follower and the clock
// applier (control/clock_applier.h) both steer kernel clocks through it.
struct KernelSlew {
  double base_ppb = 0;
  double slew_ns = 0;      // the phase the order slews in on top of the base
  double applied_ppb = 0;  // what the kernel is set to: base + rate, clamped
  bool clamped = false;    // base + rate was beyond the limit

  // What of slew_ns is not yet in after elapsed_ns of the clock's own time
  // (less steps) since the order; negative: the kernel ran over. The kernel
  // scales the oscillator by (1 + applied), so elapsed / (1 + applied) is
  // the oscillator's time the correction acted on.
  double left_ns(double elapsed_ns) const {
    const double osc_dt_ns = elapsed_ns / (1.0 + applied_ppb * 1e-9);
    return slew_ns - (applied_ppb - base_ppb) * osc_dt_ns * 1e-9;
  }
  // The elapsed_ns at which left_ns() is 0: when to set the base alone. 0
  // without a slew; infinite when the limit leaves no room to slew.
  double end_ns() const;
};

// The order for base_ppb plus a slew of slew_ns at slew_rate_ppb (signed
// like slew_ns, e.g. hwclock::slew_rate_ppb()), on a clock whose frequency
// correction is limited to +-max_ppb.
KernelSlew kernel_slew(double base_ppb, double slew_ns, double slew_rate_ppb, double max_ppb);

class ClockFollower {
 public:
  // target: the clock to steer (PHC or CLOCK_REALTIME; outlives the
  // follower); served_ns_at_tsc: the served timescale at a TSC reading (the
  // caller's clock model); cfg: the servo's configuration.
  ClockFollower(ClockDriver& target, std::function<int64_t(uint64_t tsc)> served_ns_at_tsc, ServoConfig cfg);

  struct Update {
    bool ok = false;
    std::string err;              // !ok: what failed (the reading, the step or the frequency)
    int64_t offset_ns = 0;        // served - target, measured
    int64_t pending_ns = 0;       // phase ordered earlier and not yet in (see above)
    int64_t predicted_ns = 0;     // offset_ns - pending_ns: what the servo was given
    uint64_t width_ticks = 0;     // the cross-timestamp's bracket
    ServoOutput servo;            // the servo's order
    double slew_ns = 0;           // the phase to slew from now on (S)
    double applied_ppb = 0;       // the frequency set on the target: base + slew rate, clamped
    bool clamped = false;         // base + slew rate was beyond the target's limit
    bool stepped = false;         // the target was stepped by servo.step_ns
  };

  // One measurement and one order; call every interval_ns (e.g. 1 s), the
  // interval until the next call (<= 0: 1 s).
  Update update(int64_t interval_ns);

  // Run at the base frequency alone and drop the slew still to come (call
  // when updates stop).
  bool settle(std::string& err);

  const Servo& servo() const { return servo_; }
  double base_ppb() const { return order_.base_ppb; }
  double applied_ppb() const { return order_.applied_ppb; }
  double max_frequency_ppb() const { return max_ppb_; }

 private:
  ClockDriver& target_;
  std::function<int64_t(uint64_t)> served_;
  double max_ppb_;
  Servo servo_;
  // The order in force (valid once have_order_): from t_order_ (target ns
  // less our steps) the kernel runs at order_.applied_ppb (what it was really
  // set to), of which order_.base_ppb is the base and the rest slews
  // order_.slew_ns.
  bool have_order_ = false;
  int64_t t_order_ = 0;
  KernelSlew order_;
  int64_t steps_ns_ = 0;  // sum of our steps
};

}  // namespace ntp::hwclock
