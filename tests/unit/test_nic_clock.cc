// The NIC clock -> TSC mapping (hwclock/nic_clock.h) against a simulated
// TSC (2.9 GHz, the truth) and simulated NIC clocks: ns counters (64 and
// 32 bits), tick counters (156.25 MHz 64-bit like mlx5, 1 GHz 48-bit), with
// frequency errors, starting values near the wrap, read jitter and
// outliers. Seeded randomness: the seed is printed, TEST_SEED=<n> replays a
// run.
#include "hwclock/nic_clock.h"
#include "tests/support/test_seed.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace ntp::hwclock {
namespace {

uint64_t test_seed() { return ::ntp::test::seed(); }
#define SEED_TRACE() SCOPED_TRACE(::testing::Message() << "TEST_SEED=" << test_seed())

// A per-test generator: the seed mixed with the test's name, so tests do
// not depend on each other's order.
std::mt19937_64 test_rng() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string name = std::string(info->test_suite_name()) + "." + info->name();
  return std::mt19937_64(test_seed() ^ std::hash<std::string>{}(name));
}

constexpr long double kTscHz = 2.9e9L;

struct NicKind {
  const char* name;
  unsigned bits;
  double hz;  // nominal
};
constexpr NicKind kNs64{"ns64", 64, 1e9};
constexpr NicKind kNs32{"ns32", 32, 1e9};
constexpr NicKind kMlx156{"mlx156M64", 64, 156.25e6};
constexpr NicKind kTick1G48{"tick1G48", 48, 1e9};

// The simulated world. Time t is true ns since the start (long double: 64
// mantissa bits, sub-ps resolution over minutes).
class World {
 public:
  World(const NicKind& k, double ppm, std::mt19937_64& rng, long double wrap_in_s)
      : kind_(k), rng_(rng), nic_hz_(static_cast<long double>(k.hz) * (1 + ppm * 1e-6L)) {
    mask_ = k.bits == 64 ? ~uint64_t{0} : (uint64_t{1} << k.bits) - 1;
    tsc_start_ = 1000000000000000ull + rng_() % 1000000000000ull;
    // The counter reaches its wrap point wrap_in_s after the start.
    nic_start_ = (mask_ - static_cast<uint64_t>(wrap_in_s * nic_hz_)) + 1;
  }

  NicClockParams params() const {
    NicClockParams p;
    p.counter_bits = kind_.bits;
    p.nominal_ticks_per_tsc = kind_.hz / static_cast<double>(kTscHz);
    return p;
  }
  uint64_t mask() const { return mask_; }
  long double nic_hz() const { return nic_hz_; }

  long double tsc_true(long double t) const { return static_cast<long double>(tsc_start_) + t * kTscHz / 1e9L; }
  uint64_t tsc_read(long double t) const { return tsc_start_ + static_cast<uint64_t>(std::floor(t * kTscHz / 1e9L)); }
  // The counter value latched at true time t (t >= 0).
  uint64_t nic_at(long double t) const {
    return (nic_start_ + static_cast<uint64_t>(std::floor(t * nic_hz_ / 1e9L))) & mask_;
  }

  struct RoundOpts {
    double wide_read_p = 0.05;  // a read delayed ~50 us (before or after the NIC read)
    bool wide_round = false;    // every read delayed ~50 us
    bool garbage_read = false;  // one read returns a random value
    bool stale_round = false;   // every read returns the counter of 3 ms earlier
    bool all_ones = false;      // every read returns all ones (a failed PCIe read)
    long double nic_step_ns = 0;
  };

  // A round of 8 back-to-back cross-timestamps starting at true time t.
  std::vector<NicCrossTimestamp> round(long double t, const RoundOpts& o) {
    std::uniform_real_distribution<double> u01(0, 1);
    std::normal_distribution<double> jitter(0, 1.0);
    std::vector<NicCrossTimestamp> reads(8);
    const size_t garbage_at = rng_() % reads.size();
    for (size_t k = 0; k < reads.size(); k++) {
      const long double w0 = 1000 + 1000 * u01(rng_);
      long double delay = 0;
      if (o.wide_round || u01(rng_) < o.wide_read_p) delay = 48000 + 4000 * u01(rng_);
      const long double before_read = u01(rng_) < 0.5 ? delay : 0;
      const long double t_read = t + before_read + w0 / 2 + jitter(rng_);
      const long double width = w0 + delay;
      NicCrossTimestamp& c = reads[k];
      c.tsc_before = tsc_read(t);
      c.tsc_after = tsc_read(t + width);
      c.nic_raw = nic_at(t_read + o.nic_step_ns);
      if (o.stale_round) c.nic_raw = nic_at(t_read - 3e6L);
      if (o.all_ones) c.nic_raw = ~uint64_t{0};
      if (o.garbage_read && k == garbage_at) c.nic_raw = rng_();
      t += width + 20 + 80 * u01(rng_);
    }
    return reads;
  }

