// The discipline's correction of a clock, as the servo orders it: a base
// frequency, plus a phase slew of a bounded amount at a bounded rate, plus
// steps. corr(t) is the amount added to the uncorrected clock at time t.
// Bounding the slew's amount (rather than running at "frequency + phase
// term" until the next update) keeps a late or missing update from turning
// the phase correction into a frequency error. Used by the served clock
// (control/timescale), by the engine to know what is still to come, and by
// simulations. Pure arithmetic on ns; time only moves forward.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace ntp::hwclock {

class Correction {
 public:
  // The correction at t (ns of the clock's own timescale), t >= anchor.
  double value_at(int64_t t) const {
    const double dt = static_cast<double>(t - anchor_ns_);
    return phase_ns_ + dt * base_ppb_ * 1e-9 + slewed(dt);
  }
  // Its rate at t (ppb): base, plus the slew while one is running.
  double rate_at(int64_t t) const {
    return base_ppb_ + (t < slew_end_ns() ? slew_rate_ppb_ : 0.0);
  }
  // What of the ordered slew is still to be applied at t.
  double slew_left_at(int64_t t) const {
    return slew_ns_ - slewed(static_cast<double>(t - anchor_ns_));
  }
  // When the running slew ends (anchor if none).
  int64_t slew_end_ns() const {
    if (slew_rate_ppb_ == 0) return anchor_ns_;
    return anchor_ns_ + static_cast<int64_t>(std::ceil(std::fabs(slew_ns_ / (slew_rate_ppb_ * 1e-9))));
  }
  double base_ppb() const { return base_ppb_; }

  // From t on: step by step_ns, run at base_ppb, and slew slew_ns more at
  // slew_rate_ppb (same sign as slew_ns; the remainder of an earlier slew
  // is the caller's to carry into slew_ns or to drop).
  void order(int64_t t, int64_t step_ns, double base_ppb, double slew_ns, double slew_rate_ppb) {
    phase_ns_ = value_at(t) + static_cast<double>(step_ns);
    anchor_ns_ = t;
    base_ppb_ = base_ppb;
    slew_ns_ = slew_ns;
    slew_rate_ppb_ = slew_ns == 0 ? 0.0 : std::copysign(std::fabs(slew_rate_ppb), slew_ns);
  }

 private:
  double slewed(double dt) const {
    if (slew_rate_ppb_ == 0 || dt <= 0) return 0;
    const double done = dt * slew_rate_ppb_ * 1e-9;
    return std::fabs(done) >= std::fabs(slew_ns_) ? slew_ns_ : done;
  }

  int64_t anchor_ns_ = 0;
  double phase_ns_ = 0;
  double base_ppb_ = 0;
  double slew_ns_ = 0;
  double slew_rate_ppb_ = 0;
};

}  // namespace ntp::hwclock
