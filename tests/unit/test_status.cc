// control/status/status.h: the JSON of /status (exact round trip, robust parsing of
// anything), the Prometheus text of /metrics (checked by a strict parser
// below) and the vendor-style text of `ntpctl status|sessions` (golden).
#include "control/status/status.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/status/words.h"
#include "proto/channel_abi.h"
#include "proto/ntp_packet.h"
#include "proto/ntp_time.h"
#include "tests/support/test_seed.h"

namespace ntp::status {
namespace {

// Seeded randomness: the seed is printed, TEST_SEED=<n> replays a run.
uint64_t test_seed() { return ::ntp::test::seed(); }
#define SEED_TRACE() SCOPED_TRACE(::testing::Message() << "TEST_SEED=" << test_seed())

constexpr size_t drop_index(proto::DropReason r) { return static_cast<size_t>(r); }

Status populated() {
  Status s;
  SystemStatus& y = s.system;
  y.sysname = "DeviceD";
  y.version = "0.1.0-test";
  y.synchronized = true;
  y.leap = 0;
  y.stratum = 2;
  y.refid = 0x4C4F434C;  // "LOCL"
  y.refid_text = "LOCAL(0)";
  y.reference = "local clock (refclock_master 2)";
  y.nominal_freq_hz = 2899999100.0;
  y.actual_freq_hz = 2900012400.0;
  y.precision_log2 = -24;
  y.clock_offset_ns = 12300;
  y.root_delay_ns = 1234;
  y.root_dispersion_ns = 15258;
  y.peer_dispersion_ns = 4999;
  // The seed's DeviceE: reference time C7B7ACF6.C8D002E2.
  y.reference_time_ns = proto::unix_ns_from_ntp(proto::NtpTimestamp::from_raw(0xC7B7ACF6C8D002E2ULL),
                                                     1141714550LL * proto::kNsPerS);
  y.sync_state = "clock synchronized";
  y.clock_source = "virtual";
  y.clock_minus_host_ns = -1500;
  y.frequency_ppm = 4.5867;
  y.holdover_s = 300.5;
  y.control_uptime_s = 12.25;
  y.dataplane_uptime_s = 3600.75;
  y.dataplane_alive = true;
  y.dataplane_heartbeat_age_s = 0.25;
  y.dataplane_last_heartbeat_ns = 1767225599750000000;  // 2025-12-31T23:59:59.75Z
  // 2016's leap second, inserted at the end of Dec 31 and smeared.
  y.leap_sign = 1;
  y.leap_at_ns = 1483228800LL * proto::kNsPerS;
  y.leap_smear_ns = 86400LL * proto::kNsPerS;
  y.dataplane_pid = 4242;
  y.control_pid = 4243;
  y.state_publications = 987;
  y.keys_match = false;

  PortStatus p;
  p.name = "GigabitEthernet0/1/0";
  p.device = "net_af_packet0,iface=veth0";
  p.driver = "net_af_packet";
  p.mac = "02:00:00:00:01:32";
  p.address = "10.0.1.32/24";
  p.ntp_server = true;
  p.timestamping = "software";
  p.link_up = true;
  p.link_speed_mbps = 10000;
  s.ports.push_back(p);
  p.name = "GigabitEthernet0/2/0";
  p.device = "0000:3b:00.1";
  p.driver = "net_ice";
  p.mac = "b4:96:91:aa:bb:cc";
  p.address = "192.0.2.10/25";
  p.ntp_server = false;
  p.timestamping = "hardware";
  p.link_up = false;
  p.link_speed_mbps = 25000;
  s.ports.push_back(p);

  WorkerStatus w;
  w.id = 0;
  w.counter("rx_packets") = 1000001;
  w.counter("tx_packets") = 1000002;
  w.counter("ntp_requests") = 999990;
  w.counter("ntp_unsync_replies") = 12;
  w.counter("ntp_to_control") = 34;
  w.counter("arp_replies") = 5;
  w.counter("arp_learned") = 6;
  w.counter("icmp_echo_replies") = 7;
  w.counter("control_tx") = 33;
  w.counter("polls") = 123456789012ULL;
  w.counter("busy_polls") = 1000000;
  w.counter("state_read_retries") = 3;
  w.counter("ntp_stateless_peer_replies") = 8;
  w.counter("kod_rate") = 41;
  w.counter("kod_deny") = 42;
  w.counter("rate_leaked") = 43;
  w.counter("ratelimit_inserts") = 2000000;
  w.counter("ratelimit_evictions") = 951424;
  w.ratelimit_table_capacity = 1048576;
  w.ratelimit_table_entries = 1048576;
  w.ratelimit_memory_bytes = 33554432;
  w.top_limited = {{"192.0.2.7", 900000, 1141714353465798000LL}, {"2001:db8::1", 12, 0}};
  for (size_t i = 0; i < w.drops.size(); ++i) w.drops[i] = 100 + i;
  w.drops[static_cast<size_t>(proto::DropReason::kBadUdpChecksum)] = 7;
  w.drops[static_cast<size_t>(proto::DropReason::kTxFull)] = 0;
  s.workers.push_back(w);
  WorkerStatus w1;
  w1.id = 1;
  w1.counter("rx_packets") = 18446744073709551615ULL;  // UINT64_MAX survives JSON and Prometheus
  w1.drops[static_cast<size_t>(proto::DropReason::kNotForUs)] = 1;
  s.workers.push_back(w1);

  AssociationStatus a;
  a.address = "10.0.1.31";
  a.port = 1123;
  a.mode = "client";
  a.configured = true;
  a.selection = "system peer";
  a.status = "configured, master, sane, valid";
  a.stratum = 2;
  a.refid = 0x4C4F434C;
  a.refid_text = "LOCAL(0)";
  a.reach = 255;
  a.poll_log2 = 7;
  a.peer_poll_log2 = 6;
  a.peer_mode = "server";
  a.since_last_rx_s = 2.75;
  a.offset_ns = -12345;
  a.delay_ns = 62500000;
  a.dispersion_ns = 980000;
  a.jitter_ns = 4321;
  a.root_delay_ns = 1000;
  a.root_dispersion_ns = 200000;
  a.sync_distance_ns = 32250000;
  a.precision_log2 = -23;
  a.version = 3;
  a.leap = 0;
  a.reference_time_ns = 1141714353465798000LL;
  a.filter = {{-12345, 62500000, 980000, true}, {-20000, 62600000, 1000000, true}, {0, 0, 0, false}};
  a.key_id = 1;
  a.authentication = "ok";
  a.auth_ok = 41;
  a.auth_missing = 3;
  a.auth_bad = 2;
  a.crypto_nak = 1;
  s.associations.push_back(a);

  AssociationStatus b;
  b.address = "10.0.1.33";
  b.mode = "symmetric passive";
  b.configured = false;
  b.selection = "candidate";
  b.status = "unconfigured, sane, valid";
  b.stratum = 4;
  b.refid = 0x0A000120;
  b.refid_text = "10.0.1.32";
  b.reach = 17;
  b.poll_log2 = -1;
  b.peer_mode = "symmetric active";
  b.since_last_rx_s = -1;
  b.offset_ns = 150000;
  b.delay_ns = 125000;
  b.dispersion_ns = 7810000;
  b.key_id = 2;
  b.authentication = "pending";  // from a verified mode-1 packet, ours not answered yet
  b.auth_ok = 1;
  s.associations.push_back(b);

  AssociationStatus n;  // an NTS server: a NAK once, NTS-KE again, in use
  n.address = "10.0.1.40";
  n.mode = "client";
  n.selection = "candidate";
  n.status = "configured, sane, valid";
  n.stratum = 1;
  n.reach = 255;
  n.poll_log2 = 6;
  n.peer_mode = "server";
  n.authentication = "ok";
  n.auth_ok = 12;
  n.xleave = "interleaved";
  n.interleaved_answers = 40;
  n.nts = "ok";
  n.nts_cookies = 6;
  n.nts_ke_ok = 2;
  n.nts_ke_failed = 1;
  n.nts_naks = 1;
  s.associations.push_back(n);
  AssociationStatus f;  // one whose certificate we do not trust
  f.address = "10.0.1.41";
  f.mode = "client";
  f.selection = "not authenticated";
  f.status = "configured, insane, invalid";
  f.authentication = "pending";
  f.nts = "ke failed";
  f.nts_error = "TLS handshake: The certificate is NOT trusted. The certificate issuer is unknown.";
  f.nts_ke_failed = 3;
  s.associations.push_back(f);

  SteeredClockStatus c;
  c.name = "/dev/ptp0";
  c.following = true;
  c.offset_ns = -37;
  c.frequency_ppm = 12.5;
  c.state = "clock synchronized";
  c.updates = 3600;
  c.steps = 1;
  c.errors = 2;
  s.steered_clocks.push_back(c);

  s.nts_ke.push_back({.listen = "10.0.3.1:4460", .sessions = 3, .accepted = 1200, .refused = 7,
                      .handshake_failures = 11, .bad_requests = 2, .served = 1180, .cookies = 9440, .timeouts = 4});
  return s;
}

// ---------------------------------------------------------------------------
// JSON

TEST(StatusJson, PopulatedDiffersFromDefaultEverywhere) {
  // Guards the round trip below: a field left at its default would not
  // show a field that to_json or from_json forgot.
  const Status s = populated();
  const SystemStatus dy;
  const PortStatus dp;
  const WorkerStatus dw;
  const AssociationStatus da;
  const SteeredClockStatus dc;
  ASSERT_EQ(s.nts_ke.size(), 1u);
  const NtsKeStatus dk;
  const NtsKeStatus& k = s.nts_ke[0];
  EXPECT_NE(k.listen, dk.listen);
  for (uint64_t NtsKeStatus::*m : {&NtsKeStatus::sessions, &NtsKeStatus::accepted, &NtsKeStatus::refused,
                                   &NtsKeStatus::handshake_failures, &NtsKeStatus::bad_requests, &NtsKeStatus::served,
                                   &NtsKeStatus::cookies, &NtsKeStatus::timeouts})
    EXPECT_NE(k.*m, dk.*m);
  ASSERT_EQ(s.steered_clocks.size(), 1u);
  const auto& c = s.steered_clocks[0];
  EXPECT_NE(c.name, dc.name);
  EXPECT_NE(c.following, dc.following);
  EXPECT_NE(c.offset_ns, dc.offset_ns);
  EXPECT_NE(c.frequency_ppm, dc.frequency_ppm);
  EXPECT_NE(c.state, dc.state);
  EXPECT_NE(c.updates, dc.updates);
  EXPECT_NE(c.steps, dc.steps);
  EXPECT_NE(c.errors, dc.errors);
  const auto& y = s.system;
  EXPECT_NE(y.sysname, dy.sysname);
  EXPECT_NE(y.version, dy.version);
  EXPECT_NE(y.synchronized, dy.synchronized);
  EXPECT_NE(y.leap, dy.leap);
  EXPECT_NE(y.stratum, dy.stratum);
  EXPECT_NE(y.refid, dy.refid);
  EXPECT_NE(y.refid_text, dy.refid_text);
  EXPECT_NE(y.reference, dy.reference);
  EXPECT_NE(y.nominal_freq_hz, dy.nominal_freq_hz);
  EXPECT_NE(y.actual_freq_hz, dy.actual_freq_hz);
  EXPECT_NE(y.precision_log2, dy.precision_log2);
  EXPECT_NE(y.clock_offset_ns, dy.clock_offset_ns);
  EXPECT_NE(y.root_delay_ns, dy.root_delay_ns);
  EXPECT_NE(y.root_dispersion_ns, dy.root_dispersion_ns);
  EXPECT_NE(y.peer_dispersion_ns, dy.peer_dispersion_ns);
  EXPECT_NE(y.reference_time_ns, dy.reference_time_ns);
  EXPECT_NE(y.sync_state, dy.sync_state);
  EXPECT_NE(y.clock_source, dy.clock_source);
  EXPECT_NE(y.clock_minus_host_ns, dy.clock_minus_host_ns);
  EXPECT_NE(y.frequency_ppm, dy.frequency_ppm);
  EXPECT_NE(y.holdover_s, dy.holdover_s);
  EXPECT_NE(y.control_uptime_s, dy.control_uptime_s);
  EXPECT_NE(y.dataplane_uptime_s, dy.dataplane_uptime_s);
  EXPECT_NE(y.dataplane_alive, dy.dataplane_alive);
  EXPECT_NE(y.dataplane_heartbeat_age_s, dy.dataplane_heartbeat_age_s);
  EXPECT_NE(y.dataplane_last_heartbeat_ns, dy.dataplane_last_heartbeat_ns);
  EXPECT_NE(y.leap_sign, dy.leap_sign);
  EXPECT_NE(y.leap_at_ns, dy.leap_at_ns);
  EXPECT_NE(y.leap_smear_ns, dy.leap_smear_ns);
  EXPECT_NE(y.dataplane_pid, dy.dataplane_pid);
  EXPECT_NE(y.control_pid, dy.control_pid);
  EXPECT_NE(y.state_publications, dy.state_publications);
  EXPECT_NE(y.keys_match, dy.keys_match);
  const auto& p = s.ports.at(0);
  EXPECT_NE(p.name, dp.name);
  EXPECT_NE(p.device, dp.device);
  EXPECT_NE(p.driver, dp.driver);
  EXPECT_NE(p.mac, dp.mac);
  EXPECT_NE(p.address, dp.address);
  EXPECT_NE(p.ntp_server, dp.ntp_server);
  EXPECT_NE(p.timestamping, dp.timestamping);
  EXPECT_NE(p.link_up, dp.link_up);
  EXPECT_NE(p.link_speed_mbps, dp.link_speed_mbps);
  const auto& w = s.workers.at(0);
  EXPECT_NE(w.counter("rx_packets"), dw.counter("rx_packets"));
  EXPECT_NE(w.counter("tx_packets"), dw.counter("tx_packets"));
  EXPECT_NE(w.counter("ntp_requests"), dw.counter("ntp_requests"));
  EXPECT_NE(w.counter("ntp_unsync_replies"), dw.counter("ntp_unsync_replies"));
  EXPECT_NE(w.counter("ntp_to_control"), dw.counter("ntp_to_control"));
  EXPECT_NE(w.counter("arp_replies"), dw.counter("arp_replies"));
  EXPECT_NE(w.counter("arp_learned"), dw.counter("arp_learned"));
  EXPECT_NE(w.counter("icmp_echo_replies"), dw.counter("icmp_echo_replies"));
  EXPECT_NE(w.counter("control_tx"), dw.counter("control_tx"));
  EXPECT_NE(w.counter("polls"), dw.counter("polls"));
  EXPECT_NE(w.counter("busy_polls"), dw.counter("busy_polls"));
  EXPECT_NE(w.counter("state_read_retries"), dw.counter("state_read_retries"));
  EXPECT_NE(w.counter("ntp_stateless_peer_replies"), dw.counter("ntp_stateless_peer_replies"));
  EXPECT_NE(w.counter("kod_rate"), dw.counter("kod_rate"));
  EXPECT_NE(w.counter("kod_deny"), dw.counter("kod_deny"));
  EXPECT_NE(w.counter("rate_leaked"), dw.counter("rate_leaked"));
  EXPECT_NE(w.counter("ratelimit_inserts"), dw.counter("ratelimit_inserts"));
  EXPECT_NE(w.counter("ratelimit_evictions"), dw.counter("ratelimit_evictions"));
  EXPECT_NE(w.ratelimit_table_capacity, dw.ratelimit_table_capacity);
  EXPECT_NE(w.ratelimit_table_entries, dw.ratelimit_table_entries);
  EXPECT_NE(w.ratelimit_memory_bytes, dw.ratelimit_memory_bytes);
  EXPECT_NE(w.top_limited, dw.top_limited);
  const LimitedSourceStatus dl;
  EXPECT_NE(w.top_limited.at(0).address, dl.address);
  EXPECT_NE(w.top_limited.at(0).limited, dl.limited);
  EXPECT_NE(w.top_limited.at(0).last_ns, dl.last_ns);
  EXPECT_NE(w.drops, dw.drops);
  EXPECT_NE(s.workers.at(1).id, dw.id);
  const auto& a = s.associations.at(0);
  EXPECT_NE(a.address, da.address);
  EXPECT_NE(a.port, da.port);
  EXPECT_NE(a.mode, da.mode);
  EXPECT_NE(s.associations.at(1).configured, da.configured);
  EXPECT_NE(a.selection, da.selection);
  EXPECT_NE(a.status, da.status);
  EXPECT_NE(a.stratum, da.stratum);
  EXPECT_NE(a.refid, da.refid);
  EXPECT_NE(a.refid_text, da.refid_text);
  EXPECT_NE(a.reach, da.reach);
  EXPECT_NE(a.poll_log2, da.poll_log2);
  EXPECT_NE(a.peer_poll_log2, da.peer_poll_log2);
  EXPECT_NE(a.peer_mode, da.peer_mode);
  EXPECT_NE(a.since_last_rx_s, da.since_last_rx_s);
  EXPECT_NE(a.offset_ns, da.offset_ns);
  EXPECT_NE(a.delay_ns, da.delay_ns);
  EXPECT_NE(a.dispersion_ns, da.dispersion_ns);
  EXPECT_NE(a.jitter_ns, da.jitter_ns);
  EXPECT_NE(a.root_delay_ns, da.root_delay_ns);
  EXPECT_NE(a.root_dispersion_ns, da.root_dispersion_ns);
  EXPECT_NE(a.sync_distance_ns, da.sync_distance_ns);
  EXPECT_NE(a.precision_log2, da.precision_log2);
  EXPECT_NE(a.version, da.version);
  EXPECT_NE(a.leap, da.leap);
  EXPECT_NE(a.reference_time_ns, da.reference_time_ns);
  EXPECT_NE(a.key_id, da.key_id);
  EXPECT_NE(a.authentication, da.authentication);
  EXPECT_NE(a.auth_ok, da.auth_ok);
  EXPECT_NE(a.auth_missing, da.auth_missing);
  EXPECT_NE(a.auth_bad, da.auth_bad);
  EXPECT_NE(a.crypto_nak, da.crypto_nak);
  const AssociationStatus& n = s.associations.at(2);
  EXPECT_NE(n.xleave, da.xleave);
  EXPECT_NE(n.interleaved_answers, da.interleaved_answers);
  EXPECT_NE(n.nts, da.nts);
  EXPECT_NE(n.nts_cookies, da.nts_cookies);
  EXPECT_NE(n.nts_ke_ok, da.nts_ke_ok);
  EXPECT_NE(n.nts_ke_failed, da.nts_ke_failed);
  EXPECT_NE(n.nts_naks, da.nts_naks);
  EXPECT_NE(s.associations.at(3).nts_error, da.nts_error);
  EXPECT_NE(a.filter, da.filter);
  const FilterStage df;
  EXPECT_NE(a.filter.at(0).offset_ns, df.offset_ns);
  EXPECT_NE(a.filter.at(0).delay_ns, df.delay_ns);
  EXPECT_NE(a.filter.at(0).dispersion_ns, df.dispersion_ns);
  EXPECT_NE(a.filter.at(0).valid, df.valid);
}

TEST(StatusJson, RoundTripIsExact) {
  const Status s = populated();
  const std::string text = to_json(s);
  std::string err;
  const auto back = from_json(text, err);
  ASSERT_TRUE(back.has_value()) << err;
  EXPECT_TRUE(*back == s);
  EXPECT_TRUE(back->system == s.system);
  EXPECT_TRUE(back->ports == s.ports);
  EXPECT_TRUE(back->workers == s.workers);
  EXPECT_TRUE(back->associations == s.associations);
  EXPECT_EQ(to_json(*back), text);
}

TEST(StatusJson, RoundTripOfExtremes) {
  Status s = populated();
  s.system.sysname = "quote\" back\\slash\nnewline\ttab \xC3\xA9";  // valid UTF-8
  s.system.clock_offset_ns = std::numeric_limits<int64_t>::min();
  s.system.root_delay_ns = std::numeric_limits<int64_t>::max();
  s.system.state_publications = std::numeric_limits<uint64_t>::max();
  s.system.precision_log2 = -128;
  s.system.leap = 255;
  s.system.dataplane_pid = std::numeric_limits<int32_t>::min();
  s.system.nominal_freq_hz = 0.1 + 0.2;  // not a short decimal
  s.system.actual_freq_hz = -0.0;
  s.system.frequency_ppm = std::numeric_limits<double>::denorm_min();
  s.system.holdover_s = std::numeric_limits<double>::max();
  s.system.control_uptime_s = std::numeric_limits<double>::infinity();
  s.system.dataplane_uptime_s = -std::numeric_limits<double>::infinity();
  s.workers[0].id = std::numeric_limits<unsigned>::max();
  s.associations[0].port = 65535;
  s.associations[0].poll_log2 = 127;
  s.workers[0].ratelimit_memory_bytes = std::numeric_limits<uint64_t>::max();
  s.workers[0].top_limited[0].last_ns = std::numeric_limits<int64_t>::min();
  s.associations[0].filter.assign(8, FilterStage{-1, std::numeric_limits<int64_t>::min(), 1, true});
  std::string err;
  const auto back = from_json(to_json(s), err);
  ASSERT_TRUE(back.has_value()) << err;
  EXPECT_TRUE(*back == s);
  EXPECT_TRUE(std::signbit(back->system.actual_freq_hz));

  // NaN is not equal to itself: compare it on its own.
  s.associations[1].since_last_rx_s = std::numeric_limits<double>::quiet_NaN();
  const auto nan_back = from_json(to_json(s), err);
  ASSERT_TRUE(nan_back.has_value()) << err;
  EXPECT_TRUE(std::isnan(nan_back->associations[1].since_last_rx_s));
}

TEST(StatusJson, EmptyStatusRoundTrips) {
  std::string err;
  const auto back = from_json(to_json(Status{}), err);
  ASSERT_TRUE(back.has_value()) << err;
  EXPECT_TRUE(*back == Status{});
}

TEST(StatusJson, DropsAreKeyedByReasonName) {
  const auto j = nlohmann::json::parse(to_json(populated()));
  const auto& drops = j["workers"][0]["drops"];
  ASSERT_EQ(drops.size(), proto::kDropReasonCount);
  EXPECT_EQ(drops["bad_udp_checksum"], 7);
  EXPECT_EQ(drops["tx_full"], 0);
  EXPECT_EQ(drops["not_for_us"], 100);
}

TEST(StatusJson, MissingOptionalFieldsDefault) {
  std::string err;
  const auto s = from_json(R"({"system": {"synchronized": false, "leap": 3, "stratum": 16}})", err);
  ASSERT_TRUE(s.has_value()) << err;
  EXPECT_TRUE(*s == Status{});

  const auto t = from_json(
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 3, "future_field": [1, 2]},
          "associations": [{"address": "10.0.1.31"}],
          "workers": [{"id": 2, "drops": {"bad_ip_checksum": 5, "a_reason_from_the_future": 9}}]})",
      err);
  ASSERT_TRUE(t.has_value()) << err;
  EXPECT_EQ(t->system.stratum, 3);
  ASSERT_EQ(t->associations.size(), 1u);
  EXPECT_EQ(t->associations[0].address, "10.0.1.31");
  EXPECT_EQ(t->associations[0].poll_log2, AssociationStatus{}.poll_log2);
  ASSERT_EQ(t->workers.size(), 1u);
  EXPECT_EQ(t->workers[0].id, 2u);
  EXPECT_EQ(t->workers[0].drops[drop_index(proto::DropReason::kBadIpChecksum)], 5u);
}

