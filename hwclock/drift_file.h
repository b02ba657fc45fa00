// The drift file: the servo's frequency estimate kept across restarts, so
// that the next start begins in ServoState::kFrequencySet. Format as
// ntpd's driftfile: one number, the frequency correction in ppm, with
// optional surrounding whitespace (e.g. "-12.345678\n"). Same sign as
// Servo::frequency_ppb() / 1000: positive makes our clock run faster.
#pragma once

#include <optional>
#include <string>

namespace ntp::hwclock {

inline constexpr double kMaxDriftPpm = 1e6;  // |value| beyond this is refused

// The value in the file at path. On failure returns nullopt and sets err to
// "<path>: <reason>". A file that does not exist is not an error (the first
// start): nullopt with err empty. Garbage, an empty file, more than one
// number, NaN/inf or |value| > kMaxDriftPpm are errors.
std::optional<double> read_drift_ppm(const std::string& path, std::string& err);

// Writes ppm atomically: path + ".tmp" is written, fsync'ed and renamed over
// path (then the directory is fsync'ed), so a crash leaves the old or the
// new file, never a torn one. Refuses non-finite or out-of-range values.
// On failure returns false with err set and removes the temporary file.
bool write_drift_ppm(const std::string& path, double ppm, std::string& err);

}  // namespace ntp::hwclock
