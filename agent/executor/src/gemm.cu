#include <dlfcn.h>
#include <mma.h>

#include <cstdlib>
#include <mutex>

#include "check.hpp"
#include "common.hpp"
#include "gemm.hpp"

namespace spawn {
namespace {

// ---- cuBLAS through dlopen ------------------------------------------------------------------

using cublasHandle_t = void*;
constexpr int kOpN = 0, kOpT = 1;
constexpr int kComputeF32 = 68;   // CUBLAS_COMPUTE_32F
constexpr int kGemmDefault = -1;  // CUBLAS_GEMM_DEFAULT

struct CublasApi {
  CublasStatus (*create)(cublasHandle_t*);
  CublasStatus (*destroy)(cublasHandle_t);
  CublasStatus (*set_stream)(cublasHandle_t, cudaStream_t);
  CublasStatus (*gemm_ex)(cublasHandle_t, int, int, int, int, int, const void*, const void*, cudaDataType_t, int,
                          const void*, cudaDataType_t, int, const void*, void*, cudaDataType_t, int, int, int);
  std::string library;
  std::string error;  // why it could not be loaded
};

// Loaded once per process; the library stays mapped until exit (cuBLAS does not support
// being unloaded while handles may exist on other threads).
const CublasApi& cublas() {
  static CublasApi api{};
  static std::once_flag once;
  std::call_once(once, [] {
    const char* override_path = std::getenv("SPAWN_CUBLAS_LIBRARY");
    const char* candidates[] = {override_path, "libcublas.so.13", "libcublas.so.12",
                                "/usr/local/cuda/lib64/libcublas.so.13", "/usr/local/cuda/lib64/libcublas.so.12"};
    for (const char* path : candidates) {
      if (path == nullptr || *path == '\0') continue;
      void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
      if (h == nullptr) {
        const char* e = dlerror();
        api.error += std::string(api.error.empty() ? "" : "; ") + (e != nullptr ? e : path);
        continue;
      }
      api.create = reinterpret_cast<decltype(api.create)>(dlsym(h, "cublasCreate_v2"));
      api.destroy = reinterpret_cast<decltype(api.destroy)>(dlsym(h, "cublasDestroy_v2"));
      api.set_stream = reinterpret_cast<decltype(api.set_stream)>(dlsym(h, "cublasSetStream_v2"));
      api.gemm_ex = reinterpret_cast<decltype(api.gemm_ex)>(dlsym(h, "cublasGemmEx"));
      if (api.create && api.destroy && api.set_stream && api.gemm_ex) {
        api.library = path;
        api.error.clear();
        return;
      }
      api.error += std::string("; ") + path + " lacks cublasGemmEx";
      api.create = nullptr;
      dlclose(h);
    }
  });
  return api;
}

class CublasGemm final : public Gemm {
 public:
  explicit CublasGemm(cudaStream_t stream) : api_(cublas()) {
    CHECK(api_.create(&handle_));
    CHECK(api_.set_stream(handle_, stream));
  }
  CublasGemm(const CublasGemm&) = delete;
  CublasGemm& operator=(const CublasGemm&) = delete;
  ~CublasGemm() override {
    if (handle_ != nullptr) (void)api_.destroy(handle_);
  }
  void run(const __nv_bfloat16* a, const __nv_bfloat16* b, __nv_bfloat16* c, int m, int n, int k) override {
    // Row-major C[m][n] = A B^T is column-major C^T[n][m] = B A^T: op(B)=T (ld k), op(A)=N (ld k).
    const float alpha = 1.0f, beta = 0.0f;
    CHECK(api_.gemm_ex(handle_, kOpT, kOpN, n, m, k, &alpha, b, CUDA_R_16BF, k, a, CUDA_R_16BF, k, &beta, c,
                       CUDA_R_16BF, n, kComputeF32, kGemmDefault));
  }
  const char* backend() const override { return "cublas"; }
  std::string detail() const override { return "cublasGemmEx BF16 in/out, FP32 compute, from " + api_.library; }

