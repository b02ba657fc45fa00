// What a worker does with one received Ethernet frame: answer ARP, ICMP echo
// and NTP client requests in place, defend our addresses against ARP
// conflicts, hand NTP peer/server packets to the control plane, or drop with
// a reason. Pure: bytes in, verdict out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "crypto/mac.h"
#include "dataplane/neighbour.h"
#include "dataplane/nts_responder.h"
#include "dataplane/ratelimit.h"
#include "dataplane/responder.h"
#include "proto/access.h"
#include "proto/channel_abi.h"

namespace ntp::dp {

// One port as the frame logic sees it.
struct PortIdentity {
  uint8_t mac[6] = {};
  uint32_t ipv4 = 0;        // host order
  uint8_t prefix_len = 24;
  uint16_t vlan = 0;        // 802.1Q VLAN ID of its frames; 0: untagged or priority-tagged
  bool ntp_server = false;  // answer client requests here
  // interface.exception_path: frames for our address that we do not answer
  // go to the kernel (FrameAction::kToKernel) instead of being dropped.
  bool exception_path = false;
};

// A configured association's endpoint as a worker holds it: one entry of
// the control plane's published AssocEndpoints (proto/channel_abi.h), IPv4
// only (the frame layer is), with the budget of what it may send us.
struct AssocEntry {
  uint32_t ipv4 = 0;         // the remote, host order
  uint16_t remote_port = 0;  // its port
  uint16_t local_port = 0;   // ours its packets come to
  uint8_t kind = 0;          // proto::kEndpointClient / kEndpointSymmetric
  uint32_t key_id = 0;       // the association's key (auth.keys_file), 0: unkeyed
  int64_t tat_ns = 0;        // the budget's theoretical arrival time (GCRA, ITU-T I.371)
};

// The worker's copy of the published endpoints: a fixed array sorted by
// (address, local port, remote port, kind), searched per mode 1, 2 or 4
// packet (8 steps at 256 entries), never allocating.
//
// The budget per endpoint: a burst of 16, then 16 per second. The fastest
// a configured association polls is minpoll -4 (config: -4..17), one packet
// per 2^-4 s = 16/s, for a client its answers, for a symmetric peer its own
// packets at its poll; the burst of 16 holds an iburst (ntpd and chronyd
// send 4 to 8 at 2 s spacing) and a restart's first exchanges. What comes
// faster is a spoof that found the port: it must not fill the lane.
// A keyed symmetric peer's packet spends its budget only once its MAC
// verified (decide_ntp): a spoofer without the secret spends nothing.
class AssocTable {
 public:
  static constexpr int64_t kBudgetPerS = 16;
  static constexpr int64_t kBudgetBurst = 16;
  static constexpr int64_t kBudgetIntervalNs = 1'000'000'000 / kBudgetPerS;

  // Replaces the entries with the published set (count checked: the
  // segment is another process's memory): IPv4 (v4-mapped) entries of a
  // known kind, one per (address, ports, kind); an endpoint that was in
  // `previous` keeps its budget, a new one starts with a full burst.
  // False, and nothing changed, when count > kMaxAssocEndpoints.
  bool assign(const proto::AssocEndpoints& published, const AssocTable* previous = nullptr);
  void clear() { n_ = 0; }

  // The entry that may send a packet from ipv4:remote_port to our
  // local_port as `kind`, or null.
  AssocEntry* find(uint32_t ipv4, uint16_t remote_port, uint16_t local_port, uint8_t kind) {
    const size_t i = lower_bound(key(ipv4, local_port, remote_port), kind);
    return i < n_ && key_of(entries_[i]) == key(ipv4, local_port, remote_port) && entries_[i].kind == kind
               ? &entries_[i]
               : nullptr;
  }
  // True when some client association has ipv4 as its server.
  bool has_client(uint32_t ipv4) const {
    for (size_t i = lower_bound(key(ipv4, 0, 0), 0); i < n_ && entries_[i].ipv4 == ipv4; i++)
      if (entries_[i].kind == proto::kEndpointClient) return true;
    return false;
  }
  // One packet's worth of e's budget at now_ns (monotonic): false when it
  // has none left.
  static bool take(AssocEntry& e, int64_t now_ns) {
    const int64_t tat = e.tat_ns > now_ns ? e.tat_ns : now_ns;
    if (tat - now_ns > (kBudgetBurst - 1) * kBudgetIntervalNs) return false;
    e.tat_ns = tat + kBudgetIntervalNs;
    return true;
  }

