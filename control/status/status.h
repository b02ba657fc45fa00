// What the control plane reports: one snapshot of the system, its ports,
// workers and associations (built by snapshot.h). The stats endpoint serves
// it as JSON (/status, json.cc) and Prometheus text (/metrics,
// prometheus.cc); ntpctl reads the JSON back and prints it the way the
// seed's router does (`display ntp-service status|sessions`, text.cc). The
// keys and metrics of every field are in one table per struct (fields.h).
// Pure formatting, no I/O.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/ntp/state.h"
#include "proto/channel_abi.h"

namespace ntp::status {

struct SystemStatus {
  std::string sysname;
  std::string version;                 // software version
  bool synchronized = false;           // "clock status: synchronized|unsynchronized"
  uint8_t leap = 3;                    // RFC 5905 LI as served
  uint8_t stratum = 16;                // 1..15, 16 = unsynchronized
  uint32_t refid = 0;                  // wire value (host order)
  std::string refid_text;              // "10.0.1.31", "LOCAL(0)", "INIT"
  std::string reference;               // what we follow: "local clock (refclock_master 2)", "10.0.1.31", "none"
  double nominal_freq_hz = 0;          // calibrated timebase (TSC) frequency
  double actual_freq_hz = 0;           // the timebase as the disciplined clock runs it
  int8_t precision_log2 = 0;           // log2 s
  int64_t clock_offset_ns = 0;         // last offset of the system peer (0 for the local clock)
  int64_t root_delay_ns = 0;
  int64_t root_dispersion_ns = 0;
  int64_t peer_dispersion_ns = 0;      // dispersion of the system peer
  int64_t reference_time_ns = 0;       // Unix ns; 0 = never
  std::string sync_state;              // "clock not set", "frequency set", "clock synchronized", "clock spike"
  std::string clock_source;            // "system", "virtual", "phc"
  int64_t clock_minus_host_ns = 0;     // the served clock minus CLOCK_REALTIME, now (a test/demo diagnostic)
  double frequency_ppm = 0;            // correction applied to the timebase, ppm
  double holdover_s = 0;
  double control_uptime_s = 0;
  double dataplane_uptime_s = 0;
  bool dataplane_alive = false;        // its heartbeat is fresh
  double dataplane_heartbeat_age_s = 0;    // since its last heartbeat (> kDataplaneAliveS: down)
  int64_t dataplane_last_heartbeat_ns = 0; // Unix ns (host clock) of its last heartbeat; 0 = none seen
  // The dataplane answers with the keys we sign and verify with (the two
  // key tables' fingerprints, ctl::keys_match); null (nullopt): no keys on
  // either side, or the dataplane has not said.
  std::optional<bool> keys_match;
  // A leap second announced in the published clock model (hwclock/leap.h).
  int32_t leap_sign = 0;               // +1 inserted, -1 deleted, 0 none
  int64_t leap_at_ns = 0;              // Unix ns of the midnight UTC that ends the leap day
  int64_t leap_smear_ns = 0;           // 0: stepped at leap_at_ns; else smeared over this window centred on it
  int32_t dataplane_pid = 0;
  int32_t control_pid = 0;
  uint64_t state_publications = 0;     // how many times the server state was published
  bool operator==(const SystemStatus&) const = default;  // doubles: NaN != NaN
};

struct PortStatus {
  std::string name;      // operator's interface name
  std::string device;
  std::string driver;
  std::string mac;       // "aa:bb:cc:dd:ee:ff"
  std::string address;   // "10.0.1.31/24"
  uint16_t vlan = 0;     // 802.1Q VLAN ID; 0: untagged
  bool ntp_server = false;
  std::string timestamping;  // "software" or "hardware"
  std::string timestamp_reason;  // why, e.g. "software: the driver offers no RX timestamp offload"
  bool nic_emulated = false;     // the test/diagnostic emulated NIC clock
  bool nic_map_valid = false;    // the NIC-to-TSC mapping is usable
  double nic_clock_hz = 0;       // NIC clock frequency fitted against the TSC (ticks per second)
  double nic_residual_ns = 0;    // RMS residual of the mapping's fit
  uint64_t nic_rounds = 0, nic_outliers = 0, nic_restarts = 0;
  int64_t tx_compensation_ns = 0;
  // Receive timestamps, over all workers.
  uint64_t hw_timestamps = 0, sw_timestamps = 0, hw_rejected = 0;
  int64_t hw_minus_sw_mean_ns = 0;   // NIC time minus the burst's TSC time, mean over hardware ones
  uint64_t hw_minus_sw_max_ns = 0;   // and the largest |difference|
  // Transmit times kept for interleaved answers: the NIC's, the TSC's.
  uint64_t tx_hw_timestamps = 0, tx_sw_timestamps = 0;
  bool link_up = false;
  uint32_t link_speed_mbps = 0;
  bool operator==(const PortStatus&) const = default;
};

// One of the sources a worker's rate limiter limited most
// (proto::LimiterStatus::top): a bounded list, shown in /status and
// `ntpctl limits` only, never as metric series.
struct LimitedSourceStatus {
  std::string address;    // dotted quad, or IPv6 text
  uint64_t limited = 0;   // requests over the limit (space-saving estimate)
  int64_t last_ns = 0;    // served time (Unix ns) of the last one
  bool operator==(const LimitedSourceStatus&) const = default;
};

struct WorkerStatus {
  unsigned id = 0;
  // Its rate limiter's table (proto::LimiterStatus).
  uint64_t ratelimit_table_capacity = 0;  // entries (ratelimit.clients)
  uint64_t ratelimit_table_entries = 0;   // of which in use
  uint64_t ratelimit_memory_bytes = 0;
  std::vector<LimitedSourceStatus> top_limited;  // most limited first, up to proto::kTopLimitedSources
  // Indexed like proto::kWorkerCounterFields, which names them.
  std::array<uint64_t, proto::kWorkerCounterCount> counters{};
  std::array<uint64_t, proto::kDropReasonCount> drops{};  // indexed by proto::DropReason
  // The counter whose proto::kWorkerCounterFields key is `key`; throws
  // std::out_of_range for another.
  uint64_t& counter(std::string_view key);
  uint64_t counter(std::string_view key) const;
  bool operator==(const WorkerStatus&) const = default;
};

// The core's filter stage as it is (control/ntp/state.h).
using FilterStage = ctl::FilterStageState;

// An association as shown: the core's ctl::AssociationState in words
// (association_status() in snapshot.h), or as read back from /status.
struct AssociationStatus {
  std::string address;          // dotted quad
  uint16_t port = 123;
  std::string mode;             // "client", "symmetric active", "symmetric passive"
  bool configured = true;       // false: dynamic (created by an incoming symmetric active peer)
  std::string selection;        // "system peer", "candidate", "falseticker", or why it is unfit ("unreachable", ...)
  std::string status;           // vendor style: "configured client, master, sane, valid" etc.
  std::string kiss_code;        // the last kiss-o'-death that answered ours ("RATE", "DENY", "RSTR"), "" none
  bool stopped = false;         // DENY/RSTR: we poll it no more
  uint8_t stratum = 16;
  uint32_t refid = 0;
  std::string refid_text;
  uint8_t reach = 0;            // reach register, shown in octal/decimal by ntpctl
  int8_t poll_log2 = 6;         // our current poll
  int8_t peer_poll_log2 = 0;    // the peer's poll
  std::string peer_mode;        // mode the peer speaks, "-" before it spoke
  double since_last_rx_s = -1;  // "now": seconds since the last valid packet; -1 never
  int64_t offset_ns = 0, delay_ns = 0, dispersion_ns = 0, jitter_ns = 0;
  int64_t root_delay_ns = 0, root_dispersion_ns = 0, sync_distance_ns = 0;
  int8_t precision_log2 = 0;
  uint8_t version = 4;
  uint8_t leap = 3;
  int64_t reference_time_ns = 0;
  // Symmetric-key authentication (ctl::AssociationState's): the key, "ok",
  // "failed", "pending" (keyed, no verified answer yet to its first eight
  // packets) or "none" (no key), and the packets from the peer's address by
  // what their MAC said (only auth_ok ones are used by a keyed association).
  uint32_t key_id = 0;
  std::string authentication = "none";
  uint64_t auth_ok = 0, auth_missing = 0, auth_bad = 0, crypto_nak = 0;
  // Interleaved mode, client or symmetric (xleave): "" (not configured), "pending" (no
  // answer yet), "interleaved" or "basic" (the mode of the last answer: a
  // server that does not do interleaved answers in basic), and how many
  // interleaved answers came.
  std::string xleave;
  uint64_t interleaved_answers = 0;
  // NTS (RFC 8915; authentication above is its state too): "" (no NTS),
  // "ke pending", "ok", "ke failed", "nak" or "no cookies"; why it failed;
  // the cookies held; NTS-KE exchanges that gave keys and that failed; NAKs.
  std::string nts;
  std::string nts_error;
  uint64_t nts_cookies = 0, nts_ke_ok = 0, nts_ke_failed = 0, nts_naks = 0;
  // Not the origin/receive/transmit timestamps: they would publish the
  // nonces our requests carry (RFC 9109), which lets an off-path attacker
  // forge a reply.
  std::vector<FilterStage> filter;  // newest first, up to 8
  bool operator==(const AssociationStatus&) const = default;  // doubles: NaN != NaN
};

// A clock kept on the served time (clock.steer_phc, clock.steer_system_clock).
struct SteeredClockStatus {
  std::string name;          // "/dev/ptp0", "CLOCK_REALTIME"
  bool following = false;    // updated at the last second (served time synchronized, clock readable)
  int64_t offset_ns = 0;     // served time minus the clock at the last update
  double frequency_ppm = 0;  // frequency correction set on the clock
  std::string state;         // its servo's state
  uint64_t updates = 0, steps = 0, errors = 0;
  bool operator==(const SteeredClockStatus&) const = default;
};

// ntp-control's NTS-KE server (nts.ke_listen), its counters since start.
struct NtsKeStatus {
  std::string listen;              // "a.b.c.d:port"
  uint64_t sessions = 0;           // open now
  uint64_t accepted = 0, refused = 0, handshake_failures = 0, bad_requests = 0, served = 0, cookies = 0,
           timeouts = 0;
  bool operator==(const NtsKeStatus&) const = default;
};

struct Status {
  SystemStatus system;
  std::vector<PortStatus> ports;
  std::vector<WorkerStatus> workers;
  std::vector<AssociationStatus> associations;
  std::vector<SteeredClockStatus> steered_clocks;
  std::vector<NtsKeStatus> nts_ke;  // one with nts.ke_listen, else none
  bool operator==(const Status&) const = default;  // doubles: NaN != NaN
};

// /status. One JSON object {"system", "ports", "workers", "associations",
// "steered_clocks"}, keys as the field names above (control/status/fields.cc
// declares them); a worker's drops are an object keyed by
// proto::drop_reason_name. Non-finite doubles are the strings "NaN",
// "+Inf", "-Inf". from_json(to_json(s)) == s for every field (strings must
// be valid UTF-8: invalid bytes are replaced with U+FFFD).
std::string to_json(const Status& s);
// Back from /status (ntpctl). nullopt with err set on malformed input:
// not JSON, wrong types, out-of-range integers, or a missing required
// field (system with its synchronized, leap and stratum; a port's name; a
// worker's id; an association's address). Other missing fields keep their
// defaults; unknown keys are ignored. Never throws.
inline constexpr size_t kMaxJsonBytes = 64u << 20;
std::optional<Status> from_json(const std::string& text, std::string& err);
// /metrics, Prometheus text exposition format 0.0.4.
std::string to_prometheus(const Status& s);

// `ntpctl status`: the lines of the seed's `display ntp-service status`.
std::string format_status(const Status& s);
// `ntpctl sessions [--verbose]`: `display ntp-service sessions [verbose]`.
std::string format_sessions(const Status& s, bool verbose);
// `ntpctl ports`: each port's addresses, link and timestamping.
std::string format_ports(const Status& s);
// `ntpctl limits`: each worker's rate limiter: table fill, inserts and
// evictions, KoDs sent, drops by access and limit reasons, the top limited
// sources.
std::string format_limits(const Status& s);
// The log line of an event of the NTP core ("system peer 10.0.1.31
// (client, stratum 2, offset +0.012 ms)").
std::string format_event(const ctl::Event& e);

// The vendor's time stamp text, "06:52:33.465 UTC Mar 7 2006(C7B7AC31.773E89A8)":
// UTC to the millisecond (truncated), then the 64-bit NTP timestamp in hex.
// A wire timestamp, in the era within 68 years of pivot_unix_ns; raw 0
// ("unknown" in RFC 5905) prints "00:00:00.000 UTC Jan 1 1900(00000000.00000000)".
std::string format_ntp_timestamp(uint64_t raw, int64_t pivot_unix_ns);
// A Unix ns time, converted as the wire does (proto::ntp_from_unix_ns, which
// rounds to the nearest 2^-32 s); 0 = never, the 1900 line.
std::string format_reference_time(int64_t unix_ns);

}  // namespace ntp::status
