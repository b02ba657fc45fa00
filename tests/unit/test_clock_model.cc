// The clock model (hwclock/clock_model.h): fixed-point conversion of raw
// timebase ticks to Unix ns, the virtual oscillator, and the tracker that
// follows a reference clock from noisy cross-timestamps.
#include "hwclock/clock_model.h"
#include "tests/support/test_seed.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

namespace ntp::hwclock {
namespace {

uint64_t test_seed() { return ::ntp::test::seed(); }
#define SEED_TRACE() SCOPED_TRACE(::testing::Message() << "TEST_SEED=" << test_seed())

constexpr int64_t kNs = 1000000000LL;
constexpr long double kTwo40 = 1099511627776.0L;  // 2^40
constexpr int64_t kUtc2026 = 1767225600LL * kNs;   // 2026-01-01T00:00:00Z

// The exact value of the model at raw, in long double (64-bit mantissa).
long double ref_model(const ClockModelData& m, uint64_t raw) {
  const auto d = static_cast<int64_t>(raw - m.raw0);
  return static_cast<long double>(m.utc0_ns) + static_cast<long double>(d) * static_cast<long double>(m.mult) / kTwo40;
}

// ---------------------------------------------------------------- model_to_ns

TEST(ModelToNs, Golden) {
  ClockModelData m;
  m.raw0 = 1000;
  m.utc0_ns = 1000000000000000000LL;
  m.mult = uint64_t{1} << 40;  // 1 ns per tick
  EXPECT_EQ(model_to_ns(m, 1000), m.utc0_ns);
  EXPECT_EQ(model_to_ns(m, 1500), m.utc0_ns + 500);
  EXPECT_EQ(model_to_ns(m, 500), m.utc0_ns - 500);  // before raw0
  EXPECT_EQ(model_to_ns(m, 0), m.utc0_ns - 1000);
  // raw0 near 0, raw "before" it: the unsigned difference wraps to -5.
  m.raw0 = 3;
  EXPECT_EQ(model_to_ns(m, UINT64_MAX - 1), m.utc0_ns - 5);
  // Half a ns per tick: the fixed point rounds toward minus infinity, so
  // the map stays monotonic across raw0.
  m.raw0 = 1000;
  m.mult = uint64_t{1} << 39;
  EXPECT_EQ(model_to_ns(m, 1001), m.utc0_ns);
  EXPECT_EQ(model_to_ns(m, 1002), m.utc0_ns + 1);
  EXPECT_EQ(model_to_ns(m, 999), m.utc0_ns - 1);
  EXPECT_EQ(model_to_ns(m, 998), m.utc0_ns - 1);
  EXPECT_EQ(model_to_ns(m, 997), m.utc0_ns - 2);
  int64_t prev = model_to_ns(m, 900);
  for (uint64_t raw = 901; raw < 1100; raw++) {
    const int64_t v = model_to_ns(m, raw);
    ASSERT_GE(v, prev) << raw;
    ASSERT_LE(v - prev, 1) << raw;
    prev = v;
  }
}

TEST(ModelToNs, OneDayAt3GHz) {
  const uint64_t hz = 3000000000ULL;
  const int64_t day_ticks = 86400LL * static_cast<int64_t>(hz);
  // Ordinary raw0, and one where raw wraps past 2^64 within the day.
  for (uint64_t raw0 : {uint64_t{123456789012345}, uint64_t{~uint64_t{0} - 1000000000000ULL}}) {
    SCOPED_TRACE(raw0);
    const ClockModelData m = make_model(raw0, kUtc2026, 1e9 / static_cast<double>(hz), hz);
    // The rate is 1/3 ns per tick to within half a unit of 2^-40 ns.
    EXPECT_EQ(m.mult, 366503875925ULL);  // round(2^40 / 3)
    for (int64_t d : {day_ticks, -day_ticks, day_ticks / 2 + 1, int64_t{-1}, int64_t{1}, day_ticks * 3}) {
      const uint64_t raw = raw0 + static_cast<uint64_t>(d);
      const int64_t v = model_to_ns(m, raw);
      // Exact to the fixed point: floor of the exact product, within 1 ns of
      // the long double value.
      EXPECT_LE(std::fabs(static_cast<long double>(v) - ref_model(m, raw)), 1.0L) << d;
      // And what the quantized rate costs against an ideal 3 GHz: at most
      // |d| * 2^-41 ns (118 ns per day).
      const long double ideal = static_cast<long double>(kUtc2026) + static_cast<long double>(d) / 3.0L;
      const long double bound = std::fabs(static_cast<long double>(d)) / (2.0L * kTwo40) + 1.0L;
      EXPECT_LE(std::fabs(static_cast<long double>(v) - ideal), bound) << d;
    }
    // A day later it reads a day later (within the quantization).
    EXPECT_NEAR(static_cast<double>(model_to_ns(m, raw0 + day_ticks) - kUtc2026), 86400.0 * 1e9, 120.0);
    EXPECT_NEAR(static_cast<double>(model_to_ns(m, raw0 - day_ticks) - kUtc2026), -86400.0 * 1e9, 120.0);
  }
}

TEST(ModelToNs, RandomExactVsLongDouble) {
  SEED_TRACE();
  std::mt19937_64 rng(test_seed());
  std::uniform_int_distribution<uint64_t> mult(uint64_t{1} << 36, uint64_t{1} << 42);  // 1/16 .. 4 ns per tick
  std::uniform_int_distribution<int64_t> delta(-1000000000000000LL, 1000000000000000LL);  // +-1e15 ticks
  std::uniform_int_distribution<int64_t> small(-100000, 100000);
  for (int i = 0; i < 300000; i++) {
    ClockModelData m;
    m.raw0 = rng();
    m.utc0_ns = kUtc2026 + small(rng) * kNs;
    m.mult = mult(rng);
    const int64_t d = (i & 1) ? delta(rng) : small(rng);
    const uint64_t raw = m.raw0 + static_cast<uint64_t>(d);
    // Compare the part after utc0 (a long double holds 1.7e18 only to
    // 1/8 ns; the delta, up to 4e15 ns, to 1/2048 ns).
    const long double want = static_cast<long double>(d) * static_cast<long double>(m.mult) / kTwo40;
    const auto got = static_cast<long double>(model_to_ns(m, raw) - m.utc0_ns);
    // floor: got <= exact < got + 1.
    ASSERT_LE(got, want + 0.01L) << "d=" << d << " mult=" << m.mult;
    ASSERT_GT(got + 1.0L, want - 0.01L) << "d=" << d << " mult=" << m.mult;
  }
}

TEST(ModelToNs, MultResolution) {
  SEED_TRACE();
  EXPECT_EQ(mult_from_ns_per_tick(1.0), uint64_t{1} << 40);
  EXPECT_EQ(mult_from_ns_per_tick(0.5), uint64_t{1} << 39);
  EXPECT_EQ(mult_from_ns_per_tick(1.0 / 3.0), 366503875925ULL);
  EXPECT_EQ(mult_from_ns_per_tick(1.0 / 2.9), 379141940612ULL);  // 2^40 / 2.9 = 379141940612.41
  EXPECT_DOUBLE_EQ(ns_per_tick(make_model(0, 0, 0.25, 4000000000ULL)), 0.25);
  // One unit of mult is 2^-40 ns per tick: at 3 GHz a rate step of
  // 3e9 * 2^-40 ns per s = 2.7e-12, far below any oscillator's stability.
  EXPECT_LT(3e9 / static_cast<double>(kTwo40) / 1e9, 3e-12);
  std::mt19937_64 rng(test_seed() + 1);
  std::uniform_real_distribution<double> npt(0.05, 4.0);
  for (int i = 0; i < 200000; i++) {
    const double x = npt(rng);
    const uint64_t mult = mult_from_ns_per_tick(x);
    // Rounded to nearest: within half a unit of 2^-40 ns per tick.
    ASSERT_LE(std::fabs(static_cast<long double>(mult) - static_cast<long double>(x) * kTwo40), 0.5L) << x;
    ASSERT_LE(std::fabs(ns_per_tick(make_model(0, 0, x, 0)) - x), 0.5 / static_cast<double>(kTwo40) * 1.0000001)
        << x;
  }
}

TEST(MakeModel, Fields) {
  const ClockModelData m = make_model(42, kUtc2026, 1e9 / 3e9 * (1 + 2.5e-6), 3000000000ULL);
  EXPECT_EQ(m.raw0, 42u);
  EXPECT_EQ(m.utc0_ns, kUtc2026);
  EXPECT_EQ(m.nominal_hz, 3000000000ULL);
  EXPECT_EQ(m.freq_ppb, 2500);  // runs 2.5 ppm faster than nominal
  EXPECT_EQ(m.flags & proto::kModelValid, proto::kModelValid);
  EXPECT_EQ(model_to_ns(m, 42), kUtc2026);
  EXPECT_EQ(make_model(0, 0, 1e9 / 3e9 * (1 - 1e-6), 3000000000ULL).freq_ppb, -1000);
  EXPECT_EQ(make_model(0, 0, 1.0, 0).freq_ppb, 0);  // unknown nominal
}

// ------------------------------------------------------- the leap on top

TEST(ModelToNs, LeapAppliedOnTopOfTheLinearTime) {
  // 2016-12-31's inserted second on a 4 GHz timebase (a quarter ns a tick,
  // exact in the fixed point) anchored 10 s before it: model_linear_ns is
  // the model as before, model_to_ns serves the leap.
  constexpr int64_t kLeap = 1483228800LL * kNs;
  ClockModelData m = make_model(3000, kLeap - 10 * kNs, 0.25, 4000000000ULL);
  EXPECT_EQ(m.leap_sign, 0);  // a fresh model has no leap
  const ClockModelData plain = m;
  set_model_leap(m, 1, kLeap, false);
  const uint64_t at_leap = 3000 + 40000000000ULL;  // 10 s of ticks
  EXPECT_EQ(model_linear_ns(m, at_leap), kLeap);
  EXPECT_EQ(model_to_ns(m, at_leap), kLeap - kNs);  // 23:59:59 again
  EXPECT_EQ(model_to_ns(m, at_leap - 3), kLeap - 1);
  EXPECT_EQ(model_to_ns(m, at_leap + 4000000000ULL), kLeap);
  for (uint64_t raw : {uint64_t{0}, uint64_t{3000}, at_leap - 1, at_leap, at_leap + 123456789, at_leap * 3}) {
    EXPECT_EQ(model_linear_ns(m, raw), model_to_ns(plain, raw)) << raw;
    EXPECT_EQ(model_to_ns(m, raw), apply_leap(m, model_linear_ns(m, raw))) << raw;
  }
  set_model_leap(m, -1, kLeap, false);
  EXPECT_EQ(model_to_ns(m, at_leap - 4000000000ULL - 3), kLeap - kNs - 1);
  EXPECT_EQ(model_to_ns(m, at_leap - 4000000000ULL), kLeap);  // 23:59:59 skipped
  set_model_leap(m, 1, kLeap, true);
  EXPECT_EQ(model_to_ns(m, at_leap), kLeap - kNs / 2);  // half way through the smear
}

TEST(ModelToNs, NoLeapSignIgnoresTheOtherLeapFields) {
  // The one branch: with leap_sign 0 a stale date or window changes nothing.
  ClockModelData m = make_model(3000, kUtc2026, 1.0 / 3.0, 3000000000ULL);
  const ClockModelData plain = m;
  m.leap_ns = kUtc2026 + 5 * kNs;
  m.leap_smear_ns = 86400 * kNs;
  for (uint64_t raw = 0; raw < 60000000000ULL; raw += 1234567891)
    ASSERT_EQ(model_to_ns(m, raw), model_to_ns(plain, raw)) << raw;
}

TEST(ModelToNs, ModelsDerivedHereCarryNoLeap) {
  // The tracker and the oscillator build their models with make_model (no
  // leap); the oscillator copies the host model's, which has none.
  ReferenceTracker tr({.nominal_hz = 3e9});
  tr.update(1000, kUtc2026, 3000000000ULL);
  EXPECT_EQ(tr.update(3000001000ULL, kUtc2026 + kNs + 7, 3000000000ULL).leap_sign, 0);
  const ClockModelData host = make_model(1000, kUtc2026, 1.0 / 3.0, 3000000000ULL);
  EXPECT_EQ(oscillator_model(host, kUtc2026, 40000000, 12.5).leap_sign, 0);
}

// ------------------------------------------------------ a slew that ends

// A model whose mult includes a slew up to slew_end_raw, base_mult after.
ClockModelData slewing_model(uint64_t raw0, uint64_t end_raw, double base_ns_per_tick, double slew_ppm) {
  ClockModelData m = make_model(raw0, kUtc2026, base_ns_per_tick * (1 + slew_ppm * 1e-6), 3000000000ULL);
  m.slew_end_raw = end_raw;
  m.base_mult = mult_from_ns_per_tick(base_ns_per_tick);
  return m;
}

TEST(ModelToNs, SlewEndsAtSlewEndRawAndTheBaseRateFollows) {
  // 3 GHz, +500 ppm of slew for 10 s from raw0: 5 ms slewed, then the base.
  const uint64_t raw0 = 5000, end = raw0 + uint64_t{30000000000};
  const ClockModelData m = slewing_model(raw0, end, 1.0 / 3.0, 500);
  ClockModelData unended = m;
  unended.slew_end_raw = 0;  // what ABI 3 served: the slew on for ever
  ClockModelData base = m;   // the base rate throughout, from the same time at the end
  base.raw0 = end;
  base.utc0_ns = model_linear_ns(unended, end);
  base.mult = m.base_mult;
  base.slew_end_raw = 0;
  // Up to and at its end the slewing rate (the fast path, bit for bit).
  for (uint64_t raw : {uint64_t{0}, raw0, raw0 + 1, end - 1, end})
    EXPECT_EQ(model_linear_ns(m, raw), model_linear_ns(unended, raw)) << raw;
  // From the end on the base rate, continuous there.
  for (const uint64_t raw : {end, end + 1, end + 3, end + uint64_t{3000000000}, end + 300 * uint64_t{3000000000}})
    EXPECT_EQ(model_linear_ns(m, raw), model_linear_ns(base, raw)) << raw;
  EXPECT_NEAR(static_cast<double>(model_linear_ns(m, end) - kUtc2026), 10e9 * (1 + 500e-6), 1.0);
  // 300 s after the end: 300 s at the base rate, not 150 ms more of slew.
  const uint64_t later = end + 300 * 3000000000ULL;
  EXPECT_NEAR(static_cast<double>(model_linear_ns(m, later) - model_linear_ns(m, end)), 300e9, 1.0);
  EXPECT_NEAR(static_cast<double>(model_linear_ns(unended, later) - model_linear_ns(m, later)), 300e9 * 500e-6,
              1.0);
  // Monotonic across the end, one tick at a time.
  for (uint64_t raw = end - 100; raw < end + 100; raw++) ASSERT_LE(model_linear_ns(m, raw), model_linear_ns(m, raw + 1));
  // The leap goes on top of it as on any linear time.
  ClockModelData leap = m;
  set_model_leap(leap, 1, model_linear_ns(m, end + 3000000000ULL), false);
  EXPECT_EQ(model_to_ns(leap, later), model_linear_ns(m, later) - kNs);
  EXPECT_EQ(model_to_ns(leap, end), model_linear_ns(m, end));
}

TEST(ModelToNs, EndSlewIsTheSameMappingFromTheEndOn) {
  SEED_TRACE();
  std::mt19937_64 rng(test_seed() + 7);
  std::uniform_int_distribution<uint64_t> mult(uint64_t{1} << 36, uint64_t{1} << 42);
  std::uniform_int_distribution<int64_t> slew(-(int64_t{1} << 30), int64_t{1} << 30);  // up to ~1000 ppm of 2^40
  std::uniform_int_distribution<uint64_t> span(1, uint64_t{1} << 44);                  // up to ~1.7e13 ticks
  for (int i = 0; i < 100000; i++) {
    ClockModelData m;
    m.raw0 = rng();
    m.utc0_ns = kUtc2026 + static_cast<int64_t>(rng() % 1000000) * kNs;
    m.base_mult = mult(rng);
    m.mult = m.base_mult + static_cast<uint64_t>(slew(rng));
    m.freq_ppb = 123;
    m.slew_end_raw = m.raw0 + span(rng);
    if (m.slew_end_raw == 0) continue;
    const ClockModelData e = end_slew(m);
    ASSERT_EQ(e.slew_end_raw, 0u);
    ASSERT_EQ(e.raw0, m.slew_end_raw);
    ASSERT_EQ(e.mult, m.base_mult);
    ASSERT_EQ(settled_mult(m), e.mult);
    for (uint64_t d : {uint64_t{0}, uint64_t{1}, span(rng), span(rng) << 4}) {
      const uint64_t raw = m.slew_end_raw + d;
      ASSERT_EQ(model_to_ns(e, raw), model_to_ns(m, raw)) << i << " d=" << d;
    }
    // Against the exact value of the two pieces (floor of each: within 2 ns).
    const uint64_t raw = m.slew_end_raw + span(rng);
    const long double want = ref_model(m, m.slew_end_raw) +
                             static_cast<long double>(raw - m.slew_end_raw) * static_cast<long double>(m.base_mult) /
                                 kTwo40;
    ASSERT_NEAR(static_cast<long double>(model_to_ns(m, raw) - m.utc0_ns), want - m.utc0_ns, 2.0L) << i;
  }
  // The status frequency drops the slew's share; no slew: the model itself.
  const ClockModelData m = slewing_model(5000, 5000 + 3000000000ULL, 1.0 / 3.0, 100);
  EXPECT_NEAR(static_cast<double>(end_slew(m).freq_ppb), static_cast<double>(m.freq_ppb) - 100000.0, 2.0);
  const ClockModelData plain = make_model(5000, kUtc2026, 1.0 / 3.0, 3000000000ULL);
  const ClockModelData same = end_slew(plain);
  EXPECT_EQ(same.raw0, plain.raw0);
  EXPECT_EQ(same.mult, plain.mult);
  EXPECT_EQ(settled_mult(plain), plain.mult);
}

TEST(ModelToNs, NoSlewIgnoresBaseMult) {
  // The one branch: with slew_end_raw 0 a stale base_mult changes nothing,
  // and before the end neither does any base_mult.
  ClockModelData m = make_model(3000, kUtc2026, 1.0 / 3.0, 3000000000ULL);
  const ClockModelData plain = m;
  m.base_mult = 12345;
  for (uint64_t raw = 0; raw < 60000000000ULL; raw += 1234567891)
    ASSERT_EQ(model_to_ns(m, raw), model_to_ns(plain, raw)) << raw;
  m.slew_end_raw = 60000000000ULL;
  for (uint64_t raw = 0; raw <= 60000000000ULL; raw += 1234567891)
    ASSERT_EQ(model_to_ns(m, raw), model_to_ns(plain, raw)) << raw;
  // Nonsense from the other process wraps, never traps.
  m.raw0 = 0;
  m.mult = ~uint64_t{0};
  m.base_mult = ~uint64_t{0};
  m.slew_end_raw = uint64_t{1} << 63;
  (void)model_to_ns(m, ~uint64_t{0});
  (void)model_to_ns(m, (uint64_t{1} << 63) + 1);
}

TEST(ModelToNs, FoldAndOscillatorKeepTheSlewsEnd) {
  // fold_leap shifts the anchor: both pieces move by the second.
  constexpr int64_t kLeap = 1483228800LL * kNs;
  ClockModelData m = slewing_model(3000, 3000 + 4 * 3000000000ULL, 1.0 / 3.0, 200);
  m.utc0_ns = kLeap - 10 * kNs;
  set_model_leap(m, 1, kLeap, false);
  const ClockModelData f = fold_leap(m);
  EXPECT_EQ(f.slew_end_raw, m.slew_end_raw);
  EXPECT_EQ(f.base_mult, m.base_mult);
  const uint64_t past = 3000 + 11 * 3000000000ULL;  // past the leap, and the slew's end
  for (const uint64_t raw : {past, past + 1, past + 777 * uint64_t{3000000000}}) EXPECT_EQ(model_to_ns(f, raw), model_to_ns(m, raw));
  // An oscillator on a slewing host slews and ends with it, both rates scaled.
  ClockModelData host = slewing_model(3000, 3000 + 4 * 3000000000ULL, 1.0 / 3.0, 200);
  const ClockModelData osc = oscillator_model(host, kUtc2026, 0, 25.0);
  EXPECT_EQ(osc.slew_end_raw, host.slew_end_raw);
  EXPECT_LE(std::fabs(static_cast<long double>(osc.base_mult) - static_cast<long double>(host.base_mult) * (1 + 25e-6L)),
            0.5001L);
  const uint64_t a = host.slew_end_raw + 3000000000ULL, b = a + 100 * 3000000000ULL;
  EXPECT_NEAR(static_cast<double>((model_to_ns(osc, b) - model_to_ns(osc, a)) - (model_to_ns(host, b) - model_to_ns(host, a))),
              100e9 * 25e-6, 2.0);
  // The tracker and plain oscillators have no slew.
  EXPECT_EQ(oscillator_model(make_model(1000, kUtc2026, 1.0 / 3.0, 3000000000ULL), kUtc2026, 0, 3.0).slew_end_raw, 0u);
}

// ------------------------------------------------------------ model_plausible

// A model as the control plane publishes it: a 2.5 GHz TSC, 2026, 30 ppm off.
ClockModelData good_model() {
  ClockModelData m = make_model(123456789, kUtc2026, 1e9 / 2.5e9 * (1 + 30e-6), 2500000000ULL);
  return m;
}

TEST(ModelPlausible, PublishedModelsPass) {
  constexpr double kTscHz = 2.5e9 * (1 + 2e-6);  // the dataplane's own calibration, 2 ppm apart
  EXPECT_EQ(model_implausible(good_model(), kTscHz), nullptr);
  EXPECT_TRUE(model_plausible(good_model(), 0));  // judged against its own nominal_hz
  // The virtual source at its limits: a day off, 1000 ppm fast, and the
  // discipline's largest frequency (clock.max_frequency_ppm <= 100000 ppm).
  const ClockModelData v = oscillator_model(good_model(), kUtc2026, 86400 * kNs, 1000);
  EXPECT_TRUE(model_plausible(v, kTscHz));
  EXPECT_TRUE(model_plausible(oscillator_model(good_model(), kUtc2026, 0, 100000), kTscHz));
  EXPECT_TRUE(model_plausible(oscillator_model(good_model(), kUtc2026, 0, -100000), kTscHz));
  // A slew under way ending later, at the base rate after it.
  ClockModelData s = good_model();
  s.slew_end_raw = s.raw0 + 2500000000ULL * 10;
  s.base_mult = good_model().mult;
  s.mult = mult_from_ns_per_tick(ns_per_tick(good_model()) * (1 + 500e-6));
  EXPECT_EQ(model_implausible(s, kTscHz), nullptr);
  // A leap announced for a midnight, stepped or smeared over 24 h.
  ClockModelData l = good_model();
  set_model_leap(l, 1, kUtc2026 + 181 * 86400 * kNs, true);
  EXPECT_EQ(model_implausible(l, kTscHz), nullptr);
  set_model_leap(l, -1, kUtc2026 + 181 * 86400 * kNs, false);
  EXPECT_EQ(model_implausible(l, kTscHz), nullptr);
  // The dataplane's own provisional model is valid too.
  ClockModelData p = good_model();
  p.flags |= proto::kModelProvisional;
  EXPECT_TRUE(model_plausible(p, kTscHz));
}

// Each way a model can be nonsense is refused, with its reason.
TEST(ModelPlausible, EachNonsenseRefusedWithItsReason) {
  constexpr double kTscHz = 2.5e9;
  struct Case {
    const char* name;
    void (*spoil)(ClockModelData&);
    const char* reason_has;
  };
  const Case cases[] = {
      {"not valid", [](ClockModelData& m) { m.flags = 0; }, "not marked valid"},
      {"provisional only", [](ClockModelData& m) { m.flags = proto::kModelProvisional; }, "not marked valid"},
      {"mult 0 (a frozen clock)", [](ClockModelData& m) { m.mult = 0; }, "rate"},
      {"twice the rate", [](ClockModelData& m) { m.mult *= 2; }, "rate"},
      {"21% slow", [](ClockModelData& m) { m.mult = mult_from_ns_per_tick(0.4 * 0.79); }, "rate"},
      {"21% fast", [](ClockModelData& m) { m.mult = mult_from_ns_per_tick(0.4 * 1.21); }, "rate"},
      {"mult all ones", [](ClockModelData& m) { m.mult = ~uint64_t{0}; }, "rate"},
      {"nominal 0", [](ClockModelData& m) { m.nominal_hz = 0; }, "1 MHz..100 GHz"},
      {"nominal 999 kHz", [](ClockModelData& m) { m.nominal_hz = 999999; }, "1 MHz..100 GHz"},
      {"nominal 101 GHz", [](ClockModelData& m) { m.nominal_hz = 101000000000ULL; }, "1 MHz..100 GHz"},
      {"nominal not our TSC", [](ClockModelData& m) { m.nominal_hz = 1000000000ULL; }, "not this host's timebase"},
      {"epoch 0", [](ClockModelData& m) { m.utc0_ns = 0; }, "before 2020 or after 2200"},
      {"epoch 2019", [](ClockModelData& m) { m.utc0_ns = 1546300800LL * kNs; }, "before 2020 or after 2200"},
      {"epoch 2200", [](ClockModelData& m) { m.utc0_ns = 7258118400LL * kNs; }, "before 2020 or after 2200"},
      {"epoch negative", [](ClockModelData& m) { m.utc0_ns = INT64_MIN; }, "before 2020 or after 2200"},
      {"slew ends before its anchor",
       [](ClockModelData& m) {
         m.slew_end_raw = m.raw0 - 1;
         m.base_mult = m.mult;
       },
       "slew ends before"},
      {"slew with base_mult 0",
       [](ClockModelData& m) {
         m.slew_end_raw = m.raw0 + 1000;
         m.base_mult = 0;
       },
       "after its slew"},
      {"slew to twice the rate",
       [](ClockModelData& m) {
         m.slew_end_raw = m.raw0 + 1000;
         m.base_mult = m.mult * 2;
       },
       "after its slew"},
      {"leap sign 2",
       [](ClockModelData& m) {
         m.leap_sign = 2;
         m.leap_ns = kUtc2026;
       },
       "leap sign"},
      {"leap not at midnight",
       [](ClockModelData& m) {
         m.leap_sign = 1;
         m.leap_ns = kUtc2026 + kNs;
       },
       "UTC midnight"},
      {"leap in 1970",
       [](ClockModelData& m) {
         m.leap_sign = -1;
         m.leap_ns = 0;
       },
       "UTC midnight"},
      {"leap smeared over 3 days",
       [](ClockModelData& m) {
         m.leap_sign = 1;
         m.leap_ns = kUtc2026;
         m.leap_smear_ns = 3 * 86400 * kNs;
       },
       "smear"},
      {"leap smear negative",
       [](ClockModelData& m) {
         m.leap_sign = 1;
         m.leap_ns = kUtc2026;
         m.leap_smear_ns = -1;
       },
       "smear"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ClockModelData m = good_model();
    ASSERT_EQ(model_implausible(m, kTscHz), nullptr);
    c.spoil(m);
    const char* why = model_implausible(m, kTscHz);
    ASSERT_NE(why, nullptr);
    EXPECT_NE(std::string(why).find(c.reason_has), std::string::npos) << why;
    EXPECT_FALSE(model_plausible(m, kTscHz));
  }
}

// The bound is 20% either side of the rate, judged against the caller's
// own timebase: just inside passes, just outside does not, on both sides.
TEST(ModelPlausible, RateBoundIsTwentyPercentOfTheCallersTimebase) {
  constexpr double kTscHz = 3e9;
  ClockModelData m = make_model(1, kUtc2026, 1e9 / kTscHz, 3000000000ULL);
  for (const double f : {0.8001, 1.1999}) {
    m.mult = mult_from_ns_per_tick(1e9 / kTscHz * f);
    EXPECT_TRUE(model_plausible(m, kTscHz)) << f;
  }
  for (const double f : {0.7999, 1.2001}) {
    m.mult = mult_from_ns_per_tick(1e9 / kTscHz * f);
    EXPECT_FALSE(model_plausible(m, kTscHz)) << f;
  }
  // With no calibration of its own the caller judges by nominal_hz: a
  // model whose nominal and rate agree on a 1.5 GHz timebase passes, and
  // fails against a 3 GHz caller.
  ClockModelData other = make_model(1, kUtc2026, 1e9 / 1.5e9, 1500000000ULL);
  EXPECT_TRUE(model_plausible(other, 0));
  EXPECT_FALSE(model_plausible(other, kTscHz));
}

// The dataplane's bound: clock.max_frequency_ppm, the virtual source's
// frequency_ppm, 1 ppm of slew room and the margin, never beyond 20 %.
TEST(ModelPlausible, RateBoundFromTheConfiguredMaxFrequency) {
  EXPECT_DOUBLE_EQ(model_rate_bound(500, 0), 1001e-6);
  EXPECT_DOUBLE_EQ(model_rate_bound(500, -1000), 2001e-6);
  EXPECT_DOUBLE_EQ(model_rate_bound(100000, 1000), 101501e-6);
  EXPECT_DOUBLE_EQ(model_rate_bound(1e12, 0), kMaxModelRateError);
  constexpr double kTscHz = 3e9;
  ClockModelData m = make_model(1, kUtc2026, 1e9 / kTscHz, 3000000000ULL);
  const double bound = model_rate_bound(500, 0);
  for (const double ppm : {-1000.0, -500.0, 0.0, 500.0, 1000.0}) {
    m.mult = mult_from_ns_per_tick(1e9 / kTscHz * (1 + ppm * 1e-6));
    EXPECT_TRUE(model_plausible(m, kTscHz, bound)) << ppm;
  }
  // 2 % fast passed the old 20 % bound; a discipline at 500 ppm never runs it.
  for (const double ppm : {-1002.0, 1002.0, 20000.0, -150000.0}) {
    m.mult = mult_from_ns_per_tick(1e9 / kTscHz * (1 + ppm * 1e-6));
    EXPECT_FALSE(model_plausible(m, kTscHz, bound)) << ppm;
    EXPECT_EQ(model_plausible(m, kTscHz), std::fabs(ppm) < 200000) << ppm;
  }
  // After a slew, its base rate too.
  m.mult = mult_from_ns_per_tick(1e9 / kTscHz);
  m.slew_end_raw = 1000;
  m.base_mult = mult_from_ns_per_tick(1e9 / kTscHz * (1 + 5000e-6));
  EXPECT_FALSE(model_plausible(m, kTscHz, bound));
  EXPECT_TRUE(model_plausible(m, kTscHz, model_rate_bound(5000, 0)));
}

// ---------------------------------------------------------------- oscillator

TEST(OscillatorModel, OffsetPlusFrequencyErrorVsHost) {
  SEED_TRACE();
  std::mt19937_64 rng(test_seed() + 2);
  const double hz = 2.9e9;
  const uint64_t raw0 = 7000000000000ULL;
  const ClockModelData host = make_model(raw0, kUtc2026, 1e9 / hz, 2900000000ULL);
  struct Case {
    int64_t epoch_offset_s;  // epoch relative to host.utc0_ns
    int64_t offset_ns;
    double ppm;
  };
  for (const Case c : {Case{-50, 1500000, 12.5}, Case{0, -250000000, -37.0}, Case{3600, 7, 0.001},
                       Case{-86400, 0, 100.0}}) {
    SCOPED_TRACE(::testing::Message() << "offset " << c.offset_ns << " ppm " << c.ppm);
    const int64_t epoch = host.utc0_ns + c.epoch_offset_s * kNs;
    const ClockModelData osc = oscillator_model(host, epoch, c.offset_ns, c.ppm);
    const long double f = static_cast<long double>(c.ppm) * 1e-6L;
    // The rate is the host's times (1 + f), rounded to the nearest unit.
    EXPECT_LE(std::fabs(static_cast<long double>(osc.mult) - static_cast<long double>(host.mult) * (1 + f)), 0.5001L);
    EXPECT_EQ(osc.freq_ppb, host.freq_ppb + std::llround(c.ppm * 1000.0));
    EXPECT_EQ(osc.raw0, host.raw0);
    EXPECT_EQ(osc.nominal_hz, host.nominal_hz);
    // At the epoch it is offset_ns off the host, up to the quantization of
    // its rate between raw0 and the epoch (|d| * 2^-41 ns).
    const int64_t d_epoch = std::llround(static_cast<double>(c.epoch_offset_s) * hz);
    const uint64_t raw_at_epoch = raw0 + static_cast<uint64_t>(d_epoch);
    EXPECT_NEAR(static_cast<double>(model_to_ns(osc, raw_at_epoch) - model_to_ns(host, raw_at_epoch)),
                static_cast<double>(c.offset_ns),
                2.0 + std::fabs(static_cast<double>(d_epoch)) / (2.0 * static_cast<double>(kTwo40)));
    // Everywhere from a day before to a day after raw0: host + offset +
    // (host - epoch) * f, up to the rate's quantization (|d| * 2^-41 ns)
    // and a few ns of rounding.
    std::uniform_int_distribution<int64_t> when(-86400LL * 2900000000LL, 86400LL * 2900000000LL);
    for (int i = 0; i < 20000; i++) {
      const int64_t d = when(rng);
      const uint64_t raw = raw0 + static_cast<uint64_t>(d);
      const int64_t h = model_to_ns(host, raw);
      const long double want = static_cast<long double>(h) + c.offset_ns + static_cast<long double>(h - epoch) * f;
      const long double got = model_to_ns(osc, raw);
      const long double tol = 3.0L + std::fabs(static_cast<long double>(d)) / (2.0L * kTwo40) * 1.001L;
      ASSERT_LE(std::fabs(got - want), tol) << "d=" << d;
    }
    // Over 1000 s of host time it gains 1000 s * f.
    const uint64_t r1 = raw0 + 1000000000ULL, r2 = r1 + 2900000000000ULL;
    const int64_t host_span = model_to_ns(host, r2) - model_to_ns(host, r1);
    const int64_t osc_span = model_to_ns(osc, r2) - model_to_ns(osc, r1);
    EXPECT_NEAR(static_cast<double>(osc_span - host_span), static_cast<double>(host_span) * c.ppm * 1e-6, 3.0);
  }
}

// ---------------------------------------------------------------- tracker

// A simulated reference: a timebase whose true rate is nominal * (1 + 37 ppm)
// and a reference clock read against it with gaussian noise.
struct SimReference {
  double nominal_hz = 2.9e9;
  double true_hz = 2.9e9 * (1 + 37e-6);
  uint64_t raw0 = 0x0000123456789ABCULL;
  int64_t t0_ns = kUtc2026 + 123456789;
  long double step_ns = 0;  // reference steps applied so far
  double noise_ns = 30.0;
  std::mt19937_64 rng;
  std::normal_distribution<double> noise{0.0, 1.0};
  explicit SimReference(uint64_t seed) : rng(seed) {}

  long double truth(uint64_t raw) const {
    const auto d = static_cast<long double>(static_cast<int64_t>(raw - raw0));
    return static_cast<long double>(t0_ns) + d * 1e9L / static_cast<long double>(true_hz) + step_ns;
  }
  uint64_t raw_at(double seconds) const { return raw0 + static_cast<uint64_t>(std::llround(seconds * true_hz)); }
  int64_t read(uint64_t raw) { return static_cast<int64_t>(std::llround(truth(raw) + noise_ns * noise(rng))); }
  double true_ns_per_tick() const { return 1e9 / true_hz; }
};

struct TrackRun {
  ReferenceTracker tracker;
  SimReference sim;
  std::mt19937_64 rng;
  double t = 0;  // seconds of the last update
  uint64_t raw = 0;
  int updates = 0;
  double max_jump_ns = 0;     // largest discontinuity at an update (no step)
  double max_err_ns = 0;      // largest |model - truth| between updates (while checking)
  TrackRun(uint64_t seed, ReferenceTracker::Params p) : tracker(p), sim(seed), rng(seed ^ 0x5555) {}

  // One update about 1 s after the previous one (+-1 ms jitter).
  ClockModelData update(bool expect_continuous = true) {
    std::uniform_real_distribution<double> jitter(-1e-3, 1e-3);
    t += 1.0 + jitter(rng);
    raw = sim.raw_at(t);
    const ClockModelData before = tracker.model();
    const bool had_model = updates > 0;
    const int64_t ref = sim.read(raw);
    const ClockModelData after = tracker.update(raw, ref, static_cast<uint64_t>(sim.nominal_hz));
    if (had_model && expect_continuous) {
      const double jump = static_cast<double>(model_to_ns(after, raw) - model_to_ns(before, raw));
      max_jump_ns = std::max(max_jump_ns, std::fabs(jump));
    }
    updates++;
    return after;
  }
  // |model - truth| at random points up to the next update.
  void check_until_next(int points) {
    std::uniform_real_distribution<double> within(0.0, 1.0);
    for (int i = 0; i < points; i++) {
      const uint64_t r = sim.raw_at(t + within(rng));
      const long double err = static_cast<long double>(model_to_ns(tracker.model(), r)) - sim.truth(r);
      max_err_ns = std::max(max_err_ns, static_cast<double>(std::fabs(err)));
    }
  }
  double slope_error_ppm() const {
    return (tracker.slope_ns_per_tick() / sim.true_ns_per_tick() - 1.0) * 1e6;
  }
};

ReferenceTracker::Params tracker_params() {
  ReferenceTracker::Params p;
  p.nominal_hz = 2.9e9;
  p.step_threshold_ns = 1000000;
  p.window = 32;
  return p;
}

TEST(ReferenceTracker, FirstUpdateAnchorsAtReference) {
  ReferenceTracker tr(tracker_params());
  EXPECT_DOUBLE_EQ(tr.slope_ns_per_tick(), 1e9 / 2.9e9);
  const ClockModelData m = tr.update(5000, kUtc2026 + 17, 2900000000ULL);
  EXPECT_EQ(model_to_ns(m, 5000), kUtc2026 + 17);
  EXPECT_EQ(m.raw0, 5000u);
  EXPECT_EQ(m.mult, mult_from_ns_per_tick(1e9 / 2.9e9));
  EXPECT_EQ(m.nominal_hz, 2900000000ULL);
  EXPECT_EQ(m.flags & proto::kModelValid, proto::kModelValid);
  EXPECT_EQ(tr.steps(), 0u);
  EXPECT_EQ(tr.last_error_ns(), 0);
  EXPECT_EQ(model_to_ns(tr.model(), 5000), kUtc2026 + 17);
}

TEST(ReferenceTracker, NoiselessRemovesPhaseErrorByNextUpdate) {
  // Without noise the phase error seen at an update is gone at the next.
  ReferenceTracker tr(tracker_params());
  const double true_hz = 2.9e9 * (1 + 37e-6);
  auto truth = [&](uint64_t r) { return kUtc2026 + std::llround(static_cast<double>(r) * 1e9 / true_hz); };
  for (int k = 0; k < 10; k++) {
    const uint64_t r = static_cast<uint64_t>(std::llround(k * true_hz));
    tr.update(r, truth(r), 2900000000ULL);
    if (k >= 2) {
      EXPECT_LE(std::llabs(tr.last_error_ns()), 2) << k;
    }
  }
  EXPECT_NEAR(tr.slope_ns_per_tick() / (1e9 / true_hz), 1.0, 1e-9);
}

TEST(ReferenceTracker, ConvergesOnNoisyReference) {
  SEED_TRACE();
  TrackRun run(test_seed() + 3, tracker_params());
  for (int k = 0; k < 40; k++) run.update();
  // The rate is known to 0.05 ppm after 40 samples (30 ns noise, 1 s apart).
  EXPECT_LT(std::fabs(run.slope_error_ppm()), 0.05) << run.slope_error_ppm();
  // And stays good: from then on, the model between updates is within
  // 200 ns of the truth.
  for (int k = 0; k < 60; k++) {
    run.check_until_next(50);
    run.update();
    ASSERT_LT(std::fabs(run.slope_error_ppm()), 0.05) << "update " << run.updates;
    ASSERT_LT(std::llabs(run.tracker.last_error_ns()), 400) << "update " << run.updates;
  }
  run.check_until_next(50);
  std::printf("tracker: max |model - truth| %.1f ns, slope error %.4f ppm, max jump at update %.1f ns\n",
              run.max_err_ns, run.slope_error_ppm(), run.max_jump_ns);
  EXPECT_LT(run.max_err_ns, 200.0);
  EXPECT_LE(run.max_jump_ns, 1.0);
  EXPECT_EQ(run.tracker.steps(), 0u);
  // The model's own rate includes the phase correction but stays near the truth.
  EXPECT_NEAR(ns_per_tick(run.tracker.model()) / run.sim.true_ns_per_tick(), 1.0, 1e-6);
}

TEST(ReferenceTracker, ContinuousAtEveryUpdate) {
  SEED_TRACE();
  TrackRun run(test_seed() + 4, tracker_params());
  run.sim.noise_ns = 300.0;  // noisier: bigger corrections, still no jumps
  for (int k = 0; k < 100; k++) {
    const ClockModelData before = run.tracker.model();
    run.update();
    if (k > 0) {
      ASSERT_LE(std::llabs(model_to_ns(run.tracker.model(), run.raw) - model_to_ns(before, run.raw)), 1)
          << "update " << k;
    }
  }
  EXPECT_EQ(run.tracker.steps(), 0u);
}

TEST(ReferenceTracker, StepAboveThresholdReanchors) {
  SEED_TRACE();
  TrackRun run(test_seed() + 5, tracker_params());
  for (int k = 0; k < 40; k++) run.update();
  ASSERT_EQ(run.tracker.steps(), 0u);

  for (const long double step : {5e6L, -5e6L, 1.5e6L}) {
    SCOPED_TRACE(static_cast<double>(step));
    const double slope_before = run.tracker.slope_ns_per_tick();
    const uint64_t steps_before = run.tracker.steps();
    run.sim.step_ns += step;  // the host clock was stepped
    run.t += 1.0;
    run.raw = run.sim.raw_at(run.t);
    const int64_t ref = run.sim.read(run.raw);
    const int64_t old_value = model_to_ns(run.tracker.model(), run.raw);
    const ClockModelData m = run.tracker.update(run.raw, ref, 2900000000ULL);
    EXPECT_EQ(run.tracker.steps(), steps_before + 1);
    // Re-anchored on the reference, not continuous with the old model.
    EXPECT_EQ(m.raw0, run.raw);
    EXPECT_EQ(model_to_ns(m, run.raw), ref);
    EXPECT_NEAR(static_cast<double>(model_to_ns(m, run.raw) - old_value), static_cast<double>(step), 1000.0);
    // The rate survives the step.
    EXPECT_DOUBLE_EQ(run.tracker.slope_ns_per_tick(), slope_before);
    // Tracking resumes on the new time scale without another step.
    for (int k = 0; k < 3; k++) run.update();
    run.max_err_ns = 0;
    for (int k = 0; k < 10; k++) {
      run.check_until_next(50);
      run.update();
    }
    EXPECT_LT(run.max_err_ns, 200.0);
    EXPECT_EQ(run.tracker.steps(), steps_before + 1);
  }
}

TEST(ReferenceTracker, JumpBelowThresholdIsSlewed) {
  SEED_TRACE();
  TrackRun run(test_seed() + 6, tracker_params());
  for (int k = 0; k < 40; k++) run.update();
  run.sim.step_ns += 500000;  // 0.5 ms, below the 1 ms threshold
  const ClockModelData before = run.tracker.model();
  run.update();
  EXPECT_EQ(run.tracker.steps(), 0u);
  EXPECT_NEAR(static_cast<double>(run.tracker.last_error_ns()), 500000.0, 1000.0);
  // No jump: the new model continues the old one.
  EXPECT_LE(std::llabs(model_to_ns(run.tracker.model(), run.raw) - model_to_ns(before, run.raw)), 1);
  // The 0.5 ms is removed over the next interval.
  run.update();
  EXPECT_LT(std::llabs(run.tracker.last_error_ns()), 100000);
  // Once the jump has left the slope window, tracking is as good as before.
  for (int k = 0; k < 40; k++) run.update();
  run.max_err_ns = 0;
  for (int k = 0; k < 10; k++) {
    run.check_until_next(50);
    run.update();
  }
  EXPECT_LT(run.max_err_ns, 200.0);
  EXPECT_LT(std::fabs(run.slope_error_ppm()), 0.05);
  EXPECT_EQ(run.tracker.steps(), 0u);
}

}  // namespace
}  // namespace ntp::hwclock
