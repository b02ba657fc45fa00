#include "config/host_check.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <pwd.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

#include "proto/inet.h"

namespace ntp::config {

// ===========================================================================
// Key locations

namespace {

void record(const toml::node& n, const std::string& key, std::map<std::string, KeyLocations::Where>& out) {
  const auto& b = n.source().begin;
  out[key] = {static_cast<int>(b.line), static_cast<int>(b.column)};
  if (const toml::table* t = n.as_table()) {
    for (const auto& [k, v] : *t) record(v, key.empty() ? std::string(k.str()) : key + "." + std::string(k.str()), out);
  } else if (const toml::array* a = n.as_array()) {
    for (size_t i = 0; i < a->size(); i++) record((*a)[i], key + "[" + std::to_string(i) + "]", out);
  }
}

}  // namespace

KeyLocations KeyLocations::from_text(std::string_view text, std::string_view path) {
  KeyLocations loc;
  try {
    const toml::table root = toml::parse(text, path);
    record(root, "", loc.at_);
    loc.at_.erase("");
  } catch (...) {
    // parse() has already accepted this text; if it cannot be read again
    // the errors simply carry no position.
  }
  return loc;
}

KeyLocations KeyLocations::from_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return from_text(ss.str(), path);
}

KeyLocations::Where KeyLocations::find(const std::string& key) const {
  std::string k = key;
  while (!k.empty()) {
    if (auto it = at_.find(k); it != at_.end()) return it->second;
    // An element the file lacks: its array. Not further up: a key left at
    // its default has no place in the file to point at.
    const size_t open = k.rfind('[');
    if (k.back() != ']' || open == std::string::npos) break;
    k.resize(open);
  }
  return {};
}

// ===========================================================================
// Pure helpers

std::optional<std::vector<int>> parse_cpu_list(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  std::vector<int> out;
  if (s.empty()) return out;
  auto number = [](std::string_view t, int& v) {
    const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    return ec == std::errc() && p == t.data() + t.size() && !t.empty() && v >= 0;
  };
  while (true) {
    const size_t comma = s.find(',');
    const std::string_view part = s.substr(0, comma);
    const size_t dash = part.find('-');
    int lo = 0, hi = 0;
    if (dash == std::string_view::npos) {
      if (!number(part, lo)) return std::nullopt;
      hi = lo;
    } else if (!number(part.substr(0, dash), lo) || !number(part.substr(dash + 1), hi) || hi < lo ||
               hi - lo > 65535) {
      return std::nullopt;
    }
    for (int c = lo; c <= hi; c++) out.push_back(c);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string format_cpu_list(const std::vector<int>& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) j++;
    if (!out.empty()) out.push_back(',');
    out.append(std::to_string(cpus[i]));
    if (j > i) out.append(1, '-').append(std::to_string(cpus[j]));
    i = j + 1;
  }
  return out;
}

bool is_pci_address(std::string_view d) {
  // [dddd:]bb:dd.f in hex, the function 0..7.
  auto hex = [&](size_t at, size_t n) {
    for (size_t i = at; i < at + n; i++)
      if (!std::isxdigit(static_cast<unsigned char>(d[i]))) return false;
    return true;
  };
  size_t o = 0;
  if (d.size() == 12) {
    if (!hex(0, 4) || d[4] != ':') return false;
    o = 5;
  } else if (d.size() != 7) {
    return false;
  }
  return hex(o, 2) && d[o + 2] == ':' && hex(o + 3, 2) && d[o + 5] == '.' && d[o + 6] >= '0' && d[o + 6] <= '7';
}

namespace {

std::string errno_text(int e) { return std::strerror(e); }

// ===========================================================================
// The checks

struct Checker {
  const Config& cfg;
  const KeyLocations& where;
  const HostFacts& host;
  HostCheckResult& out;

  void add(std::vector<Error>& list, const std::string& key, std::string message) {
    const KeyLocations::Where w = where.find(key);
    list.push_back(Error{cfg.path, w.line, w.column, key, std::move(message)});
  }
  void error(const std::string& key, std::string m) { add(out.errors, key, std::move(m)); }
  void warning(const std::string& key, std::string m) { add(out.warnings, key, std::move(m)); }

