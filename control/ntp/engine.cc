#include "control/ntp/engine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "hwclock/leap.h"

namespace ntp::ctl {

hwclock::ServoConfig servo_config(const config::Clock& clock) {
  hwclock::ServoConfig s;
  s.step_threshold_ns = std::llround(clock.step_threshold_ms * 1e6);
  s.panic_threshold_ns = std::llround(clock.panic_threshold_s * 1e9);
  s.max_frequency_ppb = clock.max_frequency_ppm * 1000.0;
  return s;
}

EngineConfig engine_config(const config::Config& cfg, int8_t precision_log2) {
  EngineConfig e;
  for (const auto& s : cfg.servers) e.associations.push_back({s, AssocMode::kClient});
  for (const auto& p : cfg.peers) e.associations.push_back({p, AssocMode::kSymmetricActive});
  e.refclock_master = cfg.ntp.refclock_master;
  for (const auto& i : cfg.interfaces) e.own_addresses.push_back(i.ipv4);
  e.access = config::access_table(cfg.access);
  e.max_dynamic_sessions = cfg.ntp.max_dynamic_sessions;
  e.passive_minpoll_log2 = cfg.ntp.passive_minpoll_log2;
  e.passive_maxpoll_log2 = cfg.ntp.passive_maxpoll_log2;
  e.passive_timeout_ns = std::llround(cfg.ntp.passive_timeout_s * 1e9);
  e.precision_log2 = precision_log2;
  e.servo = servo_config(cfg.clock);
  e.leap_smear = cfg.ntp.leap_smear;
  e.trusted_keys = cfg.auth.trusted_keys;
  e.authenticate = cfg.auth.authenticate;
  return e;
}

namespace {

using proto::Mode;

constexpr int kPollGate = 4;        // RFC 5905 PGATE
constexpr int kPollLimit = 30;      // RFC 5905 LIMIT
constexpr int64_t kAwaitTxNs = 200'000'000;  // how long a packet may wait for its transmit report
constexpr size_t kMaxPending = 64;
constexpr int64_t kSelectEveryNs = 1'000'000'000;


int64_t log2_to_ns(int log2) { return std::llround(std::ldexp(1e9, log2)); }

}  // namespace

Engine::Engine(const EngineConfig& cfg, uint64_t seed, int64_t now_ns)
    : cfg_(cfg), seed_(seed), servo_(cfg.servo) {
  discipline_.order(now_ns, 0, cfg.servo.initial_frequency_ppb.value_or(0), 0, 0);
  for (const AssocConfig& a : cfg_.associations) {
    const uint32_t id = next_id_++;
    assocs_.emplace(id, std::make_unique<Association>(a, id, seed_ ^ (uint64_t{id} * 0x9E3779B97F4A7C15ULL), now_ns));
    add_nts(id, a);
  }
  update_poll_range();
  sys_poll_ = min_poll_;
  last_now_ns_ = now_ns;
  if (cfg_.refclock_master)
    use_local_clock(now_ns);
  else
    sys_ = unsynchronized_variables();
  next_select_ns_ = now_ns + kSelectEveryNs;
  refresh_endpoints();
}

void Engine::refresh_endpoints() {
  proto::AssocEndpoints& t = *endpoints_scratch_;
  t = proto::AssocEndpoints{};  // zero entries: a whole table compares and publishes clean
  size_t left_out = 0;
  // assocs_ is ordered by id: the configured ones that came first keep
  // their place when more than the table holds are configured.
  for (const auto& [id, a] : assocs_) {
    const AssocConfig& c = a->config();
    if (c.dynamic || a->stopped()) continue;
    if (t.count == proto::kMaxAssocEndpoints) {
      left_out++;
      continue;
    }
    proto::AssocEndpoint& e = t.entries[t.count++];
    std::memcpy(e.address, proto::IpAddress::v4(c.address).bytes, sizeof e.address);
    e.remote_port = a->ntp_port();
    e.local_port = a->local_port();
    e.kind = c.mode == AssocMode::kClient ? proto::kEndpointClient : proto::kEndpointSymmetric;
    // Its key: the dataplane checks a keyed peer's MAC before it spends
    // the endpoint's budget (a spoofer without the secret cannot use it up).
    e.key_id = c.key_id;
  }
  endpoints_left_out_ = left_out;
  const proto::AssocEndpoints& cur = *endpoints_;
  if (endpoints_version_ != 0 && t.count == cur.count &&
      std::memcmp(t.entries, cur.entries, t.count * sizeof(proto::AssocEndpoint)) == 0)
    return;
  std::swap(endpoints_, endpoints_scratch_);
  endpoints_version_++;
}

void Engine::update_poll_range() {
  // The system poll's range is the configured associations' (RFC 5905
  // A.5.5.6 clamps the system poll to minpoll..maxpoll).
  min_poll_ = 17;
  max_poll_ = -4;
  for (const AssocConfig& a : cfg_.associations) {
    min_poll_ = static_cast<int8_t>(std::min<int>(min_poll_, a.minpoll_log2));
    max_poll_ = static_cast<int8_t>(std::max<int>(max_poll_, a.maxpoll_log2));
  }
  if (cfg_.associations.empty()) min_poll_ = max_poll_ = static_cast<int8_t>(config::Association{}.minpoll_log2);
}

void Engine::use_local_clock(int64_t now_ns) {
  sys_ = local_clock_variables(*cfg_.refclock_master, now_ns, cfg_.precision_log2);
  local_ref_ = true;
}

void Engine::set_file_leap(std::optional<int> sign) {
  file_leap_ = sign;
  file_leap_day_end_ns_ = hwclock::end_of_utc_day_ns(last_now_ns_);
}

void Engine::set_local_clock_quality(const LocalClockQuality& q, bool serve_when_unsynced) {
  local_quality_ = q;
  local_serve_unsynced_ = serve_when_unsynced;
}

SystemVariables Engine::local_variables(int64_t now_ns) const {
  SystemVariables v = local_clock_variables(*cfg_.refclock_master, now_ns, cfg_.precision_log2);
  if (local_quality_) {
    if (!local_quality_->synchronized && !local_serve_unsynced_) {
      // A host clock that is not synchronized itself is no reference: say
      // so as with no source at all (INIT: nothing we follow is in sync).
      SystemVariables u = unsynchronized_variables(proto::kKissInit);
      u.reference = "local clock, itself unsynchronized";
      return u;
    }
    // Its own error bound (the kernel's maxerror, ...), never below the
    // precision we read it at.
    v.root_dispersion_ns = std::max(v.root_dispersion_ns, local_quality_->max_error_ns);
  }
  apply_leap(v, now_ns, /*sources_vote=*/false);
  return v;
}

void Engine::apply_leap(SystemVariables& v, int64_t now_ns, bool sources_vote) const {
  // RFC 5905 section 7.3: LI 1/2 warns of a leap second "in the last minute
  // of the current day". chrony's model: the leap file decides when there
  // is one; else a majority of the sources, and only on a day a leap may
  // fall on (one source alone cannot announce a leap).
  const int64_t day_end_ns = hwclock::end_of_utc_day_ns(now_ns);
  int sign = 0;
  if (file_leap_)
    sign = file_leap_day_end_ns_ == day_end_ns ? *file_leap_ : 0;  // a word from yesterday says nothing of today
  else if (sources_vote && hwclock::is_leap_day(now_ns))
    sign = vote_sign_;
  sign = std::clamp(sign, -1, 1);
  v.leap_sign = static_cast<int8_t>(sign);
  // A smeared leap is not announced: the clients' clocks follow the smear.
  const bool announce = sign != 0 && !cfg_.leap_smear;
  v.leap = announce ? static_cast<uint8_t>(sign > 0 ? proto::Leap::kInsert : proto::Leap::kDelete)
                    : static_cast<uint8_t>(proto::Leap::kNone);
  v.leap_ns = announce ? day_end_ns : 0;
}

Association* Engine::find(uint32_t address) {
  for (auto& [id, a] : assocs_)
    if (a->config().address == address) return a.get();
  return nullptr;
}

bool Engine::peer_allowed(uint32_t ip) const { return proto::may_peer(cfg_.access.classify_v4(ip)); }

Engine::AssocMap::iterator Engine::remove(AssocMap::iterator it, EngineOutput& out, EventKind kind, Removal why,
                                          uint32_t refid) {
  const AssocConfig& c = it->second->config();
  out.events.push_back({.kind = kind, .address = c.address, .refid = refid, .mode = c.mode, .removal = why});
  if (sys_peer_ == it->first) sys_peer_.reset();
  // Packets waiting for this association's transmit report go with it.
  const uint32_t address = c.address;
  std::erase_if(pending_, [address](const Pending& p) { return p.pkt.src_ip == address; });
  nts_.erase(it->first);
  return assocs_.erase(it);
}

LocalSystem Engine::local_system(int64_t now_ns) const {
  // What our peers get is what our clients get: the bound at now.
  const SystemVariables v = system_at(now_ns);
  LocalSystem l;
  l.leap = static_cast<proto::Leap>(v.leap);
  l.stratum = v.stratum;
  l.precision_log2 = cfg_.precision_log2;
  l.refid = v.refid;
  l.reference_time_ns = v.reference_time_ns;
  l.root_delay_ns = v.root_delay_ns;
  l.root_dispersion_ns = v.root_dispersion_ns;
  l.poll_log2 = sys_poll_;
  l.own_addresses = cfg_.own_addresses;
  return l;
}

void Engine::on_packet(const proto::RxPacket& pkt, int64_t now_ns, EngineOutput& out) {
  counters_.packets++;
  last_now_ns_ = std::max(last_now_ns_, now_ns);
  const proto::ParseResult r = proto::parse({pkt.payload, pkt.len});
  if (!r.ok()) return;  // the dataplane checked; a truncated copy is all that can fail here
  dispatch(pkt, r.packet, now_ns, out, false);
}

bool Engine::trusted(uint32_t key_id) const {
  return std::find(cfg_.trusted_keys.begin(), cfg_.trusted_keys.end(), key_id) != cfg_.trusted_keys.end();
}

AuthVerdict Engine::verify(const proto::RxPacket& pkt, const proto::ParsedPacket& p, uint32_t key_id,
                           uint32_t* verified_key) const {
  if (p.mac_len == 0) return AuthVerdict::kMissing;
  if (p.mac_len > pkt.len) return AuthVerdict::kBad;  // parse() never says so; never read before the payload
  // RFC 5905 section 7.3: the MAC field (key ID, digest) is last and covers
  // everything before it (header and any extension fields).
  const size_t covered = pkt.len - p.mac_len;
  if (!cfg_.keys) return p.mac_len == 4 && p.key_id == 0 ? AuthVerdict::kCryptoNak : AuthVerdict::kBad;
  const crypto::MacResult m = crypto::check_mac(*cfg_.keys, pkt.payload, covered, pkt.payload + covered, p.mac_len);
  switch (m.check) {
    case crypto::MacCheck::kNoMac: return AuthVerdict::kMissing;
    case crypto::MacCheck::kCryptoNak: return AuthVerdict::kCryptoNak;
    case crypto::MacCheck::kOk:
      // A valid MAC of another of our keys is not this peer's.
      if (key_id != 0 && m.key_id != key_id) return AuthVerdict::kBad;
      if (verified_key) *verified_key = m.key_id;
      return AuthVerdict::kOk;
    case crypto::MacCheck::kUnknownKey:
    case crypto::MacCheck::kBadLength:
    case crypto::MacCheck::kBadDigest: break;
  }
  return AuthVerdict::kBad;
}

bool Engine::selectable(const Association& a, int64_t now_ns, const LocalSystem& ls, Unfit* why) const {
  if (!a.fit(now_ns, ls, why)) return false;
  // A key outside auth.trusted_keys authenticates the peer but may not set
  // our time; with auth.authenticate only a verified peer may (the
  // vendor's `authentication enable`, ntpd's `authenticate yes`).
  const uint32_t key = a.key_id();
  const bool untrusted = key != 0 && !trusted(key);
  // NTS: only while its last answer to ours authenticated (RFC 8915
  // section 5.7), whether or not auth.authenticate asks it of everyone.
  const bool nts = a.config().nts;
  const bool unverified =
      (nts || cfg_.authenticate) && ((key == 0 && !nts) || a.auth_state() != AuthState::kOk);
  if (untrusted || unverified) {
    if (why) *why = Unfit::kNotAuthenticated;
    return false;
  }
  return true;
}

bool Engine::sign(const Association& a, OutPacket& p) const {
  const uint32_t key = a.key_id();
  if (key == 0) return true;
  const crypto::MacKey* k = cfg_.keys ? cfg_.keys->find(key) : nullptr;
  if (!k) return false;  // the loader and the host check keep this from happening; unsigned it must not go
  p.key_id = key;
  // chrony's and ntpd's length: 20 bytes of digest at most in NTPv4 (RFC
  // 7822's parsing rule), the whole digest in NTPv3 and older.
  p.mac_digest_bytes = static_cast<uint16_t>(crypto::mac_wire_digest_bytes(*k, a.config().version));
  return true;
}

void Engine::add_nts(uint32_t id, const AssocConfig& c) {
  if (c.nts && !c.dynamic) nts_.emplace(id, NtsSession(c, id));
}

bool Engine::seal_nts(const Association& a, OutPacket& p) {
  auto it = nts_.find(a.id());
  if (it == nts_.end()) return true;
  uint8_t buf[proto::kMaxRingPayload];
  std::memcpy(buf, p.payload.data(), proto::kHeaderLen);
  const size_t len = it->second.seal_request(buf, sizeof buf);
  if (len == 0) return false;
  p.extensions.assign(buf + proto::kHeaderLen, buf + len);
  p.stamp_transmit = false;  // the authenticator covers the header as it is
  return true;
}

void Engine::on_nts_ke_result(uint32_t assoc_id, uint64_t tag, NtsKeResult& r, int64_t now_ns,
                              EngineOutput& out) {
  (void)out;
  last_now_ns_ = std::max(last_now_ns_, now_ns);
  auto it = nts_.find(assoc_id);
  if (it == nts_.end()) {
    r.keys.wipe();
    return;
  }
  it->second.on_ke_result(tag, r, now_ns);
  // RFC 8915 section 4.1.8: NTP goes to the port NTS-KE named.
  if (auto a = assocs_.find(assoc_id); a != assocs_.end() && it->second.state() == NtsState::kOk) {
    a->second->set_ntp_port(it->second.ntp_port());
    refresh_endpoints();
  }
}

void Engine::dispatch(const proto::RxPacket& pkt, const proto::ParsedPacket& p, int64_t now_ns, EngineOutput& out,
                      bool retry) {
  const proto::NtpHeader& h = p.header;
  auto forget_pending = [&] {
    for (auto it = pending_.begin(); it != pending_.end(); ++it)
      if (it->pkt.src_ip == pkt.src_ip && it->pkt.rx_time_ns == pkt.rx_time_ns) {
        pending_.erase(it);
        break;
      }
  };
  if (Association* a = find(pkt.src_ip)) {
    // RFC 5905 section 9.2: a keyed association uses only packets whose
    // MAC verifies with its key; the rest change nothing but its counters
    // (and its state when they answer our packet), before any other test.
    const uint32_t key = a->key_id();
    if (auto nts = nts_.find(a->id()); nts != nts_.end()) {
      // RFC 8915 section 5.7: only an answer that carries our Unique
      // Identifier and whose authenticator opens with S2C is used; a NAK
      // (which nobody signs) is noted, and the session drops its cookies
      // at the next poll unless the authenticated answer came after all.
      if (retry) {
        // Checked (and its cookies taken) the first time: go on below.
      } else {
        switch (nts->second.check_reply(pkt.payload, pkt.len)) {
          case NtsReply::kOk: break;
          case NtsReply::kNak:
            // Not a verdict on the server: anybody on the path can send
            // it, and the real answer may still come (NtsSession).
            counters_.nts_naks++;
            return;
          case NtsReply::kBad:
            // Counted, and nothing else: its Unique Identifier and origin
            // are in clear on the path, so it says nothing about the
            // server (eight polls without an authenticated answer do).
            counters_.unauthenticated++;
            a->on_unauthenticated(AuthVerdict::kBad, false);
            return;
        }
      }
    } else if (key != 0) {
      const AuthVerdict v = verify(pkt, p, key);
      if (v != AuthVerdict::kOk) {
        if (retry) {
          forget_pending();  // the keys changed while it waited
        } else {
          counters_.unauthenticated++;
          a->on_unauthenticated(v, a->answers_last_sent(h));
        }
        return;
      }
    }
    LocalSystem ls = local_system(now_ns);
    ls.discipline = &discipline_;
    const RxResult r = a->on_packet(h, {pkt.rx_time_ns, pkt.src_port, pkt.dst_port}, ls);
    if (key != 0 || a->config().nts) a->on_verified(/*count=*/!retry);
    switch (r) {
      case RxResult::kAwaitingTxTime:
        if (!retry) {
          if (pending_.size() >= kMaxPending) pending_.pop_front();
          pending_.push_back({pkt, now_ns});
        }
        return;
      case RxResult::kSample:
        counters_.samples++;
        clock_select(now_ns, true, a->id(), out);
        break;
      case RxResult::kDuplicate: counters_.duplicates++; break;
      case RxResult::kBogus: counters_.bogus++; break;
      case RxResult::kBadPort: counters_.bad_port++; break;
      case RxResult::kKissOfDeath:
        out.events.push_back({.kind = EventKind::kKissOfDeath, .address = pkt.src_ip, .refid = h.refid});
        break;
      default: break;
    }
    if (retry) forget_pending();  // delivered now: forget the waiting copy
    if (r == RxResult::kKissOfDeath && a->stopped()) {
      // RFC 5905 section 7.4, DENY/RSTR: "demobilize any associations to
      // that server and stop sending packets". A dynamic one goes; a
      // configured one stays in status, silent, with its kiss code.
      const uint32_t id = a->id();
      if (a->config().dynamic) {
        remove(assocs_.find(id), out, EventKind::kPassiveRemoved, Removal::kKiss, h.refid);  // a is gone
      } else {
        out.events.push_back(
            {.kind = EventKind::kPollingStopped, .address = pkt.src_ip, .refid = h.refid, .mode = a->config().mode});
        if (sys_peer_ == id) sys_peer_.reset();
        refresh_endpoints();  // nothing of it is forwarded any more
      }
    }
    return;
  }

  if (h.mode != Mode::kSymmetricActive) {
    counters_.no_association++;
    return;
  }
  mobilise_passive(pkt, p, now_ns, out);
}

void Engine::mobilise_passive(const proto::RxPacket& pkt, const proto::ParsedPacket& p, int64_t now_ns,
                              EngineOutput& out) {
  const proto::NtpHeader& h = p.header;
  for (uint32_t own : cfg_.own_addresses)
    if (own == pkt.src_ip) return;
  // A MAC must verify (a key we hold); with auth.authenticate one of a
  // trusted key must be there (the issue: a symmetric peer may set our
  // time, so it must prove who it is). The association then signs its
  // answers with that key and takes only packets of it (chrony answers a
  // symmetric active peer with the key of its packet).
  uint32_t key = 0;
  if (p.mac_len != 0 || cfg_.authenticate) {
    const AuthVerdict v = verify(pkt, p, 0, &key);
    if (v != AuthVerdict::kOk || (cfg_.authenticate && !trusted(key))) {
      counters_.passive_unauthenticated++;
      return;
    }
  }
  // RFC 5905 section 9: a symmetric active packet from a peer we have no
  // association with mobilises a symmetric passive one, if its access
  // class may peer (the dataplane forwards only those: this does not rely
  // on it), to our port 123; the table is capped, and its entries go when
  // they have not been heard from for passive_timeout_ns.
  size_t dynamic = 0;
  for (const auto& [id, a] : assocs_) dynamic += a->config().dynamic;
  if (!peer_allowed(pkt.src_ip) || pkt.dst_port != proto::kNtpPort ||
      dynamic >= static_cast<size_t>(std::max(cfg_.max_dynamic_sessions, 0))) {
    counters_.passive_refused++;
    return;
  }
  AssocConfig c;
  c.address = pkt.src_ip;
  c.port = pkt.src_port;
  c.mode = AssocMode::kSymmetricPassive;
  c.minpoll_log2 = cfg_.passive_minpoll_log2;
  c.maxpoll_log2 = cfg_.passive_maxpoll_log2;
  c.version = std::clamp<int>(h.version, 1, 4);
  c.dynamic = true;
  c.timeout_ns = cfg_.passive_timeout_ns;
  c.key_id = key;
  const uint32_t id = next_id_++;
  auto assoc = std::make_unique<Association>(c, id, seed_ ^ (uint64_t{id} * 0x9E3779B97F4A7C15ULL), now_ns);
  // The creating packet answers nothing of ours (origin zero): it may be a
  // replay of the peer's, so it gives only the timestamps for our answer
  // and a poll within our range, and the association stays pending until
  // a verified answer to its own packet comes.
  assoc->start_passive(h.poll_log2);
  assoc->on_packet(h, {pkt.rx_time_ns, pkt.src_port, pkt.dst_port}, local_system(now_ns));
  if (key != 0) assoc->on_verified(/*count=*/true);
  const int8_t poll = assoc->poll_log2();
  assocs_.emplace(id, std::move(assoc));
  counters_.passive_created++;
  out.events.push_back({.kind = EventKind::kPassiveCreated, .address = pkt.src_ip, .poll_log2 = poll});
}

void Engine::reconfigure(const EngineConfig& new_cfg, int64_t now_ns, EngineOutput& out) {
  last_now_ns_ = std::max(last_now_ns_, now_ns);
  // The running servo and precision stay: they are [clock]'s and need a
  // restart (the shell says so).
  EngineConfig next = new_cfg;
  next.servo = cfg_.servo;
  next.precision_log2 = cfg_.precision_log2;

  // Configured associations: unchanged ones keep everything; the rest go.
  std::vector<bool> kept(next.associations.size(), false);
  for (auto it = assocs_.begin(); it != assocs_.end();) {
    const AssocConfig& c = it->second->config();
    if (c.dynamic) {
      ++it;
      continue;
    }
    bool found = false;
    for (size_t i = 0; i < next.associations.size() && !found; i++)
      if (!kept[i] && next.associations[i] == c) found = kept[i] = true;
    if (found && it->second->stopped()) {
      // DENY/RSTR stopped it (RFC 5905 section 7.4); a reload is the
      // operator's deliberate act (access fixed at the server?): it starts
      // afresh, as at start-up (a new port, an empty filter), and says so.
      const uint32_t id = it->first;
      out.events.push_back({.kind = EventKind::kPollingRestarted,
                            .address = c.address,
                            .refid = it->second->kiss_code(),
                            .mode = c.mode});
      const AssocConfig same = c;  // c belongs to the association replaced here
      std::erase_if(pending_, [&](const Pending& p) { return p.pkt.src_ip == same.address; });
      it->second = std::make_unique<Association>(same, id, seed_ ^ (uint64_t{id} * 0x9E3779B97F4A7C15ULL), now_ns);
      if (auto nts = nts_.find(id); nts != nts_.end() && nts->second.state() == NtsState::kOk)
        it->second->set_ntp_port(nts->second.ntp_port());
    }
    it = found ? std::next(it) : remove(it, out, EventKind::kAssociationRemoved);
  }
  // Dynamic ones: gone when their address may no longer peer or is now
  // configured, over the new cap (the newest first), else the new limits.
  auto configured = [&](uint32_t address) {
    for (const AssocConfig& a : next.associations)
      if (a.address == address) return true;
    return false;
  };
  size_t dynamic = 0;
  for (auto it = assocs_.begin(); it != assocs_.end();) {
    Association& a = *it->second;
    if (!a.config().dynamic) {
      ++it;
      continue;
    }
    const uint32_t address = a.config().address;
    // Its key must still be there, and trusted when auth.authenticate now
    // asks for a verified peer (an unkeyed one goes then).
    const uint32_t key = a.key_id();
    const bool key_gone = key != 0 && (!next.keys || !next.keys->find(key));
    const bool key_untrusted =
        next.authenticate && (key == 0 || std::find(next.trusted_keys.begin(), next.trusted_keys.end(), key) ==
                                              next.trusted_keys.end());
    if (!proto::may_peer(next.access.classify_v4(address)) || configured(address) || key_gone || key_untrusted ||
        dynamic >= static_cast<size_t>(std::max(next.max_dynamic_sessions, 0))) {
      it = remove(it, out, EventKind::kPassiveRemoved, Removal::kNotAllowed);
      continue;
    }
    a.set_passive_limits(next.passive_minpoll_log2, next.passive_maxpoll_log2, next.passive_timeout_ns);
    dynamic++;
    ++it;
  }
  // New configured associations start as at start-up.
  for (size_t i = 0; i < next.associations.size(); i++) {
    if (kept[i]) continue;
    const AssocConfig& c = next.associations[i];
    const uint32_t id = next_id_++;
    assocs_.emplace(id, std::make_unique<Association>(c, id, seed_ ^ (uint64_t{id} * 0x9E3779B97F4A7C15ULL), now_ns));
    add_nts(id, c);
    out.events.push_back({.kind = EventKind::kAssociationAdded, .address = c.address, .mode = c.mode});
  }
  // Without the local clock as the reference any more, nothing is left to
  // serve until a source is selected.
  const bool lost_local = local_ref_ && !next.refclock_master;
  cfg_ = std::move(next);
  update_poll_range();
  sys_poll_ = static_cast<int8_t>(std::clamp<int>(sys_poll_, min_poll_, max_poll_));
  if (lost_local) {
    local_ref_ = false;
    become_unsynchronized(now_ns, out, UnsyncReason::kNoSelectableSource);
  } else if (local_ref_) {
    use_local_clock(now_ns);  // perhaps another stratum
  }
  clock_select(now_ns, false, 0, out);
  refresh_endpoints();
}

void Engine::on_tx_report(const proto::TxReport& rep, int64_t now_ns, EngineOutput& out) {
  const auto it = assocs_.find(static_cast<uint32_t>(rep.cookie >> 32));
  if (it != assocs_.end()) {
    if (rep.status == 0)
      it->second->on_transmitted(rep.cookie, rep.tx_time_ns);
    else
      it->second->on_transmit_failed(rep.cookie);
  }
  // Packets that waited for this report can be processed now.
  std::deque<Pending> waiting;
  waiting.swap(pending_);
  for (const Pending& p : waiting) {
    const proto::ParseResult r = proto::parse({p.pkt.payload, p.pkt.len});
    pending_.push_back(p);  // dispatch(retry) removes it when delivered
    dispatch(p.pkt, r.packet, now_ns, out, true);
  }
}

void Engine::on_timer(int64_t now_ns, EngineOutput& out) {
  last_now_ns_ = std::max(last_now_ns_, now_ns);
  const LocalSystem ls = local_system(now_ns);
  for (auto& [id, s] : nts_)
    if (auto q = s.ke_due(now_ns)) out.nts_ke.push_back(std::move(*q));
  for (auto& [id, a] : assocs_)
    if (auto p = a->on_timer(now_ns, ls)) {
      if (!seal_nts(*a, *p)) {
        counters_.nts_not_sent++;
        a->on_transmit_failed(p->cookie);
      } else if (sign(*a, *p)) {
        out.packets.push_back(std::move(*p));
      } else {
        counters_.no_key++;
        a->on_transmit_failed(p->cookie);
      }
    }
  // A client that lost its server chose a new port for this very packet:
  // the version moves now, so the shell publishes it before sending.
  refresh_endpoints();

  for (auto it = assocs_.begin(); it != assocs_.end();) {
    if (it->second->expired(now_ns))
      it = remove(it, out, EventKind::kPassiveRemoved, it->second->stopped() ? Removal::kKiss : Removal::kTimeout,
                  it->second->kiss_code());
    else
      ++it;
  }
  while (!pending_.empty() && now_ns - pending_.front().first_seen_ns > kAwaitTxNs) {
    pending_.pop_front();
    counters_.awaiting_dropped++;
  }
  if (now_ns >= next_select_ns_) {
    next_select_ns_ = now_ns + kSelectEveryNs;
    clock_select(now_ns, false, 0, out);
  }
}

int64_t Engine::next_timer_ns() const {
  int64_t t = next_select_ns_;
  for (const auto& [id, a] : assocs_) t = std::min(t, a->next_event_ns());
  for (const auto& [id, s] : nts_) t = std::min(t, s.next_ke_ns());
  return t;
}

void Engine::become_unsynchronized(int64_t now_ns, EngineOutput& out, UnsyncReason why) {
  (void)now_ns;
  if (sys_.synchronized) out.events.push_back({.kind = EventKind::kUnsynchronized, .reason = why});
  sys_ = unsynchronized_variables();
  local_ref_ = false;
  sys_peer_.reset();
}

void Engine::clock_select(int64_t now_ns, bool new_sample, uint32_t from_id, EngineOutput& out) {
  (void)from_id;
  const LocalSystem ls = local_system(now_ns);
  std::vector<Candidate> candidates;
  for (const auto& [id, a] : assocs_)
    if (selectable(*a, now_ns, ls, nullptr)) candidates.push_back(a->candidate(now_ns));
  const Selection sel = select_clock(candidates, sys_peer_, kMinDispersionNs);
  last_selection_ = sel;

  if (!sel.system_peer) {
    if (sys_peer_)
      out.events.push_back({.kind = EventKind::kSystemPeerLost, .address = assocs_.at(*sys_peer_)->config().address});
    sys_peer_.reset();
    if (cfg_.refclock_master) {
      if (!local_ref_)
        out.events.push_back(
            {.kind = EventKind::kLocalClockFallback, .stratum = static_cast<uint8_t>(*cfg_.refclock_master)});
      use_local_clock(now_ns);
    } else if (sys_.synchronized) {
      become_unsynchronized(now_ns, out, UnsyncReason::kNoSelectableSource);
    }
    return;
  }
  Association& peer = *assocs_.at(*sel.system_peer);
  if (sys_peer_ != sel.system_peer) {
    out.events.push_back({.kind = EventKind::kSystemPeer,
                          .address = peer.config().address,
                          .offset_ns = sel.offset_ns,
                          .stratum = peer.stratum(),
                          .mode = peer.config().mode});
    // The servo measures the frequency from two offsets: they must come
    // from the same source (the first one ready may even be a falseticker
    // that the others outvote once they are ready too).
    if (servo_.state() == hwclock::ServoState::kNotSet) servo_.reset();
  }
  sys_peer_ = sel.system_peer;
  // The survivors vote on a leap second (RFC 5905 A.5.5.1 leap_vote, as
  // ntpd): more than half of them must announce it.
  int insert = 0, remove = 0;
  for (uint32_t id : sel.survivors) {
    const proto::Leap l = assocs_.at(id)->peer_leap();
    insert += l == proto::Leap::kInsert;
    remove += l == proto::Leap::kDelete;
  }
  const int half = static_cast<int>(sel.survivors.size()) / 2;
  vote_sign_ = insert > half ? 1 : remove > half ? -1 : 0;
  // RFC 5905 A.5.5.1: the clock is updated only with a sample newer than
  // the one last used.
  if (peer.filter().update_time_ns() > last_sample_time_ns_ && (new_sample || !sys_.synchronized))
    clock_update(peer, sel, now_ns, out);
}

void Engine::clock_update(Association& peer, const Selection& sel, int64_t now_ns, EngineOutput& out) {
  last_sample_time_ns_ = peer.filter().update_time_ns();
  // The system poll stays within the system peer's range: samples come no
  // slower than its maxpoll, and the servo's time constant and the popcorn
  // gate must match that rate. A dynamic passive association samples at the
  // active peer's rate (its poll, within the passive range): its maxpoll
  // (passive_maxpoll_log2, 2^10 s) would leave a node whose only source is
  // a chronyd peer at poll 0 at the default 2^6 s, measuring the frequency
  // over 64 s and gating its samples as spikes for 128 s.
  const int top = peer.config().mode == AssocMode::kSymmetricPassive ? peer.poll_log2() : peer.config().maxpoll_log2;
  sys_poll_ = static_cast<int8_t>(std::clamp<int>(sys_poll_, peer.config().minpoll_log2,
                                                  std::max<int>(top, peer.config().minpoll_log2)));
  const int64_t interval = log2_to_ns(sys_poll_);
  // The servo measures frequency between samples: give it when this one was
  // taken (the filter's choice may be older than the latest packet).
  // While the servo measures the frequency (kNotSet) it needs offsets and
  // times that belong together: the system peer's own, not the combined
  // offset, whose survivors' samples are of other ages, each drifting at
  // the oscillator's uncorrected rate (FalsetickerIsRejected,
  // TEST_SEED=13614847: 6 ppm off, 100 us off for 100 s).
  const bool measuring = servo_.state() == hwclock::ServoState::kNotSet;
  const int64_t sample_offset_ns = measuring ? peer.filter().offset_ns() : sel.offset_ns;
  const hwclock::ServoOutput s =
      servo_.sample(sample_offset_ns, peer.filter().update_time_ns(), interval, peer.filter().delay_ns() / 2,
                    std::llround(discipline_.slew_left_at(now_ns)));
  // The servo computes; we turn its output into an order for the clock
  // (hwclock::Correction): its base frequency, and its phase added to what
  // is still to come of the last order, slewed over one interval.
  const double left = discipline_.slew_left_at(now_ns);
  const double old_base = discipline_.base_ppb();
  ClockAdjustment adj;
  switch (s.action) {
    case hwclock::ServoAction::kPanic:
      counters_.panics++;
      out.events.push_back({.kind = EventKind::kPanic, .address = peer.config().address, .offset_ns = sel.offset_ns});
      become_unsynchronized(now_ns, out, UnsyncReason::kPanic);
      return;
    case hwclock::ServoAction::kIgnore:
      // Not used (a spike, or the frequency measurement waiting for a later
      // sample): run at the frequency estimate; the phase correction stops.
      adj.freq_ppb = s.freq_ppb;
      if (s.state == hwclock::ServoState::kSpike) {
        counters_.spikes++;
        out.events.push_back({.kind = EventKind::kSpike, .address = peer.config().address, .offset_ns = sel.offset_ns});
      }
      break;
    case hwclock::ServoAction::kStep:
      adj.step = true;
      adj.step_ns = s.step_ns;
      adj.freq_ppb = s.freq_ppb;
      break;
    case hwclock::ServoAction::kSlew:
      adj.freq_ppb = s.freq_ppb;
      adj.slew_ns = left + s.phase_ns;
      if (measuring) {
        // The frequency was just measured: the sample's offset is as of when
        // it was taken (the filter's pick may be seconds old), and the clock
        // has drifted since at the old frequency by what the new estimate
        // says. Slew that in too, or it is left over as a phase error that
        // the integral mistakes for frequency (TEST_SEED=3083318890 of
        // ClientConvergesFrom5msAnd50ppm: 258 us after 5 s at 50 ppm).
        adj.slew_ns += (s.freq_ppb - old_base) * 1e-9 * static_cast<double>(now_ns - peer.filter().update_time_ns());
      }
      adj.slew_rate_ppb = hwclock::slew_rate_ppb(adj.slew_ns, adj.freq_ppb, interval, cfg_.servo.max_frequency_ppb);
      break;
  }
  discipline_.order(now_ns, adj.step_ns, adj.freq_ppb, adj.slew_ns, adj.slew_rate_ppb);
  out.adjust = adj;
  if (adj.step) {
    counters_.steps++;
    out.events.push_back({.kind = EventKind::kStep, .address = peer.config().address, .offset_ns = s.step_ns});
    for (auto& [id, a] : assocs_) a->on_clock_step(s.step_ns);
    last_sample_time_ns_ = 0;
    // As ntpd does: after a step, unsynchronized with the kiss code STEP
    // (RFC 5905 section 7.4) until an update that is not a step; the
    // offset measured before it says nothing of the clock after it.
    sys_ = unsynchronized_variables(proto::kKissStep);
    return;
  } else {
    // Samples already in the filters predicted the clock before this order.
    for (auto& [id, a] : assocs_) a->on_correction(now_ns, adj.freq_ppb - old_base, adj.slew_ns - left);
  }
  if (s.action == hwclock::ServoAction::kIgnore) {
    // The phase still to come was dropped, not carried out: until the next
    // update measures it again, the clock may still be that far off.
    if (sys_.synchronized) sys_.root_dispersion_ns += std::llround(std::ceil(std::fabs(left)));
    return;
  }
  // RFC 5905 calls the clock set once the discipline has acted on it; until
  // the servo knows its frequency our clock runs free, and a server that
  // called itself synchronized now would hand that drift on to its clients
  // (a downstream server measuring its own frequency against it would learn
  // ours). Stay unsynchronized until then.
  if (s.state == hwclock::ServoState::kNotSet) return;
  sys_jitter_ns_ = sel.jitter_ns;

  // RFC 5905 A.5.5.5 clock_update(): the system variables follow the
  // system peer.
  const bool was_sync = sys_.synchronized;
  local_ref_ = false;
  sys_.stratum = static_cast<uint8_t>(peer.stratum() + 1);
  sys_.refid = peer.config().address;  // "the IPv4 address of the system peer"
  sys_.reference_time_ns = now_ns + (s.action == hwclock::ServoAction::kStep ? s.step_ns : 0);
  sys_.root_delay_ns = peer.peer_root_delay_ns() + peer.filter().delay_ns();
  // rootdisp = p.rootdisp + p.disp + PHI * (now - p.t) + |offset| + SQRT(p.jitter^2 + s.jitter^2)
  const double pj = static_cast<double>(peer.filter().jitter_ns());
  const double sj = static_cast<double>(sys_jitter_ns_);
  const int64_t dtemp = std::llround(std::sqrt(pj * pj + sj * sj)) + peer.filter().dispersion_ns(now_ns) +
                        std::llabs(sel.offset_ns);
  sys_.root_dispersion_ns = peer.peer_root_dispersion_ns() + std::max(dtemp, log2_to_ns(cfg_.precision_log2));
  sys_.offset_ns = sel.offset_ns;
  sys_.peer_dispersion_ns = peer.filter().dispersion_ns(now_ns);
  sys_.synchronized = true;
  apply_leap(sys_, now_ns, /*sources_vote=*/true);  // not the system peer's alone
  sys_.reference = proto::ipv4_to_string(peer.config().address);
  if (!was_sync)
    out.events.push_back({.kind = EventKind::kSynchronized, .address = peer.config().address, .stratum = sys_.stratum});
  ever_synchronized_ = true;
  adjust_poll(sel.offset_ns, sys_jitter_ns_);
}

void Engine::adjust_poll(int64_t offset_ns, int64_t jitter_ns) {
  // RFC 5905 A.5.5.6 local_clock(): lengthen the poll interval while the
  // offsets stay within PGATE times the jitter, shorten it when they do
  // not, with LIMIT as hysteresis.
  const int step = std::max<int>(sys_poll_, 1);
  if (std::llabs(offset_ns) < kPollGate * std::max<int64_t>(jitter_ns, 1)) {
    poll_count_ += step;
    if (poll_count_ > kPollLimit) {
      poll_count_ = kPollLimit;
      if (sys_poll_ < max_poll_) {
        poll_count_ = 0;
        sys_poll_++;
      }
    }
  } else {
    poll_count_ -= 2 * step;
    if (poll_count_ < -kPollLimit) {
      poll_count_ = -kPollLimit;
      if (sys_poll_ > min_poll_) {
        poll_count_ = 0;
        sys_poll_--;
      }
    }
  }
}

SystemVariables Engine::system_at(int64_t now_ns) const {
  if (local_ref_) return local_variables(now_ns);
  SystemVariables v = sys_;
  if (!v.synchronized) return v;
  apply_leap(v, now_ns, /*sources_vote=*/true);
  // RFC 5905 section 10: the dispersion grows at PHI until the next update.
  if (v.reference_time_ns && now_ns > v.reference_time_ns)
    v.root_dispersion_ns += phi_growth_ns(now_ns - v.reference_time_ns);
  // The error bound must hold while the discipline still slews (chrony's
  // way: its root dispersion includes the correction still to be made).
  // The offsets behind sys_ are predictions (what the clock shows once every
  // order is in), so the clock is off now by up to their bound plus what is
  // left of the slew at now_ns; it shrinks as the slew proceeds.
  const double left_ns = discipline_.slew_left_at(now_ns);
  v.root_dispersion_ns += std::llround(std::ceil(std::fabs(left_ns)));
  // A dataplane left alone (control plane gone) stops slewing where the
  // slew is in (the model carries its end: ClockModelData::slew_end_raw),
  // and what it still slews only shrinks what this counted: PHI alone grows
  // the bound from here (RFC 5905 section 10).
  v.dispersion_rate_ppb = kPhiPpb;
  return v;
}

std::vector<AssociationState> Engine::sessions(int64_t now_ns) const {
  std::vector<AssociationState> v;
  const LocalSystem ls = local_system(now_ns);
  for (const auto& [id, a] : assocs_) {
    AssociationState s = a->state(now_ns);
    if (auto n = nts_.find(id); n != nts_.end()) {
      s.nts = to_string(n->second.state());
      s.nts_error = n->second.error();
      s.nts_cookies = static_cast<uint32_t>(n->second.cookies());
      s.nts_ke_ok = n->second.counters().ke_ok;
      s.nts_ke_failed = n->second.counters().ke_failed;
      s.nts_naks = n->second.counters().naks;
    }
    const bool fit = selectable(*a, now_ns, ls, &s.unfit);
    // (A copy: clang 14 cannot capture a structured binding.)
    auto in = [self = id](const std::vector<uint32_t>& ids) {
      return std::find(ids.begin(), ids.end(), self) != ids.end();
    };
    if (sys_peer_ == id)
      s.selection = SelectionState::kSystemPeer;
    else if (!fit)
      s.selection = SelectionState::kUnfit;
    else if (in(last_selection_.falsetickers))
      s.selection = SelectionState::kFalseticker;
    else if (in(last_selection_.outliers))
      s.selection = SelectionState::kOutlier;
    else if (in(last_selection_.survivors))
      s.selection = SelectionState::kSurvivor;
    else
      s.selection = SelectionState::kCandidate;
    v.push_back(std::move(s));
  }
  return v;
}

namespace {

SyncState sync_state_of(hwclock::ServoState s) {
  switch (s) {
    case hwclock::ServoState::kNotSet: return SyncState::kClockNotSet;
    case hwclock::ServoState::kFrequencySet: return SyncState::kFrequencySet;
    case hwclock::ServoState::kSynchronized: return SyncState::kSynchronized;
    case hwclock::ServoState::kSpike: return SyncState::kSpike;
  }
  return SyncState::kClockNotSet;
}

}  // namespace

EngineState Engine::state(int64_t now_ns) const {
  EngineState e;
  e.system = system_at(now_ns);
  // The local clock as the reference is not disciplined: it is the time.
  e.sync_state = local_ref_ && e.system.synchronized ? SyncState::kSynchronized : sync_state_of(servo_.state());
  e.associations = sessions(now_ns);
  return e;
}

}  // namespace ntp::ctl
