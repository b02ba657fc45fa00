// The NTP responder (dataplane/responder.h): replies to real captured
// requests byte for byte (expected bytes written out by hand from the RFC
// 5905 figure 8 layout), the accept/forward/drop rules for every version and
// mode, MACs and extension fields, and the per-burst reply parameters
// derived from the published server state (holdover, dispersion growth).
#include "dataplane/responder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "crypto/mac.h"
#include "proto/channel_abi.h"
#include "proto/ntp_packet.h"
#include "tests/support/golden/requests.h"
#include "tests/support/reply_fixtures.h"

namespace ntp::dp {
namespace {

using proto::DropReason;
using proto::NtpTimestamp;
using test::fixed_reply_params;
using Bytes = std::vector<uint8_t>;

// ------------------------------------------------------------------ fixtures

constexpr NtpTimestamp kRx = {0xEEB23E81, 0x0C49BA5E};

// The first 24 bytes every reply with fixed_reply_params() to a v4 request with
// poll 0 starts with (RFC 5905 figure 8).
constexpr std::array<uint8_t, 24> kReplyHead = {
    0x24,                    // LI 0, VN 4, mode 4 (server)
    0x02,                    // stratum 2
    0x00,                    // poll: the client's (0 in the captures)
    0xE7,                    // precision -25
    0x00, 0x00, 0x0A, 0x3D,  // root delay
    0x00, 0x00, 0x12, 0x34,  // root dispersion
    0x7F, 0x7F, 0x01, 0x00,  // reference ID 127.127.1.0
    0xEE, 0xB2, 0x3E, 0x00, 0x12, 0x34, 0x56, 0x78,  // reference timestamp
};

Bytes buffer_of(const uint8_t* p, size_t n, size_t room = kMaxReplyLen) {
  Bytes b(n < room ? room : n, 0xA5);  // the responder may write up to kMaxReplyLen
  std::memcpy(b.data(), p, n);
  return b;
}

Bytes request(uint8_t li_vn_mode, size_t len = 48, uint8_t poll = 6) {
  Bytes b(len < kMaxReplyLen ? kMaxReplyLen : len, 0);
  if (len >= 1) b[0] = li_vn_mode;
  if (len >= 3) b[2] = poll;
  if (len >= 48)
    for (int i = 0; i < 8; i++) b[40 + i] = static_cast<uint8_t>(0xC1 + i);
  return b;
}

NtpDecision run(Bytes& b, size_t len, bool serving = true) { return respond(b.data(), len, kRx, fixed_reply_params(), serving); }

// --------------------------------------------------------- golden, byte for byte

TEST(ResponderGolden, ChronyRequestByteForByte) {
  constexpr uint8_t kExpected[48] = {
      0x24, 0x02, 0x00, 0xE7,                          // LI 0 VN 4 mode 4, stratum 2, poll 0, precision -25
      0x00, 0x00, 0x0A, 0x3D,                          // root delay
      0x00, 0x00, 0x12, 0x34,                          // root dispersion
      0x7F, 0x7F, 0x01, 0x00,                          // refid
      0xEE, 0xB2, 0x3E, 0x00, 0x12, 0x34, 0x56, 0x78,  // reference
      0x3b, 0xe0, 0x14, 0x6c, 0xfb, 0x19, 0x59, 0xbf,  // origin = chrony's transmit field
      0xEE, 0xB2, 0x3E, 0x81, 0x0C, 0x49, 0xBA, 0x5E,  // receive = rx
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // transmit: stamped later
  };
  Bytes b = buffer_of(golden::kChronyRequest0, sizeof golden::kChronyRequest0);
  const NtpDecision d = run(b, 48);
  ASSERT_EQ(d.action, NtpAction::kReply);
  ASSERT_EQ(d.reply_len, 48);
  EXPECT_EQ(Bytes(b.begin(), b.begin() + 48), Bytes(kExpected, kExpected + 48));
}

TEST(ResponderGolden, NtpdigRequestByteForByte) {
  // ntpdig sends LI 3 (it is unsynchronized); our reply carries our LI.
  constexpr uint8_t kExpected[48] = {
      0x24, 0x02, 0x00, 0xE7,                          //
      0x00, 0x00, 0x0A, 0x3D,                          //
      0x00, 0x00, 0x12, 0x34,                          //
      0x7F, 0x7F, 0x01, 0x00,                          //
      0xEE, 0xB2, 0x3E, 0x00, 0x12, 0x34, 0x56, 0x78,  //
      0xee, 0xb2, 0x3e, 0x80, 0x4b, 0x51, 0x40, 0x00,  // origin = ntpdig's transmit field
      0xEE, 0xB2, 0x3E, 0x81, 0x0C, 0x49, 0xBA, 0x5E,  //
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
  };
  Bytes b = buffer_of(golden::kNtpdigRequest, sizeof golden::kNtpdigRequest);
  const NtpDecision d = run(b, 48);
  ASSERT_EQ(d.action, NtpAction::kReply);
  ASSERT_EQ(d.reply_len, 48);
  EXPECT_EQ(Bytes(b.begin(), b.begin() + 48), Bytes(kExpected, kExpected + 48));
}

TEST(ResponderGolden, AllChronyRequests) {
  const uint8_t* reqs[] = {golden::kChronyRequest0, golden::kChronyRequest1, golden::kChronyRequest2,
                           golden::kChronyRequest3};
  for (int i = 0; i < golden::kChronyRequestCount; i++) {
    SCOPED_TRACE(i);
    Bytes b = buffer_of(reqs[i], 48);
    ASSERT_EQ(run(b, 48).action, NtpAction::kReply);
    EXPECT_EQ(Bytes(b.begin(), b.begin() + 24), Bytes(kReplyHead.begin(), kReplyHead.end()));
    EXPECT_EQ(Bytes(b.begin() + 24, b.begin() + 32), Bytes(reqs[i] + 40, reqs[i] + 48));  // origin
    EXPECT_EQ(Bytes(b.begin() + 32, b.begin() + 40), Bytes({0xEE, 0xB2, 0x3E, 0x81, 0x0C, 0x49, 0xBA, 0x5E}));
    EXPECT_EQ(Bytes(b.begin() + 40, b.begin() + 48), Bytes(8, 0));
  }
}

TEST(ResponderGolden, LeapInsertAndUnsynchronizedInLiBits) {
  ReplyParams p = fixed_reply_params();
  p.leap = proto::Leap::kInsert;
  Bytes b = buffer_of(golden::kChronyRequest0, 48);
  ASSERT_EQ(respond(b.data(), 48, kRx, p, true).action, NtpAction::kReply);
  EXPECT_EQ(b[0], 0x64);  // LI 1, VN 4, mode 4

  p.leap = proto::Leap::kUnsynchronized;
  p.stratum = 0;
  p.refid = proto::kKissInit;
  b = buffer_of(golden::kChronyRequest0, 48);
  ASSERT_EQ(respond(b.data(), 48, kRx, p, true).action, NtpAction::kReply);
  EXPECT_EQ(b[0], 0xE4);  // LI 3, VN 4, mode 4
  EXPECT_EQ(b[1], 0x00);
  EXPECT_EQ(Bytes(b.begin() + 12, b.begin() + 16), Bytes({'I', 'N', 'I', 'T'}));
}

TEST(ResponderGolden, PollCopiedOtherRequestFieldsOverwritten) {
  Bytes b = request(0x1B, 48, 0x0A);  // LI 0, VN 3, mode 3, poll 10
  for (int i = 1; i < 40; i++)
    if (i != 2) b[i] = 0x5A;          // garbage where the reply writes its own fields
  ASSERT_EQ(run(b, 48).action, NtpAction::kReply);
  EXPECT_EQ(b[0], 0x1C);  // LI 0, VN 3, mode 4
  EXPECT_EQ(b[2], 0x0A);
  EXPECT_EQ(b[1], 0x02);
  EXPECT_EQ(Bytes(b.begin() + 3, b.begin() + 24), Bytes(kReplyHead.begin() + 3, kReplyHead.end()));
  EXPECT_EQ(Bytes(b.begin() + 24, b.begin() + 32), Bytes({0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8}));
  EXPECT_EQ(Bytes(b.begin() + 32, b.begin() + 40), Bytes({0xEE, 0xB2, 0x3E, 0x81, 0x0C, 0x49, 0xBA, 0x5E}));
  EXPECT_EQ(Bytes(b.begin() + 40, b.begin() + 48), Bytes(8, 0));
}

// ------------------------------------------------------------ versions and modes

TEST(ResponderModes, Versions1To4AnsweredWithSameVersion) {
  for (uint8_t vn = 1; vn <= 4; vn++) {
    SCOPED_TRACE(int{vn});
    Bytes b = request(static_cast<uint8_t>((vn << 3) | 3));
    const NtpDecision d = run(b, 48);
    ASSERT_EQ(d.action, NtpAction::kReply);
    EXPECT_EQ(d.reply_len, 48);
    EXPECT_EQ(b[0], (vn << 3) | 4);  // LI 0 from the params
  }
}

TEST(ResponderModes, Version1Mode0IsAClient) {
  Bytes b = request(0x08);  // LI 0, VN 1, mode 0 (RFC 1059 had no mode)
  const NtpDecision d = run(b, 48);
  ASSERT_EQ(d.action, NtpAction::kReply);
  EXPECT_EQ(b[0], 0x0C);  // VN 1, mode 4
}

TEST(ResponderModes, PeerAndServerModesGoToControl) {
  for (uint8_t vn = 1; vn <= 4; vn++)
    for (uint8_t mode : {1, 2, 4}) {
      SCOPED_TRACE(testing::Message() << "vn " << int{vn} << " mode " << int{mode});
      Bytes b = request(static_cast<uint8_t>((vn << 3) | mode));
      const Bytes before = b;
      EXPECT_EQ(run(b, 48).action, NtpAction::kToControl);
      EXPECT_EQ(b, before);  // forwarded untouched
      // Even on an interface that does not serve clients.
      EXPECT_EQ(run(b, 48, false).action, NtpAction::kToControl);
    }
}

TEST(ResponderModes, Mode5AndMode0AreBadMode) {
  for (uint8_t vn = 2; vn <= 4; vn++) {
    SCOPED_TRACE(int{vn});
    Bytes b = request(static_cast<uint8_t>((vn << 3) | 0));
    NtpDecision d = run(b, 48);
    EXPECT_EQ(d.action, NtpAction::kDrop);
    EXPECT_EQ(d.reason, DropReason::kNtpBadMode);
    b = request(static_cast<uint8_t>((vn << 3) | 5));
    d = run(b, 48);
    EXPECT_EQ(d.action, NtpAction::kDrop);
    EXPECT_EQ(d.reason, DropReason::kNtpBadMode);
  }
  Bytes b = request(0x0D);  // VN 1 mode 5
  EXPECT_EQ(run(b, 48).reason, DropReason::kNtpBadMode);
}

TEST(ResponderModes, ControlAndPrivateModesEvenWhenShort) {
  for (uint8_t vn = 1; vn <= 4; vn++)
    for (uint8_t mode : {6, 7})
      for (size_t len : {size_t{1}, size_t{8}, size_t{12}, size_t{47}, size_t{48}, size_t{60}}) {
        SCOPED_TRACE(testing::Message() << "vn " << int{vn} << " mode " << int{mode} << " len " << len);
        Bytes b = request(static_cast<uint8_t>((vn << 3) | mode), len);
        const NtpDecision d = run(b, len);
        EXPECT_EQ(d.action, NtpAction::kDrop);
        EXPECT_EQ(d.reason, DropReason::kNtpControlMode);
      }
  // A real ntpq "readvar" request: 12 bytes, VN 2 mode 6, opcode 2.
  Bytes ntpq = {0x16, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  ntpq.resize(kMaxReplyLen);
  const NtpDecision d = run(ntpq, 12);
  EXPECT_EQ(d.action, NtpAction::kDrop);
  EXPECT_EQ(d.reason, DropReason::kNtpControlMode);
}

TEST(ResponderModes, BadVersions) {
  for (uint8_t vn : {0, 5, 6, 7}) {
    SCOPED_TRACE(int{vn});
    Bytes b = request(static_cast<uint8_t>((vn << 3) | 3));
    const NtpDecision d = run(b, 48);
    EXPECT_EQ(d.action, NtpAction::kDrop);
    EXPECT_EQ(d.reason, DropReason::kNtpBadVersion);
  }
}

TEST(ResponderModes, TooShort) {
  for (size_t len : {size_t{0}, size_t{1}, size_t{12}, size_t{47}}) {
    SCOPED_TRACE(len);
    Bytes b = request(0x23, len);
    const NtpDecision d = run(b, len);
    EXPECT_EQ(d.action, NtpAction::kDrop);
    EXPECT_EQ(d.reason, DropReason::kNtpTooShort);
  }
}

TEST(ResponderModes, ServerDisabled) {
  Bytes b = buffer_of(golden::kChronyRequest0, 48);
  const Bytes before = b;
  const NtpDecision d = run(b, 48, false);
  EXPECT_EQ(d.action, NtpAction::kDrop);
  EXPECT_EQ(d.reason, DropReason::kNtpServerDisabled);
  EXPECT_EQ(b, before);
}

// -------------------------------------------------------- MACs and extensions

// A v4 request followed by `tail` (extension fields and/or a MAC).
Bytes with_tail(const Bytes& tail, uint8_t li_vn_mode = 0x23) {
  Bytes b = request(li_vn_mode, 48);
  b.resize(48);
  b.insert(b.end(), tail.begin(), tail.end());
  if (b.size() < kMaxReplyLen) b.resize(kMaxReplyLen, 0);
  return b;
}
Bytes mac(size_t len) {  // key ID 0x0000002A and a digest
  Bytes m(len, 0xD7);
  m[0] = 0, m[1] = 0, m[2] = 0, m[3] = 0x2A;
  return m;
}
Bytes ext(uint16_t type, uint16_t len) {  // RFC 7822 extension field with declared length len
  Bytes e(len < 4 ? 4 : len, 0x33);
  e[0] = static_cast<uint8_t>(type >> 8), e[1] = static_cast<uint8_t>(type);
  e[2] = static_cast<uint8_t>(len >> 8), e[3] = static_cast<uint8_t>(len);
  return e;
}
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes r;
  for (const auto& p : parts) r.insert(r.end(), p.begin(), p.end());
  return r;
}

TEST(ResponderAuth, MacGetsCryptoNak) {
  for (size_t mac_len : {size_t{20}, size_t{24}}) {
    SCOPED_TRACE(mac_len);
    Bytes b = with_tail(mac(mac_len));
    const size_t len = 48 + mac_len;
    const NtpDecision d = run(b, len);
    ASSERT_EQ(d.action, NtpAction::kReply);
    ASSERT_EQ(d.reply_len, 52);
    EXPECT_EQ(Bytes(b.begin() + 4, b.begin() + 24), Bytes(kReplyHead.begin() + 4, kReplyHead.end()));
    EXPECT_EQ(Bytes(b.begin() + 48, b.begin() + 52), Bytes(4, 0));  // key ID 0, no digest
  }
}

TEST(ResponderAuth, NtpV3DesMacGetsCryptoNak) {
  Bytes b = with_tail(mac(12), 0x1B);
  const NtpDecision d = run(b, 60);
  ASSERT_EQ(d.action, NtpAction::kReply);
  EXPECT_EQ(d.reply_len, 52);
  EXPECT_EQ(Bytes(b.begin() + 48, b.begin() + 52), Bytes(4, 0));
}

TEST(ResponderAuth, CryptoNakInRequestGetsPlainReply) {
  Bytes b = with_tail(Bytes(4, 0));
  const NtpDecision d = run(b, 52);
  ASSERT_EQ(d.action, NtpAction::kReply);
  EXPECT_EQ(d.reply_len, 48);
}

TEST(ResponderAuth, ExtensionFieldsNotEchoed) {
  struct Case {
    const char* name;
    Bytes tail;
    uint16_t reply_len;
  };
  const Case cases[] = {
      // RFC 7822 section 7.5: without a MAC the last field is >= 28 octets.
      {"one 28-byte field", ext(0x0104, 28), 48},
      {"two fields", cat({ext(0x0104, 16), ext(0x0204, 28)}), 48},
      {"field + MD5 MAC", cat({ext(0x0104, 16), mac(20)}), 52},
      {"field + SHA-1 MAC", cat({ext(0x0104, 32), mac(24)}), 52},
      {"field + crypto-NAK", cat({ext(0x0104, 28), Bytes(4, 0)}), 48},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Bytes b = with_tail(c.tail);
    const NtpDecision d = run(b, 48 + c.tail.size());
    ASSERT_EQ(d.action, NtpAction::kReply);
    EXPECT_EQ(d.reply_len, c.reply_len);
    if (c.reply_len == 52) {
      EXPECT_EQ(Bytes(b.begin() + 48, b.begin() + 52), Bytes(4, 0));
    }
  }
}

TEST(ResponderAuth, BadExtensionLengths) {
  struct Case {
    const char* name;
    Bytes tail;
    uint8_t li_vn_mode = 0x23;
  };
  Bytes past_end = ext(0x0104, 64);
  past_end.resize(28);  // declares 64, 28 present
  const Case cases[] = {
      {"declared 12 (< 16)", cat({ext(0x0104, 12), Bytes(16, 0)})},
      {"declared 0", cat({ext(0x0104, 0), Bytes(24, 0)})},
      {"declared 18 (not a multiple of 4)", cat({ext(0x0104, 18), Bytes(10, 0)})},
      {"declared past the end", past_end},
      {"lone 16-byte field, no MAC (RFC 7822: must be >= 28)", ext(0x0104, 16)},
      {"5 trailing bytes", Bytes(5, 0)},
      {"8 trailing bytes", Bytes(8, 0)},
      {"16-byte field then 3 bytes", cat({ext(0x0104, 16), Bytes(3, 0)})},
      {"v3 with 16 trailing bytes", Bytes(16, 0), 0x1B},
      {"v3 with a 16-byte 'extension'", ext(0x0104, 28), 0x1B},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Bytes b = with_tail(c.tail, c.li_vn_mode);
    const NtpDecision d = run(b, 48 + c.tail.size());
    EXPECT_EQ(d.action, NtpAction::kDrop);
    EXPECT_EQ(d.reason, DropReason::kNtpBadLength);
  }
}

// ------------------------------------------------------------- reply_params

constexpr int64_t kS = 1000000000;
constexpr int64_t kPublished = 1795670000LL * kS;  // 2026-11-26

proto::ServerStateData synced_state() {
  proto::ServerStateData s;
  s.leap = 0;
  s.stratum = 3;
  s.precision_log2 = -23;
  s.synchronized = 1;
  s.refid = 0x0A00011F;                 // 10.0.1.31
  s.reference_time_ns = kPublished - 5 * kS + 500000000;  // .5 s exactly: fraction 0x80000000
  s.root_delay_ns = 3906250;            // 1/256 s: short 0x00000100
  s.root_dispersion_ns = 1953125;       // 1/512 s: short 0x00000080
  s.published_ns = kPublished;
  s.holdover_ns = 3600 * kS;
  s.dispersion_rate_ppb = 15625;        // 1/64000 s per s: 500 s of age adds 1/128 s
  return s;
}

void expect_unsynchronized(const ReplyParams& p) {
  EXPECT_EQ(p.leap, proto::Leap::kUnsynchronized);
  EXPECT_EQ(p.stratum, 0);
  EXPECT_FALSE(p.synchronized);
}

TEST(ReplyParams, NoStateIsUnsynchronizedInit) {
  proto::ServerStateData s = synced_state();  // whatever is in it must not leak out
  const ReplyParams p = reply_params(s, false, kPublished);
  expect_unsynchronized(p);
  EXPECT_EQ(p.refid, proto::kKissInit);
  EXPECT_EQ(p.refid, 0x494E4954u);
  EXPECT_EQ(p.root_delay, 0u);
  EXPECT_EQ(p.root_dispersion, 0u);
  EXPECT_TRUE(p.reference.is_zero());
}

TEST(ReplyParams, SynchronizedStateValues) {
  const ReplyParams p = reply_params(synced_state(), true, kPublished);
  EXPECT_EQ(p.leap, proto::Leap::kNone);
  EXPECT_EQ(p.stratum, 3);
  EXPECT_EQ(p.precision_log2, -23);
  EXPECT_EQ(p.refid, 0x0A00011Fu);
  // 1795669995.5 s Unix = 1795669995 + 2208988800 NTP seconds.
  EXPECT_EQ(p.reference.seconds, 1795669995u + 2208988800u);
  EXPECT_EQ(p.reference.fraction, 0x80000000u);
  EXPECT_EQ(p.root_delay, 0x00000100u);
  EXPECT_EQ(p.root_dispersion, 0x00000080u);  // age 0: no growth
  EXPECT_TRUE(p.synchronized);
}

TEST(ReplyParams, DispersionGrowsExactlyAgeTimesRate) {
  const proto::ServerStateData s = synced_state();
  // 500 s * 15625 ppb = 7812500 ns = 1/128 s = short 0x200; plus 0x80.
  ReplyParams p = reply_params(s, true, kPublished + 500 * kS);
  EXPECT_EQ(p.root_dispersion, 0x00000280u);
  EXPECT_EQ(p.root_delay, 0x00000100u);  // delay does not grow
  EXPECT_TRUE(p.synchronized);
  // 1000 s: 0x400 + 0x80.
  p = reply_params(s, true, kPublished + 1000 * kS);
  EXPECT_EQ(p.root_dispersion, 0x00000480u);
  // 64 us of age more give 1 ns more dispersion (15625 ppb * 64000 ns =
  // 1 ns), which a dispersion must not hide: rounds up to the next 2^-16 s.
  p = reply_params(s, true, kPublished + 500 * kS + 64000);
  EXPECT_EQ(p.root_dispersion, 0x00000281u);
  // A clock behind the publication (reordering across workers): no growth.
  p = reply_params(s, true, kPublished - 10 * kS);
  EXPECT_EQ(p.root_dispersion, 0x00000080u);
  EXPECT_TRUE(p.synchronized);
  // Another rate: 1 s at 1953125 ppb adds 1953125 ns = 1/512 s = short 0x80.
  proto::ServerStateData s2 = s;
  s2.dispersion_rate_ppb = 1953125;
  p = reply_params(s2, true, kPublished + kS);
  EXPECT_EQ(p.root_dispersion, 0x00000100u);
}

TEST(ReplyParams, DispersionGrowsAlsoAfterHoldover) {
  // The unsynchronized answer still reports how uncertain the time is.
  const proto::ServerStateData s = synced_state();
  const ReplyParams p = reply_params(s, true, kPublished + 4000 * kS);  // past 3600 s holdover
  expect_unsynchronized(p);
  EXPECT_EQ(p.root_dispersion, 0x80u + 0x1000u);  // 4000 s * 15625 ppb = 62.5 ms = 1/16 s = short 0x1000
}

TEST(ReplyParams, HoldoverBoundary) {
  const proto::ServerStateData s = synced_state();
  ReplyParams p = reply_params(s, true, kPublished + s.holdover_ns);
  EXPECT_TRUE(p.synchronized);
  EXPECT_EQ(p.leap, proto::Leap::kNone);
  EXPECT_EQ(p.stratum, 3);
  p = reply_params(s, true, kPublished + s.holdover_ns + 1);
  expect_unsynchronized(p);
}

TEST(ReplyParams, ZeroHoldoverOnlyAtPublication) {
  proto::ServerStateData s = synced_state();
  s.holdover_ns = 0;
  EXPECT_TRUE(reply_params(s, true, kPublished).synchronized);
  expect_unsynchronized(reply_params(s, true, kPublished + 1));
}

TEST(ReplyParams, NotSynchronizedFlag) {
  proto::ServerStateData s = synced_state();
  s.synchronized = 0;
  expect_unsynchronized(reply_params(s, true, kPublished));
}

TEST(ReplyParams, Stratum16GoesOutAsZero) {
  proto::ServerStateData s = synced_state();
  s.stratum = proto::kStratumUnsynchronized;
  const ReplyParams p = reply_params(s, true, kPublished);
  expect_unsynchronized(p);
  EXPECT_EQ(p.stratum, 0);
  s.stratum = 0;
  expect_unsynchronized(reply_params(s, true, kPublished));
}

TEST(ReplyParams, LeapPassedThrough) {
  proto::ServerStateData s = synced_state();
  s.leap = 1;
  ReplyParams p = reply_params(s, true, kPublished);
  EXPECT_EQ(p.leap, proto::Leap::kInsert);
  EXPECT_TRUE(p.synchronized);
  s.leap = 2;
  p = reply_params(s, true, kPublished);
  EXPECT_EQ(p.leap, proto::Leap::kDelete);
  s.leap = 3;  // the control plane says unsynchronized through LI alone
  expect_unsynchronized(reply_params(s, true, kPublished));
}

TEST(ReplyParams, Stratum1And15Served) {
  proto::ServerStateData s = synced_state();
  s.stratum = 1;
  s.refid = proto::refid_from_ascii("GPS\0");
  ReplyParams p = reply_params(s, true, kPublished);
  EXPECT_EQ(p.stratum, 1);
  EXPECT_EQ(p.refid, 0x47505300u);
  s.stratum = 15;
  EXPECT_EQ(reply_params(s, true, kPublished).stratum, 15);
}

TEST(ReplyParams, EndToEndThroughRespond) {
  // reply_params feeds respond: a stale state gives LI 3 stratum 0 on the wire.
  const proto::ServerStateData s = synced_state();
  const ReplyParams p = reply_params(s, true, kPublished + s.holdover_ns + 1);
  Bytes b = buffer_of(golden::kChronyRequest0, 48);
  ASSERT_EQ(respond(b.data(), 48, kRx, p, true).action, NtpAction::kReply);
  EXPECT_EQ(b[0], 0xE4);
  EXPECT_EQ(b[1], 0);
  EXPECT_EQ(b[3], static_cast<uint8_t>(-23));
}

// One's-complement sum of 32-bit big-endian words, unfolded: what
// NtpDecision::reply_sum must equal for the bytes written.
uint64_t word_sum(const Bytes& b, size_t n) {
  uint64_t sum = 0;
  for (size_t i = 0; i + 4 <= n; i += 4) sum += proto::load_be32(b.data() + i);
  return sum;
}

TEST(ReplyParams, HoldAsReferenceIdAfterTheHoldover) {
  // RFC 5905 section 7.4: with stratum 0 the reference ID is a kiss code;
  // after the holdover it says why (HOLD), not the lost source's address.
  const proto::ServerStateData s = synced_state();
  ReplyParams p = reply_params(s, true, kPublished + s.holdover_ns);
  EXPECT_EQ(p.refid, 0x0A00011Fu);  // still within: the source's address
  p = reply_params(s, true, kPublished + s.holdover_ns + 1);
  expect_unsynchronized(p);
  EXPECT_EQ(p.refid, proto::kKissHold);
  Bytes b = buffer_of(golden::kChronyRequest0, 48);
  const NtpDecision d = respond(b.data(), 48, kRx, p, true);
  ASSERT_EQ(d.action, NtpAction::kReply);
  EXPECT_EQ(b[0], 0xE4);  // LI 3, VN 4, mode 4
  EXPECT_EQ(b[1], 0x00);  // stratum 0
  EXPECT_EQ(Bytes(b.begin() + 12, b.begin() + 16), Bytes({'H', 'O', 'L', 'D'}));
  EXPECT_EQ(d.reply_sum, word_sum(b, 48));
  // Unsynchronized within the holdover: the control plane's own kiss code
  // (INIT, STEP) goes out as published.
  proto::ServerStateData s2 = s;
  s2.synchronized = 0;
  s2.refid = proto::kKissStep;
  p = reply_params(s2, true, kPublished + 10 * kS);
  expect_unsynchronized(p);
  EXPECT_EQ(p.refid, proto::kKissStep);
}

// A leap at the end of 2016-12-31; the state published during that day.
constexpr int64_t kLeapNs = 1483228800LL * kS;  // 2017-01-01T00:00:00Z

TEST(ReplyParams, LeapAnnouncedUntilItsMidnight) {
  for (uint8_t leap : {uint8_t{1}, uint8_t{2}}) {
    SCOPED_TRACE(int{leap});
    proto::ServerStateData s = synced_state();
    s.published_ns = kLeapNs - 600 * kS;
    s.leap = leap;
    s.leap_ns = kLeapNs;
    ReplyParams p = reply_params(s, true, kLeapNs - kS);  // 23:59:59 (for an insertion: either pass)
    EXPECT_EQ(p.leap, static_cast<proto::Leap>(leap));
    EXPECT_EQ(p.leap_before, proto::Leap::kNone);
    p = reply_params(s, true, kLeapNs - 1);
    EXPECT_EQ(p.leap, static_cast<proto::Leap>(leap));
    p = reply_params(s, true, kLeapNs);  // 00:00:00: the leap is past
    EXPECT_EQ(p.leap, proto::Leap::kNone);
    EXPECT_TRUE(p.synchronized);
    EXPECT_EQ(p.leap_before, static_cast<proto::Leap>(leap));
    EXPECT_EQ(p.leap_at, proto::ntp_from_unix_ns(kLeapNs));
    p = reply_params(s, true, kLeapNs + 600 * kS);
    EXPECT_EQ(p.leap, proto::Leap::kNone);
    // No date: announced as published, whatever the time.
    s.leap_ns = 0;
    p = reply_params(s, true, kLeapNs + 600 * kS);
    EXPECT_EQ(p.leap, static_cast<proto::Leap>(leap));
    EXPECT_EQ(p.leap_before, proto::Leap::kNone);
  }
}

TEST(ReplyParams, NoLeapWhenUnsynchronizedOrNone) {
  proto::ServerStateData s = synced_state();
  s.published_ns = kLeapNs - 600 * kS;
  s.leap_ns = kLeapNs;
  s.leap = 0;  // a date without a leap (as when smearing): nothing to carry
  ReplyParams p = reply_params(s, true, kLeapNs + kS);
  EXPECT_EQ(p.leap, proto::Leap::kNone);
  EXPECT_EQ(p.leap_before, proto::Leap::kNone);
  s.leap = 1;
  s.synchronized = 0;
  p = reply_params(s, true, kLeapNs + kS);
  expect_unsynchronized(p);
  EXPECT_EQ(p.leap_before, proto::Leap::kNone);  // LI 3 for every packet
  s.synchronized = 1;
  s.leap = 3;
  p = reply_params(s, true, kLeapNs + kS);
  expect_unsynchronized(p);
  EXPECT_EQ(p.leap_before, proto::Leap::kNone);
}

TEST(ResponderLeap, RequestReceivedBeforeTheLeapKeepsItsIndicator) {
  // A burst that began at 00:00:00.000001 holds a request whose NIC
  // timestamp is 23:59:59.999999999 (of the repeated second): it is answered
  // with LI 1, the next one received at 00:00:00 with LI 0.
  proto::ServerStateData s = synced_state();
  s.published_ns = kLeapNs - 600 * kS;
  s.leap = 1;
  s.leap_ns = kLeapNs;
  const ReplyParams p = reply_params(s, true, kLeapNs + 1000);
  struct Case {
    int64_t rx_ns;
    uint8_t li_vn_mode;
  };
  for (const Case c : {Case{kLeapNs - 1, 0x64}, Case{kLeapNs - kS, 0x64}, Case{kLeapNs, 0x24}, Case{kLeapNs + 1, 0x24},
                       Case{kLeapNs + 500, 0x24}}) {
    SCOPED_TRACE(c.rx_ns - kLeapNs);
    const NtpTimestamp rx = proto::ntp_from_unix_ns(c.rx_ns);
    Bytes b = buffer_of(golden::kChronyRequest0, 48);
    const NtpDecision d = respond(b.data(), 48, rx, p, true);
    ASSERT_EQ(d.action, NtpAction::kReply);
    EXPECT_EQ(b[0], c.li_vn_mode);
    EXPECT_EQ(Bytes(b.begin() + 32, b.begin() + 40), [&] {
      Bytes want(8);
      proto::store_ts(want.data(), rx);
      return want;
    }());
    EXPECT_EQ(d.reply_sum, word_sum(b, 48));  // the checksum follows the LI actually sent
  }
  // Deletion: the same rule, LI 2 for a request received before midnight.
  s.leap = 2;
  const ReplyParams q = reply_params(s, true, kLeapNs + 1000);
  Bytes b = buffer_of(golden::kChronyRequest0, 48);
  ASSERT_EQ(respond(b.data(), 48, proto::ntp_from_unix_ns(kLeapNs - kS - 1), q, true).action, NtpAction::kReply);
  EXPECT_EQ(b[0], 0xA4);  // LI 2, VN 4, mode 4
  b = buffer_of(golden::kChronyRequest0, 48);
  ASSERT_EQ(respond(b.data(), 48, proto::ntp_from_unix_ns(kLeapNs), q, true).action, NtpAction::kReply);
  EXPECT_EQ(b[0], 0x24);
}

TEST(ResponderLeap, EraSafeAcross2036) {
  // A leap at the end of the NTP era 0 (2036-02-07 06:28:16 is no midnight,
  // but the comparison must not care): a receive time in era 1 is after it.
  ReplyParams p = fixed_reply_params();
  p.leap_before = proto::Leap::kInsert;
  p.leap_at = {0xFFFFFFFF, 0x80000000};
  Bytes b = buffer_of(golden::kChronyRequest0, 48);
  ASSERT_EQ(respond(b.data(), 48, {0x00000001, 0}, p, true).action, NtpAction::kReply);
  EXPECT_EQ(b[0], 0x24);
  b = buffer_of(golden::kChronyRequest0, 48);
  ASSERT_EQ(respond(b.data(), 48, {0xFFFFFFFF, 0}, p, true).action, NtpAction::kReply);
  EXPECT_EQ(b[0], 0x64);
}

// ------------------------------------------------- kiss-o'-death, stateless mode 2

// A chrony request with its own precision, root delay/dispersion and
// reference timestamp, to see which fields a KoD keeps.
Bytes client_request_with_fields() {
  Bytes b = request(0x23, 48, 7);
  b[3] = 0xEA;                                            // precision -22
  for (int i = 0; i < 4; i++) b[4 + i] = static_cast<uint8_t>(0x10 + i);   // root delay
  for (int i = 0; i < 4; i++) b[8 + i] = static_cast<uint8_t>(0x20 + i);   // root dispersion
  for (int i = 0; i < 4; i++) b[12 + i] = static_cast<uint8_t>(0x30 + i);  // reference ID
  for (int i = 0; i < 8; i++) b[16 + i] = static_cast<uint8_t>(0x40 + i);  // reference timestamp
  for (int i = 0; i < 8; i++) b[24 + i] = static_cast<uint8_t>(0x50 + i);  // origin (the client's garbage)
  for (int i = 0; i < 8; i++) b[32 + i] = static_cast<uint8_t>(0x60 + i);  // receive
  return b;
}

uint64_t sum_words(const Bytes& b, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i < n; i += 4) s += proto::load_be32(b.data() + i);
  return s;
}

TEST(ResponderKod, RateAndDenyFormat) {
  for (uint32_t code : {proto::kKissRate, proto::kKissDeny}) {
    SCOPED_TRACE(code);
    Bytes b = client_request_with_fields();
    const Bytes before = b;
    const NtpRequest q = classify_request(b.data(), 48);
    ASSERT_TRUE(q.ok);
    const NtpDecision d = kiss_of_death(b.data(), q, code);
    ASSERT_EQ(d.action, NtpAction::kReply);
    EXPECT_EQ(d.reply_len, 48);
    // RFC 5905 section 7.4: LI 3, VN 4 (the request's), mode 4, stratum 0,
    // the kiss code in the reference ID, the client's poll.
    EXPECT_EQ(b[0], 0xE4);
    EXPECT_EQ(b[1], 0);
    EXPECT_EQ(b[2], 7);
    EXPECT_EQ(proto::load_be32(b.data() + 12), code);
    // The client's precision, root delay/dispersion and reference as sent
    // (ntpd's fast_xmit with RES_KOD): nothing of our clock.
    EXPECT_EQ(Bytes(b.begin() + 3, b.begin() + 12), Bytes(before.begin() + 3, before.begin() + 12));
    EXPECT_EQ(Bytes(b.begin() + 16, b.begin() + 24), Bytes(before.begin() + 16, before.begin() + 24));
    // Origin, receive and transmit: the request's transmit timestamp.
    const Bytes xmt(before.begin() + 40, before.begin() + 48);
    EXPECT_EQ(Bytes(b.begin() + 24, b.begin() + 32), xmt);
    EXPECT_EQ(Bytes(b.begin() + 32, b.begin() + 40), xmt);
    EXPECT_EQ(Bytes(b.begin() + 40, b.begin() + 48), xmt);
    // The sum the frame's checksum uses is that of the bytes written.
    EXPECT_EQ(d.reply_sum, sum_words(b, 48));
    // Nothing written past the 48 bytes.
    for (size_t i = 48; i < b.size(); i++) EXPECT_EQ(b[i], before[i]);
  }
}

TEST(ResponderKod, KissCodesAreAsciiOnTheWire) {
  Bytes b = client_request_with_fields();
  const NtpRequest q = classify_request(b.data(), 48);
  kiss_of_death(b.data(), q, proto::kKissRate);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data() + 12), 4), "RATE");
  kiss_of_death(b.data(), q, proto::kKissDeny);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data() + 12), 4), "DENY");
}

