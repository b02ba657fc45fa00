#include "control/served_clock.h"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace ntp::ctl {

namespace {

void log_info(const std::vector<std::string>& lines) {
  for (const std::string& line : lines) spdlog::info("{}", line);
}

}  // namespace

ServedClock::ServedClock(const config::Config& cfg) : cfg_(cfg), drift_(cfg.clock.drift_file) {}

std::unique_ptr<ServedClock> ServedClock::open(const config::Config& cfg) {
  std::unique_ptr<ServedClock> c(new ServedClock(cfg));
  c->tsc_hz_ = hwclock::calibrate_tsc_hz(200);
  c->timescale_ = std::make_unique<Timescale>(cfg.clock, c->tsc_hz_);
  std::string err;
  if (cfg.clock.source == config::ClockSource::kPhc) {
    c->source_phc_ = PhcSource::open(cfg.clock, err);
    if (!c->source_phc_) {
      spdlog::error("{}: clock.phc: {}; nothing started", cfg.path, err);
      return nullptr;
    }
    spdlog::info("clock source: PHC {} (PHC - UTC = {} s)", cfg.clock.phc, cfg.clock.phc_utc_offset_s);
  }
  if (!cfg.ntp.leap_file.empty()) {
    hwclock::LeapParse p = hwclock::load_leap_seconds_list(cfg.ntp.leap_file);
    if (!p.ok()) {
      // The parser names the leap file, its line and column.
      spdlog::error("{}: ntp.leap_file: {}; nothing started", cfg.path, p.error);
      return nullptr;
    }
    spdlog::info("leap file {}: {} leap seconds, TAI - UTC {} s since the last{}", cfg.ntp.leap_file,
                 p.table.leaps.size(), p.table.leaps.empty() ? p.table.base_tai_utc_s : p.table.leaps.back().tai_utc_s,
                 p.table.hash_verified ? ", hash verified" : ", no hash to verify");
    c->leap_table_ = std::move(p.table);
  } else if (cfg.ntp.leap_smear) {
    spdlog::warn("ntp.leap_smear without ntp.leap_file: the sources announce a leap only on its day, after its "
                 "smear has begun; it will be smeared from then on");
  }
  std::vector<std::string> log;
  c->applier_ = ClockApplier::open(cfg.clock, *c->timescale_, c->tsc_hz_, log, err);
  log_info(log);
  if (!c->applier_) {
    spdlog::error("{}: {}; nothing started", cfg.path, err);
    return nullptr;
  }
  hwclock::CrossTimestamp host;
  c->precision_log2_ = hwclock::measure_precision_log2(c->update(host), c->tsc_hz_);
  spdlog::info("TSC {:.6f} MHz, clock precision 2^{}, clock source {}", c->tsc_hz_ / 1e6, c->precision_log2_,
               config::to_string(cfg.clock.source));
  if (c->leap_table_) {
    c->leap_warned_s_ = hwclock::monotonic_s();  // and daily from here (leap_tick)
    if (const std::string w = hwclock::expiry_warning(*c->leap_table_, c->now_ns(), cfg.ntp.leap_file); !w.empty())
      spdlog::warn("{}", w);
  }
  if (std::string line; c->drift_.enabled()) {
    c->drift_ppb_ = c->drift_.load(line);
    spdlog::info("{}", line);
  }
  return c;
}

proto::ClockModelData ServedClock::update(hwclock::CrossTimestamp& host) {
  // The trackers spread the phase error a cross-timestamp shows over up to
  // kSteerS seconds, not over the 1 s to the next update: the model's rate
  // then carries an eighth of a cross-timestamp's noise (tens of ns: tens
  // of ppb over 1 s), and a restart carries that rate on. Fewer seconds
  // while the first updates fit the slope, which is still ppm off.
  constexpr uint64_t kSteerS = 8;
  updates_++;
  const uint64_t steer_ticks = static_cast<uint64_t>(tsc_hz_) * std::min<uint64_t>(updates_, kSteerS);
  if (source_phc_) {
    std::vector<std::string> log;
    source_phc_->read(*timescale_, steer_ticks, hwclock::monotonic_s(), log);
    log_info(log);
  }
  host = hwclock::cross_timestamp(CLOCK_REALTIME, 8);
  const bool adopting = timescale_->adopting();
  const proto::ClockModelData m = timescale_->update(host, steer_ticks);
  if (adopting && !timescale_->adopting())
    spdlog::info("carried the served clock on: correction {:+.4f} ppm over the source, measured over {} s "
                 "(the discipline started from an estimate {:+.4f} ppm off)",
                 timescale_->correction_ppb() / 1000.0, Timescale::kAdoptUpdates,
                 timescale_->order_bias_ppb() / 1000.0);
  return m;
}

bool ServedClock::source_fresh(double now_s) const {
  return !source_phc_ || source_phc_->fresh(now_s, cfg_.ntp.holdover_s);
}

