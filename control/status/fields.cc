// The tables, in /status key order; /metrics families follow the same order.
#include "control/status/fields.h"

#include <stdexcept>

#include "control/status/numbers.h"

namespace ntp::status {

namespace {

size_t counter_index(std::string_view key) {
  for (size_t i = 0; i < proto::kWorkerCounterCount; ++i)
    if (key == proto::kWorkerCounterFields[i].key) return i;
  throw std::out_of_range("no worker counter " + std::string(key));
}

}  // namespace

uint64_t& WorkerStatus::counter(std::string_view key) { return counters[counter_index(key)]; }
uint64_t WorkerStatus::counter(std::string_view key) const { return counters[counter_index(key)]; }

namespace fields {

namespace {

const char* b01(bool v) { return v ? "1" : "0"; }

const Field<SystemStatus> kSystem[] = {
    {.metric = {.name = "ntp_build_info",
                .help = "Software version and system name; always 1.",
                .value = [](const SystemStatus& y, Labels& l) -> std::string {
                  l.emplace_back("version", y.version);
                  l.emplace_back("sysname", y.sysname);
                  return "1";
                }}},
    {.key = "sysname", .member = &SystemStatus::sysname},
    {.key = "version", .member = &SystemStatus::version},
    {.key = "synchronized",
     .member = &SystemStatus::synchronized,
     .required = true,
     .metric = {.name = "ntp_synchronized", .help = "1 when the clock is synchronized, else 0."}},
    {.key = "leap",
     .member = &SystemStatus::leap,
     .required = true,
     .metric = {.name = "ntp_leap", .help = "Leap indicator served (RFC 5905; 3 = unsynchronized)."}},
    {.key = "stratum",
     .member = &SystemStatus::stratum,
     .required = true,
     .metric = {.name = "ntp_stratum", .help = "Stratum of the clock (16 = unsynchronized)."}},
    {.metric = {.name = "ntp_sync_info",
                .help = "What the clock follows and its synchronization state; always 1.",
                .value = [](const SystemStatus& y, Labels& l) -> std::string {
                  l.emplace_back("refid", y.refid_text);
                  l.emplace_back("reference", y.reference);
                  l.emplace_back("sync_state", y.sync_state);
                  l.emplace_back("clock_source", y.clock_source);
                  return "1";
                }}},
    {.key = "refid", .member = &SystemStatus::refid},
    {.key = "refid_text", .member = &SystemStatus::refid_text},
    {.key = "reference", .member = &SystemStatus::reference},
    {.key = "nominal_freq_hz",
     .member = &SystemStatus::nominal_freq_hz,
     .metric = {.name = "ntp_timebase_nominal_hertz", .help = "Calibrated frequency of the timebase (TSC)."}},
    {.key = "actual_freq_hz",
     .member = &SystemStatus::actual_freq_hz,
     .metric = {.name = "ntp_timebase_actual_hertz",
                .help = "Frequency of the timebase as the disciplined clock runs it."}},
    {.key = "precision_log2",
     .member = &SystemStatus::precision_log2,
     .metric = {.name = "ntp_precision_log2", .help = "Clock precision, log2 seconds."}},
    {.key = "clock_offset_ns",
     .member = &SystemStatus::clock_offset_ns,
     .metric = {.name = "ntp_clock_offset_seconds",
                .help = "Last offset of the system peer (0 for the local clock).",
                .unit = Unit::kNsAsSeconds}},
    {.key = "root_delay_ns",
     .member = &SystemStatus::root_delay_ns,
     .metric = {.name = "ntp_root_delay_seconds", .help = "Root delay served.", .unit = Unit::kNsAsSeconds}},
    {.key = "root_dispersion_ns",
     .member = &SystemStatus::root_dispersion_ns,
     .metric = {.name = "ntp_root_dispersion_seconds", .help = "Root dispersion served.", .unit = Unit::kNsAsSeconds}},
    {.key = "peer_dispersion_ns",
     .member = &SystemStatus::peer_dispersion_ns,
     .metric = {.name = "ntp_peer_dispersion_seconds",
                .help = "Dispersion of the system peer.",
                .unit = Unit::kNsAsSeconds}},
    {.key = "reference_time_ns",
     .member = &SystemStatus::reference_time_ns,
     .metric = {.name = "ntp_reference_time_seconds",
                .help = "When the clock was last set or corrected, Unix time (0 = never).",
                .unit = Unit::kNsAsSeconds}},
    {.key = "sync_state", .member = &SystemStatus::sync_state},
    {.key = "clock_source", .member = &SystemStatus::clock_source},
    {.key = "clock_minus_host_ns",
     .member = &SystemStatus::clock_minus_host_ns,
     .metric = {.name = "ntp_clock_minus_host_seconds",
                .help = "The served clock minus the host's CLOCK_REALTIME.",
                .unit = Unit::kNsAsSeconds}},
    {.key = "frequency_ppm",
     .member = &SystemStatus::frequency_ppm,
     .metric = {.name = "ntp_frequency_ppm", .help = "Frequency correction applied to the timebase, ppm."}},
    {.key = "holdover_s",
     .member = &SystemStatus::holdover_s,
     .metric = {.name = "ntp_holdover_seconds",
                .help = "How long the dataplane serves the last state without a control plane."}},
    {.key = "control_uptime_s",
     .member = &SystemStatus::control_uptime_s,
     .metric = {.name = "ntp_control_uptime_seconds", .help = "Time since ntp-control started."}},
    {.key = "dataplane_uptime_s",
     .member = &SystemStatus::dataplane_uptime_s,
     .metric = {.name = "ntp_dataplane_uptime_seconds", .help = "Time since ntp-dataplane started."}},
    {.key = "dataplane_alive",
     .member = &SystemStatus::dataplane_alive,
     .metric = {.name = "ntp_dataplane_alive", .help = "1 when the dataplane's heartbeat is fresh, else 0."}},
    {.key = "dataplane_heartbeat_age_s",
     .member = &SystemStatus::dataplane_heartbeat_age_s,
     .metric = {.name = "ntp_dataplane_heartbeat_age_seconds",
                .help = "Time since the dataplane's last heartbeat (above 3 s: the dataplane is down, nothing is "
                        "served)."}},
    {.key = "dataplane_last_heartbeat_ns", .member = &SystemStatus::dataplane_last_heartbeat_ns},
    {.key = "keys_match",
     .member = &SystemStatus::keys_match,
     .metric = {.name = "ntp_keys_match",
                .help = "1 when the dataplane answers with the keys ntp-control signs and verifies with (their key "
                        "tables' fingerprints agree), 0 when they loaded different keys files (reload both); no "
                        "sample without keys on either side or before the dataplane says."}},
    {.key = "leap_sign",
     .member = &SystemStatus::leap_sign,
     .metric = {.name = "ntp_leap_second_announced",
                .help = "A leap second in the clock model: 1 inserted, -1 deleted, 0 none."}},
    {.key = "leap_at_ns",
     .member = &SystemStatus::leap_at_ns,
     .metric = {.name = "ntp_leap_second_time_seconds",
                .help = "Unix time of the midnight UTC that ends the leap day (0: none).",
                .unit = Unit::kNsAsSeconds}},
    {.key = "leap_smear_ns", .member = &SystemStatus::leap_smear_ns},
    {.key = "dataplane_pid", .member = &SystemStatus::dataplane_pid},
    {.key = "control_pid", .member = &SystemStatus::control_pid},
    {.key = "state_publications",
     .member = &SystemStatus::state_publications,
     .metric = {.name = "ntp_state_publications_total",
                .type = "counter",
                .help = "Publications of the server state to the dataplane."}},
};

const Field<PortStatus> kPort[] = {
    {.metric = {.name = "ntp_port_info",
                .help = "A dataplane port; always 1.",
                .value = [](const PortStatus& p, Labels& l) -> std::string {
                  l.emplace_back("device", p.device);
                  l.emplace_back("driver", p.driver);
                  l.emplace_back("mac", p.mac);
                  l.emplace_back("address", p.address);
                  l.emplace_back("timestamping", p.timestamping);
                  return "1";
                }}},
    {.key = "name", .member = &PortStatus::name, .required = true},
    {.key = "device", .member = &PortStatus::device},
    {.key = "driver", .member = &PortStatus::driver},
    {.key = "mac", .member = &PortStatus::mac},
    {.key = "address", .member = &PortStatus::address},
    {.key = "vlan", .member = &PortStatus::vlan},
    {.key = "ntp_server",
     .member = &PortStatus::ntp_server,
     .metric = {.name = "ntp_port_ntp_server", .help = "1 when the port answers NTP client requests, else 0."}},
    {.key = "timestamping", .member = &PortStatus::timestamping},
    {.metric = {.name = "ntp_port_hardware_timestamping",
                .help = "1 when the port timestamps received packets with the NIC's clock, 0 for software (the TSC).",
                .value = [](const PortStatus& p, Labels&) -> std::string { return b01(p.timestamping == "hardware"); }}},
    {.key = "timestamp_reason", .member = &PortStatus::timestamp_reason},
    {.key = "nic_emulated", .member = &PortStatus::nic_emulated},
    {.key = "nic_map_valid",
     .member = &PortStatus::nic_map_valid,
     .metric = {.name = "ntp_port_nic_clock_mapping_valid", .help = "1 when the NIC-to-TSC clock mapping is usable."}},
    {.key = "nic_clock_hz",
     .member = &PortStatus::nic_clock_hz,
     .metric = {.name = "ntp_port_nic_clock_hertz", .help = "The NIC clock's frequency, fitted against the TSC."}},
    {.key = "nic_residual_ns",
     .member = &PortStatus::nic_residual_ns,
     .metric = {.name = "ntp_port_nic_clock_residual_seconds",
                .help = "RMS residual of the NIC-to-TSC mapping's fit.",
                .unit = Unit::kNsAsSecondsDouble}},
    {.key = "nic_rounds",
     .member = &PortStatus::nic_rounds,
     .metric = {.name = "ntp_port_nic_clock_rounds_total",
                .type = "counter",
                .help = "Cross-timestamp rounds of the NIC clock."}},
    {.key = "nic_outliers",
     .member = &PortStatus::nic_outliers,
     .metric = {.name = "ntp_port_nic_clock_outliers_total",
                .type = "counter",
                .help = "Cross-timestamp rounds rejected as outliers."}},
    {.key = "nic_restarts", .member = &PortStatus::nic_restarts},
    {.key = "tx_compensation_ns",
     .member = &PortStatus::tx_compensation_ns,
     .metric = {.name = "ntp_port_tx_compensation_seconds",
                .help = "Added to transmit timestamps (configuration).",
                .unit = Unit::kNsAsSeconds}},
    {.key = "hw_timestamps",
     .member = &PortStatus::hw_timestamps,
     .metric = {.name = "ntp_port_rx_timestamps_total",
                .type = "counter",
                .help = "Received packets by how they were timestamped: hardware (NIC clock), software (TSC), "
                        "rejected (a NIC timestamp that could not be converted; software used).",
                .label = "kind",
                .label_value = "hardware"}},
    {.key = "sw_timestamps",
     .member = &PortStatus::sw_timestamps,
     .metric = {.name = "ntp_port_rx_timestamps_total", .type = "counter", .label = "kind", .label_value = "software"}},
    {.key = "hw_rejected",
     .member = &PortStatus::hw_rejected,
     .metric = {.name = "ntp_port_rx_timestamps_total", .type = "counter", .label = "kind", .label_value = "rejected"}},
    {.key = "tx_hw_timestamps",
     .member = &PortStatus::tx_hw_timestamps,
     .metric = {.name = "ntp_port_tx_timestamps_total",
                .type = "counter",
                .help = "Transmit times kept for interleaved answers (RFC 9769) by where they came from: hardware "
                        "(the NIC's transmit timestamp), software (the TSC after tx_burst).",
                .label = "kind",
                .label_value = "hardware"}},
    {.key = "tx_sw_timestamps",
     .member = &PortStatus::tx_sw_timestamps,
     .metric = {.name = "ntp_port_tx_timestamps_total", .type = "counter", .label = "kind", .label_value = "software"}},
    {.key = "hw_minus_sw_mean_ns",
     .member = &PortStatus::hw_minus_sw_mean_ns,
     .metric = {.name = "ntp_port_hw_minus_sw_seconds",
                .help = "NIC receive timestamps minus the burst's TSC timestamps: mean and largest absolute difference.",
                .unit = Unit::kNsAsSeconds,
                .label = "stat",
                .label_value = "mean"}},
    {.key = "hw_minus_sw_max_ns",
     .member = &PortStatus::hw_minus_sw_max_ns,
     .metric = {.name = "ntp_port_hw_minus_sw_seconds", .unit = Unit::kNsAsSeconds, .label = "stat", .label_value = "max"}},
    {.key = "link_up",
     .member = &PortStatus::link_up,
     .metric = {.name = "ntp_port_link_up", .help = "1 when the port's link is up, else 0."}},
    {.key = "link_speed_mbps",
     .member = &PortStatus::link_speed_mbps,
     .metric = {.name = "ntp_port_link_speed_bits_per_second",
                .help = "Link speed of the port (0 = unknown).",
                .unit = Unit::kMbpsAsBitsPerSecond}},
};

const Field<WorkerStatus> kWorker[] = {
    {.key = "id", .member = &WorkerStatus::id, .required = true},
    {.key = "ratelimit_table_capacity",
     .member = &WorkerStatus::ratelimit_table_capacity,
     .metric = {.name = "ntp_ratelimit_table_capacity",
                .help = "Entries of the worker's rate-limit table (ratelimit.clients)."}},
    {.key = "ratelimit_table_entries",
     .member = &WorkerStatus::ratelimit_table_entries,
     .metric = {.name = "ntp_ratelimit_table_entries", .help = "Entries of the worker's rate-limit table in use."}},
    {.key = "ratelimit_memory_bytes",
     .member = &WorkerStatus::ratelimit_memory_bytes,
     .metric = {.name = "ntp_ratelimit_memory_bytes", .help = "Memory of the worker's rate-limit table."}},
    // Per source: /status and `ntpctl limits` only (no metric series per client).
    {.key = "top_limited", .member = &WorkerStatus::top_limited},
};

const Field<LimitedSourceStatus> kLimitedSource[] = {
    {.key = "address", .member = &LimitedSourceStatus::address, .required = true},
    {.key = "limited", .member = &LimitedSourceStatus::limited},
    {.key = "last_ns", .member = &LimitedSourceStatus::last_ns},
};

const Field<FilterStage> kFilterStage[] = {
    {.key = "offset_ns", .member = &FilterStage::offset_ns},
    {.key = "delay_ns", .member = &FilterStage::delay_ns},
    {.key = "dispersion_ns", .member = &FilterStage::dispersion_ns},
    {.key = "valid", .member = &FilterStage::valid},
};

const Field<AssociationStatus> kAssociation[] = {
    {.metric = {.name = "ntp_association_info",
                .help = "An association and what its peer reports; always 1.",
                .value = [](const AssociationStatus& a, Labels& l) -> std::string {
                  l.emplace_back("port", std::to_string(a.port));
                  l.emplace_back("refid", a.refid_text);
                  l.emplace_back("peer_mode", a.peer_mode);
                  l.emplace_back("status", a.status);
                  return "1";
                }}},
    {.key = "address", .member = &AssociationStatus::address, .required = true},
    {.key = "port", .member = &AssociationStatus::port},
    {.key = "mode", .member = &AssociationStatus::mode},
    {.key = "configured", .member = &AssociationStatus::configured},
    {.key = "selection", .member = &AssociationStatus::selection},
    {.metric = {.name = "ntp_association_selected",
                .help = "1 when the association is the system peer, else 0; the selection label gives its state.",
                .value = [](const AssociationStatus& a, Labels& l) -> std::string {
                  l.emplace_back("selection", a.selection);
                  return b01(a.selection == "system peer");
                }}},
    {.key = "status", .member = &AssociationStatus::status},
    {.key = "kiss_code", .member = &AssociationStatus::kiss_code},
    {.key = "stopped",
     .member = &AssociationStatus::stopped,
     .metric = {.name = "ntp_association_stopped",
                .help = "1 when the peer answered DENY or RSTR and we poll it no more (RFC 5905 section 7.4)."}},
    {.key = "stratum",
     .member = &AssociationStatus::stratum,
     .metric = {.name = "ntp_association_stratum", .help = "Stratum of the peer."}},
    {.key = "refid", .member = &AssociationStatus::refid},
    {.key = "refid_text", .member = &AssociationStatus::refid_text},
    {.key = "reach",
     .member = &AssociationStatus::reach,
     .metric = {.name = "ntp_association_reach", .help = "Reach register (8 bits, newest poll in bit 0)."}},
    {.key = "poll_log2",
     .member = &AssociationStatus::poll_log2,
     .metric = {.name = "ntp_association_poll_log2", .help = "Our poll interval to the peer, log2 seconds."}},
    {.key = "peer_poll_log2",
     .member = &AssociationStatus::peer_poll_log2,
     .metric = {.name = "ntp_association_peer_poll_log2", .help = "The peer's poll interval, log2 seconds."}},
    {.key = "peer_mode", .member = &AssociationStatus::peer_mode},
    {.key = "since_last_rx_s",
     .member = &AssociationStatus::since_last_rx_s,
     .metric = {.name = "ntp_association_since_last_rx_seconds",
                .help = "Time since the last valid packet from the peer; -1 when none was ever received.",
                .value = [](const AssociationStatus& a, Labels&) -> std::string {
                  return detail::double_text(a.since_last_rx_s < 0 ? -1.0 : a.since_last_rx_s);
                }}},
    {.key = "offset_ns",
     .member = &AssociationStatus::offset_ns,
     .metric = {.name = "ntp_association_offset_seconds",
                .help = "Offset of the peer's clock.",
                .unit = Unit::kNsAsSeconds}},
    {.key = "delay_ns",
     .member = &AssociationStatus::delay_ns,
     .metric = {.name = "ntp_association_delay_seconds",
                .help = "Round-trip delay to the peer.",
                .unit = Unit::kNsAsSeconds}},
    {.key = "dispersion_ns",
     .member = &AssociationStatus::dispersion_ns,
     .metric = {.name = "ntp_association_dispersion_seconds",
                .help = "Dispersion of the peer.",
                .unit = Unit::kNsAsSeconds}},
    {.key = "jitter_ns",
     .member = &AssociationStatus::jitter_ns,
     .metric = {.name = "ntp_association_jitter_seconds", .help = "Jitter of the peer.", .unit = Unit::kNsAsSeconds}},
    {.key = "root_delay_ns",
     .member = &AssociationStatus::root_delay_ns,
     .metric = {.name = "ntp_association_root_delay_seconds",
                .help = "Root delay reported by the peer.",
                .unit = Unit::kNsAsSeconds}},
    {.key = "root_dispersion_ns",
     .member = &AssociationStatus::root_dispersion_ns,
     .metric = {.name = "ntp_association_root_dispersion_seconds",
                .help = "Root dispersion reported by the peer.",
                .unit = Unit::kNsAsSeconds}},
    {.key = "sync_distance_ns",
     .member = &AssociationStatus::sync_distance_ns,
     .metric = {.name = "ntp_association_sync_distance_seconds",
                .help = "Synchronization distance of the peer.",
                .unit = Unit::kNsAsSeconds}},
    {.key = "precision_log2",
     .member = &AssociationStatus::precision_log2,
     .metric = {.name = "ntp_association_precision_log2", .help = "Precision of the peer's clock, log2 seconds."}},
    {.key = "version", .member = &AssociationStatus::version},
    {.key = "leap",
     .member = &AssociationStatus::leap,
     .metric = {.name = "ntp_association_leap", .help = "Leap indicator of the peer."}},
    {.key = "reference_time_ns", .member = &AssociationStatus::reference_time_ns},
    {.key = "key_id",
     .member = &AssociationStatus::key_id,
     .metric = {.name = "ntp_association_key_id", .help = "The auth.keys_file key its packets carry and must carry; 0 none."}},
    {.key = "authentication",
     .member = &AssociationStatus::authentication,
     .metric = {.name = "ntp_association_authenticated",
                .help = "1 when the last answer to our packet carried a valid MAC of its key; the authentication label "
                        "says ok, failed, pending (not yet verified: its first eight packets not all sent) or none (no key).",
                .value = [](const AssociationStatus& a, Labels& l) -> std::string {
                  l.emplace_back("authentication", a.authentication);
                  return b01(a.authentication == "ok");
                }}},
    {.key = "auth_ok",
     .member = &AssociationStatus::auth_ok,
     .metric = {.name = "ntp_association_auth_packets_total",
                .type = "counter",
                .help = "Packets from the peer's address by their MAC (RFC 5905 section 9.2): ok (a valid MAC of its "
                        "key), missing, bad (another or unknown key, wrong digest or length), crypto_nak; a keyed "
                        "association uses only ok ones.",
                .label = "result",
                .label_value = "ok"}},
    {.key = "auth_missing",
     .member = &AssociationStatus::auth_missing,
     .metric = {.name = "ntp_association_auth_packets_total", .type = "counter", .label = "result", .label_value = "missing"}},
    {.key = "auth_bad",
     .member = &AssociationStatus::auth_bad,
     .metric = {.name = "ntp_association_auth_packets_total", .type = "counter", .label = "result", .label_value = "bad"}},
    {.key = "crypto_nak",
     .member = &AssociationStatus::crypto_nak,
     .metric = {.name = "ntp_association_auth_packets_total", .type = "counter", .label = "result", .label_value = "crypto_nak"}},
    // Interleaved mode: series only for associations with xleave.
    {.key = "xleave",
     .member = &AssociationStatus::xleave,
     .metric = {.name = "ntp_association_interleaved",
                .help = "1 while the server or peer answers in interleaved mode (RFC 9769), 0 while it answers in "
                        "basic mode; the xleave label says interleaved, basic or pending.",
                .value = [](const AssociationStatus& a, Labels& l) -> std::string {
                  if (a.xleave.empty()) return "";
                  l.emplace_back("xleave", a.xleave);
                  return b01(a.xleave == "interleaved");
                }}},
    {.key = "interleaved_answers",
     .member = &AssociationStatus::interleaved_answers,
     .metric = {.name = "ntp_association_interleaved_answers_total",
                .type = "counter",
                .help = "Answers in interleaved mode (each brings the remote's real transmit time of its previous one).",
                .value = [](const AssociationStatus& a, Labels&) -> std::string {
                  return a.xleave.empty() ? "" : std::to_string(a.interleaved_answers);
                }}},
    // NTS: series only for associations with NTS.
    {.key = "nts",
     .member = &AssociationStatus::nts,
     .metric = {.name = "ntp_association_nts_ok",
                .help = "1 while the NTS session has keys and cookies and no NAK since (RFC 8915); the nts label "
                        "says ok, ke pending, ke failed, nak or no cookies.",
                .value = [](const AssociationStatus& a, Labels& l) -> std::string {
                  if (a.nts.empty()) return "";
                  l.emplace_back("nts", a.nts);
                  return b01(a.nts == "ok");
                }}},
    {.key = "nts_error", .member = &AssociationStatus::nts_error},
    {.key = "nts_cookies",
     .member = &AssociationStatus::nts_cookies,
     .metric = {.name = "ntp_association_nts_cookies",
                .help = "NTS cookies held (at most eight; one goes with each request).",
                .value = [](const AssociationStatus& a, Labels&) -> std::string {
                  return a.nts.empty() ? "" : std::to_string(a.nts_cookies);
                }}},
    {.key = "nts_ke_ok",
     .member = &AssociationStatus::nts_ke_ok,
     .metric = {.name = "ntp_association_nts_ke_total",
                .type = "counter",
                .help = "NTS-KE exchanges with the server by result: ok (keys and cookies) or failed.",
                .value = [](const AssociationStatus& a, Labels& l) -> std::string {
                  if (a.nts.empty()) return "";
                  l.emplace_back("result", "ok");
                  return std::to_string(a.nts_ke_ok);
                }}},
    {.key = "nts_ke_failed",
     .member = &AssociationStatus::nts_ke_failed,
     .metric = {.name = "ntp_association_nts_ke_total",
                .type = "counter",
                .value = [](const AssociationStatus& a, Labels& l) -> std::string {
                  if (a.nts.empty()) return "";
                  l.emplace_back("result", "failed");
                  return std::to_string(a.nts_ke_failed);
                }}},
    {.key = "nts_naks",
     .member = &AssociationStatus::nts_naks,
     .metric = {.name = "ntp_association_nts_naks_total",
                .type = "counter",
                .help = "NTS NAKs from the server (it could not open our cookie): each costs the cookies and an NTS-KE.",
                .value = [](const AssociationStatus& a, Labels&) -> std::string {
                  return a.nts.empty() ? "" : std::to_string(a.nts_naks);
                }}},
    {.key = "filter", .member = &AssociationStatus::filter},
};

const Field<SteeredClockStatus> kSteered[] = {
    {.key = "name", .member = &SteeredClockStatus::name, .required = true},
    {.key = "following",
     .member = &SteeredClockStatus::following,
     .metric = {.name = "ntp_steered_clock_following",
                .help = "1 while the clock (clock.steer_phc, clock.steer_system_clock) follows the served time, else 0."}},
    {.key = "offset_ns",
     .member = &SteeredClockStatus::offset_ns,
     .metric = {.name = "ntp_steered_clock_offset_seconds",
                .help = "The served time minus the steered clock at its last update.",
                .unit = Unit::kNsAsSeconds}},
    {.key = "frequency_ppm",
     .member = &SteeredClockStatus::frequency_ppm,
     .metric = {.name = "ntp_steered_clock_frequency_ppm", .help = "Frequency correction set on the steered clock, ppm."}},
    {.key = "state", .member = &SteeredClockStatus::state},
    {.key = "updates", .member = &SteeredClockStatus::updates},
    {.key = "steps",
     .member = &SteeredClockStatus::steps,
     .metric = {.name = "ntp_steered_clock_steps_total", .type = "counter", .help = "Steps of the steered clock."}},
    {.key = "errors",
     .member = &SteeredClockStatus::errors,
     .metric = {.name = "ntp_steered_clock_errors_total",
                .type = "counter",
                .help = "Failed reads or adjustments of the steered clock."}},
};

const Field<NtsKeStatus> kNtsKe[] = {
    {.key = "listen", .member = &NtsKeStatus::listen, .required = true},
    {.key = "sessions",
     .member = &NtsKeStatus::sessions,
     .metric = {.name = "ntp_nts_ke_sessions", .help = "NTS-KE sessions open now."}},
    {.key = "accepted",
     .member = &NtsKeStatus::accepted,
     .metric = {.name = "ntp_nts_ke_accepted_total", .type = "counter", .help = "TLS connections taken into a session."}},
    {.key = "refused",
     .member = &NtsKeStatus::refused,
     .metric = {.name = "ntp_nts_ke_refused_total", .type = "counter", .help = "Connections closed at accept: nts.ke_max_sessions, or an address's quarter of them, in use."}},
    {.key = "handshake_failures",
     .member = &NtsKeStatus::handshake_failures,
     .metric = {.name = "ntp_nts_ke_handshake_failures_total", .type = "counter", .help = "TLS handshakes that failed (no TLS 1.3, no ALPN ntske/1, the client gone)."}},
    {.key = "bad_requests",
     .member = &NtsKeStatus::bad_requests,
     .metric = {.name = "ntp_nts_ke_bad_requests_total", .type = "counter", .help = "Requests answered with an NTS-KE Error record, or that ended before their End of Message."}},
    {.key = "served",
     .member = &NtsKeStatus::served,
     .metric = {.name = "ntp_nts_ke_served_total", .type = "counter", .help = "Requests answered with cookies."}},
    {.key = "cookies",
     .member = &NtsKeStatus::cookies,
     .metric = {.name = "ntp_nts_ke_cookies_total", .type = "counter", .help = "Cookies handed out."}},
    {.key = "timeouts",
     .member = &NtsKeStatus::timeouts,
     .metric = {.name = "ntp_nts_ke_timeouts_total", .type = "counter", .help = "Sessions closed at nts.ke_timeout_s."}},
};

}  // namespace

template <>
const Table<SystemStatus>& table<SystemStatus>() {
  static const Table<SystemStatus> t{kSystem};
  return t;
}
template <>
const Table<PortStatus>& table<PortStatus>() {
  static const Table<PortStatus> t{kPort, [](const PortStatus& p) { return Labels{{"port", p.name}}; }};
  return t;
}
template <>
const Table<WorkerStatus>& table<WorkerStatus>() {
  static const Table<WorkerStatus> t{kWorker,
                                     [](const WorkerStatus& w) { return Labels{{"worker", std::to_string(w.id)}}; }};
  return t;
}
template <>
const Table<FilterStage>& table<FilterStage>() {
  static const Table<FilterStage> t{kFilterStage};
  return t;
}
template <>
const Table<AssociationStatus>& table<AssociationStatus>() {
  static const Table<AssociationStatus> t{kAssociation, [](const AssociationStatus& a) {
                                            return Labels{{"address", a.address},
                                                          {"mode", a.mode},
                                                          {"dynamic", a.configured ? "false" : "true"}};
                                          }};
  return t;
}
template <>
const Table<SteeredClockStatus>& table<SteeredClockStatus>() {
  static const Table<SteeredClockStatus> t{kSteered,
                                           [](const SteeredClockStatus& c) { return Labels{{"clock", c.name}}; }};
  return t;
}

template <>
const Table<LimitedSourceStatus>& table<LimitedSourceStatus>() {
  static const Table<LimitedSourceStatus> t{kLimitedSource};
  return t;
}

template <>
const Table<NtsKeStatus>& table<NtsKeStatus>() {
  static const Table<NtsKeStatus> t{kNtsKe, [](const NtsKeStatus& k) { return Labels{{"listen", k.listen}}; }};
  return t;
}

}  // namespace fields
}  // namespace ntp::status
