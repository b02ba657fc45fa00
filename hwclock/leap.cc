#include "hwclock/leap.h"

#include <nettle/sha1.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "proto/ntp_time.h"

namespace ntp::hwclock {

namespace {

constexpr int64_t kDayNs = 86400LL * kLeapSecondNs;

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) q -= 1;
  return q;
}

int64_t saturate(__int128 v) {
  if (v > INT64_MAX) return INT64_MAX;
  if (v < INT64_MIN) return INT64_MIN;
  return static_cast<int64_t>(v);
}

struct Civil {
  int64_t year;
  unsigned month, day;
};

// Howard Hinnant's civil_from_days: days since 1970-01-01 -> proleptic
// Gregorian date.
Civil civil_from_days(int64_t z) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<int64_t>(yoe) + era * 400 + (m <= 2), m, d};
}

std::string date_text(int64_t unix_ns) {
  const Civil c = civil_from_days(floor_div(unix_ns, kDayNs));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(c.year), c.month, c.day);
  return buf;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// NTP seconds of era 0, as the file writes them, whose Unix ns fit int64.
constexpr int64_t kMaxNtpSeconds = INT64_MAX / kLeapSecondNs + proto::kUnixMinusNtpEpochS;

// One line being read, with its column for errors.
struct Cursor {
  std::string_view line;
  size_t pos = 0;
  void skip_space() {
    while (pos < line.size() && is_space(line[pos])) pos++;
  }
  bool at_end_or_comment() {
    skip_space();
    return pos == line.size() || line[pos] == '#';
  }
  size_t col() const { return pos + 1; }
  // A decimal integer (optionally signed); false if none at pos.
  bool integer(int64_t& v, bool allow_sign) {
    const char* b = line.data() + pos;
    const char* e = line.data() + line.size();
    if (!allow_sign && b < e && *b == '-') return false;
    const auto r = std::from_chars(b, e, v);
    if (r.ec != std::errc() || (r.ptr < e && !is_space(*r.ptr) && *r.ptr != '#')) return false;
    pos += static_cast<size_t>(r.ptr - b);
    return true;
  }
};

class Parser {
 public:
  Parser(std::string_view text, std::string_view file) : text_(text), file_(file) { sha1_init(&sha_); }

  LeapParse run() {
    LeapParse out;
    size_t start = 0;
    for (size_t n = 1; start <= text_.size() && error_.empty(); n++) {
      size_t end = text_.find('\n', start);
      if (end == std::string_view::npos) end = text_.size();
      line_no_ = n;
      line(text_.substr(start, end - start));
      start = end + 1;
    }
    if (error_.empty()) finish();
    out.error = error_;
    if (out.ok()) out.table = std::move(table_);
    return out;
  }

 private:
  void fail(size_t col, const std::string& what) {
    if (!error_.empty()) return;
    error_ = std::string(file_);
    error_.append(":").append(std::to_string(line_no_));
    if (col) error_.append(":").append(std::to_string(col));
    error_.append(": ").append(what);
  }
  void fail_file(const std::string& what) {
    if (error_.empty()) error_ = std::string(file_) + ": " + what;
  }

  // NIST's hash (and ntpd's check of it): SHA-1 over the digits of the
  // '#$' and '#@' lines and of the data lines, up to a comment.
  void hash_digits(std::string_view s) {
    for (char c : s) {
      if (c == '#') break;
      if (is_digit(c)) sha1_update(&sha_, 1, reinterpret_cast<const uint8_t*>(&c));
    }
  }

  // "#$ 3960835200" / "#@ 3991593600": an NTP-seconds value.
  bool ntp_seconds_field(Cursor& c, int64_t& unix_ns, const char* what) {
    c.skip_space();
    const size_t col = c.col();
    int64_t v = 0;
    if (!c.integer(v, false)) {
      fail(col, std::string("expected ") + what + " in NTP seconds");
      return false;
    }
    if (v > kMaxNtpSeconds) {
      fail(col, std::to_string(v) + " is out of range for " + what);
      return false;
    }
    unix_ns = (v - proto::kUnixMinusNtpEpochS) * kLeapSecondNs;
    return true;
  }

