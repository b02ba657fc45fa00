#include "dataplane/worker_setup.h"

#include "crypto/random.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace ntp::dp {

namespace {

// len bytes from getrandom; what: what needs them, for the error.
void random_fill(uint8_t* out, size_t len, const char* what) {
  if (!crypto::random_bytes(out, len)) throw std::runtime_error(std::string("getrandom failed: ") + what);
}

// The limiter's hash key: secret per worker, so nobody can aim spoofed
// sources at one bucket of the table.
uint64_t random_key() {
  uint64_t k = 0;
  random_fill(reinterpret_cast<uint8_t*>(&k), sizeof k, "the rate limiter needs a secret key");
  return k;
}

}  // namespace

std::string describe_worker_tables(const WorkerContext& ctx) {
  char line[384];
  const Policy* p = ctx.policy_storage.get();
  std::snprintf(line, sizeof line,
                "worker %u: client table %zu clients (rate limits%s), %.1f MiB; access %zu ranges (%zu bytes); associations "
                "as the control plane publishes them (up to %zu endpoints); %u keys (%u trusted)%s; %u NTS cookie keys",
                ctx.worker_id, ctx.limiter ? ctx.limiter->capacity() : size_t{0},
                ctx.limiter && ctx.limiter->has_xleave() ? ", interleaved mode" : "",
                ctx.limiter ? static_cast<double>(ctx.limiter->memory_bytes()) / (1024.0 * 1024.0) : 0.0,
                p ? p->access.ranges() : size_t{0}, p ? p->access.memory_bytes() : size_t{0},
                proto::kMaxAssocEndpoints, p && p->keys ? p->keys->count : 0u,
                p && p->trusted_keys ? p->trusted_keys->count : 0u,
                p && p->authenticate ? ", peers must authenticate" : "", p && p->nts_ring ? p->nts_ring->count : 0u);
  return line;
}

std::unique_ptr<WorkerContext> make_worker_context(unsigned w, const config::Config& cfg,
                                                   const std::vector<Port>& ports, Segment& segment,
                                                   rte_mempool* pool, double tsc_hz,
                                                   const NicClockSampler& sampler) {
  auto ctx = std::make_unique<WorkerContext>();
  {
    uint8_t seed[32];
    random_fill(seed, sizeof seed, "NTS nonces need a secret seed");
    ctx->nts_rng = std::make_unique<crypto::NonceSource>(seed);
    crypto::wipe_secret(seed, sizeof seed);
    ctx->nts_seals = std::make_unique<NtsSeal[]>(kMaxWorkerBurst);
  }
  proto::SegmentHeader& seg = *segment.header();
  ctx->worker_id = w;
  ctx->burst_size = static_cast<unsigned>(cfg.dataplane.burst_size);
  ctx->idle_sleep_us = static_cast<unsigned>(cfg.dataplane.idle_sleep_us);
  ctx->segment = &seg;
  ctx->counters = &seg.workers[w];
  ctx->to_control = segment.rx_ring(w);
  ctx->to_control_assoc = segment.assoc_ring(w);
  // The table is allocated here, once, at its configured size (never on
  // the worker's path); the policy is the worker's first.
  std::vector<std::string> key_errors;
  auto policy = std::make_unique<Policy>(make_policy(cfg, &key_errors));
  if (!key_errors.empty()) {
    // The host check refused such a file before; it changed since.
    std::string all;
    for (const std::string& e : key_errors) all += "\n  " + e;
    throw std::runtime_error("auth.keys_file does not load:" + all);
  }
  ctx->limiter = std::make_unique<RateLimiter>(policy->clients, policy->limits, random_key(), policy->xleave);
  ctx->reply_cap.set_rate(policy->max_replies_per_s);
  if (w == 0) publish_keys_fingerprint(seg, *policy);
  publish_policy(*ctx, std::move(policy));
  spdlog::info("{}", describe_worker_tables(*ctx));
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
    if (w < ports[i].tx_stamps.size()) wp.tx_stamps = ports[i].tx_stamps[w].get();
    if (ports[i].exception.port_id != UINT16_MAX) {
      wp.exc_port_id = ports[i].exception.port_id;
      wp.exc_queue = static_cast<uint16_t>(w);
      wp.exc_reads = w == 0;
      wp.exc_interval_ns = 1'000'000'000LL / std::max(1, cfg.interfaces[i].exception_max_pps);
      ctx->exception_rx |= wp.exc_reads;
    }
  }
  // VLANs of one DPDK port: its owner polls for all of them.
  for (size_t i = 0; i < ports.size(); i++) {
    const size_t owner = ports[i].shares >= 0 ? static_cast<size_t>(ports[i].shares) : i;
    WorkerPort& o = ctx->ports[owner];
    o.members[o.n_members++] = static_cast<uint8_t>(i);
    ctx->ports[i].polls = owner == i;  // its answers go out in its owner's bursts
  }
  return ctx;
}

}  // namespace ntp::dp