TEST(StatusJson, RejectsMalformedAndWrongShapes) {
  const char* bad[] = {
      "",
      " ",
      "null",
      "[]",
      "42",
      "\"status\"",
      "{}",                                                              // no system
      "{\"system\": null}",
      "{\"system\": []}",
      "{\"system\": {}}",                                                // required fields
      R"({"system": {"synchronized": true, "leap": 0}})",               // no stratum
      R"({"system": {"synchronized": 1, "leap": 0, "stratum": 2}})",    // int for bool
      R"({"system": {"synchronized": true, "leap": 256, "stratum": 2}})",
      R"({"system": {"synchronized": true, "leap": -1, "stratum": 2}})",
      R"({"system": {"synchronized": true, "leap": 0.5, "stratum": 2}})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": "2"}})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2, "precision_log2": -129}})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2, "clock_offset_ns": 9223372036854775808}})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2, "state_publications": -1}})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2, "state_publications": 18446744073709551616}})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2, "holdover_s": "300"}})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2, "holdover_s": null}})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2, "sysname": 7}})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2}, "ports": {}})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2}, "ports": [1]})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2}, "ports": [{}]})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2}, "workers": [{"id": -1}]})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2}, "workers": [{"id": 0, "drops": []}]})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2}, "workers": [{"id": 0, "drops": {"tx_full": -3}}]})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2}, "associations": [{"address": 1}]})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2}, "associations": [{"address": "a", "port": 65536}]})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2}, "associations": [{"address": "a", "filter": {}}]})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2}, "associations": [{"address": "a", "filter": [[]]}]})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2}, "associations": [{"address": "a", "since_last_rx_s": "Infinity"}]})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2})",  // truncated
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2}} trailing)",
      R"({"system": {"synchronized": tru, "leap": 0, "stratum": 2}})",
      R"({"system": {"synchronized": true, "leap": 0, "stratum": NaN}})",
  };
  for (const char* text : bad) {
    std::string err;
    const auto s = from_json(text, err);
    EXPECT_FALSE(s.has_value()) << text;
    EXPECT_FALSE(err.empty()) << text;
  }
  std::string err;
  EXPECT_FALSE(from_json(R"({"system": {"synchronized": true, "leap": 0, "stratum": 2, "holdover_s": "x"}})", err));
  EXPECT_NE(err.find("system.holdover_s"), std::string::npos) << err;
  EXPECT_FALSE(from_json(R"({"system": {"synchronized": true, "leap": 0, "stratum": 2},
                             "associations": [{"address": "a"}, {"address": "b", "reach": 300}]})",
                         err));
  EXPECT_NE(err.find("associations[1].reach"), std::string::npos) << err;
}

