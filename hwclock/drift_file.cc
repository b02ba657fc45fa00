// The drift file (see drift_file.h).
#include "hwclock/drift_file.h"

#include <cstdio>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>

namespace ntp::hwclock {

namespace {

constexpr size_t kMaxFileBytes = 4096;  // a number and whitespace; more is not a drift file

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::string sys_error(const std::string& path, const char* what) {
  return path + ": " + what + ": " + std::strerror(errno);
}

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

std::optional<double> read_drift_ppm(const std::string& path, std::string& err) {
  err.clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) err = sys_error(path, "open");
    return std::nullopt;
  }
  std::string text;
  char buf[512];
  for (;;) {
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      err = sys_error(path, "read");
      ::close(fd);
      return std::nullopt;
    }
    if (r == 0) break;
    text.append(buf, static_cast<size_t>(r));
    if (text.size() > kMaxFileBytes) {
      ::close(fd);
      err = path + ": not a drift file (larger than " + std::to_string(kMaxFileBytes) + " bytes)";
      return std::nullopt;
    }
  }
  ::close(fd);

  size_t b = 0, e = text.size();
  while (b < e && is_space(text[b])) ++b;
  while (e > b && is_space(text[e - 1])) --e;
  if (b == e) {
    err = path + ": empty drift file";
    return std::nullopt;
  }
  const char* first = text.data() + b;
  const char* last = text.data() + e;
  if (*first == '+' && last - first > 1 && first[1] != '-') ++first;  // from_chars takes no '+'
  double v = 0;
  const auto [ptr, ec] = std::from_chars(first, last, v);
  if (ec != std::errc() || ptr != last || !std::isfinite(v)) {
    err = path + ": not a frequency in ppm: \"" + text.substr(b, std::min<size_t>(e - b, 40)) + "\"";
    return std::nullopt;
  }
  if (std::fabs(v) > kMaxDriftPpm) {
    err = path + ": frequency " + text.substr(b, std::min<size_t>(e - b, 40)) + " ppm out of range (|value| <= 1e6)";
    return std::nullopt;
  }
  return v;
}

bool write_drift_ppm(const std::string& path, double ppm, std::string& err) {
  err.clear();
  if (!std::isfinite(ppm) || std::fabs(ppm) > kMaxDriftPpm) {
    err = path + ": refusing to write frequency out of range";
    return false;
  }
  char text[64];
  const auto [end, ec] = std::to_chars(text, text + sizeof text - 1, ppm, std::chars_format::fixed, 6);
  if (ec != std::errc()) {
    err = path + ": cannot format frequency";
    return false;
  }
  *end = '\n';
  const size_t len = static_cast<size_t>(end - text) + 1;

  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    err = sys_error(tmp, "open");
    return false;
  }
  if (!write_all(fd, text, len)) {
    err = sys_error(tmp, "write");
  } else if (::fsync(fd) != 0) {
    err = sys_error(tmp, "fsync");
  }
  if (::close(fd) != 0 && err.empty()) err = sys_error(tmp, "close");
  if (err.empty() && ::rename(tmp.c_str(), path.c_str()) != 0) err = sys_error(path, "rename");
  if (!err.empty()) {
    ::unlink(tmp.c_str());
    return false;
  }
  // Make the rename itself durable. Best effort: some file systems refuse
  // fsync on a directory, and the data is in place either way.
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return true;
}

std::optional<double> DriftFile::load(std::string& log) const {
  std::string err;
  const std::optional<double> ppm = read_drift_ppm(path_, err);
  char value[32];
  std::snprintf(value, sizeof value, "%+.3f", ppm.value_or(0));
  log = "clock.drift_file " + path_ + ": " +
        (ppm ? "starting at " + std::string(value) + " ppm" : err + " (measuring the frequency from scratch)");
  if (!ppm) return std::nullopt;
  return *ppm * 1000.0;
}

bool DriftFile::save(double freq_ppb, double now_s, bool force, std::string& err) {
  if (!enabled()) return true;
  if (!last_save_s_) last_save_s_ = now_s;  // the first estimate settles for an hour before it is kept
  if (!force && now_s - *last_save_s_ < 3600) return true;
  last_save_s_ = now_s;
  return write_drift_ppm(path_, freq_ppb / 1000.0, err);
}

}  // namespace ntp::hwclock
