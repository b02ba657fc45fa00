// A closed-loop simulation of the clock discipline servo (hwclock/servo.h),
// in the style of chrony's test/simulation: no real time, seeded randomness.
//
// A true clock (the reference) and our clock, whose error x = ours - true
// starts at -theta0 (so the true offset, reference - ours, is theta0) and
// grows at the oscillator's frequency error f (ppb, optionally a random walk)
// plus the discipline's correction: a hwclock::Correction on the true-time
// axis, ordered exactly as the control plane orders it (control/ntp/engine.cc).
// Every poll interval the control plane measures the offset as an NTP
// exchange would: true offset + (d_out - d_back)/2 with both one-way delays
// exponential with mean d (Laplace noise, RMS d/sqrt(2); error bound
// (d_out + d_back)/2, half the round trip), and hands the servo the
// PREDICTED offset: that minus the phase ordered and not yet slewed in
// (Correction::slew_left_at). The output is applied as:
//   kStep    step by step_ns, run at freq_ppb, drop the slew still to come;
//   kSlew    run at freq_ppb, slew (what is left + phase_ns) over one
//            interval at slew_rate_ppb();
//   kIgnore  run at freq_ppb, drop the slew still to come;
//   kPanic   nothing: the last order runs on.
//
// The random numbers are drawn with std::mt19937_64 and hand-written
// transforms (not the implementation-defined std:: distributions), so a
// seed replays the same trajectory with any standard library.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>
#include <vector>

#include "hwclock/correction.h"
#include "hwclock/servo.h"

namespace ntp::hwclock::sim {

struct SimParams {
  double theta0_ns = 0;      // initial true offset, reference - ours (positive: ours behind)
  double f0_ppm = 0;         // our oscillator gains this much (the servo must converge to -f0)
  double wander_ppb_per_sqrt_s = 0;  // random walk of the oscillator frequency
  double delay_mean_ns = 20'000;     // mean of each one-way delay
  int64_t poll_ns = 1'000'000'000;
  int64_t start_local_ns = 1'767'225'600'000'000'000;  // 2026-01-01, the true time at sample 0
  // Pass each sample's error bound (half its round-trip delay, as the
  // control plane does) to Servo::sample; false: 0 (none).
  bool pass_error_bound = true;
};

struct SimRecord {
  double true_offset_ns;  // reference - ours at the measurement, before the output is applied
  double slew_left_ns;    // the phase ordered earlier and still to come at the measurement
  int64_t measured_ns;    // what the servo was given: true offset + noise (+ extra) - slew_left
  int64_t error_bound_ns; // and the sample's error bound (half the round trip)
  ServoOutput out;
  double est_ppb;         // servo.frequency_ppb() after the sample
  double needed_ppb;      // the correction that cancels the oscillator now: -f
  double rate_ppb;        // the correction's rate right after the output is applied
                          // (base + slew rate; the highest of the interval, which
                          // then falls to the base when the slew ends)
  double base_ppb;        // the correction's base frequency after the output is applied
  double slew_ordered_ns; // the slew ordered at this sample (kSlew: left + phase_ns; else 0)
};

class ServoSim {
 public:
  ServoSim(const SimParams& p, uint64_t seed) : p_(p), rng_(seed) {
    x_ns_ = -p.theta0_ns;
    f_ppb_ = p.f0_ppm * 1000.0;
    t_ns_ = p.start_local_ns;
    corr_.order(t_ns_, 0, 0, 0, 0);
  }

  // One poll interval: measure (plus extra_ns, an outlier or a false
  // reference), hand the prediction to the servo, apply the output, let the
  // interval pass. Returns a copy of the record (log() keeps them all).
  SimRecord step(Servo& servo, int64_t extra_ns = 0) {
    const double d_out = exponential();
    const double d_back = exponential();
    const double noise = (d_out - d_back) / 2.0;
    const auto bound = p_.pass_error_bound ? static_cast<int64_t>(std::llround((d_out + d_back) / 2.0)) : 0;
    const double true_off = -x_ns_;
    const double left = corr_.slew_left_at(t_ns_);
    const auto measured = static_cast<int64_t>(std::llround(true_off + noise - left)) + extra_ns;
    const auto local = static_cast<int64_t>(std::llround(static_cast<double>(t_ns_) + x_ns_));
    const ServoOutput out = servo.sample(measured, local, p_.poll_ns, bound, static_cast<int64_t>(std::llround(left)));
    const double before = corr_.value_at(t_ns_);
    double slew = 0;
    switch (out.action) {
      case ServoAction::kStep:
        corr_.order(t_ns_, out.step_ns, out.freq_ppb, 0, 0);
        break;
      case ServoAction::kSlew:
        slew = left + out.phase_ns;
        corr_.order(t_ns_, 0, out.freq_ppb, slew,
                    slew_rate_ppb(slew, out.freq_ppb, p_.poll_ns, servo.config().max_frequency_ppb));
        break;
      case ServoAction::kIgnore:
        corr_.order(t_ns_, 0, out.freq_ppb, 0, 0);
        break;
      case ServoAction::kPanic:
        break;
    }
    x_ns_ += corr_.value_at(t_ns_) - before;  // the step, if any
    log_.push_back(SimRecord{true_off, left, measured, bound, out, servo.frequency_ppb(), -f_ppb_, corr_.rate_at(t_ns_), corr_.base_ppb(), slew});
    advance(p_.poll_ns);
    return log_.back();
  }

