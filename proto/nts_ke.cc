// NTS-KE records (see nts_ke.h).
#include "proto/nts_ke.h"

#include "proto/inet.h"

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

}  // namespace ntp::proto