 private:
  NicKind kind_;
  std::mt19937_64& rng_;
  long double nic_hz_;
  uint64_t mask_ = 0;
  uint64_t tsc_start_ = 0;
  uint64_t nic_start_ = 0;
};

struct ErrStats {
  double rms_ns = 0, max_ns = 0;
  size_t converted = 0, rejected = 0;
};

// Converts `n` events at random true times in [t_now - back_ns, t_now +
// ahead_ns] and compares with their true TSC.
ErrStats convert_events(const World& w, const NicToTscMap& m, long double t_now, long double back_ns,
                        long double ahead_ns, size_t n, std::mt19937_64& rng, long double step_ns = 0) {
  std::uniform_real_distribution<long double> ut(t_now - back_ns, t_now + ahead_ns);
  ErrStats s;
  long double ss = 0;
  for (size_t i = 0; i < n; i++) {
    const long double te = ut(rng);
    uint64_t tsc = 0;
    if (!nic_to_tsc(m, w.nic_at(te + step_ns), tsc)) {
      s.rejected++;
      continue;
    }
    const long double err_ns = (static_cast<long double>(tsc) - w.tsc_true(te)) * 1e9L / kTscHz;
    ss += err_ns * err_ns;
    s.max_ns = std::max(s.max_ns, static_cast<double>(std::fabs(err_ns)));
    s.converted++;
  }
  if (s.converted) s.rms_ns = static_cast<double>(std::sqrt(ss / s.converted));
  return s;
}

// The next round's start: every 100 ms, +-2 ms of scheduling jitter.
long double next_round(long double t, std::mt19937_64& rng) {
  return t + 100e6L + std::uniform_real_distribution<double>(-2e6, 2e6)(rng);
}

// How far back events are drawn: a few seconds, within the map's range.
long double lookback_ns(const World& w, const NicToTscMap& m) {
  return std::min(3e9L, 0.9L * static_cast<long double>(m.max_delta) / w.nic_hz() * 1e9L);
}

// ---------------------------------------------------------------- nic_to_tsc

NicToTscMap hand_map(unsigned bits, uint64_t nic0, uint64_t tsc0, double tsc_per_tick, uint64_t max_delta) {
  NicToTscMap m;
  m.mask = bits == 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
  m.nic0 = nic0;
  m.tsc0 = tsc0;
  m.mult = static_cast<uint64_t>(std::llround(std::ldexp(tsc_per_tick, kNicMapShift)));
  m.max_delta = max_delta;
  m.max_age = 1000000;
  m.valid = 1;
  return m;
}

TEST(NicToTsc, NegativeDeltaAndWrapBoundary32) {
  const uint64_t tsc0 = 5000000000000ull;
  const NicToTscMap m = hand_map(32, 0xFFFFFFF0u, tsc0, 2.0, 1u << 20);
  uint64_t t = 0;
  ASSERT_TRUE(nic_to_tsc(m, 0xFFFFFFF0u, t));
  EXPECT_EQ(t, tsc0);
  ASSERT_TRUE(nic_to_tsc(m, 0xFFFFFFFFu, t));  // last value before the wrap
  EXPECT_EQ(t, tsc0 + 2 * 15);
  ASSERT_TRUE(nic_to_tsc(m, 0, t));  // exactly at the wrap
  EXPECT_EQ(t, tsc0 + 2 * 16);
  ASSERT_TRUE(nic_to_tsc(m, 0x10, t));  // after the wrap
  EXPECT_EQ(t, tsc0 + 2 * 32);
  ASSERT_TRUE(nic_to_tsc(m, 0xFFFFFFE0u, t));  // older than the anchor
  EXPECT_EQ(t, tsc0 - 2 * 16);
  // Bits above the counter width are ignored.
  ASSERT_TRUE(nic_to_tsc(m, 0xABCD000000000010ull, t));
  EXPECT_EQ(t, tsc0 + 2 * 32);

  // Anchor just after the wrap, event just before it: a negative delta
  // across the wrap.
  const NicToTscMap m2 = hand_map(32, 5, tsc0, 2.0, 1u << 20);
  ASSERT_TRUE(nic_to_tsc(m2, 0xFFFFFFFFu, t));
  EXPECT_EQ(t, tsc0 - 2 * 6);
  ASSERT_TRUE(nic_to_tsc(m2, 0, t));
  EXPECT_EQ(t, tsc0 - 2 * 5);
}

