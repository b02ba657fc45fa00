// ntp-control's NTS-KE server: the answer (pure) and the server on the
// loopback against a GnuTLS client that exports its own keys (RFC 8915
// section 5.1), so that the cookies it gets are checked to hold exactly
// the keys both sides derived.
#include "control/nts_ke_server.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "tests/support/tls_client.h"

namespace ntp::ctl {
namespace {

using test::ke_records;
using test::nts_ke_exchange;

std::shared_ptr<crypto::CookieKeyRing> ring_of(std::initializer_list<uint32_t> ids) {
  auto ring = std::make_shared<crypto::CookieKeyRing>();
  uint32_t id[crypto::kMaxCookieKeys];
  uint8_t secrets[crypto::kMaxCookieKeys][crypto::kSivKeyBytes];
  uint32_t n = 0;
  for (uint32_t i : ids) {
    id[n] = i;
    for (size_t b = 0; b < crypto::kSivKeyBytes; ++b) secrets[n][b] = static_cast<uint8_t>(i * 7 + b);
    ++n;
  }
  EXPECT_TRUE(crypto::cookie_ring_init(*ring, id, secrets, n, n - 1));
  return ring;
}

crypto::NonceSource& nonces() {
  static const uint8_t seed[32] = {1, 2, 3};
  static crypto::NonceSource n(seed);
  return n;
}

proto::KeRequest good_request() {
  const uint8_t req[] = {0x80, 1, 0, 2, 0, 0, 0x80, 4, 0, 2, 0, 15, 0x80, 0, 0, 0};
  return proto::parse_nts_ke_request(req, sizeof req);
}

crypto::NtsKeys some_keys() {
  crypto::NtsKeys k;
  for (size_t i = 0; i < sizeof k.c2s; ++i) {
    k.c2s[i] = static_cast<uint8_t>(i);
    k.s2c[i] = static_cast<uint8_t>(0xff - i);
  }
  return k;
}

// Each cookie opens, under the ring's current key, to the session's keys.
void expect_cookies_hold(const std::vector<std::pair<uint16_t, std::vector<uint8_t>>>& recs,
                         const crypto::CookieKeyRing& ring, const crypto::NtsKeys& keys, uint32_t key_id) {
  unsigned n = 0;
  for (const auto& [type, body] : recs) {
    if (type != proto::kKeNewCookie) continue;
    ++n;
    crypto::NtsKeys got;
    ASSERT_EQ(crypto::cookie_open(ring, body.data(), body.size(), got), crypto::CookieOpen::kOk);
    EXPECT_EQ(0, std::memcmp(got.c2s, keys.c2s, sizeof got.c2s));
    EXPECT_EQ(0, std::memcmp(got.s2c, keys.s2c, sizeof got.s2c));
    EXPECT_EQ((uint32_t{body[0]} << 24) | (uint32_t{body[1]} << 16) | (uint32_t{body[2]} << 8) | body[3], key_id);
  }
  EXPECT_EQ(n, kNtsKeCookies);
}

TEST(NtsKeAnswer, EightCookiesOfTheCurrentKeyAndTheNegotiationRecords) {
  auto ring = ring_of({3, 4});
  const crypto::NtsKeys keys = some_keys();
  const KeAnswer a = nts_ke_answer(good_request(), keys, ring.get(), nonces(), "10.0.1.31", 123);
  EXPECT_FALSE(a.error);
  EXPECT_EQ(a.cookies, kNtsKeCookies);
  const auto recs = ke_records(a.bytes);
  ASSERT_EQ(recs.size(), 3u + kNtsKeCookies + 1);
  EXPECT_EQ(recs[0].first, proto::kKeNextProtocol);
  EXPECT_EQ(recs[1].first, proto::kKeAeadAlgorithm);
  EXPECT_EQ(recs[2].first, proto::kKeNtpv4Server);
  EXPECT_EQ(std::string(recs[2].second.begin(), recs[2].second.end()), "10.0.1.31");
  EXPECT_EQ(recs.back().first, proto::kKeEndOfMessage);
  expect_cookies_hold(recs, *ring, keys, 4);
  // Every cookie has its own nonce.
  EXPECT_NE(recs[3].second, recs[4].second);
}

TEST(NtsKeAnswer, PortRecordOnlyWhenNot123AndNoServerRecordWhenNone) {
  auto ring = ring_of({1});
  const KeAnswer a = nts_ke_answer(good_request(), some_keys(), ring.get(), nonces(), "", 1123);
  const auto recs = ke_records(a.bytes);
  ASSERT_GE(recs.size(), 3u);
  EXPECT_EQ(recs[2].first, proto::kKeNtpv4Port);
  EXPECT_EQ(recs[2].second, (std::vector<uint8_t>{0x04, 0x63}));
  for (const auto& r : recs) EXPECT_NE(r.first, proto::kKeNtpv4Server);
}

TEST(NtsKeAnswer, NoKeyIsAnInternalErrorABadRequestAnErrorNoAeadNoCookies) {
  const KeAnswer none = nts_ke_answer(good_request(), some_keys(), nullptr, nonces(), "", 123);
  EXPECT_TRUE(none.error);
  EXPECT_EQ(ke_records(none.bytes)[0], (std::pair<uint16_t, std::vector<uint8_t>>{proto::kKeError, {0, 2}}));

  const uint8_t bad[] = {0x80, 1, 0, 2, 0, 0, 0x80, 0, 0, 0};  // NTPv4 without an AEAD record
  auto ring = ring_of({1});
  const KeAnswer b = nts_ke_answer(proto::parse_nts_ke_request(bad, sizeof bad), some_keys(), ring.get(), nonces(),
                                   "", 123);
  EXPECT_TRUE(b.error);
  EXPECT_EQ(ke_records(b.bytes)[0], (std::pair<uint16_t, std::vector<uint8_t>>{proto::kKeError, {0, 1}}));

  const uint8_t other_aead[] = {0x80, 1, 0, 2, 0, 0, 0x80, 4, 0, 2, 0, 30, 0x80, 0, 0, 0};
  const KeAnswer c = nts_ke_answer(proto::parse_nts_ke_request(other_aead, sizeof other_aead), some_keys(),
                                   ring.get(), nonces(), "10.0.1.31", 123);
  EXPECT_FALSE(c.error);
  EXPECT_EQ(c.cookies, 0u);
  const auto recs = ke_records(c.bytes);
  ASSERT_EQ(recs.size(), 3u);  // NTPv4, an empty AEAD record (none agreed), End
  EXPECT_TRUE(recs[1].second.empty());
}

// The server on 127.0.0.1, an ephemeral port, in a temporary directory.
class NtsKeServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ntske-XXXXXX";
    dir_ = mkdtemp(tmpl);
    cert_ = test::make_test_certificate();
    test::write_file(dir_ + "/cert.pem", cert_.cert_pem, 0644);
    test::write_file(dir_ + "/key.pem", cert_.key_pem, 0600);
    ring_ = ring_of({10, 11});
  }
  void TearDown() override {
    server_.stop();
    std::system(("rm -rf " + dir_).c_str());
  }
  NtsKeServer::Start start(NtsKeOptions o = {}) {
    o.listen_ip = 0x7f000001;
    o.listen_port = 0;
    if (o.ntp_server.empty()) o.ntp_server = "10.0.1.31";
    std::string err;
    const auto r = server_.start(o, dir_ + "/cert.pem", dir_ + "/key.pem", ring_, err);
    err_ = err;
    return r;
  }
  // Polls (no fixed sleep) until cond holds or 10 s pass.
  template <class F>
  bool eventually(F cond) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < end) {
      if (cond()) return true;
      ::poll(nullptr, 0, 5);
    }
    return cond();
  }

  std::string dir_, err_;
  test::TestCertificate cert_;
  std::shared_ptr<crypto::CookieKeyRing> ring_;
  NtsKeServer server_;
};

