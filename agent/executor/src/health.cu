// `health`: active checks on every GPU in parallel, and a verdict per GPU.
#include <cuda_bf16.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

#include "check.hpp"
#include "commands.hpp"
#include "common.hpp"
#include "cuda_raii.hpp"
#include "gemm.hpp"
#include "gpu_info.hpp"
#include "telemetry.hpp"

namespace spawn {
namespace {

struct Options {
  bool full = false;
  double seconds = 2;
  bool seconds_set = false;
  std::string gpus;
  std::set<std::string> checks{"hbm", "pcie", "gemm", "nvml"};
  std::string backend = "auto";
};

// Findings for one GPU: a reason list, each `fail` or `warn`, and the measurements.
struct Findings {
  json::Array reasons;
  json::Value checks;
  bool failed = false;
  bool warned = false;
  void add(const char* level, const char* check, const std::string& message) {
    json::Value r;
    r.set("level", level);
    r.set("check", check);
    r.set("message", message);
    reasons.push_back(r);
    (std::string(level) == "fail" ? failed : warned) = true;
  }
  // Grades `fraction` of peak against the SKU's warn/fail thresholds for `key`.
  void grade(const char* check, const std::string& gpu_name, const std::string& key, double fraction,
             const std::string& what) {
    double fail = threshold(gpu_name, key, "fail"), warn = threshold(gpu_name, key, "warn");
    char buf[160];
    if (fraction < fail) {
      std::snprintf(buf, sizeof buf, "%s at %.0f%% of peak, below the %.0f%% failure threshold", what.c_str(),
                    fraction * 100, fail * 100);
      add("fail", check, buf);
    } else if (fraction < warn) {
      std::snprintf(buf, sizeof buf, "%s at %.0f%% of peak, below the %.0f%% warning threshold", what.c_str(),
                    fraction * 100, warn * 100);
      add("warn", check, buf);
    }
  }
};

Options parse(const Args& args) {
  Options o;
  bool quick = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string v;
    if (args[i] == "--quick") {
      quick = true;
    } else if (args[i] == "--full") {
      o.full = true;
    } else if (take_value(args, i, "--seconds", v)) {
      o.seconds = parse_seconds("--seconds", v);
      if (o.seconds <= 0 || o.seconds > 3600) throw UsageError("--seconds must be in (0, 3600], got '" + v + "'");
      o.seconds_set = true;
    } else if (take_value(args, i, "--gpus", v)) {
      if (v.empty()) throw UsageError("--gpus must list at least one GPU UUID");
      o.gpus = v;
    } else if (take_value(args, i, "--checks", v)) {
      o.checks.clear();
      for (const auto& c : split(v, ',')) {
        if (c != "hbm" && c != "pcie" && c != "gemm" && c != "nvml") {
          throw UsageError("--checks takes hbm, pcie, gemm and nvml, got '" + c + "'");
        }
        o.checks.insert(c);
      }
    } else if (take_value(args, i, "--gemm-backend", v)) {
      if (v != "auto" && v != "cublas" && v != "own") {
        throw UsageError("--gemm-backend must be auto, cublas or own, got '" + v + "'");
      }
      o.backend = v;
    } else {
      throw UsageError("health: unknown argument '" + args[i] + "' (see spawn-executor --help)");
    }
  }
  if (quick && o.full) throw UsageError("health: --quick and --full exclude each other");
  if (!o.seconds_set) o.seconds = o.full ? 30 : 2;
  return o;
}

// ---- kernels --------------------------------------------------------------------------------

__global__ void fill_kernel(float4* p, size_t n, float v) {
  size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i < n) p[i] = make_float4(v, v, v, v);
}
__global__ void copy_kernel(const float4* __restrict__ a, float4* __restrict__ c, size_t n) {
  size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i < n) c[i] = a[i];
}
__global__ void triad_kernel(float4* __restrict__ a, const float4* __restrict__ b, const float4* __restrict__ c,
                             float s, size_t n) {
  size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i < n) {
    float4 x = b[i], y = c[i];
    a[i] = make_float4(x.x + s * y.x, x.y + s * y.y, x.z + s * y.z, x.w + s * y.w);
  }
}
// Deterministic pseudo-random BF16 in [-1, 1).
__global__ void random_bf16_kernel(__nv_bfloat16* p, size_t n, unsigned seed) {
  size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i < n) {
    unsigned x = static_cast<unsigned>(i) * 2654435761u ^ seed;
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    p[i] = __float2bfloat16(static_cast<float>(x & 0xFFFF) / 32768.0f - 1.0f);
  }
}
// gpu-burn's check: count elements that differ bit for bit from the reference result.
__global__ void mismatch_kernel(const unsigned short* __restrict__ x, const unsigned short* __restrict__ ref, size_t n,
                                unsigned long long* count) {
  unsigned long long local = 0;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    local += x[i] != ref[i];
  }
  if (local != 0) atomicAdd(count, local);
}

