#include "telemetry.hpp"

#include "check.hpp"
#include "common.hpp"

namespace spawn {

std::vector<GpuProcess> gpu_processes(const nvml::Api& a, nvmlDevice_t d) {
  // MPS allows at most 48 clients per GPU; 256 leaves room without a second call.
  nvmlProcessInfo_t infos[256];
  unsigned count = 256;
  std::vector<GpuProcess> out;
  if (!CHECK(nvml::call(a.DeviceGetComputeRunningProcesses, d, &count, infos))) return out;
  for (unsigned i = 0; i < count; ++i) {
    bool known = infos[i].usedGpuMemory != nvml::kValueNotAvailable;
    out.push_back({infos[i].pid, known, known ? infos[i].usedGpuMemory : 0});
  }
  return out;
}

json::Value sample_line(const nvml::Api& a, const std::vector<nvml::Device>& devices) {
  json::Value line = document("sample");
  line.set("ts_us", now_us());
  json::Array gpus;
  for (const auto& d : devices) {
    json::Value g;
    g.set("index", d.index);
    g.set("uuid", d.uuid);
    nvmlUtilization_t util{};
    bool have_util = CHECK(nvml::call(a.DeviceGetUtilizationRates, d.handle, &util));
    g.set("utilization_gpu_pct", have_util ? json::Value(util.gpu) : json::Value());
    g.set("utilization_memory_pct", have_util ? json::Value(util.memory) : json::Value());
    nvmlMemory_t mem{};
    bool have_mem = CHECK(nvml::call(a.DeviceGetMemoryInfo, d.handle, &mem));
    g.set("memory_used_bytes", have_mem ? json::Value(mem.used) : json::Value());
    g.set("memory_total_bytes", have_mem ? json::Value(mem.total) : json::Value());
    unsigned mw = 0;
    g.set("power_w", CHECK(nvml::call(a.DeviceGetPowerUsage, d.handle, &mw)) ? json::Value(mw / 1000.0)
                                                                            : json::Value());
    unsigned temp = 0;
    g.set("temperature_c", CHECK(nvml::call(a.DeviceGetTemperature, d.handle, nvml::kTemperatureGpu, &temp))
                               ? json::Value(temp)
                               : json::Value());
    unsigned clock = 0;
    g.set("sm_clock_mhz", CHECK(nvml::call(a.DeviceGetClockInfo, d.handle, nvml::kClockSm, &clock))
                              ? json::Value(clock)
                              : json::Value());
    json::Array procs;
    for (const auto& p : gpu_processes(a, d.handle)) {
      json::Value pj;
      pj.set("pid", p.pid);
      pj.set("used_bytes", p.memory_known ? json::Value(p.used_bytes) : json::Value());
      procs.push_back(pj);
    }
    g.set("processes", procs);
    gpus.push_back(g);
  }
  line.set("gpus", gpus);
  return line;
}

std::vector<nvml::Device> select_devices(const nvml::Session& s, const std::string& uuids, const char* flag) {
  auto all = nvml::devices(s);
  if (uuids.empty()) return all;
  std::vector<nvml::Device> out;
  for (const auto& want : split(uuids, ',')) {
    if (want.empty()) throw UsageError(std::string(flag) + " has an empty entry in '" + uuids + "'");
    bool found = false;
    for (const auto& d : all) {
      if (d.uuid == want) {
        out.push_back(d);
        found = true;
      }
    }
    if (!found) {
      std::string known;
      for (const auto& d : all) known += (known.empty() ? "" : ", ") + d.uuid;
      throw UsageError(std::string(flag) + " names " + want + ", which is not a GPU on this machine (GPUs: " +
                       (known.empty() ? "none" : known) + ")");
    }
  }
  return out;
}

}  // namespace spawn
