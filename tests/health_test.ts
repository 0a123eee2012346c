/**
 * The health function: liveness and readiness through the real gateway, and
 * readiness built with real clients pointed at a dead Redis or a dead
 * Postgres (closed loopback ports), and at breakers opened for real.
 */
import assert from "node:assert/strict";
import { createSql } from "../supabase/functions/_shared/db/sessions.ts";
import type { Level } from "../supabase/functions/_shared/log.ts";
import { createRedis } from "../supabase/functions/_shared/redis/client.ts";
import { createBreaker } from "../supabase/functions/_shared/resilience/breaker.ts";
import { createApp, type HealthAppDeps } from "../supabase/functions/health/app.ts";
import { claimDue } from "../supabase/functions/_shared/outbox/outbox.ts";
import { eventually } from "./support/dispatcher_process.ts";
import { adminSql, apiHeaders, parkPending, stack } from "./support/stack.ts";

/**
 * A loopback port nothing listens on. (Not a well-known one like 9: fetch
 * refuses those itself, before any connection is tried.)
 */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  listener.close();
  return listener.addr.port;
}

const redis = createRedis({ url: stack.redisRestUrl, token: stack.redisRestToken });
const dispatchKey = `dispatch-${crypto.randomUUID()}-${crypto.randomUUID()}`;

const viaGateway = (path: string, token?: string) =>
  fetch(`${stack.apiUrl}/functions/v1/${path}`, {
    headers: apiHeaders(token ? { authorization: `Bearer ${token}` } : {}),
  });

/** The health app over real clients; the pool is closed when `work` ends. */
async function withApp(
  { dbUrl = stack.dbUrl, ...overrides }: Partial<HealthAppDeps> & { dbUrl?: string },
  work: (app: ReturnType<typeof createApp>, lines: [Level, string][]) => Promise<void>,
) {
  const lines: [Level, string][] = [];
  const sql = createSql({ url: dbUrl, max: 2, applicationName: "herald-health-test" });
  const app = createApp({
    sql,
    redis,
    keys: [stack.serviceRoleKey, dispatchKey],
    log: (level, message) => lines.push([level, message]),
    ...overrides,
  });
  try {
    await work(app, lines);
  } finally {
    await sql.end();
  }
}

const ready = (app: ReturnType<typeof createApp>, token?: string) =>
  app.request("/health/ready", { headers: token ? { authorization: `Bearer ${token}` } : {} });

Deno.test("health: liveness answers ok without touching anything, never cached", async () => {
  const response = await viaGateway("health");
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("cache-control"), "no-store");
  assert.deepEqual(await response.json(), { status: "ok" });
});

/**
 * Nothing due, a dispatcher seen just now, and no provider breaker left open
 * by earlier tests: readiness has no reason to be degraded.
 */
async function quietOutbox() {
  const admin = adminSql();
  try {
    await parkPending(admin);
    await _attemptAt(admin, "now()");
    const breakers = await redis.keys("herald:breaker:*");
    if (breakers.length > 0) await redis.del(...breakers);
  } finally {
    await admin.end();
  }
}

/** Writes an attempt row at `at` (SQL), making it the latest one readiness sees. */
async function _attemptAt(admin: ReturnType<typeof adminSql>, at: string) {
  const [{ id }] =
    await admin`insert into herald.notifications (title) values ('attempt') returning id`;
  const [delivery] = await admin`insert into herald.deliveries
      (notification_id, created_at, channel, target, status)
    select id, created_at, 'webhook', 'https://receiver.example/seen', 'sent'
    from herald.notifications where id = ${id} returning id`;
  await admin.unsafe(
    `insert into herald.delivery_attempts (delivery_id, attempt, outcome, at)
     values ($1, 1, 'sent', ${at})`,
    [delivery.id],
  );
}

Deno.test("health: readiness through the gateway tells anyone only the status", async () => {
  await quietOutbox();
  for (const token of [undefined, "not-a-key", stack.anonKey]) {
    const response = await viaGateway("health/ready", token);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("cache-control"), "no-store");
    assert.deepEqual(await response.json(), { status: "ok" });
  }
});

Deno.test("health: readiness through the gateway shows the service-role key every check", async () => {
  await quietOutbox();
  const response = await viaGateway("health/ready", stack.serviceRoleKey);
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.status, "ok");
  assert.equal(body.checks.postgres.status, "ok");
  assert.equal(body.checks.redis.status, "ok");
  assert.ok(Number.isInteger(body.checks.postgres.duration_ms));
  assert.deepEqual(Object.keys(body.queue).sort(), [
    "due",
    "due_capped",
    "last_attempt_age_s",
    "oldest_due_age_s",
    "oldest_pending_age_s",
  ]);
  assert.equal(body.queue.oldest_due_age_s, 0, "present, and 0 when nothing is due");
  assert.ok(Array.isArray(body.breakers.targets));
  assert.equal(typeof body.breakers.truncated, "boolean");
});

