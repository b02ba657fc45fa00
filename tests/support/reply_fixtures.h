// The server state the dataplane's unit tests, fuzzers and benchmarks
// answer with: one fixture, so that the golden replies of test_frame and
// test_responder are computed from the same parameters.
#pragma once

#include "dataplane/responder.h"

namespace ntp::test {

// Stratum 2 from LOCAL(0), precision 2^-25 s, root delay 0x0A3D/65536 s
// (~40 ms), root dispersion 0x1234/65536 s (~71 ms).
inline dp::ReplyParams fixed_reply_params() {
  dp::ReplyParams p;
  p.leap = proto::Leap::kNone;
  p.stratum = 2;
  p.precision_log2 = -25;
  p.root_delay = 0x00000A3D;
  p.root_dispersion = 0x00001234;
  p.refid = 0x7F7F0100;  // 127.127.1.0
  p.reference = {0xEEB23E00, 0x12345678};
  p.synchronized = true;
  return p;
}

}  // namespace ntp::test
