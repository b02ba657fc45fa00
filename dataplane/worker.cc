#include "dataplane/worker.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <cstring>

#include "hwclock/clock_model.h"
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
        uint8_t* data = rte_pktmbuf_mtod(m, uint8_t*);
        v = handle_frame(data, m->data_len, port.identity, params, rx_ts, ctx.neighbours, rx_ns);
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
        case FrameAction::kToControl:
          to_control(ctx, port, rte_pktmbuf_mtod(m, uint8_t*), v, rx_ns, rx_raw);
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
      const proto::NtpTimestamp tx_ts = proto::ntp_from_unix_ns(hwclock::model_to_ns(ctx.model, hwclock::read_tsc()));
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
  }
  return received;
}

int worker_main(void* arg) {
  WorkerContext& ctx = *static_cast<WorkerContext*>(arg);
  proto::WorkerCounters& c = *ctx.counters;
  refresh_published(ctx);
  unsigned idle = 0;
  uint64_t polls = 0, busy = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    const unsigned n = worker_poll_once(ctx);
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
