// clock.source = "phc": the PTP hardware clock the served timescale
// follows, read against the TSC once a second and handed to the timescale
// on UTC (its reading less clock.phc_utc_offset_s). A PHC that has not been
// read for longer than the holdover is not served as synchronized time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "control/timescale.h"
#include "hwclock/clock_driver.h"

namespace ntp::ctl {

class PhcSource {
 public:
  // Opens clock.phc read-only; nullptr with err when it is not a PTP clock.
  static std::unique_ptr<PhcSource> open(const config::Clock& clock, std::string& err);

  // One reading into the timescale; what went wrong or right again goes to
  // log (the first failure, then every 60th, and the recovery).
  void read(Timescale& timescale, uint64_t interval_ticks, double now_s, std::vector<std::string>& log);
  // Read within holdover_s of now_s.
  bool fresh(double now_s, double holdover_s) const { return now_s - ok_s_ < holdover_s; }
  // What we know of the PHC's reading error at now_s: half the last
  // cross-timestamp's bracket, growing at PHI (15 ppm, RFC 5905) since it.
  // The PHC's own error against UTC is its discipline's (ptp4l's) and not
  // known here.
  int64_t max_error_ns(double now_s, double tsc_hz) const;

 private:
  PhcSource(std::unique_ptr<hwclock::PhcClock> phc, const config::Clock& clock);

  std::unique_ptr<hwclock::PhcClock> phc_;
  std::string path_;
  int64_t utc_offset_ns_;
  uint64_t errors_ = 0;
  bool failing_ = false;
  double ok_s_ = -1e9;  // when it was last read
  uint64_t width_ticks_ = 0;  // the last read's cross-timestamp bracket
};

}  // namespace ntp::ctl
