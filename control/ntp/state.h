// What the NTP core lets others see of itself: plain state, owned and
// filled by the core (Association::state, Engine::sessions), rendered by
// control/status. No formatting here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ntp::ctl {

// One stage of the clock filter as status shows it (ClockFilter keeps more).
struct FilterStageState {
  int64_t offset_ns = 0;
  int64_t delay_ns = 0;
  int64_t dispersion_ns = 0;
  bool valid = false;
  bool operator==(const FilterStageState&) const = default;
};

struct AssociationState {
  std::string address;          // dotted quad
  uint16_t port = 123;
  std::string mode;             // "client", "symmetric active", "symmetric passive"
  bool configured = true;       // false: dynamic (created by an incoming symmetric active peer)
  std::string selection;        // "system peer", "candidate", "selectable", "falseticker", "unreachable", ...
  std::string status;           // vendor style: "configured, master, sane, valid" etc.
  uint8_t stratum = 16;
  uint32_t refid = 0;
  std::string refid_text;
  uint8_t reach = 0;            // reach register, shown in octal/decimal by ntpctl
  int8_t poll_log2 = 6;         // our current poll
  int8_t peer_poll_log2 = 0;    // the peer's poll
  std::string peer_mode;        // mode the peer speaks
  double since_last_rx_s = -1;  // "now": seconds since the last valid packet; -1 never
  int64_t offset_ns = 0, delay_ns = 0, dispersion_ns = 0, jitter_ns = 0;
  int64_t root_delay_ns = 0, root_dispersion_ns = 0, sync_distance_ns = 0;
  int8_t precision_log2 = 0;
  uint8_t version = 4;
  uint8_t leap = 3;
  int64_t reference_time_ns = 0;
  uint64_t origin_ts = 0, receive_ts = 0, transmit_ts = 0;  // raw NTP 64-bit
  std::vector<FilterStageState> filter;  // newest first, up to 8
  bool operator==(const AssociationState&) const = default;  // doubles: NaN != NaN
};

}  // namespace ntp::ctl
