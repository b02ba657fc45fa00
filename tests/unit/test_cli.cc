// The daemons' shared command line (config/cli.h): every spelling of the
// options, where the parse stops, the usage text of each program and the
// exit codes of the front door.
#include "config/cli.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <initializer_list>
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

// The front door's exit codes and what it hands back; the loader's
// messages are config's own test.
TEST(Cli, FrontDoorExitCodes) {
  auto run = [](const CliSpec& spec, std::vector<std::string> args, int& code) {
    std::vector<char*> argv{const_cast<char*>(spec.program)};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // Usage and keys go to stdout/stderr: discarded here, checked above.
    std::fflush(stdout);
    std::fflush(stderr);
    return load_from_command_line(spec, static_cast<int>(argv.size() - 1), argv.data(), code);
  };
  int code = -1;
  EXPECT_FALSE(run(kDataplane, {"--help"}, code));
  EXPECT_EQ(code, 0);
  EXPECT_FALSE(run(kControl, {"--bogus"}, code));
  EXPECT_EQ(code, 2);
  EXPECT_FALSE(run(kDataplane, {}, code));
  EXPECT_EQ(code, 2);
  EXPECT_FALSE(run(kControl, {"--config", "/nonexistent/ntp-test-cli.toml"}, code));
  EXPECT_EQ(code, 2);

  const std::string seed = std::string(SOURCE_ROOT) + "/deploy/seed/DeviceC.toml";
  EXPECT_FALSE(run(kDataplane, {"--config", seed, "--check"}, code));
  EXPECT_EQ(code, 0);
  code = -1;
  const std::optional<Config> cfg = run(kControl, {"-c", seed}, code);
  ASSERT_TRUE(cfg);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(cfg->sysname, "DeviceC");
}

}  // namespace
}  // namespace ntp::config
