// One writer per channel (config/instance_lock.h): the lock a daemon takes
// at start, refused to a second process with who holds it, dropped by the
// kernel when its holder dies; lock files that are not ours alone (another
// user's, group/other bits, a symlink, a hard link) refused with why; and
// the lock directory (channel.lock_dir) trusted only when no other user can
// make a name in it: refused writable by others, group-writable and not
// sticky, another user's, a symbolic link, or under a directory others may
// write that is not sticky; made when missing, 0755 or 1770 for the
// control plane's group. Everything is made under a temporary directory of
// this test (lock files) or /dev/shm (unique names) and removed at the end.
#include "config/instance_lock.h"
#include "tests/support/in_child.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

namespace ntp::config {
namespace {

// A directory of this test under /tmp (mode 0755: a child dropped to
// nobody must reach what is inside), removed with everything in it.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/ntp-unit-lockdir-XXXXXX";
    const char* made = mkdtemp(tmpl);
    path = made ? made : "";
    if (made) chmod(made, 0755);
  }
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

// The locks of every test go to a directory of this run, unless a test
// says otherwise (LockDirAt).
class LockDirEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>();
    set_lock_dir(dir_->path + "/locks");
  }
  void TearDown() override { dir_.reset(); }

 private:
  std::unique_ptr<TempDir> dir_;
};
const auto* const kLockDirEnvironment = ::testing::AddGlobalTestEnvironment(new LockDirEnvironment);

// lock_dir() set to dir for one test, the run's again afterwards.
struct LockDirAt {
  std::string saved = lock_dir();
  explicit LockDirAt(const std::string& dir, const std::string& shared_with_user = "") {
    set_lock_dir(dir, shared_with_user);
  }
  ~LockDirAt() { set_lock_dir(saved); }
};

// A shm name of this test, and everything made under it removed at the end.
struct Name {
  std::string shm;
  explicit Name(const char* tag) : shm("/ntp-unit-lock-" + std::to_string(getpid()) + "-" + tag) { clean(); }
  ~Name() { clean(); }
  std::string lock(const char* role) const { return lock_path(shm, role); }
  std::string target() const { return lock_dir() + "/" + shm.substr(1) + ".target"; }
  void clean() const {
    for (const char* role : {"control", "dataplane"}) unlink(lock(role).c_str());
    unlink(target().c_str());
  }
};

std::string lock_result(const std::string& shm, const char* role) {
  InstanceLock l;
  std::string e;
  return l.acquire(shm, role, e) ? std::string("acquired") : e;
}

// In a child: become uid/gid 65534 (nobody), then fn.
std::string as_nobody(const std::function<std::string()>& fn) {
  return ntp::testing::in_child([&] {
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
      return std::string("cannot become nobody: ") + std::strerror(errno);
    return fn();
  });
}

constexpr gid_t kNogroup = 65534;

using ntp::testing::in_child;