unsigned blocks_for(size_t n, unsigned threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// ---- checks ---------------------------------------------------------------------------------

void check_hbm(const Options& o, const GpuInfo& g, Findings& f) {
  // Arrays far larger than L2 (50 MiB on H100): 512 MiB each quick, 2 GiB each full.
  const size_t bytes = (o.full ? 2048ull : 512ull) << 20;
  const size_t n = bytes / sizeof(float4);
  const int iterations = o.full ? 100 : 20;
  cuda::DeviceBuffer<float4> a(n), b(n), c(n);
  cuda::Stream s;
  const unsigned threads = 256, blocks = blocks_for(n, threads);
  fill_kernel<<<blocks, threads, 0, s.get()>>>(a.get(), n, 1.0f);
  fill_kernel<<<blocks, threads, 0, s.get()>>>(b.get(), n, 2.0f);
  fill_kernel<<<blocks, threads, 0, s.get()>>>(c.get(), n, 0.5f);
  CHECK(cudaGetLastError());
  std::vector<double> copy_gbps, triad_gbps;
  cuda::Event e0, e1, e2;
  for (int it = 0; it < iterations; ++it) {
    e0.record(s);
    copy_kernel<<<blocks, threads, 0, s.get()>>>(a.get(), c.get(), n);
    e1.record(s);
    triad_kernel<<<blocks, threads, 0, s.get()>>>(a.get(), b.get(), c.get(), 3.0f, n);
    e2.record(s);
    CHECK(cudaGetLastError());
    e2.sync();
    copy_gbps.push_back(2.0 * bytes / (e1.since(e0) * 1e-3) / 1e9);
    triad_gbps.push_back(3.0 * bytes / (e2.since(e1) * 1e-3) / 1e9);
  }
  json::Value j;
  j.set("convention", "STREAM: bytes read + bytes written per kernel (copy 2 x array, triad 3 x array), "
                      "timed with CUDA events; best and median of the iterations");
  j.set("array_bytes", bytes);
  j.set("iterations", iterations);
  double copy_best = *std::max_element(copy_gbps.begin(), copy_gbps.end());
  double triad_best = *std::max_element(triad_gbps.begin(), triad_gbps.end());
  j.set("copy_gbps", copy_best);
  j.set("copy_median_gbps", median(copy_gbps));
  j.set("triad_gbps", triad_best);
  j.set("triad_median_gbps", median(triad_gbps));
  if (g.peaks.memory_bytes_per_s) {
    double peak_gbps = *g.peaks.memory_bytes_per_s / 1e9;
    j.set("peak_gbps", peak_gbps);
    j.set("triad_fraction_of_peak", triad_best / peak_gbps);
    j.set("copy_fraction_of_peak", copy_best / peak_gbps);
    f.grade("hbm", g.device.name, "hbm_fraction", triad_best / peak_gbps, "HBM triad bandwidth");
  }
  f.checks.set("hbm", j);
}

// PCIe copies are serialised across GPUs so that each link is measured alone.
std::mutex g_pcie_mutex;

void check_pcie(const Options& o, const GpuInfo& g, const nvml::Api& api, Findings& f) {
  const size_t bytes = (o.full ? 1024ull : 256ull) << 20;
  const int reps = 5;
  cuda::DeviceBuffer<unsigned char> dev(bytes);
  cuda::PinnedBuffer<unsigned char> host(bytes);
  cuda::Stream s;
  cuda::Event e0, e1;
  std::vector<double> h2d, d2h;
  unsigned gen = 0, width = 0;
  bool have_link = false;
  {
    std::lock_guard<std::mutex> lock(g_pcie_mutex);
    for (int dir = 0; dir < 2; ++dir) {
      for (int r = 0; r < reps + 1; ++r) {  // the first copy of each direction is a warm-up
        e0.record(s);
        if (dir == 0) {
          CHECK(cudaMemcpyAsync(dev.get(), host.get(), bytes, cudaMemcpyHostToDevice, s.get()));
        } else {
          CHECK(cudaMemcpyAsync(host.get(), dev.get(), bytes, cudaMemcpyDeviceToHost, s.get()));
        }
        e1.record(s);
        e1.sync();
        if (r > 0) (dir == 0 ? h2d : d2h).push_back(bytes / (e1.since(e0) * 1e-3) / 1e9);
      }
    }
    // The link trains down when idle; read it right after traffic.
    have_link = CHECK(nvml::call(api.DeviceGetCurrPcieLinkGeneration, g.device.handle, &gen)) &&
                CHECK(nvml::call(api.DeviceGetCurrPcieLinkWidth, g.device.handle, &width));
  }
  json::Value j;
  j.set("convention", "pinned host memory, cudaMemcpyAsync timed with CUDA events, bytes copied counted once; "
                      "median of 5");
  j.set("bytes", bytes);
  j.set("h2d_gbps", median(h2d));
  j.set("d2h_gbps", median(d2h));
  if (have_link) {
    j.set("link_generation_under_load", gen);
    j.set("link_width_under_load", width);
  }
  if (g.peaks.pcie_bytes_per_s) {
    double peak = *g.peaks.pcie_bytes_per_s / 1e9;
    j.set("peak_gbps", peak);
    double worst = std::min(median(h2d), median(d2h)) / peak;
    j.set("fraction_of_peak", worst);
    f.grade("pcie", g.device.name, "pcie_fraction", worst, "pinned host<->device bandwidth");
  }
  const json::Value& max_width = g.json["pcie"]["max_width"];
  if (have_link && max_width.is_number() && width < max_width.number()) {
    f.add("warn", "pcie", "PCIe link runs at x" + std::to_string(width) + " of x" +
                              std::to_string(static_cast<int>(max_width.number())) + " under load");
  }
  f.checks.set("pcie", j);
}

void check_gemm(const Options& o, const GpuInfo& g, Findings& f) {
  const int n = 8192;  // m = n = k: 1.1 TFLOP per GEMM, about 1.4 ms on an H100
  const size_t elems = static_cast<size_t>(n) * n;
  cuda::DeviceBuffer<__nv_bfloat16> a(elems), b(elems), c(elems), ref(elems);
  cuda::DeviceBuffer<unsigned long long> mismatches(1);
  cuda::Stream s;
  random_bf16_kernel<<<blocks_for(elems, 256), 256, 0, s.get()>>>(a.get(), elems, 1u);
  random_bf16_kernel<<<blocks_for(elems, 256), 256, 0, s.get()>>>(b.get(), elems, 2u);
  CHECK(cudaGetLastError());
  CHECK(cudaMemsetAsync(mismatches.get(), 0, sizeof(unsigned long long), s.get()));
  auto gemm = make_gemm(o.backend, s.get());
  gemm->run(a.get(), b.get(), ref.get(), n, n, n);  // warm-up (cuBLAS picks its kernel)
  gemm->run(a.get(), b.get(), ref.get(), n, n, n);  // the reference every later result must equal
  s.sync();
  const int batch = 8;
  std::vector<cuda::Event> starts(batch), ends(batch);
  double gemm_ms = 0;
  long iterations = 0;
  const double deadline = mono_s() + o.seconds;
  while (mono_s() < deadline) {
    for (int i = 0; i < batch; ++i) {
      starts[i].record(s);
      gemm->run(a.get(), b.get(), c.get(), n, n, n);
      ends[i].record(s);
      mismatch_kernel<<<1024, 256, 0, s.get()>>>(reinterpret_cast<const unsigned short*>(c.get()),
                                                 reinterpret_cast<const unsigned short*>(ref.get()), elems,
                                                 mismatches.get());
      CHECK(cudaGetLastError());
    }
    s.sync();
    for (int i = 0; i < batch; ++i) gemm_ms += ends[i].since(starts[i]);
    iterations += batch;
  }
  unsigned long long bad = 0;
  CHECK(cudaMemcpy(&bad, mismatches.get(), sizeof bad, cudaMemcpyDeviceToHost));
  double tflops = 2.0 * n * n * n * iterations / (gemm_ms * 1e-3) / 1e12;
  json::Value j;
  j.set("backend", gemm->backend());
  j.set("detail", gemm->detail());
  j.set("dtype", "bf16 in/out, fp32 accumulate");
  j.set("m_n_k", n);
  j.set("iterations", iterations);
  j.set("seconds", o.seconds);
  j.set("tflops", tflops);
  j.set("convention", "2*m*n*k FLOP per GEMM over GEMM time only (CUDA events), compare kernels excluded");
  j.set("mismatched_elements", bad);
  if (g.peaks.tensor_bf16_flops) j.set("fraction_of_derived_peak", tflops * 1e12 / *g.peaks.tensor_bf16_flops);
  double datasheet = sku_for(g.device.name)["datasheet"]["bf16_dense_flops"].number();
  if (datasheet > 0) j.set("fraction_of_datasheet_peak", tflops * 1e12 / datasheet);
  double reference = datasheet > 0 ? datasheet : g.peaks.tensor_bf16_flops.value_or(0);
  if (reference > 0) {
    std::string key = std::string("gemm_fraction_") + gemm->backend();
    f.grade("gemm", g.device.name, key, tflops * 1e12 / reference, "BF16 GEMM throughput");
  }
  if (bad >= threshold(g.device.name, "gemm_mismatches_fail")) {
    f.add("fail", "gemm", std::to_string(bad) + " result elements differed between identical GEMM iterations");
  }
  f.checks.set("gemm", j);
}

// Passive NVML error counters. Returns them as JSON and grades them.
json::Value check_nvml(const nvml::Api& a, const GpuInfo& g, Findings& f) {
  nvmlDevice_t d = g.device.handle;
  const std::string& name = g.device.name;
  json::Value j;
  unsigned long long vol = 0, agg = 0;
  bool have_vol = CHECK(nvml::call(a.DeviceGetTotalEccErrors, d, nvml::kErrorUncorrected, nvml::kVolatileEcc, &vol));
  bool have_agg = CHECK(nvml::call(a.DeviceGetTotalEccErrors, d, nvml::kErrorUncorrected, nvml::kAggregateEcc, &agg));
  j.set("ecc_volatile_uncorrected", have_vol ? json::Value(vol) : json::Value());
  j.set("ecc_aggregate_uncorrected", have_agg ? json::Value(agg) : json::Value());
  if (have_vol && vol > 0) f.add("fail", "nvml", std::to_string(vol) + " volatile uncorrectable ECC errors");
  unsigned corr = 0, unc = 0, pending = 0, failure = 0;
  if (CHECK(nvml::call(a.DeviceGetRemappedRows, d, &corr, &unc, &pending, &failure))) {
    json::Value r;
    r.set("correctable", corr);
    r.set("uncorrectable", unc);
    r.set("pending", pending != 0);
    r.set("failure", failure != 0);
    j.set("remapped_rows", r);
    if (pending) f.add("fail", "nvml", "row remapping pending: the GPU needs a reset");
    if (failure) f.add("fail", "nvml", "row remapping failed: the GPU needs replacement");
  } else {
    j.set("remapped_rows", nullptr);
  }
  unsigned long long addresses[1024];
  unsigned total = 0;
  bool have_pages = false;
  for (unsigned cause : {nvml::kRetireMultipleSingleBit, nvml::kRetireDoubleBit}) {
    unsigned count = 1024;
    if (CHECK(nvml::call(a.DeviceGetRetiredPages, d, cause, &count, addresses))) {
      have_pages = true;
      total += count;
    }
  }
  j.set("retired_pages", have_pages ? json::Value(total) : json::Value());
  if (have_pages && total >= threshold(name, "retired_pages_warn")) {
    f.add("warn", "nvml", std::to_string(total) + " retired memory pages");
  }
  int retire_pending = 0;
  if (CHECK(nvml::call(a.DeviceGetRetiredPagesPendingStatus, d, &retire_pending))) {
    j.set("retired_pages_pending", retire_pending != 0);
    if (retire_pending) f.add("fail", "nvml", "page retirement pending: the GPU needs a reset");
  }
  unsigned temp = 0;
  if (CHECK(nvml::call(a.DeviceGetTemperature, d, nvml::kTemperatureGpu, &temp))) {
    j.set("temperature_c", temp);
    if (temp >= threshold(name, "temperature_c_warn")) {
      f.add("warn", "nvml", "temperature " + std::to_string(temp) + " C");
    }
  }
  return j;
}

// Application Xids (a fault in the user's program, not the GPU), as the NVIDIA device plugin
// treats them.
bool application_xid(unsigned long long xid) {
  return xid == 13 || xid == 31 || xid == 43 || xid == 45 || xid == 68;
}

// Watches critical Xid events on all GPUs while the active checks run.
class XidWatch {
 public:
  XidWatch(const nvml::Api& a, const std::vector<GpuInfo>& gpus) : a_(a) {
    if (!CHECK(nvml::call(a.EventSetCreate, &set_))) return;
    for (const auto& g : gpus) {
      if (CHECK(nvml::call(a.DeviceRegisterEvents, g.device.handle, nvml::kEventXidCritical, set_))) {
        watched_.insert(g.device.handle);
      }
    }
    thread_ = std::thread([this] { loop(); });
  }
  XidWatch(const XidWatch&) = delete;
  XidWatch& operator=(const XidWatch&) = delete;
  ~XidWatch() {
    stop();
    if (set_ != nullptr) (void)a_.EventSetFree(set_);
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  bool watching(nvmlDevice_t d) const { return watched_.count(d) != 0; }
  std::vector<unsigned long long> xids(nvmlDevice_t d) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<unsigned long long> out;
    for (const auto& [dev, xid] : seen_) {
      if (dev == d) out.push_back(xid);
    }
    return out;
  }
  std::string error() {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

 private:
  void loop() {
    try {
      for (;;) {
        // After stop(), drain what is already queued (timeout 0), then leave.
        bool stopping = stop_;
        nvmlEventData_t data{};
        nvmlReturn_t r = nvml::call(a_.EventSetWait_v2, set_, &data, stopping ? 0u : 200u);
        if (r == NVML_ERROR_TIMEOUT) {  // no event in this window
          if (stopping) break;
          continue;
        }
        if (CHECK(r)) {
          std::lock_guard<std::mutex> lock(mu_);
          seen_.emplace_back(data.device, data.eventData);
        }
      }
    } catch (const ApiError& e) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = e.what();
    }
  }
  const nvml::Api& a_;
  nvmlEventSet_t set_ = nullptr;
  std::set<nvmlDevice_t> watched_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::pair<nvmlDevice_t, unsigned long long>> seen_;
  std::string error_;
};

}  // namespace