TEST(ResponderKod, OnlyForNtpV4) {
  for (uint8_t v : {1, 2, 3}) {
    SCOPED_TRACE(int{v});
    Bytes b = request(static_cast<uint8_t>((v << 3) | 3));
    const Bytes before = b;
    const NtpRequest q = classify_request(b.data(), 48);
    ASSERT_TRUE(q.ok);
    const NtpDecision d = kiss_of_death(b.data(), q, proto::kKissRate);
    EXPECT_EQ(d.action, NtpAction::kDrop);
    EXPECT_EQ(b, before);  // untouched
  }
}

TEST(ResponderKod, NeverLargerThanTheRequestNoMacEchoed) {
  // A request with a 20-byte MAC (68 bytes) and one with a 24-byte MAC: the
  // KoD is the 48-byte header, the MAC neither echoed nor NAKed.
  for (size_t len : {68u, 72u}) {
    SCOPED_TRACE(len);
    Bytes b = request(0x23, len);
    for (size_t i = 48; i < len; i++) b[i] = static_cast<uint8_t>(i);
    b[48] = 0;  // key ID 0x00xxxxxx
    const Bytes before = b;
    const NtpRequest q = classify_request(b.data(), len);
    ASSERT_TRUE(q.ok);
    ASSERT_GT(q.mac_len, 4);
    const NtpDecision d = kiss_of_death(b.data(), q, proto::kKissDeny);
    ASSERT_EQ(d.action, NtpAction::kReply);
    EXPECT_EQ(d.reply_len, 48);
    EXPECT_LE(d.reply_len, len);
    for (size_t i = 48; i < b.size(); i++) EXPECT_EQ(b[i], before[i]);
  }
}