TEST(StatusJson, DeepNestingAndHugeInputDoNotCrash) {
  std::string err;
  EXPECT_FALSE(from_json(std::string(200000, '['), err));
  EXPECT_FALSE(from_json(std::string(100000, '[') + std::string(100000, ']'), err));
  std::string deep = "{\"system\": {\"synchronized\": true, \"leap\": 0, \"stratum\": 2, \"x\": ";
  deep += std::string(100000, '[') + std::string(100000, ']') + "}}";
  EXPECT_TRUE(from_json(deep, err)) << err;  // unknown keys are ignored, however deep
  EXPECT_FALSE(from_json(std::string(kMaxJsonBytes + 1, ' '), err));
  EXPECT_NE(err.find("too large"), std::string::npos) << err;
}

// Replaces one randomly chosen value of the document (depth-first walk) with
// a random value of a random type.
nlohmann::json random_value(std::mt19937_64& rng) {
  switch (rng() % 12) {
    case 0: return nullptr;
    case 1: return rng() % 2 == 0;
    case 2: return static_cast<int64_t>(rng());
    case 3: return rng();
    case 4: return -static_cast<int64_t>(rng() % 1000);
    case 5: return static_cast<double>(rng() % 1000) / 7.0;
    case 6: return "x";
    case 7: return "NaN";
    case 8: return nlohmann::json::array({1, "a"});
    case 9: return nlohmann::json::object({{"k", 1}});
    case 10: return static_cast<int64_t>(rng() % 300);
    default: return 1e300;
  }
}

void mutate_tree(nlohmann::json& j, std::mt19937_64& rng, size_t& countdown) {
  if (countdown-- == 0) {
    j = random_value(rng);
    return;
  }
  if (j.is_object()) {
    std::vector<std::string> keys;
    for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
    for (const auto& k : keys) {
      if (countdown == 0 && rng() % 4 == 0) {  // delete instead of replace
        j.erase(k);
        countdown = static_cast<size_t>(-1);
        return;
      }
      mutate_tree(j[k], rng, countdown);
      if (countdown == static_cast<size_t>(-1)) return;
    }
  } else if (j.is_array()) {
    for (auto& e : j) {
      mutate_tree(e, rng, countdown);
      if (countdown == static_cast<size_t>(-1)) return;
    }
  }
}

TEST(StatusJson, RandomAndMutatedInputsNeverCrash) {
  SEED_TRACE();
  std::mt19937_64 rng(test_seed());
  const std::string good = to_json(populated());
  const auto good_tree = nlohmann::json::parse(good);
  const std::string alphabet = "{}[]\":,0123456789.-+eEtruefalsnNI \n\\u";
  size_t accepted = 0, rejected = 0;
  for (int i = 0; i < 1200; ++i) {
    std::string text;
    switch (i % 4) {
      case 0: {  // random bytes
        const size_t n = rng() % 256;
        for (size_t k = 0; k < n; ++k) text += static_cast<char>(rng() & 0xFF);
        break;
      }
      case 1: {  // random JSON-ish tokens
        const size_t n = rng() % 256;
        for (size_t k = 0; k < n; ++k) text += alphabet[rng() % alphabet.size()];
        break;
      }
      case 2: {  // byte-level mutations of a valid document
        text = good;
        const int edits = 1 + static_cast<int>(rng() % 8);
        for (int e = 0; e < edits && !text.empty(); ++e) {
          const size_t pos = rng() % text.size();
          switch (rng() % 4) {
            case 0: text[pos] = static_cast<char>(rng() & 0xFF); break;
            case 1: text.erase(pos, 1 + rng() % 16); break;
            case 2: text.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
            default: text.resize(pos); break;
          }
        }
        break;
      }
      default: {  // a value of the wrong type (or a deleted key) somewhere in a valid document
        nlohmann::json t = good_tree;
        size_t countdown = rng() % 400;
        mutate_tree(t, rng, countdown);
        text = t.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        break;
      }
    }
    std::string err;
    const auto s = from_json(text, err);
    if (s) {
      ++accepted;
      // Whatever was accepted formats without trouble.
      (void)format_status(*s);
      (void)format_sessions(*s, true);
      (void)to_prometheus(*s);
      std::string err2;
      const auto again = from_json(to_json(*s), err2);
      ASSERT_TRUE(again.has_value()) << err2 << "\n" << text;
    } else {
      ++rejected;
      EXPECT_FALSE(err.empty()) << text;
    }
  }
  std::fprintf(stderr, "test_status: %zu mutated inputs accepted, %zu rejected\n", accepted, rejected);
  EXPECT_GT(rejected, 600u);
}

// ---------------------------------------------------------------------------
// Vendor text

