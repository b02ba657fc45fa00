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

  // Only a valid, final model is adopted; the system source re-derives itself.
  Timescale sys(clock_cfg(config::ClockSource::kSystem), kHz);
  run(sys, 160, 160);
  sys.adopt(served, raw);
  EXPECT_NEAR(served_minus_host(sys.published(), raw), 0.0, 2.0);
  Timescale provisional(c, kHz);
  run(provisional, 160, 160);
  proto::ClockModelData p = served;
  p.flags |= proto::kModelProvisional;
  provisional.adopt(p, raw);
  EXPECT_NEAR(served_minus_host(provisional.published(), raw), 3e6, 2.0);
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
