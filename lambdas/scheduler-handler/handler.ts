/**
 * The scheduler handler Lambda: EventBridge Scheduler invokes it for each firing of a spawn
 * schedule with `{kind: "schedule", scheduleId, scheduledTime}`. It fires the schedule through
 * core (record the firing once, launch the stored spec, advance the schedule) the way the CLI
 * launches (ADR 0040): the sweep's own instance role before its record, then the orchestrator's
 * "Sweep Submitted" kick, both in the firing's trace. A duplicate or retried delivery of the same
 * firing finds its history record and launches nothing.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { IAMClient } from "@aws-sdk/client-iam";
import { S3Client } from "@aws-sdk/client-s3";
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import middy from "@middy/core";
import { z } from "zod";
import { publishingLauncher } from "#core/alerts.js";
import { systemClock } from "#core/ports.js";
import { type FireResult, fireSchedule, type SchedulerDeps, storedSpecLauncher } from "#core/scheduler.js";
import { EventBridgeSink, kickSweep } from "#providers/aws/events.js";
import { S3ObjectStore } from "#providers/aws/s3-objects.js";
import { EventBridgeScheduleDriver } from "#providers/aws/schedule-driver.js";
import { type StackRoleScope, sweepRoleHooks } from "#providers/aws/sweep-role.js";
import { DynamoScheduleStore } from "#providers/dynamodb/schedule-store.js";
import { DynamoStateStore } from "#providers/dynamodb/store.js";
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
  "SPAWN_ARTIFACTS_BUCKET",
  "SPAWN_RESULTS_BUCKET",
  "SPAWN_EVENT_BUS",
  "SPAWN_HOME_REGION",
  "SPAWN_SCHEDULE_GROUP",
  "SPAWN_STACK_NAME",
  "SPAWN_ACCOUNT_ID",
  "SPAWN_PARTITION",
]);
/** The stack's dns-updater, only when it has a hosted zone: sweep roles may then invoke it. */
const DNS_UPDATER_ARN = process.env.SPAWN_DNS_UPDATER_ARN;

const logger = lambdaLogger("scheduler-handler");

/** What EventBridge Scheduler sends (providers/aws/schedule-driver.ts writes the template). */
export const ScheduleFiring = z.object({
  kind: z.literal("schedule"),
  scheduleId: z.string().min(1).max(200),
  scheduledTime: z.iso.datetime({ message: "must be an ISO-8601 time" }),
  attempt: z.string().optional(),
  /** A W3C traceparent to continue; a malformed one is not continued (a new trace starts). */
  traceparent: z.string().max(512).optional(),
});
export type ScheduleFiring = z.infer<typeof ScheduleFiring>;

function parseFiring(raw: unknown): ScheduleFiring {
  const parsed = ScheduleFiring.safeParse(raw);
  if (!parsed.success) throw new BadEventError(`invalid schedule firing: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

let deps: SchedulerDeps | undefined;

function containerDeps(): SchedulerDeps {
  if (deps) return deps;
  const region = ENV.SPAWN_HOME_REGION;
  const dynamo = new DynamoDBClient({ region });
  const events = new EventBridgeClient({ region });
  const iam = new IAMClient({ region });
  const store = new DynamoStateStore(dynamo, ENV.SPAWN_TABLE_PREFIX);
  const roleScope: StackRoleScope = {
    stack: ENV.SPAWN_STACK_NAME,
    account: ENV.SPAWN_ACCOUNT_ID,
    partition: ENV.SPAWN_PARTITION,
    homeRegion: region,
    tablePrefix: ENV.SPAWN_TABLE_PREFIX,
    artifactsBucket: ENV.SPAWN_ARTIFACTS_BUCKET,
    resultsBucket: ENV.SPAWN_RESULTS_BUCKET,
    eventBusName: ENV.SPAWN_EVENT_BUS,
    ...(DNS_UPDATER_ARN ? { dnsUpdaterArn: DNS_UPDATER_ARN } : {}),
  };
  const { prepareSweep, discardSweep } = sweepRoleHooks(iam, async () => roleScope);
  const objects = new S3ObjectStore(new S3Client({ region }), {
    bucket: ENV.SPAWN_RESULTS_BUCKET,
    routes: { "bundles/": ENV.SPAWN_ARTIFACTS_BUCKET },
  });
  deps = {
    schedules: new DynamoScheduleStore(dynamo, ENV.SPAWN_TABLE_PREFIX),
    clock: systemClock,
    // ScheduleLaunched / ScheduleLaunchFailed go on the stack bus, where alerts pick them up.
    launcher: publishingLauncher(
      storedSpecLauncher({
        store,
        objects,
        clock: systemClock,
        hooks: {
          prepareSweep,
          discardSweep,
          // The kick only saves waiting for the next tick (a minute at most): the sweep exists,
          // so a failed kick is logged and the firing still counts as launched.
          sweepCreated: (sweepId, traceparent) =>
            kickSweep(events, ENV.SPAWN_EVENT_BUS, sweepId, traceparent).catch((error: unknown) =>
              logger.warn("could not kick the orchestrator; the periodic tick starts the sweep", {
                sweepId,
                error,
              }),
            ),
        },
      }),
      new EventBridgeSink(events, ENV.SPAWN_EVENT_BUS),
      systemClock,
    ),
    // The handler only disarms completed schedules; arming is the CLI's.
    driver: new EventBridgeScheduleDriver(new SchedulerClient({ region }), {
      groupName: ENV.SPAWN_SCHEDULE_GROUP,
    }),
  };
  return deps;
}

export const handler = middy<ScheduleFiring, FireResult, Error, LoggedContext>()
  .use(validateEvent(parseFiring))
  .use(
    logContext(logger, (e: ScheduleFiring) => ({ scheduleId: e.scheduleId, scheduledTime: e.scheduledTime })),
  )
  .use(handleErrors(logger))
  .handler(async (event) => {
    const result = await fireSchedule(
      containerDeps(),
      event.scheduleId,
      Date.parse(event.scheduledTime),
      event.traceparent,
    );
    // A failed launch is recorded in the history and alerted on; retrying the invocation would
    // only find the history record. An unknown schedule (deleted while armed) is dropped.
    return result;
  });
