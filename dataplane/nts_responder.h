// NTS-protected answers to client requests (RFC 8915 section 5.7), pure:
// the request's cookie opened with the cookie-key ring, its authenticator
// checked with C2S, and the reply built in place with the Unique Identifier
// echoed and one fresh cookie per cookie and placeholder received, sealed
// with S2C. The seal covers the transmit timestamp, so it is a second step
// (nts_seal) after the worker stamps the reply, as seal_reply is for MACs.
// Hot path: no allocation, no lock, no system call (nonces come from the
// caller's NonceSource).
#pragma once

#include <cstddef>
#include <cstdint>

#include "crypto/nts_cookie.h"
#include "dataplane/responder.h"
#include "proto/nts.h"

namespace ntp::dp {

// RFC 8915 section 5.7: "NTS NAK", a kiss-o'-death for a cookie the server
// cannot open or a request it cannot authenticate.
inline constexpr uint32_t kKissNtsNak = proto::kKissNtsn;

enum class NtsOutcome : uint8_t {
  kReply,          // an authenticated answer, to be stamped and then sealed (nts_seal)
  kNak,            // an NTS NAK (complete: nothing to stamp or seal)
  kDrop,           // nothing goes (see reason)
};

// Why, for the worker's counters.
enum class NtsReason : uint8_t {
  kOk,
  kBadCookie,      // kNak: forged or damaged (CookieOpen::kBadTag or kBadLength)
  kStaleKey,       // kNak: a cookie key no longer in the ring (or never ours)
  kBadAuth,        // kNak: the authenticator does not verify under the cookie's C2S
  kNoKeys,         // kDrop: no cookie key published (NTS not served yet)
  kTooLarge,       // kDrop: a reply would not fit (cannot happen with what parse_nts_request takes; checked anyway)
  kOldVersion,     // kDrop: NTS is NTPv4 only (a NAK is a v4 kiss code)
};
const char* to_string(NtsReason r);

// What one nts_seal costs, in ns (bench_nts's nts_seal with one cookie on
// a 2-vCPU box, rounded up): the worker adds it to the burst's transmit
// stamp as it does mac_cost_ns, so the stamp still predicts the send.
inline constexpr int64_t kNtsSealCostNs = 700;

// What nts_seal needs after the transmit stamp: the S2C key and where the
// authenticator is. Wiped by nts_seal.
struct NtsSeal {
  uint8_t s2c[crypto::kNtsKeyBytes] = {};
  uint16_t auth_at = 0;      // offset of the authenticator field in the reply
  uint16_t nonce_len = 0;
  uint16_t plain_len = 0;    // the cookies, already in place at the ciphertext's offset + tag
  void wipe() noexcept { crypto::wipe_secret(this, sizeof *this); }
  ~NtsSeal() { wipe(); }
};

struct NtsAnswer {
  NtsOutcome outcome = NtsOutcome::kDrop;
  NtsReason reason = NtsReason::kOk;
  uint8_t cookies = 0;       // kReply: fresh cookies in the reply
  // kReply, kNak: as responder's (reply_len bytes of NTP payload; reply_sum
  // the unfolded one's-complement sum of every byte but, for kReply, the
  // transmit timestamp and the ciphertext, which nts_seal's return covers).
  NtpDecision d;
};

// The largest request plaintext (encrypted extension fields) taken: more is
// dropped as kBadAuth. chrony sends none.
inline constexpr size_t kNtsMaxRequestPlain = 512;

// buf[0, len): a client request q (classify_request) whose NTS fields are v
// (parse_nts_request, ok). Answers in place; the reply is never longer than
// the request. ring: the published cookie keys (null: kNoKeys). rng: the
// worker's nonce source (reply and cookie nonces). interleaved: as answer().
NtsAnswer nts_answer(uint8_t* buf, size_t len, const NtpRequest& q, const proto::NtsRequestView& v,
                     proto::NtpTimestamp rx, const ReplyParams& p, const crypto::CookieKeyRing* ring,
                     crypto::NonceSource& rng, NtsSeal& seal, bool interleaved = false);

// Seals a kReply made by nts_answer, after its transmit timestamp is
// written: the authenticator's ciphertext over the reply up to it. Returns
// the unfolded one's-complement sum of the ciphertext (with its padding),
// to add to the answer's reply_sum and the transmit stamp's for the UDP
// checksum. Wipes seal.
uint64_t nts_seal(uint8_t* ntp, NtsSeal& seal);

}  // namespace ntp::dp
