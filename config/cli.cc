#include "config/cli.h"

#include <memory>
#include <string_view>

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
    const HostCheckResult hc = check_host(*cfg, KeyLocations::from_file(cli.config_path), spec.host_checks, *host,
                                          /*starting=*/cli.action == CliArgs::Action::kRun);
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

}  // namespace ntp::config
