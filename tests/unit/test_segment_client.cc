// The control plane's side of the channel (control/segment_client.h): the
// dataplane's heartbeat watch that logs its loss and its return once each;
// attach() only to a segment that is ours alone (not another user's, no
// group/other bits, no symlink, no hard link) and whose rings check, with
// the same message each time; the instance lock attach() takes when main()
// did not; replaced() only when the name is gone or is another file, not
// under file-descriptor exhaustion. Segments are made in /dev/shm as
// ntp-dataplane makes them (rte_ring_init), under unique names, removed at
// the end.
#include "control/segment_client.h"
#include "tests/support/in_child.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <new>
#include <string>

#include "config/instance_lock.h"
#include "proto/rte_ring_layout.h"

namespace ntp::ctl {
namespace {

constexpr double kHz = 1e9;
constexpr uint64_t kS = 1'000'000'000ULL;

TEST(HeartbeatWatch, SaysOnceWhenTheBeatStopsAndOnceWhenItReturns) {
  HeartbeatWatch w;
  using C = HeartbeatWatch::Change;
  const uint64_t t0 = 100 * kS;
  // Beating: nothing to say, second after second.
  for (uint64_t s = 0; s < 5; s++) EXPECT_EQ(w.observe(t0 + s * kS, t0 + s * kS + kS / 10, kHz, 3.0), C::kNone);
  EXPECT_FALSE(w.stale());
  // The last beat at t0 + 4 s; 2.9 s later still alive, at 3 s stopped, once.
  const uint64_t last = t0 + 4 * kS;
  EXPECT_EQ(w.observe(last, last + 29 * kS / 10, kHz, 3.0), C::kNone);
  EXPECT_EQ(w.observe(last, last + 3 * kS, kHz, 3.0), C::kStopped);
  EXPECT_DOUBLE_EQ(w.age_s(), 3.0);
  EXPECT_TRUE(w.stale());
  for (uint64_t s = 4; s < 60; s++) EXPECT_EQ(w.observe(last, last + s * kS, kHz, 3.0), C::kNone);
  EXPECT_DOUBLE_EQ(w.age_s(), 59.0);
  // It beats again (the same dataplane resumed, or a new one): back, once.
  const uint64_t again = last + 60 * kS;
  EXPECT_EQ(w.observe(again, again + kS / 2, kHz, 3.0), C::kBack);
  EXPECT_FALSE(w.stale());
  EXPECT_EQ(w.observe(again + kS, again + kS + kS / 2, kHz, 3.0), C::kNone);
}

TEST(HeartbeatWatch, NoBeatYetIsStaleAndABeatAfterOurReadingIsFresh) {
  HeartbeatWatch w;
  EXPECT_EQ(w.observe(0, 5 * kS, kHz, 3.0), HeartbeatWatch::Change::kStopped);
  EXPECT_LT(w.age_s(), 0.0);
  // The dataplane stamped its beat after we read the timebase.
  EXPECT_EQ(w.observe(5 * kS + 10, 5 * kS, kHz, 3.0), HeartbeatWatch::Change::kBack);
  EXPECT_DOUBLE_EQ(w.age_s(), 0.0);
}

// The dataplane's keys against ours (crypto::fingerprint of both tables).
crypto::MacKey key_of(uint32_t id, const char* secret) {
  crypto::MacKey k;
  EXPECT_TRUE(crypto::mac_key_init(k, id, crypto::MacType::kAes128Cmac, reinterpret_cast<const uint8_t*>(secret),
                                   std::strlen(secret)));
  return k;
}
crypto::KeyTable table_of(std::initializer_list<crypto::MacKey> keys) {
  crypto::KeyTable t{};
  for (const crypto::MacKey& k : keys) EXPECT_TRUE(t.insert(k));
  return t;
}
// What the dataplane publishes for table t (none: no auth.keys_file).
proto::KeysFingerprintData published(const crypto::KeyTable* t) {
  proto::KeysFingerprintData d{};
  const crypto::KeyTableFingerprint fp = t ? crypto::fingerprint(*t) : crypto::kEmptyKeyTableFingerprint;
  std::memcpy(d.fingerprint, fp.data(), fp.size());
  d.flags = proto::kKeysFingerprintValid | (t ? 0 : proto::kKeysNoFile);
  d.key_count = t ? t->count : 0;
  return d;
}

TEST(KeysMatch, SameTablesMatchAnotherSecretOrKeyDoesNotNoKeysIsUnknown) {
  const crypto::KeyTable ours = table_of({key_of(1, "0123456789abcdef"), key_of(2, "another secret..")});
  const crypto::KeyTable same = table_of({key_of(1, "0123456789abcdef"), key_of(2, "another secret..")});
  const crypto::KeyTable secret = table_of({key_of(1, "0123456789abcdeX"), key_of(2, "another secret..")});
  const crypto::KeyTable fewer = table_of({key_of(1, "0123456789abcdef")});
  const crypto::KeyTableFingerprint fp = crypto::fingerprint(ours);
  EXPECT_EQ(keys_match(published(&same), fp, ours.count), true);
  EXPECT_EQ(keys_match(published(&secret), fp, ours.count), false);
  EXPECT_EQ(keys_match(published(&fewer), fp, ours.count), false);
  EXPECT_EQ(keys_match(published(nullptr), fp, ours.count), false);  // the dataplane has no keys file
  // We have none: the dataplane's keys differ; neither has any: unknown.
  EXPECT_EQ(keys_match(published(&same), crypto::kEmptyKeyTableFingerprint, 0), false);
  EXPECT_EQ(keys_match(published(nullptr), crypto::kEmptyKeyTableFingerprint, 0), std::nullopt);
  // Not written (an older dataplane, or not yet): unknown.
  proto::KeysFingerprintData unwritten = published(&same);
  unwritten.flags = 0;
  EXPECT_EQ(keys_match(unwritten, fp, ours.count), std::nullopt);
}

TEST(KeysWatch, AMismatchIsSaidOnceAfterItSettledAgainAfterEachReloadAndTheMatchOnce) {
  using C = KeysWatch::Change;
  const crypto::KeyTable ours = table_of({key_of(1, "0123456789abcdef")});
  const crypto::KeyTable other = table_of({key_of(1, "0123456789abcdeX")});
  const crypto::KeyTable third = table_of({key_of(1, "0123456789abcdeY")});
  const crypto::KeyTableFingerprint fp = crypto::fingerprint(ours);
  KeysWatch w;
  EXPECT_EQ(w.observe(std::nullopt, fp, 1, 0, 5), C::kNone);  // not attached
  EXPECT_EQ(w.match(), std::nullopt);
  EXPECT_EQ(w.observe(published(&ours), fp, 1, 1, 5), C::kNone);
  EXPECT_EQ(w.match(), true);
  // One side reloaded, the other follows within the settling time: nothing said.
  EXPECT_EQ(w.observe(published(&other), fp, 1, 10, 5), C::kNone);
  EXPECT_EQ(w.match(), false);
  EXPECT_EQ(w.observe(published(&other), fp, 1, 14, 5), C::kNone);
  EXPECT_EQ(w.observe(published(&ours), fp, 1, 14.5, 5), C::kNone);
  // A mismatch that stays: once, when it has lasted 5 s.
  EXPECT_EQ(w.observe(published(&other), fp, 1, 20, 5), C::kNone);
  EXPECT_EQ(w.observe(published(&other), fp, 1, 24.9, 5), C::kNone);
  EXPECT_EQ(w.observe(published(&other), fp, 1, 25, 5), C::kMismatch);
  for (int s = 26; s < 40; ++s) EXPECT_EQ(w.observe(published(&other), fp, 1, s, 5), C::kNone);
  EXPECT_EQ(w.match(), false);
  // The dataplane reloaded another file that still differs: said again.
  EXPECT_EQ(w.observe(published(&third), fp, 1, 40, 5), C::kNone);
  EXPECT_EQ(w.observe(published(&third), fp, 1, 45, 5), C::kMismatch);
  // The dataplane gone a while (unknown) and back with the same: not again.
  EXPECT_EQ(w.observe(std::nullopt, fp, 1, 46, 5), C::kNone);
  EXPECT_EQ(w.observe(published(&third), fp, 1, 47, 5), C::kNone);
  EXPECT_EQ(w.observe(published(&third), fp, 1, 60, 5), C::kNone);
  // Both reloaded the same file: they agree, said once.
  EXPECT_EQ(w.observe(published(&ours), fp, 1, 61, 5), C::kMatch);
  EXPECT_EQ(w.observe(published(&ours), fp, 1, 62, 5), C::kNone);
  EXPECT_EQ(w.match(), true);
}

// ------------------------------------------------------------ the segment

size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

// A shm name of this test; the segment, its links and its locks removed at
// the end.
struct Shm {
  std::string name;
  explicit Shm(const char* tag) : name("/ntp-unit-seg-" + std::to_string(getpid()) + "-" + tag) { clean(); }
  ~Shm() { clean(); }
  std::string path() const { return config::shm_path(name); }
  std::string other() const { return path() + ".other"; }
  void clean() const {
    unlink(path().c_str());
    rmdir(path().c_str());
    unlink(other().c_str());
    unlink(config::lock_path(name, "control").c_str());
  }
};

// Makes the segment at path as dp::Segment::create does: header, rings by
// rte_ring_init (single producer, single consumer), magic last. spoil runs
// on the mapped header before it is closed.
bool make_segment(const std::string& path, unsigned n_workers = 2, unsigned ring_size = 64, mode_t mode = 0600,
                  const std::function<void(proto::SegmentHeader&)>& spoil = nullptr) {
  const auto rx_bytes = static_cast<size_t>(rte_ring_get_memsize_elem(sizeof(proto::RxPacket), ring_size));
  size_t off = align_up(sizeof(proto::SegmentHeader), proto::kCacheLine);
  uint64_t rx[proto::kMaxWorkers], assoc[proto::kMaxWorkers];
  for (unsigned w = 0; w < n_workers; w++) {
    rx[w] = off;
    off = align_up(off + rx_bytes, proto::kCacheLine);
    assoc[w] = off;
    off = align_up(off + rx_bytes, proto::kCacheLine);
  }
  const uint64_t tx = off;
  off = align_up(off + static_cast<size_t>(rte_ring_get_memsize_elem(sizeof(proto::TxPacket), ring_size)),
                 proto::kCacheLine);
  const uint64_t rep = off;
  off = align_up(off + static_cast<size_t>(rte_ring_get_memsize_elem(sizeof(proto::TxReport), ring_size)), 4096);
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(off)) != 0 || fchmod(fd, mode) != 0) return false;
  void* p = mmap(nullptr, off, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return false;
  auto* h = new (p) proto::SegmentHeader();
  h->abi_version = proto::kChannelAbiVersion;
  h->header_size = sizeof(proto::SegmentHeader);
  h->total_size = off;
  h->n_workers = n_workers;
  h->ring_size = ring_size;
  auto* base = static_cast<uint8_t*>(p);
  bool ok = true;
  auto init = [&](uint64_t o) {
    ok = ok && rte_ring_init(reinterpret_cast<rte_ring*>(base + o), "r", ring_size, RING_F_SP_ENQ | RING_F_SC_DEQ) == 0;
  };
  for (unsigned w = 0; w < n_workers; w++) {
    h->rx_ring_offset[w] = rx[w];
    h->assoc_ring_offset[w] = assoc[w];
    init(rx[w]);
    init(assoc[w]);
  }
  h->tx_ring_offset = tx;
  h->tx_report_ring_offset = rep;
  init(tx);
  init(rep);
  h->magic = proto::kChannelMagic;
  if (spoil) spoil(*h);
  munmap(p, off);
  return ok;
}

using ntp::testing::in_child;

// proto's mirror of rte_ring (check_segment reads rings through it) agrees
// with the DPDK this links: the sizes it computes, and a segment made with
// rte_ring_init passes its check.
TEST(RteRingLayout, MirrorAgreesWithDpdk) {
  for (const size_t elem : {sizeof(proto::RxPacket), sizeof(proto::TxPacket), sizeof(proto::TxReport), size_t{4}})
    for (uint64_t count = 1; count <= (uint64_t{1} << 31); count *= 2)
      EXPECT_EQ(proto::rte_ring_layout::memsize(elem, count),
                static_cast<uint64_t>(std::max<ssize_t>(rte_ring_get_memsize_elem(static_cast<unsigned>(elem),
                                                                                  static_cast<unsigned>(count)),
                                                        0)))
          << elem << " x " << count;
  alignas(64) static uint8_t ring[384 + 64 * 8];
  auto* r = reinterpret_cast<rte_ring*>(ring);
  ASSERT_EQ(rte_ring_init(r, "x", 64, RING_F_SP_ENQ | RING_F_SC_DEQ), 0);
  uint32_t v;
  std::memcpy(&v, ring + proto::rte_ring_layout::kMask, 4);
  EXPECT_EQ(v, 63u);
  std::memcpy(&v, ring + proto::rte_ring_layout::kCapacity, 4);
  EXPECT_EQ(v, 63u);
  std::memcpy(&v, ring + proto::rte_ring_layout::kProdSyncType, 4);
  EXPECT_EQ(v, static_cast<uint32_t>(RTE_RING_SYNC_ST));
}

TEST(SegmentClient, AttachesToASegmentAsTheDataplaneMakesIt) {
  Shm s("good");
  ASSERT_TRUE(make_segment(s.path()));
  SegmentClient c;
  std::string err;
  ASSERT_EQ(c.attach(s.name, err), SegmentClient::AttachResult::kAttached) << err;
  EXPECT_EQ(c.header()->control_pid.load(), getpid());
  // Our packet goes where the dataplane reads it.
  OutPacket o;
  o.cookie = 77;
  o.dst_ip = 0x0a000001;
  o.dst_port = 123;
  o.src_port = 40000;
  o.payload.fill(0x23);
  ASSERT_TRUE(c.send(o));
  proto::TxPacket t{};
  ASSERT_EQ(rte_ring_dequeue_elem(c.tx_ring(), &t, sizeof t), 0);
  EXPECT_EQ(t.cookie, 77u);
  EXPECT_EQ(t.src_port, 40000);
  EXPECT_EQ(t.len, 48);
  EXPECT_EQ(t.flags, 0u);  // no MAC, no late stamp: a client request's nonce stays
  EXPECT_EQ(t.key_id, 0u);
  // A keyed symmetric packet: the dataplane stamps it late, then appends the
  // MAC of key 9 with 20 bytes of digest (len does not count them, ABI 7).
  o.cookie = 78;
  o.stamp_transmit = true;
  o.key_id = 9;
  o.mac_digest_bytes = 20;
  ASSERT_TRUE(c.send(o));
  ASSERT_EQ(rte_ring_dequeue_elem(c.tx_ring(), &t, sizeof t), 0);
  EXPECT_EQ(t.cookie, 78u);
  EXPECT_EQ(t.flags, proto::kTxStampTransmit | proto::kTxMac);
  EXPECT_EQ(t.key_id, 9u);
  EXPECT_EQ(t.mac_digest_bytes, 20);
  EXPECT_EQ(t.len, 48);
  std::string why;
  EXPECT_FALSE(c.replaced(why));
  EXPECT_EQ(why, "");
}

// A received packet whose length is beyond its element (the engine would
// parse past it) is skipped and counted; the next one comes through.
TEST(SegmentClient, ReceivedLengthsBeyondTheElementAreSkipped) {
  Shm s("rxlen");
  ASSERT_TRUE(make_segment(s.path()));
  SegmentClient c;
  std::string err;
  ASSERT_EQ(c.attach(s.name, err), SegmentClient::AttachResult::kAttached) << err;
  proto::RxPacket p{};
  for (const uint16_t len : {uint16_t{48}, uint16_t{sizeof p.payload + 1}, uint16_t{65535}, uint16_t{sizeof p.payload}}) {
    p.len = len;
    ASSERT_EQ(rte_ring_enqueue_elem(c.rx_ring(1), &p, sizeof p), 0);
    ASSERT_EQ(rte_ring_enqueue_elem(c.assoc_ring(0), &p, sizeof p), 0);
  }
  for (const bool assoc : {false, true}) {
    proto::RxPacket got{};
    auto next = [&] { return assoc ? c.next_assoc_rx(0, got) : c.next_rx(1, got); };
    ASSERT_TRUE(next());
    EXPECT_EQ(got.len, 48);
    ASSERT_TRUE(next());
    EXPECT_EQ(got.len, sizeof got.payload);
    EXPECT_FALSE(next());
  }
  EXPECT_EQ(c.bad_rx(), 4u);
}

TEST(SegmentClient, NotThereOrNotSizedYetIsAbsent) {
  Shm s("absent");
  SegmentClient c;
  std::string err;
  EXPECT_EQ(c.attach(s.name, err), SegmentClient::AttachResult::kAbsent);
  // Created, not sized yet: even while it is still root's (the dataplane
  // gives it to its control user before it sizes it).
  const int fd = open(s.path().c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  if (geteuid() == 0) {
    ASSERT_EQ(fchown(fd, 65534, 65534), 0);
  }
  close(fd);
  EXPECT_EQ(c.attach(s.name, err), SegmentClient::AttachResult::kAbsent);
  EXPECT_FALSE(c.attached());
}

// An empty file of another uid that stays empty was planted (a dataplane
// gives the segment to us microseconds after creating it): refused, from
// the second attempt on, with its owner and mode as a full-size one; one
// with group/other bits or a second link at once. The dataplane's own new
// file that is then given to us and sized attaches.
TEST(SegmentClient, AnEmptyFileOfAnotherUserIsRefusedOnceItStaysSo) {
  if (geteuid() != 0) GTEST_SKIP() << "another uid's file needs root";
  const std::string us = std::to_string(geteuid());
  {
    Shm s("empty-planted");
    const int fd = open(s.path().c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(fchown(fd, 65534, 65534), 0);
    close(fd);
    SegmentClient c;
    std::string err, again;
    EXPECT_EQ(c.attach(s.name, err), SegmentClient::AttachResult::kAbsent);  // perhaps being created
    EXPECT_EQ(c.attach(s.name, err), SegmentClient::AttachResult::kIncompatible);
    EXPECT_EQ(err, "shared memory " + s.name + " is owned by uid 65534 with mode 0600, not by us (uid " + us +
                       ") with mode 0600: refusing it (planted by another user?)");
    EXPECT_EQ(c.attach(s.name, again), SegmentClient::AttachResult::kIncompatible);
    EXPECT_EQ(again, err);  // the same text: logged once
    EXPECT_FALSE(c.attached());
  }
  for (const mode_t mode : {mode_t{0666}, mode_t{0640}}) {
    Shm s("empty-open");
    const int fd = open(s.path().c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(fchmod(fd, mode), 0);
    ASSERT_EQ(fchown(fd, 65534, 65534), 0);
    close(fd);
    SegmentClient c;
    std::string err;
    char m[8];
    std::snprintf(m, sizeof m, "%04o", static_cast<unsigned>(mode));
    EXPECT_EQ(c.attach(s.name, err), SegmentClient::AttachResult::kIncompatible) << m;
    EXPECT_EQ(err, "shared memory " + s.name + " is owned by uid 65534 with mode " + m + ", not by us (uid " + us +
                       ") with mode 0600: refusing it (planted by another user?)");
  }
  {
    // Ours, empty, but with a second link: not what a dataplane makes.
    Shm s("empty-linked");
    const int fd = open(s.other().c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    close(fd);
    ASSERT_EQ(link(s.other().c_str(), s.path().c_str()), 0);
    SegmentClient c;
    std::string err;
    EXPECT_EQ(c.attach(s.name, err), SegmentClient::AttachResult::kIncompatible);
    EXPECT_EQ(err, "shared memory " + s.name + " has 2 hard links, not one: refusing it (planted by another user?)");
  }
  {
    // The dataplane's way: another uid's at the first look, then ours, then
    // sized: absent, absent, attached.
    Shm s("empty-created");
    const int fd = open(s.path().c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(fchown(fd, 65534, 65534), 0);
    SegmentClient c;
    std::string err;
    EXPECT_EQ(c.attach(s.name, err), SegmentClient::AttachResult::kAbsent);
    ASSERT_EQ(fchown(fd, 0, 0), 0);
    close(fd);
    EXPECT_EQ(c.attach(s.name, err), SegmentClient::AttachResult::kAbsent);
    EXPECT_EQ(c.attach(s.name, err), SegmentClient::AttachResult::kAbsent);  // ours: waits as long as it takes
    ASSERT_EQ(unlink(s.path().c_str()), 0);
    ASSERT_TRUE(make_segment(s.path()));
    EXPECT_EQ(c.attach(s.name, err), SegmentClient::AttachResult::kAttached) << err;
  }
}

// The endpoints go into the segment's seqlock, whole, one generation per
// publication.
TEST(SegmentClient, PublishesTheEndpointsIntoTheSegment) {
  Shm s("endpoints");
  ASSERT_TRUE(make_segment(s.path()));
  SegmentClient c;
  std::string err;
  ASSERT_EQ(c.attach(s.name, err), SegmentClient::AttachResult::kAttached) << err;
  EXPECT_EQ(c.header()->assoc_endpoints.generation(), 0u);  // a new segment: nothing forwarded yet
  proto::AssocEndpoints t{};
  t.count = 2;
  t.entries[0] = {.address = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 2},
                  .remote_port = 123, .local_port = 40000, .kind = proto::kEndpointClient};
  t.entries[1] = {.address = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 3},
                  .remote_port = 123, .local_port = 123, .kind = proto::kEndpointSymmetric, .key_id = 7};
  c.publish_endpoints(t);
  EXPECT_EQ(c.header()->assoc_endpoints.generation(), 1u);
  proto::AssocEndpoints got{};
  ASSERT_TRUE(c.header()->assoc_endpoints.try_load(got));
  EXPECT_EQ(std::memcmp(&got, &t, sizeof t), 0);
  EXPECT_EQ(got.entries[1].key_id, 7u);  // ABI 8: a keyed peer's key
  EXPECT_EQ(got.entries[0].key_id, 0u);
  t.entries[0].local_port = 40001;
  c.publish_endpoints(t);
  EXPECT_EQ(c.header()->assoc_endpoints.generation(), 2u);
  ASSERT_TRUE(c.header()->assoc_endpoints.try_load(got));
  EXPECT_EQ(got.entries[0].local_port, 40001);
  // Detached: nothing to write into, and no crash.
  c.detach();
  c.publish_endpoints(t);
}

TEST(SegmentClient, ReadsTheDataplanesKeysFingerprint) {
  Shm s("keys");
  ASSERT_TRUE(make_segment(s.path()));
  SegmentClient c;
  std::string err;
  EXPECT_EQ(c.keys_fingerprint(), std::nullopt);  // not attached
  ASSERT_EQ(c.attach(s.name, err), SegmentClient::AttachResult::kAttached) << err;
  EXPECT_EQ(c.keys_fingerprint(), std::nullopt);  // not written yet
  const crypto::KeyTable t = table_of({key_of(5, "0123456789abcdef")});
  const proto::KeysFingerprintData d = published(&t);
  c.header()->keys_fingerprint.store(d);  // as the dataplane does at start and after a reload
  const std::optional<proto::KeysFingerprintData> got = c.keys_fingerprint();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(std::memcmp(got->fingerprint, d.fingerprint, sizeof d.fingerprint), 0);
  EXPECT_EQ(got->key_count, 1u);
  EXPECT_EQ(keys_match(*got, crypto::fingerprint(t), t.count), true);
  c.detach();
  EXPECT_EQ(c.keys_fingerprint(), std::nullopt);
}

// The refusals of a segment that is not ours alone: each with its message,
// the same text on every retry (the caller logs it once), nothing mapped.
TEST(SegmentClient, RefusesASegmentThatIsNotOursAlone) {
  struct Case {
    const char* name;
    std::function<bool(const Shm&)> plant;
    std::function<std::string(const Shm&)> message;
  };
  const std::string us = std::to_string(geteuid());
  const Case cases[] = {
      {"another user's, mode 0666",
       [](const Shm& s) {
         return make_segment(s.path(), 2, 64, 0666) && geteuid() == 0 && chown(s.path().c_str(), 65534, 65534) == 0;
       },
       [&](const Shm& s) {
         return "shared memory " + s.name + " is owned by uid 65534 with mode 0666, not by us (uid " + us +
                ") with mode 0600: refusing it (planted by another user?)";
       }},
      {"another user's, mode 0600",
       [](const Shm& s) {
         return make_segment(s.path()) && geteuid() == 0 && chown(s.path().c_str(), 65534, 65534) == 0;
       },
       [&](const Shm& s) {
         return "shared memory " + s.name + " is owned by uid 65534 with mode 0600, not by us (uid " + us +
                ") with mode 0600: refusing it (planted by another user?)";
       }},
      {"ours, mode 0666", [](const Shm& s) { return make_segment(s.path(), 2, 64, 0666); },
       [&](const Shm& s) {
         return "shared memory " + s.name + " is owned by uid " + us + " with mode 0666, not by us (uid " + us +
                ") with mode 0600: refusing it (planted by another user?)";
       }},
      {"ours, group-readable", [](const Shm& s) { return make_segment(s.path(), 2, 64, 0640); },
       [&](const Shm& s) {
         return "shared memory " + s.name + " is owned by uid " + us + " with mode 0640, not by us (uid " + us +
                ") with mode 0600: refusing it (planted by another user?)";
       }},
      {"a symlink to a good segment",
       [](const Shm& s) { return make_segment(s.other()) && symlink(s.other().c_str(), s.path().c_str()) == 0; },
       [](const Shm& s) {
         return "shared memory " + s.name + " (" + s.path() +
                ") is a symbolic link: refusing it (planted by another user?)";
       }},
      {"a hard link of a good segment",
       [](const Shm& s) { return make_segment(s.other()) && link(s.other().c_str(), s.path().c_str()) == 0; },
       [](const Shm& s) {
         return "shared memory " + s.name + " has 2 hard links, not one: refusing it (planted by another user?)";
       }},
      {"a directory", [](const Shm& s) { return mkdir(s.path().c_str(), 0700) == 0; },
       [](const Shm& s) {
         return "shared memory " + s.name + " is a directory: refusing it (planted by another user?)";
       }},
      {"rings that do not check",
       [](const Shm& s) {
         return make_segment(s.path(), 2, 64, 0600, [](proto::SegmentHeader& h) {
           reinterpret_cast<rte_ring*>(reinterpret_cast<uint8_t*>(&h) + h.tx_ring_offset)->mask = 0xffff;
         });
       },
       [](const Shm& s) { return "shared memory " + s.name + ": segment's tx ring has mask 0xffff, not its size - 1 (0x3f)"; }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Shm s("refused");
    if (!c.plant(s)) {
      if (geteuid() != 0) continue;  // another uid's file needs root
      FAIL() << "could not plant: " << std::strerror(errno);
    }
    SegmentClient client;
    std::string err, again;
    EXPECT_EQ(client.attach(s.name, err), SegmentClient::AttachResult::kIncompatible);
    EXPECT_EQ(err, c.message(s));
    EXPECT_FALSE(client.attached());
    EXPECT_EQ(client.attach(s.name, again), SegmentClient::AttachResult::kIncompatible);
    EXPECT_EQ(again, err);
  }
}

// A second control plane on the same segment: attach() takes the control
// lock when main() did not, and a second process is refused.
TEST(SegmentClient, ASecondControlPlaneIsRefusedByTheLock) {
  Shm s("second");
  ASSERT_TRUE(make_segment(s.path()));
  // The child is forked before we take the lock: it holds nothing of ours.
  int go[2];
  ASSERT_EQ(pipe(go), 0);
  std::string child_says;
  int result[2];
  ASSERT_EQ(pipe(result), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    close(go[1]);
    close(result[0]);
    char c;
    (void)!read(go[0], &c, 1);
    SegmentClient second;
    std::string err;
    const auto r = second.attach(s.name, err);
    const std::string out = r == SegmentClient::AttachResult::kIncompatible ? err : "attached";
    (void)!write(result[1], out.data(), out.size());
    _exit(0);
  }
  close(go[0]);
  close(result[1]);
  SegmentClient first;
  std::string err;
  EXPECT_FALSE(config::InstanceLock::held_here(s.name, "control"));
  ASSERT_EQ(first.attach(s.name, err), SegmentClient::AttachResult::kAttached) << err;
  (void)!write(go[1], "x", 1);
  close(go[1]);
  char buf[512];
  for (ssize_t n; (n = read(result[0], buf, sizeof buf)) > 0;) child_says.append(buf, static_cast<size_t>(n));
  close(result[0]);
  waitpid(pid, nullptr, 0);
  EXPECT_EQ(child_says, "ntp-control for " + s.name + " is already running (pid " + std::to_string(getpid()) +
                            " holds " + config::lock_path(s.name, "control") + ")");
}

TEST(SegmentClient, ReplacedWhenTheNameIsGoneOrAnotherFile) {
  Shm s("replaced");
  ASSERT_TRUE(make_segment(s.path()));
  SegmentClient c;
  std::string err;
  ASSERT_EQ(c.attach(s.name, err), SegmentClient::AttachResult::kAttached) << err;
  EXPECT_FALSE(c.replaced());
  // The dataplane restarted: a new file under the name.
  ASSERT_EQ(unlink(s.path().c_str()), 0);
  ASSERT_TRUE(make_segment(s.path()));
  std::string why;
  EXPECT_TRUE(c.replaced(why));
  EXPECT_EQ(why, "");
  // ...or it stopped: no file.
  ASSERT_EQ(unlink(s.path().c_str()), 0);
  EXPECT_TRUE(c.replaced(why));
  EXPECT_EQ(why, "");
}

// Out of file descriptors (a lower RLIMIT_NOFILE in a child): opening the
// name fails with EMFILE, which is no news about the segment; it is kept.
TEST(SegmentClient, FileDescriptorExhaustionIsNotReplaced) {
  Shm s("emfile");
  ASSERT_TRUE(make_segment(s.path()));
  SegmentClient c;
  std::string err;
  ASSERT_EQ(c.attach(s.name, err), SegmentClient::AttachResult::kAttached) << err;
  const std::string child = in_child([&] {
    const int lowest_free = dup(0);
    if (lowest_free < 0) return std::string("dup failed");
    close(lowest_free);
    const rlimit lim{static_cast<rlim_t>(lowest_free), static_cast<rlim_t>(lowest_free)};
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0) return std::string("setrlimit failed");
    // The condition holds: the name cannot be opened now.
    const int fd = open(s.path().c_str(), O_RDONLY);
    if (fd >= 0 || errno != EMFILE) return std::string("open did not fail with EMFILE");
    std::string why;
    if (c.replaced(why)) return "replaced under EMFILE: " + why;
    if (!why.empty()) return "cannot tell: " + why;
    // Still able to tell a real replacement.
    unlink(s.path().c_str());
    return std::string(c.replaced(why) ? "kept, then gone" : "not gone after unlink");
  });
  EXPECT_EQ(child, "kept, then gone");
}

}  // namespace
}  // namespace ntp::ctl
