#include "dataplane/frame.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "dataplane/inet.h"

namespace ntp::dp {

using proto::DropReason;

namespace {

constexpr uint8_t kBroadcastMac[6] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};

FrameVerdict drop(DropReason r) {
  FrameVerdict v;
  v.action = FrameAction::kDrop;
  v.reason = r;
  return v;
}

bool in_subnet(const PortIdentity& port, uint32_t ip) { return proto::in_prefix(ip, port.ipv4, port.prefix_len); }

// Sources we never answer: a reply to them would go nowhere or everywhere
// (a spoofed broadcast source turns us into an amplifier). 0.0.0.0/8 is
// "this network", never a destination (RFC 1122 section 3.2.1.3); 240/4
// (RFC 1112's class E, and the broadcast address) no host's either.
bool bad_source(const PortIdentity& port, uint32_t src) {
  const uint32_t m = proto::netmask(port.prefix_len);
  return (src >> 24) == 0 || (src >> 28) >= 0xE || (src >> 24) == 127 || src == port.ipv4 ||
         (port.prefix_len < 31 && (src & ~m) == ~m && in_subnet(port, src));
}

// Ethernet: reply to the sender from our MAC.
void eth_reply(uint8_t* eth, const PortIdentity& port) {
  std::memcpy(eth, eth + 6, 6);
  std::memcpy(eth + 6, port.mac, 6);
}

// What the fast path does not handle for our address: the kernel's when the
// port has an exception path, else dropped for `r`.
FrameVerdict not_ours(const PortIdentity& port, DropReason r) {
  FrameVerdict v = drop(r);
  if (port.exception_path) v.action = FrameAction::kToKernel;
  return v;
}

void ipv4_finish(uint8_t* ip) {
  proto::store_be16(ip + 10, 0);
  proto::store_be16(ip + 10, csum_finish(csum_add(0, ip, kIpv4MinHeaderLen)));
}

FrameVerdict handle_arp(uint8_t* eth, size_t l2_len, size_t len, const PortIdentity& port,
                        NeighbourTable& neighbours, int64_t now_ns) {
  if (len < l2_len + kArpLen) return drop(DropReason::kBadArp);
  uint8_t* a = eth + l2_len;
  // RFC 826 for Ethernet/IPv4: htype 1, ptype 0x0800, hlen 6, plen 4.
  if (proto::load_be16(a) != 1 || proto::load_be16(a + 2) != kEtherTypeIpv4 || a[4] != 6 || a[5] != 4) return drop(DropReason::kBadArp);
  const uint16_t op = proto::load_be16(a + 6);
  if (op != 1 && op != 2) return drop(DropReason::kBadArp);
  const uint8_t* sender_mac = a + 8;
  const uint32_t sender_ip = proto::load_be32(a + 14);
  const uint32_t target_ip = proto::load_be32(a + 24);
  const bool from_us = std::memcmp(sender_mac, port.mac, 6) == 0;
  // A packet socket sees the frames we send: our own announcement is
  // nothing to answer or to learn from.
  if (from_us && sender_ip == port.ipv4) return drop(DropReason::kNotForUs);
  // RFC 5227 section 2.4: a request or reply whose sender IP address is ours
  // but whose sender hardware address is not is a conflicting ARP packet.
  // Never learned (bad_source refuses our address) and never answered to
  // the claimant: neighbours that took its MAC are corrected by a broadcast.
  if (sender_ip == port.ipv4 && port.ipv4 != 0) {
    FrameVerdict v;
    v.arp_conflict = true;
    v.action = FrameAction::kConsumed;
    if (!neighbours.defence().conflict(port.ipv4, sender_mac, now_ns)) return v;
    // RFC 5227 section 2.4: "broadcasting one single ARP Announcement,
    // giving its own IP and hardware addresses as the sender addresses of
    // the ARP, with the 'target IP address' set to its own IP address"
    // (target hardware address zero, section 2.3): written over the
    // conflicting packet, which is at least as long.
    v.action = FrameAction::kTransmit;
    v.kind = ReplyKind::kArpDefence;
    uint8_t tag[kVlanTagLen];
    if (l2_len != kEthHeaderLen) std::memcpy(tag, eth + 12, sizeof tag);
    v.len = static_cast<uint16_t>(build_arp_request(eth, port.mac, port.ipv4, port.ipv4));
    if (l2_len != kEthHeaderLen) {
      // On the tag it came with (its VLAN, its priority).
      std::memmove(eth + 12 + kVlanTagLen, eth + 12, v.len - 12);
      std::memcpy(eth + 12, tag, sizeof tag);
      v.len = static_cast<uint16_t>(v.len + kVlanTagLen);
    }
    return v;
  }
  const bool learnable =
      sender_ip != 0 && in_subnet(port, sender_ip) && !bad_source(port, sender_ip) && (sender_mac[0] & 1) == 0;
  if (target_ip != port.ipv4) {
    // RFC 826 merge: an ARP packet not for us (a gratuitous announcement,
    // another host's request) still updates a neighbour we already know,
    // so a moved address is followed; it never adds one.
    FrameVerdict v = drop(DropReason::kNotForUs);
    v.learned_neighbour = learnable && neighbours.refresh(sender_ip, sender_mac, now_ns);
    return v;
  }

  FrameVerdict v;
  if (learnable) {
    neighbours.learn(sender_ip, sender_mac, now_ns);
    v.learned_neighbour = true;
  }
  if (op == 2) {
    // The kernel's own ARP requests (exception path) are answered to us: it
    // learns from the reply as we do.
    v.action = port.exception_path ? FrameAction::kToKernel : FrameAction::kConsumed;
    return v;
  }
  // Reply in place: the requester becomes the target.
  uint8_t requester_mac[6];
  std::memcpy(requester_mac, sender_mac, 6);
  eth_reply(eth, port);
  proto::store_be16(a + 6, 2);
  std::memcpy(a + 18, requester_mac, 6);
  proto::store_be32(a + 24, sender_ip);
  std::memcpy(a + 8, port.mac, 6);
  proto::store_be32(a + 14, port.ipv4);
  v.action = FrameAction::kTransmit;
  v.kind = ReplyKind::kArp;
  v.len = static_cast<uint16_t>(l2_len + kArpLen);
  return v;
}

FrameVerdict handle_icmp(uint8_t* eth, size_t l2_len, uint8_t* ip, size_t ip_total, const PortIdentity& port) {
  uint8_t* icmp = ip + kIpv4MinHeaderLen;
  const size_t icmp_len = ip_total - kIpv4MinHeaderLen;
  if (icmp_len < kIcmpHeaderLen || csum_fold(csum_add(0, icmp, icmp_len)) != 0xFFFF) return drop(DropReason::kBadIcmp);
  if (icmp[0] != 8 || icmp[1] != 0) return not_ours(port, DropReason::kIcmpNotEcho);  // only echo request
  const uint32_t src = proto::load_be32(ip + 12);
  if (bad_source(port, src)) return drop(DropReason::kBadSourceAddress);

  // Echo reply (RFC 792): type 0, same identifier, sequence and data. The
  // checksum is recomputed rather than updated incrementally: RFC 1624's
  // update gives 0x0000 where the reply's words sum to zero (identifier,
  // sequence and data all zero), and only 0xFFFF is right there.
  icmp[0] = 0;
  proto::store_be16(icmp + 2, 0);
  proto::store_be16(icmp + 2, csum_finish(csum_add(0, icmp, icmp_len)));
  proto::store_be32(ip + 16, src);
  proto::store_be32(ip + 12, port.ipv4);
  ip[8] = kDefaultTtl;
  ipv4_finish(ip);
  eth_reply(eth, port);
  FrameVerdict v;
  v.action = FrameAction::kTransmit;
  v.kind = ReplyKind::kIcmpEcho;
  v.len = static_cast<uint16_t>(l2_len + ip_total);
  return v;
}

const Policy& default_policy() {
  static const Policy p;
  return p;
}

// The rate limiter's verdict for src (no limiter: within the limit).
[[gnu::always_inline]] inline RateVerdict rate_check(const PolicyEnv& env, uint32_t src) {
  return env.limiter ? env.limiter->check_v4(src, env.now_ns) : RateVerdict::kPass;
}
// One token of the worker's reply cap (no cap: always).
[[gnu::always_inline]] inline bool cap_take(const PolicyEnv& env) { return env.cap == nullptr || env.cap->take(env.now_ns); }

// What the policy makes of one NTP packet: an answer of some kind, a
// forward to the control plane (which lane), or a drop with its reason.
// The helpers below fill handle_udp's one instance in place, inlined: built
// field by field and returned by value, the struct went through memory and
// cost two store-forwarding stalls per packet (narrow stores read back
// wide), ~20 ns.
struct PolicyDecision {
  NtpDecision d;
  ReplyKind kind = ReplyKind::kNone;
  NtsReason nts_reason = NtsReason::kOk;
  bool leaked = false;
  bool assoc_lane = false;
  bool assoc_demoted = false;
  XleaveSlot* xleave = nullptr;  // the client's slot, to take this answer's real transmit time
  uint64_t tx_fixed_raw = 0;     // an interleaved answer's transmit timestamp (our previous answer's); 0: basic
};

[[gnu::always_inline]] inline void drop_ntp(PolicyDecision& pd, DropReason r) {
  pd.d.action = NtpAction::kDrop;
  pd.d.reason = r;
}

[[gnu::always_inline]] inline void to_control_lane(PolicyDecision& pd, bool assoc_lane) {
  pd.d.action = NtpAction::kToControl;
  pd.assoc_lane = assoc_lane;
}

// Whether the request's MAC field is a valid MAC of a key in `keys`.
inline bool mac_verified(const crypto::KeyTable* keys, const uint8_t* ntp, const NtpRequest& q) {
  if (keys == nullptr || q.mac_len <= 4) return false;
  const size_t at = q.len - q.mac_len;
  return crypto::check_mac(*keys, ntp, at, ntp + at, q.mac_len).check == crypto::MacCheck::kOk;
}

// Whether the packet's MAC field is a valid MAC of key key_id of `keys`:
// the key ID is compared first, so a forgery under another ID costs no MAC.
inline bool mac_of_key(const crypto::KeyTable* keys, uint32_t key_id, const uint8_t* ntp, const NtpRequest& q) {
  if (keys == nullptr || q.mac_len <= 4) return false;
  const size_t at = q.len - q.mac_len;
  if (proto::load_be32(ntp + at) != key_id) return false;
  return crypto::check_mac(*keys, ntp, at, ntp + at, q.mac_len).check == crypto::MacCheck::kOk;
}

// The time a client asked for (mode 3, reply_mode kServer), or the
// stateless passive answer: with NTS when the request is an NTS request
// (RFC 8915 section 5.7: its fields parse) and we hold cookie keys and a
// seal slot, else plain (a malformed NTS request too: its client refuses an
// unauthenticated answer, which says no more than a plain one).
//
// Interleaved mode (RFC 9769 section 2) for an NTPv4 client in the table
// with a slot: a request whose origin is the receive timestamp of our last
// answer to it asks for that answer's real transmit time, which the slot
// holds once the answer has left. Every answer of time then becomes the
// client's last one (its receive timestamp kept, its transmit time to come:
// transmit_burst).
[[gnu::always_inline]] inline void record_answer(PolicyDecision& pd, XleaveSlot* xs, bool interleaved,
                                                 proto::NtpTimestamp rx) {
  if (xs == nullptr) return;
  pd.xleave = xs;
  pd.tx_fixed_raw = interleaved ? xs->tx_raw : 0;
  xs->rx_raw = rx.raw();
  xs->tx_raw = 0;
}

[[gnu::always_inline]] inline void answer_time(PolicyDecision& pd, uint8_t* ntp, const NtpRequest& q,
                                               proto::NtpTimestamp rx, const ReplyParams& params, const Policy& pol,
                                               const PolicyEnv& env, proto::Mode mode, ReplyKind kind) {
  XleaveSlot* xs = env.limiter != nullptr && env.limiter->has_xleave() && mode == proto::Mode::kServer &&
                           q.version == 4
                       ? env.limiter->last_xleave()
                       : nullptr;
  // The request's origin, read only for a client with a slot (classify_request
  // keeps what every request needs: 2 ns more per packet in bench_responder).
  const bool interleaved =
      xs != nullptr && xs->tx_raw != 0 && proto::load_ts(ntp + proto::offs::kOrigin).raw() == xs->rx_raw;
  if (pol.nts_ring != nullptr && q.len > proto::kHeaderLen && q.mac_len == 0 && mode == proto::Mode::kServer &&
      env.nts_seal != nullptr && env.nts_rng != nullptr) [[unlikely]] {
    const proto::NtsRequestView v = proto::parse_nts_request(ntp, q.len, crypto::kSivTagBytes);
    if (v.ok()) {
      const NtsAnswer a =
          nts_answer(ntp, q.len, q, v, rx, params, pol.nts_ring.get(), *env.nts_rng, *env.nts_seal, interleaved);
      pd.nts_reason = a.reason;
      if (a.outcome == NtsOutcome::kDrop) return drop_ntp(pd, DropReason::kNtpBadLength);
      pd.d = a.d;
      pd.kind = a.outcome == NtsOutcome::kReply ? ReplyKind::kNtsReply : ReplyKind::kNtsNak;
      // A NAK tells no time: the slot stays as it was.
      if (a.outcome == NtsOutcome::kReply) record_answer(pd, xs, interleaved, rx);
      return;
    }
  }
  pd.d = answer(ntp, q, rx, params, mode, pol.keys.get(), interleaved);
  pd.kind = kind;
  record_answer(pd, xs, interleaved, rx);
}

// A rate-limited answer of kind `kind` (kNtp or kNtpPassive) to src: the
// limiter decides, the reply cap brakes whatever it lets through.
[[gnu::always_inline]] inline void limited_answer(PolicyDecision& pd, uint8_t* ntp, const NtpRequest& q, uint32_t src,
                                                  proto::NtpTimestamp rx, const ReplyParams& params, const Policy& pol,
                                                  const PolicyEnv& env, proto::Mode mode, ReplyKind kind) {
  switch (rate_check(env, src)) {
    case RateVerdict::kLeak:
      pd.leaked = true;
      [[fallthrough]];
    case RateVerdict::kPass:
      if (!cap_take(env)) return drop_ntp(pd, DropReason::kReplyCap);
      return answer_time(pd, ntp, q, rx, params, pol, env, mode, kind);
    case RateVerdict::kKod:
      // RFC 5905 section 7.4, RATE: "the server has temporarily denied
      // access because the client exceeded the rate threshold".
      // A KoD is a server's (mode 4) answer to a client: a stranger's mode 1
      // (the stateless mode-2 path) would not take it, so it gets nothing.
      if (!pol.kod || q.version != 4 || mode != proto::Mode::kServer) return drop_ntp(pd, DropReason::kRateLimited);
      if (!cap_take(env)) return drop_ntp(pd, DropReason::kReplyCap);
      pd.d = kiss_of_death(ntp, q, proto::kKissRate);
      pd.kind = ReplyKind::kKodRate;
      return;
    case RateVerdict::kDrop: break;
  }
  return drop_ntp(pd, DropReason::kRateLimited);
}

[[gnu::always_inline]] inline void decide_ntp(PolicyDecision& pd, uint8_t* ntp, size_t ntp_len, uint32_t src,
                                              uint16_t src_port, uint16_t dst_port, proto::NtpTimestamp rx,
                                              const PortIdentity& port, const ReplyParams& params,
                                              const PolicyEnv& env) {
  const bool to_ntp_port = dst_port == proto::kNtpPort;
  const Policy& pol = env.policy ? *env.policy : default_policy();
  const NtpRequest q = classify_request(ntp, ntp_len);
  if (!q.ok) return drop_ntp(pd, q.reason);
  switch (q.mode) {
    case proto::Mode::kClient: break;
    case proto::Mode::kServer: {
      // Replies to our client associations: from the server's address and
      // port to the random port the association sends from now (RFC 9109
      // section 3: a spoofer of the server, whose address our replies give
      // away as their reference ID, must also guess the port).
      AssocEntry* e = env.assoc ? env.assoc->find(src, src_port, dst_port, proto::kEndpointClient) : nullptr;
      if (e == nullptr) return drop_ntp(pd, DropReason::kUnexpectedServer);
      if (!AssocTable::take(*e, env.now_ns)) return drop_ntp(pd, DropReason::kAssocOverBudget);
      return to_control_lane(pd, true);
    }
    case proto::Mode::kSymmetricActive:
    case proto::Mode::kSymmetricPassive: {
      // A configured [[peer]]: from its address and port to ours (123 both
      // ways, RFC 5905 section 9.1), within its budget. Over it, the shared
      // lane, not a drop: unlike a client's random port, 123 is no secret,
      // so dropping would hand a blind spoofer of the peer's address the
      // association at 17 packets/s; the shared lane keeps this one free
      // for the others and still carries the real peer's packets. A keyed
      // peer's packet must first carry a valid MAC of its key (RFC 5905
      // section 9.2): a forgery is dropped before it spends the budget, so
      // only the real peer's packets take the associations' lane.
      if (AssocEntry* e = env.assoc ? env.assoc->find(src, src_port, dst_port, proto::kEndpointSymmetric) : nullptr) {
        if (e->key_id != 0 && !mac_of_key(pol.keys.get(), e->key_id, ntp, q)) [[unlikely]]
          return drop_ntp(pd, DropReason::kNotAuthenticated);
        const bool within = AssocTable::take(*e, env.now_ns);
        pd.assoc_demoted = !within;
        return to_control_lane(pd, within);
      }
      const proto::AccessClass cls = pol.access.classify_v4(src);
      // The peer class is trusted as the server class is: never limited
      // by the clients' [ratelimit] (a chronyd peer polls every second or
      // faster, the default limit is one per 8 s). Its packets share one
      // lane, which the configured associations' lane does not depend on.
      if (proto::may_peer(cls)) {
        // auth.authenticate: only a valid MAC of a trusted key reaches the
        // control plane's passive associations (a spoofer of a peer-class
        // address costs one key lookup and one MAC here, nothing there).
        if (pol.authenticate && !mac_verified(pol.trusted_keys.get(), ntp, q))
          return drop_ntp(pd, DropReason::kNotAuthenticated);
        return to_control_lane(pd, false);
      }
      if (q.mode == proto::Mode::kSymmetricPassive || !pol.answer_unknown_peers)
        return drop_ntp(pd, DropReason::kNotAPeer);
      if (!proto::may_get_time(cls)) return drop_ntp(pd, DropReason::kAccessDenied);
      if (!port.ntp_server) return drop_ntp(pd, DropReason::kNtpServerDisabled);
      // Served like a rate-limited client whatever its class: nothing on
      // our side remembers it, so nothing else bounds what it can ask for.
      return limited_answer(pd, ntp, q, src, rx, params, pol, env, proto::Mode::kSymmetricPassive,
                            ReplyKind::kNtpPassive);
    }
    default: return drop_ntp(pd, DropReason::kNtpBadMode);  // classify_request refused the rest
  }

  // A client request (mode 3, or NTPv1's mode 0).
  if (!to_ntp_port) return drop_ntp(pd, DropReason::kUdpPortClosed);
  if (!port.ntp_server) return drop_ntp(pd, DropReason::kNtpServerDisabled);
  const proto::AccessClass cls = pol.access.classify_v4(src);
  if (!proto::may_get_time(cls)) [[unlikely]] {
    // RFC 5905 section 7.4, DENY: "access denied by remote server". Only
    // to NTPv4, and only from the source's excess budget in the limiter's
    // table (RateLimiter::excess_v4, its tokens unused): a spoofed victim
    // gets one DENY, then at most one per 2^interval_log2 s (and the reply
    // cap), a real client one answer that tells it to stop. Without a
    // limiter (tests): unbudgeted.
    if (!pol.kod || q.version != 4) return drop_ntp(pd, DropReason::kAccessDenied);
    if (env.limiter && !env.limiter->excess_v4(src, env.now_ns)) return drop_ntp(pd, DropReason::kAccessDenied);
    if (!cap_take(env)) return drop_ntp(pd, DropReason::kReplyCap);
    pd.d = kiss_of_death(ntp, q, proto::kKissDeny);
    pd.kind = ReplyKind::kKodDeny;
    return;
  }
  if (proto::is_rate_limited(cls))
    return limited_answer(pd, ntp, q, src, rx, params, pol, env, proto::Mode::kServer, ReplyKind::kNtp);
  // Not limited, but in the table for interleaved mode (when it is on).
  if (env.limiter != nullptr && env.limiter->has_xleave()) env.limiter->enter_v4(src, env.now_ns);
  answer_time(pd, ntp, q, rx, params, pol, env, proto::Mode::kServer, ReplyKind::kNtp);
}

FrameVerdict handle_udp(uint8_t* eth, size_t l2_len, uint8_t* ip, size_t ihl, size_t ip_total,
                        const PortIdentity& port, const ReplyParams& params, proto::NtpTimestamp rx,
                        const PolicyEnv& env) {
  uint8_t* udp = ip + ihl;
  const size_t l4_len = ip_total - ihl;
  if (l4_len < kUdpHeaderLen) return drop(DropReason::kBadUdpLength);
  const uint16_t udp_len = proto::load_be16(udp + 4);
  if (udp_len < kUdpHeaderLen || udp_len > l4_len) return drop(DropReason::kBadUdpLength);
  const uint32_t src = proto::load_be32(ip + 12);
  const uint32_t dst = proto::load_be32(ip + 16);
  if (proto::load_be16(udp + 6) != 0) {  // 0: the sender did not compute one (RFC 768)
    const uint64_t sum = csum_add(pseudo_header_sum(src, dst, kIpProtoUdp, udp_len), udp, udp_len);
    if (csum_fold(sum) != 0xFFFF) return drop(DropReason::kBadUdpChecksum);
  }
  uint8_t* ntp = udp + kUdpHeaderLen;
  const size_t ntp_len = udp_len - kUdpHeaderLen;
  // Port 123 only, except a server answer (mode 4) from a client
  // association's server: those send from random ports (RFC 9109), and
  // decide_ntp forwards only to the association's current one (another
  // port from the server's address is a spoof: unexpected_server).
  const uint16_t src_port = proto::load_be16(udp);
  const uint16_t dst_port = proto::load_be16(udp + 2);
  if (dst_port != proto::kNtpPort) {
    if (ntp_len < 1 || (ntp[0] & 7) != static_cast<uint8_t>(proto::Mode::kServer) || env.assoc == nullptr ||
        !env.assoc->has_client(src))
      return not_ours(port, DropReason::kUdpPortClosed);
  }
  if (bad_source(port, src) || src_port == 0) return drop(DropReason::kBadSourceAddress);  // port 0: nowhere
  if (ihl != kIpv4MinHeaderLen) {
    // Options skipped: the datagram moves up to a plain header, where the
    // reply is built (it carries none). Only now: the kernel's frames
    // (above) go to it unchanged, and what follows drops, forwards a copy
    // or answers.
    std::memmove(ip + kIpv4MinHeaderLen, udp, udp_len);
    ip[0] = 0x45;
    udp = ip + kIpv4MinHeaderLen;
    ntp = udp + kUdpHeaderLen;
  }

  const uint16_t ntp_offset = static_cast<uint16_t>(ntp - eth);
  PolicyDecision pd;
  decide_ntp(pd, ntp, ntp_len, src, src_port, dst_port, rx, port, params, env);
  const NtpDecision& d = pd.d;
  FrameVerdict v;
  switch (d.action) {
    case NtpAction::kDrop: return drop(d.reason);
    case NtpAction::kToControl:
      v.action = FrameAction::kToControl;
      v.assoc_lane = pd.assoc_lane;
      v.assoc_demoted = pd.assoc_demoted;
      v.ntp_offset = ntp_offset;
      v.ntp_len = static_cast<uint16_t>(ntp_len);
      v.src_ip = src;
      v.dst_ip = dst;
      v.src_port = src_port;
      v.dst_port = dst_port;
      return v;
    case NtpAction::kReply: break;
  }

  // UDP: from port 123 to the client's port; checksum over the reply with
  // the transmit timestamp still zero (stamp_transmit adds it).
  const uint16_t client_port = src_port;
  const uint16_t reply_udp_len = static_cast<uint16_t>(kUdpHeaderLen + d.reply_len);
  proto::store_be16(udp, proto::kNtpPort);
  proto::store_be16(udp + 2, client_port);
  proto::store_be16(udp + 4, reply_udp_len);
  // From the values, not by reading back the bytes just written. A
  // crypto-NAK (four zero bytes) adds nothing to the sum.
  const uint64_t usum = pseudo_header_sum(dst, src, kIpProtoUdp, reply_udp_len) + proto::kNtpPort + client_port +
                        reply_udp_len + d.reply_sum;
  const uint16_t ck = csum_finish(usum);
  proto::store_be16(udp + 6, ck == 0 ? 0xFFFF : ck);

  // IPv4: a fresh 20-byte header (without the request's options, if it had
  // any), DF set and ID zero as RFC 6864 allows for atomic datagrams.
  proto::store_be16(ip + 2, static_cast<uint16_t>(kIpv4MinHeaderLen + reply_udp_len));
  proto::store_be16(ip + 4, 0);
  proto::store_be16(ip + 6, 0x4000);
  ip[8] = kDefaultTtl;
  proto::store_be32(ip + 12, dst);
  proto::store_be32(ip + 16, src);
  const uint64_t isum = (uint64_t{ip[0]} << 8 | ip[1]) + kIpv4MinHeaderLen + reply_udp_len + 0x4000 +
                        (uint64_t{kDefaultTtl} << 8 | kIpProtoUdp) + src + dst;
  proto::store_be16(ip + 10, csum_finish(isum));
  eth_reply(eth, port);

  v.action = FrameAction::kTransmit;
  v.kind = pd.kind;
  v.rate_leaked = pd.leaked;
  v.unsynchronized = stamps_transmit(pd.kind) && !params.synchronized;
  v.ntp_offset = ntp_offset;
  v.len = static_cast<uint16_t>(l2_len + kIpv4MinHeaderLen + reply_udp_len);
  v.mac_key = d.mac_key;
  v.mac_digest_bytes = d.mac_digest_bytes;
  v.auth = d.auth;
  v.nts_reason = pd.nts_reason;
  v.xleave = pd.xleave;
  v.tx_fixed_raw = pd.tx_fixed_raw;
  return v;
}

// RFC 791 options, walked: kMalformed when a length runs past the header
// or below 2, kSourceRouted for LSRR/SSRR (131, 137) anywhere before the
// end-of-list option.
enum class Ipv4Options : uint8_t { kSkippable, kSourceRouted, kMalformed };

Ipv4Options ipv4_options(const uint8_t* ip, size_t ihl) {
  size_t at = kIpv4MinHeaderLen;
  while (at < ihl) {
    const uint8_t type = ip[at];
    if (type == 0) break;  // end of option list: the rest is padding
    if (type == 1) {       // no-operation
      at++;
      continue;
    }
    if (at + 1 >= ihl || ip[at + 1] < 2 || ip[at + 1] > ihl - at) return Ipv4Options::kMalformed;
    if (type == 131 || type == 137) return Ipv4Options::kSourceRouted;
    at += ip[at + 1];
  }
  return Ipv4Options::kSkippable;
}

FrameVerdict handle_ipv4(uint8_t* eth, size_t l2_len, size_t len, const PortIdentity& port,
                         const ReplyParams& params, proto::NtpTimestamp rx, const PolicyEnv& env) {
  uint8_t* ip = eth + l2_len;
  const size_t avail = len - l2_len;
  if (avail < kIpv4MinHeaderLen || (ip[0] >> 4) != 4) return drop(DropReason::kBadIpHeader);
  const size_t ihl = size_t{ip[0] & 0x0Fu} * 4;
  const size_t total = proto::load_be16(ip + 2);  // frames may carry Ethernet padding beyond it
  if (ihl < kIpv4MinHeaderLen || total < ihl || total > avail) return drop(DropReason::kBadIpHeader);
  if (proto::load_be32(ip + 16) != port.ipv4) return drop(DropReason::kNotForUs);
  if (csum_fold(csum_add(0, ip, ihl)) != 0xFFFF) return drop(DropReason::kBadIpChecksum);
  // The kernel reassembles fragments; we do not.
  if ((proto::load_be16(ip + 6) & 0x3FFF) != 0) return not_ours(port, DropReason::kIpFragment);  // MF or an offset
  if (ihl != kIpv4MinHeaderLen) [[unlikely]] {
    // A UDP datagram's options (router alert, record route, timestamp,
    // security labels) are skipped and the answer goes without them (RFC
    // 1122 section 3.2.1.8: a host may ignore the options it does not
    // implement). Not a source-routed one: as Linux's accept_source_route
    // = 0, we send nothing along a path the sender chose. ICMP keeps them
    // for the kernel: an echo reply should carry record route and
    // timestamp back (RFC 1122 section 3.2.2.6).
    const Ipv4Options o = ipv4_options(ip, ihl);
    if (o == Ipv4Options::kMalformed) return drop(DropReason::kBadIpHeader);
    if (o == Ipv4Options::kSourceRouted || ip[9] != kIpProtoUdp) return not_ours(port, DropReason::kIpOptions);
  }
  switch (ip[9]) {
    case kIpProtoUdp: return handle_udp(eth, l2_len, ip, ihl, total, port, params, rx, env);
    case kIpProtoIcmp: return handle_icmp(eth, l2_len, ip, total, port);
    default: return not_ours(port, DropReason::kUnsupportedIpProto);  // TCP (SSH, BGP, NTS-KE) and the rest
  }
}

}  // namespace

