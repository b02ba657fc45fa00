// proto/nts_ke: NTS-KE requests as chronyd and NTPsec send them, read as
// their bytes arrive, every rule of RFC 8915 section 4 a server applies,
// and the response's bytes record by record; the client's request, and a
// server's response read as a client (chronyd's rules) as it arrives.
#include "proto/nts_ke.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
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

TEST(NtsKeClientSide, TheRequestIsWhatChronyd43Sends) {
  const Bytes req = build_nts_ke_request();
  EXPECT_EQ(req, cat({kNtpv4, record(kKeAeadAlgorithm, true, {0, 15}), kEom}));
  // Our own server takes it.
  const KeRequest q = parse(req);
  ASSERT_EQ(q.status, KeRequestStatus::kDone);
  EXPECT_FALSE(q.has_error);
  EXPECT_TRUE(q.ntpv4 && q.aead);
}

KeServerReply reply(const Bytes& b) { return parse_nts_ke_response(b.data(), b.size()); }
using Status = KeServerReply::Status;

const Bytes kAead15 = record(kKeAeadAlgorithm, true, {0, 15});
Bytes cookie_record(size_t len, uint8_t fill = 0xC0) { return record(kKeNewCookie, false, Bytes(len, fill)); }

// What our server answers a chronyd: NTPv4, 15, the negotiation records, cookies.
Bytes good_response(size_t cookies = 8) {
  KeResponse r = nts_ke_response_for(parse(build_nts_ke_request()));
  r.server = "ntp1.example.net";
  r.port = 1123;
  for (size_t i = 0; i < cookies; ++i) r.cookies.push_back(Bytes(100, static_cast<uint8_t>(i)));
  return build_nts_ke_response(r);
}

TEST(NtsKeClientSide, OurServersResponseAsItsBytesArrive) {
  const Bytes resp = good_response();
  for (size_t n = 0; n < resp.size(); ++n) {
    const KeServerReply r = parse_nts_ke_response(resp.data(), n);
    ASSERT_EQ(r.status, Status::kIncomplete) << n << ": " << r.error;
    EXPECT_LE(r.consumed, n);
    EXPECT_TRUE(r.cookies.empty()) << "nothing is the caller's before End of Message";
  }
  const KeServerReply r = reply(resp);
  ASSERT_EQ(r.status, Status::kDone) << r.error;
  EXPECT_TRUE(r.error.empty());
  ASSERT_EQ(r.cookies.size(), 8u);
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(r.cookies[i], Bytes(100, static_cast<uint8_t>(i)));
  EXPECT_EQ(r.server, "ntp1.example.net");
  EXPECT_EQ(r.port, 1123);
  EXPECT_EQ(r.consumed, resp.size());
  // Bytes after End of Message are not the response's.
  Bytes more = resp;
  more.push_back(0);
  EXPECT_EQ(reply(more).consumed, resp.size());
  // Without negotiation records: none.
  const KeServerReply plain = reply(cat({kNtpv4, kAead15, cookie_record(100), kEom}));
  ASSERT_EQ(plain.status, Status::kDone);
  EXPECT_TRUE(plain.server.empty());
  EXPECT_EQ(plain.port, 0);
  // Records in any order, unknown ones without the critical bit ignored.
  EXPECT_EQ(reply(cat({cookie_record(64), record(0x4001, false, {1, 2, 3}), kAead15, kNtpv4, kEom})).status,
            Status::kDone);
}

TEST(NtsKeClientSide, ErrorAndWarningRecordsAreFatal) {
  KeServerReply r = reply(cat({record(kKeError, true, {0, 1}), kEom}));
  EXPECT_EQ(r.status, Status::kBad);
  EXPECT_EQ(r.error, "Error record 1 (bad request)");
  // Our own server's answer to a bad request.
  r = reply(build_nts_ke_response(nts_ke_response_for(parse(cat({kAeadChrony, kEom})))));
  EXPECT_EQ(r.error, "Error record 1 (bad request)");
  EXPECT_EQ(reply(cat({record(kKeError, true, {0, 2})})).error, "Error record 2 (internal server error)")
      << "fatal as soon as it arrives";
  EXPECT_EQ(reply(cat({record(kKeError, true, {0, 0}), kEom})).error, "Error record 0 (unrecognized critical record)");
  EXPECT_EQ(reply(cat({record(kKeError, true, {0}), kEom})).error, "malformed Error record");
  r = reply(cat({kNtpv4, kAead15, record(kKeWarning, true, {0x12, 0x34}), cookie_record(100), kEom}));
  EXPECT_EQ(r.status, Status::kBad);
  EXPECT_EQ(r.error, "Warning record 4660");
  EXPECT_TRUE(r.cookies.empty());
}

