// The per-client rate limiter and the per-worker reply cap
// (dataplane/ratelimit.h): chrony's token bucket (burst at once, refill at
// one per 2^interval s, leak 1 in 2^leak), the vendor's min-interval, the
// excess budget that bounds what a spoofed victim receives, eviction in the
// fixed table, the space-saving top list, and time going backwards. Times
// are plain int64 ns (a fake clock). Seeded randomness: the seed is printed,
// TEST_SEED=<n> replays a run.
#include "dataplane/ratelimit.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <cstdint>
#include <random>
#include <stdexcept>

#include "tests/support/test_seed.h"

// Every operator new of the program is counted (they all end in these two),
// to show the limiter allocates nothing after its constructor.
static std::atomic<uint64_t> g_news{0};
void* operator new(std::size_t n) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  const auto al = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new[](std::size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace ntp::dp {
namespace {

uint64_t test_seed() { return ::ntp::test::seed(); }
#define SEED_TRACE() SCOPED_TRACE(::testing::Message() << "TEST_SEED=" << test_seed())

constexpr int64_t kNs = 1000000000;
constexpr int64_t kMs = 1000000;
constexpr uint32_t kClient = 0xC0000201;  // 192.0.2.1

RateLimitParams params(int interval_log2, int burst, int leak_log2 = 2, int64_t min_interval_ns = 0) {
  RateLimitParams p;
  p.interval_log2 = interval_log2;
  p.burst = burst;
  p.leak_log2 = leak_log2;
  p.min_interval_ns = min_interval_ns;
  return p;
}

// ------------------------------------------------------------- construction

long thread_minor_faults() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  return u.ru_minflt;
}

TEST(RateLimiterMemory, PagesPlacedByTheWorkersFirstTouchNotTheConstructor) {
  // NUMA: the main lcore builds the table, the worker uses it. The
  // constructor faults in none of its 16 MiB (with THP 8 pages, without
  // 4096); touch_pages, on the worker's lcore, faults in all of them.
  const long f0 = thread_minor_faults();
  RateLimiter l(size_t{1} << 20, RateLimitParams{}, 7);
  const long f1 = thread_minor_faults();
  l.touch_pages();
  const long f2 = thread_minor_faults();
  EXPECT_LT(f1 - f0, 8) << "the constructor touched the table";
  EXPECT_GE(f2 - f1, 8) << "touch_pages faulted in fewer pages than 16 MiB of huge pages";
  // Still an empty table that works.
  EXPECT_EQ(l.fill(), 0u);
  EXPECT_EQ(l.check_v4(0x0A000001, 1'000'000'000), RateVerdict::kPass);
  EXPECT_EQ(l.fill(), 1u);
  // And an untouched one faults in at first use, just as well.
  RateLimiter u(1024, RateLimitParams{}, 8);
  EXPECT_EQ(u.check_v4(0x0A000001, 1'000'000'000), RateVerdict::kPass);
}

TEST(RateLimiter, CapacityMustBeAPowerOfTwoOfAtLeast1024) {
  for (size_t bad : {size_t{0}, size_t{1}, size_t{512}, size_t{1000}, size_t{1023}, size_t{3000}, size_t{1025}}) {
    EXPECT_THROW(RateLimiter(bad, params(3, 8), 1), std::invalid_argument) << bad;
  }
  RateLimiter rl(1024, params(3, 8), 1);
  EXPECT_EQ(rl.capacity(), 1024u);
  EXPECT_EQ(rl.fill(), 0u);
  EXPECT_EQ(rl.inserts(), 0u);
  EXPECT_EQ(rl.evictions(), 0u);
}

// The table and everything else come from the constructor: checks,
// evictions, the top list, a reload and the status allocate nothing (the
// C allocations of the table are not operator new: the check below shows
// the counter counts).
TEST(RateLimiter, AllocatesNothingAfterItsConstructor) {
  const uint64_t before_probe = g_news.load();
  int* volatile probe = new int(1);  // volatile: the compiler may not elide the pair
  delete probe;
  ASSERT_EQ(g_news.load(), before_probe + 1) << "the counter does not see operator new";
  RateLimiter rl(1024, params(0, 2), 3);
  ReplyCap cap(1000);
  proto::LimiterStatus st;
  const uint64_t before = g_news.load();
  for (uint32_t i = 0; i < 200000; ++i) {
    // One heavy source, 800 light ones (some buckets overflow: evictions).
    const uint32_t ip = (i % 7 == 0) ? kClient : 0x0A000000u + i % 800;
    const int64_t t = kNs + i * 1000;
    rl.check_v4(ip, t);
    rl.excess_v4(ip ^ 1, t);
    cap.take(t);
    if (i % 50000 == 0) {
      rl.set_params(params(i % 2 ? 3 : 0, 4));
      cap.set_rate(500);
      rl.top_limited(st);
    }
  }
  rl.top_limited(st);
  EXPECT_EQ(g_news.load(), before);
  EXPECT_GT(rl.evictions(), 0u);
  EXPECT_EQ(st.n_top, proto::kTopLimitedSources);
}

TEST(RateLimiter, MemoryIsSixteenBytesAnEntryPlusAFixedPart) {
  RateLimiter rl(size_t{1} << 16, params(3, 8), 1);
  EXPECT_GE(rl.memory_bytes(), (size_t{1} << 16) * 16);
  EXPECT_LT(rl.memory_bytes(), (size_t{1} << 16) * 16 + 4096);
}

TEST(RateLimiter, InterleavedSlotsAreSixteenBytesMoreAnEntry) {
  RateLimiter rl(size_t{1} << 16, params(3, 8), 1, /*xleave=*/true);
  EXPECT_GE(rl.memory_bytes(), (size_t{1} << 16) * 32);
  EXPECT_LT(rl.memory_bytes(), (size_t{1} << 16) * 32 + 4096);
  EXPECT_TRUE(rl.has_xleave());
  EXPECT_FALSE(RateLimiter(1024, params(3, 8), 1).has_xleave());
}

// ------------------------------------------------------------ interleaved slots

TEST(RateLimiter, EachClientHasItsOwnSlotANewOneZero) {
  RateLimiter plain(1024, params(3, 8), 1);
  plain.check_v4(0x0A000001, kNs);
  EXPECT_EQ(plain.last_xleave(), nullptr);

  RateLimiter rl(1024, params(3, 8), 2, true);
  EXPECT_EQ(rl.last_xleave(), nullptr) << "no entry looked up yet";
  rl.check_v4(0x0A000001, kNs);
  XleaveSlot* a = rl.last_xleave();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->rx_raw, 0u);
  EXPECT_EQ(a->tx_raw, 0u);
  *a = {111, 222};
  rl.enter_v4(0x0A000002, kNs);
  XleaveSlot* b = rl.last_xleave();
  ASSERT_NE(b, a);
  EXPECT_EQ(b->rx_raw, 0u);
  *b = {333, 444};
  // Found again by either call, whatever it costs in tokens.
  EXPECT_TRUE(rl.excess_v4(0x0A000001, kNs + kMs));
  EXPECT_EQ(rl.last_xleave(), a);
  EXPECT_EQ(a->rx_raw, 111u);
  rl.check_v4(0x0A000002, kNs + 2 * kMs);
  EXPECT_EQ(rl.last_xleave()->tx_raw, 444u);
}

TEST(RateLimiter, EnterSpendsNoTokens) {
  RateLimiter rl(1024, params(3, 1), 3, true);
  for (int i = 0; i < 100; ++i) rl.enter_v4(0x0A000001, kNs + i * kMs);
  EXPECT_EQ(rl.check_v4(0x0A000001, kNs + 100 * kMs), RateVerdict::kPass) << "its burst of one is still there";
  EXPECT_EQ(rl.fill(), 1u);
}

TEST(RateLimiter, AnEvictedClientsSlotComesBackZero) {
  SEED_TRACE();
  // Churn through a 1024-entry table: every new entry's slot is zero, so no
  // client inherits another's timestamps (an interleaved answer would then
  // carry a stranger's transmit time).
  RateLimiter rl(1024, params(3, 8), test_seed(), true);
  for (int i = 0; i < 20000; ++i) {
    const uint32_t ip = static_cast<uint32_t>(i) * 2654435761u;
    rl.check_v4(ip, kNs + i * kMs);
    XleaveSlot* s = rl.last_xleave();
    ASSERT_EQ(s->rx_raw, 0u) << i;
    ASSERT_EQ(s->tx_raw, 0u) << i;
    *s = {static_cast<uint64_t>(i) + 1, static_cast<uint64_t>(i) + 2};
  }
  EXPECT_GT(rl.evictions(), 18000u);
}

// ------------------------------------------------------------ token bucket

TEST(RateLimiter, NewClientGetsItsBurstAtOnceThenIsLimited) {
  RateLimiter rl(1024, params(3, 8), 1);
  const int64_t t = 1000 * kNs;
  for (int i = 0; i < 8; ++i) EXPECT_EQ(rl.check_v4(kClient, t), RateVerdict::kPass) << i;
  // Over the limit: one excess answer (a leak or a KoD), then nothing.
  const RateVerdict ninth = rl.check_v4(kClient, t);
  EXPECT_TRUE(ninth == RateVerdict::kLeak || ninth == RateVerdict::kKod);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(rl.check_v4(kClient, t), RateVerdict::kDrop) << i;
  EXPECT_EQ(rl.fill(), 1u);
  EXPECT_EQ(rl.inserts(), 1u);
  // Another client is not affected.
  EXPECT_EQ(rl.check_v4(kClient + 1, t), RateVerdict::kPass);
}

TEST(RateLimiter, RefillsAtOnePerIntervalNeverFaster) {
  // interval_log2 = 0: one per second.
  RateLimiter rl(1024, params(0, 4), 1);
  const int64_t t0 = 5000 * kNs;
  for (int i = 0; i < 4; ++i) ASSERT_EQ(rl.check_v4(kClient, t0), RateVerdict::kPass);
  EXPECT_NE(rl.check_v4(kClient, t0 + 500 * kMs), RateVerdict::kPass);
  EXPECT_NE(rl.check_v4(kClient, t0 + 999 * kMs), RateVerdict::kPass);
  EXPECT_EQ(rl.check_v4(kClient, t0 + 1001 * kMs), RateVerdict::kPass);
  EXPECT_NE(rl.check_v4(kClient, t0 + 1002 * kMs), RateVerdict::kPass);

  // Asking every 10 ms for 100 s more: one pass per second, never more.
  int passes = 0;
  const int64_t t1 = t0 + 1001 * kMs;
  for (int64_t t = t1 + 10 * kMs; t <= t1 + 100 * kNs; t += 10 * kMs) {
    passes += rl.check_v4(kClient, t) == RateVerdict::kPass;
  }
  EXPECT_LE(passes, 100);
  EXPECT_GE(passes, 99);

  // Idle for a long time: the bucket is full again (burst), not more.
  const int64_t t2 = t1 + 1000 * kNs;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(rl.check_v4(kClient, t2), RateVerdict::kPass) << i;
  EXPECT_NE(rl.check_v4(kClient, t2), RateVerdict::kPass);
}

TEST(RateLimiter, AClientAtHalfTheRateIsAlwaysServed) {
  RateLimiter rl(1024, params(3, 8), 1);
  for (int i = 0; i < 10000; ++i) {
    ASSERT_EQ(rl.check_v4(kClient, 100 * kNs + i * 16 * kNs), RateVerdict::kPass) << i;
  }
}

TEST(RateLimiter, MinIntervalLimitsRequestsTooCloseWhateverTheTokens) {
  // 16 per second on average, but none sooner than 100 ms after the previous.
  RateLimiter rl(1024, params(-4, 8, 2, 100 * kMs), 1);
  const int64_t t0 = 10 * kNs;
  EXPECT_EQ(rl.check_v4(kClient, t0), RateVerdict::kPass);
  EXPECT_NE(rl.check_v4(kClient, t0 + 50 * kMs), RateVerdict::kPass);  // tokens left, but too soon
  EXPECT_EQ(rl.check_v4(kClient, t0 + 150 * kMs), RateVerdict::kPass);  // 100 ms after the previous request
  // 90 ms: too soon (the table's ~1 ms ticks let one tick short of min_interval through).
  EXPECT_NE(rl.check_v4(kClient, t0 + 240 * kMs), RateVerdict::kPass);
  // Exactly min_interval apart: always served.
  RateLimiter rl2(1024, params(-4, 8, 2, 100 * kMs), 2);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(rl2.check_v4(kClient, t0 + 1 + i * 100 * kMs), RateVerdict::kPass) << i;
  }
}

TEST(RateLimiter, LeaksOneInTwoToTheLeakOfTheLimitedRequests) {
  SEED_TRACE();
  for (int leak_log2 : {1, 2, 4}) {
    // burst 1: each client's second request at once is over the limit
    // and within its excess budget: a leak or a KoD.
    RateLimiter rl(size_t{1} << 16, params(3, 1, leak_log2), test_seed() + leak_log2);
    const int n = 40000;
    int leaks = 0, kods = 0;
    for (int i = 0; i < n; ++i) {
      const uint32_t ip = 0x0A000000u + static_cast<uint32_t>(i);
      const int64_t t = 100 * kNs + i * 1000;
      ASSERT_EQ(rl.check_v4(ip, t), RateVerdict::kPass);
      const RateVerdict v = rl.check_v4(ip, t);
      leaks += v == RateVerdict::kLeak;
      kods += v == RateVerdict::kKod;
    }
    EXPECT_EQ(leaks + kods, n);
    const double p = 1.0 / (1 << leak_log2);
    const double sd = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(leaks, n * p, 5 * sd) << "leak_log2 " << leak_log2;
  }
}

// The budget of a spoofed victim: whatever the rate, over D seconds one
// source gets at most burst + D/2^interval answers within the limit plus
// one excess answer (leak or KoD) at once and one more per 2^interval s.
TEST(RateLimiter, ExcessBudgetBoundsWhatAFloodedSourceGets) {
  SEED_TRACE();
  for (int interval_log2 : {-4, -2, 0, 3}) {
    const int burst = 8;
    RateLimiter rl(1024, params(interval_log2, burst, 1), test_seed());
    const int64_t t0 = 77 * kNs;
    const int64_t duration_ns = 10 * kNs;
    int passes = 0, leaks = 0, kods = 0, drops = 0;
    for (int64_t t = t0; t < t0 + duration_ns; t += 10000) {  // 100 000 requests/s
      switch (rl.check_v4(kClient, t)) {
        case RateVerdict::kPass: ++passes; break;
        case RateVerdict::kLeak: ++leaks; break;
        case RateVerdict::kKod: ++kods; break;
        case RateVerdict::kDrop: ++drops; break;
      }
    }
    // Whole intervals in D (interval 2^il s, il may be negative).
    const int64_t interval_ns = interval_log2 >= 0 ? (kNs << interval_log2) : (kNs >> -interval_log2);
    const int intervals = static_cast<int>(duration_ns / interval_ns);
    SCOPED_TRACE(::testing::Message() << "interval_log2 " << interval_log2 << " passes " << passes
                                      << " leaks " << leaks << " kods " << kods);
    EXPECT_EQ(passes + leaks + kods + drops, 1000000);
    EXPECT_LE(passes, burst + intervals);
    EXPECT_LE(leaks + kods, 1 + intervals);
    EXPECT_LE(passes + leaks + kods, burst + 2 * intervals + 1);
    // And it is served at that rate, not less but for the interval's
    // rounding up to the table's ticks (2^20 ns, at most one more).
    const int slow_intervals = static_cast<int>(duration_ns / (interval_ns + (1 << 20)));
    EXPECT_GE(passes, burst + slow_intervals);
    EXPECT_GE(leaks + kods, slow_intervals);
  }
}

// A denied source's KoDs (DENY): one at once, then one per interval,
// whatever its rate; and they share the budget of check_v4's excess answers.
TEST(RateLimiter, ExcessV4AllowsOneKissPerInterval) {
  for (int interval_log2 : {-4, 0, 3}) {
    RateLimiter rl(1024, params(interval_log2, 8), 1);
    const int64_t t0 = 500 * kNs;
    const int64_t duration_ns = 10 * kNs;
    int kods = 0;
    for (int64_t t = t0; t < t0 + duration_ns; t += 10000) kods += rl.excess_v4(kClient, t);
    const int64_t interval_ns = interval_log2 >= 0 ? (kNs << interval_log2) : (kNs >> -interval_log2);
    const int intervals = static_cast<int>(duration_ns / interval_ns);
    EXPECT_LE(kods, 1 + intervals) << interval_log2;
    // The interval is rounded up to the table's ticks (2^20 ns): at most
    // one tick longer.
    EXPECT_GE(kods, duration_ns / (interval_ns + (1 << 20))) << interval_log2;
    EXPECT_EQ(rl.fill(), 1u);
  }
  RateLimiter rl(1024, params(3, 2), 1);
  const int64_t t = 100 * kNs;
  EXPECT_TRUE(rl.excess_v4(kClient, t));
  EXPECT_FALSE(rl.excess_v4(kClient, t));
  // Its tokens are untouched: a burst of 2 passes, then no excess is left.
  EXPECT_EQ(rl.check_v4(kClient, t), RateVerdict::kPass);
  EXPECT_EQ(rl.check_v4(kClient, t), RateVerdict::kPass);
  EXPECT_EQ(rl.check_v4(kClient, t), RateVerdict::kDrop);
  // An interval later: one excess again, for either.
  EXPECT_TRUE(rl.excess_v4(kClient, t + 8100 * kMs));
  EXPECT_EQ(rl.check_v4(kClient, t + 8100 * kMs), RateVerdict::kPass);  // a token came back too
  EXPECT_EQ(rl.check_v4(kClient, t + 8100 * kMs), RateVerdict::kDrop);
}

// ------------------------------------------------------------------- table

TEST(RateLimiter, ChurnFillsTheTableAndEvictsTheLeastRecentlySeen) {
  SEED_TRACE();
  RateLimiter rl(1024, params(3, 8), test_seed());
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    // Distinct sources, in a random order of the address space.
    const uint32_t ip = static_cast<uint32_t>(i) * 2654435761u;
    ASSERT_EQ(rl.check_v4(ip, kNs + i * 10 * kMs), RateVerdict::kPass);
  }
  EXPECT_EQ(rl.fill(), 1024u);
  EXPECT_EQ(rl.inserts(), static_cast<uint64_t>(n));
  EXPECT_EQ(rl.evictions(), static_cast<uint64_t>(n - 1024));
}

// Sources a naive index (the low address bits) would put in one bucket, a
// stride of 2^12 apart: the keyed mix spreads them, whatever the key (an
// attacker does not know it), so 1024 of them in 4096 entries evict almost
// nothing (about 5 on average: a bucket of 4 gets more than 4 of them with
// Poisson(1) odds).
TEST(RateLimiter, TheKeyedHashSpreadsAlignedSources) {
  SEED_TRACE();
  for (uint64_t k = 0; k < 4; ++k) {
    RateLimiter rl(4096, params(3, 8), test_seed() + k);
    for (uint32_t i = 0; i < 1024; ++i) rl.check_v4(0x0A000000u + (i << 12), kNs + i);
    EXPECT_LT(rl.evictions(), 40u) << "key " << k;
    EXPECT_EQ(rl.inserts(), 1024u);
  }
}

// A client is evicted only when 4 newer sources land in its bucket (of
// capacity/4) between two of its requests: with a churn C per poll interval
// that is rare while C is well under capacity/4 (4 C / capacity sources per
// bucket and interval), and nearly every time once C exceeds the capacity.
// An evicted client comes back as new, with a full bucket: eviction forgets
// (it never limits a client more), which is why the reply cap also exists.
TEST(RateLimiter, ALegitimateClientAmongChurnKeepsItsEntryUnlessChurnExceedsTheTable) {
  SEED_TRACE();
  const int64_t poll_ns = 8 * kNs;
  {
    // 65536 entries, 500 new sources per 8 s poll (0.03 per bucket): the
    // client keeps its one entry (chance of an eviction ~1e-5).
    RateLimiter rl(size_t{1} << 16, params(3, 8), test_seed());
    const int churn_per_poll = 500, polls = 200;
    uint32_t next = 1;
    for (int k = 0; k < polls; ++k) {
      const int64_t t = 100 * kNs + k * poll_ns;
      ASSERT_EQ(rl.check_v4(kClient, t), RateVerdict::kPass) << k;
      for (int j = 0; j < churn_per_poll; ++j) rl.check_v4(0x20000000u + next++, t + 1 + j * (poll_ns / churn_per_poll));
    }
    EXPECT_EQ(rl.inserts(), static_cast<uint64_t>(polls) * churn_per_poll + 1);  // the client once
  }
  {
    // 1024 entries, 2000 new sources per poll (twice the table): the client
    // is evicted and re-entered nearly every poll, and still served.
    RateLimiter rl(1024, params(3, 8), test_seed());
    const int churn_per_poll = 2000, polls = 50;
    uint32_t next = 1;
    for (int k = 0; k < polls; ++k) {
      const int64_t t = 100 * kNs + k * poll_ns;
      ASSERT_EQ(rl.check_v4(kClient, t), RateVerdict::kPass) << k;
      for (int j = 0; j < churn_per_poll; ++j) rl.check_v4(0x20000000u + next++, t + 1 + j * (poll_ns / churn_per_poll));
    }
    const uint64_t client_inserts = rl.inserts() - static_cast<uint64_t>(polls) * churn_per_poll;
    EXPECT_GE(client_inserts, 40u);
    EXPECT_EQ(rl.fill(), 1024u);
  }
}

TEST(RateLimiter, SetParamsChangesTheLimitsInPlace) {
  RateLimiter rl(1024, params(3, 4), 1);
  const int64_t t0 = 100 * kNs;
  for (int i = 0; i < 4; ++i) ASSERT_EQ(rl.check_v4(kClient, t0), RateVerdict::kPass);
  ASSERT_NE(rl.check_v4(kClient, t0), RateVerdict::kPass);
  rl.set_params(params(0, 16));
  EXPECT_EQ(rl.fill(), 1u);
  // The entry is kept (not new: no fresh burst), and now refills at 1/s up to 16.
  EXPECT_NE(rl.check_v4(kClient, t0 + 500 * kMs), RateVerdict::kPass);
  EXPECT_EQ(rl.check_v4(kClient, t0 + 1100 * kMs), RateVerdict::kPass);
  const int64_t t1 = t0 + 100 * kNs;
  int passes = 0;
  while (rl.check_v4(kClient, t1) == RateVerdict::kPass) ++passes;
  EXPECT_EQ(passes, 16);
  // Tighter again: the burst left over is cut to the new burst.
  rl.set_params(params(0, 2));
  const int64_t t2 = t1 + 100 * kNs;
  passes = 0;
  while (rl.check_v4(kClient, t2) == RateVerdict::kPass) ++passes;
  EXPECT_EQ(passes, 2);
}

// The worker's clock never goes back: a time before the entry's last one
// (modulo 2^32 ticks) is a client back after 26 to 52 days, which gets a
// full bucket like a new client, not 26 days of nothing.
TEST(RateLimiter, AClientBackAfterAMonthGetsAFullBucket) {
  RateLimiter rl(1024, params(0, 4), 1);
  const int64_t t0 = 1000 * kNs;
  for (int i = 0; i < 4; ++i) ASSERT_EQ(rl.check_v4(kClient, t0), RateVerdict::kPass);
  EXPECT_NE(rl.check_v4(kClient, t0), RateVerdict::kPass);
  const int64_t month = 30LL * 86400 * kNs;  // 2^31..2^32 ticks of 2^20 ns later
  int passes = 0;
  while (rl.check_v4(kClient, t0 + month) == RateVerdict::kPass) ++passes;
  EXPECT_EQ(passes, 4);
  // And after that, the ordinary rate again: one per second.
  EXPECT_NE(rl.check_v4(kClient, t0 + month + 900 * kMs), RateVerdict::kPass);
  EXPECT_EQ(rl.check_v4(kClient, t0 + month + 1100 * kMs), RateVerdict::kPass);
  // Odd times do not crash.
  for (int64_t t : {int64_t{0}, int64_t{-1}, INT64_MIN, INT64_MAX, int64_t{1}}) rl.check_v4(kClient + 7, t);
  EXPECT_EQ(rl.fill(), 2u);
}

// --------------------------------------------------------------- top list

TEST(RateLimiter, TopLimitedListsTheMostLimitedFirstAsV4Mapped) {
  RateLimiter rl(1 << 12, params(3, 1), 1);
  const int64_t t = 50 * kNs;
  const uint32_t a = 0xC6336401, b = 0xC6336402, c = 0xCB007103;  // 198.51.100.1/2, 203.0.113.3
  for (int i = 0; i < 21; ++i) rl.check_v4(c, t + i);  // 1 pass, 20 limited
  for (int i = 0; i < 101; ++i) rl.check_v4(a, t + 100 + i);  // 100 limited
  for (int i = 0; i < 51; ++i) rl.check_v4(b, t + 300 + i);  // 50 limited
  proto::LimiterStatus st;
  rl.top_limited(st);
  ASSERT_EQ(st.n_top, 3u);
  const uint8_t a_mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 1};
  EXPECT_EQ(std::memcmp(st.top[0].address, a_mapped, 16), 0);
  EXPECT_EQ(st.top[0].limited, 100u);
  EXPECT_EQ(st.top[0].last_ns, t + 200);
  EXPECT_EQ(st.top[1].address[15], 2);
  EXPECT_EQ(st.top[1].limited, 50u);
  EXPECT_EQ(st.top[2].address[12], 203);
  EXPECT_EQ(st.top[2].limited, 20u);
  EXPECT_EQ(st.top[3].limited, 0u);  // unused entries zeroed
}

TEST(RateLimiter, TopLimitedFindsTheHeavyHitterAmongManyLightOnes) {
  SEED_TRACE();
  RateLimiter rl(size_t{1} << 16, params(3, 1), test_seed());
  std::mt19937_64 rng(test_seed());
  const uint32_t heavy = 0xC0000263;
  int64_t t = 10 * kNs;
  uint64_t heavy_limited = 0;
  for (int i = 0; i < 200000; ++i) {
    t += 1000;
    if (rng() % 10 == 0) {
      heavy_limited += rl.check_v4(heavy, t) != RateVerdict::kPass;
    } else {
      // 5000 light sources, each a few times over the limit.
      rl.check_v4(0x0B000000u + static_cast<uint32_t>(rng() % 5000), t);
    }
  }
  proto::LimiterStatus st;
  rl.top_limited(st);
  ASSERT_EQ(st.n_top, proto::kTopLimitedSources);
  EXPECT_EQ(st.top[0].address[12], 192);
  EXPECT_EQ(st.top[0].address[15], 0x63);
  // Space-saving overestimates by at most the smallest count kept.
  EXPECT_GE(st.top[0].limited, heavy_limited);
  EXPECT_LE(st.top[0].limited, heavy_limited + st.top[proto::kTopLimitedSources - 1].limited);
  for (uint32_t i = 1; i < st.n_top; ++i) EXPECT_GE(st.top[i - 1].limited, st.top[i].limited);
}

// A heavy hitter that starts after the list is full of light sources still
// gets in (random admission: after about as many of its requests as the
// smallest count) and goes to the top; its estimate is within that of the
// truth.
TEST(RateLimiter, TopLimitedAdmitsALateHeavyHitter) {
  SEED_TRACE();
  RateLimiter rl(size_t{1} << 16, params(3, 1), test_seed());
  int64_t t = 10 * kNs;
  for (int round = 0; round < 40; ++round) {
    for (uint32_t k = 0; k < 3000; ++k) rl.check_v4(0x0B000000u + k, t += 1000);
  }
  proto::LimiterStatus before;
  rl.top_limited(before);
  ASSERT_EQ(before.n_top, proto::kTopLimitedSources);
  const uint64_t light_max = before.top[0].limited;
  const uint32_t heavy = 0xCB00710A;  // 203.0.113.10
  uint64_t heavy_limited = 0;
  for (int i = 0; i < 20000; ++i) heavy_limited += rl.check_v4(heavy, t += 1000) != RateVerdict::kPass;
  proto::LimiterStatus st;
  rl.top_limited(st);
  EXPECT_EQ(st.top[0].address[12], 203);
  EXPECT_EQ(st.top[0].address[15], 10);
  EXPECT_GE(st.top[0].limited, heavy_limited - 64 * light_max);
  EXPECT_LE(st.top[0].limited, heavy_limited + light_max);
  EXPECT_EQ(st.top[0].last_ns, t);
}

// ---------------------------------------------------------------- ReplyCap

TEST(ReplyCap, RateZeroIsUnlimited) {
  ReplyCap cap(0);
  for (int i = 0; i < 100000; ++i) ASSERT_TRUE(cap.take(kNs));
}

TEST(ReplyCap, AllowsTheRateOverTenSecondsWithinOneBurst) {
  for (uint32_t rate : {1u, 7u, 1000u, 250000u, 1000000u}) {
    ReplyCap cap(rate);
    const int64_t burst = std::max<int64_t>(1, rate / 10);
    int64_t taken = 0;
    // Asked 2 000 000 times a second for 10 s.
    const int64_t t0 = 3 * kNs;
    for (int64_t t = t0; t < t0 + 10 * kNs; t += 500) taken += cap.take(t);
    EXPECT_LE(taken, 10 * static_cast<int64_t>(rate) + burst) << rate;
    EXPECT_GE(taken, 10 * static_cast<int64_t>(rate) - burst) << rate;
  }
}

TEST(ReplyCap, BurstAtOnceThenNothingUntilRefilled) {
  ReplyCap cap(1000);  // burst 100
  const int64_t t = 42 * kNs;
  int n = 0;
  while (cap.take(t)) ++n;
  EXPECT_EQ(n, 100);
  EXPECT_FALSE(cap.take(t + 999 * 1000));   // 0.999 ms: not one token yet
  EXPECT_TRUE(cap.take(t + 1000 * 1000));   // 1 ms: one
  EXPECT_FALSE(cap.take(t + 1000 * 1000));
  // A backwards step credits nothing.
  EXPECT_FALSE(cap.take(t - 10 * kNs));
  EXPECT_FALSE(cap.take(t + 1000 * 1000));
  // set_rate starts a full burst.
  cap.set_rate(50);  // burst 5
  n = 0;
  while (cap.take(t + 2 * kNs)) ++n;
  EXPECT_EQ(n, 5);
  // Odd times do not crash or overflow into a refill.
  cap.set_rate(10);
  for (int64_t odd : {INT64_MIN, int64_t{-1}, INT64_MAX}) cap.take(odd);
  EXPECT_FALSE(cap.take(INT64_MIN));
}

}  // namespace
}  // namespace ntp::dp
