// Maps each hardware-timestamping port's NIC clock to the TSC: the main
// lcore runs a round of cross-timestamps per port every 100 ms and
// publishes the fit to the workers through a seqlock per port.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <vector>

#include "dataplane/port.h"
#include "hwclock/nic_clock.h"
#include "proto/channel_abi.h"
#include "proto/seqlock.h"

namespace ntp::dp {

class NicClockSampler {
 public:
  static constexpr double kPeriodS = 0.1;

  // ports: the dataplane's, indexed as in the segment; outlives the sampler.
  NicClockSampler(std::vector<Port>& ports, double tsc_hz);

  // The map a worker reads for port i; null for a port without hardware
  // timestamps. Valid for the sampler's lifetime.
  const proto::Seqlock<hwclock::NicToTscMap>* map(size_t i) const { return mappers_[i] ? &maps_[i] : nullptr; }

  // One round on every hardware port: publish the refined map and report
  // the fit's figures in the segment's port info.
  void sample(proto::SegmentHeader& seg);

 private:
  std::vector<Port>& ports_;
  std::array<std::unique_ptr<hwclock::NicClockMapper>, proto::kMaxPorts> mappers_;
  std::array<proto::Seqlock<hwclock::NicToTscMap>, proto::kMaxPorts> maps_;
  double tsc_ghz_;
};

}  // namespace ntp::dp
