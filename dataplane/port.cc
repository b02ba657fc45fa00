#include "dataplane/port.h"

#include <cstring>
#include <regex>

#include <rte_ethdev.h>
#include <rte_mbuf.h>

namespace ntp::dp {

bool is_pci_address(const std::string& device) {
  static const std::regex re("^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]$");
  return std::regex_match(device, re);
}

std::string eal_device_name(const std::string& device) {
  if (is_pci_address(device)) return device.size() == 7 ? "0000:" + device : device;
  return device.substr(0, device.find(','));
}

bool init_port(const config::Interface& interface, const config::Dataplane& dp, unsigned n_queues,
               const std::vector<rte_mempool*>& pools, Port& out, std::string& err) {
  const std::string eal_name = eal_device_name(interface.device);
  uint16_t port_id = 0;
  if (rte_eth_dev_get_port_by_name(eal_name.c_str(), &port_id) != 0) {
    err = "no DPDK port named " + eal_name + " (device \"" + interface.device +
          "\"): is it bound to a DPDK driver / is the vdev string right?";
    return false;
  }
  rte_eth_dev_info info{};
  int rc = rte_eth_dev_info_get(port_id, &info);
  if (rc != 0) {
    err = "rte_eth_dev_info_get: " + std::string(rte_strerror(-rc));
    return false;
  }
  if (n_queues > info.max_rx_queues || n_queues > info.max_tx_queues) {
    err = "port " + eal_name + " has " + std::to_string(info.max_rx_queues) + " RX / " +
          std::to_string(info.max_tx_queues) + " TX queues, " + std::to_string(n_queues) +
          " workers need one of each (for net_af_packet, add qpairs=N to the device string)";
    return false;
  }

  rte_eth_conf conf{};
  if (n_queues > 1) {
    // Spread clients over the workers by IPv4 addresses and UDP ports.
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
  }
  if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)
    conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;  // we send from the pool we received from
  out.rx_timestamp_capable = (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TIMESTAMP) != 0;

  rc = rte_eth_dev_configure(port_id, static_cast<uint16_t>(n_queues), static_cast<uint16_t>(n_queues), &conf);
  if (rc != 0) {
    err = "rte_eth_dev_configure: " + std::string(rte_strerror(-rc));
    return false;
  }
  uint16_t nb_rxd = static_cast<uint16_t>(dp.rx_descriptors), nb_txd = static_cast<uint16_t>(dp.tx_descriptors);
  rc = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &nb_rxd, &nb_txd);
  if (rc != 0) {
    err = "rte_eth_dev_adjust_nb_rx_tx_desc: " + std::string(rte_strerror(-rc));
    return false;
  }
  const int socket = rte_eth_dev_socket_id(port_id);
  for (unsigned q = 0; q < n_queues; q++) {
    rte_eth_rxconf rxconf = info.default_rxconf;
    rxconf.offloads = conf.rxmode.offloads;
    rc = rte_eth_rx_queue_setup(port_id, static_cast<uint16_t>(q), nb_rxd, static_cast<unsigned>(socket), &rxconf,
                                pools[q]);
    if (rc != 0) {
      err = "rte_eth_rx_queue_setup(queue " + std::to_string(q) + "): " + rte_strerror(-rc);
      return false;
    }
    rte_eth_txconf txconf = info.default_txconf;
    txconf.offloads = conf.txmode.offloads;
    rc = rte_eth_tx_queue_setup(port_id, static_cast<uint16_t>(q), nb_txd, static_cast<unsigned>(socket), &txconf);
    if (rc != 0) {
      err = "rte_eth_tx_queue_setup(queue " + std::to_string(q) + "): " + rte_strerror(-rc);
      return false;
    }
  }
  rc = rte_eth_dev_start(port_id);
  if (rc != 0) {
    err = "rte_eth_dev_start: " + std::string(rte_strerror(-rc));
    return false;
  }
  uint64_t clock = 0;
  out.read_clock_capable = rte_eth_read_clock(port_id, &clock) == 0;

  rte_ether_addr mac{};
  rte_eth_macaddr_get(port_id, &mac);
  out.port_id = port_id;
  out.name = interface.name;
  out.device = interface.device;
  out.driver = info.driver_name ? info.driver_name : "?";
  std::memcpy(out.identity.mac, mac.addr_bytes, 6);
  out.identity.ipv4 = interface.ipv4;
  out.identity.prefix_len = interface.prefix_len;
  out.identity.ntp_server = interface.ntp_server;
  refresh_link(out);
  return true;
}

void refresh_link(Port& port) {
  rte_eth_link link{};
  if (rte_eth_link_get_nowait(port.port_id, &link) == 0) {
    port.link_up = link.link_status == RTE_ETH_LINK_UP;
    port.link_speed_mbps = link.link_speed;
  }
}

void stop_port(const Port& port) {
  rte_eth_dev_stop(port.port_id);
  rte_eth_dev_close(port.port_id);
}

}  // namespace ntp::dp
