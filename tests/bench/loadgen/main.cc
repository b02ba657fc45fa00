// ntp-loadgen: many simulated NTP clients on one DPDK port, sending at
// rising rates like chrony's ntpperf and validating every answer. The
// program is the loop; what it builds, parses and checks is loadgen.h.
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "dataplane/frame.h"
#include "tests/bench/loadgen/loadgen.h"

namespace lg = ntp::loadgen;
namespace dp = ntp::dp;

namespace {

constexpr const char* kUsage = R"(usage: ntp-loadgen [EAL options] -- OPTIONS

Simulated NTP clients on one DPDK port (the first, or --port): requests at a
target rate in rising steps, every answer validated, response time from the
TSC. The EAL options choose the port (--vdev net_memif0,role=client,socket=...
or --vdev net_af_packet0,iface=veth0,framecnt=8192) and the core (-l N: the
main lcore runs the loop).

  --dst ADDR           the server (IPv4 or IPv6)                     [required]
  --src PREFIX         client addresses (repeatable, or comma-separated;
                       one family); network/broadcast addresses skipped [required]
  --clients N          simulated clients (default 1000); client c uses address
                       c mod A (A addresses) and port --src-port + c / A
  --src-port P         first client port (default 1024)
  --dst-mac MAC        the server's (or next hop's) MAC; without it, resolved
                       by ARP (IPv4) or neighbour solicitation (IPv6)
  --dst-port P         the server's port (default 123)
  --rate R             one step at R requests/s, or START:MAX:xFACTOR or
                       START:MAX:+STEP (default 1000:1000000:x1.5)
  --step-s S           seconds per step (default 2)
  --timeout-ms T       an answer later than T ms counts as late, not answered;
                       a step's line waits T ms past its end (default 100)
  --warmup-s S         first, S s at the first rate, not counted (default 0)
  --max-loss-pct P     stop after the first step losing more than P% (default 10)
  --good-loss-pct P    the summary's best rate loses less than P% (default 0.1)
  --stratum A[-B]      stratum expected (default 1-15)
  --allow-unsync       take leap 3 (unsynchronized) as valid
  --burst N            frames per TX burst (default 32)
  --json               one JSON object per step and a summary, not a table
  --help

Columns: rate_pps target rate; sent_pps sent; answered_pps valid answers
within --timeout-ms; lost% (sent - answered) / sent; late answers after
--timeout-ms; invalid answers (checksum, source, mode, stratum, leap, origin,
duplicate); p50/p99/max response time in microseconds (TSC, send to receive);
busy% the generator's own load while sending (100: it is the limit).
A step whose sent rate falls more than 1% short of its target is marked
"sender-limited": the generator, not the server, was the limit.
)";

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct Options {
  uint16_t port = 0;
  lg::Address dst;
  bool have_dst = false;
  std::vector<lg::AddressRange> src;
  uint32_t clients = 1000;
  uint16_t src_port = 1024;
  std::optional<std::array<uint8_t, 6>> dst_mac;
  uint16_t dst_port = 123;
  std::vector<double> rates;
  double step_s = 2, timeout_ms = 100, warmup_s = 0, max_loss_pct = 10, good_loss_pct = 0.1;
  lg::Expectation expect;
  unsigned burst = 32;
  bool json = false;
};

bool g_eal_up = false;

// EAL leaves its runtime directory (/var/run/dpdk/<file-prefix>) behind:
// a run leaves nothing, as the dataplane's.
void eal_cleanup() {
  if (!g_eal_up) return;
  g_eal_up = false;
  const std::string runtime_dir = rte_eal_get_runtime_dir();
  rte_eal_cleanup();
  std::error_code ec;
  std::filesystem::remove_all(runtime_dir, ec);
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "ntp-loadgen: %s\n", what.c_str());
  eal_cleanup();
  std::exit(2);
}

double number(const char* opt, const char* v, double lo, double hi) {
  char* end = nullptr;
  const double d = std::strtod(v, &end);
  if (*v == '\0' || *end != '\0' || !(d >= lo && d <= hi))
    fail(std::string(opt) + " '" + v + "': not a number in " + std::to_string(lo) + ".." + std::to_string(hi));
  return d;
}