TEST(NicToTsc, SignExtensionAtHalfWrapAndFullWidth) {
  const uint64_t tsc0 = 1ull << 50;
  // Half a wrap ahead is read as half a wrap behind (-2^31).
  NicToTscMap m = hand_map(32, 0, tsc0, 1.0, 1ull << 31);
  uint64_t t = 0;
  ASSERT_TRUE(nic_to_tsc(m, 0x80000000u, t));
  EXPECT_EQ(t, tsc0 - (1ull << 31));
  ASSERT_TRUE(nic_to_tsc(m, 0x7FFFFFFFu, t));
  EXPECT_EQ(t, tsc0 + 0x7FFFFFFFu);

  // 64-bit counter near 2^64, 48-bit near 2^48, fractional rate.
  m = hand_map(64, ~uint64_t{0} - 99, tsc0, 18.56, 1ull << 40);
  ASSERT_TRUE(nic_to_tsc(m, 100, t));  // 200 ticks later, across the wrap
  EXPECT_NEAR(static_cast<double>(static_cast<int64_t>(t - tsc0)), 200 * 18.56, 1.0);
  ASSERT_TRUE(nic_to_tsc(m, ~uint64_t{0} - 199, t));  // 100 ticks earlier
  EXPECT_NEAR(static_cast<double>(static_cast<int64_t>(t - tsc0)), -100 * 18.56, 1.0);
  m = hand_map(48, (1ull << 48) - 10, tsc0, 2.9, 1ull << 40);
  ASSERT_TRUE(nic_to_tsc(m, 10, t));
  EXPECT_NEAR(static_cast<double>(static_cast<int64_t>(t - tsc0)), 20 * 2.9, 1.0);
  ASSERT_TRUE(nic_to_tsc(m, (1ull << 48) - 30, t));
  EXPECT_NEAR(static_cast<double>(static_cast<int64_t>(t - tsc0)), -20 * 2.9, 1.0);
}

TEST(NicToTsc, RangeCheckAndValidity) {
  const uint64_t tsc0 = 1ull << 45;
  for (unsigned bits : {32u, 48u, 64u}) {
    SCOPED_TRACE(bits);
    const uint64_t mask = bits == 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
    const uint64_t nic0 = mask - 1000;  // near the wrap
    const uint64_t md = 1000000;
    NicToTscMap m = hand_map(bits, nic0, tsc0, 2.9, md);
    uint64_t t = 0;
    EXPECT_TRUE(nic_to_tsc(m, (nic0 + md) & mask, t));
    EXPECT_FALSE(nic_to_tsc(m, (nic0 + md + 1) & mask, t));
    EXPECT_TRUE(nic_to_tsc(m, (nic0 - md) & mask, t));
    EXPECT_FALSE(nic_to_tsc(m, (nic0 - md - 1) & mask, t));
    EXPECT_FALSE(nic_to_tsc(m, (nic0 + mask / 2) & mask, t));
    m.valid = 0;
    EXPECT_FALSE(nic_to_tsc(m, nic0, t));
  }
  // The largest range allowed (2^62) does not overflow the check.
  NicToTscMap m = hand_map(64, 0, tsc0, 1.0, 1ull << 62);
  uint64_t t = 0;
  EXPECT_TRUE(nic_to_tsc(m, 1ull << 62, t));
  EXPECT_FALSE(nic_to_tsc(m, (1ull << 62) + 1, t));
  EXPECT_TRUE(nic_to_tsc(m, -(1ull << 62), t));
  EXPECT_FALSE(nic_to_tsc(m, -(1ull << 62) - 1, t));
  EXPECT_FALSE(nic_to_tsc(m, 1ull << 63, t));

  // Freshness, once per burst.
  m.max_age = 1000;
  EXPECT_TRUE(nic_map_fresh(m, tsc0 + 999));
  EXPECT_TRUE(nic_map_fresh(m, tsc0 - 5));  // another core's TSC a little behind
  EXPECT_FALSE(nic_map_fresh(m, tsc0 + 1000));
  m.valid = 0;
  EXPECT_FALSE(nic_map_fresh(m, tsc0));
}

