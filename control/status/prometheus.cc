// /metrics: the snapshot in the Prometheus text exposition format 0.0.4,
// one family per exported name of the field tables (fields.h).
#include <cstring>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "control/status/fields.h"
#include "control/status/numbers.h"
#include "control/status/status.h"

namespace ntp::status {
namespace {

using detail::double_text;
using detail::seconds_text;
using fields::Labels;
using fields::Unit;

// Replaces invalid UTF-8 with U+FFFD (the exposition format is UTF-8).
std::string utf8_clean(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    bool ok = i + n < s.size();  // the continuation bytes are there
    for (size_t k = 1; ok && k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) ok = false;
      else cp = (cp << 6) | (cc & 0x3F);
    }
    if (ok) {
      static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
      if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) ok = false;
    }
    if (ok) {
      out.append(s.substr(i, n + 1));
      i += n + 1;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

class PromWriter {
 public:
  void family(const char* name, const char* type, const char* help) {
    name_ = name;
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;  // our help texts hold neither backslashes nor newlines
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }

  void sample(const Labels& labels, const std::string& value) {
    std::string series = name_;
    if (!labels.empty()) {
      series += '{';
      bool first = true;
      for (const auto& [k, v] : labels) {
        if (!first) series += ',';
        first = false;
        series += k;
        series += "=\"";
        series += escape(v);
        series += '"';
      }
      series += '}';
    }
    // A duplicate series would make Prometheus reject the whole scrape
    // (two associations or workers with the same identity): keep the first.
    if (!seen_.insert(series).second) return;
    out_ += series;
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }

  std::string take() { return std::move(out_); }

 private:
  static std::string escape(std::string_view raw) {
    const std::string v = utf8_clean(raw);
    std::string o;
    o.reserve(v.size());
    for (char c : v) {
      if (c == '\\') o += "\\\\";
      else if (c == '"') o += "\\\"";
      else if (c == '\n') o += "\\n";
      else o += c;
    }
    return o;
  }

  std::string out_;
  std::string name_;
  std::set<std::string> seen_;
};

template <class S>
std::string value_text(const S& s, const fields::Member<S>& member, Unit unit) {
  return std::visit(
      [&](auto m) -> std::string {
        if constexpr (std::is_same_v<decltype(m), std::monostate>) {
          return "NaN";
        } else {
          const auto& v = s.*m;
          using V = std::remove_cvref_t<decltype(v)>;
          if constexpr (std::is_same_v<V, bool>) {
            return v ? "1" : "0";
          } else if constexpr (std::is_same_v<V, std::optional<bool>>) {
            return v ? (*v ? "1" : "0") : "";  // empty: no sample
          } else if constexpr (std::is_same_v<V, double>) {
            return double_text(unit == Unit::kNsAsSecondsDouble ? v * 1e-9 : v);
          } else if constexpr (std::is_integral_v<V>) {
            if (unit == Unit::kNsAsSeconds) return seconds_text(static_cast<int64_t>(v));
            if (unit == Unit::kMbpsAsBitsPerSecond) return std::to_string(static_cast<uint64_t>(v) * 1000000);
            if constexpr (std::is_signed_v<V>) return std::to_string(static_cast<int64_t>(v));
            else return std::to_string(static_cast<uint64_t>(v));
          } else {
            return "NaN";  // strings and arrays are labels or not exported
          }
        }
      },
      member);
}

// The families of S's table, with one sample per item and row; consecutive
// rows of one family (told apart by their constant label) are one family.
template <class S>
void write_families(PromWriter& w, std::span<const S> items) {
  const auto& t = fields::table<S>();
  const auto& fs = t.fields;
  for (size_t i = 0; i < fs.size();) {
    const char* name = fs[i].metric.name;
    if (!name) {
      ++i;
      continue;
    }
    size_t end = i + 1;
    while (end < fs.size() && fs[end].metric.name && std::strcmp(fs[end].metric.name, name) == 0) ++end;
    w.family(name, fs[i].metric.type, fs[i].metric.help);
    for (const S& s : items)
      for (size_t k = i; k < end; ++k) {
        const auto& m = fs[k].metric;
        Labels l = t.identity ? t.identity(s) : Labels{};
        if (m.label) l.emplace_back(m.label, m.label_value);
        const std::string v = m.value ? m.value(s, l) : value_text(s, fs[k].member, m.unit);
        if (!v.empty()) w.sample(l, v);  // an unknown value has no sample
      }
    i = end;
  }
}

void write_workers(PromWriter& w, const std::vector<WorkerStatus>& workers) {
  write_families<WorkerStatus>(w, workers);
  const auto identity = fields::table<WorkerStatus>().identity;
  for (size_t i = 0; i < proto::kWorkerCounterCount; ++i) {
    const proto::WorkerCounterField& c = proto::kWorkerCounterFields[i];
    w.family(("ntp_worker_" + std::string(c.key) + "_total").c_str(), "counter", c.help);
    for (const auto& wk : workers) w.sample(identity(wk), std::to_string(wk.counters[i]));
  }
  w.family("ntp_worker_drops_total", "counter", "Frames dropped by the worker, by reason.");
  for (const auto& wk : workers)
    for (size_t r = 0; r < proto::kDropReasonCount; ++r) {
      Labels l = identity(wk);
      l.emplace_back("reason", proto::drop_reason_name(static_cast<proto::DropReason>(r)));
      w.sample(l, std::to_string(wk.drops[r]));
    }
}

}  // namespace

std::string to_prometheus(const Status& s) {
  PromWriter w;
  write_families(w, std::span(&s.system, 1));
  write_families<PortStatus>(w, s.ports);
  write_families<SteeredClockStatus>(w, s.steered_clocks);
  write_families<NtsKeStatus>(w, s.nts_ke);
  write_workers(w, s.workers);
  write_families<AssociationStatus>(w, s.associations);
  return w.take();
}

}  // namespace ntp::status