TEST(NtsKeClientSide, MissingAndDuplicateRecords) {
  const Bytes c = cookie_record(100);
  const std::pair<Bytes, std::string> cases[] = {
      {cat({kAead15, c, kEom}), "no Next Protocol record"},
      {cat({kNtpv4, c, kEom}), "no AEAD record"},
      {cat({kNtpv4, kAead15, kEom}), "no cookies"},
      {cat({kNtpv4, kNtpv4, kAead15, c, kEom}), "two Next Protocol records"},
      {cat({kNtpv4, kAead15, kAead15, c, kEom}), "two AEAD records"},
      {cat({record(kKeNextProtocol, true, {}), kEom}), "no NTPv4 in Next Protocol"},   // none agreed
      {cat({record(kKeNextProtocol, true, {0, 1}), kAead15, c, kEom}), "no NTPv4 in Next Protocol"},
      {cat({record(kKeNextProtocol, true, {0, 0, 0, 1}), kAead15, c, kEom}), "no NTPv4 in Next Protocol"},
      {cat({record(kKeNextProtocol, false, {0, 0}), kAead15, c, kEom}), "Next Protocol not critical"},
      {cat({kNtpv4, record(kKeAeadAlgorithm, true, {}), kEom}), "AEAD 15 not agreed"},  // our server, no 15 offered
      {cat({kNtpv4, record(kKeAeadAlgorithm, true, {0, 30}), c, kEom}), "AEAD 15 not agreed"},
      {cat({kNtpv4, record(kKeAeadAlgorithm, true, {0, 15, 0, 30}), c, kEom}), "AEAD 15 not agreed"},
      {cat({kNtpv4, kAead15, c, record(0x4001, true, {}), kEom}), "unrecognized critical record type 16385"},
      {cat({kNtpv4, kAead15, c, record(kKeEndOfMessage, false, {})}), "malformed End of Message"},
      {cat({kNtpv4, kAead15, c, record(kKeEndOfMessage, true, {0, 0})}), "malformed End of Message"},
      {cat({kNtpv4, kAead15, c, record(kKeNtpv4Port, true, {0, 123}), record(kKeNtpv4Port, true, {0, 123}), kEom}),
       "two Port Negotiation records"},
      {cat({kNtpv4, kAead15, c, record(kKeNtpv4Port, true, {0, 0, 123}), kEom}), "malformed Port Negotiation record"},
      {cat({kNtpv4, kAead15, c, record(kKeNtpv4Server, true, {'a'}), record(kKeNtpv4Server, true, {'b'}), kEom}),
       "two Server Negotiation records"},
      {cat({kNtpv4, kAead15, c, record(kKeNtpv4Server, true, {}), kEom}), "malformed Server Negotiation record"},
      {cat({kNtpv4, kAead15, c, record(kKeNtpv4Server, true, {'a', ' ', 'b'}), kEom}),
       "malformed Server Negotiation record"},
      {cat({kNtpv4, kAead15, c, record(kKeNtpv4Server, true, {'a', 0}), kEom}), "malformed Server Negotiation record"},
      {cat({kNtpv4, kAead15, c, record(kKeNtpv4Server, true, Bytes(256, 'a')), kEom}),
       "malformed Server Negotiation record"},
  };
  for (const auto& [bytes, why] : cases) {
    const KeServerReply r = reply(bytes);
    EXPECT_EQ(r.status, Status::kBad) << why;
    EXPECT_EQ(r.error, why);
    EXPECT_TRUE(r.cookies.empty() && r.server.empty() && r.port == 0) << why;
  }
  // The longest name is taken.
  const KeServerReply longest = reply(cat({kNtpv4, kAead15, c, record(kKeNtpv4Server, true, Bytes(255, 'a')), kEom}));
  EXPECT_EQ(longest.status, Status::kDone);
  EXPECT_EQ(longest.server, std::string(255, 'a'));
}

