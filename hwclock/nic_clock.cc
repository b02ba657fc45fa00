#include "hwclock/nic_clock.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>

namespace ntp::hwclock {

namespace {

constexpr size_t kMaxReads = 64;          // reads per round looked at
constexpr unsigned kMinFitSamples = 4;    // for a valid map
constexpr double kWidthFactor = 3.0;      // "far wider": above 3x the window's median width...
constexpr double kWidthSlackTicks = 100;  // ...plus 100 TSC ticks (for near-zero medians)
constexpr double kResidualK = 6.0;        // residual outlier: above 6 robust standard deviations
constexpr unsigned kRestartAfter = 8;     // rejections in a row that restart
constexpr double kMadToSigma = 1.4826;

}  // namespace

const char* to_string(NicRound r) {
  switch (r) {
    case NicRound::kAccepted: return "accepted";
    case NicRound::kRejectedReads: return "rejected-reads";
    case NicRound::kRejectedWidth: return "rejected-width";
    case NicRound::kRejectedResidual: return "rejected-residual";
    case NicRound::kRestartedGap: return "restarted-gap";
    case NicRound::kRestartedOutliers: return "restarted-outliers";
  }
  return "?";
}

NicClockMapper::NicClockMapper(NicClockParams p) : p_(p) {
  if (p_.counter_bits < 32 || p_.counter_bits > 64)
    throw std::invalid_argument("NicClockMapper: counter_bits must be 32..64");
  if (!(p_.nominal_ticks_per_tsc > 0) || !std::isfinite(p_.nominal_ticks_per_tsc))
    throw std::invalid_argument("NicClockMapper: nominal_ticks_per_tsc must be > 0");
  // mult holds TSC ticks per NIC tick in 64 bits with 40 fractional bits.
  if (1.0 / p_.nominal_ticks_per_tsc >= 0x1p23)
    throw std::invalid_argument("NicClockMapper: NIC clock too slow for the fixed point");
  if (p_.window < kMinFitSamples) throw std::invalid_argument("NicClockMapper: window must be >= 4");
  if (!(p_.max_rate_error_ppm > 0) || p_.max_rate_error_ppm > 1e5)
    throw std::invalid_argument("NicClockMapper: max_rate_error_ppm must be in (0, 1e5]");
  mask_ = p_.counter_bits == 64 ? ~uint64_t{0} : (uint64_t{1} << p_.counter_bits) - 1;
  wrap_ = std::ldexp(1.0L, static_cast<int>(p_.counter_bits));
  ring_.resize(p_.window);
  scratch_.resize(std::max(p_.window, kMaxReads));
  resid_.resize(p_.window);
  used_.resize(p_.window);
  map_.mask = mask_;
}

// The counter difference u (mod 2^bits) sign-extended to 64 bits.
static inline int64_t sext(uint64_t u, uint64_t mask) {
  const uint64_t top = (mask >> 1) + 1;
  return static_cast<int64_t>(((u & mask) ^ top) - top);
}

// The round's sample: the narrowest of the reads that agree with the
// majority. Agreement of two reads: their NIC values differ by what their
// TSC midpoints predict at the nominal rate, within the half widths of the
// brackets, the rate tolerance and 2 ticks of quantization.
bool NicClockMapper::reduce(std::span<const NicCrossTimestamp> reads, Sample& out) {
  struct R {
    uint64_t mid, width, raw;
    long double off;  // NIC ticks: raw minus the prediction from the first read
  };
  R r[kMaxReads];
  size_t n = 0;
  const size_t take = std::min(reads.size(), kMaxReads);
  for (size_t i = 0; i < take; i++) {
    const NicCrossTimestamp& c = reads[i];
    if (c.tsc_after < c.tsc_before) {
      bad_reads_++;
      continue;
    }
    const uint64_t w = c.tsc_after - c.tsc_before;
    r[n++] = {c.tsc_before + w / 2, w, c.nic_raw & mask_, 0};
  }
  if (n == 0) return false;
  const long double nom = p_.nominal_ticks_per_tsc;
  const long double err = p_.max_rate_error_ppm * 1e-6;
  for (size_t i = 0; i < n; i++) {
    const auto dt = static_cast<long double>(static_cast<int64_t>(r[i].mid - r[0].mid));
    r[i].off = static_cast<long double>(sext(r[i].raw - r[0].raw, mask_)) - dt * nom;
  }
  size_t best = n, majority = 0;
  for (size_t i = 0; i < n; i++) {
    size_t agree = 0;
    for (size_t j = 0; j < n; j++) {
      const auto dt = static_cast<long double>(static_cast<int64_t>(r[i].mid - r[j].mid));
      const long double tol = (static_cast<long double>(r[i].width) + r[j].width) / 2 * nom * (1 + err) +
                              std::fabs(dt) * nom * err + 2;
      if (std::fabs(r[i].off - r[j].off) <= tol) agree++;
    }
    if (2 * agree > n) {
      majority++;
      if (best == n || r[i].width < r[best].width) best = i;
    }
  }
  if (best == n) return false;  // no majority: nothing to trust
  bad_reads_ += n - majority;
  out = {r[best].mid, r[best].raw, r[best].width};  // ext holds the masked raw value for now
  return true;
}

void NicClockMapper::restart() {
  head_ = count_ = 0;
  map_ = NicToTscMap{};
  map_.mask = mask_;
  rate_ppm_ = rms_ticks_ = 0;
  spread_ = width_median_ = 0;
  consecutive_rejects_ = 0;
  restarts_++;
}

void NicClockMapper::push(const Sample& s) {
  if (count_ < ring_.size()) {
    ring_[(head_ + count_) % ring_.size()] = s;
    count_++;
  } else {
    ring_[head_] = s;
    head_ = (head_ + 1) % ring_.size();
  }
}

double NicClockMapper::median_width() {
  for (size_t i = 0; i < count_; i++) scratch_[i] = static_cast<double>(at(i).width);
  const auto mid = scratch_.begin() + static_cast<std::ptrdiff_t>(count_ / 2);
  std::nth_element(scratch_.begin(), mid, scratch_.begin() + static_cast<std::ptrdiff_t>(count_));
  return *mid;
}

NicRound NicClockMapper::add_round(std::span<const NicCrossTimestamp> reads) {
  rounds_++;
  Sample s;
  if (!reduce(reads, s)) {
    // Carries no information either way: not counted towards a restart.
    outliers_++;
    return NicRound::kRejectedReads;
  }
  const uint64_t raw = s.ext;

  auto start_over = [&](NicRound why) {
    restart();
    s.ext = raw;
    push(s);
    refit();
    return why;
  };
  if (count_ == 0) {
    push(s);
    refit();
    return NicRound::kAccepted;
  }

  auto reject = [&](NicRound why) {
    outliers_++;
    if (++consecutive_rejects_ >= kRestartAfter) return start_over(NicRound::kRestartedOutliers);
    return why;
  };

  const Sample& last = at(count_ - 1);
  const auto dt = static_cast<int64_t>(s.tsc - last.tsc);
  if (dt <= 0) return reject(NicRound::kRejectedResidual);

  // Unwrap against the NIC value the TSC predicts. Ambiguous when the gap,
  // at the largest plausible rate, reaches half the wrap period.
  const long double nom = p_.nominal_ticks_per_tsc;
  const long double err = p_.max_rate_error_ppm * 1e-6;
  const long double rate = map_.valid ? 1.0L / b_ : nom;  // NIC ticks per TSC tick
  const long double gap = static_cast<long double>(dt) * rate;
  if (gap * (1 + err) + static_cast<long double>(s.width) * rate + 2 >= wrap_ / 2)
    return start_over(NicRound::kRestartedGap);
  const uint64_t pred = last.ext + static_cast<uint64_t>(std::llround(gap));
  s.ext = pred + static_cast<uint64_t>(sext(raw - pred, mask_));

  width_median_ = median_width();
  if (static_cast<double>(s.width) > kWidthFactor * width_median_ + kWidthSlackTicks)
    return reject(NicRound::kRejectedWidth);

  if (map_.valid) {
    const auto x = static_cast<long double>(static_cast<int64_t>(s.ext - org_ext_));
    const auto y = static_cast<long double>(static_cast<int64_t>(s.tsc - org_tsc_));
    if (std::fabs(y - (a_ + b_ * x)) > kResidualK * spread_) return reject(NicRound::kRejectedResidual);
  } else {
    // No trusted fit yet: consistent with the newest sample at a rate
    // within the tolerance of nominal.
    const auto dx = static_cast<long double>(static_cast<int64_t>(s.ext - last.ext));
    const long double r = static_cast<long double>(dt) - dx / nom;
    const long double tol = static_cast<long double>(dt) * err +
                            (static_cast<long double>(s.width) + static_cast<long double>(last.width)) / 2 + 2 / nom;
    if (std::fabs(r) > tol) return reject(NicRound::kRejectedResidual);
  }

  consecutive_rejects_ = 0;
  push(s);
  refit();
  return NicRound::kAccepted;
}

// Least squares of TSC against unwrapped NIC ticks, in coordinates relative
// to the oldest sample (both fit in int64; long double keeps the sums
// exact enough). Samples with brackets far wider than the median are left
// out, then samples with residuals above kResidualK robust standard
// deviations, and the line is fitted again.
void NicClockMapper::refit() {
  const size_t n = count_;
  map_.valid = 0;
  if (n < 2) return;
  const Sample& org = at(0);
  org_tsc_ = org.tsc;
  org_ext_ = org.ext;
  width_median_ = median_width();
  for (size_t i = 0; i < n; i++)
    used_[i] = static_cast<double>(at(i).width) <= kWidthFactor * width_median_ + kWidthSlackTicks;

  auto xy = [&](size_t i, long double& x, long double& y) {
    x = static_cast<long double>(static_cast<int64_t>(at(i).ext - org_ext_));
    y = static_cast<long double>(static_cast<int64_t>(at(i).tsc - org_tsc_));
  };
  size_t nused = 0;
  auto fit = [&]() {
    long double sx = 0, sy = 0;
    nused = 0;
    for (size_t i = 0; i < n; i++) {
      if (!used_[i]) continue;
      long double x, y;
      xy(i, x, y);
      sx += x;
      sy += y;
      nused++;
    }
    if (nused < 2) return false;
    const long double mx = sx / nused, my = sy / nused;
    long double sxx = 0, sxy = 0;
    for (size_t i = 0; i < n; i++) {
      if (!used_[i]) continue;
      long double x, y;
      xy(i, x, y);
      sxx += (x - mx) * (x - mx);
      sxy += (x - mx) * (y - my);
    }
    if (!(sxx > 0)) return false;
    b_ = sxy / sxx;
    a_ = my - b_ * mx;
    for (size_t i = 0; i < n; i++) {
      long double x, y;
      xy(i, x, y);
      resid_[i] = y - (a_ + b_ * x);
    }
    return true;
  };
  if (!fit()) return;

  // Robust spread: the median absolute residual, floored at half a NIC
  // tick (the quantization) plus 2 TSC ticks.
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (used_[i]) scratch_[m++] = static_cast<double>(std::fabs(resid_[i]));
  std::nth_element(scratch_.begin(), scratch_.begin() + static_cast<std::ptrdiff_t>(m / 2),
                   scratch_.begin() + static_cast<std::ptrdiff_t>(m));
  const double floor = 0.5 / p_.nominal_ticks_per_tsc + 2.0;
  spread_ = std::max(kMadToSigma * scratch_[m / 2], floor);
  bool excluded = false;
  for (size_t i = 0; i < n; i++) {
    if (used_[i] && std::fabs(resid_[i]) > kResidualK * spread_) {
      used_[i] = 0;
      excluded = true;
    }
  }
  if (excluded && !fit()) return;

  long double ss = 0;
  for (size_t i = 0; i < n; i++)
    if (used_[i]) ss += resid_[i] * resid_[i];
  rms_ticks_ = static_cast<double>(std::sqrt(ss / nused));
  rate_ppm_ = static_cast<double>((1.0L / b_ / p_.nominal_ticks_per_tsc - 1) * 1e6L);

  // Anchor at the newest sample, on the fitted line.
  const Sample& newest = at(n - 1);
  const auto xn = static_cast<long double>(static_cast<int64_t>(newest.ext - org_ext_));
  NicToTscMap mp;
  mp.nic0 = newest.ext & mask_;
  mp.tsc0 = org_tsc_ + static_cast<uint64_t>(std::llround(a_ + b_ * xn));
  mp.mask = mask_;
  const long double multf = std::ldexp(b_, static_cast<int>(kNicMapShift));
  const bool sane = b_ > 0 && multf < 0x1p63L && std::fabs(rate_ppm_) <= p_.max_rate_error_ppm;
  mp.mult = sane ? static_cast<uint64_t>(std::llround(multf)) : 0;

  const long double cap = p_.counter_bits >= 64 ? 0x1p62L : std::min(wrap_ * 3 / 8, 0x1p62L);
  const auto span = static_cast<long double>(newest.ext - org_ext_);
  long double md = p_.max_delta_ticks ? static_cast<long double>(p_.max_delta_ticks) : 2 * span;
  md = std::min(md, cap);
  mp.max_delta = static_cast<uint64_t>(md);
  // A raw value aliases into range once the counter has moved wrap -
  // max_delta past the anchor; stop an eighth of the wrap before that.
  const long double age_ticks = p_.counter_bits >= 64 ? 0x1p64L : wrap_ - md - wrap_ / 8;
  const long double age_tsc = age_ticks * b_;
  mp.max_age = age_tsc >= 0x1p63L || !sane ? static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
                                           : static_cast<uint64_t>(age_tsc);
  mp.valid = sane && nused >= kMinFitSamples ? 1 : 0;
  map_ = mp;
}

}  // namespace ntp::hwclock
