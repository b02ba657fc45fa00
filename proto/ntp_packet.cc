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
// RFC 7822 section 7.5: an extension field is at least 16 octets, a
// multiple of 4; a MAC is a 4-octet key ID plus a 16 (MD5, AES-CMAC) or 20
// (SHA-1, or any digest truncated for NTPv4) octet digest, and a crypto-NAK
// is the 4-octet key ID alone. Anything of at most 24 octets that follows
// the header or the last field is a MAC.
constexpr size_t kMaxMacLen = 24;
// A full SHA-256 digest (4 + 32): chronyd sends it in NTPv3, ntpdig 1.2.2
// (NTPsec) also in NTPv4, where it is a MAC only when it does not read as
// an extension-field chain (chrony's parse_packet takes the same order).
constexpr size_t kLongMacLen = 4 + 32;
constexpr size_t kMinExtensionLen = 16;

bool is_mac_len(size_t n, uint8_t version) {
  if (n == 4 || n == 20 || n == 24) return true;
  // NTPv3 and older have no extension fields: key ID + 8-octet DES-CBC
  // checksum, or a full SHA-256 digest.
  return version < 4 && (n == 12 || n == kLongMacLen);
}

// Whether buf[pos, end) is a whole NTPv4 extension-field chain, optionally
// followed by a MAC of at most 24 octets (what parse's loop accepts).
bool is_extension_chain(std::span<const uint8_t> buf, size_t pos) {
  while (buf.size() - pos > kMaxMacLen) {
    const size_t len = load_be16(buf.data() + pos + 2);
    if (len < kMinExtensionLen || len % 4 != 0 || len > buf.size() - pos) return false;
    pos += len;
  }
  return buf.size() == pos || is_mac_len(buf.size() - pos, 4);
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
  // Extension fields exist from NTPv4 on (RFC 5905 section 7.5).
  if (version == 4) {
    while (buf.size() - pos > kMaxMacLen) {
      // A 36-octet tail that is no extension-field chain: a SHA-256 MAC.
      if (buf.size() - pos == kLongMacLen && !is_extension_chain(buf, pos)) break;
      const size_t len = load_be16(buf.data() + pos + 2);
      if (len < kMinExtensionLen || len % 4 != 0 || len > buf.size() - pos) {
        r.status = ParseStatus::kBadExtension;
        return r;
      }
      pos += len;
      r.packet.extension_fields++;
      r.packet.extension_bytes = static_cast<uint16_t>(r.packet.extension_bytes + len);
    }
  }
  const size_t rest = buf.size() - pos;
  if (rest != 0) {
    if (!is_mac_len(rest, version) && !(version == 4 && rest == kLongMacLen)) {
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
