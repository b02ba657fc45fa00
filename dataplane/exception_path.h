// The kernel exception path of an interface (interface.exception_path), as
// DPDK appliances make one (DPDK's "Exception Path" guide): a TAP interface
// (net_tap) in the dataplane's network namespace with the port's MAC and
// the interface's address and prefix, up, IPv6 off. The workers hand it
// the frames for our address they do not answer (frame.h kToKernel) and
// send what it sends out through the port, so a listener on the address
// (sshd, a BGP speaker, ntp-control's NTS-KE server) works as on any host.
//
// ARP stays the dataplane's: it answers requests for the address with the
// same MAC the kernel's interface has, and passes the kernel the ARP
// replies to us, so the kernel's own requests (sent through the port) are
// answered; requests for the address never reach the kernel, which
// therefore never answers a second time.
#pragma once

#include <cstdint>
#include <string>

#include "config/config.h"

struct rte_mempool;

namespace ntp::dp {

struct Port;

struct ExceptionPath {
  uint16_t port_id = UINT16_MAX;  // the TAP's DPDK port; UINT16_MAX: none
  std::string vdev;               // its vdev name (net_tap_x<index>)
  std::string kernel_name;        // the kernel's interface
};

// The kernel interface name of interface `index`: its exception_interface,
// or "ntpx<index>".
std::string exception_interface_name(const config::Interface& interface, size_t index);

// Makes the TAP for `port` (started: one RX queue from pool, read by worker
// 0, and a TX queue per worker), names it, gives it port's MAC, the
// interface's address and prefix, brings it up. False with err (which step)
// and nothing left behind.
bool open_exception_path(const config::Interface& interface, size_t index, const Port& port, unsigned n_workers,
                         rte_mempool* pool, ExceptionPath& out, std::string& err);
void close_exception_path(ExceptionPath& path);

}  // namespace ntp::dp