// ---------------------------------------------------------------- mapper

TEST(NicClockMapper, RefusesBadParams) {
  NicClockParams p;
  p.nominal_ticks_per_tsc = 1e9 / 2.9e9;
  EXPECT_NO_THROW(NicClockMapper{p});
  NicClockParams q = p;
  q.counter_bits = 31;
  EXPECT_THROW(NicClockMapper{q}, std::invalid_argument);
  q = p;
  q.counter_bits = 65;
  EXPECT_THROW(NicClockMapper{q}, std::invalid_argument);
  q = p;
  q.nominal_ticks_per_tsc = 0;
  EXPECT_THROW(NicClockMapper{q}, std::invalid_argument);
  q = p;
  q.window = 3;
  EXPECT_THROW(NicClockMapper{q}, std::invalid_argument);
}

TEST(NicClockMapper, ValidAfterFourRoundsAndEmptyRoundsRejected) {
  SEED_TRACE();
  auto rng = test_rng();
  World w(kNs64, 37, rng, 0.25);
  NicClockMapper mp(w.params());
  EXPECT_FALSE(mp.valid());
  EXPECT_EQ(mp.add_round({}), NicRound::kRejectedReads);
  NicCrossTimestamp backwards{100, 5, 50};
  EXPECT_EQ(mp.add_round(std::span(&backwards, 1)), NicRound::kRejectedReads);
  EXPECT_EQ(mp.bad_reads(), 1u);
  long double t = 1e6;
  for (int r = 0; r < 3; r++, t = next_round(t, rng)) {
    EXPECT_EQ(mp.add_round(w.round(t, {})), NicRound::kAccepted);
    EXPECT_FALSE(mp.valid());
    EXPECT_EQ(mp.map().valid, 0u);
  }
  EXPECT_EQ(mp.add_round(w.round(t, {})), NicRound::kAccepted);
  EXPECT_TRUE(mp.valid());
  EXPECT_EQ(mp.rounds(), 6u);
  EXPECT_EQ(mp.outliers(), 2u);
  EXPECT_EQ(mp.restarts(), 0u);
}

struct Case {
  NicKind kind;
  double ppm;
};

class NicClockAccuracy : public ::testing::TestWithParam<Case> {};

TEST_P(NicClockAccuracy, ConvertsEventsWithinBounds) {
  SEED_TRACE();
  const Case c = GetParam();
  auto rng = test_rng();
  // The counter wraps 0.25-2.5 s into the run (the 64-bit ones at 2^64).
  World w(c.kind, c.ppm, rng, 0.25 + 2.25 * std::uniform_real_distribution<double>(0, 1)(rng));
  NicClockMapper mp(w.params());
  long double t = 1e6;
  long double t_last = t;
  for (int r = 0; r < 32; r++) {
    ASSERT_EQ(mp.add_round(w.round(t, {})), NicRound::kAccepted) << "round " << r;
    t_last = t;
    t = next_round(t, rng);
  }
  ASSERT_TRUE(mp.valid());
  EXPECT_EQ(mp.restarts(), 0u);
  EXPECT_EQ(mp.outliers(), 0u);
  EXPECT_NEAR(mp.rate_ppm_vs_nominal(), c.ppm, 0.01);
  const NicToTscMap m = mp.map();
  // Events in the last seconds and up to 50 ms after the newest round (the
  // next round has not come yet).
  const long double back = lookback_ns(w, m);
  const ErrStats s = convert_events(w, m, t_last, back, 50e6L, 20000, rng);
  std::printf("  %-10s %+5.0f ppm: events -%.2f s..+50 ms: rms %.2f ns  max %.2f ns  (fit rms %.1f TSC ticks, rate %+.4f ppm)\n",
              c.kind.name, c.ppm, static_cast<double>(back / 1e9L), s.rms_ns, s.max_ns, mp.residual_rms_ticks(),
              mp.rate_ppm_vs_nominal());
  EXPECT_EQ(s.rejected, 0u);
  EXPECT_LT(s.rms_ns, 20.0);
  EXPECT_LT(s.max_ns, 100.0);
}

