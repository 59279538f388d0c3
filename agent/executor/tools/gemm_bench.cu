// gemm-bench: checks the own BF16 GEMM kernels against references and times them next to cuBLAS.
//   build/gemm-bench [n]     (n defaults to 8192; the timed GEMM is m = n = k)
// Correctness: small shapes against a CPU reference (double accumulation), the n^3 shape
// against cuBLAS, and every backend bit for bit against its own earlier result. An element
// counts as wrong when |x - ref| > 0.02 |ref| + 0.02 (BF16 keeps 8 significant bits, so
// rounding alone stays near 0.4%). Prints one line per finding; exits 1 on any wrong element.
#include <cuda_bf16.h>

#include <algorithm>
#include <array>
#include <map>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "cuda_raii.hpp"
#include "gemm.hpp"

namespace {

using spawn::cuda::DeviceBuffer;
using spawn::cuda::Event;
using spawn::cuda::Stream;

__global__ void fill_kernel(__nv_bfloat16* p, size_t n, unsigned seed) {
  size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i < n) {
    unsigned x = static_cast<unsigned>(i) * 2654435761u ^ seed;
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    p[i] = __float2bfloat16(static_cast<float>(x & 0xFFFF) / 32768.0f - 1.0f);
  }
}

std::vector<float> to_host(const DeviceBuffer<__nv_bfloat16>& d) {
  std::vector<__nv_bfloat16> h(d.size());
  CHECK(cudaMemcpy(h.data(), d.get(), d.bytes(), cudaMemcpyDeviceToHost));
  std::vector<float> f(h.size());
  std::transform(h.begin(), h.end(), f.begin(), [](__nv_bfloat16 v) { return __bfloat162float(v); });
  return f;
}

struct Diff {
  size_t wrong = 0;
  double max_rel = 0;
};

Diff compare(const std::vector<float>& x, const std::vector<float>& ref) {
  Diff d;
  for (size_t i = 0; i < x.size(); ++i) {
    double err = std::fabs(static_cast<double>(x[i]) - ref[i]);
    // Written so that a NaN (an element the kernel never wrote: see the 0xFF fill) is wrong.
    bool ok = err <= 0.02 * std::fabs(ref[i]) + 0.02;
    d.wrong += !ok;
    d.max_rel = ok ? std::max(d.max_rel, err / (std::fabs(ref[i]) + 1.0)) : HUGE_VAL;
  }
  return d;
}

struct Operands {
  int m, n, k;
  DeviceBuffer<__nv_bfloat16> a, b, c;
  Operands(int m_, int n_, int k_, cudaStream_t s)
      : m(m_), n(n_), k(k_), a(size_t(m_) * k_), b(size_t(n_) * k_), c(size_t(m_) * n_) {
    fill_kernel<<<static_cast<unsigned>((a.size() + 255) / 256), 256, 0, s>>>(a.get(), a.size(), 1u);
    fill_kernel<<<static_cast<unsigned>((b.size() + 255) / 256), 256, 0, s>>>(b.get(), b.size(), 2u);
    CHECK(cudaGetLastError());
  }
};

std::vector<float> cpu_reference(const Operands& o) {
  std::vector<float> a = to_host(o.a), b = to_host(o.b), c(size_t(o.m) * o.n);
  for (int i = 0; i < o.m; ++i) {
    for (int j = 0; j < o.n; ++j) {
      double sum = 0;
      for (int p = 0; p < o.k; ++p) sum += double(a[size_t(i) * o.k + p]) * b[size_t(j) * o.k + p];
      c[size_t(i) * o.n + j] = static_cast<float>(sum);
    }
  }
  return c;
}

int report(const char* backend, const Operands& o, const char* against, const Diff& d) {
  std::printf("check %-12s %5dx%5dx%5d vs %-7s wrong %zu max_rel_err %.2e\n", backend, o.m, o.n, o.k, against, d.wrong,
              d.max_rel);
  return d.wrong == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) try {
  const int size = argc > 1 ? std::atoi(argv[1]) : 8192;
  Stream s;
  // "own" is the kernel this device would use; "own-portable" forces the WMMA kernel.
  std::vector<std::pair<std::string, std::unique_ptr<spawn::Gemm>>> gemms;
  for (const char* name : {"own", "own-portable", "cublas"}) {
    try {
      gemms.emplace_back(name, spawn::make_gemm(name, s.get()));
      std::printf("backend %-12s %s\n", name, gemms.back().second->detail().c_str());
    } catch (const std::exception& e) {
      std::printf("backend %-12s unavailable: %s\n", name, e.what());
    }
  }
  int failures = 0;
  // Small shapes, including fewer k blocks than pipeline stages and several tile rows/columns.
  for (auto [m, n, k] : {std::array<int, 3>{256, 256, 64}, {384, 512, 192}, {512, 768, 1024}}) {
    Operands o(m, n, k, s.get());
    std::vector<float> ref = cpu_reference(o);
    for (auto& [name, g] : gemms) {
      CHECK(cudaMemsetAsync(o.c.get(), 0xFF, o.c.bytes(), s.get()));  // NaNs where nothing is written
      g->run(o.a.get(), o.b.get(), o.c.get(), m, n, k);
      s.sync();
      failures += report(name.c_str(), o, "cpu", compare(to_host(o.c), ref));
    }
  }

  Operands o(size, size, size, s.get());
  std::vector<float> cublas_result;
  for (auto& [name, g] : gemms) {
    if (name == "cublas") {
      g->run(o.a.get(), o.b.get(), o.c.get(), size, size, size);
      cublas_result = to_host(o.c);
    }
  }
  const double flop = 2.0 * size * size * size;
  std::map<std::string, double> best;
  for (auto& [name, g] : gemms) {
    CHECK(cudaMemsetAsync(o.c.get(), 0xFF, o.c.bytes(), s.get()));
    g->run(o.a.get(), o.b.get(), o.c.get(), size, size, size);
    std::vector<float> first = to_host(o.c);
    if (!cublas_result.empty() && name != "cublas") {
      failures += report(name.c_str(), o, "cublas", compare(first, cublas_result));
    }
    // Timing: 3 rounds of 20 back-to-back GEMMs, each round between two events.
    std::vector<double> tflops;
    for (int round = 0; round < 3; ++round) {
      Event start, end;
      start.record(s);
      for (int i = 0; i < 20; ++i) g->run(o.a.get(), o.b.get(), o.c.get(), size, size, size);
      end.record(s);
      end.sync();
      tflops.push_back(flop * 20 / (end.since(start) * 1e-3) / 1e12);
    }
    std::vector<float> last = to_host(o.c);
    size_t differ = 0;
    for (size_t i = 0; i < last.size(); ++i) differ += std::memcmp(&last[i], &first[i], sizeof(float)) != 0;
    failures += differ != 0;
    std::sort(tflops.begin(), tflops.end());
    best[name] = tflops.back();
    std::printf("time  %-12s %dx%dx%d TFLOP/s best %.1f median %.1f; %zu elements differ from its first run\n",
                name.c_str(), size, size, size, tflops.back(), tflops[1], differ);
  }
  if (best.count("own") && best.count("cublas")) std::printf("ratio own/cublas %.3f\n", best["own"] / best["cublas"]);
  std::printf("%s\n", failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "gemm-bench: %s\n", e.what());
  return 4;
}
