// NTP packet header, extension fields and MACs (proto/ntp_packet.h): real
// requests captured from ntpdig and chronyd (tests/support/golden/requests.h,
// made by tests/tools/capture_requests.sh), a hand-assembled server reply,
// and the length rules of parse().
#include "proto/ntp_packet.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "tests/support/golden/requests.h"
#include "tests/support/test_seed.h"

namespace ntp::proto {
namespace {

uint64_t test_seed() { return ::ntp::test::seed(); }
#define SEED_TRACE() SCOPED_TRACE(::testing::Message() << "TEST_SEED=" << test_seed())

// ---------------------------------------------------------------- captured requests

struct Captured {
  const char* name;
  std::span<const uint8_t> bytes;
  int64_t capture_unix_ns;
};

std::vector<Captured> chrony_requests() {
  std::vector<Captured> v = {
      {"chrony0", golden::kChronyRequest0, golden::kChronyRequest0CaptureUnixNs},
      {"chrony1", golden::kChronyRequest1, golden::kChronyRequest1CaptureUnixNs},
  };
  if constexpr (golden::kChronyRequestCount > 2)
    v.push_back({"chrony2", golden::kChronyRequest2, golden::kChronyRequest2CaptureUnixNs});
  if constexpr (golden::kChronyRequestCount > 3)
    v.push_back({"chrony3", golden::kChronyRequest3, golden::kChronyRequest3CaptureUnixNs});
  return v;
}

TEST(NtpPacketGolden, NtpdigRequest) {
  const std::span<const uint8_t> buf(golden::kNtpdigRequest);
  ASSERT_EQ(buf.size(), 48u);
  const ParseResult r = parse(buf);
  ASSERT_TRUE(r.ok()) << to_string(r.status);
  EXPECT_EQ(r.packet.extension_fields, 0);
  EXPECT_EQ(r.packet.extension_bytes, 0);
  EXPECT_EQ(r.packet.mac_len, 0);
  const NtpHeader& h = r.packet.header;
  // ntpsec's ntpdig (SNTP): LI 3 (unsynchronized), VN 4, mode 3; every
  // other field zero except the transmit timestamp, which is its clock.
  EXPECT_EQ(buf[0], 0xE3);
  EXPECT_EQ(h.leap, Leap::kUnsynchronized);
  EXPECT_EQ(h.version, 4);
  EXPECT_EQ(h.mode, Mode::kClient);
  EXPECT_EQ(h.stratum, 0);
  EXPECT_EQ(h.poll_log2, 0);
  EXPECT_EQ(h.precision_log2, 0);
  EXPECT_EQ(h.root_delay, 0u);
  EXPECT_EQ(h.root_dispersion, 0u);
  EXPECT_EQ(h.refid, 0u);
  EXPECT_TRUE(h.reference.is_zero());
  EXPECT_TRUE(h.origin.is_zero());
  EXPECT_TRUE(h.receive.is_zero());
  ASSERT_FALSE(h.transmit.is_zero());
  for (size_t i = 1; i < 40; i++) EXPECT_EQ(buf[i], 0) << "byte " << i;
  // The transmit timestamp is the real time the request left: just before
  // tcpdump saw it in the other namespace (same host clock).
  const int64_t tx = unix_ns_from_ntp(h.transmit, golden::kNtpdigRequestCaptureUnixNs);
  const int64_t lead = golden::kNtpdigRequestCaptureUnixNs - tx;
  EXPECT_GE(lead, -2000) << "transmit after capture";  // pcap times are whole us
  EXPECT_LT(lead, 500000000) << "transmit far before capture";
}

TEST(NtpPacketGolden, ChronydRequests) {
  const auto reqs = chrony_requests();
  ASSERT_GE(reqs.size(), 2u);
  std::set<uint64_t> transmits;
  for (const Captured& c : reqs) {
    SCOPED_TRACE(c.name);
    ASSERT_EQ(c.bytes.size(), 48u);
    const ParseResult r = parse(c.bytes);
    ASSERT_TRUE(r.ok()) << to_string(r.status);
    EXPECT_EQ(r.packet.extension_fields, 0);
    EXPECT_EQ(r.packet.mac_len, 0);
    const NtpHeader& h = r.packet.header;
    // chronyd 4.x as a client reveals nothing about its clock: LI 0, VN 4,
    // mode 3, stratum 0, poll 0, precision 0x20 (+32), zero root delay,
    // dispersion, refid, reference, origin and receive timestamps.
    EXPECT_EQ(c.bytes[0], 0x23);
    EXPECT_EQ(h.leap, Leap::kNone);
    EXPECT_EQ(h.version, 4);
    EXPECT_EQ(h.mode, Mode::kClient);
    EXPECT_EQ(h.stratum, 0);
    EXPECT_EQ(h.poll_log2, 0);
    EXPECT_EQ(c.bytes[3], 0x20);
    EXPECT_EQ(h.precision_log2, 32);
    EXPECT_EQ(h.root_delay, 0u);
    EXPECT_EQ(h.root_dispersion, 0u);
    EXPECT_EQ(h.refid, 0u);
    EXPECT_TRUE(h.reference.is_zero());
    EXPECT_TRUE(h.origin.is_zero());
    EXPECT_TRUE(h.receive.is_zero());
    for (size_t i = 4; i < 40; i++) EXPECT_EQ(c.bytes[i], 0) << "byte " << i;
    // ... and a random transmit timestamp (a cookie the server echoes as
    // origin), not its time: not within a day of when it was sent.
    ASSERT_FALSE(h.transmit.is_zero());
    const int64_t tx = unix_ns_from_ntp(h.transmit, c.capture_unix_ns);
    EXPECT_GT(std::llabs(tx - c.capture_unix_ns), 86400 * kNsPerS);
    transmits.insert(h.transmit.raw());
  }
  EXPECT_EQ(transmits.size(), reqs.size()) << "transmit timestamps repeat";
}

TEST(NtpPacketGolden, CapturedRequestsRoundTripThroughHeader) {
  std::vector<Captured> all = chrony_requests();
  all.push_back({"ntpdig", golden::kNtpdigRequest, golden::kNtpdigRequestCaptureUnixNs});
  for (const Captured& c : all) {
    SCOPED_TRACE(c.name);
    uint8_t out[48];
    std::memset(out, 0xA5, sizeof out);
    write_header(read_header(c.bytes.data()), out);
    EXPECT_EQ(std::memcmp(out, c.bytes.data(), 48), 0);
  }
}

// ---------------------------------------------------------------- server reply

// A server reply assembled by hand from RFC 5905 figure 8.
constexpr uint8_t kServerReply[48] = {
    0x24,                    // LI 0, VN 4, mode 4 (server)
    0x02,                    // stratum 2
    0x06,                    // poll 2^6 s
    0xE9,                    // precision 2^-23 s
    0x00, 0x00, 0x0C, 0x8A,  // root delay 0x0000.0C8A (49.0 ms)
    0x00, 0x00, 0x1A, 0x2B,  // root dispersion 0x0000.1A2B (102.2 ms)
    0x0A, 0x00, 0x01, 0x1F,  // refid 10.0.1.31
    0xEE, 0xB2, 0x3D, 0x00, 0x12, 0x34, 0x56, 0x78,  // reference
    0x3B, 0xE0, 0x14, 0x6C, 0xFB, 0x19, 0x59, 0xBF,  // origin (the client's transmit)
    0xEE, 0xB2, 0x3E, 0x81, 0x80, 0x00, 0x00, 0x00,  // receive
    0xEE, 0xB2, 0x3E, 0x81, 0x80, 0x01, 0x00, 0x00,  // transmit
};

NtpHeader server_reply_header() {
  NtpHeader h;
  h.leap = Leap::kNone;
  h.version = 4;
  h.mode = Mode::kServer;
  h.stratum = 2;
  h.poll_log2 = 6;
  h.precision_log2 = -23;
  h.root_delay = 0x00000C8A;
  h.root_dispersion = 0x00001A2B;
  h.refid = 0x0A00011F;
  h.reference = {0xEEB23D00u, 0x12345678u};
  h.origin = {0x3BE0146Cu, 0xFB1959BFu};
  h.receive = {0xEEB23E81u, 0x80000000u};
  h.transmit = {0xEEB23E81u, 0x80010000u};
  return h;
}

TEST(NtpPacketHeader, WriteServerReplyGolden) {
  uint8_t out[48];
  std::memset(out, 0x5A, sizeof out);
  write_header(server_reply_header(), out);
  for (size_t i = 0; i < 48; i++) EXPECT_EQ(out[i], kServerReply[i]) << "byte " << i;
}

TEST(NtpPacketHeader, ReadServerReplyGolden) {
  const NtpHeader h = read_header(kServerReply);
  EXPECT_EQ(h.leap, Leap::kNone);
  EXPECT_EQ(h.version, 4);
  EXPECT_EQ(h.mode, Mode::kServer);
  EXPECT_EQ(h.stratum, 2);
  EXPECT_EQ(h.poll_log2, 6);
  EXPECT_EQ(h.precision_log2, -23);
  EXPECT_EQ(h.root_delay, 0x00000C8Au);
  EXPECT_EQ(h.root_dispersion, 0x00001A2Bu);
  EXPECT_EQ(h.refid, 0x0A00011Fu);
  EXPECT_EQ(refid_to_string(h.refid, h.stratum), "10.0.1.31");
  EXPECT_EQ(h.reference, (NtpTimestamp{0xEEB23D00u, 0x12345678u}));
  EXPECT_EQ(h.origin, (NtpTimestamp{0x3BE0146Cu, 0xFB1959BFu}));
  EXPECT_EQ(h.receive, (NtpTimestamp{0xEEB23E81u, 0x80000000u}));
  EXPECT_EQ(h.transmit, (NtpTimestamp{0xEEB23E81u, 0x80010000u}));
  EXPECT_EQ(h, server_reply_header());
  // 0x0000.0C8A s = 3210 / 65536 s.
  EXPECT_EQ(ns_from_short(h.root_delay), 48980713);
  // Transmit - receive: 2^16 fraction units = 15.259 us.
  EXPECT_EQ(ntp_diff_ns(h.transmit, h.receive), 15259);
  const ParseResult r = parse(kServerReply);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.packet.header, h);
}

TEST(NtpPacketHeader, SignedAndExtremeFieldsRoundTrip) {
  NtpHeader h;
  h.leap = Leap::kUnsynchronized;
  h.version = 3;
  h.mode = Mode::kSymmetricActive;
  h.stratum = 16;
  h.poll_log2 = -4;
  h.precision_log2 = -32;
  h.root_delay = 0xFFFFFFFFu;
  h.root_dispersion = 0x80000001u;
  h.refid = kKissRate;
  h.reference = {0xFFFFFFFFu, 0xFFFFFFFFu};
  h.origin = {0, 1};
  h.receive = {0x80000000u, 0};
  h.transmit = {1, 0x80000000u};
  uint8_t out[48];
  write_header(h, out);
  EXPECT_EQ(out[0], 0xD9);  // 11 011 001
  EXPECT_EQ(out[1], 0x10);
  EXPECT_EQ(out[2], 0xFC);
  EXPECT_EQ(out[3], 0xE0);
  EXPECT_EQ(out[12], 'R');
  EXPECT_EQ(out[15], 'E');
  EXPECT_EQ(read_header(out), h);
}

TEST(NtpPacketHeader, EveryFirstByteRoundTrips) {
  for (int b = 0; b < 256; b++) {
    uint8_t in[48] = {};
    in[0] = static_cast<uint8_t>(b);
    const NtpHeader h = read_header(in);
    EXPECT_EQ(static_cast<int>(h.leap), b >> 6);
    EXPECT_EQ(h.version, (b >> 3) & 7);
    EXPECT_EQ(static_cast<int>(h.mode), b & 7);
    uint8_t out[48];
    write_header(h, out);
    EXPECT_EQ(out[0], b);
  }
}

// ---------------------------------------------------------------- parse: lengths

std::vector<uint8_t> header(uint8_t version, Mode mode = Mode::kClient) {
  std::vector<uint8_t> p(48, 0);
  p[0] = static_cast<uint8_t>((version << 3) | static_cast<uint8_t>(mode));
  p[40] = 0xEE;  // some transmit timestamp
  return p;
}
// An RFC 7822 extension field: type, declared length, then body bytes
// (body_len may differ from the declared length to make bad fields).
void add_ef(std::vector<uint8_t>& p, uint16_t type, uint16_t declared_len, size_t total_len) {
  const size_t at = p.size();
  p.resize(at + total_len, 0xEF);
  if (total_len >= 2) store_be16(p.data() + at, type);
  if (total_len >= 4) store_be16(p.data() + at + 2, declared_len);
}
void add_ef(std::vector<uint8_t>& p, uint16_t type, uint16_t len) { add_ef(p, type, len, len); }
void add_mac(std::vector<uint8_t>& p, uint32_t key_id, size_t len) {
  const size_t at = p.size();
  p.resize(at + len, 0x3C);
  store_be32(p.data() + at, key_id);
}

TEST(NtpParse, RejectsShorterThan48) {
  const std::vector<uint8_t> full = header(4);
  for (size_t n = 0; n < 48; n++) {
    const ParseResult r = parse(std::span(full.data(), n));
    EXPECT_EQ(r.status, ParseStatus::kTooShort) << n;
    EXPECT_FALSE(r.ok());
  }
  EXPECT_TRUE(parse(full).ok());
}

TEST(NtpParse, Versions) {
  for (uint8_t v = 0; v < 8; v++) {
    const ParseResult r = parse(header(v));
    if (v >= 1 && v <= 4) {
      EXPECT_TRUE(r.ok()) << int{v};
      EXPECT_EQ(r.packet.header.version, v);
    } else {
      EXPECT_EQ(r.status, ParseStatus::kBadVersion) << int{v};
    }
  }
}

TEST(NtpParse, AcceptsMacs) {
  for (size_t len : {4u, 20u, 24u}) {
    auto p = header(4);
    add_mac(p, 0x01020304u + static_cast<uint32_t>(len), len);
    const ParseResult r = parse(p);
    ASSERT_TRUE(r.ok()) << len << ": " << to_string(r.status);
    EXPECT_EQ(r.packet.mac_len, len);
    EXPECT_EQ(r.packet.key_id, 0x01020304u + len);
    EXPECT_EQ(r.packet.extension_fields, 0);
    EXPECT_EQ(r.packet.extension_bytes, 0);
  }
  // Plain header: no MAC, key ID 0.
  const ParseResult r = parse(header(4));
  EXPECT_EQ(r.packet.mac_len, 0);
  EXPECT_EQ(r.packet.key_id, 0u);
}

TEST(NtpParse, AcceptsOne28ByteExtensionField) {
  auto p = header(4);
  add_ef(p, 0x0104, 28);  // e.g. an NTS unique identifier
  ASSERT_EQ(p.size(), 76u);
  const ParseResult r = parse(p);
  ASSERT_TRUE(r.ok()) << to_string(r.status);
  EXPECT_EQ(r.packet.extension_fields, 1);
  EXPECT_EQ(r.packet.extension_bytes, 28);
  EXPECT_EQ(r.packet.mac_len, 0);
}

TEST(NtpParse, Accepts16ByteExtensionFieldThenMac) {
  auto p = header(4);
  add_ef(p, 0x0002, 16);
  add_mac(p, 42, 20);
  ASSERT_EQ(p.size(), 84u);
  const ParseResult r = parse(p);
  ASSERT_TRUE(r.ok()) << to_string(r.status);
  EXPECT_EQ(r.packet.extension_fields, 1);
  EXPECT_EQ(r.packet.extension_bytes, 16);
  EXPECT_EQ(r.packet.mac_len, 20);
  EXPECT_EQ(r.packet.key_id, 42u);
}

TEST(NtpParse, AcceptsSeveralExtensionFields) {
  auto p = header(4);
  add_ef(p, 0x0104, 36);
  add_ef(p, 0x0204, 104);
  add_ef(p, 0x0404, 40);
  add_mac(p, 7, 24);
  const ParseResult r = parse(p);
  ASSERT_TRUE(r.ok()) << to_string(r.status);
  EXPECT_EQ(r.packet.extension_fields, 3);
  EXPECT_EQ(r.packet.extension_bytes, 180);
  EXPECT_EQ(r.packet.mac_len, 24);
  EXPECT_EQ(r.packet.key_id, 7u);
}

TEST(NtpParse, RejectsBadExtensionLengths) {
  // Declared length below 16 (0 would never advance), inside a 28-byte field.
  for (uint16_t len : {0, 4, 8, 12}) {
    auto p = header(4);
    add_ef(p, 0x0001, len, 28);
    EXPECT_EQ(parse(p).status, ParseStatus::kBadExtension) << len;
  }
  // Not a multiple of 4.
  for (uint16_t len : {17, 18, 19, 30, 31}) {
    auto p = header(4);
    add_ef(p, 0x0001, len, 32);
    EXPECT_EQ(parse(p).status, ParseStatus::kBadExtension) << len;
  }
  // Running past the end: declares 32, 28 bytes present; declares 0xFFFC.
  {
    auto p = header(4);
    add_ef(p, 0x0001, 32, 28);
    EXPECT_EQ(parse(p).status, ParseStatus::kBadExtension);
  }
  {
    auto p = header(4);
    add_ef(p, 0x0001, 0xFFFC, 28);
    EXPECT_EQ(parse(p).status, ParseStatus::kBadExtension);
  }
  // A good field, then a second one running past the end.
  {
    auto p = header(4);
    add_ef(p, 0x0001, 16);
    add_ef(p, 0x0002, 44, 40);
    EXPECT_EQ(parse(p).status, ParseStatus::kBadExtension);
  }
}

TEST(NtpParse, RejectsBadTrailers) {
  for (size_t len : {1u, 2u, 3u, 5u, 8u, 12u, 16u, 19u, 21u, 23u}) {
    auto p = header(4);
    p.resize(p.size() + len, 0);
    EXPECT_EQ(parse(p).status, ParseStatus::kBadTrailer) << len;
  }
  // An 8- or 12-byte trailer after a valid extension field, too.
  auto p = header(4);
  add_ef(p, 0x0001, 32);
  p.resize(p.size() + 8, 0);
  EXPECT_EQ(parse(p).status, ParseStatus::kBadTrailer);
  p = header(4);
  add_ef(p, 0x0001, 28);
  p.resize(p.size() + 12, 0);
  EXPECT_EQ(parse(p).status, ParseStatus::kBadTrailer);
  // A crypto-NAK after a field is one, except where the two are 36 bytes: a
  // 32-byte field and 4 bytes are no exact chain (RFC 7822), so a SHA-256 MAC.
  p = header(4);
  add_ef(p, 0x0104, 28);
  add_mac(p, 0, 4);
  ParseResult nak = parse(p);
  ASSERT_TRUE(nak.ok());
  EXPECT_EQ(nak.packet.extension_fields, 1);
  EXPECT_EQ(nak.packet.mac_len, 4);
  p = header(4);
  add_ef(p, 0xF323, 32);
  add_mac(p, 0, 4);
  nak = parse(p);
  ASSERT_TRUE(nak.ok());
  EXPECT_EQ(nak.packet.extension_fields, 0);
  EXPECT_EQ(nak.packet.mac_len, 36);
  EXPECT_EQ(nak.packet.key_id, 0xF3230020u);
  // But 36 bytes that are no extension-field chain are a SHA-256 MAC (its
  // key ID the field's type and length): a 28-byte field and 8 bytes.
  p = header(4);
  add_ef(p, 0x0001, 28);
  p.resize(p.size() + 8, 0);
  const ParseResult r = parse(p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.packet.mac_len, 36);
  EXPECT_EQ(r.packet.key_id, 0x0001001Cu);
}

TEST(NtpParse, NtpV3Macs) {
  // NTPv3 with a DES-CBC MAC: key ID + 8-octet checksum.
  auto p = header(3);
  add_mac(p, 0xCAFEu, 12);
  ParseResult r = parse(p);
  ASSERT_TRUE(r.ok()) << to_string(r.status);
  EXPECT_EQ(r.packet.mac_len, 12);
  EXPECT_EQ(r.packet.key_id, 0xCAFEu);
  EXPECT_EQ(r.packet.header.version, 3);
  // NTPv3 with MD5.
  p = header(3);
  add_mac(p, 1, 20);
  r = parse(p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.packet.mac_len, 20);
  // A 12-byte trailer is no NTPv4 MAC.
  p = header(4);
  add_mac(p, 1, 12);
  EXPECT_EQ(parse(p).status, ParseStatus::kBadTrailer);
  // NTPv3 has no extension fields: 28 bytes after the header are no MAC.
  p = header(3);
  add_ef(p, 0x0001, 28);
  EXPECT_EQ(parse(p).status, ParseStatus::kBadTrailer);
  // 8 bytes is not a MAC in any version.
  for (uint8_t v = 1; v <= 4; v++) {
    p = header(v);
    p.resize(56, 0);
    EXPECT_EQ(parse(p).status, ParseStatus::kBadTrailer) << int{v};
  }
}

std::vector<uint8_t> from_hex(const char* h) {
  std::vector<uint8_t> out;
  for (size_t i = 0; h[i] && h[i + 1]; i += 2) out.push_back(static_cast<uint8_t>(std::stoi(std::string(h + i, 2), nullptr, 16)));
  return out;
}

TEST(NtpParse, FullSha256Macs) {
  // Captured (tests/unit/test_mac.cc has their digests checked): chronyd 4.3
  // sends a SHA256 key's full digest in NTPv3, ntpdig 1.2.2 in NTPv4.
  const auto v3 = from_hex(
      "1b0006200000000000000000000000000000000000000000000000000000000000000000000000005c816fa9a17401b000000004"
      "ceb8a6362825a40ca9ee380e8e091375fde5cd03cd41683c146e5eeb9f8af38b");
  const auto v4 = from_hex(
      "e3000000000000000000000000000000000000000000000000000000000000000000000000000000eeb974277442f00000000004"
      "4cf155f4d98319d49c903e72670bd39ead8dc8e7b07d0a32c5fc1e669dcb504c");
  for (const auto* p : {&v3, &v4}) {
    ASSERT_EQ(p->size(), 84u);
    const ParseResult r = parse(*p);
    ASSERT_TRUE(r.ok()) << to_string(r.status);
    EXPECT_EQ(r.packet.mac_len, 36);
    EXPECT_EQ(r.packet.key_id, 4u);
    EXPECT_EQ(r.packet.extension_fields, 0);
  }
  // After an extension field, too.
  auto p = header(4);
  add_ef(p, 0x0104, 28);
  add_mac(p, 4, 36);
  ParseResult r = parse(p);
  ASSERT_TRUE(r.ok()) << to_string(r.status);
  EXPECT_EQ(r.packet.extension_fields, 1);
  EXPECT_EQ(r.packet.mac_len, 36);
  // A 36-byte tail that is a valid extension field stays one (RFC 7822
  // first): a key ID whose low 16 bits read as the field's length 36.
  p = header(4);
  add_ef(p, 0x0104, 36);
  r = parse(p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.packet.extension_fields, 1);
  EXPECT_EQ(r.packet.mac_len, 0);
  // And a 16-byte field then a 20-byte MAC (36 bytes after the header).
  p = header(4);
  add_ef(p, 0x0002, 16);
  add_mac(p, 9, 20);
  r = parse(p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.packet.extension_fields, 1);
  EXPECT_EQ(r.packet.mac_len, 20);
  // No other long tail is a MAC: 28, 32, 40 and 68 bytes (a SHA-512's).
  for (size_t len : {28u, 32u, 40u, 68u}) {
    for (uint8_t v : {3, 4}) {
      p = header(v);
      add_mac(p, 1, len);
      EXPECT_FALSE(parse(p).ok()) << len << " v" << int{v};
    }
  }
}

// A MAC whose key ID reads as an extension field's type (high 16 bits) and
// length (low 16): 16 (a 16-byte field, then 20 bytes that look like a MAC),
// 32 (a 32-byte field, then 4 bytes), 36 (one 36-byte field). With a 20-byte
// digest (24 bytes: a MAC by RFC 7822's length rule) and a 32-byte one (36:
// ntpdig 1.2.2's SHA-256 in NTPv4, chronyd's in NTPv3), in NTPv3 and v4,
// alone or after a real field: always the MAC.
TEST(NtpParse, MacWhoseKeyIdLooksLikeAnExtensionField) {
  for (uint32_t key : {16u, 32u, 36u, 20u, 24u, 28u, 65535u})
    for (size_t digest : {20u, 32u})
      for (uint8_t v : {3, 4})
        for (bool after_field : {false, true}) {
          if (after_field && v != 4) continue;
          auto p = header(v);
          if (after_field) add_ef(p, 0x0104, 28);
          add_mac(p, key, 4 + digest);
          const ParseResult r = parse(p);
          SCOPED_TRACE(::testing::Message() << "key " << key << " digest " << digest << " v" << int{v}
                                            << (after_field ? " after a field" : ""));
          ASSERT_TRUE(r.ok()) << to_string(r.status);
          EXPECT_EQ(r.packet.mac_len, 4 + digest);
          EXPECT_EQ(r.packet.key_id, key);
          EXPECT_EQ(r.packet.extension_fields, after_field ? 1 : 0);
          EXPECT_EQ(r.packet.extension_bytes, after_field ? 28 : 0);
        }
  // The same with the digest bytes shaped like a field chain too (a length of
  // 20 where a second field's would be).
  auto p = header(4);
  add_mac(p, 16, 36);
  store_be16(p.data() + 48 + 16 + 2, 20);
  ParseResult r = parse(p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.packet.mac_len, 36);
  EXPECT_EQ(r.packet.extension_fields, 0);
  // Key IDs of 65536 and more whose low bits are 16 or 36 read as fields that
  // parse exactly (type nonzero): RFC 7822 says fields, and we follow it
  // (no sender puts such a key in a 36-byte NTPv4 MAC). 32 does not parse
  // (4 bytes after the field), so it is the MAC.
  for (uint32_t key : {0x00010010u, 0x00010024u}) {
    p = header(4);
    add_mac(p, key, 36);
    r = parse(p);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.packet.extension_fields, 1) << key;
  }
  p = header(4);
  add_mac(p, 0x00010020u, 36);
  r = parse(p);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.packet.mac_len, 36);
  EXPECT_EQ(r.packet.key_id, 0x00010020u);
}