  void lcores(bool usable) {
    // The CPU each lcore runs on: its own number (we pass -l), or the
    // worker's entry of worker_cpus (we pass --lcores lcore@cpu).
    const config::Dataplane& d = cfg.dataplane;
    const bool mapped = d.worker_cpus.size() == d.worker_lcores.size() && !d.worker_cpus.empty();
    struct Entry {
      std::string key;
      int cpu;
      const char* noun;  // how the file names it
    };
    std::vector<Entry> all{{"dataplane.main_lcore", d.main_lcore, "lcore "}};
    for (size_t i = 0; i < d.worker_lcores.size(); i++) {
      if (mapped)
        all.push_back({"dataplane.worker_cpus[" + std::to_string(i) + "]", d.worker_cpus[i], "CPU "});
      else
        all.push_back({"dataplane.worker_lcores[" + std::to_string(i) + "]", d.worker_lcores[i], "lcore "});
    }
    const std::vector<int> online = host.online_cpus();
    for (const auto& [key, cpu, noun] : all) {
      const std::string what = noun + std::to_string(cpu);
      if (!online.empty() && !std::binary_search(online.begin(), online.end(), cpu)) {
        error(key, what + " is not a CPU of this host (online CPUs: " + format_cpu_list(online) + ")");
        continue;
      }
      if (!usable) continue;
      if (const int e = host.try_pin(cpu); e != 0)
        error(key, what + ": this process may not run on CPU " + std::to_string(cpu) + " (" + errno_text(e) +
                       "; outside its cpuset?)");
    }
    // Pollers never yield: two on one CPU each get half of it.
    for (size_t i = 1; mapped && i < d.worker_cpus.size(); i++)
      for (size_t j = 0; j < i; j++)
        if (d.worker_cpus[i] == d.worker_cpus[j]) {
          warning("dataplane.worker_cpus[" + std::to_string(i) + "]",
                  "CPU " + std::to_string(d.worker_cpus[i]) + " also runs worker " + std::to_string(j) +
                      ": busy-polling workers sharing a CPU each get part of it (for trying RSS, not for service)");
          break;
        }
  }

  void stats(bool starting) {
    if (cfg.stats_listen.starts_with("unix:")) {
      if (std::string p = unix_socket_problem(cfg.stats_listen.substr(5), host); !p.empty())
        error("stats.listen", "cannot listen on " + cfg.stats_listen + ": " + p);
      return;
    }
    const std::optional<proto::HostPort> hp = proto::split_host_port(cfg.stats_listen);
    if (!hp) return;  // the loader refuses these
    const std::optional<uint32_t> ip =
        hp->host == "localhost" ? std::optional<uint32_t>(0x7F000001) : proto::parse_ipv4(hp->host);
    if (!ip) return;
    const int e = host.try_bind_tcp(*ip, hp->port);
    if (e == 0) return;
    const std::string what = "cannot listen on " + cfg.stats_listen + ": " + errno_text(e);
    if (e == EADDRNOTAVAIL)
      error("stats.listen", what + " (no interface of this host, in this network namespace, has " + hp->host + ")");
    else if (e == EADDRINUSE && !starting)
      warning("stats.listen", what + " now (a running instance?); ntp-control serves NTP without it and retries every 5 s");
    else
      error("stats.listen", what);
  }

  // A vdev's arguments ("net_af_packet0,iface=veth0,qpairs=1") that name an
  // existing kernel interface or file. net_tap and the like create theirs, so
  // only the drivers that attach to something present are checked.
  void vdev(const std::string& key, const std::string& device) {
    const std::string driver = device.substr(0, device.find(','));
    const bool attaches = driver.starts_with("net_af_packet") || driver.starts_with("eth_af_packet") ||
                          driver.starts_with("net_af_xdp") || driver.starts_with("net_pcap");
    if (!attaches) return;
    size_t at = device.find(',');
    while (at != std::string::npos) {
      const size_t next = device.find(',', at + 1);
      const std::string arg = device.substr(at + 1, next == std::string::npos ? std::string::npos : next - at - 1);
      at = next;
      const size_t eq = arg.find('=');
      if (eq == std::string::npos) continue;
      const std::string name = arg.substr(0, eq), value = arg.substr(eq + 1);
      if (name == "iface" || name == "rx_iface" || name == "rx_iface_in" || name == "tx_iface") {
        if (!host.interface_exists(value))
          error(key, "interface '" + value + "' (" + name + "= of " + driver +
                         ") does not exist in this network namespace");
      } else if (name == "rx_pcap" && !host.file_readable(value)) {
        error(key, "cannot read '" + value + "' (rx_pcap= of " + driver + ")");
      }
    }
  }

