// Numbers as the renderings write them: shared by JSON, Prometheus and the
// field tables' derived values.
#pragma once

#include <cstdint>
#include <string>

namespace ntp::status::detail {

// Shortest text that reads back as the same double; non-finite values in
// the Prometheus spelling ("NaN", "+Inf", "-Inf").
std::string double_text(double v);
// ns as exact decimal seconds ("-0.0000123", "2", "1141714353.4657980"), a
// valid Prometheus float without the rounding of a double.
std::string seconds_text(int64_t ns);
uint64_t abs_u64(int64_t v);

}  // namespace ntp::status::detail