 private:
  const CublasApi& api_;
  cublasHandle_t handle_ = nullptr;
};

// ---- Own tensor-core kernel -----------------------------------------------------------------
// 128x128x32 block tile, 8 warps (2 x 4), each warp 64x32 of WMMA 16x16x16 BF16 fragments,
// a 3-stage cp.async pipeline through padded shared memory.

constexpr int kBM = 128, kBN = 128, kBK = 32, kStages = 3, kPad = 8, kLd = kBK + kPad;
constexpr int kThreads = 256;
constexpr size_t kSmemBytes = static_cast<size_t>(kStages) * (kBM + kBN) * kLd * sizeof(__nv_bfloat16);

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__global__ void __launch_bounds__(kThreads) wmma_gemm_bf16(const __nv_bfloat16* __restrict__ a,
                                                           const __nv_bfloat16* __restrict__ b,
                                                           __nv_bfloat16* __restrict__ c, int n, int k) {
  using namespace nvcuda;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  auto* sa = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [stage][kBM][kLd]
  __nv_bfloat16* sb = sa + kStages * kBM * kLd;            // [stage][kBN][kLd]
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int warp_m = warp / 4, warp_n = warp % 4;  // warp tile origin: (warp_m*64, warp_n*32)
  const int row0 = blockIdx.y * kBM, col0 = blockIdx.x * kBN;
  const __nv_bfloat16* ga = a + static_cast<size_t>(row0) * k;
  const __nv_bfloat16* gb = b + static_cast<size_t>(col0) * k;

  // Each stage moves 2 x 128 rows x 64 bytes = 1024 16-byte chunks: 2 per thread per operand.
  auto load = [&](int stage, int ktile) {
    for (int i = 0; i < 2; ++i) {
      int chunk = tid + i * kThreads;
      int r = chunk / 4, cc = (chunk % 4) * 8;
      size_t goff = static_cast<size_t>(r) * k + ktile * kBK + cc;
      cp_async16(sa + (stage * kBM + r) * kLd + cc, ga + goff);
      cp_async16(sb + (stage * kBN + r) * kLd + cc, gb + goff);
    }
  };

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4][2];
  for (auto& row : acc) {
    for (auto& f : row) wmma::fill_fragment(f, 0.0f);
  }
  const int ktiles = k / kBK;
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < ktiles) load(s, s);
    cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<kStages - 2>();
    __syncthreads();
    // The slot being refilled was last read in iteration kt-1, which every warp has finished.
    int next = kt + kStages - 1;
    if (next < ktiles) load(next % kStages, next);
    cp_async_commit();
    const int stage = kt % kStages;
    for (int kk = 0; kk < kBK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa[4];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb[2];
      for (int i = 0; i < 4; ++i) {
        wmma::load_matrix_sync(fa[i], sa + (stage * kBM + warp_m * 64 + i * 16) * kLd + kk, kLd);
      }
      for (int j = 0; j < 2; ++j) {
        wmma::load_matrix_sync(fb[j], sb + (stage * kBN + warp_n * 32 + j * 16) * kLd + kk, kLd);
      }
      for (int i = 0; i < 4; ++i) {
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
      }
    }
  }
  cp_async_wait<0>();
  __syncthreads();
  // Epilogue: each warp converts its fragments to BF16 through a private 16x16 FP32 scratch.
  float* scratch = reinterpret_cast<float*>(smem_raw) + warp * 256;
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 2; ++j) {
      wmma::store_matrix_sync(scratch, acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      int r = lane / 2, cbase = (lane % 2) * 8;
      size_t out = static_cast<size_t>(row0 + warp_m * 64 + i * 16 + r) * n + col0 + warp_n * 32 + j * 16 + cbase;
      for (int e = 0; e < 8; ++e) c[out + e] = __float2bfloat16(scratch[r * 16 + cbase + e]);
      __syncwarp();
    }
  }
}

class OwnGemm final : public Gemm {
 public:
  OwnGemm(cudaStream_t stream, std::string why) : stream_(stream), why_(std::move(why)) {
    CHECK(cudaFuncSetAttribute(wmma_gemm_bf16, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(kSmemBytes)));
  }
  void run(const __nv_bfloat16* a, const __nv_bfloat16* b, __nv_bfloat16* c, int m, int n, int k) override {
    dim3 grid(n / kBN, m / kBM);
    wmma_gemm_bf16<<<grid, kThreads, kSmemBytes, stream_>>>(a, b, c, n, k);
    CHECK(cudaGetLastError());
  }
  const char* backend() const override { return "own"; }
  std::string detail() const override {
    return "own WMMA BF16 kernel (128x128x32 tiles, 3-stage cp.async), FP32 accumulate" +
           (why_.empty() ? std::string() : "; " + why_);
  }

 private:
  cudaStream_t stream_;
  std::string why_;
};

}  // namespace

std::unique_ptr<Gemm> make_gemm(const std::string& backend, cudaStream_t stream) {
  if (backend == "own") return std::make_unique<OwnGemm>(stream, "");
  const CublasApi& api = cublas();
  if (api.create != nullptr) return std::make_unique<CublasGemm>(stream);
  if (backend == "cublas") throw UsageError("--gemm-backend cublas: cannot load cuBLAS: " + api.error);
  return std::make_unique<OwnGemm>(stream, "cuBLAS not loadable: " + api.error);
}

}  // namespace spawn
