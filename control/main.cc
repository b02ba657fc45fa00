// ntp-control: the control plane's lifecycle. Validates the configuration,
// opens the clocks it serves and steers, attaches to the dataplane's shared
// memory (again after a dataplane restart), runs the NTP engine on what the
// rings bring, publishes the server state and the clock model, and serves
// the stats endpoint. Each of those is a unit of its own; this file only
// calls them in order. SIGHUP re-reads the file: what can change live is
// applied (config::plan_reload says what), the rest is logged.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <chrono>
#include <ctime>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "config/cli.h"
#include "config/config.h"
#include "config/instance_lock.h"
#include "control/ntp/engine.h"
#include "control/ntp/system_state.h"
#include "control/cookie_keys.h"
#include "control/nts_ke_client.h"
#include "control/nts_ke_server.h"
#include "control/segment_client.h"
#include "control/served_clock.h"
#include "control/stats_server.h"
#include "control/status/snapshot.h"
#include "crypto/keys.h"
#include "crypto/mac.h"
#include "crypto/nts_keys.h"
#include "proto/inet.h"

#ifndef NTP_APPLIANCE_VERSION
#define NTP_APPLIANCE_VERSION "0.0.0"
#endif

namespace {

using namespace ntp;

// Set by the signal handlers (lock-free atomics: async-signal-safe), acted
// on by the control loop.
std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void on_signal(int) { g_stop.store(true); }
void on_hup(int) { g_reload.store(true); }

void install_signals() {
  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sa.sa_handler = on_hup;
  sigaction(SIGHUP, &sa, nullptr);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, nullptr);
}

// auth.keys_file as a key table (null when none is configured); false,
// with each error as file:line: message, when the file has any (load_keys
// checks its owner and mode too). We run as its owner.
bool load_key_table(const config::Config& cfg, std::shared_ptr<const crypto::KeyTable>& table,
                    std::vector<std::string>& errors) {
  table.reset();
  if (cfg.auth.keys_file.empty()) return true;
  const crypto::KeysFile f = crypto::load_keys(cfg.auth.keys_file);
  for (const crypto::KeyError& e : f.errors) errors.push_back(e.to_string());
  if (!f.ok()) return false;
  auto t = std::make_shared<crypto::KeyTable>();
  if (std::string err; !crypto::build_key_table(f.keys, *t, &err)) {
    errors.push_back(cfg.auth.keys_file + ": " + err);
    return false;
  }
  table = std::move(t);
  return true;
}

// How often a stats.listen that cannot be bound is tried again.
constexpr double kStatsRetryS = 5;
// How long the dataplane's keys may differ from ours before the log says
// so: an operator's SIGHUPs to both daemons land a moment apart.
constexpr double kKeysSettleS = 5;

using hwclock::monotonic_s;

class ControlPlane {
 public:
  ControlPlane(config::Config cfg, std::shared_ptr<const crypto::KeyTable> keys, ctl::CookieKeyKeeper cookie_keys)
      : cfg_(std::move(cfg)), keys_(std::move(keys)), cookie_keys_(std::move(cookie_keys)),
        ke_ring_(cookie_keys_.ring()) {
    note_keys();
  }

  int run();

 private:
  bool attach_once(bool log_waiting);
  void make_engine(int64_t now_ns, std::optional<double> initial_freq_ppb);
  ctl::EngineConfig engine_config() const;
  void poll_rings(int64_t now_ns, ctl::EngineOutput& out);
  void carry_out(ctl::EngineOutput& out);
  void take_nts_ke(int64_t now_ns, ctl::EngineOutput& out);
  void publish_model(const std::optional<proto::ClockModelData>& m);
  void publish_endpoints();
  void tick_second();
  void reload(ctl::EngineOutput& out);
  void note_keys();
  void watch_keys();
  void try_stats(double now_s);
  bool try_nts_ke(double now_s);
  void rotate_cookie_keys();
  void cookie_keys_changed();
  bool publish_cookie_keys();
  void watch_cookie_keys();
  void reload_nts_ke(const config::Nts& before);
  status::Status make_status(const hwclock::CrossTimestamp& host) const;

