// Layout of the shared-memory segment between ntp-dataplane (creates it)
// and ntp-control (attaches). Plain data only: both processes map it at
// different addresses, so it holds offsets, never pointers. Any change to
// this file that moves a byte bumps kChannelAbiVersion.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "proto/seqlock.h"

namespace ntp::proto {

inline constexpr uint64_t kChannelMagic = 0x4E54504150504C31ULL;  // "NTPAPPL1"
inline constexpr uint32_t kChannelAbiVersion = 12;
inline constexpr size_t kMaxWorkers = 32;
inline constexpr size_t kMaxPorts = 8;
inline constexpr size_t kCacheLine = 64;

// The clock model: utc_ns = utc0_ns + (raw - raw0) * mult / 2^kModelShift,
// where raw is the free-running timebase (the TSC). Published by the
// control plane, read by both processes.
inline constexpr unsigned kModelShift = 40;

struct ClockModelData {
  uint64_t raw0 = 0;       // timebase ticks at the anchor
  int64_t utc0_ns = 0;     // Unix ns at raw0
  uint64_t mult = 0;       // ns per tick, times 2^kModelShift
  uint64_t nominal_hz = 0; // calibrated timebase frequency (ticks per s), for status
  int64_t freq_ppb = 0;    // correction of the rate relative to nominal_hz (status)
  uint32_t flags = 0;      // kModel* below
  // A leap second at leap_ns (Unix ns of the midnight UTC that ends the leap
  // day): +1 inserted, -1 deleted, 0 none. The model maps raw to UTC with it
  // applied (hwclock/leap.h), so both processes turn the same tick into the
  // same time across the leap.
  int32_t leap_sign = 0;
  int64_t leap_ns = 0;
  int64_t leap_smear_ns = 0; // 0: stepped at leap_ns; else smeared linearly over this window centred on it
  // A slew the discipline runs is part of mult until slew_end_raw, the tick
  // it is in at; from there the model runs at base_mult, continuous at
  // slew_end_raw (hwclock::model_linear_ns). So a dataplane whose control
  // plane died mid-slew stops slewing at the slew's end instead of keeping
  // its rate as a frequency error. 0: no slew (base_mult unused).
  uint64_t slew_end_raw = 0;
  uint64_t base_mult = 0;    // ns per tick after slew_end_raw, times 2^kModelShift
};
inline constexpr uint32_t kModelValid = 1u << 0;
inline constexpr uint32_t kModelProvisional = 1u << 1;  // dataplane's own, before the control plane published

// The server state the responder puts in every answer. Times are clock
// model time (Unix ns).
struct ServerStateData {
  uint8_t leap = 3;                 // RFC 5905 LI
  uint8_t stratum = 16;             // 1..15, 16 = unsynchronized (sent as 0)
  int8_t precision_log2 = -20;      // log2 s
  uint8_t synchronized = 0;         // 0/1: the control plane considers itself synchronized
  uint32_t refid = 0;
  int64_t reference_time_ns = 0;    // when the clock was last set or corrected
  int64_t root_delay_ns = 0;
  int64_t root_dispersion_ns = 0;   // at published_ns
  int64_t published_ns = 0;         // model time of this publication
  int64_t holdover_ns = 0;          // after published_ns + holdover_ns: answer unsynchronized
  uint32_t dispersion_rate_ppb = 15000;  // root dispersion growth, ns per s of age (RFC 5905 PHI = 15 ppm)
  uint32_t reserved = 0;
  int64_t leap_ns = 0;              // leap 1/2 is announced until model time reaches this, then 0
};

// Why the dataplane dropped a frame. Order is ABI; names are metric labels.
enum class DropReason : uint8_t {
  kNotForUs = 0,       // other MAC or IPv4 destination
  kUnsupportedEthertype,
  kBadIpHeader,        // version, header length or total length
  kBadIpChecksum,
  kIpFragment,
  kIpOptions,
  kUnsupportedIpProto,
  kBadUdpLength,
  kBadUdpChecksum,
  kUdpPortClosed,      // not port 123
  kNtpServerDisabled,  // client request on an interface without ntp_server
  kNtpTooShort,
  kNtpBadVersion,
  kNtpBadLength,       // extension field or MAC lengths do not add up
  kNtpBadMode,         // mode 0, 5, or a server/peer packet while nothing listens for it
  kNtpControlMode,     // mode 6 (ntpq) or 7 (ntpdc): not served
  kOversized,          // multi-segment or longer than the largest frame we handle
  kBadArp,
  kBadIcmp,            // short or bad checksum
  kIcmpNotEcho,        // other ICMP types: ignored
  kControlRingFull,    // packet for the control plane, ring full
  kTxFull,             // the NIC's TX queue did not take it
  kNoNeighbour,        // control plane packet whose next hop did not resolve
  kRuntFrame,          // shorter than an Ethernet header
  kBadSourceAddress,   // a source we must never answer: 0.0.0.0, broadcast, multicast, loopback, our own
  kAccessDenied,       // [access]: the source may not have what it asked for (deny, or query-only asking for time)
  kRateLimited,        // over its [ratelimit] limit, not leaked, no KoD
  kReplyCap,           // over the worker's ratelimit.max_replies_per_s
  kNotAPeer,           // mode 1/2 from an address neither in access.peer nor a [[peer]]
  kUnexpectedServer,   // mode 4 from an address that is not a [[server]] or [[peer]] of ours
  kBadControlPacket,   // a tx ring entry from the control plane that does not make a packet (length, address)
  kAssocOverBudget,    // from a configured association's address and ports, faster than it can be sending (a flood that guessed the port)
  kNotAuthenticated,   // a mode 1/2 packet without a valid MAC: from a peer-class address with auth.authenticate (only a verified one may mobilise), or from a keyed [[peer]]'s address without one of its key
  kExceptionRate,      // for the kernel (exception path), over interface.exception_max_pps
  kExceptionFull,      // for the kernel, its interface did not take it (or, from it, the port's TX queue did not)
  kVlanNotOurs,        // tagged for a VLAN none of the port's interfaces is on (or untagged where all are tagged)
  kCount
};
inline constexpr size_t kDropReasonCount = static_cast<size_t>(DropReason::kCount);
const char* drop_reason_name(DropReason r);

// Receive timestamps per port, counted by each worker.
struct PortTimestampCounters {
  std::atomic<uint64_t> hardware;          // converted from the NIC's timestamp
  std::atomic<uint64_t> software;          // the TSC at burst return (no NIC timestamp, or a software port)
  std::atomic<uint64_t> rejected;          // a NIC timestamp that could not be converted: software used instead
  std::atomic<int64_t> hw_minus_sw_sum_ns; // sum over hardware ones of (NIC time - burst TSC time)
  std::atomic<uint64_t> hw_minus_sw_max_ns;// largest |NIC time - burst TSC time|
  // Transmit times kept for interleaved answers (RFC 9769): the NIC's, or
  // the TSC after tx_burst.
  std::atomic<uint64_t> tx_hardware;
  std::atomic<uint64_t> tx_software;
};

// Per-worker counters, written only by their worker (relaxed stores of its
// own cache lines), read by the control plane.
struct alignas(kCacheLine) WorkerCounters {
  std::atomic<uint64_t> rx_packets;
  std::atomic<uint64_t> tx_packets;
  std::atomic<uint64_t> ntp_requests;       // mode 3 requests answered
  std::atomic<uint64_t> ntp_unsync_replies; // of which answered with leap 3
  std::atomic<uint64_t> ntp_interleaved_replies;  // of which answered in interleaved mode (RFC 9769)
  std::atomic<uint64_t> ntp_to_control;     // modes 1, 2, 4 passed to the control plane
  std::atomic<uint64_t> ntp_stateless_peer_replies;  // mode-1 from a non-peer answered in mode 2 (answer_unknown_peers)
  std::atomic<uint64_t> kod_rate;           // RATE kiss-o'-death sent (over the limit, access.kod)
  std::atomic<uint64_t> kod_deny;           // DENY kiss-o'-death sent (denied, access.kod)
  std::atomic<uint64_t> rate_leaked;        // over the limit but answered (1 in 2^leak)
  std::atomic<uint64_t> auth_replies;       // requests with a valid MAC, answered with a MAC of the same key
  std::atomic<uint64_t> auth_unknown_key;   // requests with a MAC of a key ID we do not have: crypto-NAK
  std::atomic<uint64_t> auth_bad_mac;       // requests with a known key and a wrong digest or length: crypto-NAK
  std::atomic<uint64_t> nts_replies;        // NTS requests answered with NTS (RFC 8915; also in ntp_requests)
  std::atomic<uint64_t> nts_naks;           // NTS NAKs sent (the three below)
  std::atomic<uint64_t> nts_bad_cookie;     // a cookie none of our keys opens (forged or damaged)
  std::atomic<uint64_t> nts_stale_key;      // a cookie of a key we no longer hold (or never held)
  std::atomic<uint64_t> nts_bad_auth;       // a request whose authenticator its cookie's C2S key refuses
  std::atomic<uint64_t> ratelimit_inserts;  // clients entered into the rate-limit table
  std::atomic<uint64_t> ratelimit_evictions;// of which pushed out another client
  std::atomic<uint64_t> arp_replies;
  std::atomic<uint64_t> arp_learned;
  std::atomic<uint64_t> arp_conflicts;      // ARP from another MAC claiming one of our addresses
  std::atomic<uint64_t> arp_defences;       // gratuitous ARPs sent to defend an address
  std::atomic<uint64_t> icmp_echo_replies;
  std::atomic<uint64_t> control_tx;         // packets sent for the control plane
  std::atomic<uint64_t> polls;              // loop iterations
  std::atomic<uint64_t> busy_polls;         // iterations that received something
  std::atomic<uint64_t> state_read_retries; // seqlock reads that fell back to the cached copy
  std::atomic<uint64_t> model_refused;      // published clock models not served from (hwclock::model_plausible), each once
  std::atomic<uint64_t> assoc_endpoints_refused;  // published endpoint sets refused (count > kMaxAssocEndpoints), each once
  std::atomic<uint64_t> assoc_demoted;      // configured peers' packets over their budget, sent on the shared lane
  std::atomic<uint64_t> exception_to_kernel;   // frames for our address handed to the kernel (exception path)
  std::atomic<uint64_t> exception_from_kernel; // frames the kernel sent, out through the port
  std::atomic<uint64_t> drops[kDropReasonCount];
  PortTimestampCounters timestamps[kMaxPorts];
};

// The counters of WorkerCounters above drops, one row each: status copies,
// reports (JSON key) and exports (Prometheus counter family
// ntp_worker_<key>_total) every row, so a new counter is its member above
// and its row here.
struct WorkerCounterField {
  const char* key;  // /status key, the member's name
  const char* help;
  std::atomic<uint64_t> WorkerCounters::*member;
};
inline constexpr WorkerCounterField kWorkerCounterFields[] = {
    {"rx_packets", "Frames received by the worker.", &WorkerCounters::rx_packets},
    {"tx_packets", "Frames sent by the worker.", &WorkerCounters::tx_packets},
    {"ntp_requests", "NTP client requests (mode 3) answered.", &WorkerCounters::ntp_requests},
    {"ntp_unsync_replies", "NTP client requests answered with leap indicator 3 (unsynchronized).",
     &WorkerCounters::ntp_unsync_replies},
    {"ntp_interleaved_replies",
     "NTP client requests answered in interleaved mode (RFC 9769): with the real transmit time of the previous answer.",
     &WorkerCounters::ntp_interleaved_replies},
    {"ntp_to_control", "NTP packets of modes 1, 2 and 4 passed to the control plane.",
     &WorkerCounters::ntp_to_control},
    {"ntp_stateless_peer_replies",
     "Mode-1 packets from addresses that may not peer, answered statelessly in mode 2 (ntp.answer_unknown_peers).",
     &WorkerCounters::ntp_stateless_peer_replies},
    {"kod_rate", "RATE kiss-o'-death replies sent to clients over their rate limit (access.kod).",
     &WorkerCounters::kod_rate},
    {"kod_deny", "DENY kiss-o'-death replies sent to denied clients (access.kod).", &WorkerCounters::kod_deny},
    {"rate_leaked", "Requests over their rate limit answered anyway (1 in 2^ratelimit.leak_log2).",
     &WorkerCounters::rate_leaked},
    {"auth_replies", "Requests with a valid MAC (auth.keys_file) answered with a MAC of the same key.",
     &WorkerCounters::auth_replies},
    {"auth_unknown_key", "Requests with a MAC of a key ID we do not have, answered with a crypto-NAK.",
     &WorkerCounters::auth_unknown_key},
    {"auth_bad_mac", "Requests with a known key ID and a wrong digest or digest length, answered with a crypto-NAK.",
     &WorkerCounters::auth_bad_mac},
    {"nts_replies", "NTS requests (RFC 8915) answered with NTS; they count in ntp_requests too.",
     &WorkerCounters::nts_replies},
    {"nts_naks", "NTS NAKs sent: the sum of nts_bad_cookie, nts_stale_key and nts_bad_auth.",
     &WorkerCounters::nts_naks},
    {"nts_bad_cookie", "NTS requests whose cookie none of nts.cookie_keys_file's keys opens (forged or damaged).",
     &WorkerCounters::nts_bad_cookie},
    {"nts_stale_key", "NTS requests with a cookie of a key no longer (or never) in nts.cookie_keys_file.",
     &WorkerCounters::nts_stale_key},
    {"nts_bad_auth", "NTS requests whose authenticator the cookie's client-to-server key refuses.",
     &WorkerCounters::nts_bad_auth},
    {"ratelimit_inserts", "Clients entered into the worker's rate-limit table.", &WorkerCounters::ratelimit_inserts},
    {"ratelimit_evictions", "Clients entered into the rate-limit table in place of another (table full there).",
     &WorkerCounters::ratelimit_evictions},
    {"arp_replies", "ARP requests answered.", &WorkerCounters::arp_replies},
    {"arp_learned", "Neighbours learned from ARP.", &WorkerCounters::arp_learned},
    {"arp_conflicts", "ARP packets from another MAC claiming one of our addresses (RFC 5227 conflicts).",
     &WorkerCounters::arp_conflicts},
    {"arp_defences", "Gratuitous ARPs sent to defend one of our addresses (at most one per 10 s each).",
     &WorkerCounters::arp_defences},
    {"icmp_echo_replies", "ICMP echo requests answered.", &WorkerCounters::icmp_echo_replies},
    {"control_tx", "Packets sent on behalf of the control plane.", &WorkerCounters::control_tx},
    {"polls", "Iterations of the worker's poll loop.", &WorkerCounters::polls},
    {"busy_polls", "Poll loop iterations that received at least one frame.", &WorkerCounters::busy_polls},
    {"state_read_retries", "Server state reads that fell back to the cached copy.",
     &WorkerCounters::state_read_retries},
    {"model_refused",
     "Published clock models the worker refused to serve from (implausible rate, epoch or flags), each counted once; it kept the last good one.",
     &WorkerCounters::model_refused},
    {"assoc_endpoints_refused",
     "Association endpoint sets published by the control plane that the worker refused (more than it holds), each counted once; it kept the last good one.",
     &WorkerCounters::assoc_endpoints_refused},
    {"assoc_demoted",
     "Packets from a configured symmetric peer over its endpoint budget, passed on the shared lane instead of the associations' own (with a key: only ones whose MAC verified).",
     &WorkerCounters::assoc_demoted},
    {"exception_to_kernel",
     "Frames for our address the dataplane does not answer (TCP, other UDP ports, other ICMP, fragments, ARP replies) handed to the kernel interface of the exception path.",
     &WorkerCounters::exception_to_kernel},
    {"exception_from_kernel", "Frames the exception path's kernel interface sent, transmitted on the port.",
     &WorkerCounters::exception_from_kernel},
};
inline constexpr size_t kWorkerCounterCount = sizeof kWorkerCounterFields / sizeof kWorkerCounterFields[0];
// A counter without a row (or a row too many) does not build.
static_assert(offsetof(WorkerCounters, drops) == kWorkerCounterCount * sizeof(std::atomic<uint64_t>),
              "every counter of WorkerCounters above drops needs its row in kWorkerCounterFields");

inline constexpr uint8_t kTimestampSoftware = 0;
inline constexpr uint8_t kTimestampHardware = 1;

struct PortInfo {
  char name[32];        // interface name from the config (e.g. GigabitEthernet0/1/0)
  char device[128];     // DPDK device (PCI address or vdev string)
  char driver[32];
  uint8_t mac[6];
  uint8_t prefix_len;
  uint8_t ntp_server;   // answers client requests
  uint32_t ipv4;        // host order
  uint8_t timestamping; // kTimestamp*
  uint8_t link_up;
  uint16_t dpdk_port_id;
  uint32_t link_speed_mbps;
  uint8_t nic_emulated;           // the NIC clock is the test/diagnostic emulation
  uint8_t nic_map_valid;          // the NIC-to-TSC mapping is usable
  uint16_t vlan;                  // 802.1Q VLAN ID of the interface (0: untagged)
  uint8_t reserved_[4];
  int64_t tx_compensation_ns;
  // The NIC clock mapping, updated by the dataplane's main lcore.
  std::atomic<int64_t> nic_clock_mhz;     // NIC clock frequency fitted against the TSC, milli-Hz
  std::atomic<int64_t> nic_residual_ps;   // RMS residual of the fit, picoseconds
  std::atomic<uint64_t> nic_rounds;       // cross-timestamp rounds taken
  std::atomic<uint64_t> nic_outliers;     // rounds rejected
  std::atomic<uint64_t> nic_restarts;     // mapping restarted (counter wrap ambiguity)
  char timestamp_reason[96];
};

// Ring elements (fixed size, multiples of 8 bytes).
inline constexpr size_t kMaxRingPayload = 512;

struct RxPacket {           // dataplane -> control: an NTP packet of mode 1, 2 or 4
  int64_t rx_time_ns;       // model time of arrival
  uint64_t rx_raw;          // timebase ticks of arrival
  uint32_t src_ip, dst_ip;  // host order
  uint16_t src_port, dst_port;
  uint16_t port;            // index into ports[]
  uint16_t len;             // payload bytes
  uint8_t payload[kMaxRingPayload];
};

inline constexpr uint32_t kTxStampTransmit = 1u << 0;  // write the transmit timestamp just before sending

// kTxMac: the dataplane appends a MAC of key_id (auth.keys_file) over the
// payload after stamping the transmit timestamp (RFC 5905 section 7.3: the
// MAC covers it), mac_digest_bytes of digest after the 4-byte key ID; len
// does not count them. The control plane keeps the same keys to verify what
// comes back.
inline constexpr uint32_t kTxMac = 1u << 1;

struct TxPacket {           // control -> dataplane
  uint64_t cookie;          // returned on the report
  uint32_t dst_ip;          // host order
  uint32_t src_ip;          // 0: the sending port's address
  uint16_t dst_port, src_port;
  uint16_t port;            // index into ports[], 0xFFFF: by route
  uint16_t len;
  uint32_t flags;           // kTx*
  uint32_t key_id;          // kTxMac: the key
  uint16_t mac_digest_bytes;// kTxMac: digest bytes after the key ID (16, 20 or 32)
  uint16_t reserved[3];
  uint8_t payload[kMaxRingPayload];
};

struct TxReport {           // dataplane -> control
  uint64_t cookie;
  int64_t tx_time_ns;       // model time the packet went to the NIC
  uint64_t tx_raw;
  uint32_t status;          // 0 sent, else a DropReason + 1
  uint32_t reserved;
};

// What one worker's rate limiter shows: its table and the sources it
// limited most (a bounded list: no per-client metric series). Published by
// the worker about once a second.
inline constexpr size_t kTopLimitedSources = 16;
struct LimitedSource {
  uint8_t address[16];   // IPv6, IPv4 as v4-mapped ::ffff:a.b.c.d
  uint64_t limited;      // requests over the limit (estimate: space-saving count)
  int64_t last_ns;       // model time of the last one
};
struct LimiterStatus {
  uint64_t capacity = 0;   // table entries (ratelimit.clients)
  uint64_t fill = 0;       // of which in use
  uint64_t memory_bytes = 0;
  uint32_t n_top = 0;      // valid entries of top, most limited first
  uint32_t reserved = 0;
  LimitedSource top[kTopLimitedSources];
};

// The control plane's configured associations as the dataplane must know
// them to forward their packets, published by the control plane (the single
// writer) whenever they change (start, reload, a client's new source port).
// A worker copies them when the seqlock's generation moves. Mode 4 is
// forwarded only from a client association's server to its current local
// port (RFC 9109 random ports: a spoofer of the server's address, which our
// replies reveal as their reference ID, must also guess the port); mode 1/2
// only from a symmetric association's peer to port 123. Generation 0 (no
// control plane yet): nothing is forwarded on the associations' lane.
inline constexpr size_t kMaxAssocEndpoints = 256;
inline constexpr uint8_t kEndpointClient = 1;     // ours sends mode 3 from local_port, expects mode 4
inline constexpr uint8_t kEndpointSymmetric = 2;  // [[peer]]: mode 1/2 both ways, local_port 123
struct AssocEndpoint {
  uint8_t address[16];   // the remote, IPv6; IPv4 as v4-mapped ::ffff:a.b.c.d
  uint16_t remote_port;  // the remote's port (123 for every association today)
  uint16_t local_port;   // our port its packets come to
  uint8_t kind;          // kEndpoint*
  uint8_t reserved[3];
  // The association's key (auth.keys_file, its `key = N`), 0: unkeyed. The
  // dataplane checks a keyed peer's MAC before it spends its budget, so a
  // spoofer without the secret cannot use it up.
  uint32_t key_id;
  uint32_t reserved2;
};
static_assert(sizeof(AssocEndpoint) == 32 && offsetof(AssocEndpoint, kind) == 20 &&
                  offsetof(AssocEndpoint, key_id) == 24,
              "AssocEndpoint's layout is ABI");
struct AssocEndpoints {
  uint32_t count = 0;    // valid entries, <= kMaxAssocEndpoints
  uint32_t reserved = 0;
  AssocEndpoint entries[kMaxAssocEndpoints];
};

// What keys the dataplane serves with: crypto::fingerprint of its table of
// auth.keys_file (all keys), written at start and after each reload that
// loaded the file, so the control plane can tell whether both hold the same
// keys (never the keys themselves). The seqlock's generation counts the
// writes.
inline constexpr uint32_t kKeysFingerprintValid = 1u << 0;  // written by the dataplane
inline constexpr uint32_t kKeysNoFile = 1u << 1;            // no auth.keys_file: no keys (fingerprint of none)
struct KeysFingerprintData {
  uint8_t fingerprint[16] = {};
  uint32_t flags = 0;      // kKeysFingerprintValid, kKeysNoFile
  uint32_t key_count = 0;  // keys in the table
};
static_assert(sizeof(KeysFingerprintData) == 24, "KeysFingerprintData's layout is ABI");

// The NTS cookie keys ntp-control holds (control -> dataplane): made and
// rotated by it (nts.cookie_rotate_s) or read from nts.cookie_keys_file,
// oldest first, the last one sealing. The segment is the two daemons'
// alone (0600, channel.control_user's). `published_raw` (the timebase at
// the store, never 0 once written) tells a worker's main lcore that the
// keys changed; a seqlock read never sees half a rotation.
inline constexpr uint32_t kMaxCookieKeysAbi = 8;  // crypto::kMaxCookieKeys
struct CookieKeyAbi {
  uint32_t id = 0;
  uint32_t reserved = 0;
  uint8_t secret[32] = {};
};
struct CookieKeysData {
  uint64_t published_raw = 0;  // 0: none published
  uint32_t count = 0;          // keys, <= kMaxCookieKeysAbi
  uint32_t reserved = 0;
  CookieKeyAbi keys[kMaxCookieKeysAbi];
};
static_assert(sizeof(CookieKeyAbi) == 40 && sizeof(CookieKeysData) == 16 + 8 * 40, "CookieKeysData's layout is ABI");

struct alignas(kCacheLine) SegmentHeader {
  uint64_t magic;
  uint32_t abi_version;
  uint32_t header_size;     // sizeof(SegmentHeader)
  uint64_t total_size;      // bytes of the whole segment
  uint64_t instance_id;     // new for each dataplane start: the control plane re-attaches when it changes
  int32_t dataplane_pid;
  uint32_t n_workers;
  uint32_t n_ports;
  uint32_t ring_size;       // elements per ring (power of two)
  char sysname[64];

