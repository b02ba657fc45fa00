#include "dataplane/port.h"

#include <cstring>
#include <regex>

#include <rte_ethdev.h>
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

#include <time.h>

#include "hwclock/tsc.h"

namespace ntp::dp {

bool is_pci_address(const std::string& device) {
  static const std::regex re("^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]$");
  return std::regex_match(device, re);
}

std::string eal_device_name(const std::string& device) {
  if (is_pci_address(device)) return device.size() == 7 ? "0000:" + device : device;
  return device.substr(0, device.find(','));
}

bool read_nic_clock(Port& port, uint64_t& tsc_before, uint64_t& raw, uint64_t& tsc_after) {
  tsc_before = hwclock::read_tsc();
  bool ok = true;
  if (port.emulated) {
    tsc_after = hwclock::read_tsc();
    raw = port.emulated->read(tsc_before, tsc_after);
    return true;
  }
  if (port.timesync_clock) {
    timespec ts{};
    ok = rte_eth_timesync_read_time(port.port_id, &ts) == 0;
    raw = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
  } else {
    ok = rte_eth_read_clock(port.port_id, &raw) == 0;
  }
  tsc_after = hwclock::read_tsc();
  return ok;
}

namespace {

// The nominal rate of a real NIC clock (ns counters and free-running tick
// counters differ), from two reads 50 ms apart; the mapper refines it.
double measure_nic_rate(Port& port) {
  uint64_t a0, r0, a1, b0, r1, b1;
  if (!read_nic_clock(port, a0, r0, a1)) return 0;
  timespec ts{0, 50 * 1000 * 1000};
  nanosleep(&ts, nullptr);
  if (!read_nic_clock(port, b0, r1, b1)) return 0;
  const uint64_t mask = port.nic_counter_bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << port.nic_counter_bits) - 1;
  const double dtsc = static_cast<double>((b0 + b1) / 2 - (a0 + a1) / 2);
  return dtsc > 0 ? static_cast<double>((r1 - r0) & mask) / dtsc : 0;
}

}  // namespace

