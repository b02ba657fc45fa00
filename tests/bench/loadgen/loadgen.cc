#include "tests/bench/loadgen/loadgen.h"

#include <arpa/inet.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>

#include "dataplane/inet.h"
#include "proto/inet.h"

namespace ntp::loadgen {

using proto::load_be16;
using proto::load_be32;
using proto::store_be16;
using proto::store_be32;

namespace {

constexpr size_t kEth = dp::kEthHeaderLen, kIp4 = dp::kIpv4MinHeaderLen, kIp6 = 40, kUdp = dp::kUdpHeaderLen;
constexpr uint8_t kIpProtoIcmpv6 = 58;
constexpr uint8_t kNeighbourSolicitation = 135, kNeighbourAdvertisement = 136;

uint64_t low64(const std::array<uint8_t, 16>& b) {
  uint64_t v = 0;
  for (int i = 8; i < 16; i++) v = (v << 8) | b[i];
  return v;
}
void set_low64(std::array<uint8_t, 16>& b, uint64_t v) {
  for (int i = 15; i >= 8; i--, v >>= 8) b[i] = static_cast<uint8_t>(v);
}

// The IPv6 pseudo-header (RFC 8200 8.1) of an upper-layer packet of len bytes.
uint64_t pseudo_header_sum6(const uint8_t* src, const uint8_t* dst, uint8_t next_header, uint32_t len) {
  uint64_t sum = dp::csum_add(0, src, 16);
  sum = dp::csum_add(sum, dst, 16);
  return sum + len + next_header;
}

template <typename T>
bool parse_number(std::string_view s, T& out) {
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

}  // namespace

std::optional<Address> parse_address(std::string_view s) {
  if (auto v4 = proto::parse_ipv4(s)) return Address{false, *v4, {}};
  Address a{true, 0, {}};
  const std::string z(s);
  if (s.find(':') != std::string_view::npos && inet_pton(AF_INET6, z.c_str(), a.v6_bytes.data()) == 1) return a;
  return std::nullopt;
}

std::string to_string(const Address& a) {
  if (!a.v6) return proto::ipv4_to_string(a.v4);
  char buf[INET6_ADDRSTRLEN];
  return inet_ntop(AF_INET6, a.v6_bytes.data(), buf, sizeof buf) ? buf : "?";
}

std::optional<AddressRange> parse_range(std::string_view cidr, std::string& err) {
  const size_t slash = cidr.find('/');
  const auto addr = parse_address(cidr.substr(0, slash));
  unsigned len = 0;
  if (!addr || slash == std::string_view::npos || !parse_number(cidr.substr(slash + 1), len)) {
    err.assign(1, '\'').append(cidr).append("' is not ADDRESS/PREFIX_LEN");  // not "'" + string: GCC 12 -Wrestrict
    return std::nullopt;
  }
  AddressRange r{*addr, 0};
  if (!addr->v6) {
    if (len > 32) {
      err = "IPv4 prefix length " + std::to_string(len) + " > 32";
      return std::nullopt;
    }
    const uint32_t net = addr->v4 & proto::netmask(len);
    const uint64_t size = uint64_t{1} << (32 - len);
    // Up to /30 the network and broadcast addresses are nobody's.
    r.first.v4 = size >= 4 ? net + 1 : net;
    r.count = size >= 4 ? size - 2 : size;
    return r;
  }
  if (len < 64 || len > 128) {
    err = "IPv6 prefix length " + std::to_string(len) + " is not 64..128";
    return std::nullopt;
  }
  const unsigned host_bits = 128 - len;
  const uint64_t mask = host_bits == 64 ? 0 : ~uint64_t{0} << host_bits;
  set_low64(r.first.v6_bytes, low64(addr->v6_bytes) & mask);
  // The all-zero host part is the subnet-router anycast address (RFC 4291 2.6.1).
  const uint64_t size = host_bits >= 33 ? uint64_t{1} << 32 : uint64_t{1} << host_bits;
  r.first = nth_address(r, size > 1 ? 1 : 0);
  r.count = size > 1 ? size - 1 : 1;
  return r;
}

Address nth_address(const AddressRange& r, uint64_t i) {
  Address a = r.first;
  if (!a.v6)
    a.v4 += static_cast<uint32_t>(i);
  else
    set_low64(a.v6_bytes, low64(a.v6_bytes) + i);
  return a;
}

std::optional<uint64_t> offset_in(const AddressRange& r, const Address& a) {
  if (a.v6 != r.first.v6) return std::nullopt;
  if (!a.v6) {
    const uint64_t d = uint64_t{a.v4} - r.first.v4;  // wraps to huge when below
    return a.v4 >= r.first.v4 && d < r.count ? std::optional(d) : std::nullopt;
  }
  if (std::memcmp(a.v6_bytes.data(), r.first.v6_bytes.data(), 8) != 0) return std::nullopt;
  const uint64_t lo = low64(a.v6_bytes), first = low64(r.first.v6_bytes);
  return lo >= first && lo - first < r.count ? std::optional(lo - first) : std::nullopt;
}

std::optional<ClientSet> ClientSet::make(std::vector<AddressRange> ranges, uint32_t clients, uint16_t first_port,
                                         std::string& err) {
  if (ranges.empty() || clients == 0) {
    err = "no clients: give --src and --clients > 0";
    return std::nullopt;
  }
  ClientSet s;
  uint64_t total = 0;
  for (const auto& r : ranges) {
    if (r.first.v6 != ranges.front().first.v6) {
      err = "--src ranges mix IPv4 and IPv6";
      return std::nullopt;
    }
    total += r.count;
  }
  s.addresses_ = std::min<uint64_t>(total, clients);
  const uint64_t ports = (clients + s.addresses_ - 1) / s.addresses_;
  if (first_port == 0 || first_port + ports - 1 > 65535) {
    err = std::to_string(clients) + " clients on " + std::to_string(s.addresses_) + " addresses need " +
          std::to_string(ports) + " ports from " + std::to_string(first_port) + ": past 65535 (more --src addresses)";
    return std::nullopt;
  }
  s.ranges_ = std::move(ranges);
  s.clients_ = clients;
  s.first_port_ = first_port;
  s.table_.reserve(s.addresses_);
  for (const auto& r : s.ranges_)
    for (uint64_t i = 0; i < r.count && s.table_.size() < s.addresses_; i++) s.table_.push_back(nth_address(r, i));
  return s;
}

Endpoint ClientSet::endpoint(uint32_t client) const {
  return {table_[client % addresses_], static_cast<uint16_t>(first_port_ + client / addresses_)};
}

std::optional<uint64_t> ClientSet::address_index(const Address& a) const {
  uint64_t base = 0;
  for (const auto& r : ranges_) {
    if (auto off = offset_in(r, a)) {
      const uint64_t i = base + *off;
      return i < addresses_ ? std::optional(i) : std::nullopt;
    }
    base += r.count;
  }
  return std::nullopt;
}

std::optional<uint32_t> ClientSet::client_of(const Address& a, uint16_t port) const {
  if (port < first_port_) return std::nullopt;
  const auto i = address_index(a);
  if (!i) return std::nullopt;
  const uint64_t c = uint64_t{static_cast<uint16_t>(port - first_port_)} * addresses_ + *i;
  return c < clients_ ? std::optional(static_cast<uint32_t>(c)) : std::nullopt;
}

bool ClientSet::has_address(const Address& a) const { return address_index(a).has_value(); }

const char* to_string(Invalid r) {
  switch (r) {
    case Invalid::kNone: return "none";
    case Invalid::kChecksum: return "checksum";
    case Invalid::kSource: return "source";
    case Invalid::kLength: return "length";
    case Invalid::kMode: return "mode";
    case Invalid::kStratum: return "stratum";
    case Invalid::kLeap: return "leap";
    case Invalid::kOrigin: return "origin";
    case Invalid::kDuplicate: return "duplicate";
    case Invalid::kCount: break;
  }
  return "?";
}

Invalid check_header(const proto::NtpHeader& h, const Expectation& e) {
  if (h.mode != proto::Mode::kServer) return Invalid::kMode;
  if (h.stratum < e.stratum_min || h.stratum > e.stratum_max) return Invalid::kStratum;
  if (h.leap == proto::Leap::kUnsynchronized && !e.allow_unsynchronized) return Invalid::kLeap;
  return Invalid::kNone;
}

Match match_origin(const ClientSlots& s, uint64_t seq, uint32_t client, uint32_t n_clients, uint64_t next_seq) {
  if (seq == s.last.seq) return Match::kLast;
  if (seq == s.before.seq) return Match::kBefore;
  // A request of this client sent before those two: answered very late.
  if (seq < next_seq && seq % n_clients == client) return Match::kOlder;
  return Match::kNone;
}

size_t build_request(uint8_t* buf, const FrameSpec& f, const Endpoint& client, uint64_t transmit) {
  const bool v6 = f.server.v6;
  std::memcpy(buf, f.dst_mac, 6);
  std::memcpy(buf + 6, f.src_mac, 6);
  store_be16(buf + 12, v6 ? kEtherTypeIpv6 : dp::kEtherTypeIpv4);
  uint8_t* ip = buf + kEth;
  const size_t ip_len = v6 ? kIp6 : kIp4;
  uint8_t* udp = ip + ip_len;
  uint8_t* ntp = udp + kUdp;
  const auto udp_len = static_cast<uint16_t>(kUdp + proto::kHeaderLen);

  proto::NtpHeader h;
  h.leap = proto::Leap::kUnsynchronized;  // what a client that has not synchronized yet sends
  h.mode = proto::Mode::kClient;
  h.transmit = from_u64(transmit);
  proto::write_header(h, ntp);

  store_be16(udp, client.port);
  store_be16(udp + 2, f.server_port);
  store_be16(udp + 4, udp_len);
  store_be16(udp + 6, 0);
  uint64_t sum = dp::csum_add(0, udp, udp_len);
  if (!v6) {
    ip[0] = 0x45;
    ip[1] = 0;
    store_be16(ip + 2, static_cast<uint16_t>(kIp4 + udp_len));
    store_be32(ip + 4, 0);  // id 0, flags 0: a 90-byte datagram is never fragmented
    ip[8] = dp::kDefaultTtl;
    ip[9] = dp::kIpProtoUdp;
    store_be16(ip + 10, 0);
    store_be32(ip + 12, client.addr.v4);
    store_be32(ip + 16, f.server.v4);
    store_be16(ip + 10, dp::csum_finish(dp::csum_add(0, ip, kIp4)));
    sum += dp::pseudo_header_sum(client.addr.v4, f.server.v4, dp::kIpProtoUdp, udp_len);
  } else {
    store_be32(ip, 0x60000000);
    store_be16(ip + 4, udp_len);
    ip[6] = dp::kIpProtoUdp;
    ip[7] = dp::kDefaultTtl;
    std::memcpy(ip + 8, client.addr.v6_bytes.data(), 16);
    std::memcpy(ip + 24, f.server.v6_bytes.data(), 16);
    sum += pseudo_header_sum6(ip + 8, ip + 24, dp::kIpProtoUdp, udp_len);
  }
  uint16_t check = dp::csum_finish(sum);
  store_be16(udp + 6, check == 0 ? 0xFFFF : check);  // 0 means "no checksum" (RFC 768)
  return kEth + ip_len + udp_len;
}

RequestTemplate::RequestTemplate(const FrameSpec& f) : v6_(f.server.v6) {
  const Address zero{v6_, 0, {}};
  len_ = build_request(frame_, f, {zero, 0}, 0);
  uint8_t* ip = frame_ + kEth;
  uint8_t* udp = ip + (v6_ ? kIp6 : kIp4);
  store_be16(udp + 6, 0);
  udp_sum_ = dp::csum_add(0, udp, kUdp + proto::kHeaderLen);
  if (!v6_) {
    store_be16(ip + 10, 0);
    ip_sum_ = dp::csum_add(0, ip, kIp4);
    udp_sum_ += dp::pseudo_header_sum(0, f.server.v4, dp::kIpProtoUdp, kUdp + proto::kHeaderLen);
  } else {
    udp_sum_ += pseudo_header_sum6(ip + 8, ip + 24, dp::kIpProtoUdp, kUdp + proto::kHeaderLen);
  }
}

size_t RequestTemplate::write(uint8_t* buf, const Address& client, uint16_t port, uint64_t transmit) const {
  std::memcpy(buf, frame_, len_);
  uint8_t* ip = buf + kEth;
  uint8_t* udp = ip + (v6_ ? kIp6 : kIp4);
  const auto tx_hi = static_cast<uint32_t>(transmit >> 32), tx_lo = static_cast<uint32_t>(transmit);
  store_be16(udp, port);
  store_be32(udp + kUdp + proto::offs::kTransmit, tx_hi);
  store_be32(udp + kUdp + proto::offs::kTransmit + 4, tx_lo);
  // A 16-bit word added as a 32-bit one sums the same once folded (2^16 = 1 mod 0xFFFF).
  uint64_t sum = udp_sum_ + port + tx_hi + tx_lo;
  if (!v6_) {
    store_be32(ip + 12, client.v4);
    store_be16(ip + 10, dp::csum_finish(ip_sum_ + client.v4));
    sum += client.v4;
  } else {
    std::memcpy(ip + 8, client.v6_bytes.data(), 16);
    sum = dp::csum_add(sum, client.v6_bytes.data(), 16);
  }
  const uint16_t check = dp::csum_finish(sum);
  store_be16(udp + 6, check == 0 ? 0xFFFF : check);
  return len_;
}

RxFrame parse_frame(const uint8_t* buf, size_t len) {
  RxFrame r;
  if (len < kEth) return r;
  std::memcpy(r.src_mac, buf + 6, 6);
  const uint16_t type = load_be16(buf + 12);
  const uint8_t* p = buf + kEth;
  const size_t n = len - kEth;
  if (type == dp::kEtherTypeArp) {
    // Ethernet/IPv4 only: htype 1, ptype 0x0800, hlen 6, plen 4.
    if (n < dp::kArpLen || load_be16(p) != 1 || load_be16(p + 2) != dp::kEtherTypeIpv4 || p[4] != 6 || p[5] != 4)
      return r;
    const uint16_t op = load_be16(p + 6);
    if (op != 1 && op != 2) return r;
    r.kind = op == 1 ? FrameKind::kArpRequest : FrameKind::kArpReply;
    std::memcpy(r.lladdr, p + 8, 6);
    r.has_lladdr = true;
    r.src = {false, load_be32(p + 14), {}};
    r.dst = {false, load_be32(p + 24), {}};
    return r;
  }
  if (type == dp::kEtherTypeIpv4) {
    if (n < kIp4 || (p[0] >> 4) != 4) return r;
    const size_t ihl = size_t{p[0] & 0x0Fu} * 4;
    const size_t total = load_be16(p + 2);
    if (ihl < kIp4 || total < ihl + kUdp || total > n || p[9] != dp::kIpProtoUdp) return r;
    if ((load_be16(p + 6) & 0x3FFF) != 0) return r;  // a fragment: not one of our answers
    r.kind = FrameKind::kUdp;
    r.src = {false, load_be32(p + 12), {}};
    r.dst = {false, load_be32(p + 16), {}};
    const uint8_t* udp = p + ihl;
    const size_t udp_len = load_be16(udp + 4);
    if (udp_len < kUdp || udp_len > total - ihl) {
      r.checksum_ok = false;
      return r;
    }
    r.src_port = load_be16(udp);
    r.dst_port = load_be16(udp + 2);
    r.payload = udp + kUdp;
    r.payload_len = udp_len - kUdp;
    const bool ip_ok = dp::csum_fold(dp::csum_add(0, p, ihl)) == 0xFFFF;
    const bool udp_ok = load_be16(udp + 6) == 0 ||
                        dp::csum_fold(dp::csum_add(dp::pseudo_header_sum(r.src.v4, r.dst.v4, dp::kIpProtoUdp,
                                                                         static_cast<uint16_t>(udp_len)),
                                                   udp, udp_len)) == 0xFFFF;
    r.checksum_ok = ip_ok && udp_ok;
    return r;
  }
  if (type == kEtherTypeIpv6) {
    if (n < kIp6 || (p[0] >> 4) != 6) return r;
    const size_t plen = load_be16(p + 4);
    if (plen > n - kIp6) return r;
    r.src.v6 = r.dst.v6 = true;
    std::memcpy(r.src.v6_bytes.data(), p + 8, 16);
    std::memcpy(r.dst.v6_bytes.data(), p + 24, 16);
    const uint8_t* l4 = p + kIp6;
    const uint8_t nh = p[6];
    const bool sum_ok = dp::csum_fold(dp::csum_add(pseudo_header_sum6(p + 8, p + 24, nh, static_cast<uint32_t>(plen)),
                                                   l4, plen)) == 0xFFFF;
    if (nh == dp::kIpProtoUdp) {
      if (plen < kUdp) return r;
      const size_t udp_len = load_be16(l4 + 4);
      r.kind = FrameKind::kUdp;
      r.src_port = load_be16(l4);
      r.dst_port = load_be16(l4 + 2);
      // RFC 8200 8.1: over IPv6 the UDP checksum is mandatory.
      r.checksum_ok = sum_ok && udp_len == plen && load_be16(l4 + 6) != 0;
      r.payload = l4 + kUdp;
      r.payload_len = std::min(plen, std::max(udp_len, kUdp)) - kUdp;
      return r;
    }
    // RFC 4861 7.1.1/7.1.2: hop limit 255, a valid checksum, ICMP code 0, 24 bytes or more.
    if (nh != kIpProtoIcmpv6 || plen < 24 || p[7] != 255 || l4[1] != 0 || !sum_ok) return r;
    if (l4[0] != kNeighbourSolicitation && l4[0] != kNeighbourAdvertisement) return r;
    r.kind = l4[0] == kNeighbourSolicitation ? FrameKind::kNeighbourSolicitation : FrameKind::kNeighbourAdvertisement;
    std::memcpy(r.dst.v6_bytes.data(), l4 + 8, 16);  // the target
    // Options: source (1) or target (2) link-layer address, 8 bytes with a MAC.
    for (size_t o = 24; o + 8 <= plen && l4[o + 1] != 0; o += size_t{l4[o + 1]} * 8) {
      if ((l4[o] == 1 || l4[o] == 2) && l4[o + 1] == 1) {
        std::memcpy(r.lladdr, l4 + o + 2, 6);
        r.has_lladdr = true;
      }
    }
    return r;
  }
  return r;
}

// The dataplane's ARP request builder asks for the server's MAC
// (dp::build_arp_request); a reply is ours to build, for a client.
size_t build_arp_reply(uint8_t* buf, const RxFrame& request, const uint8_t* mac) {
  std::memcpy(buf, request.lladdr, 6);
  std::memcpy(buf + 6, mac, 6);
  store_be16(buf + 12, dp::kEtherTypeArp);
  uint8_t* a = buf + kEth;
  store_be16(a, 1);
  store_be16(a + 2, dp::kEtherTypeIpv4);
  a[4] = 6;
  a[5] = 4;
  store_be16(a + 6, 2);
  std::memcpy(a + 8, mac, 6);
  store_be32(a + 14, request.dst.v4);
  std::memcpy(a + 18, request.lladdr, 6);
  store_be32(a + 24, request.src.v4);
  return kEth + dp::kArpLen;
}

namespace {

// An ICMPv6 neighbour discovery message (32 bytes: type, target, one
// link-layer address option) from src to dst.
size_t build_nd(uint8_t* buf, const uint8_t* dst_mac, const uint8_t* mac, const uint8_t* src, const uint8_t* dst,
                uint8_t type, uint32_t flags, const uint8_t* target) {
  std::memcpy(buf, dst_mac, 6);
  std::memcpy(buf + 6, mac, 6);
  store_be16(buf + 12, kEtherTypeIpv6);
  uint8_t* ip = buf + kEth;
  constexpr uint16_t kLen = 32;
  store_be32(ip, 0x60000000);
  store_be16(ip + 4, kLen);
  ip[6] = kIpProtoIcmpv6;
  ip[7] = 255;
  std::memcpy(ip + 8, src, 16);
  std::memcpy(ip + 24, dst, 16);
  uint8_t* m = ip + kIp6;
  m[0] = type;
  m[1] = 0;
  store_be16(m + 2, 0);
  store_be32(m + 4, flags);
  std::memcpy(m + 8, target, 16);
  m[24] = type == kNeighbourSolicitation ? 1 : 2;  // source / target link-layer address
  m[25] = 1;
  std::memcpy(m + 26, mac, 6);
  store_be16(m + 2, dp::csum_finish(dp::csum_add(pseudo_header_sum6(src, dst, kIpProtoIcmpv6, kLen), m, kLen)));
  return kEth + kIp6 + kLen;
}

}  // namespace

size_t build_neighbour_advertisement(uint8_t* buf, const RxFrame& solicitation, const uint8_t* mac) {
  // To the solicitor (RFC 4861 7.2.4); flags: solicited, override.
  return build_nd(buf, solicitation.src_mac, mac, solicitation.dst.v6_bytes.data(), solicitation.src.v6_bytes.data(),
                  kNeighbourAdvertisement, 0x60000000, solicitation.dst.v6_bytes.data());
}

size_t build_neighbour_solicitation(uint8_t* buf, const uint8_t* mac, const Address& src, const Address& target) {
  // ff02::1:ffXX:XXXX, and its MAC 33:33:ff:XX:XX:XX (RFC 4291 2.7.1, RFC 2464 7).
  uint8_t group[16] = {0xFF, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xFF};
  std::memcpy(group + 13, target.v6_bytes.data() + 13, 3);
  const uint8_t group_mac[6] = {0x33, 0x33, 0xFF, group[13], group[14], group[15]};
  return build_nd(buf, group_mac, mac, src.v6_bytes.data(), group, kNeighbourSolicitation, 0,
                  target.v6_bytes.data());
}

std::optional<std::vector<double>> parse_rates(std::string_view s, std::string& err) {
  std::vector<std::string_view> parts;
  for (size_t at = 0;;) {
    const size_t c = s.find(':', at);
    parts.push_back(s.substr(at, c == std::string_view::npos ? std::string_view::npos : c - at));
    if (c == std::string_view::npos) break;
    at = c + 1;
  }
  const auto number = [&](std::string_view t, double& v) {
    const std::string z(t);
    char* end = nullptr;
    v = std::strtod(z.c_str(), &end);
    return !z.empty() && end == z.c_str() + z.size() && std::isfinite(v) && v > 0;
  };
  double first = 0, last = 0, by = 0;
  const bool ok = (parts.size() == 1 && number(parts[0], first)) ||
                  (parts.size() == 3 && number(parts[0], first) && number(parts[1], last) && parts[2].size() > 1 &&
                   (parts[2][0] == 'x' || parts[2][0] == '+') && number(parts[2].substr(1), by) && last >= first &&
                   (parts[2][0] == '+' || by > 1));
  if (!ok) {
    err = "--rate '" + std::string(s) + "' is not RATE, START:MAX:xFACTOR (factor > 1) or START:MAX:+STEP";
    return std::nullopt;
  }
  std::vector<double> out{first};
  if (parts.size() == 3) {
    for (double r = first;;) {
      r = parts[2][0] == 'x' ? r * by : r + by;
      if (r > last * (1 + 1e-9)) break;
      if (out.size() == 64) {
        err = "--rate '" + std::string(s) + "' makes more than 64 steps";
        return std::nullopt;
      }
      out.push_back(r);
    }
  }
  return out;
}

std::optional<std::array<uint8_t, 6>> parse_mac(std::string_view s) {
  std::array<uint8_t, 6> m{};
  if (s.size() != 17) return std::nullopt;
  for (size_t i = 0; i < 6; i++) {
    if (i > 0 && s[i * 3 - 1] != ':') return std::nullopt;
    unsigned v = 0;
    const auto [p, ec] = std::from_chars(s.data() + i * 3, s.data() + i * 3 + 2, v, 16);
    if (ec != std::errc() || p != s.data() + i * 3 + 2) return std::nullopt;
    m[i] = static_cast<uint8_t>(v);
  }
  return m;
}

size_t LatencyHistogram::bucket_of(uint64_t ns) {
  if (ns < (uint64_t{2} << kSubBits)) return static_cast<size_t>(ns);
  const unsigned shift = static_cast<unsigned>(std::bit_width(ns)) - 1 - kSubBits;
  return ((size_t{shift} + 1) << kSubBits) + static_cast<size_t>((ns >> shift) - (uint64_t{1} << kSubBits));
}

uint64_t LatencyHistogram::bucket_low(size_t b) {
  if (b < (size_t{2} << kSubBits)) return b;
  const unsigned shift = static_cast<unsigned>(b >> kSubBits) - 1;
  return (uint64_t{(b & ((1u << kSubBits) - 1))} + (uint64_t{1} << kSubBits)) << shift;
}

void LatencyHistogram::add(uint64_t ns) {
  buckets_[bucket_of(ns)]++;
  count_++;
  max_ = std::max(max_, ns);
  min_ = std::min(min_, ns);
}

void LatencyHistogram::clear() {
  buckets_.fill(0);
  count_ = max_ = 0;
  min_ = ~uint64_t{0};
}

uint64_t LatencyHistogram::quantile(double q) const {
  if (count_ == 0) return 0;
  // The rank of the sample wanted, 1..count (nearest-rank definition).
  const auto rank = static_cast<uint64_t>(std::max(1.0, std::ceil(std::clamp(q, 0.0, 1.0) * count_)));
  uint64_t seen = 0;
  for (size_t b = 0; b < kBuckets; b++) {
    seen += buckets_[b];
    if (seen >= rank) {
      // The bucket's middle, but never past what was seen.
      const uint64_t lo = bucket_low(b), hi = b + 1 < kBuckets ? bucket_low(b + 1) : lo;
      return std::clamp(lo + (hi - lo) / 2, min(), max_);
    }
  }
  return max_;
}

}  // namespace ntp::loadgen
