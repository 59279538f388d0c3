/** `spawn alerts create|list|delete|history`. */
import type { Command } from "commander";
import { formatTrigger, publicAlertId } from "#core/alerts.js";
import { checkProvider, openContext } from "../context.js";
import { collect, intArg, providerOption } from "../flags.js";
import { paint, printJson, table } from "../output.js";
import {
  alertHistory,
  alertJson,
  channelLabel,
  createAlert,
  deleteAlert,
  deliveryJson,
  listAlerts,
  planAlert,
} from "../services/alerts.js";

const when = (ms: number) => new Date(ms).toISOString().replace("T", " ").slice(0, 16);

export function registerAlerts(program: Command): void {
  const alerts = program
    .command("alerts")
    .description(
      "notify Slack, a webhook, SNS/email or the local alert log when a sweep or schedule needs you",
    );

  alerts
    .command("create")
    .description("alert on a sweep, or on every sweep a schedule launches")
    .argument("<sweep-or-schedule>", "a sweep id, or a schedule id (sch-…)")
    .option(
      "--on <triggers>",
      "failure, complete, cancelled, task-failed, budget, cost>USD, long-running>DURATION, preempted>N, unhealthy, dns-failed, schedule-failed",
      "failure,complete",
    )
    .option("--slack <url>", "Slack incoming-webhook URL (repeatable)", collect, [])
    .option(
      "--webhook <url>",
      "POST signed JSON to this URL (repeatable); https, or http to loopback",
      collect,
      [],
    )
    .option("--webhook-secret <secret>", "sign webhooks with this secret (default: generated and shown once)")
    .option("--sns <topic-arn>", "publish to this SNS topic (repeatable; --provider aws)", collect, [])
    .option(
      "--email <address>",
      "subscribe this address (SNS; confirm the mail it gets first) (repeatable)",
      collect,
      [],
    )
    .option(
      "--log",
      "append to alerts.log in the state dir (the embedded default's channel when none is given)",
    )
    .addOption(providerOption())
    .option("--json", "machine-readable output")
    .action(async (targetText: string, opts) => {
      const plan = planAlert(checkProvider(opts.provider), targetText, {
        on: opts.on,
        slack: opts.slack,
        webhook: opts.webhook,
        webhookSecret: opts.webhookSecret,
        sns: opts.sns,
        email: opts.email,
        log: opts.log,
      });
      const ctx = await openContext(opts.provider);
      try {
        const { alert, generatedSecret } = await createAlert(ctx, plan);
        if (opts.json) {
          printJson({ ...alertJson(alert), ...(generatedSecret ? { webhookSecret: generatedSecret } : {}) });
          return;
        }
        process.stdout.write(
          `created ${paint("bold", publicAlertId(alert))}: ${alert.triggers.map(formatTrigger).join(", ")} → ${alert.channels.map(channelLabel).join(", ")}\n`,
        );
        if (generatedSecret)
          process.stdout.write(`  webhook signing secret (shown once, keep it): ${generatedSecret}\n`);
        if (alert.channels.some((c) => c.kind === "email"))
          process.stdout.write(
            "  each address gets a confirmation mail from AWS: nothing is sent until it is confirmed\n",
          );
        if (alert.channels.some((c) => c.kind === "log"))
          process.stdout.write(`  alerts are appended to ${ctx.paths.home}/alerts.log\n`);
      } finally {
        ctx.close();
      }
    });

  alerts
    .command("list")
    .description("your alerts, or those of one sweep or schedule")
    .argument("[sweep-or-schedule]")
    .option("--copies", "also list the copies schedules' alerts made for the sweeps they launched")
    .addOption(providerOption())
    .option("--json", "machine-readable output")
    .action(async (targetText: string | undefined, opts) => {
      const ctx = await openContext(opts.provider);
      try {
        const list = await listAlerts(ctx, targetText, { copies: opts.copies });
        if (opts.json) printJson(list.map(alertJson));
        else if (list.length === 0)
          process.stdout.write(
            "no alerts: spawn alerts create <sweep-or-schedule> --slack URL --on failure\n",
          );
        else
          process.stdout.write(
            `${table(
              ["alert", "on", "target", "channels", "created (UTC)"],
              list.map((a) => [
                publicAlertId(a),
                a.triggers.map(formatTrigger).join(","),
                `${a.target.kind} ${a.target.id}${a.inheritedFrom ? ` (from ${a.inheritedFrom})` : ""}`,
                a.channels.map(channelLabel).join(", "),
                when(a.createdAt),
              ]),
            )}\n`,
          );
      } finally {
        ctx.close();
      }
    });

  alerts
    .command("delete")
    .description("remove an alert (and the copies it made for a schedule's sweeps); its history stays")
    .argument("<alert-id>", "al-…, from spawn alerts list")
    .addOption(providerOption())
    .action(async (alertId: string, opts) => {
      const ctx = await openContext(opts.provider);
      try {
        const removed = await deleteAlert(ctx, alertId);
        process.stdout.write(`deleted ${alertId}${removed > 1 ? ` and ${removed - 1} copies` : ""}\n`);
      } finally {
        ctx.close();
      }
    });

  alerts
    .command("history")
    .description("deliveries, newest first, with their outcome per channel")
    .argument("<subject>", "a sweep id, a schedule id (sch-…) or an alert id (al-…)")
    .option("--limit <n>", "at most this many", intArg("--limit", 1), 20)
    .addOption(providerOption())
    .option("--json", "machine-readable output")
    .action(async (subject: string, opts) => {
      const ctx = await openContext(opts.provider);
      try {
        const deliveries = await alertHistory(ctx, subject, opts.limit);
        if (opts.json) printJson(deliveries.map(deliveryJson));
        else if (deliveries.length === 0) process.stdout.write("nothing delivered yet\n");
        else
          process.stdout.write(
            `${table(
              ["fired (UTC)", "alert", "trigger", "outcome", "channels", "title"],
              deliveries.map((d) => {
                const j = deliveryJson(d);
                return [
                  when(d.firedAt),
                  j.alert,
                  d.trigger,
                  d.outcome === "delivered" ? d.outcome : paint("yellow", d.outcome),
                  j.channels.map((c) => `${c.kind}:${c.outcome}${c.error ? ` (${c.error})` : ""}`).join(", "),
                  d.title,
                ];
              }),
            )}\n`,
          );
      } finally {
        ctx.close();
      }
    });
}
