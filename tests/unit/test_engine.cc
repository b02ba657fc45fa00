// Engine (control/ntp/engine.h): what the system process publishes when it
// has nothing to follow, the local clock's own state as the reference
// (refclock_master), who may mobilise a passive association and for how
// long, kiss codes, ports, and a reload (reconfigure). The closed loops are
// in tests/sim/test_engine_sim.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "control/ntp/engine.h"
#include "crypto/mac.h"
#include "proto/ntp_time.h"
#include "tests/support/test_seed.h"

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

// ------------------------------------------------------------ packets in and out

constexpr int64_t kS = 1'000'000'000;
constexpr int64_t kStart = 1'700'000'000 * kS;
constexpr uint32_t kOwn = 0x0A000001;     // 10.0.0.1
constexpr uint32_t kServer = 0x0A000002;  // a [[server]]
constexpr uint32_t kPeer = 0x0A000003;    // a [[peer]]
constexpr uint32_t kPeerNet = 0x0A010000; // access.peer = 10.1.0.0/16
constexpr uint32_t kOutside = 0xC0000200; // 192.0.2.0, nobody's

EngineConfig lab(std::vector<AssocConfig> assocs) {
  EngineConfig c;
  c.associations = std::move(assocs);
  c.own_addresses = {kOwn};
  c.access = proto::AccessTable({{kPeerNet, 16, proto::AccessClass::kPeer}}, proto::AccessClass::kLimited);
  c.max_dynamic_sessions = 10;
  c.passive_minpoll_log2 = 4;
  c.passive_maxpoll_log2 = 8;
  c.passive_timeout_ns = 300 * kS;
  c.precision_log2 = -20;
  return c;
}

AssocConfig server(uint32_t address, AssocMode mode = AssocMode::kClient) {
  AssocConfig a;
  a.address = address;
  a.mode = mode;
  a.minpoll_log2 = 4;
  a.maxpoll_log2 = 6;
  return a;
}

proto::RxPacket rx_packet(const proto::NtpHeader& h, uint32_t src, uint16_t src_port, uint16_t dst_port,
                          int64_t rx_ns) {
  proto::RxPacket p{};
  p.rx_time_ns = rx_ns;
  p.src_ip = src;
  p.dst_ip = kOwn;
  p.src_port = src_port;
  p.dst_port = dst_port;
  p.len = proto::kHeaderLen;
  proto::write_header(h, p.payload);
  return p;
}

// A spoofed symmetric active packet (origin zero, the first of an exchange).
proto::NtpHeader mode1(int8_t poll_log2, int64_t t) {
  proto::NtpHeader h;
  h.leap = proto::Leap::kNone;
  h.mode = proto::Mode::kSymmetricActive;
  h.stratum = 2;
  h.poll_log2 = poll_log2;
  h.precision_log2 = -20;
  h.refid = 0x0A0000FE;
  h.transmit = proto::ntp_from_unix_ns(t);
  return h;
}

// Runs the engine's timers to t, reporting every packet as sent at once;
// returns what went out.
struct Sent {
  OutPacket o;
  int64_t tx = 0;  // when it left (reported)
};
std::vector<Sent> run_until(Engine& e, int64_t& now, int64_t t, std::vector<Event>* events = nullptr) {
  std::vector<Sent> sent;
  while (std::min(e.next_timer_ns(), t) > now || now < t) {
    now = std::max(now + 1, std::min(e.next_timer_ns(), t));
    EngineOutput out;
    e.on_timer(now, out);
    for (const OutPacket& o : out.packets) {
      proto::TxReport rep{};
      rep.cookie = o.cookie;
      rep.tx_time_ns = now;
      EngineOutput more;
      e.on_tx_report(rep, now, more);
      sent.push_back({o, now});
    }
    if (events) events->insert(events->end(), out.events.begin(), out.events.end());
    if (now >= t) break;
  }
  return sent;
}