  void run(Servo& servo, int n) {
    for (int i = 0; i < n; ++i) step(servo);
  }

  // Let dt_ns pass without a sample (the last order runs on).
  void advance(int64_t dt_ns) {
    const double dt = static_cast<double>(dt_ns);
    x_ns_ += f_ppb_ * dt * 1e-9 + (corr_.value_at(t_ns_ + dt_ns) - corr_.value_at(t_ns_));
    t_ns_ += dt_ns;
    if (p_.wander_ppb_per_sqrt_s > 0) f_ppb_ += p_.wander_ppb_per_sqrt_s * std::sqrt(dt * 1e-9) * gaussian();
  }

  // The poll interval from now on.
  void set_poll(int64_t poll_ns) { p_.poll_ns = poll_ns; }

  // The reference itself jumps by d_ns (reference - ours grows by d_ns).
  void reference_step(double d_ns) { x_ns_ -= d_ns; }

  const std::vector<SimRecord>& log() const { return log_; }
  double true_offset_ns() const { return -x_ns_; }
  // The discipline's rate now (base + slew while it runs), its base, and
  // the slew still to come.
  double applied_ppb() const { return corr_.rate_at(t_ns_); }
  double base_ppb() const { return corr_.base_ppb(); }
  double slew_left_ns() const { return corr_.slew_left_at(t_ns_); }

 private:
  double uniform01() {  // (0, 1), 53 bits
    return (static_cast<double>(rng_() >> 11) + 0.5) * 0x1.0p-53;
  }
  double exponential() { return -p_.delay_mean_ns * std::log(uniform01()); }
  double gaussian() {  // Box-Muller, one value per call
    const double u1 = uniform01(), u2 = uniform01();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

  SimParams p_;
  std::mt19937_64 rng_;
  double x_ns_;       // ours - true
  double f_ppb_;      // oscillator frequency error
  Correction corr_;   // the discipline, on the true-time axis
  int64_t t_ns_;      // true time
  std::vector<SimRecord> log_;
};

// Figures of a run, as quoted in the test summaries.
struct SimFigures {
  // The first sample from which |true offset| stays < limit: to the end of
  // the log (hold 0) or for `hold` samples (where the noise alone may cross
  // the limit now and then); -1: never.
  int converged_at = -1;
  double rms_offset_ns = 0;    // over [from, to)
  double max_offset_ns = 0;    // over [from, to)
  double rms_freq_err_ppb = 0; // servo's frequency estimate - needed, over [from, to)
};

inline SimFigures figures(const std::vector<SimRecord>& log, double limit_ns, size_t from, size_t to, size_t hold = 0) {
  SimFigures f;
  if (hold == 0) {
    for (size_t i = log.size(); i-- > 0;) {
      if (std::fabs(log[i].true_offset_ns) >= limit_ns) break;
      f.converged_at = static_cast<int>(i);
    }
  } else {
    size_t run = 0;
    for (size_t i = 0; i < log.size(); ++i) {
      run = std::fabs(log[i].true_offset_ns) < limit_ns ? run + 1 : 0;
      if (run == hold) {
        f.converged_at = static_cast<int>(i + 1 - hold);
        break;
      }
    }
  }
  double so = 0, sf = 0;
  size_t n = 0;
  for (size_t i = from; i < to && i < log.size(); ++i, ++n) {
    so += log[i].true_offset_ns * log[i].true_offset_ns;
    const double fe = log[i].est_ppb - log[i].needed_ppb;
    sf += fe * fe;
    f.max_offset_ns = std::max(f.max_offset_ns, std::fabs(log[i].true_offset_ns));
  }
  if (n > 0) {
    f.rms_offset_ns = std::sqrt(so / static_cast<double>(n));
    f.rms_freq_err_ppb = std::sqrt(sf / static_cast<double>(n));
  }
  return f;
}

}  // namespace ntp::hwclock::sim
