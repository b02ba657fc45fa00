// The configuration loader. Modelled on linuxptp's config.c: ONE declarative
// table of keys (kKeys below) holds, for every key, its section, TOML type,
// default, range or format, help text and how the value is stored into the
// Config struct. Parsing, validation, defaults and key_docs() are all driven
// by that table; the only hand-written logic is a short list of cross-key
// checks (kCrossChecks) that no single row can express.
#include "config/config.h"

#include <toml++/toml.h>

#include <cctype>

#include "proto/channel_abi.h"
#include "proto/inet.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>

namespace ntp::config {

namespace {

// ===========================================================================
// Building blocks of the table.

// Sections are bit flags so that one row can describe a key of both
// [[server]] and [[peer]].
enum Sect : unsigned {
  kTop = 1u << 0,
  kClock = 1u << 1,
  kNtp = 1u << 2,
  kDataplane = 1u << 3,
  kChannel = 1u << 4,
  kStats = 1u << 5,
  kInterface = 1u << 6,
  kServer = 1u << 7,
  kPeer = 1u << 8,
  kAccess = 1u << 9,
  kRateLimit = 1u << 10,
  kAuth = 1u << 11,
  kNts = 1u << 12,
};

// Where the store functions write: the config, and the element of an array
// of tables being filled.
struct Targets {
  Config* cfg = nullptr;
  Interface* ifc = nullptr;
  Association* assoc = nullptr;
};

constexpr size_t kUnbounded = std::numeric_limits<size_t>::max();

struct SectionSpec {
  Sect sect;
  const char* name;      // "" for the top level
  bool array;            // an array of tables, [[name]]
  size_t min_count = 0;  // arrays: number of tables
  size_t max_count = 0;
  // arrays: append a new element to the config and point `t` at it
  void (*add)(Config& c, Targets& t) = nullptr;
  const char* help = "";
};

constexpr SectionSpec kSections[] = {
    {kTop, "", false},
    {kClock, "clock", false},
    {kNtp, "ntp", false},
    {kDataplane, "dataplane", false},
    {kChannel, "channel", false},
    {kStats, "stats", false},
    {kAccess, "access", false},
    {kRateLimit, "ratelimit", false},
    {kAuth, "auth", false},
    {kNts, "nts", false},
    {kInterface, "interface", true, 1, 8,
     [](Config& c, Targets& t) { t.ifc = &c.interfaces.emplace_back(); },
     "`interface <name>` + `ip address`: a port the dataplane owns, with its address"},
    {kServer, "server", true, 0, kUnbounded,
     [](Config& c, Targets& t) { t.assoc = &c.servers.emplace_back(); },
     "`ntp-service unicast-server <ip>`: an upstream server we poll (client mode)"},
    {kPeer, "peer", true, 0, kUnbounded,
     [](Config& c, Targets& t) { t.assoc = &c.peers.emplace_back(); },
     "`ntp-service unicast-peer <ip>`: a symmetric active peer association"},
};

// The checked value of one key, whatever its type; a store function reads
// the member its field needs.
struct Value {
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  uint32_t addr = 0;  // IPv4 formats, host order
  uint8_t len = 32;   // prefix formats
  std::vector<int64_t> ints;
  std::vector<std::string> strs;
  std::vector<std::pair<uint32_t, uint8_t>> prefixes;
};

// How a value is converted into a field, by the field's type. uint32_t
// fields are IPv4 addresses.
void assign(bool& f, const Value& v) { f = v.b; }
void assign(int& f, const Value& v) { f = static_cast<int>(v.i); }
void assign(uint16_t& f, const Value& v) { f = static_cast<uint16_t>(v.i); }
void assign(std::optional<int>& f, const Value& v) { f = static_cast<int>(v.i); }
void assign(double& f, const Value& v) { f = v.f; }
void assign(std::string& f, const Value& v) { f = v.s; }
void assign(uint32_t& f, const Value& v) { f = v.addr; }
void assign(std::optional<uint32_t>& f, const Value& v) { f = v.addr; }
void assign(std::vector<int>& f, const Value& v) { f.assign(v.ints.begin(), v.ints.end()); }
void assign(std::vector<uint32_t>& f, const Value& v) { f.assign(v.ints.begin(), v.ints.end()); }
void assign(std::vector<std::string>& f, const Value& v) { f = v.strs; }
void assign(std::vector<std::pair<uint32_t, uint8_t>>& f, const Value& v) { f = v.prefixes; }
void assign(ClockSource& f, const Value& v) {
  f = v.s == to_string(ClockSource::kVirtual) ? ClockSource::kVirtual
      : v.s == to_string(ClockSource::kPhc)   ? ClockSource::kPhc
                                              : ClockSource::kSystem;
}

// The object a member pointer's class lives in.
template <class C> C& object(Targets& t);
template <> Config& object<Config>(Targets& t) { return *t.cfg; }
template <> Clock& object<Clock>(Targets& t) { return t.cfg->clock; }
template <> Ntp& object<Ntp>(Targets& t) { return t.cfg->ntp; }
template <> Dataplane& object<Dataplane>(Targets& t) { return t.cfg->dataplane; }
template <> Access& object<Access>(Targets& t) { return t.cfg->access; }
template <> RateLimit& object<RateLimit>(Targets& t) { return t.cfg->ratelimit; }
template <> Stats& object<Stats>(Targets& t) { return t.cfg->stats; }
template <> Auth& object<Auth>(Targets& t) { return t.cfg->auth; }
template <> Nts& object<Nts>(Targets& t) { return t.cfg->nts; }
template <> Interface& object<Interface>(Targets& t) { return *t.ifc; }
template <> Association& object<Association>(Targets& t) { return *t.assoc; }

template <class T> struct MemberOf;
template <class C, class F> struct MemberOf<F C::*> { using Class = C; };

using Store = void (*)(Targets& t, const Value& v);

// set<&Clock::offset_ms>: store a value into that field.
template <auto Member>
void set(Targets& t, const Value& v) {
  assign(object<typename MemberOf<decltype(Member)>::Class>(t).*Member, v);
}

enum class Type : uint8_t { kBool, kInt, kFloat, kString, kInts, kStrings };

// Extra format of a string (or of each string of an array), or of an integer.
enum class Fmt : uint8_t {
  kText,       // any text without control characters
  kChoice,     // one of `choices`
  kName,       // [A-Za-z0-9._-]
  kShmName,    // "/" then [A-Za-z0-9._-]
  kPath,       // empty or absolute
  kHostPort,   // IPv4 or "localhost", ":", port 1..65535
  kPrefix,     // a.b.c.d/len, len 0..32, no host bits
  kIfAddress,  // a.b.c.d/len, len 1..32, a unicast host address of the subnet
  kUnicast,    // a.b.c.d, unicast
  kIpPort,     // empty, or a.b.c.d:port, port 1..65535 (a TCP listener)
  kPow2,       // integers: a power of two
  kHex,        // empty, or exactly hi hexadecimal digits
};

struct KeySpec {
  unsigned sects;             // Sect flags
  const char* name;
  Type type;
  const char* def = nullptr;  // default as a TOML literal; nullptr: required, optional or derived
  bool required = false;
  double lo = 0, hi = 0;      // numbers: range; strings: length (when hi > 0); arrays: of each entry
  Fmt fmt = Fmt::kText;
  const char* choices = nullptr;      // Fmt::kChoice: "a|b|c"
  size_t min_entries = 0, max_entries = 0;  // arrays
  bool unique_entries = false;        // arrays: no entry twice
  const char* unique_across = nullptr;  // values distinct across all tables sharing this group name
  const char* only_key = nullptr;     // allowed only when sibling key `only_key`
  const char* only_value = nullptr;   //   has the string value `only_value`
  const char* noun = nullptr;         // what the number is, for messages ("stratum 16 out of range")
  Store store = nullptr;
  const char* help = "";
  const char* example = nullptr;      // a valid TOML value, for keys without a default
};

constexpr double kMaxLen = 4095;  // free-text strings

// ===========================================================================
// THE TABLE. Order: top level, [clock], [ntp], [dataplane], [channel],
// [stats], [[interface]], [[server]]/[[peer]]. key_docs() keeps this order.

constexpr KeySpec kKeys[] = {
    // -- top level ----------------------------------------------------------
    {.sects = kTop, .name = "sysname", .type = Type::kString, .def = "\"ntp\"", .lo = 1, .hi = 63,
     .fmt = Fmt::kName, .store = set<&Config::sysname>,
     .help = "`sysname <name>`: the instance's name, in logs, /status and the default shm_name"},
    {.sects = kTop, .name = "log_level", .type = Type::kString, .def = "\"info\"",
     .fmt = Fmt::kChoice, .choices = "trace|debug|info|warn|error", .store = set<&Config::log_level>,
     .help = "least severe message that is logged"},

    // -- [clock] ------------------------------------------------------------
    {.sects = kClock, .name = "source", .type = Type::kString, .def = "\"system\"",
     .fmt = Fmt::kChoice, .choices = "system|virtual|phc", .store = set<&Clock::source>,
     .help = "local clock: system = CLOCK_REALTIME (what refclock-master serves); "
             "virtual = simulated free-running oscillator (tests, demo); phc = a PTP hardware clock "
             "(clock.phc), e.g. disciplined by ptp4l or a GNSS card"},
    {.sects = kClock, .name = "phc", .type = Type::kString, .lo = 1, .hi = 255, .fmt = Fmt::kPath,
     .only_key = "source", .only_value = "phc", .store = set<&Clock::phc>,
     .help = "the PHC the phc source follows", .example = "\"/dev/ptp0\""},
    {.sects = kClock, .name = "phc_utc_offset_s", .type = Type::kInt, .def = "37", .lo = -100, .hi = 100,
     .store = set<&Clock::phc_utc_offset_s>,
     .help = "seconds PHCs (clock.phc, clock.steer_phc) are ahead of UTC (37: TAI, as ptp4l keeps them; "
             "0: on UTC)"},
    {.sects = kClock, .name = "offset_ms", .type = Type::kFloat, .def = "0", .lo = -86400000, .hi = 86400000,
     .only_key = "source", .only_value = "virtual", .store = set<&Clock::offset_ms>,
     .help = "virtual clock: initial offset from the host clock, milliseconds"},
    {.sects = kClock, .name = "frequency_ppm", .type = Type::kFloat, .def = "0", .lo = -1000, .hi = 1000,
     .only_key = "source", .only_value = "virtual", .store = set<&Clock::frequency_ppm>,
     .help = "virtual clock: frequency error against the host clock, ppm"},
    {.sects = kClock, .name = "step_threshold_ms", .type = Type::kFloat, .def = "128", .lo = 0, .hi = 86400000,
     .store = set<&Clock::step_threshold_ms>,
     .help = "offsets larger than this are stepped, smaller ones slewed, milliseconds"},
    {.sects = kClock, .name = "panic_threshold_s", .type = Type::kFloat, .def = "1000", .lo = 0, .hi = 1000000,
     .store = set<&Clock::panic_threshold_s>,
     .help = "offsets larger than this are refused as insane, seconds; 0: never panic"},
    {.sects = kClock, .name = "max_frequency_ppm", .type = Type::kFloat, .def = "500", .lo = 1, .hi = 100000,
     .store = set<&Clock::max_frequency_ppm>,
     .help = "largest frequency correction the discipline applies, ppm"},
    {.sects = kClock, .name = "drift_file", .type = Type::kString, .def = "\"\"", .lo = 0, .hi = kMaxLen,
     .fmt = Fmt::kPath, .store = set<&Clock::drift_file>,
     .help = "file keeping the frequency correction across restarts; empty: none"},
    {.sects = kClock, .name = "steer_system_clock", .type = Type::kBool, .def = "false",
     .store = set<&Clock::steer_system_clock>,
     .help = "keep CLOCK_REALTIME on the served time with clock_adjtime (with source = \"system\" "
             "the discipline steers it directly; needs CAP_SYS_TIME; never in tests)"},
    {.sects = kClock, .name = "steer_phc", .type = Type::kString, .def = "\"\"", .hi = 255, .fmt = Fmt::kPath,
     .store = set<&Clock::steer_phc>,
     .help = "a PTP hardware clock to keep on the served time, like phc2sys (so PTP or launch-time "
             "software on the same NIC agrees); empty: none"},

    // -- [ntp] --------------------------------------------------------------
    {.sects = kNtp, .name = "refclock_master", .type = Type::kInt, .lo = 1, .hi = 15, .noun = "stratum",
     .store = set<&Ntp::refclock_master>,
     .help = "`ntp-service refclock-master <stratum>`: serve the local clock as a reference at this "
             "stratum; absent: only upstream servers and peers are references",
     .example = "2"},
    {.sects = kNtp, .name = "holdover_s", .type = Type::kFloat, .def = "300", .lo = 0, .hi = 86400,
     .store = set<&Ntp::holdover_s>,
     .help = "how long the dataplane serves the last published state without a control plane, "
             "seconds; after it, answers say unsynchronized (leap 3)"},
    {.sects = kNtp, .name = "max_dynamic_sessions", .type = Type::kInt, .def = "100", .lo = 0, .hi = 10000,
     .store = set<&Ntp::max_dynamic_sessions>,
     .help = "most passive peer associations created by incoming symmetric active peers"},
    {.sects = kNtp, .name = "answer_unknown_peers", .type = Type::kBool, .def = "false",
     .store = set<&Ntp::answer_unknown_peers>,
     .help = "a symmetric active (mode 1) packet from an address that may not peer (not in access.peer, "
             "no [[peer]]): answered statelessly in mode 2 by the dataplane, rate-limited like a client "
             "request (true), or dropped (false)"},
    {.sects = kNtp, .name = "interleaved", .type = Type::kBool, .def = "true", .store = set<&Ntp::interleaved>,
     .help = "serve interleaved mode (RFC 9769, what chrony's xleave clients ask for): the next answer to a client "
             "carries the real transmit time of the previous one; each worker's client table (ratelimit.clients) "
             "then holds every client, 16 bytes more per entry. A change needs a restart"},
    {.sects = kNtp, .name = "passive_minpoll_log2", .type = Type::kInt, .def = "6", .lo = -4, .hi = 17,
     .store = set<&Ntp::passive_minpoll_log2>,
     .help = "a dynamic passive association polls at its active peer's rate, but never faster than "
             "this, log2 s"},
    {.sects = kNtp, .name = "passive_maxpoll_log2", .type = Type::kInt, .def = "10", .lo = -4, .hi = 17,
     .store = set<&Ntp::passive_maxpoll_log2>,
     .help = "... and never slower than this, log2 s (at least passive_minpoll_log2)"},
    {.sects = kNtp, .name = "passive_timeout_s", .type = Type::kFloat, .def = "900", .lo = 16, .hi = 86400,
     .store = set<&Ntp::passive_timeout_s>,
     .help = "a dynamic passive association not heard from for this long is removed, seconds (whatever "
             "poll its peer announced)"},
    {.sects = kNtp, .name = "leap_file", .type = Type::kString, .def = "\"\"", .hi = 255, .fmt = Fmt::kPath,
     .store = set<&Ntp::leap_file>,
     .help = "the IERS leap-seconds.list (tzdata ships /usr/share/zoneinfo/leap-seconds.list): announces "
             "leap seconds and warns when it has expired; empty: leap seconds only from a majority of the "
             "sources"},
    {.sects = kNtp, .name = "leap_smear", .type = Type::kBool, .def = "false", .store = set<&Ntp::leap_smear>,
     .help = "smear a leap second over the 24 h from noon to noon around it (as Google's public NTP does) "
             "instead of inserting or deleting it; the leap indicator is then not passed on. Do not mix "
             "smeared and unsmeared servers"},
    {.sects = kNtp, .name = "local_clock_unsynced", .type = Type::kString, .def = "\"unsynchronized\"",
     .fmt = Fmt::kChoice, .choices = "unsynchronized|serve", .store = set<&Ntp::local_clock_unsynced>,
     .help = "refclock_master on the system or phc source whose clock is itself unsynchronized (kernel "
             "STA_UNSYNC, a PHC not read within the holdover): answer unsynchronized (leap 3), or serve at "
             "the configured stratum with the clock's own error bound as root dispersion"},

    // -- [access] -----------------------------------------------------------
    {.sects = kAccess, .name = "peer", .type = Type::kStrings, .def = "[]", .fmt = Fmt::kPrefix,
     .min_entries = 0, .max_entries = 1024, .store = set<&Access::peer>,
     .help = "`ntp-service access peer`: may become our symmetric (passive) peer and so set our time; also "
             "gets time and may read status. Nobody else may peer with us, except configured [[peer]]s"},
    {.sects = kAccess, .name = "server", .type = Type::kStrings, .def = "[]", .fmt = Fmt::kPrefix,
     .min_entries = 0, .max_entries = 1024, .store = set<&Access::server>,
     .help = "`ntp-service access server`: gets time (never rate-limited) and may read status"},
    {.sects = kAccess, .name = "synchronization", .type = Type::kStrings, .def = "[]", .fmt = Fmt::kPrefix,
     .min_entries = 0, .max_entries = 1024, .store = set<&Access::synchronization>,
     .help = "`ntp-service access synchronization`: gets time only (never rate-limited)"},
    {.sects = kAccess, .name = "limited", .type = Type::kStrings, .def = "[]", .fmt = Fmt::kPrefix,
     .min_entries = 0, .max_entries = 1024, .store = set<&Access::limited>,
     .help = "`ntp-service access limited`: gets time within [ratelimit], beyond it dropped or a RATE "
             "kiss-o'-death (access.kod)"},
    {.sects = kAccess, .name = "query", .type = Type::kStrings, .def = "[]", .fmt = Fmt::kPrefix,
     .min_entries = 0, .max_entries = 1024, .store = set<&Access::query>,
     .help = "`ntp-service access query`: may read status (the stats endpoint) only, gets no time"},
    {.sects = kAccess, .name = "deny", .type = Type::kStrings, .def = "[]", .fmt = Fmt::kPrefix,
     .min_entries = 0, .max_entries = 1024, .store = set<&Access::deny>,
     .help = "gets nothing (a DENY kiss-o'-death with access.kod); wins over every other list"},
    {.sects = kAccess, .name = "default_class", .type = Type::kString, .def = "\"limited\"",
     .fmt = Fmt::kChoice, .choices = "limited|synchronization|query|deny", .store = set<&Access::default_class>,
     .help = "the class of an address in no list. Between lists: deny > peer > server > synchronization > "
             "limited > query"},
    {.sects = kAccess, .name = "kod", .type = Type::kBool, .def = "false", .store = set<&Access::kod>,
     .help = "`ntp-service kod-enable`: answer NTPv4 requests over the rate limit with a RATE, denied ones "
             "with a DENY kiss-o'-death (each within the client's budget of one per ratelimit interval) "
             "instead of dropping them"},

    // -- [auth] -------------------------------------------------------------
    {.sects = kAuth, .name = "keys_file", .type = Type::kString, .def = "\"\"", .hi = 255, .fmt = Fmt::kPath,
     .store = set<&Auth::keys_file>,
     .help = "`ntp-service authentication-keyid <id> authentication-mode <type> <key>`: the symmetric keys, "
             "chrony's `ID TYPE KEY` lines (AES128, HMAC-SHA256, SHA256, SHA1, MD5; HEX:/ASCII: keys); a "
             "regular file, mode 0600, owned by channel.control_user (ntp-control's user; the root dataplane "
             "reads it too) or without one by the daemons' user (refused otherwise); empty: no keys, a "
             "request with a MAC gets a crypto-NAK"},
    {.sects = kAuth, .name = "trusted_keys", .type = Type::kInts, .def = "[]", .lo = 1, .hi = 4294967295.0,
     .max_entries = 256, .unique_entries = true, .store = set<&Auth::trusted_keys>,
     .help = "`ntp-service reliable authentication-keyid <id>`: keys of auth.keys_file whose packets may set "
             "our time; a [[server]] or [[peer]] key must be one of them"},
    {.sects = kAuth, .name = "authenticate", .type = Type::kBool, .def = "false",
     .store = set<&Auth::authenticate>,
     .help = "`ntp-service authentication enable`: only sources whose packets carry a valid MAC of a "
             "trusted key may be selected, and only authenticated symmetric packets may mobilise a passive "
             "association"},

    // -- [nts] --------------------------------------------------------------
    {.sects = kNts, .name = "cookie_keys_file", .type = Type::kString, .def = "\"\"", .hi = 255, .fmt = Fmt::kPath,
     .store = set<&Nts::cookie_keys_file>,
     .help = "NTS cookie keys (RFC 8915), one `ID AES-SIV-CMAC-256 HEX:<64 hex digits> CREATED` line each, "
             "oldest first, the last one sealing new cookies; the same owner and mode rules as auth.keys_file; "
             "the dataplane answers an NTS request whose cookie one of them opens with NTS, and an NTS NAK to a "
             "cookie none opens; nts.ke_listen hands out cookies of the last one; ntp-control makes it when "
             "absent and rotates it (nts.cookie_rotate_s); empty: no NTS"},
    {.sects = kNts, .name = "cookie_rotate_s", .type = Type::kInt, .def = "86400", .lo = 0, .hi = 31536000,
     .store = set<&Nts::cookie_rotate_s>,
     .help = "ntp-control adds a fresh key (getrandom) when the newest is this old, drops the oldest beyond "
             "nts.cookie_old_keys, rewrites nts.cookie_keys_file and hands the keys to the dataplane through the "
             "shared memory; 0: never (the file is managed elsewhere, e.g. shared by the appliances of one "
             "anycast address: rotate it there and reload both daemons)"},
    {.sects = kNts, .name = "cookie_old_keys", .type = Type::kInt, .def = "3", .lo = 0, .hi = 7,
     .store = set<&Nts::cookie_old_keys>,
     .help = "keys kept after the current one: a client's cookies open for this many rotations after the key "
             "that sealed them was replaced"},
    {.sects = kNts, .name = "ke_listen", .type = Type::kString, .def = "\"\"", .hi = 21, .fmt = Fmt::kIpPort,
     .store = set<&Nts::ke_listen>,
     .help = "ntp-control's NTS-KE server (TLS 1.3, ALPN ntske/1; 4460 is NTS-KE's port): an address of the "
             "kernel's, not the dataplane's (nts.ntp_server tells clients where NTP is); needs "
             "nts.certificate, nts.private_key and nts.cookie_keys_file; empty: no NTS-KE server"},
    {.sects = kNts, .name = "certificate", .type = Type::kString, .def = "\"\"", .hi = 255, .fmt = Fmt::kPath,
     .store = set<&Nts::certificate>,
     .help = "the NTS-KE server's certificate chain, PEM, server certificate first (its name or IP address "
             "is what clients check); read again on SIGHUP"},
    {.sects = kNts, .name = "private_key", .type = Type::kString, .def = "\"\"", .hi = 255, .fmt = Fmt::kPath,
     .store = set<&Nts::private_key>,
     .help = "the certificate's private key, PEM; a regular file, mode 0600, owned by ntp-control's user "
             "(refused otherwise); read again on SIGHUP"},
    {.sects = kNts, .name = "ke_max_sessions", .type = Type::kInt, .def = "64", .lo = 1, .hi = 4096,
     .store = set<&Nts::ke_max_sessions>,
     .help = "NTS-KE sessions open at once, a quarter of them (at least one) per client address; "
             "connections beyond are closed at once"},
    {.sects = kNts, .name = "ke_timeout_s", .type = Type::kFloat, .def = "2", .lo = 0.1, .hi = 60,
     .store = set<&Nts::ke_timeout_s>,
     .help = "an NTS-KE session's whole life, seconds from accept: one that has not been answered by then is "
             "closed (a slow or silent client holds a slot no longer)"},
    {.sects = kNts, .name = "ntp_server", .type = Type::kString, .fmt = Fmt::kUnicast,
     .store = set<&Nts::ntp_server>,
     .help = "NTPv4 Server Negotiation (RFC 8915 section 4.1.7): the address NTS-KE clients send NTP to, "
             "the dataplane's [[interface]] address; absent: the address they reached NTS-KE at",
     .example = "\"10.0.1.31\""},
    {.sects = kNts, .name = "ntp_port", .type = Type::kInt, .def = "123", .lo = 1, .hi = 65535,
     .store = set<&Nts::ntp_port>,
     .help = "NTPv4 Port Negotiation (RFC 8915 section 4.1.8): sent when not 123"},

    // -- [ratelimit] --------------------------------------------------------
    {.sects = kRateLimit, .name = "interval_log2", .type = Type::kInt, .def = "3", .lo = -4, .hi = 12,
     .store = set<&RateLimit::interval_log2>,
     .help = "`ntp-service discard avg-interval`, chrony's ratelimit interval: the least mean interval "
             "between a limited client's requests, log2 s"},
    {.sects = kRateLimit, .name = "burst", .type = Type::kInt, .def = "8", .lo = 1, .hi = 255,
     .store = set<&RateLimit::burst>,
     .help = "chrony's ratelimit burst: requests a limited client may send at once above the mean"},
    {.sects = kRateLimit, .name = "leak_log2", .type = Type::kInt, .def = "2", .lo = 1, .hi = 4,
     .store = set<&RateLimit::leak_log2>,
     .help = "chrony's ratelimit leak: over the limit, 1 in 2^leak requests is still answered (within the "
             "client's budget), so a client whose address is spoofed by a flood still gets time now and then"},
    {.sects = kRateLimit, .name = "min_interval_s", .type = Type::kFloat, .def = "0", .lo = 0, .hi = 3600,
     .store = set<&RateLimit::min_interval_s>,
     .help = "`ntp-service discard min-interval`: a request sooner than this after the client's previous "
             "one is over the limit, seconds; 0: off"},
    {.sects = kRateLimit, .name = "clients", .type = Type::kInt, .def = "1048576", .lo = 1024, .hi = 16777216,
     .fmt = Fmt::kPow2, .store = set<&RateLimit::clients>,
     .help = "clients each worker remembers (its table's entries; the memory is logged at start); the "
             "least recently seen in a full slot make way"},
    {.sects = kRateLimit, .name = "max_replies_per_s", .type = Type::kInt, .def = "0", .lo = 0,
     .hi = 100000000, .store = set<&RateLimit::max_replies_per_s>,
     .help = "per worker, the most answers per second to limited clients altogether (a reflection brake "
             "against many spoofed sources at once; set it to what the uplink should carry); 0: no cap, "
             "the per-client limits alone bound what each address receives"},

    // -- [dataplane] --------------------------------------------------------
    {.sects = kDataplane, .name = "main_lcore", .type = Type::kInt, .def = "0", .lo = 0, .hi = 1023,
     .store = set<&Dataplane::main_lcore>, .help = "EAL main lcore (housekeeping, not polling)"},
    {.sects = kDataplane, .name = "worker_lcores", .type = Type::kInts, .def = "[1]", .lo = 0, .hi = 1023,
     .min_entries = 1, .max_entries = 32, .unique_entries = true, .store = set<&Dataplane::worker_lcores>,
     .help = "one polling worker per lcore, each with one RX/TX queue pair per port; not the main lcore"},
    {.sects = kDataplane, .name = "worker_cpus", .type = Type::kInts, .def = "[]", .lo = 0, .hi = 1023,
     .min_entries = 0, .max_entries = 32, .store = set<&Dataplane::worker_cpus>,
     .help = "the CPU each worker lcore runs on, in worker_lcores' order (EAL --lcores); empty: lcore N on "
             "CPU N. Workers sharing a CPU share its time: for trying RSS on a small machine, not for service"},
    {.sects = kDataplane, .name = "eal_args", .type = Type::kStrings, .def = "[]", .lo = 1, .hi = kMaxLen,
     .min_entries = 0, .max_entries = 64, .store = set<&Dataplane::eal_args>,
     .help = "extra DPDK EAL arguments, e.g. [\"--no-huge\", \"--no-pci\", \"-m\", \"256\"]"},
    {.sects = kDataplane, .name = "burst_size", .type = Type::kInt, .def = "32", .lo = 1, .hi = 256,
     .store = set<&Dataplane::burst_size>, .help = "packets per rx_burst/tx_burst"},
    {.sects = kDataplane, .name = "rx_descriptors", .type = Type::kInt, .def = "1024", .lo = 64, .hi = 16384,
     .fmt = Fmt::kPow2, .store = set<&Dataplane::rx_descriptors>, .help = "RX ring size per queue"},
    {.sects = kDataplane, .name = "tx_descriptors", .type = Type::kInt, .def = "1024", .lo = 64, .hi = 16384,
     .fmt = Fmt::kPow2, .store = set<&Dataplane::tx_descriptors>, .help = "TX ring size per queue"},
    {.sects = kDataplane, .name = "mbufs", .type = Type::kInt, .def = "8191", .lo = 1023, .hi = 1048575,
     .store = set<&Dataplane::mbufs>, .help = "mbufs per pool (best 2^n - 1)"},
    {.sects = kDataplane, .name = "ring_size", .type = Type::kInt, .def = "1024", .lo = 64, .hi = 65536,
     .fmt = Fmt::kPow2, .store = set<&Dataplane::ring_size>,
     .help = "elements per channel ring between dataplane and control plane"},
    {.sects = kDataplane, .name = "idle_sleep_us", .type = Type::kInt, .def = "0", .lo = 0, .hi = 100000,
     .store = set<&Dataplane::idle_sleep_us>,
     .help = "sleep after an empty poll, microseconds; 0: busy poll (production)"},

    // -- [channel] ----------------------------------------------------------
    {.sects = kChannel, .name = "shm_name", .type = Type::kString, .lo = 2, .hi = 200, .fmt = Fmt::kShmName,
     .store = set<&Config::shm_name>,
     .help = "POSIX shared-memory name of the dataplane/control channel; default \"/ntp-\" followed "
             "by sysname",
     .example = "\"/ntp-DeviceC\""},
    {.sects = kChannel, .name = "control_user", .type = Type::kString, .def = "\"\"", .lo = 0, .hi = 32,
     .fmt = Fmt::kName, .store = set<&Config::control_user>,
     .help = "the user ntp-control runs as (the systemd unit's User=): the dataplane gives it the shared "
             "memory it creates (mode 0600), and the control plane refuses a segment it does not own; "
             "empty: the dataplane's own user"},
    {.sects = kChannel, .name = "lock_dir", .type = Type::kString, .def = "\"/run/ntp-appliance\"", .lo = 1,
     .hi = 200, .fmt = Fmt::kPath, .store = set<&Config::lock_dir>,
     .help = "directory of the daemons' instance locks (<name>.control.lock, <name>.dataplane.lock), where "
             "no other user can create files (in /dev/shm anyone could squat a lock and keep a daemon from "
             "starting): owned by root or the daemon's user, not writable by others, by its group only when "
             "sticky (deploy/systemd/ntp-appliance.tmpfiles.conf: 1770 root:ntp-appliance); made when missing "
             "(1770 for channel.control_user's group, else 0755)"},

    // -- [stats] ------------------------------------------------------------
    {.sects = kStats, .name = "listen", .type = Type::kString, .def = "\"127.0.0.1:9123\"", .lo = 3, .hi = 113,
     .fmt = Fmt::kHostPort, .store = set<&Config::stats_listen>,
     .help = "address of the stats endpoint (/metrics, /status) that ntpctl talks to: host:port, or "
             "unix:/path for a Unix socket (its directory must not be writable by others). TCP clients "
             "other than loopback need access.query, server or peer"},
    {.sects = kStats, .name = "max_connections", .type = Type::kInt, .def = "64", .lo = 1, .hi = 4096,
     .store = set<&Stats::max_connections>,
     .help = "stats connections open at once; more are closed as they are accepted; a quarter plus one of "
             "them is kept for clients on this host (at 1 the one slot is this host's: remote clients are shed)"},
    {.sects = kStats, .name = "request_timeout_s", .type = Type::kFloat, .def = "5", .lo = 0.1, .hi = 300,
     .store = set<&Stats::request_timeout_s>,
     .help = "a stats request must arrive whole, and its answer leave, within this, seconds (slowloris)"},

    // -- [[interface]] ------------------------------------------------------
    {.sects = kInterface, .name = "name", .type = Type::kString, .required = true, .lo = 1, .hi = 63,
     .unique_across = "interface names", .store = set<&Interface::name>,
     .help = "`interface <name>`: the operator's name for the port", .example = "\"GigabitEthernet0/1/0\""},
    {.sects = kInterface, .name = "device", .type = Type::kString, .required = true, .lo = 1, .hi = 255,
     .store = set<&Interface::device>,
     .help = "DPDK device: PCI address or vdev string. Several interfaces may share one (one port), each "
             "on its own VLAN, their subnets apart; the port's own keys (timestamping, tx_compensation_ns, "
             "emulated_nic_*) the same on each",
     .example = "\"net_af_packet0,iface=dpC\""},
    {.sects = kInterface, .name = "vlan", .type = Type::kInt, .def = "0", .lo = 0, .hi = 4094,
     .store = set<&Interface::vlan>,
     .help = "`interface <if>.<N>` / `vlan-type dot1q N`: the 802.1Q VLAN ID of this interface's frames, "
             "tagged on the wire (frames of other VLANs are dropped as vlan_not_ours); 0: untagged (and "
             "802.1p priority-tagged) frames"},
    {.sects = kInterface, .name = "address", .type = Type::kString, .required = true,
     .fmt = Fmt::kIfAddress, .unique_across = "addresses of interfaces, servers and peers",
     .store = [](Targets& t, const Value& v) {
       t.ifc->ipv4 = v.addr;
       t.ifc->prefix_len = v.len;
     },
     .help = "`ip address <ip> <mask>`: our address and subnet on this port (the dataplane answers ARP "
             "and ping for it)",
     .example = "\"10.0.1.31/24\""},
    {.sects = kInterface, .name = "gateway", .type = Type::kString, .fmt = Fmt::kUnicast,
     .store = set<&Interface::gateway>,
     .help = "next hop for destinations outside the subnet: a host of the subnet other than our "
             "address; absent: on-link only",
     .example = "\"10.0.1.1\""},
    {.sects = kInterface, .name = "ntp_server", .type = Type::kBool, .def = "false",
     .store = set<&Interface::ntp_server>,
     .help = "`ntp-service server source-interface <if>`: answer NTP client requests on this port"},
    {.sects = kInterface, .name = "timestamping", .type = Type::kString, .def = "\"auto\"",
     .fmt = Fmt::kChoice, .choices = "auto|software|hardware", .store = set<&Interface::timestamping>,
     .help = "receive timestamps: auto = the NIC's per-packet timestamps where the port offers them, "
             "else the TSC when the burst arrives; software = always the TSC; hardware = the NIC's or "
             "refuse to start"},
    {.sects = kInterface, .name = "tx_compensation_ns", .type = Type::kInt, .def = "0", .lo = -1000000,
     .hi = 1000000, .store = set<&Interface::tx_compensation_ns>,
     .help = "added to transmit timestamps, ns: how long after the TSC read before tx_burst the first "
             "bit leaves (see the README on calibrating it)"},
    {.sects = kInterface, .name = "emulated_nic_clock", .type = Type::kBool, .def = "false",
     .store = set<&Interface::emulated_nic_clock>,
     .help = "test/diagnostic: stamp every received and sent packet from a simulated NIC clock (RX and "
             "TX callbacks) and read that clock for the NIC-to-TSC mapping, so the hardware path runs "
             "without a timestamping NIC; off in production"},
    {.sects = kInterface, .name = "emulated_nic_hz", .type = Type::kFloat, .def = "1000000000", .lo = 1e6,
     .hi = 1e10, .store = set<&Interface::emulated_nic_hz>,
     .help = "emulated NIC clock: counter ticks per second (1e9: a nanosecond counter)"},
    {.sects = kInterface, .name = "emulated_nic_bits", .type = Type::kInt, .def = "64", .lo = 32, .hi = 64,
     .store = set<&Interface::emulated_nic_bits>, .help = "emulated NIC clock: counter width, bits"},
    {.sects = kInterface, .name = "emulated_nic_offset_ns", .type = Type::kFloat, .def = "0", .lo = -1e18,
     .hi = 1e18, .store = set<&Interface::emulated_nic_offset_ns>,
     .help = "emulated NIC clock: its reading at TSC zero, ns (where the counter starts)"},
    {.sects = kInterface, .name = "emulated_nic_frequency_ppm", .type = Type::kFloat, .def = "0", .lo = -1000,
     .hi = 1000, .store = set<&Interface::emulated_nic_frequency_ppm>,
     .help = "emulated NIC clock: its oscillator's frequency error against the TSC, ppm"},
    {.sects = kInterface, .name = "emulated_nic_read_jitter_ns", .type = Type::kFloat, .def = "0", .lo = 0,
     .hi = 1000000, .store = set<&Interface::emulated_nic_read_jitter_ns>,
     .help = "emulated NIC clock: gaussian noise of a clock read (rte_eth_read_clock), ns"},
    {.sects = kInterface, .name = "exception_path", .type = Type::kBool, .def = "false",
     .store = set<&Interface::exception_path>,
     .help = "the kernel exception path: a TAP interface (DPDK net_tap) with this interface's MAC and address, "
             "made by the dataplane in its network namespace; frames for our address the dataplane does not "
             "answer (TCP such as SSH, BGP or NTS-KE, UDP to other ports, ICMP but echo, fragments, ARP replies) "
             "go to it, and what the kernel sends there goes out through the port. The dataplane answers ARP "
             "requests for the address itself"},
    {.sects = kInterface, .name = "exception_interface", .type = Type::kString, .def = "\"\"", .hi = 15,
     .fmt = Fmt::kName,
     .store = set<&Interface::exception_interface>,
     .help = "the exception path's kernel interface name; empty: ntpx and the interface's index (ntpx0)"},
    {.sects = kInterface, .name = "exception_max_pps", .type = Type::kInt, .def = "10000", .lo = 1, .hi = 10000000,
     .store = set<&Interface::exception_max_pps>,
     .help = "per worker, the most frames a second handed to the kernel (each is a system call): beyond, "
             "dropped as exception_rate, so a flood of TCP to our address cannot take the worker from NTP"},

    // -- [[server]] and [[peer]] --------------------------------------------
    {.sects = kServer | kPeer, .name = "address", .type = Type::kString, .required = true,
     .fmt = Fmt::kUnicast, .unique_across = "addresses of interfaces, servers and peers",
     .store = set<&Association::address>,
     .help = "`unicast-server <ip>` / `unicast-peer <ip>`: the remote's IPv4 address",
     .example = "\"10.0.1.32\""},
    {.sects = kServer | kPeer, .name = "minpoll", .type = Type::kInt, .def = "6", .lo = -4, .hi = 17,
     .store = set<&Association::minpoll_log2>, .help = "shortest poll interval, log2 seconds"},
    {.sects = kServer | kPeer, .name = "maxpoll", .type = Type::kInt, .def = "10", .lo = -4, .hi = 17,
     .store = set<&Association::maxpoll_log2>, .help = "longest poll interval, log2 seconds; >= minpoll"},
    {.sects = kServer | kPeer, .name = "iburst", .type = Type::kBool, .def = "false",
     .store = set<&Association::iburst>, .help = "send a burst of packets while unreachable, to sync fast"},
    {.sects = kServer | kPeer, .name = "burst", .type = Type::kBool, .def = "false",
     .store = set<&Association::burst>, .help = "send a burst of packets at each poll"},
    {.sects = kServer | kPeer, .name = "prefer", .type = Type::kBool, .def = "false",
     .store = set<&Association::prefer>, .help = "prefer this source in selection"},
    {.sects = kServer | kPeer, .name = "version", .type = Type::kInt, .def = "4", .lo = 1, .hi = 4,
     .store = set<&Association::version>, .help = "NTP version of the packets we send"},
    {.sects = kServer | kPeer, .name = "port", .type = Type::kInt, .def = "123", .lo = 1, .hi = 65535,
     .store = set<&Association::port>, .help = "the remote's UDP port"},
    {.sects = kServer | kPeer, .name = "key", .type = Type::kInt, .def = "0", .lo = 0, .hi = 4294967295.0,
     .store = [](Targets& t, const Value& v) { t.assoc->key_id = static_cast<uint32_t>(v.i); },
     .help = "`unicast-server <ip> authentication-keyid <id>`: the auth.keys_file key that signs our packets "
             "and must sign the remote's (one of auth.trusted_keys); 0: none"},
    {.sects = kServer | kPeer, .name = "xleave", .type = Type::kBool, .def = "false",
     .store = set<&Association::xleave>,
     .help = "interleaved mode (RFC 9769, chrony's xleave): a [[server]] is asked for the real transmit "
             "time of its previous answer (client mode); to a [[peer]] each packet carries the real transmit "
             "time of our previous one, and its interleaved packets bring its own (symmetric mode). The "
             "remote's send delay leaves the sample; basic mode is used whenever the remote answers in it"},
    {.sects = kServer, .name = "nts", .type = Type::kBool, .def = "false", .store = set<&Association::nts>,
     .help = "Network Time Security (RFC 8915): NTS-KE (TLS 1.3) with the server for keys and cookies, then "
             "only answers authenticated with them are used; needs version 4 and no key"},
    {.sects = kServer, .name = "nts_ke_port", .type = Type::kInt, .def = "4460", .lo = 1, .hi = 65535,
     .store = set<&Association::nts_ke_port>, .help = "the server's NTS-KE TCP port"},
    {.sects = kServer, .name = "nts_ca_file", .type = Type::kString, .def = "\"\"", .hi = 255, .fmt = Fmt::kPath,
     .store = set<&Association::nts_ca_file>,
     .help = "PEM file of the certificate authorities the server's certificate must chain to; empty: the "
             "system's trust store"},
    {.sects = kServer, .name = "nts_pin_sha256", .type = Type::kString, .def = "\"\"", .hi = 64, .fmt = Fmt::kHex,
     .store = set<&Association::nts_pin_sha256>,
     .help = "SHA-256 (hex) of the server certificate's SubjectPublicKeyInfo in DER (openssl x509 -pubkey "
             "-noout, then openssl pkey -pubin -outform der, then sha256sum): the certificate must carry that key, whoever signed it (nts_ca_file is then "
             "not needed); empty: none"},
    {.sects = kServer, .name = "nts_name", .type = Type::kString, .def = "\"\"", .hi = 253, .fmt = Fmt::kName,
     .store = set<&Association::nts_name>,
     .help = "the name the server's certificate must carry, sent as the TLS server name; empty: the address "
             "(the certificate then needs it as an IP address)"},
};

// ===========================================================================
// Small helpers.

std::string num(int64_t v) { return std::to_string(v); }

// Shortest round-trip form, without exponent for ordinary magnitudes.
std::string num(double v) {
  char buf[64];
  const bool plain = v > -1e15 && v < 1e15;
  auto r = plain ? std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed)
                 : std::to_chars(buf, buf + sizeof buf, v);
  return r.ec == std::errc() ? std::string(buf, r.ptr) : std::string("?");
}

std::string range(double lo, double hi) { return num(lo) + ".." + num(hi); }

std::string ip(uint32_t a) { return proto::ipv4_to_string(a); }

// A user string, quoted and escaped for a message, shortened when long.
std::string quote(std::string_view s) {
  constexpr size_t kMax = 64;
  bool cut = false;
  if (s.size() > kMax) {
    size_t n = kMax;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // UTF-8 boundary
    s = s.substr(0, n);
    cut = true;
  }
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += cut ? "...\"" : "\"";
  return out;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// The closest candidate, if close enough to be a plausible typo.
std::optional<std::string> closest(std::string_view word, const std::vector<std::string>& candidates) {
  if (word.empty() || word.size() > 64) return std::nullopt;
  std::optional<std::string> best;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    const bool prefix = word.size() >= 3 && (c.starts_with(word) || word.starts_with(c));
    if ((d <= std::max<size_t>(1, c.size() / 3) || prefix) && d < best_d) {
      best = c;
      best_d = d;
    }
  }
  return best;
}

// "clock.", "interface[]." or "" for the top level: the prefix of a key in
// the docs.
std::string doc_prefix(const SectionSpec& s) {
  if (s.sect == kTop) return "";
  return std::string(s.name) + (s.array ? "[]." : ".");
}

const char* type_name(Type t) {
  switch (t) {
    case Type::kBool: return "boolean";
    case Type::kInt: return "integer";
    case Type::kFloat: return "float";
    case Type::kString: return "string";
    case Type::kInts: return "array of integers";
    case Type::kStrings: return "array of strings";
  }
  return "?";
}

const char* node_type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "table";
    case toml::node_type::array: return "array";
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    default: return "nothing";
  }
}

