// The daemons' shared command line (config/cli.h): every spelling of the
// options, where the parse stops, the usage text of each program and the
// exit codes of the front door.
#include "config/cli.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <vector>

#ifndef SOURCE_ROOT
#define SOURCE_ROOT "."
#endif

namespace ntp::config {
namespace {

const CliSpec kControl{"ntp-control", true};
const CliSpec kDataplane{"ntp-dataplane", false};

CliArgs parse(const CliSpec& spec, std::initializer_list<const char*> args) {
  const std::vector<const char*> v(args);
  return parse_cli(spec, v);
}

// What a function writes to a FILE*, through a temporary file.
template <typename F>
std::string capture(F&& write) {
  FILE* f = std::tmpfile();
  if (!f) return "<tmpfile failed>";
  write(f);
  std::fflush(f);
  std::rewind(f);
  std::string s;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  std::fclose(f);
  return s;
}

TEST(Cli, ConfigInEverySpelling) {
  for (const CliSpec* spec : {&kControl, &kDataplane}) {
    EXPECT_EQ(parse(*spec, {"--config", "a.toml"}).config_path, "a.toml");
    EXPECT_EQ(parse(*spec, {"-c", "b.toml"}).config_path, "b.toml");
    EXPECT_EQ(parse(*spec, {"--config=c.toml"}).config_path, "c.toml");
    EXPECT_EQ(parse(*spec, {"--config", "a.toml"}).action, CliArgs::Action::kRun);
    // The last one wins.
    EXPECT_EQ(parse(*spec, {"-c", "a.toml", "--config=d.toml"}).config_path, "d.toml");
  }
}

TEST(Cli, CheckBeforeOrAfterTheFile) {
  const CliArgs a = parse(kDataplane, {"--check", "--config", "x.toml"});
  EXPECT_EQ(a.action, CliArgs::Action::kCheck);
  EXPECT_EQ(a.config_path, "x.toml");
  EXPECT_EQ(parse(kControl, {"-c", "x.toml", "--check"}).action, CliArgs::Action::kCheck);
}

TEST(Cli, MissingFileIsAUsageErrorWithoutMessage) {
  for (const CliSpec* spec : {&kControl, &kDataplane}) {
    for (const CliArgs& a : {parse(*spec, {}), parse(*spec, {"--check"}), parse(*spec, {"--config="})}) {
      EXPECT_EQ(a.action, CliArgs::Action::kUsageError);
      EXPECT_EQ(a.error, "");
    }
  }
}

TEST(Cli, ConfigWithoutValueIsUnknown) {
  const CliArgs a = parse(kControl, {"--config"});
  EXPECT_EQ(a.action, CliArgs::Action::kUsageError);
  EXPECT_EQ(a.error, "unknown argument '--config'");
  EXPECT_EQ(parse(kDataplane, {"-c"}).error, "unknown argument '-c'");
}

TEST(Cli, UnknownArgumentStopsTheParse) {
  const CliArgs a = parse(kDataplane, {"--config", "x.toml", "--verbose", "--help"});
  EXPECT_EQ(a.action, CliArgs::Action::kUsageError);
  EXPECT_EQ(a.error, "unknown argument '--verbose'");
}

TEST(Cli, HelpStopsTheParse) {
  for (const CliSpec* spec : {&kControl, &kDataplane}) {
    EXPECT_EQ(parse(*spec, {"--help"}).action, CliArgs::Action::kHelp);
    EXPECT_EQ(parse(*spec, {"-h", "--bogus"}).action, CliArgs::Action::kHelp);
    EXPECT_EQ(parse(*spec, {"--config", "x.toml", "--help"}).action, CliArgs::Action::kHelp);
  }
}

TEST(Cli, PrintKeysOnlyWhereOffered) {
  EXPECT_EQ(parse(kControl, {"--print-keys"}).action, CliArgs::Action::kPrintKeys);
  EXPECT_EQ(parse(kControl, {"--print-keys", "--bogus"}).action, CliArgs::Action::kPrintKeys);
  const CliArgs d = parse(kDataplane, {"--print-keys"});
  EXPECT_EQ(d.action, CliArgs::Action::kUsageError);
  EXPECT_EQ(d.error, "unknown argument '--print-keys'");
}

TEST(Cli, UsageTextOfEachProgram) {
  EXPECT_EQ(capture([](FILE* f) { print_usage(kControl, f); }),
            "usage: ntp-control --config FILE [--check] | --print-keys\n"
            "  --config FILE  the instance's TOML configuration\n"
            "  --check        validate the configuration and exit\n"
            "  --print-keys   print every configuration key (type, default, range, meaning)\n");
  EXPECT_EQ(capture([](FILE* f) { print_usage(kDataplane, f); }),
            "usage: ntp-dataplane --config FILE [--check]\n"
            "  --config FILE  the instance's TOML configuration\n"
            "  --check        validate the configuration and exit\n");
}

TEST(Cli, PrintKeysIsOneRowPerKey) {
  const std::string s = capture([](FILE* f) { print_keys(f); });
  ASSERT_EQ(s.rfind("| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n", 0), 0u);
  size_t rows = 0;
  for (char ch : s) rows += ch == '\n';
  EXPECT_EQ(rows, key_docs().size() + 2);
  for (const auto& k : key_docs()) {
    EXPECT_NE(s.find("| `" + k.key + "` |"), std::string::npos) << k.key;
    if (k.required) {
      EXPECT_NE(s.find("| `" + k.key + "` | " + k.type + " | required |"), std::string::npos) << k.key;
    }
  }
}

// What the front door prints and hands back: argv as the daemon gets it,
// both standard streams captured (gtest redirects fd 1 and 2 and flushes
// stdio on both ends of the capture).
struct FrontDoor {
  std::optional<Config> cfg;
  int code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// host: the host facts the checks see; nullptr: this host's.
FrontDoor run_front_door(const CliSpec& spec, const HostFacts* host, std::vector<std::string> args) {
  std::vector<char*> argv{const_cast<char*>(spec.program)};
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  FrontDoor r;
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  r.cfg = load_from_command_line(spec, static_cast<int>(argv.size() - 1), argv.data(), r.code, host);
  r.err = testing::internal::GetCapturedStderr();
  r.out = testing::internal::GetCapturedStdout();
  return r;
}

FrontDoor front_door(const CliSpec& spec, std::vector<std::string> args) {
  return run_front_door(spec, nullptr, std::move(args));
}

std::string usage_of(const CliSpec& spec) {
  return capture([&spec](FILE* f) { print_usage(spec, f); });
}

const std::string kSeed = std::string(SOURCE_ROOT) + "/deploy/seed/DeviceC.toml";

// The front door's exit codes and what it hands back.
TEST(Cli, FrontDoorExitCodes) {
  FrontDoor r = front_door(kDataplane, {"--help"});
  EXPECT_FALSE(r.cfg);
  EXPECT_EQ(r.code, 0);
  r = front_door(kControl, {"--bogus"});
  EXPECT_FALSE(r.cfg);
  EXPECT_EQ(r.code, 2);
  r = front_door(kDataplane, {});
  EXPECT_FALSE(r.cfg);
  EXPECT_EQ(r.code, 2);
  r = front_door(kControl, {"--config", "/nonexistent/ntp-test-cli.toml"});
  EXPECT_FALSE(r.cfg);
  EXPECT_EQ(r.code, 2);

  r = front_door(kDataplane, {"--config", kSeed, "--check"});
  EXPECT_FALSE(r.cfg);
  EXPECT_EQ(r.code, 0);
  r = front_door(kControl, {"-c", kSeed});
  ASSERT_TRUE(r.cfg);
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.cfg->sysname, "DeviceC");
  // Running prints nothing: the daemon's log starts after this.
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "");
}

// The old mains (ee512ba control/main.cc, dataplane/main.cc) printed
// usage(stdout) for --help and returned 0.
TEST(Cli, FrontDoorHelpOnStdout) {
  for (const CliSpec* spec : {&kControl, &kDataplane}) {
    for (const char* h : {"--help", "-h"}) {
      const FrontDoor r = front_door(*spec, {h});
      EXPECT_EQ(r.out, usage_of(*spec)) << spec->program << " " << h;
      EXPECT_EQ(r.err, "") << spec->program << " " << h;
      EXPECT_EQ(r.code, 0);
    }
  }
  // The text itself, as the old ntp-control printed it.
  EXPECT_EQ(front_door(kControl, {"--help"}).out,
            "usage: ntp-control --config FILE [--check] | --print-keys\n"
            "  --config FILE  the instance's TOML configuration\n"
            "  --check        validate the configuration and exit\n"
            "  --print-keys   print every configuration key (type, default, range, meaning)\n");
}

// Old: print_keys() on stdout, exit 0.
TEST(Cli, FrontDoorPrintKeysOnStdout) {
  const FrontDoor r = front_door(kControl, {"--print-keys"});
  EXPECT_EQ(r.code, 0);
  EXPECT_FALSE(r.cfg);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out.rfind("| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n", 0), 0u)
      << r.out.substr(0, 200);
  EXPECT_EQ(r.out, capture([](FILE* f) { print_keys(f); }));
}

