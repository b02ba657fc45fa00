#include "control/ntp/filter_select.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace ntp::ctl {
namespace {

constexpr int64_t kNsPerS = 1'000'000'000LL;
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

int64_t saturate(__int128 v) {
  if (v > kInt64Max) return kInt64Max;
  if (v < std::numeric_limits<int64_t>::min()) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(v);
}

// ceil(sqrt(v)), exact.
int64_t isqrt_ceil(unsigned __int128 v) {
  if (v == 0) return 0;
  auto r = static_cast<unsigned __int128>(std::sqrt(static_cast<long double>(v)));
  while (r * r > v) --r;
  while ((r + 1) * (r + 1) <= v) ++r;
  if (r * r < v) ++r;
  return saturate(static_cast<__int128>(r));
}

// 2^poll_log2 s in ns; the exponent clamped so the result fits easily.
int64_t poll_interval_ns(int8_t poll_log2) {
  const int p = std::clamp<int>(poll_log2, -30, 30);
  return p >= 0 ? kNsPerS << p : kNsPerS >> -p;
}

int64_t clamp_dispersion(int64_t d) { return std::clamp<int64_t>(d, 0, kMaxDispersionNs); }

// A stage the filter may pick: a real sample whose dispersion has not run
// out (the reference implementation likewise sorts "samples ... greater
// than the maximum dispersion" last and leaves them out of the jitter).
bool usable(const FilterStage& s) { return s.valid && s.dispersion_ns < kMaxDispersionNs; }

}  // namespace

int64_t phi_growth_ns(int64_t interval_ns) {
  if (interval_ns <= 0) return 0;
  const __int128 num = static_cast<__int128>(interval_ns) * kPhiPpb;  // ppb: 1e-9
  return saturate((num + kNsPerS - 1) / kNsPerS);
}

int64_t max_root_distance_ns(int8_t system_poll_log2) {
  return kMaxDistanceNs + phi_growth_ns(poll_interval_ns(system_poll_log2));
}

// ------------------------------------------------------------ clock filter

ClockFilter::ClockFilter(int64_t precision_ns) : precision_ns_(std::max<int64_t>(precision_ns, 0)) { clear(); }

void ClockFilter::set_precision_ns(int64_t precision_ns) { precision_ns_ = std::max<int64_t>(precision_ns, 0); }

void ClockFilter::clear() {
  // Section 10: "Initially, the tuples of all stages are set to the dummy
  // tuple (0, MAXDISP, MAXDISP, 0)." A.5.2 clear(): "p->disp = MAXDISP;
  // p->jitter = LOG2D(s.precision);".
  stages_.fill(FilterStage{0, kMaxDispersionNs, kMaxDispersionNs, 0, false});
  has_shift_ = false;
  last_shift_ns_ = 0;
  has_estimate_ = false;
  offset_ns_ = 0;
  delay_ns_ = 0;
  dispersion_ns_ = kMaxDispersionNs;
  jitter_ns_ = precision_ns_;
  update_time_ns_ = 0;
}

int64_t ClockFilter::dispersion_ns(int64_t now_ns) const {
  if (!has_shift_) return dispersion_ns_;
  // Section 9.1: "at time t, epsilon(t) = epsilon(t_0) + PHI * (t-t_0)".
  return std::min(kMaxDispersionNs, dispersion_ns_ + phi_growth_ns(now_ns - last_shift_ns_));
}

int ClockFilter::valid_stages() const {
  return static_cast<int>(std::count_if(stages_.begin(), stages_.end(), usable));
}

void ClockFilter::shift(const FilterStage& stage, int64_t now_ns) {
  // A.5.2: "Shift each tuple ... discarding the [oldest] one. As each tuple
  // is shifted, increase the dispersion since the last filter update."
  // (The appendix adds PHI * (c.t - p->t), the time since the last *used*
  // sample, at every shift, which counts the same interval again whenever a
  // sample was not used; like ntpd we grow by the time since the last
  // shift, so every stage's dispersion is exactly epsilon_0 + PHI * age.)
  if (has_shift_) {
    const int64_t grow = phi_growth_ns(now_ns - last_shift_ns_);
    for (auto& s : stages_) s.dispersion_ns = std::min(kMaxDispersionNs, s.dispersion_ns + grow);
  }
  std::rotate(stages_.rbegin(), stages_.rbegin() + 1, stages_.rend());  // newest first
  stages_[0] = stage;
  stages_[0].dispersion_ns = clamp_dispersion(stage.dispersion_ns);
  last_shift_ns_ = now_ns;
  has_shift_ = true;
}