  // What runs: the file as loaded at start, with what reloads took live
  // (the clock's keys never change here, so ServedClock's reference to
  // cfg_.clock stays what it opened).
  config::Config cfg_;
  // auth.keys_file's keys as cfg_ names them, re-read at each reload; the
  // engine holds the same table (its associations sign and verify with it).
  std::shared_ptr<const crypto::KeyTable> keys_;
  // keys_'s fingerprint (the empty table's without a file), to compare
  // with the one the dataplane publishes for its own table of the file.
  crypto::KeyTableFingerprint keys_fingerprint_ = crypto::kEmptyKeyTableFingerprint;
  uint32_t keys_count_ = 0;
  ctl::KeysWatch keys_watch_;
  std::unique_ptr<ctl::ServedClock> clock_;
  std::unique_ptr<ctl::Engine> engine_;
  ctl::SegmentClient seg_;
  ctl::HeartbeatWatch dataplane_watch_;
  uint64_t publications_ = 0;
  uint64_t tx_ring_full_ = 0;
  // The engine's endpoints_version() in the attached segment (0: none yet;
  // a new segment starts at generation 0, which forwards nothing).
  uint64_t endpoints_published_ = 0;
  size_t endpoints_left_out_ = 0;
  bool last_sync_ = false;
  double start_s_ = monotonic_s();
  ctl::StatsServer stats_;
  // The NTS cookie keys (made, rotated, published to the dataplane) and the
  // NTS-KE server (nts.ke_listen) that seals with them.
  ctl::CookieKeyKeeper cookie_keys_;
  ctl::NtsKeServer nts_ke_;
  ctl::NtsKeClient nts_ke_client_;  // NTS-KE with upstream [[server]]s with nts, on a thread of its own
  struct KeJob {
    uint32_t assoc_id, address;
    uint16_t port;
  };
  std::map<uint64_t, KeJob> nts_ke_jobs_;  // a running job's tag -> who asked, and where to
  // A rotation's keys wait for the dataplane to take them
  // (SegmentHeader::cookie_keys_taken_raw) before NTS-KE seals with them.
  uint64_t cookie_keys_published_raw_ = 0;
  double cookie_keys_published_s_ = 0;
  bool ke_ring_pending_ = false;
  // What NTS-KE seals with: the keys the dataplane holds (it read the same
  // file at its start, or took ours from the segment and said so).
  std::shared_ptr<const crypto::CookieKeyRing> ke_ring_;
  double next_nts_ke_try_s_ = 0;
  uint64_t nts_ke_failures_ = 0;
  double next_stats_try_s_ = 0;
  uint64_t stats_failures_ = 0;
  std::string last_attach_err_, last_replaced_err_;
};

ctl::EngineConfig ControlPlane::engine_config() const {
  ctl::EngineConfig e = ctl::engine_config(cfg_, clock_->precision_log2());
  e.keys = keys_;
  return e;
}

void ControlPlane::make_engine(int64_t now_ns, std::optional<double> initial_freq_ppb) {
  ctl::EngineConfig e = engine_config();
  e.servo.initial_frequency_ppb = initial_freq_ppb;
  std::random_device rd;
  engine_ = std::make_unique<ctl::Engine>(e, (uint64_t{rd()} << 32) | rd(), now_ns);
  spdlog::info("{} server(s), {} peer(s){}", cfg_.servers.size(), cfg_.peers.size(),
               cfg_.ntp.refclock_master
                   ? fmt::format(", local clock at stratum {}", *cfg_.ntp.refclock_master)
                   : std::string());
}

bool ControlPlane::attach_once(bool log_waiting) {
  std::string err;
  switch (seg_.attach(cfg_.shm_name, err)) {
    case ctl::SegmentClient::AttachResult::kAbsent:
      if (log_waiting) spdlog::info("waiting for ntp-dataplane to create shared memory {}", cfg_.shm_name);
      return false;
    case ctl::SegmentClient::AttachResult::kIncompatible:
      // The same refusal (a planted segment, another ABI) is said once, and
      // again every 30 s; a different one at once.
      if (log_waiting || err != last_attach_err_) spdlog::error("{}", err);
      last_attach_err_ = err;
      return false;
    case ctl::SegmentClient::AttachResult::kAttached:
      last_attach_err_.clear();
      break;
  }
  const proto::SegmentHeader& h = *seg_.header();
  hwclock::CrossTimestamp x;
  clock_->update(x);
  bool resumed = false;
  std::optional<double> initial_freq_ppb;
  if (!engine_) {
    proto::ClockModelData served;
    initial_freq_ppb = clock_->start(h.clock_model.try_load(served) ? &served : nullptr, x.raw, resumed);
  }
  if (resumed)
    spdlog::info("re-attached to shared memory {} (dataplane pid {}): continuing the served clock at {:+.3f} ppm",
                 cfg_.shm_name, h.dataplane_pid, clock_->correction_ppb() / 1000.0);
  else
    spdlog::info("attached to shared memory {} (dataplane pid {}, {} workers, {} ports)", cfg_.shm_name,
                 h.dataplane_pid, h.n_workers, h.n_ports);
  publish_model(clock_->published());
  if (!engine_) make_engine(hwclock::model_to_ns(clock_->published(), x.raw), initial_freq_ppb);
  // This segment (perhaps a restarted dataplane's) knows none of our ports.
  endpoints_published_ = 0;
  publish_endpoints();
  keys_watch_ = {};  // its keys are compared afresh: a mismatch is said for this dataplane too
  publish_cookie_keys();
  return true;
}

