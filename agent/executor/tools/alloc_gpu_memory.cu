// Device-check helper: allocates N GiB on the GPU (touching it, so it is really resident), holds
// it for S seconds, then exits 0. Used to show `run --mem-limit 1GiB` stopping a 2 GiB task.
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <unistd.h>

int main(int argc, char** argv) {
  double gib = argc > 1 ? std::atof(argv[1]) : 2.0;
  int seconds = argc > 2 ? std::atoi(argv[2]) : 30;
  size_t bytes = static_cast<size_t>(gib * (1ull << 30));
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess) {
    std::fprintf(stderr, "alloc-gpu-memory: cudaMalloc(%zu): %s\n", bytes, cudaGetErrorString(e));
    return 1;
  }
  e = cudaMemset(p, 1, bytes);
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  if (e != cudaSuccess) {
    std::fprintf(stderr, "alloc-gpu-memory: cudaMemset: %s\n", cudaGetErrorString(e));
    return 1;
  }
  std::printf("alloc-gpu-memory: holding %.2f GiB for %d s\n", gib, seconds);
  std::fflush(stdout);
  sleep(static_cast<unsigned>(seconds));
  return cudaFree(p) == cudaSuccess ? 0 : 1;
}
