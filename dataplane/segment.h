// The dataplane's side of the shared-memory channel: it creates the
// segment, lays out the header and rings, and unlinks it on exit.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "config/instance_lock.h"
#include "proto/channel_abi.h"

struct rte_ring;

namespace ntp::dp {

struct Port;

class Segment {
 public:
  Segment() = default;
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment();

  // Creates /dev/shm/<name> (O_EXCL, mode 0600) for n_workers workers with
  // rings of ring_size elements, owned by owner_user (channel.control_user,
  // the user ntp-control runs as; empty: our own). One dataplane per name:
  // it takes the dataplane role's config::InstanceLock unless this process
  // holds it already (main() should, before EAL), and refuses (false, err
  // set) while another process holds it; holding it, any segment left at
  // the name is stale (its dataplane died) and is replaced.
  bool create(const std::string& name, unsigned n_workers, unsigned ring_size, std::string& err,
              const std::string& owner_user = "");

  proto::SegmentHeader* header() { return hdr_; }
  rte_ring* rx_ring(unsigned worker) const;
  rte_ring* assoc_ring(unsigned worker) const;  // configured associations' lane
  rte_ring* tx_ring() const;
  rte_ring* tx_report_ring() const;

  // Unlinks the name (the control plane notices and waits for a new one).
  void destroy();

 private:
  rte_ring* ring_at(uint64_t offset) const;
  std::string name_;
  proto::SegmentHeader* hdr_ = nullptr;
  size_t size_ = 0;
  config::InstanceLock lock_;  // when main() did not take it
};

// The segment's description of the instance for the control plane and
// ntpctl: its name and each port (addresses, link, timestamping).
void publish_ports(proto::SegmentHeader& seg, const std::string& sysname, const std::vector<Port>& ports);

// Before the control plane publishes, answers still need sane timestamps:
// a provisional model from a short TSC calibration against CLOCK_REALTIME,
// and a state that says "unsynchronized".
void publish_provisional(proto::SegmentHeader& seg, double tsc_hz);

}  // namespace ntp::dp
