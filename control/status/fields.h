// The field tables of the status snapshot: each field of each status struct
// once, with its JSON key and, where /metrics exports it, its Prometheus
// family, type, help and unit. json.cc (both ways) and prometheus.cc walk
// these tables; a worker's counters come from proto::kWorkerCounterFields.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "control/status/status.h"

namespace ntp::status::fields {

using Labels = std::vector<std::pair<const char*, std::string>>;

// How a field's value is written as a Prometheus sample.
enum class Unit : uint8_t {
  kAsIs,                 // integers in decimal, doubles shortest, booleans 0/1
  kNsAsSeconds,          // integer ns as exact decimal seconds
  kNsAsSecondsDouble,    // double ns as seconds
  kMbpsAsBitsPerSecond,
};

template <class S>
struct Metric {
  const char* name = nullptr;  // family; nullptr: not exported
  const char* type = "gauge";
  const char* help = "";       // consecutive rows of one family share the first row's
  Unit unit = Unit::kAsIs;
  // A constant label that tells consecutive rows of one family apart ("kind", "hardware").
  const char* label = nullptr;
  const char* label_value = nullptr;
  // Instead of the field: a value computed from the whole struct, with the
  // labels it adds after the struct's identity (info families, derived gauges).
  std::string (*value)(const S&, Labels&) = nullptr;
};

template <class S>
using Member = std::variant<std::monostate, std::string S::*, bool S::*, double S::*, uint8_t S::*, int8_t S::*,
                            uint16_t S::*, int32_t S::*, uint32_t S::*, int64_t S::*, uint64_t S::*,
                            std::vector<FilterStage> S::*, std::vector<LimitedSourceStatus> S::*,
                            std::optional<bool> S::*>;  // JSON null when empty; no /metrics sample then

template <class S>
struct Field {
  const char* key = nullptr;  // JSON key; nullptr: a Prometheus family of the whole struct only
  Member<S> member{};
  bool required = false;      // from_json fails without it
  Metric<S> metric{};
};

template <class S>
struct Table {
  std::span<const Field<S>> fields;
  Labels (*identity)(const S&) = nullptr;  // labels of each of its samples (port, worker, ...)
};

template <class S>
const Table<S>& table();
template <>
const Table<SystemStatus>& table<SystemStatus>();
template <>
const Table<PortStatus>& table<PortStatus>();
template <>
const Table<WorkerStatus>& table<WorkerStatus>();  // the id; counters and drops by proto's tables
template <>
const Table<AssociationStatus>& table<AssociationStatus>();
template <>
const Table<FilterStage>& table<FilterStage>();
template <>
const Table<SteeredClockStatus>& table<SteeredClockStatus>();
template <>
const Table<LimitedSourceStatus>& table<LimitedSourceStatus>();
template <>
const Table<NtsKeStatus>& table<NtsKeStatus>();

}  // namespace ntp::status::fields
