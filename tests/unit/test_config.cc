// The configuration loader (config/config.h): the seed's DeviceC file,
// defaults, every kind of error with its exact file:line:column and key,
// and key_docs() against the parser so that the docs and the table cannot
// drift.
#include "config/config.h"
#include "tests/support/test_seed.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#ifndef SOURCE_ROOT
#define SOURCE_ROOT "."
#endif

namespace ntp::config {
namespace {

// Seeded randomness: the seed is printed, TEST_SEED=<n> replays a run.
uint64_t test_seed() { return ::ntp::test::seed(); }

std::string source_root() {
  if (const char* e = std::getenv("NTP_SOURCE_ROOT")) return e;
  return SOURCE_ROOT;
}

// A valid interface, appended to documents that test something else.
constexpr char kIface[] =
    "[[interface]]\n"
    "name = \"if0\"\n"
    "device = \"dev0\"\n"
    "address = \"10.0.1.31/24\"\n";

constexpr uint32_t kIfAddr = 0x0A00011F;  // 10.0.1.31

LoadResult P(std::string_view text) { return parse(text, "t.toml"); }

std::string dump(const LoadResult& r) {
  std::string s;
  for (const Error& e : r.errors) s += "  " + e.to_string() + "\n";
  return s;
}

// Exactly one error, at this place, for this key, with `part` in its message.
::testing::AssertionResult OneError(const LoadResult& r, int line, int column, const std::string& key,
                                    const std::string& part) {
  if (r.ok()) return ::testing::AssertionFailure() << "parsed without errors";
  if (r.errors.size() != 1) {
    return ::testing::AssertionFailure() << "expected 1 error, got " << r.errors.size() << ":\n" << dump(r);
  }
  const Error& e = r.errors[0];
  if (e.file != "t.toml" || e.line != line || e.column != column || e.key != key ||
      e.message.find(part) == std::string::npos) {
    return ::testing::AssertionFailure() << "got      " << e.to_string() << "\nexpected t.toml:" << line << ":"
                                         << column << ": " << key << ": ..." << part << "...";
  }
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------
// The seed

TEST(ConfigSeed, DeviceCParsesToTheSeedsValues) {
  const std::string path = source_root() + "/deploy/seed/DeviceC.toml";
  const LoadResult r = load(path);
  ASSERT_TRUE(r.ok()) << dump(r);
  const Config& c = *r.config;
  EXPECT_EQ(c.path, path);
  EXPECT_EQ(c.sysname, "DeviceC");                 // sysname DeviceC
  EXPECT_EQ(c.ntp.refclock_master, 2);             // ntp-service refclock-master 2
  ASSERT_EQ(c.interfaces.size(), 1u);              // interface GigabitEthernet0/1/0
  const Interface& i = c.interfaces[0];
  EXPECT_EQ(i.name, "GigabitEthernet0/1/0");
  EXPECT_EQ(i.device, "net_af_packet0,iface=dpC");
  EXPECT_EQ(i.ipv4, kIfAddr);                      //  ip address 10.0.1.31 255.255.255.0
  EXPECT_EQ(i.prefix_len, 24);
  EXPECT_FALSE(i.gateway.has_value());
  EXPECT_TRUE(i.ntp_server);                       // ntp-service server source-interface ...
  EXPECT_TRUE(c.servers.empty());
  EXPECT_TRUE(c.peers.empty());
  EXPECT_EQ(c.clock.source, ClockSource::kVirtual);
  EXPECT_EQ(c.clock.offset_ms, 0.0);
  EXPECT_EQ(c.clock.frequency_ppm, 0.0);
  EXPECT_EQ(c.ntp.holdover_s, 300.0);
  EXPECT_EQ(c.dataplane.main_lcore, 0);
  EXPECT_EQ(c.dataplane.worker_lcores, std::vector<int>{1});
  EXPECT_EQ(c.dataplane.eal_args, (std::vector<std::string>{"--no-huge", "--no-pci", "-m", "256"}));
  EXPECT_EQ(c.dataplane.idle_sleep_us, 50);
  EXPECT_EQ(c.shm_name, "/ntp-DeviceC");
  EXPECT_EQ(c.stats_listen, "127.0.0.1:9123");
}

// ---------------------------------------------------------------------------
// Defaults

TEST(ConfigDefaults, TableDefaultsEqualTheStructInitializers) {
  const LoadResult r = P(kIface);
  ASSERT_TRUE(r.ok()) << dump(r);
  Config want;
  want.path = "t.toml";
  want.shm_name = "/ntp-ntp";
  Interface i;
  i.name = "if0";
  i.device = "dev0";
  i.ipv4 = kIfAddr;
  i.prefix_len = 24;
  want.interfaces = {i};
  EXPECT_TRUE(*r.config == want);
}

TEST(ConfigDefaults, Values) {
  const LoadResult r =
      P(std::string(kIface) + "[[server]]\naddress = \"10.0.1.32\"\n[[peer]]\naddress = \"10.0.1.33\"\n");
  ASSERT_TRUE(r.ok()) << dump(r);
  const Config& c = *r.config;
  EXPECT_EQ(c.sysname, "ntp");
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.shm_name, "/ntp-ntp");
  EXPECT_EQ(c.stats_listen, "127.0.0.1:9123");
  EXPECT_EQ(c.clock.source, ClockSource::kSystem);
  EXPECT_EQ(c.clock.step_threshold_ms, 128.0);
  EXPECT_EQ(c.clock.panic_threshold_s, 1000.0);
  EXPECT_EQ(c.clock.max_frequency_ppm, 500.0);
  EXPECT_EQ(c.clock.drift_file, "");
  EXPECT_FALSE(c.clock.steer_system_clock);
  EXPECT_FALSE(c.ntp.refclock_master.has_value());
  EXPECT_EQ(c.ntp.holdover_s, 300.0);
  EXPECT_EQ(c.ntp.max_dynamic_sessions, 100);
  // Safe defaults: nobody may peer, strangers' mode-1 packets get nothing,
  // unlisted clients are served within the rate limit, no status for them.
  EXPECT_TRUE(c.access.peer.empty());
  EXPECT_TRUE(c.access.server.empty());
  EXPECT_TRUE(c.access.query.empty());
  EXPECT_EQ(c.access.default_class, "limited");
  EXPECT_FALSE(c.access.kod);
  EXPECT_FALSE(c.ntp.answer_unknown_peers);
  EXPECT_EQ(c.ntp.passive_minpoll_log2, 6);
  EXPECT_EQ(c.ntp.passive_maxpoll_log2, 10);
  EXPECT_EQ(c.ntp.passive_timeout_s, 900.0);
  EXPECT_EQ(c.ratelimit.interval_log2, 3);
  EXPECT_EQ(c.ratelimit.burst, 8);
  EXPECT_EQ(c.ratelimit.leak_log2, 2);
  EXPECT_EQ(c.ratelimit.clients, 1048576);
  EXPECT_EQ(c.ratelimit.max_replies_per_s, 0);
  EXPECT_EQ(c.stats.max_connections, 64);
  EXPECT_EQ(c.stats.request_timeout_s, 5.0);
  EXPECT_EQ(c.dataplane.main_lcore, 0);
  EXPECT_EQ(c.dataplane.worker_lcores, std::vector<int>{1});
  EXPECT_TRUE(c.dataplane.eal_args.empty());
  EXPECT_EQ(c.dataplane.burst_size, 32);
  EXPECT_EQ(c.dataplane.rx_descriptors, 1024);
  EXPECT_EQ(c.dataplane.tx_descriptors, 1024);
  EXPECT_EQ(c.dataplane.mbufs, 8191);
  EXPECT_EQ(c.dataplane.ring_size, 1024);
  EXPECT_EQ(c.dataplane.idle_sleep_us, 0);
  EXPECT_FALSE(c.interfaces[0].ntp_server);
  ASSERT_EQ(c.servers.size(), 1u);
  ASSERT_EQ(c.peers.size(), 1u);
  for (const Association* a : {&c.servers[0], &c.peers[0]}) {
    EXPECT_EQ(a->minpoll_log2, 6);
    EXPECT_EQ(a->maxpoll_log2, 10);
    EXPECT_FALSE(a->iburst);
    EXPECT_FALSE(a->burst);
    EXPECT_FALSE(a->prefer);
    EXPECT_EQ(a->version, 4);
    EXPECT_EQ(a->port, 123);
  }
  EXPECT_EQ(c.servers[0].address, 0x0A000120u);
  EXPECT_EQ(c.peers[0].address, 0x0A000121u);
}

TEST(ConfigDefaults, ShmNameFollowsSysname) {
  const LoadResult r = P(std::string("sysname = \"DeviceX\"\n") + kIface);
  ASSERT_TRUE(r.ok()) << dump(r);
  EXPECT_EQ(r.config->shm_name, "/ntp-DeviceX");
}

// ---------------------------------------------------------------------------
// Values

TEST(ConfigValues, AllKindsAreStored) {
  const LoadResult r = P(R"(sysname = "a-b_c.d"
log_level = "debug"
[clock]
source = "virtual"
offset_ms = 5
frequency_ppm = -12.5
drift_file = "/var/lib/ntp/drift"
[ntp]
answer_unknown_peers = true
passive_minpoll_log2 = 4
passive_timeout_s = 60
[access]
peer = ["10.0.0.0/8", "192.168.1.0/24"]
deny = ["10.9.0.0/16"]
default_class = "deny"
kod = true
[ratelimit]
interval_log2 = -2
burst = 16
min_interval_s = 0.5
clients = 4096
max_replies_per_s = 20000
[stats]
listen = "unix:/run/ntp-appliance/a.sock"
max_connections = 8
[dataplane]
main_lcore = 2
worker_lcores = [3, 4]
[[interface]]
name = "if0"
device = "0000:03:00.0"
address = "10.0.1.31/24"
gateway = "10.0.1.1"
[[server]]
address = "192.0.2.1"
minpoll = -4
maxpoll = 17
iburst = true
version = 3
port = 1123
)");
  ASSERT_TRUE(r.ok()) << dump(r);
  const Config& c = *r.config;
  EXPECT_EQ(c.sysname, "a-b_c.d");
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.clock.source, ClockSource::kVirtual);
  EXPECT_EQ(c.clock.offset_ms, 5.0);  // an integer for a float key
  EXPECT_EQ(c.clock.frequency_ppm, -12.5);
  EXPECT_EQ(c.clock.drift_file, "/var/lib/ntp/drift");
  EXPECT_EQ(c.access.peer,
            (std::vector<std::pair<uint32_t, uint8_t>>{{0x0A000000, 8}, {0xC0A80100, 24}}));
  EXPECT_EQ(c.access.deny, (std::vector<std::pair<uint32_t, uint8_t>>{{0x0A090000, 16}}));
  EXPECT_EQ(c.access.default_class, "deny");
  EXPECT_TRUE(c.access.kod);
  EXPECT_TRUE(c.ntp.answer_unknown_peers);
  EXPECT_EQ(c.ntp.passive_minpoll_log2, 4);
  EXPECT_EQ(c.ntp.passive_timeout_s, 60.0);
  EXPECT_EQ(c.ratelimit.interval_log2, -2);
  EXPECT_EQ(c.ratelimit.burst, 16);
  EXPECT_EQ(c.ratelimit.min_interval_s, 0.5);
  EXPECT_EQ(c.ratelimit.clients, 4096);
  EXPECT_EQ(c.ratelimit.max_replies_per_s, 20000);
  EXPECT_EQ(c.stats_listen, "unix:/run/ntp-appliance/a.sock");
  EXPECT_EQ(c.stats.max_connections, 8);
  EXPECT_EQ(c.dataplane.main_lcore, 2);
  EXPECT_EQ(c.dataplane.worker_lcores, (std::vector<int>{3, 4}));
  EXPECT_EQ(c.interfaces[0].gateway, std::optional<uint32_t>(0x0A000101));
  ASSERT_EQ(c.servers.size(), 1u);
  EXPECT_EQ(c.servers[0].address, 0xC0000201u);
  EXPECT_EQ(c.servers[0].minpoll_log2, -4);
  EXPECT_EQ(c.servers[0].maxpoll_log2, 17);
  EXPECT_TRUE(c.servers[0].iburst);
  EXPECT_EQ(c.servers[0].version, 3);
  EXPECT_EQ(c.servers[0].port, 1123);
}

TEST(ConfigValues, PointToPointAndHostPrefixesAreHostAddresses) {
  for (const char* a : {"10.0.1.0/31", "10.0.1.1/31", "10.0.1.255/32", "10.0.1.31/32", "10.0.0.1/30"}) {
    SCOPED_TRACE(a);
    const LoadResult r = P(std::string("[[interface]]\nname = \"i\"\ndevice = \"d\"\naddress = \"") + a + "\"\n");
    EXPECT_TRUE(r.ok()) << dump(r);
  }
}

TEST(ConfigValues, InlineArrayOfTablesIsTheSameAsDoubleBrackets) {
  const LoadResult r = P(R"(interface = [{name = "if0", device = "dev0", address = "10.0.1.31/24"}])");
  ASSERT_TRUE(r.ok()) << dump(r);
  EXPECT_EQ(r.config->interfaces[0].ipv4, kIfAddr);
}

// ---------------------------------------------------------------------------
// Errors: place, key and message

TEST(ConfigErrors, StratumOutOfRange) {
  EXPECT_TRUE(OneError(P(std::string("[ntp]\nrefclock_master = 16\n") + kIface), 2, 19, "ntp.refclock_master",
                       "stratum 16 out of range 1..15"));
  EXPECT_TRUE(OneError(P(std::string("[ntp]\nrefclock_master = 0\n") + kIface), 2, 19, "ntp.refclock_master",
                       "stratum 0 out of range 1..15"));
  const LoadResult ok = P(std::string("[ntp]\nrefclock_master = 15\n") + kIface);
  ASSERT_TRUE(ok.ok()) << dump(ok);
  EXPECT_EQ(ok.config->ntp.refclock_master, 15);
}

TEST(ConfigErrors, InterfaceAddresses) {
  struct Case {
    const char* address;
    const char* part;
  };
  const Case cases[] = {
      {"10.0.1.300/24", "\"10.0.1.300\" in \"10.0.1.300/24\" is not an IPv4 address"},
      {"10.0.1/24", "\"10.0.1\" in \"10.0.1/24\" is not an IPv4 address"},
      {"010.0.1.31/24", "is not an IPv4 address"},
      {"10.0.1.31/33", "prefix length \"33\" in \"10.0.1.31/33\" out of range 1..32"},
      {"10.0.1.31/0", "prefix length \"0\" in \"10.0.1.31/0\" out of range 1..32"},
      {"10.0.1.31/x", "prefix length \"x\""},
      {"10.0.1.31/", "prefix length \"\""},
      {"10.0.1.31", "\"10.0.1.31\" has no prefix length"},
      {"10.0.1.0/24", "10.0.1.0 is the network address of 10.0.1.0/24; use a host address, 10.0.1.1..10.0.1.254"},
      {"10.0.1.255/24", "10.0.1.255 is the broadcast address of 10.0.1.0/24"},
      {"127.0.0.1/8", "127.0.0.1 is a loopback address"},
      {"224.0.0.5/24", "224.0.0.5 is a multicast address"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.address);
    // "address = " is 10 characters: the string starts in column 11.
    EXPECT_TRUE(OneError(P(std::string("[[interface]]\nname = \"if0\"\ndevice = \"dev0\"\naddress = \"") + c.address +
                           "\"\n"),
                         4, 11, "interface[0].address", c.part));
  }
}

TEST(ConfigErrors, UnknownKeysAtEveryLevel) {
  EXPECT_TRUE(OneError(P(std::string("sysnam = \"x\"\n") + kIface), 1, 1, "sysnam",
                       "unknown key \"sysnam\" (did you mean \"sysname\"?)"));
  EXPECT_TRUE(OneError(P(std::string("refclock_master = 2\n") + kIface), 1, 1, "refclock_master",
                       "unknown key \"refclock_master\" (did you mean \"ntp.refclock_master\"?)"));
  EXPECT_TRUE(OneError(P(std::string("[clok]\n") + kIface), 1, 2, "clok",
                       "unknown key \"clok\" (did you mean \"clock\"?)"));
  EXPECT_TRUE(OneError(P(std::string("[clock]\nsorce = \"virtual\"\n") + kIface), 2, 1, "clock.sorce",
                       "unknown key \"sorce\" (did you mean \"source\"?)"));
  EXPECT_TRUE(OneError(P(std::string("[clock.extra]\nx = 1\n") + kIface), 1, 8, "clock.extra",
                       "unknown key \"extra\""));
  EXPECT_TRUE(OneError(P(std::string(kIface) +
                         "[[interface]]\n"           // 5
                         "name = \"if1\"\n"          // 6
                         "device = \"dev1\"\n"       // 7
                         "address = \"10.0.2.31/24\"\n"  // 8
                         "  ntp_sever = true\n"),    // 9
                       9, 3, "interface[1].ntp_sever", "unknown key \"ntp_sever\" (did you mean \"ntp_server\"?)"));
  EXPECT_TRUE(OneError(P(std::string(kIface) + "[[server]]\naddress = \"10.0.1.32\"\nminpol = 4\n"), 7, 1,
                       "server[0].minpol", "unknown key \"minpol\" (did you mean \"minpoll\"?)"));
  EXPECT_TRUE(OneError(P(std::string(kIface) + "[[peer]]\naddress = \"10.0.1.32\"\nxyzzy = 4\n"), 7, 1,
                       "peer[0].xyzzy", "unknown key \"xyzzy\""));
}

TEST(ConfigErrors, WrongType) {
  EXPECT_TRUE(OneError(P(std::string("[dataplane]\nburst_size = \"32\"\n") + kIface), 2, 14,
                       "dataplane.burst_size", "expected integer, got string"));
  EXPECT_TRUE(OneError(P(std::string("[dataplane]\nburst_size = 32.0\n") + kIface), 2, 14,
                       "dataplane.burst_size", "expected integer, got float"));
  EXPECT_TRUE(OneError(P(std::string("[ntp]\nholdover_s = \"60\"\n") + kIface), 2, 14, "ntp.holdover_s",
                       "expected float (or integer), got string"));
  EXPECT_TRUE(OneError(P(std::string("[dataplane]\nworker_lcores = [1, \"2\"]\n") + kIface), 2, 21,
                       "dataplane.worker_lcores[1]", "expected integer, got string"));
  EXPECT_TRUE(OneError(P(std::string("[dataplane]\neal_args = \"--no-huge\"\n") + kIface), 2, 12,
                       "dataplane.eal_args", "expected array of strings, got string"));
  EXPECT_TRUE(OneError(P(std::string("clock = 5\n") + kIface), 1, 9, "clock",
                       "expected a table ([clock]), got integer"));
  EXPECT_TRUE(OneError(P("[interface]\nname = \"if0\"\n"), 1, 1, "interface",
                       "expected an array of tables ([[interface]]), got table"));
  EXPECT_TRUE(OneError(P(std::string(kIface) + "[[server]]\naddress = \"10.0.1.32\"\niburst = \"yes\"\n"), 7, 10,
                       "server[0].iburst", "expected boolean, got string"));
  // Integers are accepted for float keys.
  const LoadResult r = P(std::string("[ntp]\nholdover_s = 60\n") + kIface);
  ASSERT_TRUE(r.ok()) << dump(r);
  EXPECT_EQ(r.config->ntp.holdover_s, 60.0);
}

TEST(ConfigErrors, DuplicateInterfaceNameAndDevice) {
  const std::string second = "[[interface]]\nname = \"if0\"\ndevice = \"dev1\"\naddress = \"10.0.2.31/24\"\n";
  EXPECT_TRUE(OneError(P(std::string(kIface) + second), 6, 8, "interface[1].name",
                       "\"if0\" is already used by interface[0].name"));
  const std::string dev = "[[interface]]\nname = \"if1\"\ndevice = \"dev0\"\naddress = \"10.0.2.31/24\"\n";
  // A second interface on a device is a VLAN of its port: untagged twice is one too many.
  EXPECT_TRUE(OneError(P(std::string(kIface) + dev), 5, 1, "interface[1].vlan",
                       "untagged on device \"dev0\" is already interface[0] (if0)'s"));
}

TEST(ConfigErrors, MinpollGreaterThanMaxpoll) {
  EXPECT_TRUE(OneError(P(std::string(kIface) + "[[server]]\naddress = \"10.0.1.32\"\nminpoll = 8\nmaxpoll = 7\n"), 7,
                       11, "server[0].minpoll", "minpoll 8 is greater than maxpoll 7"));
  // Against the default minpoll (6), reported where the file says maxpoll.
  EXPECT_TRUE(OneError(P(std::string(kIface) + "[[peer]]\naddress = \"10.0.1.32\"\nmaxpoll = 4\n"), 7, 11,
                       "peer[0].maxpoll", "minpoll 6 is greater than maxpoll 4"));
  EXPECT_TRUE(OneError(P(std::string(kIface) + "[[server]]\naddress = \"10.0.1.32\"\nminpoll = 18\n"), 7, 11,
                       "server[0].minpoll", "18 out of range -4..17"));
}

TEST(ConfigErrors, AssociationKeysNeedAKeysFileAndTrust) {
  const std::string server = "[[server]]\naddress = \"10.0.1.32\"\nkey = 1\n";  // key on the third line
  EXPECT_TRUE(OneError(P(std::string(kIface) + server), 7, 7, "server[0].key",
                       "key 1 needs auth.keys_file, the file that holds it"));
  const std::string keys = "[auth]\nkeys_file = \"/etc/ntp-appliance/keys\"\n";
  EXPECT_TRUE(OneError(P(keys + kIface + server), 9, 7, "server[0].key",
                       "key 1 is not in auth.trusted_keys (add it there: the vendor's `ntp-service reliable "
                       "authentication-keyid 1`)"));
  // The second [[peer]] is the one without trust; the first has none to need.
  const std::string trusted = "[auth]\nkeys_file = \"/etc/ntp-appliance/keys\"\ntrusted_keys = [1, 4294967295]\n";
  const LoadResult ok = P(trusted + kIface + server + "[[peer]]\naddress = \"10.0.1.33\"\nkey = 4294967295\n");
  ASSERT_TRUE(ok.ok()) << dump(ok);
  EXPECT_EQ(ok.config->servers[0].key_id, 1u);
  EXPECT_EQ(ok.config->peers[0].key_id, 4294967295u);
  EXPECT_EQ(ok.config->auth.trusted_keys, (std::vector<uint32_t>{1, 4294967295u}));
  EXPECT_TRUE(OneError(P(trusted + kIface + "[[peer]]\naddress = \"10.0.1.33\"\n[[peer]]\naddress = "
                                             "\"10.0.1.34\"\nkey = 2\n"),
                       12, 7, "peer[1].key",
                       "key 2 is not in auth.trusted_keys (add it there: the vendor's `ntp-service reliable "
                       "authentication-keyid 2`)"));
  EXPECT_TRUE(OneError(P(std::string(kIface) + "[[server]]\naddress = \"10.0.1.32\"\nkey = 4294967296\n"), 7, 7,
                       "server[0].key", "4294967296 out of range 0..4294967295"));
}

TEST(ConfigErrors, AtMostAsManyAssociationsAsTheDataplaneForwards) {
  std::string text = kIface;
  for (int i = 0; i < 200; i++) text += "[[server]]\naddress = \"10.1.0." + std::to_string(i + 1) + "\"\n";
  for (int i = 0; i < 56; i++) text += "[[peer]]\naddress = \"10.2.0." + std::to_string(i + 1) + "\"\n";
  const LoadResult ok = P(text);
  EXPECT_TRUE(ok.ok()) << dump(ok);
  text += "[[peer]]\naddress = \"10.2.1.1\"\n";  // the 257th, on line 4 + 2 * 256 + 1
  EXPECT_TRUE(OneError(P(text), 4 + 2 * 256 + 1, 1, "peer[56]",
                       "257 [[server]] and [[peer]] tables together: at most 256 (the dataplane's table of configured "
                       "associations)"));
}

TEST(ConfigErrors, AuthSwitchesNeedAKeysFile) {
  EXPECT_TRUE(OneError(P(std::string("[auth]\nauthenticate = true\n") + kIface), 2, 16, "auth.authenticate",
                       "auth.authenticate needs auth.keys_file, the keys it names"));
  EXPECT_TRUE(OneError(P(std::string("[auth]\ntrusted_keys = [3]\n") + kIface), 2, 16, "auth.trusted_keys",
                       "auth.trusted_keys needs auth.keys_file, the keys it names"));
  EXPECT_TRUE(OneError(P(std::string("[auth]\ntrusted_keys = [0]\nkeys_file = \"/k\"\n") + kIface), 2, 17,
                       "auth.trusted_keys[0]", "0 out of range 1..4294967295"));
  const LoadResult off = P(std::string("[auth]\nauthenticate = false\n") + kIface);
  EXPECT_TRUE(off.ok()) << dump(off);
}

TEST(ConfigErrors, AddressesAreUniqueAcrossInterfacesServersAndPeers) {
  EXPECT_TRUE(OneError(P(std::string(kIface) + "[[server]]\naddress = \"10.0.1.31\"\n"), 6, 11, "server[0].address",
                       "10.0.1.31 is already used by interface[0].address"));
  EXPECT_TRUE(OneError(P(std::string(kIface) + "[[peer]]\naddress = \"10.0.1.31\"\n"), 6, 11, "peer[0].address",
                       "10.0.1.31 is already used by interface[0].address"));
  // The peer comes first in the file; servers are checked first.
  EXPECT_TRUE(OneError(P(std::string(kIface) +
                         "[[peer]]\naddress = \"10.0.1.32\"\n"        // 5, 6
                         "[[server]]\naddress = \"10.0.1.32\"\n"),    // 7, 8
                       6, 11, "peer[0].address", "10.0.1.32 is already used by server[0].address"));
  EXPECT_TRUE(OneError(P(std::string(kIface) +
                         "[[server]]\naddress = \"10.0.1.32\"\n"      // 5, 6
                         "[[server]]\naddress = \"10.0.1.32\"\n"),    // 7, 8
                       8, 11, "server[1].address", "10.0.1.32 is already used by server[0].address"));
}

TEST(ConfigErrors, AssociationAddressMustBeUnicast) {
  const char* bad[][2] = {{"0.0.0.0", "unspecified"},
                          {"255.255.255.255", "limited broadcast"},
                          {"224.0.1.1", "multicast"},
                          {"239.255.255.250", "multicast"},
                          {"127.0.0.1", "loopback"},
                          {"10.0.1.256", "is not an IPv4 address"},
                          {"", "is not an IPv4 address"}};
  for (const auto& b : bad) {
    SCOPED_TRACE(b[0]);
    EXPECT_TRUE(OneError(P(std::string("[[server]]\naddress = \"") + b[0] + "\"\n" + kIface), 2, 11,
                         "server[0].address", b[1]));
  }
}

TEST(ConfigErrors, VirtualOnlyKeysWithSystemSource) {
  EXPECT_TRUE(OneError(P(std::string("[clock]\noffset_ms = 5\n") + kIface), 2, 13, "clock.offset_ms",
                       "only meaningful with clock.source = \"virtual\""));
  EXPECT_TRUE(OneError(P(std::string("[clock]\nsource = \"system\"\nfrequency_ppm = 1.5\n") + kIface), 3, 17,
                       "clock.frequency_ppm", "only meaningful with clock.source = \"virtual\""));
  const LoadResult r = P(std::string("[clock]\nsource = \"virtual\"\noffset_ms = 5\nfrequency_ppm = 1.5\n") + kIface);
  ASSERT_TRUE(r.ok()) << dump(r);
  EXPECT_EQ(r.config->clock.offset_ms, 5.0);
  EXPECT_EQ(r.config->clock.frequency_ppm, 1.5);
}

TEST(ConfigErrors, SyntaxErrorIsOneErrorAtTheParsersPosition) {
  // "[ntp" is columns 1..4; the parser trips over the newline in column 5.
  const LoadResult r = P("sysname = \"x\"\n[ntp\nrefclock_master = 2\n");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u) << dump(r);
  EXPECT_EQ(r.errors[0].line, 2);
  EXPECT_EQ(r.errors[0].column, 5);
  EXPECT_EQ(r.errors[0].key, "");
  EXPECT_NE(r.errors[0].message.find("expected ']'"), std::string::npos) << r.errors[0].message;
  // A key defined twice: toml++ reports it at the second value.
  const LoadResult twice = P("sysname = \"a\"\nsysname = \"b\"\n");
  ASSERT_EQ(twice.errors.size(), 1u) << dump(twice);
  EXPECT_EQ(twice.errors[0].line, 2);
  EXPECT_EQ(twice.errors[0].column, 11);
}

