// The NTS-KE client (see nts_ke_client.h).
#include "control/nts_ke_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <string_view>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "hwclock/tsc.h"
#include "proto/inet.h"
#include "proto/nts_ke.h"

namespace ntp::ctl {

namespace {

constexpr std::string_view kAlpn = "ntske/1";  // RFC 8915 section 4
// TLS 1.3 only (RFC 8915 section 3: "MUST negotiate TLS version 1.3 or later").
constexpr const char* kPriorities = "NORMAL:-VERS-ALL:+VERS-TLS1.3";
// The longest one poll() waits before looking at the stop flag again, should
// the wake-up descriptor be missing.
constexpr int kPollSliceMs = 250;

// What one exchange holds, released on every way out.
struct Exchange {
  int fd = -1;
  gnutls_certificate_credentials_t cred = nullptr;
  gnutls_session_t tls = nullptr;
  ~Exchange() {
    if (tls) gnutls_deinit(tls);
    if (cred) gnutls_certificate_free_credentials(cred);
    if (fd >= 0) ::close(fd);
  }
};

enum class Wait : uint8_t { kReady, kTimeout, kStopped };

// Until fd is ready for events (or in error: the next call says which), the
// deadline passes, or stop is set (wake_fd written).
Wait wait_for(int fd, short events, double deadline_s, int wake_fd, const std::atomic<bool>* stop) {
  for (;;) {
    if (stop && stop->load()) return Wait::kStopped;
    const double left_s = deadline_s - hwclock::monotonic_s();
    if (left_s <= 0) return Wait::kTimeout;
    const int wait_ms = std::min(kPollSliceMs, static_cast<int>(std::ceil(left_s * 1000)));
    pollfd fds[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
    const int n = ::poll(fds, wake_fd >= 0 ? 2 : 1, wait_ms);
    if (n < 0 && errno != EINTR) return Wait::kReady;  // let the socket call report it
    if (n > 0 && fds[0].revents != 0) return Wait::kReady;
  }
}

short tls_events(gnutls_session_t tls) { return gnutls_record_get_direction(tls) == 1 ? POLLOUT : POLLIN; }

std::string to_hex(const uint8_t* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = kDigits[p[i] >> 4];
    s[2 * i + 1] = kDigits[p[i] & 15];
  }
  return s;
}

// SHA-256 of crt's SubjectPublicKeyInfo (gnutls_pubkey_export2 writes that
// structure in DER), as hex; empty on failure.
std::string spki_sha256(gnutls_x509_crt_t crt) {
  gnutls_pubkey_t pk = nullptr;
  std::string out;
  if (gnutls_pubkey_init(&pk) < 0) return out;
  gnutls_datum_t der{};
  if (gnutls_pubkey_import_x509(pk, crt, 0) >= 0 && gnutls_pubkey_export2(pk, GNUTLS_X509_FMT_DER, &der) >= 0) {
    uint8_t digest[32];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size, digest) >= 0) out = to_hex(digest, sizeof digest);
    gnutls_free(der.data);
  }
  gnutls_pubkey_deinit(pk);
  return out;
}

std::string spki_sha256_of(const gnutls_datum_t& d, bool try_pem) {
  gnutls_x509_crt_t crt = nullptr;
  if (gnutls_x509_crt_init(&crt) < 0) return {};
  std::string out;
  if ((try_pem && gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) >= 0) ||
      gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) >= 0)
    out = spki_sha256(crt);
  gnutls_x509_crt_deinit(crt);
  return out;
}

