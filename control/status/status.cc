// Status snapshot: JSON (/status), Prometheus text (/metrics) and the
// vendor-style text of ntpctl. Pure formatting, no I/O.
#include "control/status/status.h"

#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>
#include <set>
#include <string_view>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "proto/ntp_time.h"

namespace ntp::status {
namespace {

using ordered_json = nlohmann::ordered_json;
using json = nlohmann::json;

// ---------------------------------------------------------------------------
// Small formatting helpers.

// Shortest text that reads back as the same double; non-finite values in
// the Prometheus spelling.
std::string double_text(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

uint64_t abs_u64(int64_t v) { return v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v); }

// ns as exact decimal seconds ("-0.0000123", "2", "1141714353.4657980"), a
// valid Prometheus float without the rounding of a double.
std::string seconds_text(int64_t ns) {
  const uint64_t a = abs_u64(ns);
  std::string out = ns < 0 ? "-" : "";
  out += std::to_string(a / 1000000000ULL);
  uint64_t frac = a % 1000000000ULL;
  if (frac != 0) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%09" PRIu64, frac);
    std::string f = buf;
    while (!f.empty() && f.back() == '0') f.pop_back();
    out += '.';
    out += f;
  }
  return out;
}

// ns as milliseconds with `decimals` (0..6) decimals, rounded half away
// from zero, the sign kept unless the rounded value is zero.
std::string ms_text(int64_t ns, int decimals) {
  static constexpr uint64_t kPow10[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
  const uint64_t unit = kPow10[6 - decimals];  // ns per last digit
  const uint64_t q = (abs_u64(ns) + unit / 2) / unit;
  const uint64_t scale = kPow10[decimals];
  char buf[64];
  if (decimals == 0) {
    std::snprintf(buf, sizeof buf, "%s%" PRIu64, (ns < 0 && q != 0) ? "-" : "", q);
  } else {
    std::snprintf(buf, sizeof buf, "%s%" PRIu64 ".%0*" PRIu64, (ns < 0 && q != 0) ? "-" : "", q / scale,
                  decimals, q % scale);
  }
  return buf;
}

std::string poll_text(int p) {
  if (p >= 0 && p < 63) return std::to_string(uint64_t{1} << p);
  return double_text(std::ldexp(1.0, p));
}

// Howard Hinnant's days_from_civil inverse: days since 1970-01-01 -> y/m/d.
void civil_from_days(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) y += 1;
}

constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

constexpr const char* kNever = "00:00:00.000 UTC Jan 1 1900(00000000.00000000)";

// The vendor's line for a wire timestamp whose seconds field is the Unix
// second unix_s: "06:52:33.465 UTC Mar 7 2006(C7B7AC31.773E89A8)". The
// milliseconds are truncated, as the vendor does.
std::string vendor_time(proto::NtpTimestamp ts, int64_t unix_s) {
  int64_t days = unix_s / 86400;
  int64_t sod = unix_s % 86400;
  if (sod < 0) {
    sod += 86400;
    days -= 1;
  }
  int64_t y = 0;
  unsigned m = 1, d = 1;
  civil_from_days(days, y, m, d);
  const unsigned ms = static_cast<unsigned>((uint64_t{ts.fraction} * 1000) >> 32);
  char buf[128];
  std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%03u UTC %s %u %" PRId64 "(%08" PRIX32 ".%08" PRIX32 ")",
                static_cast<int>(sod / 3600), static_cast<int>(sod / 60 % 60), static_cast<int>(sod % 60), ms,
                kMonths[m - 1], d, y, ts.seconds, ts.fraction);
  return buf;
}

// Unix second of the seconds field of ts in the era nearest pivot.
int64_t unix_s_of(proto::NtpTimestamp ts, int64_t pivot_unix_ns) {
  return proto::unix_ns_from_ntp({ts.seconds, 0}, pivot_unix_ns) / proto::kNsPerS;
}

// Pivot for raw wire timestamps of an association: the era nearest its
// reference time, else the system's, else 2025.
constexpr int64_t kDefaultPivotNs = 1735689600LL * proto::kNsPerS;  // 2025-01-01T00:00:00Z

