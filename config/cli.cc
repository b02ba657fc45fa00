#include "config/cli.h"

#include <memory>
#include <string_view>
#include <utility>

namespace ntp::config {

CliArgs parse_cli(const CliSpec& spec, std::span<const char* const> args) {
  CliArgs out;
  bool check = false;
  for (size_t i = 0; i < args.size(); i++) {
    const std::string_view a = args[i];
    if ((a == "--config" || a == "-c") && i + 1 < args.size()) {
      out.config_path = args[++i];
    } else if (a.starts_with("--config=")) {
      out.config_path = a.substr(9);
    } else if (a == "--check") {
      check = true;
    } else if (spec.print_keys && a == "--print-keys") {
      out.action = CliArgs::Action::kPrintKeys;
      return out;
    } else if (a == "--help" || a == "-h") {
      out.action = CliArgs::Action::kHelp;
      return out;
    } else {
      out.action = CliArgs::Action::kUsageError;
      out.error = "unknown argument '" + std::string(a) + "'";
      return out;
    }
  }
  if (out.config_path.empty())
    out.action = CliArgs::Action::kUsageError;
  else
    out.action = check ? CliArgs::Action::kCheck : CliArgs::Action::kRun;
  return out;
}

void print_usage(const CliSpec& spec, FILE* out) {
  std::fprintf(out,
               "usage: %s --config FILE [--check]%s\n"
               "  --config FILE  the instance's TOML configuration\n"
               "  --check        validate the configuration and exit\n",
               spec.program, spec.print_keys ? " | --print-keys" : "");
  if (spec.print_keys)
    std::fprintf(out, "  --print-keys   print every configuration key (type, default, range, meaning)\n");
}

void print_keys(FILE* out) {
  std::fprintf(out, "| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n");
  for (const auto& k : key_docs()) {
    const std::string def = k.required ? "required" : (k.def.empty() ? "-" : k.def);
    std::fprintf(out, "| `%s` | %s | %s | %s | %s |\n", k.key.c_str(), k.type.c_str(), def.c_str(), k.range.c_str(),
                 k.help.c_str());
  }
}

std::optional<Config> load_from_command_line(const CliSpec& spec, int argc, char** argv, int& exit_code,
                                             const HostFacts* host) {
  const std::span<const char* const> args(argv + (argc > 0 ? 1 : 0), argc > 1 ? static_cast<size_t>(argc - 1) : 0);
  const CliArgs cli = parse_cli(spec, args);
  exit_code = 0;
  switch (cli.action) {
    case CliArgs::Action::kHelp:
      print_usage(spec, stdout);
      return std::nullopt;
    case CliArgs::Action::kPrintKeys:
      print_keys(stdout);
      return std::nullopt;
    case CliArgs::Action::kUsageError:
      if (!cli.error.empty()) std::fprintf(stderr, "%s: %s\n", spec.program, cli.error.c_str());
      print_usage(spec, stderr);
      exit_code = 2;
      return std::nullopt;
    case CliArgs::Action::kCheck:
    case CliArgs::Action::kRun:
      break;
  }
  std::optional<Config> cfg = load_or_report(spec.program, cli.config_path);
  if (!cfg) {
    exit_code = 2;
    return std::nullopt;
  }
  if (spec.host_checks != kCheckNone) {
    std::unique_ptr<HostFacts> real;
    if (!host) host = (real = real_host_facts()).get();
    const KeyLocations where = KeyLocations::from_file(cli.config_path);
    const bool starting = cli.action == CliArgs::Action::kRun;
    HostCheckResult hc;
    if (starting && spec.stats_listen_retried && (spec.host_checks & kCheckStatsListen)) {
      // The stats port as --check judges it (in use: a warning), the rest
      // as a start does.
      hc = check_host(*cfg, where, spec.host_checks & ~HostChecks{kCheckStatsListen}, *host, true);
      HostCheckResult stats = check_host(*cfg, where, kCheckStatsListen, *host, false);
      hc.errors.insert(hc.errors.end(), stats.errors.begin(), stats.errors.end());
      hc.warnings.insert(hc.warnings.end(), stats.warnings.begin(), stats.warnings.end());
    } else {
      hc = check_host(*cfg, where, spec.host_checks, *host, starting);
    }
    for (const auto& w : hc.warnings) std::fprintf(stderr, "%s: warning: %s\n", spec.program, w.to_string().c_str());
    if (!hc.ok()) {
      for (const auto& e : hc.errors) std::fprintf(stderr, "%s: %s\n", spec.program, e.to_string().c_str());
      std::fprintf(stderr, "%s: %zu error(s) in %s; nothing started\n", spec.program, hc.errors.size(),
                   cli.config_path.c_str());
      exit_code = 2;
      return std::nullopt;
    }
  }
  if (cli.action == CliArgs::Action::kCheck) {
    std::printf("%s: ok\n", cli.config_path.c_str());
    return std::nullopt;
  }
  return cfg;
}

const char* to_string(Daemon d) { return d == Daemon::kControl ? "ntp-control" : "ntp-dataplane"; }

namespace {

// Walks the key groups of one daemon: `live` copies a changed group into the
// plan's configuration, `restart` only reports it.
class Planner {
 public:
  Planner(const Config& running, const Config& next, Daemon d) : next_(next), daemon_(d) { plan_.applied = running; }

