// An emulated NIC clock, for tests and diagnostics on ports whose driver
// offers no per-packet RX timestamps (veths through net_af_packet here).
// An RX callback stamps every received mbuf's dynamic timestamp field from a
// simulated NIC oscillator (a counter of configurable rate, width, offset and
// frequency error against the TSC), and read() stands in for
// rte_eth_read_clock with a configurable read jitter. Everything downstream
// (the NIC-to-TSC mapping, the per-packet conversion, the counters) is the
// code a timestamping NIC drives. Off by default.
#pragma once

#include <cstdint>
#include <random>

#include "config/config.h"

struct rte_mbuf;

namespace ntp::dp {

class EmulatedNicClock {
 public:
  EmulatedNicClock(const config::Interface& cfg, double tsc_hz, uint64_t seed);

  // The counter at TSC reading tsc: offset + tsc * rate, masked to the width.
  uint64_t ticks_at(uint64_t tsc) const {
    const unsigned __int128 scaled = static_cast<unsigned __int128>(tsc) * rate_q32_;
    return (offset_ticks_ + static_cast<uint64_t>(scaled >> 32)) & mask_;
  }
  // A clock read between two TSC reads (rte_eth_read_clock's stand-in): the
  // counter at a point inside the bracket, plus gaussian read jitter.
  uint64_t read(uint64_t tsc_before, uint64_t tsc_after);

  double ticks_per_tsc() const { return static_cast<double>(rate_q32_) / 4294967296.0; }
  unsigned bits() const { return bits_; }

  // What the RX callback needs (passed as its user parameter).
  struct Stamper {
    const EmulatedNicClock* clock;
    int dynfield_offset;
    uint64_t dynflag;
  };

 private:
  uint64_t rate_q32_;       // NIC ticks per TSC tick, times 2^32
  uint64_t offset_ticks_;
  uint64_t mask_;
  unsigned bits_;
  double jitter_ticks_;
  std::mt19937_64 rng_;
  std::normal_distribution<double> noise_{0.0, 1.0};
};

// rte_rx_callback_fn: stamps the burst (one TSC read per burst, as a NIC
// stamping packets that arrive together would give them nearly the same
// time) and sets the RX timestamp flag.
uint16_t emulated_nic_rx_callback(uint16_t port, uint16_t queue, rte_mbuf* pkts[], uint16_t nb_pkts,
                                  uint16_t max_pkts, void* user);

// Per-packet transmit timestamps as a NIC that reports them would give
// (DPDK 22.11 has no such per-packet API, see the README): the counter for
// each packet of the last tx_burst on one queue, in order, read by that
// queue's worker right after tx_burst returns. One per queue.
inline constexpr unsigned kMaxTxStamps = 256;  // dataplane.burst_size's largest
struct TxStamps {
  const EmulatedNicClock* clock = nullptr;
  uint16_t n = 0;  // packets of the last burst stamped
  uint64_t ticks[kMaxTxStamps] = {};
};

// rte_tx_callback_fn: stamps the burst with one TSC read (inside
// rte_eth_tx_burst, just before the PMD takes it: as a NIC stamping the
// frames it sends back to back would give them nearly the same time).
uint16_t emulated_nic_tx_callback(uint16_t port, uint16_t queue, rte_mbuf* pkts[], uint16_t nb_pkts, void* user);

}  // namespace ntp::dp
