/**
 * The scheduler handler Lambda: EventBridge Scheduler invokes it for each firing of a spawn
 * schedule with `{kind: "schedule", scheduleId, scheduledTime}`. It fires the schedule through
 * core (record the firing once, launch the stored spec, advance the schedule) and wakes the
 * orchestrator with the CLI's "Sweep Submitted" event. A duplicate or retried delivery of the
 * same firing finds its history record and launches nothing.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
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
]);

const logger = lambdaLogger("scheduler-handler");

/** What EventBridge Scheduler sends (providers/aws/schedule-driver.ts writes the template). */
export const ScheduleFiring = z.object({
  kind: z.literal("schedule"),
  scheduleId: z.string().min(1).max(200),
  scheduledTime: z.iso.datetime({ message: "must be an ISO-8601 time" }),
  attempt: z.string().optional(),
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
  const store = new DynamoStateStore(dynamo, ENV.SPAWN_TABLE_PREFIX);
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
        afterCreate: (sweep) => kickSweep(events, ENV.SPAWN_EVENT_BUS, sweep.sweepId),
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
    const result = await fireSchedule(containerDeps(), event.scheduleId, Date.parse(event.scheduledTime));
    // A failed launch is recorded in the history and alerted on; retrying the invocation would
    // only find the history record. An unknown schedule (deleted while armed) is dropped.
    return result;
  });
