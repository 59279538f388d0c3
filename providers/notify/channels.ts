/**
 * One ChannelSender over every channel kind: Slack and generic webhooks over HTTPS (secrets
 * opened only here, only for the request), SNS through a publisher the aws provider supplies,
 * and the local alert log. What it returns goes to the delivery history, so it never holds a
 * URL or a secret.
 */
import type {
  AlertChannel,
  AlertMessage,
  AlertRecord,
  ChannelResult,
  ChannelSender,
  SecretBox,
} from "#core/alerts.js";
import { type PostOptions, postJson } from "./http.js";
import { appendAlertLog } from "./log.js";
import { slackPayload } from "./slack.js";
import { webhookBody, webhookHeaders } from "./webhook.js";

type Sent = Omit<ChannelResult, "channel">;

/** SNS Publish (providers/notify/sns.ts); absent on the embedded default. */
export interface TopicPublisher {
  publish(topicArn: string, message: AlertMessage, alert: AlertRecord): Promise<Omit<Sent, "kind">>;
}

export interface ChannelDeps {
  secrets: SecretBox;
  /** The state dir, for the `log` channel (embedded default). */
  home?: string;
  topics?: TopicPublisher;
  http?: PostOptions;
}

export function channelSender(deps: ChannelDeps): ChannelSender {
  const nowS = () => Math.floor((deps.http?.now ?? Date.now)() / 1000);
  return async (channel: AlertChannel, message: AlertMessage, alert: AlertRecord): Promise<Sent> => {
    const unavailable = (why: string): Sent => ({
      kind: channel.kind,
      outcome: "rejected",
      attempts: 0,
      error: why,
    });
    switch (channel.kind) {
      case "slack": {
        const url = await deps.secrets.open(channel.url, alert.originId);
        const body = JSON.stringify(slackPayload(message));
        return { kind: channel.kind, ...(await postJson(url, body, () => ({}), deps.http)) };
      }
      case "webhook": {
        const [url, secret] = await Promise.all([
          deps.secrets.open(channel.url, alert.originId),
          deps.secrets.open(channel.secret, alert.originId),
        ]);
        const body = webhookBody(message);
        return {
          kind: channel.kind,
          ...(await postJson(url, body, () => webhookHeaders(message, body, secret, nowS()), deps.http)),
        };
      }
      case "sns":
      case "email":
        if (!deps.topics) return unavailable("SNS is not available on the embedded default");
        return { kind: channel.kind, ...(await deps.topics.publish(channel.topicArn, message, alert)) };
      case "log":
        if (!deps.home) return unavailable("the alert log is written by the embedded control plane only");
        await appendAlertLog(deps.home, message);
        return { kind: channel.kind, outcome: "delivered", attempts: 1 };
    }
  };
}
