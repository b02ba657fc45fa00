// Closed-loop simulations of the control plane's NTP logic (associations,
// clock filter, selection, servo, the bounded-slew discipline) on a
// simulated network with simulated clocks (tests/sim/ntp_world.h). Seeded:
// the seed is printed and TEST_SEED replays it. Bounds are asserted on
// convergence time, RMS offset and frequency error, like chrony's
// test/simulation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>
#include <string>

#include "control/status/snapshot.h"
#include "control/status/words.h"
#include "hwclock/servo.h"
#include "tests/sim/ntp_world.h"
#include "tests/support/test_seed.h"

namespace ntp::sim {
namespace {

constexpr uint32_t kC = 0x0A00011F, kD = 0x0A000120, kE = 0x0A000121, kS2 = 0x0A000122, kS3 = 0x0A000123,
                   kS4 = 0x0A000124;

uint64_t seed() { return ::ntp::test::seed(); }

ctl::AssocConfig assoc(uint32_t address, ctl::AssocMode mode, int minpoll = 0, int maxpoll = 2) {
  ctl::AssocConfig a;
  a.address = address;
  a.mode = mode;
  a.minpoll_log2 = minpoll;
  a.maxpoll_log2 = maxpoll;
  a.iburst = true;
  return a;
}

ctl::EngineConfig node(uint32_t own, std::vector<ctl::AssocConfig> assocs, double step_threshold_ms = 128) {
  ctl::EngineConfig c;
  c.associations = std::move(assocs);
  c.own_addresses = {own};
  c.peer_allow = {{0, 0}};
  c.precision_log2 = -25;
  c.servo.step_threshold_ns = std::llround(step_threshold_ms * 1e6);
  return c;
}

struct Stats {
  double converged_s = 0;  // from then on |error| < 100 us
  double rms_ns = 0, max_ns = 0;
};

// Runs the world to end_s; statistics of `node`'s clock error (ours -
// true) over [window_start_s, end_s].
Stats track(World& w, int node, double end_s, double window_start_s) {
  Stats st;
  double sum2 = 0, last_bad = 0;
  int n = 0;
  w.run(end_s * 1e9, 0.5e9, [&](double t) {
    const double e = w.error_ns(node);
    if (std::fabs(e) >= 100'000) last_bad = t;
    if (t >= window_start_s * 1e9) {
      sum2 += e * e;
      st.max_ns = std::max(st.max_ns, std::fabs(e));
      n++;
    }
  });
  st.converged_s = last_bad / 1e9;
  st.rms_ns = n ? std::sqrt(sum2 / n) : 0;
  return st;
}

// The sessions as /status shows them.
std::vector<status::AssociationStatus> shown(const std::vector<ctl::AssociationState>& v) {
  std::vector<status::AssociationStatus> out;
  for (const auto& s : v) out.push_back(status::association_status(s));
  return out;
}

const status::AssociationStatus* session(const std::vector<status::AssociationStatus>& v, const std::string& a) {
  for (const auto& s : v)
    if (s.address == a) return &s;
  return nullptr;
}

// The events of `kind`, in order.
std::vector<ctl::Event> events_of(const World& w, int node, ctl::EventKind kind) {
  std::vector<ctl::Event> out;
  for (const ctl::Event& e : w.events(node))
    if (e.kind == kind) out.push_back(e);
  return out;
}

// Acceptance 2's shape, against a perfect reference: the default step
// threshold (128 ms), so the 5 ms are slewed out.
TEST(EngineSim, ClientConvergesFrom5msAnd50ppm) {
  World w(seed());
  w.link() = {50'000, 10'000, true};
  w.add_reference(kC, 1);
  SimClock clk;
  clk.offset0_ns = 5e6;
  clk.freq_ppm = 50;
  const int d = w.add_node(kD, node(kD, {assoc(kC, ctl::AssocMode::kClient)}), clk);
  const Stats st = track(w, d, 300, 120);
  std::fprintf(stderr, "  client: |error| < 100 us from %.1f s on; RMS %.1f us, max %.1f us over 120..300 s; "
               "frequency %+.3f ppm (needed -50)\n",
               st.converged_s, st.rms_ns / 1e3, st.max_ns / 1e3, w.engine(d).frequency_ppb() / 1e3);
  EXPECT_EQ(w.engine(d).system().stratum, 2);
  EXPECT_EQ(w.engine(d).system().refid, kC);
  EXPECT_LT(st.converged_s, 60);   // worst of 40 seeds: 45 s
  EXPECT_LT(st.rms_ns, 30'000);    // worst of 40 seeds: 20.5 us
  EXPECT_NEAR(w.engine(d).frequency_ppb(), -50'000, 1'000);
  // The log's story: C became the system peer, then D synchronized to it at stratum 2.
  const auto peers = events_of(w, d, ctl::EventKind::kSystemPeer);
  ASSERT_FALSE(peers.empty());
  EXPECT_EQ(peers[0].address, kC);
  EXPECT_EQ(peers[0].mode, ctl::AssocMode::kClient);
  EXPECT_EQ(peers[0].stratum, 1);
  const auto syncs = events_of(w, d, ctl::EventKind::kSynchronized);
  ASSERT_FALSE(syncs.empty());
  EXPECT_EQ(syncs[0], (ctl::Event{.kind = ctl::EventKind::kSynchronized, .address = kC, .stratum = 2}));
  EXPECT_TRUE(events_of(w, d, ctl::EventKind::kStep).empty());  // 5 ms is below the step threshold
}

// The seed as deploy/seed runs it (1 ms step threshold on D and E).
// What /status says of the discipline (Engine::state, worded by status) is
// the servo's own state in the servo's words at every step of a run, except
// that a local clock at refclock_master counts as synchronized from the start.
TEST(EngineSim, SyncStateIsTheServosInItsWords) {
  World w(seed() + 6);
  w.add_reference(kC, 1);
  SimClock clk;
  clk.offset0_ns = 2e6;
  clk.freq_ppm = 20;
  const int d = w.add_node(kD, node(kD, {assoc(kC, ctl::AssocMode::kClient)}), clk);
  ctl::EngineConfig local = node(kE, {});
  local.refclock_master = 2;
  const int e = w.add_node(kE, local, SimClock{});
  std::set<std::string> seen;
  w.run(120e9, 0.5e9, [&](double) {
    const ctl::Engine& en = w.engine(d);
    const std::string words = status::sync_state_text(en.state(0).sync_state);
    EXPECT_EQ(words, hwclock::to_string(en.servo_state()));
    seen.insert(words);
    EXPECT_EQ(w.engine(e).state(0).sync_state, ctl::SyncState::kSynchronized);
  });
  EXPECT_EQ(hwclock::to_string(w.engine(e).servo_state()), std::string("clock not set"));
  // The run went through the servo's states, not one of them alone.
  EXPECT_TRUE(seen.count("clock not set")) << seen.size();
  EXPECT_TRUE(seen.count("clock synchronized")) << seen.size();
}

TEST(EngineSim, SeedTopologyStrataRefidsLoopAndConvergence) {
  World w(seed() + 1);
  w.link() = {50'000, 10'000, true};
  w.add_reference(kC, 2);
  SimClock cd, ce;
  cd.offset0_ns = 6.5e6;
  cd.freq_ppm = 35;
  ce.offset0_ns = -4e6;
  ce.freq_ppm = -28;
  const int d = w.add_node(kD, node(kD, {assoc(kC, ctl::AssocMode::kClient)}, 1), cd);
  const int e = w.add_node(kE, node(kE, {assoc(kD, ctl::AssocMode::kSymmetricActive)}, 1), ce);
  const Stats se = track(w, e, 300, 200);
  std::fprintf(stderr, "  seed: E |error| < 100 us from %.1f s on; E RMS %.1f us over 200..300 s; D error %.1f us\n",
               se.converged_s, se.rms_ns / 1e3, w.error_ns(d) / 1e3);
  EXPECT_EQ(w.engine(d).system().stratum, 3);
  EXPECT_EQ(w.engine(d).system().refid, kC);
  EXPECT_EQ(w.engine(e).system().stratum, 4);
  EXPECT_EQ(w.engine(e).system().refid, kD);
  const auto sessions = shown(w.engine(d).sessions(0));
  const auto* s = session(sessions, "10.0.1.33");
  ASSERT_NE(s, nullptr) << "D has no session for E";
  EXPECT_EQ(s->mode, "symmetric passive");
  EXPECT_FALSE(s->configured);
  EXPECT_EQ(s->selection, "loop: its reference is us");
  // E measures its frequency against a D that is still settling; the worst
  // of 40 seeds took 155 s.
  EXPECT_LT(se.converged_s, 200);
  EXPECT_LT(se.rms_ns, 40'000);  // worst of 40 seeds: 23.6 us
}

// With the default step threshold D slews its 6.5 ms out at up to 500 ppm
// while E, following D, measures its frequency: E converges, later.
TEST(EngineSim, CascadeBehindASlewingUpstreamConverges) {
  World w(seed() + 2);
  w.link() = {50'000, 10'000, true};
  w.add_reference(kC, 2);
  SimClock cd, ce;
  cd.offset0_ns = 6.5e6;
  cd.freq_ppm = 35;
  ce.offset0_ns = -4e6;
  ce.freq_ppm = -28;
  w.add_node(kD, node(kD, {assoc(kC, ctl::AssocMode::kClient)}), cd);
  const int e = w.add_node(kE, node(kE, {assoc(kD, ctl::AssocMode::kSymmetricActive)}), ce);
  const Stats se = track(w, e, 600, 480);
  std::fprintf(stderr, "  cascade (slewing D): E |error| < 100 us from %.1f s on; RMS %.1f us over 480..600 s\n",
               se.converged_s, se.rms_ns / 1e3);
  EXPECT_LT(se.converged_s, 450);
  EXPECT_LT(se.rms_ns, 30'000);
}

// chronyd's `peer X minpoll 0 maxpoll 0` against an appliance with no
// associations configured (tests/integration/test_chrony.py): the
// appliance's dynamic passive association samples every second, and its
// discipline must run at that rate, not at the default system poll (2^6 s,
// which held the frequency measurement and the popcorn gate at minutes).
TEST(EngineSim, PassiveOnlyNodeFollowsItsActivePeer) {
  World w(seed() + 5);
  w.link() = {50'000, 10'000, true};
  ctl::EngineConfig a = node(kC, {assoc(kD, ctl::AssocMode::kSymmetricActive, 0, 0)});
  a.refclock_master = 1;
  w.add_node(kC, a, SimClock{});
  SimClock cd;
  cd.offset0_ns = 2e6;
  const int d = w.add_node(kD, node(kD, {}), cd);
  double synchronized_s = -1;
  w.run(120e9, 0.5e9, [&](double t) {
    if (synchronized_s < 0 && w.engine(d).system().synchronized) synchronized_s = t / 1e9;
  });
  const Stats st = track(w, d, 240, 120);
  std::fprintf(stderr, "  passive only: synchronized %.1f s after start; RMS %.1f us "
               "over 120..240 s\n", synchronized_s, st.rms_ns / 1e3);
  EXPECT_EQ(w.engine(d).system().stratum, 2);
  EXPECT_EQ(w.engine(d).system().refid, kC);
  EXPECT_GT(synchronized_s, 0);
  EXPECT_LT(synchronized_s, 60);
  EXPECT_LT(st.rms_ns, 30'000);
  const auto sessions = shown(w.engine(d).sessions(0));
  const auto* s = session(sessions, "10.0.1.31");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->mode, "symmetric passive");
}

// Three truechimers and a falseticker 20 ms off: the falseticker is never
// selected and the clock follows the majority.
TEST(EngineSim, FalsetickerIsRejected) {
  World w(seed() + 3);
  w.link() = {50'000, 10'000, true};
  w.add_reference(kC, 1);
  w.add_reference(kS2, 1);
  w.add_reference(kS3, 1);
  w.add_reference(kS4, 1);
  w.set_reference_offset(3, 20e6);  // kS4 is 20 ms ahead
  SimClock clk;
  clk.offset0_ns = 3e6;
  clk.freq_ppm = -20;
  const int d = w.add_node(
      kD,
      node(kD, {assoc(kC, ctl::AssocMode::kClient), assoc(kS2, ctl::AssocMode::kClient),
                assoc(kS3, ctl::AssocMode::kClient), assoc(kS4, ctl::AssocMode::kClient)}),
      clk);
  const Stats st = track(w, d, 240, 120);
  const auto sessions = shown(w.engine(d).sessions(0));
  const auto* bad = session(sessions, "10.0.1.36");
  ASSERT_NE(bad, nullptr);
  std::fprintf(stderr, "  falseticker: |error| < 100 us from %.1f s on; RMS %.1f us; 10.0.1.36 is %s\n",
               st.converged_s, st.rms_ns / 1e3, bad->selection.c_str());
  EXPECT_EQ(bad->selection, "falseticker");
  EXPECT_NE(*w.engine(d).system_peer(), 4u);
  // Three survivors combined: the system offset moves as their samples
  // age differently (worst of 40 seeds: 40 us RMS).
  EXPECT_LT(st.converged_s, 90);
  EXPECT_LT(st.rms_ns, 60'000);
}

// The reference goes away: D and E say unsynchronized within a bound, and
// recover when it is back.
TEST(EngineSim, LossAndRecoveryOfTheReference) {
  World w(seed() + 4);
  w.link() = {50'000, 10'000, true};
  const int c = w.add_reference(kC, 2);
  const int d = w.add_node(kD, node(kD, {assoc(kC, ctl::AssocMode::kClient)}, 1), SimClock{});
  const int e = w.add_node(kE, node(kE, {assoc(kD, ctl::AssocMode::kSymmetricActive)}, 1), SimClock{});
  w.run(120e9, 1e9, [](double) {});
  ASSERT_TRUE(w.engine(e).system().synchronized);
  w.set_up(c, false);
  double d_lost = -1, e_lost = -1;
  const double t0 = w.now_ns();
  w.run(t0 + 60e9, 0.5e9, [&](double t) {
    if (d_lost < 0 && !w.engine(d).system().synchronized) d_lost = (t - t0) / 1e9;
    if (e_lost < 0 && !w.engine(e).system().synchronized) e_lost = (t - t0) / 1e9;
  });
  std::fprintf(stderr, "  loss: D unsynchronized after %.1f s, E after %.1f s\n", d_lost, e_lost);
  // Three unanswered polls at maxpoll (4 s) make the source unfit; selection
  // runs every second.
  EXPECT_GT(d_lost, 0);
  EXPECT_LT(d_lost, 3 * 4 + 2);
  EXPECT_GT(e_lost, 0);
  EXPECT_LT(e_lost, 3 * 4 + 2 + 8);
  EXPECT_EQ(w.engine(e).system().stratum, 16);
  // D said why: it lost C, and with it synchronization.
  const auto lost = events_of(w, d, ctl::EventKind::kSystemPeerLost);
  ASSERT_FALSE(lost.empty());
  EXPECT_EQ(lost.back().address, kC);
  const auto unsync = events_of(w, d, ctl::EventKind::kUnsynchronized);
  ASSERT_FALSE(unsync.empty());
  EXPECT_EQ(unsync.back().reason, ctl::UnsyncReason::kNoSelectableSource);
  w.set_up(c, true);
  double back = -1;
  const double t1 = w.now_ns();
  w.run(t1 + 120e9, 0.5e9, [&](double t) {
    if (back < 0 && w.engine(e).system().synchronized && w.engine(e).system().stratum == 4) back = (t - t1) / 1e9;
  });
  std::fprintf(stderr, "  recovery: E at stratum 4 again after %.1f s\n", back);
  EXPECT_GT(back, 0);
  EXPECT_EQ(w.engine(d).system().stratum, 3);
}

}  // namespace
}  // namespace ntp::sim
