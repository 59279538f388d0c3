/**
 * ScheduleStore on DynamoDB (dynalite locally): `spawn-schedules` and
 * `spawn-schedule-history` (docs/data-model.md). The `due` index is sparse: `dueShard` is
 * present only while a schedule is enabled and `dueKey` only while it has a next firing, so the
 * scheduler's query sees exactly the schedules it may have to fire.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DeleteCommand, DynamoDBDocumentClient, GetCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { ConditionFailedError } from "../../core/errors.js";
import type { ScheduleExpectation, ScheduleStore, ScheduleUpdate } from "../../core/scheduler.js";
import { FiringRecord, type FiringStatus, ScheduleRecord } from "../../core/schedules.js";
import { type Item, orderedKey, orderedKeyBelow, validateUpdate } from "./codec.js";
import { conditionExpression, describeExpectation, Expression, updateExpression } from "./expressions.js";
import { isConditionalCheckFailed, putIfAbsent, queryAll } from "./requests.js";
import { DEFAULT_TABLE_PREFIX, INDEX, type TableNames, tableNames } from "./tables.js";

/** `due#0..3`: the due index is spread over a few partitions keys. */
const DUE_SHARDS = 4;
const DUE_SHARD_KEYS = Array.from({ length: DUE_SHARDS }, (_, i) => `due#${i}`);
/** History items expire 400 days after they are written (TTL on AWS; dynalite ignores it). */
const HISTORY_TTL_S = 400 * 86_400;

function dueShardOf(scheduleId: string): string {
  let h = 0;
  for (const c of scheduleId) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return DUE_SHARD_KEYS[h % DUE_SHARDS]!;
}

function scheduleToItem(schedule: ScheduleRecord): Item {
  const record = ScheduleRecord.parse(schedule);
  return {
    ...record,
    ...(record.state === "enabled" ? { dueShard: dueShardOf(record.scheduleId) } : {}),
    ...(record.nextRunAt !== undefined
      ? { dueKey: orderedKey(record.nextRunAt, record.scheduleId, "nextRunAt") }
      : {}),
  };
}

function itemToSchedule(item: Item): ScheduleRecord {
  const { dueShard: _s, dueKey: _k, ...rest } = item;
  return ScheduleRecord.parse(rest);
}

export class DynamoScheduleStore implements ScheduleStore {
  readonly tables: TableNames;
  private readonly doc: DynamoDBDocumentClient;

