/**
 * `spawn schedule`: create (validate the spec and the trigger, snapshot the workdir, store
 * the spec, arm the schedule), list, describe, pause, resume, delete, history.
 */
import { firingSweepId } from "#core/scheduler.js";
import {
  newScheduleId,
  nextRunAfter,
  parseInstant,
  parseTrigger,
  ScheduleError,
  type ScheduleRecord,
  type TriggerInput,
  toSchedulerExpression,
} from "#core/schedules.js";
import { encodeSpec } from "#providers/dynamodb/codec.js";
import { type CliContext, ownerOf } from "../context.js";
import { cliRandom, uploadWorkdir } from "./launch.js";
import { planSweep } from "./plan.js";
import { driverFor, recordAndArm } from "./schedule-actions.js";

// Reading and changing schedules live apart from create, which plans and bundles (schedule-actions.ts).
export {
  deleteSchedule,
  driverFor,
  pauseSchedule,
  recordAndArm,
  requireSchedule,
  resumeSchedule,
  scheduleHistory,
  scheduleJson,
} from "./schedule-actions.js";

export interface CreateScheduleOptions extends TriggerInput {
  name?: string;
  maxExecutions?: number;
  endAfter?: string;
  set?: readonly string[];
}

/** Validates everything first: a bad spec, cron, zone or date creates nothing. */
export async function createSchedule(
  ctx: CliContext,
  specPath: string,
  options: CreateScheduleOptions,
): Promise<ScheduleRecord> {
  const driver = driverFor(ctx);
  const plan = await planSweep(specPath, { set: options.set ?? [] });
  const trigger = parseTrigger(options);
  if (ctx.provider === "aws") toSchedulerExpression(trigger);
  const now = ctx.clock.now();
  const endAt =
    options.endAfter === undefined
      ? undefined
      : parseInstant(options.endAfter, trigger.timezone, "--end-after");
  if (endAt !== undefined && endAt <= now) {
    throw new ScheduleError(`--end-after ${options.endAfter} is in the past`);
  }
  const name = options.name ?? plan.spec.name;
  const scheduleId = newScheduleId(name, now, cliRandom);
  const draft: ScheduleRecord = {
    scheduleId,
    name,
    owner: ownerOf(ctx),
    provider: ctx.provider,
    trigger,
    state: "enabled",
    specKey: `schedules/${scheduleId}/spec.json`,
    bundle: { key: "", sha256: "", bytes: 0 },
    specDir: plan.specDir,
    executions: 0,
    missed: 0,
    createdAt: now,
    updatedAt: now,
    ...(options.maxExecutions !== undefined ? { maxExecutions: options.maxExecutions } : {}),
    ...(endAt !== undefined ? { endAt } : {}),
  };
  const nextRunAt = nextRunAfter(draft, now);
  if (nextRunAt === undefined) {
    throw new ScheduleError(
      trigger.kind === "at"
        ? `--at ${trigger.expression} is in the past`
        : "the schedule has no firing before --end-after",
    );
  }
  const bundle = await uploadWorkdir(ctx, plan.workdir);
  // Refused now rather than at the first firing (aws: a task policy over IAM's limit, ADR 0040).
  await ctx.checkSweep?.({
    sweepId: firingSweepId(draft, nextRunAt),
    spec: plan.spec,
    policyFiles: plan.policyFiles,
    bundle,
  });
  await ctx.objects.putBytes(draft.specKey, encodeSpec(plan.spec));
  // The policy files as read now, next to the spec: every firing builds the same sweep role.
  const policyFilesKey =
    Object.keys(plan.policyFiles).length > 0 ? `schedules/${scheduleId}/policy-files.json` : undefined;
  if (policyFilesKey) await ctx.objects.putBytes(policyFilesKey, JSON.stringify(plan.policyFiles));
  const schedule: ScheduleRecord = {
    ...draft,
    bundle,
    nextRunAt,
    ...(policyFilesKey ? { policyFilesKey } : {}),
  };
  await recordAndArm(ctx, driver, schedule);
  return schedule;
}
