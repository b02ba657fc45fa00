#include "control/timescale.h"

#include <algorithm>
#include <cmath>

#include "hwclock/leap.h"

namespace ntp::ctl {

ModelLeap model_leap(int32_t engine_sign, int64_t now_ns, bool smear, const hwclock::LeapTable* table) {
  ModelLeap l;
  if (engine_sign != 0) l = {std::clamp(engine_sign, -1, 1), hwclock::end_of_utc_day_ns(now_ns)};
  if (smear && table)
    if (const auto next = hwclock::next_leap(*table, now_ns);
        next && next->at_ns - now_ns <= hwclock::kSmearWindowNs * 3 / 2)
      l = {next->sign, next->at_ns};
  return l;
}

Timescale::Timescale(const config::Clock& cfg, double nominal_hz)
    : cfg_(cfg),
      host_({.nominal_hz = nominal_hz, .step_threshold_ns = 1000000, .window = 32}),
      src_({.nominal_hz = nominal_hz, .step_threshold_ns = 1000000, .window = 32}) {
  offset_ns_ = std::llround(cfg.offset_ms * 1e6);
}

proto::ClockModelData Timescale::update(const hwclock::CrossTimestamp& host, uint64_t next_interval_ticks) {
  host_.update(host.raw, host.clock_ns, next_interval_ticks);
  if (!have_epoch_) {
    epoch_ns_ = host.clock_ns;
    have_epoch_ = true;
  }
  if (adopting_ && ++adopt_updates_ >= kAdoptUpdates) hand_over(host.raw);
  set_published(host.raw);
  return published_;
}

void Timescale::update_source(const hwclock::CrossTimestamp& phc_utc, uint64_t next_interval_ticks) {
  src_.update(phc_utc.raw, phc_utc.clock_ns, next_interval_ticks);
  have_src_ = true;
}

proto::ClockModelData Timescale::source() const {
  if (cfg_.source == config::ClockSource::kSystem) return host_.model();
  // Until the PHC has been read the host clock stands in (the dataplane
  // then serves unsynchronized anyway: the control plane reads the PHC
  // before it publishes a synchronized state).
  if (cfg_.source == config::ClockSource::kPhc) return have_src_ ? src_.model() : host_.model();
  return hwclock::oscillator_model(host_.model(), epoch_ns_, offset_ns_, cfg_.frequency_ppm);
}

proto::ClockModelData Timescale::derive_linear(uint64_t raw_now) const {
  // served(raw) = src(raw) + corr(src(raw)); corr is piecewise linear (a
  // slew ends), and so is the model: the tangent at raw_now, and from the
  // slew's end (slew_end_raw) on at the base rate, so that a dataplane left
  // alone stops slewing there. Re-derived at every update.
  if (adopting_) return pinned_;
  const proto::ClockModelData src = source();
  if (!have_corr_) return src;
  const int64_t t = hwclock::model_to_ns(src, raw_now);
  proto::ClockModelData m = src;
  const double rate = corr_.rate_at(t);
  m.raw0 = raw_now;
  m.utc0_ns = t + std::llround(corr_.value_at(t));
  m.mult = hwclock::mult_from_ns_per_tick(hwclock::ns_per_tick(src) * (1.0 + rate * 1e-9));
  m.freq_ppb = src.freq_ppb + std::llround(rate);
  m.slew_end_raw = 0;
  m.base_mult = 0;
  if (corr_.slew_left_at(t) != 0) {
    // Invert the source model: raw = raw0 + (t - utc0) / ns_per_tick, the
    // first reading at which the slew is in.
    const int64_t end_ns = corr_.slew_end_ns();
    const double ticks = static_cast<double>(end_ns - src.utc0_ns) / hwclock::ns_per_tick(src);
    uint64_t end_raw = src.raw0 + static_cast<uint64_t>(std::ceil(std::max(ticks, 0.0)));
    while (hwclock::model_to_ns(src, end_raw) < end_ns) ++end_raw;
    m.slew_end_raw = std::max(end_raw, raw_now + 1);
    m.base_mult = hwclock::mult_from_ns_per_tick(hwclock::ns_per_tick(src) * (1.0 + corr_.base_ppb() * 1e-9));
  }
  return m;
}

proto::ClockModelData Timescale::derive(uint64_t raw_now) const {
  // The leaps folded so far shift the whole timescale; the coming one is
  // the model's to apply (hwclock/leap.h). The pinned model has its own
  // folds in its anchor already.
  proto::ClockModelData m = derive_linear(raw_now);
  if (!adopting_) m.utc0_ns += leap_offset_ns_;
  hwclock::set_model_leap(m, leap_sign_, leap_ns_, leap_smear_);
  return m;
}

bool Timescale::set_leap(int32_t sign, int64_t leap_ns, bool smear, uint64_t raw_now) {
  sign = std::clamp(sign, -1, 1);
  // After an inserted second is folded the served time is still on the
  // leap day for a second, and the engine still announces it: it is in.
  if (sign != 0 && leaps_folded_ != 0 && leap_ns <= last_folded_leap_ns_) sign = 0;
  if (sign == leap_sign_ && (sign == 0 || (leap_ns == leap_ns_ && smear == leap_smear_))) return false;
  if (leap_sign_ != 0) {
    // A leap that has begun (its smear, or the second itself) is carried
    // through to its fold whatever is said now: withdrawing it half-way
    // would be a jump.
    const int64_t begin_ns = leap_smear_ ? leap_ns_ - hwclock::kSmearWindowNs / 2
                                         : (leap_sign_ > 0 ? leap_ns_ : leap_ns_ - hwclock::kLeapSecondNs);
    if (hwclock::model_linear_ns(published_, raw_now) >= begin_ns) return false;
  }
  leap_sign_ = sign;
  leap_ns_ = sign == 0 ? 0 : leap_ns;
  leap_smear_ = sign != 0 && smear;
  set_published(raw_now);
  return true;
}

void Timescale::fold_leap_if_done(uint64_t raw_now) {
  if (published_.leap_sign == 0 ||
      hwclock::model_linear_ns(published_, raw_now) < hwclock::leap_complete_ns(published_))
    return;
  // The leap is in: served = linear - sign * 1 s from here on, which the
  // anchor now says by itself (hwclock::fold_leap), so the served time does
  // not change and the correction, its frequency included, is untouched.
  const int64_t shift_ns = (published_.leap_sign > 0 ? -1 : 1) * hwclock::kLeapSecondNs;
  if (adopting_)
    pinned_.utc0_ns += shift_ns;
  else
    leap_offset_ns_ += shift_ns;
  last_folded_leap_ns_ = published_.leap_ns;
  leap_sign_ = 0;
  leap_ns_ = 0;
  leap_smear_ = false;
  leaps_folded_++;
  published_ = derive(raw_now);
}

proto::ClockModelData Timescale::adjust(int64_t step_ns, double base_ppb, double slew_ns, double slew_rate_ppb,
                                        uint64_t raw_now) {
  // An order ends an adoption at once: the discipline takes it from here.
  if (adopting_) hand_over(raw_now);
  const int64_t t = hwclock::model_to_ns(source(), raw_now);
  if (!have_corr_) {
    corr_.order(t, 0, 0, 0, 0);
    have_corr_ = true;
  }
  corr_.order(t, step_ns, base_ppb + order_bias_ppb_, slew_ns, slew_rate_ppb);
  set_published(raw_now);
  return published_;
}

proto::ClockModelData Timescale::refresh(uint64_t raw_now) {
  if (slew_end_raw_ == 0 || raw_now < slew_end_raw_) {
    set_published(raw_now);
    return published_;
  }
  // The slew is in: the model already runs at its base from slew_end_raw
  // on, and so does the one published now, bit for bit (hwclock::end_slew),
  // whenever this comes; the next update re-derives it from the source.
  if (adopting_) {
    pinned_ = hwclock::end_slew(pinned_);
    published_ = derive(raw_now);
  } else {
    const double base_ppb = corr_.base_ppb();
    published_ = hwclock::end_slew(published_);
    published_.freq_ppb = source().freq_ppb + std::llround(base_ppb);  // as derive_linear says it
  }
  slew_end_raw_ = 0;
  fold_leap_if_done(raw_now);
  slew_end_raw_ = published_.slew_end_raw;
  return published_;
}

void Timescale::set_published(uint64_t raw_now) {
  published_ = derive(raw_now);
  fold_leap_if_done(raw_now);
  // The model ends its slew by itself; refresh() there publishes it
  // without the slew (the same mapping), which also ends an adopted one.
  slew_end_raw_ = published_.slew_end_raw;
}

void Timescale::adopt(const proto::ClockModelData& published, uint64_t raw_now, bool disciplined) {
  if (!(published.flags & proto::kModelValid) || (published.flags & proto::kModelProvisional)) return;
  // The model's anchor and mult are the truth: the dataplane has been
  // serving them all along. Re-deriving the rate from this process's first
  // host model instead adopted -14.6, -1.34 and +7.67 ppm in three runs.
  pinned_ = published;
  // Its leap, if one is coming or under way, is ours to carry through.
  leap_sign_ = std::clamp(published.leap_sign, -1, 1);
  leap_ns_ = leap_sign_ ? published.leap_ns : 0;
  leap_smear_ = leap_sign_ && published.leap_smear_ns > hwclock::kLeapSecondNs;
  leap_offset_ns_ = 0;
  adopting_ = true;
  adopt_disciplined_ = disciplined;
  adopt_updates_ = 0;
  carry(raw_now);  // a first estimate, for the engine to start from
  engine_start_ppb_ = corr_.base_ppb();
  order_bias_ppb_ = 0;
  set_published(raw_now);
}

double Timescale::source_ns_per_tick() const {
  if (cfg_.source == config::ClockSource::kPhc && have_src_) return src_.slope_ns_per_tick();
  const double host = host_.slope_ns_per_tick();
  return cfg_.source == config::ClockSource::kVirtual ? host * (1.0 + cfg_.frequency_ppm * 1e-6) : host;
}

void Timescale::carry(uint64_t raw_now) {
  const int64_t t = hwclock::model_to_ns(source(), raw_now);
  const int64_t phase_ns = hwclock::model_linear_ns(pinned_, raw_now) - t;  // the leap stays the model's
  const double src_ns_per_tick = source_ns_per_tick();
  // A slew the model runs is not frequency: its base_mult is, and the rest
  // of the slew goes on to the model's end of it (the discipline's next
  // order replaces it with what it measures).
  const bool slewing = pinned_.slew_end_raw != 0 && raw_now < pinned_.slew_end_raw;
  const proto::ClockModelData settled = slewing ? pinned_ : hwclock::end_slew(pinned_);
  const double base_ppb = (hwclock::settled_ns_per_tick(settled) / src_ns_per_tick - 1.0) * 1e9;
  double slew_ns = 0, slew_rate_ppb = 0;
  if (slewing) {
    const auto left_ticks = static_cast<double>(pinned_.slew_end_raw - raw_now);
    const double extra_ns_per_tick = hwclock::ns_per_tick(pinned_) - hwclock::settled_ns_per_tick(pinned_);
    slew_ns = left_ticks * extra_ns_per_tick;
    slew_rate_ppb = extra_ns_per_tick / src_ns_per_tick * 1e9;
  }
  corr_ = {};
  corr_.order(t, phase_ns, base_ppb, slew_ns, slew_rate_ppb);
  have_corr_ = true;
}

void Timescale::hand_over(uint64_t raw_now) {
  adopting_ = false;
  if (adopt_disciplined_) {
    carry(raw_now);
  } else {
    corr_ = {};
    have_corr_ = false;
  }
  // The engine runs at engine_start_ppb_ and orders from there; the
  // measurement's difference rides along with every order.
  order_bias_ppb_ = corr_.base_ppb() - engine_start_ppb_;
}

int64_t Timescale::minus_source_ns(uint64_t raw) const {
  return hwclock::model_to_ns(published_, raw) - hwclock::model_to_ns(source(), raw);
}

int64_t Timescale::minus_host_ns(uint64_t raw) const {
  return hwclock::model_to_ns(published_, raw) - hwclock::model_to_ns(host_.model(), raw);
}

}  // namespace ntp::ctl