// Replaces invalid UTF-8 with U+FFFD (the exposition format is UTF-8).
std::string utf8_clean(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    bool ok = i + n < s.size();  // the continuation bytes are there
    for (size_t k = 1; ok && k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) ok = false;
      else cp = (cp << 6) | (cc & 0x3F);
    }
    if (ok) {
      static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
      if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) ok = false;
    }
    if (ok) {
      out.append(s.substr(i, n + 1));
      i += n + 1;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// JSON out.

// Doubles: numbers, or "NaN", "+Inf", "-Inf" (JSON has no such numbers).
ordered_json jdouble(double v) {
  if (std::isfinite(v)) return v;
  return double_text(v);
}

ordered_json system_json(const SystemStatus& y) {
  ordered_json j;
  j["sysname"] = y.sysname;
  j["version"] = y.version;
  j["synchronized"] = y.synchronized;
  j["leap"] = y.leap;
  j["stratum"] = y.stratum;
  j["refid"] = y.refid;
  j["refid_text"] = y.refid_text;
  j["reference"] = y.reference;
  j["nominal_freq_hz"] = jdouble(y.nominal_freq_hz);
  j["actual_freq_hz"] = jdouble(y.actual_freq_hz);
  j["precision_log2"] = y.precision_log2;
  j["clock_offset_ns"] = y.clock_offset_ns;
  j["root_delay_ns"] = y.root_delay_ns;
  j["root_dispersion_ns"] = y.root_dispersion_ns;
  j["peer_dispersion_ns"] = y.peer_dispersion_ns;
  j["reference_time_ns"] = y.reference_time_ns;
  j["sync_state"] = y.sync_state;
  j["clock_source"] = y.clock_source;
  j["clock_minus_host_ns"] = y.clock_minus_host_ns;
  j["frequency_ppm"] = jdouble(y.frequency_ppm);
  j["holdover_s"] = jdouble(y.holdover_s);
  j["control_uptime_s"] = jdouble(y.control_uptime_s);
  j["dataplane_uptime_s"] = jdouble(y.dataplane_uptime_s);
  j["dataplane_alive"] = y.dataplane_alive;
  j["dataplane_pid"] = y.dataplane_pid;
  j["control_pid"] = y.control_pid;
  j["state_publications"] = y.state_publications;
  return j;
}

ordered_json steered_json(const SteeredClockStatus& c) {
  ordered_json j;
  j["name"] = c.name;
  j["following"] = c.following;
  j["offset_ns"] = c.offset_ns;
  j["frequency_ppm"] = jdouble(c.frequency_ppm);
  j["state"] = c.state;
  j["updates"] = c.updates;
  j["steps"] = c.steps;
  j["errors"] = c.errors;
  return j;
}

ordered_json port_json(const PortStatus& p) {
  ordered_json j;
  j["name"] = p.name;
  j["device"] = p.device;
  j["driver"] = p.driver;
  j["mac"] = p.mac;
  j["address"] = p.address;
  j["ntp_server"] = p.ntp_server;
  j["timestamping"] = p.timestamping;
  j["timestamp_reason"] = p.timestamp_reason;
  j["nic_emulated"] = p.nic_emulated;
  j["nic_map_valid"] = p.nic_map_valid;
  j["nic_clock_hz"] = jdouble(p.nic_clock_hz);
  j["nic_residual_ns"] = jdouble(p.nic_residual_ns);
  j["nic_rounds"] = p.nic_rounds;
  j["nic_outliers"] = p.nic_outliers;
  j["nic_restarts"] = p.nic_restarts;
  j["tx_compensation_ns"] = p.tx_compensation_ns;
  j["hw_timestamps"] = p.hw_timestamps;
  j["sw_timestamps"] = p.sw_timestamps;
  j["hw_rejected"] = p.hw_rejected;
  j["hw_minus_sw_mean_ns"] = p.hw_minus_sw_mean_ns;
  j["hw_minus_sw_max_ns"] = p.hw_minus_sw_max_ns;
  j["link_up"] = p.link_up;
  j["link_speed_mbps"] = p.link_speed_mbps;
  return j;
}

// The worker counters, in one table for JSON and Prometheus.
struct WorkerCounter {
  const char* key;     // JSON key
  const char* metric;  // Prometheus family
  const char* help;
  uint64_t WorkerStatus::*field;
};
constexpr WorkerCounter kWorkerCounters[] = {
    {"rx_packets", "ntp_worker_rx_packets_total", "Frames received by the worker.", &WorkerStatus::rx_packets},
    {"tx_packets", "ntp_worker_tx_packets_total", "Frames sent by the worker.", &WorkerStatus::tx_packets},
    {"ntp_requests", "ntp_worker_ntp_requests_total", "NTP client requests (mode 3) answered.",
     &WorkerStatus::ntp_requests},
    {"ntp_unsync_replies", "ntp_worker_ntp_unsync_replies_total",
     "NTP client requests answered with leap indicator 3 (unsynchronized).", &WorkerStatus::ntp_unsync_replies},
    {"ntp_to_control", "ntp_worker_ntp_to_control_total",
     "NTP packets of modes 1, 2 and 4 passed to the control plane.", &WorkerStatus::ntp_to_control},
    {"arp_replies", "ntp_worker_arp_replies_total", "ARP requests answered.", &WorkerStatus::arp_replies},
    {"arp_learned", "ntp_worker_arp_learned_total", "Neighbours learned from ARP.", &WorkerStatus::arp_learned},
    {"icmp_echo_replies", "ntp_worker_icmp_echo_replies_total", "ICMP echo requests answered.",
     &WorkerStatus::icmp_echo_replies},
    {"control_tx", "ntp_worker_control_tx_total", "Packets sent on behalf of the control plane.",
     &WorkerStatus::control_tx},
    {"polls", "ntp_worker_polls_total", "Iterations of the worker's poll loop.", &WorkerStatus::polls},
    {"busy_polls", "ntp_worker_busy_polls_total", "Poll loop iterations that received at least one frame.",
     &WorkerStatus::busy_polls},
    {"state_read_retries", "ntp_worker_state_read_retries_total",
     "Server state reads that fell back to the cached copy.", &WorkerStatus::state_read_retries},
};

ordered_json worker_json(const WorkerStatus& w) {
  ordered_json j;
  j["id"] = w.id;
  for (const auto& c : kWorkerCounters) j[c.key] = w.*c.field;
  ordered_json drops = ordered_json::object();
  for (size_t r = 0; r < proto::kDropReasonCount; ++r)
    drops[proto::drop_reason_name(static_cast<proto::DropReason>(r))] = w.drops[r];
  j["drops"] = std::move(drops);
  return j;
}

ordered_json association_json(const AssociationStatus& a) {
  ordered_json j;
  j["address"] = a.address;
  j["port"] = a.port;
  j["mode"] = a.mode;
  j["configured"] = a.configured;
  j["selection"] = a.selection;
  j["status"] = a.status;
  j["stratum"] = a.stratum;
  j["refid"] = a.refid;
  j["refid_text"] = a.refid_text;
  j["reach"] = a.reach;
  j["poll_log2"] = a.poll_log2;
  j["peer_poll_log2"] = a.peer_poll_log2;
  j["peer_mode"] = a.peer_mode;
  j["since_last_rx_s"] = jdouble(a.since_last_rx_s);
  j["offset_ns"] = a.offset_ns;
  j["delay_ns"] = a.delay_ns;
  j["dispersion_ns"] = a.dispersion_ns;
  j["jitter_ns"] = a.jitter_ns;
  j["root_delay_ns"] = a.root_delay_ns;
  j["root_dispersion_ns"] = a.root_dispersion_ns;
  j["sync_distance_ns"] = a.sync_distance_ns;
  j["precision_log2"] = a.precision_log2;
  j["version"] = a.version;
  j["leap"] = a.leap;
  j["reference_time_ns"] = a.reference_time_ns;
  j["origin_ts"] = a.origin_ts;
  j["receive_ts"] = a.receive_ts;
  j["transmit_ts"] = a.transmit_ts;
  ordered_json f = ordered_json::array();
  for (const auto& st : a.filter) {
    ordered_json e;
    e["offset_ns"] = st.offset_ns;
    e["delay_ns"] = st.delay_ns;
    e["dispersion_ns"] = st.dispersion_ns;
    e["valid"] = st.valid;
    f.push_back(std::move(e));
  }
  j["filter"] = std::move(f);
  return j;
}

// ---------------------------------------------------------------------------
// JSON in. Every access checks the type first: nothing here throws on
// well-formed JSON of the wrong shape.

class Reader {
 public:
  bool ok() const { return err_.empty(); }
  const std::string& error() const { return err_; }

  void fail(const std::string& path, const std::string& what) {
    if (err_.empty()) err_ = path + ": " + what;
  }

  // The member `key` of object `o` if present, else nullptr (and an error
  // when required).
  const json* member(const json& o, const char* key, const std::string& path, bool required) {
    auto it = o.find(key);
    if (it == o.end()) {
      if (required) fail(path + "." + key, "missing");
      return nullptr;
    }
    return &*it;
  }

  template <class T>
  void integer(const json& o, const char* key, const std::string& path, T& out, bool required = false) {
    static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
    const json* v = member(o, key, path, required);
    if (!v) return;
    integer_value(*v, path + "." + key, out);
  }

  template <class T>
  void integer_value(const json& v, const std::string& path, T& out) {
    if (!ok()) return;
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return fail(path, "out of range");
      out = static_cast<T>(u);
    } else if (v.is_number_integer()) {
      const int64_t s = v.get<int64_t>();
      if constexpr (std::is_unsigned_v<T>) {
        if (s < 0) return fail(path, "out of range");
        if (static_cast<uint64_t>(s) > static_cast<uint64_t>(std::numeric_limits<T>::max()))
          return fail(path, "out of range");
      } else {
        if (s < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
            s > static_cast<int64_t>(std::numeric_limits<T>::max()))
          return fail(path, "out of range");
      }
      out = static_cast<T>(s);
    } else {
      fail(path, std::string("expected an integer, got ") + v.type_name());
    }
  }

  void number(const json& o, const char* key, const std::string& path, double& out, bool required = false) {
    const json* v = member(o, key, path, required);
    if (!v || !ok()) return;
    if (v->is_number()) {
      out = v->get<double>();
    } else if (v->is_string()) {
      const auto& s = v->get_ref<const std::string&>();
      if (s == "NaN") out = std::numeric_limits<double>::quiet_NaN();
      else if (s == "+Inf") out = std::numeric_limits<double>::infinity();
      else if (s == "-Inf") out = -std::numeric_limits<double>::infinity();
      else fail(path + "." + key, "expected a number, \"NaN\", \"+Inf\" or \"-Inf\"");
    } else {
      fail(path + "." + key, std::string("expected a number, got ") + v->type_name());
    }
  }

  void boolean(const json& o, const char* key, const std::string& path, bool& out, bool required = false) {
    const json* v = member(o, key, path, required);
    if (!v || !ok()) return;
    if (!v->is_boolean()) return fail(path + "." + key, std::string("expected a boolean, got ") + v->type_name());
    out = v->get<bool>();
  }

  void string(const json& o, const char* key, const std::string& path, std::string& out, bool required = false) {
    const json* v = member(o, key, path, required);
    if (!v || !ok()) return;
    if (!v->is_string()) return fail(path + "." + key, std::string("expected a string, got ") + v->type_name());
    out = v->get<std::string>();
  }

  // Array member: nullptr when absent (or not an array: error).
  const json* array(const json& o, const char* key, const std::string& path, bool required = false) {
    const json* v = member(o, key, path, required);
    if (!v || !ok()) return nullptr;
    if (!v->is_array()) {
      fail(path + "." + key, std::string("expected an array, got ") + v->type_name());
      return nullptr;
    }
    return v;
  }

  bool object(const json& v, const std::string& path) {
    if (!ok()) return false;
    if (!v.is_object()) {
      fail(path, std::string("expected an object, got ") + v.type_name());
      return false;
    }
    return true;
  }

 private:
  std::string err_;
};

