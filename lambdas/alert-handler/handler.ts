/**
 * The alert-handler Lambda. Two kinds of invocation:
 *
 * - an event from the stack's bus (a rule routes `source: spawn.orchestrator` and `spawn.agent`,
 *   whose agents publish the task failures they finalize and DNS failures): its `detail` is
 *   validated against the event contract (core/events.ts) and handed to core's handleEvent,
 *   which delivers every alert it fires exactly as the embedded control plane does;
 * - `{"kind": "check"}` from a periodic rule: the level triggers (cost, long-running,
 *   preemptions) of every active sweep.
 *
 * A retryable delivery failure fails the invocation, so Lambda retries it (the history's
 * conditional claims keep a retry from sending anything twice). An event that does not match
 * the contract is dropped with a warning: no retry can fix it.
 *
 * Environment (read once, at cold start): SPAWN_TABLE_PREFIX, SPAWN_HOME_REGION,
 * SPAWN_ALERTS_KEY_ARN (KMS key of sealed webhook secrets: kms:Decrypt), SPAWN_ALERTS_TOPIC_ARN
 * (the stack's alerts topic: sns:Publish), and optionally SPAWN_DASHBOARD_URL (messages link
 * `<url>/#/sweeps/<id>`). docs/alerts.md lists the permissions.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { KMSClient } from "@aws-sdk/client-kms";
import { SNSClient } from "@aws-sdk/client-sns";
import middy from "@middy/core";
import { z } from "zod";
import { type AlertDeps, checkAlertLevels, type DeliveryReport, handleEvent } from "#core/alerts.js";
import { SpawnEvent } from "#core/events.js";
import { systemClock } from "#core/ports.js";
import { AGENT_SOURCE, ORCHESTRATOR_SOURCE } from "#providers/aws/events.js";
import { DynamoStateStore } from "#providers/dynamodb/store.js";
import { awsAlertServices } from "#providers/notify/aws-alerts.js";
import { channelSender } from "#providers/notify/channels.js";
import { requireEnv } from "../shared/env.js";
import { lambdaLogger } from "../shared/logger.js";
import {
  BadEventError,
  handleErrors,
  type LoggedContext,
  logContext,
  validateEvent,
} from "../shared/middleware.js";

export const ENV = requireEnv([
  "SPAWN_TABLE_PREFIX",
  "SPAWN_HOME_REGION",
  "SPAWN_ALERTS_KEY_ARN",
  "SPAWN_ALERTS_TOPIC_ARN",
]);

const logger = lambdaLogger("alert-handler");

const BusEntry = z.object({
  source: z.enum([ORCHESTRATOR_SOURCE, AGENT_SOURCE]),
  "detail-type": z.string(),
  detail: z.unknown(),
});
const Check = z.object({ kind: z.literal("check") });

export type AlertInvocation = { kind: "event"; event: SpawnEvent } | { kind: "check" };

export function parseInvocation(raw: unknown): AlertInvocation {
  if (Check.safeParse(raw).success) return { kind: "check" };
  const entry = BusEntry.safeParse(raw);
  if (!entry.success) throw new BadEventError(`not a spawn event or check: ${z.prettifyError(entry.error)}`);
  const event = SpawnEvent.safeParse(entry.data.detail);
  if (!event.success)
    throw new BadEventError(
      `${entry.data["detail-type"]}: detail does not match the event contract (docs/events.md): ${z.prettifyError(event.error)}`,
    );
  if (event.data.type !== entry.data["detail-type"])
    throw new BadEventError(`detail-type ${entry.data["detail-type"]} carries a ${event.data.type} event`);
  return { kind: "event", event: event.data };
}

export interface AlertResult {
  status: "handled" | "checked";
  sweeps?: number;
  deliveries: DeliveryReport[];
}

let deps: (AlertDeps & { store: DynamoStateStore }) | undefined;

function containerDeps(): AlertDeps & { store: DynamoStateStore } {
  if (deps) return deps;
  const region = ENV.SPAWN_HOME_REGION;
  const dynamo = new DynamoDBClient({ region });
  const services = awsAlertServices({
    dynamo,
    kms: new KMSClient({ region }),
    sns: new SNSClient({ region }),
    tablePrefix: ENV.SPAWN_TABLE_PREFIX,
    kmsKeyId: ENV.SPAWN_ALERTS_KEY_ARN,
    topicArn: ENV.SPAWN_ALERTS_TOPIC_ARN,
  });
  deps = {
    alerts: services.store,
    store: new DynamoStateStore(dynamo, ENV.SPAWN_TABLE_PREFIX),
    clock: systemClock,
    send: channelSender({ secrets: services.secrets, topics: services.topics }),
    ...(process.env.SPAWN_DASHBOARD_URL ? { linkBase: process.env.SPAWN_DASHBOARD_URL } : {}),
  };
  return deps;
}

export const handler = middy<AlertInvocation, AlertResult, Error, LoggedContext>()
  .use(validateEvent(parseInvocation))
  .use(
    logContext(logger, (i: AlertInvocation) =>
      i.kind === "event" ? { sweepId: i.event.sweepId, type: i.event.type } : { check: true },
    ),
  )
  .use(handleErrors(logger))
  .handler(async (invocation) => {
    const d = containerDeps();
    if (invocation.kind === "event")
      return { status: "handled", deliveries: await handleEvent(d, invocation.event) };
    const active = await d.store.listActiveSweeps();
    return {
      status: "checked",
      sweeps: active.length,
      deliveries: await checkAlertLevels(d, active),
    };
  });
