// The clock applier (control/clock_applier.h): the engine's orders carried
// out on the served timescale and on simulated kernel clocks. No real clock
// is steered.
#include "control/clock_applier.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "hwclock/clock_model.h"
#include "hwclock/correction.h"
#include "tests/support/simulated_clock.h"

namespace ntp::ctl {
namespace {

constexpr double kTicksPerNs = 3.0;  // SimulatedClockParams' default TSC
constexpr double kTscHz = kTicksPerNs * 1e9;
constexpr uint64_t kSecTicks = 3'000'000'000ULL;

hwclock::SimulatedClockParams realtime_params(double ppm) {
  hwclock::SimulatedClockParams p;
  p.name = "CLOCK_REALTIME";
  p.frequency_error_ppm = ppm;
  return p;
}

// The served timescale on an exact host clock (the simulation's true time),
// updated once a second for `seconds`.
struct Served {
  config::Clock cfg;
  hwclock::SimulatedClock host{hwclock::SimulatedClockParams{}};
  Timescale ts;
  explicit Served(config::ClockSource source = config::ClockSource::kVirtual)
      : cfg([source] {
          config::Clock c;
          c.source = source;
          return c;
        }()),
        ts(cfg, kTscHz) {}
  void run_to(uint64_t raw) {
    for (uint64_t t = host.now_tsc(); t <= raw; t += kSecTicks) {
      host.advance_to(t);
      ts.update({t, host.true_ns_at(t), 0}, kSecTicks);
    }
    host.advance_to(raw);
  }
  int64_t minus_host_ns(const proto::ClockModelData& m, uint64_t raw) const {
    return hwclock::model_to_ns(m, raw) - host.true_ns_at(raw);
  }
};

TEST(ServoConfig, FromTheClockSection) {
  config::Clock c;
  c.step_threshold_ms = 128;
  c.panic_threshold_s = 1000;
  c.max_frequency_ppm = 250;
  const hwclock::ServoConfig s = servo_config(c);
  EXPECT_EQ(s.step_threshold_ns, 128'000'000);
  EXPECT_EQ(s.panic_threshold_ns, 1'000'000'000'000);
  EXPECT_DOUBLE_EQ(s.max_frequency_ppb, 250'000.0);
  c.panic_threshold_s = 0;  // never panic
  c.step_threshold_ms = 0.5;
  EXPECT_EQ(servo_config(c).panic_threshold_ns, 0);
  EXPECT_EQ(servo_config(c).step_threshold_ns, 500'000);
}

// The served timescale: a step and a slew become new models to publish;
// poll() re-derives the model when the slew is in, and not before.
TEST(ClockApplier, StepAndSlewOfTheServedModelArePublished) {
  Served s;
  s.run_to(10 * kSecTicks);
  ClockApplier applier(s.ts, kTscHz);
  uint64_t raw = s.host.now_tsc();
  ClockApplier::Result r = applier.apply({.step = true, .step_ns = 5'000'000}, raw);
  ASSERT_TRUE(r.publish);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_NEAR(static_cast<double>(s.minus_host_ns(*r.publish, raw)), 5e6, 2);

  // 100 us over 1 s at 100 ppm on a base of +10 ppm.
  r = applier.apply({.freq_ppb = 10'000, .slew_ns = 100'000, .slew_rate_ppb = 100'000}, raw);
  ASSERT_TRUE(r.publish);
  const proto::ClockModelData slewing = *r.publish;
  EXPECT_EQ(slewing.freq_ppb, 110'000);
  EXPECT_FALSE(applier.poll(raw + kSecTicks / 2).publish);  // not in yet
  EXPECT_NEAR(static_cast<double>(s.minus_host_ns(slewing, raw + kSecTicks / 2)), 5e6 + 5e3 + 50e3, 2);
  const uint64_t end = s.ts.slew_end_raw();
  ASSERT_NE(end, 0u);
  EXPECT_NEAR(static_cast<double>(end - raw), static_cast<double>(kSecTicks), 3 * 1e3);  // ~1 s (served time)
  r = applier.poll(end);
  ASSERT_TRUE(r.publish);
  EXPECT_EQ(r.publish->freq_ppb, 10'000);  // back to the base
  EXPECT_EQ(s.ts.slew_end_raw(), 0u);
  EXPECT_NEAR(static_cast<double>(s.minus_host_ns(*r.publish, raw + 2 * kSecTicks)), 5e6 + 100e3 + 20e3, 5);
  EXPECT_FALSE(applier.poll(end + kSecTicks).publish);  // nothing more to do
}

// CLOCK_REALTIME as the discipline's own clock (source = "system"): the
// order goes to the kernel clock, and the served model is not touched.
TEST(ClockApplier, DirectTargetIsSteppedAndSetAndTheModelIsNotPublished) {
  Served s(config::ClockSource::kSystem);
  s.run_to(5 * kSecTicks);
  hwclock::SimulatedClock rt(realtime_params(20));
  rt.advance_to(s.host.now_tsc());
  ClockApplier applier(s.ts, kTscHz);
  applier.steer_directly(rt);
  const double before = rt.error_ns();
  const ClockApplier::Result r = applier.apply({.step = true, .step_ns = -3'000'000, .freq_ppb = -20'000}, rt.now_tsc());
  EXPECT_FALSE(r.publish);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(rt.steps(), 1);
  EXPECT_NEAR(rt.error_ns() - before, -3e6, 1e-6);
  EXPECT_DOUBLE_EQ(rt.frequency_ppb(), -20'000.0);
  EXPECT_FALSE(applier.direct_slewing());
  // A refused frequency is an error to log.
  const ClockApplier::Result bad = applier.apply({.freq_ppb = NAN}, rt.now_tsc());
  ASSERT_EQ(bad.errors.size(), 1u);
  EXPECT_NE(bad.errors[0].find("steering the system clock"), std::string::npos) << bad.errors[0];
}

// How the direct path converted an order before: base + slew rate, left
// running until the next order (the kernel knows nothing of a slew's end).
void old_conversion(hwclock::SimulatedClock& rt, const ClockAdjustment& a) {
  std::string err;
  const double seconds = a.slew_rate_ppb != 0 ? a.slew_ns / a.slew_rate_ppb : 0;
  rt.set_frequency_ppb(a.freq_ppb + (seconds > 0 ? a.slew_rate_ppb : 0), err);
}

// A late update: the engine orders 100 us over its 1 s interval, and the
// next update comes 2 s later. The engine's own account of the order
// (hwclock::Correction) has the slew end after 1 s; the old conversion kept
// slewing and ran 100 us over, which the engine then measures as an offset
// of its own making. The applier ends the slew on time.
TEST(ClockApplier, LateUpdateDoesNotOvershoot) {
  const double osc_ppm = 20;
  const ClockAdjustment a{.freq_ppb = -osc_ppm * 1000 / (1 + osc_ppm * 1e-6),  // cancels the oscillator
                          .slew_ns = 100'000,
                          .slew_rate_ppb = 100'000};
  const uint64_t loop_ticks = kSecTicks / 1000;  // the control loop's pass, about 1 ms
  const uint64_t late_ticks = 2 * kSecTicks;     // the update due after 1 s comes after 2 s

  hwclock::SimulatedClock old_rt(realtime_params(osc_ppm));
  old_rt.advance_to(kSecTicks);
  const double old_before = old_rt.error_ns();
  old_conversion(old_rt, a);
  old_rt.advance_to(kSecTicks + late_ticks);
  const double old_slewed_ns = old_rt.error_ns() - old_before;

  Served s(config::ClockSource::kSystem);
  hwclock::SimulatedClock rt(realtime_params(osc_ppm));
  rt.advance_to(kSecTicks);
  ClockApplier applier(s.ts, kTscHz);
  applier.steer_directly(rt);
  const double before = rt.error_ns();
  EXPECT_TRUE(applier.apply(a, rt.now_tsc()).errors.empty());
  EXPECT_TRUE(applier.direct_slewing());
  EXPECT_NEAR(rt.frequency_ppb(), a.freq_ppb + a.slew_rate_ppb, 1e-9);
  for (uint64_t t = rt.now_tsc(); t <= kSecTicks + late_ticks; t += loop_ticks) {
    rt.advance_to(t);
    EXPECT_TRUE(applier.poll(t).errors.empty());
  }
  const double slewed_ns = rt.error_ns() - before;
  EXPECT_FALSE(applier.direct_slewing());
  EXPECT_NEAR(rt.frequency_ppb(), a.freq_ppb, 1e-9);  // the base alone

  // The engine's account of the order, 2 s on: the whole slew and no more.
  hwclock::Correction engine;
  engine.order(0, 0, a.freq_ppb, a.slew_ns, a.slew_rate_ppb);
  const double engine_slew_ns = engine.value_at(2'000'000'000) - engine.base_ppb() * 2.0;
  std::printf("clock applier: 100 us slew, update 1 s late: old conversion slewed %.1f ns, the applier %.3f ns "
              "(engine's account %.1f ns)\n",
              old_slewed_ns, slewed_ns, engine_slew_ns);
  EXPECT_NEAR(old_slewed_ns, 200e3, 100);  // ran over by the lateness times the rate: 100 us
  // Ended within one pass of the loop: at most rate * 1 ms = 100 ns over.
  EXPECT_NEAR(slewed_ns, engine_slew_ns, 100e3 * 1e-3 + 1);
}

// A new order before the slew is in replaces it (the engine carries what
// was left into the new one): nothing of the old end remains.
TEST(ClockApplier, NewOrderReplacesTheRunningSlew) {
  Served s(config::ClockSource::kSystem);
  hwclock::SimulatedClock rt(realtime_params(0));
  ClockApplier applier(s.ts, kTscHz);
  applier.steer_directly(rt);
  applier.apply({.slew_ns = 1'000'000, .slew_rate_ppb = 100'000}, 0);  // 10 s
  rt.advance_to(kSecTicks);
  applier.apply({.slew_ns = -50'000, .slew_rate_ppb = -50'000}, kSecTicks);  // 1 s
  EXPECT_DOUBLE_EQ(rt.frequency_ppb(), -50'000.0);
  for (uint64_t t = kSecTicks; t <= 12 * kSecTicks; t += kSecTicks / 1000) {
    rt.advance_to(t);
    applier.poll(t);
  }
  EXPECT_DOUBLE_EQ(rt.frequency_ppb(), 0.0);
  EXPECT_NEAR(rt.error_ns(), 100'000 - 50'000, 60);
}

// The followers are driven once a second, only while synchronized.
TEST(ClockApplier, FollowersTickOnceASecond) {
  Served s;
  s.run_to(2 * kSecTicks);
  ClockApplier applier(s.ts, kTscHz);
  hwclock::SimulatedClockParams p;
  p.name = "/dev/ptp-sim";
  p.initial_offset_ns = 37e9 + 2e6;  // TAI, 2 ms off
  p.frequency_error_ppm = 15;
  hwclock::SimulatedClock phc(p);
  phc.advance_to(s.host.now_tsc());
  config::Clock c;
  applier.follow(phc, 37'000'000'000, servo_config(c));
  ASSERT_EQ(applier.steered().size(), 1u);
  EXPECT_TRUE(applier.tick(false).log.empty());
  EXPECT_EQ(phc.frequency_sets(), 0);
  const ClockApplier::Result first = applier.tick(true);
  ASSERT_FALSE(first.log.empty());
  EXPECT_NE(first.log[0].find("following the served time"), std::string::npos) << first.log[0];
  for (int sec = 3; sec < 120; sec++) {
    s.run_to(static_cast<uint64_t>(sec) * kSecTicks);
    phc.advance_to(s.host.now_tsc());
    EXPECT_TRUE(applier.tick(true).errors.empty());
  }
  EXPECT_TRUE(applier.steered()[0]->status().following);
  EXPECT_LT(std::fabs(phc.error_ns() - 37e9), 1000);
}

}  // namespace
}  // namespace ntp::ctl