TEST(StatusText, ReferenceTimeOfTheSeed) {
  // DeviceD in the seed: "reference time: 06:52:33.465 UTC Mar 7 2006(C7B7AC31.773E89A8)".
  const int64_t pivot = 1141714353LL * proto::kNsPerS;
  EXPECT_EQ(format_ntp_timestamp(0xC7B7AC31773E89A8ULL, pivot), "06:52:33.465 UTC Mar 7 2006(C7B7AC31.773E89A8)");
  // DeviceE: "06:55:50.784 UTC Mar 7 2006(C7B7ACF6.C8D002E2)".
  EXPECT_EQ(format_ntp_timestamp(0xC7B7ACF6C8D002E2ULL, pivot), "06:55:50.784 UTC Mar 7 2006(C7B7ACF6.C8D002E2)");

  // From Unix ns, converted as the wire does (ntp_from_unix_ns rounds to the
  // nearest 2^-32 s). DeviceE's fraction survives fraction -> ns -> fraction:
  const auto e_ns = proto::unix_ns_from_ntp(proto::NtpTimestamp::from_raw(0xC7B7ACF6C8D002E2ULL), pivot);
  EXPECT_EQ(format_reference_time(e_ns), "06:55:50.784 UTC Mar 7 2006(C7B7ACF6.C8D002E2)");
  // DeviceD's does not: 0x773E89A8 is 465797999.88 ns, stored as 465798000
  // ns, which is 0x773E89A8.8C... and goes back to the wire as ...A9. No
  // whole number of ns maps to ...A8, so ns-based status can only show the
  // timestamp a client of ours would receive, which is ...A9.
  const auto d_ns = proto::unix_ns_from_ntp(proto::NtpTimestamp::from_raw(0xC7B7AC31773E89A8ULL), pivot);
  EXPECT_EQ(d_ns, 1141714353465798000LL);
  EXPECT_EQ(proto::ntp_from_unix_ns(d_ns).fraction, 0x773E89A9u);
  EXPECT_EQ(format_reference_time(d_ns), "06:52:33.465 UTC Mar 7 2006(C7B7AC31.773E89A9)");
  // Milliseconds are truncated like the vendor's (.4658 -> .465), never rounded.
  EXPECT_EQ(format_reference_time(1141714353999999999LL), "06:52:33.999 UTC Mar 7 2006(C7B7AC31.FFFFFFFC)");
}

TEST(StatusText, ReferenceTimeEdges) {
  const std::string never = "00:00:00.000 UTC Jan 1 1900(00000000.00000000)";
  EXPECT_EQ(format_reference_time(0), never);
  EXPECT_EQ(format_ntp_timestamp(0, 0), never);
  EXPECT_EQ(format_reference_time(1), "00:00:00.000 UTC Jan 1 1970(83AA7E80.00000004)");
  EXPECT_EQ(format_reference_time(-1), "23:59:59.999 UTC Dec 31 1969(83AA7E7F.FFFFFFFC)");
  // Leap day and 2036: NTP era 1 starts 2036-02-07 06:28:16 UTC, its
  // seconds field starts over at 0; the date stays right.
  EXPECT_EQ(format_reference_time(951782400LL * proto::kNsPerS + 500000000),
            "00:00:00.500 UTC Feb 29 2000(BC658A80.80000000)");
  EXPECT_EQ(format_reference_time(2085978496LL * proto::kNsPerS),
            "06:28:16.000 UTC Feb 7 2036(00000000.00000000)");
  EXPECT_EQ(format_reference_time(2085978497LL * proto::kNsPerS + 250000000),
            "06:28:17.250 UTC Feb 7 2036(00000001.40000000)");
  EXPECT_EQ(format_ntp_timestamp(0x0000000140000000ULL, 2085978497LL * proto::kNsPerS),
            "06:28:17.250 UTC Feb 7 2036(00000001.40000000)");
  // The fraction rounds up to the next second: date and hex agree.
  EXPECT_EQ(format_reference_time(1141714353999999999LL + 1), "06:52:34.000 UTC Mar 7 2006(C7B7AC32.00000000)");
}

TEST(StatusText, FormatStatusGolden) {
  EXPECT_EQ(format_status(populated()),
            " service: serving on 2 workers, 1 port\n"
            " clock status: synchronized\n"
            " clock stratum: 2\n"
            " reference clock ID: LOCAL(0)\n"
            " nominal frequency: 2899.9991 MHz\n"
            " actual frequency: 2900.0124 MHz\n"
            " clock precision: 2^-24\n"
            " clock offset: 0.0123 ms\n"
            " root delay: 0.00 ms\n"
            " root dispersion: 0.02 ms\n"
            " peer dispersion: 0.00 ms\n"
            " reference time: 06:55:50.784 UTC Mar 7 2006(C7B7ACF6.C8D002E2)\n"
            " synchronization state: clock synchronized\n"
            " leap second: insert 23:59:60 UTC Dec 31 2016, smeared over 24 h from 12:00:00 UTC Dec 31 2016 (leap "
            "indicator not passed on)\n"
            " authentication keys: DIFFERENT: the dataplane and ntp-control loaded different keys files: reload both\n"
            " steered clock /dev/ptp0: following, offset -0.000037 ms, frequency +12.500 ppm, clock synchronized, "
            "1 steps, 2 errors\n"
            " NTS-KE server 10.0.3.1:4460: 1180 served (9440 cookies), 3 open, 7 refused, 11 TLS failures, "
            "2 bad requests, 4 timed out\n");
}

// keys_match: true, false or null (no keys on either side, or the
// dataplane has not said) in /status; 1, 0 or no sample in /metrics; a
// line of `ntpctl status` when known.
TEST(StatusKeysMatch, TrueFalseOrNullEverywhere) {
  for (const std::optional<bool> match : {std::optional<bool>{true}, std::optional<bool>{false}, std::optional<bool>{}}) {
    SCOPED_TRACE(match ? (*match ? "true" : "false") : "null");
    Status s;
    s.system.keys_match = match;
    const std::string j = to_json(s);
    const std::string want = match ? (*match ? "\"keys_match\":true" : "\"keys_match\":false") : "\"keys_match\":null";
    std::string compact = j;
    std::erase(compact, ' ');
    std::erase(compact, '\n');
    EXPECT_NE(compact.find(want), std::string::npos) << j;
    std::string err;
    const auto back = from_json(j, err);
    ASSERT_TRUE(back.has_value()) << err;
    EXPECT_EQ(back->system.keys_match, match);
    const std::string m = to_prometheus(s);
    EXPECT_NE(m.find("# TYPE ntp_keys_match gauge\n"), std::string::npos);
    EXPECT_EQ(m.find("\nntp_keys_match 1\n") != std::string::npos, match == true);
    EXPECT_EQ(m.find("\nntp_keys_match 0\n") != std::string::npos, match == false);
    if (!match) EXPECT_EQ(m.find("\nntp_keys_match "), std::string::npos);
    const std::string t = format_status(s);
    EXPECT_EQ(t.find("authentication keys: the same") != std::string::npos, match == true);
    EXPECT_EQ(t.find("reload both") != std::string::npos, match == false);
  }
  // Neither a boolean nor null: refused.
  Status s;
  std::string j = to_json(s), err;
  const size_t at = j.find("\"keys_match\"");
  ASSERT_NE(at, std::string::npos);
  j.replace(j.find("null", at), 4, "\"yes\"");
  EXPECT_FALSE(from_json(j, err).has_value());
  EXPECT_NE(err.find("keys_match"), std::string::npos) << err;
}

TEST(StatusText, FormatStatusSeedDeviceD) {
  // The seed's DeviceD, field by field: the same text as the vendor's
  // except the frequencies (ours is the TSC, in MHz) and the last hex digit
  // of the reference time (see ReferenceTimeOfTheSeed).
  Status s;
  s.system.synchronized = true;
  s.system.leap = 0;
  s.system.stratum = 3;
  s.system.refid_text = "10.0.1.31";
  s.system.nominal_freq_hz = 64.0029;
  s.system.actual_freq_hz = 64.0029;
  s.system.precision_log2 = 7;
  s.system.clock_offset_ns = 0;
  s.system.root_delay_ns = proto::ns_from_short(0x00001000);        // 62.50 ms
  s.system.root_dispersion_ns = 200000;                               // 0.20 ms
  s.system.peer_dispersion_ns = proto::ns_from_short(0x00000200);  // 7.8125 ms
  s.system.reference_time_ns = 1141714353465798000LL;
  s.system.sync_state = "clock synchronized";
  s.system.dataplane_alive = true;
  s.workers.resize(1);
  s.ports.push_back(PortStatus{.name = "GigabitEthernet0/1/0", .ntp_server = true, .link_up = true});
  EXPECT_EQ(format_status(s),
            " service: serving on 1 worker, 1 port\n"
            " clock status: synchronized\n"
            " clock stratum: 3\n"
            " reference clock ID: 10.0.1.31\n"
            " nominal frequency: 0.0001 MHz\n"
            " actual frequency: 0.0001 MHz\n"
            " clock precision: 2^7\n"
            " clock offset: 0.0000 ms\n"
            " root delay: 62.50 ms\n"
            " root dispersion: 0.20 ms\n"
            " peer dispersion: 7.81 ms\n"
            " reference time: 06:52:33.465 UTC Mar 7 2006(C7B7AC31.773E89A9)\n"
            " synchronization state: clock synchronized\n");
}

TEST(StatusText, FormatStatusUnsynchronized) {
  Status s;
  s.system.stratum = 2;  // not shown: unsynchronized is stratum 16
  s.system.refid_text = "INIT";
  s.system.precision_log2 = -20;
  s.system.clock_offset_ns = -49999;  // -0.049999 ms: rounds to -0.0500
  s.system.root_dispersion_ns = -4999;  // rounds to zero: no sign
  s.system.sync_state = "clock not set";
  EXPECT_EQ(format_status(s),
            " service: NOT SERVING (no dataplane heartbeat seen)\n"
            " clock status: unsynchronized\n"
            " clock stratum: 16\n"
            " reference clock ID: INIT\n"
            " nominal frequency: 0.0000 MHz\n"
            " actual frequency: 0.0000 MHz\n"
            " clock precision: 2^-20\n"
            " clock offset: -0.0500 ms\n"
            " root delay: 0.00 ms\n"
            " root dispersion: 0.00 ms\n"
            " peer dispersion: 0.00 ms\n"
            " reference time: 00:00:00.000 UTC Jan 1 1900(00000000.00000000)\n"
            " synchronization state: clock not set\n");
}

