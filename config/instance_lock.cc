#include "config/instance_lock.h"

#include <fcntl.h>
#include <pwd.h>
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

struct LockDirSetting {
  std::string dir;
  std::string shared_with_user;
};

LockDirSetting& lock_dir_setting() {
  // Per user, so that unit tests run by anyone get a directory that is
  // theirs (never /dev/shm itself, where anyone may create a name).
  static LockDirSetting s{"/dev/shm/ntp-locks-" + std::to_string(geteuid()), ""};
  return s;
}

// "/", "/run", "/run/ntp-appliance" for "/run/ntp-appliance/" (empty and
// "." components skipped: they name the same directory).
std::vector<std::string> prefixes_of(const std::string& path) {
  std::vector<std::string> out{"/"};
  std::string cur;
  size_t i = 0;
  while (i < path.size()) {
    const size_t j = std::min(path.find('/', i), path.size());
    const std::string part = path.substr(i, j - i);
    if (!part.empty() && part != ".") {
      cur += "/" + part;
      out.push_back(cur);
    }
    i = j + 1;
  }
  return out;
}

// Every directory from / down to path (the lock directory, last) trusted;
// with to_lock_dir false, path is a directory on the way to it (its parent,
// checked before the lock directory is made) and nothing is held to the
// lock directory's rule.
bool check_dir_chain(const std::string& path, const std::string& what, std::string& err, bool to_lock_dir = true) {
  const std::vector<std::string> chain = prefixes_of(path);
  for (size_t i = 0; i < chain.size(); i++) {
    const bool last = to_lock_dir && i + 1 == chain.size();
    const std::string name = last ? what : chain[i] + ", on the way to " + what + ",";
    struct stat st {};
    if (lstat(chain[i].c_str(), &st) != 0) {
      err = "cannot stat " + (last ? what : chain[i] + " (on the way to " + what + ")") + ": " + std::strerror(errno);
      return false;
    }
    if (std::string why = lock_dir_problem(st, name, last); !why.empty()) {
      err = std::move(why);
      return false;
    }
  }
  return true;
}

// The primary group of user, or an error naming channel.control_user.
bool group_of(const std::string& user, gid_t& gid, const std::string& doing, std::string& err) {
  struct passwd pw {};
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  const int rc = getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0 || !found) {
    err = "cannot " + doing + " for channel.control_user = \"" + user + "\": " +
          (rc != 0 ? std::strerror(rc) : "no such user");
    return false;
  }
  gid = found->pw_gid;
  return true;
}

// A directory we just made: the group of shared_with_user (when given) may
// make its own lock in it, sticky so that none of it can touch another's.
bool settle_new_dir(const std::string& dir, const std::string& shared_with_user, const std::string& what,
                    std::string& err) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    err = "cannot open " + what + " we made: " + std::strerror(errno);
    return false;
  }
  mode_t mode = 0755;
  if (!shared_with_user.empty()) {
    gid_t gid = 0;
    if (!group_of(shared_with_user, gid, "make " + what, err)) {
      close(fd);
      return false;
    }
    if (fchown(fd, static_cast<uid_t>(-1), gid) != 0) {
      err = "cannot give " + what + " to the group " + std::to_string(gid) + " of channel.control_user = \"" +
            shared_with_user + "\": " + std::strerror(errno);
      close(fd);
      return false;
    }
    mode = 01770;
  }
  if (fchmod(fd, mode) != 0) {
    err = "cannot set the mode of " + what + ": " + std::strerror(errno);
    close(fd);
    return false;
  }
  close(fd);
  return true;
}

std::string owner_and_mode(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return "cannot be read: " + std::string(std::strerror(errno));
  char buf[96];
  std::snprintf(buf, sizeof buf, "is owned by uid %u gid %u with mode %04o", static_cast<unsigned>(st.st_uid),
                static_cast<unsigned>(st.st_gid), static_cast<unsigned>(st.st_mode & 07777));
  return buf;
}

