// Engine (control/ntp/engine.h): what the system process publishes when it
// has nothing to follow, and the local clock's own state as the reference
// (refclock_master). The closed loops are in tests/sim/test_engine_sim.cc.
#include <gtest/gtest.h>

#include <cmath>

#include "control/ntp/engine.h"

namespace ntp::ctl {
namespace {

constexpr int64_t kNoonDec31Ns = 1'798'718'400'000'000'000;  // 2026-12-31 12:00 UTC, a leap day
constexpr int64_t kNewYear2027Ns = 1'798'761'600'000'000'000;

EngineConfig local_clock(int stratum) {
  EngineConfig c;
  c.refclock_master = stratum;
  c.own_addresses = {0x0A000001};
  c.precision_log2 = -20;  // 954 ns
  return c;
}

const int64_t kPrecisionNs = std::llround(std::ldexp(1e9, -20));

TEST(Engine, BeforeTheFirstSynchronizationItSaysInit) {
  EngineConfig c;
  AssocConfig a;
  a.address = 0x0A000002;
  c.associations = {a};
  Engine e(c, 1, kNoonDec31Ns);
  const SystemVariables v = e.system_at(kNoonDec31Ns + 5'000'000'000);
  EXPECT_FALSE(v.synchronized);
  EXPECT_EQ(v.leap, 3);
  EXPECT_EQ(v.stratum, 16);
  EXPECT_EQ(v.refid, proto::kKissInit);
  EXPECT_EQ(v.leap_ns, 0);
  // On the wire: stratum 0, leap 3, the kiss code.
  const proto::ServerStateData s = make_server_state(v, -20, kNoonDec31Ns, 300);
  EXPECT_EQ(s.synchronized, 0);
  EXPECT_EQ(s.refid, proto::kKissInit);
}

TEST(Engine, UnsynchronizedVariablesCarryTheirKissCode) {
  EXPECT_EQ(unsynchronized_variables().refid, proto::kKissInit);
  const SystemVariables v = unsynchronized_variables(proto::kKissStep);
  EXPECT_EQ(v.refid, proto::kKissStep);
  EXPECT_EQ(v.leap, 3);
  EXPECT_EQ(v.stratum, 16);
  EXPECT_FALSE(v.synchronized);
}

TEST(Engine, LocalClockWithoutItsStateIsTakenAsPerfect) {
  Engine e(local_clock(3), 1, kNoonDec31Ns);
  const SystemVariables v = e.system_at(kNoonDec31Ns + 1'000'000'000);
  EXPECT_TRUE(v.synchronized);
  EXPECT_EQ(v.stratum, 3);
  EXPECT_EQ(v.leap, 0);
  EXPECT_EQ(v.refid, proto::kRefidLocal);
  EXPECT_EQ(v.root_dispersion_ns, kPrecisionNs);
  EXPECT_EQ(v.reference_time_ns, kNoonDec31Ns + 1'000'000'000);
  EXPECT_EQ(e.state(kNoonDec31Ns).sync_state, SyncState::kSynchronized);
}

TEST(Engine, LocalClockRootDispersionIsItsOwnErrorBound) {
  Engine e(local_clock(2), 1, kNoonDec31Ns);
  e.set_local_clock_quality({.synchronized = true, .max_error_ns = 16'000'000}, false);
  SystemVariables v = e.system_at(kNoonDec31Ns);
  EXPECT_TRUE(v.synchronized);
  EXPECT_EQ(v.root_dispersion_ns, 16'000'000);
  EXPECT_EQ(make_server_state(v, -20, kNoonDec31Ns, 300).root_dispersion_ns, 16'000'000);
  // Never below the precision it is read at.
  e.set_local_clock_quality({.synchronized = true, .max_error_ns = 10}, false);
  EXPECT_EQ(e.system_at(kNoonDec31Ns).root_dispersion_ns, kPrecisionNs);
}

TEST(Engine, UnsynchronizedLocalClockIsNotServedUnlessAskedTo) {
  Engine e(local_clock(2), 1, kNoonDec31Ns);
  e.set_local_clock_quality({.synchronized = false, .max_error_ns = 2'000'000}, false);
  SystemVariables v = e.system_at(kNoonDec31Ns);
  EXPECT_FALSE(v.synchronized);
  EXPECT_EQ(v.leap, 3);
  EXPECT_EQ(v.stratum, 16);
  EXPECT_EQ(v.refid, proto::kKissInit);
  EXPECT_NE(e.state(kNoonDec31Ns).sync_state, SyncState::kSynchronized);
  // ntp.local_clock_unsynced = "serve": the configured stratum, its bound.
  e.set_local_clock_quality({.synchronized = false, .max_error_ns = 2'000'000}, true);
  v = e.system_at(kNoonDec31Ns);
  EXPECT_TRUE(v.synchronized);
  EXPECT_EQ(v.stratum, 2);
  EXPECT_EQ(v.leap, 0);
  EXPECT_EQ(v.refid, proto::kRefidLocal);
  EXPECT_EQ(v.root_dispersion_ns, 2'000'000);
  // The host clock synchronized again: served without the fallback.
  e.set_local_clock_quality({.synchronized = true, .max_error_ns = 50'000}, false);
  v = e.system_at(kNoonDec31Ns);
  EXPECT_TRUE(v.synchronized);
  EXPECT_EQ(v.root_dispersion_ns, 50'000);
}

TEST(Engine, LocalClockAnnouncesTheLeapFilesLeapForTheDayItWasGiven) {
  Engine e(local_clock(1), 1, kNoonDec31Ns);
  e.set_file_leap(+1);
  SystemVariables v = e.system_at(kNoonDec31Ns + 1'000'000'000);
  EXPECT_EQ(v.leap, 1);
  EXPECT_EQ(v.leap_sign, 1);
  EXPECT_EQ(v.leap_ns, kNewYear2027Ns);
  EXPECT_EQ(make_server_state(v, -20, kNoonDec31Ns, 300).leap_ns, kNewYear2027Ns);
  // The next day the word is stale until the shell renews it.
  v = e.system_at(kNewYear2027Ns + 1'000'000'000);
  EXPECT_EQ(v.leap, 0);
  EXPECT_EQ(v.leap_ns, 0);
  e.set_file_leap(0);
  EXPECT_EQ(e.system_at(kNoonDec31Ns).leap, 0);
}

TEST(Engine, LeapSmearIsNotAnnounced) {
  EngineConfig c = local_clock(1);
  c.leap_smear = true;
  Engine e(c, 1, kNoonDec31Ns);
  e.set_file_leap(-1);
  const SystemVariables v = e.system_at(kNoonDec31Ns);
  EXPECT_EQ(v.leap, 0);
  EXPECT_EQ(v.leap_ns, 0);
  EXPECT_EQ(v.leap_sign, -1);
}

}  // namespace
}  // namespace ntp::ctl
