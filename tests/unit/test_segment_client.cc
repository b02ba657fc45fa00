// The control plane's side of the channel (control/segment_client.h): the
// dataplane's heartbeat watch that logs its loss and its return once each.
#include "control/segment_client.h"

#include <gtest/gtest.h>

namespace ntp::ctl {
namespace {

constexpr double kHz = 1e9;
constexpr uint64_t kS = 1'000'000'000ULL;

TEST(HeartbeatWatch, SaysOnceWhenTheBeatStopsAndOnceWhenItReturns) {
  HeartbeatWatch w;
  using C = HeartbeatWatch::Change;
  const uint64_t t0 = 100 * kS;
  // Beating: nothing to say, second after second.
  for (uint64_t s = 0; s < 5; s++) EXPECT_EQ(w.observe(t0 + s * kS, t0 + s * kS + kS / 10, kHz, 3.0), C::kNone);
  EXPECT_FALSE(w.stale());
  // The last beat at t0 + 4 s; 2.9 s later still alive, at 3 s stopped, once.
  const uint64_t last = t0 + 4 * kS;
  EXPECT_EQ(w.observe(last, last + 29 * kS / 10, kHz, 3.0), C::kNone);
  EXPECT_EQ(w.observe(last, last + 3 * kS, kHz, 3.0), C::kStopped);
  EXPECT_DOUBLE_EQ(w.age_s(), 3.0);
  EXPECT_TRUE(w.stale());
  for (uint64_t s = 4; s < 60; s++) EXPECT_EQ(w.observe(last, last + s * kS, kHz, 3.0), C::kNone);
  EXPECT_DOUBLE_EQ(w.age_s(), 59.0);
  // It beats again (the same dataplane resumed, or a new one): back, once.
  const uint64_t again = last + 60 * kS;
  EXPECT_EQ(w.observe(again, again + kS / 2, kHz, 3.0), C::kBack);
  EXPECT_FALSE(w.stale());
  EXPECT_EQ(w.observe(again + kS, again + kS + kS / 2, kHz, 3.0), C::kNone);
}

TEST(HeartbeatWatch, NoBeatYetIsStaleAndABeatAfterOurReadingIsFresh) {
  HeartbeatWatch w;
  EXPECT_EQ(w.observe(0, 5 * kS, kHz, 3.0), HeartbeatWatch::Change::kStopped);
  EXPECT_LT(w.age_s(), 0.0);
  // The dataplane stamped its beat after we read the timebase.
  EXPECT_EQ(w.observe(5 * kS + 10, 5 * kS, kHz, 3.0), HeartbeatWatch::Change::kBack);
  EXPECT_DOUBLE_EQ(w.age_s(), 0.0);
}

}  // namespace
}  // namespace ntp::ctl
