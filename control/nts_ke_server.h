// The NTS-KE server (RFC 8915 section 4): TLS 1.3 over TCP (GnuTLS), ALPN
// "ntske/1", NTPv4 with AEAD_AES_SIV_CMAC_256, eight cookies sealed under
// the current key of nts.cookie_keys_file, and the NTPv4 Server and Port
// Negotiation records when NTP is served at another address (the
// dataplane's) than the one this listens on.
//
// One thread of its own, so that no TLS client can hold up the control
// loop: one poll() over the listener and at most max_sessions
// non-blocking sessions, each closed at its deadline (timeout_s from its
// accept, whatever it is doing), at most a quarter of them from one
// address. The cookie ring and the certificate are swapped in by the
// control loop (reload) under a short lock; a session keeps what it
// started with.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "crypto/nts_cookie.h"
#include "proto/nts_ke.h"

namespace ntp::config {
struct Config;
}

namespace ntp::ctl {

inline constexpr size_t kNtsKeCookies = 8;  // RFC 8915 section 4: eight is what clients expect

// What the server was asked and answered (RFC 8915 section 4.1), pure: the
// response to a whole request (parse_nts_ke_request's kDone) whose TLS
// session exported keys: the cookies sealed under ring's current key with
// nonces from `nonces`, the negotiation records from server/port. No ring
// (or no key in it): an Internal Server Error record.
struct KeAnswer {
  std::vector<uint8_t> bytes;
  unsigned cookies = 0;
  bool error = false;  // an Error record was sent
};
KeAnswer nts_ke_answer(const proto::KeRequest& q, const crypto::NtsKeys& keys, const crypto::CookieKeyRing* ring,
                       crypto::NonceSource& nonces, const std::string& ntp_server, uint16_t ntp_port);

struct NtsKeOptions {
  uint32_t listen_ip = 0;  // host order
  uint16_t listen_port = 4460;
  int max_sessions = 64;
  double timeout_s = 2;
  std::string ntp_server;  // NTPv4 Server Negotiation; empty: none
  uint16_t ntp_port = 123; // a Port Negotiation record only when not 123
};

// The [nts] keys of cfg as options (ke_listen as the file checked it).
NtsKeOptions nts_ke_options(const config::Config& cfg);

// Counters since start, read by the control loop for /status and /metrics.
struct NtsKeCounters {
  uint64_t accepted = 0;          // connections taken into a session
  uint64_t refused = 0;           // closed at accept: max_sessions, or an address's quarter of them, in use
  uint64_t handshake_failures = 0;  // TLS failed (no TLS 1.3, no ntske/1, a bad record, the peer gone)
  uint64_t bad_requests = 0;      // answered with an Error record
  uint64_t served = 0;            // answered with cookies
  uint64_t cookies = 0;           // cookies sent
  uint64_t timeouts = 0;          // closed at the deadline
  uint64_t sessions = 0;          // open now
};

class NtsKeServer {
 public:
  NtsKeServer();
  ~NtsKeServer();
  NtsKeServer(const NtsKeServer&) = delete;
  NtsKeServer& operator=(const NtsKeServer&) = delete;

  enum class Start : uint8_t { kOk, kBadCredentials, kCannotListen };
  // Loads the certificate chain and the private key (PEM; the key as a
  // secret file: crypto/keys.h's read_secret_file rules), binds and starts
  // the thread. Otherwise err says why, and nothing is left running.
  Start start(const NtsKeOptions& opt, const std::string& certificate, const std::string& private_key,
             std::shared_ptr<const crypto::CookieKeyRing> ring, std::string& err);
  // Whether start would load this pair (err: why not), without starting.
  static bool check_credentials(const std::string& certificate, const std::string& private_key, std::string& err);
  // A new certificate and key for sessions from now on; false (the old
  // ones kept) with err.
  bool set_credentials(const std::string& certificate, const std::string& private_key, std::string& err);
  void set_ring(std::shared_ptr<const crypto::CookieKeyRing> ring);
  void set_options(const NtsKeOptions& opt);  // all but the listen address, for new sessions
  void stop();
  bool running() const { return thread_.joinable(); }
  uint16_t bound_port() const { return bound_port_; }  // the port bound (listen_port 0: the kernel's choice)
  NtsKeCounters counters() const;

  struct Impl;

 private:
  void run();

  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  uint16_t bound_port_ = 0;
};

}  // namespace ntp::ctl