std::string file_text(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(ShmPath, IsTheNameUnderDevShmAndTheLockIsInTheLockDir) {
  EXPECT_EQ(shm_path("/ntp-DeviceC"), "/dev/shm/ntp-DeviceC");
  EXPECT_EQ(shm_path("ntp-x"), "/dev/shm/ntp-x");
  LockDirAt at("/run/ntp-appliance");
  EXPECT_EQ(lock_path("/ntp-x", "control"), "/run/ntp-appliance/ntp-x.control.lock");
  EXPECT_EQ(lock_path("ntp-x", "dataplane"), "/run/ntp-appliance/ntp-x.dataplane.lock");
}

TEST(InstanceLock, HeldItCarriesOurPidAndReleaseRemovesIt) {
  Name n("held");
  InstanceLock l;
  std::string err;
  ASSERT_TRUE(l.acquire(n.shm, "control", err)) << err;
  EXPECT_TRUE(l.held());
  EXPECT_EQ(l.path(), n.lock("control"));
  EXPECT_TRUE(InstanceLock::held_here(n.shm, "control"));
  EXPECT_FALSE(InstanceLock::held_here(n.shm, "dataplane"));
  struct stat st {};
  ASSERT_EQ(lstat(l.path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, geteuid());
  EXPECT_EQ(file_text(l.path()), std::to_string(getpid()) + "\n");
  l.release();
  EXPECT_FALSE(l.held());
  EXPECT_FALSE(InstanceLock::held_here(n.shm, "control"));
  EXPECT_NE(lstat(n.lock("control").c_str(), &st), 0);
  EXPECT_EQ(errno, ENOENT);
}

TEST(InstanceLock, ASecondProcessIsRefusedWithWhoHoldsIt) {
  Name n("second");
  InstanceLock l;
  std::string err;
  ASSERT_TRUE(l.acquire(n.shm, "control", err)) << err;
  const std::string child_err = in_child([&] {
    InstanceLock again;
    std::string e;
    return again.acquire(n.shm, "control", e) ? std::string("acquired") : e;
  });
  EXPECT_EQ(child_err, "ntp-control for " + n.shm + " is already running (pid " + std::to_string(getpid()) +
                           " holds " + n.lock("control") + ")");
  // The other role is another lock: the dataplane of the same segment runs.
  EXPECT_EQ(in_child([&] {
              InstanceLock dp;
              std::string e;
              return dp.acquire(n.shm, "dataplane", e) ? std::string("acquired") : e;
            }),
            "acquired");
  // In this process too a second lock of the same file is refused.
  InstanceLock same_process;
  EXPECT_FALSE(same_process.acquire(n.shm, "control", err));
  EXPECT_NE(err.find("is already running (pid " + std::to_string(getpid())), std::string::npos) << err;
}

TEST(InstanceLock, ReleasedWhenItsHolderDiesEvenByKill9) {
  Name n("kill9");
  // A holder that reports it holds, then waits to be killed.
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    close(ready[0]);
    InstanceLock l;
    std::string e;
    const char c = l.acquire(n.shm, "dataplane", e) ? 'y' : 'n';
    (void)!write(ready[1], &c, 1);
    for (;;) pause();
  }
  close(ready[1]);
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  close(ready[0]);
  ASSERT_EQ(c, 'y');
  InstanceLock l;
  std::string err;
  EXPECT_FALSE(l.acquire(n.shm, "dataplane", err));
  EXPECT_EQ(err, "ntp-dataplane for " + n.shm + " is already running (pid " + std::to_string(pid) + " holds " +
                     n.lock("dataplane") + ")");
  kill(pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  // Its file is still there (nobody removed it), with its pid: no matter.
  EXPECT_EQ(file_text(n.lock("dataplane")), std::to_string(pid) + "\n");
  ASSERT_TRUE(l.acquire(n.shm, "dataplane", err)) << err;
  EXPECT_EQ(file_text(n.lock("dataplane")), std::to_string(getpid()) + "\n");
}

// A file another user put where our lock goes (as root: made here and
// given to nobody): root may remove it, so it is replaced by our own lock
// (and said so in notice()); its content is never written.
TEST(InstanceLock, ALockFileOfAnotherUserIsReplacedByRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a file to another uid";
  Name n("planted");
  const std::string path = n.lock("control");
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fchmod(fd, 0666), 0);
  ASSERT_EQ(fchown(fd, 65534, 65534), 0);
  ASSERT_EQ(write(fd, "1\n", 2), 2);
  const int planted = fd;  // kept open: the planter's view of its file
  InstanceLock l;
  std::string err;
  ASSERT_TRUE(l.acquire(n.shm, "control", err)) << err;
  EXPECT_EQ(l.notice(), "lock file " + path +
                            " was a file owned by uid 65534 gid 65534 with mode 0666 (planted by another user?): "
                            "removed it and made our own");
  struct stat st {};
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(file_text(path), std::to_string(getpid()) + "\n");
  char buf[8] = {};
  EXPECT_EQ(pread(planted, buf, sizeof buf, 0), 2);  // the planted file itself: untouched, and gone from the directory
  EXPECT_EQ(std::string(buf), "1\n");
  close(planted);
  // Nothing else is left in the directory (no temporary name).
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(lock_dir()))
    entries += e.path().filename().string().find(n.shm.substr(1)) == 0;
  EXPECT_EQ(entries, 1u);
  l.release();
  EXPECT_EQ(l.notice(), "lock file " + path +
                            " was a file owned by uid 65534 gid 65534 with mode 0666 (planted by another user?): "
                            "removed it and made our own");
  // A control plane of another user that holds its lock (ntp-control runs
  // as channel.control_user): root starting another is refused, never
  // takes the name.
  {
    Name m("liveother");
    const std::string live = m.lock("control");
    const int lfd = open(live.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(lfd, 0);
    ASSERT_EQ(fchown(lfd, 65534, 65534), 0);
    ASSERT_EQ(write(lfd, "4242\n", 5), 5);
    // Another open file description: flock conflicts with ours.
    const int holder = open(live.c_str(), O_RDONLY);
    ASSERT_GE(holder, 0);
    ASSERT_EQ(flock(holder, LOCK_EX | LOCK_NB), 0);
    InstanceLock other;
    EXPECT_FALSE(other.acquire(m.shm, "control", err));
    EXPECT_EQ(err, "ntp-control for " + m.shm + " is already running (pid 4242 of uid 65534 holds " + live + ")");
    struct stat st {};
    ASSERT_EQ(lstat(live.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 65534u);
    // Once it is gone (a stale file of a killed one): replaced.
    close(holder);
    close(lfd);
    EXPECT_TRUE(other.acquire(m.shm, "control", err)) << err;
    EXPECT_NE(other.notice().find("owned by uid 65534"), std::string::npos) << other.notice();
  }
  // Ours, but readable by others: refused (we made it: nobody planted it).
  unlink(path.c_str());
  const int fd2 = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd2, 0);
  ASSERT_EQ(fchmod(fd2, 0644), 0);
  close(fd2);
  EXPECT_FALSE(l.acquire(n.shm, "control", err));
  EXPECT_NE(err.find("is owned by uid 0 with mode 0644, not by us (uid 0) with mode 0600"), std::string::npos) << err;
  EXPECT_EQ(l.notice(), "");
}

// The finding: a member of the shared directory's group (ntp-control's
// user, or an operator added for ntpctl) makes <name>.dataplane.lock first.
// The root dataplane replaces it; the control plane, not the directory's
// owner, cannot do the same to another user's file and is refused as before.
TEST(LockDir, ASquatInTheSharedDirectoryNoLongerStopsTheDataplane) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to act as nobody";
  TempDir t;
  const std::string dir = t.path + "/shared";
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(chown(dir.c_str(), 0, kNogroup), 0);
  ASSERT_EQ(chmod(dir.c_str(), 01770), 0);
  LockDirAt at(dir, "nobody");
  Name n("squat");
  for (const char* role : {"dataplane", "control"}) {
    EXPECT_EQ(as_nobody([&] {
                const int fd = open(n.lock(role).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
                if (fd < 0) return std::string(std::strerror(errno));
                close(fd);
                return std::string("planted");
              }),
              "planted");
  }
  // A symbolic link of nobody's at the name: replaced the same way.
  const std::string other = t.path + "/elsewhere";
  std::ofstream(other) << "keep";
  ASSERT_EQ(unlink(n.lock("dataplane").c_str()), 0);
  EXPECT_EQ(as_nobody([&] { return symlink(other.c_str(), n.lock("dataplane").c_str()) == 0 ? "linked" : "no"; }),
            "linked");
  InstanceLock dp;
  std::string err;
  ASSERT_TRUE(dp.acquire(n.shm, "dataplane", err)) << err;
  EXPECT_NE(dp.notice().find("was a symbolic link owned by uid 65534 gid 65534"), std::string::npos) << dp.notice();
  EXPECT_EQ(file_text(other), "keep");
  // A squatter that holds an flock on its file does not stop the dataplane
  // either: no dataplane runs as another user.
  {
    Name m("squatlocked");
    const int sq = open(m.lock("dataplane").c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(sq, 0);
    ASSERT_EQ(fchown(sq, 65534, kNogroup), 0);
    ASSERT_EQ(flock(sq, LOCK_EX | LOCK_NB), 0);
    InstanceLock dp2;
    ASSERT_TRUE(dp2.acquire(m.shm, "dataplane", err)) << err;
    EXPECT_NE(dp2.notice().find("owned by uid 65534"), std::string::npos) << dp2.notice();
    close(sq);
  }
  // ntp-control (here nobody) meets a file of a third user at its name: it
  // cannot remove it in root's sticky directory, so it is refused.
  ASSERT_EQ(lchown(n.lock("control").c_str(), 65533, 65533), 0);
  EXPECT_EQ(as_nobody([&] { return lock_result(n.shm, "control"); }),
            "lock file " + n.lock("control") +
                " is owned by uid 65533 with mode 0600, not by us (uid 65534) with mode 0600: refusing it (planted by "
                "another user?)");
}

// 1770 is trusted only for the group it is shared with: channel.control_user's.
TEST(LockDir, AGroupWritableOneMustBeTheControlUsersGroup) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a directory to another group";
  TempDir t;
  const std::string dir = t.path + "/locks";
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(chmod(dir.c_str(), 01770), 0);  // root:root, not nobody's group
  LockDirAt at(dir, "nobody");
  Name n("wronggroup");
  EXPECT_EQ(lock_result(n.shm, "dataplane"),
            "the lock directory " + dir +
                " (channel.lock_dir) is writable by the group 0, not by channel.control_user = \"nobody\"'s group 65534: "
                "refusing it; that group's members could put files where the locks go (chgrp 65534 it, or make it 1770 "
                "root:<channel.control_user's group>)");
  ASSERT_EQ(chown(dir.c_str(), 0, kNogroup), 0);
  EXPECT_EQ(lock_result(n.shm, "dataplane"), "acquired");
  // Not group-writable: any group will do.
  ASSERT_EQ(chown(dir.c_str(), 0, 0), 0);
  ASSERT_EQ(chmod(dir.c_str(), 0755), 0);
  EXPECT_EQ(lock_result(n.shm, "dataplane"), "acquired");
}

TEST(InstanceLock, ASymlinkOrAHardLinkIsRefused) {
  Name n("links");
  const std::string path = n.lock("control");
  // Beside it: a hard link needs the same file system.
  const std::string target = n.target();
  // A symlink to where a file would be created: nothing is created there.
  ASSERT_EQ(symlink(target.c_str(), path.c_str()), 0);
  InstanceLock l;
  std::string err;
  EXPECT_FALSE(l.acquire(n.shm, "control", err));
  EXPECT_EQ(err, "lock file " + path + " (" + path + ") is a symbolic link: refusing it (planted by another user?)");
  struct stat st {};
  EXPECT_NE(lstat(target.c_str(), &st), 0);
  unlink(path.c_str());
  // A hard link to a file of ours (0600) elsewhere: we would write into it.
  const int fd = open(target.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "precious", 8), 8);
  close(fd);
  ASSERT_EQ(link(target.c_str(), path.c_str()), 0);
  EXPECT_FALSE(l.acquire(n.shm, "control", err));
  EXPECT_EQ(err, "lock file " + path + " has 2 hard links, not one: refusing it (planted by another user?)");
  EXPECT_EQ(file_text(target), "precious");
}

