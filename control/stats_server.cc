#include "control/stats_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "config/config.h"
#include "config/host_check.h"
#include "proto/inet.h"

namespace ntp::ctl {

namespace stats {

bool DeadlineIo::wait(bool for_read) const {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
    if (left <= 0) {
      timed_out_ = true;
      return false;
    }
    pollfd p{fd_, static_cast<short>(for_read ? POLLIN : POLLOUT), 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 60000)));
    if (r < 0 && errno != EINTR) return false;
    // Hang-up and errors count as ready: the read or write then says so.
    if (r > 0 && p.revents) return true;
  }
}

ssize_t DeadlineIo::read(char* p, size_t n) {
  if (n == 0) return 0;
  if (budget_ == 0) return -1;
  for (;;) {
    if (!wait_readable()) return -1;
    const ssize_t r = ::recv(fd_, p, std::min(n, budget_), MSG_DONTWAIT);
    if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (r > 0) budget_ -= static_cast<size_t>(r);
    return r;
  }
}

ssize_t DeadlineIo::write(const char* p, size_t n) {
  size_t done = 0;
  while (done < n) {
    if (!wait_writable()) return -1;
    const ssize_t r = ::send(fd_, p + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (r <= 0) return -1;
    done += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(n);
}

bool Admission::admit(const std::string& source, bool local) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = per_source_.find(source);
  if (open_ >= max_open_ || (it != per_source_.end() && it->second >= max_per_source_)) return false;
  if (!local && open_remote_ >= max_open_ - local_reserve_) return false;
  ++open_;
  if (!local) ++open_remote_;
  if (it == per_source_.end()) per_source_.emplace(source, 1);
  else ++it->second;
  return true;
}

void Admission::release(const std::string& source, bool local) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = per_source_.find(source);
  if (it == per_source_.end()) return;  // never admitted: nothing to give back
  --open_;
  if (!local && open_remote_ > 0) --open_remote_;
  if (--it->second == 0) per_source_.erase(it);
}

size_t Admission::open() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_;
}

size_t Admission::open_from(const std::string& source) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = per_source_.find(source);
  return it == per_source_.end() ? 0 : it->second;
}

size_t Admission::open_remote() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_remote_;
}

bool WorkerShare::may_take(const std::string& source, bool local) const {
  if (!local && remote_ >= remote_cap_) return false;
  return held_by(source) < per_source_;
}

void WorkerShare::take(const std::string& source, bool local) {
  held_[source]++;
  if (!local) remote_++;
}

void WorkerShare::give_back(const std::string& source, bool local) {
  auto it = held_.find(source);
  if (it == held_.end()) return;  // never taken
  if (--it->second == 0) held_.erase(it);
  if (!local && remote_ > 0) remote_--;
}

size_t WorkerShare::held_by(const std::string& source) const {
  auto it = held_.find(source);
  return it == held_.end() ? 0 : it->second;
}

size_t local_reserve(size_t max_open, size_t max_per_source) {
  // One slot: this host's, so the operator is never locked out (remote
  // clients are then all shed; start() says so).
  if (max_open < 2) return max_open;
  return std::min(max_open - 1, max_per_source + 1);
}

bool is_local(bool this_host, uint32_t ipv4) { return this_host || (ipv4 >> 24) == 127; }

std::vector<uint32_t> list_host_ipv4() {
  std::vector<uint32_t> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (const ifaddrs* a = list; a; a = a->ifa_next)
    if (a->ifa_addr && a->ifa_addr->sa_family == AF_INET)
      out.push_back(ntohl(reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr));
  ::freeifaddrs(list);
  return out;
}

bool HostAddresses::contains(uint32_t ipv4, Clock::time_point now) {
  if (!have_ || now - fetched_ >= max_age_) {
    addrs_ = list_();
    std::sort(addrs_.begin(), addrs_.end());
    fetched_ = now;
    have_ = true;
    refreshes_++;
  }
  return std::binary_search(addrs_.begin(), addrs_.end(), ipv4);
}

std::string source_key(bool local, std::optional<uint32_t> uid, uint32_t ipv4) {
  if (!local) return proto::ipv4_to_string(ipv4);
  return uid ? "uid:" + std::to_string(*uid) : "local";
}