bool AssocTable::assign(const proto::AssocEndpoints& published, const AssocTable* previous) {
  const uint32_t count = published.count;
  if (count > proto::kMaxAssocEndpoints) return false;
  static constexpr uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  size_t n = 0;
  for (uint32_t i = 0; i < count; i++) {
    const proto::AssocEndpoint& p = published.entries[i];
    // The frame layer is IPv4 only; an unknown kind is a newer writer's.
    if (std::memcmp(p.address, kV4MappedPrefix, sizeof kV4MappedPrefix) != 0) continue;
    if (p.kind != proto::kEndpointClient && p.kind != proto::kEndpointSymmetric) continue;
    AssocEntry& e = entries_[n++];
    e.ipv4 = proto::load_be32(p.address + 12);
    e.remote_port = p.remote_port;
    e.local_port = p.local_port;
    e.kind = p.kind;
    e.key_id = p.key_id;
    e.tat_ns = 0;  // a full burst
  }
  std::sort(entries_, entries_ + n, [](const AssocEntry& a, const AssocEntry& b) {
    return key_of(a) < key_of(b) || (key_of(a) == key_of(b) && a.kind < b.kind);
  });
  // One entry per endpoint, each keeping the budget it had: a republished
  // set (a client's new port) gives a spoofer no fresh burst.
  size_t out = 0;
  for (size_t i = 0; i < n; i++) {
    if (out > 0 && key_of(entries_[out - 1]) == key_of(entries_[i]) && entries_[out - 1].kind == entries_[i].kind)
      continue;
    entries_[out] = entries_[i];
    if (previous) {
      const size_t j = previous->lower_bound(key_of(entries_[out]), entries_[out].kind);
      if (j < previous->n_ && key_of(previous->entries_[j]) == key_of(entries_[out]) &&
          previous->entries_[j].kind == entries_[out].kind)
        entries_[out].tat_ns = previous->entries_[j].tat_ns;
    }
    out++;
  }
  n_ = out;
  return true;
}

