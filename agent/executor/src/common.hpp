// Exit codes, option parsing helpers and clocks shared by the subcommands.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "json.hpp"

namespace spawn {

// Exit codes (also in --help and docs/executor.md). `run` returns its child's status instead
// once the child has started.
inline constexpr int kExitOk = 0;
inline constexpr int kExitHealthFail = 1;  // health: at least one GPU's verdict is `fail`
inline constexpr int kExitUsage = 2;       // bad arguments or input files
inline constexpr int kExitNoGpu = 3;       // no driver / NVML, or no GPU to work on
inline constexpr int kExitInternal = 4;    // an unexpected CUDA or NVML error
inline constexpr int kExitCannotExec = 126;
inline constexpr int kExitNotFound = 127;

// Version of every JSON document this binary writes; bump on an incompatible change.
inline constexpr int kSchema = 1;

// A user mistake: printed as `spawn-executor: <message>` with exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Parses sizes such as 20GiB, 512MiB, 1.5G, 1000000 (bytes). Binary units for both Gi and G,
// as nvidia-smi and CUDA report memory in MiB.
uint64_t parse_size(const std::string& flag, const std::string& text);
// Parses durations such as 1s, 500ms, 2m, 0.5s; a bare number is seconds.
double parse_seconds(const std::string& flag, const std::string& text);
// Parses an integer in [lo, hi].
long parse_int(const std::string& flag, const std::string& text, long lo, long hi);
std::vector<std::string> split(const std::string& s, char sep);

// Microseconds since the Unix epoch (trace timestamps line up across instances).
int64_t now_us();
// Seconds on a monotonic clock (intervals and deadlines).
double mono_s();

// Writes one JSON document and a newline to stdout, flushed.
void print_json(const json::Value& v);
// Builds the header every document starts with.
json::Value document(const char* type);

// The embedded per-architecture and per-SKU data file (sku-data.json), or the file named by
// SPAWN_EXECUTOR_SKU_DATA.
const json::Value& sku_data();

}  // namespace spawn