std::optional<uint32_t> tcp_peer_uid(uint32_t peer_addr_be, uint16_t peer_port_be, uint32_t local_addr_be,
                                     uint16_t local_port_be) {
  const int nl = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return std::nullopt;
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } q{};
  q.nlh.nlmsg_len = sizeof q;
  q.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  q.nlh.nlmsg_flags = NLM_F_REQUEST;  // no NLM_F_DUMP: one socket, found by its 4-tuple
  q.req.sdiag_family = AF_INET;
  q.req.sdiag_protocol = IPPROTO_TCP;
  q.req.idiag_states = ~0u;
  // The client's socket: its source is the peer, its destination us.
  q.req.id.idiag_sport = peer_port_be;
  q.req.id.idiag_dport = local_port_be;
  q.req.id.idiag_src[0] = peer_addr_be;
  q.req.id.idiag_dst[0] = local_addr_be;
  q.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  q.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  std::optional<uint32_t> uid;
  if (::sendto(nl, &q, sizeof q, 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel) ==
      static_cast<ssize_t>(sizeof q)) {
    // The kernel answers within sendto(): the reply is queued already, so
    // the accept thread never waits here.
    alignas(nlmsghdr) char buf[1024];
    const ssize_t n = ::recv(nl, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      const auto* h = reinterpret_cast<const nlmsghdr*>(buf);
      if (NLMSG_OK(h, static_cast<unsigned>(n)) && h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
          h->nlmsg_len >= NLMSG_LENGTH(sizeof(inet_diag_msg))) {
        const auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
        // Only a full socket that a process still holds (an inode) says
        // whose it is: a TIME_WAIT or FIN_WAIT2 mini-socket (the client
        // closed before our accept) and a request socket report uid 0.
        constexpr uint8_t kTimeWait = 6, kNewSynRecv = 12;  // the kernel's TCP_TIME_WAIT, TCP_NEW_SYN_RECV
        const bool full = m->idiag_inode != 0 && m->idiag_state != kTimeWait && m->idiag_state != kNewSynRecv;
        if (full && m->id.idiag_sport == peer_port_be && m->id.idiag_src[0] == peer_addr_be) uid = m->idiag_uid;
      }
    }
  }
  ::close(nl);
  return uid;
}

bool may_query(const proto::AccessTable& access, bool this_host, uint32_t ipv4) {
  if (is_local(this_host, ipv4)) return true;
  return proto::may_query(access.classify_v4(ipv4));
}

bool parse_listen(const std::string& listen, ListenAddress& out, std::string& err) {
  out = ListenAddress{};
  out.text = listen;
  if (listen.starts_with("unix:")) {
    out.unix_socket = true;
    out.path = listen.substr(5);
    if (out.path.empty() || out.path[0] != '/' || out.path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      err = "'" + listen + "': the path after unix: must be absolute and at most 107 characters";
      return false;
    }
    return true;
  }
  const std::optional<proto::HostPort> hp = proto::split_host_port(listen);
  const std::optional<uint32_t> ip =
      !hp ? std::nullopt : hp->host == "localhost" ? std::optional<uint32_t>(0x7F000001) : proto::parse_ipv4(hp->host);
  if (!ip) {
    err = "'" + listen + "' is neither a.b.c.d:port, localhost:port nor unix:/path";
    return false;
  }
  out.ipv4 = *ip;
  out.port = hp->port;
  return true;
}