INSTANTIATE_TEST_SUITE_P(
    Clocks, NicClockAccuracy,
    ::testing::Values(Case{kNs64, -100}, Case{kNs64, 0}, Case{kNs64, 37}, Case{kNs64, 100},
                      Case{kNs32, -100}, Case{kNs32, 0}, Case{kNs32, 37}, Case{kNs32, 100},
                      Case{kMlx156, -100}, Case{kMlx156, 0}, Case{kMlx156, 37}, Case{kMlx156, 100},
                      Case{kTick1G48, -100}, Case{kTick1G48, 0}, Case{kTick1G48, 37}, Case{kTick1G48, 100}),
    [](const ::testing::TestParamInfo<Case>& i) {
      return std::string(i.param.kind.name) + "_" + (i.param.ppm < 0 ? "m" : "p") +
             std::to_string(static_cast<int>(std::fabs(i.param.ppm)));
    });

// 60 s on a 32-bit ns counter: 14 wraps, every map checked as it is
// published.
TEST(NicClockMapper, Wraps32BitFor60s) {
  SEED_TRACE();
  auto rng = test_rng();
  for (double ppm : {-100.0, 100.0}) {
    SCOPED_TRACE(ppm);
    World w(kNs32, ppm, rng, 0.35);
    NicClockMapper mp(w.params());
    long double t = 1e6;
    int rounds = 0, wraps = 0;
    uint64_t prev_nic0 = 0;
    ErrStats worst;
    double ss = 0;
    size_t n = 0;
    for (; t < 60e9L; t = next_round(t, rng), rounds++) {
      ASSERT_EQ(mp.add_round(w.round(t, {})), NicRound::kAccepted) << "round " << rounds;
      if (!mp.valid()) continue;
      const NicToTscMap m = mp.map();
      if (m.nic0 < prev_nic0) wraps++;
      prev_nic0 = m.nic0;
      const ErrStats s = convert_events(w, m, t, std::min(1e9L, lookback_ns(w, m)), 50e6L, 200, rng);
      EXPECT_EQ(s.rejected, 0u);
      worst.max_ns = std::max(worst.max_ns, s.max_ns);
      ss += s.rms_ns * s.rms_ns * static_cast<double>(s.converted);
      n += s.converted;
    }
    worst.rms_ns = std::sqrt(ss / static_cast<double>(n));
    std::printf("  ns32 %+4.0f ppm, 60 s, %d rounds, %d wraps: rms %.2f ns  max %.2f ns\n", ppm, rounds, wraps,
                worst.rms_ns, worst.max_ns);
    EXPECT_GE(wraps, 13);
    EXPECT_EQ(mp.restarts(), 0u);
    EXPECT_EQ(mp.outliers(), 0u);
    EXPECT_LT(worst.rms_ns, 20.0);
    EXPECT_LT(worst.max_ns, 100.0);
  }
}

// Anchor just after the wrap; events before it (negative delta across the
// wrap) and at the boundary itself.
TEST(NicClockMapper, EventsOlderThanAnchorAcrossWrap) {
  SEED_TRACE();
  auto rng = test_rng();
  // Run rounds at t = 1 ms + k * 100 ms exactly; the counter wraps 2 us
  // before the last (32nd) round, i.e. at t_wrap = t_last - 2 us.
  const long double t_last = 1e6L + 31 * 100e6L;
  World w2(kNs32, 37, rng, (t_last - 2000) / 1e9L);
  NicClockMapper mp(w2.params());
  World::RoundOpts narrow;
  narrow.wide_read_p = 0;  // so the kept read is within ~16 us of the round's start
  for (int r = 0; r < 32; r++) ASSERT_EQ(mp.add_round(w2.round(1e6L + r * 100e6L, narrow)), NicRound::kAccepted);
  ASSERT_TRUE(mp.valid());
  const NicToTscMap m = mp.map();
  ASSERT_LT(m.nic0, 30000u);  // just past the wrap 
  // Events over the last second, all but the last 2 us before the wrap.
  const ErrStats s = convert_events(w2, m, t_last, 1e9L, 0, 5000, rng);
  EXPECT_EQ(s.rejected, 0u);
  EXPECT_LT(s.rms_ns, 20.0);
  EXPECT_LT(s.max_ns, 100.0);
  // Raw values at the boundary: the last before the wrap, the wrap itself.
  const long double t_wrap = t_last - 2000 + 1.0L;  // (about) the true time of counter value 0
  for (uint64_t raw : {uint64_t{0xFFFFFFFF}, uint64_t{0}, uint64_t{1}}) {
    uint64_t tsc = 0;
    ASSERT_TRUE(nic_to_tsc(m, raw, tsc));
    const long double off = raw == 0xFFFFFFFFu ? -1.0L : static_cast<long double>(raw);
    const long double te = t_wrap + off * 1e9L / w2.nic_hz();
    const long double err_ns = (static_cast<long double>(tsc) - w2.tsc_true(te)) * 1e9L / kTscHz;
    EXPECT_LT(std::fabs(static_cast<double>(err_ns)), 100.0) << raw;
  }
}