std::vector<std::string> split_choices(const char* choices) {
  std::vector<std::string> out;
  std::string_view s = choices ? choices : "";
  while (!s.empty()) {
    const size_t bar = s.find('|');
    out.emplace_back(s.substr(0, bar));
    if (bar == std::string_view::npos) break;
    s.remove_prefix(bar + 1);
  }
  return out;
}

std::string choices_text(const char* choices) {
  std::string out;
  for (const auto& c : split_choices(choices)) out += (out.empty() ? "\"" : ", \"") + c + "\"";
  return out;
}

bool name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// Decimal without sign or leading zeros, at most `max_digits` digits.
std::optional<uint32_t> parse_decimal(std::string_view s, size_t max_digits) {
  if (s.empty() || s.size() > max_digits || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  return v;
}

std::string prefix_str(uint32_t a, int len) { return ip(a) + "/" + std::to_string(len); }

// Why an address cannot be a unicast peer address, or nullopt.
std::optional<std::string> not_unicast(uint32_t a) {
  if (a == 0) return "0.0.0.0 is the unspecified address";
  if (a >> 24 == 0) return ip(a) + " is in 0.0.0.0/8 (\"this network\")";
  if (a >> 24 == 127) return ip(a) + " is a loopback address (127.0.0.0/8)";
  if (a >> 28 == 0xE) return ip(a) + " is a multicast address (224.0.0.0/4)";
  if (a == 0xFFFFFFFF) return "255.255.255.255 is the limited broadcast address";
  return std::nullopt;
}

// Text for the docs' range column.
std::string range_text(const KeySpec& k) {
  std::string each;
  switch (k.fmt) {
    case Fmt::kText:
      each = k.lo > 0 ? range(k.lo, k.hi) + " characters" : "up to " + num(k.hi) + " characters";
      break;
    case Fmt::kChoice: each = choices_text(k.choices); break;
    case Fmt::kName: each = range(k.lo, k.hi) + " of A-Z a-z 0-9 . _ -"; break;
    case Fmt::kShmName: each = "\"/\" then " + range(k.lo - 1, k.hi - 1) + " of A-Z a-z 0-9 . _ -"; break;
    case Fmt::kPath: each = k.lo > 0 ? "absolute path" : "absolute path, or empty"; break;
    case Fmt::kHostPort: each = "a.b.c.d:port or localhost:port, port 1..65535, or unix:/absolute/path"; break;
    case Fmt::kPrefix: each = "a.b.c.d/len, len 0..32, host bits zero"; break;
    case Fmt::kIfAddress:
      each = "a.b.c.d/len, len 1..32, a unicast host address (not the subnet's network or broadcast "
             "address)";
      break;
    case Fmt::kUnicast:
      each = "a.b.c.d, unicast (not 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4, 255.255.255.255)";
      break;
    case Fmt::kPow2: each = "power of two, " + range(k.lo, k.hi); break;
    case Fmt::kIpPort: each = "a.b.c.d:port, port 1..65535, or empty"; break;
    case Fmt::kHex: each = "empty, or " + num(k.hi) + " hexadecimal digits"; break;
  }
  if (k.type == Type::kInt || k.type == Type::kFloat || k.type == Type::kInts) {
    if (k.fmt != Fmt::kPow2) each = range(k.lo, k.hi);
  }
  if (k.type == Type::kBool) each = "";
  std::string out = each;
  if (k.type == Type::kInts || k.type == Type::kStrings) {
    out = std::to_string(k.min_entries) + ".." + std::to_string(k.max_entries) + " entries, each " + each;
    if (k.unique_entries) out += ", unique";
  }
  if (k.unique_across) out += "; unique among " + std::string(k.unique_across);
  return out;
}

// ===========================================================================
// Errors and conversion of one value.

class Errors {
 public:
  explicit Errors(std::string_view file) : file_(file) {}
  void add(int line, int column, std::string key, std::string message) {
    list_.push_back(Error{file_, line, column, std::move(key), std::move(message)});
  }
  void add(const toml::source_position& p, std::string key, std::string message) {
    add(static_cast<int>(p.line), static_cast<int>(p.column), std::move(key), std::move(message));
  }
  void add(const toml::node& n, std::string key, std::string message) {
    add(n.source().begin, std::move(key), std::move(message));
  }
  std::vector<Error>& list() { return list_; }
  bool empty() const { return list_.empty(); }

 private:
  std::string file_;
  std::vector<Error> list_;
};

// Checks an integer against a row's range and format.
bool check_int(const KeySpec& k, int64_t v, const toml::node& n, const std::string& key, Errors& errs) {
  if (static_cast<double>(v) < k.lo || static_cast<double>(v) > k.hi) {
    errs.add(n, key,
             (k.noun ? std::string(k.noun) + " " : "") + num(v) + " out of range " +
                 (k.fmt == Fmt::kPow2 ? "(power of two) " : "") + range(k.lo, k.hi));
    return false;
  }
  if (k.fmt == Fmt::kPow2 && (v <= 0 || (v & (v - 1)) != 0)) {
    errs.add(n, key, num(v) + " is not a power of two (allowed: power of two, " + range(k.lo, k.hi) + ")");
    return false;
  }
  return true;
}

// Checks a string against a row's length and format; fills out.s and, for
// address formats, out.addr/out.len.
bool check_string(const KeySpec& k, std::string_view s, const toml::node& n, const std::string& key,
                   Errors& errs, Value& out) {
  auto fail = [&](std::string msg) {
    errs.add(n, key, std::move(msg));
    return false;
  };
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "0x%02X", u);
      return fail(quote(s) + " contains a control character (" + buf + ")");
    }
  }
  if (k.hi > 0 && s.size() < k.lo) {  // length limits, where the row has them
    if (s.empty()) return fail("empty string; allowed: " + range_text(k));
    return fail(quote(s) + " is too short (" + std::to_string(s.size()) + " characters); allowed: " +
                range_text(k));
  }
  if (k.hi > 0 && s.size() > k.hi) {
    return fail(quote(s) + " is too long (" + std::to_string(s.size()) + " characters, at most " +
                num(k.hi) + ")");
  }
  out.s = std::string(s);
  switch (k.fmt) {
    case Fmt::kText:
    case Fmt::kPow2:
      return true;
    case Fmt::kChoice: {
      const auto choices = split_choices(k.choices);
      if (std::find(choices.begin(), choices.end(), s) != choices.end()) return true;
      std::string msg = quote(s) + " is not one of " + choices_text(k.choices);
      if (auto c = closest(s, choices)) msg += " (did you mean \"" + *c + "\"?)";
      return fail(msg);
    }
    case Fmt::kName:
    case Fmt::kShmName: {
      size_t i = 0;
      if (k.fmt == Fmt::kShmName) {
        if (s[0] != '/') return fail(quote(s) + " must start with \"/\"");
        i = 1;
      }
      for (; i < s.size(); ++i) {
        if (!name_char(s[i])) {
          return fail(quote(s) + " contains " + quote(s.substr(i, 1)) + "; allowed: " + range_text(k));
        }
      }
      return true;
    }
    case Fmt::kPath:
      if (!s.empty() && s[0] != '/') return fail(quote(s) + " is not an absolute path");
      return true;
    case Fmt::kHostPort: {
      if (s.starts_with("unix:")) {
        const std::string_view path = s.substr(5);
        if (path.empty() || path[0] != '/') return fail(quote(s) + ": the socket path after unix: is not absolute");
        if (path.size() > 107) return fail(quote(s) + ": a Unix socket path has at most 107 characters");
        if (path.back() == '/') return fail(quote(s) + ": the socket path names a directory");
        return true;
      }
      const size_t colon = s.rfind(':');
      if (colon == std::string_view::npos) {
        return fail(quote(s) + " is not host:port (e.g. \"127.0.0.1:9123\")");
      }
      const std::string_view host = s.substr(0, colon);
      if (host != "localhost" && !proto::parse_ipv4(host)) {
        return fail("host " + quote(host) + " in " + quote(s) +
                    " is neither an IPv4 address a.b.c.d nor \"localhost\"");
      }
      // The daemons and ntpctl read it with proto::split_host_port; the file
      // also refuses leading zeros.
      if (!proto::parse_port(s.substr(colon + 1)) || s[colon + 1] == '0') {
        return fail("port " + quote(s.substr(colon + 1)) + " in " + quote(s) + " is not a number 1..65535");
      }
      return true;
    }
    case Fmt::kHex: {
      if (s.empty()) return true;
      if (s.size() != static_cast<size_t>(k.hi))
        return fail(quote(s) + " has " + std::to_string(s.size()) + " characters, not " + num(k.hi) +
                    " hexadecimal digits");
      for (size_t i = 0; i < s.size(); ++i)
        if (!std::isxdigit(static_cast<unsigned char>(s[i])))
          return fail(quote(s) + " contains " + quote(s.substr(i, 1)) + ", not a hexadecimal digit");
      return true;
    }
    case Fmt::kIpPort: {
      if (s.empty()) return true;
      const size_t colon = s.rfind(':');
      if (colon == std::string_view::npos) return fail(quote(s) + " is not a.b.c.d:port (e.g. \"10.0.3.1:4460\")");
      if (!proto::parse_ipv4(s.substr(0, colon)))
        return fail("host " + quote(s.substr(0, colon)) + " in " + quote(s) + " is not an IPv4 address a.b.c.d");
      if (!proto::parse_port(s.substr(colon + 1)) || s[colon + 1] == '0')
        return fail("port " + quote(s.substr(colon + 1)) + " in " + quote(s) + " is not a number 1..65535");
      return true;
    }
    case Fmt::kUnicast: {
      const auto a = proto::parse_ipv4(s);
      if (!a) return fail(quote(s) + " is not an IPv4 address (a.b.c.d, each part 0..255)");
      if (auto why = not_unicast(*a)) return fail(*why + "; a unicast address is required");
      out.addr = *a;
      return true;
    }
    case Fmt::kPrefix:
    case Fmt::kIfAddress: {
      const int min_len = k.fmt == Fmt::kPrefix ? 0 : 1;
      const size_t slash = s.find('/');
      if (slash == std::string_view::npos) {
        return fail(quote(s) + " has no prefix length (expected a.b.c.d/len, len " + std::to_string(min_len) +
                    "..32)");
      }
      const auto a = proto::parse_ipv4(s.substr(0, slash));
      if (!a) {
        return fail(quote(s.substr(0, slash)) + " in " + quote(s) +
                    " is not an IPv4 address (a.b.c.d, each part 0..255)");
      }
      const auto len = parse_decimal(s.substr(slash + 1), 2);
      if (!len || static_cast<int>(*len) < min_len || *len > 32) {
        return fail("prefix length " + quote(s.substr(slash + 1)) + " in " + quote(s) + " out of range " +
                    std::to_string(min_len) + "..32");
      }
      const int l = static_cast<int>(*len);
      const uint32_t mask = proto::netmask(static_cast<unsigned>(l));
      const uint32_t net = *a & mask;
      if (k.fmt == Fmt::kPrefix) {
        if (net != *a) {
          return fail("host bits set in " + quote(s) + " (did you mean \"" + prefix_str(net, l) + "\"?)");
        }
      } else {
        if (l <= 30 && (*a == net || *a == (net | ~mask))) {
          return fail(ip(*a) + " is the " + (*a == net ? "network" : "broadcast") + " address of " +
                      prefix_str(net, l) + "; use a host address, " + ip(net + 1) + ".." +
                      ip((net | ~mask) - 1));
        }
        if (auto why = not_unicast(*a)) return fail(*why + "; a unicast address is required");
      }
      out.addr = *a;
      out.len = static_cast<uint8_t>(l);
      return true;
    }
  }
  return true;
}

