#include <cuda.h>  // CUtensorMap and its enums (types only: libcuda is reached through the runtime)
#include <cudaTypedefs.h>
#include <dlfcn.h>
#include <mma.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>

#include "check.hpp"
#include "common.hpp"
#include "cuda_raii.hpp"
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

// ---- Own kernels -----------------------------------------------------------------------------
// Two kernels: a TMA + wgmma kernel for Hopper (sm_90a only; within a few percent of cuBLAS on an
// H100, docs/BENCHMARKS.md), and a portable WMMA kernel for every other architecture. make_own
// picks at run time.

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// ---- Portable WMMA kernel (sm_80 and newer) ---------------------------------------------------
// 128x128x32 block tile, 8 warps (2 x 4), each warp 64x32 of WMMA 16x16x16 BF16 fragments,
// a 3-stage cp.async pipeline through padded shared memory.
namespace portable {

constexpr int kBM = 128, kBN = 128, kBK = 32, kStages = 3, kPad = 8, kLd = kBK + kPad;
constexpr int kThreads = 256;
constexpr size_t kSmemBytes = static_cast<size_t>(kStages) * (kBM + kBN) * kLd * sizeof(__nv_bfloat16);

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_u32(smem)), "l"(gmem));
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

}  // namespace portable

// ---- Hopper kernel (sm_90a): TMA loads, wgmma, warp specialization ---------------------------
// 128x256x64 block tile, 3 warpgroups: warpgroup 0 is the producer (one thread issues TMA loads
// into a 4-stage ring of 128-byte-swizzled shared memory), warpgroups 1 and 2 are consumers that
// each own 64 rows of the tile and issue m64n256k16 wgmma from shared memory, FP32 accumulating
// in 128 registers per thread. Full/empty mbarriers hand stages back and forth. Blocks walk the
// tiles in groups of kGroupM tile rows so concurrent blocks share A and B panels in L2.
namespace sm90 {

constexpr int kBM = 128, kBN = 256, kBK = 64, kStages = 4, kConsumers = 2;
constexpr int kThreads = 128 * (1 + kConsumers);
constexpr uint32_t kTileA = kBM * kBK, kTileB = kBN * kBK;  // elements per stage
constexpr uint32_t kStageBytes = (kTileA + kTileB) * sizeof(__nv_bfloat16);
// The stages, then a full and an empty barrier per stage, plus slack to align to 1024 bytes
// (the 128-byte swizzle pattern repeats every 1024 bytes; TMA and wgmma both assume that base).
constexpr size_t kSmemBytes = kStages * kStageBytes + 2 * kStages * sizeof(uint64_t) + 1024;

// The device code below exists only in the sm_90a compile; other architectures get an empty
// kernel that make_own never launches.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
constexpr int kGroupM = 16;

__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count));
}
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_u32(bar)) : "memory");
}
// Waits until the barrier's phase with this parity has completed.
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(smem_u32(bar)), "r"(parity)
        : "memory");
  } while (done == 0);
}
// One TMA box (x = column in elements, y = row) into shared memory, counted on `bar`.
__device__ __forceinline__ void tma_load(void* dst, const CUtensorMap* map, int x, int y, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3}], [%4];\n" ::"r"(smem_u32(dst)),
      "l"(map), "r"(x), "r"(y), "r"(smem_u32(bar))
      : "memory");
}
// wgmma shared-memory descriptor for a K-major operand in a 128-byte-swizzled tile whose rows
// are 64 BF16 (128 bytes): start address, leading offset 16 bytes (unused with this swizzle),
// stride 1024 bytes between groups of 8 rows, swizzle mode 1 (128B). Addresses are in 16 bytes.
__device__ __forceinline__ uint64_t smem_desc(const __nv_bfloat16* p) {
  return ((smem_u32(p) & 0x3FFFFu) >> 4) | (uint64_t{16 >> 4} << 16) | (uint64_t{1024 >> 4} << 32) |
         (uint64_t{1} << 62);
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
// Tells the compiler the accumulators may change here, so no read of them moves across a wait.
__device__ __forceinline__ void fence_registers(float (&d)[128]) {
  for (float& r : d) asm volatile("" : "+f"(r)::"memory");
}
// D[64x256] += A[64x16] * B[256x16]^T, both operands K-major in shared memory.
__device__ __forceinline__ void wgmma_m64n256k16(float (&d)[128], uint64_t desc_a, uint64_t desc_b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
      "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
      "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
      "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
        "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
        "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
        "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
        "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
        "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
        "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
        "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
        "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
      : "l"(desc_a), "l"(desc_b), "r"(1));
}

#endif

