/**
 * StateStore on DynamoDB (or dynalite / DynamoDB Local: only the endpoint differs).
 *
 * Rules (docs/data-model.md has the whole model):
 * - every state change is one single-item conditional write (no transactions);
 * - no path scans: every read is a GetItem, a Query on a table or on a sparse index;
 * - tasks live in `${sweepId}#${shard}` partitions, so claims spread over shards.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  BatchWriteCommand,
  type BatchWriteCommandInput,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import { mapLimit } from "../../core/concurrency.js";
import { BugError, ConditionFailedError, LeaseLostError } from "../../core/errors.js";
import { InstanceRecord, SweepRecord, shardOf, TaskRecord } from "../../core/model.js";
import type {
  InstanceExpectation,
  InstanceUpdate,
  OpenTaskCounts,
  StateStore,
  SweepExpectation,
  SweepUpdate,
  TaskExpectation,
  TaskUpdate,
} from "../../core/ports.js";
import {
  deadlineKey,
  type Item,
  instanceIndexAttributes,
  instanceToItem,
  itemToInstance,
  itemToSweep,
  itemToTask,
  LIVE_SHARD_KEYS,
  leaseKey,
  orderedKeyBelow,
  readyKey,
  sweepToItem,
  TASK_FIELD_ENCODERS,
  taskIndexAttributes,
  taskPk,
  taskToItem,
  validateUpdate,
} from "./codec.js";
import { conditionExpression, describeExpectation, Expression, updateExpression } from "./expressions.js";
import { isConditionalCheckFailed, queryAll } from "./requests.js";
import {
  DEFAULT_TABLE_PREFIX,
  INDEX,
  SWEEP_ACTIVE_PK,
  SWEEP_LIST_PK,
  type TableNames,
  tableNames,
} from "./tables.js";

/** BatchWriteItem takes at most 25 requests. */
const BATCH_SIZE = 25;

export interface DynamoStateStoreOptions {
  /** BatchWriteItem calls in flight at once in putTasks/deleteSweep (default 16). */
  writeConcurrency?: number;
  /** Queries in flight at once when a call fans out over shards (default 16). */
  readConcurrency?: number;
}

export class DynamoStateStore implements StateStore {
  readonly tables: TableNames;
  private readonly doc: DynamoDBDocumentClient;
  private readonly writeConcurrency: number;
  private readonly readConcurrency: number;