TEST(ResponderPassive, StatelessModeTwoAnswer) {
  // RFC 5905: a symmetric-active packet from an address that may not peer,
  // answered as a client request would be, in mode 2 (symmetric passive).
  Bytes b = buffer_of(golden::kChronyRequest0, 48);
  b[0] = 0x21;  // LI 0, VN 4, mode 1
  const Bytes before = b;
  const NtpRequest q = classify_request(b.data(), 48);
  ASSERT_TRUE(q.ok);
  ASSERT_EQ(q.mode, proto::Mode::kSymmetricActive);
  const NtpDecision d = answer(b.data(), q, kRx, fixed_reply_params(), proto::Mode::kSymmetricPassive);
  ASSERT_EQ(d.action, NtpAction::kReply);
  EXPECT_EQ(d.reply_len, 48);
  EXPECT_EQ(b[0], 0x22);  // LI 0, VN 4, mode 2
  EXPECT_EQ(Bytes(b.begin() + 1, b.begin() + 24), Bytes(kReplyHead.begin() + 1, kReplyHead.end()));
  EXPECT_EQ(Bytes(b.begin() + 24, b.begin() + 32), Bytes(before.begin() + 40, before.begin() + 48));  // origin
  EXPECT_EQ(proto::load_ts(b.data() + 32), kRx);
  EXPECT_EQ(proto::load_ts(b.data() + 40), (NtpTimestamp{0, 0}));  // stamped at TX
  EXPECT_EQ(d.reply_sum, sum_words(b, 48));
  // The same request as a client's gets the same bytes but mode 4.
  Bytes c = before;
  c[0] = 0x23;
  const NtpRequest qc = classify_request(c.data(), 48);
  answer(c.data(), qc, kRx, fixed_reply_params(), proto::Mode::kServer);
  EXPECT_EQ(c[0], 0x24);
  EXPECT_EQ(Bytes(c.begin() + 1, c.begin() + 48), Bytes(b.begin() + 1, b.begin() + 48));
}

