// Test-only builder for Ethernet/ARP/IPv4/UDP/ICMP frames, with its own
// Internet checksum (a plain RFC 1071 16-bit loop) so the tests never take
// expected values from dataplane/inet.h. Each header can be built with a
// correct or a deliberately wrong checksum or length.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace ntp::testfb {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;

inline constexpr Mac kBroadcast = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};

constexpr uint32_t ip4(unsigned a, unsigned b, unsigned c, unsigned d) { return (a << 24) | (b << 16) | (c << 8) | d; }

inline void put16(Bytes& v, size_t at, uint16_t x) {
  v[at] = static_cast<uint8_t>(x >> 8);
  v[at + 1] = static_cast<uint8_t>(x);
}
inline void put32(Bytes& v, size_t at, uint32_t x) {
  put16(v, at, static_cast<uint16_t>(x >> 16));
  put16(v, at + 2, static_cast<uint16_t>(x));
}
inline void push16(Bytes& v, uint16_t x) {
  v.push_back(static_cast<uint8_t>(x >> 8));
  v.push_back(static_cast<uint8_t>(x));
}
inline void push32(Bytes& v, uint32_t x) {
  push16(v, static_cast<uint16_t>(x >> 16));
  push16(v, static_cast<uint16_t>(x));
}
inline uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t get32(const uint8_t* p) { return (uint32_t{get16(p)} << 16) | get16(p + 2); }

// RFC 1071 section 4.1, literally: add 16-bit words (an odd last byte padded
// with zero), folding the carry back in after every addition. Returns the
// folded one's-complement sum (not inverted).
inline uint16_t ones_sum(const uint8_t* p, size_t n, uint16_t start = 0) {
  uint32_t sum = start;
  for (size_t i = 0; i < n; i += 2) {
    const uint32_t word = (uint32_t{p[i]} << 8) | (i + 1 < n ? p[i + 1] : 0u);
    sum += word;
    while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  }
  return static_cast<uint16_t>(sum);
}
inline uint16_t ones_add(uint16_t a, uint16_t b) {
  uint32_t s = uint32_t{a} + b;
  while (s >> 16) s = (s & 0xFFFF) + (s >> 16);
  return static_cast<uint16_t>(s);
}

// UDP pseudo-header sum (RFC 768): src, dst, zero+proto, UDP length.
inline uint16_t pseudo_sum(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len) {
  uint8_t ph[12] = {static_cast<uint8_t>(src >> 24), static_cast<uint8_t>(src >> 16), static_cast<uint8_t>(src >> 8),
                    static_cast<uint8_t>(src),       static_cast<uint8_t>(dst >> 24), static_cast<uint8_t>(dst >> 16),
                    static_cast<uint8_t>(dst >> 8),  static_cast<uint8_t>(dst),       0,
                    proto,                           static_cast<uint8_t>(len >> 8),  static_cast<uint8_t>(len)};
  return ones_sum(ph, sizeof ph);
}

// A received checksum over a region (checksum field included) is good when
// the one's-complement sum of everything is 0xFFFF.
inline bool ipv4_header_ok(const uint8_t* ip) {
  const size_t ihl = size_t{ip[0] & 0x0Fu} * 4;
  return ones_sum(ip, ihl) == 0xFFFF;
}
// UDP checksum check (a zero field means "none", which we report as not ok
// here: our own replies must always carry one).
inline bool udp_checksum_ok(const uint8_t* ip) {
  const uint8_t* udp = ip + size_t{ip[0] & 0x0Fu} * 4;
  const uint16_t len = get16(udp + 4);
  if (get16(udp + 6) == 0) return false;
  return ones_sum(udp, len, pseudo_sum(get32(ip + 12), get32(ip + 16), 17, len)) == 0xFFFF;
}
// The checksum value a sender computes for the UDP datagram at ip (its
// checksum field taken as zero), before the 0 -> 0xFFFF substitution.
inline uint16_t udp_checksum_computed(const uint8_t* ip) {
  const uint8_t* udp = ip + size_t{ip[0] & 0x0Fu} * 4;
  const uint16_t len = get16(udp + 4);
  Bytes copy(udp, udp + len);
  copy[6] = copy[7] = 0;
  return static_cast<uint16_t>(~ones_sum(copy.data(), len, pseudo_sum(get32(ip + 12), get32(ip + 16), 17, len)));
}
inline bool icmp_checksum_ok(const uint8_t* icmp, size_t len) { return ones_sum(icmp, len) == 0xFFFF; }

// ------------------------------------------------------------------ builders

struct UdpSpec {
  uint16_t src_port = 44676;
  uint16_t dst_port = 123;
  std::optional<uint16_t> length;  // override of the UDP length field
  bool zero_checksum = false;      // send no checksum (0)
  bool bad_checksum = false;       // a wrong (non-zero) checksum
};

