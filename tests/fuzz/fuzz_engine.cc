// libFuzzer target: a stateful run of ctl::Engine (the NTP system process)
// driven by the input as a sequence of operations.
//
// Input: a 16-byte prefix that chooses the configuration, then operations
// of a 1-byte opcode and its arguments (a short input ends the run):
//   prefix[0]     bits 0-1: configured servers (0..3), bit 2: a [[peer]],
//                 bit 3: refclock_master (stratum prefix[1] % 15 + 1),
//                 bits 4-6: max_dynamic_sessions 0..7
//   prefix[2..3]  passive_minpoll / maxpoll (each % 22 - 4, ordered)
//   prefix[4..5]  passive_timeout_s (16 + value % 1000)
//   prefix[6..13] the engine's seed (poll jitter)
//   prefix[14]    authentication: bit 0 auth.authenticate, bits 1-2 the
//                 servers' key, bits 3-4 the peer's (0 none; keys 1 AES128
//                 and 2 SHA256 are trusted, 3 AES128 is not)
//   op % 8:
//   0, 1  a packet: from one of a few addresses (configured ones, two of
//         the peer class 10.1/16, an outsider, our own), mode, leap,
//         stratum, poll, refid (kiss codes among them), an origin that
//         echoes what we last sent there (its transmit or, interleaved, its
//         receive field: a client's nonce, a peer's arrival time) or not,
//         timestamps around now,
//         ports that match or not; or a sane server's header; and a MAC
//         field: none, valid of key 1, 2 or 3, a wrong secret, an unknown
//         key, a crypto-NAK, a length the key does not have
//   2     the dataplane's report of a packet we sent (sent or failed)
//   3     time passes (up to ~2^40 ns) and the timers run
//   4     a large jump of the caller's clock (forward, or back by < 1 s)
//   5     a reload (Engine::reconfigure) with servers/peer/access changed
//   6     the leap file's word, or the local clock's quality
//   7     timers at now
// Clock adjustments that come out are applied to the caller's clock as the
// control plane would (a step moves now by step_ns).
//
// Invariants, after every operation:
//  - associations <= configured + max_dynamic_sessions (the config in force)
//  - every OutPacket goes to a configured address or one whose access class
//    may peer, in mode 1, 2 or 3, version 1..4, 48 bytes of header;
//    a client request from a port in 1024..65535, symmetric ones from 123
//  - system variables: stratum 1..16, leap 0..3, root delay and root
//    dispersion >= 0; synchronized => stratum <= 15
//  - sessions() lists every association once
//  - a keyed association's packets ask for its key's MAC at the wire
//    length (16 for AES128, 20 for SHA256 in NTPv4, 32 in NTPv3), an
//    unkeyed one's for none; its auth state is none exactly when unkeyed;
//    the system peer's key, if any, is trusted, and with authenticate it
//    is keyed and ok
//  - the endpoint table (what ntp-control publishes before it sends a
//    step's packets) holds the port and address of every packet a
//    configured association sends, and lists only configured addresses;
//    its version moves whenever its content changes, and only then
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "control/ntp/engine.h"
#include "crypto/mac.h"
#include "proto/ntp_packet.h"
#include "proto/ntp_time.h"

namespace {

using namespace ntp;

constexpr size_t kPrefixLen = 16;
constexpr int64_t kS = 1'000'000'000;
constexpr uint32_t kOwn = 0x0A000001;
// Configured servers, the [[peer]], two addresses of the peer class, an
// outsider (limited class) and our own address.
constexpr uint32_t kServers[3] = {0x0A000002, 0x0A000003, 0x0A000004};
constexpr uint32_t kConfiguredPeer = 0x0A000005;
constexpr uint32_t kPool[] = {0x0A000002, 0x0A000003, 0x0A000004, 0x0A000005,
                              0x0A010005, 0x0A010006, 0xC0000201, kOwn};
constexpr uint32_t kKisses[] = {proto::kKissRate, proto::kKissDeny, proto::kKissRstr, proto::kKissInit,
                                proto::kKissStep, 0x0A000001};

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_engine: invariant violated: %s\n", what);
  std::abort();
}

