/**
 * What `spawn queue launch` creates from a validated queue file: a one-instance sweep whose tasks
 * are the jobs. Apart from core/queue.ts (the schemas, which the browser bundle also loads) because
 * task ids are hashed with node:crypto.
 */
import { hashHex } from "./params.js";
import type { QueueFile, QueueSettings } from "./queue.js";
import { SweepSpec } from "./spec.js";
import type { NewTask } from "./sweeps.js";

/** What `spawn queue launch` creates: a one-instance sweep whose tasks are the jobs, in file order. */
export interface QueuePlan {
  spec: SweepSpec;
  settings: QueueSettings;
  tasks: NewTask[];
}

/** Command of a queue's sweep spec; never run (each task runs its job's command). */
export const QUEUE_COMMAND = "# spawn queue: every job runs its own command";

/** Turns a validated queue into the sweep that runs it. Task i is `jobs[i]`; params are `{ job: id }`. */
export function planQueue(queue: QueueFile): QueuePlan {
  const indexOf = new Map(queue.jobs.map((j, i) => [j.id, i]));
  const dependents = queue.jobs.map(() => [] as number[]);
  queue.jobs.forEach((job, i) => {
    for (const dep of job.depends_on) dependents[indexOf.get(dep)!]!.push(i);
  });
  const spec = SweepSpec.parse({
    name: queue.name,
    workdir: queue.workdir,
    ...(queue.setup ? { setup: queue.setup } : {}),
    env: queue.env,
    command: QUEUE_COMMAND,
    resources: { ...queue.resources, slots: queue.slots },
    max_instances: 1,
    ttl: `${queue.ttl}ms`,
    lease: `${queue.lease}ms`,
    grace: `${queue.grace}ms`,
  });
  return {
    spec,
    settings: {
      on_failure: queue.on_failure,
      ...(queue.global_timeout !== undefined ? { global_timeout: queue.global_timeout } : {}),
    },
    tasks: queue.jobs.map((job, index) => {
      const dependsOn = job.depends_on.map((d) => indexOf.get(d)!);
      return {
        index,
        taskId: `t${hashHex(`job\n${job.id}`).slice(0, 12)}`,
        params: { job: job.id },
        job,
        dependsOn,
        dependents: dependents[index]!,
        waiting: dependsOn.length > 0,
      };
    }),
  };
}