// Converts and checks one node for a row. `key` is the dotted path.
bool convert(const KeySpec& k, const toml::node& n, const std::string& key, Errors& errs, Value& out) {
  auto wrong_type = [&](const toml::node& at, const std::string& at_key, const char* expected) {
    errs.add(at, at_key, std::string("expected ") + expected + ", got " + node_type_name(at));
    return false;
  };
  switch (k.type) {
    case Type::kBool:
      if (!n.is_boolean()) return wrong_type(n, key, "boolean");
      out.b = n.as_boolean()->get();
      return true;
    case Type::kInt:
      if (!n.is_integer()) return wrong_type(n, key, "integer");
      out.i = n.as_integer()->get();
      return check_int(k, out.i, n, key, errs);
    case Type::kFloat: {
      if (n.is_integer()) {
        out.f = static_cast<double>(n.as_integer()->get());
      } else if (n.is_floating_point()) {
        out.f = n.as_floating_point()->get();
      } else {
        return wrong_type(n, key, "float (or integer)");
      }
      if (!(out.f >= k.lo && out.f <= k.hi)) {  // also refuses nan
        errs.add(n, key, (k.noun ? std::string(k.noun) + " " : "") + num(out.f) + " out of range " +
                             range(k.lo, k.hi));
        return false;
      }
      return true;
    }
    case Type::kString:
      if (!n.is_string()) return wrong_type(n, key, "string");
      return check_string(k, n.as_string()->get(), n, key, errs, out);
    case Type::kInts:
    case Type::kStrings: {
      const toml::array* arr = n.as_array();
      if (!arr) return wrong_type(n, key, type_name(k.type));
      bool ok = true;
      if (arr->size() < k.min_entries || arr->size() > k.max_entries) {
        errs.add(n, key,
                 std::to_string(arr->size()) + " entries, allowed " + std::to_string(k.min_entries) + ".." +
                     std::to_string(k.max_entries));
        ok = false;
      }
      for (size_t i = 0; i < arr->size() && i <= k.max_entries; ++i) {
        const toml::node& e = *arr->get(i);
        const std::string ekey = key + "[" + std::to_string(i) + "]";
        if (k.type == Type::kInts) {
          if (!e.is_integer()) {
            ok = wrong_type(e, ekey, "integer") && ok;
            continue;
          }
          const int64_t v = e.as_integer()->get();
          if (!check_int(k, v, e, ekey, errs)) {
            ok = false;
            continue;
          }
          if (k.unique_entries) {
            const auto dup = std::find(out.ints.begin(), out.ints.end(), v);
            if (dup != out.ints.end()) {
              errs.add(e, ekey,
                       "duplicate entry " + num(v) + " (also " + key + "[" +
                           std::to_string(dup - out.ints.begin()) + "])");
              ok = false;
            }
          }
          out.ints.push_back(v);
        } else {
          if (!e.is_string()) {
            ok = wrong_type(e, ekey, "string") && ok;
            continue;
          }
          Value ev;
          if (!check_string(k, e.as_string()->get(), e, ekey, errs, ev)) {
            ok = false;
            continue;
          }
          if (k.unique_entries &&
              std::find(out.strs.begin(), out.strs.end(), ev.s) != out.strs.end()) {
            errs.add(e, ekey, "duplicate entry " + quote(ev.s));
            ok = false;
          }
          out.strs.push_back(ev.s);
          if (k.fmt == Fmt::kPrefix) out.prefixes.emplace_back(ev.addr, ev.len);
        }
      }
      return ok;
    }
  }
  return false;
}

