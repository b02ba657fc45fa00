// libFuzzer target: NTS requests through proto::parse_nts_request and
// dp::nts_answer / nts_seal, with cookie keys the target holds, so the
// fuzzer reaches the AEAD both ways.
//
// Input: byte 0 selects the form.
//  - even: the rest is an NTP packet as received (any bytes);
//  - odd: a valid request as chronyd builds it (a cookie of the target's
//    ring, the authenticator sealed with the cookie's C2S, byte 1 & 7
//    placeholders), then the rest as (offset, xor) pairs applied to it.
// Invariants, whatever the bytes:
//  - never a crash, a leak or a read past the packet (ASan)
//  - a parse that succeeds has its fields inside the packet, the UID 32+
//    octets, the authenticator last and the cookie placeholders < 8
//  - no reply is larger than the request; a NAK is the header and the UID
//    field, stratum 0 with kiss code NTSN; a reply carries 1 + placeholders
//    cookies (or fewer, never more) and a client holding the keys can open
//    it; an unchanged valid request is always answered, never NAKed
//  - kReply only with the cookie's keys: a changed valid request is
//    answered only if everything before its authenticator, the
//    authenticator's nonce and its tag are as sent (a change elsewhere, such
//    as a longer field length taken as Additional Padding, authenticates
//    nothing new)
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "crypto/nts_cookie.h"
#include "dataplane/nts_responder.h"
#include "proto/inet.h"
#include "proto/nts.h"
#include "tests/support/nts_client.h"

