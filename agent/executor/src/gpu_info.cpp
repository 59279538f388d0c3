#include "gpu_info.hpp"

#include <cuda_runtime_api.h>

#include <cstdio>

#include "check.hpp"
#include "common.hpp"

namespace spawn {
namespace {

std::string format_uuid(const cudaUUID_t& u) {
  const auto* b = reinterpret_cast<const unsigned char*>(u.bytes);
  char buf[48];
  std::snprintf(buf, sizeof buf, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return buf;
}

json::Value peak(std::optional<double> value, const std::string& source) {
  json::Value p;
  p.set("value", value);
  p.set("source", source);
  return p;
}

// Per-lane, per-direction PCIe data rate after line encoding, in bytes/s.
std::optional<double> pcie_lane_bytes_per_s(unsigned gen) {
  switch (gen) {
    case 1: return 2.5e9 * 8 / 10 / 8;
    case 2: return 5e9 * 8 / 10 / 8;
    case 3: return 8e9 * 128 / 130 / 8;
    case 4: return 16e9 * 128 / 130 / 8;
    case 5: return 32e9 * 128 / 130 / 8;
    case 6: return 64e9 * 242 / 256 / 8;
    default: return std::nullopt;
  }
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

std::string cuda_version_string(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }

std::vector<CudaDevice> cuda_devices(std::string& reason) {
  std::vector<CudaDevice> out;
  try {
    int n = 0;
    CHECK(cudaGetDeviceCount(&n));
    for (int i = 0; i < n; ++i) {
      cudaDeviceProp p{};
      CHECK(cudaGetDeviceProperties(&p, i));
      out.push_back({i, format_uuid(p.uuid), p.multiProcessorCount, p.major, p.minor});
    }
  } catch (const ApiError& e) {
    reason = std::string("CUDA runtime unavailable: ") + e.what();
    out.clear();
  }
  return out;
}

const json::Value& sku_for(const std::string& name) {
  static const json::Value none;
  for (const auto& sku : sku_data()["skus"].array()) {
    std::string match = sku["match"].string();
    if (!match.empty() && name.find(match) != std::string::npos) return sku;
  }
  return none;
}

double threshold(const std::string& gpu_name, const std::string& key, const char* level) {
  const json::Value& own = sku_for(gpu_name)["thresholds"][key];
  const json::Value& def = sku_data()["defaults"][key];
  const json::Value& v = own.is_null() ? def : own;
  return level == nullptr ? v.number() : v[level].number();
}

GpuInfo describe(const nvml::Session& s, const nvml::Device& d, const std::vector<CudaDevice>& cuda) {
  const nvml::Api& a = s.api();
  GpuInfo g{d, std::nullopt, std::nullopt, std::nullopt, {}, {}};
  for (const auto& c : cuda) {
    if (c.uuid == d.uuid) g.cuda = c;
  }
  json::Value j;
  j.set("index", d.index);
  j.set("uuid", d.uuid);
  j.set("name", d.name);

  int major = 0, minor = 0;
  if (g.cuda) {
    major = g.cuda->major;
    minor = g.cuda->minor;
  } else if (!CHECK(nvml::call(a.DeviceGetCudaComputeCapability, d.handle, &major, &minor))) {
    major = 0;
  }
  if (major > 0) g.compute_capability = std::to_string(major) + "." + std::to_string(minor);
  j.set("compute_capability", g.compute_capability);
  const json::Value& arch = g.compute_capability ? sku_data()["arch"][*g.compute_capability] : json::Value();

  json::Value sm;
  if (g.cuda) {
    g.sm_count = g.cuda->sm_count;
    sm.set("value", g.cuda->sm_count);
    sm.set("source", "cudaDeviceProp.multiProcessorCount");
  } else {
    unsigned cores = 0;
    double lanes = arch["fp32_lanes_per_sm"].number();
    if (lanes > 0 && CHECK(nvml::call(a.DeviceGetNumGpuCores, d.handle, &cores)) && cores > 0) {
      g.sm_count = static_cast<int>(cores / lanes);
      sm.set("value", *g.sm_count);
      sm.set("source", "nvmlDeviceGetNumGpuCores / FP32 lanes per SM (sku-data.json arch table)");
    } else {
      sm.set("value", nullptr);
      sm.set("source", "unavailable without the CUDA runtime");
    }
  }
  j.set("sm_count", sm);

  nvmlMemory_t mem{};
  j.set("memory_total_bytes", CHECK(nvml::call(a.DeviceGetMemoryInfo, d.handle, &mem)) ? json::Value(mem.total)
                                                                                       : json::Value());
  unsigned sm_max = 0, mem_max = 0, sm_cur = 0, mem_cur = 0, bus = 0;
  bool have_sm_max = CHECK(nvml::call(a.DeviceGetMaxClockInfo, d.handle, nvml::kClockSm, &sm_max));
  bool have_mem_max = CHECK(nvml::call(a.DeviceGetMaxClockInfo, d.handle, nvml::kClockMem, &mem_max));
  bool have_sm_cur = CHECK(nvml::call(a.DeviceGetClockInfo, d.handle, nvml::kClockSm, &sm_cur));
  bool have_mem_cur = CHECK(nvml::call(a.DeviceGetClockInfo, d.handle, nvml::kClockMem, &mem_cur));
  bool have_bus = CHECK(nvml::call(a.DeviceGetMemoryBusWidth, d.handle, &bus));
  json::Value clocks;
  clocks.set("sm_max_mhz", have_sm_max ? json::Value(sm_max) : json::Value());
  clocks.set("memory_max_mhz", have_mem_max ? json::Value(mem_max) : json::Value());
  clocks.set("sm_current_mhz", have_sm_cur ? json::Value(sm_cur) : json::Value());
  clocks.set("memory_current_mhz", have_mem_cur ? json::Value(mem_cur) : json::Value());
  j.set("clocks", clocks);
  j.set("memory_bus_width_bits", have_bus ? json::Value(bus) : json::Value());

  int ecc_cur = 0, ecc_pend = 0;
  json::Value ecc;
  if (CHECK(nvml::call(a.DeviceGetEccMode, d.handle, &ecc_cur, &ecc_pend))) {
    ecc.set("enabled", ecc_cur != 0);
    ecc.set("pending_enabled", ecc_pend != 0);
  } else {
    ecc.set("enabled", nullptr);
  }
  j.set("ecc", ecc);
  unsigned mig_cur = 0, mig_pend = 0;
  json::Value mig;
  if (CHECK(nvml::call(a.DeviceGetMigMode, d.handle, &mig_cur, &mig_pend))) {
    mig.set("enabled", mig_cur != 0);
    mig.set("pending_enabled", mig_pend != 0);
  } else {
    mig.set("enabled", nullptr);
  }
  j.set("mig", mig);

  unsigned gen = 0, width = 0, max_gen = 0, max_width = 0;
  bool have_gen = CHECK(nvml::call(a.DeviceGetCurrPcieLinkGeneration, d.handle, &gen));
  bool have_width = CHECK(nvml::call(a.DeviceGetCurrPcieLinkWidth, d.handle, &width));
  bool have_max_gen = CHECK(nvml::call(a.DeviceGetMaxPcieLinkGeneration, d.handle, &max_gen));
  bool have_max_width = CHECK(nvml::call(a.DeviceGetMaxPcieLinkWidth, d.handle, &max_width));
  json::Value pcie;
  pcie.set("current_generation", have_gen ? json::Value(gen) : json::Value());
  pcie.set("current_width", have_width ? json::Value(width) : json::Value());
  pcie.set("max_generation", have_max_gen ? json::Value(max_gen) : json::Value());
  pcie.set("max_width", have_max_width ? json::Value(max_width) : json::Value());
  j.set("pcie", pcie);

  // Peaks. Every number says where it came from.
  Peaks& p = g.peaks;
  if (have_mem_max && have_bus) {
    p.memory_bytes_per_s = 2.0 * mem_max * 1e6 * bus / 8;
    p.json.set("memory_bandwidth_bytes_per_s",
               peak(p.memory_bytes_per_s, "derived: 2 (double data rate) x " + std::to_string(mem_max) +
                                              " MHz (NVML max memory clock) x " + std::to_string(bus) +
                                              " bit (NVML bus width) / 8"));
  } else {
    p.json.set("memory_bandwidth_bytes_per_s", peak(std::nullopt, "unavailable: NVML gave no memory clock or bus width"));
  }
  double tensor = arch["tensor_fp16_dense_flops_per_clock_per_sm"].number();
  double lanes = arch["fp32_lanes_per_sm"].number();
  std::string cc = g.compute_capability.value_or("unknown");
  if (g.sm_count && have_sm_max && tensor > 0) {
    p.tensor_bf16_flops = *g.sm_count * tensor * sm_max * 1e6;
    std::string src = "derived: " + std::to_string(*g.sm_count) + " SMs x " + fmt(tensor) +
                      " dense FLOP/clock/SM (sku-data.json arch " + cc + ": " + arch["source"].string() + ") x " +
                      std::to_string(sm_max) + " MHz (NVML max SM clock)";
    p.json.set("bf16_dense_flops", peak(p.tensor_bf16_flops, src));
    p.json.set("fp16_dense_flops", peak(p.tensor_bf16_flops, src + "; FP16 runs at the BF16 rate"));
  } else {
    p.json.set("bf16_dense_flops", peak(std::nullopt, "unavailable: no tensor-core rate for sm " + cc + " or no clock"));
    p.json.set("fp16_dense_flops", peak(std::nullopt, "unavailable: no tensor-core rate for sm " + cc + " or no clock"));
  }
  if (g.sm_count && have_sm_max && lanes > 0) {
    p.fp32_flops = *g.sm_count * lanes * 2 * sm_max * 1e6;
    p.json.set("fp32_flops", peak(p.fp32_flops, "derived: " + std::to_string(*g.sm_count) + " SMs x " + fmt(lanes) +
                                                    " FP32 lanes x 2 (FMA) x " + std::to_string(sm_max) +
                                                    " MHz (NVML max SM clock)"));
  } else {
    p.json.set("fp32_flops", peak(std::nullopt, "unavailable: no FP32 lane count for sm " + cc + " or no clock"));
  }
  std::optional<double> lane = have_max_gen ? pcie_lane_bytes_per_s(max_gen) : std::nullopt;
  if (lane && have_max_width) {
    p.pcie_bytes_per_s = *lane * max_width;
    p.json.set("pcie_bytes_per_s",
               peak(p.pcie_bytes_per_s, "derived: PCIe gen " + std::to_string(max_gen) + " x" +
                                            std::to_string(max_width) +
                                            " (NVML max link) per-lane rate after encoding, one direction"));
  } else {
    p.json.set("pcie_bytes_per_s", peak(std::nullopt, "unavailable: NVML gave no PCIe link generation or width"));
  }
  j.set("peaks", p.json);
  const json::Value& sku = sku_for(d.name);
  j.set("datasheet", sku["datasheet"]);
  g.json = j;
  return g;
}

}  // namespace spawn
