#include "dataplane/nic_sampler.h"

#include <cmath>
#include <span>

#include <spdlog/spdlog.h>

namespace ntp::dp {

NicClockSampler::NicClockSampler(std::vector<Port>& ports, double tsc_hz) : ports_(ports), tsc_ghz_(tsc_hz * 1e-9) {
  for (size_t i = 0; i < ports.size(); i++) {
    if (!ports[i].hw_timestamps || ports[i].shares >= 0) continue;  // a VLAN of another port: its clock
    hwclock::NicClockParams np;
    np.counter_bits = ports[i].nic_counter_bits;
    np.nominal_ticks_per_tsc = ports[i].nic_ticks_per_tsc;
    mappers_[i] = std::make_unique<hwclock::NicClockMapper>(np);
  }
}

void NicClockSampler::sample(proto::SegmentHeader& seg) {
  for (size_t i = 0; i < ports_.size(); i++) {
    if (!mappers_[i]) continue;
    hwclock::NicCrossTimestamp reads[8];
    size_t n = 0;
    for (auto& r : reads)
      if (read_nic_clock(ports_[i], r.tsc_before, r.nic_raw, r.tsc_after)) n++;
    if (n == 0) continue;
    hwclock::NicClockMapper& m = *mappers_[i];
    m.add_round(std::span<const hwclock::NicCrossTimestamp>(reads, n));
    if (m.valid()) maps_[i].store(m.map());
    proto::PortInfo& pi = seg.ports[i];
    const bool valid = m.valid();
    if (valid != (pi.nic_map_valid != 0))
      spdlog::info("port {}: NIC clock mapping {} ({} rounds, rate {:+.3f} ppm against nominal)", ports_[i].name,
                   valid ? "valid" : "lost", m.rounds(), m.rate_ppm_vs_nominal());
    pi.nic_map_valid = valid;
    // Ticks per second: the nominal rate (measured at port init) as the fit
    // corrects it, over the calibrated TSC.
    const double nic_hz = ports_[i].nic_ticks_per_tsc * (1.0 + m.rate_ppm_vs_nominal() * 1e-6) * tsc_ghz_ * 1e9;
    pi.nic_clock_mhz.store(std::llround(nic_hz * 1e3), std::memory_order_relaxed);
    pi.nic_residual_ps.store(std::llround(m.residual_rms_ticks() / tsc_ghz_ * 1000.0), std::memory_order_relaxed);
    pi.nic_rounds.store(m.rounds(), std::memory_order_relaxed);
    pi.nic_outliers.store(m.outliers(), std::memory_order_relaxed);
    pi.nic_restarts.store(m.restarts(), std::memory_order_relaxed);
  }
}

}  // namespace ntp::dp