// Real extension-field layouts are still fields.
TEST(NtpParse, RealExtensionFieldsStayFields) {
  struct Case {
    std::vector<std::pair<uint16_t, uint16_t>> fields;  // type, length
    size_t mac;
  };
  const Case cases[] = {
      {{{0x0104, 36}}, 0},                              // an NTS unique identifier of 32 bytes, alone
      {{{0x0002, 16}}, 20},                             // a 16-byte field before a MAC (36 after the header)
      {{{0x0104, 36}, {0x0204, 104}, {0x0404, 40}}, 0},  // an NTS request (RFC 8915)
      {{{0x0104, 36}, {0x0204, 104}, {0x0304, 104}, {0x0404, 40}}, 0},
      {{{0xF323, 32}}, 0},                              // chrony's experimental mono-root field
      {{{0x010A, 28}}, 0},                              // chrony's network correction (RFC 7822 minimum)
      {{{0xF323, 32}, {0x010A, 28}}, 24},
      {{{0x0001, 28}}, 20},
  };
  for (const Case& c : cases) {
    auto p = header(4);
    size_t bytes = 0;
    for (auto [type, len] : c.fields) {
      add_ef(p, type, len);
      bytes += len;
    }
    if (c.mac) add_mac(p, 5, c.mac);
    const ParseResult r = parse(p);
    SCOPED_TRACE(::testing::Message() << c.fields.size() << " fields, " << bytes << " bytes, MAC " << c.mac);
    ASSERT_TRUE(r.ok()) << to_string(r.status);
    EXPECT_EQ(r.packet.extension_fields, c.fields.size());
    EXPECT_EQ(r.packet.extension_bytes, bytes);
    EXPECT_EQ(r.packet.mac_len, c.mac);
  }
}