// The server's answer to our request s.o (sent at s.tx), from its port to
// s.o.src_port unless told otherwise.
proto::RxPacket answer(const Sent& s, int64_t rx_ns, uint16_t to_port = 0) {
  const OutPacket& o = s.o;
  const int64_t tx_ns = s.tx;
  const proto::NtpHeader req = proto::read_header(o.payload.data());
  proto::NtpHeader h;
  h.leap = proto::Leap::kNone;
  h.mode = req.mode == proto::Mode::kClient ? proto::Mode::kServer : proto::Mode::kSymmetricPassive;
  h.stratum = 1;
  h.poll_log2 = req.poll_log2;
  h.precision_log2 = -20;
  h.refid = proto::refid_from_ascii("GPS\0");
  h.reference = proto::ntp_from_unix_ns(rx_ns - kS);
  h.origin = o.stamp_transmit ? proto::ntp_from_unix_ns(tx_ns) : req.transmit;
  h.receive = proto::ntp_from_unix_ns(tx_ns + 100'000);
  h.transmit = proto::ntp_from_unix_ns(tx_ns + 150'000);
  return rx_packet(h, o.dst_ip, o.dst_port, to_port ? to_port : o.src_port, rx_ns);
}

const AssociationState* session_of(const std::vector<AssociationState>& v, uint32_t address) {
  for (const AssociationState& s : v)
    if (s.address == address) return &s;
  return nullptr;
}

size_t count(const std::vector<Event>& v, EventKind k) {
  return static_cast<size_t>(std::count_if(v.begin(), v.end(), [k](const Event& e) { return e.kind == k; }));
}

TEST(EnginePeering, SpoofedMode1FromOutsideThePeerClassMobilisesNothing) {
  // Issue 9: 100 spoofed mode-1 packets with poll 17 filled every dynamic
  // slot. From addresses that may not peer: no association, no packet.
  Engine e(lab({}), test::seed(), kStart);
  int64_t now = kStart;
  for (uint32_t i = 0; i < 100; ++i) {
    EngineOutput out;
    e.on_packet(rx_packet(mode1(17, now), kOutside + i, 123, 123, now), now, out);
    EXPECT_TRUE(out.packets.empty());
    EXPECT_TRUE(out.events.empty());
  }
  EXPECT_EQ(e.associations(), 0u);
  EXPECT_EQ(e.counters().passive_refused, 100u);
  EXPECT_TRUE(run_until(e, now, kStart + 3600 * kS).empty());
}

TEST(EnginePeering, PeerClassMobilisesWithinTheCapAtAClampedPollAndExpiresOnTime) {
  EngineConfig c = lab({});
  Engine e(c, test::seed(), kStart);
  int64_t now = kStart;
  std::vector<Event> events;
  for (uint32_t i = 0; i < 100; ++i) {
    EngineOutput out;
    e.on_packet(rx_packet(mode1(i % 2 ? 17 : -4, now), kPeerNet + 1 + i, 123, 123, now), now, out);
    events.insert(events.end(), out.events.begin(), out.events.end());
  }
  EXPECT_EQ(e.associations(), 10u);  // max_dynamic_sessions
  EXPECT_EQ(count(events, EventKind::kPassiveCreated), 10u);
  for (const Event& ev : events) {
    EXPECT_GE(ev.poll_log2, 4);
    EXPECT_LE(ev.poll_log2, 8);
  }
  // A spoofed poll of 2^-4 s gets at most one packet per 2^4 s to the
  // victim: 1 at once + 300 s / 16 s while it lives.
  const std::vector<Sent> sent = run_until(e, now, kStart + c.passive_timeout_ns, &events);
  for (uint32_t i = 0; i < 10; ++i) {
    const auto n = std::count_if(sent.begin(), sent.end(), [&](const Sent& s) { return s.o.dst_ip == kPeerNet + 1 + i; });
    EXPECT_LE(n, 1 + 300 / 16 + 1) << i;
    EXPECT_GE(n, 1) << i;
  }
  EXPECT_EQ(e.associations(), 10u);  // not yet: the timeout is in seconds, not the peer's polls
  run_until(e, now, kStart + c.passive_timeout_ns + 2 * kS, &events);
  EXPECT_EQ(e.associations(), 0u);
  EXPECT_EQ(count(events, EventKind::kPassiveRemoved), 10u);
  EXPECT_TRUE(run_until(e, now, kStart + 3600 * kS).empty());
}

TEST(EnginePeering, ClientRequestsUseTheirOwnPortAndOnlyItsAnswersCount) {
  Engine e(lab({server(kServer)}), test::seed(), kStart);
  int64_t now = kStart;
  const std::vector<Sent> sent = run_until(e, now, kStart + 1 * kS);
  ASSERT_EQ(sent.size(), 1u);
  const OutPacket& o = sent[0].o;
  EXPECT_GE(o.src_port, 1024);
  EXPECT_EQ(o.dst_port, 123);
  EngineOutput out;
  // To port 123 (where a spoofer would aim without knowing ours): no answer.
  e.on_packet(answer(sent[0], now + 1'000'000, 123), now + 1'000'000, out);
  EXPECT_EQ(e.counters().bad_port, 1u);
  EXPECT_EQ(session_of(e.sessions(now), kServer)->reach, 0);
  e.on_packet(answer(sent[0], now + 1'000'000), now + 1'000'000, out);
  EXPECT_EQ(session_of(e.sessions(now), kServer)->reach, 1);
  EXPECT_EQ(e.counters().samples, 1u);
}

TEST(EnginePeering, DenyStopsAConfiguredAssociationAndRemovesADynamicOne) {
  Engine e(lab({server(kServer)}), test::seed(), kStart);
  int64_t now = kStart;
  std::vector<Sent> sent = run_until(e, now, kStart + 1 * kS);
  ASSERT_EQ(sent.size(), 1u);
  proto::RxPacket k = answer(sent[0], now + 1'000'000);
  proto::NtpHeader h = proto::read_header(k.payload);
  h.leap = proto::Leap::kUnsynchronized;
  h.stratum = 0;
  h.refid = proto::kKissDeny;
  proto::write_header(h, k.payload);
  EngineOutput out;
  e.on_packet(k, now + 1'000'000, out);
  EXPECT_EQ(count(out.events, EventKind::kKissOfDeath), 1u);
  ASSERT_EQ(count(out.events, EventKind::kPollingStopped), 1u);
  const std::vector<AssociationState> sessions = e.sessions(now);
  const AssociationState* st = session_of(sessions, kServer);
  ASSERT_NE(st, nullptr);  // stays in status, "denied by the server"
  EXPECT_TRUE(st->stopped);
  EXPECT_EQ(st->kiss_code, proto::kKissDeny);
  EXPECT_TRUE(run_until(e, now, kStart + 3600 * kS).empty());

  // A dynamic passive association that gets DENY goes at once.
  Engine d(lab({}), test::seed(), kStart);
  now = kStart;
  out = {};
  d.on_packet(rx_packet(mode1(4, now), kPeerNet + 7, 123, 123, now), now, out);
  ASSERT_EQ(d.associations(), 1u);
  sent = run_until(d, now, kStart + 1);
  ASSERT_EQ(sent.size(), 1u);
  k = answer(sent[0], now + 1'000'000);
  h = proto::read_header(k.payload);
  h.mode = proto::Mode::kSymmetricActive;
  h.stratum = 0;
  h.refid = proto::kKissRstr;
  proto::write_header(h, k.payload);
  out = {};
  d.on_packet(k, now + 1'000'000, out);
  EXPECT_EQ(d.associations(), 0u);
  ASSERT_EQ(count(out.events, EventKind::kPassiveRemoved), 1u);
  EXPECT_EQ(out.events.back().removal, Removal::kKiss);
}

TEST(EnginePeering, SpoofedOriginZeroPacketsLeaveTheRealPeerAlone) {
  // The attack: origin-0 mode-2 packets from the real peer's
  // address, stratum 1, another refid, between its real answers at 2 Hz.
  Engine e(lab({server(kPeer, AssocMode::kSymmetricActive)}), test::seed(), kStart);
  int64_t now = kStart;
  uint64_t spoofs = 0;
  // 12 polls of 2^4 s, a spoof every 0.5 s; each of our packets answered
  // 1 ms later.
  for (int64_t t = kStart + kS / 2; t < kStart + 12 * 16 * kS; t += kS / 2) {
    EngineOutput out;
    for (const Sent& p : run_until(e, now, t))
      if (p.o.dst_ip == kPeer) e.on_packet(answer(p, p.tx + 1'000'000), p.tx + 1'000'000, out);
    proto::NtpHeader sp = mode1(-4, t + 7);
    sp.mode = proto::Mode::kSymmetricPassive;
    sp.stratum = 2;
    sp.leap = proto::Leap::kInsert;
    sp.refid = proto::refid_from_ascii("EVIL");
    sp.root_dispersion = proto::short_from_ns(0);
    e.on_packet(rx_packet(sp, kPeer, 123, 123, t + 10), t + 10, out);
    spoofs++;
  }
  const std::vector<AssociationState> sessions = e.sessions(now);
  const AssociationState* st = session_of(sessions, kPeer);
  ASSERT_NE(st, nullptr);
  EXPECT_GT(spoofs, 300u);
  EXPECT_EQ(st->reach, 0xFF);
  EXPECT_EQ(st->wire_stratum, 1);  // the real peer's (the spoofs say 2)
  EXPECT_EQ(st->refid, proto::refid_from_ascii("GPS\0"));
  EXPECT_EQ(st->leap, 0);
  EXPECT_EQ(st->peer_poll_log2, 4);
  EXPECT_EQ(st->unfit, Unfit::kNone);
  EXPECT_GE(e.counters().samples, 10u);
}

TEST(EngineReload, KeepsUnchangedAssociationsAddsAndRemovesTheRest) {
  EngineConfig c = lab({server(kServer), server(kPeer, AssocMode::kSymmetricActive)});
  Engine e(c, test::seed(), kStart);
  int64_t now = kStart;
  // One exchange with the server, and a passive peer from 10.1/16.
  std::vector<Sent> sent = run_until(e, now, kStart + 1 * kS);
  EngineOutput out;
  for (const Sent& p : sent)
    if (p.o.dst_ip == kServer) e.on_packet(answer(p, now + 1'000'000), now + 1'000'000, out);
  e.on_packet(rx_packet(mode1(4, now), kPeerNet + 9, 123, 123, now + 2'000'000), now + 2'000'000, out);
  ASSERT_EQ(e.associations(), 3u);
  ASSERT_EQ(session_of(e.sessions(now), kServer)->reach, 1);

  // The server stays as it was, the peer's options change (so it is
  // replaced), a new server comes, and 10.1/16 may no longer peer.
  EngineConfig next = c;
  next.associations[1].maxpoll_log2 = 8;
  next.associations.push_back(server(0x0A000004));
  next.access = proto::AccessTable(proto::AccessClass::kLimited);
  out = {};
  e.reconfigure(next, now + 3'000'000, out);
  EXPECT_EQ(e.associations(), 3u);
  EXPECT_EQ(session_of(e.sessions(now), kServer)->reach, 1);  // kept, with its state
  EXPECT_EQ(session_of(e.sessions(now), kPeerNet + 9), nullptr);
  ASSERT_NE(session_of(e.sessions(now), 0x0A000004), nullptr);
  EXPECT_EQ(count(out.events, EventKind::kAssociationRemoved), 1u);
  EXPECT_EQ(count(out.events, EventKind::kAssociationAdded), 2u);
  EXPECT_EQ(count(out.events, EventKind::kPassiveRemoved), 1u);
  EXPECT_EQ(e.config().associations.size(), 3u);
  // The same again changes nothing.
  out = {};
  e.reconfigure(next, now + 4'000'000, out);
  EXPECT_TRUE(out.events.empty());
  EXPECT_EQ(e.associations(), 3u);
  // Now nobody may mobilise from there.
  e.on_packet(rx_packet(mode1(4, now), kPeerNet + 9, 123, 123, now + 5'000'000), now + 5'000'000, out);
  EXPECT_EQ(e.associations(), 3u);
}

TEST(EngineReload, PassiveAssociationsThatMayStillPeerTakeTheNewLimits) {
  EngineConfig c = lab({});
  Engine e(c, test::seed(), kStart);
  int64_t now = kStart;
  EngineOutput out;
  for (uint32_t i = 0; i < 3; ++i) e.on_packet(rx_packet(mode1(8, now), kPeerNet + 1 + i, 123, 123, now), now, out);
  ASSERT_EQ(e.associations(), 3u);
  EXPECT_EQ(e.sessions(now)[0].poll_log2, 8);
  // A narrower range and a shorter timeout; room for two only.
  EngineConfig next = c;
  next.passive_maxpoll_log2 = 5;
  next.passive_timeout_ns = 40 * kS;
  next.max_dynamic_sessions = 2;
  std::vector<Event> events;
  out = {};
  e.reconfigure(next, now, out);
  events = out.events;
  EXPECT_EQ(e.associations(), 2u);
  EXPECT_EQ(count(events, EventKind::kPassiveRemoved), 1u);
  for (const AssociationState& s : e.sessions(now)) EXPECT_EQ(s.poll_log2, 5);
  run_until(e, now, kStart + 40 * kS, &events);
  EXPECT_EQ(e.associations(), 2u);
  run_until(e, now, kStart + 42 * kS, &events);
  EXPECT_EQ(e.associations(), 0u);  // 40 s, not the 300 s they were created with
}

// ------------------------------------------------ endpoints for the dataplane

proto::IpAddress endpoint_address(const proto::AssocEndpoint& e) {
  proto::IpAddress a;
  std::memcpy(a.bytes, e.address, sizeof a.bytes);
  return a;
}

const proto::AssocEndpoint* endpoint_of(const Engine& e, uint32_t address) {
  const proto::AssocEndpoints& t = e.endpoints();
  for (uint32_t i = 0; i < t.count; i++)
    if (endpoint_address(t.entries[i]) == proto::IpAddress::v4(address)) return &t.entries[i];
  return nullptr;
}

// A DENY kiss answering s (ours, to a configured server).
proto::RxPacket deny(const Sent& s, int64_t rx_ns) {
  proto::RxPacket k = answer(s, rx_ns);
  proto::NtpHeader h = proto::read_header(k.payload);
  h.leap = proto::Leap::kUnsynchronized;
  h.stratum = 0;
  h.refid = proto::kKissDeny;
  proto::write_header(h, k.payload);
  return k;
}

TEST(EngineEndpoints, ConfiguredAssociationsAreListedWithTheirPortsPassiveOnesAreNot) {
  Engine e(lab({server(kServer), server(kPeer, AssocMode::kSymmetricActive)}), test::seed(), kStart);
  const uint64_t v0 = e.endpoints_version();
  EXPECT_NE(v0, 0u);  // built at start: generation 0 would forward nothing
  ASSERT_EQ(e.endpoints().count, 2u);
  EXPECT_EQ(e.endpoints_left_out(), 0u);
  int64_t now = kStart;
  const std::vector<Sent> sent = run_until(e, now, kStart + 1 * kS);
  ASSERT_EQ(sent.size(), 2u);
  for (const Sent& p : sent) {
    const proto::AssocEndpoint* ep = endpoint_of(e, p.o.dst_ip);
    ASSERT_NE(ep, nullptr) << p.o.dst_ip;
    EXPECT_EQ(ep->remote_port, p.o.dst_port);
    EXPECT_EQ(ep->local_port, p.o.src_port);  // where its answer must come to
    EXPECT_TRUE(endpoint_address(*ep).is_v4());
    if (p.o.dst_ip == kServer) {
      EXPECT_EQ(ep->kind, proto::kEndpointClient);
      EXPECT_GE(ep->local_port, 1024);
    } else {
      EXPECT_EQ(ep->kind, proto::kEndpointSymmetric);
      EXPECT_EQ(ep->local_port, 123);
    }
  }
  // A dynamic passive association is not the associations' lane's.
  EngineOutput out;
  e.on_packet(rx_packet(mode1(4, now), kPeerNet + 1, 123, 123, now), now, out);
  ASSERT_EQ(e.associations(), 3u);
  run_until(e, now, now + 1 * kS);
  EXPECT_EQ(e.endpoints().count, 2u);
  EXPECT_EQ(endpoint_of(e, kPeerNet + 1), nullptr);
  EXPECT_EQ(e.endpoints_version(), v0);  // nothing of the table changed
}

TEST(EngineEndpoints, AClientsNewPortIsInTheTableBeforeItsFirstPacketLeaves) {
  Engine e(lab({server(kServer)}), test::seed(), kStart);
  int64_t now = kStart;
  uint16_t port = endpoint_of(e, kServer)->local_port;
  uint64_t version = e.endpoints_version();
  int changes = 0, sent = 0;
  // Three times: one answer (reachable), then silence until the reach
  // register is empty and the next request leaves from a new port.
  for (int round = 0; round < 3; round++) {
    bool answered = false;
    for (int poll = 0; poll < 12;) {
      now = std::max(now + 1, e.next_timer_ns());
      EngineOutput out;
      e.on_timer(now, out);
      const proto::AssocEndpoint* ep = endpoint_of(e, kServer);
      ASSERT_NE(ep, nullptr);
      // The table as the shell would publish it right after this step, and
      // before it sends this step's packets.
      for (const OutPacket& o : out.packets) {
        EXPECT_EQ(o.src_port, ep->local_port);
        sent++;
        poll++;
      }
      EXPECT_EQ(e.endpoints_version() != version, ep->local_port != port) << "round " << round << " poll " << poll;
      if (ep->local_port != port) changes++;
      port = ep->local_port;
      version = e.endpoints_version();
      for (const OutPacket& o : out.packets) {
        proto::TxReport rep{};
        rep.cookie = o.cookie;
        rep.tx_time_ns = now;
        EngineOutput more;
        e.on_tx_report(rep, now, more);
        if (!answered) {
          e.on_packet(answer({o, now}, now + 1'000'000), now + 1'000'000, more);
          ASSERT_NE(session_of(e.sessions(now), kServer)->reach, 0);
          answered = true;
        }
      }
    }
  }
  EXPECT_GE(sent, 30);
  // Each reach reset chose a port from 64512: two equal in a row is 1 in
  // 64512, three rounds with fewer than two changes 1 in 10^9.
  EXPECT_GE(changes, 2);
}

TEST(EngineEndpoints, AReloadAddsAndRemovesEntriesAndMovesTheVersion) {
  EngineConfig c = lab({server(kServer), server(kPeer, AssocMode::kSymmetricActive)});
  Engine e(c, test::seed(), kStart);
  const uint64_t v0 = e.endpoints_version();
  const uint16_t server_port = endpoint_of(e, kServer)->local_port;
  EngineConfig next = c;
  next.associations.erase(next.associations.begin() + 1);  // the peer goes
  next.associations.push_back(server(0x0A000004));
  EngineOutput out;
  e.reconfigure(next, kStart + kS, out);
  EXPECT_GT(e.endpoints_version(), v0);
  EXPECT_EQ(e.endpoints().count, 2u);
  EXPECT_EQ(endpoint_of(e, kPeer), nullptr);
  ASSERT_NE(endpoint_of(e, 0x0A000004), nullptr);
  EXPECT_EQ(endpoint_of(e, 0x0A000004)->kind, proto::kEndpointClient);
  EXPECT_EQ(endpoint_of(e, kServer)->local_port, server_port);  // kept, with its port
  // The same file again: nothing moves.
  const uint64_t v1 = e.endpoints_version();
  e.reconfigure(next, kStart + 2 * kS, out);
  EXPECT_EQ(e.endpoints_version(), v1);
  // None left: an empty table, still a new version (the dataplane drops
  // what it forwarded to them).
  e.reconfigure(lab({}), kStart + 3 * kS, out);
  EXPECT_GT(e.endpoints_version(), v1);
  EXPECT_EQ(e.endpoints().count, 0u);
}

TEST(EngineEndpoints, MoreThanTheTableHoldsKeepsTheFirstAndSaysHowManyAreLeftOut) {
  // config allows any number of [[server]] and [[peer]] tables.
  std::vector<AssocConfig> many;
  for (uint32_t i = 0; i < proto::kMaxAssocEndpoints + 44; i++) many.push_back(server(0x0B000000 + i));
  Engine e(lab(many), test::seed(), kStart);
  ASSERT_EQ(e.endpoints().count, proto::kMaxAssocEndpoints);
  EXPECT_EQ(e.endpoints_left_out(), 44u);
  for (uint32_t i = 0; i < proto::kMaxAssocEndpoints; i++)
    EXPECT_EQ(endpoint_address(e.endpoints().entries[i]), proto::IpAddress::v4(0x0B000000 + i)) << i;
  // Fewer again: nobody left out.
  many.resize(10);
  EngineOutput out;
  e.reconfigure(lab(many), kStart + kS, out);
  EXPECT_EQ(e.endpoints().count, 10u);
  EXPECT_EQ(e.endpoints_left_out(), 0u);
}

TEST(EngineReload, AnAssociationStoppedByDenyStartsAgainAtAReload) {
  EngineConfig c = lab({server(kServer)});
  Engine e(c, test::seed(), kStart);
  int64_t now = kStart;
  std::vector<Sent> sent = run_until(e, now, kStart + 1 * kS);
  ASSERT_EQ(sent.size(), 1u);
  const uint64_t v0 = e.endpoints_version();
  EngineOutput out;
  e.on_packet(deny(sent[0], now + 1'000'000), now + 1'000'000, out);
  ASSERT_EQ(count(out.events, EventKind::kPollingStopped), 1u);
  // Stopped: nothing to forward to it any more.
  EXPECT_GT(e.endpoints_version(), v0);
  EXPECT_EQ(endpoint_of(e, kServer), nullptr);
  EXPECT_TRUE(run_until(e, now, now + 600 * kS).empty());

  // The operator reloads the same file: it starts afresh, and says so.
  const uint64_t v1 = e.endpoints_version();
  out = {};
  e.reconfigure(c, now, out);
  ASSERT_EQ(count(out.events, EventKind::kPollingRestarted), 1u);
  EXPECT_EQ(out.events[0].address, kServer);
  EXPECT_EQ(out.events[0].refid, proto::kKissDeny);
  EXPECT_EQ(count(out.events, EventKind::kAssociationRemoved), 0u);
  EXPECT_EQ(count(out.events, EventKind::kAssociationAdded), 0u);
  const AssociationState* st = session_of(e.sessions(now), kServer);
  ASSERT_NE(st, nullptr);
  EXPECT_FALSE(st->stopped);
  EXPECT_EQ(st->kiss_code, 0u);
  EXPECT_GT(e.endpoints_version(), v1);
  ASSERT_NE(endpoint_of(e, kServer), nullptr);
  const uint16_t port = endpoint_of(e, kServer)->local_port;
  sent = run_until(e, now, now + 2 * kS);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].o.src_port, port);
  out = {};
  e.on_packet(answer(sent[0], now + 1'000'000), now + 1'000'000, out);
  EXPECT_EQ(session_of(e.sessions(now), kServer)->reach, 1);
  // A reload of a running one leaves it alone.
  out = {};
  e.reconfigure(c, now + 2'000'000, out);
  EXPECT_TRUE(out.events.empty());
  EXPECT_EQ(session_of(e.sessions(now), kServer)->reach, 1);
}

