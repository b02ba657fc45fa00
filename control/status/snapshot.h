// The snapshot the stats endpoint serves, built from what the control plane
// holds: the shared segment (ports, workers, the dataplane's pid and
// heartbeats), the NTP core's state and the published clock model. Plain
// inputs, so that a test can build a segment in memory and check the result.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "control/ntp/state.h"
#include "control/status/status.h"
#include "proto/channel_abi.h"

namespace ntp::status {

// What the control plane knows of itself at the snapshot.
struct ControlFacts {
  std::string sysname;
  std::string version;
  std::string clock_source;        // "system", "virtual", "phc"
  proto::ClockModelData model;     // the published clock model
  int8_t precision_log2 = 0;
  int64_t served_ns = 0;           // the served time at the snapshot
  int64_t host_ns = 0;             // CLOCK_REALTIME at the same moment
  uint64_t now_raw = 0;            // the timebase (TSC) now, for the dataplane's uptime and heartbeat
  double timebase_hz = 0;          // its calibrated frequency
  double holdover_s = 0;
  double control_uptime_s = 0;
  int32_t control_pid = 0;
  uint64_t state_publications = 0;
  std::optional<bool> keys_match;  // ctl::KeysWatch::match(): the dataplane's keys against ours
  std::vector<SteeredClockStatus> steered_clocks;
  std::vector<NtsKeStatus> nts_ke;
};

// A dataplane heartbeat older than this many seconds means it is gone.
inline constexpr double kDataplaneAliveS = 3;

Status make_status(const proto::SegmentHeader& segment, const ctl::EngineState& engine, const ControlFacts& facts);

// One association of the core in words.
AssociationStatus association_status(const ctl::AssociationState& a);

}  // namespace ntp::status
