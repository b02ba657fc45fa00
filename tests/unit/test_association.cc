// One RFC 5905 association (control/ntp/association.h) driven directly with
// a fake clock: plain Unix-ns times passed in, replies built as
// proto::NtpHeader and sent through the wire format. Covers the on-wire
// checks of section 8 (duplicate, bogus origin, zero timestamps, a reply
// before our transmit time is known, a failed transmit, ports per RFC
// 9109, forged symmetric packets that change nothing but the timestamps of
// the next exchange), kiss codes (section 7.4: RATE slows down, DENY/RSTR
// stop), unsynchronized peers, the sample's offset and delay from T1..T4,
// the reach register and its dummy filter stage, the poll process
// (backoff while unreachable, following the system poll, iburst and burst,
// section 13 / A.5.7 as the code implements them), what client and
// symmetric packets carry, and the passive range and timeout of dynamic
// associations. The poll jitter comes from tests/support/test_seed.h
// (TEST_SEED=<n> replays a run); nonces and ports come from getrandom.
#include "control/ntp/association.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "control/ntp/filter_select.h"
#include "proto/ntp_packet.h"
#include "proto/ntp_time.h"
#include "tests/support/test_seed.h"

namespace ntp::ctl {
namespace {

using proto::Leap;
using proto::Mode;
using proto::NtpHeader;
using proto::NtpTimestamp;

constexpr int64_t kUs = 1'000;
constexpr int64_t kMs = 1'000'000;
constexpr int64_t kS = 1'000'000'000;
constexpr int64_t kStart = 1'700'000'000 * kS;  // some Unix time (2023)
constexpr uint32_t kPeerIp = 0x0A00011F;        // 10.0.1.31
constexpr uint32_t kServerRefid = 0x0A000001;   // the server's own source, 10.0.0.1
constexpr int8_t kPrecisionLog2 = -20;          // ours and the server's
// 2^-20 s in ns, as the association computes it.
const int64_t kPrecisionNs = std::llround(std::ldexp(1e9, kPrecisionLog2));
constexpr int64_t kTxLatency = 37 * kUs;  // on_timer -> the dataplane's real transmit time

int64_t seconds(int log2) { return std::llround(std::ldexp(1e9, log2)); }

// Everything about the association the tests choose; make_config() is the
// one place that knows AssocConfig's field names.
struct Setup {
  AssocMode mode = AssocMode::kClient;
  int minpoll = 6;
  int maxpoll = 10;
  bool iburst = false;
  bool burst = false;
  bool dynamic = false;
  uint32_t key_id = 0;
  bool xleave = false;
};

AssocConfig make_config(const Setup& s) {
  AssocConfig c;
  c.address = kPeerIp;
  c.port = proto::kNtpPort;
  c.mode = s.mode;
  c.minpoll_log2 = s.minpoll;
  c.maxpoll_log2 = s.maxpoll;
  c.iburst = s.iburst;
  c.burst = s.burst;
  c.dynamic = s.dynamic;
  c.key_id = s.key_id;
  c.xleave = s.xleave;
  c.version = 4;
  return c;
}

// Our system variables: unsynchronized (stratum 16) unless a test says otherwise.
LocalSystem local_system(int8_t poll_log2 = 6) {
  LocalSystem l;
  l.precision_log2 = kPrecisionLog2;
  l.poll_log2 = poll_log2;
  return l;
}

LocalSystem synchronized_system() {
  LocalSystem l = local_system();
  l.leap = Leap::kNone;
  l.stratum = 3;
  l.refid = 0x0A000002;
  l.reference_time_ns = kStart - 10 * kS;
  l.root_delay_ns = 3 * kMs;
  l.root_dispersion_ns = 7 * kMs;
  return l;
}

// Through the 48 bytes and back, as the engine hands packets over.
NtpHeader on_wire(const NtpHeader& h) {
  std::array<uint8_t, proto::kHeaderLen> b{};
  proto::write_header(h, b.data());
  return proto::read_header(b.data());
}

NtpHeader header_of(const OutPacket& p) { return proto::read_header(p.payload.data()); }

// The way from us to the peer and back: the peer's clock is `offset` ahead
// of ours, the request takes `out`, the peer holds it `hold`, the answer
// takes `back`.
struct Path {
  int64_t offset = 3 * kMs;
  int64_t out = 400 * kUs;
  int64_t hold = 50 * kUs;
  int64_t back = 600 * kUs;
};

// One packet of ours: when the poll process sent it, what it carried, and
// what the peer sees as its transmit timestamp (the dataplane's stamp for
// symmetric modes, the nonce for client requests).
struct Sent {
  int64_t at = 0;
  int64_t tx = 0;
  OutPacket pkt;
  NtpHeader h;
  NtpTimestamp wire_transmit;
};

// An association and the clock around it.
class Link {
 public:
  explicit Link(const Setup& s, LocalSystem system = local_system(), int64_t start = kStart)
      : a(make_config(s), 1, test::seed(), start), sys(std::move(system)), now(start) {}

  // Runs the poll process at its next due time. With report, the dataplane
  // says the packet left kTxLatency later.
  Sent poll(bool report = true) {
    Sent s;
    now = std::max(now, a.next_event_ns());
    s.at = now;
    const std::optional<OutPacket> p = a.on_timer(now, sys);
    if (!p) {
      ADD_FAILURE() << "no packet at next_event_ns()";
      return s;
    }
    s.pkt = *p;
    s.h = header_of(*p);
    s.tx = now + kTxLatency;
    s.wire_transmit = p->stamp_transmit ? proto::ntp_from_unix_ns(s.tx) : s.h.transmit;
    if (report) a.on_transmitted(p->cookie, s.tx);
    return s;
  }

  // What a stratum-2 peer answers to `s` over `path` (mode 4 to a client,
  // mode 2 to a symmetric active association), and when it arrives (T4).
  struct Reply {
    NtpHeader h;
    int64_t t1 = 0, t2 = 0, t3 = 0, t4 = 0;
  };
  Reply reply_to(const Sent& s, const Path& path = {}) const {
    Reply r;
    r.t1 = s.tx;
    r.t2 = s.tx + path.out + path.offset;
    r.t3 = r.t2 + path.hold;
    r.t4 = r.t3 - path.offset + path.back;
    NtpHeader& h = r.h;
    h.leap = Leap::kNone;
    h.version = 4;
    h.mode = a.config().mode == AssocMode::kClient ? Mode::kServer : Mode::kSymmetricPassive;
    h.stratum = 2;
    h.poll_log2 = s.h.poll_log2;
    h.precision_log2 = kPrecisionLog2;
    h.root_delay = proto::short_from_ns(2 * kMs);
    h.root_dispersion = proto::short_from_ns(1 * kMs);
    h.refid = kServerRefid;
    h.reference = proto::ntp_from_unix_ns(r.t2 - 5 * kS);
    h.origin = s.wire_transmit;
    h.receive = proto::ntp_from_unix_ns(r.t2);
    h.transmit = proto::ntp_from_unix_ns(r.t3);
    return r;
  }

  // From the peer's configured port to the port our packets leave from,
  // unless a test says otherwise.
  RxResult deliver(const NtpHeader& h, int64_t rx_ns) { return deliver(h, rx_ns, proto::kNtpPort, a.local_port()); }
  RxResult deliver(const NtpHeader& h, int64_t rx_ns, uint16_t src_port, uint16_t dst_port) {
    now = std::max(now, rx_ns);
    return a.on_packet(on_wire(h), {rx_ns, src_port, dst_port}, sys);
  }
  RxResult deliver(const Reply& r) { return deliver(r.h, r.t4); }

  // A poll and its answer.
  RxResult exchange(const Path& path = {}) { return deliver(reply_to(poll(), path)); }

