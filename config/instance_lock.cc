#include "config/instance_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

namespace ntp::config {

namespace {

// The lock files this process holds (held_here); start-up only, but a
// mutex costs nothing there.
std::mutex g_held_mutex;
std::vector<std::string>& held_paths() {
  static std::vector<std::string> paths;
  return paths;
}

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "not a regular file";
}

// The pid a holder wrote into its lock file, for the message; 0: none.
long holder_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  char* end = nullptr;
  const long pid = std::strtol(buf, &end, 10);
  return end != buf && pid > 0 ? pid : 0;
}

}  // namespace

std::string shm_path(const std::string& shm_name) {
  size_t first = 0;
  while (first < shm_name.size() && shm_name[first] == '/') first++;
  return "/dev/shm/" + shm_name.substr(first);
}

namespace {
std::string& lock_dir_storage() {
  static std::string dir = "/dev/shm";
  return dir;
}
}  // namespace

void set_lock_dir(const std::string& dir) { lock_dir_storage() = dir; }
const std::string& lock_dir() { return lock_dir_storage(); }

std::string lock_path(const std::string& shm_name, const char* role) {
  size_t first = 0;
  while (first < shm_name.size() && shm_name[first] == '/') first++;
  return lock_dir() + "/" + shm_name.substr(first) + "." + role + ".lock";
}

std::string private_file_problem(const struct stat& st, const std::string& what) {
  char buf[512];
  if (!S_ISREG(st.st_mode)) {
    std::snprintf(buf, sizeof buf, "%s is %s: refusing it (planted by another user?)", what.c_str(),
                  file_kind(st.st_mode));
    return buf;
  }
  const uid_t us = geteuid();
  if (st.st_uid != us || (st.st_mode & 077) != 0) {
    std::snprintf(buf, sizeof buf,
                  "%s is owned by uid %u with mode %04o, not by us (uid %u) with mode 0600: refusing it (planted "
                  "by another user?)",
                  what.c_str(), static_cast<unsigned>(st.st_uid), static_cast<unsigned>(st.st_mode & 07777),
                  static_cast<unsigned>(us));
    return buf;
  }
  // A hard link to a file of ours elsewhere (protected_hardlinks off) would
  // have us write into that file.
  if (st.st_nlink != 1) {
    std::snprintf(buf, sizeof buf, "%s has %lu hard links, not one: refusing it (planted by another user?)",
                  what.c_str(), static_cast<unsigned long>(st.st_nlink));
    return buf;
  }
  return {};
}

int open_private(const std::string& path, int flags, const std::string& what, std::string& err) {
  err.clear();
  const int fd = open(path.c_str(), flags | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int e = errno;
    struct stat st {};
    if (e == ENOENT && !(flags & O_CREAT)) {
      errno = ENOENT;
      return -1;
    }
    if (e == ELOOP) {
      err = what + " (" + path + ") is a symbolic link: refusing it (planted by another user?)";
    } else if (lstat(path.c_str(), &st) == 0 && !private_file_problem(st, what).empty()) {
      // fs.protected_regular refuses O_CREAT on another user's file in a
      // sticky directory (EACCES, root included), a directory is EISDIR:
      // say what is there.
      err = private_file_problem(st, what);
    } else {
      err = "cannot open " + what + " (" + path + "): " + std::strerror(e);
    }
    errno = e;
    return -1;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    err = "cannot stat " + what + " (" + path + "): " + std::strerror(errno);
    close(fd);
    return -1;
  }
  if (std::string why = private_file_problem(st, what); !why.empty()) {
    err = std::move(why);
    close(fd);
    errno = EPERM;
    return -1;
  }
  return fd;
}

bool InstanceLock::acquire(const std::string& shm_name, const char* role, std::string& err) {
  release();
  const std::string path = lock_path(shm_name, role);
  const std::string what = "lock file " + path;
  // Outside systemd (which makes RuntimeDirectory=) the directory may not
  // exist yet; the owner and mode checks of the directory are still to come.
  if (mkdir(lock_dir().c_str(), 0755) != 0 && errno != EEXIST) {
    err = "cannot create the lock directory " + lock_dir() + " (channel.lock_dir): " + std::strerror(errno);
    return false;
  }
  // A holder that removes its file on exit races with a newcomer that
  // opened it just before: the newcomer then holds a lock on a name that is
  // gone while a third takes a new file. So the lock counts only when the
  // path still names the file we locked; else try again with the new one.
  for (int attempt = 0; attempt < 8; attempt++) {
    const int fd = open_private(path, O_RDWR | O_CREAT, what, err);
    if (fd < 0) return false;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int e = errno;
      if (e == EWOULDBLOCK) {
        const long pid = holder_pid(fd);
        err = "ntp-" + std::string(role) + " for " + shm_name + " is already running (" +
              (pid > 0 ? "pid " + std::to_string(pid) : std::string("a process")) + " holds " + path + ")";
      } else {
        err = "cannot lock " + what + ": " + std::strerror(e);
      }
      close(fd);
      return false;
    }
    struct stat locked {}, named {};
    if (fstat(fd, &locked) != 0 || lstat(path.c_str(), &named) != 0 || locked.st_dev != named.st_dev ||
        locked.st_ino != named.st_ino) {
      close(fd);
      continue;
    }
    const std::string pid = std::to_string(getpid()) + "\n";
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      err = "cannot write " + what + ": " + std::strerror(errno);
      close(fd);
      return false;
    }
    fd_ = fd;
    path_ = path;
    std::lock_guard<std::mutex> g(g_held_mutex);
    held_paths().push_back(path_);
    return true;
  }
  err = "cannot lock " + what + ": it kept being replaced while we locked it";
  return false;
}

void InstanceLock::release() {
  if (fd_ < 0) return;
  // Remove the name only while it is still the file we hold: never another
  // process's newer one.
  struct stat locked {}, named {};
  if (fstat(fd_, &locked) == 0 && lstat(path_.c_str(), &named) == 0 && locked.st_dev == named.st_dev &&
      locked.st_ino == named.st_ino)
    unlink(path_.c_str());
  close(fd_);
  fd_ = -1;
  {
    std::lock_guard<std::mutex> g(g_held_mutex);
    auto& paths = held_paths();
    if (auto it = std::find(paths.begin(), paths.end(), path_); it != paths.end()) paths.erase(it);
  }
  path_.clear();
}

bool InstanceLock::held_here(const std::string& shm_name, const char* role) {
  const std::string path = lock_path(shm_name, role);
  std::lock_guard<std::mutex> g(g_held_mutex);
  const auto& paths = held_paths();
  return std::find(paths.begin(), paths.end(), path) != paths.end();
}

}  // namespace ntp::config