Options parse_options(int argc, char** argv) {
  Options o;
  std::string err, rates = "1000:1000000:x1.5";
  for (int i = 0; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    const auto value = [&]() -> const char* {
      if (i + 1 >= argc) fail(a + " needs a value (--help)");
      return argv[++i];
    };
    if (a == "--dst") {
      const char* v = value();
      auto d = lg::parse_address(v);
      if (!d) fail(std::string("--dst '") + v + "' is no IPv4 or IPv6 address");
      o.dst = *d;
      o.have_dst = true;
    } else if (a == "--src") {
      std::string_view list = value();
      for (size_t at = 0; at <= list.size();) {
        const size_t c = std::min(list.find(',', at), list.size());
        auto r = lg::parse_range(list.substr(at, c - at), err);
        if (!r) fail("--src: " + err);
        o.src.push_back(*r);
        at = c + 1;
      }
    } else if (a == "--clients") {
      o.clients = static_cast<uint32_t>(number("--clients", value(), 1, 1 << 24));
    } else if (a == "--src-port") {
      o.src_port = static_cast<uint16_t>(number("--src-port", value(), 1, 65535));
    } else if (a == "--dst-port") {
      o.dst_port = static_cast<uint16_t>(number("--dst-port", value(), 1, 65535));
    } else if (a == "--dst-mac") {
      const char* v = value();
      o.dst_mac = lg::parse_mac(v);
      if (!o.dst_mac) fail(std::string("--dst-mac '") + v + "' is not xx:xx:xx:xx:xx:xx");
    } else if (a == "--rate") {
      rates = value();
    } else if (a == "--step-s") {
      o.step_s = number("--step-s", value(), 0.01, 3600);
    } else if (a == "--timeout-ms") {
      o.timeout_ms = number("--timeout-ms", value(), 0.001, 60000);
    } else if (a == "--warmup-s") {
      o.warmup_s = number("--warmup-s", value(), 0, 3600);
    } else if (a == "--max-loss-pct") {
      o.max_loss_pct = number("--max-loss-pct", value(), 0, 100);
    } else if (a == "--good-loss-pct") {
      o.good_loss_pct = number("--good-loss-pct", value(), 0, 100);
    } else if (a == "--stratum") {
      const std::string v = value();
      const size_t dash = v.find('-');
      o.expect.stratum_min = static_cast<uint8_t>(number("--stratum", v.substr(0, dash).c_str(), 0, 16));
      o.expect.stratum_max = dash == std::string::npos
                                 ? o.expect.stratum_min
                                 : static_cast<uint8_t>(number("--stratum", v.substr(dash + 1).c_str(), 0, 16));
    } else if (a == "--allow-unsync") {
      o.expect.allow_unsynchronized = true;
    } else if (a == "--burst") {
      o.burst = static_cast<unsigned>(number("--burst", value(), 1, 512));
    } else if (a == "--port") {
      o.port = static_cast<uint16_t>(number("--port", value(), 0, RTE_MAX_ETHPORTS - 1));
    } else if (a == "--json") {
      o.json = true;
    } else {
      fail("unknown option '" + a + "' (--help)");
    }
  }
  if (!o.have_dst || o.src.empty()) fail("--dst and --src are required (--help)");
  if (o.dst.v6 != o.src.front().first.v6) fail("--dst and --src are of different address families");
  for (const auto& r : o.src)
    if (lg::offset_in(r, o.dst)) fail("--dst " + lg::to_string(o.dst) + " is inside a --src range");
  auto r = lg::parse_rates(rates, err);
  if (!r) fail(err);
  o.rates = *r;
  if (o.warmup_s > 0 && o.timeout_ms > o.warmup_s * 1000) fail("--timeout-ms must not exceed --warmup-s");
  if (o.timeout_ms > o.step_s * 1000) fail("--timeout-ms must not exceed --step-s (a step's window closes in the next)");
  return o;
}

// One step's counts, by the step its requests were sent in.
struct Step {
  uint32_t id = 0;
  double target_pps = 0;
  bool warmup = false, open = false;
  uint64_t start_tsc = 0, end_tsc = 0, close_tsc = 0;  // sending ends at end, answers count until close
  uint64_t sent = 0, answered = 0, late = 0, invalid = 0, tx_full = 0;
  uint64_t idle_tsc = 0;  // while sending: turns of the loop with nothing to do
  uint64_t invalid_by[static_cast<size_t>(lg::Invalid::kCount)] = {};
  lg::LatencyHistogram rtt;
};

