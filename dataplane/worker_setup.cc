#include "dataplane/worker_setup.h"

namespace ntp::dp {

std::unique_ptr<WorkerContext> make_worker_context(unsigned w, const config::Config& cfg,
                                                   const std::vector<Port>& ports, Segment& segment,
                                                   rte_mempool* pool, double tsc_hz,
                                                   const NicClockSampler& sampler) {
  auto ctx = std::make_unique<WorkerContext>();
  proto::SegmentHeader& seg = *segment.header();
  ctx->worker_id = w;
  ctx->burst_size = static_cast<unsigned>(cfg.dataplane.burst_size);
  ctx->idle_sleep_us = static_cast<unsigned>(cfg.dataplane.idle_sleep_us);
  ctx->segment = &seg;
  ctx->counters = &seg.workers[w];
  ctx->to_control = segment.rx_ring(w);
  ctx->pool = pool;
  ctx->tsc_hz = static_cast<uint64_t>(tsc_hz);
  if (w == 0) {
    ctx->from_control = segment.tx_ring();
    ctx->tx_reports = segment.tx_report_ring();
  }
  ctx->n_ports = static_cast<unsigned>(ports.size());
  for (size_t i = 0; i < ports.size(); i++) {
    WorkerPort& wp = ctx->ports[i];
    wp.port_id = ports[i].port_id;
    wp.queue_id = static_cast<uint16_t>(w);
    wp.index = static_cast<uint16_t>(i);
    wp.identity = ports[i].identity;
    wp.gateway = cfg.interfaces[i].gateway.value_or(0);
    wp.tx_compensation_ns = ports[i].tx_compensation_ns;
    wp.nic_map = sampler.map(i);
    wp.ts_dynfield_offset = ports[i].ts_dynfield_offset;
    wp.ts_dynflag = ports[i].ts_dynflag;
  }
  return ctx;
}

}  // namespace ntp::dp
