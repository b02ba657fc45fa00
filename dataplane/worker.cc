#include "dataplane/worker.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <algorithm>
#include <cstring>

#include "hwclock/clock_model.h"
#include "dataplane/inet.h"
#include "hwclock/tsc.h"

namespace ntp::dp {

std::atomic<bool> g_stop{false};

namespace {

constexpr unsigned kMaxBurst = 256;
constexpr unsigned kIdlePollsBeforeSleep = 64;

inline void bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
  // Only this worker writes its counters: a relaxed load and store, no
  // locked instruction.
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// Refreshes the cached model and state once per burst. A failed read (a
// writer died mid-update) keeps the previous copy.
inline void refresh_published(WorkerContext& ctx) {
  proto::SegmentHeader& seg = *ctx.segment;
  if (!seg.clock_model.try_load(ctx.model, 4)) bump(ctx.counters->state_read_retries);
  proto::ServerStateData s;
  if (seg.server_state.try_load(s, 4)) {
    ctx.state = s;
    ctx.have_state = s.published_ns != 0;
  } else {
    bump(ctx.counters->state_read_retries);
  }
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
  if (rte_ring_enqueue_elem(ctx.to_control, &pkt, sizeof pkt) == 0)
    bump(ctx.counters->ntp_to_control);
  else
    bump(ctx.counters->drops[static_cast<size_t>(proto::DropReason::kControlRingFull)]);
}

}  // namespace

unsigned worker_poll_once(WorkerContext& ctx) {
  rte_mbuf* rx[kMaxBurst];
  rte_mbuf* tx[kMaxBurst];
  uint16_t stamp_at[kMaxBurst];
  proto::WorkerCounters& c = *ctx.counters;
  unsigned received = 0;

  for (unsigned p = 0; p < ctx.n_ports; p++) {
    const WorkerPort& port = ctx.ports[p];
    const uint16_t n = rte_eth_rx_burst(port.port_id, port.queue_id, rx, static_cast<uint16_t>(ctx.burst_size));
    if (n == 0) continue;
    // Software receive timestamp: when the burst came back from the NIC.
    const uint64_t rx_raw = hwclock::read_tsc();
    received += n;
    refresh_published(ctx);
    const int64_t rx_ns = hwclock::model_to_ns(ctx.model, rx_raw);
    const proto::NtpTimestamp rx_ts = proto::ntp_from_unix_ns(rx_ns);
    const ReplyParams params = reply_params(ctx.state, ctx.have_state, rx_ns);
    bool hw = port.nic_map != nullptr;
    if (hw) {
      port.nic_map->try_load(ctx.ports[p].cached_map, 4);
      // A mapping the main lcore stopped refreshing would convert a wrapped
      // counter wrongly: then every packet counts as rejected.
      if (!hwclock::nic_map_fresh(port.cached_map, rx_raw)) ctx.ports[p].cached_map.valid = 0;
    }
    proto::PortTimestampCounters& tsc_counters = c.timestamps[port.index];
    uint64_t n_hw = 0, n_rejected = 0, max_abs = 0;
    int64_t diff_sum = 0;

    unsigned ntx = 0;
    uint64_t ntp_replies = 0, unsync = 0, arp = 0, icmp = 0, learned = 0;
    for (uint16_t i = 0; i < n; i++) {
      rte_mbuf* m = rx[i];
      if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(rx[i + 1], void*));
      FrameVerdict v;
      if (m->nb_segs != 1) {
        v.action = FrameAction::kDrop;
        v.reason = proto::DropReason::kOversized;
      } else {
        // The receive timestamp: the NIC's, mapped NIC clock -> TSC -> model,
        // where the port gives one; else the burst's TSC reading.
        int64_t pkt_ns = rx_ns;
        proto::NtpTimestamp pkt_ts = rx_ts;
        if (hw && (m->ol_flags & port.ts_dynflag)) {  // a NIC timestamp
          uint64_t tsc;
          const uint64_t raw = *RTE_MBUF_DYNFIELD(m, port.ts_dynfield_offset, rte_mbuf_timestamp_t*);
          if (hwclock::nic_to_tsc(port.cached_map, raw, tsc)) {
            pkt_ns = hwclock::model_to_ns(ctx.model, tsc);
            pkt_ts = proto::ntp_from_unix_ns(pkt_ns);
            const int64_t d = pkt_ns - rx_ns;
            diff_sum += d;
            max_abs = std::max<uint64_t>(max_abs, static_cast<uint64_t>(d < 0 ? -d : d));
            n_hw++;
          } else {
            n_rejected++;
          }
        }
        uint8_t* data = rte_pktmbuf_mtod(m, uint8_t*);
        v = handle_frame(data, m->data_len, port.identity, params, pkt_ts, ctx.neighbours, rx_ns);
        if (v.action == FrameAction::kToControl) {
          to_control(ctx, port, data, v, pkt_ns, rx_raw);
          rte_pktmbuf_free(m);
          continue;
        }
      }
      learned += v.learned_neighbour;
      switch (v.action) {
        case FrameAction::kTransmit:
          m->data_len = v.len;
          m->pkt_len = v.len;
          stamp_at[ntx] = v.kind == ReplyKind::kNtp ? v.ntp_offset : 0;
          tx[ntx++] = m;
          ntp_replies += v.kind == ReplyKind::kNtp;
          unsync += v.kind == ReplyKind::kNtp && v.unsynchronized;
          arp += v.kind == ReplyKind::kArp;
          icmp += v.kind == ReplyKind::kIcmpEcho;
          break;
        case FrameAction::kToControl:  // handled above, with the packet's own timestamp
          rte_pktmbuf_free(m);
          break;
        case FrameAction::kConsumed:
          rte_pktmbuf_free(m);
          break;
        case FrameAction::kDrop:
          bump(c.drops[static_cast<size_t>(v.reason)]);
          rte_pktmbuf_free(m);
          break;
      }
    }

    if (ntx) {
      // Transmit timestamp: as late as software can take it, just before
      // the burst goes to the NIC.
      const proto::NtpTimestamp tx_ts = proto::ntp_from_unix_ns(hwclock::model_to_ns(ctx.model, hwclock::read_tsc()) +
                                                                port.tx_compensation_ns);
      for (unsigned i = 0; i < ntx; i++)
        if (stamp_at[i]) stamp_transmit(rte_pktmbuf_mtod(tx[i], uint8_t*), stamp_at[i], tx_ts);
      const uint16_t sent = rte_eth_tx_burst(port.port_id, port.queue_id, tx, static_cast<uint16_t>(ntx));
      if (sent < ntx) {
        bump(c.drops[static_cast<size_t>(proto::DropReason::kTxFull)], ntx - sent);
        rte_pktmbuf_free_bulk(tx + sent, ntx - sent);
      }
      bump(c.tx_packets, sent);
    }
    bump(c.rx_packets, n);
    if (ntp_replies) bump(c.ntp_requests, ntp_replies);
    if (unsync) bump(c.ntp_unsync_replies, unsync);
    if (arp) bump(c.arp_replies, arp);
    if (icmp) bump(c.icmp_echo_replies, icmp);
    if (learned) bump(c.arp_learned, learned);
    bump(tsc_counters.software, n - n_hw);
    if (n_hw) {
      bump(tsc_counters.hardware, n_hw);
      tsc_counters.hw_minus_sw_sum_ns.store(tsc_counters.hw_minus_sw_sum_ns.load(std::memory_order_relaxed) + diff_sum,
                                           std::memory_order_relaxed);
      if (max_abs > tsc_counters.hw_minus_sw_max_ns.load(std::memory_order_relaxed))
        tsc_counters.hw_minus_sw_max_ns.store(max_abs, std::memory_order_relaxed);
    }
    if (n_rejected) bump(tsc_counters.rejected, n_rejected);
  }
  return received;
}

