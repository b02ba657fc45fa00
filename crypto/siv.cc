// AEAD_AES_SIV_CMAC_256 over Nettle (see siv.h).
#include "crypto/siv.h"

namespace ntp::crypto {

bool siv_key_init(SivKey& out, const uint8_t* key, size_t len) {
  out.wipe();
  if (key == nullptr || len != kSivKeyBytes) return false;
  siv_cmac_aes128_set_key(&out.ctx, key);
  out.ready = true;
  return true;
}

bool siv_seal(const SivKey& key, const uint8_t* nonce, size_t nonce_len, const uint8_t* ad, size_t ad_len,
              const uint8_t* plain, size_t plain_len, uint8_t* out) {
  if (!key.ready || nonce == nullptr || nonce_len < kSivMinNonceBytes) return false;
  siv_cmac_aes128_encrypt_message(&key.ctx, nonce_len, nonce, ad_len, ad, kSivTagBytes + plain_len, out, plain);
  return true;
}

bool siv_open(const SivKey& key, const uint8_t* nonce, size_t nonce_len, const uint8_t* ad, size_t ad_len,
              const uint8_t* sealed, size_t sealed_len, uint8_t* out) {
  if (!key.ready || nonce == nullptr || nonce_len < kSivMinNonceBytes || sealed_len < kSivTagBytes) return false;
  const size_t plain_len = sealed_len - kSivTagBytes;
  if (siv_cmac_aes128_decrypt_message(&key.ctx, nonce_len, nonce, ad_len, ad, plain_len, out, sealed) == 1)
    return true;
  // Nettle has decrypted into out before it compared the tags.
  wipe_secret(out, plain_len);
  return false;
}

}  // namespace ntp::crypto
