/**
 * The dashboard's schedules and alerts API: every route calls the service the matching CLI
 * command calls (cli/services/schedule-actions.ts, cli/services/alerts.ts), so a form is
 * validated by the same rules, with the same messages, as `spawn schedule` and `spawn alerts`.
 * Input errors answer 400 and name the form field (the flag's name, `cron`, `on`, `spec`).
 * Webhook URLs are sealed at rest and leave this module only masked.
 *
 * Provider-neutral, and free of what plans or bundles a spec: the local server adds the routes
 * only its machine can serve (manage-local.ts: a schedule from a spec file, a queue's status),
 * and the AWS dashboard's Lambda calls these with a team's context (lambdas/dashboard-api/manage.ts).
 */
import { randomBytes } from "node:crypto";
import type { z } from "zod";
import { type AlertRecord, type AlertServices, publicAlertId, type Sealed } from "#core/alerts.js";
import {
  AlertCreate,
  AlertEdit,
  type AlertList,
  type AlertView,
  type ApiError,
  type Deleted,
  ScheduleEdit,
  type ScheduleFromSweep,
  type ScheduleList,
  type ScheduleView,
} from "#core/api.js";
import { AbortError, ConditionFailedError, ExitCode, NotFoundError } from "#core/errors.js";
import type { SweepRecord } from "#core/model.js";
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
import { SpecError } from "#core/spec.js";
import { errorResponse } from "#providers/dashboard-routes.js";
import { encodeSpec } from "#providers/dynamodb/codec.js";
import { type CliContext, ownerOf } from "../../context.js";
import { intFlag } from "../../integers.js";
import { alertJson, alertServices, createAlert, deleteAlert, listAlerts, planAlert } from "../alerts.js";
import {
  deleteSchedule,
  driverFor,
  pauseSchedule,
  recordAndArm,
  requireSchedule,
  resumeSchedule,
  scheduleJson,
} from "../schedule-actions.js";

/** Opens the provider's stores for one request (the CLI opens them once per command). */
export type OpenContext = () => Promise<CliContext>;

export interface ManageResponse {
  status: number;
  body: unknown;
}

/** A form larger than this is not a form. */
const MAX_BODY_BYTES = 64 * 1024;

/** A request body as it arrives: the local server's request stream, or the Lambda's one string. */
export type RequestBody = AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>;

/** An input error about one field of a form. */
export class FieldError extends AbortError {
  override name = "FieldError";
  constructor(
    message: string,
    readonly field: string | undefined,
    hint?: string,
  ) {
    super(message, hint);
  }
}

/** The body parsed with `schema`; a FieldError (400) names the first field it rejects. */
export async function readBody<S extends z.ZodType>(req: RequestBody, schema: S): Promise<z.infer<S>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const bytes = Buffer.from(chunk);
    size += bytes.length;
    if (size > MAX_BODY_BYTES)
      throw new FieldError(`the request body is over ${MAX_BODY_BYTES} bytes`, undefined);
    chunks.push(bytes);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new FieldError("the request body is not JSON", undefined);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const [issue] = parsed.error.issues;
    const field = issue?.path.map(String).join(".") ?? "";
    throw new FieldError(`${field || "body"}: ${issue?.message ?? "invalid"}`, field || undefined);
  }
  return parsed.data;
}

/**
 * The field an error of the CLI's services is about: its message starts with the flag
 * (`--cron "x": ...`), or repeats a value the form gave (the spec path, the alert target).
 */
function fieldOf(error: AbortError, given: Record<string, string | undefined>): string | undefined {
  if (error instanceof FieldError) return error.field;
  if (error instanceof SpecError) return "spec";
  const flag = /^--([a-z-]+)/.exec(error.message)?.[1];
  // --at, --cron and --rate are the form's one expression field; the others are named alike.
  if (flag === "at" || flag === "cron" || flag === "rate") return "expression";
  if (flag) return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  return Object.entries(given).find(([, value]) => value && error.message.includes(value))?.[0];
}

/** The dashboard's answer to an error, with the field; bad input (exit 2) is 400, not a state conflict. */
export function rejected(error: AbortError, given: Record<string, string | undefined>): ManageResponse {
  const { status, body } = errorResponse(error);
  const field = fieldOf(error, given);
  return {
    status: status === 409 && error.exitCode === ExitCode.usage ? 400 : status,
    body: { ...body, ...(field ? { field } : {}) } satisfies ApiError,
  };
}

// --- schedules -------------------------------------------------------------------------------

export const triggerInput = (form: { kind: string; expression: string; timezone?: string | undefined }) =>
  ({
    [form.kind]: form.expression,
    ...(form.timezone ? { timezone: form.timezone } : {}),
  }) as TriggerInput;