struct Reader {
  const uint8_t* p;
  const uint8_t* end;
  bool more(size_t n) const { return static_cast<size_t>(end - p) >= n; }
  template <class T>
  T get() {
    T v{};
    if (!more(sizeof v)) {
      p = end;
      return v;
    }
    std::memcpy(&v, p, sizeof v);
    p += sizeof v;
    return v;
  }
};

crypto::MacKey make_key(uint32_t id, crypto::MacType type, const char* secret) {
  crypto::MacKey k;
  if (!crypto::mac_key_init(k, id, type, reinterpret_cast<const uint8_t*>(secret), std::strlen(secret)))
    fail("test key does not initialise");
  return k;
}
const crypto::MacKey kKeys[] = {
    make_key(1, crypto::MacType::kAes128Cmac, "0123456789abcdef"),
    make_key(2, crypto::MacType::kSha256, "a longer shared secret"),
    make_key(3, crypto::MacType::kAes128Cmac, "fedcba9876543210"),
};
const crypto::MacKey kWrongKey1 = make_key(1, crypto::MacType::kAes128Cmac, "0123456789abcdeX");
const crypto::MacKey kUnknownKey = make_key(9, crypto::MacType::kAes128Cmac, "0123456789abcdef");

const std::shared_ptr<const crypto::KeyTable>& key_table() {
  static const std::shared_ptr<const crypto::KeyTable> t = [] {
    auto k = std::make_shared<crypto::KeyTable>();
    for (const crypto::MacKey& key : kKeys)
      if (!k->insert(key)) fail("test key table");
    return k;
  }();
  return t;
}

void apply_auth(ctl::EngineConfig& c, uint8_t auth) {
  c.keys = key_table();
  c.trusted_keys = {1, 2};
  c.authenticate = auth & 1;
  const uint32_t server_key = (auth >> 1) & 3, peer_key = (auth >> 3) & 3;
  for (ctl::AssocConfig& a : c.associations) a.key_id = a.mode == ctl::AssocMode::kClient ? server_key : peer_key;
}

ctl::AssocConfig assoc(uint32_t address, ctl::AssocMode mode, uint8_t polls) {
  ctl::AssocConfig a;
  a.address = address;
  a.mode = mode;
  a.minpoll_log2 = polls % 8 - 4;
  a.maxpoll_log2 = a.minpoll_log2 + (polls >> 3) % 6;
  a.iburst = polls & 0x40;
  a.burst = polls & 0x80;
  a.xleave = (polls ^ address) & 1;  // client or symmetric interleaved mode
  return a;
}

ctl::EngineConfig make_config(uint8_t shape, uint8_t stratum, uint8_t minp, uint8_t maxp, uint16_t timeout,
                              bool peer_class) {
  ctl::EngineConfig c;
  for (unsigned i = 0; i < (shape & 3u); i++) c.associations.push_back(assoc(kServers[i], ctl::AssocMode::kClient, shape ^ static_cast<uint8_t>(i * 37)));
  if (shape & 4) c.associations.push_back(assoc(kConfiguredPeer, ctl::AssocMode::kSymmetricActive, shape));
  if (shape & 8) c.refclock_master = stratum % 15 + 1;
  c.own_addresses = {kOwn};
  std::vector<proto::AccessRule> rules;
  if (peer_class) rules.push_back({0x0A010000, 16, proto::AccessClass::kPeer});
  c.access = proto::AccessTable(rules, proto::AccessClass::kLimited);
  c.max_dynamic_sessions = (shape >> 4) & 7;
  int lo = minp % 22 - 4, hi = maxp % 22 - 4;
  if (lo > hi) std::swap(lo, hi);
  c.passive_minpoll_log2 = lo;
  c.passive_maxpoll_log2 = hi;
  c.passive_timeout_ns = (16 + timeout % 1000) * kS;
  c.precision_log2 = -20;
  return c;
}

// What we last sent to an address, to answer it (or not).
struct LastSent {
  ctl::OutPacket pkt;
  int64_t tx_ns = 0;
};

class Run {
 public:
  Run(const ctl::EngineConfig& cfg, uint64_t seed, int64_t now, uint8_t auth)
      : cfg_(cfg), now_(now), engine_(cfg, seed, now), auth_(auth) {
    last_endpoints_ = engine_.endpoints();
    last_endpoints_version_ = engine_.endpoints_version();
    if (last_endpoints_version_ == 0) fail("no endpoint table at start (generation 0 forwards nothing)");
  }

