// ntp-dataplane: owns the NICs through DPDK, answers NTP clients, ARP and
// ICMP echo in place, and talks to ntp-control through shared memory.
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <span>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <spdlog/spdlog.h>

#include "config/cli.h"
#include "config/config.h"
#include "dataplane/port.h"
#include "dataplane/segment.h"
#include "dataplane/worker.h"
#include "hwclock/clock_model.h"
#include "hwclock/nic_clock.h"
#include "hwclock/tsc.h"
#include "proto/ntp_packet.h"

namespace {

using namespace ntp;

void on_signal(int) { dp::g_stop.store(true); }

std::vector<std::string> eal_arguments(const config::Config& cfg) {
  std::vector<std::string> a{"ntp-dataplane"};
  std::string lcores = std::to_string(cfg.dataplane.main_lcore);
  for (int l : cfg.dataplane.worker_lcores) lcores.append(",").append(std::to_string(l));
  a.insert(a.end(), {"-l", lcores, "--main-lcore", std::to_string(cfg.dataplane.main_lcore)});
  bool has_prefix = false;
  for (const auto& e : cfg.dataplane.eal_args) has_prefix |= e.rfind("--file-prefix", 0) == 0 || e == "--in-memory";
  // Several instances on one host each need their own EAL runtime files.
  if (!has_prefix) a.insert(a.end(), {"--file-prefix", std::string("ntp-").append(cfg.sysname)});
  for (const auto& i : cfg.interfaces) {
    if (dp::is_pci_address(i.device))
      a.insert(a.end(), {"-a", i.device});
    else
      a.insert(a.end(), {"--vdev", i.device});
  }
  a.insert(a.end(), cfg.dataplane.eal_args.begin(), cfg.dataplane.eal_args.end());
  return a;
}

// Before the control plane publishes, answers still need sane timestamps:
// a provisional model from a short TSC calibration against CLOCK_REALTIME,
// and a state that says "unsynchronized".
void publish_provisional(proto::SegmentHeader& seg, double tsc_hz) {
  const hwclock::CrossTimestamp x = hwclock::cross_timestamp(CLOCK_REALTIME, 16);
  proto::ClockModelData m = hwclock::make_model(x.raw, x.clock_ns, 1e9 / tsc_hz, static_cast<uint64_t>(tsc_hz));
  m.flags |= proto::kModelProvisional;
  seg.clock_model.store(m);
  proto::ServerStateData s;
  s.leap = 3;
  s.stratum = proto::kStratumUnsynchronized;
  s.refid = proto::kKissInit;
  s.precision_log2 = hwclock::measure_precision_log2(m, tsc_hz);
  s.published_ns = 0;  // never: the responder answers unsynchronized
  seg.server_state.store(s);
}

// Maps each hardware-timestamping port's NIC clock to the TSC: a round of
// cross-timestamps every 100 ms on the main lcore, the fit published for
// the workers through a seqlock.
class NicClockSampler {
 public:
  NicClockSampler(std::vector<dp::Port>& ports, double tsc_hz) : ports_(ports), tsc_ghz_(tsc_hz * 1e-9) {
    for (size_t i = 0; i < ports.size(); i++) {
      if (!ports[i].hw_timestamps) continue;
      hwclock::NicClockParams np;
      np.counter_bits = ports[i].nic_counter_bits;
      np.nominal_ticks_per_tsc = ports[i].nic_ticks_per_tsc;
      mappers_[i] = std::make_unique<hwclock::NicClockMapper>(np);
    }
  }
  const proto::Seqlock<hwclock::NicToTscMap>* map(size_t i) const { return mappers_[i] ? &maps_[i] : nullptr; }

