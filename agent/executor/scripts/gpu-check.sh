#!/usr/bin/env bash
# Device check for spawn-executor, run from the repository root on a GPU machine:
#   OUT=/tmp/out bash agent/executor/scripts/gpu-check.sh
# Builds with make, compares probe with nvidia-smi, runs health --quick and --full, shows
# run --mem-limit 1GiB stopping a task that allocates 2 GiB, compares the own GEMM kernel with
# cuBLAS, and measures the sampler's overhead (GEMM with and without `sample --interval 1s`,
# alternated). Everything lands under $OUT; summary.json has the headline numbers.
set -uo pipefail
FINAL=${OUT:?set OUT to a directory for the results}
# Work in a scratch directory and pack it into one archive at the end (the device runner
# returns only a few files).
OUT=$(mktemp -d)
X=agent/executor/build/spawn-executor
export PATH=/usr/local/cuda/bin:$PATH

{ nvidia-smi; nvidia-smi -q | head -40; uname -a; nvcc --version; g++ --version | head -1; } >"$OUT/machine.txt" 2>&1
nvidia-smi --query-gpu=uuid,name,compute_cap,memory.total,clocks.max.sm,clocks.max.mem,pcie.link.gen.max,pcie.link.width.max,ecc.mode.current,mig.mode.current,driver_version \
  --format=csv,noheader,nounits >"$OUT/nvidia-smi.csv" 2>&1

start=$(date +%s)
make -C agent/executor -j"$(nproc)" all tools >"$OUT/build.log" 2>&1
echo "build rc=$? seconds=$(($(date +%s) - start))" >>"$OUT/build.log"
# Any compiler warning is a defect (the build also uses -Werror).
grep -c "warning:" "$OUT/build.log" >"$OUT/build-warning-count.txt"
ldd "$X" >"$OUT/ldd.txt" 2>&1

"$X" probe >"$OUT/probe.json" 2>"$OUT/probe.err"; echo "probe rc=$?" >>"$OUT/rc.txt"
t0=$(date +%s.%N)
"$X" health --quick >"$OUT/health-quick.json" 2>"$OUT/health-quick.err"
echo "health-quick rc=$? wall_s=$(python3 -c "print($(date +%s.%N) - $t0)")" >>"$OUT/rc.txt"
"$X" health --full --seconds 20 >"$OUT/health-full.json" 2>"$OUT/health-full.err"; echo "health-full rc=$?" >>"$OUT/rc.txt"

UUID=$(nvidia-smi --query-gpu=uuid --format=csv,noheader | head -1)
"$X" run --gpus "$UUID" --mem-limit 1GiB --grace 5s --report "$OUT/run-report.json" --samples "$OUT/run-samples.jsonl" \
  -- agent/executor/build/alloc-gpu-memory 2 60 >"$OUT/run.out" 2>"$OUT/run.err"
echo "run-mem-limit rc=$?" >>"$OUT/rc.txt"
"$X" trace --samples "$OUT/run-samples.jsonl" --report "$OUT/run-report.json" --label "alloc 2GiB" --out "$OUT/run-trace.json"
echo "trace rc=$?" >>"$OUT/rc.txt"

for b in own cublas; do
  "$X" health --checks gemm --gemm-backend $b --seconds 10 >"$OUT/gemm-$b.json" 2>"$OUT/gemm-$b.err"
done

# The own kernels against cuBLAS on the same GPU, with a CPU-reference correctness check.
make -C agent/executor tools >/dev/null && agent/executor/build/gemm-bench >"$OUT/gemm-bench.txt" 2>&1 || echo "gemm-bench failed" >>"$OUT/gemm-bench.txt"

# Sampler overhead: the same GEMM burn with and without the sampler, alternated to cancel drift.
for i in 1 2 3; do
  "$X" health --checks gemm --seconds 10 >"$OUT/overhead-off-$i.json" 2>/dev/null
  "$X" sample --interval 1s >"$OUT/overhead-samples-$i.jsonl" &
  sp=$!
  "$X" health --checks gemm --seconds 10 >"$OUT/overhead-on-$i.json" 2>/dev/null
  kill -TERM $sp; wait $sp; echo "sampler-$i rc=$?" >>"$OUT/rc.txt"