struct Totals {
  uint64_t late_unattributed = 0, invalid_unattributed = 0, stray = 0, arp_answered = 0, nd_answered = 0;
  uint64_t invalid_by[static_cast<size_t>(lg::Invalid::kCount)] = {};
};

class Generator {
 public:
  Generator(const Options& o, lg::ClientSet clients, rte_mempool* pool, const uint8_t* mac)
      : o_(o), clients_(std::move(clients)), slots_(clients_.size()), pool_(pool) {
    hz_ = rte_get_tsc_hz();
    std::memcpy(spec_.src_mac, mac, 6);
    spec_.server = o.dst;
    spec_.server_port = o.dst_port;
    nonce_.key = std::random_device{}() | (uint64_t{std::random_device{}()} << 32) | (uint64_t{1} << 63);
    timeout_tsc_ = static_cast<uint64_t>(o.timeout_ms * 1e-3 * static_cast<double>(hz_));
    cursor_ = clients_.begin();
  }

  // The server's MAC, by ARP or neighbour solicitation, for up to 5 s.
  bool resolve() {
    if (o_.dst_mac) {
      std::memcpy(spec_.dst_mac, o_.dst_mac->data(), 6);
      request_.emplace(spec_);
      return true;
    }
    const lg::Endpoint me = clients_.endpoint(0);
    const uint64_t deadline = rte_rdtsc() + 5 * hz_;
    uint64_t next_ask = 0;
    while (!resolved_ && rte_rdtsc() < deadline && !g_stop) {
      if (rte_rdtsc() >= next_ask) {
        rte_mbuf* m = rte_pktmbuf_alloc(pool_);
        if (m) {
          uint8_t* b = rte_pktmbuf_mtod(m, uint8_t*);
          const size_t n = o_.dst.v6 ? lg::build_neighbour_solicitation(b, spec_.src_mac, me.addr, o_.dst)
                                     : dp::build_arp_request(b, spec_.src_mac, me.addr.v4, o_.dst.v4);
          send_one(m, n);
        }
        next_ask = rte_rdtsc() + hz_ / 5;
      }
      poll(rte_rdtsc());
    }
    if (resolved_) request_.emplace(spec_);  // the template needs the server's MAC
    return resolved_;
  }

  // Runs the steps; returns the exit status.
  int run() {
    std::vector<std::pair<double, bool>> plan;  // rate, warmup
    if (o_.warmup_s > 0) plan.emplace_back(o_.rates.front(), true);
    for (double r : o_.rates) plan.emplace_back(r, false);
    if (!o_.json)
      std::printf("clients %u on %" PRIu64 " addresses, server %s, %.1f s steps, timeout %.0f ms\n"
                  "  rate_pps   sent_pps answered_pps    lost%%    late invalid |  p50_us   p99_us   max_us | busy%%\n",
                  clients_.size(), clients_.addresses(), lg::to_string(o_.dst).c_str(), o_.step_s, o_.timeout_ms);
    std::fflush(stdout);
    bool stop = false;
    for (uint32_t i = 0; i < plan.size() && !stop && !g_stop; i++) {
      Step& s = steps_[i % 2];
      if (s.open) stop |= finish(s);  // only when the window is longer than the step: never (checked)
      if (stop) break;
      const double secs = plan[i].second ? o_.warmup_s : o_.step_s;
      s = Step{};
      s.id = i;
      s.target_pps = plan[i].first;
      s.warmup = plan[i].second;
      s.open = true;
      s.start_tsc = rte_rdtsc();
      s.end_tsc = s.start_tsc + static_cast<uint64_t>(secs * static_cast<double>(hz_));
      s.close_tsc = s.end_tsc + timeout_tsc_;
      stop = send_step(s);
      if (stop || g_stop) s.open = false;  // cut short: a partial step's figures would mislead
    }
    // The last windows close.
    for (;;) {
      Step* open = nullptr;
      for (Step& s : steps_)
        if (s.open && (!open || s.id < open->id)) open = &s;
      if (!open) break;
      while (rte_rdtsc() < open->close_tsc && !g_stop) poll(rte_rdtsc());
      stop |= finish(*open);
    }
    summary();
    return 0;
  }

