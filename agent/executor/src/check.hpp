// One macro checks every CUDA runtime and NVML call: CHECK(expr) evaluates `expr`, returns
// true on success, returns false when NVML says the feature is not supported on this device,
// not permitted to this process, or missing from the loaded library, and throws ApiError carrying the expression,
// the API's message, file and line on any other failure.
#pragma once

#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

#include "nvml.hpp"

namespace spawn {

class ApiError : public std::runtime_error {
 public:
  ApiError(const std::string& what, bool gpu_lost) : std::runtime_error(what), gpu_lost_(gpu_lost) {}
  // The driver reported the GPU itself gone (Xid 79 style): a health `fail`, not our bug.
  bool gpu_lost() const { return gpu_lost_; }

 private:
  bool gpu_lost_;
};

[[noreturn]] void throw_api_error(const char* api, int code, const char* message, const char* expr,
                                  const char* file, int line, bool gpu_lost);

inline bool check_result(cudaError_t e, const char* expr, const char* file, int line) {
  if (e == cudaSuccess) return true;
  // Clear the sticky-free error state so a later, unrelated call does not report it again.
  (void)cudaGetLastError();
  throw_api_error("cuda", static_cast<int>(e), cudaGetErrorString(e), expr, file, line,
                  e == cudaErrorDevicesUnavailable || e == cudaErrorIllegalAddress ||
                      e == cudaErrorLaunchFailure);
}

inline bool check_result(nvmlReturn_t r, const char* expr, const char* file, int line) {
  if (r == NVML_SUCCESS) return true;
  if (r == NVML_ERROR_NOT_SUPPORTED || r == NVML_ERROR_FUNCTION_NOT_FOUND || r == NVML_ERROR_NO_PERMISSION) {
    return false;
  }
  const nvml::Api* api = nvml::loaded_api();
  const char* message = api != nullptr && api->ErrorString != nullptr ? api->ErrorString(r) : "nvml error";
  throw_api_error("nvml", static_cast<int>(r), message, expr, file, line, r == NVML_ERROR_GPU_IS_LOST);
}

// cuBLAS is loaded with dlopen too (gemm.cu); its status is an int, 0 on success.
enum class CublasStatus : int { kSuccess = 0 };

inline bool check_result(CublasStatus s, const char* expr, const char* file, int line) {
  if (s == CublasStatus::kSuccess) return true;
  throw_api_error("cublas", static_cast<int>(s), "see cublasStatus_t", expr, file, line, false);
}

}  // namespace spawn

#define CHECK(expr) ::spawn::check_result((expr), #expr, __FILE__, __LINE__)
