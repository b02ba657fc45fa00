// ntp-control: the control plane. Validates the configuration, attaches to
// the dataplane's shared memory, keeps the served timescale and the server
// state current, and serves the stats endpoint.
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "config/cli.h"
#include "config/config.h"
#include "control/clock_applier.h"
#include "control/ntp/engine.h"
#include "control/ntp/system_state.h"
#include "control/phc_source.h"
#include "control/segment_client.h"
#include "control/stats_server.h"
#include "control/status/snapshot.h"
#include "control/timescale.h"
#include "hwclock/clock_model.h"
#include "hwclock/drift_file.h"
#include "hwclock/tsc.h"
#include "proto/inet.h"

#ifndef NTP_APPLIANCE_VERSION
#define NTP_APPLIANCE_VERSION "0.0.0"
#endif

namespace {

using namespace ntp;

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true); }

double monotonic_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

class ControlPlane {
 public:
  explicit ControlPlane(const config::Config& cfg) : cfg_(cfg) {}

  int run();

 private:
  bool attach_once(bool log_waiting);
  void make_engine(int64_t now_ns, std::optional<double> initial_freq_ppb);
  void poll_rings(int64_t now_ns, ctl::EngineOutput& out);
  void carry_out(ctl::EngineOutput& out);
  void publish_model(const proto::ClockModelData& m);
  void tick_second();
  void save_drift(bool force);
  bool open_clocks();
  void read_source();
  void steer_clocks(bool synchronized);
  int64_t now_ns() const { return hwclock::model_to_ns(timescale_->published(), hwclock::read_tsc()); }
  status::Status make_status(const hwclock::CrossTimestamp& host) const;

  const config::Config& cfg_;
  double tsc_hz_ = 0;
  int8_t precision_log2_ = -20;
  std::unique_ptr<ctl::Timescale> timescale_;
  std::unique_ptr<ctl::Engine> engine_;
  std::unique_ptr<ctl::PhcSource> source_phc_;  // clock.source = "phc"
  // The source can be served: not a PHC, or a PHC read within the holdover.
  bool source_fresh() const { return !source_phc_ || source_phc_->fresh(monotonic_s(), cfg_.ntp.holdover_s); }
  // The one object that carries out the discipline's orders on every clock.
  std::unique_ptr<ctl::ClockApplier> applier_;
  hwclock::DriftFile drift_{cfg_.clock.drift_file};
  std::optional<double> drift_ppb_;  // what it said at start
  ctl::SegmentClient seg_;
  uint64_t publications_ = 0;
  uint64_t tx_ring_full_ = 0;
  bool last_sync_ = false;
  double start_s_ = monotonic_s();
  ctl::StatsServer stats_;
};

void ControlPlane::make_engine(int64_t now_ns, std::optional<double> initial_freq_ppb) {
  ctl::EngineConfig e = ctl::engine_config(cfg_, precision_log2_);
  e.servo.initial_frequency_ppb = initial_freq_ppb;
  std::random_device rd;
  engine_ = std::make_unique<ctl::Engine>(e, (uint64_t{rd()} << 32) | rd(), now_ns);
  spdlog::info("{} server(s), {} peer(s){}", cfg_.servers.size(), cfg_.peers.size(),
               cfg_.ntp.refclock_master
                   ? fmt::format(", local clock at stratum {}", *cfg_.ntp.refclock_master)
                   : std::string());
}

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

  read_source();
  const hwclock::CrossTimestamp x = hwclock::cross_timestamp(CLOCK_REALTIME, 8);
  timescale_->update(x, static_cast<uint64_t>(tsc_hz_));
  proto::ClockModelData served;
  std::optional<double> initial_freq = drift_ppb_;
  if (!engine_ && h.clock_model.try_load(served) && !(served.flags & proto::kModelProvisional) &&
      (served.flags & proto::kModelValid)) {
    // Our restart: carry on the clock the dataplane is serving, at the
    // frequency correction it was running with.
    timescale_->adopt(served, x.raw);
    initial_freq = timescale_->correction_ppb();
    spdlog::info("re-attached to shared memory {} (dataplane pid {}): continuing the served clock at {:+.3f} ppm",
                 cfg_.shm_name, h.dataplane_pid, timescale_->correction_ppb() / 1000.0);
  } else {
    if (!engine_ && drift_ppb_) timescale_->adjust(0, *drift_ppb_, 0, 0, x.raw);
    spdlog::info("attached to shared memory {} (dataplane pid {}, {} workers, {} ports)", cfg_.shm_name,
                 h.dataplane_pid, h.n_workers, h.n_ports);
  }
  publish_model(timescale_->published());
  if (!engine_) make_engine(hwclock::model_to_ns(timescale_->published(), x.raw), initial_freq);
  return true;
}

