/**
 * AlertStore on DynamoDB (dynalite locally): `spawn-alerts` and `spawn-alert-history`
 * (docs/data-model.md, docs/alerts.md).
 *
 * - An alert is keyed by `scope = owner#<name>` and `alertId = <sweep|schedule>#<id>#<suffix>`:
 *   a user's alerts are one query, a target's a `begins_with` on the sort key. No scan.
 * - A delivery is keyed by (`<scope>#<alertId>`, `<trigger>#<subject>`), the dedupe key. It is
 *   claimed with one conditional UpdateItem (create, or take over a failed or abandoned
 *   delivery) and finished with another. `firedKey`/`sweepId` feed the sparse `by-sweep` index.
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DeleteCommand, DynamoDBDocumentClient, GetCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import {
  AlertDelivery,
  AlertRecord,
  type AlertStore,
  type AlertTarget,
  type ChannelResult,
  type ClaimRequest,
  type DeliveryOutcome,
  HISTORY_TTL_DAYS,
  ownerScope,
  targetPrefix,
} from "../../core/alerts.js";
import { ConditionFailedError } from "../../core/errors.js";
import { type Item, orderedKey } from "./codec.js";
import { Expression } from "./expressions.js";
import { isConditionalCheckFailed, putIfAbsent, queryAll } from "./requests.js";
import { DEFAULT_TABLE_PREFIX, INDEX, type TableNames, TTL_ATTRIBUTE, tableNames } from "./tables.js";

function itemToDelivery(item: Item): AlertDelivery {
  const { expiresAt: _e, firedKey: _f, ...rest } = item;
  return AlertDelivery.parse(rest);
}

export class DynamoAlertStore implements AlertStore {
  readonly tables: TableNames;
  private readonly doc: DynamoDBDocumentClient;

  constructor(client: DynamoDBClient, prefix: string = DEFAULT_TABLE_PREFIX) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
    this.tables = tableNames(prefix);
  }

  async createAlert(alert: AlertRecord): Promise<void> {
    if (!(await putIfAbsent(this.doc, this.tables.alerts, AlertRecord.parse(alert), "alertId")))
      throw new ConditionFailedError(`alert ${alert.alertId} already exists`);
  }

  async getAlert(owner: string, alertId: string): Promise<AlertRecord | undefined> {
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.tables.alerts,
        Key: { scope: ownerScope(owner), alertId },
        ConsistentRead: true,
      }),
    );
    return out.Item ? AlertRecord.parse(out.Item) : undefined;
  }

  async listAlerts(owner: string, target?: AlertTarget): Promise<AlertRecord[]> {
    const expr = new Expression();
    let condition = `${expr.name("scope")} = ${expr.value(ownerScope(owner))}`;
    if (target) condition += ` AND begins_with(${expr.name("alertId")}, ${expr.value(targetPrefix(target))})`;
    const items = await queryAll(this.doc, {
      TableName: this.tables.alerts,
      KeyConditionExpression: condition,
      // A delivery must see an alert created just before the event.
      ConsistentRead: true,
      ...expr.params(),
    });
    return items.map((item) => AlertRecord.parse(item)).sort((a, b) => a.createdAt - b.createdAt);
  }

  async deleteAlert(owner: string, alertId: string): Promise<boolean> {
    const out = await this.doc.send(
      new DeleteCommand({
        TableName: this.tables.alerts,
        Key: { scope: ownerScope(owner), alertId },
        ReturnValues: "ALL_OLD",
      }),
    );
    return out.Attributes !== undefined;
  }

  async claimDelivery(request: ClaimRequest): Promise<{ claimed: boolean; previous?: AlertDelivery }> {
    const expr = new Expression();
    const v = (value: unknown) => expr.value(value);
    const n = (name: string) => expr.name(name);
    const ifNew = (name: string, value: unknown) => `${n(name)} = if_not_exists(${n(name)}, ${v(value)})`;
    const sets = [
      `${n("owner")} = ${v(request.owner)}`,
      `${n("alertId")} = ${v(request.alertId)}`,
      `${n("trigger")} = ${v(request.trigger)}`,
      `${n("title")} = ${v(request.title)}`,
      `${n("outcome")} = ${v("pending" satisfies DeliveryOutcome)}`,
      `${n("claimedUntil")} = ${v(request.now + request.claimMs)}`,
      `${n("updatedAt")} = ${v(request.now)}`,
      `${n("attempts")} = if_not_exists(${n("attempts")}, ${v(0)}) + ${v(1)}`,
      ifNew("channels", []),
      ifNew("firedAt", request.now),
      // DynamoDB TTL (epoch seconds); dynalite ignores it.
      ifNew(TTL_ATTRIBUTE, Math.floor(request.now / 1000) + HISTORY_TTL_DAYS * 86_400),
    ];
    if (request.sweepId) {
      sets.push(`${n("sweepId")} = ${v(request.sweepId)}`);
      sets.push(
        ifNew("firedKey", orderedKey(request.now, `${request.alertKey}#${request.eventKey}`, "firedAt")),
      );
    }
    const condition =
      `attribute_not_exists(${n("eventKey")}) OR ${n("outcome")} = ${v("failed" satisfies DeliveryOutcome)}` +
      ` OR (${n("outcome")} = ${v("pending" satisfies DeliveryOutcome)} AND ${n("claimedUntil")} < ${v(request.now)})`;
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tables.alertHistory,
          Key: { alertKey: request.alertKey, eventKey: request.eventKey },
          UpdateExpression: `SET ${sets.join(", ")}`,
          ConditionExpression: condition,
          ReturnValues: "ALL_OLD",
          ...expr.params(),
        }),
      );
      return out.Attributes ? { claimed: true, previous: itemToDelivery(out.Attributes) } : { claimed: true };
    } catch (err) {
      if (isConditionalCheckFailed(err)) return { claimed: false };
      throw err;
    }
  }

  async finishDelivery(
    alertKey: string,
    eventKey: string,
    result: { outcome: Exclude<DeliveryOutcome, "pending">; channels: ChannelResult[]; updatedAt: number },
  ): Promise<void> {
    const expr = new Expression();
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tables.alertHistory,
        Key: { alertKey, eventKey },
        UpdateExpression:
          `SET ${expr.name("outcome")} = ${expr.value(result.outcome)}, ${expr.name("channels")} = ${expr.value(result.channels)}, ` +
          `${expr.name("updatedAt")} = ${expr.value(result.updatedAt)} REMOVE ${expr.name("claimedUntil")}`,
        ConditionExpression: `attribute_exists(${expr.name("eventKey")})`,
        ...expr.params(),
      }),
    );
  }

  async listDeliveries(
    query: { sweepId: string } | { alertKey: string },
    limit?: number,
  ): Promise<AlertDelivery[]> {
    const expr = new Expression();
    if ("sweepId" in query) {
      const items = await queryAll(
        this.doc,
        {
          TableName: this.tables.alertHistory,
          IndexName: INDEX.alertHistoryBySweep,
          KeyConditionExpression: `${expr.name("sweepId")} = ${expr.value(query.sweepId)}`,
          ScanIndexForward: false,
          ...expr.params(),
        },
        limit,
      );
      return items.map(itemToDelivery);
    }
    // Sorted by eventKey on the table; one alert's deliveries are few, so order them here.
    const items = await queryAll(this.doc, {
      TableName: this.tables.alertHistory,
      KeyConditionExpression: `${expr.name("alertKey")} = ${expr.value(query.alertKey)}`,
      ...expr.params(),
    });
    const deliveries = items.map(itemToDelivery).sort((a, b) => b.firedAt - a.firedAt);
    return limit === undefined ? deliveries : deliveries.slice(0, limit);
  }
}
