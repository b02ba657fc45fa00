#include "hwclock/clock_model.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "hwclock/tsc.h"

namespace ntp::hwclock {

int64_t slewed_linear_ns(const ClockModelData& m, uint64_t raw) {
  // The slew's piece up to slew_end_raw exactly as the fast path computes
  // it there, then base_mult on from it: continuous at slew_end_raw. All in
  // 128 bits, so nonsense from the other process wraps, never overflows.
  const auto d_end = static_cast<__int128>(static_cast<int64_t>(m.slew_end_raw - m.raw0));
  const auto d_on = static_cast<__int128>(static_cast<int64_t>(raw - m.slew_end_raw));
  const __int128 at_end = (d_end * static_cast<__int128>(m.mult)) >> proto::kModelShift;
  const __int128 on = (d_on * static_cast<__int128>(m.base_mult)) >> proto::kModelShift;
  return static_cast<int64_t>(static_cast<uint64_t>(m.utc0_ns) + static_cast<uint64_t>(static_cast<int64_t>(at_end)) +
                              static_cast<uint64_t>(static_cast<int64_t>(on)));
}

ClockModelData end_slew(const ClockModelData& m) {
  if (m.slew_end_raw == 0) return m;
  ClockModelData e = m;
  e.utc0_ns = model_linear_ns(m, m.slew_end_raw);
  e.raw0 = m.slew_end_raw;
  e.mult = m.base_mult;
  // freq_ppb (status) says the rate relative to nominal: less the slew's share.
  if (m.base_mult != 0)
    e.freq_ppb = m.freq_ppb -
                 std::llround((static_cast<double>(m.mult) / static_cast<double>(m.base_mult) - 1.0) * 1e9);
  e.slew_end_raw = 0;
  e.base_mult = 0;
  return e;
}

double model_rate_bound(double max_frequency_ppm, double source_frequency_ppm) {
  const double ppm = std::fabs(max_frequency_ppm) + 1.0 + std::fabs(source_frequency_ppm) + kModelRateMarginPpm;
  // NaN-safe: a bound that is no number is the widest.
  return ppm * 1e-6 < kMaxModelRateError ? ppm * 1e-6 : kMaxModelRateError;
}

const char* model_implausible(const ClockModelData& m, double tsc_hz, double max_rate_error) {
  if (!(m.flags & proto::kModelValid)) return "the clock model is not marked valid";
  if (m.nominal_hz < 1000000 || m.nominal_hz > 100000000000ULL)
    return "the clock model's nominal timebase frequency is outside 1 MHz..100 GHz";
  const double nominal_hz = static_cast<double>(m.nominal_hz);
  // NaN-safe: a comparison that fails refuses.
  if (tsc_hz > 0 && !(std::fabs(nominal_hz / tsc_hz - 1.0) <= kMaxModelRateError))
    return "the clock model's nominal timebase frequency is not this host's timebase";
  const double ref_hz = tsc_hz > 0 ? tsc_hz : nominal_hz;
  auto rate_ok = [&](uint64_t mult) {
    // ns per tick times ticks per s: 1e9 at the nominal rate.
    const double ns_per_s = static_cast<double>(mult) / static_cast<double>(uint64_t{1} << proto::kModelShift) * ref_hz;
    return std::fabs(ns_per_s / 1e9 - 1.0) <= max_rate_error;
  };
  if (!rate_ok(m.mult))
    return "the clock model's rate is farther off the timebase's nominal rate than clock.max_frequency_ppm allows";
  if (m.utc0_ns < kPlausibleEpochFirstNs || m.utc0_ns >= kPlausibleEpochEndNs)
    return "the clock model's anchor time is before 2020 or after 2200";
  if (m.slew_end_raw != 0) {
    if (static_cast<int64_t>(m.slew_end_raw - m.raw0) < 0) return "the clock model's slew ends before its anchor";
    if (!rate_ok(m.base_mult))
      return "the clock model's rate after its slew is farther off the nominal rate than clock.max_frequency_ppm allows";
  }
  if (m.leap_sign != 0) {
    constexpr int64_t kDayNs = 86400LL * 1000000000LL;
    if (m.leap_sign != 1 && m.leap_sign != -1) return "the clock model's leap sign is not -1, 0 or +1";
    if (m.leap_ns < kPlausibleEpochFirstNs || m.leap_ns >= kPlausibleEpochEndNs || m.leap_ns % kDayNs != 0)
      return "the clock model's leap second is not at a UTC midnight between 2020 and 2200";
    if (m.leap_smear_ns < 0 || m.leap_smear_ns > 2 * kDayNs)
      return "the clock model's leap smear window is negative or longer than two days";
  }
  return nullptr;
}

ClockModelData make_model(uint64_t raw, int64_t utc_ns, double ns_per_tick_v, uint64_t nominal_hz) {
  ClockModelData m;
  m.raw0 = raw;
  m.utc0_ns = utc_ns;
  m.mult = mult_from_ns_per_tick(ns_per_tick_v);
  m.nominal_hz = nominal_hz;
  m.freq_ppb = nominal_hz ? std::llround((ns_per_tick_v * static_cast<double>(nominal_hz) / 1e9 - 1.0) * 1e9) : 0;
  m.flags = proto::kModelValid;
  return m;
}

ClockModelData oscillator_model(const ClockModelData& host, int64_t epoch_ns, int64_t offset_ns, double freq_ppm) {
  ClockModelData v = host;
  const double f = freq_ppm * 1e-6;
  v.utc0_ns = host.utc0_ns + offset_ns + std::llround(static_cast<double>(host.utc0_ns - epoch_ns) * f);
  v.mult = mult_from_ns_per_tick(ns_per_tick(host) * (1.0 + f));
  // A host model that slews (none does today) stays one: both rates scaled.
  if (host.slew_end_raw != 0) v.base_mult = mult_from_ns_per_tick(settled_ns_per_tick(host) * (1.0 + f));
  v.freq_ppb = host.freq_ppb + std::llround(freq_ppm * 1000.0);
  return v;
}

ReferenceTracker::ReferenceTracker(Params p) : p_(p), slope_(1e9 / p.nominal_hz) {}

ClockModelData ReferenceTracker::update(uint64_t raw, int64_t ref_ns, uint64_t next_interval_ticks) {
  if (have_model_) {
    last_error_ns_ = ref_ns - model_to_ns(model_, raw);
    // With one sample the rate is still the nominal one and a large error
    // is a wrong rate, not a step: fit it first.
    if (samples_.size() >= 2 && std::llabs(last_error_ns_) > p_.step_threshold_ns) {
      samples_.clear();  // the reference jumped: the history no longer fits
      have_model_ = false;
      steps_++;
    }
  }
  samples_.push_back({raw, ref_ns});
  while (samples_.size() > p_.window) samples_.pop_front();

  if (samples_.size() >= 2) {
    // Least-squares slope, in coordinates relative to the first sample so
    // that doubles keep sub-ns resolution.
    const Sample& s0 = samples_.front();
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    const double n = static_cast<double>(samples_.size());
    for (const Sample& s : samples_) {
      const double x = static_cast<double>(s.raw - s0.raw);
      const double y = static_cast<double>(s.ref_ns - s0.ref_ns);
      sx += x;
      sy += y;
      sxx += x * x;
      sxy += x * y;
    }
    const double den = n * sxx - sx * sx;
    if (den > 0) slope_ = (n * sxy - sx * sy) / den;
  }

  const uint64_t nominal = static_cast<uint64_t>(std::llround(p_.nominal_hz));
  if (!have_model_) {
    model_ = make_model(raw, ref_ns, slope_, nominal);
    have_model_ = true;
    return model_;  // last_error_ns_ keeps the size of the step, if one
  }
  // Continuous: anchor at our own value at raw, and steer the rate so the
  // error seen now is gone by the next update.
  const int64_t here = model_to_ns(model_, raw);
  const double interval = static_cast<double>(std::max<uint64_t>(next_interval_ticks, 1));
  const double rate = slope_ + static_cast<double>(last_error_ns_) / interval;
  model_ = make_model(raw, here, rate, nominal);
  return model_;
}

int8_t measure_precision_log2(const ClockModelData& m, double tsc_hz) {
  // Median cost of back-to-back reads, like chrony's precision measurement
  // of its clock reading.
  constexpr int kReads = 1001;
  std::vector<uint64_t> cost(kReads);
  volatile int64_t sink = 0;
  uint64_t prev = read_tsc();
  for (int i = 0; i < kReads; i++) {
    sink = model_to_ns(m, read_tsc());
    const uint64_t now = read_tsc();
    cost[i] = now - prev;
    prev = now;
  }
  (void)sink;
  std::nth_element(cost.begin(), cost.begin() + kReads / 2, cost.end());
  const double s = std::max(static_cast<double>(cost[kReads / 2]) / tsc_hz, 1e-9);
  return static_cast<int8_t>(std::ceil(std::log2(s)));
}

}  // namespace ntp::hwclock
