/**
 * SNS for alerts (aws provider): Publish to a topic, which fans out to email, SMS and whatever
 * else is subscribed; `--email` subscribes an address to the topic with a filter policy on the
 * alert, so it receives this alert's messages only (after the recipient confirms: SNS mails a
 * confirmation link first).
 */
import { PublishCommand, type SNSClient, SubscribeCommand, UnsubscribeCommand } from "@aws-sdk/client-sns";
import type { AlertMessage, AlertRecord, EmailSubscriber } from "#core/alerts.js";
import type { TopicPublisher } from "./channels.js";

/** The message attribute a subscription filters on: the alert's origin id. */
export const ALERT_ATTRIBUTE = "spawn_alert";

/** SNS subjects: at most 100 printable ASCII characters, no line breaks. */
export function snsSubject(title: string): string {
  const ascii = title.replace(/[^\x20-\x7e]/g, "?");
  return ascii.length > 100 ? `${ascii.slice(0, 97)}...` : ascii;
}

/** The body: what happened, the counts and cost, and where to look (readable as email and SMS). */
export function snsBody(message: AlertMessage): string {
  const lines = [message.title, message.detail];
  if (message.counts?.succeeded !== undefined)
    lines.push(
      `tasks: ${message.counts.succeeded}/${message.counts.tasks} succeeded${message.counts.failed ? `, ${message.counts.failed} failed` : ""}`,
    );
  if (message.spent !== undefined) lines.push(`cost: $${message.spent.toFixed(2)}`);
  lines.push(message.link ?? message.command, `trigger: ${message.trigger} · ${message.time}`);
  return lines.join("\n");
}

/** An SDK error a later attempt may get past (throttling, SNS's 5xx). */
function retryable(error: unknown): boolean {
  const e = error as { $retryable?: unknown; $metadata?: { httpStatusCode?: number }; name?: string };
  return Boolean(e.$retryable) || (e.$metadata?.httpStatusCode ?? 500) >= 500 || /Throttl/.test(e.name ?? "");
}

export class SnsTopics implements TopicPublisher, EmailSubscriber {
  constructor(private readonly client: SNSClient) {}

  async publish(topicArn: string, message: AlertMessage, alert: AlertRecord) {
    try {
      await this.client.send(
        new PublishCommand({
          TopicArn: topicArn,
          Subject: snsSubject(message.title),
          Message: snsBody(message),
          MessageAttributes: {
            [ALERT_ATTRIBUTE]: { DataType: "String", StringValue: alert.originId },
            spawn_trigger: { DataType: "String", StringValue: message.trigger },
            spawn_sweep: { DataType: "String", StringValue: message.sweepId },
          },
        }),
      );
      return { outcome: "delivered" as const, attempts: 1 };
    } catch (error) {
      const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
      return {
        outcome: retryable(error) ? ("failed" as const) : ("rejected" as const),
        attempts: 1,
        ...(e.$metadata?.httpStatusCode ? { status: e.$metadata.httpStatusCode } : {}),
        error: e.name ?? "SNS error",
      };
    }
  }

  /** Subscribes `address`, filtered to the alert; returns the subscription ARN (valid while pending too). */
  async subscribeEmail(topicArn: string, address: string, originId: string): Promise<string> {
    const out = await this.client.send(
      new SubscribeCommand({
        TopicArn: topicArn,
        Protocol: "email",
        Endpoint: address,
        ReturnSubscriptionArn: true,
        Attributes: { FilterPolicy: JSON.stringify({ [ALERT_ATTRIBUTE]: [originId] }) },
      }),
    );
    if (!out.SubscriptionArn) throw new Error(`SNS returned no subscription for ${address}`);
    return out.SubscriptionArn;
  }

  /** Idempotent: an unknown subscription is already gone. */
  async unsubscribe(subscriptionArn: string): Promise<void> {
    try {
      await this.client.send(new UnsubscribeCommand({ SubscriptionArn: subscriptionArn }));
    } catch (error) {
      if ((error as { name?: string }).name !== "NotFoundException") throw error;
    }
  }
}
