// A simulated network of NTP nodes for closed-loop tests of the whole
// control plane logic (associations, filter, selection, servo), in the
// style of chrony's test/simulation: no real time, no sockets, seeded
// randomness. Each node has a clock = true time + initial offset + its
// oscillator's frequency error + the discipline's correction, which the
// node's Engine steers exactly as ntp-control does (step, then run at
// freq_ppb). A reference node (a server with a perfect clock) answers
// client requests like the dataplane's responder.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <random>
#include <vector>

#include "control/ntp/engine.h"
#include "hwclock/correction.h"
#include "proto/channel_abi.h"
#include "proto/ntp_packet.h"

namespace ntp::sim {

// A clock: reads true time plus an error that grows with its oscillator's
// frequency error and is corrected by the discipline.
struct SimClock {
  double offset0_ns = 0;   // error at true time 0 of the simulation
  double freq_ppm = 0;     // the oscillator's own error
  hwclock::Correction corr;  // the discipline's, on the true time axis

  double error_at(double t_ns) const {  // ours - true
    return offset0_ns + freq_ppm * 1e-6 * t_ns + corr.value_at(static_cast<int64_t>(t_ns));
  }
  void adjust(double t_ns, const ctl::ClockAdjustment& a) {
    corr.order(static_cast<int64_t>(t_ns), a.step ? a.step_ns : 0, a.freq_ppb, a.slew_ns, a.slew_rate_ppb);
  }
};

struct Link {
  double base_ns = 50'000;    // fixed one-way delay
  double jitter_ns = 10'000;  // mean of an exponential extra delay per packet
  bool up = true;
};

class World {
 public:
  static constexpr int64_t kEpochNs = 1'767'225'600'000'000'000;  // true time 0 = 2026-01-01

  // epoch_ns: the Unix time of true time 0 (e.g. a leap day's noon).
  explicit World(uint64_t seed, int64_t epoch_ns = kEpochNs) : rng_(seed), epoch_ns_(epoch_ns) {}

  // A node running an Engine with its own address.
  int add_node(uint32_t address, const ctl::EngineConfig& cfg, SimClock clock) {
    Node n;
    n.address = address;
    n.clock = clock;
    n.engine = std::make_unique<ctl::Engine>(cfg, rng_(), local_ns(clock, 0));
    nodes_.push_back(std::move(n));
    return static_cast<int>(nodes_.size()) - 1;
  }
  // A stateless server with a perfect clock at `stratum` (refid LOCL).
  int add_reference(uint32_t address, uint8_t stratum) {
    Node n;
    n.address = address;
    n.reference_stratum = stratum;
    nodes_.push_back(std::move(n));
    return static_cast<int>(nodes_.size()) - 1;
  }

  Link& link() { return link_; }
  // A reference that is off by offset_ns (a falseticker).
  void set_reference_offset(int node, double offset_ns) { nodes_[node].reference_offset_ns = offset_ns; }
  void set_up(int node, bool up) { nodes_[node].up = up; }
  // The dataplane's forwarding of modes 1, 2 and 4 to an engine node, by
  // the endpoints its engine publishes (as ntp-control does before it
  // sends a step's packets, proto::AssocEndpoints): mode 4 only from a
  // client association's server and port to its current local port, mode
  // 1/2 from a configured peer to 123, else mode 1/2 to 123 from the
  // peer class (the peer-class lane). On by default; off, every packet
  // reaches the engine (its own checks alone).
  void set_dataplane_filter(bool on) { dataplane_filter_ = on; }
  // Packets the filter kept from an engine node.
  uint64_t filtered(int node) const { return nodes_[node].filtered; }
  // What a reference announces as its leap indicator.
  void set_reference_leap(int node, proto::Leap leap) { nodes_[node].reference_leap = leap; }
  // The node's engine, for what the shell tells it (leap file, local clock).
  ctl::Engine& mutable_engine(int node) { return *nodes_[node].engine; }

