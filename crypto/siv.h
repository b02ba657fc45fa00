// AEAD_AES_SIV_CMAC_256 (RFC 5297 section 6; IANA AEAD algorithm 15), the
// AEAD that NTS requires of every implementation (RFC 8915 section 5.1):
// Nettle's siv_cmac_aes128, whose 32-byte key is two AES-128 keys (S2V's
// CMAC and CTR's). Nothing here is hand-written crypto.
//
// Nettle's message interface is RFC 5297's nonce-based form with one
// associated-data string: S2V(K, AD, nonce, plaintext), the output the
// 16-byte synthetic IV then the ciphertext, as chronyd and NTPsec use it for
// NTS (the AD is the NTP packet up to the authenticator, RFC 8915 section
// 5.6). Hot path: no allocation, no lock, no system call.
#pragma once

#include <nettle/siv-cmac.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace ntp::crypto {

inline constexpr uint16_t kAeadAesSivCmac256 = 15;  // RFC 8915 section 5.1 / IANA "AEAD Algorithms"
inline constexpr size_t kSivKeyBytes = 32;          // SIV_CMAC_AES128_KEY_SIZE
inline constexpr size_t kSivTagBytes = 16;          // SIV_DIGEST_SIZE: the synthetic IV
inline constexpr size_t kSivMinNonceBytes = 1;      // SIV_MIN_NONCE_SIZE (Nettle's rule)

void wipe_secret(void* p, size_t n) noexcept;  // mac.h's

// A key with its schedules expanded (two AES-128 schedules and CMAC's
// subkeys), ready for per-packet use. Holds no pointer: copy it anywhere;
// wiped when destroyed, moved from or assigned over.
struct SivKey {
  bool ready = false;
  struct siv_cmac_aes128_ctx ctx;

  SivKey() noexcept { std::memset(static_cast<void*>(&ctx), 0, sizeof ctx); }
  SivKey(const SivKey& o) noexcept { copy_from(o); }
  SivKey(SivKey&& o) noexcept {
    copy_from(o);
    o.wipe();
  }
  SivKey& operator=(const SivKey& o) noexcept {
    if (this != &o) copy_from(o);
    return *this;
  }
  SivKey& operator=(SivKey&& o) noexcept {
    if (this != &o) {
      copy_from(o);
      o.wipe();
    }
    return *this;
  }
  ~SivKey() { wipe(); }
  void wipe() noexcept { wipe_secret(this, sizeof *this); }

 private:
  void copy_from(const SivKey& o) noexcept { std::memcpy(static_cast<void*>(this), &o, sizeof *this); }
};
static_assert(std::is_standard_layout_v<SivKey>);

// Expands key[0, len); false (and `out` not ready) unless len is kSivKeyBytes.
bool siv_key_init(SivKey& out, const uint8_t* key, size_t len);

// Seals plain[0, plain_len) under key with nonce and ad: writes the tag then
// the ciphertext, kSivTagBytes + plain_len bytes, to out. out may not
// overlap ad, nor plain except as plain == out + kSivTagBytes (sealing in
// place: Nettle reads the plaintext for S2V before it writes the tag, and
// its CTR runs in place). False, writing nothing, when the key is not ready
// or the nonce is shorter than kSivMinNonceBytes.
bool siv_seal(const SivKey& key, const uint8_t* nonce, size_t nonce_len, const uint8_t* ad, size_t ad_len,
              const uint8_t* plain, size_t plain_len, uint8_t* out);

// Opens sealed[0, sealed_len) (tag, then ciphertext): true and the
// sealed_len - kSivTagBytes bytes of plaintext in out when the tag is
// right; false when it is not (out then zeroed: nothing unauthenticated is
// left there), the key is not ready, the nonce too short, or sealed_len
// below kSivTagBytes. out must not overlap sealed or ad.
bool siv_open(const SivKey& key, const uint8_t* nonce, size_t nonce_len, const uint8_t* ad, size_t ad_len,
              const uint8_t* sealed, size_t sealed_len, uint8_t* out);

}  // namespace ntp::crypto
