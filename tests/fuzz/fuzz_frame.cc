// libFuzzer target: dp::handle_frame on arbitrary Ethernet frames for one
// fixed port (02:00:00:00:00:01, 10.0.1.31/24).
//
// Input: byte 0 flags, bytes 1-8 the transmit timestamp for stamp_transmit,
// then the frame. Mutated frames almost never keep valid checksums, so the
// flags let the fuzzer ask for them to be fixed up before the call and reach
// the code behind the checksum checks:
//   bit 0: recompute the IPv4 header checksum   bit 1: the UDP checksum
//   bit 2: the ICMP checksum                    bit 3: params synchronized
//   bit 4: the port serves NTP                 bit 5: access.kod
//   bit 6: ntp.answer_unknown_peers             bit 7: a rate limiter (and a reply cap)
// byte 5 bit 0: NTS cookie keys held (fuzz_cookie_ring). An NTS reply is
// stamped then sealed (seal_nts_transmit): its UDP checksum holds; an NTS
// NAK is the header (stratum 0, NTSN, the request's transmit as every
// timestamp) and the UID field, complete as built; neither without the
// keys, nor to a source without time rights.
// Byte 5 bit 2 (with flags bit 7): the client table keeps interleaved slots
// (issue 12); bit 3 presets the source's slot with the request's origin as
// our last answer's receive timestamp, bit 4 with a transmit time. An
// interleaved answer goes only to an NTPv4 client request naming that
// answer, echoes its receive field as origin and carries exactly that
// transmit time; every answer of time leaves its receive timestamp and a
// pending transmit in the slot, nothing else touches it.
// Byte 5 bit 5: an 802.1Q tag (priority from byte 6; bit 7 puts the port
// on VLAN 1 + byte 8 % 8 and the tag on it, or byte 6 bit 4 on the next
// one; else VLAN 0) is put after the MAC addresses; bit 6 puts IPv4 options into a plain
// header (router alerts, a record route, a loose source route or a broken
// timestamp, by byte 7). A tagged frame is taken only on its port's VLAN
// (VLAN 0: untagged and priority tags) and answered with its tag;
// every IPv4 reply has a plain header; a request with options is answered
// only over UDP and never when source-routed or malformed; what goes to
// the control plane is the request's NTP payload, moved over its options.
// The policy (issue 9) is drawn from the transmit-timestamp bytes too:
// byte 1 bits 0-2 the access class of the frame's source (0-5; 6, 7: none
// listed, the default class, limited), byte 2 bits 0-1 whether the source
// is a configured [[server]] / [[peer]], byte 3 how many requests the
// limiter saw from the source just before (its state), byte 4 the reply
// cap's burst (0: none).
// The frame is copied into a heap buffer of exactly len + 4 bytes (the
// contract: a crypto-NAK grows the reply by 4), so ASan sees any write past.
// Invariants:
//  - kTransmit: len <= in + 4; Ethernet back to the sender from our MAC;
//    IPv4 replies have a valid header checksum, our address as source and
//    a total length that matches; ICMP echo replies a valid ICMP checksum;
//    NTP replies, after stamp_transmit, a valid UDP checksum, port 123 to
//    the client's port, and a payload that parses as mode 4 carrying the
//    transmit timestamp; ARP replies are op 2 from our MAC/IP
//  - kToControl: the NTP payload lies inside the frame and is untouched;
//    mode 4 only from a configured association, modes 1 and 2 only from a
//    configured peer or the peer class, the association lane exactly for
//    configured associations
//  - no reply larger than its request; none to a bad source (0/8,
//    broadcast, multicast, loopback, ours, the subnet broadcast); no answer
//    at all to a source without time rights (deny, query) but a DENY KoD,
//    and that only with kod; a KoD (RATE, DENY) never without kod, always
//    NTPv4, 48 bytes, LI 3, stratum 0, the kiss code, origin = receive =
//    transmit = the request's transmit; the stateless mode-2 answer only to
//    mode 1 from a non-peer with answer_unknown_peers
//  - ARP defence (RFC 5227): only for a well-formed ARP packet from another
//    MAC whose sender IP is ours; the defence is exactly our 42-byte
//    announcement (never longer than the frame it overwrote), broadcast;
//    the frame is then replayed at times stepped by the transmit-timestamp
//    bytes (0.1 s each) and no two defences are less than 10 s apart
//  - authentication (issue 10): the policy holds five keys (ids 1..5, one
//    per type), 1 and 2 trusted; byte 2 bit 3 sets auth.authenticate; bit 4
//    rewrites an IPv4/UDP frame's NTP payload to its first 48 bytes and a
//    MAC of key 1 + (byte 2 >> 5) % 6 (6: an unknown id; lengths fixed, the
//    checksums by bits 0-1). A reply with a MAC (verdict.mac_key) is sealed
//    after stamp_transmit: its UDP checksum holds and it verifies with the
//    key; a reply without one to a request with a MAC ends in a crypto-NAK;
//    with authenticate, a mode 1/2 packet from the peer class (not a
//    configured peer) reaches the control plane only with a valid MAC of a
//    trusted key, and kNotAuthenticated only comes with authenticate or
//    from a keyed configured peer; byte 1 bits 3-5 give the configured
//    peer's endpoint a key (0: none, 1..5 ours, 6 and 7 an id we do not
//    hold): its mode 1/2 packets reach the control plane only with a valid
//    MAC of that key, and only its packets are ever demoted (assoc_demoted:
//    a configured peer's, off the associations' lane)
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "crypto/mac.h"
#include "dataplane/frame.h"
#include "dataplane/inet.h"
#include "dataplane/ratelimit.h"
#include "proto/access.h"
#include "proto/ntp_packet.h"
#include "tests/support/reply_fixtures.h"

