/**
 * The DynamoDB tables, as data: the store, `ensureTables` (local/dynalite and first runs)
 * and the CDK stack all read these definitions, so there is one description of the
 * schema. See docs/data-model.md for what every key and index is for.
 */
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type AttributeDefinition,
  type AttributeValue,
  BatchWriteItemCommand,
  CreateTableCommand,
  type CreateTableCommandInput,
  DeleteTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  ScanCommand,
  type TableDescription,
} from "@aws-sdk/client-dynamodb";

export const DEFAULT_TABLE_PREFIX = "spawn-";

/** Logical table → physical name for one prefix. */
export interface TableNames {
  sweeps: string;
  tasks: string;
  instances: string;
  schedules: string;
  scheduleHistory: string;
  alerts: string;
  alertHistory: string;
  teams: string;
}

export function tableNames(prefix: string = DEFAULT_TABLE_PREFIX): TableNames {
  return {
    sweeps: `${prefix}sweeps`,
    tasks: `${prefix}tasks`,
    instances: `${prefix}instances`,
    schedules: `${prefix}schedules`,
    scheduleHistory: `${prefix}schedule-history`,
    alerts: `${prefix}alerts`,
    alertHistory: `${prefix}alert-history`,
    teams: `${prefix}teams`,
  };
}

/** Global secondary index names (the same in every prefix). */
export const INDEX = {
  /** sweeps: owner + createdAt, newest first for `listSweeps({ owner })`. */
  sweepsByOwner: "by-owner",
  /** sweeps: constant `listPk` + createdAt, newest first for `listSweeps()` with no owner. */
  sweepsByCreated: "by-created",
  /** sweeps: sparse, only while `active` is true. */
  sweepsActive: "active",
  /**
   * sweeps: team + createdAt, newest first for `listSweeps({ team })` (the AWS dashboard's list).
   * Every sweep written since it exists carries `team` (`default` when launched without one).
   */
  sweepsByTeam: "by-team",
  /** tasks: sparse, only while status = pending; per shard, by readyKey (readyAt, then index). */
  tasksPending: "pending",
  /** tasks: sparse, only while status = running; per shard, by leaseKey (leaseExpiresAt, then index). */
  tasksRunning: "running",
  /** instances: sparse, only while status != terminated; 8 shards, by deadlineKey (deadline, then instanceId). */
  instancesLive: "live",
  /** instances: sparse (only once a provider handle is known), keys only; EC2 instance id → our record. */
  instancesByRef: "by-ref",
  /** schedules: owner + createdAt. */
  schedulesByOwner: "by-owner",
  /** schedules: sparse, only while the schedule is enabled; by dueKey (nextRunAt, then scheduleId). */
  schedulesDue: "due",
  /** alert-history: sparse (events about a sweep), by firedKey (firedAt, then alertKey#eventKey). */
  alertHistoryBySweep: "by-sweep",
  /** teams: a team's members and the sweeps shared with it (`teamPk` = `team#<name>`). */
  teamsByTeam: "by-team",
} as const;

/** Value of `listPk` on every sweep item: the partition of the owner-less `by-created` index. */
export const SWEEP_LIST_PK = "sweeps";
/** Value of `activePk` while a sweep is active. */
export const SWEEP_ACTIVE_PK = "active";
/** Shards of the instances `live` index (`live#0` … `live#7`). */
export const LIVE_SHARDS = 8;

/**
 * Index sort keys that can tie (many tasks share a readyAt) are strings that make them unique:
 * the number, zero-padded to 16 digits, `#`, then the item's own id. Besides a deterministic
 * order, this avoids a dynalite defect: it tells index entries with equal index keys apart by a
 * 24-bit hash of the table key, so two of 500 tasks with the same readyAt can overwrite each
 * other's index entry and one task silently drops out of the pending index.
 */
export const ORDERED_KEY_DIGITS = 16;

/**
 * TTL attribute of the history tables (epoch seconds; docs/data-model.md "Seed tables"). DynamoDB
 * expires those items; dynalite has no TTL, so locally they stay until the store is removed.
 */
export const TTL_ATTRIBUTE = "expiresAt";

type KeyType = "S" | "N";

function attrs(defs: Record<string, KeyType>): AttributeDefinition[] {
  return Object.entries(defs).map(([AttributeName, AttributeType]) => ({ AttributeName, AttributeType }));
}

function gsi(name: string, pk: string, sk: string) {
  return {
    IndexName: name,
    KeySchema: [
      { AttributeName: pk, KeyType: "HASH" as const },
      { AttributeName: sk, KeyType: "RANGE" as const },
    ],
    Projection: { ProjectionType: "ALL" as const },
  };
}