size_t index_of(const KeySpec& k) { return static_cast<size_t>(&k - kKeys); }

// The table's defaults, converted once through the same path as file values.
const std::vector<std::optional<Value>>& default_values() {
  static const std::vector<std::optional<Value>> values = [] {
    std::vector<std::optional<Value>> v(std::size(kKeys));
    for (const KeySpec& k : kKeys) {
      if (!k.def) continue;
      try {
        const std::string doc = std::string("v = ") + k.def;
        const toml::table t = toml::parse(std::string_view(doc), std::string_view("<default>"));
        Errors errs("<default>");
        Value value;
        if (const toml::node* n = t.get("v"); n && convert(k, *n, k.name, errs, value)) {
          v[index_of(k)] = std::move(value);
        }
      } catch (...) {
        // A bad default literal: the unit tests catch it (the key then
        // keeps the struct's initializer).
      }
    }
    return v;
  }();
  return values;
}

// ===========================================================================
// Cross-key checks: what no single row can express.

struct Seen {
  const KeySpec* spec;
  const toml::node* node;
  bool ok;
  Value value;
};

// One table of a section as the checks see it.
struct TableView {
  const std::string& prefix;  // "dataplane.", "interface[1]."
  std::vector<Seen>& seen;
  Errors& errs;

  const Seen* find(std::string_view name) const {
    for (const auto& s : seen)
      if (s.spec->name == name) return &s;
    return nullptr;
  }
  // The effective value: from the file if given and valid, else the
  // default; nullptr when given but invalid, or absent without default.
  const Value* value(std::string_view name, unsigned sect) const {
    if (const Seen* s = find(name)) return s->ok ? &s->value : nullptr;
    for (const KeySpec& k : kKeys) {
      if ((k.sects & sect) && k.name == name) {
        const auto& d = default_values()[index_of(k)];
        return d ? &*d : nullptr;
      }
    }
    return nullptr;
  }
};

