// ntp-dataplane: owns the NICs through DPDK, answers NTP clients, ARP and
// ICMP echo in place, and talks to ntp-control through shared memory. This
// file is the lifecycle: EAL, pools, ports, segment, workers, housekeeping
// on the main lcore, teardown. SIGHUP re-reads the file and hands the
// workers a new policy (access, rate limits, kod, forwarding sets).
#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <spdlog/spdlog.h>

#include "config/cli.h"
#include "config/config.h"
#include "config/instance_lock.h"
#include "crypto/nts_keys.h"
#include "dataplane/nic_sampler.h"
#include "dataplane/port.h"
#include "dataplane/segment.h"
#include "dataplane/worker.h"
#include "dataplane/worker_setup.h"
#include "hwclock/tsc.h"
#include "proto/inet.h"

namespace {

using namespace ntp;

void on_signal(int) { dp::g_stop.store(true); }

// SIGHUP: set here (a lock-free atomic: async-signal-safe), acted on by the
// main lcore's housekeeping loop.
std::atomic<bool> g_reload{false};
static_assert(std::atomic<bool>::is_always_lock_free);
void on_hup(int) { g_reload.store(true); }

void install_signal(int sig, void (*handler)(int)) {
  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sa.sa_handler = handler;
  sigaction(sig, &sa, nullptr);
}

// The file again: refused whole on any error, else the workers get the
// live part of it; what needs a restart is named. `running` is what the
// workers' policy was made from.
void reload(config::Config& running, std::vector<std::unique_ptr<dp::WorkerContext>>& workers,
            const std::shared_ptr<const crypto::CookieKeyRing>& control_ring) {
  spdlog::info("SIGHUP: reloading {}", running.path);
  config::ReloadResult r = config::reload(running, config::Daemon::kDataplane);
  if (!r.plan) {
    for (const std::string& e : r.errors) spdlog::error("{}", e);
    spdlog::error("reload of {} refused ({} error(s)): keeping the running configuration", running.path,
                  r.errors.size());
    return;
  }
  for (const std::string& line : r.plan->needs_restart) spdlog::warn("{}", line);
  // The keys file is read again at every reload, as ntp-control does: its
  // keys may change while the TOML stays (the MACs we seal for the control
  // plane must be of the keys it verifies with). So is the NTS cookie keys
  // file: a reload is how a rotation reaches the workers.
  const bool keys_file = !r.plan->applied.auth.keys_file.empty();
  const bool cookie_keys_file = !r.plan->applied.nts.cookie_keys_file.empty();
  if (r.plan->changed.empty() && !keys_file && !cookie_keys_file) {
    spdlog::info("reload of {}: nothing to change live", running.path);
    return;
  }
  // plan_reload kept the running ratelimit.clients (the tables' size), so
  // apply_policy has nothing to refuse for it.
  if (std::string err; !dp::apply_policy(workers, r.plan->applied, err, control_ring)) {
    spdlog::error("reload of {}: {}; keeping the running policy", running.path, err);
    return;
  }
  running = std::move(r.plan->applied);
  spdlog::set_level(spdlog::level::from_str(running.log_level));
  std::string what;
  for (const std::string& c : r.plan->changed) what += (what.empty() ? "" : ", ") + c;
  if (what.empty())
    what = keys_file && cookie_keys_file ? "auth.keys_file and nts.cookie_keys_file read again"
           : keys_file                   ? "auth.keys_file read again"
                                         : "nts.cookie_keys_file read again";
  spdlog::info("reloaded {}: {} ({} worker(s) took the new policy)", running.path, what, workers.size());
}

std::vector<std::string> eal_arguments(const config::Config& cfg) {
  std::vector<std::string> a{"ntp-dataplane"};
  const config::Dataplane& d = cfg.dataplane;
  std::string lcores = std::to_string(d.main_lcore);
  if (d.worker_cpus.empty()) {
    for (int l : d.worker_lcores) lcores.append(",").append(std::to_string(l));
    a.insert(a.end(), {"-l", lcores});
  } else {
    // lcore@cpu: the main lcore on its own CPU number, each worker on its CPU.
    lcores.append("@").append(std::to_string(d.main_lcore));
    for (size_t i = 0; i < d.worker_lcores.size(); i++)
      lcores.append(",").append(std::to_string(d.worker_lcores[i])).append("@").append(std::to_string(d.worker_cpus[i]));
    a.insert(a.end(), {"--lcores", lcores});
  }
  a.insert(a.end(), {"--main-lcore", std::to_string(d.main_lcore)});
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

// rte_eal_init with its stdout (EAL's log and, on an argument it refuses,
// its ~100 lines of usage) caught in a memory file. The host checks refuse
// what we can foresee before EAL runs; for the rest (an eal_args entry EAL
// does not take) the operator gets EAL's own "EAL: ..." lines, not the usage
// of a program they never invoke directly.
int eal_init_quiet_usage(std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  const int saved = dup(STDOUT_FILENO);
  const int mem = memfd_create("ntp-dataplane-eal", MFD_CLOEXEC);
  if (saved < 0 || mem < 0 || dup2(mem, STDOUT_FILENO) < 0) {
    if (saved >= 0) close(saved);
    if (mem >= 0) close(mem);
    return rte_eal_init(static_cast<int>(args.size()), argv.data());
  }
  const int rc = rte_eal_init(static_cast<int>(args.size()), argv.data());
  std::fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  std::string text;
  char buf[4096];
  for (off_t at = 0;;) {
    const ssize_t n = pread(mem, buf, sizeof buf, at);
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
    at += n;
  }
  close(mem);
  // Success: replay all of it. Failure: EAL's log lines only; the usage
  // text is the lines that do not start with "EAL:".
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view line(text.data() + start, end - start);
    if (rc >= 0 || line.starts_with("EAL:")) std::fprintf(stdout, "%.*s\n", static_cast<int>(line.size()), line.data());
    start = end + 1;
  }
  std::fflush(stdout);
  return rc;
}

void log_port(const dp::Port& p) {
  spdlog::info("port {} {} ({}, driver {}): {}/{}{} mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, link {}, "
               "ntp server {}, receive timestamps: {}, tx compensation {} ns",
               p.port_id, p.name, p.device, p.driver, proto::ipv4_to_string(p.identity.ipv4), p.identity.prefix_len,
               p.identity.vlan ? " VLAN " + std::to_string(p.identity.vlan) : std::string(),
               p.identity.mac[0], p.identity.mac[1], p.identity.mac[2], p.identity.mac[3], p.identity.mac[4],
               p.identity.mac[5], p.link_up ? "up" : "down", p.identity.ntp_server ? "on" : "off",
               p.timestamp_reason, p.tx_compensation_ns);
}

// ntp-control's cookie keys (it publishes them when it rotates them,
// nts.cookie_rotate_s > 0), when new: to every worker, then acknowledged.
// A torn read is retried at the next round; keys that do not make a ring
// (never from our control plane) are refused once, loudly.
void take_cookie_keys(proto::SegmentHeader& seg, std::vector<std::unique_ptr<dp::WorkerContext>>& workers,
                      uint64_t& seen_raw, std::shared_ptr<const crypto::CookieKeyRing>& control_ring) {
  proto::CookieKeysData d;
  if (!seg.cookie_keys.try_load(d) || d.published_raw == 0 || d.published_raw == seen_raw) {
    crypto::wipe_secret(&d, sizeof d);
    return;
  }
  seen_raw = d.published_raw;
  auto ring = std::make_shared<crypto::CookieKeyRing>();
  std::string err;
  const bool ok = crypto::cookie_ring_from_abi(d, *ring, &err);
  crypto::wipe_secret(&d, sizeof d);
  if (!ok) {
    spdlog::error("NTS cookie keys from ntp-control refused: {}; keeping the workers' keys", err);
    return;
  }
  const uint32_t sealing = ring->sealing()->id;
  const uint32_t count = ring->count;
  control_ring = ring;
  dp::apply_nts_ring(workers, std::move(ring));  // returns once the workers use it
  spdlog::info("NTS cookie keys from ntp-control: {} key(s), sealing with key {}", count, sealing);
  seg.cookie_keys_taken_raw.store(seen_raw, std::memory_order_release);
}

// The main lcore until a signal: heartbeat, noticing the control plane
// come and go, NIC clock rounds and link state. Never on the packet path.
void housekeeping(const config::Config& cfg, proto::SegmentHeader& seg, std::vector<dp::Port>& ports,
                  dp::NicClockSampler& sampler, double tsc_hz,
                  std::vector<std::unique_ptr<dp::WorkerContext>>& workers) {
  config::Config running = cfg;  // the workers' policy came from this
  bool control_seen = false;
  // ntp-control's NTS cookie keys (SegmentHeader::cookie_keys): once it has
  // published, they are the workers' (a reload keeps them over the file's,
  // which it writes first anyway). With rotation off (keys managed outside)
  // each daemon reads the file at its own reload, and this stays unused.
  uint64_t cookie_keys_seen_raw = 0;
  std::shared_ptr<const crypto::CookieKeyRing> control_ring;
  const uint64_t lost_after = static_cast<uint64_t>(tsc_hz * 3);
  const uint64_t sample_every = static_cast<uint64_t>(tsc_hz * dp::NicClockSampler::kPeriodS);
  uint64_t last_link_check = 0, last_nic_sample = 0;
  while (!dp::g_stop.load()) {
    if (g_reload.exchange(false))
      reload(running, workers, running.nts.cookie_rotate_s > 0 ? control_ring : nullptr);
    // Every round (10 ms): the NTS-KE server waits for us to take new keys.
    if (running.nts.cookie_rotate_s > 0) take_cookie_keys(seg, workers, cookie_keys_seen_raw, control_ring);
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
    if (now_raw - last_nic_sample > sample_every) {
      last_nic_sample = now_raw;
      sampler.sample(seg);
    }
    if (now_raw - last_link_check > static_cast<uint64_t>(tsc_hz)) {
      last_link_check = now_raw;
      for (size_t i = 0; i < ports.size(); i++) {
        const bool was_up = ports[i].link_up;
        if (ports[i].shares >= 0) {
          ports[i].link_up = ports[static_cast<size_t>(ports[i].shares)].link_up;
          ports[i].link_speed_mbps = ports[static_cast<size_t>(ports[i].shares)].link_speed_mbps;
        } else {
          dp::refresh_link(ports[i]);
        }
        seg.ports[i].link_up = ports[i].link_up;
        if (was_up != ports[i].link_up)
          spdlog::warn("port {} {}: link {}", ports[i].port_id, ports[i].name, ports[i].link_up ? "up" : "down");
      }
    }
    // What the workers saw of others claiming our addresses (RFC 5227):
    // they cannot log without a syscall, so the main lcore does, rate-limited.
    char arp_line[160];
    for (const auto& w : workers)
      while (dp::arp_conflict_log_line(*w, now_raw, arp_line, sizeof arp_line))
        spdlog::warn("worker {}: {}", w->worker_id, arp_line);
    timespec ts{0, 10 * 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
}

int run(const config::Config& cfg) {
  if (!hwclock::tsc_is_invariant())
    spdlog::warn("CPUID does not report an invariant TSC: timestamps may drift with power states");

  std::vector<std::string> args = eal_arguments(cfg);
  std::string joined;
  for (const auto& s : args) joined += (joined.empty() ? "" : " ") + s;
  spdlog::info("EAL arguments: {}", joined);
  if (eal_init_quiet_usage(args) < 0) {
    spdlog::error("rte_eal_init failed: {} (EAL arguments above; dataplane.eal_args in {})", rte_strerror(rte_errno),
                  cfg.path);
    return 1;
  }
  install_signal(SIGINT, on_signal);
  install_signal(SIGTERM, on_signal);

  const unsigned n_workers = static_cast<unsigned>(cfg.dataplane.worker_lcores.size());
  int rc = 1;
  std::vector<dp::Port> ports;
  std::vector<rte_mempool*> pools;
  std::vector<std::unique_ptr<dp::WorkerContext>> workers;
  dp::Segment segment;
  // Outlives the workers (they read its maps until rte_eal_mp_wait_lcore).
  std::unique_ptr<dp::NicClockSampler> sampler;
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
    // Several interfaces (VLANs) on one device are one DPDK port: the
    // first configures it, the others share it.
    const auto owner = std::find_if(ports.begin(), ports.end(),
                                    [&](const dp::Port& o) { return o.shares < 0 && o.device == iface.device; });
    if (owner != ports.end()) {
      dp::Port p = dp::share_port(*owner, static_cast<int>(owner - ports.begin()), iface);
      log_port(p);
      ports.push_back(std::move(p));
      continue;
    }
    dp::Port p;
    if (!dp::init_port(iface, cfg.dataplane, n_workers, pools, tsc_hz, p, err)) {
      spdlog::error("{}: interface {} ({}): {}", cfg.path, iface.name, iface.device, err);
      goto out;
    }
    if (iface.exception_path) {
      p.identity.exception_path = true;
      const bool opened = dp::open_exception_path(iface, ports.size(), p, n_workers, pools[0], p.exception, err);
      if (!opened) {
        spdlog::error("{}: interface {} ({}): {}", cfg.path, iface.name, iface.device, err);
        dp::stop_port(p);
        goto out;
      }
      spdlog::info("interface {}: exception path {} (kernel interface {}, {}/{}): frames for the address that the "
                   "dataplane does not answer go to the kernel, at most {} a second per worker",
                   iface.name, p.exception.vdev, p.exception.kernel_name, proto::ipv4_to_string(iface.ipv4),
                   iface.prefix_len, iface.exception_max_pps);
    }
    log_port(p);
    ports.push_back(std::move(p));
  }

  if (!segment.create(cfg.shm_name, n_workers, static_cast<unsigned>(cfg.dataplane.ring_size), err,
                      cfg.control_user)) {
    spdlog::error("{}", err);
    goto out;
  }
  {
    sampler = std::make_unique<dp::NicClockSampler>(ports, tsc_hz);
    proto::SegmentHeader& seg = *segment.header();
    dp::publish_ports(seg, cfg.sysname, ports);
    dp::publish_provisional(seg, tsc_hz);
    const uint64_t now = hwclock::read_tsc();
    seg.dataplane_start_raw.store(now);
    seg.dataplane_heartbeat_raw.store(now);
    spdlog::info("shared memory {} ready: {} workers, rings of {}", cfg.shm_name, n_workers, cfg.dataplane.ring_size);

    for (unsigned w = 0; w < n_workers; w++) {
      // Its rate-limit table (ratelimit.clients entries) and getrandom key:
      // an exception here is a refused start with its reason, not a terminate.
      try {
        workers.push_back(dp::make_worker_context(w, cfg, ports, segment, pools[w], tsc_hz, *sampler));
      } catch (const std::exception& e) {
        spdlog::error("worker {}: {} (ratelimit.clients = {} in {})", w, e.what(), cfg.ratelimit.clients, cfg.path);
        dp::g_stop.store(true);
        rc = 1;
        goto stop;
      }
      const unsigned lcore = static_cast<unsigned>(cfg.dataplane.worker_lcores[w]);
      rc = rte_eal_remote_launch(dp::worker_main, workers.back().get(), lcore);
      if (rc != 0) {
        spdlog::error("cannot launch worker {} on lcore {}: {}", w, lcore, rte_strerror(-rc));
        dp::g_stop.store(true);
        rc = 1;
        goto stop;
      }
      spdlog::info("worker {} running on lcore {}", w, lcore);
    }

    housekeeping(cfg, seg, ports, *sampler, tsc_hz, workers);
    spdlog::info("stopping");
    rc = 0;
  }
stop:
  rte_eal_mp_wait_lcore();
out:
  for (auto& p : ports) dp::stop_port(p);
  segment.destroy();
  workers.clear();
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
      config::load_from_command_line({.program = "ntp-dataplane", .print_keys = false, .host_checks = config::kDataplaneHostChecks}, argc, argv, exit_code);
  if (!cfg) return exit_code;
  spdlog::set_level(spdlog::level::from_str(cfg->log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ ntp-dataplane[%P] %v");
  // A HUP before the housekeeping loop runs is taken there, not fatal.
  install_signal(SIGHUP, on_hup);
  // One dataplane per segment: before EAL, so a second one never touches
  // the NICs or hugepages; held until exit. A lock directory made here is
  // shared (1770) with channel.control_user's group, so that ntp-control
  // can make its own lock beside ours.
  config::set_lock_dir(cfg->lock_dir, cfg->control_user);
  config::InstanceLock instance_lock;
  if (std::string err; !instance_lock.acquire(cfg->shm_name, "dataplane", err)) {
    spdlog::error("{}", err);
    return 1;
  }
  // A file another user planted at the lock's name was replaced: say whose.
  if (!instance_lock.notice().empty()) spdlog::warn("{}", instance_lock.notice());
  return run(*cfg);
}
