#include <csignal>
#include <cstdio>
#include <ctime>
#include <iostream>

#include "commands.hpp"
#include "common.hpp"
#include "telemetry.hpp"

namespace spawn {

int cmd_sample(const Args& args) {
  double interval = 1.0;
  long count = 0;  // 0: until signalled
  std::string gpus;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string v;
    if (take_value(args, i, "--interval", v)) {
      interval = parse_seconds("--interval", v);
      if (interval < 0.01) throw UsageError("--interval must be at least 10ms, got '" + v + "'");
    } else if (take_value(args, i, "--count", v)) {
      count = parse_int("--count", v, 1, 1L << 40);
    } else if (take_value(args, i, "--gpus", v)) {
      gpus = v;
    } else {
      throw UsageError("sample: unknown argument '" + args[i] + "' (see spawn-executor --help)");
    }
  }
  // Block the stop signals and wait for them with sigtimedwait between samples: a signal ends
  // the loop at a line boundary, so the output is always whole JSON lines.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGHUP);
  sigprocmask(SIG_BLOCK, &stop, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::string reason;
  auto session = nvml::Session::open(reason);
  if (!session) {
    std::cerr << "spawn-executor: sample: " << reason << "\n";
    return kExitNoGpu;
  }
  auto devices = select_devices(*session, gpus, "--gpus");
  if (devices.empty()) {
    std::cerr << "spawn-executor: sample: the NVIDIA driver reports no GPU\n";
    return kExitNoGpu;
  }
  double next = mono_s();
  for (long n = 0; count == 0 || n < count; ++n) {
    std::string line = sample_line(session->api(), devices).dump() + "\n";
    if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size() || std::fflush(stdout) != 0) {
      return kExitOk;  // the reader went away: nothing left to report to
    }
    if (count != 0 && n + 1 >= count) break;
    next += interval;
    double wait = next - mono_s();
    if (wait < 0) {
      next = mono_s();  // fell behind (slow NVML): do not burst to catch up
      wait = 0;
    }
    timespec ts{static_cast<time_t>(wait), static_cast<long>((wait - static_cast<time_t>(wait)) * 1e9)};
    if (sigtimedwait(&stop, nullptr, &ts) > 0) break;
  }
  return kExitOk;
}

}  // namespace spawn