// Old: "ntp-control: unknown argument '%s'\n" then usage(stderr), exit 2.
TEST(Cli, FrontDoorUnknownArgumentOnStderr) {
  FrontDoor r = front_door(kControl, {"--bogus"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "ntp-control: unknown argument '--bogus'\n" + usage_of(kControl));

  // The dataplane has no --print-keys: unknown there, with its own name and usage.
  r = front_door(kDataplane, {"--print-keys"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "ntp-dataplane: unknown argument '--print-keys'\n"
            "usage: ntp-dataplane --config FILE [--check]\n"
            "  --config FILE  the instance's TOML configuration\n"
            "  --check        validate the configuration and exit\n");

  // --config without its value is unknown too, and ends the parse before the file is read.
  r = front_door(kDataplane, {"--config"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "ntp-dataplane: unknown argument '--config'\n" + usage_of(kDataplane));
}

// Old: no --config at all is usage(stderr) with no message line, exit 2.
TEST(Cli, FrontDoorNoArgumentsIsUsageOnStderr) {
  for (const CliSpec* spec : {&kControl, &kDataplane}) {
    for (const std::vector<std::string>& args : {std::vector<std::string>{}, std::vector<std::string>{"--check"}}) {
      const FrontDoor r = front_door(*spec, args);
      EXPECT_EQ(r.code, 2) << spec->program;
      EXPECT_EQ(r.out, "") << spec->program;
      EXPECT_EQ(r.err, usage_of(*spec)) << spec->program;
    }
  }
}

// Old: printf("%s: ok\n", config_path) on stdout, exit 0; the path as given.
TEST(Cli, FrontDoorCheckSaysOkOnStdout) {
  for (const CliSpec* spec : {&kControl, &kDataplane}) {
    const FrontDoor r = front_door(*spec, {"--check", "--config", kSeed});
    EXPECT_EQ(r.code, 0) << spec->program;
    EXPECT_FALSE(r.cfg);
    EXPECT_EQ(r.out, kSeed + ": ok\n") << spec->program;
    EXPECT_EQ(r.err, "") << spec->program;
  }
  const FrontDoor eq = front_door(kControl, {"--config=" + kSeed, "--check"});
  EXPECT_EQ(eq.out, kSeed + ": ok\n");
  EXPECT_EQ(eq.err, "");
}

// Old: load_or_report's lines on stderr ("<program>: FILE:LINE:COL: key: message",
// then "<program>: N error(s) in FILE; nothing started"), nothing on stdout,
// exit 2 -- with or without --check.
TEST(Cli, FrontDoorBadConfigOnStderr) {
  // The seed with ntp.refclock_master out of range, on the seed's own line.
  FILE* in = std::fopen(kSeed.c_str(), "r");
  ASSERT_NE(in, nullptr) << kSeed;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) text.append(buf, n);
  std::fclose(in);
  const std::string good = "\nrefclock_master = 2\n";
  const size_t at = text.find(good);
  ASSERT_NE(at, std::string::npos);
  text.replace(at, good.size(), "\nrefclock_master = 16\n");
  int line = 2;  // the line after the newline that `at` points at
  for (size_t i = 0; i < at; i++) line += text[i] == '\n';

  const std::string path = testing::TempDir() + "ntp-test-cli-bad.toml";
  FILE* out = std::fopen(path.c_str(), "w");
  ASSERT_NE(out, nullptr) << path;
  std::fwrite(text.data(), 1, text.size(), out);
  std::fclose(out);

  for (const CliSpec* spec : {&kControl, &kDataplane}) {
    for (const bool check : {false, true}) {
      std::vector<std::string> args{"--config", path};
      if (check) args.push_back("--check");
      const FrontDoor r = front_door(*spec, args);
      EXPECT_FALSE(r.cfg);
      EXPECT_EQ(r.code, 2);
      EXPECT_EQ(r.out, "") << spec->program << (check ? " --check" : "");
      const std::string p = spec->program;
      EXPECT_EQ(r.err, p + ": " + path + ":" + std::to_string(line) +
                           ":19: ntp.refclock_master: stratum 16 out of range 1..15\n" + p + ": 1 error(s) in " +
                           path + "; nothing started\n")
          << spec->program << (check ? " --check" : "");
    }
  }
  std::remove(path.c_str());

  // A file that is not there: named, on stderr.
  const FrontDoor r = front_door(kControl, {"--config", "/nonexistent/ntp-test-cli.toml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("ntp-control: /nonexistent/ntp-test-cli.toml"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ntp-control: 1 error(s) in /nonexistent/ntp-test-cli.toml; nothing started\n"),
            std::string::npos)
      << r.err;
}

// A host for the front door's host checks: CPU 0 only, 127.0.0.1:9123 as
// the test says, no interfaces (the seed's dpC lives in the demo's namespace).
struct OneCpuHost : HostFacts {
  int bind_errno = 0;
  std::vector<int> online_cpus() const override { return {0}; }
  int try_pin(int cpu) const override { return cpu == 0 ? 0 : EINVAL; }
  int try_bind_tcp(uint32_t, uint16_t) const override { return bind_errno; }
  bool interface_exists(const std::string&) const override { return false; }
  bool pci_device_exists(const std::string&) const override { return false; }
  bool file_readable(const std::string&) const override { return false; }
  // The seed's keys file is fine here (its rules are test_host_check's):
  // the errors asserted are the CPUs', the port's and the address's.
  crypto::KeysFile keys_file(const std::string&, const std::string&) const override { return {}; }
};

FrontDoor front_door_on(const CliSpec& spec, const HostFacts& host, std::vector<std::string> args) {
  return run_front_door(spec, &host, std::move(args));
}

// The line of the seed where `key = ` starts (the seed is edited; tests
// must not pin its line numbers).
std::string seed_line_of(const std::string& key) {
  FILE* f = std::fopen(kSeed.c_str(), "r");
  char buf[512];
  int n = 0, found = 0;
  while (f && !found && std::fgets(buf, sizeof buf, f)) {
    n++;
    if (std::string(buf).rfind(key + " = ", 0) == 0) found = n;
  }
  if (f) std::fclose(f);
  return std::to_string(found);
}

// A valid file the host cannot run: refused at --check and at a start
// alike, each error as the loader's are (file:line:col: key: message), then
// the count and "nothing started"; each daemon names what it checks.
TEST(Cli, FrontDoorRefusesWhatTheHostCannotRun) {
  const CliSpec control{"ntp-control", true, kControlHostChecks};
  const CliSpec dataplane{"ntp-dataplane", false, kDataplaneHostChecks};
  OneCpuHost host;
  host.bind_errno = EADDRNOTAVAIL;
  const std::string lcore = kSeed + ":" + seed_line_of("worker_lcores") +
                            ":18: dataplane.worker_lcores[0]: lcore 1 is not a CPU of this host (online CPUs: 0)\n";
  const std::string stats = kSeed + ":" + seed_line_of("listen") + ":10: stats.listen: cannot listen on 127.0.0.1:9123: " +
                            std::strerror(EADDRNOTAVAIL) +
                            " (no interface of this host, in this network namespace, has 127.0.0.1)\n";
  const std::string dev = kSeed + ":" + seed_line_of("device") + ":10: interface[0].device: interface 'dpC' (iface= of net_af_packet0) does not "
                          "exist in this network namespace\n";
  for (const bool check : {false, true}) {
    std::vector<std::string> args{"--config", kSeed};
    if (check) args.push_back("--check");
    FrontDoor r = front_door_on(control, host, args);
    EXPECT_FALSE(r.cfg);
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "ntp-control: " + lcore + "ntp-control: " + stats + "ntp-control: 2 error(s) in " +
                         kSeed + "; nothing started\n");
    r = front_door_on(dataplane, host, args);
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "ntp-dataplane: " + dev + "ntp-dataplane: " + lcore + "ntp-dataplane: 2 error(s) in " + kSeed +
                         "; nothing started\n");
  }
}

