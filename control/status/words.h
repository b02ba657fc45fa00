// The words for the NTP core's enums, as /status, ntpctl and the log show
// them.
#pragma once

#include <cstdint>
#include <string>

#include "control/ntp/state.h"
#include "proto/ntp_packet.h"

namespace ntp::status {

const char* mode_text(ctl::AssocMode m);          // "client", "symmetric active", "symmetric passive"
const char* peer_mode_text(proto::Mode m);        // "server", "symmetric active", "symmetric passive"
const char* unfit_text(ctl::Unfit u);             // "unreachable", "loop: its reference is us", ...
const char* auth_text(ctl::AuthState a);          // the vendor's "authentication: ok|failed"; "pending" (keyed, not yet verified), "none" without a key
const char* sync_state_text(ctl::SyncState s);    // "clock not set", ..., "clock synchronized"
const char* unsync_reason_text(ctl::UnsyncReason r);  // "no selectable source", "panic"
// "system peer", "falseticker", ...; for an unfit one, why.
const char* selection_text(ctl::SelectionState s, ctl::Unfit u);

// A reference ID as an operator reads it (RFC 5905 section 7.3: "for
// packet stratum 0 (unspecified or invalid), this is a four-character ASCII
// string, called the kiss code ... For stratum 1 (reference clock), this is
// a four-octet, left-justified, zero-padded ASCII string ... Above stratum 1
// (secondary servers and clients): this is the reference identifier of the
// server and can be used to detect timing loops ... an IPv4 address"):
//   the local clock (127.127.1.0, any stratum)  "LOCAL(0)" (the vendor's word)
//   stratum 0 or 16 (unsynchronized)            the kiss code: "INIT", "STEP", "HOLD", "RATE"
//   stratum 1                                   the source's name: "GPS", "PPS"
//   stratum 2..15                               an IPv4 address: "10.0.1.31"
// An ASCII refid that is not a printable, NUL-padded string shows as eight
// hex digits ("7F7F0101"), never with '?' for the bytes it cannot show.
std::string refid_text(uint32_t refid, int stratum);

}  // namespace ntp::status
