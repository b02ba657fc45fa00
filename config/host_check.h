// What a start needs from the host beyond a valid file: lcores that exist
// and may be used, a stats address that can be bound, devices that exist.
// `--check` and a real start run the same checks, so a file that passes
// `--check` does not fail later with EAL's usage text or a dead stats port.
//
// Each daemon checks what it uses, where it runs (the two may live in
// different network namespaces, and only one of them opens each resource):
//   ntp-dataplane: lcores exist and this process may run on them (EAL pins
//                  its threads there), the interfaces' devices exist (in
//                  its own network namespace, where it opens them);
//   ntp-control:   the lcores exist on the host (a host-wide fact), and
//                  stats.listen can be bound (in its namespace, where it listens).
// The checks are pure over HostFacts; real_host_facts() asks the kernel.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "crypto/keys.h"
#include "crypto/nts_keys.h"

namespace ntp::config {

// Which checks a program runs (a bit set).
enum HostCheck : unsigned {
  kCheckNone = 0,
  kCheckLcoresExist = 1u << 0,   // every lcore is an online CPU of the host
  kCheckLcoresUsable = 1u << 1,  // ... and this process may be pinned to it
  kCheckStatsListen = 1u << 2,   // stats.listen can be bound
  kCheckDevices = 1u << 3,       // interface[].device names something present
  kCheckKeys = 1u << 4,          // auth.keys_file loads (owner, mode, every line) and holds every key named
  kCheckCookieKeys = 1u << 5,    // nts.cookie_keys_file loads (owner, mode, every line)
};
using HostChecks = unsigned;
inline constexpr HostChecks kDataplaneHostChecks =
    kCheckLcoresExist | kCheckLcoresUsable | kCheckDevices | kCheckKeys | kCheckCookieKeys;
inline constexpr HostChecks kControlHostChecks =
    kCheckLcoresExist | kCheckStatsListen | kCheckKeys | kCheckCookieKeys;

// The host as the checks see it; real_host_facts() is the kernel's answer,
// tests inject their own.
class HostFacts {
 public:
  virtual ~HostFacts() = default;
  // The online CPUs (/sys/devices/system/cpu/online), ascending; empty when unknown.
  virtual std::vector<int> online_cpus() const = 0;
  // 0 when this process may run on `cpu`, else an errno (EINVAL: outside its cpuset).
  virtual int try_pin(int cpu) const = 0;
  // 0 when a TCP socket binds to ipv4:port (host order), else the errno.
  virtual int try_bind_tcp(uint32_t ipv4, uint16_t port) const = 0;
  // A network interface of this namespace (if_nametoindex).
  virtual bool interface_exists(const std::string& name) const = 0;
  // /sys/bus/pci/devices/<domain:bus:dev.fn> exists.
  virtual bool pci_device_exists(const std::string& address) const = 0;
  // A file this process can read (a pcap vdev's rx_pcap=).
  virtual bool file_readable(const std::string& path) const = 0;
  // What lstat(2) says of path (not following a final symlink). Not pure:
  // the kernel's answer unless a test injects its own.
  struct PathFacts {
    bool exists = false;
    bool directory = false, symlink = false, socket = false;
    uint32_t mode = 0;  // permission bits incl. the sticky bit (st_mode & 07777)
  };
  virtual PathFacts lstat_path(const std::string& path) const;
  // The keys file as crypto::load_keys reads it; also_owner_user (may be
  // empty) may own it besides us (the root dataplane reads ntp-control's
  // file). Not pure unless a test injects its own.
  virtual crypto::KeysFile keys_file(const std::string& path, const std::string& also_owner_user) const;
  // The NTS cookie keys file as crypto::load_cookie_keys reads it (the same
  // owners). Not pure unless a test injects its own.
  virtual crypto::CookieKeysFile cookie_keys_file(const std::string& path, const std::string& also_owner_user) const;
};
std::unique_ptr<HostFacts> real_host_facts();

// Where each key's value stands in the file ("dataplane.worker_lcores[1]",
// "interface[0].device", "stats.listen"): the parsed Config keeps values
// only, so the file's text is read again for the positions.
class KeyLocations {
 public:
  struct Where {
    int line = 0, column = 0;
  };
  // From TOML text already validated by parse(); unparsable text gives no locations.
  static KeyLocations from_text(std::string_view text, std::string_view path);
  static KeyLocations from_file(const std::string& path);
  // The value's position; the array's when the file lacks the element;
  // {0, 0} when the key is absent (a default).
  Where find(const std::string& key) const;
  void set(const std::string& key, Where w) { at_[key] = w; }

 private:
  std::map<std::string, Where> at_;
};

// "0-3,8,10-11" (the kernel's CPU list format) -> {0,1,2,3,8,10,11};
// nothing when malformed.
std::optional<std::vector<int>> parse_cpu_list(std::string_view s);
// The same list, compressed: {0,1,2,3,8} -> "0-3,8".
std::string format_cpu_list(const std::vector<int>& cpus);

// A PCI address as DPDK's -a takes it ("0000:3b:00.0" or "3b:00.0").
bool is_pci_address(std::string_view device);

// Why a Unix socket for the stats endpoint cannot be made at `path` ("" when
// it can): its directory must exist, be a directory and no symlink, and not
// be writable by others unless sticky (else anyone could put their own
// socket there for ntpctl to talk to); the path itself, when present, must
// be a socket (a stale one is replaced), not a symlink or another file.
std::string unix_socket_problem(const std::string& path, const HostFacts& host);

struct HostCheckResult {
  std::vector<Error> errors;    // a start would fail: refuse
  std::vector<Error> warnings;  // worth saying, not a reason to refuse
  bool ok() const { return errors.empty(); }
};

// Runs `checks` for cfg. `starting` is false for --check: then a stats
// address merely in use (by the running instance, most likely) is a warning,
// since a start after that instance stops can bind it.
HostCheckResult check_host(const Config& cfg, const KeyLocations& where, HostChecks checks, const HostFacts& host,
                           bool starting);

}  // namespace ntp::config
