#include "nvml.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <utility>

#include "check.hpp"

namespace spawn::nvml {
namespace {

const Api* g_api = nullptr;

template <typename Fn>
void bind(void* handle, Fn*& slot, const char* name) {
  slot = reinterpret_cast<Fn*>(dlsym(handle, name));
}

Api load(void* h) {
  Api a{};
  bind(h, a.Init_v2, "nvmlInit_v2");
  bind(h, a.Shutdown, "nvmlShutdown");
  bind(h, a.ErrorString, "nvmlErrorString");
  bind(h, a.SystemGetDriverVersion, "nvmlSystemGetDriverVersion");
  bind(h, a.SystemGetCudaDriverVersion_v2, "nvmlSystemGetCudaDriverVersion_v2");
  bind(h, a.DeviceGetCount_v2, "nvmlDeviceGetCount_v2");
  bind(h, a.DeviceGetHandleByIndex_v2, "nvmlDeviceGetHandleByIndex_v2");
  bind(h, a.DeviceGetHandleByUUID, "nvmlDeviceGetHandleByUUID");
  bind(h, a.DeviceGetUUID, "nvmlDeviceGetUUID");
  bind(h, a.DeviceGetName, "nvmlDeviceGetName");
  bind(h, a.DeviceGetMemoryInfo, "nvmlDeviceGetMemoryInfo");
  bind(h, a.DeviceGetUtilizationRates, "nvmlDeviceGetUtilizationRates");
  bind(h, a.DeviceGetPowerUsage, "nvmlDeviceGetPowerUsage");
  bind(h, a.DeviceGetTemperature, "nvmlDeviceGetTemperature");
  bind(h, a.DeviceGetClockInfo, "nvmlDeviceGetClockInfo");
  bind(h, a.DeviceGetMaxClockInfo, "nvmlDeviceGetMaxClockInfo");
  bind(h, a.DeviceGetMemoryBusWidth, "nvmlDeviceGetMemoryBusWidth");
  bind(h, a.DeviceGetCudaComputeCapability, "nvmlDeviceGetCudaComputeCapability");
  bind(h, a.DeviceGetNumGpuCores, "nvmlDeviceGetNumGpuCores");
  bind(h, a.DeviceGetEccMode, "nvmlDeviceGetEccMode");
  bind(h, a.DeviceGetMigMode, "nvmlDeviceGetMigMode");
  bind(h, a.DeviceGetCurrPcieLinkGeneration, "nvmlDeviceGetCurrPcieLinkGeneration");
  bind(h, a.DeviceGetCurrPcieLinkWidth, "nvmlDeviceGetCurrPcieLinkWidth");
  bind(h, a.DeviceGetMaxPcieLinkGeneration, "nvmlDeviceGetMaxPcieLinkGeneration");
  bind(h, a.DeviceGetMaxPcieLinkWidth, "nvmlDeviceGetMaxPcieLinkWidth");
  // _v3 and _v2 fill the same struct; older drivers only have _v2.
  bind(h, a.DeviceGetComputeRunningProcesses, "nvmlDeviceGetComputeRunningProcesses_v3");
  if (a.DeviceGetComputeRunningProcesses == nullptr) {
    bind(h, a.DeviceGetComputeRunningProcesses, "nvmlDeviceGetComputeRunningProcesses_v2");
  }
  bind(h, a.DeviceGetTotalEccErrors, "nvmlDeviceGetTotalEccErrors");
  bind(h, a.DeviceGetRemappedRows, "nvmlDeviceGetRemappedRows");
  bind(h, a.DeviceGetRetiredPages, "nvmlDeviceGetRetiredPages");
  bind(h, a.DeviceGetRetiredPagesPendingStatus, "nvmlDeviceGetRetiredPagesPendingStatus");
  bind(h, a.EventSetCreate, "nvmlEventSetCreate");
  bind(h, a.DeviceRegisterEvents, "nvmlDeviceRegisterEvents");
  bind(h, a.EventSetWait_v2, "nvmlEventSetWait_v2");
  bind(h, a.EventSetFree, "nvmlEventSetFree");
  return a;
}

}  // namespace

const Api* loaded_api() { return g_api; }

std::unique_ptr<Session> Session::open(std::string& reason) {
  // SPAWN_NVML_LIBRARY points the executor at another library (the tests' fake NVML).
  const char* override_path = std::getenv("SPAWN_NVML_LIBRARY");
  std::string path = override_path != nullptr && *override_path != '\0' ? override_path : "libnvidia-ml.so.1";
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = dlerror();
    reason = "no NVIDIA driver: cannot load " + path + (err != nullptr ? std::string(" (") + err + ")" : "");
    return nullptr;
  }
  Api api = load(handle);
  if (api.Init_v2 == nullptr || api.DeviceGetCount_v2 == nullptr || api.DeviceGetHandleByIndex_v2 == nullptr) {
    reason = path + " is not a usable NVML library (nvmlInit_v2 or device enumeration missing)";
    dlclose(handle);
    return nullptr;
  }
  nvmlReturn_t r = api.Init_v2();
  if (r != NVML_SUCCESS) {
    const char* message = api.ErrorString != nullptr ? api.ErrorString(r) : "unknown error";
    reason = std::string("NVML did not initialise: ") + message + " (nvmlInit_v2 returned " + std::to_string(r) +
             "; is the NVIDIA kernel driver loaded?)";
    dlclose(handle);
    return nullptr;
  }
  return std::unique_ptr<Session>(new Session(handle, api, path));
}

Session::Session(void* handle, const Api& api, std::string library)
    : handle_(handle), api_(api), library_(std::move(library)) {
  g_api = &api_;
}

Session::Session(Session&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)), api_(other.api_), library_(std::move(other.library_)) {
  if (g_api == &other.api_) g_api = &api_;
}

Session& Session::operator=(Session&& other) noexcept {
  if (this != &other) {
    close();
    handle_ = std::exchange(other.handle_, nullptr);
    api_ = other.api_;
    library_ = std::move(other.library_);
    if (g_api == &other.api_) g_api = &api_;
  }
  return *this;
}

Session::~Session() { close(); }

void Session::close() noexcept {
  if (handle_ == nullptr) return;
  if (api_.Shutdown != nullptr) api_.Shutdown();
  if (g_api == &api_) g_api = nullptr;
  dlclose(handle_);
  handle_ = nullptr;
}

std::vector<Device> devices(const Session& s) {
  const Api& a = s.api();
  unsigned count = 0;
  CHECK(a.DeviceGetCount_v2(&count));
  std::vector<Device> out;
  for (unsigned i = 0; i < count; ++i) {
    Device d{i, nullptr, "", ""};
    CHECK(a.DeviceGetHandleByIndex_v2(i, &d.handle));
    char buf[128] = {};
    if (CHECK(call(a.DeviceGetUUID, d.handle, buf, static_cast<unsigned>(sizeof buf)))) d.uuid = buf;
    char name[128] = {};
    if (CHECK(call(a.DeviceGetName, d.handle, name, static_cast<unsigned>(sizeof name)))) d.name = name;
    out.push_back(d);
  }
  return out;
}

}  // namespace spawn::nvml