void ControlPlane::note_keys() {
  keys_fingerprint_ = keys_ ? crypto::fingerprint(*keys_) : crypto::kEmptyKeyTableFingerprint;
  keys_count_ = keys_ ? keys_->count : 0;
}

// Both daemons read auth.keys_file, each at its own start and SIGHUP: if
// they hold different tables, requests are answered with one secret while
// our associations sign with another. Checked every second (a reload on
// either side shows at once); said after kKeysSettleS, once per mismatch.
void ControlPlane::watch_keys() {
  switch (keys_watch_.observe(seg_.keys_fingerprint(), keys_fingerprint_, keys_count_, monotonic_s(), kKeysSettleS)) {
    case ctl::KeysWatch::Change::kMismatch: {
      const std::optional<proto::KeysFingerprintData> d = seg_.keys_fingerprint();
      spdlog::warn("the dataplane and ntp-control loaded different keys files: reload both (SIGHUP to ntp-dataplane "
                   "and ntp-control; the dataplane holds {} key(s), ntp-control {} from {})",
                   d ? d->key_count : 0, keys_count_, cfg_.auth.keys_file.empty() ? "no keys file" : cfg_.auth.keys_file);
      break;
    }
    case ctl::KeysWatch::Change::kMatch:
      spdlog::info("the dataplane and ntp-control hold the same keys again ({} key(s))", keys_count_);
      break;
    case ctl::KeysWatch::Change::kNone: break;
  }
}

void ControlPlane::publish_endpoints() {
  if (!engine_ || !seg_.attached() || engine_->endpoints_version() == endpoints_published_) return;
  seg_.publish_endpoints(engine_->endpoints());
  const bool first = endpoints_published_ == 0;
  endpoints_published_ = engine_->endpoints_version();
  const size_t left_out = engine_->endpoints_left_out();
  if (left_out != endpoints_left_out_ && left_out > 0)
    spdlog::warn("{} configured association(s) beyond the dataplane's table of {}: their packets are not forwarded "
                 "(the first {} [[server]]/[[peer]] are)",
                 left_out, proto::kMaxAssocEndpoints, proto::kMaxAssocEndpoints);
  endpoints_left_out_ = left_out;
  if (first)
    spdlog::info("published {} association endpoint(s) to the dataplane", engine_->endpoints().count);
  else
    spdlog::debug("published {} association endpoint(s) to the dataplane (version {})", engine_->endpoints().count,
                  endpoints_published_);
}

void ControlPlane::publish_model(const std::optional<proto::ClockModelData>& m) {
  if (m && seg_.attached()) seg_.header()->clock_model.store(*m);
}

void ControlPlane::poll_rings(int64_t now, ctl::EngineOutput& out) {
  // Reports first: a reply to our packet can only exist after it left.
  proto::TxReport rep;
  while (seg_.next_tx_report(rep)) engine_->on_tx_report(rep, now, out);
  proto::RxPacket pkt;
  // The configured associations' lane first: a flood on the other one
  // (peers that mobilise, within their rate) cannot delay these.
  for (unsigned w = 0; w < seg_.header()->n_workers; w++)
    while (seg_.next_assoc_rx(w, pkt)) engine_->on_packet(pkt, now, out);
  for (unsigned w = 0; w < seg_.header()->n_workers; w++)
    while (seg_.next_rx(w, pkt)) engine_->on_packet(pkt, now, out);
  take_nts_ke(now, out);
  if (now >= engine_->next_timer_ns()) engine_->on_timer(now, out);
}

