#include "control/segment_client.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cerrno>
#include <cstring>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "hwclock/tsc.h"
#include "proto/rte_ring_layout.h"

namespace ntp::ctl {

// proto::check_segment validates the rings through a mirror of DPDK's
// struct rte_ring (proto may not include DPDK): the real one must match it.
namespace layout = proto::rte_ring_layout;
static_assert(sizeof(rte_ring) == layout::kBytes);
static_assert(sizeof(rte_ring::name) == layout::kNameBytes);
static_assert(offsetof(rte_ring, flags) == layout::kFlags);
static_assert(offsetof(rte_ring, size) == layout::kSize);
static_assert(offsetof(rte_ring, mask) == layout::kMask);
static_assert(offsetof(rte_ring, capacity) == layout::kCapacity);
static_assert(offsetof(rte_ring, prod.sync_type) == layout::kProdSyncType);
static_assert(offsetof(rte_ring, cons.sync_type) == layout::kConsSyncType);
static_assert(RING_F_SP_ENQ == layout::kFlagSpEnq && RING_F_SC_DEQ == layout::kFlagScDeq);
static_assert(RTE_RING_SYNC_ST == layout::kSyncSt && RTE_RING_SZ_MASK == layout::kMaxCount);
static_assert(RTE_CACHE_LINE_SIZE == layout::kAlign);

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

std::optional<bool> keys_match(const proto::KeysFingerprintData& dataplane, const crypto::KeyTableFingerprint& ours,
                               uint32_t our_count) {
  if (!(dataplane.flags & proto::kKeysFingerprintValid)) return std::nullopt;
  const bool dataplane_none = (dataplane.flags & proto::kKeysNoFile) || dataplane.key_count == 0;
  if (dataplane_none && our_count == 0) return std::nullopt;  // no keys on either side: nothing to agree on
  return std::memcmp(dataplane.fingerprint, ours.data(), ours.size()) == 0 && dataplane.key_count == our_count;
}

KeysWatch::Change KeysWatch::observe(const std::optional<proto::KeysFingerprintData>& dataplane,
                                     const crypto::KeyTableFingerprint& ours, uint32_t our_count, double now_s,
                                     double settle_s) {
  match_ = dataplane ? keys_match(*dataplane, ours, our_count) : std::nullopt;
  if (match_ != false) {
    differing_.reset();
    // Unknown (the dataplane went) says nothing; agreeing again after a
    // mismatch that was said is said too.
    if (match_ == true && logged_) {
      logged_.reset();
      return Change::kMatch;
    }
    return Change::kNone;
  }
  Pair p{};
  std::memcpy(p.data(), dataplane->fingerprint, 16);
  std::memcpy(p.data() + 16, ours.data(), 16);
  if (differing_ != p) {
    differing_ = p;
    differing_since_s_ = now_s;
  }
  if (logged_ == p || now_s - differing_since_s_ < settle_s) return Change::kNone;
  logged_ = p;
  return Change::kMismatch;
}

bool SegmentClient::not_sized_yet(const struct stat& st) {
  const bool empty = S_ISREG(st.st_mode) && st.st_size < static_cast<off_t>(sizeof(proto::SegmentHeader));
  const bool plain = (st.st_mode & 07777) == 0600 && st.st_nlink == 1;  // as the dataplane makes it
  if (!empty || !plain || st.st_uid == geteuid()) {
    foreign_empty_dev_ = foreign_empty_ino_ = 0;
    // Ours: given to us, ftruncate not done yet. Else refused by what it is.
    return empty && plain;
  }
  // Another uid's: the dataplane between shm_open and fchown (microseconds)
  // at the first sight; still the same empty file an attempt later (200 ms
  // on), a plant, which private_file_problem names with its owner (and
  // again at every attempt after, with the same text).
  const bool seen = foreign_empty_dev_ == st.st_dev && foreign_empty_ino_ == st.st_ino;
  foreign_empty_dev_ = st.st_dev;
  foreign_empty_ino_ = st.st_ino;
  return !seen;
}

SegmentClient::AttachResult SegmentClient::attach(const std::string& name, std::string& err) {
  detach();
  if (!config::InstanceLock::held_here(name, "control") && !lock_.acquire(name, "control", err))
    return AttachResult::kIncompatible;
  const std::string path = config::shm_path(name);
  const std::string what = "shared memory " + name;
  // shm_open(name) is open(/dev/shm/name) without O_NOFOLLOW: a symlink
  // planted there would be followed.
  const int fd = open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  struct stat st {};
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT) {
      foreign_empty_dev_ = foreign_empty_ino_ = 0;
      return AttachResult::kAbsent;
    }
    if (e == ELOOP) {
      err = what + " (" + path + ") is a symbolic link: refusing it (planted by another user?)";
    } else if (lstat(path.c_str(), &st) == 0) {
      // Not ours to open (EACCES), a directory (EISDIR)... The dataplane
      // gives the segment to its control user right after creating it,
      // before sizing it: an empty regular file is that.
      if (e == EACCES && not_sized_yet(st)) return AttachResult::kAbsent;
      err = config::private_file_problem(st, what);
      if (err.empty()) err = "cannot open " + what + ": " + std::strerror(e);
    } else {
      err = "cannot open " + what + ": " + std::strerror(e);
    }
    return AttachResult::kIncompatible;
  }
  if (fstat(fd, &st) != 0) {
    err = "cannot stat " + what + ": " + std::strerror(errno);
    close(fd);
    return AttachResult::kIncompatible;
  }
  if (not_sized_yet(st)) {
    close(fd);
    return AttachResult::kAbsent;  // being created: ftruncate not done yet
  }
  if (std::string why = config::private_file_problem(st, what); !why.empty()) {
    close(fd);
    err = std::move(why);
    return AttachResult::kIncompatible;
  }
  void* p = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    err = "cannot map " + what + ": " + std::strerror(errno);
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
    err = what + ": " + why;
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
  keys_fingerprint_.reset();
}

