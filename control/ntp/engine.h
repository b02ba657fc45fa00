// The NTP system process (RFC 5905 section 11) over all associations:
// routes packets to associations (creating passive ones for allowed
// symmetric active peers), runs selection/cluster/combine when a sample
// arrives, feeds the servo, and keeps the system variables that the server
// state is published from. Pure: the control loop passes time and packets
// in and carries out the packets and clock adjustments that come out, so
// the whole protocol runs in simulation tests without a network or a clock.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "control/ntp/association.h"
#include "control/ntp/filter_select.h"
#include "control/ntp/nts_client.h"
#include "control/ntp/state.h"
#include "control/ntp/system_state.h"
#include "crypto/mac.h"
#include "hwclock/correction.h"
#include "hwclock/servo.h"
#include "proto/access.h"
#include "proto/channel_abi.h"

namespace ntp::ctl {

struct EngineConfig {
  std::vector<AssocConfig> associations;           // configured servers (client) and peers (symmetric active)
  std::optional<int> refclock_master;              // local clock stratum: the reference, or the fallback
  std::vector<uint32_t> own_addresses;             // our interface addresses (host order)
  // [access]: a symmetric active packet from an address whose class may
  // peer mobilises a dynamic passive association (the dataplane forwards
  // only those; the engine checks again). Default: nobody may.
  proto::AccessTable access;
  int max_dynamic_sessions = 100;
  // Dynamic passive associations poll at their peer's poll clamped to
  // this range, and go after passive_timeout_ns without a valid packet.
  int passive_minpoll_log2 = 6;
  int passive_maxpoll_log2 = 10;
  int64_t passive_timeout_ns = 900'000'000'000;
  int8_t precision_log2 = -20;
  hwclock::ServoConfig servo;
  // ntp.leap_smear: the served clock smears a leap second, so the leap
  // indicator is not passed on (SystemVariables::leap_sign still says it).
  bool leap_smear = false;
  // Symmetric-key authentication ([auth]; RFC 5905 section 9.2). keys: the
  // keys file's table (the shell loads it: the core does no I/O; null: no
  // keys). A keyed association signs its packets and uses only verified
  // ones; trusted_keys: the keys whose packets may set our time;
  // authenticate: only an association whose last answer verified with a
  // trusted key may be selected, and only a verified symmetric active
  // packet of a trusted key mobilises a passive association.
  std::shared_ptr<const crypto::KeyTable> keys;
  std::vector<uint32_t> trusted_keys;
  bool authenticate = false;
};

// The servo's configuration from [clock]: for the discipline and for every
// follower (which never panics: SteeredClock sets that itself).
hwclock::ServoConfig servo_config(const config::Clock& clock);
// The engine's configuration from the instance's file; precision_log2 is
// measured at start.
EngineConfig engine_config(const config::Config& cfg, int8_t precision_log2);

// What the caller applies to the served clock (hwclock::Correction::order):
// first step by step_ns, then run at freq_ppb relative to the uncorrected
// oscillator, and slew slew_ns more at slew_rate_ppb on top until it is in.
struct ClockAdjustment {
  bool step = false;
  int64_t step_ns = 0;
  double freq_ppb = 0;
  double slew_ns = 0;
  double slew_rate_ppb = 0;
};

struct EngineOutput {
  std::vector<OutPacket> packets;
  std::optional<ClockAdjustment> adjust;
  std::vector<Event> events;  // what happened (status::format_event renders them for the log)
  std::vector<NtsKeRequest> nts_ke;  // NTS-KE exchanges to run (the shell answers with on_nts_ke_result)
};

struct EngineCounters {
  uint64_t packets = 0, samples = 0, duplicates = 0, bogus = 0, bad_port = 0, no_association = 0,
           passive_created = 0, passive_refused = 0, awaiting_dropped = 0, steps = 0, spikes = 0, panics = 0;
  // Authentication: packets a keyed association did not use (also counted
  // per association), symmetric active packets refused a passive
  // association for want of a verified trusted MAC, and packets of ours not
  // sent because their key is not in the keys file any more.
  uint64_t unauthenticated = 0, passive_unauthenticated = 0, no_key = 0;
  // NTS: NAKs received, and polls not sent for want of a cookie (NTS-KE
  // is then due) or keys.
  uint64_t nts_naks = 0, nts_not_sent = 0;
};

class Engine {
 public:
  Engine(const EngineConfig& cfg, uint64_t seed, int64_t now_ns);

