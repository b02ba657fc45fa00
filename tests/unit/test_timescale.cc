// The served timescale (control/timescale.h): its clock sources, the
// discipline's corrections on top, and carrying the served clock on across
// a restart of the control plane. Pure: the cross-timestamps are made up.
#include "control/timescale.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

#include "hwclock/clock_model.h"

namespace ntp::ctl {
namespace {

constexpr double kHz = 3e9;
constexpr uint64_t kSecTicks = 3'000'000'000ULL;
constexpr int64_t kT0 = 1'767'225'600'000'000'000;  // 2026-01-01

// An exact host clock: raw / 3 ns from kT0.
int64_t host_at(uint64_t raw) { return kT0 + static_cast<int64_t>(std::llround(static_cast<double>(raw) / 3.0)); }

config::Clock clock_cfg(config::ClockSource source) {
  config::Clock c;
  c.source = source;
  return c;
}

// Updates once a second from raw 1000 up to `seconds`; returns the last model.
proto::ClockModelData run(Timescale& ts, int from_s, int to_s) {
  proto::ClockModelData m{};
  for (int s = from_s; s <= to_s; s++) {
    const uint64_t raw = static_cast<uint64_t>(s) * kSecTicks + 1000;
    m = ts.update({raw, host_at(raw), 100}, kSecTicks);
  }
  return m;
}

uint64_t at_s(double s) { return static_cast<uint64_t>(std::llround(s * static_cast<double>(kSecTicks))) + 1000; }

double served_minus_host(const proto::ClockModelData& m, uint64_t raw) {
  return static_cast<double>(hwclock::model_to_ns(m, raw) - host_at(raw));
}

// Host readings as a cross-timestamp gives them: +-50 ns of noise.
int64_t noisy_host_at(uint64_t raw) { return host_at(raw) + static_cast<int64_t>((raw / 1000 * 7919) % 101) - 50; }

proto::ClockModelData run_noisy(Timescale& ts, int from_s, int to_s) {
  proto::ClockModelData m{};
  for (int s = from_s; s <= to_s; s++) {
    const uint64_t raw = at_s(s);
    m = ts.update({raw, noisy_host_at(raw), 100}, kSecTicks);
  }
  return m;
}

bool same_model(const proto::ClockModelData& a, const proto::ClockModelData& b) {
  return a.raw0 == b.raw0 && a.utc0_ns == b.utc0_ns && a.mult == b.mult && a.freq_ppb == b.freq_ppb &&
         a.flags == b.flags && a.slew_end_raw == b.slew_end_raw && a.base_mult == b.base_mult;
}

// The served clock's rate against the host clock between two readings, ppb.
double rate_vs_host_ppb(const proto::ClockModelData& m1, uint64_t r1, const proto::ClockModelData& m2, uint64_t r2) {
  return (served_minus_host(m2, r2) - served_minus_host(m1, r1)) / (static_cast<double>(host_at(r2) - host_at(r1))) *
         1e9;
}

TEST(Timescale, SystemSourceIsTheHostClock) {
  Timescale ts(clock_cfg(config::ClockSource::kSystem), kHz);
  EXPECT_TRUE(ts.have_source());
  const proto::ClockModelData m = run(ts, 0, 20);
  EXPECT_NEAR(served_minus_host(m, at_s(20.5)), 0.0, 2.0);
  EXPECT_NEAR(static_cast<double>(ts.minus_host_ns(at_s(20.5))), 0.0, 2.0);
  EXPECT_EQ(ts.slew_end_raw(), 0u);
}

// `virtual`: offset_ms off the host clock at the first update, gaining
// frequency_ppm from then on.
TEST(Timescale, VirtualSourceHasTheConfiguredOffsetAndFrequency) {
  config::Clock c = clock_cfg(config::ClockSource::kVirtual);
  c.offset_ms = 7.5;
  c.frequency_ppm = -30;
  Timescale ts(c, kHz);
  EXPECT_TRUE(ts.have_source());
  const proto::ClockModelData m = run(ts, 0, 40);
  // 40.5 s after the epoch (the first update, at raw 1000): -30 ppm of it.
  EXPECT_NEAR(served_minus_host(m, at_s(40.5)), 7.5e6 - 30e-6 * 40.5e9, 5.0);
  EXPECT_NEAR(static_cast<double>(m.freq_ppb), -30'000.0, 1.0);
  EXPECT_NEAR(static_cast<double>(ts.minus_source_ns(at_s(40.5))), 0.0, 1.0);  // no correction yet
}

// A slew: the model runs at base + rate until the slew is in
// (slew_end_raw), where refresh() brings it back to the base without a jump.
TEST(Timescale, AdjustSlewsAndRefreshEndsTheSlew) {
  Timescale ts(clock_cfg(config::ClockSource::kVirtual), kHz);
  run(ts, 0, 10);
  const uint64_t raw = at_s(10);
  const proto::ClockModelData stepped = ts.adjust(2'000'000, 0, 0, 0, raw);
  EXPECT_NEAR(served_minus_host(stepped, raw), 2e6, 2.0);
  EXPECT_EQ(ts.slew_end_raw(), 0u);
  // +20 ppm base, 200 us at 100 ppm on top: 2 s.
  const proto::ClockModelData slewing = ts.adjust(0, 20'000, 200'000, 100'000, raw);
  EXPECT_EQ(slewing.freq_ppb, 120'000);
  EXPECT_NEAR(served_minus_host(slewing, raw), 2e6, 2.0);
  EXPECT_NEAR(served_minus_host(slewing, at_s(11)), 2e6 + 120e3, 2.0);
  const uint64_t end = ts.slew_end_raw();
  EXPECT_NEAR(static_cast<double>(end - raw), 2.0 * static_cast<double>(kSecTicks), 1e3);
  const proto::ClockModelData after = ts.refresh(end);
  EXPECT_EQ(after.freq_ppb, 20'000);
  EXPECT_EQ(ts.slew_end_raw(), 0u);
  // Continuous at the end, and the slew counted once.
  EXPECT_NEAR(served_minus_host(after, end), served_minus_host(slewing, end), 2.0);
  EXPECT_NEAR(served_minus_host(after, at_s(14)), 2e6 + 200e3 + 20e-6 * 4e9, 3.0);
  EXPECT_NEAR(ts.correction_ppb(), 20'000.0, 1e-9);
  EXPECT_NEAR(static_cast<double>(ts.minus_source_ns(at_s(14))), 2e6 + 200e3 + 80e3, 3.0);
  // Updates later keep the order in force.
  const proto::ClockModelData later = run(ts, 11, 20);
  EXPECT_NEAR(served_minus_host(later, at_s(20)), 2e6 + 200e3 + 20e-6 * 10e9, 5.0);
}

// The slewing model carries its end: from slew_end_raw on it runs at the
// base by itself (a dataplane whose control plane died mid-slew stops
// slewing there), and refresh() at or after the end publishes the same
// mapping bit for bit, without the slew.
TEST(Timescale, TheSlewEndsInTheModelAndRefreshKeepsItsMapping) {
  config::Clock c = clock_cfg(config::ClockSource::kVirtual);
  c.frequency_ppm = 13;
  Timescale ts(c, kHz);
  run(ts, 0, 10);
  const uint64_t raw = at_s(10.3);
  // +20 ppm base, -600 us at 300 ppm on top: 2 s.
  const proto::ClockModelData slewing = ts.adjust(0, 20'000, -600'000, 300'000, raw);
  ASSERT_NE(slewing.slew_end_raw, 0u);
  EXPECT_EQ(ts.slew_end_raw(), slewing.slew_end_raw);
  const uint64_t end = slewing.slew_end_raw;
  EXPECT_NEAR(static_cast<double>(end - raw), 2.0 * static_cast<double>(kSecTicks) / 1.000013, 1e3);  // 2 s of the source
  // The rates: base + slew up to the end, the base after it (both on the
  // 13 ppm source).
  EXPECT_NEAR(rate_vs_host_ppb(slewing, raw, slewing, end), (1.000013 * (1 + (20'000 - 300'000) * 1e-9) - 1) * 1e9, 1.0);
  EXPECT_NEAR(rate_vs_host_ppb(slewing, end, slewing, end + 300 * kSecTicks), (1.000013 * 1.00002 - 1) * 1e9, 0.1);
  EXPECT_NEAR(served_minus_host(slewing, end) - served_minus_host(slewing, raw), -600e3 + 2 * (13e3 + 20e3 * 1.000013),
              5.0);
  // refresh() at the end, or late, is the slewing model's mapping from the end on.
  Timescale late = ts;
  const proto::ClockModelData at_end = ts.refresh(end);
  const proto::ClockModelData after_late = late.refresh(end + 5 * kSecTicks);
  for (const proto::ClockModelData* m : {&at_end, &after_late}) {
    EXPECT_EQ(m->slew_end_raw, 0u);
    EXPECT_EQ(m->raw0, end);
    EXPECT_EQ(m->mult, slewing.base_mult);
    EXPECT_NEAR(static_cast<double>(m->freq_ppb), 33'000.0, 1.0);
    for (const uint64_t r : {end, end + 1, end + 7, end + kSecTicks / 3, end + 600 * kSecTicks})
      EXPECT_EQ(hwclock::model_to_ns(*m, r), hwclock::model_to_ns(slewing, r)) << r - end;
  }
  EXPECT_EQ(ts.slew_end_raw(), 0u);
  EXPECT_EQ(late.slew_end_raw(), 0u);
  // The correction's own slew is in there too: the source plus the base.
  EXPECT_NEAR(static_cast<double>(ts.minus_source_ns(at_s(20))) - static_cast<double>(ts.minus_source_ns(end)),
              20e-6 * (static_cast<double>(at_s(20) - end) / 3.0) * 1.000013, 2.0);
  // Without a slew nothing is set.
  const proto::ClockModelData plain = ts.adjust(0, 20'000, 0, 0, at_s(21));
  EXPECT_EQ(plain.slew_end_raw, 0u);
  EXPECT_EQ(plain.base_mult, 0u);
}

// A control plane killed mid-slew and restarted: the model the dataplane
// serves ends its slew by itself, and the restart carries that on exactly,
// before and after the slew's end: its base_mult is the frequency, not the
// slew's rate (which ABI 3, without the end, carried on as a frequency).
TEST(Timescale, AdoptMidSlewKeepsTheSlewsEndAndTakesTheBase) {
  config::Clock c = clock_cfg(config::ClockSource::kVirtual);
  c.frequency_ppm = -20;
  Timescale before(c, kHz);
  run_noisy(before, 0, 30);
  // +20 ppm base, 200 us at 100 ppm on top: in at 32 s.
  const proto::ClockModelData slewing = before.adjust(0, 20'000, 200'000, 100'000, at_s(30));
  ASSERT_NE(slewing.slew_end_raw, 0u);
  const uint64_t end = slewing.slew_end_raw;

  Timescale after(c, kHz * (1 - 7e-6));
  run_noisy(after, 31, 31);
  after.adopt(slewing, at_s(31.2));
  EXPECT_TRUE(same_model(after.published(), slewing));
  EXPECT_EQ(after.published().slew_end_raw, end);
  EXPECT_EQ(after.slew_end_raw(), end);
  // The engine starts from the base (the calibration's 7 ppm off), not base + slew.
  EXPECT_NEAR(after.correction_ppb(), 20'000.0 - 7'000.0, 100.0);
  // Exactly what the dataplane serves, before and at the slew's end...
  for (const double s : {31.2, 31.9, 32.0})
    EXPECT_EQ(hwclock::model_to_ns(after.published(), at_s(s)), hwclock::model_to_ns(slewing, at_s(s))) << s;
  // ...and after it: refresh() there keeps the mapping, as the dataplane does alone.
  const proto::ClockModelData ended = after.refresh(end + 1000);
  EXPECT_TRUE(after.adopting());
  EXPECT_EQ(ended.slew_end_raw, 0u);
  EXPECT_EQ(after.slew_end_raw(), 0u);
  for (const uint64_t r : {end, end + 1000, at_s(40), at_s(70)})
    EXPECT_EQ(hwclock::model_to_ns(ended, r), hwclock::model_to_ns(slewing, r)) << r;
  // Pinned while adopting, then handed over at the base rate.
  for (int s = 32; s < 31 + Timescale::kAdoptUpdates - 1; s++) {
    run_noisy(after, s, s);
    ASSERT_EQ(hwclock::model_to_ns(after.published(), at_s(s + 0.5)), hwclock::model_to_ns(slewing, at_s(s + 0.5)))
        << s;
  }
  const proto::ClockModelData on = run_noisy(after, 31 + Timescale::kAdoptUpdates - 1, 80);
  EXPECT_FALSE(after.adopting());
  const double base_ppb = rate_vs_host_ppb(slewing, end, slewing, at_s(80));
  EXPECT_NEAR(base_ppb, -0.4, 120.0);  // -20 ppm, +20 ppm base, the host tracker's steering
  EXPECT_NEAR(after.correction_ppb(), ((1 + base_ppb * 1e-9) / (1 - 20e-6) - 1) * 1e9, 10.0);
  EXPECT_NEAR(rate_vs_host_ppb(slewing, at_s(33), on, at_s(80)), base_ppb, 10.0);
  EXPECT_NEAR(served_minus_host(on, at_s(80)), served_minus_host(slewing, at_s(80)), 500.0);
}

// Handed over while the adopted model still slews (a long slew): the
// correction carries the rest of the slew to the model's end of it, so the
// served clock goes on as the dataplane would have alone, across that end.
TEST(Timescale, HandOverMidSlewCarriesTheRestOfTheSlew) {
  config::Clock c = clock_cfg(config::ClockSource::kVirtual);
  c.frequency_ppm = 30;
  Timescale before(c, kHz);
  run_noisy(before, 0, 30);
  // -20 ms at 200 ppm: 100 s, in at 130 s.
  const proto::ClockModelData slewing = before.adjust(0, -30'000, -20'000'000, 200'000, at_s(30));
  const uint64_t end = slewing.slew_end_raw;
  ASSERT_NEAR(static_cast<double>(end - at_s(30)), 100.0 * static_cast<double>(kSecTicks) / 1.00003, 1e5);

  Timescale after(c, kHz * (1 + 4e-6));
  run_noisy(after, 40, 40);
  after.adopt(slewing, at_s(40.5));
  const int h = 40 + Timescale::kAdoptUpdates;
  run_noisy(after, 41, h);
  ASSERT_FALSE(after.adopting());
  // The base as the correction, the slew still running, ending where the model's did.
  const double base_ppb = rate_vs_host_ppb(slewing, end, slewing, end + 100 * kSecTicks);
  EXPECT_NEAR(after.correction_ppb(), ((1 + base_ppb * 1e-9) / (1 + 30e-6) - 1) * 1e9, 10.0);
  ASSERT_NE(after.slew_end_raw(), 0u);
  EXPECT_NEAR(static_cast<double>(after.slew_end_raw()) - static_cast<double>(end), 0.0, 1e-3 * kHz);
  // The served time: the dataplane's model, to the trackers' noise, before and after the end.
  for (int s = h + 1; s <= 200; s++) {
    const proto::ClockModelData m = run_noisy(after, s, s);
    if (after.slew_end_raw() && at_s(s) >= after.slew_end_raw()) after.refresh(at_s(s));
    if (s % 10 == 0 || s == 129 || s == 131) {
      EXPECT_NEAR(served_minus_host(after.published(), at_s(s)), served_minus_host(slewing, at_s(s)), 1000.0) << s;
    }
    (void)m;
  }
  EXPECT_EQ(after.slew_end_raw(), 0u);
}

// A restarted control plane adopts the model the dataplane still serves:
// the served time goes on without a jump, at the same rate, and the
// discipline's share of that rate is its correction.
TEST(Timescale, AdoptAfterRestartKeepsTheServedTimeContinuous) {
  config::Clock c = clock_cfg(config::ClockSource::kVirtual);
  c.offset_ms = 3;
  c.frequency_ppm = 10;
  Timescale before(c, kHz);
  run(before, 0, 30);
  before.adjust(-500'000, -12'000, 0, 0, at_s(30));
  const proto::ClockModelData served = run(before, 31, 60);
  ASSERT_TRUE(served.flags & proto::kModelValid);

  Timescale after(c, kHz);  // a new process, 100 s later
  run(after, 160, 160);
  const uint64_t raw = at_s(160);
  after.adopt(served, raw);
  const proto::ClockModelData m = after.published();
  EXPECT_NEAR(static_cast<double>(hwclock::model_to_ns(m, raw) - hwclock::model_to_ns(served, raw)), 0.0, 2.0);
  EXPECT_NEAR(static_cast<double>(m.freq_ppb), static_cast<double>(served.freq_ppb), 1.0);
  EXPECT_NEAR(after.correction_ppb(), -12'000.0, 5.0);
  // And it keeps running on with updates.
  const proto::ClockModelData on = run(after, 161, 170);
  EXPECT_NEAR(static_cast<double>(hwclock::model_to_ns(on, at_s(170)) - hwclock::model_to_ns(served, at_s(170))),
              0.0, 5.0);

  // Only a valid, final model is adopted.
  Timescale provisional(c, kHz);
  run(provisional, 160, 160);
  proto::ClockModelData p = served;
  p.flags |= proto::kModelProvisional;
  provisional.adopt(p, raw);
  EXPECT_NEAR(served_minus_host(provisional.published(), raw), 3e6, 2.0);
}

// The restarted process calibrated its TSC 12 ppm wrong (as a 200 ms
// calibration against CLOCK_MONOTONIC_RAW on a busy host does): it must
// still carry the served clock on at the published rate and phase, not at
// one re-derived from its own first host model.
TEST(Timescale, AdoptCarriesThePublishedRateWhateverThisProcessCalibrated) {
  config::Clock c = clock_cfg(config::ClockSource::kVirtual);
  c.offset_ms = 3;
  c.frequency_ppm = 10;
  Timescale before(c, kHz);
  run_noisy(before, 0, 30);
  before.adjust(-500'000, -12'000, 0, 0, at_s(30));
  const proto::ClockModelData served = run_noisy(before, 31, 60);
  const double served_ppb = rate_vs_host_ppb(served, at_s(60), served, at_s(200));

  Timescale after(c, kHz * (1 + 12e-6));
  run_noisy(after, 160, 160);
  after.adopt(served, at_s(160.3));
  EXPECT_TRUE(after.adopting());
  // The estimate the engine starts from is off by about the calibration's error.
  const double start_ppb = after.correction_ppb();
  EXPECT_GT(std::fabs(start_ppb - -12'000.0), 5'000.0);
  // While the trackers learn the host's rate, the model is the published one, bit for bit.
  for (int s = 161; s < 160 + Timescale::kAdoptUpdates - 2; s++) {
    run_noisy(after, s, s);
    EXPECT_TRUE(same_model(after.published(), served)) << s;
    EXPECT_TRUE(after.adopting());
  }
  const int h = 160 + Timescale::kAdoptUpdates + 2;  // just after the hand-over
  const proto::ClockModelData handed = run_noisy(after, 160 + Timescale::kAdoptUpdates - 2, h);
  EXPECT_FALSE(after.adopting());
  // The correction measured is the one the published model ran with (the
  // first process's -12 ppm and its host tracker's last phase steering),
  // and the engine's frequency plus the bias is that correction.
  const double carried_ppb = ((1 + served_ppb * 1e-9) / (1 + c.frequency_ppm * 1e-6) - 1) * 1e9;
  EXPECT_NEAR(carried_ppb, -12'000.0, 100.0);
  EXPECT_NEAR(after.correction_ppb(), carried_ppb, 10.0);
  EXPECT_NEAR(start_ppb + after.order_bias_ppb(), after.correction_ppb(), 1e-6);
  // Phase: where the published model would have been, to the noise.
  for (double s : {h - 0.5, h + 0.5})
    EXPECT_NEAR(served_minus_host(handed, at_s(s)), served_minus_host(served, at_s(s)), 120.0) << s;
  // Rate against the host: the first process's, within 10 ppb, over the next 100 s.
  const proto::ClockModelData later = run_noisy(after, h + 1, h + 100);
  EXPECT_NEAR(rate_vs_host_ppb(handed, at_s(h), later, at_s(h + 100)), served_ppb, 10.0);
  EXPECT_NEAR(served_minus_host(later, at_s(h + 100)), served_minus_host(served, at_s(h + 100)), 1000.0);
  // An order after the hand-over is the engine's frequency plus the bias.
  after.adjust(0, start_ppb + 1000.0, 0, 0, at_s(h + 100));
  EXPECT_NEAR(after.correction_ppb(), carried_ppb + 1000.0, 10.0);
}

// An order before the hand-over ends the adoption there, continuously.
TEST(Timescale, AnOrderEndsTheAdoption) {
  config::Clock c = clock_cfg(config::ClockSource::kVirtual);
  Timescale before(c, kHz);
  run_noisy(before, 0, 30);
  const proto::ClockModelData served = before.adjust(0, 5'000, 0, 0, at_s(30));
  Timescale after(c, kHz);
  run_noisy(after, 40, 44);
  after.adopt(served, at_s(44));
  const double start_ppb = after.correction_ppb();
  run_noisy(after, 45, 47);
  const proto::ClockModelData pinned = after.published();
  const proto::ClockModelData ordered = after.adjust(0, start_ppb, 0, 0, at_s(47.5));
  EXPECT_FALSE(after.adopting());
  EXPECT_TRUE(same_model(pinned, served));
  EXPECT_NEAR(static_cast<double>(hwclock::model_to_ns(ordered, at_s(47.5)) - hwclock::model_to_ns(pinned, at_s(47.5))),
              0.0, 1.0);
  EXPECT_NEAR(start_ppb + after.order_bias_ppb(), after.correction_ppb(), 1e-6);
  EXPECT_NEAR(after.correction_ppb(), 5'000.0, 100.0);  // 3 s of noisy samples
}

// A real clock as the source and nothing that disciplines the served model:
// the served clock goes back onto the source at the hand-over (to the
// trackers' noise), and the bias cancels the engine's start.
TEST(Timescale, AdoptUndisciplinedRealClockReturnsToTheSource) {
  Timescale before(clock_cfg(config::ClockSource::kSystem), kHz);
  const proto::ClockModelData served = run_noisy(before, 0, 30);
  Timescale after(clock_cfg(config::ClockSource::kSystem), kHz * (1 + 5e-6));
  run_noisy(after, 40, 40);
  after.adopt(served, at_s(40.1), /*disciplined=*/false);
  const double start_ppb = after.correction_ppb();
  EXPECT_GT(std::fabs(start_ppb), 1'000.0);  // the 5 ppm calibration error
  EXPECT_TRUE(same_model(after.published(), served));
  const proto::ClockModelData on = run_noisy(after, 41, 90);
  EXPECT_FALSE(after.adopting());
  EXPECT_NEAR(served_minus_host(on, at_s(90.5)), 0.0, 60.0);
  EXPECT_NEAR(after.correction_ppb(), 0.0, 1e-9);
  EXPECT_NEAR(after.order_bias_ppb(), -start_ppb, 1e-9);
  EXPECT_NEAR(static_cast<double>(after.minus_source_ns(at_s(90.5))), 0.0, 1e-9);
}

// An inserted leap second, stepped: the model serves 23:59:59 twice, then
// the leap is folded into its anchor without changing the served time, the
// frequency or the correction.
TEST(Timescale, InsertedLeapIsServedThenFoldedWithoutAChange) {
  config::Clock c = clock_cfg(config::ClockSource::kVirtual);
  Timescale ts(c, kHz);
  run(ts, 0, 80);
  ts.adjust(0, 2'500, 0, 0, at_s(80));
  const int64_t leap_ns = host_at(at_s(100));  // the midnight, for this test
  EXPECT_TRUE(ts.set_leap(+1, leap_ns, /*smear=*/false, at_s(90)));
  EXPECT_FALSE(ts.set_leap(+1, leap_ns, false, at_s(90)));  // said already
  run(ts, 91, 99);
  const proto::ClockModelData m = ts.refresh(at_s(99.9));
  EXPECT_EQ(m.leap_sign, 1);
  EXPECT_EQ(m.leap_ns, leap_ns);
  EXPECT_EQ(m.leap_smear_ns, 0);
  // 23:59:59.5 and, a second later (at +2.5 ppm), 23:59:59.5 again.
  const int64_t before = hwclock::model_to_ns(m, at_s(99.5));
  EXPECT_NEAR(static_cast<double>(hwclock::model_to_ns(m, at_s(100.5)) - before), 2'500.0, 1.0);
  const double mult_before = static_cast<double>(m.mult), corr_before = ts.correction_ppb();
  // The first derivation past the leap folds it (no update in between: the same line).
  const proto::ClockModelData folded = ts.refresh(at_s(100.2));
  EXPECT_EQ(ts.leaps_folded(), 1u);
  EXPECT_EQ(folded.leap_sign, 0);
  EXPECT_EQ(folded.leap_ns, 0);
  // The served time is the same with the leap folded as with it applied, and so is the rate.
  for (double s : {100.0, 100.5, 101.0, 105.0})
    EXPECT_NEAR(static_cast<double>(hwclock::model_to_ns(folded, at_s(s)) - hwclock::model_to_ns(m, at_s(s))), 0.0,
                1.0)
        << s;
  EXPECT_NEAR(static_cast<double>(folded.mult), mult_before, 1.0);
  EXPECT_DOUBLE_EQ(ts.correction_ppb(), corr_before);
  // In the repeated second the engine still announces the leap (the served
  // time is on the leap day): it is in, and not applied twice.
  EXPECT_FALSE(ts.set_leap(+1, leap_ns, false, at_s(100.5)));
  EXPECT_EQ(ts.published().leap_sign, 0);
  // And it stays a second behind the host clock (which had no leap here), at the corrected rate.
  const proto::ClockModelData later = run(ts, 101, 200);
  EXPECT_NEAR(served_minus_host(later, at_s(200)), -1e9 + 2.5e-6 * 120e9, 5.0);
  EXPECT_NEAR(rate_vs_host_ppb(later, at_s(150), later, at_s(200)), 2'500.0, 1.0);
}

// Said before the leap begins, a leap can be withdrawn; once it has begun
// it is carried through.
TEST(Timescale, ALeapUnderWayIsNotWithdrawn) {
  Timescale ts(clock_cfg(config::ClockSource::kVirtual), kHz);
  run(ts, 0, 10);
  const int64_t leap_ns = host_at(at_s(20));
  EXPECT_TRUE(ts.set_leap(-1, leap_ns, false, at_s(10)));
  EXPECT_TRUE(ts.set_leap(0, 0, false, at_s(11)));
  EXPECT_EQ(ts.published().leap_sign, 0);
  EXPECT_TRUE(ts.set_leap(-1, leap_ns, false, at_s(12)));
  run(ts, 13, 19);
  EXPECT_FALSE(ts.set_leap(0, 0, false, at_s(19.2)));  // 23:59:59 is already skipped
  EXPECT_EQ(ts.published().leap_sign, -1);
  const proto::ClockModelData m = run(ts, 20, 30);
  EXPECT_EQ(ts.leaps_folded(), 1u);
  EXPECT_NEAR(served_minus_host(m, at_s(30)), 1e9, 2.0);
}

// A deleted leap second smeared over 24 h: monotonic throughout, a second
// ahead after, folded at the smear's end; a restart half-way carries the
// smear on exactly.
TEST(Timescale, SmearedLeapAcrossARestart) {
  config::Clock c = clock_cfg(config::ClockSource::kVirtual);
  Timescale before(c, kHz);
  run(before, 0, 10);
  const int64_t leap_ns = host_at(at_s(3600 + 12 * 3600));  // the smear: from 1 h to 25 h
  EXPECT_TRUE(before.set_leap(-1, leap_ns, /*smear=*/true, at_s(10)));
  proto::ClockModelData m = run(before, 11, 12 * 3600);
  EXPECT_EQ(m.leap_smear_ns, hwclock::kSmearWindowNs);
  // 11 h into the smear: 11/24 of a second ahead.
  EXPECT_NEAR(served_minus_host(m, at_s(12 * 3600)), 1e9 * 11.0 / 24.0, 5.0);
  // Killed here; the new process adopts the model mid-smear.
  Timescale after(c, kHz * (1 + 3e-6));
  run(after, 12 * 3600 + 1, 12 * 3600 + 1);
  after.adopt(m, at_s(12 * 3600 + 1.5));
  EXPECT_TRUE(same_model(after.published(), m));
  EXPECT_EQ(after.published().leap_sign, -1);
  int64_t prev = hwclock::model_to_ns(after.published(), at_s(12 * 3600 + 1.5));
  for (int s = 12 * 3600 + 2; s <= 26 * 3600; s++) {
    const proto::ClockModelData x = run(after, s, s);
    const int64_t t = hwclock::model_to_ns(x, at_s(s));
    ASSERT_GT(t - prev, 0) << s;  // monotonic
    prev = t;
  }
  EXPECT_EQ(after.leaps_folded(), 1u);
  EXPECT_EQ(after.published().leap_sign, 0);
  EXPECT_NEAR(served_minus_host(after.published(), at_s(26 * 3600)), 1e9, 100.0);
}

// Which leap the model gets: the engine's for the end of today; when
// smearing, the leap file's from 36 h ahead (the smear starts at noon the
// day before the leap day, when the engine does not announce it yet).
TEST(Timescale, ModelLeapFromTheEngineOrTheFileWhenSmearing) {
  hwclock::LeapTable t;
  const int64_t day_ns = 86'400'000'000'000;
  const int64_t leap_at = kT0 + 181 * day_ns;  // 2026-07-01 00:00 UTC
  t.leaps.push_back({.at_ns = leap_at, .sign = 1, .tai_utc_s = 38});
  t.expires_ns = leap_at + 100 * day_ns;
  // On the leap day the engine says +1: the leap at the end of that day.
  ModelLeap l = model_leap(+1, leap_at - 3'600'000'000'000, false, &t);
  EXPECT_EQ(l.sign, 1);
  EXPECT_EQ(l.leap_ns, leap_at);
  // The day before, at 13:00 UTC: the engine says nothing; stepped, nothing yet.
  const int64_t day_before_13h = leap_at - 11 * 3'600'000'000'000;
  EXPECT_EQ(model_leap(0, day_before_13h, false, &t).sign, 0);
  // Smeared, the file's leap is in the model already (its smear began at noon).
  l = model_leap(0, day_before_13h, true, &t);
  EXPECT_EQ(l.sign, 1);
  EXPECT_EQ(l.leap_ns, leap_at);
  // Two days before: not yet; without a file: the engine's word only.
  EXPECT_EQ(model_leap(0, leap_at - 2 * day_ns, true, &t).sign, 0);
  EXPECT_EQ(model_leap(0, day_before_13h, true, nullptr).sign, 0);
  // A deletion the engine decided (sources' majority) lands at the end of today.
  l = model_leap(-1, kT0 + 10 * day_ns + 5, false, nullptr);
  EXPECT_EQ(l.sign, -1);
  EXPECT_EQ(l.leap_ns, kT0 + 11 * day_ns);
}

// The `phc` source: the served timescale is the PHC less its UTC offset,
// not the host clock; until the PHC has been read, the host stands in.
TEST(Timescale, PhcSourceFollowsThePhcNotTheHost) {
  config::Clock c;
  c.source = config::ClockSource::kPhc;
  c.phc = "/dev/ptp-sim";
  const double hz = 3e9;
  Timescale ts(c, hz);
  EXPECT_FALSE(ts.have_source());
  // Host clock: exact. PHC (already less its UTC offset): 3 ms ahead, +20 ppm.
  const int64_t t0 = 1'767'225'600'000'000'000;
  auto host_at = [&](uint64_t raw) { return t0 + static_cast<int64_t>(std::llround(static_cast<double>(raw) / 3.0)); };
  auto phc_at = [&](uint64_t raw) {
    const double dt = static_cast<double>(raw) / 3.0;
    return t0 + 3'000'000 + static_cast<int64_t>(std::llround(dt * (1 + 20e-6)));
  };
  proto::ClockModelData m{};
  for (int s = 0; s < 40; s++) {
    const uint64_t raw = static_cast<uint64_t>(s) * 3'000'000'000ULL + 1000;
    ts.update_source({raw, phc_at(raw), 100}, 3'000'000'000ULL);
    m = ts.update({raw, host_at(raw), 100}, 3'000'000'000ULL);
  }
  EXPECT_TRUE(ts.have_source());
  const uint64_t raw = 39ULL * 3'000'000'000ULL + 1'500'000'000ULL;  // half a second after the last update
  EXPECT_NEAR(static_cast<double>(hwclock::model_to_ns(m, raw) - phc_at(raw)), 0.0, 10.0);
  EXPECT_NEAR(static_cast<double>(ts.minus_host_ns(raw)), static_cast<double>(phc_at(raw) - host_at(raw)), 10.0);
  EXPECT_NEAR(static_cast<double>(ts.minus_source_ns(raw)), 0.0, 10.0);
}

TEST(Timescale, PhcSourceStandsOnTheHostUntilRead) {
  config::Clock c = clock_cfg(config::ClockSource::kPhc);
  Timescale ts(c, kHz);
  const proto::ClockModelData m = run(ts, 0, 10);
  EXPECT_FALSE(ts.have_source());
  EXPECT_NEAR(served_minus_host(m, at_s(10.5)), 0.0, 2.0);
}

}  // namespace
}  // namespace ntp::ctl
