// A kernel clock following the served timescale (see follower.h).
#include "hwclock/follower.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace ntp::hwclock {

namespace {

constexpr int64_t kDefaultIntervalNs = 1'000'000'000;

// a - b, wrapping instead of overflowing on garbage readings.
int64_t wrap_sub(int64_t a, int64_t b) { return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b)); }

double follower_max_ppb(const ServoConfig& cfg, const ClockDriver& target) {
  const double servo_max =
      std::isfinite(cfg.max_frequency_ppb) && cfg.max_frequency_ppb > 0 ? cfg.max_frequency_ppb : ServoConfig{}.max_frequency_ppb;
  const double t = target.max_frequency_ppb();
  return std::isfinite(t) ? std::min(servo_max, t) : servo_max;
}

ServoConfig with_max(ServoConfig cfg, double max_ppb) {
  if (max_ppb > 0) cfg.max_frequency_ppb = max_ppb;
  return cfg;
}

}  // namespace

double KernelSlew::end_ns() const {
  if (slew_ns == 0) return 0;
  const double rate_ppb = applied_ppb - base_ppb;
  if (rate_ppb == 0 || std::signbit(rate_ppb) != std::signbit(slew_ns)) return INFINITY;
  return slew_ns / (rate_ppb * 1e-9) * (1.0 + applied_ppb * 1e-9);
}

KernelSlew kernel_slew(double base_ppb, double slew_ns, double slew_rate_ppb, double max_ppb) {
  KernelSlew k;
  k.base_ppb = base_ppb;
  k.slew_ns = slew_ns;
  const double want = base_ppb + slew_rate_ppb;
  k.applied_ppb = std::clamp(want, -max_ppb, max_ppb);
  k.clamped = k.applied_ppb != want;
  return k;
}

ClockFollower::ClockFollower(ClockDriver& target, std::function<int64_t(uint64_t tsc)> served_ns_at_tsc,
                             ServoConfig cfg)
    : target_(target),
      served_(std::move(served_ns_at_tsc)),
      max_ppb_(follower_max_ppb(cfg, target)),
      servo_(with_max(cfg, max_ppb_)) {}

ClockFollower::Update ClockFollower::update(int64_t interval_ns) {
  Update u;
  if (interval_ns <= 0) interval_ns = kDefaultIntervalNs;
  if (!(max_ppb_ > 0)) {
    u.err = target_.name() + ": takes no frequency corrections, cannot follow";
    return u;
  }
  ClockReading r;
  if (!target_.cross_timestamp(r, u.err)) return u;
  u.width_ticks = r.width_ticks;
  u.offset_ns = wrap_sub(served_(r.tsc), r.clock_ns);

  // What the kernel has not yet slewed in of the order in force (negative:
  // it ran over), on the target's timescale without our steps.
  const int64_t t = wrap_sub(r.clock_ns, steps_ns_);
  double pending = 0;
  if (have_order_) pending = order_.left_ns(static_cast<double>(std::max<int64_t>(wrap_sub(t, t_order_), 0)));
  u.pending_ns = std::llround(pending);
  u.predicted_ns = wrap_sub(u.offset_ns, u.pending_ns);
  u.servo = servo_.sample(u.predicted_ns, r.clock_ns, interval_ns, 0, u.pending_ns);
  u.ok = true;

  double base = u.servo.freq_ppb;
  double slew = 0;
  switch (u.servo.action) {
    case ServoAction::kStep:
      if (target_.step_ns(u.servo.step_ns, u.err)) {
        steps_ns_ = static_cast<int64_t>(static_cast<uint64_t>(steps_ns_) + static_cast<uint64_t>(u.servo.step_ns));
        u.stepped = true;
      } else {
        // The servo counted on the step: restart it from its frequency.
        u.ok = false;
        servo_.reset();
      }
      break;
    case ServoAction::kSlew:
      slew = pending + u.servo.phase_ns;
      break;
    case ServoAction::kIgnore:
      break;  // the slew still to come is dropped
    case ServoAction::kPanic:
      // Nothing new: the order in force runs on (re-set so that its slew
      // gets its own interval again); nothing at all before a first order.
      if (!have_order_) {
        u.applied_ppb = order_.applied_ppb;
        return u;
      }
      base = order_.base_ppb;
      slew = pending;
      break;
  }

  KernelSlew k = kernel_slew(base, slew, slew_rate_ppb(slew, base, interval_ns, max_ppb_), max_ppb_);
  u.clamped = k.clamped;
  std::string ferr;
  if (target_.set_frequency_ppb(k.applied_ppb, ferr)) {
    have_order_ = true;
  } else {
    // The kernel runs on at what it had (if we know it), and the pending
    // phase is accounted with that.
    k.applied_ppb = order_.applied_ppb;
    u.err = u.ok ? ferr : u.err + "; " + ferr;
    u.ok = false;
  }
  t_order_ = t;
  order_ = k;
  u.slew_ns = slew;
  u.applied_ppb = order_.applied_ppb;
  return u;
}

bool ClockFollower::settle(std::string& err) {
  if (!have_order_) return true;
  if (!target_.set_frequency_ppb(order_.base_ppb, err)) return false;
  order_.applied_ppb = order_.base_ppb;
  order_.slew_ns = 0;
  return true;
}

}  // namespace ntp::hwclock
