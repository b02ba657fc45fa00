// Closed-loop simulations of the clock discipline servo (hwclock/servo.h)
// in the style of chrony's test/simulation (tests/sim/servo_sim.h): a true
// clock, our clock with an initial offset, a frequency error and a
// random-walk wander, offsets measured with the noise of exponential
// one-way delays and handed to the servo as predictions (minus the phase
// ordered and not yet slewed in), and the servo's output applied as the
// control plane applies it (a hwclock::Correction: base frequency, bounded
// slew, steps). No real time. The servo's decisions one sample at a time
// are tests/unit/test_servo.cc.
// Each scenario runs runs() trajectories (20; SERVO_SIM_RUNS=<n> for more,
// as used to measure the bounds below), run r of scenario k from seed
// TEST_SEED + 1000 k + r; the seed is printed (random unless TEST_SEED is
// set) and TEST_SEED=<n> replays a failure. Each scenario prints one
// summary line ("servo: ...") with the mean and worst figures over its runs.
#include "hwclock/servo.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "hwclock/correction.h"
#include "hwclock/drift_file.h"
#include "tests/sim/servo_sim.h"
#include "tests/support/test_seed.h"

namespace ntp::hwclock {
namespace {

using sim::figures;
using sim::ServoSim;
using sim::SimFigures;
using sim::SimParams;
using sim::SimRecord;

uint64_t test_seed() { return ::ntp::test::seed(); }
// The seed of run r of scenario k: independent trajectories per scenario.
using ::ntp::test::run_seed;
#define SEED_TRACE() SCOPED_TRACE(::testing::Message() << "TEST_SEED=" << test_seed())
#define RUN_TRACE(r) SCOPED_TRACE(::testing::Message() << "TEST_SEED=" << test_seed() << " run " << (r))

// Trajectories per scenario: 20, or SERVO_SIM_RUNS (to measure the bounds;
// beyond 1000 runs the seeds of neighbouring scenarios overlap, which does
// not matter for that).
int runs() {
  static const int n = ::ntp::test::runs_from_env("SERVO_SIM_RUNS");
  return n;
}

constexpr int64_t kUs = 1000;
constexpr int64_t kMs = 1000 * kUs;
constexpr int64_t kSec = 1000 * kMs;
constexpr double kMaxPpb = 500'000;    // ServoConfig{}.max_frequency_ppb
constexpr double kConvergedNs = 100e3; // "converged": |offset| < 100 us from then on
constexpr size_t kHold = 20;           // at poll 16 s: converged = 20 samples in a row below 100 us
// Bounds, from 200000 runs of each scenario (SERVO_SIM_RUNS=10000 with
// twenty TEST_SEEDs 10^7 apart), as "mean / worst -> bound". At poll 1 s,
// delays 20 us (offset noise 14 us RMS):
//   1 (5 ms, 50 ppm)  frequency measured at  17.2 / 48 samples -> 80
//                     time to < 100 us       25.0 / 53 samples -> 90
//                     RMS offset             5.30 / 8.42 us    -> 12 us
//                     RMS freq error         0.235 / 0.36 ppm  -> 0.6 ppm
//   (mirror: 27.1 / 59 samples, 5.30 / 8.42 us, 0.236 / 0.363 ppm; 3:
//   19.3 / 54, 5.30 / 8.42 us, 0.235 / 0.36 ppm; drift file, 500 ms:
//   1.0 / 4 -> 8, 5.30 / 8.26 us, 0.235 / 0.361 ppm)
// Sample 0 changes nothing; the frequency is measured a baseline later
// (frequency_baseline_ns: 16 s at poll 1 s; later when the halves of the
// measurement disagree, which the noise makes happen now and then), and the
// whole offset (5 ms + 50 ppm * 16 s) is slewed out at the frequency limit
// (550 ppm against the -50 ppm base: 10.5 s), hence ~25. The measurement's
// error (~ sqrt(2) * 14 us / 16 s = 1.3 ppm RMS) the integral removes over
// ~10 updates. The same RMS bounds hold for 3, its mirror and the
// drift-file start; the other bounds are at their tests.
constexpr int kMeasuredBound = 80;  // samples, poll 1 s
constexpr int kConvergedBound = 90;  // samples, poll 1 s
constexpr double kRmsBoundNs = 12e3;
constexpr double kFreqBoundPpb = 600.0;

// Mean and worst of a figure over runs.
struct Stat {
  double sum = 0, worst = 0;
  int n = 0;
  void add(double v) {
    sum += v;
    worst = std::max(worst, v);
    ++n;
  }
  double mean() const { return n ? sum / n : 0; }
};

struct Summary {
  Stat conv, rms_us, max_us, freq_ppm;
  void add(const SimFigures& f) {
    conv.add(f.converged_at < 0 ? 1e9 : f.converged_at);
    rms_us.add(f.rms_offset_ns / 1e3);
    max_us.add(f.max_offset_ns / 1e3);
    freq_ppm.add(f.rms_freq_err_ppb / 1e3);
  }
  void print(const char* name, bool held = false) const {
    std::printf(
        "servo: %s: time to <100 us%s %.1f (worst %.0f) samples; RMS offset %.2f (worst %.2f) us, max %.1f us; "
        "RMS freq error %.3f (worst %.3f) ppm [%d runs, TEST_SEED=%llu]\n",
        name, held ? " (held 20 samples)" : "", conv.mean(), conv.worst, rms_us.mean(), rms_us.worst, max_us.worst, freq_ppm.mean(), freq_ppm.worst,
        conv.n, static_cast<unsigned long long>(test_seed()));
  }
};

SimParams params(double theta0_ns, double f0_ppm, int64_t poll_ns, double delay_mean_ns) {
  SimParams p;
  p.theta0_ns = theta0_ns;
  p.f0_ppm = f0_ppm;
  p.poll_ns = poll_ns;
  p.delay_mean_ns = delay_mean_ns;
  p.wander_ppb_per_sqrt_s = 1.0;  // ~ a plain XO: Allan deviation ~2e-8 at 1000 s
  return p;
}

// The frequency limit, as applied: the base never beyond max_ppb, and the
// rate (base + slew) not either, except by slew_rate_ppb()'s documented
// floor of 1 ppm of slew when the base is within 1 ppm of the limit (then
// |rate| <= |base| + 1 ppm <= max + 1 ppm). Returns how many samples ran
// beyond max_ppb that way; fails (once per log) on anything else.
int check_rates(const std::vector<SimRecord>& log, double max_ppb) {
  int at_floor = 0;
  for (size_t i = 0; i < log.size(); ++i) {
    const SimRecord& r = log[i];
    const double base = std::fabs(r.base_ppb), rate = std::fabs(r.rate_ppb);
    bool ok = base <= max_ppb && std::isfinite(rate);
    if (ok && rate > max_ppb + 1e-6) {  // (base + (max - base) may round up)
      ++at_floor;
      ok = base > max_ppb - 1000.0 && rate <= base + 1000.0 + 1e-6;
    }
    if (!ok) {
      ADD_FAILURE() << "sample " << i << ": base " << r.base_ppb << " ppb, rate " << r.rate_ppb << " ppb, max " << max_ppb;
      return at_floor;
    }
  }
  return at_floor;
}

// The start in kNotSet: sample 0 orders nothing (kSlew of 0, or a step),
// then kIgnore samples that order nothing either, until the frequency is
// measured (the first kSynchronized sample, at least the baseline after
// sample 0), whose whole offset is slewed out. Returns that sample's index
// (-1: none, with a failure).
int frequency_measured_at(const std::vector<SimRecord>& log, int64_t poll_ns) {
  if (log.empty()) return -1;
  EXPECT_EQ(log[0].out.state, ServoState::kNotSet);
  EXPECT_EQ(log[0].out.phase_ns, 0.0);
  EXPECT_EQ(log[0].out.freq_ppb, 0.0);
  for (size_t i = 1; i < log.size(); ++i) {
    const SimRecord& r = log[i];
    if (r.out.state == ServoState::kSynchronized) {
      EXPECT_EQ(r.out.action, ServoAction::kSlew) << i;
      EXPECT_DOUBLE_EQ(r.out.phase_ns, static_cast<double>(r.measured_ns)) << i;
      EXPECT_GE(static_cast<int64_t>(i) * poll_ns, frequency_baseline_ns(poll_ns)) << i;
      return static_cast<int>(i);
    }
    if (r.out.action != ServoAction::kIgnore || r.out.state != ServoState::kNotSet || r.rate_ppb != 0.0) {
      ADD_FAILURE() << "sample " << i << " in kNotSet: " << to_string(r.out.action) << ", " << to_string(r.out.state)
                    << ", rate " << r.rate_ppb;
      return -1;
    }
  }
  ADD_FAILURE() << "the frequency was never measured";
  return -1;
}

// A servo locked after `samples` samples of scenario 1.
struct Locked {
  Servo servo{ServoConfig{}};
  ServoSim sim;
  explicit Locked(uint64_t seed, int samples = 200, ServoConfig cfg = {})
      : servo(cfg), sim(params(0, 50, kSec, 20e3), seed) {
    sim.run(servo, samples);
  }
};


// With the drift file's frequency the first sample steps at once (no
// stepout; the state stays kFrequencySet), and the next one has its whole
// offset slewed out and starts the PI from that frequency, not from a
// measurement.
TEST(ServoSim, FrequencySetStepsAtOnceThenLocks) {
  Summary sum;
  for (int r = 0; r < runs(); ++r) {
    RUN_TRACE(r);
    ServoConfig c;
    c.initial_frequency_ppb = -50'000.0;
    Servo servo{c};
    ServoSim sim(params(500 * kMs, 50, kSec, 20e3), run_seed(10, r));
    sim.run(servo, 360);
    const auto& log = sim.log();
    ASSERT_EQ(log[0].out.action, ServoAction::kStep);
    EXPECT_EQ(log[0].out.state, ServoState::kFrequencySet);
    EXPECT_DOUBLE_EQ(log[0].out.freq_ppb, -50'000.0);
    EXPECT_EQ(log[1].out.action, ServoAction::kSlew);
    EXPECT_EQ(log[1].out.state, ServoState::kSynchronized);
    EXPECT_DOUBLE_EQ(log[1].out.phase_ns, static_cast<double>(log[1].measured_ns));
    EXPECT_EQ(check_rates(log, kMaxPpb), 0);
    const SimFigures f = figures(log, kConvergedNs, 60, 360);
    sum.add(f);
    EXPECT_GE(f.converged_at, 0);
    EXPECT_LE(f.converged_at, 8);  // 1.0 / 4 samples
    EXPECT_LT(f.rms_offset_ns, kRmsBoundNs);
    EXPECT_LT(f.rms_freq_err_ppb, kFreqBoundPpb);
  }
  sum.print("3 with drift file (500 ms: step at the first sample)");
}

// --------------------------------------------- 1: poll 1 s, 5 ms, 50 ppm

// The first sample changes nothing; the next ones are too soon to measure
// a frequency; the first one a baseline later (16 s; later if the halves of
// the measurement disagree) measures it and has its whole offset (5 ms +
// 50 ppm * 16 s) slewed out at the frequency limit. See the bounds above.
TEST(ServoSim, Scenario1Poll1s) {
  Summary sum;
  Stat measured;
  int at_floor = 0;
  for (int r = 0; r < runs(); ++r) {
    RUN_TRACE(r);
    Servo servo{ServoConfig{}};
    ServoSim sim(params(5 * kMs, 50, kSec, 20e3), run_seed(1, r));
    sim.run(servo, 360);
    const auto& log = sim.log();
    EXPECT_EQ(log[0].out.action, ServoAction::kSlew);  // 5 ms < step threshold: never stepped
    const int m = frequency_measured_at(log, kSec);
    measured.add(m);
    EXPECT_LE(m, kMeasuredBound);
    for (const auto& rec : log) ASSERT_NE(rec.out.action, ServoAction::kStep);
    at_floor += check_rates(log, kMaxPpb);
    const SimFigures f = figures(log, kConvergedNs, 60, 360);
    sum.add(f);
    EXPECT_GE(f.converged_at, 0);
    EXPECT_LE(f.converged_at, kConvergedBound);
    EXPECT_LT(f.rms_offset_ns, kRmsBoundNs);
    EXPECT_LT(f.rms_freq_err_ppb, kFreqBoundPpb);
  }
  EXPECT_EQ(at_floor, 0);
  std::printf("servo: 1 frequency measured at sample %.2f (worst %.0f)\n", measured.mean(), measured.worst);
  sum.print("1 poll 1 s, 5 ms, 50 ppm, delays 20 us");
}

// --------------------------------------------- 2: poll 16 s, noise 50 us

TEST(ServoSim, Scenario2Poll16s) {
  Summary sum;
  Stat measured;
  for (int r = 0; r < runs(); ++r) {
    RUN_TRACE(r);
    Servo servo{ServoConfig{}};
    ServoSim sim(params(5 * kMs, 50, 16 * kSec, 50e3), run_seed(2, r));
    sim.run(servo, 360);
    const auto& log = sim.log();
    const int m = frequency_measured_at(log, 16 * kSec);
    measured.add(m);
    EXPECT_LE(m, 20);  // 4.25 / 12 samples (baseline 64 s)
    EXPECT_EQ(check_rates(log, kMaxPpb), 0);
    const SimFigures f = figures(log, kConvergedNs, 60, 360, kHold);
    sum.add(f);
    EXPECT_LT(f.rms_offset_ns, 32e3);         // 13.3 / 21.2 us
    EXPECT_LT(f.rms_freq_err_ppb, 120.0);     // 0.039 / 0.059 ppm
    // 100 us is only a few times the RMS offset here: the noise alone
    // crosses it now and then, so "converged" is below it for kHold samples
    // in a row.
    EXPECT_GE(f.converged_at, 0);
    EXPECT_LE(f.converged_at, 80);  // 6.5 / 40 samples
  }
  std::printf("servo: 2 frequency measured at sample %.2f (worst %.0f)\n", measured.mean(), measured.worst);
  sum.print("2 poll 16 s, 5 ms, 50 ppm, delays 50 us", true);
}

// --------------------------------------------- 3: 500 ms: step first

TEST(ServoSim, Scenario3StepThenConverge) {
  Summary sum;
  Stat measured;
  for (int r = 0; r < runs(); ++r) {
    RUN_TRACE(r);
    Servo servo{ServoConfig{}};
    ServoSim sim(params(500 * kMs, 50, kSec, 20e3), run_seed(3, r));
    sim.run(servo, 360);
    const auto& log = sim.log();
    ASSERT_EQ(log[0].out.action, ServoAction::kStep);
    EXPECT_NEAR(static_cast<double>(log[0].out.step_ns), 500e6, 1e6);
    EXPECT_EQ(log[0].out.state, ServoState::kNotSet);  // the frequency is measured next
    EXPECT_LT(std::fabs(log[1].true_offset_ns), 1e6);  // stepped: only 1 s of 50 ppm and the noise left
    const int m = frequency_measured_at(log, kSec);
    measured.add(m);
    EXPECT_LE(m, kMeasuredBound);
    for (size_t i = 1; i < log.size(); ++i) ASSERT_NE(log[i].out.action, ServoAction::kStep) << i;
    EXPECT_EQ(check_rates(log, kMaxPpb), 0);
    const SimFigures f = figures(log, kConvergedNs, 60, 360);
    sum.add(f);
    EXPECT_GE(f.converged_at, 0);
    EXPECT_LE(f.converged_at, kConvergedBound);
    EXPECT_LT(f.rms_offset_ns, kRmsBoundNs);
    EXPECT_LT(f.rms_freq_err_ppb, kFreqBoundPpb);
  }
  std::printf("servo: 3 frequency measured at sample %.2f (worst %.0f)\n", measured.mean(), measured.worst);
  sum.print("3 poll 1 s, 500 ms (step), 50 ppm, delays 20 us");
}

// --------------------------------------------- 4: spikes and stepout

TEST(ServoSim, Scenario4SingleOutlierIgnored) {
  Stat f_dev, off_dev;
  for (int r = 0; r < runs(); ++r) {
    const uint64_t seed = run_seed(4, r);
    RUN_TRACE(r);
    // Twins from the same seed: one gets a 300 ms outlier at sample 200,
    // the other a normal sample.
    Locked l(seed), twin(seed);
    const double f_before = l.servo.frequency_ppb();
    const SimRecord spike = l.sim.step(l.servo, 300 * kMs);
    twin.sim.step(twin.servo);
    EXPECT_EQ(spike.out.action, ServoAction::kIgnore);
    EXPECT_EQ(spike.out.state, ServoState::kSpike);
    EXPECT_EQ(l.servo.state(), ServoState::kSpike);
    EXPECT_EQ(spike.out.step_ns, 0);
    EXPECT_EQ(spike.out.phase_ns, 0.0);
    EXPECT_DOUBLE_EQ(spike.out.freq_ppb, f_before);  // runs at the estimate, no phase correction
    EXPECT_DOUBLE_EQ(spike.rate_ppb, f_before);      // the slew still to come was dropped
    EXPECT_DOUBLE_EQ(l.servo.frequency_ppb(), f_before);
    const SimRecord next = l.sim.step(l.servo);
    twin.sim.step(twin.servo);
    EXPECT_EQ(next.out.action, ServoAction::kSlew);
    EXPECT_EQ(next.out.state, ServoState::kSynchronized);
    double fd = 0, od = 0;
    for (int i = 0; i < 50; ++i) {
      const SimRecord rec = l.sim.step(l.servo), ref = twin.sim.step(twin.servo);
      ASSERT_NE(rec.out.action, ServoAction::kStep);
      EXPECT_LT(std::fabs(rec.true_offset_ns), kConvergedNs) << i;
      fd = std::max(fd, std::fabs(rec.est_ppb - ref.est_ppb));
      od = std::max(od, std::fabs(rec.true_offset_ns - ref.true_offset_ns));
    }
    EXPECT_EQ(check_rates(l.sim.log(), kMaxPpb), 0);
    // What the outlier changed, compared to a normal sample in its place:
    // only the phase correction of one interval is missing (Kp of the
    // twin's offset, noise included), which the PI then sees at the next
    // sample (twice two intervals' worth, weighted 1/dt). Had the 300 ms
    // been used, the integral alone would have moved by Ki * 300 ms / 1 s
    // = 3000 ppm (clamped to 500).
    EXPECT_LT(fd, 1'500.0);  // 0.103 / 0.859 ppm
    EXPECT_LT(od, 35e3);   // 1.98 / 20.4 us
    f_dev.add(fd / 1e3);
    off_dev.add(od / 1e3);
  }
  std::printf("servo: 4 single 300 ms outlier when locked: ignored; vs. a normal sample in its place: "
              "frequency estimate within %.4f (worst %.4f) ppm, offset within %.2f (worst %.2f) us [%d runs]\n",
              f_dev.mean(), f_dev.worst, off_dev.mean(), off_dev.worst, f_dev.n);
}

TEST(ServoSim, Scenario4PersistentOffsetStepsAfterStepout) {
  Summary sum;
  for (int r = 0; r < runs(); ++r) {
    RUN_TRACE(r);
    Locked l(run_seed(4, r) + 100);
    const double f_before = l.servo.frequency_ppb();
    l.sim.reference_step(300e6);  // the reference stepped by 300 ms
    for (int i = 0; i < 2; ++i) {  // stepout_samples = 3: two ignored, the third steps
      const SimRecord rec = l.sim.step(l.servo);
      EXPECT_EQ(rec.out.action, ServoAction::kIgnore);
      EXPECT_EQ(rec.out.state, ServoState::kSpike);
    }
    const SimRecord st = l.sim.step(l.servo);
    ASSERT_EQ(st.out.action, ServoAction::kStep);
    EXPECT_NEAR(static_cast<double>(st.out.step_ns), 300e6, 1e6);
    EXPECT_EQ(st.out.state, ServoState::kFrequencySet);  // the next sample restarts the loop
    EXPECT_EQ(st.slew_left_ns, 0.0);                     // dropped at the spikes
    EXPECT_DOUBLE_EQ(l.servo.frequency_ppb(), f_before);  // the step is not frequency information
    const SimRecord first = l.sim.step(l.servo);
    EXPECT_EQ(first.out.action, ServoAction::kSlew);
    EXPECT_EQ(first.out.state, ServoState::kSynchronized);
    EXPECT_DOUBLE_EQ(first.out.phase_ns, static_cast<double>(first.measured_ns));  // slewed out whole
    EXPECT_DOUBLE_EQ(first.out.freq_ppb, f_before);
    const size_t from = l.sim.log().size() - 2;  // the step
    l.sim.run(l.servo, 99);
    for (size_t i = from + 1; i < l.sim.log().size(); ++i) ASSERT_NE(l.sim.log()[i].out.action, ServoAction::kStep);
    EXPECT_EQ(check_rates(l.sim.log(), kMaxPpb), 0);
    const std::vector<SimRecord> after(l.sim.log().begin() + static_cast<ptrdiff_t>(from), l.sim.log().end());
    const SimFigures f = figures(after, kConvergedNs, 20, 100);
    sum.add(f);
    EXPECT_GE(f.converged_at, 0);
    EXPECT_LE(f.converged_at, 6);  // 1.0 / 3 samples from the step
    EXPECT_LT(f.rms_offset_ns, 16e3);  // 5.29 / 11.5 us
  }
  sum.print("4 reference stepped 300 ms when locked: stepped after stepout; then (from the step)");
}

TEST(Servo, StepoutOneStepsAtOnceAndZeroThresholdNeverSteps) {
  SEED_TRACE();
  ServoConfig c;
  c.stepout_samples = 1;
  Locked a(test_seed(), 100, c);
  a.sim.reference_step(300e6);
  EXPECT_EQ(a.sim.step(a.servo).out.action, ServoAction::kStep);

  // Threshold 0: never step. The 300 ms is slewed out at the maximum rate:
  // the first update throws the integral to the limit (Ki * 300 ms / 1 s =
  // 3000 ppm, clamped: +500 ppm), whose base then runs at the limit while
  // the PI's phase piles up as slew still to come; as the estimate comes
  // back to -50 ppm the slew takes its room, so |base + slew| stays at
  // 500 ppm until the 300 ms are in (~550 s at 550 us/s).
  ServoConfig z;
  z.step_threshold_ns = 0;
  Locked b(test_seed(), 100, z);
  b.sim.reference_step(300e6);
  const size_t from = b.sim.log().size();
  for (int i = 0; i < 100; ++i) {
    const SimRecord rec = b.sim.step(b.servo);
    ASSERT_EQ(rec.out.action, ServoAction::kSlew);
    ASSERT_EQ(rec.out.state, ServoState::kSynchronized);
    ASSERT_LE(std::fabs(rec.out.freq_ppb), kMaxPpb);
    EXPECT_NEAR(rec.rate_ppb, kMaxPpb, 1000.0 + 1e-6) << i;  // at the limit (+ the 1 ppm floor while the base is at it)
  }
  EXPECT_TRUE(b.sim.log()[from].out.saturated);
  // Slewed at +500 ppm against the oscillator's +50 ppm: 550 us per second.
  EXPECT_NEAR(b.sim.true_offset_ns(), 300e6 - 100 * 550e3, 2e6);
  b.sim.run(b.servo, 600);
  check_rates(b.sim.log(), kMaxPpb);
  EXPECT_LT(std::fabs(b.sim.true_offset_ns()), kConvergedNs);
  EXPECT_NEAR(b.servo.frequency_ppb(), -50'000.0, 2'000.0);
  std::printf("servo: threshold 0, 300 ms when locked: slewed at %.1f ppm; in after %d s; then %.1f us, estimate %.2f ppm\n",
              b.sim.log()[from + 50].rate_ppb / 1e3,
              static_cast<int>(std::find_if(b.sim.log().begin() + static_cast<ptrdiff_t>(from), b.sim.log().end(),
                                            [](const SimRecord& r) { return std::fabs(r.true_offset_ns) < kConvergedNs; }) -
                               b.sim.log().begin() - static_cast<ptrdiff_t>(from)),
              b.sim.true_offset_ns() / 1e3, b.servo.frequency_ppb() / 1e3);
  // A fresh servo with threshold 0 does not step either.
  Servo fresh{z};
  EXPECT_EQ(fresh.sample(400 * kMs, 0, kSec).action, ServoAction::kSlew);
}

// A spike and then a normal sample: the spike counter restarts.
TEST(ServoSim, SpikesMustBeConsecutiveToStep) {
  SEED_TRACE();
  Locked l(test_seed());
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(l.sim.step(l.servo, 300 * kMs).out.action, ServoAction::kIgnore);
    EXPECT_EQ(l.sim.step(l.servo, 300 * kMs).out.action, ServoAction::kIgnore);
    EXPECT_EQ(l.sim.step(l.servo).out.action, ServoAction::kSlew);
  }
  EXPECT_LT(std::fabs(l.sim.true_offset_ns()), kConvergedNs);
}

// --------------------------------------------- 5: frequency limit

// The oscillator is 800 ppm off and the servo may correct only 500 ppm:
// the estimate saturates at -500 ppm (never beyond) and says so
// (ServoOutput::saturated); the state stays kSynchronized and the offset
// grows at 300 us/s.
TEST(ServoSim, Scenario5FrequencyLimit) {
  SEED_TRACE();
  Servo servo{ServoConfig{}};
  ServoSim sim(params(0, 800, kSec, 20e3), test_seed());
  sim.run(servo, 1000);
  const auto& log = sim.log();
  const int m = frequency_measured_at(log, kSec);
  ASSERT_GT(m, 0);
  int steps = 0;
  double worst = 0;
  for (size_t i = 0; i < log.size(); ++i) {
    ASSERT_LE(std::fabs(log[i].out.freq_ppb), kMaxPpb) << i;
    ASSERT_LE(std::fabs(log[i].est_ppb), kMaxPpb) << i;
    if (log[i].out.action == ServoAction::kStep) ++steps;
    worst = std::max(worst, std::fabs(log[i].true_offset_ns));
    if (i >= static_cast<size_t>(m) && log[i].out.action == ServoAction::kSlew) {
      EXPECT_EQ(log[i].out.freq_ppb, -kMaxPpb) << i;
      EXPECT_TRUE(log[i].out.saturated) << i;
      EXPECT_EQ(log[i].out.state, ServoState::kSynchronized) << i;
    }
  }
  const int at_floor = check_rates(log, kMaxPpb);
  // Linear growth at -300 us per sample (+ the floor's 1 us) over the 300
  // samples after the measurement (before the offset reaches 128 ms).
  const double slope = (log[static_cast<size_t>(m) + 301].true_offset_ns - log[static_cast<size_t>(m) + 1].true_offset_ns) / 300.0;
  EXPECT_NEAR(slope, -300e3, 3e3);
  std::printf("servo: 5 f0 800 ppm, max 500 ppm: estimate %.0f ppm, saturated; applied %.3f ppm (%d of %zu samples "
              "beyond 500 ppm, slew_rate_ppb's 1 ppm floor); offset slope %.1f us/s; %d steps in %zu s, worst offset %.1f ms, "
              "slew still to come at the end %.1f ms\n",
              log[300].out.freq_ppb / 1e3, log[300].rate_ppb / 1e3, at_floor, log.size(), slope / 1e3, steps, log.size(),
              worst / 1e6, sim.slew_left_ns() / 1e6);
}

// Scenario 5, continued: offsets are predictions, and while the base is at
// the limit the slew cannot run (slew_rate_ppb's 1 ppm floor), so the phase
// still to come piles up and the prediction alone stays near -300 us / Kp.
// The servo applies its step and panic thresholds to prediction + pending
// (what the clock has now), so the clock is stepped when its offset passes
// the step threshold (after the stepout), as ntpd does: about every 430 s,
// twice in 1000 s, and the offset never much beyond 128 ms.
TEST(ServoSim, Scenario5StepsWhenTheOffsetPassesTheThreshold) {
  SEED_TRACE();
  Servo servo{ServoConfig{}};
  ServoSim sim(params(0, 800, kSec, 20e3), test_seed());
  sim.run(servo, 1000);
  int steps = 0;
  double worst = 0;
  for (const SimRecord& r : sim.log()) {
    if (r.out.action == ServoAction::kStep) ++steps;
    worst = std::max(worst, std::fabs(r.true_offset_ns));
  }
  EXPECT_EQ(steps, 2);
  EXPECT_LT(worst, 128e6 + 4 * 301e3);  // the threshold, and the stepout's samples at 301 us/s
}

// --------------------------------------------- 6: panic threshold

TEST(Servo, Scenario6Panic) {
  SEED_TRACE();
  {
    Servo s{ServoConfig{}};  // panic 1000 s
    const ServoOutput o = s.sample(2000 * kSec, 0, kSec);
    EXPECT_EQ(o.action, ServoAction::kPanic);
    EXPECT_EQ(o.step_ns, 0);
    EXPECT_EQ(o.phase_ns, 0.0);
    EXPECT_EQ(s.state(), ServoState::kNotSet);  // nothing remembered
    EXPECT_EQ(s.sample(-2000 * kSec, kSec, kSec).action, ServoAction::kPanic);
    // Within the threshold the servo starts as if the panic had not been.
    EXPECT_EQ(s.sample(999 * kSec, 2 * kSec, kSec).action, ServoAction::kStep);
  }
  {
    // In a simulation: nothing is applied (the clock keeps its offset).
    Servo s{ServoConfig{}};
    ServoSim sim(params(2000.0 * kSec, 50, kSec, 20e3), test_seed());
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(sim.step(s).out.action, ServoAction::kPanic);
      EXPECT_EQ(sim.applied_ppb(), 0.0);
    }
    EXPECT_NEAR(sim.true_offset_ns(), 2000.0 * kSec, 1e6);
  }
  {
    ServoConfig c;
    c.panic_threshold_ns = 0;  // never panic: step
    Servo s{c};
    const ServoOutput o = s.sample(2000 * kSec, 0, kSec);
    EXPECT_EQ(o.action, ServoAction::kStep);
    EXPECT_EQ(o.step_ns, 2000 * kSec);
  }
  {
    // Locked: panic leaves the servo as it was, and the last order runs
    // on; with panic 0 the same offset is a spike, then a step after the
    // stepout.
    Locked l(test_seed());
    const double f = l.servo.frequency_ppb();
    const double rate = l.sim.applied_ppb();
    const SimRecord p = l.sim.step(l.servo, -2000 * kSec);
    EXPECT_EQ(p.out.action, ServoAction::kPanic);
    EXPECT_EQ(p.rate_ppb, rate);
    EXPECT_EQ(l.servo.state(), ServoState::kSynchronized);
    EXPECT_EQ(l.servo.frequency_ppb(), f);
    EXPECT_EQ(l.sim.step(l.servo).out.action, ServoAction::kSlew);
    EXPECT_LT(std::fabs(l.sim.true_offset_ns()), kConvergedNs);

    ServoConfig c;
    c.panic_threshold_ns = 0;
    Locked m(test_seed(), 200, c);
    m.sim.reference_step(2000.0 * kSec);
    EXPECT_EQ(m.sim.step(m.servo).out.action, ServoAction::kIgnore);
    EXPECT_EQ(m.sim.step(m.servo).out.action, ServoAction::kIgnore);
    const SimRecord st = m.sim.step(m.servo);
    EXPECT_EQ(st.out.action, ServoAction::kStep);
    EXPECT_NEAR(static_cast<double>(st.out.step_ns), 2000.0 * kSec, 1e6);
  }
}

// --------------------------------------------- 7: drift file

std::string temp_dir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl = std::string(base ? base : "/tmp") + "/test_servo.XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return {};
  return tmpl;
}

// A restart with the clock already set (theta0 = 0) at poll 16 s: with the
// frequency from the drift file the servo holds the offset from the first
// sample; without it the first interval runs 50 ppm off (800 us over 16 s)
// until the frequency measurement a baseline later (64 s at poll 16 s),
// which carries the noise of the samples it is made of.
TEST(ServoSim, Scenario7DriftFileConvergesFaster) {
  const std::string dir = temp_dir();
  ASSERT_FALSE(dir.empty());
  const std::string path = dir + "/drift";
  std::string err;

  Summary with_file, without_file;
  Stat drift_err;
  for (int r = 0; r < runs(); ++r) {
    RUN_TRACE(r);
    const SimParams p = params(0, 50, 16 * kSec, 50e3);
    // A first life: converge, then save the estimate as the daemon would.
    Servo first{ServoConfig{}};
    ServoSim warm(p, run_seed(7, r) + 100);
    warm.run(first, 200);
    ASSERT_TRUE(write_drift_ppm(path, first.frequency_ppb() / 1e3, err)) << err;
    const auto ppm = read_drift_ppm(path, err);
    ASSERT_TRUE(ppm.has_value()) << err;
    EXPECT_NEAR(*ppm * 1e3, warm.log().back().needed_ppb, 400.0);  // 0.031 / 0.230 ppm
    drift_err.add(std::fabs(*ppm * 1e3 - warm.log().back().needed_ppb) / 1e3);

    ServoConfig c;
    c.initial_frequency_ppb = *ppm * 1e3;
    Servo a{c}, b{ServoConfig{}};
    EXPECT_EQ(a.state(), ServoState::kFrequencySet);
    ServoSim sa(p, run_seed(7, r)), sb(p, run_seed(7, r));
    sa.run(a, 200);
    sb.run(b, 200);
    EXPECT_EQ(sa.log()[0].out.state, ServoState::kSynchronized);  // PI from the first sample
    EXPECT_EQ(sb.log()[0].out.state, ServoState::kNotSet);
    EXPECT_EQ(check_rates(sa.log(), kMaxPpb), 0);
    EXPECT_EQ(check_rates(sb.log(), kMaxPpb), 0);
    const SimFigures fa = figures(sa.log(), kConvergedNs, 60, 200, kHold),
                     fb = figures(sb.log(), kConvergedNs, 60, 200, kHold);
    with_file.add(fa);
    without_file.add(fb);
    ASSERT_GE(fa.converged_at, 0);
    ASSERT_GE(fb.converged_at, 0);
    EXPECT_LE(fa.converged_at, 35);  // 0.01 / 23 samples
    EXPECT_LE(fb.converged_at, 60);  // 6.4 / 39 samples
    // Without the file the offset grows by 800 us per interval until the
    // measurement: never converged before sample 2. (Per run, "fa < fb"
    // fails about once in 10000 runs: a noise crossing in the run with the
    // file; compared on the means.)
    EXPECT_GE(fb.converged_at, 2);
  }
  EXPECT_LT(with_file.conv.mean() + 1.0, without_file.conv.mean());
  with_file.print("7 restart, poll 16 s, theta0 0, 50 ppm, delays 50 us, WITH drift file", true);
  without_file.print("7 restart, poll 16 s, theta0 0, 50 ppm, delays 50 us, without drift file", true);
  std::printf("servo: 7 drift file written after 200 samples at poll 16 s: within %.3f (worst %.3f) ppm of the oscillator\n",
              drift_err.mean(), drift_err.worst);

  // Scenario 1's start (5 ms) with the drift file, for comparison: the
  // first sample has its 5 ms slewed out whole.
  Summary s1;
  for (int r = 0; r < runs(); ++r) {
    RUN_TRACE(r);
    ServoConfig c;
    c.initial_frequency_ppb = -50'000.0;
    Servo a{c};
    ServoSim sa(params(5 * kMs, 50, kSec, 20e3), run_seed(1, r));
    sa.run(a, 360);
    const SimFigures f = figures(sa.log(), kConvergedNs, 60, 360);
    s1.add(f);
    EXPECT_GE(f.converged_at, 0);
    EXPECT_LE(f.converged_at, 12);  // 9 / 9; scenario 1 without the file: 25 / 53
  }
  s1.print("7 scenario 1 (poll 1 s, 5 ms, 50 ppm) WITH drift file");
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}

// --------------------------------------------- 8: determinism

TEST(ServoSim, Scenario8SameSeedSameTrajectory) {
  auto run = [](uint64_t seed) {
    Servo s{ServoConfig{}};
    ServoSim sim(params(5 * kMs, 50, kSec, 20e3), seed);
    sim.run(s, 300);
    sim.step(s, 300 * kMs);
    sim.run(s, 20);
    return sim.log();
  };
  const auto a = run(test_seed()), b = run(test_seed()), c = run(test_seed() + 1);
  ASSERT_EQ(a.size(), b.size());
  bool differs = false;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].measured_ns, b[i].measured_ns) << i;
    ASSERT_EQ(a[i].true_offset_ns, b[i].true_offset_ns) << i;  // bit for bit
    ASSERT_EQ(a[i].slew_left_ns, b[i].slew_left_ns) << i;
    ASSERT_EQ(a[i].out.freq_ppb, b[i].out.freq_ppb) << i;
    ASSERT_EQ(a[i].out.phase_ns, b[i].out.phase_ns) << i;
    ASSERT_EQ(a[i].out.action, b[i].out.action) << i;
    ASSERT_EQ(a[i].out.step_ns, b[i].out.step_ns) << i;
    ASSERT_EQ(a[i].est_ppb, b[i].est_ppb) << i;
    ASSERT_EQ(a[i].rate_ppb, b[i].rate_ppb) << i;
    differs = differs || a[i].measured_ns != c[i].measured_ns;
  }
  EXPECT_TRUE(differs);
}

