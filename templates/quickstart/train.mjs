// A stand-in for a training script: reads its parameters the three ways spawn offers,
// "trains" for a few steps, appends metrics as JSON lines and writes an output file.
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const args = Object.fromEntries(
  process.argv.slice(2).flatMap((a, i, all) => (a.startsWith("--") ? [[a.slice(2), all[i + 1]]] : [])),
);
const params = JSON.parse(readFileSync(process.env.SPAWN_PARAMS_FILE, "utf8"));
const lr = Number(args.lr ?? process.env.SPAWN_PARAM_LR);
const layers = params.layers;

let loss = 2.5;
const steps = 10;
for (let step = 1; step <= steps; step++) {
  // A made-up loss surface: best near lr=0.01 with more layers.
  loss = loss * (1 - Math.min(0.5, lr * 20) / (1 + Math.abs(Math.log10(lr) + 2))) + 0.01 / layers;
  appendFileSync(
    process.env.SPAWN_METRICS_FILE,
    `${JSON.stringify({ step, loss: Number(loss.toFixed(5)) })}\n`,
  );
  await new Promise((r) => setTimeout(r, 100));
}
const accuracy = Number((1 / (1 + loss)).toFixed(4));
appendFileSync(process.env.SPAWN_METRICS_FILE, `${JSON.stringify({ accuracy })}\n`);
writeFileSync(
  join(process.env.SPAWN_OUTPUT_DIR, "result.json"),
  JSON.stringify({ params, loss, accuracy }, null, 2),
);
mkdirSync("checkpoints", { recursive: true });
writeFileSync(join("checkpoints", `task-${process.env.SPAWN_TASK_INDEX}.json`), JSON.stringify({ loss }));
console.log(
  `task ${process.env.SPAWN_TASK_INDEX}: lr=${lr} layers=${layers} loss=${loss.toFixed(4)} accuracy=${accuracy}`,
);