namespace {

constexpr double kArpRetryS = 1.0;    // ask again after
constexpr double kArpGiveUpS = 3.0;   // drop a packet whose next hop never answered
constexpr int64_t kNeighbourMaxAgeNs = 1200LL * 1000000000;  // like the kernel's gc_stale: 20 min

void report(WorkerContext& ctx, uint64_t cookie, int64_t tx_ns, uint64_t tx_raw, proto::DropReason failed,
            bool ok) {
  proto::TxReport rep{};
  rep.cookie = cookie;
  rep.tx_time_ns = tx_ns;
  rep.tx_raw = tx_raw;
  rep.status = ok ? 0 : static_cast<uint32_t>(failed) + 1;
  if (cookie != 0) rte_ring_enqueue_elem(ctx.tx_reports, &rep, sizeof rep);  // full: the control plane times out
}

void send_arp_request(WorkerContext& ctx, const WorkerPort& port, uint32_t target) {
  rte_mbuf* m = rte_pktmbuf_alloc(ctx.pool);
  if (!m) return;
  const size_t len = build_arp_request(rte_pktmbuf_mtod(m, uint8_t*), port.identity.mac, port.identity.ipv4, target);
  m->data_len = m->pkt_len = static_cast<uint32_t>(len);
  if (rte_eth_tx_burst(port.port_id, port.queue_id, &m, 1) != 1) rte_pktmbuf_free(m);
}

// Sends a built frame to `mac`, stamping the transmit timestamp just
// before it goes, and reports the time.
void send_now(WorkerContext& ctx, const PendingTx& p, const uint8_t* mac) {
  const WorkerPort& port = ctx.ports[p.port];
  uint8_t* frame = rte_pktmbuf_mtod(p.m, uint8_t*);
  std::memcpy(frame, mac, 6);
  const uint64_t tx_raw = hwclock::read_tsc();
  const int64_t tx_ns = hwclock::model_to_ns(ctx.model, tx_raw) + port.tx_compensation_ns;
  if (p.stamp) stamp_transmit(frame, kEthHeaderLen + kIpv4MinHeaderLen + kUdpHeaderLen, proto::ntp_from_unix_ns(tx_ns));
  rte_mbuf* m = p.m;
  if (rte_eth_tx_burst(port.port_id, port.queue_id, &m, 1) == 1) {
    bump(ctx.counters->control_tx);
    report(ctx, p.cookie, tx_ns, tx_raw, proto::DropReason::kTxFull, true);
  } else {
    rte_pktmbuf_free(m);
    bump(ctx.counters->drops[static_cast<size_t>(proto::DropReason::kTxFull)]);
    report(ctx, p.cookie, 0, 0, proto::DropReason::kTxFull, false);
  }
}

}  // namespace

