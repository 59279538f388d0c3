#!/bin/sh
# Runs every ML template's --smoke mode (tiny random models, nothing downloaded) and the MPI
# template under the task contract: a private SPAWN_OUTPUT_DIR per attempt, one
# SPAWN_CHECKPOINT_DIR and SPAWN_METRICS_FILE. Each ML script runs twice; the second attempt must
# resume from the first one's checkpoint. Needs python3 with torch, transformers and peft (PIL for
# sd-generate); MPI needs mpicc and mpirun and is skipped, saying so, without them.
#
#   templates/scripts/smoke-all.sh [template ...]     # default: all; exit 0 only if all passed
set -u
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/spawn-smoke-XXXXXX")"
failed=""
gpus="$(python3 -c 'import torch; print(max(1, torch.cuda.device_count()))' 2>/dev/null || echo 1)"

# attempt NAME SRC N COMMAND...: attempt N in a copy of SRC with the contract's variables set.
attempt() {
  name="$1" src="$2" n="$3"
  shift 3
  dir="$work/$name"
  mkdir -p "$dir/output-$n" "$dir/checkpoints"
  [ -d "$dir/work" ] || cp -R "$src" "$dir/work"
  resume=0
  [ "$n" -gt 1 ] && resume=1
  (cd "$dir/work" && SPAWN_OUTPUT_DIR="$dir/output-$n" SPAWN_CHECKPOINT_DIR="$dir/checkpoints" \
    SPAWN_METRICS_FILE="$dir/metrics.jsonl" SPAWN_ATTEMPT="$n" SPAWN_RESUME="$resume" \
    SPAWN_TASK_INDEX=0 SPAWN_TASK_COUNT=1 SPAWN_RANK=0 SPAWN_WORLD_SIZE=1 "$@") >"$dir/log-$n.txt" 2>&1
}

# ml NAME EXPECTED_OUTPUT RESUME_CHECK COMMAND...: two attempts; metrics and the output must exist.
ml() {
  name="$1" expect="$2" resume_check="$3"
  shift 3
  attempt "$name" "$here/ml" 1 "$@" --smoke &&
    [ -s "$work/$name/metrics.jsonl" ] &&
    ls "$work/$name/output-1" | grep -q "$expect" &&
    attempt "$name" "$here/ml" 2 "$@" --smoke &&
    $resume_check "$name"
}

# The second attempt loaded the checkpoint.
loaded() { grep -q "resuming from" "$work/$1/log-2.txt"; }
# The second attempt found everything done and rendered or answered nothing again.
nothing_left() { [ -z "$(ls "$work/$1/output-2")" ] || [ ! -s "$work/$1/output-2/answers.jsonl" ]; }

for name in pytorch-ddp hf-finetune lora-finetune sd-generate llm-batch mpi; do
  [ $# -eq 0 ] || echo " $* " | grep -q " $name " || continue
  case "$name" in
  pytorch-ddp) ml "$name" model.pt loaded torchrun --standalone --nproc_per_node="$gpus" ddp_train.py ;;
  hf-finetune) ml "$name" model loaded python3 hf_finetune.py ;;
  lora-finetune) ml "$name" adapter loaded python3 lora_finetune.py ;;
  sd-generate) ml "$name" png nothing_left python3 sd_generate.py ;;
  llm-batch) ml "$name" answers.jsonl nothing_left python3 llm_batch.py ;;
  mpi)
    if ! command -v mpicc >/dev/null || ! command -v mpirun >/dev/null; then
      echo "skip  mpi (mpicc or mpirun is not installed)"
      continue
    fi
    attempt mpi "$here/mpi" 1 sh -c \
      'mpicc -O2 -o mpi_hello mpi_hello.c && mpicc -O2 -o allreduce_bw allreduce_bw.c &&
       ./run.sh mpi_hello && ./run.sh allreduce_bw 4194304' &&
      grep -q '"busbw_GBps"' "$work/mpi/metrics.jsonl" &&
      [ -s "$work/mpi/output-1/allreduce.json" ]
    ;;
  esac
  if [ $? -eq 0 ]; then
    echo "ok    $name"
  else
    echo "FAIL  $name (logs in $work/$name)"
    tail -n 30 "$work/$name"/log-*.txt
    failed="$failed $name"
  fi
done
[ -z "$failed" ] || {
  echo "failed:$failed"
  exit 1
}
echo "all smoke runs passed (work in $work)"