void read_system(Reader& r, const json& j, SystemStatus& y) {
  const std::string p = "system";
  if (!r.object(j, p)) return;
  r.string(j, "sysname", p, y.sysname);
  r.string(j, "version", p, y.version);
  r.boolean(j, "synchronized", p, y.synchronized, true);
  r.integer(j, "leap", p, y.leap, true);
  r.integer(j, "stratum", p, y.stratum, true);
  r.integer(j, "refid", p, y.refid);
  r.string(j, "refid_text", p, y.refid_text);
  r.string(j, "reference", p, y.reference);
  r.number(j, "nominal_freq_hz", p, y.nominal_freq_hz);
  r.number(j, "actual_freq_hz", p, y.actual_freq_hz);
  r.integer(j, "precision_log2", p, y.precision_log2);
  r.integer(j, "clock_offset_ns", p, y.clock_offset_ns);
  r.integer(j, "root_delay_ns", p, y.root_delay_ns);
  r.integer(j, "root_dispersion_ns", p, y.root_dispersion_ns);
  r.integer(j, "peer_dispersion_ns", p, y.peer_dispersion_ns);
  r.integer(j, "reference_time_ns", p, y.reference_time_ns);
  r.string(j, "sync_state", p, y.sync_state);
  r.string(j, "clock_source", p, y.clock_source);
  r.integer(j, "clock_minus_host_ns", p, y.clock_minus_host_ns);
  r.number(j, "frequency_ppm", p, y.frequency_ppm);
  r.number(j, "holdover_s", p, y.holdover_s);
  r.number(j, "control_uptime_s", p, y.control_uptime_s);
  r.number(j, "dataplane_uptime_s", p, y.dataplane_uptime_s);
  r.boolean(j, "dataplane_alive", p, y.dataplane_alive);
  r.integer(j, "dataplane_pid", p, y.dataplane_pid);
  r.integer(j, "control_pid", p, y.control_pid);
  r.integer(j, "state_publications", p, y.state_publications);
}