namespace {

std::string errno_text(int e) { return std::strerror(e); }

int open_tcp(const ListenAddress& a, std::string& err) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = a.text + ": socket: " + errno_text(errno);
    return -1;
  }
  const int one = 1;
  // SO_REUSEADDR for connections a killed instance left in TIME_WAIT; not
  // SO_REUSEPORT: two instances of one user on one address would share the
  // port silently, and ntpctl would read either one's status.
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(a.port);
  sa.sin_addr.s_addr = htonl(a.ipv4);
  // SOMAXCONN (capped by net.core.somaxconn): under a connection flood a
  // full backlog drops the handshake's last ACK, leaving clients that think
  // they are connected and that the accept thread never sees to shed.
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, SOMAXCONN) != 0) {
    err = a.text + ": " + errno_text(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

bool fill_unix_address(const std::string& path, sockaddr_un& sa) {
  sa = sockaddr_un{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) return false;
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  return true;
}

// Someone listens on the socket at path (a running instance).
bool unix_socket_answers(const std::string& path) {
  sockaddr_un sa;
  if (!fill_unix_address(path, sa)) return false;
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool up = ::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0;
  ::close(fd);
  return up;
}

int open_unix(const ListenAddress& a, std::string& err) {
  const std::unique_ptr<config::HostFacts> host = config::real_host_facts();
  if (std::string problem = config::unix_socket_problem(a.path, *host); !problem.empty()) {
    err = a.text + ": " + problem;
    return -1;
  }
  struct stat st;
  if (::lstat(a.path.c_str(), &st) == 0) {
    // unix_socket_problem let only a socket through.
    if (unix_socket_answers(a.path)) {
      err = a.text + ": another process listens on this socket (a running instance?)";
      return -1;
    }
    if (::unlink(a.path.c_str()) != 0 && errno != ENOENT) {
      err = a.text + ": cannot remove the stale socket: " + errno_text(errno);
      return -1;
    }
  }
  // Bound under a temporary name, given its mode, then renamed into place:
  // the path never names a socket with a wider mode than 0660.
  const size_t slash = a.path.rfind('/');
  const std::string tmp = a.path.substr(0, slash + 1) + "." + a.path.substr(slash + 1) + "." +
                          std::to_string(::getpid()) + ".new";
  sockaddr_un sa;
  if (!fill_unix_address(tmp, sa)) {
    err = a.text + ": the path is too long for a Unix socket";
    return -1;
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = a.text + ": socket: " + errno_text(errno);
    return -1;
  }
  if (::lstat(tmp.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(tmp.c_str());  // ours, from a crash
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
    err = a.text + ": bind: " + errno_text(errno);
    ::close(fd);
    return -1;
  }
  if (::chmod(tmp.c_str(), 0660) != 0 || ::rename(tmp.c_str(), a.path.c_str()) != 0 || ::listen(fd, 128) != 0) {
    err = a.text + ": " + errno_text(errno);
    ::unlink(tmp.c_str());
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int open_listener(const ListenAddress& a, std::string& err) { return a.unix_socket ? open_unix(a, err) : open_tcp(a, err); }

}  // namespace stats

StatsOptions StatsOptions::from(const config::Config& cfg) {
  StatsOptions o;
  o.listen = cfg.stats_listen;
  o.max_connections = static_cast<size_t>(std::max(1, cfg.stats.max_connections));
  o.request_timeout_s = cfg.stats.request_timeout_s;
  return o;
}

namespace {

// While the 403 is rendered at start: the pre-routing handler answers it.
thread_local bool t_render_forbidden = false;

// A canned request in, the response out: how httplib writes the 403 that
// refused connections get (rendered once, sent from the accept thread).
class StringStream final : public httplib::Stream {
 public:
  explicit StringStream(std::string in) : in_(std::move(in)) {}
  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, in_.size() - pos_);
    std::memcpy(ptr, in_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    out.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip.clear();
    port = 0;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip.clear();
    port = 0;
  }
  socket_t socket() const override { return INVALID_SOCKET; }
  std::string out;

 private:
  std::string in_;
  size_t pos_ = 0;
};

// One connection as httplib reads and writes it: through a DeadlineIo.
class DeadlineStream final : public httplib::Stream {
 public:
  DeadlineStream(stats::DeadlineIo& io, std::string peer_ip, int peer_port)
      : io_(io), peer_ip_(std::move(peer_ip)), peer_port_(peer_port) {}
  bool is_readable() const override { return io_.wait_readable(); }
  bool is_writable() const override { return io_.wait_writable(); }
  ssize_t read(char* ptr, size_t size) override { return io_.read(ptr, size); }
  ssize_t write(const char* ptr, size_t size) override { return io_.write(ptr, size); }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = peer_ip_;
    port = peer_port_;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    if (::getsockname(io_.fd(), reinterpret_cast<sockaddr*>(&sa), &len) == 0 && sa.sin_family == AF_INET) {
      ip = proto::ipv4_to_string(ntohl(sa.sin_addr.s_addr));
      port = ntohs(sa.sin_port);
    }
  }
  // httplib 0.11.4's server uses the socket only for its select() guard
  // (a socket >= FD_SETSIZE gets 500); this stream polls, so it needs none.
  socket_t socket() const override { return io_.fd() < FD_SETSIZE ? io_.fd() : INVALID_SOCKET; }

 private:
  stats::DeadlineIo& io_;
  std::string peer_ip_;
  int peer_port_;
};

}  // namespace

class StatsServer::Http final : public httplib::Server {
 public:
  explicit Http(StatsServer& owner) : owner_(owner) {}
  // One request, then the connection closes; counted as served (an
  // answer went out), timed out, or neither (the client hung up).
  void serve(const Conn& c) {
    stats::DeadlineIo io(c.fd, c.deadline, kMaxRequestBytes);
    DeadlineStream strm(io, c.peer_ip, c.peer_port);
    bool closed = true;
    const bool answered = process_request(strm, /*close_connection=*/true, closed, nullptr);
    if (io.timed_out()) owner_.timed_out_++;
    else if (answered) owner_.served_++;
  }
  // The bytes of the 403 a refused connection gets, as httplib writes them.
  std::string render_forbidden() {
    StringStream strm("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    t_render_forbidden = true;
    bool closed = true;
    process_request(strm, /*close_connection=*/true, closed, nullptr);
    t_render_forbidden = false;
    return strm.out;
  }

 private:
  StatsServer& owner_;
};

StatsServer::StatsServer() : access_(std::make_shared<const proto::AccessTable>()), http_(std::make_unique<Http>(*this)) {
  // A client that may not query gets 403 whatever it asks for: this one
  // response, rendered at start and sent at accept (refuse()).
  http_->set_pre_routing_handler([](const httplib::Request&, httplib::Response& res) {
    if (!t_render_forbidden) return httplib::Server::HandlerResponse::Unhandled;
    res.status = 403;
    res.set_content("this address may not query the stats endpoint (access.query)\n", "text/plain");
    return httplib::Server::HandlerResponse::Handled;
  });
  http_->set_payload_max_length(kMaxRequestBytes);
  // Both endpoints render the latest snapshot; 503 until there is one.
  auto serve = [this](const char* path, const char* type, const char* not_yet,
                      std::string (*render)(const status::Status&)) {
    http_->Get(path, [this, type, not_yet, render](const httplib::Request&, httplib::Response& res) {
      const std::shared_ptr<const status::Status> s = latest();
      if (!s) {
        res.status = 503;
        res.set_content(not_yet, type);
        return;
      }
      res.set_content(render(*s), type);
    });
  };
  serve("/status", "application/json", "{\"error\":\"not attached to the dataplane yet\"}\n", status::to_json);
  // /metrics: the snapshot's families, then the endpoint's own (also
  // before the first snapshot: a scrape shows whether it is under attack).
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    const std::shared_ptr<const status::Status> s = latest();
    std::string text = s ? status::to_prometheus(*s) : std::string();
    text += endpoint_metrics(counters());
    if (!s) res.status = 503;
    res.set_content(text, "text/plain; version=0.0.4; charset=utf-8");
  });
}

std::string StatsServer::endpoint_metrics(const Counters& c) {
  auto n = [](uint64_t v) { return std::to_string(v); };
  return "# HELP ntp_stats_connections_total Connections to the stats endpoint by what became of them: admitted, "
         "shed (closed at accept: stats.max_connections, in all or from one source), timed_out (idle or slow "
         "beyond stats.request_timeout_s).\n"
         "# TYPE ntp_stats_connections_total counter\n"
         "ntp_stats_connections_total{result=\"admitted\"} " + n(c.admitted) + "\n"
         "ntp_stats_connections_total{result=\"shed\"} " + n(c.shed) + "\n"
         "ntp_stats_connections_total{result=\"timed_out\"} " + n(c.timed_out) + "\n"
         "# HELP ntp_stats_requests_total Requests answered by the stats endpoint; forbidden: 403, the source may "
         "not query (access.query).\n"
         "# TYPE ntp_stats_requests_total counter\n"
         "ntp_stats_requests_total{result=\"served\"} " + n(c.served) + "\n"
         "ntp_stats_requests_total{result=\"forbidden\"} " + n(c.forbidden) + "\n"
         "# HELP ntp_stats_connections_open Connections to the stats endpoint open now.\n"
         "# TYPE ntp_stats_connections_open gauge\n"
         "ntp_stats_connections_open " + n(c.open) + "\n";
}

StatsServer::~StatsServer() { stop(); }

bool StatsServer::start(const StatsOptions& o, std::string& err) {
  if (running()) {
    err = "already serving";
    return false;
  }
  stats::ListenAddress where;
  if (!stats::parse_listen(o.listen, where, err)) return false;
  const int fd = stats::open_listener(where, err);
  if (fd < 0) return false;
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0 || stop_fd_ < 0) {
    err = o.listen + ": eventfd: " + std::strerror(errno);
    for (int* e : {&wake_fd_, &stop_fd_})
      if (*e >= 0) ::close(std::exchange(*e, -1));
    ::close(fd);
    if (where.unix_socket) ::unlink(where.path.c_str());
    return false;
  }
  opts_ = o;
  where_ = where;
  const size_t per_source = std::max<size_t>(1, o.max_connections / 4);
  admission_ = std::make_unique<stats::Admission>(o.max_connections, per_source,
                                                  stats::local_reserve(o.max_connections, per_source));
  if (forbidden_response_.empty()) forbidden_response_ = http_->render_forbidden();
  if (o.max_connections < 2 && !where.unix_socket && (where.ipv4 >> 24) != 127)
    spdlog::warn("stats endpoint {}: stats.max_connections = {} is kept for clients on this host; remote clients "
                 "(access.query) are all shed: set 2 or more to serve them",
                 o.listen, o.max_connections);
  stopping_ = false;
  {
    std::lock_guard<std::mutex> lock(listen_mu_);
    listen_fd_ = fd;
  }
  poll_thread_ = std::thread([this] { poll_loop(); });
  for (size_t i = 0; i < kWorkers; i++) workers_.emplace_back([this] { worker_loop(); });
  listen_thread_ = std::thread([this] { accept_loop(); });
  return true;
}