void check_lcores(TableView& v) {
  const Value* main = v.value("main_lcore", kDataplane);
  const Value* workers = v.value("worker_lcores", kDataplane);
  if (!main || !workers) return;
  if (const Value* cpus = v.value("worker_cpus", kDataplane);
      cpus && !cpus->ints.empty() && cpus->ints.size() != workers->ints.size()) {
    if (const Seen* cs = v.find("worker_cpus"))
      v.errs.add(*cs->node, v.prefix + "worker_cpus",
                 num(static_cast<int64_t>(cpus->ints.size())) + " CPUs for " +
                     num(static_cast<int64_t>(workers->ints.size())) +
                     " worker lcores (dataplane.worker_lcores): one each, in the same order");
  }
  const Seen* ws = v.find("worker_lcores");
  for (size_t i = 0; i < workers->ints.size(); ++i) {
    if (workers->ints[i] != main->i) continue;
    if (ws) {
      const toml::node* e = ws->node->as_array() ? ws->node->as_array()->get(i) : nullptr;
      v.errs.add(e ? *e : *ws->node, v.prefix + "worker_lcores[" + std::to_string(i) + "]",
                 "lcore " + num(main->i) + " is the main lcore (dataplane.main_lcore); workers need other lcores");
    } else if (const Seen* ms = v.find("main_lcore")) {
      v.errs.add(*ms->node, v.prefix + "main_lcore",
                 "lcore " + num(main->i) + " is also a worker lcore (dataplane.worker_lcores defaults to [1])");
    }
  }
}

