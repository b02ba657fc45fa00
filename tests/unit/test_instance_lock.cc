// One writer per channel (config/instance_lock.h): the lock a daemon takes
// at start, refused to a second process with who holds it, dropped by the
// kernel when its holder dies; lock files that are not ours alone (another
// user's, group/other bits, a symlink, a hard link) refused with why.
// Files are made in /dev/shm under unique names and removed at the end.
#include "config/instance_lock.h"
#include "tests/support/in_child.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>

namespace ntp::config {
namespace {

// A shm name of this test, and everything made under it removed at the end.
struct Name {
  std::string shm;
  explicit Name(const char* tag) : shm("/ntp-unit-lock-" + std::to_string(getpid()) + "-" + tag) { clean(); }
  ~Name() { clean(); }
  std::string lock(const char* role) const { return lock_path(shm, role); }
  void clean() const {
    for (const char* role : {"control", "dataplane"}) unlink(lock(role).c_str());
    unlink((shm_path(shm) + ".target").c_str());
  }
};

using ntp::testing::in_child;

std::string file_text(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(ShmPath, IsTheNameUnderDevShm) {
  EXPECT_EQ(shm_path("/ntp-DeviceC"), "/dev/shm/ntp-DeviceC");
  EXPECT_EQ(shm_path("ntp-x"), "/dev/shm/ntp-x");
  EXPECT_EQ(lock_path("/ntp-x", "control"), "/dev/shm/ntp-x.control.lock");
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
                           " holds /dev/shm/" + n.shm.substr(1) + ".control.lock)");
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
// given to nobody) is refused and left alone.
TEST(InstanceLock, ALockFileOfAnotherUserIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a file to another uid";
  Name n("planted");
  const std::string path = n.lock("control");
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fchmod(fd, 0666), 0);
  ASSERT_EQ(fchown(fd, 65534, 65534), 0);
  ASSERT_EQ(write(fd, "1\n", 2), 2);
  close(fd);
  InstanceLock l;
  std::string err;
  EXPECT_FALSE(l.acquire(n.shm, "control", err));
  EXPECT_EQ(err, "lock file " + path +
                     " is owned by uid 65534 with mode 0666, not by us (uid 0) with mode 0600: refusing it (planted by "
                     "another user?)");
  EXPECT_EQ(file_text(path), "1\n");  // not written
  // Ours, but readable by others: refused too.
  unlink(path.c_str());
  const int fd2 = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd2, 0);
  ASSERT_EQ(fchmod(fd2, 0644), 0);
  close(fd2);
  EXPECT_FALSE(l.acquire(n.shm, "control", err));
  EXPECT_NE(err.find("is owned by uid 0 with mode 0644, not by us (uid 0) with mode 0600"), std::string::npos) << err;
}

TEST(InstanceLock, ASymlinkOrAHardLinkIsRefused) {
  Name n("links");
  const std::string path = n.lock("control");
  const std::string target = shm_path(n.shm) + ".target";
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

}  // namespace
}  // namespace ntp::config
