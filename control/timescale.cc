#include "control/timescale.h"

#include <cmath>

namespace ntp::ctl {

Timescale::Timescale(const config::Clock& cfg, double nominal_hz)
    : cfg_(cfg), host_({.nominal_hz = nominal_hz, .step_threshold_ns = 1000000, .window = 32}) {
  offset_ns_ = std::llround(cfg.offset_ms * 1e6);
}

proto::ClockModelData Timescale::update(const hwclock::CrossTimestamp& host, uint64_t next_interval_ticks) {
  host_.update(host.raw, host.clock_ns, next_interval_ticks);
  if (!have_epoch_) {
    epoch_ns_ = host.clock_ns;
    have_epoch_ = true;
  }
  published_ = derive();
  return published_;
}

proto::ClockModelData Timescale::derive() const {
  if (cfg_.source == config::ClockSource::kSystem) return host_.model();
  return hwclock::oscillator_model(host_.model(), epoch_ns_, offset_ns_, cfg_.frequency_ppm);
}

void Timescale::adopt(const proto::ClockModelData& published, uint64_t raw_now) {
  if (cfg_.source != config::ClockSource::kVirtual || !(published.flags & proto::kModelValid) ||
      (published.flags & proto::kModelProvisional))
    return;  // the system clock source re-derives itself from CLOCK_REALTIME
  // The oscillator is offset_ns off at epoch and gains frequency_ppm: pick
  // the epoch "now" and the offset the served clock has now.
  const int64_t host_now = hwclock::model_to_ns(host_.model(), raw_now);
  epoch_ns_ = host_now;
  offset_ns_ = hwclock::model_to_ns(published, raw_now) - host_now;
  published_ = derive();
}

int64_t Timescale::minus_host_ns(uint64_t raw) const {
  return hwclock::model_to_ns(published_, raw) - hwclock::model_to_ns(host_.model(), raw);
}

}  // namespace ntp::ctl