// The stats port held by someone (the running instance, when an operator
// checks a new file on a live appliance): a warning at --check, refused at a start.
TEST(Cli, FrontDoorStatsPortInUse) {
  const CliSpec control{"ntp-control", true, kCheckStatsListen};
  OneCpuHost host;
  host.bind_errno = EADDRINUSE;
  FrontDoor r = front_door_on(control, host, {"--config", kSeed, "--check"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, kSeed + ": ok\n");
  EXPECT_EQ(r.err, "ntp-control: warning: " + kSeed + ":" + seed_line_of("listen") + ":10: stats.listen: cannot listen on 127.0.0.1:9123: " +
                       std::strerror(EADDRINUSE) + " now (a running instance?); ntp-control serves NTP without it and retries every 5 s\n");
  r = front_door_on(control, host, {"--config", kSeed});
  EXPECT_FALSE(r.cfg);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("ntp-control: 1 error(s) in " + kSeed + "; nothing started\n"), std::string::npos) << r.err;
  host.bind_errno = 0;
  r = front_door_on(control, host, {"--config", kSeed});
  ASSERT_TRUE(r.cfg);
  EXPECT_EQ(r.err, "");
}

// ntp-control retries a stats port in use (a local user took it first):
// its start goes on with the warning; an address the host does not have
// is still refused, and the other checks still refuse at a start.
TEST(Cli, FrontDoorStatsPortInUseIsRetried) {
  CliSpec control{"ntp-control", true, kCheckStatsListen};
  control.stats_listen_retried = true;
  OneCpuHost host;
  host.bind_errno = EADDRINUSE;
  FrontDoor r = front_door_on(control, host, {"--config", kSeed});
  ASSERT_TRUE(r.cfg) << r.err;
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.err.rfind("ntp-control: warning: " + kSeed + ":" + seed_line_of("listen") +
                            ":10: stats.listen: cannot listen on 127.0.0.1:9123: " + std::strerror(EADDRINUSE),
                        0),
            0u)
      << r.err;
  host.bind_errno = EADDRNOTAVAIL;
  r = front_door_on(control, host, {"--config", kSeed});
  EXPECT_FALSE(r.cfg);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("stats.listen: cannot listen on 127.0.0.1:9123"), std::string::npos) << r.err;
  // DeviceC's worker lcore 1 on a one-CPU host: refused at a start as before.
  host.bind_errno = EADDRINUSE;
  control.host_checks |= kCheckLcoresExist;
  r = front_door_on(control, host, {"--config", kSeed});
  EXPECT_FALSE(r.cfg);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("1 error(s) in " + kSeed), std::string::npos) << r.err;
}

