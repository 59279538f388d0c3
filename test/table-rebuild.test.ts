/**
 * The embedded default's store made by an older spawn: a table that lacks one of today's indexes
 * is rebuilt in place by ensureTables (dynalite cannot add an index), keeping every item, and a
 * rebuild a crash interrupted is finished from its saved copy on the next start.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CreateTableCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  ScanCommand,
} from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expandParams } from "../core/params.js";
import { systemClock } from "../core/ports.js";
import { parseSpec } from "../core/spec.js";
import { createSweep } from "../core/sweeps.js";
import { DynamoStateStore } from "../providers/dynamodb/store.js";
import { ensureTables, INDEX, tableDefinitions, tableNames } from "../providers/dynamodb/tables.js";
import { type DynamoEngine, startDynalite } from "./helpers/dynamo.js";

let engine: DynamoEngine;
let home: string;
beforeAll(async () => {
  engine = await startDynalite();
  home = await mkdtemp(join(tmpdir(), "spawn-rebuild-"));
});
afterAll(async () => {
  await engine.close();
  await rm(home, { recursive: true, force: true });
});

/** Every table of `prefix` as today, except sweeps, created as it was before the by-team index. */
async function olderStore(prefix: string): Promise<DynamoStateStore> {
  for (const def of tableDefinitions(prefix)) {
    const older =
      def.TableName === tableNames(prefix).sweeps
        ? {
            ...def,
            GlobalSecondaryIndexes: def.GlobalSecondaryIndexes?.filter(
              (i) => i.IndexName !== INDEX.sweepsByTeam,
            ),
          }
        : def;
    await engine.client.send(new CreateTableCommand(older));
  }
  return new DynamoStateStore(engine.client, prefix);
}

async function sweepIn(store: DynamoStateStore, team?: string) {
  const spec = parseSpec({ name: "rebuild", command: "true", params: { list: [{ x: 1 }, { x: 2 }] } });
  return createSweep(
    { store, clock: systemClock },
    {
      sweepId: `rb-${randomUUID().slice(0, 8)}`,
      spec,
      tasks: expandParams(spec.params, spec.repeat),
      owner: "test",
      provider: "local",
      ...(team ? { team } : {}),
    },
  );
}

const indexesOf = async (table: string) =>
  (
    await engine.client.send(new DescribeTableCommand({ TableName: table }))
  ).Table?.GlobalSecondaryIndexes?.map((i) => i.IndexName).sort();

describe("a store made by an older spawn", () => {
  it("gets the missing index, keeps every sweep and task, and leaves no saved copy behind", async () => {
    // Given: an older store holding sweeps of two teams
    const prefix = `rb${randomUUID().slice(0, 6)}-`;
    const store = await olderStore(prefix);
    const vision = await sweepIn(store, "vision");
    const plain = await sweepIn(store);
    await expect(ensureTables(engine.client, prefix)).rejects.toThrow(/index by-team is missing/);

    // When: the control plane starts on it
    const created = await ensureTables(engine.client, prefix, { rebuildDir: home });

    // Then: the index is there and answers; nothing was lost
    expect(created).toEqual([]);
    expect(await indexesOf(tableNames(prefix).sweeps)).toContain(INDEX.sweepsByTeam);
    expect((await store.listSweeps({ team: "vision" })).map((s) => s.sweepId)).toEqual([vision.sweepId]);
    expect((await store.listSweeps({ team: "default" })).map((s) => s.sweepId)).toEqual([plain.sweepId]);
    expect(await store.getSweep(vision.sweepId)).toEqual(vision);
    expect(await store.listTasks(plain.sweepId, plain.shardCount)).toHaveLength(2);
    expect((await readdir(home)).filter((f) => f.includes("rebuild"))).toEqual([]);
    // And: a second start has nothing to do
    expect(await ensureTables(engine.client, prefix, { rebuildDir: home })).toEqual([]);
  });

  it("finishes a rebuild interrupted after the table was dropped, from the saved copy", async () => {
    // Given: a rebuild that saved the items and dropped the table, then crashed
    const prefix = `rb${randomUUID().slice(0, 6)}-`;
    const store = await olderStore(prefix);
    const sweep = await sweepIn(store, "vision");
    const table = tableNames(prefix).sweeps;
    const items = (await engine.client.send(new ScanCommand({ TableName: table }))).Items;
    await writeFile(join(home, `${table}.rebuild.json`), JSON.stringify(items));
    await engine.client.send(new DeleteTableCommand({ TableName: table }));

    // When: the control plane starts again
    await ensureTables(engine.client, prefix, { rebuildDir: home });

    // Then: the table is back with today's indexes and the sweep in it
    expect(await indexesOf(table)).toContain(INDEX.sweepsByTeam);
    expect(await store.getSweep(sweep.sweepId)).toEqual(sweep);
    expect((await store.listSweeps({ team: "vision" })).map((s) => s.sweepId)).toEqual([sweep.sweepId]);
    expect((await readdir(home)).filter((f) => f.startsWith(table))).toEqual([]);
  });

  it("still refuses a table with other keys: that is not an older spawn's", async () => {
    const prefix = `rb${randomUUID().slice(0, 6)}-`;
    await engine.client.send(
      new CreateTableCommand({
        TableName: tableNames(prefix).sweeps,
        BillingMode: "PAY_PER_REQUEST",
        AttributeDefinitions: [{ AttributeName: "id", AttributeType: "S" }],
        KeySchema: [{ AttributeName: "id", KeyType: "HASH" }],
      }),
    );
    await expect(ensureTables(engine.client, prefix, { rebuildDir: home })).rejects.toThrow(
      /exists with another shape \(key schema is id:HASH, expected sweepId:HASH/,
    );
  });
});