FrameVerdict handle_frame(uint8_t* buf, size_t len, const PortIdentity& port, const ReplyParams& params,
                          proto::NtpTimestamp rx, NeighbourTable& neighbours, int64_t now_ns,
                          const PolicyEnv& env) {
  if (len < kEthHeaderLen) return drop(DropReason::kRuntFrame);
  if (len > kMaxFrameLen) return drop(DropReason::kOversized);
  if (std::memcmp(buf, port.mac, 6) != 0 && std::memcmp(buf, kBroadcastMac, 6) != 0)
    return drop(DropReason::kNotForUs);
  // A group source MAC is forged: an answer to it would flood the segment.
  if (buf[6] & 1) return drop(DropReason::kBadSourceAddress);
  // IEEE 802.1Q: the interface's VLAN, or a priority tag (VLAN ID 0: a
  // frame of the untagged network with a priority). The reply is built
  // behind the tag, which it keeps: the same VLAN, and the priority it came
  // with.
  const L2Header l2 = read_l2(buf, len);
  if (l2.truncated) return drop(DropReason::kRuntFrame);
  if (l2.vlan != port.vlan) return drop(DropReason::kVlanNotOurs);
  const size_t l2_len = l2.len;
  switch (l2.ethertype) {
    case kEtherTypeIpv4: return handle_ipv4(buf, l2_len, len, port, params, rx, env);
    case kEtherTypeArp: return handle_arp(buf, l2_len, len, port, neighbours, now_ns);
    default: return drop(DropReason::kUnsupportedEthertype);
  }
}

