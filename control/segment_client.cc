#include "control/segment_client.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "hwclock/tsc.h"

namespace ntp::ctl {

HeartbeatWatch::Change HeartbeatWatch::observe(uint64_t heartbeat_raw, uint64_t now_raw, double tsc_hz,
                                               double stale_s) {
  // A beat stamped after our own reading (the dataplane's worker read the
  // TSC later than we did) is fresh, not 2^64 ticks old.
  const int64_t ticks = static_cast<int64_t>(now_raw - heartbeat_raw);
  age_s_ = heartbeat_raw == 0 ? -1.0 : std::max<double>(static_cast<double>(ticks), 0.0) / tsc_hz;
  const bool stale = heartbeat_raw == 0 || age_s_ >= stale_s;
  if (stale == stale_) return Change::kNone;
  stale_ = stale;
  return stale ? Change::kStopped : Change::kBack;
}

SegmentClient::AttachResult SegmentClient::attach(const std::string& name, std::string& err) {
  detach();
  const int fd = shm_open(name.c_str(), O_RDWR, 0);
  if (fd < 0) {
    if (errno == ENOENT) return AttachResult::kAbsent;
    err = "cannot open shared memory " + name + ": " + std::strerror(errno);
    return AttachResult::kIncompatible;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(sizeof(proto::SegmentHeader))) {
    close(fd);
    return AttachResult::kAbsent;  // being created: ftruncate not done yet
  }
  void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    err = "cannot map shared memory " + name + ": " + std::strerror(errno);
    return AttachResult::kIncompatible;
  }
  auto* h = static_cast<proto::SegmentHeader*>(p);
  // The dataplane writes the magic last; before it, the segment is not ready.
  const uint64_t magic = std::atomic_ref<uint64_t>(h->magic).load(std::memory_order_acquire);
  if (magic == 0) {
    munmap(p, static_cast<size_t>(st.st_size));
    return AttachResult::kAbsent;
  }
  const std::string why = proto::check_segment(h, static_cast<size_t>(st.st_size));
  if (!why.empty()) {
    munmap(p, static_cast<size_t>(st.st_size));
    err = "shared memory " + name + ": " + why;
    return AttachResult::kIncompatible;
  }
  name_ = name;
  hdr_ = h;
  size_ = static_cast<size_t>(st.st_size);
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  hdr_->control_pid.store(getpid());
  heartbeat();
  return AttachResult::kAttached;
}

void SegmentClient::heartbeat() { hdr_->control_heartbeat_raw.store(hwclock::read_tsc(), std::memory_order_release); }

void SegmentClient::detach() {
  if (hdr_) munmap(hdr_, size_);
  hdr_ = nullptr;
  size_ = 0;
}

bool SegmentClient::replaced() const {
  if (!hdr_) return false;
  struct stat st {};
  const int fd = shm_open(name_.c_str(), O_RDONLY, 0);
  if (fd < 0) return true;  // unlinked: the dataplane stopped
  const bool same = fstat(fd, &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_;
  close(fd);
  return !same;
}

rte_ring* SegmentClient::ring_at(uint64_t offset) const {
  return reinterpret_cast<rte_ring*>(reinterpret_cast<uint8_t*>(hdr_) + offset);
}
rte_ring* SegmentClient::rx_ring(unsigned worker) const { return ring_at(hdr_->rx_ring_offset[worker]); }
rte_ring* SegmentClient::assoc_ring(unsigned worker) const { return ring_at(hdr_->assoc_ring_offset[worker]); }
rte_ring* SegmentClient::tx_ring() const { return ring_at(hdr_->tx_ring_offset); }
rte_ring* SegmentClient::tx_report_ring() const { return ring_at(hdr_->tx_report_ring_offset); }

bool SegmentClient::send(const OutPacket& o) {
  proto::TxPacket t{};
  t.cookie = o.cookie;
  t.dst_ip = o.dst_ip;
  t.dst_port = o.dst_port;
  t.src_port = o.src_port;
  t.port = 0xFFFF;  // the dataplane picks the port by the next hop
  t.len = static_cast<uint16_t>(o.payload.size());
  t.flags = o.stamp_transmit ? proto::kTxStampTransmit : 0;
  std::memcpy(t.payload, o.payload.data(), o.payload.size());
  return rte_ring_enqueue_elem(tx_ring(), &t, sizeof t) == 0;
}

bool SegmentClient::next_tx_report(proto::TxReport& rep) {
  return rte_ring_dequeue_elem(tx_report_ring(), &rep, sizeof rep) == 0;
}

bool SegmentClient::next_rx(unsigned worker, proto::RxPacket& pkt) {
  return rte_ring_dequeue_elem(rx_ring(worker), &pkt, sizeof pkt) == 0;
}

bool SegmentClient::next_assoc_rx(unsigned worker, proto::RxPacket& pkt) {
  return rte_ring_dequeue_elem(assoc_ring(worker), &pkt, sizeof pkt) == 0;
}

}  // namespace ntp::ctl
