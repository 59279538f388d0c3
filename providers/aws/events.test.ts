import { EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from "@aws-sdk/client-eventbridge";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { spawnEvent } from "#core/events.js";
import {
  batchEntries,
  EventBridgeSink,
  entrySize,
  kickSweep,
  MAX_REQUEST_BYTES,
  ORCHESTRATOR_SOURCE,
  putEntries,
  SWEEP_SUBMITTED,
} from "./events.js";

const eb = mockClient(EventBridgeClient);
const client = new EventBridgeClient({
  region: "us-east-1",
  credentials: { accessKeyId: "x", secretAccessKey: "y" },
});

const entry = (n: number, detailBytes = 10): PutEventsRequestEntry => ({
  EventBusName: "bus",
  Source: "spawn.orchestrator",
  DetailType: "TaskFailed",
  Detail: JSON.stringify({ n, pad: "x".repeat(Math.max(0, detailBytes - 20)) }),
});

const sentEntries = () => eb.commandCalls(PutEventsCommand).map((c) => c.args[0].input.Entries ?? []);

beforeEach(() => {
  eb.reset();
});

describe("entrySize", () => {
  it("counts Time as 14 bytes and strings as UTF-8 bytes, as EventBridge does", () => {
    expect(
      entrySize({ Time: new Date(0), Source: "s", DetailType: "dt", Detail: "é", Resources: ["ab", "c"] }),
    ).toBe(14 + 1 + 2 + 2 + 3);
  });
});

describe("batchEntries", () => {
  it("puts at most 10 entries in a call", () => {
    const batches = batchEntries(Array.from({ length: 23 }, (_, i) => entry(i)));
    expect(batches.map((b) => b.length)).toEqual([10, 10, 3]);
  });

  it("starts a new call before 256 KB", () => {
    const big = Array.from({ length: 5 }, (_, i) => entry(i, 100 * 1024));
    const batches = batchEntries(big);
    expect(batches.map((b) => b.length)).toEqual([2, 2, 1]);
    for (const b of batches)
      expect(b.reduce((s, e) => s + entrySize(e), 0)).toBeLessThanOrEqual(MAX_REQUEST_BYTES);
  });

  it("rejects a single entry over 256 KB, naming it", () => {
    expect(() => batchEntries([entry(1, MAX_REQUEST_BYTES + 1)])).toThrow(/TaskFailed is \d+ bytes, over/);
  });
});

describe("putEntries", () => {
  it("re-sends only the failed entries, with backoff, until they pass", async () => {
    // Given a first answer where entry 1 of 3 was throttled
    const entries = [entry(0), entry(1), entry(2)];
    eb.on(PutEventsCommand)
      .resolvesOnce({
        FailedEntryCount: 1,
        Entries: [
          { EventId: "a" },
          { ErrorCode: "ThrottlingException", ErrorMessage: "slow down" },
          { EventId: "c" },
        ],
      })
      .resolvesOnce({ FailedEntryCount: 0, Entries: [{ EventId: "b" }] });
    const sleeps: number[] = [];
    // When they are sent
    await putEntries(client, entries, { sleep: async (ms) => void sleeps.push(ms), random: () => 0.5 });
    // Then the second call carries only entry 1, after a jittered wait
    expect(sentEntries()).toEqual([entries, [entries[1]]]);
    expect(sleeps).toEqual([100]);
  });

  it("gives up after maxAttempts and names the error code", async () => {
    eb.on(PutEventsCommand).resolves({
      FailedEntryCount: 1,
      Entries: [{ ErrorCode: "InternalFailure", ErrorMessage: "oops" }],
    });
    await expect(putEntries(client, [entry(0)], { maxAttempts: 3, sleep: async () => {} })).rejects.toThrow(
      "EventBridge rejected 1 of 1 events after 3 attempt(s): InternalFailure: oops",
    );
    expect(sentEntries()).toHaveLength(3);
  });

  it("does not retry an entry that can never succeed", async () => {
    eb.on(PutEventsCommand).resolves({
      FailedEntryCount: 1,
      Entries: [{ ErrorCode: "MalformedDetail", ErrorMessage: "bad json" }],
    });
    await expect(putEntries(client, [entry(0)], { sleep: async () => {} })).rejects.toThrow(
      /MalformedDetail/,
    );
    expect(sentEntries()).toHaveLength(1);
  });
});

describe("kickSweep", () => {
  it("sends the sweep-submitted event on the stack bus", async () => {
    eb.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    await kickSweep(client, "spawn-bus", "lr-sweep-abc");
    expect(sentEntries()).toEqual([
      [
        {
          EventBusName: "spawn-bus",
          Source: SWEEP_SUBMITTED.source,
          DetailType: SWEEP_SUBMITTED.detailType,
          Detail: '{"kind":"sweep","sweepId":"lr-sweep-abc"}',
        },
      ],
    ]);
  });
});

describe("EventBridgeSink", () => {
  it("publishes each event as one entry: detail-type = type, detail = the event, on the stack bus", async () => {
    // Given 12 events (two calls' worth)
    eb.on(PutEventsCommand).callsFake(async (input) => ({
      FailedEntryCount: 0,
      Entries: (input.Entries ?? []).map((_: unknown, i: number) => ({ EventId: String(i) })),
    }));
    const events = Array.from({ length: 12 }, (_, i) =>
      spawnEvent("sw-1", 1_700_000_000_000 + i, {
        type: "TaskFailed",
        taskIndex: i,
        attempt: 3,
        exitCode: 1,
      }),
    );
    // When they are published
    await new EventBridgeSink(client, "spawn-bus").publish(events);
    // Then they go out in order, 10 then 2, each the exact event
    const sent = sentEntries();
    expect(sent.map((b) => b.length)).toEqual([10, 2]);
    expect(sent.flat()[11]).toEqual({
      EventBusName: "spawn-bus",
      Source: ORCHESTRATOR_SOURCE,
      DetailType: "TaskFailed",
      Detail: JSON.stringify(events[11]),
      Time: new Date(1_700_000_000_011),
    });
    expect(sent.flat().map((e) => JSON.parse(e.Detail ?? "{}").taskIndex)).toEqual(events.map((_, i) => i));
  });

  it("never publishes the CLI's sweep kick, which would invoke the orchestrator again", () => {
    expect(ORCHESTRATOR_SOURCE).not.toBe(SWEEP_SUBMITTED.source);
  });
});