TEST(EngineReload, NewPassiveLimitsTakeEffectAtTheNextPacket) {
  // Passive associations at poll 2^8 s, each has answered its peer once.
  EngineConfig c = lab({});
  Engine e(c, test::seed(), kStart);
  int64_t now = kStart;
  EngineOutput out;
  for (uint32_t i = 0; i < 2; ++i) e.on_packet(rx_packet(mode1(8, now), kPeerNet + 1 + i, 123, 123, now), now, out);
  std::vector<Sent> sent = run_until(e, now, kStart + 10 * kS);
  ASSERT_EQ(sent.size(), 2u);
  const int64_t first = sent[0].tx;  // the next armed 2^8 s later
  // maxpoll 2^5 s: the next packets leave 32 s after the last, not 256 s.
  EngineConfig fast = c;
  fast.passive_maxpoll_log2 = 5;
  e.reconfigure(fast, now, out);
  sent = run_until(e, now, kStart + 100 * kS);
  ASSERT_FALSE(sent.empty());
  EXPECT_LE(sent[0].tx, first + 32 * kS + kS);
  EXPECT_GE(sent[0].tx, first + 31 * kS);
  // minpoll 2^9 s: not before 512 s after each one's last (their polls'
  // jitter, up to 1/32 of 32 s each, sets them apart by a few seconds).
  std::map<uint32_t, int64_t> last;
  for (const Sent& p : sent) last[p.o.dst_ip] = p.tx;
  ASSERT_EQ(last.size(), 2u);
  const int64_t earliest = std::min(last.begin()->second, std::next(last.begin())->second);
  const int64_t latest = std::max(last.begin()->second, std::next(last.begin())->second);
  EngineConfig slow = c;
  slow.passive_minpoll_log2 = 9;
  slow.passive_maxpoll_log2 = 10;
  slow.passive_timeout_ns = 3600 * kS;
  e.reconfigure(slow, now, out);
  for (const AssociationState& st : e.sessions(now)) EXPECT_EQ(st.poll_log2, 9);
  sent = run_until(e, now, earliest + 511 * kS);
  EXPECT_TRUE(sent.empty());
  sent = run_until(e, now, latest + 513 * kS);
  ASSERT_EQ(sent.size(), 2u);
  for (const Sent& p : sent) EXPECT_GE(p.tx, last[p.o.dst_ip] + 511 * kS);
}