// A reload: a small file as running, then key groups changed in its text
// (appended lines land in [access]) or in the parsed struct.
Config parsed(const std::string& text) {
  LoadResult r = config::parse(text, "reload.toml");
  EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].to_string());
  return r.config.value_or(Config{});
}

const char* kBase = R"(sysname = "R"
[clock]
source = "virtual"
[[interface]]
name = "p0"
device = "net_af_packet0,iface=x"
address = "10.0.1.31/24"
ntp_server = true
[[server]]
address = "10.0.1.1"
[dataplane]
worker_lcores = [1]
[access]
server = ["10.0.1.0/24"]
)";

TEST(Reload, NothingChangedNothingSaid) {
  const Config c = parsed(kBase);
  for (Daemon d : {Daemon::kControl, Daemon::kDataplane}) {
    const ReloadPlan p = plan_reload(c, c, d);
    EXPECT_TRUE(p.changed.empty());
    EXPECT_TRUE(p.needs_restart.empty());
    EXPECT_EQ(p.applied, c);
  }
}

// What each daemon takes live is taken whole: the applied configuration is
// the new file's.
TEST(Reload, LiveGroupsAreTaken) {
  const Config running = parsed(kBase);
  Config next = parsed(std::string(kBase) + R"(deny = ["10.0.9.0/24"]
kod = true
[ratelimit]
interval_log2 = 1
burst = 4
[[server]]
address = "10.0.1.2"
iburst = true
[[peer]]
address = "10.0.1.3"
)");
  next.log_level = "debug";
  next.ntp.answer_unknown_peers = true;
  next.auth.keys_file = "/etc/ntp-appliance/keys";
  next.auth.trusted_keys = {3};
  const ReloadPlan c = plan_reload(running, next, Daemon::kControl);
  // The control plane neither rate-limits nor answers strangers' mode 1:
  // those stay as they were, unsaid.
  Config control_next = next;
  control_next.ratelimit = running.ratelimit;
  control_next.ntp.answer_unknown_peers = running.ntp.answer_unknown_peers;
  EXPECT_EQ(c.applied, control_next);
  EXPECT_EQ(c.changed, (std::vector<std::string>{"log_level", "server", "peer", "access", "auth"}));
  EXPECT_TRUE(c.needs_restart.empty());
  const ReloadPlan d = plan_reload(running, next, Daemon::kDataplane);
  Config dataplane_next = next;  // the associations are the control plane's (published in the segment)
  dataplane_next.servers = running.servers;
  dataplane_next.peers = running.peers;
  EXPECT_EQ(d.applied, dataplane_next);
  EXPECT_EQ(d.changed, (std::vector<std::string>{"log_level", "access", "auth",
                                                 "ntp.answer_unknown_peers", "ratelimit.interval_log2",
                                                 "ratelimit.burst"}));
  EXPECT_TRUE(d.needs_restart.empty());
}