TEST(ConfigErrors, MissingRequiredKeyPointsAtItsTable) {
  EXPECT_TRUE(OneError(P("[[interface]]\nname = \"if0\"\ndevice = \"dev0\"\n"), 1, 1, "interface[0].address",
                       "required key is missing"));
  EXPECT_TRUE(OneError(P(std::string(kIface) + "\n[[interface]]\nname = \"if1\"\naddress = \"10.0.2.31/24\"\n"), 6,
                       1, "interface[1].device", "required key is missing"));
  EXPECT_TRUE(OneError(P(std::string(kIface) + "[[server]]\nminpoll = 4\n"), 5, 1, "server[0].address",
                       "required key is missing"));
}

TEST(ConfigErrors, InterfaceCount) {
  EXPECT_TRUE(OneError(P("sysname = \"x\"\n"), 1, 1, "interface", "at least 1 [[interface]] table required, found 0"));
  EXPECT_TRUE(OneError(P("interface = []\n"), 1, 13, "interface", "at least 1 [[interface]] table required"));
  std::string nine;
  for (int i = 0; i < 9; ++i) {
    nine += "[[interface]]\nname = \"if" + std::to_string(i) + "\"\ndevice = \"dev" + std::to_string(i) +
            "\"\naddress = \"10.0." + std::to_string(i) + ".1/24\"\n";
  }
  // Each table is 4 lines: the ninth starts on line 33.
  EXPECT_TRUE(OneError(P(nine), 33, 1, "interface[8]", "too many [[interface]] tables: at most 8"));
}

