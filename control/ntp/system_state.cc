#include "control/ntp/system_state.h"

#include <algorithm>
#include <cmath>

#include "proto/ntp_packet.h"

namespace ntp::ctl {

SystemVariables local_clock_variables(int stratum, int64_t now_ns, int8_t precision_log2) {
  SystemVariables v;
  v.leap = 0;
  v.stratum = static_cast<uint8_t>(stratum);
  v.refid = proto::kRefidLocal;
  v.reference_time_ns = now_ns;
  v.root_delay_ns = 0;
  // RFC 5905 starts a sample's dispersion at the precision of the clocks
  // that took it; the local clock is its own source, read at our precision.
  v.root_dispersion_ns = std::llround(std::ldexp(1e9, precision_log2));
  v.synchronized = true;
  v.reference = "local clock (refclock_master " + std::to_string(stratum) + ")";
  return v;
}

SystemVariables unsynchronized_variables(uint32_t kiss_code) {
  SystemVariables v;
  v.refid = kiss_code;
  v.reference = "none";
  return v;
}

proto::ServerStateData make_server_state(const SystemVariables& v, int8_t precision_log2, int64_t now_ns,
                                         double holdover_s) {
  proto::ServerStateData s;
  s.leap = v.leap;
  s.stratum = v.stratum;
  s.precision_log2 = precision_log2;
  s.synchronized = v.synchronized ? 1 : 0;
  s.refid = v.refid;
  s.reference_time_ns = v.reference_time_ns;
  s.root_delay_ns = v.root_delay_ns;
  s.root_dispersion_ns = v.root_dispersion_ns;
  s.published_ns = now_ns;
  s.holdover_ns = std::llround(holdover_s * 1e9);
  s.dispersion_rate_ppb = std::max(v.dispersion_rate_ppb, kPhiPpb);
  s.leap_ns = v.leap_ns;
  return s;
}

}  // namespace ntp::ctl