bool init_port(const config::Interface& interface, const config::Dataplane& dp, unsigned n_queues,
               const std::vector<rte_mempool*>& pools, double tsc_hz, Port& out, std::string& err) {
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
  // Capability checks at port init (DPDK examples/rxtx_callbacks): per-packet
  // RX timestamps need the offload, the mbuf dynamic field, and a NIC clock
  // we can read to map them to the TSC.
  const bool want_hw = interface.timestamping != "software";
  const bool use_offload = want_hw && out.rx_timestamp_capable && !interface.emulated_nic_clock;
  if (use_offload) conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_TIMESTAMP;
  if (want_hw && (use_offload || interface.emulated_nic_clock)) {
    const int rc_dyn = rte_mbuf_dyn_rx_timestamp_register(&out.ts_dynfield_offset, &out.ts_dynflag);
    if (rc_dyn != 0) {
      err = "cannot register the mbuf RX timestamp field: " + std::string(rte_strerror(rte_errno));
      return false;
    }
  }

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
  out.port_id = port_id;
  if (interface.emulated_nic_clock && want_hw) {
    out.emulated = std::make_unique<EmulatedNicClock>(interface, tsc_hz, 0x5EED0000ULL + port_id);
    out.stamper = std::make_unique<EmulatedNicClock::Stamper>(
        EmulatedNicClock::Stamper{out.emulated.get(), out.ts_dynfield_offset, out.ts_dynflag});
    for (unsigned q = 0; q < n_queues; q++) {
      if (!rte_eth_add_rx_callback(port_id, static_cast<uint16_t>(q), emulated_nic_rx_callback, out.stamper.get())) {
        err = "rte_eth_add_rx_callback: " + std::string(rte_strerror(rte_errno));
        return false;
      }
      auto stamps = std::make_unique<TxStamps>();
      stamps->clock = out.emulated.get();
      if (!rte_eth_add_tx_callback(port_id, static_cast<uint16_t>(q), emulated_nic_tx_callback, stamps.get())) {
        err = "rte_eth_add_tx_callback: " + std::string(rte_strerror(rte_errno));
        return false;
      }
      out.tx_stamps.push_back(std::move(stamps));
    }
  }
  rc = rte_eth_dev_start(port_id);
  if (rc != 0) {
    err = "rte_eth_dev_start: " + std::string(rte_strerror(-rc));
    return false;
  }
  uint64_t clock = 0;
  out.read_clock_capable = rte_eth_read_clock(port_id, &clock) == 0;
  if (use_offload && !out.read_clock_capable && !out.emulated) {
    // ice (E810) stamps every packet with its PHC's nanoseconds but has no
    // read_clock; the same PHC reads through the timesync API (which also
    // starts it: ice initialises the PHC only in timesync_enable). We never
    // write or adjust it through DPDK, so timesync_read_time returns the
    // raw counter the mbufs carry. Not verified on hardware.
    timespec ts{};
    if (rte_eth_timesync_enable(port_id) == 0 && rte_eth_timesync_read_time(port_id, &ts) == 0) {
      out.timesync_clock = true;
      out.read_clock_capable = true;
    }
  }
  out.tx_compensation_ns = interface.tx_compensation_ns;
  if (!want_hw) {
    out.timestamp_reason = "software: timestamping = \"software\" in the configuration";
  } else if (out.emulated) {
    out.hw_timestamps = true;
    out.nic_counter_bits = out.emulated->bits();
    out.nic_ticks_per_tsc = out.emulated->ticks_per_tsc();
    out.timestamp_reason = "hardware (emulated NIC clock: a test/diagnostic setting)";
  } else if (use_offload && out.read_clock_capable) {
    out.hw_timestamps = true;
    out.nic_ticks_per_tsc = measure_nic_rate(out);
    if (out.nic_ticks_per_tsc <= 0) {
      out.hw_timestamps = false;
      out.timestamp_reason = "software: the NIC clock did not advance between two reads";
    } else {
      out.timestamp_reason = out.timesync_clock
                                 ? "hardware (RX timestamp offload, NIC clock read with rte_eth_timesync_read_time)"
                                 : "hardware (RX timestamp offload, NIC clock read with rte_eth_read_clock)";
    }
  } else {
    out.timestamp_reason = std::string("software: ") +
                           (!out.rx_timestamp_capable ? "the driver offers no RX timestamp offload"
                                                      : "the driver cannot read its clock (rte_eth_read_clock)");
  }
  if (interface.timestamping == "hardware" && !out.hw_timestamps) {
    err = "timestamping = \"hardware\", but " + out.timestamp_reason.substr(10);
    return false;
  }

  rte_ether_addr mac{};
  rte_eth_macaddr_get(port_id, &mac);
  out.name = interface.name;
  out.device = interface.device;
  out.driver = info.driver_name ? info.driver_name : "?";
  std::memcpy(out.identity.mac, mac.addr_bytes, 6);
  out.identity.ipv4 = interface.ipv4;
  out.identity.prefix_len = interface.prefix_len;
  out.identity.ntp_server = interface.ntp_server;
  out.identity.vlan = interface.vlan;
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

Port share_port(const Port& owner, int owner_index, const config::Interface& interface) {
  Port p;
  p.port_id = owner.port_id;
  p.shares = owner_index;
  p.name = interface.name;
  p.device = owner.device;
  p.driver = owner.driver;
  p.identity = owner.identity;
  p.identity.ipv4 = interface.ipv4;
  p.identity.prefix_len = interface.prefix_len;
  p.identity.ntp_server = interface.ntp_server;
  p.identity.vlan = interface.vlan;
  p.rx_timestamp_capable = owner.rx_timestamp_capable;
  p.read_clock_capable = owner.read_clock_capable;
  p.timesync_clock = owner.timesync_clock;
  p.link_speed_mbps = owner.link_speed_mbps;
  p.link_up = owner.link_up;
  p.hw_timestamps = owner.hw_timestamps;
  p.timestamp_reason = owner.timestamp_reason;
  p.ts_dynfield_offset = owner.ts_dynfield_offset;
  p.ts_dynflag = owner.ts_dynflag;
  p.nic_counter_bits = owner.nic_counter_bits;
  p.nic_ticks_per_tsc = owner.nic_ticks_per_tsc;
  p.tx_compensation_ns = owner.tx_compensation_ns;
  return p;
}

void stop_port(Port& port) {
  if (port.shares >= 0) return;  // the owner stops it
  close_exception_path(port.exception);
  rte_eth_dev_stop(port.port_id);
  rte_eth_dev_close(port.port_id);
}

}  // namespace ntp::dp