// RFC 5905 section 7.3: ASCII at stratum 1 and for kiss codes (stratum 0;
// 16 is how the core says unsynchronized), an IPv4 address above; what is
// not printable ASCII shows as hex, not as '?'.
TEST(StatusWords, ReferenceIdsAsAnOperatorReadsThem) {
  using proto::refid_from_ascii;
  EXPECT_EQ(refid_text(refid_from_ascii("GPS\0"), 1), "GPS");
  EXPECT_EQ(refid_text(refid_from_ascii("PPS\0"), 1), "PPS");
  EXPECT_EQ(refid_text(refid_from_ascii("GOOG"), 1), "GOOG");
  EXPECT_EQ(refid_text(refid_from_ascii("DCF\0"), 1), "DCF");
  EXPECT_EQ(refid_text(0x7F7F0101, 1), "7F7F0101");  // 127.127.1.1: no ASCII
  EXPECT_EQ(refid_text(0x0A00011F, 1), "0A00011F");
  EXPECT_EQ(refid_text(0x41004242, 1), "41004242");  // a NUL inside: not NUL-padded ASCII
  EXPECT_EQ(refid_text(0x417F4242, 1), "417F4242");  // DEL
  EXPECT_EQ(refid_text(0x41C04242, 1), "41C04242");  // not ASCII
  EXPECT_EQ(refid_text(0, 1), "00000000");
  for (int unsync : {0, 16}) {
    EXPECT_EQ(refid_text(proto::kKissInit, unsync), "INIT");
    EXPECT_EQ(refid_text(proto::kKissStep, unsync), "STEP");
    EXPECT_EQ(refid_text(proto::kKissHold, unsync), "HOLD");
    EXPECT_EQ(refid_text(proto::kKissRate, unsync), "RATE");
    EXPECT_EQ(refid_text(proto::kKissDeny, unsync), "DENY");
    EXPECT_EQ(refid_text(0x0A00011F, unsync), "0A00011F");  // a stale address is no kiss code
    EXPECT_EQ(refid_text(0, unsync), "00000000");
  }
  for (int stratum : {2, 3, 15}) {
    EXPECT_EQ(refid_text(0x0A00011F, stratum), "10.0.1.31");
    EXPECT_EQ(refid_text(refid_from_ascii("GPS\0"), stratum), "71.80.83.0");  // an address there, whatever it spells
  }
  EXPECT_EQ(refid_text(0, 2), "0.0.0.0");
  // Our own local clock, in the vendor's word, at whatever stratum it is served.
  for (int stratum : {0, 1, 2, 10, 16}) EXPECT_EQ(refid_text(proto::kRefidLocal, stratum), "LOCAL(0)");
  // Out-of-range strata (a garbled packet) still give text, never a crash.
  EXPECT_EQ(refid_text(0x7F7F0101, 200), "7F7F0101");
  EXPECT_EQ(refid_text(refid_from_ascii("INIT"), -1), "INIT");
}

// The service line: the control plane's "clock status: synchronized" stays
// (it is its own view), but the first line says whether anything is served.
TEST(StatusText, ServiceLineSaysWhetherAnythingIsServed) {
  auto first_line = [](const Status& s) {
    const std::string t = format_status(s);
    return t.substr(0, t.find('\n') + 1);
  };
  Status s = populated();
  s.system.leap_sign = 0;
  EXPECT_EQ(first_line(s), " service: serving on 2 workers, 1 port\n");
  // The dataplane dead for 12 s: NOT SERVING, since when, while the clock
  // status stays the control plane's own.
  s.system.dataplane_alive = false;
  s.system.dataplane_heartbeat_age_s = 12.4;
  s.system.dataplane_last_heartbeat_ns = 1796121662500000000;  // 2026-12-01T10:41:02.5Z
  const std::string down = format_status(s);
  EXPECT_EQ(first_line(s),
            " service: NOT SERVING (dataplane down since 10:41:02 UTC Dec 1 2026, 12 s ago; clock status is the "
            "control plane's own)\n");
  EXPECT_NE(down.find("\n clock status: synchronized\n"), std::string::npos) << down;
  // Alive, but every ntp_server port's link is down.
  s.system.dataplane_alive = true;
  s.ports[0].link_up = false;
  EXPECT_EQ(first_line(s), " service: NOT SERVING (link down on every ntp_server port)\n");
  // Two ntp_server ports, one up.
  s.ports[0].link_up = true;
  s.ports[1].ntp_server = true;
  EXPECT_EQ(first_line(s), " service: serving on 2 workers, 1 port (1 of 2 link down)\n");
  s.ports[1].link_up = true;
  EXPECT_EQ(first_line(s), " service: serving on 2 workers, 2 ports\n");
  // A client-only appliance serves nobody by design.
  s.ports[0].ntp_server = s.ports[1].ntp_server = false;
  EXPECT_EQ(first_line(s), " service: no NTP clients served (no interface has ntp_server = true), 2 workers\n");
  // Through JSON, as ntpctl reads it.
  s.system.dataplane_alive = false;
  std::string err;
  const auto back = from_json(to_json(s), err);
  ASSERT_TRUE(back) << err;
  EXPECT_EQ(format_status(*back), format_status(s));
}

// RFC 5905 LI 1/2 from the clock model's announced leap, as ntpctl shows it.
TEST(StatusText, LeapSecondLine) {
  Status s = populated();
  auto leap_of = [&] {
    const std::string t = format_status(s);
    const size_t at = t.find(" leap second: ");
    return at == std::string::npos ? std::string() : t.substr(at, t.find('\n', at) + 1 - at);
  };
  s.system.leap_smear_ns = 0;
  EXPECT_EQ(leap_of(), " leap second: insert 23:59:60 UTC Dec 31 2016\n");
  s.system.leap_sign = -1;
  s.system.leap_at_ns = 1435708800LL * proto::kNsPerS;  // the end of Jun 30 2015
  EXPECT_EQ(leap_of(), " leap second: delete 23:59:59 UTC Jun 30 2015\n");
  s.system.leap_smear_ns = 86400LL * proto::kNsPerS;
  EXPECT_EQ(leap_of(), " leap second: delete 23:59:59 UTC Jun 30 2015, smeared over 24 h from 12:00:00 UTC Jun 30 "
                       "2015 (leap indicator not passed on)\n");
  s.system.leap_sign = 0;
  EXPECT_EQ(leap_of(), "");
}

Status two_associations() {
  Status s = populated();
  s.associations.resize(2);
  return s;
}

TEST(StatusText, FormatSessionsTwoAssociations) {
  EXPECT_EQ(format_sessions(two_associations(), false),
            " clock source: 10.0.1.31\n"
            " clock stratum: 2\n"
            " clock status: configured, master, sane, valid\n"
            " reference clock ID: LOCAL(0)\n"
            " reach: 255\n"
            " current poll: 128\n"
            " now: 2\n"
            " offset: -0.0123 ms\n"
            " delay: 62.50 ms\n"
            " disper: 0.98 ms\n"
            " authentication: ok\n"
            "\n"
            " clock source: 10.0.1.33\n"
            " clock stratum: 4\n"
            " clock status: unconfigured, sane, valid\n"
            " reference clock ID: 10.0.1.32\n"
            " reach: 17\n"
            " current poll: 0.5\n"
            " now: -\n"
            " offset: 0.1500 ms\n"
            " delay: 0.13 ms\n"
            " disper: 7.81 ms\n"
            " authentication: pending (not yet verified)\n"
            "\n"
            " total sessions: 2\n");
}

TEST(StatusText, FormatSessionsXleaveSaysWhoAnswersBasic) {
  // A client association's remote is a server, a symmetric one's a peer.
  Status s = populated();
  ASSERT_GE(s.associations.size(), 2u);
  s.associations[0].mode = "client";
  s.associations[0].xleave = "basic";
  s.associations[1].mode = "symmetric active";
  s.associations[1].xleave = "basic";
  const std::string t = format_sessions(s, false);
  EXPECT_NE(t.find(" xleave: basic (the server answers in basic mode)\n"), std::string::npos) << t;
  EXPECT_NE(t.find(" xleave: basic (the peer answers in basic mode)\n"), std::string::npos) << t;
}

TEST(StatusText, FormatSessionsNts) {
  // ntpctl sessions: the NTS state, and why when it failed.
  const std::string t = format_sessions(populated(), false);
  EXPECT_NE(t.find(" clock source: 10.0.1.40\n"), std::string::npos);
  EXPECT_NE(t.find(" authentication: ok\n xleave: interleaved\n nts: ok\n\n"), std::string::npos) << t;
  EXPECT_NE(t.find(" authentication: pending (not yet verified)\n nts: ke failed (TLS handshake: The certificate is "
                   "NOT trusted. The certificate issuer is unknown.)\n"),
            std::string::npos)
      << t;
  EXPECT_EQ(t.find(" nts: ", t.find(" clock source: 10.0.1.33")), t.find(" nts: ok")) << "none without NTS";
  const std::string v = format_sessions(populated(), true);
  EXPECT_NE(v.find(" nts cookies: 6, nts-ke: 2 ok, 1 failed, naks: 1\n"), std::string::npos) << v;
  EXPECT_EQ(v.find(" nts cookies: "), v.rfind(" nts cookies: ", v.find(" clock source: 10.0.1.41"))) << v;
}

