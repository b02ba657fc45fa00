// ntp-control: the control plane. Validates the configuration, attaches to
// the dataplane's shared memory, keeps the served timescale and the server
// state current, and serves the stats endpoint.
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <httplib.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>
#include <spdlog/spdlog.h>

#include "control/config.h"
#include "control/segment_client.h"
#include "control/status.h"
#include "control/system_state.h"
#include "control/timescale.h"
#include "hwclock/clock_model.h"
#include "hwclock/tsc.h"
#include "proto/ntp_packet.h"

#ifndef NTP_APPLIANCE_VERSION
#define NTP_APPLIANCE_VERSION "0.0.0"
#endif

namespace {

using namespace ntp;

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

void usage(FILE* out) {
  std::fprintf(out,
               "usage: ntp-control --config FILE [--check] | --print-keys\n"
               "  --config FILE  the instance's TOML configuration\n"
               "  --check        validate the configuration and exit\n"
               "  --print-keys   print every configuration key (type, default, range, meaning)\n");
}

void print_keys() {
  std::printf("| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n");
  for (const auto& k : config::key_docs()) {
    const std::string def = k.required ? "required" : (k.def.empty() ? "-" : k.def);
    std::printf("| `%s` | %s | %s | %s | %s |\n", k.key.c_str(), k.type.c_str(), def.c_str(), k.range.c_str(),
                k.help.c_str());
  }
}

double monotonic_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// The stats endpoint's view: the main loop replaces it once a second.
class Snapshot {
 public:
  void set(status::Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    s_ = std::make_shared<const status::Status>(std::move(s));
  }
  std::shared_ptr<const status::Status> get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return s_;
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const status::Status> s_;
};

class ControlPlane {
 public:
  explicit ControlPlane(const config::Config& cfg) : cfg_(cfg) {}

  int run();

 private:
  bool attach_once(bool log_waiting);
  void tick_second();
  void drain_rings();
  status::Status make_status(const hwclock::CrossTimestamp& host) const;