  template <typename T>
  void live(const char* name, T Config::*group) {
    if (plan_.applied.*group == next_.*group) return;
    plan_.applied.*group = next_.*group;
    plan_.changed.emplace_back(name);
  }
  template <typename S, typename T>
  void live(const char* name, S Config::*section, T S::*key) {
    if (plan_.applied.*section.*key == next_.*section.*key) return;
    plan_.applied.*section.*key = next_.*section.*key;
    plan_.changed.emplace_back(name);
  }
  template <typename T>
  void restart(const char* name, T Config::*group) {
    if (!(plan_.applied.*group == next_.*group)) say_restart(name);
  }
  template <typename S, typename T>
  void restart(const char* name, S Config::*section, T S::*key) {
    if (!(plan_.applied.*section.*key == next_.*section.*key)) say_restart(name);
  }
  ReloadPlan take() { return std::move(plan_); }

 private:
  void say_restart(const char* name) {
    plan_.needs_restart.push_back(std::string(name) + " changed: needs a restart of " + to_string(daemon_));
  }
  ReloadPlan plan_;
  const Config& next_;
  Daemon daemon_;
};

}  // namespace

ReloadPlan plan_reload(const Config& running, const Config& next, Daemon daemon) {
  Planner p(running, next, daemon);
  // Both: the instance's identity and channel are fixed at start (EAL
  // file prefix, segment name, the other side attached to it).
  p.restart("sysname", &Config::sysname);
  p.restart("channel.shm_name", &Config::shm_name);
  // The instance lock is taken once, at start, in the directory of then.
  p.restart("channel.lock_dir", &Config::lock_dir);
  p.restart("interface", &Config::interfaces);
  p.live("log_level", &Config::log_level);
  // The associations are the control plane's; the dataplane learns their
  // endpoints from the segment (proto::AssocEndpoints).
  if (daemon == Daemon::kControl) {
    p.live("server", &Config::servers);
    p.live("peer", &Config::peers);
  }
  p.live("access", &Config::access);
  // The keys and what they may do: both daemons read the keys file (the
  // dataplane answers and signs with it, the control plane verifies).
  p.live("auth", &Config::auth);
  // The NTS cookie keys (both read them again at every reload, like the
  // keys file); ntp-control's NTS-KE server takes a new listener,
  // certificate and limits live too.
  p.live("nts", &Config::nts);
  if (daemon == Daemon::kControl) {
    p.live("ntp.max_dynamic_sessions", &Config::ntp, &Ntp::max_dynamic_sessions);
    p.live("ntp.passive_minpoll_log2", &Config::ntp, &Ntp::passive_minpoll_log2);
    p.live("ntp.passive_maxpoll_log2", &Config::ntp, &Ntp::passive_maxpoll_log2);
    p.live("ntp.passive_timeout_s", &Config::ntp, &Ntp::passive_timeout_s);
    p.live("ntp.holdover_s", &Config::ntp, &Ntp::holdover_s);
    // The served clock, its leap file and its steering are opened once;
    // the stats socket is bound once.
    p.restart("ntp.refclock_master", &Config::ntp, &Ntp::refclock_master);
    p.restart("ntp.leap_file", &Config::ntp, &Ntp::leap_file);
    p.restart("ntp.leap_smear", &Config::ntp, &Ntp::leap_smear);
    p.restart("ntp.local_clock_unsynced", &Config::ntp, &Ntp::local_clock_unsynced);
    p.restart("clock.source", &Config::clock, &Clock::source);
    p.restart("clock.offset_ms", &Config::clock, &Clock::offset_ms);
    p.restart("clock.frequency_ppm", &Config::clock, &Clock::frequency_ppm);
    p.restart("clock.step_threshold_ms", &Config::clock, &Clock::step_threshold_ms);
    p.restart("clock.panic_threshold_s", &Config::clock, &Clock::panic_threshold_s);
    p.restart("clock.max_frequency_ppm", &Config::clock, &Clock::max_frequency_ppm);
    p.restart("clock.drift_file", &Config::clock, &Clock::drift_file);
    p.restart("clock.steer_system_clock", &Config::clock, &Clock::steer_system_clock);
    p.restart("clock.phc", &Config::clock, &Clock::phc);
    p.restart("clock.phc_utc_offset_s", &Config::clock, &Clock::phc_utc_offset_s);
    p.restart("clock.steer_phc", &Config::clock, &Clock::steer_phc);
    p.restart("stats.listen", &Config::stats_listen);
    p.restart("stats.max_connections", &Config::stats, &Stats::max_connections);
    p.restart("stats.request_timeout_s", &Config::stats, &Stats::request_timeout_s);
  } else {
    // The per-client table is allocated once at its configured size; the
    // limits inside it change live.
    // The segment is created once, for its owner.
    p.restart("channel.control_user", &Config::control_user);
    p.live("ntp.answer_unknown_peers", &Config::ntp, &Ntp::answer_unknown_peers);
    p.restart("ratelimit.clients", &Config::ratelimit, &RateLimit::clients);
    p.live("ratelimit.interval_log2", &Config::ratelimit, &RateLimit::interval_log2);
    p.live("ratelimit.burst", &Config::ratelimit, &RateLimit::burst);
    p.live("ratelimit.leak_log2", &Config::ratelimit, &RateLimit::leak_log2);
    p.live("ratelimit.min_interval_s", &Config::ratelimit, &RateLimit::min_interval_s);
    p.live("ratelimit.max_replies_per_s", &Config::ratelimit, &RateLimit::max_replies_per_s);
    // EAL, ports, queues, pools and rings are set up once.
    p.restart("dataplane.main_lcore", &Config::dataplane, &Dataplane::main_lcore);
    p.restart("dataplane.worker_lcores", &Config::dataplane, &Dataplane::worker_lcores);
    p.restart("dataplane.eal_args", &Config::dataplane, &Dataplane::eal_args);
    p.restart("dataplane.burst_size", &Config::dataplane, &Dataplane::burst_size);
    p.restart("dataplane.rx_descriptors", &Config::dataplane, &Dataplane::rx_descriptors);
    p.restart("dataplane.tx_descriptors", &Config::dataplane, &Dataplane::tx_descriptors);
    p.restart("dataplane.mbufs", &Config::dataplane, &Dataplane::mbufs);
    p.restart("dataplane.ring_size", &Config::dataplane, &Dataplane::ring_size);
    p.restart("dataplane.idle_sleep_us", &Config::dataplane, &Dataplane::idle_sleep_us);
  }
  return p.take();
}

ReloadResult reload(const Config& running, Daemon daemon) {
  ReloadResult r;
  LoadResult loaded = load(running.path);
  if (!loaded.ok()) {
    for (const auto& e : loaded.errors) r.errors.push_back(e.to_string());
    if (r.errors.empty()) r.errors.push_back(running.path + ": cannot be loaded");
    return r;
  }
  // The keys file is read again too: a key the file lost, or a file that
  // became unreadable, refuses the reload like an error in the TOML.
  const std::unique_ptr<HostFacts> host = real_host_facts();
  const HostCheckResult keys =
      check_host(*loaded.config, KeyLocations::from_file(running.path), kCheckKeys, *host, false);
  if (!keys.ok()) {
    for (const auto& e : keys.errors) r.errors.push_back(e.to_string());
    return r;
  }
  r.plan = plan_reload(running, *loaded.config, daemon);
  return r;
}

}  // namespace ntp::config
