#include <cuda_runtime_api.h>

#include "check.hpp"
#include "commands.hpp"
#include "common.hpp"
#include "gpu_info.hpp"

namespace spawn {

int cmd_probe(const Args& args) {
  for (const auto& a : args) throw UsageError("probe takes no arguments, got '" + a + "'");
  json::Value doc = document("probe");
  int runtime = 0;
  // The runtime is linked statically, so its version is known even without a driver.
  CHECK(cudaRuntimeGetVersion(&runtime));
  doc.set("cuda_runtime_version", cuda_version_string(runtime));
  std::string reason;
  auto session = nvml::Session::open(reason);
  if (!session) {
    doc.set("gpus", json::Array{});
    doc.set("reason", reason);
    print_json(doc);
    return kExitOk;
  }
  const nvml::Api& a = session->api();
  char driver[96] = {};
  doc.set("driver_version", CHECK(nvml::call(a.SystemGetDriverVersion, driver, static_cast<unsigned>(sizeof driver)))
                                ? json::Value(driver)
                                : json::Value());
  int cuda_driver = 0;
  doc.set("cuda_driver_version", CHECK(nvml::call(a.SystemGetCudaDriverVersion_v2, &cuda_driver))
                                     ? json::Value(cuda_version_string(cuda_driver))
                                     : json::Value());
  doc.set("nvml_library", session->library());
  std::string cuda_reason;
  auto cuda = cuda_devices(cuda_reason);
  json::Value cuda_status;
  cuda_status.set("available", cuda_reason.empty());
  if (!cuda_reason.empty()) cuda_status.set("reason", cuda_reason);
  doc.set("cuda", cuda_status);
  json::Array gpus;
  for (const auto& d : nvml::devices(*session)) gpus.push_back(describe(*session, d, cuda).json);
  if (gpus.empty()) doc.set("reason", "the NVIDIA driver is loaded but reports no GPU");
  doc.set("gpus", gpus);
  print_json(doc);
  return kExitOk;
}

}  // namespace spawn
