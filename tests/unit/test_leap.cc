// Leap seconds (hwclock/leap.h): the leap-seconds.list parser on the file
// tzdata ships (a copy in tests/support/golden, and the host's own if present),
// its errors on malformed files, what a table announces for a day and when
// it expires, and the served time across a stepped and a smeared leap.
#include "hwclock/leap.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "hwclock/clock_model.h"

#ifndef SOURCE_ROOT
#define SOURCE_ROOT "."
#endif

namespace ntp::hwclock {
namespace {

constexpr int64_t kS = 1000000000LL;
constexpr int64_t kLeap2016 = 1483228800LL * kS;  // 2017-01-01T00:00:00Z ends 2016-12-31, a leap day
constexpr const char* kCopy = SOURCE_ROOT "/tests/support/golden/leap-seconds.list";
constexpr const char* kHostFile = "/usr/share/zoneinfo/leap-seconds.list";

std::string read(const char* path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The copy is tzdata 2025b's file: 27 leaps, the last at the end of 2016,
// updated 2025-07-07, expiring 2026-06-28.
void expect_tzdata_table(const LeapTable& t) {
  ASSERT_EQ(t.leaps.size(), 27u);
  EXPECT_EQ(t.base_tai_utc_s, 10);
  EXPECT_EQ(t.base_ns, 63072000LL * kS);  // 1972-01-01
  EXPECT_EQ(t.leaps.front().at_ns, 78796800LL * kS);  // 1972-07-01
  EXPECT_EQ(t.leaps.front().sign, 1);
  EXPECT_EQ(t.leaps.front().tai_utc_s, 11);
  EXPECT_EQ(t.leaps.back().at_ns, kLeap2016);
  EXPECT_EQ(t.leaps.back().sign, 1);
  EXPECT_EQ(t.leaps.back().tai_utc_s, 37);
  for (const LeapSecond& l : t.leaps) EXPECT_EQ(l.sign, 1) << l.at_ns;  // no deletion so far
}

TEST(LeapFile, TzdataCopyParsesWithItsHash) {
  const LeapParse p = load_leap_seconds_list(kCopy);
  ASSERT_TRUE(p.ok()) << p.error;
  expect_tzdata_table(p.table);
  EXPECT_TRUE(p.table.hash_verified);
  EXPECT_EQ(p.table.expires_ns, 1782604800LL * kS);  // 3991593600 NTP = 2026-06-28
  EXPECT_EQ(p.table.updated_ns, 1751846400LL * kS);  // 3960835200 NTP = 2025-07-07
}

TEST(LeapFile, HostFileParsesIfPresent) {
  const std::string text = read(kHostFile);
  if (text.empty()) GTEST_SKIP() << kHostFile << " not installed";
  const LeapParse p = parse_leap_seconds_list(text, kHostFile);
  ASSERT_TRUE(p.ok()) << p.error;
  ASSERT_GE(p.table.leaps.size(), 27u);
  EXPECT_EQ(p.table.leaps[26].at_ns, kLeap2016);
  EXPECT_EQ(p.table.leaps[26].sign, 1);
  EXPECT_TRUE(p.table.hash_verified);
  EXPECT_GT(p.table.expires_ns, kLeap2016);
}

TEST(LeapFile, OneDigitChangedFailsTheHash) {
  // The last update time is the one number no other check covers: only the
  // hash can tell 3960835201 from 3960835200.
  std::string text = read(kCopy);
  const size_t upd = text.find("#$\t3960835200");
  ASSERT_NE(upd, std::string::npos);
  text[upd + 12] = '1';
  const LeapParse p = parse_leap_seconds_list(text, "t.list");
  EXPECT_EQ(p.error, "t.list:120: the hash ('#h') does not match the data: the file is damaged or was edited");
  // A data line's digit too: a leap moved back a month is still well formed.
  text = read(kCopy);
  const size_t at = text.find("3692217600");  // 2017-01-01
  text.replace(at, 10, "3689539200");           // 2016-12-01
  EXPECT_EQ(parse_leap_seconds_list(text, "t.list").error,
            "t.list:120: the hash ('#h') does not match the data: the file is damaged or was edited");
}

TEST(LeapFile, WithoutAHashLineParsesUnverified) {
  std::string text = read(kCopy);
  const size_t h = text.find("\n#h");
  ASSERT_NE(h, std::string::npos);
  text.erase(h + 1, text.find('\n', h + 1) - h);
  const LeapParse p = parse_leap_seconds_list(text, "t.list");
  ASSERT_TRUE(p.ok()) << p.error;
  expect_tzdata_table(p.table);
  EXPECT_FALSE(p.table.hash_verified);
}

TEST(LeapFile, CrLfAndIndentedLinesAccepted) {
  const LeapParse p = parse_leap_seconds_list(
      "#@\t3991593600\r\n  2272060800\t10\t# 1 Jan 1972\r\n\r\n2287785600 11\r\n   \t\r\n# comment\r\n", "t.list");
  ASSERT_TRUE(p.ok()) << p.error;
  ASSERT_EQ(p.table.leaps.size(), 1u);
  EXPECT_EQ(p.table.leaps[0].at_ns, 78796800LL * kS);
  EXPECT_FALSE(p.table.hash_verified);
}

TEST(LeapFile, DeletionFromADecreasingOffset) {
  // A hypothetical negative leap second: TAI-UTC goes down by one.
  const LeapParse p = parse_leap_seconds_list("#@ 4000000000\n2272060800 10\n2287785600 11\n2303683200 10\n", "t.list");
  ASSERT_TRUE(p.ok()) << p.error;
  ASSERT_EQ(p.table.leaps.size(), 2u);
  EXPECT_EQ(p.table.leaps[1].at_ns, (2303683200LL - 2208988800LL) * kS);  // 1973-01-01
  EXPECT_EQ(p.table.leaps[1].sign, -1);
  EXPECT_EQ(p.table.leaps[1].tai_utc_s, 10);
}

// Each malformed file, and the first error it gives, with line and column.
struct Bad {
  const char* text;
  const char* error;
};
class LeapFileErrors : public ::testing::TestWithParam<Bad> {};

TEST_P(LeapFileErrors, NamesLineAndColumn) {
  const LeapParse p = parse_leap_seconds_list(GetParam().text, "t.list");
  EXPECT_FALSE(p.ok());
  EXPECT_EQ(p.error, GetParam().error);
  EXPECT_TRUE(p.table.leaps.empty());  // no half-parsed table
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, LeapFileErrors,
    ::testing::Values(
        Bad{"", "t.list: no leap second lines (\"NTP-seconds TAI-UTC\")"},
        Bad{"#@ 3991593600\n# only comments\n", "t.list: no leap second lines (\"NTP-seconds TAI-UTC\")"},
        Bad{"2272060800 10\n", "t.list: no expiry line ('#@ NTP-seconds')"},
        Bad{"#@ 3991593600\n2272060800 ten\n", "t.list:2:12: expected TAI-UTC in seconds after the NTP seconds"},
        Bad{"#@ 3991593600\n2272060800\n", "t.list:2:11: expected TAI-UTC in seconds after the NTP seconds"},
        Bad{"#@ 3991593600\nx2272060800 10\n",
            "t.list:2:1: expected NTP seconds (a leap line is \"NTP-seconds TAI-UTC\")"},
        Bad{"#@ 3991593600\n-2272060800 10\n",
            "t.list:2:1: expected NTP seconds (a leap line is \"NTP-seconds TAI-UTC\")"},
        Bad{"#@ 3991593600\n  2272060800x 10\n",
            "t.list:2:3: expected NTP seconds (a leap line is \"NTP-seconds TAI-UTC\")"},
        Bad{"#@ 3991593600\n2272060800 10 11\n", "t.list:2:15: unexpected text after TAI-UTC"},
        Bad{"#@ 3991593600\n99999999999999 10\n", "t.list:2:1: 99999999999999 NTP seconds is out of range"},
        Bad{"#@ 3991593600\n99999999999999999999999 10\n",
            "t.list:2:1: expected NTP seconds (a leap line is \"NTP-seconds TAI-UTC\")"},
        Bad{"#@ 3991593600\n2273356800 10\n", "t.list:2:1: 2273356800 (1972-01-16) is not 0h UTC on the 1st of a month"},
        Bad{"#@ 3991593600\n2272060801 10\n", "t.list:2:1: 2272060801 (1972-01-01) is not 0h UTC on the 1st of a month"},
        Bad{"#@ 3991593600\n2287785600 11\n2272060800 10\n",
            "t.list:3:1: 2272060800 is not after the line before (1972-07-01)"},
        Bad{"#@ 3991593600\n2272060800 10\n2272060800 11\n",
            "t.list:3:1: 2272060800 is not after the line before (1972-01-01)"},
        Bad{"#@ 3991593600\n2272060800 10\n2287785600 12\n",
            "t.list:3:12: TAI-UTC goes from 10 to 12 s: a leap second changes it by one"},
        Bad{"#@ 3991593600\n2272060800 10\n2287785600 10\n",
            "t.list:3:12: TAI-UTC goes from 10 to 10 s: a leap second changes it by one"},
        Bad{"#@\tsoon\n2272060800 10\n", "t.list:1:4: expected the expiry ('#@') in NTP seconds"},
        Bad{"#@ 3991593600 or so\n2272060800 10\n", "t.list:1:15: unexpected text after the expiry time"},
        Bad{"#@ 3991593600\n#@ 3991593600\n2272060800 10\n", "t.list:2:1: a second expiry line ('#@')"},
        Bad{"#$ yesterday\n", "t.list:1:4: expected the last update ('#$') in NTP seconds"},
        Bad{"#@ 3991593600\n2272060800 10\n#h 1 2 3\n", "t.list:3:9: the hash ('#h') wants five hexadecimal words"},
        Bad{"#@ 3991593600\n2272060800 10\n#h 1 2 3 4 5 6\n",
            "t.list:3:14: the hash ('#h') wants five hexadecimal words"},
        Bad{"#@ 3991593600\n2272060800 10\n#h 1 2 3 4 g\n",
            "t.list:3:12: the hash ('#h') wants five hexadecimal words"},
        Bad{"#@ 3991593600\n2272060800 10\n#h 1 2 3 4 5\n#h 1 2 3 4 5\n", "t.list:4:1: a second hash line ('#h')"},
        Bad{"#@ 3991593600\n2272060800 10\n#h 1 2 3 4 5\n",
            "t.list:3: the hash ('#h') does not match the data: the file is damaged or was edited"}));

TEST(LeapFile, UnreadableFileNamesIt) {
  const LeapParse p = load_leap_seconds_list("/nonexistent/leap-seconds.list");
  EXPECT_EQ(p.error, "/nonexistent/leap-seconds.list: cannot read: No such file or directory");
}

// ------------------------------------------------------------ the table

LeapTable tzdata() {
  const LeapParse p = load_leap_seconds_list(kCopy);
  EXPECT_TRUE(p.ok()) << p.error;
  return p.table;
}

TEST(LeapTable, NextLeap) {
  const LeapTable t = tzdata();
  auto n = next_leap(t, kLeap2016 - 1);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->at_ns, kLeap2016);
  EXPECT_FALSE(next_leap(t, kLeap2016).has_value());  // strictly after: the leap is done
  n = next_leap(t, 0);  // 1970: the first leap of 1972
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->at_ns, 78796800LL * kS);
  n = next_leap(t, (1435708800LL - 1) * kS);  // just before 2015-07-01
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->tai_utc_s, 36);
}

