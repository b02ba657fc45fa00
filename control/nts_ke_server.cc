// The NTS-KE server (see nts_ke_server.h).
#include "control/nts_ke_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <gnutls/gnutls.h>
#include <spdlog/spdlog.h>

#include "config/config.h"
#include "crypto/keys.h"
#include "crypto/random.h"
#include "hwclock/tsc.h"
#include "proto/inet.h"

namespace ntp::ctl {

namespace {

constexpr std::string_view kAlpn = "ntske/1";  // RFC 8915 section 4
// TLS 1.3 only (RFC 8915 section 3: "MUST negotiate TLS version 1.3 or later").
constexpr const char* kPriorities = "NORMAL:-VERS-ALL:+VERS-TLS1.3";
constexpr size_t kMaxPemBytes = 256 * 1024;
constexpr int kListenBacklog = 128;

double now_s() { return hwclock::monotonic_s(); }

std::string gnutls_error(int r) { return gnutls_strerror(r); }

// A certificate and its key as GnuTLS holds them; shared by the sessions
// that started with them.
struct Credentials {
  gnutls_certificate_credentials_t cred = nullptr;
  ~Credentials() {
    if (cred) gnutls_certificate_free_credentials(cred);
  }
};

bool read_public_file(const std::string& path, std::string& out, std::string& err) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    err = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  std::ostringstream s;
  s << f.rdbuf();
  out = s.str();
  if (out.size() > kMaxPemBytes) {
    err = path + ": larger than " + std::to_string(kMaxPemBytes) + " bytes";
    return false;
  }
  return true;
}

std::shared_ptr<Credentials> load_credentials(const std::string& certificate, const std::string& private_key,
                                              std::string& err) {
  std::string cert;
  if (!read_public_file(certificate, cert, err)) return nullptr;
  crypto::SecretText key;
  std::vector<crypto::KeyError> errors;
  // read_secret_file reads on past an owner or mode refusal (to report all): any error refuses.
  if (!crypto::read_secret_file(private_key, std::nullopt, kMaxPemBytes, key, errors) || !errors.empty()) {
    key.wipe();
    err.clear();
    for (const crypto::KeyError& e : errors) err += (err.empty() ? "" : "; ") + e.to_string();
    return nullptr;
  }
  auto c = std::make_shared<Credentials>();
  if (int r = gnutls_certificate_allocate_credentials(&c->cred); r < 0) {
    err = "gnutls: " + gnutls_error(r);
    return nullptr;
  }
  gnutls_datum_t cert_d{reinterpret_cast<unsigned char*>(cert.data()), static_cast<unsigned>(cert.size())};
  gnutls_datum_t key_d{reinterpret_cast<unsigned char*>(key.text.data()), static_cast<unsigned>(key.len)};
  const int r = gnutls_certificate_set_x509_key_mem2(c->cred, &cert_d, &key_d, GNUTLS_X509_FMT_PEM, nullptr, 0);
  key.wipe();
  if (r < 0) {
    err = certificate + ", " + private_key + ": not a PEM certificate chain and its private key: " + gnutls_error(r);
    return nullptr;
  }
  return c;
}

}  // namespace

KeAnswer nts_ke_answer(const proto::KeRequest& q, const crypto::NtsKeys& keys, const crypto::CookieKeyRing* ring,
                       crypto::NonceSource& nonces, const std::string& ntp_server, uint16_t ntp_port) {
  KeAnswer a;
  proto::KeResponse r = proto::nts_ke_response_for(q);
  if (r.ntpv4 && r.aead) {
    const crypto::CookieKey* key = ring ? ring->sealing() : nullptr;
    if (!key) {
      // RFC 8915 section 4.1.3: an Internal Server Error, not cookies nobody opens.
      r = {};
      r.has_error = true;
      r.error = proto::kKeErrorInternal;
    } else {
      r.cookies.reserve(kNtsKeCookies);
      for (size_t i = 0; i < kNtsKeCookies; ++i) {
        uint8_t nonce[crypto::kNtsCookieNonceBytes];
        nonces.fill(nonce, sizeof nonce);
        std::vector<uint8_t> c(crypto::kNtsCookieBytes);
        if (!crypto::cookie_seal(*key, nonce, keys, c.data())) break;
        r.cookies.push_back(std::move(c));
      }
      r.server = ntp_server;
      r.port = ntp_port != 123 ? ntp_port : 0;
    }
  }
  a.error = r.has_error;
  a.cookies = static_cast<unsigned>(r.cookies.size());
  a.bytes = proto::build_nts_ke_response(r);
  return a;
}