bool SegmentClient::replaced(std::string& err) const {
  err.clear();
  if (!hdr_) return false;
  // lstat, not open: under file-descriptor exhaustion (EMFILE, ENFILE) an
  // open fails although the segment is there, and detaching would put every
  // client into holdover for nothing.
  struct stat st {};
  if (lstat(config::shm_path(name_).c_str(), &st) != 0) {
    if (errno == ENOENT) return true;  // unlinked: the dataplane stopped
    err = "cannot tell whether shared memory " + name_ + " was replaced: " + std::strerror(errno) +
          " (keeping it)";
    return false;
  }
  return st.st_dev != dev_ || st.st_ino != ino_;
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
  if (o.payload.size() + o.extensions.size() > sizeof t.payload) return false;
  t.len = static_cast<uint16_t>(o.payload.size() + o.extensions.size());
  t.flags = o.stamp_transmit ? proto::kTxStampTransmit : 0;
  if (o.key_id != 0) {
    // The dataplane appends the MAC after its late transmit stamp (ABI 7).
    t.flags |= proto::kTxMac;
    t.key_id = o.key_id;
    t.mac_digest_bytes = o.mac_digest_bytes;
  }
  std::memcpy(t.payload, o.payload.data(), o.payload.size());
  if (!o.extensions.empty()) std::memcpy(t.payload + o.payload.size(), o.extensions.data(), o.extensions.size());
  return rte_ring_enqueue_elem(tx_ring(), &t, sizeof t) == 0;
}

void SegmentClient::publish_endpoints(const proto::AssocEndpoints& endpoints) {
  if (hdr_) hdr_->assoc_endpoints.store(endpoints);
}

std::optional<proto::KeysFingerprintData> SegmentClient::keys_fingerprint() {
  if (!hdr_ || hdr_->keys_fingerprint.generation() == 0) return std::nullopt;
  proto::KeysFingerprintData d;
  if (hdr_->keys_fingerprint.try_load(d)) keys_fingerprint_ = d;  // else (a write in progress) the last copy
  if (!keys_fingerprint_ || !(keys_fingerprint_->flags & proto::kKeysFingerprintValid)) return std::nullopt;
  return keys_fingerprint_;
}

bool SegmentClient::next_tx_report(proto::TxReport& rep) {
  return rte_ring_dequeue_elem(tx_report_ring(), &rep, sizeof rep) == 0;
}

bool SegmentClient::next_from(rte_ring* ring, proto::RxPacket& pkt) {
  // The engine parses payload[0, len): a length beyond the element (a
  // dataplane of another build, a bug) would read past it. Skipped, counted.
  while (rte_ring_dequeue_elem(ring, &pkt, sizeof pkt) == 0) {
    if (pkt.len <= sizeof pkt.payload) return true;
    bad_rx_++;
  }
  return false;
}

bool SegmentClient::next_rx(unsigned worker, proto::RxPacket& pkt) { return next_from(rx_ring(worker), pkt); }

bool SegmentClient::next_assoc_rx(unsigned worker, proto::RxPacket& pkt) {
  return next_from(assoc_ring(worker), pkt);
}

}  // namespace ntp::ctl