void ControlPlane::take_nts_ke(int64_t now, ctl::EngineOutput& out) {
  for (ctl::NtsKeOutcome& o : nts_ke_client_.take()) {
    const auto it = nts_ke_jobs_.find(o.id);
    if (it == nts_ke_jobs_.end()) continue;  // never ours (cannot happen); nothing to give it to
    const KeJob job = it->second;
    nts_ke_jobs_.erase(it);
    const std::string server = proto::ipv4_to_string(job.address) + ":" + std::to_string(job.port);
    ctl::NtsKeResult r;
    r.ok = o.ok;
    r.error = o.error;
    std::memcpy(r.keys.c2s, o.keys.c2s, sizeof r.keys.c2s);
    std::memcpy(r.keys.s2c, o.keys.s2c, sizeof r.keys.s2c);
    o.keys.wipe();
    r.cookies = std::move(o.cookies);
    r.ntp_server = o.ntp_server;
    r.ntp_port = o.ntp_port;
    if (r.ok)
      spdlog::info("NTS-KE with {}: {} cookie(s){} in {:.3f} s", server, r.cookies.size(),
                   r.ntp_port != 0 ? ", NTP at port " + std::to_string(r.ntp_port) : "",
                   o.elapsed_s);
    else
      spdlog::warn("NTS-KE with {} failed: {}", server, r.error);
    engine_->on_nts_ke_result(job.assoc_id, o.id, r, now, out);
    r.keys.wipe();
  }
}

void ControlPlane::carry_out(ctl::EngineOutput& out) {
  for (const ctl::Event& e : out.events) spdlog::info("{}", status::format_event(e));
  if (out.adjust) {
    publish_model(clock_->apply(*out.adjust));
    clock_->save_drift(*engine_, /*force=*/false, monotonic_s());
  }
  publish_model(clock_->poll());  // a slew that is in ends now, not at the next order
  // Before this step's packets: a client that just chose a new port sends
  // from it now, and the dataplane forwards its answer only once the
  // endpoint is published (the seqlock's store is done before our enqueue,
  // and a worker copies a new generation before its next burst).
  publish_endpoints();
  for (ctl::NtsKeRequest& q : out.nts_ke) {
    ctl::NtsKeJob job;
    job.id = q.tag;  // random per request: an outcome goes back to the very request
    job.server_ip = q.address;
    job.port = q.ke_port;
    job.name = q.name;
    job.ca_file = q.ca_file;
    job.pin_sha256 = q.pin_sha256;
    nts_ke_jobs_[job.id] = {q.assoc_id, q.address, q.ke_port};
    nts_ke_client_.submit(std::move(job));
  }
  for (const ctl::OutPacket& o : out.packets)
    if (!seg_.send(o) && tx_ring_full_++ % 100 == 0)
      spdlog::warn("the dataplane's tx ring is full: dropping our packet to {}", proto::ipv4_to_string(o.dst_ip));
  out = {};
}

void ControlPlane::tick_second() {
  proto::SegmentHeader& h = *seg_.header();
  // /status says dataplane_alive; the log says when that changes.
  switch (dataplane_watch_.observe(h.dataplane_heartbeat_raw.load(std::memory_order_acquire), hwclock::read_tsc(),
                                   clock_->tsc_hz(), status::kDataplaneAliveS)) {
    case ctl::HeartbeatWatch::Change::kStopped:
      if (dataplane_watch_.age_s() < 0)
        spdlog::warn("dataplane pid {} is not serving (no heartbeat yet)", h.dataplane_pid);
      else
        spdlog::warn("dataplane pid {} stopped serving (no heartbeat for {:.1f} s)", h.dataplane_pid,
                     dataplane_watch_.age_s());
      break;
    case ctl::HeartbeatWatch::Change::kBack:
      spdlog::info("dataplane pid {} is serving again (heartbeat {:.1f} s old)", h.dataplane_pid,
                   dataplane_watch_.age_s());
      break;
    case ctl::HeartbeatWatch::Change::kNone: break;
  }
  hwclock::CrossTimestamp x;
  const proto::ClockModelData m = clock_->update(x);  // fills x: not in the same expression as x.raw
  const int64_t now = hwclock::model_to_ns(m, x.raw);
  if (const std::optional<ctl::LocalClockQuality> q = clock_->local_quality(monotonic_s()))
    engine_->set_local_clock_quality(*q, cfg_.ntp.local_clock_unsynced == "serve");
  clock_->leap_tick(*engine_, now, monotonic_s());
  // A PHC source that cannot be read (longer than the holdover) is not
  // served as synchronized time, whatever the associations say.
  const ctl::SystemVariables sys =
      clock_->source_fresh(monotonic_s()) ? engine_->system_at(now) : ctl::unsynchronized_variables();
  clock_->set_leap(sys, now, x.raw);
  h.clock_model.store(clock_->published());
  h.server_state.store(ctl::make_server_state(sys, clock_->precision_log2(), now, cfg_.ntp.holdover_s));
  watch_keys();
  rotate_cookie_keys();
  watch_cookie_keys();
  publications_++;
  if (sys.synchronized != last_sync_ || publications_ == 1)
    spdlog::info("serving {}: stratum {}, reference {}", sys.synchronized ? "synchronized" : "unsynchronized",
                 sys.stratum, sys.reference);
  last_sync_ = sys.synchronized;
  clock_->tick(sys.synchronized);
  stats_.publish(make_status(x));
}

