// The stats endpoint's pure parts and its socket plumbing over socketpair(),
// a Unix socket in a private directory and the loopback (local users told
// apart by uid; no other network: remote sources, 403 at accept, idle
// connections and slowloris are in tests/integration/test_stats.py).
#include "control/stats_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>

#include "config/host_check.h"
#include "proto/inet.h"

namespace ntp::ctl {
namespace {

using stats::Clock;
using namespace std::chrono_literals;

struct Pair {
  int a = -1, b = -1;
  Pair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0) {
      a = fds[0];
      b = fds[1];
    }
  }
  ~Pair() {
    if (a >= 0) ::close(a);
    if (b >= 0) ::close(b);
  }
};

// A fresh directory of mode 0700 under /tmp, removed with what is in it.
struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/test_stats_server.XXXXXX";
    if (::mkdtemp(t)) path = t;
  }
  ~TempDir() {
    if (!path.empty()) std::system(("rm -rf '" + path + "'").c_str());
  }
};

TEST(DeadlineIo, ReadsWhatArrivesAndStopsAtTheDeadline) {
  Pair p;
  ASSERT_GE(p.a, 0);
  const auto start = Clock::now();
  stats::DeadlineIo io(p.a, start + 300ms, 1000);
  ASSERT_EQ(::write(p.b, "GET", 3), 3);
  char buf[16];
  EXPECT_EQ(io.read(buf, sizeof buf), 3);
  EXPECT_EQ(std::string(buf, 3), "GET");
  EXPECT_FALSE(io.timed_out());
  // Nothing more: the read waits for what is left of the deadline, no more.
  EXPECT_EQ(io.read(buf, sizeof buf), -1);
  EXPECT_TRUE(io.timed_out());
  EXPECT_GE(Clock::now() - start, 300ms);
  EXPECT_LT(Clock::now() - start, 2s);
}

TEST(DeadlineIo, OneDeadlineForAllReadsNotOnePerRead) {
  // A byte every 100 ms: a per-read timeout of 300 ms would never fire;
  // the connection's one deadline does.
  Pair p;
  ASSERT_GE(p.a, 0);
  const auto start = Clock::now();
  stats::DeadlineIo io(p.a, start + 450ms, 1000);
  std::thread dribble([fd = p.b] {
    for (int i = 0; i < 20; i++) {
      if (::send(fd, "x", 1, MSG_NOSIGNAL) != 1) return;
      std::this_thread::sleep_for(100ms);
    }
  });
  size_t got = 0;
  char c;
  while (io.read(&c, 1) == 1) got++;
  EXPECT_TRUE(io.timed_out());
  EXPECT_GE(got, 2u);
  EXPECT_LE(got, 8u);
  EXPECT_LT(Clock::now() - start, 1500ms);
  ::shutdown(p.a, SHUT_RDWR);
  dribble.join();
}

TEST(DeadlineIo, EndOfStreamAndByteBudget) {
  Pair p;
  ASSERT_GE(p.a, 0);
  stats::DeadlineIo io(p.a, Clock::now() + 5s, 5);
  ASSERT_EQ(::write(p.b, "0123456789", 10), 10);
  char buf[16];
  EXPECT_EQ(io.read(buf, sizeof buf), 5);   // the budget caps the read
  EXPECT_EQ(io.read(buf, sizeof buf), -1);  // and then refuses more
  EXPECT_FALSE(io.timed_out());

  Pair q;
  stats::DeadlineIo io2(q.a, Clock::now() + 5s, 100);
  ::shutdown(q.b, SHUT_WR);
  EXPECT_EQ(io2.read(buf, sizeof buf), 0);  // end of stream, at once
  EXPECT_FALSE(io2.timed_out());
}

