// Counts to N, one step every step_ms, and checkpoints every k steps into $SPAWN_CHECKPOINT_DIR
// (and at once on SIGTERM: a spot notice or a cancel). With SPAWN_RESUME=1 it carries on from the
// restored checkpoint. Each checkpoint is written to a temporary name and renamed, so the agent
// never syncs a half-written one.
//   node count.mjs <N> <k> <step_ms>
import { appendFileSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [n, k, stepMs] = process.argv.slice(2).map(Number);
const dir = process.env.SPAWN_CHECKPOINT_DIR;
const file = join(dir, "checkpoint.json");

let step = 0;
let resumedFrom = 0;
if (process.env.SPAWN_RESUME === "1") {
  step = JSON.parse(readFileSync(file, "utf8")).step;
  resumedFrom = step;
  console.log(`resumed from step ${step} (attempt ${process.env.SPAWN_ATTEMPT})`);
}

function checkpoint() {
  writeFileSync(`${file}.tmp`, JSON.stringify({ step, count: step }));
  renameSync(`${file}.tmp`, file);
  console.log(`checkpoint at step ${step}`);
}

process.on("SIGTERM", () => {
  checkpoint();
  console.log(`SIGTERM at step ${step}: checkpointed, exiting`);
  process.exit(143);
});

while (step < n) {
  await new Promise((r) => setTimeout(r, stepMs));
  step++;
  console.log(`step ${step}`);
  if (step % k === 0) checkpoint();
}
appendFileSync(
  process.env.SPAWN_METRICS_FILE,
  `${JSON.stringify({ count: step, resumed_from: resumedFrom, attempt: Number(process.env.SPAWN_ATTEMPT) })}\n`,
);
console.log(`done: counted to ${step}`);