TEST(EngineReload, DroppingTheLocalClockLeavesNothingToServe) {
  Engine e(local_clock(2), 1, kNoonDec31Ns);
  ASSERT_TRUE(e.system_at(kNoonDec31Ns).synchronized);
  EngineConfig next = local_clock(2);
  next.refclock_master.reset();
  EngineOutput out;
  e.reconfigure(next, kNoonDec31Ns + 1, out);
  EXPECT_FALSE(e.system_at(kNoonDec31Ns + 2).synchronized);
  next.refclock_master = 3;
  e.reconfigure(next, kNoonDec31Ns + 3, out);
  const SystemVariables v = e.system_at(kNoonDec31Ns + 4);
  EXPECT_TRUE(v.synchronized);
  EXPECT_EQ(v.stratum, 3);
}

// Symmetric-key authentication (issue 10; RFC 5905 section 9.2).
constexpr uint32_t kServer2 = 0x0A000004;

crypto::MacKey mac_key(uint32_t id, crypto::MacType type, const char* secret) {
  crypto::MacKey k;
  EXPECT_TRUE(crypto::mac_key_init(k, id, type, reinterpret_cast<const uint8_t*>(secret), std::strlen(secret)));
  return k;
}
// Key 1: AES128 (trusted), 2: SHA256 (trusted), 3: AES128, in the file but not trusted.
const crypto::MacKey kKey1 = mac_key(1, crypto::MacType::kAes128Cmac, "0123456789abcdef");
const crypto::MacKey kKey2 = mac_key(2, crypto::MacType::kSha256, "a longer shared secret");
const crypto::MacKey kKey3 = mac_key(3, crypto::MacType::kAes128Cmac, "fedcba9876543210");
// Key 1's ID with another secret: what a peer with the wrong secret signs with.
const crypto::MacKey kKey1Wrong = mac_key(1, crypto::MacType::kAes128Cmac, "0123456789abcdeX");

