// NTS cookies (RFC 8915 section 6's suggested format): what a client
// presents so that a stateless server can find the request's C2S and S2C
// keys again. Ours, 100 bytes:
//
//   key ID (4, big-endian) | nonce (16) | AEAD_AES_SIV_CMAC_256 under the
//   cookie key of that ID, associated data the key ID, of C2S (32) || S2C
//   (32): tag (16) then ciphertext (64)
//
// The algorithm is not in the cookie: ours is only ever AES-SIV-CMAC-256
// (a second one would take a key ID bit). Cookie keys are the control
// plane's (generated with getrandom, rotated, published with their IDs);
// a ring holds the current one and the few before it, so that the cookies
// of the last rotations still open. Hot path: cookie_open and cookie_seal
// allocate nothing, lock nothing and make no system call.
#pragma once

#include <cstddef>
#include <cstdint>

#include <nettle/chacha.h>

#include "crypto/siv.h"

namespace ntp::crypto {

inline constexpr size_t kNtsCookieNonceBytes = 16;
inline constexpr size_t kNtsKeyBytes = kSivKeyBytes;  // C2S and S2C: AES-SIV-CMAC-256 keys
inline constexpr size_t kNtsCookieBytes = 4 + kNtsCookieNonceBytes + kSivTagBytes + 2 * kNtsKeyBytes;  // 100
inline constexpr size_t kMaxCookieKeys = 8;  // the current key and up to 7 before it

// The two keys NTS-KE exported for one client (RFC 8915 section 5.1).
struct NtsKeys {
  uint8_t c2s[kNtsKeyBytes] = {};
  uint8_t s2c[kNtsKeyBytes] = {};
  ~NtsKeys() { wipe(); }
  void wipe() noexcept { wipe_secret(this, sizeof *this); }
};

struct CookieKey {
  uint32_t id = 0;  // never 0 in a ring
  SivKey key;
};

// The cookie keys a server opens cookies with: sorted by nothing, found by
// ID among at most kMaxCookieKeys (a compare each); `current` seals.
struct CookieKeyRing {
  uint32_t count = 0;
  uint32_t current = 0;  // index of the key that seals new cookies
  CookieKey keys[kMaxCookieKeys];

  const CookieKey* find(uint32_t id) const {
    for (uint32_t i = 0; i < count && i < kMaxCookieKeys; ++i)
      if (keys[i].id == id && id != 0) return &keys[i];
    return nullptr;
  }
  const CookieKey* sealing() const { return current < count ? &keys[current] : nullptr; }
  void wipe() noexcept { wipe_secret(this, sizeof *this); }
  ~CookieKeyRing() { wipe(); }
};

// A ring from raw key material, off the hot path: ids[i] with
// secrets[i] (kSivKeyBytes each), `current` the index that seals. False
// (and the ring empty) when n is 0 or above kMaxCookieKeys, current is out
// of range, an ID is 0 or repeated.
bool cookie_ring_init(CookieKeyRing& ring, const uint32_t* ids, const uint8_t (*secrets)[kSivKeyBytes], uint32_t n,
                      uint32_t current);

// Seals keys into a cookie under `key` with the given nonce (fresh for every
// cookie: the caller's CSPRNG); writes kNtsCookieBytes to out.
bool cookie_seal(const CookieKey& key, const uint8_t nonce[kNtsCookieNonceBytes], const NtsKeys& keys, uint8_t* out);

enum class CookieOpen : uint8_t {
  kOk = 0,
  kBadLength,   // not kNtsCookieBytes
  kUnknownKey,  // a key ID not in the ring (retired, or never ours)
  kBadTag,      // forged or damaged
};
const char* to_string(CookieOpen c);

// Opens cookie[0, len) with the ring's key of its ID: kOk and the keys in
// out, else out wiped.
CookieOpen cookie_open(const CookieKeyRing& ring, const uint8_t* cookie, size_t len, NtsKeys& out);

// Nonces for cookies and replies, per worker: ChaCha20's keystream (Nettle)
// under a key from getrandom at start, 256 bytes at a time, so no nonce
// costs a system call. Not for sharing between threads.
class NonceSource {
 public:
  // seed: kSivKeyBytes of getrandom output (the caller's, off the hot path).
  explicit NonceSource(const uint8_t seed[32]);
  ~NonceSource();
  NonceSource(const NonceSource&) = delete;
  NonceSource& operator=(const NonceSource&) = delete;
  // The next n (at most 256) bytes of keystream into out.
  void fill(uint8_t* out, size_t n);

 private:
  void refill();
  struct chacha_ctx ctx_;
  uint8_t buf_[256];
  size_t pos_ = sizeof buf_;
};

}  // namespace ntp::crypto
