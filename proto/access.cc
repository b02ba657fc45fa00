#include "proto/access.h"

#include <algorithm>
#include <array>

namespace ntp::proto {

namespace {

// The class that decides where several lists cover an address.
int precedence(AccessClass c) { return static_cast<int>(c); }  // enum order; kDeny is last and highest

constexpr const char* kNames[kAccessClassCount] = {"query", "limited", "synchronization", "server", "peer", "deny"};

}  // namespace

const char* to_string(AccessClass c) {
  const auto i = static_cast<size_t>(c);
  return i < kAccessClassCount ? kNames[i] : "?";
}

bool access_class_from_string(const std::string& s, AccessClass& out) {
  for (size_t i = 0; i < kAccessClassCount; i++)
    if (s == kNames[i]) {
      out = static_cast<AccessClass>(i);
      return true;
    }
  return false;
}

AccessTable::AccessTable(const std::vector<AccessRule>& rules, AccessClass default_class) : default_(default_class) {
  // A sweep over the rules' boundaries (in 64 bits: a range may end at
  // 255.255.255.255): between two boundaries the covering set is constant,
  // and the highest class in it decides.
  struct Edge {
    uint64_t at;
    int cls;
    int delta;
  };
  std::vector<Edge> edges;
  edges.reserve(rules.size() * 2);
  for (const AccessRule& r : rules) {
    const uint64_t size = r.len == 0 ? (uint64_t{1} << 32) : (uint64_t{1} << (32 - std::min<int>(r.len, 32)));
    const uint64_t start = r.net & ~static_cast<uint32_t>(size - 1);
    edges.push_back({start, precedence(r.cls), +1});
    edges.push_back({start + size, precedence(r.cls), -1});
  }
  std::sort(edges.begin(), edges.end(), [](const Edge& a, const Edge& b) { return a.at < b.at; });
  std::array<int, kAccessClassCount> cover{};
  for (size_t i = 0; i < edges.size();) {
    const uint64_t at = edges[i].at;
    for (; i < edges.size() && edges[i].at == at; i++) cover[static_cast<size_t>(edges[i].cls)] += edges[i].delta;
    if (i == edges.size() || at > 0xFFFFFFFFull) break;
    const uint64_t next = edges[i].at;
    int best = -1;
    for (int c = static_cast<int>(kAccessClassCount) - 1; c >= 0 && best < 0; c--)
      if (cover[static_cast<size_t>(c)] > 0) best = c;
    if (best < 0) continue;  // a gap: the default class
    const auto cls = static_cast<AccessClass>(best);
    const auto first = static_cast<uint32_t>(at);
    const auto last = static_cast<uint32_t>(std::min<uint64_t>(next, uint64_t{1} << 32) - 1);
    // Adjacent ranges of one class are one range.
    if (!starts_.empty() && classes_.back() == cls && uint64_t{ends_.back()} + 1 == first) {
      ends_.back() = last;
      continue;
    }
    starts_.push_back(first);
    ends_.push_back(last);
    classes_.push_back(cls);
  }
}

}  // namespace ntp::proto