std::shared_ptr<const crypto::KeyTable> key_table(std::vector<crypto::MacKey> keys) {
  auto t = std::make_shared<crypto::KeyTable>();
  for (const crypto::MacKey& k : keys) EXPECT_TRUE(t->insert(k));
  return t;
}

EngineConfig auth_lab(std::vector<AssocConfig> assocs, bool authenticate) {
  EngineConfig c = lab(std::move(assocs));
  c.keys = key_table({kKey1, kKey2, kKey3});
  c.trusted_keys = {1, 2};
  c.authenticate = authenticate;
  return c;
}

AssocConfig keyed(uint32_t address, uint32_t key_id, AssocMode mode = AssocMode::kClient) {
  AssocConfig a = server(address, mode);
  a.key_id = key_id;
  return a;
}

// p with a MAC field of k (digest_bytes of digest) after its 48 bytes.
proto::RxPacket signed_with(proto::RxPacket p, const crypto::MacKey& k, size_t digest_bytes = 16) {
  p.len = static_cast<uint16_t>(proto::kHeaderLen + crypto::append_mac(k, p.payload, proto::kHeaderLen, digest_bytes));
  return p;
}
proto::RxPacket crypto_nak(proto::RxPacket p) {
  std::memset(p.payload + proto::kHeaderLen, 0, 4);
  p.len = proto::kHeaderLen + 4;
  return p;
}

// The keyed association's packets as the dataplane must sign them.
TEST(EngineAuth, KeyedAssociationsAskForTheirKeysMacAtTheWireLength) {
  AssocConfig v3 = keyed(kServer2, 2);
  v3.version = 3;
  Engine e(auth_lab({keyed(kServer, 1), keyed(kPeer, 2, AssocMode::kSymmetricActive), v3, server(kOutside)}, false),
           test::seed(), kStart);
  int64_t now = kStart;
  const std::vector<Sent> sent = run_until(e, now, kStart + 1 * kS);
  ASSERT_EQ(sent.size(), 4u);
  for (const Sent& s : sent) {
    SCOPED_TRACE(s.o.dst_ip);
    if (s.o.dst_ip == kServer) {
      EXPECT_EQ(s.o.key_id, 1u);
      EXPECT_EQ(s.o.mac_digest_bytes, 16);  // AES128-CMAC, RFC 8573
    } else if (s.o.dst_ip == kPeer) {
      EXPECT_EQ(s.o.key_id, 2u);
      EXPECT_EQ(s.o.mac_digest_bytes, 20);  // SHA256 truncated in NTPv4, as chrony and ntpd
      EXPECT_TRUE(s.o.stamp_transmit);      // the MAC goes on after the late stamp
    } else if (s.o.dst_ip == kServer2) {
      EXPECT_EQ(s.o.key_id, 2u);
      EXPECT_EQ(s.o.mac_digest_bytes, 32);  // NTPv3: the whole digest
      EXPECT_EQ(proto::read_header(s.o.payload.data()).version, 3);
    } else {
      EXPECT_EQ(s.o.key_id, 0u);
      EXPECT_EQ(s.o.mac_digest_bytes, 0);
    }
  }
  // A key the table no longer has: nothing is sent unsigned.
  EngineConfig next = auth_lab({keyed(kServer, 1)}, false);
  next.keys = key_table({kKey2});
  EngineOutput out;
  e.reconfigure(next, now, out);
  EXPECT_TRUE(run_until(e, now, kStart + 100 * kS).empty());
  EXPECT_GT(e.counters().no_key, 0u);
}