std::array<int, kFilterStages> ClockFilter::sorted_by_delay() const {
  // Section 10: "the shift register stages are copied to a temporary list
  // and the list sorted by increasing delta". Dummies and exhausted stages
  // go last; the sort is stable, so of equal delays the newer comes first.
  std::array<int, kFilterStages> order;
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [this](int a, int b) {
    const bool ua = usable(stages_[a]), ub = usable(stages_[b]);
    if (ua != ub) return ua;
    return stages_[a].delay_ns < stages_[b].delay_ns;
  });
  return order;
}

int64_t ClockFilter::register_dispersion_ns(const std::array<int, kFilterStages>& order) const {
  // Section 10: epsilon = sum over i of epsilon_i / 2^(i+1), i in sorted
  // order. Exactly: sum epsilon_i * 2^(7-i), divided by 2^8, rounded up.
  __int128 sum = 0;
  for (int i = 0; i < kFilterStages; ++i)
    sum += static_cast<__int128>(stages_[order[i]].dispersion_ns) << (kFilterStages - 1 - i);
  const __int128 den = __int128{1} << kFilterStages;
  return saturate((sum + den - 1) / den);
}

int64_t ClockFilter::jitter_about_ns(const std::array<int, kFilterStages>& order) const {
  // Section 10: "Let the first stage offset in the sorted list be theta_0;
  // then, for the other stages in any order, the jitter is the RMS average
  // ... where n is the number of valid tuples in the filter (n > 1) ...
  // the psi is bounded from below by the system precision". (The figure
  // typesets 1/(n-1) outside the root; an RMS, and ntpd, have it inside.)
  int n = 0;
  while (n < kFilterStages && usable(stages_[order[n]])) ++n;
  if (n <= 1) return precision_ns_;
  const __int128 theta0 = stages_[order[0]].offset_ns;
  unsigned __int128 sum = 0;
  for (int j = 1; j < n; ++j) {
    // |d| is capped at 2^62 ns (146 years) so seven squares fit in 128 bits.
    constexpr __int128 kCap = __int128{1} << 62;
    const __int128 d = std::clamp<__int128>(static_cast<__int128>(stages_[order[j]].offset_ns) - theta0, -kCap, kCap);
    sum += static_cast<unsigned __int128>(d * d);
  }
  const unsigned __int128 k = static_cast<unsigned>(n - 1);
  return std::max(precision_ns_, isqrt_ceil((sum + k - 1) / k));  // ceil(sqrt(ceil(x))) == ceil(sqrt(x))
}

bool ClockFilter::add(int64_t offset_ns, int64_t delay_ns, int64_t dispersion_ns, int64_t now_ns,
                      int8_t system_poll_log2) {
  const int64_t previous_dispersion_ns = this->dispersion_ns(now_ns);
  // Section 8: "the value of delta should be clamped not less than s.rho".
  shift(FilterStage{offset_ns, std::max(delay_ns, precision_ns_), dispersion_ns, now_ns, true}, now_ns);
  return evaluate(previous_dispersion_ns, system_poll_log2);
}

bool ClockFilter::add_unreachable(int64_t now_ns, int8_t system_poll_log2) {
  const int64_t previous_dispersion_ns = this->dispersion_ns(now_ns);
  shift(FilterStage{0, kMaxDispersionNs, kMaxDispersionNs, now_ns, false}, now_ns);
  // The dummy sorts last, but it may push out the stage last used and
  // promote a later, unused one: like A.5.2 (which runs the whole filter
  // for the dummy) that counts as a new estimate.
  return evaluate(previous_dispersion_ns, system_poll_log2);
}