bool StatsServer::wait_stop(int ms) const {
  pollfd p{stop_fd_, POLLIN, 0};
  return ::poll(&p, 1, ms) > 0 || stopping_;
}

void StatsServer::accept_loop() {
  bool short_of_resources = false;
  while (!stopping_) {
    int lfd;
    {
      std::lock_guard<std::mutex> lock(listen_mu_);
      lfd = listen_fd_;
    }
    if (lfd < 0) {
      // The listener broke: open it again once a second rather than leave
      // the endpoint dead until a restart.
      if (wait_stop(1000)) break;
      std::string e;
      const int again = stats::open_listener(where_, e);
      if (again < 0) {
        spdlog::warn("stats endpoint: {}; trying again in 1 s", e);
        continue;
      }
      reopens_++;
      spdlog::info("stats endpoint {}: listening again", opts_.listen);
      std::lock_guard<std::mutex> lock(listen_mu_);
      listen_fd_ = again;
      continue;
    }
    pollfd p[2] = {{lfd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) {
      if (wait_stop(100)) break;
      continue;
    }
    if (p[1].revents || stopping_) break;
    if (!p[0].revents) continue;
    const int fd = accept_ ? accept_(lfd) : ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      short_of_resources = false;
      admit(fd);
      continue;
    }
    const int e = errno;
    switch (e) {
      // accept(2): the connection went away, or a network error it passes
      // on; the listener is fine.
      case EINTR: case EAGAIN: case ECONNABORTED: case EPROTO: case ENETDOWN: case ENOPROTOOPT:
      case EHOSTDOWN: case ENONET: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH:
        continue;
      // No descriptor or memory for it now: the listener is fine too, and
      // the connection waits in the backlog; try again shortly.
      case EMFILE: case ENFILE: case ENOBUFS: case ENOMEM:
        accept_resource_failures_++;
        if (!short_of_resources)
          spdlog::warn("stats endpoint {}: accept: {}; retrying every 100 ms", opts_.listen, std::strerror(e));
        short_of_resources = true;
        if (wait_stop(100)) break;
        continue;
      default: {
        // The listener itself is broken (EBADF, EINVAL, ...). Its number is
        // given up under the lock before it is closed: nobody can close or
        // accept on it once it names another file.
        spdlog::warn("stats endpoint {}: accept: {}; listening again in 1 s", opts_.listen, std::strerror(e));
        {
          std::lock_guard<std::mutex> lock(listen_mu_);
          listen_fd_ = -1;
        }
        ::close(lfd);
        continue;
      }
    }
  }
  std::lock_guard<std::mutex> lock(listen_mu_);
  if (listen_fd_ >= 0) ::close(std::exchange(listen_fd_, -1));
}