namespace {

using namespace ntp;
using namespace ntp::dp;

constexpr size_t kPrefixLen = 9;

[[noreturn]] void fail(const char* what, size_t len) {
  std::fprintf(stderr, "fuzz_frame: invariant violated: %s (frame %zu bytes)\n", what, len);
  std::abort();
}

// The frame as the frame layer reads it: Ethernet, an 802.1Q priority tag
// (VLAN ID 0) or none, the ethertype after it, and an IPv4 header's length.
struct Layout {
  size_t l2 = kEthHeaderLen;
  uint16_t type = 0;
  uint16_t vlan = 0;  // the tag's VLAN ID (0: untagged or a priority tag)
  size_t ihl = 0;     // 0: no IPv4 header
};

Layout layout_of(const uint8_t* f, size_t len) {
  Layout l;
  if (len < kEthHeaderLen) return l;
  l.type = proto::load_be16(f + 12);
  if (l.type == kEtherTypeVlan && len >= kEthHeaderLen + kVlanTagLen) {
    l.l2 += kVlanTagLen;
    l.vlan = proto::load_be16(f + 14) & 0x0FFF;
    l.type = proto::load_be16(f + 16);
  }
  if (l.type == kEtherTypeIpv4 && len >= l.l2 + kIpv4MinHeaderLen && (f[l.l2] & 0x0Fu) >= 5) l.ihl = size_t{f[l.l2] & 0x0Fu} * 4;
  return l;
}

// Our RFC 5227 announcement, untagged: broadcast, ARP request, sender =
// target = us, tha zero.
void check_announcement(const uint8_t* out, size_t len, const PortIdentity& port) {
  uint8_t expect[kEthHeaderLen + kArpLen];
  std::memset(expect, 0xFF, 6);
  std::memcpy(expect + 6, port.mac, 6);
  const uint8_t rest[] = {0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1};
  std::memcpy(expect + 12, rest, sizeof rest);
  std::memcpy(expect + 22, port.mac, 6);
  proto::store_be32(expect + 28, port.ipv4);
  std::memset(expect + 32, 0, 6);
  proto::store_be32(expect + 38, port.ipv4);
  if (std::memcmp(out, expect, sizeof expect) != 0) fail("defence is not our announcement", len);
}

// The conflict verdict agrees with the frame, and a defence is exactly our
// announcement, on the request's tag if it had one.
void check_conflict(const uint8_t* in, const uint8_t* out, size_t len, const FrameVerdict& v, const PortIdentity& port) {
  if (!v.arp_conflict) {
    if (v.kind == ReplyKind::kArpDefence) fail("defence without a conflict", len);
    return;
  }
  const Layout l = layout_of(in, len);
  const uint8_t* q = in + l.l2;
  if (len < l.l2 + kArpLen || l.type != kEtherTypeArp) fail("conflict in a non-ARP frame", len);
  if (proto::load_be32(q + 14) != port.ipv4) fail("conflict whose sender IP is not ours", len);
  if (std::memcmp(q + 8, port.mac, 6) == 0) fail("conflict from our own MAC", len);
  if (v.action == FrameAction::kConsumed) return;
  if (v.action != FrameAction::kTransmit || v.kind != ReplyKind::kArpDefence) fail("conflict neither defended nor consumed", len);
  if (v.len != l.l2 + kArpLen || v.len > len) fail("defence frame length", len);
  if (l.l2 == kEthHeaderLen) return check_announcement(out, len, port);
  if (std::memcmp(out + 12, in + 12, kVlanTagLen) != 0) fail("defence without the request's tag", len);
  uint8_t untagged[kEthHeaderLen + kArpLen];
  std::memcpy(untagged, out, 12);
  std::memcpy(untagged + 12, out + 12 + kVlanTagLen, sizeof untagged - 12);
  check_announcement(untagged, len, port);
}

PortIdentity make_port(bool ntp_server) {
  PortIdentity p;
  const uint8_t mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
  std::memcpy(p.mac, mac, 6);
  p.ipv4 = 0x0A00011F;  // 10.0.1.31
  p.prefix_len = 24;
  p.ntp_server = ntp_server;
  return p;
}

ReplyParams make_params(bool synchronized) { return synchronized ? test::fixed_reply_params() : ReplyParams{}; }

// A source we must never answer (frame.cc's bad_source, written out again).
bool bad_source(const PortIdentity& port, uint32_t src) {
  const uint32_t host = ~proto::netmask(port.prefix_len);
  return src >> 24 == 0 || src >> 28 >= 0xE || src >> 24 == 127 || src == port.ipv4 ||
         (port.prefix_len < 31 && proto::in_prefix(src, port.ipv4, port.prefix_len) && (src & host) == host);
}

// The frame's IPv4 source when it has one (else 0).
uint32_t frame_source(const uint8_t* f, size_t len) {
  const Layout l = layout_of(f, len);
  if (l.ihl == 0) return 0;
  return proto::load_be32(f + l.l2 + 12);
}

// The UDP ports of an IPv4 frame (0 where there are none).
void frame_ports(const uint8_t* f, size_t len, uint16_t& src_port, uint16_t& dst_port) {
  src_port = dst_port = 0;
  const Layout l = layout_of(f, len);
  if (l.ihl == 0 || l.l2 + l.ihl + 4 > len) return;
  src_port = proto::load_be16(f + l.l2 + l.ihl);
  dst_port = proto::load_be16(f + l.l2 + l.ihl + 2);
}

// Recomputes the checksums the flags ask for, where the headers are there.
void fix_checksums(uint8_t* f, size_t len, uint8_t flags) {
  const Layout l = layout_of(f, len);
  if (l.ihl == 0) return;
  uint8_t* ip = f + l.l2;
  const size_t ihl = l.ihl;
  const size_t total = proto::load_be16(ip + 2);
  if (ihl > len - l.l2) return;
  if (total >= ihl && total <= len - l.l2) {
    uint8_t* l4 = ip + ihl;
    const size_t l4_len = total - ihl;
    if ((flags & 2) && ip[9] == kIpProtoUdp && l4_len >= kUdpHeaderLen) {
      const uint16_t udp_len = proto::load_be16(l4 + 4);
      if (udp_len >= kUdpHeaderLen && udp_len <= l4_len) {
        proto::store_be16(l4 + 6, 0);
        const uint16_t ck =
            csum_finish(csum_add(pseudo_header_sum(proto::load_be32(ip + 12), proto::load_be32(ip + 16), kIpProtoUdp, udp_len), l4, udp_len));
        proto::store_be16(l4 + 6, ck == 0 ? 0xFFFF : ck);
      }
    }
    if ((flags & 4) && ip[9] == kIpProtoIcmp && l4_len >= kIcmpHeaderLen) {
      proto::store_be16(l4 + 2, 0);
      proto::store_be16(l4 + 2, csum_finish(csum_add(0, l4, l4_len)));
    }
  }
  if (flags & 1) {
    proto::store_be16(ip + 10, 0);
    proto::store_be16(ip + 10, csum_finish(csum_add(0, ip, ihl)));
  }
}

// An IPv4 reply keeps the request's layer 2 (a priority tag too) and has a
// plain 20-byte header, whatever options the request had.
void check_ipv4_reply(const uint8_t* in, const uint8_t* out, const FrameVerdict& v, const PortIdentity& port,
                      size_t len) {
  const Layout l = layout_of(in, len);
  const uint8_t* ip = out + l.l2;
  if (l.ihl == 0) fail("IPv4 reply to a frame without an IPv4 header", len);
  if (std::memcmp(out + 12, in + 12, l.l2 - 12) != 0) fail("IPv4 reply without the request's tag and ethertype", len);
  if (v.len < l.l2 + kIpv4MinHeaderLen) fail("IPv4 reply shorter than its headers", len);
  if (ip[0] != 0x45) fail("IPv4 reply header is not version 4 / 20 bytes", len);
  if (csum_fold(csum_add(0, ip, kIpv4MinHeaderLen)) != 0xFFFF) fail("IPv4 header checksum invalid", len);
  if (size_t{proto::load_be16(ip + 2)} + l.l2 != v.len) fail("IPv4 total length does not match the frame", len);
  if (proto::load_be32(ip + 12) != port.ipv4) fail("IPv4 reply not from our address", len);
  if (proto::load_be32(ip + 16) != proto::load_be32(in + l.l2 + 12)) fail("IPv4 reply not to the sender", len);
}

// What an IPv4 header's options are (RFC 791, walked here again): 1 when
// a loose or strict source route (131, 137) comes before the end of the
// list, 2 when a length is below 2 or runs past the header, else 0.
int ipv4_options_kind(const uint8_t* ip, size_t ihl) {
  for (size_t at = kIpv4MinHeaderLen; at < ihl;) {
    const uint8_t type = ip[at];
    if (type == 0) return 0;
    if (type == 1) {
      at++;
      continue;
    }
    if (at + 1 >= ihl || ip[at + 1] < 2 || at + ip[at + 1] > ihl) return 2;
    if (type == 131 || type == 137) return 1;
    at += ip[at + 1];
  }
  return 0;
}

// Byte 5 bit 5: an 802.1Q tag after the MAC addresses, the priority from
// byte 6 and the VLAN ID `vlan`.
void insert_tag(std::vector<uint8_t>& f, uint8_t pcp_bits, uint16_t vlan) {
  if (f.size() < kEthHeaderLen) return;
  const uint8_t tag[4] = {0x81, 0x00, static_cast<uint8_t>((pcp_bits & 0xE0) | (vlan >> 8)),
                          static_cast<uint8_t>(vlan)};
  f.insert(f.begin() + 12, tag, tag + 4);
}

// Byte 5 bit 6: 1 + byte 7 % 10 words of IPv4 options (router alerts, a
// record route or a loose source route, by byte 7's top bits) into a plain
// IPv4 header, its lengths fixed (the checksums by the flags).
void insert_ipv4_options(std::vector<uint8_t>& f, uint8_t sel) {
  const Layout l = layout_of(f.data(), f.size());
  if (l.ihl != kIpv4MinHeaderLen || f.size() < l.l2 + kIpv4MinHeaderLen) return;
  const size_t words = 1 + sel % 10;
  std::vector<uint8_t> opt(words * 4, 0);
  switch (sel >> 6) {
    case 0:
      for (size_t w = 0; w < words; w++) opt[w * 4] = 0x94, opt[w * 4 + 1] = 4;  // router alert
      break;
    case 1: opt[0] = 7, opt[1] = static_cast<uint8_t>(words * 4 - 1), opt[2] = 4; break;  // record route
    case 2: opt[0] = 131, opt[1] = static_cast<uint8_t>(words * 4 - 1), opt[2] = 4; break;  // LSRR
    default: opt[0] = 1, opt[1] = 1, opt[2] = 0x44, opt[3] = 0; break;  // NOP NOP, then a broken timestamp
  }
  uint8_t* ip = f.data() + l.l2;
  ip[0] = static_cast<uint8_t>(0x40 | (5 + words));
  proto::store_be16(ip + 2, static_cast<uint16_t>(proto::load_be16(ip + 2) + words * 4));
  f.insert(f.begin() + static_cast<std::ptrdiff_t>(l.l2 + kIpv4MinHeaderLen), opt.begin(), opt.end());
}

}  // namespace