TEST(StatusText, FormatSessionsVerbose) {
  const std::string v = format_sessions(two_associations(), true);
  const std::string first_block =
      " clock source: 10.0.1.31\n"
      " clock stratum: 2\n"
      " clock status: configured, master, sane, valid\n"
      " reference clock ID: LOCAL(0)\n"
      " reach: 255\n"
      " current poll: 128\n"
      " now: 2\n"
      " offset: -0.0123 ms\n"
      " delay: 62.50 ms\n"
      " disper: 0.98 ms\n"
      " authentication: ok\n"
      " remote port: 1123\n"
      " local mode: client\n"
      " peer mode: server\n"
      " peer poll: 64\n"
      " root delay: 0.00 ms\n"
      " root dispersion: 0.20 ms\n"
      " sync distance: 32.25 ms\n"
      " precision: 2^-23\n"
      " version: 3\n"
      " leap indicator: 0\n"
      " selection: system peer\n"
      " jitter: 0.0043 ms\n"
      " association type: configured\n"
      " reference time: 06:52:33.465 UTC Mar 7 2006(C7B7AC31.773E89A9)\n"
      " authentication keyid: 1\n"
      " authentication packets: 41 ok, 3 missing, 2 bad, 1 crypto-NAK\n"
      " filter delay:    62.5000   62.6000         -         -         -         -         -         -\n"
      " filter offset:   -0.0123   -0.0200         -         -         -         -         -         -\n"
      " filter disper:    0.9800    1.0000         -         -         -         -         -         -\n"
      "\n";
  EXPECT_EQ(v.substr(0, first_block.size()), first_block);
  EXPECT_NE(v.find(" association type: dynamic\n"), std::string::npos);
  EXPECT_NE(v.find(" local mode: symmetric passive\n peer mode: symmetric active\n peer poll: 1\n"),
            std::string::npos);
  EXPECT_NE(v.find(" filter delay:          -         -"), std::string::npos);
  EXPECT_TRUE(v.ends_with("\n\n total sessions: 2\n"));
  // Our requests' nonces stay ours: no origin, receive or transmit timestamp.
  EXPECT_EQ(v.find("origin"), std::string::npos);
  EXPECT_EQ(v.find("receive timestamp"), std::string::npos);
  EXPECT_EQ(v.find("transmit timestamp"), std::string::npos);
}

TEST(StatusJson, NoTimestampThatRevealsANonce) {
  const std::string j = to_json(populated());
  EXPECT_EQ(j.find("origin"), std::string::npos);
  EXPECT_EQ(j.find("receive_ts"), std::string::npos);
  EXPECT_EQ(j.find("transmit_ts"), std::string::npos);
  // An older /status that still has them is read, the keys ignored.
  std::string err;
  const auto t = from_json(
      R"({"system": {"synchronized": true, "leap": 0, "stratum": 2},
          "associations": [{"address": "10.0.1.31", "origin_ts": 1, "transmit_ts": 2}]})",
      err);
  ASSERT_TRUE(t.has_value()) << err;
  EXPECT_EQ(t->associations.at(0).address, "10.0.1.31");
}

TEST(StatusJson, TopLimitedSourcesAreChecked) {
  std::string err;
  const std::string sys = R"("system": {"synchronized": true, "leap": 0, "stratum": 2})";
  EXPECT_FALSE(from_json("{" + sys + R"(, "workers": [{"id": 0, "top_limited": [{"limited": 3}]}]})", err));
  EXPECT_EQ(err, "workers[0].top_limited[0].address: missing");
  EXPECT_FALSE(from_json("{" + sys + R"(, "workers": [{"id": 0, "top_limited": {"address": "x"}}]})", err));
  EXPECT_FALSE(
      from_json("{" + sys + R"(, "workers": [{"id": 0, "top_limited": [{"address": "x", "limited": -1}]}]})", err));
  const auto ok =
      from_json("{" + sys + R"(, "workers": [{"id": 0, "top_limited": [{"address": "192.0.2.9", "limited": 7}]}]})",
                err);
  ASSERT_TRUE(ok.has_value()) << err;
  ASSERT_EQ(ok->workers.at(0).top_limited.size(), 1u);
  EXPECT_EQ(ok->workers[0].top_limited[0].address, "192.0.2.9");
  EXPECT_EQ(ok->workers[0].top_limited[0].limited, 7u);
}

TEST(StatusText, FormatLimits) {
  Status s = populated();
  s.workers[0].drops[static_cast<size_t>(proto::DropReason::kRateLimited)] = 5000;
  s.workers[0].drops[static_cast<size_t>(proto::DropReason::kReplyCap)] = 6;
  s.workers[0].drops[static_cast<size_t>(proto::DropReason::kAccessDenied)] = 77;
  s.workers[0].drops[static_cast<size_t>(proto::DropReason::kNotAPeer)] = 8;
  s.workers[0].drops[static_cast<size_t>(proto::DropReason::kUnexpectedServer)] = 9;
  const std::string expected =
      " worker 0\n"
      " client table: 1048576 of 1048576 entries (100.0%), 32.0 MiB\n"
      " clients entered: 2000000, of which evicted another: 951424\n"
      " kiss-o'-death sent: 41 RATE, 42 DENY\n"
      " over the limit but answered (leak): 43\n"
      " dropped: 5000 rate limited, 6 over the reply cap, 77 access denied, 8 not a peer, 9 unexpected server\n"
      " top limited sources:\n"
      "  192.0.2.7                                     900000 limited, last 06:52:33 UTC Mar 7 2006\n"
      "  2001:db8::1                                       12 limited, last -\n"
      "\n"
      " worker 1\n"
      " client table: 0 of 0 entries (0.0%), 0.0 MiB\n"
      " clients entered: 0, of which evicted another: 0\n"
      " kiss-o'-death sent: 0 RATE, 0 DENY\n"
      " over the limit but answered (leak): 0\n"
      " dropped: 0 rate limited, 0 over the reply cap, 0 access denied, 0 not a peer, 0 unexpected server\n"
      " top limited sources: none\n"
      "\n";
  EXPECT_EQ(format_limits(s), expected);
  EXPECT_EQ(format_limits(Status{}), " no workers\n");
}

TEST(StatusText, FormatSessionsEdges) {
  EXPECT_EQ(format_sessions(Status{}, false), " no sessions\n");
  EXPECT_EQ(format_sessions(Status{}, true), " no sessions\n");
  Status s;
  AssociationStatus a;
  a.address = "192.0.2.1";
  a.poll_log2 = -4;
  a.since_last_rx_s = 0.999;
  s.associations.push_back(a);
  const std::string t = format_sessions(s, false);
  EXPECT_NE(t.find(" current poll: 0.0625\n now: 0\n"), std::string::npos) << t;
  EXPECT_TRUE(t.ends_with("\n\n total sessions: 1\n")) << t;
}

// The log lines of the core's events, as ntp-control has always logged them.
TEST(StatusText, EventLogLines) {
  using ctl::Event;
  using ctl::EventKind;
  constexpr uint32_t kC = 0x0A00011F;
  const std::pair<Event, const char*> cases[] = {
      {{.kind = EventKind::kKissOfDeath, .address = kC, .refid = proto::kKissRate}, "kiss-o'-death RATE from 10.0.1.31"},
      {{.kind = EventKind::kPassiveCreated, .address = kC, .poll_log2 = -1},
       "symmetric passive association with 10.0.1.31 (poll 2^-1 s)"},
      {{.kind = EventKind::kPassiveRemoved, .address = kC}, "symmetric passive association with 10.0.1.31 removed: unreachable"},
      {{.kind = EventKind::kPassiveRemoved, .address = kC, .refid = proto::kKissDeny, .removal = ctl::Removal::kKiss},
       "symmetric passive association with 10.0.1.31 removed: kiss-o'-death DENY"},
      {{.kind = EventKind::kPassiveRemoved, .address = kC, .removal = ctl::Removal::kNotAllowed},
       "symmetric passive association with 10.0.1.31 removed: no longer allowed to peer (access.peer)"},
      {{.kind = EventKind::kAssociationAdded, .address = kC, .mode = ctl::AssocMode::kClient},
       "client association with 10.0.1.31 added"},
      {{.kind = EventKind::kAssociationRemoved, .address = kC, .mode = ctl::AssocMode::kSymmetricActive},
       "symmetric active association with 10.0.1.31 removed: no longer configured"},
      {{.kind = EventKind::kPollingStopped, .address = kC, .refid = proto::kKissRstr},
       "no more packets to 10.0.1.31: it answered kiss-o'-death RSTR"},
      {{.kind = EventKind::kUnsynchronized, .reason = ctl::UnsyncReason::kNoSelectableSource},
       "unsynchronized: no selectable source"},
      {{.kind = EventKind::kUnsynchronized, .reason = ctl::UnsyncReason::kPanic}, "unsynchronized: panic"},
      {{.kind = EventKind::kSystemPeerLost, .address = kC}, "lost the system peer 10.0.1.31: no selectable source"},
      {{.kind = EventKind::kLocalClockFallback, .stratum = 2}, "falling back to the local clock at stratum 2"},
      {{.kind = EventKind::kSystemPeer, .address = kC, .offset_ns = 12'345, .stratum = 2,
        .mode = ctl::AssocMode::kSymmetricActive},
       "system peer 10.0.1.31 (symmetric active, stratum 2, offset +0.012 ms)"},
      {{.kind = EventKind::kPanic, .address = kC, .offset_ns = -2'000'000'000'000},
       "offset -2000000.000 ms is beyond the panic threshold: not adjusting the clock (set it by hand)"},
      {{.kind = EventKind::kSpike, .address = kC, .offset_ns = 150'000'000},
       "spike: offset +150.000 ms from 10.0.1.31 ignored until it persists"},
      {{.kind = EventKind::kStep, .address = kC, .offset_ns = -6'500'000}, "clock stepped by -6.500 ms"},
      {{.kind = EventKind::kSynchronized, .address = kC, .stratum = 3}, "synchronized to 10.0.1.31 at stratum 3"},
      {{.kind = EventKind::kPollingRestarted, .address = kC, .refid = proto::kKissDeny, .mode = ctl::AssocMode::kClient},
       "client association with 10.0.1.31 restarted by the reload (it had answered kiss-o'-death DENY)"},
  };
  for (const auto& [e, text] : cases) EXPECT_EQ(format_event(e), text);
}

// ---------------------------------------------------------------------------
// Prometheus

// A strict reader of the text exposition format 0.0.4 (the same rules as
// tests/tools/promcheck.py): returns every violation, "line N: what".
struct PromSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;  // unescaped values, in order
  std::string value;
};

