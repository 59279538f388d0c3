/**
 * The aws side of alerts, asserted on what is sent to AWS (aws-sdk-client-mock): SNS Publish
 * and the filtered email subscription, and the KMS envelope that seals webhook secrets.
 */
import { DecryptCommand, GenerateDataKeyCommand, KMSClient } from "@aws-sdk/client-kms";
import {
  NotFoundException,
  PublishCommand,
  SNSClient,
  SubscribeCommand,
  UnsubscribeCommand,
} from "@aws-sdk/client-sns";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, test } from "vitest";
import { type AlertMessage, type AlertRecord, parseTriggers } from "../core/alerts.js";
import { CONTEXT_KEY, KmsSecretBox } from "../providers/notify/kms-secrets.js";
import { ALERT_ATTRIBUTE, SnsTopics, snsBody, snsSubject } from "../providers/notify/sns.js";

const sns = mockClient(SNSClient);
const kms = mockClient(KMSClient);
beforeEach(() => {
  sns.reset();
  kms.reset();
});

const TOPIC = "arn:aws:sns:us-east-1:123456789012:spawn-alerts";
const alert: AlertRecord = {
  scope: "owner#ana",
  alertId: "sweep#lr-1#a1b2",
  owner: "ana",
  target: { kind: "sweep", id: "lr-1" },
  triggers: parseTriggers("failure"),
  channels: [{ kind: "sns", topicArn: TOPIC }],
  originId: "a1b2",
  createdAt: 0,
};
const message: AlertMessage = {
  deliveryId: "d".repeat(32),
  alertId: alert.alertId,
  trigger: "failure",
  severity: "critical",
  title: "Sweep lr failed",
  detail: "1 task failed (failed tasks: 2)",
  sweepId: "lr-1",
  sweepName: "lr",
  command: "spawn sweep status lr-1",
  counts: { tasks: 3, succeeded: 2, failed: 1 },
  spent: 1.25,
  time: "2026-11-23T10:00:00.000Z",
};

describe("SNS", () => {
  test("Publish sends the subject, a readable body and the attribute email subscriptions filter on", async () => {
    sns.on(PublishCommand).resolves({ MessageId: "m-1" });

    const result = await new SnsTopics(new SNSClient({ region: "us-east-1" })).publish(TOPIC, message, alert);

    expect(result).toEqual({ outcome: "delivered", attempts: 1 });
    expect(sns.commandCalls(PublishCommand)[0]!.args[0].input).toEqual({
      TopicArn: TOPIC,
      Subject: "Sweep lr failed",
      Message:
        "Sweep lr failed\n1 task failed (failed tasks: 2)\ntasks: 2/3 succeeded, 1 failed\ncost: $1.25\n" +
        "spawn sweep status lr-1\ntrigger: failure · 2026-11-23T10:00:00.000Z",
      MessageAttributes: {
        [ALERT_ATTRIBUTE]: { DataType: "String", StringValue: "a1b2" },
        spawn_trigger: { DataType: "String", StringValue: "failure" },
        spawn_sweep: { DataType: "String", StringValue: "lr-1" },
      },
    });
  });

  test("a missing topic is rejected; throttling is a retryable failure", async () => {
    const topics = new SNSClient({ region: "us-east-1", maxAttempts: 1 });
    const throttled = Object.assign(new Error("Rate exceeded"), {
      name: "Throttling",
      $metadata: { httpStatusCode: 400 },
    });
    sns
      .on(PublishCommand)
      .rejectsOnce(
        new NotFoundException({ message: "Topic does not exist", $metadata: { httpStatusCode: 404 } }),
      )
      .rejectsOnce(throttled);

    const missing = await new SnsTopics(topics).publish(TOPIC, message, alert);
    const busy = await new SnsTopics(topics).publish(TOPIC, message, alert);

    expect(missing).toEqual({ outcome: "rejected", attempts: 1, status: 404, error: "NotFoundException" });
    expect(busy).toEqual({ outcome: "failed", attempts: 1, status: 400, error: "Throttling" });
  });

  test("--email subscribes the address with a filter policy on the alert, and delete unsubscribes", async () => {
    const arn = `${TOPIC}:5d3a0b7e-0000-4000-8000-000000000000`;
    sns.on(SubscribeCommand).resolves({ SubscriptionArn: arn });
    sns.on(UnsubscribeCommand).rejectsOnce(new NotFoundException({ message: "gone", $metadata: {} }));
    const topics = new SnsTopics(new SNSClient({ region: "us-east-1" }));

    expect(await topics.subscribeEmail(TOPIC, "ana@example.com", "a1b2")).toBe(arn);
    await topics.unsubscribe(arn);

    expect(sns.commandCalls(SubscribeCommand)[0]!.args[0].input).toEqual({
      TopicArn: TOPIC,
      Protocol: "email",
      Endpoint: "ana@example.com",
      ReturnSubscriptionArn: true,
      Attributes: { FilterPolicy: JSON.stringify({ [ALERT_ATTRIBUTE]: ["a1b2"] }) },
    });
    expect(sns.commandCalls(UnsubscribeCommand)[0]!.args[0].input).toEqual({ SubscriptionArn: arn });
  });

  test("subjects are cut to SNS's 100 ASCII characters", () => {
    expect(snsSubject(`Sweep ${"é".repeat(120)}`)).toMatch(/^Sweep \?{91}\.\.\.$/);
    expect(snsBody({ ...message, link: "https://d.example/#/sweeps/lr-1" })).toContain(
      "https://d.example/#/sweeps/lr-1",
    );
  });
});

