// tests/bench/loadgen/loadgen.h: ntp-loadgen's client addresses, frames,
// answer validation, rate steps and percentiles.
#include "tests/bench/loadgen/loadgen.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>

#include "dataplane/frame.h"
#include "dataplane/inet.h"

namespace ntp::loadgen {
namespace {

AddressRange range(const char* cidr) {
  std::string err;
  auto r = parse_range(cidr, err);
  EXPECT_TRUE(r) << cidr << ": " << err;
  return r.value_or(AddressRange{});
}

TEST(Loadgen, Ipv4RangeSkipsNetworkAndBroadcast) {
  const AddressRange r = range("10.0.4.77/22");
  EXPECT_EQ(to_string(r.first), "10.0.4.1");
  EXPECT_EQ(r.count, 1022u);
  EXPECT_EQ(to_string(nth_address(r, 1021)), "10.0.7.254");
  EXPECT_EQ(offset_in(r, *parse_address("10.0.7.254")), 1021u);
  EXPECT_FALSE(offset_in(r, *parse_address("10.0.7.255")));  // broadcast
  EXPECT_FALSE(offset_in(r, *parse_address("10.0.4.0")));
  EXPECT_FALSE(offset_in(r, *parse_address("10.0.3.254")));
  EXPECT_EQ(range("10.0.0.5/32").count, 1u);
  EXPECT_EQ(range("10.0.0.4/31").count, 2u);
  std::string err;
  for (const char* bad : {"10.0.0.0", "10.0.0.0/33", "10.0.0/8", "fd00::/63", "fd00::/129", "x/8"})
    EXPECT_FALSE(parse_range(bad, err)) << bad;
}

TEST(Loadgen, Ipv6RangeSkipsSubnetRouterAnycast) {
  const AddressRange r = range("fd00:1::abcd/112");
  EXPECT_EQ(to_string(r.first), "fd00:1::1");
  EXPECT_EQ(r.count, 65535u);
  EXPECT_EQ(to_string(nth_address(r, 65534)), "fd00:1::ffff");
  EXPECT_EQ(offset_in(r, *parse_address("fd00:1::ffff")), 65534u);
  EXPECT_FALSE(offset_in(r, *parse_address("fd00:1::1:0")));
  EXPECT_FALSE(offset_in(r, *parse_address("fd00:2::1")));
  EXPECT_FALSE(offset_in(r, *parse_address("10.0.0.1")));
  EXPECT_EQ(range("fd00::/64").count, (uint64_t{1} << 32) - 1);  // capped: more than any run uses
}

TEST(Loadgen, ClientsRoundTripThroughAddressAndPort) {
  std::string err;
  // 10 + 2 addresses, 100 clients: 9 ports each (the last partly used).
  auto s = ClientSet::make({range("10.0.1.0/28") /* 14 */, range("10.0.2.8/31")}, 100, 5000, err);
  ASSERT_TRUE(s) << err;
  EXPECT_EQ(s->addresses(), 16u);
  std::set<std::pair<uint32_t, uint16_t>> seen;
  for (uint32_t c = 0; c < 100; c++) {
    const Endpoint e = s->endpoint(c);
    EXPECT_TRUE(seen.insert({e.addr.v4, e.port}).second) << c;
    EXPECT_EQ(s->client_of(e.addr, e.port), c);
    EXPECT_TRUE(s->has_address(e.addr));
  }
  EXPECT_EQ(to_string(s->endpoint(14).addr), "10.0.2.8");
  EXPECT_EQ(s->endpoint(16).port, 5001);
  // Client 100 would be address 4, port 5006: past the last client.
  EXPECT_FALSE(s->client_of(s->endpoint(4).addr, 5006));
  EXPECT_FALSE(s->client_of(s->endpoint(4).addr, 4999));
  EXPECT_FALSE(s->client_of(*parse_address("10.0.1.15"), 5000));  // broadcast of the /28
  // Fewer clients than addresses: only the used ones are ours (ARP).
  auto few = ClientSet::make({range("10.0.1.0/24")}, 3, 1024, err);
  ASSERT_TRUE(few);
  EXPECT_TRUE(few->has_address(*parse_address("10.0.1.3")));
  EXPECT_FALSE(few->has_address(*parse_address("10.0.1.4")));
  // Too many clients for the ports.
  EXPECT_FALSE(ClientSet::make({range("10.0.1.1/32")}, 70000, 1024, err));
  EXPECT_FALSE(ClientSet::make({range("10.0.1.1/32"), range("fd00::1/128")}, 2, 1024, err));
}

TEST(Loadgen, HeaderChecks) {
  proto::NtpHeader h;
  h.mode = proto::Mode::kServer;
  h.stratum = 2;
  h.leap = proto::Leap::kNone;
  const Expectation any;
  EXPECT_EQ(check_header(h, any), Invalid::kNone);
  Expectation three;
  three.stratum_min = three.stratum_max = 3;
  EXPECT_EQ(check_header(h, three), Invalid::kStratum);
  for (uint8_t st : {0, 16}) {
    h.stratum = st;
    EXPECT_EQ(check_header(h, any), Invalid::kStratum) << int{st};
  }
  h.stratum = 1;
  h.leap = proto::Leap::kUnsynchronized;
  EXPECT_EQ(check_header(h, any), Invalid::kLeap);
  Expectation unsync;
  unsync.allow_unsynchronized = true;
  EXPECT_EQ(check_header(h, unsync), Invalid::kNone);
  h.leap = proto::Leap::kInsert;
  for (auto m : {proto::Mode::kClient, proto::Mode::kSymmetricPassive, proto::Mode::kBroadcast}) {
    h.mode = m;
    EXPECT_EQ(check_header(h, any), Invalid::kMode);
  }
}

TEST(Loadgen, OriginNamesTheRequest) {
  Nonce n{0x8123456789ABCDEFULL};
  EXPECT_EQ(n.decode(n.encode(42)), 42u);
  EXPECT_NE(n.encode(0), 0u);
  EXPECT_EQ(to_u64(from_u64(n.encode(7))), n.encode(7));
  // 10 clients; client 3 sent seq 13 then 23; 30 sent in all.
  ClientSlots s;
  s.record(3, 100, 0);
  s.record(13, 200, 0);
  s.record(23, 300, 1);
  EXPECT_EQ(match_origin(s, 23, 3, 10, 30), Match::kLast);
  EXPECT_EQ(match_origin(s, 13, 3, 10, 30), Match::kBefore);
  EXPECT_EQ(match_origin(s, 3, 3, 10, 30), Match::kOlder);
  EXPECT_EQ(match_origin(s, 24, 3, 10, 30), Match::kNone);  // another client's
  EXPECT_EQ(match_origin(s, 33, 3, 10, 30), Match::kNone);  // not sent yet
  EXPECT_EQ(match_origin(s, n.decode(0), 3, 10, 30), Match::kNone);  // origin 0: a server that copied nothing
  EXPECT_EQ(s.before.sent_tsc, 200u);
  EXPECT_FALSE(s.last.answered);
}

// An answer as a server would build it from our request: addresses and
// ports swapped, mode 4, origin = the request's transmit.
std::vector<uint8_t> answer_to(const uint8_t* req, size_t len, bool v6, uint8_t stratum) {
  std::vector<uint8_t> a(req, req + len);
  uint8_t tmp[16];
  std::memcpy(tmp, a.data(), 6);
  std::memcpy(a.data(), a.data() + 6, 6);
  std::memcpy(a.data() + 6, tmp, 6);
  const size_t ip = 14, alen = v6 ? 16 : 4, src = v6 ? ip + 8 : ip + 12, udp = ip + (v6 ? 40 : 20);
  std::memcpy(tmp, a.data() + src, alen);
  std::memcpy(a.data() + src, a.data() + src + alen, alen);
  std::memcpy(a.data() + src + alen, tmp, alen);
  std::swap(a[udp], a[udp + 2]);
  std::swap(a[udp + 1], a[udp + 3]);
  uint8_t* ntp = a.data() + udp + 8;
  proto::NtpHeader h = proto::read_header(ntp);
  h.origin = h.transmit;
  h.transmit = {1, 2};
  h.mode = proto::Mode::kServer;
  h.stratum = stratum;
  h.leap = proto::Leap::kNone;
  proto::write_header(h, ntp);
  // The UDP checksum again (over IPv6 with the pseudo-header of the swapped addresses: same sum).
  proto::store_be16(a.data() + udp + 6, 0);
  uint64_t sum = dp::csum_add(0, a.data() + udp, 56);
  if (v6) {
    sum = dp::csum_add(sum, a.data() + ip + 8, 32) + 56 + 17;
  } else {
    sum += dp::pseudo_header_sum(proto::load_be32(a.data() + ip + 12), proto::load_be32(a.data() + ip + 16), 17, 56);
  }
  proto::store_be16(a.data() + udp + 6, dp::csum_finish(sum));
  return a;
}

TEST(Loadgen, RequestParsesAndItsAnswerValidates) {
  for (bool v6 : {false, true}) {
    FrameSpec f;
    std::memcpy(f.src_mac, "\x02\x00\x00\x00\x00\x01", 6);
    std::memcpy(f.dst_mac, "\x02\x00\x00\x00\x00\x02", 6);
    f.server = *parse_address(v6 ? "fd00::1f" : "10.0.1.31");
    const Endpoint client{*parse_address(v6 ? "fd00::1:7" : "10.0.1.200"), 40000};
    uint8_t buf[kMaxRequestFrameLen];
    const size_t len = build_request(buf, f, client, 0x8000000000000005ULL);
    EXPECT_EQ(len, v6 ? 110u : 90u);
    // The request as the server sees it: valid checksums, mode 3, our transmit.
    RxFrame req = parse_frame(buf, len);
    ASSERT_EQ(req.kind, FrameKind::kUdp);
    EXPECT_TRUE(req.checksum_ok);
    EXPECT_EQ(req.src, client.addr);
    EXPECT_EQ(req.dst, f.server);
    EXPECT_EQ(req.dst_port, 123);
    ASSERT_EQ(req.payload_len, 48u);
    auto parsed = proto::parse({req.payload, req.payload_len});
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(parsed.packet.header.mode, proto::Mode::kClient);
    EXPECT_EQ(to_u64(parsed.packet.header.transmit), 0x8000000000000005ULL);

    std::vector<uint8_t> ans = answer_to(buf, len, v6, 2);
    RxFrame a = parse_frame(ans.data(), ans.size());
    ASSERT_EQ(a.kind, FrameKind::kUdp);
    EXPECT_TRUE(a.checksum_ok);
    EXPECT_EQ(a.dst, client.addr);
    EXPECT_EQ(a.dst_port, 40000);
    EXPECT_EQ(a.src_port, 123);
    const proto::NtpHeader h = proto::read_header(a.payload);
    EXPECT_EQ(to_u64(h.origin), 0x8000000000000005ULL);
    EXPECT_EQ(check_header(h, Expectation{}), Invalid::kNone);
    // One bit flipped in the answer: the checksum says so.
    ans[ans.size() - 1] ^= 1;
    EXPECT_FALSE(parse_frame(ans.data(), ans.size()).checksum_ok) << v6;
  }
}

TEST(Loadgen, TemplateWritesWhatBuildRequestBuilds) {
  std::mt19937_64 rng(7);
  for (bool v6 : {false, true}) {
    FrameSpec f;
    std::memcpy(f.src_mac, "\x02\x00\x00\x00\x00\x01", 6);
    std::memcpy(f.dst_mac, "\x02\x00\x00\x00\x00\x02", 6);
    f.server = *parse_address(v6 ? "fd00::1f" : "10.0.1.31");
    const RequestTemplate t(f);
    std::string err;
    auto clients = ClientSet::make({range(v6 ? "fd00::8000:0/97" : "10.0.128.0/17")}, 100000, 1024, err);
    ASSERT_TRUE(clients) << err;
    ClientSet::Cursor c = clients->begin();
    for (uint32_t i = 0; i < 300000; i++, clients->advance(c)) {
      ASSERT_EQ(c.client, i % 100000);
      const Endpoint e = clients->endpoint(c.client);
      ASSERT_EQ(clients->address(c.address), e.addr);
      ASSERT_EQ(c.port, e.port);
      if (i % 97 != 0) continue;  // the frames of a sample
      const uint64_t transmit = rng();
      uint8_t want[kMaxRequestFrameLen], got[kMaxRequestFrameLen];
      const size_t n = build_request(want, f, e, transmit);
      ASSERT_EQ(t.write(got, e.addr, e.port, transmit), n);
      ASSERT_EQ(std::memcmp(want, got, n), 0) << v6 << " client " << c.client;
    }
  }
}

TEST(Loadgen, ArpRequestForAClientGetsAReply) {
  const uint8_t server_mac[6] = {2, 0, 0, 0, 0, 9}, our_mac[6] = {2, 0, 0, 0, 0, 1};
  uint8_t buf[64], out[64];
  ntp::dp::build_arp_request(buf, server_mac, 0x0A00011F, 0x0A0001C8);  // who has 10.0.1.200, tell 10.0.1.31
  RxFrame f = parse_frame(buf, 42);
  ASSERT_EQ(f.kind, FrameKind::kArpRequest);
  EXPECT_EQ(f.dst.v4, 0x0A0001C8u);
  EXPECT_EQ(std::memcmp(f.lladdr, server_mac, 6), 0);
  ASSERT_EQ(build_arp_reply(out, f, our_mac), 42u);
  RxFrame r = parse_frame(out, 42);
  ASSERT_EQ(r.kind, FrameKind::kArpReply);
  EXPECT_EQ(r.src.v4, 0x0A0001C8u);  // 10.0.1.200 is at our MAC
  EXPECT_EQ(r.dst.v4, 0x0A00011Fu);
  EXPECT_EQ(std::memcmp(r.lladdr, our_mac, 6), 0);
  EXPECT_EQ(std::memcmp(out, server_mac, 6), 0);
}

TEST(Loadgen, NeighbourSolicitationForAClientGetsAnAdvertisement) {
  const uint8_t server_mac[6] = {2, 0, 0, 0, 0, 9}, our_mac[6] = {2, 0, 0, 0, 0, 1};
  const Address server = *parse_address("fd00::1f"), client = *parse_address("fd00::1:7");
  uint8_t buf[128], out[128];
  const size_t n = build_neighbour_solicitation(buf, server_mac, server, client);
  EXPECT_EQ(std::memcmp(buf, "\x33\x33\xff\x01\x00\x07", 6), 0);
  RxFrame f = parse_frame(buf, n);
  ASSERT_EQ(f.kind, FrameKind::kNeighbourSolicitation);
  EXPECT_EQ(f.dst, client);
  EXPECT_EQ(f.src, server);
  EXPECT_TRUE(f.has_lladdr);
  const size_t m = build_neighbour_advertisement(out, f, our_mac);
  RxFrame a = parse_frame(out, m);  // parse_frame checks its checksum and hop limit
  ASSERT_EQ(a.kind, FrameKind::kNeighbourAdvertisement);
  EXPECT_EQ(a.dst, client);
  EXPECT_EQ(a.src, client);
  ASSERT_TRUE(a.has_lladdr);
  EXPECT_EQ(std::memcmp(a.lladdr, our_mac, 6), 0);
  EXPECT_EQ(std::memcmp(out, server_mac, 6), 0);
  out[m - 1] ^= 1;  // a corrupted one is not taken
  EXPECT_EQ(parse_frame(out, m).kind, FrameKind::kOther);
}

TEST(Loadgen, Rates) {
  std::string err;
  EXPECT_EQ(parse_rates("5000", err), std::vector<double>{5000});
  auto r = parse_rates("1000:5000:x1.5", err);
  ASSERT_TRUE(r) << err;
  EXPECT_EQ(*r, (std::vector<double>{1000, 1500, 2250, 3375}));
  EXPECT_EQ(parse_rates("100:300:+100", err), (std::vector<double>{100, 200, 300}));
  for (const char* bad : {"", "0", "-5", "1000:500:x2", "1000:5000:x1", "1000:5000:1.5", "1000:5000", "1e3:1e30:x1.01"})
    EXPECT_FALSE(parse_rates(bad, err)) << bad;
  EXPECT_EQ(parse_mac("02:00:0a:FF:00:01"), (std::array<uint8_t, 6>{2, 0, 0x0a, 0xff, 0, 1}));
  EXPECT_FALSE(parse_mac("02:00:0a:FF:00"));
  EXPECT_FALSE(parse_mac("02-00-0a-FF-00-01"));
}

TEST(Loadgen, PercentilesWithinABucket) {
  LatencyHistogram h;
  EXPECT_EQ(h.quantile(0.5), 0u);
  for (uint64_t v = 1; v <= 100000; v++) h.add(v * 100);  // 100 ns .. 10 ms, uniform
  EXPECT_EQ(h.count(), 100000u);
  EXPECT_EQ(h.max(), 10000000u);
  EXPECT_EQ(h.min(), 100u);
  for (double q : {0.01, 0.5, 0.9, 0.99, 0.999}) {
    const double want = q * 1e7, got = static_cast<double>(h.quantile(q));
    EXPECT_NEAR(got, want, want / 64) << q;
  }
  EXPECT_EQ(h.quantile(1.0), 10000000u);
  // Every value lies in its bucket: low(b) <= v < low(b + 1).
  std::mt19937_64 rng(1);
  for (int i = 0; i < 100000; i++) {
    const uint64_t v = rng() >> (rng() % 64);
    const size_t b = LatencyHistogram::bucket_of(v);
    ASSERT_LT(b, LatencyHistogram::kBuckets);
    EXPECT_LE(LatencyHistogram::bucket_low(b), v);
    if (b + 1 < LatencyHistogram::kBuckets) {
      EXPECT_LT(v, LatencyHistogram::bucket_low(b + 1));
    }
  }
  h.clear();
  h.add(5);
  EXPECT_EQ(h.quantile(0.99), 5u);
}

}  // namespace
}  // namespace ntp::loadgen
