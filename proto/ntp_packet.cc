#include "proto/ntp_packet.h"


namespace ntp::proto {

const char* to_string(ParseStatus s) {
  switch (s) {
    case ParseStatus::kOk: return "ok";
    case ParseStatus::kTooShort: return "too short";
    case ParseStatus::kBadVersion: return "bad version";
    case ParseStatus::kBadExtension: return "bad extension field";
    case ParseStatus::kBadTrailer: return "bad trailer";
  }
  return "?";
}

NtpHeader read_header(const uint8_t* p) {
  NtpHeader h;
  h.leap = static_cast<Leap>(p[offs::kLiVnMode] >> 6);
  h.version = (p[offs::kLiVnMode] >> 3) & 7;
  h.mode = static_cast<Mode>(p[offs::kLiVnMode] & 7);
  h.stratum = p[offs::kStratum];
  h.poll_log2 = static_cast<int8_t>(p[offs::kPoll]);
  h.precision_log2 = static_cast<int8_t>(p[offs::kPrecision]);
  h.root_delay = load_be32(p + offs::kRootDelay);
  h.root_dispersion = load_be32(p + offs::kRootDispersion);
  h.refid = load_be32(p + offs::kRefid);
  h.reference = load_ts(p + offs::kReference);
  h.origin = load_ts(p + offs::kOrigin);
  h.receive = load_ts(p + offs::kReceive);
  h.transmit = load_ts(p + offs::kTransmit);
  return h;
}

void write_header(const NtpHeader& h, uint8_t* p) {
  p[offs::kLiVnMode] = static_cast<uint8_t>((static_cast<uint8_t>(h.leap) << 6) | ((h.version & 7) << 3) |
                                            (static_cast<uint8_t>(h.mode) & 7));
  p[offs::kStratum] = h.stratum;
  p[offs::kPoll] = static_cast<uint8_t>(h.poll_log2);
  p[offs::kPrecision] = static_cast<uint8_t>(h.precision_log2);
  store_be32(p + offs::kRootDelay, h.root_delay);
  store_be32(p + offs::kRootDispersion, h.root_dispersion);
  store_be32(p + offs::kRefid, h.refid);
  store_ts(p + offs::kReference, h.reference);
  store_ts(p + offs::kOrigin, h.origin);
  store_ts(p + offs::kReceive, h.receive);
  store_ts(p + offs::kTransmit, h.transmit);
}

namespace {
// What follows the header of an NTPv4 packet, as RFC 7822 (which updates
// RFC 5905 section 7.5) makes it parse deterministically and as
// chrony reads it (ntp_core.c parse_packet, ntp_ext.c NEF_ParseField):
//  - an extension field is at least 16 octets and a multiple of 4;
//  - what remains after the header or a field is a MAC when it is 20 or 24
//    octets (key ID + 16-octet MD5/CMAC or 20-octet SHA-1/truncated digest,
//    chrony's NTP_MIN_MAC_LENGTH..NTP_MAX_V4_MAC_LENGTH), so a last field
//    with no MAC after it is at least 28 octets;
//  - 4 octets are a crypto-NAK (key ID 0 alone, RFC 5905 section 7.4),
//    also after a field (chrony takes one only right after the header).
// Beyond chrony: a full SHA-256 MAC, 4 + 32 octets, which ntpdig 1.2.2 sends
// in NTPv4 (chrony sends it in NTPv3 only; RFC 7822 caps an NTPv4 MAC at 24
// octets). Its key ID reads as a field's type (high 16 bits) and length (low
// 16): key IDs whose low bits are 16 or 36 make a chain that parses exactly
// (a 16-octet field and a "MAC", or one 36-octet field), 32 one that does
// not (a 32-octet field and 4 octets: the exact-chain test, as RFC 7822's
// rule, ends only at 0, 20 or 24 octets). So 36 remaining octets are a MAC
// unless they parse exactly as fields whose first type is not 0x0000: no
// extension field has type 0 (RFC 5906 types end in version 2, RFC 8915's
// are 0x0104-0x0404, chrony's 0x010A and 0xF323), while a key ID below
// 65536 (every ntpd/NTPsec key; ntpdig's) has it. A key ID of 65536 or more
// whose low bits are 16 or 36 stays ambiguous and is read as fields, as
// RFC 7822 says; no sender we know puts such a key in a 36-octet NTPv4 MAC.
constexpr size_t kMinV4MacLen = 4 + 16;
constexpr size_t kMaxV4MacLen = 4 + 20;
constexpr size_t kCryptoNakLen = 4;
constexpr size_t kLongMacLen = 4 + 32;  // a full SHA-256 digest
constexpr size_t kMinExtensionLen = 16;

bool is_v4_mac_len(size_t n) { return n == kMinV4MacLen || n == kMaxV4MacLen; }

// NTPv3 and older have no extension fields (chrony: anything after the
// header is a MAC): a crypto-NAK, key ID + 8-octet DES-CBC checksum, + MD5
// or CMAC, + SHA-1, or + a full SHA-256 digest.
bool is_v3_mac_len(size_t n) {
  return n == kCryptoNakLen || n == 12 || n == kMinV4MacLen || n == kMaxV4MacLen || n == kLongMacLen;
}

bool valid_extension_len(std::span<const uint8_t> buf, size_t pos, size_t len) {
  return len >= kMinExtensionLen && len % 4 == 0 && len <= buf.size() - pos;
}

// Whether buf[pos, end) parses exactly as extension fields, ending at the
// end or at a 20- or 24-octet MAC (RFC 7822's rule, no crypto-NAK).
bool is_exact_chain(std::span<const uint8_t> buf, size_t pos) {
  while (buf.size() - pos > kMaxV4MacLen) {
    const size_t len = load_be16(buf.data() + pos + 2);
    if (!valid_extension_len(buf, pos, len)) return false;
    pos += len;
  }
  return buf.size() == pos || is_v4_mac_len(buf.size() - pos);
}

// The 36 octets at buf[pos, end): a full SHA-256 MAC rather than fields?
bool is_long_mac(std::span<const uint8_t> buf, size_t pos) {
  return load_be16(buf.data() + pos) == 0 || !is_exact_chain(buf, pos);
}
}  // namespace

ParseResult parse(std::span<const uint8_t> buf) {
  ParseResult r;
  if (buf.size() < kHeaderLen) {
    r.status = ParseStatus::kTooShort;
    return r;
  }
  r.packet.header = read_header(buf.data());
  const uint8_t version = r.packet.header.version;
  if (version < 1 || version > 4) {
    r.status = ParseStatus::kBadVersion;
    return r;
  }
  size_t pos = kHeaderLen;
  bool mac_ok;
  if (version == 4) {
    // Extension fields exist from NTPv4 on (RFC 5905 section 7.5).
    while (buf.size() - pos > kMaxV4MacLen) {
      if (buf.size() - pos == kLongMacLen && is_long_mac(buf, pos)) break;
      const size_t len = load_be16(buf.data() + pos + 2);
      if (!valid_extension_len(buf, pos, len)) {
        r.status = ParseStatus::kBadExtension;
        return r;
      }
      pos += len;
      r.packet.extension_fields++;
      r.packet.extension_bytes = static_cast<uint16_t>(r.packet.extension_bytes + len);
    }
    const size_t rest = buf.size() - pos;
    mac_ok = is_v4_mac_len(rest) || rest == kLongMacLen || rest == kCryptoNakLen;
  } else {
    mac_ok = is_v3_mac_len(buf.size() - pos);
  }
  const size_t rest = buf.size() - pos;
  if (rest != 0) {
    if (!mac_ok) {
      r.status = ParseStatus::kBadTrailer;
      return r;
    }
    r.packet.mac_len = static_cast<uint8_t>(rest);
    r.packet.key_id = load_be32(buf.data() + pos);
  }
  r.status = ParseStatus::kOk;
  return r;
}

std::string refid_to_string(uint32_t refid, uint8_t stratum) {
  if (refid == kRefidLocal) return "LOCAL(0)";
  if (stratum <= 1) {
    // ASCII, padded with NULs (RFC 5905 section 7.3); show printable only.
    std::string s;
    for (int shift = 24; shift >= 0; shift -= 8) {
      char c = static_cast<char>((refid >> shift) & 0xFF);
      if (c == 0) break;
      s += (c >= 0x20 && c < 0x7F) ? c : '?';
    }
    return s;
  }
  return ipv4_to_string(refid);
}

}  // namespace ntp::proto
