// One NTP association (RFC 5905 sections 9 and 13): the peer process
// (on-wire checks, sample computation, clock filter) and the poll process
// (reach register, poll interval, bursts) for a client association
// (`ntp-service unicast-server`), a symmetric active one (`unicast-peer`)
// or a dynamic symmetric passive one. Pure but for its randomness (nonces
// and ports from getrandom): the caller passes the time, carries out the
// packets it returns and reports when they really left.
#pragma once

#include <array>
#include <climits>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "config/config.h"
#include "control/ntp/filter_select.h"
#include "control/ntp/state.h"
#include "hwclock/correction.h"
#include "proto/ntp_packet.h"

namespace ntp::ctl {

// A [[server]] or [[peer]] as parsed (address, port, polls, burst flags,
// version: their defaults are the config's), and what the core adds.
struct AssocConfig : config::Association {
  AssocMode mode = AssocMode::kClient;
  bool dynamic = false;  // created by an incoming symmetric active packet
  // A dynamic association goes this long after its last valid packet (or
  // its creation): seconds of ours (ntp.passive_timeout_s), never the
  // peer's poll, which an attacker chooses.
  int64_t timeout_ns = 0;
  bool operator==(const AssocConfig&) const = default;
};

// What our packets say about us (symmetric modes carry our system
// variables; client requests carry next to nothing, RFC 9109 style).
struct LocalSystem {
  proto::Leap leap = proto::Leap::kUnsynchronized;
  uint8_t stratum = 16;
  int8_t precision_log2 = -20;
  uint32_t refid = 0;
  int64_t reference_time_ns = 0;
  int64_t root_delay_ns = 0;
  int64_t root_dispersion_ns = 0;
  int8_t poll_log2 = static_cast<int8_t>(config::Association{}.minpoll_log2);  // system poll (from the discipline)
  // What the discipline ordered our clock to do (phase still to be slewed
  // in): offsets are kept as predictions once it is all in.
  const hwclock::Correction* discipline = nullptr;
  std::vector<uint32_t> own_addresses;  // loop detection
};

// A packet for the dataplane to send.
struct OutPacket {
  uint32_t dst_ip = 0;
  uint16_t dst_port = proto::kNtpPort;
  uint16_t src_port = proto::kNtpPort;  // a client association's own random port (RFC 9109)
  uint64_t cookie = 0;          // comes back with the real transmit time
  bool stamp_transmit = false;  // the dataplane writes the transmit timestamp at TX
  // Symmetric-key authentication: the dataplane appends the MAC field (key
  // ID, then mac_digest_bytes of digest) after stamping the transmit
  // timestamp (RFC 5905 section 7.3: the MAC covers the whole header).
  uint32_t key_id = 0;          // 0: no MAC
  uint16_t mac_digest_bytes = 0;
  std::array<uint8_t, proto::kHeaderLen> payload{};
  // After the header (NTS fields, sealed over it): the dataplane sends
  // them as they are, so the header is not stamped.
  std::vector<uint8_t> extensions;
};

enum class RxResult : uint8_t {
  kSample,          // a new sample went into the clock filter and changed its estimate
  kNoSample,        // valid, state updated, nothing to filter (first packet of a symmetric exchange)
  kFilteredOut,     // a sample the filter did not use (older or a popcorn spike)
  kDuplicate,       // RFC 5905: transmit timestamp equals the last one received
  kBogus,           // origin timestamp is not our last transmit timestamp
  kUnsynchronized,  // the peer says leap 3 or stratum 0/16: no sample
  kKissOfDeath,     // stratum 0 with RATE/DENY/RSTR
  kAwaitingTxTime,  // our transmit time has not been reported yet: offer the packet again later
  kBadMode,         // a mode that does not fit this association
  kBadPort,         // not from the peer's port, or not to ours (RFC 9109): bogus, nothing changes
  kStopped,         // the peer told us to stop (DENY/RSTR): nothing is taken in any more
};
const char* to_string(RxResult r);

// What the MAC of a packet from a keyed association's peer says (the
// engine checks it against the keys, crypto::check_mac).
enum class AuthVerdict : uint8_t {
  kOk,         // a valid MAC of the association's key
  kMissing,    // no MAC
  kBad,        // another key ID, an unknown key, a wrong digest or digest length
  kCryptoNak,  // key ID 0 alone: the peer could not verify ours
};

// Random values from the kernel (getrandom): a client request's nonce
// (never zero) and a client association's source port (1024..65535).
uint64_t random_nonce();
uint16_t random_client_port();

class Association {
 public:
  Association(const AssocConfig& cfg, uint32_t id, uint64_t seed, int64_t now_ns);

  uint32_t id() const { return id_; }
  const AssocConfig& config() const { return cfg_; }