TEST(PrivateFileProblem, SaysWhatKindOfFileItIs) {
  struct stat st {};
  st.st_mode = S_IFDIR | 0700;
  st.st_uid = geteuid();
  st.st_nlink = 2;
  EXPECT_EQ(private_file_problem(st, "shared memory /x"),
            "shared memory /x is a directory: refusing it (planted by another user?)");
  st.st_mode = S_IFIFO | 0600;
  EXPECT_EQ(private_file_problem(st, "shared memory /x"),
            "shared memory /x is a FIFO: refusing it (planted by another user?)");
  st.st_mode = S_IFREG | 0600;
  st.st_nlink = 1;
  EXPECT_EQ(private_file_problem(st, "shared memory /x"), "");
  st.st_mode = S_IFREG | 0400;  // stricter than 0600 is ours too
  EXPECT_EQ(private_file_problem(st, "shared memory /x"), "");
  st.st_mode = S_IFREG | 0602;
  EXPECT_NE(private_file_problem(st, "shared memory /x"), "");
  st.st_mode = S_IFREG | 0600;
  st.st_uid = geteuid() + 1;
  EXPECT_EQ(private_file_problem(st, "shared memory /x"),
            "shared memory /x is owned by uid " + std::to_string(geteuid() + 1) + " with mode 0600, not by us (uid " +
                std::to_string(geteuid()) + ") with mode 0600: refusing it (planted by another user?)");
}


