/**
 * The AWS dashboard API's downloads, pipeline sharing, schedules and alerts
 * (lambdas/dashboard-api: downloads.ts, manage.ts) over dynalite, with EventBridge Scheduler and
 * KMS answered by aws-sdk-client-mock (the inputs sent are asserted) and download links signed
 * with made-up credentials (presigning is local: no AWS involved).
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DecryptCommand, GenerateDataKeyCommand, KMSClient } from "@aws-sdk/client-kms";
import { S3Client } from "@aws-sdk/client-s3";
import {
  ConflictException,
  CreateScheduleCommand,
  DeleteScheduleCommand,
  SchedulerClient,
  UpdateScheduleCommand,
} from "@aws-sdk/client-scheduler";
import { SNSClient } from "@aws-sdk/client-sns";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  AlertList,
  AlertView,
  ApiError,
  DownloadLink,
  ScheduleList,
  ScheduleView,
  ShareResult,
  SweepDetail,
} from "../core/api.js";
import type { SweepRecord } from "../core/model.js";
import { expandParams } from "../core/params.js";
import type { Clock } from "../core/ports.js";
import { parseSpec } from "../core/spec.js";
import { createPipeline, createSweep } from "../core/sweeps.js";
import { dashboardApi } from "../lambdas/dashboard-api/api.js";
import { LINK_TTL_SECONDS, S3OutputLinks } from "../lambdas/dashboard-api/downloads.js";
import { toApiRequest } from "../lambdas/dashboard-api/http.js";
import { teamManagement } from "../lambdas/dashboard-api/manage.js";
import { EventBridgeScheduleDriver } from "../providers/aws/schedule-driver.js";
import { encodeSpec } from "../providers/dynamodb/codec.js";
import { DynamoScheduleStore } from "../providers/dynamodb/schedule-store.js";
import { DynamoTeamStore } from "../providers/dynamodb/team-store.js";
import { FileObjectStore } from "../providers/local/objects.js";
import { createLogger } from "../providers/log.js";
import { awsAlertServices } from "../providers/notify/aws-alerts.js";
import { useDynaliteStore } from "./helpers/dynamo.js";

const scheduler = mockClient(SchedulerClient);
const kms = mockClient(KMSClient);

const useStore = useDynaliteStore("dashawsmg");
const NOW = Date.parse("2026-11-23T09:00:00Z");
const clock: Clock = { now: () => NOW };
const BUCKET = "spawn-results-123";
const KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const TOPIC = "arn:aws:sns:us-east-1:123456789012:spawn-alerts";
const TARGET = {
  arn: "arn:aws:lambda:us-east-1:123456789012:function:spawn-scheduler-handler",
  roleArn: "arn:aws:iam::123456789012:role/spawn-scheduler-invoke",
  deadLetterArn: "arn:aws:sqs:us-east-1:123456789012:spawn-schedules-dlq",
};
const ADMIN = "admin@example.com";
const ALICE = "alice@example.com";
const BOB = "bob@example.com";
const SLACK = "https://hooks.slack.com/services/T000/B000/verysecrettoken";

let objectsDir: string;
let objects: FileObjectStore;
let schedules: DynamoScheduleStore;
let teams: DynamoTeamStore;
let api: ReturnType<typeof dashboardApi>;
let defaultSweep: SweepRecord;
let visionSweep: SweepRecord;

/** A stand-in KMS: the "wrapped" key is the data key behind a marker, opened only with the context it was made for. */
function fakeKms(): void {
  kms.on(GenerateDataKeyCommand).callsFake(async (input: { EncryptionContext?: Record<string, string> }) => {
    const key = new Uint8Array(32).fill(5);
    const context = JSON.stringify(input.EncryptionContext);
    return { Plaintext: key, CiphertextBlob: Buffer.concat([Buffer.from(`${context}|`), key]) };
  });
  kms
    .on(DecryptCommand)
    .callsFake(async (input: { CiphertextBlob: Uint8Array; EncryptionContext?: object }) => {
      const blob = Buffer.from(input.CiphertextBlob);
      const cut = blob.lastIndexOf("|".charCodeAt(0), blob.length - 33);
      if (blob.subarray(0, cut).toString() !== JSON.stringify(input.EncryptionContext))
        throw Object.assign(new Error("context mismatch"), { name: "InvalidCiphertextException" });
      return { Plaintext: new Uint8Array(blob.subarray(cut + 1)) };
    });
}

