// proto/inet.h: the one copy of the byte order and address helpers.
#include "proto/inet.h"

#include <gtest/gtest.h>

namespace ntp::proto {
namespace {

constexpr uint32_t kIfAddr = 0x0A00011F;  // 10.0.1.31

TEST(Inet, Ipv4ToString) {
  EXPECT_EQ(ipv4_to_string(kIfAddr), "10.0.1.31");
  EXPECT_EQ(ipv4_to_string(0), "0.0.0.0");
  EXPECT_EQ(ipv4_to_string(0xFFFFFFFF), "255.255.255.255");
  EXPECT_EQ(ipv4_to_string(0xC0A80001), "192.168.0.1");
}

TEST(Inet, ParseIpv4IsStrict) {
  EXPECT_EQ(parse_ipv4("10.0.1.31"), kIfAddr);
  EXPECT_EQ(parse_ipv4("255.255.255.255"), 0xFFFFFFFFu);
  for (const char* bad : {"", "10.0.1", "10.0.1.31.", "10.0.1.256", "010.0.1.31", "10.0.1.-1", " 10.0.1.31",
                          "10..1.31", "1000.0.1.31"})
    EXPECT_FALSE(parse_ipv4(bad)) << bad;
  for (uint32_t a : {0u, kIfAddr, 0x7F000001u, 0xFFFFFFFFu}) EXPECT_EQ(parse_ipv4(ipv4_to_string(a)), a);
}

TEST(Inet, Netmask) {
  EXPECT_EQ(netmask(0), 0u);
  EXPECT_EQ(netmask(8), 0xFF000000u);
  EXPECT_EQ(netmask(24), 0xFFFFFF00u);
  EXPECT_EQ(netmask(31), 0xFFFFFFFEu);
  EXPECT_EQ(netmask(32), 0xFFFFFFFFu);
  EXPECT_TRUE(in_prefix(kIfAddr, 0x0A000100, 24));
  EXPECT_FALSE(in_prefix(0x0A000201, 0x0A000100, 24));
  EXPECT_TRUE(in_prefix(0xDEADBEEF, 0, 0));
}

TEST(Inet, ByteOrder) {
  uint8_t b[4] = {};
  store_be32(b, 0x01020304);
  EXPECT_EQ(b[0], 1);
  EXPECT_EQ(b[3], 4);
  EXPECT_EQ(load_be32(b), 0x01020304u);
  store_be16(b, 0xABCD);
  EXPECT_EQ(b[0], 0xAB);
  EXPECT_EQ(load_be16(b), 0xABCDu);
}

TEST(Inet, ParsePort) {
  EXPECT_EQ(parse_port("123"), 123);
  EXPECT_EQ(parse_port("65535"), 65535);
  EXPECT_EQ(parse_port("0080"), 80);  // leading zeros are digits (the config file refuses them itself)
  for (const char* bad : {"", "0", "65536", "99999999999", "-1", "+1", "12a", " 1"}) EXPECT_FALSE(parse_port(bad)) << bad;
}

TEST(Inet, SplitHostPort) {
  auto hp = split_host_port("127.0.0.1:9123");
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 9123);
  hp = split_host_port("localhost:65535");
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "localhost");
  EXPECT_EQ(hp->port, 65535);
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "h:12a", "h:123456"})
    EXPECT_FALSE(split_host_port(bad)) << bad;
}

}  // namespace
}  // namespace ntp::proto