TEST(EngineAuth, KeyedClientIgnoresUnauthenticatedForgedAndNakAnswers) {
  Engine e(auth_lab({keyed(kServer, 1)}, false), test::seed(), kStart);
  int64_t now = kStart;
  std::vector<Sent> sent = run_until(e, now, kStart + 1 * kS);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(session_of(e.sessions(now), kServer)->auth, AuthState::kPending);  // nothing verified yet
  const int64_t rx = now + 1'000'000;
  const proto::RxPacket plain = answer(sent[0], rx);
  EngineOutput out;
  e.on_packet(plain, rx, out);                               // no MAC
  e.on_packet(signed_with(plain, kKey1Wrong), rx, out);      // the wrong secret
  e.on_packet(signed_with(plain, kKey3), rx, out);           // a valid MAC of another key
  proto::RxPacket long_mac = signed_with(plain, kKey1);      // key 1, a length AES128 does not have
  std::memset(long_mac.payload + long_mac.len, 0, 4);
  long_mac.len += 4;
  e.on_packet(long_mac, rx, out);
  e.on_packet(crypto_nak(plain), rx, out);                   // the server could not verify ours
  AssociationState st = *session_of(e.sessions(now), kServer);
  EXPECT_EQ(st.reach, 0);
  EXPECT_EQ(e.counters().samples, 0u);
  EXPECT_EQ(e.counters().unauthenticated, 5u);
  EXPECT_EQ(st.auth_missing, 1u);
  EXPECT_EQ(st.auth_bad, 3u);
  EXPECT_EQ(st.crypto_nak, 1u);
  EXPECT_EQ(st.auth_ok, 0u);
  EXPECT_EQ(st.auth, AuthState::kFailed);
  EXPECT_EQ(st.key_id, 1u);
  // The real answer still counts: nothing above touched the exchange.
  e.on_packet(signed_with(plain, kKey1), rx, out);
  st = *session_of(e.sessions(now), kServer);
  EXPECT_EQ(st.reach, 1);
  EXPECT_EQ(e.counters().samples, 1u);
  EXPECT_EQ(st.auth_ok, 1u);
  EXPECT_EQ(st.auth, AuthState::kOk);
  // Its replay is bogus: counted as verified, but it proves nothing now.
  e.on_packet(signed_with(plain, kKey1), rx + 1, out);
  EXPECT_EQ(e.counters().samples, 1u);
  EXPECT_EQ(session_of(e.sessions(now), kServer)->auth_ok, 2u);
}

TEST(EngineAuth, ForgeriesBetweenVerifiedAnswersMoveNeitherReachNorOffset) {
  Engine e(auth_lab({keyed(kServer, 1)}, true), test::seed(), kStart);
  int64_t now = kStart;
  int64_t forged_answering_ours = 0, forged_blind = 0;
  for (int poll = 0; poll < 12; ++poll) {
    EngineOutput out;
    for (const Sent& s : run_until(e, now, now + 16 * kS)) {
      const int64_t rx = s.tx + 1'000'000;
      // A blind spoofer (origin not ours), no MAC, 0.5 s off: before the answer.
      proto::RxPacket blind = answer(s, rx - 10);
      proto::NtpHeader h = proto::read_header(blind.payload);
      h.origin = proto::ntp_from_unix_ns(s.tx - 7);
      h.receive = proto::ntp_from_unix_ns(s.tx + 500'000'000);
      h.transmit = proto::ntp_from_unix_ns(s.tx + 500'000'100);
      proto::write_header(h, blind.payload);
      e.on_packet(blind, rx - 10, out);
      forged_blind++;
      e.on_packet(signed_with(answer(s, rx), kKey1), rx, out);
      // After it, one that does answer ours (an on-path forger), with a bad MAC.
      proto::RxPacket late = answer(s, rx + 10);
      h = proto::read_header(late.payload);
      h.receive = proto::ntp_from_unix_ns(s.tx + 500'000'000);
      proto::write_header(h, late.payload);
      e.on_packet(signed_with(late, kKey1Wrong), rx + 10, out);
      forged_answering_ours++;
    }
  }
  const AssociationState st = *session_of(e.sessions(now), kServer);
  EXPECT_GT(forged_blind, 10);
  EXPECT_EQ(st.reach, 0xFF);
  EXPECT_LT(std::llabs(st.offset_ns), 1'000'000);  // the real 125 us, not 250 ms
  EXPECT_EQ(st.auth_missing, static_cast<uint64_t>(forged_blind));
  EXPECT_EQ(st.auth_bad, static_cast<uint64_t>(forged_answering_ours));
  // The verified answer came first: the later forgery no longer answers
  // our packet (answered already), so the state stays ok and it is selected.
  EXPECT_EQ(st.auth, AuthState::kOk);
  EXPECT_EQ(st.selection, SelectionState::kSystemPeer);
}

TEST(EngineAuth, AuthenticateSelectsOnlyVerifiedAssociationsOfTrustedKeys) {
  // kServer keyed and verified, kServer2 without a key, kPeer keyed with
  // the untrusted key 3 (a configuration the loader refuses; a passive
  // one can be so), all three answering alike.
  for (const bool authenticate : {false, true}) {
    SCOPED_TRACE(authenticate);
    Engine e(auth_lab({keyed(kServer, 1), server(kServer2), keyed(kPeer, 3)}, authenticate), test::seed(), kStart);
    int64_t now = kStart;
    for (int poll = 0; poll < 6; ++poll) {
      EngineOutput out;
      for (const Sent& s : run_until(e, now, now + 16 * kS)) {
        const int64_t rx = s.tx + 1'000'000;
        const proto::RxPacket a = answer(s, rx);
        e.on_packet(s.o.key_id == 0 ? a : signed_with(a, s.o.key_id == 1 ? kKey1 : kKey3), rx, out);
      }
    }
    const std::vector<AssociationState> v = e.sessions(now);
    const AssociationState& one = *session_of(v, kServer);
    const AssociationState& plain = *session_of(v, kServer2);
    const AssociationState& untrusted = *session_of(v, kPeer);
    EXPECT_EQ(one.auth, AuthState::kOk);
    EXPECT_EQ(plain.auth, AuthState::kNone);
    EXPECT_EQ(untrusted.auth, AuthState::kOk);  // it verifies: but its key may not set our time
    EXPECT_NE(untrusted.reach, 0);  // answered, verified
    EXPECT_EQ(untrusted.selection, SelectionState::kUnfit);
    EXPECT_EQ(untrusted.unfit, Unfit::kNotAuthenticated);
    EXPECT_NE(one.selection, SelectionState::kUnfit);
    if (authenticate) {
      EXPECT_EQ(plain.selection, SelectionState::kUnfit);
      EXPECT_EQ(plain.unfit, Unfit::kNotAuthenticated);
      EXPECT_EQ(one.selection, SelectionState::kSystemPeer);
    } else {
      EXPECT_NE(plain.selection, SelectionState::kUnfit);
    }
  }
}

