// The clock drivers (hwclock/clock_driver.h, hwclock/system_clock.h):
// SimulatedClock's semantics, the clock_adjtime value conversions as pure
// functions, and the real drivers' reads and error messages.
//
// NOTHING here steers a real clock: the real drivers are only opened and
// read (a PHC read-only); set_frequency_ppb/step_ns are called on
// SimulatedClock alone, and on a read-only PHC whose refusal happens
// before any system call.
#include "hwclock/clock_driver.h"
#include "tests/support/simulated_clock.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "hwclock/system_clock.h"
#include "hwclock/tsc.h"

namespace ntp::hwclock {
namespace {

constexpr double kSec = 1e9;

SimulatedClockParams quiet() {
  SimulatedClockParams p;
  p.ticks_per_ns = 1.0;  // exact ns arithmetic in these checks
  return p;
}

// --- SimulatedClock --------------------------------------------------------

TEST(SimulatedClock, ReadsTrueTimePlusOffsetAndOscillatorError) {
  SimulatedClockParams p = quiet();
  p.initial_offset_ns = 3e6;
  p.frequency_error_ppm = 40;
  SimulatedClock c(p);
  std::string err;
  int64_t ns = 0;
  ASSERT_TRUE(c.read_ns(ns, err));
  EXPECT_EQ(ns, p.start_true_ns + 3'000'000);
  c.advance_ns(kSec);
  ASSERT_TRUE(c.read_ns(ns, err));
  EXPECT_EQ(ns - c.true_ns_at(c.now_tsc()), 3'040'000);  // + 40 ppm of 1 s
  EXPECT_NEAR(c.error_ns(), 3'040'000, 1e-6);
}

TEST(SimulatedClock, FrequencyAppliesFromTheCall) {
  SimulatedClock c(quiet());
  std::string err;
  c.advance_ns(kSec);  // nothing set yet: no error
  EXPECT_DOUBLE_EQ(c.error_ns(), 0);
  ASSERT_TRUE(c.set_frequency_ppb(1000, err));
  c.advance_ns(kSec / 2);
  EXPECT_NEAR(c.error_ns(), 500, 1e-6);
  ASSERT_TRUE(c.set_frequency_ppb(-2000, err));  // from now on, not retroactively
  c.advance_ns(kSec);
  EXPECT_NEAR(c.error_ns(), 500 - 2000, 1e-6);
  EXPECT_EQ(c.frequency_sets(), 2);
  EXPECT_DOUBLE_EQ(c.frequency_ppb(), -2000);
}

TEST(SimulatedClock, CorrectionScalesTheOscillatorLikeAKernelClock) {
  SimulatedClockParams p = quiet();
  p.frequency_error_ppm = 100;
  SimulatedClock c(p);
  std::string err;
  ASSERT_TRUE(c.set_frequency_ppb(-100'000, err));
  c.advance_ns(1000 * kSec);
  // (1 + 1e-4)(1 - 1e-4) - 1 = -1e-8: -10 us over 1000 s.
  EXPECT_NEAR(c.error_ns(), -10'000, 1e-3);
}

TEST(SimulatedClock, Steps) {
  SimulatedClockParams p = quiet();
  p.initial_offset_ns = -250'000'000;
  SimulatedClock c(p);
  std::string err;
  ASSERT_TRUE(c.step_ns(250'000'000, err));
  EXPECT_DOUBLE_EQ(c.error_ns(), 0);
  ASSERT_TRUE(c.step_ns(-1, err));
  int64_t ns = 0;
  ASSERT_TRUE(c.read_ns(ns, err));
  EXPECT_EQ(ns, p.start_true_ns - 1);
  EXPECT_EQ(c.steps(), 2);
}

TEST(SimulatedClock, FrequencyIsClampedToItsLimit) {
  SimulatedClockParams p = quiet();
  p.max_frequency_ppb = 100'000;
  SimulatedClock c(p);
  std::string err;
  ASSERT_TRUE(c.set_frequency_ppb(300'000, err));
  EXPECT_DOUBLE_EQ(c.frequency_ppb(), 100'000);
  ASSERT_TRUE(c.set_frequency_ppb(-1e9, err));
  EXPECT_DOUBLE_EQ(c.frequency_ppb(), -100'000);
  EXPECT_DOUBLE_EQ(c.max_frequency_ppb(), 100'000);
  c.advance_ns(kSec);
  EXPECT_NEAR(c.error_ns(), -100'000, 1e-6);
  EXPECT_FALSE(c.set_frequency_ppb(std::nan(""), err));
  EXPECT_FALSE(err.empty());
}

TEST(SimulatedClock, TimeOnlyMovesForward) {
  SimulatedClockParams p = quiet();
  p.frequency_error_ppm = 10;
  SimulatedClock c(p);
  c.advance_to(5'000'000'000);
  const double e = c.error_ns();
  c.advance_to(1'000'000'000);  // ignored
  EXPECT_EQ(c.now_tsc(), 5'000'000'000u);
  EXPECT_DOUBLE_EQ(c.error_ns(), e);
}

TEST(SimulatedClock, CrossTimestampAtTheCurrentTscWithItsWidth) {
  SimulatedClockParams p;
  p.ticks_per_ns = 3.0;
  p.bracket_ticks = 150;
  p.initial_offset_ns = 1234;
  SimulatedClock c(p);
  c.advance_ns(2 * kSec);
  ClockReading r;
  std::string err;
  ASSERT_TRUE(c.cross_timestamp(r, err));
  EXPECT_EQ(r.tsc, c.now_tsc());
  EXPECT_EQ(r.tsc, 6'000'000'000u);
  EXPECT_EQ(r.width_ticks, 150u);
  EXPECT_EQ(r.clock_ns, p.start_true_ns + 2'000'000'000 + 1234);
}

TEST(SimulatedClock, ReadNoiseIsGaussianWithTheGivenRms) {
  SimulatedClockParams p = quiet();
  p.read_noise_ns = 20;
  p.seed = 7;
  SimulatedClock c(p);
  std::string err;
  double s = 0, s2 = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    int64_t ns = 0;
    ASSERT_TRUE(c.read_ns(ns, err));
    const double d = static_cast<double>(ns - p.start_true_ns);
    s += d;
    s2 += d * d;
  }
  const double mean = s / n, rms = std::sqrt(s2 / n - mean * mean);
  EXPECT_NEAR(mean, 0, 1.0);
  EXPECT_NEAR(rms, 20, 1.0);
}

TEST(SimulatedClock, WanderIsARandomWalkAndASeedReplaysIt) {
  // The oscillator's error after T s of wander w per sqrt(s) has RMS w sqrt(T).
  const double w = 2.0, T = 400;
  double s2 = 0;
  const int runs = 400;
  for (int r = 0; r < runs; ++r) {
    SimulatedClockParams p = quiet();
    p.wander_ppb_per_sqrt_s = w;
    p.seed = 100 + static_cast<uint64_t>(r);
    SimulatedClock c(p);
    for (int i = 0; i < T; ++i) c.advance_ns(kSec);
    s2 += c.oscillator_ppb() * c.oscillator_ppb();
  }
  EXPECT_NEAR(std::sqrt(s2 / runs), w * std::sqrt(T), 0.15 * w * std::sqrt(T));
  SimulatedClockParams p = quiet();
  p.wander_ppb_per_sqrt_s = w;
  p.seed = 42;
  SimulatedClock a(p), b(p);
  for (int i = 0; i < 50; ++i) {
    a.advance_ns(kSec);
    b.advance_ns(kSec);
  }
  EXPECT_EQ(a.oscillator_ppb(), b.oscillator_ppb());
  EXPECT_EQ(a.error_ns(), b.error_ns());
}

// --- clock_adjtime conversions ----------------------------------------------

TEST(AdjtimeValues, PpbToScaledPpmAndBack) {
  EXPECT_EQ(ppb_to_scaled_ppm(1000), 65536);
  EXPECT_EQ(ppb_to_scaled_ppm(-1000), -65536);
  EXPECT_EQ(ppb_to_scaled_ppm(0), 0);
  EXPECT_EQ(ppb_to_scaled_ppm(1), 66);  // 65.536 rounds to 66
  EXPECT_EQ(ppb_to_scaled_ppm(-1), -66);
  EXPECT_EQ(ppb_to_scaled_ppm(500'000), 32'768'000);  // the kernel's MAXFREQ_SCALED
  EXPECT_EQ(ppb_to_scaled_ppm(std::nan("")), 0);
  EXPECT_DOUBLE_EQ(scaled_ppm_to_ppb(65536), 1000);
  EXPECT_DOUBLE_EQ(scaled_ppm_to_ppb(-32'768'000), -500'000);
  for (double ppb : {-123456.789, -1.5, 0.25, 40'000.0, 499'999.9}) {
    EXPECT_NEAR(scaled_ppm_to_ppb(ppb_to_scaled_ppm(ppb)), ppb, 1 / 65.536 / 2 + 1e-9) << ppb;
  }
}

TEST(AdjtimeValues, PhcFrequencyStaysWithinMaxAdjAsTheKernelComputesIt) {
  // The kernel: ppb = (1 + scaled) * 125 >> 13 (arithmetic shift).
  EXPECT_EQ(kernel_scaled_ppm_to_ppb(65536), 1000);
  EXPECT_EQ(kernel_scaled_ppm_to_ppb(-65536), -1000);
  EXPECT_EQ(kernel_scaled_ppm_to_ppb(0), 0);
  EXPECT_EQ(kernel_scaled_ppm_to_ppb(-1), 0);
  EXPECT_EQ(kernel_scaled_ppm_to_ppb(-2), -1);
  for (long max_adj : {1L, 999L, 62'499'999L, 100'000L, 500'000L, 999'999'999L}) {
    for (double ppb : {1e12, -1e12, static_cast<double>(max_adj), -static_cast<double>(max_adj), 0.0}) {
      const long s = phc_scaled_ppm(ppb, max_adj);
      EXPECT_LE(kernel_scaled_ppm_to_ppb(s), max_adj) << max_adj << " " << ppb;
      EXPECT_GE(kernel_scaled_ppm_to_ppb(s), -max_adj) << max_adj << " " << ppb;
      if (std::fabs(ppb) >= static_cast<double>(max_adj)) {  // at the limit, not short of it
        EXPECT_NEAR(std::fabs(scaled_ppm_to_ppb(s)), static_cast<double>(max_adj), 0.05) << max_adj << " " << ppb;
      }
    }
  }
  EXPECT_EQ(phc_scaled_ppm(40'000, 500'000), 2'621'440);
}

TEST(AdjtimeValues, StepNormalisation) {
  auto eq = [](int64_t d, int64_t sec, int64_t nsec) {
    const SecNsec s = normalize_step(d);
    EXPECT_EQ(s.sec, sec) << d;
    EXPECT_EQ(s.nsec, nsec) << d;
    EXPECT_EQ(s.sec * 1'000'000'000 + s.nsec, d);
  };
  eq(0, 0, 0);
  eq(1, 0, 1);
  eq(-1, -1, 999'999'999);
  eq(1'500'000'000, 1, 500'000'000);
  eq(-1'500'000'000, -2, 500'000'000);
  eq(-1'000'000'000, -1, 0);
  eq(-500'000'000, -1, 500'000'000);
  eq(3'000'000, 0, 3'000'000);
  const SecNsec m = normalize_step(INT64_MIN);
  EXPECT_GE(m.nsec, 0);
  EXPECT_LT(m.nsec, 1'000'000'000);
  EXPECT_EQ(m.sec, INT64_MIN / 1'000'000'000 - 1);
}

TEST(AdjtimeValues, FdToClockid) {
  EXPECT_EQ(fd_to_clockid(3), static_cast<clockid_t>((~3u << 3) | 3u));
  EXPECT_EQ(fd_to_clockid(3) & 7, 3);
  EXPECT_LT(fd_to_clockid(3), 0);  // dynamic clock ids are negative
}

TEST(AdjtimeValues, RealtimeToTscInterpolates) {
  const ClockReading a{1'000'000, 5'000'000'000, 60}, b{1'030'000, 5'000'010'000, 60};  // 3 ticks per ns
  uint64_t tsc = 0;
  ASSERT_TRUE(realtime_to_tsc(a, b, 5'000'000'000, tsc));
  EXPECT_EQ(tsc, 1'000'000u);
  ASSERT_TRUE(realtime_to_tsc(a, b, 5'000'010'000, tsc));
  EXPECT_EQ(tsc, 1'030'000u);
  ASSERT_TRUE(realtime_to_tsc(a, b, 5'000'004'000, tsc));
  EXPECT_EQ(tsc, 1'012'000u);
  EXPECT_FALSE(realtime_to_tsc(a, b, 4'999'999'999, tsc));  // outside: REALTIME stepped
  EXPECT_FALSE(realtime_to_tsc(a, b, 5'000'010'001, tsc));
  EXPECT_FALSE(realtime_to_tsc(b, a, 5'000'004'000, tsc));  // out of order
}

// --- the real drivers: read only ---------------------------------------------

TEST(PhcClock, NonexistentDeviceIsAClearError) {
  std::string err;
  EXPECT_EQ(PhcClock::open("/dev/ptp99", true, err), nullptr);
  EXPECT_NE(err.find("/dev/ptp99"), std::string::npos) << err;
  EXPECT_NE(err.find("no such device"), std::string::npos) << err;
}

TEST(PhcClock, NotACharacterDevice) {
  char path[] = "/tmp/test_clock_driver_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::string err;
  EXPECT_EQ(PhcClock::open(path, false, err), nullptr);
  EXPECT_NE(err.find("not a character device"), std::string::npos) << err;
  unlink(path);
}

TEST(PhcClock, CharacterDeviceThatIsNoPhc) {
  std::string err;
  EXPECT_EQ(PhcClock::open("/dev/null", false, err), nullptr);
  EXPECT_NE(err.find("not a PTP hardware clock"), std::string::npos) << err;
}

std::vector<std::string> phc_devices() {
  std::vector<std::string> v;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/dev", ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("ptp", 0) == 0 && n.size() > 3 && std::all_of(n.begin() + 3, n.end(), ::isdigit)) v.push_back(e.path());
  }
  std::sort(v.begin(), v.end());
  return v;
}

// Only reads: the device is opened read-only, so even a mistake could not
// steer it (the kernel refuses clock_adjtime on a read-only descriptor).
TEST(PhcClock, CrossTimestampOnARealPhcIfThereIsOne) {
  const auto devs = phc_devices();
  if (devs.empty()) GTEST_SKIP() << "no /dev/ptp* on this host";
  int tested = 0;
  for (const std::string& dev : devs) {
    for (PhcCrossMethod m : {PhcCrossMethod::kBracket, PhcCrossMethod::kSysOffsetExtended}) {
      std::string err;
      auto phc = PhcClock::open(dev, false, err, m);
      if (!phc) {
        std::fprintf(stderr, "  %s: %s (skipped)\n", dev.c_str(), err.c_str());
        continue;
      }
      ClockReading a, b;
      ASSERT_TRUE(phc->cross_timestamp(a, err)) << dev << ": " << err;
      ASSERT_TRUE(phc->cross_timestamp(b, err)) << dev << ": " << err;
      EXPECT_GT(b.tsc, a.tsc);
      EXPECT_GE(b.clock_ns, a.clock_ns);
      int64_t ns = 0;
      ASSERT_TRUE(phc->read_ns(ns, err)) << err;
      EXPECT_GE(ns, b.clock_ns);
      // Read-only: refused before any system call.
      EXPECT_FALSE(phc->set_frequency_ppb(0, err));
      EXPECT_NE(err.find("read-only"), std::string::npos) << err;
      EXPECT_FALSE(phc->step_ns(0, err));
      std::fprintf(stderr, "  %s (%s): bracket %llu ticks, max_adj %.0f ppb\n", dev.c_str(),
                   phc->method() == PhcCrossMethod::kBracket ? "bracket" : "sys_offset_extended",
                   static_cast<unsigned long long>(b.width_ticks), phc->max_frequency_ppb());
      ++tested;
    }
  }
  if (tested == 0) GTEST_SKIP() << "no readable /dev/ptp*";
}

TEST(RealtimeClock, ReadsAndCrossTimestamps) {
  RealtimeClock c(8);
  std::string err;
  EXPECT_EQ(c.name(), "CLOCK_REALTIME");
  EXPECT_DOUBLE_EQ(c.max_frequency_ppb(), 500'000);
  ClockReading a, b;
  ASSERT_TRUE(c.cross_timestamp(a, err)) << err;
  ASSERT_TRUE(c.cross_timestamp(b, err)) << err;
  EXPECT_GT(b.tsc, a.tsc);
  EXPECT_GE(b.clock_ns, a.clock_ns);
  EXPECT_GT(a.clock_ns, 1'600'000'000'000'000'000);  // after 2020
  int64_t ns = 0;
  ASSERT_TRUE(c.read_ns(ns, err)) << err;
  EXPECT_GE(ns, b.clock_ns);
  // (set_frequency_ppb / step_ns would steer the host clock: never here.)
}

}  // namespace
}  // namespace ntp::hwclock