void StatsServer::stop() {
  if (!listen_thread_.joinable()) return;
  stopping_ = true;
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(stop_fd_, &one, sizeof one);
  listen_thread_.join();  // it closes the listener
  {
    std::lock_guard<std::mutex> lock(q_mu_);
    // Connections being served end at their next read or write.
    for (const auto& [fd, src] : serving_) ::shutdown(fd, SHUT_RDWR);
  }
  n = ::write(wake_fd_, &one, sizeof one);
  q_cv_.notify_all();
  poll_thread_.join();
  for (auto& t : workers_) t.join();
  workers_.clear();
  std::lock_guard<std::mutex> lock(q_mu_);
  for (const Conn& c : waiting_) close_conn(c);
  for (const Conn& c : ready_) close_conn(c);
  waiting_.clear();
  ready_.clear();
  ::close(std::exchange(wake_fd_, -1));
  ::close(std::exchange(stop_fd_, -1));
  if (where_.unix_socket) ::unlink(where_.path.c_str());
}

void StatsServer::close_conn(const Conn& c) {
  ::shutdown(c.fd, SHUT_RDWR);
  ::close(c.fd);
  if (c.refused) refused_open_--;
  else admission_->release(c.source, c.local);
}

void StatsServer::admit(int fd) {
  Conn c;
  c.fd = fd;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  uint32_t ipv4 = 0;
  bool this_host = false;
  std::optional<uint32_t> uid;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    ::close(fd);  // gone already
    return;
  }
  if (ss.ss_family == AF_UNIX) {
    this_host = true;
    ucred cred{};
    socklen_t cred_len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0) uid = cred.uid;
  } else if (ss.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(ss);
    ipv4 = ntohl(in.sin_addr.s_addr);
    c.peer_ip = proto::ipv4_to_string(ipv4);
    c.peer_port = ntohs(in.sin_port);
    // From this host, from any of its own addresses (ntpctl --config on a
    // listener at the namespace's address, or bound to another of them):
    // as local as loopback. The list only when the cheap answers are no.
    sockaddr_in local{};
    socklen_t local_len = sizeof local;
    const bool have_local =
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) == 0 && local.sin_family == AF_INET;
    if (have_local && local.sin_addr.s_addr == in.sin_addr.s_addr) this_host = true;
    else if (!stats::is_local(false, ipv4) && host_addrs_.contains(ipv4, stats::Clock::now())) this_host = true;
    // A local client is its user, not its address: any local user can bind
    // all of 127.0.0.0/8, and ntpctl shares 127.0.0.1 with all of them.
    if (have_local && stats::is_local(this_host, ipv4))
      uid = stats::tcp_peer_uid(in.sin_addr.s_addr, in.sin_port, local.sin_addr.s_addr, local.sin_port);
  } else {
    ::close(fd);  // we listen on IPv4 and Unix sockets only
    return;
  }
  c.local = stats::is_local(this_host, ipv4);
  c.source = stats::source_key(c.local, uid, ipv4);
  bool allowed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    allowed = stats::may_query(*access_, this_host, ipv4);
  }
  if (!allowed) {
    refuse(std::move(c));
    return;
  }
  if (!admission_->admit(c.source, c.local)) {
    shed_++;
    ::close(fd);
    return;
  }
  admitted_++;
  c.deadline = stats::Clock::now() + std::chrono::duration_cast<stats::Clock::duration>(
                                         std::chrono::duration<double>(opts_.request_timeout_s));
  {
    std::lock_guard<std::mutex> lock(q_mu_);
    waiting_.push_back(std::move(c));
  }
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void StatsServer::refuse(Conn c) {
  // The 403 fits the socket's send buffer: one non-blocking send, no wait.
  const ssize_t sent = ::send(c.fd, forbidden_response_.data(), forbidden_response_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  // Counted once it went out whole, and only as forbidden (served_ is the
  // workers' answers): a send that failed answered nobody.
  if (sent == static_cast<ssize_t>(forbidden_response_.size())) forbidden_++;
  ::shutdown(c.fd, SHUT_WR);
  // Closed with its request unread, the socket would answer with a reset
  // that can discard the 403 at the client: the poll set reads what comes
  // for a moment, bounded in number by stats.max_connections, without a
  // slot or a worker. Beyond that number, closed at once.
  if (sent <= 0 || refused_open_ >= opts_.max_connections) {
    ::close(c.fd);
    return;
  }
  refused_open_++;
  c.refused = true;
  c.deadline = stats::Clock::now() + std::min<stats::Clock::duration>(
                                         kRefusedLinger, std::chrono::duration_cast<stats::Clock::duration>(
                                                             std::chrono::duration<double>(opts_.request_timeout_s)));
  {
    std::lock_guard<std::mutex> lock(q_mu_);
    waiting_.push_back(std::move(c));
  }
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void StatsServer::poll_loop() {
  std::vector<Conn> set;
  std::vector<pollfd> pfds;
  while (!stopping_) {
    {
      std::lock_guard<std::mutex> lock(q_mu_);
      for (Conn& c : waiting_) set.push_back(std::move(c));
      waiting_.clear();
    }
    auto now = stats::Clock::now();
    int timeout_ms = -1;
    for (const Conn& c : set) {
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(c.deadline - now).count();
      const int m = static_cast<int>(std::clamp<int64_t>(ms, 0, 60000));
      timeout_ms = timeout_ms < 0 ? m : std::min(timeout_ms, m);
    }
    pfds.assign(1, pollfd{wake_fd_, POLLIN, 0});
    for (const Conn& c : set) pfds.push_back(pollfd{c.fd, POLLIN, 0});
    const int r = ::poll(pfds.data(), pfds.size(), timeout_ms);
    if (r < 0 && errno != EINTR) {
      spdlog::warn("stats endpoint: poll: {}", std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (pfds[0].revents) {
      uint64_t v;
      [[maybe_unused]] ssize_t n = ::read(wake_fd_, &v, sizeof v);
    }
    now = stats::Clock::now();
    std::vector<Conn> keep;
    bool any_ready = false;
    for (size_t i = 0; i < set.size(); i++) {
      if (set[i].refused) {
        // Read and dropped until the client closes, for a moment at most.
        bool done = set[i].deadline <= now;
        if (!done && pfds[i + 1].revents) {
          char sink[4096];
          const ssize_t n = ::recv(set[i].fd, sink, sizeof sink, MSG_DONTWAIT);
          done = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
        }
        if (done) close_conn(set[i]);
        else keep.push_back(std::move(set[i]));
      } else if (pfds[i + 1].revents) {
        std::lock_guard<std::mutex> lock(q_mu_);
        ready_.push_back(std::move(set[i]));
        any_ready = true;
      } else if (set[i].deadline <= now) {
        timed_out_++;
        close_conn(set[i]);
      } else {
        keep.push_back(std::move(set[i]));
      }
    }
    set.swap(keep);
    if (any_ready) q_cv_.notify_all();
  }
  for (const Conn& c : set) close_conn(c);
}

bool StatsServer::take_ready(Conn& out, std::unique_lock<std::mutex>&) {
  // The oldest connection whose source does not hold its share of the
  // workers already (one source cannot keep the others waiting), and, for
  // a remote one, while remote sources leave kLocalWorkers free.
  for (auto it = ready_.begin(); it != ready_.end(); ++it) {
    if (!share_.may_take(it->source, it->local)) continue;
    out = std::move(*it);
    ready_.erase(it);
    share_.take(out.source, out.local);
    serving_.emplace(out.fd, out.source);
    return true;
  }
  return false;
}

void StatsServer::worker_loop() {
  for (;;) {
    Conn c;
    {
      std::unique_lock<std::mutex> lock(q_mu_);
      q_cv_.wait(lock, [&] { return stopping_ || take_ready(c, lock); });
      if (c.fd < 0) return;  // stopping, nothing taken
    }
    if (stats::Clock::now() < c.deadline) http_->serve(c);
    else timed_out_++;
    {
      std::lock_guard<std::mutex> lock(q_mu_);
      serving_.erase(c.fd);
      share_.give_back(c.source, c.local);
    }
    q_cv_.notify_all();
    close_conn(c);
  }
}

void StatsServer::set_access(proto::AccessTable access) {
  auto p = std::make_shared<const proto::AccessTable>(std::move(access));
  std::lock_guard<std::mutex> lock(mu_);
  access_ = std::move(p);
}

void StatsServer::publish(status::Status s) {
  auto p = std::make_shared<const status::Status>(std::move(s));
  std::lock_guard<std::mutex> lock(mu_);
  latest_ = std::move(p);
}

std::shared_ptr<const status::Status> StatsServer::latest() const {
  std::lock_guard<std::mutex> lock(mu_);
  return latest_;
}

StatsServer::Counters StatsServer::counters() const {
  Counters c;
  c.admitted = admitted_;
  c.shed = shed_;
  c.timed_out = timed_out_;
  c.served = served_;
  c.forbidden = forbidden_;
  c.open = admission_ ? admission_->open() : 0;
  return c;
}

}  // namespace ntp::ctl
