// ntpctl: a thin client of ntp-control's stats endpoint.
//
//   ntpctl [--config FILE | --endpoint URL] [--json] (status | sessions [--verbose] | ports | limits | metrics)
//
// `status` and `sessions` read /status (JSON) and print it the way the
// seed's router prints `display ntp-service status|sessions`; `limits` the
// workers' rate limiters; `--json` prints the JSON as received. `metrics`
// prints /metrics as received. The endpoint is http://host:port or, for a
// stats.listen = "unix:/path", unix:/path (the Unix socket).
// Exit status: 0 ok, 1 the endpoint could not be reached or answered
// badly (or the config could not be read), 2 bad arguments.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include <httplib.h>

#include "config/config.h"
#include "proto/inet.h"
#include "control/status/status.h"

namespace {

constexpr const char* kDefaultEndpoint = "http://127.0.0.1:9123";
constexpr time_t kTimeoutS = 2;

void usage(FILE* out) {
  std::fprintf(out,
               "usage: ntpctl [--config FILE | --endpoint URL] [--json] (status | sessions [--verbose] | ports | "
               "limits | metrics)\n"
               "  status            the clock, like `display ntp-service status`\n"
               "  sessions          the associations, like `display ntp-service sessions`\n"
               "  ports             the dataplane's ports: link, addresses, how they timestamp\n"
               "  limits            the workers' rate limiters: table fill, KoDs, drops, top limited sources\n"
               "  metrics           the Prometheus metrics (/metrics) as served\n"
               "  --config FILE     find the stats endpoint in the instance's TOML config (stats listen address)\n"
               "  --endpoint URL    the stats endpoint: http://host:port or unix:/path (default %s)\n"
               "  --json            print /status as JSON instead of text (status, sessions, ports, limits)\n"
               "  --verbose, -v     sessions: every field and the clock filter (not the origin, receive and\n"
               "                    transmit timestamps: they carry our requests' nonces)\n",
               kDefaultEndpoint);
}

int bad_usage(const std::string& what) {
  std::fprintf(stderr, "ntpctl: %s\n", what.c_str());
  usage(stderr);
  return 2;
}

struct Endpoint {
  std::string url;     // as shown to the operator, without a trailing '/'
  std::string unix_path;  // non-empty: the Unix socket (host and port unused)
  std::string host;    // without brackets
  int port = 80;
  std::string prefix;  // path before /status, "" or "/something"
};

// "http://host[:port][/prefix]"; "host:port" alone is taken as http.
std::optional<Endpoint> parse_endpoint(std::string_view url, std::string& err) {
  Endpoint e;
  if (url.starts_with("unix:")) {
    e.unix_path = std::string(url.substr(5));
    if (e.unix_path.empty() || e.unix_path[0] != '/' || e.unix_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      err = "endpoint '" + std::string(url) + "': the path after unix: must be absolute (at most 107 characters)";
      return std::nullopt;
    }
    e.host = "localhost";
    e.url = std::string(url);
    return e;
  }
  std::string_view rest = url;
  if (const auto p = rest.find("://"); p != std::string_view::npos) {
    std::string scheme(rest.substr(0, p));
    for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (scheme != "http") {
      err = "unsupported scheme '" + scheme + "' in endpoint '" + std::string(url) + "' (only http:// is supported)";
      return std::nullopt;
    }
    rest.remove_prefix(p + 3);
  }
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    e.prefix = std::string(rest.substr(slash));
    while (!e.prefix.empty() && e.prefix.back() == '/') e.prefix.pop_back();
  }
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {  // [IPv6]
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      err = "unterminated '[' in endpoint '" + std::string(url) + "'";
      return std::nullopt;
    }
    e.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        err = "unexpected text after ']' in endpoint '" + std::string(url) + "'";
        return std::nullopt;
      }
      port_text = after.substr(1);
      if (port_text.empty()) port_text = "-";  // "host:" is an error
    }
  } else {
    const auto colon = authority.rfind(':');
    e.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) port_text = "-";
    }
  }
  if (e.host.empty()) {
    err = "no host in endpoint '" + std::string(url) + "'";
    return std::nullopt;
  }
  if (!port_text.empty()) {
    const std::optional<uint16_t> port = ntp::proto::parse_port(port_text);
    if (!port) {
      err = "bad port '" + std::string(port_text) + "' in endpoint '" + std::string(url) + "'";
      return std::nullopt;
    }
    e.port = *port;
  }
  const bool v6 = e.host.find(':') != std::string::npos;
  e.url = "http://" + (v6 ? "[" + e.host + "]" : e.host) + ":" + std::to_string(e.port) + e.prefix;
  return e;
}

