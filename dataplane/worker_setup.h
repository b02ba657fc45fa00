// A worker's context as the main lcore builds it before launching it:
// queue w on every port, its counters and rings in the segment, and for
// worker 0 the control plane's tx and report rings.
#pragma once

#include <memory>
#include <string>
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

// Who gets what, from the configuration: the access classes, access.kod,
// ntp.answer_unknown_peers, the [ratelimit] limits and the reply cap (not
// the associations: their endpoints come from the control plane, see
// WorkerContext::assoc_tables), and auth.keys_file's keys (every key for
// the responder, the trusted ones for auth.authenticate). Allocates and reads
// the keys file: off the hot path. A keys file that does not load leaves the
// policy without keys and, with errors given, adds each error as
// "file:line: message".
Policy make_policy(const config::Config& cfg, std::vector<std::string>* errors = nullptr);

// A reload (SIGHUP, main lcore): a new policy from cfg into every worker.
// Each worker picks it up at its next poll and hands the limits to its own
// limiter; the policy it replaces is freed once the worker's epoch shows
// it has moved past it (polled here up to about 100 ms; one not yet passed
// is freed at a later call or with the context, never under a worker).
// A ratelimit.clients that differs from the running table cannot change
// without a restart: false with err saying so, and the rest still applies.
// A keys file that does not load: false with err listing its errors
// (file:line each), and nothing published: the running policy stays.
// nts_ring (ntp-control's cookie keys from the segment), when given, wins
// over nts.cookie_keys_file's.
bool apply_policy(std::vector<std::unique_ptr<WorkerContext>>& workers, const config::Config& cfg, std::string& err,
                  std::shared_ptr<const crypto::CookieKeyRing> nts_ring = nullptr);
// The same policy for every worker but its NTS cookie keys (ntp-control's,
// from the segment), swapped as apply_policy swaps a whole one.
void apply_nts_ring(std::vector<std::unique_ptr<WorkerContext>>& workers,
                    std::shared_ptr<const crypto::CookieKeyRing> ring);

// What keys the dataplane serves with, for the control plane to compare
// with its own (SegmentHeader::keys_fingerprint): crypto::fingerprint of
// p's table of all keys, or the empty table's with kKeysNoFile. Main lcore:
// at start (make_worker_context, worker 0) and after each apply_policy that
// took the keys file.
void publish_keys_fingerprint(proto::SegmentHeader& seg, const Policy& p);

// One line per worker for the start log: its rate-limit table's entries and
// memory, and the policy's access ranges and associations.
std::string describe_worker_tables(const WorkerContext& ctx);

}  // namespace ntp::dp