 private:
  // Sends step s at its rate until its end, handling answers; finishes the
  // previous step when its window closes. Returns whether to stop.
  bool send_step(Step& s) {
    const double per_tsc = s.target_pps / static_cast<double>(hz_);
    rte_mbuf* burst[512];
    bool stop = false;
    uint64_t last = rte_rdtsc();
    bool idle = false;
    for (;;) {
      const uint64_t now = rte_rdtsc();
      // Our own load: the time of the turns that found nothing to send or receive.
      if (idle) s.idle_tsc += now - last;
      last = now;
      if (now >= s.end_tsc || g_stop) break;
      idle = poll(now) == 0;
      Step& prev = steps_[(s.id + 1) % 2];
      if (prev.open && now >= prev.close_tsc) stop |= finish(prev);
      if (stop) return true;
      const auto due = static_cast<uint64_t>(static_cast<double>(now - s.start_tsc) * per_tsc);
      if (due <= s.sent) continue;
      idle = false;
      const unsigned n = static_cast<unsigned>(std::min<uint64_t>(due - s.sent, o_.burst));
      if (rte_pktmbuf_alloc_bulk(pool_, burst, n) != 0) {
        s.tx_full++;
        continue;
      }
      uint32_t client[512];
      for (unsigned k = 0; k < n; k++) {
        client[k] = cursor_.client;
        uint8_t* b = rte_pktmbuf_mtod(burst[k], uint8_t*);
        const size_t len =
            request_->write(b, clients_.address(cursor_.address), cursor_.port, nonce_.encode(next_seq_ + k));
        burst[k]->data_len = burst[k]->pkt_len = static_cast<uint32_t>(len);
        clients_.advance(cursor_);
      }
      const uint64_t tsc = rte_rdtsc();
      const uint16_t sent = rte_eth_tx_burst(o_.port, 0, burst, static_cast<uint16_t>(n));
      // Only what went out is a request; the rest's numbers are skipped (and
      // stay seq mod clients = client for match_origin).
      for (uint16_t k = 0; k < sent; k++) slots_[client[k]].record(next_seq_ + k, tsc, s.id);
      next_seq_ += n;
      s.sent += sent;
      if (sent < n) {
        s.tx_full++;
        rte_pktmbuf_free_bulk(burst + sent, n - sent);
      }
    }
    return stop;
  }

  void send_one(rte_mbuf* m, size_t len) {
    m->data_len = m->pkt_len = static_cast<uint32_t>(len);
    if (rte_eth_tx_burst(o_.port, 0, &m, 1) != 1) rte_pktmbuf_free(m);
  }

  Step* step_of(uint32_t id) {
    Step& s = steps_[id % 2];
    return s.open && s.id == id ? &s : nullptr;
  }
  Step* newest() {
    Step* n = nullptr;
    for (Step& s : steps_)
      if (s.open && (!n || s.id > n->id)) n = &s;
    return n;
  }
  void count_invalid(Step* s, lg::Invalid why) {
    const auto i = static_cast<size_t>(why);
    totals_.invalid_by[i]++;
    if (s) {
      s->invalid++;
      s->invalid_by[i]++;
    } else {
      totals_.invalid_unattributed++;
    }
  }

  uint16_t poll(uint64_t now) {
    rte_mbuf* rx[64];
    const uint16_t n = rte_eth_rx_burst(o_.port, 0, rx, 64);
    if (n == 0) return 0;
    const uint64_t rx_tsc = rte_rdtsc();
    (void)now;
    for (uint16_t i = 0; i < n; i++) {
      handle(rte_pktmbuf_mtod(rx[i], const uint8_t*), rte_pktmbuf_data_len(rx[i]), rx_tsc);
    }
    rte_pktmbuf_free_bulk(rx, n);
    return n;
  }