int cmd_health(const Args& args) {
  Options o = parse(args);
  const double started = mono_s();
  json::Value doc = document("health");
  doc.set("mode", o.full ? "full" : "quick");
  std::string reason;
  auto session = nvml::Session::open(reason);
  if (!session) {
    doc.set("gpus", json::Array{});
    doc.set("reason", reason);
    print_json(doc);
    std::cerr << "spawn-executor: health: " << reason << "\n";
    return kExitNoGpu;
  }
  const nvml::Api& api = session->api();
  auto devices = select_devices(*session, o.gpus, "--gpus");
  if (devices.empty()) {
    doc.set("gpus", json::Array{});
    doc.set("reason", "the NVIDIA driver reports no GPU");
    print_json(doc);
    std::cerr << "spawn-executor: health: the NVIDIA driver reports no GPU\n";
    return kExitNoGpu;
  }
  // health checks the GPUs it was asked about, whatever the caller's CUDA_VISIBLE_DEVICES says.
  unsetenv("CUDA_VISIBLE_DEVICES");
  bool active = o.checks.count("hbm") || o.checks.count("pcie") || o.checks.count("gemm");
  std::string cuda_reason;
  auto cuda = active ? cuda_devices(cuda_reason) : std::vector<CudaDevice>{};
  std::vector<GpuInfo> gpus;
  for (const auto& d : devices) gpus.push_back(describe(*session, d, cuda));
  std::vector<Findings> findings(gpus.size());

  std::vector<json::Value> nvml_before(gpus.size());
  if (o.checks.count("nvml")) {
    for (size_t i = 0; i < gpus.size(); ++i) nvml_before[i] = check_nvml(api, gpus[i], findings[i]);
  }
  {
    std::unique_ptr<XidWatch> xid = o.checks.count("nvml") ? std::make_unique<XidWatch>(api, gpus) : nullptr;
    std::vector<std::thread> workers;
    for (size_t i = 0; i < gpus.size(); ++i) {
      if (!active) break;
      const GpuInfo& g = gpus[i];
      Findings& f = findings[i];
      if (!g.cuda) {
        f.add("fail", "cuda",
              cuda_reason.empty() ? "the CUDA runtime does not see this GPU" : "CUDA cannot use this GPU: " + cuda_reason);
        continue;
      }
      if (g.json["mig"]["enabled"].boolean()) {
        f.add("warn", "cuda", "MIG mode is on: active checks need the whole GPU and were skipped");
        continue;
      }
      workers.emplace_back([&o, &g, &f, &api] {
        const char* current = "cuda";
        try {
          CHECK(cudaSetDevice(g.cuda->index));
          current = "hbm";
          if (o.checks.count("hbm")) check_hbm(o, g, f);
          current = "pcie";
          if (o.checks.count("pcie")) check_pcie(o, g, api, f);
          current = "gemm";
          if (o.checks.count("gemm")) check_gemm(o, g, f);
        } catch (const UsageError& e) {
          f.add("fail", current, e.what());
        } catch (const ApiError& e) {
          f.add("fail", current, std::string(e.gpu_lost() ? "GPU lost: " : "") + e.what());
        }
      });
    }
    for (auto& w : workers) w.join();
    if (xid) {
      xid->stop();
      for (size_t i = 0; i < gpus.size(); ++i) {
        json::Value x;
        x.set("watched", xid->watching(gpus[i].device.handle));
        json::Array critical, ignored;
        for (auto code : xid->xids(gpus[i].device.handle)) {
          if (application_xid(code)) {
            ignored.push_back(code);
          } else {
            critical.push_back(code);
            findings[i].add("fail", "xid", "critical Xid " + std::to_string(code) + " during the checks");
          }
        }
        x.set("critical", critical);
        x.set("ignored_application_xids", ignored);
        std::string err = xid->error();
        if (!err.empty()) x.set("error", err);
        findings[i].checks.set("xid", x);
      }
    }
  }
  if (o.checks.count("nvml")) {
    for (size_t i = 0; i < gpus.size(); ++i) {
      // Counters again after the load: an error that appeared under load fails the GPU too.
      Findings after;
      json::Value now = check_nvml(api, gpus[i], after);
      double before_vol = nvml_before[i]["ecc_volatile_uncorrected"].number();
      double now_vol = now["ecc_volatile_uncorrected"].number();
      if (now_vol > before_vol) {
        findings[i].add("fail", "nvml",
                        std::to_string(static_cast<long long>(now_vol - before_vol)) +
                            " new volatile uncorrectable ECC errors during the checks");
      }
      json::Value n;
      n.set("before", nvml_before[i]);
      n.set("after", now);
      findings[i].checks.set("nvml", n);
    }
  }

  json::Array out;
  bool any_fail = false, any_warn = false;
  for (size_t i = 0; i < gpus.size(); ++i) {
    json::Value g;
    g.set("index", gpus[i].device.index);
    g.set("uuid", gpus[i].device.uuid);
    g.set("name", gpus[i].device.name);
    const char* verdict = findings[i].failed ? "fail" : findings[i].warned ? "warn" : "pass";
    any_fail |= findings[i].failed;
    any_warn |= findings[i].warned;
    g.set("verdict", verdict);
    g.set("reasons", findings[i].reasons);
    g.set("checks", findings[i].checks);
    g.set("peaks", gpus[i].peaks.json);
    out.push_back(g);
  }
  doc.set("verdict", any_fail ? "fail" : any_warn ? "warn" : "pass");
  doc.set("seconds", o.seconds);
  doc.set("elapsed_s", mono_s() - started);
  doc.set("gpus", out);
  print_json(doc);
  return any_fail ? kExitHealthFail : kExitOk;
}

}  // namespace spawn