TEST(EngineAuth, WithoutAKeyAMacdAnswerIsUsedUnauthenticated) {
  // As chrony: an association without a key does not check a MAC.
  Engine e(auth_lab({server(kServer)}, false), test::seed(), kStart);
  int64_t now = kStart;
  const std::vector<Sent> sent = run_until(e, now, kStart + 1 * kS);
  ASSERT_EQ(sent.size(), 1u);
  EngineOutput out;
  e.on_packet(signed_with(answer(sent[0], now + 1'000'000), kKey1Wrong), now + 1'000'000, out);
  const AssociationState st = *session_of(e.sessions(now), kServer);
  EXPECT_EQ(st.reach, 1);
  EXPECT_EQ(e.counters().samples, 1u);
  EXPECT_EQ(st.auth, AuthState::kNone);
  EXPECT_EQ(st.auth_bad + st.auth_ok, 0u);
}

TEST(EngineAuth, OnlyAVerifiedTrustedMode1MobilisesAndItAnswersWithItsKey) {
  Engine e(auth_lab({}, true), test::seed(), kStart);
  int64_t now = kStart;
  const proto::RxPacket m1 = rx_packet(mode1(4, now), kPeerNet + 1, 123, 123, now);
  EngineOutput out;
  e.on_packet(m1, now, out);                           // unauthenticated
  e.on_packet(signed_with(m1, kKey1Wrong), now, out);  // forged
  e.on_packet(signed_with(m1, kKey3), now, out);       // verified, not trusted
  e.on_packet(crypto_nak(m1), now, out);
  EXPECT_EQ(e.associations(), 0u);
  EXPECT_EQ(e.counters().passive_unauthenticated, 4u);
  EXPECT_TRUE(out.events.empty());
  e.on_packet(signed_with(m1, kKey2, 20), now, out);
  ASSERT_EQ(e.associations(), 1u);
  EXPECT_EQ(count(out.events, EventKind::kPassiveCreated), 1u);
  const std::vector<Sent> sent = run_until(e, now, now + 1);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].o.key_id, 2u);
  EXPECT_EQ(sent[0].o.mac_digest_bytes, 20);
  AssociationState st = *session_of(e.sessions(now), kPeerNet + 1);
  EXPECT_EQ(st.key_id, 2u);
  EXPECT_EQ(st.auth_ok, 1u);
  EXPECT_EQ(st.auth, AuthState::kPending);  // its creating packet answered nothing of ours
  // From now on it takes only key 2's packets: an unsigned answer is not used.
  proto::RxPacket reply = answer(sent[0], now + 1'000'000);
  proto::NtpHeader h = proto::read_header(reply.payload);
  h.mode = proto::Mode::kSymmetricActive;
  proto::write_header(h, reply.payload);
  e.on_packet(reply, now + 1'000'000, out);
  st = *session_of(e.sessions(now), kPeerNet + 1);
  EXPECT_EQ(st.reach, 0);
  EXPECT_EQ(st.auth_missing, 1u);
  e.on_packet(signed_with(reply, kKey2, 20), now + 1'000'000, out);
  st = *session_of(e.sessions(now), kPeerNet + 1);
  EXPECT_EQ(st.reach, 1);
  EXPECT_EQ(st.auth, AuthState::kOk);

  // Without auth.authenticate an unsigned one mobilises as before, unkeyed;
  // turning it on removes that one and keeps the keyed one.
  EngineConfig off = auth_lab({}, false);
  Engine d(off, test::seed(), kStart);
  now = kStart;
  out = {};
  d.on_packet(rx_packet(mode1(4, now), kPeerNet + 2, 123, 123, now), now, out);
  d.on_packet(signed_with(rx_packet(mode1(4, now), kPeerNet + 3, 123, 123, now), kKey1), now, out);
  d.on_packet(signed_with(rx_packet(mode1(4, now), kPeerNet + 4, 123, 123, now), kKey1Wrong), now, out);
  EXPECT_EQ(d.associations(), 2u);  // a MAC that does not verify mobilises nothing
  EXPECT_EQ(session_of(d.sessions(now), kPeerNet + 2)->key_id, 0u);
  EXPECT_EQ(session_of(d.sessions(now), kPeerNet + 3)->key_id, 1u);
  out = {};
  d.reconfigure(auth_lab({}, true), now, out);
  EXPECT_EQ(d.associations(), 1u);
  EXPECT_NE(session_of(d.sessions(now), kPeerNet + 3), nullptr);
  // A reload whose keys file lost key 1: it goes too.
  EngineConfig lost = auth_lab({}, true);
  lost.keys = key_table({kKey2});
  d.reconfigure(lost, now, out);
  EXPECT_EQ(d.associations(), 0u);
}

TEST(EngineAuth, AReloadWithNewSecretsVerifiesWithThem) {
  Engine e(auth_lab({keyed(kServer, 1)}, false), test::seed(), kStart);
  int64_t now = kStart;
  std::vector<Sent> sent = run_until(e, now, kStart + 1 * kS);
  ASSERT_EQ(sent.size(), 1u);
  EngineOutput out;
  e.on_packet(signed_with(answer(sent[0], now + 1'000'000), kKey1), now + 1'000'000, out);
  ASSERT_EQ(session_of(e.sessions(now), kServer)->reach, 1);
  // Key 1's secret changed in the file: the association stays (its config
  // is the same) and verifies with the new secret only.
  EngineConfig next = auth_lab({keyed(kServer, 1)}, false);
  next.keys = key_table({kKey1Wrong, kKey2});
  e.reconfigure(next, now, out);
  sent = run_until(e, now, now + 16 * kS);
  ASSERT_EQ(sent.size(), 1u);
  const proto::RxPacket a = answer(sent[0], now + 1'000'000);
  e.on_packet(signed_with(a, kKey1), now + 1'000'000, out);
  AssociationState st = *session_of(e.sessions(now), kServer);
  EXPECT_EQ(st.auth_bad, 1u);
  EXPECT_EQ(st.auth, AuthState::kFailed);  // it answered ours: the peer has the old secret
  EXPECT_EQ(st.reach, 2);
  e.on_packet(signed_with(a, kKey1Wrong), now + 1'000'000, out);
  st = *session_of(e.sessions(now), kServer);
  EXPECT_EQ(st.reach, 3);
  EXPECT_EQ(st.auth, AuthState::kOk);
}

// The symmetric peer's answer to our packet s, in mode `mode`, sent
// hold_ns after it arrived at rx_ns - back.
proto::RxPacket peer_answer(const Sent& s, int64_t rx_ns, proto::Mode mode) {
  proto::RxPacket p = answer(s, rx_ns);
  proto::NtpHeader h = proto::read_header(p.payload);
  h.mode = mode;
  h.poll_log2 = 4;
  proto::write_header(h, p.payload);
  return p;
}

