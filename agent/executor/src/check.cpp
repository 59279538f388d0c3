#include "check.hpp"

namespace spawn {

void throw_api_error(const char* api, int code, const char* message, const char* expr, const char* file, int line,
                     bool gpu_lost) {
  throw ApiError(std::string(api) + " error " + std::to_string(code) + " (" + message + ") in " + expr + " at " + file +
                     ":" + std::to_string(line),
                 gpu_lost);
}

}  // namespace spawn