/** The form's text, parsed as the CLI parses `--max-executions`; empty is none. */
export function maxExecutionsOf(text: string | null | undefined): number | undefined {
  if (text === null || text === undefined || text.trim() === "") return undefined;
  try {
    return intFlag("--max-executions", 1, text.trim());
  } catch (error) {
    throw new FieldError((error as Error).message, "maxExecutions");
  }
}

/** A form's trigger and limits, checked by create's rules (parseTrigger, parseInstant, nextRunAfter). */
interface CheckedTrigger {
  trigger: ScheduleRecord["trigger"];
  maxExecutions: number | undefined;
  endAt: number | undefined;
  nextRunAt: number;
}

/**
 * Checks a form's trigger and limits as `spawn schedule create` checks its flags, for a schedule
 * created at `createdAt` (a rate's period counts from it) that has launched `executions` sweeps.
 * Each error names its flag, which `rejected` turns into the form field.
 */
function checkTrigger(
  ctx: CliContext,
  form: Pick<ScheduleEdit, "kind" | "expression" | "timezone" | "maxExecutions" | "endAfter">,
  createdAt: number,
  executions: number,
): CheckedTrigger {
  const trigger = parseTrigger(triggerInput(form));
  // EventBridge Scheduler takes a narrower cron than croner: refused before anything is written.
  if (ctx.provider === "aws") toSchedulerExpression(trigger);
  const maxExecutions = maxExecutionsOf(form.maxExecutions);
  const now = ctx.clock.now();
  const endAt = form.endAfter ? parseInstant(form.endAfter, trigger.timezone, "--end-after") : undefined;
  if (endAt !== undefined && endAt <= now)
    throw new ScheduleError(`--end-after ${form.endAfter} is in the past`);
  if (maxExecutions !== undefined && maxExecutions <= executions)
    throw new ScheduleError(
      `--max-executions ${maxExecutions}: the schedule has already launched ${executions} sweep(s)`,
      "give a larger number, or delete the schedule",
    );
  const nextRunAt = nextRunAfter({ trigger, createdAt, ...(endAt ? { endAt } : {}) }, now);
  if (nextRunAt === undefined)
    throw new ScheduleError(
      trigger.kind === "at"
        ? `--at ${trigger.expression} is in the past`
        : "the schedule has no firing before --end-after",
    );
  return { trigger, maxExecutions, endAt, nextRunAt };
}

/**
 * A new trigger, name or limits for a schedule; its spec and workdir snapshot stay. The rules
 * are create's (checkTrigger); a paused schedule stays paused.
 */
export async function editSchedule(
  ctx: CliContext,
  scheduleId: string,
  edit: ScheduleEdit,
): Promise<ScheduleRecord> {
  const schedule = await requireSchedule(ctx, scheduleId);
  if (schedule.state === "completed")
    throw new AbortError(
      `schedule ${scheduleId} has completed (${schedule.reason ?? "no firing left"})`,
      "create a new one",
    );
  const { trigger, maxExecutions, endAt, nextRunAt } = checkTrigger(
    ctx,
    edit,
    schedule.createdAt,
    schedule.executions,
  );
  let updated: ScheduleRecord;
  try {
    // Conditional on what was read: a firing in between (executions moved) wins, the user retries.
    updated = await ctx.schedules.updateSchedule(
      scheduleId,
      { state: schedule.state, executions: schedule.executions },
      {
        trigger,
        nextRunAt,
        updatedAt: ctx.clock.now(),
        ...(edit.name ? { name: edit.name } : {}),
        ...(edit.maxExecutions !== undefined ? { maxExecutions: maxExecutions ?? null } : {}),
        ...(edit.endAfter !== undefined ? { endAt: endAt ?? null } : {}),
      },
    );
  } catch (error) {
    if (!(error instanceof ConditionFailedError)) throw error;
    throw new AbortError(
      `schedule ${scheduleId} changed while it was being edited (it fired, or was paused or resumed)`,
      "reload and edit again",
      ExitCode.workFailed,
    );
  }
  // Re-armed where a driver arms schedules (aws); the embedded control plane reads the record.
  await ctx.scheduleDriver?.put(updated);
  return updated;
}

/**
 * Runs an existing sweep again on a schedule: every firing launches the sweep's stored spec with
 * its workdir bundle, as if `spawn schedule create` had been given that spec when the sweep was
 * launched. A browser has neither a spec file nor a workdir, so this is how the AWS dashboard
 * schedules. The caller has checked that its actor may use `sweep`. Checked like create (a bad
 * trigger writes nothing); the spec is stored, the record written, then armed.
 */