TEST(DeadlineIo, WriteGivesUpAtTheDeadlineWhenNobodyReads) {
  Pair p;
  ASSERT_GE(p.a, 0);
  const int small = 4096;
  ::setsockopt(p.a, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  const auto start = Clock::now();
  stats::DeadlineIo io(p.a, start + 300ms, 100);
  const std::string big(4 << 20, 'x');  // far more than the buffers hold
  EXPECT_EQ(io.write(big.data(), big.size()), -1);
  EXPECT_TRUE(io.timed_out());
  EXPECT_LT(Clock::now() - start, 2s);

  Pair q;
  stats::DeadlineIo ok(q.a, Clock::now() + 5s, 100);
  EXPECT_EQ(ok.write("hello", 5), 5);
  char buf[8];
  EXPECT_EQ(::read(q.b, buf, sizeof buf), 5);
}

TEST(Admission, BoundsAllAndEachSource) {
  stats::Admission a(4, 2);
  EXPECT_TRUE(a.admit("10.0.0.1"));
  EXPECT_TRUE(a.admit("10.0.0.1"));
  EXPECT_FALSE(a.admit("10.0.0.1"));  // its share
  EXPECT_EQ(a.open_from("10.0.0.1"), 2u);
  EXPECT_TRUE(a.admit("10.0.0.2"));
  EXPECT_TRUE(a.admit("unix"));
  EXPECT_FALSE(a.admit("10.0.0.3"));  // all four taken
  EXPECT_EQ(a.open(), 4u);
  a.release("10.0.0.1");
  EXPECT_EQ(a.open(), 3u);
  EXPECT_TRUE(a.admit("10.0.0.3"));
  a.release("192.0.2.1");  // never admitted: changes nothing
  EXPECT_EQ(a.open(), 4u);
  for (const char* s : {"10.0.0.1", "10.0.0.2", "unix", "10.0.0.3"}) a.release(s);
  EXPECT_EQ(a.open(), 0u);
  EXPECT_EQ(a.open_from("10.0.0.1"), 0u);
}

TEST(Admission, RemoteSourcesLeaveTheLocalReserve) {
  // 64 slots, 16 a source: remote sources together get 64 - 17.
  const size_t reserve = stats::local_reserve(64, 16);
  EXPECT_EQ(reserve, 17u);
  stats::Admission a(64, 16, reserve);
  size_t remote = 0;
  for (uint32_t host = 1; host <= 10; host++)
    for (int i = 0; i < 16; i++) remote += a.admit(proto::ipv4_to_string(0x0A000000 + host), false);
  EXPECT_EQ(remote, 47u);
  EXPECT_EQ(a.open_remote(), 47u);
  EXPECT_FALSE(a.admit("10.0.0.99", false));
  // One local user at its share ...
  for (int i = 0; i < 16; i++) EXPECT_TRUE(a.admit("uid:65534", true));
  EXPECT_FALSE(a.admit("uid:65534", true));
  // ... and the operator still gets in; then all 64 are taken.
  EXPECT_TRUE(a.admit("uid:0", true));
  EXPECT_EQ(a.open(), 64u);
  EXPECT_FALSE(a.admit("uid:1000", true));
  // A remote slot given back is for remote sources again.
  a.release("10.0.0.1", false);
  EXPECT_EQ(a.open_remote(), 46u);
  EXPECT_TRUE(a.admit("10.0.0.99", false));
  EXPECT_FALSE(a.admit("10.0.0.98", false));

  // Every size keeps at least one slot for this host; the one slot of
  // max_connections = 1 is this host's, so a remote client never takes it.
  for (size_t max = 2; max <= 4096; max++) {
    const size_t per_source = std::max<size_t>(1, max / 4);
    const size_t r = stats::local_reserve(max, per_source);
    ASSERT_GE(r, 1u) << max;
    ASSERT_LT(r, max) << max;  // and remote clients still get one
  }
  EXPECT_EQ(stats::local_reserve(2, 1), 1u);
  EXPECT_EQ(stats::local_reserve(8, 2), 3u);
  EXPECT_EQ(stats::local_reserve(1, 1), 1u);
  stats::Admission one(1, 1, stats::local_reserve(1, 1));
  EXPECT_FALSE(one.admit("10.0.0.1", false));
  EXPECT_TRUE(one.admit("uid:0", true));
  stats::Admission two(2, 1, stats::local_reserve(2, 1));
  EXPECT_TRUE(two.admit("10.0.0.1", false));
  EXPECT_FALSE(two.admit("10.0.0.2", false));
  EXPECT_TRUE(two.admit("uid:0", true));
}

TEST(WorkerShare, RemoteSourcesLeaveThreadsForLocalClients) {
  stats::WorkerShare w(StatsServer::kWorkers, StatsServer::kWorkersPerSource, StatsServer::kLocalWorkers);
  // Two slowloris sources: two threads each wanted, three for all remote.
  EXPECT_TRUE(w.may_take("192.0.2.5", false));
  w.take("192.0.2.5", false);
  w.take("192.0.2.5", false);
  EXPECT_FALSE(w.may_take("192.0.2.5", false));  // its share
  w.take("192.0.2.6", false);
  EXPECT_EQ(w.held_remote(), 3u);
  EXPECT_FALSE(w.may_take("192.0.2.6", false));  // remote sources' part
  EXPECT_FALSE(w.may_take("192.0.2.7", false));
  // A local user at its share, and the operator still has a thread.
  w.take("uid:65534", true);
  w.take("uid:65534", true);
  EXPECT_FALSE(w.may_take("uid:65534", true));
  EXPECT_TRUE(w.may_take("uid:0", true));
  w.take("uid:0", true);
  EXPECT_EQ(3u + 2u + 1u, StatsServer::kWorkers);  // all six busy now
  w.give_back("192.0.2.5", false);
  EXPECT_EQ(w.held_by("192.0.2.5"), 1u);
  EXPECT_TRUE(w.may_take("192.0.2.7", false));
  w.give_back("203.0.113.1", false);  // never taken: changes nothing
  EXPECT_EQ(w.held_remote(), 2u);
}

TEST(SourceKey, LocalClientsByUidAllOfTheLoopbackAsOne) {
  EXPECT_TRUE(stats::is_local(false, 0x7F000001));
  EXPECT_TRUE(stats::is_local(false, 0x7F000041));  // 127.0.0.65
  EXPECT_TRUE(stats::is_local(true, 0xC0A84D01));   // our own address
  EXPECT_FALSE(stats::is_local(false, 0xC0A84D02));
  // Without the owner's uid, every loopback address is the one source.
  EXPECT_EQ(stats::source_key(true, std::nullopt, 0x7F000002), "local");
  EXPECT_EQ(stats::source_key(true, std::nullopt, 0x7F000041), "local");
  EXPECT_EQ(stats::source_key(true, 0u, 0x7F000001), "uid:0");
  EXPECT_EQ(stats::source_key(true, 65534u, 0x7F000009), "uid:65534");
  EXPECT_EQ(stats::source_key(false, 0u, 0xC0A84D02), "192.168.77.2");
}

// served and forbidden are disjoint counts, each printed as it is: no
// difference that a 403 whose send failed (counted forbidden, never served)
// would take out of the workers' answers.
TEST(HostAddresses, AnyOfTheHostsAddressesFetchedAtMostOnceASecond) {
  std::vector<uint32_t> now_listed{0xC0A84D01, 0x0A00013D};
  int calls = 0;
  stats::HostAddresses h([&] {
    calls++;
    return now_listed;
  });
  const auto t0 = Clock::now();
  EXPECT_TRUE(h.contains(0x0A00013D, t0));
  EXPECT_TRUE(h.contains(0xC0A84D01, t0));
  EXPECT_FALSE(h.contains(0xC0A84D02, t0));
  // A flood within the second: no new list.
  for (int i = 0; i < 1000; i++) EXPECT_FALSE(h.contains(0xC0A84D02, t0 + std::chrono::milliseconds(i)));
  EXPECT_EQ(calls, 1);
  // An address added counts after the second, one removed no longer does.
  now_listed = {0xC0A84D02};
  EXPECT_TRUE(h.contains(0xC0A84D01, t0 + 999ms));
  EXPECT_TRUE(h.contains(0xC0A84D02, t0 + 1s));
  EXPECT_FALSE(h.contains(0xC0A84D01, t0 + 1s));
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(h.refreshes(), 2u);
  // The real list has this host's loopback address when lo is up.
  const std::vector<uint32_t> real = stats::list_host_ipv4();
  if (!real.empty()) {
    EXPECT_NE(std::find(real.begin(), real.end(), 0x7F000001u), real.end());
  }
}

TEST(StatsServer, EndpointMetrics) {
  StatsServer::Counters c;
  c.admitted = 10;
  c.shed = 1990;
  c.timed_out = 7;
  c.served = 3;
  c.forbidden = 1;
  c.open = 2;
  const std::string m = StatsServer::endpoint_metrics(c);
  for (const char* line :
       {"ntp_stats_connections_total{result=\"admitted\"} 10\n", "ntp_stats_connections_total{result=\"shed\"} 1990\n",
        "ntp_stats_connections_total{result=\"timed_out\"} 7\n", "ntp_stats_requests_total{result=\"served\"} 3\n",
        "ntp_stats_requests_total{result=\"forbidden\"} 1\n", "ntp_stats_connections_open 2\n",
        "# TYPE ntp_stats_connections_open gauge\n"})
    EXPECT_NE(m.find(line), std::string::npos) << line;
}

TEST(QueryAccess, LoopbackAndUnixAlwaysOthersByClass) {
  const proto::AccessTable table(
      {{0x0A000000, 8, proto::AccessClass::kQuery}, {0x0A010000, 16, proto::AccessClass::kSynchronization},
       {0x0A020000, 16, proto::AccessClass::kServer}, {0x0A030000, 16, proto::AccessClass::kPeer},
       {0x0A040000, 16, proto::AccessClass::kDeny}},
      proto::AccessClass::kLimited);
  EXPECT_TRUE(stats::may_query(table, true, 0));
  EXPECT_TRUE(stats::may_query(table, false, 0x7F000001));
  EXPECT_TRUE(stats::may_query(table, false, 0x7F0000FE));
  EXPECT_TRUE(stats::may_query(table, false, 0x0A000001));   // query
  EXPECT_FALSE(stats::may_query(table, false, 0x0A010001));  // synchronization: time only
  EXPECT_TRUE(stats::may_query(table, false, 0x0A020001));   // server
  EXPECT_TRUE(stats::may_query(table, false, 0x0A030001));   // peer
  EXPECT_FALSE(stats::may_query(table, false, 0x0A040001));  // deny
  EXPECT_FALSE(stats::may_query(table, false, 0xC0000201));  // default class limited
  EXPECT_FALSE(stats::may_query(proto::AccessTable(), false, 0xC0000201));
}

TEST(ParseListen, TcpAndUnix) {
  stats::ListenAddress a;
  std::string err;
  ASSERT_TRUE(stats::parse_listen("10.0.1.31:9123", a, err)) << err;
  EXPECT_FALSE(a.unix_socket);
  EXPECT_EQ(a.ipv4, 0x0A00011Fu);
  EXPECT_EQ(a.port, 9123);
  ASSERT_TRUE(stats::parse_listen("localhost:80", a, err)) << err;
  EXPECT_EQ(a.ipv4, 0x7F000001u);
  ASSERT_TRUE(stats::parse_listen("unix:/run/ntp-appliance/DeviceC.sock", a, err)) << err;
  EXPECT_TRUE(a.unix_socket);
  EXPECT_EQ(a.path, "/run/ntp-appliance/DeviceC.sock");
  EXPECT_FALSE(stats::parse_listen("unix:relative.sock", a, err));
  EXPECT_FALSE(stats::parse_listen("unix:/" + std::string(200, 'x'), a, err));
  EXPECT_FALSE(stats::parse_listen("host.example:80", a, err));
  EXPECT_NE(err.find("host.example:80"), std::string::npos);
  EXPECT_FALSE(stats::parse_listen("127.0.0.1", a, err));
}

// GET path over the Unix socket with httplib's own client parsing the answer.
class UnixGet final : public httplib::ClientImpl {
 public:
  explicit UnixGet(std::string path) : httplib::ClientImpl("localhost", 80), path_(std::move(path)) {}

 protected:
  bool create_and_connect_socket(Socket& socket, httplib::Error& error) override {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path_.c_str(), sizeof sa.sun_path - 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) {
      socket.sock = fd;
      return true;
    }
    if (fd >= 0) ::close(fd);
    error = httplib::Error::Connection;
    return false;
  }

 private:
  std::string path_;
};