/** Every table spawn uses, CreateTable-shaped, on-demand billing. */
export function tableDefinitions(prefix: string = DEFAULT_TABLE_PREFIX): CreateTableCommandInput[] {
  const names = tableNames(prefix);
  return [
    {
      TableName: names.sweeps,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: attrs({
        sweepId: "S",
        owner: "S",
        createdAt: "N",
        listPk: "S",
        activePk: "S",
        team: "S",
      }),
      KeySchema: [{ AttributeName: "sweepId", KeyType: "HASH" }],
      GlobalSecondaryIndexes: [
        gsi(INDEX.sweepsByOwner, "owner", "createdAt"),
        gsi(INDEX.sweepsByCreated, "listPk", "createdAt"),
        gsi(INDEX.sweepsActive, "activePk", "sweepId"),
        // Keyed by the domain field itself (not a derived attribute) so that adding the index to
        // an existing table backfills every sweep that already had a team (ADR 0038).
        gsi(INDEX.sweepsByTeam, "team", "createdAt"),
      ],
    },
    {
      TableName: names.tasks,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: attrs({
        pk: "S",
        index: "N",
        pendingPk: "S",
        readyKey: "S",
        runningPk: "S",
        leaseKey: "S",
      }),
      KeySchema: [
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "index", KeyType: "RANGE" },
      ],
      GlobalSecondaryIndexes: [
        gsi(INDEX.tasksPending, "pendingPk", "readyKey"),
        gsi(INDEX.tasksRunning, "runningPk", "leaseKey"),
      ],
    },
    {
      TableName: names.instances,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: attrs({
        sweepId: "S",
        instanceId: "S",
        liveShard: "S",
        deadlineKey: "S",
        providerRef: "S",
      }),
      KeySchema: [
        { AttributeName: "sweepId", KeyType: "HASH" },
        { AttributeName: "instanceId", KeyType: "RANGE" },
      ],
      GlobalSecondaryIndexes: [
        gsi(INDEX.instancesLive, "liveShard", "deadlineKey"),
        // Keys only: EC2 events name an instance by its EC2 id; the lookup reads the base item
        // after, and heartbeats (which never change providerRef) cost no index write.
        {
          IndexName: INDEX.instancesByRef,
          KeySchema: [{ AttributeName: "providerRef", KeyType: "HASH" }],
          Projection: { ProjectionType: "KEYS_ONLY" },
        },
      ],
    },
    {
      // Seed for `spawn schedule`: one item per schedule; `dueShard` (due#0..3) only while enabled.
      TableName: names.schedules,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: attrs({
        scheduleId: "S",
        owner: "S",
        createdAt: "N",
        dueShard: "S",
        dueKey: "S",
      }),
      KeySchema: [{ AttributeName: "scheduleId", KeyType: "HASH" }],
      GlobalSecondaryIndexes: [
        gsi(INDEX.schedulesByOwner, "owner", "createdAt"),
        gsi(INDEX.schedulesDue, "dueShard", "dueKey"),
      ],
    },
    {
      // Seed: one item per firing; a conditional put on (scheduleId, firedAt) makes a firing happen once.
      TableName: names.scheduleHistory,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: attrs({ scheduleId: "S", firedAt: "N" }),
      KeySchema: [
        { AttributeName: "scheduleId", KeyType: "HASH" },
        { AttributeName: "firedAt", KeyType: "RANGE" },
      ],
    },
    {
      // Seed for `spawn alerts`: rules grouped by scope (`global`, `owner#<name>`, `sweep#<id>`).
      TableName: names.alerts,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: attrs({ scope: "S", alertId: "S" }),
      KeySchema: [
        { AttributeName: "scope", KeyType: "HASH" },
        { AttributeName: "alertId", KeyType: "RANGE" },
      ],
    },
    {
      // Seed: one item per alert event; the key is the dedupe key (`<alertId>#<event>`), so a
      // conditional put (attribute_not_exists) makes every alert fire at most once.
      TableName: names.alertHistory,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: attrs({ alertKey: "S", eventKey: "S", sweepId: "S", firedKey: "S" }),
      KeySchema: [
        { AttributeName: "alertKey", KeyType: "HASH" },
        { AttributeName: "eventKey", KeyType: "RANGE" },
      ],
      GlobalSecondaryIndexes: [gsi(INDEX.alertHistoryBySweep, "sweepId", "firedKey")],
    },
    {
      // The AWS dashboard's teams (team-store.ts): memberships (`user#<email>`, `team#<name>`),
      // shares (`sweep#<id>`, `share#<team>`) and comments (`sweep#<id>`, `comment#<createdAt>#<id>`).
      TableName: names.teams,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: attrs({ pk: "S", sk: "S", teamPk: "S", teamSk: "S" }),
      KeySchema: [
        { AttributeName: "pk", KeyType: "HASH" },
        { AttributeName: "sk", KeyType: "RANGE" },
      ],
      GlobalSecondaryIndexes: [gsi(INDEX.teamsByTeam, "teamPk", "teamSk")],
    },
  ];
}

