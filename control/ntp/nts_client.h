// The client side of Network Time Security (RFC 8915) for one [[server]]
// with nts = true: the keys and cookies that NTS-KE gave, the NTS fields of
// each request (a Unique Identifier, one cookie, placeholders for more, an
// authenticator sealed with C2S) and the check of each reply (the same
// Unique Identifier, the authenticator opened with S2C, the new cookies
// taken). Pure but for its randomness (the Unique Identifiers and nonces
// from getrandom): NTS-KE itself, TLS, is the shell's (control/nts_ke_client.h),
// asked for by ke_due and answered by on_ke_result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "crypto/nts_cookie.h"
#include "crypto/siv.h"

namespace ntp::ctl {

enum class NtsState : uint8_t {
  kKePending,  // no NTS-KE has answered yet
  kOk,         // keys and cookies from NTS-KE; no NAK since
  kKeFailed,   // the last NTS-KE failed (error() says why)
  kNak,        // the server answered an NTS NAK (RFC 8915 section 5.7): NTS-KE again
  kNoCookies,  // every cookie spent without an answer bringing more: NTS-KE again
};
const char* to_string(NtsState s);  // "ke pending", "ok", "ke failed", "nak", "no cookies"

// An NTS-KE exchange the shell is to run for association assoc_id.
struct NtsKeRequest {
  uint64_t tag = 0;      // random: only the result of this very request is taken (on_ke_result)
  uint32_t assoc_id = 0;
  uint32_t address = 0;  // host order
  uint16_t ke_port = 4460;
  std::string name;      // the certificate's name; empty: the address
  std::string ca_file;
  std::string pin_sha256;
};

// What it gave (RFC 8915 section 4): keys exported from the TLS session,
// cookies, and the NTPv4 server and port when the server named them.
struct NtsKeResult {
  bool ok = false;
  std::string error;  // !ok: why
  crypto::NtsKeys keys;
  std::vector<std::vector<uint8_t>> cookies;
  std::string ntp_server;  // empty: the NTS-KE server's address
  uint16_t ntp_port = 0;   // 0: no Port Negotiation record (the configured port stands)
};

enum class NtsReply : uint8_t {
  kOk,   // authenticated: the answer to our last request, its cookies taken
  kNak,  // an NTS NAK with our last request's Unique Identifier (which anybody on the path can read):
         // noted; unless an authenticated answer still comes, the next poll drops the cookies for NTS-KE
  kBad,  // not to be used: no or another Unique Identifier, no authenticator, one that does not open
};

struct NtsCounters {
  uint64_t ke_ok = 0, ke_failed = 0, naks = 0;
};

class NtsSession {
 public:
  // NTS-KE back-off: 16 s after an exchange, doubling to an hour, until an
  // authenticated answer resets it (chronyd retries its NTS-KE in minutes,
  // not at every poll; a server whose cookies never work, or somebody
  // NAKing them, costs a handshake per back-off at most).
  static constexpr int64_t kKeRetryMinNs = 16'000'000'000;
  static constexpr int64_t kKeRetryMaxNs = 3'600'000'000'000;
  // Never two NTS-KE starts closer than this (a server that NAKs every
  // fresh cookie must not draw a TLS handshake per poll).
  static constexpr int64_t kKeMinGapNs = 2'000'000'000;

  NtsSession(const config::Association& cfg, uint32_t assoc_id);

  // An NTS-KE to run now: when cookies are needed, none is running and the
  // back-off has passed. The session then waits for on_ke_result.
  std::optional<NtsKeRequest> ke_due(int64_t now_ns);
  int64_t next_ke_ns() const;
  // The result of the exchange ke_due asked for (another tag: ignored).
  // Ok: the new keys and cookies replace the old. A Server Negotiation naming another address
  // than the association's is refused (NTP goes where the engine sends it).
  void on_ke_result(uint64_t tag, NtsKeResult& r, int64_t now_ns);

  // pkt[0, 48): the request's header (its transmit timestamp the random
  // one the association checks the origin against: the authenticator
  // covers it, so nothing may change it at TX). Appends the NTS fields
  // within cap bytes and returns the packet's new length; 0 when there is
  // no cookie (state kNoCookies: NTS-KE is due) or cap is too small.
  size_t seal_request(uint8_t* pkt, size_t cap);
  // A mode-4 packet from the server: see NtsReply.
  NtsReply check_reply(const uint8_t* pkt, size_t len);

  NtsState state() const { return state_; }
  const std::string& error() const { return error_; }
  size_t cookies() const { return cookies_.size(); }
  bool ke_running() const { return ke_running_; }
  uint16_t ntp_port() const { return ntp_port_; }  // the configured port, or what Port Negotiation said
  const NtsCounters& counters() const { return counters_; }

 private:
  config::Association cfg_;
  uint32_t assoc_id_;
  NtsState state_ = NtsState::kKePending;
  std::string error_;
  crypto::SivKey c2s_, s2c_;
  std::deque<std::vector<uint8_t>> cookies_;
  uint16_t ntp_port_;
  bool ke_running_ = false;
  uint64_t ke_tag_ = 0;
  bool nak_seen_ = false;  // a NAK to the last request, and no authenticated answer since
  int64_t next_ke_ns_ = 0;
  int64_t ke_backoff_ns_ = kKeRetryMinNs;
  // The Unique Identifier of the last request sent: its answer must carry
  // it (RFC 8915 section 5.3), and only once.
  uint8_t uid_[32] = {};
  bool uid_live_ = false;
  NtsCounters counters_;
};

}  // namespace ntp::ctl