__global__ void __launch_bounds__(kThreads, 1)
    wgmma_gemm_bf16(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                    __nv_bfloat16* __restrict__ c, int m, int n, int k) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024 - smem_u32(smem_raw) % 1024) % 1024);
  auto* sa = reinterpret_cast<__nv_bfloat16*>(smem);  // [stage][kBM][kBK], swizzled
  __nv_bfloat16* sb = sa + kStages * kTileA;           // [stage][kBN][kBK], swizzled
  auto* full = reinterpret_cast<uint64_t*>(sb + kStages * kTileB);
  uint64_t* empty = full + kStages;

  // Grouped raster: kGroupM tile rows at a time, column by column within the group.
  const int tiles_m = m / kBM, tiles_n = n / kBN;
  const int group = blockIdx.x / (kGroupM * tiles_n), first_m = group * kGroupM;
  const int group_rows = min(tiles_m - first_m, kGroupM);
  const int in_group = blockIdx.x % (kGroupM * tiles_n);
  const int tile_m = first_m + in_group % group_rows, tile_n = in_group / group_rows;
  const int ktiles = k / kBK;

  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], kConsumers);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  const int warpgroup = threadIdx.x / 128;
  if (warpgroup == 0) {
    // The producer needs few registers; give them to the consumers' accumulators.
    asm volatile("setmaxnreg.dec.sync.aligned.u32 24;\n");
    if (threadIdx.x == 0) {
      for (int kt = 0; kt < ktiles; ++kt) {
        const int s = kt % kStages;
        // Round r of a slot waits for the consumers to release round r-1 (round 0 passes).
        mbar_wait(&empty[s], ((kt / kStages) & 1) ^ 1);
        mbar_arrive_expect_tx(&full[s], kStageBytes);
        tma_load(sa + s * kTileA, &map_a, kt * kBK, tile_m * kBM, &full[s]);
        tma_load(sb + s * kTileB, &map_b, kt * kBK, tile_n * kBN, &full[s]);
      }
    }
    return;
  }
  asm volatile("setmaxnreg.inc.sync.aligned.u32 240;\n");
  const int consumer = warpgroup - 1;  // owns rows consumer*64 .. +63 of the tile
  float d[128];
  for (float& r : d) r = 0.0f;
  for (int kt = 0; kt < ktiles; ++kt) {
    const int s = kt % kStages;
    mbar_wait(&full[s], (kt / kStages) & 1);
    const __nv_bfloat16* a_tile = sa + s * kTileA + consumer * 64 * kBK;
    const __nv_bfloat16* b_tile = sb + s * kTileB;
    wgmma_fence();
    // Within a 128-byte swizzled row the k16 slices start 32 bytes apart.
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) wgmma_m64n256k16(d, smem_desc(a_tile + kk), smem_desc(b_tile + kk));
    wgmma_commit();
    wgmma_wait_all();
    if (threadIdx.x % 128 == 0) mbar_arrive(&empty[s]);
  }
  fence_registers(d);

  // Accumulator layout of m64nNk16: thread (warp w, lane l) holds rows 16w + l/4 and +8, and
  // for each 8-column group i the columns 8i + 2(l%4) and +1.
  const int warp = (threadIdx.x % 128) / 32, lane = threadIdx.x % 32;
  const size_t row = static_cast<size_t>(tile_m) * kBM + consumer * 64 + warp * 16 + lane / 4;
  __nv_bfloat16* out = c + row * n + static_cast<size_t>(tile_n) * kBN + 2 * (lane % 4);
#pragma unroll
  for (int i = 0; i < kBN / 8; ++i) {
    *reinterpret_cast<__nv_bfloat162*>(out + 8 * i) = __floats2bfloat162_rn(d[4 * i], d[4 * i + 1]);
    *reinterpret_cast<__nv_bfloat162*>(out + 8 * static_cast<size_t>(n) + 8 * i) =
        __floats2bfloat162_rn(d[4 * i + 2], d[4 * i + 3]);
  }
#else
  (void)map_a, (void)map_b, (void)c, (void)m, (void)n, (void)k;
#endif
}

// Writes 1 when the device runs this file's sm_90a image, i.e. when wgmma_gemm_bf16 has a body.
__global__ void probe_sm90a(int* out) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  *out = 1;
#else
  *out = 0;
#endif
}

}  // namespace sm90

void check_size(int m, int n, int k, int tm, int tn, int tk) {
  if (m <= 0 || n <= 0 || k <= 0 || m % tm != 0 || n % tn != 0 || k % tk != 0) {
    throw UsageError("own GEMM kernel needs m, n, k multiples of " + std::to_string(tm) + ", " + std::to_string(tn) +
                     ", " + std::to_string(tk) + "; got " + std::to_string(m) + ", " + std::to_string(n) + ", " +
                     std::to_string(k));
  }
}