bool is_pin(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

// Why the handshake failed: for a certificate GnuTLS refused, what it found
// wrong (as chronyd logs it); for an alert, which.
std::string handshake_error(gnutls_session_t tls, int r) {
  std::string why = gnutls_strerror(r);
  if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
    gnutls_datum_t text{};
    if (gnutls_certificate_verification_status_print(gnutls_session_get_verify_cert_status(tls),
                                                     gnutls_certificate_type_get(tls), &text, 0) >= 0) {
      why.assign(reinterpret_cast<const char*>(text.data), text.size);
      gnutls_free(text.data);
      while (!why.empty() && (why.back() == ' ' || why.back() == '\0')) why.pop_back();
    }
  } else if (r == GNUTLS_E_FATAL_ALERT_RECEIVED || r == GNUTLS_E_WARNING_ALERT_RECEIVED) {
    if (const char* alert = gnutls_alert_get_name(gnutls_alert_get(tls))) why += std::string(" (") + alert + ")";
  }
  return "TLS handshake: " + why;
}

NtsKeOutcome exchange(const NtsKeJob& job, int wake_fd, const std::atomic<bool>* stop) {
  const double start_s = hwclock::monotonic_s();
  const double deadline_s = start_s + job.timeout_s;
  NtsKeOutcome o;
  o.id = job.id;
  o.bound_ns = job.bound_ns;
  auto fail = [&](std::string why) {
    o.ok = false;
    o.error = std::move(why);
    o.keys.wipe();
    o.cookies.clear();
    o.ntp_server.clear();
    o.ntp_port = 0;
    o.elapsed_s = hwclock::monotonic_s() - start_s;
    return std::move(o);
  };
  auto waited = [&](Wait w) { return w == Wait::kTimeout ? "timeout" : "stopped"; };

  std::string pin = job.pin_sha256;
  std::transform(pin.begin(), pin.end(), pin.begin(), [](char c) { return static_cast<char>(std::tolower(c)); });
  if (!pin.empty() && !is_pin(pin)) return fail("pin_sha256: not 64 hex digits");

  Exchange x;
  if (int r = gnutls_certificate_allocate_credentials(&x.cred); r < 0) return fail(std::string("gnutls: ") + gnutls_strerror(r));
  if (pin.empty()) {
    // With a pin the key is the trust; without, a chain to these anchors.
    if (!job.ca_file.empty()) {
      const int r = gnutls_certificate_set_x509_trust_file(x.cred, job.ca_file.c_str(), GNUTLS_X509_FMT_PEM);
      if (r < 0) return fail(job.ca_file + ": " + gnutls_strerror(r));
      if (r == 0) return fail(job.ca_file + ": no certificates");
    } else if (int r = gnutls_certificate_set_x509_system_trust(x.cred); r < 0) {
      return fail(std::string("system trust store: ") + gnutls_strerror(r));
    }
  }

  // The connection: non-blocking, so the deadline holds for connect() too.
  x.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (x.fd < 0) return fail(std::string("socket: ") + std::strerror(errno));
  // TLS writes its flights in several records: Nagle would hold each behind
  // the peer's delayed ACK (40 ms).
  const int one = 1;
  setsockopt(x.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(job.server_ip);
  a.sin_port = htons(job.port);
  if (::connect(x.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0) {
    if (errno != EINPROGRESS) return fail(std::string("connect: ") + std::strerror(errno));
    if (Wait w = wait_for(x.fd, POLLOUT, deadline_s, wake_fd, stop); w != Wait::kReady) return fail(waited(w));
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(x.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err != 0) return fail(std::string("connect: ") + std::strerror(err));
  }

  // The session: TLS 1.3, ALPN ntske/1, the certificate checked against
  // the name (GnuTLS matches a dotted quad against IP SANs).
  std::string host = job.name.empty() ? proto::ipv4_to_string(job.server_ip) : job.name;
  if (host.size() > 1 && host.back() == '.') host.pop_back();  // a certificate names no root label
  if (int r = gnutls_init(&x.tls, GNUTLS_CLIENT | GNUTLS_NONBLOCK); r < 0)
    return fail(std::string("gnutls: ") + gnutls_strerror(r));
  if (int r = gnutls_priority_set_direct(x.tls, kPriorities, nullptr); r < 0)
    return fail(std::string("gnutls priorities: ") + gnutls_strerror(r));
  gnutls_credentials_set(x.tls, GNUTLS_CRD_CERTIFICATE, x.cred);
  if (!job.name.empty() && !proto::parse_ipv4(host))  // RFC 6066 section 3: no literal addresses in SNI
    gnutls_server_name_set(x.tls, GNUTLS_NAME_DNS, host.data(), host.size());
  if (pin.empty()) gnutls_session_set_verify_cert(x.tls, host.c_str(), 0);
  gnutls_datum_t alpn{reinterpret_cast<unsigned char*>(const_cast<char*>(kAlpn.data())),
                      static_cast<unsigned>(kAlpn.size())};
  gnutls_alpn_set_protocols(x.tls, &alpn, 1, 0);
  gnutls_transport_set_int(x.tls, x.fd);
  for (;;) {
    const int r = gnutls_handshake(x.tls);
    if (r == 0) break;
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
      if (Wait w = wait_for(x.fd, tls_events(x.tls), deadline_s, wake_fd, stop); w != Wait::kReady)
        return fail(waited(w));
      continue;
    }
    if (gnutls_error_is_fatal(r)) return fail(handshake_error(x.tls, r));
  }
  if (gnutls_protocol_get_version(x.tls) != GNUTLS_TLS1_3) return fail("TLS 1.3 not agreed");
  gnutls_datum_t selected{};
  if (gnutls_alpn_get_selected_protocol(x.tls, &selected) < 0 ||
      std::string_view(reinterpret_cast<const char*>(selected.data), selected.size) != kAlpn)
    return fail("ALPN ntske/1 not agreed");
  if (!pin.empty()) {
    // TLS 1.3's CertificateVerify proved the peer holds the leaf's key;
    // the pin says it is the key we expect.
    unsigned n = 0;
    const gnutls_datum_t* peers = gnutls_certificate_get_peers(x.tls, &n);
    if (!peers || n == 0 || spki_sha256_of(peers[0], false) != pin) return fail("certificate pin mismatch");
  }

  // RFC 8915 section 4: the client sends its request right after the
  // handshake; the server answers and closes.
  const std::vector<uint8_t> request = proto::build_nts_ke_request();
  for (size_t sent = 0; sent < request.size();) {
    const ssize_t r = gnutls_record_send(x.tls, request.data() + sent, request.size() - sent);
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
      if (Wait w = wait_for(x.fd, tls_events(x.tls), deadline_s, wake_fd, stop); w != Wait::kReady)
        return fail(waited(w));
      continue;
    }
    if (r < 0) return fail(std::string("send: ") + gnutls_strerror(static_cast<int>(r)));
    sent += static_cast<size_t>(r);
  }
  std::vector<uint8_t> in;
  proto::KeServerReply reply;
  for (;;) {
    uint8_t buf[4096];
    const ssize_t r = gnutls_record_recv(x.tls, buf, sizeof buf);
    if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
      if (Wait w = wait_for(x.fd, tls_events(x.tls), deadline_s, wake_fd, stop); w != Wait::kReady)
        return fail(waited(w));
      continue;
    }
    if (r == 0 || r == GNUTLS_E_PREMATURE_TERMINATION) return fail("server closed before End of Message");
    if (r < 0) {
      if (!gnutls_error_is_fatal(static_cast<int>(r))) continue;
      return fail(std::string("receive: ") + gnutls_strerror(static_cast<int>(r)));
    }
    in.insert(in.end(), buf, buf + r);
    reply = proto::parse_nts_ke_response(in.data(), in.size());
    if (reply.status == proto::KeServerReply::Status::kBad) return fail("server: " + reply.error);
    if (reply.status == proto::KeServerReply::Status::kDone) break;
    if (hwclock::monotonic_s() >= deadline_s) return fail("timeout");  // a server trickling bytes
  }

  // RFC 8915 section 5.1: C2S and S2C from the TLS exporter, the context
  // naming NTPv4 and the AEAD agreed, then 0 (C2S) or 1 (S2C).
  uint8_t c2s[5], s2c[5];
  proto::nts_ke_exporter_context(proto::kKeProtocolNtpv4, proto::kKeAeadAesSivCmac256, false, c2s);
  proto::nts_ke_exporter_context(proto::kKeProtocolNtpv4, proto::kKeAeadAesSivCmac256, true, s2c);
  const auto& label = proto::kKeExporterLabel;
  if (gnutls_prf_rfc5705(x.tls, label.size(), label.data(), sizeof c2s, reinterpret_cast<const char*>(c2s),
                         sizeof o.keys.c2s, reinterpret_cast<char*>(o.keys.c2s)) < 0 ||
      gnutls_prf_rfc5705(x.tls, label.size(), label.data(), sizeof s2c, reinterpret_cast<const char*>(s2c),
                         sizeof o.keys.s2c, reinterpret_cast<char*>(o.keys.s2c)) < 0)
    return fail("TLS key export failed");
  gnutls_bye(x.tls, GNUTLS_SHUT_WR);  // best effort, not waited for: the server closes anyway

  o.ok = true;
  o.cookies = std::move(reply.cookies);
  o.ntp_server = std::move(reply.server);
  o.ntp_port = reply.port;  // 0: no record (the association's configured port stands)
  o.elapsed_s = hwclock::monotonic_s() - start_s;
  return o;
}

}  // namespace