void read_port(Reader& r, const json& j, const std::string& p, PortStatus& o) {
  if (!r.object(j, p)) return;
  r.string(j, "name", p, o.name, true);
  r.string(j, "device", p, o.device);
  r.string(j, "driver", p, o.driver);
  r.string(j, "mac", p, o.mac);
  r.string(j, "address", p, o.address);
  r.boolean(j, "ntp_server", p, o.ntp_server);
  r.string(j, "timestamping", p, o.timestamping);
  r.string(j, "timestamp_reason", p, o.timestamp_reason);
  r.boolean(j, "nic_emulated", p, o.nic_emulated);
  r.boolean(j, "nic_map_valid", p, o.nic_map_valid);
  r.number(j, "nic_clock_hz", p, o.nic_clock_hz);
  r.number(j, "nic_residual_ns", p, o.nic_residual_ns);
  r.integer(j, "nic_rounds", p, o.nic_rounds);
  r.integer(j, "nic_outliers", p, o.nic_outliers);
  r.integer(j, "nic_restarts", p, o.nic_restarts);
  r.integer(j, "tx_compensation_ns", p, o.tx_compensation_ns);
  r.integer(j, "hw_timestamps", p, o.hw_timestamps);
  r.integer(j, "sw_timestamps", p, o.sw_timestamps);
  r.integer(j, "hw_rejected", p, o.hw_rejected);
  r.integer(j, "hw_minus_sw_mean_ns", p, o.hw_minus_sw_mean_ns);
  r.integer(j, "hw_minus_sw_max_ns", p, o.hw_minus_sw_max_ns);
  r.boolean(j, "link_up", p, o.link_up);
  r.integer(j, "link_speed_mbps", p, o.link_speed_mbps);
}

void read_steered(Reader& r, const json& j, const std::string& p, SteeredClockStatus& c) {
  if (!r.object(j, p)) return;
  r.string(j, "name", p, c.name, true);
  r.boolean(j, "following", p, c.following);
  r.integer(j, "offset_ns", p, c.offset_ns);
  r.number(j, "frequency_ppm", p, c.frequency_ppm);
  r.string(j, "state", p, c.state);
  r.integer(j, "updates", p, c.updates);
  r.integer(j, "steps", p, c.steps);
  r.integer(j, "errors", p, c.errors);
}

void read_worker(Reader& r, const json& j, const std::string& p, WorkerStatus& w) {
  if (!r.object(j, p)) return;
  r.integer(j, "id", p, w.id, true);
  for (const auto& c : kWorkerCounters) r.integer(j, c.key, p, w.*c.field);
  const json* d = r.member(j, "drops", p, false);
  if (!d || !r.object(*d, p + ".drops")) return;
  // By name: a reason this build does not know (a newer peer) is ignored.
  for (size_t i = 0; i < proto::kDropReasonCount; ++i)
    r.integer(*d, proto::drop_reason_name(static_cast<proto::DropReason>(i)), p + ".drops", w.drops[i]);
}

void read_association(Reader& r, const json& j, const std::string& p, AssociationStatus& a) {
  if (!r.object(j, p)) return;
  r.string(j, "address", p, a.address, true);
  r.integer(j, "port", p, a.port);
  r.string(j, "mode", p, a.mode);
  r.boolean(j, "configured", p, a.configured);
  r.string(j, "selection", p, a.selection);
  r.string(j, "status", p, a.status);
  r.integer(j, "stratum", p, a.stratum);
  r.integer(j, "refid", p, a.refid);
  r.string(j, "refid_text", p, a.refid_text);
  r.integer(j, "reach", p, a.reach);
  r.integer(j, "poll_log2", p, a.poll_log2);
  r.integer(j, "peer_poll_log2", p, a.peer_poll_log2);
  r.string(j, "peer_mode", p, a.peer_mode);
  r.number(j, "since_last_rx_s", p, a.since_last_rx_s);
  r.integer(j, "offset_ns", p, a.offset_ns);
  r.integer(j, "delay_ns", p, a.delay_ns);
  r.integer(j, "dispersion_ns", p, a.dispersion_ns);
  r.integer(j, "jitter_ns", p, a.jitter_ns);
  r.integer(j, "root_delay_ns", p, a.root_delay_ns);
  r.integer(j, "root_dispersion_ns", p, a.root_dispersion_ns);
  r.integer(j, "sync_distance_ns", p, a.sync_distance_ns);
  r.integer(j, "precision_log2", p, a.precision_log2);
  r.integer(j, "version", p, a.version);
  r.integer(j, "leap", p, a.leap);
  r.integer(j, "reference_time_ns", p, a.reference_time_ns);
  r.integer(j, "origin_ts", p, a.origin_ts);
  r.integer(j, "receive_ts", p, a.receive_ts);
  r.integer(j, "transmit_ts", p, a.transmit_ts);
  const json* f = r.array(j, "filter", p);
  if (!f) return;
  a.filter.clear();
  for (size_t i = 0; i < f->size() && r.ok(); ++i) {
    const std::string fp = p + ".filter[" + std::to_string(i) + "]";
    const json& e = (*f)[i];
    if (!r.object(e, fp)) break;
    FilterStage st;
    r.integer(e, "offset_ns", fp, st.offset_ns);
    r.integer(e, "delay_ns", fp, st.delay_ns);
    r.integer(e, "dispersion_ns", fp, st.dispersion_ns);
    r.boolean(e, "valid", fp, st.valid);
    a.filter.push_back(st);
  }
}

template <class T, class F>
void read_array(Reader& r, const json& top, const char* key, std::vector<T>& out, F read_one) {
  const json* arr = r.array(top, key, "status");
  if (!arr) return;
  out.clear();
  out.reserve(arr->size());
  for (size_t i = 0; i < arr->size() && r.ok(); ++i) {
    T v;
    read_one(r, (*arr)[i], std::string(key) + "[" + std::to_string(i) + "]", v);
    out.push_back(std::move(v));
  }
}

// ---------------------------------------------------------------------------
// Prometheus text exposition format 0.0.4.

using Labels = std::vector<std::pair<const char*, std::string>>;

