// The clock discipline servo: takes the system offset once per update of the
// system peer and says what to do to the clock: a base frequency correction,
// a phase to slew in on top of it, or a step. Like linuxptp's servo.h/pi.c
// it only computes: it reads no clock and does no I/O. The caller applies
// the result (hwclock::Correction) to the published clock model or to a
// kernel clock.
//
// Conventions (all samples, all states):
//   offset_ns  reference minus our clock (positive: our clock is behind),
//              PREDICTED: the measured offset minus whatever phase the
//              caller was told to slew in and has not yet (Correction::
//              slew_left_at). Offsets are thus what the clock will show
//              once every order given so far is carried out, which makes a
//              late or early sample mean the same as an on-time one.
//   freq_ppb   the base frequency correction relative to the uncorrected
//              oscillator, from now on: positive makes our clock run faster.
//              It is the frequency estimate; |freq_ppb| <= max_frequency.
//   phase_ns   (kSlew) the phase to slew in on top of the base, in addition
//              to what is still to come of earlier orders. The caller picks
//              the rate: the whole amount over one poll interval, no faster
//              than the frequency limit allows on top of the base
//              (slew_rate_ppb() below). The amount is not clamped, the rate
//              is: a large offset is slewed out at the maximum rate.
//   step_ns    (kStep) added to our clock: our_clock += step_ns.
//
// How the caller applies a ServoOutput:
//   kSlew    run at freq_ppb; slew phase_ns more.
//   kStep    step by step_ns, run at freq_ppb, drop any phase still to come,
//            and CLEAR THE CLOCK FILTER of every association (their samples
//            are from before the step; ntpd and chrony do the same).
//   kIgnore  the offset was not used (a spike, see kSpike): run at freq_ppb
//            and drop any phase still to come.
//   kPanic   apply nothing: the offset is beyond the panic threshold. The
//            caller logs it and refuses to discipline (like ntpd, which
//            exits: an operator must set the clock). The servo is unchanged.
//
// States and decisions:
//   kNotSet        nothing is slewed until the frequency is known (so that
//                  the samples measure the oscillator alone): it is measured
//                  from three samples half a baseline apart whose two
//                  halves agree (linuxptp pi.c case 1, made robust against
//                  an upstream that moves meanwhile); then the whole offset
//                  is slewed out -> kSynchronized. Offsets beyond the step
//                  threshold are stepped at once, and the measurement goes
//                  on across the step.
//   kFrequencySet  (drift file, reset() with a known frequency, or after a
//                  step in locked operation) the next sample steps if beyond
//                  the threshold, else its whole offset is slewed out ->
//                  kSynchronized.
//   kSynchronized  the PI below. An offset beyond the step threshold is a
//                  spike (-> kSpike, kIgnore) until stepout_samples
//                  consecutive samples are beyond it; that one steps.
//   any state      |offset| > panic threshold -> kPanic, nothing changes.
//
// The loop (locked operation), per sample, with T the poll interval and dt
// the time since the last used sample:
//   phase = Kp * offset                    proportional: a fraction of the
//                                          offset is slewed out per update
//   freq += Ki * offset * dt / max(dt, T)^2
//                                          integral: the frequency estimate
// With predicted offsets the loop is the same in units of updates whatever
// dt is: the phase ordered at an update is in by the next prediction, and
// a late sample (dt > T) holds proportionally more phase for the same
// frequency error, hence the weight 1/dt. Starting (and restarting after a
// step) by slewing out the whole offset keeps that offset, which is phase,
// out of the integral, which only ever sees what the frequency error adds
// between updates.
//
// Anti-windup: the frequency estimate stays within +-max_frequency_ppb.
#pragma once

#include <cstdint>
#include <optional>

