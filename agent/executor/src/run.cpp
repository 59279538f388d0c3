// `run`: start a task on its GPUs and hold it to its GPU memory budget.
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>

#include "commands.hpp"
#include "common.hpp"
#include "telemetry.hpp"

namespace spawn {
namespace {

struct RunOptions {
  std::string gpus;
  std::optional<uint64_t> mem_limit;
  std::optional<long> sm_percent;
  double grace_s = 10;
  double poll_s = 0.5;
  std::string report;
  std::string samples;
  double sample_interval_s = 1;
  std::vector<std::string> command;
};

RunOptions parse(const Args& args) {
  RunOptions o;
  size_t i = 0;
  for (; i < args.size() && args[i] != "--"; ++i) {
    std::string v;
    if (take_value(args, i, "--gpus", v)) {
      if (v.empty()) throw UsageError("--gpus must list at least one GPU UUID");
      o.gpus = v;
    } else if (take_value(args, i, "--mem-limit", v)) {
      o.mem_limit = parse_size("--mem-limit", v);
    } else if (take_value(args, i, "--sm-percent", v)) {
      o.sm_percent = parse_int("--sm-percent", v, 1, 100);
    } else if (take_value(args, i, "--grace", v)) {
      o.grace_s = parse_seconds("--grace", v);
    } else if (take_value(args, i, "--poll", v)) {
      o.poll_s = parse_seconds("--poll", v);
      if (o.poll_s < 0.01) throw UsageError("--poll must be at least 10ms, got '" + v + "'");
    } else if (take_value(args, i, "--report", v)) {
      o.report = v;
    } else if (take_value(args, i, "--samples", v)) {
      o.samples = v;
    } else if (take_value(args, i, "--sample-interval", v)) {
      o.sample_interval_s = parse_seconds("--sample-interval", v);
      if (o.sample_interval_s < 0.01) throw UsageError("--sample-interval must be at least 10ms, got '" + v + "'");
    } else {
      throw UsageError("run: unknown argument '" + args[i] + "' (the command goes after --)");
    }
  }
  if (o.gpus.empty()) throw UsageError("run: --gpus <uuid,...> is required");
  if (i >= args.size()) throw UsageError("run: missing '-- <command> [args...]'");
  o.command.assign(args.begin() + static_cast<long>(i) + 1, args.end());
  if (o.command.empty()) throw UsageError("run: missing the command after --");
  return o;
}

std::string signal_name(int sig) {
  switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGUSR1: return "SIGUSR1";
    case SIGSEGV: return "SIGSEGV";
    case SIGUSR2: return "SIGUSR2";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    default: return "SIG" + std::to_string(sig);
  }
}

// Parent pid of `pid` from /proc/<pid>/stat, or 0.
pid_t parent_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) is in parentheses and may contain spaces: parse after the last ')'.
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  char state = 0;
  int ppid = 0;
  if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) != 2) return 0;
  return ppid;
}

// A GPU process belongs to the task if it is the task, one of its descendants, or in its
// process group (a daemonised helper that kept the group).
bool belongs_to_task(pid_t pid, pid_t task) {
  if (pid == task || getpgid(pid) == task) return true;
  for (int depth = 0; depth < 64 && pid > 1; ++depth) {
    pid = parent_of(pid);
    if (pid == task) return true;
  }
  return false;
}

// The MPS control daemon listens on <pipe dir>/control.
bool mps_running() {
  const char* dir = std::getenv("CUDA_MPS_PIPE_DIRECTORY");
  std::string control = std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp/nvidia-mps") + "/control";
  struct stat st{};
  return stat(control.c_str(), &st) == 0;
}

json::Value event(const char* type) {
  json::Value e;
  e.set("ts_us", now_us());
  e.set("type", type);
  return e;
}

void write_report(const std::string& path, const json::Value& report) {
  if (path.empty()) return;
  // Write then rename, so a reader never sees half a report.
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << report.dump() << "\n";
    if (!out) {
      std::cerr << "spawn-executor: run: cannot write the report to " << path << "\n";
      return;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::cerr << "spawn-executor: run: cannot write the report to " << path << ": " << std::strerror(errno) << "\n";
  }
}

std::string gib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024 * 1024));
  return buf;
}

}  // namespace