  const config::Config& cfg_;
  double tsc_hz_ = 0;
  int8_t precision_log2_ = -20;
  std::unique_ptr<ctl::Timescale> timescale_;
  ctl::SegmentClient seg_;
  ctl::SystemVariables sys_;
  uint64_t publications_ = 0;
  uint64_t ignored_packets_ = 0;
  bool last_sync_ = false;
  double start_s_ = monotonic_s();
  Snapshot snapshot_;
};

bool ControlPlane::attach_once(bool log_waiting) {
  std::string err;
  switch (seg_.attach(cfg_.shm_name, err)) {
    case ctl::SegmentClient::AttachResult::kAbsent:
      if (log_waiting) spdlog::info("waiting for ntp-dataplane to create shared memory {}", cfg_.shm_name);
      return false;
    case ctl::SegmentClient::AttachResult::kIncompatible:
      if (log_waiting) spdlog::error("{}", err);
      return false;
    case ctl::SegmentClient::AttachResult::kAttached: break;
  }
  proto::SegmentHeader& h = *seg_.header();
  h.control_pid.store(getpid());
  h.control_heartbeat_raw.store(hwclock::read_tsc(), std::memory_order_release);

  // Carry on from what the dataplane is serving (a restart of ours).
  const hwclock::CrossTimestamp x = hwclock::cross_timestamp(CLOCK_REALTIME, 8);
  timescale_->update(x, static_cast<uint64_t>(tsc_hz_));
  proto::ClockModelData served;
  if (h.clock_model.try_load(served) && !(served.flags & proto::kModelProvisional) &&
      (served.flags & proto::kModelValid)) {
    timescale_->adopt(served, x.raw);
    spdlog::info("re-attached to shared memory {} (dataplane pid {}): continuing the served clock", cfg_.shm_name,
                 h.dataplane_pid);
  } else {
    spdlog::info("attached to shared memory {} (dataplane pid {}, {} workers, {} ports)", cfg_.shm_name,
                 h.dataplane_pid, h.n_workers, h.n_ports);
  }
  return true;
}

void ControlPlane::drain_rings() {
  proto::SegmentHeader& h = *seg_.header();
  proto::RxPacket pkt;
  for (unsigned w = 0; w < h.n_workers; w++) {
    while (rte_ring_dequeue_elem(seg_.rx_ring(w), &pkt, sizeof pkt) == 0) {
      // No associations yet: server replies and peer packets have no one to go to.
      if (ignored_packets_++ % 1000 == 0)
        spdlog::debug("ignoring NTP packet from {}:{} (no association)", config::ipv4_to_string(pkt.src_ip),
                      pkt.src_port);
    }
  }
  proto::TxReport rep;
  while (rte_ring_dequeue_elem(seg_.tx_report_ring(), &rep, sizeof rep) == 0) {
  }
}

void ControlPlane::tick_second() {
  proto::SegmentHeader& h = *seg_.header();
  const hwclock::CrossTimestamp x = hwclock::cross_timestamp(CLOCK_REALTIME, 8);
  const proto::ClockModelData m = timescale_->update(x, static_cast<uint64_t>(tsc_hz_));
  h.clock_model.store(m);
  const int64_t now_ns = hwclock::model_to_ns(m, x.raw);

  sys_ = cfg_.ntp.refclock_master ? ctl::local_clock_variables(*cfg_.ntp.refclock_master, now_ns, precision_log2_)
                                  : ctl::unsynchronized_variables();
  const bool was_sync = publications_ > 0 && last_sync_;
  h.server_state.store(ctl::make_server_state(sys_, precision_log2_, now_ns, cfg_.ntp.holdover_s));
  publications_++;
  if (sys_.synchronized != was_sync || publications_ == 1)
    spdlog::info("serving {}: stratum {}, reference {}", sys_.synchronized ? "synchronized" : "unsynchronized",
                 sys_.stratum, sys_.reference);
  last_sync_ = sys_.synchronized;
  snapshot_.set(make_status(x));
}

status::Status ControlPlane::make_status(const hwclock::CrossTimestamp& host) const {
  const proto::SegmentHeader& h = *seg_.header();
  const proto::ClockModelData& m = timescale_->published();
  status::Status s;
  auto& y = s.system;
  y.sysname = cfg_.sysname;
  y.version = NTP_APPLIANCE_VERSION;
  y.synchronized = sys_.synchronized;
  y.leap = sys_.leap;
  y.stratum = sys_.stratum;
  y.refid = sys_.refid;
  y.refid_text = proto::refid_to_string(sys_.refid, sys_.synchronized ? sys_.stratum : 0);
  y.reference = sys_.reference;
  y.nominal_freq_hz = static_cast<double>(m.nominal_hz);
  y.frequency_ppm = static_cast<double>(m.freq_ppb) / 1000.0;
  y.actual_freq_hz = y.nominal_freq_hz * (1.0 - y.frequency_ppm * 1e-6);
  y.precision_log2 = precision_log2_;
  y.clock_offset_ns = sys_.offset_ns;
  y.root_delay_ns = sys_.root_delay_ns;
  y.root_dispersion_ns = sys_.root_dispersion_ns;
  y.peer_dispersion_ns = sys_.peer_dispersion_ns;
  y.reference_time_ns = sys_.reference_time_ns;
  y.sync_state = sys_.synchronized ? "clock synchronized" : "clock not set";
  y.clock_source = cfg_.clock.source == config::ClockSource::kVirtual ? "virtual" : "system";
  y.clock_minus_host_ns = hwclock::model_to_ns(m, host.raw) - host.clock_ns;
  y.holdover_s = cfg_.ntp.holdover_s;
  y.control_uptime_s = monotonic_s() - start_s_;
  const uint64_t now_raw = hwclock::read_tsc();
  y.dataplane_uptime_s = static_cast<double>(now_raw - h.dataplane_start_raw.load()) / tsc_hz_;
  y.dataplane_alive = static_cast<double>(now_raw - h.dataplane_heartbeat_raw.load()) < tsc_hz_ * 3;
  y.dataplane_pid = h.dataplane_pid;
  y.control_pid = getpid();
  y.state_publications = publications_;

  for (uint32_t i = 0; i < h.n_ports; i++) {
    const proto::PortInfo& p = h.ports[i];
    status::PortStatus ps;
    ps.name = p.name;
    ps.device = p.device;
    ps.driver = p.driver;
    char mac[18];
    std::snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", p.mac[0], p.mac[1], p.mac[2], p.mac[3], p.mac[4],
                  p.mac[5]);
    ps.mac = mac;
    ps.address = config::ipv4_to_string(p.ipv4) + "/" + std::to_string(p.prefix_len);
    ps.ntp_server = p.ntp_server;
    ps.timestamping = p.timestamping == proto::kTimestampHardware ? "hardware" : "software";
    ps.link_up = p.link_up;
    ps.link_speed_mbps = p.link_speed_mbps;
    s.ports.push_back(ps);
  }
  for (uint32_t w = 0; w < h.n_workers; w++) {
    const proto::WorkerCounters& c = h.workers[w];
    status::WorkerStatus ws;
    ws.id = w;
    auto rd = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    ws.rx_packets = rd(c.rx_packets);
    ws.tx_packets = rd(c.tx_packets);
    ws.ntp_requests = rd(c.ntp_requests);
    ws.ntp_unsync_replies = rd(c.ntp_unsync_replies);
    ws.ntp_to_control = rd(c.ntp_to_control);
    ws.arp_replies = rd(c.arp_replies);
    ws.arp_learned = rd(c.arp_learned);
    ws.icmp_echo_replies = rd(c.icmp_echo_replies);
    ws.control_tx = rd(c.control_tx);
    ws.polls = rd(c.polls);
    ws.busy_polls = rd(c.busy_polls);
    ws.state_read_retries = rd(c.state_read_retries);
    for (size_t r = 0; r < proto::kDropReasonCount; r++) ws.drops[r] = rd(c.drops[r]);
    s.workers.push_back(ws);
  }
  return s;
}

