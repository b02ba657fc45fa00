#include "control/clock_applier.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "hwclock/clock_model.h"

namespace ntp::ctl {

ClockApplier::ClockApplier(Timescale& timescale, double tsc_hz) : timescale_(timescale), ticks_per_ns_(tsc_hz * 1e-9) {}

std::unique_ptr<ClockApplier> ClockApplier::open(const config::Clock& clock, Timescale& timescale, double tsc_hz,
                                                 std::vector<std::string>& log, std::string& err) {
  auto a = std::make_unique<ClockApplier>(timescale, tsc_hz);
  const hwclock::ServoConfig servo = servo_config(clock);
  if (!clock.steer_phc.empty()) {
    auto phc = hwclock::PhcClock::open(clock.steer_phc, /*writable=*/true, err);
    if (!phc) {
      err = "clock.steer_phc: " + err;
      return nullptr;
    }
    a->follow(*phc, int64_t{clock.phc_utc_offset_s} * 1'000'000'000, servo);
    a->owned_.push_back(std::move(phc));
    log.push_back("clock.steer_phc: keeping " + clock.steer_phc + " on the served time (PHC - UTC = " +
                  std::to_string(clock.phc_utc_offset_s) + " s) once synchronized");
  }
  // With source = "system" the discipline's orders go to CLOCK_REALTIME
  // itself (the served time follows it); otherwise it follows the served
  // time like a PHC.
  if (clock.steer_system_clock) {
    auto rt = std::make_unique<hwclock::RealtimeClock>();
    if (clock.source == config::ClockSource::kSystem) {
      rt->set_sync_status(true, -1);  // STA_UNSYNC off: the discipline sets this clock
      a->steer_directly(*rt);
    } else {
      a->follow(*rt, 0, servo);
      log.push_back("clock.steer_system_clock: keeping CLOCK_REALTIME on the served time once synchronized");
    }
    a->owned_.push_back(std::move(rt));
  }
  return a;
}

void ClockApplier::steer_directly(hwclock::ClockDriver& target) { direct_ = &target; }

void ClockApplier::follow(hwclock::ClockDriver& target, int64_t offset_ns, const hwclock::ServoConfig& servo) {
  auto served = [this](uint64_t tsc) { return hwclock::model_to_ns(timescale_.published(), tsc); };
  steered_.push_back(std::make_unique<SteeredClock>(target, served, offset_ns, servo));
}

ClockApplier::Result ClockApplier::apply(const ClockAdjustment& a, uint64_t raw_now) {
  Result r;
  if (direct_) {
    apply_direct(a, raw_now, r);
  } else {
    r.publish = timescale_.adjust(a.step ? a.step_ns : 0, a.freq_ppb, a.slew_ns, a.slew_rate_ppb, raw_now);
  }
  return r;
}

void ClockApplier::apply_direct(const ClockAdjustment& a, uint64_t raw_now, Result& r) {
  // A new order replaces the one in force (the engine has carried what was
  // left of its slew into this one).
  direct_end_raw_ = 0;
  std::string err;
  if (a.step && a.step_ns != 0 && !direct_->step_ns(a.step_ns, err)) {
    r.errors.push_back("steering the system clock: " + err);
    return;
  }
  const hwclock::KernelSlew k = hwclock::kernel_slew(a.freq_ppb, a.slew_ns, a.slew_rate_ppb, direct_->max_frequency_ppb());
  if (!direct_->set_frequency_ppb(k.applied_ppb, err)) {
    r.errors.push_back("steering the system clock: " + err);
    return;
  }
  direct_order_ = k;
  const double end_ns = k.end_ns();
  if (end_ns > 0 && std::isfinite(end_ns)) {
    // end_ns is on the target's own time, which runs (1 + applied) / (1 +
    // base) as fast as the timebase once the base cancels the oscillator.
    const double raw_ns = end_ns * (1.0 + k.base_ppb * 1e-9) / (1.0 + k.applied_ppb * 1e-9);
    direct_end_raw_ = raw_now + std::max<uint64_t>(1, static_cast<uint64_t>(std::llround(raw_ns * ticks_per_ns_)));
  }
}

ClockApplier::Result ClockApplier::poll(uint64_t raw_now) {
  Result r;
  if (const uint64_t end = timescale_.slew_end_raw(); end && raw_now >= end) r.publish = timescale_.refresh(raw_now);
  if (!direct_ || !direct_end_raw_ || raw_now < direct_end_raw_) return r;
  direct_end_raw_ = 0;
  std::string err;
  if (!direct_->set_frequency_ppb(direct_order_.base_ppb, err)) {
    r.errors.push_back("steering the system clock: " + err);
    return r;
  }
  direct_order_.applied_ppb = direct_order_.base_ppb;
  direct_order_.slew_ns = 0;
  return r;
}

ClockApplier::Result ClockApplier::tick(bool synchronized) {
  Result r;
  for (auto& c : steered_)
    for (std::string& line : c->tick(synchronized)) r.log.push_back(std::move(line));
  return r;
}

}  // namespace ntp::ctl