// Someone else's file at our lock's name (a member of the lock directory's
// group made it first: the name is ours, nobody else's lock is there), when
// we may remove it: root (CAP_FOWNER in the sticky directory) or the
// directory's owner. Our lock file, made and locked under a fresh name, is
// exchanged with it in one step (renameat2 RENAME_EXCHANGE): the name is
// never empty for the squatter to take again, and a root-owned file that
// got there meanwhile (another instance's lock) is swapped back, untouched.
// Returns our locked fd at path, -1 with err (or with err empty: try again).
int replace_planted(const std::string& path, const struct stat& seen, const std::string& what, std::string& notice,
                    std::string& err) {
  err.clear();
  const uid_t us = geteuid();
  struct stat dir_st {};
  if (seen.st_uid == us || lstat(lock_dir().c_str(), &dir_st) != 0 || (us != 0 && dir_st.st_uid != us)) {
    errno = EPERM;
    return -2;  // not ours to remove: the caller says what is there
  }
  // mkostemp: a random name made with O_EXCL and mode 0600, so a name
  // guessed and planted in advance is skipped, not opened.
  std::string tmp = path + ".new-XXXXXX";
  const int fd = mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) {
    err = "cannot make a new " + what + " beside the one planted there: " + std::strerror(errno);
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0 || renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_EXCHANGE) != 0) {
    err = "cannot replace the " + what + " planted there: " + std::strerror(errno);
    unlink(tmp.c_str());
    close(fd);
    return -1;
  }
  // tmp now names what was at path.
  struct stat was {};
  if (lstat(tmp.c_str(), &was) == 0 && was.st_uid == us && S_ISREG(was.st_mode)) {
    // Ours after all (an instance of ours took the name meanwhile): give it
    // its name back and let the next attempt meet it.
    renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_EXCHANGE);
    unlink(tmp.c_str());
    close(fd);
    return -1;  // err empty: try again
  }
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s was %s owned by uid %u gid %u with mode %04o (planted by another user?): ",
                what.c_str(), S_ISREG(was.st_mode) ? "a file" : file_kind(was.st_mode),
                static_cast<unsigned>(was.st_uid), static_cast<unsigned>(was.st_gid),
                static_cast<unsigned>(was.st_mode & 07777));
  notice = buf;
  if ((S_ISDIR(was.st_mode) ? rmdir(tmp.c_str()) : unlink(tmp.c_str())) == 0)
    notice += "removed it and made our own";
  else
    notice += "made our own and left it as " + tmp + " (" + std::strerror(errno) + ")";
  return fd;
}

}  // namespace

void set_lock_dir(const std::string& dir, const std::string& shared_with_user) {
  lock_dir_setting() = {dir, shared_with_user};
}
const std::string& lock_dir() { return lock_dir_setting().dir; }

std::string lock_dir_problem(const struct stat& st, const std::string& path, bool holds_locks) {
  const uid_t us = geteuid();
  const bool owner_ok = st.st_uid == 0 || st.st_uid == us;
  const unsigned mode = static_cast<unsigned>(st.st_mode & 07777);
  char buf[768];
  if (S_ISLNK(st.st_mode)) {
    if (holds_locks) return path + " is a symbolic link: refusing it (give the real directory)";
    if (owner_ok) return {};
    std::snprintf(buf, sizeof buf, "%s is a symbolic link owned by uid %u, not by root or us (uid %u): refusing it",
                  path.c_str(), static_cast<unsigned>(st.st_uid), static_cast<unsigned>(us));
    return buf;
  }
  if (!S_ISDIR(st.st_mode)) return path + " is " + file_kind(st.st_mode) + ", not a directory: refusing it";
  const bool sticky = (mode & S_ISVTX) != 0;
  const bool others_write = (mode & S_IWOTH) != 0;
  const bool group_writes = (mode & S_IWGRP) != 0;
  // In the lock directory itself anyone who may write can make a name
  // first, sticky or not; on the way to it, sticky is enough: nobody can
  // rename or remove what is ours there.
  const bool writable_badly =
      holds_locks ? others_write || (group_writes && !sticky) : (others_write || group_writes) && !sticky;
  if (owner_ok && !writable_badly) return {};
  std::snprintf(buf, sizeof buf,
                "%s is owned by uid %u gid %u with mode %04o: refusing it; it must be owned by root or by us (uid "
                "%u) and %s",
                path.c_str(), static_cast<unsigned>(st.st_uid), static_cast<unsigned>(st.st_gid), mode,
                static_cast<unsigned>(us),
                holds_locks ? "writable by no other user (by its group only when sticky, e.g. 1770 "
                              "root:<channel.control_user's group>)"
                            : "writable by others only when sticky (like /tmp)");
  return buf;
}

