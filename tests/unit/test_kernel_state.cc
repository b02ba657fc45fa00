// The host kernel clock's state (hwclock/kernel_state.h) from constructed
// struct timex values, as chronyd, ntpd or phc2sys leave them; and the
// read-only reader on this host (it may be in any state: only that it
// reads and changes nothing).
#include "hwclock/kernel_state.h"

#include <gtest/gtest.h>

namespace ntp::hwclock {
namespace {

struct timex tx_with(int status, long maxerror_us, long esterror_us) {
  struct timex tx {};
  tx.status = status;
  tx.maxerror = maxerror_us;
  tx.esterror = esterror_us;
  return tx;
}

TEST(KernelState, SynchronizedUnlessUnsyncOrTimeError) {
  // chronyd synchronized: PLL, no STA_UNSYNC, TIME_OK.
  KernelClockState s = kernel_clock_state(tx_with(STA_PLL, 1'500, 20), TIME_OK);
  EXPECT_TRUE(s.synchronized);
  EXPECT_EQ(s.max_error_ns, 1'500'000);
  EXPECT_EQ(s.est_error_ns, 20'000);
  EXPECT_EQ(s.leap, 0);
  // A fresh boot, nobody disciplining: STA_UNSYNC, maxerror 16 s.
  s = kernel_clock_state(tx_with(STA_UNSYNC, 16'000'000, 16'000'000), TIME_ERROR);
  EXPECT_FALSE(s.synchronized);
  EXPECT_EQ(s.max_error_ns, 16'000'000'000);
  // TIME_ERROR without STA_UNSYNC (a PPS signal lost): not synchronized either.
  EXPECT_FALSE(kernel_clock_state(tx_with(STA_PPSSIGNAL, 10, 1), TIME_ERROR).synchronized);
  // STA_UNSYNC with a state that says otherwise: the flag wins.
  EXPECT_FALSE(kernel_clock_state(tx_with(STA_UNSYNC | STA_PLL, 10, 1), TIME_OK).synchronized);
}

TEST(KernelState, LeapFromInsAndDel) {
  EXPECT_EQ(kernel_clock_state(tx_with(STA_PLL | STA_INS, 10, 1), TIME_INS).leap, 1);
  EXPECT_EQ(kernel_clock_state(tx_with(STA_PLL | STA_DEL, 10, 1), TIME_DEL).leap, -1);
  EXPECT_EQ(kernel_clock_state(tx_with(STA_PLL | STA_INS | STA_DEL, 10, 1), TIME_OK).leap, 0);
  // In the inserted second (TIME_OOP) the flag is still set: still +1.
  EXPECT_EQ(kernel_clock_state(tx_with(STA_INS, 10, 1), TIME_OOP).leap, 1);
}

TEST(KernelState, NanoModeKeepsErrorsInMicroseconds) {
  const KernelClockState s = kernel_clock_state(tx_with(STA_PLL | STA_NANO, 7, 3), TIME_OK);
  EXPECT_EQ(s.max_error_ns, 7'000);
  EXPECT_EQ(s.est_error_ns, 3'000);
}

TEST(KernelState, ReaderAgreesWithTheKernel) {
  KernelClockState s;
  std::string err;
  ASSERT_TRUE(read_kernel_clock_state(s, err)) << err;
  struct timex tx {};  // modes = 0: a read
  const int state = adjtimex(&tx);
  ASSERT_GE(state, 0);
  EXPECT_EQ(s.synchronized, !(tx.status & STA_UNSYNC) && state != TIME_ERROR);
  EXPECT_GE(s.max_error_ns, 0);
}

}  // namespace
}  // namespace ntp::hwclock
