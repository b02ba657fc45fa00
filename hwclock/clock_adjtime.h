// The two clock_adjtime() orders every steerable kernel clock takes (a PHC
// through FD_TO_CLOCKID, CLOCK_REALTIME), written once, like linuxptp's
// clockadj.c. Callers add what is particular to their clock (CLOCK_REALTIME
// clears the kernel's own discipline in the same call) and word the errors.
#pragma once

#include <sys/timex.h>
#include <time.h>

#include <cstdint>

namespace ntp::hwclock {

// clock += delta_ns at once (ADJ_SETOFFSET | ADJ_NANO). 0, or the errno.
int adjtime_step(clockid_t id, int64_t delta_ns);

// The absolute frequency correction (ADJ_FREQUENCY), timex.freq =
// scaled_ppm, together with whatever `extra` asks for in the same call
// (its modes and fields, e.g. ADJ_STATUS). 0, or the errno.
int adjtime_frequency(clockid_t id, long scaled_ppm, timex extra = {});

}  // namespace ntp::hwclock
