// ntp-control's NTS-KE client against its own NTS-KE server on the
// loopback: the keys it exports are the ones the server sealed into the
// cookies, the certificate is checked against the name or a pin, and every
// way an exchange fails (refused, silent, untrusted, an Error record) says
// why within the job's timeout. Then the background runner.
#include "control/nts_ke_client.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "control/nts_ke_server.h"
#include "hwclock/tsc.h"
#include "proto/inet.h"
#include "proto/nts.h"
#include "tests/support/nts_client.h"
#include "tests/support/test_ca.h"
#include "tests/support/tls_client.h"

namespace ntp::ctl {
namespace {

constexpr uint32_t kLoopback = 0x7f000001;

std::shared_ptr<crypto::CookieKeyRing> ring_of(uint32_t id) {
  auto ring = std::make_shared<crypto::CookieKeyRing>();
  uint8_t secret[1][crypto::kSivKeyBytes];
  for (size_t b = 0; b < crypto::kSivKeyBytes; ++b) secret[0][b] = static_cast<uint8_t>(id * 5 + b);
  EXPECT_TRUE(crypto::cookie_ring_init(*ring, &id, secret, 1, 0));
  return ring;
}

// A TCP port on 127.0.0.1 bound by a socket of its own (closed at the end):
// listening, it completes connections and never says a word; not
// listening, it refuses them.
struct LocalPort {
  int fd = -1;
  uint16_t port = 0;
  explicit LocalPort(bool listening) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(kLoopback);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && (!listening || ::listen(fd, 16) == 0) &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
      port = ntohs(a.sin_port);
  }
  ~LocalPort() { ::close(fd); }
};

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

class NtsKeClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ntskec-XXXXXX";
    dir_ = mkdtemp(tmpl);
    // As deployed: a CA, and the server's certificate it signed for a name
    // and the address.
    const test::TestCertificate ca = test::make_test_ca("NTS Test CA");
    cert_ = test::make_test_server_certificate(ca, "ntske.test", kLoopback);
    test::write_file(dir_ + "/ca.pem", ca.cert_pem, 0644);
    test::write_file(dir_ + "/cert.pem", cert_.cert_pem, 0644);
    test::write_file(dir_ + "/key.pem", cert_.key_pem, 0600);
    test::write_file(dir_ + "/other-ca.pem", test::make_test_ca("Other CA").cert_pem, 0644);
    ring_ = ring_of(21);
    NtsKeOptions o;
    o.listen_ip = kLoopback;
    o.listen_port = 0;
    o.ntp_server = "10.0.1.31";
    std::string err;
    ASSERT_EQ(server_.start(o, dir_ + "/cert.pem", dir_ + "/key.pem", ring_, err), NtsKeServer::Start::kOk) << err;
  }
  void TearDown() override {
    server_.stop();
    std::system(("rm -rf " + dir_).c_str());
  }
  // A job for our server, trusting its CA; the timeout a ceiling
  // a loaded machine does not reach.
  NtsKeJob job() const {
    NtsKeJob j;
    j.id = 7;
    j.server_ip = kLoopback;
    j.port = server_.bound_port();
    j.ca_file = dir_ + "/ca.pem";
    j.timeout_s = 3;
    j.bound_ns = 123456789;
    return j;
  }

  std::string dir_, err_;
  test::TestCertificate cert_;
  std::shared_ptr<crypto::CookieKeyRing> ring_;
  NtsKeServer server_;
};

