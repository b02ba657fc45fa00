// ntpflood: a fast NTP packet generator for the attack tests
// (tests/integration/test_{ratelimit,access,peering,flood}.py), run inside a
// network namespace. Test-only; no DPDK.
//
// It writes whole Ethernet frames on an AF_PACKET socket (sendmmsg, qdisc
// bypassed), so any IPv4 source can be sent (spoofed, or churning through a
// prefix) at a few hundred thousand packets per second on one core, and it
// can capture on the same interface what comes back: each reply is matched
// to the request it answers by its origin timestamp (RFC 5905: a reply's
// origin is the request's transmit timestamp) and classified (normal, RATE,
// DENY, other kiss codes), so it counts replies also to spoofed sources.
//
// usage: ntpflood --iface IF --target A.B.C.D [options]; prints one JSON line.
//   --dst-mac MAC        the target's MAC (default: resolved through the kernel's ARP)
//   --dst-port N|random  (default 123)
//   --src A.B.C.D        one source (default: the interface's own address)
//   --src-prefix P/len --sources N   N distinct sources in P/len (N <= 2^(32-len))
//   --order rr|random    sources in turn (each polls every N/rate s) or at random
//   --src-port N|random  fixed source port, or random per packet (default: one per source)
//   --mode 1|2|3|4  --version V  --poll P  --stratum S  --origin-zero
//   --rate PPS  --duration S  --count N (stop after N packets)
//   --capture  --linger S (capture this long after the last packet, default 1):
//       "rx" counts what the target sent to our sources (to_sources; arp_requests
//       for them), its NTP replies, of those the ones matched to a request of
//       ours by kind (normal, kod_rate, kod_deny, kod_other), and any reply
//       larger than the 48-byte request
//   --also-src A.B.C.D --also-fraction F   a share F of the packets from this one
//       source instead (port 123 to port 123 and to random ports, alternately):
//       one process for a mixed flood, several would share a core less well
//   --seed N             (printed: a run can be repeated)
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr uint32_t kNtpUnixOffset = 2208988800u;
constexpr size_t kBatch = 64;
constexpr size_t kFrameLen = 14 + 20 + 8 + 48;

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "ntpflood: %s\n", msg.c_str());
  std::exit(2);
}

int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

uint64_t real_ntp_now() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t{static_cast<uint32_t>(ts.tv_sec + kNtpUnixOffset)} << 32) |
         ((uint64_t{static_cast<uint64_t>(ts.tv_nsec)} << 32) / 1000000000u);
}

// splitmix64: fast, seedable; printed seeds make a run repeatable.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
};

uint32_t parse_ip(const std::string& s) {
  in_addr a;
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) die("not an IPv4 address: " + s);
  return ntohl(a.s_addr);
}

std::string ip_text(uint32_t host_order) {
  in_addr a{htonl(host_order)};
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

bool parse_mac(const std::string& s, uint8_t out[6]) {
  unsigned v[6];
  if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) return false;
  for (int i = 0; i < 6; ++i) out[i] = static_cast<uint8_t>(v[i]);
  return true;
}

uint32_t csum_add(uint32_t sum, const uint8_t* p, size_t n) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t{p[i]} << 8 | p[i + 1];
  if (n & 1) sum += uint32_t{p[n - 1]} << 8;
  return sum;
}
uint16_t csum_fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xFFFF);
}

void put16(uint8_t* p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xFF; }
void put32(uint8_t* p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v & 0xFFFF); }
void put64(uint8_t* p, uint64_t v) { put32(p, v >> 32); put32(p + 4, v & 0xFFFFFFFF); }
uint16_t get16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t get32(const uint8_t* p) { return uint32_t{get16(p)} << 16 | get16(p + 2); }
uint64_t get64(const uint8_t* p) { return uint64_t{get32(p)} << 32 | get32(p + 4); }

struct Options {
  std::string iface, dst_mac;
  uint32_t target = 0;
  int dst_port = 123;  // -1: random
  bool have_src = false;
  uint32_t src = 0, prefix = 0;
  int prefix_len = -1;
  uint64_t sources = 1;
  bool order_random = false;
  int src_port = -2;  // -1 random per packet, -2 one per source
  int mode = 3, version = 4, poll = 6, stratum = 0;
  bool origin_zero = false;
  double rate = 1000, duration = 1, linger = 1;
  uint64_t count = 0;
  bool capture = false;
  uint64_t seed = 0;
  uint32_t also_src = 0;
  double also_fraction = 0;
};

