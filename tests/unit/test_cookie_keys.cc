// ntp-control's cookie keys: made when the file is absent, rotated at the
// interval, old keys kept as configured, the file rewritten whole (0600)
// and read back the same; rotation off leaves the file alone. Times are
// given, never read.
#include "control/cookie_keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

namespace ntp::ctl {
namespace {

constexpr int64_t kT0 = 1764547200;  // 2025-12-01

class CookieKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cookiekeys-XXXXXX";
    dir_ = mkdtemp(tmpl);
    nts_.cookie_keys_file = dir_ + "/ntskeys";
    nts_.cookie_rotate_s = 86400;
    nts_.cookie_old_keys = 2;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::vector<uint32_t> ids(const CookieKeyKeeper& k) const {
    std::vector<uint32_t> v;
    for (const auto& e : k.keys()) v.push_back(e.id);
    return v;
  }
  std::string dir_;
  config::Nts nts_;
};

TEST_F(CookieKeysTest, AbsentFileIsMadeWithOneKeyMode0600) {
  CookieKeyKeeper k;
  std::vector<std::string> errors;
  ASSERT_TRUE(k.load(nts_, errors)) << errors[0];
  EXPECT_TRUE(k.keys().empty());
  EXPECT_EQ(k.ring(), nullptr);
  const CookieKeyKeeper::Tick t = k.tick(kT0);
  EXPECT_TRUE(t.changed);
  EXPECT_EQ(t.write_error, "");
  ASSERT_EQ(k.keys().size(), 1u);
  EXPECT_EQ(t.added, k.sealing_id());
  ASSERT_NE(k.ring(), nullptr);
  struct stat st{};
  ASSERT_EQ(stat(nts_.cookie_keys_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // A restart reads the same key back.
  CookieKeyKeeper again;
  ASSERT_TRUE(again.load(nts_, errors));
  ASSERT_EQ(again.keys().size(), 1u);
  EXPECT_EQ(0, std::memcmp(again.keys()[0].secret, k.keys()[0].secret, sizeof k.keys()[0].secret));
  EXPECT_FALSE(again.tick(kT0 + 100).changed);  // not due
}

TEST_F(CookieKeysTest, RotatesAtTheIntervalKeepingOldKeysAndRetiringBeyond) {
  CookieKeyKeeper k;
  std::vector<std::string> errors;
  ASSERT_TRUE(k.load(nts_, errors));
  k.tick(kT0);
  const uint32_t first = k.sealing_id();
  EXPECT_FALSE(k.tick(kT0 + 86399).changed);
  for (int day = 1; day <= 3; ++day) {
    const CookieKeyKeeper::Tick t = k.tick(kT0 + day * 86400);
    EXPECT_TRUE(t.changed);
    EXPECT_EQ(t.added, k.sealing_id());
  }
  // The current key and two old ones: the first was retired on day 3.
  EXPECT_EQ(ids(k), (std::vector<uint32_t>{first + 1, first + 2, first + 3}));
  CookieKeyKeeper again;
  ASSERT_TRUE(again.load(nts_, errors));
  EXPECT_EQ(ids(again), ids(k));
  // The ring opens what every kept key sealed and seals with the newest.
  EXPECT_EQ(k.ring()->sealing()->id, first + 3);
  EXPECT_NE(k.ring()->find(first + 1), nullptr);
  EXPECT_EQ(k.ring()->find(first), nullptr);
}

TEST_F(CookieKeysTest, RotationOffNeedsTheFileAndNeverWritesIt) {
  nts_.cookie_rotate_s = 0;
  CookieKeyKeeper k;
  std::vector<std::string> errors;
  EXPECT_FALSE(k.load(nts_, errors));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("No such file"), std::string::npos) << errors[0];
  std::vector<crypto::CookieKeyEntry> one(1);
  one[0].id = 5;
  one[0].created_s = kT0;
  std::string err;
  ASSERT_TRUE(crypto::write_cookie_keys(nts_.cookie_keys_file, one, err)) << err;
  errors.clear();
  ASSERT_TRUE(k.load(nts_, errors)) << errors[0];
  EXPECT_FALSE(k.tick(kT0 + 10 * 86400).changed);  // ten days on: still nothing here
  EXPECT_EQ(ids(k), (std::vector<uint32_t>{5}));
}

TEST_F(CookieKeysTest, ABadFileIsRefusedWithItsLineAndTheKeysHeldStay) {
  CookieKeyKeeper k;
  std::vector<std::string> errors;
  ASSERT_TRUE(k.load(nts_, errors));
  k.tick(kT0);
  const uint32_t id = k.sealing_id();
  {
    FILE* f = fopen(nts_.cookie_keys_file.c_str(), "w");
    fputs("1 AES-SIV-CMAC-256 HEX:00 1\n", f);
    fclose(f);
  }
  EXPECT_FALSE(k.load(nts_, errors));
  ASSERT_FALSE(errors.empty());
  EXPECT_NE(errors[0].find(nts_.cookie_keys_file + ":1: "), std::string::npos) << errors[0];
  EXPECT_EQ(k.sealing_id(), id);
}

TEST_F(CookieKeysTest, AnUnwritableDirectoryIsReportedAndTheNewKeyStillUsed) {
  nts_.cookie_keys_file = "/nonexistent-dir-for-test/ntskeys";
  CookieKeyKeeper k;
  std::vector<std::string> errors;
  ASSERT_TRUE(k.load(nts_, errors));
  const CookieKeyKeeper::Tick t = k.tick(kT0);
  EXPECT_TRUE(t.changed);
  EXPECT_NE(t.write_error.find("/nonexistent-dir-for-test/ntskeys"), std::string::npos) << t.write_error;
  EXPECT_NE(k.ring(), nullptr);
}

}  // namespace
}  // namespace ntp::ctl
