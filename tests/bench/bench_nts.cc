// Cost per packet of NTS (Google Benchmark). Figures, not tests.
//
//   nts_answer+seal/P   a chronyd-shaped NTS request with P placeholders
//                       (P + 1 fresh cookies in the reply) restored, then
//                       classify_request, parse_nts_request, nts_answer and
//                       nts_seal: everything the worker does for it but the
//                       frame headers and the transmit stamp
//   restore/P           the restoring memcpy alone
//   nts_seal/P          nts_seal alone: the reply's S2C key schedule and
//                       seal, what the worker does after the stamp
//                       (dp::kNtsSealCostNs stands for P = 0)
//   cookie_open         one cookie opened (SIV decrypt of 64 bytes)
//   cookie_seal         one cookie sealed (SIV encrypt of 64 bytes)
//   siv_key_init        one AES-SIV-CMAC-256 key schedule (two per request:
//                       C2S and S2C come from the cookie)
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "crypto/nts_cookie.h"
#include "dataplane/nts_responder.h"
#include "dataplane/responder.h"
#include "proto/nts.h"
#include "tests/support/nts_client.h"

namespace {

using namespace ntp;

const crypto::CookieKeyRing& ring() {
  static const crypto::CookieKeyRing r = [] {
    crypto::CookieKeyRing out;
    const uint32_t ids[] = {1, 2};
    uint8_t secrets[2][crypto::kSivKeyBytes];
    for (size_t j = 0; j < crypto::kSivKeyBytes; ++j) {
      secrets[0][j] = static_cast<uint8_t>(j);
      secrets[1][j] = static_cast<uint8_t>(j * 7);
    }
    crypto::cookie_ring_init(out, ids, secrets, 2, 1);
    return out;
  }();
  return r;
}

crypto::NtsKeys client_keys() {
  crypto::NtsKeys k;
  for (size_t i = 0; i < crypto::kNtsKeyBytes; ++i) {
    k.c2s[i] = static_cast<uint8_t>(i + 1);
    k.s2c[i] = static_cast<uint8_t>(i + 2);
  }
  return k;
}

std::vector<uint8_t> request(unsigned placeholders) {
  uint8_t uid[32];
  for (int i = 0; i < 32; ++i) uid[i] = static_cast<uint8_t>(i * 3);
  const std::vector<uint8_t> cookie = test::nts_cookie_for(ring(), client_keys());
  return test::nts_client_request(client_keys(), cookie.data(), cookie.size(), placeholders, uid,
                                     {0xE9000000u, 0x1000})
      .bytes;
}

void BM_restore(benchmark::State& state) {
  const std::vector<uint8_t> req = request(static_cast<unsigned>(state.range(0)));
  alignas(64) static uint8_t buf[1024];
  for (auto _ : state) {
    std::memcpy(buf, req.data(), req.size());
    benchmark::DoNotOptimize(buf);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_restore)->Name("restore")->Arg(0)->Arg(1)->Arg(7);

void BM_answer_seal(benchmark::State& state) {
  const std::vector<uint8_t> req = request(static_cast<unsigned>(state.range(0)));
  alignas(64) static uint8_t buf[1024];
  uint8_t seed[32] = {5};
  crypto::NonceSource rng(seed);
  dp::ReplyParams p;
  p.leap = proto::Leap::kNone;
  p.stratum = 2;
  p.synchronized = true;
  uint64_t replies = 0;
  for (auto _ : state) {
    std::memcpy(buf, req.data(), req.size());
    const dp::NtpRequest q = dp::classify_request(buf, req.size());
    const proto::NtsRequestView v = proto::parse_nts_request(buf, req.size(), crypto::kSivTagBytes);
    dp::NtsSeal seal;
    const dp::NtsAnswer a = dp::nts_answer(buf, req.size(), q, v, {0xE9000000u, 0x2000}, p, &ring(), rng, seal);
    if (a.outcome == dp::NtsOutcome::kReply) {
      proto::store_be32(buf + 40, 0xE9000000u);
      benchmark::DoNotOptimize(dp::nts_seal(buf, seal));
      ++replies;
    }
    benchmark::ClobberMemory();
  }
  if (replies != static_cast<uint64_t>(state.iterations())) state.SkipWithError("a request was not answered");
  state.SetItemsProcessed(state.iterations());
  state.counters["bytes"] = static_cast<double>(req.size());
}
BENCHMARK(BM_answer_seal)->Name("nts_answer+seal")->Arg(0)->Arg(1)->Arg(7);

// nts_seal alone (what the worker does after the stamp, and what
// kNtsSealCostNs stands for): a reply made once, its bytes and seal restored.
void BM_seal(benchmark::State& state) {
  const std::vector<uint8_t> req = request(static_cast<unsigned>(state.range(0)));
  alignas(64) static uint8_t made[1024], buf[1024];
  uint8_t seed[32] = {6};
  crypto::NonceSource rng(seed);
  dp::ReplyParams p;
  p.synchronized = true;
  std::memcpy(made, req.data(), req.size());
  const dp::NtpRequest q = dp::classify_request(made, req.size());
  const proto::NtsRequestView v = proto::parse_nts_request(made, req.size(), crypto::kSivTagBytes);
  dp::NtsSeal seal0;
  const dp::NtsAnswer a = dp::nts_answer(made, req.size(), q, v, {0xE9000000u, 0x2000}, p, &ring(), rng, seal0);
  if (a.outcome != dp::NtsOutcome::kReply) {
    state.SkipWithError("not answered");
    return;
  }
  for (auto _ : state) {
    std::memcpy(buf, made, a.d.reply_len);
    dp::NtsSeal seal = seal0;
    benchmark::DoNotOptimize(dp::nts_seal(buf, seal));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_seal)->Name("nts_seal")->Arg(0)->Arg(1)->Arg(7);

void BM_cookie_open(benchmark::State& state) {
  const std::vector<uint8_t> cookie = test::nts_cookie_for(ring(), client_keys());
  crypto::NtsKeys out;
  for (auto _ : state) {
    benchmark::DoNotOptimize(crypto::cookie_open(ring(), cookie.data(), cookie.size(), out));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_cookie_open)->Name("cookie_open");

void BM_cookie_seal(benchmark::State& state) {
  const crypto::NtsKeys keys = client_keys();
  uint8_t nonce[crypto::kNtsCookieNonceBytes] = {3};
  uint8_t out[crypto::kNtsCookieBytes];
  for (auto _ : state) {
    benchmark::DoNotOptimize(crypto::cookie_seal(*ring().sealing(), nonce, keys, out));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_cookie_seal)->Name("cookie_seal");

void BM_siv_key_init(benchmark::State& state) {
  const crypto::NtsKeys keys = client_keys();
  crypto::SivKey k;
  for (auto _ : state) {
    benchmark::DoNotOptimize(crypto::siv_key_init(k, keys.c2s, sizeof keys.c2s));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_siv_key_init)->Name("siv_key_init");

}  // namespace

BENCHMARK_MAIN();