class PromWriter {
 public:
  void family(const char* name, const char* type, const char* help) {
    name_ = name;
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;  // our help texts hold neither backslashes nor newlines
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }

  void sample(const Labels& labels, const std::string& value) {
    std::string series = name_;
    if (!labels.empty()) {
      series += '{';
      bool first = true;
      for (const auto& [k, v] : labels) {
        if (!first) series += ',';
        first = false;
        series += k;
        series += "=\"";
        series += escape(v);
        series += '"';
      }
      series += '}';
    }
    // A duplicate series would make Prometheus reject the whole scrape
    // (two associations or workers with the same identity): keep the first.
    if (!seen_.insert(series).second) return;
    out_ += series;
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  void sample(const std::string& value) { sample({}, value); }

  std::string take() { return std::move(out_); }

 private:
  static std::string escape(std::string_view raw) {
    const std::string v = utf8_clean(raw);
    std::string o;
    o.reserve(v.size());
    for (char c : v) {
      if (c == '\\') o += "\\\\";
      else if (c == '"') o += "\\\"";
      else if (c == '\n') o += "\\n";
      else o += c;
    }
    return o;
  }

  std::string out_;
  std::string name_;
  std::set<std::string> seen_;
};

std::string u64(uint64_t v) { return std::to_string(v); }
std::string i64(int64_t v) { return std::to_string(v); }
std::string b01(bool v) { return v ? "1" : "0"; }

Labels assoc_labels(const AssociationStatus& a) {
  return {{"address", a.address}, {"mode", a.mode}, {"dynamic", a.configured ? "false" : "true"}};
}

}  // namespace

// ---------------------------------------------------------------------------

std::string format_ntp_timestamp(uint64_t raw, int64_t pivot_unix_ns) {
  if (raw == 0) return kNever;
  const auto ts = proto::NtpTimestamp::from_raw(raw);
  return vendor_time(ts, unix_s_of(ts, pivot_unix_ns));
}

std::string format_reference_time(int64_t unix_ns) {
  if (unix_ns == 0) return kNever;
  const auto ts = proto::ntp_from_unix_ns(unix_ns);
  // Pivot on the time itself: its own era, even where the wire value is 0.
  return vendor_time(ts, unix_s_of(ts, unix_ns));
}

std::string to_json(const Status& s) {
  ordered_json j;
  j["system"] = system_json(s.system);
  ordered_json ports = ordered_json::array();
  for (const auto& p : s.ports) ports.push_back(port_json(p));
  j["ports"] = std::move(ports);
  ordered_json workers = ordered_json::array();
  for (const auto& w : s.workers) workers.push_back(worker_json(w));
  j["workers"] = std::move(workers);
  ordered_json assocs = ordered_json::array();
  for (const auto& a : s.associations) assocs.push_back(association_json(a));
  j["associations"] = std::move(assocs);
  ordered_json steered = ordered_json::array();
  for (const auto& c : s.steered_clocks) steered.push_back(steered_json(c));
  j["steered_clocks"] = std::move(steered);
  // Invalid UTF-8 in a string (never expected: names come from a validated
  // config) is replaced rather than thrown.
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

std::optional<Status> from_json(const std::string& text, std::string& err) {
  try {
    if (text.size() > kMaxJsonBytes) {
      err = "status document too large (" + std::to_string(text.size()) + " bytes)";
      return std::nullopt;
    }
    const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
      err = "malformed JSON";
      return std::nullopt;
    }
    Reader r;
    Status s;
    if (r.object(j, "status")) {
      const json* sys = r.member(j, "system", "status", true);
      if (sys) read_system(r, *sys, s.system);
      read_array(r, j, "ports", s.ports, read_port);
      read_array(r, j, "workers", s.workers, read_worker);
      read_array(r, j, "associations", s.associations, read_association);
      read_array(r, j, "steered_clocks", s.steered_clocks, read_steered);
    }
    if (!r.ok()) {
      err = r.error();
      return std::nullopt;
    }
    return s;
  } catch (const std::exception& e) {
    err = std::string("bad status document: ") + e.what();
  } catch (...) {
    err = "bad status document";
  }
  return std::nullopt;
}