TEST_F(NtsKeServerTest, ServesEightCookiesHoldingTheKeysTheClientExported) {
  ASSERT_EQ(start(), NtsKeServer::Start::kOk) << err_;
  const test::KeResult r = nts_ke_exchange(server_.bound_port(), cert_.cert_pem);
  ASSERT_TRUE(r.handshake);
  const auto recs = ke_records(r.response);
  ASSERT_FALSE(recs.empty());
  EXPECT_EQ(recs.back().first, proto::kKeEndOfMessage);
  expect_cookies_hold(recs, *ring_, r.keys, 11);
  EXPECT_TRUE(eventually([&] { return server_.counters().served == 1; }));
  EXPECT_EQ(server_.counters().cookies, kNtsKeCookies);
  EXPECT_EQ(server_.counters().accepted, 1u);
}

TEST_F(NtsKeServerTest, ANewRingSealsTheNextSessionsCookies) {
  ASSERT_EQ(start(), NtsKeServer::Start::kOk) << err_;
  auto rotated = ring_of({11, 12});
  server_.set_ring(rotated);
  const test::KeResult r = nts_ke_exchange(server_.bound_port(), cert_.cert_pem);
  ASSERT_TRUE(r.handshake);
  expect_cookies_hold(ke_records(r.response), *rotated, r.keys, 12);
}

TEST_F(NtsKeServerTest, AClientWithoutAlpnGetsNothingAndIsCounted) {
  ASSERT_EQ(start(), NtsKeServer::Start::kOk) << err_;
  const test::KeResult r = nts_ke_exchange(server_.bound_port(), cert_.cert_pem, nullptr, /*alpn=*/false);
  EXPECT_FALSE(r.handshake);
  EXPECT_TRUE(r.response.empty());
  EXPECT_TRUE(eventually([&] { return server_.counters().handshake_failures == 1; }));
  EXPECT_EQ(server_.counters().served, 0u);
}

