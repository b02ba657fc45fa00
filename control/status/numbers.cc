#include "control/status/numbers.h"

#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>

namespace ntp::status::detail {

std::string double_text(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

uint64_t abs_u64(int64_t v) { return v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v); }

std::string seconds_text(int64_t ns) {
  const uint64_t a = abs_u64(ns);
  std::string out = ns < 0 ? "-" : "";
  out += std::to_string(a / 1000000000ULL);
  uint64_t frac = a % 1000000000ULL;
  if (frac != 0) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%09" PRIu64, frac);
    std::string f = buf;
    while (!f.empty() && f.back() == '0') f.pop_back();
    out += '.';
    out += f;
  }
  return out;
}

}  // namespace ntp::status::detail
