// `trace`: one task's telemetry (run --samples) and lifecycle (run --report) as Chrome trace
// JSON, which ui.perfetto.dev and chrome://tracing open. Tracks: one thread per GPU (tid = NVML
// index + 1) carrying the task's slice, tid 0 for lifecycle instants, counters per GPU.
#include <fstream>
#include <map>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "common.hpp"

namespace spawn {
namespace {

std::string read_file(const std::string& flag, const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageError(flag + " names a file that cannot be read: " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json::Value meta(const char* what, int tid, const std::string& name) {
  json::Value m;
  m.set("ph", "M");
  m.set("name", what);
  m.set("pid", 1);
  m.set("tid", tid);
  json::Value a;
  a.set("name", name);
  m.set("args", a);
  return m;
}

json::Value counter(const std::string& name, double ts, json::Value args) {
  json::Value c;
  c.set("ph", "C");
  c.set("name", name);
  c.set("pid", 1);
  c.set("tid", 0);
  c.set("ts", ts);
  c.set("args", std::move(args));
  return c;
}

json::Value one(const char* key, const json::Value& v) {
  json::Value o;
  o.set(key, v);
  return o;
}

}  // namespace

int cmd_trace(const Args& args) {
  std::string samples_path, report_path, out_path, label = "task";
  for (size_t i = 0; i < args.size(); ++i) {
    std::string v;
    if (take_value(args, i, "--samples", v)) samples_path = v;
    else if (take_value(args, i, "--report", v)) report_path = v;
    else if (take_value(args, i, "--out", v)) out_path = v;
    else if (take_value(args, i, "--label", v)) label = v;
    else throw UsageError("trace: unknown argument '" + args[i] + "' (see spawn-executor --help)");
  }
  if (samples_path.empty() && report_path.empty()) {
    throw UsageError("trace: give --samples FILE (from run --samples or sample) and/or --report FILE (from run --report)");
  }
  json::Array events;
  std::map<int, std::string> threads{{0, label + " lifecycle"}};

  if (!samples_path.empty()) {
    std::istringstream lines(read_file("--samples", samples_path));
    std::string line;
    int n = 0;
    while (std::getline(lines, line)) {
      ++n;
      if (line.empty()) continue;
      json::Value s;
      try {
        s = json::parse(line);
      } catch (const std::runtime_error& e) {
        throw UsageError("--samples " + samples_path + " line " + std::to_string(n) + ": " + e.what());
      }
      double ts = s["ts_us"].number();
      for (const auto& g : s["gpus"].array()) {
        int index = static_cast<int>(g["index"].number());
        std::string gpu = "GPU " + std::to_string(index);
        threads[index + 1] = gpu + " " + g["uuid"].string();
        json::Value util;
        util.set("gpu_pct", g["utilization_gpu_pct"]);
        util.set("memory_pct", g["utilization_memory_pct"]);
        events.push_back(counter(gpu + " utilization", ts, util));
        double used = g["memory_used_bytes"].number(-1);
        events.push_back(counter(gpu + " memory", ts,
                                 one("used_gib", used < 0 ? json::Value() : json::Value(used / (1 << 30)))));
        events.push_back(counter(gpu + " power", ts, one("watts", g["power_w"])));
        events.push_back(counter(gpu + " temperature", ts, one("celsius", g["temperature_c"])));
        events.push_back(counter(gpu + " SM clock", ts, one("mhz", g["sm_clock_mhz"])));
      }
    }
  }

  if (!report_path.empty()) {
    json::Value r;
    try {
      r = json::parse(read_file("--report", report_path));
    } catch (const std::runtime_error& e) {
      throw UsageError("--report " + report_path + ": " + e.what());
    }
    if (r["type"].string() != "run_report") throw UsageError("--report " + report_path + " is not a run report");
    if (r["started"].boolean()) {
      double start = r["start_us"].number(), end = r["end_us"].number();
      json::Value args_json;
      args_json.set("command", r["command"]);
      args_json.set("status", r["status"]);
      args_json.set("reason", r["reason"]);
      for (const auto& g : r["gpus"].array()) {
        int index = static_cast<int>(g["index"].number());
        threads[index + 1] = "GPU " + std::to_string(index) + " " + g["uuid"].string();
        json::Value x;
        x.set("ph", "X");
        x.set("name", label);
        x.set("cat", "task");
        x.set("pid", 1);
        x.set("tid", index + 1);
        x.set("ts", start);
        x.set("dur", end - start);
        x.set("args", args_json);
        events.push_back(x);
      }
    }
    for (const auto& e : r["events"].array()) {
      json::Value i;
      i.set("ph", "i");
      i.set("s", "p");
      i.set("name", e["type"]);
      i.set("cat", "lifecycle");
      i.set("pid", 1);
      i.set("tid", 0);
      i.set("ts", e["ts_us"]);
      i.set("args", e);
      events.push_back(i);
    }
  }

  json::Array all{meta("process_name", 0, label)};
  for (const auto& [tid, name] : threads) all.push_back(meta("thread_name", tid, name));
  for (auto& e : events) all.push_back(std::move(e));
  json::Value doc;
  doc.set("traceEvents", all);
  doc.set("displayTimeUnit", "ms");
  json::Value other = document("trace");
  other.set("label", label);
  doc.set("otherData", other);
  if (out_path.empty()) {
    print_json(doc);
  } else {
    std::ofstream out(out_path);
    out << doc.dump() << "\n";
    if (!out) throw UsageError("--out names a file that cannot be written: " + out_path);
  }
  return kExitOk;
}

}  // namespace spawn