  void line(std::string_view l) {
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    Cursor c{l, 0};
    if (!l.empty() && l[0] == '#') {
      if (l.size() < 2) return;
      c.pos = 2;
      switch (l[1]) {
        case '$':
          hash_digits(l.substr(2));
          if (ntp_seconds_field(c, table_.updated_ns, "the last update ('#$')") && !c.at_end_or_comment())
            fail(c.col(), "unexpected text after the last update time");
          return;
        case '@': {
          if (have_expiry_) return fail(1, "a second expiry line ('#@')");
          hash_digits(l.substr(2));
          have_expiry_ = true;
          if (ntp_seconds_field(c, table_.expires_ns, "the expiry ('#@')") && !c.at_end_or_comment())
            fail(c.col(), "unexpected text after the expiry time");
          return;
        }
        case 'h': return hash_line(c);
        default: return;  // a comment
      }
    }
    if (c.at_end_or_comment()) return;  // blank
    data_line(c);
  }

  void hash_line(Cursor& c) {
    if (have_hash_) return fail(1, "a second hash line ('#h')");
    have_hash_ = true;
    hash_line_ = line_no_;
    for (int i = 0; i < 5; i++) {
      c.skip_space();
      const size_t col = c.col();
      const char* b = c.line.data() + c.pos;
      const char* e = c.line.data() + c.line.size();
      uint32_t w = 0;
      const auto r = std::from_chars(b, e, w, 16);
      if (r.ec != std::errc() || (r.ptr < e && !is_space(*r.ptr))) {
        return fail(col, "the hash ('#h') wants five hexadecimal words");
      }
      c.pos += static_cast<size_t>(r.ptr - b);
      hash_[i] = w;
    }
    c.skip_space();
    if (c.pos != c.line.size()) fail(c.col(), "the hash ('#h') wants five hexadecimal words");
  }

  void data_line(Cursor& c) {
    hash_digits(c.line);
    const size_t col_t = c.col();
    int64_t ntp_s = 0, tai_utc = 0;
    if (!c.integer(ntp_s, false)) return fail(col_t, "expected NTP seconds (a leap line is \"NTP-seconds TAI-UTC\")");
    if (ntp_s > kMaxNtpSeconds) return fail(col_t, std::to_string(ntp_s) + " NTP seconds is out of range");
    c.skip_space();
    const size_t col_d = c.col();
    if (!c.integer(tai_utc, true) || tai_utc < -100000 || tai_utc > 100000)
      return fail(col_d, "expected TAI-UTC in seconds after the NTP seconds");
    if (!c.at_end_or_comment()) return fail(c.col(), "unexpected text after TAI-UTC");

    const int64_t at_ns = (ntp_s - proto::kUnixMinusNtpEpochS) * kLeapSecondNs;
    const Civil civ = civil_from_days(floor_div(at_ns, kDayNs));
    if (at_ns % kDayNs != 0 || civ.day != 1)
      return fail(col_t, std::to_string(ntp_s) + " (" + date_text(at_ns) + ") is not 0h UTC on the 1st of a month");
    if (!have_base_) {
      have_base_ = true;
      table_.base_ns = at_ns;
      table_.base_tai_utc_s = static_cast<int32_t>(tai_utc);
      last_ns_ = at_ns;
      last_tai_utc_ = tai_utc;
      return;
    }
    if (at_ns <= last_ns_)
      return fail(col_t, std::to_string(ntp_s) + " is not after the line before (" + date_text(last_ns_) + ")");
    const int64_t step = tai_utc - last_tai_utc_;
    if (step != 1 && step != -1)
      return fail(col_d, "TAI-UTC goes from " + std::to_string(last_tai_utc_) + " to " + std::to_string(tai_utc) +
                             " s: a leap second changes it by one");
    table_.leaps.push_back({at_ns, static_cast<int32_t>(step), static_cast<int32_t>(tai_utc)});
    last_ns_ = at_ns;
    last_tai_utc_ = tai_utc;
  }

  void finish() {
    if (!have_base_) return fail_file("no leap second lines (\"NTP-seconds TAI-UTC\")");
    if (!have_expiry_) return fail_file("no expiry line ('#@ NTP-seconds')");
    if (have_hash_) {
      uint8_t digest[SHA1_DIGEST_SIZE];
      sha1_digest(&sha_, sizeof digest, digest);
      for (int i = 0; i < 5; i++) {
        const uint32_t w = (uint32_t{digest[4 * i]} << 24) | (uint32_t{digest[4 * i + 1]} << 16) |
                           (uint32_t{digest[4 * i + 2]} << 8) | digest[4 * i + 3];
        if (w != hash_[i]) {
          line_no_ = hash_line_;
          return fail(0, "the hash ('#h') does not match the data: the file is damaged or was edited");
        }
      }
      table_.hash_verified = true;
    }
  }

