// The words for the NTP core's enums, as /status, ntpctl and the log show
// them.
#pragma once

#include "control/ntp/state.h"
#include "proto/ntp_packet.h"

namespace ntp::status {

const char* mode_text(ctl::AssocMode m);          // "client", "symmetric active", "symmetric passive"
const char* peer_mode_text(proto::Mode m);        // "server", "symmetric active", "symmetric passive"
const char* unfit_text(ctl::Unfit u);             // "unreachable", "loop: its reference is us", ...
const char* sync_state_text(ctl::SyncState s);    // "clock not set", ..., "clock synchronized"
const char* unsync_reason_text(ctl::UnsyncReason r);  // "no selectable source", "panic"
// "system peer", "falseticker", ...; for an unfit one, why.
const char* selection_text(ctl::SelectionState s, ctl::Unfit u);

}  // namespace ntp::status
