// A small per-worker ARP cache: fixed capacity, no allocation after
// construction, learned from ARP requests and replies on the worker's queue;
// and the worker's defence of our own addresses (RFC 5227 section 2.4).
// Times are monotonic ns (the worker's TSC), never the served clock.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

namespace ntp::dp {

struct Neighbour {
  uint32_t ipv4 = 0;  // host order; 0 = empty slot
  uint8_t mac[6] = {};
  int64_t updated_ns = 0;
};

// What one worker saw of other hosts claiming one of our addresses.
struct ArpConflictRecord {
  uint32_t ipv4 = 0;             // our address that was claimed, host order; 0: empty slot
  uint8_t mac[6] = {};           // the last claimant's sender hardware address
  int64_t last_conflict_ns = 0;
  int64_t last_defence_ns = 0;   // meaningful once defences > 0
  uint64_t conflicts = 0;
  uint64_t defences = 0;
};

// RFC 5227 section 2.4 (c): a host that must keep its address (a server
// clients are configured with) may defend it indefinitely, with one ARP
// Announcement per conflict but never more than one per DEFEND_INTERVAL
// (10 s, section 1.1) however often others claim it; per address.
class ArpDefence {
 public:
  static constexpr int64_t kDefendIntervalNs = 10LL * 1000000000;
  static constexpr size_t kCapacity = 8;  // one address per port (proto::kMaxPorts)

  // Records a conflicting packet for our address ipv4 from mac at now_ns;
  // returns whether to broadcast a defence now (then it counts as sent).
  // A full table (more addresses than ports) records nothing and defends
  // nothing rather than reuse a slot and forget when it last defended.
  bool conflict(uint32_t ipv4, const uint8_t* mac, int64_t now_ns) {
    ArpConflictRecord* r = nullptr;
    for (auto& e : records_) {
      if (e.ipv4 == ipv4) {
        r = &e;
        break;
      }
      if (e.ipv4 == 0 && r == nullptr) r = &e;
    }
    if (r == nullptr || ipv4 == 0) return false;
    r->ipv4 = ipv4;
    std::memcpy(r->mac, mac, 6);
    r->last_conflict_ns = now_ns;
    r->conflicts++;
    // A clock that went backwards (it should not) waits rather than defends.
    const bool due = r->defences == 0 || now_ns - r->last_defence_ns >= kDefendIntervalNs;
    if (!due) return false;
    r->last_defence_ns = now_ns;
    r->defences++;
    return true;
  }

  // The record for ipv4, or null when nobody claimed it.
  const ArpConflictRecord* find(uint32_t ipv4) const {
    for (const auto& e : records_)
      if (e.ipv4 == ipv4 && ipv4 != 0) return &e;
    return nullptr;
  }

  const std::array<ArpConflictRecord, kCapacity>& records() const { return records_; }

 private:
  std::array<ArpConflictRecord, kCapacity> records_{};
};

// Telling the operator, on the main lcore: RFC 5227 section 2.4 (c) asks
// that a host defending its address log the claimant and inform an
// administrator, with the number of such notifications controlled.
class ArpConflictLog {
 public:
  static constexpr int64_t kIntervalNs = ArpDefence::kDefendIntervalNs;

  // Whether the record r (a worker's latest) is worth a line at now_ns:
  // the first conflict at once, then at most one line per interval, each
  // with the totals so far (the counters have every packet).
  bool due(const ArpConflictRecord& r, int64_t now_ns) {
    if (r.ipv4 == 0 || r.conflicts == logged_conflicts_) return false;
    if (logged_conflicts_ != 0 && now_ns - logged_ns_ < kIntervalNs) return false;
    logged_conflicts_ = r.conflicts;
    logged_ns_ = now_ns;
    return true;
  }

 private:
  uint64_t logged_conflicts_ = 0;
  int64_t logged_ns_ = 0;
};

class NeighbourTable {
 public:
  static constexpr size_t kCapacity = 64;

  // Inserts or refreshes; when full, replaces the stalest entry.
  void learn(uint32_t ipv4, const uint8_t* mac, int64_t now_ns) {
    Neighbour* slot = nullptr;
    Neighbour* oldest = &entries_[0];
    for (auto& e : entries_) {
      if (e.ipv4 == ipv4) {
        slot = &e;
        break;
      }
      if (e.ipv4 == 0 && (slot == nullptr)) slot = &e;
      if (e.updated_ns < oldest->updated_ns) oldest = &e;
    }
    if (slot == nullptr) slot = oldest;
    slot->ipv4 = ipv4;
    std::memcpy(slot->mac, mac, 6);
    slot->updated_ns = now_ns;
  }

  // Updates the entry for ipv4 only if there is one (RFC 826 merge);
  // returns whether there was.
  bool refresh(uint32_t ipv4, const uint8_t* mac, int64_t now_ns) {
    if (ipv4 == 0) return false;
    for (auto& e : entries_)
      if (e.ipv4 == ipv4) {
        std::memcpy(e.mac, mac, 6);
        e.updated_ns = now_ns;
        return true;
      }
    return false;
  }

  // The entry for ipv4 if it was learned within max_age_ns.
  const Neighbour* lookup(uint32_t ipv4, int64_t now_ns, int64_t max_age_ns) const {
    for (const auto& e : entries_)
      if (e.ipv4 == ipv4 && e.ipv4 != 0) return now_ns - e.updated_ns <= max_age_ns ? &e : nullptr;
    return nullptr;
  }

  const std::array<Neighbour, kCapacity>& entries() const { return entries_; }

  // The defence of our own addresses lives with the cache that must never
  // learn them from someone else: one ARP state per worker, one argument.
  ArpDefence& defence() { return defence_; }
  const ArpDefence& defence() const { return defence_; }

 private:
  std::array<Neighbour, kCapacity> entries_{};
  ArpDefence defence_;
};

}  // namespace ntp::dp
