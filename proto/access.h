// Access classes ([access]): who may get time, peer with us, or read our
// status. The seed vendor's `ntp-service access peer|server|synchronization|
// query|limited` plus deny; built once from the configuration, then looked
// up per packet by the dataplane (no allocation, no lock: a binary search
// over disjoint address ranges) and per packet or connection by the control
// plane. Addresses are IPv4 now; the types take IPv6 (v4-mapped) already.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace ntp::proto {

// An address of either family; IPv4 is the v4-mapped ::ffff:a.b.c.d.
struct IpAddress {
  uint8_t bytes[16] = {};
  static IpAddress v4(uint32_t host_order) {
    IpAddress a;
    a.bytes[10] = a.bytes[11] = 0xFF;
    a.bytes[12] = static_cast<uint8_t>(host_order >> 24);
    a.bytes[13] = static_cast<uint8_t>(host_order >> 16);
    a.bytes[14] = static_cast<uint8_t>(host_order >> 8);
    a.bytes[15] = static_cast<uint8_t>(host_order);
    return a;
  }
  bool is_v4() const {
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    return std::memcmp(bytes, kMapped, 12) == 0;
  }
  uint32_t v4_host_order() const {
    return uint32_t{bytes[12]} << 24 | uint32_t{bytes[13]} << 16 | uint32_t{bytes[14]} << 8 | bytes[15];
  }
  bool operator==(const IpAddress&) const = default;
};

// In precedence order, highest last: an address in several lists gets the
// highest class among them, except deny, which wins over all (one abuser
// can be cut off inside any allowed prefix).
enum class AccessClass : uint8_t {
  kQuery = 0,         // status only
  kLimited,           // time, rate-limited
  kSynchronization,   // time
  kServer,            // time and status
  kPeer,              // time, status, and may be a symmetric peer (set our time)
  kDeny,              // nothing
};
inline constexpr size_t kAccessClassCount = 6;
const char* to_string(AccessClass c);  // "query", "limited", ..., the [access] key names
// The class named s ([access] default_class); false when s names none.
bool access_class_from_string(const std::string& s, AccessClass& out);

inline bool may_get_time(AccessClass c) {
  return c == AccessClass::kLimited || c == AccessClass::kSynchronization || c == AccessClass::kServer ||
         c == AccessClass::kPeer;
}
inline bool may_query(AccessClass c) {
  return c == AccessClass::kQuery || c == AccessClass::kServer || c == AccessClass::kPeer;
}
inline bool may_peer(AccessClass c) { return c == AccessClass::kPeer; }
inline bool is_rate_limited(AccessClass c) { return c == AccessClass::kLimited; }

struct AccessRule {
  uint32_t net = 0;   // IPv4, host order, host bits zero
  uint8_t len = 0;    // 0..32
  AccessClass cls = AccessClass::kDeny;
};

class AccessTable {
 public:
  // Everything gets default_class.
  explicit AccessTable(AccessClass default_class = AccessClass::kLimited) : default_(default_class) {}
  // Resolves the rules once into disjoint ranges (allocates: not for the
  // hot path); lookups are then O(log n).
  AccessTable(const std::vector<AccessRule>& rules, AccessClass default_class);

  AccessClass classify_v4(uint32_t addr) const {
    // The last range starting at or before addr; ranges are disjoint and
    // sorted, and a gap between them is the default class.
    size_t lo = 0, n = starts_.size();
    if (n == 0 || addr < starts_[0]) return default_;
    while (n > 1) {
      const size_t half = n / 2;
      if (starts_[lo + half] <= addr) lo += half;
      n -= half;
    }
    return addr <= ends_[lo] ? classes_[lo] : default_;
  }
  AccessClass classify(const IpAddress& a) const {
    return a.is_v4() ? classify_v4(a.v4_host_order()) : default_;  // IPv6 lists: not yet
  }
  AccessClass default_class() const { return default_; }
  size_t ranges() const { return starts_.size(); }
  size_t memory_bytes() const { return starts_.size() * (2 * sizeof(uint32_t) + sizeof(AccessClass)); }

 private:
  AccessClass default_;
  std::vector<uint32_t> starts_, ends_;  // inclusive
  std::vector<AccessClass> classes_;
};

}  // namespace ntp::proto