  Association a;
  LocalSystem sys;
  int64_t now;
};

// A server as chronyd 4.3 serves interleaved mode (ntp_core.c): it keeps,
// per receive field it sent (odd: the lowest bit set), the real transmit
// time of that answer; a request whose origin is one of them is answered
// interleaved, once: origin = the request's receive field, receive = this
// request's arrival, transmit = that real time. Its basic answers carry
// the time read before the send, `early` before the real one.
struct XleaveServer {
  Path path;
  int64_t early = 30 * kUs;
  bool interleaves = true;
  std::vector<std::pair<NtpTimestamp, int64_t>> sent;  // receive field -> real t3
  Link::Reply answer(const Link& l, const Sent& s) {
    Link::Reply r = l.reply_to(s, path);
    NtpTimestamp rx = r.h.receive;
    rx = NtpTimestamp::from_raw(rx.raw() | 1);
    r.h.receive = rx;
    auto it = std::find_if(sent.begin(), sent.end(), [&](const auto& e) { return e.first == s.h.origin; });
    if (interleaves && !s.h.origin.is_zero() && it != sent.end()) {
      r.h.origin = s.h.receive;
      r.h.transmit = proto::ntp_from_unix_ns(it->second);
      sent.erase(it);
    } else {
      r.h.transmit = proto::ntp_from_unix_ns(r.t3 - early);
    }
    sent.emplace_back(rx, r.t3);
    return r;
  }
};

TEST(AssociationXleave, FirstBasicThenInterleavedWithTheServersRealTransmitTime) {
  Link l({.xleave = true}, synchronized_system());
  XleaveServer srv;
  srv.path = {.offset = 1 * kMs, .out = 100 * kUs, .hold = 50 * kUs, .back = 100 * kUs};
  // The first request is basic: origin and receive zero.
  Sent s1 = l.poll();
  EXPECT_TRUE(s1.h.origin.is_zero());
  EXPECT_TRUE(s1.h.receive.is_zero());
  const Link::Reply r1 = srv.answer(l, s1);
  EXPECT_EQ(l.deliver(r1), RxResult::kSample);
  // Its transmit time was read 30 us early: half of it shows.
  EXPECT_EQ(l.a.filter().offset_ns(), 1 * kMs - 15 * kUs);
  EXPECT_EQ(l.a.state(l.now).xleave, "basic");
  // The second asks for the real time: origin = the server's receive field,
  // receive a nonce other than the transmit nonce.
  l.now += kS;
  Sent s2 = l.poll();
  EXPECT_EQ(s2.h.origin, r1.h.receive);
  EXPECT_FALSE(s2.h.receive.is_zero());
  EXPECT_NE(s2.h.receive, s2.h.transmit);
  const Link::Reply r2 = srv.answer(l, s2);
  ASSERT_EQ(r2.h.origin, s2.h.receive) << "the fake server answered interleaved";
  // Interleaved, for exchange 1: sampled already (basic), so no sample.
  EXPECT_EQ(l.deliver(r2), RxResult::kNoSample);
  EXPECT_EQ(l.a.state(l.now).xleave, "interleaved");
  // The third completes exchange 2 with its real T3: the offset exactly.
  l.now += kS;
  Sent s3 = l.poll();
  EXPECT_EQ(s3.h.origin, r2.h.receive);
  const Link::Reply r3 = srv.answer(l, s3);
  EXPECT_EQ(l.deliver(r3), RxResult::kSample);
  EXPECT_EQ(l.a.filter().offset_ns(), 1 * kMs);
  EXPECT_EQ(l.a.filter().delay_ns(), 200 * kUs);  // out and back: the server's hold is not in it
  EXPECT_EQ(l.a.state(l.now).interleaved_answers, 2u);
  // A replay of that answer is bogus; so is one to another receive nonce.
  EXPECT_NE(l.deliver(r3), RxResult::kSample);
}

TEST(AssociationXleave, AServerThatAnswersBasicIsUsedInBasicMode) {
  Link l({.xleave = true}, synchronized_system());
  XleaveServer srv;
  srv.interleaves = false;
  srv.path = {.offset = -2 * kMs, .out = 100 * kUs, .back = 100 * kUs};
  for (int i = 0; i < 4; ++i) {
    l.now += kS;
    Sent s = l.poll();
    if (i > 0) EXPECT_FALSE(s.h.receive.is_zero()) << "still asking";
    EXPECT_EQ(l.deliver(srv.answer(l, s)), RxResult::kSample) << i;
  }
  EXPECT_EQ(l.a.state(l.now).xleave, "basic");
  EXPECT_EQ(l.a.state(l.now).interleaved_answers, 0u);
  EXPECT_EQ(l.a.filter().offset_ns(), -2 * kMs - 15 * kUs);
}

TEST(AssociationXleave, ALostRequestPairsTheNextAnswerWithTheLastExchangeAnswered) {
  Link l({.xleave = true}, synchronized_system());
  XleaveServer srv;
  srv.path = {.offset = 5 * kMs, .out = 80 * kUs, .back = 120 * kUs};
  l.deliver(srv.answer(l, l.poll()));                      // 1: basic
  l.now += kS;
  l.deliver(srv.answer(l, l.poll()));                      // 2: interleaved, no sample
  l.now += kS;
  const Sent lost = l.poll();                              // 3: the request is lost on the way
  (void)lost;
  l.now += kS;
  Sent s4 = l.poll();                                      // 4: still asks for exchange 2's T3
  const Link::Reply r4 = srv.answer(l, s4);
  ASSERT_EQ(r4.h.origin, s4.h.receive);
  EXPECT_EQ(l.deliver(r4), RxResult::kSample);
  EXPECT_EQ(l.a.filter().offset_ns(), 5 * kMs - 20 * kUs);  // (80 - 120) / 2: the path's asymmetry only
}

TEST(AssociationXleave, OnlyOurNoncesAreAnswers) {
  Link l({.xleave = true}, synchronized_system());
  XleaveServer srv;
  l.deliver(srv.answer(l, l.poll()));
  l.now += kS;
  Sent s = l.poll();
  Link::Reply r = srv.answer(l, s);
  Link::Reply forged = r;
  forged.h.origin = NtpTimestamp::from_raw(r.h.origin.raw() ^ 1);
  EXPECT_EQ(l.deliver(forged), RxResult::kBogus);
  EXPECT_NE(l.deliver(r), RxResult::kBogus);
  // Without xleave nothing but the transmit nonce answers.
  Link plain({}, synchronized_system());
  plain.deliver(srv.answer(plain, plain.poll()));
  plain.now += kS;
  Sent p = plain.poll();
  EXPECT_TRUE(p.h.origin.is_zero());
  EXPECT_TRUE(p.h.receive.is_zero());
  EXPECT_EQ(plain.a.state(plain.now).xleave, "");
}

// ---------------------------------------- symmetric interleaved (RFC 9769 section 3)

// Two symmetric associations with xleave on one wire: A's clock is the true
// time, B's `offset` ahead; each packet takes `one_way` and leaves
// kTxLatency after its poll. The harness is the dataplane: it stamps the
// transmit field of packets that ask for it with the time it reports.
struct PeerPair {
  int64_t offset = 2 * kMs;
  int64_t one_way = 300 * kUs;
  Association a, b;
  LocalSystem sys = synchronized_system();
  struct InFlight {
    NtpHeader h;
    int64_t arrive = 0;  // true time
    bool to_b = false;
  };
  std::vector<InFlight> wire;
  // What each sent, in order: the header as it went and its real transmit
  // time (in its sender's clock).
  std::vector<std::pair<NtpHeader, int64_t>> sent_a, sent_b;
  std::vector<RxResult> got_a, got_b;
  int64_t now = kStart;

  static AssocConfig config(bool xleave) {
    AssocConfig c = make_config({.mode = AssocMode::kSymmetricActive, .minpoll = 4, .maxpoll = 4, .xleave = xleave});
    return c;
  }
  // B starts half a poll later, so the two never cross on the wire.
  explicit PeerPair(bool xleave_a = true, bool xleave_b = true)
      : a(config(xleave_a), 1, test::seed(), kStart), b(config(xleave_b), 2, test::seed() + 1, kStart + 8 * kS + offset) {
    sys.poll_log2 = 4;
  }

  void send(Association& x, int64_t own_now, int64_t to_true, bool to_b, std::vector<std::pair<NtpHeader, int64_t>>& log) {
    const std::optional<OutPacket> p = x.on_timer(own_now, sys);
    ASSERT_TRUE(p);
    const int64_t tx = own_now + kTxLatency;
    x.on_transmitted(p->cookie, tx);
    NtpHeader h = header_of(*p);
    if (p->stamp_transmit) h.transmit = proto::ntp_from_unix_ns(tx);
    log.emplace_back(h, tx);
    wire.push_back({h, tx + to_true + one_way, to_b});
  }

  // Runs the next event (a poll or an arrival) in true-time order.
  void step() {
    const int64_t next_a = a.next_event_ns();
    const int64_t next_b = b.next_event_ns() - offset;
    auto first = std::min_element(wire.begin(), wire.end(), [](auto& x, auto& y) { return x.arrive < y.arrive; });
    const int64_t next_rx = first == wire.end() ? INT64_MAX : first->arrive;
    now = std::min({next_a, next_b, next_rx});
    if (now == next_rx) {
      const InFlight f = *first;
      wire.erase(first);
      if (f.to_b)
        got_b.push_back(b.on_packet(on_wire(f.h), {f.arrive + offset}, sys));
      else
        got_a.push_back(a.on_packet(on_wire(f.h), {f.arrive}, sys));
    } else if (now == next_a) {
      send(a, now, 0, true, sent_a);
    } else {
      send(b, now + offset, -offset, false, sent_b);
    }
  }
  void run_polls(size_t n) {
    const size_t until = sent_a.size() + n;
    while (sent_a.size() < until) step();
    while (!wire.empty()) step();
  }
};

TEST(AssociationSymmetricXleave, TwoPeersGoInterleavedAndEachPacketCarriesTheRealTimeOfTheOneBefore) {
  PeerPair p;
  p.run_polls(12);
  // The first packets are basic (nothing to answer yet); then each carries
  // as transmit the real transmit time of its predecessor (the lowest bit
  // flipped, 2^-32 s), origin = the peer's last receive field, receive =
  // our arrival time of that packet.
  int interleaved_sent = 0;
  for (size_t i = 1; i < p.sent_a.size(); ++i) {
    const NtpHeader& h = p.sent_a[i].first;
    if (h.transmit == proto::ntp_from_unix_ns(p.sent_a[i].second)) continue;  // basic: stamped as it left
    interleaved_sent++;
    EXPECT_EQ(h.transmit.raw() ^ 1, proto::ntp_from_unix_ns(p.sent_a[i - 1].second).raw()) << i;
  }
  EXPECT_GE(interleaved_sent, 10);
  for (Association* x : {&p.a, &p.b}) {
    const AssociationState s = x->state(p.now);
    EXPECT_EQ(s.xleave, "interleaved");
    EXPECT_GE(s.interleaved_answers, 10u);
  }
  // A sample's T3 is the peer's real transmit time, T4 our arrival of that
  // packet, T1/T2 our next one: out and back are in the delay, neither
  // side's turnaround; the offset is B's exactly (a symmetric path).
  EXPECT_NEAR(p.a.filter().offset_ns(), p.offset, 2);
  EXPECT_NEAR(p.b.filter().offset_ns(), -p.offset, 2);
  EXPECT_NEAR(p.a.filter().delay_ns(), 2 * p.one_way, 2);
  EXPECT_NEAR(p.b.filter().delay_ns(), 2 * p.one_way, 2);
  EXPECT_EQ(std::count(p.got_a.begin(), p.got_a.end(), RxResult::kBogus), 0);
  EXPECT_EQ(std::count(p.got_b.begin(), p.got_b.end(), RxResult::kBogus), 0);
}

// A peer as chronyd 4.3 runs symmetric mode (ntp_core.c): its basic packets
// carry a transmit time read `early` before the real one; with xleave it
// sends interleaved when it got a valid packet since its last and exactly
// one of its packets went between the two valid ones before
// (prev_tx_count == 1, tx_count == 0): origin = our last receive field,
// transmit = its previous packet's real time. Test 2 takes our packet in
// basic (origin = its last transmit) or, with xleave, interleaved mode
// (origin = its last receive field); a packet that fails restarts the
// exchange (its next answers that one).
struct ChronyPeer {
  int64_t offset = -3 * kMs;  // its clock against ours
  int64_t early = 30 * kUs;
  bool xleave = true;
  NtpTimestamp local_ntp_tx, local_ntp_rx, remote_ntp_rx, remote_ntp_tx, init_remote_ntp_tx;
  int64_t local_tx = 0, local_rx = 0, init_local_rx = 0;  // its clock
  bool valid_rx = false;
  int tx_count = 0, prev_tx_count = 0;
  int valid_basic = 0, valid_interleaved = 0, bogus = 0;

