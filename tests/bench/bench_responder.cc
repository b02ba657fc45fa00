// Cost per packet of the pure packet logic (Google Benchmark). Figures, not
// tests: tests/bench/run.sh prints a summary.
//
//   respond              dp::respond on a captured chronyd request
//   handle_frame+stamp   dp::handle_frame + stamp_transmit on a full
//                        Ethernet/IPv4/UDP/NTP request frame (90 bytes)
//   restore_48/90        the restoring memcpy alone: subtract it from the
//                        two above to get the cost of the logic itself
// Both work on a ring of kSlots buffers (all in L1): each iteration
// answers slot i and restores the request bytes of slot i + kSlots/2 with a
// memcpy. Restoring the very buffer about to be handled would make the
// handler's loads wait on the memcpy's still-pending stores (a load that
// spans two stores cannot be forwarded from them), a stall a NIC's DMA,
// long finished when the worker reads the frame, never causes: it
// inflated handle_frame by about a third.
//   handle_frame_sources/N   handle_frame+stamp with requests from N
//                        distinct sources (each restore rewrites the source
//                        address and both checksums, RFC 1624), the default
//                        policy and no limiter: the baseline for
//   handle_frame_policy/N    the same with issue 9's policy on: an access
//                        list of 300 prefixes, the clients in the
//                        rate-limited class, a 2^20-entry limiter (limits
//                        every client stays within), KoD on, a reply cap;
//                        the difference is what the policy adds per packet
//                        (N = 2^20: a table far larger than the caches)
//   handle_frame_access/N    the policy without the limiter: the access
//                        lookup, the forwarding rules and the reply cap
//   reply_params         dp::reply_params, once per burst in the worker
//   ntp_from_unix_ns, model_to_ns, read_tsc, tx_timestamp (the three
//                        together, as the worker takes a timestamp)
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "dataplane/frame.h"
#include "dataplane/inet.h"
#include "dataplane/ratelimit.h"
#include "dataplane/responder.h"
#include "hwclock/clock_model.h"
#include "hwclock/tsc.h"
#include "proto/ntp_packet.h"
#include "proto/ntp_time.h"
#include "tests/support/golden/requests.h"
#include "tests/support/reply_fixtures.h"