TEST(ResponderClassify, ModesAndVersions) {
  Bytes b = request(0x0B);  // NTPv1 mode 3: a client
  EXPECT_EQ(classify_request(b.data(), 48).mode, proto::Mode::kClient);
  b = request(0x08);  // NTPv1 mode 0: RFC 1059 has no modes, a client
  EXPECT_EQ(classify_request(b.data(), 48).mode, proto::Mode::kClient);
  EXPECT_EQ(classify_request(b.data(), 48).version, 1);
  b = request(0x20);  // NTPv4 mode 0
  EXPECT_FALSE(classify_request(b.data(), 48).ok);
  EXPECT_EQ(classify_request(b.data(), 48).reason, DropReason::kNtpBadMode);
  for (uint8_t m : {1, 2, 3, 4}) {
    b = request(static_cast<uint8_t>(0x20 | m));
    const NtpRequest q = classify_request(b.data(), 48);
    EXPECT_TRUE(q.ok);
    EXPECT_EQ(static_cast<int>(q.mode), m);
    EXPECT_EQ(q.transmit, proto::load_ts(b.data() + 40));
  }
}

// ------------------------------------------------- authenticated requests

// The keys of the captures (tests/unit/test_mac.cc, chronyd 4.3 and ntpdig
// 1.2.2 with these keys):
//   1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C
//   2 SHA1   HEX:5C46D0B3F59AEBD3E4A6C7F2B8D9E0A1B2C3D4E5
//   3 MD5    ASCII:md5secret-interop
//   4 SHA256 HEX:00112233445566778899AABBCCDDEEFF0123456789ABCDEF0123456789ABCDEF
Bytes unhex(const char* h) {
  Bytes out;
  for (size_t i = 0; h[i] && h[i + 1]; i += 2) out.push_back(static_cast<uint8_t>(std::stoi(std::string(h + i, 2), nullptr, 16)));
  return out;
}