// The UDP datagram; checksum over the pseudo-header for src/dst.
inline Bytes udp(uint32_t src, uint32_t dst, const Bytes& payload, const UdpSpec& s = {}) {
  Bytes u;
  push16(u, s.src_port);
  push16(u, s.dst_port);
  const uint16_t real_len = static_cast<uint16_t>(8 + payload.size());
  push16(u, s.length.value_or(real_len));
  push16(u, 0);
  u.insert(u.end(), payload.begin(), payload.end());
  if (!s.zero_checksum) {
    // Over the bytes the length field claims, when they exist (so an
    // over-long length still gets some checksum; it is dropped earlier).
    const uint16_t len = s.length.value_or(real_len) <= u.size() ? s.length.value_or(real_len) : real_len;
    uint16_t ck = static_cast<uint16_t>(~ones_sum(u.data(), len, pseudo_sum(src, dst, 17, s.length.value_or(real_len))));
    if (ck == 0) ck = 0xFFFF;
    if (s.bad_checksum) ck = static_cast<uint16_t>(ck == 0x1234 ? 0x4321 : 0x1234);
    put16(u, 6, ck);
  }
  return u;
}

struct IcmpSpec {
  uint8_t type = 8;
  uint8_t code = 0;
  uint16_t id = 0x4D2A;
  uint16_t seq = 1;
  bool bad_checksum = false;
};

inline Bytes icmp(const Bytes& data, const IcmpSpec& s = {}) {
  Bytes m = {s.type, s.code, 0, 0};
  push16(m, s.id);
  push16(m, s.seq);
  m.insert(m.end(), data.begin(), data.end());
  uint16_t ck = static_cast<uint16_t>(~ones_sum(m.data(), m.size()));
  if (s.bad_checksum) ck = static_cast<uint16_t>(ck ^ 0x0101);
  put16(m, 2, ck);
  return m;
}

struct IpSpec {
  uint32_t src = ip4(10, 99, 0, 2);
  uint32_t dst = ip4(10, 99, 0, 1);
  uint8_t proto = 17;
  uint8_t tos = 0;
  uint16_t id = 0x1234;
  uint16_t flags_frag = 0x0000;  // flags (DF 0x4000, MF 0x2000) and fragment offset
  uint8_t ttl = 63;
  Bytes options;                 // multiple of 4 bytes
  std::optional<uint8_t> version_ihl;    // override of byte 0 (checksum computed over the real header length)
  std::optional<uint16_t> total_length;  // override of the total length field
  bool bad_checksum = false;
};

inline Bytes ipv4(const Bytes& payload, const IpSpec& s = {}) {
  const size_t hlen = 20 + s.options.size();
  Bytes h;
  h.push_back(s.version_ihl.value_or(static_cast<uint8_t>(0x40 | (hlen / 4))));
  h.push_back(s.tos);
  push16(h, s.total_length.value_or(static_cast<uint16_t>(hlen + payload.size())));
  push16(h, s.id);
  push16(h, s.flags_frag);
  h.push_back(s.ttl);
  h.push_back(s.proto);
  push16(h, 0);
  push32(h, s.src);
  push32(h, s.dst);
  h.insert(h.end(), s.options.begin(), s.options.end());
  uint16_t ck = static_cast<uint16_t>(~ones_sum(h.data(), h.size()));
  if (s.bad_checksum) ck = static_cast<uint16_t>(ck ^ 0x8001);
  put16(h, 10, ck);
  h.insert(h.end(), payload.begin(), payload.end());
  return h;
}

inline Bytes ethernet(const Mac& dst, const Mac& src, uint16_t type, const Bytes& payload, size_t pad_to = 0) {
  Bytes f(dst.begin(), dst.end());
  f.insert(f.end(), src.begin(), src.end());
  push16(f, type);
  f.insert(f.end(), payload.begin(), payload.end());
  if (f.size() < pad_to) f.resize(pad_to, 0);
  return f;
}

// The frame with an IEEE 802.1Q tag (TPID 0x8100, tci: priority, DEI and
// VLAN ID) after its MAC addresses.
inline Bytes tagged(const Bytes& frame, uint16_t tci) {
  Bytes f(frame.begin(), frame.begin() + 12);
  push16(f, 0x8100);
  push16(f, tci);
  f.insert(f.end(), frame.begin() + 12, frame.end());
  return f;
}

struct ArpSpec {
  uint16_t htype = 1;
  uint16_t ptype = 0x0800;
  uint8_t hlen = 6;
  uint8_t plen = 4;
  uint16_t op = 1;
  Mac sha{};
  uint32_t spa = 0;
  Mac tha{};
  uint32_t tpa = 0;
};

inline Bytes arp(const ArpSpec& s) {
  Bytes a;
  push16(a, s.htype);
  push16(a, s.ptype);
  a.push_back(s.hlen);
  a.push_back(s.plen);
  push16(a, s.op);
  a.insert(a.end(), s.sha.begin(), s.sha.end());
  push32(a, s.spa);
  a.insert(a.end(), s.tha.begin(), s.tha.end());
  push32(a, s.tpa);
  return a;
}

// A 48-byte NTP client request: LI/VN/mode byte, poll, and transmit time.
inline Bytes ntp_request(uint8_t li_vn_mode = 0x23, uint8_t poll = 6, uint64_t transmit = 0xE9A1B2C3D4E5F607ULL) {
  Bytes p(48, 0);
  p[0] = li_vn_mode;
  p[2] = poll;
  p[3] = 0xEC;  // precision -20
  for (int i = 0; i < 8; i++) p[40 + i] = static_cast<uint8_t>(transmit >> (56 - 8 * i));
  return p;
}

}  // namespace ntp::testfb