TEST(Reload, PassiveLimitsAreLiveInTheControlPlane) {
  const Config running = parsed(kBase);
  Config next = running;
  next.ntp.passive_minpoll_log2 = 4;
  next.ntp.passive_maxpoll_log2 = 8;
  next.ntp.passive_timeout_s = 60;
  next.ntp.max_dynamic_sessions = 5;
  next.ntp.holdover_s = 100;
  const ReloadPlan c = plan_reload(running, next, Daemon::kControl);
  EXPECT_EQ(c.applied, next);
  EXPECT_EQ(c.changed.size(), 5u);
  // The dataplane uses none of them to decide (holdover is the control
  // plane's word in the published server state): nothing said, nothing taken.
  const ReloadPlan d = plan_reload(running, next, Daemon::kDataplane);
  EXPECT_EQ(d.applied, running);
  EXPECT_TRUE(d.changed.empty());
  EXPECT_TRUE(d.needs_restart.empty());
}

// One line per group that needs a restart, naming the key and the daemon;
// the running values of those groups stay, the live ones next to them are
// still taken.
TEST(Reload, RestartGroupsAreSaidAndKept) {
  const Config running = parsed(kBase);
  Config next = running;
  next.clock.source = ClockSource::kSystem;
  next.clock.drift_file = "/var/lib/x.drift";
  next.stats_listen = "127.0.0.1:9999";
  next.shm_name = "/ntp-other";
  next.dataplane.ring_size = 4096;
  next.dataplane.worker_lcores = {1, 2};
  next.ratelimit.clients = 2048;
  next.ratelimit.burst = 2;
  next.interfaces[0].ipv4 += 1;
  next.access.deny = {{0x0A000900, 24}};

  const ReloadPlan c = plan_reload(running, next, Daemon::kControl);
  EXPECT_EQ(c.needs_restart, (std::vector<std::string>{
                                 "channel.shm_name changed: needs a restart of ntp-control",
                                 "interface changed: needs a restart of ntp-control",
                                 "clock.source changed: needs a restart of ntp-control",
                                 "clock.drift_file changed: needs a restart of ntp-control",
                                 "stats.listen changed: needs a restart of ntp-control",
                             }));
  EXPECT_EQ(c.changed, (std::vector<std::string>{"access"}));
  EXPECT_EQ(c.applied.clock, running.clock);
  EXPECT_EQ(c.applied.stats_listen, running.stats_listen);
  EXPECT_EQ(c.applied.shm_name, running.shm_name);
  EXPECT_EQ(c.applied.interfaces, running.interfaces);
  EXPECT_EQ(c.applied.access, next.access);
  EXPECT_EQ(c.applied.ratelimit, running.ratelimit);  // the dataplane's, not the control plane's

  const ReloadPlan d = plan_reload(running, next, Daemon::kDataplane);
  EXPECT_EQ(d.needs_restart, (std::vector<std::string>{
                                 "channel.shm_name changed: needs a restart of ntp-dataplane",
                                 "interface changed: needs a restart of ntp-dataplane",
                                 "ratelimit.clients changed: needs a restart of ntp-dataplane",
                                 "dataplane.worker_lcores changed: needs a restart of ntp-dataplane",
                                 "dataplane.ring_size changed: needs a restart of ntp-dataplane",
                             }));
  EXPECT_EQ(d.changed, (std::vector<std::string>{"access", "ratelimit.burst"}));
  // The table keeps its size; its limits are the new file's.
  EXPECT_EQ(d.applied.ratelimit.clients, running.ratelimit.clients);
  EXPECT_EQ(d.applied.ratelimit.burst, 2);
  EXPECT_EQ(d.applied.dataplane, running.dataplane);
  EXPECT_EQ(d.applied.clock, running.clock);  // not the dataplane's: left as it runs
}