NtsKeOptions nts_ke_options(const config::Config& cfg) {
  NtsKeOptions o;
  if (const auto hp = proto::split_host_port(cfg.nts.ke_listen)) {
    o.listen_ip = proto::parse_ipv4(hp->host).value_or(0);
    o.listen_port = hp->port;
  }
  o.max_sessions = cfg.nts.ke_max_sessions;
  o.timeout_s = cfg.nts.ke_timeout_s;
  if (cfg.nts.ntp_server) o.ntp_server = proto::ipv4_to_string(*cfg.nts.ntp_server);
  o.ntp_port = static_cast<uint16_t>(cfg.nts.ntp_port);
  return o;
}

struct NtsKeServer::Impl {
  struct Session {
    int fd = -1;
    uint32_t peer_ip = 0;
    double deadline_s = 0;
    gnutls_session_t tls = nullptr;
    std::shared_ptr<Credentials> cred;
    enum class State { kHandshake, kRead, kWrite, kBye } state = State::kHandshake;
    std::vector<uint8_t> in, out;
    size_t out_pos = 0;
    unsigned cookies = 0;
    bool error = false;
    ~Session() {
      if (tls) gnutls_deinit(tls);
      if (fd >= 0) ::close(fd);
    }
  };

  int listen_fd = -1;
  int wake_fd = -1;
  std::atomic<bool> stop{false};
  gnutls_priority_t priorities = nullptr;

  std::mutex mu;  // guards the three below: the control loop swaps, the thread copies
  NtsKeOptions opt;
  std::shared_ptr<Credentials> cred;
  std::shared_ptr<const crypto::CookieKeyRing> ring;

  std::atomic<uint64_t> accepted{0}, refused{0}, handshake_failures{0}, bad_requests{0}, served{0}, cookies{0},
      timeouts{0}, open{0};

  std::vector<std::unique_ptr<Session>> sessions;
  std::unique_ptr<crypto::NonceSource> nonces;

  ~Impl() {
    sessions.clear();
    if (priorities) gnutls_priority_deinit(priorities);
    if (listen_fd >= 0) ::close(listen_fd);
    if (wake_fd >= 0) ::close(wake_fd);
  }

  void accept_all();
  bool step(Session& s);         // false: done, close it
  bool answer(Session& s);
  short events(const Session& s) const {
    return gnutls_record_get_direction(s.tls) == 1 ? POLLOUT : POLLIN;
  }
};

NtsKeServer::NtsKeServer() = default;
NtsKeServer::~NtsKeServer() { stop(); }