export async function createScheduleFromSweep(
  ctx: CliContext,
  sweep: SweepRecord,
  form: Omit<ScheduleFromSweep, "fromSweep" | "team">,
): Promise<ScheduleRecord> {
  const driver = driverFor(ctx);
  const kind = sweep.pipeline
    ? "a pipeline"
    : sweep.stage
      ? "a pipeline's stage"
      : sweep.queue
        ? "a queue"
        : "";
  if (kind || !sweep.bundle)
    throw new FieldError(
      `sweep ${sweep.sweepId} is ${kind || "without a workdir bundle"}: only a plain sweep is run again on a schedule`,
      "fromSweep",
      "schedule its spec with `spawn schedule create <spec>`",
    );
  // A policy file was read from the launching machine's disk and is not stored with the sweep.
  if (sweep.spec.resources.iam.some((grant) => grant.startsWith("policy-file:")))
    throw new FieldError(
      `sweep ${sweep.sweepId} grants its tasks a policy file, which is not stored with the sweep`,
      "fromSweep",
      "schedule its spec with `spawn schedule create <spec>`, which reads the file",
    );
  const now = ctx.clock.now();
  const { trigger, maxExecutions, endAt, nextRunAt } = checkTrigger(ctx, form, now, 0);
  const name = form.name?.trim() || sweep.spec.name;
  const scheduleId = newScheduleId(name, now, () => randomBytes(4).readUInt32BE() / 2 ** 32);
  const schedule: ScheduleRecord = {
    scheduleId,
    name,
    owner: ownerOf(ctx),
    provider: ctx.provider,
    trigger,
    state: "enabled",
    specKey: `schedules/${scheduleId}/spec.json`,
    bundle: sweep.bundle,
    ...(sweep.specDir ? { specDir: sweep.specDir } : {}),
    executions: 0,
    missed: 0,
    nextRunAt,
    createdAt: now,
    updatedAt: now,
    ...(maxExecutions !== undefined ? { maxExecutions } : {}),
    ...(endAt !== undefined ? { endAt } : {}),
  };
  await ctx.objects.putBytes(schedule.specKey, encodeSpec(sweep.spec));
  await recordAndArm(ctx, driver, schedule);
  return schedule;
}

async function schedules(
  ctx: CliContext,
  req: RequestBody,
  method: string,
  id: string | undefined,
  action: string | undefined,
): Promise<ManageResponse | undefined> {
  const view = (s: ScheduleRecord): ScheduleView => scheduleJson(s);
  if (id === undefined) {
    if (method === "GET") {
      const list = await ctx.schedules.listSchedules({ owner: ownerOf(ctx) });
      return { status: 200, body: { schedules: list.map(view) } satisfies ScheduleList };
    }
    // Creating one needs a spec and a workdir: each server has its own route (manage-local.ts, the Lambda's).
    return undefined;
  }
  if (action === undefined && method === "GET")
    return { status: 200, body: view(await requireSchedule(ctx, id)) };
  if (action === undefined && method === "PUT")
    return { status: 200, body: view(await editSchedule(ctx, id, await readBody(req, ScheduleEdit))) };
  if (action === undefined && method === "DELETE") {
    await deleteSchedule(ctx, id, ctx.scheduleDriver);
    return { status: 200, body: { deleted: id } satisfies Deleted };
  }
  if (method === "POST" && action === "pause")
    return { status: 200, body: view(await pauseSchedule(ctx, id)) };
  if (method === "POST" && action === "resume")
    return { status: 200, body: view(await resumeSchedule(ctx, id)) };
  return undefined;
}

// --- alerts ----------------------------------------------------------------------------------

/** `https://hooks.slack.com/…b3Xq`: enough to tell two hooks apart, never the token in the path. */
export function maskUrl(url: string): string {
  const u = new URL(url);
  const rest = `${u.pathname}${u.search}`;
  return `${u.protocol}//${u.host}/…${rest.length > 12 ? rest.slice(-4) : ""}`;
}

/** The alert as `spawn alerts list --json` shows it, with its webhook URLs opened only to be masked. */
async function alertView(services: AlertServices, alert: AlertRecord): Promise<AlertView> {
  const json = alertJson(alert);
  const channels = await Promise.all(
    alert.channels.map(async (c, i) => {
      const shown = json.channels[i] as AlertView["channels"][number];
      if (c.kind !== "slack" && c.kind !== "webhook") return shown;
      return { ...shown, masked: maskUrl(await services.secrets.open(c.url, alert.originId)) };
    }),
  );
  return { ...json, channels };
}

/**
 * Replaces an alert with one of new triggers, through planAlert and createAlert: the channels the
 * form left out are opened and carried over (with the webhook signing secret, so receivers keep
 * verifying), then the old alert and its copies are deleted. Created first: there is never a
 * moment with neither.
 */