TEST(ConfigErrors, EveryErrorIsReportedInFileOrder) {
  const LoadResult r = P(R"([[interface]]
name = "if0"
device = "dev0"
address = "10.0.1.31/33"
[ntp]
refclock_master = 0
[dataplane]
burst_size = 0
)");
  ASSERT_EQ(r.errors.size(), 3u) << dump(r);
  EXPECT_EQ(r.errors[0].to_string(),
            "t.toml:4:11: interface[0].address: prefix length \"33\" in \"10.0.1.31/33\" out of range 1..32");
  EXPECT_EQ(r.errors[1].to_string(), "t.toml:6:19: ntp.refclock_master: stratum 0 out of range 1..15");
  EXPECT_EQ(r.errors[2].to_string(), "t.toml:8:14: dataplane.burst_size: 0 out of range 1..256");
}

// Two interfaces on one device (lines 1-4, then 5-9 with the second's keys).
std::string two_on_one(const std::string& first_extra, const std::string& second) {
  return "[[interface]]\nname = \"a\"\ndevice = \"dev0\"\naddress = \"10.0.1.31/24\"\n" + first_extra +
         "[[interface]]\nname = \"b\"\ndevice = \"dev0\"\n" + second;
}

TEST(ConfigErrors, InterfacesSharingADevice) {
  const LoadResult ok = P(two_on_one("vlan = 10\n", "vlan = 20\naddress = \"10.0.2.31/24\"\n"));
  ASSERT_TRUE(ok.ok()) << dump(ok);
  EXPECT_EQ(ok.config->interfaces[0].vlan, 10);
  EXPECT_EQ(ok.config->interfaces[1].vlan, 20);
  // Untagged and a VLAN on one device are fine too.
  EXPECT_TRUE(P(two_on_one("", "vlan = 20\naddress = \"10.0.2.31/24\"\n")).ok());
  EXPECT_TRUE(OneError(P(two_on_one("vlan = 10\n", "vlan = 10\naddress = \"10.0.2.31/24\"\n")), 9, 8,
                       "interface[1].vlan", "VLAN 10 on device \"dev0\" is already interface[0] (a)'s"));
  EXPECT_TRUE(OneError(P(two_on_one("", "address = \"10.0.2.31/24\"\n")), 5, 1, "interface[1].vlan",
                       "untagged on device \"dev0\" is already interface[0] (a)'s"));
  EXPECT_TRUE(OneError(P(two_on_one("vlan = 10\n", "vlan = 20\naddress = \"10.0.1.32/16\"\n")), 10, 11,
                       "interface[1].address", "subnet overlaps interface[0] (a)'s on the same device"));
  EXPECT_TRUE(OneError(P(two_on_one("vlan = 10\n", "vlan = 20\naddress = \"10.0.2.31/24\"\ntimestamping = \"software\"\n")),
                       11, 16, "interface[1].timestamping", "differs from interface[0] (a)'s on the same device"));
  EXPECT_TRUE(OneError(P(two_on_one("vlan = 10\nexception_path = true\n", "vlan = 20\naddress = \"10.0.2.31/24\"\n")),
                       6, 18, "interface[0].exception_path", "not on a device several interfaces share"));
  EXPECT_TRUE(OneError(P("[[interface]]\nname = \"a\"\ndevice = \"dev0\"\naddress = \"10.0.1.31/24\"\nvlan = 10\n"
                         "exception_path = true\n"),
                       6, 18, "interface[0].exception_path", "not on a VLAN interface"));
  EXPECT_TRUE(OneError(P(std::string(kIface) + "vlan = 4095\n"), 5, 8, "interface[0].vlan", "4095 out of range 0..4094"));
}