TEST_F(NtsKeClientTest, EightCookiesHoldingTheKeysBothSidesDerived) {
  const NtsKeOutcome o = run_nts_ke(job());
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_TRUE(o.error.empty());
  EXPECT_EQ(o.id, 7u);
  EXPECT_EQ(o.bound_ns, 123456789);
  ASSERT_EQ(o.cookies.size(), kNtsKeCookies);
  const crypto::NtsKeys zero;
  EXPECT_NE(0, std::memcmp(o.keys.c2s, zero.c2s, sizeof zero.c2s));
  EXPECT_NE(0, std::memcmp(o.keys.c2s, o.keys.s2c, sizeof o.keys.s2c));
  for (const auto& c : o.cookies) {
    crypto::NtsKeys sealed;
    ASSERT_EQ(crypto::cookie_open(*ring_, c.data(), c.size(), sealed), crypto::CookieOpen::kOk);
    EXPECT_EQ(0, std::memcmp(sealed.c2s, o.keys.c2s, sizeof sealed.c2s));
    EXPECT_EQ(0, std::memcmp(sealed.s2c, o.keys.s2c, sizeof sealed.s2c));
  }
  EXPECT_EQ(o.ntp_server, "10.0.1.31");
  EXPECT_EQ(o.ntp_port, 0) << "no Port Negotiation record (ours sends one only for a port other than 123)";
  EXPECT_GT(o.elapsed_s, 0);
  EXPECT_LT(o.elapsed_s, 3);
  EXPECT_TRUE(eventually([&] { return server_.counters().served == 1; }));
  // A second exchange: other keys.
  const NtsKeOutcome again = run_nts_ke(job());
  ASSERT_TRUE(again.ok) << again.error;
  EXPECT_NE(0, std::memcmp(again.keys.c2s, o.keys.c2s, sizeof o.keys.c2s));
}

TEST_F(NtsKeClientTest, PortNegotiationAndNoServerRecord) {
  NtsKeOptions o;
  o.ntp_port = 1123;  // no ntp_server: none named
  server_.set_options(o);
  const NtsKeOutcome r = run_nts_ke(job());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(r.ntp_server.empty());
  EXPECT_EQ(r.ntp_port, 1123);
}

TEST_F(NtsKeClientTest, TheCertificateMustNameTheServer) {
  NtsKeJob j = job();
  j.name = "ntske.test";  // its DNS SAN (and the SNI)
  EXPECT_TRUE(run_nts_ke(j).ok);
  j.name = "ntske.test.";  // fully qualified: the same name
  EXPECT_TRUE(run_nts_ke(j).ok);
  j.name = "127.0.0.1";  // as the empty name: the address, against the IP SAN
  EXPECT_TRUE(run_nts_ke(j).ok);
  j.name = "localhost";  // not in the certificate
  const NtsKeOutcome o = run_nts_ke(j);
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.error.rfind("TLS handshake: ", 0), 0u) << o.error;
  EXPECT_NE(o.error.find("does not match"), std::string::npos) << o.error;
  EXPECT_TRUE(o.cookies.empty());
}

TEST_F(NtsKeClientTest, AnUntrustedCertificateFailsTheHandshake) {
  NtsKeJob j = job();
  j.ca_file = dir_ + "/other-ca.pem";
  const NtsKeOutcome o = run_nts_ke(j);
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.error, "TLS handshake: The certificate is NOT trusted. The certificate issuer is unknown.") << o.error;
  const crypto::NtsKeys zero;
  EXPECT_EQ(0, std::memcmp(o.keys.c2s, zero.c2s, sizeof zero.c2s));
  EXPECT_EQ(server_.counters().served, 0u);
  // Trust anchors that are not there.
  j.ca_file = dir_ + "/none.pem";
  EXPECT_NE(run_nts_ke(j).error.find("none.pem"), std::string::npos);
}

TEST_F(NtsKeClientTest, APinnedKeyNeedsNoChain) {
  const std::string pin = nts_ke_spki_sha256(cert_.cert_pem);
  ASSERT_EQ(pin.size(), 64u);
  NtsKeJob j = job();
  j.ca_file = dir_ + "/other-ca.pem";  // would fail the chain: not consulted with a pin
  j.pin_sha256 = pin;
  const NtsKeOutcome o = run_nts_ke(j);
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_EQ(o.cookies.size(), kNtsKeCookies);
  for (char& c : j.pin_sha256) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(run_nts_ke(j).ok) << "hex in either case";

  j.pin_sha256 = nts_ke_spki_sha256(test::make_test_ca("NTS Test CA").cert_pem);  // another key
  const NtsKeOutcome wrong = run_nts_ke(j);
  EXPECT_FALSE(wrong.ok);
  EXPECT_EQ(wrong.error, "certificate pin mismatch");
  j.pin_sha256 = "abc";
  EXPECT_EQ(run_nts_ke(j).error, "pin_sha256: not 64 hex digits");
}