// --------------------------------------------- robustness of the loop

// The poll interval changes while locked (1 s -> 16 s -> 4 s -> 1 s): the
// loop follows in units of updates, the offset stays within the
// noise-driven bound.
TEST(ServoSim, PollIntervalChanges) {
  Stat worst_us;
  for (int r = 0; r < runs(); ++r) {
    RUN_TRACE(r);
    Servo servo{ServoConfig{}};
    ServoSim sim(params(0, 50, kSec, 20e3), run_seed(11, r));
    sim.run(servo, 120);
    double worst = 0;
    for (const int64_t poll : {16 * kSec, 4 * kSec, kSec}) {
      sim.set_poll(poll);
      for (int i = 0; i < 60; ++i) {
        const SimRecord rec = sim.step(servo);
        ASSERT_EQ(rec.out.action, ServoAction::kSlew);
        if (i >= 10) {
          worst = std::max(worst, std::fabs(rec.true_offset_ns));
          // max over the run 19.2 / 86.1 us: mostly the frequency error of
          // poll 1 s (~0.3 ppm) over 16 s intervals
          EXPECT_LT(std::fabs(rec.true_offset_ns), 150e3) << "poll " << poll / kSec << " s, sample " << i;
        }
      }
    }
    EXPECT_EQ(check_rates(sim.log(), kMaxPpb), 0);
    worst_us.add(worst / 1e3);
  }
  std::printf("servo: poll 1 s -> 16 s -> 4 s -> 1 s when locked: max |offset| (from 10 samples after each change) "
              "%.1f (worst %.1f) us [%d runs]\n",
              worst_us.mean(), worst_us.worst, worst_us.n);
}

