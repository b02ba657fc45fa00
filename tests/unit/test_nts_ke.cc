// proto/nts_ke: NTS-KE requests as chronyd and NTPsec send them, read as
// their bytes arrive, every rule of RFC 8915 section 4 a server applies,
// and the response's bytes record by record.
#include "proto/nts_ke.h"

#include <gtest/gtest.h>

#include <vector>

namespace ntp::proto {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes record(uint16_t type, bool critical, Bytes body) {
  Bytes r = {static_cast<uint8_t>((type >> 8) | (critical ? 0x80 : 0)), static_cast<uint8_t>(type),
             static_cast<uint8_t>(body.size() >> 8), static_cast<uint8_t>(body.size())};
  for (uint8_t b : body) r.push_back(b);  // (insert of a range: GCC 12 -Warray-bounds false positives)
  return r;
}
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts)
    for (uint8_t b : p) out.push_back(b);
  return out;
}
const Bytes kEom = record(kKeEndOfMessage, true, {});
const Bytes kNtpv4 = record(kKeNextProtocol, true, {0, 0});
// chronyd 4.3 offers AES-SIV-CMAC-256 (15), and newer ones AES-128-GCM-SIV (30) first.
const Bytes kAeadChrony = record(kKeAeadAlgorithm, true, {0, 30, 0, 15});

KeRequest parse(const Bytes& b) { return parse_nts_ke_request(b.data(), b.size()); }

TEST(NtsKe, AChronyRequestAsItsBytesArrive) {
  const Bytes req = cat({kNtpv4, kAeadChrony, kEom});
  for (size_t n = 0; n < req.size(); ++n) EXPECT_EQ(parse_nts_ke_request(req.data(), n).status, KeRequestStatus::kIncomplete) << n;
  const KeRequest q = parse(req);
  ASSERT_EQ(q.status, KeRequestStatus::kDone);
  EXPECT_FALSE(q.has_error);
  EXPECT_TRUE(q.ntpv4);
  EXPECT_TRUE(q.aead);
  EXPECT_EQ(q.consumed, req.size());
  // What follows End of Message is not the request's.
  Bytes more = req;
  more.push_back(0x42);
  EXPECT_EQ(parse(more).consumed, req.size());
}

TEST(NtsKe, UnknownRecordsCriticalOrNot) {
  const KeRequest ignored = parse(cat({kNtpv4, record(0x4001, false, {1, 2, 3}), kAeadChrony, kEom}));
  EXPECT_FALSE(ignored.has_error);
  EXPECT_TRUE(ignored.ntpv4 && ignored.aead);
  const KeRequest critical = parse(cat({kNtpv4, record(0x4001, true, {1}), kAeadChrony, kEom}));
  EXPECT_TRUE(critical.has_error);
  EXPECT_EQ(critical.error, kKeErrorUnrecognizedCritical);
  EXPECT_FALSE(critical.ntpv4) << "an error answers nothing else";
  // The client's own server/port preferences are taken as hints: ignored.
  EXPECT_FALSE(parse(cat({kNtpv4, kAeadChrony, record(kKeNtpv4Port, true, {0, 123}), kEom})).has_error);
}

TEST(NtsKe, BadRequests) {
  for (const Bytes& req : {
           cat({kAeadChrony, kEom}),                                               // no Next Protocol
           cat({kNtpv4, kNtpv4, kAeadChrony, kEom}),                               // two of them
           cat({record(kKeNextProtocol, false, {0, 0}), kAeadChrony, kEom}),       // not critical
           cat({record(kKeNextProtocol, true, {}), kAeadChrony, kEom}),            // empty
           cat({record(kKeNextProtocol, true, {0, 0, 1}), kAeadChrony, kEom}),     // odd length
           cat({kNtpv4, kEom}),                                                     // NTPv4 without AEAD
           cat({kNtpv4, record(kKeAeadAlgorithm, true, {0}), kEom}),               // odd AEAD list
           cat({kNtpv4, kAeadChrony, record(kKeNewCookie, false, {1, 2}), kEom}),  // a server's record
           cat({kNtpv4, kAeadChrony, record(kKeError, true, {0, 1}), kEom}),
           cat({kNtpv4, kAeadChrony, record(kKeEndOfMessage, false, {})}),          // End not critical
           cat({kNtpv4, kAeadChrony, record(kKeEndOfMessage, true, {0})}),          // End not empty
       }) {
    const KeRequest q = parse(req);
    ASSERT_EQ(q.status, KeRequestStatus::kDone);
    EXPECT_TRUE(q.has_error);
    EXPECT_EQ(q.error, kKeErrorBadRequest);
  }
  // Never an End of Message: bad once kKeMaxRequestBytes have come.
  Bytes flood;
  while (flood.size() < kKeMaxRequestBytes) {
    const Bytes r = record(0x4002, false, Bytes(1000, 7));
    flood.insert(flood.end(), r.begin(), r.end());
  }
  const KeRequest q = parse(flood);
  EXPECT_EQ(q.status, KeRequestStatus::kDone);
  EXPECT_TRUE(q.has_error);
}

TEST(NtsKe, TheResponseRecordByRecord) {
  KeResponse r = nts_ke_response_for(parse(cat({kNtpv4, kAeadChrony, kEom})));
  r.server = "10.0.1.31";
  r.port = 123;
  r.cookies = {Bytes(100, 0xAB), Bytes(100, 0xCD)};
  const Bytes out = build_nts_ke_response(r);
  EXPECT_EQ(out, cat({kNtpv4, record(kKeAeadAlgorithm, true, {0, 15}),
                      record(kKeNtpv4Server, true, {'1', '0', '.', '0', '.', '1', '.', '3', '1'}),
                      record(kKeNtpv4Port, true, {0, 123}), record(kKeNewCookie, false, Bytes(100, 0xAB)),
                      record(kKeNewCookie, false, Bytes(100, 0xCD)), kEom}));
  // No AEAD of ours offered: NTPv4 agreed, an empty AEAD record, no cookies.
  KeResponse other = nts_ke_response_for(parse(cat({kNtpv4, record(kKeAeadAlgorithm, true, {0, 30}), kEom})));
  other.cookies = {Bytes(100, 1)};
  EXPECT_EQ(build_nts_ke_response(other), cat({kNtpv4, record(kKeAeadAlgorithm, true, {}), kEom}));
  // No NTPv4 offered: an empty Next Protocol record and nothing else.
  EXPECT_EQ(build_nts_ke_response(nts_ke_response_for(parse(cat({record(kKeNextProtocol, true, {0, 9}), kEom})))),
            cat({record(kKeNextProtocol, true, {}), kEom}));
  // An error: the Error record alone.
  EXPECT_EQ(build_nts_ke_response(nts_ke_response_for(parse(cat({kAeadChrony, kEom})))),
            cat({record(kKeError, true, {0, 1}), kEom}));
}

TEST(NtsKe, ExporterContext) {
  uint8_t c[5];
  nts_ke_exporter_context(kKeProtocolNtpv4, kKeAeadAesSivCmac256, false, c);
  EXPECT_EQ(Bytes(c, c + 5), (Bytes{0, 0, 0, 15, 0}));
  nts_ke_exporter_context(kKeProtocolNtpv4, kKeAeadAesSivCmac256, true, c);
  EXPECT_EQ(Bytes(c, c + 5), (Bytes{0, 0, 0, 15, 1}));
  EXPECT_EQ(kKeExporterLabel.size(), 30u);
}

}  // namespace
}  // namespace ntp::proto
