/**
 * The metrics endpoint: its formats (checked by promtool), its access, and
 * that each counter moves by exactly what a real dispatch round, enqueue,
 * cancel or notify request did — against real Postgres, Redis and the
 * stand-ins, scraped through Kong.
 */
import assert from "node:assert/strict";
import { createSql } from "../supabase/functions/_shared/db/sessions.ts";
import { dispatchBatch } from "../supabase/functions/_shared/dispatch/dispatcher.ts";
import {
  ATTEMPT_BUCKETS,
  errorClass,
  REQUEST_BUCKETS,
} from "../supabase/functions/_shared/metrics/catalogue.ts";
import { claimDue, recordResults } from "../supabase/functions/_shared/outbox/outbox.ts";
import { Exposition, formatFor } from "../supabase/functions/_shared/metrics/exposition.ts";
import {
  countBreakerOpening,
  createRequestCounter,
  readRequestCounts,
  REQUESTS_KEY,
} from "../supabase/functions/_shared/metrics/request_counts.ts";
import { createHttpApp } from "../supabase/functions/_shared/http/app.ts";
import { createRedis } from "../supabase/functions/_shared/redis/client.ts";
import { createApp } from "../supabase/functions/metrics/app.ts";
import { testDispatcher } from "./support/dispatch.ts";
import {
  adminSql,
  apiHeaders,
  createUser,
  enqueue,
  fakeControl,
  parkPending,
  stack,
} from "./support/stack.ts";

const redis = createRedis({ url: stack.redisRestUrl, token: stack.redisRestToken });
const build = { instance: "test", version: "1.2.3", gitSha: "abcdef1" };

/** Scrapes the real function through Kong, as Prometheus does (a bearer key, nothing else). */
async function scrape(accept?: string): Promise<Response> {
  return await fetch(`${stack.apiUrl}/functions/v1/metrics`, {
    headers: { authorization: `Bearer ${stack.serviceRoleKey}`, ...(accept ? { accept } : {}) },
  });
}

/** Sample name+labels → value, from the Prometheus text format. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

async function values(): Promise<Map<string, number>> {
  const response = await scrape();
  assert.equal(response.status, 200);
  return samples(await response.text());
}

/** Runs promtool check metrics on `text`; returns its complaints (empty: clean). */
async function promtoolCheck(text: string): Promise<string> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const said = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  return code === 0 && said.trim() === "" ? "" : said || `exit ${code}`;
}

Deno.test("metrics: no key gets 401; a user's token, the anon key or a wrong key gets 403; the service key gets the text format", async () => {
  const sql = adminSql();
  const user = await createUser(sql, "metrics-access");
  await sql.end();
  for (
    const [authorization, status] of [
      [undefined, 401],
      [`Bearer ${user.token}`, 403],
      [`Bearer ${stack.anonKey}`, 403],
      ["Bearer nope", 403],
    ] as const
  ) {
    const response = await fetch(`${stack.apiUrl}/functions/v1/metrics`, {
      headers: authorization ? { authorization } : {},
    });
    assert.equal(response.status, status, String(authorization));
    assert.match(response.headers.get("content-type") ?? "", /application\/problem\+json/);
    await response.body?.cancel();
  }
  const response = await scrape();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  assert.equal(response.headers.get("cache-control"), "no-store");
  const text = await response.text();
  assert.match(
    text,
    /^herald_build_info\{version="0\.1\.0",git_sha="[0-9a-f]{40}",deployment="(stable|canary)"\} 1$/m,
  );
  assert.match(text, /^herald_up\{source="postgres"\} 1$/m);
  assert.match(text, /^herald_redis_up 1$/m);
});

Deno.test("metrics: the endpoint's output passes promtool check metrics (names, units, types, help)", async () => {
  const text = await (await scrape()).text();
  assert.equal(await promtoolCheck(text), "");
  // Every family Herald documents is there, even before anything happened to it.
  for (
    const family of [
      "herald_deliveries_total",
      "herald_delivery_attempts_total",
      "herald_provider_attempt_duration_seconds",
      "herald_enqueue_to_first_attempt_seconds",
      "herald_enqueue_to_sent_seconds",
      "herald_queue_depth",
      "herald_oldest_due_age_seconds",
      "herald_dead_letters",
      "herald_circuit_breakers",
      "herald_circuit_breaker_openings_total",
      "herald_rate_limited_total",
      "herald_http_requests_total",
      "herald_http_request_duration_seconds",
      "herald_device_tokens_disabled_total",
      "herald_webhook_endpoints_disabled_total",
      "herald_redis_up",
      "herald_build_info",
    ]
  ) {
    assert.match(text, new RegExp(`^# TYPE ${family} `, "m"), family);
  }
});

