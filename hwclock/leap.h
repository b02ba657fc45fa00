// Leap seconds: the IERS/NIST leap-seconds.list (the file tzdata ships as
// /usr/share/zoneinfo/leap-seconds.list), what it announces for a given day,
// and how the clock model serves time across a leap (stepped or smeared).
//
// The model's own time is linear (no leap): the leap is applied on top of it
// by model_to_ns (hwclock/clock_model.h), so the dataplane's RX/TX stamps and
// both processes turn the same tick into the same served time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/channel_abi.h"

namespace ntp::hwclock {

inline constexpr int64_t kLeapSecondNs = 1000000000LL;
// Google's public NTP smears 24 h, noon to noon UTC, centred on the leap.
inline constexpr int64_t kSmearWindowNs = 86400LL * kLeapSecondNs;

struct LeapSecond {
  int64_t at_ns = 0;      // Unix ns of the UTC midnight that ends the leap day; the new TAI-UTC holds from here
  int32_t sign = 0;       // +1 inserted (23:59:60 exists), -1 deleted (23:59:59 does not)
  int32_t tai_utc_s = 0;  // TAI - UTC from at_ns on
};

struct LeapTable {
  std::vector<LeapSecond> leaps;  // ascending at_ns; the file's first line is the base, not a leap
  int32_t base_tai_utc_s = 0;     // TAI - UTC of the first line (10 s since 1972)
  int64_t base_ns = 0;            // when the first line's offset took effect
  int64_t expires_ns = 0;         // '#@': the file says nothing about leaps from here on
  int64_t updated_ns = 0;         // '#$': last update (0: not given)
  bool hash_verified = false;     // a '#h' line was present and its SHA-1 matched
};

// A parsed file, or the first error as "file:line:col: what" (file:line for
// a line, file alone for the file as a whole). Errors: a data line that is
// not "NTP-seconds TAI-UTC", times not ascending, a TAI-UTC step other than
// one second, a leap not at 0h on the 1st of a month, a missing or bad '#@'
// expiry, and a '#h' hash that does not match the data (Nettle SHA-1, the
// digits of the '#$', '#@' and data lines, as ntpd and NIST compute it).
struct LeapParse {
  LeapTable table;
  std::string error;
  bool ok() const { return error.empty(); }
};
LeapParse parse_leap_seconds_list(std::string_view text, std::string_view file = "leap-seconds.list");
// Reads and parses the file; an unreadable file is "path: cannot read: reason".
LeapParse load_leap_seconds_list(const std::string& path);

// The first leap strictly after now_ns, if the table knows one.
std::optional<LeapSecond> next_leap(const LeapTable& t, int64_t now_ns);
// The file is past its '#@' date: it can no longer rule out a leap.
bool expired(const LeapTable& t, int64_t now_ns);
// "" while the file is valid; else the warning to log, naming the file and
// the date it expired, e.g. "leap file /x expired on 2026-06-28 (156 days
// ago): leap seconds after that are not known; install a newer tzdata".
std::string expiry_warning(const LeapTable& t, int64_t now_ns, std::string_view file);

// Unix ns of the UTC midnight that ends the day holding now_ns.
int64_t end_of_utc_day_ns(int64_t now_ns);
// The leap the file announces on the day of now_ns (chrony's model: the
// leap indicator is set on the leap day only): +1/-1 if a leap falls at
// the end of that UTC day, else 0. A leap file past its expiry still
// announces what it lists; its expiry is warned about, not acted on.
int32_t leap_sign_on_day(const LeapTable& t, int64_t now_ns);
// June 30 or December 31 (UTC): the only days chrony accepts a leap
// announced by its sources on (ITU-R TF.460 prefers them; every leap so far
// fell on one).
bool is_leap_day(int64_t now_ns);

// ------------------------------------------------------------ the model's leap
//
// With linear model time L (no leap) and a leap of sign s at leap_ns:
//  - stepped insertion (s = +1): from L >= leap_ns the served time is L - 1 s,
//    so the second before leap_ns (23:59:59) is served twice; RFC 5905's
//    leap indicator says so, and the responder keeps it set through both.
//  - stepped deletion (s = -1): from L >= leap_ns - 1 s the served time is
//    L + 1 s: 23:59:59 is never served.
//  - smear (smear_ns > 1 s): over the window [leap_ns - smear_ns/2,
//    leap_ns + smear_ns/2) the served time is L - s * 1 s * (L - start) /
//    smear_ns, linear and monotonic, and exactly L - s * 1 s after it.
//    A window of 1 s or less cannot be smeared monotonically: it is stepped.
// A sign other than 0 counts as its sign (+1/-1); nonsense from the other
// process never overflows (the result saturates).
int64_t apply_leap(int32_t sign, int64_t leap_ns, int64_t smear_ns, int64_t linear_ns);
inline int64_t apply_leap(const proto::ClockModelData& m, int64_t linear_ns) {
  return apply_leap(m.leap_sign, m.leap_ns, m.leap_smear_ns, linear_ns);
}

// Sets (sign != 0) or clears (sign == 0) the model's leap; smear: over
// kSmearWindowNs, else stepped.
void set_model_leap(proto::ClockModelData& m, int32_t sign, int64_t leap_ns, bool smear);
// Linear time from which the leap is fully applied (served = L - s * 1 s):
// leap_ns (insertion), leap_ns - 1 s (deletion), or the end of the smear.
int64_t leap_complete_ns(const proto::ClockModelData& m);
// The same model with its leap folded into utc0_ns and the leap cleared:
// model_to_ns of both agrees for every raw whose linear time is at or past
// leap_complete_ns(m). The control plane may publish it from then on; the
// server state's leap must stay until the served time reaches leap_ns (for
// an insertion 1 s after leap_complete_ns: the repeated second carries LI 1),
// which the responder handles by itself through ServerStateData::leap_ns.
proto::ClockModelData fold_leap(const proto::ClockModelData& m);

}  // namespace ntp::hwclock