  void handle(const uint8_t* b, size_t len, uint64_t rx_tsc) {
    const lg::RxFrame f = lg::parse_frame(b, len);
    switch (f.kind) {
      case lg::FrameKind::kUdp: return answer(f, rx_tsc);
      case lg::FrameKind::kArpRequest:
        if (clients_.has_address(f.dst)) reply([&](uint8_t* out) { return lg::build_arp_reply(out, f, spec_.src_mac); }, totals_.arp_answered);
        return;
      case lg::FrameKind::kArpReply:
        if (f.src == o_.dst && !resolved_) learn(f.lladdr);
        return;
      case lg::FrameKind::kNeighbourSolicitation: {
        const lg::Address unspecified{true, 0, {}};
        if (f.src != unspecified && clients_.has_address(f.dst))
          reply([&](uint8_t* out) { return lg::build_neighbour_advertisement(out, f, spec_.src_mac); },
                totals_.nd_answered);
        return;
      }
      case lg::FrameKind::kNeighbourAdvertisement:
        if (f.dst == o_.dst && f.has_lladdr && !resolved_) learn(f.lladdr);
        return;
      case lg::FrameKind::kOther: return;
    }
  }

  template <typename Build>
  void reply(Build build, uint64_t& counter) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (!m) return;
    send_one(m, build(rte_pktmbuf_mtod(m, uint8_t*)));
    counter++;
  }

  void learn(const uint8_t* mac) {
    std::memcpy(spec_.dst_mac, mac, 6);
    resolved_ = true;
  }

  void answer(const lg::RxFrame& f, uint64_t rx_tsc) {
    const auto client = clients_.client_of(f.dst, f.dst_port);
    if (!client) {
      totals_.stray++;  // not to one of our clients: someone else's traffic
      return;
    }
    if (!f.checksum_ok) return count_invalid(newest(), lg::Invalid::kChecksum);
    if (f.src != o_.dst || f.src_port != o_.dst_port) return count_invalid(newest(), lg::Invalid::kSource);
    if (f.payload_len < ntp::proto::kHeaderLen) return count_invalid(newest(), lg::Invalid::kLength);
    const ntp::proto::NtpHeader h = ntp::proto::read_header(f.payload);
    lg::ClientSlots& cs = slots_[*client];
    const uint64_t seq = nonce_.decode(lg::to_u64(h.origin));
    const lg::Match m = lg::match_origin(cs, seq, *client, clients_.size(), next_seq_);
    if (m == lg::Match::kNone) return count_invalid(newest(), lg::Invalid::kOrigin);
    if (m == lg::Match::kOlder) {
      // Older than this client's last two requests: its time is gone with its slot.
      const lg::Invalid why = lg::check_header(h, o_.expect);
      if (why != lg::Invalid::kNone) return count_invalid(nullptr, why);
      totals_.late_unattributed++;
      return;
    }
    lg::Sent& sent = m == lg::Match::kLast ? cs.last : cs.before;
    Step* s = step_of(sent.step);
    const lg::Invalid why = sent.answered ? lg::Invalid::kDuplicate : lg::check_header(h, o_.expect);
    sent.answered = true;
    if (why != lg::Invalid::kNone) return count_invalid(s, why);
    const uint64_t rtt_tsc = rx_tsc - sent.sent_tsc;
    if (rtt_tsc > timeout_tsc_ || !s) {
      if (s)
        s->late++;
      else
        totals_.late_unattributed++;
      return;
    }
    s->answered++;
    s->rtt.add(static_cast<uint64_t>(static_cast<double>(rtt_tsc) * 1e9 / static_cast<double>(hz_)));
  }

  // Prints step s and closes it; returns whether to stop (loss over the limit).
  bool finish(Step& s) {
    s.open = false;
    const double secs = static_cast<double>(s.end_tsc - s.start_tsc) / static_cast<double>(hz_);
    const double sent_pps = static_cast<double>(s.sent) / secs, ans_pps = static_cast<double>(s.answered) / secs;
    const double lost_pct = s.sent ? 100.0 * static_cast<double>(s.sent - std::min(s.sent, s.answered)) /
                                         static_cast<double>(s.sent)
                                   : 100.0;
    const bool sender_limited = sent_pps < 0.99 * s.target_pps;
    const double busy_pct = 100.0 * (1.0 - static_cast<double>(s.idle_tsc) / static_cast<double>(s.end_tsc - s.start_tsc));
    const double p50 = static_cast<double>(s.rtt.quantile(0.5)) / 1e3, p99 = static_cast<double>(s.rtt.quantile(0.99)) / 1e3,
                 mx = static_cast<double>(s.rtt.max()) / 1e3;
    if (o_.json) {
      std::printf("{\"step\": %u, \"warmup\": %s, \"target_pps\": %.0f, \"sent\": %" PRIu64 ", \"sent_pps\": %.0f, "
                  "\"answered\": %" PRIu64 ", \"answered_pps\": %.0f, \"lost_pct\": %.4f, \"late\": %" PRIu64
                  ", \"invalid\": %" PRIu64 ", \"invalid_by\": {",
                  s.id, s.warmup ? "true" : "false", s.target_pps, s.sent, sent_pps, s.answered, ans_pps, lost_pct,
                  s.late, s.invalid);
      const char* sep = "";
      for (size_t i = 1; i < static_cast<size_t>(lg::Invalid::kCount); i++)
        if (s.invalid_by[i]) {
          std::printf("%s\"%s\": %" PRIu64, sep, lg::to_string(static_cast<lg::Invalid>(i)), s.invalid_by[i]);
          sep = ", ";
        }
      std::printf("}, \"p50_us\": %.2f, \"p99_us\": %.2f, \"max_us\": %.2f, \"sender_limited\": %s, "
                  "\"tx_full\": %" PRIu64 ", \"gen_busy_pct\": %.1f}\n",
                  p50, p99, mx, sender_limited ? "true" : "false", s.tx_full, busy_pct);
    } else {
      std::printf("%10.0f %10.0f %12.0f %8.3f %7" PRIu64 " %7" PRIu64 " | %7.1f %8.1f %8.1f | %5.1f%s%s\n",
                  s.target_pps, sent_pps, ans_pps, lost_pct, s.late, s.invalid, p50, p99, mx, busy_pct,
                  s.warmup ? "  (warm-up)" : "",
                  sender_limited ? "  sender-limited" : "");
      if (s.invalid) {
        std::printf("           invalid:");
        for (size_t i = 1; i < static_cast<size_t>(lg::Invalid::kCount); i++)
          if (s.invalid_by[i]) std::printf(" %s %" PRIu64, lg::to_string(static_cast<lg::Invalid>(i)), s.invalid_by[i]);
        std::printf("\n");
      }
    }
    std::fflush(stdout);
    if (s.warmup) return false;
    steps_done_++;
    if (lost_pct < o_.good_loss_pct && !sender_limited && s.target_pps > best_pps_) {
      best_pps_ = s.target_pps;
      best_answered_pps_ = ans_pps;
    }
    if (sender_limited) sender_limited_at_ = s.target_pps;
    return lost_pct > o_.max_loss_pct || sender_limited;
  }

  void summary() {
    uint64_t invalid = 0;
    for (size_t i = 1; i < static_cast<size_t>(lg::Invalid::kCount); i++) invalid += totals_.invalid_by[i];
    if (o_.json) {
      std::printf("{\"summary\": true, \"steps\": %u, \"best_pps\": %.0f, \"best_answered_pps\": %.0f, "
                  "\"sender_limited_at_pps\": %.0f, \"invalid_total\": %" PRIu64 ", \"late_unattributed\": %" PRIu64
                  ", \"invalid_unattributed\": %" PRIu64 ", \"stray\": %" PRIu64 ", \"arp_answered\": %" PRIu64
                  ", \"nd_answered\": %" PRIu64 "}\n",
                  steps_done_, best_pps_, best_answered_pps_, sender_limited_at_, invalid, totals_.late_unattributed,
                  totals_.invalid_unattributed, totals_.stray, totals_.arp_answered, totals_.nd_answered);
    } else {
      if (best_pps_ > 0)
        std::printf("highest rate with loss < %g%%: %.0f requests/s (%.0f answered/s)\n", o_.good_loss_pct, best_pps_,
                    best_answered_pps_);
      else
        std::printf("no step lost less than %g%%\n", o_.good_loss_pct);
      if (sender_limited_at_ > 0)
        std::printf("the generator could not send %.0f requests/s (sender-limited)\n", sender_limited_at_);
      std::printf("after the steps' windows: %" PRIu64 " late, %" PRIu64 " invalid; %" PRIu64
                  " frames to no client; ARP answered %" PRIu64 ", NS answered %" PRIu64 "\n",
                  totals_.late_unattributed, totals_.invalid_unattributed, totals_.stray, totals_.arp_answered,
                  totals_.nd_answered);
    }
    std::fflush(stdout);
  }

  const Options& o_;
  lg::ClientSet clients_;
  std::vector<lg::ClientSlots> slots_;  // sized once: the hot path never allocates
  rte_mempool* pool_;
  lg::FrameSpec spec_;
  lg::Nonce nonce_;
  std::optional<lg::RequestTemplate> request_;
  lg::ClientSet::Cursor cursor_;
  uint64_t hz_ = 0, timeout_tsc_ = 0, next_seq_ = 0;
  bool resolved_ = false;
  Step steps_[2];
  Totals totals_;
  uint32_t steps_done_ = 0;
  double best_pps_ = 0, best_answered_pps_ = 0, sender_limited_at_ = 0;
};

