// The clock discipline servo (see servo.h for the conventions and the loop).
#include "hwclock/servo.h"

#include <algorithm>
#include <cmath>

namespace ntp::hwclock {

namespace {

constexpr double kPpbPerUnit = 1e9;   // a dimensionless rate in ppb
constexpr int64_t kDefaultPollNs = 1'000'000'000;

// |v| without overflow at INT64_MIN.
uint64_t magnitude(int64_t v) {
  return v < 0 ? uint64_t{0} - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
}

// a - b and a + b, wrapping instead of overflowing on garbage input (C++20:
// the conversion back to int64_t is modular).
int64_t wrap_sub(int64_t a, int64_t b) { return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b)); }
int64_t wrap_add(int64_t a, int64_t b) { return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b)); }

}  // namespace

const char* to_string(ServoState s) {
  switch (s) {
    case ServoState::kNotSet: return "clock not set";
    case ServoState::kFrequencySet: return "frequency set";
    case ServoState::kSynchronized: return "clock synchronized";
    case ServoState::kSpike: return "clock spike";
  }
  return "unknown";
}


const char* to_string(ServoAction a) {
  switch (a) {
    case ServoAction::kIgnore: return "ignore";
    case ServoAction::kSlew: return "slew";
    case ServoAction::kStep: return "step";
    case ServoAction::kPanic: return "panic";
  }
  return "unknown";
}

// How closely the two halves of the frequency measurement must agree
// (dimensionless; 2 ppm), beyond what the offsets' errors explain.
constexpr double kFrequencyAgreement = 2e-6;

// The time over which the frequency is measured at the start: four poll
// intervals, but at least 16 s and at most 64 s (samples come every poll or,
// with iburst, every 2 s). At 10 us of offset noise that is about 1 ppm,
// against tens over one short interval.
int64_t frequency_baseline_ns(int64_t poll_ns) {
  return std::clamp<int64_t>(4 * poll_ns, 16'000'000'000, 64'000'000'000);
}

double slew_rate_ppb(double slew_ns, double base_ppb, int64_t interval_ns, double max_frequency_ppb) {
  if (slew_ns == 0) return 0;
  const double interval_s = static_cast<double>(interval_ns > 0 ? interval_ns : kDefaultPollNs) * 1e-9;
  const double want = std::fabs(slew_ns) / interval_s;  // ns/s = ppb
  const double room = slew_ns > 0 ? max_frequency_ppb - base_ppb : max_frequency_ppb + base_ppb;
  return std::copysign(std::min(want, std::max(room, 1000.0)), slew_ns);
}

Servo::Servo(ServoConfig cfg) : cfg_(cfg) {
  // Sanitise what config validation should already have refused, so that the
  // servo never produces NaN or an unbounded frequency.
  if (!std::isfinite(cfg_.max_frequency_ppb) || cfg_.max_frequency_ppb <= 0) {
    cfg_.max_frequency_ppb = ServoConfig{}.max_frequency_ppb;
  }
  if (cfg_.step_threshold_ns < 0) cfg_.step_threshold_ns = 0;
  if (cfg_.panic_threshold_ns < 0) cfg_.panic_threshold_ns = 0;
  if (!std::isfinite(cfg_.kp) || cfg_.kp <= 0 || cfg_.kp > 1) cfg_.kp = kDefaultKp;
  if (!std::isfinite(cfg_.ki) || cfg_.ki < 0 || cfg_.ki > 1) cfg_.ki = kDefaultKi;
  if (cfg_.initial_frequency_ppb && !std::isfinite(*cfg_.initial_frequency_ppb)) {
    cfg_.initial_frequency_ppb.reset();
  }
  have_freq_ = false;
  freq_est_ppb_ = 0;
  if (cfg_.initial_frequency_ppb) {
    freq_est_ppb_ = clamp_ppb(*cfg_.initial_frequency_ppb);
    have_freq_ = true;
  }
  reset();
}

void Servo::reset() {
  have_last_ = false;
  have_mid_ = false;
  spike_count_ = 0;
  state_ = have_freq_ ? ServoState::kFrequencySet : ServoState::kNotSet;
}

double Servo::clamp_ppb(double f) const {
  return std::clamp(f, -cfg_.max_frequency_ppb, cfg_.max_frequency_ppb);
}

