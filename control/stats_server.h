// The stats endpoint: /metrics (Prometheus text) and /status (JSON), each
// rendered from the latest status snapshot, which the control loop replaces
// once a second. The control loop only ever swaps a pointer under a short
// lock; nothing a client does can hold it up.
//
// cpp-httplib 0.11.4 parses HTTP; around it, what keeps the endpoint from
// being exhausted (issue 9: idle connections, slowloris) and the operator
// from being locked out:
//   - our own accept thread (not httplib's loop, which closes the listener
//     on any accept error but EMFILE and keeps its stale number) admits a
//     connection or refuses it at once: at most stats.max_connections open,
//     at most a quarter of them from one source;
//   - a source is a remote IPv4 address, or, for a client on this host (the
//     Unix socket, 127.0.0.0/8, a TCP peer at any of this host's addresses),
//     the uid that owns the client's socket (SO_PEERCRED, or the
//     kernel's socket table for TCP); a local client whose uid cannot be
//     found counts as the one source "local";
//   - a source without the query right (access.query, server or peer) gets
//     403 at accept and never takes a slot or a worker;
//   - remote sources together hold at most stats.max_connections minus a
//     reserve (a quarter plus one) and kWorkers minus kLocalWorkers of the
//     threads: one local user filling its share and every remote source
//     filling theirs still leave a slot and a thread for the operator;
//   - an admitted connection waits in one poll() set (no thread) until its
//     request starts to arrive;
//   - a fixed pool of kWorkers threads serves one request per connection
//     (Connection: close), reading and writing through a stream with ONE
//     total deadline (stats.request_timeout_s) and a byte budget; one source
//     has at most kWorkersPerSource of the threads at a time.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "control/status/status.h"
#include "proto/access.h"

namespace ntp::config {
struct Config;
}

namespace ntp::ctl {

namespace stats {

using Clock = std::chrono::steady_clock;

// The reads and writes of one connection, all within one deadline: each
// waits in poll() for what is left of it, so a client dribbling a byte a
// second cannot stretch a request beyond it. Reads stop after max_read
// bytes (a GET is a few hundred; nothing we serve needs a body).
class DeadlineIo {
 public:
  DeadlineIo(int fd, Clock::time_point deadline, size_t max_read) : fd_(fd), deadline_(deadline), budget_(max_read) {}
  // Up to n bytes as soon as some are there; 0 at end of stream; -1 at the
  // deadline, over the budget or on an error.
  ssize_t read(char* p, size_t n);
  // All n bytes, or -1 (deadline, error, peer gone).
  ssize_t write(const char* p, size_t n);
  // Whether the fd becomes readable (writable) before the deadline.
  bool wait_readable() const { return wait(true); }
  bool wait_writable() const { return wait(false); }
  bool timed_out() const { return timed_out_; }
  int fd() const { return fd_; }

 private:
  bool wait(bool for_read) const;
  int fd_;
  Clock::time_point deadline_;
  size_t budget_;
  mutable bool timed_out_ = false;
};

// How many connections are open, in all and per source (source_key()):
// admit() says whether one more may be. Remote sources together stay within
// max_open - local_reserve; the reserve is for clients on this host.
class Admission {
 public:
  Admission(size_t max_open, size_t max_per_source, size_t local_reserve = 0)
      : max_open_(max_open), max_per_source_(max_per_source), local_reserve_(std::min(local_reserve, max_open)) {}
  bool admit(const std::string& source, bool local = false);
  void release(const std::string& source, bool local = false);
  size_t open() const;
  size_t open_from(const std::string& source) const;
  size_t open_remote() const;

 private:
  mutable std::mutex mu_;
  size_t max_open_, max_per_source_, local_reserve_;
  size_t open_ = 0, open_remote_ = 0;
  std::map<std::string, size_t> per_source_;
};

// Which ready connections the workers may take: one source at most
// per_source at a time, remote sources together at most workers -
// local_reserved (the rest is for clients on this host). Not locked: the
// server's queue mutex guards it.
class WorkerShare {
 public:
  WorkerShare(size_t workers, size_t per_source, size_t local_reserved)
      : remote_cap_(workers - std::min(workers, local_reserved)), per_source_(per_source) {}
  bool may_take(const std::string& source, bool local) const;
  void take(const std::string& source, bool local);
  void give_back(const std::string& source, bool local);
  size_t held_by(const std::string& source) const;
  size_t held_remote() const { return remote_; }

