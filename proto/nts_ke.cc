// NTS-KE records (see nts_ke.h).
#include "proto/nts_ke.h"

#include "proto/inet.h"
#include "proto/nts.h"

namespace ntp::proto {

void nts_ke_exporter_context(uint16_t protocol, uint16_t aead, bool s2c, uint8_t out[5]) {
  store_be16(out, protocol);
  store_be16(out + 2, aead);
  out[4] = s2c ? 1 : 0;
}

KeRequest parse_nts_ke_request(const uint8_t* buf, size_t len) {
  KeRequest q;
  auto bad = [&q](uint16_t code) {
    if (!q.has_error) {  // the first problem is the one reported
      q.has_error = true;
      q.error = code;
    }
  };
  unsigned next_protocol_records = 0, aead_records = 0, protocols = 0;
  size_t pos = 0;
  while (pos + 4 <= len) {
    const uint16_t word = load_be16(buf + pos);
    const bool critical = (word & kKeCriticalBit) != 0;
    const uint16_t type = word & ~kKeCriticalBit;
    const size_t body_len = load_be16(buf + pos + 2);
    if (len - pos - 4 < body_len) break;  // the body has not all arrived
    const uint8_t* body = buf + pos + 4;
    pos += 4 + body_len;
    switch (type) {
      case kKeEndOfMessage:
        if (!critical || body_len != 0) bad(kKeErrorBadRequest);
        if (next_protocol_records != 1 || protocols == 0 || (q.ntpv4 && aead_records == 0)) bad(kKeErrorBadRequest);
        q.status = KeRequestStatus::kDone;
        q.consumed = pos;
        if (q.has_error) q.ntpv4 = q.aead = false;
        return q;
      case kKeNextProtocol:
        ++next_protocol_records;
        if (!critical || body_len == 0 || body_len % 2 != 0) {
          bad(kKeErrorBadRequest);
          break;
        }
        for (size_t i = 0; i < body_len; i += 2) {
          ++protocols;
          if (load_be16(body + i) == kKeProtocolNtpv4) q.ntpv4 = true;
        }
        break;
      case kKeAeadAlgorithm:
        ++aead_records;
        if (body_len == 0 || body_len % 2 != 0) {
          bad(kKeErrorBadRequest);
          break;
        }
        for (size_t i = 0; i < body_len; i += 2)
          if (load_be16(body + i) == kKeAeadAesSivCmac256) q.aead = true;
        break;
      case kKeError:
      case kKeWarning:
      case kKeNewCookie:
        bad(kKeErrorBadRequest);  // the server's records, not a client's
        break;
      case kKeNtpv4Server:
      case kKeNtpv4Port:
        break;  // a client's preference: we name our own
      default:
        if (critical) bad(kKeErrorUnrecognizedCritical);
        break;
    }
  }
  if (len >= kKeMaxRequestBytes) {
    bad(kKeErrorBadRequest);
    q.status = KeRequestStatus::kDone;
    q.consumed = len;
    q.ntpv4 = q.aead = false;
  }
  return q;
}

namespace {

void put_record(std::vector<uint8_t>& out, uint16_t type, bool critical, const uint8_t* body, size_t len) {
  const size_t at = out.size();
  out.resize(at + 4 + len);
  store_be16(out.data() + at, static_cast<uint16_t>(type | (critical ? kKeCriticalBit : 0)));
  store_be16(out.data() + at + 2, static_cast<uint16_t>(len));
  for (size_t i = 0; i < len; ++i) out[at + 4 + i] = body[i];
}

void put_u16_record(std::vector<uint8_t>& out, uint16_t type, bool critical, bool present, uint16_t value) {
  uint8_t b[2];
  store_be16(b, value);
  put_record(out, type, critical, b, present ? 2 : 0);
}

}  // namespace

KeResponse nts_ke_response_for(const KeRequest& q) {
  KeResponse r;
  r.has_error = q.has_error;
  r.error = q.error;
  r.ntpv4 = !q.has_error && q.ntpv4;
  r.aead = r.ntpv4 && q.aead;
  return r;
}

std::vector<uint8_t> build_nts_ke_response(const KeResponse& r) {
  std::vector<uint8_t> out;
  if (r.has_error) {
    put_u16_record(out, kKeError, true, true, r.error);
  } else {
    // RFC 8915 section 4.1.2: the protocol chosen, or an empty record when
    // none of the client's is ours; 4.1.5 likewise for the AEAD.
    put_u16_record(out, kKeNextProtocol, true, r.ntpv4, kKeProtocolNtpv4);
    if (r.ntpv4) put_u16_record(out, kKeAeadAlgorithm, true, r.aead, kKeAeadAesSivCmac256);
    if (r.ntpv4 && r.aead) {
      if (!r.server.empty())
        put_record(out, kKeNtpv4Server, true, reinterpret_cast<const uint8_t*>(r.server.data()), r.server.size());
      if (r.port != 0) put_u16_record(out, kKeNtpv4Port, true, true, r.port);
      for (const auto& c : r.cookies) put_record(out, kKeNewCookie, false, c.data(), c.size());
    }
  }
  put_record(out, kKeEndOfMessage, true, nullptr, 0);
  return out;
}

std::vector<uint8_t> build_nts_ke_request() {
  std::vector<uint8_t> out;
  // RFC 8915 section 4.1.2: the protocols the client supports, critical;
  // 4.1.5: the AEAD algorithms, critical as chronyd sends it; 4.1.1:
  // End of Message, critical and empty.
  put_u16_record(out, kKeNextProtocol, true, true, kKeProtocolNtpv4);
  put_u16_record(out, kKeAeadAlgorithm, true, true, kKeAeadAesSivCmac256);
  put_record(out, kKeEndOfMessage, true, nullptr, 0);
  return out;
}

namespace {

const char* ke_error_name(uint16_t code) {
  switch (code) {  // RFC 8915 section 4.1.3
    case kKeErrorUnrecognizedCritical: return "unrecognized critical record";
    case kKeErrorBadRequest: return "bad request";
    case kKeErrorInternal: return "internal server error";
    default: return "unknown code";
  }
}

// A Server Negotiation body chronyd would take: printable ASCII, no spaces.
bool printable_name(const uint8_t* body, size_t len) {
  if (len == 0 || len > kKeMaxServerNameBytes) return false;
  for (size_t i = 0; i < len; ++i)
    if (body[i] <= 0x20 || body[i] >= 0x7f) return false;
  return true;
}

}  // namespace

KeServerReply parse_nts_ke_response(const uint8_t* buf, size_t len) {
  KeServerReply r;
  auto bad = [&r](std::string why) {
    r.status = KeServerReply::Status::kBad;
    r.error = std::move(why);
    r.cookies.clear();
    r.server.clear();
    r.port = 0;
    return r;
  };
  unsigned next_protocol_records = 0, aead_records = 0, server_records = 0, port_records = 0;
  unsigned cookie_records = 0, unusable_cookies = 0;
  size_t pos = 0;
  while (pos + 4 <= len) {
    const uint16_t word = load_be16(buf + pos);
    const bool critical = (word & kKeCriticalBit) != 0;
    const uint16_t type = word & ~kKeCriticalBit;
    const size_t body_len = load_be16(buf + pos + 2);
    if (pos + 4 + body_len > kKeMaxResponseBytes) return bad("record past 64 KiB");
    if (len - pos - 4 < body_len) break;  // the body has not all arrived
    const uint8_t* body = buf + pos + 4;
    pos += 4 + body_len;
    r.consumed = pos;
    switch (type) {
      case kKeEndOfMessage:
        // RFC 8915 section 4.1.1: "The Critical Bit MUST be set", no body.
        if (!critical || body_len != 0) return bad("malformed End of Message");
        if (next_protocol_records == 0) return bad("no Next Protocol record");
        if (aead_records == 0) return bad("no AEAD record");
        if (r.cookies.empty()) {
          if (cookie_records == 0) return bad("no cookies");
          return bad("no cookies (" + std::to_string(unusable_cookies) +
                     " empty, over 256 bytes or not a multiple of 4)");
        }
        r.status = KeServerReply::Status::kDone;
        return r;
      case kKeNextProtocol:
        // RFC 8915 section 4.1.2: the server's choice, critical; an empty
        // record means none of ours.
        if (++next_protocol_records > 1) return bad("two Next Protocol records");
        if (!critical) return bad("Next Protocol not critical");
        if (body_len != 2 || load_be16(body) != kKeProtocolNtpv4) return bad("no NTPv4 in Next Protocol");
        break;
      case kKeAeadAlgorithm:
        // RFC 8915 section 4.1.5: "exactly one" algorithm in the response.
        if (++aead_records > 1) return bad("two AEAD records");
        if (body_len != 2 || load_be16(body) != kKeAeadAesSivCmac256) return bad("AEAD 15 not agreed");
        break;
      case kKeError:
        if (body_len != 2) return bad("malformed Error record");
        return bad("Error record " + std::to_string(load_be16(body)) + " (" + ke_error_name(load_be16(body)) + ")");
      case kKeWarning:
        // RFC 8915 section 4.1.4 leaves it to the client; chronyd gives up.
        if (body_len != 2) return bad("malformed Warning record");
        return bad("Warning record " + std::to_string(load_be16(body)));
      case kKeNewCookie:
        ++cookie_records;
        if (body_len == 0 || body_len > kNtsMaxCookieBytes || body_len % 4 != 0) {
          ++unusable_cookies;
          break;
        }
        if (r.cookies.size() < kKeMaxCookies) r.cookies.emplace_back(body, body + body_len);
        break;
      case kKeNtpv4Server:
        if (++server_records > 1) return bad("two Server Negotiation records");
        if (!printable_name(body, body_len)) return bad("malformed Server Negotiation record");
        r.server.assign(reinterpret_cast<const char*>(body), body_len);
        break;
      case kKeNtpv4Port:
        if (++port_records > 1) return bad("two Port Negotiation records");
        if (body_len != 2) return bad("malformed Port Negotiation record");
        r.port = load_be16(body);
        break;
      default:
        // RFC 8915 section 4.1: a critical record the client does not
        // understand ends the exchange; others are ignored.
        if (critical) return bad("unrecognized critical record type " + std::to_string(type));
        break;
    }
  }
  // Whole records up to the bound and no End of Message: a header that
  // straddles it is past it too.
  if (len >= kKeMaxResponseBytes) return bad("record past 64 KiB");
  r.cookies.clear();  // nothing is the caller's before End of Message
  r.server.clear();
  r.port = 0;
  return r;
}

}  // namespace ntp::proto