bool valid_metric_name(const std::string& n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool valid_label_name(const std::string& n) {
  if (n.empty() || n.starts_with("__")) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool valid_prom_float(const std::string& v) {
  if (v == "NaN" || v == "+Inf" || v == "-Inf") return true;
  size_t i = 0;
  if (i < v.size() && (v[i] == '+' || v[i] == '-')) ++i;
  size_t digits = 0;
  while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) ++i, ++digits;
  if (i < v.size() && v[i] == '.') {
    ++i;
    while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < v.size() && (v[i] == 'e' || v[i] == 'E')) {
    ++i;
    if (i < v.size() && (v[i] == '+' || v[i] == '-')) ++i;
    size_t exp_digits = 0;
    while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == v.size();
}

// Parses `name{a="b",...} value`; returns an error or "".
std::string parse_sample(const std::string& line, PromSample& s) {
  size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  s.name = line.substr(0, i);
  if (!valid_metric_name(s.name)) return "invalid metric name '" + s.name + "'";
  if (i < line.size() && line[i] == '{') {
    ++i;
    std::set<std::string> seen;
    while (true) {
      if (i >= line.size()) return "unterminated label set";
      if (line[i] == '}') {
        ++i;
        break;
      }
      size_t j = i;
      while (j < line.size() && line[j] != '=') ++j;
      const std::string lname = line.substr(i, j - i);
      if (!valid_label_name(lname)) return "invalid label name '" + lname + "'";
      if (!seen.insert(lname).second) return "duplicate label '" + lname + "'";
      if (j + 1 >= line.size() || line[j + 1] != '"') return "label value not quoted";
      i = j + 2;
      std::string val;
      while (true) {
        if (i >= line.size()) return "unterminated label value";
        const char c = line[i];
        if (c == '"') break;
        if (c == '\\') {
          if (i + 1 >= line.size()) return "dangling backslash";
          const char e = line[i + 1];
          if (e == '\\') val += '\\';
          else if (e == '"') val += '"';
          else if (e == 'n') val += '\n';
          else return std::string("invalid escape \\") + e;
          i += 2;
          continue;
        }
        if (c == '\n') return "raw newline in label value";
        val += c;
        ++i;
      }
      ++i;  // closing quote
      s.labels.emplace_back(lname, val);
      if (i < line.size() && line[i] == ',') {
        ++i;
      } else if (i < line.size() && line[i] != '}') {
        return "expected ',' or '}' after a label";
      }
    }
  }
  if (i >= line.size() || line[i] != ' ') return "expected one space before the value";
  s.value = line.substr(i + 1);
  if (!valid_prom_float(s.value)) return "invalid value '" + s.value + "'";
  return "";
}

std::vector<std::string> check_prometheus(const std::string& text, std::vector<PromSample>* samples = nullptr) {
  std::vector<std::string> errs;
  if (text.empty() || text.back() != '\n') errs.push_back("text does not end with a newline");
  std::map<std::string, std::string> type;  // family -> type
  std::set<std::string> help, families_with_samples, closed, series;
  std::string current;  // family of the last sample
  std::istringstream in(text);
  std::string line;
  int n = 0;
  auto err = [&](const std::string& what) { errs.push_back("line " + std::to_string(n) + ": " + what); };
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) {
      err("empty line");
      continue;
    }
    if (line[0] == '#') {
      std::istringstream ls(line);
      std::string hash, kw, name, rest;
      ls >> hash >> kw >> name;
      std::getline(ls, rest);
      if (hash != "#") {
        err("comment without a space after '#'");
        continue;
      }
      if (kw != "HELP" && kw != "TYPE") continue;  // a plain comment
      if (!valid_metric_name(name)) err("invalid metric name in " + kw + ": '" + name + "'");
      if (families_with_samples.count(name)) err(kw + " for " + name + " after its samples");
      if (kw == "HELP") {
        if (!help.insert(name).second) err("second HELP for " + name);
        if (rest.size() < 2) err("empty HELP for " + name);
      } else {
        const std::string t = rest.empty() ? "" : rest.substr(1);
        if (t != "counter" && t != "gauge" && t != "histogram" && t != "summary" && t != "untyped")
          err("unknown type '" + t + "' for " + name);
        if (type.count(name)) err("second TYPE for " + name);
        type[name] = t;
        if (t == "counter" && !name.ends_with("_total")) err("counter " + name + " does not end in _total");
      }
      continue;
    }
    PromSample s;
    const std::string e = parse_sample(line, s);
    if (!e.empty()) {
      err(e);
      continue;
    }
    const std::string& fam = s.name;  // we emit neither histograms nor summaries
    if (!fam.starts_with("ntp_")) err("metric " + fam + " is not ntp_ prefixed");
    if (!help.count(fam)) err("sample of " + fam + " without a HELP before it");
    if (!type.count(fam)) err("sample of " + fam + " without a TYPE before it");
    if (fam != current) {
      if (closed.count(fam)) err("samples of " + fam + " are not grouped together");
      if (!current.empty()) closed.insert(current);
      current = fam;
    }
    families_with_samples.insert(fam);
    auto sorted = s.labels;
    std::sort(sorted.begin(), sorted.end());
    std::string key = fam;
    for (const auto& [k, v] : sorted) key += "\x01" + k + "\x02" + v;
    if (!series.insert(key).second) err("duplicate series " + line.substr(0, line.rfind(' ')));
    if (type.count(fam) && type[fam] == "counter") {
      if (s.value.starts_with('-') || s.value == "NaN") err("counter " + fam + " with value " + s.value);
    }
    if (samples) samples->push_back(std::move(s));
  }
  return errs;
}

TEST(StatusPrometheus, TheCheckerCatchesMistakes) {
  const std::string ok = "# HELP ntp_a_total A.\n# TYPE ntp_a_total counter\nntp_a_total{x=\"1\"} 1\n";
  EXPECT_TRUE(check_prometheus(ok).empty());
  const char* bad[] = {
      "# HELP ntp_a_total A.\n# TYPE ntp_a_total counter\nntp_a_total{x=\"1\"} 1",         // no final newline
      "# TYPE ntp_a gauge\nntp_a 1\n",                                                   // no HELP
      "# HELP ntp_a A.\nntp_a 1\n",                                                      // no TYPE
      "# HELP ntp_a A.\nntp_a 1\n# TYPE ntp_a gauge\n",                                  // TYPE after the sample
      "# HELP ntp_a A.\n# TYPE ntp_a counter\nntp_a 1\n",                                // counter without _total
      "# HELP ntp_a A.\n# TYPE ntp_a gauge\nntp_a 1\nntp_a 2\n",                         // duplicate series
      "# HELP ntp_a A.\n# TYPE ntp_a gauge\nntp_a{x=\"1\",y=\"2\"} 1\nntp_a{y=\"2\",x=\"1\"} 1\n",
      "# HELP ntp_a A.\n# TYPE ntp_a gauge\nntp_a{x=\"a\\tb\"} 1\n",                   // bad escape
      "# HELP ntp_a A.\n# TYPE ntp_a gauge\nntp_a{x=\"a\"b\"} 1\n",                     // unescaped quote
      "# HELP ntp_a A.\n# TYPE ntp_a gauge\nntp_a{x=1} 1\n",
      "# HELP ntp_a A.\n# TYPE ntp_a gauge\nntp_a{__x=\"1\"} 1\n",
      "# HELP ntp_a A.\n# TYPE ntp_a gauge\nntp_a 1.2.3\n",
      "# HELP ntp_a A.\n# TYPE ntp_a gauge\nntp_a inf\n",
      "# HELP ntp_a A.\n# TYPE ntp_a gauge\nntp_a\n",
      "# HELP ntp_a A.\n# TYPE ntp_a gauge\n1ntp_a 1\n",
      "# HELP ntp_a A.\n# TYPE ntp_a sometimes\nntp_a 1\n",
      "# HELP a A.\n# TYPE a gauge\na 1\n",                                             // not ntp_
      ("# HELP ntp_a A.\n# TYPE ntp_a gauge\nntp_a{x=\"1\"} 1\n# HELP ntp_b B.\n# TYPE ntp_b gauge\nntp_b 1\n"
       "ntp_a{x=\"2\"} 1\n"),                                                             // not grouped
  };
  for (const char* t : bad) EXPECT_FALSE(check_prometheus(t).empty()) << t;
}

std::map<std::string, std::string> by_series(const std::vector<PromSample>& samples) {
  std::map<std::string, std::string> m;
  for (const auto& s : samples) {
    std::string k = s.name;
    if (!s.labels.empty()) {
      k += '{';
      for (size_t i = 0; i < s.labels.size(); ++i)
        k += (i ? "," : "") + s.labels[i].first + "=\"" + s.labels[i].second + "\"";
      k += '}';
    }
    m[k] = s.value;
  }
  return m;
}