int ControlPlane::run() {
  tsc_hz_ = hwclock::calibrate_tsc_hz(200);
  timescale_ = std::make_unique<ctl::Timescale>(cfg_.clock, tsc_hz_);
  {
    const hwclock::CrossTimestamp x = hwclock::cross_timestamp(CLOCK_REALTIME, 8);
    precision_log2_ = hwclock::measure_precision_log2(timescale_->update(x, static_cast<uint64_t>(tsc_hz_)), tsc_hz_);
  }
  spdlog::info("TSC {:.6f} MHz, clock precision 2^{}, clock source {}", tsc_hz_ / 1e6, precision_log2_,
               cfg_.clock.source == config::ClockSource::kVirtual ? "virtual" : "system");

  // The stats endpoint.
  const auto colon = cfg_.stats_listen.rfind(':');
  const std::string host = cfg_.stats_listen.substr(0, colon);
  const int port = std::stoi(cfg_.stats_listen.substr(colon + 1));
  httplib::Server http;
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    auto s = snapshot_.get();
    if (!s) {
      res.status = 503;
      res.set_content("not attached to the dataplane yet\n", "text/plain");
      return;
    }
    res.set_content(status::to_prometheus(*s), "text/plain; version=0.0.4; charset=utf-8");
  });
  http.Get("/status", [this](const httplib::Request&, httplib::Response& res) {
    auto s = snapshot_.get();
    if (!s) {
      res.status = 503;
      res.set_content("{\"error\":\"not attached to the dataplane yet\"}\n", "application/json");
      return;
    }
    res.set_content(status::to_json(*s), "application/json");
  });
  if (!http.bind_to_port(host, port)) {
    spdlog::error("{}: stats.listen = \"{}\": cannot listen there (address in use or not ours?)", cfg_.path,
                  cfg_.stats_listen);
    return 1;
  }
  std::thread http_thread([&http] { http.listen_after_bind(); });
  spdlog::info("stats endpoint on http://{}/metrics and /status", cfg_.stats_listen);

  double last_wait_log = -1e9, next_second = 0;
  while (!g_stop.load()) {
    const double now = monotonic_s();
    if (!seg_.attached()) {
      const bool log = now - last_wait_log > 30;
      if (log) last_wait_log = now;
      if (!attach_once(log)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      next_second = now;
    }
    seg_.header()->control_heartbeat_raw.store(hwclock::read_tsc(), std::memory_order_release);
    drain_rings();
    if (now >= next_second) {
      next_second += 1.0;
      if (next_second < now) next_second = now + 1.0;
      if (seg_.replaced()) {
        spdlog::warn("the dataplane's shared memory {} went away (dataplane restarted?); re-attaching",
                     cfg_.shm_name);
        seg_.detach();
        last_wait_log = -1e9;
        continue;
      }
      tick_second();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  spdlog::info("stopping; the dataplane keeps serving the last state for up to {} s", cfg_.ntp.holdover_s);
  http.stop();
  http_thread.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check_only = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if ((a == "--config" || a == "-c") && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a.rfind("--config=", 0) == 0) {
      config_path = a.substr(9);
    } else if (a == "--check") {
      check_only = true;
    } else if (a == "--print-keys") {
      print_keys();
      return 0;
    } else if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "ntp-control: unknown argument '%s'\n", a.c_str());
      usage(stderr);
      return 2;
    }
  }
  if (config_path.empty()) {
    usage(stderr);
    return 2;
  }
  const config::LoadResult r = config::load(config_path);
  if (!r.ok()) {
    for (const auto& e : r.errors) std::fprintf(stderr, "ntp-control: %s\n", e.to_string().c_str());
    std::fprintf(stderr, "ntp-control: %zu error(s) in %s; nothing started\n", r.errors.size(), config_path.c_str());
    return 2;
  }
  if (check_only) {
    std::printf("%s: ok\n", config_path.c_str());
    return 0;
  }
  spdlog::set_level(spdlog::level::from_str(r.config->log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ ntp-control[%P] %v");
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);
  ControlPlane cp(*r.config);
  return cp.run();
}