TEST(ConfigErrors, Lcores) {
  EXPECT_TRUE(OneError(P(std::string("[dataplane]\nworker_lcores = [2, 0]\n") + kIface), 2, 21,
                       "dataplane.worker_lcores[1]", "lcore 0 is the main lcore"));
  EXPECT_TRUE(OneError(P(std::string("[dataplane]\nmain_lcore = 1\n") + kIface), 2, 14, "dataplane.main_lcore",
                       "lcore 1 is also a worker lcore"));
  EXPECT_TRUE(OneError(P(std::string("[dataplane]\nworker_lcores = [1, 2, 1]\n") + kIface), 2, 24,
                       "dataplane.worker_lcores[2]", "duplicate entry 1 (also dataplane.worker_lcores[0])"));
  EXPECT_TRUE(OneError(P(std::string("[dataplane]\nworker_lcores = []\n") + kIface), 2, 17,
                       "dataplane.worker_lcores", "0 entries, allowed 1..32"));
  EXPECT_TRUE(OneError(P(std::string("[dataplane]\nworker_lcores = [1024]\n") + kIface), 2, 18,
                       "dataplane.worker_lcores[0]", "1024 out of range 0..1023"));
  EXPECT_TRUE(OneError(P(std::string("[dataplane]\nworker_lcores = [1, 2]\nworker_cpus = [1]\n") + kIface), 3, 15,
                       "dataplane.worker_cpus", "1 CPUs for 2 worker lcores"));
  const LoadResult two = P(std::string("[dataplane]\nworker_lcores = [1, 2]\nworker_cpus = [1, 1]\n") + kIface);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two.config->dataplane.worker_cpus, (std::vector<int>{1, 1}));
}

