// The stats endpoint: /metrics (Prometheus text) and /status (JSON), each
// rendered from the latest status snapshot, which the control loop replaces
// once a second. The HTTP server runs on a thread of its own; the control
// loop only ever swaps a pointer under a short lock.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "control/status/status.h"

namespace httplib {
class Server;
}

namespace ntp::ctl {

class StatsServer {
 public:
  StatsServer();
  ~StatsServer();
  StatsServer(const StatsServer&) = delete;
  StatsServer& operator=(const StatsServer&) = delete;

  // Binds host:port and serves from a thread of its own. False with err set
  // when it cannot listen there.
  bool start(const std::string& host, int port, std::string& err);
  void stop();

  // The snapshot both endpoints render from now on; until the first one
  // they answer 503.
  void publish(status::Status s);
  std::shared_ptr<const status::Status> latest() const;

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const status::Status> latest_;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
};

}  // namespace ntp::ctl