TEST_F(NtsKeServerTest, ABadRequestGetsAnErrorRecord) {
  ASSERT_EQ(start(), NtsKeServer::Start::kOk) << err_;
  const std::vector<uint8_t> bad = {0x80, 1, 0, 2, 0, 0, 0x00, 5, 0, 0, 0x80, 0, 0, 0};  // a client's New Cookie
  const test::KeResult r = nts_ke_exchange(server_.bound_port(), cert_.cert_pem, &bad);
  const auto recs = ke_records(r.response);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0], (std::pair<uint16_t, std::vector<uint8_t>>{proto::kKeError, {0, 1}}));
  EXPECT_TRUE(eventually([&] { return server_.counters().bad_requests == 1; }));
}

TEST_F(NtsKeServerTest, ASilentClientIsClosedAtTheTimeoutAndCountsAsOne) {
  NtsKeOptions o;
  o.timeout_s = 0.2;
  ASSERT_EQ(start(o), NtsKeServer::Start::kOk) << err_;
  const int fd = test::connect_tcp(server_.bound_port());
  ASSERT_GE(fd, 0);
  char c;
  EXPECT_EQ(::read(fd, &c, 1), 0);  // the server's close (SO_RCVTIMEO is 10 s)
  ::close(fd);
  EXPECT_TRUE(eventually([&] { return server_.counters().timeouts == 1; }));
  EXPECT_EQ(server_.counters().sessions, 0u);
}

TEST_F(NtsKeServerTest, OneAddressHoldsAQuarterOfTheSessionsTheRestAreClosedAtOnce) {
  NtsKeOptions o;
  o.max_sessions = 8;  // two per address
  ASSERT_EQ(start(o), NtsKeServer::Start::kOk) << err_;
  const int a = test::connect_tcp(server_.bound_port()), b = test::connect_tcp(server_.bound_port());
  ASSERT_TRUE(eventually([&] { return server_.counters().sessions == 2; }));
  const int c = test::connect_tcp(server_.bound_port());
  char x;
  EXPECT_EQ(::read(c, &x, 1), 0);
  EXPECT_TRUE(eventually([&] { return server_.counters().refused == 1; }));
  ::close(a);
  ::close(b);
  ::close(c);
  // Their slots come back: a full exchange works again.
  ASSERT_TRUE(eventually([&] { return server_.counters().sessions == 0; }));
  EXPECT_TRUE(nts_ke_exchange(server_.bound_port(), cert_.cert_pem).handshake);
}

TEST_F(NtsKeServerTest, CredentialsRefusedMissingOrReadableByOthers) {
  NtsKeOptions o;
  std::string err;
  o.listen_ip = 0x7f000001;
  o.listen_port = 0;
  EXPECT_EQ(server_.start(o, dir_ + "/none.pem", dir_ + "/key.pem", ring_, err), NtsKeServer::Start::kBadCredentials);
  EXPECT_NE(err.find("none.pem"), std::string::npos) << err;
  test::write_file(dir_ + "/open.pem", cert_.key_pem, 0644);
  EXPECT_EQ(server_.start(o, dir_ + "/cert.pem", dir_ + "/open.pem", ring_, err), NtsKeServer::Start::kBadCredentials);
  EXPECT_NE(err.find("open.pem"), std::string::npos) << err;
  test::write_file(dir_ + "/junk.pem", "not a key\n", 0600);
  EXPECT_EQ(server_.start(o, dir_ + "/cert.pem", dir_ + "/junk.pem", ring_, err), NtsKeServer::Start::kBadCredentials);
  EXPECT_FALSE(server_.running());
  // A reload with a bad pair keeps the running one.
  ASSERT_EQ(start(), NtsKeServer::Start::kOk) << err_;
  EXPECT_FALSE(server_.set_credentials(dir_ + "/cert.pem", dir_ + "/junk.pem", err));
  EXPECT_TRUE(nts_ke_exchange(server_.bound_port(), cert_.cert_pem).handshake);
}

TEST_F(NtsKeServerTest, APortInUseIsCannotListen) {
  ASSERT_EQ(start(), NtsKeServer::Start::kOk) << err_;
  NtsKeServer second;
  NtsKeOptions o;
  o.listen_ip = 0x7f000001;
  o.listen_port = server_.bound_port();
  std::string err;
  EXPECT_EQ(second.start(o, dir_ + "/cert.pem", dir_ + "/key.pem", ring_, err), NtsKeServer::Start::kCannotListen);
  EXPECT_NE(err.find("127.0.0.1:"), std::string::npos) << err;
}

}  // namespace
}  // namespace ntp::ctl