  // SIGHUP: the new configuration. Associations whose address and options
  // are unchanged keep their state (filter, reach, poll); the others go or
  // come (an event each); dynamic passive associations whose address may no
  // longer peer go, and so do those whose key the new keys lack or, with
  // authenticate, is not trusted (an unkeyed one then too); the others take
  // the new passive range and timeout. New keys (the same IDs, new secrets)
  // are what every association signs and verifies with from now on. The
  // servo's configuration and the precision are the running ones ([clock]
  // needs a restart).
  void reconfigure(const EngineConfig& new_cfg, int64_t now_ns, EngineOutput& out);
  size_t associations() const { return assocs_.size(); }
  const EngineConfig& config() const { return cfg_; }

  // The configured associations' endpoints, as the dataplane forwards
  // their packets by (proto::AssocEndpoints, the segment's contract): a
  // [[server]] as kEndpointClient from its address and port to its current
  // random local port, a [[peer]] as kEndpointSymmetric to port 123, each
  // with its key (key_id, 0 unkeyed). Not a
  // dynamic passive one (its packets come by the peer-class lane), nor one
  // a DENY/RSTR stopped (it takes nothing in). At most kMaxAssocEndpoints,
  // in id order (the oldest configured first); endpoints_left_out() says
  // how many more there were. endpoints_version() moves whenever the table
  // changes (start, reload, a client's new port, a stop or restart): the
  // shell publishes the table when it moved, before it sends the packets
  // of that same step.
  const proto::AssocEndpoints& endpoints() const { return *endpoints_; }
  uint64_t endpoints_version() const { return endpoints_version_; }
  size_t endpoints_left_out() const { return endpoints_left_out_; }

  // An NTP packet of mode 1, 2 or 4 from the dataplane.
  void on_packet(const proto::RxPacket& pkt, int64_t now_ns, EngineOutput& out);
  // What the NTS-KE of an EngineOutput::nts_ke (its tag) gave; for an
  // association since removed or replaced, or an older request: nothing.
  void on_nts_ke_result(uint32_t assoc_id, uint64_t tag, NtsKeResult& r, int64_t now_ns, EngineOutput& out);
  // The dataplane's report of when one of our packets left.
  void on_tx_report(const proto::TxReport& rep, int64_t now_ns, EngineOutput& out);
  // Polls, expiry, selection refresh. Call at least at next_timer_ns().
  void on_timer(int64_t now_ns, EngineOutput& out);
  int64_t next_timer_ns() const;

  // The leap file's word, from the shell each second: +1 (insert) or -1
  // (delete) a second at the end of the current UTC day, 0 none; nullopt
  // (or never called): no leap file, a majority of the survivors decides,
  // and only on June 30 or December 31. With a file the file decides (as
  // chrony's leapsectz), for the local clock as the reference too. The word
  // holds for the UTC day on which it was given.
  void set_file_leap(std::optional<int> sign);
  // The local clock's own state (refclock_master), from the shell each
  // second: its error bound becomes the root dispersion (at least the
  // precision); when it is not synchronized itself the appliance says
  // unsynchronized (leap 3, stratum 16, reference ID INIT), or with
  // serve_when_unsynced (ntp.local_clock_unsynced = "serve") serves at the
  // configured stratum with that bound. Never called: the clock is taken as
  // perfect (precision only).
  void set_local_clock_quality(const LocalClockQuality& q, bool serve_when_unsynced);

  const SystemVariables& system() const { return sys_; }
  // The system variables to publish at now_ns: the root dispersion grows at
  // PHI from the last clock update on, and includes what the discipline has
  // still to slew at now_ns (so |served - true| <= root delay / 2 + root
  // dispersion also while a large offset is being slewed out).
  SystemVariables system_at(int64_t now_ns) const;
  // What our packets to peers say about us at now_ns (system_at(now_ns)).
  LocalSystem local_system(int64_t now_ns) const;
  hwclock::ServoState servo_state() const { return servo_.state(); }
  double frequency_ppb() const { return servo_.frequency_ppb(); }
  int8_t system_poll_log2() const { return sys_poll_; }
  std::optional<uint32_t> system_peer() const { return sys_peer_; }
  const EngineCounters& counters() const { return counters_; }
  // The associations' state, with where each stands in the last selection.
  std::vector<AssociationState> sessions(int64_t now_ns) const;
  // All of the system process that status shows: system_at(now_ns), the
  // discipline's state and sessions(now_ns).
  EngineState state(int64_t now_ns) const;

