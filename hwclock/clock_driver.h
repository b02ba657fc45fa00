// A narrow interface to a clock we can read against the TSC and steer:
// a PTP hardware clock (/dev/ptpN), CLOCK_REALTIME (hwclock/system_clock.h)
// and, in tests, tests/support/simulated_clock.h. The servo only
// computes (hwclock/servo.h); hwclock/follower.h turns its orders into
// calls of this interface.
//
// Steering is only ever done where the configuration asks for it, never in
// tests: the tests use SimulatedClock, and only read the real clocks.
//
// Conventions:
//   read_ns / cross_timestamp  the clock's own reading, ns (for PHCs in
//                              whatever timescale the PHC keeps: often TAI).
//   set_frequency_ppb(ppb)     the ABSOLUTE frequency correction relative to
//                              the uncorrected oscillator, from the moment
//                              of the call until the next one (a kernel
//                              clock has no notion of a bounded slew):
//                              positive makes the clock run faster. Values
//                              beyond +-max_frequency_ppb() are clamped to
//                              it (the kernel would refuse or clamp them).
//   step_ns(delta)             clock += delta, at once.
#pragma once

#include <time.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

namespace ntp::hwclock {

// The clock at TSC reading `tsc` (the midpoint of the TSC reads that
// bracket the clock read); width_ticks is the bracket's width, the
// uncertainty of the pairing.
struct ClockReading {
  uint64_t tsc = 0;
  int64_t clock_ns = 0;
  uint64_t width_ticks = 0;
};

class ClockDriver {
 public:
  virtual ~ClockDriver() = default;
  virtual std::string name() const = 0;
  virtual bool read_ns(int64_t& ns, std::string& err) = 0;
  // The tightest of a few TSC-bracketed reads.
  virtual bool cross_timestamp(ClockReading& out, std::string& err) = 0;
  // Absolute correction (positive: faster), clamped to +-max_frequency_ppb().
  virtual bool set_frequency_ppb(double ppb, std::string& err) = 0;
  // clock += delta_ns.
  virtual bool step_ns(int64_t delta_ns, std::string& err) = 0;
  // The largest |frequency correction| the clock takes, ppb.
  virtual double max_frequency_ppb() const = 0;
};

// ---------------------------------------------------------------------------
// clock_adjtime value conversions (pure; unit-tested).

// timex.freq is in "scaled ppm": ppm with a 16-bit binary fraction.
inline long ppb_to_scaled_ppm(double ppb) {
  const double v = ppb * 65.536;  // ppb / 1000 * 65536
  if (!(v == v)) return 0;        // NaN
  if (v >= 9.2e18) return INT64_MAX;
  if (v <= -9.2e18) return INT64_MIN;
  return static_cast<long>(v < 0 ? v - 0.5 : v + 0.5);  // round half away from zero
}
inline double scaled_ppm_to_ppb(long scaled_ppm) { return static_cast<double>(scaled_ppm) / 65.536; }

// What the PTP layer makes of a timex.freq (drivers/ptp/ptp_clock.c and
// include/linux/ptp_clock_kernel.h scaled_ppm_to_ppb(): (1 + ppm) * 125 >>
// 13, an arithmetic shift). It refuses (ERANGE) values beyond the clock's
// max_adj in this unit, so the PHC driver checks against it.
inline long kernel_scaled_ppm_to_ppb(long scaled_ppm) {
  const int64_t v = (static_cast<int64_t>(scaled_ppm) + 1) * 125;
  return static_cast<long>(v >> 13);
}

// The timex.freq to send a PHC for ppb: clamped so that the kernel's own
// conversion stays within +-max_adj_ppb.
inline long phc_scaled_ppm(double ppb, long max_adj_ppb) {
  const double m = static_cast<double>(max_adj_ppb);
  const double clamped = ppb > m ? m : ppb < -m ? -m : ppb;
  long s = ppb_to_scaled_ppm(clamped);
  while (kernel_scaled_ppm_to_ppb(s) > max_adj_ppb) --s;
  while (kernel_scaled_ppm_to_ppb(s) < -max_adj_ppb) ++s;
  return s;
}

// A signed step as ADJ_SETOFFSET | ADJ_NANO wants it: sec + nsec with
// 0 <= nsec < 1e9 (a negative step of 1 ns is {-1, 999999999}).
struct SecNsec {
  int64_t sec = 0;
  int64_t nsec = 0;
};
inline SecNsec normalize_step(int64_t delta_ns) {
  SecNsec r{delta_ns / 1'000'000'000, delta_ns % 1'000'000'000};
  if (r.nsec < 0) {
    r.nsec += 1'000'000'000;
    r.sec -= 1;
  }
  return r;
}

// FD_TO_CLOCKID of the kernel's posix-clock interface (a dynamic clock id
// for an open /dev/ptpN).
inline clockid_t fd_to_clockid(int fd) { return static_cast<clockid_t>((~static_cast<unsigned>(fd) << 3) | 3u); }

// PTP_SYS_OFFSET_EXTENDED gives CLOCK_REALTIME before and after each PHC
// read; this maps such a REALTIME instant to the TSC by interpolating
// between two TSC-bracketed REALTIME reads taken just before and just
// after the ioctl (a few microseconds apart: the rate between them is
// exact to far better than a nanosecond). False when realtime_ns lies
// outside [before, after] (REALTIME was stepped meanwhile) or the two are
// not in order.
bool realtime_to_tsc(const ClockReading& before, const ClockReading& after, int64_t realtime_ns, uint64_t& tsc);

// ---------------------------------------------------------------------------
// A PTP hardware clock, /dev/ptpN.
//
// Cross-timestamps (the choice): the model needs (TSC, PHC) pairs.
//  - kBracket (default): TSC read, clock_gettime(FD_TO_CLOCKID(fd)), TSC
//    read; the narrowest of `tries`. Works with every PHC driver and needs
//    no other clock. Its error is the asymmetry of the syscall around the
//    device read (the bracket is a few us for a PCIe read; the error of the
//    midpoint is a fraction of that, and constant enough that the servo
//    sees it as a fixed offset).
//  - kSysOffsetExtended: PTP_SYS_OFFSET_EXTENDED, in which the driver reads
//    CLOCK_REALTIME right before and after each device read (a bracket of
//    a few hundred ns, around the PCIe transaction itself); the narrowest
//    sample's REALTIME midpoint is mapped to the TSC with realtime_to_tsc()
//    from a TSC-bracketed vDSO REALTIME read on either side of the ioctl
//    (tens of ns each). Falls back to kBracket, for good, if the driver
//    lacks it (EOPNOTSUPP). Not exercised on hardware by the unit tests.
//  PTP_SYS_OFFSET_PRECISE (PTM/ART hardware cross-timestamps) is not used:
//  it pairs the PHC with REALTIME at an instant in the past that no TSC
//  read brackets; mapping it would need the ART-to-TSC ratio from CPUID
//  0x15, for the few NICs that have it.
enum class PhcCrossMethod : uint8_t { kBracket, kSysOffsetExtended };

class PhcClock final : public ClockDriver {
 public:
  // Opens path read-write (steerable) or read-only (read and
  // cross-timestamp only). nullptr with a clear err: no such device,
  // permission denied, not a character device, not a PTP hardware clock.
  static std::unique_ptr<PhcClock> open(const std::string& path, bool writable, std::string& err,
                                        PhcCrossMethod method = PhcCrossMethod::kBracket, int tries = 9);
  ~PhcClock() override;
  PhcClock(const PhcClock&) = delete;
  PhcClock& operator=(const PhcClock&) = delete;

  std::string name() const override { return path_; }
  bool read_ns(int64_t& ns, std::string& err) override;
  bool cross_timestamp(ClockReading& out, std::string& err) override;
  bool set_frequency_ppb(double ppb, std::string& err) override;  // ADJ_FREQUENCY
  bool step_ns(int64_t delta_ns, std::string& err) override;      // ADJ_SETOFFSET | ADJ_NANO
  double max_frequency_ppb() const override { return static_cast<double>(max_adj_ppb_); }

  clockid_t clock_id() const { return clkid_; }
  PhcCrossMethod method() const { return method_; }

 private:
  PhcClock(int fd, std::string path, bool writable, long max_adj_ppb, PhcCrossMethod method, int tries);
  bool cross_bracket(ClockReading& out, std::string& err);
  bool cross_extended(ClockReading& out, std::string& err);

  int fd_;
  clockid_t clkid_;
  std::string path_;
  bool writable_;
  long max_adj_ppb_;  // PTP_CLOCK_GETCAPS max_adj
  PhcCrossMethod method_;
  int tries_;
};

}  // namespace ntp::hwclock
