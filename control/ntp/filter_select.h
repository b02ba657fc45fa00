// RFC 5905 mitigation: the clock filter (section 10, one per association)
// and the system process's selection, cluster and combine algorithms
// (section 11.2), after the reference code of appendix A.5.2 and A.5.5.
// Pure: no I/O, no clock reads; the caller passes the time. All times and
// durations are signed 64-bit ns; time arguments are on the local (served)
// timescale in Unix ns.
//
// Where the appendix code (which the RFC calls "non-normative examples")
// has known slips, we follow the section text and say so next to the code.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "control/ntp/system_state.h"  // kPhiPpb: PHI, 15 ppm

namespace ntp::ctl {

// ------------------------------------------------------------ parameters
// RFC 5905 section 7.2 and appendix A.1.1, in our units.

// NSTAGE: "clock register stages".
inline constexpr int kFilterStages = 8;
// MAXDISP: "maximum dispersion (16 s)".
inline constexpr int64_t kMaxDispersionNs = 16'000'000'000LL;
// MAXDIST: the distance threshold. RFC A.1.1 has 1 s; we use 1.5 s, the
// value of the reference implementation (ntpd `tos maxdist`), as asked.
inline constexpr int64_t kMaxDistanceNs = 1'500'000'000LL;
// MINDISP as RFC A.1.1 defines it: "minimum dispersion increment (s)" .01.
inline constexpr int64_t kRfcMinDispersionNs = 10'000'000LL;
// MINDISP as we use it, the default of the functions below: 1 us. It
// bounds the delay term of the root distance from below and, in the
// system variables update (A.5.5.4, the caller's), the root dispersion
// increment per hop. Both uses only need it positive: no zero distance to
// divide by in the 1/distance combine weights, and a strictly growing root
// dispersion so peers at one stratum cannot loop. 10 ms suits millisecond
// Internet paths; our hardware-timestamped delays are tens of us, and a
// 10 ms floor would give every LAN source the same 5 ms delay term
// (flattening the combine weights) and add 10 ms of root dispersion per
// hop. 1 us is about the precision of our timestamps. Configurable: pass
// another value to root_distance_ns() and select_clock().
inline constexpr int64_t kMinDispersionNs = 1'000LL;
// NMIN: "minimum survivors" (section 11.1, figure 23).
inline constexpr int kMinClusterSurvivors = 3;
// CMIN: "minimum candidates" (section 11.1, figure 23).
inline constexpr int kMinCandidates = 1;
// SGATE: "spike gate (clock filter)".
inline constexpr int kSpikeGate = 3;

// PHI * interval: the dispersion a clock of frequency tolerance PHI (15
// ppm) accumulates over interval_ns, rounded up (a dispersion is never
// understated); 0 for interval_ns <= 0. One second gives exactly 15000 ns.
int64_t phi_growth_ns(int64_t interval_ns);

// RFC 5905 fit(), distance test: "A distance error occurs if the root
// distance exceeds the distance threshold plus an increment equal to one
// poll interval": MAXDIST + PHI * 2^system_poll_log2 s.
int64_t max_root_distance_ns(int8_t system_poll_log2);

// ------------------------------------------------------------ clock filter

struct FilterStage {
  int64_t offset_ns = 0;      // theta of the sample
  int64_t delay_ns = 0;       // delta of the sample
  int64_t dispersion_ns = 0;  // epsilon of the sample, grown by PHI up to the last shift
  int64_t time_ns = 0;        // when it was shifted in; 0 for the initial dummies
  bool valid = false;         // false: a dummy (initial, unanswered poll) or a dumped spike
  friend bool operator==(const FilterStage&, const FilterStage&) = default;
};

// RFC 5905 section 10: "an 8-stage shift register" of (theta, delta,
// epsilon, t) tuples, one per association.
class ClockFilter {
 public:
  // precision_ns: the system precision s.rho (2^precision_log2 s). "The psi
  // is bounded from below by the system precision" and so is the delay
  // ("clamped not less than s.rho", section 8). The default, 1 ns, is
  // hardly a floor: pass or set the measured system precision.
  explicit ClockFilter(int64_t precision_ns = 1);
  // For a precision measured after construction; takes effect from the
  // next sample (the current jitter is not recomputed).
  void set_precision_ns(int64_t precision_ns);

  // Shifts in a sample taken at now_ns (the time of arrival). dispersion_ns
  // is the sample's epsilon(t_0) = r.rho + s.rho + PHI * (T4 - T1) (section
  // 9.1; phi_growth_ns() computes the last term). Returns true when the
  // peer estimate changed and the system process should run: the best
  // (lowest-delay) sample is later than the one last used and passed the
  // popcorn-spike gate. When it returns false, offset, delay, jitter and
  // update time are unchanged; the dispersion is always recomputed from the
  // register.
  bool add(int64_t offset_ns, int64_t delay_ns, int64_t dispersion_ns, int64_t now_ns, int8_t system_poll_log2);

  // RFC 5905 section 10: "If the three low-order bits of the reach register
  // are zero ... the poll process calls the clock filter algorithm with a
  // dummy tuple just as if the tuple had arrived from the network." Shifts
  // in (0, MAXDISP, MAXDISP, now_ns). The estimate's dispersion rises; once
  // no valid stage is left it is about MAXDISP, far past MAXDIST. Returns
  // true, like add(), in the rare case the dummy pushed out the stage last
  // used and a later, unused sample became the best. Without the system
  // poll exponent (the one-argument form) the spike gate's window is that
  // of MAXPOLL 17 ("maximum poll exponent (36 h)"): a promoted spike is
  // dumped.
  bool add_unreachable(int64_t now_ns, int8_t system_poll_log2 = 17);