// Every key of the groups below changed alone gives exactly one line, in
// the daemon that uses it: a key added to a struct without a line here
// would go unnoticed at a reload.
TEST(Reload, EveryRestartKeyIsNamed) {
  const Config running = parsed(kBase);
  std::vector<std::pair<std::string, void (*)(Config&)>> control = {
      {"clock.offset_ms", [](Config& c) { c.clock.offset_ms = 5; }},
      {"clock.frequency_ppm", [](Config& c) { c.clock.frequency_ppm = 5; }},
      {"clock.step_threshold_ms", [](Config& c) { c.clock.step_threshold_ms = 5; }},
      {"clock.panic_threshold_s", [](Config& c) { c.clock.panic_threshold_s = 5; }},
      {"clock.max_frequency_ppm", [](Config& c) { c.clock.max_frequency_ppm = 5; }},
      {"clock.steer_system_clock", [](Config& c) { c.clock.steer_system_clock = true; }},
      {"clock.phc", [](Config& c) { c.clock.phc = "/dev/ptp0"; }},
      {"clock.phc_utc_offset_s", [](Config& c) { c.clock.phc_utc_offset_s = 0; }},
      {"clock.steer_phc", [](Config& c) { c.clock.steer_phc = "/dev/ptp1"; }},
      {"ntp.refclock_master", [](Config& c) { c.ntp.refclock_master = 3; }},
      {"ntp.leap_file", [](Config& c) { c.ntp.leap_file = "/x"; }},
      {"ntp.leap_smear", [](Config& c) { c.ntp.leap_smear = true; }},
      {"ntp.local_clock_unsynced", [](Config& c) { c.ntp.local_clock_unsynced = "serve"; }},
      {"stats.max_connections", [](Config& c) { c.stats.max_connections = 3; }},
      {"stats.request_timeout_s", [](Config& c) { c.stats.request_timeout_s = 1; }},
      {"sysname", [](Config& c) { c.sysname = "Q"; }},
      {"channel.lock_dir", [](Config& c) { c.lock_dir = "/run/other"; }},
  };
  for (const auto& [key, change] : control) {
    Config next = running;
    change(next);
    const ReloadPlan p = plan_reload(running, next, Daemon::kControl);
    EXPECT_EQ(p.needs_restart, std::vector<std::string>{key + " changed: needs a restart of ntp-control"});
    EXPECT_EQ(p.applied, running) << key;
  }
  std::vector<std::pair<std::string, void (*)(Config&)>> dataplane = {
      {"channel.control_user", [](Config& c) { c.control_user = "ntp-appliance"; }},
      {"dataplane.main_lcore", [](Config& c) { c.dataplane.main_lcore = 3; }},
      {"dataplane.eal_args", [](Config& c) { c.dataplane.eal_args = {"--no-huge"}; }},
      {"dataplane.burst_size", [](Config& c) { c.dataplane.burst_size = 3; }},
      {"dataplane.rx_descriptors", [](Config& c) { c.dataplane.rx_descriptors = 64; }},
      {"dataplane.tx_descriptors", [](Config& c) { c.dataplane.tx_descriptors = 64; }},
      {"dataplane.mbufs", [](Config& c) { c.dataplane.mbufs = 2047; }},
      {"dataplane.idle_sleep_us", [](Config& c) { c.dataplane.idle_sleep_us = 3; }},
      {"sysname", [](Config& c) { c.sysname = "Q"; }},
      {"channel.lock_dir", [](Config& c) { c.lock_dir = "/run/other"; }},
  };
  for (const auto& [key, change] : dataplane) {
    Config next = running;
    change(next);
    const ReloadPlan p = plan_reload(running, next, Daemon::kDataplane);
    EXPECT_EQ(p.needs_restart, std::vector<std::string>{key + " changed: needs a restart of ntp-dataplane"});
    EXPECT_EQ(p.applied, running) << key;
  }
  Config next = running;
  next.ratelimit.leak_log2 = 1;
  next.ratelimit.min_interval_s = 0.5;
  next.ratelimit.max_replies_per_s = 10;
  EXPECT_EQ(plan_reload(running, next, Daemon::kDataplane).changed,
            (std::vector<std::string>{"ratelimit.leak_log2", "ratelimit.min_interval_s", "ratelimit.max_replies_per_s"}));
}