TEST(NtpParse, RandomWellFormedPacketsAreAccountedFor) {
  SEED_TRACE();
  std::mt19937_64 rng(test_seed());
  for (int i = 0; i < 20000; i++) {
    auto p = header(4);
    const int n_ef = static_cast<int>(rng() % 4);
    size_t ef_bytes = 0;
    const size_t mac = std::array<size_t, 4>{0, 4, 20, 24}[rng() % 4];
    for (int k = 0; k < n_ef; k++) {
      // Whatever follows a field that is not the last must exceed 24 bytes
      // (else it reads as a MAC): without a MAC the last field is at least
      // 28 bytes (RFC 7822), before a 4-byte crypto-NAK at least 24 but not
      // 32 (36 bytes that are no exact chain are a SHA-256 MAC). Types are
      // never 0 (no field has it: see parse).
      const bool last = k == n_ef - 1;
      const size_t min_words = !last ? 4 : mac == 0 ? 7 : mac == 4 ? 6 : 4;
      uint16_t len = static_cast<uint16_t>(4 * (min_words + rng() % 40));
      if (last && mac == 4 && len == 32) len = 36;
      add_ef(p, static_cast<uint16_t>(1 + rng() % 0xFFFF), len);
      ef_bytes += len;
    }
    const uint32_t key = static_cast<uint32_t>(rng());
    if (mac) add_mac(p, key, mac);
    const ParseResult r = parse(p);
    ASSERT_TRUE(r.ok()) << to_string(r.status) << " n_ef=" << n_ef << " mac=" << mac;
    ASSERT_EQ(r.packet.extension_fields, n_ef);
    ASSERT_EQ(r.packet.extension_bytes, ef_bytes);
    ASSERT_EQ(r.packet.mac_len, mac);
    if (mac) {
      ASSERT_EQ(r.packet.key_id, key);
    }
  }
}

