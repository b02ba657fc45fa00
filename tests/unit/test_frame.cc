// Whole-frame handling (dataplane/frame.h): NTP requests answered in place
// with every Ethernet/IPv4/UDP byte checked, ARP and ICMP echo, one frame per
// drop reason, lengths and padding, a seeded mutation fuzzer with
// checksum/length checks of everything sent, and the neighbour table.
// Frames and all expected checksums come from tests/support/frame_builder.h,
// which has its own RFC 1071 implementation (never dataplane/inet.h).
#include "dataplane/frame.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "crypto/mac.h"
#include "dataplane/neighbour.h"
#include "dataplane/responder.h"
#include "proto/channel_abi.h"
#include "tests/support/frame_builder.h"
#include "tests/support/golden/requests.h"
#include "tests/support/nts_client.h"
#include "tests/support/reply_fixtures.h"
#include "tests/support/test_seed.h"

#if defined(__SANITIZE_ADDRESS__)
#define FRAME_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FRAME_TEST_ASAN 1
#endif
#endif
#ifndef FRAME_TEST_ASAN
#define FRAME_TEST_ASAN 0
#endif

namespace ntp::dp {
namespace {

using namespace ntp::testfb;
using proto::DropReason;
using proto::NtpTimestamp;
using test::fixed_reply_params;

uint64_t test_seed() { return ::ntp::test::seed(); }

// ------------------------------------------------------------------ fixtures

constexpr Mac kOurMac = {0x02, 0x00, 0x5E, 0x10, 0x00, 0x01};
constexpr Mac kClientMac = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
constexpr Mac kOtherMac = {0x02, 0x66, 0x77, 0x88, 0x99, 0xAA};
constexpr Mac kMulticastMac = {0x01, 0x00, 0x5E, 0x00, 0x00, 0xFB};
constexpr uint32_t kOurIp = ip4(10, 99, 0, 1);
constexpr uint32_t kClientIp = ip4(10, 99, 0, 2);
constexpr uint16_t kClientPort = 48325;  // 0xBCC5, chronyd's in the capture
constexpr int64_t kNow = 1795670017942419000LL;
constexpr NtpTimestamp kRx = {0xEEB23E81, 0x0C49BA5E};
constexpr NtpTimestamp kTx = {0xEEB23E81, 0x0D1E2F40};

PortIdentity our_port(bool serving = true) {
  PortIdentity p;
  std::memcpy(p.mac, kOurMac.data(), 6);
  p.ipv4 = kOurIp;
  p.prefix_len = 24;
  p.ntp_server = serving;
  return p;
}

Bytes chrony_payload() { return Bytes(golden::kChronyRequest0, golden::kChronyRequest0 + 48); }

IpSpec client_ip(uint8_t proto = 17) {
  IpSpec s;
  s.src = kClientIp;
  s.dst = kOurIp;
  s.proto = proto;
  return s;
}

Bytes ntp_frame(const Bytes& payload = chrony_payload(), UdpSpec u = {.src_port = kClientPort}, IpSpec ip = client_ip(),
                Mac dst = kOurMac, size_t pad_to = 0) {
  return ethernet(dst, kClientMac, 0x0800, ipv4(udp(ip.src, ip.dst, payload, u), ip), pad_to);
}

Bytes icmp_frame(const Bytes& data, IcmpSpec is = {}, IpSpec ip = client_ip(1), size_t pad_to = 0) {
  return ethernet(kOurMac, kClientMac, 0x0800, ipv4(icmp(data, is), ip), pad_to);
}

ArpSpec arp_request_for(uint32_t target, Mac sha = kClientMac, uint32_t spa = kClientIp) {
  ArpSpec a;
  a.op = 1;
  a.sha = sha;
  a.spa = spa;
  a.tpa = target;
  return a;
}
Bytes arp_frame(const ArpSpec& a, Mac dst = kBroadcast, size_t pad_to = 0) {
  return ethernet(dst, a.sha, 0x0806, arp(a), pad_to);
}

struct Out {
  FrameVerdict v;
  Bytes buf;  // the frame buffer after handling: len + 4 bytes
  Bytes reply() const { return Bytes(buf.begin(), buf.begin() + v.len); }
};

Out handle(const Bytes& frame, const PortIdentity& port, NeighbourTable& nt, int64_t now = kNow,
           const PolicyEnv& env = {}, NtpTimestamp rx = kRx) {
  Out o;
  o.buf = frame;
  o.buf.resize(frame.size() + 4, 0xCC);  // the documented tailroom
  o.v = handle_frame(o.buf.data(), frame.size(), port, fixed_reply_params(), rx, nt, now, env);
  return o;
}
Out handle_env(const Bytes& frame, const PolicyEnv& env, const PortIdentity& port = our_port()) {
  NeighbourTable nt;
  return handle(frame, port, nt, kNow, env);
}

// ------------------------------------------------------------------ policies

constexpr uint32_t kServerIp = ip4(192, 0, 2, 44);     // a [[server]] beyond the router
constexpr uint32_t kPeerIp = ip4(10, 99, 0, 7);        // a [[peer]]
constexpr uint32_t kBothIp = ip4(10, 99, 0, 8);        // a [[server]] and a [[peer]]
constexpr uint32_t kPeerClassIp = ip4(10, 99, 0, 66);  // in access.peer 10.99.0.64/26
constexpr uint32_t kDeniedIp = ip4(10, 99, 0, 200);    // in access.deny 10.99.0.192/27
constexpr uint32_t kQueryIp = ip4(10, 99, 0, 40);      // in access.query 10.99.0.40/32
constexpr uint32_t kSyncIp = ip4(10, 99, 0, 50);       // in access.synchronization 10.99.0.48/29

Policy lab_policy(bool kod = false, bool answer_unknown_peers = false) {
  Policy p;
  p.access = proto::AccessTable({{ip4(10, 99, 0, 64), 26, proto::AccessClass::kPeer},
                                 {ip4(10, 99, 0, 192), 27, proto::AccessClass::kDeny},
                                 {ip4(10, 99, 0, 40), 32, proto::AccessClass::kQuery},
                                 {ip4(10, 99, 0, 48), 29, proto::AccessClass::kSynchronization}},
                                proto::AccessClass::kLimited);
  p.kod = kod;
  p.answer_unknown_peers = answer_unknown_peers;
  return p;
}

// auth.keys_file's keys for the auth cases: 1 AES128 and 2 SHA256, trusted;
// 3 MD5, held but not trusted.
std::shared_ptr<const crypto::KeyTable> lab_keys(bool trusted_only = false) {
  auto t = std::make_shared<crypto::KeyTable>();
  const uint8_t secret[16] = {0x2B, 0x7E, 0x15, 0x16, 0x28, 0xAE, 0xD2, 0xA6,
                              0xAB, 0xF7, 0x15, 0x88, 0x09, 0xCF, 0x4F, 0x3C};
  const crypto::MacType types[] = {crypto::MacType::kAes128Cmac, crypto::MacType::kSha256, crypto::MacType::kMd5};
  for (uint32_t id = 1; id <= (trusted_only ? 2u : 3u); id++) {
    crypto::MacKey k;
    EXPECT_TRUE(crypto::mac_key_init(k, id, types[id - 1], secret, sizeof secret));
    EXPECT_TRUE(t->insert(k));
  }
  return t;
}
Policy auth_policy(bool authenticate) {
  Policy p = lab_policy();
  p.keys = lab_keys();
  p.trusted_keys = lab_keys(true);
  p.authenticate = authenticate;
  return p;
}
// chrony's request 0 with li_vn_mode and a MAC of key `id` (digest_bytes),
// or a bad one (the digest's last byte flipped).
Bytes keyed_payload(uint8_t li_vn_mode, uint32_t id, size_t digest_bytes, bool bad = false) {
  Bytes p = chrony_payload();
  p[0] = li_vn_mode;
  p.resize(48 + 4 + crypto::kMaxDigestBytes);
  const auto keys = lab_keys();  // held: find() points into it
  const crypto::MacKey* k = keys->find(id);
  EXPECT_NE(k, nullptr);
  p.resize(48 + crypto::append_mac(*k, p.data(), 48, digest_bytes));
  if (bad) p.back() ^= 1;
  return p;
}

// The control plane's published endpoints (proto::AssocEndpoints) as the
// worker copies them: v4-mapped addresses.
constexpr uint16_t kAssocPort = 51234;  // the client associations' current random port
proto::AssocEndpoint endpoint(uint32_t ip, uint8_t kind, uint16_t local_port = 123, uint16_t remote_port = 123) {
  proto::AssocEndpoint e{};
  e.address[10] = e.address[11] = 0xFF;
  e.address[12] = static_cast<uint8_t>(ip >> 24);
  e.address[13] = static_cast<uint8_t>(ip >> 16);
  e.address[14] = static_cast<uint8_t>(ip >> 8);
  e.address[15] = static_cast<uint8_t>(ip);
  e.local_port = local_port;
  e.remote_port = remote_port;
  e.kind = kind;
  return e;
}
proto::AssocEndpoints endpoints(std::initializer_list<proto::AssocEndpoint> l) {
  proto::AssocEndpoints e{};
  for (const proto::AssocEndpoint& x : l) e.entries[e.count++] = x;
  return e;
}
// The lab's associations: [[server]] kServerIp and kBothIp (client
// associations sending from kAssocPort), [[peer]] kPeerIp and kBothIp.
proto::AssocEndpoints lab_endpoints() {
  return endpoints({endpoint(kServerIp, proto::kEndpointClient, kAssocPort),
                    endpoint(kPeerIp, proto::kEndpointSymmetric), endpoint(kBothIp, proto::kEndpointSymmetric),
                    endpoint(kBothIp, proto::kEndpointClient, kAssocPort)});
}
AssocTable table_of(const proto::AssocEndpoints& e) {
  AssocTable t;
  EXPECT_TRUE(t.assign(e));
  return t;
}
// A fresh lab table (full budgets) at each call.
AssocTable& lab_assoc() {
  static AssocTable t;
  t.assign(lab_endpoints());
  return t;
}

// A limiter that lets one request through per 2^3 s with a burst of 1.
RateLimitParams tight_limits() {
  RateLimitParams l;
  l.interval_log2 = 3;
  l.burst = 1;
  l.leak_log2 = 4;
  return l;
}

Bytes ntp_from(uint32_t src, uint8_t li_vn_mode, uint16_t src_port = kClientPort, uint16_t dst_port = 123) {
  Bytes payload = chrony_payload();
  payload[0] = li_vn_mode;
  IpSpec ip = client_ip();
  ip.src = src;
  return ntp_frame(payload, {.src_port = src_port, .dst_port = dst_port}, ip);
}
Out handle(const Bytes& frame, const PortIdentity& port = our_port()) {
  NeighbourTable nt;
  return handle(frame, port, nt);
}

std::string name(DropReason r) { return proto::drop_reason_name(r); }

#define EXPECT_DROP(out, r)                                                                                    \
  do {                                                                                                         \
    EXPECT_EQ((out).v.action, FrameAction::kDrop);                                                             \
    EXPECT_EQ(name((out).v.reason), name(r));                                                                  \
  } while (0)

// The 48-byte NTP reply to chrony's request 0 with fixed_reply_params() and kRx,
// transmit as given (RFC 5905 figure 8; same bytes as test_responder).
Bytes expected_ntp_reply(const uint8_t* origin, NtpTimestamp tx) {
  Bytes r = {
      0x24, 0x02, 0x00, 0xE7,                          // LI 0 VN 4 mode 4, stratum 2, poll 0, precision -25
      0x00, 0x00, 0x0A, 0x3D,                          // root delay
      0x00, 0x00, 0x12, 0x34,                          // root dispersion
      0x7F, 0x7F, 0x01, 0x00,                          // refid 127.127.1.0
      0xEE, 0xB2, 0x3E, 0x00, 0x12, 0x34, 0x56, 0x78,  // reference
  };
  r.insert(r.end(), origin, origin + 8);
  for (uint8_t b : {0xEE, 0xB2, 0x3E, 0x81, 0x0C, 0x49, 0xBA, 0x5E}) r.push_back(b);  // receive
  push32(r, tx.seconds);
  push32(r, tx.fraction);
  return r;
}

// Our RFC 5227 announcement, built field by field: broadcast, ARP request,
// sender = target = our address, target hardware address zero.
Bytes announcement() {
  ArpSpec a;
  a.op = 1;
  a.sha = kOurMac;
  a.spa = kOurIp;
  a.tha = {};
  a.tpa = kOurIp;
  return ethernet(kBroadcast, kOurMac, 0x0806, arp(a));
}

// ======================================================== NTP request -> reply

TEST(FrameNtp, RequestBecomesReplyEveryByte) {
  const Bytes req = ntp_frame();
  ASSERT_EQ(req.size(), 90u);
  Out o = handle(req);
  ASSERT_EQ(o.v.action, FrameAction::kTransmit);
  EXPECT_EQ(o.v.kind, ReplyKind::kNtp);
  ASSERT_EQ(o.v.len, 90);
  EXPECT_EQ(o.v.ntp_offset, 42);
  EXPECT_FALSE(o.v.unsynchronized);
  EXPECT_FALSE(o.v.learned_neighbour);

  // Before stamping: the checksum is valid with the transmit timestamp zero.
  EXPECT_TRUE(ipv4_header_ok(o.buf.data() + 14));
  EXPECT_TRUE(udp_checksum_ok(o.buf.data() + 14));
  EXPECT_EQ(Bytes(o.buf.begin() + 82, o.buf.begin() + 90), Bytes(8, 0));

  stamp_transmit(o.buf.data(), o.v.ntp_offset, kTx);

  Bytes expected = {
      // Ethernet: to the client, from us, IPv4
      0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x02, 0x00, 0x5E, 0x10, 0x00, 0x01, 0x08, 0x00,
      // IPv4: 0x45, TOS 0, total 76, ID 0, DF, TTL 64, UDP, checksum, 10.99.0.1 -> 10.99.0.2
      0x45, 0x00, 0x00, 0x4C, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x25, 0xD9, 0x0A, 0x63, 0x00, 0x01, 0x0A, 0x63,
      0x00, 0x02,
      // UDP: 123 -> 48325, length 56, checksum filled in below
      0x00, 0x7B, 0xBC, 0xC5, 0x00, 0x38, 0x00, 0x00};
  // 0x25D9 by hand: ~(4500+004C+0000+4000+4011+0A63+0001+0A63+0002) = ~DA26.
  ASSERT_EQ(ones_sum(expected.data() + 14, 20), 0xFFFF);
  const Bytes ntp = expected_ntp_reply(golden::kChronyRequest0 + 40, kTx);
  expected.insert(expected.end(), ntp.begin(), ntp.end());
  ASSERT_EQ(expected.size(), 90u);
  const uint16_t ck = udp_checksum_computed(expected.data() + 14);
  put16(expected, 40, ck == 0 ? 0xFFFF : ck);

  EXPECT_EQ(o.reply(), expected);
  EXPECT_TRUE(udp_checksum_ok(o.buf.data() + 14));
  // The tailroom was not touched.
  EXPECT_EQ(Bytes(o.buf.begin() + 90, o.buf.end()), Bytes(4, 0xCC));
}

TEST(FrameNtp, NtpdigAndAllChronyRequests) {
  const uint8_t* reqs[] = {golden::kNtpdigRequest, golden::kChronyRequest0, golden::kChronyRequest1,
                           golden::kChronyRequest2, golden::kChronyRequest3};
  for (const uint8_t* r : reqs) {
    const Bytes payload(r, r + 48);
    Out o = handle(ntp_frame(payload, {.src_port = 44676}));
    ASSERT_EQ(o.v.action, FrameAction::kTransmit);
    ASSERT_EQ(o.v.len, 90);
    stamp_transmit(o.buf.data(), o.v.ntp_offset, kTx);
    EXPECT_EQ(Bytes(o.buf.begin() + 42, o.buf.begin() + 90), expected_ntp_reply(r + 40, kTx));
    EXPECT_EQ(get16(o.buf.data() + 34), 123);
    EXPECT_EQ(get16(o.buf.data() + 36), 44676);
    EXPECT_TRUE(ipv4_header_ok(o.buf.data() + 14));
    EXPECT_TRUE(udp_checksum_ok(o.buf.data() + 14));
  }
}

TEST(FrameNtp, StampedChecksumValidForManyTransmitTimes) {
  std::mt19937_64 rng(test_seed());
  SCOPED_TRACE(testing::Message() << "TEST_SEED=" << test_seed());
  for (int i = 0; i < 2000; i++) {
    Out o = handle(ntp_frame());
    ASSERT_EQ(o.v.action, FrameAction::kTransmit);
    NtpTimestamp tx = NtpTimestamp::from_raw(rng());
    if (i == 0) tx = {0, 0};
    if (i == 1) tx = {0xFFFFFFFF, 0xFFFFFFFF};
    stamp_transmit(o.buf.data(), o.v.ntp_offset, tx);
    ASSERT_TRUE(udp_checksum_ok(o.buf.data() + 14)) << "tx " << tx.seconds << "." << tx.fraction;
    ASSERT_EQ(get32(o.buf.data() + 82), tx.seconds);
    ASSERT_EQ(get32(o.buf.data() + 86), tx.fraction);
  }
}

TEST(FrameNtp, TransmitThatMakesChecksumZeroIsSentAsFFFF) {
  Out o = handle(ntp_frame());
  ASSERT_EQ(o.v.action, FrameAction::kTransmit);
  // Sum of the reply as it stands (transmit zero, checksum field zero).
  Bytes udp(o.buf.begin() + 34, o.buf.begin() + 90);
  udp[6] = udp[7] = 0;
  const uint16_t s0 = ones_sum(udp.data(), udp.size(), pseudo_sum(kOurIp, kClientIp, 17, 56));
  // Pick the transmit timestamp that brings the sum to 0xFFFF, whose
  // checksum is therefore 0 and must go out as 0xFFFF (RFC 768).
  NtpTimestamp tx{0xEEB23E81, 0x12340000};
  const uint16_t a = ones_add(ones_add(ones_add(s0, 0xEEB2), 0x3E81), 0x1234);
  tx.fraction |= static_cast<uint16_t>(0xFFFF - a);
  stamp_transmit(o.buf.data(), o.v.ntp_offset, tx);
  ASSERT_EQ(udp_checksum_computed(o.buf.data() + 14), 0) << "test setup: the checksum should compute to 0";
  EXPECT_EQ(get16(o.buf.data() + 40), 0xFFFF);
  EXPECT_TRUE(udp_checksum_ok(o.buf.data() + 14));
}

TEST(FrameNtp, ReplyWhoseUnstampedChecksumIsZero) {
  // Find the client port for which the reply, transmit still zero, sums to
  // a checksum of 0: handle_frame must write 0xFFFF, and stamping must then
  // still give valid checksums.
  int found = -1;
  for (uint32_t port = 1; port <= 0xFFFF && found < 0; port++) {
    Out o = handle(ntp_frame(chrony_payload(), {.src_port = static_cast<uint16_t>(port)}));
    if (o.v.action != FrameAction::kTransmit) continue;
    if (udp_checksum_computed(o.buf.data() + 14) == 0) found = static_cast<int>(port);
  }
  ASSERT_GT(found, 0) << "no client port gives a zero checksum";
  Out o = handle(ntp_frame(chrony_payload(), {.src_port = static_cast<uint16_t>(found)}));
  EXPECT_EQ(get16(o.buf.data() + 40), 0xFFFF);
  EXPECT_TRUE(udp_checksum_ok(o.buf.data() + 14));
  Bytes copy = o.buf;
  stamp_transmit(copy.data(), o.v.ntp_offset, kTx);
  EXPECT_TRUE(udp_checksum_ok(copy.data() + 14));
  copy = o.buf;
  stamp_transmit(copy.data(), o.v.ntp_offset, {0, 0});
  EXPECT_EQ(get16(copy.data() + 40), 0xFFFF);
  EXPECT_TRUE(udp_checksum_ok(copy.data() + 14));
}

TEST(FrameNtp, BroadcastDestinationMacAnswered) {
  Out o = handle(ntp_frame(chrony_payload(), {.src_port = kClientPort}, client_ip(), kBroadcast));
  ASSERT_EQ(o.v.action, FrameAction::kTransmit);
  EXPECT_EQ(Bytes(o.buf.begin(), o.buf.begin() + 12),
            Bytes({0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x02, 0x00, 0x5E, 0x10, 0x00, 0x01}));
}

TEST(FrameNtp, UnsynchronizedFlagFollowsParams) {
  NeighbourTable nt;
  Bytes req = ntp_frame();
  Bytes buf = req;
  buf.resize(req.size() + 4);
  ReplyParams p = fixed_reply_params();
  p.leap = proto::Leap::kUnsynchronized;
  p.stratum = 0;
  p.synchronized = false;
  const FrameVerdict v = handle_frame(buf.data(), req.size(), our_port(), p, kRx, nt, kNow);
  ASSERT_EQ(v.action, FrameAction::kTransmit);
  EXPECT_TRUE(v.unsynchronized);
  EXPECT_EQ(buf[42], 0xE4);
}

TEST(FrameNtp, MacRequestGetsCryptoNakFrame) {
  Bytes payload = chrony_payload();
  for (int i = 0; i < 20; i++) payload.push_back(i < 3 ? 0 : static_cast<uint8_t>(i));  // key 0x00000003 + digest
  Out o = handle(ntp_frame(payload));
  ASSERT_EQ(o.v.action, FrameAction::kTransmit);
  ASSERT_EQ(o.v.len, 94);
  EXPECT_EQ(get16(o.buf.data() + 16), 80);  // IP total
  EXPECT_EQ(get16(o.buf.data() + 38), 60);  // UDP length
  EXPECT_EQ(Bytes(o.buf.begin() + 90, o.buf.begin() + 94), Bytes(4, 0));
  stamp_transmit(o.buf.data(), o.v.ntp_offset, kTx);
  EXPECT_TRUE(ipv4_header_ok(o.buf.data() + 14));
  EXPECT_TRUE(udp_checksum_ok(o.buf.data() + 14));
}

TEST(FrameNtp, ExtensionFieldsDroppedFromReplyFrame) {
  Bytes payload = chrony_payload();
  Bytes ext = {0x01, 0x04, 0x00, 0x20};
  ext.resize(32, 0x77);
  payload.insert(payload.end(), ext.begin(), ext.end());
  Out o = handle(ntp_frame(payload));
  ASSERT_EQ(o.v.action, FrameAction::kTransmit);
  EXPECT_EQ(o.v.len, 90);
  EXPECT_EQ(get16(o.buf.data() + 16), 76);
  EXPECT_EQ(get16(o.buf.data() + 38), 56);
  stamp_transmit(o.buf.data(), o.v.ntp_offset, kTx);
  EXPECT_TRUE(udp_checksum_ok(o.buf.data() + 14));
}

TEST(FrameNtp, PeerAndServerPacketsGoToControlUntouched) {
  Policy pol = lab_policy();
  // A server and peer beyond the router; its client association sends from 123.
  AssocTable assoc = table_of(endpoints({endpoint(ip4(192, 0, 2, 44), proto::kEndpointClient),
                                         endpoint(ip4(192, 0, 2, 44), proto::kEndpointSymmetric)}));
  PolicyEnv env;
  env.policy = &pol;
  env.assoc = &assoc;
  for (uint8_t mode : {1, 2, 4}) {
    SCOPED_TRACE(int{mode});
    Bytes payload = chrony_payload();
    payload[0] = static_cast<uint8_t>(0x20 | mode);
    IpSpec ip = client_ip();
    ip.src = ip4(192, 0, 2, 44);  // a server beyond the router
    const Bytes req = ntp_frame(payload, {.src_port = 123}, ip);
    // Also on a port that does not serve clients.
    for (bool serving : {true, false}) {
      Out o = handle_env(req, env, our_port(serving));
      ASSERT_EQ(o.v.action, FrameAction::kToControl);
      EXPECT_TRUE(o.v.assoc_lane);
      EXPECT_EQ(o.v.ntp_offset, 42);
      EXPECT_EQ(o.v.ntp_len, 48);
      EXPECT_EQ(o.v.src_ip, ip4(192, 0, 2, 44));
      EXPECT_EQ(o.v.dst_ip, kOurIp);
      EXPECT_EQ(o.v.src_port, 123);
      EXPECT_EQ(o.v.dst_port, 123);
      EXPECT_EQ(Bytes(o.buf.begin(), o.buf.begin() + 90), req);
    }
  }
  // With a MAC: the whole payload goes.
  Bytes payload = chrony_payload();
  payload[0] = 0x21;
  payload.resize(68, 0x42);
  assoc = table_of(endpoints({endpoint(kClientIp, proto::kEndpointSymmetric)}));
  Out o = handle_env(ntp_frame(payload, {.src_port = 123}), env);
  ASSERT_EQ(o.v.action, FrameAction::kToControl);
  EXPECT_EQ(o.v.ntp_len, 68);
  EXPECT_EQ(o.v.src_port, 123);
}

TEST(FrameNtp, DontFragmentRequestAnswered) {
  IpSpec ip = client_ip();
  ip.flags_frag = 0x4000;
  EXPECT_EQ(handle(ntp_frame(chrony_payload(), {}, ip)).v.action, FrameAction::kTransmit);
}

// ------------------------------------------------- priority tags, IP options

// The reply to a frame as `tagged` makes it, tag left out: what the same
// frame untagged gets, byte for byte.
Bytes untag(const Bytes& f) {
  Bytes out(f.begin(), f.begin() + 12);
  out.insert(out.end(), f.begin() + 16, f.end());
  return out;
}

struct L2Case {
  const char* what;
  Bytes frame;
  ReplyKind kind;
};
std::vector<L2Case> l2_cases() {
  return {{"NTP", ntp_frame(), ReplyKind::kNtp},
          {"ICMP echo", icmp_frame(Bytes(8, 0x61)), ReplyKind::kIcmpEcho},
          {"ARP", arp_frame(arp_request_for(kOurIp)), ReplyKind::kArp}};
}

// c.frame tagged with tci, to `port`, is answered behind the same tag with
// exactly what the untagged frame gets from an untagged port.
void expect_answered_on_its_tag(const L2Case& c, uint16_t tci, const PortIdentity& port) {
  NeighbourTable nt_plain, nt_tagged;
  Out plain = handle(c.frame, our_port(), nt_plain);
  Out tag = handle(tagged(c.frame, tci), port, nt_tagged);
  ASSERT_EQ(tag.v.action, FrameAction::kTransmit) << c.what << " tci " << tci;
  EXPECT_EQ(tag.v.kind, c.kind) << c.what;
  ASSERT_EQ(tag.v.len, plain.v.len + 4) << c.what;
  if (c.kind == ReplyKind::kNtp) {
    EXPECT_EQ(tag.v.ntp_offset, plain.v.ntp_offset + 4);
    stamp_transmit(plain.buf.data(), plain.v.ntp_offset, kTx);
    stamp_transmit(tag.buf.data(), tag.v.ntp_offset, kTx);
  }
  const Bytes r = tag.reply();
  EXPECT_EQ(get16(r.data() + 12), 0x8100) << c.what;
  EXPECT_EQ(get16(r.data() + 14), tci) << c.what << ": back on the VLAN, at the priority, it came";
  EXPECT_EQ(untag(r), plain.reply()) << c.what;
}

TEST(FramePriorityTag, AnsweredAsUntaggedWithTheTagKept) {
  for (const L2Case& c : l2_cases())
    for (const uint16_t tci : {0x0000, 0xA000, 0xF000})  // priority 0; 5 (voice); 7 with DEI set
      expect_answered_on_its_tag(c, tci, our_port());
}

PortIdentity vlan_port(uint16_t vlan) {
  PortIdentity p = our_port();
  p.vlan = vlan;
  return p;
}

TEST(FrameVlan, AnInterfacesVlanIsAnsweredOnItOthersAreNotOurs) {
  for (const L2Case& c : l2_cases()) {
    for (const uint16_t tci : {0x000A, 0xA00A, 0x0FFE})  // VLAN 10, with priority 5; VLAN 4094
      expect_answered_on_its_tag(c, tci, vlan_port(tci & 0x0FFF));
    // Untagged, priority-tagged, another VLAN: not this interface's.
    NeighbourTable nt;
    EXPECT_DROP(handle(c.frame, vlan_port(10), nt), DropReason::kVlanNotOurs);
    EXPECT_DROP(handle(tagged(c.frame, 0xA000), vlan_port(10), nt), DropReason::kVlanNotOurs);
    EXPECT_DROP(handle(tagged(c.frame, 11), vlan_port(10), nt), DropReason::kVlanNotOurs);
    EXPECT_DROP(handle(tagged(c.frame, 10), our_port(), nt), DropReason::kVlanNotOurs);
  }
}

TEST(FrameVlan, AConflictIsDefendedOnItsVlan) {
  NeighbourTable nt_plain, nt_tagged;
  ArpSpec a = arp_request_for(kOurIp, kOtherMac, kOurIp);  // another MAC claims our address
  Out plain = handle(arp_frame(a), our_port(), nt_plain);
  Out tag = handle(tagged(arp_frame(a), 0x200A), vlan_port(10), nt_tagged);
  ASSERT_EQ(plain.v.kind, ReplyKind::kArpDefence);
  ASSERT_EQ(tag.v.kind, ReplyKind::kArpDefence);
  ASSERT_EQ(tag.v.len, plain.v.len + 4);
  EXPECT_EQ(get16(tag.reply().data() + 12), 0x8100);
  EXPECT_EQ(get16(tag.reply().data() + 14), 0x200A);
  EXPECT_EQ(untag(tag.reply()), plain.reply());
}

TEST(FramePriorityTag, PeerPacketsGoToTheControlPlaneFromBehindTheTag) {
  Bytes sym = chrony_payload();
  sym[0] = 0x21;  // NTPv4 symmetric active
  PolicyEnv env;
  Policy p = lab_policy();
  env.policy = &p;
  IpSpec ip = client_ip();
  ip.src = kPeerClassIp;
  const Bytes f = tagged(ntp_frame(sym, {.src_port = 123}, ip), 0x2000);
  const Out o = handle_env(f, env);
  ASSERT_EQ(o.v.action, FrameAction::kToControl);
  EXPECT_EQ(o.v.ntp_offset, 14 + 4 + 20 + 8);
  EXPECT_EQ(Bytes(o.buf.begin() + o.v.ntp_offset, o.buf.begin() + o.v.ntp_offset + o.v.ntp_len), sym);
}

TEST(FrameIpOptions, SkippedAndAnsweredAsWithout) {
  const Bytes plain_frame = ntp_frame();
  Out plain = handle(plain_frame);
  ASSERT_EQ(plain.v.action, FrameAction::kTransmit);
  stamp_transmit(plain.buf.data(), plain.v.ntp_offset, kTx);
  Bytes max_rr(40, 0);  // a record route of nine slots: the longest header
  max_rr[0] = 7, max_rr[1] = 39, max_rr[2] = 4;
  const Bytes options[] = {
      {0x94, 0x04, 0x00, 0x00},                          // router alert (RFC 2113)
      {0x01, 0x01, 0x01, 0x00},                          // no-operations, end of list
      {0x07, 0x07, 0x04, 0, 0, 0, 0, 0x00},              // record route, one slot
      {0x44, 0x0C, 0x05, 0x00, 0, 0, 0, 0, 0, 0, 0, 0},  // timestamp, two slots
      {0x86, 0x06, 0, 0, 0, 0, 0x01, 0x00},              // CIPSO-like security label
      {0x00, 0x83, 0x07, 0x04},                          // end of list first: what follows is padding
      max_rr,
  };
  for (const Bytes& opt : options) {
    IpSpec ip = client_ip();
    ip.options = opt;
    const Bytes f = ntp_frame(chrony_payload(), {.src_port = kClientPort}, ip);
    Out o = handle(f);
    ASSERT_EQ(o.v.action, FrameAction::kTransmit) << "options of " << opt.size() << " bytes, first " << int{opt[0]};
    EXPECT_EQ(o.v.ntp_offset, plain.v.ntp_offset);
    ASSERT_EQ(o.v.len, plain.v.len);
    EXPECT_LT(o.v.len, f.size());
    stamp_transmit(o.buf.data(), o.v.ntp_offset, kTx);
    EXPECT_EQ(o.reply(), plain.reply()) << "options of " << opt.size() << " bytes, first " << int{opt[0]};
    EXPECT_TRUE(ipv4_header_ok(o.buf.data() + 14));
    EXPECT_TRUE(udp_checksum_ok(o.buf.data() + 14));
  }
  // Over a priority tag as well.
  IpSpec ip = client_ip();
  ip.options = {0x94, 0x04, 0x00, 0x00};
  Out o = handle(tagged(ntp_frame(chrony_payload(), {.src_port = kClientPort}, ip), 0xA000));
  ASSERT_EQ(o.v.action, FrameAction::kTransmit);
  stamp_transmit(o.buf.data(), o.v.ntp_offset, kTx);
  EXPECT_EQ(untag(o.reply()), plain.reply());
}

TEST(FrameIpOptions, AServerAnswerMovesUpForTheControlPlaneUnchanged) {
  Bytes answer = chrony_payload();
  answer[0] = 0x24;  // NTPv4 server
  PolicyEnv env;
  Policy p = lab_policy();
  env.policy = &p;
  AssocTable assoc = table_of(endpoints({endpoint(kServerIp, proto::kEndpointClient, 40123)}));
  env.assoc = &assoc;
  IpSpec ip = client_ip();
  ip.src = kServerIp;
  ip.options = {0x94, 0x04, 0x00, 0x00};
  const Out o = handle_env(ntp_frame(answer, {.src_port = 123, .dst_port = 40123}, ip), env);
  ASSERT_EQ(o.v.action, FrameAction::kToControl);
  EXPECT_EQ(o.v.src_ip, kServerIp);
  EXPECT_EQ(Bytes(o.buf.begin() + o.v.ntp_offset, o.buf.begin() + o.v.ntp_offset + o.v.ntp_len), answer);
}

TEST(FrameNtp, PointToPointSlash31HasNoBroadcast) {
  PortIdentity port = our_port();
  port.ipv4 = ip4(10, 99, 0, 0);
  port.prefix_len = 31;
  IpSpec ip = client_ip();
  ip.src = ip4(10, 99, 0, 1);  // the other end: host bits all ones, not a broadcast on a /31
  ip.dst = ip4(10, 99, 0, 0);
  EXPECT_EQ(handle(ntp_frame(chrony_payload(), {}, ip), port).v.action, FrameAction::kTransmit);
}

// ================================================================ padding and lengths

TEST(FrameLengths, EthernetPaddingAfterIpPacketTolerated) {
  const Bytes plain = ntp_frame();
  Bytes padded = plain;
  for (int i = 0; i < 6; i++) padded.push_back(0xEE);
  Out a = handle(plain), b = handle(padded);
  ASSERT_EQ(b.v.action, FrameAction::kTransmit);
  EXPECT_EQ(b.v.len, 90);
  EXPECT_EQ(a.reply(), b.reply());
}

TEST(FrameLengths, MaximumFrameWithPaddingAnswered) {
  Out o = handle(ntp_frame(chrony_payload(), {}, client_ip(), kOurMac, 1518));
  ASSERT_EQ(o.v.action, FrameAction::kTransmit);
  EXPECT_EQ(o.v.len, 90);
  EXPECT_DROP(handle(ntp_frame(chrony_payload(), {}, client_ip(), kOurMac, 1519)), DropReason::kOversized);
}

TEST(FrameLengths, IpTotalLengthBeyondFrame) {
  IpSpec ip = client_ip();
  ip.total_length = 77;  // one more than there is
  EXPECT_DROP(handle(ntp_frame(chrony_payload(), {}, ip)), DropReason::kBadIpHeader);
}

TEST(FrameLengths, UdpLengthBeyondIpPayload) {
  // UDP length 57 in an IP packet carrying 56 bytes of UDP, even with
  // Ethernet padding that would make the bytes exist.
  const Bytes f = ntp_frame(chrony_payload(), {.src_port = kClientPort, .length = 57}, client_ip(), kOurMac, 100);
  EXPECT_DROP(handle(f), DropReason::kBadUdpLength);
}

TEST(FrameLengths, UdpShorterThanIpPayloadUsesUdpLength) {
  // 4 bytes of junk inside the IP packet after the UDP datagram.
  Bytes payload = chrony_payload();
  const Bytes junk = {1, 2, 3, 4};
  Bytes u = udp(kClientIp, kOurIp, payload, {.src_port = kClientPort});
  u.insert(u.end(), junk.begin(), junk.end());
  const Bytes f = ethernet(kOurMac, kClientMac, 0x0800, ipv4(u, client_ip()));
  Out o = handle(f);
  ASSERT_EQ(o.v.action, FrameAction::kTransmit);
  EXPECT_EQ(o.v.len, 90);
  EXPECT_EQ(get16(o.buf.data() + 16), 76);
  stamp_transmit(o.buf.data(), o.v.ntp_offset, kTx);
  EXPECT_TRUE(ipv4_header_ok(o.buf.data() + 14));
  EXPECT_TRUE(udp_checksum_ok(o.buf.data() + 14));
}

TEST(FrameLengths, UdpChecksumZeroAccepted) {
  Out o = handle(ntp_frame(chrony_payload(), {.src_port = kClientPort, .zero_checksum = true}));
  ASSERT_EQ(o.v.action, FrameAction::kTransmit);
  stamp_transmit(o.buf.data(), o.v.ntp_offset, kTx);
  EXPECT_TRUE(udp_checksum_ok(o.buf.data() + 14));  // and our reply carries one
}

// =================================================================== ARP

TEST(FrameArp, RequestForOurIpAnsweredEveryField) {
  for (size_t pad : {size_t{0}, size_t{60}}) {
    SCOPED_TRACE(pad);
    NeighbourTable nt;
    const Bytes req = arp_frame(arp_request_for(kOurIp), kBroadcast, pad);
    Out o = handle(req, our_port(), nt);
    ASSERT_EQ(o.v.action, FrameAction::kTransmit);
    EXPECT_EQ(o.v.kind, ReplyKind::kArp);
    ASSERT_EQ(o.v.len, 42);
    const Bytes expected = {
        0x02, 0x11, 0x22, 0x33, 0x44, 0x55,  // to the requester
        0x02, 0x00, 0x5E, 0x10, 0x00, 0x01,  // from us
        0x08, 0x06,                          // ARP
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04,  // Ethernet, IPv4, 6, 4
        0x00, 0x02,                          // reply
        0x02, 0x00, 0x5E, 0x10, 0x00, 0x01,  // sender: our MAC
        0x0A, 0x63, 0x00, 0x01,              // sender: our IP
        0x02, 0x11, 0x22, 0x33, 0x44, 0x55,  // target: the requester's MAC
        0x0A, 0x63, 0x00, 0x02,              // target: the requester's IP
    };
    EXPECT_EQ(o.reply(), expected);
    EXPECT_TRUE(o.v.learned_neighbour);
    const Neighbour* n = nt.lookup(kClientIp, kNow, 0);
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(Bytes(n->mac, n->mac + 6), Bytes(kClientMac.begin(), kClientMac.end()));
  }
}

TEST(FrameArp, UnicastRequestToOurMacAnswered) {
  // Linux re-validates its cache with unicast requests.
  Out o = handle(arp_frame(arp_request_for(kOurIp), kOurMac));
  ASSERT_EQ(o.v.action, FrameAction::kTransmit);
  EXPECT_EQ(o.v.kind, ReplyKind::kArp);
}

TEST(FrameArp, RequestForAnotherIpNotForUs) {
  NeighbourTable nt;
  Out o = handle(arp_frame(arp_request_for(ip4(10, 99, 0, 3))), our_port(), nt);
  EXPECT_DROP(o, DropReason::kNotForUs);
  EXPECT_FALSE(o.v.learned_neighbour);
  EXPECT_EQ(nt.lookup(kClientIp, kNow, 1000000000), nullptr);
}

TEST(FrameArp, ReplyLearnedWithinSubnet) {
  NeighbourTable nt;
  ArpSpec a = arp_request_for(kOurIp);
  a.op = 2;
  a.tha = kOurMac;
  Out o = handle(arp_frame(a, kOurMac), our_port(), nt);
  EXPECT_EQ(o.v.action, FrameAction::kConsumed);
  EXPECT_TRUE(o.v.learned_neighbour);
  ASSERT_NE(nt.lookup(kClientIp, kNow, 0), nullptr);
}

// ------------------------------------------------------------ exception path

PortIdentity exception_port() {
  PortIdentity p = our_port();
  p.exception_path = true;
  return p;
}

// A TCP SYN from the client to port (its header only: the kernel's to read).
Bytes tcp_frame(uint32_t dst = kOurIp, uint16_t port = 22) {
  Bytes tcp(20, 0);
  put16(tcp, 0, 40000);
  put16(tcp, 2, port);
  tcp[12] = 5 << 4;
  tcp[13] = 0x02;  // SYN
  IpSpec ip = client_ip(6);
  ip.dst = dst;
  return ethernet(kOurMac, kClientMac, 0x0800, ipv4(tcp, ip));
}

TEST(FrameException, WhatWeDoNotAnswerForOurAddressGoesToTheKernelUnchanged) {
  IpSpec frag = client_ip();
  frag.flags_frag = 0x2000;  // MF
  IpSpec opts = client_ip();
  opts.options = {131, 7, 4, 10, 99, 7, 1, 0};  // a loose source route: never answered by us
  IpSpec echo_opts = client_ip(1);
  echo_opts.options = {0x94, 0x04, 0, 0};  // router alert: an echo's options are the kernel's to reflect
  const struct {
    const char* what;
    Bytes frame;
    DropReason without;
  } cases[] = {
      {"TCP (SSH)", tcp_frame(), DropReason::kUnsupportedIpProto},
      {"TCP (NTS-KE)", tcp_frame(kOurIp, 4460), DropReason::kUnsupportedIpProto},
      {"UDP to another port", ntp_frame(chrony_payload(), {.src_port = kClientPort, .dst_port = 53}),
       DropReason::kUdpPortClosed},
      {"ICMP port unreachable", icmp_frame(Bytes(28, 0), {.type = 3, .code = 3}), DropReason::kIcmpNotEcho},
      {"a fragment", ntp_frame(chrony_payload(), {.src_port = kClientPort}, frag), DropReason::kIpFragment},
      {"a source-routed request", ntp_frame(chrony_payload(), {.src_port = kClientPort}, opts), DropReason::kIpOptions},
      {"an echo request with options", icmp_frame(Bytes(8, 0x61), {}, echo_opts), DropReason::kIpOptions},
  };
  for (const auto& c : cases) {
    const Out with = handle(c.frame, exception_port());
    EXPECT_EQ(with.v.action, FrameAction::kToKernel) << c.what;
    EXPECT_EQ(with.v.reason, c.without) << c.what;
    EXPECT_EQ(Bytes(with.buf.begin(), with.buf.begin() + c.frame.size()), c.frame) << c.what;
    EXPECT_DROP(handle(c.frame, our_port()), c.without);
  }
}

TEST(FrameException, NtpPingArpAndOtherAddressesStayTheDataplanes) {
  EXPECT_EQ(handle(ntp_frame(), exception_port()).v.kind, ReplyKind::kNtp);
  EXPECT_EQ(handle(icmp_frame(Bytes(8, 0x61)), exception_port()).v.kind, ReplyKind::kIcmpEcho);
  NeighbourTable nt;
  EXPECT_EQ(handle(arp_frame(arp_request_for(kOurIp)), exception_port(), nt).v.kind, ReplyKind::kArp);
  // Not ours, broken, or ours to drop: never the kernel's.
  EXPECT_DROP(handle(tcp_frame(ip4(10, 99, 0, 3)), exception_port()), DropReason::kNotForUs);
  Bytes bad = tcp_frame();
  bad[14 + 10] ^= 0xFF;  // IP header checksum
  EXPECT_DROP(handle(bad, exception_port()), DropReason::kBadIpChecksum);
  Bytes bad_udp = ntp_frame(chrony_payload(), {.src_port = kClientPort, .dst_port = 53});
  bad_udp[14 + 20 + 6] ^= 0xFF;  // UDP checksum
  EXPECT_DROP(handle(bad_udp, exception_port()), DropReason::kBadUdpChecksum);
  EXPECT_DROP(handle(arp_frame(arp_request_for(ip4(10, 99, 0, 3))), exception_port(), nt), DropReason::kNotForUs);
}

TEST(FrameException, AnArpReplyToUsIsLearnedAndPassedOn) {
  NeighbourTable nt;
  ArpSpec a = arp_request_for(kOurIp);
  a.op = 2;
  a.tha = kOurMac;
  const Bytes f = arp_frame(a, kOurMac);
  Out o = handle(f, exception_port(), nt);
  EXPECT_EQ(o.v.action, FrameAction::kToKernel);
  EXPECT_TRUE(o.v.learned_neighbour);
  EXPECT_NE(nt.lookup(kClientIp, kNow, 0), nullptr);
  EXPECT_EQ(Bytes(o.buf.begin(), o.buf.begin() + f.size()), f);
  // A conflicting one (our address from another MAC) is defended, not passed.
  ArpSpec c = a;
  c.spa = kOurIp;
  EXPECT_NE(handle(arp_frame(c, kOurMac), exception_port(), nt).v.action, FrameAction::kToKernel);
}

TEST(FrameArp, NoLearningOutsideSubnetFromMulticastOrBadSenders) {
  struct Case {
    const char* name;
    Mac sha;
    uint32_t spa;
  };
  const Case cases[] = {
      {"other subnet", kClientMac, ip4(10, 99, 1, 2)},
      {"multicast MAC", kMulticastMac, kClientIp},
      {"broadcast MAC", kBroadcast, kClientIp},
      {"subnet broadcast", kClientMac, ip4(10, 99, 0, 255)},
      {"zero (probe)", kClientMac, 0},
  };
  for (const Case& c : cases)
    for (uint16_t op : {1, 2}) {
      SCOPED_TRACE(testing::Message() << c.name << " op " << op);
      NeighbourTable nt;
      ArpSpec a = arp_request_for(kOurIp, c.sha, c.spa);
      a.op = op;
      Out o = handle(ethernet(kBroadcast, kClientMac, 0x0806, arp(a)), our_port(), nt);
      EXPECT_FALSE(o.v.learned_neighbour);
      for (const Neighbour& e : nt.entries()) EXPECT_EQ(e.ipv4, 0u);
      if (op == 2) {
        EXPECT_EQ(o.v.action, FrameAction::kConsumed);
      } else {
        EXPECT_EQ(o.v.action, FrameAction::kTransmit);  // still answered
      }
    }
}

TEST(FrameArp, ProbeAnsweredToZeroAddress) {
  // RFC 5227 probe for our address (sender IP 0): we defend it.
  Out o = handle(arp_frame(arp_request_for(kOurIp, kClientMac, 0)));
  ASSERT_EQ(o.v.action, FrameAction::kTransmit);
  EXPECT_EQ(get32(o.buf.data() + 38), 0u);  // target IP
  EXPECT_EQ(Bytes(o.buf.begin() + 32, o.buf.begin() + 38), Bytes(kClientMac.begin(), kClientMac.end()));
}

TEST(FrameArp, GratuitousUpdatesKnownNeighbourOnly) {
  const uint32_t gw = ip4(10, 99, 0, 254);
  for (uint16_t op : {1, 2}) {
    SCOPED_TRACE(op);
    NeighbourTable nt;
    ArpSpec g;  // gratuitous: sender IP == target IP
    g.op = op;
    g.sha = kOtherMac;
    g.spa = gw;
    g.tpa = gw;
    // Unknown sender: not added (RFC 826 adds only when we are the target).
    Out o = handle(arp_frame(g), our_port(), nt);
    EXPECT_NE(o.v.action, FrameAction::kTransmit);
    EXPECT_FALSE(o.v.learned_neighbour);
    EXPECT_EQ(nt.lookup(gw, kNow, 1000000000), nullptr);

    // Known sender (it asked us before, from the old MAC): its new MAC is
    // merged in (RFC 826 "merge_flag"; a failover announces itself so).
    nt.learn(gw, kClientMac.data(), kNow - 5000);
    o = handle(arp_frame(g), our_port(), nt);
    EXPECT_NE(o.v.action, FrameAction::kTransmit);
    EXPECT_TRUE(o.v.learned_neighbour);
    const Neighbour* n = nt.lookup(gw, kNow, 0);
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(Bytes(n->mac, n->mac + 6), Bytes(kOtherMac.begin(), kOtherMac.end()));

    // ... but not to a multicast MAC.
    ArpSpec m = g;
    m.sha = kMulticastMac;
    o = handle(arp_frame(m), our_port(), nt);
    EXPECT_FALSE(o.v.learned_neighbour);
    n = nt.lookup(gw, kNow, 0);
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(Bytes(n->mac, n->mac + 6), Bytes(kOtherMac.begin(), kOtherMac.end()));
  }
  // A known neighbour outside the subnet (should never be in the table,
  // but if it is) is not refreshed from a broadcast ARP.
  NeighbourTable nt;
  const uint32_t far = ip4(10, 98, 0, 1);
  nt.learn(far, kClientMac.data(), kNow);
  ArpSpec g;
  g.sha = kOtherMac;
  g.spa = far;
  g.tpa = far;
  EXPECT_FALSE(handle(arp_frame(g), our_port(), nt).v.learned_neighbour);
  EXPECT_EQ(Bytes(nt.lookup(far, kNow, 0)->mac, nt.lookup(far, kNow, 0)->mac + 6),
            Bytes(kClientMac.begin(), kClientMac.end()));
}

// ====================================================== ARP defence (RFC 5227)

constexpr int64_t kSecond = 1000000000;

TEST(FrameArpDefence, EveryKindOfConflictAnsweredWithOurAnnouncement) {
  struct Case {
    const char* name;
    ArpSpec a;
    Mac dst;
    size_t pad_to;
  };
  std::vector<Case> cases;
  ArpSpec g;  // gratuitous request, as arping -U and RFC 5227 announcements
  g.sha = kOtherMac;
  g.spa = g.tpa = kOurIp;
  cases.push_back({"gratuitous request", g, kBroadcast, 0});
  cases.push_back({"gratuitous request, padded to 60", g, kBroadcast, 60});
  ArpSpec gr = g;  // gratuitous reply (arping -A): target hardware address = sender's
  gr.op = 2;
  gr.tha = kOtherMac;
  cases.push_back({"gratuitous reply", gr, kBroadcast, 0});
  ArpSpec q = arp_request_for(kClientIp, kOtherMac, kOurIp);  // asks a client, with our address as its own
  cases.push_back({"request for a client from our address", q, kBroadcast, 0});
  ArpSpec r = gr;  // a reply to us claiming our address
  r.tha = kOurMac;
  cases.push_back({"reply to our MAC", r, kOurMac, 0});
  for (const Case& c : cases)
    for (bool serving : {true, false}) {
      SCOPED_TRACE(testing::Message() << c.name << (serving ? "" : ", not serving NTP"));
      NeighbourTable nt;
      const Bytes in = arp_frame(c.a, c.dst, c.pad_to);
      Out o = handle(in, our_port(serving), nt, kNow);
      EXPECT_TRUE(o.v.arp_conflict);
      ASSERT_EQ(o.v.action, FrameAction::kTransmit);
      EXPECT_EQ(o.v.kind, ReplyKind::kArpDefence);
      ASSERT_EQ(o.v.len, 42);
      EXPECT_EQ(o.reply(), announcement());
      EXPECT_FALSE(o.v.learned_neighbour);
      for (const Neighbour& e : nt.entries()) EXPECT_EQ(e.ipv4, 0u) << "learned the claimant";
      // Past the 42 bytes the buffer is the request's (padding) and the tailroom untouched.
      EXPECT_EQ(Bytes(o.buf.begin() + 42, o.buf.begin() + static_cast<long>(in.size())),
                Bytes(in.begin() + 42, in.end()));
      EXPECT_EQ(Bytes(o.buf.end() - 4, o.buf.end()), Bytes(4, 0xCC));
      const ArpConflictRecord* rec = nt.defence().find(kOurIp);
      ASSERT_NE(rec, nullptr);
      EXPECT_EQ(Bytes(rec->mac, rec->mac + 6), Bytes(kOtherMac.begin(), kOtherMac.end()));
      EXPECT_EQ(rec->conflicts, 1u);
      EXPECT_EQ(rec->defences, 1u);
      EXPECT_EQ(rec->last_conflict_ns, kNow);
      EXPECT_EQ(rec->last_defence_ns, kNow);
    }
}

TEST(FrameArpDefence, AtMostOncePerTenSecondsPerAddress) {
  NeighbourTable nt;
  ArpSpec g;
  g.sha = kOtherMac;
  g.spa = g.tpa = kOurIp;
  const Bytes spoof = arp_frame(g);
  Mac third = kOtherMac;
  third[5] ^= 0x0F;
  ArpSpec g2 = g;
  g2.sha = third;
  const Bytes spoof2 = arp_frame(g2);
  const int64_t t0 = 5 * kSecond;
  struct Step {
    int64_t at;
    const Bytes* frame;
    bool defended;
    const char* why;
  };
  const Step steps[] = {
      {t0, &spoof, true, "first conflict"},
      {t0 + 1, &spoof, false, "1 ns later"},
      {t0 + kSecond, &spoof, false, "1 s later (a spoofer every second)"},
      {t0 + 3 * kSecond, &spoof2, false, "another claimant: the limit is per address"},
      {t0 + 10 * kSecond - 1, &spoof, false, "1 ns short of 10 s"},
      {t0 + 10 * kSecond, &spoof, true, "10 s after the last defence"},
      {t0 + 10 * kSecond + kSecond / 2, &spoof, false, "0.5 s after it"},
      {t0 + 5 * kSecond, &spoof, false, "time went backwards: wait, do not defend"},
      {t0 + 35 * kSecond, &spoof2, true, "long after"},
  };
  uint64_t conflicts = 0, defences = 0;
  for (const Step& st : steps) {
    SCOPED_TRACE(st.why);
    Out o = handle(*st.frame, our_port(), nt, st.at);
    conflicts++;
    EXPECT_TRUE(o.v.arp_conflict);
    if (st.defended) {
      defences++;
      EXPECT_EQ(o.v.action, FrameAction::kTransmit);
      EXPECT_EQ(o.reply(), announcement());
    } else {
      // Counted, nothing sent, the frame left as it came.
      EXPECT_EQ(o.v.action, FrameAction::kConsumed);
      EXPECT_EQ(Bytes(o.buf.begin(), o.buf.begin() + static_cast<long>(st.frame->size())), *st.frame);
    }
    const ArpConflictRecord* rec = nt.defence().find(kOurIp);
    ASSERT_NE(rec, nullptr);
    EXPECT_EQ(rec->conflicts, conflicts);
    EXPECT_EQ(rec->defences, defences);
    EXPECT_EQ(rec->last_conflict_ns, st.at);
    EXPECT_EQ(rec->mac[5], (*st.frame)[27]);  // the last claimant
  }

  // A second address (another port, same worker) has its own interval.
  PortIdentity other = our_port();
  other.ipv4 = ip4(10, 98, 0, 1);
  other.mac[5] = 0x02;
  ArpSpec h = g;
  h.spa = h.tpa = other.ipv4;
  Out o = handle(arp_frame(h), other, nt, t0 + 35 * kSecond + 1);
  EXPECT_EQ(o.v.kind, ReplyKind::kArpDefence);
  EXPECT_EQ(get32(o.buf.data() + 28), other.ipv4);
  EXPECT_EQ(get32(o.buf.data() + 38), other.ipv4);
  EXPECT_EQ(nt.defence().find(other.ipv4)->defences, 1u);
  EXPECT_EQ(nt.defence().find(kOurIp)->defences, defences);
}

TEST(FrameArpDefence, WhatIsNotAConflict) {
  NeighbourTable nt;
  // Our own announcement, seen again by the packet socket that sent it.
  const Bytes own = announcement();
  Out o = handle(own, our_port(), nt);
  EXPECT_DROP(o, DropReason::kNotForUs);
  EXPECT_FALSE(o.v.arp_conflict);
  EXPECT_EQ(Bytes(o.buf.begin(), o.buf.begin() + 42), own);
  // A probe (sender IP 0, RFC 5227 section 2.1.1) is answered, not defended.
  o = handle(arp_frame(arp_request_for(kOurIp, kOtherMac, 0)), our_port(), nt);
  EXPECT_FALSE(o.v.arp_conflict);
  EXPECT_EQ(o.v.kind, ReplyKind::kArp);
  // Another host announcing its own address; a request for ours.
  ArpSpec g;
  g.sha = kOtherMac;
  g.spa = g.tpa = kClientIp;
  EXPECT_FALSE(handle(arp_frame(g), our_port(), nt).v.arp_conflict);
  o = handle(arp_frame(arp_request_for(kOurIp)), our_port(), nt);
  EXPECT_FALSE(o.v.arp_conflict);
  EXPECT_EQ(o.v.kind, ReplyKind::kArp);
  // A port without an address: a probe's sender 0 is not "ours".
  PortIdentity bare = our_port();
  bare.ipv4 = 0;
  EXPECT_FALSE(handle(arp_frame(arp_request_for(0, kOtherMac, 0)), bare, nt).v.arp_conflict);
  // A conflict inside a malformed ARP packet is a bad ARP packet first.
  ArpSpec bad = g;
  bad.spa = bad.tpa = kOurIp;
  bad.hlen = 8;
  o = handle(arp_frame(bad), our_port(), nt);
  EXPECT_DROP(o, DropReason::kBadArp);
  EXPECT_FALSE(o.v.arp_conflict);
  for (const ArpConflictRecord& r : nt.defence().records()) EXPECT_EQ(r.ipv4, 0u);
}

TEST(FrameArpDefence, FullRecordTableDefendsNothingNew) {
  ArpDefence d;
  for (size_t i = 0; i < ArpDefence::kCapacity; i++)
    EXPECT_TRUE(d.conflict(ip4(10, 0, static_cast<unsigned>(i), 1), kOtherMac.data(), 0)) << i;
  EXPECT_FALSE(d.conflict(ip4(10, 0, 99, 1), kOtherMac.data(), 0));
  EXPECT_EQ(d.find(ip4(10, 0, 99, 1)), nullptr);
  // The recorded addresses keep their intervals.
  EXPECT_FALSE(d.conflict(ip4(10, 0, 3, 1), kOtherMac.data(), kSecond));
  EXPECT_TRUE(d.conflict(ip4(10, 0, 3, 1), kOtherMac.data(), 10 * kSecond));
  EXPECT_FALSE(d.conflict(0, kOtherMac.data(), 100 * kSecond));  // 0 is never ours
}

TEST(FrameArpDefence, LogLinesRateLimited) {
  ArpConflictLog log;
  ArpConflictRecord r;
  EXPECT_FALSE(log.due(r, 0)) << "nothing recorded yet";
  r.ipv4 = kOurIp;
  r.conflicts = 1;
  EXPECT_TRUE(log.due(r, 100 * kSecond)) << "the first conflict at once";
  EXPECT_FALSE(log.due(r, 200 * kSecond)) << "nothing new";
  // New conflicts soon after: one line per 10 s at most, with the totals.
  r.conflicts = 2;
  EXPECT_FALSE(log.due(r, 101 * kSecond));
  r.conflicts = 9;
  EXPECT_FALSE(log.due(r, 110 * kSecond - 1));
  EXPECT_TRUE(log.due(r, 110 * kSecond));
  r.conflicts = 10;
  EXPECT_FALSE(log.due(r, 115 * kSecond));
  EXPECT_TRUE(log.due(r, 120 * kSecond));
  EXPECT_FALSE(log.due(r, 121 * kSecond));
  // A quiet hour, then a claim: told at once.
  r.conflicts = 11;
  EXPECT_TRUE(log.due(r, 3720 * kSecond));
}

TEST(FrameArpDefence, LogLineSaysWhoClaimedWhat) {
  ArpConflictRecord r;
  r.ipv4 = kOurIp;
  std::memcpy(r.mac, kOtherMac.data(), 6);
  r.conflicts = 1;
  r.defences = 1;
  char line[160];
  size_t n = format_arp_conflict(r, line, sizeof line);
  EXPECT_STREQ(line, "ARP conflict: 10.99.0.1 claimed by 02:66:77:88:99:aa (1 conflicting packet, 1 defence so far)");
  EXPECT_EQ(n, std::strlen(line));
  r.conflicts = 20;
  r.defences = 2;
  r.ipv4 = ip4(192, 168, 255, 254);
  format_arp_conflict(r, line, sizeof line);
  EXPECT_STREQ(line,
               "ARP conflict: 192.168.255.254 claimed by 02:66:77:88:99:aa (20 conflicting packets, 2 defences so far)");
  // Truncated to the buffer, always terminated.
  char small[16];
  std::memset(small, 'X', sizeof small);
  n = format_arp_conflict(r, small, sizeof small);
  EXPECT_EQ(n, 15u);
  EXPECT_STREQ(small, "ARP conflict: 1");
  EXPECT_EQ(format_arp_conflict(r, small, 0), 0u);
}

TEST(FrameArp, MalformedIsBadArp) {
  struct Case {
    const char* name;
    ArpSpec a;
  };
  std::vector<Case> cases;
  auto add = [&](const char* n, auto mutate) {
    ArpSpec a = arp_request_for(kOurIp);
    mutate(a);
    cases.push_back({n, a});
  };
  add("htype 6", [](ArpSpec& a) { a.htype = 6; });
  add("htype 0", [](ArpSpec& a) { a.htype = 0; });
  add("ptype IPv6", [](ArpSpec& a) { a.ptype = 0x86DD; });
  add("hlen 8", [](ArpSpec& a) { a.hlen = 8; });
  add("plen 16", [](ArpSpec& a) { a.plen = 16; });
  add("op 0", [](ArpSpec& a) { a.op = 0; });
  add("op 3 (RARP)", [](ArpSpec& a) { a.op = 3; });
  add("op 0x0101", [](ArpSpec& a) { a.op = 0x0101; });
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    NeighbourTable nt;
    Out o = handle(arp_frame(c.a), our_port(), nt);
    EXPECT_DROP(o, DropReason::kBadArp);
    EXPECT_FALSE(o.v.learned_neighbour);
  }
  // Short: one byte missing, and an ARP ethertype with nothing after it.
  Bytes f = arp_frame(arp_request_for(kOurIp));
  f.pop_back();
  EXPECT_DROP(handle(f), DropReason::kBadArp);
  f.resize(14);
  EXPECT_DROP(handle(f), DropReason::kBadArp);
}

// =================================================================== ICMP

Bytes pattern(size_t n) {
  Bytes d(n);
  for (size_t i = 0; i < n; i++) d[i] = static_cast<uint8_t>(0x10 + i * 7);
  return d;
}

// The echo reply we expect, built independently: same id, seq and data,
// type 0, our address, TTL 64, the request's IP id/flags/TOS.
Bytes expected_echo_reply(const Bytes& data, const IcmpSpec& req, const IpSpec& req_ip) {
  IpSpec ip = req_ip;
  ip.src = req_ip.dst;
  ip.dst = req_ip.src;
  ip.ttl = 64;
  IcmpSpec is = req;
  is.type = 0;
  return ethernet(kClientMac, kOurMac, 0x0800, ipv4(icmp(data, is), ip));
}

TEST(FrameIcmp, EchoReplyEveryByte) {
  struct Case {
    const char* name;
    size_t data_len;
    size_t pad_to;
  };
  const Case cases[] = {
      {"56 bytes (ping default)", 56, 0}, {"odd length 57", 57, 0}, {"1 byte", 1, 0},
      {"empty, padded to 60", 0, 60},     {"odd, padded to 60", 3, 60}, {"1472 bytes", 1472, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Bytes data = pattern(c.data_len);
    IcmpSpec is;
    is.id = 0xBEEF;
    is.seq = 0x0102;
    IpSpec ip = client_ip(1);
    ip.id = 0x3344;
    ip.flags_frag = 0x4000;
    ip.ttl = 3;
    ip.tos = 0x10;
    Out o = handle(icmp_frame(data, is, ip, c.pad_to));
    ASSERT_EQ(o.v.action, FrameAction::kTransmit);
    EXPECT_EQ(o.v.kind, ReplyKind::kIcmpEcho);
    const Bytes expected = expected_echo_reply(data, is, ip);
    ASSERT_EQ(o.v.len, expected.size());
    EXPECT_EQ(o.reply(), expected);
    EXPECT_TRUE(ipv4_header_ok(o.buf.data() + 14));
    EXPECT_TRUE(icmp_checksum_ok(o.buf.data() + 34, o.v.len - 34));
  }
}

TEST(FrameIcmp, EchoReplyChecksumCornerCases) {
  // Identifier/sequence/data that sum to zero in the reply: the only
  // valid checksum then is 0xFFFF (RFC 1624 section 3: an incremental
  // update from the request's checksum gives 0x0000 there).
  struct Case {
    uint16_t id, seq;
    Bytes data;
  };
  const Case cases[] = {
      {0, 0, {}},
      {0, 0, Bytes(4, 0)},
      {0xFFFF, 0, {}},             // sums to 0xFFFF: checksum 0
      {0xF7FF, 0, {}},             // request sums to 0xFFFF (checksum 0)
      {0x1234, 0xEDCB, {}},        // reply sums to 0xFFFF
      {0x0001, 0x0002, {0xFF}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "id " << c.id << " seq " << c.seq << " data " << c.data.size());
    IcmpSpec is;
    is.id = c.id;
    is.seq = c.seq;
    Out o = handle(icmp_frame(c.data, is));
    ASSERT_EQ(o.v.action, FrameAction::kTransmit);
    EXPECT_TRUE(icmp_checksum_ok(o.buf.data() + 34, o.v.len - 34))
        << "checksum " << std::hex << get16(o.buf.data() + 36);
    EXPECT_EQ(o.reply(), expected_echo_reply(c.data, is, client_ip(1)));
  }
}

TEST(FrameIcmp, BadChecksumShortAndOtherTypes) {
  IcmpSpec bad;
  bad.bad_checksum = true;
  EXPECT_DROP(handle(icmp_frame(pattern(56), bad)), DropReason::kBadIcmp);
  // 4 bytes of ICMP (less than a header), with a checksum right for them.
  Bytes four = {8, 0, 0, 0};
  put16(four, 2, static_cast<uint16_t>(~ones_sum(four.data(), 4)));
  EXPECT_DROP(handle(ethernet(kOurMac, kClientMac, 0x0800, ipv4(four, client_ip(1)))), DropReason::kBadIcmp);
  EXPECT_DROP(handle(ethernet(kOurMac, kClientMac, 0x0800, ipv4({}, client_ip(1)))), DropReason::kBadIcmp);

  for (auto [type, code] : {std::pair<uint8_t, uint8_t>{0, 0}, {3, 1}, {13, 0}, {8, 1}, {11, 0}}) {
    SCOPED_TRACE(testing::Message() << "type " << int{type} << " code " << int{code});
    IcmpSpec is;
    is.type = type;
    is.code = code;
    EXPECT_DROP(handle(icmp_frame(pattern(8), is)), DropReason::kIcmpNotEcho);
  }
}

// =================================================== one frame per drop reason

struct DropCase {
  std::string name;
  Bytes frame;
  DropReason reason;
  PortIdentity port = our_port();
  // The policy cases: the lab policy (kod, answer_unknown_peers), a tight
  // limiter and a reply cap of cap_rate/s (0: none); the frame is sent up
  // to `tries` times and the first drop must have the reason.
  bool with_policy = false;
  bool kod = false, unknown_peers = false, limiter = false;
  bool authenticate = false;  // auth.authenticate with auth_policy's keys
  uint32_t cap_rate = 0;
  int tries = 1;
};

std::vector<DropCase> drop_cases() {
  std::vector<DropCase> t;
  const Bytes ntp = chrony_payload();
  const UdpSpec u{.src_port = kClientPort};
  auto with_ip = [&](auto mutate) {
    IpSpec ip = client_ip();
    mutate(ip);
    return ntp_frame(ntp, u, ip);
  };
  auto with_udp = [&](auto mutate) {
    UdpSpec us = u;
    mutate(us);
    return ntp_frame(ntp, us);
  };
  auto with_ntp = [&](Bytes payload) { return ntp_frame(payload, u); };

  t.push_back({"empty frame", {}, DropReason::kRuntFrame});
  const Bytes whole = ntp_frame();
  t.push_back({"13 bytes", Bytes(whole.begin(), whole.begin() + 13), DropReason::kRuntFrame});
  t.push_back({"1519 bytes", ntp_frame(ntp, u, client_ip(), kOurMac, 1519), DropReason::kOversized});
  t.push_back({"other unicast MAC", ntp_frame(ntp, u, client_ip(), kOtherMac), DropReason::kNotForUs});
  t.push_back({"multicast MAC", ntp_frame(ntp, u, client_ip(), kMulticastMac), DropReason::kNotForUs});
  t.push_back({"other IP", with_ip([](IpSpec& ip) { ip.dst = ip4(10, 99, 0, 3); }), DropReason::kNotForUs});
  t.push_back({"subnet broadcast IP",
               ntp_frame(ntp, u, [] { IpSpec ip = client_ip(); ip.dst = ip4(10, 99, 0, 255); return ip; }(),
                         kBroadcast),
               DropReason::kNotForUs});
  t.push_back({"ARP for another IP", arp_frame(arp_request_for(ip4(10, 99, 0, 9))), DropReason::kNotForUs});
  t.push_back({"IPv6 ethertype", ethernet(kOurMac, kClientMac, 0x86DD, Bytes(60, 0x60)),
               DropReason::kUnsupportedEthertype});
  t.push_back({"VLAN tag", ethernet(kOurMac, kClientMac, 0x8100, Bytes(60, 0)), DropReason::kUnsupportedEthertype});
  t.push_back({"IP version 6", with_ip([](IpSpec& ip) { ip.version_ihl = 0x65; }), DropReason::kBadIpHeader});
  t.push_back({"IHL 4", with_ip([](IpSpec& ip) { ip.version_ihl = 0x44; }), DropReason::kBadIpHeader});
  t.push_back({"IP total > frame", with_ip([](IpSpec& ip) { ip.total_length = 77; }), DropReason::kBadIpHeader});
  t.push_back({"IP total < IHL", with_ip([](IpSpec& ip) { ip.total_length = 19; }), DropReason::kBadIpHeader});
  t.push_back({"IP header truncated", Bytes(whole.begin(), whole.begin() + 14 + 19),
               DropReason::kBadIpHeader});
  t.push_back({"IP checksum", with_ip([](IpSpec& ip) { ip.bad_checksum = true; }), DropReason::kBadIpChecksum});
  t.push_back({"MF", with_ip([](IpSpec& ip) { ip.flags_frag = 0x2000; }), DropReason::kIpFragment});
  t.push_back({"DF|MF", with_ip([](IpSpec& ip) { ip.flags_frag = 0x6000; }), DropReason::kIpFragment});
  t.push_back({"fragment offset", with_ip([](IpSpec& ip) { ip.flags_frag = 0x0001; }), DropReason::kIpFragment});
  t.push_back({"IP source route", with_ip([](IpSpec& ip) { ip.options = {137, 7, 4, 10, 99, 7, 1, 0}; }),
               DropReason::kIpOptions});
  t.push_back({"IP option length 0", with_ip([](IpSpec& ip) { ip.options = {0x44, 0, 5, 0}; }),
               DropReason::kBadIpHeader});
  t.push_back({"IP option past the header", with_ip([](IpSpec& ip) { ip.options = {1, 7, 8, 4}; }),
               DropReason::kBadIpHeader});
  t.push_back({"VLAN 5", tagged(ntp_frame(), 5), DropReason::kVlanNotOurs});
  Bytes cut(whole.begin(), whole.begin() + 12);
  cut.insert(cut.end(), {0x81, 0x00, 0xA0});
  t.push_back({"tag cut short", cut, DropReason::kRuntFrame});
  t.push_back({"TCP", with_ip([](IpSpec& ip) { ip.proto = 6; }), DropReason::kUnsupportedIpProto});
  t.push_back({"IGMP", with_ip([](IpSpec& ip) { ip.proto = 2; }), DropReason::kUnsupportedIpProto});
  t.push_back({"UDP length > IP payload", with_udp([](UdpSpec& s) { s.length = 57; }), DropReason::kBadUdpLength});
  t.push_back({"UDP length 7", with_udp([](UdpSpec& s) { s.length = 7; }), DropReason::kBadUdpLength});
  t.push_back({"IP payload < UDP header", ethernet(kOurMac, kClientMac, 0x0800, ipv4(Bytes{0, 1, 0, 123}, client_ip())),
               DropReason::kBadUdpLength});
  t.push_back({"UDP checksum", with_udp([](UdpSpec& s) { s.bad_checksum = true; }), DropReason::kBadUdpChecksum});
  t.push_back({"port 124", with_udp([](UdpSpec& s) { s.dst_port = 124; }), DropReason::kUdpPortClosed});
  t.push_back({"port 0", with_udp([](UdpSpec& s) { s.dst_port = 0; }), DropReason::kUdpPortClosed});
  t.push_back({"not serving", ntp_frame(), DropReason::kNtpServerDisabled, our_port(false)});
  t.push_back({"NTP 47 bytes", with_ntp(Bytes(ntp.begin(), ntp.begin() + 47)), DropReason::kNtpTooShort});
  t.push_back({"NTP empty", with_ntp({}), DropReason::kNtpTooShort});
  {
    Bytes p = ntp;
    p[0] = 0x2B;  // VN 5
    t.push_back({"NTP version 5", with_ntp(p), DropReason::kNtpBadVersion});
    p[0] = 0x03;  // VN 0
    t.push_back({"NTP version 0", with_ntp(p), DropReason::kNtpBadVersion});
  }
  {
    Bytes p = ntp;
    p.resize(53, 0);
    t.push_back({"NTP 5 trailing bytes", with_ntp(p), DropReason::kNtpBadLength});
  }
  {
    Bytes p = ntp;
    p[0] = 0x25;
    t.push_back({"NTP mode 5", with_ntp(p), DropReason::kNtpBadMode});
    p[0] = 0x20;
    t.push_back({"NTP v4 mode 0", with_ntp(p), DropReason::kNtpBadMode});
  }
  t.push_back({"ntpq readvar", with_ntp({0x16, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}), DropReason::kNtpControlMode});
  {
    Bytes p = ntp;
    p[0] = 0x27;
    t.push_back({"NTP mode 7", with_ntp(p), DropReason::kNtpControlMode});
  }
  {
    ArpSpec a = arp_request_for(kOurIp);
    a.htype = 6;
    t.push_back({"ARP htype 6", arp_frame(a), DropReason::kBadArp});
  }
  {
    IcmpSpec is;
    is.bad_checksum = true;
    t.push_back({"ICMP checksum", icmp_frame(pattern(56), is), DropReason::kBadIcmp});
    IcmpSpec ts;
    ts.type = 13;
    t.push_back({"ICMP timestamp", icmp_frame(pattern(12), ts), DropReason::kIcmpNotEcho});
  }
  for (auto [label, src] : {std::pair<const char*, uint32_t>{"0.0.0.0", 0},
                            {"0.10.1.2 (this network)", ip4(0, 10, 1, 2)},
                            {"240.0.0.1 (class E)", ip4(240, 0, 0, 1)},
                            {"255.255.255.255", 0xFFFFFFFF},
                            {"224.0.0.251", ip4(224, 0, 0, 251)},
                            {"239.255.255.250", ip4(239, 255, 255, 250)},
                            {"127.0.0.1", ip4(127, 0, 0, 1)},
                            {"127.1.2.3", ip4(127, 1, 2, 3)},
                            {"own address", kOurIp},
                            {"subnet broadcast", ip4(10, 99, 0, 255)}}) {
    IpSpec ip = client_ip();
    ip.src = src;
    t.push_back({std::string("NTP from ") + label, ntp_frame(ntp, u, ip), DropReason::kBadSourceAddress});
  }
  {
    IpSpec ip = client_ip(1);
    ip.src = ip4(10, 99, 0, 255);
    t.push_back({"ping from subnet broadcast", icmp_frame(pattern(56), {}, ip), DropReason::kBadSourceAddress});
    Bytes p = ntp;
    p[0] = 0x24;
    IpSpec ip2 = client_ip();
    ip2.src = 0xFFFFFFFF;
    t.push_back({"server packet from broadcast", ntp_frame(p, {.src_port = 123}, ip2), DropReason::kBadSourceAddress});
    t.push_back({"NTP from UDP port 0", ntp_frame(ntp, {.src_port = 0}, client_ip()), DropReason::kBadSourceAddress});
    Bytes group_src = ntp_frame(ntp, u, client_ip());
    group_src[6] |= 1;  // a multicast source MAC
    t.push_back({"NTP from a group MAC", group_src, DropReason::kBadSourceAddress});
  }
  auto policy_case = [&](std::string label, Bytes frame, DropReason r) {
    DropCase c{std::move(label), std::move(frame), r};
    c.with_policy = true;
    return c;
  };
  t.push_back(policy_case("client request from a denied address", ntp_from(kDeniedIp, 0x23), DropReason::kAccessDenied));
  t.push_back(policy_case("client request from a query-only address", ntp_from(kQueryIp, 0x23),
                          DropReason::kAccessDenied));
  {
    DropCase c = policy_case("NTPv3 request from a denied address with kod", ntp_from(kDeniedIp, 0x1B),
                             DropReason::kAccessDenied);
    c.kod = true;
    t.push_back(c);
    DropCase l = policy_case("limited client over its limit, no kod", ntp_from(kClientIp, 0x23),
                             DropReason::kRateLimited);
    l.limiter = true;
    l.tries = 64;
    t.push_back(l);
    DropCase cap = policy_case("reply cap spent", ntp_from(kClientIp, 0x23), DropReason::kReplyCap);
    cap.cap_rate = 1;  // a burst of one answer
    cap.tries = 2;
    t.push_back(cap);
  }
  t.push_back(policy_case("mode 2 from a stranger", ntp_from(kClientIp, 0x22), DropReason::kNotAPeer));
  t.push_back(policy_case("mode 1 from a stranger", ntp_from(kClientIp, 0x21), DropReason::kNotAPeer));
  t.push_back(policy_case("mode 1 from a [[server]] only", ntp_from(kServerIp, 0x21), DropReason::kNotAPeer));
  {
    DropCase c = policy_case("mode 1 from a peer-class address without a MAC, authenticate",
                             ntp_from(kPeerClassIp, 0x21), DropReason::kNotAuthenticated);
    c.authenticate = true;
    t.push_back(c);
  }
  t.push_back(policy_case("mode 4 from a stranger", ntp_from(kClientIp, 0x24, 123), DropReason::kUnexpectedServer));
  t.push_back(policy_case("mode 4 from a stranger to port 40000", ntp_from(kClientIp, 0x24, 123, 40000),
                          DropReason::kUdpPortClosed));
  t.push_back(policy_case("mode 3 from a [[server]] to port 40000", ntp_from(kServerIp, 0x23, 123, 40000),
                          DropReason::kUdpPortClosed));
  t.push_back(policy_case("mode 4 from a [[server]] to a port its association does not use",
                          ntp_from(kServerIp, 0x24, 123, 40000), DropReason::kUnexpectedServer));
  {
    DropCase c = policy_case("mode 4 from a [[server]] over its budget", ntp_from(kServerIp, 0x24, 123, kAssocPort),
                             DropReason::kAssocOverBudget);
    c.tries = AssocTable::kBudgetBurst + 1;  // all at one time
    t.push_back(c);
  }
  return t;
}

TEST(FrameDrops, EveryReasonFromAFrame) {
  std::set<DropReason> covered;
  for (const DropCase& c : drop_cases()) {
    SCOPED_TRACE(c.name);
    NeighbourTable nt;
    Policy pol = lab_policy(c.kod, c.unknown_peers);
    if (c.authenticate) pol = auth_policy(true);
    RateLimiter limiter(1024, tight_limits(), 0x5EED);
    ReplyCap cap(c.cap_rate);
    AssocTable assoc = table_of(lab_endpoints());
    PolicyEnv env;
    if (c.with_policy) env.policy = &pol;
    if (c.with_policy) env.assoc = &assoc;
    if (c.limiter) env.limiter = &limiter;
    if (c.cap_rate) env.cap = &cap;
    Out o;
    for (int i = 0; i < c.tries; i++) {
      o = handle(c.frame, c.port, nt, kNow + i, env);
      if (o.v.action == FrameAction::kDrop) break;
    }
    EXPECT_DROP(o, c.reason);
    EXPECT_FALSE(o.v.learned_neighbour);
    covered.insert(c.reason);
  }
  // Every reason except those only the worker loop can produce (the tx
  // ring's bad entries: test_worker; the exception path's budget and TAP).
  const std::set<DropReason> worker_only = {DropReason::kControlRingFull, DropReason::kTxFull,
                                            DropReason::kNoNeighbour, DropReason::kBadControlPacket,
                                            DropReason::kExceptionRate, DropReason::kExceptionFull};
  for (size_t i = 0; i < proto::kDropReasonCount; i++) {
    const auto r = static_cast<DropReason>(i);
    if (!worker_only.count(r)) {
      EXPECT_TRUE(covered.count(r)) << "no frame for " << name(r);
    }
  }
}

// ------------------------------------------------------------------ the policy per packet

PolicyEnv env_of(const Policy& p, RateLimiter* l = nullptr, ReplyCap* c = nullptr, int64_t now_ns = 1'000'000'000) {
  PolicyEnv e;
  e.policy = &p;
  e.limiter = l;
  e.cap = c;
  e.assoc = &lab_assoc();
  e.now_ns = now_ns;
  return e;
}

// The UDP/IP framing of an NTP answer of kind k to src: back to the sender,
// from port 123, checksums right (a KoD complete, nothing to stamp).
void expect_answer_frame(const Out& o, ReplyKind k, uint32_t src) {
  ASSERT_EQ(o.v.action, FrameAction::kTransmit);
  EXPECT_EQ(o.v.kind, k);
  EXPECT_EQ(o.v.len, 90);
  const uint8_t* ip = o.buf.data() + 14;
  EXPECT_TRUE(ipv4_header_ok(ip));
  EXPECT_EQ(get32(ip + 12), kOurIp);
  EXPECT_EQ(get32(ip + 16), src);
  EXPECT_EQ(get16(ip + 20), 123);
  EXPECT_EQ(get16(ip + 22), kClientPort);
  EXPECT_TRUE(udp_checksum_ok(ip));
  EXPECT_EQ(stamps_transmit(k), k == ReplyKind::kNtp || k == ReplyKind::kNtpPassive);
}

TEST(FramePolicy, ServerRepliesOnlyFromTheServerToItsAssociationsPort) {
  const Policy pol = lab_policy();
  for (uint32_t src : {kServerIp, kBothIp}) {
    SCOPED_TRACE(testing::Message() << std::hex << src);
    const Out o = handle_env(ntp_from(src, 0x24, 123, kAssocPort), env_of(pol));
    ASSERT_EQ(o.v.action, FrameAction::kToControl);
    EXPECT_TRUE(o.v.assoc_lane);
    EXPECT_EQ(o.v.dst_port, kAssocPort);
    EXPECT_EQ(o.v.src_port, 123);
    EXPECT_EQ(o.v.src_ip, src);
    // The server's address to another port (port 123, a port the
    // association no longer uses), or from another port: a spoof.
    for (uint16_t dport : {uint16_t{123}, uint16_t{40000}, uint16_t{1}, uint16_t(kAssocPort + 1)})
      EXPECT_DROP(handle_env(ntp_from(src, 0x24, 123, dport), env_of(pol)), DropReason::kUnexpectedServer);
    for (uint16_t sport : {uint16_t{124}, uint16_t{40000}, kAssocPort})
      EXPECT_DROP(handle_env(ntp_from(src, 0x24, sport, kAssocPort), env_of(pol)), DropReason::kUnexpectedServer);
  }
  // A [[peer]] only has no client association: mode 4 from it is unexpected
  // to port 123, a closed port elsewhere.
  EXPECT_DROP(handle_env(ntp_from(kPeerIp, 0x24, 123, 123), env_of(pol)), DropReason::kUnexpectedServer);
  EXPECT_DROP(handle_env(ntp_from(kPeerIp, 0x24, 123, kAssocPort), env_of(pol)), DropReason::kUdpPortClosed);
  // From anyone else: refused, to port 123 by what it is, elsewhere as a closed port.
  EXPECT_DROP(handle_env(ntp_from(kClientIp, 0x24, 123, 123), env_of(pol)), DropReason::kUnexpectedServer);
  EXPECT_DROP(handle_env(ntp_from(kPeerClassIp, 0x24, 123, 123), env_of(pol)), DropReason::kUnexpectedServer);
  EXPECT_DROP(handle_env(ntp_from(kClientIp, 0x24, 123, kAssocPort), env_of(pol)), DropReason::kUdpPortClosed);
  // Only mode 4 may come to another port, also from a configured server.
  for (uint8_t mode : {1, 2, 3})
    EXPECT_DROP(handle_env(ntp_from(kBothIp, static_cast<uint8_t>(0x20 | mode), 123, kAssocPort), env_of(pol)),
                DropReason::kUdpPortClosed);
  // Without endpoints (generation 0, no control plane yet): nothing forwarded.
  PolicyEnv none = env_of(pol);
  none.assoc = nullptr;
  EXPECT_DROP(handle_env(ntp_from(kServerIp, 0x24, 123, kAssocPort), none), DropReason::kUdpPortClosed);
  EXPECT_DROP(handle_env(ntp_from(kServerIp, 0x24, 123, 123), none), DropReason::kUnexpectedServer);
  AssocTable empty;
  none.assoc = &empty;
  EXPECT_DROP(handle_env(ntp_from(kServerIp, 0x24, 123, kAssocPort), none), DropReason::kUdpPortClosed);
  EXPECT_DROP(handle_env(ntp_from(kPeerIp, 0x21, 123, 123), none), DropReason::kNotAPeer);
}

TEST(AssocTable, BuiltFromThePublishedSetSortedAndChecked) {
  proto::AssocEndpoints e = endpoints({endpoint(kServerIp, proto::kEndpointClient, kAssocPort),
                                       endpoint(kPeerIp, proto::kEndpointSymmetric),
                                       endpoint(kPeerIp, proto::kEndpointSymmetric),  // twice: one entry
                                       endpoint(kBothIp, proto::kEndpointClient, 40001),
                                       endpoint(kBothIp, proto::kEndpointSymmetric),
                                       endpoint(kClientIp, 7, 40002),                  // an unknown kind
                                       endpoint(kClientIp, 0, 40003)});
  proto::AssocEndpoint v6 = endpoint(kQueryIp, proto::kEndpointClient, 40004);
  v6.address[10] = 0x20;  // not v4-mapped: the frame layer has no IPv6
  e.entries[e.count++] = v6;
  AssocTable t;
  ASSERT_TRUE(t.assign(e));
  ASSERT_EQ(t.size(), 4u);
  for (size_t i = 1; i < t.size(); i++) EXPECT_LE(t[i - 1].ipv4, t[i].ipv4);
  EXPECT_NE(t.find(kServerIp, 123, kAssocPort, proto::kEndpointClient), nullptr);
  EXPECT_EQ(t.find(kServerIp, 123, kAssocPort, proto::kEndpointSymmetric), nullptr);
  EXPECT_EQ(t.find(kServerIp, 123, 123, proto::kEndpointClient), nullptr);
  EXPECT_EQ(t.find(kServerIp, 124, kAssocPort, proto::kEndpointClient), nullptr);
  EXPECT_NE(t.find(kBothIp, 123, 40001, proto::kEndpointClient), nullptr);
  EXPECT_NE(t.find(kBothIp, 123, 123, proto::kEndpointSymmetric), nullptr);
  EXPECT_NE(t.find(kPeerIp, 123, 123, proto::kEndpointSymmetric), nullptr);
  EXPECT_EQ(t.find(kClientIp, 123, 40002, 7), nullptr);
  EXPECT_EQ(t.find(kQueryIp, 123, 40004, proto::kEndpointClient), nullptr);
  EXPECT_TRUE(t.has_client(kServerIp));
  EXPECT_TRUE(t.has_client(kBothIp));
  EXPECT_FALSE(t.has_client(kPeerIp));
  EXPECT_FALSE(t.has_client(kClientIp));
  EXPECT_FALSE(t.has_client(0));

  // The segment is another process's memory: a count past the array is
  // refused and the table stays as it was.
  for (uint32_t bad : {uint32_t(proto::kMaxAssocEndpoints + 1), 0xFFFFFFFFu}) {
    proto::AssocEndpoints corrupt = lab_endpoints();
    corrupt.count = bad;
    EXPECT_FALSE(t.assign(corrupt));
    EXPECT_EQ(t.size(), 4u);
    EXPECT_NE(t.find(kBothIp, 123, 40001, proto::kEndpointClient), nullptr);
  }
  // A full set is fine.
  proto::AssocEndpoints full{};
  for (uint32_t i = 0; i < proto::kMaxAssocEndpoints; i++)
    full.entries[full.count++] = endpoint(ip4(192, 0, 2, 0) + i, proto::kEndpointClient, static_cast<uint16_t>(40000 + i));
  ASSERT_TRUE(t.assign(full));
  EXPECT_EQ(t.size(), proto::kMaxAssocEndpoints);
  EXPECT_NE(t.find(ip4(192, 0, 2, 0) + 255, 123, 40255, proto::kEndpointClient), nullptr);
  EXPECT_EQ(t.find(ip4(192, 0, 2, 0) + 255, 123, 40254, proto::kEndpointClient), nullptr);
  EXPECT_TRUE(t.assign(proto::AssocEndpoints{}));
  EXPECT_EQ(t.size(), 0u);
  EXPECT_FALSE(t.has_client(kServerIp));
}

TEST(AssocTable, ARepublishedEndpointKeepsItsBudget) {
  // The control plane republishes at each new client port: an endpoint that
  // stays keeps what it spent (a spoofer gets no fresh burst), a new one
  // starts full.
  AssocTable a = table_of(lab_endpoints());
  AssocEntry* e = a.find(kServerIp, 123, kAssocPort, proto::kEndpointClient);
  ASSERT_NE(e, nullptr);
  for (int i = 0; i < AssocTable::kBudgetBurst; i++) ASSERT_TRUE(AssocTable::take(*e, 0));
  EXPECT_FALSE(AssocTable::take(*e, 0));
  proto::AssocEndpoints moved = lab_endpoints();
  moved.entries[3].local_port = kAssocPort + 7;  // kBothIp's client association moved
  AssocTable b;
  ASSERT_TRUE(b.assign(moved, &a));
  EXPECT_FALSE(AssocTable::take(*b.find(kServerIp, 123, kAssocPort, proto::kEndpointClient), 0));
  EXPECT_TRUE(AssocTable::take(*b.find(kBothIp, 123, kAssocPort + 7, proto::kEndpointClient), 0));
  EXPECT_EQ(b.find(kBothIp, 123, kAssocPort, proto::kEndpointClient), nullptr);
  // Its rate comes back with time.
  EXPECT_TRUE(AssocTable::take(*b.find(kServerIp, 123, kAssocPort, proto::kEndpointClient),
                               AssocTable::kBudgetIntervalNs));
}

TEST(FramePolicy, AssociationBudgetBurstThenItsRate) {
  // A spoof that found the port (or a peer gone mad) gets a burst of 16,
  // then 16 per second: the lane's capacity stays the control plane's.
  const Policy pol = lab_policy();
  AssocTable assoc = table_of(lab_endpoints());
  PolicyEnv env = env_of(pol);
  env.assoc = &assoc;
  const int64_t t0 = 5'000'000'000;
  auto send = [&](uint32_t src, uint8_t lvm, uint16_t dport, int64_t now) {
    env.now_ns = now;
    return handle_env(ntp_from(src, lvm, 123, dport), env);
  };
  int forwarded = 0;
  for (int64_t i = 0; i < 1000; i++) {
    const Out o = send(kServerIp, 0x24, kAssocPort, t0 + i * 1000);  // 1 us apart
    if (o.v.action == FrameAction::kToControl)
      forwarded++;
    else
      EXPECT_DROP(o, DropReason::kAssocOverBudget);
  }
  EXPECT_EQ(forwarded, AssocTable::kBudgetBurst);
  // Each endpoint has its own: the same server's peer entry, another server.
  EXPECT_EQ(send(kBothIp, 0x24, kAssocPort, t0 + 2000).v.action, FrameAction::kToControl);
  EXPECT_EQ(send(kPeerIp, 0x21, 123, t0 + 2000).v.action, FrameAction::kToControl);
  // Over 10 s at 1000/s: 16 a second come through, no more.
  int later = 0;
  for (int64_t i = 0; i < 10000; i++)
    later += send(kServerIp, 0x24, kAssocPort, t0 + 1'000'000 + i * 1'000'000).v.action == FrameAction::kToControl;
  EXPECT_GE(later, 10 * AssocTable::kBudgetPerS - 1);
  EXPECT_LE(later, 10 * AssocTable::kBudgetPerS + 1);
  // A server polling at the fastest minpoll (2^-4 s) is never over it.
  AssocTable fresh = table_of(lab_endpoints());
  env.assoc = &fresh;
  for (int64_t i = 0; i < 2000; i++)
    ASSERT_EQ(send(kServerIp, 0x24, kAssocPort, t0 + i * AssocTable::kBudgetIntervalNs).v.action, FrameAction::kToControl) << i;
  // Nor one that sends an iburst (8 at once) after a quiet minute.
  for (int i = 0; i < 8; i++)
    ASSERT_EQ(send(kServerIp, 0x24, kAssocPort, t0 + 200'000'000'000).v.action, FrameAction::kToControl) << i;
}

TEST(FramePolicy, AConfiguredPeerOverItsBudgetGoesToTheSharedLane) {
  // Port 123 is no secret: a flood from the peer's address must not make
  // the real peer's packets drop; past the budget they share the other lane.
  const Policy pol = lab_policy();
  AssocTable assoc = table_of(lab_endpoints());
  PolicyEnv env = env_of(pol);
  env.assoc = &assoc;
  int own_lane = 0, shared_lane = 0;
  for (int64_t i = 0; i < 1000; i++) {
    env.now_ns = 5'000'000'000 + i * 1000;
    const Out o = handle_env(ntp_from(kPeerIp, 0x21, 123), env);
    ASSERT_EQ(o.v.action, FrameAction::kToControl) << i;
    (o.v.assoc_lane ? own_lane : shared_lane)++;
    EXPECT_EQ(o.v.assoc_demoted, !o.v.assoc_lane) << i;  // counted (assoc_demoted) when demoted
  }
  EXPECT_EQ(own_lane, AssocTable::kBudgetBurst);
  EXPECT_EQ(shared_lane, 1000 - AssocTable::kBudgetBurst);
}

TEST(FramePolicy, SymmetricPacketsByWhoSendsThem) {
  const Policy pol = lab_policy();
  RateLimiter limiter(1024, RateLimitParams{}, 1);
  for (uint8_t mode : {1, 2}) {
    SCOPED_TRACE(int{mode});
    const uint8_t lvm = static_cast<uint8_t>(0x20 | mode);
    // A configured [[peer]]: its own lane.
    for (uint32_t src : {kPeerIp, kBothIp}) {
      const Out o = handle_env(ntp_from(src, lvm, 123), env_of(pol, &limiter));
      ASSERT_EQ(o.v.action, FrameAction::kToControl);
      EXPECT_TRUE(o.v.assoc_lane);
      // From another port it is not the peer's endpoint: a stranger's packet.
      EXPECT_DROP(handle_env(ntp_from(src, lvm, 40000), env_of(pol, &limiter)), DropReason::kNotAPeer);
    }
    // The peer class: the shared lane (a passive association may follow).
    const Out o = handle_env(ntp_from(kPeerClassIp, lvm), env_of(pol, &limiter));
    ASSERT_EQ(o.v.action, FrameAction::kToControl);
    EXPECT_FALSE(o.v.assoc_lane);
    // Everyone else, also a [[server]] and a synchronization-class address: not a peer.
    for (uint32_t src : {kServerIp, kClientIp, kSyncIp, kQueryIp})
      EXPECT_DROP(handle_env(ntp_from(src, lvm, 123), env_of(pol, &limiter)), DropReason::kNotAPeer);
  }
}

TEST(FramePolicy, PeerClassIsNotRateLimited) {
  // Trusted like the server class: a chronyd peer at poll -2 or 0 must not
  // meet the clients' one-per-8-s limit (tight_limits here: burst 1).
  const Policy pol = lab_policy();
  RateLimiter limiter(1024, tight_limits(), 2);
  for (int i = 0; i < 200; i++) {
    const Out o = handle_env(ntp_from(kPeerClassIp, 0x21), env_of(pol, &limiter, nullptr, 1'000'000'000 + i * 1000));
    ASSERT_EQ(o.v.action, FrameAction::kToControl) << i;
    EXPECT_FALSE(o.v.assoc_lane);
  }
  EXPECT_EQ(limiter.fill(), 0u);  // not even entered
  // A configured peer likewise, on its own lane (within its own budget:
  // AssocTable, a fresh one per env_of).
  for (int i = 0; i < 50; i++) {
    const Out o = handle_env(ntp_from(kPeerIp, 0x21, 123), env_of(pol, &limiter));
    ASSERT_EQ(o.v.action, FrameAction::kToControl);
    EXPECT_TRUE(o.v.assoc_lane);
  }
}

TEST(FramePolicy, UnknownPeerGetsStatelessModeTwoWhenAllowed) {
  const Policy off = lab_policy(false, false);
  EXPECT_DROP(handle_env(ntp_from(kClientIp, 0x21), env_of(off)), DropReason::kNotAPeer);
  const Policy on = lab_policy(false, true);
  const Bytes req = ntp_from(kClientIp, 0x21);
  const Out o = handle_env(req, env_of(on));
  expect_answer_frame(o, ReplyKind::kNtpPassive, kClientIp);
  const uint8_t* ntp = o.buf.data() + 42;
  EXPECT_EQ(ntp[0], 0x22);  // LI 0, VN 4, mode 2
  EXPECT_EQ(Bytes(ntp + 24, ntp + 32), Bytes(req.begin() + 82, req.begin() + 90));  // origin
  EXPECT_EQ(get32(ntp + 32), kRx.seconds);
  // Mode 2 from a stranger is never answered; a denied or query-only one
  // gets no time; a port that serves no clients serves no strangers.
  EXPECT_DROP(handle_env(ntp_from(kClientIp, 0x22), env_of(on)), DropReason::kNotAPeer);
  EXPECT_DROP(handle_env(ntp_from(kDeniedIp, 0x21), env_of(on)), DropReason::kAccessDenied);
  EXPECT_DROP(handle_env(ntp_from(kQueryIp, 0x21), env_of(on)), DropReason::kAccessDenied);
  EXPECT_DROP(handle_env(ntp_from(kClientIp, 0x21), env_of(on), our_port(false)), DropReason::kNtpServerDisabled);
  // Rate-limited like a client even from a synchronization address (the
  // stateless answer is nobody's association).
  RateLimiter limiter(1024, tight_limits(), 3);
  int answered = 0;
  for (int i = 0; i < 100; i++) {
    const Out r = handle_env(ntp_from(kSyncIp, 0x21), env_of(on, &limiter, nullptr, 1'000'000'000 + i));
    answered += r.v.action == FrameAction::kTransmit;
    if (r.v.action == FrameAction::kDrop) EXPECT_DROP(r, DropReason::kRateLimited);
  }
  EXPECT_GE(answered, 1);
  EXPECT_LT(answered, 20);
  // With kod on too: over the limit a stranger's mode 1 gets nothing, never
  // a KoD (a server's mode-4 answer, which a mode-1 sender would not take;
  // found by fuzz_frame).
  const Policy kod_on = lab_policy(true, true);
  RateLimiter limiter2(1024, tight_limits(), 3);
  int answered2 = 0;
  for (int i = 0; i < 100; i++) {
    const Out r = handle_env(ntp_from(kSyncIp, 0x21), env_of(kod_on, &limiter2, nullptr, 1'000'000'000 + i));
    if (r.v.action == FrameAction::kTransmit) {
      EXPECT_EQ(r.v.kind, ReplyKind::kNtpPassive) << i;
      answered2++;
    } else {
      EXPECT_DROP(r, DropReason::kRateLimited);
    }
  }
  EXPECT_GE(answered2, 1);
}

TEST(FramePolicy, DeniedClientsGetNothingOrDenyKod) {
  const Policy silent = lab_policy(false);
  for (uint32_t src : {kDeniedIp, kQueryIp})
    EXPECT_DROP(handle_env(ntp_from(src, 0x23), env_of(silent)), DropReason::kAccessDenied);
  const Policy kod = lab_policy(true);
  const Bytes req = ntp_from(kDeniedIp, 0x23);
  const Out o = handle_env(req, env_of(kod));
  expect_answer_frame(o, ReplyKind::kKodDeny, kDeniedIp);
  const uint8_t* ntp = o.buf.data() + 42;
  EXPECT_EQ(ntp[0], 0xE4);  // LI 3, VN 4, mode 4
  EXPECT_EQ(ntp[1], 0);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ntp + 12), 4), "DENY");
  for (int at : {24, 32, 40}) EXPECT_EQ(Bytes(ntp + at, ntp + at + 8), Bytes(req.begin() + 82, req.begin() + 90));
  // NTPv3: no KoD, nothing.
  EXPECT_DROP(handle_env(ntp_from(kDeniedIp, 0x1B), env_of(kod)), DropReason::kAccessDenied);
  // A spoofed victim gets one DENY at first contact, then from the
  // source's excess budget only (RateLimiter::excess_v4): one per
  // 2^interval_log2 s (8 s here).
  for (int64_t step_ns : {int64_t{1000}, int64_t{100'000'000}}) {
    SCOPED_TRACE(step_ns);
    RateLimiter limiter(1024, tight_limits(), 4);
    int kods = 0;
    const int n = 1000;
    for (int i = 0; i < n; i++) {
      const Out r = handle_env(req, env_of(kod, &limiter, nullptr, 1'000'000'000 + i * step_ns));
      if (r.v.action == FrameAction::kTransmit) {
        EXPECT_EQ(r.v.kind, ReplyKind::kKodDeny);
        if (kods == 0) {
          EXPECT_EQ(i, 0) << "the first contact gets its DENY";
        }
        kods++;
      } else {
        EXPECT_DROP(r, DropReason::kAccessDenied);
      }
    }
    const double span_s = static_cast<double>(n * step_ns) / 1e9;
    EXPECT_GE(kods, 1 + static_cast<int>(span_s / 8) - 1) << "first contact, then the excess budget";
    EXPECT_LE(kods, 1 + static_cast<int>(span_s / 8) + 1) << "over " << span_s << " s";
    if (span_s < 8) EXPECT_EQ(kods, 1) << "a burst of requests gets one DENY";
  }
}

TEST(FramePolicy, LimitedClientsGetRateKodOrNothingOverTheLimit) {
  for (bool with_kod : {false, true}) {
    SCOPED_TRACE(with_kod);
    const Policy pol = lab_policy(with_kod);
    RateLimiter limiter(1024, tight_limits(), 5);
    int answers = 0, kods = 0, leaked = 0, dropped = 0;
    for (int i = 0; i < 1000; i++) {
      // One a second against one per 8 s: about 1 in 8 within the limit,
      // as many over it within the excess budget (leaked or KoD), the rest dropped.
      const Bytes req = ntp_from(kClientIp, 0x23);
      const Out r = handle_env(req, env_of(pol, &limiter, nullptr, 1'000'000'000 + int64_t{i} * 1'000'000'000));
      if (r.v.action == FrameAction::kDrop) {
        EXPECT_DROP(r, DropReason::kRateLimited);
        dropped++;
        continue;
      }
      ASSERT_EQ(r.v.action, FrameAction::kTransmit);
      if (r.v.kind == ReplyKind::kKodRate) {
        expect_answer_frame(r, ReplyKind::kKodRate, kClientIp);
        const uint8_t* ntp = r.buf.data() + 42;
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(ntp + 12), 4), "RATE");
        EXPECT_EQ(ntp[0] >> 6, 3);
        EXPECT_EQ(Bytes(ntp + 24, ntp + 32), Bytes(req.begin() + 82, req.begin() + 90));
        kods++;
      } else {
        EXPECT_EQ(r.v.kind, ReplyKind::kNtp);
        answers++;
        leaked += r.v.rate_leaked;
      }
    }
    EXPECT_GE(answers, 1);
    EXPECT_GE(leaked, 1) << "1 in 16 over the limit is still answered";
    EXPECT_LT(answers, 200);
    EXPECT_EQ(kods > 0, with_kod);
    EXPECT_GT(dropped, 500);
    EXPECT_EQ(answers + kods + dropped, 1000);
  }
  // RATE KoD for NTPv4 only: an NTPv3 client over its limit gets nothing.
  const Policy pol = lab_policy(true);
  RateLimiter limiter(1024, tight_limits(), 6);
  for (int i = 0; i < 300; i++) {
    const Out r = handle_env(ntp_from(kClientIp, 0x1B), env_of(pol, &limiter, nullptr, 1'000'000'000 + i));
    if (r.v.action == FrameAction::kTransmit) {
      EXPECT_EQ(r.v.kind, ReplyKind::kNtp);
    }
  }
}

TEST(FramePolicy, UnlimitedClassesAreNeverRateLimited) {
  const Policy pol = lab_policy(true);
  RateLimiter limiter(1024, tight_limits(), 7);
  ReplyCap cap(1);
  for (uint32_t src : {kSyncIp, kPeerClassIp}) {
    for (int i = 0; i < 100; i++) {
      const Out r = handle_env(ntp_from(src, 0x23), env_of(pol, &limiter, &cap, 1'000'000'000 + i));
      ASSERT_EQ(r.v.action, FrameAction::kTransmit);
      EXPECT_EQ(r.v.kind, ReplyKind::kNtp);
    }
  }
}

TEST(FramePolicy, ReplyCapBrakesEveryLimitedAnswer) {
  const Policy pol = lab_policy(true);
  RateLimiter limiter(1u << 16, RateLimitParams{}, 8);
  ReplyCap cap(100);  // a burst of 10
  int sent = 0, capped = 0;
  // 1000 different sources in the same millisecond: each within its own
  // limit, together over the cap.
  for (uint32_t i = 0; i < 1000; i++) {
    const Out r = handle_env(ntp_from(ip4(10, 99, 1, 0) + i % 250 + (i / 250) * 0x10000, 0x23),
                             env_of(pol, &limiter, &cap, 1'000'000'000));
    if (r.v.action == FrameAction::kTransmit)
      sent++;
    else if (r.v.reason == DropReason::kReplyCap)
      capped++;
  }
  EXPECT_EQ(sent, 10);
  EXPECT_EQ(capped, 990);
}

TEST(FrameDrops, BaseFramesOfTheTableAreAnswered) {
  // The faults above are single changes to frames that are answered.
  EXPECT_EQ(handle(ntp_frame()).v.action, FrameAction::kTransmit);
  EXPECT_EQ(handle(arp_frame(arp_request_for(kOurIp))).v.action, FrameAction::kTransmit);
  EXPECT_EQ(handle(icmp_frame(pattern(56))).v.action, FrameAction::kTransmit);
}

TEST(FrameDrops, ValidRequestAfterGarbageStillAnswered) {
  NeighbourTable nt;
  const Out first = handle(ntp_frame(), our_port(), nt);
  ASSERT_EQ(first.v.action, FrameAction::kTransmit);
  std::mt19937_64 rng(test_seed() + 1);
  for (const DropCase& c : drop_cases()) handle(c.frame, c.port, nt);
  for (int i = 0; i < 200; i++) {
    Bytes junk(rng() % 200);
    for (auto& b : junk) b = static_cast<uint8_t>(rng());
    if (junk.size() >= 14 && (i & 1)) std::memcpy(junk.data(), kOurMac.data(), 6), put16(junk, 12, 0x0800);
    handle(junk, our_port(), nt);
  }
  const Out again = handle(ntp_frame(), our_port(), nt);
  EXPECT_EQ(again.v.action, FrameAction::kTransmit);
  EXPECT_EQ(again.reply(), first.reply());
  EXPECT_EQ(handle(arp_frame(arp_request_for(kOurIp)), our_port(), nt).v.action, FrameAction::kTransmit);
}

// ============================================================ build_udp_frame

TEST(FrameBuild, UdpFrameForControlPlane) {
  // A client request of the control plane: transmit zero, to be stamped
  // at send time (stamp_transmit folds the new value into a checksum that
  // was computed over zeros).
  Bytes payload(golden::kChronyRequest1, golden::kChronyRequest1 + 48);
  std::fill(payload.begin() + 40, payload.end(), 0);
  Bytes buf(14 + 20 + 8 + 48 + 4, 0xAB);
  std::copy(payload.begin(), payload.end(), buf.begin() + 42);
  const size_t n = build_udp_frame(buf.data(), kOurMac.data(), kClientMac.data(), kOurIp, ip4(192, 0, 2, 1), 123,
                                   123, 48);
  ASSERT_EQ(n, 90u);
  Bytes frame(buf.begin(), buf.begin() + 90);
  EXPECT_EQ(Bytes(frame.begin(), frame.begin() + 14),
            Bytes({0x02, 0x11, 0x22, 0x33, 0x44, 0x55, 0x02, 0x00, 0x5E, 0x10, 0x00, 0x01, 0x08, 0x00}));
  const uint8_t* ip = frame.data() + 14;
  EXPECT_EQ(ip[0], 0x45);
  EXPECT_EQ(ip[1], 0xB8);  // DSCP EF
  EXPECT_EQ(get16(ip + 2), 76);
  EXPECT_EQ(get16(ip + 6), 0x4000);
  EXPECT_EQ(ip[8], 64);
  EXPECT_EQ(ip[9], 17);
  EXPECT_EQ(get32(ip + 12), kOurIp);
  EXPECT_EQ(get32(ip + 16), ip4(192, 0, 2, 1));
  EXPECT_TRUE(ipv4_header_ok(ip));
  EXPECT_EQ(get16(ip + 20), 123);
  EXPECT_EQ(get16(ip + 22), 123);
  EXPECT_EQ(get16(ip + 24), 56);
  EXPECT_TRUE(udp_checksum_ok(ip));
  EXPECT_EQ(Bytes(frame.begin() + 42, frame.end()), payload);
  EXPECT_EQ(Bytes(buf.begin() + 90, buf.end()), Bytes(4, 0xAB));
  // Stamping it (kTxStampTransmit) keeps the checksum valid.
  stamp_transmit(buf.data(), 42, kTx);
  EXPECT_TRUE(udp_checksum_ok(buf.data() + 14));
}

TEST(FrameBuild, RoundTripThroughHandleFrame) {
  // A client request we build toward our own address is answered.
  Bytes buf(14 + 20 + 8 + 48 + 4, 0);
  for (int i = 0; i < 48; i++) buf[42 + i] = golden::kNtpdigRequest[i];
  const size_t n = build_udp_frame(buf.data(), kClientMac.data(), kOurMac.data(), kClientIp, kOurIp, 40000, 123, 48);
  NeighbourTable nt;
  const FrameVerdict v = handle_frame(buf.data(), n, our_port(), fixed_reply_params(), kRx, nt, kNow);
  ASSERT_EQ(v.action, FrameAction::kTransmit);
  EXPECT_EQ(get16(buf.data() + 36), 40000);
}

// ================================================================ fuzzing

// Fixes the IPv4 header checksum and the UDP/ICMP checksums of a mutated
// frame where its own length fields allow, so mutations reach deeper code.
void fix_checksums(Bytes& f) {
  if (f.size() < 34 || get16(f.data() + 12) != 0x0800) return;
  uint8_t* ip = f.data() + 14;
  const size_t ihl = size_t{ip[0] & 0x0Fu} * 4;
  if (ihl < 20 || 14 + ihl > f.size()) return;
  const size_t total = get16(ip + 2);
  if (total >= ihl && 14 + total <= f.size()) {
    uint8_t* l4 = ip + ihl;
    const size_t l4_len = total - ihl;
    if (ip[9] == 1 && l4_len >= 4) {
      l4[2] = l4[3] = 0;
      put16(f, 14 + ihl + 2, static_cast<uint16_t>(~ones_sum(l4, l4_len)));
    } else if (ip[9] == 17 && l4_len >= 8) {
      const uint16_t ulen = get16(l4 + 4);
      if (ulen >= 8 && ulen <= l4_len) {
        l4[6] = l4[7] = 0;
        uint16_t ck = static_cast<uint16_t>(~ones_sum(l4, ulen, pseudo_sum(get32(ip + 12), get32(ip + 16), 17, ulen)));
        put16(f, 14 + ihl + 6, ck == 0 ? 0xFFFF : ck);
      }
    }
  }
  ip[10] = ip[11] = 0;
  put16(f, 24, static_cast<uint16_t>(~ones_sum(ip, ihl)));
}

// Sets IP total length and UDP length to what the frame holds.
void fix_lengths(Bytes& f) {
  if (f.size() < 42 || get16(f.data() + 12) != 0x0800) return;
  put16(f, 16, static_cast<uint16_t>(f.size() - 14));
  if (f[23] == 17) put16(f, 38, static_cast<uint16_t>(f.size() - 34));
}

std::vector<Bytes> fuzz_seeds() {
  std::vector<Bytes> s;
  s.push_back(ntp_frame());
  s.push_back(ntp_frame(Bytes(golden::kNtpdigRequest, golden::kNtpdigRequest + 48)));
  Bytes p = chrony_payload();
  p.resize(68, 0x5A);  // MD5 MAC
  s.push_back(ntp_frame(p));
  p = chrony_payload();
  Bytes e = {0x01, 0x04, 0x00, 0x10};
  e.resize(16, 0x11);
  p.insert(p.end(), e.begin(), e.end());
  p.resize(p.size() + 24, 0x22);  // extension + SHA-1 MAC
  s.push_back(ntp_frame(p));
  p = chrony_payload();
  p[0] = 0x24;
  s.push_back(ntp_frame(p, {.src_port = 123}));  // to control
  p[0] = 0x21;
  s.push_back(ntp_frame(p, {.src_port = 123}));
  p[0] = 0x08;
  s.push_back(ntp_frame(p));  // v1
  s.push_back(ntp_frame({0x16, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}));  // ntpq
  s.push_back(ntp_frame(chrony_payload(), {.src_port = 999, .zero_checksum = true}));
  s.push_back(ntp_frame(chrony_payload(), {}, client_ip(), kBroadcast, 120));  // padded
  s.push_back(arp_frame(arp_request_for(kOurIp)));
  s.push_back(arp_frame(arp_request_for(kOurIp), kBroadcast, 60));
  ArpSpec r = arp_request_for(kOurIp);
  r.op = 2;
  s.push_back(arp_frame(r, kOurMac));
  ArpSpec g;
  g.sha = kOtherMac;
  g.spa = g.tpa = ip4(10, 99, 0, 77);
  s.push_back(arp_frame(g));
  g.spa = g.tpa = kOurIp;  // a conflict: another MAC claims our address
  s.push_back(arp_frame(g));
  g.op = 2;
  s.push_back(arp_frame(g));
  s.push_back(icmp_frame(pattern(56)));
  s.push_back(icmp_frame(pattern(57)));
  s.push_back(icmp_frame({}, {}, client_ip(1), 60));
  s.push_back(icmp_frame(pattern(1400)));
  return s;
}

TEST(FrameFuzz, RandomMutationsNeverMisbehave) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE(testing::Message() << "TEST_SEED=" << seed);
  std::mt19937_64 rng(seed);
  const std::vector<Bytes> seeds = fuzz_seeds();
  const int iterations = 100000;
  // Under ASan the buffer is exactly len + 4 so any access past the
  // tailroom is reported; without it, a canary after the tailroom.
  const size_t canary = FRAME_TEST_ASAN ? 0 : 16;
  NeighbourTable nt;
  std::map<std::string, int> seen;
  // The seeds' client is a configured peer and server: its modes 1, 2
  // and 4 reach the control plane (the policy's rules: FramePolicy).
  Policy fuzz_policy;
  AssocTable fuzz_assoc = table_of(endpoints({endpoint(kClientIp, proto::kEndpointClient),
                                              endpoint(kClientIp, proto::kEndpointSymmetric),
                                              endpoint(kClientIp, proto::kEndpointClient, kClientPort, 123),
                                              endpoint(kClientIp, proto::kEndpointClient, 123, kClientPort),
                                              endpoint(kClientIp, proto::kEndpointSymmetric, 123, kClientPort)}));
  PolicyEnv fuzz_env;
  fuzz_env.policy = &fuzz_policy;
  fuzz_env.assoc = &fuzz_assoc;
  // Time runs a few ms per frame, so the run spans many defence intervals.
  int64_t now = kNow;
  int64_t last_defence = 0;
  int defences = 0;
  const uint8_t interesting[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 0x0F, 0x10, 0x14, 0x17, 0x1F, 0x20, 0x23, 0x24,
                                 0x2F, 0x30, 0x3F, 0x40, 0x45, 0x46, 0x7F, 0x80, 0xE3, 0xFE, 0xFF};
  const size_t hot[] = {0, 5, 6, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 29, 30, 33, 34,
                        35, 36, 37, 38, 39, 40, 41, 42, 43, 90, 91, 92, 93};

  for (int it = 0; it < iterations; it++) {
    Bytes f = seeds[rng() % seeds.size()];
    const int n_mut = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < n_mut; m++) {
      switch (rng() % 9) {
        case 0:
          if (!f.empty()) f[rng() % f.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 1:
          if (!f.empty()) f[rng() % f.size()] = static_cast<uint8_t>(rng());
          break;
        case 2:
        case 3: {
          const size_t at = hot[rng() % std::size(hot)];
          if (at < f.size()) f[at] = interesting[rng() % std::size(interesting)];
          break;
        }
        case 4:
          f.resize(rng() % (f.size() + 1));
          break;
        case 5: {
          const size_t add = rng() % 70;
          for (size_t i = 0; i < add; i++) f.push_back(static_cast<uint8_t>(rng()));
          if (rng() & 1) fix_lengths(f);
          break;
        }
        case 6: {  // shrink/grow the NTP payload consistently
          if (f.size() >= 42) {
            f.resize(42 + rng() % 120, static_cast<uint8_t>(rng() & 1 ? 0 : rng()));
            if (f.size() >= 46 && (rng() & 1)) put16(f, 44, static_cast<uint16_t>(rng() % 64));  // an ext length
            fix_lengths(f);
          }
          break;
        }
        case 7: {  // a 16-bit length field to a near or random value
          const size_t at = (rng() & 1) ? 16 : 38;
          if (at + 2 <= f.size()) {
            const int delta = static_cast<int>(rng() % 9) - 4;
            put16(f, at, (rng() % 4 == 0) ? static_cast<uint16_t>(rng()) : static_cast<uint16_t>(get16(&f[at]) + delta));
          }
          break;
        }
        case 8:
          if (f.size() >= 1600 || (rng() % 8) == 0) f.resize(1500 + rng() % 40, 0);
          break;
      }
    }
    if (rng() % 4 != 0) fix_checksums(f);

    const size_t len = f.size();
    std::vector<uint8_t> buf(len + 4 + canary, 0xC5);
    std::copy(f.begin(), f.end(), buf.begin());
    PortIdentity port = our_port(rng() % 8 != 0);
    now += static_cast<int64_t>(rng() % 4000000);
    fuzz_env.now_ns = now;
    const FrameVerdict v = handle_frame(buf.data(), len, port, fixed_reply_params(), kRx, nt, now, fuzz_env);
    if (v.arp_conflict) {  // only a well-formed ARP packet from another MAC with our address as sender
      ASSERT_GE(len, 42u);
      ASSERT_EQ(get16(f.data() + 12), 0x0806);
      ASSERT_EQ(get32(f.data() + 28), kOurIp);
      ASSERT_NE(Bytes(f.begin() + 22, f.begin() + 28), Bytes(kOurMac.begin(), kOurMac.end()));
      ASSERT_TRUE(v.action == FrameAction::kConsumed || v.kind == ReplyKind::kArpDefence);
    }
    ASSERT_EQ(v.kind == ReplyKind::kArpDefence, v.arp_conflict && v.action == FrameAction::kTransmit);

    for (size_t i = len + 4; i < buf.size(); i++) ASSERT_EQ(buf[i], 0xC5) << "wrote past the tailroom, iteration " << it;
    std::string key;
    switch (v.action) {
      case FrameAction::kDrop:
        ASSERT_LT(static_cast<size_t>(v.reason), proto::kDropReasonCount);
        ASSERT_NE(v.reason, DropReason::kControlRingFull);
        ASSERT_NE(v.reason, DropReason::kTxFull);
        ASSERT_NE(v.reason, DropReason::kNoNeighbour);
        key = std::string("drop ") + name(v.reason);
        break;
      case FrameAction::kConsumed:
        ASSERT_GE(len, 42u);
        ASSERT_EQ(get16(f.data() + 12), 0x0806);
        key = "consumed";
        break;
      case FrameAction::kToKernel:
        FAIL() << "to the kernel from a port without an exception path, iteration " << it;
      case FrameAction::kToControl:
        ASSERT_GE(v.ntp_len, 48);
        ASSERT_LE(size_t{v.ntp_offset} + v.ntp_len, len);
        ASSERT_TRUE((buf[v.ntp_offset] & 7) == 1 || (buf[v.ntp_offset] & 7) == 2 || (buf[v.ntp_offset] & 7) == 4);
        ASSERT_EQ(Bytes(buf.begin(), buf.begin() + len), f) << "forwarded frame modified, iteration " << it;
        key = "to control";
        break;
      case FrameAction::kTransmit: {
        ASSERT_LE(v.len, len + 4) << "iteration " << it;
        ASSERT_GE(v.len, 42);
        const uint8_t* out = buf.data();
        ASSERT_EQ(Bytes(out + 6, out + 12), Bytes(kOurMac.begin(), kOurMac.end()));
        if (v.kind == ReplyKind::kArpDefence) {
          // Never larger than the frame it replaced, always our announcement,
          // never two within 10 s.
          ASSERT_EQ(v.len, 42);
          ASSERT_LE(v.len, len);
          ASSERT_EQ(Bytes(out, out + 42), announcement());
          if (defences > 0) {
            ASSERT_GE(now - last_defence, 10000000000LL) << "iteration " << it;
          }
          last_defence = now;
          defences++;
          key = "arp defence";
          break;
        }
        ASSERT_EQ(Bytes(out, out + 6), Bytes(f.begin() + 6, f.begin() + 12));  // back to the sender
        if (v.kind == ReplyKind::kArp) {
          ASSERT_EQ(v.len, 42);
          ASSERT_EQ(get16(out + 12), 0x0806);
          ASSERT_EQ(get16(out + 20), 2);
          ASSERT_EQ(get32(out + 28), kOurIp);
          key = "arp reply";
          break;
        }
        ASSERT_EQ(get16(out + 12), 0x0800);
        const uint8_t* ip = out + 14;
        ASSERT_EQ(ip[0], 0x45);
        ASSERT_TRUE(ipv4_header_ok(ip)) << "IP checksum, iteration " << it;
        ASSERT_EQ(get16(ip + 2), v.len - 14u);
        ASSERT_EQ(get32(ip + 12), kOurIp);
        if (v.kind == ReplyKind::kIcmpEcho) {
          ASSERT_EQ(ip[9], 1);
          ASSERT_EQ(ip[20], 0);
          ASSERT_TRUE(icmp_checksum_ok(ip + 20, v.len - 34u)) << "ICMP checksum, iteration " << it;
          key = "icmp reply";
          break;
        }
        ASSERT_EQ(v.kind, ReplyKind::kNtp);
        ASSERT_EQ(ip[9], 17);
        ASSERT_TRUE(v.len == 90 || v.len == 94) << v.len;
        ASSERT_EQ(v.ntp_offset, 42);
        ASSERT_EQ(get16(ip + 20), 123);
        ASSERT_EQ(get16(ip + 24), v.len - 34u);
        ASSERT_TRUE(udp_checksum_ok(ip)) << "UDP checksum before stamping, iteration " << it;
        const NtpTimestamp tx = NtpTimestamp::from_raw(rng());
        stamp_transmit(buf.data(), v.ntp_offset, tx);
        ASSERT_TRUE(udp_checksum_ok(ip)) << "UDP checksum after stamping, iteration " << it;
        const uint8_t* ntp = out + 42;
        ASSERT_EQ(ntp[0] & 7, 4);
        ASSERT_EQ((ntp[0] >> 3) & 7, (f[42] >> 3) & 7);
        ASSERT_EQ(Bytes(ntp + 24, ntp + 32), Bytes(f.begin() + 82, f.begin() + 90));  // origin
        ASSERT_EQ(get32(ntp + 32), kRx.seconds);
        key = "ntp reply";
        break;
      }
    }
    if (v.learned_neighbour) {
      const uint32_t spa = get32(f.data() + 28);
      ASSERT_EQ(spa & 0xFFFFFF00u, kOurIp & 0xFFFFFF00u);
      ASSERT_EQ(f[22] & 1, 0) << "learned a multicast MAC";
    }
    seen[key]++;
  }
  // The table keeps only sane entries.
  for (const Neighbour& e : nt.entries()) {
    if (e.ipv4 == 0) continue;
    EXPECT_EQ(e.ipv4 & 0xFFFFFF00u, kOurIp & 0xFFFFFF00u);
    EXPECT_EQ(e.mac[0] & 1, 0);
  }
  std::string summary;
  for (const auto& [k, n] : seen) summary += "  " + k + ": " + std::to_string(n) + "\n";
  std::fprintf(stderr, "test_frame fuzz (%d iterations, seed %llu):\n%s", iterations,
               static_cast<unsigned long long>(seed), summary.c_str());
  // The fuzzer got past the checks into every kind of answer.
  EXPECT_GT(seen["ntp reply"], 1000);
  EXPECT_GT(seen["arp reply"], 100);
  EXPECT_GT(seen["icmp reply"], 100);
  EXPECT_GT(seen["to control"], 100);
  EXPECT_GT(seen["consumed"], 10);
  // 100000 frames of about 2 ms each, conflicts every few dozen frames:
  // each 10 s interval got its one defence, none more.
  EXPECT_GE(defences, (now - kNow) / 10000000000LL - 1);
  EXPECT_LE(defences, (now - kNow) / 10000000000LL + 1);
  EXPECT_EQ(static_cast<uint64_t>(defences), nt.defence().find(kOurIp)->defences);
  EXPECT_GT(nt.defence().find(kOurIp)->conflicts, static_cast<uint64_t>(defences) * 10);
}

// ============================================================ NeighbourTable

Mac mac_n(uint8_t n) { return {0x02, 0, 0, 0, 0, n}; }

TEST(Neighbour, LearnAndLookup) {
  NeighbourTable t;
  EXPECT_EQ(t.lookup(kClientIp, 0, 1000), nullptr);
  t.learn(kClientIp, kClientMac.data(), 100);
  const Neighbour* n = t.lookup(kClientIp, 100, 0);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->ipv4, kClientIp);
  EXPECT_EQ(Bytes(n->mac, n->mac + 6), Bytes(kClientMac.begin(), kClientMac.end()));
  EXPECT_EQ(n->updated_ns, 100);
  EXPECT_EQ(t.lookup(ip4(10, 99, 0, 3), 100, 1000), nullptr);
  EXPECT_EQ(t.lookup(0, 100, 1000), nullptr);  // empty slots are not address 0
}

TEST(Neighbour, MaxAgeBoundary) {
  NeighbourTable t;
  t.learn(kClientIp, kClientMac.data(), 1000);
  EXPECT_NE(t.lookup(kClientIp, 1000 + 500, 500), nullptr);
  EXPECT_EQ(t.lookup(kClientIp, 1000 + 501, 500), nullptr);
  EXPECT_NE(t.lookup(kClientIp, 1000 + 501, 501), nullptr);
}

TEST(Neighbour, RefreshUpdatesMacAndTimeWithoutDuplicating) {
  NeighbourTable t;
  t.learn(kClientIp, kClientMac.data(), 1000);
  t.learn(kClientIp, kOtherMac.data(), 5000);
  const Neighbour* n = t.lookup(kClientIp, 5000, 0);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(Bytes(n->mac, n->mac + 6), Bytes(kOtherMac.begin(), kOtherMac.end()));
  int copies = 0;
  for (const auto& e : t.entries()) copies += e.ipv4 == kClientIp;
  EXPECT_EQ(copies, 1);
}

TEST(Neighbour, RefreshFindsEntryAfterAHole) {
  // Slot 0 learned, slot 1 learned, ... then a refresh of slot 1's address
  // must update it in place even though an earlier slot might be free.
  NeighbourTable t;
  for (uint8_t i = 1; i <= 3; i++) t.learn(ip4(10, 99, 0, i), mac_n(i).data(), i);
  t.learn(ip4(10, 99, 0, 3), mac_n(33).data(), 10);
  int copies = 0;
  for (const auto& e : t.entries()) copies += e.ipv4 == ip4(10, 99, 0, 3);
  EXPECT_EQ(copies, 1);
  EXPECT_EQ(t.lookup(ip4(10, 99, 0, 3), 10, 0)->mac[5], 33);
}

TEST(Neighbour, RefreshOnlyUpdatesKnownEntries) {
  NeighbourTable t;
  EXPECT_FALSE(t.refresh(kClientIp, kClientMac.data(), 100));
  EXPECT_EQ(t.lookup(kClientIp, 100, 1000), nullptr);
  EXPECT_FALSE(t.refresh(0, kClientMac.data(), 100));  // never matches an empty slot
  for (const auto& e : t.entries()) EXPECT_EQ(e.ipv4, 0u);
  t.learn(kClientIp, kClientMac.data(), 100);
  EXPECT_TRUE(t.refresh(kClientIp, kOtherMac.data(), 200));
  const Neighbour* n = t.lookup(kClientIp, 200, 0);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->mac[1], kOtherMac[1]);
}

TEST(Neighbour, FullTableReplacesOldest) {
  NeighbourTable t;
  const size_t cap = NeighbourTable::kCapacity;
  // Learn in an order where the oldest is in the middle of the table.
  for (size_t i = 0; i < cap; i++) {
    const int64_t when = i == cap / 2 ? 10 : 1000 + static_cast<int64_t>(i);
    t.learn(ip4(10, 99, 1, static_cast<unsigned>(i)), mac_n(static_cast<uint8_t>(i)).data(), when);
  }
  for (size_t i = 0; i < cap; i++) ASSERT_NE(t.lookup(ip4(10, 99, 1, static_cast<unsigned>(i)), 5000, 1 << 20), nullptr);
  t.learn(ip4(10, 99, 2, 1), mac_n(200).data(), 6000);
  EXPECT_EQ(t.lookup(ip4(10, 99, 1, static_cast<unsigned>(cap / 2)), 6000, 1 << 20), nullptr) << "oldest kept";
  ASSERT_NE(t.lookup(ip4(10, 99, 2, 1), 6000, 0), nullptr);
  for (size_t i = 0; i < cap; i++)
    if (i != cap / 2) {
      EXPECT_NE(t.lookup(ip4(10, 99, 1, static_cast<unsigned>(i)), 6000, 1 << 20), nullptr) << i;
    }
  // Next the oldest is entry 0 (learned at 1000).
  t.learn(ip4(10, 99, 2, 2), mac_n(201).data(), 6001);
  EXPECT_EQ(t.lookup(ip4(10, 99, 1, 0), 6001, 1 << 20), nullptr);
  EXPECT_NE(t.lookup(ip4(10, 99, 2, 1), 6001, 1 << 20), nullptr);
  // A refresh of an existing entry in a full table replaces nothing.
  t.learn(ip4(10, 99, 1, 1), mac_n(77).data(), 7000);
  for (size_t i = 2; i < cap; i++)
    if (i != cap / 2) {
      EXPECT_NE(t.lookup(ip4(10, 99, 1, static_cast<unsigned>(i)), 7000, 1 << 20), nullptr) << i;
    }
  EXPECT_EQ(t.lookup(ip4(10, 99, 1, 1), 7000, 0)->mac[5], 77);
}

// ------------------------------------------------------------------ authentication (issue 10)

// An authenticated request's reply as the worker finishes it: stamped, then
// sealed; the checksum and the MAC must both hold over the final bytes.
TEST(FrameAuth, AnsweredWithTheRequestsKeySealedAfterTheStamp) {
  const Policy pol = auth_policy(false);
  for (auto [id, digest] : {std::pair<uint32_t, size_t>{1, 16}, {2, 32}, {2, 20}, {3, 16}}) {
    SCOPED_TRACE(id * 100 + digest);
    const Bytes payload = keyed_payload(0x23, id, digest);
    const Out o = handle_env(ntp_frame(payload), env_of(pol));
    ASSERT_EQ(o.v.action, FrameAction::kTransmit);
    EXPECT_EQ(o.v.kind, ReplyKind::kNtp);
    EXPECT_EQ(o.v.auth, AuthOutcome::kOk);
    ASSERT_NE(o.v.mac_key, nullptr);
    EXPECT_EQ(o.v.mac_key->id, id);
    EXPECT_EQ(o.v.mac_digest_bytes, digest);
    EXPECT_EQ(o.v.len, 14 + 20 + 8 + payload.size());  // the request's length
    Bytes r = o.reply();
    stamp_transmit(r.data(), o.v.ntp_offset, kTx);
    seal_transmit(r.data(), o.v.ntp_offset, 48, *o.v.mac_key, o.v.mac_digest_bytes);
    const uint8_t* ip = r.data() + 14;
    EXPECT_TRUE(ipv4_header_ok(ip));
    EXPECT_TRUE(udp_checksum_ok(ip));
    const uint8_t* ntp = r.data() + o.v.ntp_offset;
    EXPECT_EQ(proto::load_ts(ntp + 40), kTx);
    EXPECT_EQ(crypto::check_mac(*pol.keys, ntp, 48, ntp + 48, 4 + digest).check, crypto::MacCheck::kOk);
  }
}

TEST(FrameAuth, FailuresGetACryptoNakWithARightChecksum) {
  const Policy pol = auth_policy(false);
  struct Case {
    const char* what;
    Bytes payload;
    AuthOutcome auth;
  };
  Bytes unknown = keyed_payload(0x23, 1, 16);
  proto::store_be32(unknown.data() + 48, 99);
  const Case cases[] = {{"bad digest", keyed_payload(0x23, 1, 16, true), AuthOutcome::kBadMac},
                        {"unknown key", unknown, AuthOutcome::kUnknownKey},
                        {"MD5 truncated to 20", [] {
                           Bytes p = keyed_payload(0x23, 3, 16);
                           p.resize(p.size() + 4, 0);
                           return p;
                         }(), AuthOutcome::kBadMac}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const Out o = handle_env(ntp_frame(c.payload), env_of(pol));
    ASSERT_EQ(o.v.action, FrameAction::kTransmit);
    EXPECT_EQ(o.v.auth, c.auth);
    EXPECT_EQ(o.v.mac_key, nullptr);
    EXPECT_EQ(o.v.len, 14 + 20 + 8 + 52);
    Bytes r = o.reply();
    stamp_transmit(r.data(), o.v.ntp_offset, kTx);
    EXPECT_TRUE(udp_checksum_ok(r.data() + 14));
    EXPECT_EQ(proto::load_be32(r.data() + o.v.ntp_offset + 48), 0u);  // crypto-NAK
  }
}

TEST(FrameAuth, AuthenticateForwardsOnlyTrustedValidMacsFromPeerClass) {
  const Policy on = auth_policy(true), off = auth_policy(false);
  IpSpec ip = client_ip();
  ip.src = kPeerClassIp;
  auto frame = [&](const Bytes& payload) { return ntp_frame(payload, {.src_port = 123, .dst_port = 123}, ip); };
  for (uint8_t mode : {0x21, 0x22}) {
    SCOPED_TRACE(int{mode});
    // Valid MACs of trusted keys reach the control plane (the peers' lane).
    for (auto [id, digest] : {std::pair<uint32_t, size_t>{1, 16}, {2, 20}}) {
      const Out o = handle_env(frame(keyed_payload(mode, id, digest)), env_of(on));
      EXPECT_EQ(o.v.action, FrameAction::kToControl);
      EXPECT_FALSE(o.v.assoc_lane);
    }
    // No MAC, a bad one, a key we hold but do not trust, an unknown one.
    Bytes unknown = keyed_payload(mode, 1, 16);
    proto::store_be32(unknown.data() + 48, 99);
    for (const Bytes& p : {[&] {
                             Bytes b = chrony_payload();
                             b[0] = mode;
                             return b;
                           }(),
                           keyed_payload(mode, 1, 16, true), keyed_payload(mode, 3, 16), unknown}) {
      EXPECT_DROP(handle_env(frame(p), env_of(on)), DropReason::kNotAuthenticated);
      // Without auth.authenticate the control plane decides.
      EXPECT_EQ(handle_env(frame(p), env_of(off)).v.action, FrameAction::kToControl);
    }
    // A configured [[peer]]'s packets: the control plane checks its key.
    Bytes plain = chrony_payload();
    plain[0] = mode;
    IpSpec peer = client_ip();
    peer.src = kPeerIp;
    const Out o = handle_env(ntp_frame(plain, {.src_port = 123, .dst_port = 123}, peer), env_of(on));
    EXPECT_EQ(o.v.action, FrameAction::kToControl);
    EXPECT_TRUE(o.v.assoc_lane);
  }
}

// A [[peer]] with key 1 (AES128): its endpoint carries the key.
proto::AssocEndpoints keyed_peer_endpoints(uint32_t key_id) {
  proto::AssocEndpoint e = endpoint(kPeerIp, proto::kEndpointSymmetric);
  e.key_id = key_id;
  return endpoints({e, endpoint(kBothIp, proto::kEndpointSymmetric)});
}

TEST(FrameAuth, AKeyedPeersForgeriesSpendNoBudget) {
  // A blind spoofer of the peer's address (port 123 both ways, no secret)
  // floods without the key: every forgery is dropped before the budget, so
  // the real peer's packets still take the associations' lane.
  const Policy pol = auth_policy(false);
  AssocTable assoc = table_of(keyed_peer_endpoints(1));
  PolicyEnv env = env_of(pol);
  env.assoc = &assoc;
  IpSpec ip = client_ip();
  ip.src = kPeerIp;
  auto frame = [&](const Bytes& payload) { return ntp_frame(payload, {.src_port = 123, .dst_port = 123}, ip); };
  for (uint8_t mode : {0x21, 0x22}) {
    SCOPED_TRACE(int{mode});
    Bytes plain = chrony_payload();
    plain[0] = mode;
    Bytes unknown = keyed_payload(mode, 1, 16);
    proto::store_be32(unknown.data() + 48, 99);
    Bytes nak = plain;
    nak.resize(52, 0);  // a crypto-NAK: key ID 0 alone
    // No MAC, a wrong digest, a valid MAC of another key we hold, an
    // unknown key ID, a crypto-NAK.
    const Bytes forgeries[] = {plain, keyed_payload(mode, 1, 16, true), keyed_payload(mode, 2, 20), unknown, nak};
    for (int64_t i = 0; i < 1000; i++) {
      env.now_ns = 5'000'000'000 + i * 1000;  // 1 us apart: far over the budget
      EXPECT_DROP(handle_env(frame(forgeries[i % 5]), env), DropReason::kNotAuthenticated);
    }
    // The real peer, in the same microseconds: a whole burst on its lane.
    const AssocEntry* e = assoc.find(kPeerIp, 123, 123, proto::kEndpointSymmetric);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->key_id, 1u);
    int own_lane = 0;
    for (int i = 0; i < AssocTable::kBudgetBurst; i++) {
      const Out o = handle_env(frame(keyed_payload(mode, 1, 16)), env);
      ASSERT_EQ(o.v.action, FrameAction::kToControl) << i;
      own_lane += o.v.assoc_lane;
      EXPECT_FALSE(o.v.assoc_demoted);
    }
    EXPECT_EQ(own_lane, AssocTable::kBudgetBurst) << "the forgeries spent none of the budget";
    // Its own packets over the budget: the shared lane, counted as demoted.
    const Out over = handle_env(frame(keyed_payload(mode, 1, 16)), env);
    ASSERT_EQ(over.v.action, FrameAction::kToControl);
    EXPECT_FALSE(over.v.assoc_lane);
    EXPECT_TRUE(over.v.assoc_demoted);
    // The next mode starts with a full burst again.
    assoc = table_of(keyed_peer_endpoints(1));
  }
  // The unkeyed peer beside it is not asked for a MAC.
  IpSpec both = client_ip();
  both.src = kBothIp;
  Bytes plain = chrony_payload();
  plain[0] = 0x21;
  const Out o = handle_env(ntp_frame(plain, {.src_port = 123, .dst_port = 123}, both), env);
  EXPECT_EQ(o.v.action, FrameAction::kToControl);
  EXPECT_TRUE(o.v.assoc_lane);
}

TEST(FrameAuth, AKeyedPeerWhoseKeyTheDataplaneLacksIsNotForwarded) {
  // The endpoint names key 9, which the dataplane's keys file does not
  // hold (or there is no keys file): nothing verifies, nothing passes.
  AssocTable assoc = table_of(keyed_peer_endpoints(9));
  IpSpec ip = client_ip();
  ip.src = kPeerIp;
  for (const Policy& pol : {auth_policy(false), lab_policy()}) {
    PolicyEnv env = env_of(pol);
    env.assoc = &assoc;
    const Out o = handle_env(ntp_frame(keyed_payload(0x21, 1, 16), {.src_port = 123, .dst_port = 123}, ip), env);
    EXPECT_DROP(o, DropReason::kNotAuthenticated);
  }
}

TEST(FrameAuth, StatelessModeTwoAnswerIsMacedAndKodIsNot) {
  Policy pol = auth_policy(false);
  pol.answer_unknown_peers = true;
  pol.kod = true;
  const Out o = handle_env(ntp_frame(keyed_payload(0x21, 1, 16)), env_of(pol));
  ASSERT_EQ(o.v.action, FrameAction::kTransmit);
  EXPECT_EQ(o.v.kind, ReplyKind::kNtpPassive);
  ASSERT_NE(o.v.mac_key, nullptr);
  Bytes r = o.reply();
  stamp_transmit(r.data(), o.v.ntp_offset, kTx);
  seal_transmit(r.data(), o.v.ntp_offset, 48, *o.v.mac_key, o.v.mac_digest_bytes);
  EXPECT_TRUE(udp_checksum_ok(r.data() + 14));
  const uint8_t* ntp = r.data() + o.v.ntp_offset;
  EXPECT_EQ(crypto::check_mac(*pol.keys, ntp, 48, ntp + 48, 20).check, crypto::MacCheck::kOk);
  // Over the limit with kod: a 48-byte RATE, no MAC, no key to seal with.
  RateLimiter limiter(1024, tight_limits(), 0x5EED);
  Out k;
  for (int i = 0; i < 64 && k.v.kind != ReplyKind::kKodRate; i++)
    k = handle_env(ntp_frame(keyed_payload(0x23, 1, 16)), env_of(pol, &limiter));
  ASSERT_EQ(k.v.kind, ReplyKind::kKodRate);
  EXPECT_EQ(k.v.mac_key, nullptr);
  EXPECT_EQ(k.v.len, 14 + 20 + 8 + 48);
}

// ------------------------------------------------------------------ NTS (issue 11)

struct NtsLab {
  std::shared_ptr<crypto::CookieKeyRing> ring = std::make_shared<crypto::CookieKeyRing>();
  crypto::NtsKeys keys;
  uint8_t uid[32];
  NtsLab() {
    const uint32_t ids[] = {21, 22};
    uint8_t secrets[2][crypto::kSivKeyBytes];
    for (size_t j = 0; j < crypto::kSivKeyBytes; ++j) {
      secrets[0][j] = static_cast<uint8_t>(j + 1);
      secrets[1][j] = static_cast<uint8_t>(j + 101);
    }
    EXPECT_TRUE(crypto::cookie_ring_init(*ring, ids, secrets, 2, 1));
    for (size_t i = 0; i < crypto::kNtsKeyBytes; ++i) {
      keys.c2s[i] = static_cast<uint8_t>(0x10 + i);
      keys.s2c[i] = static_cast<uint8_t>(0x90 + i);
    }
    for (int i = 0; i < 32; ++i) uid[i] = static_cast<uint8_t>(0x40 + i);
  }
  Bytes request(unsigned placeholders, bool forged = false) const {
    std::vector<uint8_t> cookie = test::nts_cookie_for(*ring, keys);
    if (forged) cookie[60] ^= 1;
    return test::nts_client_request(keys, cookie.data(), cookie.size(), placeholders, uid, kTx).bytes;
  }
};

uint8_t g_nts_seed[32] = {3};

// The worker's steps on an NTS request: handle_frame (the seal's slot in
// env), stamp_transmit, seal_nts_transmit; the frame's checksums and the
// client's check of the authenticator must hold over the final bytes.
TEST(FrameNts, AnNtsRequestIsAnsweredWithNtsStampedThenSealed) {
  const NtsLab lab;
  Policy pol = lab_policy();
  pol.nts_ring = lab.ring;
  crypto::NonceSource rng(g_nts_seed);
  for (unsigned placeholders : {0u, 2u}) {
    SCOPED_TRACE(placeholders);
    NtsSeal seal;
    PolicyEnv env = env_of(pol);
    env.nts_rng = &rng;
    env.nts_seal = &seal;
    const Bytes payload = lab.request(placeholders);
    const Out o = handle_env(ntp_frame(payload), env);
    ASSERT_EQ(o.v.action, FrameAction::kTransmit);
    ASSERT_EQ(o.v.kind, ReplyKind::kNtsReply);
    EXPECT_TRUE(stamps_transmit(o.v.kind));
    EXPECT_EQ(o.v.len, 14 + 20 + 8 + payload.size()) << "as long as the request";
    Bytes r = o.reply();
    stamp_transmit(r.data(), o.v.ntp_offset, kTx);
    seal_nts_transmit(r.data(), o.v.ntp_offset, seal);
    const uint8_t* ip = r.data() + 14;
    EXPECT_TRUE(ipv4_header_ok(ip));
    EXPECT_TRUE(udp_checksum_ok(ip));
    const uint8_t* ntp = r.data() + o.v.ntp_offset;
    EXPECT_EQ(proto::load_ts(ntp + 40), kTx);
    EXPECT_EQ(proto::load_ts(ntp + 24), kTx) << "origin: the client's transmit";
    // The client's check: UID echoed, authenticator open under S2C.
    ASSERT_EQ(get16(ntp + 48), proto::kEfUniqueIdentifier);
    EXPECT_EQ(0, std::memcmp(ntp + 52, lab.uid, 32));
    const size_t auth = 48 + 36;
    ASSERT_EQ(get16(ntp + auth), proto::kEfNtsAuthenticator);
    const size_t ct_len = get16(ntp + auth + 6);
    EXPECT_EQ(ct_len, crypto::kSivTagBytes + (1 + placeholders) * 104);
    crypto::SivKey s2c;
    ASSERT_TRUE(crypto::siv_key_init(s2c, lab.keys.s2c, sizeof lab.keys.s2c));
    std::vector<uint8_t> plain(ct_len - crypto::kSivTagBytes);
    EXPECT_TRUE(crypto::siv_open(s2c, ntp + auth + 8, 16, ntp, auth, ntp + auth + 24, ct_len, plain.data()));
  }
}

TEST(FrameNts, ForgedCookieGetsANakWithRightChecksums) {
  const NtsLab lab;
  Policy pol = lab_policy();
  pol.nts_ring = lab.ring;
  crypto::NonceSource rng(g_nts_seed);
  NtsSeal seal;
  PolicyEnv env = env_of(pol);
  env.nts_rng = &rng;
  env.nts_seal = &seal;
  const Out o = handle_env(ntp_frame(lab.request(1, true)), env);
  ASSERT_EQ(o.v.action, FrameAction::kTransmit);
  EXPECT_EQ(o.v.kind, ReplyKind::kNtsNak);
  EXPECT_EQ(o.v.nts_reason, NtsReason::kBadCookie);
  EXPECT_FALSE(stamps_transmit(o.v.kind)) << "a NAK is complete as built";
  EXPECT_EQ(o.v.len, 14 + 20 + 8 + 48 + 36);
  const uint8_t* ip = o.buf.data() + 14;
  EXPECT_TRUE(ipv4_header_ok(ip));
  EXPECT_TRUE(udp_checksum_ok(ip));
  EXPECT_EQ(get32(o.buf.data() + o.v.ntp_offset + 12), kKissNtsNak);
}

// No cookie keys, or no seal slot (a caller that does not seal): an NTS
// request is an NTPv4 request with extension fields, answered plain.
TEST(FrameNts, WithoutKeysOrASealSlotAnNtsRequestGetsAPlainAnswer) {
  const NtsLab lab;
  crypto::NonceSource rng(g_nts_seed);
  NtsSeal seal;
  {
    const Policy pol = lab_policy();
    PolicyEnv env = env_of(pol);
    env.nts_rng = &rng;
    env.nts_seal = &seal;
    const Out o = handle_env(ntp_frame(lab.request(0)), env);
    ASSERT_EQ(o.v.action, FrameAction::kTransmit);
    EXPECT_EQ(o.v.kind, ReplyKind::kNtp);
    EXPECT_EQ(o.v.len, 90);
  }
  {
    Policy pol = lab_policy();
    pol.nts_ring = lab.ring;
    const Out o = handle_env(ntp_frame(lab.request(0)), env_of(pol));
    EXPECT_EQ(o.v.kind, ReplyKind::kNtp);
  }
}

// ------------------------------------------------------------ interleaved

// A client request from src at receive time rx through handle_frame, with
// origin and receive fields as given (an interleaved client's: the receive
// timestamp of our last answer, and a nonce).
struct XleaveRig {
  explicit XleaveRig(bool xleave = true) : limiter(1024, RateLimitParams{}, 11, xleave) {}
  Policy pol = lab_policy(true);
  RateLimiter limiter;
  Out ask(uint32_t src, proto::NtpTimestamp origin, proto::NtpTimestamp receive, proto::NtpTimestamp rx,
          uint8_t li_vn_mode = 0x23) {
    Bytes payload = chrony_payload();
    payload[0] = li_vn_mode;
    proto::store_ts(payload.data() + proto::offs::kOrigin, origin);
    proto::store_ts(payload.data() + proto::offs::kReceive, receive);
    IpSpec ip = client_ip();
    ip.src = src;
    NeighbourTable nt;
    return handle(ntp_frame(payload, {.src_port = kClientPort}, ip), our_port(), nt, kNow,
                  env_of(pol, &limiter, nullptr, 1'000'000'000), rx);
  }
};

proto::NtpTimestamp field(const Out& o, size_t off) { return proto::load_ts(o.buf.data() + 42 + off); }

TEST(FrameInterleaved, TheNextAnswerCarriesThePreviousOnesRealTransmitTime) {
  XleaveRig rig;
  const auto ts = [](uint64_t v) { return proto::NtpTimestamp::from_raw(v); };
  const proto::NtpTimestamp rx1 = ts(0xE9000000'10000000), rx2 = ts(0xE9000001'20000000), rx3 = ts(0xE9000002'30000000);
  // 1: basic (nothing known of this client): origin is the request's transmit.
  Out a = rig.ask(kClientIp, ts(0x1111), ts(0x2222), rx1);
  ASSERT_EQ(a.v.action, FrameAction::kTransmit);
  ASSERT_NE(a.v.xleave, nullptr) << "an answer of time takes its real transmit time into the client's slot";
  EXPECT_FALSE(a.v.interleaved());
  EXPECT_EQ(a.v.tx_fixed_raw, 0u);
  EXPECT_EQ(field(a, proto::offs::kOrigin), proto::load_ts(golden::kChronyRequest0 + proto::offs::kTransmit));
  EXPECT_EQ(a.v.xleave->rx_raw, rx1.raw());
  // Before the first answer has left, a request naming it is answered basic.
  Out early = rig.ask(kClientIp, rx1, ts(0x3333), rx2);
  EXPECT_FALSE(early.v.interleaved());
  const uint64_t t3 = rx2.raw() + 0x1000;  // when `early` left (transmit_burst writes it)
  early.v.xleave->tx_raw = t3;
  // 2: interleaved: origin echoes the request's receive field, receive is
  // this arrival, transmit the real time the previous answer left.
  Out b = rig.ask(kClientIp, rx2, ts(0x4444), rx3);
  ASSERT_EQ(b.v.action, FrameAction::kTransmit);
  EXPECT_TRUE(b.v.interleaved());
  EXPECT_EQ(b.v.tx_fixed_raw, t3);
  EXPECT_EQ(field(b, proto::offs::kOrigin), ts(0x4444));
  EXPECT_EQ(field(b, proto::offs::kReceive), rx3);
  EXPECT_EQ(b.v.xleave->rx_raw, rx3.raw());
  EXPECT_EQ(b.v.xleave->tx_raw, 0u) << "this answer's own transmit time is still to come";
  stamp_transmit(b.buf.data(), b.v.ntp_offset, ts(b.v.tx_fixed_raw));
  EXPECT_TRUE(udp_checksum_ok(b.buf.data() + 14)) << "the checksum covers the echoed origin";
  EXPECT_LE(b.v.len, 90u);
  // An origin naming an older answer (a lost reply) gets basic mode.
  b.v.xleave->tx_raw = rx3.raw() + 0x1000;
  Out c = rig.ask(kClientIp, rx2, ts(0x5555), ts(rx3.raw() + 0x100000));
  EXPECT_FALSE(c.v.interleaved());
  EXPECT_EQ(field(c, proto::offs::kOrigin), proto::load_ts(golden::kChronyRequest0 + proto::offs::kTransmit));
}

TEST(FrameInterleaved, OnlyNtpv4ClientsTheTableHoldsAndNeverAKod) {
  const auto ts = [](uint64_t v) { return proto::NtpTimestamp::from_raw(v); };
  const proto::NtpTimestamp rx1 = ts(0xE9000000'10000000), rx2 = ts(0xE9000001'20000000);
  {
    // An unlimited class is entered into the table for its slot.
    XleaveRig rig;
    Out a = rig.ask(kSyncIp, ts(1), ts(2), rx1);
    ASSERT_NE(a.v.xleave, nullptr);
    a.v.xleave->tx_raw = rx1.raw() + 7;
    EXPECT_TRUE(rig.ask(kSyncIp, rx1, ts(3), rx2).v.interleaved());
    EXPECT_EQ(rig.limiter.fill(), 1u);
  }
  {
    // NTPv3: RFC 9769 is NTPv4's.
    XleaveRig rig;
    Out a = rig.ask(kClientIp, ts(1), ts(2), rx1, 0x1B);
    ASSERT_EQ(a.v.kind, ReplyKind::kNtp);
    EXPECT_EQ(a.v.xleave, nullptr) << "an NTPv3 answer keeps no slot";
  }
  {
    // Without ntp.interleaved the table has no slots: every answer basic.
    XleaveRig rig(false);
    Out a = rig.ask(kClientIp, ts(1), ts(2), rx1);
    EXPECT_EQ(a.v.xleave, nullptr);
    EXPECT_EQ(rig.ask(kSyncIp, ts(1), ts(2), rx1).v.xleave, nullptr);
    EXPECT_EQ(rig.limiter.fill(), 1u) << "an unlimited client is not entered without slots";
  }
  {
    // A RATE KoD tells no time: the slot keeps the last answer's.
    XleaveRig rig;
    rig.limiter.set_params(tight_limits());
    uint64_t kept = 0;
    int kods = 0;
    for (int i = 0; i < 200 && kods == 0; i++) {
      Out o = rig.ask(kClientIp, ts(1), ts(2), ts(rx1.raw() + static_cast<uint64_t>(i)));
      if (o.v.kind == ReplyKind::kNtp) kept = o.v.xleave->rx_raw;
      if (o.v.kind == ReplyKind::kKodRate) {
        kods++;
        EXPECT_EQ(o.v.xleave, nullptr);
      }
    }
    ASSERT_EQ(kods, 1);
    rig.limiter.enter_v4(kClientIp, 1'000'000'000);
    EXPECT_EQ(rig.limiter.last_xleave()->rx_raw, kept);
  }
}

}  // namespace
}  // namespace ntp::dp
