#include "dataplane/segment.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <random>
#include <vector>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "dataplane/port.h"
#include "hwclock/clock_model.h"
#include "hwclock/tsc.h"
#include "proto/ntp_packet.h"
#include "proto/rte_ring_layout.h"

namespace ntp::dp {

// proto::check_segment validates these rings through a mirror of DPDK's
// struct rte_ring; what this file makes must be what it checks.
namespace layout = proto::rte_ring_layout;
static_assert(sizeof(rte_ring) == layout::kBytes);
static_assert(offsetof(rte_ring, flags) == layout::kFlags && offsetof(rte_ring, size) == layout::kSize &&
              offsetof(rte_ring, mask) == layout::kMask && offsetof(rte_ring, capacity) == layout::kCapacity);
static_assert(offsetof(rte_ring, prod.sync_type) == layout::kProdSyncType &&
              offsetof(rte_ring, cons.sync_type) == layout::kConsSyncType);
static_assert(RING_F_SP_ENQ == layout::kFlagSpEnq && RING_F_SC_DEQ == layout::kFlagScDeq);

namespace {

size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

// The uid of a user name, for the segment's owner.
bool user_uid(const std::string& user, uid_t& uid, std::string& err) {
  struct passwd pw {};
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  const int rc = getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0 || !found) {
    err = "channel.control_user = \"" + user + "\": " + (rc != 0 ? std::strerror(rc) : "no such user");
    return false;
  }
  uid = found->pw_uid;
  return true;
}

}  // namespace

Segment::~Segment() {
  if (hdr_) munmap(hdr_, size_);
}

bool Segment::create(const std::string& name, unsigned n_workers, unsigned ring_size, std::string& err,
                     const std::string& owner_user) {
  if (!config::InstanceLock::held_here(name, "dataplane") && !lock_.acquire(name, "dataplane", err)) return false;
  uid_t owner = geteuid();
  if (!owner_user.empty() && !user_uid(owner_user, owner, err)) return false;

  // Layout: header, then the rings, each cache-line aligned.
  const ssize_t rx_bytes = rte_ring_get_memsize_elem(sizeof(proto::RxPacket), ring_size);
  const ssize_t tx_bytes = rte_ring_get_memsize_elem(sizeof(proto::TxPacket), ring_size);
  const ssize_t rep_bytes = rte_ring_get_memsize_elem(sizeof(proto::TxReport), ring_size);
  if (rx_bytes < 0 || tx_bytes < 0 || rep_bytes < 0) {
    err = "ring size " + std::to_string(ring_size) + " is not usable by rte_ring";
    return false;
  }
  size_t off = align_up(sizeof(proto::SegmentHeader), proto::kCacheLine);
  uint64_t rx_off[proto::kMaxWorkers] = {}, assoc_off[proto::kMaxWorkers] = {};
  for (unsigned w = 0; w < n_workers; w++) {
    rx_off[w] = off;
    off = align_up(off + static_cast<size_t>(rx_bytes), proto::kCacheLine);
    assoc_off[w] = off;
    off = align_up(off + static_cast<size_t>(rx_bytes), proto::kCacheLine);
  }
  const uint64_t tx_off = off;
  off = align_up(off + static_cast<size_t>(tx_bytes), proto::kCacheLine);
  const uint64_t rep_off = off;
  off = align_up(off + static_cast<size_t>(rep_bytes), 4096);
  const size_t total = off;

  // We hold the lock: whatever is at the name is no live dataplane's (one
  // that died, or a file planted there), so it goes. O_EXCL makes ours a
  // new file, never one someone put back in between.
  int fd = -1;
  for (int attempt = 0; attempt < 3 && fd < 0; attempt++) {
    shm_unlink(name.c_str());
    fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    err = "cannot create shared memory " + name + ": " + std::strerror(errno);
    return false;
  }
  // The control plane attaches only to a segment its own uid owns. Given
  // before the segment has a size: until then it reads as not there yet.
  if (owner != geteuid() && fchown(fd, owner, static_cast<gid_t>(-1)) != 0) {
    err = "cannot give shared memory " + name + " to channel.control_user " + owner_user + ": " +
          std::strerror(errno);
    close(fd);
    shm_unlink(name.c_str());
    return false;
  }
  if (ftruncate(fd, static_cast<off_t>(total)) != 0) {
    err = "cannot size shared memory " + name + ": " + std::strerror(errno);
    close(fd);
    shm_unlink(name.c_str());
    return false;
  }
  void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    err = "cannot map shared memory " + name + ": " + std::strerror(errno);
    shm_unlink(name.c_str());
    return false;
  }
  name_ = name;
  size_ = total;
  hdr_ = new (p) proto::SegmentHeader();  // zeroed memory; value-initialises atomics

  hdr_->abi_version = proto::kChannelAbiVersion;
  hdr_->header_size = sizeof(proto::SegmentHeader);
  hdr_->total_size = total;
  std::random_device rd;
  hdr_->instance_id = (uint64_t{rd()} << 32) ^ rd() ^ hwclock::read_tsc();
  hdr_->dataplane_pid = getpid();
  hdr_->n_workers = n_workers;
  hdr_->ring_size = ring_size;
  for (unsigned w = 0; w < n_workers; w++) {
    hdr_->rx_ring_offset[w] = rx_off[w];
    hdr_->assoc_ring_offset[w] = assoc_off[w];
  }
  hdr_->tx_ring_offset = tx_off;
  hdr_->tx_report_ring_offset = rep_off;

  // Single producer and single consumer each: a worker feeds its rx ring,
  // the control plane the tx ring, worker 0 the report ring.
  const unsigned flags = RING_F_SP_ENQ | RING_F_SC_DEQ;
  auto init = [&](uint64_t o, const char* what, unsigned w) {
    char rname[RTE_RING_NAMESIZE];
    std::snprintf(rname, sizeof rname, "%s%u", what, w);
    return rte_ring_init(ring_at(o), rname, ring_size, flags) == 0;
  };
  bool ok = true;
  for (unsigned w = 0; w < n_workers; w++) ok = ok && init(rx_off[w], "rx", w) && init(assoc_off[w], "assoc", w);
  ok = ok && init(tx_off, "tx", 0) && init(rep_off, "txrep", 0);
  if (!ok) {
    err = "rte_ring_init failed in shared memory " + name;
    destroy();
    return false;
  }
  // Readers check the magic last: publish it after everything else.
  std::atomic_thread_fence(std::memory_order_release);
  hdr_->magic = proto::kChannelMagic;
  return true;
}