void stamp_transmit(uint8_t* frame, uint16_t ntp_offset, proto::NtpTimestamp tx) {
  uint8_t* ntp = frame + ntp_offset;
  proto::store_ts(ntp + proto::offs::kTransmit, tx);
  uint8_t* udp_check = ntp - kUdpHeaderLen + 6;
  const uint16_t ck = csum_add_words(proto::load_be16(udp_check), tx.seconds, tx.fraction);
  proto::store_be16(udp_check, ck == 0 ? 0xFFFF : ck);
}

void seal_transmit(uint8_t* frame, uint16_t ntp_offset, size_t covered, const crypto::MacKey& key,
                   uint8_t digest_bytes) {
  uint8_t* ntp = frame + ntp_offset;
  uint8_t* digest = ntp + covered + 4;
  const size_t n = crypto::mac_compute(key, ntp, covered, digest, digest_bytes);
  uint8_t* udp_check = ntp - kUdpHeaderLen + 6;
  // The digest replaced bytes the checksum counted as zero: add its words.
  uint64_t sum = static_cast<uint16_t>(~proto::load_be16(udp_check));
  sum = csum_add(sum, digest, n);
  const uint16_t ck = static_cast<uint16_t>(~csum_fold(sum));
  proto::store_be16(udp_check, ck == 0 ? 0xFFFF : ck);
}

