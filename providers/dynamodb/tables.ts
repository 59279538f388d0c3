/**
 * The DynamoDB tables, as data: the store, `ensureTables` (local/dynalite and first runs)
 * and the CDK stack all read these definitions, so there is one description of the
 * schema. See docs/data-model.md for what every key and index is for.
 */
import {
  type AttributeDefinition,
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  type DynamoDBClient,
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
      AttributeDefinitions: attrs({ sweepId: "S", owner: "S", createdAt: "N", listPk: "S", activePk: "S" }),
      KeySchema: [{ AttributeName: "sweepId", KeyType: "HASH" }],
      GlobalSecondaryIndexes: [
        gsi(INDEX.sweepsByOwner, "owner", "createdAt"),
        gsi(INDEX.sweepsByCreated, "listPk", "createdAt"),
        gsi(INDEX.sweepsActive, "activePk", "sweepId"),
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

/** An existing table with other keys or without one of our indexes would fail later in puzzling ways: say so now. */
function checkShape(def: CreateTableCommandInput, table: TableDescription): void {
  const keys = (schema: { AttributeName?: string; KeyType?: string }[] | undefined) =>
    (schema ?? []).map((k) => `${k.AttributeName}:${k.KeyType}`).join(",");
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

async function ensureTable(
  client: DynamoDBClient,
  def: CreateTableCommandInput,
  timeoutMs: number,
): Promise<boolean> {
  const name = def.TableName!;
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
  const started = Date.now();
  let attempt = 0;
  while (!isActive(table)) {
    if (Date.now() - started > timeoutMs) {
      throw new Error(
        `table ${name} not ACTIVE after ${timeoutMs} ms (status ${table?.TableStatus ?? "missing"})`,
      );
    }
    // dynalite and DynamoDB Local finish in milliseconds: poll fast first, then back off for real DynamoDB.
    await sleep(attempt < 80 ? 25 : Math.min(1000, 25 * 1.2 ** (attempt - 80)));
    attempt++;
    table = await describe(client, name);
  }
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
  const timeoutMs = options.timeoutMs ?? 5 * 60_000;
  const defs = tableDefinitions(prefix);
  const created = await Promise.all(defs.map((def) => ensureTable(client, def, timeoutMs)));
  return defs.filter((_, i) => created[i]).map((def) => def.TableName!);
}
