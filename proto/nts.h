// NTS extension fields in NTP packets (RFC 8915 section 5; the field format
// of RFC 7822): finding a request's Unique Identifier, cookie, placeholders
// and authenticator by their declared lengths, never past the buffer, and
// writing fields. Pure, no crypto (crypto/nts_cookie.h opens what this
// finds), no allocation.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ntp::proto {

// RFC 8915 section 7.5 (IANA "NTP Extension Field Types").
inline constexpr uint16_t kEfUniqueIdentifier = 0x0104;
inline constexpr uint16_t kEfNtsCookie = 0x0204;
inline constexpr uint16_t kEfNtsCookiePlaceholder = 0x0304;
inline constexpr uint16_t kEfNtsAuthenticator = 0x0404;  // "NTS Authenticator and Encrypted Extension Fields"

inline constexpr size_t kEfHeaderBytes = 4;  // field type, length (RFC 7822 section 3)
inline constexpr size_t kEfMinBytes = 16;    // RFC 7822 section 3: at least 16 octets, a multiple of 4
// RFC 8915 section 5.3: "The string MUST be at least 32 octets long."
inline constexpr size_t kNtsMinUniqueIdBytes = 32;
// RFC 8915 section 5.6: nonce plus Additional Padding at least N_REQ, 16
// octets for AES-SIV-CMAC (whose N_MIN is 1).
inline constexpr size_t kNtsMinNoncePaddedBytes = 16;
// chrony's NTS_MAX_COOKIES: cookies asked for with placeholders beyond this
// are not counted (a reply carries at most this many).
inline constexpr unsigned kNtsMaxCookiesPerReply = 8;
// The longest cookie a request may carry (ours are 100 bytes; chrony's
// NTS_MAX_COOKIE_LENGTH is 256).
inline constexpr size_t kNtsMaxCookieBytes = 256;

enum class NtsParse : uint8_t {
  kOk = 0,
  kNoHeader,           // fewer than 48 bytes
  kBadField,           // a field shorter than 16 octets, not a multiple of 4, or past the end
  kNoUniqueId,         // none (RFC 8915 section 5.7: exactly one)
  kDuplicateUniqueId,
  kShortUniqueId,      // under 32 octets
  kNoCookie,           // none (exactly one)
  kDuplicateCookie,
  kBadCookieLength,    // empty or over kNtsMaxCookieBytes
  kNoAuthenticator,    // none
  kNotLast,            // anything after the authenticator (nothing may follow it: it covers what precedes)
  kBadAuthenticator,   // its nonce or ciphertext lengths do not fit its body, the nonce's padding under 16 octets,
                       // or a ciphertext shorter than the AEAD tag
};
const char* to_string(NtsParse p);

// Where a request's NTS fields are (pointers into the packet parsed).
struct NtsRequestView {
  NtsParse status = NtsParse::kNoHeader;
  const uint8_t* unique_id = nullptr;  // the field's body (its padding included: the echo is byte for byte)
  uint16_t unique_id_len = 0;
  const uint8_t* cookie = nullptr;     // the cookie field's body
  uint16_t cookie_len = 0;
  // Placeholders whose body is as long as the cookie (RFC 8915 section
  // 5.5: "the body MUST have the same length as the cookie"), at most
  // kNtsMaxCookiesPerReply - 1: each asks for one more cookie in the reply.
  uint8_t placeholders = 0;
  // The authenticator: at auth_at (where the associated data ends: the
  // header and every field before it), its nonce and ciphertext (the AEAD's
  // tag first).
  uint16_t auth_at = 0;
  const uint8_t* nonce = nullptr;
  uint16_t nonce_len = 0;
  const uint8_t* ciphertext = nullptr;
  uint16_t ciphertext_len = 0;
  bool ok() const { return status == NtsParse::kOk; }
};

// pkt[0, len): an NTPv4 packet (48-byte header, then extension fields and
// nothing else). Fields of other types before the authenticator are
// skipped (the authenticator covers them; a server ignores what it does
// not know). tag_bytes: the AEAD's tag length, which a ciphertext must
// hold at least.
NtsRequestView parse_nts_request(const uint8_t* pkt, size_t len, size_t tag_bytes);

// RFC 8915 section 5.7: the NTS NAK's kiss code (stratum 0, reference ID).
inline constexpr uint32_t kKissNtsn = 0x4E54534E;  // "NTSN" (refid_from_ascii, which proto/ntp_packet.h has)

// One extension field as next_ef reads it.
struct EfView {
  uint16_t type = 0;
  const uint8_t* body = nullptr;  // after the 4-byte header, its padding included
  uint16_t body_len = 0;
  uint16_t at = 0;                // the field's offset in the buffer walked
};
enum class EfNext : uint8_t { kField, kEnd, kBad };
// The field at buf[pos, len): kField (f filled, pos moved past it), kEnd
// (pos == len), or kBad (shorter than 16 octets, not a multiple of 4, or
// past len). Walks extension fields anywhere: after a header, or inside
// an authenticator's plaintext (RFC 8915 section 5.6).
EfNext next_ef(const uint8_t* buf, size_t len, size_t& pos, EfView& f);

// Where a server's reply's NTS fields are (RFC 8915 section 5.7): its
// Unique Identifier and its authenticator, which must be the last field
// (the plaintext holds the new cookies). Fields of other types before the
// authenticator are skipped; an NTS NAK has a Unique Identifier and no
// authenticator (status kNoAuthenticator with unique_id set).
struct NtsReplyView {
  NtsParse status = NtsParse::kNoHeader;
  const uint8_t* unique_id = nullptr;
  uint16_t unique_id_len = 0;
  uint16_t auth_at = 0;
  const uint8_t* nonce = nullptr;
  uint16_t nonce_len = 0;
  const uint8_t* ciphertext = nullptr;
  uint16_t ciphertext_len = 0;
  bool ok() const { return status == NtsParse::kOk; }
};
NtsReplyView parse_nts_reply(const uint8_t* pkt, size_t len, size_t tag_bytes);

// The padded length of a body (a multiple of 4).
constexpr size_t ef_pad4(size_t n) { return (n + 3) & ~size_t{3}; }
// The length of a field with a body of body_len bytes: header and padding,
// at least kEfMinBytes.
constexpr size_t ef_field_bytes(size_t body_len) {
  const size_t n = kEfHeaderBytes + ef_pad4(body_len);
  return n < kEfMinBytes ? kEfMinBytes : n;
}

// Writes a field of `type` with body[0, body_len) at out, zero-padded to
// ef_field_bytes(body_len), which it returns. body may be null (a zero
// body); it may not overlap out except at out + kEfHeaderBytes exactly (a
// body already in place).
size_t write_ef(uint8_t* out, uint16_t type, const uint8_t* body, size_t body_len);

// The length of an authenticator field holding a nonce of nonce_len and a
// ciphertext of ciphertext_len bytes (with the Additional Padding that
// brings the nonce to kNtsMinNoncePaddedBytes).
size_t nts_authenticator_bytes(size_t nonce_len, size_t ciphertext_len);
// Writes the authenticator's header, lengths and nonce at out and zeroes its
// padding; the caller seals the ciphertext into out + nts_ciphertext_offset(nonce_len).
// Returns nts_authenticator_bytes(nonce_len, ciphertext_len).
size_t write_nts_authenticator(uint8_t* out, const uint8_t* nonce, size_t nonce_len, size_t ciphertext_len);
constexpr size_t nts_ciphertext_offset(size_t nonce_len) { return kEfHeaderBytes + 4 + ef_pad4(nonce_len); }

}  // namespace ntp::proto