Deno.test("metrics: Accept: application/openmetrics-text gets OpenMetrics 1.0 (families without _total, info type, # EOF)", async () => {
  const response = await scrape(
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
  );
  assert.equal(
    response.headers.get("content-type"),
    "application/openmetrics-text; version=1.0.0; charset=utf-8",
  );
  const text = await response.text();
  assert.ok(text.endsWith("# EOF\n"));
  assert.match(text, /^# TYPE herald_deliveries counter$/m);
  assert.match(text, /^herald_deliveries_total\{/m);
  assert.match(text, /^# TYPE herald_build info$/m);
  assert.match(text, /^herald_build_info\{/m);
  assert.equal(formatFor("text/plain"), "prometheus");
  assert.equal(formatFor(null), "prometheus");
});

Deno.test("metrics: a dispatch round moves outcomes, attempts by error class, latency histograms, hygiene and queue depth by exactly what it did", async () => {
  const sql = adminSql();
  const deps = await testDispatcher({ instance: "" });
  try {
    await parkPending(sql);
    await fakeControl("fcm", "reset");
    const user = await createUser(sql, "metrics-round");
    const tokens = ["ok-1", "ok-2", "ok-3", "gone", "busy"].map((t) => `metrics-${t}-${user.id}`);
    await sql`insert into herald.device_tokens (user_id, token, platform)
      select ${user.id}, t, 'android' from unnest(${tokens}::text[]) t`;
    await fakeControl("fcm", "tokens", { token: tokens[3], fcm_error: "UNREGISTERED" });
    await fakeControl("fcm", "tokens", { token: tokens[4], fcm_error: "UNAVAILABLE" });
    const before = await values();
    await enqueue(sql, [user.id], { title: "Metrics" });
    const enqueued = await values();
    const depth = 'herald_queue_depth{channel="push",lane="1"}';
    assert.equal(enqueued.get(depth)! - before.get(depth)!, 5, "five pending pushes enqueued");

    const report = await dispatchBatch(deps);
    assert.equal(report.claimed, 5);
    const after = await values();
    const delta = (key: string) => (after.get(key) ?? 0) - (before.get(key) ?? 0);
    const outcome = (o: string) =>
      `herald_deliveries_total{channel="push",outcome="${o}",deployment=""}`;
    assert.equal(delta(outcome("sent")), 3);
    assert.equal(delta(outcome("failed")), 1);
    assert.equal(delta(outcome("retried")), 1);
    const attempts = (c: string) =>
      `herald_delivery_attempts_total{channel="push",error_class="${c}",deployment=""}`;
    assert.equal(delta(attempts("none")), 3);
    assert.equal(delta(attempts("unregistered")), 1);
    assert.equal(delta(attempts("unavailable")), 1);
    assert.equal(
      delta('herald_device_tokens_disabled_total{reason="unregistered",deployment=""}'),
      1,
    );
    const count = (h: string) => `${h}_count{channel="push",deployment=""}`;
    assert.equal(delta(count("herald_provider_attempt_duration_seconds")), 5);
    assert.equal(delta(count("herald_enqueue_to_first_attempt_seconds")), 5);
    assert.equal(delta(count("herald_enqueue_to_sent_seconds")), 3);
    assert.ok(
      delta('herald_provider_attempt_duration_seconds_sum{channel="push",deployment=""}') > 0,
    );
    // Cumulative buckets: +Inf holds every observation.
    assert.equal(
      delta('herald_enqueue_to_sent_seconds_bucket{channel="push",deployment="",le="+Inf"}'),
      3,
    );
    assert.equal(delta(depth), 1, "only the retried delivery is still pending");
  } finally {
    await deps.close();
    await sql.end();
  }
});

Deno.test("metrics: the deployment a dispatcher runs as (HERALD_INSTANCE) labels its counters (a canary's series apart from the stable's)", async () => {
  const sql = adminSql();
  const deps = await testDispatcher({ instance: "canary-test" });
  try {
    await parkPending(sql);
    const user = await createUser(sql, "metrics-canary");
    await sql`insert into herald.device_tokens (user_id, token, platform)
      values (${user.id}, ${`metrics-canary-${user.id}`}, 'ios')`;
    await enqueue(sql, [user.id], { title: "Canary" });
    await dispatchBatch(deps);
    const after = await values();
    assert.ok(
      after.get(
        'herald_deliveries_total{channel="push",outcome="sent",deployment="canary-test"}',
      )! >=
        1,
    );
  } finally {
    await deps.close();
    await sql.end();
  }
});

Deno.test("metrics: cancelling counts cancelled deliveries and empties the queue depth it held", async () => {
  const sql = adminSql();
  try {
    await parkPending(sql);
    const user = await createUser(sql, "metrics-cancel");
    await sql`insert into herald.device_tokens (user_id, token, platform)
      values (${user.id}, ${`metrics-cancel-a-${user.id}`}, 'web'),
             (${user.id}, ${`metrics-cancel-b-${user.id}`}, 'web')`;
    const before = await values();
    const id = await enqueue(sql, [user.id], {
      title: "Cancel me",
      send_at: new Date(Date.now() + 3_600_000).toISOString(),
    });
    await sql`select herald.cancel_notification(${id})`;
    const after = await values();
    const key = 'herald_deliveries_total{channel="push",outcome="cancelled",deployment=""}';
    assert.equal(after.get(key)! - (before.get(key) ?? 0), 2);
    const depth = 'herald_queue_depth{channel="push",lane="1"}';
    assert.equal(after.get(depth), before.get(depth));
  } finally {
    await sql.end();
  }
});

Deno.test("metrics: status counts kept by triggers equal the outbox, in one snapshot, after inserts, updates, cancels and deletes", async () => {
  const sql = adminSql();
  try {
    const user = await createUser(sql, "metrics-exact");
    await sql`insert into herald.device_tokens (user_id, token, platform)
      values (${user.id}, ${`metrics-exact-${user.id}`}, 'android')`;
    await enqueue(sql, [user.id], { title: "Exact" });
    await sql`update herald.deliveries set status = 'dead' where recipient_id = ${user.id}`;
    await sql`delete from auth.users where id = ${user.id}`; // deliveries keep, recipient set null
    await sql`delete from herald.notifications where id in (
      select notification_id from herald.deliveries where status = 'dead' limit 3)`;
    const mismatches = await sql.begin("isolation level repeatable read", async (tx) =>
      await tx`
        with counted as (
          select channel, lane, status, sum(n) as n from herald.delivery_status_counts
          group by 1, 2, 3 having sum(n) <> 0
        ), actual as (
          select channel, lane, status, count(*) as n from herald.deliveries group by 1, 2, 3
        )
        select * from counted c full join actual a using (channel, lane, status)
        where c.n is distinct from a.n`);
    assert.deepEqual([...mismatches], []);
  } finally {
    await sql.end();
  }
});

Deno.test("metrics: rows of connections that ended are folded into shard 0 and every total is unchanged", async () => {
  const admin = adminSql();
  const writer = createSql({ url: stack.dbUrl, max: 1, applicationName: "herald-fold-test" });
  try {
    const user = await createUser(admin, "metrics-fold");
    await admin`insert into herald.device_tokens (user_id, token, platform)
      values (${user.id}, ${`metrics-fold-${user.id}`}, 'android')`;
    await writer`select * from herald.enqueue(${[user.id]}::uuid[], ${
      writer.json({ title: "Fold" })
    })`;
    const [{ pid }] = await writer`select pg_backend_pid() as pid`;
    const totals = () =>
      admin`select (select sum(n) from herald.delivery_status_counts)::bigint as statuses,
        (select sum(n) from herald.metric_counters)::bigint as counters,
        (select sum(n) from herald.metric_histograms)::bigint as histograms`;
    await writer.end();
    const [before] = await totals();
    // pg_stat_activity drops the backend shortly after the client leaves.
    for (let i = 0; i < 50; i++) {
      const [{ alive }] =
        await admin`select exists (select 1 from pg_stat_activity where pid = ${pid}) as alive`;
      if (!alive) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await admin`select herald.fold_metric_shards()`;
    const [{ left }] =
      await admin`select count(*)::int as left from herald.delivery_status_counts where shard = ${pid}`;
    assert.equal(left, 0, "the ended backend's rows are folded");
    const [after] = await totals();
    assert.deepEqual(after, before);
  } finally {
    await admin.end();
  }
});

Deno.test("metrics: a notify request is counted by route and status class with its duration", async () => {
  const sql = adminSql();
  try {
    const user = await createUser(sql, "metrics-notify");
    // Earlier tests' requests reach Redis up to a flush (1 s) after their answers:
    // start from counts that have stopped moving.
    const notifyCount = (m: Map<string, number>) =>
      [...m].filter(([k]) => k.startsWith('herald_http_requests_total{route="notify"'))
        .reduce((s, [, v]) => s + v, 0);
    let before = await values();
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 1_100));
      const again = await values();
      if (notifyCount(again) === notifyCount(before)) break;
      before = again;
    }
    const send = (body: unknown) =>
      fetch(`${stack.apiUrl}/functions/v1/notify`, {
        method: "POST",
        headers: apiHeaders({
          authorization: `Bearer ${user.token}`,
          "content-type": "application/json",
        }),
        body: JSON.stringify(body),
      });
    const ok = await send({ user_ids: [user.id], title: "Counted" });
    await ok.body?.cancel();
    assert.equal(Math.floor(ok.status / 100), 2);
    const bad = await send({ user_ids: "nope" });
    await bad.body?.cancel();
    assert.equal(bad.status, 422);
    // Counting happens after the answer: wait until it shows.
    let after = before;
    for (let i = 0; i < 50; i++) {
      after = await values();
      const all = [...after].filter(([k]) =>
        k.startsWith('herald_http_requests_total{route="notify"')
      )
        .reduce((s, [, v]) => s + v, 0);
      const was = [...before].filter(([k]) =>
        k.startsWith('herald_http_requests_total{route="notify"')
      )
        .reduce((s, [, v]) => s + v, 0);
      if (all - was >= 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const sum = (prefix: string, m: Map<string, number>) =>
      [...m].filter(([k]) => k.startsWith(prefix)).reduce((s, [, v]) => s + v, 0);
    assert.equal(
      sum('herald_http_requests_total{route="notify",code="2xx"', after) -
        sum('herald_http_requests_total{route="notify",code="2xx"', before),
      1,
    );
    assert.equal(
      sum('herald_http_requests_total{route="notify",code="4xx"', after) -
        sum('herald_http_requests_total{route="notify",code="4xx"', before),
      1,
    );
    assert.equal(
      sum('herald_http_request_duration_seconds_count{route="notify"', after) -
        sum('herald_http_request_duration_seconds_count{route="notify"', before),
      2,
    );
  } finally {
    await sql.end();
  }
});

Deno.test("metrics: request counts gather in the isolate and round-trip through Redis field by field (class, bucket, sum, 429 as rate limited)", async () => {
  const route = `t${crypto.randomUUID().replaceAll("-", "").slice(0, 8).replace(/\d/g, "x")}`;
  const count = createRequestCounter(redis, { flushMs: 60_000 });
  count({ route, instance: "stable", status: 201, seconds: 0.04 });
  count({ route, instance: "stable", status: 429, seconds: 0.001 });
  count({ route, instance: "stable", status: 503, seconds: 99 });
  assert.equal(
    (await readRequestCounts(redis)).find((r) => r.route === route),
    undefined,
    "nothing written before the flush",
  );
  await count.flush();
  const counts = (await readRequestCounts(redis)).find((r) => r.route === route)!;
  assert.deepEqual(counts.byClass, { "2xx": 1, "4xx": 1, "5xx": 1 });
  assert.equal(counts.limited, 1);
  assert.equal(counts.buckets[REQUEST_BUCKETS.indexOf(0.05)], 1, "0.04 s falls in le=0.05");
  assert.equal(counts.buckets[0], 1, "0.001 s falls in the first bucket");
  assert.equal(counts.buckets[REQUEST_BUCKETS.length], 1, "99 s falls past the last bound");
  assert.ok(Math.abs(counts.sum - 99.041) < 1e-9);
  // Hostile fields (another writer's garbage) are skipped, not exposed.
  await redis.hset(REQUESTS_KEY, { 'x"y|stable|c2xx': 1, [`${route}|stable|bogus`]: 5 });
  assert.ok(!(await readRequestCounts(redis)).some((r) => r.route.includes('"')));
  await redis.hdel(REQUESTS_KEY, 'x"y|stable|c2xx', `${route}|stable|bogus`);
});

Deno.test("metrics: counts Redis refused are kept and written with the next flush", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  listener.close();
  const route = `t${crypto.randomUUID().replaceAll("-", "").slice(0, 8).replace(/\d/g, "x")}`;
  // One client whose Redis is gone, then back: the same counter object keeps its counts.
  let target = createRedis({
    url: `http://127.0.0.1:${listener.addr.port}`,
    token: "t",
    timeoutMs: 300,
  });
  const flaky = { pipeline: () => target.pipeline() };
  const count = createRequestCounter(flaky, { flushMs: 60_000 });
  count({ route, instance: "stable", status: 200, seconds: 0.01 });
  await count.flush();
  target = redis;
  count({ route, instance: "stable", status: 200, seconds: 0.01 });
  await count.flush();
  const counts = (await readRequestCounts(redis)).find((r) => r.route === route)!;
  assert.deepEqual(counts.byClass, { "2xx": 2 });
});

Deno.test("metrics: a breaker opening is counted under its target kind", async () => {
  const before = await values();
  await countBreakerOpening(redis, "email:api.example.test", "canary");
  const after = await values();
  const key = 'herald_circuit_breaker_openings_total{kind="email",deployment="canary"}';
  assert.equal(after.get(key)! - (before.get(key) ?? 0), 1);
  const stable = 'herald_circuit_breaker_openings_total{kind="email",deployment="stable"}';
  assert.equal(after.get(stable) ?? 0, before.get(stable) ?? 0, "stable's count is its own");
});

Deno.test("metrics: with Postgres unreachable the scrape still answers, herald_up says so and Redis's part is there", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  listener.close();
  const sql = createSql({
    url: `postgresql://postgres:postgres@127.0.0.1:${listener.addr.port}/postgres`,
    max: 1,
    applicationName: "herald-metrics-test",
  });
  const lines: string[] = [];
  const app = createApp({
    sql,
    redis,
    keys: ["k".repeat(40)],
    build,
    timeoutMs: 1_000,
    log: (_level, message) => lines.push(message),
  });
  try {
    const response = await app.request("/metrics", {
      headers: { authorization: `Bearer ${"k".repeat(40)}` },
    });
    assert.equal(response.status, 200);
    const text = await response.text();
    assert.match(text, /^herald_up\{source="postgres"\} 0$/m);
    assert.match(text, /^herald_up\{source="redis"\} 1$/m);
    assert.doesNotMatch(text, /^herald_queue_depth/m);
    assert.match(text, /^herald_circuit_breakers\{/m);
    assert.match(
      text,
      /^herald_build_info\{version="1\.2\.3",git_sha="abcdef1",deployment="test"\} 1$/m,
    );
    assert.ok(lines.includes("metrics: postgres unreadable"));
    assert.equal(await promtoolCheck(text), "");
  } finally {
    await sql.end();
  }
});

Deno.test("metrics: without Redis configured there is no herald_redis_up (nothing to alert on) and the database's part is there", async () => {
  const sql = createSql({ url: stack.dbUrl, max: 2, applicationName: "herald-metrics-test" });
  const app = createApp({ sql, keys: ["k".repeat(40)], build, log: () => {} });
  try {
    const text = await (await app.request("/metrics", {
      headers: { authorization: `Bearer ${"k".repeat(40)}` },
    })).text();
    assert.doesNotMatch(text, /^herald_redis_up/m);
    assert.doesNotMatch(text, /^herald_up\{source="redis"\}/m);
    assert.match(text, /^herald_queue_depth\{channel="push",lane="0"\} \d+$/m);
  } finally {
    await sql.end();
  }
});

Deno.test("metrics: error classes stay a bounded set whatever a provider answers", () => {
  assert.equal(errorClass("sent", undefined), "none");
  assert.equal(errorClass("expired", undefined), "expired");
  assert.equal(errorClass("failed", "UNREGISTERED"), "unregistered");
  assert.equal(errorClass("retry", "THIRD_PARTY_AUTH_ERROR"), "third_party_auth_error");
  assert.equal(errorClass("retry", "HTTP_503"), "http_5xx");
  assert.equal(errorClass("failed", "HTTP_404"), "http_4xx");
  assert.equal(errorClass("failed", "HTTP_999"), "other");
  assert.equal(errorClass("failed", "SOMETHING_A_RECEIVER_MADE_UP"), "other");
  assert.equal(errorClass("retry", undefined), "unknown");
});

Deno.test("metrics: the exposition escapes label values and help, and histograms are cumulative with +Inf", () => {
  const text = new Exposition("prometheus")
    .family("x_total", "counter", "line one\nback\\slash")
    .sample("x_total", { a: 'q"uote\\back\nline' }, 1)
    .family("h_seconds", "histogram", "h")
    .histogram("h_seconds", {}, [0.1, 1], [2, 0, 3], 4.5)
    .render();
  assert.match(text, /^# HELP x_total line one\\nback\\\\slash$/m);
  assert.match(text, /^x_total\{a="q\\"uote\\\\back\\nline"\} 1$/m);
  assert.match(text, /^h_seconds_bucket\{le="0\.1"\} 2$/m);
  assert.match(text, /^h_seconds_bucket\{le="1"\} 2$/m);
  assert.match(text, /^h_seconds_bucket\{le="\+Inf"\} 5$/m);
  assert.match(text, /^h_seconds_count 5$/m);
  assert.match(text, /^h_seconds_sum 4\.5$/m);
});

Deno.test("metrics: a counter that throws costs the answer nothing (logged, not a 500)", async () => {
  const lines: string[] = [];
  const app = createHttpApp("probe", (_level, message) => lines.push(message), {
    onAnswered: () => {
      throw new Error("counter broke");
    },
  });
  app.get("/", (c) => c.text("ok"));
  const response = await app.request("/probe");
  assert.equal(response.status, 200);
  assert.equal(await response.text(), "ok");
  assert.ok(lines.includes("a request could not be counted"));
});

Deno.test("metrics: a latency exactly on a bound counts in that bound's bucket (le), past the last in +Inf", async () => {
  const sql = adminSql();
  const writer = createSql({ url: stack.dbUrl, max: 1, applicationName: "herald-le-test" });
  const instance = `le-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await parkPending(sql);
    const user = await createUser(sql, "metrics-le");
    await sql`insert into herald.device_tokens (user_id, token, platform)
      select ${user.id}, 'le-' || i || '-' || ${user.id}, 'android' from generate_series(1, 4) i`;
    await enqueue(sql, [user.id], { title: "Bounds" });
    const claimed = await claimDue(writer, { limit: 10, leaseMs: 60_000 });
    assert.equal(claimed.length, 4);
    const latencies = [5, 10, 11, 30_001]; // = le 0.005, = le 0.01, le 0.025, +Inf
    await recordResults(
      writer,
      claimed.map((c, i) => ({
        id: c.id,
        createdAt: c.createdAt,
        lease: c.lease,
        attempt: c.attempt,
        status: "sent" as const,
        outcome: "sent" as const,
        latencyMs: latencies[i],
      })),
      { instance },
    );
    const rows = await sql`select bucket, sum(n)::int as n from herald.metric_histograms
      where instance = ${instance} and metric = 'attempt_duration' group by bucket order by bucket`;
    assert.deepEqual(rows.map((r) => [r.bucket, r.n]), [
      [ATTEMPT_BUCKETS.indexOf(0.005), 1],
      [ATTEMPT_BUCKETS.indexOf(0.01), 1],
      [ATTEMPT_BUCKETS.indexOf(0.025), 1],
      [ATTEMPT_BUCKETS.length, 1],
    ]);
  } finally {
    await writer.end();
    await sql.end();
  }
});
