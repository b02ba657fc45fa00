// The clock discipline servo (hwclock/servo.h), one decision at a time, and
// the drift file (hwclock/drift_file.h). The closed-loop simulations are
// tests/sim/test_servo_sim.cc.
#include "hwclock/servo.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <random>
#include <string>

#include "hwclock/correction.h"
#include "hwclock/drift_file.h"
#include "tests/support/test_seed.h"

namespace ntp::hwclock {
namespace {

uint64_t test_seed() { return ::ntp::test::seed(); }
#define SEED_TRACE() SCOPED_TRACE(::testing::Message() << "TEST_SEED=" << test_seed())

constexpr int64_t kUs = 1000;
constexpr int64_t kMs = 1000 * kUs;
constexpr int64_t kSec = 1000 * kMs;
constexpr double kMaxPpb = 500'000;  // ServoConfig{}.max_frequency_ppb

// ------------------------------------------------------------ basics

TEST(Servo, StateAndActionNames) {
  EXPECT_STREQ(to_string(ServoState::kNotSet), "clock not set");
  EXPECT_STREQ(to_string(ServoState::kFrequencySet), "frequency set");
  EXPECT_STREQ(to_string(ServoState::kSynchronized), "clock synchronized");
  EXPECT_STREQ(to_string(ServoState::kSpike), "clock spike");
  EXPECT_STREQ(to_string(ServoAction::kIgnore), "ignore");
  EXPECT_STREQ(to_string(ServoAction::kSlew), "slew");
  EXPECT_STREQ(to_string(ServoAction::kStep), "step");
  EXPECT_STREQ(to_string(ServoAction::kPanic), "panic");
}

TEST(Servo, InitialStates) {
  EXPECT_EQ(Servo(ServoConfig{}).state(), ServoState::kNotSet);
  EXPECT_EQ(Servo(ServoConfig{}).frequency_ppb(), 0.0);
  ServoConfig c;
  c.initial_frequency_ppb = -12'345.0;
  const Servo s(c);
  EXPECT_EQ(s.state(), ServoState::kFrequencySet);
  EXPECT_DOUBLE_EQ(s.frequency_ppb(), -12'345.0);
  c.initial_frequency_ppb = 900'000.0;  // beyond max_frequency: clamped
  EXPECT_DOUBLE_EQ(Servo(c).frequency_ppb(), 500'000.0);
}

// The baseline of the frequency measurement: four poll intervals, clamped
// to a range (its bounds are the servo's choice: this checks the shape).
TEST(Servo, FrequencyBaseline) {
  const int64_t lo = frequency_baseline_ns(1), hi = frequency_baseline_ns(int64_t{1} << 40 << 20);
  EXPECT_GE(lo, 2 * kSec);  // at least two samples at iburst's 2 s
  EXPECT_LT(lo, hi);
  EXPECT_LE(hi, 1024 * kSec);
  EXPECT_EQ(lo % (2 * kSec), 0);  // whole seconds in each half (the tests below rely on it)
  for (int64_t poll = kSec / 2; poll <= (int64_t{1} << 17) * kSec; poll *= 2) {
    EXPECT_EQ(frequency_baseline_ns(poll), std::clamp(4 * poll, lo, hi)) << poll;
  }
  EXPECT_EQ(frequency_baseline_ns(0), frequency_baseline_ns(kSec));  // <= 0: 1 s
  std::printf("servo: frequency baseline %.0f s to %.0f s (%.0f s at poll 1 s, %.0f s at poll 16 s)\n", lo / 1e9,
              hi / 1e9, frequency_baseline_ns(kSec) / 1e9, frequency_baseline_ns(16 * kSec) / 1e9);
}

TEST(Servo, SlewRate) {
  // The whole amount over one interval (ns/s = ppb), signed like the slew.
  EXPECT_DOUBLE_EQ(slew_rate_ppb(200e3, 0, kSec, kMaxPpb), 200e3);
  EXPECT_DOUBLE_EQ(slew_rate_ppb(-200e3, 0, kSec, kMaxPpb), -200e3);
  EXPECT_DOUBLE_EQ(slew_rate_ppb(160e3, -50e3, 16 * kSec, kMaxPpb), 10e3);
  EXPECT_DOUBLE_EQ(slew_rate_ppb(0, -50e3, kSec, kMaxPpb), 0.0);
  // Bounded so that |base + rate| <= max: the room left by the base.
  EXPECT_DOUBLE_EQ(slew_rate_ppb(10e6, -50e3, kSec, kMaxPpb), 550e3);
  EXPECT_DOUBLE_EQ(slew_rate_ppb(-10e6, -50e3, kSec, kMaxPpb), -450e3);
  EXPECT_DOUBLE_EQ(slew_rate_ppb(10e6, 0, kSec, 100e3), 100e3);
  // At least 1 ppm, so that a slew ends (documented: then |base + rate|
  // may pass the limit by up to 1 ppm).
  EXPECT_DOUBLE_EQ(slew_rate_ppb(10e6, kMaxPpb, kSec, kMaxPpb), 1e3);
  EXPECT_DOUBLE_EQ(slew_rate_ppb(-10e6, -kMaxPpb, kSec, kMaxPpb), -1e3);
  EXPECT_DOUBLE_EQ(slew_rate_ppb(1, 0, kSec, kMaxPpb), 1.0);  // small amounts: no floor
  // An interval <= 0 is taken as 1 s.
  EXPECT_DOUBLE_EQ(slew_rate_ppb(200e3, 0, 0, kMaxPpb), 200e3);
  EXPECT_DOUBLE_EQ(slew_rate_ppb(200e3, 0, -5, kMaxPpb), 200e3);

  // Applied with a Correction: the slew is in after one interval, at the
  // base from then on.
  Correction c;
  c.order(0, 0, -50e3, 160e3, slew_rate_ppb(160e3, -50e3, 16 * kSec, kMaxPpb));
  EXPECT_DOUBLE_EQ(c.rate_at(0), -40e3);
  EXPECT_NEAR(c.slew_left_at(8 * kSec), 80e3, 1e-6);
  EXPECT_NEAR(c.slew_left_at(16 * kSec), 0.0, 1e-6);
  EXPECT_DOUBLE_EQ(c.rate_at(16 * kSec + 1), -50e3);
  EXPECT_NEAR(c.value_at(32 * kSec), 160e3 - 50e3 * 32, 1e-6);
}

// kNotSet: the first sample changes nothing, samples sooner than the
// baseline B after it are ignored, and the first one after the baseline
// measures the frequency (nothing was ordered in between) and has its
// whole offset slewed out. Noise-free offsets, one per second at poll 1 s
// (so also at B/2, where the measurement may check that its two halves
// agree).
TEST(Servo, FirstSampleChangesNothingSecondMeasuresFrequency) {
  Servo s(ServoConfig{});
  const int64_t t0 = 1'000 * kSec;
  const int n = static_cast<int>(frequency_baseline_ns(kSec) / kSec);  // B in samples
  const ServoOutput o1 = s.sample(40 * kUs, t0, kSec);
  EXPECT_EQ(o1.action, ServoAction::kSlew);
  EXPECT_EQ(o1.state, ServoState::kNotSet);
  EXPECT_EQ(o1.freq_ppb, 0.0);
  EXPECT_EQ(o1.phase_ns, 0.0);
  EXPECT_EQ(o1.step_ns, 0);
  // Our oscillator gains 30 ppm: the offset falls by 30 us per second.
  for (int i = 1; i < n; ++i) {
    const ServoOutput o = s.sample(40 * kUs - i * 30 * kUs, t0 + i * kSec, kSec);
    EXPECT_EQ(o.action, ServoAction::kIgnore) << i;
    EXPECT_EQ(o.state, ServoState::kNotSet) << i;
    EXPECT_EQ(o.freq_ppb, 0.0) << i;
    EXPECT_EQ(o.phase_ns, 0.0) << i;
  }
  EXPECT_EQ(s.frequency_ppb(), 0.0);
  const int64_t last = 40 * kUs - n * 30 * kUs;
  const ServoOutput o2 = s.sample(last, t0 + n * kSec, kSec);
  EXPECT_EQ(o2.action, ServoAction::kSlew);
  EXPECT_EQ(o2.state, ServoState::kSynchronized);
  EXPECT_NEAR(o2.freq_ppb, -30'000.0, 1e-6);
  EXPECT_NEAR(s.frequency_ppb(), -30'000.0, 1e-6);
  EXPECT_DOUBLE_EQ(o2.phase_ns, static_cast<double>(last));  // the whole offset
  EXPECT_FALSE(o2.saturated);
}

// Samples sooner than the baseline B after the first (here 1 s and B/2 at
// poll 16 s) are ignored; the first stays the measurement's start.
TEST(Servo, SecondSampleTooSoonIsIgnored) {
  Servo s(ServoConfig{});
  const int64_t t0 = 1'000 * kSec;
  const int64_t b16 = frequency_baseline_ns(16 * kSec), b1 = frequency_baseline_ns(kSec);
  s.sample(0, t0, 16 * kSec);
  EXPECT_EQ(s.sample(-1 * kUs, t0 + kSec, 16 * kSec).action, ServoAction::kIgnore);
  EXPECT_EQ(s.sample(-b16 / 2 / 1'000'000, t0 + b16 / 2, 16 * kSec).action, ServoAction::kIgnore);
  EXPECT_EQ(s.state(), ServoState::kNotSet);
  EXPECT_EQ(s.frequency_ppb(), 0.0);
  // B after the first the offset moved by -1 us per second: the oscillator
  // gains 1 ppm.
  const ServoOutput o = s.sample(-b16 / 1'000'000, t0 + b16, 16 * kSec);
  EXPECT_EQ(o.state, ServoState::kSynchronized);
  EXPECT_NEAR(s.frequency_ppb(), -1'000.0, 1e-6);
  EXPECT_DOUBLE_EQ(o.phase_ns, static_cast<double>(-b16 / 1'000'000));
  // Time going backwards restarts the measurement (20 ppm from t0 - 1 s).
  Servo b(ServoConfig{});
  b.sample(0, t0, kSec);
  const int64_t t1 = t0 - kSec;
  EXPECT_EQ(b.sample(5 * kUs, t1, kSec).state, ServoState::kNotSet);
  EXPECT_EQ(b.sample(5 * kUs - b1 / 2 / 50'000, t1 + b1 / 2, kSec).action, ServoAction::kIgnore);
  EXPECT_EQ(b.sample(5 * kUs - b1 / 50'000, t1 + b1, kSec).action, ServoAction::kSlew);
  EXPECT_NEAR(b.frequency_ppb(), -20'000.0, 1e-6);
}

// kNotSet beyond the step threshold: step, then measure the frequency from
// the stepped sample (times from the stepped clock) and those after it.
TEST(Servo, FirstSampleBeyondThresholdStepsThenMeasures) {
  Servo s(ServoConfig{});
  const int64_t t0 = 1'000 * kSec;
  const int64_t b1 = frequency_baseline_ns(kSec);
  const ServoOutput o1 = s.sample(500 * kMs, t0, kSec);
  EXPECT_EQ(o1.action, ServoAction::kStep);
  EXPECT_EQ(o1.step_ns, 500 * kMs);
  EXPECT_EQ(o1.phase_ns, 0.0);
  EXPECT_EQ(o1.state, ServoState::kNotSet);
  const int64_t t1 = t0 + 500 * kMs;  // our clock after the step
  // The oscillator gains 50 ppm: -50 us per second.
  EXPECT_EQ(s.sample(-50 * kUs, t1 + kSec, kSec).action, ServoAction::kIgnore);
  EXPECT_EQ(s.sample(-b1 / 2 / 20'000, t1 + b1 / 2, kSec).action, ServoAction::kIgnore);
  const ServoOutput o2 = s.sample(-b1 / 20'000, t1 + b1, kSec);
  EXPECT_EQ(o2.action, ServoAction::kSlew);
  EXPECT_EQ(o2.state, ServoState::kSynchronized);
  EXPECT_NEAR(o2.freq_ppb, -50'000.0, 1e-6);
  EXPECT_DOUBLE_EQ(o2.phase_ns, static_cast<double>(-b1 / 20'000));
}

// Locked operation: phase = Kp * offset (not clamped), frequency += Ki *
// offset * dt / max(dt, T)^2 (clamped), T the interval passed with the
// previous used sample.
TEST(Servo, LockedUpdateIsProportionalPlusIntegral) {
  ServoConfig c;
  c.initial_frequency_ppb = -30'000.0;
  Servo s(c);
  int64_t t = 1'000 * kSec;
  const ServoOutput first = s.sample(7 * kUs, t, kSec);  // kFrequencySet: the whole offset
  EXPECT_EQ(first.action, ServoAction::kSlew);
  EXPECT_EQ(first.state, ServoState::kSynchronized);
  EXPECT_DOUBLE_EQ(first.phase_ns, 7'000.0);
  EXPECT_DOUBLE_EQ(first.freq_ppb, -30'000.0);  // no integral from the first update
  double f = -30'000.0;
  // (dt, T passed with this sample, expected frequency change at 10 us)
  struct Case {
    int64_t dt, poll;
    double df;
  };
  for (const Case& k : {Case{kSec, kSec, 100.0},           // dt = T: Ki * offset / T
                        Case{2 * kSec, kSec, 50.0},        // late: weight 1/dt
                        Case{kSec / 2, 16 * kSec, 50.0},   // early: dt / T^2 (T = 1 s, the previous)
                        Case{16 * kSec, 16 * kSec, 6.25},  // poll 16 s: Ki * offset / 16 s
                        Case{4 * kSec, kSec, 1.5625}}) {  // T = 16 s: Ki * offset * 4 s / (16 s)^2
    t += k.dt;
    const ServoOutput o = s.sample(10 * kUs, t, k.poll);
    f += k.df;
    EXPECT_EQ(o.action, ServoAction::kSlew);
    EXPECT_NEAR(o.freq_ppb, f, 1e-6) << k.dt;
    EXPECT_DOUBLE_EQ(o.phase_ns, kDefaultKp * 10'000.0) << k.dt;
  }
  // A large offset below the threshold: the phase is not clamped, the
  // frequency is (Ki * 100 ms / 1 s = 1000 ppm).
  t += kSec;
  const ServoOutput big = s.sample(100 * kMs, t, kSec);
  EXPECT_DOUBLE_EQ(big.phase_ns, kDefaultKp * 100e6);
  EXPECT_DOUBLE_EQ(big.freq_ppb, kMaxPpb);
  EXPECT_TRUE(big.saturated);
}

TEST(Servo, OutputAlwaysWithinMaxFrequency) {
  SEED_TRACE();
  std::mt19937_64 rng(test_seed());
  ServoConfig c;
  c.max_frequency_ppb = 100'000;
  c.step_threshold_ns = 0;
  c.panic_threshold_ns = 0;
  Servo s(c);
  int64_t t = 0;
  for (int i = 0; i < 2000; ++i) {
    const auto off = static_cast<int64_t>(rng() % (2 * kSec)) - kSec;
    t += 1 + static_cast<int64_t>(rng() % (4 * kSec));
    const int64_t poll = 1 + static_cast<int64_t>(rng() % (64 * kSec));
    const ServoOutput o = s.sample(off, t, poll);
    ASSERT_LE(std::fabs(o.freq_ppb), 100'000.0);
    ASSERT_LE(std::fabs(s.frequency_ppb()), 100'000.0);
    ASSERT_TRUE(std::isfinite(o.freq_ppb));
    ASSERT_TRUE(std::isfinite(o.phase_ns));
    const double rate = slew_rate_ppb(o.phase_ns, o.freq_ppb, poll, c.max_frequency_ppb);
    ASSERT_TRUE(std::isfinite(rate));
    ASSERT_LE(std::fabs(o.freq_ppb + rate), std::max(100'000.0, std::fabs(o.freq_ppb) + 1000.0) + 1e-6);
  }
}

TEST(Servo, ExtremeInputsDoNotOverflow) {
  ServoConfig c;
  c.panic_threshold_ns = 0;
  c.step_threshold_ns = 0;
  Servo s(c);
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min(), kMax = std::numeric_limits<int64_t>::max();
  for (const int64_t off : {kMin, kMax, int64_t{0}, kMin + 1}) {
    for (const int64_t t : {kMin, kMax, int64_t{0}}) {
      const ServoOutput o = s.sample(off, t, kMax);
      EXPECT_TRUE(std::isfinite(o.freq_ppb));
      EXPECT_TRUE(std::isfinite(o.phase_ns));
      EXPECT_LE(std::fabs(o.freq_ppb), c.max_frequency_ppb);
    }
  }
  Servo p{ServoConfig{}};
  EXPECT_EQ(p.sample(kMin, 0, kSec).action, ServoAction::kPanic);
  EXPECT_EQ(p.sample(kMax, 0, kSec).action, ServoAction::kPanic);
}

// --------------------------------------------- 7: drift file

std::string temp_dir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/test_servo.XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return {};
  return tmpl;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

TEST(DriftFile, RoundTripAndGarbage) {
  const std::string dir = temp_dir();
  ASSERT_FALSE(dir.empty());
  const std::string path = dir + "/drift";
  std::string err;

  // No file yet: not an error.
  EXPECT_FALSE(read_drift_ppm(path, err).has_value());
  EXPECT_EQ(err, "");

  for (const double v : {-12.345678, 0.0, 499.999999, -1e6, 1e6, 3.25e-6}) {
    ASSERT_TRUE(write_drift_ppm(path, v, err)) << err;
    EXPECT_EQ(err, "");
    const auto got = read_drift_ppm(path, err);
    ASSERT_TRUE(got.has_value()) << err;
    EXPECT_NEAR(*got, v, 1e-6);
    EXPECT_EQ(::access((path + ".tmp").c_str(), F_OK), -1);  // renamed away
  }

  // Whitespace and an explicit sign are tolerated (ntpd and chrony write
  // "%.3f\n"-style files; people edit them by hand).
  for (const auto& [text, want] : std::vector<std::pair<std::string, double>>{
           {"12.5", 12.5}, {"  -3.125\n", -3.125}, {"\t+7\r\n", 7.0}, {"1e2\n\n", 100.0}, {"-0.000\n", 0.0}}) {
    write_text(path, text);
    const auto got = read_drift_ppm(path, err);
    ASSERT_TRUE(got.has_value()) << text << ": " << err;
    EXPECT_DOUBLE_EQ(*got, want) << text;
  }

  for (const std::string& text : std::vector<std::string>{"", "  \n", "abc", "12.5x", "12.5 ppm", "1 2", "0x10", "nan", "inf", "-inf",
                                 "1e7", "-1000000.5", "1,5", "--1", "+-1", std::string(5000, ' ') + "1"}) {
    write_text(path, text);
    EXPECT_FALSE(read_drift_ppm(path, err).has_value()) << "\"" << text << "\"";
    EXPECT_NE(err.find(path), std::string::npos) << "\"" << text << "\": " << err;
  }

  // Refused values and unwritable places.
  EXPECT_FALSE(write_drift_ppm(path, std::nan(""), err));
  EXPECT_FALSE(err.empty());
  EXPECT_FALSE(write_drift_ppm(path, 2e6, err));
  EXPECT_FALSE(write_drift_ppm(dir + "/no/such/dir/drift", 1.0, err));
  EXPECT_NE(err.find("no/such/dir"), std::string::npos) << err;
  // A directory in the way of the rename: fails, and the .tmp is removed.
  const std::string blocked = dir + "/blocked";
  ASSERT_EQ(::mkdir(blocked.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((blocked + "/x").c_str(), 0755), 0);
  EXPECT_FALSE(write_drift_ppm(blocked, 1.0, err));
  EXPECT_FALSE(err.empty());
  EXPECT_EQ(::access((blocked + ".tmp").c_str(), F_OK), -1);
  // Reading a directory is an error, not "missing".
  EXPECT_FALSE(read_drift_ppm(blocked, err).has_value());
  EXPECT_FALSE(err.empty());

  ::rmdir((blocked + "/x").c_str());
  ::rmdir(blocked.c_str());
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}

// The daemon's keeper of the file: the start value and its log line, and at
// most one write an hour (the first an hour after the first chance) unless
// forced.
TEST(DriftFile, KeeperLoadsOnceAndSavesHourly) {
  const std::string dir = temp_dir();
  ASSERT_FALSE(dir.empty());
  const std::string path = dir + "/drift";
  std::string log, err;

  EXPECT_FALSE(DriftFile("").enabled());
  DriftFile f(path);
  ASSERT_TRUE(f.enabled());
  EXPECT_FALSE(f.load(log).has_value());
  EXPECT_EQ(log, "clock.drift_file " + path + ":  (measuring the frequency from scratch)");

  ASSERT_TRUE(f.save(-12'500.0, 100.0, false, err)) << err;  // the first chance: not yet
  EXPECT_FALSE(read_drift_ppm(path, err).has_value());
  ASSERT_TRUE(f.save(-12'500.0, 100.0 + 3599, false, err)) << err;
  EXPECT_FALSE(read_drift_ppm(path, err).has_value());
  ASSERT_TRUE(f.save(-12'500.0, 100.0 + 3600, false, err)) << err;
  EXPECT_NEAR(read_drift_ppm(path, err).value_or(0), -12.5, 1e-6);
  ASSERT_TRUE(f.save(-7'000.0, 100.0 + 3601, false, err)) << err;  // within the hour: kept as it was
  EXPECT_NEAR(read_drift_ppm(path, err).value_or(0), -12.5, 1e-6);
  ASSERT_TRUE(f.save(-7'000.0, 100.0 + 3602, true, err)) << err;  // at exit
  EXPECT_NEAR(read_drift_ppm(path, err).value_or(0), -7.0, 1e-6);

  const std::optional<double> start_ppb = DriftFile(path).load(log);
  ASSERT_TRUE(start_ppb.has_value());
  EXPECT_NEAR(*start_ppb, -7'000.0, 1e-3);
  EXPECT_EQ(log, "clock.drift_file " + path + ": starting at -7.000 ppm");

  EXPECT_FALSE(DriftFile(dir + "/no/such/dir/drift").save(1.0, 0, true, err));
  EXPECT_NE(err, "");
}

}  // namespace
}  // namespace ntp::hwclock
