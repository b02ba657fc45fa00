// Symmetric-key MACs of NTP packets (RFC 5905 section 7.3, RFC 8573): the
// per-key contexts, precomputed off the hot path, and the per-packet compute
// and verify. The primitives are Nettle's; nothing here is hand-written crypto.
//
// The digest for each type is what chronyd and ntpd/NTPsec put in a packet:
//   AES128       CMAC-AES-128 over the packet (RFC 8573), 16 bytes
//   HMAC-SHA256  HMAC-SHA-256 (RFC 2104) over the packet, keyed by the secret
//                (the seed vendor's `authentication-mode hmac-sha256`)
//   SHA256, SHA1, MD5  hash(secret || packet): the reference implementation's
//                digest (RFC 5905 7.3's MAC field: key ID, then the digest;
//                chrony keys.c generate_auth, NTPsec macencrypt.c digest_encrypt)
// Lengths: full digests (16, 32, 32, 20, 16 bytes); in an NTPv4 packet chrony
// and NTPsec's ntpd truncate every digest to 20 bytes (RFC 7822: the last
// extension field is at least 28 octets, so a tail of 24 or fewer is a MAC), see
// mac_wire_digest_bytes. A verifier accepts the full or the 20-byte form.
//
// Hot path: mac_compute, mac_verify and KeyTable::find allocate nothing, lock
// nothing and make no system call. MacKey and KeyTable hold no pointer (copy
// them anywhere) and wipe what they held, the secret's precomputed state,
// when destroyed, moved from or assigned over: they are as good as the secret.
#pragma once

#include <nettle/aes.h>
#include <nettle/cmac.h>
#include <nettle/hmac.h>
#include <nettle/md5.h>
#include <nettle/sha1.h>
#include <nettle/sha2.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

namespace ntp::crypto {

enum class MacType : uint8_t {
  kNone = 0,
  kAes128Cmac,  // keys file: AES128
  kHmacSha256,  // keys file: HMAC-SHA256
  kSha256,      // keys file: SHA256
  kSha1,        // keys file: SHA1 (weak)
  kMd5,         // keys file: MD5 (weak)
};

// The keys file's name of a type ("AES128", ...), "none" for kNone.
const char* mac_type_name(MacType type);
// MD5 and SHA1: legacy interop only, the caller logs a warning.
bool mac_type_is_weak(MacType type);
// The full digest length in bytes (0 for kNone).
size_t mac_digest_bytes(MacType type);

inline constexpr size_t kMaxDigestBytes = 32;   // SHA-256
// chrony's NTP_MIN_MAC_LENGTH (4 + 16): a shorter digest is never a MAC.
inline constexpr size_t kMinDigestBytes = 16;
// chrony's NTP_MAX_V4_MAC_LENGTH (4 + 20) and NTPsec's MAX_BARE_MAC_LENGTH:
// the digest in an NTPv4 packet (RFC 7822: the last extension field with no
// MAC after it is at least 28 octets, so a tail of 24 or fewer is a MAC).
inline constexpr size_t kV4DigestBytes = 20;
inline constexpr size_t kAes128KeyBytes = 16;

// explicit_bzero: a store the compiler may not drop as dead.
void wipe_secret(void* p, size_t n) noexcept;

// One key, ready for per-packet use. Holds no pointer: copy it anywhere.
struct MacKey {
  uint32_t id = 0;                   // 1..2^32-1; 0 (the crypto-NAK's) is never a key
  MacType type = MacType::kNone;
  uint8_t digest_bytes = 0;          // mac_digest_bytes(type)
  // SHA-256("ntp-appliance key v1" || 0 || id (be32) || type name || 0 ||
  // secret length (be32) || secret): what fingerprint(KeyTable) hashes, so a
  // table can be fingerprinted without holding the secrets (as secret as they).
  uint8_t fingerprint[32] = {};
  union State {
    struct Cmac {                    // the AES key schedule and CMAC's subkeys K1, K2
      struct cmac128_key subkeys;
      struct aes128_ctx cipher;
    } cmac;
    struct hmac_sha256_ctx hmac;     // outer and inner states after the padded key
    struct sha256_ctx sha256;        // the hash states after absorbing the secret
    struct sha1_ctx sha1;
    struct md5_ctx md5;
  } state;

