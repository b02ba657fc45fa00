// The NTP server responder: a pure function from a request (bytes and
// receive time) and the published server state to a reply in place, or a
// drop with its reason. It reads no clock and touches no NIC: the worker
// loop takes the timestamps and carries out the decision.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "proto/channel_abi.h"
#include "proto/ntp_packet.h"

namespace ntp::dp {

// The fields every answer of one burst carries, derived once per burst from
// the published server state and the burst's receive time.
struct ReplyParams {
  proto::Leap leap = proto::Leap::kUnsynchronized;
  uint8_t stratum = 0;          // wire value: 16 (unsynchronized) is sent as 0
  int8_t precision_log2 = -20;  // log2 s
  uint32_t root_delay = 0;      // short format
  uint32_t root_dispersion = 0; // short format
  uint32_t refid = proto::kKissInit;
  proto::NtpTimestamp reference;
  bool synchronized = false;
  // The burst began at or after the announced leap (leap is then kNone), but
  // a request whose receive time is before leap_at (an earlier NIC
  // timestamp) still gets leap_before: no time of an inserted second, which
  // is served twice, goes out without its leap indicator. kNone: no leap.
  proto::Leap leap_before = proto::Leap::kNone;
  proto::NtpTimestamp leap_at;
};

// have_state: the control plane has published at least once. now_ns: model
// time of the burst (served time, leap applied). An unpublished state, an
// unsynchronized one, or one older than its holdover gives leap 3 / stratum
// 0 (RFC 5905: leap 3 "clock unsynchronized"; stratum 16 goes on the wire as
// 0, "unspecified"). A leap 1/2 is announced while now_ns < s.leap_ns (0:
// no date, always), then 0: with an inserted second served twice (the
// model repeats [leap_ns - 1 s, leap_ns)), both passes carry LI 1.
ReplyParams reply_params(const proto::ServerStateData& s, bool have_state, int64_t now_ns);

enum class NtpAction : uint8_t { kReply, kToControl, kDrop };

struct NtpDecision {
  NtpAction action = NtpAction::kDrop;
  proto::DropReason reason = proto::DropReason::kNtpBadMode;  // when kDrop
  uint16_t reply_len = 0;  // when kReply: bytes of NTP payload to send
  // when kReply: one's-complement sum (unfolded, 32-bit big-endian words) of
  // the reply bytes, so the caller's checksum need not read them back.
  uint64_t reply_sum = 0;
};

// The size of buffer the responder may write: the reply never grows beyond
// the header plus a 4-byte crypto-NAK.
inline constexpr size_t kMaxReplyLen = proto::kHeaderLen + 4;

// A request as the per-packet policy needs it: parsed once, before any
// access or rate decision. ok false: drop with reason.
struct NtpRequest {
  bool ok = false;
  proto::DropReason reason = proto::DropReason::kNtpTooShort;
  proto::Mode mode = proto::Mode::kReserved;  // NTPv1's mode 0 is reported as kClient
  uint8_t version = 0;
  uint8_t mac_len = 0;        // as proto::ParsedPacket
  proto::NtpTimestamp transmit;  // the request's transmit timestamp
};
inline NtpRequest classify_request(const uint8_t* buf, size_t len);

// Answers the classified request q in place with the burst's parameters:
// reply_mode kServer for a client request (RFC 5905 fast_xmit), or
// kSymmetricPassive for the stateless answer to a symmetric-active packet
// from an address that may not peer (RFC 5905 section 9.2: "a packet from
// an unknown peer is answered like a client request, in passive mode", as
// ntpd's fast_xmit(MODE_PASSIVE) does under nopeer). Transmit timestamp left
// zero for stamp_transmit. Never longer than the request plus a 4-byte
// crypto-NAK where the request carried a MAC we cannot check.
inline NtpDecision answer(uint8_t* buf, const NtpRequest& q, proto::NtpTimestamp rx, const ReplyParams& p,
                          proto::Mode reply_mode);

// Rewrites the classified NTPv4 request q in place into a kiss-o'-death
// (RFC 5905 section 7.4) with kiss_code (proto::kKissRate, kKissDeny): LI 3,
// stratum 0, the kiss code as reference ID, mode 4, the request's version
// and poll; as ntpd's fast_xmit with RES_KOD does, the origin, receive and
// transmit timestamps all carry the request's transmit timestamp and the
// precision, root delay, root dispersion and reference timestamp stay as the
// client sent them: the KoD reveals nothing of our clock, so it cannot be used
// to synchronize. Always 48 bytes (a MAC is not echoed), complete: nothing to
// stamp. An older version's request gets no KoD (the caller drops it).
NtpDecision kiss_of_death(uint8_t* buf, const NtpRequest& q, uint32_t kiss_code);

// Handles the NTP payload `buf` of `len` bytes in place (the buffer holds at
// least max(len, kMaxReplyLen) bytes). A client request (mode 3; or mode 0
// from an NTPv1 client) becomes a server reply with the transmit timestamp
// left zero, to be stamped just before the TX burst (stamp_transmit). Modes
// 1, 2 and 4 are the control plane's. serving: the interface answers clients.
NtpDecision respond(uint8_t* buf, size_t len, proto::NtpTimestamp rx, const ReplyParams& p, bool serving);

// Inline: the worker's per-packet path calls both from frame.cc (as two
// out-of-line calls they cost ~10 ns per packet more than one respond()).
inline NtpRequest classify_request(const uint8_t* buf, size_t len) {
  using proto::DropReason;
  using proto::Mode;
  NtpRequest q;
  // ntpq (mode 6) and ntpdc (mode 7) packets are shorter than an NTP
  // header; name them for what they are before the length check.
  if (len >= 1 && (buf[0] & 7) >= static_cast<uint8_t>(Mode::kControl)) {
    q.reason = DropReason::kNtpControlMode;
    return q;
  }
  const proto::ParseResult r = proto::parse({buf, len});
  switch (r.status) {
    case proto::ParseStatus::kOk: break;
    case proto::ParseStatus::kTooShort: q.reason = DropReason::kNtpTooShort; return q;
    case proto::ParseStatus::kBadVersion: q.reason = DropReason::kNtpBadVersion; return q;
    case proto::ParseStatus::kBadExtension:
    case proto::ParseStatus::kBadTrailer: q.reason = DropReason::kNtpBadLength; return q;
  }
  const proto::NtpHeader& req = r.packet.header;
  q.mode = req.mode;
  // NTPv1 (RFC 1059) has no mode field: its requests carry mode 0.
  if (q.mode == Mode::kReserved && req.version == 1) q.mode = Mode::kClient;
  switch (q.mode) {
    case Mode::kClient:
    case Mode::kSymmetricActive:
    case Mode::kSymmetricPassive:
    case Mode::kServer:
      break;
    case Mode::kControl:
    case Mode::kPrivate:
      q.reason = DropReason::kNtpControlMode;
      return q;
    default:
      q.reason = DropReason::kNtpBadMode;
      return q;
  }
  q.ok = true;
  q.version = req.version;
  q.mac_len = r.packet.mac_len;
  q.transmit = req.transmit;
  return q;
}

inline NtpDecision answer(uint8_t* buf, const NtpRequest& q, proto::NtpTimestamp rx, const ReplyParams& p,
                          proto::Mode reply_mode) {
  namespace offs = proto::offs;
  NtpDecision d;
  // RFC 5905 section 9.2 / appendix A.5.1.1 fast_xmit(): the reply has the
  // same version as the request; the origin timestamp is the request's
  // transmit timestamp ("Time at the client when the request departed"),
  // the receive timestamp our arrival time, and the poll the client's.
  uint8_t* h = buf;
  proto::Leap leap = p.leap;
  // Era-safe (RFC 5905 section 6): the 64-bit difference, signed.
  if (p.leap_before != proto::Leap::kNone) [[unlikely]]
    if (static_cast<int64_t>(rx.raw() - p.leap_at.raw()) < 0) leap = p.leap_before;
  h[offs::kLiVnMode] =
      static_cast<uint8_t>((static_cast<uint8_t>(leap) << 6) | (q.version << 3) | static_cast<uint8_t>(reply_mode));
  h[offs::kStratum] = p.stratum;
  // kPoll: left as the client sent it.
  h[offs::kPrecision] = static_cast<uint8_t>(p.precision_log2);
  proto::store_be32(h + offs::kRootDelay, p.root_delay);
  proto::store_be32(h + offs::kRootDispersion, p.root_dispersion);
  proto::store_be32(h + offs::kRefid, p.refid);
  proto::store_ts(h + offs::kReference, p.reference);
  std::memcpy(h + offs::kOrigin, h + offs::kTransmit, 8);
  proto::store_ts(h + offs::kReceive, rx);
  std::memset(h + offs::kTransmit, 0, 8);  // stamped just before TX

  // The one's-complement sum of the reply (32-bit big-endian words), from
  // the values just written: the UDP checksum then need not read back bytes
  // still in the store buffer (15-25% of the whole loop's cost).
  d.reply_sum = (uint64_t{h[offs::kLiVnMode]} << 24) + (uint64_t{p.stratum} << 16) + (uint64_t{h[offs::kPoll]} << 8) +
                static_cast<uint8_t>(p.precision_log2) + p.root_delay + p.root_dispersion + p.refid +
                p.reference.seconds + p.reference.fraction + q.transmit.seconds + q.transmit.fraction +
                rx.seconds + rx.fraction;
  d.action = NtpAction::kReply;
  d.reply_len = static_cast<uint16_t>(proto::kHeaderLen);
  if (q.mac_len > 4) {
    // An authenticated request with a key we do not have: answer with a
    // crypto-NAK (RFC 5905: a MAC field of key ID zero and no digest)
    // so the client knows authentication failed rather than being lied to.
    std::memset(h + proto::kHeaderLen, 0, 4);
    d.reply_len = static_cast<uint16_t>(proto::kHeaderLen + 4);
  }
  return d;
}

}  // namespace ntp::dp