TEST(LeapTable, ExpiredFileIsWarnedAbout) {
  const LeapTable t = tzdata();
  EXPECT_FALSE(expired(t, t.expires_ns - 1));
  EXPECT_EQ(expiry_warning(t, t.expires_ns - 1, kCopy), "");
  EXPECT_TRUE(expired(t, t.expires_ns));
  EXPECT_EQ(expiry_warning(t, 1796119200LL * kS, "/usr/share/zoneinfo/leap-seconds.list"),  // 2026-12-01 10:00
            "leap file /usr/share/zoneinfo/leap-seconds.list expired on 2026-06-28 (156 days ago): leap seconds "
            "after that are not known; install a newer leap-seconds.list (tzdata)");
  EXPECT_EQ(expiry_warning(t, t.expires_ns + 86400 * kS, "f"),
            "leap file f expired on 2026-06-28 (1 day ago): leap seconds after that are not known; install a newer "
            "leap-seconds.list (tzdata)");
}

TEST(LeapTable, AnnouncedOnTheLeapDayOnly) {
  const LeapTable t = tzdata();
  const int64_t day = 86400 * kS;
  EXPECT_EQ(leap_sign_on_day(t, kLeap2016 - day - 1), 0);  // 2016-12-30 23:59:59.999999999
  EXPECT_EQ(leap_sign_on_day(t, kLeap2016 - day), 1);      // 2016-12-31 00:00
  EXPECT_EQ(leap_sign_on_day(t, kLeap2016 - 1), 1);
  EXPECT_EQ(leap_sign_on_day(t, kLeap2016), 0);            // 2017-01-01: done
  EXPECT_EQ(leap_sign_on_day(t, 1435708800LL * kS - 3600 * kS), 1);  // 2015-06-30 23:00
  EXPECT_EQ(end_of_utc_day_ns(kLeap2016 - 1), kLeap2016);
  EXPECT_EQ(end_of_utc_day_ns(kLeap2016), kLeap2016 + day);
  EXPECT_EQ(end_of_utc_day_ns(-1), 0);  // 1969-12-31 ends at the epoch
  EXPECT_TRUE(is_leap_day(kLeap2016 - 1));
  EXPECT_TRUE(is_leap_day(1435708800LL * kS - 1));   // 2015-06-30
  EXPECT_FALSE(is_leap_day(kLeap2016));              // 2017-01-01
  EXPECT_FALSE(is_leap_day(1435708800LL * kS));      // 2015-07-01
  EXPECT_FALSE(is_leap_day(1427760000LL * kS - 1));  // 2015-03-30: a month end, not June or December
}

