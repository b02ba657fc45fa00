// hwclock::ClockFollower (hwclock/follower.h): a kernel clock kept on the
// served timescale, like linuxptp's phc2sys, simulated in the style of
// chrony's test/simulation. The target is a SimulatedClock (a simulated
// oscillator on a simulated TSC: no real time, no real clock is touched),
// the served timescale is exact (the simulation's true time), and the
// follower is updated every interval as the control plane would.
//
// Each scenario runs runs() trajectories (20; FOLLOWER_SIM_RUNS=<n> for
// more, as used to measure the bounds), run r of scenario k from seed
// TEST_SEED + 1000 k + r; the seed is printed (random unless TEST_SEED is
// set) and TEST_SEED=<n> replays a failure. Each scenario prints one line
// ("follower: ...") with the mean and worst figures over its runs.
// Bounds: from 5000 runs of each scenario (FOLLOWER_SIM_RUNS=1000, five
// TEST_SEEDs 10^6 apart), quoted as "mean, worst" next to each; the bound
// leaves about twice the worst.
#include "hwclock/follower.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "hwclock/clock_driver.h"
#include "tests/support/simulated_clock.h"
#include "hwclock/servo.h"
#include "tests/support/test_seed.h"

namespace ntp::hwclock {
namespace {

uint64_t test_seed() { return ::ntp::test::seed(); }
using ::ntp::test::run_seed;
#define RUN_TRACE(r) SCOPED_TRACE(::testing::Message() << "TEST_SEED=" << test_seed() << " run " << (r))

int runs() {
  static const int n = ::ntp::test::runs_from_env("FOLLOWER_SIM_RUNS");
  return n;
}

constexpr int64_t kUs = 1000;
constexpr int64_t kMs = 1000 * kUs;
constexpr int64_t kSec = 1000 * kMs;

// --- the simulation ----------------------------------------------------------

struct Scenario {
  SimulatedClockParams clock;
  ServoConfig servo;
  int updates = 600;
  int64_t interval_ns = kSec;
  // Updates come at interval * U(1 - jitter/2 ... 1 + jitter)
  // (0: on time), while the follower is told the nominal interval.
  double jitter = 0;
};

struct Sample {
  double true_offset_ns;  // served - target (true), at the update, before its order
  double freq_err_ppb;    // the servo's frequency estimate - the correction needed
  ClockFollower::Update u;
};

struct Trajectory {
  std::vector<Sample> s;
  std::vector<double> t_s;  // time of each update since the start, s
};

Trajectory simulate(const Scenario& sc, uint64_t seed) {
  SimulatedClockParams p = sc.clock;
  p.seed = seed;
  SimulatedClock clock(p);
  ClockFollower f(clock, [&clock](uint64_t tsc) { return clock.true_ns_at(tsc); }, sc.servo);
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ull);
  Trajectory tr;
  double t = 0;
  for (int i = 0; i < sc.updates; ++i) {
    const double true_off = -clock.error_ns();
    ClockFollower::Update u = f.update(sc.interval_ns);
    const double osc = clock.oscillator_ppb() * 1e-9;
    const double needed = -osc / (1 + osc) * 1e9;
    tr.s.push_back(Sample{true_off, f.servo().frequency_ppb() - needed, std::move(u)});
    tr.t_s.push_back(t);
    double dt = static_cast<double>(sc.interval_ns);
    if (sc.jitter > 0) {
      const double u01 = static_cast<double>(rng() >> 11) * 0x1.0p-53;
      dt *= 1 - sc.jitter / 2 + u01 * 1.5 * sc.jitter;
    }
    clock.advance_ns(dt);
    t += dt * 1e-9;
  }
  return tr;
}

struct Figures {
  int converged_at = -1;  // first update from which |true offset| < limit to the end; -1: never
  double converged_s = -1;
  double rms_ns = 0, max_ns = 0;     // over [from, to)
  double rms_freq_ppb = 0;           // frequency estimate error over [from, to)
  int steps = 0;
};

Figures figures(const Trajectory& tr, double limit_ns, size_t from_after_conv, size_t count) {
  Figures f;
  for (size_t i = tr.s.size(); i-- > 0;) {
    if (std::fabs(tr.s[i].true_offset_ns) >= limit_ns) break;
    f.converged_at = static_cast<int>(i);
  }
  if (f.converged_at >= 0) f.converged_s = tr.t_s[static_cast<size_t>(f.converged_at)];
  for (const Sample& s : tr.s) f.steps += s.u.stepped ? 1 : 0;
  const size_t from = f.converged_at < 0 ? tr.s.size() : static_cast<size_t>(f.converged_at) + from_after_conv;
  double so = 0, sf = 0;
  size_t n = 0;
  for (size_t i = from; i < from + count && i < tr.s.size(); ++i, ++n) {
    so += tr.s[i].true_offset_ns * tr.s[i].true_offset_ns;
    sf += tr.s[i].freq_err_ppb * tr.s[i].freq_err_ppb;
    f.max_ns = std::max(f.max_ns, std::fabs(tr.s[i].true_offset_ns));
  }
  if (n > 0) {
    f.rms_ns = std::sqrt(so / static_cast<double>(n));
    f.rms_freq_ppb = std::sqrt(sf / static_cast<double>(n));
  }
  return f;
}

struct Summary {
  double mean_conv = 0, worst_conv = 0, mean_rms = 0, worst_rms = 0, worst_max = 0, mean_freq = 0, worst_freq = 0;
  int n = 0;
  void add(const Figures& f) {
    ++n;
    mean_conv += (f.converged_s - mean_conv) / n;
    worst_conv = std::max(worst_conv, f.converged_s);
    mean_rms += (f.rms_ns - mean_rms) / n;
    worst_rms = std::max(worst_rms, f.rms_ns);
    worst_max = std::max(worst_max, f.max_ns);
    mean_freq += (f.rms_freq_ppb - mean_freq) / n;
    worst_freq = std::max(worst_freq, f.rms_freq_ppb);
  }
};

SimulatedClockParams phc(double offset_ns, double ppm, double noise_ns) {
  SimulatedClockParams p;
  p.name = "sim-phc";
  p.initial_offset_ns = offset_ns;
  p.frequency_error_ppm = ppm;
  p.read_noise_ns = noise_ns;
  p.bracket_ticks = 6000;  // 2 us at 3 GHz: a PCIe read through a syscall
  return p;
}

// A scenario's standard run: converged = |offset| < limit from then on;
// RMS over `count` updates from `after` updates past convergence.
Summary run_scenario(const char* label, int k, const Scenario& sc, double limit_ns, size_t after, size_t count,
                     const std::function<void(const Trajectory&, const Figures&)>& check) {
  Summary sum;
  for (int r = 0; r < runs(); ++r) {
    RUN_TRACE(r);
    const Trajectory tr = simulate(sc, run_seed(k, r));
    const Figures f = figures(tr, limit_ns, after, count);
    check(tr, f);
    sum.add(f);
  }
  std::fprintf(stderr,
               "follower: %s: |offset| < %.0f ns from %.0f s (worst %.0f s); RMS %.1f ns (worst %.1f, max %.1f) over "
               "%zu s; freq err RMS %.2f ppb (worst %.2f) [%d runs]\n",
               label, limit_ns, sum.mean_conv, sum.worst_conv, sum.mean_rms, sum.worst_rms, sum.worst_max, count,
               sum.mean_freq, sum.worst_freq, sum.n);
  return sum;
}

// --- scenarios -----------------------------------------------------------------

// (a) A PHC 3 ms ahead and 40 ppm fast, 20 ns read noise, updated every 1 s.
// 3 ms is below the default 128 ms step threshold: it is slewed out.
TEST(FollowerSim, PhcThreeMsFortyPpm) {
  Scenario sc;
  sc.clock = phc(3e6, 40, 20);
  sc.updates = 400;
  run_scenario("(a) PHC 3 ms, +40 ppm, 20 ns noise", 1, sc, 1000, 0, 300, [](const Trajectory& tr, const Figures& f) {
    EXPECT_EQ(f.steps, 0);
    EXPECT_GE(f.converged_at, 0);
    EXPECT_LT(f.converged_s, 40);      // always 24 s: 16 s of frequency measurement, 8 s of slew at 500 ppm
    EXPECT_LT(f.rms_ns, 20);           // mean 7.7, worst 10.7 ns
    EXPECT_LT(f.max_ns, 150);          // worst 55 ns
    EXPECT_LT(f.rms_freq_ppb, 2);      // worst 0.69 ppb
    for (const Sample& s : tr.s) EXPECT_TRUE(s.u.ok) << s.u.err;
  });
}

// (b) CLOCK_REALTIME-like: 1 us read noise, 10 ppm slow, 50 ms behind.
TEST(FollowerSim, RealtimeOneUsNoise) {
  Scenario sc;
  sc.clock = phc(-50e6, -10, 1000);
  sc.clock.name = "sim-realtime";
  sc.clock.bracket_ticks = 60;
  sc.updates = 400;
  run_scenario("(b) REALTIME 50 ms, -10 ppm, 1 us noise", 2, sc, 10'000, 0, 300, [](const Trajectory&, const Figures& f) {
    EXPECT_EQ(f.steps, 0);
    EXPECT_GE(f.converged_at, 0);
    EXPECT_LT(f.converged_s, 150);     // always 121 s: 50 ms at 500 ppm is 100 s of slew
    EXPECT_LT(f.rms_ns, 1000);         // mean 375, worst 541 ns
  });
}

