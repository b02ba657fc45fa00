// The command line of both daemons: --config FILE (also -c FILE and
// --config=FILE), --check, --help (-h) and, where the program offers it,
// --print-keys. One parser so that the two front doors cannot drift apart.
#pragma once

#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/host_check.h"

namespace ntp::config {

struct CliSpec {
  const char* program = "";  // in messages and the usage line, e.g. "ntp-control"
  bool print_keys = false;   // accepts --print-keys
  // What this program checks on the host, at --check and at a start alike
  // (host_check.h says which daemon checks what, and why there).
  HostChecks host_checks = kCheckNone;
  // The program retries a stats.listen that is merely in use (ntp-control
  // serves NTP meanwhile): at a start that is a warning, as at --check, not
  // a refusal. An address the host does not have is refused all the same.
  bool stats_listen_retried = false;
};

struct CliArgs {
  enum class Action {
    kRun,         // load config_path and run
    kCheck,       // load config_path, say "ok" and exit
    kPrintKeys,   // print the key table and exit
    kHelp,        // usage on stdout, exit 0
    kUsageError,  // `error` (if any) and usage on stderr, exit 2
  };
  Action action = Action::kRun;
  std::string config_path;
  std::string error;  // kUsageError: e.g. "unknown argument '--x'"; empty when only the file is missing
};

// args: the arguments after the program name. --help, --print-keys and an
// unknown argument end the parse where they stand, as getopt-less daemons
// traditionally do; --config without a value counts as unknown.
CliArgs parse_cli(const CliSpec& spec, std::span<const char* const> args);

void print_usage(const CliSpec& spec, FILE* out);

// The key table (key_docs()) as a Markdown table, for the README.
void print_keys(FILE* out);

// What both daemons do first: parse argv, act on help, keys, usage errors
// and --check, load and validate the file, then run spec.host_checks against
// `host` (the kernel's facts when null). Returns the configuration to run
// with, or nothing with the exit status in `exit_code` (0 done, 2 refused).
// A host check's errors are printed as the loader's are
// ("<program>: file:line:col: key: message", then the count).
std::optional<Config> load_from_command_line(const CliSpec& spec, int argc, char** argv, int& exit_code,
                                             const HostFacts* host = nullptr);

// A reload (SIGHUP): the file read again, and what of it each daemon can
// take without a restart. The running configuration stays whole where the
// new one cannot apply, so a daemon never runs half of a key group.
enum class Daemon { kControl, kDataplane };
const char* to_string(Daemon d);  // "ntp-control", "ntp-dataplane"

struct ReloadPlan {
  // The running configuration with every group `daemon` takes live copied
  // from the new file: what the daemon runs with from now on.
  Config applied;
  // Groups that changed and were taken, e.g. "access", "server", "log_level".
  std::vector<std::string> changed;
  // One line per group that changed but needs a restart, and was not taken:
  // "clock.source changed: needs a restart of ntp-control".
  std::vector<std::string> needs_restart;
};
// Pure: what `daemon` does with `next` (the file as now read) while running
// `running`. Keys the daemon does not use are left out of both lists.
// ntp-control takes live: [[server]], [[peer]], [access], [auth],
// ntp.max_dynamic_sessions, ntp.passive_*, ntp.holdover_s, log_level.
// ntp-dataplane: [access], [auth], [nts], [ratelimit] but
// ratelimit.clients (the table's size), ntp.answer_unknown_peers, log_level.
ReloadPlan plan_reload(const Config& running, const Config& next, Daemon daemon);

struct ReloadResult {
  std::optional<ReloadPlan> plan;   // nothing when the file was refused
  std::vector<std::string> errors;  // refused: each as "file:line:column: key: message"
};
// Reads running.path again (config::load) and plans it; a file with errors
// is refused whole and the running configuration stays.
ReloadResult reload(const Config& running, Daemon daemon);

}  // namespace ntp::config