namespace ntp::hwclock {

enum class ServoState : uint8_t {
  kNotSet,        // no frequency yet: measuring it from the first two samples
  kFrequencySet,  // frequency known (drift file, reset(), a step), no update since
  kSynchronized,  // locked PI operation
  kSpike,         // the last offset was beyond the step threshold and ignored
};
// "clock not set", "frequency set", "clock synchronized", "clock spike"
const char* to_string(ServoState s);

enum class ServoAction : uint8_t { kIgnore, kSlew, kStep, kPanic };
const char* to_string(ServoAction a);  // "ignore", "slew", "step", "panic"

// Gains per update (dimensionless), tuned by the simulations in
// tests/sim/test_servo_sim.cc and tests/sim/test_engine_sim.cc:
//  - Kp = 0.2: a fifth of the offset is slewed out per update. It sets the
//    trade-off between speed and noise: the clock follows a fraction
//    ~sqrt(Kp/(2-Kp)) of the measurement noise.
//  - Ki = Kp^2/4 = 0.01: critical damping (double pole at 1 - Kp/2 = 0.9 per
//    update: frequency errors decay over ~10 updates, no overshoot).
// The loop scales with the poll interval, so at poll 2^17 s its time
// constant is days, as ntpd's; the NTP poll logic decides the interval.
inline constexpr double kDefaultKp = 0.2;
inline constexpr double kDefaultKi = kDefaultKp * kDefaultKp / 4;

struct ServoConfig {
  int64_t step_threshold_ns = 128'000'000;        // 0: never step (and no spike detection)
  int64_t panic_threshold_ns = 1000'000'000'000;  // 0: never panic
  double max_frequency_ppb = 500'000;             // |freq_ppb| never exceeds this, nor does base + slew rate
  // From the drift file: start in kFrequencySet and run the PI from it at
  // the first sample (no two-sample frequency measurement).
  std::optional<double> initial_frequency_ppb;
  // An offset beyond the step threshold in locked operation must persist
  // this many consecutive samples before a step (the earlier ones are
  // ignored as spikes, like ntpd's stepout). 1 (or less): step at once.
  int stepout_samples = 3;
  double kp = kDefaultKp;  // (0, 1]
  double ki = kDefaultKi;  // [0, 1]; at most kp^2/4 for no overshoot
};

struct ServoOutput {
  ServoAction action = ServoAction::kIgnore;
  int64_t step_ns = 0;     // kStep only: add to our clock
  double freq_ppb = 0;     // base frequency correction from now on
  double phase_ns = 0;     // kSlew only: phase to slew in on top of the base
  ServoState state = ServoState::kNotSet;  // after this sample
  bool saturated = false;  // the frequency estimate is at +-max_frequency_ppb
};

// The least time between the two samples that measure the frequency in
// kNotSet (earlier ones are ignored).
int64_t frequency_baseline_ns(int64_t poll_ns);

// How fast to slew `slew_ns` on top of `base_ppb`: the whole amount over one
// interval, but never making |base + rate| exceed max_frequency_ppb (at
// least 1 ppm, so a slew always ends). Signed like slew_ns.
double slew_rate_ppb(double slew_ns, double base_ppb, int64_t interval_ns, double max_frequency_ppb);

class Servo {
 public:
  explicit Servo(ServoConfig cfg);

  // One sample: the predicted offset_ns (see the conventions) measured at
  // local_ns (our clock's reading at the measurement; the servo subtracts
  // its own steps from the difference of two local_ns, so after a kStep
  // pass times from the stepped clock), and poll_interval_ns, the interval
  // until the next sample is expected (2^poll s; <= 0 is taken as 1 s). In
  // kNotSet samples less than frequency_baseline_ns() after the first are
  // ignored (kIgnore: too soon to measure a frequency).
  // error_bound_ns (optional, <= 0: none) bounds the offset's error (half
  // the round-trip delay of the sample): the frequency measurement's
  // agreement test allows for it.
  // pending_ns is the phase ordered earlier and still to come (Correction::
  // slew_left_at): offset_ns + pending_ns is the offset the clock has now,
  // which the panic and step thresholds apply to and a step corrects.
  ServoOutput sample(int64_t offset_ns, int64_t local_ns, int64_t poll_interval_ns, int64_t error_bound_ns = 0,
                     int64_t pending_ns = 0);

  // The frequency estimate, ppb: what to store in the drift file. 0 in
  // kNotSet before a measurement (or the initial frequency).
  double frequency_ppb() const { return freq_est_ppb_; }
  ServoState state() const { return state_; }
  const ServoConfig& config() const { return cfg_; }

  // Forget the sample history (e.g. the caller stepped the clock on its own,
  // or the system peer changed). A frequency estimate, if any, is kept: the
  // state becomes kFrequencySet and the next sample is a first update.
  // Without one it becomes kNotSet.
  void reset();

 private:
  ServoOutput measure_frequency(int64_t offset_ns, int64_t local_ns, int64_t poll_ns, int64_t error_bound_ns,
                                bool beyond_step);
  ServoOutput first_update(int64_t offset_ns, int64_t local_ns, int64_t poll_ns);
  ServoOutput locked(int64_t offset_ns, int64_t local_ns, int64_t poll_ns);
  ServoOutput step(int64_t offset_ns, int64_t local_ns, int64_t poll_ns);
  double clamp_ppb(double f) const;
  ServoOutput done(ServoAction a, int64_t offset_ns, int64_t local_ns, int64_t poll_ns, double phase_ns);

  ServoConfig cfg_;
  ServoState state_;
  double freq_est_ppb_ = 0;
  bool have_freq_ = false;
  int spike_count_ = 0;
  // The last sample that was used (not ignored, not panicked), with the step
  // ordered at it already applied:
  bool have_last_ = false;
  int64_t last_offset_ns_ = 0;   // its offset minus the step ordered at it
  int64_t last_local_ns_ = 0;    // its local time plus the step ordered at it
  int64_t last_poll_ns_ = 0;     // the interval passed with it
  // kNotSet: the frequency measurement's first sample and first half.
  bool have_mid_ = false;
  double mid_slope_ = 0;
  double mid_dt_ns_ = 1;
  int64_t last_bound_ns_ = 0;
  int64_t first_bound_ns_ = 0;
  int64_t first_offset_ns_ = 0;
  int64_t first_local_ns_ = 0;
};

}  // namespace ntp::hwclock