// The directory's refusal, as acquire() says it, for a lock dir of mode m.
std::string refusal(const std::string& dir, const char* rule, unsigned mode, uid_t uid = 0, gid_t gid = 0) {
  char buf[160];
  std::snprintf(buf, sizeof buf, " is owned by uid %u gid %u with mode %04o: refusing it; it must be owned by root or by us (uid %u) and ",
                static_cast<unsigned>(uid), static_cast<unsigned>(gid), mode, static_cast<unsigned>(geteuid()));
  return "the lock directory " + dir + " (channel.lock_dir)" + buf + rule;
}
constexpr const char* kLockDirRule =
    "writable by no other user (by its group only when sticky, e.g. 1770 root:<channel.control_user's group>)";

// A directory that other users may write is where the old attack works
// (make <name>.control.lock first): refused, sticky or not (/dev/shm is
// 1777), and nothing is made in it.
TEST(LockDir, WritableByOthersIsRefused) {
  TempDir t;
  const std::string dir = t.path + "/locks";
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  LockDirAt at(dir);
  Name n("others");
  for (const unsigned mode : {0777u, 01777u, 0703u}) {
    ASSERT_EQ(chmod(dir.c_str(), mode), 0);
    std::string err;
    InstanceLock l;
    EXPECT_FALSE(l.acquire(n.shm, "control", err));
    EXPECT_EQ(err, refusal(dir, kLockDirRule, mode, geteuid(), getegid()));
    struct stat st {};
    EXPECT_NE(lstat(n.lock("control").c_str(), &st), 0) << "a lock file was made in a refused directory";
  }
}

