/**
 * `npm run chaos`: the delivery engine under faults, on a stack of its own
 * (the bench ports, data in `.data/chaos`), loopback only, every loop bounded
 * in count and time, everything it starts stopped again.
 *
 * Scenarios (each reports accepted, terminal, lost — must be 0 —, duplicates
 * seen by the stand-in and time to drain):
 * - `sigkill`: a worker killed with SIGKILL mid-drain; a second one finishes.
 * - `slow_fcm`: FCM answering after 9 s, 1,000 pushes, the worker plus the
 *   dispatch function called every 5 s (as pg_cron does): no push twice, at
 *   most the configured sends in flight.
 * - `error_rate`: 2 % of tokens always failing: the rest go out at full speed,
 *   and the failing ones' retries, arriving alone, never open the breaker.
 * - `noisy_neighbour`: one webhook endpoint answering 500 forever beside 20
 *   healthy endpoints on the same host.
 * - `redis_hang`: Redis stopped (SIGSTOP) under notify traffic: requests are
 *   still answered and rate-limited, without waiting on Redis.
 * - `slow_webhook`: one receiver answering after 12 s, 100 webhooks, the
 *   worker plus the dispatch function every 5 s: none twice, at most the
 *   endpoint's 16 in flight.
 * - `postgres_outage`: the worker's connection to Postgres cut for 5 s
 *   mid-drain (through a proxy), then restored.
 *
 * - `dispatcher_kill`: the same at the production lease (60 s): how soon a
 *   second worker sends again after a SIGKILL and its drain against an
 *   undisturbed one (the dead one's send slots and claims must come back
 *   within seconds, not a lease).
 * - `dispatcher_stop`: two workers drain 10,000 pushes (FCM 300 ms); one is
 *   SIGSTOPped for 12 s while it holds claims, then continued: the other
 *   takes its claims over, and its sends' timeouts on waking must not open
 *   the shared breaker (they are `DISPATCHER_STALLED`, no attempt spent).
 * - `fresh_outage`: 3,000 healthy pushes, then FCM answering 503 to
 *   everything with 500 new pushes: how soon the shared breaker opens and
 *   how many requests failed before it did.
 * - `postgres_stop`: Postgres stopped as a crash would (`pg_ctl stop -m
 *   immediate`) under notify calls through Kong and a worker's drain, and
 *   started again by the stack: no 500, no gateway error for the liveness
 *   route, no "nothing was accepted" for a notification that was saved, and
 *   each `outcome-unknown` settled by retrying with its Idempotency-Key.
 *
 * - `postgres_freeze`: Postgres frozen (SIGSTOP, every process of it) for
 *   10 s while two workers drain 6,000 pushes (FCM 300 ms), then continued:
 *   queries wait instead of failing, and no worker may take the other over
 *   for a silence that was the database's.
 *
 * `npm run chaos -- slow_fcm sigkill` runs only those. The last line is one
 * JSON object with every scenario's figures.
 *
 * @module
 */
import postgres from "postgres";
import { Redis } from "ioredis";
import { processTree, quantile, startBenchStack } from "./bench/support.ts";
import { functionEnvironment } from "./stack/stack.ts";
import { crashPostgres } from "./stack/postgres.ts";
import { startTcpProxy } from "../tests/support/tcp_proxy.ts";
import type { StackConfig } from "./stack/config.ts";
import { BREAKER_KEY_PREFIX } from "../supabase/functions/_shared/resilience/breaker.ts";

