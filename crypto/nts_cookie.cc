// NTS cookies (see nts_cookie.h).
#include "crypto/nts_cookie.h"

#include <algorithm>
#include <cstring>

#include "proto/inet.h"

namespace ntp::crypto {

static_assert(kNtsCookieBytes == 100 && kNtsCookieBytes % 4 == 0);  // an extension field body needs no padding

const char* to_string(CookieOpen c) {
  switch (c) {
    case CookieOpen::kOk: return "ok";
    case CookieOpen::kBadLength: return "bad cookie length";
    case CookieOpen::kUnknownKey: return "unknown cookie key";
    case CookieOpen::kBadTag: return "bad cookie";
  }
  return "?";
}

bool cookie_ring_init(CookieKeyRing& ring, const uint32_t* ids, const uint8_t (*secrets)[kSivKeyBytes], uint32_t n,
                      uint32_t current) {
  ring.wipe();
  if (n == 0 || n > kMaxCookieKeys || current >= n || ids == nullptr || secrets == nullptr) return false;
  for (uint32_t i = 0; i < n; ++i) {
    if (ids[i] == 0) return false;
    for (uint32_t j = 0; j < i; ++j)
      if (ids[j] == ids[i]) return false;
  }
  for (uint32_t i = 0; i < n; ++i) {
    ring.keys[i].id = ids[i];
    if (!siv_key_init(ring.keys[i].key, secrets[i], kSivKeyBytes)) {
      ring.wipe();
      return false;
    }
  }
  ring.count = n;
  ring.current = current;
  return true;
}

bool cookie_seal(const CookieKey& key, const uint8_t nonce[kNtsCookieNonceBytes], const NtsKeys& keys, uint8_t* out) {
  if (key.id == 0) return false;
  uint8_t plain[2 * kNtsKeyBytes];
  std::memcpy(plain, keys.c2s, kNtsKeyBytes);
  std::memcpy(plain + kNtsKeyBytes, keys.s2c, kNtsKeyBytes);
  proto::store_be32(out, key.id);
  std::memcpy(out + 4, nonce, kNtsCookieNonceBytes);
  const bool ok = siv_seal(key.key, out + 4, kNtsCookieNonceBytes, out, 4, plain, sizeof plain,
                           out + 4 + kNtsCookieNonceBytes);
  wipe_secret(plain, sizeof plain);
  return ok;
}

CookieOpen cookie_open(const CookieKeyRing& ring, const uint8_t* cookie, size_t len, NtsKeys& out) {
  out.wipe();
  if (cookie == nullptr || len != kNtsCookieBytes) return CookieOpen::kBadLength;
  const CookieKey* k = ring.find(proto::load_be32(cookie));
  if (k == nullptr) return CookieOpen::kUnknownKey;
  uint8_t plain[2 * kNtsKeyBytes];
  if (!siv_open(k->key, cookie + 4, kNtsCookieNonceBytes, cookie, 4, cookie + 4 + kNtsCookieNonceBytes,
                kSivTagBytes + sizeof plain, plain))
    return CookieOpen::kBadTag;
  std::memcpy(out.c2s, plain, kNtsKeyBytes);
  std::memcpy(out.s2c, plain + kNtsKeyBytes, kNtsKeyBytes);
  wipe_secret(plain, sizeof plain);
  return CookieOpen::kOk;
}

NonceSource::NonceSource(const uint8_t seed[32]) {
  chacha_set_key(&ctx_, seed);
  const uint8_t iv[CHACHA_NONCE_SIZE] = {};  // one key per source: the counter alone moves
  chacha_set_nonce(&ctx_, iv);
}

NonceSource::~NonceSource() {
  wipe_secret(&ctx_, sizeof ctx_);
  wipe_secret(buf_, sizeof buf_);
}

void NonceSource::refill() {
  std::memset(buf_, 0, sizeof buf_);
  chacha_crypt(&ctx_, sizeof buf_, buf_, buf_);
  pos_ = 0;
}

void NonceSource::fill(uint8_t* out, size_t n) {
  while (n > 0) {
    if (pos_ == sizeof buf_) refill();
    const size_t take = std::min(n, sizeof buf_ - pos_);
    std::memcpy(out, buf_ + pos_, take);
    wipe_secret(buf_ + pos_, take);  // a nonce is handed out once
    pos_ += take;
    out += take;
    n -= take;
  }
}

}  // namespace ntp::crypto