ServoOutput Servo::done(ServoAction a, int64_t offset_ns, int64_t local_ns, int64_t poll_ns, double phase_ns) {
  const int64_t step_ns = a == ServoAction::kStep ? offset_ns : 0;
  have_last_ = true;
  // What the next prediction starts from: the offset with this order in.
  last_offset_ns_ = wrap_sub(offset_ns, step_ns + static_cast<int64_t>(std::llround(phase_ns)));
  last_local_ns_ = wrap_add(local_ns, step_ns);
  last_poll_ns_ = poll_ns;
  const bool saturated = std::fabs(freq_est_ppb_) >= cfg_.max_frequency_ppb;
  return ServoOutput{a, step_ns, freq_est_ppb_, a == ServoAction::kSlew ? phase_ns : 0.0, state_, saturated};
}

ServoOutput Servo::step(int64_t offset_ns, int64_t local_ns, int64_t poll_ns) {
  // The next used sample restarts the loop from the frequency estimate
  // (its offset is the step's error: phase, slewed out whole).
  spike_count_ = 0;
  if (have_freq_) state_ = ServoState::kFrequencySet;
  ServoOutput out = done(ServoAction::kStep, offset_ns, local_ns, poll_ns, 0);
  if (!have_freq_) have_last_ = true;  // kNotSet: measure the frequency from the stepped sample and the next
  return out;
}

ServoOutput Servo::sample(int64_t offset_ns, int64_t local_ns, int64_t poll_interval_ns, int64_t error_bound_ns,
                          int64_t pending_ns) {
  const int64_t poll_ns = poll_interval_ns > 0 ? poll_interval_ns : kDefaultPollNs;
  // The thresholds are on the offset the clock has now: the prediction plus
  // the phase still to come, which a step replaces (the caller drops it).
  // On the prediction alone, a slew that cannot run (the base at the
  // frequency limit) would hide an offset growing without bound.
  const int64_t current_ns = wrap_add(offset_ns, pending_ns);
  const uint64_t mag = magnitude(current_ns);

  if (cfg_.panic_threshold_ns > 0 && mag > static_cast<uint64_t>(cfg_.panic_threshold_ns)) {
    // Nothing applied, nothing remembered.
    return ServoOutput{ServoAction::kPanic, 0, freq_est_ppb_, 0, state_, false};
  }
  const bool beyond_step = cfg_.step_threshold_ns > 0 && mag > static_cast<uint64_t>(cfg_.step_threshold_ns);

  switch (state_) {
    case ServoState::kNotSet:
      return measure_frequency(offset_ns, local_ns, poll_ns, error_bound_ns, beyond_step);
    case ServoState::kFrequencySet:
      if (beyond_step) {
        state_ = ServoState::kSynchronized;
        return step(current_ns, local_ns, poll_ns);
      }
      return first_update(offset_ns, local_ns, poll_ns);
    case ServoState::kSynchronized:
    case ServoState::kSpike:
      break;
  }

  if (beyond_step) {
    ++spike_count_;
    if (spike_count_ < cfg_.stepout_samples) {
      // A spike: ignored until it persists. Run at the frequency estimate;
      // the caller drops the phase still to come.
      state_ = ServoState::kSpike;
      return ServoOutput{ServoAction::kIgnore, 0, freq_est_ppb_, 0, state_, false};
    }
    // It persisted: the reference (or our clock) really moved. Step and
    // keep the frequency estimate (the offset is not frequency information).
    return step(current_ns, local_ns, poll_ns);
  }
  spike_count_ = 0;
  return locked(offset_ns, local_ns, poll_ns);
}