describe("KMS envelope", () => {
  const KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
  const dataKey = new Uint8Array(32).fill(7);
  const wrapped = new Uint8Array([1, 2, 3, 4]);

  test("seal asks for a data key bound to the alert, stores it wrapped, and open unwraps it with the same context", async () => {
    kms
      .on(GenerateDataKeyCommand)
      .callsFake(async () => ({ Plaintext: dataKey.slice(), CiphertextBlob: wrapped }));
    kms.on(DecryptCommand).callsFake(async () => ({ Plaintext: dataKey.slice() }));
    const box = new KmsSecretBox(new KMSClient({ region: "us-east-1" }), KEY);

    const sealed = await box.seal("https://hooks.slack.com/services/T/B/secret", "a1b2");
    const opened = await box.open(sealed, "a1b2");

    expect(opened).toBe("https://hooks.slack.com/services/T/B/secret");
    expect(sealed).toMatchObject({ v: 1, key: "kms", wrappedKey: Buffer.from(wrapped).toString("base64") });
    expect(JSON.stringify(sealed)).not.toContain("secret");
    expect(kms.commandCalls(GenerateDataKeyCommand)[0]!.args[0].input).toEqual({
      KeyId: KEY,
      KeySpec: "AES_256",
      EncryptionContext: { [CONTEXT_KEY]: "a1b2" },
    });
    const decrypt = kms.commandCalls(DecryptCommand)[0]!.args[0].input;
    expect(decrypt).toEqual({
      CiphertextBlob: Buffer.from(wrapped),
      EncryptionContext: { [CONTEXT_KEY]: "a1b2" },
      KeyId: KEY,
    });
  });

  test("a ciphertext moved to another alert does not open, even with the right data key", async () => {
    kms
      .on(GenerateDataKeyCommand)
      .callsFake(async () => ({ Plaintext: dataKey.slice(), CiphertextBlob: wrapped }));
    kms.on(DecryptCommand).callsFake(async () => ({ Plaintext: dataKey.slice() }));
    const box = new KmsSecretBox(new KMSClient({ region: "us-east-1" }), KEY);
    const sealed = await box.seal("whsec_x", "a1b2");
    await expect(box.open(sealed, "other")).rejects.toThrow(/authenticate/);
  });
});
