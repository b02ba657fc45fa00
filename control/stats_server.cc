#include "control/stats_server.h"

#include <httplib.h>

#include <utility>

namespace ntp::ctl {

StatsServer::StatsServer() : http_(std::make_unique<httplib::Server>()) {
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
  serve("/metrics", "text/plain; version=0.0.4; charset=utf-8", "not attached to the dataplane yet\n",
        status::to_prometheus);
  serve("/status", "application/json", "{\"error\":\"not attached to the dataplane yet\"}\n", status::to_json);
}

StatsServer::~StatsServer() { stop(); }

bool StatsServer::start(const std::string& host, int port, std::string& err) {
  if (!http_->bind_to_port(host, port)) {
    err = "cannot listen there (address in use or not ours?)";
    return false;
  }
  thread_ = std::thread([this] { http_->listen_after_bind(); });
  return true;
}

void StatsServer::stop() {
  if (!thread_.joinable()) return;
  http_->stop();
  thread_.join();
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

}  // namespace ntp::ctl
