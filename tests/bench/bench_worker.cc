// The worker loop's packets per second on one core, through DPDK's
// net_ring PMD: an ethdev over two rte_rings this program owns. The rx ring
// is pre-filled with NTP request mbufs; dp::worker_poll_once() receives a
// burst from it, answers in place and transmits into the tx ring; the
// harness takes the replies from the tx ring, spot-checks some, restores
// the request bytes (a 90-byte memcpy) and puts them back on the rx ring.
// No mbuf is allocated or freed in the loop, by the worker or the harness.
//
// Why net_ring rather than net_pcap (rx_pcap=...,infinite_rx=1): the pcap
// PMD's infinite RX allocates a fresh mbuf and copies the packet into it on
// every rx_burst, and without tx_pcap it frees what is sent: per packet a
// mempool get, a copy and a mempool put that belong to the PMD, not to the
// worker, and that cannot be told apart from the worker's cost. With rings
// the PMD does a ring dequeue and a ring enqueue per burst (about what a
// real NIC's descriptor handling costs the CPU, minus its mbuf refill), the
// harness's own work is timed separately (TSC around it, each burst), and
// the replies can be checked because they are not thrown away.
//
// --auth TYPE: every request carries a MAC of key 1 of that type (aes128,
// hmac-sha256, sha256, sha1, md5; the digest in full, 20 bytes in NTPv4 for
// the SHA-256 ones as chrony sends it) and every reply must verify with it:
// the responder's check of the request's MAC and the worker's seal of the
// reply after its transmit stamp, per packet.
//
// What this does not measure: a real NIC's descriptor writeback and mbuf
// refill/free, and cache misses on packet data (the harness has just written
// the request, so the worker finds it in L1/L2; a NIC's DMA lands in LLC at
// best). It is the worker's own cost per packet, the upper bound a NIC can
// only lower.
//
// Also counted during the measured loop: heap allocations (malloc and
// friends are interposed below; operator new goes through them), rte_malloc
// allocations, and context switches of the worker thread (getrusage). For
// system calls, the measured phase is bracketed by two access() calls on
// marker paths that strace shows; tests/bench/run.sh runs this under
// `strace -f` and counts what lies between them.
#include <malloc.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_ring.h>

#include "crypto/mac.h"
#include "dataplane/frame.h"
#include "dataplane/inet.h"
#include "dataplane/ratelimit.h"
#include "dataplane/worker.h"
#include "hwclock/clock_model.h"
#include "hwclock/nic_clock.h"
#include "hwclock/tsc.h"
#include "proto/channel_abi.h"
#include "proto/ntp_packet.h"
#include "tests/support/golden/requests.h"
#include "tests/support/nts_client.h"

// ---- heap allocation counting ------------------------------------------
// glibc lets a program replace malloc; these forward to glibc's own
// allocator and count while g_counting is set.
extern "C" {
void* __libc_malloc(size_t);
void __libc_free(void*);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void* __libc_valloc(size_t);
void* __libc_pvalloc(size_t);
}