TEST(NtsKeClientSide, CookiesOfUnusableLengthsAreSkippedAndAtMostEightKept) {
  // chronyd skips cookies it could not carry (empty, over 256, not a
  // multiple of 4) and keeps the rest.
  KeServerReply r = reply(cat({kNtpv4, kAead15, cookie_record(0), cookie_record(257), cookie_record(260),
                               cookie_record(99), cookie_record(256, 1), cookie_record(4, 2), kEom}));
  ASSERT_EQ(r.status, Status::kDone) << r.error;
  ASSERT_EQ(r.cookies.size(), 2u);
  EXPECT_EQ(r.cookies[0], Bytes(256, 1));
  EXPECT_EQ(r.cookies[1], Bytes(4, 2));
  // Only unusable ones: none.
  r = reply(cat({kNtpv4, kAead15, cookie_record(300), cookie_record(2), kEom}));
  EXPECT_EQ(r.status, Status::kBad);
  EXPECT_EQ(r.error, "no cookies (2 empty, over 256 bytes or not a multiple of 4)");
  // Twelve: the first eight.
  r = reply(good_response(12));
  ASSERT_EQ(r.status, Status::kDone) << r.error;
  ASSERT_EQ(r.cookies.size(), kKeMaxCookies);
  EXPECT_EQ(r.cookies.back(), Bytes(100, 7));
}

TEST(NtsKeClientSide, NoResponseLongerThan64KiB) {
  // A record whose body would cross the bound: fatal at its header, before its body comes.
  Bytes big = cat({kNtpv4, kAead15});
  for (int i = 0; i < 2; ++i) {
    const Bytes filler = record(0x4002, false, Bytes(30000, 7));
    big.insert(big.end(), filler.begin(), filler.end());
  }
  const Bytes last = record(0x4002, false, Bytes(8000, 7));  // crosses 65536
  Bytes hdr = big;
  hdr.insert(hdr.end(), last.begin(), last.begin() + 4);
  EXPECT_EQ(reply(big).status, Status::kIncomplete);
  KeServerReply r = reply(hdr);
  EXPECT_EQ(r.status, Status::kBad);
  EXPECT_EQ(r.error, "record past 64 KiB");
  // Records that fill it exactly with no End of Message: past it too.
  Bytes full = cat({kNtpv4, kAead15});
  while (full.size() < kKeMaxResponseBytes) {
    const size_t room = kKeMaxResponseBytes - full.size() - 4;
    const Bytes f = record(0x4002, false, Bytes(std::min<size_t>(room, 30000), 7));
    full.insert(full.end(), f.begin(), f.end());
  }
  ASSERT_EQ(full.size(), kKeMaxResponseBytes);
  EXPECT_EQ(reply(full).error, "record past 64 KiB");
  // Just under it, with End of Message: fine.
  Bytes fits = cat({kNtpv4, kAead15, cookie_record(100)});
  const Bytes f = record(0x4002, false, Bytes(kKeMaxResponseBytes - fits.size() - 8, 7));
  fits.insert(fits.end(), f.begin(), f.end());
  fits.insert(fits.end(), kEom.begin(), kEom.end());
  ASSERT_EQ(fits.size(), kKeMaxResponseBytes);
  EXPECT_EQ(reply(fits).status, Status::kDone);
}

TEST(NtsKeClientSide, EveryTruncationIsIncompleteNeverBad) {
  // The richest good response: every record type we take, unknown ones too.
  const Bytes resp = cat({record(0x4003, false, {9, 9}), kNtpv4, kAead15, record(kKeNtpv4Server, false, {'h', 'o'}),
                          record(kKeNtpv4Port, true, {0x11, 0x5c}), cookie_record(0), cookie_record(100),
                          cookie_record(256), kEom});
  ASSERT_EQ(reply(resp).status, Status::kDone);
  for (size_t n = 0; n < resp.size(); ++n) {
    const KeServerReply r = parse_nts_ke_response(Bytes(resp.begin(), resp.begin() + n).data(), n);
    EXPECT_EQ(r.status, Status::kIncomplete) << n << ": " << r.error;
  }
  EXPECT_EQ(parse_nts_ke_response(nullptr, 0).status, Status::kIncomplete);
}

}  // namespace
}  // namespace ntp::proto