const log = (message: string) => console.error(`chaos: ${message}`);
Deno.env.set("HERALD_DATA_DIR", `${new URL("../", import.meta.url).pathname}.data/chaos`);
const bench = await startBenchStack(log);
const { stack, sql } = bench;
const results: Record<string, unknown> = {};
const scenarios: Record<string, () => Promise<Record<string, unknown>>> = {
  sigkill,
  slow_fcm: slowFcm,
  error_rate: errorRate,
  noisy_neighbour: noisyNeighbour,
  redis_hang: redisHang,
  slow_webhook: slowWebhook,
  postgres_outage: postgresOutage,
  dispatcher_kill: dispatcherKill,
  dispatcher_stop: dispatcherStop,
  fresh_outage: freshOutage,
  postgres_stop: postgresStop,
  postgres_freeze: postgresFreeze,
};
const workers = new Set<Deno.ChildProcess>();
try {
  const chosen = Deno.args.length > 0 ? Deno.args : Object.keys(scenarios);
  for (const name of chosen) {
    if (!scenarios[name]) {
      throw new Error(`unknown scenario ${name}; known: ${Object.keys(scenarios)}`);
    }
    await sql`update herald.deliveries set status = 'cancelled' where status = 'pending'`;
    await control(stack, "fcm", "reset");
    await control(stack, "webhook", "reset");
    await forgetBreakers(); // a scenario's open breaker is not the next one's
    log(`── ${name}`);
    const started = performance.now();
    results[name] = { ...(await scenarios[name]()), wall_s: seconds(performance.now() - started) };
    log(`${name}: ${JSON.stringify(results[name])}`);
  }
  console.log(JSON.stringify(results));
} finally {
  for (const worker of workers) await stopWorker(worker);
  await bench.stop();
}

async function sigkill() {
  const N = 3_000;
  await control(stack, "fcm", "behaviour", { latency_ms: 20 });
  const { tokens, notification } = await pushes(N, "sigkill");
  const env = { HERALD_LEASE_MS: "5000" };
  const victim = await startWorker(env);
  await until(async () => (await received(stack, "fcm")).total >= N / 4, 60_000);
  victim.kill("SIGKILL");
  await stopWorker(victim);
  const started = performance.now();
  const survivor = await startWorker(env);
  await drained(notification, 120_000);
  const drainMs = performance.now() - started;
  await stopWorker(survivor);
  return { ...(await outcome(notification, tokens)), drain_after_kill_s: seconds(drainMs) };
}

async function dispatcherKill() {
  const N = 10_000;
  await control(stack, "fcm", "behaviour", { latency_ms: 50 });
  const env = { HERALD_CONCURRENCY: "64" }; // the production lease (60 s)
  const quiet = await pushes(N, "undisturbed");
  let started = performance.now();
  const alone = await startWorker(env);
  await drained(quiet.notification, 300_000);
  const undisturbedMs = performance.now() - started;
  await stopWorker(alone);

  await control(stack, "fcm", "reset");
  await control(stack, "fcm", "behaviour", { latency_ms: 50 });
  const { tokens, notification } = await pushes(N, "killed");
  const victim = await startWorker(env);
  await until(async () => (await received(stack, "fcm")).total >= N / 4, 120_000);
  victim.kill("SIGKILL");
  await stopWorker(victim);
  const atKill = (await received(stack, "fcm")).total;
  started = performance.now();
  const survivor = await startWorker(env);
  await until(async () => (await received(stack, "fcm")).total > atKill + 100, 120_000);
  const resumedMs = performance.now() - started;
  await drained(notification, 300_000);
  const drainMs = performance.now() - started;
  await stopWorker(survivor);
  return {
    ...(await outcome(notification, tokens)),
    undisturbed_drain_s: seconds(undisturbedMs),
    sending_again_after_s: seconds(resumedMs),
    drain_after_kill_s: seconds(drainMs),
    drain_ratio: Math.round(drainMs / undisturbedMs * 100) / 100,
  };
}