  void check(const ctl::EngineOutput& out) {
    const size_t configured = engine_.config().associations.size();
    const size_t cap = configured + static_cast<size_t>(std::max(engine_.config().max_dynamic_sessions, 0));
    if (engine_.associations() > cap) fail("more associations than configured + max_dynamic_sessions");
    for (const ctl::OutPacket& o : out.packets) {
      check_mac_request(o);
      bool known = false;
      for (const ctl::AssocConfig& a : engine_.config().associations) known |= a.address == o.dst_ip;
      if (!known && !proto::may_peer(engine_.config().access.classify_v4(o.dst_ip)))
        fail("a packet to an address neither configured nor of the peer class");
      if (o.dst_ip == kOwn) fail("a packet to our own address");
      static_assert(sizeof o.payload == proto::kHeaderLen, "a header, no more");
      const proto::NtpHeader h = proto::read_header(o.payload.data());
      if (h.version < 1 || h.version > 4) fail("version out of 1..4");
      if (h.mode == proto::Mode::kClient) {
        if (o.src_port < 1024) fail("a client request from a privileged port");
        bool xleave = false;
        for (const ctl::AssocConfig& a : engine_.config().associations) xleave |= a.address == o.dst_ip && a.xleave;
        // Interleaved requests carry the server's receive field and a nonce, never a time of ours.
        if (!xleave && (!h.origin.is_zero() || !h.receive.is_zero())) fail("a client request reveals timestamps");
        if (xleave && !h.receive.is_zero() && h.receive == h.transmit) fail("the two nonces of a request are equal");
        if (xleave && h.receive.is_zero() && !h.origin.is_zero()) fail("an interleaved request without its nonce");
      } else if (h.mode == proto::Mode::kSymmetricActive || h.mode == proto::Mode::kSymmetricPassive) {
        if (o.src_port != proto::kNtpPort) fail("a symmetric packet not from port 123");
        bool xleave = false;
        for (const ctl::AssocConfig& a : engine_.config().associations) xleave |= a.address == o.dst_ip && a.xleave;
        // Basic: the dataplane stamps the transmit field as it leaves.
        // Interleaved (xleave only): it carries an earlier real transmit
        // time of ours, never equal to the receive or origin (else the peer
        // could not tell the modes apart).
        if (!o.stamp_transmit && !xleave) fail("a basic symmetric packet the dataplane does not stamp");
        if (!o.stamp_transmit && (h.transmit.is_zero() || h.transmit == h.receive || h.transmit == h.origin))
          fail("an interleaved symmetric packet whose transmit is zero or equals its receive or origin");
      } else {
        fail("a packet of mode other than 1, 2, 3");
      }
    }
    const ctl::SystemVariables v = engine_.system_at(now_);
    if (v.stratum < 1 || v.stratum > 16) fail("system stratum out of 1..16");
    if (v.leap > 3) fail("leap out of 0..3");
    if (v.root_delay_ns < 0) fail("negative root delay");
    if (v.root_dispersion_ns < 0) fail("negative root dispersion");
    if (v.synchronized && v.stratum > 15) fail("synchronized at stratum 16");
    const std::vector<ctl::AssociationState> sessions = engine_.sessions(now_);
    if (sessions.size() != engine_.associations()) fail("sessions() misses associations");
    for (const ctl::AssociationState& a : sessions) {
      if ((a.auth == ctl::AuthState::kNone) != (a.key_id == 0)) fail("auth state none but keyed, or unkeyed but not none");
      // Pending ends with the first verified answer to ours, which sets reach.
      if (a.auth == ctl::AuthState::kPending && a.reach != 0) fail("auth state pending after a verified answer");
      if (a.selection != ctl::SelectionState::kSystemPeer) continue;
      if (a.key_id == 3) fail("the system peer's key is not trusted");
      if (engine_.config().authenticate && (a.key_id == 0 || a.auth != ctl::AuthState::kOk))
        fail("authenticate: an unverified system peer");
    }
    check_endpoints(out);
  }

