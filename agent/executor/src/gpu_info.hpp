// What the executor knows about each GPU: NVML's view joined with the CUDA runtime's, the
// theoretical peaks derived from clocks and bus width, and the SKU's datasheet and thresholds.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "json.hpp"
#include "nvml.hpp"

namespace spawn {

struct CudaDevice {
  int index;
  std::string uuid;  // "GPU-xxxxxxxx-...", the same string NVML reports
  int sm_count;
  int major;
  int minor;
};

// CUDA devices by UUID. Never throws: without a usable driver it returns an empty list and sets
// `reason`.
std::vector<CudaDevice> cuda_devices(std::string& reason);

// Peaks derived for one GPU; null when an input is unknown.
struct Peaks {
  std::optional<double> memory_bytes_per_s;
  std::optional<double> tensor_bf16_flops;
  std::optional<double> fp32_flops;
  std::optional<double> pcie_bytes_per_s;  // one direction, after encoding overhead
  json::Value json;                        // the same with sources, for output
};

struct GpuInfo {
  nvml::Device device;
  std::optional<CudaDevice> cuda;
  std::optional<std::string> compute_capability;
  std::optional<int> sm_count;
  Peaks peaks;
  json::Value json;  // the probe's object for this GPU
};

GpuInfo describe(const nvml::Session& s, const nvml::Device& d, const std::vector<CudaDevice>& cuda);

// The first SKU entry of sku-data.json whose `match` occurs in `name`, or null.
const json::Value& sku_for(const std::string& name);
// One threshold: the SKU's value if it sets one, else the default.
double threshold(const std::string& gpu_name, const std::string& key, const char* level = nullptr);

// "13.0" from 13000 (CUDA's integer version encoding).
std::string cuda_version_string(int v);

}  // namespace spawn