TEST(ConfigErrors, PowersOfTwo) {
  EXPECT_TRUE(OneError(P(std::string("[dataplane]\nrx_descriptors = 1000\n") + kIface), 2, 18,
                       "dataplane.rx_descriptors", "1000 is not a power of two"));
  EXPECT_TRUE(OneError(P(std::string("[dataplane]\nring_size = 131072\n") + kIface), 2, 13, "dataplane.ring_size",
                       "131072 out of range (power of two) 64..65536"));
}

TEST(ConfigErrors, Gateway) {
  const std::string head = "[[interface]]\nname = \"if0\"\ndevice = \"dev0\"\naddress = \"10.0.1.31/24\"\ngateway = ";
  EXPECT_TRUE(OneError(P(head + "\"10.0.2.1\"\n"), 5, 11, "interface[0].gateway",
                       "gateway 10.0.2.1 is outside the interface's subnet 10.0.1.0/24"));
  EXPECT_TRUE(OneError(P(head + "\"10.0.1.31\"\n"), 5, 11, "interface[0].gateway",
                       "gateway 10.0.1.31 is this interface's own address"));
  EXPECT_TRUE(OneError(P(head + "\"10.0.1.255\"\n"), 5, 11, "interface[0].gateway",
                       "gateway 10.0.1.255 is the broadcast address of 10.0.1.0/24"));
}