// The endpoint of the instance configured in `path`: its stats listen
// address, with a wildcard listener reached on the loopback.
std::optional<std::string> endpoint_from_config(const std::string& path) {
  const ntp::config::LoadResult r = ntp::config::load(path);
  if (!r.ok()) {
    for (const auto& e : r.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    if (r.errors.empty()) std::fprintf(stderr, "ntpctl: %s: cannot load the configuration\n", path.c_str());
    return std::nullopt;
  }
  const std::string& listen = r.config->stats_listen;
  if (listen.starts_with("unix:")) return listen;
  std::optional<ntp::proto::HostPort> hp = ntp::proto::split_host_port(listen);
  if (!hp) {
    std::fprintf(stderr, "ntpctl: %s: stats listen address '%s' has no port\n", path.c_str(), listen.c_str());
    return std::nullopt;
  }
  if (hp->host == "0.0.0.0" || hp->host.empty()) hp->host = "127.0.0.1";
  return "http://" + hp->host + ":" + std::to_string(hp->port);
}

std::string reason(httplib::Error e) {
  switch (e) {
    case httplib::Error::Connection: return "connection failed (refused, or no route)";
    case httplib::Error::ConnectionTimeout: return "connection timed out";
    case httplib::Error::Read: return "no answer (read failed or timed out)";
    case httplib::Error::Write: return "sending the request failed";
    default: return httplib::to_string(e);
  }
}

// The message of an error answer on one line: the body, or the "error" of
// a JSON body.
std::string error_text(const std::string& body) {
  std::string msg = body;
  if (!msg.empty() && msg.front() == '{') {
    const auto k = msg.find("\"error\"");
    if (k != std::string::npos) {
      const auto q1 = msg.find('"', msg.find(':', k) + 1);
      const auto q2 = q1 == std::string::npos ? q1 : msg.find('"', q1 + 1);
      if (q2 != std::string::npos) msg = msg.substr(q1 + 1, q2 - q1 - 1);
    }
  }
  std::string line;
  for (char c : msg) {
    const bool space = c == '\n' || c == '\r' || c == '\t' || c == ' ';
    if (!space) line += c;
    else if (!line.empty() && line.back() != ' ') line += ' ';
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  if (line.size() > 200) line = line.substr(0, 200) + "...";
  return line;
}

// httplib 0.11's client over a Unix socket: ClientImpl opens its socket
// through the virtual create_and_connect_socket; everything else (request,
// response parsing, timeouts) is httplib's own.
class UnixClient final : public httplib::ClientImpl {
 public:
  explicit UnixClient(std::string path) : httplib::ClientImpl("localhost", 80), path_(std::move(path)) {}
  int connect_errno() const { return errno_; }

 protected:
  bool create_and_connect_socket(Socket& socket, httplib::Error& error) override {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path_.c_str(), std::min(path_.size() + 1, sizeof sa.sun_path - 1));
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) {
      socket.sock = fd;
      return true;
    }
    errno_ = errno;
    if (fd >= 0) ::close(fd);
    error = httplib::Error::Connection;
    return false;
  }

 private:
  std::string path_;
  int errno_ = 0;
};

template <class C>
httplib::Result get_with(C& cli, const std::string& path) {
  cli.set_connection_timeout(kTimeoutS, 0);
  cli.set_read_timeout(kTimeoutS, 0);
  cli.set_write_timeout(kTimeoutS, 0);
  return cli.Get(path.c_str());
}