void check_gateway(TableView& v) {
  const Seen* gw = v.find("gateway");
  const Value* addr = v.value("address", kInterface);
  if (!gw || !gw->ok || !addr) return;
  const uint32_t g = gw->value.addr;
  const uint32_t mask = proto::netmask(static_cast<unsigned>(addr->len));
  const uint32_t net = addr->addr & mask;
  const std::string subnet = prefix_str(net, addr->len);
  const std::string key = v.prefix + "gateway";
  if (g == addr->addr) {
    v.errs.add(*gw->node, key, "gateway " + ip(g) + " is this interface's own address");
  } else if ((g & mask) != net) {
    v.errs.add(*gw->node, key, "gateway " + ip(g) + " is outside the interface's subnet " + subnet);
  } else if (addr->len <= 30 && (g == net || g == (net | ~mask))) {
    v.errs.add(*gw->node, key,
               "gateway " + ip(g) + " is the " + (g == net ? "network" : "broadcast") + " address of " + subnet);
  }
}

void check_poll(TableView& v) {
  const unsigned sect = kServer | kPeer;
  const Value* minp = v.value("minpoll", sect);
  const Value* maxp = v.value("maxpoll", sect);
  if (!minp || !maxp || minp->i <= maxp->i) return;
  const Seen* at = v.find("minpoll");
  if (!at) at = v.find("maxpoll");
  if (!at) return;
  v.errs.add(*at->node, v.prefix + at->spec->name,
             "minpoll " + num(minp->i) + " is greater than maxpoll " + num(maxp->i));
}

void check_passive_poll(TableView& v) {
  const Value* minp = v.value("passive_minpoll_log2", kNtp);
  const Value* maxp = v.value("passive_maxpoll_log2", kNtp);
  if (!minp || !maxp || minp->i <= maxp->i) return;
  const Seen* at = v.find("passive_minpoll_log2");
  if (!at) at = v.find("passive_maxpoll_log2");
  if (!at) return;
  v.errs.add(*at->node, v.prefix + at->spec->name,
             "passive_minpoll_log2 " + num(minp->i) + " is greater than passive_maxpoll_log2 " + num(maxp->i));
}

void check_clock(TableView& v) {
  const Value* source = v.value("source", kClock);
  const Value* phc = v.value("phc", kClock);
  const Seen* src = v.find("source");
  if (source && source->s == "phc" && !phc && src)
    v.errs.add(*src->node, v.prefix + "source",
               "source = \"phc\" needs clock.phc, the PHC to follow (e.g. \"/dev/ptp0\")");
  const Seen* steer = v.find("steer_phc");
  if (source && source->s == "phc" && phc && steer && steer->ok && steer->value.s == phc->s)
    v.errs.add(*steer->node, v.prefix + "steer_phc",
               "steer_phc " + quote(phc->s) + " is the clock source itself (clock.phc): a clock cannot follow itself");
}

