// A small per-worker ARP cache: fixed capacity, no allocation after
// construction, learned from ARP requests and replies on the worker's queue.
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

 private:
  std::array<Neighbour, kCapacity> entries_{};
};

}  // namespace ntp::dp
