// The timescale the appliance serves: a clock model built from the
// configured clock source. `system` follows CLOCK_REALTIME; `phc` follows a
// PTP hardware clock (its cross-timestamps, less clock.phc_utc_offset_s,
// passed to update_source()); `virtual` is a free-running oscillator with a
// configured offset and frequency error relative to the host clock (tests
// and the demo measure convergence against the host clock as truth). Pure:
// callers pass the cross-timestamps.
#pragma once

#include <cstdint>

#include "config/config.h"
#include "hwclock/clock_model.h"
#include "hwclock/correction.h"
#include "hwclock/leap.h"
#include "hwclock/tsc.h"

namespace ntp::ctl {

// The leap the served model is to apply at served time now_ns: the
// engine's decided leap for the end of today (SystemVariables::leap_sign:
// the leap file, or a majority of the sources on a leap day); when
// smearing and a leap file is given (table), the file's next leap from 36 h
// before it, since its smear begins at noon the day before its day.
struct ModelLeap {
  int32_t sign = 0;
  int64_t leap_ns = 0;  // the UTC midnight it falls at; 0 with sign 0
};
ModelLeap model_leap(int32_t engine_sign, int64_t now_ns, bool smear, const hwclock::LeapTable* table);

class Timescale {
 public:
  Timescale(const config::Clock& cfg, double nominal_hz);

  // A fresh CLOCK_REALTIME cross-timestamp; next_interval_ticks is when
  // the next update comes. Returns the model to publish.
  proto::ClockModelData update(const hwclock::CrossTimestamp& host, uint64_t next_interval_ticks);
  // source = phc: a fresh PHC cross-timestamp, already on UTC (the PHC's
  // reading less its UTC offset). Call before update(), which publishes.
  void update_source(const hwclock::CrossTimestamp& phc_utc, uint64_t next_interval_ticks);
  // source = phc: at least one update_source() so far.
  bool have_source() const { return cfg_.source != config::ClockSource::kPhc || have_src_; }
  // The served clock minus the source clock (the discipline's correction) at raw.
  int64_t minus_source_ns(uint64_t raw) const;

  // After a restart of the control plane: carry on the model the dataplane
  // is still serving, its anchor and its mult, bit for bit, a slew in it
  // included (to its slew_end_raw: its base_mult is the frequency). This process's
  // trackers know the source's rate only from a TSC calibration and a
  // cross-timestamp (wrong by ppm), so the model stays as it is for
  // kAdoptUpdates updates while they learn it; then (or at the first order,
  // if one comes sooner) the correction on top of the source is measured
  // as what makes the served clock go on at the same phase and rate.
  // disciplined = false (a real clock as the source and nothing that ever
  // orders a correction of the served model: refclock_master alone, or
  // CLOCK_REALTIME steered directly): the served clock goes back onto its
  // source instead, since a correction no order revisits would drift from
  // it forever. Call after the first update() of this process; correction_ppb()
  // is then the estimate the engine starts from.
  void adopt(const proto::ClockModelData& published, uint64_t raw_now, bool disciplined = true);
  // Long enough for the slope fit (tens of ns of cross-timestamp noise:
  // the rate to ~1 ppb) and for the trackers' own start, whose phase
  // error ServedClock spreads over 8 s, to die down to about 1 %.
  static constexpr int kAdoptUpdates = 40;
  // Still serving the adopted model verbatim.
  bool adopting() const { return adopting_; }
  // What the correction runs at beyond the engine's orders: the measured
  // rate less the estimate the engine was started from (0 without a
  // restart). The engine's frequency plus this is the real correction.
  double order_bias_ppb() const { return order_bias_ppb_; }

  // The served clock minus the host clock at raw (diagnostic).
  int64_t minus_host_ns(uint64_t raw) const;

  // The discipline's order, as ctl::ClockApplier hands it on (see
  // hwclock::Correction): step by step_ns at raw_now, run base_ppb faster
  // than the source, and slew slew_ns more at slew_rate_ppb. Returns the
  // new model to publish.
  proto::ClockModelData adjust(int64_t step_ns, double base_ppb, double slew_ns, double slew_rate_ppb,
                               uint64_t raw_now);
  // The leap second the served clock applies (hwclock/leap.h): sign at
  // leap_ns (the UTC midnight that ends the leap day), smeared over 24 h or
  // stepped; sign 0 withdraws one. A leap that has begun (its smear, or the
  // second) stays whatever is said until it is in; then it is folded into
  // the model's anchor (the served time unchanged, the leap fields cleared,
  // the correction and its frequency untouched). True when the published
  // model changed.
  bool set_leap(int32_t sign, int64_t leap_ns, bool smear, uint64_t raw_now);
  // Leaps folded in so far (each shifts the timescale by a second).
  uint64_t leaps_folded() const { return leaps_folded_; }

  // At or past the published model's slew end (slew_end_raw()): the same
  // model without its slew, the same mapping bit for bit (hwclock::end_slew);
  // before it, re-derives the model at raw_now. Returns it.
  proto::ClockModelData refresh(uint64_t raw_now);
  // The timebase reading at which the published model's slew ends
  // (ClockModelData::slew_end_raw, also of an adopted model); 0: none. The
  // model runs at its base from there by itself (a dead control plane
  // leaves no slew running); refresh() then publishes it without the slew.
  uint64_t slew_end_raw() const { return slew_end_raw_; }
  double correction_ppb() const { return corr_.base_ppb(); }

  const proto::ClockModelData& published() const { return published_; }
  const proto::ClockModelData& host() const { return host_.model(); }
  uint64_t host_steps() const { return host_.steps(); }
  // The host clock minus the host model at the last cross-timestamp.
  int64_t host_error_ns() const { return host_.last_error_ns(); }

 private:
  proto::ClockModelData derive_linear(uint64_t raw_now) const;  // source + correction
  proto::ClockModelData derive(uint64_t raw_now) const;         // and the leaps
  void fold_leap_if_done(uint64_t raw_now);
  void set_published(uint64_t raw_now);
  // The source's rate, ns per tick, from the trackers' slope fit (not
  // their phase-steered model).
  double source_ns_per_tick() const;
  // The correction that makes source + correction = pinned_ at raw_now in
  // phase and rate.
  void carry(uint64_t raw_now);
  // The end of the adoption (see adopt()).
  void hand_over(uint64_t raw_now);

  config::Clock cfg_;
  hwclock::ReferenceTracker host_;
  hwclock::ReferenceTracker src_;  // source = phc
  bool have_src_ = false;
  bool have_epoch_ = false;
  int64_t epoch_ns_ = 0;        // virtual: host time when the oscillator was offset_ns off
  int64_t offset_ns_ = 0;
  proto::ClockModelData source() const;
  // The discipline's correction on top of the source, in source time.
  hwclock::Correction corr_;
  bool have_corr_ = false;
  uint64_t slew_end_raw_ = 0;
  proto::ClockModelData published_{};
  // adopt(): the model carried on, and what was learnt about it.
  bool adopting_ = false;
  bool adopt_disciplined_ = true;
  int adopt_updates_ = 0;
  proto::ClockModelData pinned_{};
  double engine_start_ppb_ = 0;  // correction_ppb() at adopt: what the engine starts from
  double order_bias_ppb_ = 0;
  // The coming leap second, and the ones folded in (-1 s per insertion).
  int32_t leap_sign_ = 0;
  int64_t leap_ns_ = 0;
  bool leap_smear_ = false;
  int64_t leap_offset_ns_ = 0;
  uint64_t leaps_folded_ = 0;
  int64_t last_folded_leap_ns_ = 0;
};

}  // namespace ntp::ctl