// The file read again from the running configuration's path: refused whole
// with each error at file:line:col, or planned.
TEST(Reload, ReadsTheFileAgain) {
  char dir[] = "/tmp/ntp-test-reload-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/r.toml";
  auto write = [&path](const std::string& text) {
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(text.c_str(), f);
    std::fclose(f);
  };
  write(kBase);
  LoadResult first = load(path);
  ASSERT_TRUE(first.ok());
  const Config running = *first.config;

  write(std::string(kBase) + "deny = [\"10.0.9.0/24\"]\n");
  ReloadResult r = reload(running, Daemon::kControl);
  ASSERT_TRUE(r.plan);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_EQ(r.plan->changed, std::vector<std::string>{"access"});
  EXPECT_EQ(r.plan->applied.access.deny, (PrefixList{{0x0A000900, 24}}));
  EXPECT_EQ(r.plan->applied.path, path);

  write(std::string(kBase) + "bogus_key = 1\nkod = \"yes\"\n");
  r = reload(running, Daemon::kDataplane);
  EXPECT_FALSE(r.plan);
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].rfind(path + ":15:1: access.bogus_key: ", 0), 0u) << r.errors[0];
  EXPECT_EQ(r.errors[1].rfind(path + ":16:", 0), 0u) << r.errors[1];
  EXPECT_NE(r.errors[1].find("access.kod"), std::string::npos) << r.errors[1];

  // The keys file is read again with the TOML: a key it no longer holds
  // refuses the reload, at the key that names it.
  const std::string keys = std::string(dir) + "/keys";
  auto write_keys = [&keys](const char* text) {
    const int fd = open(keys.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, text, std::strlen(text)), static_cast<ssize_t>(std::strlen(text)));
    close(fd);
  };
  write_keys("1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n");
  const std::string keyed = std::string(kBase) + "[auth]\nkeys_file = \"" + keys +
                            "\"\ntrusted_keys = [1]\n[[server]]\naddress = \"10.0.1.9\"\nkey = 1\n";
  write(keyed);
  r = reload(running, Daemon::kControl);
  ASSERT_TRUE(r.plan) << (r.errors.empty() ? "" : r.errors[0]);
  EXPECT_EQ(r.plan->changed, (std::vector<std::string>{"server", "auth"}));
  write_keys("2 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n");
  r = reload(running, Daemon::kDataplane);
  EXPECT_FALSE(r.plan);
  EXPECT_EQ(r.errors, (std::vector<std::string>{
                          path + ":17:17: auth.trusted_keys[0]: key 1 is not in " + keys + " (auth.keys_file)",
                          path + ":20:7: server[1].key: key 1 is not in " + keys + " (auth.keys_file)"}));
  std::remove(keys.c_str());

  std::remove(path.c_str());
  r = reload(running, Daemon::kControl);
  EXPECT_FALSE(r.plan);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].find(path), std::string::npos) << r.errors[0];
  rmdir(dir);
}

}  // namespace
}  // namespace ntp::config