// The stats endpoint is not worth giving up time service for: a port taken
// (by a local user, or a predecessor's connections) is tried again every
// kStatsRetryS while NTP goes on.
void ControlPlane::try_stats(double now_s) {
  std::string err;
  if (stats_.start(ctl::StatsOptions::from(cfg_), err)) {
    if (stats_failures_ > 0)
      spdlog::info("stats endpoint on {} after {} failed attempt(s)", cfg_.stats_listen, stats_failures_);
    else
      spdlog::info("stats endpoint on {} (/metrics and /status)", cfg_.stats_listen);
    stats_failures_ = 0;
    return;
  }
  next_stats_try_s_ = now_s + kStatsRetryS;
  // Every attempt for the first minute, then one line in 12 (a minute).
  if (stats_failures_++ < 12 || stats_failures_ % 12 == 0)
    spdlog::warn("{}: stats.listen = \"{}\": {}; serving NTP without it, retrying every {:.0f} s", cfg_.path,
                 cfg_.stats_listen, err, kStatsRetryS);
}

// Like the stats endpoint, an NTS-KE address not (yet) ours is tried again
// every kStatsRetryS while NTP goes on. False when the certificate or its
// key cannot be loaded (not worth retrying: the file is wrong).
bool ControlPlane::try_nts_ke(double now_s) {
  std::string err;
  const ctl::NtsKeOptions o = ctl::nts_ke_options(cfg_);
  switch (nts_ke_.start(o, cfg_.nts.certificate, cfg_.nts.private_key, ke_ring_, err)) {
    case ctl::NtsKeServer::Start::kOk:
      spdlog::info("NTS-KE server on {} ({} cookie key(s), sealing with key {}; NTP at {}:{}; at most {} sessions of "
                   "{:g} s)",
                   cfg_.nts.ke_listen, ke_ring_ ? ke_ring_->count : 0,
                   ke_ring_ && ke_ring_->sealing() ? ke_ring_->sealing()->id : 0,
                   o.ntp_server.empty() ? "the same address" : o.ntp_server, o.ntp_port, o.max_sessions, o.timeout_s);
      nts_ke_failures_ = 0;
      return true;
    case ctl::NtsKeServer::Start::kBadCredentials:
      spdlog::error("{}: nts.certificate/nts.private_key: {}; no NTS-KE server", cfg_.path, err);
      next_nts_ke_try_s_ = 1e300;  // until a reload names a good pair
      return false;
    case ctl::NtsKeServer::Start::kCannotListen: break;
  }
  next_nts_ke_try_s_ = now_s + kStatsRetryS;
  if (nts_ke_failures_++ < 12 || nts_ke_failures_ % 12 == 0)
    spdlog::warn("{}: nts.ke_listen = \"{}\": {}; serving NTP without NTS-KE, retrying every {:.0f} s", cfg_.path,
                 cfg_.nts.ke_listen, err, kStatsRetryS);
  return true;
}

// After a reload: the listener again if it moved, the new ring, certificate
// and limits for sessions from now on.
void ControlPlane::reload_nts_ke(const config::Nts& before) {
  if (cfg_.nts.ke_listen.empty()) {
    if (nts_ke_.running()) spdlog::info("NTS-KE server on {} stopped (nts.ke_listen removed)", before.ke_listen);
    nts_ke_.stop();
    return;
  }
  if (!nts_ke_.running() || before.ke_listen != cfg_.nts.ke_listen) {
    nts_ke_.stop();
    nts_ke_failures_ = 0;
    next_nts_ke_try_s_ = 0;  // the loop starts it (once there are keys the dataplane holds)
    return;
  }
  nts_ke_.set_ring(ke_ring_);
  nts_ke_.set_options(ctl::nts_ke_options(cfg_));
  if (std::string err; !nts_ke_.set_credentials(cfg_.nts.certificate, cfg_.nts.private_key, err))
    spdlog::error("{}: nts.certificate/nts.private_key: {}; the NTS-KE server keeps its certificate", cfg_.path, err);
  spdlog::info("NTS-KE server on {}: {} cookie key(s)", cfg_.nts.ke_listen, ke_ring_ ? ke_ring_->count : 0);
}

