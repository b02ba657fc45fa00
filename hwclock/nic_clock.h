// A NIC's clock mapped to the TSC: per-packet RX timestamps (the raw NIC
// counter in the mbuf dynamic timestamp field) become TSC ticks, which the
// clock model (hwclock/clock_model.h) turns into UTC.
//
// The mapping is learned from periodic cross-timestamps taken by the
// dataplane's housekeeping thread (TSC read, rte_eth_read_clock, TSC read):
// NicClockMapper fits TSC against the unwrapped NIC counter and publishes a
// NicToTscMap, which workers read (through a Seqlock) once per burst and
// apply with nic_to_tsc() per packet. Pure logic: nothing here reads a clock
// or calls DPDK.
//
// Units: "NIC ticks" are counts of the NIC counter (ns for ice/igc, device
// ticks for mlx5); "TSC ticks" are counts of the invariant TSC.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

namespace ntp::hwclock {

// One cross-timestamp: TSC read, NIC clock read, TSC read. The NIC read
// happened somewhere between the two TSC reads; the midpoint is taken as
// its time and the width (tsc_after - tsc_before) bounds the uncertainty.
struct NicCrossTimestamp {
  uint64_t tsc_before = 0;  // TSC ticks
  uint64_t nic_raw = 0;     // NIC counter as read (bits above the counter width are ignored)
  uint64_t tsc_after = 0;   // TSC ticks
};

// Fixed point of NicToTscMap::mult: TSC ticks per NIC tick times 2^40, a
// resolution of 2^-40 (9.1e-13) TSC ticks per NIC tick, i.e. a relative
// rate resolution of 3e-13 at 2.9 TSC ticks per NIC tick (1 GHz NIC
// counter, 2.9 GHz TSC): under 1e-3 TSC ticks of rounding error over 1e9
// NIC ticks. The largest ratio representable is 2^24 TSC ticks per NIC tick.
inline constexpr unsigned kNicMapShift = 40;

// The published mapping: tsc = tsc0 + sext((raw - nic0) mod 2^bits) * mult / 2^40.
// Trivially copyable (it goes through a Seqlock); read by workers once per
// burst.
struct NicToTscMap {
  uint64_t nic0 = 0;       // NIC counter at the anchor (masked to the counter width)
  uint64_t tsc0 = 0;       // TSC ticks at the anchor (the fitted TSC of nic0)
  uint64_t mult = 0;       // TSC ticks per NIC tick, times 2^kNicMapShift
  uint64_t mask = ~0ull;   // counter width mask: 2^bits - 1
  uint64_t max_delta = 0;  // NIC ticks: raw values further than this from nic0 (either side,
                           // after unwrapping relative to nic0) are rejected; <= 2^62
  uint64_t max_age = 0;    // TSC ticks after tsc0 beyond which the map must not be used at all
                           // (a narrow counter may have wrapped far enough since the anchor
                           // that an old map converts a new raw value wrongly); see nic_map_fresh
  uint32_t valid = 0;      // nonzero: usable
  uint32_t reserved = 0;
};
static_assert(std::is_trivially_copyable_v<NicToTscMap>);

// Hot path: raw NIC timestamp -> TSC ticks. The difference raw - nic0 is
// taken modulo the counter width and sign-extended, so a packet slightly
// older than the anchor (negative delta) and a counter that wrapped since
// the anchor both convert correctly. Returns false (rejected) when the map
// is not valid or |delta| > max_delta; tsc_out is written either way and is
// meaningless when false. One multiply (64x64->128), no branch.
// Resolution: the result is rounded to the nearest TSC tick.
inline bool nic_to_tsc(const NicToTscMap& m, uint64_t raw, uint64_t& tsc_out) {
  const uint64_t top = (m.mask >> 1) + 1;  // the sign bit of the counter width
  const uint64_t u = (raw - m.nic0) & m.mask;
  const auto d = static_cast<int64_t>((u ^ top) - top);  // sign-extended delta, NIC ticks
  const auto t = (static_cast<__int128>(d) * static_cast<__int128>(m.mult) + (__int128{1} << (kNicMapShift - 1))) >>
                 kNicMapShift;  // rounded to the nearest TSC tick
  tsc_out = m.tsc0 + static_cast<uint64_t>(static_cast<int64_t>(t));
  // |d| <= max_delta as one unsigned compare (max_delta <= 2^62: no overflow).
  return (m.valid != 0) & (static_cast<uint64_t>(d) + m.max_delta <= 2 * m.max_delta);
}

// Once per burst, before converting with m: false when the map is invalid
// or older than its max_age at TSC reading tsc_now (the housekeeping thread
// stopped publishing; fall back to software timestamps).
inline bool nic_map_fresh(const NicToTscMap& m, uint64_t tsc_now) {
  return m.valid != 0 && static_cast<int64_t>(tsc_now - m.tsc0) < static_cast<int64_t>(m.max_age);
}

struct NicClockParams {
  unsigned counter_bits = 64;        // width of the NIC counter, 32..64
  double nominal_ticks_per_tsc = 0;  // NIC ticks per TSC tick expected (nic_hz / tsc_hz), > 0: the
                                     // rate used before the first fit, and the reference of the
                                     // sanity check
  size_t window = 32;                // rounds kept for the fit, >= 4
  double max_rate_error_ppm = 500;   // fits further than this from nominal are refused (not valid)
  uint64_t max_delta_ticks = 0;      // NIC ticks either side of the anchor a raw value may be
                                     // converted; 0: twice the span of the fit window. Always
                                     // capped at 3/8 of the wrap period (and 2^62).
};

// What add_round did with a round.
enum class NicRound : uint8_t {
  kAccepted,           // added to the fit window
  kRejectedReads,      // no usable read (empty, TSC reversed, or the reads disagree)
  kRejectedWidth,      // bracket far wider than the typical one
  kRejectedResidual,   // far off the current fit (or TSC not after the last round)
  kRestartedGap,       // too long since the last round to unwrap the counter: history dropped,
                       // this round starts a new window
  kRestartedOutliers,  // too many rejections in a row (the NIC clock jumped or the typical
                       // width changed): history dropped, this round starts a new window
};
const char* to_string(NicRound r);

// Learns the NIC -> TSC mapping from sampling rounds. Single-threaded (the
// housekeeping thread); publish map() through a Seqlock. Allocates in the
// constructor only.
class NicClockMapper {
 public:
  // Throws std::invalid_argument on parameters out of range.
  explicit NicClockMapper(NicClockParams p);