export interface EnsureTablesOptions {
  /** Give up waiting for a table to become ACTIVE after this long (default 5 minutes). */
  timeoutMs?: number;
  /**
   * The embedded default's state directory. There an existing table that lacks one of today's
   * indexes (made by an older spawn) is rebuilt in place, because dynalite cannot add an index
   * to a table: its items are saved to a file here, the table is re-created, and the items are
   * written back. A file left by an interrupted rebuild is replayed first, so nothing is lost.
   * Without it such a table is an error (on AWS the stack adds indexes).
   */
  rebuildDir?: string;
}

function errorName(err: unknown): string | undefined {
  return err && typeof err === "object" && "name" in err
    ? String((err as { name: unknown }).name)
    : undefined;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function describe(client: DynamoDBClient, tableName: string): Promise<TableDescription | undefined> {
  try {
    return (await client.send(new DescribeTableCommand({ TableName: tableName }))).Table;
  } catch (err) {
    if (errorName(err) === "ResourceNotFoundException") return undefined;
    throw err;
  }
}

function isActive(table: TableDescription | undefined): boolean {
  return (
    table?.TableStatus === "ACTIVE" &&
    (table.GlobalSecondaryIndexes ?? []).every(
      (index) => index.IndexStatus === undefined || index.IndexStatus === "ACTIVE",
    )
  );
}

const keys = (schema: { AttributeName?: string; KeyType?: string }[] | undefined) =>
  (schema ?? []).map((k) => `${k.AttributeName}:${k.KeyType}`).join(",");

/** The table has our keys and every index it has is ours, but some of ours are missing: an older spawn's table. */
function onlyLacksIndexes(def: CreateTableCommandInput, table: TableDescription): boolean {
  if (keys(def.KeySchema) !== keys(table.KeySchema)) return false;
  const wanted = new Map((def.GlobalSecondaryIndexes ?? []).map((i) => [i.IndexName, keys(i.KeySchema)]));
  const found = table.GlobalSecondaryIndexes ?? [];
  return found.length < wanted.size && found.every((g) => wanted.get(g.IndexName) === keys(g.KeySchema));
}

/** An existing table with other keys or without one of our indexes would fail later in puzzling ways: say so now. */
function checkShape(def: CreateTableCommandInput, table: TableDescription): void {
  const problems: string[] = [];
  if (keys(def.KeySchema) !== keys(table.KeySchema)) {
    problems.push(`key schema is ${keys(table.KeySchema)}, expected ${keys(def.KeySchema)}`);
  }
  for (const index of def.GlobalSecondaryIndexes ?? []) {
    const found = table.GlobalSecondaryIndexes?.find((g) => g.IndexName === index.IndexName);
    if (!found) problems.push(`index ${index.IndexName} is missing`);
    else if (keys(found.KeySchema) !== keys(index.KeySchema)) {
      problems.push(
        `index ${index.IndexName} has keys ${keys(found.KeySchema)}, expected ${keys(index.KeySchema)}`,
      );
    }
  }
  if (problems.length > 0) {
    throw new Error(
      `table ${def.TableName} exists with another shape (${problems.join("; ")}); it was created by another version of spawn ` +
        "(embedded default: `spawn local stop`, then remove the db/ directory under $SPAWN_HOME to start afresh; aws: `spawn deploy`)",
    );
  }
}

type Item = Record<string, AttributeValue>;

const rebuildFile = (dir: string, table: string) => join(dir, `${table}.rebuild.json`);

async function scanAll(client: DynamoDBClient, tableName: string): Promise<Item[]> {
  const items: Item[] = [];
  let start: Item | undefined;
  do {
    const page = await client.send(
      new ScanCommand({ TableName: tableName, ConsistentRead: true, ExclusiveStartKey: start }),
    );
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  return items;
}

/**
 * Re-creates `def`'s table and writes `items` back, then drops the saved copy. Every step can be
 * repeated: a table already re-created is kept, items are put again.
 */
async function rebuildTable(
  client: DynamoDBClient,
  def: CreateTableCommandInput,
  items: Item[],
  file: string,
  timeoutMs: number,
): Promise<void> {
  const name = def.TableName!;
  const table = await describe(client, name);
  if (table && onlyLacksIndexes(def, table)) {
    await client.send(new DeleteTableCommand({ TableName: name }));
    await waitFor(client, name, timeoutMs, (t) => t === undefined);
  }
  if (!(await describe(client, name))) await client.send(new CreateTableCommand(def));
  await waitFor(client, name, timeoutMs, isActive);
  // BatchWriteItem takes at most 25 puts.
  for (let i = 0; i < items.length; i += 25) {
    let pending = items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } }));
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt > 10) throw new Error(`rebuilding ${name}: ${pending.length} items still unprocessed`);
      const out = await client.send(new BatchWriteItemCommand({ RequestItems: { [name]: pending } }));
      pending = (out.UnprocessedItems?.[name] ?? []) as typeof pending;
    }
  }
  await rm(file, { force: true });
}