  std::string_view text_, file_;
  std::string error_;
  size_t line_no_ = 0, hash_line_ = 0;
  sha1_ctx sha_;
  LeapTable table_;
  bool have_base_ = false, have_expiry_ = false, have_hash_ = false;
  uint32_t hash_[5] = {};
  int64_t last_ns_ = 0, last_tai_utc_ = 0;
};

}  // namespace

LeapParse parse_leap_seconds_list(std::string_view text, std::string_view file) {
  return Parser(text, file).run();
}

LeapParse load_leap_seconds_list(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LeapParse p;
    p.error = path + ": cannot read: " + std::strerror(errno);
    return p;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_leap_seconds_list(ss.str(), path);
}

std::optional<LeapSecond> next_leap(const LeapTable& t, int64_t now_ns) {
  for (const LeapSecond& l : t.leaps)
    if (l.at_ns > now_ns) return l;
  return std::nullopt;
}

bool expired(const LeapTable& t, int64_t now_ns) { return now_ns >= t.expires_ns; }

std::string expiry_warning(const LeapTable& t, int64_t now_ns, std::string_view file) {
  if (!expired(t, now_ns)) return {};
  const auto days = static_cast<int64_t>((static_cast<__int128>(now_ns) - t.expires_ns) / kDayNs);  // any two times
  return "leap file " + std::string(file) + " expired on " + date_text(t.expires_ns) + " (" + std::to_string(days) +
         (days == 1 ? " day" : " days") + " ago): leap seconds after that are not known; install a newer " +
         "leap-seconds.list (tzdata)";
}

int64_t end_of_utc_day_ns(int64_t now_ns) {
  return saturate(static_cast<__int128>(floor_div(now_ns, kDayNs)) * kDayNs + kDayNs);
}

int32_t leap_sign_on_day(const LeapTable& t, int64_t now_ns) {
  const int64_t midnight = end_of_utc_day_ns(now_ns);
  for (const LeapSecond& l : t.leaps)
    if (l.at_ns == midnight) return l.sign;
  return 0;
}

bool is_leap_day(int64_t now_ns) {
  const Civil c = civil_from_days(floor_div(now_ns, kDayNs));
  return (c.month == 6 && c.day == 30) || (c.month == 12 && c.day == 31);
}

int64_t apply_leap(int32_t sign, int64_t leap_ns, int64_t smear_ns, int64_t linear_ns) {
  if (sign == 0) return linear_ns;
  const __int128 s = sign > 0 ? 1 : -1;
  const __int128 l = linear_ns;
  if (smear_ns > kLeapSecondNs) {
    // Linear across the window: the served clock runs slow (insertion) or
    // fast (deletion) by 1 s / window, never backwards.
    const __int128 w = smear_ns;
    const __int128 start = static_cast<__int128>(leap_ns) - w / 2;
    if (l <= start) return linear_ns;
    if (l >= start + w) return saturate(l - s * kLeapSecondNs);
    return saturate(l - s * ((l - start) * kLeapSecondNs / w));
  }
  if (s > 0) return l >= leap_ns ? saturate(l - kLeapSecondNs) : linear_ns;  // 23:59:59 again
  return l >= static_cast<__int128>(leap_ns) - kLeapSecondNs ? saturate(l + kLeapSecondNs) : linear_ns;
}

void set_model_leap(proto::ClockModelData& m, int32_t sign, int64_t leap_ns, bool smear) {
  if (sign == 0) {
    m.leap_sign = 0;
    m.leap_ns = 0;
    m.leap_smear_ns = 0;
    return;
  }
  m.leap_sign = sign > 0 ? 1 : -1;
  m.leap_ns = leap_ns;
  m.leap_smear_ns = smear ? kSmearWindowNs : 0;
}

int64_t leap_complete_ns(const proto::ClockModelData& m) {
  if (m.leap_sign == 0) return INT64_MIN;
  if (m.leap_smear_ns > kLeapSecondNs)
    return saturate(static_cast<__int128>(m.leap_ns) - m.leap_smear_ns / 2 + m.leap_smear_ns);
  return m.leap_sign > 0 ? m.leap_ns : saturate(static_cast<__int128>(m.leap_ns) - kLeapSecondNs);
}

proto::ClockModelData fold_leap(const proto::ClockModelData& m) {
  proto::ClockModelData f = m;
  if (m.leap_sign == 0) return f;
  f.utc0_ns = saturate(static_cast<__int128>(m.utc0_ns) - (m.leap_sign > 0 ? 1 : -1) * __int128{kLeapSecondNs});
  set_model_leap(f, 0, 0, false);
  return f;
}

}  // namespace ntp::hwclock