const crypto::KeyTable& captured_keys() {
  static const crypto::KeyTable table = [] {
    crypto::KeyTable t;
    const auto add = [&t](uint32_t id, crypto::MacType type, const Bytes& secret) {
      crypto::MacKey k;
      EXPECT_TRUE(crypto::mac_key_init(k, id, type, secret.data(), secret.size()));
      EXPECT_TRUE(t.insert(k));
    };
    add(1, crypto::MacType::kAes128Cmac, unhex("2B7E151628AED2A6ABF7158809CF4F3C"));
    add(2, crypto::MacType::kSha1, unhex("5C46D0B3F59AEBD3E4A6C7F2B8D9E0A1B2C3D4E5"));
    const std::string md5 = "md5secret-interop";
    add(3, crypto::MacType::kMd5, Bytes(md5.begin(), md5.end()));
    add(4, crypto::MacType::kSha256, unhex("00112233445566778899AABBCCDDEEFF0123456789ABCDEF0123456789ABCDEF"));
    add(5, crypto::MacType::kHmacSha256, unhex("00112233445566778899AABBCCDDEEFF"));
    return t;
  }();
  return table;
}

struct CapturedRequest {
  const char* what;
  uint32_t key_id;
  const char* hex;
};
const CapturedRequest kCapturedRequests[] = {
    {"chronyd AES128", 1,
     "230006200000000000000000000000000000000000000000000000000000000000000000000000000444d0c474a1ad4200000001"
     "0a8af9f1a5eb6b93eb17880c10a7f02f"},
    {"ntpdig AES128", 1,
     "e3000000000000000000000000000000000000000000000000000000000000000000000000000000eeb97426848cd00000000001"
     "d5d1274641e75e6e784fe1d933ee1519"},
    {"chronyd SHA1", 2,
     "230006200000000000000000000000000000000000000000000000000000000000000000000000003c68cb3ac10e824b00000002"
     "0e61297985b1487e24b51f0557d0142d9a1218d2"},
    {"chronyd MD5", 3,
     "230006200000000000000000000000000000000000000000000000000000000000000000000000006297df6d00c543dd00000003"
     "066925c31820ae3f16f2274884361a14"},
    {"chronyd SHA256 (NTPv3, 32 bytes)", 4,
     "1b0006200000000000000000000000000000000000000000000000000000000000000000000000005c816fa9a17401b000000004"
     "ceb8a6362825a40ca9ee380e8e091375fde5cd03cd41683c146e5eeb9f8af38b"},
    {"ntpdig SHA256 (NTPv4, 32 bytes)", 4,
     "e3000000000000000000000000000000000000000000000000000000000000000000000000000000eeb974277442f00000000004"
     "4cf155f4d98319d49c903e72670bd39ead8dc8e7b07d0a32c5fc1e669dcb504c"},
};