// Group-writable: a member could remove or replace another's file unless
// the directory is sticky; 1770 (the shared directory of both daemons) is
// taken.
TEST(LockDir, GroupWritableOnlyWhenSticky) {
  TempDir t;
  const std::string dir = t.path + "/locks";
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  LockDirAt at(dir);
  Name n("group");
  ASSERT_EQ(chmod(dir.c_str(), 0770), 0);
  EXPECT_EQ(lock_result(n.shm, "dataplane"), refusal(dir, kLockDirRule, 0770, geteuid(), getegid()));
  ASSERT_EQ(chmod(dir.c_str(), 01770), 0);
  EXPECT_EQ(lock_result(n.shm, "dataplane"), "acquired");
  ASSERT_EQ(chmod(dir.c_str(), 0750), 0);
  EXPECT_EQ(lock_result(n.shm, "dataplane"), "acquired");
}

TEST(LockDir, AnotherUsersDirectoryIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a directory to another uid";
  TempDir t;
  const std::string dir = t.path + "/locks";
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(chown(dir.c_str(), 65534, kNogroup), 0);
  LockDirAt at(dir);
  Name n("theirs");
  EXPECT_EQ(lock_result(n.shm, "control"), refusal(dir, kLockDirRule, 0700, 65534, kNogroup));
}

