// The worker loop: one per lcore, owning one RX/TX queue pair on every port
// (DPDK examples/l3fwd lcore_conf). Never blocks, never allocates, never
// takes a lock, makes no system call per packet.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/emulated_nic.h"
#include "dataplane/frame.h"
#include "dataplane/neighbour.h"
#include "dataplane/ratelimit.h"
#include "hwclock/nic_clock.h"
#include "proto/channel_abi.h"

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

namespace ntp::dp {

struct WorkerPort {
  uint16_t port_id = 0;
  uint16_t queue_id = 0;
  uint16_t index = 0;     // into SegmentHeader::ports
  // Interfaces on one DPDK port (VLANs) share its queues: the first polls
  // them and hands each frame to the interface of its VLAN, members[]
  // (indices into WorkerContext::ports, itself among them); the others
  // never poll (polls false) but send as themselves. A port built by hand
  // (tests, the benchmark) polls and has no members: its own frames only.
  bool polls = true;
  uint8_t n_members = 0;
  uint8_t members[proto::kMaxPorts] = {};
  uint32_t gateway = 0;   // host order; 0: on-link destinations only
  PortIdentity identity;
  int64_t tx_compensation_ns = 0;  // added to transmit timestamps
  // Hardware receive timestamps (null map: software timestamps only).
  const proto::Seqlock<hwclock::NicToTscMap>* nic_map = nullptr;  // published by the main lcore
  hwclock::NicToTscMap cached_map{};                              // this worker's copy, per burst
  int ts_dynfield_offset = -1;
  uint64_t ts_dynflag = 0;
  // The NIC's transmit timestamps of this queue's last burst (null: none),
  // converted through nic_map like the receive ones.
  const TxStamps* tx_stamps = nullptr;
  // interface.exception_path: the kernel interface's port (UINT16_MAX:
  // none), this worker's TX queue on it, whether this worker reads what the
  // kernel sends (worker 0: the TAP has one RX queue), and the budget of
  // exception_max_pps (GCRA: an interval and its theoretical arrival time).
  uint16_t exc_port_id = UINT16_MAX;
  uint16_t exc_queue = 0;
  bool exc_reads = false;
  int64_t exc_interval_ns = 0;
  int64_t exc_tat_ns = 0;
};

// A control-plane packet waiting for its next hop's MAC address.
struct PendingTx {
  rte_mbuf* m = nullptr;
  uint64_t cookie = 0;
  uint64_t since_raw = 0;      // when it was queued
  uint64_t last_arp_raw = 0;   // when we last asked for next_hop
  uint32_t next_hop = 0;
  uint16_t port = 0;           // index into WorkerContext::ports
  bool stamp = false;
  // kTxMac: the key (found again when sent: a reload may remove it), the
  // payload bytes the MAC covers and the digest's length.
  uint32_t mac_key_id = 0;
  uint16_t mac_covered = 0;
  uint8_t mac_digest_bytes = 0;
};

// The largest burst a worker receives (dataplane.burst_size).
inline constexpr unsigned kMaxWorkerBurst = 256;

struct alignas(proto::kCacheLine) WorkerContext {
  unsigned worker_id = 0;
  unsigned n_ports = 0;
  WorkerPort ports[proto::kMaxPorts];
  // Some port's exception path is read by this worker: every
  // kExceptionPollNs it polls the TAP (each poll is a read() system call,
  // so not on every loop iteration).
  bool exception_rx = false;
  uint64_t next_exception_poll_raw = 0;
  unsigned burst_size = 32;
  unsigned idle_sleep_us = 0;  // 0: busy poll

  proto::SegmentHeader* segment = nullptr;
  proto::WorkerCounters* counters = nullptr;  // this worker's, in the segment
  rte_ring* to_control = nullptr;             // this worker's rx ring (peer-class senders)
  rte_ring* to_control_assoc = nullptr;       // its lane for configured associations (null: to_control)

  // Who gets what (Policy). The main lcore publishes a new one in `policy`
  // (apply_policy); the worker loads it once per poll (one atomic load) and,
  // when it changed, hands its limits to its own limiter and reply cap. The
  // worker bumps `epoch` after each poll: once it has moved on by two, no
  // poll still uses a policy replaced before, and the main lcore frees it.
  std::atomic<const Policy*> policy{nullptr};
  alignas(proto::kCacheLine) std::atomic<uint64_t> epoch{0};
  const Policy* active_policy = nullptr;      // the worker's own view: the policy of this poll
  std::unique_ptr<RateLimiter> limiter;       // this worker's clients (RSS keeps a client on one worker)
  ReplyCap reply_cap;                         // its reflection brake
  // NTS: this worker's nonces (keyed from getrandom at start), and the seal
  // of each NTS reply of a burst, at the reply's index in the TX burst
  // (kMaxWorkerBurst; null: no NTS answered).
  std::unique_ptr<crypto::NonceSource> nts_rng;
  std::unique_ptr<NtsSeal[]> nts_seals;
  uint64_t limiter_published_raw = 0;         // TSC of the last LimiterStatus store
  // Main lcore only: the published policy, and replaced ones still waiting
  // for the worker's epoch to pass `free_after`.
  std::unique_ptr<Policy> policy_storage;
  struct Retired {
    std::unique_ptr<Policy> policy;
    uint64_t free_after = 0;
  };
  std::vector<Retired> retired;