int connect_unix(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) return fd;
  if (fd >= 0) ::close(fd);
  return -1;
}

// Polls until cond() or the timeout; true when cond() held.
template <class F>
bool eventually(F cond, std::chrono::milliseconds timeout = 5000ms) {
  const auto end = Clock::now() + timeout;
  while (Clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return cond();
}

status::Status small_status() {
  status::Status s;
  s.system.sysname = "unit";
  s.system.synchronized = true;
  s.system.leap = 0;
  s.system.stratum = 2;
  return s;
}

TEST(StatsServerUnix, ServesWithMode0660AndRemovesTheSocketAtStop) {
  TempDir d;
  ASSERT_FALSE(d.path.empty());
  const std::string sock = d.path + "/stats.sock";
  StatsServer srv;
  StatsOptions o;
  o.listen = "unix:" + sock;
  o.max_connections = 8;
  o.request_timeout_s = 2;
  std::string err;
  ASSERT_TRUE(srv.start(o, err)) << err;
  struct stat st;
  ASSERT_EQ(::lstat(sock.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  {
    UnixGet cli(sock);
    auto res = cli.Get("/status");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 503);  // nothing published yet
  }
  srv.publish(small_status());
  {
    UnixGet cli(sock);
    auto res = cli.Get("/status");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    std::string e;
    const auto back = status::from_json(res->body, e);
    ASSERT_TRUE(back.has_value()) << e;
    EXPECT_EQ(back->system.sysname, "unit");
    EXPECT_EQ(res->get_header_value("Connection"), "close");
  }
  {
    UnixGet cli(sock);
    auto res = cli.Get("/metrics");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
    EXPECT_NE(res->body.find("ntp_stratum 2\n"), std::string::npos);
    EXPECT_NE(res->body.find("\nntp_stats_connections_total{result=\"admitted\"} "), std::string::npos);
  }
  // Counted once the worker is done with it, which may be just after the
  // client has its answer.
  EXPECT_TRUE(eventually([&] { return srv.counters().served >= 3; }));
  srv.stop();
  EXPECT_NE(::lstat(sock.c_str(), &st), 0);
  EXPECT_EQ(errno, ENOENT);
}

TEST(StatsServerUnix, IdleConnectionsAreShedAndTimedOutAndOthersStillServed) {
  TempDir d;
  ASSERT_FALSE(d.path.empty());
  const std::string sock = d.path + "/stats.sock";
  StatsServer srv;
  StatsOptions o;
  o.listen = "unix:" + sock;
  o.max_connections = 16;  // 4 per source; every Unix client is one source
  o.request_timeout_s = 1;
  std::string err;
  ASSERT_TRUE(srv.start(o, err)) << err;
  srv.publish(small_status());
  std::vector<int> idle;
  for (int i = 0; i < 40; i++) idle.push_back(connect_unix(sock));
  for (int fd : idle) ASSERT_GE(fd, 0);
  // All but the source's share are closed at once; those wait without a thread.
  ASSERT_TRUE(eventually([&] { return srv.counters().admitted + srv.counters().shed == 40; }));
  EXPECT_EQ(srv.counters().admitted, 4u);
  EXPECT_EQ(srv.counters().shed, 36u);
  EXPECT_EQ(srv.counters().open, 4u);
  // ... and are closed at their deadline, with nothing sent.
  ASSERT_TRUE(eventually([&] { return srv.counters().timed_out == 4; }, 4000ms));
  EXPECT_EQ(srv.counters().open, 0u);
  char c;
  EXPECT_EQ(::read(idle[0], &c, 1), 0);
  for (int fd : idle) ::close(fd);
  // A client now gets its answer.
  UnixGet cli(sock);
  auto res = cli.Get("/status");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST(StatsServerUnix, RefusesAnUnsafeDirectoryAndALiveSocket) {
  TempDir d;
  ASSERT_FALSE(d.path.empty());
  std::string err;
  {
    const std::string open_dir = d.path + "/open";
    ASSERT_EQ(::mkdir(open_dir.c_str(), 0777), 0);
    ASSERT_EQ(::chmod(open_dir.c_str(), 0777), 0);
    StatsServer srv;
    StatsOptions o;
    o.listen = "unix:" + open_dir + "/s.sock";
    EXPECT_FALSE(srv.start(o, err));
    EXPECT_NE(err.find("writable by others (mode 0777)"), std::string::npos) << err;
    EXPECT_FALSE(srv.running());
  }
  {
    const std::string link = d.path + "/link";
    ASSERT_EQ(::symlink(d.path.c_str(), link.c_str()), 0);
    StatsServer srv;
    StatsOptions o;
    o.listen = "unix:" + link + "/s.sock";
    EXPECT_FALSE(srv.start(o, err));
    EXPECT_NE(err.find("is a symlink"), std::string::npos) << err;
  }
  {
    const std::string file = d.path + "/plain";
    FILE* f = std::fopen(file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
    StatsServer srv;
    StatsOptions o;
    o.listen = "unix:" + file;
    EXPECT_FALSE(srv.start(o, err));
    EXPECT_NE(err.find("exists and is not a socket"), std::string::npos) << err;
    struct stat st;
    EXPECT_EQ(::lstat(file.c_str(), &st), 0);  // left alone
  }
  {
    const std::string sock = d.path + "/live.sock";
    StatsServer first;
    StatsOptions o;
    o.listen = "unix:" + sock;
    ASSERT_TRUE(first.start(o, err)) << err;
    StatsServer second;
    EXPECT_FALSE(second.start(o, err));
    EXPECT_NE(err.find("another process listens"), std::string::npos) << err;
    first.stop();
    // A stale socket (its server gone without removing it) is replaced.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, sock.c_str(), sizeof sa.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa), 0);
    ::close(fd);
    ASSERT_TRUE(second.start(o, err)) << err;
    second.publish(small_status());
    UnixGet cli(sock);
    auto res = cli.Get("/status");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200);
  }
}

TEST(StatsServer, StartAgainAfterAFailureAndStopTwice) {
  TempDir d;
  ASSERT_FALSE(d.path.empty());
  StatsServer srv;
  StatsOptions o;
  o.listen = "unix:" + d.path + "/missing/s.sock";
  std::string err;
  EXPECT_FALSE(srv.start(o, err));
  EXPECT_NE(err.find("does not exist"), std::string::npos) << err;
  o.listen = "unix:" + d.path + "/s.sock";
  ASSERT_TRUE(srv.start(o, err)) << err;
  EXPECT_TRUE(srv.running());
  EXPECT_FALSE(srv.start(o, err));  // already serving
  srv.stop();
  srv.stop();
  EXPECT_FALSE(srv.running());
}

// A port on 127.0.0.1 free a moment ago (the kernel's choice).
uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0)
    port = ntohs(sa.sin_port);
  ::close(fd);
  return port;
}

// A TCP connection from src (host order) to 127.0.0.1:port; -1 on failure.
int connect_loopback(uint32_t src, uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in from{}, to{};
  from.sin_family = to.sin_family = AF_INET;
  from.sin_addr.s_addr = htonl(src);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(port);
  if (fd >= 0 && ::bind(fd, reinterpret_cast<const sockaddr*>(&from), sizeof from) == 0 &&
      ::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0)
    return fd;
  if (fd >= 0) ::close(fd);
  return -1;
}

// A child process as uid/gid 65534 that opens n connections to
// 127.0.0.1:port, from 127.0.0.2, .3, ... (one address each), reports how
// many it opened and holds them until release().
class NobodyClients {
 public:
  NobodyClients(uint16_t port, int n) {
    if (::pipe(ready_) != 0 || ::pipe(done_) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(ready_[0]);
      ::close(done_[1]);
      unsigned char opened = 0;
      if (::setgid(65534) == 0 && ::setuid(65534) == 0)
        for (int i = 0; i < n; i++) opened += connect_loopback(0x7F000002 + static_cast<uint32_t>(i), port) >= 0;
      (void)!::write(ready_[1], &opened, 1);
      char c;
      (void)!::read(done_[0], &c, 1);  // until the parent lets go
      _exit(0);
    }
    ::close(ready_[1]);
    ::close(done_[0]);
  }
  // How many the child opened; -1 if it failed to say.
  int opened() {
    unsigned char n;
    return ::read(ready_[0], &n, 1) == 1 ? n : -1;
  }
  void release() {
    if (pid_ <= 0) return;
    ::close(done_[1]);
    ::close(ready_[0]);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  ~NobodyClients() { release(); }
  pid_t pid() const { return pid_; }

 private:
  int ready_[2] = {-1, -1}, done_[2] = {-1, -1};
  pid_t pid_ = -1;
};

TEST(PeerUid, TheOwnerOfALoopbackClientsSocket) {
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  ASSERT_EQ(::bind(lfd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  ASSERT_EQ(::listen(lfd, 8), 0);
  auto uid_of_next = [&]() -> std::optional<uint32_t> {
    const int fd = ::accept(lfd, nullptr, nullptr);
    sockaddr_in peer{}, local{};
    socklen_t pl = sizeof peer, ll = sizeof local;
    ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll);
    auto uid = stats::tcp_peer_uid(peer.sin_addr.s_addr, peer.sin_port, local.sin_addr.s_addr, local.sin_port);
    ::close(fd);
    return uid;
  };
  const int mine = connect_loopback(0x7F000001, ntohs(sa.sin_port));
  ASSERT_GE(mine, 0);
  EXPECT_EQ(uid_of_next(), std::optional<uint32_t>(::getuid()));
  ::close(mine);
  NobodyClients nobody(ntohs(sa.sin_port), 1);
  ASSERT_GT(nobody.pid(), 0);
  ASSERT_EQ(nobody.opened(), 1);
  EXPECT_EQ(uid_of_next(), std::optional<uint32_t>(65534));
  nobody.release();
  // A 4-tuple nobody has: no answer rather than someone else's uid.
  EXPECT_EQ(stats::tcp_peer_uid(htonl(0x7F000003), htons(1), htonl(INADDR_LOOPBACK), sa.sin_port), std::nullopt);
  ::close(lfd);
}

// nobody connects and closes before we accept: its end is a FIN_WAIT2 /
// TIME_WAIT mini-socket whose uid the kernel reports as 0. It must not be
// taken for root's (the operator's slots and worker share).
TEST(PeerUid, AClientThatClosedBeforeAcceptIsNobodysNotRoots) {
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  ASSERT_EQ(::bind(lfd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  ASSERT_EQ(::listen(lfd, 8), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    int fd = -1;
    if (::setgid(65534) == 0 && ::setuid(65534) == 0) fd = connect_loopback(0x7F000002, ntohs(sa.sin_port));
    _exit(fd >= 0 && ::close(fd) == 0 ? 0 : 1);
  }
  ASSERT_GT(pid, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child could not connect as nobody";
  const int fd = ::accept(lfd, nullptr, nullptr);
  ASSERT_GE(fd, 0);
  sockaddr_in peer{}, local{};
  socklen_t pl = sizeof peer, ll = sizeof local;
  ASSERT_EQ(::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll), 0);
  EXPECT_EQ(stats::tcp_peer_uid(peer.sin_addr.s_addr, peer.sin_port, local.sin_addr.s_addr, local.sin_port),
            std::nullopt);
  ::close(fd);
  ::close(lfd);
}

TEST(StatsServerLoopback, OneLocalUserOnAllOfTheLoopbackCannotShedTheOperator) {
  const uint16_t port = free_loopback_port();
  ASSERT_NE(port, 0);
  StatsServer srv;
  StatsOptions o;
  o.listen = "127.0.0.1:" + std::to_string(port);
  o.max_connections = 16;  // 4 a source, 5 kept for local ones: here all are local
  o.request_timeout_s = 3;
  std::string err;
  ASSERT_TRUE(srv.start(o, err)) << err;
  srv.publish(small_status());
  // 40 idle connections, each from its own loopback address, all nobody's:
  // one source, its share of four.
  NobodyClients nobody(port, 40);
  ASSERT_EQ(nobody.opened(), 40);
  ASSERT_TRUE(eventually([&] { return srv.counters().admitted + srv.counters().shed == 40; }));
  EXPECT_EQ(srv.counters().admitted, 4u);
  EXPECT_EQ(srv.counters().shed, 36u);
  // root (the operator, ntpctl) is a source of its own: answered at once.
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(2, 0);
  auto res = cli.Get("/status");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  nobody.release();
  srv.stop();
}

// A Unix-socket server whose accept() the test replaces.
struct SeamServer {
  TempDir d;
  std::string sock;
  StatsServer srv;
  void start(std::function<int(int)> accept_fn) {
    sock = d.path + "/stats.sock";
    StatsOptions o;
    o.listen = "unix:" + sock;
    o.max_connections = 8;
    o.request_timeout_s = 2;
    srv.set_accept(std::move(accept_fn));
    std::string err;
    ASSERT_TRUE(srv.start(o, err)) << err;
    srv.publish(small_status());
  }
};

bool fd_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

bool pipe_works(const int p[2]) {
  char c = 'x';
  return ::write(p[1], &c, 1) == 1 && ::read(p[0], &c, 1) == 1 && c == 'x';
}

TEST(StatsServerAccept, OutOfDescriptorsKeepsTheListenerAndEveryOtherFile) {
  // ENFILE is what httplib closed its listener for (and then, with the
  // number kept, whatever file got it next, once a second).
  SeamServer s;
  std::atomic<int> failures{5};
  s.start([&](int lfd) {
    if (failures > 0) {
      failures--;
      errno = ENFILE;
      return -1;
    }
    return ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  });
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  // The request waits in the backlog while accept fails, then is answered.
  UnixGet cli(s.sock);
  auto res = cli.Get("/status");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(s.srv.accept_resource_failures(), 5u);
  EXPECT_EQ(s.srv.listener_reopens(), 0u);
  EXPECT_TRUE(pipe_works(p));
  ::close(p[0]);
  ::close(p[1]);
}

TEST(StatsServerAccept, ABrokenListenerIsReopenedAndItsOldNumberLeftToItsNewOwner) {
  SeamServer s;
  std::atomic<int> failures{1};
  std::atomic<int> broken_fd{-1};
  s.start([&](int lfd) {
    if (failures.exchange(0) > 0) {
      broken_fd = lfd;
      errno = EINVAL;
      return -1;
    }
    return ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  });
  const int first = connect_unix(s.sock);  // makes the listener readable: accept fails
  ASSERT_GE(first, 0);
  ASSERT_TRUE(eventually([&] { return broken_fd >= 0 && !fd_open(broken_fd); }));
  // The lowest free number: the broken listener's. The server must never
  // touch it again (httplib closed it once a second).
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  EXPECT_EQ(p[0], broken_fd.load());
  ASSERT_TRUE(eventually([&] { return s.srv.listener_reopens() == 1; }, 4000ms));
  UnixGet cli(s.sock);
  auto res = cli.Get("/status");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_TRUE(pipe_works(p));
  s.srv.stop();  // closes its own listener, not the pipe
  EXPECT_TRUE(pipe_works(p));
  ::close(p[0]);
  ::close(p[1]);
  ::close(first);
}

}  // namespace
}  // namespace ntp::ctl
