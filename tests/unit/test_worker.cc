// The worker's policy and control-plane tx path (dataplane/worker.h,
// worker_setup.h), without a NIC: make_policy from a configuration, the
// policy swap at poll boundaries with its epochs (publish_policy,
// collect_retired, apply_policy, also against a worker thread polling
// concurrently), a reload's ratelimit.clients that needs a restart, and the
// validation of the control plane's tx ring entries (service_control_tx on
// rings in plain memory, as the segment holds them). The per-packet rules
// themselves are test_frame's; the loop's speed is bench_worker's.
#include "dataplane/worker.h"

#include <gtest/gtest.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "crypto/mac.h"
#include "dataplane/worker_setup.h"
#include "hwclock/clock_model.h"
#include "proto/channel_abi.h"

namespace ntp::dp {
namespace {

constexpr uint32_t ip4(unsigned a, unsigned b, unsigned c, unsigned d) { return a << 24 | b << 16 | c << 8 | d; }

config::Association assoc(uint32_t address) {
  config::Association a;
  a.address = address;
  return a;
}

config::Config lab_config() {
  config::Config cfg;
  cfg.servers = {assoc(ip4(192, 0, 2, 9)), assoc(ip4(10, 0, 0, 5)), assoc(ip4(10, 0, 0, 1))};
  cfg.peers = {assoc(ip4(10, 0, 0, 5)), assoc(ip4(10, 0, 0, 3))};
  cfg.access.peer = {{ip4(10, 1, 0, 0), 16}};
  cfg.access.deny = {{ip4(10, 1, 2, 0), 24}};
  cfg.access.query = {{ip4(172, 16, 0, 0), 12}};
  cfg.access.kod = true;
  cfg.ntp.answer_unknown_peers = true;
  cfg.ratelimit.interval_log2 = -2;
  cfg.ratelimit.burst = 16;
  cfg.ratelimit.leak_log2 = 3;
  cfg.ratelimit.min_interval_s = 0.25;
  cfg.ratelimit.clients = 1024;
  cfg.ratelimit.max_replies_per_s = 5000;
  return cfg;
}

// A worker context as make_worker_context leaves it, minus ports and
// rings: counters in a segment of its own, its limiter, its first policy.
struct Rig {
  std::unique_ptr<proto::SegmentHeader> seg = std::make_unique<proto::SegmentHeader>();
  std::vector<std::unique_ptr<WorkerContext>> workers;
  explicit Rig(const config::Config& cfg, unsigned n = 1) {
    for (unsigned w = 0; w < n; w++) {
      auto ctx = std::make_unique<WorkerContext>();
      ctx->worker_id = w;
      ctx->segment = seg.get();
      ctx->counters = &seg->workers[w];
      auto p = std::make_unique<Policy>(make_policy(cfg));
      ctx->limiter = std::make_unique<RateLimiter>(p->clients, p->limits, 42 + w, p->xleave);
      publish_policy(*ctx, std::move(p));
      workers.push_back(std::move(ctx));
    }
  }
  WorkerContext& w0() { return *workers[0]; }
};

TEST(WorkerPolicy, MadeFromTheConfiguration) {
  const Policy p = make_policy(lab_config());
  // The access classes, deny inside an allowed prefix winning.
  EXPECT_EQ(p.access.classify_v4(ip4(10, 1, 9, 9)), proto::AccessClass::kPeer);
  EXPECT_EQ(p.access.classify_v4(ip4(10, 1, 2, 7)), proto::AccessClass::kDeny);
  EXPECT_EQ(p.access.classify_v4(ip4(172, 20, 0, 1)), proto::AccessClass::kQuery);
  EXPECT_EQ(p.access.classify_v4(ip4(8, 8, 8, 8)), proto::AccessClass::kLimited);  // default_class
  EXPECT_TRUE(p.kod);
  EXPECT_TRUE(p.answer_unknown_peers);
  EXPECT_EQ(p.limits.interval_log2, -2);
  EXPECT_EQ(p.limits.burst, 16);
  EXPECT_EQ(p.limits.leak_log2, 3);
  EXPECT_EQ(p.limits.min_interval_ns, 250'000'000);
  EXPECT_EQ(p.max_replies_per_s, 5000u);
  EXPECT_EQ(p.clients, 1024u);
}

TEST(WorkerPolicy, DefaultClassFromTheConfiguration) {
  config::Config cfg = lab_config();
  cfg.access.default_class = "deny";
  EXPECT_EQ(make_policy(cfg).access.classify_v4(ip4(8, 8, 8, 8)), proto::AccessClass::kDeny);
  cfg.access.default_class = "synchronization";
  EXPECT_EQ(make_policy(cfg).access.classify_v4(ip4(8, 8, 8, 8)), proto::AccessClass::kSynchronization);
}

TEST(WorkerPolicy, PollAdoptsThePublishedPolicy) {
  Rig rig(lab_config());
  WorkerContext& w = rig.w0();
  EXPECT_EQ(w.active_policy, nullptr);  // not yet polled
  worker_poll_once(w);                  // no ports: only the policy and the epoch
  EXPECT_EQ(w.active_policy, w.policy_storage.get());
  EXPECT_EQ(w.epoch.load(), 1u);
  worker_poll_once(w);
  EXPECT_EQ(w.epoch.load(), 2u);
}

TEST(WorkerPolicy, OldPolicyFreedOnlyAfterTwoPolls) {
  Rig rig(lab_config());
  WorkerContext& w = rig.w0();
  worker_poll_once(w);
  const Policy* first = w.active_policy;
  config::Config cfg = lab_config();
  cfg.access.kod = false;
  publish_policy(w, std::make_unique<Policy>(make_policy(cfg)));
  // The worker may be inside a poll that loaded `first` just before.
  ASSERT_EQ(w.retired.size(), 1u);
  EXPECT_EQ(w.retired[0].policy.get(), first);
  EXPECT_EQ(collect_retired(w), 1u);
  worker_poll_once(w);
  EXPECT_NE(w.active_policy, first);
  EXPECT_FALSE(w.active_policy->kod);
  EXPECT_EQ(collect_retired(w), 1u) << "one poll past the swap may still have begun with the old policy";
  worker_poll_once(w);
  EXPECT_EQ(collect_retired(w), 0u);
  EXPECT_TRUE(w.retired.empty());
}

TEST(WorkerPolicy, NewLimitsReachTheWorkersLimiterAndCap) {
  config::Config cfg = lab_config();
  cfg.ratelimit.max_replies_per_s = 1;  // a burst of one answer
  Rig rig(cfg);
  WorkerContext& w = rig.w0();
  worker_poll_once(w);
  EXPECT_TRUE(w.reply_cap.take(1'000'000'000));
  EXPECT_FALSE(w.reply_cap.take(1'000'000'000));
  cfg.ratelimit.max_replies_per_s = 0;  // no cap
  std::string err;
  // Nobody polls: apply_policy returns after its wait with the old policy
  // still retired, never freed under the worker.
  EXPECT_TRUE(apply_policy(rig.workers, cfg, err)) << err;
  EXPECT_EQ(w.retired.size(), 1u);
  worker_poll_once(w);
  for (int i = 0; i < 100; i++) EXPECT_TRUE(w.reply_cap.take(1'000'000'000));
  worker_poll_once(w);
  EXPECT_EQ(collect_retired(w), 0u);
}

TEST(WorkerPolicy, TableSizeNeedsARestartTheRestApplies) {
  Rig rig(lab_config(), 2);
  config::Config cfg = lab_config();
  cfg.ratelimit.clients = 4096;
  cfg.access.kod = false;
  std::string err;
  EXPECT_FALSE(apply_policy(rig.workers, cfg, err));
  EXPECT_NE(err.find("ratelimit.clients"), std::string::npos) << err;
  EXPECT_NE(err.find("restart"), std::string::npos) << err;
  for (auto& w : rig.workers) {
    worker_poll_once(*w);
    EXPECT_FALSE(w->active_policy->kod);
    EXPECT_EQ(w->limiter->capacity(), 1024u);  // the running table
    EXPECT_EQ(w->active_policy->clients, 1024u) << "the policy says what the worker runs with";
  }
}

TEST(WorkerPolicy, InterleavedServiceNeedsARestartTheRestApplies) {
  Rig rig(lab_config(), 2);
  for (auto& w : rig.workers) EXPECT_TRUE(w->limiter->has_xleave()) << "ntp.interleaved is on by default";
  config::Config cfg = lab_config();
  cfg.ntp.interleaved = false;
  cfg.access.kod = false;
  std::string err;
  EXPECT_FALSE(apply_policy(rig.workers, cfg, err));
  EXPECT_NE(err.find("ntp.interleaved false"), std::string::npos) << err;
  EXPECT_NE(err.find("restart"), std::string::npos) << err;
  for (auto& w : rig.workers) {
    worker_poll_once(*w);
    EXPECT_FALSE(w->active_policy->kod);
    EXPECT_TRUE(w->limiter->has_xleave());
    EXPECT_TRUE(w->active_policy->xleave) << "the policy says what the worker runs with";
  }
}

TEST(WorkerPolicy, SwapsUnderAPollingWorker) {
  // A worker thread polls as fast as it can and reads its policy through the
  // pointer each time (the generation it carries only grows); the main
  // thread reloads 200 times. Every replaced policy is freed by the end,
  // none while the worker could still read it (ASan builds would report).
  config::Config cfg = lab_config();
  Rig rig(cfg);
  WorkerContext& w = rig.w0();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> polls{0}, regressions{0};
  std::thread worker([&] {
    uint32_t last = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      worker_poll_once(w);
      const uint32_t gen = w.active_policy->max_replies_per_s;
      if (gen < last) regressions++;
      last = gen;
      polls.fetch_add(1, std::memory_order_relaxed);
    }
  });
  std::string err;
  size_t still_retired = 0;
  for (int i = 1; i <= 200; i++) {
    cfg.ratelimit.max_replies_per_s = 10000 + i;
    ASSERT_TRUE(apply_policy(rig.workers, cfg, err)) << err;
    still_retired += w.retired.size();
  }
  stop = true;
  worker.join();
  EXPECT_EQ(regressions.load(), 0u);
  EXPECT_GT(polls.load(), 400u);
  EXPECT_EQ(w.active_policy->max_replies_per_s, 10200u);
  // With the worker polling, apply_policy's wait saw each old one go.
  EXPECT_EQ(still_retired, 0u);
  EXPECT_EQ(collect_retired(w), 0u);
}

// ------------------------------------------------------------ the published clock model

TEST(WorkerPublished, ModelCheckedOnceWhenItChangesRefusedCountedOnce) {
  Rig rig(lab_config());
  WorkerContext& w = rig.w0();
  constexpr uint64_t kHz = 2'500'000'000;
  w.tsc_hz = kHz;
  constexpr int64_t kUtc2026 = 1767225600LL * 1'000'000'000;
  const proto::ClockModelData good = hwclock::make_model(1000, kUtc2026, 0.4, kHz);
  rig.seg->clock_model.store(good);
  refresh_published(w);
  EXPECT_EQ(std::memcmp(&w.model, &good, sizeof good), 0);
  EXPECT_EQ(rig.seg->workers[0].model_refused.load(), 0u);

  // A model that is no clock discipline: the last good one stays, counted
  // once however many bursts see it.
  proto::ClockModelData frozen = good;
  frozen.mult = 0;
  rig.seg->clock_model.store(frozen);
  for (int i = 0; i < 5; i++) refresh_published(w);
  EXPECT_EQ(std::memcmp(&w.model, &good, sizeof good), 0);
  EXPECT_EQ(rig.seg->workers[0].model_refused.load(), 1u);
  proto::ClockModelData invalid = good;
  invalid.flags = 0;
  rig.seg->clock_model.store(invalid);
  refresh_published(w);
  refresh_published(w);
  EXPECT_EQ(rig.seg->workers[0].model_refused.load(), 2u);
  // 30 % fast, and another host's timebase: refused too.
  rig.seg->clock_model.store(hwclock::make_model(1000, kUtc2026, 0.4 * 1.3, kHz));
  refresh_published(w);
  rig.seg->clock_model.store(hwclock::make_model(1000, kUtc2026, 1.0, 1'000'000'000));
  refresh_published(w);
  EXPECT_EQ(rig.seg->workers[0].model_refused.load(), 4u);
  EXPECT_EQ(std::memcmp(&w.model, &good, sizeof good), 0);
  // A good one again (the control plane's next second): served.
  const proto::ClockModelData next = hwclock::make_model(5000, kUtc2026 + 1'000'000'000, 0.4 * (1 + 20e-6), kHz);
  rig.seg->clock_model.store(next);
  refresh_published(w);
  EXPECT_EQ(std::memcmp(&w.model, &next, sizeof next), 0);
  EXPECT_EQ(rig.seg->workers[0].model_refused.load(), 4u);
  // Once the worker runs its policy, the bound is clock.max_frequency_ppm's
  // (500 ppm here, hwclock::model_rate_bound): 2 % fast is refused, 300 ppm
  // (a discipline at work) served.
  EXPECT_DOUBLE_EQ(make_policy(lab_config()).max_model_rate_error, hwclock::model_rate_bound(500, 0));
  worker_poll_once(w);
  rig.seg->clock_model.store(hwclock::make_model(9000, kUtc2026 + 2'000'000'000, 0.4 * 1.02, kHz));
  refresh_published(w);
  EXPECT_EQ(rig.seg->workers[0].model_refused.load(), 5u);
  EXPECT_EQ(std::memcmp(&w.model, &next, sizeof next), 0);
  const proto::ClockModelData slow = hwclock::make_model(9000, kUtc2026 + 2'000'000'000, 0.4 * (1 - 300e-6), kHz);
  rig.seg->clock_model.store(slow);
  refresh_published(w);
  EXPECT_EQ(std::memcmp(&w.model, &slow, sizeof slow), 0);
  EXPECT_EQ(rig.seg->workers[0].model_refused.load(), 5u);
}

// ------------------------------------------------------------ the associations' endpoints

proto::AssocEndpoint endpoint(uint32_t ip, uint8_t kind, uint16_t local_port, uint16_t remote_port = 123) {
  proto::AssocEndpoint e{};
  e.address[10] = e.address[11] = 0xFF;
  e.address[12] = static_cast<uint8_t>(ip >> 24);
  e.address[13] = static_cast<uint8_t>(ip >> 16);
  e.address[14] = static_cast<uint8_t>(ip >> 8);
  e.address[15] = static_cast<uint8_t>(ip);
  e.local_port = local_port;
  e.remote_port = remote_port;
  e.kind = kind;
  return e;
}

proto::AssocEndpoints endpoints(std::initializer_list<proto::AssocEndpoint> l) {
  proto::AssocEndpoints e{};
  for (const proto::AssocEndpoint& x : l) e.entries[e.count++] = x;
  return e;
}

bool forwards(WorkerContext& w, uint32_t ip, uint16_t local_port, uint8_t kind = proto::kEndpointClient) {
  return w.assoc().find(ip, 123, local_port, kind) != nullptr;
}

TEST(WorkerEndpoints, OnlyWhatTheControlPlanePublishes) {
  // The dataplane's own configuration names no server: what it forwards
  // comes from the running control plane alone (a reload of ntp-control
  // alone reaches the dataplane).
  config::Config cfg = lab_config();
  cfg.servers.clear();
  cfg.peers.clear();
  Rig rig(cfg);
  WorkerContext& w = rig.w0();
  worker_poll_once(w);
  EXPECT_EQ(w.assoc().size(), 0u) << "generation 0: no control plane yet, nothing forwarded";
  EXPECT_EQ(w.assoc_generation, 0u);
  rig.seg->assoc_endpoints.store(endpoints({endpoint(ip4(192, 0, 2, 9), proto::kEndpointClient, 40001),
                                            endpoint(ip4(10, 0, 0, 3), proto::kEndpointSymmetric, 123)}));
  EXPECT_FALSE(forwards(w, ip4(192, 0, 2, 9), 40001)) << "not before the next poll";
  worker_poll_once(w);
  EXPECT_EQ(w.assoc_generation, 1u);
  EXPECT_TRUE(forwards(w, ip4(192, 0, 2, 9), 40001));
  EXPECT_TRUE(forwards(w, ip4(10, 0, 0, 3), 123, proto::kEndpointSymmetric));

  // And the other way: a dataplane configured with servers forwards
  // nothing of them until the control plane publishes them.
  Rig configured(lab_config());
  worker_poll_once(configured.w0());
  EXPECT_EQ(configured.w0().assoc().size(), 0u);
  EXPECT_FALSE(forwards(configured.w0(), ip4(192, 0, 2, 9), 123));
}

TEST(WorkerEndpoints, NewGenerationSwapsTheTableAtAPoll) {
  Rig rig(lab_config());
  WorkerContext& w = rig.w0();
  rig.seg->assoc_endpoints.store(endpoints({endpoint(ip4(192, 0, 2, 9), proto::kEndpointClient, 40001),
                                            endpoint(ip4(10, 0, 0, 1), proto::kEndpointClient, 40002)}));
  worker_poll_once(w);
  const unsigned first = w.assoc_active;
  AssocEntry* e = w.assoc().find(ip4(192, 0, 2, 9), 123, 40001, proto::kEndpointClient);
  ASSERT_NE(e, nullptr);
  for (int i = 0; i < AssocTable::kBudgetBurst; i++) ASSERT_TRUE(AssocTable::take(*e, 0));
  // A poll without a new generation keeps the table as it is (its budgets too).
  worker_poll_once(w);
  EXPECT_EQ(w.assoc_active, first);
  EXPECT_FALSE(AssocTable::take(*w.assoc().find(ip4(192, 0, 2, 9), 123, 40001, proto::kEndpointClient), 0));
  // The second client association chose a new port (RFC 9109): republished.
  rig.seg->assoc_endpoints.store(endpoints({endpoint(ip4(192, 0, 2, 9), proto::kEndpointClient, 40001),
                                            endpoint(ip4(10, 0, 0, 1), proto::kEndpointClient, 40777)}));
  worker_poll_once(w);
  EXPECT_NE(w.assoc_active, first);
  EXPECT_EQ(w.assoc_generation, 2u);
  EXPECT_TRUE(forwards(w, ip4(10, 0, 0, 1), 40777));
  EXPECT_FALSE(forwards(w, ip4(10, 0, 0, 1), 40002));
  EXPECT_FALSE(AssocTable::take(*w.assoc().find(ip4(192, 0, 2, 9), 123, 40001, proto::kEndpointClient), 0))
      << "an endpoint that stays keeps its spent budget";
  // Several generations between two polls: the worker takes the latest.
  for (uint16_t port = 41000; port < 41010; port++)
    rig.seg->assoc_endpoints.store(endpoints({endpoint(ip4(10, 0, 0, 1), proto::kEndpointClient, port)}));
  worker_poll_once(w);
  EXPECT_EQ(w.assoc_generation, 12u);
  EXPECT_EQ(w.assoc().size(), 1u);
  EXPECT_TRUE(forwards(w, ip4(10, 0, 0, 1), 41009));
}

TEST(WorkerEndpoints, CorruptCountRefusedOnceTheTableStays) {
  Rig rig(lab_config());
  WorkerContext& w = rig.w0();
  rig.seg->assoc_endpoints.store(endpoints({endpoint(ip4(192, 0, 2, 9), proto::kEndpointClient, 40001)}));
  worker_poll_once(w);
  ASSERT_TRUE(forwards(w, ip4(192, 0, 2, 9), 40001));
  // Another process's memory: a count past the array.
  proto::AssocEndpoints bad = endpoints({endpoint(ip4(10, 0, 0, 1), proto::kEndpointClient, 40002)});
  bad.count = proto::kMaxAssocEndpoints + 1;
  rig.seg->assoc_endpoints.store(bad);
  worker_poll_once(w);
  worker_poll_once(w);
  EXPECT_EQ(w.counters->assoc_endpoints_refused.load(), 1u) << "refused once per generation, not at every poll";
  EXPECT_TRUE(forwards(w, ip4(192, 0, 2, 9), 40001)) << "the table in use stays";
  EXPECT_FALSE(forwards(w, ip4(10, 0, 0, 1), 40002));
  // The next good set is taken.
  rig.seg->assoc_endpoints.store(endpoints({endpoint(ip4(10, 0, 0, 1), proto::kEndpointClient, 40002)}));
  worker_poll_once(w);
  EXPECT_TRUE(forwards(w, ip4(10, 0, 0, 1), 40002));
  EXPECT_FALSE(forwards(w, ip4(192, 0, 2, 9), 40001));
  EXPECT_EQ(w.counters->assoc_endpoints_refused.load(), 1u);
}

TEST(WorkerEndpoints, FollowsAWriterUnderAPollingWorker) {
  // The control plane republishes while the worker polls: the worker never
  // builds a table from a torn set (each set's two entries share a port),
  // and ends on the last one.
  Rig rig(lab_config());
  WorkerContext& w = rig.w0();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> torn{0}, polls{0};
  std::thread worker([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      worker_poll_once(w);
      const AssocTable& t = w.assoc();
      if (t.size() == 2 && t[0].local_port != t[1].local_port) torn++;
      if (t.size() != 0 && t.size() != 2) torn++;
      polls++;
    }
  });
  uint16_t port = 40000;
  for (int i = 0; i < 20000; i++, port++)
    rig.seg->assoc_endpoints.store(endpoints({endpoint(ip4(10, 0, 0, 1), proto::kEndpointClient, port),
                                              endpoint(ip4(10, 0, 0, 2), proto::kEndpointClient, port)}));
  while (w.assoc_generation != 20000 && polls.load() < 100'000'000) std::this_thread::yield();
  stop = true;
  worker.join();
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_EQ(w.assoc_generation, 20000u);
  EXPECT_TRUE(forwards(w, ip4(10, 0, 0, 2), static_cast<uint16_t>(port - 1)));
}

// ------------------------------------------------------------ the control plane's tx ring

proto::TxPacket good_packet() {
  proto::TxPacket t{};
  t.cookie = 77;
  t.dst_ip = ip4(10, 0, 0, 9);
  t.dst_port = 123;
  t.src_port = 40001;
  t.port = 0xFFFF;
  t.len = 48;
  return t;
}

TEST(WorkerControlTx, WhatMakesAPacket) {
  EXPECT_TRUE(control_packet_valid(good_packet()));
  auto with = [](auto change) {
    proto::TxPacket t = good_packet();
    change(t);
    return control_packet_valid(t);
  };
  EXPECT_FALSE(with([](proto::TxPacket& t) { t.len = 47; }));
  EXPECT_FALSE(with([](proto::TxPacket& t) { t.len = 0; }));
  EXPECT_TRUE(with([](proto::TxPacket& t) { t.len = proto::kMaxRingPayload; }));
  EXPECT_FALSE(with([](proto::TxPacket& t) { t.len = proto::kMaxRingPayload + 1; }));
  EXPECT_FALSE(with([](proto::TxPacket& t) { t.len = 0xFFFF; }));
  EXPECT_FALSE(with([](proto::TxPacket& t) { t.dst_ip = 0; }));
  EXPECT_FALSE(with([](proto::TxPacket& t) { t.dst_ip = ip4(0, 1, 2, 3); }));
  EXPECT_FALSE(with([](proto::TxPacket& t) { t.dst_ip = ip4(127, 0, 0, 1); }));
  EXPECT_FALSE(with([](proto::TxPacket& t) { t.dst_ip = ip4(224, 0, 1, 1); }));
  EXPECT_FALSE(with([](proto::TxPacket& t) { t.dst_ip = ip4(239, 255, 255, 250); }));
  EXPECT_FALSE(with([](proto::TxPacket& t) { t.dst_ip = ip4(240, 0, 0, 1); }));
  EXPECT_FALSE(with([](proto::TxPacket& t) { t.dst_ip = 0xFFFFFFFF; }));
  EXPECT_FALSE(with([](proto::TxPacket& t) { t.dst_port = 0; }));
  EXPECT_FALSE(with([](proto::TxPacket& t) { t.src_port = 0; }));
  EXPECT_TRUE(with([](proto::TxPacket& t) { t.dst_ip = ip4(223, 255, 255, 254); }));
}

// An rte_ring in plain memory, as the segment holds them (no EAL).
struct PlainRing {
  void* mem = nullptr;
  rte_ring* r = nullptr;
  PlainRing(const char* name, size_t elem, unsigned count) {
    const ssize_t bytes = rte_ring_get_memsize_elem(static_cast<unsigned>(elem), count);
    mem = std::aligned_alloc(64, static_cast<size_t>((bytes + 63) / 64 * 64));
    r = static_cast<rte_ring*>(mem);
    if (rte_ring_init(r, name, count, RING_F_SP_ENQ | RING_F_SC_DEQ) != 0) r = nullptr;
  }
  ~PlainRing() { std::free(mem); }
};

TEST(WorkerControlTx, BadEntriesRefusedAndReported) {
  proto::SegmentHeader seg{};
  auto owned = std::make_unique<WorkerContext>();
  WorkerContext& ctx = *owned;
  ctx.segment = &seg;
  ctx.counters = &seg.workers[0];
  ctx.tsc_hz = 1'000'000'000;
  ctx.n_ports = 1;
  ctx.ports[0].identity.ipv4 = ip4(10, 0, 0, 1);
  ctx.ports[0].identity.prefix_len = 24;
  PlainRing tx("tx", sizeof(proto::TxPacket), 16), rep("rep", sizeof(proto::TxReport), 16);
  ASSERT_NE(tx.r, nullptr);
  ASSERT_NE(rep.r, nullptr);
  ctx.from_control = tx.r;
  ctx.tx_reports = rep.r;

  std::vector<proto::TxPacket> bad;
  for (auto change : std::vector<void (*)(proto::TxPacket&)>{
           [](proto::TxPacket& t) { t.len = 12; },
           [](proto::TxPacket& t) { t.len = 60000; },
           [](proto::TxPacket& t) { t.dst_ip = 0xFFFFFFFF; },
           [](proto::TxPacket& t) { t.dst_ip = ip4(10, 0, 0, 255); },  // the port's subnet broadcast
           [](proto::TxPacket& t) { t.dst_port = 0; },
           [](proto::TxPacket& t) { t.src_ip = ip4(10, 0, 0, 99); },  // not our address
       }) {
    proto::TxPacket t = good_packet();
    change(t);
    t.cookie = 100 + bad.size();
    bad.push_back(t);
  }
  for (proto::TxPacket& t : bad) ASSERT_EQ(rte_ring_enqueue_elem(tx.r, &t, sizeof t), 0);
  unsigned done = 0;
  while (!rte_ring_empty(tx.r)) done += service_control_tx(ctx);
  EXPECT_EQ(done, bad.size());
  EXPECT_EQ(seg.workers[0].drops[static_cast<size_t>(proto::DropReason::kBadControlPacket)].load(), bad.size());
  EXPECT_EQ(seg.workers[0].control_tx.load(), 0u);
  for (size_t i = 0; i < bad.size(); i++) {
    proto::TxReport r{};
    ASSERT_EQ(rte_ring_dequeue_elem(rep.r, &r, sizeof r), 0);
    EXPECT_EQ(r.cookie, 100 + i);
    EXPECT_EQ(r.status, static_cast<uint32_t>(proto::DropReason::kBadControlPacket) + 1);
  }
}

// ------------------------------------------------------------ auth.keys_file

// A keys file of this test's own, 0600 in a directory it removes.
struct KeysDir {
  std::string dir, file;
  KeysDir() {
    char tmpl[] = "/tmp/test_worker_keys.XXXXXX";
    dir = mkdtemp(tmpl);
    file = dir + "/keys";
  }
  void write(const std::string& text, mode_t mode = 0600) const {
    std::FILE* f = std::fopen(file.c_str(), "w");
    std::fputs(text.c_str(), f);
    std::fclose(f);
    chmod(file.c_str(), mode);
  }
  ~KeysDir() {
    unlink(file.c_str());
    rmdir(dir.c_str());
  }
};

constexpr const char* kThreeKeys =
    "1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n"
    "2 SHA256 ASCII:a-long-shared-secret\n"
    "7 HMAC-SHA256 ASCII:the-vendors-secret\n";

TEST(WorkerPolicy, KeysFromTheKeysFile) {
  KeysDir d;
  d.write(kThreeKeys);
  config::Config cfg = lab_config();
  EXPECT_EQ(make_policy(cfg).keys, nullptr);  // no keys_file: no keys
  cfg.auth.keys_file = d.file;
  cfg.auth.trusted_keys = {2, 9};
  cfg.auth.authenticate = true;
  std::vector<std::string> errors;
  const Policy p = make_policy(cfg, &errors);
  EXPECT_TRUE(errors.empty()) << errors.front();
  ASSERT_NE(p.keys, nullptr);
  EXPECT_EQ(p.keys->count, 3u);
  ASSERT_NE(p.keys->find(7), nullptr);
  EXPECT_EQ(p.keys->find(7)->type, crypto::MacType::kHmacSha256);
  EXPECT_EQ(p.keys->find(3), nullptr);
  // Trusted: the file's keys that trusted_keys names (9 is not in it).
  ASSERT_NE(p.trusted_keys, nullptr);
  EXPECT_EQ(p.trusted_keys->count, 1u);
  EXPECT_NE(p.trusted_keys->find(2), nullptr);
  EXPECT_EQ(p.trusted_keys->find(1), nullptr);
  EXPECT_TRUE(p.authenticate);
}

TEST(WorkerPolicy, KeysFileWithErrorsOnReloadKeepsTheRunningPolicy) {
  KeysDir d;
  d.write(kThreeKeys);
  config::Config cfg = lab_config();
  cfg.auth.keys_file = d.file;
  Rig rig(cfg);
  WorkerContext& w = rig.w0();
  worker_poll_once(w);
  const Policy* running = w.policy_storage.get();
  ASSERT_NE(running->keys, nullptr);
  // A bad line: refused with its file:line, nothing published.
  d.write(std::string(kThreeKeys) + "8 AES128 HEX:00\n");
  config::Config next = cfg;
  next.access.kod = false;
  std::string err;
  EXPECT_FALSE(apply_policy(rig.workers, next, err));
  EXPECT_NE(err.find(d.file + ":4"), std::string::npos) << err;
  EXPECT_EQ(w.policy_storage.get(), running);
  EXPECT_TRUE(w.policy_storage->kod);
  // Readable by others: refused too.
  d.write(kThreeKeys, 0644);
  EXPECT_FALSE(apply_policy(rig.workers, next, err));
  EXPECT_NE(err.find("chmod 600"), std::string::npos) << err;
  EXPECT_EQ(w.policy_storage.get(), running);
  // Fixed: the new keys and the rest apply.
  d.write("5 MD5 ASCII:legacy-secret\n");
  EXPECT_TRUE(apply_policy(rig.workers, next, err)) << err;
  ASSERT_NE(w.policy_storage->keys, nullptr);
  EXPECT_EQ(w.policy_storage->keys->count, 1u);
  EXPECT_NE(w.policy_storage->keys->find(5), nullptr);
  EXPECT_FALSE(w.policy_storage->kod);
}

TEST(WorkerControlTx, MacOnlyWithAKeyWeHoldAndALengthItsTypeAllows) {
  KeysDir d;
  d.write(kThreeKeys);
  config::Config cfg = lab_config();
  cfg.auth.keys_file = d.file;
  const Policy p = make_policy(cfg);
  ASSERT_NE(p.keys, nullptr);
  auto mac = [&](uint32_t id, uint16_t digest, uint16_t len = 48, const crypto::KeyTable* keys = nullptr) {
    proto::TxPacket t = good_packet();
    t.flags = proto::kTxMac;
    t.key_id = id;
    t.mac_digest_bytes = digest;
    t.len = len;
    return control_mac_valid(t, keys ? keys : p.keys.get());
  };
  EXPECT_TRUE(mac(1, 16));         // AES128: 16
  EXPECT_FALSE(mac(1, 20));
  EXPECT_FALSE(mac(1, 32));
  EXPECT_TRUE(mac(2, 32));         // SHA256: 32, or 20 in NTPv4
  EXPECT_TRUE(mac(2, 20));
  EXPECT_FALSE(mac(2, 16));
  EXPECT_FALSE(mac(2, 0));
  EXPECT_FALSE(mac(2, 0xFFFF));    // shared memory: never trusted
  EXPECT_TRUE(mac(7, 20));
  EXPECT_FALSE(mac(3, 16));        // not a key we hold
  EXPECT_FALSE(mac(0, 16));
  EXPECT_FALSE(mac(2, 32, 50));    // not whole words
  EXPECT_TRUE(mac(2, 32, proto::kMaxRingPayload));
  proto::TxPacket t = good_packet();
  t.flags = proto::kTxMac;
  t.key_id = 1;
  t.mac_digest_bytes = 16;
  EXPECT_FALSE(control_mac_valid(t, nullptr));  // no keys at all
}

TEST(WorkerControlTx, MacWithAnUnknownKeyRefusedAndReported) {
  KeysDir d;
  d.write(kThreeKeys);
  config::Config cfg = lab_config();
  cfg.auth.keys_file = d.file;
  Rig rig(cfg);
  WorkerContext& ctx = rig.w0();
  ctx.tsc_hz = 1'000'000'000;
  ctx.n_ports = 1;
  ctx.ports[0].identity.ipv4 = ip4(10, 0, 0, 1);
  ctx.ports[0].identity.prefix_len = 24;
  PlainRing tx("txm", sizeof(proto::TxPacket), 16), rep("repm", sizeof(proto::TxReport), 16);
  ASSERT_NE(tx.r, nullptr);
  ASSERT_NE(rep.r, nullptr);
  ctx.from_control = tx.r;
  ctx.tx_reports = rep.r;
  worker_poll_once(ctx);  // adopts the policy with the keys
  proto::TxPacket t = good_packet();
  t.flags = proto::kTxMac | proto::kTxStampTransmit;
  t.key_id = 3;  // not in the file
  t.mac_digest_bytes = 16;
  t.cookie = 555;
  ASSERT_EQ(rte_ring_enqueue_elem(tx.r, &t, sizeof t), 0);
  EXPECT_EQ(service_control_tx(ctx), 1u);
  EXPECT_EQ(rig.seg->workers[0].drops[static_cast<size_t>(proto::DropReason::kBadControlPacket)].load(), 1u);
  proto::TxReport r{};
  ASSERT_EQ(rte_ring_dequeue_elem(rep.r, &r, sizeof r), 0);
  EXPECT_EQ(r.cookie, 555u);
  EXPECT_EQ(r.status, static_cast<uint32_t>(proto::DropReason::kBadControlPacket) + 1);
}

// A kTxMac packet that waited for ARP while a reload changed the keys: at
// send it is checked again against the keys of then.
TEST(WorkerControlTx, MacCheckedAgainWhenItGoes) {
  KeysDir d;
  d.write(kThreeKeys);
  config::Config cfg = lab_config();
  cfg.auth.keys_file = d.file;
  const Policy before = make_policy(cfg);
  ASSERT_NE(before.keys, nullptr);
  constexpr size_t kUdpAt = 14 + 20 + 8;
  // Key 2 (SHA256) with its full 32-byte digest after a 48-byte header, as
  // service_control_tx built it: 42 + 48 + 4 + 32 bytes of frame.
  PendingTx p;
  p.mac_key_id = 2;
  p.mac_covered = 48;
  p.mac_digest_bytes = 32;
  const size_t frame = kUdpAt + 48 + 4 + 32, room = 2048;
  EXPECT_EQ(mac_key_at_send(p, before.keys.get(), frame, room), before.keys->find(2));
  // The reload: key 2 is AES128 now (16-byte digests), key 7 is gone.
  d.write("1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n"
          "2 AES128 HEX:000102030405060708090A0B0C0D0E0F\n");
  const Policy after = make_policy(cfg);
  ASSERT_NE(after.keys, nullptr);
  EXPECT_EQ(mac_key_at_send(p, after.keys.get(), frame, room), nullptr) << "32 bytes of an AES128 digest";
  PendingTx p7 = p;
  p7.mac_key_id = 7;
  p7.mac_digest_bytes = 20;
  EXPECT_NE(mac_key_at_send(p7, before.keys.get(), kUdpAt + 48 + 24, room), nullptr);
  EXPECT_EQ(mac_key_at_send(p7, after.keys.get(), kUdpAt + 48 + 24, room), nullptr) << "the key is gone";
  EXPECT_EQ(mac_key_at_send(p, nullptr, frame, room), nullptr) << "no keys at all";
  // The digest length the new type allows, in a frame built for it.
  PendingTx p16 = p;
  p16.mac_digest_bytes = 16;
  EXPECT_EQ(mac_key_at_send(p16, after.keys.get(), kUdpAt + 48 + 20, room), after.keys->find(2));
  // The sealed packet must be the frame that was built, within its buffer.
  EXPECT_EQ(mac_key_at_send(p16, after.keys.get(), kUdpAt + 48 + 20 + 4, room), nullptr);
  EXPECT_EQ(mac_key_at_send(p16, after.keys.get(), kUdpAt + 48 + 20, kUdpAt + 48 + 19), nullptr);
  PendingTx odd = p16;
  odd.mac_covered = 50;  // not whole words
  EXPECT_EQ(mac_key_at_send(odd, after.keys.get(), kUdpAt + 50 + 20, room), nullptr);
  PendingTx big = p16;
  big.mac_covered = proto::kMaxRingPayload + 4;
  EXPECT_EQ(mac_key_at_send(big, after.keys.get(), kUdpAt + big.mac_covered + 20, room + 1024), nullptr);
}

TEST(WorkerPolicy, KeysFingerprintPublishedAtStartAndAfterEachReload) {
  KeysDir d;
  d.write(kThreeKeys);
  config::Config cfg = lab_config();
  Rig rig(cfg);
  proto::KeysFingerprintData fp;
  ASSERT_TRUE(rig.seg->keys_fingerprint.try_load(fp));
  EXPECT_EQ(fp.flags, 0u) << "not written before the dataplane does";
  // Without a keys file: the empty table's, said so.
  publish_keys_fingerprint(*rig.seg, *rig.w0().policy_storage);
  ASSERT_TRUE(rig.seg->keys_fingerprint.try_load(fp));
  EXPECT_EQ(fp.flags, proto::kKeysFingerprintValid | proto::kKeysNoFile);
  EXPECT_EQ(fp.key_count, 0u);
  EXPECT_EQ(0, std::memcmp(fp.fingerprint, crypto::kEmptyKeyTableFingerprint.data(), 16));
  // A reload that loads the file: its table's fingerprint.
  cfg.auth.keys_file = d.file;
  std::string err;
  ASSERT_TRUE(apply_policy(rig.workers, cfg, err)) << err;
  const uint64_t gen = rig.seg->keys_fingerprint.generation();
  ASSERT_TRUE(rig.seg->keys_fingerprint.try_load(fp));
  EXPECT_EQ(fp.flags, proto::kKeysFingerprintValid);
  EXPECT_EQ(fp.key_count, 3u);
  const crypto::KeyTableFingerprint three = crypto::fingerprint(*rig.w0().policy_storage->keys);
  EXPECT_EQ(0, std::memcmp(fp.fingerprint, three.data(), 16));
  EXPECT_NE(0, std::memcmp(fp.fingerprint, crypto::kEmptyKeyTableFingerprint.data(), 16));
  // A file with an error: refused, the running keys and their fingerprint stay.
  d.write(std::string(kThreeKeys) + "8 AES128 HEX:00\n");
  EXPECT_FALSE(apply_policy(rig.workers, cfg, err));
  EXPECT_EQ(rig.seg->keys_fingerprint.generation(), gen);
  // A new secret for key 2: another fingerprint, same count.
  d.write("1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n"
          "2 SHA256 ASCII:another-shared-secret\n"
          "7 HMAC-SHA256 ASCII:the-vendors-secret\n");
  ASSERT_TRUE(apply_policy(rig.workers, cfg, err)) << err;
  EXPECT_GT(rig.seg->keys_fingerprint.generation(), gen);
  ASSERT_TRUE(rig.seg->keys_fingerprint.try_load(fp));
  EXPECT_EQ(fp.key_count, 3u);
  EXPECT_NE(0, std::memcmp(fp.fingerprint, three.data(), 16));
  const crypto::KeyTableFingerprint now = crypto::fingerprint(*rig.w0().policy_storage->keys);
  EXPECT_EQ(0, std::memcmp(fp.fingerprint, now.data(), 16));
}

}  // namespace
}  // namespace ntp::dp