Options parse(int argc, char** argv) {
  Options o;
  o.seed = static_cast<uint64_t>(mono_ns()) ^ static_cast<uint64_t>(getpid()) << 32;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--iface") o.iface = val();
    else if (a == "--target") o.target = parse_ip(val());
    else if (a == "--dst-mac") o.dst_mac = val();
    else if (a == "--dst-port") { std::string v = val(); o.dst_port = v == "random" ? -1 : std::stoi(v); }
    else if (a == "--src") { o.src = parse_ip(val()); o.have_src = true; }
    else if (a == "--src-prefix") {
      std::string v = val();
      auto slash = v.find('/');
      if (slash == std::string::npos) die("--src-prefix needs P/len");
      o.prefix = parse_ip(v.substr(0, slash));
      o.prefix_len = std::stoi(v.substr(slash + 1));
      if (o.prefix_len < 0 || o.prefix_len > 32) die("bad prefix length");
    }
    else if (a == "--sources") o.sources = std::stoull(val());
    else if (a == "--order") { std::string v = val(); o.order_random = v == "random"; if (v != "rr" && v != "random") die("--order rr|random"); }
    else if (a == "--src-port") { std::string v = val(); o.src_port = v == "random" ? -1 : std::stoi(v); }
    else if (a == "--mode") o.mode = std::stoi(val());
    else if (a == "--version") o.version = std::stoi(val());
    else if (a == "--poll") o.poll = std::stoi(val());
    else if (a == "--stratum") o.stratum = std::stoi(val());
    else if (a == "--origin-zero") o.origin_zero = true;
    else if (a == "--rate") o.rate = std::stod(val());
    else if (a == "--duration") o.duration = std::stod(val());
    else if (a == "--count") o.count = std::stoull(val());
    else if (a == "--linger") o.linger = std::stod(val());
    else if (a == "--capture") o.capture = true;
    else if (a == "--seed") o.seed = std::stoull(val());
    else if (a == "--also-src") o.also_src = parse_ip(val());
    else if (a == "--also-fraction") o.also_fraction = std::stod(val());
    else die("unknown option " + a);
  }
  if (o.iface.empty() || o.target == 0) die("--iface and --target are needed");
  if (o.prefix_len >= 0) {
    const uint64_t room = o.prefix_len == 0 ? (1ull << 32) : (1ull << (32 - o.prefix_len));
    if (o.sources == 0 || o.sources > room) die("--sources must be 1.." + std::to_string(room) + " for that prefix");
  } else {
    o.sources = 1;
  }
  if (o.rate <= 0 || o.duration <= 0) die("--rate and --duration must be positive");
  if (o.also_fraction < 0 || o.also_fraction > 1 || (o.also_fraction > 0 && o.also_src == 0))
    die("--also-fraction needs 0..1 and --also-src");
  if (o.mode < 0 || o.mode > 7 || o.version < 0 || o.version > 7) die("bad mode or version");
  return o;
}

uint32_t iface_ipv4(const std::string& ifname) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) die("getifaddrs failed");
  uint32_t out = 0;
  for (ifaddrs* p = list; p; p = p->ifa_next)
    if (p->ifa_addr && p->ifa_addr->sa_family == AF_INET && ifname == p->ifa_name) {
      out = ntohl(reinterpret_cast<sockaddr_in*>(p->ifa_addr)->sin_addr.s_addr);
      break;
    }
  freeifaddrs(list);
  return out;
}

// The target's MAC from the kernel's neighbour table, after a datagram to
// port 9 (discard) made the kernel resolve it.
bool resolve_mac(uint32_t target, uint8_t out[6]) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(9);
  sa.sin_addr.s_addr = htonl(target);
  const std::string want = ip_text(target);
  for (int attempt = 0; attempt < 40; ++attempt) {
    if (attempt % 10 == 0) sendto(s, "x", 1, 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    std::ifstream arp("/proc/net/arp");
    std::string line;
    std::getline(arp, line);  // header
    while (std::getline(arp, line)) {
      std::istringstream f(line);
      std::string ip, hw, flags, mac;
      f >> ip >> hw >> flags >> mac;
      if (ip == want && flags != "0x0" && parse_mac(mac, out)) {
        close(s);
        return true;
      }
    }
    usleep(50000);
  }
  close(s);
  return false;
}