Deno.test("health: readiness reports the age of the oldest due and oldest pending delivery", async () => {
  const admin = adminSql();
  const [{ id }] = await admin`insert into herald.notifications (title, created_at)
      values ('lag', now() - interval '2 hours') returning id`;
  try {
    await admin`insert into herald.deliveries (notification_id, channel, target, next_attempt_at, created_at)
      select id, 'webhook', 'https://receiver.example/lag', now() - interval '1 hour', created_at
      from herald.notifications where id = ${id}`;
    await withApp({}, async (app) => {
      const body = await (await ready(app, dispatchKey)).json();
      assert.ok(body.queue.due >= 1, JSON.stringify(body.queue));
      assert.ok(body.queue.oldest_due_age_s >= 3600, JSON.stringify(body.queue));
      assert.ok(body.queue.oldest_pending_age_s >= 7200, JSON.stringify(body.queue));
    });
  } finally {
    await admin`delete from herald.notifications where id = ${id}`;
    await admin.end();
  }
});

Deno.test("health: work due with no dispatcher attempting anything is degraded, and says so", async () => {
  const admin = adminSql();
  const [{ id }] =
    await admin`insert into herald.notifications (title) values ('stalled') returning id`;
  try {
    await quietOutbox();
    await admin`insert into herald.deliveries (notification_id, created_at, channel, target, next_attempt_at)
      select id, created_at, 'webhook', 'https://receiver.example/stalled', now() - interval '1 minute'
      from herald.notifications where id = ${id}`;
    await _attemptAt(admin, "now() - interval '2 minutes'");
    await withApp({}, async (app) => {
      assert.deepEqual(await (await ready(app)).json(), { status: "degraded" });
      const body = await (await ready(app, dispatchKey)).json();
      assert.equal(body.status, "degraded");
      assert.equal(body.reasons.length, 1);
      assert.match(body.reasons[0], /no dispatcher has attempted any/);
      assert.ok(body.queue.last_attempt_age_s >= 120, JSON.stringify(body.queue));
    });
    // A dispatcher at work again: due deliveries alone are a backlog, not an outage.
    await _attemptAt(admin, "now()");
    await withApp({}, async (app) => {
      assert.deepEqual(await (await ready(app)).json(), { status: "ok" });
    });
  } finally {
    await admin`delete from herald.notifications where id = ${id}`;
    await admin.end();
  }
});

Deno.test("health: rows whose lease ran out without a result count as due", async () => {
  const admin = adminSql();
  const [{ id }] =
    await admin`insert into herald.notifications (title) values ('leased') returning id`;
  try {
    await parkPending(admin);
    await _attemptAt(admin, "now()");
    await admin`insert into herald.deliveries (notification_id, created_at, channel, target)
      select id, created_at, 'webhook', 'https://receiver.example/leased'
      from herald.notifications where id = ${id}`;
    await claimDue(admin, { limit: 1, leaseMs: 1_000, notificationId: id });
    await withApp({}, async (app) => {
      const leased = await (await ready(app, dispatchKey)).json();
      assert.equal(leased.queue.due, 0, "a live lease is not due");
      await eventually("the lease to run out", async () => {
        const body = await (await ready(app, dispatchKey)).json();
        return body.queue.due === 1 ? body : undefined;
      });
    });
  } finally {
    await admin`delete from herald.notifications where id = ${id}`;
    await admin.end();
  }
});

Deno.test("health: an open provider breaker is degraded; an open webhook endpoint's is not", async () => {
  await quietOutbox();
  const prefix = `test:breaker:${crypto.randomUUID()}:`;
  const breaker = createBreaker({ redis, prefix, threshold: 1 });
  await breaker.record("webhook:5b4c4a8e-2f0e-4d8e-9a57-3f1f0f9d8c11", {
    failures: 1,
    successes: 0,
    probe: false,
  });
  await withApp({ breaker: { prefix } }, async (app) => {
    assert.deepEqual(await (await ready(app)).json(), { status: "ok" });
  });
  await breaker.record("fcm:herald-local", { failures: 1, successes: 0, probe: false });
  await withApp({ breaker: { prefix } }, async (app) => {
    const body = await (await ready(app, stack.serviceRoleKey)).json();
    assert.equal(body.status, "degraded");
    assert.deepEqual(body.reasons, ["the circuit breaker for fcm:herald-local is open"]);
  });
});

