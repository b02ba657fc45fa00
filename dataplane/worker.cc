#include "dataplane/worker.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <pwd.h>

#include "crypto/keys.h"
#include "crypto/nts_keys.h"
#include "dataplane/worker_setup.h"
#include "hwclock/clock_model.h"
#include "dataplane/inet.h"
#include "hwclock/tsc.h"

namespace ntp::dp {

std::atomic<bool> g_stop{false};

namespace {

constexpr unsigned kMaxBurst = kMaxWorkerBurst;
// How often a worker reads its exception paths' TAPs (a system call each):
// 50 us adds at most that to the kernel's packets, and costs no NTP packet.
constexpr uint64_t kExceptionPollNs = 50'000;
// How many frames ahead of its turn a source's limiter bucket is asked for
// (about 8 x 60 ns, more than a DRAM miss; see worker_poll_once).
constexpr uint16_t kLimiterLead = 8;
constexpr unsigned kIdlePollsBeforeSleep = 64;

inline void bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
  // Only this worker writes its counters: a relaxed load and store, no
  // locked instruction.
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// One frame's worth of the exception path's budget at now_ns: a burst of
// kExceptionBurst, then exception_max_pps (GCRA, as AssocTable::take).
constexpr int64_t kExceptionBurst = 32;
inline bool exception_take(WorkerPort& p, int64_t now_ns) {
  const int64_t tat = p.exc_tat_ns > now_ns ? p.exc_tat_ns : now_ns;
  if (tat - now_ns > (kExceptionBurst - 1) * p.exc_interval_ns) return false;
  p.exc_tat_ns = tat + p.exc_interval_ns;
  return true;
}

inline void count_drop(proto::WorkerCounters& c, proto::DropReason reason, uint64_t n = 1) {
  bump(c.drops[static_cast<size_t>(reason)], n);
}

}  // namespace

void refresh_published(WorkerContext& ctx) {
  proto::SegmentHeader& seg = *ctx.segment;
  proto::ClockModelData m;
  if (!seg.clock_model.try_load(m, 4)) {
    bump(ctx.counters->state_read_retries);
  } else if (std::memcmp(&m, &ctx.model, sizeof m) == 0) [[likely]] {
    // The model already served: checked when it came (the control plane
    // publishes a new one about once a second, bursts come far more often).
  } else if (hwclock::model_plausible(m, static_cast<double>(ctx.tsc_hz),
                                      ctx.active_policy ? ctx.active_policy->max_model_rate_error
                                                        : hwclock::kMaxModelRateError)) {
    ctx.model = m;
  } else if (std::memcmp(&m, &ctx.refused_model, sizeof m) != 0) {
    // Another process wrote it: a model that is no clock discipline (rate
    // off nominal, no valid flag, an absurd epoch) is not served from; the
    // last good one stays, as after a torn read. Counted once per model.
    ctx.refused_model = m;
    bump(ctx.counters->model_refused);
  }
  proto::ServerStateData s;
  if (seg.server_state.try_load(s, 4)) {
    ctx.state = s;
    ctx.have_state = s.published_ns != 0;
  } else {
    bump(ctx.counters->state_read_retries);
  }
}

namespace {

// Follows the control plane's association endpoints: one load of the
// generation per poll; a new set is copied and sorted (256 entries at
// most) into the table not in use, which then becomes the one in use.
inline void refresh_assoc(WorkerContext& ctx) {
  const proto::Seqlock<proto::AssocEndpoints>& pub = ctx.segment->assoc_endpoints;
  const uint64_t gen = pub.generation();
  if (gen == ctx.assoc_generation) [[likely]] return;
  if (!pub.try_load(ctx.assoc_published, 4)) {
    bump(ctx.counters->state_read_retries);  // a write in progress: the next poll tries again
    return;
  }
  ctx.assoc_generation = gen;
  AssocTable& next = ctx.assoc_tables[ctx.assoc_active ^ 1];
  if (next.assign(ctx.assoc_published, &ctx.assoc_tables[ctx.assoc_active]))
    ctx.assoc_active ^= 1;
  else
    bump(ctx.counters->assoc_endpoints_refused);
}

struct RxTime {
  int64_t ns = 0;  // on the clock model
  proto::NtpTimestamp ntp;
};

// What every packet of one burst shares: the software receive time (the TSC
// when rx_burst returned), the reply parameters and the port's NIC map.
struct BurstClock {
  uint64_t raw = 0;
  int64_t mono_ns = 0;  // raw in ns: the neighbour cache's and the ARP defence's time, immune to model steps
  RxTime sw;
  ReplyParams params;
  bool hw = false;  // the port has NIC timestamps and a map
};

// What one burst did, added to the shared counters once per burst.
struct BurstTally {
  uint64_t ntp_replies = 0, unsync = 0, arp = 0, icmp = 0, learned = 0, arp_conflicts = 0, arp_defences = 0;
  uint64_t passive = 0, kod_rate = 0, kod_deny = 0, leaked = 0;
  uint64_t auth_ok = 0, auth_unknown_key = 0, auth_bad_mac = 0;
  uint64_t nts_replies = 0, nts_naks = 0, nts_bad_cookie = 0, nts_stale_key = 0, nts_bad_auth = 0;
  uint64_t interleaved = 0;
  uint64_t hw = 0, hw_rejected = 0, hw_minus_sw_max_ns = 0;
  int64_t hw_minus_sw_sum_ns = 0;
};

// The replies of one burst, with where each one's transmit timestamp goes
// and, for an authenticated one, the key its MAC is sealed with after the
// stamp; mac_budget_ns: what those MACs cost (mac_cost_ns), added to the
// stamp so it says when the burst leaves, not when its MACs began.
struct TxBurst {
  rte_mbuf* m[kMaxBurst];
  uint16_t stamp_at[kMaxBurst];  // NTP payload offset, 0: nothing to stamp
  const crypto::MacKey* mac_key[kMaxBurst];  // valid where stamp_at is; null: no MAC
  uint8_t mac_bytes[kMaxBurst];
  bool nts[kMaxBurst];  // valid where stamp_at is: sealed from WorkerContext::nts_seals[i]
  // Valid where stamp_at is: an interleaved answer's transmit timestamp
  // (0: stamp the burst's), and the client slot that takes the real
  // transmit time once the burst has left (null: none).
  uint64_t tx_fixed_raw[kMaxBurst];
  XleaveSlot* xleave[kMaxBurst];
  unsigned n_xleave = 0;  // answers with a slot
  int64_t mac_budget_ns = 0;
  unsigned n = 0;
};

inline int64_t tsc_to_mono_ns(const WorkerContext& ctx, uint64_t raw) {
  return ctx.tsc_hz ? static_cast<int64_t>(static_cast<double>(raw) * 1e9 / static_cast<double>(ctx.tsc_hz)) : 0;
}

inline BurstClock begin_burst(WorkerContext& ctx, WorkerPort& port) {
  BurstClock b;
  b.raw = hwclock::read_tsc();
  b.mono_ns = tsc_to_mono_ns(ctx, b.raw);
  refresh_published(ctx);
  b.sw.ns = hwclock::model_to_ns(ctx.model, b.raw);
  b.sw.ntp = proto::ntp_from_unix_ns(b.sw.ns);
  b.params = reply_params(ctx.state, ctx.have_state, b.sw.ns);
  b.hw = port.nic_map != nullptr;
  if (b.hw) {
    port.nic_map->try_load(port.cached_map, 4);
    // A mapping the main lcore stopped refreshing would convert a wrapped
    // counter wrongly: then every packet counts as rejected.
    if (!hwclock::nic_map_fresh(port.cached_map, b.raw)) port.cached_map.valid = 0;
  }
  return b;
}

// The packet's receive time: its NIC timestamp mapped NIC clock -> TSC ->
// model where the port gives one, else the burst's software time.
inline RxTime packet_rx_time(const WorkerContext& ctx, const WorkerPort& port, const BurstClock& burst,
                             const rte_mbuf* m, BurstTally& t) {
  if (!burst.hw || !(m->ol_flags & port.ts_dynflag)) return burst.sw;
  const uint64_t nic_raw = *RTE_MBUF_DYNFIELD(m, port.ts_dynfield_offset, const rte_mbuf_timestamp_t*);
  uint64_t tsc;
  if (!hwclock::nic_to_tsc(port.cached_map, nic_raw, tsc)) {
    t.hw_rejected++;
    return burst.sw;
  }
  RxTime r;
  r.ns = hwclock::model_to_ns(ctx.model, tsc);
  r.ntp = proto::ntp_from_unix_ns(r.ns);
  const int64_t d = r.ns - burst.sw.ns;
  t.hw_minus_sw_sum_ns += d;
  t.hw_minus_sw_max_ns = std::max<uint64_t>(t.hw_minus_sw_max_ns, static_cast<uint64_t>(d < 0 ? -d : d));
  t.hw++;
  return r;
}

// Where an IPv4 (no options) UDP datagram to port 123 begins in the frame,
// behind a VLAN tag or none: a frame whose source the rate limiter may look
// up (0: none).
inline uint32_t limited_ip_at(const uint8_t* d, uint32_t len) {
  if (len < kEthHeaderLen) return 0;
  const L2Header l2 = read_l2(d, len);
  if (l2.ethertype != kEtherTypeIpv4 || l2.truncated || len < l2.len + kIpv4MinHeaderLen + kUdpHeaderLen) return 0;
  const uint8_t* ip = d + l2.len;
  return ip[0] == 0x45 && ip[9] == kIpProtoUdp && proto::load_be16(ip + kIpv4MinHeaderLen + 2) == proto::kNtpPort
             ? static_cast<uint32_t>(l2.len)
             : 0;
}

// Only for what may meet the limiter: UDP to port 123 in a plain IPv4
// header, tagged (VLAN interfaces) or not (the rare one with options goes
// without a prefetch); an ARP or a flood to other ports costs no line of
// the table. Without it, tagged requests ran 70 ns slower in bench_worker
// --policy --vlan (every bucket a cache miss).
inline void prefetch_limiter(const RateLimiter& limiter, const rte_mbuf* m) {
  const uint8_t* d = rte_pktmbuf_mtod(m, const uint8_t*);
  if (const uint32_t at = limited_ip_at(d, m->data_len)) limiter.prefetch_v4(proto::load_be32(d + at + 12));
}

inline void queue_reply(TxBurst& tx, rte_mbuf* m, const FrameVerdict& v, BurstTally& t) {
  m->data_len = v.len;
  m->pkt_len = v.len;
  tx.stamp_at[tx.n] = stamps_transmit(v.kind) ? v.ntp_offset : 0;
  tx.mac_key[tx.n] = v.mac_key;
  tx.mac_bytes[tx.n] = v.mac_digest_bytes;
  if (v.mac_key) [[unlikely]]
    tx.mac_budget_ns += mac_cost_ns(v.mac_key->type);
  tx.tx_fixed_raw[tx.n] = v.tx_fixed_raw;
  tx.xleave[tx.n] = v.xleave;
  tx.n_xleave += v.xleave != nullptr;
  t.interleaved += v.interleaved();
  tx.nts[tx.n] = v.kind == ReplyKind::kNtsReply;
  if (tx.nts[tx.n]) [[unlikely]]
    tx.mac_budget_ns += kNtsSealCostNs;
  tx.m[tx.n++] = m;
  t.nts_replies += v.kind == ReplyKind::kNtsReply;
  t.nts_naks += v.kind == ReplyKind::kNtsNak;
  t.nts_bad_cookie += v.nts_reason == NtsReason::kBadCookie;
  t.nts_stale_key += v.nts_reason == NtsReason::kStaleKey;
  t.nts_bad_auth += v.nts_reason == NtsReason::kBadAuth;
  t.auth_ok += v.auth == AuthOutcome::kOk;
  t.auth_unknown_key += v.auth == AuthOutcome::kUnknownKey;
  t.auth_bad_mac += v.auth == AuthOutcome::kBadMac;
  t.ntp_replies += v.kind == ReplyKind::kNtp || v.kind == ReplyKind::kNtsReply;
  t.unsync += stamps_transmit(v.kind) && v.unsynchronized;
  t.passive += v.kind == ReplyKind::kNtpPassive;
  t.kod_rate += v.kind == ReplyKind::kKodRate;
  t.kod_deny += v.kind == ReplyKind::kKodDeny;
  t.leaked += v.rate_leaked;
  t.arp += v.kind == ReplyKind::kArp;
  t.icmp += v.kind == ReplyKind::kIcmpEcho;
  t.arp_defences += v.kind == ReplyKind::kArpDefence;
}

inline void to_control(WorkerContext& ctx, const WorkerPort& port, const uint8_t* frame, const FrameVerdict& v,
                       int64_t rx_ns, uint64_t rx_raw) {
  proto::RxPacket pkt;
  pkt.rx_time_ns = rx_ns;
  pkt.rx_raw = rx_raw;
  pkt.src_ip = v.src_ip;
  pkt.dst_ip = v.dst_ip;
  pkt.src_port = v.src_port;
  pkt.dst_port = v.dst_port;
  pkt.port = port.index;
  const size_t n = v.ntp_len < proto::kMaxRingPayload ? v.ntp_len : proto::kMaxRingPayload;
  pkt.len = static_cast<uint16_t>(n);
  std::memcpy(pkt.payload, frame + v.ntp_offset, n);
  // Configured associations have a lane of their own: a flood from
  // peer-class addresses fills the other one, never this.
  rte_ring* ring = v.assoc_lane && ctx.to_control_assoc ? ctx.to_control_assoc : ctx.to_control;
  if (v.assoc_demoted) [[unlikely]]
    bump(ctx.counters->assoc_demoted);
  if (rte_ring_enqueue_elem(ring, &pkt, sizeof pkt) == 0)
    bump(ctx.counters->ntp_to_control);
  else
    count_drop(*ctx.counters, proto::DropReason::kControlRingFull);
}

// The real transmit times of a burst's answers, into their clients' slots.
[[gnu::noinline]] void keep_transmit_times(WorkerContext& ctx, const WorkerPort& port, const TxBurst& tx, uint16_t sent) {
  const uint64_t sw_raw =
      proto::ntp_from_unix_ns(hwclock::model_to_ns(ctx.model, hwclock::read_tsc()) + port.tx_compensation_ns).raw();
  const TxStamps* nic = port.tx_stamps && port.cached_map.valid && port.tx_stamps->n >= sent ? port.tx_stamps : nullptr;
  uint64_t hw = 0, sw = 0;
  for (unsigned i = 0; i < tx.n; i++) {
    if (!tx.stamp_at[i] || !tx.xleave[i]) continue;
    uint64_t raw = 0;  // refused by the queue: left no time
    uint64_t tsc;
    if (i >= sent) {
    } else if (nic && hwclock::nic_to_tsc(port.cached_map, nic->ticks[i], tsc)) {
      raw = proto::ntp_from_unix_ns(hwclock::model_to_ns(ctx.model, tsc)).raw();
      hw++;
    } else {
      raw = sw_raw;
      sw++;
    }
    tx.xleave[i]->tx_raw = raw;
  }
  proto::PortTimestampCounters& ts = ctx.counters->timestamps[port.index];
  if (hw) bump(ts.tx_hardware, hw);
  if (sw) bump(ts.tx_software, sw);
}

// Stamps the transmit time as late as software can take it, just before
// the burst goes to the NIC, then seals the authenticated replies (their
// MAC covers the stamp, RFC 5905 section 7.3; the stamp is ahead by what
// the MACs cost, so it still predicts the send), and sends; what the queue
// refuses is dropped. An interleaved answer carries the real transmit time
// of the previous answer instead; the clients' slots take this burst's: the
// NIC's transmit timestamp of each frame where the port reports one, else
// the TSC once tx_burst has returned (what went out has left the software)
// plus tx_compensation_ns; an answer the queue refused left no time (0).
inline void transmit_burst(WorkerContext& ctx, const WorkerPort& port, TxBurst& tx) {
  if (tx.n == 0) return;
  proto::WorkerCounters& c = *ctx.counters;
  const proto::NtpTimestamp tx_ts = proto::ntp_from_unix_ns(
      hwclock::model_to_ns(ctx.model, hwclock::read_tsc()) + port.tx_compensation_ns + tx.mac_budget_ns);
  for (unsigned i = 0; i < tx.n; i++) {
    if (!tx.stamp_at[i]) continue;
    uint8_t* frame = rte_pktmbuf_mtod(tx.m[i], uint8_t*);
    stamp_transmit(frame, tx.stamp_at[i], tx.tx_fixed_raw[i] ? proto::NtpTimestamp::from_raw(tx.tx_fixed_raw[i]) : tx_ts);
    if (tx.mac_key[i]) [[unlikely]]
      seal_transmit(frame, tx.stamp_at[i], proto::kHeaderLen, *tx.mac_key[i], tx.mac_bytes[i]);
    if (tx.nts[i]) [[unlikely]]
      seal_nts_transmit(frame, tx.stamp_at[i], ctx.nts_seals[i]);
  }
  const uint16_t sent = rte_eth_tx_burst(port.port_id, port.queue_id, tx.m, static_cast<uint16_t>(tx.n));
  if (tx.n_xleave != 0) [[unlikely]]
    keep_transmit_times(ctx, port, tx, sent);
  if (sent < tx.n) {
    count_drop(c, proto::DropReason::kTxFull, tx.n - sent);
    rte_pktmbuf_free_bulk(tx.m + sent, tx.n - sent);
  }
  bump(c.tx_packets, sent);
}

inline void add_tally(proto::WorkerCounters& c, const WorkerPort& port, unsigned received, const BurstTally& t) {
  bump(c.rx_packets, received);
  if (t.ntp_replies) bump(c.ntp_requests, t.ntp_replies);
  if (t.unsync) bump(c.ntp_unsync_replies, t.unsync);
  if (t.arp) bump(c.arp_replies, t.arp);
  if (t.icmp) bump(c.icmp_echo_replies, t.icmp);
  if (t.learned) bump(c.arp_learned, t.learned);
  if (t.arp_conflicts) bump(c.arp_conflicts, t.arp_conflicts);
  if (t.arp_defences) bump(c.arp_defences, t.arp_defences);
  if (t.passive) bump(c.ntp_stateless_peer_replies, t.passive);
  if (t.kod_rate) bump(c.kod_rate, t.kod_rate);
  if (t.kod_deny) bump(c.kod_deny, t.kod_deny);
  if (t.leaked) bump(c.rate_leaked, t.leaked);
  if (t.auth_ok) bump(c.auth_replies, t.auth_ok);
  if (t.auth_unknown_key) bump(c.auth_unknown_key, t.auth_unknown_key);
  if (t.auth_bad_mac) bump(c.auth_bad_mac, t.auth_bad_mac);
  if (t.nts_replies) bump(c.nts_replies, t.nts_replies);
  if (t.nts_naks) bump(c.nts_naks, t.nts_naks);
  if (t.nts_bad_cookie) bump(c.nts_bad_cookie, t.nts_bad_cookie);
  if (t.nts_stale_key) bump(c.nts_stale_key, t.nts_stale_key);
  if (t.nts_bad_auth) bump(c.nts_bad_auth, t.nts_bad_auth);
  if (t.interleaved) bump(c.ntp_interleaved_replies, t.interleaved);
  proto::PortTimestampCounters& ts = c.timestamps[port.index];
  bump(ts.software, received - t.hw);
  if (t.hw) {
    bump(ts.hardware, t.hw);
    ts.hw_minus_sw_sum_ns.store(ts.hw_minus_sw_sum_ns.load(std::memory_order_relaxed) + t.hw_minus_sw_sum_ns,
                                std::memory_order_relaxed);
    if (t.hw_minus_sw_max_ns > ts.hw_minus_sw_max_ns.load(std::memory_order_relaxed))
      ts.hw_minus_sw_max_ns.store(t.hw_minus_sw_max_ns, std::memory_order_relaxed);
  }
  if (t.hw_rejected) bump(ts.rejected, t.hw_rejected);
}

// Copies port p's conflict record where the main lcore reads it: a
// seqlock store (no syscall), only after a burst that had a conflict.
void publish_arp_conflict(WorkerContext& ctx, unsigned p) {
  if (const ArpConflictRecord* r = ctx.neighbours.defence().find(ctx.ports[p].identity.ipv4))
    ctx.arp_conflicts[p].store(*r);
}

// The policy of this poll: one atomic load; a new one hands its limits to
// the worker's own limiter and reply cap (which only this thread touches).
inline void adopt_policy(WorkerContext& ctx) {
  const Policy* p = ctx.policy.load(std::memory_order_seq_cst);
  if (p == ctx.active_policy) [[likely]]
    return;
  ctx.active_policy = p;
  if (!p) return;
  if (ctx.limiter) ctx.limiter->set_params(p->limits);
  ctx.reply_cap.set_rate(p->max_replies_per_s);
}

// About once a second (TSC, no syscall): the limiter's table and top
// limited sources where the control plane reads them, and its insert and
// eviction totals into the counters (the limiter keeps them: a store).
inline void publish_limiter(WorkerContext& ctx, uint64_t now_raw) {
  if (!ctx.limiter || ctx.tsc_hz == 0 || now_raw - ctx.limiter_published_raw < ctx.tsc_hz) return;
  ctx.limiter_published_raw = now_raw;
  proto::LimiterStatus st{};
  st.capacity = ctx.limiter->capacity();
  st.fill = ctx.limiter->fill();
  st.memory_bytes = ctx.limiter->memory_bytes();
  ctx.limiter->top_limited(st);
  if (ctx.worker_id < proto::kMaxWorkers) ctx.segment->limiters[ctx.worker_id].store(st);
}

inline void tally_limiter(WorkerContext& ctx) {
  if (!ctx.limiter) return;
  ctx.counters->ratelimit_inserts.store(ctx.limiter->inserts(), std::memory_order_relaxed);
  ctx.counters->ratelimit_evictions.store(ctx.limiter->evictions(), std::memory_order_relaxed);
}

}  // namespace

void publish_policy(WorkerContext& ctx, std::unique_ptr<Policy> p) {
  const Policy* next = p.get();
  std::unique_ptr<Policy> old = std::move(ctx.policy_storage);
  ctx.policy_storage = std::move(p);
  ctx.policy.store(next, std::memory_order_seq_cst);
  if (old) {
    // The worker may have loaded `old` just before the store and still be
    // in that poll when it bumps the epoch once more: two bumps from now,
    // its next load (after the first) has seen `next`.
    const uint64_t e = ctx.epoch.load(std::memory_order_seq_cst);
    ctx.retired.push_back({std::move(old), e + 2});
  }
}

size_t collect_retired(WorkerContext& ctx) {
  const uint64_t e = ctx.epoch.load(std::memory_order_seq_cst);
  std::erase_if(ctx.retired, [e](const WorkerContext::Retired& r) { return e >= r.free_after; });
  return ctx.retired.size();
}

// Frames for the kernel (kToKernel, within budget) to the port's TAP.
void to_exception_path(proto::WorkerCounters& c, WorkerPort& port, rte_mbuf** m, uint16_t n) {
  const uint16_t sent = rte_eth_tx_burst(port.exc_port_id, port.exc_queue, m, n);
  bump(c.exception_to_kernel, sent);
  if (sent < n) {
    count_drop(c, proto::DropReason::kExceptionFull, n - sent);
    for (uint16_t i = sent; i < n; i++) rte_pktmbuf_free(m[i]);
  }
}

// What the kernel sent on the exception paths this worker reads: out
// through their ports as it is (the TAP has the port's MAC and address).
unsigned service_exception_rx(WorkerContext& ctx) {
  proto::WorkerCounters& c = *ctx.counters;
  unsigned moved = 0;
  for (unsigned p = 0; p < ctx.n_ports; p++) {
    WorkerPort& port = ctx.ports[p];
    if (!port.exc_reads) continue;
    rte_mbuf* m[kMaxBurst];
    const uint16_t n = rte_eth_rx_burst(port.exc_port_id, 0, m, kMaxBurst);
    if (n == 0) continue;
    const uint16_t sent = rte_eth_tx_burst(port.port_id, port.queue_id, m, n);
    bump(c.exception_from_kernel, sent);
    bump(c.tx_packets, sent);
    if (sent < n) {
      count_drop(c, proto::DropReason::kExceptionFull, n - sent);
      for (uint16_t i = sent; i < n; i++) rte_pktmbuf_free(m[i]);
    }
    moved += n;
  }
  return moved;
}

// The interface a frame of this port is for: its VLAN's, else the port's
// own (whose handle_frame drops it as vlan_not_ours). One interface per
// port: no look.
inline const WorkerPort& interface_of(const WorkerContext& ctx, const WorkerPort& port, const uint8_t* d,
                                      uint32_t len) {
  if (port.n_members <= 1 || len < kEthHeaderLen) [[likely]]
    return port;
  const uint16_t vlan = read_l2(d, len).vlan;
  for (unsigned k = 0; k < port.n_members; k++)
    if (const WorkerPort& m = ctx.ports[port.members[k]]; m.identity.vlan == vlan) return m;
  return port;
}

// The shape of DPDK's l3fwd main loop: per port, receive a burst, then per
// frame its receive time and one decision, then transmit the replies.
unsigned worker_poll_once(WorkerContext& ctx) {
  proto::WorkerCounters& c = *ctx.counters;
  unsigned received = 0;
  adopt_policy(ctx);
  if (ctx.segment) refresh_assoc(ctx);
  PolicyEnv env;
  env.policy = ctx.active_policy;
  env.limiter = ctx.limiter.get();
  env.assoc = &ctx.assoc();
  // No cap configured (0): no call per answer.
  env.cap = ctx.active_policy && ctx.active_policy->max_replies_per_s ? &ctx.reply_cap : nullptr;
  // NTS only with cookie keys and the worker's seal slots.
  const bool nts = ctx.active_policy && ctx.active_policy->nts_ring && ctx.nts_rng && ctx.nts_seals;
  env.nts_rng = nts ? ctx.nts_rng.get() : nullptr;
  for (unsigned p = 0; p < ctx.n_ports; p++) {
    WorkerPort& port = ctx.ports[p];
    if (!port.polls) continue;  // a VLAN of a port polled for it
    rte_mbuf* rx[kMaxBurst];
    const uint16_t n = rte_eth_rx_burst(port.port_id, port.queue_id, rx, static_cast<uint16_t>(ctx.burst_size));
    if (n == 0) continue;
    received += n;
    const BurstClock burst = begin_burst(ctx, port);
    env.now_ns = burst.mono_ns;
    // The limiter's table is far larger than the caches (16 MiB per 2^20
    // clients): each source's bucket is asked for kLimiterLead frames ahead
    // of its turn, so its miss overlaps the frames before it (measured
    // ~7 ns/packet less than asking for the whole burst up front).
    if (ctx.limiter)
      for (uint16_t i = 0; i < n && i < kLimiterLead; i++) prefetch_limiter(*ctx.limiter, rx[i]);
    BurstTally tally;
    TxBurst tx;
    rte_mbuf* to_kernel[kMaxBurst];
    uint16_t n_kernel = 0;
    for (uint16_t i = 0; i < n; i++) {
      rte_mbuf* m = rx[i];
      if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(rx[i + 1], void*));
      if (ctx.limiter && i + kLimiterLead < n) prefetch_limiter(*ctx.limiter, rx[i + kLimiterLead]);
      // Scatter RX is off: a chained mbuf is a frame larger than the buffer.
      if (m->nb_segs != 1) {
        count_drop(c, proto::DropReason::kOversized);
        rte_pktmbuf_free(m);
        continue;
      }
      const RxTime t = packet_rx_time(ctx, port, burst, m, tally);
      uint8_t* data = rte_pktmbuf_mtod(m, uint8_t*);
      env.nts_seal = nts ? &ctx.nts_seals[tx.n] : nullptr;  // the slot of the reply it may become
      const WorkerPort& iface = interface_of(ctx, port, data, m->data_len);
      const FrameVerdict v = handle_frame(data, m->data_len, iface.identity, burst.params, t.ntp, ctx.neighbours,
                                          burst.mono_ns, env);
      tally.learned += v.learned_neighbour;
      tally.arp_conflicts += v.arp_conflict;
      switch (v.action) {
        case FrameAction::kTransmit:
          queue_reply(tx, m, v, tally);
          break;
        case FrameAction::kToControl:
          to_control(ctx, iface, data, v, t.ns, burst.raw);
          rte_pktmbuf_free(m);
          break;
        case FrameAction::kConsumed:
          rte_pktmbuf_free(m);
          break;
        case FrameAction::kToKernel:
          if (port.exc_port_id != UINT16_MAX && exception_take(port, burst.mono_ns)) {
            to_kernel[n_kernel++] = m;
          } else {
            count_drop(c, proto::DropReason::kExceptionRate);
            rte_pktmbuf_free(m);
          }
          break;
        case FrameAction::kDrop:
          count_drop(c, v.reason);
          rte_pktmbuf_free(m);
          break;
      }
    }
    transmit_burst(ctx, port, tx);
    if (n_kernel) to_exception_path(c, port, to_kernel, n_kernel);
    add_tally(c, port, n, tally);
    tally_limiter(ctx);
    if (tally.arp_conflicts)
      for (unsigned k = 0; k < port.n_members; k++) publish_arp_conflict(ctx, port.members[k]);
    publish_limiter(ctx, burst.raw);
  }
  // Past a burst boundary: nothing of this poll uses the policy any more.
  ctx.epoch.store(ctx.epoch.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
  return received;
}

namespace {

constexpr double kArpRetryS = 1.0;    // ask again after
constexpr double kArpGiveUpS = 3.0;   // drop a packet whose next hop never answered
constexpr int64_t kNeighbourMaxAgeNs = 1200LL * 1000000000;  // like the kernel's gc_stale: 20 min

// Tells the control plane when its packet left (status 0), or why it did
// not (the drop reason + 1). Cookie 0: nobody asked.
void report(WorkerContext& ctx, uint64_t cookie, int64_t tx_ns, uint64_t tx_raw, uint32_t status) {
  proto::TxReport rep{};
  rep.cookie = cookie;
  rep.tx_time_ns = tx_ns;
  rep.tx_raw = tx_raw;
  rep.status = status;
  if (cookie != 0) rte_ring_enqueue_elem(ctx.tx_reports, &rep, sizeof rep);  // full: the control plane times out
}

// A control-plane packet that will not be sent: freed (m may be null),
// counted and reported.
void refuse(WorkerContext& ctx, rte_mbuf* m, uint64_t cookie, proto::DropReason reason) {
  if (m) rte_pktmbuf_free(m);
  count_drop(*ctx.counters, reason);
  report(ctx, cookie, 0, 0, static_cast<uint32_t>(reason) + 1);
}

// A VLAN interface's frame gets its 802.1Q tag (DPDK's software insert,
// into the headroom). False: it could not be (the frame is freed).
bool tag_for(const WorkerPort& port, rte_mbuf*& m) {
  if (port.identity.vlan == 0) return true;
  m->vlan_tci = port.identity.vlan;
  if (rte_vlan_insert(&m) == 0) return true;
  rte_pktmbuf_free(m);
  return false;
}

void send_arp_request(WorkerContext& ctx, const WorkerPort& port, uint32_t target) {
  rte_mbuf* m = rte_pktmbuf_alloc(ctx.pool);
  if (!m) return;
  const size_t len = build_arp_request(rte_pktmbuf_mtod(m, uint8_t*), port.identity.mac, port.identity.ipv4, target);
  m->data_len = m->pkt_len = static_cast<uint32_t>(len);
  if (!tag_for(port, m)) return;
  if (rte_eth_tx_burst(port.port_id, port.queue_id, &m, 1) != 1) rte_pktmbuf_free(m);
}

// Sends a built frame to `mac`, stamping the transmit timestamp just
// before it goes, and reports the time.
void send_now(WorkerContext& ctx, const PendingTx& p, const uint8_t* mac) {
  const WorkerPort& port = ctx.ports[p.port];
  // kTxMac: the key as the policy of this poll has it, checked again (a
  // reload while the packet waited for ARP may have removed it or changed
  // its type); its MAC covers the stamp.
  const crypto::MacKey* key = nullptr;
  if (p.mac_key_id != 0) {
    const crypto::KeyTable* keys = ctx.active_policy ? ctx.active_policy->keys.get() : nullptr;
    key = mac_key_at_send(p, keys, p.m->data_len, size_t{p.m->data_len} + rte_pktmbuf_tailroom(p.m));
    if (key == nullptr) return refuse(ctx, p.m, p.cookie, proto::DropReason::kBadControlPacket);
  }
  rte_mbuf* m = p.m;
  if (!tag_for(port, m)) return refuse(ctx, nullptr, p.cookie, proto::DropReason::kBadControlPacket);
  uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
  std::memcpy(frame, mac, 6);
  const uint64_t tx_raw = hwclock::read_tsc();
  const uint16_t ntp_at = static_cast<uint16_t>(kEthHeaderLen + (port.identity.vlan ? kVlanTagLen : 0) +
                                                kIpv4MinHeaderLen + kUdpHeaderLen);
  const int64_t tx_ns =
      hwclock::model_to_ns(ctx.model, tx_raw) + port.tx_compensation_ns + (key ? mac_cost_ns(key->type) : 0);
  if (p.stamp) stamp_transmit(frame, ntp_at, proto::ntp_from_unix_ns(tx_ns));
  if (key) seal_transmit(frame, ntp_at, p.mac_covered, *key, p.mac_digest_bytes);
  if (rte_eth_tx_burst(port.port_id, port.queue_id, &m, 1) == 1) {
    bump(ctx.counters->control_tx);
    report(ctx, p.cookie, tx_ns, tx_raw, 0);
  } else {
    refuse(ctx, m, p.cookie, proto::DropReason::kTxFull);
  }
}

}  // namespace

bool mac_digest_allowed(const crypto::MacKey& key, size_t n) {
  return n == key.digest_bytes || (key.digest_bytes > crypto::kV4DigestBytes && n == crypto::kV4DigestBytes);
}

const crypto::MacKey* mac_key_at_send(const PendingTx& p, const crypto::KeyTable* keys, size_t frame_len,
                                      size_t room) {
  const crypto::MacKey* key = keys ? keys->find(p.mac_key_id) : nullptr;
  if (key == nullptr || !mac_digest_allowed(*key, p.mac_digest_bytes)) return nullptr;
  if (p.mac_covered < proto::kHeaderLen || p.mac_covered > proto::kMaxRingPayload || p.mac_covered % 4 != 0)
    return nullptr;
  const size_t sealed =
      kEthHeaderLen + kIpv4MinHeaderLen + kUdpHeaderLen + size_t{p.mac_covered} + 4 + p.mac_digest_bytes;
  return sealed == frame_len && sealed <= room ? key : nullptr;
}

bool control_mac_valid(const proto::TxPacket& t, const crypto::KeyTable* keys) {
  const crypto::MacKey* key = keys ? keys->find(t.key_id) : nullptr;
  // The full digest, or the NTPv4 truncation of a longer one (mac.h).
  if (key == nullptr || !mac_digest_allowed(*key, t.mac_digest_bytes)) return false;
  // After the header and any extension fields, in whole words (the
  // checksum folds the digest as words).
  static_assert(kEthHeaderLen + kIpv4MinHeaderLen + kUdpHeaderLen + proto::kMaxRingPayload + 4 +
                    crypto::kMaxDigestBytes <= RTE_MBUF_DEFAULT_DATAROOM,
                "a control packet and its MAC fit one mbuf");
  return t.len % 4 == 0;
}

bool control_packet_valid(const proto::TxPacket& t) {
  if (t.len < proto::kHeaderLen || t.len > proto::kMaxRingPayload) return false;
  const uint32_t d = t.dst_ip;
  // 0.0.0.0/8, loopback, multicast and above (class E, broadcast).
  if ((d >> 24) == 0 || (d >> 24) == 127 || (d >> 28) >= 0xE) return false;
  return t.dst_port != 0 && t.src_port != 0;
}

unsigned service_control_tx(WorkerContext& ctx) {
  unsigned done = 0;
  const uint64_t now_raw = hwclock::read_tsc();
  const int64_t now_ns = tsc_to_mono_ns(ctx, now_raw);  // the neighbour cache's time

  // Packets waiting for ARP: send what resolved, re-ask, give up.
  for (unsigned i = 0; i < ctx.n_pending;) {
    PendingTx& p = ctx.pending[i];
    const Neighbour* n = ctx.neighbours.lookup(p.next_hop, now_ns, kNeighbourMaxAgeNs);
    const double age_s = static_cast<double>(now_raw - p.since_raw) / static_cast<double>(ctx.tsc_hz);
    if (n || age_s > kArpGiveUpS) {
      if (n)
        send_now(ctx, p, n->mac);
      else
        refuse(ctx, p.m, p.cookie, proto::DropReason::kNoNeighbour);
      ctx.pending[i] = ctx.pending[--ctx.n_pending];
      done++;
      continue;
    }
    if (static_cast<double>(now_raw - p.last_arp_raw) / static_cast<double>(ctx.tsc_hz) > kArpRetryS) {
      p.last_arp_raw = now_raw;
      send_arp_request(ctx, ctx.ports[p.port], p.next_hop);
    }
    i++;
  }

  constexpr unsigned kBatch = 8;
  proto::TxPacket in[kBatch];
  const unsigned n = rte_ring_dequeue_burst_elem(ctx.from_control, in, sizeof(proto::TxPacket), kBatch, nullptr);
  for (unsigned k = 0; k < n; k++) {
    const proto::TxPacket& t = in[k];
    done++;
    // The tx ring is written by another process: what does not make a
    // packet (length, a destination nobody unicast, port 0) is refused.
    if (!control_packet_valid(t)) {
      refuse(ctx, nullptr, t.cookie, proto::DropReason::kBadControlPacket);
      continue;
    }
    // The route: the requested port, else the first port whose subnet (or
    // gateway) reaches the destination.
    unsigned pi = 0;
    uint32_t hop = 0;
    for (unsigned i = 0; i < ctx.n_ports && hop == 0; i++) {
      if (t.port != 0xFFFF && t.port != ctx.ports[i].index) continue;
      hop = next_hop(ctx.ports[i].identity, ctx.ports[i].gateway, t.dst_ip);
      pi = i;
    }
    // Nor the chosen port's subnet broadcast, nor a source address that is
    // not that port's own (the dataplane sends as itself only).
    if (hop != 0) {
      const PortIdentity& id = ctx.ports[pi].identity;
      const uint32_t host_mask = ~proto::netmask(id.prefix_len);
      const bool subnet_broadcast = id.prefix_len < 31 && proto::in_prefix(t.dst_ip, id.ipv4, id.prefix_len) &&
                                    (t.dst_ip & host_mask) == host_mask;
      if (subnet_broadcast || (t.src_ip != 0 && t.src_ip != id.ipv4)) {
        refuse(ctx, nullptr, t.cookie, proto::DropReason::kBadControlPacket);
        continue;
      }
    }
    // kTxMac: a key we hold and a digest length its type allows (the ring
    // is another process's memory), after a payload of whole words.
    size_t mac_field = 0;
    if (t.flags & proto::kTxMac) {
      const crypto::KeyTable* keys = ctx.active_policy ? ctx.active_policy->keys.get() : nullptr;
      if (!control_mac_valid(t, keys)) {
        refuse(ctx, nullptr, t.cookie, proto::DropReason::kBadControlPacket);
        continue;
      }
      mac_field = 4 + size_t{t.mac_digest_bytes};
    }
    rte_mbuf* m = hop ? rte_pktmbuf_alloc(ctx.pool) : nullptr;
    if (!m) {
      refuse(ctx, m, t.cookie, proto::DropReason::kNoNeighbour);
      continue;
    }
    const WorkerPort& port = ctx.ports[pi];
    uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
    uint8_t* payload = frame + kEthHeaderLen + kIpv4MinHeaderLen + kUdpHeaderLen;
    std::memcpy(payload, t.payload, t.len);
    if (mac_field) {
      // The key ID, and the digest as zeros in the checksum until sealed.
      proto::store_be32(payload + t.len, t.key_id);
      std::memset(payload + t.len + 4, 0, t.mac_digest_bytes);
    }
    const uint8_t unresolved[6] = {};
    const size_t len = build_udp_frame(frame, port.identity.mac, unresolved, t.src_ip ? t.src_ip : port.identity.ipv4,
                                       t.dst_ip, t.src_port, t.dst_port, t.len + mac_field);
    m->data_len = m->pkt_len = static_cast<uint32_t>(len);
    PendingTx p;
    p.m = m;
    p.cookie = t.cookie;
    p.since_raw = now_raw;
    p.next_hop = hop;
    p.port = static_cast<uint16_t>(pi);
    p.stamp = (t.flags & proto::kTxStampTransmit) != 0;
    if (mac_field) {
      p.mac_key_id = t.key_id;
      p.mac_covered = t.len;
      p.mac_digest_bytes = static_cast<uint8_t>(t.mac_digest_bytes);
    }
    if (const Neighbour* nb = ctx.neighbours.lookup(hop, now_ns, kNeighbourMaxAgeNs)) {
      send_now(ctx, p, nb->mac);
    } else if (ctx.n_pending < WorkerContext::kMaxPendingTx) {
      p.last_arp_raw = now_raw;
      send_arp_request(ctx, port, hop);
      ctx.pending[ctx.n_pending++] = p;
    } else {
      refuse(ctx, m, t.cookie, proto::DropReason::kNoNeighbour);
    }
  }
  return done;
}

void announce_addresses(WorkerContext& ctx) {
  for (unsigned i = 0; i < ctx.n_ports; i++)
    send_arp_request(ctx, ctx.ports[i], ctx.ports[i].identity.ipv4);
}

bool arp_conflict_log_line(WorkerContext& ctx, uint64_t now_raw, char* out, size_t cap) {
  const int64_t now_ns = tsc_to_mono_ns(ctx, now_raw);
  for (unsigned i = 0; i < ctx.n_ports; i++) {
    ArpConflictRecord r;
    if (!ctx.arp_conflicts[i].try_load(r, 4) || !ctx.arp_conflict_log[i].due(r, now_ns)) continue;
    format_arp_conflict(r, out, cap);
    return true;
  }
  return false;
}

int worker_main(void* arg) {
  WorkerContext& ctx = *static_cast<WorkerContext*>(arg);
  proto::WorkerCounters& c = *ctx.counters;
  // The rate-limit table on this lcore's NUMA node (first touch).
  if (ctx.limiter) ctx.limiter->touch_pages();
  refresh_published(ctx);
  if (ctx.from_control) announce_addresses(ctx);
  unsigned idle = 0;
  uint64_t polls = 0, busy = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    unsigned n = worker_poll_once(ctx);
    // The control plane's packets: a few loads when there are none.
    if (ctx.from_control && (ctx.n_pending || !rte_ring_empty(ctx.from_control))) {
      refresh_published(ctx);
      n += service_control_tx(ctx);
    }
    if (ctx.exception_rx) {
      const uint64_t now_raw = hwclock::read_tsc();
      if (now_raw >= ctx.next_exception_poll_raw) {
        ctx.next_exception_poll_raw = now_raw + ctx.tsc_hz / (1'000'000'000 / kExceptionPollNs);
        n += service_exception_rx(ctx);
      }
    }
    polls++;
    if (n) {
      busy++;
      idle = 0;
    } else if (ctx.idle_sleep_us && ++idle >= kIdlePollsBeforeSleep) {
      // Only when configured (demo, shared cores) and only while idle.
      rte_delay_us_sleep(ctx.idle_sleep_us);
    }
    if ((polls & 1023) == 0) {
      bump(c.polls, 1024);
      bump(c.busy_polls, busy);
      busy = 0;
    }
  }
  return 0;
}

namespace {

// channel.control_user's uid, who may own the secret files as root may.
std::optional<uint32_t> control_user_uid(const config::Config& cfg) {
  if (cfg.control_user.empty()) return std::nullopt;
  passwd pw{};
  passwd* found = nullptr;
  char buf[4096];
  if (getpwnam_r(cfg.control_user.c_str(), &pw, buf, sizeof buf, &found) == 0 && found) return found->pw_uid;
  return std::nullopt;
}

// nts.cookie_keys_file into the policy's ring (nothing on an error: no
// NTS, each error reported).
void load_policy_nts(const config::Config& cfg, Policy& p, std::vector<std::string>* errors) {
  if (cfg.nts.cookie_keys_file.empty()) return;
  std::vector<std::string> errs;
  p.nts_ring = crypto::load_cookie_ring(cfg.nts.cookie_keys_file, control_user_uid(cfg), errs);
  // Not made yet: ntp-control makes it and hands its keys over in the segment.
  if (!p.nts_ring && cfg.nts.cookie_rotate_s > 0 && !std::filesystem::exists(cfg.nts.cookie_keys_file)) return;
  if (errors) errors->insert(errors->end(), errs.begin(), errs.end());
}

// auth.keys_file into the policy's tables: every key, and the trusted ones
// alone. The file is channel.control_user's (0600: ntp-control reads it as
// that user) or root's; the dataplane reads it as root (crypto/keys.h).
void load_policy_keys(const config::Config& cfg, Policy& p, std::vector<std::string>* errors) {
  if (cfg.auth.keys_file.empty()) return;
  const crypto::KeysFile f = crypto::load_keys(cfg.auth.keys_file, control_user_uid(cfg));
  std::string error;
  auto all = std::make_shared<crypto::KeyTable>();
  auto trusted = std::make_shared<crypto::KeyTable>();
  std::vector<crypto::KeyEntry> trusted_entries;
  for (const crypto::KeyEntry& k : f.keys)
    if (std::find(cfg.auth.trusted_keys.begin(), cfg.auth.trusted_keys.end(), k.id) != cfg.auth.trusted_keys.end())
      trusted_entries.push_back(k);
  if (!f.ok() || !crypto::build_key_table(f.keys, *all, &error) ||
      !crypto::build_key_table(trusted_entries, *trusted, &error)) {
    if (errors) {
      for (const crypto::KeyError& e : f.errors) errors->push_back(e.to_string());
      if (f.ok()) errors->push_back(cfg.auth.keys_file + ": " + error);
    }
    crypto::wipe_secret(all.get(), sizeof *all);
    crypto::wipe_secret(trusted.get(), sizeof *trusted);
    return;
  }
  p.keys = std::move(all);
  p.trusted_keys = std::move(trusted);
}

}  // namespace

// Declared in worker_setup.h (the daemon's reload calls it); defined here
// with the worker's side of the swap, so the unit tests reach both.
Policy make_policy(const config::Config& cfg, std::vector<std::string>* errors) {
  Policy p;
  p.authenticate = cfg.auth.authenticate;
  load_policy_keys(cfg, p, errors);
  load_policy_nts(cfg, p, errors);
  p.access = config::access_table(cfg.access);
  p.kod = cfg.access.kod;
  p.answer_unknown_peers = cfg.ntp.answer_unknown_peers;
  p.max_model_rate_error = hwclock::model_rate_bound(
      cfg.clock.max_frequency_ppm, cfg.clock.source == config::ClockSource::kVirtual ? cfg.clock.frequency_ppm : 0.0);
  p.limits.interval_log2 = cfg.ratelimit.interval_log2;
  p.limits.burst = cfg.ratelimit.burst;
  p.limits.leak_log2 = cfg.ratelimit.leak_log2;
  p.limits.min_interval_ns = static_cast<int64_t>(cfg.ratelimit.min_interval_s * 1e9);
  p.max_replies_per_s = static_cast<uint32_t>(cfg.ratelimit.max_replies_per_s);
  p.clients = static_cast<size_t>(cfg.ratelimit.clients);
  p.xleave = cfg.ntp.interleaved;
  return p;
}

void publish_keys_fingerprint(proto::SegmentHeader& seg, const Policy& p) {
  proto::KeysFingerprintData d;
  const crypto::KeyTableFingerprint fp = p.keys ? crypto::fingerprint(*p.keys) : crypto::kEmptyKeyTableFingerprint;
  static_assert(sizeof d.fingerprint == sizeof fp);
  std::memcpy(d.fingerprint, fp.data(), sizeof d.fingerprint);
  d.flags = proto::kKeysFingerprintValid | (p.keys ? 0u : proto::kKeysNoFile);
  d.key_count = p.keys ? p.keys->count : 0;
  seg.keys_fingerprint.store(d);
}

namespace {

// Each worker bumps its epoch once per poll: a busy or idle-polling worker
// passes two in microseconds (idle_sleep_us: at most a few ms).
void wait_retired(std::vector<std::unique_ptr<WorkerContext>>& workers) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
  for (;;) {
    size_t waiting = 0;
    for (auto& w : workers) waiting += collect_retired(*w);
    if (waiting == 0 || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

}  // namespace

void apply_nts_ring(std::vector<std::unique_ptr<WorkerContext>>& workers,
                    std::shared_ptr<const crypto::CookieKeyRing> ring) {
  for (auto& w : workers) {
    auto p = w->policy_storage ? std::make_unique<Policy>(*w->policy_storage) : std::make_unique<Policy>();
    p->nts_ring = ring;
    publish_policy(*w, std::move(p));
  }
  wait_retired(workers);
}

bool apply_policy(std::vector<std::unique_ptr<WorkerContext>>& workers, const config::Config& cfg, std::string& err,
                  std::shared_ptr<const crypto::CookieKeyRing> nts_ring) {
  std::vector<std::string> key_errors;
  Policy next = make_policy(cfg, &key_errors);
  if (nts_ring) next.nts_ring = std::move(nts_ring);
  err.clear();
  if (!key_errors.empty()) {
    // A keys file that does not load keeps the running policy whole (its
    // keys and everything else): each error with its file:line.
    for (const std::string& e : key_errors) err += (err.empty() ? "" : "; ") + e;
    return false;
  }
  bool ok = true;
  for (auto& w : workers) {
    auto p = std::make_unique<Policy>(next);
    if (w->limiter && w->limiter->capacity() != next.clients) {
      if (ok)
        err = "ratelimit.clients " + std::to_string(next.clients) + " differs from the running table's " +
              std::to_string(w->limiter->capacity()) + " entries: it needs a restart (the other settings apply now)";
      ok = false;
      // What the worker runs with is the table it has: its policy says so
      // (describe_worker_tables, the next reload's comparison).
      p->clients = w->limiter->capacity();
    }
    if (w->limiter && w->limiter->has_xleave() != next.xleave) {
      if (ok)
        err = std::string("ntp.interleaved ") + (next.xleave ? "true" : "false") +
              " differs from the running table's: it needs a restart (the other settings apply now)";
      ok = false;
      p->xleave = w->limiter->has_xleave();
    }
    publish_policy(*w, std::move(p));
  }
  // The keys went to every worker (a table size that needs a restart does
  // not stop them): the control plane may compare them now.
  if (!workers.empty() && workers.front()->segment) publish_keys_fingerprint(*workers.front()->segment, next);
  wait_retired(workers);
  return ok;
}

}  // namespace ntp::dp