struct ReplyCounts {
  uint64_t frames = 0, to_sources = 0, ntp = 0, arp_requests = 0, other = 0;
  uint64_t normal = 0, kod_rate = 0, kod_deny = 0, kod_other = 0;
  uint64_t matched = 0, duplicates = 0, unmatched = 0, larger_than_request = 0;
  int64_t first_ns = 0, last_ns = 0;  // when the first and the last matched reply came (monotonic)
  std::map<int, uint64_t> by_mode;
  std::map<std::string, uint64_t> kiss_codes;
  std::map<int, uint64_t> by_stratum;
};

struct Flood {
  Options o;
  int fd = -1;
  int ifindex = 0;
  uint8_t src_mac[6]{}, dst_mac[6]{};
  Rng rng;
  uint32_t key = 0;           // hides the sequence number in the transmit timestamp
  uint32_t t0_ntp_s = 0;      // NTP seconds at start (the transmit timestamp's high word)
  uint64_t sent = 0, send_errors = 0;
  int64_t start_ns = 0;
  std::vector<uint8_t> answered;  // per sequence number, for matching (bounded)
  std::vector<uint32_t> answered_per_source;
  ReplyCounts rx;

  uint32_t source_of(uint64_t i) const {
    if (o.prefix_len < 0) return o.src;
    const uint64_t room = o.prefix_len == 0 ? (1ull << 32) : (1ull << (32 - o.prefix_len));
    // An odd multiplier permutes 0..room-1: distinct sources spread over the
    // prefix (not one run of consecutive addresses).
    const uint64_t host = (i * 0x9E3779B1ull) & (room - 1);
    return o.prefix + static_cast<uint32_t>(host);
  }

  uint64_t also_sent = 0;

  void build(uint8_t* f, uint64_t seq) {
    const uint64_t src_index = o.order_random ? rng.next() % o.sources : seq % o.sources;
    uint32_t src = source_of(src_index);
    uint16_t sport;
    if (o.src_port >= 0) sport = static_cast<uint16_t>(o.src_port);
    else if (o.src_port == -1) sport = static_cast<uint16_t>(1024 + rng.next() % 64000);
    else sport = static_cast<uint16_t>(1024 + (uint64_t{src} * 0x9E3779B1ull >> 20) % 64000);
    uint16_t dport = o.dst_port >= 0 ? static_cast<uint16_t>(o.dst_port)
                                     : static_cast<uint16_t>(1024 + rng.next() % 64000);
    // The share from --also-src: evenly spread (its count follows the
    // fraction exactly), from port 123, to port 123 and random ports in turn.
    if (o.also_fraction > 0 &&
        static_cast<double>(also_sent) < o.also_fraction * static_cast<double>(seq + 1)) {
      src = o.also_src;
      sport = 123;
      dport = also_sent % 2 == 0 ? 123 : static_cast<uint16_t>(1024 + rng.next() % 64000);
      ++also_sent;
    }
    std::memcpy(f, dst_mac, 6);
    std::memcpy(f + 6, src_mac, 6);
    put16(f + 12, 0x0800);
    uint8_t* ip = f + 14;
    ip[0] = 0x45;
    ip[1] = 0;
    put16(ip + 2, 20 + 8 + 48);
    put16(ip + 4, static_cast<uint16_t>(seq));
    put16(ip + 6, 0x4000);
    ip[8] = 64;
    ip[9] = 17;
    put16(ip + 10, 0);
    put32(ip + 12, src);
    put32(ip + 16, o.target);
    put16(ip + 10, csum_fold(csum_add(0, ip, 20)));
    uint8_t* udp = ip + 20;
    put16(udp, sport);
    put16(udp + 2, dport);
    put16(udp + 4, 8 + 48);
    put16(udp + 6, 0);
    uint8_t* ntp = udp + 8;
    std::memset(ntp, 0, 48);
    ntp[0] = static_cast<uint8_t>((o.version & 7) << 3 | (o.mode & 7));
    ntp[1] = static_cast<uint8_t>(o.stratum);
    ntp[2] = static_cast<uint8_t>(static_cast<int8_t>(o.poll));
    ntp[3] = static_cast<uint8_t>(static_cast<int8_t>(-20));
    const uint64_t now = real_ntp_now();
    if (o.mode != 3) {
      // A server or peer's header: reference time now, a refid, and (mode
      // 2/4) an origin that matches nothing the target sent, or 0.
      put32(ntp + 12, 0x7F7F0101);
      put64(ntp + 16, now);
      if (!o.origin_zero) put64(ntp + 24, rng.next());
      put64(ntp + 32, now);
    }
    // Transmit: the NTP second of the start and the sequence number, hidden
    // under a per-run key (a reply's origin gives the request back).
    put64(ntp + 40, uint64_t{t0_ntp_s} << 32 | (static_cast<uint32_t>(seq) ^ key));
    // UDP checksum over the pseudo header (RFC 768); the dataplane checks it.
    uint32_t sum = csum_add(0, ip + 12, 8);
    sum += 17 + 8 + 48;
    sum = csum_add(sum, udp, 8 + 48);
    uint16_t c = csum_fold(sum);
    put16(udp + 6, c == 0 ? 0xFFFF : c);
  }

