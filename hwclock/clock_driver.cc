// PTP hardware clocks (see clock_driver.h).
// CLOCK_REALTIME is in system_clock.cc.
#include "hwclock/clock_driver.h"

#include <fcntl.h>
#include <linux/ptp_clock.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/timex.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "hwclock/clock_adjtime.h"
#include "hwclock/tsc.h"

namespace ntp::hwclock {

namespace {

std::string errno_text(int e) { return std::strerror(e); }

int64_t to_ns(const timespec& ts) { return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec; }
int64_t to_ns(const ptp_clock_time& t) { return static_cast<int64_t>(t.sec) * 1'000'000'000 + t.nsec; }

}  // namespace

bool realtime_to_tsc(const ClockReading& before, const ClockReading& after, int64_t realtime_ns, uint64_t& tsc) {
  if (after.clock_ns <= before.clock_ns || after.tsc <= before.tsc) return false;
  if (realtime_ns < before.clock_ns || realtime_ns > after.clock_ns) return false;
  const long double frac = static_cast<long double>(realtime_ns - before.clock_ns) /
                           static_cast<long double>(after.clock_ns - before.clock_ns);
  tsc = before.tsc + static_cast<uint64_t>(std::llroundl(frac * static_cast<long double>(after.tsc - before.tsc)));
  return true;
}

// ---------------------------------------------------------------------------
// PhcClock

std::unique_ptr<PhcClock> PhcClock::open(const std::string& path, bool writable, std::string& err,
                                         PhcCrossMethod method, int tries) {
  const int fd = ::open(path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    switch (e) {
      case ENOENT:
      case ENXIO:
      case ENODEV:
        err = path + ": no such device (is the NIC's PTP driver loaded? the PHCs are listed in /sys/class/ptp)";
        break;
      case EACCES:
      case EPERM:
      case EROFS:
        err = path + ": permission denied opening it " + (writable ? "read-write (steering a PHC needs write access)"
                                                                   : "read-only");
        break;
      default:
        err = path + ": " + errno_text(e);
    }
    return nullptr;
  }
  struct stat st{};
  if (fstat(fd, &st) < 0 || !S_ISCHR(st.st_mode)) {
    ::close(fd);
    err = path + ": not a character device, so not a PTP hardware clock";
    return nullptr;
  }
  ptp_clock_caps caps{};
  if (ioctl(fd, PTP_CLOCK_GETCAPS, &caps) < 0) {
    const int e = errno;
    ::close(fd);
    err = path + ": not a PTP hardware clock (PTP_CLOCK_GETCAPS: " + errno_text(e) + ")";
    return nullptr;
  }
  timespec ts{};
  if (clock_gettime(fd_to_clockid(fd), &ts) < 0) {
    const int e = errno;
    ::close(fd);
    err = path + ": cannot read the clock (" + errno_text(e) + ")";
    return nullptr;
  }
  return std::unique_ptr<PhcClock>(new PhcClock(fd, path, writable, caps.max_adj, method, tries));
}

PhcClock::PhcClock(int fd, std::string path, bool writable, long max_adj_ppb, PhcCrossMethod method, int tries)
    : fd_(fd),
      clkid_(fd_to_clockid(fd)),
      path_(std::move(path)),
      writable_(writable),
      max_adj_ppb_(std::max(max_adj_ppb, 0L)),
      method_(method),
      tries_(std::max(tries, 1)) {}

PhcClock::~PhcClock() { ::close(fd_); }

bool PhcClock::read_ns(int64_t& ns, std::string& err) {
  timespec ts{};
  if (clock_gettime(clkid_, &ts) < 0) {
    err = path_ + ": clock_gettime: " + errno_text(errno);
    return false;
  }
  ns = to_ns(ts);
  return true;
}

bool PhcClock::cross_timestamp(ClockReading& out, std::string& err) {
  if (method_ == PhcCrossMethod::kSysOffsetExtended) return cross_extended(out, err);
  return cross_bracket(out, err);
}

bool PhcClock::cross_bracket(ClockReading& out, std::string& err) {
  ClockReading best;
  best.width_ticks = std::numeric_limits<uint64_t>::max();
  for (int i = 0; i < tries_; ++i) {
    timespec ts{};
    const uint64_t t0 = read_tsc();
    const int rc = clock_gettime(clkid_, &ts);
    const uint64_t t1 = read_tsc();
    if (rc < 0) {
      err = path_ + ": clock_gettime: " + errno_text(errno);
      return false;
    }
    if (t1 - t0 < best.width_ticks) best = ClockReading{t0 + (t1 - t0) / 2, to_ns(ts), t1 - t0};
  }
  out = best;
  return true;
}

bool PhcClock::cross_extended(ClockReading& out, std::string& err) {
  ptp_sys_offset_extended req{};  // rsv[] zero: the system clock is CLOCK_REALTIME
  req.n_samples = static_cast<unsigned>(std::min(tries_, PTP_MAX_SAMPLES));
  const CrossTimestamp a = hwclock::cross_timestamp(CLOCK_REALTIME, 3);
  if (ioctl(fd_, PTP_SYS_OFFSET_EXTENDED, &req) < 0) {
    const int e = errno;
    if (e == EOPNOTSUPP || e == ENOTTY || e == EINVAL) {
      method_ = PhcCrossMethod::kBracket;  // the driver has no gettimex64: for good
      return cross_bracket(out, err);
    }
    err = path_ + ": PTP_SYS_OFFSET_EXTENDED: " + errno_text(e);
    return false;
  }
  const CrossTimestamp b = hwclock::cross_timestamp(CLOCK_REALTIME, 3);
  const ClockReading before{a.raw, a.clock_ns, a.width_ticks}, after{b.raw, b.clock_ns, b.width_ticks};
  unsigned best = 0;
  int64_t best_w = std::numeric_limits<int64_t>::max();
  for (unsigned i = 0; i < req.n_samples; ++i) {
    const int64_t w = to_ns(req.ts[i][2]) - to_ns(req.ts[i][0]);
    if (w >= 0 && w < best_w) {
      best_w = w;
      best = i;
    }
  }
  uint64_t tsc = 0;
  const int64_t sys_mid = to_ns(req.ts[best][0]) + best_w / 2;
  if (best_w == std::numeric_limits<int64_t>::max() || !realtime_to_tsc(before, after, sys_mid, tsc)) {
    return cross_bracket(out, err);  // REALTIME stepped meanwhile: this once the plain way
  }
  const double ticks_per_ns =
      static_cast<double>(b.raw - a.raw) / static_cast<double>(std::max<int64_t>(b.clock_ns - a.clock_ns, 1));
  out.tsc = tsc;
  out.clock_ns = to_ns(req.ts[best][1]);
  out.width_ticks = static_cast<uint64_t>(static_cast<double>(best_w) * ticks_per_ns) +
                    std::max(a.width_ticks, b.width_ticks);
  return true;
}

bool PhcClock::set_frequency_ppb(double ppb, std::string& err) {
  if (!writable_) {
    err = path_ + ": opened read-only, cannot be steered";
    return false;
  }
  if (!std::isfinite(ppb)) {
    err = path_ + ": frequency correction is not a number";
    return false;
  }
  if (max_adj_ppb_ <= 0) {
    err = path_ + ": the clock takes no frequency corrections (max_adj 0)";
    return false;
  }
  if (const int e = adjtime_frequency(clkid_, phc_scaled_ppm(ppb, max_adj_ppb_)); e != 0) {
    err = path_ + ": clock_adjtime(ADJ_FREQUENCY): " + errno_text(e) +
          (e == EBUSY ? " (the PHC has virtual clocks and runs free)" : "");
    return false;
  }
  return true;
}

bool PhcClock::step_ns(int64_t delta_ns, std::string& err) {
  if (!writable_) {
    err = path_ + ": opened read-only, cannot be steered";
    return false;
  }
  if (const int e = adjtime_step(clkid_, delta_ns); e != 0) {
    err = path_ + ": clock_adjtime(ADJ_SETOFFSET): " + errno_text(e) +
          (e == EBUSY ? " (the PHC has virtual clocks and runs free)" : "");
    return false;
  }
  return true;
}

}  // namespace ntp::hwclock
