// NVML telemetry shared by `sample` and `run --samples`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "json.hpp"
#include "nvml.hpp"

namespace spawn {

struct GpuProcess {
  unsigned pid;
  // Null when the driver cannot attribute memory to the process (no permission, vGPU).
  bool memory_known;
  uint64_t used_bytes;
};

// Compute processes on one GPU, as NVML lists them.
std::vector<GpuProcess> gpu_processes(const nvml::Api& a, nvmlDevice_t d);

// One `sample` line: {"schema","type":"sample","ts_us","gpus":[...]} for the given devices.
json::Value sample_line(const nvml::Api& a, const std::vector<nvml::Device>& devices);

// Devices named by a comma-separated UUID list (empty: all). Throws UsageError naming an
// unknown UUID.
std::vector<nvml::Device> select_devices(const nvml::Session& s, const std::string& uuids, const char* flag);

}  // namespace spawn