constexpr NtpTimestamp kTx = {0xEEB23E81, 0x0D000000};

// Stamps and seals a reply as the worker does; the checksum sum of the
// result must be the decision's sum plus the stamp's and the seal's.
void stamp_and_seal(Bytes& b, const NtpDecision& d) {
  proto::store_ts(b.data() + proto::offs::kTransmit, kTx);
  uint64_t seal_sum = 0;
  if (d.mac_key) seal_sum = seal_reply(b.data(), *d.mac_key, d.mac_digest_bytes);
  EXPECT_EQ(d.reply_sum + kTx.seconds + kTx.fraction + seal_sum, sum_words(b, d.reply_len));
}

TEST(ResponderAuth, CapturedRequestsAnsweredWithTheirKey) {
  for (const CapturedRequest& c : kCapturedRequests) {
    SCOPED_TRACE(c.what);
    const Bytes req = unhex(c.hex);
    Bytes b = buffer_of(req.data(), req.size());
    const NtpDecision d = respond(b.data(), req.size(), kRx, fixed_reply_params(), true, &captured_keys());
    ASSERT_EQ(d.action, NtpAction::kReply);
    EXPECT_EQ(d.auth, AuthOutcome::kOk);
    ASSERT_NE(d.mac_key, nullptr);
    EXPECT_EQ(d.mac_key->id, c.key_id);
    // The request's length: its key ID and digest length, never longer.
    EXPECT_EQ(d.reply_len, req.size());
    EXPECT_EQ(d.mac_digest_bytes, req.size() - 52);
    EXPECT_EQ(b[0], (req[0] & 0x38) | 0x04);  // the request's version, mode 4
    EXPECT_EQ(proto::load_be32(b.data() + 48), c.key_id);
    stamp_and_seal(b, d);
    // The client's view: the reply verifies with the key, transmit stamp
    // included; another stamp after sealing would not.
    const crypto::MacResult m = crypto::check_mac(captured_keys(), b.data(), 48, b.data() + 48, d.reply_len - 48);
    EXPECT_EQ(m.check, crypto::MacCheck::kOk) << crypto::mac_check_name(m.check);
    b[47] ^= 1;
    EXPECT_EQ(crypto::check_mac(captured_keys(), b.data(), 48, b.data() + 48, d.reply_len - 48).check,
              crypto::MacCheck::kBadDigest);
  }
}

