/**
 * The local dashboard's schedules, alerts and queues routes: manage.ts's, plus what only the
 * machine running `spawn dashboard` can serve: a schedule from a spec file on its disk (planned,
 * its workdir bundled, as `spawn schedule create` does) and a queue's status.
 */
import { type QueueStatusView, ScheduleCreate } from "#core/api.js";
import { AbortError } from "#core/errors.js";
import { queueJson, queueStatus } from "../queue.js";
import { createSchedule, scheduleJson } from "../schedule.js";
import {
  type ManageResponse,
  manageRoute,
  maxExecutionsOf,
  type OpenContext,
  type RequestBody,
  readBody,
  rejected,
  triggerInput,
  withContext,
} from "./manage.js";

/**
 * `POST /api/schedules` (`spawn schedule create <spec>`), `GET /api/queues/:id` (a queue's jobs and
 * dead letters, as `spawn queue status --json`; its actions are the sweep's cancel and retry), and
 * manage.ts's routes; `parts` is the path after `/api/`. Undefined when no route matches.
 */
export async function localManageRoute(
  openContext: OpenContext,
  req: RequestBody,
  method: string,
  parts: readonly string[],
): Promise<ManageResponse | undefined> {
  const [collection, id, ...rest] = parts;
  if (collection === "queues")
    return method !== "GET" || id === undefined || rest.length
      ? undefined
      : withContext(openContext, async (ctx) => ({
          status: 200,
          body: queueJson(await queueStatus(ctx.store, id)) satisfies QueueStatusView,
        }));
  if (collection !== "schedules" || id !== undefined || method !== "POST")
    return manageRoute(openContext, req, method, parts);
  return withContext(openContext, async (ctx) => {
    const form = await readBody(req, ScheduleCreate);
    const maxExecutions = maxExecutionsOf(form.maxExecutions);
    try {
      const created = await createSchedule(ctx, form.spec, {
        ...triggerInput(form),
        ...(form.name ? { name: form.name } : {}),
        ...(maxExecutions !== undefined ? { maxExecutions } : {}),
        ...(form.endAfter ? { endAfter: form.endAfter } : {}),
      });
      return { status: 201, body: scheduleJson(created) };
    } catch (error) {
      if (error instanceof AbortError) return rejected(error, { spec: form.spec });
      throw error;
    }
  });
}
