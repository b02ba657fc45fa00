#include "control/status/snapshot.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include <arpa/inet.h>

#include "control/status/words.h"
#include "proto/access.h"
#include "proto/inet.h"
#include "proto/ntp_packet.h"

namespace ntp::status {

namespace {

// A NUL-padded char array of the segment.
template <size_t N>
std::string text_of(const char (&a)[N]) {
  return std::string(a, strnlen(a, N));
}

uint64_t rd(const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); }

// IPv4 (v4-mapped) as a dotted quad, else RFC 5952 text.
std::string ip_text(const proto::IpAddress& a) {
  if (a.is_v4()) return proto::ipv4_to_string(a.v4_host_order());
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, a.bytes, buf, sizeof buf);
  return buf;
}

SystemStatus system_status(const proto::SegmentHeader& h, const ctl::EngineState& engine, const ControlFacts& f) {
  const ctl::SystemVariables& sys = engine.system;
  SystemStatus y;
  y.sysname = f.sysname;
  y.version = f.version;
  y.synchronized = sys.synchronized;
  y.leap = sys.leap;
  y.stratum = sys.stratum;
  y.refid = sys.refid;
  y.refid_text = refid_text(sys.refid, sys.synchronized ? sys.stratum : 0);
  y.reference = sys.reference;
  y.nominal_freq_hz = static_cast<double>(f.model.nominal_hz);
  y.frequency_ppm = static_cast<double>(f.model.freq_ppb) / 1000.0;
  y.actual_freq_hz = y.nominal_freq_hz * (1.0 - y.frequency_ppm * 1e-6);
  y.precision_log2 = f.precision_log2;
  y.clock_offset_ns = sys.offset_ns;
  y.root_delay_ns = sys.root_delay_ns;
  y.root_dispersion_ns = sys.root_dispersion_ns;
  y.peer_dispersion_ns = sys.peer_dispersion_ns;
  y.reference_time_ns = sys.reference_time_ns;
  y.sync_state = sync_state_text(engine.sync_state);
  y.clock_source = f.clock_source;
  y.clock_minus_host_ns = f.served_ns - f.host_ns;
  y.holdover_s = f.holdover_s;
  y.control_uptime_s = f.control_uptime_s;
  y.dataplane_uptime_s = static_cast<double>(f.now_raw - h.dataplane_start_raw.load()) / f.timebase_hz;
  const uint64_t heartbeat_raw = h.dataplane_heartbeat_raw.load();
  // A heartbeat stamped after now_raw was read is fresh, not 2^64 ticks old.
  const double age_s = heartbeat_raw == 0 || f.timebase_hz <= 0 || heartbeat_raw > f.now_raw
                           ? 0
                           : static_cast<double>(f.now_raw - heartbeat_raw) / f.timebase_hz;
  y.dataplane_alive = heartbeat_raw != 0 && age_s < kDataplaneAliveS;
  y.dataplane_heartbeat_age_s = age_s;
  y.dataplane_last_heartbeat_ns = heartbeat_raw == 0 ? 0 : f.host_ns - static_cast<int64_t>(age_s * 1e9);
  y.leap_sign = f.model.leap_sign;
  y.leap_at_ns = f.model.leap_sign != 0 ? f.model.leap_ns : 0;
  y.leap_smear_ns = f.model.leap_sign != 0 ? f.model.leap_smear_ns : 0;
  y.dataplane_pid = h.dataplane_pid;
  y.control_pid = f.control_pid;
  y.state_publications = f.state_publications;
  y.keys_match = f.keys_match;
  return y;
}

PortStatus port_status(const proto::SegmentHeader& h, uint32_t i) {
  const proto::PortInfo& p = h.ports[i];
  PortStatus ps;
  ps.name = text_of(p.name);
  ps.device = text_of(p.device);
  ps.driver = text_of(p.driver);
  char mac[18];
  std::snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", p.mac[0], p.mac[1], p.mac[2], p.mac[3], p.mac[4],
                p.mac[5]);
  ps.mac = mac;
  ps.address = proto::ipv4_to_string(p.ipv4) + "/" + std::to_string(p.prefix_len);
  ps.vlan = p.vlan;
  ps.ntp_server = p.ntp_server;
  ps.timestamping = p.timestamping == proto::kTimestampHardware ? "hardware" : "software";
  ps.timestamp_reason = text_of(p.timestamp_reason);
  ps.nic_emulated = p.nic_emulated;
  ps.nic_map_valid = p.nic_map_valid;
  ps.nic_clock_hz = static_cast<double>(p.nic_clock_mhz.load(std::memory_order_relaxed)) / 1000.0;
  ps.nic_residual_ns = static_cast<double>(p.nic_residual_ps.load(std::memory_order_relaxed)) / 1000.0;
  ps.nic_rounds = rd(p.nic_rounds);
  ps.nic_outliers = rd(p.nic_outliers);
  ps.nic_restarts = rd(p.nic_restarts);
  ps.tx_compensation_ns = p.tx_compensation_ns;
  // Each worker counts the port's receive timestamps on its own queue.
  int64_t diff_sum = 0;
  for (uint32_t w = 0; w < std::min<uint32_t>(h.n_workers, proto::kMaxWorkers); w++) {
    const proto::PortTimestampCounters& t = h.workers[w].timestamps[i];
    ps.hw_timestamps += rd(t.hardware);
    ps.sw_timestamps += rd(t.software);
    ps.hw_rejected += rd(t.rejected);
    ps.tx_hw_timestamps += rd(t.tx_hardware);
    ps.tx_sw_timestamps += rd(t.tx_software);
    diff_sum += t.hw_minus_sw_sum_ns.load(std::memory_order_relaxed);
    ps.hw_minus_sw_max_ns = std::max(ps.hw_minus_sw_max_ns, rd(t.hw_minus_sw_max_ns));
  }
  ps.hw_minus_sw_mean_ns = ps.hw_timestamps ? diff_sum / static_cast<int64_t>(ps.hw_timestamps) : 0;
  ps.link_up = p.link_up;
  ps.link_speed_mbps = p.link_speed_mbps;
  return ps;
}

