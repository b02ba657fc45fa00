// The drift file: the servo's frequency estimate kept across restarts, so
// that the next start begins in ServoState::kFrequencySet. Format as
// ntpd's driftfile: one number, the frequency correction in ppm, with
// optional surrounding whitespace (e.g. "-12.345678\n"). Same sign as
// Servo::frequency_ppb() / 1000: positive makes our clock run faster.
#pragma once

#include <optional>
#include <string>
#include <utility>

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

// The drift file as the daemon keeps it: read once at start, written at
// most once an hour while there is a frequency to keep, and at exit.
class DriftFile {
 public:
  explicit DriftFile(std::string path) : path_(std::move(path)) {}
  bool enabled() const { return !path_.empty(); }

  // The frequency to start from, ppb; nullopt if none. log says which.
  std::optional<double> load(std::string& log) const;
  // Writes freq_ppb unless the last write, or the first call, is less than
  // an hour before now_s (force: write anyway). False with err when the
  // write failed.
  bool save(double freq_ppb, double now_s, bool force, std::string& err);

 private:
  std::string path_;
  std::optional<double> last_save_s_;
};

}  // namespace ntp::hwclock