void ControlPlane::publish_model(const proto::ClockModelData& m) {
  if (seg_.attached()) seg_.header()->clock_model.store(m);
}

void ControlPlane::poll_rings(int64_t now, ctl::EngineOutput& out) {
  // Reports first: a reply to our packet can only exist after it left.
  proto::TxReport rep;
  while (seg_.next_tx_report(rep)) engine_->on_tx_report(rep, now, out);
  proto::RxPacket pkt;
  for (unsigned w = 0; w < seg_.header()->n_workers; w++)
    while (seg_.next_rx(w, pkt)) engine_->on_packet(pkt, now, out);
  if (now >= engine_->next_timer_ns()) engine_->on_timer(now, out);
}

void ControlPlane::carry_out(ctl::EngineOutput& out) {
  for (const ctl::Event& e : out.events) spdlog::info("{}", status::format_event(e));
  auto take = [this](const ctl::ClockApplier::Result& r) {
    if (r.publish) publish_model(*r.publish);
    for (const std::string& e : r.errors) spdlog::error("{}", e);
  };
  if (out.adjust) {
    take(applier_->apply(*out.adjust, hwclock::read_tsc()));
    save_drift(false);
  }
  take(applier_->poll(hwclock::read_tsc()));  // a slew that is in ends now, not at the next order
  for (const ctl::OutPacket& o : out.packets)
    if (!seg_.send(o) && tx_ring_full_++ % 100 == 0)
      spdlog::warn("the dataplane's tx ring is full: dropping our packet to {}", proto::ipv4_to_string(o.dst_ip));
  out = {};
}

void ControlPlane::save_drift(bool force) {
  if (!engine_ || engine_->servo_state() == hwclock::ServoState::kNotSet) return;
  if (std::string err; !drift_.save(engine_->frequency_ppb(), monotonic_s(), force, err))
    spdlog::warn("clock.drift_file: {}", err);
}

void ControlPlane::tick_second() {
  proto::SegmentHeader& h = *seg_.header();
  read_source();
  const hwclock::CrossTimestamp x = hwclock::cross_timestamp(CLOCK_REALTIME, 8);
  const proto::ClockModelData m = timescale_->update(x, static_cast<uint64_t>(tsc_hz_));
  h.clock_model.store(m);
  const int64_t now = hwclock::model_to_ns(m, x.raw);
  // A PHC source that cannot be read (longer than the holdover) is not
  // served as synchronized time, whatever the associations say.
  const ctl::SystemVariables sys = source_fresh() ? engine_->system_at(now) : ctl::unsynchronized_variables();
  h.server_state.store(ctl::make_server_state(sys, precision_log2_, now, cfg_.ntp.holdover_s));
  publications_++;
  if (sys.synchronized != last_sync_ || publications_ == 1)
    spdlog::info("serving {}: stratum {}, reference {}", sys.synchronized ? "synchronized" : "unsynchronized",
                 sys.stratum, sys.reference);
  last_sync_ = sys.synchronized;
  steer_clocks(sys.synchronized);
  stats_.publish(make_status(x));
}

bool ControlPlane::open_clocks() {
  std::string err;
  std::vector<std::string> log;
  if (cfg_.clock.source == config::ClockSource::kPhc) {
    source_phc_ = ctl::PhcSource::open(cfg_.clock, err);
    if (!source_phc_) {
      spdlog::error("{}: clock.phc: {}; nothing started", cfg_.path, err);
      return false;
    }
    spdlog::info("clock source: PHC {} (PHC - UTC = {} s)", cfg_.clock.phc, cfg_.clock.phc_utc_offset_s);
  }
  applier_ = ctl::ClockApplier::open(cfg_.clock, *timescale_, tsc_hz_, log, err);
  for (const std::string& line : log) spdlog::info("{}", line);
  if (!applier_) spdlog::error("{}: {}; nothing started", cfg_.path, err);
  return applier_ != nullptr;
}

