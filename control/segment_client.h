// The control plane's side of the shared-memory channel: attach to the
// segment the dataplane created, check its ABI, notice when the dataplane
// restarts with a new one, and move packets through its rings.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "config/instance_lock.h"
#include "control/ntp/association.h"
#include "crypto/mac.h"
#include "proto/channel_abi.h"

struct rte_ring;
struct stat;

namespace ntp::ctl {

// The dataplane's heartbeat as the log tells it: once when it goes stale
// (the dataplane stopped serving: killed, hung) and once when it is fresh
// again, not every second in between. Pure: the caller reads the clock.
class HeartbeatWatch {
 public:
  enum class Change { kNone, kStopped, kBack };
  // heartbeat_raw: the dataplane's last beat (timebase ticks; 0: none yet),
  // now_raw: the timebase now, stale_s: how old a beat may be (the same
  // limit /status's dataplane_alive uses).
  Change observe(uint64_t heartbeat_raw, uint64_t now_raw, double tsc_hz, double stale_s);
  // Seconds since the last beat at the last observe(); < 0: none yet.
  double age_s() const { return age_s_; }
  bool stale() const { return stale_; }

 private:
  bool stale_ = false;
  double age_s_ = 0;
};

// Whether the dataplane answers with the keys we sign and verify with: its
// published fingerprint (SegmentHeader::keys_fingerprint) against
// crypto::fingerprint of our table (our_count keys; none: the empty
// table's). nullopt when there is nothing to compare: the dataplane has not
// written one (kKeysFingerprintValid unset), or neither side holds a key.
std::optional<bool> keys_match(const proto::KeysFingerprintData& dataplane,
                               const crypto::KeyTableFingerprint& ours, uint32_t our_count);

// keys_match as the log tells it: a mismatch once it has lasted settle_s
// (the two daemons reloading at one operator's SIGHUPs do not agree at the
// same instant), once per pair of fingerprints (another reload that still
// disagrees is said again), and once when they agree again. Pure: the
// caller passes the time.
class KeysWatch {
 public:
  enum class Change { kNone, kMismatch, kMatch };
  // dataplane: its fingerprint, nullopt when it has not said (not attached).
  Change observe(const std::optional<proto::KeysFingerprintData>& dataplane, const crypto::KeyTableFingerprint& ours,
                 uint32_t our_count, double now_s, double settle_s);
  std::optional<bool> match() const { return match_; }

 private:
  using Pair = std::array<uint8_t, 32>;  // the dataplane's fingerprint, then ours
  std::optional<bool> match_;
  std::optional<Pair> differing_;  // the mismatch seen since differing_since_s_
  double differing_since_s_ = 0;
  std::optional<Pair> logged_;     // the mismatch said last (until they agree)
};

class SegmentClient {
 public:
  SegmentClient() = default;
  SegmentClient(const SegmentClient&) = delete;
  SegmentClient& operator=(const SegmentClient&) = delete;
  ~SegmentClient() { detach(); }

  enum class AttachResult { kAttached, kAbsent, kIncompatible };
  // Maps /dev/shm/<name> and signs us in (pid, heartbeat). kAbsent: not
  // there yet (or not fully created); kIncompatible: there but unusable,
  // err says why: reached through a symlink (opened O_NOFOLLOW), not a
  // regular file, not owned by our effective uid or with any group/other
  // permission bit (a segment planted by another user would steer the
  // served time), or failing proto::check_segment. The same cause gives the
  // same text, so the caller, retrying, can log each once. An empty file
  // is one not sized yet (kAbsent) when it is ours, or another uid's with
  // mode 0600 at the first attempt only (the dataplane gives it to us right
  // after creating it); the same empty file of another uid at the next
  // attempt was planted, and is refused like a full-size one.
  // Takes the control role's InstanceLock for name first unless this
  // process holds it already (main() should, before anything else): a
  // second writer would break the seqlocks and rings.
  AttachResult attach(const std::string& name, std::string& err);
  void detach();
  bool attached() const { return hdr_ != nullptr; }
  // Tells the dataplane we are alive (attach() does it the first time).
  void heartbeat();

  // True when the name now refers to another file (the dataplane was
  // restarted) or to none: time to detach and attach again. When it cannot
  // tell (any other error of lstat: no file descriptor is needed, so fd
  // exhaustion cannot make a live segment look gone), false with err set;
  // err is cleared otherwise.
  bool replaced(std::string& err) const;
  bool replaced() const {
    std::string err;
    return replaced(err);
  }

  proto::SegmentHeader* header() const { return hdr_; }

  // The configured associations' endpoints for the dataplane's filter of
  // their lane (SegmentHeader::assoc_endpoints; we are its one writer).
  // A new segment starts at generation 0, which forwards nothing: publish
  // at every attach, and before sending a packet from a port not yet
  // published.
  void publish_endpoints(const proto::AssocEndpoints& endpoints);
  // The dataplane's keys fingerprint: nullopt when not attached or not
  // written yet; the last copy read when a write is in progress.
  std::optional<proto::KeysFingerprintData> keys_fingerprint();

  // Our packet onto the tx ring, sent from port 123 on the port the next
  // hop is on; false when the ring is full.
  bool send(const OutPacket& o);
  // The next transmit report or received packet, if any.
  bool next_tx_report(proto::TxReport& rep);
  bool next_rx(unsigned worker, proto::RxPacket& pkt);
  // The configured associations' lane (read it first: a flood of others
  // cannot delay these).
  bool next_assoc_rx(unsigned worker, proto::RxPacket& pkt);
  // Received packets skipped because their length is beyond the element.
  uint64_t bad_rx() const { return bad_rx_; }

  rte_ring* rx_ring(unsigned worker) const;
  rte_ring* assoc_ring(unsigned worker) const;
  rte_ring* tx_ring() const;
  rte_ring* tx_report_ring() const;

 private:
  // A regular file too small to be a segment that reads as "not there
  // yet" rather than as refused (see attach()).
  bool not_sized_yet(const struct stat& st);
  rte_ring* ring_at(uint64_t offset) const;
  bool next_from(rte_ring* ring, proto::RxPacket& pkt);
  std::string name_;
  proto::SegmentHeader* hdr_ = nullptr;
  size_t size_ = 0;
  uint64_t dev_ = 0, ino_ = 0;
  // An empty file of another uid seen at the last attach (a dataplane
  // between creating it and giving it to us), by device and inode.
  uint64_t foreign_empty_dev_ = 0, foreign_empty_ino_ = 0;
  uint64_t bad_rx_ = 0;
  std::optional<proto::KeysFingerprintData> keys_fingerprint_;  // the last read of this segment's
  config::InstanceLock lock_;  // when main() did not take it
};

}  // namespace ntp::ctl
