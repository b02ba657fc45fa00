// The NTP server responder: a pure function from a request (bytes and
// receive time) and the published server state to a reply in place, or a
// drop with its reason. It reads no clock and touches no NIC: the worker
// loop takes the timestamps and carries out the decision.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "crypto/mac.h"
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

// What the MAC of a request (RFC 5905 section 7.3) came to, for the worker's
// counters: kOk answered with a MAC (auth_replies), the others with a
// crypto-NAK (auth_unknown_key; auth_bad_mac for a wrong digest or a digest
// length the key's type does not allow). kNone: no MAC, or a crypto-NAK.
enum class AuthOutcome : uint8_t { kNone, kOk, kUnknownKey, kBadMac };

struct NtpDecision {
  NtpAction action = NtpAction::kDrop;
  proto::DropReason reason = proto::DropReason::kNtpBadMode;  // when kDrop
  uint16_t reply_len = 0;  // when kReply: bytes of NTP payload to send
  // when kReply: one's-complement sum (unfolded, 32-bit big-endian words) of
  // the reply bytes, so the caller's checksum need not read them back.
  uint64_t reply_sum = 0;
  // kReply to an authenticated request: the key to MAC the reply with and
  // the digest length (the request's), its key ID already at byte 48 and in
  // reply_sum, the digest to be written by seal_reply after the transmit
  // stamp, which it covers. Null: nothing to seal.
  const crypto::MacKey* mac_key = nullptr;
  uint8_t mac_digest_bytes = 0;
  AuthOutcome auth = AuthOutcome::kNone;
};

// The size of buffer the responder may write: the reply never grows beyond
// the header plus a 4-byte crypto-NAK (an authenticated reply is no longer
// than its request: the same key ID and digest length, no extension field).
inline constexpr size_t kMaxReplyLen = proto::kHeaderLen + 4;

// A request as the per-packet policy needs it: parsed once, before any
// access or rate decision. ok false: drop with reason.
struct NtpRequest {
  bool ok = false;
  proto::DropReason reason = proto::DropReason::kNtpTooShort;
  proto::Mode mode = proto::Mode::kReserved;  // NTPv1's mode 0 is reported as kClient
  uint8_t version = 0;
  uint8_t mac_len = 0;        // as proto::ParsedPacket
  uint16_t len = 0;           // the request's bytes: its MAC field is [len - mac_len, len)
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
// keys: the keys we hold (null: none). A request MACed with one of them and
// a valid digest gets the MAC of the same key and digest length (RFC 5905
// section 9.2 fast_xmit; chrony answers with any key of its keyfile: the key
// proves the server to the client, trusted_keys is about whom we follow),
// to be sealed after the transmit stamp (seal_reply); an unknown key, a
// wrong digest or a digest length its type does not allow gets a crypto-NAK.
// The MAC is checked before the request's bytes are overwritten.
// interleaved: an interleaved answer (RFC 9769 section 2): its origin is the
// request's receive field instead of its transmit field, and the transmit
// timestamp the caller stamps is the real one of our previous answer.
inline NtpDecision answer(uint8_t* buf, const NtpRequest& q, proto::NtpTimestamp rx, const ReplyParams& p,
                          proto::Mode reply_mode, const crypto::KeyTable* keys = nullptr, bool interleaved = false);

// Writes the digest of an authenticated reply made by answer (d.mac_key,
// d.mac_digest_bytes) over its 48-byte header, transmit timestamp included:
// call it after the stamp. Returns the one's-complement sum (unfolded, 32-bit
// big-endian words) of the digest for the UDP checksum. Hot path: one MAC,
// no allocation.
inline uint64_t seal_reply(uint8_t* ntp, const crypto::MacKey& key, uint8_t digest_bytes) {
  uint8_t* digest = ntp + proto::kHeaderLen + 4;
  const size_t n = crypto::mac_compute(key, ntp, proto::kHeaderLen, digest, digest_bytes);
  uint64_t sum = 0;
  for (size_t i = 0; i + 4 <= n; i += 4) sum += proto::load_be32(digest + i);  // 16, 20, 32: whole words
  return sum;
}

// What one reply's MAC costs, in ns (bench_mac's compute over 48 bytes on a
// 2-vCPU box with AES-NI and SHA-NI, rounded up): the worker adds the
// burst's total to the transmit stamp it takes before sealing, so the stamp
// predicts when the burst leaves rather than when its MACs began.
constexpr int64_t mac_cost_ns(crypto::MacType type) {
  switch (type) {
    case crypto::MacType::kAes128Cmac: return 70;
    case crypto::MacType::kSha1: return 100;
    case crypto::MacType::kSha256: return 110;
    case crypto::MacType::kHmacSha256: return 120;
    case crypto::MacType::kMd5: return 200;
    case crypto::MacType::kNone: return 0;
  }
  return 0;
}

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
// keys: as answer().
NtpDecision respond(uint8_t* buf, size_t len, proto::NtpTimestamp rx, const ReplyParams& p, bool serving,
                    const crypto::KeyTable* keys = nullptr);

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
  q.len = static_cast<uint16_t>(len);  // parse() took it: at most a UDP payload
  q.transmit = req.transmit;
  return q;
}