  MacKey() = default;
  MacKey(const MacKey& o) noexcept { copy_from(o); }
  MacKey(MacKey&& o) noexcept {
    copy_from(o);
    o.wipe();
  }
  MacKey& operator=(const MacKey& o) noexcept {
    if (this != &o) copy_from(o);  // every byte: nothing of the old key stays
    return *this;
  }
  MacKey& operator=(MacKey&& o) noexcept {
    if (this != &o) {
      copy_from(o);
      o.wipe();
    }
    return *this;
  }
  ~MacKey() { wipe(); }
  // Every byte zeroed: id 0, kNone, no state.
  void wipe() noexcept { wipe_secret(this, sizeof *this); }

 private:
  // Byte for byte (padding and the union's unused tail too): the members
  // are all trivially copyable.
  void copy_from(const MacKey& o) noexcept { std::memcpy(static_cast<void*>(this), &o, sizeof *this); }
};
static_assert(std::is_standard_layout_v<MacKey> && std::is_nothrow_move_constructible_v<MacKey>);

// Precompute a key (off the hot path). False, with `out` left as kNone, when
// the type is kNone, id is 0, the secret is empty, or an AES128 secret is not
// exactly 16 bytes (RFC 8573: AES-128).
bool mac_key_init(MacKey& out, uint32_t id, MacType type, const uint8_t* secret, size_t secret_len);

// The digest length to put in a packet we originate (a request, a peer
// packet): in NTPv4 at most kV4DigestBytes (chrony ntp_auth.c and NTPsec's
// ntpd truncate to 20; ntpdig 1.2.2 sends SHA256's 32, which mac_verify
// takes too), in NTPv3 and older the full digest. A reply uses the
// request's length instead (see mac_verify).
size_t mac_wire_digest_bytes(const MacKey& key, int version);

// The MAC of data[0, len), its first min(out_bytes, digest_bytes) bytes
// written to out; returns that count (0 for a kNone key).
size_t mac_compute(const MacKey& key, const uint8_t* data, size_t len, uint8_t* out,
                   size_t out_bytes = kMaxDigestBytes);

// Whether a digest of digest_bytes may stand for key's in a packet of this
// NTP version: the full digest always; the first kV4DigestBytes of a longer
// one only in NTPv4 (RFC 7822's 24-octet MAC; chrony's check_symmetric_auth
// takes the truncated form in NTPv4 only, and so do we: NTPv3 and older
// carry the full digest, chronyd sends SHA256 keys' in NTPv3 for that).
bool mac_length_allowed(const MacKey& key, size_t digest_bytes, int version);

// Whether mac[0, mac_bytes) is the MAC of data[0, len) under key. mac_bytes
// must be the full digest, or kV4DigestBytes for a longer digest (the NTPv4
// truncation: the version is check_mac's to apply); anything else is false.
// The compare is constant-time (Nettle's memeql_sec).
bool mac_verify(const MacKey& key, const uint8_t* data, size_t len, const uint8_t* mac, size_t mac_bytes);

// The keys of one keys file, sorted by id, found by binary search over the
// ids alone (one small array: the lookup touches a few cache lines, then the
// one key). Built off the hot path (crypto/keys.h: build_key_table), swapped
// in whole by its owner.
inline constexpr size_t kMaxKeys = 256;
struct KeyTable {
  uint32_t count = 0;
  uint32_t ids[kMaxKeys] = {};  // strictly increasing in [0, count)
  MacKey keys[kMaxKeys];

