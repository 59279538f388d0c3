import {
  ConflictException,
  CreateScheduleCommand,
  DeleteScheduleCommand,
  ResourceNotFoundException,
  SchedulerClient,
  UpdateScheduleCommand,
} from "@aws-sdk/client-scheduler";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, test } from "vitest";
import { parseTrigger, type ScheduleRecord, type TriggerInput } from "../../core/schedules.js";
import { EventBridgeScheduleDriver } from "./schedule-driver.js";

const scheduler = mockClient(SchedulerClient);
const target = {
  arn: "arn:aws:lambda:us-east-1:123456789012:function:spawn-scheduler-handler",
  roleArn: "arn:aws:iam::123456789012:role/spawn-scheduler-invoke",
  deadLetterArn: "arn:aws:sqs:us-east-1:123456789012:spawn-schedules-dlq",
};
const config = { groupName: "spawn-schedules", target };
const driver = () => new EventBridgeScheduleDriver(new SchedulerClient({ region: "us-east-1" }), config);

function record(trigger: TriggerInput, extra: Partial<ScheduleRecord> = {}): ScheduleRecord {
  return {
    scheduleId: "sch-nightly-m1abcd12",
    name: "nightly",
    owner: "ana",
    provider: "aws",
    trigger: parseTrigger(trigger),
    state: "enabled",
    specKey: "schedules/sch-nightly-m1abcd12/spec.json",
    bundle: { key: "bundles/a.tgz", sha256: "a", bytes: 1 },
    executions: 0,
    missed: 0,
    createdAt: Date.parse("2026-11-23T00:00:00Z"),
    updatedAt: 0,
    ...extra,
  };
}

beforeEach(() => scheduler.reset());

describe("EventBridgeScheduleDriver", () => {
  test("creates a cron schedule in the zone, with retries, a DLQ and the scheduled time in the input", async () => {
    scheduler.on(CreateScheduleCommand).resolves({ ScheduleArn: "arn:x" });
    await driver().put(
      record(
        { cron: "30 9 * * 1-5", timezone: "Europe/Paris" },
        { endAt: Date.parse("2027-01-01T00:00:00Z") },
      ),
    );
    const calls = scheduler.commandCalls(CreateScheduleCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.args[0].input).toEqual({
      Name: "sch-nightly-m1abcd12",
      GroupName: "spawn-schedules",
      ScheduleExpression: "cron(30 9 ? * MON-FRI *)",
      ScheduleExpressionTimezone: "Europe/Paris",
      FlexibleTimeWindow: { Mode: "OFF" },
      State: "ENABLED",
      EndDate: new Date("2027-01-01T00:00:00Z"),
      Description: "spawn schedule sch-nightly-m1abcd12 (nightly)",
      Target: {
        Arn: target.arn,
        RoleArn: target.roleArn,
        Input: JSON.stringify({
          kind: "schedule",
          scheduleId: "sch-nightly-m1abcd12",
          scheduledTime: "<aws.scheduler.scheduled-time>",
          attempt: "<aws.scheduler.attempt-number>",
        }),
        RetryPolicy: { MaximumRetryAttempts: 3, MaximumEventAgeInSeconds: 3600 },
        DeadLetterConfig: { Arn: target.deadLetterArn },
      },
    });
  });

  test("a one-time schedule deletes itself after firing; a rate schedule starts at creation", async () => {
    scheduler.on(CreateScheduleCommand).resolves({});
    await driver().put(record({ at: "2026-12-01T09:00", timezone: "America/New_York" }));
    await driver().put(record({ rate: "6h" }));
    const [at, rate] = scheduler.commandCalls(CreateScheduleCommand).map((c) => c.args[0].input);
    expect(at).toMatchObject({
      ScheduleExpression: "at(2026-12-01T09:00:00)",
      ActionAfterCompletion: "DELETE",
    });
    expect(rate).toMatchObject({
      ScheduleExpression: "rate(6 hours)",
      StartDate: new Date("2026-11-23T00:00:00Z"),
    });
    expect(rate).not.toHaveProperty("ActionAfterCompletion");
  });

  test("pausing an existing schedule updates it to DISABLED", async () => {
    scheduler
      .on(CreateScheduleCommand)
      .rejects(new ConflictException({ message: "exists", $metadata: {}, Message: "exists" }))
      .on(UpdateScheduleCommand)
      .resolves({});
    await driver().put(record({ rate: "1d" }, { state: "paused" }));
    const update = scheduler.commandCalls(UpdateScheduleCommand);
    expect(update).toHaveLength(1);
    expect(update[0]!.args[0].input).toMatchObject({ Name: "sch-nightly-m1abcd12", State: "DISABLED" });
  });

  test("remove is idempotent", async () => {
    scheduler
      .on(DeleteScheduleCommand)
      .rejectsOnce(new ResourceNotFoundException({ message: "gone", $metadata: {}, Message: "gone" }))
      .resolves({});
    await driver().remove(record({ rate: "1d" }));
    await driver().remove(record({ rate: "1d" }));
    expect(scheduler.commandCalls(DeleteScheduleCommand).map((c) => c.args[0].input)).toEqual([
      { Name: "sch-nightly-m1abcd12", GroupName: "spawn-schedules" },
      { Name: "sch-nightly-m1abcd12", GroupName: "spawn-schedules" },
    ]);
  });

  test("removing needs only the group; arming without a target is a bug, not a half-made schedule", async () => {
    scheduler.on(DeleteScheduleCommand).resolves({});
    const removeOnly = new EventBridgeScheduleDriver(new SchedulerClient({ region: "us-east-1" }), {
      groupName: "spawn-schedules",
    });
    await removeOnly.remove(record({ rate: "1d" }));
    await expect(removeOnly.put(record({ rate: "1d" }))).rejects.toThrow(/needs the target configuration/);
    expect(scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(0);
  });

  test("other errors surface", async () => {
    scheduler.on(CreateScheduleCommand).rejects(new Error("AccessDenied"));
    await expect(driver().put(record({ rate: "1d" }))).rejects.toThrow(/AccessDenied/);
  });
});
