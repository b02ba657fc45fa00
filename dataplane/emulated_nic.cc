#include "dataplane/emulated_nic.h"

#include <cmath>

#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

#include "hwclock/tsc.h"

namespace ntp::dp {

EmulatedNicClock::EmulatedNicClock(const config::Interface& cfg, double tsc_hz, uint64_t seed)
    : bits_(static_cast<unsigned>(cfg.emulated_nic_bits)), rng_(seed) {
  const double ticks_per_tsc = cfg.emulated_nic_hz / tsc_hz * (1.0 + cfg.emulated_nic_frequency_ppm * 1e-6);
  rate_q32_ = static_cast<uint64_t>(std::llround(ticks_per_tsc * 4294967296.0));
  mask_ = bits_ >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits_) - 1;
  const double offset_ticks = cfg.emulated_nic_offset_ns * cfg.emulated_nic_hz * 1e-9;
  offset_ticks_ = static_cast<uint64_t>(static_cast<int64_t>(std::llround(offset_ticks)));
  jitter_ticks_ = cfg.emulated_nic_read_jitter_ns * cfg.emulated_nic_hz * 1e-9;
}

uint64_t EmulatedNicClock::read(uint64_t tsc_before, uint64_t tsc_after) {
  // A PCIe read latches the counter somewhere inside the bracket; model it
  // at the midpoint, with gaussian jitter.
  const uint64_t mid = tsc_before + (tsc_after - tsc_before) / 2;
  const int64_t jitter = jitter_ticks_ > 0 ? static_cast<int64_t>(std::llround(noise_(rng_) * jitter_ticks_)) : 0;
  return (ticks_at(mid) + static_cast<uint64_t>(jitter)) & mask_;
}

uint16_t emulated_nic_rx_callback(uint16_t, uint16_t, rte_mbuf* pkts[], uint16_t nb_pkts, uint16_t, void* user) {
  if (nb_pkts == 0) return 0;
  const auto* s = static_cast<const EmulatedNicClock::Stamper*>(user);
  const uint64_t stamp = s->clock->ticks_at(hwclock::read_tsc());
  for (uint16_t i = 0; i < nb_pkts; i++) {
    *RTE_MBUF_DYNFIELD(pkts[i], s->dynfield_offset, rte_mbuf_timestamp_t*) = stamp;
    pkts[i]->ol_flags |= s->dynflag;
  }
  return nb_pkts;
}

uint16_t emulated_nic_tx_callback(uint16_t, uint16_t, rte_mbuf*[], uint16_t nb_pkts, void* user) {
  auto* s = static_cast<TxStamps*>(user);
  const uint16_t n = nb_pkts < kMaxTxStamps ? nb_pkts : static_cast<uint16_t>(kMaxTxStamps);
  const uint64_t stamp = n ? s->clock->ticks_at(hwclock::read_tsc()) : 0;
  for (uint16_t i = 0; i < n; i++) s->ticks[i] = stamp;
  s->n = n;
  return nb_pkts;
}

}  // namespace ntp::dp