TEST(ConfigErrors, NtsKeServer) {
  // An NTS-KE server without what it needs: one error each, at ke_listen.
  const LoadResult none = P(std::string("[nts]\nke_listen = \"10.0.3.1:4460\"\n") + kIface);
  ASSERT_EQ(none.errors.size(), 3u);
  for (const char* need : {"nts.certificate", "nts.private_key", "nts.cookie_keys_file"}) {
    bool found = false;
    for (const auto& e : none.errors) found |= e.key == "nts.ke_listen" && e.message.find(need) != std::string::npos;
    EXPECT_TRUE(found) << need;
  }
  EXPECT_TRUE(OneError(P(std::string("[nts]\nke_listen = \"10.0.3.1\"\n") + kIface), 2, 13, "nts.ke_listen",
                       "is not a.b.c.d:port"));
  EXPECT_TRUE(OneError(P(std::string("[nts]\nke_listen = \"localhost:4460\"\n") + kIface), 2, 13,
                       "nts.ke_listen", "is not an IPv4 address"));
  EXPECT_TRUE(OneError(P(std::string("[nts]\nke_listen = \"10.0.3.1:0\"\n") + kIface), 2, 13, "nts.ke_listen",
                       "is not a number 1..65535"));
  const Config c = P(std::string("[nts]\ncookie_keys_file = \"/k\"\nke_listen = \"10.0.3.1:4460\"\n"
                                 "certificate = \"/c.pem\"\nprivate_key = \"/k.pem\"\nntp_server = \"10.0.1.31\"\n"
                                 "ntp_port = 1123\n") + kIface).config.value();
  EXPECT_EQ(c.nts.ke_listen, "10.0.3.1:4460");
  EXPECT_EQ(c.nts.ntp_server, std::optional<uint32_t>(0x0a00011f));
  EXPECT_EQ(c.nts.ntp_port, 1123);
  EXPECT_EQ(c.nts.ke_max_sessions, 64);
  EXPECT_EQ(c.nts.ke_timeout_s, 2);
}

TEST(ConfigErrors, NtsClient) {
  const std::string pin(64, 'a');
  const Config c = P(std::string("[[server]]\naddress = \"10.0.1.32\"\nnts = true\nnts_ke_port = 4461\n"
                                 "nts_ca_file = \"/ca.pem\"\nnts_name = \"time.example\"\nnts_pin_sha256 = \"") +
                     pin + "\"\n" + kIface)
                       .config.value();
  ASSERT_EQ(c.servers.size(), 1u);
  EXPECT_TRUE(c.servers[0].nts);
  EXPECT_EQ(c.servers[0].nts_ke_port, 4461);
  EXPECT_EQ(c.servers[0].nts_ca_file, "/ca.pem");
  EXPECT_EQ(c.servers[0].nts_name, "time.example");
  EXPECT_EQ(c.servers[0].nts_pin_sha256, pin);
  const std::string srv = "[[server]]\naddress = \"10.0.1.32\"\n";
  EXPECT_TRUE(OneError(P(srv + "nts_pin_sha256 = \"abc\"\nnts = true\n" + kIface), 3, 18,
                       "server[0].nts_pin_sha256", "has 3 characters, not 64 hexadecimal digits"));
  EXPECT_TRUE(OneError(P(srv + "nts_pin_sha256 = \"" + std::string(63, 'a') + "g\"\nnts = true\n" + kIface), 3,
                       18, "server[0].nts_pin_sha256", "not a hexadecimal digit"));
  EXPECT_TRUE(OneError(P(srv + "nts_ca_file = \"ca.pem\"\nnts = true\n" + kIface), 3, 15,
                       "server[0].nts_ca_file", "is not an absolute path"));
  // NTS with a key, or with an older version: refused at nts.
  const std::string keyed = "[auth]\nkeys_file = \"/k\"\ntrusted_keys = [1]\n" + srv;
  EXPECT_TRUE(OneError(P(keyed + "key = 1\nnts = true\n" + kIface), 7, 7, "server[0].nts", "choose one"));
  EXPECT_TRUE(OneError(P(srv + "version = 3\nnts = true\n" + kIface), 4, 7, "server[0].nts", "NTPv4's"));
  // Its options without it do nothing: refused, unless written at their default.
  EXPECT_TRUE(OneError(P(srv + "nts_ke_port = 4461\n" + kIface), 3, 15, "server[0].nts_ke_port",
                       "has no effect without nts = true"));
  EXPECT_TRUE(OneError(P(srv + "nts_name = \"a.example\"\n" + kIface), 3, 12, "server[0].nts_name",
                       "has no effect without nts = true"));
  EXPECT_TRUE(P(srv + "nts_ke_port = 4460\nnts_ca_file = \"\"\n" + kIface).ok());
  EXPECT_TRUE(OneError(P(srv + "version = 3\nxleave = true\n" + kIface), 4, 10, "server[0].xleave", "NTPv4's"));
  EXPECT_TRUE(P(srv + "xleave = true\n" + kIface).config.value().servers[0].xleave);
  // A peer takes it too (symmetric interleaved mode), under the same rule.
  const std::string peer = "[[peer]]\naddress = \"10.0.1.33\"\n";
  EXPECT_TRUE(P(peer + "xleave = true\n" + kIface).config.value().peers[0].xleave);
  EXPECT_TRUE(OneError(P(peer + "version = 3\nxleave = true\n" + kIface), 4, 10, "peer[0].xleave", "NTPv4's"));
  // A peer has no NTS (RFC 8915 covers client-server mode only).
  EXPECT_FALSE(P("[[peer]]\naddress = \"10.0.1.32\"\nnts = true\n" + std::string(kIface)).ok());
}

TEST(ConfigErrors, PhcSource) {
  EXPECT_TRUE(OneError(P(std::string("[clock]\nsource = \"phc\"\n") + kIface), 2, 10, "clock.source",
                       "source = \"phc\" needs clock.phc"));
  EXPECT_TRUE(OneError(P(std::string("[clock]\nsource = \"phc\"\nphc = \"/dev/ptp0\"\nsteer_phc = \"/dev/ptp0\"\n") +
                         kIface),
                       4, 13, "clock.steer_phc", "is the clock source itself"));
  Config c = P(std::string("[clock]\nsource = \"phc\"\nphc = \"/dev/ptp1\"\nphc_utc_offset_s = 0\n"
                           "steer_phc = \"/dev/ptp0\"\n") + kIface).config.value();
  EXPECT_EQ(c.clock.source, ClockSource::kPhc);
  EXPECT_EQ(c.clock.phc, "/dev/ptp1");
  EXPECT_EQ(c.clock.phc_utc_offset_s, 0);
  EXPECT_EQ(c.clock.steer_phc, "/dev/ptp0");
  // phc only with source = "phc"
  EXPECT_TRUE(OneError(P(std::string("[clock]\nphc = \"/dev/ptp0\"\n") + kIface), 2, 7, "clock.phc",
                       "source"));
}