// Five keys, one per type (ids 1..5); the first two trusted.
const crypto::KeyTable& fuzz_keys(bool trusted_only) {
  static const auto make = [](uint32_t n) {
    crypto::KeyTable t;
    const uint8_t secret[16] = {0x2B, 0x7E, 0x15, 0x16, 0x28, 0xAE, 0xD2, 0xA6,
                                0xAB, 0xF7, 0x15, 0x88, 0x09, 0xCF, 0x4F, 0x3C};
    const crypto::MacType types[] = {crypto::MacType::kAes128Cmac, crypto::MacType::kSha256,
                                     crypto::MacType::kHmacSha256, crypto::MacType::kSha1, crypto::MacType::kMd5};
    for (uint32_t i = 0; i < n; i++) {
      crypto::MacKey k;
      if (!crypto::mac_key_init(k, i + 1, types[i], secret, sizeof secret) || !t.insert(k)) std::abort();
    }
    return t;
  };
  static const crypto::KeyTable all = make(5), trusted = make(2);
  return trusted_only ? trusted : all;
}

// The cookie keys of byte 2 bit 4: IDs 31 and 32 (32 seals), secrets
// j + 1 and j + 33 (make_corpus.py mints the seeds' cookies under them).
const crypto::CookieKeyRing& fuzz_cookie_ring() {
  static const crypto::CookieKeyRing r = [] {
    crypto::CookieKeyRing out;
    const uint32_t ids[] = {31, 32};
    uint8_t secrets[2][crypto::kSivKeyBytes];
    for (size_t j = 0; j < crypto::kSivKeyBytes; ++j) {
      secrets[0][j] = static_cast<uint8_t>(j + 1);
      secrets[1][j] = static_cast<uint8_t>(j + 33);
    }
    if (!crypto::cookie_ring_init(out, ids, secrets, 2, 1)) abort();
    return out;
  }();
  return r;
}