NtsKeServer::Start NtsKeServer::start(const NtsKeOptions& opt, const std::string& certificate,
                                      const std::string& private_key,
                                      std::shared_ptr<const crypto::CookieKeyRing> ring, std::string& err) {
  stop();
  auto impl = std::make_unique<Impl>();
  impl->cred = load_credentials(certificate, private_key, err);
  if (!impl->cred) return Start::kBadCredentials;
  const char* errpos = nullptr;
  if (int r = gnutls_priority_init(&impl->priorities, kPriorities, &errpos); r < 0) {
    err = std::string("gnutls priorities: ") + gnutls_error(r);
    return Start::kBadCredentials;
  }
  uint8_t seed[32];
  if (!crypto::random_bytes(seed, sizeof seed)) {
    err = "getrandom failed";
    return Start::kCannotListen;
  }
  impl->nonces = std::make_unique<crypto::NonceSource>(seed);
  crypto::wipe_secret(seed, sizeof seed);

  impl->listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (impl->listen_fd < 0) {
    err = std::string("socket: ") + std::strerror(errno);
    return Start::kCannotListen;
  }
  const int one = 1;
  setsockopt(impl->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(opt.listen_ip);
  a.sin_port = htons(opt.listen_port);
  if (::bind(impl->listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 ||
      ::listen(impl->listen_fd, kListenBacklog) < 0) {
    err = proto::ipv4_to_string(opt.listen_ip) + ":" + std::to_string(opt.listen_port) + ": " + std::strerror(errno);
    return Start::kCannotListen;
  }
  socklen_t len = sizeof a;
  getsockname(impl->listen_fd, reinterpret_cast<sockaddr*>(&a), &len);
  bound_port_ = ntohs(a.sin_port);
  impl->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl->wake_fd < 0) {
    err = std::string("eventfd: ") + std::strerror(errno);
    return Start::kCannotListen;
  }
  impl->opt = opt;
  impl->ring = std::move(ring);
  impl_ = std::move(impl);
  thread_ = std::thread([this] { run(); });
  return Start::kOk;
}

bool NtsKeServer::check_credentials(const std::string& certificate, const std::string& private_key,
                                    std::string& err) {
  return load_credentials(certificate, private_key, err) != nullptr;
}

bool NtsKeServer::set_credentials(const std::string& certificate, const std::string& private_key, std::string& err) {
  std::shared_ptr<Credentials> c = load_credentials(certificate, private_key, err);
  if (!c) return false;
  if (impl_) {
    std::lock_guard<std::mutex> l(impl_->mu);
    impl_->cred = std::move(c);
  }
  return true;
}

void NtsKeServer::set_ring(std::shared_ptr<const crypto::CookieKeyRing> ring) {
  if (!impl_) return;
  std::lock_guard<std::mutex> l(impl_->mu);
  impl_->ring = std::move(ring);
}

void NtsKeServer::set_options(const NtsKeOptions& opt) {
  if (!impl_) return;
  std::lock_guard<std::mutex> l(impl_->mu);
  const uint32_t ip = impl_->opt.listen_ip;
  const uint16_t port = impl_->opt.listen_port;
  impl_->opt = opt;
  impl_->opt.listen_ip = ip;
  impl_->opt.listen_port = port;
}

void NtsKeServer::stop() {
  if (!impl_) return;
  impl_->stop.store(true);
  const uint64_t one = 1;
  if (::write(impl_->wake_fd, &one, sizeof one) < 0) { /* the poll's timeout sees stop */ }
  if (thread_.joinable()) thread_.join();
  impl_.reset();
  bound_port_ = 0;
}

NtsKeCounters NtsKeServer::counters() const {
  NtsKeCounters c;
  if (!impl_) return c;
  const Impl& i = *impl_;
  c.accepted = i.accepted.load(std::memory_order_relaxed);
  c.refused = i.refused.load(std::memory_order_relaxed);
  c.handshake_failures = i.handshake_failures.load(std::memory_order_relaxed);
  c.bad_requests = i.bad_requests.load(std::memory_order_relaxed);
  c.served = i.served.load(std::memory_order_relaxed);
  c.cookies = i.cookies.load(std::memory_order_relaxed);
  c.timeouts = i.timeouts.load(std::memory_order_relaxed);
  c.sessions = i.open.load(std::memory_order_relaxed);
  return c;
}

void NtsKeServer::Impl::accept_all() {
  for (;;) {
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
        spdlog::warn("NTS-KE: accept: {}", std::strerror(errno));
      return;
    }
    const uint32_t ip = ntohl(peer.sin_addr.s_addr);
    NtsKeOptions o;
    std::shared_ptr<Credentials> c;
    {
      std::lock_guard<std::mutex> l(mu);
      o = opt;
      c = cred;
    }
    const size_t per_source = std::max<size_t>(1, static_cast<size_t>(o.max_sessions) / 4);
    const size_t from_ip = std::count_if(sessions.begin(), sessions.end(), [ip](const auto& s) { return s->peer_ip == ip; });
    if (sessions.size() >= static_cast<size_t>(o.max_sessions) || from_ip >= per_source) {
      ::close(fd);
      refused.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    // TLS writes a handshake flight and the response in several records:
    // Nagle would hold each behind the client's delayed ACK (40 ms).
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto s = std::make_unique<Session>();
    s->fd = fd;
    s->peer_ip = ip;
    s->deadline_s = now_s() + o.timeout_s;
    s->cred = std::move(c);
    if (gnutls_init(&s->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_TICKETS) < 0 ||
        gnutls_priority_set(s->tls, priorities) < 0 ||
        gnutls_credentials_set(s->tls, GNUTLS_CRD_CERTIFICATE, s->cred->cred) < 0) {
      handshake_failures.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    gnutls_datum_t alpn{reinterpret_cast<unsigned char*>(const_cast<char*>(kAlpn.data())),
                        static_cast<unsigned>(kAlpn.size())};
    gnutls_alpn_set_protocols(s->tls, &alpn, 1, GNUTLS_ALPN_MANDATORY);
    gnutls_transport_set_int(s->tls, fd);
    accepted.fetch_add(1, std::memory_order_relaxed);
    if (step(*s)) sessions.push_back(std::move(s));
  }
}

bool NtsKeServer::Impl::answer(Session& s) {
  const proto::KeRequest q = proto::parse_nts_ke_request(s.in.data(), s.in.size());
  if (q.status != proto::KeRequestStatus::kDone) return true;
  crypto::NtsKeys keys;
  if (!q.has_error && q.ntpv4 && q.aead) {
    uint8_t c2s[5], s2c[5];
    proto::nts_ke_exporter_context(proto::kKeProtocolNtpv4, proto::kKeAeadAesSivCmac256, false, c2s);
    proto::nts_ke_exporter_context(proto::kKeProtocolNtpv4, proto::kKeAeadAesSivCmac256, true, s2c);
    if (gnutls_prf_rfc5705(s.tls, proto::kKeExporterLabel.size(), proto::kKeExporterLabel.data(), sizeof c2s,
                           reinterpret_cast<const char*>(c2s), sizeof keys.c2s, reinterpret_cast<char*>(keys.c2s)) < 0 ||
        gnutls_prf_rfc5705(s.tls, proto::kKeExporterLabel.size(), proto::kKeExporterLabel.data(), sizeof s2c,
                           reinterpret_cast<const char*>(s2c), sizeof keys.s2c, reinterpret_cast<char*>(keys.s2c)) < 0) {
      handshake_failures.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
  }
  std::shared_ptr<const crypto::CookieKeyRing> r;
  std::string server;
  uint16_t port = 123;
  {
    std::lock_guard<std::mutex> l(mu);
    r = ring;
    server = opt.ntp_server;
    port = opt.ntp_port;
  }
  KeAnswer a = nts_ke_answer(q, keys, r.get(), *nonces, server, port);
  s.out = std::move(a.bytes);
  s.cookies = a.cookies;
  s.error = a.error;
  s.state = Session::State::kWrite;
  return true;
}

bool NtsKeServer::Impl::step(Session& s) {
  using State = Session::State;
  for (;;) {
    switch (s.state) {
      case State::kHandshake: {
        const int r = gnutls_handshake(s.tls);
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) return true;
        if (r < 0) {
          if (!gnutls_error_is_fatal(r)) continue;
          handshake_failures.fetch_add(1, std::memory_order_relaxed);
          spdlog::debug("NTS-KE: {}: TLS handshake failed: {}", proto::ipv4_to_string(s.peer_ip), gnutls_error(r));
          return false;
        }
        gnutls_datum_t proto{};
        if (gnutls_protocol_get_version(s.tls) != GNUTLS_TLS1_3 ||
            gnutls_alpn_get_selected_protocol(s.tls, &proto) < 0 ||
            std::string_view(reinterpret_cast<const char*>(proto.data), proto.size) != kAlpn) {
          // RFC 7301 section 3.2: a client without our protocol gets
          // no_application_protocol (best effort: the socket is non-blocking).
          gnutls_alert_send(s.tls, GNUTLS_AL_FATAL, GNUTLS_A_NO_APPLICATION_PROTOCOL);
          handshake_failures.fetch_add(1, std::memory_order_relaxed);
          spdlog::debug("NTS-KE: {}: not TLS 1.3 with ALPN ntske/1", proto::ipv4_to_string(s.peer_ip));
          return false;
        }
        s.in.reserve(proto::kKeMaxRequestBytes);
        s.state = State::kRead;
        continue;
      }
      case State::kRead: {
        uint8_t buf[4096];
        const size_t room = std::min(sizeof buf, proto::kKeMaxRequestBytes - s.in.size());
        const ssize_t r = gnutls_record_recv(s.tls, buf, room);
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) return true;
        if (r <= 0) {  // gone (or a TLS error) before the request ended
          if (r < 0 && !gnutls_error_is_fatal(static_cast<int>(r))) continue;
          bad_requests.fetch_add(1, std::memory_order_relaxed);
          return false;
        }
        s.in.insert(s.in.end(), buf, buf + r);
        if (!answer(s)) return false;
        continue;
      }
      case State::kWrite: {
        const ssize_t r = gnutls_record_send(s.tls, s.out.data() + s.out_pos, s.out.size() - s.out_pos);
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) return true;
        if (r < 0) return false;
        s.out_pos += static_cast<size_t>(r);
        if (s.out_pos < s.out.size()) continue;
        if (s.error) {
          bad_requests.fetch_add(1, std::memory_order_relaxed);
        } else {
          served.fetch_add(1, std::memory_order_relaxed);
          cookies.fetch_add(s.cookies, std::memory_order_relaxed);
        }
        s.state = State::kBye;
        continue;
      }
      case State::kBye: {
        // RFC 8915 section 4: the server closes the connection after its response.
        const int r = gnutls_bye(s.tls, GNUTLS_SHUT_WR);
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) return true;
        return false;
      }
    }
  }
}