bool ClockFilter::evaluate(int64_t previous_dispersion_ns, int8_t system_poll_log2) {
  auto order = sorted_by_delay();
  // The peer dispersion follows the register at every shift (A.5.2
  // computes it before its early returns), so unanswered polls raise it.
  dispersion_ns_ = register_dispersion_ns(order);

  FilterStage& best = stages_[order[0]];
  if (!usable(best)) return false;  // nothing but dummies: keep the last estimate, now ~MAXDISP dispersion

  // Section 10: "If the first tuple epoch t_0 is not later than the last
  // valid sample epoch tp, the routine exits without affecting the current
  // peer variables." A.5.2: "use a sample only once and never a sample
  // older than the latest one". (A.5.2 adds "but anything goes before first
  // synchronized"; we do not: before the first estimate every sample is new
  // anyway, and reusing one would feed the discipline the same data twice.)
  if (has_estimate_ && best.time_ns <= update_time_ns_) return false;

  // A.5.2, popcorn spike suppressor: "Compare the difference between the
  // last and current offsets to the current jitter. If greater than SGATE
  // (3) and if the interval since the last offset is less than twice the
  // system poll interval, dump the spike."
  // Two deliberate differences from the appendix code:
  // - "the current jitter" is the jitter of the estimate in use. The code
  //   recomputes psi about the new sample first; for a lone spike S among
  //   agreeing samples that psi is S itself, and |S| > 3 S never holds, so
  //   the gate could never fire.
  // - "dump the spike" means: not now. The sample stays in the register;
  //   if it is still the best two poll intervals after the last update it
  //   is used (it was real: the clock or the path changed). Marking it
  //   spent threw away good samples whenever the frequency was still off
  //   (consecutive offsets then drift by more than three jitters).
  // Like ntpd, the gate applies only when both the estimate and the sample
  // are usable for synchronization (dispersion below MAXDIST); before that
  // there is no meaningful jitter to compare with.
  if (has_estimate_ && previous_dispersion_ns < kMaxDistanceNs && best.dispersion_ns < kMaxDistanceNs) {
    const __int128 change = static_cast<__int128>(best.offset_ns) - offset_ns_;
    const __int128 abs_change = change < 0 ? -change : change;
    const bool spike = abs_change > static_cast<__int128>(kSpikeGate) * jitter_ns_;
    // "soon": measured from now, not from the spike's own time, so that a
    // low-delay spike that keeps winning the sort is taken (it persisted)
    // two poll intervals after the last update instead of freezing the
    // estimate until it shifts out eight polls later.
    const bool soon = last_shift_ns_ - update_time_ns_ < 2 * poll_interval_ns(system_poll_log2);
    if (spike && soon) return false;
  }

  offset_ns_ = best.offset_ns;
  delay_ns_ = best.delay_ns;
  jitter_ns_ = jitter_about_ns(order);
  update_time_ns_ = best.time_ns;
  has_estimate_ = true;
  return true;
}

// ------------------------------------------------------------ system process

int64_t root_distance_ns(const Candidate& c, int64_t min_dispersion_ns) {
  // A.5.5.2: "return (max(MINDISP, p->rootdelay + p->delay) / 2 +
  // p->rootdisp + p->disp + PHI * (c.t - p->t) + p->jitter);"
  const __int128 delay_sum = std::max<__int128>(min_dispersion_ns, static_cast<__int128>(c.root_delay_ns) + c.delay_ns);
  const __int128 lambda =
      (delay_sum + 1) / 2 + c.root_dispersion_ns + c.dispersion_ns + c.jitter_ns;  // (x + 1) / 2: rounded up
  return saturate(lambda);
}

namespace {

// Section 11.2.1: "lowpoint (p, -1, theta - lambda), midpoint (p, 0,
// theta), and highpoint (p, +1, theta + lambda)".
struct Tuple {
  __int128 edge;
  int type;
};

struct Survivor {
  size_t index;    // into candidates
  __int128 metric;  // stratum * MAXDIST + lambda
};

}  // namespace