WorkerStatus worker_status(const proto::SegmentHeader& h, uint32_t w) {
  const proto::WorkerCounters& c = h.workers[w];
  WorkerStatus ws;
  ws.id = w;
  for (size_t i = 0; i < proto::kWorkerCounterCount; i++) ws.counters[i] = rd(c.*proto::kWorkerCounterFields[i].member);
  for (size_t r = 0; r < proto::kDropReasonCount; r++) ws.drops[r] = rd(c.drops[r]);
  // The worker publishes its limiter about once a second; a snapshot that
  // meets it mid-write every time shows the table empty rather than torn.
  proto::LimiterStatus l;
  if (h.limiters[w].try_load(l)) {
    ws.ratelimit_table_capacity = l.capacity;
    ws.ratelimit_table_entries = l.fill;
    ws.ratelimit_memory_bytes = l.memory_bytes;
    // n_top comes from the dataplane: never beyond the array.
    for (uint32_t i = 0; i < std::min<uint32_t>(l.n_top, proto::kTopLimitedSources); i++) {
      proto::IpAddress a;
      std::memcpy(a.bytes, l.top[i].address, sizeof a.bytes);
      ws.top_limited.push_back({ip_text(a), l.top[i].limited, l.top[i].last_ns});
    }
  }
  return ws;
}

}  // namespace

AssociationStatus association_status(const ctl::AssociationState& a) {
  AssociationStatus s;
  s.address = proto::ipv4_to_string(a.address);
  s.port = a.port;
  s.mode = mode_text(a.mode);
  s.configured = a.configured;
  s.selection = selection_text(a.selection, a.unfit);
  // The vendor's words, with the mode: configured/dynamic, master (the
  // system peer), sane (fit) or insane and why, valid (reachable) or not.
  s.status = std::string(a.configured ? "configured " : "dynamic ") + mode_text(a.mode) +
             (a.selection == ctl::SelectionState::kSystemPeer ? ", master" : "") +
             (a.unfit == ctl::Unfit::kNone ? ", sane" : std::string(", insane (") + unfit_text(a.unfit) + ")") +
             (a.reach != 0 ? ", valid" : ", invalid") +
             (a.stopped ? ", stopped: denied by the server (" + refid_text(a.kiss_code, 0) + ")" : "");
  if (a.kiss_code) s.kiss_code = refid_text(a.kiss_code, 0);
  s.stopped = a.stopped;
  s.stratum = a.stratum;
  s.refid = a.refid;
  s.refid_text = a.heard ? refid_text(a.refid, a.wire_stratum) : "INIT";
  s.reach = a.reach;
  s.poll_log2 = a.poll_log2;
  s.peer_poll_log2 = a.peer_poll_log2;
  s.peer_mode = a.heard ? peer_mode_text(a.peer_mode) : "-";
  s.since_last_rx_s = a.since_last_rx_s;
  s.offset_ns = a.offset_ns;
  s.delay_ns = a.delay_ns;
  s.dispersion_ns = a.dispersion_ns;
  s.jitter_ns = a.jitter_ns;
  s.root_delay_ns = a.root_delay_ns;
  s.root_dispersion_ns = a.root_dispersion_ns;
  s.sync_distance_ns = a.sync_distance_ns;
  s.precision_log2 = a.precision_log2;
  s.version = a.version;
  s.leap = a.leap;
  s.reference_time_ns = a.reference_time_ns;
  s.key_id = a.key_id;
  s.authentication = auth_text(a.auth);
  s.auth_ok = a.auth_ok;
  s.auth_missing = a.auth_missing;
  s.auth_bad = a.auth_bad;
  s.crypto_nak = a.crypto_nak;
  s.xleave = a.xleave;
  s.interleaved_answers = a.interleaved_answers;
  s.nts = a.nts;
  s.nts_error = a.nts_error;
  s.nts_cookies = a.nts_cookies;
  s.nts_ke_ok = a.nts_ke_ok;
  s.nts_ke_failed = a.nts_ke_failed;
  s.nts_naks = a.nts_naks;
  s.filter = a.filter;
  return s;
}

Status make_status(const proto::SegmentHeader& h, const ctl::EngineState& engine, const ControlFacts& facts) {
  Status s;
  s.system = system_status(h, engine, facts);
  // The counts come from the dataplane: never index beyond the arrays.
  for (uint32_t i = 0; i < std::min<uint32_t>(h.n_ports, proto::kMaxPorts); i++) s.ports.push_back(port_status(h, i));
  for (uint32_t w = 0; w < std::min<uint32_t>(h.n_workers, proto::kMaxWorkers); w++)
    s.workers.push_back(worker_status(h, w));
  for (const ctl::AssociationState& a : engine.associations) s.associations.push_back(association_status(a));
  s.steered_clocks = facts.steered_clocks;
  s.nts_ke = facts.nts_ke;
  return s;
}

}  // namespace ntp::status
