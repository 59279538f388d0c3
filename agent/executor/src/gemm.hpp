// BF16 GEMM for the burn-in check: cuBLAS (dlopen'd, libcublas.so.13 or .12) when it can be
// loaded, else our own tensor-core kernel: TMA + wgmma on Hopper (sm_90a), WMMA elsewhere.
// C[M][N] = A[M][K] * B[N][K]^T, all row-major BF16, FP32 accumulation.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <memory>
#include <string>

namespace spawn {

class Gemm {
 public:
  virtual ~Gemm() = default;
  virtual void run(const __nv_bfloat16* a, const __nv_bfloat16* b, __nv_bfloat16* c, int m, int n, int k) = 0;
  // "cublas" or "own"
  virtual const char* backend() const = 0;
  // Which library or kernel, and why (e.g. why cuBLAS was not used).
  virtual std::string detail() const = 0;
};

// backend: "auto" (cuBLAS, falling back to own), "cublas" (throws ApiError/UsageError if it
// cannot be loaded), "own" (the best own kernel for the device) or "own-portable" (the WMMA
// kernel even on Hopper, for tools/gemm_bench.cu). Uses the current device and `stream`.
std::unique_ptr<Gemm> make_gemm(const std::string& backend, cudaStream_t stream);

// Sizes every own kernel takes: m, n and k multiples of kGemmTile (the Hopper kernel needs m % 128,
// n % 256 and k % 64; the WMMA kernel m % 128, n % 128 and k % 32). Others throw UsageError.
inline constexpr int kGemmTile = 256;

}  // namespace spawn
