// The subset of NVML that spawn-executor uses, declared here (no nvml.h at build time) and
// resolved at run time with dlopen("libnvidia-ml.so.1"), so the binary has no link-time
// dependency on the driver and can say plainly when there is none.
#pragma once

#include <memory>
#include <string>
#include <vector>

extern "C" {
enum nvmlReturn_t : int {
  NVML_SUCCESS = 0,
  NVML_ERROR_UNINITIALIZED = 1,
  NVML_ERROR_INVALID_ARGUMENT = 2,
  NVML_ERROR_NOT_SUPPORTED = 3,
  NVML_ERROR_NO_PERMISSION = 4,
  NVML_ERROR_NOT_FOUND = 6,
  NVML_ERROR_INSUFFICIENT_SIZE = 7,
  NVML_ERROR_DRIVER_NOT_LOADED = 9,
  NVML_ERROR_TIMEOUT = 10,
  NVML_ERROR_LIBRARY_NOT_FOUND = 12,
  NVML_ERROR_FUNCTION_NOT_FOUND = 13,
  NVML_ERROR_GPU_IS_LOST = 15,
  NVML_ERROR_NO_DATA = 21,
  NVML_ERROR_UNKNOWN = 999,
};

struct nvmlDevice_st;
using nvmlDevice_t = nvmlDevice_st*;
struct nvmlEventSet_st;
using nvmlEventSet_t = nvmlEventSet_st*;

struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
struct nvmlUtilization_t {
  unsigned int gpu;
  unsigned int memory;
};
// Layout of nvmlProcessInfo_v2_t, which nvmlDeviceGetComputeRunningProcesses_v2 and _v3 fill.
struct nvmlProcessInfo_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
struct nvmlEventData_t {
  nvmlDevice_t device;
  unsigned long long eventType;
  unsigned long long eventData;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
}

namespace spawn::nvml {

inline constexpr unsigned kClockSm = 1;
inline constexpr unsigned kClockMem = 2;
inline constexpr unsigned kTemperatureGpu = 0;
inline constexpr unsigned kErrorUncorrected = 1;
inline constexpr unsigned kVolatileEcc = 0;
inline constexpr unsigned kAggregateEcc = 1;
inline constexpr unsigned kRetireMultipleSingleBit = 0;
inline constexpr unsigned kRetireDoubleBit = 1;
inline constexpr unsigned long long kEventXidCritical = 0x8ULL;
// usedGpuMemory when the driver cannot attribute memory to the process (e.g. no permission).
inline constexpr unsigned long long kValueNotAvailable = ~0ULL;

// Function table filled by dlsym. A symbol the loaded library lacks stays null; calling it
// through the api() helpers returns NVML_ERROR_FUNCTION_NOT_FOUND (treated as "unsupported").
struct Api {
  nvmlReturn_t (*Init_v2)();
  nvmlReturn_t (*Shutdown)();
  const char* (*ErrorString)(nvmlReturn_t);
  nvmlReturn_t (*SystemGetDriverVersion)(char*, unsigned);
  nvmlReturn_t (*SystemGetCudaDriverVersion_v2)(int*);
  nvmlReturn_t (*DeviceGetCount_v2)(unsigned*);
  nvmlReturn_t (*DeviceGetHandleByIndex_v2)(unsigned, nvmlDevice_t*);
  nvmlReturn_t (*DeviceGetHandleByUUID)(const char*, nvmlDevice_t*);
  nvmlReturn_t (*DeviceGetUUID)(nvmlDevice_t, char*, unsigned);
  nvmlReturn_t (*DeviceGetName)(nvmlDevice_t, char*, unsigned);
  nvmlReturn_t (*DeviceGetMemoryInfo)(nvmlDevice_t, nvmlMemory_t*);
  nvmlReturn_t (*DeviceGetUtilizationRates)(nvmlDevice_t, nvmlUtilization_t*);
  nvmlReturn_t (*DeviceGetPowerUsage)(nvmlDevice_t, unsigned*);
  nvmlReturn_t (*DeviceGetTemperature)(nvmlDevice_t, unsigned, unsigned*);
  nvmlReturn_t (*DeviceGetClockInfo)(nvmlDevice_t, unsigned, unsigned*);
  nvmlReturn_t (*DeviceGetMaxClockInfo)(nvmlDevice_t, unsigned, unsigned*);
  nvmlReturn_t (*DeviceGetMemoryBusWidth)(nvmlDevice_t, unsigned*);
  nvmlReturn_t (*DeviceGetCudaComputeCapability)(nvmlDevice_t, int*, int*);
  nvmlReturn_t (*DeviceGetNumGpuCores)(nvmlDevice_t, unsigned*);
  nvmlReturn_t (*DeviceGetEccMode)(nvmlDevice_t, int*, int*);
  nvmlReturn_t (*DeviceGetMigMode)(nvmlDevice_t, unsigned*, unsigned*);
  nvmlReturn_t (*DeviceGetCurrPcieLinkGeneration)(nvmlDevice_t, unsigned*);
  nvmlReturn_t (*DeviceGetCurrPcieLinkWidth)(nvmlDevice_t, unsigned*);
  nvmlReturn_t (*DeviceGetMaxPcieLinkGeneration)(nvmlDevice_t, unsigned*);
  nvmlReturn_t (*DeviceGetMaxPcieLinkWidth)(nvmlDevice_t, unsigned*);
  nvmlReturn_t (*DeviceGetComputeRunningProcesses)(nvmlDevice_t, unsigned*, nvmlProcessInfo_t*);
  nvmlReturn_t (*DeviceGetTotalEccErrors)(nvmlDevice_t, unsigned, unsigned, unsigned long long*);
  nvmlReturn_t (*DeviceGetRemappedRows)(nvmlDevice_t, unsigned*, unsigned*, unsigned*, unsigned*);
  nvmlReturn_t (*DeviceGetRetiredPages)(nvmlDevice_t, unsigned, unsigned*, unsigned long long*);
  nvmlReturn_t (*DeviceGetRetiredPagesPendingStatus)(nvmlDevice_t, int*);
  nvmlReturn_t (*EventSetCreate)(nvmlEventSet_t*);
  nvmlReturn_t (*DeviceRegisterEvents)(nvmlDevice_t, unsigned long long, nvmlEventSet_t);
  nvmlReturn_t (*EventSetWait_v2)(nvmlEventSet_t, nvmlEventData_t*, unsigned);
  nvmlReturn_t (*EventSetFree)(nvmlEventSet_t);
};

// The loaded library's table, or null before Session has loaded it. Used by the CHECK
// macro to turn an nvmlReturn_t into the driver's own message.
const Api* loaded_api();

// Calls a table entry, mapping a symbol the library lacks to NVML_ERROR_FUNCTION_NOT_FOUND.
template <typename Fn, typename... Args>
nvmlReturn_t call(Fn* fn, Args... args) {
  return fn == nullptr ? NVML_ERROR_FUNCTION_NOT_FOUND : fn(args...);
}

// One NVML session: dlopen + nvmlInit_v2 on construction, nvmlShutdown + dlclose on
// destruction. Move-only. open() never throws: without a driver it returns null and sets
// `reason` to a sentence saying why, which probe prints and the other commands exit on.
class Session {
 public:
  static std::unique_ptr<Session> open(std::string& reason);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  Session(Session&& other) noexcept;
  Session& operator=(Session&& other) noexcept;
  ~Session();
  const Api& api() const { return api_; }
  // Path of the library that was loaded (SPAWN_NVML_LIBRARY or libnvidia-ml.so.1).
  const std::string& library() const { return library_; }

 private:
  Session(void* handle, const Api& api, std::string library);
  void close() noexcept;
  void* handle_ = nullptr;
  Api api_{};
  std::string library_;
};

// Devices as NVML enumerates them.
struct Device {
  unsigned index;
  nvmlDevice_t handle;
  std::string uuid;
  std::string name;
};
std::vector<Device> devices(const Session& s);

}  // namespace spawn::nvml
