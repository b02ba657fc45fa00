// Port initialisation: one RX and one TX queue per worker, RSS over
// IPv4/UDP when there is more than one worker, and the capability checks
// that decide how the port timestamps (DPDK examples/ptpclient port_init).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "dataplane/emulated_nic.h"
#include "dataplane/exception_path.h"
#include "dataplane/frame.h"

struct rte_mempool;

namespace ntp::dp {

struct Port {
  uint16_t port_id = 0;
  // Another interface on the same device (its VLAN): the index of the Port
  // that owns the DPDK port, whose queues, clock and link this one shares.
  // -1: this one owns it.
  int shares = -1;
  std::string name;    // the operator's interface name
  std::string device;  // as configured
  std::string driver;
  PortIdentity identity;
  bool rx_timestamp_capable = false;  // RTE_ETH_RX_OFFLOAD_TIMESTAMP advertised
  bool read_clock_capable = false;    // rte_eth_read_clock works
  bool timesync_clock = false;        // no read_clock: the clock is read with rte_eth_timesync_read_time (ice)
  uint32_t link_speed_mbps = 0;
  bool link_up = false;

  // Receive timestamps: hardware (the mbuf dynamic timestamp field, a NIC
  // clock reading mapped to the TSC) or software (the TSC at burst return).
  bool hw_timestamps = false;
  std::string timestamp_reason;        // why this mode, for the log and status
  int ts_dynfield_offset = -1;
  uint64_t ts_dynflag = 0;
  unsigned nic_counter_bits = 64;
  double nic_ticks_per_tsc = 0;        // nominal rate, measured at init (or the emulation's)
  std::unique_ptr<EmulatedNicClock> emulated;              // emulated_nic_clock = true
  std::unique_ptr<EmulatedNicClock::Stamper> stamper;      // the RX callback's parameter
  // Per-packet NIC transmit timestamps, one per queue (empty: none; only
  // the emulation gives them in DPDK 22.11).
  std::vector<std::unique_ptr<TxStamps>> tx_stamps;
  int64_t tx_compensation_ns = 0;
  ExceptionPath exception;  // interface.exception_path (port_id UINT16_MAX: none)
};

// Reads the port's NIC clock (rte_eth_read_clock, or the emulation) between
// two TSC reads. False when the driver cannot.
bool read_nic_clock(Port& port, uint64_t& tsc_before, uint64_t& raw, uint64_t& tsc_after);

// The EAL device name of a configured device: the PCI address itself, or a
// vdev string up to its first comma ("net_af_packet0,iface=x" -> "net_af_packet0").
std::string eal_device_name(const std::string& device);
bool is_pci_address(const std::string& device);

// Configures and starts the port for `interface`, with rx queue q drawing
// from pools[q]. On failure returns false with err saying which step.
// tsc_hz: the calibrated TSC rate (for the emulated NIC clock and the
// nominal NIC clock rate).
bool init_port(const config::Interface& interface, const config::Dataplane& dp, unsigned n_queues,
               const std::vector<rte_mempool*>& pools, double tsc_hz, Port& out, std::string& err);

// An interface on the DPDK port `owner` already runs (interface.device the
// same): owner's port, driver and timestamping, with interface's address,
// VLAN and ntp_server. owner_index: owner's place among the ports.
Port share_port(const Port& owner, int owner_index, const config::Interface& interface);

void refresh_link(Port& port);
void stop_port(Port& port);  // and its exception path; nothing for a port that shares another's

}  // namespace ntp::dp
