#include "dataplane/responder.h"

#include <cstdint>
#include <cstring>

namespace ntp::dp {

using proto::DropReason;
using proto::Mode;
namespace offs = proto::offs;

ReplyParams reply_params(const proto::ServerStateData& s, bool have_state, int64_t now_ns) {
  ReplyParams p;
  p.precision_log2 = s.precision_log2;
  if (!have_state) return p;  // leap 3, stratum 0, refid INIT

  // In 128 bits: the state comes from another process, and nonsense there
  // (times decades apart) must not overflow here.
  const __int128 age_ns = now_ns > s.published_ns ? static_cast<__int128>(now_ns) - s.published_ns : 0;
  p.refid = s.refid;
  p.reference = proto::ntp_from_unix_ns(s.reference_time_ns);
  p.root_delay = proto::short_from_ns(s.root_delay_ns);
  // RFC 5905 section 10: dispersion "increases at a rate of PHI" between
  // updates; a server that has not heard from its control plane grows its
  // root dispersion the same way, so clients see the uncertainty rise.
  const __int128 disp_ns = s.root_dispersion_ns + age_ns * s.dispersion_rate_ppb / 1000000000;
  p.root_dispersion = proto::short_from_ns(disp_ns > INT64_MAX ? INT64_MAX : static_cast<int64_t>(disp_ns));

  const bool in_holdover = age_ns <= s.holdover_ns;
  if (s.synchronized && in_holdover && s.stratum >= 1 && s.stratum <= proto::kStratumMax && s.leap != 3) {
    p.leap = static_cast<proto::Leap>(s.leap);
    // RFC 5905 section 7.3, LI: "warning of an impending leap second to be
    // inserted or deleted in the last minute of the current day". Once the
    // served time reaches the midnight that ends that day the leap is past.
    if ((s.leap == 1 || s.leap == 2) && s.leap_ns != 0 && now_ns >= s.leap_ns) {
      p.leap = proto::Leap::kNone;
      p.leap_before = static_cast<proto::Leap>(s.leap);
      p.leap_at = proto::ntp_from_unix_ns(s.leap_ns);
    }
    p.stratum = s.stratum;
    p.synchronized = true;
  } else {
    p.leap = proto::Leap::kUnsynchronized;
    p.stratum = proto::kStratumUnspecified;
    // Stratum 0 makes the reference ID a kiss code (RFC 5905 section 7.4):
    // say why, not the stale address of a source we no longer follow.
    if (!in_holdover) p.refid = proto::kKissHold;
  }
  return p;
}

NtpRequest classify_request(const uint8_t* buf, size_t len) {
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

NtpDecision answer(uint8_t* buf, const NtpRequest& q, proto::NtpTimestamp rx, const ReplyParams& p,
                   proto::Mode reply_mode) {
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

NtpDecision kiss_of_death(uint8_t* buf, const NtpRequest& q, uint32_t kiss_code) {
  NtpDecision d;
  if (q.version != 4) {
    // RFC 5905 defines kiss codes for NTPv4; an older client would take
    // stratum 0 for an ordinary unsynchronized answer.
    d.reason = DropReason::kRateLimited;
    return d;
  }
  uint8_t* h = buf;
  // RFC 5905 section 7.4: "the Stratum field is set to zero and the ASCII
  // kiss code is placed in the Reference ID"; LI 3 (unsynchronized).
  h[offs::kLiVnMode] = static_cast<uint8_t>((3u << 6) | (4u << 3) | static_cast<uint8_t>(Mode::kServer));
  h[offs::kStratum] = 0;
  proto::store_be32(h + offs::kRefid, kiss_code);
  // Origin, receive and transmit: the request's transmit timestamp (ntpd's
  // fast_xmit, RES_KOD): the client matches its origin, and learns no time.
  proto::store_ts(h + offs::kOrigin, q.transmit);
  proto::store_ts(h + offs::kReceive, q.transmit);
  proto::store_ts(h + offs::kTransmit, q.transmit);
  // Every other word is the client's own: sum what is there (cold path).
  uint64_t sum = 0;
  for (size_t i = 0; i < proto::kHeaderLen; i += 4) sum += proto::load_be32(h + i);
  d.reply_sum = sum;
  d.action = NtpAction::kReply;
  d.reply_len = static_cast<uint16_t>(proto::kHeaderLen);
  return d;
}

NtpDecision respond(uint8_t* buf, size_t len, proto::NtpTimestamp rx, const ReplyParams& p, bool serving) {
  NtpDecision d;
  const NtpRequest q = classify_request(buf, len);
  if (!q.ok) {
    d.reason = q.reason;
    return d;
  }
  if (q.mode != Mode::kClient) {
    d.action = NtpAction::kToControl;  // modes 1, 2 and 4 are the control plane's
    return d;
  }
  if (!serving) {
    d.reason = DropReason::kNtpServerDisabled;
    return d;
  }
  return answer(buf, q, rx, p, Mode::kServer);
}

}  // namespace ntp::dp
