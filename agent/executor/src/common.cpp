#include "common.hpp"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "sku_data.hpp"

namespace spawn {

namespace {
double parse_number_prefix(const std::string& flag, const std::string& text, std::string& unit) {
  const char* start = text.c_str();
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(start, &end);
  if (end == start || errno != 0 || !std::isfinite(v) || v < 0) {
    throw UsageError(flag + " must be a non-negative number with an optional unit, got '" + text + "'");
  }
  unit = end;
  return v;
}
}  // namespace

uint64_t parse_size(const std::string& flag, const std::string& text) {
  std::string unit;
  double v = parse_number_prefix(flag, text, unit);
  double mult = 0;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "K" || unit == "KiB" || unit == "k") mult = 1024.0;
  else if (unit == "M" || unit == "MiB") mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB") mult = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "TiB") mult = 1024.0 * 1024 * 1024 * 1024;
  else throw UsageError(flag + " has an unknown unit '" + unit + "' in '" + text + "' (use B, KiB, MiB, GiB or TiB)");
  double bytes = v * mult;
  if (bytes < 1) throw UsageError(flag + " must be at least 1 byte, got '" + text + "'");
  return static_cast<uint64_t>(bytes);
}

double parse_seconds(const std::string& flag, const std::string& text) {
  std::string unit;
  double v = parse_number_prefix(flag, text, unit);
  if (unit.empty() || unit == "s") return v;
  if (unit == "ms") return v / 1000;
  if (unit == "m") return v * 60;
  if (unit == "h") return v * 3600;
  throw UsageError(flag + " has an unknown unit '" + unit + "' in '" + text + "' (use ms, s, m or h)");
}

long parse_int(const std::string& flag, const std::string& text, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v < lo || v > hi) {
    throw UsageError(flag + " must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi) +
                     ", got '" + text + "'");
  }
  return v;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

double mono_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

void print_json(const json::Value& v) {
  std::string s = v.dump();
  s += '\n';
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

json::Value document(const char* type) {
  json::Value d;
  d.set("schema", kSchema);
  d.set("type", type);
  return d;
}

const json::Value& sku_data() {
  static const json::Value data = [] {
    const char* path = std::getenv("SPAWN_EXECUTOR_SKU_DATA");
    if (path == nullptr || *path == '\0') return json::parse(kSkuDataJson);
    std::ifstream in(path);
    if (!in) throw UsageError(std::string("SPAWN_EXECUTOR_SKU_DATA names a file that cannot be read: ") + path);
    std::stringstream ss;
    ss << in.rdbuf();
    try {
      return json::parse(ss.str());
    } catch (const std::runtime_error& e) {
      throw UsageError(std::string("SPAWN_EXECUTOR_SKU_DATA file ") + path + ": " + e.what());
    }
  }();
  return data;
}

}  // namespace spawn
