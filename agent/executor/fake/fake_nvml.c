/*
 * A fake libnvidia-ml.so.1 for tests on machines without a GPU. spawn-executor loads it when
 * SPAWN_NVML_LIBRARY points here. It exports the NVML symbols the executor uses and is driven
 * by environment variables (read at each call, so a test can change files while it runs):
 *
 *   SPAWN_FAKE_NVML_GPUS=N              number of GPUs (default 1; 0 = driver with no GPU)
 *   SPAWN_FAKE_NVML_INIT_FAIL=1         nvmlInit_v2 fails with NVML_ERROR_DRIVER_NOT_LOADED
 *   SPAWN_FAKE_NVML_PROCS_FILE=path     lines "pid bytes [gpu-index]": compute processes and the
 *                                       GPU memory each holds; re-read on every query
 *   SPAWN_FAKE_NVML_ECC_UNCORRECTED=N   volatile uncorrectable ECC count on every GPU
 *   SPAWN_FAKE_NVML_REMAP_PENDING=1     remapped rows: pending
 *   SPAWN_FAKE_NVML_REMAP_FAILURE=1     remapped rows: failure occurred
 *   SPAWN_FAKE_NVML_XIDS=13,79          Xid events delivered (once each) to an event set
 *
 * The GPUs look like H100 SXM (sm_90, 132 SMs, 80 GiB HBM3 at 2619 MHz x 5120 bit, PCIe 5 x16).
 * UUIDs are GPU-00000000-0000-0000-0000-00000000000<index>.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int nvmlReturn_t;
enum {
  SUCCESS = 0,
  ERR_UNINITIALIZED = 1,
  ERR_INVALID_ARGUMENT = 2,
  ERR_NOT_SUPPORTED = 3,
  ERR_NOT_FOUND = 6,
  ERR_INSUFFICIENT_SIZE = 7,
  ERR_DRIVER_NOT_LOADED = 9,
  ERR_TIMEOUT = 10,
};
enum { MAX_GPUS = 8, MAX_XIDS = 16 };

typedef struct {
  unsigned long long total, free, used;
} nvmlMemory_t;
typedef struct {
  unsigned int gpu, memory;
} nvmlUtilization_t;
typedef struct {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;
typedef struct fake_device {
  unsigned index;
} fake_device;
typedef fake_device* nvmlDevice_t;
typedef struct {
  nvmlDevice_t device;
  unsigned long long eventType, eventData;
  unsigned int gpuInstanceId, computeInstanceId;
} nvmlEventData_t;
typedef struct fake_event_set {
  unsigned registered[MAX_GPUS];
  unsigned long long xids[MAX_XIDS];
  unsigned xid_count, next;
} * nvmlEventSet_t;

static fake_device g_devices[MAX_GPUS];
static int g_initialized;
static const unsigned long long kTotal = 80ULL << 30;

static long env_long(const char* name, long fallback) {
  const char* v = getenv(name);
  return v != NULL && *v != '\0' ? strtol(v, NULL, 10) : fallback;
}
static unsigned gpu_count(void) {
  long n = env_long("SPAWN_FAKE_NVML_GPUS", 1);
  return n < 0 ? 0 : n > MAX_GPUS ? MAX_GPUS : (unsigned)n;
}
static int valid(nvmlDevice_t d) { return g_initialized && d != NULL && d >= g_devices && d < g_devices + gpu_count(); }

/* Reads SPAWN_FAKE_NVML_PROCS_FILE; fills up to `cap` entries for GPU `index`, returns the count. */
static unsigned read_procs(unsigned index, nvmlProcessInfo_t* out, unsigned cap, unsigned long long* used) {
  const char* path = getenv("SPAWN_FAKE_NVML_PROCS_FILE");
  unsigned n = 0;
  *used = 0;
  if (path == NULL || *path == '\0') return 0;
  FILE* f = fopen(path, "r");
  if (f == NULL) return 0;
  char line[256];
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned pid = 0, gpu = 0;
    unsigned long long bytes = 0;
    int got = sscanf(line, "%u %llu %u", &pid, &bytes, &gpu);
    if (got < 2 || gpu != index) continue;
    *used += bytes;
    if (out != NULL && n < cap) {
      out[n].pid = pid;
      out[n].usedGpuMemory = bytes;
      out[n].gpuInstanceId = 0xFFFFFFFFu;
      out[n].computeInstanceId = 0xFFFFFFFFu;
    }
    ++n;
  }
  fclose(f);
  return n;
}