// A fitted map converts raw values within max_delta of the anchor and
// rejects the rest; count both over random raw values.
TEST(NicClockMapper, RejectsOutOfRangeRawValues) {
  SEED_TRACE();
  auto rng = test_rng();
  for (const NicKind& k : {kNs32, kTick1G48, kNs64}) {
    SCOPED_TRACE(k.name);
    World w(k, 37, rng, 1.0);
    NicClockMapper mp(w.params());
    long double t = 1e6;
    for (int r = 0; r < 32; r++, t = next_round(t, rng)) mp.add_round(w.round(t, {}));
    ASSERT_TRUE(mp.valid());
    const NicToTscMap m = mp.map();
    ASSERT_GT(m.max_delta, 0u);
    // Near the range: both sides, by the exact boundary.
    size_t expected_rejects = 0, rejects = 0;
    std::uniform_int_distribution<int64_t> near(-static_cast<int64_t>(m.max_delta) * 2,
                                                static_cast<int64_t>(m.max_delta) * 2);
    for (int i = 0; i < 100000; i++) {
      const int64_t d = i < 4 ? std::array<int64_t, 4>{static_cast<int64_t>(m.max_delta),
                                                       -static_cast<int64_t>(m.max_delta),
                                                       static_cast<int64_t>(m.max_delta) + 1,
                                                       -static_cast<int64_t>(m.max_delta) - 1}[i]
                              : near(rng);
      // Random 64-bit values too (garbage in the timestamp field).
      const uint64_t raw = i < 4 || i % 2 ? m.nic0 + static_cast<uint64_t>(d) : rng();
      uint64_t u = (raw - m.nic0) & m.mask;
      const uint64_t top = (m.mask >> 1) + 1;
      const auto sd = static_cast<int64_t>((u ^ top) - top);
      const bool in = sd >= -static_cast<int64_t>(m.max_delta) && sd <= static_cast<int64_t>(m.max_delta);
      expected_rejects += !in;
      uint64_t tsc;
      rejects += !nic_to_tsc(m, raw, tsc);
    }
    std::printf("  %-10s max_delta %.3f s: %zu of 100000 raw values rejected\n", k.name,
                static_cast<double>(m.max_delta / w.nic_hz()), rejects);
    EXPECT_EQ(rejects, expected_rejects);
    EXPECT_GT(rejects, 25000u);
    // An event too far after the anchor (a stale map) is rejected, not converted.
    const long double md_ns = static_cast<long double>(m.max_delta) / w.nic_hz() * 1e9L;
    const long double t_last = t - 100e6L;  // approximately; far from the boundary below
    uint64_t tsc;
    EXPECT_FALSE(nic_to_tsc(m, w.nic_at(t_last + md_ns + 50e6L), tsc));
    EXPECT_TRUE(nic_to_tsc(m, w.nic_at(t_last + md_ns - 50e6L), tsc));
  }
}

// No rounds for longer than half the wrap period of a 32-bit ns counter:
// the unwrap is ambiguous, the mapper restarts (invalid until it has four
// rounds again) instead of converting wrongly. A gap of exactly a wrap plus
// 100 ms, which a difference of counter values alone would take for 100
// ms, is caught by the TSC. A gap under half the wrap is bridged.
TEST(NicClockMapper, AmbiguousGapRestarts) {
  SEED_TRACE();
  auto rng = test_rng();
  const long double wrap_ns = 4294967296.0L;
  for (double ppm : {-100.0, 37.0}) {
    World w(kNs32, ppm, rng, 1.3);
    const long double wrap_true_ns = wrap_ns * 1e9L / w.nic_hz();
    for (long double gap : {1.5e9L, 2.5e9L, wrap_true_ns + 100e6L, 3 * wrap_true_ns}) {
      SCOPED_TRACE(::testing::Message() << "ppm " << ppm << " gap " << static_cast<double>(gap / 1e9L) << " s");
      NicClockMapper mp(w.params());
      long double t = 1e6;
      for (int r = 0; r < 32; r++, t = next_round(t, rng)) ASSERT_EQ(mp.add_round(w.round(t, {})), NicRound::kAccepted);
      ASSERT_TRUE(mp.valid());
      t += gap - 100e6L;
      const bool ambiguous = gap > wrap_ns / 2;
      const NicRound res = mp.add_round(w.round(t, {}));
      if (!ambiguous) {
        EXPECT_EQ(res, NicRound::kAccepted);
        EXPECT_EQ(mp.restarts(), 0u);
        ASSERT_TRUE(mp.valid());
      } else {
        EXPECT_EQ(res, NicRound::kRestartedGap);
        EXPECT_EQ(mp.restarts(), 1u);
        EXPECT_FALSE(mp.valid());
        uint64_t tsc;
        EXPECT_FALSE(nic_to_tsc(mp.map(), w.nic_at(t), tsc));  // nothing converted meanwhile
        for (int r = 0; r < 3; r++) {
          t = next_round(t, rng);
          EXPECT_EQ(mp.add_round(w.round(t, {})), NicRound::kAccepted);
        }
        ASSERT_TRUE(mp.valid());
      }
      for (int r = 0; r < 8; r++) {
        t = next_round(t, rng);
        mp.add_round(w.round(t, {}));
      }
      const NicToTscMap m = mp.map();
      const ErrStats s = convert_events(w, m, t, std::min(0.7e9L, lookback_ns(w, m)), 50e6L, 5000, rng);
      EXPECT_EQ(s.rejected, 0u);
      EXPECT_LT(s.rms_ns, 20.0);
      EXPECT_LT(s.max_ns, 100.0);
    }
  }
}

