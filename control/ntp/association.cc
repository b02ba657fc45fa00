#include "control/ntp/association.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "control/ntp/system_state.h"
#include "crypto/random.h"

namespace ntp::ctl {

namespace {

using proto::Leap;
using proto::Mode;
using proto::NtpTimestamp;

constexpr int kBurstPackets = 8;       // RFC 5905 BCOUNT
constexpr int64_t kBurstSpacingNs = 2'000'000'000;  // RFC 5905 BTIME: 2 s between burst packets
constexpr int kUnreachPolls = 8;       // polls without an answer before backing off

int64_t log2_to_ns(int log2) { return std::llround(std::ldexp(1e9, log2)); }

// Unpredictable bytes from the kernel (getrandom(2)): a nonce or a port an
// off-path attacker could guess from earlier ones would let it forge
// answers (RFC 9109, RFC 5905 section 8's nonce). One call per poll: this
// is the control plane, not the packet path.
template <typename T>
T kernel_random() {
  T v{};
  if (!crypto::random_bytes(&v, sizeof v)) {
    // ENOSYS (a kernel before 3.17) is all that is left: no safe nonce.
    std::perror("getrandom");
    std::abort();
  }
  return v;
}

}  // namespace

uint64_t random_nonce() { return kernel_random<uint64_t>() | 1; }  // never zero: zero means "none"

uint16_t random_client_port() {
  // 1024..65535: never a privileged port, never 123 (RFC 9109 section 3:
  // "randomize the source port ... from the whole range of ephemeral
  // ports"; the dataplane owns the address, so no range is reserved).
  constexpr uint32_t kFirst = 1024, kCount = 65536 - kFirst;
  return static_cast<uint16_t>(kFirst + kernel_random<uint32_t>() % kCount);
}

const char* to_string(RxResult r) {
  switch (r) {
    case RxResult::kSample: return "sample";
    case RxResult::kNoSample: return "no sample";
    case RxResult::kFilteredOut: return "filtered out";
    case RxResult::kDuplicate: return "duplicate";
    case RxResult::kBogus: return "bogus";
    case RxResult::kUnsynchronized: return "unsynchronized";
    case RxResult::kKissOfDeath: return "kiss-o'-death";
    case RxResult::kAwaitingTxTime: return "awaiting transmit time";
    case RxResult::kBadMode: return "bad mode";
    case RxResult::kBadPort: return "bad port";
    case RxResult::kStopped: return "stopped by a kiss-o'-death";
  }
  return "?";
}

Association::Association(const AssocConfig& cfg, uint32_t id, uint64_t seed, int64_t now_ns)
    : cfg_(cfg),
      id_(id),
      rng_(seed),
      hpoll_(static_cast<int8_t>(cfg.minpoll_log2)),
      poll_floor_(static_cast<int8_t>(cfg.minpoll_log2)),
      created_ns_(now_ns),
      auth_(cfg.key_id != 0 || cfg.nts ? AuthState::kPending : AuthState::kNone) {
  ntp_port_ = cfg.port;
  choose_local_port();
  // Spread the first polls of many associations over a short while; a
  // passive association answers its new peer at once.
  const int64_t spread = std::min<int64_t>(log2_to_ns(cfg.minpoll_log2), 1'000'000'000);
  next_send_ns_ = cfg.mode == AssocMode::kSymmetricPassive ? now_ns : now_ns + static_cast<int64_t>(rng_() % (spread / 4 + 1));
}

int64_t Association::poll_interval_ns(int log2) const { return log2_to_ns(log2); }

void Association::start_passive(int peer_poll_log2) {
  hpoll_ = static_cast<int8_t>(std::clamp<int>(peer_poll_log2, poll_floor_, cfg_.maxpoll_log2));
}

void Association::set_passive_limits(int minpoll_log2, int maxpoll_log2, int64_t timeout_ns) {
  // A reload that kept them keeps the schedule (jitter, a peer's faster poll).
  if (minpoll_log2 == cfg_.minpoll_log2 && maxpoll_log2 == cfg_.maxpoll_log2 && timeout_ns == cfg_.timeout_ns) return;
  cfg_.minpoll_log2 = minpoll_log2;
  cfg_.maxpoll_log2 = maxpoll_log2;
  cfg_.timeout_ns = timeout_ns;
  poll_floor_ = static_cast<int8_t>(std::clamp<int>(poll_floor_, minpoll_log2, maxpoll_log2));
  hpoll_ = static_cast<int8_t>(std::clamp<int>(hpoll_, poll_floor_, maxpoll_log2));
  // The new poll holds from our last packet on, not from the one after the
  // packet already armed at the old poll (2^10 s away, perhaps): re-arm
  // as if the last packet had been scheduled with it (a time now past
  // fires at the next timer). Before any packet, the first is armed at
  // once anyway.
  if (last_send_ns_ != 0 && burst_left_ == 0) next_send_ns_ = last_send_ns_ + poll_interval_ns(hpoll_);
}

void Association::choose_local_port() {
  // RFC 9109 section 3 asks for a random source port per association; a
  // symmetric peer's configuration names our port 123, so those keep it.
  local_port_ = cfg_.mode == AssocMode::kClient ? random_client_port() : proto::kNtpPort;
}

void Association::schedule_next(int64_t now_ns) {
  const int64_t interval = poll_interval_ns(hpoll_);
  if (burst_left_ > 0) {
    next_send_ns_ = now_ns + std::min(kBurstSpacingNs, interval);
    return;
  }
  // A little randomness keeps many clients of one server from polling in step.
  const int64_t jitter = interval / 32;
  next_send_ns_ = now_ns + interval - (jitter > 0 ? static_cast<int64_t>(rng_() % static_cast<uint64_t>(jitter)) : 0);
}

std::array<uint8_t, proto::kHeaderLen> Association::make_packet(const LocalSystem& sys, proto::NtpTimestamp org,
                                                                int64_t rec_ns) const {
  proto::NtpHeader h;
  h.version = static_cast<uint8_t>(cfg_.version);
  h.poll_log2 = hpoll_;
  if (cfg_.mode == AssocMode::kClient) {
    // A client request says nothing about us (RFC 9109 and the NTP data
    // minimisation draft): mode, version, poll and a random transmit
    // timestamp, which comes back as the origin and so doubles as a nonce.
    h.leap = Leap::kNone;
    h.mode = Mode::kClient;
    h.transmit = xmt_;
    // Interleaved (RFC 9769): the origin is the server's receive field of
    // its last answer (chronyd looks its transmit time up by it), the
    // receive a second nonce, which an interleaved answer echoes as origin.
    if (!xrcv_.is_zero()) {
      h.origin = prev_.peer_rx;
      h.receive = xrcv_;
    }
  } else {
    // Symmetric modes carry our system variables; RFC 5905 section 8: the
    // origin is the peer's last transmit timestamp, the receive our arrival
    // time of it, the transmit stamped by the dataplane as it leaves.
    h.leap = sys.leap;
    h.mode = cfg_.mode == AssocMode::kSymmetricActive ? Mode::kSymmetricActive : Mode::kSymmetricPassive;
    h.stratum = sys.stratum >= proto::kStratumUnsynchronized ? proto::kStratumUnspecified : sys.stratum;
    h.precision_log2 = sys.precision_log2;
    h.root_delay = proto::short_from_ns(sys.root_delay_ns);
    h.root_dispersion = proto::short_from_ns(sys.root_dispersion_ns);
    h.refid = sys.refid;
    h.reference = sys.reference_time_ns ? proto::ntp_from_unix_ns(sys.reference_time_ns) : NtpTimestamp{};
    h.origin = org;
    h.receive = rec_ns ? proto::ntp_from_unix_ns(rec_ns) : NtpTimestamp{};
    if (sent_interleaved_) {
      // RFC 9769 section 3, interleaved symmetric mode: the origin is the
      // receive timestamp of the peer's last packet (chronyd: "originate_ts
      // = interleaved ? *remote_ntp_rx : *remote_ntp_tx"), the receive our
      // arrival time of it, the transmit the real transmit time of our
      // previous packet ("interleaved ? &local_tx->ts : &local_transmit").
      h.origin = prev_.peer_rx;
      h.transmit = xmt_;
    }
  }
  std::array<uint8_t, proto::kHeaderLen> out{};
  proto::write_header(h, out.data());
  return out;
}

std::optional<OutPacket> Association::on_timer(int64_t now_ns, const LocalSystem& sys) {
  if (stopped_ || now_ns < next_send_ns_) return std::nullopt;

  if (burst_left_ > 0) {
    burst_left_--;
  } else {
    // RFC 5905 A.5.7: the poll process shifts the reach register at each
    // poll; three polls in a row unanswered put a dummy stage of maximum
    // dispersion into the filter, which soon makes the source unfit.
    const bool was_reachable = reach_ != 0;
    reach_ = static_cast<uint8_t>(reach_ << 1);
    if ((reach_ & 0x07) == 0 && filter_.update_time_ns() != 0) filter_.add_unreachable(now_ns);
    if (reach_ == 0) {
      // The server stopped answering: the next requests leave from a new
      // port (a port an attacker learnt or a path blocked is left behind;
      // while it answers, one port keeps NAT and firewall state steady).
      if (was_reachable) choose_local_port();
      unreach_polls_++;
      // No verified answer in eight polls: not authenticated any more (a
      // peer whose secret changed drops ours, as chronyd does, and says
      // nothing).
      if ((cfg_.key_id != 0 || cfg_.nts) && auth_ != AuthState::kPending) auth_ = AuthState::kFailed;
      if (cfg_.iburst) burst_left_ = kBurstPackets - 1;  // get going quickly
      if (unreach_polls_ > kUnreachPolls && hpoll_ < cfg_.maxpoll_log2) hpoll_++;  // back off
    } else {
      if (cfg_.burst) burst_left_ = kBurstPackets - 1;
      if (cfg_.mode != AssocMode::kSymmetricPassive)
        hpoll_ = static_cast<int8_t>(std::clamp<int>(sys.poll_log2, poll_floor_, cfg_.maxpoll_log2));
    }
  }

  // A new keyed association is pending while its first eight packets (an
  // iburst, or eight polls) may still be answered; then, none verified: failed.
  if (auth_ == AuthState::kPending && sent_ >= static_cast<uint64_t>(kBurstPackets)) auth_ = AuthState::kFailed;

  OutPacket out;
  out.dst_ip = cfg_.address;
  out.dst_port = ntp_port_;
  out.src_port = local_port_;
  out.cookie = (uint64_t{id_} << 32) | static_cast<uint32_t>(++sent_);
  xmt_cookie_ = out.cookie;
  const int64_t last_tx_ns = xmt_tx_ns_;  // our previous packet's real transmit time (0: unknown)
  xmt_tx_ns_ = 0;
  if (cfg_.mode == AssocMode::kClient) {
    xmt_ = NtpTimestamp::from_raw(random_nonce());
    xmt_stamped_ = false;
    xrcv_ = {};
    if (cfg_.xleave && !prev_.peer_rx.is_zero()) {
      do xrcv_ = NtpTimestamp::from_raw(random_nonce());
      while (xrcv_ == xmt_);
    }
  } else {
    xmt_ = {};  // known when the dataplane reports what it stamped
    xmt_stamped_ = true;
    out.stamp_transmit = true;
  }
  // Symmetric: answer the last valid packet, or, when none came since our
  // last packet, the last one at all (see on_packet).
  const bool restart = !valid_since_send_ && init_rec_ns_ != 0;
  sent_interleaved_ = false;
  if (cfg_.mode != AssocMode::kClient && cfg_.xleave) {
    const int64_t rec = restart ? init_rec_ns_ : rec_ns_;
    xrcv_ = rec ? proto::ntp_from_unix_ns(rec) : NtpTimestamp{};
    // chronyd: "In symmetric mode, don't send a packet in interleaved mode
    // unless it is the first response to the last valid request received
    // from the peer and there was just one response to the previous valid
    // request" (else the peer pairs our time with another of our packets).
    if (!restart && valid_since_send_ && sends_between_valid_ == 1 && last_tx_ns != 0 && rec_ns_ != 0 &&
        !prev_.peer_rx.is_zero()) {
      // The dataplane stamped exactly this time into our previous packet:
      // its lowest bit (2^-32 s) flipped, the field differs from that one,
      // so a late answer to it cannot pass for one to this packet.
      const NtpTimestamp t3 = NtpTimestamp::from_raw(proto::ntp_from_unix_ns(last_tx_ns).raw() ^ 1);
      // chronyd never sends a transmit equal to the receive ("to allow
      // reliable detection of the interleaved mode") or the origin.
      if (xleave_skips_left_ > 0) {
        xleave_skips_left_--;
      } else if (t3 != xrcv_ && t3 != prev_.peer_rx) {
        sent_interleaved_ = true;
        xmt_ = t3;
        xmt_stamped_ = false;
        out.stamp_transmit = false;
      }
    }
  }
  sends_since_valid_++;
  out.payload = make_packet(sys, restart ? init_org_ : org_, restart ? init_rec_ns_ : rec_ns_);
  valid_since_send_ = false;
  last_send_ns_ = now_ns;
  schedule_next(now_ns);
  return out;
}

void Association::on_transmitted(uint64_t cookie, int64_t tx_ns) {
  if (cookie != xmt_cookie_) return;  // an older packet's report
  xmt_tx_ns_ = tx_ns;
  // The dataplane stamps ntp_from_unix_ns(tx_ns): the peer echoes exactly
  // that as its origin timestamp.
  if (xmt_stamped_) xmt_ = proto::ntp_from_unix_ns(tx_ns);
}

void Association::on_transmit_failed(uint64_t cookie) {
  if (cookie != xmt_cookie_) return;
  xmt_ = {};  // no answer can match, interleaved or not
  xrcv_ = {};
  xmt_cookie_ = 0;
}

RxResult Association::on_packet(const proto::NtpHeader& h, const Arrival& at, const LocalSystem& sys) {
  const int64_t rx_ns = at.rx_ns;
  answered_ours_ = false;
  // DENY/RSTR told us to stop: nothing from this peer counts any more.
  if (stopped_) return last_result_ = RxResult::kStopped;
  const bool client = cfg_.mode == AssocMode::kClient;
  const bool mode_ok = client ? h.mode == Mode::kServer
                              : (cfg_.mode == AssocMode::kSymmetricActive
                                     ? (h.mode == Mode::kSymmetricPassive || h.mode == Mode::kSymmetricActive)
                                     : h.mode == Mode::kSymmetricActive);
  if (!mode_ok) return last_result_ = RxResult::kBadMode;
  // RFC 5905 A.5.1: a packet without a transmit timestamp is invalid; in
  // symmetric modes it would otherwise restart the exchange (our org).
  if (!client && h.transmit.is_zero()) return last_result_ = RxResult::kBogus;
  // RFC 9109 section 3: the answer comes from the server's port to the
  // random port our request left from; anything else is not an answer.
  if (at.src_port != ntp_port_ || at.dst_port != local_port_) return last_result_ = RxResult::kBadPort;

  // RFC 5905 section 8: "duplicate packet ... the transmit timestamp T3 is
  // the same as the last received".
  if ((rec_ns_ != 0 && h.transmit == org_) || (init_rec_ns_ != 0 && h.transmit == init_org_))
    return last_result_ = RxResult::kDuplicate;

  // Our own transmit timestamp must be known to check the origin and to
  // have T1: the dataplane reports it right after sending.
  const bool outstanding = xmt_cookie_ != 0;
  // An interleaved packet echoes the receive field of our last one instead
  // (RFC 9769: a nonce in client mode, our receive timestamp in symmetric);
  // chronyd: "interleaved_packet = !test2n && test2i".
  const bool interleaved = cfg_.xleave && !xrcv_.is_zero() && h.origin == xrcv_ && h.origin != xmt_;
  if (outstanding && xmt_tx_ns_ == 0 && (client ? h.origin == xmt_ || interleaved : !h.origin.is_zero()))
    return RxResult::kAwaitingTxTime;

  // "bogus packet: the origin timestamp T1 does not match the transmit
  // timestamp of our last packet".
  const bool origin_ok = (!xmt_.is_zero() && h.origin == xmt_) || interleaved;
  if (client && !origin_ok) return last_result_ = RxResult::kBogus;
  if (!client && !origin_ok && valid_since_send_ && !answered_xmt_.is_zero() && h.origin == answered_xmt_) {
    // The peer polls faster than we do: another packet answering the same
    // one of ours (an off-path forger does not know its timestamp). It is
    // the peer's latest, so our next packet answers it (RFC 5905 A.5.1:
    // p->org = r->xmt), else the peer finds ours bogus; no second sample.
    org_ = h.transmit;
    rec_ns_ = rx_ns;
    // Also the latest packet received, should the exchange restart.
    init_org_ = h.transmit;
    init_rec_ns_ = rx_ns;
    // Interleaved: our next packet's origin is this one's receive field (the
    // peer checks it against what it sent last); its exchange was not the
    // one our previous packet started, so it gives no interleaved sample.
    if (cfg_.xleave) prev_ = {.t1_ns = 0, .t4_ns = rx_ns, .peer_rx = h.receive, .sampled = true, .synced = false};
    return last_result_ = RxResult::kNoSample;
  }
  if (!client && !origin_ok) {
    // RFC 5905 A.5.1 receive(): "if (r->org == 0) synch = 0; else if
    // (r->org != p->xmt) synch = 0; p->org = r->xmt; p->rec = r->dst; if
    // (!synch) return": only the timestamps for the next exchange change,
    // never the peer's header, reach or poll (a forged packet from the
    // peer's address must not steer either; ntpd CVE-2016-4954/1548). As
    // chrony keeps them: apart from the last valid packet's, and our next
    // packet answers them only if no valid packet came since our last one
    // (the exchange starts or restarts: a lost or crossed packet, a peer
    // that restarted). Else a forgery between two valid packets would make
    // our next packet bogus at the real peer. An origin of zero starts an
    // exchange when nothing of ours waits for an answer; else it is bogus.
    init_org_ = h.transmit;
    init_rec_ns_ = rx_ns;
    return last_result_ = (h.origin.is_zero() && !outstanding) ? RxResult::kNoSample : RxResult::kBogus;
  }

  // Past the origin test: this packet answers our last one.
  answered_ours_ = true;
  int64_t t1 = xmt_tx_ns_;
  const NtpTimestamp org_before = org_;  // the peer's previous transmit field
  const int8_t ppoll_before = ppoll_;
  org_ = h.transmit;
  rec_ns_ = rx_ns;
  init_org_ = {};
  init_rec_ns_ = 0;
  valid_since_send_ = true;
  answered_xmt_ = xmt_;
  xmt_ = {};  // answered: a replay of this answer is bogus
  xrcv_ = {};
  xmt_cookie_ = 0;
  // The exchange an interleaved answer completes is the one before this
  // (its T3 is this answer's transmit); this one waits for the next.
  const Exchange before = prev_;
  const bool synced = !(h.leap == Leap::kUnsynchronized || h.stratum == proto::kStratumUnspecified ||
                        h.stratum >= proto::kStratumUnsynchronized);
  if (cfg_.xleave) {
    prev_ = {.t1_ns = t1, .t4_ns = rx_ns, .peer_rx = h.receive, .sampled = !interleaved, .synced = synced};
    last_interleaved_ = interleaved;
    interleaved_answers_ += interleaved;
  }
  sends_between_valid_ = sends_since_valid_;
  sends_since_valid_ = 0;
  if (!client && cfg_.xleave) {
    if (interleaved) {
      xleave_backoff_log2_ = 0;
      xleave_skips_left_ = 0;
    } else if (sent_interleaved_) {
      xleave_skips_left_ = 1u << xleave_backoff_log2_;
      xleave_backoff_log2_ = static_cast<uint8_t>(std::min(xleave_backoff_log2_ + 1, 4));
    }
  }

  // Kiss-o'-death (RFC 5905 section 7.4): only from a packet that answered
  // ours, so nobody can silence us with forged ones. The kiss is no time
  // and no reach; its header is not the peer's.
  if (h.stratum == proto::kStratumUnspecified &&
      (h.refid == proto::kKissRate || h.refid == proto::kKissDeny || h.refid == proto::kKissRstr)) {
    kiss_code_ = h.refid;
    if (h.refid == proto::kKissRate) {
      // "the client MUST reduce its polling rate": as ntpd, raise our
      // minpoll to the server's poll (at least one step), up to maxpoll,
      // end a burst, and wait a full new interval from our last packet.
      const int raised = std::max<int>(poll_floor_ + 1, h.poll_log2);
      poll_floor_ = static_cast<int8_t>(std::min<int>(raised, cfg_.maxpoll_log2));
      hpoll_ = std::max(hpoll_, poll_floor_);
      burst_left_ = 0;
      next_send_ns_ = std::max(next_send_ns_, last_send_ns_ + poll_interval_ns(hpoll_));
    } else {
      // DENY, RSTR: "the client MUST demobilize any associations to that
      // server and stop sending packets to that server".
      stopped_ = true;
      burst_left_ = 0;
      reach_ = 0;
      filter_.clear();
    }
    return last_result_ = RxResult::kKissOfDeath;
  }

  // The peer variables follow only a packet that passed the origin test.
  reach_ |= 1;
  unreach_polls_ = 0;
  last_rx_ns_ = rx_ns;
  received_++;
  peer_ = h;
  peer_reference_ns_ = h.reference.is_zero() ? 0 : proto::unix_ns_from_ntp(h.reference, rx_ns);
  if (!client) {
    ppoll_ = h.poll_log2;
    if (cfg_.mode == AssocMode::kSymmetricPassive) {
      // The passive side polls at its active peer's rate, within our
      // passive range (a peer asking for 2^-4 s or 2^17 s gets the bound).
      hpoll_ = static_cast<int8_t>(std::clamp<int>(h.poll_log2, poll_floor_, cfg_.maxpoll_log2));
      next_send_ns_ = std::min(next_send_ns_, rx_ns + poll_interval_ns(hpoll_));
    }
  }

  if (!synced) return last_result_ = RxResult::kUnsynchronized;
  if (h.receive.is_zero() || h.transmit.is_zero() || t1 == 0) return last_result_ = RxResult::kNoSample;

  // RFC 5905 section 8: offset = ((T2 - T1) + (T3 - T4)) / 2,
  // delay = (T4 - T1) - (T3 - T2). Interleaved: the previous exchange's
  // T1, T2 and T4 with the real T3 this answer brings; not when that
  // exchange gave a basic sample already (chrony's rule: once a sample).
  int64_t t2 = proto::unix_ns_from_ntp(h.receive, rx_ns);
  const int64_t t3 = proto::unix_ns_from_ntp(h.transmit, rx_ns);
  int64_t t4 = rx_ns;
  // chronyd uses an interleaved packet's timestamps only if the one before
  // was synchronized ("!interleaved_packet || inst->valid_timestamps").
  if (interleaved && (!before.synced || before.t4_ns == 0)) return last_result_ = RxResult::kNoSample;
  if (interleaved && client) {
    if (before.sampled || before.t1_ns == 0 || before.peer_rx.is_zero()) return last_result_ = RxResult::kNoSample;
    t1 = before.t1_ns;
    t2 = proto::unix_ns_from_ntp(before.peer_rx, rx_ns);
    t4 = before.t4_ns;
  } else if (interleaved) {
    // Symmetric: T3 is the real transmit time of the peer's previous
    // packet, T4 our arrival time of it; T1 and T2 are our last packet's
    // (it left after that one arrived) or, as chronyd prefers when that
    // makes the local interval ten times shorter and the exchange gave no
    // basic sample, those of the packet of ours that one answered.
    t4 = before.t4_ns;
    if (!before.sampled && before.t1_ns != 0 && (t1 - t4) > 10 * (t4 - before.t1_ns)) {
      t1 = before.t1_ns;
      t2 = proto::unix_ns_from_ntp(before.peer_rx, rx_ns);
    }
    // chronyd's test A for interleaved symmetric: the peer received our
    // packet after sending its previous one, the delay is below half the
    // poll, and the peer's two last transmissions are at most 1.5 polls
    // apart; else a packet was missed and the times do not belong together.
    const int64_t poll_ns = log2_to_ns(std::min(ppoll_before, hpoll_));
    const int64_t peer_rx_ns = proto::unix_ns_from_ntp(h.receive, rx_ns);
    const bool missed = peer_rx_ns <= t3 || std::abs((t4 - t1) - (t3 - t2)) > poll_ns / 2 ||
                        (ppoll_before <= hpoll_ && !org_before.is_zero() &&
                         t3 - proto::unix_ns_from_ntp(org_before, rx_ns) > poll_ns * 3 / 2);
    if (missed) return last_result_ = RxResult::kNoSample;
  }
  filter_.set_precision_ns(std::llround(std::ldexp(1e9, sys.precision_log2)));
  // The exchange measures the offset at its midpoint (a symmetric exchange
  // spans up to a poll interval); keep it as a prediction once the phase
  // the discipline still had to slew in at that point is in.
  const double left = sys.discipline ? sys.discipline->slew_left_at(t1 + (t4 - t1) / 2) : 0.0;
  const int64_t offset = ((t2 - t1) + (t3 - t4)) / 2 - std::llround(left);
  const int64_t precision_ns = std::llround(std::ldexp(1e9, sys.precision_log2));
  const int64_t delay = std::max((t4 - t1) - (t3 - t2), precision_ns);
  // RFC 5905 section 9.1: the sample dispersion is the precisions of both
  // clocks plus PHI over the time the exchange took.
  // (T4 - T1 is negative in a symmetric interleaved exchange: our packet
  // left after the peer's arrived.)
  const int64_t dispersion =
      std::llround(std::ldexp(1e9, h.precision_log2)) + precision_ns + phi_growth_ns(std::abs(t4 - t1));
  if (filter_.add(offset, delay, dispersion, t4, sys.poll_log2)) return last_result_ = RxResult::kSample;
  return last_result_ = RxResult::kFilteredOut;
}

void Association::on_unauthenticated(AuthVerdict v, bool answers_ours) {
  switch (v) {
    case AuthVerdict::kOk: return;
    case AuthVerdict::kMissing: auth_missing_++; break;
    case AuthVerdict::kBad: auth_bad_++; break;
    case AuthVerdict::kCryptoNak: crypto_nak_++; break;
  }
  // RFC 5905 section 9.2: not authentic, not used. Only what answered our
  // packet tells about the peer (a wrong key on either side); anybody can
  // send the rest, which must not flip a verified association to failed.
  if (answers_ours) auth_ = AuthState::kFailed;
}

void Association::on_verified(bool count) {
  if (count) auth_ok_++;
  // A valid MAC proves who made the packet, not when: a captured verified
  // packet replayed verifies too. RFC 5905 section 8: "A packet is bogus
  // if the origin timestamp t1 in the packet does not match the xmt state
  // variable T1", and xmt is zeroed once answered, so only a packet past
  // that test was made for our last packet. Those are kSample,
  // kFilteredOut, kUnsynchronized, kKissOfDeath and a kNoSample without
  // T2/T3; a kNoSample may also be an origin-zero start of a symmetric
  // exchange or another echo of a packet of ours already answered, which
  // anybody could have recorded: answered_ours_ tells them apart.
  if (answered_ours_) auth_ = AuthState::kOk;
}

void Association::on_clock_step(int64_t step_ns) {
  filter_.clear();
  if (rec_ns_) rec_ns_ += step_ns;
  if (init_rec_ns_) init_rec_ns_ += step_ns;
  if (xmt_tx_ns_) xmt_tx_ns_ += step_ns;
  if (prev_.t1_ns) prev_.t1_ns += step_ns;
  if (prev_.t4_ns) prev_.t4_ns += step_ns;
  prev_.sampled = true;  // the filter is empty; no sample across the step
  if (last_rx_ns_) last_rx_ns_ += step_ns;
  if (peer_reference_ns_) peer_reference_ns_ += step_ns;
  next_send_ns_ += step_ns;
  if (last_send_ns_) last_send_ns_ += step_ns;
  created_ns_ += step_ns;
}

Candidate Association::candidate(int64_t now_ns) const {
  Candidate c;
  c.id = id_;
  c.offset_ns = filter_.offset_ns();
  c.delay_ns = filter_.delay_ns();
  c.dispersion_ns = filter_.dispersion_ns(now_ns);
  c.jitter_ns = filter_.jitter_ns();
  c.root_delay_ns = peer_root_delay_ns();
  c.root_dispersion_ns = peer_root_dispersion_ns();
  c.stratum = peer_.stratum;
  c.prefer = cfg_.prefer;
  return c;
}

int64_t Association::root_distance_ns(int64_t now_ns) const {
  return ctl::root_distance_ns(candidate(now_ns), kMinDispersionNs);
}

bool Association::fit(int64_t now_ns, const LocalSystem& sys, Unfit* why) const {
  auto no = [&](Unfit w) {
    if (why) *why = w;
    return false;
  };
  if (why) *why = Unfit::kNone;
  if (reach_ == 0) return no(Unfit::kUnreachable);
  if (peer_.leap == Leap::kUnsynchronized || peer_.stratum == 0 || peer_.stratum >= proto::kStratumUnsynchronized)
    return no(Unfit::kUnsynchronized);
  if (peer_.stratum >= proto::kStratumMax) return no(Unfit::kStratumTooHigh);
  if (filter_.update_time_ns() == 0) return no(Unfit::kNoSamples);
  // RFC 5905 A.5.5.3 fit(): a source synchronized to us, or to our own
  // system peer, would close a timing loop ("p->refid == p->dstaddr ||
  // p->refid == s.refid").
  for (uint32_t a : sys.own_addresses)
    if (peer_.refid == a) return no(Unfit::kLoopToUs);
  if (peer_.stratum > 1 && sys.stratum < proto::kStratumUnsynchronized && peer_.refid == sys.refid &&
      sys.refid != cfg_.address)
    return no(Unfit::kLoopToSystemPeer);
  // "root_dist(p) > MAXDIST + PHI * LOG2D(s.poll)": too distant.
  if (root_distance_ns(now_ns) > max_root_distance_ns(sys.poll_log2)) return no(Unfit::kTooDistant);
  return true;
}

bool Association::expired(int64_t now_ns) const {
  if (!cfg_.dynamic) return false;
  if (stopped_) return true;  // DENY/RSTR: demobilise (RFC 5905 section 7.4)
  return now_ns - std::max(last_rx_ns_, created_ns_) > cfg_.timeout_ns;
}

AssociationState Association::state(int64_t now_ns) const {
  AssociationState s;
  s.address = cfg_.address;
  s.port = ntp_port_;
  s.mode = cfg_.mode;
  s.configured = !cfg_.dynamic;
  s.heard = received_ != 0;
  s.peer_mode = peer_.mode;
  s.stratum = received_ ? (peer_.stratum == 0 ? proto::kStratumUnsynchronized : peer_.stratum) : 16;
  s.wire_stratum = peer_.stratum;
  s.refid = peer_.refid;
  s.reach = reach_;
  s.poll_log2 = hpoll_;
  s.peer_poll_log2 = ppoll_ ? ppoll_ : peer_.poll_log2;
  s.since_last_rx_s = last_rx_ns_ ? static_cast<double>(now_ns - last_rx_ns_) * 1e-9 : -1;
  s.offset_ns = filter_.offset_ns();
  s.delay_ns = filter_.delay_ns();
  s.dispersion_ns = filter_.update_time_ns() ? filter_.dispersion_ns(now_ns) : kMaxDispersionNs;
  s.jitter_ns = filter_.jitter_ns();
  s.root_delay_ns = peer_root_delay_ns();
  s.root_dispersion_ns = peer_root_dispersion_ns();
  s.sync_distance_ns = filter_.update_time_ns() ? root_distance_ns(now_ns) : kMaxDispersionNs;
  s.precision_log2 = peer_.precision_log2;
  s.version = static_cast<uint8_t>(peer_.version ? peer_.version : cfg_.version);
  s.leap = static_cast<uint8_t>(peer_.leap);
  s.reference_time_ns = peer_reference_ns_;
  // origin/receive/transmit stay unset: they would reveal our nonces.
  s.kiss_code = kiss_code_;
  s.stopped = stopped_;
  s.key_id = cfg_.key_id;
  s.auth = auth_;
  s.auth_ok = auth_ok_;
  s.auth_missing = auth_missing_;
  s.auth_bad = auth_bad_;
  s.crypto_nak = crypto_nak_;
  s.xleave = !cfg_.xleave ? "" : received_ == 0 ? "pending" : last_interleaved_ ? "interleaved" : "basic";
  s.interleaved_answers = interleaved_answers_;
  for (const FilterStage& f : filter_.stages()) {
    FilterStageState fs;
    fs.offset_ns = f.offset_ns;
    fs.delay_ns = f.delay_ns;
    fs.dispersion_ns = f.dispersion_ns;
    fs.valid = f.valid;
    s.filter.push_back(fs);
  }
  return s;
}

}  // namespace ntp::ctl
