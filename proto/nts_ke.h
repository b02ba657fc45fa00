// NTS Key Establishment records (RFC 8915 section 4), pure: a client's
// request read from the bytes of a TLS stream as they arrive, and the
// server's response written, as chronyd's nts_ke_server.c decides them;
// and the client's side: its request, and a server's response read as it
// arrives, as chronyd's nts_ke_client.c judges it.
// The TLS session (ALPN "ntske/1", TLS 1.3) and the key export are the
// control plane's; this is the protocol inside it. No allocation but the
// response's own buffer.
//
// A record: a critical bit and a 15-bit type, a 16-bit body length, the body.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ntp::proto {

// RFC 8915 section 7.6 ("Network Time Security Key Establishment Record Types").
inline constexpr uint16_t kKeEndOfMessage = 0;
inline constexpr uint16_t kKeNextProtocol = 1;
inline constexpr uint16_t kKeError = 2;
inline constexpr uint16_t kKeWarning = 3;
inline constexpr uint16_t kKeAeadAlgorithm = 4;
inline constexpr uint16_t kKeNewCookie = 5;
inline constexpr uint16_t kKeNtpv4Server = 6;
inline constexpr uint16_t kKeNtpv4Port = 7;
inline constexpr uint16_t kKeCriticalBit = 0x8000;

inline constexpr uint16_t kKeProtocolNtpv4 = 0;      // RFC 8915 section 7.7
inline constexpr uint16_t kKeAeadAesSivCmac256 = 15;  // the one we support

// RFC 8915 section 4.1.3 error codes.
inline constexpr uint16_t kKeErrorUnrecognizedCritical = 0;
inline constexpr uint16_t kKeErrorBadRequest = 1;
inline constexpr uint16_t kKeErrorInternal = 2;

// The most a request may take before it ends (its End of Message): more is
// a bad request, so a client cannot make the server buffer without end.
inline constexpr size_t kKeMaxRequestBytes = 16 * 1024;

// RFC 8915 section 5.1: the TLS exporter label; the context is the next
// protocol (2 octets), the AEAD (2 octets) and 0 for C2S, 1 for S2C.
inline constexpr std::string_view kKeExporterLabel = "EXPORTER-network-time-security";
void nts_ke_exporter_context(uint16_t protocol, uint16_t aead, bool s2c, uint8_t out[5]);

enum class KeRequestStatus : uint8_t {
  kIncomplete,  // no End of Message yet: read more (the bytes so far are well formed)
  kDone,        // a request to answer: see error/ntpv4/aead
};

struct KeRequest {
  KeRequestStatus status = KeRequestStatus::kIncomplete;
  // Set when the request cannot be served; the response is then that
  // Error record (RFC 8915 section 4.1.3) and End of Message.
  bool has_error = false;
  uint16_t error = kKeErrorBadRequest;
  bool ntpv4 = false;  // NTPv4 offered in its Next Protocol record
  bool aead = false;   // AES-SIV-CMAC-256 offered in its AEAD record
  size_t consumed = 0; // kDone: bytes up to and including End of Message
};

// buf[0, len): the request's bytes so far. kIncomplete until a whole End of
// Message record has arrived (or kKeMaxRequestBytes have: then kDone with a
// bad request). Rules (RFC 8915 section 4, as chronyd's server applies
// them): exactly one Next Protocol record, critical, a non-empty list of
// 16-bit IDs; with NTPv4 in it, at least one AEAD record (even-length
// lists); Error, Warning and New Cookie records from a client are bad
// requests; an unknown type with the critical bit is an unrecognized
// critical record; others are ignored; End of Message critical and empty.
KeRequest parse_nts_ke_request(const uint8_t* buf, size_t len);

struct KeResponse {
  // With has_error only the Error record and End of Message.
  bool has_error = false;
  uint16_t error = kKeErrorBadRequest;
  bool ntpv4 = false;  // the Next Protocol record names NTPv4 (else it is empty: none agreed)
  bool aead = false;   // the AEAD record names AES-SIV-CMAC-256 (else it is empty)
  std::vector<std::vector<uint8_t>> cookies;  // New Cookie records (only with ntpv4 and aead)
  std::string server;  // NTPv4 Server Negotiation (empty: none, the client uses the KE server's address)
  uint16_t port = 0;   // NTPv4 Port Negotiation (0: none, 123)
};
// The response's bytes: Next Protocol (critical), AEAD (critical), the
// server and port records, the cookies, End of Message.
std::vector<uint8_t> build_nts_ke_response(const KeResponse& r);

// The response to a parsed request, cookies left for the caller to add.
KeResponse nts_ke_response_for(const KeRequest& q);

// ---- The client's side (RFC 8915 section 4, as chronyd's nts_ke_client.c) ----

// The most a response may take, End of Message included: a record reaching
// past it ends the exchange, so a server cannot make us buffer without end
// (chronyd's own bound is 16 KiB; eight of the longest cookies take 2 KiB).
inline constexpr size_t kKeMaxResponseBytes = 64 * 1024;
// chrony's NKE_MAX_COOKIES: cookies past it are ignored.
inline constexpr size_t kKeMaxCookies = 8;
// RFC 8915 section 4.1.7 names a server by "an ASCII-encoded string" (a DNS
// name is at most 255 octets, RFC 1035 section 2.3.4).
inline constexpr size_t kKeMaxServerNameBytes = 255;

// The request chronyd 4.3 sends: Next Protocol NTPv4, AEAD
// AES-SIV-CMAC-256, End of Message, each critical.
std::vector<uint8_t> build_nts_ke_request();

struct KeServerReply {
  enum class Status : uint8_t {
    kIncomplete,  // no End of Message yet: read more (nothing wrong so far)
    kDone,        // a usable response: NTPv4, AES-SIV-CMAC-256, cookies
    kBad,         // unusable (error says why): give up on this exchange
  };
  Status status = Status::kIncomplete;
  std::string error;  // kBad: why, for logs, e.g. "Error record 1 (bad request)"
  // kDone: the New Cookie records kept (at most kKeMaxCookies, each 1 to
  // kNtsMaxCookieBytes and a multiple of 4 long); empty otherwise.
  std::vector<std::vector<uint8_t>> cookies;
  std::string server;  // NTPv4 Server Negotiation; empty: none (use the KE server's address)
  uint16_t port = 0;   // NTPv4 Port Negotiation; 0: none (123)
  size_t consumed = 0; // kDone: bytes up to and including End of Message; else the whole records read
};

// buf[0, len): the response's bytes so far; read from the start on every
// call, never past len. kIncomplete until End of Message (or a reason to
// stop: kBad at once). Rules (RFC 8915 section 4.1 and chronyd's client):
// exactly one Next Protocol record, critical, naming NTPv4 alone; exactly
// one AEAD record naming 15; an Error or a Warning record is fatal (chronyd
// also gives up on a warning); an unknown record with the critical bit is
// fatal, others are ignored; New Cookie records that are empty, over
// kNtsMaxCookieBytes or not a multiple of 4 long (chronyd's rule: an NTP
// extension field carries the cookie unpadded) are skipped, as are those
// past kKeMaxCookies, and none left is fatal; at most one Server (1 to 255
// printable ASCII characters, no spaces) and one Port (2 octets) record;
// End of Message critical and empty; every record within
// kKeMaxResponseBytes.
KeServerReply parse_nts_ke_response(const uint8_t* buf, size_t len);

}  // namespace ntp::proto