TEST(NtsKeSpki, TheHashOfTheSubjectPublicKeyInfoFromPemOrDer) {
  const test::TestCertificate c = test::make_test_certificate();
  const std::string pem_pin = nts_ke_spki_sha256(c.cert_pem);
  // GnuTLS's own key ID with SHA-256 is the same hash of the same DER.
  gnutls_x509_crt_t crt;
  gnutls_x509_crt_init(&crt);
  gnutls_datum_t d{reinterpret_cast<unsigned char*>(const_cast<char*>(c.cert_pem.data())),
                   static_cast<unsigned>(c.cert_pem.size())};
  ASSERT_EQ(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
  unsigned char id[32];
  size_t id_len = sizeof id;
  ASSERT_EQ(gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, id, &id_len), 0);
  std::string hex;
  for (size_t i = 0; i < id_len; ++i) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", id[i]);
    hex += b;
  }
  EXPECT_EQ(pem_pin, hex);
  gnutls_datum_t der{};
  ASSERT_EQ(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der), 0);
  EXPECT_EQ(nts_ke_spki_sha256(std::string(reinterpret_cast<const char*>(der.data), der.size)), pem_pin);
  gnutls_free(der.data);
  gnutls_x509_crt_deinit(crt);
  EXPECT_EQ(nts_ke_spki_sha256("not a certificate"), "");
}

TEST_F(NtsKeClientTest, ASelfSignedCertificateAsItsOwnCa) {
  const test::TestCertificate self = test::make_test_certificate();  // CN and IP SAN 127.0.0.1, CA:TRUE
  test::write_file(dir_ + "/self.pem", self.cert_pem, 0644);
  test::write_file(dir_ + "/self.key", self.key_pem, 0600);
  ASSERT_TRUE(server_.set_credentials(dir_ + "/self.pem", dir_ + "/self.key", err_)) << err_;
  NtsKeJob j = job();
  j.ca_file = dir_ + "/self.pem";
  const NtsKeOutcome o = run_nts_ke(j);
  ASSERT_TRUE(o.ok) << o.error;
  EXPECT_EQ(o.cookies.size(), kNtsKeCookies);
}

// A TLS 1.3 server on a port of its own that agrees no ALPN protocol (an
// HTTPS server, say): one handshake, then it waits for the client to go.
TEST_F(NtsKeClientTest, AServerWithoutNtske1IsRefusedAfterTheHandshake) {
  const LocalPort tls(/*listening=*/true);
  std::thread server([&] {
    const int fd = ::accept(tls.fd, nullptr, nullptr);
    if (fd < 0) return;
    gnutls_certificate_credentials_t cred;
    gnutls_certificate_allocate_credentials(&cred);
    gnutls_datum_t c{reinterpret_cast<unsigned char*>(cert_.cert_pem.data()), static_cast<unsigned>(cert_.cert_pem.size())};
    gnutls_datum_t k{reinterpret_cast<unsigned char*>(cert_.key_pem.data()), static_cast<unsigned>(cert_.key_pem.size())};
    gnutls_certificate_set_x509_key_mem(cred, &c, &k, GNUTLS_X509_FMT_PEM);
    gnutls_session_t s;
    gnutls_init(&s, GNUTLS_SERVER);
    gnutls_priority_set_direct(s, "NORMAL:-VERS-ALL:+VERS-TLS1.3", nullptr);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
    gnutls_transport_set_int(s, fd);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int r;
    do r = gnutls_handshake(s);
    while (r < 0 && !gnutls_error_is_fatal(r));
    uint8_t buf[256];
    while (r == 0 && gnutls_record_recv(s, buf, sizeof buf) > 0) {
    }
    gnutls_deinit(s);
    gnutls_certificate_free_credentials(cred);
    ::close(fd);
  });
  NtsKeJob j = job();
  j.port = tls.port;
  const NtsKeOutcome o = run_nts_ke(j);
  server.join();
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.error, "ALPN ntske/1 not agreed");
}