  NtpHeader transmit(int64_t tx) {
    const bool initial = !valid_rx && !init_remote_ntp_tx.is_zero();
    const bool il = xleave && !initial && prev_tx_count == 1 && tx_count == 0 && local_tx != 0;
    valid_rx = false;
    NtpHeader h;
    h.leap = Leap::kNone;
    h.version = 4;
    h.mode = Mode::kSymmetricActive;
    h.stratum = 2;
    h.poll_log2 = 4;
    h.precision_log2 = kPrecisionLog2;
    h.refid = kServerRefid;
    h.origin = il ? remote_ntp_rx : initial ? init_remote_ntp_tx : remote_ntp_tx;
    const int64_t rx = initial ? init_local_rx : local_rx;
    h.receive = rx ? proto::ntp_from_unix_ns(rx) : NtpTimestamp{};
    h.transmit = proto::ntp_from_unix_ns(il ? local_tx : tx - early);
    local_ntp_rx = h.receive;
    local_ntp_tx = h.transmit;
    local_tx = tx;
    tx_count++;
    return h;
  }
  void receive(const NtpHeader& h, int64_t rx) {
    const bool test1 = h.receive != remote_ntp_rx || h.transmit != remote_ntp_tx;
    const bool test2n = h.origin == local_ntp_tx;
    const bool test2i = xleave && h.origin == local_ntp_rx;
    const bool test3 = !h.origin.is_zero() && !h.receive.is_zero() && !h.transmit.is_zero();
    bool valid = test1 && (test2n || test2i) && test3;
    if (valid && (!valid_rx || remote_ntp_tx.raw() < h.transmit.raw())) {
      remote_ntp_rx = h.receive;
      remote_ntp_tx = h.transmit;
      local_rx = rx;
      init_remote_ntp_tx = {};
      init_local_rx = 0;
    } else if (!valid && test1 && !h.transmit.is_zero()) {
      init_remote_ntp_tx = h.transmit;
      init_local_rx = rx;
    }
    if (valid_rx) valid = false;
    else if (valid) valid_rx = true;
    if (valid) {
      prev_tx_count = tx_count;
      tx_count = 0;
      (test2n ? valid_basic : valid_interleaved)++;
    } else {
      bogus++;
    }
  }
};

// Our association (clock = true time) and a ChronyPeer polling at the same
// 16 s, half a poll apart, over a path of `one_way` each way.
struct ChronyLink {
  Link l{{.mode = AssocMode::kSymmetricActive, .minpoll = 4, .maxpoll = 4, .xleave = true}, synchronized_system()};
  ChronyPeer peer;
  int64_t one_way = 200 * kUs;
  int64_t peer_next = kStart + 8 * kS;  // true time
  std::vector<RxResult> got;
  ChronyLink() { l.sys.poll_log2 = 4; }
  // One poll of each side and the two arrivals.
  void round() {
    const Sent s = l.poll();
    NtpHeader h = s.h;
    if (s.pkt.stamp_transmit) h.transmit = s.wire_transmit;
    peer.receive(on_wire(h), s.tx + one_way + peer.offset);
    l.now = std::max(l.now, peer_next);
    const NtpHeader ph = peer.transmit(peer_next + peer.offset);
    got.push_back(l.deliver(ph, peer_next + one_way));
    peer_next += 16 * kS;
  }
};

TEST(AssociationSymmetricXleave, AgainstChronydInterleavedTheOffsetIsExactBasicItIsHalfItsEarlyRead) {
  ChronyLink c;
  for (int i = 0; i < 8; ++i) c.round();
  EXPECT_EQ(c.l.a.state(c.l.now).xleave, "interleaved");
  EXPECT_GE(c.l.a.state(c.l.now).interleaved_answers, 5u);
  EXPECT_GE(c.peer.valid_interleaved, 5);
  EXPECT_LE(c.peer.bogus, 1);  // our first packet only (nothing to answer)
  // Its real transmit time: the 30 us it reads its clock early are gone.
  EXPECT_NEAR(c.l.a.filter().offset_ns(), c.peer.offset, 2);
  EXPECT_NEAR(c.l.a.filter().delay_ns(), 2 * c.one_way, 2);

  // The peer turns xleave off: it finds our interleaved packets bogus and
  // restarts with a basic answer to them; we go basic (backing off the
  // tries), and our samples carry its early transmit time again.
  c.peer.xleave = false;
  const int bogus_before = c.peer.bogus;
  for (int i = 0; i < 40; ++i) c.round();
  EXPECT_EQ(c.l.a.state(c.l.now).xleave, "basic");
  EXPECT_NEAR(c.l.a.filter().offset_ns(), c.peer.offset - c.peer.early / 2, 2);
  EXPECT_LE(c.peer.bogus - bogus_before, 6) << "one try after 1, 2, 4, 8, 16, 16 basic polls";
  EXPECT_GE(c.peer.valid_basic, 30);

  // And back on: interleaved again from its next interleaved packet.
  c.peer.xleave = true;
  for (int i = 0; i < 20; ++i) c.round();
  EXPECT_EQ(c.l.a.state(c.l.now).xleave, "interleaved");
  EXPECT_NEAR(c.l.a.filter().offset_ns(), c.peer.offset, 2);
}

TEST(AssociationSymmetricXleave, APeerWithoutXleaveGetsBasicFromUs) {
  // Our xleave peer against one of ours without it: after the first
  // refused try the plain side's packets all count, both sample.
  PeerPair p(/*xleave_a=*/true, /*xleave_b=*/false);
  p.run_polls(40);
  EXPECT_EQ(p.a.state(p.now).xleave, "basic");
  EXPECT_EQ(p.a.state(p.now).interleaved_answers, 0u);
  EXPECT_EQ(p.b.state(p.now).xleave, "");
  EXPECT_NEAR(p.a.filter().offset_ns(), p.offset, 2);
  EXPECT_NEAR(p.b.filter().offset_ns(), -p.offset, 2);
  EXPECT_LE(std::count(p.got_b.begin(), p.got_b.end(), RxResult::kBogus), 6);
}

// ------------------------------------------------------------ what we send

TEST(AssociationPackets, ClientRequestIsMode3WithARandomNonceAndNothingElse) {
  // Even a synchronized system tells a server nothing about itself in a
  // request (RFC 9109 data minimisation); the transmit timestamp is random.
  Link l({}, synchronized_system());
  const Sent s = l.poll();
  EXPECT_EQ(s.pkt.dst_ip, kPeerIp);
  EXPECT_EQ(s.pkt.dst_port, proto::kNtpPort);
  EXPECT_FALSE(s.pkt.stamp_transmit);  // the nonce must stay as it is
  EXPECT_EQ(s.h.mode, Mode::kClient);
  EXPECT_EQ(s.h.version, 4);
  EXPECT_EQ(s.h.leap, Leap::kNone);
  EXPECT_EQ(s.h.stratum, 0);
  EXPECT_EQ(s.h.poll_log2, 6);
  EXPECT_EQ(s.h.refid, 0u);
  EXPECT_EQ(s.h.root_delay, 0u);
  EXPECT_EQ(s.h.root_dispersion, 0u);
  EXPECT_TRUE(s.h.reference.is_zero());
  EXPECT_TRUE(s.h.origin.is_zero());
  EXPECT_TRUE(s.h.receive.is_zero());
  ASSERT_FALSE(s.h.transmit.is_zero());
  // Not the time: far from both the send time and the reported transmit time.
  EXPECT_GT(std::llabs(proto::ntp_diff_ns(s.h.transmit, proto::ntp_from_unix_ns(s.at))), 1000 * kS);

  // A new nonce for every request (from getrandom, not from the seed: an
  // association with the same seed has others).
  std::vector<uint64_t> nonces{s.h.transmit.raw()};
  for (int i = 0; i < 5; ++i) nonces.push_back(l.poll().h.transmit.raw());
  for (size_t i = 0; i < nonces.size(); ++i)
    for (size_t j = i + 1; j < nonces.size(); ++j) EXPECT_NE(nonces[i], nonces[j]) << i << " " << j;
  Association same_seed(make_config({}), 1, test::seed(), kStart);
  const auto p = same_seed.on_timer(same_seed.next_event_ns(), local_system());
  ASSERT_TRUE(p);
  EXPECT_NE(header_of(*p).transmit.raw(), nonces[0]);
}

TEST(AssociationPackets, ClientRequestsLeaveFromTheAssociationsOwnRandomPort) {
  // RFC 9109 section 3: a random source port per association, 1024..65535.
  Link l({});
  const uint16_t port = l.a.local_port();
  EXPECT_GE(port, 1024);
  EXPECT_NE(port, proto::kNtpPort);
  for (int i = 0; i < 4; ++i) {
    const Sent s = l.poll();
    EXPECT_EQ(s.pkt.src_port, port) << i;  // the same while it is in use
    EXPECT_EQ(s.pkt.dst_port, proto::kNtpPort);
  }
  // Each association its own: 16 of them do not all share one port (the
  // chance that they do is 64512^-15).
  std::vector<uint16_t> ports;
  for (uint32_t id = 1; id <= 16; ++id) ports.push_back(Association(make_config({}), id, test::seed(), kStart).local_port());
  for (uint16_t p : ports) EXPECT_GE(p, 1024);
  EXPECT_GT(std::set<uint16_t>(ports.begin(), ports.end()).size(), 1u);
  // Symmetric associations keep 123: the peer's configuration names it.
  Link sym({.mode = AssocMode::kSymmetricActive});
  EXPECT_EQ(sym.a.local_port(), proto::kNtpPort);
  EXPECT_EQ(sym.poll().pkt.src_port, proto::kNtpPort);
}

TEST(AssociationPackets, ANewPortOnceTheServerStoppedAnswering) {
  // While the server answers the port stays (NAT and firewall state stay
  // put); once the reach register is empty the next requests leave from a
  // new one, and the old port's answers are no longer taken.
  Link l({.minpoll = 4, .maxpoll = 4});
  ASSERT_EQ(l.exchange(), RxResult::kSample);
  const uint16_t first = l.a.local_port();
  for (int i = 0; i < 7; ++i) {
    l.poll();
    EXPECT_EQ(l.a.local_port(), first) << i;
  }
  const Sent s = l.poll();  // the eighth unanswered: reach 0
  ASSERT_EQ(l.a.reach(), 0);
  EXPECT_EQ(s.pkt.src_port, l.a.local_port());
  // (A new random port may equal the old one, 1 in 64512: then both are right.)
  const Link::Reply r = l.reply_to(s);
  if (l.a.local_port() != first) {
    EXPECT_EQ(l.deliver(r.h, r.t4, proto::kNtpPort, first), RxResult::kBadPort);
  }
  EXPECT_EQ(l.deliver(r), RxResult::kSample);
}

TEST(AssociationPackets, SymmetricActiveCarriesOurSystemVariablesInMode1) {
  const LocalSystem sys = synchronized_system();
  Link l({.mode = AssocMode::kSymmetricActive}, sys);
  const Sent s = l.poll();
  EXPECT_TRUE(s.pkt.stamp_transmit);  // T3 is the real time of transmission
  EXPECT_EQ(s.h.mode, Mode::kSymmetricActive);
  EXPECT_EQ(s.h.leap, Leap::kNone);
  EXPECT_EQ(s.h.stratum, 3);
  EXPECT_EQ(s.h.precision_log2, kPrecisionLog2);
  EXPECT_EQ(s.h.poll_log2, 6);
  EXPECT_EQ(s.h.refid, sys.refid);
  EXPECT_EQ(s.h.reference, proto::ntp_from_unix_ns(sys.reference_time_ns));
  EXPECT_EQ(s.h.root_delay, proto::short_from_ns(sys.root_delay_ns));
  EXPECT_EQ(s.h.root_dispersion, proto::short_from_ns(sys.root_dispersion_ns));
  // Nothing heard from the peer yet: origin and receive zero (section 8:
  // the first packet of a symmetric exchange).
  EXPECT_TRUE(s.h.origin.is_zero());
  EXPECT_TRUE(s.h.receive.is_zero());

  // After the peer's packet, ours echo its transmit timestamp as origin and
  // carry our arrival time of it as receive.
  const Link::Reply r = l.reply_to(s);
  ASSERT_EQ(l.deliver(r), RxResult::kSample);
  const Sent next = l.poll();
  EXPECT_EQ(next.h.origin, r.h.transmit);
  EXPECT_EQ(next.h.receive, proto::ntp_from_unix_ns(r.t4));
}

TEST(AssociationPackets, UnsynchronizedSymmetricSaysLeap3AndStratum0) {
  // Stratum 16 goes out as 0 (RFC 5905 figure 11, like ntpd).
  Link l({.mode = AssocMode::kSymmetricActive}, local_system());
  const Sent s = l.poll();
  EXPECT_EQ(s.h.leap, Leap::kUnsynchronized);
  EXPECT_EQ(s.h.stratum, proto::kStratumUnspecified);
  EXPECT_TRUE(s.h.reference.is_zero());
}

// ------------------------------------------------------------ the sample

TEST(AssociationSample, OffsetAndDelayFromTheFourTimestamps) {
  // RFC 5905 section 8: offset = ((T2 - T1) + (T3 - T4)) / 2, delay =
  // (T4 - T1) - (T3 - T2), clamped not less than the precision. An
  // asymmetric path shows up as half the asymmetry in the offset.
  struct Case {
    Path path;
    int64_t offset, delay;
  };
  const Case cases[] = {
      {{3 * kMs, 400 * kUs, 50 * kUs, 600 * kUs}, 3 * kMs - 100 * kUs, 1 * kMs},
      {{-5 * kS, 250 * kUs, 10 * kUs, 250 * kUs}, -5 * kS, 500 * kUs},
      {{123'456, 30 * kUs, 7 * kUs, 10 * kUs}, 123'456 + 10 * kUs, 40 * kUs},
      {{0, 100, 0, 100}, 0, kPrecisionNs},  // 200 ns is below 2^-20 s
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "offset " << c.path.offset << " out " << c.path.out << " back " << c.path.back);
    Link l({});
    const Sent s = l.poll();
    const Link::Reply r = l.reply_to(s, c.path);
    ASSERT_EQ(l.deliver(r), RxResult::kSample);
    EXPECT_EQ(l.a.filter().offset_ns(), c.offset);
    EXPECT_EQ(l.a.filter().delay_ns(), c.delay);
    // T1 is the reported transmit time, not the time of on_timer.
    EXPECT_EQ(r.t1, s.at + kTxLatency);
    // Section 9.1: the sample's dispersion is both precisions plus PHI
    // over the exchange.
    const FilterStage newest = l.a.filter().stages()[0];
    EXPECT_TRUE(newest.valid);
    EXPECT_EQ(newest.time_ns, r.t4);
    EXPECT_EQ(newest.dispersion_ns, 2 * kPrecisionNs + phi_growth_ns(r.t4 - r.t1));
    // The peer variables follow the answer.
    EXPECT_EQ(l.a.stratum(), 2);
    EXPECT_EQ(l.a.peer_refid(), kServerRefid);
    EXPECT_EQ(l.a.candidate(r.t4).offset_ns, c.offset);
    EXPECT_TRUE(l.a.reachable());
  }
}

TEST(AssociationSample, SymmetricExchange) {
  // The peer's first packet (origin zero) starts the exchange without a
  // sample; its answer to ours gives one.
  Link l({.mode = AssocMode::kSymmetricActive});
  NtpHeader first;
  first.leap = Leap::kNone;
  first.mode = Mode::kSymmetricActive;
  first.stratum = 2;
  first.poll_log2 = 6;
  first.precision_log2 = kPrecisionLog2;
  first.refid = kServerRefid;
  first.transmit = proto::ntp_from_unix_ns(kStart + 1 * kMs);
  EXPECT_EQ(l.deliver(first, kStart - 2 * kMs), RxResult::kNoSample);
  // Unverified (origin zero answers nothing of ours): only the timestamps
  // for our answer are taken (RFC 5905 A.5.1), not reach nor the header.
  EXPECT_EQ(l.a.reach(), 0);
  EXPECT_EQ(l.a.stratum(), 0);
  EXPECT_FALSE(l.a.filter().has_estimate());

  const Sent s = l.poll();
  EXPECT_EQ(s.h.origin, first.transmit);
  const Path path{-2 * kMs, 300 * kUs, 1 * kMs, 300 * kUs};
  ASSERT_EQ(l.deliver(l.reply_to(s, path)), RxResult::kSample);
  EXPECT_EQ(l.a.filter().offset_ns(), -2 * kMs);
  EXPECT_EQ(l.a.filter().delay_ns(), 600 * kUs);
}

// ------------------------------------------------------------ on-wire checks

TEST(AssociationOnWire, DuplicateIsDroppedAndChangesNothing) {
  // Section 8: "the transmit timestamp T3 is the same as the last received".
  Link l({});
  const Link::Reply r = l.reply_to(l.poll());
  ASSERT_EQ(l.deliver(r), RxResult::kSample);
  const auto stages = l.a.filter().stages();
  EXPECT_EQ(l.deliver(r.h, r.t4 + 1 * kMs), RxResult::kDuplicate);
  EXPECT_EQ(l.a.filter().stages(), stages);
  EXPECT_EQ(l.a.filter().valid_stages(), 1);
  // Still a duplicate once the next request is out: the transmit check
  // comes before the origin check.
  const Sent next = l.poll();
  EXPECT_EQ(l.a.reach(), 2);
  EXPECT_EQ(l.deliver(r.h, next.tx + 1 * kMs), RxResult::kDuplicate);
  EXPECT_EQ(l.a.reach(), 2);  // and it does not count as an answer
  EXPECT_EQ(l.a.filter().valid_stages(), 1);
}

TEST(AssociationOnWire, BogusOriginIsDroppedAndTheRealAnswerStillCounts) {
  // Section 8: "the origin timestamp T1 does not match the transmit
  // timestamp of our last packet".
  Link l({});
  const Sent s = l.poll();
  Link::Reply r = l.reply_to(s);
  NtpHeader forged = r.h;
  forged.origin = NtpTimestamp::from_raw(s.wire_transmit.raw() ^ 0x100);
  EXPECT_EQ(l.deliver(forged, r.t4), RxResult::kBogus);
  EXPECT_EQ(l.a.reach(), 0);
  EXPECT_FALSE(l.a.filter().has_estimate());
  EXPECT_EQ(l.a.stratum(), 0);  // the forged header was not taken in
  // A forgery does not use up the nonce.
  EXPECT_EQ(l.deliver(r.h, r.t4 + 1), RxResult::kSample);

  // "To protect against replay of the last transmitted packet, the xmt
  // state variable is set to zero": a second, different answer to the
  // request already answered is bogus.
  NtpHeader again = r.h;
  again.transmit = proto::ntp_from_unix_ns(r.t3 + 1 * kMs);
  EXPECT_EQ(l.deliver(again, r.t4 + 2 * kMs), RxResult::kBogus);
  EXPECT_EQ(l.a.filter().valid_stages(), 1);

  // An answer to an older request after a newer one went out is bogus too.
  const Sent newer = l.poll();
  const Link::Reply late = l.reply_to(s, {.offset = 3 * kMs, .out = 400 * kUs, .hold = 2 * kMs, .back = 600 * kUs});
  EXPECT_EQ(l.deliver(late.h, newer.tx + 1 * kMs), RxResult::kBogus);
}

// Symmetric-key authentication (RFC 5905 section 9.2): the engine checks
// the MAC; what the association keeps of it.
TEST(AssociationAuth, StateAndCountersFollowWhatAnsweredOurPacket) {
  Link none({});
  EXPECT_EQ(none.a.auth_state(), AuthState::kNone);
  EXPECT_EQ(none.a.state(kStart).key_id, 0u);

  Link l({.key_id = 5});
  EXPECT_EQ(l.a.key_id(), 5u);
  EXPECT_EQ(l.a.auth_state(), AuthState::kPending);  // nothing verified yet
  const Sent s = l.poll();
  const Link::Reply r = l.reply_to(s);
  EXPECT_TRUE(l.a.answers_last_sent(on_wire(r.h)));
  NtpHeader blind = r.h;
  blind.origin = NtpTimestamp::from_raw(s.wire_transmit.raw() ^ 0x100);
  EXPECT_FALSE(l.a.answers_last_sent(on_wire(blind)));
  // Verified: ok.
  EXPECT_EQ(l.deliver(r), RxResult::kSample);
  EXPECT_TRUE(l.a.answered_ours());
  l.a.on_verified(true);
  EXPECT_EQ(l.a.auth_state(), AuthState::kOk);
  // Unverified packets that do not answer our packet are counted only: a
  // blind forger cannot make it failed.
  l.a.on_unauthenticated(AuthVerdict::kMissing, l.a.answers_last_sent(on_wire(blind)));
  l.a.on_unauthenticated(AuthVerdict::kBad, false);
  EXPECT_EQ(l.a.auth_state(), AuthState::kOk);
  // A verified replay is bogus: counted, but it does not make it ok.
  const Sent s2 = l.poll();
  const Link::Reply r2 = l.reply_to(s2);
  l.a.on_unauthenticated(AuthVerdict::kCryptoNak, l.a.answers_last_sent(on_wire(r2.h)));
  EXPECT_EQ(l.a.auth_state(), AuthState::kFailed);  // the peer could not verify ours
  EXPECT_EQ(l.deliver(r.h, r2.t4), RxResult::kDuplicate);  // the old answer again
  l.a.on_verified(true);
  EXPECT_EQ(l.a.auth_state(), AuthState::kFailed);
  const AssociationState st = l.a.state(l.now);
  EXPECT_EQ(st.key_id, 5u);
  EXPECT_EQ(st.auth, AuthState::kFailed);
  EXPECT_EQ(st.auth_ok, 2u);
  EXPECT_EQ(st.auth_missing, 1u);
  EXPECT_EQ(st.auth_bad, 1u);
  EXPECT_EQ(st.crypto_nak, 1u);

  // Verified again, then eight polls without a verified answer (a peer
  // whose secret changed drops our requests): failed.
  const Sent s3 = l.poll();
  ASSERT_EQ(l.deliver(l.reply_to(s3)), RxResult::kSample);
  l.a.on_verified(true);
  ASSERT_EQ(l.a.auth_state(), AuthState::kOk);
  for (int i = 0; i < 7; ++i) l.poll();
  EXPECT_NE(l.a.reach(), 0);
  EXPECT_EQ(l.a.auth_state(), AuthState::kOk);
  l.poll();
  EXPECT_EQ(l.a.reach(), 0);
  EXPECT_EQ(l.a.auth_state(), AuthState::kFailed);
}

TEST(AssociationOnWire, ZeroOriginIsBogus) {
  // Our nonce is never zero, so a zero origin answers nothing of ours.
  Link l({});
  Link::Reply r = l.reply_to(l.poll());
  r.h.origin = {};
  EXPECT_EQ(l.deliver(r), RxResult::kBogus);
  EXPECT_EQ(l.a.reach(), 0);
  EXPECT_FALSE(l.a.filter().has_estimate());
}

TEST(AssociationOnWire, ZeroReceiveOrTransmitGivesNoSample) {
  // Without T2 or T3 there is nothing to compute: no sample in the filter.
  for (const bool zero_receive : {true, false}) {
    SCOPED_TRACE(zero_receive ? "receive zero" : "transmit zero");
    Link l({});
    Link::Reply r = l.reply_to(l.poll());
    (zero_receive ? r.h.receive : r.h.transmit) = {};
    EXPECT_EQ(l.deliver(r), RxResult::kNoSample);
    EXPECT_FALSE(l.a.filter().has_estimate());
    EXPECT_EQ(l.a.filter().valid_stages(), 0);
  }
}

TEST(AssociationOnWire, ReplyBeforeTheTransmitReportWaitsForIt) {
  // Without our real transmit time there is no T1: the engine offers the
  // packet again after the report. Until then nothing changes.
  Link l({});
  const Sent s = l.poll(/*report=*/false);
  const Link::Reply r = l.reply_to(s);
  EXPECT_EQ(l.deliver(r), RxResult::kAwaitingTxTime);
  EXPECT_EQ(l.a.reach(), 0);
  EXPECT_FALSE(l.a.filter().has_estimate());
  // A report for another packet does not help.
  l.a.on_transmitted(s.pkt.cookie + 1, s.tx);
  EXPECT_EQ(l.deliver(r), RxResult::kAwaitingTxTime);
  l.a.on_transmitted(s.pkt.cookie, s.tx);
  EXPECT_EQ(l.deliver(r), RxResult::kSample);
  EXPECT_EQ(l.a.filter().offset_ns(), 3 * kMs - 100 * kUs);
  EXPECT_EQ(l.a.reach(), 1);
}

TEST(AssociationOnWire, SymmetricReplyBeforeTheTransmitReportWaitsForIt) {
  // In symmetric modes the origin is the dataplane's stamp, unknown until
  // the report.
  Link l({.mode = AssocMode::kSymmetricActive});
  const Sent s = l.poll(/*report=*/false);
  const Link::Reply r = l.reply_to(s);
  EXPECT_EQ(l.deliver(r), RxResult::kAwaitingTxTime);
  l.a.on_transmitted(s.pkt.cookie, s.tx);
  EXPECT_EQ(l.deliver(r), RxResult::kSample);
}

TEST(AssociationOnWire, AnswerToAPacketThatNeverLeftIsBogus) {
  Link l({});
  const Sent s = l.poll(/*report=*/false);
  l.a.on_transmit_failed(s.pkt.cookie);
  EXPECT_EQ(l.deliver(l.reply_to(s)), RxResult::kBogus);
  EXPECT_EQ(l.a.reach(), 0);
}

TEST(AssociationOnWire, ModeThatDoesNotFitIsRefused) {
  Link client({});
  Link::Reply r = client.reply_to(client.poll());
  r.h.mode = Mode::kSymmetricPassive;
  EXPECT_EQ(client.deliver(r), RxResult::kBadMode);
  EXPECT_EQ(client.a.reach(), 0);

  Link passive({.mode = AssocMode::kSymmetricPassive, .dynamic = true});
  NtpHeader h = r.h;
  h.origin = {};
  EXPECT_EQ(passive.deliver(h, kStart), RxResult::kBadMode);  // mode 2 to a passive one
  EXPECT_EQ(passive.a.reach(), 0);
}

TEST(AssociationOnWire, AnswerFromAnotherPortOrToAnotherPortIsBogus) {
  // RFC 9109: the answer comes from the server's port to our random one; a
  // packet that misses either is no answer and does not use up the nonce.
  Link l({});
  const Sent s = l.poll();
  const Link::Reply r = l.reply_to(s);
  EXPECT_EQ(l.deliver(r.h, r.t4, proto::kNtpPort, proto::kNtpPort), RxResult::kBadPort);
  EXPECT_EQ(l.deliver(r.h, r.t4, 1234, l.a.local_port()), RxResult::kBadPort);
  EXPECT_EQ(l.deliver(r.h, r.t4, proto::kNtpPort, static_cast<uint16_t>(l.a.local_port() ^ 1)), RxResult::kBadPort);
  EXPECT_EQ(l.a.reach(), 0);
  EXPECT_EQ(l.a.stratum(), 0);
  EXPECT_EQ(l.deliver(r), RxResult::kSample);

  // A peer configured on another port is answered from that port only.
  AssocConfig c = make_config({});
  c.port = 4123;
  Association b(c, 2, test::seed(), kStart);
  const auto p = b.on_timer(b.next_event_ns(), local_system());
  ASSERT_TRUE(p);
  EXPECT_EQ(p->dst_port, 4123);
  b.on_transmitted(p->cookie, b.next_event_ns());
  NtpHeader h = l.reply_to(s).h;
  h.origin = header_of(*p).transmit;
  EXPECT_EQ(b.on_packet(on_wire(h), {kStart + 1 * kS, proto::kNtpPort, b.local_port()}, local_system()),
            RxResult::kBadPort);
  EXPECT_NE(b.on_packet(on_wire(h), {kStart + 1 * kS, 4123, b.local_port()}, local_system()), RxResult::kBadPort);
}

// The first mode-1 packet of a peer that mobilised a passive association.
NtpHeader active_peer_packet(int8_t poll_log2, int64_t sent_ns) {
  NtpHeader h;
  h.leap = Leap::kNone;
  h.mode = Mode::kSymmetricActive;
  h.stratum = 2;
  h.poll_log2 = poll_log2;
  h.precision_log2 = kPrecisionLog2;
  h.refid = kServerRefid;
  h.transmit = proto::ntp_from_unix_ns(sent_ns);
  return h;
}

TEST(AssociationOnWire, SpoofedOriginZeroSymmetricPacketsChangeOnlyTheNextExchangesTimestamps) {
  // ntpd CVE-2016-4954/1548 style: packets from the peer's address with
  // origin zero (or any wrong origin), stratum 1, LI 2, another refid and
  // poll, between the real peer's packets. RFC 5905 A.5.1: they update the
  // peer's org/rec only; header, reach and poll stay the real peer's, and
  // the real peer's answers keep counting.
  Link l({.mode = AssocMode::kSymmetricActive, .minpoll = 4, .maxpoll = 4}, local_system(4));
  ASSERT_EQ(l.exchange(), RxResult::kSample);
  const uint8_t stratum = l.a.stratum();
  const uint32_t refid = l.a.peer_refid();
  const int64_t root_delay = l.a.peer_root_delay_ns();
  const int64_t root_dispersion = l.a.peer_root_dispersion_ns();
  int samples = 1;
  NtpTimestamp last_real;
  for (int round = 0; round < 20; ++round) {
    const Sent s = l.poll();
    NtpHeader spoof;
    spoof.leap = Leap::kDelete;
    spoof.mode = round % 2 ? Mode::kSymmetricPassive : Mode::kSymmetricActive;
    spoof.stratum = 1;
    spoof.poll_log2 = static_cast<int8_t>(round % 2 ? 17 : -4);
    spoof.root_delay = 0;
    spoof.root_dispersion = 0;
    spoof.refid = proto::refid_from_ascii("GPS\0");
    spoof.origin = round % 3 == 0 ? NtpTimestamp{} : NtpTimestamp::from_raw(0x1234567800000000ULL + round);
    spoof.transmit = proto::ntp_from_unix_ns(s.tx + 100 * kUs);
    // Before the real answer and after it (2 Hz at a 16 s poll: many).
    EXPECT_EQ(l.deliver(spoof, s.tx + 200 * kUs), RxResult::kBogus) << round;
    const Link::Reply r = l.reply_to(s);
    const RxResult got = l.deliver(r);
    EXPECT_TRUE(got == RxResult::kSample || got == RxResult::kFilteredOut) << round << " " << to_string(got);
    samples += got == RxResult::kSample;
    spoof.transmit = proto::ntp_from_unix_ns(r.t4 + 300 * kMs);
    last_real = r.h.transmit;
    const RxResult after = l.deliver(spoof, r.t4 + 400 * kMs);
    EXPECT_TRUE(after == RxResult::kBogus || after == RxResult::kNoSample) << round;  // nothing outstanding
    EXPECT_EQ(l.a.stratum(), stratum) << round;
    EXPECT_EQ(l.a.peer_refid(), refid) << round;
    EXPECT_EQ(l.a.peer_leap(), Leap::kNone) << round;
    EXPECT_EQ(l.a.peer_root_delay_ns(), root_delay) << round;
    EXPECT_EQ(l.a.peer_root_dispersion_ns(), root_dispersion) << round;
    EXPECT_EQ(l.a.state(l.now).peer_poll_log2, 4) << round;
    EXPECT_EQ(l.a.poll_log2(), 4) << round;
  }
  EXPECT_EQ(l.a.reach(), 0xFF);
  EXPECT_GT(samples, 10);
  EXPECT_TRUE(l.a.fit(l.now, l.sys));
  // Our next packet answers the real peer's last, not a forgery (which
  // would make it bogus at the real peer).
  EXPECT_EQ(l.poll().h.origin, last_real);
}

TEST(AssociationOnWire, APeerPollingFasterThanUsIsAnsweredAtItsLatestPacket) {
  // chronyd or ntpd as a peer at poll 0 while we poll at 4: between two of
  // our packets it sends several, each echoing our last transmit. Ours must
  // answer its latest (they check our origin against their last transmit),
  // and the extra ones give no sample and change nothing else.
  Link l({.mode = AssocMode::kSymmetricActive, .minpoll = 4, .maxpoll = 4}, local_system(4));
  ASSERT_EQ(l.exchange(), RxResult::kSample);
  const Sent s = l.poll();
  const Link::Reply r = l.reply_to(s);
  ASSERT_TRUE(l.deliver(r) == RxResult::kSample || l.a.reach() != 0);
  const uint8_t stratum = l.a.stratum();
  NtpHeader later = r.h;
  NtpTimestamp latest;
  for (int i = 1; i <= 3; ++i) {
    later.transmit = proto::ntp_from_unix_ns(r.t4 + i * kS);
    later.leap = Leap::kDelete;  // a header change a repeat must not bring in
    EXPECT_EQ(l.deliver(later, r.t4 + i * kS + 100 * kUs), RxResult::kNoSample) << i;
    latest = later.transmit;
  }
  EXPECT_EQ(l.a.stratum(), stratum);
  EXPECT_EQ(l.a.peer_leap(), Leap::kNone);
  const Sent next = l.poll();
  EXPECT_EQ(next.h.origin, latest);
  EXPECT_EQ(next.h.receive, proto::ntp_from_unix_ns(r.t4 + 3 * kS + 100 * kUs));
  // Its answer to that counts; then a packet echoing our older transmit is
  // no longer the peer's latest answer to us: bogus.
  EXPECT_EQ(l.deliver(l.reply_to(next)), RxResult::kSample);
  later.transmit = proto::ntp_from_unix_ns(r.t4 + 10 * kS);
  EXPECT_EQ(l.deliver(later, r.t4 + 10 * kS), RxResult::kBogus);
}

TEST(AssociationOnWire, WithoutAValidPacketSinceOursTheNextAnswersTheLastOneReceived) {
  // How a symmetric exchange restarts (chrony's init timestamps): a lost
  // or crossed packet, or a peer that restarted and sends origin zero.
  Link l({.mode = AssocMode::kSymmetricActive, .minpoll = 4, .maxpoll = 4}, local_system(4));
  ASSERT_EQ(l.exchange(), RxResult::kSample);
  const Sent s = l.poll();
  // The peer restarted: its packet does not answer ours.
  NtpHeader restarted = active_peer_packet(4, s.tx + 5 * kS);
  EXPECT_EQ(l.deliver(restarted, s.tx + 5 * kS), RxResult::kBogus);
  const Sent next = l.poll();
  EXPECT_EQ(next.h.origin, restarted.transmit);
  EXPECT_EQ(next.h.receive, proto::ntp_from_unix_ns(s.tx + 5 * kS));
  // Its answer to that one counts.
  EXPECT_EQ(l.deliver(l.reply_to(next)), RxResult::kSample);
  EXPECT_EQ(l.a.stratum(), 2);
}

TEST(AssociationOnWire, SymmetricPacketWithoutTransmitTimestampIsIgnored) {
  Link l({.mode = AssocMode::kSymmetricActive});
  ASSERT_EQ(l.exchange(), RxResult::kSample);
  const Sent s = l.poll();
  NtpHeader h = l.reply_to(s).h;
  h.transmit = {};
  EXPECT_EQ(l.deliver(h, s.tx + 1 * kMs), RxResult::kBogus);
  // Our org is untouched: the next packet still answers the peer's last.
  const Link::Reply r = l.reply_to(s);
  EXPECT_EQ(l.deliver(r), RxResult::kSample);
}

// ------------------------------------------------------------ unsynchronized peers, kiss codes

TEST(AssociationPeerState, UnsynchronizedPeerGivesNoSample) {
  // Leap 3, stratum 16 or stratum 0 with a code that is not a kiss of
  // death (INIT): a valid answer, but no time from it.
  struct Case {
    const char* name;
    Leap leap;
    uint8_t stratum;
    uint32_t refid;
  };
  const Case cases[] = {
      {"leap 3", Leap::kUnsynchronized, 2, kServerRefid},
      {"stratum 16", Leap::kNone, 16, kServerRefid},
      {"stratum 0 INIT", Leap::kUnsynchronized, 0, proto::kKissInit},
      {"stratum 0 STEP", Leap::kNone, 0, proto::kKissStep},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Link l({});
    Link::Reply r = l.reply_to(l.poll());
    r.h.leap = c.leap;
    r.h.stratum = c.stratum;
    r.h.refid = c.refid;
    EXPECT_EQ(l.deliver(r), RxResult::kUnsynchronized);
    EXPECT_FALSE(l.a.filter().has_estimate());
    EXPECT_EQ(l.a.filter().valid_stages(), 0);
    EXPECT_EQ(l.a.poll_log2(), 6);
  }
}

Link::Reply kiss(const Link& l, const Sent& s, uint32_t code) {
  Link::Reply r = l.reply_to(s);
  r.h.leap = Leap::kUnsynchronized;
  r.h.stratum = proto::kStratumUnspecified;
  r.h.refid = code;
  return r;
}

TEST(AssociationKiss, RateRaisesThePollUpToMaxpoll) {
  // RFC 5905 section 7.4: RATE means poll less often. As ntpd: our minpoll
  // goes up (at least a step, or to the kiss's poll), up to maxpoll, and
  // the system poll cannot pull it back down.
  Link l({.minpoll = 6, .maxpoll = 9}, local_system(6));
  EXPECT_EQ(l.deliver(kiss(l, l.poll(), proto::kKissRate)), RxResult::kKissOfDeath);
  EXPECT_EQ(l.a.poll_log2(), 7);
  EXPECT_EQ(l.a.reach(), 0);  // a kiss is no answer
  EXPECT_FALSE(l.a.filter().has_estimate());
  EXPECT_EQ(l.a.kiss_code(), proto::kKissRate);
  EXPECT_EQ(l.a.state(l.now).kiss_code, proto::kKissRate);
  EXPECT_EQ(l.a.peer_refid(), 0u);  // the kiss's header is not the peer's
  EXPECT_FALSE(l.a.stopped());
  Sent s = l.poll();
  EXPECT_EQ(s.h.poll_log2, 7);
  Link::Reply k = kiss(l, s, proto::kKissRate);
  k.h.poll_log2 = 9;  // the server asks for 2^9 s
  EXPECT_EQ(l.deliver(k), RxResult::kKissOfDeath);
  EXPECT_EQ(l.a.poll_log2(), 9);
  EXPECT_EQ(l.deliver(kiss(l, l.poll(), proto::kKissRate)), RxResult::kKissOfDeath);
  EXPECT_EQ(l.a.poll_log2(), 9);  // not past maxpoll
  // Answered again, the system poll (2^6) does not bring it below 2^9.
  ASSERT_EQ(l.exchange(), RxResult::kSample);
  s = l.poll();
  EXPECT_EQ(s.h.poll_log2, 9);
  EXPECT_GT(l.a.next_event_ns() - s.at, seconds(9) - seconds(9) / 32);
}

TEST(AssociationKiss, RateEndsABurst) {
  Link l({.minpoll = 6, .maxpoll = 10, .iburst = true});
  const Sent first = l.poll();
  ASSERT_EQ(l.deliver(l.reply_to(first)), RxResult::kSample);
  const Sent second = l.poll();
  EXPECT_EQ(second.at - first.at, 2 * kS);  // in the burst
  EXPECT_EQ(l.deliver(kiss(l, second, proto::kKissRate)), RxResult::kKissOfDeath);
  // No more burst packets: the next one is a whole (raised) interval after
  // the last one we sent.
  EXPECT_GE(l.a.next_event_ns() - second.at, seconds(7) - seconds(7) / 32);
}

TEST(AssociationKiss, DenyAndRstrStopTheAssociation) {
  // "the client MUST demobilize any associations to that server and stop
  // sending packets to that server" (RFC 5905 section 7.4).
  for (const uint32_t code : {proto::kKissDeny, proto::kKissRstr}) {
    SCOPED_TRACE(proto::refid_to_string(code, 0));
    Link l({});
    ASSERT_EQ(l.exchange(), RxResult::kSample);
    ASSERT_TRUE(l.a.reachable());
    const Sent s = l.poll();
    const Link::Reply r = kiss(l, s, code);
    EXPECT_EQ(l.deliver(r), RxResult::kKissOfDeath);
    EXPECT_TRUE(l.a.stopped());
    EXPECT_EQ(l.a.kiss_code(), code);
    EXPECT_FALSE(l.a.reachable());
    EXPECT_FALSE(l.a.filter().has_estimate());
    EXPECT_FALSE(l.a.fit(l.now, l.sys));
    // Nothing more goes out, ever, and nothing more comes in.
    EXPECT_EQ(l.a.next_event_ns(), INT64_MAX);
    EXPECT_FALSE(l.a.on_timer(l.now + 100000 * kS, l.sys));
    Link::Reply late = l.reply_to(s);
    late.h.transmit = proto::ntp_from_unix_ns(late.t3 + 1 * kMs);
    EXPECT_EQ(l.deliver(late.h, late.t4 + 1 * kMs), RxResult::kStopped);
    const AssociationState st = l.a.state(l.now);
    EXPECT_TRUE(st.stopped);
    EXPECT_EQ(st.kiss_code, code);
    EXPECT_EQ(st.reach, 0);
    // A configured association stays (in status); a dynamic one would go.
    EXPECT_FALSE(l.a.expired(l.now + 100000 * kS));
  }
}

TEST(AssociationKiss, KissThatAnswersNothingOfOursIsBogus) {
  // Section 7.4 kisses only count from a packet that passed the origin
  // check, so a third party cannot silence or slow us.
  for (const uint32_t code : {proto::kKissRate, proto::kKissDeny, proto::kKissRstr}) {
    Link l({});
    Link::Reply r = kiss(l, l.poll(), code);
    r.h.origin = proto::ntp_from_unix_ns(kStart);
    EXPECT_EQ(l.deliver(r), RxResult::kBogus);
    EXPECT_EQ(l.a.poll_log2(), 6);
    EXPECT_EQ(l.a.kiss_code(), 0u);
    EXPECT_FALSE(l.a.stopped());
  }
}

// ------------------------------------------------------------ reach register, poll process

TEST(AssociationPoll, NothingIsSentBeforeItIsDue) {
  // The first poll comes within a quarter of min(2^minpoll, 1 s) of the
  // start, spread so many associations do not start in step.
  std::vector<int64_t> first;
  for (uint64_t i = 0; i < 64; ++i) {
    const Association b(make_config({}), 1, test::seed() + i, kStart);
    EXPECT_GE(b.next_event_ns(), kStart);
    EXPECT_LE(b.next_event_ns(), kStart + 250 * kMs);
    first.push_back(b.next_event_ns());
  }
  EXPECT_GT(*std::max_element(first.begin(), first.end()) - *std::min_element(first.begin(), first.end()), 50 * kMs);
  const Association fast(make_config({.minpoll = -2, .maxpoll = 4}), 1, test::seed(), kStart);
  EXPECT_LE(fast.next_event_ns(), kStart + seconds(-2) / 4);

  Association a(make_config({}), 1, test::seed(), kStart);
  if (a.next_event_ns() > kStart) {
    EXPECT_FALSE(a.on_timer(a.next_event_ns() - 1, local_system()));
  }
  EXPECT_TRUE(a.on_timer(a.next_event_ns(), local_system()));
  const int64_t next = a.next_event_ns();
  EXPECT_FALSE(a.on_timer(next - 1, local_system()));
}

TEST(AssociationPoll, ReachRegisterShiftsPerPollAndAnswersSetBitZero) {
  Link l({});
  EXPECT_EQ(l.a.reach(), 0);
  l.poll();
  EXPECT_EQ(l.a.reach(), 0);
  ASSERT_EQ(l.deliver(l.reply_to(l.poll())), RxResult::kSample);
  EXPECT_EQ(l.a.reach(), 0b1);
  l.poll();  // unanswered
  EXPECT_EQ(l.a.reach(), 0b10);
  const Sent s = l.poll();
  EXPECT_EQ(l.a.reach(), 0b100);
  l.deliver(l.reply_to(s));
  EXPECT_EQ(l.a.reach(), 0b101);
  for (int i = 0; i < 5; ++i) l.exchange();
  EXPECT_EQ(l.a.reach(), 0xBF);
  l.exchange();
  EXPECT_EQ(l.a.reach(), 0x7F);
  l.exchange();
  EXPECT_EQ(l.a.reach(), 0xFF);

  // Eight unanswered polls clear it; seven do not.
  for (int i = 1; i <= 7; ++i) {
    l.poll();
    EXPECT_EQ(l.a.reach(), static_cast<uint8_t>(0xFF << i)) << i;
    EXPECT_TRUE(l.a.reachable()) << i;
  }
  l.poll();
  EXPECT_EQ(l.a.reach(), 0);
  EXPECT_FALSE(l.a.reachable());
}

TEST(AssociationPoll, ThreeUnansweredPollsShiftADummyIntoTheFilter) {
  // RFC 5905 section 10: "If the three low-order bits of the reach
  // register are zero ... the poll process calls the clock filter
  // algorithm with a dummy tuple".
  Link l({});
  ASSERT_EQ(l.exchange(), RxResult::kSample);
  l.poll();  // reach 0b10
  l.poll();  // 0b100
  EXPECT_TRUE(l.a.filter().stages()[0].valid);
  l.poll();  // 0b1000: the low three bits are zero
  const FilterStage newest = l.a.filter().stages()[0];
  EXPECT_FALSE(newest.valid);
  EXPECT_EQ(newest.dispersion_ns, kMaxDispersionNs);
  EXPECT_EQ(newest.time_ns, l.now);
  l.poll();
  EXPECT_FALSE(l.a.filter().stages()[1].valid);
  EXPECT_EQ(l.a.filter().valid_stages(), 1);  // the one sample is still there
}

TEST(AssociationPoll, UnreachableBacksOffTowardsMaxpoll) {
  // As the code implements A.5.7: eight unanswered polls at minpoll, then
  // each further one doubles the interval, up to maxpoll. An answer brings
  // the poll back to the system poll at the next poll.
  Link l({.minpoll = 4, .maxpoll = 8}, local_system(4));
  std::vector<int> expected;  // poll exponent in force after poll k
  for (int k = 1; k <= 8; ++k) expected.push_back(4);
  for (int h = 5; h <= 8; ++h) expected.push_back(h);
  for (int k = 0; k < 3; ++k) expected.push_back(8);
  for (size_t k = 0; k < expected.size(); ++k) {
    const Sent s = l.poll();
    EXPECT_EQ(l.a.reach(), 0);
    ASSERT_EQ(l.a.poll_log2(), expected[k]) << "poll " << k + 1;
    EXPECT_EQ(s.h.poll_log2, expected[k]) << "poll " << k + 1;  // what we tell the server
    // The next poll comes one interval later, less up to 1/32 of jitter.
    const int64_t interval = l.a.next_event_ns() - s.at;
    const int64_t full = seconds(expected[k]);
    EXPECT_LE(interval, full) << "poll " << k + 1;
    EXPECT_GT(interval, full - full / 32) << "poll " << k + 1;
  }
  // Back: the answered poll keeps 2^8 until the next poll resets it.
  ASSERT_EQ(l.exchange(), RxResult::kSample);
  EXPECT_EQ(l.a.poll_log2(), 8);
  const Sent s = l.poll();
  EXPECT_EQ(l.a.poll_log2(), 4);
  EXPECT_LE(l.a.next_event_ns() - s.at, seconds(4));
}

TEST(AssociationPoll, ReachablePollFollowsTheSystemPollWithinMinAndMax) {
  Link l({.minpoll = 6, .maxpoll = 10});
  ASSERT_EQ(l.exchange(), RxResult::kSample);
  const std::pair<int8_t, int> cases[] = {{8, 8}, {12, 10}, {3, 6}, {10, 10}, {6, 6}};
  for (const auto& [system, expected] : cases) {
    l.sys.poll_log2 = system;
    const Sent s = l.poll();
    l.deliver(l.reply_to(s));
    EXPECT_EQ(l.a.poll_log2(), expected) << "system poll " << int{system};
    EXPECT_EQ(s.h.poll_log2, expected);
    EXPECT_LE(l.a.next_event_ns() - s.at, seconds(expected));
    EXPECT_GT(l.a.next_event_ns() - s.at, seconds(expected) - seconds(expected) / 32);
  }
}

TEST(AssociationPoll, IburstSendsEightPacketsTwoSecondsApartAtTheStart) {
  // RFC 5905 BCOUNT 8, BTIME 2 s. The burst is one poll: the reach
  // register shifts once, whether or not the packets are answered.
  Link l({.minpoll = 6, .iburst = true});
  std::vector<int64_t> sent;
  for (int i = 0; i < 8; ++i) {
    const Sent s = l.poll();
    sent.push_back(s.at);
    EXPECT_EQ(l.deliver(l.reply_to(s)), RxResult::kSample) << i;
  }
  EXPECT_LE(sent[0], kStart + 250 * kMs);
  for (size_t i = 1; i < sent.size(); ++i) EXPECT_EQ(sent[i] - sent[i - 1], 2 * kS) << i;
  EXPECT_EQ(l.a.reach(), 1);
  EXPECT_EQ(l.a.filter().valid_stages(), 8);
  // Then the ordinary poll interval, and no new burst while reachable.
  EXPECT_GT(l.a.next_event_ns() - sent.back(), seconds(6) - seconds(6) / 32);
  EXPECT_LE(l.a.next_event_ns() - sent.back(), seconds(6));
  const Sent ninth = l.poll();
  EXPECT_EQ(l.a.reach(), 0b10);
  EXPECT_GT(l.a.next_event_ns() - ninth.at, seconds(6) - seconds(6) / 32);
}

TEST(AssociationPoll, WithoutIburstTheStartIsOnePacket) {
  Link l({.minpoll = 6});
  const Sent s = l.poll();
  EXPECT_EQ(l.deliver(l.reply_to(s)), RxResult::kSample);
  EXPECT_GT(l.a.next_event_ns() - s.at, seconds(6) - seconds(6) / 32);
}

TEST(AssociationPoll, BurstSendsEightPacketsAtEachPollWhileReachable) {
  // `burst`: only while the server answers; an unreachable one gets single
  // packets.
  Link l({.minpoll = 6, .burst = true});
  const Sent first = l.poll(/*report=*/true);
  EXPECT_GT(l.a.next_event_ns() - first.at, seconds(6) - seconds(6) / 32);  // unreachable: no burst
  l.deliver(l.reply_to(first));
  ASSERT_TRUE(l.a.reachable());
  for (int round = 0; round < 2; ++round) {
    std::vector<int64_t> sent;
    for (int i = 0; i < 8; ++i) {
      const Sent s = l.poll();
      sent.push_back(s.at);
      l.deliver(l.reply_to(s));
    }
    for (size_t i = 1; i < sent.size(); ++i) EXPECT_EQ(sent[i] - sent[i - 1], 2 * kS) << round << " " << i;
    EXPECT_GT(l.a.next_event_ns() - sent.back(), seconds(6) - seconds(6) / 32) << round;
  }
  EXPECT_EQ(l.a.reach(), 0b111);  // the first poll and two bursts: three polls, all answered
}

// ------------------------------------------------------------ dynamic passive associations

TEST(AssociationPassive, AnswersAtOnceInMode2AtThePeersPollWithinItsRange) {
  // The passive range (ntp.passive_minpoll_log2..passive_maxpoll_log2) is
  // the dynamic association's minpoll..maxpoll.
  Link l({.mode = AssocMode::kSymmetricPassive, .minpoll = 3, .maxpoll = 7, .dynamic = true});
  const int64_t rx = kStart - 1 * kMs;
  const NtpHeader h = active_peer_packet(5, rx - 300 * kUs);
  l.a.start_passive(h.poll_log2);
  // The creating packet (origin zero) is not verified: its timestamps only.
  EXPECT_EQ(l.deliver(h, rx), RxResult::kNoSample);
  EXPECT_EQ(l.a.reach(), 0);
  EXPECT_EQ(l.a.poll_log2(), 5);
  EXPECT_EQ(l.a.next_event_ns(), kStart);
  const Sent s = l.poll();
  EXPECT_EQ(s.at, kStart);
  EXPECT_EQ(s.h.mode, Mode::kSymmetricPassive);
  EXPECT_TRUE(s.pkt.stamp_transmit);
  EXPECT_EQ(s.pkt.src_port, proto::kNtpPort);
  EXPECT_EQ(s.h.origin, h.transmit);
  EXPECT_EQ(s.h.receive, proto::ntp_from_unix_ns(rx));
  EXPECT_EQ(s.h.poll_log2, 5);
  EXPECT_LE(l.a.next_event_ns() - s.at, seconds(5));

  // Its verified packets move the poll, within the range: a peer asking
  // for 2^17 s gets 2^7, one asking for 2^-4 s gets 2^3.
  Sent last = s;
  for (const auto& [asked, got] : {std::pair{7, 7}, std::pair{17, 7}, std::pair{-4, 3}, std::pair{4, 4}}) {
    const Link::Reply r = l.reply_to(last);
    NtpHeader p = active_peer_packet(static_cast<int8_t>(asked), r.t3);
    p.origin = last.wire_transmit;
    p.receive = r.h.receive;
    EXPECT_EQ(l.deliver(p, r.t4), RxResult::kSample) << asked;
    EXPECT_EQ(l.a.poll_log2(), got) << asked;
    EXPECT_LE(l.a.next_event_ns() - r.t4, seconds(got)) << asked;
    last = l.poll();
    EXPECT_EQ(last.h.poll_log2, got) << asked;
  }
  // An unverified one (origin zero again) does not.
  const int64_t rx2 = l.now + 1 * kS;
  EXPECT_EQ(l.deliver(active_peer_packet(-4, rx2 - 300 * kUs), rx2), RxResult::kBogus);  // ours is outstanding
  EXPECT_EQ(l.a.poll_log2(), 4);
}

TEST(AssociationPassive, NewLimitsClampThePollAndReArmTheNextPacket) {
  // A reload's passive range holds from our last packet on: the packet
  // armed at the old poll moves (sooner or later), not only the one after.
  Link l({.mode = AssocMode::kSymmetricPassive, .minpoll = 3, .maxpoll = 8, .dynamic = true});
  l.a.start_passive(8);
  ASSERT_EQ(l.deliver(active_peer_packet(8, kStart - 300 * kUs), kStart - 1 * kMs), RxResult::kNoSample);
  const Sent s = l.poll();
  ASSERT_EQ(l.a.poll_log2(), 8);
  ASSERT_GT(l.a.next_event_ns() - s.at, seconds(7));
  l.a.set_passive_limits(3, 5, 900 * kS);
  EXPECT_EQ(l.a.poll_log2(), 5);
  EXPECT_EQ(l.a.next_event_ns(), s.at + seconds(5));
  l.a.set_passive_limits(9, 10, 900 * kS);
  EXPECT_EQ(l.a.poll_log2(), 9);
  EXPECT_EQ(l.a.next_event_ns(), s.at + seconds(9));
  // The same limits again (a reload that kept them): the schedule stays.
  const Sent s2 = l.poll();  // armed from it with the poll's jitter
  const int64_t armed = l.a.next_event_ns();
  ASSERT_LT(armed, s2.at + seconds(9));
  l.a.set_passive_limits(9, 10, 900 * kS);
  EXPECT_EQ(l.a.next_event_ns(), armed);
  // Before its first packet it still answers at once.
  Link fresh({.mode = AssocMode::kSymmetricPassive, .minpoll = 3, .maxpoll = 8, .dynamic = true});
  fresh.a.start_passive(8);
  const int64_t due = fresh.a.next_event_ns();
  fresh.a.set_passive_limits(3, 5, 900 * kS);
  EXPECT_EQ(fresh.a.next_event_ns(), due);
}

TEST(AssociationPassive, ExpiresItsTimeoutAfterTheLastValidPacket) {
  // expired(): dynamic and no valid packet (or the creation) for
  // timeout_ns, in our seconds whatever the peer's poll; packets that do
  // not pass the origin test do not keep it alive.
  constexpr int64_t kTimeout = 100 * kS;
  AssocConfig c = make_config({.mode = AssocMode::kSymmetricPassive, .minpoll = 3, .maxpoll = 3, .dynamic = true});
  c.timeout_ns = kTimeout;
  Link l({});
  l.a = Association(c, 1, test::seed(), kStart);
  ASSERT_EQ(l.deliver(active_peer_packet(17, kStart - 300 * kUs), kStart), RxResult::kNoSample);
  EXPECT_FALSE(l.a.expired(kStart + kTimeout));
  // Answered (a valid exchange) at kStart + 10 s: the clock starts there.
  const Sent s = l.poll();
  const Link::Reply r = l.reply_to(s);
  NtpHeader p = active_peer_packet(17, r.t3);
  p.origin = s.wire_transmit;
  p.receive = r.h.receive;
  ASSERT_EQ(l.deliver(p, kStart + 10 * kS), RxResult::kSample);
  // Forged packets from its address after that do not extend it.
  for (int64_t t = kStart + 20 * kS; t < kStart + 10 * kS + kTimeout; t += 5 * kS)
    l.deliver(active_peer_packet(17, t - 1 * kMs), t);
  EXPECT_FALSE(l.a.expired(kStart + 10 * kS + kTimeout));
  EXPECT_TRUE(l.a.expired(kStart + 10 * kS + kTimeout + 1));
}

TEST(AssociationPassive, NeverHeardFromExpiresItsTimeoutAfterCreation) {
  AssocConfig c = make_config({.mode = AssocMode::kSymmetricPassive, .minpoll = 3, .maxpoll = 3, .dynamic = true});
  c.timeout_ns = 16 * kS;
  Association a(c, 1, test::seed(), kStart);
  EXPECT_FALSE(a.expired(kStart + 16 * kS));
  EXPECT_TRUE(a.expired(kStart + 16 * kS + 1));
}

TEST(AssociationPassive, ADynamicAssociationToldToStopGoes) {
  AssocConfig c = make_config({.mode = AssocMode::kSymmetricActive, .dynamic = true});
  c.timeout_ns = 1000 * kS;
  Link l({});
  l.a = Association(c, 1, test::seed(), kStart);
  EXPECT_EQ(l.deliver(kiss(l, l.poll(), proto::kKissDeny)), RxResult::kKissOfDeath);
  EXPECT_TRUE(l.a.expired(l.now));
}

TEST(AssociationPassive, ConfiguredAssociationsNeverExpire) {
  for (const AssocMode mode : {AssocMode::kClient, AssocMode::kSymmetricActive}) {
    Link l({.mode = mode, .minpoll = 4, .maxpoll = 4});
    for (int i = 0; i < 12; ++i) l.poll();
    EXPECT_EQ(l.a.reach(), 0);
    EXPECT_FALSE(l.a.expired(l.now + 1000 * seconds(4)));
  }
}

// ------------------------------------------------------------ authentication and replays

// A valid MAC says who made a packet, not when: only a verified packet past
// the origin test (RFC 5905 section 8) shows the peer has the key now.
TEST(AssociationAuth, AVerifiedReplayThatAnswersNothingOfOursLeavesItFailed) {
  Link l({.mode = AssocMode::kSymmetricActive, .minpoll = 4, .maxpoll = 4, .key_id = 1}, local_system(4));
  // The peer's packets as an on-path recorder captured them (all verify):
  // its origin-zero mode-1 packet that starts an exchange, and an answer.
  const int64_t t0 = kStart - 5 * kS;
  const NtpHeader opening = active_peer_packet(4, t0);
  ASSERT_EQ(l.deliver(opening, t0 + 300 * kUs), RxResult::kNoSample);
  l.a.on_verified(true);
  EXPECT_FALSE(l.a.answered_ours());
  EXPECT_EQ(l.a.auth_state(), AuthState::kPending);  // it answers nothing of ours
  const Link::Reply answer = l.reply_to(l.poll());
  ASSERT_EQ(l.deliver(answer), RxResult::kSample);
  l.a.on_verified(true);
  ASSERT_EQ(l.a.auth_state(), AuthState::kOk);
  // The peer's secret changed: it crypto-NAKs our next packet.
  const Sent s = l.poll();
  l.a.on_unauthenticated(AuthVerdict::kCryptoNak, l.a.answers_last_sent(on_wire(l.reply_to(s).h)));
  ASSERT_EQ(l.a.auth_state(), AuthState::kFailed);
  // Replayed: the captured answer (a duplicate of the last valid packet)...
  EXPECT_EQ(l.deliver(answer.h, s.tx + 1 * kMs), RxResult::kDuplicate);
  l.a.on_verified(true);
  EXPECT_EQ(l.a.auth_state(), AuthState::kFailed);
  // ... the opening packet while ours waits for an answer (bogus), and
  // again once nothing of ours is outstanding (a packet that never left):
  // a valid start of an exchange, but not a proof.
  EXPECT_EQ(l.deliver(opening, s.tx + 2 * kMs), RxResult::kBogus);
  l.a.on_verified(true);
  EXPECT_EQ(l.a.auth_state(), AuthState::kFailed);
  const Sent lost = l.poll(/*report=*/false);
  l.a.on_transmit_failed(lost.pkt.cookie);
  NtpHeader reopening = opening;
  reopening.transmit = proto::ntp_from_unix_ns(t0 - 1 * kS);  // an older capture: no duplicate either
  EXPECT_EQ(l.deliver(reopening, lost.at + 1 * kMs), RxResult::kNoSample);
  l.a.on_verified(true);
  EXPECT_FALSE(l.a.answered_ours());
  EXPECT_EQ(l.a.auth_state(), AuthState::kFailed);
  EXPECT_EQ(l.a.state(l.now).auth_ok, 5u);  // each counted as verified
  // The peer's verified answer to our packet makes it ok again.
  ASSERT_EQ(l.deliver(l.reply_to(l.poll())), RxResult::kSample);
  l.a.on_verified(true);
  EXPECT_EQ(l.a.auth_state(), AuthState::kOk);
}

TEST(AssociationAuth, EveryVerifiedAnswerToOursMakesItOkEvenWithoutASample) {
  // The peer has the key and answered our packet: ok, whether or not the
  // answer carries time (the peer's synchronization is fit()'s business).
  struct Case {
    const char* name;
    Leap leap;
    uint8_t stratum;
    uint32_t refid;
    bool zero_receive;
    RxResult result;
  };
  const Case cases[] = {
      {"unsynchronized", Leap::kUnsynchronized, 16, kServerRefid, false, RxResult::kUnsynchronized},
      {"RATE", Leap::kUnsynchronized, 0, proto::kKissRate, false, RxResult::kKissOfDeath},
      {"no receive timestamp", Leap::kNone, 2, kServerRefid, true, RxResult::kNoSample},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Link l({.key_id = 1});
    Link::Reply r = l.reply_to(l.poll());
    r.h.leap = c.leap;
    r.h.stratum = c.stratum;
    r.h.refid = c.refid;
    if (c.zero_receive) r.h.receive = {};
    EXPECT_EQ(l.deliver(r), c.result);
    EXPECT_TRUE(l.a.answered_ours());
    l.a.on_verified(true);
    EXPECT_EQ(l.a.auth_state(), AuthState::kOk);
  }
}

TEST(AssociationAuth, PendingUntilEightPacketsWentUnansweredThenFailed) {
  for (const AssocMode mode : {AssocMode::kClient, AssocMode::kSymmetricActive}) {
    SCOPED_TRACE(static_cast<int>(mode));
    Link l({.mode = mode, .minpoll = 4, .maxpoll = 4, .key_id = 1}, local_system(4));
    EXPECT_EQ(l.a.state(l.now).auth, AuthState::kPending);
    for (int i = 0; i < 8; ++i) {
      l.poll();
      EXPECT_EQ(l.a.auth_state(), AuthState::kPending) << i;
    }
    l.poll();  // eight sent, none answered
    EXPECT_EQ(l.a.auth_state(), AuthState::kFailed);
    EXPECT_EQ(l.a.state(l.now).auth, AuthState::kFailed);
    // Without a key there is nothing to be pending for.
    Link plain({.mode = mode});
    EXPECT_EQ(plain.a.auth_state(), AuthState::kNone);
    for (int i = 0; i < 10; ++i) plain.poll();
    EXPECT_EQ(plain.a.auth_state(), AuthState::kNone);
  }
  // With iburst: the eight packets of the first burst (2 s apart) decide.
  Link burst({.minpoll = 6, .maxpoll = 6, .iburst = true, .key_id = 1});
  for (int i = 0; i < 8; ++i) burst.poll();
  EXPECT_EQ(burst.a.auth_state(), AuthState::kPending);
  EXPECT_LT(burst.now - kStart, 16 * kS);
  burst.poll();
  EXPECT_EQ(burst.a.auth_state(), AuthState::kFailed);
  // Answered while pending: ok; its first answer not verified: failed at once.
  Link ok({.key_id = 1});
  for (int i = 0; i < 3; ++i) ok.poll();
  ASSERT_EQ(ok.a.auth_state(), AuthState::kPending);
  ASSERT_EQ(ok.exchange(), RxResult::kSample);
  ok.a.on_verified(true);
  EXPECT_EQ(ok.a.auth_state(), AuthState::kOk);
  Link bad({.key_id = 1});
  const Sent s = bad.poll();
  bad.a.on_unauthenticated(AuthVerdict::kBad, bad.a.answers_last_sent(on_wire(bad.reply_to(s).h)));
  EXPECT_EQ(bad.a.auth_state(), AuthState::kFailed);
}

TEST(AssociationAuth, APassiveOneFromAVerifiedMode1IsPendingUntilItsOwnPacketIsAnswered) {
  // The creating packet may be a recorded one replayed: it proves nothing.
  Link l({.mode = AssocMode::kSymmetricPassive, .minpoll = 3, .maxpoll = 7, .dynamic = true, .key_id = 2});
  const int64_t rx = kStart - 1 * kMs;
  const NtpHeader h = active_peer_packet(5, rx - 300 * kUs);
  l.a.start_passive(h.poll_log2);
  ASSERT_EQ(l.deliver(h, rx), RxResult::kNoSample);
  l.a.on_verified(true);
  EXPECT_EQ(l.a.auth_state(), AuthState::kPending);
  const Sent s = l.poll();
  EXPECT_EQ(l.a.auth_state(), AuthState::kPending);
  const Link::Reply r = l.reply_to(s);
  NtpHeader p = active_peer_packet(5, r.t3);
  p.origin = s.wire_transmit;
  p.receive = r.h.receive;
  ASSERT_EQ(l.deliver(p, r.t4), RxResult::kSample);
  l.a.on_verified(true);
  EXPECT_EQ(l.a.auth_state(), AuthState::kOk);
}

}  // namespace
}  // namespace ntp::ctl