Selection select_clock(const std::vector<Candidate>& candidates, std::optional<uint32_t> current_system_peer,
                       int64_t min_dispersion_ns) {
  Selection out;
  const int m = static_cast<int>(candidates.size());
  if (m == 0) return out;

  // A zero distance would make an empty interval and a division by zero
  // in the weights; MINDISP > 0 prevents it, this guards a MINDISP of 0.
  std::vector<int64_t> lambda(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i)
    lambda[i] = std::max<int64_t>(1, root_distance_ns(candidates[i], min_dispersion_ns));

  // "1. For each of m associations, place three tuples as defined above on
  // the candidate list. 2. Sort the tuples on the list by the edge
  // component." At equal edges lowpoints sort first and highpoints last,
  // so intervals are closed and touching intervals intersect.
  std::vector<Tuple> list;
  list.reserve(3 * candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) {
    const __int128 theta = candidates[i].offset_ns;
    list.push_back({theta - lambda[i], -1});
    list.push_back({theta, 0});
    list.push_back({theta + lambda[i], +1});
  }
  std::sort(list.begin(), list.end(),
            [](const Tuple& a, const Tuple& b) { return a.edge != b.edge ? a.edge < b.edge : a.type < b.type; });

  __int128 low = 0, high = 0;
  bool found_clique = false;
  // "5B. Add one to f. Is f < (m / 2)? If yes, then go to step 3 again."
  for (int f = 0; 2 * f < m; ++f) {
    // "3. Set the number of midpoints d = 0. Set c = 0. Scan from lowest
    // endpoint to highest. Add one to c for every lowpoint, subtract one
    // for every highpoint, add one to d for every midpoint. If c >= m - f,
    // stop; set l = current lowpoint."
    int d = 0, c = 0;
    bool have_low = false, have_high = false;
    for (const auto& t : list) {
      c -= t.type;
      if (c >= m - f) {
        low = t.edge;
        have_low = true;
        break;
      }
      if (t.type == 0) ++d;
    }
    // "4. Set c = 0. Scan from highest endpoint to lowest. Add one to c for
    // every highpoint, subtract one for every lowpoint, add one to d for
    // every midpoint. If c >= m - f, stop; set u = current highpoint."
    c = 0;
    for (auto it = list.rbegin(); it != list.rend(); ++it) {
      c += it->type;
      if (c >= m - f) {
        high = it->edge;
        have_high = true;
        break;
      }
      if (it->type == 0) ++d;
    }
    // "5. Is d = f and l < u? If yes, then follow step 5A". We accept
    // d <= f, as the reference code does ("If the number of midpoints is
    // greater than the number of allowed falsetickers ... go around
    // again"): at most f midpoints outside [l, u] means at least m - f
    // inside, a majority.
    if (!have_low || !have_high || d > f) continue;
    if (low < high) {  // "5A. Success: the intersection interval is [l, u]."
      found_clique = true;
      break;
    }
  }

  if (!found_clique) {
    // "6. Failure; a majority clique could not be found. There are no
    // suitable candidates to discipline the system clock."
    for (const auto& c : candidates) out.falsetickers.push_back(c.id);
    return out;
  }
  out.majority = true;
  out.low_ns = saturate(low);
  out.high_ns = saturate(high);

  // "the midpoint of each truechimer (theta) represents the candidates
  // available to the cluster algorithm" (11.2.1): a truechimer's offset
  // lies in [l, u], so the combined offset does too.
  std::vector<Survivor> survivors;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const auto& c = candidates[i];
    if (c.offset_ns >= low && c.offset_ns <= high) {
      out.truechimers.push_back(c.id);
      // 11.2.2: "lambda_p is a merit factor equal to stratum_p * MAXDIST +
      // lambda".
      survivors.push_back({i, static_cast<__int128>(c.stratum) * kMaxDistanceNs + lambda[i]});
    } else {
      out.falsetickers.push_back(c.id);
    }
  }
  // "If a majority clique is not found, or if the number of truechimers is
  // less than CMIN, there are insufficient candidates".
  if (static_cast<int>(survivors.size()) < kMinCandidates) return out;

  // "2. Sort the candidates by increasing lambda_p." Ties: by id, so the
  // result does not depend on the input order.
  std::sort(survivors.begin(), survivors.end(), [&](const Survivor& a, const Survivor& b) {
    if (a.metric != b.metric) return a.metric < b.metric;
    return candidates[a.index].id < candidates[b.index].id;
  });

  for (;;) {
    const size_t n = survivors.size();
    // "3. For each candidate, compute the selection jitter psi_s" =
    // sqrt(1/(n-1) * sum_j (theta_s - theta_j)^2).
    // "4. Select psi_max as the candidate with maximum psi_s." On ties we
    // discard the one ranked last.
    // "5. Select psi_min as the candidate with minimum psi_p."
    long double psi_max = -1;
    size_t max_at = 0;
    int64_t psi_min = kInt64Max;
    for (size_t s = 0; s < n; ++s) {
      const auto& cs = candidates[survivors[s].index];
      psi_min = std::min(psi_min, cs.jitter_ns);
      long double sum = 0;
      for (size_t j = 0; j < n; ++j) {
        const long double d =
            static_cast<long double>(cs.offset_ns) - static_cast<long double>(candidates[survivors[j].index].offset_ns);
        sum += d * d;
      }
      const long double psi_s = n > 1 ? std::sqrt(sum / static_cast<long double>(n - 1)) : 0.0L;
      if (psi_s >= psi_max) {
        psi_max = psi_s;
        max_at = s;
      }
    }
    // "6. Is psi_max < psi_min or n <= NMIN? If yes, follow step 6A
    // [done]; otherwise, follow step 6B. 6B. Delete the outlier candidate
    // with psi_max; reduce n by one and go back to step 3."
    if (psi_max < static_cast<long double>(psi_min) || static_cast<int>(n) <= kMinClusterSurvivors) break;
    out.outliers.push_back(candidates[survivors[max_at].index].id);
    survivors.erase(survivors.begin() + static_cast<std::ptrdiff_t>(max_at));
  }
  for (const auto& s : survivors) out.survivors.push_back(candidates[s.index].id);

  // The system peer. A.5.5.1: "If the old system peer is on the list and
  // at the same stratum as the first survivor on the list, then don't do a
  // clock hop. Otherwise, select the first survivor on the list as the new
  // system peer." (The appendix code only compares strata; we also check
  // that the old system peer survived, as its comment says.) A prefer peer
  // that survived wins outright, as in the reference implementation (RFC
  // 5905 itself has no prefer peer).
  size_t sys = 0;  // position in survivors
  bool prefer = false;
  for (size_t s = 0; s < survivors.size(); ++s) {
    if (candidates[survivors[s].index].prefer) {
      sys = s;
      prefer = true;
      break;
    }
  }
  if (!prefer && current_system_peer) {
    for (size_t s = 0; s < survivors.size(); ++s) {
      const auto& c = candidates[survivors[s].index];
      if (c.id == *current_system_peer && c.stratum == candidates[survivors[0].index].stratum) {
        sys = s;
        break;
      }
    }
  }
  const Candidate& peer = candidates[survivors[sys].index];
  out.system_peer = peer.id;

  // 11.2.3 / A.5.5.5 clock_combine(): "Combine the offsets of the
  // clustering algorithm survivors using a weighted average with weight
  // determined by the root distance. Compute the selection jitter as the
  // weighted RMS difference between the first survivor and the remaining
  // survivors." Sums are taken relative to the system peer's offset (its
  // "first survivor" role: the peer whose variables the system inherits)
  // to keep full precision.
  long double y = 0, z = 0, w = 0;
  for (const auto& s : survivors) {
    const auto& c = candidates[s.index];
    const long double x = static_cast<long double>(lambda[s.index]);
    const long double d = static_cast<long double>(c.offset_ns) - static_cast<long double>(peer.offset_ns);
    y += 1 / x;
    z += d / x;
    w += d * d / x;
  }
  // With a prefer system peer its own offset is used, as in ntpd: "If there
  // is a prefer peer, use its offset and jitter."
  out.offset_ns = prefer ? peer.offset_ns : saturate(static_cast<__int128>(peer.offset_ns) + std::llround(z / y));
  const long double psi_s = std::sqrt(w / y);
  out.selection_jitter_ns = saturate(static_cast<__int128>(std::ceil(psi_s)));
  // A.5.5.4 clock_update(): "dtemp = SQRT(SQUARE(p->jitter) +
  // SQUARE(s.jitter))"; 11.2.3: "PSI = [(PSI_s)^2 + (PSI_p)^2]^1/2".
  const long double pj = static_cast<long double>(peer.jitter_ns);
  out.jitter_ns = saturate(static_cast<__int128>(std::ceil(std::sqrt(psi_s * psi_s + pj * pj))));
  return out;
}

void ClockFilter::slew(int64_t t0_ns, double dfreq_ppb, double dphase_ns) {
  auto moved = [&](int64_t offset_ns, int64_t time_ns) -> int64_t {
    if (time_ns <= 0 || time_ns > t0_ns) return offset_ns;
    return offset_ns + std::llround(dfreq_ppb * 1e-9 * static_cast<double>(t0_ns - time_ns) - dphase_ns);
  };
  for (FilterStage& f : stages_)
    if (f.valid) f.offset_ns = moved(f.offset_ns, f.time_ns);
  if (has_estimate_) offset_ns_ = moved(offset_ns_, update_time_ns_);
}

}  // namespace ntp::ctl
