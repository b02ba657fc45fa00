// The NTS-KE client (RFC 8915 section 4): ntp-control as an NTS client of
// upstream servers (chronyd, NTPsec, ours). One exchange: TCP, TLS 1.3
// with ALPN "ntske/1" (GnuTLS, the server's certificate checked against
// the name asked for, or its public key against a pin), the request of
// proto::build_nts_ke_request, the response read by
// proto::parse_nts_ke_response, and C2S/S2C exported from the session
// (RFC 8915 section 5.1).
//
// run_nts_ke blocks (for at most the job's timeout); NtsKeClient runs jobs
// on a thread of its own so the control loop never waits for a TLS peer.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "crypto/nts_cookie.h"

namespace ntp::ctl {

struct NtsKeJob {
  uint64_t id = 0;            // the caller's tag (an association id), returned in the outcome
  uint32_t server_ip = 0;     // host order: where to connect
  uint16_t port = 4460;       // RFC 8915 section 6: the NTS-KE port
  // The TLS server name (SNI) and the name the certificate must carry;
  // empty: the address as a dotted quad (checked against an IP SAN, no SNI:
  // RFC 6066 section 3 allows no literal addresses there).
  std::string name;
  std::string ca_file;        // PEM trust anchors; empty: the system's trust store
  // 64 hex digits: SHA-256 of the server certificate's SubjectPublicKeyInfo
  // (DER). When set, the leaf's key must match and no CA chain is needed.
  std::string pin_sha256;
  double timeout_s = 5;       // the whole exchange: connect, handshake, request, response
  int64_t bound_ns = 0;       // the caller's time tag, passed back
};

struct NtsKeOutcome {
  uint64_t id = 0;
  bool ok = false;
  // !ok: why, short, for logs and `ntpctl sessions`: "connect: Connection
  // refused", "TLS handshake: ...", "certificate pin mismatch", "timeout",
  // "ALPN ntske/1 not agreed", "server: Error record 1 (bad request)".
  std::string error;
  crypto::NtsKeys keys;       // ok: C2S and S2C for AES-SIV-CMAC-256; zero otherwise (wiped when destroyed)
  std::vector<std::vector<uint8_t>> cookies;  // ok: 1 to 8
  std::string ntp_server;     // the Server Negotiation record; empty: none (use server_ip)
  uint16_t ntp_port = 0;      // the Port Negotiation record; 0: none (the configured port stands)
  int64_t bound_ns = 0;
  double elapsed_s = 0;       // from the start of the exchange to its end
};

// One whole exchange, blocking for at most job.timeout_s: a non-blocking
// socket and poll() against the deadline, so a silent server cannot hold it
// longer. TLS 1.3 only; ALPN ntske/1 required. The keys are wiped on failure.
NtsKeOutcome run_nts_ke(const NtsKeJob& job);

// SHA-256 of a certificate's SubjectPublicKeyInfo (DER) as 64 lower-case hex
// digits, what NtsKeJob::pin_sha256 takes: cert is PEM (the first
// certificate) or DER. Empty if it is neither.
std::string nts_ke_spki_sha256(const std::string& cert);

// One background thread runs submitted jobs one after another, so the
// control loop never blocks on TLS. Thread-safe.
class NtsKeClient {
 public:
  // The most jobs waiting (besides the one running); a job past it
  // finishes at once with "NTS-KE queue full".
  static constexpr size_t kMaxQueued = 16;

  NtsKeClient();
  // Stops the thread promptly: a running exchange is abandoned at once.
  ~NtsKeClient();
  NtsKeClient(const NtsKeClient&) = delete;
  NtsKeClient& operator=(const NtsKeClient&) = delete;

  // Queues job; ignored if a job with its id is queued or running.
  void submit(NtsKeJob job);
  std::vector<NtsKeOutcome> take();  // the jobs finished since the last take
  size_t pending() const;            // queued + running

 private:
  void run();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<NtsKeJob> queue_;
  bool running_ = false;
  uint64_t running_id_ = 0;
  std::vector<NtsKeOutcome> done_;
  std::atomic<bool> stop_{false};
  int wake_fd_ = -1;  // an eventfd, written at stop: wakes the running exchange's poll
  std::thread thread_;
};

}  // namespace ntp::ctl