TEST_F(NtsKeClientTest, AnErrorRecordIsTheServersWord) {
  server_.set_ring(nullptr);  // no cookie key: an Internal Server Error
  const NtsKeOutcome o = run_nts_ke(job());
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.error, "server: Error record 2 (internal server error)");
}

TEST(NtsKeClientFailures, ConnectionRefused) {
  const LocalPort closed(/*listening=*/false);
  ASSERT_NE(closed.port, 0);
  NtsKeJob j;
  j.server_ip = kLoopback;
  j.port = closed.port;
  j.timeout_s = 0.5;
  const NtsKeOutcome o = run_nts_ke(j);
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.error, "connect: Connection refused");
}

TEST(NtsKeClientFailures, ASilentServerTimesOutAtTheDeadline) {
  const LocalPort silent(/*listening=*/true);  // the kernel accepts; nobody speaks TLS
  ASSERT_NE(silent.port, 0);
  NtsKeJob j;
  j.server_ip = kLoopback;
  j.port = silent.port;
  j.pin_sha256 = std::string(64, 'a');  // no trust store to load
  j.timeout_s = 0.3;
  const double t0 = hwclock::monotonic_s();
  const NtsKeOutcome o = run_nts_ke(j);
  const double took_s = hwclock::monotonic_s() - t0;
  EXPECT_FALSE(o.ok);
  EXPECT_EQ(o.error, "timeout");
  EXPECT_GE(took_s, 0.29);
  EXPECT_LT(took_s, 1.3);
}

TEST_F(NtsKeClientTest, TheRunnerTakesJobsInTurnAndIgnoresAnIdAlreadyThere) {
  const LocalPort silent(true);
  NtsKeClient client;
  NtsKeJob slow = job();
  slow.id = 1;
  slow.port = silent.port;
  slow.timeout_s = 0.3;
  client.submit(slow);
  client.submit(slow);  // the same id queued or running: ignored
  NtsKeJob good = job();
  good.id = 2;
  client.submit(good);
  EXPECT_EQ(client.pending(), 2u);
  std::vector<NtsKeOutcome> got;
  ASSERT_TRUE(eventually([&] {
    for (NtsKeOutcome& o : client.take()) got.push_back(std::move(o));
    return got.size() >= 2;
  }));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(client.pending(), 0u);
  EXPECT_EQ(got[0].id, 1u);  // in the order submitted
  EXPECT_EQ(got[0].error, "timeout");
  EXPECT_EQ(got[1].id, 2u);
  EXPECT_TRUE(got[1].ok) << got[1].error;
  EXPECT_EQ(got[1].cookies.size(), kNtsKeCookies);
  EXPECT_EQ(got[1].bound_ns, 123456789);
  EXPECT_TRUE(client.take().empty());
  // Done, the id may come again.
  client.submit(good);
  ASSERT_TRUE(eventually([&] { return client.pending() == 0; }));
  const auto again = client.take();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_TRUE(again[0].ok) << again[0].error;
}

TEST(NtsKeClientRunner, AFullQueueAnswersAtOnceAndStoppingAbandonsTheRunningJob) {
  const LocalPort silent(true);
  double t0 = 0;
  {
    NtsKeClient client;
    NtsKeJob j;
    j.server_ip = kLoopback;
    j.port = silent.port;
    j.pin_sha256 = std::string(64, 'a');
    j.timeout_s = 30;  // longer than the test may take: stopping must not wait for it
    for (uint64_t id = 1; id <= NtsKeClient::kMaxQueued + 2; ++id) {
      j.id = id;
      client.submit(j);
    }
    // One running, kMaxQueued waiting: the last is refused, or the last two
    // if the thread has not taken the first yet.
    const auto refused = client.take();
    ASSERT_GE(refused.size(), 1u);
    ASSERT_LE(refused.size(), 2u);
    EXPECT_EQ(refused.back().id, NtsKeClient::kMaxQueued + 2);
    EXPECT_EQ(refused.back().error, "NTS-KE queue full");
    EXPECT_FALSE(refused.back().ok);
    ASSERT_TRUE(eventually([&] { return client.pending() == NtsKeClient::kMaxQueued + 2 - refused.size(); }));
    t0 = hwclock::monotonic_s();
  }
  EXPECT_LT(hwclock::monotonic_s() - t0, 1.0);
}

