// Cost of the per-packet MAC work the dataplane will do for an authenticated
// mode-3 request (crypto/mac.h), per key type, over a 48-byte NTP header
// (Google Benchmark). Figures, not tests.
//
//   compute/TYPE        mac_compute over 48 bytes (the reply's MAC), the
//                       NTPv4 wire length (20 bytes at most)
//   verify/TYPE         mac_verify of a good MAC over 48 bytes (the request)
//   verify_compute/TYPE both: what one authenticated request costs in crypto
//   check_append/TYPE   check_mac (find among 16 keys + verify) and append_mac:
//                       the responder's calls for one authenticated request
//   verify_bad/TYPE     mac_verify of a wrong MAC (a forged request: same cost,
//                       the compare is constant-time)
//   find/N              KeyTable::find among N keys (ids spread, lookups random)
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>

#include "crypto/mac.h"

namespace {

using namespace ntp::crypto;

constexpr MacType kTypes[] = {MacType::kAes128Cmac, MacType::kHmacSha256, MacType::kSha256, MacType::kSha1,
                              MacType::kMd5};

MacKey key_of(MacType type) {
  static const uint8_t secret[20] = {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7,
                                     0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c, 0x01, 0x02, 0x03, 0x04};
  MacKey k;
  mac_key_init(k, 1, type, secret, type == MacType::kAes128Cmac ? kAes128KeyBytes : sizeof secret);
  return k;
}

struct Packet {
  uint8_t bytes[48];
  Packet() {
    std::memset(bytes, 0, sizeof bytes);
    bytes[0] = 0x23;  // LI 0, VN 4, mode 3
    for (int i = 40; i < 48; ++i) bytes[i] = static_cast<uint8_t>(i * 37);
  }
  // A different transmit timestamp per packet, as real requests have.
  void next() { ++bytes[47]; }
};

void BM_compute(benchmark::State& state) {
  const MacKey k = key_of(static_cast<MacType>(state.range(0)));
  const size_t n = mac_wire_digest_bytes(k, 4);
  Packet p;
  uint8_t out[kMaxDigestBytes];
  for (auto _ : state) {
    p.next();
    benchmark::DoNotOptimize(mac_compute(k, p.bytes, sizeof p.bytes, out, n));
    benchmark::ClobberMemory();
  }
  state.SetLabel(mac_type_name(k.type));
}

void BM_verify(benchmark::State& state) {
  const MacKey k = key_of(static_cast<MacType>(state.range(0)));
  const size_t n = mac_wire_digest_bytes(k, 4);
  Packet p;
  uint8_t mac[kMaxDigestBytes];
  mac_compute(k, p.bytes, sizeof p.bytes, mac, n);
  bool ok = true;
  for (auto _ : state) {
    ok &= mac_verify(k, p.bytes, sizeof p.bytes, mac, n);
    benchmark::DoNotOptimize(ok);
  }
  if (!ok) state.SkipWithError("a good MAC did not verify");
  state.SetLabel(mac_type_name(k.type));
}

void BM_verify_bad(benchmark::State& state) {
  const MacKey k = key_of(static_cast<MacType>(state.range(0)));
  const size_t n = mac_wire_digest_bytes(k, 4);
  Packet p;
  uint8_t mac[kMaxDigestBytes] = {};
  bool any = false;
  for (auto _ : state) {
    p.next();
    any |= mac_verify(k, p.bytes, sizeof p.bytes, mac, n);
    benchmark::DoNotOptimize(any);
  }
  if (any) state.SkipWithError("a zero MAC verified");
  state.SetLabel(mac_type_name(k.type));
}

void BM_verify_compute(benchmark::State& state) {
  const MacKey k = key_of(static_cast<MacType>(state.range(0)));
  const size_t n = mac_wire_digest_bytes(k, 4);
  Packet req, reply;
  uint8_t req_mac[kMaxDigestBytes], reply_mac[kMaxDigestBytes];
  mac_compute(k, req.bytes, sizeof req.bytes, req_mac, n);
  bool ok = true;
  for (auto _ : state) {
    ok &= mac_verify(k, req.bytes, sizeof req.bytes, req_mac, n);
    reply.next();
    benchmark::DoNotOptimize(mac_compute(k, reply.bytes, sizeof reply.bytes, reply_mac, n));
    benchmark::ClobberMemory();
  }
  if (!ok) state.SkipWithError("a good MAC did not verify");
  state.SetLabel(mac_type_name(k.type));
}

// The responder's whole MAC work for one request: check_mac (lookup among
// 16 keys, verify) and append_mac on the reply.
void BM_check_append(benchmark::State& state) {
  static KeyTable table;
  table = KeyTable{};
  MacKey k = key_of(static_cast<MacType>(state.range(0)));
  for (uint32_t id = 1; id <= 16; ++id) {
    k.id = id * 1000;
    table.insert(k);
  }
  const MacKey& used = *table.find(7000);
  const size_t n = mac_wire_digest_bytes(used, 4);
  uint8_t req[48 + 4 + kMaxDigestBytes], reply[48 + 4 + kMaxDigestBytes];
  Packet p;
  std::memcpy(req, p.bytes, 48);
  const size_t mac_len = append_mac(used, req, 48, n);
  std::memcpy(reply, p.bytes, 48);
  bool ok = true;
  for (auto _ : state) {
    const MacResult r = check_mac(table, req, 48, req + 48, mac_len);
    ok &= r.check == MacCheck::kOk;
    ++reply[47];
    benchmark::DoNotOptimize(append_mac(*r.key, reply, 48, r.digest_bytes));
    benchmark::ClobberMemory();
  }
  if (!ok) state.SkipWithError("a good MAC did not verify");
  state.SetLabel(mac_type_name(used.type));
}

void BM_find(benchmark::State& state) {
  static KeyTable table;
  table = KeyTable{};
  const auto n = static_cast<uint32_t>(state.range(0));
  const MacKey proto = key_of(MacType::kAes128Cmac);
  for (uint32_t i = 0; i < n; ++i) {
    MacKey k = proto;
    k.id = (i + 1) * 2654435761u | 1u;  // spread over the id space, all distinct for n <= 256
    table.insert(k);
  }
  uint32_t s = 0x9E3779B9, hits = 0;
  for (auto _ : state) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    const uint32_t id = table.ids[s % table.count];
    hits += table.find(id) != nullptr;
    benchmark::DoNotOptimize(hits);
  }
  state.SetLabel(std::to_string(table.count) + " keys");
}

void types(benchmark::internal::Benchmark* b) {
  for (MacType t : kTypes) b->Arg(static_cast<int>(t));
}

BENCHMARK(BM_compute)->Apply(types);
BENCHMARK(BM_verify)->Apply(types);
BENCHMARK(BM_verify_bad)->Apply(types);
BENCHMARK(BM_verify_compute)->Apply(types);
BENCHMARK(BM_check_append)->Apply(types);
BENCHMARK(BM_find)->Arg(1)->Arg(16)->Arg(256);

}  // namespace

BENCHMARK_MAIN();