TEST(StatusPrometheus, PopulatedPassesTheStrictChecker) {
  const std::string text = to_prometheus(populated());
  std::vector<PromSample> samples;
  const auto errs = check_prometheus(text, &samples);
  for (const auto& e : errs) ADD_FAILURE() << e;
  ASSERT_TRUE(errs.empty()) << text;

  // Exact sample lines.
  const char* lines[] = {
      "ntp_build_info{version=\"0.1.0-test\",sysname=\"DeviceD\"} 1\n",
      "\nntp_synchronized 1\n",
      "\nntp_leap 0\n",
      "\nntp_stratum 2\n",
      "\nntp_root_delay_seconds 0.000001234\n",
      "\nntp_root_dispersion_seconds 0.000015258\n",
      "\nntp_peer_dispersion_seconds 0.000004999\n",
      "\nntp_clock_offset_seconds 0.0000123\n",
      "\nntp_reference_time_seconds 1141714550.784424\n",
      "\nntp_precision_log2 -24\n",
      "\nntp_timebase_nominal_hertz 2899999100\n",
      "\nntp_timebase_actual_hertz 2900012400\n",
      "\nntp_frequency_ppm 4.5867\n",
      "\nntp_clock_minus_host_seconds -0.0000015\n",
      "\nntp_holdover_seconds 300.5\n",
      "\nntp_control_uptime_seconds 12.25\n",
      "\nntp_dataplane_uptime_seconds 3600.75\n",
      "\nntp_dataplane_alive 1\n",
      "\nntp_state_publications_total 987\n",
      "\nntp_port_info{port=\"GigabitEthernet0/1/0\",device=\"net_af_packet0,iface=veth0\",driver=\"net_af_packet\","
      "mac=\"02:00:00:00:01:32\",address=\"10.0.1.32/24\",timestamping=\"software\"} 1\n",
      "\nntp_port_link_up{port=\"GigabitEthernet0/1/0\"} 1\n",
      "\nntp_port_link_up{port=\"GigabitEthernet0/2/0\"} 0\n",
      "\nntp_port_ntp_server{port=\"GigabitEthernet0/2/0\"} 0\n",
      "\nntp_worker_rx_packets_total{worker=\"0\"} 1000001\n",
      "\nntp_worker_rx_packets_total{worker=\"1\"} 18446744073709551615\n",
      "\nntp_worker_tx_packets_total{worker=\"0\"} 1000002\n",
      "\nntp_worker_ntp_requests_total{worker=\"0\"} 999990\n",
      "\nntp_worker_ntp_unsync_replies_total{worker=\"0\"} 12\n",
      "\nntp_worker_ntp_to_control_total{worker=\"0\"} 34\n",
      "\nntp_worker_arp_replies_total{worker=\"0\"} 5\n",
      "\nntp_worker_arp_learned_total{worker=\"0\"} 6\n",
      "\nntp_worker_icmp_echo_replies_total{worker=\"0\"} 7\n",
      "\nntp_worker_control_tx_total{worker=\"0\"} 33\n",
      "\nntp_worker_polls_total{worker=\"0\"} 123456789012\n",
      "\nntp_worker_busy_polls_total{worker=\"0\"} 1000000\n",
      "\nntp_worker_state_read_retries_total{worker=\"0\"} 3\n",
      "\nntp_worker_drops_total{worker=\"0\",reason=\"bad_udp_checksum\"} 7\n",
      "\nntp_worker_drops_total{worker=\"0\",reason=\"tx_full\"} 0\n",
      "\nntp_worker_drops_total{worker=\"1\",reason=\"not_for_us\"} 1\n",
      "\nntp_worker_drops_total{worker=\"1\",reason=\"bad_source_address\"} 0\n",
      "\nntp_worker_drops_total{worker=\"1\",reason=\"rate_limited\"} 0\n",
      "\nntp_worker_kod_rate_total{worker=\"0\"} 41\n",
      "\nntp_worker_ratelimit_evictions_total{worker=\"0\"} 951424\n",
      "\nntp_ratelimit_table_entries{worker=\"0\"} 1048576\n",
      "\nntp_ratelimit_table_capacity{worker=\"0\"} 1048576\n",
      "\nntp_ratelimit_memory_bytes{worker=\"0\"} 33554432\n",
      "\nntp_ratelimit_table_entries{worker=\"1\"} 0\n",
      "\nntp_association_reach{address=\"10.0.1.31\",mode=\"client\",dynamic=\"false\"} 255\n",
      "\nntp_association_reach{address=\"10.0.1.33\",mode=\"symmetric passive\",dynamic=\"true\"} 17\n",
      "\nntp_association_stratum{address=\"10.0.1.31\",mode=\"client\",dynamic=\"false\"} 2\n",
      "\nntp_association_offset_seconds{address=\"10.0.1.31\",mode=\"client\",dynamic=\"false\"} -0.000012345\n",
      "\nntp_association_delay_seconds{address=\"10.0.1.31\",mode=\"client\",dynamic=\"false\"} 0.0625\n",
      "\nntp_association_dispersion_seconds{address=\"10.0.1.31\",mode=\"client\",dynamic=\"false\"} 0.00098\n",
      "\nntp_association_jitter_seconds{address=\"10.0.1.31\",mode=\"client\",dynamic=\"false\"} 0.000004321\n",
      "\nntp_association_poll_log2{address=\"10.0.1.33\",mode=\"symmetric passive\",dynamic=\"true\"} -1\n",
      "\nntp_association_since_last_rx_seconds{address=\"10.0.1.31\",mode=\"client\",dynamic=\"false\"} 2.75\n",
      "\nntp_association_since_last_rx_seconds{address=\"10.0.1.33\",mode=\"symmetric passive\",dynamic=\"true\"} -1\n",
      "\nntp_association_selected{address=\"10.0.1.31\",mode=\"client\",dynamic=\"false\",selection=\"system peer\"} 1\n",
      "\nntp_association_selected{address=\"10.0.1.33\",mode=\"symmetric passive\",dynamic=\"true\","
      "selection=\"candidate\"} 0\n",
  };
  for (const char* l : lines) EXPECT_NE(text.find(l), std::string::npos) << "missing: " << l;
  EXPECT_TRUE(text.starts_with("# HELP ntp_build_info "));
  // The limited sources are no metric series: one per client would explode
  // the scrape's cardinality.
  EXPECT_EQ(text.find("192.0.2.7"), std::string::npos);
  EXPECT_EQ(text.find("2001:db8::1"), std::string::npos);

  // Every drop reason of every worker, zero or not.
  const auto m = by_series(samples);
  for (const auto& w : populated().workers)
    for (size_t r = 0; r < proto::kDropReasonCount; ++r) {
      const std::string k = "ntp_worker_drops_total{worker=\"" + std::to_string(w.id) + "\",reason=\"" +
                            proto::drop_reason_name(static_cast<proto::DropReason>(r)) + "\"}";
      ASSERT_TRUE(m.count(k)) << k;
      EXPECT_EQ(m.at(k), std::to_string(w.drops[r])) << k;
    }
  // Deterministic.
  EXPECT_EQ(to_prometheus(populated()), text);
}

TEST(StatusPrometheus, EmptyAndOddValuesStayValid) {
  {
    const std::string text = to_prometheus(Status{});
    const auto errs = check_prometheus(text);
    for (const auto& e : errs) ADD_FAILURE() << e;
    EXPECT_NE(text.find("\nntp_stratum 16\n"), std::string::npos);
    EXPECT_NE(text.find("\nntp_build_info{version=\"\",sysname=\"\"} 1\n"), std::string::npos);
  }
  Status s = populated();
  s.system.sysname = "a\"b\\c\nd";
  s.system.version = "bad utf-8 \xFF\xC3";
  s.system.nominal_freq_hz = std::numeric_limits<double>::quiet_NaN();
  s.system.actual_freq_hz = std::numeric_limits<double>::infinity();
  s.system.frequency_ppm = -std::numeric_limits<double>::infinity();
  s.system.holdover_s = 1e300;
  s.system.clock_offset_ns = std::numeric_limits<int64_t>::min();
  s.associations.push_back(s.associations[0]);  // a duplicate identity: kept once
  s.workers.push_back(s.workers[0]);
  std::vector<PromSample> samples;
  const std::string text = to_prometheus(s);
  const auto errs = check_prometheus(text, &samples);
  for (const auto& e : errs) ADD_FAILURE() << e;
  EXPECT_NE(text.find("sysname=\"a\\\"b\\\\c\\nd\""), std::string::npos) << text;
  EXPECT_NE(text.find("version=\"bad utf-8 \xEF\xBF\xBD\xEF\xBF\xBD\""), std::string::npos);
  EXPECT_NE(text.find("\nntp_timebase_nominal_hertz NaN\n"), std::string::npos);
  EXPECT_NE(text.find("\nntp_timebase_actual_hertz +Inf\n"), std::string::npos);
  EXPECT_NE(text.find("\nntp_frequency_ppm -Inf\n"), std::string::npos);
  EXPECT_NE(text.find("\nntp_holdover_seconds 1e+300\n"), std::string::npos);
  EXPECT_NE(text.find("\nntp_clock_offset_seconds -9223372036.854775808\n"), std::string::npos);
  bool found_label = false;
  for (const auto& smp : samples)
    if (smp.name == "ntp_build_info") found_label = smp.labels.at(1).second == "a\"b\\c\nd";
  EXPECT_TRUE(found_label);
}

TEST(StatusPrometheus, ValuesParseBackExactly) {
  const std::string text = to_prometheus(populated());
  std::vector<PromSample> samples;
  ASSERT_TRUE(check_prometheus(text, &samples).empty());
  const auto m = by_series(samples);
  EXPECT_EQ(std::strtod(m.at("ntp_timebase_nominal_hertz").c_str(), nullptr), 2899999100.0);
  EXPECT_EQ(std::strtod(m.at("ntp_frequency_ppm").c_str(), nullptr), 4.5867);
  EXPECT_EQ(std::strtod(m.at("ntp_reference_time_seconds").c_str(), nullptr), 1141714550.784424);
}


// --- golden output -----------------------------------------------------------
// The bytes /status and /metrics serve for populated() with every port field
// set, pinned: a renamed key, a wrong unit, label or help in the field tables
// fails here (the round trip above cannot see them, since one table drives
// both directions). After a deliberate change, GOLDEN_UPDATE=1 rewrites the
// files; review their diff.

Status populated_with_nic() {
  Status s = populated();
  PortStatus& p = s.ports.at(1);
  p.timestamp_reason = "hardware: RX timestamp offload and a readable NIC clock";
  p.nic_map_valid = true;
  p.nic_clock_hz = 1000000012.5;
  p.nic_residual_ns = 3.25;
  p.nic_rounds = 1200;
  p.nic_outliers = 3;
  p.nic_restarts = 1;
  p.tx_compensation_ns = 120;
  p.hw_timestamps = 5000;
  p.sw_timestamps = 7;
  p.hw_rejected = 2;
  p.hw_minus_sw_mean_ns = -850;
  p.hw_minus_sw_max_ns = 4100;
  s.ports.at(0).nic_emulated = true;
  return s;
}

void expect_golden(const std::string& name, const std::string& actual) {
  const std::string path = std::string(SOURCE_ROOT) + "/tests/support/golden/" + name;
  if (std::getenv("GOLDEN_UPDATE")) {
    std::ofstream(path, std::ios::binary) << actual;
    GTEST_SKIP() << "rewrote " << path;
  }
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in) << path << " is missing (GOLDEN_UPDATE=1 writes it)";
  std::stringstream want;
  want << in.rdbuf();
  if (want.str() == actual) return;
  // The first differing line, rather than two 20 kB strings.
  std::istringstream a(actual), w(want.str());
  std::string la, lw;
  for (int line = 1;; line++) {
    const bool more_a = static_cast<bool>(std::getline(a, la)), more_w = static_cast<bool>(std::getline(w, lw));
    if (!more_a && !more_w) break;
    if (la != lw || more_a != more_w) {
      ADD_FAILURE() << path << ":" << line << " differs\n  want: " << (more_w ? lw : "<end>")
                    << "\n  got:  " << (more_a ? la : "<end>");
      return;
    }
  }
  ADD_FAILURE() << path << ": differs (line ends)";
}

TEST(StatusGolden, Json) { expect_golden("status.json", to_json(populated_with_nic())); }

TEST(StatusGolden, Prometheus) { expect_golden("metrics.prom", to_prometheus(populated_with_nic())); }

}  // namespace
}  // namespace ntp::status
