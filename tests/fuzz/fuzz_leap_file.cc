// libFuzzer target: the leap-seconds.list parser (hwclock/leap.h) on
// arbitrary text, and the served time across a leap (apply_leap) on
// arbitrary model fields, as the dataplane reads them from another process.
// Invariants:
//  - a table, or one error that starts with the file name; never both
//  - a table's leaps ascend strictly, each at 0h UTC on the 1st of a month,
//    after the base line, each changing TAI-UTC by its sign (+1 or -1)
//  - the table's queries (next_leap, leap_sign_on_day, expired,
//    expiry_warning) answer for any time
//  - apply_leap never moves a time by more than 1 s, and a smear (window
//    over 1 s) never runs backwards
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "hwclock/leap.h"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_leap_file: invariant violated: %s\n", what);
  std::abort();
}

constexpr int64_t kDayNs = 86400LL * 1000000000LL;

void check_table(const ntp::hwclock::LeapTable& t) {
  int64_t prev_ns = t.base_ns;
  int64_t tai = t.base_tai_utc_s;
  for (const ntp::hwclock::LeapSecond& l : t.leaps) {
    if (l.at_ns <= prev_ns) fail("leaps not strictly ascending");
    if (l.at_ns % kDayNs != 0) fail("a leap not at 0h UTC");
    if (l.sign != 1 && l.sign != -1) fail("a leap's sign is not +1 or -1");
    if (l.tai_utc_s != tai + l.sign) fail("TAI-UTC does not change by the leap's sign");
    tai = l.tai_utc_s;
    prev_ns = l.at_ns;
    const auto n = ntp::hwclock::next_leap(t, l.at_ns - 1);
    if (!n || n->at_ns != l.at_ns) fail("next_leap just before a leap is not that leap");
    if (ntp::hwclock::leap_sign_on_day(t, l.at_ns - 1) != l.sign) fail("the leap day does not announce its leap");
  }
  if (ntp::hwclock::next_leap(t, prev_ns)) fail("a leap after the last one");
  for (int64_t now : {INT64_MIN, int64_t{0}, t.expires_ns - 1, t.expires_ns, INT64_MAX}) {
    (void)ntp::hwclock::leap_sign_on_day(t, now);
    const std::string w = ntp::hwclock::expiry_warning(t, now, "fuzz.list");
    if (w.empty() == ntp::hwclock::expired(t, now)) fail("expiry_warning disagrees with expired");
  }
}

int64_t load_i64(const uint8_t* p) {
  int64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

__int128 distance(int64_t a, int64_t b) {
  const __int128 d = static_cast<__int128>(a) - b;
  return d < 0 ? -d : d;
}

void check_apply(const uint8_t* data) {
  const auto sign = static_cast<int32_t>(load_i64(data));
  const int64_t leap_ns = load_i64(data + 8);
  const int64_t smear_ns = load_i64(data + 16);
  const int64_t linear_ns = load_i64(data + 24);
  const int64_t served = ntp::hwclock::apply_leap(sign, leap_ns, smear_ns, linear_ns);
  if (distance(served, linear_ns) > 1000000000) fail("apply_leap moved a time by more than 1 s");
  if (sign == 0 && served != linear_ns) fail("no leap, yet the time moved");
  if (smear_ns > 1000000000 && linear_ns < INT64_MAX - 1000) {
    const int64_t later = ntp::hwclock::apply_leap(sign, leap_ns, smear_ns, linear_ns + 1000);
    if (later < served) fail("a smear ran backwards");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const ntp::hwclock::LeapParse p = ntp::hwclock::parse_leap_seconds_list(text, "fuzz.list");
  if (!p.ok()) {
    if (p.error.rfind("fuzz.list", 0) != 0) fail("error does not start with the file name");
    if (!p.table.leaps.empty()) fail("an error and a table");
  } else {
    check_table(p.table);
  }
  if (size >= 32) check_apply(data);
  return 0;
}
