// control/ntp/nts_client (NtsSession) and the engine's NTS client
// associations, against the dataplane's own NTS responder as the server
// (its cookies under a ring of the test's, the keys "from NTS-KE"): the
// requests it seals parse and verify there, the answers authenticate here
// and bring their cookies, replays and forgeries are not used, a NAK costs
// the cookies and calls for NTS-KE, and NTS-KE's back-off and negotiation
// records. chronyd's side of it is tests/integration/test_nts_client.py.
#include "control/ntp/nts_client.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "control/ntp/engine.h"
#include "dataplane/nts_responder.h"
#include "proto/inet.h"
#include "proto/ntp_time.h"
#include "tests/support/nts_client.h"

namespace ntp::ctl {
namespace {

constexpr uint32_t kServer = 0x0A000102;  // 10.0.1.2
constexpr int64_t kT0 = 1'798'718'400'000'000'000;

crypto::CookieKeyRing ring_of(uint32_t id) {
  uint8_t secrets[1][crypto::kSivKeyBytes];
  for (size_t j = 0; j < crypto::kSivKeyBytes; ++j) secrets[0][j] = static_cast<uint8_t>(id * 7 + j);
  crypto::CookieKeyRing r;
  EXPECT_TRUE(crypto::cookie_ring_init(r, &id, secrets, 1, 0));
  return r;
}

crypto::NtsKeys keys() {
  crypto::NtsKeys k;
  for (size_t i = 0; i < crypto::kNtsKeyBytes; ++i) {
    k.c2s[i] = static_cast<uint8_t>(0x11 + i);
    k.s2c[i] = static_cast<uint8_t>(0x91 + i);
  }
  return k;
}

// What NTS-KE with the server would give: n cookies of ring holding keys().
NtsKeResult ke_ok(const crypto::CookieKeyRing& ring, unsigned n) {
  NtsKeResult r;
  r.ok = true;
  r.keys = keys();
  for (unsigned i = 0; i < n; ++i) r.cookies.push_back(test::nts_cookie_for(ring, r.keys, static_cast<uint8_t>(i + 1)));
  return r;
}

config::Association nts_server() {
  config::Association a;
  a.address = kServer;
  a.nts = true;
  a.nts_ca_file = "/etc/ca.pem";
  return a;
}

// The dataplane answering buf as its worker does: nts_answer, the stamp,
// nts_seal. Empty: dropped.
struct Server {
  crypto::CookieKeyRing ring = ring_of(7);
  static constexpr uint8_t kSeed[32] = {3};
  crypto::NonceSource rng{kSeed};
  dp::NtsOutcome last = dp::NtsOutcome::kDrop;
  int64_t now_ns = kT0;  // the server's clock: the client's, to the nanosecond
  std::vector<uint8_t> answer(std::vector<uint8_t> pkt) {
    const dp::NtpRequest q = dp::classify_request(pkt.data(), pkt.size());
    EXPECT_TRUE(q.ok);
    const proto::NtsRequestView v = proto::parse_nts_request(pkt.data(), pkt.size(), crypto::kSivTagBytes);
    EXPECT_TRUE(v.ok()) << proto::to_string(v.status);
    if (!v.ok()) return {};
    dp::ReplyParams p;
    p.leap = proto::Leap::kNone;
    p.stratum = 1;
    p.refid = proto::refid_from_ascii("GPS\0");
    p.synchronized = true;
    dp::NtsSeal seal;
    const dp::NtsAnswer a =
        dp::nts_answer(pkt.data(), pkt.size(), q, v, proto::ntp_from_unix_ns(now_ns + 500'000), p, &ring, rng, seal);
    last = a.outcome;
    if (a.outcome == dp::NtsOutcome::kDrop) return {};
    if (a.outcome == dp::NtsOutcome::kReply) {
      proto::store_ts(pkt.data() + 40, proto::ntp_from_unix_ns(now_ns + 510'000));
      dp::nts_seal(pkt.data(), seal);
    }
    EXPECT_LE(a.d.reply_len, pkt.size());
    pkt.resize(a.d.reply_len);
    return pkt;
  }
};

std::vector<uint8_t> request(NtsSession& s, size_t cap = proto::kMaxRingPayload) {
  std::vector<uint8_t> buf(cap, 0);
  buf[0] = 0x23;  // VN 4, mode 3
  proto::store_ts(buf.data() + 40, proto::NtpTimestamp{0x12345678u, 0x9abcdef0u});
  const size_t n = s.seal_request(buf.data(), buf.size());
  buf.resize(n);
  return buf;
}

// NTS-KE asked for at kT0 and answered with r (n cookies of ring unless r is given).
::testing::AssertionResult ke(NtsSession& s, NtsKeResult r) {
  const auto q = s.ke_due(kT0);
  if (!q) return ::testing::AssertionFailure() << "no NTS-KE asked for";
  s.on_ke_result(q->tag, r, kT0);
  return ::testing::AssertionSuccess();
}
::testing::AssertionResult ke(NtsSession& s, const crypto::CookieKeyRing& ring, unsigned n) {
  return ke(s, ke_ok(ring, n));
}

TEST(NtsSession, AsksForNtsKeOnceAndBacksOffAfterFailures) {
  NtsSession s(nts_server(), 5);
  EXPECT_EQ(s.state(), NtsState::kKePending);
  auto q = s.ke_due(kT0);
  ASSERT_TRUE(q);
  EXPECT_NE(q->tag, 0u);
  EXPECT_EQ(q->assoc_id, 5u);
  EXPECT_EQ(q->address, kServer);
  EXPECT_EQ(q->ke_port, 4460);
  EXPECT_EQ(q->ca_file, "/etc/ca.pem");
  EXPECT_FALSE(s.ke_due(kT0 + 60'000'000'000)) << "one at a time";
  NtsKeResult bad;
  bad.error = "TLS handshake: The certificate is NOT trusted.";
  NtsKeResult other = bad;
  s.on_ke_result(q->tag + 1, other, kT0 + 500'000'000);
  EXPECT_TRUE(s.ke_running()) << "another request's result is not this one's";
  s.on_ke_result(q->tag, bad, kT0 + 1'000'000'000);
  EXPECT_EQ(s.state(), NtsState::kKeFailed);
  EXPECT_EQ(s.error(), bad.error);
  EXPECT_EQ(s.counters().ke_failed, 1u);
  // 16 s, then 32 s.
  EXPECT_FALSE(s.ke_due(kT0 + 16'000'000'000));
  q = s.ke_due(kT0 + 17'000'000'000);
  ASSERT_TRUE(q);
  s.on_ke_result(q->tag, bad, kT0 + 17'000'000'000);
  EXPECT_FALSE(s.ke_due(kT0 + 48'000'000'000));
  q = s.ke_due(kT0 + 49'000'000'000);
  ASSERT_TRUE(q);
  Server srv;
  NtsKeResult good = ke_ok(srv.ring, 8);
  s.on_ke_result(q->tag, good, kT0 + 50'000'000'000);
  EXPECT_EQ(s.state(), NtsState::kOk);
  EXPECT_EQ(s.cookies(), 8u);
  EXPECT_TRUE(s.error().empty());
  EXPECT_FALSE(s.ke_due(kT0 + 100'000'000'000)) << "cookies in hand";
  EXPECT_EQ(s.next_ke_ns(), INT64_MAX);
}

TEST(NtsSession, RequestsVerifyAtTheServerAndAnswersBringCookies) {
  Server srv;
  NtsSession s(nts_server(), 1);
  ASSERT_TRUE(ke(s, srv.ring, 2));
  // Two cookies: one goes, and as many placeholders as fit in 512 bytes
  // ask for the store to be refilled.
  const std::vector<uint8_t> pkt = request(s);
  ASSERT_FALSE(pkt.empty());
  EXPECT_LE(pkt.size(), proto::kMaxRingPayload);
  const proto::NtsRequestView v = proto::parse_nts_request(pkt.data(), pkt.size(), crypto::kSivTagBytes);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v.placeholders, 2u) << "what fits next to a 100-byte cookie in 512 bytes";
  EXPECT_EQ(s.cookies(), 1u);
  const std::vector<uint8_t> a = srv.answer(pkt);
  ASSERT_EQ(srv.last, dp::NtsOutcome::kReply);
  EXPECT_EQ(s.check_reply(a.data(), a.size()), NtsReply::kOk);
  EXPECT_EQ(s.cookies(), 4u);
  EXPECT_EQ(s.state(), NtsState::kOk);
  // The same answer again (a replay) is not one to our request now.
  EXPECT_EQ(s.check_reply(a.data(), a.size()), NtsReply::kBad);
  EXPECT_EQ(s.cookies(), 4u);
  // Until eight: then one placeholder less each time, none at eight.
  for (int i = 0; i < 4; ++i) {
    const std::vector<uint8_t> b = srv.answer(request(s));
    ASSERT_EQ(s.check_reply(b.data(), b.size()), NtsReply::kOk);
  }
  EXPECT_EQ(s.cookies(), 8u);
  const std::vector<uint8_t> full = request(s);
  EXPECT_EQ(proto::parse_nts_request(full.data(), full.size(), crypto::kSivTagBytes).placeholders, 0u);
}

TEST(NtsSession, ForgedOrDamagedAnswersAreNotUsed) {
  Server srv;
  NtsSession s(nts_server(), 1);
  ASSERT_TRUE(ke(s, srv.ring, 8));
  const std::vector<uint8_t> a = srv.answer(request(s));
  ASSERT_FALSE(a.empty());
  // A bit of the header (the time!), of the Unique Identifier, of the
  // ciphertext; the authenticator cut off; garbage after it.
  for (size_t at : {size_t{44}, size_t{52}, a.size() - 20}) {
    std::vector<uint8_t> b = a;
    b[at] ^= 0x01;
    EXPECT_EQ(s.check_reply(b.data(), b.size()), NtsReply::kBad) << at;
  }
  const std::vector<uint8_t> cut(a.begin(), a.begin() + 48 + 36);
  EXPECT_EQ(s.check_reply(cut.data(), cut.size()), NtsReply::kBad);
  std::vector<uint8_t> longer = a;
  longer.resize(a.size() + 16, 0);
  proto::write_ef(longer.data() + a.size(), 0x7777, nullptr, 12);
  EXPECT_EQ(s.check_reply(longer.data(), longer.size()), NtsReply::kBad);
  // An unauthenticated copy: the header alone.
  EXPECT_EQ(s.check_reply(a.data(), 48), NtsReply::kBad);
  // None of them spent the Unique Identifier: the real answer still counts.
  EXPECT_EQ(s.check_reply(a.data(), a.size()), NtsReply::kOk);
}

TEST(NtsSession, ACookieTheServerCannotOpenIsNakedAndCallsForNtsKe) {
  Server srv;
  NtsSession s(nts_server(), 1);
  ASSERT_TRUE(ke(s, srv.ring, 8));
  srv.ring = ring_of(8);  // the server rotated its keys past ours (or restarted)
  std::vector<uint8_t> nak = srv.answer(request(s));
  ASSERT_EQ(srv.last, dp::NtsOutcome::kNak);
  // A NAK with another Unique Identifier is somebody else's.
  std::vector<uint8_t> other = nak;
  other[52] ^= 1;
  EXPECT_EQ(s.check_reply(other.data(), other.size()), NtsReply::kBad);
  EXPECT_EQ(s.check_reply(nak.data(), nak.size()), NtsReply::kNak);
  EXPECT_EQ(s.state(), NtsState::kNak);
  EXPECT_EQ(s.counters().naks, 1u);
  EXPECT_EQ(s.cookies(), 7u) << "kept until the next poll: the real answer may still come";
  // No answer came: the next poll drops the cookies and sends nothing.
  EXPECT_TRUE(request(s).empty());
  EXPECT_EQ(s.cookies(), 0u);
  EXPECT_EQ(s.state(), NtsState::kNak);
  // NTS-KE again, after the back-off (no answer ever authenticated with
  // these keys): a server whose cookies never work costs a handshake per
  // back-off, not one per poll.
  EXPECT_FALSE(s.ke_due(kT0 + 10'000'000'000));
  const auto q2 = s.ke_due(kT0 + NtsSession::kKeRetryMinNs);
  ASSERT_TRUE(q2);
  NtsKeResult again = ke_ok(srv.ring, 8);
  s.on_ke_result(q2->tag, again, kT0 + NtsSession::kKeRetryMinNs);
  const std::vector<uint8_t> a = srv.answer(request(s));
  EXPECT_EQ(s.check_reply(a.data(), a.size()), NtsReply::kOk);
  EXPECT_EQ(s.state(), NtsState::kOk);
  EXPECT_EQ(s.next_ke_ns(), INT64_MAX);
}

TEST(NtsSession, AForgedNakDoesNotBeatTheRealAnswer) {
  // The Unique Identifier is in clear: whoever sees our request can NAK it
  // first. The authenticated answer that follows still counts.
  Server srv;
  NtsSession s(nts_server(), 1);
  ASSERT_TRUE(ke(s, srv.ring, 8));
  const std::vector<uint8_t> req = request(s);
  std::vector<uint8_t> forged(req.begin(), req.begin() + 48 + 36);
  forged[1] = 0;                                                   // stratum 0
  proto::store_be16(forged.data() + 12, 0x4E54);                   // "NT"
  proto::store_be16(forged.data() + 14, 0x534E);                   // "SN"
  EXPECT_EQ(s.check_reply(forged.data(), forged.size()), NtsReply::kNak);
  const std::vector<uint8_t> a = srv.answer(req);
  EXPECT_EQ(s.check_reply(a.data(), a.size()), NtsReply::kOk);
  EXPECT_EQ(s.state(), NtsState::kOk);
  EXPECT_EQ(s.cookies(), 8u);
  EXPECT_FALSE(request(s).empty()) << "the cookies are good";
}

TEST(NtsSession, RunningOutOfCookiesSaysSoAndCallsForNtsKe) {
  Server srv;
  NtsSession s(nts_server(), 1);
  ASSERT_TRUE(ke(s, srv.ring, 2));
  EXPECT_FALSE(request(s).empty());
  EXPECT_FALSE(request(s).empty());  // both unanswered: the server is away
  EXPECT_TRUE(request(s).empty());
  EXPECT_EQ(s.state(), NtsState::kNoCookies);
  // These keys never got an answer: the back-off holds the next NTS-KE.
  EXPECT_FALSE(s.ke_due(kT0 + 10'000'000'000));
  EXPECT_TRUE(s.ke_due(kT0 + NtsSession::kKeRetryMinNs));
}

TEST(NtsSession, ARequestThatDoesNotFitIsNotSentAndKeepsItsCookie) {
  Server srv;
  NtsSession s(nts_server(), 1);
  ASSERT_TRUE(ke(s, srv.ring, 3));
  EXPECT_TRUE(request(s, 200).empty());
  EXPECT_EQ(s.cookies(), 3u);
  // Just room for no placeholder.
  const std::vector<uint8_t> pkt = request(s, 48 + 36 + 104 + 40);
  ASSERT_FALSE(pkt.empty());
  EXPECT_EQ(proto::parse_nts_request(pkt.data(), pkt.size(), crypto::kSivTagBytes).placeholders, 0u);
}

TEST(NtsSession, NegotiationRecords) {
  Server srv;
  {
    NtsSession s(nts_server(), 1);
    NtsKeResult r = ke_ok(srv.ring, 8);
    r.ntp_port = 1123;
    r.ntp_server = "10.0.1.2";  // itself: fine
    ASSERT_TRUE(ke(s, r));
    EXPECT_EQ(s.state(), NtsState::kOk);
    EXPECT_EQ(s.ntp_port(), 1123);
  }
  {
    // No Port Negotiation record: the configured port stands.
    config::Association c = nts_server();
    c.port = 1124;
    NtsSession s(c, 1);
    ASSERT_TRUE(ke(s, srv.ring, 8));
    EXPECT_EQ(s.ntp_port(), 1124);
  }
  for (const char* other : {"10.0.1.3", "time.example.net"}) {
    NtsSession s(nts_server(), 1);
    NtsKeResult r = ke_ok(srv.ring, 8);
    r.ntp_server = other;
    ASSERT_TRUE(ke(s, r));
    EXPECT_EQ(s.state(), NtsState::kKeFailed) << other;
    EXPECT_NE(s.error().find("another NTP server"), std::string::npos) << s.error();
    EXPECT_EQ(s.cookies(), 0u);
  }
  NtsSession s(nts_server(), 1);
  const auto q = s.ke_due(kT0);
  ASSERT_TRUE(q);
  NtsKeResult none;
  none.ok = true;
  none.keys = keys();
  s.on_ke_result(q->tag, none, kT0);
  EXPECT_EQ(s.state(), NtsState::kKeFailed);
  EXPECT_EQ(s.error(), "NTS-KE gave no cookies");
}

// ---------------------------------------------------------------------------
// The engine with an NTS [[server]].

struct EngineRig {
  Server srv;
  EngineConfig cfg;
  std::unique_ptr<Engine> e;
  int64_t now = kT0;
  explicit EngineRig(uint16_t port = 123) {
    AssocConfig a;
    static_cast<config::Association&>(a) = nts_server();
    a.port = port;
    a.minpoll_log2 = a.maxpoll_log2 = 4;
    cfg.associations = {a};
    cfg.own_addresses = {0x0A000101};
    e = std::make_unique<Engine>(cfg, 1, now);
  }
  uint32_t id() const { return 1; }
  EngineOutput tick(int64_t dt_ns) {
    now += dt_ns;
    EngineOutput out;
    e->on_timer(now, out);
    return out;
  }
  // The dataplane's round: reports the send, answers, delivers the answer.
  bool exchange(const OutPacket& p, std::vector<uint8_t>* reply_out = nullptr) {
    EngineOutput out;
    proto::TxReport rep{};
    rep.cookie = p.cookie;
    rep.tx_time_ns = now;
    e->on_tx_report(rep, now, out);
    srv.now_ns = now;
    std::vector<uint8_t> q(p.payload.begin(), p.payload.end());
    q.insert(q.end(), p.extensions.begin(), p.extensions.end());
    const std::vector<uint8_t> a = srv.answer(q);
    if (a.empty()) return false;
    if (reply_out) *reply_out = a;
    deliver(a, p.dst_port, p.src_port);
    return true;
  }
  void deliver(const std::vector<uint8_t>& a, uint16_t from_port, uint16_t to_port) {
    proto::RxPacket rx{};
    rx.rx_time_ns = now + 1'000'000;
    rx.src_ip = kServer;
    rx.dst_ip = 0x0A000101;
    rx.src_port = from_port;
    rx.dst_port = to_port;
    rx.len = static_cast<uint16_t>(a.size());
    std::memcpy(rx.payload, a.data(), a.size());
    EngineOutput out;
    e->on_packet(rx, now + 1'000'000, out);
  }
  const AssociationState session() const { return e->sessions(now).at(0); }
};

TEST(EngineNts, NoPacketWithoutCookiesThenAuthenticatedAnswersAreUsed) {
  EngineRig r;
  EngineOutput out = r.tick(0);
  ASSERT_EQ(out.nts_ke.size(), 1u);
  EXPECT_EQ(out.nts_ke[0].assoc_id, r.id());
  EXPECT_EQ(out.nts_ke[0].address, kServer);
  // Its first poll comes before NTS-KE answered: not sent, counted.
  for (int i = 0; i < 20 && r.e->counters().nts_not_sent == 0; ++i) {
    EngineOutput o = r.tick(1'000'000'000);
    EXPECT_TRUE(o.packets.empty());
  }
  EXPECT_GE(r.e->counters().nts_not_sent, 1u);
  EXPECT_EQ(r.session().nts, "ke pending");
  EXPECT_EQ(r.session().auth, AuthState::kPending);

  NtsKeResult ke = ke_ok(r.srv.ring, 8);
  r.e->on_nts_ke_result(r.id(), out.nts_ke.at(0).tag, ke, r.now, out);
  EXPECT_EQ(r.session().nts, "ok");
  EXPECT_EQ(r.session().nts_cookies, 8u);
  EXPECT_EQ(r.session().nts_ke_ok, 1u);
  int answered = 0;
  for (int i = 0; i < 200 && answered < 6; ++i) {
    EngineOutput o = r.tick(1'000'000'000);
    for (const OutPacket& p : o.packets) {
      EXPECT_FALSE(p.stamp_transmit) << "the authenticator covers the transmit timestamp as sent";
      EXPECT_EQ(p.key_id, 0u);
      EXPECT_FALSE(p.extensions.empty());
      answered += r.exchange(p);
    }
  }
  EXPECT_EQ(answered, 6);
  const AssociationState s = r.session();
  EXPECT_EQ(s.auth, AuthState::kOk);
  EXPECT_EQ(s.reach & 1, 1);
  EXPECT_EQ(s.stratum, 1);
  EXPECT_EQ(s.nts_cookies, 8u);
  EXPECT_EQ(r.e->counters().unauthenticated, 0u);
  EXPECT_TRUE(r.e->system_peer()) << "an authenticated NTS source is selected";
}

TEST(EngineNts, UnauthenticatedAnswersAndNaksAreNotUsed) {
  EngineRig r;
  EngineOutput out = r.tick(0);
  NtsKeResult ke = ke_ok(r.srv.ring, 8);
  r.e->on_nts_ke_result(r.id(), out.nts_ke.at(0).tag, ke, r.now, out);
  // A plain NTP answer from the server's address and port: not used.
  for (int i = 0; i < 100; ++i) {
    EngineOutput o = r.tick(1'000'000'000);
    if (o.packets.empty()) continue;
    const OutPacket& p = o.packets[0];
    std::vector<uint8_t> a;
    ASSERT_TRUE(r.exchange(p, &a));  // the real one, counted as a sample
    std::vector<uint8_t> plain(a.begin(), a.begin() + 48);
    r.deliver(plain, p.dst_port, p.src_port);
    break;
  }
  EXPECT_EQ(r.e->counters().unauthenticated, 1u);
  EXPECT_EQ(r.session().auth, AuthState::kOk) << "an unauthenticated packet (forgeable on the path) fails nothing";
  // The server lost its keys: a NAK; the next poll drops the cookies and
  // sends nothing, and NTS-KE is asked for again (at once: these keys had
  // worked).
  r.srv.ring = ring_of(99);
  for (int i = 0; i < 100 && r.e->counters().nts_naks == 0; ++i) {
    EngineOutput o = r.tick(1'000'000'000);
    for (const OutPacket& p : o.packets) r.exchange(p);
  }
  EXPECT_EQ(r.e->counters().nts_naks, 1u);
  AssociationState s = r.session();
  EXPECT_EQ(s.nts, "nak");
  EXPECT_EQ(s.nts_naks, 1u);
  EXPECT_EQ(s.nts_cookies, 7u);
  bool asked = false;
  for (int i = 0; i < 100 && !asked; ++i) {
    EngineOutput o = r.tick(1'000'000'000);
    EXPECT_TRUE(o.packets.empty());
    asked = !o.nts_ke.empty();
  }
  EXPECT_TRUE(asked);
  s = r.session();
  EXPECT_EQ(s.nts_cookies, 0u);
  EXPECT_EQ(s.nts, "nak");
  EXPECT_GE(r.e->counters().nts_not_sent, 1u);
}

TEST(EngineNts, PortNegotiationMovesTheEndpoint) {
  EngineRig r;
  EngineOutput out = r.tick(0);
  EXPECT_EQ(r.e->endpoints().entries[0].remote_port, 123);
  const uint64_t v = r.e->endpoints_version();
  NtsKeResult ke = ke_ok(r.srv.ring, 8);
  ke.ntp_port = 1123;
  r.e->on_nts_ke_result(r.id(), out.nts_ke.at(0).tag, ke, r.now, out);
  EXPECT_EQ(r.e->endpoints().entries[0].remote_port, 1123);
  EXPECT_GT(r.e->endpoints_version(), v);
  for (int i = 0; i < 100; ++i) {
    EngineOutput o = r.tick(1'000'000'000);
    if (o.packets.empty()) continue;
    EXPECT_EQ(o.packets[0].dst_port, 1123);
    EXPECT_TRUE(r.exchange(o.packets[0]));
    EXPECT_EQ(r.session().auth, AuthState::kOk);
    return;
  }
  FAIL() << "no packet";
}

TEST(EngineNts, AResultForAnAssociationGoneIsIgnored) {
  EngineRig r;
  EngineOutput out = r.tick(0);
  EngineConfig none = r.cfg;
  none.associations.clear();
  r.e->reconfigure(none, r.now, out);
  NtsKeResult ke = ke_ok(r.srv.ring, 8);
  r.e->on_nts_ke_result(r.id(), out.nts_ke.at(0).tag, ke, r.now, out);
  EXPECT_EQ(r.e->associations(), 0u);
  for (uint8_t b : ke.keys.c2s) EXPECT_EQ(b, 0) << "wiped";
}

TEST(EngineNts, AReloadThatChangesTheTrustTakesNoResultOfTheOldRequest) {
  // nts_ca_file (or a pin) changed while the old NTS-KE ran: its result was
  // checked against what the operator just replaced, so it is not taken.
  EngineRig r;
  EngineOutput out = r.tick(0);
  const uint64_t old_tag = out.nts_ke.at(0).tag;
  EngineConfig next = r.cfg;
  next.associations[0].nts_ca_file = "/etc/new-ca.pem";
  EngineOutput reload;
  r.e->reconfigure(next, r.now, reload);
  const uint32_t new_id = r.e->sessions(r.now).size() == 1 ? 2 : 0;
  NtsKeResult stale = ke_ok(r.srv.ring, 8);
  r.e->on_nts_ke_result(new_id, old_tag, stale, r.now, reload);
  EXPECT_EQ(r.session().nts, "ke pending");
  EXPECT_EQ(r.session().nts_cookies, 0u);
  EngineOutput o = r.tick(1'000'000);
  ASSERT_EQ(o.nts_ke.size(), 1u);
  EXPECT_EQ(o.nts_ke[0].ca_file, "/etc/new-ca.pem");
  EXPECT_NE(o.nts_ke[0].tag, old_tag);
  NtsKeResult fresh = ke_ok(r.srv.ring, 8);
  r.e->on_nts_ke_result(o.nts_ke[0].assoc_id, o.nts_ke[0].tag, fresh, r.now, o);
  EXPECT_EQ(r.session().nts, "ok");
}

}  // namespace
}  // namespace ntp::ctl
