// The NTP server responder: a pure function from a request (bytes and
// receive time) and the published server state to a reply in place, or a
// drop with its reason. It reads no clock and touches no NIC: the worker
// loop takes the timestamps and carries out the decision.
#pragma once

#include <cstddef>
#include <cstdint>

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
NtpRequest classify_request(const uint8_t* buf, size_t len);

// Answers the classified request q in place with the burst's parameters:
// reply_mode kServer for a client request (RFC 5905 fast_xmit), or
// kSymmetricPassive for the stateless answer to a symmetric-active packet
// from an address that may not peer (RFC 5905 section 9.2: "a packet from
// an unknown peer is answered like a client request, in passive mode", as
// ntpd's fast_xmit(MODE_PASSIVE) does under nopeer). Transmit timestamp left
// zero for stamp_transmit. Never longer than the request plus a 4-byte
// crypto-NAK where the request carried a MAC we cannot check.
NtpDecision answer(uint8_t* buf, const NtpRequest& q, proto::NtpTimestamp rx, const ReplyParams& p,
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

}  // namespace ntp::dp