  // Every key an association or trusted_keys names must be in the file; the
  // file's own problems are said with its file:line.
  void keys() {
    if (cfg.auth.keys_file.empty()) return;
    const crypto::KeysFile kf = host.keys_file(cfg.auth.keys_file, cfg.control_user);
    for (const crypto::KeyError& e : kf.errors) error("auth.keys_file", e.to_string());
    for (const crypto::KeyError& w : kf.warnings) warning("auth.keys_file", w.to_string());
    if (!kf.ok()) return;
    const auto has = [&](uint32_t id) {
      return std::any_of(kf.keys.begin(), kf.keys.end(), [id](const crypto::KeyEntry& k) { return k.id == id; });
    };
    const auto missing = [&](uint32_t id) {
      return "key " + std::to_string(id) + " is not in " + cfg.auth.keys_file + " (auth.keys_file)";
    };
    for (size_t i = 0; i < cfg.auth.trusted_keys.size(); i++)
      if (!has(cfg.auth.trusted_keys[i]))
        error("auth.trusted_keys[" + std::to_string(i) + "]", missing(cfg.auth.trusted_keys[i]));
    for (const auto& [name, list] : {std::pair{"server", &cfg.servers}, std::pair{"peer", &cfg.peers}})
      for (size_t i = 0; i < list->size(); i++)
        if ((*list)[i].key_id != 0 && !has((*list)[i].key_id))
          error(std::string(name) + "[" + std::to_string(i) + "].key", missing((*list)[i].key_id));
  }

  // The dataplane's NTS cookie keys: the file's own problems with its file:line.
  // Absent is fine when ntp-control makes it (nts.cookie_rotate_s).
  void cookie_keys() {
    if (cfg.nts.cookie_keys_file.empty()) return;
    const crypto::CookieKeysFile f = host.cookie_keys_file(cfg.nts.cookie_keys_file, cfg.control_user);
    if (f.absent && cfg.nts.cookie_rotate_s > 0) return;
    for (const crypto::KeyError& e : f.errors) error("nts.cookie_keys_file", e.to_string());
  }

  void devices() {
    for (size_t i = 0; i < cfg.interfaces.size(); i++) {
      const std::string key = "interface[" + std::to_string(i) + "].device";
      const std::string& d = cfg.interfaces[i].device;
      if (is_pci_address(d)) {
        const std::string full = d.size() == 7 ? "0000:" + d : d;
        if (!host.pci_device_exists(full))
          error(key, "no PCI device " + full + " on this host (/sys/bus/pci/devices/" + full + " is absent)");
      } else {
        vdev(key, d);
      }
    }
  }
};

// ===========================================================================
// The kernel's answers

class RealHostFacts final : public HostFacts {
 public:
  std::vector<int> online_cpus() const override {
    std::ifstream f("/sys/devices/system/cpu/online");
    std::string line;
    if (std::getline(f, line))
      if (auto cpus = parse_cpu_list(line)) return *cpus;
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    std::vector<int> out;
    for (int c = 0; c < n; c++) out.push_back(c);
    return out;
  }
  // Pinning is what EAL will do with the lcore's thread: try it on this
  // thread and put the mask back.
  int try_pin(int cpu) const override {
    if (cpu < 0 || cpu >= CPU_SETSIZE) return EINVAL;
    cpu_set_t saved, one;
    if (sched_getaffinity(0, sizeof saved, &saved) != 0) return errno;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    int e = 0;
    if (sched_setaffinity(0, sizeof one, &one) != 0) e = errno;
    sched_setaffinity(0, sizeof saved, &saved);
    return e;
  }
  // The socket options the stats server binds with (SO_REUSEADDR, not
  // SO_REUSEPORT), so that the connections a killed instance left on the
  // port block this bind no more than they block the real one, and a
  // running instance's listener does; bind only, never listen, then close.
  int try_bind_tcp(uint32_t ipv4, uint16_t port) const override {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(ipv4);
    const int e = bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0 ? 0 : errno;
    close(fd);
    return e;
  }
  bool interface_exists(const std::string& name) const override { return if_nametoindex(name.c_str()) != 0; }
  bool pci_device_exists(const std::string& address) const override {
    struct stat st;
    return stat(("/sys/bus/pci/devices/" + address).c_str(), &st) == 0;
  }
  bool file_readable(const std::string& path) const override { return access(path.c_str(), R_OK) == 0; }
};

}  // namespace