// ----------------------------------------------------- the served time

TEST(ApplyLeap, NoLeapIsTheLinearTime) {
  for (int64_t l : {INT64_MIN, int64_t{-1}, int64_t{0}, kLeap2016, INT64_MAX})
    EXPECT_EQ(apply_leap(0, kLeap2016, 0, l), l);
}

TEST(ApplyLeap, InsertionServesTheLastSecondTwice) {
  EXPECT_EQ(apply_leap(1, kLeap2016, 0, kLeap2016 - kS - 1), kLeap2016 - kS - 1);
  EXPECT_EQ(apply_leap(1, kLeap2016, 0, kLeap2016 - kS), kLeap2016 - kS);  // 23:59:59, first time
  EXPECT_EQ(apply_leap(1, kLeap2016, 0, kLeap2016 - 1), kLeap2016 - 1);
  EXPECT_EQ(apply_leap(1, kLeap2016, 0, kLeap2016), kLeap2016 - kS);  // 23:59:60 served as 23:59:59 again
  EXPECT_EQ(apply_leap(1, kLeap2016, 0, kLeap2016 + kS / 2), kLeap2016 - kS / 2);
  EXPECT_EQ(apply_leap(1, kLeap2016, 0, kLeap2016 + kS - 1), kLeap2016 - 1);
  EXPECT_EQ(apply_leap(1, kLeap2016, 0, kLeap2016 + kS), kLeap2016);  // 00:00:00
  EXPECT_EQ(apply_leap(1, kLeap2016, 0, kLeap2016 + 3600 * kS), kLeap2016 + 3599 * kS);
}

