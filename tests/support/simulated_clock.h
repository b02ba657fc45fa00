// A simulated clock behind the ClockDriver interface, for the servo,
// follower and steering tests: test scaffolding, not production code.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>

#include "hwclock/clock_driver.h"

namespace ntp::hwclock {

// A simulated clock on a simulated TSC: no real time is read, time moves
// only by advance_to()/advance_ns().
//
// The clock's error (clock - true time) starts at initial_offset_ns and
// grows at the oscillator's rate error, optionally a random walk, combined
// with the frequency correction exactly as a kernel clock combines them
// (rate = (1 + osc) * (1 + corr)); the correction applies from the moment
// set_frequency_ppb() is called (the sim's current TSC) and is clamped to
// +-max_frequency_ppb. Reads happen at the current TSC, with gaussian
// noise; cross_timestamp() reports bracket_ticks as its width. Random
// numbers are std::mt19937_64 with hand-written transforms, so a seed
// replays the same trajectory with any standard library.
struct SimulatedClockParams {
  std::string name = "simulated";
  double ticks_per_ns = 3.0;                            // the simulated TSC's rate (3 GHz)
  int64_t start_true_ns = 1'767'225'600'000'000'000;    // true time at TSC 0 (2026-01-01)
  double initial_offset_ns = 0;                         // clock - true at TSC 0 (positive: ahead)
  double frequency_error_ppm = 0;                       // the oscillator gains this
  double wander_ppb_per_sqrt_s = 0;                     // random walk of the oscillator's error
  double read_noise_ns = 0;                             // gaussian, RMS, per read
  uint64_t bracket_ticks = 0;                           // reported width of a cross-timestamp
  double max_frequency_ppb = 500'000;
  uint64_t seed = 1;
};

class SimulatedClock final : public ClockDriver {
 public:
  explicit SimulatedClock(const SimulatedClockParams& p);

  std::string name() const override { return p_.name; }
  bool read_ns(int64_t& ns, std::string& err) override;
  bool cross_timestamp(ClockReading& out, std::string& err) override;
  bool set_frequency_ppb(double ppb, std::string& err) override;
  bool step_ns(int64_t delta_ns, std::string& err) override;
  double max_frequency_ppb() const override { return p_.max_frequency_ppb; }

  // Time: only forward (an earlier tsc is ignored).
  void advance_to(uint64_t tsc);
  void advance_ns(double true_ns) { advance_to(tsc_ + static_cast<uint64_t>(std::llround(true_ns * p_.ticks_per_ns))); }
  uint64_t now_tsc() const { return tsc_; }
  // True time at a TSC reading (the served timescale of an exact reference).
  int64_t true_ns_at(uint64_t tsc) const {
    return p_.start_true_ns + std::llround(static_cast<double>(tsc) / p_.ticks_per_ns);
  }

  // The noiseless truth, now: clock - true time (ns), the oscillator's
  // error and the correction in force (ppb), steps taken.
  double error_ns() const { return x_ns_; }
  double oscillator_ppb() const { return osc_ppb_; }
  double frequency_ppb() const { return corr_ppb_; }
  int steps() const { return steps_; }
  int frequency_sets() const { return freq_sets_; }

 private:
  double gaussian();

  SimulatedClockParams p_;
  std::mt19937_64 rng_;
  uint64_t tsc_ = 0;
  double x_ns_;       // clock - true
  double osc_ppb_;    // oscillator error
  double corr_ppb_ = 0;
  int steps_ = 0;
  int freq_sets_ = 0;
};

}  // namespace ntp::hwclock
