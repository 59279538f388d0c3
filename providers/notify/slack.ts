/**
 * Slack incoming webhooks: a Block Kit message with the title, what happened, the sweep (linked
 * when a dashboard URL is configured), task counts and cost, and the command that shows it.
 */
import type { AlertMessage } from "#core/alerts.js";

/** Slack's mrkdwn needs &, < and > escaped; everything else is literal. */
const esc = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const ICON = { info: ":white_check_mark:", warning: ":warning:", critical: ":rotating_light:" } as const;

/** The JSON body Slack's incoming webhook receives. */
export function slackPayload(message: AlertMessage): Record<string, unknown> {
  const sweep = message.sweepName ? `${message.sweepName} (${message.sweepId})` : message.sweepId;
  const fields = [
    `*Sweep*\n${message.link ? `<${message.link}|${esc(sweep)}>` : esc(sweep)}`,
    `*Trigger*\n\`${esc(message.trigger)}\``,
  ];
  if (message.counts) {
    const { tasks, succeeded, failed } = message.counts;
    fields.push(
      `*Tasks*\n${succeeded === undefined ? `${tasks}` : `${succeeded}/${tasks} succeeded${failed ? `, ${failed} failed` : ""}`}`,
    );
  }
  if (message.spent !== undefined)
    fields.push(
      `*Cost*\n$${message.spent.toFixed(2)}${message.budget !== undefined ? ` of $${message.budget.toFixed(2)} budget` : ""}`,
    );
  return {
    // Notifications and clients without blocks show `text`.
    text: `${message.title}: ${message.detail}`,
    blocks: [
      { type: "header", text: { type: "plain_text", text: message.title.slice(0, 150), emoji: true } },
      { type: "section", text: { type: "mrkdwn", text: `${ICON[message.severity]} ${esc(message.detail)}` } },
      { type: "section", fields: fields.map((text) => ({ type: "mrkdwn", text })) },
      {
        type: "context",
        elements: [{ type: "mrkdwn", text: `\`${esc(message.command)}\` · ${message.time}` }],
      },
    ],
  };
}
