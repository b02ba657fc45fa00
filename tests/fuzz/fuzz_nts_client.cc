// libFuzzer target: a server's answers to the NTS client (ctl::NtsSession's
// check_reply), with keys and cookies the target holds, so that the fuzzer
// reaches the AEAD: the session seals a request, the dataplane's responder
// answers it (or NAKs it, byte 1 bit 0: a cookie of a key the server does
// not hold), and the fuzzer changes that answer.
//
// Input: byte 0 selects the form.
//  - even: the rest is the answer (any bytes);
//  - odd: the real answer, then the rest as (offset, xor) pairs applied.
// Invariants, whatever the bytes:
//  - never a crash, a leak or a read past the answer (ASan)
//  - any bytes (even form): never kOk, never kNak (they cannot carry the
//    random Unique Identifier of our request)
//  - kOk only with the header as the server sent it (the timestamps are
//    what authentication is for) and our Unique Identifier; then at most
//    eight cookies, and the same bytes again are kBad (no replay)
//  - kNak only for a stratum-0 NTSN answer with our Unique Identifier; the
//    cookies stay until the next request, which then goes without them
//  - the unchanged answer is kOk (or kNak when the server NAKed)
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "control/ntp/nts_client.h"
#include "dataplane/nts_responder.h"
#include "proto/inet.h"
#include "proto/ntp_packet.h"
#include "proto/nts.h"
#include "tests/support/nts_client.h"

namespace {

using namespace ntp;

#define CHECK(cond)       \
  do {                    \
    if (!(cond)) abort(); \
  } while (0)

crypto::CookieKeyRing make_ring(uint32_t id) {
  crypto::CookieKeyRing out;
  uint8_t secrets[1][crypto::kSivKeyBytes];
  for (size_t j = 0; j < crypto::kSivKeyBytes; ++j) secrets[0][j] = static_cast<uint8_t>(id + j);
  if (!crypto::cookie_ring_init(out, &id, secrets, 1, 0)) abort();
  return out;
}

const crypto::CookieKeyRing& server_ring() {
  static const crypto::CookieKeyRing r = make_ring(21);
  return r;
}
const crypto::CookieKeyRing& retired_ring() {
  static const crypto::CookieKeyRing r = make_ring(20);
  return r;
}

constexpr uint8_t kSeed[32] = {5};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  config::Association cfg;
  cfg.address = 0x0A000102;
  cfg.nts = true;
  ctl::NtsSession s(cfg, 1);
  const auto ke_q = s.ke_due(0);
  if (!ke_q) abort();
  ctl::NtsKeResult ke;
  ke.ok = true;
  for (size_t i = 0; i < crypto::kNtsKeyBytes; ++i) {
    ke.keys.c2s[i] = static_cast<uint8_t>(0x10 + i);
    ke.keys.s2c[i] = static_cast<uint8_t>(0x90 + i);
  }
  const bool naked = data[1] & 1;
  const crypto::CookieKeyRing& cookie_ring = naked ? retired_ring() : server_ring();
  for (uint8_t n = 1; n <= 2; ++n) ke.cookies.push_back(test::nts_cookie_for(cookie_ring, ke.keys, n));
  s.on_ke_result(ke_q->tag, ke, 0);
  CHECK(s.state() == ctl::NtsState::kOk);

  std::vector<uint8_t> q(proto::kMaxRingPayload, 0);
  q[0] = 0x23;
  proto::store_ts(q.data() + 40, proto::NtpTimestamp{0x01020304u, 0x05060708u});
  const size_t qlen = s.seal_request(q.data(), q.size());
  CHECK(qlen > proto::kHeaderLen);
  q.resize(qlen);

  // The dataplane answers it.
  const dp::NtpRequest req = dp::classify_request(q.data(), q.size());
  const proto::NtsRequestView v = proto::parse_nts_request(q.data(), q.size(), crypto::kSivTagBytes);
  CHECK(req.ok && v.ok());
  dp::ReplyParams p;
  p.leap = proto::Leap::kNone;
  p.stratum = 1;
  p.synchronized = true;
  static crypto::NonceSource rng(kSeed);
  dp::NtsSeal seal;
  std::vector<uint8_t> answer = q;
  const dp::NtsAnswer a = dp::nts_answer(answer.data(), answer.size(), req, v, proto::NtpTimestamp{0xE9000000u, 1},
                                         p, &server_ring(), rng, seal);
  CHECK(a.outcome == (naked ? dp::NtsOutcome::kNak : dp::NtsOutcome::kReply));
  if (a.outcome == dp::NtsOutcome::kReply) {
    proto::store_ts(answer.data() + 40, proto::NtpTimestamp{0xE9000000u, 2});
    dp::nts_seal(answer.data(), seal);
  }
  answer.resize(a.d.reply_len);
  const std::vector<uint8_t> original = answer;

  std::vector<uint8_t> r;
  const bool raw = (data[0] & 1) == 0;
  if (raw) {
    r.assign(data + 2, data + size);
  } else {
    r = answer;
    for (size_t i = 2; i + 1 < size && !r.empty(); i += 2) r[data[i] % r.size()] ^= data[i + 1];
  }
  const size_t cookies_before = s.cookies();
  const ctl::NtsReply out = s.check_reply(r.data(), r.size());
  if (raw) CHECK(out == ctl::NtsReply::kBad);
  if (r == original) CHECK(out == (naked ? ctl::NtsReply::kNak : ctl::NtsReply::kOk));
  switch (out) {
    case ctl::NtsReply::kOk:
      CHECK(!naked);
      CHECK(r.size() >= proto::kHeaderLen && std::memcmp(r.data(), original.data(), proto::kHeaderLen) == 0);
      CHECK(std::memcmp(r.data() + proto::kHeaderLen + 4, q.data() + proto::kHeaderLen + 4, 32) == 0);
      CHECK(s.cookies() <= proto::kNtsMaxCookiesPerReply);
      CHECK(s.check_reply(r.data(), r.size()) == ctl::NtsReply::kBad);
      break;
    case ctl::NtsReply::kNak: {
      // Kept until the next poll (the real answer may still come), then gone.
      const proto::NtpHeader h = proto::read_header(r.data());
      CHECK(h.stratum == 0 && h.refid == proto::kKissNtsn);
      CHECK(s.cookies() == cookies_before && s.state() == ctl::NtsState::kNak);
      std::vector<uint8_t> next(proto::kMaxRingPayload, 0);
      next[0] = 0x23;
      CHECK(s.seal_request(next.data(), next.size()) == 0 && s.cookies() == 0);
      break;
    }
    case ctl::NtsReply::kBad: CHECK(s.cookies() == cookies_before); break;
  }
  return 0;
}