// On the way to it: a directory others may write must be sticky (like /tmp,
// where nobody can rename ours away), and ours or root's.
TEST(LockDir, AParentOthersMayWriteMustBeSticky) {
  TempDir t;
  const std::string parent = t.path + "/open";
  const std::string dir = parent + "/locks";
  ASSERT_EQ(mkdir(parent.c_str(), 0700), 0);
  ASSERT_EQ(chmod(parent.c_str(), 0777), 0);
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  LockDirAt at(dir);
  Name n("parent");
  char buf[600];
  std::snprintf(buf, sizeof buf,
                "%s, on the way to the lock directory %s (channel.lock_dir), is owned by uid %u gid %u with mode 0777: "
                "refusing it; it must be owned by root or by us (uid %u) and writable by others only when sticky "
                "(like /tmp)",
                parent.c_str(), dir.c_str(), static_cast<unsigned>(geteuid()), static_cast<unsigned>(getegid()),
                static_cast<unsigned>(geteuid()));
  EXPECT_EQ(lock_result(n.shm, "control"), buf);
  ASSERT_EQ(chmod(parent.c_str(), 01777), 0);
  EXPECT_EQ(lock_result(n.shm, "control"), "acquired");

  // Missing under a refused parent: refused before anything is made there.
  ASSERT_EQ(chmod(parent.c_str(), 0777), 0);
  const std::string missing = parent + "/new";
  LockDirAt at2(missing);
  std::snprintf(buf, sizeof buf,
                "%s, on the way to the lock directory %s (channel.lock_dir), is owned by uid %u gid %u with mode 0777: "
                "refusing it; it must be owned by root or by us (uid %u) and writable by others only when sticky "
                "(like /tmp)",
                parent.c_str(), missing.c_str(), static_cast<unsigned>(geteuid()), static_cast<unsigned>(getegid()),
                static_cast<unsigned>(geteuid()));
  EXPECT_EQ(lock_result(n.shm, "dataplane"), buf);
  struct stat st {};
  EXPECT_NE(lstat(missing.c_str(), &st), 0) << "made and left behind under a refused parent";
  EXPECT_EQ(errno, ENOENT);
}

// The lock directory itself a symbolic link: refused (where it points could
// change under us); a link on the way (like /var/run -> /run) in a trusted
// directory is followed, and where it points is checked too.
TEST(LockDir, ASymlinkIsRefusedButALinkOnTheWayIsFollowed) {
  TempDir t;
  const std::string real = t.path + "/real";
  ASSERT_EQ(mkdir(real.c_str(), 0755), 0);
  Name n("dirlink");
  {
    const std::string link = t.path + "/link";
    ASSERT_EQ(symlink(real.c_str(), link.c_str()), 0);
    LockDirAt at(link);
    EXPECT_EQ(lock_result(n.shm, "control"),
              "the lock directory " + link + " (channel.lock_dir) is a symbolic link: refusing it (give the real directory)");
  }
  {
    const std::string via = t.path + "/via";
    ASSERT_EQ(symlink(t.path.c_str(), via.c_str()), 0);
    LockDirAt at(via + "/real");
    EXPECT_EQ(lock_result(n.shm, "control"), "acquired");
    // Where it points is a directory others may write: refused.
    ASSERT_EQ(chmod(real.c_str(), 0777), 0);
    EXPECT_NE(lock_result(n.shm, "control").find("with mode 0777: refusing it"), std::string::npos);
  }
  {
    const std::string file = t.path + "/file";
    std::ofstream(file) << "x";
    LockDirAt at(file);
    EXPECT_EQ(lock_result(n.shm, "control"),
              "the lock directory " + file + " (channel.lock_dir) is not a regular file, not a directory: refusing it");
  }
  LockDirAt at("locks");
  EXPECT_EQ(lock_result(n.shm, "control"), "the lock directory locks (channel.lock_dir) is not an absolute path");
}

