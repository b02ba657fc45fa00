// control/status/snapshot.h: the snapshot built from a shared segment made
// in memory, the core's state and the control plane's facts.
#include "control/status/snapshot.h"
#include "control/status/status.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>

#include "proto/access.h"
#include "proto/channel_abi.h"
#include "proto/ntp_packet.h"

namespace ntp::status {
namespace {

constexpr uint32_t kC = 0x0A00011F;  // 10.0.1.31
constexpr uint32_t kE = 0x0A000121;  // 10.0.1.33
constexpr double kTscHz = 3e9;

template <size_t N>
void put(char (&dst)[N], const char* s) {
  std::strncpy(dst, s, N);
}

// Two workers, one port, every counter distinct.
std::unique_ptr<proto::SegmentHeader> segment() {
  auto h = std::make_unique<proto::SegmentHeader>();
  h->n_workers = 2;
  h->n_ports = 1;
  h->dataplane_pid = 4242;
  h->dataplane_start_raw.store(1'000);
  h->dataplane_heartbeat_raw.store(100 * static_cast<uint64_t>(kTscHz));
  proto::PortInfo& p = h->ports[0];
  put(p.name, "GigabitEthernet0/1/0");
  put(p.device, "net_af_packet0,iface=veth0");
  put(p.driver, "net_af_packet");
  const uint8_t mac[6] = {0x02, 0, 0, 0, 0x01, 0x32};
  std::memcpy(p.mac, mac, 6);
  p.ipv4 = 0x0A000120;
  p.prefix_len = 24;
  p.ntp_server = 1;
  p.timestamping = proto::kTimestampHardware;
  p.link_up = 1;
  p.link_speed_mbps = 10000;
  p.nic_emulated = 1;
  p.nic_map_valid = 1;
  p.tx_compensation_ns = 250;
  p.nic_clock_mhz.store(1'000'000'123);  // 1 MHz and 0.123 Hz
  p.nic_residual_ps.store(4'500);
  p.nic_rounds.store(60);
  p.nic_outliers.store(2);
  p.nic_restarts.store(1);
  put(p.timestamp_reason, "hardware: the emulated NIC clock");
  for (uint32_t w = 0; w < 2; ++w) {
    proto::WorkerCounters& c = h->workers[w];
    for (size_t i = 0; i < proto::kWorkerCounterCount; ++i)
      (c.*proto::kWorkerCounterFields[i].member).store(1000 * (w + 1) + i);
    for (size_t r = 0; r < proto::kDropReasonCount; ++r) c.drops[r].store(10 * w + r);
    proto::PortTimestampCounters& t = c.timestamps[0];
    t.hardware.store(w == 0 ? 30 : 10);
    t.software.store(5);
    t.rejected.store(w);
    t.hw_minus_sw_sum_ns.store(w == 0 ? -600 : 200);  // mean over the 40: -10 ns
    t.hw_minus_sw_max_ns.store(w == 0 ? 70 : 90);
  }
  return h;
}

ControlFacts facts() {
  ControlFacts f;
  f.sysname = "DeviceD";
  f.version = "0.1.0-test";
  f.clock_source = "virtual";
  f.model.nominal_hz = 2'900'000'000;
  f.model.freq_ppb = 4'587;
  f.precision_log2 = -24;
  f.served_ns = 1'767'225'600'000'001'500;
  f.host_ns = 1'767'225'600'000'000'000;
  f.now_raw = 101 * static_cast<uint64_t>(kTscHz);  // 1 s after the last heartbeat
  f.timebase_hz = kTscHz;
  f.holdover_s = 300;
  f.control_uptime_s = 12.5;
  f.control_pid = 4243;
  f.state_publications = 987;
  f.keys_match = false;
  f.steered_clocks.push_back({"/dev/ptp0", true, -37, 12.5, "clock synchronized", 10, 1, 0});
  return f;
}

ctl::EngineState engine_synchronized_to_c() {
  ctl::EngineState e;
  e.system.leap = 0;
  e.system.stratum = 3;
  e.system.refid = kC;
  e.system.synchronized = true;
  e.system.reference = "10.0.1.31";
  e.system.offset_ns = 12'300;
  e.system.root_delay_ns = 1'234;
  e.system.root_dispersion_ns = 15'258;
  e.system.peer_dispersion_ns = 4'999;
  e.system.reference_time_ns = 1'767'225'590'000'000'000;
  e.sync_state = ctl::SyncState::kSynchronized;
  return e;
}

TEST(Snapshot, SystemFromTheEngineAndTheFacts) {
  const auto h = segment();
  const Status s = make_status(*h, engine_synchronized_to_c(), facts());
  const SystemStatus& y = s.system;
  EXPECT_EQ(y.sysname, "DeviceD");
  EXPECT_EQ(y.version, "0.1.0-test");
  EXPECT_TRUE(y.synchronized);
  EXPECT_EQ(y.leap, 0);
  EXPECT_EQ(y.stratum, 3);
  EXPECT_EQ(y.refid, kC);
  EXPECT_EQ(y.refid_text, "10.0.1.31");
  EXPECT_EQ(y.reference, "10.0.1.31");
  EXPECT_EQ(y.sync_state, "clock synchronized");
  EXPECT_EQ(y.clock_source, "virtual");
  EXPECT_EQ(y.nominal_freq_hz, 2'900'000'000.0);
  EXPECT_DOUBLE_EQ(y.frequency_ppm, 4.587);
  EXPECT_DOUBLE_EQ(y.actual_freq_hz, 2'900'000'000.0 * (1 - 4.587e-6));
  EXPECT_EQ(y.precision_log2, -24);
  EXPECT_EQ(y.clock_offset_ns, 12'300);
  EXPECT_EQ(y.root_delay_ns, 1'234);
  EXPECT_EQ(y.root_dispersion_ns, 15'258);
  EXPECT_EQ(y.peer_dispersion_ns, 4'999);
  EXPECT_EQ(y.reference_time_ns, 1'767'225'590'000'000'000);
  EXPECT_EQ(y.clock_minus_host_ns, 1'500);
  EXPECT_EQ(y.holdover_s, 300);
  EXPECT_EQ(y.control_uptime_s, 12.5);
  EXPECT_NEAR(y.dataplane_uptime_s, 101, 1e-6);
  EXPECT_TRUE(y.dataplane_alive);
  EXPECT_EQ(y.dataplane_pid, 4242);
  EXPECT_EQ(y.control_pid, 4243);
  EXPECT_EQ(y.state_publications, 987u);
  EXPECT_EQ(y.keys_match, std::optional<bool>(false));
  ASSERT_EQ(s.steered_clocks.size(), 1u);
  EXPECT_EQ(s.steered_clocks[0].name, "/dev/ptp0");
}

TEST(Snapshot, UnsynchronizedAndAStaleDataplane) {
  const auto h = segment();
  ctl::EngineState e;
  e.system = ctl::unsynchronized_variables();
  e.sync_state = ctl::SyncState::kClockNotSet;
  ControlFacts f = facts();
  f.now_raw = 104 * static_cast<uint64_t>(kTscHz);  // 4 s after the heartbeat
  const Status s = make_status(*h, e, f);
  EXPECT_FALSE(s.system.synchronized);
  EXPECT_EQ(s.system.stratum, 16);
  EXPECT_EQ(s.system.refid_text, "INIT");
  EXPECT_EQ(s.system.reference, "none");
  EXPECT_EQ(s.system.sync_state, "clock not set");
  EXPECT_FALSE(s.system.dataplane_alive);
  // How long it has been silent, and since when on the host's clock: what
  // `ntpctl status` says of a dead dataplane.
  EXPECT_NEAR(s.system.dataplane_heartbeat_age_s, 4, 1e-9);
  EXPECT_EQ(s.system.dataplane_last_heartbeat_ns, f.host_ns - 4'000'000'000);
  EXPECT_NE(format_status(s).find(" service: NOT SERVING (dataplane down since 23:59:56 UTC Dec 31 2025, 4 s ago"),
            std::string::npos)
      << format_status(s);
}

TEST(Snapshot, DataplaneHeartbeatAgeAndTheRaceWithIt) {
  auto h = segment();
  ControlFacts f = facts();
  Status s = make_status(*h, engine_synchronized_to_c(), f);
  EXPECT_TRUE(s.system.dataplane_alive);
  EXPECT_NEAR(s.system.dataplane_heartbeat_age_s, 1, 1e-9);
  // Just under the limit: alive; at it: down.
  f.now_raw = 100 * static_cast<uint64_t>(kTscHz) + static_cast<uint64_t>(kTscHz * kDataplaneAliveS) - 1;
  EXPECT_TRUE(make_status(*h, engine_synchronized_to_c(), f).system.dataplane_alive);
  f.now_raw += 1;
  EXPECT_FALSE(make_status(*h, engine_synchronized_to_c(), f).system.dataplane_alive);
  // A heartbeat stamped after the control plane read its `now` is fresh
  // (it was 2^64 ticks old, and the dataplane "dead", before).
  f.now_raw = 100 * static_cast<uint64_t>(kTscHz) - 5;
  s = make_status(*h, engine_synchronized_to_c(), f);
  EXPECT_TRUE(s.system.dataplane_alive);
  EXPECT_EQ(s.system.dataplane_heartbeat_age_s, 0);
  // Never a heartbeat: down, and no time to show.
  h->dataplane_heartbeat_raw.store(0);
  s = make_status(*h, engine_synchronized_to_c(), facts());
  EXPECT_FALSE(s.system.dataplane_alive);
  EXPECT_EQ(s.system.dataplane_last_heartbeat_ns, 0);
}

TEST(Snapshot, LeapSecondFromTheClockModel) {
  const auto h = segment();
  ControlFacts f = facts();
  EXPECT_EQ(make_status(*h, engine_synchronized_to_c(), f).system.leap_sign, 0);
  f.model.leap_sign = 1;
  f.model.leap_ns = 1483228800LL * 1'000'000'000;
  f.model.leap_smear_ns = 86400LL * 1'000'000'000;
  const Status s = make_status(*h, engine_synchronized_to_c(), f);
  EXPECT_EQ(s.system.leap_sign, 1);
  EXPECT_EQ(s.system.leap_at_ns, f.model.leap_ns);
  EXPECT_EQ(s.system.leap_smear_ns, f.model.leap_smear_ns);
  EXPECT_NE(format_status(s).find(" leap second: insert 23:59:60 UTC Dec 31 2016, smeared over 24 h"),
            std::string::npos);
  // A stale time without a sign is no announcement.
  f.model.leap_sign = 0;
  EXPECT_EQ(make_status(*h, engine_synchronized_to_c(), f).system.leap_at_ns, 0);
}

TEST(Snapshot, PortsFromTheSegmentSummedOverWorkers) {
  const auto h = segment();
  const Status s = make_status(*h, engine_synchronized_to_c(), facts());
  ASSERT_EQ(s.ports.size(), 1u);
  const PortStatus& p = s.ports[0];
  EXPECT_EQ(p.name, "GigabitEthernet0/1/0");
  EXPECT_EQ(p.device, "net_af_packet0,iface=veth0");
  EXPECT_EQ(p.driver, "net_af_packet");
  EXPECT_EQ(p.mac, "02:00:00:00:01:32");
  EXPECT_EQ(p.address, "10.0.1.32/24");
  EXPECT_TRUE(p.ntp_server);
  EXPECT_EQ(p.timestamping, "hardware");
  EXPECT_EQ(p.timestamp_reason, "hardware: the emulated NIC clock");
  EXPECT_TRUE(p.nic_emulated);
  EXPECT_TRUE(p.nic_map_valid);
  EXPECT_DOUBLE_EQ(p.nic_clock_hz, 1'000'000.123);
  EXPECT_DOUBLE_EQ(p.nic_residual_ns, 4.5);
  EXPECT_EQ(p.nic_rounds, 60u);
  EXPECT_EQ(p.nic_outliers, 2u);
  EXPECT_EQ(p.nic_restarts, 1u);
  EXPECT_EQ(p.tx_compensation_ns, 250);
  EXPECT_EQ(p.hw_timestamps, 40u);
  EXPECT_EQ(p.sw_timestamps, 10u);
  EXPECT_EQ(p.hw_rejected, 1u);
  EXPECT_EQ(p.hw_minus_sw_mean_ns, -10);
  EXPECT_EQ(p.hw_minus_sw_max_ns, 90u);
  EXPECT_TRUE(p.link_up);
  EXPECT_EQ(p.link_speed_mbps, 10000u);
}

TEST(Snapshot, EveryWorkerCounterOfTheTableIsCopied) {
  const auto h = segment();
  const Status s = make_status(*h, engine_synchronized_to_c(), facts());
  ASSERT_EQ(s.workers.size(), 2u);
  for (unsigned w = 0; w < 2; ++w) {
    EXPECT_EQ(s.workers[w].id, w);
    for (size_t i = 0; i < proto::kWorkerCounterCount; ++i)
      EXPECT_EQ(s.workers[w].counter(proto::kWorkerCounterFields[i].key), 1000 * (w + 1) + i)
          << proto::kWorkerCounterFields[i].key;
    for (size_t r = 0; r < proto::kDropReasonCount; ++r) EXPECT_EQ(s.workers[w].drops[r], 10 * w + r);
  }
  EXPECT_EQ(s.workers[1].counter("rx_packets"), 2000u);
  EXPECT_THROW((void)s.workers[0].counter("no_such_counter"), std::out_of_range);
}

// Through the members by name, not through the table: a row whose member
// points at another counter (two rows swapped) shows here.
TEST(Snapshot, EachCounterRowReadsItsOwnMember) {
  auto h = segment();
  proto::WorkerCounters& c = h->workers[0];
  const std::pair<std::atomic<uint64_t>*, const char*> named[] = {
      {&c.rx_packets, "rx_packets"},       {&c.tx_packets, "tx_packets"},
      {&c.ntp_requests, "ntp_requests"},   {&c.ntp_unsync_replies, "ntp_unsync_replies"},
      {&c.ntp_to_control, "ntp_to_control"}, {&c.arp_replies, "arp_replies"},
      {&c.arp_learned, "arp_learned"},     {&c.arp_conflicts, "arp_conflicts"},
      {&c.arp_defences, "arp_defences"},   {&c.icmp_echo_replies, "icmp_echo_replies"},
      {&c.control_tx, "control_tx"},       {&c.polls, "polls"},
      {&c.busy_polls, "busy_polls"},       {&c.state_read_retries, "state_read_retries"},
  };
  for (size_t i = 0; i < std::size(named); ++i) named[i].first->store(7000 + i);
  const Status s = make_status(*h, engine_synchronized_to_c(), facts());
  for (size_t i = 0; i < std::size(named); ++i) EXPECT_EQ(s.workers[0].counter(named[i].second), 7000 + i) << named[i].second;
}

TEST(Snapshot, CountsBeyondTheArraysAreClamped) {
  auto h = segment();
  h->n_workers = 1000;
  h->n_ports = 1000;
  const Status s = make_status(*h, engine_synchronized_to_c(), facts());
  EXPECT_EQ(s.workers.size(), proto::kMaxWorkers);
  EXPECT_EQ(s.ports.size(), proto::kMaxPorts);
}

TEST(Snapshot, AssociationsInTheVendorsWords) {
  ctl::EngineState e = engine_synchronized_to_c();
  ctl::AssociationState c;
  c.address = kC;
  c.port = 1123;
  c.mode = ctl::AssocMode::kClient;
  c.selection = ctl::SelectionState::kSystemPeer;
  c.heard = true;
  c.peer_mode = proto::Mode::kServer;
  c.stratum = c.wire_stratum = 2;
  c.refid = proto::kRefidLocal;
  c.reach = 0377;
  c.poll_log2 = 7;
  c.filter = {{-12345, 62500000, 980000, true}};
  e.associations.push_back(c);
  ctl::AssociationState p;
  p.address = kE;
  p.mode = ctl::AssocMode::kSymmetricPassive;
  p.configured = false;
  p.selection = ctl::SelectionState::kUnfit;
  p.unfit = ctl::Unfit::kLoopToUs;
  p.heard = true;
  p.peer_mode = proto::Mode::kSymmetricActive;
  p.stratum = p.wire_stratum = 4;
  p.refid = 0x0A000120;
  p.reach = 1;
  e.associations.push_back(p);
  ctl::AssociationState q;  // configured, never answered
  q.address = 0x0A000122;
  q.unfit = ctl::Unfit::kUnreachable;
  q.selection = ctl::SelectionState::kUnfit;
  q.refid = proto::kKissInit;
  e.associations.push_back(q);
  ctl::AssociationState k = q;  // a kiss-o'-death: stratum 0, the code as the reference ID
  k.heard = true;
  k.peer_mode = proto::Mode::kServer;
  k.wire_stratum = 0;
  k.refid = proto::kKissRate;
  e.associations.push_back(k);

  const auto h = segment();
  const Status s = make_status(*h, e, facts());
  ASSERT_EQ(s.associations.size(), 4u);
  const AssociationStatus& a = s.associations[0];
  EXPECT_EQ(a.address, "10.0.1.31");
  EXPECT_EQ(a.port, 1123);
  EXPECT_EQ(a.mode, "client");
  EXPECT_EQ(a.selection, "system peer");
  EXPECT_EQ(a.status, "configured client, master, sane, valid");
  EXPECT_EQ(a.refid_text, "LOCAL(0)");
  EXPECT_EQ(a.peer_mode, "server");
  EXPECT_EQ(a.reach, 255);
  EXPECT_EQ(a.poll_log2, 7);
  EXPECT_EQ(a.filter, c.filter);
  const AssociationStatus& b = s.associations[1];
  EXPECT_EQ(b.mode, "symmetric passive");
  EXPECT_FALSE(b.configured);
  EXPECT_EQ(b.selection, "loop: its reference is us");
  EXPECT_EQ(b.status, "dynamic symmetric passive, insane (loop: its reference is us), valid");
  EXPECT_EQ(b.refid_text, "10.0.1.32");
  EXPECT_EQ(b.peer_mode, "symmetric active");
  const AssociationStatus& n = s.associations[2];
  EXPECT_EQ(n.selection, "unreachable");
  EXPECT_EQ(n.status, "configured client, insane (unreachable), invalid");
  EXPECT_EQ(n.refid_text, "INIT");
  EXPECT_EQ(n.peer_mode, "-");
  EXPECT_EQ(n.stratum, 16);
  EXPECT_EQ(s.associations[3].refid_text, "RATE");
}

// Reference IDs reach /status, `ntpctl status` and `ntpctl sessions` as an
// operator reads them: a stratum-1 source by name or, when that is no ASCII,
// in hex (127.127.1.1 used to show as "????"); the kiss code that says why
// the system is not synchronized.
TEST(Snapshot, ReferenceIdsReachEveryViewReadable) {
  ctl::EngineState e = engine_synchronized_to_c();
  ctl::AssociationState a;
  a.address = kC;
  a.heard = true;
  a.peer_mode = proto::Mode::kServer;
  a.stratum = a.wire_stratum = 1;
  a.refid = 0x7F7F0101;
  e.associations.push_back(a);
  a.address = kE;
  a.refid = proto::refid_from_ascii("GPS\0");
  e.associations.push_back(a);
  a.address = 0x0A000122;
  a.stratum = 16;
  a.wire_stratum = 0;
  a.refid = proto::kKissStep;
  e.associations.push_back(a);
  const auto h = segment();
  Status s = make_status(*h, e, facts());
  ASSERT_EQ(s.associations.size(), 3u);
  EXPECT_EQ(s.associations[0].refid_text, "7F7F0101");
  EXPECT_EQ(s.associations[1].refid_text, "GPS");
  EXPECT_EQ(s.associations[2].refid_text, "STEP");
  const std::string sessions = format_sessions(s, false);
  EXPECT_NE(sessions.find(" reference clock ID: 7F7F0101\n"), std::string::npos) << sessions;
  EXPECT_NE(sessions.find(" reference clock ID: GPS\n"), std::string::npos) << sessions;
  EXPECT_EQ(sessions.find('?'), std::string::npos) << sessions;
  EXPECT_NE(to_json(s).find("\"refid_text\": \"7F7F0101\""), std::string::npos) << to_json(s);

  // Synchronized to a stratum-1 source: the system is at stratum 2 and its
  // reference ID is that source's address.
  e.system.stratum = 2;
  s = make_status(*h, e, facts());
  EXPECT_EQ(s.system.refid_text, "10.0.1.31");
  // Holdover run out: HOLD, in ntpctl status too.
  e.system = ctl::unsynchronized_variables();
  e.system.refid = proto::kKissHold;
  s = make_status(*h, e, facts());
  EXPECT_EQ(s.system.refid_text, "HOLD");
  EXPECT_NE(format_status(s).find(" reference clock ID: HOLD\n"), std::string::npos) << format_status(s);
}

TEST(Snapshot, TheWordsOfEverySelectionState) {
  ctl::AssociationState a;
  const std::pair<ctl::SelectionState, const char*> cases[] = {
      {ctl::SelectionState::kSystemPeer, "system peer"}, {ctl::SelectionState::kFalseticker, "falseticker"},
      {ctl::SelectionState::kOutlier, "outlier"},        {ctl::SelectionState::kSurvivor, "survivor"},
      {ctl::SelectionState::kCandidate, "candidate"},
  };
  for (const auto& [state, text] : cases) {
    a.selection = state;
    EXPECT_EQ(association_status(a).selection, text);
  }
  a.selection = ctl::SelectionState::kUnfit;
  const std::pair<ctl::Unfit, const char*> unfit[] = {
      {ctl::Unfit::kUnsynchronized, "unsynchronized"},
      {ctl::Unfit::kStratumTooHigh, "stratum too high"},
      {ctl::Unfit::kNoSamples, "no samples yet"},
      {ctl::Unfit::kLoopToSystemPeer, "loop: it follows our system peer"},
      {ctl::Unfit::kTooDistant, "too distant"},
      {ctl::Unfit::kNotAuthenticated, "not authenticated"},
  };
  for (const auto& [why, text] : unfit) {
    a.unfit = why;
    EXPECT_EQ(association_status(a).selection, text);
  }
}

// Symmetric-key authentication: the vendor's "authentication: ok|failed",
// "pending" before the first verified answer, "none" without a key, and the packets counted by what their MAC said.
TEST(Snapshot, AssociationAuthentication) {
  ctl::AssociationState a;
  EXPECT_EQ(association_status(a).authentication, "none");
  a.key_id = 7;
  a.auth = ctl::AuthState::kFailed;
  a.auth_ok = 1;
  a.auth_missing = 2;
  a.auth_bad = 3;
  a.crypto_nak = 4;
  AssociationStatus s = association_status(a);
  EXPECT_EQ(s.authentication, "failed");
  EXPECT_EQ(s.key_id, 7u);
  EXPECT_EQ(s.auth_ok, 1u);
  EXPECT_EQ(s.auth_missing, 2u);
  EXPECT_EQ(s.auth_bad, 3u);
  EXPECT_EQ(s.crypto_nak, 4u);
  a.auth = ctl::AuthState::kOk;
  EXPECT_EQ(association_status(a).authentication, "ok");
  a.auth = ctl::AuthState::kPending;
  EXPECT_EQ(association_status(a).authentication, "pending");
}

TEST(Snapshot, RateLimiterOfEachWorker) {
  auto h = segment();
  proto::LimiterStatus l{};
  l.capacity = 1 << 20;
  l.fill = 4321;
  l.memory_bytes = 32u << 20;
  l.n_top = 2;
  const proto::IpAddress v4 = proto::IpAddress::v4(0xC0000207);  // 192.0.2.7
  std::memcpy(l.top[0].address, v4.bytes, 16);
  l.top[0].limited = 900;
  l.top[0].last_ns = 1'700'000'000'000'000'000;
  const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  std::memcpy(l.top[1].address, v6, 16);
  l.top[1].limited = 3;
  h->limiters[1].store(l);
  const Status s = make_status(*h, engine_synchronized_to_c(), facts());
  ASSERT_EQ(s.workers.size(), 2u);
  EXPECT_EQ(s.workers[0].ratelimit_table_capacity, 0u);  // never published: empty
  EXPECT_TRUE(s.workers[0].top_limited.empty());
  const WorkerStatus& w = s.workers[1];
  EXPECT_EQ(w.ratelimit_table_capacity, 1u << 20);
  EXPECT_EQ(w.ratelimit_table_entries, 4321u);
  EXPECT_EQ(w.ratelimit_memory_bytes, 32u << 20);
  ASSERT_EQ(w.top_limited.size(), 2u);
  EXPECT_EQ(w.top_limited[0], (LimitedSourceStatus{"192.0.2.7", 900, 1'700'000'000'000'000'000}));
  EXPECT_EQ(w.top_limited[1], (LimitedSourceStatus{"2001:db8::1", 3, 0}));

  // A count from the dataplane beyond the array is clamped.
  l.n_top = 1000;
  h->limiters[1].store(l);
  EXPECT_EQ(make_status(*h, engine_synchronized_to_c(), facts()).workers[1].top_limited.size(),
            proto::kTopLimitedSources);
}

TEST(Snapshot, NoTimestampOfOurRequestsIsShown) {
  // The core keeps org/rec/xmt (RFC 5905 on-wire test) to itself: neither
  // the state it shows nor the status has them (they would publish our
  // requests' nonces), and the JSON has no key for them.
  ctl::AssociationState a;
  a.heard = true;
  Status s;
  s.associations.push_back(association_status(a));
  const std::string j = to_json(s);
  for (const char* key : {"origin", "receive_ts", "transmit_ts", "xmt"}) EXPECT_EQ(j.find(key), std::string::npos) << key;
  EXPECT_EQ(format_sessions(s, true).find("origin"), std::string::npos);
}

TEST(Snapshot, AStoppedAssociationSaysWhy) {
  ctl::AssociationState a;
  a.configured = true;
  a.kiss_code = proto::kKissDeny;
  a.stopped = true;
  const AssociationStatus s = association_status(a);
  EXPECT_EQ(s.kiss_code, "DENY");
  EXPECT_TRUE(s.stopped);
  EXPECT_NE(s.status.find("stopped: denied by the server (DENY)"), std::string::npos) << s.status;
  ctl::AssociationState r;
  r.kiss_code = proto::kKissRate;
  const AssociationStatus rs = association_status(r);
  EXPECT_EQ(rs.kiss_code, "RATE");
  EXPECT_FALSE(rs.stopped);
  EXPECT_EQ(rs.status.find("stopped"), std::string::npos);
}

}  // namespace
}  // namespace ntp::status