  // Poll process. Returns a packet when one is due at now_ns.
  std::optional<OutPacket> on_timer(int64_t now_ns, const LocalSystem& sys);
  int64_t next_event_ns() const { return stopped_ ? INT64_MAX : next_send_ns_; }

  // The dataplane sent our packet `cookie` at tx_ns (served timescale).
  void on_transmitted(uint64_t cookie, int64_t tx_ns);
  // The dataplane could not send it (no ARP answer, ring full, ...).
  void on_transmit_failed(uint64_t cookie);

  // Peer process: a packet from our peer's address, received at rx_ns,
  // from its src_port to our dst_port.
  struct Arrival {
    int64_t rx_ns = 0;
    uint16_t src_port = proto::kNtpPort;
    uint16_t dst_port = proto::kNtpPort;
  };
  RxResult on_packet(const proto::NtpHeader& h, const Arrival& at, const LocalSystem& sys);

  // The server's NTP port: the configured one, or what NTS-KE's Port
  // Negotiation named (RFC 8915 section 4.1.8).
  uint16_t ntp_port() const { return ntp_port_; }
  void set_ntp_port(uint16_t port) { ntp_port_ = port; }
  // The port our packets leave from: a client association's own random one
  // (RFC 9109), 123 for symmetric ones (the peer's configuration names it).
  uint16_t local_port() const { return local_port_; }
  // A dynamic passive association starts at the poll of the packet that
  // created it, within its range (minpoll..maxpoll of its config).
  void start_passive(int peer_poll_log2);
  // A reload changed the passive range or timeout (dynamic associations):
  // the poll is clamped into it and the next packet re-armed at once.
  void set_passive_limits(int minpoll_log2, int maxpoll_log2, int64_t timeout_ns);
  // DENY or RSTR (RFC 5905 section 7.4) stopped this association: no more
  // packets; kiss_code() says which.
  bool stopped() const { return stopped_; }
  uint32_t kiss_code() const { return kiss_code_; }

  // The clock was stepped by step_ns: old samples mean nothing now (RFC
  // 5905: after a step all associations are reset), and the times we keep
  // move with the clock.
  void on_clock_step(int64_t step_ns);
  // The discipline changed our clock's frequency by dfreq_ppb and the
  // phase still to come by dphase_ns at t0_ns (see ClockFilter::slew).
  void on_correction(int64_t t0_ns, double dfreq_ppb, double dphase_ns) { filter_.slew(t0_ns, dfreq_ppb, dphase_ns); }

  // RFC 5905 fit(): may this association be a candidate for selection?
  // why, if given, is set to the reason (Unfit::kNone when fit).
  bool fit(int64_t now_ns, const LocalSystem& sys, Unfit* why = nullptr) const;
  Candidate candidate(int64_t now_ns) const;
  int64_t root_distance_ns(int64_t now_ns) const;

  uint8_t reach() const { return reach_; }
  bool reachable() const { return reach_ != 0; }
  uint8_t stratum() const { return peer_.stratum; }
  uint32_t peer_refid() const { return peer_.refid; }
  proto::Leap peer_leap() const { return peer_.leap; }
  int64_t peer_reference_time_ns() const { return peer_reference_ns_; }
  int64_t peer_root_delay_ns() const { return proto::ns_from_short(peer_.root_delay); }
  int64_t peer_root_dispersion_ns() const { return proto::ns_from_short(peer_.root_dispersion); }
  const ClockFilter& filter() const { return filter_; }
  int8_t poll_log2() const { return hpoll_; }

  // A dynamic association not heard from (no valid packet) for its
  // timeout_ns, or one that the peer told to stop.
  bool expired(int64_t now_ns) const;

  AssociationState state(int64_t now_ns) const;

  // Authentication (RFC 5905 section 9.2; for NTS, RFC 8915 section 5.7:
  // the engine's NtsSession verifies). A keyed association starts
  // pending and takes in only packets that verified: the others go to
  // on_unauthenticated, which changes nothing but the counters and, when
  // the packet answers our last one (its origin is our transmit timestamp:
  // an off-path forger does not know it), the state, to failed.
  // on_verified: the packet on_packet just took had a valid MAC; it makes
  // the state ok only if it answered our last packet (answered_ours()),
  // since a verified packet that did not can be a replay.
  uint32_t key_id() const { return cfg_.key_id; }
  AuthState auth_state() const { return auth_; }
  bool answers_last_sent(const proto::NtpHeader& h) const {
    return (!xmt_.is_zero() && h.origin == xmt_) || (!xrcv_.is_zero() && h.origin == xrcv_);
  }
  // The last packet on_packet saw passed the origin test.
  bool answered_ours() const { return answered_ours_; }
  void on_unauthenticated(AuthVerdict v, bool answers_ours);
  void on_verified(bool count);