// (c) 500 ms off: beyond the step threshold, stepped at the first update,
// then converges.
TEST(FollowerSim, HalfSecondIsSteppedAtOnce) {
  Scenario sc;
  sc.clock = phc(-500e6, 25, 20);
  sc.updates = 400;
  run_scenario("(c) PHC -500 ms, +25 ppm, 20 ns noise", 3, sc, 1000, 0, 300, [](const Trajectory& tr, const Figures& f) {
    ASSERT_FALSE(tr.s.empty());
    EXPECT_EQ(tr.s[0].u.servo.action, ServoAction::kStep);
    EXPECT_TRUE(tr.s[0].u.stepped);
    EXPECT_NEAR(static_cast<double>(tr.s[0].u.servo.step_ns), 500e6, 200);
    EXPECT_LT(std::fabs(tr.s[1].true_offset_ns), 100'000);  // the step took (25 ppm of 1 s remain)
    EXPECT_EQ(f.steps, 1);
    EXPECT_GE(f.converged_at, 0);
    EXPECT_LT(f.converged_s, 40);      // always 17 s
    EXPECT_LT(f.rms_ns, 25);           // mean 7.9, worst 12.1 ns
  });
}

// (d) Frequency wander (a random walk of the oscillator) tracked.
TEST(FollowerSim, WanderIsTracked) {
  Scenario sc;
  sc.clock = phc(1e5, -15, 20);
  sc.clock.wander_ppb_per_sqrt_s = 1.0;
  sc.updates = 1000;
  run_scenario("(d) PHC wander 1 ppb/sqrt(s), 20 ns noise", 4, sc, 1000, 0, 900, [](const Trajectory&, const Figures& f) {
    EXPECT_GE(f.converged_at, 0);
    EXPECT_LT(f.rms_ns, 50);           // mean 17.4, worst 25.2 ns
    EXPECT_LT(f.rms_freq_ppb, 10);     // mean 3.5, worst 5.0 ppb
  });
  sc.clock.wander_ppb_per_sqrt_s = 10.0;
  run_scenario("(d) PHC wander 10 ppb/sqrt(s), 20 ns noise", 5, sc, 1000, 0, 900, [](const Trajectory&, const Figures& f) {
    EXPECT_GE(f.converged_at, 0);
    EXPECT_LT(f.rms_ns, 400);          // mean 157, worst 230 ns
    EXPECT_LT(f.rms_freq_ppb, 100);    // mean 35, worst 48 ppb
  });
}

// (e) A target whose frequency range (100 ppm) cannot cancel its error (300
// ppm): the frequency estimate saturates and says so, the offset grows by
// 200 us/s, and once it passes the step threshold (128 ms) for
// stepout_samples updates the clock is stepped, again and again.
TEST(FollowerSim, SaturatedTargetStepsPastTheThreshold) {
  Scenario sc;
  sc.clock = phc(0, 300, 20);
  sc.clock.max_frequency_ppb = 100'000;
  sc.updates = 2000;
  Summary sum;
  int total_steps = 0;
  double first_step_s = 0;
  for (int r = 0; r < runs(); ++r) {
    RUN_TRACE(r);
    const Trajectory tr = simulate(sc, run_seed(6, r));
    bool saturated_seen = false;
    int steps = 0;
    for (size_t i = 0; i < tr.s.size(); ++i) {
      const ClockFollower::Update& u = tr.s[i].u;
      ASSERT_TRUE(u.ok) << u.err;
      EXPECT_LE(std::fabs(u.applied_ppb), 100'000);
      if (u.servo.saturated) saturated_seen = true;
      if (u.stepped) {
        ++steps;
        if (steps == 1) first_step_s += tr.t_s[i] / runs();
        // Stepped once past the threshold: within stepout (3 updates at
        // 200 us/s) of it, and the step takes it all.
        EXPECT_GT(std::fabs(tr.s[i].true_offset_ns), 128e6);
        EXPECT_LT(std::fabs(tr.s[i].true_offset_ns), 128e6 + 3 * 200e3 + 1e3);
        ASSERT_LT(i + 1, tr.s.size());
        EXPECT_LT(std::fabs(tr.s[i + 1].true_offset_ns), 300e3);
      }
      // Never beyond the threshold by more than the stepout allows.
      EXPECT_LT(std::fabs(tr.s[i].true_offset_ns), 128e6 + 4 * 200e3);
    }
    EXPECT_TRUE(saturated_seen);
    EXPECT_TRUE(tr.s.back().u.servo.saturated);
    EXPECT_TRUE(tr.s.back().u.clamped || tr.s.back().u.stepped || tr.s.back().u.servo.action == ServoAction::kIgnore);
    EXPECT_DOUBLE_EQ(tr.s.back().u.servo.freq_ppb, -100'000);
    EXPECT_GE(steps, 2);  // 2000 s at 200 us/s: a step every ~640 s
    total_steps += steps;
  }
  std::fprintf(stderr,
               "follower: (e) max 100 ppm vs +300 ppm error: saturated at -100 ppm, first step at %.0f s, %.1f steps "
               "per 2000 s [%d runs]\n",
               first_step_s, static_cast<double>(total_steps) / runs(), runs());
}

// (f) Updates late and early (0.5 .. 2 intervals apart; the follower is
// told 1 s): the kernel's slew runs over or falls short, the follower
// accounts for what it really did.
TEST(FollowerSim, IrregularUpdates) {
  Scenario sc;
  sc.clock = phc(2e5, 40, 20);
  sc.updates = 400;
  sc.jitter = 1.0;
  run_scenario("(f) PHC updates 0.5..2 s apart, 20 ns noise", 7, sc, 1000, 0, 300, [](const Trajectory&, const Figures& f) {
    EXPECT_GE(f.converged_at, 0);
    EXPECT_LT(f.converged_s, 80);      // mean 25, worst 41 s
    EXPECT_LT(f.rms_ns, 200);          // mean 33, worst 96 ns
  });
}

// --- deterministic checks -------------------------------------------------------

SimulatedClockParams noiseless(double offset_ns, double ppm) {
  SimulatedClockParams p;
  p.ticks_per_ns = 1.0;
  p.initial_offset_ns = offset_ns;
  p.frequency_error_ppm = ppm;
  return p;
}

ServoConfig known_frequency() {
  ServoConfig c;
  c.initial_frequency_ppb = 0;  // kFrequencySet: the first update slews the whole offset
  return c;
}

// The conversion both kernel-clock paths use (the follower, and the clock
// applier's direct CLOCK_REALTIME): base + rate, clamped; what of the slew
// the kernel has not done yet; and when it is in.
TEST(KernelSlew, FrequencyPendingAndEnd) {
  const KernelSlew k = kernel_slew(-20'000, 100'000, 100'000, 500'000);
  EXPECT_DOUBLE_EQ(k.applied_ppb, 80'000);
  EXPECT_FALSE(k.clamped);
  EXPECT_DOUBLE_EQ(k.left_ns(0), 100'000);
  // On the clock's own time, which runs (1 + applied) times the oscillator's.
  const double one_s = 1e9 * (1 + 80e-6);
  EXPECT_NEAR(k.left_ns(one_s / 2), 50'000, 1e-6);
  EXPECT_NEAR(k.left_ns(one_s), 0, 1e-6);
  EXPECT_NEAR(k.left_ns(2 * one_s), -100'000, 1e-6);  // late: ran over by the rate times the lateness
  EXPECT_NEAR(k.end_ns(), one_s, 1e-3);
  EXPECT_NEAR(k.left_ns(k.end_ns()), 0, 1e-6);

  const KernelSlew neg = kernel_slew(0, -30'000, -60'000, 500'000);
  EXPECT_DOUBLE_EQ(neg.applied_ppb, -60'000);
  EXPECT_NEAR(neg.end_ns(), 0.5e9 * (1 - 60e-6), 1e-3);

  // Clamped: the slew runs slower, and ends later.
  const KernelSlew c = kernel_slew(450'000, 100'000, 100'000, 500'000);
  EXPECT_DOUBLE_EQ(c.applied_ppb, 500'000);
  EXPECT_TRUE(c.clamped);
  EXPECT_NEAR(c.end_ns(), 2e9 * (1 + 500e-6), 1e-3);
  // No room at all: never in; no slew: in at once.
  EXPECT_TRUE(std::isinf(kernel_slew(500'000, 100'000, 1'000, 500'000).end_ns()));
  EXPECT_EQ(kernel_slew(10'000, 0, 0, 500'000).end_ns(), 0);
  EXPECT_DOUBLE_EQ(kernel_slew(10'000, 0, 0, 500'000).applied_ppb, 10'000);
}

TEST(Follower, SlewIsAFrequencyForOneIntervalAndEndsThere) {
  SimulatedClock c(noiseless(-10'000, 0));  // 10 us behind
  ClockFollower f(c, [&c](uint64_t tsc) { return c.true_ns_at(tsc); }, known_frequency());
  ClockFollower::Update u = f.update(kSec);
  ASSERT_TRUE(u.ok) << u.err;
  EXPECT_EQ(u.offset_ns, 10'000);
  EXPECT_EQ(u.servo.action, ServoAction::kSlew);
  EXPECT_DOUBLE_EQ(u.slew_ns, 10'000);
  EXPECT_NEAR(u.applied_ppb, 10'000, 1e-6);  // 10 us over 1 s
  EXPECT_NEAR(c.frequency_ppb(), 10'000, 1e-6);
  c.advance_ns(kSec);
  EXPECT_NEAR(c.error_ns(), 0, 1e-3);  // in by the next update
  u = f.update(kSec);
  EXPECT_EQ(u.pending_ns, 0);
  EXPECT_EQ(u.offset_ns, 0);
  EXPECT_NEAR(c.frequency_ppb(), 0, 1e-6);  // back at the base
}

TEST(Follower, LateUpdateAccountsForTheOverrun) {
  SimulatedClock c(noiseless(-10'000, 0));
  ClockFollower f(c, [&c](uint64_t tsc) { return c.true_ns_at(tsc); }, known_frequency());
  ASSERT_TRUE(f.update(kSec).ok);
  c.advance_ns(1.5 * kSec);  // half an interval late: the kernel slewed 15 us
  const ClockFollower::Update u = f.update(kSec);
  ASSERT_TRUE(u.ok) << u.err;
  EXPECT_EQ(u.offset_ns, -5'000);
  EXPECT_EQ(u.pending_ns, -5'000);  // ran over by 5 us: to come back
  EXPECT_EQ(u.predicted_ns, 0);     // the servo sees none of it
  EXPECT_EQ(u.servo.action, ServoAction::kSlew);
  EXPECT_NEAR(u.slew_ns, -5'000, 1e-6);
  c.advance_ns(kSec);
  EXPECT_NEAR(c.error_ns(), 0, 1e-3);
}

TEST(Follower, RateLimitedSlewIsCarriedOver) {
  SimulatedClockParams p = noiseless(-2e6, 0);  // 2 ms behind, limit 500 ppm: 4 s of slewing
  SimulatedClock c(p);
  ClockFollower f(c, [&c](uint64_t tsc) { return c.true_ns_at(tsc); }, known_frequency());
  ClockFollower::Update u = f.update(kSec);
  EXPECT_NEAR(u.applied_ppb, 500'000, 1e-6);
  c.advance_ns(kSec);
  u = f.update(kSec);
  EXPECT_EQ(u.offset_ns, 1'500'000);
  EXPECT_EQ(u.pending_ns, 1'500'000);  // still to come
  EXPECT_EQ(u.predicted_ns, 0);
  EXPECT_NEAR(u.applied_ppb, 500'000, 1e-6);
  for (int i = 0; i < 3; ++i) {
    c.advance_ns(kSec);
    u = f.update(kSec);
  }
  EXPECT_EQ(u.offset_ns, 0);
  EXPECT_EQ(u.pending_ns, 0);
}

TEST(Follower, SettleRunsAtTheBase) {
  SimulatedClock c(noiseless(-10'000, 0));
  ServoConfig cfg = known_frequency();
  cfg.initial_frequency_ppb = 1234;
  ClockFollower f(c, [&c](uint64_t tsc) { return c.true_ns_at(tsc); }, cfg);
  ASSERT_TRUE(f.update(kSec).ok);
  EXPECT_NEAR(c.frequency_ppb(), 1234 + 10'000, 1e-6);
  std::string err;
  ASSERT_TRUE(f.settle(err)) << err;
  EXPECT_NEAR(c.frequency_ppb(), 1234, 1e-6);
  c.advance_ns(kSec);
  const ClockFollower::Update u = f.update(kSec);
  EXPECT_EQ(u.pending_ns, 0);
}

TEST(Follower, PanicBeforeAnyOrderTouchesNothing) {
  SimulatedClock c(noiseless(-2000e9, 0));  // 2000 s off: beyond the default panic threshold
  ClockFollower f(c, [&c](uint64_t tsc) { return c.true_ns_at(tsc); }, ServoConfig{});
  const ClockFollower::Update u = f.update(kSec);
  EXPECT_EQ(u.servo.action, ServoAction::kPanic);
  EXPECT_EQ(c.frequency_sets(), 0);
  EXPECT_EQ(c.steps(), 0);
  // With no panic threshold (as for a PHC that starts at 1970) it is stepped.
  ServoConfig cfg;
  cfg.panic_threshold_ns = 0;
  ClockFollower g(c, [&c](uint64_t tsc) { return c.true_ns_at(tsc); }, cfg);
  const ClockFollower::Update v = g.update(kSec);
  EXPECT_TRUE(v.stepped);
  EXPECT_NEAR(c.error_ns(), 0, 1);
}

TEST(Follower, FollowerLimitIsTheTargetsWhenLower) {
  SimulatedClockParams p = noiseless(0, 0);
  p.max_frequency_ppb = 100'000;
  SimulatedClock c(p);
  ClockFollower f(c, [&c](uint64_t tsc) { return c.true_ns_at(tsc); }, ServoConfig{});
  EXPECT_DOUBLE_EQ(f.max_frequency_ppb(), 100'000);
  EXPECT_DOUBLE_EQ(f.servo().config().max_frequency_ppb, 100'000);
  p.max_frequency_ppb = 0;  // a PHC with max_adj 0
  SimulatedClock d(p);
  ClockFollower g(d, [&d](uint64_t tsc) { return d.true_ns_at(tsc); }, ServoConfig{});
  const ClockFollower::Update u = g.update(kSec);
  EXPECT_FALSE(u.ok);
  EXPECT_NE(u.err.find("no frequency corrections"), std::string::npos) << u.err;
}

// A driver whose calls can be made to fail, around a SimulatedClock.
class FlakyClock final : public ClockDriver {
 public:
  explicit FlakyClock(SimulatedClock& c) : c_(c) {}
  std::string name() const override { return "flaky"; }
  bool read_ns(int64_t& ns, std::string& err) override { return c_.read_ns(ns, err); }
  bool cross_timestamp(ClockReading& out, std::string& err) override {
    if (fail_read) {
      err = "flaky: read failed";
      return false;
    }
    return c_.cross_timestamp(out, err);
  }
  bool set_frequency_ppb(double ppb, std::string& err) override {
    if (fail_freq) {
      err = "flaky: frequency failed";
      return false;
    }
    return c_.set_frequency_ppb(ppb, err);
  }
  bool step_ns(int64_t d, std::string& err) override {
    if (fail_step) {
      err = "flaky: step failed";
      return false;
    }
    return c_.step_ns(d, err);
  }
  double max_frequency_ppb() const override { return c_.max_frequency_ppb(); }
  bool fail_read = false, fail_freq = false, fail_step = false;

 private:
  SimulatedClock& c_;
};

TEST(Follower, FailuresAreReportedAndAccountedFor) {
  SimulatedClock c(noiseless(-10'000, 0));
  FlakyClock k(c);
  ServoConfig cfg = known_frequency();
  cfg.stepout_samples = 1;  // step at the first offset beyond the threshold
  ClockFollower f(k, [&c](uint64_t tsc) { return c.true_ns_at(tsc); }, cfg);
  k.fail_read = true;
  ClockFollower::Update u = f.update(kSec);
  EXPECT_FALSE(u.ok);
  EXPECT_EQ(u.err, "flaky: read failed");
  EXPECT_EQ(f.servo().state(), ServoState::kFrequencySet);  // no sample taken
  k.fail_read = false;
  ASSERT_TRUE(f.update(kSec).ok);  // slew 10 us at 10 ppm
  // The next frequency setting fails: the kernel runs on at 10 ppm, and
  // the follower knows it.
  c.advance_ns(kSec);
  k.fail_freq = true;
  u = f.update(kSec);
  EXPECT_FALSE(u.ok);
  EXPECT_EQ(u.err, "flaky: frequency failed");
  EXPECT_NEAR(u.applied_ppb, 10'000, 1e-6);
  k.fail_freq = false;
  c.advance_ns(kSec);  // ran over by 10 us
  u = f.update(kSec);
  ASSERT_TRUE(u.ok) << u.err;
  EXPECT_EQ(u.offset_ns, -10'000);
  EXPECT_EQ(u.pending_ns, -10'000);
  EXPECT_EQ(u.predicted_ns, 0);
  c.advance_ns(kSec);
  EXPECT_NEAR(c.error_ns(), 0, 1e-3);
  // A failed step: reported, the servo restarts, the next update steps.
  c.step_ns(-300'000'000, u.err);
  k.fail_step = true;
  u = f.update(kSec);
  EXPECT_FALSE(u.ok);
  EXPECT_EQ(u.servo.action, ServoAction::kStep);
  EXPECT_FALSE(u.stepped);
  k.fail_step = false;
  c.advance_ns(kSec);
  u = f.update(kSec);
  EXPECT_TRUE(u.ok) << u.err;
  EXPECT_TRUE(u.stepped);
  EXPECT_NEAR(c.error_ns(), 0, 1);
}

}  // namespace
}  // namespace ntp::hwclock