NtsKeOutcome run_nts_ke(const NtsKeJob& job) { return exchange(job, -1, nullptr); }

std::string nts_ke_spki_sha256(const std::string& cert) {
  gnutls_datum_t d{reinterpret_cast<unsigned char*>(const_cast<char*>(cert.data())),
                   static_cast<unsigned>(cert.size())};
  return spki_sha256_of(d, true);
}

NtsKeClient::NtsKeClient() {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);  // -1: exchanges look at stop_ every kPollSliceMs
  thread_ = std::thread([this] { run(); });
}

NtsKeClient::~NtsKeClient() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_.store(true);
  }
  cv_.notify_all();
  if (wake_fd_ >= 0) {
    const uint64_t one = 1;
    if (::write(wake_fd_, &one, sizeof one) < 0) { /* the poll slice sees stop_ */ }
  }
  if (thread_.joinable()) thread_.join();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void NtsKeClient::submit(NtsKeJob job) {
  std::lock_guard<std::mutex> l(mu_);
  if (stop_.load()) return;
  if ((running_ && running_id_ == job.id) ||
      std::any_of(queue_.begin(), queue_.end(), [&](const NtsKeJob& q) { return q.id == job.id; }))
    return;
  if (queue_.size() >= kMaxQueued) {
    // An answer rather than silence: the caller retries as after any failure.
    NtsKeOutcome o;
    o.id = job.id;
    o.bound_ns = job.bound_ns;
    o.error = "NTS-KE queue full";
    done_.push_back(std::move(o));
    return;
  }
  queue_.push_back(std::move(job));
  cv_.notify_one();
}

std::vector<NtsKeOutcome> NtsKeClient::take() {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<NtsKeOutcome> out;
  out.swap(done_);
  return out;
}

size_t NtsKeClient::pending() const {
  std::lock_guard<std::mutex> l(mu_);
  return queue_.size() + (running_ ? 1 : 0);
}

void NtsKeClient::run() {
  pthread_setname_np(pthread_self(), "ntp-nts-ke-cli");
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [this] { return stop_.load() || !queue_.empty(); });
    if (stop_.load()) return;
    NtsKeJob job = std::move(queue_.front());
    queue_.pop_front();
    running_ = true;
    running_id_ = job.id;
    l.unlock();
    NtsKeOutcome o = exchange(job, wake_fd_, &stop_);
    l.lock();
    running_ = false;
    if (!stop_.load()) done_.push_back(std::move(o));
  }
}

}  // namespace ntp::ctl