/** Replays a rebuild a crash interrupted; then rebuilds an older spawn's table that lacks an index. */
async function rebuildIfNeeded(
  client: DynamoDBClient,
  def: CreateTableCommandInput,
  dir: string,
  timeoutMs: number,
): Promise<void> {
  const file = rebuildFile(dir, def.TableName!);
  const saved = await readFile(file, "utf8").catch(() => undefined);
  if (saved !== undefined) return rebuildTable(client, def, JSON.parse(saved) as Item[], file, timeoutMs);
  const table = await describe(client, def.TableName!);
  if (!table || !onlyLacksIndexes(def, table)) return;
  const items = await scanAll(client, def.TableName!);
  // Saved (atomically) before the table is dropped: from here on a crash loses nothing. spawn
  // writes no binary attributes; one would not survive JSON, so it stops the rebuild here.
  const json = JSON.stringify(items, (key, value) => {
    if (value instanceof Uint8Array)
      throw new Error(`cannot rebuild ${def.TableName}: attribute ${key} is binary`);
    return value;
  });
  await writeFile(`${file}.tmp`, json);
  await rename(`${file}.tmp`, file);
  await rebuildTable(client, def, items, file, timeoutMs);
}

/** Polls the table's description until `done` says so, and returns the last one. */
async function waitFor(
  client: DynamoDBClient,
  name: string,
  timeoutMs: number,
  done: (table: TableDescription | undefined) => boolean,
): Promise<TableDescription | undefined> {
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    const table = await describe(client, name);
    if (done(table)) return table;
    if (Date.now() - started > timeoutMs)
      throw new Error(
        `table ${name} not ready after ${timeoutMs} ms (status ${table?.TableStatus ?? "missing"})`,
      );
    // dynalite and DynamoDB Local finish in milliseconds: poll fast first, then back off for real DynamoDB.
    await sleep(attempt < 80 ? 25 : Math.min(1000, 25 * 1.2 ** (attempt - 80)));
  }
}

async function ensureTable(
  client: DynamoDBClient,
  def: CreateTableCommandInput,
  options: EnsureTablesOptions,
): Promise<boolean> {
  const name = def.TableName!;
  const timeoutMs = options.timeoutMs ?? 5 * 60_000;
  if (options.rebuildDir) await rebuildIfNeeded(client, def, options.rebuildDir, timeoutMs);
  let table = await describe(client, name);
  let created = false;
  if (!table) {
    try {
      table = (await client.send(new CreateTableCommand(def))).TableDescription;
      created = true;
    } catch (err) {
      // Another process (a second CLI, a concurrent test) created it first: wait for theirs.
      if (errorName(err) !== "ResourceInUseException") throw err;
    }
  }
  if (!isActive(table)) table = await waitFor(client, name, timeoutMs, isActive);
  checkShape(def, table!);
  return created;
}

/**
 * Creates the tables of `prefix` that do not exist yet and waits until every one is ACTIVE.
 * Safe to run concurrently from several processes. Returns the names of the tables it created.
 */
export async function ensureTables(
  client: DynamoDBClient,
  prefix: string = DEFAULT_TABLE_PREFIX,
  options: EnsureTablesOptions = {},
): Promise<string[]> {
  const defs = tableDefinitions(prefix);
  const created = await Promise.all(defs.map((def) => ensureTable(client, def, options)));
  return defs.filter((_, i) => created[i]).map((def) => def.TableName!);
}
