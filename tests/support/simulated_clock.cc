#include "tests/support/simulated_clock.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace ntp::hwclock {

SimulatedClock::SimulatedClock(const SimulatedClockParams& p)
    : p_(p), rng_(p.seed), x_ns_(p.initial_offset_ns), osc_ppb_(p.frequency_error_ppm * 1000.0) {
  if (!(p_.ticks_per_ns > 0)) p_.ticks_per_ns = 1.0;
  if (!(p_.max_frequency_ppb >= 0)) p_.max_frequency_ppb = 0;
}

double SimulatedClock::gaussian() {  // Box-Muller, one value per call
  auto uniform01 = [this] { return (static_cast<double>(rng_() >> 11) + 0.5) * 0x1.0p-53; };
  const double u1 = uniform01(), u2 = uniform01();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

void SimulatedClock::advance_to(uint64_t tsc) {
  if (tsc <= tsc_) return;
  const double dt_ns = static_cast<double>(tsc - tsc_) / p_.ticks_per_ns;
  // The kernel scales the oscillator's own rate by the correction.
  const double rate = (1.0 + osc_ppb_ * 1e-9) * (1.0 + corr_ppb_ * 1e-9) - 1.0;
  x_ns_ += rate * dt_ns;
  if (p_.wander_ppb_per_sqrt_s > 0) osc_ppb_ += p_.wander_ppb_per_sqrt_s * std::sqrt(dt_ns * 1e-9) * gaussian();
  tsc_ = tsc;
}

bool SimulatedClock::read_ns(int64_t& ns, std::string& /*err*/) {
  const double noise = p_.read_noise_ns > 0 ? p_.read_noise_ns * gaussian() : 0.0;
  ns = true_ns_at(tsc_) + std::llround(x_ns_ + noise);
  return true;
}

bool SimulatedClock::cross_timestamp(ClockReading& out, std::string& err) {
  out.tsc = tsc_;
  out.width_ticks = p_.bracket_ticks;
  return read_ns(out.clock_ns, err);
}

bool SimulatedClock::set_frequency_ppb(double ppb, std::string& err) {
  if (!std::isfinite(ppb)) {
    err = p_.name + ": frequency correction is not a number";
    return false;
  }
  corr_ppb_ = std::clamp(ppb, -p_.max_frequency_ppb, p_.max_frequency_ppb);
  ++freq_sets_;
  return true;
}

bool SimulatedClock::step_ns(int64_t delta_ns, std::string& /*err*/) {
  x_ns_ += static_cast<double>(delta_ns);
  ++steps_;
  return true;
}

}  // namespace ntp::hwclock
