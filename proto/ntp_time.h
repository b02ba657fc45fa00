// NTP time formats (RFC 5905 section 6) and their conversion to the
// appliance's internal time: signed 64-bit nanoseconds since the Unix epoch.
#pragma once

#include <cstdint>

namespace ntp::proto {

// RFC 5905 section 6: "the prime epoch, or base date of era 0, is 0 h 1
// January 1900 UTC"; the Unix epoch is 2,208,988,800 s later.
inline constexpr int64_t kUnixMinusNtpEpochS = 2208988800LL;
inline constexpr int64_t kNsPerS = 1000000000LL;

// RFC 5905 section 6: "The 64-bit timestamp format ... includes a 32-bit
// unsigned seconds field spanning 136 years and a 32-bit fraction field
// resolving 232 picoseconds." The era is not on the wire.
struct NtpTimestamp {
  uint32_t seconds = 0;   // seconds since the start of the era, mod 2^32
  uint32_t fraction = 0;  // units of 2^-32 s
  constexpr uint64_t raw() const { return (uint64_t{seconds} << 32) | fraction; }
  static constexpr NtpTimestamp from_raw(uint64_t v) {
    return {static_cast<uint32_t>(v >> 32), static_cast<uint32_t>(v)};
  }
  constexpr bool is_zero() const { return seconds == 0 && fraction == 0; }
  friend constexpr bool operator==(NtpTimestamp, NtpTimestamp) = default;
};

// Unix ns (any sign, any era) -> wire timestamp. The fraction is rounded to
// the nearest 2^-32 s, so ns -> NTP -> ns is exact to within 0.5 ns.
constexpr NtpTimestamp ntp_from_unix_ns(int64_t unix_ns) {
  // Floor division keeps times before 1970 right.
  int64_t s = unix_ns / kNsPerS;
  int64_t ns = unix_ns % kNsPerS;
  if (ns < 0) {
    ns += kNsPerS;
    s -= 1;
  }
  uint64_t frac = ((static_cast<uint64_t>(ns) << 32) + kNsPerS / 2) / kNsPerS;
  uint64_t secs = static_cast<uint64_t>(s + kUnixMinusNtpEpochS);
  if (frac >> 32) {  // rounded up to a whole second
    frac = 0;
    secs += 1;
  }
  return {static_cast<uint32_t>(secs), static_cast<uint32_t>(frac)};
}

// Fraction (2^-32 s) -> ns, rounded to nearest.
constexpr int64_t ns_from_fraction(uint32_t fraction) {
  return static_cast<int64_t>((uint64_t{fraction} * kNsPerS + (1ULL << 31)) >> 32);
}

// Wire timestamp -> Unix ns in the era that puts it within 68 years of
// pivot_unix_ns (RFC 5905 section 6: "operations on them produce results in
// the same or adjacent eras"). Pass the local clock as the pivot.
constexpr int64_t unix_ns_from_ntp(NtpTimestamp ts, int64_t pivot_unix_ns) {
  int64_t pivot_s = pivot_unix_ns / kNsPerS;
  if (pivot_unix_ns % kNsPerS < 0) pivot_s -= 1;  // floor
  int64_t pivot_ntp_s = pivot_s + kUnixMinusNtpEpochS;  // with era: era * 2^32 + seconds
  // The signed 32-bit difference of the seconds fields picks the nearest era.
  int64_t ntp_s = pivot_ntp_s + static_cast<int32_t>(ts.seconds - static_cast<uint32_t>(pivot_ntp_s));
  return (ntp_s - kUnixMinusNtpEpochS) * kNsPerS + ns_from_fraction(ts.fraction);
}

// Signed difference a - b in ns of two wire timestamps assumed to be within
// 68 years of each other (RFC 5905 section 6, 64-bit two's complement).
constexpr int64_t ntp_diff_ns(NtpTimestamp a, NtpTimestamp b) {
  int64_t d = static_cast<int64_t>(a.raw() - b.raw());  // units of 2^-32 s
  // d * 1e9 / 2^32 without overflow: split whole seconds and fraction.
  int64_t whole = d >> 32;  // floor
  uint32_t frac = static_cast<uint32_t>(d);
  return whole * kNsPerS + ns_from_fraction(frac);
}

// RFC 5905 section 6: "The 32-bit short format is used in delay and
// dispersion header fields ... a 16-bit unsigned seconds field and a 16-bit
// fraction field." Negative values clamp to 0, too large to 0xFFFF.FFFF.
constexpr uint32_t short_from_ns(int64_t ns) {
  if (ns <= 0) return 0;
  if (ns >= 65536 * kNsPerS) return 0xFFFFFFFFu;
  // Round up: a dispersion must never be understated. Just below 65536 s
  // (above 0xFFFF.FFFF) rounding up gives 2^32: clamp, do not wrap to 0.
  const auto v = ((static_cast<unsigned __int128>(ns) << 16) + kNsPerS - 1) / kNsPerS;
  return v > 0xFFFFFFFFu ? 0xFFFFFFFFu : static_cast<uint32_t>(v);
}

constexpr int64_t ns_from_short(uint32_t v) {
  return static_cast<int64_t>((static_cast<uint64_t>(v) * kNsPerS + (1u << 15)) >> 16);
}

}  // namespace ntp::proto