async function replaceAlert(ctx: CliContext, alertId: string, edit: AlertEdit) {
  const services = alertServices(ctx);
  const original = (await listAlerts(ctx, undefined)).find((a) => publicAlertId(a) === alertId);
  if (!original) throw new NotFoundError("alert", alertId, "spawn alerts list shows yours");
  const open = (sealed: Sealed) => services.secrets.open(sealed, original.originId);
  const kept = { slack: [] as string[], webhook: [] as string[], secret: undefined as string | undefined };
  for (const c of original.channels) {
    if (c.kind === "slack") kept.slack.push(await open(c.url));
    if (c.kind === "webhook") {
      kept.webhook.push(await open(c.url));
      kept.secret = await open(c.secret);
    }
  }
  // A new webhook URL keeps the old signing secret too: receivers already verify with it.
  const webhookSecret = edit.webhookSecret ?? kept.secret;
  const plan = planAlert(ctx.provider, original.target.id, {
    ...(edit.on !== undefined ? { on: edit.on } : {}),
    slack: edit.slack ? [edit.slack] : kept.slack,
    webhook: edit.webhook ? [edit.webhook] : kept.webhook,
    ...(webhookSecret !== undefined ? { webhookSecret } : {}),
    sns: original.channels.flatMap((c) => (c.kind === "sns" ? [c.topicArn] : [])),
    email: original.channels.flatMap((c) => (c.kind === "email" ? [c.address] : [])),
    log: edit.log ?? original.channels.some((c) => c.kind === "log"),
  });
  const created = await createAlert(ctx, plan);
  await deleteAlert(ctx, alertId);
  return created;
}

async function alerts(
  ctx: CliContext,
  req: RequestBody,
  method: string,
  id: string | undefined,
): Promise<ManageResponse | undefined> {
  const services = alertServices(ctx);
  if (id === undefined) {
    if (method === "GET") {
      const list = await listAlerts(ctx, undefined);
      return {
        status: 200,
        body: { alerts: await Promise.all(list.map((a) => alertView(services, a))) } satisfies AlertList,
      };
    }
    if (method !== "POST") return undefined;
    const form = await readBody(req, AlertCreate);
    try {
      const plan = planAlert(ctx.provider, form.target, {
        ...(form.on ? { on: form.on } : {}),
        slack: form.slack ? [form.slack] : [],
        webhook: form.webhook ? [form.webhook] : [],
        ...(form.webhookSecret ? { webhookSecret: form.webhookSecret } : {}),
        ...(form.log ? { log: true } : {}),
      });
      const { alert, generatedSecret } = await createAlert(ctx, plan);
      const body: AlertView = {
        ...(await alertView(services, alert)),
        ...(generatedSecret ? { webhookSecret: generatedSecret } : {}),
      };
      return { status: 201, body };
    } catch (error) {
      if (error instanceof AbortError) return rejected(error, { target: form.target });
      throw error;
    }
  }
  if (method === "PUT") {
    const form = await readBody(req, AlertEdit);
    const { alert, generatedSecret } = await replaceAlert(ctx, id, form);
    const body: AlertView = {
      ...(await alertView(services, alert)),
      ...(generatedSecret ? { webhookSecret: generatedSecret } : {}),
    };
    return { status: 200, body };
  }
  if (method === "DELETE") {
    const removed = await deleteAlert(ctx, id);
    return { status: 200, body: { deleted: id, copies: removed - 1 } satisfies Deleted };
  }
  return undefined;
}

/**
 * Runs `route` with a context opened for this request, closed after; a user error (AbortError)
 * becomes its response, anything else throws.
 */
export async function withContext<T extends ManageResponse | undefined>(
  openContext: OpenContext,
  route: (ctx: CliContext) => Promise<T>,
): Promise<T | ManageResponse> {
  const ctx = await openContext();
  try {
    return await route(ctx);
  } catch (error) {
    if (error instanceof AbortError) return rejected(error, {});
    throw error;
  } finally {
    ctx.close();
  }
}

/**
 * `/api/schedules/:id[/pause|resume]`, `GET /api/schedules` and `/api/alerts[/:id]`; `parts` is
 * the path after `/api/`. Undefined when no route matches. User errors become responses;
 * anything else throws.
 */
export async function manageRoute(
  openContext: OpenContext,
  req: RequestBody,
  method: string,
  parts: readonly string[],
): Promise<ManageResponse | undefined> {
  const [collection, id, action, ...rest] = parts;
  if (rest.length || (collection !== "schedules" && action !== undefined)) return undefined;
  if (collection !== "schedules" && collection !== "alerts") return undefined;
  return withContext(openContext, (ctx) =>
    collection === "schedules" ? schedules(ctx, req, method, id, action) : alerts(ctx, req, method, id),
  );
}