// A request MACed here with key `id` and `digest_bytes`, after `tail`
// (extension fields) if any.
Bytes keyed_request(uint32_t id, size_t digest_bytes, const Bytes& tail = {}, uint8_t li_vn_mode = 0x23) {
  Bytes b = request(li_vn_mode, 48);
  b.resize(48);
  b.insert(b.end(), tail.begin(), tail.end());
  const size_t covered = b.size();
  b.resize(covered + 4 + crypto::kMaxDigestBytes, 0);
  const crypto::MacKey* k = captured_keys().find(id);
  EXPECT_NE(k, nullptr);
  const size_t n = crypto::append_mac(*k, b.data(), covered, digest_bytes);
  b.resize(covered + n);
  return b;
}

TEST(ResponderAuth, TruncatedV4DigestsAnsweredTruncated) {
  // chrony and ntpd truncate a longer digest to 20 bytes in NTPv4: the
  // reply carries the same 20.
  for (uint32_t id : {4u, 5u}) {
    SCOPED_TRACE(id);
    Bytes b = keyed_request(id, 20);
    const size_t len = b.size();
    ASSERT_EQ(len, 72u);
    b.resize(std::max(len, kMaxReplyLen));
    const NtpDecision d = respond(b.data(), len, kRx, fixed_reply_params(), true, &captured_keys());
    ASSERT_EQ(d.auth, AuthOutcome::kOk);
    EXPECT_EQ(d.reply_len, 72);
    stamp_and_seal(b, d);
    EXPECT_EQ(crypto::check_mac(captured_keys(), b.data(), 48, b.data() + 48, 24).check, crypto::MacCheck::kOk);
  }
}