unsigned service_control_tx(WorkerContext& ctx) {
  unsigned done = 0;
  const uint64_t now_raw = hwclock::read_tsc();
  const int64_t now_ns = hwclock::model_to_ns(ctx.model, now_raw);

  // Packets waiting for ARP: send what resolved, re-ask, give up.
  for (unsigned i = 0; i < ctx.n_pending;) {
    PendingTx& p = ctx.pending[i];
    const Neighbour* n = ctx.neighbours.lookup(p.next_hop, now_ns, kNeighbourMaxAgeNs);
    const double age_s = static_cast<double>(now_raw - p.since_raw) / static_cast<double>(ctx.tsc_hz);
    if (n || age_s > kArpGiveUpS) {
      if (n) {
        send_now(ctx, p, n->mac);
      } else {
        rte_pktmbuf_free(p.m);
        bump(ctx.counters->drops[static_cast<size_t>(proto::DropReason::kNoNeighbour)]);
        report(ctx, p.cookie, 0, 0, proto::DropReason::kNoNeighbour, false);
      }
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
    // The route: the requested port, else the first port whose subnet (or
    // gateway) reaches the destination.
    unsigned pi = 0;
    uint32_t hop = 0;
    for (unsigned i = 0; i < ctx.n_ports && hop == 0; i++) {
      if (t.port != 0xFFFF && t.port != ctx.ports[i].index) continue;
      hop = next_hop(ctx.ports[i].identity, ctx.ports[i].gateway, t.dst_ip);
      pi = i;
    }
    rte_mbuf* m = hop ? rte_pktmbuf_alloc(ctx.pool) : nullptr;
    if (!m || t.len > proto::kMaxRingPayload) {
      if (m) rte_pktmbuf_free(m);
      bump(ctx.counters->drops[static_cast<size_t>(proto::DropReason::kNoNeighbour)]);
      report(ctx, t.cookie, 0, 0, proto::DropReason::kNoNeighbour, false);
      continue;
    }
    const WorkerPort& port = ctx.ports[pi];
    uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
    std::memcpy(frame + kEthHeaderLen + kIpv4MinHeaderLen + kUdpHeaderLen, t.payload, t.len);
    const uint8_t unresolved[6] = {};
    const size_t len = build_udp_frame(frame, port.identity.mac, unresolved, t.src_ip ? t.src_ip : port.identity.ipv4,
                                       t.dst_ip, t.src_port, t.dst_port, t.len);
    m->data_len = m->pkt_len = static_cast<uint32_t>(len);
    PendingTx p;
    p.m = m;
    p.cookie = t.cookie;
    p.since_raw = now_raw;
    p.next_hop = hop;
    p.port = static_cast<uint16_t>(pi);
    p.stamp = (t.flags & proto::kTxStampTransmit) != 0;
    if (const Neighbour* nb = ctx.neighbours.lookup(hop, now_ns, kNeighbourMaxAgeNs)) {
      send_now(ctx, p, nb->mac);
    } else if (ctx.n_pending < WorkerContext::kMaxPendingTx) {
      p.last_arp_raw = now_raw;
      send_arp_request(ctx, port, hop);
      ctx.pending[ctx.n_pending++] = p;
    } else {
      rte_pktmbuf_free(m);
      bump(ctx.counters->drops[static_cast<size_t>(proto::DropReason::kNoNeighbour)]);
      report(ctx, t.cookie, 0, 0, proto::DropReason::kNoNeighbour, false);
    }
  }
  return done;
}

void announce_addresses(WorkerContext& ctx) {
  for (unsigned i = 0; i < ctx.n_ports; i++)
    send_arp_request(ctx, ctx.ports[i], ctx.ports[i].identity.ipv4);
}

int worker_main(void* arg) {
  WorkerContext& ctx = *static_cast<WorkerContext*>(arg);
  proto::WorkerCounters& c = *ctx.counters;
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

}  // namespace ntp::dp
