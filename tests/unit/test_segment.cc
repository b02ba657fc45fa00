// The dataplane's side of the channel (dataplane/segment.h): the segment it
// creates is one proto::check_segment accepts (rings by rte_ring_init as
// the control plane checks them), private (0600, ours or
// channel.control_user's), made only while holding the dataplane lock: a
// second dataplane is refused and leaves the first one's segment alone,
// while a stale or planted file at the name (another user's, a symlink) is
// replaced without following it. Under unique names in /dev/shm.
#include "dataplane/segment.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <fstream>
#include <string>

#include "config/instance_lock.h"
#include "proto/channel_abi.h"

namespace ntp::dp {
namespace {

struct Shm {
  std::string name;
  explicit Shm(const char* tag) : name("/ntp-unit-dpseg-" + std::to_string(getpid()) + "-" + tag) { clean(); }
  ~Shm() { clean(); }
  std::string path() const { return config::shm_path(name); }
  std::string target() const { return path() + ".target"; }
  void clean() const {
    unlink(path().c_str());
    unlink(target().c_str());
    unlink(config::lock_path(name, "dataplane").c_str());
  }
};

std::string file_text(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(Segment, CreatesWhatTheControlPlaneAccepts) {
  Shm s("good");
  Segment seg;
  std::string err;
  ASSERT_TRUE(seg.create(s.name, 2, 256, err)) << err;
  const proto::SegmentHeader& h = *seg.header();
  EXPECT_EQ(proto::check_segment(&h, h.total_size), "");
  EXPECT_EQ(h.n_workers, 2u);
  EXPECT_EQ(h.ring_size, 256u);
  struct stat st {};
  ASSERT_EQ(lstat(s.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, geteuid());
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), h.total_size);
  // It took the dataplane lock (main() had not).
  EXPECT_TRUE(config::InstanceLock::held_here(s.name, "dataplane"));
  seg.destroy();
  EXPECT_NE(lstat(s.path().c_str(), &st), 0);
}

TEST(Segment, GivenToTheControlUser) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give a file to another user";
  Shm s("user");
  Segment seg;
  std::string err;
  ASSERT_TRUE(seg.create(s.name, 1, 64, err, "nobody")) << err;
  struct stat st {};
  ASSERT_EQ(lstat(s.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  Shm s2("nouser");
  Segment none;
  EXPECT_FALSE(none.create(s2.name, 1, 64, err, "no-such-user-here"));
  EXPECT_EQ(err, "channel.control_user = \"no-such-user-here\": no such user");
  EXPECT_NE(lstat(s2.path().c_str(), &st), 0);
}

// A second dataplane (forked before the first took the lock, so it holds
// nothing of it) is refused and does not touch the first one's segment.
TEST(Segment, ASecondDataplaneIsRefusedAndLeavesTheSegmentAlone) {
  Shm s("second");
  int go[2], result[2];
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(result), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    close(go[1]);
    close(result[0]);
    char c;
    (void)!read(go[0], &c, 1);
    Segment second;
    std::string e;
    const std::string out = second.create(s.name, 1, 64, e) ? std::string("created") : e;
    (void)!write(result[1], out.data(), out.size());
    _exit(0);
  }
  close(go[0]);
  close(result[1]);
  Segment first;
  std::string err;
  ASSERT_TRUE(first.create(s.name, 1, 64, err)) << err;
  struct stat before {};
  ASSERT_EQ(lstat(s.path().c_str(), &before), 0);
  (void)!write(go[1], "x", 1);
  close(go[1]);
  std::string child;
  char buf[512];
  for (ssize_t n; (n = read(result[0], buf, sizeof buf)) > 0;) child.append(buf, static_cast<size_t>(n));
  close(result[0]);
  waitpid(pid, nullptr, 0);
  EXPECT_EQ(child, "ntp-dataplane for " + s.name + " is already running (pid " + std::to_string(getpid()) +
                       " holds " + config::lock_path(s.name, "dataplane") + ")");
  struct stat after {};
  ASSERT_EQ(lstat(s.path().c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(proto::check_segment(first.header(), first.header()->total_size), "");
}

// What a dead dataplane or another user left at the name goes; ours is a
// new file. A symlink is removed, not followed: its target is untouched.
TEST(Segment, AStaleOrPlantedFileIsReplacedNotFollowed) {
  Shm s("planted");
  {
    const int fd = open(s.path().c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(fchmod(fd, 0666), 0);
    if (geteuid() == 0) {
      ASSERT_EQ(fchown(fd, 65534, 65534), 0);
    }
    ASSERT_EQ(write(fd, "junk", 4), 4);
    close(fd);
  }
  {
    Segment seg;
    std::string err;
    ASSERT_TRUE(seg.create(s.name, 1, 64, err)) << err;
    struct stat st {};
    ASSERT_EQ(lstat(s.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, geteuid());
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(proto::check_segment(seg.header(), seg.header()->total_size), "");
    seg.destroy();
  }
  {
    const int fd = open(s.target().c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, "precious", 8), 8);
    close(fd);
    ASSERT_EQ(symlink(s.target().c_str(), s.path().c_str()), 0);
    Segment seg;
    std::string err;
    ASSERT_TRUE(seg.create(s.name, 1, 64, err)) << err;
    struct stat st {};
    ASSERT_EQ(lstat(s.path().c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(file_text(s.target()), "precious");
    seg.destroy();
  }
}

}  // namespace
}  // namespace ntp::dp