  // Runs until true time end_ns, calling observe(t) every observe_every_ns.
  void run(double end_ns, double observe_every_ns, const std::function<void(double)>& observe) {
    double next_obs = t_;
    while (t_ < end_ns) {
      // The next event: a packet arriving, a node's timer, an observation.
      double next = std::min(end_ns, next_obs);
      if (!in_flight_.empty()) next = std::min(next, in_flight_.top().arrive_ns);
      for (const Node& n : nodes_)
        if (n.engine && n.up) next = std::min(next, true_time_of(n, n.engine->next_timer_ns()));
      // Always move on: a timer computed back from a clock reading may come
      // out a rounding error early.
      t_ = std::max(t_ + 1000.0, next);
      while (!in_flight_.empty() && in_flight_.top().arrive_ns <= t_) {
        Packet p = in_flight_.top();
        in_flight_.pop();
        deliver(p);
      }
      for (Node& n : nodes_) {
        if (!n.engine || !n.up) continue;
        const int64_t now = local_ns(n.clock, t_);
        if (now >= n.engine->next_timer_ns()) {
          ctl::EngineOutput out;
          n.engine->on_timer(now, out);
          carry_out(n, out);
        }
      }
      if (t_ >= next_obs) {
        observe(t_);
        next_obs += observe_every_ns;
      }
    }
  }

  double now_ns() const { return t_; }
  const ctl::Engine& engine(int node) const { return *nodes_[node].engine; }
  double error_ns(int node) const { return nodes_[node].clock.error_at(t_); }
  // The node's clock reading now (what its dataplane timestamps with).
  int64_t local_now_ns(int node) const { return local_ns(nodes_[node].clock, t_); }
  bool up(int node) const { return nodes_[node].up; }
  // The node's control plane stops (set_up(node, false) stops its engine
  // and its packets) and its dataplane carries on alone with the clock
  // model as last published: at the rate it had, and a slew in progress
  // ends where it is in, as the model says (ClockModelData::slew_end_raw),
  // at the base rate from there. That is the correction as last ordered.
  void kill_control(int node) { nodes_[node].up = false; }
  // A packet from anyone (a spoofer: any source address and port) that
  // arrives at node `to` at true time arrive_ns.
  void inject(int to, uint32_t from_address, uint16_t src_port, uint16_t dst_port, const proto::NtpHeader& h,
              double arrive_ns) {
    Packet p;
    p.arrive_ns = std::max(arrive_ns, t_);
    p.to = to;
    p.rx = {};
    p.rx.src_ip = from_address;
    p.rx.dst_ip = nodes_[to].address;
    p.rx.src_port = src_port;
    p.rx.dst_port = dst_port;
    p.rx.len = proto::kHeaderLen;
    proto::write_header(h, p.rx.payload);
    in_flight_.push(p);
  }
  // Every event the node's engine reported, oldest first.
  const std::vector<ctl::Event>& events(int node) const { return nodes_[node].events; }

 private:
  struct Node {
    uint32_t address = 0;
    SimClock clock;
    std::unique_ptr<ctl::Engine> engine;  // null: a reference server
    std::vector<ctl::Event> events;
    uint8_t reference_stratum = 0;
    double reference_offset_ns = 0;
    proto::Leap reference_leap = proto::Leap::kNone;
    bool up = true;
    uint64_t filtered = 0;
  };
  struct Packet {
    double arrive_ns;
    int to;
    proto::RxPacket rx;  // rx_time filled on arrival
    bool operator<(const Packet& o) const { return arrive_ns > o.arrive_ns; }  // min-heap
  };

  int64_t local_ns(const SimClock& c, double t_ns) const {
    return epoch_ns_ + static_cast<int64_t>(std::llround(t_ns + c.error_at(t_ns)));
  }
  // True time at which the node's clock reads local (a clock is monotonic
  // and nearly 1:1, so two Newton steps are exact enough).
  double true_time_of(const Node& n, int64_t local) const {
    double t = static_cast<double>(local - epoch_ns_);
    for (int i = 0; i < 3; i++) t -= static_cast<double>(local_ns(n.clock, t) - local);
    return std::max(t + 1.0, t_);
  }
  double one_way() {
    std::exponential_distribution<double> e(1.0 / link_.jitter_ns);
    return link_.base_ns + e(rng_);
  }
  int node_by_address(uint32_t a) const {
    for (size_t i = 0; i < nodes_.size(); i++)
      if (nodes_[i].address == a) return static_cast<int>(i);
    return -1;
  }

  void send(uint32_t from_address, uint16_t src_port, uint32_t dst, uint16_t dst_port, const uint8_t* payload,
            double depart_ns) {
    const int to = node_by_address(dst);
    if (to < 0 || !link_.up || !nodes_[to].up) return;
    Packet p;
    p.arrive_ns = depart_ns + one_way();
    p.to = to;
    p.rx = {};
    p.rx.src_ip = from_address;
    p.rx.dst_ip = dst;
    p.rx.src_port = src_port;
    p.rx.dst_port = dst_port;
    p.rx.len = proto::kHeaderLen;
    std::memcpy(p.rx.payload, payload, proto::kHeaderLen);
    in_flight_.push(p);
  }