 private:
  size_t remote_cap_, per_source_;
  size_t remote_ = 0;
  std::map<std::string, size_t> held_;
};

// The slots only local clients may take: more than one source's share, so
// that one local user at its share and remote sources at theirs still leave
// one; at least one, and all of them when max_open is 1 (remote clients are
// then shed: the operator is never locked out).
size_t local_reserve(size_t max_open, size_t max_per_source);

// A client on this host: the Unix socket, 127.0.0.0/8, or a TCP peer whose
// address is one of this host's (HostAddresses).
bool is_local(bool this_host, uint32_t ipv4);

// The IPv4 addresses of this host (of its network namespace), host order,
// from getifaddrs(3); empty when it fails.
std::vector<uint32_t> list_host_ipv4();

// Whether an address is one of this host's: the list, fetched again when it
// is older than max_age (an address added or removed counts within a
// second), never more often; so a flood costs at most one getifaddrs a
// second. Not locked: the accept thread alone asks.
class HostAddresses {
 public:
  using Lister = std::function<std::vector<uint32_t>()>;
  explicit HostAddresses(Lister list = list_host_ipv4, Clock::duration max_age = std::chrono::seconds(1))
      : list_(std::move(list)), max_age_(max_age) {}
  bool contains(uint32_t ipv4, Clock::time_point now);
  uint64_t refreshes() const { return refreshes_; }

 private:
  Lister list_;
  Clock::duration max_age_;
  std::vector<uint32_t> addrs_;  // sorted
  Clock::time_point fetched_{};
  bool have_ = false;
  uint64_t refreshes_ = 0;
};
// Admission's key: "uid:N" for a local client whose socket's owner is
// known, "local" for one whose owner is not (all of 127.0.0.0/8 then counts
// as one source), else the remote address.
std::string source_key(bool local, std::optional<uint32_t> uid, uint32_t ipv4);
// The uid owning the other end of a TCP connection within this host (the
// kernel's socket table, sock_diag, looked up by the exact 4-tuple: never a
// dump): addresses and ports in network order as getpeername/getsockname
// give them. nullopt when the kernel does not say (no tcp_diag), or when the
// client's end is no longer a full socket a process holds (closed before
// our accept: a TIME_WAIT/FIN_WAIT2 mini-socket reports uid 0, never the
// client's).
std::optional<uint32_t> tcp_peer_uid(uint32_t peer_addr_be, uint16_t peer_port_be, uint32_t local_addr_be,
                                     uint16_t local_port_be);

// What a connection may see: clients on this host always (the Unix socket,
// whose mode decides who reaches it; loopback; a TCP peer address that is
// one of this host's), other TCP clients when their access
// class has the query right (proto::may_query).
bool may_query(const proto::AccessTable& access, bool this_host, uint32_t ipv4);

// Where the endpoint listens: stats.listen parsed.
struct ListenAddress {
  bool unix_socket = false;
  std::string path;       // unix_socket
  uint32_t ipv4 = 0;      // else: host order ("localhost" is 127.0.0.1)
  uint16_t port = 0;
  std::string text;       // as configured
};
// false with err when `listen` is neither host:port nor unix:/path.
bool parse_listen(const std::string& listen, ListenAddress& out, std::string& err);

// A listening socket for a: TCP with the options host_check binds with
// (SO_REUSEADDR only: no second instance shares the port), or a
// Unix socket, created through a temporary name and renamed into place with
// mode 0660 (never a moment with a wider mode), refused in a directory that
// others may write (unless sticky) or reached through a symlink; a stale
// socket is replaced only when nobody answers on it. -1 with err set.
int open_listener(const ListenAddress& a, std::string& err);

}  // namespace stats

struct StatsOptions {
  std::string listen = "127.0.0.1:9123";  // stats.listen: host:port or unix:/path
  size_t max_connections = 64;            // stats.max_connections
  double request_timeout_s = 5;           // stats.request_timeout_s
  static StatsOptions from(const config::Config& cfg);
};

class StatsServer {
 public:
  static constexpr size_t kWorkers = 6;            // threads that serve requests
  static constexpr size_t kWorkersPerSource = 2;   // of which one source may hold at once
  // Of which remote sources together never hold: a local user at its share
  // still leaves one for the operator.
  static constexpr size_t kLocalWorkers = kWorkersPerSource + 1;
  // How long a refused (403) connection is given to take its answer before
  // it is closed: it holds no slot and no worker meanwhile.
  static constexpr std::chrono::milliseconds kRefusedLinger{1000};
  static constexpr size_t kMaxRequestBytes = 16384;

  StatsServer();
  ~StatsServer();
  StatsServer(const StatsServer&) = delete;
  StatsServer& operator=(const StatsServer&) = delete;