void seal_nts_transmit(uint8_t* frame, uint16_t ntp_offset, NtsSeal& seal) {
  uint8_t* ntp = frame + ntp_offset;
  uint8_t* udp_check = ntp - kUdpHeaderLen + 6;
  // The ciphertext replaced bytes the checksum counted as zero: add its words.
  uint64_t sum = static_cast<uint16_t>(~proto::load_be16(udp_check));
  sum += nts_seal(ntp, seal);
  const uint16_t ck = static_cast<uint16_t>(~csum_fold(sum));
  proto::store_be16(udp_check, ck == 0 ? 0xFFFF : ck);
}

size_t build_udp_frame(uint8_t* buf, const uint8_t* src_mac, const uint8_t* dst_mac, uint32_t src_ip, uint32_t dst_ip,
                       uint16_t src_port, uint16_t dst_port, size_t payload_len) {
  uint8_t* ip = buf + kEthHeaderLen;
  uint8_t* udp = ip + kIpv4MinHeaderLen;
  const uint16_t udp_len = static_cast<uint16_t>(kUdpHeaderLen + payload_len);
  std::memcpy(buf, dst_mac, 6);
  std::memcpy(buf + 6, src_mac, 6);
  proto::store_be16(buf + 12, kEtherTypeIpv4);
  ip[0] = 0x45;
  ip[1] = 0xB8;  // DSCP EF: time packets want the least queueing
  proto::store_be16(ip + 2, static_cast<uint16_t>(kIpv4MinHeaderLen + udp_len));
  proto::store_be16(ip + 4, 0);
  proto::store_be16(ip + 6, 0x4000);
  ip[8] = kDefaultTtl;
  ip[9] = kIpProtoUdp;
  proto::store_be32(ip + 12, src_ip);
  proto::store_be32(ip + 16, dst_ip);
  ipv4_finish(ip);
  proto::store_be16(udp, src_port);
  proto::store_be16(udp + 2, dst_port);
  proto::store_be16(udp + 4, udp_len);
  proto::store_be16(udp + 6, 0);
  const uint16_t ck = csum_finish(csum_add(pseudo_header_sum(src_ip, dst_ip, kIpProtoUdp, udp_len), udp, udp_len));
  proto::store_be16(udp + 6, ck == 0 ? 0xFFFF : ck);
  return kEthHeaderLen + kIpv4MinHeaderLen + udp_len;
}

