#include "control/timescale.h"

#include <cmath>

namespace ntp::ctl {

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

proto::ClockModelData Timescale::derive(uint64_t raw_now) const {
  // served(raw) = src(raw) + corr(src(raw)); corr is piecewise linear (a
  // slew ends), so the model is the tangent at raw_now, re-derived when the
  // slew ends and at every update.
  const proto::ClockModelData src = source();
  if (!have_corr_) return src;
  const int64_t t = hwclock::model_to_ns(src, raw_now);
  proto::ClockModelData m = src;
  const double rate = corr_.rate_at(t);
  m.raw0 = raw_now;
  m.utc0_ns = t + std::llround(corr_.value_at(t));
  m.mult = hwclock::mult_from_ns_per_tick(hwclock::ns_per_tick(src) * (1.0 + rate * 1e-9));
  m.freq_ppb = src.freq_ppb + std::llround(rate);
  return m;
}

proto::ClockModelData Timescale::adjust(int64_t step_ns, double base_ppb, double slew_ns, double slew_rate_ppb,
                                        uint64_t raw_now) {
  const int64_t t = hwclock::model_to_ns(source(), raw_now);
  if (!have_corr_) {
    corr_.order(t, 0, 0, 0, 0);
    have_corr_ = true;
  }
  corr_.order(t, step_ns, base_ppb, slew_ns, slew_rate_ppb);
  set_published(raw_now);
  return published_;
}

proto::ClockModelData Timescale::refresh(uint64_t raw_now) {
  set_published(raw_now);
  return published_;
}

void Timescale::set_published(uint64_t raw_now) {
  published_ = derive(raw_now);
  slew_end_raw_ = 0;
  if (!have_corr_) return;
  const proto::ClockModelData src = source();
  const int64_t t = hwclock::model_to_ns(src, raw_now);
  if (corr_.slew_left_at(t) == 0) return;
  // Invert the source model: raw = raw0 + (t - utc0) / ns_per_tick, the
  // first reading at which the slew is in (so that refresh() there ends it).
  const int64_t end_ns = corr_.slew_end_ns();
  const double ticks = static_cast<double>(end_ns - src.utc0_ns) / hwclock::ns_per_tick(src);
  slew_end_raw_ = src.raw0 + static_cast<uint64_t>(std::ceil(std::max(ticks, 0.0)));
  while (hwclock::model_to_ns(src, slew_end_raw_) < end_ns) ++slew_end_raw_;
}

void Timescale::adopt(const proto::ClockModelData& published, uint64_t raw_now) {
  if (cfg_.source != config::ClockSource::kVirtual || !(published.flags & proto::kModelValid) ||
      (published.flags & proto::kModelProvisional))
    return;  // the system clock source re-derives itself from CLOCK_REALTIME
  // The oscillator is offset_ns off at epoch and gains frequency_ppm: pick
  // the epoch "now" and the offset the served clock has now; its rate
  // against the host beyond the configured error was the discipline's.
  const int64_t host_now = hwclock::model_to_ns(host_.model(), raw_now);
  epoch_ns_ = host_now;
  offset_ns_ = hwclock::model_to_ns(published, raw_now) - host_now;
  const double served_ppm = (hwclock::ns_per_tick(published) / hwclock::ns_per_tick(host_.model()) - 1.0) * 1e6;
  const int64_t t = hwclock::model_to_ns(source(), raw_now);
  corr_ = {};
  corr_.order(t, 0, (served_ppm - cfg_.frequency_ppm) * 1000.0, 0, 0);
  have_corr_ = true;
  set_published(raw_now);
}

int64_t Timescale::minus_source_ns(uint64_t raw) const {
  return hwclock::model_to_ns(published_, raw) - hwclock::model_to_ns(source(), raw);
}

int64_t Timescale::minus_host_ns(uint64_t raw) const {
  return hwclock::model_to_ns(published_, raw) - hwclock::model_to_ns(host_.model(), raw);
}

}  // namespace ntp::ctl