// A rotation step (each second: nothing until the newest key is
// nts.cookie_rotate_s old); new keys go to the dataplane, then to NTS-KE.
void ControlPlane::rotate_cookie_keys() {
  const ctl::CookieKeyKeeper::Tick t = cookie_keys_.tick(static_cast<int64_t>(std::time(nullptr)));
  if (!t.changed) return;
  std::string retired;
  for (uint32_t id : t.retired) retired += (retired.empty() ? ", retired key " : ", ") + std::to_string(id);
  spdlog::info("NTS cookie keys: key {} added{} ({} key(s), sealing with {})", t.added, retired,
               cookie_keys_.keys().size(), cookie_keys_.sealing_id());
  if (!t.write_error.empty())
    spdlog::error("NTS cookie keys: {}: serving with the new keys, but a restart loses them (and every cookie "
                  "sealed with them)",
                  t.write_error);
  cookie_keys_changed();
}

// New keys (a rotation, or the file read again). With rotation on they go
// to the dataplane, and NTS-KE seals with them once it has taken them
// (watch_cookie_keys), also when it is not attached yet (a start that
// rotated: until the dataplane says so, NTS-KE keeps the keys of the file
// as it was, which the dataplane read at its own start). With rotation off
// both daemons read the file at their reloads: NTS-KE takes them at once.
void ControlPlane::cookie_keys_changed() {
  if (cfg_.nts.cookie_rotate_s > 0 && cookie_keys_.enabled()) {
    ke_ring_pending_ = true;
    publish_cookie_keys();  // not attached: at the attach
    return;
  }
  ke_ring_pending_ = false;
  ke_ring_ = cookie_keys_.ring();
  nts_ke_.set_ring(ke_ring_);
}

// The dataplane took the keys (or is not there to: a restarted one reads
// the file, written first): NTS-KE seals with the newest key now. After
// kKeysSettleS without an answer, it does anyway, and says so.
void ControlPlane::watch_cookie_keys() {
  if (!ke_ring_pending_ || !seg_.attached() || cookie_keys_published_raw_ == 0) return;
  const bool taken =
      seg_.header()->cookie_keys_taken_raw.load(std::memory_order_acquire) == cookie_keys_published_raw_;
  const bool late = monotonic_s() - cookie_keys_published_s_ > kKeysSettleS;
  if (!taken && !late) return;
  if (!taken)
    spdlog::warn("the dataplane has not taken NTS cookie key {} after {:.0f} s: NTS-KE seals with it anyway (its "
                 "cookies get an NTS NAK until the dataplane opens them)",
                 cookie_keys_.sealing_id(), kKeysSettleS);
  else if (!cfg_.nts.ke_listen.empty())
    spdlog::info("NTS-KE seals with cookie key {} now (the dataplane opens it)", cookie_keys_.sealing_id());
  ke_ring_ = cookie_keys_.ring();
  nts_ke_.set_ring(ke_ring_);
  ke_ring_pending_ = false;
}

// The keys to the dataplane's workers (SegmentHeader::cookie_keys): they
// take them within one housekeeping round (10 ms). Only with rotation on:
// with keys managed outside, each daemon reads the file at its reload.
// False when nothing was published (not attached, no keys, rotation off).
bool ControlPlane::publish_cookie_keys() {
  if (!seg_.attached() || !cookie_keys_.enabled() || cookie_keys_.keys().empty() || cfg_.nts.cookie_rotate_s <= 0)
    return false;
  proto::CookieKeysData d;
  crypto::cookie_keys_to_abi(cookie_keys_.keys(), d);
  d.published_raw = std::max<uint64_t>(cookie_keys_published_raw_ + 1, hwclock::read_tsc());
  seg_.header()->cookie_keys.store(d);
  cookie_keys_published_raw_ = d.published_raw;
  crypto::wipe_secret(&d, sizeof d);
  cookie_keys_published_s_ = monotonic_s();
  return true;
}