  // One sampling round: a few back-to-back cross-timestamps (the first 64
  // are used). Reads that disagree with the majority of the round (a
  // garbage NIC value) are dropped and counted in bad_reads(); of the rest
  // the narrowest bracket is kept, its midpoint being the TSC of the NIC
  // read. The counter is unwrapped against the value predicted from the
  // TSC, so rounds must come more often than half the wrap period: a longer
  // gap restarts the mapper (kRestartedGap). Rounds much wider than the
  // window's median width, or whose residual against the current fit is
  // above 6 robust standard deviations, are rejected (outliers()); 8
  // rejections in a row restart. Accepted rounds refit (least squares of
  // TSC against unwrapped NIC ticks over the window, excluding wide
  // brackets and residual outliers) and re-anchor the map at the newest
  // round.
  NicRound add_round(std::span<const NicCrossTimestamp> reads);

  bool valid() const { return map_.valid != 0; }  // >= 4 rounds in the fit and a sane rate
  NicToTscMap map() const { return map_; }         // valid == 0 while not valid()
  double rate_ppm_vs_nominal() const { return rate_ppm_; }  // fitted NIC rate vs nominal, ppm
  double residual_rms_ticks() const { return rms_ticks_; }  // of the fit, TSC ticks
  size_t samples() const { return count_; }                 // rounds in the window
  uint64_t rounds() const { return rounds_; }               // add_round calls
  uint64_t outliers() const { return outliers_; }           // rounds rejected
  uint64_t bad_reads() const { return bad_reads_; }         // single reads dropped within rounds
  uint64_t restarts() const { return restarts_; }

 private:
  struct Sample {
    uint64_t tsc;    // midpoint of the bracket, TSC ticks
    uint64_t ext;    // unwrapped NIC counter (64-bit, arbitrary epoch per restart)
    uint64_t width;  // TSC ticks
  };
  const Sample& at(size_t i) const { return ring_[(head_ + i) % ring_.size()]; }  // 0 = oldest
  bool reduce(std::span<const NicCrossTimestamp> reads, Sample& out);
  void restart();
  void push(const Sample& s);
  void refit();
  double median_width();

  NicClockParams p_;
  uint64_t mask_;
  long double wrap_;  // 2^bits

  std::vector<Sample> ring_;
  size_t head_ = 0, count_ = 0;
  std::vector<double> scratch_;  // medians
  std::vector<long double> resid_;
  std::vector<uint8_t> used_;

  // The current fit: tsc = org_tsc + a + b * (ext - org_ext).
  uint64_t org_tsc_ = 0, org_ext_ = 0;
  long double a_ = 0, b_ = 0;  // b: TSC ticks per NIC tick
  double spread_ = 0;          // robust residual standard deviation (floored), TSC ticks
  double width_median_ = 0;    // TSC ticks

  NicToTscMap map_{};
  double rate_ppm_ = 0, rms_ticks_ = 0;
  unsigned consecutive_rejects_ = 0;
  uint64_t rounds_ = 0, outliers_ = 0, bad_reads_ = 0, restarts_ = 0;
};

}  // namespace ntp::hwclock