async function dispatcherStop() {
  const N = 10_000;
  await control(stack, "fcm", "behaviour", { latency_ms: 300 });
  const quiet = await pushes(N, "unpaused");
  let started = performance.now();
  const pair = [await startWorker({}), await startWorker({})];
  await drained(quiet.notification, 300_000);
  const undisturbedMs = performance.now() - started;
  for (const worker of pair) await stopWorker(worker);

  await control(stack, "fcm", "reset");
  await control(stack, "fcm", "behaviour", { latency_ms: 300 });
  const { tokens, notification } = await pushes(N, "paused");
  started = performance.now();
  const paused = await startWorker({ HERALD_INSTANCE: "paused" });
  const other = await startWorker({});
  // Paused while it holds claims (its sends in flight), as SIGSTOP or a frozen VM would find it.
  await until(async () => {
    const [{ held }] = await sql`select count(*)::integer as held from herald.deliveries d
      join herald.dispatchers w on w.id = d.locked_by
      where w.instance = 'paused' and d.status = 'pending' and d.locked_until > now()`;
    return held > 0;
  }, 60_000);
  paused.kill("SIGSTOP");
  const redis = new Redis({ port: stack.ports.redis, lazyConnect: true });
  let opened = false;
  const watching = (async () => {
    while (performance.now() - started < 300_000) {
      if (await redis.hget(`${BREAKER_KEY_PREFIX}{fcm:herald-local}`, "open_until")) opened = true;
      const [{ pending }] = await sql`select count(*)::integer as pending
        from herald.deliveries where notification_id = ${notification} and status = 'pending'`;
      if (pending === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  // Longer than a send's timeout (10 s): every send it had in flight times out on waking.
  await new Promise((resolve) => setTimeout(resolve, 12_000));
  paused.kill("SIGCONT");
  await watching;
  redis.disconnect();
  await drained(notification, 300_000);
  const drainMs = performance.now() - started;
  await stopWorker(paused);
  await stopWorker(other);
  const [{ stalled }] = await sql`select count(*)::integer as stalled
    from herald.delivery_attempts a join herald.deliveries d on d.id = a.delivery_id
    where d.notification_id = ${notification} and a.error_code = 'DISPATCHER_STALLED'`;
  return {
    ...(await outcome(notification, tokens)),
    breaker_opened: opened,
    stalled_attempts: stalled,
    undisturbed_drain_s: seconds(undisturbedMs),
    drain_s: seconds(drainMs),
    drain_ratio: Math.round(drainMs / undisturbedMs * 100) / 100,
  };
}

async function postgresFreeze() {
  const N = 6_000;
  await control(stack, "fcm", "behaviour", { latency_ms: 300 });
  // Beating steadily for longer than the 6 s silence before the work comes:
  // each may judge the other when the database wakes.
  const pair = [await startWorker({}), await startWorker({})];
  await new Promise((resolve) => setTimeout(resolve, 8_000));
  const { tokens, notification } = await pushes(N, "frozen");
  const started = performance.now();
  // Both holding claims, sends in flight.
  await until(async () => {
    const [{ held }] = await sql`select count(distinct locked_by)::integer as held
      from herald.deliveries where notification_id = ${notification} and status = 'pending'
        and locked_until > now() and locked_by is not null`;
    return held === 2;
  }, 60_000);
  const postgresPid = bench.running.pidOf("postgres");
  if (postgresPid === undefined) throw new Error("the stack runs no Postgres");
  const frozen = await processTree(postgresPid);
  for (const pid of frozen) Deno.kill(pid, "SIGSTOP");
  await new Promise((resolve) => setTimeout(resolve, 10_000));
  for (const pid of frozen) Deno.kill(pid, "SIGCONT");
  await drained(notification, 300_000);
  const drainMs = performance.now() - started;
  for (const worker of pair) await stopWorker(worker);
  return { ...(await outcome(notification, tokens)), drain_s: seconds(drainMs) };
}

async function freshOutage() {
  await control(stack, "fcm", "behaviour", { latency_ms: 20 });
  const healthy = await pushes(3_000, "busy");
  const worker = await startWorker({});
  try {
    await drained(healthy.notification, 120_000);
    await control(stack, "fcm", "reset");
    await control(stack, "fcm", "behaviour", {
      latency_ms: 20,
      responses: [{ fcm_error: "UNAVAILABLE" }],
      repeat_last: true,
    });
    const started = performance.now();
    const { notification } = await pushes(500, "outage");
    const redis = new Redis({ port: stack.ports.redis, lazyConnect: true });
    let openedMs: number | undefined;
    try {
      await until(async () => {
        const openUntil = await redis.hget(`${BREAKER_KEY_PREFIX}{fcm:herald-local}`, "open_until");
        if (openUntil) openedMs = performance.now() - started;
        return openUntil !== null || performance.now() - started > 60_000;
      }, 70_000);
    } finally {
      redis.disconnect();
    }
    const failedBeforeOpen = (await received(stack, "fcm")).total;
    const [row] = await sql`select max(attempts)::integer as most_attempts,
        count(*) filter (where status = 'dead')::integer as dead
      from herald.deliveries where notification_id = ${notification}`;
    return {
      healthy_before: 3_000,
      opened_after_s: openedMs === undefined ? null : seconds(openedMs),
      failed_requests_before_open: failedBeforeOpen,
      dead: row.dead,
      most_attempts: row.most_attempts,
    };
  } finally {
    await stopWorker(worker);
  }
}

async function slowWebhook() {
  const N = 100;
  await control(stack, "webhook", "paths", { prefix: "/slow", latency_ms: 12_000 });
  const [user] = await sql`insert into auth.users (id, email)
    values (gen_random_uuid(), ${`slowhook-${crypto.randomUUID()}@example.test`}) returning id`;
  const [endpoint] = await asService((tx) =>
    tx`select id from herald.create_webhook_endpoint(
      ${stack.fakes.webhook + "/slow/" + user.id}, ${user.id})`
  );
  for (let i = 0; i < N; i++) {
    await enqueueAs([user.id], { title: `Slow ${i}`, channels: ["webhook"] });
  }
  const started = performance.now();
  const worker = await startWorker({});
  const scheduled = scheduleDispatch(100);
  await until(async () => {
    const [{ pending }] = await sql`select count(*)::integer as pending from herald.deliveries
      where webhook_endpoint_id = ${endpoint.id} and status = 'pending'`;
    return pending === 0;
  }, 600_000);
  const drainMs = performance.now() - started;
  const calls = await scheduled.stop();
  await stopWorker(worker);
  const { requests, max_in_flight } = await received(stack, "webhook");
  const perId = new Map<string, number>();
  for (const r of requests) {
    const id = r.headers["webhook-id"];
    if (id) perId.set(id, (perId.get(id) ?? 0) + 1);
  }
  const rows = await sql`select status, count(*)::integer from herald.deliveries
    where webhook_endpoint_id = ${endpoint.id} group by status`;
  const terminal = rows.filter((r) => r.status !== "pending").reduce((n, r) => n + r.count, 0);
  return {
    accepted: N,
    terminal,
    lost: N - terminal,
    statuses: Object.fromEntries(rows.map((r) => [r.status, r.count])),
    duplicates: [...perId.values()].filter((n) => n > 1).length,
    drain_s: seconds(drainMs),
    dispatch_calls: calls,
    max_in_flight,
    in_flight_limit: 16,
  };
}

async function postgresOutage() {
  const N = 3_000;
  await control(stack, "fcm", "behaviour", { latency_ms: 20 });
  const { tokens, notification } = await pushes(N, "pgdown");
  const proxy = startTcpProxy(stack.ports.postgres);
  try {
    const url = new URL(stack.dbUrl);
    url.port = String(proxy.port);
    const started = performance.now();
    const worker = await startWorker({ SUPABASE_DB_URL: url.href });
    await until(async () => (await received(stack, "fcm")).total >= N / 4, 60_000);
    await proxy.cut();
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    proxy.restore();
    const restored = performance.now();
    await drained(notification, 180_000);
    const drainMs = performance.now() - started;
    await stopWorker(worker);
    return {
      ...(await outcome(notification, tokens)),
      outage_s: 5,
      drain_after_restore_s: seconds(performance.now() - restored),
      drain_s: seconds(drainMs),
    };
  } finally {
    await proxy.close();
  }
}

async function postgresStop() {
  const N = 6_000; // about 25 s of drain: the stop falls in its middle
  await control(stack, "fcm", "behaviour", { latency_ms: 50 });
  const { tokens, notification } = await pushes(N, "pgstop");
  const [user] = await sql`insert into auth.users (id, email)
    values (gen_random_uuid(), ${`pgstop-api-${crypto.randomUUID()}@example.test`}) returning id`;
  await sql`insert into herald.device_tokens (user_id, token, platform)
    values (${user.id}, ${`pgstop-api-${user.id}`}, 'android')`;
  const worker = await startWorker({ HERALD_CONCURRENCY: "64" });
  try {
    await until(async () => (await received(stack, "fcm")).total >= N / 4, 60_000);
    const traffic = apiTraffic(user.id);
    await sleep(2_000);
    const sentAtStop = (await received(stack, "fcm")).total;
    const stopped = performance.now();
    await crashPostgres(stack);
    log("postgres stopped (immediate); the stack starts it again");
    await until(() => sql`select 1`.then(() => true, () => false), 60_000);
    const backMs = performance.now() - stopped;
    await sleep(5_000);
    const calls = await traffic.stop();
    await drained(notification, 180_000);

    // What each answer said against what the database holds.
    const saved = new Map<string, number>();
    for (
      const row of await sql`select title, count(*)::integer from herald.notifications
        where title like 'pgstop-api %' group by title`
    ) saved.set(row.title, row.count);
    const unknown = calls.notify.filter((c) => c.type === "outcome-unknown");
    for (const call of unknown) {
      const again = await notifyOnce(user.id, call.key);
      if (again.status !== 202) {
        throw new Error(`the retry of ${call.key} answered ${again.status}`);
      }
      saved.set(
        `pgstop-api ${call.key}`,
        (await sql`select count(*)::integer from
        herald.notifications where title = ${`pgstop-api ${call.key}`}`)[0].count,
      );
    }
    const statuses: Record<string, number> = {};
    for (const c of calls.notify) {
      const label = c.type ? `${c.status} ${c.type}` : String(c.status);
      statuses[label] = (statuses[label] ?? 0) + 1;
    }
    const refused = calls.notify.filter((c) => c.type === "database-unavailable");
    return {
      ...(await outcome(notification, tokens)),
      pushes_sent_at_stop: sentAtStop,
      postgres_back_after_s: seconds(backMs),
      notify_calls: calls.notify.length,
      notify_statuses: statuses,
      status_500: calls.notify.filter((c) => c.status === 500).length,
      gateway_errors: calls.notify.filter((c) => c.gateway).length +
        calls.health.filter((c) => c.gateway).length,
      accepted_lost: calls.notify.filter((c) => c.status < 300 && !saved.get(c.title)).length,
      refused_but_saved: refused.filter((c) => saved.get(c.title)).length,
      outcome_unknown: unknown.length,
      outcome_unknown_not_once: unknown.filter((c) => saved.get(c.title) !== 1).length,
      liveness_calls: calls.health.length,
      liveness_not_200: calls.health.filter((c) => c.status !== 200).length,
    };
  } finally {
    await stopWorker(worker);
  }
}

interface ApiCall {
  key: string;
  title: string;
  status: number;
  /** The problem type of a problem+json answer. */
  type?: string;
  /** A 5xx that is not Herald's problem+json: Kong's own (no upstream, timeout). */
  gateway: boolean;
}

/** Notify calls (4 clients, paced under Kong's limits) and liveness checks until stopped. */
function apiTraffic(userId: string) {
  let running = true;
  const notify: ApiCall[] = [];
  const health: ApiCall[] = [];
  const client = async () => {
    while (running) {
      notify.push(await notifyOnce(userId, crypto.randomUUID()));
      await sleep(200);
    }
  };
  const liveness = async () => {
    while (running) {
      const response = fetch(`${stack.apiUrl}/functions/v1/health`);
      health.push({ key: "", title: "", ...(await _answer(response)) });
      await sleep(100);
    }
  };
  const loops = Promise.all([client(), client(), client(), client(), liveness()]);
  return {
    stop: async () => {
      running = false;
      await loops;
      return { notify, health };
    },
  };
}

async function notifyOnce(userId: string, key: string): Promise<ApiCall> {
  const title = `pgstop-api ${key}`;
  const response = fetch(`${stack.apiUrl}/functions/v1/notify`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${stack.serviceRoleKey}`,
      apikey: stack.serviceRoleKey,
      "content-type": "application/json",
      "idempotency-key": key,
    },
    body: JSON.stringify({ user_ids: [userId], title }),
  });
  return { key, title, ...(await _answer(response)) };
}

/** Status and problem type of an answer; no answer at all (the gateway gone) is status 0. */
async function _answer(answer: Promise<Response>) {
  const response = await answer.catch(() => undefined);
  if (!response) return { status: 0, gateway: true };
  const problem = response.headers.get("content-type")?.startsWith("application/problem+json");
  const body = await response.text();
  const type = problem ? String(JSON.parse(body).type).split("/").pop() : undefined;
  return { status: response.status, type, gateway: response.status >= 500 && !problem };
}

async function slowFcm() {
  const N = 1_000;
  await control(stack, "fcm", "behaviour", { latency_ms: 9_000 });
  const { tokens, notification } = await pushes(N, "slow");
  const started = performance.now();
  const worker = await startWorker({});
  const scheduled = scheduleDispatch(200);
  await drained(notification, 600_000);
  const drainMs = performance.now() - started;
  const calls = await scheduled.stop();
  await stopWorker(worker);
  const { max_in_flight } = await received(stack, "fcm");
  return {
    ...(await outcome(notification, tokens)),
    drain_s: seconds(drainMs),
    dispatch_calls: calls,
    max_in_flight,
    in_flight_limit: 512,
  };
}

async function errorRate() {
  const N = 10_000;
  const { tokens, notification } = await pushes(N, "rate");
  const failing = tokens.filter((_, i) => i % 50 === 0);
  for (const token of failing) {
    await control(stack, "fcm", "tokens", { token, fcm_error: "UNAVAILABLE" });
  }
  const started = performance.now();
  // Short backoffs: the failing 2 % come back alone, several times, within the scenario.
  const worker = await startWorker({
    HERALD_BACKOFF_BASE_MS: "1000",
    HERALD_BACKOFF_CAP_MS: "4000",
  });
  await until(async () => {
    const [{ left }] = await sql`select count(*)::integer as left from herald.deliveries
      where notification_id = ${notification} and status = 'pending' and attempts = 0`;
    return left === 0;
  }, 120_000);
  const firstPassMs = performance.now() - started;
  // Their retries, with no healthy call beside them, must not open the breaker either.
  const redis = new Redis({ port: stack.ports.redis, lazyConnect: true });
  let openedDuringRetries = false;
  try {
    const watchUntil = performance.now() + 20_000;
    while (performance.now() < watchUntil) {
      if (await redis.hget(`${BREAKER_KEY_PREFIX}{fcm:herald-local}`, "open_until")) {
        openedDuringRetries = true;
      }
      await sleep(200);
    }
  } finally {
    redis.disconnect();
  }
  await stopWorker(worker);
  const [{ most_attempts }] = await sql`select max(attempts)::integer as most_attempts
    from herald.deliveries where notification_id = ${notification}`;
  const [row] = await sql`select count(*) filter (where status = 'sent')::integer as sent,
      count(*) filter (where status = 'pending')::integer as retrying,
      extract(epoch from max(sent_at) - min(sent_at))::float8 as sending_s
    from herald.deliveries where notification_id = ${notification}`;
  const [{ deferred }] = await sql`select count(*)::integer as deferred from herald.deliveries
    where notification_id = ${notification} and last_error like 'circuit breaker%'`;
  return {
    accepted: N,
    failing_tokens: failing.length,
    sent: row.sent,
    retrying: row.retrying,
    deferred_by_breaker: deferred,
    sends_per_s: Math.round(row.sent / Math.max(row.sending_s, 0.001)),
    first_pass_s: seconds(firstPassMs),
    breaker_opened_during_retries: openedDuringRetries,
    failing_most_attempts: most_attempts,
  };
}

async function noisyNeighbour() {
  const NEIGHBOURS = 20;
  const EACH = 20;
  await control(stack, "webhook", "paths", { prefix: "/noisy", status: 500 });
  const users = await sql`insert into auth.users (id, email)
    select gen_random_uuid(), 'tenant-' || i || '-' || gen_random_uuid() || '@example.test'
    from generate_series(0, ${NEIGHBOURS}) i returning id`;
  const ids = users.map((u) => u.id as string);
  const endpoints: string[] = [];
  for (const [i, id] of ids.entries()) {
    const path = i === 0 ? `/noisy/${id}` : `/tenant/${id}`;
    const [row] = await asService((tx) =>
      tx`select id from herald.create_webhook_endpoint(${stack.fakes.webhook + path}, ${id})`
    );
    endpoints.push(row.id);
  }
  const started = performance.now();
  const worker = await startWorker({});
  for (let round = 0; round < EACH; round++) {
    await enqueueAs(ids, { title: `Tenants ${round}`, channels: ["webhook"] });
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  await until(async () => {
    const [{ left }] = await sql`select count(*)::integer as left from herald.deliveries
      where webhook_endpoint_id = any (${endpoints.slice(1)}::uuid[]) and status = 'pending'`;
    return left === 0;
  }, 120_000);
  const neighboursMs = performance.now() - started;
  await stopWorker(worker);
  const [lat] = await sql`select count(*)::integer as sent,
      percentile_cont(array[0.5, 0.95]) within group (
        order by extract(epoch from sent_at - created_at) * 1000) as ms,
      max(extract(epoch from sent_at - created_at) * 1000) as max_ms
    from herald.deliveries
    where webhook_endpoint_id = any (${endpoints.slice(1)}::uuid[]) and status = 'sent'`;
  const [noisy] = await sql`select count(*)::integer as total,
      count(*) filter (where status = 'pending')::integer as backing_off,
      max(attempts)::integer as max_attempts
    from herald.deliveries where webhook_endpoint_id = ${endpoints[0]}`;
  const { requests } = await received(stack, "webhook");
  const noisyRequests =
    requests.filter((r: { path: string }) => r.path.startsWith("/noisy")).length;
  return {
    accepted: (NEIGHBOURS + 1) * EACH,
    neighbours_sent: lat.sent,
    neighbours_expected: NEIGHBOURS * EACH,
    lost: NEIGHBOURS * EACH - lat.sent,
    neighbour_p50_ms: round1(lat.ms[0]),
    neighbour_p95_ms: round1(lat.ms[1]),
    neighbour_max_ms: round1(lat.max_ms),
    noisy_deliveries: noisy.total,
    noisy_backing_off: noisy.backing_off,
    noisy_max_attempts: noisy.max_attempts,
    noisy_requests: noisyRequests,
    neighbours_drained_s: seconds(neighboursMs),
  };
}

async function redisHang() {
  const REQUESTS = 60;
  const [user] = await sql`insert into auth.users (id, email)
    values (gen_random_uuid(), ${`hang-${crypto.randomUUID()}@example.test`}) returning id`;
  await sql`insert into herald.device_tokens (user_id, token, platform)
    values (${user.id}, ${`hang-${user.id}`}, 'android')`;
  const notify = async () => {
    const started = performance.now();
    const response = await fetch(`${stack.apiUrl}/functions/v1/notify`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${stack.serviceRoleKey}`,
        apikey: stack.serviceRoleKey,
        "content-type": "application/json",
      },
      body: JSON.stringify({ user_ids: [user.id], title: "During a Redis hang" }),
    });
    await response.body?.cancel();
    return { status: response.status, ms: performance.now() - started };
  };
  const measure = async () => {
    const answers = [];
    for (let i = 0; i < REQUESTS; i++) answers.push(await notify());
    const ms = answers.map((a) => a.ms).sort((a, b) => a - b);
    const statuses: Record<string, number> = {};
    for (const a of answers) statuses[a.status] = (statuses[a.status] ?? 0) + 1;
    return { p50_ms: quantile(ms, 0.5), p95_ms: quantile(ms, 0.95), statuses };
  };
  const before = await measure();
  const redisPid = bench.running.pidOf("redis");
  if (!redisPid) throw new Error("no redis process in the chaos stack");
  Deno.kill(redisPid, "SIGSTOP");
  let during;
  try {
    during = await measure();
  } finally {
    Deno.kill(redisPid, "SIGCONT");
  }
  const [{ accepted, lost }] = await sql`select count(distinct n.id)::integer as accepted,
      count(*) filter (where d.id is null)::integer as lost
    from herald.notifications n left join herald.deliveries d on d.notification_id = n.id
    where n.title = 'During a Redis hang'`;
  return { before, during_hang: during, accepted, lost };
}

// ── helpers

async function forgetBreakers() {
  const redis = new Redis({ port: stack.ports.redis, lazyConnect: true });
  try {
    const keys = await redis.keys(`${BREAKER_KEY_PREFIX}*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}

/** Calls the dispatch function every 5 s (what pg_cron does), at most `max` times, until stopped. */
function scheduleDispatch(max: number) {
  let calls = 0;
  let calling = true;
  const loop = (async () => {
    while (calling && calls < max) {
      calls++;
      const response = await fetch(`${stack.apiUrl}/functions/v1/dispatch`, {
        method: "POST",
        headers: { authorization: `Bearer ${stack.serviceRoleKey}` },
      });
      await response.body?.cancel();
      await new Promise((resolve) => setTimeout(resolve, 5_000));
    }
  })();
  return {
    /** Stops calling; resolves with how many calls were made. */
    stop: async () => {
      calling = false;
      await loop;
      return calls;
    },
  };
}

/** Seeds `n` push deliveries in one notification, each to its own token. */
async function pushes(n: number, label: string) {
  const [user] = await sql`insert into auth.users (id, email)
    values (gen_random_uuid(), ${`${label}-${crypto.randomUUID()}@example.test`}) returning id`;
  const tokens = Array.from({ length: n }, (_, i) => `${label}-${user.id}-${i}`);
  await sql`insert into herald.device_tokens (user_id, token, platform)
    select ${user.id}, t, 'android' from unnest(${tokens}::text[]) t`;
  const notification = await enqueueAs([user.id], { title: label });
  return { tokens, notification };
}

async function enqueueAs(recipients: string[], content: Record<string, unknown>): Promise<string> {
  const [row] = await asService((tx) =>
    tx`select notification_id from herald.enqueue(
      ${recipients}::uuid[], ${tx.json(content as postgres.JSONValue)})`
  );
  return row.notification_id;
}

/** Runs `work` as the service role, as the functions' service paths do. */
async function asService(
  work: (tx: postgres.TransactionSql) => Promise<postgres.RowList<postgres.Row[]>>,
) {
  return await sql.begin(async (tx) => {
    await tx`select set_config('role', 'service_role', true),
      set_config('request.jwt.claims', '{"role":"service_role"}', true)`;
    return await work(tx);
  }) as postgres.RowList<postgres.Row[]>;
}

/** Every delivery of `notification` terminal. */
async function drained(notification: string, timeoutMs: number) {
  await until(async () => {
    const [{ pending }] = await sql`select count(*)::integer as pending from herald.deliveries
      where notification_id = ${notification} and status = 'pending'`;
    return pending === 0;
  }, timeoutMs);
}

/** Accepted, terminal, lost and duplicates of a push notification whose tokens are `tokens`. */
async function outcome(notification: string, tokens: string[]) {
  const rows = await sql`select status, count(*)::integer from herald.deliveries
    where notification_id = ${notification} group by status`;
  const terminal = rows.filter((r) => r.status !== "pending").reduce((n, r) => n + r.count, 0);
  const { requests, total } = await received(stack, "fcm");
  if (requests.length < total) {
    throw new Error(`the FCM stand-in kept ${requests.length} of ${total} requests`);
  }
  const seen = new Map<string, number>();
  for (const r of requests) {
    const token = r.body?.message?.token;
    if (typeof token === "string") seen.set(token, (seen.get(token) ?? 0) + 1);
  }
  const [{ unknown }] = await sql`select count(*)::integer as unknown
    from herald.delivery_attempts a join herald.deliveries d on d.id = a.delivery_id
    where d.notification_id = ${notification} and a.outcome = 'unknown'`;
  return {
    accepted: tokens.length,
    terminal,
    lost: tokens.length - terminal,
    statuses: Object.fromEntries(rows.map((r) => [r.status, r.count])),
    duplicates: tokens.filter((t) => (seen.get(t) ?? 0) > 1).length,
    never_received: tokens.filter((t) => !seen.has(t)).length,
    unknown_attempts: unknown,
  };
}

async function startWorker(env: Record<string, string>): Promise<Deno.ChildProcess> {
  const worker = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-prompt", "scripts/dispatcher.ts"],
    env: { ...(await functionEnvironment(stack, true)), ...env },
    cwd: stack.root,
    stdout: "null",
    stderr: "null",
  }).spawn();
  workers.add(worker);
  return worker;
}

async function stopWorker(worker: Deno.ChildProcess) {
  try {
    worker.kill("SIGTERM");
  } catch {
    // Already gone (killed by the scenario).
  }
  await worker.status;
  workers.delete(worker);
}

async function control(
  stack: StackConfig,
  fake: keyof StackConfig["fakes"],
  path: string,
  body?: unknown,
) {
  const response = await fetch(`${stack.fakes[fake]}/_control/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  await response.body?.cancel();
}

async function received(stack: StackConfig, fake: keyof StackConfig["fakes"]) {
  return await (await fetch(`${stack.fakes[fake]}/_control/requests`)).json();
}

async function until(done: () => Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function sleep(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function seconds(ms: number) {
  return Math.round(ms / 100) / 10;
}

function round1(value: number) {
  return Math.round(value * 10) / 10;
}