namespace {

using namespace ntp;

#define CHECK(cond)       \
  do {                    \
    if (!(cond)) abort(); \
  } while (0)

constexpr size_t kTag = crypto::kSivTagBytes;

const crypto::CookieKeyRing& ring() {
  static const crypto::CookieKeyRing r = [] {
    crypto::CookieKeyRing out;
    const uint32_t ids[] = {11, 12};
    uint8_t secrets[2][crypto::kSivKeyBytes];
    for (size_t j = 0; j < crypto::kSivKeyBytes; ++j) {
      secrets[0][j] = static_cast<uint8_t>(j);
      secrets[1][j] = static_cast<uint8_t>(0x80 + j);
    }
    if (!crypto::cookie_ring_init(out, ids, secrets, 2, 1)) abort();
    return out;
  }();
  return r;
}

crypto::NtsKeys fixed_keys() {
  crypto::NtsKeys k;
  for (size_t i = 0; i < crypto::kNtsKeyBytes; ++i) {
    k.c2s[i] = static_cast<uint8_t>(3 * i + 1);
    k.s2c[i] = static_cast<uint8_t>(5 * i + 2);
  }
  return k;
}

std::vector<uint8_t> valid_request(unsigned placeholders, size_t* auth_at) {
  uint8_t uid[32];
  for (int i = 0; i < 32; ++i) uid[i] = static_cast<uint8_t>(i);
  const std::vector<uint8_t> cookie = ntp::test::nts_cookie_for(ring(), fixed_keys(), 7);
  ntp::test::NtsClientRequest r = ntp::test::nts_client_request(
      fixed_keys(), cookie.data(), cookie.size(), placeholders, uid, {0xE9000000u, 0}, 16, 3);
  *auth_at = r.auth_at;
  return std::move(r.bytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static uint8_t seed[32] = {42};
  static crypto::NonceSource rng(seed);
  std::vector<uint8_t> pkt, original;
  bool structured = (data[0] & 1) != 0;
  bool changed = false;
  size_t auth_at = 0;
  if (structured) {
    const unsigned placeholders = size > 1 ? data[1] & 7 : 0;
    pkt = valid_request(placeholders, &auth_at);
    original = pkt;
    for (size_t i = 2; i + 2 <= size; i += 2) {
      const size_t at = (static_cast<size_t>(data[i]) * 7) % (pkt.size() + 8);  // a few past the end: appended bytes
      if (at >= pkt.size()) {
        pkt.push_back(data[i + 1]);
        changed = true;
      } else if (data[i + 1] != 0) {
        pkt[at] ^= data[i + 1];
        changed = true;
      }
    }
  } else {
    pkt.assign(data + 1, data + size);
  }
  const size_t len = pkt.size();
  const ntp::dp::NtpRequest q = ntp::dp::classify_request(pkt.data(), len);
  const proto::NtsRequestView v = proto::parse_nts_request(pkt.data(), len, kTag);
  if (structured && !changed) CHECK(q.ok && v.ok());
  if (!v.ok()) return 0;
  const uint8_t* end = pkt.data() + len;
  CHECK(v.unique_id >= pkt.data() + 52 && v.unique_id + v.unique_id_len <= end && v.unique_id_len >= 32);
  CHECK(v.cookie >= pkt.data() + 52 && v.cookie + v.cookie_len <= end);
  CHECK(v.auth_at >= 48 && v.auth_at < len && v.placeholders < proto::kNtsMaxCookiesPerReply);
  CHECK(v.nonce > pkt.data() + v.auth_at && v.ciphertext + v.ciphertext_len <= end && v.ciphertext_len >= kTag);
  if (!q.ok || q.mode != proto::Mode::kClient) return 0;

  ntp::dp::ReplyParams params;
  params.stratum = 2;
  params.synchronized = true;
  params.leap = proto::Leap::kNone;
  ntp::dp::NtsSeal seal;
  const std::vector<uint8_t> request = pkt;
  const ntp::dp::NtsAnswer a = ntp::dp::nts_answer(pkt.data(), len, q, v, {0xE9000000u, 1}, params, &ring(), rng, seal);
  if (structured && !changed) CHECK(a.outcome == ntp::dp::NtsOutcome::kReply);
  if (a.outcome == ntp::dp::NtsOutcome::kDrop) return 0;
  CHECK(a.d.reply_len <= len && a.d.reply_len >= 48 + 36);
  if (a.outcome == ntp::dp::NtsOutcome::kNak) {
    CHECK(pkt[1] == 0 && proto::load_be32(pkt.data() + 12) == ntp::dp::kKissNtsNak);
    CHECK(a.d.reply_len == 48 + proto::ef_field_bytes(v.unique_id_len));
    return 0;
  }
  CHECK(a.cookies >= 1 && a.cookies <= 1u + v.placeholders);
  proto::store_be32(pkt.data() + 40, 0xE9000000u);  // the stamp
  ntp::dp::nts_seal(pkt.data(), seal);
  // Answered: the request carried a cookie of ours with the fixed keys and
  // a valid authenticator, so a client with those keys opens the reply.
  const size_t reply_auth = 48 + proto::ef_field_bytes(v.unique_id_len);
  CHECK(proto::load_be16(pkt.data() + reply_auth) == proto::kEfNtsAuthenticator);
  const size_t ct_len = proto::load_be16(pkt.data() + reply_auth + 6);
  crypto::SivKey s2c;
  const crypto::NtsKeys k = fixed_keys();
  crypto::siv_key_init(s2c, k.s2c, sizeof k.s2c);
  static uint8_t plain[2048];
  CHECK(ct_len >= kTag && ct_len - kTag <= sizeof plain);
  CHECK(crypto::siv_open(s2c, pkt.data() + reply_auth + 8, 16, pkt.data(), reply_auth,
                         pkt.data() + reply_auth + proto::nts_ciphertext_offset(16), ct_len, plain));
  if (structured && changed) {
    // Answered after a change: it fell outside what authenticates the
    // request. Everything before the authenticator (the AD, the cookie in
    // it), the authenticator's nonce and its tag are as sent.
    CHECK(request.size() >= auth_at + 40);
    CHECK(std::memcmp(request.data(), original.data(), auth_at) == 0);
    CHECK(std::memcmp(request.data() + auth_at + 8, original.data() + auth_at + 8, 32) == 0);
  }
  return 0;
}