void NtsKeServer::run() {
  pthread_setname_np(pthread_self(), "ntp-nts-ke");  // top -H, and bench_nts_ke's CPU figure
  Impl& m = *impl_;
  std::vector<pollfd> fds;
  while (!m.stop.load()) {
    fds.clear();
    fds.push_back({m.wake_fd, POLLIN, 0});
    fds.push_back({m.listen_fd, POLLIN, 0});
    double next_deadline = now_s() + 1;
    for (const auto& s : m.sessions) {
      fds.push_back({s->fd, m.events(*s), 0});
      next_deadline = std::min(next_deadline, s->deadline_s);
    }
    const int wait_ms = std::max(0, static_cast<int>((next_deadline - now_s()) * 1000) + 1);
    if (::poll(fds.data(), fds.size(), wait_ms) < 0 && errno != EINTR) {
      spdlog::error("NTS-KE: poll: {}", std::strerror(errno));
      break;
    }
    // Sessions first (fds[2..] are sessions[0..] as they were), then the
    // expired ones, then new connections.
    for (size_t i = 0; i < m.sessions.size(); ++i) {
      if (fds[i + 2].revents == 0) continue;
      if (!m.step(*m.sessions[i])) m.sessions[i].reset();
    }
    const double t = now_s();
    for (auto& s : m.sessions)
      if (s && t >= s->deadline_s) {
        m.timeouts.fetch_add(1, std::memory_order_relaxed);
        spdlog::debug("NTS-KE: {}: timed out", proto::ipv4_to_string(s->peer_ip));
        s.reset();
      }
    std::erase(m.sessions, nullptr);
    if (fds[1].revents & POLLIN) m.accept_all();
    m.open.store(m.sessions.size(), std::memory_order_relaxed);
  }
  m.sessions.clear();
  m.open.store(0);
}

}  // namespace ntp::ctl