std::string to_prometheus(const Status& s) {
  PromWriter w;
  const SystemStatus& y = s.system;

  w.family("ntp_build_info", "gauge", "Software version and system name; always 1.");
  w.sample({{"version", y.version}, {"sysname", y.sysname}}, "1");
  w.family("ntp_synchronized", "gauge", "1 when the clock is synchronized, else 0.");
  w.sample(b01(y.synchronized));
  w.family("ntp_leap", "gauge", "Leap indicator served (RFC 5905; 3 = unsynchronized).");
  w.sample(u64(y.leap));
  w.family("ntp_stratum", "gauge", "Stratum of the clock (16 = unsynchronized).");
  w.sample(u64(y.stratum));
  w.family("ntp_sync_info", "gauge", "What the clock follows and its synchronization state; always 1.");
  w.sample({{"refid", y.refid_text},
            {"reference", y.reference},
            {"sync_state", y.sync_state},
            {"clock_source", y.clock_source}},
           "1");
  w.family("ntp_root_delay_seconds", "gauge", "Root delay served.");
  w.sample(seconds_text(y.root_delay_ns));
  w.family("ntp_root_dispersion_seconds", "gauge", "Root dispersion served.");
  w.sample(seconds_text(y.root_dispersion_ns));
  w.family("ntp_peer_dispersion_seconds", "gauge", "Dispersion of the system peer.");
  w.sample(seconds_text(y.peer_dispersion_ns));
  w.family("ntp_clock_offset_seconds", "gauge", "Last offset of the system peer (0 for the local clock).");
  w.sample(seconds_text(y.clock_offset_ns));
  w.family("ntp_reference_time_seconds", "gauge", "When the clock was last set or corrected, Unix time (0 = never).");
  w.sample(seconds_text(y.reference_time_ns));
  w.family("ntp_precision_log2", "gauge", "Clock precision, log2 seconds.");
  w.sample(i64(y.precision_log2));
  w.family("ntp_timebase_nominal_hertz", "gauge", "Calibrated frequency of the timebase (TSC).");
  w.sample(double_text(y.nominal_freq_hz));
  w.family("ntp_timebase_actual_hertz", "gauge", "Frequency of the timebase as the disciplined clock runs it.");
  w.sample(double_text(y.actual_freq_hz));
  w.family("ntp_frequency_ppm", "gauge", "Frequency correction applied to the timebase, ppm.");
  w.sample(double_text(y.frequency_ppm));
  w.family("ntp_clock_minus_host_seconds", "gauge", "The served clock minus the host's CLOCK_REALTIME.");
  w.sample(seconds_text(y.clock_minus_host_ns));
  w.family("ntp_holdover_seconds", "gauge", "How long the dataplane serves the last state without a control plane.");
  w.sample(double_text(y.holdover_s));
  w.family("ntp_control_uptime_seconds", "gauge", "Time since ntp-control started.");
  w.sample(double_text(y.control_uptime_s));
  w.family("ntp_dataplane_uptime_seconds", "gauge", "Time since ntp-dataplane started.");
  w.sample(double_text(y.dataplane_uptime_s));
  w.family("ntp_dataplane_alive", "gauge", "1 when the dataplane's heartbeat is fresh, else 0.");
  w.sample(b01(y.dataplane_alive));
  w.family("ntp_state_publications_total", "counter", "Publications of the server state to the dataplane.");
  w.sample(u64(y.state_publications));

  w.family("ntp_port_info", "gauge", "A dataplane port; always 1.");
  for (const auto& p : s.ports)
    w.sample({{"port", p.name},
              {"device", p.device},
              {"driver", p.driver},
              {"mac", p.mac},
              {"address", p.address},
              {"timestamping", p.timestamping}},
             "1");
  w.family("ntp_port_link_up", "gauge", "1 when the port's link is up, else 0.");
  for (const auto& p : s.ports) w.sample({{"port", p.name}}, b01(p.link_up));
  w.family("ntp_port_ntp_server", "gauge", "1 when the port answers NTP client requests, else 0.");
  for (const auto& p : s.ports) w.sample({{"port", p.name}}, b01(p.ntp_server));
  w.family("ntp_port_link_speed_bits_per_second", "gauge", "Link speed of the port (0 = unknown).");
  for (const auto& p : s.ports) w.sample({{"port", p.name}}, u64(uint64_t{p.link_speed_mbps} * 1000000));
  w.family("ntp_port_hardware_timestamping", "gauge",
           "1 when the port timestamps received packets with the NIC's clock, 0 for software (the TSC).");
  for (const auto& p : s.ports) w.sample({{"port", p.name}}, b01(p.timestamping == "hardware"));
  w.family("ntp_port_rx_timestamps_total", "counter",
           "Received packets by how they were timestamped: hardware (NIC clock), software (TSC), rejected (a "
           "NIC timestamp that could not be converted; software used).");
  for (const auto& p : s.ports) {
    w.sample({{"port", p.name}, {"kind", "hardware"}}, u64(p.hw_timestamps));
    w.sample({{"port", p.name}, {"kind", "software"}}, u64(p.sw_timestamps));
    w.sample({{"port", p.name}, {"kind", "rejected"}}, u64(p.hw_rejected));
  }
  w.family("ntp_port_nic_clock_mapping_valid", "gauge", "1 when the NIC-to-TSC clock mapping is usable.");
  for (const auto& p : s.ports) w.sample({{"port", p.name}}, b01(p.nic_map_valid));
  w.family("ntp_port_nic_clock_hertz", "gauge", "The NIC clock's frequency, fitted against the TSC.");
  for (const auto& p : s.ports) w.sample({{"port", p.name}}, double_text(p.nic_clock_hz));
  w.family("ntp_port_nic_clock_residual_seconds", "gauge", "RMS residual of the NIC-to-TSC mapping's fit.");
  for (const auto& p : s.ports) w.sample({{"port", p.name}}, double_text(p.nic_residual_ns * 1e-9));
  w.family("ntp_port_nic_clock_rounds_total", "counter", "Cross-timestamp rounds of the NIC clock.");
  for (const auto& p : s.ports) w.sample({{"port", p.name}}, u64(p.nic_rounds));
  w.family("ntp_port_nic_clock_outliers_total", "counter", "Cross-timestamp rounds rejected as outliers.");
  for (const auto& p : s.ports) w.sample({{"port", p.name}}, u64(p.nic_outliers));
  w.family("ntp_port_hw_minus_sw_seconds", "gauge",
           "NIC receive timestamps minus the burst's TSC timestamps: mean and largest absolute difference.");
  for (const auto& p : s.ports) {
    w.sample({{"port", p.name}, {"stat", "mean"}}, seconds_text(p.hw_minus_sw_mean_ns));
    w.sample({{"port", p.name}, {"stat", "max"}}, seconds_text(static_cast<int64_t>(p.hw_minus_sw_max_ns)));
  }
  w.family("ntp_port_tx_compensation_seconds", "gauge", "Added to transmit timestamps (configuration).");
  for (const auto& p : s.ports) w.sample({{"port", p.name}}, seconds_text(p.tx_compensation_ns));

  w.family("ntp_steered_clock_following", "gauge",
           "1 while the clock (clock.steer_phc, clock.steer_system_clock) follows the served time, else 0.");
  for (const auto& c : s.steered_clocks) w.sample({{"clock", c.name}}, b01(c.following));
  w.family("ntp_steered_clock_offset_seconds", "gauge", "The served time minus the steered clock at its last update.");
  for (const auto& c : s.steered_clocks) w.sample({{"clock", c.name}}, seconds_text(c.offset_ns));
  w.family("ntp_steered_clock_frequency_ppm", "gauge", "Frequency correction set on the steered clock, ppm.");
  for (const auto& c : s.steered_clocks) w.sample({{"clock", c.name}}, double_text(c.frequency_ppm));
  w.family("ntp_steered_clock_steps_total", "counter", "Steps of the steered clock.");
  for (const auto& c : s.steered_clocks) w.sample({{"clock", c.name}}, u64(c.steps));
  w.family("ntp_steered_clock_errors_total", "counter", "Failed reads or adjustments of the steered clock.");
  for (const auto& c : s.steered_clocks) w.sample({{"clock", c.name}}, u64(c.errors));

  for (const auto& c : kWorkerCounters) {
    w.family(c.metric, "counter", c.help);
    for (const auto& wk : s.workers) w.sample({{"worker", std::to_string(wk.id)}}, u64(wk.*c.field));
  }
  w.family("ntp_worker_drops_total", "counter", "Frames dropped by the worker, by reason.");
  for (const auto& wk : s.workers)
    for (size_t r = 0; r < proto::kDropReasonCount; ++r)
      w.sample({{"worker", std::to_string(wk.id)},
                {"reason", proto::drop_reason_name(static_cast<proto::DropReason>(r))}},
               u64(wk.drops[r]));

  const auto& as = s.associations;
  w.family("ntp_association_info", "gauge", "An association and what its peer reports; always 1.");
  for (const auto& a : as) {
    Labels l = assoc_labels(a);
    l.emplace_back("port", std::to_string(a.port));
    l.emplace_back("refid", a.refid_text);
    l.emplace_back("peer_mode", a.peer_mode);
    l.emplace_back("status", a.status);
    w.sample(l, "1");
  }
  w.family("ntp_association_selected", "gauge",
           "1 when the association is the system peer, else 0; the selection label gives its state.");
  for (const auto& a : as) {
    Labels l = assoc_labels(a);
    l.emplace_back("selection", a.selection);
    w.sample(l, b01(a.selection == "system peer"));
  }
  w.family("ntp_association_reach", "gauge", "Reach register (8 bits, newest poll in bit 0).");
  for (const auto& a : as) w.sample(assoc_labels(a), u64(a.reach));
  w.family("ntp_association_stratum", "gauge", "Stratum of the peer.");
  for (const auto& a : as) w.sample(assoc_labels(a), u64(a.stratum));
  w.family("ntp_association_leap", "gauge", "Leap indicator of the peer.");
  for (const auto& a : as) w.sample(assoc_labels(a), u64(a.leap));
  w.family("ntp_association_offset_seconds", "gauge", "Offset of the peer's clock.");
  for (const auto& a : as) w.sample(assoc_labels(a), seconds_text(a.offset_ns));
  w.family("ntp_association_delay_seconds", "gauge", "Round-trip delay to the peer.");
  for (const auto& a : as) w.sample(assoc_labels(a), seconds_text(a.delay_ns));
  w.family("ntp_association_dispersion_seconds", "gauge", "Dispersion of the peer.");
  for (const auto& a : as) w.sample(assoc_labels(a), seconds_text(a.dispersion_ns));
  w.family("ntp_association_jitter_seconds", "gauge", "Jitter of the peer.");
  for (const auto& a : as) w.sample(assoc_labels(a), seconds_text(a.jitter_ns));
  w.family("ntp_association_root_delay_seconds", "gauge", "Root delay reported by the peer.");
  for (const auto& a : as) w.sample(assoc_labels(a), seconds_text(a.root_delay_ns));
  w.family("ntp_association_root_dispersion_seconds", "gauge", "Root dispersion reported by the peer.");
  for (const auto& a : as) w.sample(assoc_labels(a), seconds_text(a.root_dispersion_ns));
  w.family("ntp_association_sync_distance_seconds", "gauge", "Synchronization distance of the peer.");
  for (const auto& a : as) w.sample(assoc_labels(a), seconds_text(a.sync_distance_ns));
  w.family("ntp_association_poll_log2", "gauge", "Our poll interval to the peer, log2 seconds.");
  for (const auto& a : as) w.sample(assoc_labels(a), i64(a.poll_log2));
  w.family("ntp_association_peer_poll_log2", "gauge", "The peer's poll interval, log2 seconds.");
  for (const auto& a : as) w.sample(assoc_labels(a), i64(a.peer_poll_log2));
  w.family("ntp_association_precision_log2", "gauge", "Precision of the peer's clock, log2 seconds.");
  for (const auto& a : as) w.sample(assoc_labels(a), i64(a.precision_log2));
  w.family("ntp_association_since_last_rx_seconds", "gauge",
           "Time since the last valid packet from the peer; -1 when none was ever received.");
  for (const auto& a : as)
    w.sample(assoc_labels(a), double_text(a.since_last_rx_s < 0 ? -1.0 : a.since_last_rx_s));
  return w.take();
}