TEST(EngineAuth, ReplayedVerifiedPacketsLeaveAFailedPeerFailed) {
  // An on-path recorder replays the peer's verified packets after the
  // peer's secret changed (it crypto-NAKs ours): they verify, but answer
  // nothing of ours (RFC 5905 section 8), so they prove nothing now.
  Engine e(auth_lab({keyed(kPeer, 2, AssocMode::kSymmetricActive)}, true), test::seed(), kStart);
  int64_t now = kStart;
  const proto::RxPacket opening = signed_with(rx_packet(mode1(4, now - 9 * kS), kPeer, 123, 123, now - 9 * kS), kKey2, 20);
  const proto::RxPacket older = signed_with(rx_packet(mode1(4, now - 25 * kS), kPeer, 123, 123, now - 25 * kS), kKey2, 20);
  std::vector<Sent> sent = run_until(e, now, kStart + 1 * kS);
  ASSERT_EQ(sent.size(), 1u);
  const int64_t rx = sent[0].tx + 1'000'000;
  const proto::RxPacket captured = signed_with(peer_answer(sent[0], rx, proto::Mode::kSymmetricPassive), kKey2, 20);
  EngineOutput out;
  e.on_packet(captured, rx, out);
  ASSERT_EQ(session_of(e.sessions(now), kPeer)->auth, AuthState::kOk);
  sent = run_until(e, now, now + 16 * kS);
  ASSERT_EQ(sent.size(), 1u);
  e.on_packet(crypto_nak(peer_answer(sent[0], sent[0].tx + 1'000'000, proto::Mode::kSymmetricPassive)),
              sent[0].tx + 1'000'000, out);
  ASSERT_EQ(session_of(e.sessions(now), kPeer)->auth, AuthState::kFailed);
  e.on_packet(captured, now + 2'000'000, out);  // a duplicate
  e.on_packet(opening, now + 3'000'000, out);   // bogus: ours waits for an answer
  EXPECT_EQ(session_of(e.sessions(now), kPeer)->auth, AuthState::kFailed);
  // Our next packet never leaves (no ARP answer): nothing of ours is
  // outstanding, and an origin-zero packet is a valid start of an exchange.
  while (true) {
    now = e.next_timer_ns();
    EngineOutput t;
    e.on_timer(now, t);
    if (t.packets.empty()) continue;
    proto::TxReport rep{};
    rep.cookie = t.packets[0].cookie;
    rep.status = 1;
    e.on_tx_report(rep, now, t);
    break;
  }
  e.on_packet(older, now + 1'000'000, out);
  const AssociationState st = *session_of(e.sessions(now), kPeer);
  EXPECT_EQ(st.auth, AuthState::kFailed);
  EXPECT_EQ(st.auth_ok, 4u);  // each verified
  EXPECT_EQ(st.crypto_nak, 1u);
  EXPECT_NE(st.selection, SelectionState::kSystemPeer);
}

TEST(EngineAuth, APassiveOneFromAReplayIsNotSelectableTheGenuinePeerIsAnsweredAndSelected) {
  // A recorded verified mode-1 packet of a genuine peer, replayed: it
  // mobilises a passive association (it verifies, and nothing tells a
  // replay from a restarted peer), pending; that answers the genuine
  // peer, whose next packets answer ours and make it ok and selected.
  Engine e(auth_lab({}, true), test::seed(), kStart);
  int64_t now = kStart;
  constexpr uint32_t kGenuine = kPeerNet + 7;
  const proto::RxPacket recorded =
      signed_with(rx_packet(mode1(4, now - 600 * kS), kGenuine, 123, 123, now), kKey2, 20);
  EngineOutput out;
  e.on_packet(recorded, now, out);
  e.on_packet(recorded, now + 1'000, out);  // again: a duplicate, no second association
  ASSERT_EQ(e.associations(), 1u);
  EXPECT_EQ(e.counters().passive_created, 1u);
  std::vector<Sent> sent = run_until(e, now, now + 1);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].o.dst_ip, kGenuine);
  EXPECT_EQ(sent[0].o.key_id, 2u);  // signed: the genuine peer can use it
  AssociationState st = *session_of(e.sessions(now), kGenuine);
  EXPECT_EQ(st.auth, AuthState::kPending);
  EXPECT_EQ(st.reach, 0);
  EXPECT_NE(st.selection, SelectionState::kSystemPeer);
  EXPECT_FALSE(e.state(now).system.synchronized);
  // The genuine peer answers each packet of ours in mode 1, signed.
  bool pending_until_answered = true;
  for (int poll = 0; poll < 8; ++poll) {
    for (const Sent& s : sent) {
      pending_until_answered &= session_of(e.sessions(now), kGenuine)->auth == (poll == 0 ? AuthState::kPending : AuthState::kOk);
      const int64_t rx = s.tx + 1'000'000;
      e.on_packet(signed_with(peer_answer(s, rx, proto::Mode::kSymmetricActive), kKey2, 20), rx, out);
    }
    sent = run_until(e, now, now + 16 * kS);
  }
  EXPECT_TRUE(pending_until_answered);
  st = *session_of(e.sessions(now), kGenuine);
  EXPECT_EQ(st.auth, AuthState::kOk);
  EXPECT_NE(st.reach, 0);
  EXPECT_EQ(st.selection, SelectionState::kSystemPeer);
}

TEST(EngineEndpoints, EachCarriesItsAssociationsKey) {
  // ABI 8: the dataplane checks a keyed peer's MAC before its budget.
  Engine e(auth_lab({keyed(kServer, 1), keyed(kPeer, 2, AssocMode::kSymmetricActive), server(kServer2)}, false),
           test::seed(), kStart);
  ASSERT_EQ(e.endpoints().count, 3u);
  EXPECT_EQ(endpoint_of(e, kServer)->key_id, 1u);
  EXPECT_EQ(endpoint_of(e, kPeer)->key_id, 2u);
  EXPECT_EQ(endpoint_of(e, kServer2)->key_id, 0u);
  // A passive one from a verified mode-1 packet is not listed, keyed or not.
  EngineOutput out;
  int64_t now = kStart;
  e.on_packet(signed_with(rx_packet(mode1(4, now), kPeerNet + 1, 123, 123, now), kKey1), now, out);
  ASSERT_EQ(e.associations(), 4u);
  EXPECT_EQ(endpoint_of(e, kPeerNet + 1), nullptr);
  // A reload that gives the peer another key publishes it.
  const uint64_t v = e.endpoints_version();
  e.reconfigure(auth_lab({keyed(kServer, 1), keyed(kPeer, 1, AssocMode::kSymmetricActive), server(kServer2)}, false),
                now, out);
  EXPECT_GT(e.endpoints_version(), v);
  EXPECT_EQ(endpoint_of(e, kPeer)->key_id, 1u);
  EXPECT_EQ(endpoint_of(e, kServer)->key_id, 1u);
}

}  // namespace
}  // namespace ntp::ctl