nvmlReturn_t nvmlInit_v2(void) {
  if (env_long("SPAWN_FAKE_NVML_INIT_FAIL", 0) != 0) return ERR_DRIVER_NOT_LOADED;
  for (unsigned i = 0; i < MAX_GPUS; ++i) g_devices[i].index = i;
  g_initialized = 1;
  return SUCCESS;
}
nvmlReturn_t nvmlShutdown(void) {
  g_initialized = 0;
  return SUCCESS;
}
const char* nvmlErrorString(nvmlReturn_t r) {
  switch (r) {
    case SUCCESS: return "Success";
    case ERR_UNINITIALIZED: return "Uninitialized";
    case ERR_INVALID_ARGUMENT: return "Invalid Argument";
    case ERR_NOT_SUPPORTED: return "Not Supported";
    case ERR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case ERR_DRIVER_NOT_LOADED: return "Driver Not Loaded (fake)";
    case ERR_TIMEOUT: return "Timeout";
    default: return "Unknown Error";
  }
}
nvmlReturn_t nvmlSystemGetDriverVersion(char* buf, unsigned len) {
  snprintf(buf, len, "%s", "580.00-fake");
  return SUCCESS;
}
nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int* v) {
  *v = 13000;
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned* n) {
  if (!g_initialized) return ERR_UNINITIALIZED;
  *n = gpu_count();
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned i, nvmlDevice_t* d) {
  if (!g_initialized || i >= gpu_count()) return ERR_INVALID_ARGUMENT;
  *d = &g_devices[i];
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char* buf, unsigned len) {
  if (!valid(d)) return ERR_INVALID_ARGUMENT;
  snprintf(buf, len, "GPU-00000000-0000-0000-0000-%012u", d->index);
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char* buf, unsigned len) {
  if (!valid(d)) return ERR_INVALID_ARGUMENT;
  snprintf(buf, len, "%s", "NVIDIA H100 80GB HBM3");
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t* m) {
  if (!valid(d)) return ERR_INVALID_ARGUMENT;
  unsigned long long used = 0;
  read_procs(d->index, NULL, 0, &used);
  m->total = kTotal;
  m->used = used < kTotal ? used : kTotal;
  m->free = kTotal - m->used;
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t* u) {
  if (!valid(d)) return ERR_INVALID_ARGUMENT;
  u->gpu = 42;
  u->memory = 17;
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned* mw) {
  if (!valid(d)) return ERR_INVALID_ARGUMENT;
  *mw = 123456;
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, unsigned sensor, unsigned* t) {
  if (!valid(d) || sensor != 0) return ERR_INVALID_ARGUMENT;
  *t = 40;
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t d, unsigned type, unsigned* mhz) {
  if (!valid(d)) return ERR_INVALID_ARGUMENT;
  *mhz = type == 2 ? 2619 : 1755;
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t d, unsigned type, unsigned* mhz) {
  if (!valid(d)) return ERR_INVALID_ARGUMENT;
  *mhz = type == 2 ? 2619 : 1980;
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMemoryBusWidth(nvmlDevice_t d, unsigned* bits) {
  if (!valid(d)) return ERR_INVALID_ARGUMENT;
  *bits = 5120;
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t d, int* major, int* minor) {
  if (!valid(d)) return ERR_INVALID_ARGUMENT;
  *major = 9;
  *minor = 0;
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceGetNumGpuCores(nvmlDevice_t d, unsigned* cores) {
  if (!valid(d)) return ERR_INVALID_ARGUMENT;
  *cores = 132 * 128;
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t d, int* current, int* pending) {
  if (!valid(d)) return ERR_INVALID_ARGUMENT;
  *current = *pending = 1;
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned* current, unsigned* pending) {
  if (!valid(d)) return ERR_INVALID_ARGUMENT;
  *current = *pending = 0;
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceGetCurrPcieLinkGeneration(nvmlDevice_t d, unsigned* v) {
  if (!valid(d)) return ERR_INVALID_ARGUMENT;
  *v = 5;
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMaxPcieLinkGeneration(nvmlDevice_t d, unsigned* v) { return nvmlDeviceGetCurrPcieLinkGeneration(d, v); }
nvmlReturn_t nvmlDeviceGetCurrPcieLinkWidth(nvmlDevice_t d, unsigned* v) {
  if (!valid(d)) return ERR_INVALID_ARGUMENT;
  *v = 16;
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMaxPcieLinkWidth(nvmlDevice_t d, unsigned* v) { return nvmlDeviceGetCurrPcieLinkWidth(d, v); }
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned* count, nvmlProcessInfo_t* infos) {
  if (!valid(d) || count == NULL) return ERR_INVALID_ARGUMENT;
  unsigned long long used = 0;
  unsigned n = read_procs(d->index, infos, *count, &used);
  nvmlReturn_t r = n > *count ? ERR_INSUFFICIENT_SIZE : SUCCESS;
  *count = n;
  return r;
}
nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, unsigned type, unsigned counter, unsigned long long* n) {
  if (!valid(d)) return ERR_INVALID_ARGUMENT;
  *n = type == 1 && counter == 0 ? (unsigned long long)env_long("SPAWN_FAKE_NVML_ECC_UNCORRECTED", 0) : 0;
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t d, unsigned* corr, unsigned* unc, unsigned* pending,
                                       unsigned* failure) {
  if (!valid(d)) return ERR_INVALID_ARGUMENT;
  *corr = 0;
  *unc = 0;
  *pending = env_long("SPAWN_FAKE_NVML_REMAP_PENDING", 0) != 0;
  *failure = env_long("SPAWN_FAKE_NVML_REMAP_FAILURE", 0) != 0;
  return SUCCESS;
}
/* Hopper replaced page retirement with row remapping. */
nvmlReturn_t nvmlDeviceGetRetiredPages(nvmlDevice_t d, unsigned cause, unsigned* count, unsigned long long* a) {
  (void)cause, (void)count, (void)a;
  return valid(d) ? ERR_NOT_SUPPORTED : ERR_INVALID_ARGUMENT;
}
nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t d, int* pending) {
  (void)pending;
  return valid(d) ? ERR_NOT_SUPPORTED : ERR_INVALID_ARGUMENT;
}
nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t* set) {
  if (!g_initialized) return ERR_UNINITIALIZED;
  *set = calloc(1, sizeof **set);
  const char* xids = getenv("SPAWN_FAKE_NVML_XIDS");
  for (const char* p = xids; p != NULL && *p != '\0' && (*set)->xid_count < MAX_XIDS;) {
    char* end = NULL;
    unsigned long long x = strtoull(p, &end, 10);
    if (end == p) break;
    (*set)->xids[(*set)->xid_count++] = x;
    p = *end == ',' ? end + 1 : end;
  }
  return SUCCESS;
}
nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t d, unsigned long long types, nvmlEventSet_t set) {
  if (!valid(d) || set == NULL) return ERR_INVALID_ARGUMENT;
  if (types & 0x8ULL) set->registered[d->index] = 1;
  return SUCCESS;
}
nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t* data, unsigned timeout_ms) {
  if (set == NULL) return ERR_INVALID_ARGUMENT;
  if (set->next < set->xid_count && set->registered[0]) {
    memset(data, 0, sizeof *data);
    data->device = &g_devices[0];
    data->eventType = 0x8ULL;
    data->eventData = set->xids[set->next++];
    return SUCCESS;
  }
  struct timespec ts = {(time_t)(timeout_ms / 1000), (long)(timeout_ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
  return ERR_TIMEOUT;
}
nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
  free(set);
  return SUCCESS;
}