TEST(NtpParse, RandomBytesNeverMisaccount) {
  SEED_TRACE();
  std::mt19937_64 rng(test_seed() + 1);
  for (int i = 0; i < 200000; i++) {
    // Exactly sized heap buffers, so a sanitizer build catches over-reads.
    std::vector<uint8_t> p(48 + rng() % 200);
    for (auto& b : p) b = static_cast<uint8_t>(rng());
    // Mostly sane lengths so the walk gets somewhere.
    if (p.size() >= 52 && (rng() & 1)) store_be16(p.data() + 50, static_cast<uint16_t>(4 * (rng() % 50)));
    p[0] = static_cast<uint8_t>((p[0] & 0xC7) | ((1 + rng() % 4) << 3));
    const ParseResult r = parse(p);
    if (r.ok()) {
      ASSERT_EQ(48u + r.packet.extension_bytes + r.packet.mac_len, p.size());
      ASSERT_TRUE(r.packet.mac_len <= 24 || r.packet.mac_len == 36) << int{r.packet.mac_len};
    }
  }
}

// ---------------------------------------------------------------- refid

TEST(NtpRefid, ToString) {
  EXPECT_EQ(refid_to_string(0x0A00011Fu, 3), "10.0.1.31");
  EXPECT_EQ(refid_to_string(0x0A00011Fu, 2), "10.0.1.31");
  EXPECT_EQ(refid_to_string(0xC0A80001u, 15), "192.168.0.1");
  EXPECT_EQ(refid_to_string(refid_from_ascii("GPS\0"), 1), "GPS");
  EXPECT_EQ(refid_from_ascii("GPS\0"), 0x47505300u);
  EXPECT_EQ(refid_to_string(refid_from_ascii("PPS\0"), 1), "PPS");
  EXPECT_EQ(refid_to_string(refid_from_ascii("GOOG"), 1), "GOOG");
  EXPECT_EQ(refid_to_string(kRefidLocal, 1), "LOCAL(0)");
  EXPECT_EQ(refid_to_string(kRefidLocal, 2), "LOCAL(0)");
  EXPECT_EQ(refid_to_string(kRefidLocal, 10), "LOCAL(0)");
  EXPECT_EQ(kRefidLocal, 0x7F7F0100u);
  // Kiss codes (stratum 0).
  EXPECT_EQ(refid_to_string(kKissRate, 0), "RATE");
  EXPECT_EQ(refid_to_string(kKissInit, 0), "INIT");
  EXPECT_EQ(refid_to_string(kKissDeny, 0), "DENY");
  EXPECT_EQ(kKissRate, 0x52415445u);
  // Unprintable bytes shown as '?'; a zero byte ends the string.
  EXPECT_EQ(refid_to_string(0x41017F42u, 1), "A??B");
  EXPECT_EQ(refid_to_string(0x41004242u, 1), "A");
  EXPECT_EQ(refid_to_string(0, 0), "");
  EXPECT_EQ(refid_to_string(0, 2), "0.0.0.0");
  EXPECT_EQ(refid_to_string(0xFFFFFFFFu, 16), "255.255.255.255");
}

TEST(NtpParse, StatusNames) {
  std::set<std::string> names;
  for (ParseStatus s : {ParseStatus::kOk, ParseStatus::kTooShort, ParseStatus::kBadVersion,
                        ParseStatus::kBadExtension, ParseStatus::kBadTrailer}) {
    const std::string n = to_string(s);
    EXPECT_NE(n, "?");
    names.insert(n);
  }
  EXPECT_EQ(names.size(), 5u);
}

}  // namespace
}  // namespace ntp::proto