// An NTS-KE server needs its certificate, its key and the cookie keys it
// hands out cookies of.
void check_nts(TableView& v) {
  const Seen* listen = v.find("ke_listen");
  if (!listen || !listen->ok || listen->value.s.empty()) return;
  for (const char* need : {"certificate", "private_key", "cookie_keys_file"}) {
    const Value* val = v.value(need, kNts);
    if (val && val->s.empty())
      v.errs.add(*listen->node, v.prefix + "ke_listen",
                 std::string("an NTS-KE server needs nts.") + need +
                     (std::string_view(need) == "cookie_keys_file" ? " (the keys its cookies are sealed with)"
                                                                   : " (TLS)"));
  }
}

// Interleaved mode (client or symmetric) is NTPv4's.
void check_xleave(TableView& v) {
  const Value* xleave = v.value("xleave", kServer | kPeer);
  const Value* ver = v.value("version", kServer | kPeer);
  if (const Seen* x = v.find("xleave"); x && xleave && xleave->b && ver && ver->i != 4)
    v.errs.add(*x->node, v.prefix + "xleave", "interleaved mode is NTPv4's (RFC 9769): version is " + num(ver->i));
}

// NTS is NTPv4's and replaces a key; its options mean nothing without it.
void check_server_nts(TableView& v) {
  const Value* nts = v.value("nts", kServer);
  const Seen* at = v.find("nts");
  if (nts && nts->b && at) {
    const Value* key = v.value("key", kServer);
    if (key && key->i != 0)
      v.errs.add(*at->node, v.prefix + "nts", "nts and key " + num(key->i) + " both authenticate: choose one");
    const Value* version = v.value("version", kServer);
    if (version && version->i != 4)
      v.errs.add(*at->node, v.prefix + "nts", "NTS is NTPv4's (RFC 8915): version is " + num(version->i));
    return;
  }
  // Written at its default it says nothing; otherwise it was meant to do something.
  for (const char* opt : {"nts_ke_port", "nts_ca_file", "nts_pin_sha256", "nts_name"}) {
    const Seen* s = v.find(opt);
    const bool set = s && s->ok && (std::string_view(opt) == "nts_ke_port" ? s->value.i != 4460 : !s->value.s.empty());
    if (set) v.errs.add(*s->node, v.prefix + opt, std::string(opt) + " has no effect without nts = true");
  }
}

struct CrossCheck {
  unsigned sects;
  void (*check)(TableView& v);
};

constexpr CrossCheck kCrossChecks[] = {
    {kDataplane, check_lcores},             // worker_lcores must not contain main_lcore
    {kInterface, check_gateway},            // gateway inside the subnet, not our address
    {kServer | kPeer, check_poll},          // minpoll <= maxpoll
    {kServer | kPeer, check_xleave},        // xleave: version 4
    {kServer, check_server_nts},            // nts: version 4, no key; nts_* only with nts
    {kNtp, check_passive_poll},             // passive_minpoll_log2 <= passive_maxpoll_log2
    {kClock, check_clock},                  // source = phc names its PHC; steer_phc is not the source
    {kNts, check_nts},                      // ke_listen has a certificate, a key and cookie keys
};

// ===========================================================================
// The loader: walks the document along the tables.

class Loader {
 public:
  explicit Loader(Errors& errs) : errs_(errs) {}

  void run(const toml::table& root, Config& cfg) {
    Targets t{&cfg};
    for (const auto& s : kSections)
      if (!s.array) apply_defaults(s.sect, t);
    table(kTop, root, "", t);
    for (const SectionSpec& s : kSections) {
      if (s.sect == kTop) continue;
      const toml::node* n = root.get(s.name);
      if (!s.array) {
        if (!n) continue;
        if (const toml::table* tb = n->as_table()) {
          table(s.sect, *tb, std::string(s.name) + ".", t);
        } else {
          errs_.add(*n, s.name,
                    std::string("expected a table ([") + s.name + "]), got " + node_type_name(*n));
        }
        continue;
      }
      const toml::array* arr = n ? n->as_array() : nullptr;
      if (n && !arr) {
        errs_.add(*n, s.name,
                  std::string("expected an array of tables ([[") + s.name + "]]), got " + node_type_name(*n));
        continue;
      }
      const size_t count = arr ? arr->size() : 0;
      if (count < s.min_count) {
        errs_.add(arr ? arr->source().begin : root.source().begin, s.name,
                  "at least " + std::to_string(s.min_count) + " [[" + s.name + "]] table" +
                      (s.min_count == 1 ? "" : "s") + " required, found " + std::to_string(count));
      }
      for (size_t i = 0; i < count; ++i) {
        const toml::node& e = *arr->get(i);
        const std::string key = std::string(s.name) + "[" + std::to_string(i) + "]";
        if (i >= s.max_count) {
          errs_.add(e, key,
                    "too many [[" + std::string(s.name) + "]] tables: at most " + std::to_string(s.max_count));
          break;
        }
        const toml::table* et = e.as_table();
        if (!et) {
          errs_.add(e, key, std::string("expected a table, got ") + node_type_name(e));
          continue;
        }
        s.add(cfg, t);
        apply_defaults(s.sect, t);
        table(s.sect, *et, key + ".", t);
      }
    }
    if (cfg.shm_name.empty()) cfg.shm_name = "/ntp-" + cfg.sysname;  // derived default
    check_auth(root, cfg);
    check_association_count(root, cfg);
    check_shared_ports(root, cfg);
  }

 private:
  static void apply_defaults(unsigned sect, Targets& t) {
    for (const KeySpec& k : kKeys) {
      if (!(k.sects & sect)) continue;
      if (const auto& d = default_values()[index_of(k)]) k.store(t, *d);
    }
  }

  // Interfaces on one device are one port: each on its own VLAN, with
  // subnets apart (one neighbour table answers for the port's addresses),
  // no exception path yet (its TAP takes untagged frames of one address),
  // and the port's own keys alike. Reported at the later interface.
  void check_shared_ports(const toml::table& root, const Config& cfg) {
    const toml::array* arr = root.get("interface") ? root.get("interface")->as_array() : nullptr;
    if (!arr) return;
    auto at = [&](size_t i, const char* k) -> const toml::node& {
      const toml::table* t = i < arr->size() ? arr->get(i)->as_table() : nullptr;
      const toml::node* n = t ? t->get(k) : nullptr;
      return n ? *n : (t ? static_cast<const toml::node&>(*t) : static_cast<const toml::node&>(root));
    };
    const auto& ifs = cfg.interfaces;
    std::vector<bool> shared(ifs.size(), false);
    for (size_t i = 0; i < ifs.size(); i++) {
      const std::string key = "interface[" + std::to_string(i) + "].";
      std::optional<size_t> first;
      for (size_t j = 0; j < i; j++) {
        if (ifs[i].device != ifs[j].device) continue;
        if (!first) first = j;
        shared[i] = shared[j] = true;
        const std::string other = "interface[" + std::to_string(j) + "] (" + ifs[j].name + ")";
        if (ifs[i].vlan == ifs[j].vlan)
          errs_.add(at(i, "vlan"), key + "vlan",
                    (ifs[i].vlan ? "VLAN " + std::to_string(ifs[i].vlan) : std::string("untagged")) +
                        " on device " + quote(ifs[i].device) + " is already " + other +
                        "'s: interfaces sharing a device need a VLAN each");
        const unsigned len = std::min(ifs[i].prefix_len, ifs[j].prefix_len);
        if (proto::in_prefix(ifs[i].ipv4, ifs[j].ipv4 & proto::netmask(len), len))
          errs_.add(at(i, "address"), key + "address",
                    "subnet overlaps " + other + "'s on the same device: one port's subnets must be apart");
      }
      if (!first) continue;
      const Interface& a = ifs[i];
      const Interface& b = ifs[*first];
      const struct {
        const char* name;
        bool same;
      } port_keys[] = {
          {"timestamping", a.timestamping == b.timestamping},
          {"tx_compensation_ns", a.tx_compensation_ns == b.tx_compensation_ns},
          {"emulated_nic_clock", a.emulated_nic_clock == b.emulated_nic_clock && a.emulated_nic_hz == b.emulated_nic_hz &&
                                     a.emulated_nic_bits == b.emulated_nic_bits &&
                                     a.emulated_nic_offset_ns == b.emulated_nic_offset_ns &&
                                     a.emulated_nic_frequency_ppm == b.emulated_nic_frequency_ppm &&
                                     a.emulated_nic_read_jitter_ns == b.emulated_nic_read_jitter_ns},
      };
      for (const auto& pk : port_keys)
        if (!pk.same)
          errs_.add(at(i, pk.name), key + pk.name,
                    "differs from interface[" + std::to_string(*first) + "] (" + b.name +
                        ")'s on the same device: it is the port's");
    }
    for (size_t k = 0; k < ifs.size(); k++)
      if (shared[k] && ifs[k].exception_path)
        errs_.add(at(k, "exception_path"), "interface[" + std::to_string(k) + "].exception_path",
                  "not on a device several interfaces share (yet): its TAP takes one address's untagged frames");
    // A VLAN interface's exception path would hand the kernel tagged frames.
    for (size_t k = 0; k < ifs.size(); k++)
      if (!shared[k] && ifs[k].vlan && ifs[k].exception_path)
        errs_.add(at(k, "exception_path"), "interface[" + std::to_string(k) + "].exception_path",
                  "not on a VLAN interface (yet): its TAP takes untagged frames");
  }

  // Across tables: an association's key is a trusted key of a keys file,
  // and the [auth] switches have keys to work with. Whether the file holds
  // them is the host check's (it reads the file).
  void check_auth(const toml::table& root, const Config& cfg) {
    const toml::table* auth = root.get("auth") ? root.get("auth")->as_table() : nullptr;
    const bool keys = !cfg.auth.keys_file.empty();
    for (const char* what : {"trusted_keys", "authenticate"}) {
      const toml::node* n = auth ? auth->get(what) : nullptr;
      const bool used = std::string_view(what) == "authenticate" ? cfg.auth.authenticate : !cfg.auth.trusted_keys.empty();
      if (n && used && !keys)
        errs_.add(*n, std::string("auth.") + what, std::string("auth.") + what + " needs auth.keys_file, the keys it names");
    }
    for (const char* name : {"server", "peer"}) {
      const std::vector<Association>& list = std::string_view(name) == "server" ? cfg.servers : cfg.peers;
      const toml::array* arr = root.get(name) ? root.get(name)->as_array() : nullptr;
      size_t i = 0;  // index into list: only tables were added to it
      for (size_t j = 0; arr && j < arr->size() && i < list.size(); j++) {
        const toml::table* et = arr->get(j)->as_table();
        if (!et) continue;
        const Association& a = list[i++];
        const toml::node* n = et->get("key");
        if (!n || a.key_id == 0) continue;
        const std::string key = std::string(name) + "[" + std::to_string(j) + "].key";
        const std::string id = num(int64_t{a.key_id});
        if (!keys)
          errs_.add(*n, key, "key " + id + " needs auth.keys_file, the file that holds it");
        else if (std::find(cfg.auth.trusted_keys.begin(), cfg.auth.trusted_keys.end(), a.key_id) ==
                 cfg.auth.trusted_keys.end())
          errs_.add(*n, key,
                    "key " + id + " is not in auth.trusted_keys (add it there: the vendor's `ntp-service reliable "
                    "authentication-keyid " + id + "`)");
      }
    }
  }