// SIGHUP: the file again. Refused whole on any error (each logged as
// file:line:col: key: message); else the groups that change live are
// applied, and each that would need a restart is named.
void ControlPlane::reload(ctl::EngineOutput& out) {
  spdlog::info("SIGHUP: reloading {}", cfg_.path);
  config::ReloadResult r = config::reload(cfg_, config::Daemon::kControl);
  if (!r.plan) {
    for (const std::string& e : r.errors) spdlog::error("{}", e);
    spdlog::error("reload of {} refused ({} error(s)): keeping the running configuration", cfg_.path,
                  r.errors.size());
    return;
  }
  // The keys file again too (its keys may change with the TOML as it was):
  // one with errors refuses the reload, the running keys stay.
  std::shared_ptr<const crypto::KeyTable> keys;
  if (std::vector<std::string> errors; !load_key_table(r.plan->applied, keys, errors)) {
    for (const std::string& e : errors) spdlog::error("{}", e);
    spdlog::error("reload of {} refused ({} error(s) in auth.keys_file {}): keeping the running configuration and keys",
                  cfg_.path, errors.size(), r.plan->applied.auth.keys_file);
    return;
  }
  if (r.plan->applied.auth.keys_file != cfg_.auth.keys_file || keys_ || keys)
    spdlog::info("auth.keys_file {}: {} key(s)", r.plan->applied.auth.keys_file.empty() ? "(none)" : r.plan->applied.auth.keys_file,
                 keys ? keys->count : 0);
  ctl::CookieKeyKeeper cookie_keys;
  if (std::vector<std::string> errors; !cookie_keys.load(r.plan->applied.nts, errors)) {
    for (const std::string& e : errors) spdlog::error("{}", e);
    spdlog::error("reload of {} refused ({} error(s) in nts.cookie_keys_file {}): keeping the running configuration "
                  "and keys",
                  cfg_.path, errors.size(), r.plan->applied.nts.cookie_keys_file);
    return;
  }
  keys_ = std::move(keys);
  note_keys();
  cookie_keys_ = std::move(cookie_keys);
  cookie_keys_changed();
  rotate_cookie_keys();  // a file made or out of date now
  for (const std::string& line : r.plan->needs_restart) spdlog::warn("{}", line);
  if (r.plan->changed.empty()) {
    spdlog::info("reload of {}: nothing to change live", cfg_.path);
    // Still the engine's reload: an association a DENY/RSTR stopped starts
    // again at any reload, the operator's deliberate act (the file need
    // not change when the server's access was fixed); nothing else moves.
    if (engine_) engine_->reconfigure(engine_config(), clock_->now_ns(), out);
    reload_nts_ke(cfg_.nts);
    return;
  }
  const config::Nts nts_before = cfg_.nts;
  const bool access_changed = !(cfg_.access == r.plan->applied.access);
  cfg_ = std::move(r.plan->applied);
  spdlog::set_level(spdlog::level::from_str(cfg_.log_level));
  if (access_changed) stats_.set_access(config::access_table(cfg_.access));
  // Not attached yet: the engine is made from cfg_ when it is.
  if (engine_) engine_->reconfigure(engine_config(), clock_->now_ns(), out);
  reload_nts_ke(nts_before);
  std::string what;
  for (const std::string& c : r.plan->changed) what += (what.empty() ? "" : ", ") + c;
  spdlog::info("reloaded {}: {} ({} server(s), {} peer(s))", cfg_.path, what, cfg_.servers.size(),
               cfg_.peers.size());
}

status::Status ControlPlane::make_status(const hwclock::CrossTimestamp& host) const {
  status::ControlFacts f;
  f.sysname = cfg_.sysname;
  f.version = NTP_APPLIANCE_VERSION;
  f.clock_source = config::to_string(cfg_.clock.source);
  f.model = clock_->published();
  f.precision_log2 = clock_->precision_log2();
  f.served_ns = hwclock::model_to_ns(f.model, host.raw);
  f.host_ns = host.clock_ns;
  f.now_raw = hwclock::read_tsc();
  f.timebase_hz = clock_->tsc_hz();
  f.holdover_s = cfg_.ntp.holdover_s;
  f.control_uptime_s = monotonic_s() - start_s_;
  f.control_pid = getpid();
  f.state_publications = publications_;
  f.keys_match = keys_watch_.match();
  for (const auto& c : clock_->applier().steered()) f.steered_clocks.push_back(c->status());
  if (!cfg_.nts.ke_listen.empty()) {
    const ctl::NtsKeCounters c = nts_ke_.counters();
    f.nts_ke.push_back({.listen = cfg_.nts.ke_listen, .sessions = c.sessions, .accepted = c.accepted,
                        .refused = c.refused, .handshake_failures = c.handshake_failures,
                        .bad_requests = c.bad_requests, .served = c.served, .cookies = c.cookies,
                        .timeouts = c.timeouts});
  }
  return status::make_status(*seg_.header(), engine_->state(f.served_ns), f);
}