Deno.test("health: with Redis unreachable readiness is degraded but still 200", async () => {
  await quietOutbox();
  await withApp({
    redis: createRedis({ url: `http://127.0.0.1:${closedPort()}`, token: "unused" }),
  }, async (app, lines) => {
    const anonymous = await ready(app);
    assert.equal(anonymous.status, 200);
    assert.deepEqual(await anonymous.json(), { status: "degraded" });

    const detailed = await ready(app, stack.serviceRoleKey);
    assert.equal(detailed.status, 200);
    const body = await detailed.json();
    assert.equal(body.status, "degraded");
    assert.equal(body.checks.postgres.status, "ok");
    assert.equal(body.checks.redis.status, "failed");
    assert.equal(typeof body.checks.redis.error, "string");
    assert.equal(typeof body.breakers.error, "string");
    assert.deepEqual(
      lines.filter(([, message]) => message !== "request"),
      [["warn", "readiness: degraded"]],
      "one line per change, not per call (beside the access lines)",
    );
  });
});

Deno.test("health: without Redis configured breakers are per-process, and that is ok", async () => {
  await quietOutbox();
  await withApp({ redis: undefined }, async (app) => {
    const body = await (await ready(app, stack.serviceRoleKey)).json();
    assert.equal(body.status, "ok");
    assert.deepEqual(body.checks.redis, { status: "not-configured" });
    assert.equal(body.breakers, null);
  });
});

Deno.test("health: with Postgres unreachable readiness is a 503 problem", async () => {
  await withApp({
    dbUrl: `postgresql://postgres:postgres@127.0.0.1:${closedPort()}/postgres`,
  }, async (app) => {
    const anonymous = await ready(app);
    assert.equal(anonymous.status, 503);
    assert.equal(anonymous.headers.get("content-type"), "application/problem+json");
    assert.equal(anonymous.headers.get("cache-control"), "no-store");
    const problem = await anonymous.json();
    assert.deepEqual(Object.keys(problem).sort(), [
      "detail",
      "request_id",
      "status",
      "title",
      "type",
    ]);
    assert.equal(problem.type, "https://herald.dev/problems/not-ready");
    assert.equal(problem.detail, "Herald is not ready; retry shortly.");

    const detailed = await ready(app, dispatchKey);
    assert.equal(detailed.status, 503);
    const body = await detailed.json();
    assert.equal(body.status, 503);
    assert.match(body.detail, /^Postgres is unreachable \(.+\)/);
    assert.equal(body.checks.postgres.status, "failed");
    assert.equal(body.checks.redis.status, "ok");
    assert.equal(typeof body.queue.error, "string");
  });
});

Deno.test("health: a breaker opened by real failures reads back as open, with its cool-down", async () => {
  await quietOutbox();
  const prefix = `test:breaker:${crypto.randomUUID()}:`;
  const breaker = createBreaker({
    redis,
    prefix,
    threshold: 3,
    windowMs: 60_000,
    cooldownMs: 30_000,
  });
  const failing = "webhook:down.example";
  const flaky = "fcm:flaky";
  const opened = await breaker.record(failing, { failures: 3, successes: 0, probe: false });
  assert.equal(opened.state, "open");
  await breaker.record(flaky, { failures: 1, successes: 0, probe: false });

  await withApp({ breaker: { prefix, windowMs: 60_000 } }, async (app) => {
    const body = await (await ready(app, stack.serviceRoleKey)).json();
    assert.equal(body.status, "ok", "one webhook endpoint's open breaker is its owner's trouble");
    assert.deepEqual(body.breakers.truncated, false);
    const [fcm, webhook] = body.breakers.targets;
    assert.deepEqual(fcm, { target: flaky, state: "closed", recent_failures: 1, recent_calls: 1 });
    assert.equal(webhook.target, failing);
    assert.equal(webhook.state, "open");
    assert.equal(
      webhook.open_until,
      new Date((opened as { retryAt: number }).retryAt).toISOString(),
    );
    assert.ok(webhook.retry_in_s >= 1 && webhook.retry_in_s <= 30, `${webhook.retry_in_s}`);
    assert.equal(webhook.recent_failures, 0, "opening clears the failure window");
  });
});

Deno.test("health: a breaker past its cool-down reads as half-open", async () => {
  const prefix = `test:breaker:${crypto.randomUUID()}:`;
  const clock = { now: Date.now() - 60_000 };
  const breaker = createBreaker({
    redis,
    prefix,
    threshold: 1,
    cooldownMs: 30_000,
    now: () => clock.now,
  });
  await breaker.record("email:resend", { failures: 1, successes: 0, probe: false });

  await withApp({ breaker: { prefix } }, async (app) => {
    const body = await (await ready(app, stack.serviceRoleKey)).json();
    assert.deepEqual(body.breakers.targets.map((b: { state: string }) => b.state), ["half-open"]);
    assert.equal(body.breakers.targets[0].retry_in_s, 0);
    assert.deepEqual(body.reasons, ["the circuit breaker for email:resend is half-open"]);
  });
});