TEST(ApplyLeap, DeletionSkipsTheLastSecond) {
  EXPECT_EQ(apply_leap(-1, kLeap2016, 0, kLeap2016 - kS - 1), kLeap2016 - kS - 1);  // 23:59:58.999999999
  EXPECT_EQ(apply_leap(-1, kLeap2016, 0, kLeap2016 - kS), kLeap2016);               // then 00:00:00
  EXPECT_EQ(apply_leap(-1, kLeap2016, 0, kLeap2016 - kS / 2), kLeap2016 + kS / 2);
  EXPECT_EQ(apply_leap(-1, kLeap2016, 0, kLeap2016), kLeap2016 + kS);
}

TEST(ApplyLeap, AnySignCountsAsItsSign) {
  EXPECT_EQ(apply_leap(7, kLeap2016, 0, kLeap2016), kLeap2016 - kS);
  EXPECT_EQ(apply_leap(-3, kLeap2016, 0, kLeap2016), kLeap2016 + kS);
  EXPECT_EQ(apply_leap(INT32_MIN, kLeap2016, kSmearWindowNs, kLeap2016), kLeap2016 + kS / 2);
}

TEST(ApplyLeap, SmearIsLinearOverTheWindow) {
  const int64_t w = kSmearWindowNs;
  const int64_t start = kLeap2016 - w / 2;  // 2016-12-31 12:00
  for (int32_t sign : {1, -1}) {
    SCOPED_TRACE(sign);
    EXPECT_EQ(apply_leap(sign, kLeap2016, w, start - kS), start - kS);
    EXPECT_EQ(apply_leap(sign, kLeap2016, w, start), start);
    EXPECT_EQ(apply_leap(sign, kLeap2016, w, start + w / 4), start + w / 4 - sign * kS / 4);
    EXPECT_EQ(apply_leap(sign, kLeap2016, w, kLeap2016), kLeap2016 - sign * kS / 2);  // midnight: half way
    EXPECT_EQ(apply_leap(sign, kLeap2016, w, start + w), start + w - sign * kS);      // 2017-01-01 12:00
    EXPECT_EQ(apply_leap(sign, kLeap2016, w, start + w + 7 * kS), start + w + 7 * kS - sign * kS);
    // 86.4 us of linear time is 1 ns of smear.
    EXPECT_EQ(apply_leap(sign, kLeap2016, w, start + 86400), start + 86400 - sign);
    EXPECT_EQ(apply_leap(sign, kLeap2016, w, start + 86399), start + 86399);
  }
}

