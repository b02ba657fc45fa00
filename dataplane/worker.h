// The worker loop: one per lcore, owning one RX/TX queue pair on every port
// (DPDK examples/l3fwd lcore_conf). Never blocks, never allocates, never
// takes a lock, makes no system call per packet.
#pragma once

#include <atomic>
#include <cstdint>

#include "dataplane/frame.h"
#include "dataplane/neighbour.h"
#include "proto/channel_abi.h"

struct rte_ring;

namespace ntp::dp {

struct WorkerPort {
  uint16_t port_id = 0;
  uint16_t queue_id = 0;
  uint16_t index = 0;  // into SegmentHeader::ports
  PortIdentity identity;
};

struct alignas(proto::kCacheLine) WorkerContext {
  unsigned worker_id = 0;
  unsigned n_ports = 0;
  WorkerPort ports[proto::kMaxPorts];
  unsigned burst_size = 32;
  unsigned idle_sleep_us = 0;  // 0: busy poll

  proto::SegmentHeader* segment = nullptr;
  proto::WorkerCounters* counters = nullptr;  // this worker's, in the segment
  rte_ring* to_control = nullptr;             // this worker's rx ring

  // Cached copies of the published state: a reader that cannot get a
  // consistent copy (writer died mid-update) keeps serving the last one.
  proto::ClockModelData model{};
  proto::ServerStateData state{};
  bool have_state = false;
  NeighbourTable neighbours;
};

// Set by the signal handler; workers return when it becomes true.
extern std::atomic<bool> g_stop;

// rte_eal_remote_launch entry point; arg is a WorkerContext*.
int worker_main(void* arg);

// One pass over the worker's ports: receive a burst from each, answer,
// transmit. Returns the number of frames received. Exposed for the
// benchmark, which drives it on an in-memory port.
unsigned worker_poll_once(WorkerContext& ctx);

}  // namespace ntp::dp
