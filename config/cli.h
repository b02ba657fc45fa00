// The command line of both daemons: --config FILE (also -c FILE and
// --config=FILE), --check, --help (-h) and, where the program offers it,
// --print-keys. One parser so that the two front doors cannot drift apart.
#pragma once

#include <cstdio>
#include <optional>
#include <span>
#include <string>

#include "config/config.h"
#include "config/host_check.h"

namespace ntp::config {

struct CliSpec {
  const char* program = "";  // in messages and the usage line, e.g. "ntp-control"
  bool print_keys = false;   // accepts --print-keys
  // What this program checks on the host, at --check and at a start alike
  // (host_check.h says which daemon checks what, and why there).
  HostChecks host_checks = kCheckNone;
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

}  // namespace ntp::config