TEST(ApplyLeap, SmearIsMonotonicAndContinuous) {
  const int64_t w = kSmearWindowNs;
  const int64_t start = kLeap2016 - w / 2;
  for (int32_t sign : {1, -1}) {
    for (int64_t edge : {start, kLeap2016 - kS, kLeap2016, start + w}) {
      int64_t prev = apply_leap(sign, kLeap2016, w, edge - 200000);
      for (int64_t l = edge - 199999; l <= edge + 200000; l++) {
        const int64_t v = apply_leap(sign, kLeap2016, w, l);
        ASSERT_GE(v - prev, 0) << "sign " << sign << " at " << l;
        ASSERT_LE(v - prev, 2) << "sign " << sign << " at " << l;  // never a jump
        prev = v;
      }
    }
    // Over the whole window in 1 s steps: each step serves 1 s -+ 1/86400 s.
    int64_t prev = apply_leap(sign, kLeap2016, w, start - kS);
    for (int64_t l = start; l <= start + w + kS; l += kS) {
      const int64_t v = apply_leap(sign, kLeap2016, w, l);
      ASSERT_NEAR(static_cast<double>(v - prev), static_cast<double>(kS), 11575.0) << l;
      prev = v;
    }
  }
}

TEST(ApplyLeap, WindowOfOneSecondOrLessIsStepped) {
  EXPECT_EQ(apply_leap(1, kLeap2016, kS, kLeap2016), kLeap2016 - kS);
  EXPECT_EQ(apply_leap(1, kLeap2016, -86400 * kS, kLeap2016 - 1), kLeap2016 - 1);
  EXPECT_EQ(apply_leap(-1, kLeap2016, 1, kLeap2016 - kS), kLeap2016);
  // Just over 1 s smears: half way at the leap.
  EXPECT_EQ(apply_leap(1, kLeap2016, 2 * kS, kLeap2016), kLeap2016 - kS / 2);
}