  constructor(
    client: DynamoDBClient,
    prefix: string = DEFAULT_TABLE_PREFIX,
    options: DynamoStateStoreOptions = {},
  ) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
    this.tables = tableNames(prefix);
    this.writeConcurrency = options.writeConcurrency ?? 16;
    this.readConcurrency = options.readConcurrency ?? 16;
  }

  // -------------------------------------------------------------------------------------------
  // Sweeps

  async createSweep(sweep: SweepRecord): Promise<void> {
    const expr = new Expression();
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tables.sweeps,
          Item: sweepToItem(sweep),
          ConditionExpression: `attribute_not_exists(${expr.name("sweepId")})`,
          ...expr.params(),
        }),
      );
    } catch (err) {
      if (isConditionalCheckFailed(err)) {
        throw new ConditionFailedError(`sweep ${sweep.sweepId} already exists`, { cause: err });
      }
      throw err;
    }
  }

  async getSweep(sweepId: string): Promise<SweepRecord | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tables.sweeps, Key: { sweepId }, ConsistentRead: true }),
    );
    return out.Item ? itemToSweep(out.Item) : undefined;
  }

  async listSweeps(options: { owner?: string; team?: string; limit?: number } = {}): Promise<SweepRecord[]> {
    const { owner, team } = options;
    if (owner !== undefined && team !== undefined)
      throw new BugError("listSweeps takes an owner or a team, not both");
    const expr = new Expression();
    const [index, key, value] =
      owner !== undefined
        ? [INDEX.sweepsByOwner, "owner", owner]
        : team !== undefined
          ? [INDEX.sweepsByTeam, "team", team]
          : [INDEX.sweepsByCreated, "listPk", SWEEP_LIST_PK];
    const items = await this.queryAll(
      {
        TableName: this.tables.sweeps,
        IndexName: index,
        KeyConditionExpression: `${expr.name(key)} = ${expr.value(value)}`,
        ScanIndexForward: false,
        ...expr.params(),
      },
      options.limit,
    );
    return items.map(itemToSweep);
  }

  async listActiveSweeps(): Promise<SweepRecord[]> {
    const expr = new Expression();
    const items = await this.queryAll({
      TableName: this.tables.sweeps,
      IndexName: INDEX.sweepsActive,
      KeyConditionExpression: `${expr.name("activePk")} = ${expr.value(SWEEP_ACTIVE_PK)}`,
      ...expr.params(),
    });
    return items.map(itemToSweep);
  }

  async updateSweep(sweepId: string, expect: SweepExpectation, update: SweepUpdate): Promise<SweepRecord> {
    validateUpdate(SweepRecord, "sweep", update, [
      "sweepId",
      "name",
      "owner",
      "provider",
      "spec",
      "createdAt",
    ]);
    const expected = { status: expect.status, launchSeq: expect.launchSeq, active: expect.active };
    const expr = new Expression();
    const active = update.active;
    const absent = (expect.absent ?? []).map((field) => ` AND attribute_not_exists(${expr.name(field)})`);
    const item = await this.conditionalUpdate(`sweep ${sweepId}`, expected, undefined, {
      TableName: this.tables.sweeps,
      Key: { sweepId },
      UpdateExpression: updateExpression(expr, {
        fields: update,
        set: active === true ? { activePk: SWEEP_ACTIVE_PK } : {},
        remove: active === false ? ["activePk"] : [],
        noopAttribute: "status",
      }),
      ConditionExpression: conditionExpression(expr, "sweepId", expected) + absent.join(""),
      expr,
    });
    return itemToSweep(item);
  }

  async deleteSweep(sweepId: string, shardCount: number): Promise<void> {
    const keys: Item[] = [];
    await mapLimit(shards(shardCount), this.readConcurrency, async (shard) => {
      const expr = new Expression();
      const items = await this.queryAll({
        TableName: this.tables.tasks,
        KeyConditionExpression: `${expr.name("pk")} = ${expr.value(taskPk(sweepId, shard))}`,
        ProjectionExpression: `${expr.name("pk")}, ${expr.name("index")}`,
        ConsistentRead: true,
        ...expr.params(),
      });
      keys.push(...items);
    });
    await this.batchWrite(
      this.tables.tasks,
      keys.map((key) => ({ DeleteRequest: { Key: { pk: key.pk, index: key.index } } })),
    );
    await this.doc.send(new DeleteCommand({ TableName: this.tables.sweeps, Key: { sweepId } }));
  }

  // -------------------------------------------------------------------------------------------
  // Tasks

  async putTasks(tasks: readonly TaskRecord[]): Promise<void> {
    // One request per key: a batch may not name the same key twice (the last record wins).
    const byKey = new Map<string, Item>();
    for (const task of tasks) {
      const item = taskToItem(task);
      byKey.set(`${item.pk}\u0000${item.index}`, item);
    }
    await this.batchWrite(
      this.tables.tasks,
      [...byKey.values()].map((Item) => ({ PutRequest: { Item } })),
    );
  }

  async getTask(sweepId: string, index: number, shardCount: number): Promise<TaskRecord | undefined> {
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.tables.tasks,
        Key: { pk: taskPk(sweepId, shardOf(index, shardCount)), index },
        ConsistentRead: true,
      }),
    );
    return out.Item ? itemToTask(out.Item) : undefined;
  }

  async listTasks(sweepId: string, shardCount: number): Promise<TaskRecord[]> {
    const perShard = await mapLimit(shards(shardCount), this.readConcurrency, async (shard) => {
      const expr = new Expression();
      return this.queryAll({
        TableName: this.tables.tasks,
        KeyConditionExpression: `${expr.name("pk")} = ${expr.value(taskPk(sweepId, shard))}`,
        ConsistentRead: true,
        ...expr.params(),
      });
    });
    return perShard
      .flat()
      .map(itemToTask)
      .sort((a, b) => a.index - b.index);
  }

  listPendingTasks(
    sweepId: string,
    shard: number,
    options: { readyBy?: number; limit?: number } = {},
  ): Promise<TaskRecord[]> {
    // readyAt <= readyBy ⟺ readyAt < floor(readyBy) + 1 (readyAt is an integer).
    const below = options.readyBy === undefined ? undefined : Math.floor(options.readyBy) + 1;
    return this.queryTaskIndex("pending", sweepId, shard, below, options.limit);
  }

  listRunningTasks(
    sweepId: string,
    shard: number,
    options: { expiredBefore?: number; limit?: number } = {},
  ): Promise<TaskRecord[]> {
    return this.queryTaskIndex("running", sweepId, shard, options.expiredBefore, options.limit);
  }

  /** One shard of a sparse task index, oldest first, with the time sort key below `below` if given. */
  private async queryTaskIndex(
    which: "pending" | "running",
    sweepId: string,
    shard: number,
    below: number | undefined,
    limit: number | undefined,
  ): Promise<TaskRecord[]> {
    const [pkAttribute, sortAttribute, indexName] =
      which === "pending"
        ? (["pendingPk", "readyKey", INDEX.tasksPending] as const)
        : (["runningPk", "leaseKey", INDEX.tasksRunning] as const);
    const expr = new Expression();
    let condition = `${expr.name(pkAttribute)} = ${expr.value(taskPk(sweepId, shard))}`;
    if (below !== undefined) {
      const bound = orderedKeyBelow(below);
      if (bound === null) return [];
      if (bound !== undefined) condition += ` AND ${expr.name(sortAttribute)} < ${expr.value(bound)}`;
    }
    const items = await this.queryAll(
      {
        TableName: this.tables.tasks,
        IndexName: indexName,
        KeyConditionExpression: condition,
        ScanIndexForward: true,
        ...expr.params(),
      },
      limit,
    );
    return items.map(itemToTask);
  }

  async countOpenTasks(
    sweepId: string,
    shardCount: number,
    options: { cap?: number } = {},
  ): Promise<OpenTaskCounts> {
    const count = (attribute: "pendingPk" | "runningPk", shard: number, max?: number) => {
      const expr = new Expression();
      return this.countAll(
        {
          TableName: this.tables.tasks,
          IndexName: attribute === "pendingPk" ? INDEX.tasksPending : INDEX.tasksRunning,
          KeyConditionExpression: `${expr.name(attribute)} = ${expr.value(taskPk(sweepId, shard))}`,
          ...expr.params(),
        },
        max,
      );
    };
    if (options.cap !== undefined) {
      // Capped: shard by shard, stop once `cap` is reached, so the cost is bounded by the cap.
      const cap = options.cap;
      const capped = async (attribute: "pendingPk" | "runningPk") => {
        let total = 0;
        for (let shard = 0; shard < shardCount && total < cap; shard++)
          total += await count(attribute, shard, cap - total);
        return total;
      };
      const [pending, running] = await Promise.all([capped("pendingPk"), capped("runningPk")]);
      return { pending, running };
    }
    const counts = await mapLimit(shards(shardCount), this.readConcurrency, async (shard) => {
      const [pending, running] = await Promise.all([count("pendingPk", shard), count("runningPk", shard)]);
      return { pending, running };
    });
    return counts.reduce(
      (sum, c) => ({ pending: sum.pending + c.pending, running: sum.running + c.running }),
      {
        pending: 0,
        running: 0,
      },
    );
  }

  async updateTask(
    sweepId: string,
    index: number,
    shardCount: number,
    expect: TaskExpectation,
    update: TaskUpdate,
  ): Promise<TaskRecord> {
    validateUpdate(TaskRecord, "task", update, ["sweepId", "index", "shard", "taskId", "params"]);
    const shard = shardOf(index, shardCount);
    const pk = taskPk(sweepId, shard);
    const expected = {
      status: expect.status,
      attempt: expect.attempt,
      leaseOwner: expect.leaseOwner,
      leaseExpiresAt: expect.leaseExpiresAt,
    };
    const expr = new Expression();
    // A nested path (`gang.epoch`), so it is written here rather than by conditionExpression.
    const gangEpoch =
      expect.gangEpoch === undefined
        ? ""
        : ` AND ${expr.name("gang")}.${expr.name("epoch")} = ${expr.value(expect.gangEpoch)}`;
    // Index partition keys follow `status` (set when entering pending/running, removed when
    // leaving); index sort keys mirror readyAt and leaseExpiresAt whatever the status.
    const set: Record<string, unknown> = {};
    const remove: string[] = [];
    if (update.status) {
      Object.assign(set, taskIndexAttributes(pk, update.status));
      for (const attribute of ["pendingPk", "runningPk"]) if (!(attribute in set)) remove.push(attribute);
    }
    if (typeof update.readyAt === "number") set.readyKey = readyKey(update.readyAt, index);
    if (typeof update.leaseExpiresAt === "number") set.leaseKey = leaseKey(update.leaseExpiresAt, index);
    else if (update.leaseExpiresAt === null) remove.push("leaseKey");
    const item = await this.conditionalUpdate(
      `task ${index} of sweep ${sweepId} (shard ${shard})`,
      expect.gangEpoch === undefined ? expected : { ...expected, "gang.epoch": expect.gangEpoch },
      expect.leaseOwner !== undefined ? LeaseLostError : undefined,
      {
        TableName: this.tables.tasks,
        Key: { pk, index },
        UpdateExpression: updateExpression(expr, {
          fields: update,
          set,
          remove,
          encoders: TASK_FIELD_ENCODERS,
          noopAttribute: "status",
        }),
        ConditionExpression: conditionExpression(expr, "pk", expected) + gangEpoch,
        expr,
      },
    );
    return itemToTask(item);
  }

  // -------------------------------------------------------------------------------------------
  // Instances

  async putInstance(instance: InstanceRecord): Promise<void> {
    const expr = new Expression();
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tables.instances,
          Item: instanceToItem(instance),
          ConditionExpression: `attribute_not_exists(${expr.name("instanceId")})`,
          ...expr.params(),
        }),
      );
    } catch (err) {
      if (isConditionalCheckFailed(err)) {
        throw new ConditionFailedError(
          `instance ${instance.instanceId} of sweep ${instance.sweepId} already exists`,
          {
            cause: err,
          },
        );
      }
      throw err;
    }
  }

  async listInstances(sweepId: string): Promise<InstanceRecord[]> {
    const expr = new Expression();
    const items = await this.queryAll({
      TableName: this.tables.instances,
      KeyConditionExpression: `${expr.name("sweepId")} = ${expr.value(sweepId)}`,
      ConsistentRead: true,
      ...expr.params(),
    });
    return items.map(itemToInstance);
  }

  async getInstance(sweepId: string, instanceId: string): Promise<InstanceRecord | undefined> {
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.tables.instances,
        Key: { sweepId, instanceId },
        ConsistentRead: true,
      }),
    );
    return out.Item ? itemToInstance(out.Item) : undefined;
  }

  async updateInstance(
    sweepId: string,
    instanceId: string,
    expect: InstanceExpectation,
    update: InstanceUpdate,
  ): Promise<InstanceRecord> {
    validateUpdate(InstanceRecord, "instance", update, ["sweepId", "instanceId", "provider", "launchedAt"]);
    const expected = { status: expect.status };
    const expr = new Expression();
    const set: Record<string, unknown> = {};
    const remove: string[] = [];
    if (update.status) {
      Object.assign(set, instanceIndexAttributes(instanceId, update.status));
      if (!("liveShard" in set)) remove.push("liveShard");
    }
    if (typeof update.deadline === "number") set.deadlineKey = deadlineKey(update.deadline, instanceId);
    const item = await this.conditionalUpdate(
      `instance ${instanceId} of sweep ${sweepId}`,
      expected,
      undefined,
      {
        TableName: this.tables.instances,
        Key: { sweepId, instanceId },
        UpdateExpression: updateExpression(expr, { fields: update, set, remove, noopAttribute: "status" }),
        ConditionExpression: conditionExpression(expr, "instanceId", expected),
        expr,
      },
    );
    return itemToInstance(item);
  }

  async listInstancesPastDeadline(before: number): Promise<InstanceRecord[]> {
    const bound = orderedKeyBelow(before);
    if (bound === null) return [];
    const perShard = await mapLimit(LIVE_SHARD_KEYS, this.readConcurrency, async (liveShard) => {
      const expr = new Expression();
      let condition = `${expr.name("liveShard")} = ${expr.value(liveShard)}`;
      if (bound !== undefined) condition += ` AND ${expr.name("deadlineKey")} < ${expr.value(bound)}`;
      return this.queryAll({
        TableName: this.tables.instances,
        IndexName: INDEX.instancesLive,
        KeyConditionExpression: condition,
        ...expr.params(),
      });
    });
    return perShard
      .flat()
      .map(itemToInstance)
      .sort((a, b) => a.deadline - b.deadline);
  }

  async findInstanceByProviderRef(providerRef: string): Promise<InstanceRecord | undefined> {
    const expr = new Expression();
    const keys = await this.queryAll(
      {
        TableName: this.tables.instances,
        IndexName: INDEX.instancesByRef,
        KeyConditionExpression: `${expr.name("providerRef")} = ${expr.value(providerRef)}`,
        ...expr.params(),
      },
      1,
    );
    const key = keys[0];
    if (!key) return undefined;
    return this.getInstance(String(key.sweepId), String(key.instanceId));
  }

  // -------------------------------------------------------------------------------------------
  // Plumbing

  /** Runs a Query to the end (or until `limit` items), following LastEvaluatedKey. */
  private queryAll(input: QueryCommandInput, limit?: number): Promise<Item[]> {
    return queryAll(this.doc, input, limit);
  }

  /** Select COUNT over every page. */
  /** Counts a query's items, all of them or at most `max` (reading no more than that). */
  private async countAll(input: QueryCommandInput, max?: number): Promise<number> {
    let count = 0;
    let startKey: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(
        new QueryCommand({
          ...input,
          Select: "COUNT",
          ExclusiveStartKey: startKey,
          ...(max !== undefined ? { Limit: max - count } : {}),
        }),
      );
      count += out.Count ?? 0;
      startKey = out.LastEvaluatedKey;
    } while (startKey && (max === undefined || count < max));
    return count;
  }

  /** One conditional UpdateItem; a failed condition (or a missing item) becomes ConditionFailedError. */
  private async conditionalUpdate(
    what: string,
    expected: Record<string, unknown>,
    errorClass: typeof ConditionFailedError | undefined,
    input: {
      TableName: string;
      Key: Item;
      UpdateExpression: string;
      ConditionExpression: string;
      expr: Expression;
    },
  ): Promise<Item> {
    const { expr, ...rest } = input;
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          ...rest,
          ...expr.params(),
          ReturnValues: "ALL_NEW",
          // DynamoDB and DynamoDB Local return the current item with the failure (free: no extra read);
          // dynalite ignores it and the message says less.
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      return out.Attributes as Item;
    } catch (err) {
      if (!isConditionalCheckFailed(err)) throw err;
      const attributes = [...new Set(["status", ...Object.keys(expected)])];
      let found = describeFound((err as { Item?: Item }).Item, attributes);
      if (found === undefined && errorClass) {
        // dynalite does not return the item with the failure. A lost lease is worth one read to
        // explain (who holds it now); routine races (claims, re-queues) are not, and they are hot.
        const current = await this.doc
          .send(new GetCommand({ TableName: rest.TableName, Key: rest.Key, ConsistentRead: true }))
          .catch(() => undefined);
        found = current ? (describeFound(current.Item, attributes) ?? "; found no such item") : "";
      }
      const ErrorClass = errorClass ?? ConditionFailedError;
      throw new ErrorClass(`${what}: expected ${describeExpectation(expected)}${found}`, { cause: err });
    }
  }

  /** BatchWriteItem in chunks of 25, `writeConcurrency` chunks at once, retrying unprocessed items with backoff. */
  private async batchWrite(
    tableName: string,
    requests: NonNullable<BatchWriteCommandInput["RequestItems"]>[string],
  ): Promise<void> {
    const chunks: (typeof requests)[] = [];
    for (let i = 0; i < requests.length; i += BATCH_SIZE) chunks.push(requests.slice(i, i + BATCH_SIZE));
    await mapLimit(chunks, this.writeConcurrency, async (chunk) => {
      let pending = chunk;
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 0) {
          if (attempt > 10)
            throw new Error(`BatchWriteItem on ${tableName}: ${pending.length} items still unprocessed`);
          await sleep(Math.min(2000, 20 * 2 ** attempt) * (0.5 + Math.random() / 2));
        }
        const out = await this.doc.send(new BatchWriteCommand({ RequestItems: { [tableName]: pending } }));
        pending = out.UnprocessedItems?.[tableName] ?? [];
      }
    });
  }
}

function shards(shardCount: number): number[] {
  return Array.from({ length: shardCount }, (_, i) => i);
}

/** `; found status="running" attempt="1"` from an item (marshalled or not); undefined without one. */
function describeFound(item: Item | undefined, attributes: readonly string[]): string | undefined {
  if (!item) return undefined;
  const parts: string[] = [];
  for (const attribute of attributes) {
    const raw = item[attribute];
    if (raw === undefined) continue;
    // The DocumentClient leaves the item of a failed condition marshalled ({ S: "…" } / { N: "…" }).
    const value =
      raw && typeof raw === "object" ? ((raw as { S?: string }).S ?? marshalledNumber(raw) ?? raw) : raw;
    parts.push(`${attribute}=${JSON.stringify(value)}`);
  }
  return `; found ${parts.join(" ")}`;
}

function marshalledNumber(raw: object): number | boolean | undefined {
  if ("N" in raw && typeof raw.N === "string") return Number(raw.N);
  if ("BOOL" in raw && typeof raw.BOOL === "boolean") return raw.BOOL;
  return undefined;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
