#include "control/steering.h"

#include <cmath>
#include <cstdio>
#include <utility>

namespace ntp::ctl {

namespace {

std::string ms_text(double ns) {
  char b[48];
  std::snprintf(b, sizeof b, "%+.6f ms", ns / 1e6);
  return b;
}

}  // namespace

SteeredClock::SteeredClock(hwclock::ClockDriver& target, std::function<int64_t(uint64_t tsc)> served_utc_ns_at_tsc,
                           int64_t offset_ns, const hwclock::ServoConfig& servo)
    : target_(target), served_(std::move(served_utc_ns_at_tsc)), offset_ns_(offset_ns), servo_cfg_(servo) {
  status_.name = target_.name();
  status_.state = hwclock::to_string(hwclock::ServoState::kNotSet);
}

std::vector<std::string> SteeredClock::tick(bool synchronized) {
  std::vector<std::string> log;
  if (!synchronized) {
    if (status_.following) {
      status_.following = false;
      std::string err;
      if (follower_ && !follower_->settle(err)) {
        status_.errors++;
        log.push_back(status_.name + ": " + err);
      }
      log.push_back(status_.name + ": the served time is unsynchronized: no longer following it; running at " +
                    std::to_string(follower_ ? follower_->base_ppb() / 1000.0 : 0.0) + " ppm");
    }
    return log;
  }
  if (!follower_) {
    // A PHC may start anywhere (1970 after a reset): never panic, step.
    hwclock::ServoConfig c = servo_cfg_;
    c.panic_threshold_ns = 0;
    follower_ = std::make_unique<hwclock::ClockFollower>(
        target_, [this](uint64_t tsc) { return served_(tsc) + offset_ns_; }, c);
  }
  if (!status_.following) log.push_back(status_.name + ": following the served time");
  const hwclock::ClockFollower::Update u = follower_->update(1'000'000'000);
  status_.updates++;
  if (!u.ok) {
    status_.errors++;
    status_.following = false;
    // An unreadable or unsteerable target says so every time; log the first
    // few and then every 60th.
    if (errors_logged_++ < 3 || status_.errors % 60 == 0) log.push_back(status_.name + ": " + u.err);
    return log;
  }
  status_.following = true;
  status_.offset_ns = u.offset_ns;
  status_.frequency_ppm = u.applied_ppb / 1000.0;
  status_.state = hwclock::to_string(u.servo.state);
  if (u.stepped) {
    status_.steps++;
    log.push_back(status_.name + ": stepped by " + ms_text(static_cast<double>(u.servo.step_ns)));
  }
  if (u.servo.action == hwclock::ServoAction::kPanic)
    log.push_back(status_.name + ": offset " + ms_text(static_cast<double>(u.offset_ns)) +
                  " is beyond the panic threshold: not steering it");
  return log;
}

}  // namespace ntp::ctl
