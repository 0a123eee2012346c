/**
 * End to end with a real Prometheus (Debian's package): it scrapes the test
 * stack's metrics function through Kong and evaluates Herald's rules. The FCM
 * stand-in starts failing, real dispatch rounds open the real breaker, and
 * HeraldBreakerOpen goes pending, then firing, through Prometheus's HTTP API;
 * the stand-in heals, a probe closes the breaker and the alert resolves. The
 * deploy gate's Prometheus queries read the same outage by deployment.
 *
 * The rules are Herald's own, with two settings shortened so the test takes
 * seconds rather than minutes: every group evaluates each second (30 s
 * shipped) and HeraldBreakerOpen's `for` is 10 s (5 min shipped). Its
 * expression, labels and annotations are the shipped ones.
 */
import assert from "node:assert/strict";
import { parse, stringify } from "yaml";
import { Redis } from "@upstash/redis";
import {
  HERALD_RULES,
  PROMETHEUS_ALERTS_PATH,
  startPrometheus,
} from "../scripts/stack/prometheus.ts";
import { snapshotFromPrometheus } from "../scripts/deploy/gate.ts";
import { adminSql, createUser, enqueue, fakeControl, parkPending, stack } from "./support/stack.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

interface Alert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: "pending" | "firing";
}

const redis = new Redis({ url: stack.redisRestUrl, token: stack.redisRestToken });

async function clearBreakers() {
  const keys = await redis.keys("herald:breaker:*");
  if (keys.length > 0) await redis.del(...keys);
}

/** One dispatch round by the real dispatch function, as pg_cron calls it. */
async function dispatchRound(): Promise<Json> {
  const response = await fetch(`${stack.apiUrl}/functions/v1/dispatch`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${stack.serviceRoleKey}`,
      "content-type": "application/json",
    },
    body: "{}",
  });
  assert.equal(response.status, 200);
  return await response.json();
}

/** Polls until `check` returns a value, doing `step` between looks. */
async function until<T>(
  what: string,
  check: () => Promise<T | undefined>,
  step: () => Promise<unknown> = () => Promise.resolve(),
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await check();
    if (value !== undefined) return value;
    await step();
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}`);
}

Deno.test("prometheus e2e: an FCM outage opens the breaker, HeraldBreakerOpen goes pending then firing; healed, it resolves", async () => {
  const dir = await Deno.makeTempDir({ prefix: "herald-prometheus-" });
  const rules: Json = parse(await Deno.readTextFile(HERALD_RULES));
  for (const group of rules.groups) {
    group.interval = "1s";
    for (const rule of group.rules) if (rule.alert === "HeraldBreakerOpen") rule.for = "10s";
  }
  await Deno.writeTextFile(`${dir}/rules.yml`, stringify(rules));
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const prometheus = await startPrometheus(stack, {
    port,
    dataDir: dir,
    ruleFiles: [`${dir}/rules.yml`],
    scrapeInterval: "1s",
    logDir: `${stack.dataDir}/logs`,
  });
  const sql = adminSql();
  const breakerAlerts = async (): Promise<Alert[]> => {
    const body = await (await fetch(`${prometheus.url}/api/v1/alerts`)).json();
    return body.data.alerts.filter((a: Alert) => a.labels.alertname === "HeraldBreakerOpen");
  };
  try {
    // The page the banner and the README point at.
    const page = await fetch(`${prometheus.url}${PROMETHEUS_ALERTS_PATH}`);
    assert.equal(page.status, 200, `${PROMETHEUS_ALERTS_PATH} answers`);
    assert.match(await page.text(), /HeraldBreakerOpen/);
    await clearBreakers();
    await parkPending(sql);
    await fakeControl("fcm", "reset");
    // Prometheus scrapes both targets before anything happens.
    await until("both targets up", async () => {
      const body = await (await fetch(`${prometheus.url}/api/v1/targets`)).json();
      const active: Json[] = body.data.activeTargets;
      return active.length === 2 && active.every((t) => t.health === "up") ? true : undefined;
    });
    assert.deepEqual(await breakerAlerts(), [], "silent while FCM answers");

    const user = await createUser(sql, "prometheus-e2e");
    await sql`insert into herald.device_tokens (user_id, token, platform)
      select ${user.id}, 'prom-e2e-' || i || '-' || ${user.id}, 'android' from generate_series(1, 8) i`;
    await fakeControl("fcm", "behaviour", {
      responses: [{ fcm_error: "UNAVAILABLE" }],
      repeat_last: true,
    });
    await enqueue(sql, [user.id], { title: "Outage" });
    const round = await dispatchRound();
    assert.equal(round.claimed, 8);

    const pending = await until("HeraldBreakerOpen pending", async () => {
      const alerts = await breakerAlerts();
      return alerts.find((a) => a.state === "pending");
    });
    assert.equal(pending.labels.kind, "fcm");
    assert.equal(pending.labels.severity, "page");
    assert.equal(pending.annotations.runbook_url, "docs/RUNBOOK.md#heraldbreakeropen");
    const firing = await until("HeraldBreakerOpen firing", async () => {
      const alerts = await breakerAlerts();
      return alerts.find((a) => a.state === "firing");
    });
    assert.equal(firing.labels.kind, "fcm");

    // The deploy gate's Prometheus mode reads the same outage, by deployment.
    const window = await snapshotFromPrometheus(prometheus.url, 120);
    const stable = window.get("stable");
    assert.ok(stable, `deployments seen: ${[...window.keys()]}`);
    assert.ok(stable.openings >= 1, `breaker openings ${stable.openings}`);
    assert.ok(!window.get("canary")?.openings, "the canary opened nothing");

    // FCM answers again: after the cool-down a round's probe closes the breaker.
    await fakeControl("fcm", "reset");
    await until(
      "HeraldBreakerOpen resolved",
      async () => {
        const alerts = await breakerAlerts();
        return alerts.length === 0 ? true : undefined;
      },
      () => dispatchRound(),
      90_000,
    );
    const [{ sent }] = await sql`select count(*)::int as sent from herald.deliveries
      where recipient_id = ${user.id} and status = 'sent'`;
    assert.ok(sent >= 1, "the probe's delivery was sent");
  } finally {
    await fakeControl("fcm", "reset");
    await clearBreakers();
    await sql.end();
    await prometheus.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