TEST(ResponderAuth, MacAfterExtensionFieldCoversIt) {
  // The request's MAC covers its extension field; the reply has none.
  Bytes b = keyed_request(1, 16, ext(0x0104, 28));
  const size_t len = b.size();
  ASSERT_EQ(len, 48u + 28 + 20);
  const NtpDecision d = respond(b.data(), len, kRx, fixed_reply_params(), true, &captured_keys());
  ASSERT_EQ(d.auth, AuthOutcome::kOk);
  EXPECT_EQ(d.reply_len, 68);
  stamp_and_seal(b, d);
  EXPECT_EQ(crypto::check_mac(captured_keys(), b.data(), 48, b.data() + 48, 20).check, crypto::MacCheck::kOk);
  // The same bytes with the field changed after MACing: a bad digest.
  Bytes c = keyed_request(1, 16, ext(0x0104, 28));
  c[60] ^= 0x40;
  const NtpDecision e = respond(c.data(), len, kRx, fixed_reply_params(), true, &captured_keys());
  EXPECT_EQ(e.auth, AuthOutcome::kBadMac);
  EXPECT_EQ(e.reply_len, 52);
}

TEST(ResponderAuth, FailuresGetCryptoNak) {
  struct Case {
    const char* what;
    Bytes req;
    AuthOutcome auth;
  };
  std::vector<Case> cases;
  {
    Bytes b = keyed_request(1, 16);
    b[60] ^= 1;  // the header changed after MACing
    cases.push_back({"bad digest", b, AuthOutcome::kBadMac});
  }
  {
    Bytes b = keyed_request(3, 16);
    b.back() ^= 0x80;  // the digest's last bit
    cases.push_back({"bad digest's last byte", b, AuthOutcome::kBadMac});
  }
  {
    Bytes b = keyed_request(1, 16);
    proto::store_be32(b.data() + 48, 77);  // a key we do not hold
    cases.push_back({"unknown key", b, AuthOutcome::kUnknownKey});
  }
  {
    Bytes b = keyed_request(3, 16);
    b.resize(48 + 24, 0x5A);  // 20 bytes of digest: MD5 has 16
    cases.push_back({"MD5 with 20 bytes", b, AuthOutcome::kBadMac});
  }
  {
    Bytes b = keyed_request(1, 16);
    b.resize(48 + 36, 0x5A);  // 32 bytes: CMAC has 16
    cases.push_back({"AES128 with 32 bytes", b, AuthOutcome::kBadMac});
  }
  {
    Bytes b = keyed_request(2, 20);
    b.resize(48 + 36, 0x5A);  // SHA1 has 20, no 32
    cases.push_back({"SHA1 with 32 bytes", b, AuthOutcome::kBadMac});
  }
  {
    Bytes b = keyed_request(4, 32);
    b[0] = 0x1B;  // NTPv3 after MACing
    cases.push_back({"version changed", b, AuthOutcome::kBadMac});
  }
  {
    Bytes b = request(0x1B, 48);  // NTPv3 DES: key ID 1 with 8 bytes
    b.resize(48);
    const Bytes des = {0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8};
    b.insert(b.end(), des.begin(), des.end());
    cases.push_back({"DES-CBC length", b, AuthOutcome::kBadMac});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Bytes b = c.req;
    const size_t len = b.size();
    b.resize(std::max(len, kMaxReplyLen), 0);
    const NtpDecision d = respond(b.data(), len, kRx, fixed_reply_params(), true, &captured_keys());
    ASSERT_EQ(d.action, NtpAction::kReply);
    EXPECT_EQ(d.auth, c.auth);
    EXPECT_EQ(d.mac_key, nullptr);
    EXPECT_EQ(d.reply_len, 52);
    EXPECT_LE(d.reply_len, len);
    EXPECT_EQ(Bytes(b.begin() + 48, b.begin() + 52), Bytes(4, 0));  // key ID 0, no digest
    EXPECT_EQ(d.reply_sum, sum_words(b, 52));
  }
}

TEST(ResponderAuth, NoKeysIsUnknownKey) {
  Bytes b = keyed_request(1, 16);
  const size_t len = b.size();
  const NtpDecision d = respond(b.data(), len, kRx, fixed_reply_params(), true, nullptr);
  EXPECT_EQ(d.auth, AuthOutcome::kUnknownKey);
  EXPECT_EQ(d.reply_len, 52);
  // Without a MAC, or with a client's crypto-NAK: no outcome, no MAC.
  Bytes p = request(0x23, 48);
  EXPECT_EQ(respond(p.data(), 48, kRx, fixed_reply_params(), true, &captured_keys()).auth, AuthOutcome::kNone);
  Bytes n = with_tail(Bytes(4, 0));
  const NtpDecision dn = respond(n.data(), 52, kRx, fixed_reply_params(), true, &captured_keys());
  EXPECT_EQ(dn.auth, AuthOutcome::kNone);
  EXPECT_EQ(dn.reply_len, 48);
}

TEST(ResponderAuth, StatelessModeTwoAnswerIsMacedToo) {
  Bytes b = keyed_request(1, 16, {}, 0x21);  // mode 1 from a stranger
  const size_t len = b.size();
  const NtpRequest q = classify_request(b.data(), len);
  ASSERT_TRUE(q.ok);
  const NtpDecision d = answer(b.data(), q, kRx, fixed_reply_params(), proto::Mode::kSymmetricPassive, &captured_keys());
  ASSERT_EQ(d.auth, AuthOutcome::kOk);
  EXPECT_EQ(b[0], 0x22);
  EXPECT_EQ(d.reply_len, len);
  stamp_and_seal(b, d);
  EXPECT_EQ(crypto::check_mac(captured_keys(), b.data(), 48, b.data() + 48, 20).check, crypto::MacCheck::kOk);
}

TEST(ResponderAuth, KissOfDeathCarriesNoMac) {
  Bytes b = keyed_request(1, 16);
  const size_t len = b.size();
  const NtpRequest q = classify_request(b.data(), len);
  const NtpDecision d = kiss_of_death(b.data(), q, proto::kKissRate);
  EXPECT_EQ(d.reply_len, 48);
  EXPECT_EQ(d.mac_key, nullptr);
}

TEST(ResponderAuth, MacCostsBudgeted) {
  // Every key type has a cost for the stamp's budget; CMAC is the cheapest.
  for (auto t : {crypto::MacType::kAes128Cmac, crypto::MacType::kHmacSha256, crypto::MacType::kSha256,
                 crypto::MacType::kSha1, crypto::MacType::kMd5}) {
    EXPECT_GE(mac_cost_ns(t), mac_cost_ns(crypto::MacType::kAes128Cmac)) << crypto::mac_type_name(t);
    EXPECT_GT(mac_cost_ns(t), 0);
  }
  EXPECT_EQ(mac_cost_ns(crypto::MacType::kNone), 0);
}

}  // namespace
}  // namespace ntp::dp