// GET prefix + path; the body on HTTP 200, else prints why and returns nullopt.
std::optional<std::string> get(const Endpoint& e, const std::string& path) {
  const std::string full = e.prefix + path;
  httplib::Result res{nullptr, httplib::Error::Unknown};
  std::string why;
  if (!e.unix_path.empty()) {
    UnixClient cli(e.unix_path);
    res = get_with(cli, full);
    if (!res && cli.connect_errno()) why = std::string(": ") + std::strerror(cli.connect_errno());
  } else {
    httplib::Client cli(e.host, e.port);
    res = get_with(cli, full);
  }
  if (!res) {
    std::fprintf(stderr, "ntpctl: cannot reach the stats endpoint %s: %s%s (is ntp-control running?)\n", e.url.c_str(),
                 reason(res.error()).c_str(), why.c_str());
    return std::nullopt;
  }
  if (res->status != 200) {
    const std::string msg = error_text(res->body);
    std::fprintf(stderr, "ntpctl: the stats endpoint %s%s answered HTTP %d%s%s\n", e.url.c_str(), path.c_str(),
                 res->status, msg.empty() ? "" : ": ", msg.c_str());
    return std::nullopt;
  }
  return std::move(res->body);
}

void print(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  if (!text.empty() && text.back() != '\n') std::fputc('\n', stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<std::string> config_path, endpoint_url;
  std::string command;
  bool json = false, verbose = false;

  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* opt, std::optional<std::string>& out) -> bool {
      const std::string eq = std::string(opt) + "=";
      std::string v;
      if (a == opt) {
        if (i + 1 >= argc) return false;
        v = argv[++i];
      } else {
        v = a.substr(eq.size());
      }
      if (out || v.empty()) return false;
      out = v;
      return true;
    };
    if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else if (a == "--config" || a.starts_with("--config=")) {
      if (!value("--config", config_path)) return bad_usage("--config needs one FILE");
    } else if (a == "--endpoint" || a.starts_with("--endpoint=")) {
      if (!value("--endpoint", endpoint_url)) return bad_usage("--endpoint needs one URL");
    } else if (a == "--json") {
      json = true;
    } else if (a == "--verbose" || a == "-v") {
      verbose = true;
    } else if (!a.empty() && a[0] == '-') {
      return bad_usage("unknown option '" + a + "'");
    } else if (command.empty() && (a == "status" || a == "sessions" || a == "ports" || a == "limits" ||
                                  a == "metrics")) {
      command = a;
    } else if (command.empty()) {
      return bad_usage("unknown command '" + a + "'");
    } else {
      return bad_usage("unexpected argument '" + a + "'");
    }
  }
  if (command.empty()) return bad_usage("no command");
  if (config_path && endpoint_url) return bad_usage("--config and --endpoint exclude each other");
  if (verbose && command != "sessions") return bad_usage("--verbose applies to sessions only");
  if (json && command == "metrics")
    return bad_usage("--json applies to status, sessions, ports and limits (metrics are text)");

  std::string url = kDefaultEndpoint;
  if (endpoint_url) {
    url = *endpoint_url;
  } else if (config_path) {
    const auto from_config = endpoint_from_config(*config_path);
    if (!from_config) return 1;
    url = *from_config;
  }
  std::string err;
  const auto endpoint = parse_endpoint(url, err);
  if (!endpoint) return endpoint_url ? bad_usage(err) : (std::fprintf(stderr, "ntpctl: %s\n", err.c_str()), 1);

  if (command == "metrics") {
    const auto body = get(*endpoint, "/metrics");
    if (!body) return 1;
    print(*body);
    return 0;
  }
  const auto body = get(*endpoint, "/status");
  if (!body) return 1;
  if (json) {
    print(*body);
    return 0;
  }
  const auto s = ntp::status::from_json(*body, err);
  if (!s) {
    std::fprintf(stderr, "ntpctl: the stats endpoint %s/status answered something that is not a status: %s\n",
                 endpoint->url.c_str(), err.c_str());
    return 1;
  }
  print(command == "status"   ? ntp::status::format_status(*s)
        : command == "ports"  ? ntp::status::format_ports(*s)
        : command == "limits" ? ntp::status::format_limits(*s)
                              : ntp::status::format_sessions(*s, verbose));
  return 0;
}
