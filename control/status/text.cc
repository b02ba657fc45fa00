// The vendor-style text of ntpctl (`display ntp-service status|sessions`)
// and the log lines of the NTP core's events.
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "control/status/numbers.h"
#include "control/status/status.h"
#include "control/status/words.h"
#include "proto/inet.h"
#include "proto/ntp_packet.h"
#include "proto/ntp_time.h"

namespace ntp::status {
namespace {

using detail::abs_u64;
using detail::double_text;

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
// The civil date and second of the day of a Unix second.
struct CivilTime {
  int64_t year = 0;
  unsigned month = 1, day = 1;
  int64_t second_of_day = 0;
};
CivilTime civil_time(int64_t unix_s) {
  CivilTime c;
  int64_t days = unix_s / 86400;
  c.second_of_day = unix_s % 86400;
  if (c.second_of_day < 0) {
    c.second_of_day += 86400;
    days -= 1;
  }
  civil_from_days(days, c.year, c.month, c.day);
  return c;
}

std::string vendor_time(proto::NtpTimestamp ts, int64_t unix_s) {
  const CivilTime c = civil_time(unix_s);
  const int64_t sod = c.second_of_day;
  const unsigned ms = static_cast<unsigned>((uint64_t{ts.fraction} * 1000) >> 32);
  char buf[128];
  std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%03u UTC %s %u %" PRId64 "(%08" PRIX32 ".%08" PRIX32 ")",
                static_cast<int>(sod / 3600), static_cast<int>(sod / 60 % 60), static_cast<int>(sod % 60), ms,
                kMonths[c.month - 1], c.day, c.year, ts.seconds, ts.fraction);
  return buf;
}

// Unix second of the seconds field of ts in the era nearest pivot.
int64_t unix_s_of(proto::NtpTimestamp ts, int64_t pivot_unix_ns) {
  return proto::unix_ns_from_ntp({ts.seconds, 0}, pivot_unix_ns) / proto::kNsPerS;
}

// "10:41:02 UTC Dec 1 2026": the vendor's way of writing a time, to the
// second; `second` overrides the second shown (60 for an inserted leap second).
std::string utc_text(int64_t unix_s, int second = -1) {
  const CivilTime c = civil_time(unix_s);
  const int64_t sod = c.second_of_day;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%02d:%02d:%02d UTC %s %u %" PRId64, static_cast<int>(sod / 3600),
                static_cast<int>(sod / 60 % 60), second >= 0 ? second : static_cast<int>(sod % 60),
                kMonths[c.month - 1], c.day, c.year);
  return buf;
}

int64_t floor_s(int64_t unix_ns) {
  return unix_ns / proto::kNsPerS - (unix_ns % proto::kNsPerS < 0 ? 1 : 0);
}

std::string plural(size_t n, const char* one) { return std::to_string(n) + " " + one + (n == 1 ? "" : "s"); }

// Not in the vendor's output, and first: whether anything is served at all.
// "clock status" is the control plane's own view, which stays synchronized
// while a dead dataplane answers nobody.
std::string service_line(const Status& s) {
  const SystemStatus& y = s.system;
  if (!y.dataplane_alive) {
    if (y.dataplane_last_heartbeat_ns == 0) return " service: NOT SERVING (no dataplane heartbeat seen)\n";
    char age[32];
    std::snprintf(age, sizeof age, "%.0f s", y.dataplane_heartbeat_age_s);
    return " service: NOT SERVING (dataplane down since " +
           utc_text(floor_s(y.dataplane_last_heartbeat_ns)) + ", " + age +
           " ago; clock status is the control plane's own)\n";
  }
  size_t servers = 0, up = 0;
  for (const PortStatus& p : s.ports) {
    servers += p.ntp_server;
    up += p.ntp_server && p.link_up;
  }
  const std::string workers = plural(s.workers.size(), "worker");
  if (servers == 0) return " service: no NTP clients served (no interface has ntp_server = true), " + workers + "\n";
  if (up == 0) return " service: NOT SERVING (link down on every ntp_server port)\n";
  std::string o = " service: serving on " + workers + ", " + plural(up, "port");
  if (up < servers) o += " (" + std::to_string(servers - up) + " of " + std::to_string(servers) + " link down)";
  return o + "\n";
}

