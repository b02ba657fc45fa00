// NTP timestamp formats and their conversion to Unix ns (proto/ntp_time.h):
// golden values, eras and the 2036 rollover, round trips, short format.
#include "proto/ntp_time.h"
#include "tests/support/test_seed.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>

namespace ntp::proto {
namespace {

// Seeded randomness: the seed is printed, TEST_SEED=<n> replays a run.
uint64_t test_seed() { return ::ntp::test::seed(); }
#define SEED_TRACE() SCOPED_TRACE(::testing::Message() << "TEST_SEED=" << test_seed())

constexpr int64_t kDayS = 86400;
constexpr int64_t kYearS = 365 * kDayS;

// Unix seconds of a UTC civil time, computed independently of the code under
// test (C++20 calendar).
constexpr int64_t unix_s(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
  using namespace std::chrono;
  const sys_days date{year{y} / month{mo} / day{d}};
  return date.time_since_epoch().count() * kDayS + h * 3600 + mi * 60 + s;
}

// 2036-02-07T06:28:16Z: NTP era 0 ends, seconds field wraps to 0 (era 1).
constexpr int64_t kRolloverUnixS = 2085978496;
static_assert(unix_s(2036, 2, 7, 6, 28, 16) == kRolloverUnixS);
static_assert(unix_s(1900, 1, 1) == -kUnixMinusNtpEpochS);
static_assert(kRolloverUnixS == (int64_t{1} << 32) - kUnixMinusNtpEpochS);

// ---------------------------------------------------------------- golden

TEST(NtpTime, UnixEpochGolden) {
  EXPECT_EQ(kUnixMinusNtpEpochS, 2208988800LL);
  const NtpTimestamp t = ntp_from_unix_ns(0);
  EXPECT_EQ(t.seconds, 0x83AA7E80u);
  EXPECT_EQ(t.fraction, 0u);
  EXPECT_EQ(t.raw(), 0x83AA7E8000000000ULL);
  EXPECT_EQ(unix_ns_from_ntp({0x83AA7E80u, 0}, 0), 0);
  EXPECT_EQ(unix_ns_from_ntp({0x83AA7E80u, 0}, unix_s(2026, 1, 1) * kNsPerS), 0);
}

TEST(NtpTime, KnownDatesGolden) {
  // 2000-01-01T00:00:00Z = NTP 3155673600 = 0xBC17C200.
  EXPECT_EQ(ntp_from_unix_ns(unix_s(2000, 1, 1) * kNsPerS), (NtpTimestamp{0xBC17C200u, 0}));
  // 1900-01-01T00:00:00Z is NTP 0 of era 0.
  EXPECT_EQ(ntp_from_unix_ns(-kUnixMinusNtpEpochS * kNsPerS), (NtpTimestamp{0, 0}));
  // Half a second is fraction 2^31; a quarter 2^30.
  EXPECT_EQ(ntp_from_unix_ns(500000000), (NtpTimestamp{0x83AA7E80u, 0x80000000u}));
  EXPECT_EQ(ntp_from_unix_ns(250000000), (NtpTimestamp{0x83AA7E80u, 0x40000000u}));
  // 1 ns = 4.294967296 units: rounds to 4.
  EXPECT_EQ(ntp_from_unix_ns(1), (NtpTimestamp{0x83AA7E80u, 4}));
  // Before 1970: -1 ns is 1969-12-31T23:59:59.999999999Z (floor, not truncation).
  // 999999999 ns = 4294967291.705 units -> 4294967292.
  EXPECT_EQ(ntp_from_unix_ns(-1), (NtpTimestamp{0x83AA7E7Fu, 4294967292u}));
  EXPECT_EQ(ntp_from_unix_ns(-kNsPerS / 2), (NtpTimestamp{0x83AA7E7Fu, 0x80000000u}));
}

TEST(NtpTime, FractionToNs) {
  EXPECT_EQ(ns_from_fraction(0), 0);
  EXPECT_EQ(ns_from_fraction(1), 0);            // 0.2328 ns
  EXPECT_EQ(ns_from_fraction(3), 1);            // 0.698 ns
  EXPECT_EQ(ns_from_fraction(0x80000000u), 500000000);
  EXPECT_EQ(ns_from_fraction(0x40000000u), 250000000);
  EXPECT_EQ(ns_from_fraction(0xFFFFFFFFu), 1000000000);  // 0.99999999977 s rounds up
  // The all-ones fraction carries into the next second correctly.
  EXPECT_EQ(unix_ns_from_ntp({0x83AA7E80u, 0xFFFFFFFFu}, 0), kNsPerS);
}

TEST(NtpTime, Era1RolloverGolden) {
  const int64_t ro_ns = kRolloverUnixS * kNsPerS;
  EXPECT_EQ(ntp_from_unix_ns(ro_ns), (NtpTimestamp{0, 0}));
  EXPECT_EQ(ntp_from_unix_ns(ro_ns - 1), (NtpTimestamp{0xFFFFFFFFu, 4294967292u}));
  EXPECT_EQ(ntp_from_unix_ns(ro_ns - kNsPerS / 2), (NtpTimestamp{0xFFFFFFFFu, 0x80000000u}));
  EXPECT_EQ(ntp_from_unix_ns(ro_ns + kNsPerS), (NtpTimestamp{1, 0}));
  // Seconds 0 of era 1 read with a 2026 pivot is 2036, not 1900.
  const int64_t pivot2026 = unix_s(2026, 6, 1) * kNsPerS;
  EXPECT_EQ(unix_ns_from_ntp({0, 0}, pivot2026), ro_ns);
  EXPECT_EQ(unix_ns_from_ntp({0xFFFFFFFFu, 0x80000000u}, pivot2026), ro_ns - kNsPerS / 2);
  // 2100-01-01 (era 1) from NTP seconds 4102444800 + 2208988800 - 2^32.
  const int64_t y2100 = unix_s(2100, 1, 1);
  const NtpTimestamp t2100 = ntp_from_unix_ns(y2100 * kNsPerS);
  EXPECT_EQ(t2100.seconds, static_cast<uint32_t>(y2100 + kUnixMinusNtpEpochS - (int64_t{1} << 32)));
  EXPECT_EQ(t2100.seconds, 2016466304u);
  // 2100 is 74 years from 2026: outside the +-68 year window, read as 1963.
  EXPECT_EQ(unix_ns_from_ntp(t2100, pivot2026), (y2100 - (int64_t{1} << 32)) * kNsPerS);
  EXPECT_EQ(unix_ns_from_ntp(t2100, unix_s(2090, 1, 1) * kNsPerS), y2100 * kNsPerS);
}

// ---------------------------------------------------------------- eras

TEST(NtpTime, EraPickedAroundRollover) {
  const int64_t just_before = unix_s(2036, 2, 7, 6, 28, 0) * kNsPerS;   // 16 s before
  const int64_t just_after = unix_s(2036, 2, 7, 6, 28, 30) * kNsPerS;   // 14 s after
  const int64_t ro_ns = kRolloverUnixS * kNsPerS;
  // A timestamp 5 s into era 1, seen from either side.
  EXPECT_EQ(unix_ns_from_ntp({5, 0}, just_before), ro_ns + 5 * kNsPerS);
  EXPECT_EQ(unix_ns_from_ntp({5, 0}, just_after), ro_ns + 5 * kNsPerS);
  // A timestamp 10 s before the end of era 0, seen from either side.
  EXPECT_EQ(unix_ns_from_ntp({0xFFFFFFF6u, 0}, just_before), ro_ns - 10 * kNsPerS);
  EXPECT_EQ(unix_ns_from_ntp({0xFFFFFFF6u, 0}, just_after), ro_ns - 10 * kNsPerS);
  // Never 1900.
  EXPECT_GT(unix_ns_from_ntp({5, 0}, just_before), 0);
  // From a pivot in 1950, 2036 is 86 years away and 1900 only 50: era 0.
  EXPECT_EQ(unix_ns_from_ntp({5, 0}, unix_s(1950, 1, 1) * kNsPerS), (5 - kUnixMinusNtpEpochS) * kNsPerS);
  // From 2000, 2036 is 36 years away: era 1.
  EXPECT_EQ(unix_ns_from_ntp({5, 0}, unix_s(2000, 1, 1) * kNsPerS), ro_ns + 5 * kNsPerS);
}

TEST(NtpTime, EraWindowIsPivotPlusMinusHalfEra) {
  // Pivot in the middle of a second: its floor is what counts.
  const int64_t pivot_s = unix_s(2030, 3, 4, 5, 6, 7);
  const int64_t pivot = pivot_s * kNsPerS + 123456789;
  const uint32_t pivot_field = static_cast<uint32_t>(pivot_s + kUnixMinusNtpEpochS);
  const int64_t half = int64_t{1} << 31;
  // Up to 2^31 - 1 s ahead is read ahead, 2^31 s ahead is read behind.
  EXPECT_EQ(unix_ns_from_ntp({pivot_field + static_cast<uint32_t>(half - 1), 0}, pivot),
            (pivot_s + half - 1) * kNsPerS);
  EXPECT_EQ(unix_ns_from_ntp({pivot_field + static_cast<uint32_t>(half), 0}, pivot), (pivot_s - half) * kNsPerS);
  EXPECT_EQ(unix_ns_from_ntp({pivot_field - static_cast<uint32_t>(half - 1), 0}, pivot),
            (pivot_s - half + 1) * kNsPerS);
  EXPECT_EQ(unix_ns_from_ntp({pivot_field, 0}, pivot), pivot_s * kNsPerS);
  // A negative pivot (before 1970) with a fraction: floor, not truncation.
  const int64_t neg_pivot = -kNsPerS / 2;  // 1969-12-31T23:59:59.5Z
  EXPECT_EQ(unix_ns_from_ntp({0x83AA7E7Fu, 0}, neg_pivot), -kNsPerS);
  EXPECT_EQ(unix_ns_from_ntp({0x83AA7E80u, 0}, neg_pivot), 0);
}

TEST(NtpTime, RoundTripRandom1900To2100) {
  SEED_TRACE();
  std::mt19937_64 rng(test_seed());
  const int64_t lo = unix_s(1900, 1, 1) * kNsPerS;
  const int64_t hi = unix_s(2100, 1, 1) * kNsPerS;
  std::uniform_int_distribution<int64_t> when(lo, hi - 1);
  // Pivots up to 60 years either side (the window is +-68 years).
  std::uniform_int_distribution<int64_t> pivot_off(-60 * kYearS * kNsPerS, 60 * kYearS * kNsPerS);
  for (int i = 0; i < 2000000; i++) {
    const int64_t t = when(rng);
    const NtpTimestamp ts = ntp_from_unix_ns(t);
    // The seconds field is the NTP seconds mod 2^32.
    int64_t s = t / kNsPerS;
    if (t % kNsPerS < 0) s--;
    const uint32_t want_secs = static_cast<uint32_t>(s + kUnixMinusNtpEpochS);
    ASSERT_TRUE(ts.seconds == want_secs || ts.seconds == want_secs + 1) << t;  // +1: fraction rounded up
    const int64_t pivot = t + pivot_off(rng);
    // Rounding to 2^-32 s is within 0.12 ns, so the trip back is exact.
    ASSERT_EQ(unix_ns_from_ntp(ts, pivot), t) << "t=" << t << " pivot=" << pivot;
    ASSERT_EQ(unix_ns_from_ntp(ts, t), t) << "t=" << t;
  }
}

TEST(NtpTime, RoundTripAcrossRollover) {
  SEED_TRACE();
  std::mt19937_64 rng(test_seed() + 1);
  const int64_t ro_ns = kRolloverUnixS * kNsPerS;
  std::uniform_int_distribution<int64_t> near(-3600 * kNsPerS, 3600 * kNsPerS);
  std::uniform_int_distribution<int64_t> side(1, 67 * kYearS * kNsPerS);
  for (int i = 0; i < 200000; i++) {
    const int64_t t = ro_ns + near(rng);
    const NtpTimestamp ts = ntp_from_unix_ns(t);
    ASSERT_EQ(ts.seconds < 0x80000000u, t >= ro_ns) << t;
    // Pivots just before and just after the rollover, and far on both sides.
    ASSERT_EQ(unix_ns_from_ntp(ts, ro_ns - 1), t);
    ASSERT_EQ(unix_ns_from_ntp(ts, ro_ns), t);
    ASSERT_EQ(unix_ns_from_ntp(ts, ro_ns - side(rng)), t);
    ASSERT_EQ(unix_ns_from_ntp(ts, ro_ns + side(rng)), t);
  }
  // Every ns in the second around the rollover and some tiny offsets.
  for (int64_t d = -2000; d <= 2000; d++) {
    ASSERT_EQ(unix_ns_from_ntp(ntp_from_unix_ns(ro_ns + d), ro_ns - 16 * kNsPerS), ro_ns + d);
    ASSERT_EQ(unix_ns_from_ntp(ntp_from_unix_ns(ro_ns + d), ro_ns + 14 * kNsPerS), ro_ns + d);
  }
}

// ---------------------------------------------------------------- diff

TEST(NtpTime, DiffAcrossRollover) {
  const NtpTimestamp a{1, 0};            // era 1, 1 s after the rollover
  const NtpTimestamp b{0xFFFFFFFFu, 0};  // era 0, 1 s before
  EXPECT_EQ(ntp_diff_ns(a, b), 2 * kNsPerS);
  EXPECT_EQ(ntp_diff_ns(b, a), -2 * kNsPerS);
  EXPECT_EQ(ntp_diff_ns({0, 0x80000000u}, {0xFFFFFFFFu, 0x80000000u}), kNsPerS);
  EXPECT_EQ(ntp_diff_ns({0, 0}, {0xFFFFFFFFu, 0xC0000000u}), kNsPerS / 4);
  EXPECT_EQ(ntp_diff_ns({0xFFFFFFFFu, 0xC0000000u}, {0, 0}), -kNsPerS / 4);
  EXPECT_EQ(ntp_diff_ns(a, a), 0);
  // Sub-second negative differences: floor of the seconds, fraction added.
  EXPECT_EQ(ntp_diff_ns({10, 0}, {10, 0x80000000u}), -kNsPerS / 2);
  EXPECT_EQ(ntp_diff_ns({10, 0}, {10, 1}), 0);          // -0.23 ns
  EXPECT_EQ(ntp_diff_ns({10, 0}, {10, 5}), -1);         // -1.16 ns
  EXPECT_EQ(ntp_diff_ns({10, 5}, {10, 0}), 1);
  // Largest differences still within the window: +-(2^31 - 1) s.
  EXPECT_EQ(ntp_diff_ns({0x7FFFFFFFu, 0}, {0, 0}), 0x7FFFFFFFLL * kNsPerS);
  EXPECT_EQ(ntp_diff_ns({0, 0}, {0x7FFFFFFFu, 0}), -0x7FFFFFFFLL * kNsPerS);
}

TEST(NtpTime, DiffRandomMatchesUnixDifference) {
  SEED_TRACE();
  std::mt19937_64 rng(test_seed() + 2);
  const int64_t ro_ns = kRolloverUnixS * kNsPerS;
  std::uniform_int_distribution<int64_t> around(-30 * kYearS * kNsPerS, 30 * kYearS * kNsPerS);
  std::uniform_int_distribution<int64_t> small(-5 * kNsPerS, 5 * kNsPerS);
  for (int i = 0; i < 500000; i++) {
    const int64_t x = ro_ns + around(rng);
    const int64_t y = (i & 1) ? x + small(rng) : ro_ns + around(rng);
    const int64_t d = ntp_diff_ns(ntp_from_unix_ns(x), ntp_from_unix_ns(y));
    ASSERT_LE(std::llabs(d - (x - y)), 1) << "x=" << x << " y=" << y;
  }
}

// ---------------------------------------------------------------- short format

TEST(NtpTime, ShortFormatGolden) {
  EXPECT_EQ(short_from_ns(0), 0u);
  EXPECT_EQ(short_from_ns(-1), 0u);  // negative clamps to 0
  EXPECT_EQ(short_from_ns(std::numeric_limits<int64_t>::min()), 0u);
  EXPECT_EQ(short_from_ns(kNsPerS), 0x00010000u);
  EXPECT_EQ(short_from_ns(kNsPerS + kNsPerS / 2), 0x00018000u);
  // One unit is 15258.789 ns: anything above 0 up to it is 1 unit.
  EXPECT_EQ(short_from_ns(1), 1u);
  EXPECT_EQ(short_from_ns(15258), 1u);
  EXPECT_EQ(short_from_ns(15259), 2u);
  // 128 units is exactly 1953125 ns: no rounding there, one ns more rounds up.
  EXPECT_EQ(short_from_ns(1953125), 128u);
  EXPECT_EQ(short_from_ns(1953124), 128u);
  EXPECT_EQ(short_from_ns(1953126), 129u);
  // Clamps: 65536 s and above, and everything above 0xFFFF.FFFF.
  EXPECT_EQ(short_from_ns(65536 * kNsPerS), 0xFFFFFFFFu);
  EXPECT_EQ(short_from_ns(std::numeric_limits<int64_t>::max()), 0xFFFFFFFFu);
  EXPECT_EQ(short_from_ns(65535999984741), 0xFFFFFFFFu);  // 0xFFFF.FFFF is 65535.9999847412 s
  EXPECT_EQ(short_from_ns(65535999984740), 0xFFFFFFFFu);
  // Between 0xFFFF.FFFF and 65536 s: rounding up must not wrap to 0.
  EXPECT_EQ(short_from_ns(65535999984742), 0xFFFFFFFFu);
  EXPECT_EQ(short_from_ns(65536 * kNsPerS - 1), 0xFFFFFFFFu);
  EXPECT_EQ(short_from_ns(65535999969482), 0xFFFFFFFEu);  // 0xFFFF.FFFE is 65535.99996948 s
}

TEST(NtpTime, NsFromShortGolden) {
  EXPECT_EQ(ns_from_short(0), 0);
  EXPECT_EQ(ns_from_short(1), 15259);  // 15258.789 rounds to nearest
  EXPECT_EQ(ns_from_short(0x00008000u), kNsPerS / 2);
  EXPECT_EQ(ns_from_short(0x00010000u), kNsPerS);
  EXPECT_EQ(ns_from_short(128), 1953125);
  EXPECT_EQ(ns_from_short(0xFFFFFFFFu), 65535999984741);
  EXPECT_EQ(ns_from_short(0x12345678u), 4660337768555);  // 0x1234 s + 0x5678/65536 s
}

TEST(NtpTime, ShortFormatNeverUnderstatesRandom) {
  SEED_TRACE();
  std::mt19937_64 rng(test_seed() + 3);
  // Up to the largest representable value; above it the clamp is the best we can do.
  const int64_t max_exact = 65535999984741;
  std::uniform_int_distribution<int64_t> big(1, max_exact);
  std::uniform_int_distribution<int64_t> small(1, 100 * 15259);
  for (int i = 0; i < 1000000; i++) {
    const int64_t ns = (i & 1) ? big(rng) : small(rng);
    const uint32_t v = short_from_ns(ns);
    // The smallest v with v / 2^16 s >= ns, checked in exact integers.
    const unsigned __int128 want = static_cast<unsigned __int128>(ns) << 16;
    ASSERT_GE(static_cast<unsigned __int128>(v) * kNsPerS, want) << ns;
    ASSERT_LT(static_cast<unsigned __int128>(v - 1) * kNsPerS, want) << ns;
    // Back to ns: never less, at most one unit more.
    const int64_t back = ns_from_short(v);
    ASSERT_GE(back, ns) << ns;
    ASSERT_LE(back - ns, 15259) << ns;
  }
}

TEST(NtpTime, ShortFormatMonotonic) {
  // Non-decreasing over the whole range, sampled densely near the top.
  uint32_t prev = 0;
  for (int64_t ns = 65536 * kNsPerS - 100000; ns <= 65536 * kNsPerS + 10; ns++) {
    const uint32_t v = short_from_ns(ns);
    ASSERT_GE(v, prev) << ns;
    prev = v;
  }
}

}  // namespace
}  // namespace ntp::proto