TEST(ConfigErrors, Strings) {
  EXPECT_TRUE(OneError(P(std::string("sysname = \"Device C\"\n") + kIface), 1, 11, "sysname",
                       "\"Device C\" contains \" \"; allowed: 1..63 of A-Z a-z 0-9 . _ -"));
  EXPECT_TRUE(OneError(P(std::string("sysname = \"\"\n") + kIface), 1, 11, "sysname", "empty string"));
  EXPECT_TRUE(OneError(P("sysname = \"" + std::string(64, 'a') + "\"\n" + kIface), 1, 11, "sysname",
                       "is too long (64 characters, at most 63)"));
  EXPECT_TRUE(OneError(P(std::string("log_level = \"warning\"\n") + kIface), 1, 13, "log_level",
                       "\"warning\" is not one of \"trace\", \"debug\", \"info\", \"warn\", \"error\" (did you "
                       "mean \"warn\"?)"));
  EXPECT_TRUE(OneError(P(std::string("[channel]\nshm_name = \"ntp\"\n") + kIface), 2, 12, "channel.shm_name",
                       "must start with \"/\""));
  EXPECT_TRUE(OneError(P(std::string("[channel]\nshm_name = \"/a/b\"\n") + kIface), 2, 12, "channel.shm_name",
                       "\"/a/b\" contains \"/\""));
  EXPECT_TRUE(OneError(P(std::string("[stats]\nlisten = \"localhost:0\"\n") + kIface), 2, 10, "stats.listen",
                       "port \"0\" in \"localhost:0\" is not a number 1..65535"));
  EXPECT_TRUE(OneError(P(std::string("[stats]\nlisten = \"example.com:80\"\n") + kIface), 2, 10, "stats.listen",
                       "is neither an IPv4 address a.b.c.d nor \"localhost\""));
  EXPECT_TRUE(OneError(P(std::string("[clock]\ndrift_file = \"drift\"\n") + kIface), 2, 14, "clock.drift_file",
                       "\"drift\" is not an absolute path"));
  EXPECT_TRUE(OneError(P(std::string("[access]\npeer = [\"10.0.1.31/24\"]\n") + kIface), 2, 9,
                       "access.peer[0]", "host bits set in \"10.0.1.31/24\" (did you mean \"10.0.1.0/24\"?)"));
  EXPECT_TRUE(OneError(P(std::string("[ntp]\npeer_allow = [\"10.0.0.0/8\"]\n") + kIface), 2, 1,
                       "ntp.peer_allow", "now access.peer, and its default is nobody"));
  EXPECT_TRUE(OneError(P(std::string("[access]\ndefault_class = \"peer\"\n") + kIface), 2, 17,
                       "access.default_class", "\"peer\" is not one of"));
  EXPECT_TRUE(OneError(P(std::string("[ratelimit]\nclients = 5000\n") + kIface), 2, 11, "ratelimit.clients",
                       "power of two"));
  EXPECT_TRUE(OneError(P(std::string("[ntp]\npassive_minpoll_log2 = 8\npassive_maxpoll_log2 = 7\n") + kIface), 2,
                       24, "ntp.passive_minpoll_log2", "passive_minpoll_log2 8 is greater than passive_maxpoll_log2 7"));
  EXPECT_TRUE(OneError(P(std::string("[stats]\nlisten = \"unix:run/x.sock\"\n") + kIface), 2, 10, "stats.listen",
                       "is not absolute"));
  EXPECT_TRUE(OneError(P("[[interface]]\nname = \"a\\u0000b\"\ndevice = \"d\"\naddress = \"10.0.1.31/24\"\n"), 2, 8,
                       "interface[0].name", "contains a control character (0x00)"));
}

TEST(ConfigErrors, ToStringFormat) {
  EXPECT_EQ((Error{"f.toml", 3, 7, "clock.offset_ms", "msg"}.to_string()), "f.toml:3:7: clock.offset_ms: msg");
  EXPECT_EQ((Error{"f.toml", 3, 7, "", "msg"}.to_string()), "f.toml:3:7: msg");
  EXPECT_EQ((Error{"f.toml", 0, 0, "", "msg"}.to_string()), "f.toml: msg");
  const LoadResult r = P(std::string("[ntp]\nrefclock_master = 16\n") + kIface);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].to_string(), "t.toml:2:19: ntp.refclock_master: stratum 16 out of range 1..15");
}

TEST(ConfigErrors, LoadMissingFileNamesFileAndReason) {
  const std::string path = "/nonexistent-dir-for-test_config/ntp.toml";
  const LoadResult r = load(path);
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].file, path);
  EXPECT_EQ(r.errors[0].line, 0);
  EXPECT_EQ(r.errors[0].to_string(), path + ": cannot read: " + std::strerror(ENOENT));
}

// ---------------------------------------------------------------------------
// Robustness: the parser is fuzzed later; these must not crash.

TEST(ConfigRobustness, DeepNestingIsRefusedNotACrash) {
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "a.";
  deep += "a = 1\n";
  const LoadResult r = P(deep);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 1);
  EXPECT_EQ(r.errors[0].column, 2 * kMaxDotsPerLine + 2);  // the first '.' too many
  EXPECT_NE(r.errors[0].message.find("nested too deeply"), std::string::npos);
  EXPECT_FALSE(P("x = " + std::string(100000, '[')).ok());
  std::string inl = "x = ";
  for (int i = 0; i < 10000; ++i) inl += "{a = ";
  EXPECT_FALSE(P(inl).ok());
}

TEST(ConfigRobustness, TooLargeIsRefused) {
  const LoadResult r = P(std::string(kMaxFileBytes + 1, '#'));
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].message.find("file too large"), std::string::npos);
}

TEST(ConfigRobustness, MutatedSeedNeverCrashes) {
  SCOPED_TRACE(::testing::Message() << "TEST_SEED=" << test_seed());
  std::FILE* f = std::fopen((source_root() + "/deploy/seed/DeviceC.toml").c_str(), "rb");
  ASSERT_NE(f, nullptr);
  std::string seed;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) seed.append(buf, n);
  std::fclose(f);
  std::mt19937_64 rng(test_seed());
  const char alphabet[] = "[]{}=.,\"'#\n 0123456789-+_abcxyz\\\t\x00\xff\xc3";
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s = seed;
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits && !s.empty(); ++e) {
      const size_t at = rng() % s.size();
      const char c = alphabet[rng() % (sizeof alphabet - 1)];
      switch (rng() % 3) {
        case 0: s[at] = c; break;
        case 1: s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), c); break;
        default: s.erase(at, 1 + rng() % 16); break;
      }
    }
    const LoadResult r = P(s);
    ASSERT_NE(r.ok(), !r.errors.empty()) << s;
    for (const Error& e : r.errors) {
      ASSERT_EQ(e.file, "t.toml");
      ASSERT_FALSE(e.message.empty());
    }
  }
}

// ---------------------------------------------------------------------------
// key_docs() against the parser

struct DocKey {
  std::string section;  // "", "clock", "interface"
  bool array = false;
  std::string field;
};

DocKey split(const std::string& key) {
  DocKey k;
  if (const size_t p = key.find("[]."); p != std::string::npos) {
    k.section = key.substr(0, p);
    k.array = true;
    k.field = key.substr(p + 3);
  } else if (const size_t d = key.find('.'); d != std::string::npos) {
    k.section = key.substr(0, d);
    k.field = key.substr(d + 1);
  } else {
    k.field = key;
  }
  return k;
}

