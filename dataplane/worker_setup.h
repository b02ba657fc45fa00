// A worker's context as the main lcore builds it before launching it:
// queue w on every port, its counters and rings in the segment, and for
// worker 0 the control plane's tx and report rings.
#pragma once

#include <memory>
#include <vector>

#include "config/config.h"
#include "dataplane/nic_sampler.h"
#include "dataplane/port.h"
#include "dataplane/segment.h"
#include "dataplane/worker.h"

struct rte_mempool;

namespace ntp::dp {

// ports are indexed as cfg.interfaces (and the segment's port table); pool
// is the worker's own, for the frames worker 0 builds.
std::unique_ptr<WorkerContext> make_worker_context(unsigned w, const config::Config& cfg,
                                                   const std::vector<Port>& ports, Segment& segment,
                                                   rte_mempool* pool, double tsc_hz,
                                                   const NicClockSampler& sampler);

}  // namespace ntp::dp
