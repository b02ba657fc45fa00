// The kernel exception path (see exception_path.h).
#include "dataplane/exception_path.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_ethdev.h>

#include "dataplane/port.h"
#include "proto/inet.h"

namespace ntp::dp {

namespace {

constexpr uint16_t kDescriptors = 512;

// The kernel interface's IPv4 address and prefix, and up: SIOCSIFADDR and
// SIOCSIFNETMASK (the kernel adds the connected route), SIOCSIFFLAGS.
bool configure_kernel_interface(const std::string& name, uint32_t ipv4, uint8_t prefix_len, std::string& err) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  auto set_addr = [&](unsigned long req, uint32_t host_order, const char* what) {
    ifreq r{};
    std::snprintf(r.ifr_name, sizeof r.ifr_name, "%s", name.c_str());
    auto* a = reinterpret_cast<sockaddr_in*>(&r.ifr_addr);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(host_order);
    if (::ioctl(fd, req, &r) == 0) return true;
    err = std::string(what) + " on " + name + ": " + std::strerror(errno);
    return false;
  };
  const uint32_t mask = prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - prefix_len);
  bool ok = set_addr(SIOCSIFADDR, ipv4, "SIOCSIFADDR") && set_addr(SIOCSIFNETMASK, mask, "SIOCSIFNETMASK");
  if (ok) {
    ifreq r{};
    std::snprintf(r.ifr_name, sizeof r.ifr_name, "%s", name.c_str());
    ok = ::ioctl(fd, SIOCGIFFLAGS, &r) == 0;
    r.ifr_flags = static_cast<short>(r.ifr_flags | IFF_UP);
    ok = ok && ::ioctl(fd, SIOCSIFFLAGS, &r) == 0;
    if (!ok) err = "bringing " + name + " up: " + std::strerror(errno);
  }
  ::close(fd);
  return ok;
}

}  // namespace

std::string exception_interface_name(const config::Interface& interface, size_t index) {
  return interface.exception_interface.empty() ? "ntpx" + std::to_string(index) : interface.exception_interface;
}

bool open_exception_path(const config::Interface& interface, size_t index, const Port& port, unsigned n_workers,
                         rte_mempool* pool, ExceptionPath& out, std::string& err) {
  out = {};
  out.kernel_name = exception_interface_name(interface, index);
  out.vdev = "net_tap_x" + std::to_string(index);
  char mac[18];
  const uint8_t* m = port.identity.mac;
  std::snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  const std::string args = "iface=" + out.kernel_name + ",mac=" + mac;
  if (int rc = rte_eal_hotplug_add("vdev", out.vdev.c_str(), args.c_str()); rc != 0) {
    err = "exception path: rte_eal_hotplug_add(vdev, " + out.vdev + ", " + args + "): " + rte_strerror(-rc) +
          " (is /dev/net/tun there, and the name " + out.kernel_name + " free?)";
    return false;
  }
  auto fail = [&](const std::string& what, int rc) {
    err = "exception path " + out.kernel_name + ": " + what + ": " + rte_strerror(-rc);
    close_exception_path(out);
    return false;
  };
  uint16_t pid = 0;
  if (rte_eth_dev_get_port_by_name(out.vdev.c_str(), &pid) != 0) return fail("no port for " + out.vdev, ENODEV);
  out.port_id = pid;
  rte_eth_conf conf{};
  if (int rc = rte_eth_dev_configure(pid, 1, static_cast<uint16_t>(n_workers), &conf); rc != 0)
    return fail("rte_eth_dev_configure", rc);
  const int socket = rte_eth_dev_socket_id(pid);
  if (int rc = rte_eth_rx_queue_setup(pid, 0, kDescriptors, static_cast<unsigned>(socket), nullptr, pool); rc != 0)
    return fail("rte_eth_rx_queue_setup", rc);
  for (unsigned q = 0; q < n_workers; q++)
    if (int rc = rte_eth_tx_queue_setup(pid, static_cast<uint16_t>(q), kDescriptors, static_cast<unsigned>(socket),
                                        nullptr);
        rc != 0)
      return fail("rte_eth_tx_queue_setup", rc);
  if (int rc = rte_eth_dev_start(pid); rc != 0) return fail("rte_eth_dev_start", rc);
  // No router solicitations or MLD from it: the dataplane speaks IPv4 only.
  std::ofstream(std::string("/proc/sys/net/ipv6/conf/") + out.kernel_name + "/disable_ipv6") << "1\n";
  // A kernel port (net_af_packet's iface=) still delivers what arrives to the
  // kernel as well: now that the address is local, the kernel would answer
  // a ping to it a second time, and see every TCP segment twice. Strict
  // reverse-path filtering there drops them (their route is the TAP's).
  if (const size_t at = interface.device.find("iface="); at != std::string::npos) {
    const std::string kernel_port = interface.device.substr(at + 6, interface.device.find(',', at) - at - 6);
    std::ofstream(std::string("/proc/sys/net/ipv4/conf/") + kernel_port + "/rp_filter") << "1\n";
  }
  std::string why;
  if (!configure_kernel_interface(out.kernel_name, interface.ipv4, interface.prefix_len, why)) {
    err = "exception path: " + why;
    close_exception_path(out);
    return false;
  }
  return true;
}

void close_exception_path(ExceptionPath& path) {
  if (path.port_id != UINT16_MAX) {
    rte_eth_dev_stop(path.port_id);
    rte_eth_dev_close(path.port_id);
  }
  if (!path.vdev.empty()) rte_eal_hotplug_remove("vdev", path.vdev.c_str());
  path = {};
}

}  // namespace ntp::dp