size_t build_arp_request(uint8_t* buf, const uint8_t* src_mac, uint32_t src_ip, uint32_t target_ip) {
  std::memcpy(buf, kBroadcastMac, 6);
  std::memcpy(buf + 6, src_mac, 6);
  proto::store_be16(buf + 12, kEtherTypeArp);
  uint8_t* a = buf + kEthHeaderLen;
  proto::store_be16(a, 1);  // Ethernet
  proto::store_be16(a + 2, kEtherTypeIpv4);
  a[4] = 6;
  a[5] = 4;
  proto::store_be16(a + 6, 1);  // request
  std::memcpy(a + 8, src_mac, 6);
  proto::store_be32(a + 14, src_ip);
  std::memset(a + 18, 0, 6);
  proto::store_be32(a + 24, target_ip);
  return kEthHeaderLen + kArpLen;
}

uint32_t next_hop(const PortIdentity& port, uint32_t gateway, uint32_t dst) {
  if (in_subnet(port, dst)) return dst;
  return gateway;
}

size_t format_arp_conflict(const ArpConflictRecord& r, char* out, size_t cap) {
  if (cap == 0) return 0;
  const int n = std::snprintf(
      out, cap,
      "ARP conflict: %u.%u.%u.%u claimed by %02x:%02x:%02x:%02x:%02x:%02x (%llu conflicting packet%s, %llu "
      "defence%s so far)",
      r.ipv4 >> 24, (r.ipv4 >> 16) & 0xFF, (r.ipv4 >> 8) & 0xFF, r.ipv4 & 0xFF, r.mac[0], r.mac[1], r.mac[2],
      r.mac[3], r.mac[4], r.mac[5], static_cast<unsigned long long>(r.conflicts), r.conflicts == 1 ? "" : "s",
      static_cast<unsigned long long>(r.defences), r.defences == 1 ? "" : "s");
  if (n < 0) {
    out[0] = '\0';
    return 0;
  }
  return static_cast<size_t>(n) < cap ? static_cast<size_t>(n) : cap - 1;
}

}  // namespace ntp::dp