// Outlier rounds (every read 50 us wide, every read stale by 3 ms, every
// read all ones) are rejected and counted; rounds with one garbage read
// keep the others. The fit is unharmed.
TEST(NicClockMapper, OutlierRoundsRejected) {
  SEED_TRACE();
  auto rng = test_rng();
  std::uniform_real_distribution<double> u01(0, 1);
  for (const NicKind& k : {kNs64, kNs32, kMlx156, kTick1G48}) {
    SCOPED_TRACE(k.name);
    World w(k, -37, rng, 2.0);
    NicClockMapper mp(w.params());
    long double t = 1e6, t_last = t;
    uint64_t injected = 0, garbage_reads = 0;
    int wide = 0, stale = 0, ones = 0;
    for (int r = 0; r < 200; r++, t = next_round(t, rng)) {
      World::RoundOpts o;
      NicRound want = NicRound::kAccepted;
      if (r > 0) {  // the first round has nothing to compare against
        const double x = u01(rng);
        if (x < 0.10) {
          o.wide_round = true;
          want = NicRound::kRejectedWidth;
          wide++;
        } else if (x < 0.15) {
          o.stale_round = true;
          want = NicRound::kRejectedResidual;
          stale++;
        } else if (x < 0.18) {
          // A stuck counter: rejected as reads that disagree (the value
          // does not advance within the round) or, where a majority
          // happens to agree, as far off the fit.
          o.all_ones = true;
          want = NicRound::kRejectedReads;
          ones++;
        } else if (x < 0.30) {
          o.garbage_read = true;
          garbage_reads++;
        }
      }
      injected += want != NicRound::kAccepted;
      const NicRound got = mp.add_round(w.round(t, o));
      if (o.all_ones && got == NicRound::kRejectedResidual) want = got;
      ASSERT_EQ(got, want) << "round " << r;
      if (want == NicRound::kAccepted) t_last = t;
    }
    ASSERT_TRUE(mp.valid());
    EXPECT_EQ(mp.outliers(), injected);
    // One per garbage read, and those of stuck rounds outside their majority.
    EXPECT_GE(mp.bad_reads(), garbage_reads);
    EXPECT_LE(mp.bad_reads(), garbage_reads + 8u * static_cast<unsigned>(ones));
    EXPECT_EQ(mp.restarts(), 0u);
    EXPECT_NEAR(mp.rate_ppm_vs_nominal(), -37, 0.01);
    const NicToTscMap m = mp.map();
    const ErrStats s = convert_events(w, m, t_last, lookback_ns(w, m), 50e6L, 20000, rng);
    std::printf("  %-10s 200 rounds, %d wide + %d stale + %d all-ones rejected, %llu garbage reads dropped: rms %.2f ns  max %.2f ns\n",
                k.name, wide, stale, ones, static_cast<unsigned long long>(garbage_reads), s.rms_ns, s.max_ns);
    EXPECT_EQ(s.rejected, 0u);
    EXPECT_LT(s.rms_ns, 20.0);
    EXPECT_LT(s.max_ns, 100.0);
  }
}