  KeyTable() = default;
  KeyTable(const KeyTable&) = default;             // each key copied
  KeyTable& operator=(const KeyTable&) = default;  // each key assigned over (MacKey's: nothing stays)
  // A moved-from table is empty and wiped.
  KeyTable(KeyTable&& o) noexcept : KeyTable(o) { o.clear(); }
  KeyTable& operator=(KeyTable&& o) noexcept {
    if (this != &o) {
      *this = o;
      o.clear();
    }
    return *this;
  }
  ~KeyTable() { clear(); }
  // Empty, every byte zeroed (ids too).
  void clear() noexcept { wipe_secret(this, sizeof *this); }

  // The key with this id, or nullptr (also for id 0).
  const MacKey* find(uint32_t id) const;
  // Insert keeping the order; false if full, if id is already there or if
  // key.type is kNone. Off the hot path.
  bool insert(const MacKey& key);
};

// A table's fingerprint, for two daemons that loaded the same keys file to
// compare their tables without showing a secret: the first 16 bytes of
// SHA-256("ntp-appliance key table v1" || 0 || count (be32) || each key's
// MacKey::fingerprint in ID order). Equal tables (same IDs, types and
// secrets) give equal fingerprints; a different ID, type or secret a
// different one. The empty table's is fixed: b50919441b5cf9f46d5ac38903801dd7
// (kEmptyKeyTableFingerprint). A short or guessable secret can be found
// from a fingerprint by trying candidates, as from any MAC made with it:
// show it to operators, do not publish it. Off the hot path.
using KeyTableFingerprint = std::array<uint8_t, 16>;
inline constexpr KeyTableFingerprint kEmptyKeyTableFingerprint = {
    0xb5, 0x09, 0x19, 0x44, 0x1b, 0x5c, 0xf9, 0xf4, 0x6d, 0x5a, 0xc3, 0x89, 0x03, 0x80, 0x1d, 0xd7};
KeyTableFingerprint fingerprint(const KeyTable& table);
// Lower-case hex, 32 characters.
std::string fingerprint_hex(const KeyTableFingerprint& fp);

// The MAC field of a packet (RFC 5905 section 7.3: a 32-bit key identifier,
// then the digest), checked against a table: what a responder or an
// association decides from. Where the field starts (after the header and
// any extension fields) is the packet parser's business (proto::parse).
enum class MacCheck : uint8_t {
  kNoMac,       // no MAC field (mac_len 0)
  kCryptoNak,   // 4 bytes, key ID 0 (RFC 5905 section 7.4): the peer could not authenticate us
  kOk,          // a known key and the right digest
  kUnknownKey,  // a key ID not in the table (0 with a digest included)
  kBadLength,   // a digest length the key's type does not allow (mac_verify's rule)
  kBadDigest,   // the digest is wrong: a forgery, or a different secret
};
const char* mac_check_name(MacCheck check);

struct MacResult {
  MacCheck check = MacCheck::kNoMac;
  uint32_t key_id = 0;
  uint8_t digest_bytes = 0;       // of the field (a reply uses the same)
  const MacKey* key = nullptr;    // kOk, kBadLength, kBadDigest: the table's key
};

// The MAC field mac[0, mac_len) of a packet whose first `covered` bytes it
// authenticates, in a packet of NTP `version`: a digest shortened to 20
// bytes is kBadLength below NTPv4 (mac_length_allowed).
MacResult check_mac(const KeyTable& table, const uint8_t* packet, size_t covered, const uint8_t* mac, size_t mac_len,
                    int version);
// The same with the version read from the packet's own header (VN, RFC 5905
// figure 8: bits 3-5 of byte 0, which the MAC covers); 0 when covered is 0.
MacResult check_mac(const KeyTable& table, const uint8_t* packet, size_t covered, const uint8_t* mac, size_t mac_len);

// Writes the MAC field (key ID, then digest_bytes of digest) of
// packet[0, covered) at packet + covered; returns its length, 4 +
// min(digest_bytes, key's digest), or 0 for a kNone key. The buffer must
// hold covered + 4 + kMaxDigestBytes.
size_t append_mac(const MacKey& key, uint8_t* packet, size_t covered, size_t digest_bytes);

}  // namespace ntp::crypto
