// The control plane's clock steering (control/steering.h) on simulated
// clocks.
// Seeded: the seed is printed and TEST_SEED replays it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "control/steering.h"
#include "tests/support/simulated_clock.h"
#include "hwclock/clock_model.h"
#include "tests/support/test_seed.h"

namespace ntp::ctl {
namespace {

uint64_t seed() { return ::ntp::test::seed(); }

constexpr int64_t kTaiMinusUtcNs = 37'000'000'000;

struct FollowRun {
  double converged_s = -1;  // |error| < 1 us from then on
  double rms_ns = 0;
};

// A TAI PHC, off by initial_offset_ns and frequency_error_ppm, kept on the
// served time (the simulation's true time, UTC) for `seconds`; statistics
// of its error over the last half.
FollowRun follow(hwclock::SimulatedClock& phc, SteeredClock& steered, int seconds) {
  FollowRun r;
  double sum2 = 0;
  int n = 0;
  for (int s = 1; s <= seconds; s++) {
    phc.advance_ns(1e9);
    steered.tick(true);
    const double err = phc.error_ns() - static_cast<double>(kTaiMinusUtcNs);
    if (std::fabs(err) >= 1000) r.converged_s = -1;
    else if (r.converged_s < 0) r.converged_s = s;
    if (s > seconds / 2) {
      sum2 += err * err;
      n++;
    }
  }
  r.rms_ns = std::sqrt(sum2 / n);
  return r;
}

hwclock::SimulatedClockParams phc_params(double offset_ns, double ppm, uint64_t run) {
  hwclock::SimulatedClockParams p;
  p.name = "/dev/ptp-sim";
  p.initial_offset_ns = static_cast<double>(kTaiMinusUtcNs) + offset_ns;
  p.frequency_error_ppm = ppm;
  p.read_noise_ns = 20;
  p.bracket_ticks = 3000;
  p.seed = seed() + run;
  return p;
}

TEST(SteeredClock, TaiPhcFollowsTheServedTime) {
  for (int run = 0; run < 10; run++) {
    hwclock::SimulatedClock phc(phc_params(3e6, 40, run));
    SteeredClock steered(phc, [&](uint64_t tsc) { return phc.true_ns_at(tsc); }, kTaiMinusUtcNs,
                         hwclock::ServoConfig{});
    const FollowRun r = follow(phc, steered, 300);
    std::fprintf(stderr, "  run %d: PHC 3 ms, +40 ppm: |error| < 1 us from %.0f s; RMS %.1f ns over 150..300 s\n", run,
                 r.converged_s, r.rms_ns);
    EXPECT_GT(r.converged_s, 0);
    EXPECT_LT(r.converged_s, 60);
    EXPECT_LT(r.rms_ns, 50);
    EXPECT_TRUE(steered.status().following);
    EXPECT_EQ(steered.status().steps, 0u);  // 3 ms is below the step threshold: slewed
    EXPECT_NEAR(steered.status().frequency_ppm * 1000, -40'000 / 1.00004, 50);
  }
}

TEST(SteeredClock, PhcReset1970IsSteppedOnceThenFollows) {
  hwclock::SimulatedClockParams p = phc_params(0, -12, 100);
  p.initial_offset_ns = -static_cast<double>(p.start_true_ns);  // reads 1970
  hwclock::SimulatedClock phc(p);
  SteeredClock steered(phc, [&](uint64_t tsc) { return phc.true_ns_at(tsc); }, kTaiMinusUtcNs, hwclock::ServoConfig{});
  const FollowRun r = follow(phc, steered, 200);
  EXPECT_EQ(steered.status().steps, 1u);  // no panic for PHCs: one step
  EXPECT_EQ(phc.steps(), 1);
  EXPECT_GT(r.converged_s, 0);
  EXPECT_LT(r.converged_s, 60);
  EXPECT_LT(r.rms_ns, 50);
}

TEST(SteeredClock, NothingIsTouchedUntilSynchronizedAndItSettlesWhenLost) {
  hwclock::SimulatedClock phc(phc_params(2e6, 25, 200));
  SteeredClock steered(phc, [&](uint64_t tsc) { return phc.true_ns_at(tsc); }, kTaiMinusUtcNs, hwclock::ServoConfig{});
  for (int s = 0; s < 30; s++) {
    phc.advance_ns(1e9);
    EXPECT_TRUE(steered.tick(false).empty());
  }
  EXPECT_EQ(phc.frequency_sets(), 0);
  EXPECT_EQ(phc.steps(), 0);
  EXPECT_FALSE(steered.status().following);

  follow(phc, steered, 120);
  ASSERT_TRUE(steered.status().following);
  const double base = phc.frequency_ppb();
  // Lost: one settle to the base frequency (no slew left running), then hands off.
  const auto log = steered.tick(false);
  ASSERT_FALSE(log.empty());
  EXPECT_NE(log.back().find("no longer following"), std::string::npos) << log.back();
  EXPECT_FALSE(steered.status().following);
  const int sets = phc.frequency_sets();
  for (int s = 0; s < 10; s++) {
    phc.advance_ns(1e9);
    steered.tick(false);
  }
  EXPECT_EQ(phc.frequency_sets(), sets);
  EXPECT_NEAR(phc.frequency_ppb(), base, 1000);  // the slew part (< 1 ppm here) is dropped
  // Holdover on the learned frequency: 10 s drift well under a microsecond.
  EXPECT_LT(std::fabs(phc.error_ns() - static_cast<double>(kTaiMinusUtcNs)), 1000);
}

}  // namespace
}  // namespace ntp::ctl
