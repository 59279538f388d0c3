import { test } from "vitest";
import { shardOf } from "../../core/model.js";
import { startDynalite } from "../../test/helpers/dynamo.js";
import { DynamoStateStore } from "./store.js";
import { ensureTables } from "./tables.js";

test("bench", async () => {
  const e = await startDynalite();
  await ensureTables(e.client, "b-");
  for (const conc of [16, 16, 16, 8, 8, 8]) {
    const store = new DynamoStateStore(e.client, "b-", { writeConcurrency: conc });
    const sweepId = `s${conc}${Math.random()}`;
    const tasks = Array.from({ length: 10000 }, (_, i) => ({
      sweepId,
      index: i,
      shard: shardOf(i, 20),
      taskId: `t${i}`,
      params: { lr: i / 10, name: `task-${i}` },
      status: "pending" as const,
      attempt: 0,
      failures: 0,
      lost: 0,
      readyAt: 1700000000000,
      updatedAt: 1700000000000,
    }));
    let t = performance.now();
    await store.putTasks(tasks);
    const put = performance.now() - t;
    t = performance.now();
    const listed = await store.listTasks(sweepId, 20);
    const list = performance.now() - t;
    t = performance.now();
    const counts = await store.countOpenTasks(sweepId, 20);
    const count = performance.now() - t;
    let pend = 0;
    for (let s = 0; s < 20; s++) pend += (await store.listPendingTasks(sweepId, s)).length;
    console.log({
      conc,
      put: Math.round(put),
      list: Math.round(list),
      count: Math.round(count),
      listed: listed.length,
      counts,
      pend,
    });
  }
  await e.close();
}, 300000);
