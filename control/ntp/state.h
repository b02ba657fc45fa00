// What the NTP core lets others see of itself: plain state and events,
// owned and filled by the core (Association::state, Engine::state, the
// events of EngineOutput), rendered by control/status. Enums and numbers
// only: the words for them are control/status's.
#pragma once

#include <cstdint>
#include <vector>

#include "control/ntp/system_state.h"
#include "proto/ntp_packet.h"

namespace ntp::ctl {

enum class AssocMode : uint8_t { kClient, kSymmetricActive, kSymmetricPassive };

// Why an association may not be a candidate for selection (RFC 5905 fit()).
enum class Unfit : uint8_t {
  kNone,             // fit
  kUnreachable,
  kUnsynchronized,   // the peer says leap 3 or stratum 0/16
  kStratumTooHigh,
  kNoSamples,
  kLoopToUs,         // its reference is one of our addresses
  kLoopToSystemPeer, // it follows our own system peer
  kTooDistant,       // root distance beyond MAXDIST + PHI * poll
  // Symmetric-key authentication (RFC 5905 section 9.2): its key is not in
  // auth.trusted_keys, or auth.authenticate and its last answer was not
  // verified (or it has no key).
  kNotAuthenticated,
};

// An association's symmetric-key authentication (the vendor's
// `authentication: ok|failed` per session).
enum class AuthState : uint8_t {
  kNone,     // no key: its packets are used unauthenticated (a MAC on them is not checked, as chrony)
  kOk,       // the last answer to our packet carried a valid MAC of its key
  kFailed,   // keyed: no verified answer in eight polls, or the last answer to ours was not verified
  kPending,  // keyed, new (configured or mobilised): none of its first eight packets answered verified yet
};

// Where an association stands in the last selection.
enum class SelectionState : uint8_t {
  kSystemPeer,
  kUnfit,        // see AssociationState::unfit
  kFalseticker,
  kOutlier,      // dropped by clustering
  kSurvivor,     // survived clustering, not the system peer
  kCandidate,    // fit, not (yet) in a selection
};

// One stage of the clock filter as status shows it (ClockFilter keeps more).
struct FilterStageState {
  int64_t offset_ns = 0;
  int64_t delay_ns = 0;
  int64_t dispersion_ns = 0;
  bool valid = false;
  bool operator==(const FilterStageState&) const = default;
};

struct AssociationState {
  uint32_t address = 0;         // host order
  uint16_t port = proto::kNtpPort;
  AssocMode mode = AssocMode::kClient;
  bool configured = true;       // false: dynamic (created by an incoming symmetric active peer)
  SelectionState selection = SelectionState::kCandidate;
  Unfit unfit = Unfit::kNone;   // fit() at the time of the state, also for the system peer
  bool heard = false;           // a valid packet came: the peer fields below are the peer's
  proto::Mode peer_mode = proto::Mode::kReserved;  // the mode the peer speaks
  uint8_t stratum = 16;         // the peer's; 16 when unsynchronized or never heard
  uint8_t wire_stratum = 0;     // as the peer sent it (0: unspecified or a kiss code)
  uint32_t refid = 0;
  uint8_t reach = 0;            // reach register
  int8_t poll_log2 = 0;         // our current poll
  int8_t peer_poll_log2 = 0;    // the peer's poll
  double since_last_rx_s = -1;  // seconds since the last valid packet; -1 never
  int64_t offset_ns = 0, delay_ns = 0, dispersion_ns = 0, jitter_ns = 0;
  int64_t root_delay_ns = 0, root_dispersion_ns = 0, sync_distance_ns = 0;
  int8_t precision_log2 = 0;
  uint8_t version = 4;
  uint8_t leap = 3;
  int64_t reference_time_ns = 0;
  // Never filled any more (they would reveal our nonces, issue 9):
  // control/status drops them, then they go.
  uint32_t kiss_code = 0;       // the last kiss code that answered ours (RATE, DENY, RSTR), 0 none
  bool stopped = false;         // DENY/RSTR: we send nothing more ("denied by the server")
  // Symmetric-key authentication: the key (0: none), the state, and what
  // came from the peer's address (forgeries too: a spoofer shows here).
  uint32_t key_id = 0;
  AuthState auth = AuthState::kNone;
  uint64_t auth_ok = 0;       // packets with a valid MAC of its key
  uint64_t auth_missing = 0;  // without a MAC: not used
  uint64_t auth_bad = 0;      // a MAC of another key, an unknown one, a wrong digest or length: not used
  uint64_t crypto_nak = 0;    // crypto-NAKs (RFC 5905 section 7.4: the peer could not verify ours): not used
  // Interleaved mode, client or symmetric (xleave): "" (not asked for), "pending" (no
  // answer yet), "interleaved" or "basic" (the mode of the last answer),
  // and the interleaved answers so far.
  std::string xleave;
  uint64_t interleaved_answers = 0;
  // NTS (RFC 8915; auth above is its authentication state too): the
  // session's state (NtsState's words; empty: no NTS), why it failed,
  // the cookies held, NTS-KE exchanges that gave keys and that failed, and
  // NTS NAKs received.
  std::string nts;
  std::string nts_error;
  uint32_t nts_cookies = 0;
  uint64_t nts_ke_ok = 0, nts_ke_failed = 0, nts_naks = 0;
  std::vector<FilterStageState> filter;  // newest first, up to 8
  bool operator==(const AssociationState&) const = default;  // doubles: NaN != NaN
};

// The discipline's state as the system process reports it (the local clock
// as the reference counts as synchronized).
enum class SyncState : uint8_t { kClockNotSet, kFrequencySet, kSynchronized, kSpike };

// The system process at one moment (Engine::state).
struct EngineState {
  SystemVariables system;  // as published at that moment (root dispersion grown by PHI)
  SyncState sync_state = SyncState::kClockNotSet;
  std::vector<AssociationState> associations;
};

// What happened, for the log and for tests (control/status renders it).
enum class EventKind : uint8_t {
  kKissOfDeath,          // address sent kiss code `refid`
  kPassiveCreated,       // a symmetric passive association with address, at poll_log2
  kPassiveRemoved,       // ... removed: `removal` says why
  kAssociationAdded,     // a reload added the association with address (mode)
  kAssociationRemoved,   // a reload removed it (no longer configured)
  kPollingStopped,       // address answered with DENY/RSTR (`refid`): no more packets to it
  kUnsynchronized,       // the system lost synchronization; `reason`
  kSystemPeerLost,       // address is no longer selectable
  kLocalClockFallback,   // the local clock at `stratum` is the reference
  kSystemPeer,           // address (mode, stratum) became the system peer, at offset_ns
  kPanic,                // offset_ns is beyond the panic threshold: not adjusted
  kSpike,                // offset_ns from address ignored until it persists
  kStep,                 // the clock was stepped by offset_ns
  kSynchronized,         // synchronized to address at stratum (our new stratum)
  kPollingRestarted,     // a reload restarted the association with address (mode) that DENY/RSTR (`refid`) stopped
};

enum class UnsyncReason : uint8_t { kNoSelectableSource, kPanic };

// Why a dynamic passive association went.
enum class Removal : uint8_t {
  kTimeout,     // no valid packet for ntp.passive_timeout_s
  kKiss,        // DENY/RSTR from it (`refid`)
  kNotAllowed,  // after a reload its address may no longer peer
};

struct Event {
  EventKind kind = EventKind::kSynchronized;
  uint32_t address = 0;   // the peer concerned (host order)
  int64_t offset_ns = 0;  // the offset, or the step
  uint8_t stratum = 0;
  int8_t poll_log2 = 0;
  uint32_t refid = 0;     // the kiss code
  AssocMode mode = AssocMode::kClient;
  UnsyncReason reason = UnsyncReason::kNoSelectableSource;
  Removal removal = Removal::kTimeout;
  bool operator==(const Event&) const = default;
};

}  // namespace ntp::ctl