namespace {
std::atomic<bool> g_counting{false};
std::atomic<uint64_t> g_allocs{0};
inline void count_alloc() {
  if (g_counting.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

extern "C" {
void* malloc(size_t n) noexcept {
  count_alloc();
  return __libc_malloc(n);
}
void free(void* p) noexcept { __libc_free(p); }
void* calloc(size_t n, size_t s) noexcept {
  count_alloc();
  return __libc_calloc(n, s);
}
void* realloc(void* p, size_t n) noexcept {
  count_alloc();
  return __libc_realloc(p, n);
}
void* memalign(size_t a, size_t n) noexcept {
  count_alloc();
  return __libc_memalign(a, n);
}
void* aligned_alloc(size_t a, size_t n) noexcept {
  count_alloc();
  return __libc_memalign(a, n);
}
void* valloc(size_t n) noexcept {
  count_alloc();
  return __libc_valloc(n);
}
void* pvalloc(size_t n) noexcept {
  count_alloc();
  return __libc_pvalloc(n);
}
int posix_memalign(void** out, size_t a, size_t n) noexcept {
  count_alloc();
  void* p = __libc_memalign(a, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
}

namespace {

using namespace ntp;

constexpr uint8_t kPortMac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
constexpr uint32_t kPortIp = 0x0A00011F;  // 10.0.1.31
constexpr uint16_t kFrameLen = 14 + 20 + 8 + 48;  // a request without a MAC
// Room for a MAC (4 + 32) or an NTS request with one cookie (48 + 36 + 104 + 40),
// and a VLAN tag.
constexpr uint16_t kMaxFrameLen = kFrameLen - 48 + 256 + 4;
// --vlan: every frame carries an 802.1Q tag (the port is on that VLAN), 4
// bytes between the MAC addresses and the IPv4 header.
uint16_t g_vlan = 0;
size_t l2_len() { return dp::kEthHeaderLen + (g_vlan ? dp::kVlanTagLen : 0); }

struct Template {
  uint8_t frame[kMaxFrameLen];
  uint16_t len = kFrameLen;
  uint16_t client_port;
  uint32_t client_ip;
  proto::NtpTimestamp request_origin;
  proto::NtpTimestamp request_receive;
  proto::NtpTimestamp request_transmit;
};

struct Options {
  uint64_t packets = 50'000'000;
  unsigned burst = 32;
  unsigned inflight = 1024;  // mbufs cycling, like an RX ring of 1024 descriptors
  int lcore = -1;            // -1: the last CPU
  bool quiet_eal = true;
  bool hw = false;           // NIC timestamps on every request
  // --policy: the per-packet policy of issue 9 on: an access list of
  // several hundred prefixes, every client in the rate-limited default class,
  // a limiter table of --clients entries, KoD on, and --sources distinct client
  // addresses cycling (limits loose enough that every request is answered:
  // what is timed is the lookups, not fewer replies).
  bool policy = false;
  uint32_t sources = 1u << 20;
  size_t clients = size_t{1} << 20;  // --clients: the limiter table's entries (ratelimit.clients)
  crypto::MacType auth = crypto::MacType::kNone;  // --auth: every request MACed with key 1 of this type
  bool nts = false;  // --nts: every request an NTS request (one cookie, no placeholder), answered with NTS
  // --xleave (with --policy): the table has interleaved slots (ntp.interleaved)
  // and every source asks in interleaved mode (its origin the receive
  // timestamp of its last answer, as a chronyd xleave client does).
  bool xleave = false;
  uint16_t vlan = 0;  // --vlan N: 802.1Q-tagged frames, the port on VLAN N
};

// --nts: the cookie keys the policy holds and the keys the clients' cookies
// carry (what NTS-KE would have handed them).
struct BenchNts {
  std::shared_ptr<crypto::CookieKeyRing> ring = std::make_shared<crypto::CookieKeyRing>();
  crypto::NtsKeys keys;
  BenchNts() {
    const uint32_t ids[] = {1, 2};
    uint8_t secrets[2][crypto::kSivKeyBytes];
    for (size_t j = 0; j < crypto::kSivKeyBytes; ++j) {
      secrets[0][j] = static_cast<uint8_t>(j * 3);
      secrets[1][j] = static_cast<uint8_t>(j * 5 + 1);
    }
    if (!crypto::cookie_ring_init(*ring, ids, secrets, 2, 1)) std::abort();
    for (size_t i = 0; i < crypto::kNtsKeyBytes; ++i) {
      keys.c2s[i] = static_cast<uint8_t>(i + 7);
      keys.s2c[i] = static_cast<uint8_t>(i + 77);
    }
  }
};
const BenchNts& bench_nts() {
  static const BenchNts n;
  return n;
}

// --auth's key 1: a fixed secret (16 bytes: AES-128's length; the others take it too).
crypto::KeyTable bench_keys(crypto::MacType type) {
  crypto::KeyTable t;
  const uint8_t secret[16] = {0x2B, 0x7E, 0x15, 0x16, 0x28, 0xAE, 0xD2, 0xA6,
                              0xAB, 0xF7, 0x15, 0x88, 0x09, 0xCF, 0x4F, 0x3C};
  crypto::MacKey k;
  if (type != crypto::MacType::kNone && (!crypto::mac_key_init(k, 1, type, secret, sizeof secret) || !t.insert(k)))
    std::abort();
  return t;
}

[[noreturn]] void die(const char* what, const char* detail = nullptr) {
  std::fprintf(stderr, "bench_worker: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  std::exit(1);
}

std::vector<Template> make_templates(const crypto::KeyTable& keys, bool nts) {
  const uint8_t* requests[] = {golden::kChronyRequest0, golden::kChronyRequest1, golden::kChronyRequest2,
                               golden::kChronyRequest3, golden::kNtpdigRequest};
  const uint16_t ports[] = {48325, 43775, 41808, 52494, 44676};
  std::vector<Template> t(5);
  for (size_t i = 0; i < t.size(); i++) {
    const uint8_t client_mac[6] = {0x02, 0xAA, 0xBB, 0xCC, 0xDD, static_cast<uint8_t>(i + 1)};
    t[i].client_port = ports[i];
    t[i].client_ip = 0x0A000102 + static_cast<uint32_t>(i);  // 10.0.1.2..6
    uint8_t* payload = t[i].frame + dp::kEthHeaderLen + 20 + 8;
    std::memcpy(payload, requests[i], 48);
    size_t payload_len = 48;
    if (const crypto::MacKey* k = keys.find(1)) {
      payload[0] = static_cast<uint8_t>((payload[0] & 0xC7) | (4 << 3));  // NTPv4: ntpdig's request is too
      payload_len += crypto::append_mac(*k, payload, 48, crypto::mac_wire_digest_bytes(*k, 4));
    }
    if (nts) {
      // As chronyd sends one, with this request's transmit timestamp.
      uint8_t uid[32];
      for (int j = 0; j < 32; ++j) uid[j] = static_cast<uint8_t>(i * 32 + j);
      const std::vector<uint8_t> cookie =
          test::nts_cookie_for(*bench_nts().ring, bench_nts().keys, static_cast<uint8_t>(i + 1));
      const std::vector<uint8_t> req = test::nts_client_request(
          bench_nts().keys, cookie.data(), cookie.size(), 0, uid, proto::load_ts(requests[i] + proto::offs::kTransmit))
                                           .bytes;
      if (kFrameLen - 48 + req.size() > kMaxFrameLen) die("an NTS request longer than the template");
      std::memcpy(payload, req.data(), req.size());
      payload_len = req.size();
    }
    const size_t n = dp::build_udp_frame(t[i].frame, client_mac, kPortMac, t[i].client_ip, kPortIp, ports[i],
                                         proto::kNtpPort, payload_len);
    if (n != kFrameLen + payload_len - 48) die("build_udp_frame gave an unexpected length");
    t[i].len = static_cast<uint16_t>(n);
    if (g_vlan) {
      std::memmove(t[i].frame + 16, t[i].frame + 12, n - 12);
      proto::store_be16(t[i].frame + 12, dp::kEtherTypeVlan);
      proto::store_be16(t[i].frame + 14, static_cast<uint16_t>(0xA000 | g_vlan));  // priority 5
      t[i].len = static_cast<uint16_t>(n + dp::kVlanTagLen);
    }
    t[i].request_origin = proto::load_ts(requests[i] + proto::offs::kOrigin);
    t[i].request_receive = proto::load_ts(requests[i] + proto::offs::kReceive);
    t[i].request_transmit = proto::load_ts(requests[i] + proto::offs::kTransmit);
  }
  return t;
}

// Full check of one reply against the request it answers (found by the
// client's UDP port). Returns an empty string when it is right.
constexpr uint32_t kSourcesBase = 0x0A800000;  // 10.128.0.0/9: --policy's clients

std::string check_reply(const rte_mbuf* m, const std::vector<Template>& tpl, int64_t now_ns, bool many_sources,
                        const crypto::KeyTable& keys, bool nts, bool xleave) {
  using namespace ntp::dp;
  const uint8_t* f = rte_pktmbuf_mtod(m, const uint8_t*);
  const uint8_t* ip = f + l2_len();
  const uint8_t* udp = ip + kIpv4MinHeaderLen;
  const uint8_t* ntp = udp + kUdpHeaderLen;
  const Template* t = nullptr;
  for (const auto& x : tpl)
    if (proto::load_be16(udp + 2) == x.client_port) t = &x;
  if (!t) return "UDP destination is no client's port";
  if (m->data_len != t->len || m->pkt_len != t->len) return "reply length";
  if (keys.count != 0) {
    // The client's check: the reply's MAC, over the stamped header.
    const size_t mac_len = t->len - kFrameLen - (l2_len() - kEthHeaderLen);
    if (crypto::check_mac(keys, ntp, 48, ntp + 48, mac_len).check != crypto::MacCheck::kOk) return "reply MAC";
  }
  if (nts) {
    // The client's check: its UID, then the authenticator under S2C over
    // the reply up to it (with one cookie inside).
    const uint8_t* req_ntp = t->frame + kFrameLen - 48 + (l2_len() - kEthHeaderLen);
    if (std::memcmp(ntp + 48, req_ntp + 48, 36) != 0) return "NTS unique identifier not echoed";
    const size_t auth = 48 + 36;
    if (proto::load_be16(ntp + auth) != proto::kEfNtsAuthenticator) return "no NTS authenticator";
    const size_t ct_len = proto::load_be16(ntp + auth + 6);
    if (ct_len != crypto::kSivTagBytes + 104) return "NTS reply with other than one cookie";
    crypto::SivKey s2c;
    crypto::siv_key_init(s2c, bench_nts().keys.s2c, crypto::kNtsKeyBytes);
    uint8_t plain[104];
    if (!crypto::siv_open(s2c, ntp + auth + 8, 16, ntp, auth, ntp + auth + 24, ct_len, plain))
      return "NTS authenticator does not open under S2C";
  }
  if (std::memcmp(f, t->frame + 6, 6) != 0 || std::memcmp(f + 6, kPortMac, 6) != 0) return "Ethernet addresses";
  if (g_vlan && std::memcmp(f + 12, t->frame + 12, dp::kVlanTagLen) != 0) return "the request's VLAN tag";
  if (csum_fold(csum_add(0, ip, kIpv4MinHeaderLen)) != 0xFFFF) return "IPv4 header checksum";
  // --policy: the client is whichever of the sources this request came from.
  const uint32_t client_ip = many_sources ? proto::load_be32(ip + 16) : t->client_ip;
  if (many_sources && (client_ip >> 23) != (kSourcesBase >> 23)) return "IPv4 destination is none of the sources";
  if (proto::load_be32(ip + 12) != kPortIp || proto::load_be32(ip + 16) != client_ip) return "IPv4 addresses";
  if (proto::load_be16(udp) != proto::kNtpPort) return "UDP source port";
  if (csum_fold(csum_add(pseudo_header_sum(kPortIp, client_ip, kIpProtoUdp, proto::load_be16(udp + 4)), udp, proto::load_be16(udp + 4))) !=
      0xFFFF)
    return "UDP checksum";
  const proto::ParseResult r = proto::parse({ntp, 48});
  if (!r.ok()) return "NTP reply does not parse";
  const proto::NtpHeader& h = r.packet.header;
  if (h.mode != proto::Mode::kServer) return "NTP reply is not mode 4";
  if (h.leap != proto::Leap::kNone || h.stratum != 2) return "NTP reply leap/stratum (server state not applied)";
  // Interleaved (RFC 9769): the origin echoes the request's receive field
  // and the transmit timestamp is the previous answer's, before this receive.
  const bool interleaved = xleave && h.origin == t->request_receive;
  if (!interleaved && !(h.origin == t->request_transmit)) return "NTP origin is not the request's transmit";
  const int64_t rx = proto::unix_ns_from_ntp(h.receive, now_ns), tx = proto::unix_ns_from_ntp(h.transmit, now_ns);
  if (!interleaved && tx < rx) return "NTP transmit before receive";
  if (interleaved && (tx >= rx || tx == 0)) return "interleaved NTP transmit not before this receive";
  if (rx < now_ns - 10'000'000'000 || tx > now_ns + 10'000'000'000) return "NTP timestamps not near the model's now";
  return {};
}

struct Harness {
  rte_ring* rx = nullptr;  // the port's RX: requests
  rte_ring* tx = nullptr;  // the port's TX: replies
  const std::vector<Template>* tpl = nullptr;
  uint64_t next = 0;        // template rotation
  uint64_t checked = 0, check_every = 1;  // check every n-th reply (power of two)
  const proto::ClockModelData* model = nullptr;
  const crypto::KeyTable* keys = nullptr;
  bool nts = false;
  // --hw: what a timestamping NIC's PMD does per packet, the raw NIC clock
  // in the mbuf's timestamp dynfield and the dynflag in ol_flags. The bench's
  // NIC clock counts TSC ticks (identity map), read once per recycle batch.
  int ts_offset = -1;
  uint64_t ts_flag = 0;
  uint64_t nic_now = 0;

  // --policy: each request from the next of `sources` addresses.
  uint32_t sources = 0;
  uint32_t next_source = 0;
  // --xleave: per source, the receive timestamp of its last answer.
  std::vector<uint64_t> last_rx;
  bool replies = true;  // what comes back is the worker's (false: the harness alone moved requests)

  // RFC 1624 eqn. 3: the checksum after a 32-bit field went from `from` to `to`.
  static uint16_t csum_replace32(uint16_t ck, uint32_t from, uint32_t to) {
    uint32_t s = static_cast<uint16_t>(~ck);
    s += static_cast<uint16_t>(~(from >> 16)) + static_cast<uint16_t>(~from & 0xFFFF) + (to >> 16) + (to & 0xFFFF);
    while (s >> 16) s = (s & 0xFFFF) + (s >> 16);
    return static_cast<uint16_t>(~s);
  }

  void restore(rte_mbuf* m, const Template& t) {
    uint8_t* f = rte_pktmbuf_mtod(m, uint8_t*);
    std::memcpy(f, t.frame, t.len);
    m->data_len = t.len;
    m->pkt_len = t.len;
    if (sources) {
      const uint32_t src = kSourcesBase + next_source;
      next_source = next_source + 1 == sources ? 0 : next_source + 1;
      uint8_t* ip = f + l2_len();
      uint8_t* udp = ip + dp::kIpv4MinHeaderLen;
      proto::store_be32(ip + 12, src);
      proto::store_be16(ip + 10, csum_replace32(proto::load_be16(ip + 10), t.client_ip, src));
      uint16_t uck = csum_replace32(proto::load_be16(udp + 6), t.client_ip, src);
      if (!last_rx.empty() && last_rx[src - kSourcesBase] != 0) {
        const proto::NtpTimestamp o = proto::NtpTimestamp::from_raw(last_rx[src - kSourcesBase]);
        proto::store_ts(udp + dp::kUdpHeaderLen + proto::offs::kOrigin, o);
        uck = csum_replace32(uck, t.request_origin.seconds, o.seconds);
        uck = csum_replace32(uck, t.request_origin.fraction, o.fraction);
      }
      proto::store_be16(udp + 6, uck == 0 ? 0xFFFF : uck);
    }
    if (ts_offset >= 0) {
      *RTE_MBUF_DYNFIELD(m, ts_offset, rte_mbuf_timestamp_t*) = nic_now;
      m->ol_flags |= ts_flag;
    }
  }

  // Replies back to requests. Returns how many were recycled.
  unsigned recycle() {
    rte_mbuf* b[64];
    unsigned total = 0;
    for (;;) {
      const unsigned n = rte_ring_sc_dequeue_burst(tx, reinterpret_cast<void**>(b), 64, nullptr);
      if (n == 0) break;
      if (ts_offset >= 0) nic_now = hwclock::read_tsc();
      for (unsigned i = 0; i < n; i++) {
        if (((next + i) & (check_every - 1)) == 0) {
          const std::string e = check_reply(b[i], *tpl, hwclock::model_to_ns(*model, hwclock::read_tsc()),
                                            sources != 0, *keys, nts, !last_rx.empty());
          if (!e.empty()) die("wrong reply", e.c_str());
          checked++;
        }
        if (!last_rx.empty() && replies) {
          const uint8_t* ip = rte_pktmbuf_mtod(b[i], const uint8_t*) + l2_len();
          const uint32_t k = proto::load_be32(ip + 16) - kSourcesBase;
          if (k >= last_rx.size()) die("a reply to none of the sources");
          last_rx[k] = proto::load_ts(ip + dp::kIpv4MinHeaderLen + dp::kUdpHeaderLen + proto::offs::kReceive).raw();
        }
        restore(b[i], (*tpl)[(next + i) % tpl->size()]);
      }
      next += n;
      if (rte_ring_sp_enqueue_burst(rx, reinterpret_cast<void**>(b), n, nullptr) != n) die("rx ring full");
      total += n;
    }
    return total;
  }
};

uint64_t rusage_switches() {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  return static_cast<uint64_t>(ru.ru_nvcsw) + static_cast<uint64_t>(ru.ru_nivcsw);
}

int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) die("a value is missing after", a.c_str());
      return argv[++i];
    };
    if (a == "--packets") o.packets = std::strtoull(next(), nullptr, 10);
    else if (a == "--burst") o.burst = static_cast<unsigned>(std::strtoul(next(), nullptr, 10));
    else if (a == "--inflight") o.inflight = static_cast<unsigned>(std::strtoul(next(), nullptr, 10));
    else if (a == "--lcore") o.lcore = std::atoi(next());
    else if (a == "--eal-log") o.quiet_eal = false;
    else if (a == "--hw") o.hw = true;
    else if (a == "--policy") o.policy = true;
    else if (a == "--sources") o.sources = static_cast<uint32_t>(std::strtoul(next(), nullptr, 10));
    else if (a == "--clients") o.clients = std::strtoull(next(), nullptr, 10);
    else if (a == "--nts") o.nts = true;
    else if (a == "--xleave") o.xleave = true;
    else if (a == "--vlan") o.vlan = static_cast<uint16_t>(std::strtoul(next(), nullptr, 10));
    else if (a == "--auth") {
      const std::string t = next();
      o.auth = t == "aes128"        ? crypto::MacType::kAes128Cmac
               : t == "hmac-sha256" ? crypto::MacType::kHmacSha256
               : t == "sha256"      ? crypto::MacType::kSha256
               : t == "sha1"        ? crypto::MacType::kSha1
               : t == "md5"         ? crypto::MacType::kMd5
                                    : crypto::MacType::kNone;
      if (o.auth == crypto::MacType::kNone) die("--auth takes aes128, hmac-sha256, sha256, sha1 or md5");
    }
    else if (a == "--help" || a == "-h") {
      std::printf("usage: bench_worker [--packets N] [--burst N] [--inflight N] [--lcore N] [--hw] [--policy "
                  "[--sources N] [--clients N] [--xleave]] [--auth TYPE | --nts] [--vlan N] [--eal-log]\n"
                  "  --vlan N  every frame 802.1Q-tagged for VLAN N, the port on it (replies checked for the tag)\n"
                  "  --hw  every request carries a NIC timestamp (mbuf dynfield), converted NIC -> TSC -> UTC\n"
                  "  --policy  access list (several hundred prefixes), rate limiting (2^20-entry table) and KoD on,\n"
                  "            requests from N distinct sources (default 2^20) in the rate-limited class,\n"
                  "            a limiter table of --clients entries (default 2^20)\n"
                  "  --xleave  (with --policy) the table keeps interleaved slots and every source asks in\n"
                  "            interleaved mode (RFC 9769): answered with its previous answer's transmit time\n"
                  "  --auth TYPE  every request MACed with a key of TYPE (aes128, hmac-sha256, sha256, sha1, md5),\n"
                  "            every reply MACed back and checked\n"
                  "  --nts  every request an NTS request as chronyd sends one (a cookie, no placeholder), every\n"
                  "            reply NTS (a fresh cookie, sealed after the stamp) and checked as a client does\n");
      std::exit(0);
    } else {
      die("unknown argument", a.c_str());
    }
  }
  if (o.burst < 1 || o.burst > 256) die("--burst must be 1..256");
  if (o.vlan > 4094) die("--vlan must be 1..4094");
  if (o.nts && o.auth != crypto::MacType::kNone) die("--nts and --auth: one or the other");
  if (o.xleave && !o.policy) die("--xleave needs --policy (the client table)");
  if (o.inflight < o.burst || o.inflight > 16384) die("--inflight must be burst..16384");
  if (o.sources < 1 || o.sources > (1u << 23)) die("--sources must be 1..2^23");
  if (o.clients < 1024 || o.clients > (size_t{1} << 26) || (o.clients & (o.clients - 1)) != 0)
    die("--clients must be a power of two in 1024..2^26");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse_args(argc, argv);
  const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  const int lcore = opt.lcore >= 0 ? opt.lcore : static_cast<int>(ncpu > 1 ? ncpu - 1 : 0);

  // EAL: no hugepages, no PCI, its own runtime files, one lcore (main).
  std::vector<std::string> eal = {"bench_worker", "-l", std::to_string(lcore), "--no-huge", "--no-pci", "-m", "512",
                                  "--file-prefix", "bench-worker-" + std::to_string(getpid()), "--no-telemetry"};
  if (opt.quiet_eal) eal.push_back("--log-level=error");
  std::vector<char*> eal_argv;
  for (auto& s : eal) eal_argv.push_back(s.data());
  eal_argv.push_back(nullptr);
  if (rte_eal_init(static_cast<int>(eal.size()), eal_argv.data()) < 0) die("rte_eal_init", rte_strerror(rte_errno));
  const int socket = static_cast<int>(rte_socket_id());

  // The port: net_ring over two rings we own.
  const unsigned ring_size = rte_align32pow2(opt.inflight + 1);
  rte_ring* rx_ring = rte_ring_create("bw_rx", ring_size, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
  rte_ring* tx_ring = rte_ring_create("bw_tx", ring_size, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
  rte_ring* ctl_ring = rte_ring_create_elem("bw_ctl", sizeof(proto::RxPacket), 1024, socket,
                                            RING_F_SP_ENQ | RING_F_SC_DEQ);
  if (!rx_ring || !tx_ring || !ctl_ring) die("rte_ring_create", rte_strerror(rte_errno));
  const int port = rte_eth_from_rings("net_ring_bench", &rx_ring, 1, &tx_ring, 1, static_cast<unsigned>(socket));
  if (port < 0) die("rte_eth_from_rings", rte_strerror(rte_errno));
  rte_mempool* pool = rte_pktmbuf_pool_create("bw_pool", opt.inflight + 64, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
  if (!pool) die("rte_pktmbuf_pool_create", rte_strerror(rte_errno));
  rte_eth_conf conf{};
  const uint16_t pid = static_cast<uint16_t>(port);
  if (rte_eth_dev_configure(pid, 1, 1, &conf) != 0 ||
      rte_eth_rx_queue_setup(pid, 0, static_cast<uint16_t>(ring_size), static_cast<unsigned>(socket), nullptr, pool) != 0 ||
      rte_eth_tx_queue_setup(pid, 0, static_cast<uint16_t>(ring_size), static_cast<unsigned>(socket), nullptr) != 0 ||
      rte_eth_dev_start(pid) != 0)
    die("cannot configure/start the net_ring port");

  // The segment: a local SegmentHeader with a clock model and a
  // synchronized server state published as the control plane would.
  auto* seg = new proto::SegmentHeader{};
  const double tsc_hz = hwclock::calibrate_tsc_hz(200);
  const hwclock::CrossTimestamp x = hwclock::cross_timestamp(CLOCK_REALTIME, 16);
  proto::ClockModelData model = hwclock::make_model(x.raw, x.clock_ns, 1e9 / tsc_hz, static_cast<uint64_t>(tsc_hz));
  seg->clock_model.store(model);
  proto::ServerStateData st;
  st.leap = 0;
  st.stratum = 2;
  st.precision_log2 = hwclock::measure_precision_log2(model, tsc_hz);
  st.synchronized = 1;
  st.refid = 0x0A000101;
  st.reference_time_ns = x.clock_ns - 1'000'000'000;
  st.root_delay_ns = 1'000'000;
  st.root_dispersion_ns = 2'000'000;
  st.published_ns = x.clock_ns;
  st.holdover_ns = 3600LL * 1'000'000'000;
  seg->server_state.store(st);

  auto* ctx = new dp::WorkerContext();
  ctx->worker_id = 0;
  ctx->n_ports = 1;
  ctx->ports[0].port_id = pid;
  ctx->ports[0].queue_id = 0;
  ctx->ports[0].index = 0;
  std::memcpy(ctx->ports[0].identity.mac, kPortMac, 6);
  ctx->ports[0].identity.ipv4 = kPortIp;
  ctx->ports[0].identity.prefix_len = 24;
  ctx->ports[0].identity.ntp_server = true;
  ctx->ports[0].identity.vlan = opt.vlan;
  ctx->burst_size = opt.burst;
  ctx->segment = seg;
  ctx->counters = &seg->workers[0];
  ctx->to_control = ctl_ring;
  ctx->tsc_hz = static_cast<uint64_t>(tsc_hz);
  proto::WorkerCounters& c = *ctx->counters;
  const crypto::KeyTable keys = bench_keys(opt.auth);
  if (opt.policy || opt.auth != crypto::MacType::kNone || opt.nts) {
    // The policy as a daemon's make_policy would make it from an [access]
    // of 300 prefixes of every class (none holding the clients: they are
    // the default class, limited, the costliest path) and a [ratelimit]
    // whose limits a client polling ~10 times a second stays within.
    auto pol = std::make_unique<dp::Policy>();
    std::vector<proto::AccessRule> rules;
    const proto::AccessClass classes[] = {proto::AccessClass::kDeny, proto::AccessClass::kPeer,
                                          proto::AccessClass::kServer, proto::AccessClass::kSynchronization,
                                          proto::AccessClass::kQuery};
    for (uint32_t i = 0; i < 300; i++) {
      // Spread over 11.0.0.0 - 223.x: /24s and /16s, never 10/8.
      const uint32_t net = (11u + i * 7 % 200) << 24 | (i * 37 % 256) << 16 | (i % 3 == 0 ? 0 : (i * 11 % 256) << 8);
      rules.push_back({net, static_cast<uint8_t>(i % 3 == 0 ? 16 : 24), classes[i % 5]});
    }
    pol->access = opt.policy ? proto::AccessTable(rules, proto::AccessClass::kLimited) : proto::AccessTable();
    if (opt.auth != crypto::MacType::kNone) {
      pol->keys = std::make_shared<crypto::KeyTable>(keys);
      std::printf("auth: every request and reply MACed with a %s key\n", crypto::mac_type_name(opt.auth));
    }
    if (opt.nts) {
      pol->nts_ring = bench_nts().ring;
      const uint8_t seed[32] = {1, 2, 3};
      ctx->nts_rng = std::make_unique<crypto::NonceSource>(seed);
      ctx->nts_seals = std::make_unique<dp::NtsSeal[]>(dp::kMaxWorkerBurst);
      std::printf("nts: every request an NTS request (%u bytes), answered with NTS\n",
                  static_cast<unsigned>(kFrameLen - 48 + 228));
    }
    pol->kod = true;
    // Two associations as the control plane publishes them (a server and a
    // peer): the worker builds its table from them at its first poll.
    proto::AssocEndpoints eps{};
    for (uint32_t ip : {0x0A000001u, 0x0A000002u}) {
      proto::AssocEndpoint& e = eps.entries[eps.count];
      e.address[10] = e.address[11] = 0xFF;
      e.address[12] = 10;
      e.address[15] = static_cast<uint8_t>(ip & 0xFF);
      e.remote_port = 123;
      e.local_port = eps.count == 0 ? 40123 : 123;
      e.kind = eps.count == 0 ? proto::kEndpointClient : proto::kEndpointSymmetric;
      eps.count++;
    }
    seg->assoc_endpoints.store(eps);
    pol->limits.interval_log2 = -4;
    pol->limits.burst = 255;
    pol->limits.leak_log2 = 2;
    pol->max_replies_per_s = 4'000'000'000u;  // checked per answer, never binding here
    pol->clients = opt.clients;
    pol->xleave = opt.xleave;
    if (opt.policy)
      ctx->limiter = std::make_unique<dp::RateLimiter>(pol->clients, pol->limits, 0x9E3779B97F4A7C15ULL, opt.xleave);
    ctx->reply_cap.set_rate(pol->max_replies_per_s);
    if (opt.policy)
      std::printf("policy: %zu access ranges (%zu bytes), rate-limit table %zu entries (%.1f MiB), %u sources\n",
                  pol->access.ranges(), pol->access.memory_bytes(), ctx->limiter->capacity(),
                static_cast<double>(ctx->limiter->memory_bytes()) / (1024.0 * 1024.0), opt.sources);
    dp::publish_policy(*ctx, std::move(pol));
  }

  Harness h;
  if (opt.policy) h.sources = opt.sources;
  if (opt.xleave) h.last_rx.assign(opt.sources, 0);
  // Hardware timestamps: the dynfield and flag a timestamping PMD fills,
  // and a published NIC-to-TSC map as the main lcore keeps it (identity:
  // the bench's NIC clock is the TSC; the conversion costs the same).
  auto* nic_map = new proto::Seqlock<hwclock::NicToTscMap>();
  if (opt.hw) {
    int flag_bit = -1;
    if (rte_mbuf_dyn_rx_timestamp_register(&h.ts_offset, nullptr) != 0) die("rte_mbuf_dyn_rx_timestamp_register");
    flag_bit = rte_mbuf_dynflag_lookup(RTE_MBUF_DYNFLAG_RX_TIMESTAMP_NAME, nullptr);
    if (flag_bit < 0) die("rte_mbuf_dynflag_lookup");
    h.ts_flag = uint64_t{1} << flag_bit;
    hwclock::NicToTscMap m;
    m.nic0 = m.tsc0 = hwclock::read_tsc();
    m.mult = uint64_t{1} << hwclock::kNicMapShift;
    m.mask = ~uint64_t{0};
    m.max_delta = uint64_t{1} << 62;
    m.max_age = uint64_t{1} << 62;
    m.valid = 1;
    nic_map->store(m);
    ctx->ports[0].nic_map = nic_map;
    ctx->ports[0].ts_dynfield_offset = h.ts_offset;
    ctx->ports[0].ts_dynflag = h.ts_flag;
    h.nic_now = hwclock::read_tsc();
  }

  // Requests in flight.
  g_vlan = opt.vlan;
  const std::vector<Template> tpl = make_templates(keys, opt.nts);
  std::vector<rte_mbuf*> mbufs(opt.inflight);
  if (rte_pktmbuf_alloc_bulk(pool, mbufs.data(), opt.inflight) != 0) die("rte_pktmbuf_alloc_bulk");
  for (unsigned i = 0; i < opt.inflight; i++) {
    rte_pktmbuf_append(mbufs[i], kMaxFrameLen);
    h.restore(mbufs[i], tpl[i % tpl.size()]);
  }
  if (rte_ring_sp_enqueue_bulk(rx_ring, reinterpret_cast<void**>(mbufs.data()), opt.inflight, nullptr) !=
      opt.inflight)
    die("cannot fill the rx ring");

  h.rx = rx_ring;
  h.tx = tx_ring;
  h.tpl = &tpl;
  h.next = opt.inflight;
  h.model = &model;
  h.keys = &keys;
  h.nts = opt.nts;

  // As worker_main does before its loop: the table's pages on this lcore.
  if (ctx->limiter) ctx->limiter->touch_pages();
  // Warm-up: every reply checked.
  uint64_t done = 0;
  const uint64_t warm = std::min<uint64_t>(opt.packets / 10 + opt.inflight, 2'000'000);
  while (done < warm) {
    dp::worker_poll_once(*ctx);
    done += h.recycle();
  }
  const uint64_t checked_warm = h.checked;
  h.check_every = 4096;

  const uint64_t rx0 = c.rx_packets.load(), tx0 = c.tx_packets.load(), ntp0 = c.ntp_requests.load();
  const uint64_t xl0 = c.ntp_interleaved_replies.load();
  const uint64_t hw0 = c.timestamps[0].hardware.load(), sw0_ts = c.timestamps[0].software.load();
  rte_malloc_socket_stats ms0{}, ms1{};
  rte_malloc_get_socket_stats(socket, &ms0);
  const unsigned pool_avail0 = rte_mempool_avail_count(pool);
  const uint64_t sw0 = rusage_switches();

  // The counter counts: one malloc and one operator new must show.
  {
    g_allocs.store(0);
    g_counting.store(true);
    static void* volatile sink_p;
    static int* volatile sink_q;
    sink_p = malloc(16);
    sink_q = new int(1);
    g_counting.store(false);
    free(sink_p);
    delete sink_q;
    if (g_allocs.load() != 2) die("the allocation counter does not see malloc/operator new");
  }

  // ---- measured loop ----
  (void)access("/bench-worker/measure-begin", F_OK);  // marker for strace
  g_allocs.store(0);
  g_counting.store(true);
  const int64_t w0 = mono_ns();
  const uint64_t t0 = hwclock::read_tsc();
  uint64_t harness_ticks = 0, polls = 0;
  done = 0;
  while (done < opt.packets) {
    dp::worker_poll_once(*ctx);
    const uint64_t a = hwclock::read_tsc();
    done += h.recycle();
    harness_ticks += hwclock::read_tsc() - a;
    polls++;
  }
  const uint64_t t1 = hwclock::read_tsc();
  const int64_t w1 = mono_ns();
  g_counting.store(false);
  const uint64_t allocs = g_allocs.load();
  (void)access("/bench-worker/measure-end", F_OK);
  // ---- end ----

  const uint64_t sw1 = rusage_switches();
  rte_malloc_get_socket_stats(socket, &ms1);
  const unsigned pool_avail1 = rte_mempool_avail_count(pool);
  const uint64_t rx = c.rx_packets.load() - rx0, tx = c.tx_packets.load() - tx0, ntp = c.ntp_requests.load() - ntp0;
  uint64_t drops = 0;
  for (auto& d : c.drops) drops += d.load();
  const uint64_t hw_ts = c.timestamps[0].hardware.load() - hw0, sw_ts = c.timestamps[0].software.load() - sw0_ts;

  // ---- harness alone: the same recycling, with the mbufs moved from the
  // rx ring to the tx ring by bare ring calls instead of the worker ----
  uint64_t h_done = 0, h_ticks = 0, move_ticks = 0;
  const uint64_t h_target = opt.packets / 5;
  h.check_every = uint64_t{1} << 62;  // no checks: the replies are requests now
  h.replies = false;
  while (h_done < h_target) {
    rte_mbuf* b[256];
    const uint64_t m0 = hwclock::read_tsc();
    const unsigned n = rte_ring_sc_dequeue_burst(rx_ring, reinterpret_cast<void**>(b), opt.burst, nullptr);
    rte_ring_sp_enqueue_burst(tx_ring, reinterpret_cast<void**>(b), n, nullptr);
    const uint64_t a = hwclock::read_tsc();
    h_done += h.recycle();
    const uint64_t e = hwclock::read_tsc();
    move_ticks += a - m0;
    h_ticks += e - a;
  }

  const double ns_per_tick = 1e9 / tsc_hz;
  const double total_ns = static_cast<double>(t1 - t0) * ns_per_tick;
  const double per_pkt_all = total_ns / static_cast<double>(done);
  const double per_pkt_harness = static_cast<double>(harness_ticks) * ns_per_tick / static_cast<double>(done);
  const double per_pkt_worker = per_pkt_all - per_pkt_harness;
  const double alone_harness = static_cast<double>(h_ticks) * ns_per_tick / static_cast<double>(h_done);
  const double alone_move = static_cast<double>(move_ticks) * ns_per_tick / static_cast<double>(h_done);

  char cpu[256] = "?";
  if (FILE* f = std::fopen("/proc/cpuinfo", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (std::strncmp(line, "model name", 10) == 0) {
        const char* p = std::strchr(line, ':');
        std::snprintf(cpu, sizeof cpu, "%.200s", p ? p + 2 : line);
        cpu[std::strcspn(cpu, "\n")] = 0;
        break;
      }
    std::fclose(f);
  }

  std::printf("bench_worker: %s, lcore %d, TSC %.3f MHz, %u mbufs in flight, net_ring PMD\n", cpu, lcore,
              tsc_hz / 1e6, opt.inflight);
  std::printf("packets: %" PRIu64 " measured (%" PRIu64 " polls, %.1f per poll), %.3f s wall (TSC says %.3f s)\n",
              done, polls, static_cast<double>(done) / static_cast<double>(polls),
              static_cast<double>(w1 - w0) / 1e9, total_ns / 1e9);
  std::printf("worker loop: %.2f Mpps (%.1f ns/packet) on one core, burst %u, %s timestamps\n",
              1e3 / per_pkt_worker, per_pkt_worker, opt.burst, opt.hw ? "hardware" : "software");
  std::printf("timestamps: %" PRIu64 " hardware (NIC -> TSC -> UTC), %" PRIu64 " software\n", hw_ts, sw_ts);
  std::printf("worker loop + harness: %.2f Mpps (%.1f ns/packet)\n", 1e3 / per_pkt_all, per_pkt_all);
  std::printf("harness: %.1f ns/packet in the loop (TSC around each recycle); alone %.1f ns/packet "
              "(+ %.1f ns/packet for the bare ring moves standing in for the worker)\n",
              per_pkt_harness, alone_harness, alone_move);
  std::printf("replies checked: %" PRIu64 " in warm-up (all), %" PRIu64 " sampled in the measured loop: all correct\n",
              checked_warm, h.checked - checked_warm);
  if (opt.xleave)
    std::printf("interleaved answers: %" PRIu64 " of %" PRIu64 " in the measured loop\n",
                c.ntp_interleaved_replies.load() - xl0, ntp);
  std::printf("counters: rx %" PRIu64 " tx %" PRIu64 " ntp replies %" PRIu64 " drops %" PRIu64 "\n", rx, tx, ntp,
              drops);
  std::printf("allocations in the hot loop: %" PRIu64 " (malloc family, incl. operator new); rte_malloc: %" PRIu64
              "; mempool gets: %d\n",
              allocs, static_cast<uint64_t>(ms1.alloc_count - ms0.alloc_count),
              static_cast<int>(pool_avail0) - static_cast<int>(pool_avail1));
  std::printf("context switches of the worker thread in the hot loop: %" PRIu64 "\n", sw1 - sw0);
  if (ctx->limiter)
    std::printf("rate-limit table: %zu of %zu entries in use, %" PRIu64 " inserts, %" PRIu64 " evictions; kod %" PRIu64
                ", leaked %" PRIu64 "\n",
                ctx->limiter->fill(), ctx->limiter->capacity(), ctx->limiter->inserts(), ctx->limiter->evictions(),
                c.kod_rate.load() + c.kod_deny.load(), c.rate_leaked.load());

  int rc = 0;
  if (opt.auth != crypto::MacType::kNone) {
    std::printf("auth: %" PRIu64 " replies MACed, %" PRIu64 " unknown key, %" PRIu64 " bad MAC\n",
                c.auth_replies.load(), c.auth_unknown_key.load(), c.auth_bad_mac.load());
    if (c.auth_unknown_key.load() != 0 || c.auth_bad_mac.load() != 0 || c.auth_replies.load() < done) {
      std::fprintf(stderr, "bench_worker: every request must be answered with a MAC\n");
      rc = 1;
    }
  }
  if (rx != done || tx != done || ntp != done || drops != 0) {
    std::fprintf(stderr, "bench_worker: counters do not add up: every request must be answered\n");
    rc = 1;
  }
  if ((opt.hw ? hw_ts : sw_ts) != done || (opt.hw ? sw_ts : hw_ts) != 0) {
    std::fprintf(stderr, "bench_worker: every request must carry a %s timestamp\n", opt.hw ? "hardware" : "software");
    rc = 1;
  }
  rte_eth_dev_stop(pid);
  rte_eth_dev_close(pid);
  // EAL leaves its runtime directory (/var/run/dpdk/<file-prefix>) behind.
  const std::string runtime_dir = rte_eal_get_runtime_dir();
  rte_eal_cleanup();
  std::error_code ec;
  std::filesystem::remove_all(runtime_dir, ec);
  return rc;
}
