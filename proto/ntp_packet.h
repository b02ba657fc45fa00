// NTPv4 packet header (RFC 5905 section 7.3), extension fields (RFC 7822)
// and MACs: parse and serialize. No I/O, no allocation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "proto/inet.h"
#include "proto/ntp_time.h"

namespace ntp::proto {

inline constexpr size_t kHeaderLen = 48;  // bytes before extension fields/MAC
inline constexpr uint16_t kNtpPort = 123;

// RFC 5905 section 7.3, LI: "2-bit integer warning of an impending leap
// second to be inserted or deleted in the last minute of the current month".
enum class Leap : uint8_t { kNone = 0, kInsert = 1, kDelete = 2, kUnsynchronized = 3 };

// RFC 5905 section 7.3, Mode: "3-bit integer representing the mode".
enum class Mode : uint8_t {
  kReserved = 0,
  kSymmetricActive = 1,
  kSymmetricPassive = 2,
  kClient = 3,
  kServer = 4,
  kBroadcast = 5,
  kControl = 6,  // ntpq, RFC 9327
  kPrivate = 7,  // ntpdc
};

// RFC 5905 figure 11: 0 unspecified or invalid, 1 primary, 2-15 secondary,
// 16 unsynchronized. Like the reference implementation, 16 is sent as 0.
inline constexpr uint8_t kStratumUnspecified = 0;
inline constexpr uint8_t kStratumMax = 15;
inline constexpr uint8_t kStratumUnsynchronized = 16;

// Reference IDs are 32-bit values in network order on the wire; here they
// are host-order integers whose big-endian bytes are the wire bytes, so an
// IPv4 refid 10.0.1.31 is 0x0A00011F and the ASCII code "INIT" 0x494E4954.
constexpr uint32_t refid_from_ascii(const char (&s)[5]) {
  return (uint32_t{static_cast<uint8_t>(s[0])} << 24) | (uint32_t{static_cast<uint8_t>(s[1])} << 16) |
         (uint32_t{static_cast<uint8_t>(s[2])} << 8) | uint32_t{static_cast<uint8_t>(s[3])};
}

// RFC 5905 section 7.4, kiss codes (sent with stratum 0).
inline constexpr uint32_t kKissInit = refid_from_ascii("INIT");
inline constexpr uint32_t kKissRate = refid_from_ascii("RATE");
inline constexpr uint32_t kKissDeny = refid_from_ascii("DENY");
inline constexpr uint32_t kKissRstr = refid_from_ascii("RSTR");
inline constexpr uint32_t kKissStep = refid_from_ascii("STEP");
// Ours (documented in the README): the dataplane served past its holdover
// without hearing from the control plane, so it no longer vouches for the time.
inline constexpr uint32_t kKissHold = refid_from_ascii("HOLD");
// The local clock pseudo-address of the reference implementation, shown as
// LOCAL(0): what a refclock-master server announces as its reference ID.
inline constexpr uint32_t kRefidLocal = 0x7F7F0100;  // 127.127.1.0

struct NtpHeader {
  Leap leap = Leap::kUnsynchronized;
  uint8_t version = 4;  // 1..7 on the wire; we answer 1..4
  Mode mode = Mode::kReserved;
  uint8_t stratum = 0;
  int8_t poll_log2 = 0;       // log2 s
  int8_t precision_log2 = 0;  // log2 s
  uint32_t root_delay = 0;       // NTP short format (16.16 s)
  uint32_t root_dispersion = 0;  // NTP short format (16.16 s)
  uint32_t refid = 0;
  NtpTimestamp reference;
  NtpTimestamp origin;
  NtpTimestamp receive;
  NtpTimestamp transmit;
  friend bool operator==(const NtpHeader&, const NtpHeader&) = default;
};

enum class ParseStatus : uint8_t {
  kOk = 0,
  kTooShort,        // fewer than 48 bytes
  kBadVersion,      // version 0 or above 4
  kBadExtension,    // an extension field's declared length is < 16, not a multiple of 4, or past the end
  kBadTrailer,      // bytes after the header that are neither extension fields nor a MAC
};

const char* to_string(ParseStatus s);

struct ParsedPacket {
  NtpHeader header;
  uint16_t extension_fields = 0;  // how many RFC 7822 extension fields
  uint16_t extension_bytes = 0;   // their total length
  // 0, 4 (crypto-NAK), 20 (MD5,
  // AES-CMAC), 24 (SHA-1, NTPv4-truncated), 36 (SHA-256 in full: NTPv3, or
  // NTPv4 when it is no extension-field chain, see parse), 12 (NTPv3 DES);
  // key ID and digest, where the digest's length does not name its type
  // (crypto::check_mac decides by the key). The MAC field is the packet's
  // last mac_len bytes; it covers everything before it.
  uint8_t mac_len = 0;
  uint32_t key_id = 0;            // when mac_len > 0
};

struct ParseResult {
  ParseStatus status = ParseStatus::kTooShort;
  ParsedPacket packet;
  bool ok() const { return status == ParseStatus::kOk; }
};

// Reads the 48-byte header and walks what follows by declared lengths,
// never past buf. Versions 1-4 are accepted (RFC 5905 section 7.3 "VN ...
// currently 4"; older clients still send 1-3). Extension fields are taken
// only in NTPv4 and only when they parse exactly (RFC 7822, as chrony: the
// rules and the 36-byte SHA-256 MAC's tie-break are in ntp_packet.cc).
ParseResult parse(std::span<const uint8_t> buf);

// Reads only the fixed header (buf must hold at least 48 bytes).
NtpHeader read_header(const uint8_t* buf);

// Writes the fixed header (48 bytes).
void write_header(const NtpHeader& h, uint8_t* out);

inline NtpTimestamp load_ts(const uint8_t* p) { return {load_be32(p), load_be32(p + 4)}; }
inline void store_ts(uint8_t* p, NtpTimestamp t) {
  store_be32(p, t.seconds);
  store_be32(p + 4, t.fraction);
}

// Byte offsets of the header fields (RFC 5905 figure 8).
namespace offs {
inline constexpr size_t kLiVnMode = 0, kStratum = 1, kPoll = 2, kPrecision = 3, kRootDelay = 4,
                        kRootDispersion = 8, kRefid = 12, kReference = 16, kOrigin = 24, kReceive = 32,
                        kTransmit = 40;
}

// Human form of a reference ID for a given stratum: dotted quad for
// stratum >= 2 (an IPv4 source), ASCII for 0/1 (kiss code / reference
// clock), and "LOCAL(0)" for the local clock pseudo-address.
std::string refid_to_string(uint32_t refid, uint8_t stratum);

}  // namespace ntp::proto
