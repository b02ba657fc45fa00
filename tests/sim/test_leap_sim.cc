// Simulation: leap seconds through the dataplane's timestamping. A 2.5 GHz
// timebase running 12.345 ppm fast, a clock model published with a leap at
// the end of 2016-12-31 (the real insertion, and a hypothetical deletion),
// stepped or smeared; requests received, answered by the real responder
// (reply_params() per burst, respond() per request) and stamped at raw ticks
// converted by model_to_ns, as the worker does. Checked byte for byte at
// chosen moments (before, in both passes of the repeated second, after; a
// NIC timestamp taken before the leap in a burst that began after it), and
// over a seeded sweep of thousands of exchanges: LI set exactly for
// receive times before the leap, no time of the repeated second with LI 0,
// no 23:59:59 served at a deletion, the smear monotonic and continuous and
// exactly 1 s off the linear time after its window.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>

#include "dataplane/responder.h"
#include "hwclock/clock_model.h"
#include "hwclock/leap.h"
#include "proto/channel_abi.h"
#include "proto/ntp_packet.h"
#include "tests/support/golden/requests.h"
#include "tests/support/test_seed.h"

namespace ntp {
namespace {

using proto::NtpTimestamp;
using Reply = std::array<uint8_t, 48>;

constexpr int64_t kS = 1000000000LL;
constexpr int64_t kMs = 1000000LL;
constexpr int64_t kUs = 1000LL;
constexpr int64_t kLeapNs = 1483228800LL * kS;  // 2017-01-01T00:00:00Z, NTP 0xDC12C500
constexpr uint64_t kHz = 2500000000ULL;
constexpr double kNsPerTick = 0.4 * (1.0 + 12.345e-6);
constexpr uint64_t kRaw0 = 0x00F0000000000000ULL;  // a TSC that has run for a while

// Everything but LI and the receive/transmit timestamps of a reply to
// chrony's captured request: stratum 1, poll 0 (the client's), precision
// 2^-20, root delay 0, root dispersion 1/512 s, GPS, the reference time
// 2016-12-31 23:58:00 (NTP 0xDC12C488), origin = the request's transmit.
constexpr std::array<uint8_t, 32> kHead = {
    0x00, 0x01, 0x00, 0xEC,                          // LI/VN/mode (per case), stratum 1, poll 0, precision -20
    0x00, 0x00, 0x00, 0x00,                          // root delay
    0x00, 0x00, 0x00, 0x80,                          // root dispersion
    'G',  'P',  'S',  0x00,                          // reference ID
    0xDC, 0x12, 0xC4, 0x88, 0x00, 0x00, 0x00, 0x00,  // reference timestamp
    0x3b, 0xe0, 0x14, 0x6c, 0xfb, 0x19, 0x59, 0xbf,  // origin = chrony's transmit field
};

Reply expected(uint8_t li_vn_mode, NtpTimestamp rx, NtpTimestamp tx) {
  Reply r{};
  std::memcpy(r.data(), kHead.data(), kHead.size());
  r[0] = li_vn_mode;
  proto::store_ts(r.data() + 32, rx);
  proto::store_ts(r.data() + 40, tx);
  return r;
}

proto::ServerStateData state(uint8_t leap) {
  proto::ServerStateData s;
  s.leap = leap;
  s.stratum = 1;
  s.precision_log2 = -20;
  s.synchronized = 1;
  s.refid = proto::refid_from_ascii("GPS\0");
  s.reference_time_ns = kLeapNs - 120 * kS;
  s.root_delay_ns = 0;
  s.root_dispersion_ns = 1953125;  // 1/512 s: short 0x00000080
  s.published_ns = kLeapNs - 100 * kS;
  s.holdover_ns = 3 * 86400 * kS;
  // The growth of the dispersion with age is reply_params' own test
  // (test_responder); here the bytes should show only the leap.
  s.dispersion_rate_ppb = 0;
  s.leap_ns = leap == 1 || leap == 2 ? kLeapNs : 0;
  return s;
}

// One appliance: the published model and state, and the worker's steps.
struct Appliance {
  proto::ClockModelData model;
  proto::ServerStateData st;

