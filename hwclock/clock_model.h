// The clock model: a linear map from the free-running timebase (TSC ticks)
// to disciplined UTC, utc_ns = utc0_ns + (raw - raw0) * mult / 2^40.
// Reading it is a multiply and a shift: no system call, no lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

#include "hwclock/leap.h"
#include "proto/channel_abi.h"

namespace ntp::hwclock {

using proto::ClockModelData;

// The model's linear time at timebase reading raw, without its leap: what
// the discipline steers and re-anchors (a model derived from a published one
// anchors here and copies the leap fields, or the leap would count twice).
// raw may be before raw0 (an RX timestamp taken before the model it is
// converted with was published).
// Past a slew's end (slew_end_raw != 0, raw after it) the rate is
// base_mult from the time at slew_end_raw: slewed_linear_ns, out of line.
int64_t slewed_linear_ns(const ClockModelData& m, uint64_t raw);
inline int64_t model_linear_ns(const ClockModelData& m, uint64_t raw) {
  // One predictable branch when no slew is set, or before its end (the
  // dataplane's case between two publications); & rather than && keeps it one.
  if ((m.slew_end_raw != 0) & (static_cast<int64_t>(raw - m.slew_end_raw) > 0)) [[unlikely]]
    return slewed_linear_ns(m, raw);
  const auto d = static_cast<__int128>(static_cast<int64_t>(raw - m.raw0));
  return m.utc0_ns + static_cast<int64_t>((d * static_cast<__int128>(m.mult)) >> proto::kModelShift);
}

// Served Unix ns at timebase reading raw: the linear time with the model's
// leap second applied (hwclock/leap.h), so the dataplane's RX/TX stamps and
// both processes agree across a leap. Monotonic except once, by design, for
// an inserted second that is not smeared (it is served twice, with the leap
// indicator set: RFC 5905 section 7.3). No leap: one predictable branch.
// There is no inverse (ns -> raw) here; a caller that searches for the raw
// of a served time must search model_linear_ns, which is monotonic.
inline int64_t model_to_ns(const ClockModelData& m, uint64_t raw) {
  const int64_t linear_ns = model_linear_ns(m, raw);
  if (m.leap_sign == 0) [[likely]]
    return linear_ns;
  return apply_leap(m, linear_ns);
}

inline uint64_t mult_from_ns_per_tick(double ns_per_tick) {
  return static_cast<uint64_t>(ns_per_tick * static_cast<double>(uint64_t{1} << proto::kModelShift) + 0.5);
}
inline double ns_per_tick(const ClockModelData& m) {
  return static_cast<double>(m.mult) / static_cast<double>(uint64_t{1} << proto::kModelShift);
}
// The rate the model settles at: base_mult past a slew's end, else mult.
inline uint64_t settled_mult(const ClockModelData& m) { return m.slew_end_raw != 0 ? m.base_mult : m.mult; }
inline double settled_ns_per_tick(const ClockModelData& m) {
  return static_cast<double>(settled_mult(m)) / static_cast<double>(uint64_t{1} << proto::kModelShift);
}

// The same mapping anchored at the slew's end, with the slew cleared:
// model_to_ns of both agree bit for bit for every raw at or past
// slew_end_raw (before it the result runs at base_mult, not slewing). What
// the control plane publishes when the slew is over. No slew: m itself.
ClockModelData end_slew(const ClockModelData& m);

// Whether a clock model read from the shared segment may be served from.
// The segment is written by another process (and, before issue 9, could be
// planted by another user): a model with mult = 0 would serve a frozen
// clock as synchronized. Checks: kModelValid set; nominal_hz within
// 1 MHz..100 GHz; mult (and base_mult while a slew runs) within
// kMaxModelRateError of the nominal rate; utc0_ns after 2020 and before
// 2200; a slew that ends at or after its anchor; a leap sign of -1, 0 or
// +1 on a UTC midnight, smeared over at most two days.
// tsc_hz: the caller's own calibration of the timebase (the dataplane's),
// 0 to judge against the model's nominal_hz alone; a model whose nominal_hz
// is off from it by more than kMaxModelRateError is refused too.
// Returns nullptr when plausible, else a fixed text saying what is wrong
// (no allocation: the dataplane's worker calls it at each refresh).
//
// Why 20 %: clock.max_frequency_ppm is at most 100000 ppm (10 %), and the
// slew the discipline runs on top and clock.frequency_ppm of the virtual
// source (at most 1000 ppm) add well under another 10 %; anything farther
// from the timebase's rate is not a clock discipline but garbage.
inline constexpr double kMaxModelRateError = 0.2;
inline constexpr int64_t kPlausibleEpochFirstNs = 1577836800LL * 1000000000LL;  // 2020-01-01 UTC
inline constexpr int64_t kPlausibleEpochEndNs = 7258118400LL * 1000000000LL;    // 2200-01-01 UTC
// max_rate_error: the bound on the rate (mult, base_mult) as a fraction,
// kMaxModelRateError when the caller knows nothing tighter; the dataplane
// passes model_rate_bound of its configuration.
const char* model_implausible(const ClockModelData& m, double tsc_hz, double max_rate_error = kMaxModelRateError);
inline bool model_plausible(const ClockModelData& m, double tsc_hz, double max_rate_error = kMaxModelRateError) {
  return model_implausible(m, tsc_hz, max_rate_error) == nullptr;
}

// The farthest a disciplined model's rate gets from its timebase's, as a
// fraction: the servo's frequency and the slew on top stay within
// clock.max_frequency_ppm (hwclock::slew_rate_ppb allows 1 ppm of room
// beyond it), the virtual source's oscillator adds its frequency_ppm, and
// kModelRateMarginPpm covers the two processes' calibrations of the TSC
// and rounding. Never beyond kMaxModelRateError.
inline constexpr double kModelRateMarginPpm = 500;
double model_rate_bound(double max_frequency_ppm, double source_frequency_ppm);

// A model anchored at raw with the given time and rate.
ClockModelData make_model(uint64_t raw, int64_t utc_ns, double ns_per_tick, uint64_t nominal_hz);

// A free-running oscillator relative to a host model: it reads
// host + offset_ns + (host - epoch_ns) * freq_ppm / 1e6, i.e. it starts
// offset_ns off at epoch_ns and gains freq_ppm.
ClockModelData oscillator_model(const ClockModelData& host, int64_t epoch_ns, int64_t offset_ns, double freq_ppm);

// Follows a reference clock (CLOCK_REALTIME) from cross-timestamps: the
// rate is the least-squares slope over the last `window` samples, and each
// update removes the phase error seen at that sample over the following
// interval, so the published model stays continuous. A reference jump of
// more than step_threshold_ns (the host clock was stepped) re-anchors.
class ReferenceTracker {
 public:
  struct Params {
    double nominal_hz = 0;             // calibrated timebase frequency
    int64_t step_threshold_ns = 1000000;
    size_t window = 32;                // samples in the slope fit
  };
  explicit ReferenceTracker(Params p);

  // A new cross-timestamp (raw ticks, reference ns). next_interval_ticks is
  // when the next update is expected; the phase error is spread over it.
  ClockModelData update(uint64_t raw, int64_t ref_ns, uint64_t next_interval_ticks);

  const ClockModelData& model() const { return model_; }
  int64_t last_error_ns() const { return last_error_ns_; }  // reference - model at the last sample
  uint64_t steps() const { return steps_; }
  double slope_ns_per_tick() const { return slope_; }

 private:
  struct Sample {
    uint64_t raw;
    int64_t ref_ns;
  };
  Params p_;
  std::deque<Sample> samples_;
  ClockModelData model_{};
  double slope_;
  int64_t last_error_ns_ = 0;
  uint64_t steps_ = 0;
  bool have_model_ = false;
};

// log2 of the time to read the clock (TSC read and model conversion), in
// seconds, rounded up: RFC 5905 "precision of the system clock, in log2
// seconds".
int8_t measure_precision_log2(const ClockModelData& m, double tsc_hz);

}  // namespace ntp::hwclock
