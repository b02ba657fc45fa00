// One writer per channel, and only files that are ours: the two daemons'
// shared memory lives in /dev/shm, which every local user can write. A file
// there that another user planted (or a symlink to elsewhere) must never be
// attached, written or trusted, and a second ntp-control or ntp-dataplane on
// the same segment would break the single-writer seqlocks and rings, so each
// takes a lock first. The locks live in channel.lock_dir, a directory no
// other user can write: in /dev/shm anyone could create <name>.control.lock
// first and keep that daemon from starting.
// Used by both daemons at start (like host_check.h), never on a hot path.
#pragma once

#include <sys/stat.h>

#include <string>

namespace ntp::config {

// Where shm_open puts a POSIX shared-memory name: /dev/shm/<name without
// its leading slash>.
std::string shm_path(const std::string& shm_name);

// What is wrong with trusting a file (what: "shared memory /ntp-x", "lock
// file /run/ntp-appliance/ntp-x.control.lock"), from its fstat: not a regular file,
// not owned by our effective uid, any group or other permission bit, more
// than one hard link. Empty when it is ours alone. The text is the same for
// the same cause, so a caller that retries can log it once.
std::string private_file_problem(const struct stat& st, const std::string& what);

// open(2) of path with O_NOFOLLOW | O_CLOEXEC | flags (what shm_open does,
// plus O_NOFOLLOW, which shm_open does not take), then the checks above.
// Returns the fd, or -1: errno ENOENT with err empty when there is no such
// file (and O_CREAT was not given), else err says why (a symlink, another
// user's file, an open error).
int open_private(const std::string& path, int flags, const std::string& what, std::string& err);

// The lock that makes a daemon the only one of its role on a segment:
// flock(LOCK_EX | LOCK_NB) on <lock_dir>/<name>.<role>.lock (in a directory
// prepare_lock_dir trusts), created mode 0600 and checked like the segment, held until release() or the process
// ends (the kernel drops it on any exit, kill -9 too, so there is nothing
// stale to judge by a pid). The pid written into the file is only for the
// message. Not thread-safe: taken at start.
class InstanceLock {
 public:
  InstanceLock() = default;
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;
  ~InstanceLock() { release(); }

  // role: "control" or "dataplane" (the program is ntp-<role>). False with
  // err when another process holds it ("ntp-control for /ntp-x is already
  // running (pid N holds /run/ntp-appliance/ntp-x.control.lock)") or the
  // lock directory or file cannot be trusted or made. A file of another
  // user's at the lock's name is replaced when we may remove it (root, or
  // the directory's owner: see notice()) and, for a role other than the
  // dataplane, nobody holds it locked (a live ntp-control of
  // channel.control_user: "already running"); else refused.
  bool acquire(const std::string& shm_name, const char* role, std::string& err);
  // Removes the lock file (when it is still ours) and drops the lock.
  void release();
  bool held() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }
  // What acquire() did besides taking the lock, for the daemon's log; empty
  // when nothing: another user's file at our lock's name that we could
  // remove (root, or the lock directory's owner) was replaced, e.g. "lock
  // file /run/ntp-appliance/x.dataplane.lock was a file owned by uid 65534
  // gid 65534 with mode 0600 (planted by another user?): removed it and made
  // our own".
  const std::string& notice() const { return notice_; }

  // Whether this process holds the lock for shm_name and role, through any
  // InstanceLock (the dataplane's segment checks its main() took it).
  static bool held_here(const std::string& shm_name, const char* role);

 private:
  int fd_ = -1;
  std::string path_;
  std::string notice_;
};

// Where the locks are made (channel.lock_dir), set once by main() before
// any lock is taken; until then /dev/shm/ntp-locks-<euid> (the unit tests').
// shared_with_user: the user whose primary group gets a directory this
// process makes (the dataplane passes channel.control_user, so that
// ntp-control can make its own lock there); empty: nobody's.
void set_lock_dir(const std::string& dir, const std::string& shared_with_user = "");
const std::string& lock_dir();

// What is wrong with trusting a directory on the way to the locks, from its
// lstat (what: "the lock directory /run/x", "/run", path: as said).
// holds_locks: the lock directory itself, where nobody but root and us may
// make a name: owned by root or by our euid, not writable by others, and if
// its group may write, sticky (a group member then cannot remove or rename
// another's file, and fs.protected_regular keeps us from opening one it
// planted). Its ancestors: owned by root or us, and writable by group or
// others only if sticky (/tmp, /dev/shm: nobody can rename our directory
// away there). Symbolic links: only as ancestors (/var/run), owned by root
// or us. Empty when it can be trusted.
std::string lock_dir_problem(const struct stat& st, const std::string& path, bool holds_locks);

// Makes lock_dir() if it is missing (mode 0755, or 1770 and the group of
// set_lock_dir's shared_with_user), then checks it and every directory on
// the way (lock_dir_problem, through the path as given and as resolved).
// False with err naming the directory, its owner and mode and the key
// channel.lock_dir. acquire() calls it.
bool prepare_lock_dir(std::string& err);

// <lock_dir>/<name without slash>.<role>.lock
std::string lock_path(const std::string& shm_name, const char* role);

}  // namespace ntp::config