  Appliance(int32_t leap_sign, bool smear, uint8_t announced)
      : model(hwclock::make_model(kRaw0, kLeapNs - 50000 * kS, kNsPerTick, kHz)), st(state(announced)) {
    hwclock::set_model_leap(model, leap_sign, kLeapNs, smear);
  }

  // The tick at which the model's linear time is kLeapNs + offset_ns: the
  // timebase advances 0.4 ns a tick, so every ns is hit exactly.
  uint64_t raw_at(int64_t offset_ns) const {
    const int64_t want = kLeapNs + offset_ns;
    uint64_t lo = kRaw0, hi = kRaw0 + (uint64_t{1} << 50);
    while (lo < hi) {
      const uint64_t mid = lo + (hi - lo) / 2;
      if (hwclock::model_linear_ns(model, mid) < want) lo = mid + 1;
      else hi = mid;
    }
    EXPECT_EQ(hwclock::model_linear_ns(model, lo), want);
    return lo;
  }

  struct Exchange {
    Reply bytes{};
    int64_t rx_ns = 0, tx_ns = 0;  // served
  };
  // A request received at rx_raw, in the burst that began at burst_raw
  // (rx_raw <= burst_raw: a NIC timestamp is older than the burst), its
  // reply stamped at tx_raw, as the worker does: reply_params from the
  // burst's served time, the receive and transmit times through model_to_ns.
  Exchange exchange(uint64_t rx_raw, uint64_t burst_raw, uint64_t tx_raw) const {
    Exchange e;
    const dp::ReplyParams p = dp::reply_params(st, true, hwclock::model_to_ns(model, burst_raw));
    e.rx_ns = hwclock::model_to_ns(model, rx_raw);
    std::array<uint8_t, dp::kMaxReplyLen> buf{};
    std::memcpy(buf.data(), golden::kChronyRequest0, 48);
    const dp::NtpDecision d = dp::respond(buf.data(), 48, proto::ntp_from_unix_ns(e.rx_ns), p, true);
    EXPECT_EQ(d.action, dp::NtpAction::kReply);
    EXPECT_EQ(d.reply_len, 48);
    e.tx_ns = hwclock::model_to_ns(model, tx_raw);
    // What stamp_transmit writes at the NTP payload's transmit field.
    proto::store_ts(buf.data() + proto::offs::kTransmit, proto::ntp_from_unix_ns(e.tx_ns));
    std::memcpy(e.bytes.data(), buf.data(), 48);
    return e;
  }
  // Offsets in linear time from the leap.
  Exchange at(int64_t rx_off, int64_t burst_off, int64_t tx_off) const {
    return exchange(raw_at(rx_off), raw_at(burst_off), raw_at(tx_off));
  }
};

struct Golden {
  const char* what;
  int64_t rx_off, burst_off, tx_off;  // linear ns from the leap
  uint8_t li_vn_mode;
  NtpTimestamp rx, tx;  // on the wire
};

void check_golden(const Appliance& a, const Golden& g) {
  SCOPED_TRACE(g.what);
  const Appliance::Exchange e = a.at(g.rx_off, g.burst_off, g.tx_off);
  EXPECT_EQ(e.bytes, expected(g.li_vn_mode, g.rx, g.tx));
}

// ------------------------------------------------------------ byte for byte

TEST(LeapSim, InsertedSecondByteForByte) {
  const Appliance a(1, false, 1);
  const Golden cases[] = {
      {"23:59:58.25", -1750 * kMs, -1750 * kMs, -1750 * kMs + 10 * kUs, 0x64,
       {0xdc12c4fe, 0x40000000}, {0xdc12c4fe, 0x4000a7c6}},
      {"23:59:59.75, first pass", -250 * kMs, -250 * kMs, -250 * kMs + 10 * kUs, 0x64,
       {0xdc12c4ff, 0xc0000000}, {0xdc12c4ff, 0xc000a7c6}},
      {"23:59:60.25, served as 23:59:59.25", 250 * kMs, 250 * kMs, 250 * kMs + 10 * kUs, 0x64,
       {0xdc12c4ff, 0x40000000}, {0xdc12c4ff, 0x4000a7c6}},
      // The same bytes as the first pass: a time served twice, both times with LI 1.
      {"23:59:60.75, served as 23:59:59.75 again", 750 * kMs, 750 * kMs, 750 * kMs + 10 * kUs, 0x64,
       {0xdc12c4ff, 0xc0000000}, {0xdc12c4ff, 0xc000a7c6}},
      {"00:00:00.25", 1250 * kMs, 1250 * kMs, 1250 * kMs + 10 * kUs, 0x24,
       {0xdc12c500, 0x40000000}, {0xdc12c500, 0x4000a7c6}},
      // A NIC timestamp 1 ns before the end of the repeated second, in a
      // burst that began 2 us after it: LI 1 for that request...
      {"NIC stamp 23:59:60.999999999, burst at 00:00:00.000002", kS - 1, kS + 2 * kUs, kS + 5 * kUs, 0x64,
       {0xdc12c4ff, 0xfffffffc}, {0xdc12c500, 0x000053e3}},
      // ... and LI 0 for one received at 00:00:00 in the same burst.
      {"NIC stamp 00:00:00, same burst", kS, kS + 2 * kUs, kS + 5 * kUs, 0x24,
       {0xdc12c500, 0x00000000}, {0xdc12c500, 0x000053e3}},
      // Received in the repeated second, sent after it: LI 1 (the burst's).
      {"received 23:59:60.99999, sent 00:00:00.00001", kS - 10 * kUs, kS - 10 * kUs, kS + 10 * kUs, 0x64,
       {0xdc12c4ff, 0xffff583a}, {0xdc12c500, 0x0000a7c6}},
  };
  for (const Golden& g : cases) check_golden(a, g);
}

TEST(LeapSim, DeletedSecondByteForByte) {
  const Appliance a(-1, false, 2);
  const Golden cases[] = {
      {"23:59:58.75", -1250 * kMs, -1250 * kMs, -1250 * kMs + 10 * kUs, 0xA4,
       {0xdc12c4fe, 0xc0000000}, {0xdc12c4fe, 0xc000a7c6}},
      // Linear 23:59:59.25 does not exist: it is served as 00:00:00.25.
      {"linear 23:59:59.25", -750 * kMs, -750 * kMs, -750 * kMs + 10 * kUs, 0x24,
       {0xdc12c500, 0x40000000}, {0xdc12c500, 0x4000a7c6}},
      {"linear 00:00:00.5", 500 * kMs, 500 * kMs, 500 * kMs + 10 * kUs, 0x24,
       {0xdc12c501, 0x80000000}, {0xdc12c501, 0x8000a7c6}},
      // A NIC timestamp at 23:59:58.999999999 in a burst begun after the
      // leap: LI 2 for it, and its reply sent at 00:00:00.000003.
      {"NIC stamp 23:59:58.999999999, burst at 00:00:00.000002", -kS - 1, -kS + 2 * kUs, -kS + 3 * kUs, 0xA4,
       {0xdc12c4fe, 0xfffffffc}, {0xdc12c500, 0x00003255}},
  };
  for (const Golden& g : cases) check_golden(a, g);
}

TEST(LeapSim, SmearedInsertionByteForByte) {
  // Smearing: the control plane publishes leap 0 (a smeared server must not
  // pass the leap on), the model carries the smear.
  const Appliance a(1, true, 0);
  const Golden cases[] = {
      {"12:00, the window opens", -43200 * kS, -43200 * kS, -43200 * kS + 10 * kUs, 0x24,
       {0xdc121c40, 0x00000000}, {0xdc121c40, 0x0000a7c6}},
      {"18:00, a quarter: 0.25 s behind", -21600 * kS, -21600 * kS, -21600 * kS + 10 * kUs, 0x24,
       {0xdc12709f, 0xc0000000}, {0xdc12709f, 0xc000a7c6}},
      {"midnight: half way", 0, 0, 10 * kUs, 0x24, {0xdc12c4ff, 0x80000000}, {0xdc12c4ff, 0x8000a7c6}},
      {"12:00 next day, the window closes: 1 s behind", 43200 * kS, 43200 * kS, 43200 * kS + 10 * kUs, 0x24,
       {0xdc136dbf, 0x00000000}, {0xdc136dbf, 0x0000a7c6}},
      {"after it, exactly 1 s behind", 43201 * kS, 43201 * kS, 43201 * kS + 10 * kUs, 0x24,
       {0xdc136dc0, 0x00000000}, {0xdc136dc0, 0x0000a7c6}},
  };
  for (const Golden& g : cases) check_golden(a, g);
}

TEST(LeapSim, SmearedDeletionByteForByte) {
  const Appliance a(-1, true, 0);
  const Golden cases[] = {
      {"12:00, the window opens", -43200 * kS, -43200 * kS, -43200 * kS + 10 * kUs, 0x24,
       {0xdc121c40, 0x00000000}, {0xdc121c40, 0x0000a7c6}},
      {"18:00, a quarter: 0.25 s ahead", -21600 * kS, -21600 * kS, -21600 * kS + 10 * kUs, 0x24,
       {0xdc1270a0, 0x40000000}, {0xdc1270a0, 0x4000a7c6}},
      {"midnight: half way", 0, 0, 10 * kUs, 0x24, {0xdc12c500, 0x80000000}, {0xdc12c500, 0x8000a7c6}},
      {"after the window, exactly 1 s ahead", 43201 * kS, 43201 * kS, 43201 * kS + 10 * kUs, 0x24,
       {0xdc136dc2, 0x00000000}, {0xdc136dc2, 0x0000a7c6}},
  };
  for (const Golden& g : cases) check_golden(a, g);
}

// ------------------------------------------------------------ seeded sweeps

uint8_t li_of(const Reply& r) { return r[0] >> 6; }

// Exchanges every ~1 ms of linear time over [from, to] from the leap: a NIC
// timestamp 0-50 us older than its burst (or the burst's own time), the
// reply stamped 5-20 us after the burst. f(exchange, linear rx time).
template <typename F>
void sweep(const Appliance& a, uint64_t seed, int64_t from, int64_t to, int64_t step, F f) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> lag(0, 50 * kUs), jitter(0, step / 2), tx_delay(5 * kUs, 20 * kUs);
  const uint64_t raw_from = a.raw_at(from);
  const double ticks_per_ns = 1.0 / kNsPerTick;
  for (int64_t burst = from; burst <= to; burst += step) {
    const int64_t b = burst + jitter(rng);
    const int64_t rx = rng() % 4 == 0 ? b : b - lag(rng);  // a quarter without NIC timestamps
    const int64_t tx = b + tx_delay(rng);
    auto raw = [&](int64_t off) { return raw_from + static_cast<uint64_t>(std::llround((off - from) * ticks_per_ns)); };
    f(a.exchange(raw(rx), raw(b), raw(tx)), hwclock::model_linear_ns(a.model, raw(rx)));
  }
}

TEST(LeapSim, InsertionSweepNoRepeatedTimeWithoutIndicator) {
  SCOPED_TRACE(::testing::Message() << "TEST_SEED=" << test::seed());
  const Appliance a(1, false, 1);
  int64_t prev_rx = INT64_MIN;
  int back_steps = 0, n = 0, repeated = 0;
  sweep(a, test::seed(), -3 * kS, 3 * kS, 997 * kUs, [&](const Appliance::Exchange& e, int64_t) {
    n++;
    // LI 1 exactly for the requests received before the leap: every time
    // of the repeated second (either pass) carries it.
    ASSERT_EQ(li_of(e.bytes), e.rx_ns < kLeapNs ? 1 : 0) << "rx " << e.rx_ns - kLeapNs;
    if (e.rx_ns >= kLeapNs - kS && e.rx_ns < kLeapNs) repeated++;
    if (e.tx_ns >= kLeapNs - kS && e.tx_ns < kLeapNs) {
      ASSERT_EQ(li_of(e.bytes), 1) << "tx " << e.tx_ns - kLeapNs;
    }
    ASSERT_EQ(proto::load_ts(e.bytes.data() + 32), proto::ntp_from_unix_ns(e.rx_ns));
    ASSERT_EQ(proto::load_ts(e.bytes.data() + 40), proto::ntp_from_unix_ns(e.tx_ns));
    ASSERT_GT(e.tx_ns, e.rx_ns - kS);  // the transmit time is never more than the leap behind
    if (e.rx_ns < prev_rx) {
      back_steps++;  // once, by the inserted second
      ASSERT_GT(prev_rx - e.rx_ns, kS - 3 * kMs);
      ASSERT_LE(prev_rx - e.rx_ns, kS);
    }
    prev_rx = e.rx_ns;
  });
  EXPECT_EQ(back_steps, 1);
  EXPECT_GT(repeated, 1800);  // both passes of the repeated second were sampled
  std::printf("leap insertion: %d exchanges, %d in the repeated second, all with LI 1\n", n, repeated);
}

TEST(LeapSim, DeletionSweepNeverServesTheDeletedSecond) {
  SCOPED_TRACE(::testing::Message() << "TEST_SEED=" << test::seed());
  const Appliance a(-1, false, 2);
  int64_t prev_rx = INT64_MIN;
  int n = 0, forward_jumps = 0;
  sweep(a, test::seed() + 1, -3 * kS, 3 * kS, 997 * kUs, [&](const Appliance::Exchange& e, int64_t) {
    n++;
    ASSERT_EQ(li_of(e.bytes), e.rx_ns < kLeapNs ? 2 : 0) << "rx " << e.rx_ns - kLeapNs;
    ASSERT_FALSE(e.rx_ns >= kLeapNs - kS && e.rx_ns < kLeapNs) << "served 23:59:59: " << e.rx_ns - kLeapNs;
    ASSERT_FALSE(e.tx_ns >= kLeapNs - kS && e.tx_ns < kLeapNs) << "served 23:59:59: " << e.tx_ns - kLeapNs;
    ASSERT_GE(e.rx_ns, prev_rx);
    if (prev_rx != INT64_MIN && e.rx_ns - prev_rx > 500 * kMs) forward_jumps++;
    prev_rx = e.rx_ns;
  });
  EXPECT_EQ(forward_jumps, 1);
  std::printf("leap deletion: %d exchanges, none in the deleted second\n", n);
}

TEST(LeapSim, SmearSweepMonotonicContinuousAndExact) {
  for (int32_t sign : {1, -1}) {
    SCOPED_TRACE(::testing::Message() << "sign " << sign << " TEST_SEED=" << test::seed());
    const Appliance a(sign, true, 0);
    const long double start = static_cast<long double>(kLeapNs) - 43200.0L * kS;
    int64_t prev_rx = INT64_MIN;
    long double worst_ns = 0;
    int n = 0;
    // Every ~61 s across the window and 2 min either side of it.
    sweep(a, test::seed() + 2 + sign, -43320 * kS, 43320 * kS, 61 * kS + 3, [&](const Appliance::Exchange& e,
                                                                                  int64_t linear) {
      n++;
      ASSERT_EQ(li_of(e.bytes), 0);
      ASSERT_GE(e.rx_ns, prev_rx);
      prev_rx = e.rx_ns;
      // The smear is linear time minus sign x the fraction of the window gone by.
      long double frac = (static_cast<long double>(linear) - start) / (86400.0L * kS);
      frac = frac < 0 ? 0 : frac > 1 ? 1 : frac;
      const long double want = static_cast<long double>(linear) - sign * frac * kS;
      const long double err = std::fabs(static_cast<long double>(e.rx_ns) - want);
      worst_ns = std::max(worst_ns, err);
      ASSERT_LE(err, 1.0L) << linear - kLeapNs;
      if (linear >= kLeapNs + 43200 * kS) {
        ASSERT_EQ(e.rx_ns, linear - sign * kS);  // after: exactly 1 s
      }
      if (linear <= kLeapNs - 43200 * kS) {
        ASSERT_EQ(e.rx_ns, linear);
      }
    });
    // Step by step in 1 ns around midnight and the window's ends: never back,
    // never a jump.
    for (int64_t edge : {-43200 * kS, int64_t{0}, 43200 * kS}) {
      int64_t prev = hwclock::model_to_ns(a.model, a.raw_at(edge - 20000));
      for (uint64_t raw = a.raw_at(edge - 20000) + 1; raw <= a.raw_at(edge + 20000); raw++) {
        const int64_t v = hwclock::model_to_ns(a.model, raw);
        ASSERT_GE(v, prev) << raw;
        ASSERT_LE(v - prev, 2) << raw;
        prev = v;
      }
    }
    std::printf("leap smear %+d: %d exchanges, LI 0, worst |served - linear smear| %.1Lf ns\n", sign, n, worst_ns);
  }
}

TEST(LeapSim, FoldedModelAfterTheLeapServesTheSameBytes) {
  // Once the leap is done in linear time (hwclock::leap_complete_ns) the
  // control plane may publish the model with the second folded into its
  // anchor (hwclock::fold_leap): the answers do not change by a single bit.
  // The state's leap may go only once the served time reaches leap_ns: for
  // an insertion that is 1 s later, at the end of the repeated second.
  struct Case {
    int32_t sign;
    bool smear;
    uint8_t announced;
  };
  for (const Case c : {Case{1, false, 1}, Case{-1, false, 2}, Case{1, true, 0}, Case{-1, true, 0}}) {
    SCOPED_TRACE(::testing::Message() << "sign " << c.sign << " smear " << c.smear);
    const Appliance leap(c.sign, c.smear, c.announced);
    Appliance folded = leap;
    folded.model = hwclock::fold_leap(leap.model);
    Appliance cleared = folded;
    cleared.st.leap = 0;
    cleared.st.leap_ns = 0;
    const int64_t done = hwclock::leap_complete_ns(leap.model) - kLeapNs;
    for (int64_t off : {done, done + 1, done + 250 * kMs, done + kS - 1, done + kS, done + 3600 * kS}) {
      SCOPED_TRACE(off);
      const uint64_t rx = leap.raw_at(off), tx = leap.raw_at(off + 10 * kUs);  // the same ticks for all
      const Appliance::Exchange a = leap.exchange(rx, rx, tx);
      EXPECT_EQ(folded.exchange(rx, rx, tx).bytes, a.bytes);
      if (a.rx_ns >= kLeapNs) {
        EXPECT_EQ(li_of(a.bytes), 0);
        EXPECT_EQ(cleared.exchange(rx, rx, tx).bytes, a.bytes);
      } else {
        EXPECT_EQ(li_of(a.bytes), 1);  // the second pass of an insertion, past leap_complete_ns
        EXPECT_EQ(c.sign, 1);
        EXPECT_FALSE(c.smear);
      }
    }
  }
}

}  // namespace
}  // namespace ntp