namespace {

using namespace ntp;

constexpr uint8_t kPortMac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
constexpr uint8_t kClientMac[6] = {0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0x01};
constexpr uint32_t kPortIp = 0x0A00011F;    // 10.0.1.31
constexpr uint32_t kClientIp = 0x0A000102;  // 10.0.1.2
constexpr size_t kFrameLen = 14 + 20 + 8 + 48;

struct alignas(64) Frame {
  uint8_t bytes[kFrameLen + 4 + 2];  // 96: room for a crypto-NAK
};
constexpr unsigned kSlots = 64;  // 6 KiB of frames

Frame request_frame() {
  Frame f{};
  std::memcpy(f.bytes + 14 + 20 + 8, golden::kChronyRequest0, 48);
  dp::build_udp_frame(f.bytes, kClientMac, kPortMac, kClientIp, kPortIp, 48325, proto::kNtpPort, 48);
  return f;
}

void BM_restore_48(benchmark::State& state) {
  alignas(64) static uint8_t buf[kSlots][64];
  unsigned i = 0;
  for (auto _ : state) {
    std::memcpy(buf[(i + kSlots / 2) % kSlots], golden::kChronyRequest0, 48);
    benchmark::DoNotOptimize(buf[i]);
    benchmark::ClobberMemory();
    i = (i + 1) % kSlots;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_restore_48);

void BM_respond(benchmark::State& state) {
  alignas(64) static uint8_t buf[kSlots][64];
  for (auto& b : buf) std::memcpy(b, golden::kChronyRequest0, 48);
  const dp::ReplyParams p = test::fixed_reply_params();
  proto::NtpTimestamp rx{0xEBD4A1B2u, 0x10000000u};
  if (dp::respond(buf[0], 48, rx, p, true).action != dp::NtpAction::kReply) {
    state.SkipWithError("the chronyd request was not answered");
    return;
  }
  std::memcpy(buf[0], golden::kChronyRequest0, 48);
  unsigned i = 0;
  for (auto _ : state) {
    const dp::NtpDecision d = dp::respond(buf[i], 48, rx, p, true);
    benchmark::DoNotOptimize(d);
    std::memcpy(buf[(i + kSlots / 2) % kSlots], golden::kChronyRequest0, 48);
    benchmark::ClobberMemory();
    rx.fraction += 4295;  // about 1 us
    i = (i + 1) % kSlots;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_respond);

void BM_restore_90(benchmark::State& state) {
  const Frame tpl = request_frame();
  static Frame f[kSlots];
  unsigned i = 0;
  for (auto _ : state) {
    std::memcpy(f[(i + kSlots / 2) % kSlots].bytes, tpl.bytes, kFrameLen);
    benchmark::DoNotOptimize(f[i].bytes);
    benchmark::ClobberMemory();
    i = (i + 1) % kSlots;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_restore_90);

void BM_handle_frame_stamp(benchmark::State& state) {
  const Frame tpl = request_frame();
  static Frame f[kSlots];
  for (auto& x : f) x = tpl;
  dp::PortIdentity port;
  std::memcpy(port.mac, kPortMac, 6);
  port.ipv4 = kPortIp;
  port.prefix_len = 24;
  port.ntp_server = true;
  const dp::ReplyParams p = test::fixed_reply_params();
  dp::NeighbourTable neighbours;
  proto::NtpTimestamp rx{0xEBD4A1B2u, 0x10000000u};
  const dp::FrameVerdict v0 = dp::handle_frame(f[0].bytes, kFrameLen, port, p, rx, neighbours, 0);
  if (v0.action != dp::FrameAction::kTransmit || v0.kind != dp::ReplyKind::kNtp) {
    state.SkipWithError("the request frame was not answered");
    return;
  }
  f[0] = tpl;
  unsigned i = 0;
  for (auto _ : state) {
    const dp::FrameVerdict v = dp::handle_frame(f[i].bytes, kFrameLen, port, p, rx, neighbours, 0);
    proto::NtpTimestamp tx = rx;
    tx.fraction += 21475;  // 5 us later
    dp::stamp_transmit(f[i].bytes, v.ntp_offset, tx);
    benchmark::DoNotOptimize(v);
    std::memcpy(f[(i + kSlots / 2) % kSlots].bytes, tpl.bytes, kFrameLen);
    benchmark::ClobberMemory();
    rx.fraction += 4295;
    i = (i + 1) % kSlots;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_handle_frame_stamp);

// RFC 1624 eqn. 3: a checksum after a 32-bit field went from `from` to `to`.
uint16_t csum_replace32(uint16_t ck, uint32_t from, uint32_t to) {
  uint32_t s = static_cast<uint16_t>(~ck);
  s += static_cast<uint16_t>(~(from >> 16)) + static_cast<uint16_t>(~from & 0xFFFF) + (to >> 16) + (to & 0xFFFF);
  while (s >> 16) s = (s & 0xFFFF) + (s >> 16);
  return static_cast<uint16_t>(~s);
}

// The request template from source `src` instead of kClientIp.
void restore_from(uint8_t* f, const Frame& tpl, uint32_t src) {
  std::memcpy(f, tpl.bytes, kFrameLen);
  uint8_t* ip = f + 14;
  proto::store_be32(ip + 12, src);
  proto::store_be16(ip + 10, csum_replace32(proto::load_be16(ip + 10), kClientIp, src));
  const uint16_t uck = csum_replace32(proto::load_be16(ip + 26), kClientIp, src);
  proto::store_be16(ip + 26, uck == 0 ? 0xFFFF : uck);
}

dp::Policy bench_policy() {
  dp::Policy pol;
  std::vector<proto::AccessRule> rules;
  const proto::AccessClass classes[] = {proto::AccessClass::kDeny, proto::AccessClass::kPeer,
                                        proto::AccessClass::kServer, proto::AccessClass::kSynchronization,
                                        proto::AccessClass::kQuery};
  for (uint32_t i = 0; i < 300; i++) {  // 11.x - 210.x, never 10/8
    const uint32_t net = (11u + i * 7 % 200) << 24 | (i * 37 % 256) << 16 | (i % 3 == 0 ? 0 : (i * 11 % 256) << 8);
    rules.push_back({net, static_cast<uint8_t>(i % 3 == 0 ? 16 : 24), classes[i % 5]});
  }
  pol.access = proto::AccessTable(rules, proto::AccessClass::kLimited);
  pol.kod = true;
  pol.limits.interval_log2 = -4;
  pol.limits.burst = 255;
  pol.clients = size_t{1} << 20;
  return pol;
}

void run_sources(benchmark::State& state, bool with_policy, bool with_limiter = true) {
  const uint32_t sources = static_cast<uint32_t>(state.range(0));
  const Frame tpl = request_frame();
  static Frame f[kSlots];
  dp::PortIdentity port;
  std::memcpy(port.mac, kPortMac, 6);
  port.ipv4 = kPortIp;
  port.prefix_len = 24;
  port.ntp_server = true;
  const dp::ReplyParams p = test::fixed_reply_params();
  dp::NeighbourTable neighbours;
  static const dp::Policy pol = bench_policy();
  static dp::RateLimiter limiter(pol.clients, pol.limits, 0x9E3779B97F4A7C15ULL);
  dp::ReplyCap cap(4'000'000'000u);  // taken per answer, never binding here
  dp::PolicyEnv env;
  if (with_policy) {
    env.policy = &pol;
    env.limiter = with_limiter ? &limiter : nullptr;
    env.cap = &cap;
  }
  const uint32_t base = 0x0A800000;  // 10.128.0.0/9
  uint32_t next = 0;
  for (auto& x : f) restore_from(x.bytes, tpl, base + next++ % sources);
  proto::NtpTimestamp rx{0xEBD4A1B2u, 0x10000000u};
  int64_t now_ns = 1'000'000'000;
  unsigned i = 0;
  uint64_t answered = 0;
  for (auto _ : state) {
    env.now_ns = now_ns;
    const dp::FrameVerdict v = dp::handle_frame(f[i].bytes, kFrameLen, port, p, rx, neighbours, 0, env);
    answered += v.kind == dp::ReplyKind::kNtp;
    proto::NtpTimestamp tx = rx;
    tx.fraction += 21475;  // 5 us later
    dp::stamp_transmit(f[i].bytes, v.ntp_offset, tx);
    benchmark::DoNotOptimize(v);
    // The worker asks for a burst's buckets before it handles them; here
    // for the frame handled kSlots/2 iterations from now.
    if (env.limiter) limiter.prefetch_v4(base + next % sources);
    restore_from(f[(i + kSlots / 2) % kSlots].bytes, tpl, base + next++ % sources);
    benchmark::ClobberMemory();
    rx.fraction += 4295;
    now_ns += 100;  // 10 Mpps
    i = (i + 1) % kSlots;
  }
  if (answered != static_cast<uint64_t>(state.iterations())) state.SkipWithError("not every request was answered in mode 4");
  state.SetItemsProcessed(state.iterations());
}
void BM_handle_frame_sources(benchmark::State& state) { run_sources(state, false); }
void BM_handle_frame_policy(benchmark::State& state) { run_sources(state, true); }
void BM_handle_frame_access(benchmark::State& state) { run_sources(state, true, false); }
BENCHMARK(BM_handle_frame_sources)->Arg(1 << 20);
BENCHMARK(BM_handle_frame_policy)->Arg(1 << 20);
BENCHMARK(BM_handle_frame_access)->Arg(1 << 20);

void BM_reply_params(benchmark::State& state) {
  proto::ServerStateData s;
  s.leap = 0;
  s.stratum = 2;
  s.precision_log2 = -24;
  s.synchronized = 1;
  s.refid = 0x0A000101;
  s.reference_time_ns = 1'795'670'000'000'000'000;
  s.root_delay_ns = 1'000'000;
  s.root_dispersion_ns = 2'000'000;
  s.published_ns = 1'795'670'010'000'000'000;
  s.holdover_ns = 300'000'000'000;
  int64_t now = s.published_ns + 1'000'000'000;
  for (auto _ : state) {
    benchmark::DoNotOptimize(now);
    const dp::ReplyParams p = dp::reply_params(s, true, now);
    benchmark::DoNotOptimize(p);
    now += 1000;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_reply_params);

void BM_ntp_from_unix_ns(benchmark::State& state) {
  int64_t ns = 1'795'670'017'942'419'000;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ns);
    const proto::NtpTimestamp t = proto::ntp_from_unix_ns(ns);
    benchmark::DoNotOptimize(t);
    ns += 1237;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ntp_from_unix_ns);

proto::ClockModelData test_model() {
  return hwclock::make_model(hwclock::read_tsc(), 1'795'670'017'942'419'000, 1e9 / 2.45e9, 2'450'000'000);
}

void BM_model_to_ns(benchmark::State& state) {
  const proto::ClockModelData m = test_model();
  uint64_t raw = m.raw0 + 123456789;
  for (auto _ : state) {
    benchmark::DoNotOptimize(raw);
    const int64_t ns = hwclock::model_to_ns(m, raw);
    benchmark::DoNotOptimize(ns);
    raw += 2451;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_model_to_ns);

void BM_read_tsc(benchmark::State& state) {
  for (auto _ : state) {
    const uint64_t t = hwclock::read_tsc();
    benchmark::DoNotOptimize(t);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_read_tsc);

// A timestamp as the worker takes one: TSC, model, wire format.
void BM_tx_timestamp(benchmark::State& state) {
  const proto::ClockModelData m = test_model();
  for (auto _ : state) {
    benchmark::DoNotOptimize(m);
    const proto::NtpTimestamp t = proto::ntp_from_unix_ns(hwclock::model_to_ns(m, hwclock::read_tsc()));
    benchmark::DoNotOptimize(t);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_tx_timestamp);

}  // namespace

BENCHMARK_MAIN();