  void check_mac_request(const ctl::OutPacket& o) {
    // (An association that sent and then expired in the same timer run is
    // gone: nothing to compare with.)
    const std::vector<ctl::AssociationState> sessions = engine_.sessions(now_);
    const auto it = std::find_if(sessions.begin(), sessions.end(),
                                 [&](const ctl::AssociationState& a) { return a.address == o.dst_ip; });
    if (it == sessions.end()) return;
    const uint32_t key = it->key_id;
    if (o.key_id != key) fail("a packet not signed with its association's key");
    const uint8_t version = proto::read_header(o.payload.data()).version;
    const size_t want = key == 0 ? 0 : crypto::mac_wire_digest_bytes(kKeys[key - 1], version);
    if (o.mac_digest_bytes != want) fail("a MAC length other than the key's at this version");
  }

  void check_endpoints(const ctl::EngineOutput& out) {
    const proto::AssocEndpoints& t = engine_.endpoints();
    if (t.count > proto::kMaxAssocEndpoints) fail("endpoint count beyond the table");
    auto configured = [&](uint32_t address) {
      for (const ctl::AssocConfig& a : engine_.config().associations)
        if (a.address == address) return true;
      return false;
    };
    for (uint32_t i = 0; i < t.count; i++) {
      proto::IpAddress a;
      std::memcpy(a.bytes, t.entries[i].address, sizeof a.bytes);
      if (!a.is_v4() || !configured(a.v4_host_order())) fail("an endpoint of no configured association");
      const uint8_t kind = t.entries[i].kind;
      if (kind != proto::kEndpointClient && kind != proto::kEndpointSymmetric) fail("an endpoint of no kind");
      if (kind == proto::kEndpointSymmetric && t.entries[i].local_port != proto::kNtpPort)
        fail("a symmetric endpoint not at port 123");
    }
    for (const ctl::OutPacket& o : out.packets) {
      if (!configured(o.dst_ip)) continue;  // a passive association's
      bool listed = false;
      for (uint32_t i = 0; i < t.count && !listed; i++)
        listed = std::memcmp(t.entries[i].address, proto::IpAddress::v4(o.dst_ip).bytes, 16) == 0 &&
                 t.entries[i].local_port == o.src_port && t.entries[i].remote_port == o.dst_port;
      if (!listed) fail("a configured association's packet from a port not in the endpoint table");
    }
    const bool same = t.count == last_endpoints_.count &&
                      std::memcmp(t.entries, last_endpoints_.entries, t.count * sizeof(proto::AssocEndpoint)) == 0;
    if (same != (engine_.endpoints_version() == last_endpoints_version_))
      fail(same ? "the endpoint version moved without a change" : "the endpoints changed, the version did not");
    last_endpoints_ = t;
    last_endpoints_version_ = engine_.endpoints_version();
  }

  // Carries out what came out: remembers the packets, applies a step.
  void carry_out(ctl::EngineOutput& out) {
    check(out);
    for (const ctl::OutPacket& o : out.packets) {
      sent_[o.dst_ip] = {o, 0};
      unreported_.push_back(o.cookie);
      if (unreported_.size() > 16) unreported_.erase(unreported_.begin());
    }
    if (out.adjust && out.adjust->step) now_ += std::clamp<int64_t>(out.adjust->step_ns, -1000 * kS, 1000 * kS);
    out = {};
  }