std::string format_status(const Status& s) {
  const SystemStatus& y = s.system;
  char buf[128];
  std::string o;
  o += std::string(" clock status: ") + (y.synchronized ? "synchronized" : "unsynchronized") + "\n";
  o += " clock stratum: " + std::to_string(y.synchronized ? unsigned{y.stratum} : 16u) + "\n";
  o += " reference clock ID: " + y.refid_text + "\n";
  std::snprintf(buf, sizeof buf, " nominal frequency: %.4f MHz\n", y.nominal_freq_hz / 1e6);
  o += buf;
  std::snprintf(buf, sizeof buf, " actual frequency: %.4f MHz\n", y.actual_freq_hz / 1e6);
  o += buf;
  o += " clock precision: 2^" + std::to_string(y.precision_log2) + "\n";
  o += " clock offset: " + ms_text(y.clock_offset_ns, 4) + " ms\n";
  o += " root delay: " + ms_text(y.root_delay_ns, 2) + " ms\n";
  o += " root dispersion: " + ms_text(y.root_dispersion_ns, 2) + " ms\n";
  o += " peer dispersion: " + ms_text(y.peer_dispersion_ns, 2) + " ms\n";
  o += " reference time: " + format_reference_time(y.reference_time_ns) + "\n";
  o += " synchronization state: " + y.sync_state + "\n";
  // Not in the vendor's output: the clocks kept on the served time.
  for (const auto& c : s.steered_clocks) {
    char line[256];
    std::snprintf(line, sizeof line, " steered clock %s: %s, offset %s ms, frequency %+.3f ppm, %s, %llu steps, %llu errors\n",
                  c.name.c_str(), c.following ? "following" : "not following", ms_text(c.offset_ns, 6).c_str(),
                  c.frequency_ppm, c.state.c_str(), static_cast<unsigned long long>(c.steps),
                  static_cast<unsigned long long>(c.errors));
    o += line;
  }
  return o;
}