bool prepare_lock_dir(std::string& err) {
  err.clear();
  const LockDirSetting& s = lock_dir_setting();
  const std::string& dir = s.dir;
  const std::string what = "the lock directory " + dir + " (channel.lock_dir)";
  if (dir.empty() || dir[0] != '/') {
    err = what + " is not an absolute path";
    return false;
  }
  // Outside systemd (whose tmpfiles.d makes it at boot) it may be missing:
  // made only under a parent chain we trust, so that a refused place is
  // left as it was (no directory of ours in it).
  struct stat st {};
  if (lstat(dir.c_str(), &st) != 0 && errno == ENOENT) {
    const std::vector<std::string> chain = prefixes_of(dir);
    if (chain.size() >= 2) {
      const std::string& parent = chain[chain.size() - 2];
      if (!check_dir_chain(parent, what, err, /*to_lock_dir=*/false)) return false;
      if (char* real_parent = realpath(parent.c_str(), nullptr)) {
        const std::string resolved_parent = real_parent;
        std::free(real_parent);
        if (resolved_parent != parent && !check_dir_chain(resolved_parent, what, err, /*to_lock_dir=*/false))
          return false;
      }
    }
    if (mkdir(dir.c_str(), 0700) == 0) {
      if (!settle_new_dir(dir, s.shared_with_user, what, err)) {
        rmdir(dir.c_str());
        return false;
      }
    } else if (errno != EEXIST) {
      err = "cannot create " + what + ": " + std::strerror(errno);
      return false;
    }
  }
  // As given (a symbolic link on the way lies in a directory checked
  // before it, so nobody else can swap it) and as resolved (where it points
  // is checked the same way).
  if (!check_dir_chain(dir, what, err)) return false;
  char* real = realpath(dir.c_str(), nullptr);
  if (!real) {
    err = "cannot resolve " + what + ": " + std::strerror(errno);
    return false;
  }
  const std::string resolved = real;
  std::free(real);
  if (resolved != dir && !check_dir_chain(resolved, what, err)) return false;
  // Group-writable (1770): its group's members may make names in it, so it
  // must be the group we share it with, channel.control_user's (1770
  // root:users would let every user plant there).
  if (!s.shared_with_user.empty() && lstat(resolved.c_str(), &st) == 0 && (st.st_mode & S_IWGRP) != 0) {
    gid_t gid = 0;
    if (!group_of(s.shared_with_user, gid, "check the group of " + what, err)) return false;
    if (st.st_gid != gid) {
      err = what + " is writable by the group " + std::to_string(st.st_gid) + ", not by channel.control_user = \"" +
            s.shared_with_user + "\"'s group " + std::to_string(gid) +
            ": refusing it; that group's members could put files where the locks go (chgrp " + std::to_string(gid) +
            " it, or make it 1770 root:<channel.control_user's group>)";
      return false;
    }
  }
  return true;
}

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
  if (!prepare_lock_dir(err)) return false;
  // A holder that removes its file on exit races with a newcomer that
  // opened it just before: the newcomer then holds a lock on a name that is
  // gone while a third takes a new file. So the lock counts only when the
  // path still names the file we locked; else try again with the new one.
  notice_.clear();
  for (int attempt = 0; attempt < 8; attempt++) {
    int fd = -1;
    struct stat seen {};
    if (lstat(path.c_str(), &seen) == 0 && seen.st_uid != geteuid()) {
      // A control plane's lock of another user may be a live one: ntp-control
      // runs as channel.control_user, and root starting a second one must
      // not take its name. Only the dataplane (always root) knows that a
      // file of another user at its name is never a dataplane's.
      if (std::strcmp(role, "dataplane") != 0 && S_ISREG(seen.st_mode)) {
        const int probe = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (probe >= 0 && flock(probe, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
          const long pid = holder_pid(probe);
          err = "ntp-" + std::string(role) + " for " + shm_name + " is already running (" +
                (pid > 0 ? "pid " + std::to_string(pid) : std::string("a process")) + " of uid " +
                std::to_string(seen.st_uid) + " holds " + path + ")";
          close(probe);
          return false;
        }
        if (probe >= 0) close(probe);
      }
      fd = replace_planted(path, seen, what, notice_, err);
      if (fd == -1 && err.empty()) continue;  // raced with our own kind: look again
      if (fd == -1) return false;
    }
    if (fd < 0) fd = open_private(path, O_RDWR | O_CREAT, what, err);
    if (fd < 0) {
      // Not allowed to make a name there: say whose directory it is.
      struct stat st {};
      if (errno == EACCES && lstat(path.c_str(), &st) != 0)
        err += "; the lock directory " + lock_dir() + " (channel.lock_dir) " + owner_and_mode(lock_dir()) +
               ": ntp-" + role + "'s user (uid " + std::to_string(geteuid()) +
               ") must own it or be in its group (1770 root:<channel.control_user's group>)";
      return false;
    }
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