  void packet(Reader& r) {
    const uint8_t who = r.get<uint8_t>();
    const uint8_t flags = r.get<uint8_t>();
    const uint8_t modes = r.get<uint8_t>();
    const int8_t poll = r.get<int8_t>();
    const uint8_t stratum = r.get<uint8_t>();
    const int32_t offset_us = r.get<int32_t>();
    const uint64_t random_ts = r.get<uint64_t>();
    const uint16_t random_port = r.get<uint16_t>();
    const uint32_t address = kPool[who % std::size(kPool)];
    proto::NtpHeader h;
    h.leap = static_cast<proto::Leap>(flags & 3);
    h.version = static_cast<uint8_t>(1 + (flags >> 2) % 4);
    static constexpr proto::Mode kModes[] = {proto::Mode::kServer, proto::Mode::kSymmetricActive,
                                             proto::Mode::kSymmetricPassive, proto::Mode::kClient};
    h.mode = kModes[modes % 4];
    h.stratum = stratum % 20;
    h.poll_log2 = poll;
    h.precision_log2 = static_cast<int8_t>(-(modes >> 2) % 32);
    h.refid = (flags & 0x10) ? kKisses[stratum % std::size(kKisses)] : random_ts >> 32;
    h.root_delay = static_cast<uint32_t>(random_ts) & 0xFFFFF;
    h.root_dispersion = static_cast<uint32_t>(random_ts >> 12) & 0xFFFFF;
    if (modes & 0x10) {
      // A sane server (leap 0, stratum 1..3, small root distance): so that
      // the run reaches selection, the servo and clock updates often.
      h.leap = proto::Leap::kNone;
      h.stratum = static_cast<uint8_t>(1 + stratum % 3);
      h.refid = random_ts >> 32;
      h.root_delay = static_cast<uint32_t>(random_ts) & 0x3FF;
      h.root_dispersion = static_cast<uint32_t>(random_ts >> 12) & 0x3FF;
    }
    const auto it = sent_.find(address);
    const bool echo = (flags & 0x20) && it != sent_.end();
    if (echo) {
      const proto::NtpHeader ours = proto::read_header(it->second.pkt.payload.data());
      // What the peer saw as our transmit timestamp: the dataplane's stamp
      // (basic symmetric) or what we wrote (a client's nonce, an
      // interleaved symmetric packet's earlier real time).
      h.origin = it->second.pkt.stamp_transmit ? proto::ntp_from_unix_ns(it->second.tx_ns) : ours.transmit;
      // An interleaved answer echoes the receive field of ours (a client's
      // nonce; symmetric: our arrival time of the peer's last packet).
      if ((flags & 0x40) && !ours.receive.is_zero()) h.origin = ours.receive;
    } else if (flags & 0x40) {
      h.origin = proto::NtpTimestamp::from_raw(random_ts);
    }  // else zero
    const int64_t remote = now_ + static_cast<int64_t>(offset_us) * 1000;
    h.receive = (flags & 0x80) ? proto::NtpTimestamp{} : proto::ntp_from_unix_ns(remote - 100'000);
    h.transmit = (modes & 0x80) ? proto::NtpTimestamp::from_raw(random_ts ^ 0x5555) : proto::ntp_from_unix_ns(remote);
    proto::RxPacket p{};
    p.rx_time_ns = now_ + (modes & 0x40 ? 200'000 : 0);
    p.src_ip = address;
    p.dst_ip = kOwn;
    const bool ports_right = !(modes & 0x20) && it != sent_.end();
    p.src_port = ports_right ? it->second.pkt.dst_port : (random_port & 1 ? proto::kNtpPort : random_port);
    p.dst_port = ports_right ? it->second.pkt.src_port : (random_port & 2 ? proto::kNtpPort : random_port);
    p.len = proto::kHeaderLen;
    proto::write_header(h, p.payload);
    switch (r.get<uint8_t>() % 10) {
      case 1: p.len += static_cast<uint16_t>(crypto::append_mac(kKeys[0], p.payload, p.len, 16)); break;
      case 2: p.len += static_cast<uint16_t>(crypto::append_mac(kKeys[1], p.payload, p.len, 20)); break;
      case 3: p.len += static_cast<uint16_t>(crypto::append_mac(kKeys[2], p.payload, p.len, 16)); break;
      case 4: p.len += static_cast<uint16_t>(crypto::append_mac(kWrongKey1, p.payload, p.len, 16)); break;
      case 5: p.len += static_cast<uint16_t>(crypto::append_mac(kUnknownKey, p.payload, p.len, 16)); break;
      case 6: p.len += 4; break;  // crypto-NAK: key ID 0 (the payload is zeroed)
      case 7:                     // key 2's full 32 in NTPv3; in NTPv4 parse() finds no MAC there
        p.len += static_cast<uint16_t>(crypto::append_mac(kKeys[1], p.payload, p.len, 32));
        break;
      case 8:  // key 1 with 4 bytes too many
        p.len += static_cast<uint16_t>(crypto::append_mac(kKeys[0], p.payload, p.len, 16)) + 4;
        break;
      default: break;  // none
    }
    ctl::EngineOutput out;
    engine_.on_packet(p, now_, out);
    carry_out(out);
  }

  void tx_report(Reader& r) {
    const uint8_t which = r.get<uint8_t>();
    const uint8_t status = r.get<uint8_t>();
    if (unreported_.empty()) return;
    const size_t i = which % unreported_.size();
    proto::TxReport rep{};
    rep.cookie = unreported_[i];
    rep.tx_time_ns = now_;
    rep.status = status & 1 ? 0 : status;
    for (auto& [address, last] : sent_)
      if (last.pkt.cookie == rep.cookie) last.tx_ns = now_;
    unreported_.erase(unreported_.begin() + static_cast<ptrdiff_t>(i));
    ctl::EngineOutput out;
    engine_.on_tx_report(rep, now_, out);
    carry_out(out);
  }

  void timers() {
    ctl::EngineOutput out;
    engine_.on_timer(now_, out);
    carry_out(out);
  }

  void pass(Reader& r) {
    const uint8_t shift = r.get<uint8_t>() % 41;
    now_ += static_cast<int64_t>(r.get<uint16_t>()) << shift >> 16;
    now_ += 1;
    // Every timer due on the way, as the control loop runs them.
    for (int i = 0; i < 64 && engine_.next_timer_ns() <= now_; i++) timers();
    timers();
  }

  void jump(Reader& r) {
    const int32_t v = r.get<int32_t>();
    if (v < 0)
      now_ -= static_cast<int64_t>(-(v / 2)) % kS;  // a little back
    else
      now_ += static_cast<int64_t>(v) * 1'000'000;  // up to ~25 days on
    timers();
  }

  void reload(Reader& r) {
    const uint8_t shape = r.get<uint8_t>();
    const uint8_t minp = r.get<uint8_t>(), maxp = r.get<uint8_t>();
    const uint16_t timeout = r.get<uint16_t>();
    ctl::EngineConfig next = make_config(shape, 2, minp, maxp, timeout, shape & 0x80);
    apply_auth(next, static_cast<uint8_t>(auth_ ^ ((shape & 0x20) ? 1 : 0)));
    next.refclock_master = cfg_.refclock_master;
    if (shape & 0x40) next.refclock_master = (shape & 1) ? std::optional<int>{} : std::optional<int>{shape % 15 + 1};
    ctl::EngineOutput out;
    engine_.reconfigure(next, now_, out);
    carry_out(out);
  }

  void leap_or_quality(Reader& r) {
    const uint8_t v = r.get<uint8_t>();
    const uint32_t err = r.get<uint32_t>();
    if (v & 1)
      engine_.set_file_leap(v & 2 ? std::optional<int>{} : std::optional<int>{static_cast<int>(v >> 2) % 3 - 1});
    else
      engine_.set_local_clock_quality({.synchronized = (v & 2) != 0, .max_error_ns = err}, v & 4);
    ctl::EngineOutput out;
    check(out);
  }

 private:
  ctl::EngineConfig cfg_;
  int64_t now_;
  ctl::Engine engine_;
  uint8_t auth_;
  proto::AssocEndpoints last_endpoints_{};
  uint64_t last_endpoints_version_ = 0;
  std::map<uint32_t, LastSent> sent_;
  std::vector<uint64_t> unreported_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kPrefixLen) return 0;
  Reader r{data, data + size};
  const uint8_t shape = r.get<uint8_t>(), stratum = r.get<uint8_t>();
  const uint8_t minp = r.get<uint8_t>(), maxp = r.get<uint8_t>();
  const uint16_t timeout = r.get<uint16_t>();
  const uint64_t seed = r.get<uint64_t>();
  const uint8_t auth = r.get<uint8_t>();
  r.get<uint8_t>();  // reserved
  ctl::EngineConfig cfg = make_config(shape, stratum, minp, maxp, timeout, true);
  apply_auth(cfg, auth);
  Run run(cfg, seed, 1'700'000'000 * kS, auth);
  for (int ops = 0; ops < 4096 && r.more(1); ops++) {
    switch (r.get<uint8_t>() % 8) {
      case 0:
      case 1: run.packet(r); break;
      case 2: run.tx_report(r); break;
      case 3: run.pass(r); break;
      case 4: run.jump(r); break;
      case 5: run.reload(r); break;
      case 6: run.leap_or_quality(r); break;
      default: run.timers(); break;
    }
  }
  return 0;
}