bool wait_link(uint16_t port, double seconds) {
  const uint64_t deadline = rte_rdtsc() + static_cast<uint64_t>(seconds * static_cast<double>(rte_get_tsc_hz()));
  while (rte_rdtsc() < deadline && !g_stop) {
    rte_eth_link link{};
    if (rte_eth_link_get_nowait(port, &link) == 0 && link.link_status == RTE_ETH_LINK_UP) return true;
    rte_delay_ms(10);
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i++)
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::fputs(kUsage, stdout);
      return 0;
    }
  // Our options (after --) first: a mistake in them is said before EAL sets anything up.
  int dashes = 1;
  while (dashes < argc && std::strcmp(argv[dashes], "--") != 0) dashes++;
  const Options o = parse_options(argc - std::min(dashes + 1, argc), argv + std::min(dashes + 1, argc));
  if (rte_eal_init(dashes, argv) < 0)
    fail(std::string("rte_eal_init: ") + rte_strerror(rte_errno) + " (EAL options before --)");
  g_eal_up = true;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  if (!rte_eth_dev_is_valid_port(o.port)) fail("no DPDK port " + std::to_string(o.port) + " (--vdev ... before --)");
  std::string err;
  auto clients = lg::ClientSet::make(o.src, o.clients, o.src_port, err);
  if (!clients) fail(err);

  const int socket = rte_eth_dev_socket_id(o.port);
  rte_mempool* pool = rte_pktmbuf_pool_create("loadgen", 16383, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                              socket < 0 ? static_cast<int>(SOCKET_ID_ANY) : socket);
  if (!pool) fail(std::string("rte_pktmbuf_pool_create: ") + rte_strerror(rte_errno) + " (with --no-huge, raise -m)");
  rte_eth_conf conf{};
  int rc = rte_eth_dev_configure(o.port, 1, 1, &conf);
  if (rc != 0) fail(std::string("rte_eth_dev_configure: ") + rte_strerror(-rc));
  uint16_t nb_rx = 4096, nb_tx = 4096;
  rte_eth_dev_adjust_nb_rx_tx_desc(o.port, &nb_rx, &nb_tx);
  const unsigned sock = static_cast<unsigned>(socket < 0 ? 0 : socket);
  if ((rc = rte_eth_rx_queue_setup(o.port, 0, nb_rx, sock, nullptr, pool)) != 0)
    fail(std::string("rte_eth_rx_queue_setup: ") + rte_strerror(-rc));
  if ((rc = rte_eth_tx_queue_setup(o.port, 0, nb_tx, sock, nullptr)) != 0)
    fail(std::string("rte_eth_tx_queue_setup: ") + rte_strerror(-rc));
  if ((rc = rte_eth_dev_start(o.port)) != 0) fail(std::string("rte_eth_dev_start: ") + rte_strerror(-rc));
  rte_eth_promiscuous_enable(o.port);  // our clients' frames are to our MAC, but a bridge may flood
  if (!wait_link(o.port, 10)) fail("port " + std::to_string(o.port) + ": link not up in 10 s (memif: is the server side running?)");
  rte_ether_addr mac{};
  rte_eth_macaddr_get(o.port, &mac);

  int status = 0;
  {
    Generator g(o, std::move(*clients), pool, mac.addr_bytes);
    if (!g.resolve()) {
      std::fprintf(stderr, "ntp-loadgen: no answer to ARP/neighbour solicitation for %s in 5 s (--dst-mac?)\n",
                   lg::to_string(o.dst).c_str());
      status = 2;
    } else {
      status = g.run();
    }
  }
  rte_eth_dev_stop(o.port);
  rte_eth_dev_close(o.port);
  eal_cleanup();
  return status;
}