// By hand against a real server (chronyd, NTPsec), e.g.
//   NTSKE_ADDR=127.0.0.1 NTSKE_PORT=14460 NTSKE_NAME=ntske.test NTSKE_CA=ca.pem
//     build/tests/test_nts_ke_client --gtest_also_run_disabled_tests --gtest_filter='*Upstream*'
// (NTSKE_PIN instead of NTSKE_CA for a pin). Prints what it got.
TEST(NtsKeClientUpstream, DISABLED_ExchangeWithTheServerNamedInTheEnvironment) {
  auto env = [](const char* k) { const char* v = std::getenv(k); return std::string(v ? v : ""); };
  NtsKeJob j;
  j.server_ip = proto::parse_ipv4(env("NTSKE_ADDR")).value_or(kLoopback);
  if (!env("NTSKE_PORT").empty()) j.port = static_cast<uint16_t>(std::stoi(env("NTSKE_PORT")));
  j.name = env("NTSKE_NAME");
  j.ca_file = env("NTSKE_CA");
  j.pin_sha256 = env("NTSKE_PIN");
  const NtsKeOutcome o = run_nts_ke(j);
  std::printf("ok=%d error=\"%s\" cookies=%zu", o.ok, o.error.c_str(), o.cookies.size());
  for (const auto& c : o.cookies) std::printf(" %zu", c.size());
  std::printf(" ntp_server=\"%s\" ntp_port=%u elapsed=%.3f s\n", o.ntp_server.c_str(), o.ntp_port, o.elapsed_s);
  ASSERT_TRUE(o.ok) << o.error;
  // The keys are right if the server takes an NTS request under C2S with
  // the first cookie (no NTS NAK) and its reply opens under S2C.
  const uint8_t uid[32] = {0x5e};
  const test::NtsClientRequest q =
      test::nts_client_request(o.keys, o.cookies[0].data(), o.cookies[0].size(), 0, uid, {1, 2});
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(o.ntp_server.empty() ? j.server_ip : proto::parse_ipv4(o.ntp_server).value_or(0));
  a.sin_port = htons(o.ntp_port != 0 ? o.ntp_port : 123);
  ASSERT_EQ(::sendto(fd, q.bytes.data(), q.bytes.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a),
            static_cast<ssize_t>(q.bytes.size()));
  uint8_t reply[2048];
  const ssize_t n = ::recv(fd, reply, sizeof reply, 0);
  ::close(fd);
  ASSERT_GE(n, 48) << "no NTP reply";
  std::printf("NTP reply: %zd bytes, mode %d, stratum %d, refid %02x%02x%02x%02x\n", n, reply[0] & 7, reply[1],
              reply[12], reply[13], reply[14], reply[15]);
  EXPECT_NE(reply[1], 0) << "a kiss (NTS NAK: the server could not use the cookie or the MAC)";
  bool opened = false;
  for (size_t at = 48; at + 4 <= static_cast<size_t>(n);) {
    const size_t type = (reply[at] << 8) | reply[at + 1], len = (reply[at + 2] << 8) | reply[at + 3];
    if (len < 4 || at + len > static_cast<size_t>(n)) break;
    if (type == proto::kEfNtsAuthenticator && len >= 8) {
      const size_t nonce_len = (reply[at + 4] << 8) | reply[at + 5], ct_len = (reply[at + 6] << 8) | reply[at + 7];
      const size_t ct_at = at + proto::nts_ciphertext_offset(nonce_len);
      if (ct_at + ct_len <= at + len && ct_len >= crypto::kSivTagBytes) {
        crypto::SivKey s2c;
        crypto::siv_key_init(s2c, o.keys.s2c, sizeof o.keys.s2c);
        std::vector<uint8_t> plain(ct_len - crypto::kSivTagBytes + 1);
        opened = crypto::siv_open(s2c, reply + at + 8, nonce_len, reply, at, reply + ct_at, ct_len, plain.data());
      }
    }
    at += len;
  }
  EXPECT_TRUE(opened) << "the reply's authenticator does not open under S2C";
}

}  // namespace
}  // namespace ntp::ctl