 private:
  struct Pending {
    proto::RxPacket pkt;
    int64_t first_seen_ns;
  };
  void dispatch(const proto::RxPacket& pkt, const proto::ParsedPacket& p, int64_t now_ns, EngineOutput& out,
                bool retry);
  // The MAC field of pkt (parsed as p) against the keys; key_id: the one it
  // must be (0: any key of the table); *verified_key: the key ID that verified.
  AuthVerdict verify(const proto::RxPacket& pkt, const proto::ParsedPacket& p, uint32_t key_id,
                     uint32_t* verified_key = nullptr) const;
  bool trusted(uint32_t key_id) const;
  // fit() and, for authentication, the engine's own conditions.
  bool selectable(const Association& a, int64_t now_ns, const LocalSystem& ls, Unfit* why) const;
  // A packet of a keyed association: its MAC's key and length, or false
  // when the key is not in the table (then it is not sent).
  bool sign(const Association& a, OutPacket& p) const;
  // An NTS association's packet: its NTS fields, or false (not sent).
  bool seal_nts(const Association& a, OutPacket& p);
  // The NTS sessions of the configured associations with nts.
  void add_nts(uint32_t id, const AssocConfig& c);
  void clock_select(int64_t now_ns, bool new_sample_from, uint32_t from_id, EngineOutput& out);
  void clock_update(Association& peer, const Selection& sel, int64_t now_ns, EngineOutput& out);
  void become_unsynchronized(int64_t now_ns, EngineOutput& out, UnsyncReason why);
  void adjust_poll(int64_t offset_ns, int64_t jitter_ns);
  void use_local_clock(int64_t now_ns);
  SystemVariables local_variables(int64_t now_ns) const;
  // Sets v's leap indicator, leap_sign and leap_ns at now_ns (v synchronized).
  void apply_leap(SystemVariables& v, int64_t now_ns, bool sources_vote) const;
  bool peer_allowed(uint32_t ip) const;
  void mobilise_passive(const proto::RxPacket& pkt, const proto::ParsedPacket& p, int64_t now_ns, EngineOutput& out);
  using AssocMap = std::map<uint32_t, std::unique_ptr<Association>>;
  // Removes *it with an event of kind (why, refid for a passive one);
  // returns the next.
  AssocMap::iterator remove(AssocMap::iterator it, EngineOutput& out, EventKind kind, Removal why = Removal::kTimeout,
                            uint32_t refid = 0);
  void update_poll_range();
  Association* find(uint32_t address);
  // Rebuilds the endpoint table; bumps the version when it differs.
  void refresh_endpoints();

  EngineConfig cfg_;
  uint64_t seed_;
  std::map<uint32_t, std::unique_ptr<Association>> assocs_;  // by id
  std::map<uint32_t, NtsSession> nts_;                       // by association id: those with nts
  uint32_t next_id_ = 1;
  hwclock::Servo servo_;
  hwclock::Correction discipline_;  // what we ordered the clock to do, in our time
  SystemVariables sys_;
  std::optional<uint32_t> sys_peer_;
  Selection last_selection_;        // for status: falsetickers, outliers, survivors
  int64_t last_sample_time_ns_ = 0; // filter time of the sample last used
  int8_t sys_poll_;
  int8_t min_poll_, max_poll_;
  int poll_count_ = 0;              // RFC 5905 local_clock() hysteresis counter
  int64_t sys_jitter_ns_ = 0;
  int64_t next_select_ns_ = 0;
  std::deque<Pending> pending_;
  EngineCounters counters_;
  bool ever_synchronized_ = false;
  bool local_ref_ = false;          // the local clock (refclock_master) is the reference
  int64_t last_now_ns_ = 0;         // the latest time the shell passed in
  std::optional<int> file_leap_;    // the leap file's word ...
  int64_t file_leap_day_end_ns_ = 0;  // ... for the UTC day ending here
  int vote_sign_ = 0;               // the survivors' majority at the last selection
  std::optional<LocalClockQuality> local_quality_;
  bool local_serve_unsynced_ = false;
  // 6 KiB each: on the heap, built into scratch_ and swapped when changed.
  std::unique_ptr<proto::AssocEndpoints> endpoints_ = std::make_unique<proto::AssocEndpoints>();
  std::unique_ptr<proto::AssocEndpoints> endpoints_scratch_ = std::make_unique<proto::AssocEndpoints>();
  uint64_t endpoints_version_ = 0;  // 0: never built (the constructor builds version 1)
  size_t endpoints_left_out_ = 0;
};

}  // namespace ntp::ctl