class WmmaGemm final : public Gemm {
 public:
  WmmaGemm(cudaStream_t stream, std::string why) : stream_(stream), why_(std::move(why)) {
    CHECK(cudaFuncSetAttribute(portable::wmma_gemm_bf16, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(portable::kSmemBytes)));
  }
  void run(const __nv_bfloat16* a, const __nv_bfloat16* b, __nv_bfloat16* c, int m, int n, int k) override {
    check_size(m, n, k, portable::kBM, portable::kBN, portable::kBK);
    dim3 grid(n / portable::kBN, m / portable::kBM);
    portable::wmma_gemm_bf16<<<grid, portable::kThreads, portable::kSmemBytes, stream_>>>(a, b, c, n, k);
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

class HopperGemm final : public Gemm {
 public:
  HopperGemm(cudaStream_t stream, std::string why) : stream_(stream), why_(std::move(why)) {
    // The driver's tensor-map encoder, through the runtime so nothing links against libcuda.
    cudaDriverEntryPointQueryResult found{};
    CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", reinterpret_cast<void**>(&encode_), 12000,
                                           cudaEnableDefault, &found));
    if (found != cudaDriverEntryPointSuccess || encode_ == nullptr) {
      throw_api_error("cuda", static_cast<int>(found), "driver lacks cuTensorMapEncodeTiled",
                      "cudaGetDriverEntryPointByVersion", __FILE__, __LINE__, false);
    }
    CHECK(cudaFuncSetAttribute(sm90::wgmma_gemm_bf16, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(sm90::kSmemBytes)));
  }
  void run(const __nv_bfloat16* a, const __nv_bfloat16* b, __nv_bfloat16* c, int m, int n, int k) override {
    check_size(m, n, k, sm90::kBM, sm90::kBN, sm90::kBK);
    CUtensorMap map_a = tensor_map(a, m, k, sm90::kBM), map_b = tensor_map(b, n, k, sm90::kBN);
    const unsigned blocks = static_cast<unsigned>((m / sm90::kBM) * (n / sm90::kBN));
    sm90::wgmma_gemm_bf16<<<blocks, sm90::kThreads, sm90::kSmemBytes, stream_>>>(map_a, map_b, c, m, n, k);
    CHECK(cudaGetLastError());
  }
  const char* backend() const override { return "own"; }
  std::string detail() const override {
    return "own Hopper BF16 kernel (TMA + wgmma, 128x256x64 tiles, 4 stages, warp-specialized), FP32 accumulate" +
           (why_.empty() ? std::string() : "; " + why_);
  }

 private:
  // A row-major [rows][k] BF16 matrix, read in boxes of box_rows x 64 with the 128-byte swizzle
  // that the wgmma descriptors expect.
  CUtensorMap tensor_map(const __nv_bfloat16* p, int rows, int k, int box_rows) const {
    CUtensorMap map{};
    const cuuint64_t dims[2] = {static_cast<cuuint64_t>(k), static_cast<cuuint64_t>(rows)};
    const cuuint64_t strides[1] = {static_cast<cuuint64_t>(k) * sizeof(__nv_bfloat16)};
    const cuuint32_t box[2] = {sm90::kBK, static_cast<cuuint32_t>(box_rows)};
    const cuuint32_t unit[2] = {1, 1};
    CUresult r = encode_(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<__nv_bfloat16*>(p), dims, strides, box,
                         unit, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                         CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) {
      throw_api_error("cuda driver", static_cast<int>(r), "cuTensorMapEncodeTiled failed", "cuTensorMapEncodeTiled",
                      __FILE__, __LINE__, false);
    }
    return map;
  }

  cudaStream_t stream_;
  std::string why_;
  PFN_cuTensorMapEncodeTiled_v12000 encode_ = nullptr;
};

// The Hopper kernel where the device runs its sm_90a image, else the portable one.
std::unique_ptr<Gemm> make_own(cudaStream_t stream, const std::string& why) {
  cuda::DeviceBuffer<int> flag(1);
  sm90::probe_sm90a<<<1, 1, 0, stream>>>(flag.get());
  CHECK(cudaGetLastError());
  int sm90a = 0;
  CHECK(cudaMemcpyAsync(&sm90a, flag.get(), sizeof sm90a, cudaMemcpyDeviceToHost, stream));
  CHECK(cudaStreamSynchronize(stream));
  if (sm90a == 1) return std::make_unique<HopperGemm>(stream, why);
  return std::make_unique<WmmaGemm>(stream, why);
}

}  // namespace

std::unique_ptr<Gemm> make_gemm(const std::string& backend, cudaStream_t stream) {
  if (backend == "own") return make_own(stream, "");
  if (backend == "own-portable") return std::make_unique<WmmaGemm>(stream, "");
  const CublasApi& api = cublas();
  if (api.create != nullptr) return std::make_unique<CublasGemm>(stream);
  if (backend == "cublas") throw UsageError("--gemm-backend cublas: cannot load cuBLAS: " + api.error);
  return make_own(stream, "cuBLAS not loadable: " + api.error);
}

}  // namespace spawn
