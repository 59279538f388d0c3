/**
 * Arms spawn schedules in EventBridge Scheduler: one schedule per record, in the stack's
 * schedule group, invoking the scheduler-handler Lambda with the schedule id and the
 * scheduled time. Retries and a dead-letter queue cover a failed invocation; the handler's
 * conditional history write makes a retried or duplicated delivery launch nothing twice.
 */
import {
  ConflictException,
  CreateScheduleCommand,
  type CreateScheduleCommandInput,
  DeleteScheduleCommand,
  ResourceNotFoundException,
  type SchedulerClient,
  UpdateScheduleCommand,
} from "@aws-sdk/client-scheduler";
import { BugError } from "../../core/errors.js";
import type { ScheduleDriver } from "../../core/scheduler.js";
import { type ScheduleRecord, toSchedulerExpression } from "../../core/schedules.js";

export interface EventBridgeScheduleConfig {
  /** The stack's schedule group. */
  groupName: string;
  /** What a schedule invokes; needed to arm schedules (`put`), not to remove them. */
  target?: {
    /** The scheduler-handler function's ARN. */
    arn: string;
    /** The role EventBridge Scheduler assumes to invoke the target (lambda:InvokeFunction on it only). */
    roleArn: string;
    /** SQS queue for invocations that fail after the retries. */
    deadLetterArn: string;
    /** @default 3 */
    maxRetries?: number;
    /** Give up on an invocation after this long. @default 1 hour */
    maxEventAgeSeconds?: number;
  };
}

/** The event the handler receives; `scheduledTime` is filled in by EventBridge Scheduler. */
export function scheduleTargetInput(scheduleId: string): string {
  return JSON.stringify({
    kind: "schedule",
    scheduleId,
    scheduledTime: "<aws.scheduler.scheduled-time>",
    attempt: "<aws.scheduler.attempt-number>",
  });
}

/** EventBridge schedule names allow [0-9a-zA-Z-_.], at most 64 characters; ours are sch-<slug>-<id>. */
export function awsScheduleName(scheduleId: string): string {
  return scheduleId.replace(/[^0-9A-Za-z\-_.]/g, "-").slice(0, 64);
}

export class EventBridgeScheduleDriver implements ScheduleDriver {
  constructor(
    private readonly client: SchedulerClient,
    private readonly config: EventBridgeScheduleConfig,
  ) {}

  input(schedule: ScheduleRecord): CreateScheduleCommandInput {
    const { config } = this;
    const target = config.target;
    if (!target)
      throw new BugError("EventBridgeScheduleDriver: arming a schedule needs the target configuration");
    return {
      Name: awsScheduleName(schedule.scheduleId),
      GroupName: config.groupName,
      ScheduleExpression: toSchedulerExpression(schedule.trigger),
      ScheduleExpressionTimezone: schedule.trigger.timezone,
      FlexibleTimeWindow: { Mode: "OFF" },
      State: schedule.state === "enabled" ? "ENABLED" : "DISABLED",
      ...(schedule.endAt !== undefined ? { EndDate: new Date(schedule.endAt) } : {}),
      // Rate schedules count from their creation, as the embedded scheduler does.
      ...(schedule.trigger.kind === "rate" ? { StartDate: new Date(schedule.createdAt) } : {}),
      // A one-time schedule removes itself once it has fired.
      ...(schedule.trigger.kind === "at" ? { ActionAfterCompletion: "DELETE" as const } : {}),
      Description: `spawn schedule ${schedule.scheduleId} (${schedule.name})`,
      Target: {
        Arn: target.arn,
        RoleArn: target.roleArn,
        Input: scheduleTargetInput(schedule.scheduleId),
        RetryPolicy: {
          MaximumRetryAttempts: target.maxRetries ?? 3,
          MaximumEventAgeInSeconds: target.maxEventAgeSeconds ?? 3600,
        },
        DeadLetterConfig: { Arn: target.deadLetterArn },
      },
    };
  }

  async put(schedule: ScheduleRecord): Promise<void> {
    const input = this.input(schedule);
    try {
      await this.client.send(new CreateScheduleCommand(input));
    } catch (error) {
      if (!(error instanceof ConflictException)) throw error;
      // UpdateSchedule replaces the whole definition, so it takes the same input.
      await this.client.send(new UpdateScheduleCommand(input));
    }
  }

  async remove(schedule: ScheduleRecord): Promise<void> {
    try {
      await this.client.send(
        new DeleteScheduleCommand({
          Name: awsScheduleName(schedule.scheduleId),
          GroupName: this.config.groupName,
        }),
      );
    } catch (error) {
      if (!(error instanceof ResourceNotFoundException)) throw error;
    }
  }
}