TEST(ApplyLeap, NonsenseSaturatesInsteadOfOverflowing) {
  EXPECT_EQ(apply_leap(-1, INT64_MIN, 0, INT64_MAX), INT64_MAX);
  EXPECT_EQ(apply_leap(1, INT64_MIN, 0, INT64_MIN), INT64_MIN);
  EXPECT_EQ(apply_leap(-1, INT64_MAX, INT64_MAX, INT64_MAX - 1), INT64_MAX);
  EXPECT_EQ(apply_leap(1, INT64_MIN, INT64_MAX, INT64_MIN), INT64_MIN);
  EXPECT_EQ(apply_leap(1, INT64_MAX, INT64_MAX, INT64_MIN), INT64_MIN);  // before the window
}

// --------------------------------------------------------- the model's leap

ClockModelData one_ns_per_tick(int64_t utc0_ns) {
  ClockModelData m;
  m.raw0 = 1000000;
  m.utc0_ns = utc0_ns;
  m.mult = uint64_t{1} << proto::kModelShift;
  m.flags = proto::kModelValid;
  return m;
}

TEST(ModelLeap, SetAndClear) {
  ClockModelData m = one_ns_per_tick(kLeap2016);
  set_model_leap(m, 1, kLeap2016, true);
  EXPECT_EQ(m.leap_sign, 1);
  EXPECT_EQ(m.leap_ns, kLeap2016);
  EXPECT_EQ(m.leap_smear_ns, kSmearWindowNs);
  EXPECT_EQ(leap_complete_ns(m), kLeap2016 + kSmearWindowNs / 2);
  set_model_leap(m, -5, kLeap2016, false);
  EXPECT_EQ(m.leap_sign, -1);
  EXPECT_EQ(m.leap_smear_ns, 0);
  EXPECT_EQ(leap_complete_ns(m), kLeap2016 - kS);
  set_model_leap(m, 1, kLeap2016, false);
  EXPECT_EQ(leap_complete_ns(m), kLeap2016);
  set_model_leap(m, 0, kLeap2016, true);
  EXPECT_EQ(m.leap_sign, 0);
  EXPECT_EQ(m.leap_ns, 0);
  EXPECT_EQ(m.leap_smear_ns, 0);
  EXPECT_EQ(leap_complete_ns(m), INT64_MIN);
}

TEST(ModelLeap, FoldedModelAgreesOnceTheLeapIsDone) {
  for (int32_t sign : {1, -1}) {
    for (bool smear : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "sign " << sign << " smear " << smear);
      ClockModelData m = one_ns_per_tick(kLeap2016 - 100 * kS);  // raw0 is 100 s before the leap
      set_model_leap(m, sign, kLeap2016, smear);
      const ClockModelData f = fold_leap(m);
      EXPECT_EQ(f.leap_sign, 0);
      EXPECT_EQ(f.utc0_ns, m.utc0_ns - sign * kS);
      EXPECT_EQ(f.mult, m.mult);
      const uint64_t done = m.raw0 + static_cast<uint64_t>(leap_complete_ns(m) - m.utc0_ns);
      for (uint64_t raw : {done, done + 1, done + 123456789, done + 86400 * uint64_t{kS}})
        EXPECT_EQ(model_to_ns(f, raw), model_to_ns(m, raw)) << raw;
      EXPECT_NE(model_to_ns(f, done - 2), model_to_ns(m, done - 2));  // before, the fold is wrong
      EXPECT_EQ(fold_leap(f).utc0_ns, f.utc0_ns);  // nothing left to fold
    }
  }
}

}  // namespace
}  // namespace ntp::hwclock