  constructor(client: DynamoDBClient, prefix: string = DEFAULT_TABLE_PREFIX) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
    this.tables = tableNames(prefix);
  }

  async createSchedule(schedule: ScheduleRecord): Promise<void> {
    if (!(await putIfAbsent(this.doc, this.tables.schedules, scheduleToItem(schedule), "scheduleId")))
      throw new ConditionFailedError(`schedule ${schedule.scheduleId} already exists`);
  }

  async getSchedule(scheduleId: string): Promise<ScheduleRecord | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tables.schedules, Key: { scheduleId }, ConsistentRead: true }),
    );
    return out.Item ? itemToSchedule(out.Item) : undefined;
  }

  async listSchedules(options: { owner: string }): Promise<ScheduleRecord[]> {
    const expr = new Expression();
    const items = await queryAll(this.doc, {
      TableName: this.tables.schedules,
      IndexName: INDEX.schedulesByOwner,
      KeyConditionExpression: `${expr.name("owner")} = ${expr.value(options.owner)}`,
      ScanIndexForward: false,
      ...expr.params(),
    });
    return items.map(itemToSchedule);
  }

  async listDueSchedules(now: number): Promise<ScheduleRecord[]> {
    const bound = orderedKeyBelow(now + 1);
    if (bound === null) return [];
    const perShard = await Promise.all(
      DUE_SHARD_KEYS.map((dueShard) => {
        const expr = new Expression();
        let condition = `${expr.name("dueShard")} = ${expr.value(dueShard)}`;
        if (bound !== undefined) condition += ` AND ${expr.name("dueKey")} < ${expr.value(bound)}`;
        return queryAll(this.doc, {
          TableName: this.tables.schedules,
          IndexName: INDEX.schedulesDue,
          KeyConditionExpression: condition,
          ...expr.params(),
        });
      }),
    );
    return perShard
      .flat()
      .map(itemToSchedule)
      .sort((a, b) => (a.nextRunAt ?? 0) - (b.nextRunAt ?? 0));
  }

  async updateSchedule(
    scheduleId: string,
    expect: ScheduleExpectation,
    update: ScheduleUpdate,
  ): Promise<ScheduleRecord> {
    validateUpdate(ScheduleRecord, "schedule", update, ["scheduleId", "owner", "provider", "createdAt"]);
    const expr = new Expression();
    const clauses = [
      conditionExpression(expr, "scheduleId", { state: expect.state, executions: expect.executions }),
    ];
    if (expect.nextRunAt === null) clauses.push(`attribute_not_exists(${expr.name("nextRunAt")})`);
    else if (expect.nextRunAt !== undefined)
      clauses.push(`${expr.name("nextRunAt")} = ${expr.value(expect.nextRunAt)}`);
    // The index attributes follow the fields they derive from (see the module comment).
    const set: Record<string, unknown> = {};
    const remove: string[] = [];
    if (update.state) {
      if (update.state === "enabled") set.dueShard = dueShardOf(scheduleId);
      else remove.push("dueShard");
    }
    if (update.nextRunAt === null) remove.push("dueKey");
    else if (update.nextRunAt !== undefined)
      set.dueKey = orderedKey(update.nextRunAt, scheduleId, "nextRunAt");
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tables.schedules,
          Key: { scheduleId },
          UpdateExpression: updateExpression(expr, { fields: update, set, remove, noopAttribute: "state" }),
          ConditionExpression: clauses.join(" AND "),
          ...expr.params(),
          ReturnValues: "ALL_NEW",
        }),
      );
      return itemToSchedule(out.Attributes as Item);
    } catch (err) {
      if (!isConditionalCheckFailed(err)) throw err;
      throw new ConditionFailedError(
        `schedule ${scheduleId}: expected ${describeExpectation({ ...expect })}`,
        { cause: err },
      );
    }
  }

  async deleteSchedule(scheduleId: string): Promise<void> {
    await this.doc.send(new DeleteCommand({ TableName: this.tables.schedules, Key: { scheduleId } }));
  }

  async recordFiring(firing: FiringRecord): Promise<boolean> {
    const record = FiringRecord.parse(firing);
    const expiresAt = Math.floor(record.recordedAt / 1000) + HISTORY_TTL_S;
    return putIfAbsent(this.doc, this.tables.scheduleHistory, { ...record, expiresAt }, "firedAt");
  }

  async updateFiring(
    scheduleId: string,
    firedAt: number,
    update: { status: FiringStatus; sweepId?: string; error?: string; updatedAt: number },
  ): Promise<void> {
    const expr = new Expression();
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tables.scheduleHistory,
        Key: { scheduleId, firedAt },
        UpdateExpression: updateExpression(expr, { fields: update, noopAttribute: "status" }),
        ConditionExpression: `attribute_exists(${expr.name("firedAt")})`,
        ...expr.params(),
      }),
    );
  }

  async listFirings(scheduleId: string, options: { limit?: number } = {}): Promise<FiringRecord[]> {
    const expr = new Expression();
    const items = await queryAll(
      this.doc,
      {
        TableName: this.tables.scheduleHistory,
        KeyConditionExpression: `${expr.name("scheduleId")} = ${expr.value(scheduleId)}`,
        ScanIndexForward: false,
        ...expr.params(),
      },
      options.limit,
    );
    return items.map(({ expiresAt: _e, ...rest }) => FiringRecord.parse(rest));
  }
}