inline NtpDecision answer(uint8_t* buf, const NtpRequest& q, proto::NtpTimestamp rx, const ReplyParams& p,
                          proto::Mode reply_mode, const crypto::KeyTable* keys, bool interleaved) {
  namespace offs = proto::offs;
  NtpDecision d;
  // The request's MAC, read before its bytes become the reply's. A 4-byte
  // field (a crypto-NAK from the client) is no MAC to answer.
  if (q.mac_len > 4) [[unlikely]] {
    d.auth = AuthOutcome::kUnknownKey;
    if (keys != nullptr) {
      const size_t at = q.len - q.mac_len;
      const crypto::MacResult m = crypto::check_mac(*keys, buf, at, buf + at, q.mac_len);
      switch (m.check) {
        case crypto::MacCheck::kOk:
          d.auth = AuthOutcome::kOk;
          d.mac_key = m.key;
          d.mac_digest_bytes = m.digest_bytes;
          break;
        case crypto::MacCheck::kUnknownKey: break;
        default: d.auth = AuthOutcome::kBadMac; break;  // kBadLength, kBadDigest
      }
    }
  }
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
  // An interleaved answer (RFC 9769 section 2) echoes the request's
  // receive field as its origin: that is how the client tells the modes apart.
  // Copied as bytes, before the receive field is overwritten: composing it
  // from the value beside rx, GCC merged both into one 16-byte store through
  // the stack, a store-forwarding stall (~8 ns a packet in bench_worker).
  const proto::NtpTimestamp origin = interleaved ? proto::load_ts(h + offs::kReceive) : q.transmit;
  std::memcpy(h + offs::kOrigin, h + (interleaved ? offs::kReceive : offs::kTransmit), 8);
  proto::store_ts(h + offs::kReceive, rx);
  std::memset(h + offs::kTransmit, 0, 8);  // stamped just before TX

  // The one's-complement sum of the reply (32-bit big-endian words), from
  // the values just written: the UDP checksum then need not read back bytes
  // still in the store buffer (15-25% of the whole loop's cost).
  d.reply_sum = (uint64_t{h[offs::kLiVnMode]} << 24) + (uint64_t{p.stratum} << 16) + (uint64_t{h[offs::kPoll]} << 8) +
                static_cast<uint8_t>(p.precision_log2) + p.root_delay + p.root_dispersion + p.refid +
                p.reference.seconds + p.reference.fraction + origin.seconds + origin.fraction +
                rx.seconds + rx.fraction;
  d.action = NtpAction::kReply;
  d.reply_len = static_cast<uint16_t>(proto::kHeaderLen);
  if (d.mac_key != nullptr) {
    // RFC 5905 section 7.3: key ID, then the digest (seal_reply, after the
    // transmit stamp); the key ID's word is summed here.
    proto::store_be32(h + proto::kHeaderLen, d.mac_key->id);
    d.reply_sum += d.mac_key->id;
    d.reply_len = static_cast<uint16_t>(proto::kHeaderLen + 4 + d.mac_digest_bytes);
  } else if (q.mac_len > 4) {
    // A MAC we cannot check (unknown key) or that is wrong: answer with a
    // crypto-NAK (RFC 5905 section 7.4: a MAC field of key ID zero and no
    // digest) so the client knows authentication failed rather than being
    // lied to.
    std::memset(h + proto::kHeaderLen, 0, 4);
    d.reply_len = static_cast<uint16_t>(proto::kHeaderLen + 4);
  }
  return d;
}

}  // namespace ntp::dp
