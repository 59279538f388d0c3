/** The W3C trace context the CLI's kick carries to the orchestrator (docs/dashboard.md, "Tracing"). */
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { mockClient } from "aws-sdk-client-mock";
import { describe, expect, it } from "vitest";
import { kickSweep, SWEEP_SUBMITTED } from "#providers/aws/events.js";
import { BadEventError } from "../shared/middleware.js";
import { parseOrchestratorEvent } from "./events.js";

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

describe("traceparent from the CLI to the orchestrator", () => {
  it("travels in the Sweep Submitted detail and comes out of validation with the sweep id", async () => {
    const eb = mockClient(EventBridgeClient);
    eb.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    const client = new EventBridgeClient({
      region: "us-east-1",
      credentials: { accessKeyId: "x", secretAccessKey: "y" },
    });
    await kickSweep(client, "spawn-bus", "lr-sweep-abc", TRACEPARENT);
    const entry = eb.commandCalls(PutEventsCommand)[0]?.args[0].input.Entries?.[0];
    expect(JSON.parse(entry?.Detail ?? "{}")).toEqual({
      kind: "sweep",
      sweepId: "lr-sweep-abc",
      traceparent: TRACEPARENT,
    });
    // What the rule delivers: the whole event, with the detail the CLI sent.
    const delivered = {
      source: SWEEP_SUBMITTED.source,
      "detail-type": SWEEP_SUBMITTED.detailType,
      detail: JSON.parse(entry?.Detail ?? "{}"),
    };
    expect(parseOrchestratorEvent(delivered)).toEqual({
      kind: "sweep",
      sweepId: "lr-sweep-abc",
      traceparent: TRACEPARENT,
    });
    eb.restore();
  });

  it("still accepts a kick without one, and drops a malformed one with a reason naming the field", () => {
    expect(parseOrchestratorEvent({ kind: "sweep", sweepId: "s" })).toEqual({ kind: "sweep", sweepId: "s" });
    expect(() => parseOrchestratorEvent({ kind: "sweep", sweepId: "s", traceparent: "00-zz-01" })).toThrow(
      BadEventError,
    );
    expect(() => parseOrchestratorEvent({ kind: "sweep", sweepId: "s", traceparent: "00-zz-01" })).toThrow(
      /traceparent/,
    );
  });
});