// A valid document in which `key = value` is written in its place
// (value empty: the key is left out).
std::string document_with(const KeyDoc& d, const std::string& value) {
  const DocKey k = split(d.key);
  std::string doc;
  if (k.section.empty()) {
    if (!value.empty()) doc += k.field + " = " + value + "\n";
  } else if (!k.array) {
    doc += "[" + k.section + "]\n";
    if (!d.only_with.empty()) doc += d.only_with.substr(k.section.size() + 1) + "\n";
    if (!value.empty()) doc += k.field + " = " + value + "\n";
  } else {
    doc += "[[" + k.section + "]]\n";
    for (const KeyDoc& other : key_docs()) {  // the table's other required keys
      const DocKey o = split(other.key);
      if (other.required && o.array && o.section == k.section && o.field != k.field) {
        doc += o.field + " = " + other.example + "\n";
      }
    }
    if (!value.empty()) doc += k.field + " = " + value + "\n";
  }
  if (k.section != "interface") doc += kIface;
  return doc;
}

TEST(ConfigKeyDocs, RowsAreCompleteAndUnique) {
  std::set<std::string> keys;
  for (const KeyDoc& d : key_docs()) {
    SCOPED_TRACE(d.key);
    EXPECT_TRUE(keys.insert(d.key).second) << "duplicate row";
    EXPECT_FALSE(d.type.empty());
    EXPECT_FALSE(d.help.empty());
    if (d.type == "array of tables") continue;
    EXPECT_FALSE(d.range.empty() && d.type != "boolean");
    EXPECT_FALSE(d.example.empty());
    if (d.required) {
      EXPECT_TRUE(d.def.empty());
    }
  }
  // Every key of config.h's structs, and the arrays of tables.
  for (const char* k : {"sysname", "log_level", "clock.source", "clock.offset_ms", "clock.frequency_ppm",
                        "clock.step_threshold_ms", "clock.panic_threshold_s", "clock.max_frequency_ppm",
                        "clock.drift_file", "clock.steer_system_clock", "ntp.refclock_master", "ntp.holdover_s",
                        "ntp.max_dynamic_sessions", "ntp.answer_unknown_peers", "ntp.interleaved", "ntp.passive_minpoll_log2",
                        "ntp.passive_maxpoll_log2", "ntp.passive_timeout_s", "access.peer", "access.server",
                        "access.synchronization", "access.limited", "access.query", "access.deny",
                        "access.default_class", "access.kod", "ratelimit.interval_log2", "ratelimit.burst",
                        "ratelimit.leak_log2", "ratelimit.min_interval_s", "ratelimit.clients",
                        "ratelimit.max_replies_per_s", "stats.max_connections", "stats.request_timeout_s", "channel.control_user",
                        "dataplane.main_lcore", "dataplane.worker_lcores", "dataplane.eal_args",
                        "dataplane.burst_size", "dataplane.rx_descriptors", "dataplane.tx_descriptors",
                        "dataplane.mbufs", "dataplane.ring_size", "dataplane.idle_sleep_us", "channel.shm_name",
                        "stats.listen", "interface", "interface[].name", "interface[].device",
                        "interface[].address", "interface[].gateway", "interface[].ntp_server",
                        "interface[].timestamping", "interface[].tx_compensation_ns",
                        "interface[].emulated_nic_clock", "interface[].emulated_nic_hz", "interface[].emulated_nic_bits",
                        "interface[].emulated_nic_offset_ns", "interface[].emulated_nic_frequency_ppm",
                        "interface[].emulated_nic_read_jitter_ns", "clock.phc", "clock.phc_utc_offset_s",
                        "clock.steer_phc", "server",
                        "server[].address", "server[].minpoll", "server[].maxpoll", "server[].iburst",
                        "server[].burst", "server[].prefer", "server[].version", "server[].port", "server[].xleave", "server[].nts",
                        "server[].nts_ke_port", "server[].nts_ca_file", "server[].nts_pin_sha256",
                        "server[].nts_name", "peer",
                        "peer[].address", "peer[].minpoll", "peer[].maxpoll", "peer[].iburst", "peer[].burst",
                        "peer[].prefer", "peer[].version", "peer[].port", "peer[].xleave"}) {
    EXPECT_EQ(keys.count(k), 1u) << k;
  }
  EXPECT_EQ(keys.size(), 112u);
  EXPECT_EQ(key_docs().front().key, "sysname");  // table order: top level first
}

TEST(ConfigKeyDocs, EveryKeyAcceptsItsDocumentedDefaultWrittenExplicitly) {
  for (const KeyDoc& d : key_docs()) {
    if (d.type == "array of tables") continue;
    SCOPED_TRACE(d.key);
    const std::string value = d.def.empty() ? d.example : d.def;
    const std::string doc = document_with(d, value);
    const LoadResult with = P(doc);
    ASSERT_TRUE(with.ok()) << doc << dump(with);
    if (d.def.empty()) continue;
    // The documented default is the default: leaving the key out is the same.
    const std::string without_doc = document_with(d, "");
    const LoadResult without = P(without_doc);
    ASSERT_TRUE(without.ok()) << without_doc << dump(without);
    EXPECT_TRUE(*with.config == *without.config) << doc;
  }
}

TEST(ConfigKeyDocs, EveryKeyRejectsTheWrongTypeNamingItsType) {
  for (const KeyDoc& d : key_docs()) {
    if (d.type == "array of tables") continue;
    SCOPED_TRACE(d.key);
    const LoadResult r = P(document_with(d, "1979-05-27"));  // a date: wrong for every key
    ASSERT_FALSE(r.ok());
    const DocKey k = split(d.key);
    const std::string key = k.array ? k.section + "[0]." + k.field : d.key;
    bool found = false;
    for (const Error& e : r.errors) {
      found |= e.key == key && e.message.find("expected " + d.type) == 0 &&
               e.message.find("got date") != std::string::npos;
    }
    EXPECT_TRUE(found) << dump(r);
  }
}

TEST(ConfigKeyDocs, UnknownKeyInEverySection) {
  for (const char* section : {"clock", "ntp", "dataplane", "channel", "stats"}) {
    SCOPED_TRACE(section);
    EXPECT_TRUE(OneError(P(std::string("[") + section + "]\nbogus_key = 1\n" + kIface), 2, 1,
                         std::string(section) + ".bogus_key", "unknown key \"bogus_key\""));
  }
}

// The README's configuration reference documents every key of the table, in
// its section, so the documentation cannot fall behind the code.
TEST(ConfigKeyDocs, ReadmeDocumentsEveryKey) {
  std::FILE* f = std::fopen((source_root() + "/README.md").c_str(), "r");
  ASSERT_NE(f, nullptr) << "cannot read README.md under " << source_root();
  std::string readme;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) readme.append(buf, n);
  std::fclose(f);
  const size_t ref = readme.find("## Configuration reference");
  ASSERT_NE(ref, std::string::npos);
  for (const auto& k : key_docs()) {
    // "clock.offset_ms" is documented as `offset_ms` under "#### `[clock]`",
    // "interface[].address" as `address` under "[[interface]]".
    std::string section, name = k.key;
    const size_t dot = k.key.rfind('.');
    if (dot != std::string::npos) {
      section = k.key.substr(0, dot);
      name = k.key.substr(dot + 1);
    }
    if (k.type.rfind("array of tables", 0) == 0) continue;  // the table itself
    size_t from = ref;
    if (!section.empty()) {
      const bool array = section.size() > 2 && section.substr(section.size() - 2) == "[]";
      const std::string heading =
          array ? "[[" + section.substr(0, section.size() - 2) + "]]" : "`[" + section + "]`";
      from = readme.find(heading, ref);
      ASSERT_NE(from, std::string::npos) << "README has no section " << heading << " for " << k.key;
    }
    EXPECT_NE(readme.find("| `" + name + "` |", from), std::string::npos) << "README does not document " << k.key;
  }
}

}  // namespace
}  // namespace ntp::config
