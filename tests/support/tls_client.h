// For tests and benchmarks of the NTS-KE server: a self-signed certificate
// made with GnuTLS (files written 0600 where the daemon's rules want them),
// and a blocking NTS-KE client (TLS 1.3, ALPN ntske/1) that exports the
// keys as RFC 8915 section 5.1 says, to check what the server sealed.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "crypto/nts_cookie.h"
#include "proto/nts_ke.h"

namespace ntp::test {

struct TestCertificate {
  std::string cert_pem, key_pem;
};

// A self-signed ECDSA P-256 certificate for 127.0.0.1 (CN and IP SAN),
// valid from an hour ago for a day; a CA of itself, so clients trust it.
inline TestCertificate make_test_certificate() {
  TestCertificate out;
  gnutls_x509_privkey_t key;
  gnutls_x509_crt_t crt;
  gnutls_x509_privkey_init(&key);
  gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
  gnutls_x509_crt_init(&crt);
  gnutls_x509_crt_set_version(crt, 3);
  const unsigned char serial[] = {0x01, 0x02};
  gnutls_x509_crt_set_serial(crt, serial, sizeof serial);
  const time_t now = time(nullptr);
  gnutls_x509_crt_set_activation_time(crt, now - 3600);
  gnutls_x509_crt_set_expiration_time(crt, now + 86400);
  gnutls_x509_crt_set_dn(crt, "CN=127.0.0.1", nullptr);
  const unsigned char ip[4] = {127, 0, 0, 1};
  gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, sizeof ip, GNUTLS_FSAN_SET);
  gnutls_x509_crt_set_basic_constraints(crt, 1, -1);
  gnutls_x509_crt_set_key(crt, key);
  gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0);
  gnutls_datum_t d{};
  gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d);
  out.cert_pem.assign(reinterpret_cast<const char*>(d.data), d.size);
  gnutls_free(d.data);
  gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &d);
  out.key_pem.assign(reinterpret_cast<const char*>(d.data), d.size);
  gnutls_free(d.data);
  gnutls_x509_crt_deinit(crt);
  gnutls_x509_privkey_deinit(key);
  return out;
}

inline void write_file(const std::string& path, const std::string& text, mode_t mode) {
  ::unlink(path.c_str());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, mode);
  if (fd < 0) return;
  if (::write(fd, text.data(), text.size()) < 0) { /* the test's load fails */ }
  ::fchmod(fd, mode);
  ::close(fd);
}

inline int connect_tcp(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) {
    ::close(fd);
    return -1;
  }
  const int one = 1;  // the request right after the Finished, not behind a delayed ACK
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

// What one NTS-KE exchange gave a client.
struct KeResult {
  bool handshake = false;      // TLS 1.3 with ntske/1 agreed
  std::vector<uint8_t> response;  // the bytes until the server closed
  crypto::NtsKeys keys;        // exported from the session
};

// request: the records to send (null: a valid request for NTPv4 and
// AES-SIV-CMAC-256). alpn false: none offered. ca: the PEM to trust.
inline KeResult nts_ke_exchange(uint16_t port, const std::string& ca, const std::vector<uint8_t>* request = nullptr,
                                bool alpn = true) {
  KeResult r;
  const int fd = connect_tcp(port);
  if (fd < 0) return r;
  gnutls_certificate_credentials_t cred;
  gnutls_certificate_allocate_credentials(&cred);
  gnutls_datum_t ca_d{reinterpret_cast<unsigned char*>(const_cast<char*>(ca.data())),
                      static_cast<unsigned>(ca.size())};
  gnutls_certificate_set_x509_trust_mem(cred, &ca_d, GNUTLS_X509_FMT_PEM);
  gnutls_session_t s;
  gnutls_init(&s, GNUTLS_CLIENT);
  gnutls_priority_set_direct(s, "NORMAL:-VERS-ALL:+VERS-TLS1.3", nullptr);
  gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
  gnutls_session_set_verify_cert(s, "127.0.0.1", 0);
  gnutls_datum_t proto{reinterpret_cast<unsigned char*>(const_cast<char*>("ntske/1")), 7};
  if (alpn) gnutls_alpn_set_protocols(s, &proto, 1, 0);
  gnutls_transport_set_int(s, fd);
  int hs;
  do hs = gnutls_handshake(s);
  while (hs < 0 && !gnutls_error_is_fatal(hs));
  if (hs == 0) {
    std::vector<uint8_t> req = request ? *request : std::vector<uint8_t>{0x80, 1, 0, 2, 0, 0,   // Next Protocol: NTPv4
                                                                          0x80, 4, 0, 2, 0, 15,  // AEAD: 15
                                                                          0x80, 0, 0, 0};        // End of Message
    if (gnutls_record_send(s, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      uint8_t buf[4096];
      for (;;) {
        const ssize_t n = gnutls_record_recv(s, buf, sizeof buf);
        if (n > 0) {
          r.response.insert(r.response.end(), buf, buf + n);
          continue;
        }
        if (n < 0 && !gnutls_error_is_fatal(static_cast<int>(n))) continue;
        break;
      }
      gnutls_datum_t got{};
      r.handshake = gnutls_alpn_get_selected_protocol(s, &got) == 0 && !r.response.empty();
      uint8_t c2s[5], s2c[5];
      proto::nts_ke_exporter_context(proto::kKeProtocolNtpv4, proto::kKeAeadAesSivCmac256, false, c2s);
      proto::nts_ke_exporter_context(proto::kKeProtocolNtpv4, proto::kKeAeadAesSivCmac256, true, s2c);
      const auto& label = proto::kKeExporterLabel;
      gnutls_prf_rfc5705(s, label.size(), label.data(), 5, reinterpret_cast<char*>(c2s), 32,
                         reinterpret_cast<char*>(r.keys.c2s));
      gnutls_prf_rfc5705(s, label.size(), label.data(), 5, reinterpret_cast<char*>(s2c), 32,
                         reinterpret_cast<char*>(r.keys.s2c));
    }
  }
  gnutls_deinit(s);
  gnutls_certificate_free_credentials(cred);
  ::close(fd);
  return r;
}

// The response's records as (type without the critical bit, body).
inline std::vector<std::pair<uint16_t, std::vector<uint8_t>>> ke_records(const std::vector<uint8_t>& b) {
  std::vector<std::pair<uint16_t, std::vector<uint8_t>>> out;
  size_t pos = 0;
  while (pos + 4 <= b.size()) {
    const uint16_t type = static_cast<uint16_t>(((b[pos] << 8) | b[pos + 1]) & 0x7fff);
    const size_t len = static_cast<size_t>((b[pos + 2] << 8) | b[pos + 3]);
    if (pos + 4 + len > b.size()) break;
    out.emplace_back(type, std::vector<uint8_t>(b.begin() + pos + 4, b.begin() + pos + 4 + len));
    pos += 4 + len;
  }
  return out;
}

}  // namespace ntp::test
