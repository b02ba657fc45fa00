#include "crypto/mac.h"

#include <nettle/memops.h>

#include "proto/inet.h"

#include <algorithm>
#include <cstring>

#include <string.h>  // explicit_bzero

namespace ntp::crypto {
namespace {

// Nettle's generic CMAC takes the cipher as an untyped function.
void aes128_encrypt_fn(const void* cipher, size_t len, uint8_t* dst, const uint8_t* src) {
  aes128_encrypt(static_cast<const struct aes128_ctx*>(cipher), len, dst, src);
}

}  // namespace

void wipe_secret(void* p, size_t n) noexcept {
  if (p != nullptr && n != 0) explicit_bzero(p, n);
}

const char* mac_type_name(MacType type) {
  switch (type) {
    case MacType::kAes128Cmac: return "AES128";
    case MacType::kHmacSha256: return "HMAC-SHA256";
    case MacType::kSha256: return "SHA256";
    case MacType::kSha1: return "SHA1";
    case MacType::kMd5: return "MD5";
    case MacType::kNone: break;
  }
  return "none";
}

bool mac_type_is_weak(MacType type) { return type == MacType::kMd5 || type == MacType::kSha1; }

size_t mac_digest_bytes(MacType type) {
  switch (type) {
    case MacType::kAes128Cmac: return 16;  // the AES block (RFC 4493, untruncated as RFC 8573 asks)
    case MacType::kHmacSha256:
    case MacType::kSha256: return SHA256_DIGEST_SIZE;
    case MacType::kSha1: return SHA1_DIGEST_SIZE;
    case MacType::kMd5: return MD5_DIGEST_SIZE;
    case MacType::kNone: break;
  }
  return 0;
}

bool mac_key_init(MacKey& out, uint32_t id, MacType type, const uint8_t* secret, size_t secret_len) {
  out = MacKey{};
  if (id == 0 || secret == nullptr || secret_len == 0) return false;
  MacKey k;
  k.id = id;
  k.type = type;
  k.digest_bytes = static_cast<uint8_t>(mac_digest_bytes(type));
  std::memset(&k.state, 0, sizeof k.state);
  {
    // Each part is fixed-length or terminated, so no two keys hash the same bytes.
    static constexpr char kLabel[] = "ntp-appliance key v1";  // hashed with its NUL
    const char* name = mac_type_name(type);
    uint8_t be[4];
    struct sha256_ctx h;
    sha256_init(&h);
    sha256_update(&h, sizeof kLabel, reinterpret_cast<const uint8_t*>(kLabel));
    proto::store_be32(be, id);
    sha256_update(&h, 4, be);
    sha256_update(&h, std::strlen(name) + 1, reinterpret_cast<const uint8_t*>(name));
    proto::store_be32(be, static_cast<uint32_t>(secret_len));
    sha256_update(&h, 4, be);
    sha256_update(&h, secret_len, secret);
    sha256_digest(&h, sizeof k.fingerprint, k.fingerprint);
    wipe_secret(&h, sizeof h);  // its block buffer may hold the secret's tail
  }
  switch (type) {
    case MacType::kAes128Cmac:
      if (secret_len != kAes128KeyBytes) return false;
      aes128_set_encrypt_key(&k.state.cmac.cipher, secret);
      cmac128_set_key(&k.state.cmac.subkeys, &k.state.cmac.cipher, aes128_encrypt_fn);
      break;
    case MacType::kHmacSha256:
      hmac_sha256_set_key(&k.state.hmac, secret_len, secret);
      break;
    // hash(secret || packet): absorb the secret once; each packet continues a copy.
    case MacType::kSha256:
      sha256_init(&k.state.sha256);
      sha256_update(&k.state.sha256, secret_len, secret);
      break;
    case MacType::kSha1:
      sha1_init(&k.state.sha1);
      sha1_update(&k.state.sha1, secret_len, secret);
      break;
    case MacType::kMd5:
      md5_init(&k.state.md5);
      md5_update(&k.state.md5, secret_len, secret);
      break;
    case MacType::kNone:
      return false;
  }
  out = k;
  return true;
}

size_t mac_wire_digest_bytes(const MacKey& key, int version) {
  return version >= 4 ? std::min<size_t>(key.digest_bytes, kV4DigestBytes) : key.digest_bytes;
}

size_t mac_compute(const MacKey& key, const uint8_t* data, size_t len, uint8_t* out, size_t out_bytes) {
  const size_t n = std::min<size_t>(out_bytes, key.digest_bytes);
  if (n == 0) return 0;
  // Each case works on a stack copy of the precomputed state: the key stays
  // read-only (shareable between workers) and nothing is allocated.
  switch (key.type) {
    case MacType::kAes128Cmac: {
      struct cmac128_ctx ctx;
      cmac128_init(&ctx);
      cmac128_update(&ctx, &key.state.cmac.cipher, aes128_encrypt_fn, len, data);
      cmac128_digest(&ctx, &key.state.cmac.subkeys, &key.state.cmac.cipher, aes128_encrypt_fn,
                     static_cast<unsigned>(n), out);
      // Not wiped: the chaining value and block are the packet's, not the key's.
      break;
    }
    case MacType::kHmacSha256: {
      struct hmac_sha256_ctx ctx = key.state.hmac;
      hmac_sha256_update(&ctx, len, data);
      hmac_sha256_digest(&ctx, n, out);
      wipe_secret(&ctx, sizeof ctx);  // the outer and inner states: as good as the secret
      break;
    }
    case MacType::kSha256: {
      struct sha256_ctx ctx = key.state.sha256;
      sha256_update(&ctx, len, data);
      sha256_digest(&ctx, n, out);  // Nettle truncates to n bytes
      wipe_secret(&ctx, sizeof ctx);  // reset by the digest, but its buffer held the secret's tail
      break;
    }
    case MacType::kSha1: {
      struct sha1_ctx ctx = key.state.sha1;
      sha1_update(&ctx, len, data);
      sha1_digest(&ctx, n, out);
      wipe_secret(&ctx, sizeof ctx);
      break;
    }
    case MacType::kMd5: {
      struct md5_ctx ctx = key.state.md5;
      md5_update(&ctx, len, data);
      md5_digest(&ctx, n, out);
      wipe_secret(&ctx, sizeof ctx);
      break;
    }
    case MacType::kNone:
      return 0;
  }
  return n;
}

bool mac_length_allowed(const MacKey& key, size_t digest_bytes, int version) {
  const size_t full = key.digest_bytes;
  if (full == 0) return false;
  return digest_bytes == full || (version == 4 && full > kV4DigestBytes && digest_bytes == kV4DigestBytes);
}

bool mac_verify(const MacKey& key, const uint8_t* data, size_t len, const uint8_t* mac, size_t mac_bytes) {
  const size_t full = key.digest_bytes;
  const bool length_ok = full != 0 && (mac_bytes == full || (full > kV4DigestBytes && mac_bytes == kV4DigestBytes));
  if (!length_ok || mac == nullptr) return false;
  uint8_t expect[kMaxDigestBytes];
  mac_compute(key, data, len, expect, mac_bytes);
  return memeql_sec(expect, mac, mac_bytes) != 0;
}

const char* mac_check_name(MacCheck check) {
  switch (check) {
    case MacCheck::kNoMac: return "none";
    case MacCheck::kCryptoNak: return "crypto-NAK";
    case MacCheck::kOk: return "ok";
    case MacCheck::kUnknownKey: return "unknown key";
    case MacCheck::kBadLength: return "bad MAC length";
    case MacCheck::kBadDigest: return "bad digest";
  }
  return "?";
}

MacResult check_mac(const KeyTable& table, const uint8_t* packet, size_t covered, const uint8_t* mac,
                    size_t mac_len) {
  const int version = packet != nullptr && covered > 0 ? (packet[0] >> 3) & 7 : 0;
  return check_mac(table, packet, covered, mac, mac_len, version);
}

MacResult check_mac(const KeyTable& table, const uint8_t* packet, size_t covered, const uint8_t* mac, size_t mac_len,
                    int version) {
  MacResult r;
  if (mac_len == 0 || mac == nullptr) return r;
  if (mac_len < 4) {
    r.check = MacCheck::kBadLength;
    return r;
  }
  r.key_id = proto::load_be32(mac);
  r.digest_bytes = static_cast<uint8_t>(std::min<size_t>(mac_len - 4, 255));
  if (mac_len == 4) {
    r.check = r.key_id == 0 ? MacCheck::kCryptoNak : MacCheck::kBadLength;
    return r;
  }
  r.key = table.find(r.key_id);
  if (r.key == nullptr) {
    r.check = MacCheck::kUnknownKey;
    return r;
  }
  const size_t n = mac_len - 4;
  if (!mac_length_allowed(*r.key, n, version)) {
    r.check = MacCheck::kBadLength;
    return r;
  }
  r.check = mac_verify(*r.key, packet, covered, mac + 4, n) ? MacCheck::kOk : MacCheck::kBadDigest;
  return r;
}

size_t append_mac(const MacKey& key, uint8_t* packet, size_t covered, size_t digest_bytes) {
  if (key.type == MacType::kNone) return 0;
  // The key ID is not covered by the digest (RFC 5905 7.3: the MAC is over the header and extension fields).
  proto::store_be32(packet + covered, key.id);
  return 4 + mac_compute(key, packet, covered, packet + covered + 4, digest_bytes);
}

KeyTableFingerprint fingerprint(const KeyTable& table) {
  static constexpr char kLabel[] = "ntp-appliance key table v1";  // hashed with its NUL
  const uint32_t n = std::min<uint32_t>(table.count, kMaxKeys);
  uint8_t be[4];
  struct sha256_ctx h;
  sha256_init(&h);
  sha256_update(&h, sizeof kLabel, reinterpret_cast<const uint8_t*>(kLabel));
  proto::store_be32(be, n);
  sha256_update(&h, 4, be);
  for (uint32_t i = 0; i < n; ++i) sha256_update(&h, sizeof table.keys[i].fingerprint, table.keys[i].fingerprint);
  KeyTableFingerprint out;
  sha256_digest(&h, out.size(), out.data());
  return out;
}

std::string fingerprint_hex(const KeyTableFingerprint& fp) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(2 * fp.size());
  for (uint8_t b : fp) {
    s += kDigits[b >> 4];
    s += kDigits[b & 15];
  }
  return s;
}

const MacKey* KeyTable::find(uint32_t id) const {
  const uint32_t* end = ids + std::min<uint32_t>(count, kMaxKeys);
  const uint32_t* it = std::lower_bound(ids, end, id);
  if (id == 0 || it == end || *it != id) return nullptr;
  return &keys[it - ids];
}

bool KeyTable::insert(const MacKey& key) {
  if (key.type == MacType::kNone || key.id == 0 || count >= kMaxKeys) return false;
  uint32_t* end = ids + count;
  uint32_t* it = std::lower_bound(ids, end, key.id);
  if (it != end && *it == key.id) return false;
  const size_t at = static_cast<size_t>(it - ids);
  std::memmove(ids + at + 1, ids + at, (count - at) * sizeof ids[0]);
  std::move_backward(keys + at, keys + count, keys + count + 1);  // each source wiped as it moves
  ids[at] = key.id;
  keys[at] = key;
  ++count;
  return true;
}

}  // namespace ntp::crypto