// Samples missed (the system peer unreachable for 10 intervals): the last
// order ran on (its slew ended, the base stayed); the late sample holds 11
// intervals of frequency error and is weighted 1/dt; the loop recovers
// without instability.
TEST(ServoSim, MissedSamples) {
  Stat jump_ppm, worst_us, end_ppm;
  for (int r = 0; r < runs(); ++r) {
    RUN_TRACE(r);
    Servo servo{ServoConfig{}};
    ServoSim sim(params(0, 50, kSec, 20e3), run_seed(12, r));
    sim.run(servo, 200);
    const double f_before = servo.frequency_ppb();
    sim.advance(10 * kSec);
    const SimRecord late = sim.step(servo);
    EXPECT_EQ(late.out.action, ServoAction::kSlew);
    EXPECT_EQ(late.slew_left_ns, 0.0);
    double worst = 0;
    for (int i = 0; i < 60; ++i) worst = std::max(worst, std::fabs(sim.step(servo).true_offset_ns));
    EXPECT_EQ(check_rates(sim.log(), kMaxPpb), 0);
    const double jump = std::fabs(late.est_ppb - f_before);
    EXPECT_LT(jump, 250.0);   // 0.011 / 0.122 ppm
    EXPECT_LT(worst, 60e3);   // 13.4 / 40.5 us
    EXPECT_NEAR(servo.frequency_ppb(), sim.log().back().needed_ppb, 2'500.0);  // 0.184 / 1.54 ppm
    jump_ppm.add(jump / 1e3);
    worst_us.add(worst / 1e3);
    end_ppm.add(std::fabs(servo.frequency_ppb() - sim.log().back().needed_ppb) / 1e3);
  }
  std::printf("servo: 10 samples missed when locked: estimate moved %.3f (worst %.3f) ppm at the late sample; "
              "max |offset| over the next 60 %.1f (worst %.1f) us; estimate error then %.3f (worst %.3f) ppm [%d runs]\n",
              jump_ppm.mean(), jump_ppm.worst, worst_us.mean(), worst_us.worst, end_ppm.mean(), end_ppm.worst, jump_ppm.n);
}

// Samples at irregular intervals (the clock filter releases about one in
// four, 1 to 8 poll intervals apart), the poll interval announced 1 s:
// with predicted offsets and the 1/dt weight the loop is the same in units
// of updates; scenario 1's start still converges and stays.
TEST(ServoSim, IrregularSampleIntervals) {
  Summary sum;
  for (int r = 0; r < runs(); ++r) {
    RUN_TRACE(r);
    Servo servo{ServoConfig{}};
    ServoSim sim(params(5 * kMs, 50, kSec, 20e3), run_seed(13, r));
    std::mt19937_64 gaps(run_seed(13, r) + 7);
    for (int i = 0; i < 300; ++i) {
      sim.step(servo);  // then one poll interval passes
      sim.advance(static_cast<int64_t>(gaps() % 8) * kSec);
    }
    const auto& log = sim.log();
    for (size_t i = 1; i < log.size(); ++i) ASSERT_NE(log[i].out.action, ServoAction::kStep) << i;
    EXPECT_EQ(check_rates(log, kMaxPpb), 0);
    const SimFigures f = figures(log, kConvergedNs, 60, 300);
    sum.add(f);
    EXPECT_GE(f.converged_at, 0);
    EXPECT_LE(f.converged_at, 50);      // 7.0 / 25 samples
    EXPECT_LT(f.rms_offset_ns, 18e3);      // 6.17 / 12.0 us
    EXPECT_LT(f.rms_freq_err_ppb, 550.0);  // 0.149 / 0.348 ppm
  }
  // The integral's 1/dt weight: the mean RMS frequency error over 20 runs
  // is 0.130-0.172 ppm (500 sets of 20 runs); weighted 1/T whatever dt,
  // 0.228-0.257 ppm.
  if (runs() >= 20) {
    EXPECT_LT(sum.freq_ppm.mean(), 0.2);
  }
  sum.print("irregular intervals 1-8 s, poll 1 s, 5 ms, 50 ppm, delays 20 us");
}

TEST(Servo, ResetKeepsFrequency) {
  SEED_TRACE();
  Locked l(test_seed());
  const double f = l.servo.frequency_ppb();
  l.servo.reset();
  EXPECT_EQ(l.servo.state(), ServoState::kFrequencySet);
  EXPECT_EQ(l.servo.frequency_ppb(), f);
  // The next sample is a first update: steps at once, no stepout, and the
  // one after it has its whole offset slewed out.
  const ServoOutput o = l.servo.sample(300 * kMs, 0, kSec);
  EXPECT_EQ(o.action, ServoAction::kStep);
  EXPECT_EQ(o.state, ServoState::kFrequencySet);
  EXPECT_EQ(o.freq_ppb, f);
  const ServoOutput n = l.servo.sample(30 * kUs, 300 * kMs + kSec, kSec);
  EXPECT_EQ(n.action, ServoAction::kSlew);
  EXPECT_EQ(n.state, ServoState::kSynchronized);
  EXPECT_DOUBLE_EQ(n.phase_ns, 30'000.0);
  EXPECT_EQ(n.freq_ppb, f);

  Servo fresh{ServoConfig{}};
  fresh.sample(1 * kMs, 0, kSec);
  fresh.reset();
  EXPECT_EQ(fresh.state(), ServoState::kNotSet);
  EXPECT_EQ(fresh.sample(1 * kMs, 10 * kSec, kSec).state, ServoState::kNotSet);  // a first sample again
}

// Offsets of either sign behave symmetrically.
TEST(ServoSim, NegativeOffsetAndFrequency) {
  Summary sum;
  for (int r = 0; r < runs(); ++r) {
    RUN_TRACE(r);
    Servo servo{ServoConfig{}};
    ServoSim sim(params(-5 * kMs, -50, kSec, 20e3), run_seed(9, r));
    sim.run(servo, 360);
    EXPECT_EQ(check_rates(sim.log(), kMaxPpb), 0);
    const SimFigures f = figures(sim.log(), kConvergedNs, 60, 360);
    sum.add(f);
    EXPECT_GE(f.converged_at, 0);
    EXPECT_LE(f.converged_at, kConvergedBound);
    EXPECT_LT(f.rms_offset_ns, kRmsBoundNs);
    EXPECT_LT(f.rms_freq_err_ppb, kFreqBoundPpb);
  }
  sum.print("mirror of 1 (-5 ms, -50 ppm)");
}

}  // namespace
}  // namespace ntp::hwclock