done

# PyTorch's BF16 matmul (cuBLAS) at the same size, as an outside reference.
python3 - >"$OUT/torch-gemm.txt" 2>&1 <<'PY'
import torch, time
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
for _ in range(10): a @ b.T
torch.cuda.synchronize()
s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
n = 200
s.record()
for _ in range(n): a @ b.T
e.record(); torch.cuda.synchronize()
print("torch bf16 8192^3 TFLOP/s", 2 * 8192**3 * n / (s.elapsed_time(e) * 1e-3) / 1e12)
print("sm_count", torch.cuda.get_device_properties(0).multi_processor_count)
PY

python3 - "$OUT" <<'PY' >"$OUT/summary.json"
import json, sys, csv, statistics
out = sys.argv[1]
def load(name):
    try:
        return json.load(open(f"{out}/{name}"))
    except Exception as e:
        return {"error": str(e)}
probe = load("probe.json")
smi = list(csv.reader(open(f"{out}/nvidia-smi.csv")))
cmp = []
for g, row in zip(probe.get("gpus", []), smi):
    row = [c.strip() for c in row]
    pairs = {
        "uuid": (g["uuid"], row[0]),
        "name": (g["name"], row[1]),
        "compute_capability": (g["compute_capability"], row[2]),
        "memory_total_mib": (g["memory_total_bytes"] // 2**20, int(row[3])),
        "sm_max_mhz": (g["clocks"]["sm_max_mhz"], int(row[4])),
        "memory_max_mhz": (g["clocks"]["memory_max_mhz"], int(row[5])),
        "pcie_max_gen": (g["pcie"]["max_generation"], int(row[6])),
        "pcie_max_width": (g["pcie"]["max_width"], int(row[7])),
        "ecc": (g["ecc"]["enabled"], row[8] == "Enabled"),
        "mig": (g["mig"]["enabled"], row[9] == "Enabled"),
    }
    cmp.append({k: {"probe": a, "nvidia_smi": b, "match": a == b} for k, (a, b) in pairs.items()})
def gemm_tflops(name):
    d = load(name)
    try:
        return d["gpus"][0]["checks"]["gemm"]["tflops"]
    except Exception:
        return None
off = [gemm_tflops(f"overhead-off-{i}.json") for i in (1, 2, 3)]
on = [gemm_tflops(f"overhead-on-{i}.json") for i in (1, 2, 3)]
quick, full = load("health-quick.json"), load("health-full.json")
def pick(h):
    try:
        g = h["gpus"][0]
        c = g["checks"]
        return {"verdict": g["verdict"], "reasons": g["reasons"], "elapsed_s": h["elapsed_s"],
                "hbm": c.get("hbm"), "pcie": c.get("pcie"), "gemm": c.get("gemm")}
    except Exception as e:
        return {"error": str(e)}
own, cub = gemm_tflops("gemm-own.json"), gemm_tflops("gemm-cublas.json")
summary = {
    "probe_vs_nvidia_smi": cmp,
    "all_match": all(v["match"] for c in cmp for v in c.values()),
    "health_quick": pick(quick),
    "health_full": pick(full),
    "run_mem_limit": {k: load("run-report.json").get(k) for k in ("status", "reason", "signal", "events", "peak_gpu_memory_bytes")},
    "gemm_own_tflops": own, "gemm_cublas_tflops": cub,
    "own_over_cublas": own / cub if own and cub else None,
    "overhead": {"off_tflops": off, "on_tflops": on,
                 "overhead_pct": (1 - statistics.mean(on) / statistics.mean(off)) * 100 if all(off + on) else None},
}
print(json.dumps(summary, indent=1))
PY
cat "$OUT/rc.txt"
head -c 6000 "$OUT/summary.json"
cp "$OUT/summary.json" "$FINAL/summary.json"
tar -C "$OUT" -czf "$FINAL/gpu-check.tgz" .
