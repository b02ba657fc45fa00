#include "control/phc_source.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace ntp::ctl {

std::unique_ptr<PhcSource> PhcSource::open(const config::Clock& clock, std::string& err) {
  auto phc = hwclock::PhcClock::open(clock.phc, /*writable=*/false, err);
  if (!phc) return nullptr;
  return std::unique_ptr<PhcSource>(new PhcSource(std::move(phc), clock));
}

PhcSource::PhcSource(std::unique_ptr<hwclock::PhcClock> phc, const config::Clock& clock)
    : phc_(std::move(phc)), path_(clock.phc), utc_offset_ns_(int64_t{clock.phc_utc_offset_s} * 1'000'000'000) {}

void PhcSource::read(Timescale& timescale, uint64_t interval_ticks, double now_s, std::vector<std::string>& log) {
  hwclock::ClockReading r;
  std::string err;
  if (!phc_->cross_timestamp(r, err)) {
    // The model runs on from its last fit; the log says so, not every second.
    if (errors_++ % 60 == 0) log.push_back("clock.phc: " + err + " (" + std::to_string(errors_) + " failed reads)");
    failing_ = true;
    return;
  }
  timescale.update_source({r.tsc, r.clock_ns - utc_offset_ns_, r.width_ticks}, interval_ticks);
  if (failing_) log.push_back("clock.phc: " + path_ + " readable again");
  failing_ = false;
  ok_s_ = now_s;
  width_ticks_ = r.width_ticks;
}

int64_t PhcSource::max_error_ns(double now_s, double tsc_hz) const {
  const double half_width_ns = static_cast<double>(width_ticks_) / tsc_hz * 1e9 / 2;
  return std::llround(half_width_ns + std::max(now_s - ok_s_, 0.0) * 1e9 * 15e-6);
}

}  // namespace ntp::ctl