  // Opens the listener and serves from threads of their own. False with
  // err set (the reason, e.g. "127.0.0.1:9123: Address already in use")
  // when it cannot listen there; nothing is left running then, and start()
  // may simply be called again later (ntp-control retries every few
  // seconds rather than giving up its job for want of a port).
  bool start(const StatsOptions& o, std::string& err);
  bool running() const { return listen_thread_.joinable(); }
  // Closes the listener (a Unix socket's path is removed) and every
  // connection; waits for the threads (at most one request timeout).
  void stop();

  // Replaces accept(2) on the listener (tests inject failures: ENFILE,
  // EINVAL); call before start().
  void set_accept(std::function<int(int listen_fd)> accept_fn) { accept_ = std::move(accept_fn); }
  // How often the listener was reopened after it broke (accept EBADF,
  // EINVAL, ...), and how many accept calls failed for want of resources.
  uint64_t listener_reopens() const { return reopens_; }
  uint64_t accept_resource_failures() const { return accept_resource_failures_; }

  // Who may query over TCP (from cfg.access); the control loop calls it at
  // start and at a reload, while requests are being served.
  void set_access(proto::AccessTable access);

  // The snapshot both endpoints render from now on; until the first one
  // they answer 503.
  void publish(status::Status s);
  std::shared_ptr<const status::Status> latest() const;

  struct Counters {
    uint64_t admitted = 0;   // connections taken in
    uint64_t shed = 0;       // closed at accept: too many open (in all or from that source)
    uint64_t timed_out = 0;  // closed at the deadline (idle, or slow)
    uint64_t served = 0;     // requests a worker answered (any status), within the deadline
    uint64_t forbidden = 0;  // 403s sent whole at accept (the source may not query; no slot, no worker, not in served)
    size_t open = 0;         // open now
  };
  Counters counters() const;
  // The counters as Prometheus families (appended to /metrics).
  static std::string endpoint_metrics(const Counters& c);

  class Http;  // the httplib::Server subclass (stats_server.cc)

 private:
  struct Conn {
    int fd = -1;
    stats::Clock::time_point deadline;
    std::string source;   // Admission's key
    std::string peer_ip;  // "" for the Unix socket
    int peer_port = 0;
    bool local = false;    // may use the local reserve
    bool refused = false;  // 403 sent: only drained until closed, holds no slot
  };
  friend class Http;
  void accept_loop();
  // The accept thread's part: admit, refuse with 403 or close (never blocks).
  void admit(int fd);
  void refuse(Conn c);
  // Waits up to ms for stop(); true when stopping.
  bool wait_stop(int ms) const;
  void poll_loop();
  void worker_loop();
  void close_conn(const Conn& c);
  bool take_ready(Conn& out, std::unique_lock<std::mutex>& lock);

  mutable std::mutex mu_;
  std::shared_ptr<const status::Status> latest_;
  std::shared_ptr<const proto::AccessTable> access_;

  StatsOptions opts_;
  stats::ListenAddress where_;
  std::unique_ptr<Http> http_;
  std::unique_ptr<stats::Admission> admission_;
  std::thread listen_thread_, poll_thread_;
  std::vector<std::thread> workers_;
  std::atomic<bool> stopping_{false};
  int wake_fd_ = -1;  // eventfd: a new connection for the poll set, or stop
  int stop_fd_ = -1;  // eventfd: readable once stop() began (never read)
  // The listener: only the accept thread closes or replaces it, and it sets
  // listen_fd_ to -1 under listen_mu_ first, so nobody holds a number that
  // may already name another file.
  mutable std::mutex listen_mu_;
  int listen_fd_ = -1;
  std::function<int(int)> accept_;
  std::string forbidden_response_;  // the 403, rendered by httplib at start
  std::atomic<size_t> refused_open_{0};  // refused connections still draining
  std::atomic<uint64_t> reopens_{0}, accept_resource_failures_{0};
  stats::HostAddresses host_addrs_;  // the accept thread's

  std::mutex q_mu_;
  std::condition_variable q_cv_;
  std::vector<Conn> waiting_;   // admitted, not yet readable (poll set); new ones appended
  std::deque<Conn> ready_;      // readable, for the workers
  stats::WorkerShare share_{kWorkers, kWorkersPerSource, kLocalWorkers};  // held by workers now
  std::map<int, std::string> serving_;        // fd -> source, held by workers now

  std::atomic<uint64_t> admitted_{0}, shed_{0}, timed_out_{0}, served_{0}, forbidden_{0};
};

}  // namespace ntp::ctl