  int rx_fd = -1;

  // A socket bound with protocol 0 receives nothing: sending costs no copy
  // back to ourselves. Replies come on a second socket, only with --capture.
  int packet_socket(int protocol) {
    const int s = socket(AF_PACKET, SOCK_RAW, htons(static_cast<uint16_t>(protocol)));
    if (s < 0) die(std::string("AF_PACKET socket: ") + std::strerror(errno) + " (root needed)");
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(static_cast<uint16_t>(protocol));
    sll.sll_ifindex = ifindex;
    if (bind(s, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) die("bind to the interface failed");
    return s;
  }

  void open_socket() {
    ifindex = static_cast<int>(if_nametoindex(o.iface.c_str()));
    if (ifindex == 0) die("no interface " + o.iface);
    fd = packet_socket(0);
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", o.iface.c_str());
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) != 0) die("SIOCGIFHWADDR failed");
    std::memcpy(src_mac, ifr.ifr_hwaddr.sa_data, 6);
    int one = 1;
    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    int buf = 64 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf);
    if (o.capture) {
      rx_fd = packet_socket(ETH_P_ALL);
      setsockopt(rx_fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
      setsockopt(rx_fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf);
    }
  }

  bool ours(uint32_t addr) const {
    if (o.prefix_len < 0) return addr == o.src;
    const uint32_t mask = o.prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - o.prefix_len);
    return (addr & mask) == o.prefix;
  }

  // Counts only what the target sent to our sources (other flows may share
  // the interface): ARP requests for them, IPv4 frames to them, and of those
  // the NTP replies, classified when their origin matches a request of ours.
  void account(const uint8_t* f, size_t n) {
    ++rx.frames;
    if (n >= 14 + 28 && get16(f + 12) == 0x0806) {
      if (get16(f + 14 + 6) == 1 && ours(get32(f + 14 + 24))) ++rx.arp_requests;
      return;
    }
    if (n < 14 + 20 + 8 || get16(f + 12) != 0x0800) return;
    const uint8_t* ip = f + 14;
    const size_t ihl = (ip[0] & 0xF) * 4u;
    if (get32(ip + 12) != o.target || !ours(get32(ip + 16))) return;
    ++rx.to_sources;
    if (ip[9] != 17 || n < 14 + ihl + 8) { ++rx.other; return; }
    const uint8_t* udp = ip + ihl;
    const size_t udp_len = get16(udp + 4);
    if (get16(udp) != 123 || udp_len < 8 + 48 || n < 14 + ihl + udp_len) { ++rx.other; return; }
    const uint8_t* ntp = udp + 8;
    ++rx.ntp;
    // No reply may be larger than its request (48 bytes, no MAC).
    if (udp_len - 8 > 48) ++rx.larger_than_request;
    const uint64_t origin = get64(ntp + 24);
    const uint64_t seq = static_cast<uint32_t>(origin) ^ key;
    if (static_cast<uint32_t>(origin >> 32) != t0_ntp_s || seq >= sent) { ++rx.unmatched; return; }
    if (seq < answered.size()) {
      if (answered[seq]) { ++rx.duplicates; return; }
      answered[seq] = 1;
    }
    ++rx.matched;
    const int64_t t = mono_ns();
    if (rx.first_ns == 0) rx.first_ns = t;
    rx.last_ns = t;
    if (!answered_per_source.empty() && !o.order_random) ++answered_per_source[seq % o.sources];
    ++rx.by_mode[ntp[0] & 7];
    ++rx.by_stratum[ntp[1]];
    if (ntp[1] == 0) {
      // RFC 5905 section 7.4: stratum 0, the kiss code in the refid.
      std::string code(reinterpret_cast<const char*>(ntp + 12), 4);
      for (char& c : code)
        if (c < 0x20 || c > 0x7E) c = '?';
      ++rx.kiss_codes[code];
      if (code == "RATE") ++rx.kod_rate;
      else if (code == "DENY") ++rx.kod_deny;
      else ++rx.kod_other;
    } else {
      ++rx.normal;
    }
  }

  void drain() {
    if (rx_fd < 0) return;
    uint8_t buf[2048];
    for (;;) {
      sockaddr_ll from{};
      socklen_t len = sizeof from;
      ssize_t n = recvfrom(rx_fd, buf, sizeof buf, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 0) return;
      if (from.sll_pkttype == PACKET_OUTGOING) continue;
      account(buf, static_cast<size_t>(n));
    }
  }

  void run() {
    rng.s = o.seed;
    key = static_cast<uint32_t>(rng.next());
    open_socket();
    if (!o.have_src && o.prefix_len < 0) {
      o.src = iface_ipv4(o.iface);
      if (o.src == 0) die("interface " + o.iface + " has no IPv4 address: give --src or --src-prefix");
    }
    if (!o.dst_mac.empty()) {
      if (!parse_mac(o.dst_mac, dst_mac)) die("bad --dst-mac");
    } else if (!resolve_mac(o.target, dst_mac)) {
      die("could not resolve the MAC of " + ip_text(o.target) + " (give --dst-mac)");
    }
    t0_ntp_s = static_cast<uint32_t>(real_ntp_now() >> 32);
    const uint64_t planned = o.count ? o.count : static_cast<uint64_t>(o.rate * o.duration) + kBatch;
    if (o.capture) {
      answered.assign(std::min<uint64_t>(planned, 64ull << 20), 0);
      if (!o.order_random && o.sources <= (1u << 24)) answered_per_source.assign(o.sources, 0);
    }
    drain();  // what arrived before we started is not ours

    std::vector<uint8_t> frames(kBatch * kFrameLen);
    mmsghdr msgs[kBatch];
    iovec iov[kBatch];
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = ifindex;
    to.sll_halen = 6;
    std::memcpy(to.sll_addr, dst_mac, 6);
    const int64_t start = mono_ns();
    const int64_t end = start + static_cast<int64_t>(o.duration * 1e9);
    int64_t now = start;
    while (now < end && (o.count == 0 || sent < o.count)) {
      // Packets due by now at the target rate, at most a batch at a time.
      const uint64_t due = static_cast<uint64_t>(static_cast<double>(now - start) * o.rate / 1e9) + 1;
      uint64_t n = due > sent ? due - sent : 0;
      if (n > kBatch) n = kBatch;
      if (o.count && n > o.count - sent) n = o.count - sent;
      if (n == 0) {
        if (o.capture) drain();
        // Not a busy wait: others share this core (the lab pins to CPU 0).
        const int64_t wait_ns = static_cast<int64_t>((static_cast<double>(sent) + 1) * 1e9 / o.rate) - (now - start);
        if (wait_ns > 20000) {
          timespec ts{0, static_cast<long>(std::min<int64_t>(wait_ns, 2000000))};
          nanosleep(&ts, nullptr);
        }
        now = mono_ns();
        continue;
      }
      for (uint64_t i = 0; i < n; ++i) {
        build(&frames[i * kFrameLen], sent + i);
        iov[i] = {&frames[i * kFrameLen], kFrameLen};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_name = &to;
        msgs[i].msg_hdr.msg_namelen = sizeof to;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      int r = sendmmsg(fd, msgs, static_cast<unsigned>(n), 0);
      if (r < 0) {
        ++send_errors;
        r = 0;
      }
      // Sequence numbers of frames the kernel refused are reused.
      sent += static_cast<uint64_t>(r);
      if (o.capture) drain();
      now = mono_ns();
    }
    const int64_t send_end = mono_ns();
    const int64_t linger_end = send_end + static_cast<int64_t>(o.linger * 1e9);
    while (o.capture && mono_ns() < linger_end) {
      pollfd p{rx_fd, POLLIN, 0};
      poll(&p, 1, 20);
      drain();
    }
    start_ns = start;
    report(static_cast<double>(send_end - start) / 1e9);
  }

  void report(double secs) {
    std::string src = o.prefix_len >= 0 ? ip_text(o.prefix) + "/" + std::to_string(o.prefix_len) : ip_text(o.src);
    std::printf("{\"seed\": %" PRIu64 ", \"mode\": %d, \"version\": %d, \"source\": \"%s\", \"sources\": %" PRIu64
                ", \"target\": \"%s\", \"sent\": %" PRIu64 ", \"send_errors\": %" PRIu64
                ", \"seconds\": %.3f, \"rate_target\": %.0f, \"rate_achieved\": %.0f, \"also_sent\": %" PRIu64,
                o.seed, o.mode, o.version, src.c_str(), o.sources, ip_text(o.target).c_str(), sent, send_errors,
                secs, o.rate, secs > 0 ? static_cast<double>(sent) / secs : 0.0, also_sent);
    if (o.capture) {
      std::printf(", \"rx\": {\"frames\": %" PRIu64 ", \"to_sources\": %" PRIu64 ", \"ntp\": %" PRIu64 ", \"arp_requests\": %" PRIu64
                  ", \"other\": %" PRIu64 ", \"normal\": %" PRIu64 ", \"kod_rate\": %" PRIu64 ", \"kod_deny\": %" PRIu64
                  ", \"kod_other\": %" PRIu64 ", \"matched\": %" PRIu64 ", \"duplicates\": %" PRIu64
                  ", \"unmatched\": %" PRIu64 ", \"larger_than_request\": %" PRIu64,
                  rx.frames, rx.to_sources, rx.ntp, rx.arp_requests, rx.other, rx.normal, rx.kod_rate, rx.kod_deny, rx.kod_other,
                  rx.matched, rx.duplicates, rx.unmatched, rx.larger_than_request);
      const char* sep = "";
      // The replies' span, from the first packet sent: a rate limit holds over it.
      std::printf(", \"first_s\": %.6f, \"last_s\": %.6f", rx.first_ns ? (rx.first_ns - start_ns) / 1e9 : 0.0,
                  rx.last_ns ? (rx.last_ns - start_ns) / 1e9 : 0.0);
      std::printf(", \"by_mode\": {");
      for (auto& [m, c] : rx.by_mode) { std::printf("%s\"%d\": %" PRIu64, sep, m, c); sep = ", "; }
      sep = "";
      std::printf("}, \"by_stratum\": {");
      for (auto& [s, c] : rx.by_stratum) { std::printf("%s\"%d\": %" PRIu64, sep, s, c); sep = ", "; }
      sep = "";
      std::printf("}, \"kiss_codes\": {");
      for (auto& [k, c] : rx.kiss_codes) { std::printf("%s\"%s\": %" PRIu64, sep, k.c_str(), c); sep = ", "; }
      std::printf("}}");
      if (!answered_per_source.empty()) {
        // Per source: how many got every request answered, and the least answered.
        uint64_t full = 0, min_answered = UINT64_MAX, sources_sent = std::min<uint64_t>(sent, o.sources);
        for (uint64_t i = 0; i < sources_sent; ++i) {
          const uint64_t requests = sent / o.sources + (i < sent % o.sources ? 1 : 0);
          if (answered_per_source[i] >= requests) ++full;
          min_answered = std::min<uint64_t>(min_answered, answered_per_source[i]);
        }
        std::printf(", \"sources_sent\": %" PRIu64 ", \"sources_all_answered\": %" PRIu64
                    ", \"min_answered_per_source\": %" PRIu64,
                    sources_sent, full, sources_sent ? min_answered : 0);
      }
    }
    std::printf("}\n");
    std::fflush(stdout);
  }
};

}  // namespace

int main(int argc, char** argv) {
  Flood f;
  f.o = parse(argc, argv);
  f.run();
  return 0;
}
