// The appliance's configuration: one TOML file per instance, read by both
// daemons. Every key is declared once in the table in config.cc (name, type,
// default, range, help); unknown keys and out-of-range values are errors that
// carry file, line, column and the key. Nothing starts on a bad file.
// A new key also needs its line in config::plan_reload (cli.cc): taken live
// on SIGHUP by which daemon, or named there as needing a restart.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proto/access.h"

namespace ntp::config {

enum class ClockSource { kSystem, kVirtual, kPhc };
// Its name in the file ("system", "virtual", "phc").
const char* to_string(ClockSource s);

struct Interface {
  std::string name;          // operator's name, e.g. "GigabitEthernet0/1/0"
  std::string device;        // DPDK device: PCI address or vdev string ("net_af_packet0,iface=veth0")
  uint16_t vlan = 0;         // 802.1Q VLAN ID of the interface's frames, 1..4094; 0: untagged
  uint32_t ipv4 = 0;         // host order
  uint8_t prefix_len = 24;   // 1..32
  std::optional<uint32_t> gateway;  // host order, inside the subnet
  bool ntp_server = false;   // `ntp-service server source-interface`: answer client requests here
  std::string timestamping = "auto";  // auto, software, hardware
  int tx_compensation_ns = 0;         // added to transmit timestamps, -1e6..1e6
  bool emulated_nic_clock = false;    // test/diagnostic: a simulated NIC clock stamps RX packets
  double emulated_nic_hz = 1e9;       // its counter rate, ticks per second
  int emulated_nic_bits = 64;         // its counter width, 32..64
  double emulated_nic_offset_ns = 0;  // its reading at TSC 0
  double emulated_nic_frequency_ppm = 0;  // its frequency error against the TSC
  double emulated_nic_read_jitter_ns = 0; // gaussian noise of a clock read
  bool exception_path = false;        // what we do not answer for our address goes to a kernel interface
  std::string exception_interface;    // its name ("" : "ntpx" and the interface's index)
  int exception_max_pps = 10000;      // per worker, frames to the kernel a second
  bool operator==(const Interface&) const = default;
};

// `ntp-service unicast-server` (client mode) and `ntp-service unicast-peer`
// (symmetric active) share their options.
struct Association {
  uint32_t address = 0;  // host order
  int minpoll_log2 = 6;  // -4..17
  int maxpoll_log2 = 10; // -4..17, >= minpoll
  bool iburst = false;
  bool burst = false;
  bool prefer = false;
  int version = 4;       // 1..4
  uint16_t port = 123;
  uint32_t key_id = 0;   // auth.keys_file key that signs our packets and must sign theirs; 0: none
  // Interleaved mode (RFC 9769, chrony's xleave): client mode for a
  // [[server]], symmetric mode for a [[peer]].
  bool xleave = false;
  // [[server]] only: Network Time Security (RFC 8915) instead of a key.
  bool nts = false;
  uint16_t nts_ke_port = 4460;  // the server's NTS-KE (TLS) port
  std::string nts_ca_file;      // PEM trust anchors; empty: the system's
  std::string nts_pin_sha256;   // hex SHA-256 of the server's SubjectPublicKeyInfo; empty: none
  std::string nts_name;         // the name its certificate must carry (and SNI); empty: the address
  bool operator==(const Association&) const = default;
};

struct Clock {
  ClockSource source = ClockSource::kSystem;
  double offset_ms = 0;        // virtual only: initial offset from the host clock
  double frequency_ppm = 0;    // virtual only: frequency error against the host clock
  double step_threshold_ms = 128;
  double panic_threshold_s = 1000;  // 0: never panic
  double max_frequency_ppm = 500;
  std::string drift_file;      // empty: none
  bool steer_system_clock = false;
  std::string phc;             // source = phc: the PHC followed
  int phc_utc_offset_s = 37;   // source = phc: PHC minus UTC, s (37: TAI)
  std::string steer_phc;       // a PHC kept on the served time; empty: none
  bool operator==(const Clock&) const = default;
};

struct Ntp {
  std::optional<int> refclock_master;  // stratum 1..15 of the local clock when it is the reference
  double holdover_s = 300;             // dataplane serves the last state this long without a control plane
  int max_dynamic_sessions = 100;      // passive peer associations
  // A mode-1 packet from an address that may not peer (not in access.peer,
  // no [[peer]]): a stateless mode-2 answer from the dataplane, rate-limited
  // like a client's (true), or nothing (false, the default).
  bool answer_unknown_peers = false;
  // Interleaved service (RFC 9769): every client in its worker's table with
  // the receive and real transmit time of our last answer to it.
  bool interleaved = true;
  // Dynamic passive associations: their poll is the active peer's, clamped
  // to passive_minpoll_log2..passive_maxpoll_log2; one that has not been
  // heard from for passive_timeout_s goes (seconds, not the peer's poll).
  int passive_minpoll_log2 = 6;        // -4..17
  int passive_maxpoll_log2 = 10;       // -4..17, >= passive_minpoll_log2
  double passive_timeout_s = 900;      // 16..86400
  std::string leap_file;               // IERS leap-seconds.list; empty: none
  bool leap_smear = false;             // smear leap seconds over 24 h noon to noon instead of inserting them
  // refclock_master on a host clock the kernel calls unsynchronized:
  // "unsynchronized" (serve leap 3) or "serve" (at the configured stratum,
  // with the kernel's maxerror as root dispersion)
  std::string local_clock_unsynced = "unsynchronized";
  bool operator==(const Ntp&) const = default;
};

// [access]: the seed vendor's `ntp-service access peer|server|
// synchronization|query|limited` plus deny. Each list holds prefixes (host
// order, length; IPv4 now). Precedence: deny > peer > server >
// synchronization > limited > query (proto::AccessTable); an address in no
// list gets default_class.
using PrefixList = std::vector<std::pair<uint32_t, uint8_t>>;
struct Access {
  PrefixList peer;             // may be a symmetric peer (and set our time), get time, query status
  PrefixList server;           // get time (never rate-limited) and query status
  PrefixList synchronization;  // get time only (never rate-limited)
  PrefixList limited;          // get time, rate-limited ([ratelimit])
  PrefixList query;            // read status only, no time
  PrefixList deny;             // nothing
  std::string default_class = "limited";  // synchronization, limited, query, deny
  bool kod = false;            // `ntp-service kod-enable`: RATE/DENY kiss-o'-death (NTPv4 requests only)
  bool operator==(const Access&) const = default;
};

// The lists as the table every daemon looks addresses up in.
proto::AccessTable access_table(const Access& a);

// [ratelimit]: per-client limits for the `limited` class, enforced by each
// dataplane worker in a fixed table (chrony's ratelimit, the vendor's
// `ntp-service discard`).
// Symmetric-key authentication (RFC 5905 section 7.3, RFC 8573): the
// vendor's `ntp-service authentication ...` commands.
struct Auth {
  std::string keys_file;               // chrony's `ID TYPE KEY` lines (crypto/keys.h); empty: no keys
  std::vector<uint32_t> trusted_keys;  // keys whose packets may set our time (vendor: reliable authentication-keyid)
  bool authenticate = false;           // only authenticated sources may be selected (vendor: authentication enable)
  bool operator==(const Auth&) const = default;
};

// Network Time Security (RFC 8915): the cookie keys the dataplane opens and
// seals NTS cookies with, and ntp-control's NTS-KE server that hands them out.
struct Nts {
  std::string cookie_keys_file;  // crypto/nts_keys.h lines; empty: NTS requests are answered without NTS
  int cookie_rotate_s = 86400;   // ntp-control adds a key this often (and makes the file); 0: never (keys from outside)
  int cookie_old_keys = 3;       // keys kept after the current one, so their cookies still open
  std::string ke_listen;         // "a.b.c.d:port" of the NTS-KE server (TLS); empty: none
  std::string certificate;       // PEM chain the NTS-KE server presents
  std::string private_key;       // its PEM key, a secret file
  int ke_max_sessions = 64;      // TLS sessions open at once (a quarter per client address)
  double ke_timeout_s = 2;       // a session's whole life, from accept to close
  std::optional<uint32_t> ntp_server;  // NTPv4 Server Negotiation (host order); absent: none
  int ntp_port = 123;            // NTPv4 Port Negotiation when not 123
  bool operator==(const Nts&) const = default;
};

struct RateLimit {
  int interval_log2 = 3;       // minimum mean interval between requests, log2 s (-4..12; chrony interval)
  int burst = 8;               // requests allowed at once above the mean (1..255; chrony burst)
  int leak_log2 = 2;           // over the limit, 1 in 2^leak is still answered (1..4; chrony leak)
  double min_interval_s = 0;   // vendor `discard min-interval`: a request sooner than this after the last is over
  int clients = 1048576;       // per worker table entries, power of two, 1024..16777216
  int max_replies_per_s = 0;   // per worker cap on all rate-limited answers (reflection brake); 0: none
  bool operator==(const RateLimit&) const = default;
};

struct Stats {
  int max_connections = 64;        // open at once; beyond: closed at accept
  double request_timeout_s = 5;    // a request must arrive whole within this (slowloris)
  bool operator==(const Stats&) const = default;
};

struct Dataplane {
  int main_lcore = 0;
  std::vector<int> worker_lcores{1};   // one worker per lcore; each owns one RX/TX queue pair per port
  std::vector<int> worker_cpus;        // the CPU of each worker lcore; empty: lcore N runs on CPU N
  std::vector<std::string> eal_args;   // extra EAL arguments, e.g. ["--no-huge", "--no-pci", "-m", "256"]
  int burst_size = 32;                 // 1..256
  int rx_descriptors = 1024;           // power of two, 64..16384
  int tx_descriptors = 1024;           // power of two, 64..16384
  int mbufs = 8191;                    // per pool, 1023..1048575
  int ring_size = 1024;                // channel ring elements, power of two, 64..65536
  int idle_sleep_us = 0;               // sleep after empty polls; 0 = busy poll (production)
  bool operator==(const Dataplane&) const = default;
};

struct Config {
  std::string path;                 // the file it came from
  std::string sysname = "ntp";      // [A-Za-z0-9._-], 1..63
  std::string log_level = "info";   // trace, debug, info, warn, error
  std::string shm_name;             // default "/ntp-<sysname>"
  std::string lock_dir = "/run/ntp-appliance";  // the instance locks (config/instance_lock.h)
  std::string control_user;         // owner of the segment the dataplane creates; empty: the dataplane's own
  std::string stats_listen = "127.0.0.1:9123";  // host:port (IPv4 or "localhost"), or "unix:/path"
  Clock clock;
  Ntp ntp;
  Access access;
  RateLimit ratelimit;
  Auth auth;
  Nts nts;
  Stats stats;
  Dataplane dataplane;
  std::vector<Interface> interfaces;   // 1..8
  std::vector<Association> servers;    // [[server]]
  std::vector<Association> peers;      // [[peer]]
  bool operator==(const Config&) const = default;
};

struct Error {
  std::string file;
  int line = 0;    // 1-based, 0 when unknown
  int column = 0;  // 1-based, 0 when unknown
  std::string key; // dotted path, e.g. "interface[1].address"
  std::string message;
  std::string to_string() const;  // "file:line:column: key: message"; ":line:column"
                                  // is left out when line is 0, "key: " when key is empty
};

struct LoadResult {
  std::optional<Config> config;
  std::vector<Error> errors;  // every problem found, not only the first
  bool ok() const { return config.has_value(); }
};

// Parse and validate TOML text; `path` is used in error messages. Never
// throws; any input (the parser is fuzzed) yields a config or errors.
// Limits: at most kMaxFileBytes, and at most kMaxDotsPerLine '.' per line
// (the TOML library nests tables recursively: this bounds the depth).
inline constexpr size_t kMaxFileBytes = 1 << 20;
inline constexpr int kMaxDotsPerLine = 256;
LoadResult parse(std::string_view text, std::string_view path);
// Read and parse a file.
LoadResult load(const std::string& path);
// What both daemons do first: load path; on errors print each as
// "<program>: file:line:column: key: message" and a count to stderr, and
// return nothing (exit status 2, nothing started).
std::optional<Config> load_or_report(const char* program, const std::string& path);

// The table of keys: for the README's configuration reference and
// `ntp-control --print-keys`. In table order: top-level keys, then [clock],
// [ntp], [dataplane], [channel], [stats], [access], [ratelimit], then each
// array of tables as one
// row of type "array of tables" (e.g. "interface") followed by its keys
// ("interface[].address"). `def` is a TOML literal (e.g. `"info"`, `6`,
// `[1]`) or "" when the key is required or has no literal default.
struct KeyDoc {
  std::string key;      // e.g. "clock.offset_ms", "interface[].address"
  std::string type;     // "string", "integer", "float", "boolean", "array of strings", ...
  std::string def;      // default, "" when required or none
  std::string range;    // e.g. "1..15"
  std::string help;
  // Added beyond the first draft of this interface:
  bool required = false;   // must be present (in every table of its array)
  std::string example;     // a valid TOML value (the default if any; "" for array-of-table rows)
  std::string only_with;   // e.g. `clock.source = "virtual"`: setting the key otherwise is an error
};
const std::vector<KeyDoc>& key_docs();

}  // namespace ntp::config
