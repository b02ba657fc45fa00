// The host checks (config/host_check.h) over injected host facts: which
// lcores, addresses and devices a start would fail on, the message and the
// file position of each, and which daemon checks what.
#include "config/host_check.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace ntp::config {
namespace {

// A host with two CPUs, loopback and veth0, one PCI device, nothing bound.
struct FakeHost : HostFacts {
  std::vector<int> online{0, 1};
  std::set<int> pinnable{0, 1};
  std::map<std::pair<uint32_t, uint16_t>, int> bind_errno;  // default: binds
  std::set<std::string> interfaces{"lo", "veth0"};
  std::set<std::string> pci{"0000:3b:00.0"};
  std::set<std::string> files{"/tmp/in.pcap"};
  mutable std::vector<int> pinned;
  mutable std::vector<std::pair<uint32_t, uint16_t>> bound;
  mutable std::vector<std::string> looked_up;

  std::vector<int> online_cpus() const override { return online; }
  int try_pin(int cpu) const override {
    pinned.push_back(cpu);
    return pinnable.count(cpu) ? 0 : EINVAL;
  }
  int try_bind_tcp(uint32_t ip, uint16_t port) const override {
    bound.emplace_back(ip, port);
    auto it = bind_errno.find({ip, port});
    return it == bind_errno.end() ? 0 : it->second;
  }
  bool interface_exists(const std::string& n) const override {
    looked_up.push_back(n);
    return interfaces.count(n) > 0;
  }
  bool pci_device_exists(const std::string& a) const override {
    looked_up.push_back(a);
    return pci.count(a) > 0;
  }
  bool file_readable(const std::string& p) const override {
    looked_up.push_back(p);
    return files.count(p) > 0;
  }
  std::map<std::string, std::string> key_texts;  // keys files by path; absent: cannot be opened
  mutable std::vector<std::string> keys_owners;  // also_owner_user of each keys_file call
  crypto::KeysFile keys_file(const std::string& p, const std::string& also_owner_user) const override {
    keys_owners.push_back(also_owner_user);
    auto it = key_texts.find(p);
    if (it != key_texts.end()) return crypto::parse_keys(it->second, p);
    crypto::KeysFile f;
    f.errors.push_back({p, 0, "cannot open: No such file or directory"});
    return f;
  }
  std::map<std::string, std::string> cookie_key_texts;  // NTS cookie keys files by path; absent: cannot be opened
  crypto::CookieKeysFile cookie_keys_file(const std::string& p, const std::string&) const override {
    auto it = cookie_key_texts.find(p);
    if (it != cookie_key_texts.end()) return crypto::parse_cookie_keys(it->second, p);
    crypto::CookieKeysFile f;
    f.errors.push_back({p, 0, "cannot open: No such file or directory"});
    f.absent = true;
    return f;
  }
  std::map<std::string, PathFacts> paths{{"/run/ntp", {.exists = true, .directory = true, .mode = 0750}}};
  PathFacts lstat_path(const std::string& p) const override {
    looked_up.push_back(p);
    auto it = paths.find(p);
    return it == paths.end() ? PathFacts{} : it->second;
  }
};

// Line numbers below count from 1 in this text.
std::string config_text(const std::string& lcores, const std::string& listen, const std::string& device,
                        const std::string& second_device = "net_tap0,iface=tapX") {
  return "sysname = \"T\"\n"                          // 1
         "[dataplane]\n"                              // 2
         "main_lcore = 0\n"                           // 3
         "worker_lcores = " + lcores + "\n"           // 4
         "[stats]\n"                                  // 5
         "listen = \"" + listen + "\"\n"              // 6
         "[[interface]]\n"                            // 7
         "name = \"a\"\n"                             // 8
         "device = \"" + device + "\"\n"              // 9
         "address = \"10.0.0.1/24\"\n"                // 10
         "[[interface]]\n"                            // 11
         "name = \"b\"\n"                             // 12
         "device = \"" + second_device + "\"\n"       // 13
         "address = \"10.0.1.1/24\"\n";               // 14
}

struct Checked {
  HostCheckResult r;
  std::vector<std::string> errors, warnings;
};

Checked run(const std::string& text, HostChecks checks, const FakeHost& host, bool starting = true) {
  LoadResult lr = parse(text, "t.toml");
  EXPECT_TRUE(lr.ok()) << (lr.errors.empty() ? "" : lr.errors[0].to_string());
  Checked c;
  if (!lr.ok()) return c;
  c.r = check_host(*lr.config, KeyLocations::from_text(text, "t.toml"), checks, host, starting);
  for (const auto& e : c.r.errors) c.errors.push_back(e.to_string());
  for (const auto& e : c.r.warnings) c.warnings.push_back(e.to_string());
  return c;
}

TEST(HostCheck, CpuListParsesTheKernelsFormat) {
  EXPECT_EQ(parse_cpu_list("0-3,8,10-11\n"), (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(parse_cpu_list("1"), (std::vector<int>{1}));
  EXPECT_EQ(parse_cpu_list(""), (std::vector<int>{}));
  for (const char* bad : {"3-1", "a", "0,,1", "-1", "1-", "0-99999999"})
    EXPECT_FALSE(parse_cpu_list(bad)) << bad;
  EXPECT_EQ(format_cpu_list({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
  EXPECT_EQ(format_cpu_list({5}), "5");
  EXPECT_EQ(format_cpu_list({}), "");
}

TEST(HostCheck, PciAddressForms) {
  EXPECT_TRUE(is_pci_address("0000:3b:00.0"));
  EXPECT_TRUE(is_pci_address("3b:00.7"));
  EXPECT_FALSE(is_pci_address("3b:00.8"));
  EXPECT_FALSE(is_pci_address("net_af_packet0,iface=lo"));
  EXPECT_FALSE(is_pci_address("000:3b:00.0"));
  EXPECT_FALSE(is_pci_address("zz:00.0"));
}

TEST(HostCheck, KeyLocationsOfValuesElementsAndDefaults) {
  const std::string text = config_text("[1, 7]", "127.0.0.1:9123", "veth0");
  const KeyLocations at = KeyLocations::from_text(text, "t.toml");
  EXPECT_EQ(at.find("dataplane.worker_lcores[1]").line, 4);
  EXPECT_EQ(at.find("dataplane.worker_lcores[1]").column, 21);  // the 7
  EXPECT_EQ(at.find("dataplane.worker_lcores[0]").column, 18);
  EXPECT_EQ(at.find("stats.listen").line, 6);
  EXPECT_EQ(at.find("stats.listen").column, 10);
  EXPECT_EQ(at.find("interface[1].device").line, 13);
  // An element the file does not have: its array's position.
  EXPECT_EQ(at.find("dataplane.worker_lcores[5]").line, 4);
  // A key left at its default: no position.
  EXPECT_EQ(at.find("dataplane.idle_sleep_us").line, 0);
  EXPECT_EQ(KeyLocations::from_text("not [toml", "x").find("a").line, 0);
}

TEST(HostCheck, LcoreThatIsNotACpuOfTheHost) {
  FakeHost host;
  const Checked c = run(config_text("[1, 7]", "127.0.0.1:9123", "veth0"), kDataplaneHostChecks, host);
  ASSERT_EQ(c.errors.size(), 1u);
  EXPECT_EQ(c.errors[0],
            "t.toml:4:21: dataplane.worker_lcores[1]: lcore 7 is not a CPU of this host (online CPUs: 0-1)");
  // Lcore 7 was not even tried: the kernel would only have said EINVAL.
  EXPECT_EQ(host.pinned, (std::vector<int>{0, 1}));
}

TEST(HostCheck, MainLcoreAndDefaultsAreCheckedToo) {
  FakeHost host;
  host.online = {0};
  host.pinnable = {0};
  // worker_lcores left at its default [1]: reported without a position.
  std::string text = config_text("[1]", "127.0.0.1:9123", "veth0");
  text.replace(text.find("worker_lcores = [1]\n"), 20, "");
  text.replace(text.find("main_lcore = 0"), 14, "main_lcore = 2");
  const Checked c = run(text, kDataplaneHostChecks, host);
  ASSERT_EQ(c.errors.size(), 2u);
  EXPECT_EQ(c.errors[0], "t.toml: dataplane.worker_lcores[0]: lcore 1 is not a CPU of this host (online CPUs: 0)");
  EXPECT_EQ(c.errors[1], "t.toml:3:14: dataplane.main_lcore: lcore 2 is not a CPU of this host (online CPUs: 0)");
}

TEST(HostCheck, WorkerCpusAreCheckedInsteadOfTheLcoresAndSharingIsAWarning) {
  FakeHost host;  // CPUs 0-1
  std::string text = config_text("[1, 2, 3]", "127.0.0.1:9123", "veth0");
  text.insert(text.find("[stats]"), "worker_cpus = [1, 1, 5]\n");
  const Checked c = run(text, kDataplaneHostChecks, host);
  ASSERT_EQ(c.errors.size(), 1u);
  EXPECT_EQ(c.errors[0], "t.toml:5:22: dataplane.worker_cpus[2]: CPU 5 is not a CPU of this host (online CPUs: 0-1)");
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_NE(c.warnings[0].find("dataplane.worker_cpus[1]: CPU 1 also runs worker 0"), std::string::npos)
      << c.warnings[0];
}

TEST(HostCheck, LcoreOnlineButOutsideThisProcesssCpuset) {
  FakeHost host;
  host.pinnable = {0};
  const Checked c = run(config_text("[1]", "127.0.0.1:9123", "veth0"), kDataplaneHostChecks, host);
  ASSERT_EQ(c.errors.size(), 1u);
  EXPECT_EQ(c.errors[0], "t.toml:4:18: dataplane.worker_lcores[0]: lcore 1: this process may not run on CPU 1 (" +
                             std::string(std::strerror(EINVAL)) + "; outside its cpuset?)");
  // ntp-control only asks whether the CPU exists: its own cpuset says
  // nothing about the dataplane's.
  host.pinned.clear();
  EXPECT_TRUE(run(config_text("[1]", "127.0.0.1:9123", "veth0"), kControlHostChecks, host).r.ok());
  EXPECT_TRUE(host.pinned.empty());
}

TEST(HostCheck, UnknownOnlineSetLeavesItToThePinning) {
  FakeHost host;
  host.online = {};
  host.pinnable = {0};
  const Checked c = run(config_text("[9]", "127.0.0.1:9123", "veth0"), kDataplaneHostChecks, host);
  ASSERT_EQ(c.errors.size(), 1u);
  EXPECT_NE(c.errors[0].find("lcore 9: this process may not run on CPU 9"), std::string::npos) << c.errors[0];
}

TEST(HostCheck, StatsAddressTheHostDoesNotHave) {
  FakeHost host;
  host.bind_errno[{0xC0000201, 9123}] = EADDRNOTAVAIL;  // 192.0.2.1
  const Checked c = run(config_text("[1]", "192.0.2.1:9123", "veth0"), kControlHostChecks, host);
  ASSERT_EQ(c.errors.size(), 1u);
  EXPECT_EQ(c.errors[0], "t.toml:6:10: stats.listen: cannot listen on 192.0.2.1:9123: " +
                             std::string(std::strerror(EADDRNOTAVAIL)) +
                             " (no interface of this host, in this network namespace, has 192.0.2.1)");
  EXPECT_EQ(host.bound, (std::vector<std::pair<uint32_t, uint16_t>>{{0xC0000201, 9123}}));
}

TEST(HostCheck, StatsPortInUseIsAnErrorAtStartAWarningAtCheck) {
  FakeHost host;
  host.bind_errno[{0x7F000001, 9123}] = EADDRINUSE;
  const std::string text = config_text("[1]", "localhost:9123", "veth0");  // localhost is 127.0.0.1
  const Checked start = run(text, kControlHostChecks, host, /*starting=*/true);
  ASSERT_EQ(start.errors.size(), 1u);
  EXPECT_NE(start.errors[0].find("stats.listen: cannot listen on localhost:9123"), std::string::npos);
  const Checked check = run(text, kControlHostChecks, host, /*starting=*/false);
  EXPECT_TRUE(check.r.ok());
  ASSERT_EQ(check.warnings.size(), 1u);
  EXPECT_NE(check.warnings[0].find("now (a running instance?); ntp-control serves NTP without it and retries every 5 s"), std::string::npos);
  // Other bind errors (EACCES) refuse at --check as well.
  host.bind_errno[{0x7F000001, 9123}] = EACCES;
  EXPECT_EQ(run(text, kControlHostChecks, host, false).errors.size(), 1u);
}

TEST(HostCheck, StatsUnixSocketDirectory) {
  const auto text = [](const std::string& path) { return config_text("[1]", "unix:" + path, "net_tap0"); };
  FakeHost host;
  EXPECT_TRUE(run(text("/run/ntp/c.sock"), kControlHostChecks, host).errors.empty());
  EXPECT_TRUE(host.bound.empty());  // no TCP bind for a Unix socket
  const std::string where = "t.toml:6:10: stats.listen: cannot listen on unix:";
  EXPECT_EQ(run(text("/nowhere/c.sock"), kControlHostChecks, host).errors,
            (std::vector<std::string>{where + "/nowhere/c.sock: its directory /nowhere does not exist (create it: "
                                              "/run/ntp-appliance is made at boot by "
                                              "deploy/systemd/ntp-appliance.tmpfiles.conf, 1770 root:ntp-appliance)"}));
  host.paths["/tmp"] = {.exists = true, .directory = true, .mode = 01777};  // sticky: others cannot replace ours
  EXPECT_TRUE(run(text("/tmp/c.sock"), kControlHostChecks, host).errors.empty());
  host.paths["/srv/open"] = {.exists = true, .directory = true, .mode = 0777};
  EXPECT_EQ(run(text("/srv/open/c.sock"), kControlHostChecks, host).errors,
            (std::vector<std::string>{where + "/srv/open/c.sock: its directory /srv/open is writable by others (mode "
                                              "0777) and not sticky: anyone could replace the socket"}));
  host.paths["/srv/link"] = {.exists = true, .symlink = true, .mode = 0777};
  EXPECT_EQ(run(text("/srv/link/c.sock"), kControlHostChecks, host).errors,
            (std::vector<std::string>{where + "/srv/link/c.sock: its directory /srv/link is a symlink (give the real "
                                              "directory)"}));
  host.paths["/srv/file"] = {.exists = true, .mode = 0644};
  EXPECT_EQ(run(text("/srv/file/c.sock"), kControlHostChecks, host).errors,
            (std::vector<std::string>{where + "/srv/file/c.sock: /srv/file is not a directory"}));
  host.paths["/run/ntp/old.sock"] = {.exists = true, .socket = true, .mode = 0660};  // stale: replaced at start
  EXPECT_TRUE(run(text("/run/ntp/old.sock"), kControlHostChecks, host).errors.empty());
  host.paths["/run/ntp/conf"] = {.exists = true, .mode = 0644};
  EXPECT_EQ(run(text("/run/ntp/conf"), kControlHostChecks, host).errors,
            (std::vector<std::string>{where + "/run/ntp/conf: /run/ntp/conf exists and is not a socket (not removed)"}));
  host.paths["/run/ntp/ln.sock"] = {.exists = true, .symlink = true, .mode = 0777};
  EXPECT_EQ(run(text("/run/ntp/ln.sock"), kControlHostChecks, host).errors,
            (std::vector<std::string>{where + "/run/ntp/ln.sock: /run/ntp/ln.sock is a symlink"}));
  // The dataplane does not listen there: it does not look.
  EXPECT_TRUE(run(text("/nowhere/c.sock"), kDataplaneHostChecks, host).errors.empty());
}

TEST(HostCheck, DevicesThatAttachToSomethingPresent) {
  FakeHost host;
  const Checked c = run(config_text("[1]", "127.0.0.1:9123", "net_af_packet0,iface=veth9,qpairs=1",
                                    "net_pcap1,rx_pcap=/tmp/none.pcap,tx_iface=lo"),
                        kDataplaneHostChecks, host);
  ASSERT_EQ(c.errors.size(), 2u);
  EXPECT_EQ(c.errors[0],
            "t.toml:9:10: interface[0].device: interface 'veth9' (iface= of net_af_packet0) does not exist in this "
            "network namespace");
  EXPECT_EQ(c.errors[1], "t.toml:13:10: interface[1].device: cannot read '/tmp/none.pcap' (rx_pcap= of net_pcap1)");
  EXPECT_EQ(host.looked_up, (std::vector<std::string>{"veth9", "/tmp/none.pcap", "lo"}));

  // Present ones pass; net_tap creates its interface, so its iface= is not looked up.
  host.looked_up.clear();
  EXPECT_TRUE(run(config_text("[1]", "127.0.0.1:9123", "net_af_xdp0,iface=veth0"), kDataplaneHostChecks, host).r.ok());
  EXPECT_EQ(host.looked_up, (std::vector<std::string>{"veth0"}));
}

TEST(HostCheck, PciDeviceInSysfs) {
  FakeHost host;
  EXPECT_TRUE(run(config_text("[1]", "127.0.0.1:9123", "3b:00.0"), kDataplaneHostChecks, host).r.ok());
  EXPECT_EQ(host.looked_up.front(), "0000:3b:00.0");  // the short form, with its domain
  const Checked c = run(config_text("[1]", "127.0.0.1:9123", "0000:5e:00.1"), kDataplaneHostChecks, host);
  ASSERT_EQ(c.errors.size(), 1u);
  EXPECT_EQ(c.errors[0],
            "t.toml:9:10: interface[0].device: no PCI device 0000:5e:00.1 on this host (/sys/bus/pci/devices/"
            "0000:5e:00.1 is absent)");
}

TEST(HostCheck, EachDaemonChecksWhatItUses) {
  FakeHost host;
  host.online = {0};
  host.bind_errno[{0x7F000001, 9123}] = EADDRNOTAVAIL;
  const std::string text = config_text("[1]", "127.0.0.1:9123", "net_af_packet0,iface=absent0");
  // The dataplane: lcores (exist, usable) and devices; not the stats port,
  // which the control plane may be holding while the dataplane restarts.
  Checked dp = run(text, kDataplaneHostChecks, host);
  EXPECT_EQ(dp.errors.size(), 2u);
  EXPECT_TRUE(host.bound.empty());
  // The control plane: lcores exist, the stats port; not the devices, which
  // live in the dataplane's namespace.
  host.looked_up.clear();
  Checked cp = run(text, kControlHostChecks, host);
  ASSERT_EQ(cp.errors.size(), 2u);
  EXPECT_NE(cp.errors[0].find("dataplane.worker_lcores[0]"), std::string::npos);
  EXPECT_NE(cp.errors[1].find("stats.listen"), std::string::npos);
  EXPECT_TRUE(host.looked_up.empty());
  EXPECT_TRUE(run(text, kCheckNone, host).r.ok());
}

// The real facts, where this host's answer is known whatever it runs on.
TEST(HostCheck, RealHostFacts) {
  const auto real = real_host_facts();
  const std::vector<int> online = real->online_cpus();
  ASSERT_FALSE(online.empty());
  EXPECT_EQ(real->try_pin(100000), EINVAL);
  EXPECT_TRUE(real->interface_exists("lo"));
  EXPECT_FALSE(real->interface_exists("ntp-absent-if"));
  EXPECT_FALSE(real->pci_device_exists("ffff:ff:1f.7"));
  // 192.0.2.0/24 (TEST-NET-1) is on no host; port 0 lets the kernel pick.
  EXPECT_EQ(real->try_bind_tcp(0xC0000201, 0), EADDRNOTAVAIL);
  EXPECT_EQ(real->try_bind_tcp(0x7F000001, 0), 0);
}

// The real file: with a control user, the file must be that user's, the
// one reader a 0600 file has besides root.
TEST(HostCheck, KeysFileMustBeTheControlUsersWhenThereIsOne) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to own a file for another user";
  char dir[] = "/tmp/ntp-test-keys-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/keys";
  const char* text = "1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n";
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, text, std::strlen(text)), static_cast<ssize_t>(std::strlen(text)));
  close(fd);
  const std::unique_ptr<HostFacts> host = real_host_facts();
  EXPECT_TRUE(host->keys_file(path, "").ok());
  const crypto::KeysFile root_owned = host->keys_file(path, "nobody");
  ASSERT_EQ(root_owned.errors.size(), 1u);
  EXPECT_EQ(root_owned.errors[0].to_string(),
            path + ": owned by uid 0, but ntp-control runs as nobody (channel.control_user, uid 65534) and could "
                   "not read it: chown nobody it");
  EXPECT_TRUE(root_owned.keys.empty());
  ASSERT_EQ(chown(path.c_str(), 65534, static_cast<gid_t>(-1)), 0);
  const crypto::KeysFile theirs = host->keys_file(path, "nobody");
  EXPECT_TRUE(theirs.ok()) << theirs.errors[0].to_string();
  EXPECT_EQ(theirs.keys.size(), 1u);
  std::remove(path.c_str());
  rmdir(dir);
}

TEST(HostCheck, KeysFileHoldsEveryKeyTheConfigNames) {
  const std::string text = config_text("[1]", "127.0.0.1:9123", "veth0") +
                           "[channel]\n"                                   // 15
                           "control_user = \"ntp-appliance\"\n"          // 16
                           "[auth]\n"                                      // 17
                           "keys_file = \"/etc/k\"\n"                      // 18
                           "trusted_keys = [1, 2]\n"                       // 19
                           "[[server]]\n"                                  // 20
                           "address = \"10.0.1.32\"\n"                     // 21
                           "key = 2\n";                                    // 22
  FakeHost host;
  host.key_texts["/etc/k"] = "1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n";
  Checked c = run(text, kControlHostChecks, host);
  EXPECT_EQ(c.errors, (std::vector<std::string>{
                          "t.toml:19:20: auth.trusted_keys[1]: key 2 is not in /etc/k (auth.keys_file)",
                          "t.toml:22:7: server[0].key: key 2 is not in /etc/k (auth.keys_file)"}));
  // The root dataplane may read the control plane's user's file.
  EXPECT_EQ(host.keys_owners, (std::vector<std::string>{"ntp-appliance"}));

  host.key_texts["/etc/k"] += "2 SHA256 HEX:000102030405060708090A0B0C0D0E0F\n";
  c = run(text, kDataplaneHostChecks, host);
  EXPECT_TRUE(c.errors.empty()) << c.errors[0];

  // The file's own errors, each with its line, at the key that names it.
  host.key_texts["/etc/k"] = "1 AES128 HEX:00\n2 MD5 HEX:000102030405060708090A0B0C0D0E0F\n";
  c = run(text, kControlHostChecks, host);
  ASSERT_FALSE(c.errors.empty());
  EXPECT_EQ(c.errors[0].rfind("t.toml:18:13: auth.keys_file: /etc/k:1: ", 0), 0u) << c.errors[0];
  host.key_texts["/etc/k"] = "1 AES128 HEX:2B7E151628AED2A6ABF7158809CF4F3C\n2 MD5 HEX:000102030405060708090A0B0C0D0E0F\n";
  c = run(text, kControlHostChecks, host);
  EXPECT_TRUE(c.errors.empty()) << c.errors[0];
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0].rfind("t.toml:18:13: auth.keys_file: /etc/k:2: ", 0), 0u) << c.warnings[0];

  host.key_texts.clear();
  c = run(text, kControlHostChecks, host);
  EXPECT_EQ(c.errors, (std::vector<std::string>{"t.toml:18:13: auth.keys_file: /etc/k: cannot open: No such file or directory"}));

  // No keys file: nothing read.
  host.keys_owners.clear();
  c = run(config_text("[1]", "127.0.0.1:9123", "veth0"), kControlHostChecks | kDataplaneHostChecks, host);
  EXPECT_TRUE(host.keys_owners.empty());
}

// Both daemons' --check read the NTS cookie keys file as a start would; its
// errors with their file:line. Absent, it is ntp-control's to make unless
// nts.cookie_rotate_s = 0 says it comes from elsewhere.
TEST(HostCheck, CookieKeysFileLoadsForBothDaemons) {
  const std::string base = config_text("[1]", "127.0.0.1:9123", "veth0") +
                           "[nts]\n"                                   // 15
                           "cookie_keys_file = \"/etc/ntskeys\"\n";  // 16
  FakeHost host;
  host.cookie_key_texts["/etc/ntskeys"] =
      "1 AES-SIV-CMAC-256 HEX:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f 1\n";
  Checked c = run(base, kDataplaneHostChecks, host);
  EXPECT_TRUE(c.errors.empty()) << c.errors[0];
  host.cookie_key_texts["/etc/ntskeys"] = "1 AES-SIV-CMAC-256 HEX:00 1\n";
  for (HostChecks daemon : {kDataplaneHostChecks, kControlHostChecks}) {
    c = run(base, daemon, host);
    ASSERT_EQ(c.errors.size(), 1u);
    EXPECT_EQ(c.errors[0].rfind("t.toml:16:20: nts.cookie_keys_file: /etc/ntskeys:1: ", 0), 0u) << c.errors[0];
  }
  host.cookie_key_texts.clear();
  c = run(base, kDataplaneHostChecks, host);
  EXPECT_TRUE(c.errors.empty()) << "absent: ntp-control makes it";
  c = run(base + "cookie_rotate_s = 0\n", kDataplaneHostChecks, host);
  EXPECT_EQ(c.errors, (std::vector<std::string>{
                          "t.toml:16:20: nts.cookie_keys_file: /etc/ntskeys: cannot open: No such file or directory"}));
}

}  // namespace
}  // namespace ntp::config
