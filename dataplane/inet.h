// Ethernet, ARP, IPv4, UDP and ICMP on raw bytes: offsets, constants and the
// Internet checksum (RFC 1071, incremental update RFC 1624). No DPDK, so the
// frame logic is unit-tested and fuzzed without a NIC.
#pragma once

#include <cstddef>
#include <cstdint>

#include "proto/inet.h"

namespace ntp::dp {

inline constexpr size_t kEthHeaderLen = 14;
inline constexpr size_t kIpv4MinHeaderLen = 20;
inline constexpr size_t kUdpHeaderLen = 8;
inline constexpr size_t kArpLen = 28;
inline constexpr size_t kIcmpHeaderLen = 8;
inline constexpr size_t kMaxFrameLen = 1518;  // untagged Ethernet without FCS... plus slack below
inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeArp = 0x0806;
inline constexpr uint16_t kEtherTypeVlan = 0x8100;  // IEEE 802.1Q tag
inline constexpr size_t kVlanTagLen = 4;
inline constexpr uint8_t kIpProtoIcmp = 1;
inline constexpr uint8_t kIpProtoUdp = 17;
inline constexpr uint8_t kDefaultTtl = 64;

// An Ethernet frame's layer 2 as the dataplane reads it: the ethertype,
// behind one IEEE 802.1Q tag if there is one, and its VLAN ID (0: untagged,
// or a priority tag). The one reader of tags: the frame layer, the worker's
// choice of interface and its limiter prefetch all use it.
struct L2Header {
  size_t len = kEthHeaderLen;  // where layer 3 begins
  uint16_t ethertype = 0;
  uint16_t vlan = 0;
  bool truncated = false;  // a tag the frame ends inside
};

// f holds len >= kEthHeaderLen bytes.
inline L2Header read_l2(const uint8_t* f, size_t len) {
  L2Header h;
  h.ethertype = proto::load_be16(f + 12);
  if (h.ethertype != kEtherTypeVlan) return h;
  h.len += kVlanTagLen;
  if (len < h.len) {
    h.truncated = true;
    return h;
  }
  h.vlan = proto::load_be16(f + 14) & 0x0FFF;
  h.ethertype = proto::load_be16(f + 16);
  return h;
}

// One's-complement sum of big-endian 16-bit words, not yet folded. An odd
// trailing byte is padded with zero (RFC 1071).
inline uint64_t csum_add(uint64_t sum, const uint8_t* p, size_t len) {
  // Add 32-bit big-endian words into a 64-bit accumulator; folding later
  // gives the same result as 16-bit one's-complement addition.
  while (len >= 4) {
    sum += proto::load_be32(p);
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    sum += proto::load_be16(p);
    p += 2;
    len -= 2;
  }
  if (len) sum += static_cast<uint64_t>(p[0]) << 8;
  return sum;
}

inline uint16_t csum_fold(uint64_t sum) {
  sum = (sum & 0xFFFFFFFF) + (sum >> 32);
  sum = (sum & 0xFFFFFFFF) + (sum >> 32);
  sum = (sum & 0xFFFF) + (sum >> 16);
  sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// The checksum field value for data whose (unfolded) sum is `sum`.
inline uint16_t csum_finish(uint64_t sum) { return static_cast<uint16_t>(~csum_fold(sum)); }

// UDP/TCP pseudo-header (RFC 768) for IPv4 addresses in host order.
inline uint64_t pseudo_header_sum(uint32_t src, uint32_t dst, uint8_t proto, uint16_t l4_len) {
  return uint64_t{src} + dst + proto + l4_len;
}

// Adds 32-bit words that replaced zeros (the transmit timestamp written
// after the checksum was computed over zeros).
inline uint16_t csum_add_words(uint16_t check, uint32_t w0, uint32_t w1) {
  uint64_t sum = static_cast<uint16_t>(~check);
  sum += w0;
  sum += w1;
  return static_cast<uint16_t>(~csum_fold(sum));
}

}  // namespace ntp::dp