std::unique_ptr<HostFacts> real_host_facts() { return std::make_unique<RealHostFacts>(); }

namespace {
std::optional<uint32_t> uid_of(const std::string& user) {
  if (user.empty()) return std::nullopt;
  struct passwd pw, *found = nullptr;
  char buf[4096];
  if (getpwnam_r(user.c_str(), &pw, buf, sizeof buf, &found) == 0 && found) return found->pw_uid;
  return std::nullopt;
}
}  // namespace

crypto::CookieKeysFile HostFacts::cookie_keys_file(const std::string& path, const std::string& also_owner_user) const {
  return crypto::load_cookie_keys(path, uid_of(also_owner_user));
}

crypto::KeysFile HostFacts::keys_file(const std::string& path, const std::string& also_owner_user) const {
  const std::optional<uint32_t> also = uid_of(also_owner_user);
  crypto::KeysFile f = crypto::load_keys(path, also);
  // A 0600 file has one reader: with a control user, that must be it (root
  // reads it anyway), or root's --check passes a file ntp-control cannot open.
  struct stat st;
  if (f.ok() && also && lstat(path.c_str(), &st) == 0 && st.st_uid != *also) {
    f.keys.clear();
    f.errors.push_back({path, 0,
                        "owned by uid " + std::to_string(st.st_uid) + ", but ntp-control runs as " + also_owner_user +
                            " (channel.control_user, uid " + std::to_string(*also) +
                            ") and could not read it: chown " + also_owner_user + " it"});
  }
  return f;
}

HostFacts::PathFacts HostFacts::lstat_path(const std::string& path) const {
  PathFacts f;
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return f;
  f.exists = true;
  f.directory = S_ISDIR(st.st_mode);
  f.symlink = S_ISLNK(st.st_mode);
  f.socket = S_ISSOCK(st.st_mode);
  f.mode = st.st_mode & 07777;
  return f;
}

std::string unix_socket_problem(const std::string& path, const HostFacts& host) {
  const size_t slash = path.rfind('/');
  if (path.empty() || path[0] != '/' || slash == path.size() - 1) return "'" + path + "' is not an absolute file path";
  const std::string dir = slash == 0 ? "/" : path.substr(0, slash);
  const HostFacts::PathFacts d = host.lstat_path(dir);
  if (!d.exists) return "its directory " + dir +
                        " does not exist (create it: /run/ntp-appliance is made at boot by "
                        "deploy/systemd/ntp-appliance.tmpfiles.conf, 1770 root:ntp-appliance)";
  if (d.symlink) return "its directory " + dir + " is a symlink (give the real directory)";
  if (!d.directory) return dir + " is not a directory";
  if ((d.mode & 0002) && !(d.mode & 01000)) {
    char mode[16];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(d.mode));
    return "its directory " + dir + " is writable by others (mode " + mode +
           ") and not sticky: anyone could replace the socket";
  }
  const HostFacts::PathFacts f = host.lstat_path(path);
  if (f.exists && f.symlink) return path + " is a symlink";
  if (f.exists && !f.socket) return path + " exists and is not a socket (not removed)";
  return {};
}

HostCheckResult check_host(const Config& cfg, const KeyLocations& where, HostChecks checks, const HostFacts& host,
                           bool starting) {
  HostCheckResult out;
  Checker c{cfg, where, host, out};
  if (checks & (kCheckLcoresExist | kCheckLcoresUsable)) c.lcores((checks & kCheckLcoresUsable) != 0);
  if (checks & kCheckStatsListen) c.stats(starting);
  if (checks & kCheckDevices) c.devices();
  if (checks & kCheckKeys) c.keys();
  if (checks & kCheckCookieKeys) c.cookie_keys();
  auto by_position = [](const Error& a, const Error& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  };
  std::stable_sort(out.errors.begin(), out.errors.end(), by_position);
  return out;
}

}  // namespace ntp::config
