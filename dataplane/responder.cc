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

NtpDecision respond(uint8_t* buf, size_t len, proto::NtpTimestamp rx, const ReplyParams& p, bool serving,
                    const crypto::KeyTable* keys) {
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
  return answer(buf, q, rx, p, Mode::kServer, keys);
}

}  // namespace ntp::dp
