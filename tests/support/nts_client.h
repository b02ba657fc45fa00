// An NTS client's request, laid out as chronyd sends it (header with VN 4
// and mode 3, a Unique Identifier of 32 octets, the cookie, placeholders as
// long as it, the authenticator last with a 16-octet nonce, nothing
// encrypted, sealed with C2S): for the unit tests, the fuzz target and the
// benchmarks of the NTS responder. Header-only, built from crypto/ and
// proto/ alone.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "crypto/nts_cookie.h"
#include "proto/nts.h"
#include "proto/ntp_packet.h"

namespace ntp::test {

struct NtsClientRequest {
  std::vector<uint8_t> bytes;
  size_t auth_at = 0;  // where the authenticator field starts
};

inline NtsClientRequest nts_client_request(const crypto::NtsKeys& keys, const uint8_t* cookie, size_t cookie_len,
                                           unsigned placeholders, const uint8_t uid[32],
                                           proto::NtpTimestamp transmit, size_t nonce_len = 16,
                                           uint8_t nonce_fill = 0x77) {
  NtsClientRequest r;
  std::vector<uint8_t>& p = r.bytes;
  p.assign(proto::kHeaderLen, 0);
  p[0] = 0x23;  // LI 0, VN 4, mode 3
  proto::store_ts(p.data() + 40, transmit);
  auto add = [&p](uint16_t type, const uint8_t* body, size_t n) {
    std::vector<uint8_t> f(proto::ef_field_bytes(n));
    proto::write_ef(f.data(), type, body, n);
    p.insert(p.end(), f.begin(), f.end());
  };
  add(proto::kEfUniqueIdentifier, uid, 32);
  add(proto::kEfNtsCookie, cookie, cookie_len);
  for (unsigned i = 0; i < placeholders; ++i) add(proto::kEfNtsCookiePlaceholder, nullptr, cookie_len);
  r.auth_at = p.size();
  std::vector<uint8_t> nonce(nonce_len, nonce_fill);
  p.resize(r.auth_at + proto::nts_authenticator_bytes(nonce_len, crypto::kSivTagBytes));
  proto::write_nts_authenticator(p.data() + r.auth_at, nonce.data(), nonce_len, crypto::kSivTagBytes);
  crypto::SivKey c2s;
  crypto::siv_key_init(c2s, keys.c2s, sizeof keys.c2s);
  crypto::siv_seal(c2s, nonce.data(), nonce_len, p.data(), r.auth_at, nullptr, 0,
                   p.data() + r.auth_at + proto::nts_ciphertext_offset(nonce_len));
  return r;
}

// A cookie of `ring`'s current key holding keys (what NTS-KE handed out).
inline std::vector<uint8_t> nts_cookie_for(const crypto::CookieKeyRing& ring, const crypto::NtsKeys& keys,
                                           uint8_t nonce_fill = 1) {
  std::vector<uint8_t> c(crypto::kNtsCookieBytes);
  uint8_t nonce[crypto::kNtsCookieNonceBytes];
  std::memset(nonce, nonce_fill, sizeof nonce);
  crypto::cookie_seal(*ring.sealing(), nonce, keys, c.data());
  return c;
}

}  // namespace ntp::test