int ControlPlane::run() {
  clock_ = ctl::ServedClock::open(cfg_);
  if (!clock_) return 1;
  stats_.set_access(config::access_table(cfg_.access));
  try_stats(monotonic_s());
  rotate_cookie_keys();  // a file to make, or a key due, before NTS-KE hands out cookies
  if (!cfg_.nts.ke_listen.empty()) {
    if (std::string err; !ctl::NtsKeServer::check_credentials(cfg_.nts.certificate, cfg_.nts.private_key, err)) {
      spdlog::error("{}: nts.certificate/nts.private_key: {}; not starting", cfg_.path, err);
      return 2;
    }
    // Without keys the dataplane holds (a file made just now: until it
    // takes them), NTS-KE does not listen yet: a client that cannot connect
    // tries again soon, one answered with an error backs off for long.
    if (ke_ring_ && !try_nts_ke(monotonic_s())) return 2;
    if (!ke_ring_) spdlog::info("NTS-KE server on {}: waiting for the dataplane to take the new cookie keys",
                                cfg_.nts.ke_listen);
  }

  double last_wait_log = -1e9, next_second = 0;
  ctl::EngineOutput out;
  while (!g_stop.load()) {
    const double now_s = monotonic_s();
    if (g_reload.exchange(false)) reload(out);
    if (!stats_.running() && now_s >= next_stats_try_s_) try_stats(now_s);
    if (!cfg_.nts.ke_listen.empty() && ke_ring_ && !nts_ke_.running() && now_s >= next_nts_ke_try_s_)
      try_nts_ke(now_s);
    if (!seg_.attached()) {
      const bool log = now_s - last_wait_log > 30;
      if (log) last_wait_log = now_s;
      if (!attach_once(log)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      next_second = now_s;
    }
    seg_.heartbeat();
    poll_rings(clock_->now_ns(), out);
    carry_out(out);
    if (now_s >= next_second) {
      next_second += 1.0;
      if (next_second < now_s) next_second = now_s + 1.0;
      if (std::string why; seg_.replaced(why)) {
        spdlog::warn("the dataplane's shared memory {} went away (dataplane restarted?); re-attaching",
                     cfg_.shm_name);
        seg_.detach();
        last_wait_log = -1e9;
        last_replaced_err_.clear();
        continue;
      } else if (!why.empty() && why != last_replaced_err_) {
        // Cannot tell now (e.g. out of file descriptors): keep serving
        // from the segment we have, say so once.
        spdlog::warn("{}", why);
        last_replaced_err_ = why;
      }
      tick_second();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (engine_) clock_->save_drift(*engine_, /*force=*/true, monotonic_s());
  spdlog::info("stopping; the dataplane keeps serving the last state for up to {} s", cfg_.ntp.holdover_s);
  stats_.stop();
  nts_ke_.stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  const std::optional<config::Config> cfg =
      config::load_from_command_line(
          {.program = "ntp-control",
           .print_keys = true,
           .host_checks = config::kControlHostChecks,
           .stats_listen_retried = true}, argc, argv,
          exit_code);
  if (!cfg) return exit_code;
  spdlog::set_level(spdlog::level::from_str(cfg->log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ ntp-control[%P] %v");
  install_signals();
  // One control plane per segment (its rings and seqlocks have one writer):
  // a lock, taken before any clock, socket or segment is touched, held
  // until exit.
  config::set_lock_dir(cfg->lock_dir);
  config::InstanceLock instance_lock;
  if (std::string err; !instance_lock.acquire(cfg->shm_name, "control", err)) {
    spdlog::error("{}", err);
    return 1;
  }
  // A file another user planted at the lock's name was replaced: say whose.
  if (!instance_lock.notice().empty()) spdlog::warn("{}", instance_lock.notice());
  // The keys before anything serves: a keys file with errors stops the
  // start as the TOML's do (exit 2, each error with file:line).
  std::shared_ptr<const crypto::KeyTable> keys;
  if (std::vector<std::string> errors; !load_key_table(*cfg, keys, errors)) {
    for (const std::string& e : errors) spdlog::error("{}", e);
    spdlog::error("auth.keys_file {}: {} error(s); not starting", cfg->auth.keys_file, errors.size());
    return 2;
  }
  if (keys) spdlog::info("auth.keys_file {}: {} key(s)", cfg->auth.keys_file, keys->count);
  ctl::CookieKeyKeeper cookie_keys;
  if (std::vector<std::string> errors; !cookie_keys.load(cfg->nts, errors)) {
    for (const std::string& e : errors) spdlog::error("{}", e);
    spdlog::error("nts.cookie_keys_file {}: {} error(s); not starting", cfg->nts.cookie_keys_file, errors.size());
    return 2;
  }
  if (cookie_keys.enabled())
    spdlog::info("nts.cookie_keys_file {}: {} key(s){}", cfg->nts.cookie_keys_file, cookie_keys.keys().size(),
                 cfg->nts.cookie_rotate_s > 0 ? fmt::format(", a new one every {} s", cfg->nts.cookie_rotate_s)
                                              : std::string(", not rotated here (nts.cookie_rotate_s = 0)"));
  ControlPlane cp(*cfg, std::move(keys), std::move(cookie_keys));
  return cp.run();
}
