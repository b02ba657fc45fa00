// libFuzzer target: proto::parse_nts_ke_request on any bytes, as they would
// arrive on an NTS-KE connection, and the response built for it; and the
// same bytes read as a server's response by parse_nts_ke_response.
//
// Invariants:
//  - never a crash or a read past the bytes (ASan)
//  - kDone: consumed <= len; a request that parsed without error ends in an
//    End of Message record exactly at consumed, and every shorter prefix of
//    it under kKeMaxRequestBytes is kIncomplete (the server answers once,
//    when the request is whole);
//    kIncomplete only under kKeMaxRequestBytes
//  - with an error nothing is agreed; the response agrees the AEAD only
//    with NTPv4
//  - the response is a sequence of whole records ending in End of Message;
//    an error response is the Error record alone; cookies only with NTPv4
//    and the AEAD agreed
//  - as a response: consumed <= len; at most 8 cookies, each 1 to 256 bytes
//    and a multiple of 4; kDone has a cookie and ends in End of Message
//    exactly at consumed, every shorter prefix of it is kIncomplete, and its
//    server name is 1 to 255 printable characters or none; kIncomplete only
//    under kKeMaxResponseBytes and hands out nothing; kBad says why and
//    hands out nothing
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "proto/inet.h"
#include "proto/nts.h"
#include "proto/nts_ke.h"

namespace {

using namespace ntp::proto;

#define CHECK(cond)       \
  do {                    \
    if (!(cond)) abort(); \
  } while (0)

// The records of a response: their types in order, whole, nothing after.
std::vector<uint16_t> record_types(const std::vector<uint8_t>& b) {
  std::vector<uint16_t> types;
  size_t pos = 0;
  while (pos < b.size()) {
    CHECK(pos + 4 <= b.size());
    const size_t n = load_be16(b.data() + pos + 2);
    CHECK(pos + 4 + n <= b.size());
    types.push_back(load_be16(b.data() + pos) & ~kKeCriticalBit);
    pos += 4 + n;
  }
  return types;
}

void check_response(const uint8_t* data, size_t size) {
  const KeServerReply r = parse_nts_ke_response(data, size);
  CHECK(r.consumed <= size);
  CHECK(r.cookies.size() <= kKeMaxCookies);
  for (const auto& c : r.cookies) CHECK(!c.empty() && c.size() <= kNtsMaxCookieBytes && c.size() % 4 == 0);
  switch (r.status) {
    case KeServerReply::Status::kIncomplete:
      CHECK(size < kKeMaxResponseBytes);
      CHECK(r.cookies.empty() && r.server.empty() && r.port == 0 && r.error.empty());
      break;
    case KeServerReply::Status::kBad:
      CHECK(!r.error.empty());
      CHECK(r.cookies.empty() && r.server.empty() && r.port == 0);
      break;
    case KeServerReply::Status::kDone:
      CHECK(!r.cookies.empty() && r.error.empty());
      CHECK(r.consumed >= 4 && load_be16(data + r.consumed - 4) == (kKeEndOfMessage | kKeCriticalBit));
      CHECK(load_be16(data + r.consumed - 2) == 0);
      CHECK(r.server.size() <= kKeMaxServerNameBytes);
      for (char ch : r.server) CHECK(ch > 0x20 && ch < 0x7f);
      for (size_t n : {r.consumed - 1, r.consumed / 2, size_t{0}})
        CHECK(parse_nts_ke_response(data, n).status == KeServerReply::Status::kIncomplete);
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  check_response(data, size);
  const KeRequest q = parse_nts_ke_request(data, size);
  if (q.status == KeRequestStatus::kIncomplete) {
    CHECK(size < kKeMaxRequestBytes);
    return 0;
  }
  CHECK(q.consumed <= size);
  if (!q.has_error) {
    CHECK(q.consumed >= 4 && load_be16(data + q.consumed - 4) == (kKeEndOfMessage | kKeCriticalBit));
    CHECK(load_be16(data + q.consumed - 2) == 0);
    for (size_t n : {q.consumed - 1, q.consumed / 2, size_t{0}})
      if (n < kKeMaxRequestBytes) CHECK(parse_nts_ke_request(data, n).status == KeRequestStatus::kIncomplete);
  } else {
    CHECK(!q.ntpv4 && !q.aead);  // an error agrees nothing
  }
  KeResponse r = nts_ke_response_for(q);
  CHECK(!r.aead || r.ntpv4);
  r.cookies.assign(8, std::vector<uint8_t>(100, 0x5A));
  r.server = "192.0.2.1";
  r.port = 123;
  const std::vector<uint8_t> out = build_nts_ke_response(r);
  const std::vector<uint16_t> types = record_types(out);
  CHECK(!types.empty() && types.back() == kKeEndOfMessage);
  if (q.has_error) {
    CHECK(types.size() == 2 && types[0] == kKeError);
    return 0;
  }
  CHECK(types[0] == kKeNextProtocol);
  size_t cookies = 0;
  for (uint16_t t : types) cookies += t == kKeNewCookie;
  CHECK(cookies == (r.ntpv4 && r.aead ? 8u : 0u));
  return 0;
}