// Outliers while the window is filling: a wide first round is kept out of
// the fit once the median width is known.
TEST(NicClockMapper, WideFirstRoundLeftOutOfFit) {
  SEED_TRACE();
  auto rng = test_rng();
  World w(kNs64, 100, rng, 1.0);
  NicClockMapper mp(w.params());
  long double t = 1e6, t_last = t;
  World::RoundOpts wide;
  wide.wide_round = true;
  wide.wide_read_p = 0;
  EXPECT_EQ(mp.add_round(w.round(t, wide)), NicRound::kAccepted);
  for (int r = 1; r < 8; r++) {
    t = next_round(t, rng);
    EXPECT_EQ(mp.add_round(w.round(t, {})), NicRound::kAccepted);
    t_last = t;
  }
  ASSERT_TRUE(mp.valid());
  const NicToTscMap m = mp.map();
  const ErrStats s = convert_events(w, m, t_last, 0.7e9L, 50e6L, 5000, rng);
  EXPECT_LT(s.rms_ns, 20.0);
  EXPECT_LT(s.max_ns, 100.0);
}

// The NIC clock steps (its PHC was set): the new rounds are all far off the
// fit, and after 8 of them the mapper starts over on the new clock.
TEST(NicClockMapper, ClockStepRestarts) {
  SEED_TRACE();
  auto rng = test_rng();
  World w(kNs64, 0, rng, 1.0);
  NicClockMapper mp(w.params());
  long double t = 1e6;
  for (int r = 0; r < 32; r++, t = next_round(t, rng)) ASSERT_EQ(mp.add_round(w.round(t, {})), NicRound::kAccepted);
  World::RoundOpts step;
  step.nic_step_ns = 1e6L;  // the NIC clock jumped 1 ms ahead
  for (int r = 0; r < 7; r++, t = next_round(t, rng))
    EXPECT_EQ(mp.add_round(w.round(t, step)), NicRound::kRejectedResidual);
  EXPECT_TRUE(mp.valid());  // the old map is kept meanwhile
  EXPECT_EQ(mp.add_round(w.round(t, step)), NicRound::kRestartedOutliers);
  EXPECT_EQ(mp.restarts(), 1u);
  EXPECT_FALSE(mp.valid());
  long double t_last = t;
  for (int r = 0; r < 10; r++) {
    t = next_round(t, rng);
    EXPECT_EQ(mp.add_round(w.round(t, step)), NicRound::kAccepted);
    t_last = t;
  }
  ASSERT_TRUE(mp.valid());
  const ErrStats s = convert_events(w, mp.map(), t_last, 0.5e9L, 50e6L, 5000, rng, step.nic_step_ns);
  EXPECT_EQ(s.rejected, 0u);
  EXPECT_LT(s.rms_ns, 20.0);
  EXPECT_LT(s.max_ns, 100.0);
}

// A NIC whose rate is off by more than max_rate_error_ppm is never valid.
TEST(NicClockMapper, InsaneRateRefused) {
  SEED_TRACE();
  auto rng = test_rng();
  World w(kNs64, 800, rng, 1.0);
  NicClockMapper mp(w.params());
  long double t = 1e6;
  for (int r = 0; r < 40; r++, t = next_round(t, rng)) {
    mp.add_round(w.round(t, {}));
    EXPECT_FALSE(mp.valid());
    EXPECT_EQ(mp.map().valid, 0u);
  }
}

// A map further from its anchor than max_age is not fresh; a 32-bit map
// expires before a raw value could alias into its range.
TEST(NicClockMapper, MapAgeBoundsAliasing) {
  SEED_TRACE();
  auto rng = test_rng();
  World w(kNs32, 0, rng, 1.0);
  NicClockMapper mp(w.params());
  long double t = 1e6;
  for (int r = 0; r < 32; r++, t = next_round(t, rng)) mp.add_round(w.round(t, {}));
  const NicToTscMap m = mp.map();
  ASSERT_TRUE(mp.valid());
  const long double age_s = static_cast<long double>(m.max_age) / kTscHz;
  const long double wrap_s = 4294967296.0L / 1e9L;
  const long double md_s = static_cast<long double>(m.max_delta) / 1e9L;
  EXPECT_GT(age_s, 1.0L);
  EXPECT_LT(age_s + md_s, wrap_s);  // before any raw value aliases into range
  EXPECT_TRUE(nic_map_fresh(m, m.tsc0 + m.max_age - 1));
  EXPECT_FALSE(nic_map_fresh(m, m.tsc0 + m.max_age));
}

}  // namespace
}  // namespace ntp::hwclock