ServoOutput Servo::measure_frequency(int64_t offset_ns, int64_t local_ns, int64_t poll_ns, int64_t error_bound_ns,
                                     bool beyond_step) {
  // With nothing ordered in between, the offset changes by -(f0 + freq) *
  // dt, where f0 is the oscillator's own error; the correction that cancels
  // f0 is freq + change / dt (linuxptp pi.c case 1). Three samples, half a
  // baseline apart, must agree on it: an upstream server that jumped or
  // slewed in between (it may be starting up too) would otherwise leave a
  // frequency error that the integral takes many updates to unlearn.
  const int64_t dt_ns = have_last_ ? wrap_sub(local_ns, last_local_ns_) : 0;
  const int64_t bound = std::max<int64_t>(error_bound_ns, 0);
  auto take = [&] {  // this sample becomes the latest of the measurement
    last_offset_ns_ = offset_ns;
    last_local_ns_ = local_ns;
    last_bound_ns_ = bound;
  };
  ServoAction action = ServoAction::kIgnore;
  if (dt_ns <= 0) {
    // The first sample (or time went backwards): start from this one, and
    // change nothing, so that the next ones measure the oscillator alone.
    have_last_ = true;
    have_mid_ = false;
    last_poll_ns_ = poll_ns;
    take();
    action = ServoAction::kSlew;
  } else if (dt_ns >= frequency_baseline_ns(last_poll_ns_) / 2) {
    const double slope = static_cast<double>(wrap_sub(offset_ns, last_offset_ns_)) / static_cast<double>(dt_ns);
    // Each offset is within its error bound of the truth (half the round
    // trip delay, RFC 5905 section 8), so two honest slopes differ by at
    // most (b_first + b_mid) / dt1 + (b_mid + b_now) / dt2.
    const double tolerance =
        std::max(kFrequencyAgreement, static_cast<double>(first_bound_ns_ + last_bound_ns_) / mid_dt_ns_ +
                                          static_cast<double>(last_bound_ns_ + bound) / static_cast<double>(dt_ns));
    if (have_mid_ && std::fabs(slope - mid_slope_) <= tolerance) {
      const double span = static_cast<double>(wrap_sub(local_ns, first_local_ns_));
      const double change = static_cast<double>(wrap_sub(offset_ns, first_offset_ns_));
      freq_est_ppb_ = clamp_ppb(freq_est_ppb_ + change / span * kPpbPerUnit);
      have_freq_ = true;
      have_mid_ = false;
      if (!beyond_step) return first_update(offset_ns, local_ns, poll_ns);
      state_ = ServoState::kSynchronized;
      return step(offset_ns, local_ns, poll_ns);
    }
    // The first half, or halves that disagree (start again from the
    // middle sample).
    have_mid_ = true;
    mid_slope_ = slope;
    mid_dt_ns_ = static_cast<double>(dt_ns);
    first_offset_ns_ = last_offset_ns_;
    first_local_ns_ = last_local_ns_;
    first_bound_ns_ = last_bound_ns_;
    take();
  }
  // (A sample too soon after the last one is not used.)
  if (beyond_step) {
    // Step, and keep the measurement going: what it holds moves with the
    // clock (offsets down by the step, our times up by it).
    last_offset_ns_ = wrap_sub(last_offset_ns_, offset_ns);
    first_offset_ns_ = wrap_sub(first_offset_ns_, offset_ns);
    last_local_ns_ = wrap_add(last_local_ns_, offset_ns);
    first_local_ns_ = wrap_add(first_local_ns_, offset_ns);
    return ServoOutput{ServoAction::kStep, offset_ns, freq_est_ppb_, 0, state_, false};
  }
  return ServoOutput{action, 0, freq_est_ppb_, 0, state_, false};
}

ServoOutput Servo::first_update(int64_t offset_ns, int64_t local_ns, int64_t poll_ns) {
  // The offset present when locked operation (re)starts is phase, not
  // frequency: slew it out whole, and keep it out of the integral.
  state_ = ServoState::kSynchronized;
  spike_count_ = 0;
  return done(ServoAction::kSlew, offset_ns, local_ns, poll_ns, static_cast<double>(offset_ns));
}

ServoOutput Servo::locked(int64_t offset_ns, int64_t local_ns, int64_t poll_ns) {
  state_ = ServoState::kSynchronized;
  const double dt_ns = static_cast<double>(wrap_sub(local_ns, last_local_ns_));
  const double t_prev = static_cast<double>(last_poll_ns_ > 0 ? last_poll_ns_ : poll_ns);
  const double offset = static_cast<double>(offset_ns);
  // Integral: Ki * offset / T per update when dt == T. A longer dt (missed
  // samples) holds proportionally more phase for the same frequency error,
  // so the weight is 1/dt; a shorter one is down-weighted by dt/T.
  if (dt_ns > 0) {
    const double span = std::max(dt_ns, t_prev);
    freq_est_ppb_ = clamp_ppb(freq_est_ppb_ + cfg_.ki * offset * dt_ns / (span * span) * kPpbPerUnit);
  }
  return done(ServoAction::kSlew, offset_ns, local_ns, poll_ns, cfg_.kp * offset);
}

}  // namespace ntp::hwclock