// Byte 2 bit 4: the frame's NTP payload cut to 48 bytes and MACed (see the top).
std::vector<uint8_t> with_mac(const uint8_t* f, size_t len, uint8_t sel) {
  std::vector<uint8_t> out(f, f + len);
  constexpr size_t kNtpAt = kEthHeaderLen + kIpv4MinHeaderLen + kUdpHeaderLen;
  if (len < kNtpAt + proto::kHeaderLen || proto::load_be16(f + 12) != kEtherTypeIpv4 || f[kEthHeaderLen] != 0x45 ||
      f[kEthHeaderLen + 9] != kIpProtoUdp)
    return out;
  const uint32_t id = 1 + (sel >> 5) % 6;
  const crypto::MacKey* k = fuzz_keys(false).find(id == 6 ? 1 : id);
  out.resize(kNtpAt + proto::kHeaderLen + 4 + crypto::kMaxDigestBytes);
  uint8_t* ntp = out.data() + kNtpAt;
  const size_t n = crypto::append_mac(*k, ntp, proto::kHeaderLen, crypto::mac_wire_digest_bytes(*k, (ntp[0] >> 3) & 7));
  if (id == 6) proto::store_be32(ntp + proto::kHeaderLen, 77);
  out.resize(kNtpAt + proto::kHeaderLen + n);
  const size_t udp_len = kUdpHeaderLen + proto::kHeaderLen + n;
  proto::store_be16(out.data() + kEthHeaderLen + 2, static_cast<uint16_t>(kIpv4MinHeaderLen + udp_len));
  proto::store_be16(out.data() + kEthHeaderLen + kIpv4MinHeaderLen + 4, static_cast<uint16_t>(udp_len));
  return out;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kPrefixLen) return -1;
  const uint8_t flags = data[0];
  uint64_t tx_raw;
  std::memcpy(&tx_raw, data + 1, 8);
  const proto::NtpTimestamp tx = proto::NtpTimestamp::from_raw(tx_raw);
  std::vector<uint8_t> frame = (data[2] & 16) ? with_mac(data + kPrefixLen, size - kPrefixLen, data[2])
                                              : std::vector<uint8_t>(data + kPrefixLen, data + size);
  if (data[5] & 64) insert_ipv4_options(frame, data[7]);
  // Byte 5 bit 7: the port is on VLAN 1 + byte 8 % 8; the tag of bit 5
  // its VLAN (byte 6 bit 4: the next one, not ours), else VLAN 0.
  const uint16_t port_vlan = (data[5] & 128) ? static_cast<uint16_t>(1 + data[8] % 8) : 0;
  if (data[5] & 32) insert_tag(frame, data[6], static_cast<uint16_t>((data[6] & 16) ? port_vlan + 1 : port_vlan));
  const size_t len = frame.size();

  auto in = std::make_unique<uint8_t[]>(len + 1);
  if (len) std::memcpy(in.get(), frame.data(), len);  // an empty vector's data() may be null
  fix_checksums(in.get(), len, flags);
  auto buf = std::make_unique<uint8_t[]>(len + 4);
  std::memcpy(buf.get(), in.get(), len);
  std::memset(buf.get() + len, 0x5A, 4);

  PortIdentity port = make_port(flags & 16);
  port.exception_path = data[5] & 2;  // the kernel takes what we do not answer
  port.vlan = port_vlan;
  const ReplyParams params = make_params(flags & 8);
  const proto::NtpTimestamp rx{0xEB001234u, 0x80000000u};
  NeighbourTable neighbours;
  const int64_t t0_ns = 1'000'000'000;

  // The policy and the limiter's state for this frame's source.
  const uint32_t src = frame_source(in.get(), len);
  Policy policy;
  const unsigned cls_bits = data[1] & 7;
  std::vector<proto::AccessRule> rules;
  if (cls_bits < proto::kAccessClassCount) rules.push_back({src, 32, static_cast<proto::AccessClass>(cls_bits)});
  policy.access = proto::AccessTable(rules, proto::AccessClass::kLimited);
  policy.kod = flags & 32;
  policy.answer_unknown_peers = flags & 64;
  // Shared pointers that own nothing: the tables are static.
  policy.keys = std::shared_ptr<const crypto::KeyTable>(&fuzz_keys(false), [](const crypto::KeyTable*) {});
  policy.trusted_keys = std::shared_ptr<const crypto::KeyTable>(&fuzz_keys(true), [](const crypto::KeyTable*) {});
  policy.authenticate = data[2] & 8;
  // NTS (issue 11): cookie keys held (byte 5 bit 0); the worker's nonce
  // source and seal slot always there.
  if (data[5] & 1)
    policy.nts_ring = std::shared_ptr<const crypto::CookieKeyRing>(&fuzz_cookie_ring(), [](const crypto::CookieKeyRing*) {});
  static uint8_t nts_seed[32] = {11};
  static crypto::NonceSource nts_rng(nts_seed);
  static NtsSeal nts_seal;
  // The control plane's endpoints: this frame's source and ports as a
  // client association's server (bit 0) and as a symmetric peer (bit 1).
  uint16_t sport = 0, dport = 0;
  frame_ports(in.get(), len, sport, dport);
  proto::AssocEndpoints published{};
  const uint32_t peer_key_sel = (data[1] >> 3) & 7;
  const uint32_t peer_key_id = peer_key_sel <= 5 ? peer_key_sel : 70 + peer_key_sel;
  for (uint8_t kind : {proto::kEndpointClient, proto::kEndpointSymmetric}) {
    if (!(data[2] & kind)) continue;
    proto::AssocEndpoint& e = published.entries[published.count++];
    e.address[10] = e.address[11] = 0xFF;
    proto::store_be32(e.address + 12, src);
    e.remote_port = (data[2] & 4) ? uint16_t{123} : sport;  // sometimes another port than the frame's
    e.local_port = dport;
    e.kind = kind;
    if (kind == proto::kEndpointSymmetric) e.key_id = peer_key_id;
  }
  static AssocTable assoc;
  assoc.assign(published);
  const bool client_match = (data[2] & 1) && !(data[2] & 4 && sport != 123);
  const bool peer_match = (data[2] & 2) && !(data[2] & 4 && sport != 123);
  const proto::AccessClass cls = policy.access.classify_v4(src);
  static RateLimiter limiter(1024, RateLimitParams{}, 0xF00D);  // once: the constructor allocates
  RateLimitParams lp;
  lp.interval_log2 = 3;
  lp.burst = 1 + data[3] % 8;
  lp.leak_log2 = 1 + data[4] % 4;
  limiter.set_params(lp);
  static int64_t limiter_now_ns = 0;  // the limiter's clock only moves forward across inputs
  limiter_now_ns += int64_t{60} * 1'000'000'000;  // a fresh minute: earlier inputs' state has faded
  for (unsigned i = 0; i < data[3]; i++) limiter.check_v4(src, limiter_now_ns);
  ReplyCap cap(data[4] * 10u);
  PolicyEnv env;
  env.policy = &policy;
  env.assoc = &assoc;
  env.now_ns = limiter_now_ns;
  env.nts_rng = &nts_rng;
  env.nts_seal = &nts_seal;
  // Interleaved mode (issue 12), byte 5 bit 2: the client table has slots;
  // bit 3 puts the request's own origin into its source's slot as our last
  // answer's receive timestamp (an interleaved request), bit 4 that
  // answer's transmit time (it has left).
  static RateLimiter xleave_limiter(1024, RateLimitParams{}, 0xBEEF, true);
  const Layout lay = layout_of(in.get(), len);
  const size_t in_ntp_at = lay.l2 + (lay.ihl ? lay.ihl : kIpv4MinHeaderLen) + kUdpHeaderLen;
  const uint8_t* in_ntp = in.get() + std::min(in_ntp_at, len);
  const bool ntp_sized = lay.ihl != 0 && len >= in_ntp_at + proto::kHeaderLen;
  XleaveSlot slot_before{};
  XleaveSlot* slot = nullptr;
  if (flags & 128) {
    env.limiter = &limiter;
    if (data[4]) env.cap = &cap;
    if (data[5] & 4) {
      xleave_limiter.set_params(lp);
      env.limiter = &xleave_limiter;
      xleave_limiter.enter_v4(src, limiter_now_ns);
      slot = xleave_limiter.last_xleave();
      slot->rx_raw = (data[5] & 8) && ntp_sized ? proto::load_ts(in_ntp + proto::offs::kOrigin).raw() : 0x5A5A;
      slot->tx_raw = (data[5] & 16) ? tx_raw ^ 0x0F0F : 0;
      slot_before = *slot;
      for (unsigned i = 0; i < data[3]; i++) xleave_limiter.check_v4(src, limiter_now_ns);
    }
  }
  const FrameVerdict v = handle_frame(buf.get(), len, port, params, rx, neighbours, t0_ns, env);
  if (v.xleave != nullptr && (slot == nullptr || v.xleave != slot)) fail("an interleaved slot not the source's", len);
  if (v.xleave != nullptr && (v.xleave->rx_raw != rx.raw() || v.xleave->tx_raw != 0))
    fail("an answer's slot does not hold its receive timestamp and a pending transmit", len);
  if (v.xleave == nullptr && slot != nullptr && (slot->rx_raw != slot_before.rx_raw || slot->tx_raw != slot_before.tx_raw))
    fail("a slot changed by what is no answer of time", len);
  if (v.interleaved()) {
    if (v.xleave == nullptr || v.action != FrameAction::kTransmit ||
        (v.kind != ReplyKind::kNtp && v.kind != ReplyKind::kNtsReply))
      fail("interleaved but no answer of time with a slot", len);
    if (!ntp_sized || ((in_ntp[0] >> 3) & 7) != 4 || (in_ntp[0] & 7) != 3)
      fail("interleaved answer to other than an NTPv4 client request", len);
    if (slot_before.tx_raw == 0 || v.tx_fixed_raw != slot_before.tx_raw ||
        proto::load_ts(in_ntp + proto::offs::kOrigin).raw() != slot_before.rx_raw)
      fail("interleaved without the request naming our last answer, or with another transmit time", len);
    if (std::memcmp(buf.get() + v.ntp_offset + proto::offs::kOrigin, in_ntp + proto::offs::kReceive, 8) != 0)
      fail("an interleaved answer's origin is not the request's receive field", len);
  }
  if (v.action == FrameAction::kTransmit && v.len > len) fail("reply larger than its request", len);
  if (v.action != FrameAction::kDrop && lay.vlan != port.vlan) fail("a frame of another VLAN taken", len);
  if (v.action == FrameAction::kTransmit && lay.type == kEtherTypeIpv4 && bad_source(port, src))
    fail("a reply to a bad source", len);
  if (v.action == FrameAction::kTransmit && (v.kind == ReplyKind::kKodRate || v.kind == ReplyKind::kKodDeny) &&
      !policy.kod)
    fail("a KoD while kod is off", len);
  if (v.action == FrameAction::kTransmit && !proto::may_get_time(cls) &&
      (v.kind == ReplyKind::kNtp || v.kind == ReplyKind::kNtpPassive || v.kind == ReplyKind::kKodRate ||
       v.kind == ReplyKind::kNtsReply || v.kind == ReplyKind::kNtsNak))
    fail("an answer to a source without time rights", len);
  if (v.action == FrameAction::kTransmit && v.kind == ReplyKind::kKodDeny && proto::may_get_time(cls))
    fail("a DENY KoD to a source with time rights", len);
  if (v.action == FrameAction::kDrop && v.reason == proto::DropReason::kNotAuthenticated && !policy.authenticate &&
      !(peer_match && peer_key_id != 0))
    fail("not_authenticated without auth.authenticate or a keyed peer", len);
  if (v.action == FrameAction::kToControl) {
    const uint8_t mode = in_ntp[0] & 7;
    if ((mode == 1 || mode == 2) && peer_match && peer_key_id != 0) {
      const auto q = proto::parse({in_ntp, v.ntp_len});
      const size_t at = v.ntp_len - q.packet.mac_len;
      const crypto::MacKey* k = fuzz_keys(false).find(peer_key_id);
      if (k == nullptr || !q.ok() || q.packet.mac_len <= 4 || q.packet.key_id != peer_key_id ||
          !crypto::mac_verify(*k, in_ntp, at, in_ntp + at + 4, q.packet.mac_len - 4u))
        fail("a keyed peer's mode 1/2 packet forwarded without a valid MAC of its key", len);
    }
    if (v.assoc_demoted && !((mode == 1 || mode == 2) && peer_match && !v.assoc_lane))
      fail("demoted but not a configured peer's packet on the shared lane", len);
    if ((mode == 1 || mode == 2) && !peer_match && policy.authenticate) {
      const auto q = proto::parse({in_ntp, v.ntp_len});
      const size_t at = v.ntp_len - q.packet.mac_len;
      if (!q.ok() || q.packet.mac_len <= 4 ||
          crypto::check_mac(fuzz_keys(true), in_ntp, at, in_ntp + at, q.packet.mac_len)
                  .check != crypto::MacCheck::kOk)
        fail("with authenticate, a peer-class mode 1/2 packet forwarded without a trusted valid MAC", len);
    }
    if (mode == 4 && !client_match) fail("mode 4 forwarded from no client association's endpoint", len);
    if ((mode == 1 || mode == 2) && !peer_match && !proto::may_peer(cls)) fail("mode 1/2 forwarded from no peer", len);
    // A configured peer over its budget goes to the shared lane; nobody
    // else ever reaches the associations' lane, and a client's server only
    // reaches that one.
    if (v.assoc_lane && !((mode == 4 && client_match) || ((mode == 1 || mode == 2) && peer_match)))
      fail("association lane for the wrong sender", len);
    if (mode == 4 && client_match && !v.assoc_lane) fail("a server's answer off the association lane", len);
  }
  check_conflict(in.get(), buf.get(), len, v, port);
  if (v.arp_conflict) {
    // The same claim again and again: at most one defence per 10 s.
    int64_t now_ns = t0_ns, last_defence_ns = t0_ns;
    bool defended = v.action == FrameAction::kTransmit;
    auto again = std::make_unique<uint8_t[]>(len + 4);
    for (int i = 0; i < 8; i++) {
      now_ns += int64_t{data[1 + i]} * 100'000'000;
      std::memcpy(again.get(), in.get(), len);
      const FrameVerdict w = handle_frame(again.get(), len, port, params, rx, neighbours, now_ns, env);
      if (!w.arp_conflict) fail("the same frame is a conflict once only", len);
      check_conflict(in.get(), again.get(), len, w, port);
      if (w.action == FrameAction::kTransmit) {
        if (defended && now_ns - last_defence_ns < ArpDefence::kDefendIntervalNs) fail("two defences within 10 s", len);
        defended = true;
        last_defence_ns = now_ns;
      } else if (!defended || now_ns - last_defence_ns >= ArpDefence::kDefendIntervalNs) {
        fail("a conflict 10 s after the last defence not defended", len);
      }
    }
    return 0;
  }

  switch (v.action) {
    case FrameAction::kDrop:
    case FrameAction::kConsumed:
      return 0;
    case FrameAction::kToKernel: {
      // Only with an exception path, unchanged, and only what is addressed
      // to us: an IPv4 packet to our address or an ARP reply to it.
      if (!port.exception_path) fail("kToKernel without an exception path", len);
      if (std::memcmp(buf.get(), in.get(), len) != 0) fail("kToKernel frame modified", len);
      if (len < lay.l2 + 20) fail("kToKernel runt", len);
      const uint16_t type = lay.type;
      const uint8_t* l3 = in.get() + lay.l2;
      if (type == kEtherTypeIpv4) {
        if (proto::load_be32(l3 + 16) != port.ipv4) fail("kToKernel for another address", len);
        const proto::DropReason r = v.reason;
        if (r != proto::DropReason::kIpFragment && r != proto::DropReason::kIpOptions && r != proto::DropReason::kUnsupportedIpProto &&
            r != proto::DropReason::kUdpPortClosed && r != proto::DropReason::kIcmpNotEcho)
          fail("kToKernel for a reason that is ours to drop", len);
      } else if (type == kEtherTypeArp) {
        if (len < lay.l2 + kArpLen || proto::load_be16(l3 + 6) != 2 || proto::load_be32(l3 + 24) != port.ipv4)
          fail("kToKernel ARP that is not a reply to us", len);
      } else {
        fail("kToKernel of another ethertype", len);
      }
      return 0;
    }
    case FrameAction::kToControl: {
      // The request's NTP payload (moved up over IPv4 options, if any).
      if (size_t{v.ntp_offset} + v.ntp_len > len || in_ntp_at + v.ntp_len > len)
        fail("kToControl payload outside the frame", len);
      if (std::memcmp(buf.get() + v.ntp_offset, in_ntp, v.ntp_len) != 0) fail("kToControl payload is not the request's", len);
      const auto r = proto::parse({in_ntp, v.ntp_len});
      if (!r.ok()) fail("kToControl payload does not parse", len);
      return 0;
    }
    case FrameAction::kTransmit: break;
  }

  const uint8_t* f = buf.get();
  if (v.len > len + 4) fail("reply longer than in + 4", len);
  if (v.len < kEthHeaderLen) fail("reply shorter than an Ethernet header", len);
  if (std::memcmp(f, in.get() + 6, 6) != 0) fail("reply not to the sender's MAC", len);
  if (std::memcmp(f + 6, port.mac, 6) != 0) fail("reply not from our MAC", len);

  switch (v.kind) {
    case ReplyKind::kNone: fail("kTransmit without a kind", len);
    case ReplyKind::kArpDefence: fail("defence without a conflict", len);
    case ReplyKind::kArp: {
      if (v.len != lay.l2 + kArpLen) fail("ARP reply length", len);
      if (std::memcmp(f + 12, in.get() + 12, lay.l2 - 12) != 0) fail("ARP reply without the request's tag", len);
      const uint8_t* a = f + lay.l2;
      if (lay.type != kEtherTypeArp || proto::load_be16(a + 6) != 2) fail("ARP reply is not op 2", len);
      if (std::memcmp(a + 8, port.mac, 6) != 0 || proto::load_be32(a + 14) != port.ipv4) fail("ARP reply sender not us", len);
      const uint8_t* q = in.get() + lay.l2;
      if (std::memcmp(a + 18, q + 8, 6) != 0 || proto::load_be32(a + 24) != proto::load_be32(q + 14)) fail("ARP reply target not the requester", len);
      return 0;
    }
    case ReplyKind::kIcmpEcho: {
      check_ipv4_reply(in.get(), f, v, port, len);
      if (lay.ihl != kIpv4MinHeaderLen) fail("an echo reply to a request with IPv4 options", len);
      const uint8_t* icmp = f + lay.l2 + kIpv4MinHeaderLen;
      const size_t icmp_len = v.len - lay.l2 - kIpv4MinHeaderLen;
      if (icmp_len < kIcmpHeaderLen || icmp[0] != 0 || icmp[1] != 0) fail("not an ICMP echo reply", len);
      if (csum_fold(csum_add(0, icmp, icmp_len)) != 0xFFFF) fail("ICMP checksum invalid", len);
      return 0;
    }
    case ReplyKind::kKodRate:
    case ReplyKind::kKodDeny: {
      // Complete as built: checksums right without a stamp.
      check_ipv4_reply(in.get(), f, v, port, len);
      const uint8_t* ip = f + lay.l2;
      const uint8_t* udp = ip + kIpv4MinHeaderLen;
      const uint8_t* k = udp + kUdpHeaderLen;
      if (v.len != lay.l2 + kIpv4MinHeaderLen + kUdpHeaderLen + proto::kHeaderLen) fail("KoD is not 48 bytes", len);
      if (csum_fold(csum_add(pseudo_header_sum(proto::load_be32(ip + 12), proto::load_be32(ip + 16), kIpProtoUdp, 56), udp,
                             56)) != 0xFFFF)
        fail("KoD UDP checksum invalid", len);
      if (k[0] != 0xE4 || k[1] != 0) fail("KoD is not LI 3, NTPv4, mode 4, stratum 0", len);
      if ((in_ntp[0] & 7) != 3 || ((in_ntp[0] >> 3) & 7) != 4) fail("KoD to something else than an NTPv4 request", len);
      if (proto::load_be32(k + 12) != (v.kind == ReplyKind::kKodRate ? proto::kKissRate : proto::kKissDeny))
        fail("KoD kiss code", len);
      for (int at : {24, 32, 40})
        if (std::memcmp(k + at, in_ntp + 40, 8) != 0) fail("KoD timestamps are not the request's transmit", len);
      return 0;
    }
    case ReplyKind::kNtsNak: {
      // Complete as built: the header as a KoD with NTSN, the UID field.
      if (!policy.nts_ring) fail("an NTS NAK without cookie keys", len);
      check_ipv4_reply(in.get(), f, v, port, len);
      const uint8_t* ip = f + lay.l2;
      const uint8_t* udp = ip + kIpv4MinHeaderLen;
      const uint8_t* k = udp + kUdpHeaderLen;
      const uint16_t udp_len = proto::load_be16(udp + 4);
      if (csum_fold(csum_add(pseudo_header_sum(proto::load_be32(ip + 12), proto::load_be32(ip + 16), kIpProtoUdp,
                                               udp_len), udp, udp_len)) != 0xFFFF)
        fail("NTS NAK UDP checksum invalid", len);
      if (k[1] != 0 || proto::load_be32(k + 12) != kKissNtsNak) fail("NTS NAK is not stratum 0 NTSN", len);
      if (udp_len < kUdpHeaderLen + 48 + 36 || proto::load_be16(k + 48) != proto::kEfUniqueIdentifier ||
          kUdpHeaderLen + 48 + proto::load_be16(k + 50) != udp_len)
        fail("NTS NAK is not the header and the UID field", len);
      for (int at : {24, 32, 40})
        if (std::memcmp(k + at, in_ntp + 40, 8) != 0) fail("NTS NAK timestamps are not the request's transmit", len);
      return 0;
    }
    case ReplyKind::kNtsReply:
      if (!policy.nts_ring) fail("an NTS reply without cookie keys", len);
      break;
    case ReplyKind::kNtpPassive:
      if (!policy.answer_unknown_peers || (in_ntp[0] & 7) != 1 || peer_match ||
          proto::may_peer(cls))
        fail("stateless mode-2 answer where none is due", len);
      break;
    case ReplyKind::kNtp: break;
  }

  check_ipv4_reply(in.get(), f, v, port, len);
  const uint8_t* ip = f + lay.l2;
  if (ip[9] != kIpProtoUdp) fail("NTP reply is not UDP", len);
  if (v.ntp_offset != lay.l2 + kIpv4MinHeaderLen + kUdpHeaderLen) fail("NTP reply payload offset", len);
  if (lay.ihl != kIpv4MinHeaderLen && ipv4_options_kind(in.get() + lay.l2, lay.ihl) != 0)
    fail("an answer to a source-routed request or one with malformed options", len);
  const proto::NtpTimestamp sent_tx = v.interleaved() ? proto::NtpTimestamp::from_raw(v.tx_fixed_raw) : tx;
  stamp_transmit(buf.get(), v.ntp_offset, sent_tx);
  if (v.mac_key) seal_transmit(buf.get(), v.ntp_offset, proto::kHeaderLen, *v.mac_key, v.mac_digest_bytes);
  if (v.kind == ReplyKind::kNtsReply) seal_nts_transmit(buf.get(), v.ntp_offset, nts_seal);
  const uint8_t* udp = ip + kIpv4MinHeaderLen;
  const uint16_t udp_len = proto::load_be16(udp + 4);
  if (size_t{udp_len} + kIpv4MinHeaderLen + lay.l2 != v.len) fail("UDP length does not match the frame", len);
  if (proto::load_be16(udp + 6) == 0) fail("UDP checksum left zero", len);
  if (csum_fold(csum_add(pseudo_header_sum(proto::load_be32(ip + 12), proto::load_be32(ip + 16), kIpProtoUdp, udp_len), udp, udp_len)) !=
      0xFFFF)
    fail("UDP checksum invalid after stamp_transmit", len);
  const uint8_t* qudp = in.get() + lay.l2 + lay.ihl;
  if (proto::load_be16(udp) != proto::kNtpPort || proto::load_be16(udp + 2) != proto::load_be16(qudp)) fail("NTP reply ports", len);
  const auto r = proto::parse({f + v.ntp_offset, size_t{udp_len} - kUdpHeaderLen});
  if (!r.ok()) fail("NTP reply does not parse", len);
  if (r.packet.header.mode != (v.kind == ReplyKind::kNtpPassive ? proto::Mode::kSymmetricPassive : proto::Mode::kServer))
    fail("NTP reply is not mode 4 (mode 2 for the stateless answer)", len);
  if (!(r.packet.header.transmit == sent_tx)) fail("NTP reply does not carry the transmit timestamp", len);
  if (r.packet.header.receive != rx) fail("NTP reply receive is not rx", len);
  if (v.unsynchronized != !params.synchronized) fail("unsynchronized flag", len);
  // The MAC: the request's key and length, verifying over the final bytes;
  // a request's MAC we could not check: a crypto-NAK.
  const auto req = proto::parse({in_ntp, size_t{proto::load_be16(qudp + 4)} - kUdpHeaderLen});
  if (v.mac_key) {
    if (!req.ok() || req.packet.key_id != v.mac_key->id || r.packet.mac_len != req.packet.mac_len)
      fail("the reply's MAC is not the request's key and length", len);
    const uint8_t* ntp = f + v.ntp_offset;
    if (crypto::check_mac(fuzz_keys(false), ntp, proto::kHeaderLen, ntp + proto::kHeaderLen, r.packet.mac_len).check !=
        crypto::MacCheck::kOk)
      fail("a MACed reply does not verify with its key", len);
  } else if (req.ok() && req.packet.mac_len > 4 && (r.packet.mac_len != 4 || r.packet.key_id != 0)) {
    fail("a request's MAC not answered with a MAC or a crypto-NAK", len);
  }
  return 0;
}