  void carry_out(Node& n, ctl::EngineOutput& out) {
    n.events.insert(n.events.end(), out.events.begin(), out.events.end());
    if (out.adjust) n.clock.adjust(t_, *out.adjust);
    for (const ctl::OutPacket& o : out.packets) {
      // The dataplane stamps the transmit time as it sends and reports it.
      const int64_t tx = local_ns(n.clock, t_);
      uint8_t payload[proto::kHeaderLen];
      std::memcpy(payload, o.payload.data(), sizeof payload);
      if (o.stamp_transmit) proto::store_ts(payload + proto::offs::kTransmit, proto::ntp_from_unix_ns(tx));
      if (n.up) send(n.address, o.src_port, o.dst_ip, o.dst_port, payload, t_);
      proto::TxReport rep{};
      rep.cookie = o.cookie;
      rep.tx_time_ns = tx;
      ctl::EngineOutput more;
      n.engine->on_tx_report(rep, tx, more);
      n.events.insert(n.events.end(), more.events.begin(), more.events.end());
      if (more.adjust) n.clock.adjust(t_, *more.adjust);
      // (Packets produced by a report would be sent in the next round.)
    }
    out = {};
  }

  void deliver(Packet& p) {
    Node& n = nodes_[p.to];
    if (!n.up) return;
    if (!n.engine) {  // a reference server: answer mode 3 like the responder
      proto::NtpHeader req = proto::read_header(p.rx.payload);
      if (req.mode != proto::Mode::kClient) return;
      const int64_t now = epoch_ns_ + static_cast<int64_t>(std::llround(t_ + n.reference_offset_ns));
      proto::NtpHeader r;
      r.leap = n.reference_leap;
      r.version = req.version;
      r.mode = proto::Mode::kServer;
      r.stratum = n.reference_stratum;
      r.poll_log2 = req.poll_log2;
      r.precision_log2 = -25;
      r.refid = proto::refid_from_ascii("LOCL");
      r.reference = proto::ntp_from_unix_ns(now);
      r.origin = req.transmit;
      r.receive = proto::ntp_from_unix_ns(now);
      r.transmit = proto::ntp_from_unix_ns(now + 2000);
      uint8_t out[proto::kHeaderLen];
      proto::write_header(r, out);
      send(n.address, proto::kNtpPort, p.rx.src_ip, p.rx.src_port, out, t_ + 2000);  // to the port it came from
      return;
    }
    if (dataplane_filter_ && !forwarded(*n.engine, p.rx)) {
      n.filtered++;
      return;
    }
    p.rx.rx_time_ns = local_ns(n.clock, t_);
    ctl::EngineOutput out;
    n.engine->on_packet(p.rx, p.rx.rx_time_ns, out);
    carry_out(n, out);
  }

  static bool forwarded(const ctl::Engine& e, const proto::RxPacket& rx) {
    const proto::NtpHeader h = proto::read_header(rx.payload);
    const bool client = h.mode == proto::Mode::kServer;
    if (!client && h.mode != proto::Mode::kSymmetricActive && h.mode != proto::Mode::kSymmetricPassive) return false;
    const proto::AssocEndpoints& t = e.endpoints();
    const proto::IpAddress from = proto::IpAddress::v4(rx.src_ip);
    for (uint32_t i = 0; i < t.count; i++) {
      const proto::AssocEndpoint& ep = t.entries[i];
      if (std::memcmp(ep.address, from.bytes, sizeof ep.address) == 0 && ep.remote_port == rx.src_port &&
          ep.local_port == rx.dst_port && ep.kind == (client ? proto::kEndpointClient : proto::kEndpointSymmetric))
        return true;
    }
    return !client && rx.dst_port == proto::kNtpPort && proto::may_peer(e.config().access.classify_v4(rx.src_ip));
  }

  std::mt19937_64 rng_;
  bool dataplane_filter_ = true;
  std::vector<Node> nodes_;
  std::priority_queue<Packet> in_flight_;
  Link link_;
  int64_t epoch_ns_;
  double t_ = 0;
};

}  // namespace ntp::sim
