// RFC 5905 system variables and the server state published from them.
// Pure: the control loop passes the time.
#pragma once

#include <cstdint>
#include <string>

#include "proto/channel_abi.h"
#include "proto/ntp_packet.h"

namespace ntp::ctl {

// RFC 5905 section 11.1 system variables, in our units.
struct SystemVariables {
  uint8_t leap = 3;                 // LI
  uint8_t stratum = 16;             // 16: unsynchronized
  uint32_t refid = 0;
  int64_t reference_time_ns = 0;    // when the clock was last set or corrected
  int64_t root_delay_ns = 0;
  int64_t root_dispersion_ns = 0;
  int64_t offset_ns = 0;            // last offset applied (status)
  int64_t peer_dispersion_ns = 0;   // of the system peer (status)
  bool synchronized = false;
  std::string reference;            // human: what we follow
  // How fast the root dispersion grows after publication (the responder's
  // holdover): PHI plus the rate of a slew still running, since a dataplane
  // left alone keeps the published model's rate, slew included.
  uint32_t dispersion_rate_ppb = 15000;
  // The leap second at the end of the current UTC day, as decided (the
  // leap file, else a majority of the survivors on a leap day): +1 insert,
  // -1 delete, 0 none; smeared or not (the served clock needs it either way).
  int8_t leap_sign = 0;
  // Unix ns of the UTC midnight that ends the leap day while LI 1/2 is
  // announced (leap), else 0: the responder stops announcing at it.
  int64_t leap_ns = 0;
};

// The local clock's own state, from the shell each second (the kernel's
// adjtimex for the system source, the PHC source's for phc): whether it is
// itself synchronized, and its error bound (the kernel's maxerror, ...).
struct LocalClockQuality {
  bool synchronized = true;
  int64_t max_error_ns = 0;
};

// RFC 5905 section 11.1: PHI, the frequency tolerance, 15 ppm.
inline constexpr uint32_t kPhiPpb = 15000;

// The local clock as the reference (`refclock_master N`, the vendor's
// `ntp-service refclock-master N`): stratum N, reference ID 127.127.1.0
// (LOCAL(0)), root delay zero and a root dispersion of the clock's own
// reading precision; it is "updated" at every publication.
SystemVariables local_clock_variables(int stratum, int64_t now_ns, int8_t precision_log2);

// RFC 5905 "unsynchronized": leap 3, stratum 16 (sent as 0, which makes the
// reference ID a kiss code, section 7.4) and the code that says why: INIT
// before the first synchronization and once no source is selectable (no
// association is synchronized), STEP after a step until the next update.
SystemVariables unsynchronized_variables(uint32_t kiss_code = proto::kKissInit);

// What the dataplane serves from, stamped with the publication time.
proto::ServerStateData make_server_state(const SystemVariables& v, int8_t precision_log2, int64_t now_ns,
                                         double holdover_s);

}  // namespace ntp::ctl