// Missing: made 0755 (nobody else may make a name), owned by us.
TEST(LockDir, AMissingOneIsMade0755) {
  TempDir t;
  const std::string dir = t.path + "/new";
  LockDirAt at(dir);
  Name n("made");
  InstanceLock l;
  std::string err;
  ASSERT_TRUE(l.acquire(n.shm, "dataplane", err)) << err;
  struct stat st {};
  ASSERT_EQ(lstat(dir.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(st.st_uid, geteuid());
  EXPECT_EQ(l.path(), dir + "/" + n.shm.substr(1) + ".dataplane.lock");
}

// The dataplane (root) makes it for the control plane's user
// (channel.control_user): 1770, group of that user. That user then makes
// its own lock there, but cannot remove the dataplane's (sticky) nor squat
// a name in a directory that is not shared with it (0755: EACCES, said with
// whose directory it is).
TEST(LockDir, AMissingOneSharedWithTheControlUserIs1770ItsGroup) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to act as nobody";
  TempDir t;
  const std::string dir = t.path + "/shared";
  LockDirAt at(dir, "nobody");
  Name n("shared");
  InstanceLock dp;
  std::string err;
  ASSERT_TRUE(dp.acquire(n.shm, "dataplane", err)) << err;
  struct stat st {};
  ASSERT_EQ(lstat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01770u);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, kNogroup);
  EXPECT_EQ(as_nobody([&] {
              const std::string r = lock_result(n.shm, "control");
              if (unlink(n.lock("dataplane").c_str()) == 0) return r + ", and removed the dataplane's lock";
              return r + (errno == EPERM ? ", EPERM" : ", " + std::string(std::strerror(errno)));
            }),
            "acquired, EPERM");
  EXPECT_EQ(lstat(n.lock("dataplane").c_str(), &st), 0);

  // Not shared: 0755 root's.
  const std::string closed = t.path + "/closed";
  LockDirAt at2(closed);
  Name m("closed");
  ASSERT_EQ(lock_result(m.shm, "dataplane"), "acquired");
  EXPECT_EQ(as_nobody([&] {
              const int fd = open((closed + "/squat.lock").c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
              const std::string r = fd >= 0 ? "created" : std::strerror(errno);
              if (fd >= 0) close(fd);
              return r;
            }),
            std::strerror(EACCES));
  EXPECT_EQ(as_nobody([&] { return lock_result(m.shm, "control"); }),
            "cannot open lock file " + m.lock("control") + " (" + m.lock("control") +
                "): Permission denied; the lock directory " + closed +
                " (channel.lock_dir) is owned by uid 0 gid 0 with mode 0755: ntp-control's user (uid 65534) must own "
                "it or be in its group (1770 root:<channel.control_user's group>)");

  // A user that does not exist: nothing is made.
  const std::string nouser = t.path + "/nouser";
  LockDirAt at3(nouser, "ntp-no-such-user-x");
  EXPECT_EQ(lock_result(m.shm, "dataplane"), "cannot make the lock directory " + nouser +
                                               " (channel.lock_dir) for channel.control_user = \"ntp-no-such-user-x\": "
                                               "no such user");
  EXPECT_NE(lstat(nouser.c_str(), &st), 0);
}

TEST(LockDirProblem, TheRuleFromTheStat) {
  struct stat st {};
  st.st_uid = 0;
  st.st_gid = 0;
  const auto dir = [&](unsigned mode, bool holds_locks) {
    st.st_mode = S_IFDIR | mode;
    return lock_dir_problem(st, "d", holds_locks).empty() ? "ok" : "refused";
  };
  EXPECT_STREQ(dir(0755, true), "ok");
  EXPECT_STREQ(dir(0700, true), "ok");
  EXPECT_STREQ(dir(01770, true), "ok");
  EXPECT_STREQ(dir(0775, true), "refused");
  EXPECT_STREQ(dir(0757, true), "refused");
  EXPECT_STREQ(dir(01777, true), "refused");
  // On the way: sticky is enough.
  EXPECT_STREQ(dir(01777, false), "ok");
  EXPECT_STREQ(dir(0775, false), "refused");
  EXPECT_STREQ(dir(0755, false), "ok");
  st.st_uid = geteuid() + 1;
  if (st.st_uid != 0) {
    EXPECT_STREQ(dir(0755, false), "refused");
  }
  st.st_mode = S_IFLNK | 0777;
  st.st_uid = 0;
  EXPECT_EQ(lock_dir_problem(st, "d", false), "");
  EXPECT_EQ(lock_dir_problem(st, "d", true), "d is a symbolic link: refusing it (give the real directory)");
}

}  // namespace
}  // namespace ntp::config