  // The dataplane forwards the configured associations' packets by a table
  // of proto::kMaxAssocEndpoints endpoints: one beyond it would never hear back.
  void check_association_count(const toml::table& root, const Config& cfg) {
    const size_t total = cfg.servers.size() + cfg.peers.size();
    if (total <= proto::kMaxAssocEndpoints) return;
    // Said at the table that goes over: the peers come after the servers.
    const bool in_peers = cfg.servers.size() < proto::kMaxAssocEndpoints;
    const char* name = in_peers ? "peer" : "server";
    const size_t index = in_peers ? proto::kMaxAssocEndpoints - cfg.servers.size() : proto::kMaxAssocEndpoints;
    const toml::array* arr = root.get(name) ? root.get(name)->as_array() : nullptr;
    const toml::node* at = arr && index < arr->size() ? arr->get(index) : static_cast<const toml::node*>(&root);
    errs_.add(*at, std::string(name) + "[" + std::to_string(index) + "]",
              std::to_string(total) + " [[server]] and [[peer]] tables together: at most " +
                  std::to_string(proto::kMaxAssocEndpoints) + " (the dataplane's table of configured associations)");
  }

  static const KeySpec* find_key(unsigned sect, std::string_view name) {
    for (const KeySpec& k : kKeys)
      if ((k.sects & sect) && k.name == name) return &k;
    return nullptr;
  }

  static bool is_section_name(std::string_view name) {
    for (const auto& s : kSections)
      if (s.sect != kTop && s.name == name) return true;
    return false;
  }

  void unknown_key(unsigned sect, const toml::key& k, const std::string& prefix) {
    std::vector<std::string> candidates;
    for (const KeySpec& spec : kKeys)
      if (spec.sects & sect) candidates.emplace_back(spec.name);
    if (sect == kTop)
      for (const auto& s : kSections)
        if (s.sect != kTop) candidates.emplace_back(s.name);
    std::string msg = "unknown key " + quote(k.str());
    if (sect == kNtp && k.str() == "peer_allow") {
      // Renamed when [access] came: say where it went rather than guess.
      msg += " (who may peer is now access.peer, and its default is nobody)";
    } else if (auto c = closest(k.str(), candidates)) {
      msg += " (did you mean \"" + *c + "\"?)";
    } else {
      for (const KeySpec& spec : kKeys) {  // a known key in the wrong section?
        if (spec.name != k.str()) continue;
        for (const auto& s : kSections) {
          if (spec.sects & s.sect) {
            msg += " (did you mean \"" + doc_prefix(s) + spec.name + "\"?)";
            break;
          }
        }
        break;
      }
    }
    errs_.add(k.source().begin, prefix + std::string(k.str()), msg);
  }

  // One table of a section: unknown keys, each row, then the checks.
  void table(unsigned sect, const toml::table& tbl, const std::string& prefix, Targets& t) {
    for (auto&& [k, v] : tbl) {
      if (find_key(sect, k.str()) || (sect == kTop && is_section_name(k.str()))) continue;
      unknown_key(sect, k, prefix);
    }
    std::vector<Seen> seen;
    for (const KeySpec& k : kKeys) {
      if (!(k.sects & sect)) continue;
      const std::string key = prefix + k.name;
      const toml::node* n = tbl.get(k.name);
      if (!n) {
        if (k.required) errs_.add(tbl, key, "required key is missing (" + range_text(k) + ")");
        continue;
      }
      Seen s{&k, n, false, {}};
      s.ok = convert(k, *n, key, errs_, s.value);
      if (s.ok) {
        k.store(t, s.value);
        claim(k, s.value, *n, key);
      }
      seen.push_back(std::move(s));
    }
    TableView view{prefix, seen, errs_};
    for (const Seen& s : seen) {
      if (!s.spec->only_key) continue;
      const Value* v = view.value(s.spec->only_key, sect);
      if (v && v->s != s.spec->only_value) {
        errs_.add(*s.node, prefix + s.spec->name,
                  "only meaningful with " + prefix + s.spec->only_key + " = \"" + s.spec->only_value + "\"");
      }
    }
    for (const CrossCheck& c : kCrossChecks)
      if (c.sects & sect) c.check(view);
  }

  // Values that must be distinct across tables (interface names, addresses).
  void claim(const KeySpec& k, const Value& v, const toml::node& n, const std::string& key) {
    if (!k.unique_across) return;
    const bool address = k.fmt == Fmt::kIfAddress || k.fmt == Fmt::kUnicast;
    const std::string id = address ? ip(v.addr) : v.s;
    auto [it, fresh] = claims_[k.unique_across].emplace(id, key);
    if (!fresh) {
      errs_.add(n, key,
                (address ? id : quote(id)) + " is already used by " + it->second + " (" + k.unique_across +
                    " must be unique)");
    }
  }

  Errors& errs_;
  std::map<std::string, std::map<std::string, std::string>> claims_;
};

// The TOML library builds nested tables recursively (and frees them so):
// `a.a.a...= 1` with 100k parts overflows the stack. A dotted key or table
// header lies on one line, so bounding the '.' per line bounds the depth.
bool check_limits(std::string_view text, Errors& errs) {
  if (text.size() > kMaxFileBytes) {
    errs.add(0, 0, "",
             "file too large (" + std::to_string(text.size()) + " bytes; at most " +
                 std::to_string(kMaxFileBytes) + ")");
    return false;
  }
  int line = 1, column = 0, dots = 0;
  for (char c : text) {
    ++column;
    if (c == '\n') {
      ++line;
      column = 0;
      dots = 0;
    } else if (c == '.' && ++dots > kMaxDotsPerLine) {
      errs.add(line, column, "",
               "more than " + std::to_string(kMaxDotsPerLine) + " '.' on one line (keys nested too deeply)");
      return false;
    }
  }
  return true;
}

}  // namespace

// ===========================================================================
// API

proto::AccessTable access_table(const Access& a) {
  std::vector<proto::AccessRule> rules;
  const std::pair<const PrefixList*, proto::AccessClass> lists[] = {
      {&a.peer, proto::AccessClass::kPeer},   {&a.server, proto::AccessClass::kServer},
      {&a.synchronization, proto::AccessClass::kSynchronization},
      {&a.limited, proto::AccessClass::kLimited}, {&a.query, proto::AccessClass::kQuery},
      {&a.deny, proto::AccessClass::kDeny}};
  for (const auto& [list, cls] : lists)
    for (const auto& [net, len] : *list) rules.push_back({net, len, cls});
  proto::AccessClass def = proto::AccessClass::kLimited;
  proto::access_class_from_string(a.default_class, def);  // validated by the table's choices
  return proto::AccessTable(rules, def);
}

const char* to_string(ClockSource s) {
  switch (s) {
    case ClockSource::kVirtual: return "virtual";
    case ClockSource::kPhc: return "phc";
    case ClockSource::kSystem: break;
  }
  return "system";
}

std::string Error::to_string() const {
  std::string s = file;
  if (line > 0) {
    s += ":" + std::to_string(line);
    if (column > 0) s += ":" + std::to_string(column);
  }
  s += ": ";
  if (!key.empty()) s += key + ": ";
  return s + message;
}

LoadResult parse(std::string_view text, std::string_view path) {
  LoadResult result;
  try {
    Errors errs(path);
    if (!check_limits(text, errs)) {
      result.errors = std::move(errs.list());
      return result;
    }
    toml::table root;
    try {
      root = toml::parse(text, path);
    } catch (const toml::parse_error& e) {
      errs.add(e.source().begin, "", std::string(e.description()));
      result.errors = std::move(errs.list());
      return result;
    }
    Config cfg;
    cfg.path = std::string(path);
    Loader(errs).run(root, cfg);
    auto& list = errs.list();
    std::stable_sort(list.begin(), list.end(), [](const Error& a, const Error& b) {
      return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
    if (list.empty()) {
      result.config = std::move(cfg);
    } else {
      result.errors = std::move(list);
    }
  } catch (const std::exception& e) {
    result.config.reset();
    result.errors.push_back(Error{std::string(path), 0, 0, "", std::string("internal error: ") + e.what()});
  } catch (...) {
    result.config.reset();
    result.errors.push_back(Error{std::string(path), 0, 0, "", "internal error"});
  }
  return result;
}

LoadResult load(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  auto fail = [&](int err) {
    LoadResult r;
    r.errors.push_back(Error{path, 0, 0, "", std::string("cannot read: ") + std::strerror(err)});
    return r;
  };
  if (!f) return fail(errno);
  std::string text;
  char buf[65536];
  for (;;) {
    const size_t n = std::fread(buf, 1, sizeof buf, f.get());
    text.append(buf, n);
    if (n < sizeof buf) break;
    if (text.size() > kMaxFileBytes) break;  // parse() reports it
  }
  if (std::ferror(f.get())) return fail(errno ? errno : EIO);
  return parse(text, path);
}

std::optional<Config> load_or_report(const char* program, const std::string& path) {
  LoadResult r = load(path);
  if (r.ok()) return std::move(r.config);
  for (const auto& e : r.errors) std::fprintf(stderr, "%s: %s\n", program, e.to_string().c_str());
  std::fprintf(stderr, "%s: %zu error(s) in %s; nothing started\n", program, r.errors.size(), path.c_str());
  return std::nullopt;
}

const std::vector<KeyDoc>& key_docs() {
  static const std::vector<KeyDoc> docs = [] {
    std::vector<KeyDoc> out;
    for (const SectionSpec& s : kSections) {
      if (s.array) {
        KeyDoc d;
        d.key = s.name;
        d.type = "array of tables";
        d.range = std::to_string(s.min_count) + ".." +
                  (s.max_count == kUnbounded ? std::string("") : std::to_string(s.max_count)) + " tables";
        if (s.max_count == kUnbounded) d.range = "any number of tables";
        d.help = s.help;
        d.required = s.min_count > 0;
        out.push_back(std::move(d));
      }
      for (const KeySpec& k : kKeys) {
        if (!(k.sects & s.sect)) continue;
        KeyDoc d;
        d.key = doc_prefix(s) + k.name;
        d.type = type_name(k.type);
        d.def = k.def ? k.def : "";
        d.range = range_text(k);
        d.help = k.help;
        d.required = k.required;
        d.example = k.example ? k.example : (k.def ? k.def : "");
        if (k.only_key) d.only_with = doc_prefix(s) + k.only_key + " = \"" + k.only_value + "\"";
        out.push_back(std::move(d));
      }
    }
    return out;
  }();
  return docs;
}

}  // namespace ntp::config