  // Worker 0 also sends the control plane's packets: it resolves their
  // next hop by ARP, holds a few while it does, stamps the transmit time
  // where asked and reports when each left.
  rte_ring* from_control = nullptr;           // the tx ring (worker 0 only)
  rte_ring* tx_reports = nullptr;             // the tx-report ring (worker 0 only)
  rte_mempool* pool = nullptr;                // for the frames it builds
  uint64_t tsc_hz = 0;
  static constexpr unsigned kMaxPendingTx = 16;
  PendingTx pending[kMaxPendingTx];
  unsigned n_pending = 0;

  // The configured associations' endpoints, from the control plane
  // (SegmentHeader::assoc_endpoints): the worker checks the seqlock's
  // generation once per poll and, when it moved, copies the set into
  // `assoc_published` and builds the other table from it (its budgets
  // carried over), then switches. A torn read is retried at the next poll;
  // a set that is no set (a count beyond kMaxAssocEndpoints) is refused
  // once per generation (counters->assoc_endpoints_refused), and the table
  // in use stays. Generation 0 (no control plane yet): an empty table,
  // nothing on the associations' lane.
  proto::AssocEndpoints assoc_published{};
  AssocTable assoc_tables[2];
  unsigned assoc_active = 0;
  uint64_t assoc_generation = 0;    // of the set assoc_tables[assoc_active] was built from
  AssocTable& assoc() { return assoc_tables[assoc_active]; }

  // Cached copies of the published state: a reader that cannot get a
  // consistent copy (writer died mid-update) keeps serving the last one.
  proto::ClockModelData model{};
  proto::ClockModelData refused_model{};  // the last model refused (counted once, not per burst)
  proto::ServerStateData state{};
  bool have_state = false;
  NeighbourTable neighbours;  // and the defence of our addresses; times from tsc_hz (0: all at time 0)

  // The last ARP conflict per port (RFC 5227), written by the worker after
  // a burst that had one and read by the main lcore, which logs it: the
  // worker itself cannot write a log line without a syscall.
  alignas(proto::kCacheLine) proto::Seqlock<ArpConflictRecord> arp_conflicts[proto::kMaxPorts];
  ArpConflictLog arp_conflict_log[proto::kMaxPorts];  // the main lcore's own (arp_conflict_log_line)
};

// Main lcore: makes p the policy of ctx's next poll (the worker adopts it
// there, handing its limits to its limiter and reply cap); the one it
// replaces is retired and freed by collect_retired once the worker's epoch
// shows it has passed it. The first policy replaces none.
void publish_policy(WorkerContext& ctx, std::unique_ptr<Policy> p);

// The worker's copies of the published clock model and server state
// (once per burst, and before worker 0 sends the control plane's packets).
// A failed read (a writer died mid-update) keeps the previous copy; a
// model that changed is checked once (hwclock::model_plausible) and served
// only when plausible, else counted once in model_refused.
void refresh_published(WorkerContext& ctx);
// Main lcore: frees retired policies the worker no longer uses; returns
// how many are still waiting.
size_t collect_retired(WorkerContext& ctx);

// Set by the signal handler; workers return when it becomes true.
extern std::atomic<bool> g_stop;

// rte_eal_remote_launch entry point; arg is a WorkerContext*.
int worker_main(void* arg);

// One pass over the worker's ports: receive a burst from each, answer,
// transmit. Returns the number of frames received. Exposed for the
// benchmark, which drives it on an in-memory port.
unsigned worker_poll_once(WorkerContext& ctx);

// A tx ring entry that makes a packet: 48..kMaxRingPayload bytes, a
// unicast destination (not 0/8, loopback, multicast, class E, broadcast),
// both ports non-zero. service_control_tx refuses the rest
// (kBadControlPacket).
bool control_packet_valid(const proto::TxPacket& t);
// A kTxMac packet's MAC as the ring asks for it: key_id one of `keys` (null:
// none), mac_digest_bytes the key's digest or its 20-byte NTPv4 form, and a
// payload of whole words. Else the worker refuses it (kBadControlPacket).
bool control_mac_valid(const proto::TxPacket& t, const crypto::KeyTable* keys);
// A digest length key's type allows in a MAC we send: its full digest, or
// the 20-byte NTPv4 form of a longer one (crypto/mac.h).
bool mac_digest_allowed(const crypto::MacKey& key, size_t digest_bytes);
// A kTxMac packet's key at the moment it goes (it may have waited for ARP
// while a reload removed its key or gave its ID another type): the key as
// `keys` has it now, or null (the worker refuses the packet,
// kBadControlPacket) when it is gone, the digest length is not one its
// type allows, the covered payload is not whole words of a ring payload,
// or the sealed frame would not be the frame_len bytes built within the
// room bytes of its buffer.
const crypto::MacKey* mac_key_at_send(const PendingTx& p, const crypto::KeyTable* keys, size_t frame_len,
                                      size_t room);

// Worker 0: send what the control plane queued (and what waited for ARP).
// Returns the number of packets sent or dropped.
unsigned service_control_tx(WorkerContext& ctx);

// Main lcore (housekeeping): a line to log about ARP conflicts this
// worker saw since the last line, rate-limited per port (ArpConflictLog);
// writes it to out (cap bytes) and returns true, else false. Call until
// false: one line per port at most.
bool arp_conflict_log_line(WorkerContext& ctx, uint64_t now_raw, char* out, size_t cap);

// Worker 0 at start: announce our addresses (gratuitous ARP, RFC 5227) so
// that neighbours forget a MAC address from before a restart.
void announce_addresses(WorkerContext& ctx);

}  // namespace ntp::dp