async function call(method: string, path: string, user: string, body?: unknown) {
  const [rawPath, rawQueryString = ""] = path.split("?") as [string, string?];
  const response = await api(
    toApiRequest({
      version: "2.0",
      routeKey: "ANY /api/{proxy+}",
      rawPath,
      rawQueryString,
      headers: {},
      isBase64Encoded: false,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      requestContext: {
        http: { method, path: rawPath },
        authorizer: { jwt: { claims: { email: user, token_use: "id" }, scopes: null } },
      },
    } as never),
  );
  return { ...response, json: () => JSON.parse(response.body) as unknown };
}

async function launch(name: string, team?: string): Promise<SweepRecord> {
  const { store } = useStore();
  const spec = parseSpec({ name, command: "python train.py --lr {{lr}}", params: { grid: { lr: [0.1] } } });
  return createSweep(
    { store, clock },
    {
      sweepId: `${name}-${randomUUID().slice(0, 8)}`,
      spec,
      tasks: expandParams(spec.params, spec.repeat),
      owner: "someone",
      provider: "aws",
      bundle: { key: `bundles/${"a".repeat(64)}.tar.gz`, sha256: "a".repeat(64), bytes: 1234 },
      ...(team ? { team } : {}),
    },
  );
}

beforeAll(async () => {
  const { store, engine } = useStore();
  const prefix = store.tables.sweeps.replace(/sweeps$/, "");
  objectsDir = await mkdtemp(join(tmpdir(), "spawn-dash-aws-manage-"));
  objects = new FileObjectStore(objectsDir);
  teams = new DynamoTeamStore(engine.client, prefix);
  schedules = new DynamoScheduleStore(engine.client, prefix);
  const log = createLogger({}, () => undefined);
  const stores = {
    store,
    schedules,
    scheduleDriver: new EventBridgeScheduleDriver(new SchedulerClient({ region: "us-east-1" }), {
      groupName: "spawn-schedules",
      target: TARGET,
    }),
    alerts: awsAlertServices({
      dynamo: engine.client,
      kms: new KMSClient({ region: "us-east-1" }),
      sns: new SNSClient({ region: "us-east-1" }),
      tablePrefix: prefix,
      kmsKeyId: KEY_ARN,
      topicArn: TOPIC,
    }),
    objects,
  };
  const s3 = new S3Client({
    region: "us-east-1",
    credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" },
  });
  api = dashboardApi({
    store,
    teams,
    objects,
    clock,
    log,
    links: new S3OutputLinks(s3, BUCKET, clock),
    manage: teamManagement({ stores, teams, clock, log }),
  });
  // ADMIN, the first caller, administers `default` (ALICE is a member) and `vision` (BOB is a member).
  expect((await call("GET", "/api/teams", ADMIN)).status).toBe(200);
  expect((await call("POST", "/api/teams/default/members", ADMIN, { user: ALICE })).status).toBe(200);
  expect((await call("POST", "/api/teams/vision/members", ADMIN, { user: BOB })).status).toBe(200);
  defaultSweep = await launch("nightly");
  visionSweep = await launch("vision-only", "vision");
});
afterAll(async () => {
  await rm(objectsDir, { recursive: true, force: true });
});
beforeEach(() => {
  scheduler.reset();
  scheduler.resolves({});
  // As EventBridge Scheduler answers: creating a name that exists is a conflict (the driver then updates).
  const armed = new Set<string>();
  scheduler.on(CreateScheduleCommand).callsFake(async (input: { Name: string }) => {
    if (armed.has(input.Name))
      throw new ConflictException({ message: "exists", Message: "exists", $metadata: {} });
    armed.add(input.Name);
    return {};
  });
  kms.reset();
  fakeKms();
});

