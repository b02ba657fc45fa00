// The clock the appliance serves and everything that keeps it: the TSC
// timebase and its precision, the timescale built from the clock source
// (timescale.h), a PHC source's reads (phc_source.h), the applier that
// carries out the discipline's orders on every steered clock
// (clock_applier.h) and the drift file. The control loop asks it for the
// time, hands it the engine's orders and publishes the models it returns.
// It logs what it does (the daemon's shell, like main.cc).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "config/config.h"
#include "control/clock_applier.h"
#include "control/ntp/engine.h"
#include "control/phc_source.h"
#include "control/timescale.h"
#include "hwclock/drift_file.h"
#include "hwclock/kernel_state.h"
#include "hwclock/leap.h"
#include "hwclock/tsc.h"

namespace ntp::ctl {

class ServedClock {
 public:
  // Calibrates the TSC, opens the clocks [clock] names, measures the
  // precision and reads the drift file; nullptr (logged, with the file's
  // path and key) when a clock cannot be opened.
  static std::unique_ptr<ServedClock> open(const config::Config& cfg);

  double tsc_hz() const { return tsc_hz_; }
  int8_t precision_log2() const { return precision_log2_; }
  const proto::ClockModelData& published() const { return timescale_->published(); }
  int64_t now_ns() const { return hwclock::model_to_ns(published(), hwclock::read_tsc()); }

  // Reads the source and CLOCK_REALTIME (host, returned to the caller): the
  // model to publish. Once a second, and at attach.
  proto::ClockModelData update(hwclock::CrossTimestamp& host);
  // Not a PHC source, or one read within the holdover: servable.
  bool source_fresh(double now_s) const;
  // The first attach of this process: carries on the model the dataplane
  // serves (our restart) if it is a real one, else starts at the drift
  // file's frequency. The frequency the discipline starts from; resumed
  // says which it was.
  std::optional<double> start(const proto::ClockModelData* served, uint64_t raw_now, bool& resumed);
  double correction_ppb() const { return timescale_->correction_ppb(); }
  // The local clock's own state, for refclock_master (once a second):
  // source = system: the kernel's (adjtimex, read only); phc: the PHC
  // source's (synchronized while read within the holdover, its reading
  // error); virtual: nullopt (the virtual clock is the tests' truth).
  // Changes of the kernel's word are logged.
  std::optional<LocalClockQuality> local_quality(double now_s);

  // The engine's order, and every pass of the loop (a slew's end): the
  // model to publish, if it changed.
  std::optional<proto::ClockModelData> apply(const ClockAdjustment& a);
  std::optional<proto::ClockModelData> poll();
  // Once a second: the followers.
  void tick(bool synchronized);
  // The discipline's frequency into the drift file (hourly; force: now).
  void save_drift(const Engine& engine, bool force, double now_s);

  // Leap seconds, once a second at served time now_ns: the leap file's
  // word for today to the engine (and its expiry warned about daily), then
  // the engine's decided leap (sys, from system_at) into the served model,
  // which applies it stepped or smeared (ntp.leap_smear) and folds it in
  // once it is in. A smear needs the leap before its day (it starts at
  // noon the day before): from the leap file, 36 h ahead.
  void leap_tick(Engine& engine, int64_t now_ns, double now_s);
  void set_leap(const SystemVariables& sys, int64_t now_ns, uint64_t raw_now);

  const ClockApplier& applier() const { return *applier_; }

 private:
  explicit ServedClock(const config::Config& cfg);
  std::optional<proto::ClockModelData> take(const ClockApplier::Result& r);

  const config::Config& cfg_;
  double tsc_hz_ = 0;
  int8_t precision_log2_ = -20;
  std::unique_ptr<Timescale> timescale_;
  std::unique_ptr<PhcSource> source_phc_;  // clock.source = "phc"
  std::unique_ptr<ClockApplier> applier_;
  hwclock::DriftFile drift_;
  std::optional<double> drift_ppb_;  // what it said at start
  uint64_t updates_ = 0;             // update() calls so far
  std::optional<bool> kernel_synced_;  // the kernel's last word, to log its changes
  bool kernel_read_failed_ = false;
  std::optional<hwclock::LeapTable> leap_table_;  // ntp.leap_file
  double leap_warned_s_ = -1e18;                  // the expiry warning, daily
  uint64_t leaps_logged_ = 0;
};

}  // namespace ntp::ctl