  // Back to the initial condition, "the dummy tuple (0, MAXDISP, MAXDISP,
  // 0)" in every stage: after the clock was stepped ("all associations MUST
  // be reset", section 11.2.3) or when the association restarts.
  void clear();

  // The discipline changed our clock at t0_ns: its base frequency by
  // dfreq_ppb, and the phase still to be slewed in by dphase_ns. Offsets
  // are kept as predictions of the offset once all ordered corrections are
  // done, so each stage is re-expressed as if our clock had run at the new
  // frequency all along and the new phase were already in: offset +=
  // dfreq * (t0 - t_sample) - dphase. A low-delay sample taken before the
  // change then still predicts the offset (chrony corrects its samples the
  // same way); without this a fast loop acts on stale offsets and
  // oscillates.
  void slew(int64_t t0_ns, double dfreq_ppb, double dphase_ns);

  int64_t offset_ns() const { return offset_ns_; }  // theta: peer offset
  int64_t delay_ns() const { return delay_ns_; }    // delta: peer delay
  // epsilon: the peer dispersion as of the last shift, plus PHI for the time
  // since ("epsilon(t) = epsilon(t_0) + PHI * (t-t_0)"), capped at MAXDISP.
  // This already is the whole dispersion term of the root distance: do not
  // add PHI * (now - update_time_ns()) again.
  int64_t dispersion_ns(int64_t now_ns) const;
  int64_t jitter_ns() const { return jitter_ns_; }  // psi: peer jitter
  // p.t: time of arrival of the sample last used; 0 = none yet.
  int64_t update_time_ns() const { return has_estimate_ ? update_time_ns_ : 0; }
  bool has_estimate() const { return has_estimate_; }
  int valid_stages() const;  // samples in the register (not dummies)
  // The register, newest first; dispersions as of the last shift.
  std::array<FilterStage, kFilterStages> stages() const { return stages_; }

 private:
  void shift(const FilterStage& stage, int64_t now_ns);
  bool evaluate(int64_t previous_dispersion_ns, int8_t system_poll_log2);
  std::array<int, kFilterStages> sorted_by_delay() const;
  int64_t register_dispersion_ns(const std::array<int, kFilterStages>& order) const;
  int64_t jitter_about_ns(const std::array<int, kFilterStages>& order) const;

  int64_t precision_ns_;
  std::array<FilterStage, kFilterStages> stages_{};
  bool has_shift_ = false;
  int64_t last_shift_ns_ = 0;  // stage dispersions are grown up to here
  bool has_estimate_ = false;
  int64_t offset_ns_ = 0;
  int64_t delay_ns_ = 0;
  int64_t dispersion_ns_ = kMaxDispersionNs;  // at last_shift_ns_
  int64_t jitter_ns_ = 0;
  int64_t update_time_ns_ = 0;
};

// ------------------------------------------------------------ system process

// An association that passed the fit checks (the caller does those:
// stratum, reach, loop, distance; see max_root_distance_ns()).
struct Candidate {
  uint32_t id = 0;              // caller's handle
  int64_t offset_ns = 0;        // ClockFilter::offset_ns()
  int64_t delay_ns = 0;         // ClockFilter::delay_ns()
  int64_t dispersion_ns = 0;    // ClockFilter::dispersion_ns(now): already grown to now
  int64_t jitter_ns = 0;        // ClockFilter::jitter_ns()
  int64_t root_delay_ns = 0;    // from the peer's packets
  int64_t root_dispersion_ns = 0;
  uint8_t stratum = 0;
  bool prefer = false;
};

// RFC 5905 A.5.5.2 root_dist(): "half the total delay plus total dispersion
// plus peer jitter":
//   lambda = max(MINDISP, rootdelay + delay) / 2 + rootdisp + disp + jitter
// (the RFC's + PHI * (c.t - p.t) is already in c.dispersion_ns). Rounded up.
int64_t root_distance_ns(const Candidate& c, int64_t min_dispersion_ns = kMinDispersionNs);

struct Selection {
  // Intersection (section 11.2.1). majority: a majority clique was found;
  // if not, every candidate is listed as a falseticker and there is no
  // system peer.
  bool majority = false;
  int64_t low_ns = 0, high_ns = 0;     // the intersection interval [l, u] when majority
  std::vector<uint32_t> truechimers;   // midpoint inside [l, u], in input order
  std::vector<uint32_t> falsetickers;  // midpoint outside [l, u], in input order
  // Clustering (section 11.2.2).
  std::vector<uint32_t> survivors;     // best first (stratum * MAXDIST + root distance)
  std::vector<uint32_t> outliers;      // truechimers discarded by clustering, in discard order
  std::optional<uint32_t> system_peer;
  // Combining (section 11.2.3), meaningful when system_peer is set.
  int64_t offset_ns = 0;               // THETA; the prefer peer's own offset when it is the system peer
  int64_t selection_jitter_ns = 0;     // PSI_s: weighted RMS of survivor offsets about the system peer's
  int64_t jitter_ns = 0;               // PSI = sqrt(PSI_s^2 + PSI_p^2), PSI_p: the system peer's jitter
};

// Selection, clustering and combining over the fit candidates. The system
// peer is the prefer peer if it survived clustering; else the current
// system peer if it survived and has the stratum of the first survivor
// (A.5.5.1's anti-clockhop rule); else the first survivor.
Selection select_clock(const std::vector<Candidate>& candidates, std::optional<uint32_t> current_system_peer,
                       int64_t min_dispersion_ns = kMinDispersionNs);

}  // namespace ntp::ctl
