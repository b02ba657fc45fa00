// proto::AccessTable: the classes' precedence, ranges at the edges of the
// address space, the default for unlisted addresses, and agreement with a
// brute-force reading of the rules on random rule sets (printed seed).
#include "proto/access.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <random>

#include "config/config.h"
#include "proto/inet.h"

namespace ntp::proto {
namespace {

uint32_t ip(const char* s) { return parse_ipv4(s).value(); }

TEST(Access, EmptyTableGivesTheDefault) {
  const AccessTable t(AccessClass::kLimited);
  EXPECT_EQ(t.classify_v4(0), AccessClass::kLimited);
  EXPECT_EQ(t.classify_v4(0xFFFFFFFF), AccessClass::kLimited);
  EXPECT_EQ(AccessTable({}, AccessClass::kDeny).classify_v4(ip("10.0.0.1")), AccessClass::kDeny);
}

TEST(Access, HighestClassWinsAndDenyWinsOverAll) {
  const AccessTable t({{ip("10.0.0.0"), 8, AccessClass::kSynchronization},
                       {ip("10.1.0.0"), 16, AccessClass::kPeer},
                       {ip("10.1.2.0"), 24, AccessClass::kQuery},  // lower than peer: peer still decides
                       {ip("10.1.2.3"), 32, AccessClass::kDeny},
                       {ip("192.168.0.0"), 16, AccessClass::kLimited}},
                      AccessClass::kDeny);
  EXPECT_EQ(t.classify_v4(ip("10.9.9.9")), AccessClass::kSynchronization);
  EXPECT_EQ(t.classify_v4(ip("10.1.9.9")), AccessClass::kPeer);
  EXPECT_EQ(t.classify_v4(ip("10.1.2.4")), AccessClass::kPeer);
  EXPECT_EQ(t.classify_v4(ip("10.1.2.3")), AccessClass::kDeny);
  EXPECT_EQ(t.classify_v4(ip("192.168.5.5")), AccessClass::kLimited);
  EXPECT_EQ(t.classify_v4(ip("11.0.0.0")), AccessClass::kDeny);  // the default
  EXPECT_EQ(t.classify_v4(ip("9.255.255.255")), AccessClass::kDeny);
}

TEST(Access, EdgesOfTheAddressSpace) {
  const AccessTable all({{0, 0, AccessClass::kServer}}, AccessClass::kDeny);
  EXPECT_EQ(all.classify_v4(0), AccessClass::kServer);
  EXPECT_EQ(all.classify_v4(0xFFFFFFFF), AccessClass::kServer);
  EXPECT_EQ(all.ranges(), 1u);
  const AccessTable top({{0xFFFFFFFF, 32, AccessClass::kQuery}, {0, 32, AccessClass::kPeer}}, AccessClass::kLimited);
  EXPECT_EQ(top.classify_v4(0xFFFFFFFF), AccessClass::kQuery);
  EXPECT_EQ(top.classify_v4(0xFFFFFFFE), AccessClass::kLimited);
  EXPECT_EQ(top.classify_v4(0), AccessClass::kPeer);
  EXPECT_EQ(top.classify_v4(1), AccessClass::kLimited);
}

TEST(Access, AdjacentRangesOfOneClassMerge) {
  const AccessTable t({{ip("10.0.0.0"), 25, AccessClass::kServer}, {ip("10.0.0.128"), 25, AccessClass::kServer}},
                      AccessClass::kLimited);
  EXPECT_EQ(t.ranges(), 1u);
  EXPECT_EQ(t.memory_bytes(), 2 * sizeof(uint32_t) + sizeof(AccessClass));
}

TEST(Access, RightsFollowTheVendorsClasses) {
  EXPECT_TRUE(may_peer(AccessClass::kPeer));
  EXPECT_FALSE(may_peer(AccessClass::kServer));
  EXPECT_FALSE(may_peer(AccessClass::kSynchronization));
  EXPECT_TRUE(may_query(AccessClass::kServer));
  EXPECT_FALSE(may_query(AccessClass::kSynchronization));
  EXPECT_TRUE(may_query(AccessClass::kQuery));
  EXPECT_FALSE(may_get_time(AccessClass::kQuery));
  EXPECT_FALSE(may_get_time(AccessClass::kDeny));
  EXPECT_TRUE(may_get_time(AccessClass::kLimited));
  EXPECT_TRUE(is_rate_limited(AccessClass::kLimited));
  EXPECT_FALSE(is_rate_limited(AccessClass::kSynchronization));
  for (size_t i = 0; i < kAccessClassCount; i++) {
    AccessClass c;
    ASSERT_TRUE(access_class_from_string(to_string(static_cast<AccessClass>(i)), c));
    EXPECT_EQ(static_cast<size_t>(c), i);
  }
  AccessClass c;
  EXPECT_FALSE(access_class_from_string("everyone", c));
}

TEST(Access, Ipv6IsTheDefaultUntilItHasLists) {
  const AccessTable t({{0, 0, AccessClass::kDeny}}, AccessClass::kLimited);
  IpAddress v6;
  v6.bytes[0] = 0x20;
  v6.bytes[1] = 0x01;
  EXPECT_FALSE(v6.is_v4());
  EXPECT_EQ(t.classify(v6), AccessClass::kLimited);
  const IpAddress v4 = IpAddress::v4(ip("10.1.2.3"));
  EXPECT_TRUE(v4.is_v4());
  EXPECT_EQ(v4.v4_host_order(), ip("10.1.2.3"));
  EXPECT_EQ(t.classify(v4), AccessClass::kDeny);
}

// The table agrees with reading the rules one by one, on random rule sets
// concentrated in a small space so that they overlap.
TEST(Access, AgreesWithBruteForce) {
  const char* env = std::getenv("TEST_SEED");
  const uint64_t seed = env ? std::strtoull(env, nullptr, 10) : std::random_device{}();
  std::printf("test_access: TEST_SEED=%llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 200; round++) {
    std::vector<AccessRule> rules(rng() % 40);
    for (auto& r : rules) {
      r.len = static_cast<uint8_t>(20 + rng() % 13);  // /20../32 inside 10.0.0.0/16, with /0 now and then
      if (rng() % 50 == 0) r.len = 0;
      r.net = (ip("10.0.0.0") | static_cast<uint32_t>(rng() % 65536)) & netmask(r.len);
      r.cls = static_cast<AccessClass>(rng() % kAccessClassCount);
    }
    const auto def = static_cast<AccessClass>(rng() % kAccessClassCount);
    const AccessTable t(rules, def);
    for (int probe = 0; probe < 2000; probe++) {
      const uint32_t a = probe < 1000 ? (ip("10.0.0.0") | static_cast<uint32_t>(rng() % 65536))
                                      : static_cast<uint32_t>(rng());
      int best = -1;
      for (const auto& r : rules)
        if (in_prefix(a, r.net, r.len)) best = std::max(best, static_cast<int>(r.cls));
      const AccessClass want = best < 0 ? def : static_cast<AccessClass>(best);
      ASSERT_EQ(t.classify_v4(a), want) << "round " << round << " address " << ipv4_to_string(a);
    }
  }
}

TEST(Access, FromTheConfigurationLists) {
  config::Access a;
  a.peer = {{ip("10.0.1.0"), 24}};
  a.deny = {{ip("10.0.1.66"), 32}};
  a.query = {{ip("192.0.2.0"), 24}};
  a.default_class = "synchronization";
  const AccessTable t = config::access_table(a);
  EXPECT_EQ(t.classify_v4(ip("10.0.1.5")), AccessClass::kPeer);
  EXPECT_EQ(t.classify_v4(ip("10.0.1.66")), AccessClass::kDeny);
  EXPECT_EQ(t.classify_v4(ip("192.0.2.9")), AccessClass::kQuery);
  EXPECT_EQ(t.classify_v4(ip("8.8.8.8")), AccessClass::kSynchronization);
  EXPECT_EQ(config::access_table(config::Access{}).classify_v4(ip("8.8.8.8")), AccessClass::kLimited);
}

}  // namespace
}  // namespace ntp::proto