describe("downloads", () => {
  it("answers a short-lived presigned GET of the results bucket that saves the output as an attachment", async () => {
    // Given: an output holding HTML
    await objects.putBytes(`outputs/${defaultSweep.sweepId}/0/report.html`, "<script>alert(1)</script>");

    // When: a member asks for it
    const r = await call("GET", `/api/sweeps/${defaultSweep.sweepId}/outputs/0/report.html`, ALICE);

    // Then: a URL for that bucket and key, signed now, valid 5 minutes, downloading as octet-stream
    expect(r.status).toBe(200);
    const link = DownloadLink.parse(r.json());
    const url = new URL(link.url);
    expect(url.host).toBe(`${BUCKET}.s3.us-east-1.amazonaws.com`);
    expect(url.pathname).toBe(`/outputs/${defaultSweep.sweepId}/0/report.html`);
    const q = url.searchParams;
    expect(q.get("X-Amz-Expires")).toBe(String(LINK_TTL_SECONDS));
    expect(q.get("X-Amz-Date")).toBe("20261123T090000Z");
    expect(q.get("X-Amz-Credential")).toMatch(/^AKIDEXAMPLE\/20261123\/us-east-1\/s3\/aws4_request$/);
    expect(q.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
    expect(q.get("response-content-disposition")).toBe('attachment; filename="report.html"');
    expect(q.get("response-content-type")).toBe("application/octet-stream");
    expect(link.expiresAt).toBe(new Date(NOW + LINK_TTL_SECONDS * 1000).toISOString());
  });

  it("gives a safe download name, refuses paths that climb out, and 404s a missing file", async () => {
    await objects.putBytes(`outputs/${defaultSweep.sweepId}/0/a dir/we"ird name.txt`, "x");
    const weird = await call(
      "GET",
      `/api/sweeps/${defaultSweep.sweepId}/outputs/0/a%20dir/we%22ird%20name.txt`,
      ALICE,
    );
    const q = new URL(DownloadLink.parse(weird.json()).url).searchParams;
    expect(q.get("response-content-disposition")).toBe('attachment; filename="we_ird_name.txt"');
    const climb = await call("GET", `/api/sweeps/${defaultSweep.sweepId}/outputs/0/..%2F..%2Fsecrets`, ALICE);
    expect(climb.status).toBe(400);
    const missing = await call("GET", `/api/sweeps/${defaultSweep.sweepId}/outputs/0/nothing.txt`, ALICE);
    expect(missing.status).toBe(404);
    expect(ApiError.parse(missing.json()).error).toMatch(/output "0\/nothing\.txt" not found/);
  });

  it("signs nothing for a sweep of another team: the same 404 as a sweep that does not exist", async () => {
    await objects.putBytes(`outputs/${visionSweep.sweepId}/0/model.bin`, "weights");
    const cross = await call("GET", `/api/sweeps/${visionSweep.sweepId}/outputs/0/model.bin`, ALICE);
    const missing = await call("GET", "/api/sweeps/no-such-sweep/outputs/0/model.bin", ALICE);
    expect(cross.status).toBe(404);
    expect(cross.body.replace(visionSweep.sweepId, "ID")).toBe(missing.body.replace("no-such-sweep", "ID"));
  });
});

describe("sharing a pipeline", () => {
  it("shares each of its stages too, one idempotent put each", async () => {
    // Given: a two-stage pipeline of `default`, which BOB (vision) cannot see
    const { store } = useStore();
    const spec = parseSpec({ name: "stage", command: "echo {{x}}", params: { list: [{ x: 1 }] } });
    const stage = (name: string, inputs: { stage: string; type: "whole" }[]) => ({
      name,
      inputs,
      sweepId: `st-${name}-${randomUUID().slice(0, 6)}`,
      spec,
      tasks: expandParams(spec.params, spec.repeat),
    });
    const stages = [stage("prep", []), stage("train", [{ stage: "prep", type: "whole" }])];
    const pipeline = await createPipeline(
      { store, clock },
      {
        pipelineId: `pipe-${randomUUID().slice(0, 6)}`,
        name: "pipe",
        owner: "someone",
        provider: "aws",
        stages,
      },
    );
    for (const s of stages) expect((await call("GET", `/api/sweeps/${s.sweepId}`, BOB)).status).toBe(404);

    // When: a member of default shares the pipeline with vision, twice
    const first = await call("POST", `/api/sweeps/${pipeline.sweepId}/share`, ALICE, { team: "vision" });
    const again = await call("POST", `/api/sweeps/${pipeline.sweepId}/share`, ALICE, { team: "vision" });

    // Then: BOB sees the pipeline and every stage; each stage has exactly one share
    expect(ShareResult.parse(first.json())).toEqual({
      sweepId: pipeline.sweepId,
      teams: ["default", "vision"],
      changed: true,
    });
    expect(ShareResult.parse(again.json()).changed).toBe(false);
    for (const s of stages) {
      const seen = await call("GET", `/api/sweeps/${s.sweepId}`, BOB);
      expect(SweepDetail.parse(seen.json()).sweepId).toBe(s.sweepId);
      expect((await teams.sharesOf(s.sweepId)).map((x) => x.team)).toEqual(["vision"]);
    }
  });
});

describe("schedules", () => {
  const form = (extra: Record<string, unknown> = {}) => ({
    fromSweep: defaultSweep.sweepId,
    kind: "cron",
    expression: "0 3 * * *",
    timezone: "Europe/Paris",
    ...extra,
  });

  it("an admin runs a sweep again on a schedule: its stored spec and bundle, armed in the stack's group", async () => {
    // When
    const r = await call("POST", "/api/schedules", ADMIN, form({ name: "nightly-3am" }));

    // Then: the view, with its team
    expect(r.status).toBe(201);
    const view = ScheduleView.parse(r.json());
    expect(view).toMatchObject({ name: "nightly-3am", state: "enabled", team: "default", provider: "aws" });
    expect(view.nextRunAt).toBe("2026-11-24T02:00:00.000Z");
    // The record belongs to the team and reuses the sweep's bundle; the spec is stored beside it
    const record = (await schedules.getSchedule(view.scheduleId))!;
    expect(record.owner).toBe("team:default");
    expect(record.bundle).toEqual(defaultSweep.bundle);
    expect(Buffer.from((await objects.getBytes(record.specKey))!).toString()).toBe(
      encodeSpec(defaultSweep.spec),
    );
    // Armed once, in the group, invoking the handler with the stack's role and DLQ
    const created = scheduler.commandCalls(CreateScheduleCommand);
    expect(created).toHaveLength(1);
    expect(created[0]!.args[0].input).toMatchObject({
      GroupName: "spawn-schedules",
      ScheduleExpression: "cron(0 3 * * ? *)",
      ScheduleExpressionTimezone: "Europe/Paris",
      State: "ENABLED",
      Target: { Arn: TARGET.arn, RoleArn: TARGET.roleArn, DeadLetterConfig: { Arn: TARGET.deadLetterArn } },
    });
  });

  it("members see their teams' schedules; only admins change them", async () => {
    const created = ScheduleView.parse((await call("POST", "/api/schedules", ADMIN, form())).json());
    const path = `/api/schedules/${encodeURIComponent(created.scheduleId)}`;

    const list = ScheduleList.parse((await call("GET", "/api/schedules", ALICE)).json());
    expect(list.schedules.map((s) => s.scheduleId)).toContain(created.scheduleId);
    expect((await call("GET", path, ALICE)).status).toBe(200);
    for (const [method, sub, body] of [
      ["POST", "/pause", undefined],
      ["PUT", "", { kind: "rate", expression: "6h" }],
      ["DELETE", "", undefined],
    ] as const) {
      const r = await call(method, `${path}${sub}`, ALICE, body);
      expect(r.status, `${method} ${sub}`).toBe(403);
    }
    expect((await call("POST", "/api/schedules", ALICE, form())).status).toBe(403);
    expect(scheduler.commandCalls(UpdateScheduleCommand)).toHaveLength(0);

    // The admin pauses, edits and deletes, each re-armed or disarmed in EventBridge Scheduler
    const paused = await call("POST", `${path}/pause`, ADMIN);
    expect(ScheduleView.parse(paused.json())).toMatchObject({ state: "paused", team: "default" });
    const edited = await call("PUT", path, ADMIN, { kind: "rate", expression: "6h" });
    expect(ScheduleView.parse(edited.json()).trigger).toMatchObject({ kind: "rate", expression: "6h" });
    expect(scheduler.commandCalls(UpdateScheduleCommand).map((c) => c.args[0].input.State)).toEqual([
      "DISABLED",
      "DISABLED",
    ]);
    expect((await call("DELETE", path, ADMIN)).json()).toEqual({ deleted: created.scheduleId });
    expect(scheduler.commandCalls(DeleteScheduleCommand)[0]!.args[0].input).toMatchObject({
      GroupName: "spawn-schedules",
    });
    expect(await schedules.getSchedule(created.scheduleId)).toBeUndefined();
  });

  it("answers a schedule of another team exactly as one that does not exist, for reads and changes", async () => {
    const created = ScheduleView.parse((await call("POST", "/api/schedules", ADMIN, form())).json());
    const missing = await call("GET", "/api/schedules/sch-missing-0000", BOB);
    expect(missing.status).toBe(404);
    for (const [method, sub] of [
      ["GET", ""],
      ["PUT", ""],
      ["DELETE", ""],
      ["POST", "/pause"],
      ["POST", "/resume"],
    ] as const) {
      const r = await call(method, `/api/schedules/${created.scheduleId}${sub}`, BOB, {
        kind: "rate",
        expression: "1h",
      });
      expect(r.status, `${method} ${sub}`).toBe(404);
      expect(r.body.replace(created.scheduleId, "ID")).toBe(missing.body.replace("sch-missing-0000", "ID"));
    }
    const bobs = ScheduleList.parse((await call("GET", "/api/schedules", BOB)).json());
    expect(bobs.schedules.map((s) => s.scheduleId)).not.toContain(created.scheduleId);
    expect((await schedules.getSchedule(created.scheduleId))?.state).toBe("enabled");
  });

  it("schedules only a sweep the team sees, and names the field of each bad value", async () => {
    const crossTeam = await call("POST", "/api/schedules", ADMIN, form({ fromSweep: visionSweep.sweepId }));
    expect(crossTeam.status).toBe(404);
    expect(ApiError.parse(crossTeam.json()).field).toBe("fromSweep");
    const inVision = await call(
      "POST",
      "/api/schedules",
      ADMIN,
      form({ fromSweep: visionSweep.sweepId, team: "vision" }),
    );
    expect(ScheduleView.parse(inVision.json()).team).toBe("vision");

    const cases: [Record<string, unknown>, number, string][] = [
      [{ expression: "61 * * * *" }, 400, "expression"],
      [{ kind: "at", expression: "2020-01-01T00:00" }, 400, "expression"],
      [{ maxExecutions: "0" }, 400, "maxExecutions"],
      [{ endAfter: "2020-01-01" }, 400, "endAfter"],
      [{ team: "<b>x</b>" }, 400, "team"],
      [{ team: "nobody" }, 404, ""],
      [{ fromSweep: "" }, 400, "fromSweep"],
    ];
    for (const [extra, status, field] of cases) {
      const r = await call("POST", "/api/schedules", ADMIN, form(extra));
      expect(r.status, JSON.stringify(extra)).toBe(status);
      expect(ApiError.parse(r.json()).field ?? "", JSON.stringify(extra)).toBe(field);
    }
    expect(scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(1);
  });

  it("refuses to schedule a pipeline, whose spec is not one sweep's", async () => {
    const { store } = useStore();
    const spec = parseSpec({ name: "p", command: "echo {{x}}", params: { list: [{ x: 1 }] } });
    const pipeline = await createPipeline(
      { store, clock },
      {
        pipelineId: `pipe-${randomUUID().slice(0, 6)}`,
        name: "pipe",
        owner: "someone",
        provider: "aws",
        stages: [
          {
            name: "only",
            inputs: [],
            sweepId: `st-only-${randomUUID().slice(0, 6)}`,
            spec,
            tasks: expandParams(spec.params, spec.repeat),
          },
        ],
      },
    );
    const r = await call("POST", "/api/schedules", ADMIN, form({ fromSweep: pipeline.sweepId }));
    expect(r.status).toBe(400);
    expect(ApiError.parse(r.json())).toMatchObject({
      field: "fromSweep",
      hint: expect.stringMatching(/spawn schedule create/),
    });
  });
});

describe("alerts", () => {
  it("a member creates a team alert on a sweep the team sees; its webhook is sealed with the stack's key and shown masked", async () => {
    const r = await call("POST", "/api/alerts", ALICE, {
      target: defaultSweep.sweepId,
      on: "failure,complete",
      slack: SLACK,
    });
    expect(r.status).toBe(201);
    const view = AlertView.parse(r.json());
    expect(view).toMatchObject({ team: "default", target: { kind: "sweep", id: defaultSweep.sweepId } });
    expect(view.channels).toEqual([{ kind: "slack", masked: "https://hooks.slack.com/…oken" }]);
    expect(r.body).not.toContain("verysecret");
    const generate = kms.commandCalls(GenerateDataKeyCommand);
    expect(generate[0]!.args[0].input).toMatchObject({ KeyId: KEY_ARN, KeySpec: "AES_256" });

    const list = AlertList.parse((await call("GET", "/api/alerts", ALICE)).json());
    expect(list.alerts.find((a) => a.id === view.id)).toMatchObject({ team: "default" });
    const bobs = AlertList.parse((await call("GET", "/api/alerts", BOB)).json());
    expect(bobs.alerts.map((a) => a.id)).not.toContain(view.id);
  });

  it("answers an alert of another team exactly as one that does not exist; its owner team edits and deletes it", async () => {
    const created = AlertView.parse(
      (await call("POST", "/api/alerts", ADMIN, { target: defaultSweep.sweepId, slack: SLACK })).json(),
    );
    const missing = await call("DELETE", "/api/alerts/al-0000000000000000", BOB);
    expect(missing.status).toBe(404);
    for (const method of ["PUT", "DELETE"]) {
      const r = await call(method, `/api/alerts/${created.id}`, BOB, { on: "failure" });
      expect(r.status, method).toBe(404);
      expect(r.body.replace(created.id, "ID")).toBe(missing.body.replace("al-0000000000000000", "ID"));
    }
    // A member of the owning team edits it (the Slack URL is carried over, opened server-side) and deletes it
    const edited = await call("PUT", `/api/alerts/${created.id}`, ALICE, { on: "failure" });
    const replaced = AlertView.parse(edited.json());
    expect(replaced).toMatchObject({ on: ["failure"], team: "default" });
    expect(replaced.channels[0]).toEqual({ kind: "slack", masked: "https://hooks.slack.com/…oken" });
    expect(kms.commandCalls(DecryptCommand).length).toBeGreaterThan(0);
    expect((await call("DELETE", `/api/alerts/${replaced.id}`, ALICE)).status).toBe(200);
    const after = AlertList.parse((await call("GET", "/api/alerts", ALICE)).json());
    expect(after.alerts.map((a) => a.id)).not.toContain(replaced.id);
  });

  it("aims only at sweeps the team sees, and refuses the local alert log", async () => {
    const cross = await call("POST", "/api/alerts", ALICE, { target: visionSweep.sweepId, slack: SLACK });
    expect(cross.status).toBe(404);
    expect(ApiError.parse(cross.json()).field).toBe("target");
    const log = await call("POST", "/api/alerts", ALICE, { target: defaultSweep.sweepId, log: true });
    expect(log.status).toBe(400);
    expect(ApiError.parse(log.json()).field).toBe("log");
    const noChannel = await call("POST", "/api/alerts", ALICE, { target: defaultSweep.sweepId });
    expect(noChannel.status).toBe(400);
    expect(kms.commandCalls(GenerateDataKeyCommand)).toHaveLength(0);
  });
});