rte_ring* Segment::ring_at(uint64_t offset) const {
  return reinterpret_cast<rte_ring*>(reinterpret_cast<uint8_t*>(hdr_) + offset);
}
rte_ring* Segment::rx_ring(unsigned worker) const { return ring_at(hdr_->rx_ring_offset[worker]); }
rte_ring* Segment::assoc_ring(unsigned worker) const { return ring_at(hdr_->assoc_ring_offset[worker]); }
rte_ring* Segment::tx_ring() const { return ring_at(hdr_->tx_ring_offset); }
rte_ring* Segment::tx_report_ring() const { return ring_at(hdr_->tx_report_ring_offset); }

void Segment::destroy() {
  if (!name_.empty()) shm_unlink(name_.c_str());
  name_.clear();
}

void publish_ports(proto::SegmentHeader& seg, const std::string& sysname, const std::vector<Port>& ports) {
  std::snprintf(seg.sysname, sizeof seg.sysname, "%s", sysname.c_str());
  seg.n_ports = static_cast<uint32_t>(ports.size());
  for (size_t i = 0; i < ports.size(); i++) {
    const Port& p = ports[i];
    proto::PortInfo& pi = seg.ports[i];
    std::snprintf(pi.name, sizeof pi.name, "%s", p.name.c_str());
    std::snprintf(pi.device, sizeof pi.device, "%s", p.device.c_str());
    std::snprintf(pi.driver, sizeof pi.driver, "%s", p.driver.c_str());
    std::memcpy(pi.mac, p.identity.mac, 6);
    pi.ipv4 = p.identity.ipv4;
    pi.prefix_len = p.identity.prefix_len;
    pi.ntp_server = p.identity.ntp_server;
    pi.vlan = p.identity.vlan;
    pi.link_up = p.link_up;
    pi.link_speed_mbps = p.link_speed_mbps;
    pi.dpdk_port_id = p.port_id;
    pi.timestamping = p.hw_timestamps ? proto::kTimestampHardware : proto::kTimestampSoftware;
    pi.nic_emulated = p.emulated != nullptr;
    pi.tx_compensation_ns = p.tx_compensation_ns;
    std::snprintf(pi.timestamp_reason, sizeof pi.timestamp_reason, "%s", p.timestamp_reason.c_str());
  }
}

void publish_provisional(proto::SegmentHeader& seg, double tsc_hz) {
  const hwclock::CrossTimestamp x = hwclock::cross_timestamp(CLOCK_REALTIME, 16);
  proto::ClockModelData m = hwclock::make_model(x.raw, x.clock_ns, 1e9 / tsc_hz, static_cast<uint64_t>(tsc_hz));
  m.flags |= proto::kModelProvisional;
  seg.clock_model.store(m);
  proto::ServerStateData s;
  s.leap = 3;
  s.stratum = proto::kStratumUnsynchronized;
  s.refid = proto::kKissInit;
  s.precision_log2 = hwclock::measure_precision_log2(m, tsc_hz);
  s.published_ns = 0;  // never: the responder answers unsynchronized
  seg.server_state.store(s);
}

}  // namespace ntp::dp
