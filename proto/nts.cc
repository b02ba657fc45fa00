// NTS extension fields (see nts.h).
#include "proto/nts.h"

#include <algorithm>
#include <cstring>

#include "proto/inet.h"
#include "proto/ntp_packet.h"

namespace ntp::proto {

const char* to_string(NtsParse p) {
  switch (p) {
    case NtsParse::kOk: return "ok";
    case NtsParse::kNoHeader: return "no NTP header";
    case NtsParse::kBadField: return "bad extension field";
    case NtsParse::kNoUniqueId: return "no unique identifier";
    case NtsParse::kDuplicateUniqueId: return "two unique identifiers";
    case NtsParse::kShortUniqueId: return "unique identifier under 32 octets";
    case NtsParse::kNoCookie: return "no cookie";
    case NtsParse::kDuplicateCookie: return "two cookies";
    case NtsParse::kBadCookieLength: return "bad cookie length";
    case NtsParse::kNoAuthenticator: return "no authenticator";
    case NtsParse::kNotLast: return "fields after the authenticator";
    case NtsParse::kBadAuthenticator: return "bad authenticator";
  }
  return "?";
}

namespace {

NtsRequestView fail(NtsParse p) {
  NtsRequestView v;
  v.status = p;
  return v;
}

// The authenticator's body (RFC 8915 section 5.6): Nonce Length, Ciphertext
// Length, the nonce and the ciphertext each padded to 4 octets, then
// Additional Padding; the nonce and what pads it at least 16 octets.
bool read_authenticator(const uint8_t* body, size_t body_len, size_t tag_bytes, NtsRequestView& v) {
  if (body_len < 4) return false;
  const size_t nonce_len = load_be16(body);
  const size_t ct_len = load_be16(body + 2);
  if (nonce_len == 0 || ct_len < tag_bytes) return false;
  const size_t fixed = 4 + ef_pad4(nonce_len) + ef_pad4(ct_len);
  if (fixed > body_len) return false;
  // The nonce with all the padding there is (its own and the Additional).
  if (body_len - 4 - ef_pad4(ct_len) < kNtsMinNoncePaddedBytes) return false;
  v.nonce = body + 4;
  v.nonce_len = static_cast<uint16_t>(nonce_len);
  v.ciphertext = body + 4 + ef_pad4(nonce_len);
  v.ciphertext_len = static_cast<uint16_t>(ct_len);
  return true;
}

}  // namespace

NtsRequestView parse_nts_request(const uint8_t* pkt, size_t len, size_t tag_bytes) {
  if (pkt == nullptr || len < kHeaderLen) return fail(NtsParse::kNoHeader);
  NtsRequestView v;
  bool have_auth = false;
  bool any_placeholder = false;
  size_t pos = kHeaderLen;
  while (pos < len) {
    if (have_auth) return fail(NtsParse::kNotLast);
    if (len - pos < kEfHeaderBytes) return fail(NtsParse::kBadField);
    const uint16_t type = load_be16(pkt + pos);
    const size_t field_len = load_be16(pkt + pos + 2);
    if (field_len < kEfMinBytes || field_len % 4 != 0 || field_len > len - pos) return fail(NtsParse::kBadField);
    const uint8_t* body = pkt + pos + kEfHeaderBytes;
    const size_t body_len = field_len - kEfHeaderBytes;
    switch (type) {
      case kEfUniqueIdentifier:
        if (v.unique_id != nullptr) return fail(NtsParse::kDuplicateUniqueId);
        if (body_len < kNtsMinUniqueIdBytes) return fail(NtsParse::kShortUniqueId);
        v.unique_id = body;
        v.unique_id_len = static_cast<uint16_t>(body_len);
        break;
      case kEfNtsCookie:
        if (v.cookie != nullptr) return fail(NtsParse::kDuplicateCookie);
        if (body_len > kNtsMaxCookieBytes) return fail(NtsParse::kBadCookieLength);
        v.cookie = body;
        v.cookie_len = static_cast<uint16_t>(body_len);
        break;
      case kEfNtsCookiePlaceholder: any_placeholder = true; break;  // counted below, against the cookie
      case kEfNtsAuthenticator:
        v.auth_at = static_cast<uint16_t>(pos);
        if (!read_authenticator(body, body_len, tag_bytes, v)) return fail(NtsParse::kBadAuthenticator);
        have_auth = true;
        break;
      default: break;  // another field, covered by the authenticator: ignored
    }
    pos += field_len;
  }
  if (v.unique_id == nullptr) return fail(NtsParse::kNoUniqueId);
  if (v.cookie == nullptr) return fail(NtsParse::kNoCookie);
  if (!have_auth) return fail(NtsParse::kNoAuthenticator);
  // Only placeholders as long as the cookie ask for cookies (a shorter one
  // would make the reply longer than the request); the cookie may come
  // after them, so a second walk over the fields already checked.
  unsigned asked = 0;
  for (size_t at = kHeaderLen; any_placeholder && at < v.auth_at;) {
    const size_t field_len = load_be16(pkt + at + 2);
    if (load_be16(pkt + at) == kEfNtsCookiePlaceholder && field_len - kEfHeaderBytes == v.cookie_len) ++asked;
    at += field_len;
  }
  v.placeholders = static_cast<uint8_t>(std::min<unsigned>(asked, kNtsMaxCookiesPerReply - 1));
  v.status = NtsParse::kOk;
  return v;
}

EfNext next_ef(const uint8_t* buf, size_t len, size_t& pos, EfView& f) {
  if (pos >= len) return EfNext::kEnd;
  if (len - pos < kEfHeaderBytes) return EfNext::kBad;
  const size_t field_len = load_be16(buf + pos + 2);
  if (field_len < kEfMinBytes || field_len % 4 != 0 || field_len > len - pos) return EfNext::kBad;
  f.type = load_be16(buf + pos);
  f.body = buf + pos + kEfHeaderBytes;
  f.body_len = static_cast<uint16_t>(field_len - kEfHeaderBytes);
  f.at = static_cast<uint16_t>(pos);
  pos += field_len;
  return EfNext::kField;
}

NtsReplyView parse_nts_reply(const uint8_t* pkt, size_t len, size_t tag_bytes) {
  NtsReplyView r;
  if (pkt == nullptr || len < kHeaderLen) return r;
  size_t pos = kHeaderLen;
  EfView f;
  bool have_auth = false;
  for (EfNext n; (n = next_ef(pkt, len, pos, f)) != EfNext::kEnd;) {
    if (n == EfNext::kBad) {
      r.status = NtsParse::kBadField;
      return r;
    }
    if (have_auth) {
      r.status = NtsParse::kNotLast;
      return r;
    }
    if (f.type == kEfUniqueIdentifier) {
      if (r.unique_id != nullptr) {
        r.status = NtsParse::kDuplicateUniqueId;
        return r;
      }
      r.unique_id = f.body;
      r.unique_id_len = f.body_len;
    } else if (f.type == kEfNtsAuthenticator) {
      NtsRequestView a;
      if (!read_authenticator(f.body, f.body_len, tag_bytes, a)) {
        r.status = NtsParse::kBadAuthenticator;
        return r;
      }
      r.auth_at = f.at;
      r.nonce = a.nonce;
      r.nonce_len = a.nonce_len;
      r.ciphertext = a.ciphertext;
      r.ciphertext_len = a.ciphertext_len;
      have_auth = true;
    }
  }
  r.status = r.unique_id == nullptr ? NtsParse::kNoUniqueId : !have_auth ? NtsParse::kNoAuthenticator : NtsParse::kOk;
  return r;
}

size_t write_ef(uint8_t* out, uint16_t type, const uint8_t* body, size_t body_len) {
  const size_t n = ef_field_bytes(body_len);
  if (body != nullptr && body != out + kEfHeaderBytes) std::memmove(out + kEfHeaderBytes, body, body_len);
  if (body == nullptr) std::memset(out + kEfHeaderBytes, 0, body_len);
  std::memset(out + kEfHeaderBytes + body_len, 0, n - kEfHeaderBytes - body_len);
  store_be16(out, type);
  store_be16(out + 2, static_cast<uint16_t>(n));
  return n;
}

size_t nts_authenticator_bytes(size_t nonce_len, size_t ciphertext_len) {
  const size_t nonce_padded = std::max(ef_pad4(nonce_len), kNtsMinNoncePaddedBytes);
  return std::max(kEfHeaderBytes + 4 + nonce_padded + ef_pad4(ciphertext_len), kEfMinBytes);
}

size_t write_nts_authenticator(uint8_t* out, const uint8_t* nonce, size_t nonce_len, size_t ciphertext_len) {
  const size_t n = nts_authenticator_bytes(nonce_len, ciphertext_len);
  std::memset(out, 0, n);
  store_be16(out, kEfNtsAuthenticator);
  store_be16(out + 2, static_cast<uint16_t>(n));
  store_be16(out + 4, static_cast<uint16_t>(nonce_len));
  store_be16(out + 6, static_cast<uint16_t>(ciphertext_len));
  std::memcpy(out + 8, nonce, nonce_len);
  // The ciphertext goes right after the nonce's own padding; the
  // Additional Padding (to 16 octets of nonce) follows the ciphertext.
  return n;
}

}  // namespace ntp::proto
