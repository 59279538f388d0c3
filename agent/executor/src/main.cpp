// spawn-executor: the native side of the spawn agent. See docs/executor.md.
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>

#include "check.hpp"
#include "commands.hpp"
#include "common.hpp"

namespace spawn {

bool take_value(const Args& args, size_t& i, const std::string& name, std::string& value) {
  const std::string& a = args[i];
  if (a == name) {
    if (i + 1 >= args.size()) throw UsageError(name + " needs a value");
    value = args[++i];
    return true;
  }
  if (a.size() > name.size() && a.compare(0, name.size(), name) == 0 && a[name.size()] == '=') {
    value = a.substr(name.size() + 1);
    return true;
  }
  return false;
}

}  // namespace spawn

namespace {

const char* kHelp = R"(spawn-executor: probe, health-check, sample and budget the GPUs of a spawn instance.

Usage:
  spawn-executor probe
      One JSON object: driver and CUDA versions, and per GPU its UUID, name, compute capability,
      SM count, memory, clocks, bus width, ECC and MIG mode, PCIe link, and theoretical peaks
      (memory bandwidth, dense BF16/FP16 and FP32 FLOP/s, PCIe) each with its source. Without a
      driver or GPU: {"schema":1,"type":"probe","gpus":[],"reason":"..."} and exit 0.
  spawn-executor health [--quick|--full] [--seconds N] [--gpus UUID,...]
                        [--checks hbm,pcie,gemm,nvml] [--gemm-backend auto|cublas|own]
      Active checks on every GPU in parallel: HBM copy/triad (GB/s, read+write bytes counted),
      pinned H2D/D2H, a burn-in GEMM with a cross-iteration compare, NVML ECC / remapped rows /
      retired pages / critical Xid watch; a pass|warn|fail verdict per GPU with reasons, against
      per-SKU thresholds (sku-data.json). --quick (default) takes a few seconds; --full runs
      larger and longer (--seconds sets the GEMM burn time: 2 quick, 30 full).
  spawn-executor sample [--interval 1s] [--count N] [--gpus UUID,...]
      JSON lines of NVML telemetry (utilization, memory, power, temperature, SM clock,
      per-process GPU memory) every interval until SIGTERM/SIGINT (or N lines).
  spawn-executor run --gpus UUID,... [--mem-limit 20GiB] [--sm-percent 50] [--grace 10s]
                     [--poll 500ms] [--report FILE] [--samples FILE] [--sample-interval 1s]
                     -- COMMAND [ARGS...]
      Runs COMMAND with CUDA_VISIBLE_DEVICES=UUIDs (MPS limits when an MPS daemon runs), holds
      each GPU's memory used by the task's processes under --mem-limit (SIGTERM, then SIGKILL
      after --grace; reason gpu_memory_budget_exceeded), forwards SIGTERM/INT/HUP/QUIT/USR1/USR2
      to the task's process group, writes a JSON exit report to FILE, and exits with the task's
      status (128+N when killed by signal N).
  spawn-executor trace [--samples FILE] [--report FILE] [--label NAME] [--out FILE]
      A task's samples and run report as Perfetto / Chrome trace JSON.
  spawn-executor --help | --version

Exit codes: 0 ok; 1 health: a GPU failed; 2 bad usage or input; 3 no driver or no GPU;
4 unexpected CUDA/NVML error. run: the task's status; 126 cannot execute; 127 not found.
Environment: SPAWN_NVML_LIBRARY (NVML library to load instead of libnvidia-ml.so.1),
SPAWN_EXECUTOR_SKU_DATA (replaces the embedded sku-data.json).
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "spawn-executor: missing subcommand (probe, health, sample, run, trace); see --help\n";
    return spawn::kExitUsage;
  }
  std::string cmd = argv[1];
  spawn::Args args(argv + 2, argv + argc);
  try {
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      std::fputs(kHelp, stdout);
      return spawn::kExitOk;
    }
    if (cmd == "--version") {
      std::printf("spawn-executor schema %d\n", spawn::kSchema);
      return spawn::kExitOk;
    }
    for (const auto& a : args) {
      if (a == "--help" || a == "-h") {
        std::fputs(kHelp, stdout);
        return spawn::kExitOk;
      }
      if (a == "--") break;
    }
    if (cmd == "probe") return spawn::cmd_probe(args);
    if (cmd == "health") return spawn::cmd_health(args);
    if (cmd == "sample") return spawn::cmd_sample(args);
    if (cmd == "run") return spawn::cmd_run(args);
    if (cmd == "trace") return spawn::cmd_trace(args);
    std::cerr << "spawn-executor: unknown subcommand '" << cmd << "' (probe, health, sample, run, trace); see --help\n";
    return spawn::kExitUsage;
  } catch (const spawn::UsageError& e) {
    std::cerr << "spawn-executor: " << e.what() << "\n";
    return spawn::kExitUsage;
  } catch (const spawn::ApiError& e) {
    std::cerr << "spawn-executor: " << e.what() << "\n";
    return spawn::kExitInternal;
  } catch (const std::exception& e) {
    std::cerr << "spawn-executor: internal error: " << e.what() << "\n";
    return spawn::kExitInternal;
  }
}
