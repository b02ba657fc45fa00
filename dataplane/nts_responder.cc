// NTS-protected answers (see nts_responder.h).
#include "dataplane/nts_responder.h"

#include <algorithm>
#include <cstring>

#include "proto/inet.h"

namespace ntp::dp {

const char* to_string(NtsReason r) {
  switch (r) {
    case NtsReason::kOk: return "ok";
    case NtsReason::kBadCookie: return "bad cookie";
    case NtsReason::kStaleKey: return "stale cookie key";
    case NtsReason::kBadAuth: return "bad authenticator";
    case NtsReason::kNoKeys: return "no cookie keys";
    case NtsReason::kTooLarge: return "reply too large";
    case NtsReason::kOldVersion: return "not NTPv4";
  }
  return "?";
}

namespace {

constexpr size_t kNonceBytes = 16;  // our reply nonce: N_REQ for AES-SIV-CMAC, no Additional Padding
constexpr size_t kCookieFieldBytes = proto::ef_field_bytes(crypto::kNtsCookieBytes);  // 104

uint64_t sum_words(const uint8_t* p, size_t n) {  // n a multiple of 4
  uint64_t s = 0;
  for (size_t i = 0; i < n; i += 4) s += proto::load_be32(p + i);
  return s;
}

// The Unique Identifier field moved to `at` (the request's bytes there are
// no longer needed); returns the field's length. Its body is echoed byte for
// byte (RFC 8915 section 5.7: "The server MUST include a Unique Identifier
// extension field in its response, copied from the request").
size_t echo_unique_id(uint8_t* buf, size_t at, const proto::NtsRequestView& v) {
  std::memmove(buf + at + proto::kEfHeaderBytes, v.unique_id, v.unique_id_len);
  return proto::write_ef(buf + at, proto::kEfUniqueIdentifier, buf + at + proto::kEfHeaderBytes, v.unique_id_len);
}

NtsAnswer nak(uint8_t* buf, const NtpRequest& q, const proto::NtsRequestView& v, NtsReason why) {
  NtsAnswer a;
  a.reason = why;
  // RFC 8915 section 5.7: the NAK is a kiss-o'-death with code NTSN and the
  // Unique Identifier, and no cookie or authenticator (the server could not
  // produce one the client would trust).
  const size_t uid_bytes = echo_unique_id(buf, proto::kHeaderLen, v);
  a.d = kiss_of_death(buf, q, kKissNtsNak);
  if (a.d.action != NtpAction::kReply) return a;  // only NTPv4 (checked before)
  a.d.reply_sum += sum_words(buf + proto::kHeaderLen, uid_bytes);
  a.d.reply_len = static_cast<uint16_t>(proto::kHeaderLen + uid_bytes);
  a.outcome = NtsOutcome::kNak;
  return a;
}

}  // namespace

NtsAnswer nts_answer(uint8_t* buf, size_t len, const NtpRequest& q, const proto::NtsRequestView& v,
                     proto::NtpTimestamp rx, const ReplyParams& p, const crypto::CookieKeyRing* ring,
                     crypto::NonceSource& rng, NtsSeal& seal, bool interleaved) {
  seal.wipe();
  NtsAnswer a;
  if (q.version != 4) {
    a.reason = NtsReason::kOldVersion;
    return a;
  }
  if (ring == nullptr || ring->sealing() == nullptr) {
    a.reason = NtsReason::kNoKeys;
    return a;
  }
  crypto::NtsKeys keys;
  switch (crypto::cookie_open(*ring, v.cookie, v.cookie_len, keys)) {
    case crypto::CookieOpen::kOk: break;
    case crypto::CookieOpen::kUnknownKey: return nak(buf, q, v, NtsReason::kStaleKey);
    case crypto::CookieOpen::kBadLength:
    case crypto::CookieOpen::kBadTag: return nak(buf, q, v, NtsReason::kBadCookie);
  }
  // RFC 8915 section 5.6: the associated data is the packet up to the
  // authenticator; its plaintext (encrypted extension fields) we open and
  // ignore (placeholders in it are not counted).
  {
    crypto::SivKey c2s;
    uint8_t plain[kNtsMaxRequestPlain];
    if (v.ciphertext_len - crypto::kSivTagBytes > sizeof plain || !crypto::siv_key_init(c2s, keys.c2s, sizeof keys.c2s) ||
        !crypto::siv_open(c2s, v.nonce, v.nonce_len, buf, v.auth_at, v.ciphertext, v.ciphertext_len, plain))
      return nak(buf, q, v, NtsReason::kBadAuth);
    crypto::wipe_secret(plain, v.ciphertext_len - crypto::kSivTagBytes);
  }

  // The reply: header, the Unique Identifier, the authenticator with one
  // cookie per cookie and placeholder. Never more than the request: the
  // cookie opened, so it is as long as ours, the parse counts only
  // placeholders as long as it and a nonce padded to 16 octets, and ours is
  // 16; fewer cookies if it came out longer all the same.
  const size_t uid_bytes = proto::ef_field_bytes(v.unique_id_len);
  size_t cookies = 1u + v.placeholders;
  auto reply_bytes = [&](size_t n) {
    return proto::kHeaderLen + uid_bytes +
           proto::nts_authenticator_bytes(kNonceBytes, crypto::kSivTagBytes + n * kCookieFieldBytes);
  };
  while (cookies > 0 && reply_bytes(cookies) > len) --cookies;
  if (cookies == 0) {
    a.reason = NtsReason::kTooLarge;
    return a;
  }

  // From here the request's bytes are overwritten.
  const size_t uid_echo = echo_unique_id(buf, proto::kHeaderLen, v);
  a.d = answer(buf, q, rx, p, proto::Mode::kServer, nullptr, interleaved);
  const size_t auth_at = proto::kHeaderLen + uid_echo;
  const size_t plain_len = cookies * kCookieFieldBytes;
  uint8_t nonce[kNonceBytes];
  rng.fill(nonce, sizeof nonce);
  const size_t auth_bytes =
      proto::write_nts_authenticator(buf + auth_at, nonce, sizeof nonce, crypto::kSivTagBytes + plain_len);
  const size_t ct_at = auth_at + proto::nts_ciphertext_offset(sizeof nonce);
  // The fresh cookies, in place where the ciphertext's plaintext goes (after
  // the tag: nts_seal encrypts in place), each under the current key.
  uint8_t* at = buf + ct_at + crypto::kSivTagBytes;
  const crypto::CookieKey& current = *ring->sealing();
  for (size_t i = 0; i < cookies; ++i, at += kCookieFieldBytes) {
    uint8_t cookie_nonce[crypto::kNtsCookieNonceBytes];
    rng.fill(cookie_nonce, sizeof cookie_nonce);
    proto::store_be16(at, proto::kEfNtsCookie);
    proto::store_be16(at + 2, static_cast<uint16_t>(kCookieFieldBytes));
    crypto::cookie_seal(current, cookie_nonce, keys, at + proto::kEfHeaderBytes);
  }
  std::memcpy(seal.s2c, keys.s2c, sizeof seal.s2c);
  seal.auth_at = static_cast<uint16_t>(auth_at);
  seal.nonce_len = static_cast<uint16_t>(sizeof nonce);
  seal.plain_len = static_cast<uint16_t>(plain_len);

  // answer()'s sum covers the header (transmit zero); add the UID and the
  // authenticator's header, lengths and nonce (the ciphertext is nts_seal's).
  a.d.reply_sum += sum_words(buf + proto::kHeaderLen, uid_echo) + sum_words(buf + auth_at, ct_at - auth_at);
  a.d.reply_len = static_cast<uint16_t>(auth_at + auth_bytes);
  a.outcome = NtsOutcome::kReply;
  a.cookies = static_cast<uint8_t>(cookies);
  return a;
}

uint64_t nts_seal(uint8_t* ntp, NtsSeal& seal) {
  crypto::SivKey s2c;
  crypto::siv_key_init(s2c, seal.s2c, sizeof seal.s2c);
  const size_t ct_at = seal.auth_at + proto::nts_ciphertext_offset(seal.nonce_len);
  const uint8_t* nonce = ntp + seal.auth_at + proto::kEfHeaderBytes + 4;
  // In place: the plaintext is at ct_at + tag, the tag goes at ct_at (Nettle
  // reads the plaintext for S2V before it writes the tag, and CTR runs in
  // place).
  crypto::siv_seal(s2c, nonce, seal.nonce_len, ntp, seal.auth_at, ntp + ct_at + crypto::kSivTagBytes, seal.plain_len,
                   ntp + ct_at);
  const size_t ct_len = crypto::kSivTagBytes + seal.plain_len;
  seal.wipe();
  return sum_words(ntp + ct_at, proto::ef_pad4(ct_len));
}

}  // namespace ntp::dp