  // Offsets from the start of the segment to each rte_ring.
  uint64_t rx_ring_offset[kMaxWorkers];  // per worker: dataplane -> control (peers from access.peer)
  // per worker: dataplane -> control, only packets from configured
  // associations ([[server]], [[peer]]): a lane a flood cannot fill
  uint64_t assoc_ring_offset[kMaxWorkers];
  uint64_t tx_ring_offset;               // control -> dataplane (worker 0 sends)
  uint64_t tx_report_ring_offset;        // dataplane -> control

  PortInfo ports[kMaxPorts];

  alignas(kCacheLine) std::atomic<uint64_t> dataplane_heartbeat_raw;  // timebase, bumped by the dataplane
  std::atomic<uint64_t> dataplane_start_raw;
  alignas(kCacheLine) std::atomic<uint64_t> control_heartbeat_raw;    // bumped by the control plane
  std::atomic<int32_t> control_pid;

  alignas(kCacheLine) Seqlock<ClockModelData> clock_model;
  alignas(kCacheLine) Seqlock<ServerStateData> server_state;

  WorkerCounters workers[kMaxWorkers];
  Seqlock<LimiterStatus> limiters[kMaxWorkers];

  alignas(kCacheLine) Seqlock<AssocEndpoints> assoc_endpoints;  // control -> dataplane
  alignas(kCacheLine) Seqlock<KeysFingerprintData> keys_fingerprint;  // dataplane -> control
  alignas(kCacheLine) Seqlock<CookieKeysData> cookie_keys;            // control -> dataplane
  // dataplane -> control: the published_raw of the cookie keys its workers
  // now open and seal with; the NTS-KE server seals with a new key only
  // then, so no client holds a cookie the dataplane cannot open yet.
  alignas(kCacheLine) std::atomic<uint64_t> cookie_keys_taken_raw;
};
static_assert(offsetof(SegmentHeader, keys_fingerprint) % kCacheLine == 0 &&
                  offsetof(SegmentHeader, keys_fingerprint) > offsetof(SegmentHeader, assoc_endpoints),
              "the keys fingerprint has a cache line of its own, after the endpoints");

// Checks what a control plane must before trusting a mapping of
// mapped_size bytes. Returns an empty string when the segment is usable,
// else what is wrong, for the operator.
std::string check_segment(const SegmentHeader* h, size_t mapped_size);

}  // namespace ntp::proto