  size_t size() const { return n_; }
  const AssocEntry& operator[](size_t i) const { return entries_[i]; }

 private:
  static uint64_t key(uint32_t ipv4, uint16_t local_port, uint16_t remote_port) {
    return uint64_t{ipv4} << 32 | uint64_t{local_port} << 16 | remote_port;
  }
  static uint64_t key_of(const AssocEntry& e) { return key(e.ipv4, e.local_port, e.remote_port); }
  size_t lower_bound(uint64_t k, uint8_t kind) const {
    size_t lo = 0, hi = n_;
    while (lo < hi) {
      const size_t mid = (lo + hi) / 2;
      const uint64_t km = key_of(entries_[mid]);
      if (km < k || (km == k && entries_[mid].kind < kind))
        lo = mid + 1;
      else
        hi = mid;
    }
    return lo;
  }

  AssocEntry entries_[proto::kMaxAssocEndpoints];
  size_t n_ = 0;
};

// Who gets what ([access], [ratelimit], ntp.answer_unknown_peers), as one
// worker applies it per packet. Built off the hot path (make_policy,
// allocates), then only read; a reload builds a new one and the worker
// switches at a burst boundary. The configured associations are not in it:
// they come from the control plane (AssocTable), so a reload of
// ntp-control alone reaches the dataplane.
struct Policy {
  proto::AccessTable access;          // default: everyone limited
  bool kod = false;                   // access.kod: RATE/DENY kiss-o'-death (NTPv4)
  bool answer_unknown_peers = false;  // ntp.answer_unknown_peers
  RateLimitParams limits;             // [ratelimit], for the worker's RateLimiter
  uint32_t max_replies_per_s = 0;     // ratelimit.max_replies_per_s, the ReplyCap; 0: none
  size_t clients = 0;                 // ratelimit.clients the policy was made for
  bool xleave = false;                // ntp.interleaved the policy was made for (the table's slots)
  // How far a published clock model's rate may be from the TSC's
  // (hwclock::model_rate_bound of clock.max_frequency_ppm and the virtual
  // source's frequency_ppm): a model beyond it is no discipline of ours.
  double max_model_rate_error = 0.2;  // hwclock::kMaxModelRateError
  // auth.keys_file's keys, precomputed (null: none). Any of them answers a
  // request MACed with it, as chronyd answers with any key of its keyfile:
  // the MAC proves the server to the client; auth.trusted_keys says whom
  // we follow, not whom we answer. Shared by the workers' policies and
  // freed with the last one (never under a worker: see publish_policy).
  std::shared_ptr<const crypto::KeyTable> keys;
  // auth.authenticate: a mode 1/2 packet from a peer-class address (not a
  // configured association's: the control plane checks those) reaches the
  // control plane only with a valid MAC of a trusted key, the keys of
  // auth.trusted_keys alone in trusted_keys (null: none).
  bool authenticate = false;
  std::shared_ptr<const crypto::KeyTable> trusted_keys;
  // nts.cookie_keys_file's keys (null: no NTS; NTS requests are answered as
  // plain NTPv4, which an NTS client does not take).
  std::shared_ptr<const crypto::CookieKeyRing> nts_ring;
};

// What the policy works with per packet: the policy, the worker's rate
// limiter, reply cap and association endpoints (null: none; no endpoints:
// nothing forwarded on the associations' lane), and the burst's monotonic
// time (the TSC in ns, immune to steps of the served clock).
struct PolicyEnv {
  const Policy* policy = nullptr;  // null: a default-constructed Policy
  RateLimiter* limiter = nullptr;
  ReplyCap* cap = nullptr;
  AssocTable* assoc = nullptr;
  int64_t now_ns = 0;
  // NTS: the worker's nonce source, and where this frame's seal goes if it
  // is answered with NTS (the worker's slot for its reply). Null: no NTS.
  crypto::NonceSource* nts_rng = nullptr;
  NtsSeal* nts_seal = nullptr;
};

enum class FrameAction : uint8_t {
  kDrop,
  kTransmit,   // the frame was rewritten in place into a reply of `len` bytes; send it on the same port
  kToControl,  // an NTP packet for the control plane: see the l4 fields
  kConsumed,   // handled, nothing to send (an ARP reply we learned from, a conflict not defended again)
  // For our address but not ours to answer (port.exception_path only): the
  // frame, unchanged, to the port's kernel interface. `reason` says what it
  // would have been dropped as. An ARP reply to us is learned first.
  kToKernel,
};

// kArpDefence: the frame was rewritten into our own RFC 5227 announcement
// (broadcast), in answer to a conflicting ARP packet.
// kNtp: a server answer (mode 4); kNtpPassive: the stateless mode-2 answer
// to a symmetric-active packet from a non-peer; both get their transmit
// timestamp stamped. kKodRate/kKodDeny: kiss-o'-death, complete as built.
// kNtsReply: a server answer protected by NTS (stamped, then sealed:
// seal_nts_transmit); kNtsNak: an NTS NAK, complete as built.
enum class ReplyKind : uint8_t {
  kNone, kNtp, kArp, kIcmpEcho, kArpDefence, kNtpPassive, kKodRate, kKodDeny, kNtsReply, kNtsNak
};

struct FrameVerdict {
  FrameAction action = FrameAction::kDrop;
  proto::DropReason reason = proto::DropReason::kNotForUs;  // when kDrop
  ReplyKind kind = ReplyKind::kNone;
  uint16_t len = 0;          // kTransmit: frame length of the reply
  uint16_t ntp_offset = 0;   // kTransmit/kNtp and kToControl: offset of the NTP payload in the frame
  uint16_t ntp_len = 0;      // kToControl: NTP payload bytes
  bool unsynchronized = false;  // kNtp: answered with leap 3
  bool learned_neighbour = false;
  bool arp_conflict = false;  // an ARP packet from another MAC claimed our address (see ArpDefence)
  bool rate_leaked = false;   // answered although over its rate limit (1 in 2^leak)
  bool assoc_lane = false;    // kToControl: from a configured association (its own ring)
  bool assoc_demoted = false; // kToControl: a configured peer's packet over its budget, on the shared lane
  // kTransmit of an NTP reply to an authenticated request: seal_transmit
  // writes its digest after stamp_transmit (null: nothing to seal). auth:
  // what the request's MAC came to, for the counters.
  const crypto::MacKey* mac_key = nullptr;
  uint8_t mac_digest_bytes = 0;
  AuthOutcome auth = AuthOutcome::kNone;
  // kNtsReply, kNtsNak: why (for the counters); kNtsReply is sealed from
  // env.nts_seal by seal_nts_transmit after stamp_transmit.
  NtsReason nts_reason = NtsReason::kOk;
  // An answer of time to a client in the table's interleaved slots: the slot
  // takes the answer's real transmit time once it has left (null: none).
  // tx_fixed_raw: an interleaved answer's (RFC 9769) transmit timestamp, our
  // previous answer's real one, not the stamp at TX (never 0: 0 is basic).
  XleaveSlot* xleave = nullptr;
  uint64_t tx_fixed_raw = 0;
  bool interleaved() const { return tx_fixed_raw != 0; }
  uint32_t src_ip = 0, dst_ip = 0;  // kToControl, host order
  uint16_t src_port = 0, dst_port = 0;
};

// Handles the frame in place. buf holds len bytes of frame; the NTP reply
// may grow the frame by up to 4 bytes (crypto-NAK) so buf must have room for
// len + 4 (an mbuf always has tailroom). rx: the receive timestamp for
// requests in this frame; now_ns: monotonic time (the burst's TSC reading,
// not the served clock, which the control plane may step) for the neighbour
// cache and the ARP defence's rate limit in `neighbours`.
// env: who gets what (access classes, rate limits, KoD, peering,
// forwarding); a default env is the default Policy without a limiter:
// clients served, nothing forwarded to the control plane.
FrameVerdict handle_frame(uint8_t* buf, size_t len, const PortIdentity& port, const ReplyParams& params,
                          proto::NtpTimestamp rx, NeighbourTable& neighbours, int64_t now_ns,
                          const PolicyEnv& env = {});

// True when the reply kind's transmit timestamp is to be stamped at TX.
inline bool stamps_transmit(ReplyKind k) {
  return k == ReplyKind::kNtp || k == ReplyKind::kNtpPassive || k == ReplyKind::kNtsReply;
}

// Writes the transmit timestamp of an NTP reply made by handle_frame (at
// frame offset ntp_offset) and folds it into the UDP checksum, which
// handle_frame computed with the transmit timestamp zero.
void stamp_transmit(uint8_t* frame, uint16_t ntp_offset, proto::NtpTimestamp tx);

// Writes the digest of the MAC field at ntp + covered (its key ID already
// there, the digest's bytes counted as zero in the UDP checksum) over the
// NTP payload's first `covered` bytes, and folds it into the UDP checksum:
// after stamp_transmit, as the MAC covers the transmit timestamp (RFC 5905
// section 7.3). covered: 48 for our replies (verdict.mac_key), the payload
// for a control-plane packet; a multiple of 4. One MAC, no allocation.
void seal_transmit(uint8_t* frame, uint16_t ntp_offset, size_t covered, const crypto::MacKey& key,
                   uint8_t digest_bytes);

// Seals an NTS reply made by handle_frame (kNtsReply; the ciphertext's
// bytes counted as zero in the UDP checksum) after stamp_transmit, as the
// seal covers the transmit timestamp, and folds the ciphertext into the UDP
// checksum. Wipes seal.
void seal_nts_transmit(uint8_t* frame, uint16_t ntp_offset, NtsSeal& seal);

// Builds an IPv4/UDP frame around payload (already at buf + kEthHeaderLen +
// 20 + 8) for the control plane's packets; returns the frame length.
size_t build_udp_frame(uint8_t* buf, const uint8_t* src_mac, const uint8_t* dst_mac, uint32_t src_ip, uint32_t dst_ip,
                       uint16_t src_port, uint16_t dst_port, size_t payload_len);

// Builds a broadcast ARP request for target_ip (RFC 826) into buf (at least
// 42 bytes); returns the frame length. target_ip == src_ip makes it a
// gratuitous ARP (RFC 5227 announcement).
size_t build_arp_request(uint8_t* buf, const uint8_t* src_mac, uint32_t src_ip, uint32_t target_ip);

// The next hop for dst from a port with this identity and gateway (0: none):
// dst itself when on-link, the gateway otherwise, 0 when unreachable.
uint32_t next_hop(const PortIdentity& port, uint32_t gateway, uint32_t dst);

// One line for the operator about an ARP conflict record, e.g.
// "ARP conflict: 10.99.0.1 claimed by 02:66:77:88:99:aa (3 conflicts, 1
// defence so far)"; writes at most cap bytes (NUL included), returns the
// length written without the NUL. Not for the hot path (snprintf).
size_t format_arp_conflict(const ArpConflictRecord& r, char* out, size_t cap);

}  // namespace ntp::dp
