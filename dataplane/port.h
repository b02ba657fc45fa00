// Port initialisation: one RX and one TX queue per worker, RSS over
// IPv4/UDP when there is more than one worker, and the capability checks
// that decide how the port timestamps (DPDK examples/ptpclient port_init).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "control/config.h"
#include "dataplane/frame.h"

struct rte_mempool;

namespace ntp::dp {

struct Port {
  uint16_t port_id = 0;
  std::string name;    // the operator's interface name
  std::string device;  // as configured
  std::string driver;
  PortIdentity identity;
  bool rx_timestamp_capable = false;  // RTE_ETH_RX_OFFLOAD_TIMESTAMP advertised
  bool read_clock_capable = false;    // rte_eth_read_clock works
  uint32_t link_speed_mbps = 0;
  bool link_up = false;
};

// The EAL device name of a configured device: the PCI address itself, or a
// vdev string up to its first comma ("net_af_packet0,iface=x" -> "net_af_packet0").
std::string eal_device_name(const std::string& device);
bool is_pci_address(const std::string& device);

// Configures and starts the port for `interface`, with rx queue q drawing
// from pools[q]. On failure returns false with err saying which step.
bool init_port(const config::Interface& interface, const config::Dataplane& dp, unsigned n_queues,
               const std::vector<rte_mempool*>& pools, Port& out, std::string& err);

void refresh_link(Port& port);
void stop_port(const Port& port);

}  // namespace ntp::dp