 private:
  int64_t poll_interval_ns(int log2) const;
  void choose_local_port();
  void schedule_next(int64_t now_ns);
  std::array<uint8_t, proto::kHeaderLen> make_packet(const LocalSystem& sys, proto::NtpTimestamp org,
                                                     int64_t rec_ns) const;

  AssocConfig cfg_;
  uint32_t id_;
  std::mt19937_64 rng_;  // poll jitter only; nonces and ports come from getrandom
  uint16_t local_port_ = proto::kNtpPort;
  uint16_t ntp_port_ = proto::kNtpPort;

  // RFC 5905 peer variables (section 9.1).
  proto::NtpHeader peer_{};          // the last valid packet's header
  int64_t peer_reference_ns_ = 0;
  proto::NtpTimestamp org_;          // p.org: transmit timestamp of the peer's last valid packet
  int64_t rec_ns_ = 0;               // p.rec: when we received it (0: never)
  // The same of the last packet that failed the origin test (symmetric:
  // what our next packet answers when no valid one came since our last).
  // The transmit timestamp of ours that the last valid packet answered: a
  // peer polling faster than us sends more packets echoing it before our
  // next one; each is the peer's latest, which our next packet must answer.
  proto::NtpTimestamp answered_xmt_;
  proto::NtpTimestamp init_org_;
  int64_t init_rec_ns_ = 0;

  bool valid_since_send_ = false;    // a valid packet came since our last packet
  proto::NtpTimestamp xmt_;          // p.xmt: what our last packet carried as transmit timestamp
  uint64_t xmt_cookie_ = 0;          // and its cookie
  int64_t xmt_tx_ns_ = 0;            // when it really left (0: not reported yet)
  // Interleaved mode (cfg_.xleave; RFC 9769 as chrony does it). xrcv_: the
  // receive field of our last packet, which an interleaved answer carries
  // as its origin (client: a nonce, zero in a basic request; symmetric: our
  // arrival time of the peer's last packet). prev_: the last valid packet
  // from the remote: our T1 of the packet it answered, its T4, its receive
  // field (the origin of our next interleaved packet), whether a basic
  // sample was taken of that exchange and whether the remote was
  // synchronized (only then are its timestamps used later).
  proto::NtpTimestamp xrcv_;
  struct Exchange {
    int64_t t1_ns = 0, t4_ns = 0;
    proto::NtpTimestamp peer_rx;
    bool sampled = false;
    bool synced = false;
  } prev_;
  bool last_interleaved_ = false;   // the last answer was interleaved
  uint64_t interleaved_answers_ = 0;
  // Symmetric interleaved: our last packet carried the real transmit time
  // of the one before (not stamped by the dataplane); our packets since
  // the last valid one from the peer, and between the two valid ones before
  // (chrony's tx_count and prev_tx_count: we interleave only at 0 and 1, so
  // the time we send belongs to the packet the peer last answered).
  bool sent_interleaved_ = false;
  uint32_t sends_since_valid_ = 0;
  uint32_t sends_between_valid_ = 0;
  // A peer without interleaved mode finds our interleaved packets bogus and
  // restarts the exchange with its answer (basic, to our transmit field):
  // after each such answer the next 2^n (n = 0..4, back to 0 at the first
  // interleaved packet) go basic, so it loses at most one packet in 16.
  uint8_t xleave_backoff_log2_ = 0;
  uint32_t xleave_skips_left_ = 0;
  bool xmt_stamped_ = false;         // the dataplane wrote xmt_ at TX (symmetric) vs. a random nonce (client)

  ClockFilter filter_;
  uint8_t reach_ = 0;
  int unreach_polls_ = 0;            // consecutive polls without an answer
  int8_t hpoll_;                     // our poll interval, log2 s
  int8_t poll_floor_;                // minpoll, raised by RATE kisses (as ntpd raises its minpoll)
  int8_t ppoll_ = 0;                 // the peer's poll interval
  bool stopped_ = false;             // DENY/RSTR
  uint32_t kiss_code_ = 0;           // the last kiss code that passed the origin test
  int64_t last_send_ns_ = 0;
  int burst_left_ = 0;               // packets left in the current burst
  int64_t next_send_ns_ = 0;
  int64_t last_rx_ns_ = 0;           // the last valid packet (passed the origin test)
  int64_t created_ns_;
  uint64_t sent_ = 0, received_ = 0;
  RxResult last_result_ = RxResult::kNoSample;
  bool answered_ours_ = false;         // the last packet on_packet saw passed the origin test
  AuthState auth_ = AuthState::kNone;  // kPending from the start when keyed
  uint64_t auth_ok_ = 0, auth_missing_ = 0, auth_bad_ = 0, crypto_nak_ = 0;
};

}  // namespace ntp::ctl