int cmd_run(const Args& args) {
  RunOptions o = parse(args);
  json::Value report = document("run_report");
  json::Array command;
  for (const auto& c : o.command) command.push_back(c);
  report.set("command", command);
  report.set("mem_limit_bytes", o.mem_limit);
  report.set("sm_percent", o.sm_percent);

  // Signals we forward, plus SIGCHLD, are blocked and taken synchronously with sigtimedwait.
  const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  sigset_t waitset, original;
  sigemptyset(&waitset);
  for (int s : forwarded) sigaddset(&waitset, s);
  sigaddset(&waitset, SIGCHLD);
  sigprocmask(SIG_BLOCK, &waitset, &original);

  std::string reason;
  auto session = nvml::Session::open(reason);
  if (!session) {
    std::cerr << "spawn-executor: run: " << reason << "\n";
    report.set("started", false);
    report.set("reason", "no_gpu");
    report.set("message", reason);
    write_report(o.report, report);
    return kExitNoGpu;
  }
  auto devices = select_devices(*session, o.gpus, "--gpus");
  json::Array gpus;
  for (const auto& d : devices) {
    json::Value g;
    g.set("index", d.index);
    g.set("uuid", d.uuid);
    gpus.push_back(g);
  }
  report.set("gpus", gpus);

  // The task sees exactly its GPUs, by UUID (indices are renumbered under MPS).
  setenv("CUDA_VISIBLE_DEVICES", o.gpus.c_str(), 1);
  json::Array warnings;
  bool mps = mps_running();
  if (mps) {
    if (o.mem_limit) {
      // Indices here are the task's own (0..n-1 after CUDA_VISIBLE_DEVICES). Whole MiB, rounded down.
      std::string limits;
      for (size_t i = 0; i < devices.size(); ++i) {
        limits += (i ? "," : "") + std::to_string(i) + "=" + std::to_string(*o.mem_limit >> 20) + "M";
      }
      setenv("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", limits.c_str(), 1);
    }
    if (o.sm_percent) setenv("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", std::to_string(*o.sm_percent).c_str(), 1);
  } else if (o.sm_percent) {
    warnings.push_back("--sm-percent " + std::to_string(*o.sm_percent) +
                       " not applied: no MPS control daemon is running (CUDA_MPS_PIPE_DIRECTORY/control)");
  }
  report.set("mps", mps);
  report.set("warnings", warnings);

  std::vector<char*> argv;
  for (auto& c : o.command) argv.push_back(c.data());
  argv.push_back(nullptr);
  int exec_pipe[2];
  if (pipe2(exec_pipe, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  json::Array events;
  const pid_t executor = getpid();
  pid_t child = fork();
  if (child < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (child == 0) {
    // The task leads its own process group, so signals and the budget kill reach its children.
    setpgid(0, 0);
    // If the executor itself is SIGKILLed (it cannot forward that), the task dies with it
    // instead of running on unwatched in its own process group.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != executor) _exit(kExitCannotExec);
    sigprocmask(SIG_SETMASK, &original, nullptr);
    close(exec_pipe[0]);
    execvp(argv[0], argv.data());
    int err = errno;
    ssize_t ignored = write(exec_pipe[1], &err, sizeof err);
    (void)ignored;
    _exit(kExitNotFound);
  }
  setpgid(child, child);  // also in the parent, so there is no window before the child's call
  close(exec_pipe[1]);
  int exec_errno = 0;
  ssize_t got = read(exec_pipe[0], &exec_errno, sizeof exec_errno);
  close(exec_pipe[0]);
  if (got == static_cast<ssize_t>(sizeof exec_errno)) {
    int ignored_status = 0;
    waitpid(child, &ignored_status, 0);
    int code = exec_errno == ENOENT ? kExitNotFound : kExitCannotExec;
    std::string message = "cannot execute '" + o.command[0] + "': " + std::strerror(exec_errno);
    std::cerr << "spawn-executor: run: " << message << "\n";
    report.set("started", false);
    report.set("reason", exec_errno == ENOENT ? "command_not_found" : "command_not_executable");
    report.set("message", message);
    report.set("status", code);
    write_report(o.report, report);
    return code;
  }
  report.set("started", true);
  report.set("pid", child);
  json::Value start = event("start");
  start.set("pid", child);
  events.push_back(start);
  report.set("start_us", now_us());

  std::FILE* samples = nullptr;
  if (!o.samples.empty()) {
    samples = std::fopen(o.samples.c_str(), "w");
    if (samples == nullptr) {
      std::cerr << "spawn-executor: run: cannot write samples to " << o.samples << ": " << std::strerror(errno) << "\n";
    }
  }

  std::map<std::string, uint64_t> peak;
  bool budget_exceeded = false;
  bool kill_pending = false;
  double kill_at = 0;
  double now = mono_s();
  double next_poll = now;
  double next_sample = now;
  int status = 0;
  const nvml::Api& api = session->api();
  for (;;) {
    if (waitpid(child, &status, WNOHANG) == child) break;
    now = mono_s();
    if (now >= next_poll) {
      next_poll = now + o.poll_s;
      for (const auto& d : devices) {
        uint64_t used = 0;
        for (const auto& p : gpu_processes(api, d.handle)) {
          if (p.memory_known && belongs_to_task(static_cast<pid_t>(p.pid), child)) used += p.used_bytes;
        }
        if (used > peak[d.uuid]) peak[d.uuid] = used;
        if (o.mem_limit && used > *o.mem_limit && !budget_exceeded) {
          budget_exceeded = true;
          std::cerr << "spawn-executor: task exceeded its GPU memory budget on " << d.uuid << ": " << gib(used)
                    << " > " << gib(*o.mem_limit) << "; sending SIGTERM, SIGKILL in " << o.grace_s << " s\n";
          json::Value e = event("gpu_memory_budget_exceeded");
          e.set("gpu", d.uuid);
          e.set("used_bytes", used);
          e.set("limit_bytes", *o.mem_limit);
          events.push_back(e);
          kill(-child, SIGTERM);
          json::Value t = event("sigterm");
          events.push_back(t);
          kill_pending = true;
          kill_at = now + o.grace_s;
        }
      }
    }
    if (kill_pending && now >= kill_at) {
      kill(-child, SIGKILL);
      events.push_back(event("sigkill"));
      kill_pending = false;
    }
    if (samples != nullptr && now >= next_sample) {
      next_sample = now + o.sample_interval_s;
      std::string line = sample_line(api, devices).dump() + "\n";
      std::fwrite(line.data(), 1, line.size(), samples);
      std::fflush(samples);
    }
    double until = next_poll;
    if (kill_pending && kill_at < until) until = kill_at;
    if (samples != nullptr && next_sample < until) until = next_sample;
    double wait = until - mono_s();
    if (wait < 0) wait = 0;
    timespec ts{static_cast<time_t>(wait), static_cast<long>((wait - static_cast<time_t>(wait)) * 1e9)};
    siginfo_t info{};
    int sig = sigtimedwait(&waitset, &info, &ts);
    if (sig > 0 && sig != SIGCHLD) {
      // Forward to the whole group; the task decides how to stop (checkpoint, then exit).
      kill(-child, sig);
      json::Value e = event("signal_forwarded");
      e.set("signal", signal_name(sig));
      events.push_back(e);
    }
  }
  if (samples != nullptr) std::fclose(samples);
  report.set("end_us", now_us());
  int code = 0;
  if (WIFEXITED(status)) {
    code = WEXITSTATUS(status);
    report.set("exit_code", code);
    report.set("signal", nullptr);
  } else {
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : SIGKILL;
    code = 128 + sig;
    report.set("exit_code", nullptr);
    report.set("signal", signal_name(sig));
  }
  // A task stopped for its budget failed, even if it exited 0 on the SIGTERM.
  if (budget_exceeded && code == 0) code = 128 + SIGTERM;
  json::Value exit_event = event("exit");
  exit_event.set("status", code);
  events.push_back(exit_event);
  report.set("status", code);
  report.set("reason", budget_exceeded ? "gpu_memory_budget_exceeded" : WIFEXITED(status) ? "exited" : "signaled");
  json::Value peaks;
  for (const auto& d : devices) peaks.set(d.uuid, peak[d.uuid]);
  report.set("peak_gpu_memory_bytes", peaks);
  report.set("events", events);
  write_report(o.report, report);
  return code;
}

}  // namespace spawn
