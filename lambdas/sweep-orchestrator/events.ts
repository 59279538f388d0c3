/**
 * What the sweep orchestrator is invoked with, one zod schema per event, compiled once at
 * module load: the three EC2 events from the default bus, the periodic tick, and the CLI's kick
 * for a new sweep (bare, or as the EventBridge envelope when the rule passes it whole).
 * `parseOrchestratorEvent` picks the schema by `detail-type` / `kind` so that a bad event gets a
 * message about the schema it was meant for, and normalizes the result.
 */
import { z } from "zod";
import { parseTraceparent } from "#core/traceparent.js";
import { SWEEP_SUBMITTED } from "#providers/aws/events.js";
import { BadEventError } from "../shared/middleware.js";

const Ec2InstanceId = z.string().regex(/^i-[0-9a-f]{8,17}$/, "must be an EC2 instance id (i-…)");
const Region = z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, "must be an AWS region");

/** Fields every EventBridge event from aws.ec2 carries that the orchestrator uses. */
const ec2Envelope = <T extends z.ZodType>(detailType: string, detail: T) =>
  z.object({
    source: z.literal("aws.ec2"),
    "detail-type": z.literal(detailType),
    region: Region,
    time: z.string(),
    detail,
  });

export const SpotInterruptionWarning = ec2Envelope(
  "EC2 Spot Instance Interruption Warning",
  z.object({ "instance-id": Ec2InstanceId, "instance-action": z.enum(["terminate", "stop", "hibernate"]) }),
);

export const RebalanceRecommendation = ec2Envelope(
  "EC2 Instance Rebalance Recommendation",
  z.object({ "instance-id": Ec2InstanceId }),
);

export const InstanceStateChange = ec2Envelope(
  "EC2 Instance State-change Notification",
  z.object({
    "instance-id": Ec2InstanceId,
    state: z.enum(["pending", "running", "shutting-down", "terminated", "stopping", "stopped"]),
  }),
);

/** The periodic rule's constant input. */
export const Tick = z.strictObject({ kind: z.literal("tick") });

/** A sweep the CLI just created. */
export const SweepKick = z.strictObject({
  kind: z.literal("sweep"),
  sweepId: z.string().min(1).max(200),
  /** The launching command's W3C trace context; logged with the pass it starts. */
  traceparent: z
    .string()
    .refine((v) => parseTraceparent(v) !== undefined, "must be a W3C traceparent (00-<trace>-<span>-<flags>)")
    .optional(),
});

/** The same kick as EventBridge delivers it when the rule passes the whole event. */
export const SweepKickEnvelope = z.object({
  source: z.literal(SWEEP_SUBMITTED.source),
  "detail-type": z.literal(SWEEP_SUBMITTED.detailType),
  detail: SweepKick,
});

/** What the handler works with after validation. */
export type OrchestratorEvent =
  | { kind: "tick" }
  | { kind: "sweep"; sweepId: string; traceparent?: string }
  | {
      kind: "instance";
      cause: "interruption" | "rebalance" | "state-change";
      ec2InstanceId: string;
      region: string;
      /** The new state (state-change) or the announced action (interruption). */
      state?: string;
      time: string;
    };

const EC2_SCHEMAS = {
  [SpotInterruptionWarning.shape["detail-type"].value]: SpotInterruptionWarning,
  [RebalanceRecommendation.shape["detail-type"].value]: RebalanceRecommendation,
  [InstanceStateChange.shape["detail-type"].value]: InstanceStateChange,
} as const;

function parseWith<T extends z.ZodType>(schema: T, raw: unknown, what: string): z.infer<T> {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new BadEventError(`invalid ${what} event: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/** Validates and normalizes an event; throws BadEventError naming the schema and the bad field. */
export function parseOrchestratorEvent(raw: unknown): OrchestratorEvent {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    throw new BadEventError(`not an orchestrator event: expected an object, got ${JSON.stringify(raw)}`);
  }
  const event = raw as Record<string, unknown>;
  const detailType = event["detail-type"];
  if (detailType === SWEEP_SUBMITTED.detailType) {
    return parseWith(SweepKickEnvelope, raw, `"${SWEEP_SUBMITTED.detailType}"`).detail;
  }
  if (typeof detailType === "string") {
    const schema = EC2_SCHEMAS[detailType as keyof typeof EC2_SCHEMAS];
    if (!schema)
      throw new BadEventError(
        `not an orchestrator event: unexpected detail-type ${JSON.stringify(detailType)}`,
      );
    const e = parseWith(schema, raw, `"${detailType}"`);
    const detail = e.detail as { "instance-id": string; state?: string; "instance-action"?: string };
    return {
      kind: "instance",
      cause:
        schema === SpotInterruptionWarning
          ? "interruption"
          : schema === RebalanceRecommendation
            ? "rebalance"
            : "state-change",
      ec2InstanceId: detail["instance-id"],
      region: e.region,
      ...((detail.state ?? detail["instance-action"])
        ? { state: detail.state ?? detail["instance-action"] }
        : {}),
      time: e.time,
    };
  }
  if (event.kind === "tick") return parseWith(Tick, raw, "tick");
  if (event.kind === "sweep") return parseWith(SweepKick, raw, "sweep");
  throw new BadEventError(
    `not an orchestrator event: no detail-type, and kind is ${JSON.stringify(event.kind)} (expected "tick" or "sweep")`,
  );
}