void ControlPlane::read_source() {
  if (!source_phc_) return;
  std::vector<std::string> log;
  source_phc_->read(*timescale_, static_cast<uint64_t>(tsc_hz_), monotonic_s(), log);
  for (const std::string& line : log) spdlog::info("{}", line);
}

void ControlPlane::steer_clocks(bool synchronized) {
  for (const std::string& line : applier_->tick(synchronized).log) spdlog::info("{}", line);
}

status::Status ControlPlane::make_status(const hwclock::CrossTimestamp& host) const {
  status::ControlFacts f;
  f.sysname = cfg_.sysname;
  f.version = NTP_APPLIANCE_VERSION;
  f.clock_source = config::to_string(cfg_.clock.source);
  f.model = timescale_->published();
  f.precision_log2 = precision_log2_;
  f.served_ns = hwclock::model_to_ns(f.model, host.raw);
  f.host_ns = host.clock_ns;
  f.now_raw = hwclock::read_tsc();
  f.timebase_hz = tsc_hz_;
  f.holdover_s = cfg_.ntp.holdover_s;
  f.control_uptime_s = monotonic_s() - start_s_;
  f.control_pid = getpid();
  f.state_publications = publications_;
  for (const auto& c : applier_->steered()) f.steered_clocks.push_back(c->status());
  return status::make_status(*seg_.header(), engine_->state(f.served_ns), f);
}

int ControlPlane::run() {
  tsc_hz_ = hwclock::calibrate_tsc_hz(200);
  timescale_ = std::make_unique<ctl::Timescale>(cfg_.clock, tsc_hz_);
  if (!open_clocks()) return 1;
  read_source();
  {
    const hwclock::CrossTimestamp x = hwclock::cross_timestamp(CLOCK_REALTIME, 8);
    precision_log2_ = hwclock::measure_precision_log2(timescale_->update(x, static_cast<uint64_t>(tsc_hz_)), tsc_hz_);
  }
  spdlog::info("TSC {:.6f} MHz, clock precision 2^{}, clock source {}", tsc_hz_ / 1e6, precision_log2_,
               config::to_string(cfg_.clock.source));
  if (std::string log; drift_.enabled()) {
    drift_ppb_ = drift_.load(log);
    spdlog::info("{}", log);
  }

  const proto::HostPort listen = proto::split_host_port(cfg_.stats_listen).value();  // validated by config
  if (std::string err; !stats_.start(listen.host, listen.port, err)) {
    spdlog::error("{}: stats.listen = \"{}\": {}", cfg_.path, cfg_.stats_listen, err);
    return 1;
  }
  spdlog::info("stats endpoint on http://{}/metrics and /status", cfg_.stats_listen);

  double last_wait_log = -1e9, next_second = 0;
  ctl::EngineOutput out;
  while (!g_stop.load()) {
    const double now_s = monotonic_s();
    if (!seg_.attached()) {
      const bool log = now_s - last_wait_log > 30;
      if (log) last_wait_log = now_s;
      if (!attach_once(log)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      next_second = now_s;
    }
    seg_.header()->control_heartbeat_raw.store(hwclock::read_tsc(), std::memory_order_release);
    poll_rings(now_ns(), out);
    carry_out(out);
    if (now_s >= next_second) {
      next_second += 1.0;
      if (next_second < now_s) next_second = now_s + 1.0;
      if (seg_.replaced()) {
        spdlog::warn("the dataplane's shared memory {} went away (dataplane restarted?); re-attaching",
                     cfg_.shm_name);
        seg_.detach();
        last_wait_log = -1e9;
        continue;
      }
      tick_second();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  save_drift(true);
  spdlog::info("stopping; the dataplane keeps serving the last state for up to {} s", cfg_.ntp.holdover_s);
  stats_.stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  const std::optional<config::Config> cfg =
      config::load_from_command_line({.program = "ntp-control", .print_keys = true}, argc, argv, exit_code);
  if (!cfg) return exit_code;
  spdlog::set_level(spdlog::level::from_str(cfg->log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ ntp-control[%P] %v");
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);
  ControlPlane cp(*cfg);
  return cp.run();
}