// RFC 5905 section 7.3, LI 1: "last minute of the day has 61 seconds", LI 2:
// "... 59 seconds". leap_at_ns is the midnight that ends that day.
std::string leap_line(const SystemStatus& y) {
  if (y.leap_sign == 0) return {};
  const int64_t midnight_s = floor_s(y.leap_at_ns);
  std::string o = y.leap_sign > 0 ? " leap second: insert " + utc_text(midnight_s - 1, 60)
                                  : " leap second: delete " + utc_text(midnight_s - 1);
  if (y.leap_smear_ns > 0) {
    char h[32];
    std::snprintf(h, sizeof h, "%.0f h", static_cast<double>(y.leap_smear_ns) / 3.6e12);
    o += ", smeared over " + std::string(h) + " from " +
         utc_text(floor_s(y.leap_at_ns - y.leap_smear_ns / 2)) +
         " (leap indicator not passed on)";
  }
  return o + "\n";
}

}  // namespace

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

std::string format_status(const Status& s) {
  const SystemStatus& y = s.system;
  char buf[128];
  std::string o;
  o += service_line(s);
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
  o += leap_line(y);
  // Not in the vendor's output: whether both daemons hold the same keys.
  if (y.keys_match)
    o += *y.keys_match ? " authentication keys: the same in the dataplane and ntp-control\n"
                       : " authentication keys: DIFFERENT: the dataplane and ntp-control loaded different keys files: "
                         "reload both\n";
  // Not in the vendor's output: the clocks kept on the served time.
  for (const auto& c : s.steered_clocks) {
    char line[256];
    std::snprintf(line, sizeof line, " steered clock %s: %s, offset %s ms, frequency %+.3f ppm, %s, %llu steps, %llu errors\n",
                  c.name.c_str(), c.following ? "following" : "not following", ms_text(c.offset_ns, 6).c_str(),
                  c.frequency_ppm, c.state.c_str(), static_cast<unsigned long long>(c.steps),
                  static_cast<unsigned long long>(c.errors));
    o += line;
  }
  // Not in the vendor's output: the NTS-KE server.
  for (const auto& k : s.nts_ke) {
    char line[256];
    std::snprintf(line, sizeof line, " NTS-KE server %s: %llu served (%llu cookies), %llu open, %llu refused, "
                  "%llu TLS failures, %llu bad requests, %llu timed out\n",
                  k.listen.c_str(), static_cast<unsigned long long>(k.served),
                  static_cast<unsigned long long>(k.cookies), static_cast<unsigned long long>(k.sessions),
                  static_cast<unsigned long long>(k.refused), static_cast<unsigned long long>(k.handshake_failures),
                  static_cast<unsigned long long>(k.bad_requests), static_cast<unsigned long long>(k.timeouts));
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
    o += " authentication: " + a.authentication + (a.authentication == "pending" ? " (not yet verified)" : "") + "\n";
    if (!a.xleave.empty())
      o += " xleave: " + a.xleave +
           (a.xleave == "basic" ? std::string(" (the ") + (a.mode == "client" ? "server" : "peer") + " answers in basic mode)"
                                : "") +
           "\n";
    if (!a.nts.empty()) o += " nts: " + a.nts + (a.nts_error.empty() ? "" : " (" + a.nts_error + ")") + "\n";
    if (verbose) {
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
      o += " authentication keyid: " + std::to_string(a.key_id) + "\n";
      o += " authentication packets: " + std::to_string(a.auth_ok) + " ok, " + std::to_string(a.auth_missing) +
           " missing, " + std::to_string(a.auth_bad) + " bad, " + std::to_string(a.crypto_nak) + " crypto-NAK\n";
      if (!a.nts.empty())
        o += " nts cookies: " + std::to_string(a.nts_cookies) + ", nts-ke: " + std::to_string(a.nts_ke_ok) +
             " ok, " + std::to_string(a.nts_ke_failed) + " failed, naks: " + std::to_string(a.nts_naks) + "\n";
      // No origin/receive/transmit timestamps (the vendor shows them): they
      // carry our requests' nonces.
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
    o += " address: " + p.address + ", mac " + p.mac + (p.vlan ? ", VLAN " + std::to_string(p.vlan) : "") + "\n";
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
    o += " transmit compensation: " + std::to_string(p.tx_compensation_ns) + " ns\n";
    o += " transmit times kept (interleaved answers): " + std::to_string(p.tx_hw_timestamps) + " hardware, " +
         std::to_string(p.tx_sw_timestamps) + " software\n\n";
  }
  return o;
}

std::string format_limits(const Status& s) {
  if (s.workers.empty()) return " no workers\n";
  auto n = [](uint64_t v) { return std::to_string(v); };
  auto drop = [](const WorkerStatus& w, proto::DropReason r) { return w.drops[static_cast<size_t>(r)]; };
  std::string o;
  char buf[256];
  for (const WorkerStatus& w : s.workers) {
    o += " worker " + n(w.id) + "\n";
    const double pct = w.ratelimit_table_capacity
                           ? 100.0 * static_cast<double>(w.ratelimit_table_entries) /
                                 static_cast<double>(w.ratelimit_table_capacity)
                           : 0.0;
    std::snprintf(buf, sizeof buf, " client table: %llu of %llu entries (%.1f%%), %.1f MiB\n",
                  static_cast<unsigned long long>(w.ratelimit_table_entries),
                  static_cast<unsigned long long>(w.ratelimit_table_capacity), pct,
                  static_cast<double>(w.ratelimit_memory_bytes) / (1024.0 * 1024.0));
    o += buf;
    o += " clients entered: " + n(w.counter("ratelimit_inserts")) + ", of which evicted another: " +
         n(w.counter("ratelimit_evictions")) + "\n";
    o += " kiss-o'-death sent: " + n(w.counter("kod_rate")) + " RATE, " + n(w.counter("kod_deny")) + " DENY\n";
    o += " over the limit but answered (leak): " + n(w.counter("rate_leaked")) + "\n";
    o += " dropped: " + n(drop(w, proto::DropReason::kRateLimited)) + " rate limited, " +
         n(drop(w, proto::DropReason::kReplyCap)) + " over the reply cap, " +
         n(drop(w, proto::DropReason::kAccessDenied)) + " access denied, " +
         n(drop(w, proto::DropReason::kNotAPeer)) + " not a peer, " +
         n(drop(w, proto::DropReason::kUnexpectedServer)) + " unexpected server\n";
    if (w.top_limited.empty()) {
      o += " top limited sources: none\n\n";
      continue;
    }
    o += " top limited sources:\n";
    for (const LimitedSourceStatus& t : w.top_limited) {
      std::snprintf(buf, sizeof buf, "  %-39s %12llu limited, last %s\n", t.address.c_str(),
                    static_cast<unsigned long long>(t.limited),
                    t.last_ns ? utc_text(floor_s(t.last_ns)).c_str() : "-");
      o += buf;
    }
    o += "\n";
  }
  return o;
}

std::string format_event(const ctl::Event& e) {
  using ctl::EventKind;
  char ms[32];
  std::snprintf(ms, sizeof ms, "%+.3f ms", static_cast<double>(e.offset_ns) / 1e6);
  const std::string ip = proto::ipv4_to_string(e.address);
  const std::string stratum = std::to_string(e.stratum);
  switch (e.kind) {
    case EventKind::kKissOfDeath: return "kiss-o'-death " + refid_text(e.refid, 0) + " from " + ip;
    case EventKind::kPassiveCreated:
      return "symmetric passive association with " + ip + " (poll 2^" + std::to_string(e.poll_log2) + " s)";
    case EventKind::kPassiveRemoved:
      switch (e.removal) {
        case ctl::Removal::kTimeout: break;
        case ctl::Removal::kKiss:
          return "symmetric passive association with " + ip + " removed: kiss-o'-death " + refid_text(e.refid, 0);
        case ctl::Removal::kNotAllowed:
          return "symmetric passive association with " + ip + " removed: no longer allowed to peer (access.peer)";
      }
      return "symmetric passive association with " + ip + " removed: unreachable";
    case EventKind::kAssociationAdded: return mode_text(e.mode) + std::string(" association with ") + ip + " added";
    case EventKind::kAssociationRemoved:
      return mode_text(e.mode) + std::string(" association with ") + ip + " removed: no longer configured";
    case EventKind::kPollingStopped:
      return "no more packets to " + ip + ": it answered kiss-o'-death " + refid_text(e.refid, 0);
    case EventKind::kUnsynchronized: return std::string("unsynchronized: ") + unsync_reason_text(e.reason);
    case EventKind::kSystemPeerLost: return "lost the system peer " + ip + ": no selectable source";
    case EventKind::kLocalClockFallback: return "falling back to the local clock at stratum " + stratum;
    case EventKind::kSystemPeer:
      return "system peer " + ip + " (" + mode_text(e.mode) + ", stratum " + stratum + ", offset " + ms + ")";
    case EventKind::kPanic:
      return std::string("offset ") + ms + " is beyond the panic threshold: not adjusting the clock (set it by hand)";
    case EventKind::kSpike: return std::string("spike: offset ") + ms + " from " + ip + " ignored until it persists";
    case EventKind::kStep: return std::string("clock stepped by ") + ms;
    case EventKind::kSynchronized: return "synchronized to " + ip + " at stratum " + stratum;
    case EventKind::kPollingRestarted:
      return mode_text(e.mode) + std::string(" association with ") + ip + " restarted by the reload (it had answered " +
             "kiss-o'-death " + refid_text(e.refid, 0) + ")";
  }
  return "event " + std::to_string(static_cast<int>(e.kind));
}

}  // namespace ntp::status