namespace {

// Eight filter columns in ms, newest first; "-" for an empty stage.
std::string filter_line(const char* label, const std::vector<FilterStage>& f, int64_t FilterStage::*field) {
  std::string o = label;
  for (size_t i = 0; i < 8; ++i) {
    const std::string v = (i < f.size() && f[i].valid) ? ms_text(f[i].*field, 4) : "-";
    char buf[48];
    std::snprintf(buf, sizeof buf, " %9s", v.c_str());
    o += buf;
  }
  return o + "\n";
}

}  // namespace

std::string format_sessions(const Status& s, bool verbose) {
  if (s.associations.empty()) return " no sessions\n";
  std::string o;
  for (const auto& a : s.associations) {
    o += " clock source: " + a.address + "\n";
    o += " clock stratum: " + std::to_string(a.stratum) + "\n";
    o += " clock status: " + a.status + "\n";
    o += " reference clock ID: " + a.refid_text + "\n";
    o += " reach: " + std::to_string(a.reach) + "\n";
    o += " current poll: " + poll_text(a.poll_log2) + "\n";
    std::string now = "-";
    if (a.since_last_rx_s >= 0 && std::isfinite(a.since_last_rx_s)) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.0f", std::floor(a.since_last_rx_s));
      now = buf;
    }
    o += " now: " + now + "\n";
    o += " offset: " + ms_text(a.offset_ns, 4) + " ms\n";
    o += " delay: " + ms_text(a.delay_ns, 2) + " ms\n";
    o += " disper: " + ms_text(a.dispersion_ns, 2) + " ms\n";
    if (verbose) {
      const int64_t pivot = a.reference_time_ns   ? a.reference_time_ns
                            : s.system.reference_time_ns ? s.system.reference_time_ns
                                                         : kDefaultPivotNs;
      o += " remote port: " + std::to_string(a.port) + "\n";
      o += " local mode: " + a.mode + "\n";
      o += " peer mode: " + a.peer_mode + "\n";
      o += " peer poll: " + poll_text(a.peer_poll_log2) + "\n";
      o += " root delay: " + ms_text(a.root_delay_ns, 2) + " ms\n";
      o += " root dispersion: " + ms_text(a.root_dispersion_ns, 2) + " ms\n";
      o += " sync distance: " + ms_text(a.sync_distance_ns, 2) + " ms\n";
      o += " precision: 2^" + std::to_string(a.precision_log2) + "\n";
      o += " version: " + std::to_string(a.version) + "\n";
      o += " leap indicator: " + std::to_string(a.leap) + "\n";
      o += " selection: " + a.selection + "\n";
      o += " jitter: " + ms_text(a.jitter_ns, 4) + " ms\n";
      o += std::string(" association type: ") + (a.configured ? "configured" : "dynamic") + "\n";
      o += " reference time: " + format_reference_time(a.reference_time_ns) + "\n";
      o += " origin timestamp: " + format_ntp_timestamp(a.origin_ts, pivot) + "\n";
      o += " receive timestamp: " + format_ntp_timestamp(a.receive_ts, pivot) + "\n";
      o += " transmit timestamp: " + format_ntp_timestamp(a.transmit_ts, pivot) + "\n";
      o += filter_line(" filter delay: ", a.filter, &FilterStage::delay_ns);
      o += filter_line(" filter offset:", a.filter, &FilterStage::offset_ns);
      o += filter_line(" filter disper:", a.filter, &FilterStage::dispersion_ns);
    }
    o += "\n";
  }
  o += " total sessions: " + std::to_string(s.associations.size()) + "\n";
  return o;
}

std::string format_ports(const Status& s) {
  if (s.ports.empty()) return " no ports\n";
  std::string o;
  char buf[256];
  for (const auto& p : s.ports) {
    o += " interface: " + p.name + "\n";
    o += " device: " + p.device + " (driver " + p.driver + ")\n";
    o += " address: " + p.address + ", mac " + p.mac + "\n";
    o += std::string(" link: ") + (p.link_up ? "up" : "down") +
         (p.link_speed_mbps ? ", " + std::to_string(p.link_speed_mbps) + " Mb/s" : std::string()) + "\n";
    o += std::string(" ntp server: ") + (p.ntp_server ? "yes" : "no") + "\n";
    o += " receive timestamps: " + p.timestamping + (p.nic_emulated ? " (emulated NIC clock)" : "") + "\n";
    if (!p.timestamp_reason.empty()) o += "  why: " + p.timestamp_reason + "\n";
    if (p.timestamping == "hardware") {
      std::snprintf(buf, sizeof buf,
                    "  NIC clock mapping: %s, NIC clock %.3f Hz, residual %.1f ns, %llu rounds, %llu "
                    "outliers, %llu restarts\n",
                    p.nic_map_valid ? "valid" : "not yet valid", p.nic_clock_hz, p.nic_residual_ns,
                    static_cast<unsigned long long>(p.nic_rounds), static_cast<unsigned long long>(p.nic_outliers),
                    static_cast<unsigned long long>(p.nic_restarts));
      o += buf;
      std::snprintf(buf, sizeof buf,
                    "  packets: %llu hardware, %llu software, %llu rejected; hardware minus software: mean %.3f us, "
                    "largest %.3f us\n",
                    static_cast<unsigned long long>(p.hw_timestamps), static_cast<unsigned long long>(p.sw_timestamps),
                    static_cast<unsigned long long>(p.hw_rejected), static_cast<double>(p.hw_minus_sw_mean_ns) / 1e3,
                    static_cast<double>(p.hw_minus_sw_max_ns) / 1e3);
      o += buf;
    } else {
      o += "  packets: " + std::to_string(p.sw_timestamps) + " software\n";
    }
    o += " transmit compensation: " + std::to_string(p.tx_compensation_ns) + " ns\n\n";
  }
  return o;
}

}  // namespace ntp::status