std::optional<double> ServedClock::start(const proto::ClockModelData* served, uint64_t raw_now, bool& resumed) {
  resumed = served && !(served->flags & proto::kModelProvisional) && (served->flags & proto::kModelValid);
  if (resumed) {
    // Our restart: carry on the clock the dataplane is serving, at the
    // frequency correction it was running with.
    // A real clock as the source with nothing to discipline the served
    // model (refclock_master alone, or CLOCK_REALTIME steered directly)
    // has no correction to carry on: the served clock is that clock.
    const bool real = cfg_.clock.source != config::ClockSource::kVirtual;
    const bool direct = cfg_.clock.source == config::ClockSource::kSystem && cfg_.clock.steer_system_clock;
    const bool no_discipline = cfg_.servers.empty() && cfg_.peers.empty();
    timescale_->adopt(*served, raw_now, !(real && (direct || no_discipline)));
    return timescale_->correction_ppb();
  }
  if (drift_ppb_) timescale_->adjust(0, *drift_ppb_, 0, 0, raw_now);
  return drift_ppb_;
}

std::optional<LocalClockQuality> ServedClock::local_quality(double now_s) {
  if (cfg_.clock.source == config::ClockSource::kVirtual) {
    // The virtual clock is defined against the host clock, which it tracks
    // by cross-timestamps: off by what the last one measured (being taken
    // out), and by as much again from the rate error until the next one.
    const int64_t e = timescale_->host_error_ns();
    return LocalClockQuality{.synchronized = true, .max_error_ns = 2 * (e < 0 ? -e : e)};
  }
  if (source_phc_)
    return LocalClockQuality{.synchronized = source_fresh(now_s),
                             .max_error_ns = source_phc_->max_error_ns(now_s, tsc_hz_)};
  hwclock::KernelClockState k;
  if (std::string err; !hwclock::read_kernel_clock_state(k, err)) {
    if (!kernel_read_failed_) spdlog::error("{}: the host clock's state is unknown: unsynchronized", err);
    kernel_read_failed_ = true;
    return LocalClockQuality{.synchronized = false, .max_error_ns = 0};
  }
  kernel_read_failed_ = false;
  if (kernel_synced_ != k.synchronized)
    spdlog::info("host clock (adjtimex): {}, maxerror {:.3f} ms, esterror {:.3f} ms",
                 k.synchronized ? "synchronized" : "unsynchronized", static_cast<double>(k.max_error_ns) / 1e6,
                 static_cast<double>(k.est_error_ns) / 1e6);
  kernel_synced_ = k.synchronized;
  return LocalClockQuality{.synchronized = k.synchronized, .max_error_ns = k.max_error_ns};
}

void ServedClock::leap_tick(Engine& engine, int64_t now_ns, double now_s) {
  if (!leap_table_) return;  // the sources' majority decides (the engine's default)
  if (now_s - leap_warned_s_ >= 86400) {
    leap_warned_s_ = now_s;
    if (const std::string w = hwclock::expiry_warning(*leap_table_, now_ns, cfg_.ntp.leap_file); !w.empty())
      spdlog::warn("{}", w);
  }
  engine.set_file_leap(hwclock::leap_sign_on_day(*leap_table_, now_ns));
}

void ServedClock::set_leap(const SystemVariables& sys, int64_t now_ns, uint64_t raw_now) {
  const ModelLeap l = model_leap(sys.synchronized ? sys.leap_sign : 0, now_ns, cfg_.ntp.leap_smear,
                                 sys.synchronized && leap_table_ ? &*leap_table_ : nullptr);
  const int32_t sign = l.sign;
  const int64_t leap_ns = l.leap_ns;
  if (timescale_->set_leap(sign, leap_ns, cfg_.ntp.leap_smear, raw_now) && sign != 0)
    spdlog::info("leap second: {} at {} (Unix s), {}", sign > 0 ? "inserted" : "deleted", leap_ns / 1'000'000'000,
                 cfg_.ntp.leap_smear ? "smeared over 24 h, noon to noon (the leap indicator is not passed on)"
                                     : "stepped");
  if (timescale_->leaps_folded() != leaps_logged_) {
    leaps_logged_ = timescale_->leaps_folded();
    spdlog::info("leap second in: folded into the served clock's anchor ({} so far)", leaps_logged_);
  }
}

std::optional<proto::ClockModelData> ServedClock::take(const ClockApplier::Result& r) {
  for (const std::string& e : r.errors) spdlog::error("{}", e);
  log_info(r.log);
  return r.publish;
}

std::optional<proto::ClockModelData> ServedClock::apply(const ClockAdjustment& a) {
  return take(applier_->apply(a, hwclock::read_tsc()));
}

std::optional<proto::ClockModelData> ServedClock::poll() { return take(applier_->poll(hwclock::read_tsc())); }

void ServedClock::tick(bool synchronized) { take(applier_->tick(synchronized)); }

void ServedClock::save_drift(const Engine& engine, bool force, double now_s) {
  if (engine.servo_state() == hwclock::ServoState::kNotSet) return;
  // After a restart the engine runs at an estimate of the carried-on
  // correction; the file gets the real one.
  const double ppb = engine.frequency_ppb() + timescale_->order_bias_ppb();
  if (std::string err; !drift_.save(ppb, now_s, force, err))
    spdlog::warn("clock.drift_file: {}", err);
}

}  // namespace ntp::ctl