  void sample(proto::SegmentHeader& seg) {
    for (size_t i = 0; i < ports_.size(); i++) {
      if (!mappers_[i]) continue;
      hwclock::NicCrossTimestamp reads[8];
      size_t n = 0;
      for (auto& r : reads)
        if (dp::read_nic_clock(ports_[i], r.tsc_before, r.nic_raw, r.tsc_after)) n++;
      if (n == 0) continue;
      hwclock::NicClockMapper& m = *mappers_[i];
      m.add_round(std::span<const hwclock::NicCrossTimestamp>(reads, n));
      if (m.valid()) maps_[i].store(m.map());
      proto::PortInfo& pi = seg.ports[i];
      const bool valid = m.valid();
      if (valid != (pi.nic_map_valid != 0))
        spdlog::info("port {}: NIC clock mapping {} ({} rounds, rate {:+.3f} ppm against nominal)", ports_[i].name,
                     valid ? "valid" : "lost", m.rounds(), m.rate_ppm_vs_nominal());
      pi.nic_map_valid = valid;
      // Ticks per second: the nominal rate (measured at port init) as the fit
      // corrects it, over the calibrated TSC.
      const double nic_hz = ports_[i].nic_ticks_per_tsc * (1.0 + m.rate_ppm_vs_nominal() * 1e-6) * tsc_ghz_ * 1e9;
      pi.nic_clock_mhz.store(std::llround(nic_hz * 1e3), std::memory_order_relaxed);
      pi.nic_residual_ps.store(std::llround(m.residual_rms_ticks() / tsc_ghz_ * 1000.0), std::memory_order_relaxed);
      pi.nic_rounds.store(m.rounds(), std::memory_order_relaxed);
      pi.nic_outliers.store(m.outliers(), std::memory_order_relaxed);
      pi.nic_restarts.store(m.restarts(), std::memory_order_relaxed);
    }
  }
 private:
  std::vector<dp::Port>& ports_;
  std::array<std::unique_ptr<hwclock::NicClockMapper>, proto::kMaxPorts> mappers_;
  std::array<proto::Seqlock<hwclock::NicToTscMap>, proto::kMaxPorts> maps_;
  double tsc_ghz_;
};

void fill_port_info(proto::PortInfo& pi, const dp::Port& p) {
  std::snprintf(pi.name, sizeof pi.name, "%s", p.name.c_str());
  std::snprintf(pi.device, sizeof pi.device, "%s", p.device.c_str());
  std::snprintf(pi.driver, sizeof pi.driver, "%s", p.driver.c_str());
  std::memcpy(pi.mac, p.identity.mac, 6);
  pi.ipv4 = p.identity.ipv4;
  pi.prefix_len = p.identity.prefix_len;
  pi.ntp_server = p.identity.ntp_server;
  pi.link_up = p.link_up;
  pi.link_speed_mbps = p.link_speed_mbps;
  pi.dpdk_port_id = p.port_id;
  pi.timestamping = p.hw_timestamps ? proto::kTimestampHardware : proto::kTimestampSoftware;
  pi.nic_emulated = p.emulated != nullptr;
  pi.tx_compensation_ns = p.tx_compensation_ns;
  std::snprintf(pi.timestamp_reason, sizeof pi.timestamp_reason, "%s", p.timestamp_reason.c_str());
}

int run(const config::Config& cfg) {
  if (!hwclock::tsc_is_invariant())
    spdlog::warn("CPUID does not report an invariant TSC: timestamps may drift with power states");

  std::vector<std::string> args = eal_arguments(cfg);
  std::string joined;
  for (const auto& s : args) joined += (joined.empty() ? "" : " ") + s;
  spdlog::info("EAL arguments: {}", joined);
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  if (rte_eal_init(static_cast<int>(args.size()), argv.data()) < 0) {
    spdlog::error("rte_eal_init failed: {}", rte_strerror(rte_errno));
    return 1;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  const unsigned n_workers = static_cast<unsigned>(cfg.dataplane.worker_lcores.size());
  int rc = 1;
  std::vector<dp::Port> ports;
  std::vector<rte_mempool*> pools;
  std::vector<dp::WorkerContext*> workers;
  dp::Segment segment;
  // Outlives the workers (they read its maps until rte_eal_mp_wait_lcore).
  std::unique_ptr<NicClockSampler> sampler;
  std::string err;

  const double tsc_hz = hwclock::calibrate_tsc_hz(100);
  spdlog::info("TSC calibrated at {:.6f} MHz", tsc_hz / 1e6);

  for (unsigned w = 0; w < n_workers; w++) {
    const unsigned lcore = static_cast<unsigned>(cfg.dataplane.worker_lcores[w]);
    const std::string name = "mbuf_w" + std::to_string(w);
    rte_mempool* mp = rte_pktmbuf_pool_create(name.c_str(), static_cast<unsigned>(cfg.dataplane.mbufs), 256, 0,
                                              RTE_MBUF_DEFAULT_BUF_SIZE, static_cast<int>(rte_lcore_to_socket_id(lcore)));
    if (!mp) {
      spdlog::error("cannot create mbuf pool for worker {} ({} mbufs): {} (with --no-huge, raise -m)", w,
                    cfg.dataplane.mbufs, rte_strerror(rte_errno));
      goto out;
    }
    pools.push_back(mp);
  }

  for (const auto& iface : cfg.interfaces) {
    dp::Port p;
    if (!dp::init_port(iface, cfg.dataplane, n_workers, pools, tsc_hz, p, err)) {
      spdlog::error("{}: interface {} ({}): {}", cfg.path, iface.name, iface.device, err);
      goto out;
    }
    spdlog::info("port {} {} ({}, driver {}): {}/{} mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, link {}, "
                 "ntp server {}, receive timestamps: {}, tx compensation {} ns",
                 p.port_id, p.name, p.device, p.driver, proto::ipv4_to_string(p.identity.ipv4),
                 p.identity.prefix_len, p.identity.mac[0], p.identity.mac[1], p.identity.mac[2], p.identity.mac[3],
                 p.identity.mac[4], p.identity.mac[5], p.link_up ? "up" : "down",
                 p.identity.ntp_server ? "on" : "off", p.timestamp_reason, p.tx_compensation_ns);
    ports.push_back(std::move(p));
  }

  if (!segment.create(cfg.shm_name, n_workers, static_cast<unsigned>(cfg.dataplane.ring_size), err)) {
    spdlog::error("{}", err);
    goto out;
  }
  {
    sampler = std::make_unique<NicClockSampler>(ports, tsc_hz);
    proto::SegmentHeader& seg = *segment.header();
    std::snprintf(seg.sysname, sizeof seg.sysname, "%s", cfg.sysname.c_str());
    seg.n_ports = static_cast<uint32_t>(ports.size());
    for (size_t i = 0; i < ports.size(); i++) fill_port_info(seg.ports[i], ports[i]);
    publish_provisional(seg, tsc_hz);
    const uint64_t now = hwclock::read_tsc();
    seg.dataplane_start_raw.store(now);
    seg.dataplane_heartbeat_raw.store(now);
    spdlog::info("shared memory {} ready: {} workers, rings of {}", cfg.shm_name, n_workers, cfg.dataplane.ring_size);

    for (unsigned w = 0; w < n_workers; w++) {
      auto* ctx = new dp::WorkerContext();
      ctx->worker_id = w;
      ctx->burst_size = static_cast<unsigned>(cfg.dataplane.burst_size);
      ctx->idle_sleep_us = static_cast<unsigned>(cfg.dataplane.idle_sleep_us);
      ctx->segment = &seg;
      ctx->counters = &seg.workers[w];
      ctx->to_control = segment.rx_ring(w);
      ctx->pool = pools[w];
      ctx->tsc_hz = static_cast<uint64_t>(tsc_hz);
      if (w == 0) {
        ctx->from_control = segment.tx_ring();
        ctx->tx_reports = segment.tx_report_ring();
      }
      ctx->n_ports = static_cast<unsigned>(ports.size());
      for (size_t i = 0; i < ports.size(); i++) {
        ctx->ports[i].port_id = ports[i].port_id;
        ctx->ports[i].queue_id = static_cast<uint16_t>(w);
        ctx->ports[i].index = static_cast<uint16_t>(i);
        ctx->ports[i].identity = ports[i].identity;
        ctx->ports[i].gateway = cfg.interfaces[i].gateway.value_or(0);
        ctx->ports[i].tx_compensation_ns = ports[i].tx_compensation_ns;
        ctx->ports[i].nic_map = sampler->map(i);
        ctx->ports[i].ts_dynfield_offset = ports[i].ts_dynfield_offset;
        ctx->ports[i].ts_dynflag = ports[i].ts_dynflag;
      }
      workers.push_back(ctx);
      const unsigned lcore = static_cast<unsigned>(cfg.dataplane.worker_lcores[w]);
      rc = rte_eal_remote_launch(dp::worker_main, ctx, lcore);
      if (rc != 0) {
        spdlog::error("cannot launch worker {} on lcore {}: {}", w, lcore, rte_strerror(-rc));
        dp::g_stop.store(true);
        rc = 1;
        goto stop;
      }
      spdlog::info("worker {} running on lcore {}", w, lcore);
    }

    // Housekeeping on the main lcore: heartbeat, link state, and noticing
    // the control plane come and go. Never on the packet path.
    bool control_seen = false;
    const uint64_t lost_after = static_cast<uint64_t>(tsc_hz * 3);
    uint64_t last_link_check = 0, last_nic_sample = 0;
    while (!dp::g_stop.load()) {
      const uint64_t now_raw = hwclock::read_tsc();
      seg.dataplane_heartbeat_raw.store(now_raw, std::memory_order_release);
      const uint64_t cp = seg.control_heartbeat_raw.load(std::memory_order_acquire);
      const bool alive = cp != 0 && now_raw - cp < lost_after;
      if (alive != control_seen) {
        if (alive)
          spdlog::info("control plane attached (pid {})", seg.control_pid.load());
        else
          spdlog::warn("control plane heartbeat lost: serving the last published state, root dispersion "
                       "growing; unsynchronized after the holdover ({} s)",
                       cfg.ntp.holdover_s);
        control_seen = alive;
      }
      if (now_raw - last_nic_sample > static_cast<uint64_t>(tsc_hz / 10)) {
        last_nic_sample = now_raw;
        sampler->sample(seg);
      }
      if (now_raw - last_link_check > static_cast<uint64_t>(tsc_hz)) {
        last_link_check = now_raw;
        for (size_t i = 0; i < ports.size(); i++) {
          const bool was_up = ports[i].link_up;
          dp::refresh_link(ports[i]);
          seg.ports[i].link_up = ports[i].link_up;
          if (was_up != ports[i].link_up)
            spdlog::warn("port {} {}: link {}", ports[i].port_id, ports[i].name, ports[i].link_up ? "up" : "down");
        }
      }
      timespec ts{0, 10 * 1000 * 1000};
      nanosleep(&ts, nullptr);
    }
    spdlog::info("stopping");
    rc = 0;
  }
stop:
  rte_eal_mp_wait_lcore();
out:
  for (auto& p : ports) dp::stop_port(p);
  segment.destroy();
  for (auto* w : workers) delete w;
  for (auto* mp : pools) rte_mempool_free(mp);
  {
    // EAL leaves its runtime directory (/var/run/dpdk/<file-prefix>: config
    // and memory maps, for secondary processes, which we do not have) behind
    // on exit; remove it so that every start and stop leaves nothing.
    const std::string runtime_dir = rte_eal_get_runtime_dir();
    rte_eal_cleanup();
    std::error_code ec;
    std::filesystem::remove_all(runtime_dir, ec);
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  const std::optional<config::Config> cfg =
      config::load_from_command_line({.program = "ntp-dataplane", .print_keys = false}, argc, argv, exit_code);
  if (!cfg) return exit_code;
  spdlog::set_level(spdlog::level::from_str(cfg->log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ ntp-dataplane[%P] %v");
  return run(*cfg);
}
