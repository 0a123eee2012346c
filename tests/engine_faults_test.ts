/**
 * The delivery engine under faults, through the real database, Redis and
 * stand-ins: leases that run out, fresh dispatcher processes, slow
 * providers, failure rates, one failing customer among many, and probes.
 */
import assert from "node:assert/strict";
import { dispatchBatch } from "../supabase/functions/_shared/dispatch/dispatcher.ts";
import { createSql } from "../supabase/functions/_shared/db/sessions.ts";
import { runWorker } from "../supabase/functions/_shared/dispatch/worker.ts";
import { claimDue } from "../supabase/functions/_shared/outbox/outbox.ts";
import { createRedis } from "../supabase/functions/_shared/redis/client.ts";
import { createBreaker } from "../supabase/functions/_shared/resilience/breaker.ts";
import { testDispatcher } from "./support/dispatch.ts";
import { eventually, startDispatcher } from "./support/dispatcher_process.ts";
import { startTcpProxy } from "./support/tcp_proxy.ts";
import {
  adminSql,
  asService,
  createUser,
  enqueue,
  fakeControl,
  parkPending,
  stack,
} from "./support/stack.ts";

const FCM_TARGET = "fcm:herald-local";
const redis = createRedis({ url: stack.redisRestUrl, token: stack.redisRestToken });

async function addTokens(sql: ReturnType<typeof adminSql>, userId: string, count: number) {
  const tokens = Array.from({ length: count }, (_, i) => `faults-${userId}-${i}`);
  await sql`insert into herald.device_tokens (user_id, token, platform)
    select ${userId}, t, 'android' from unnest(${tokens}::text[]) t`;
  return tokens;
}

/** How often each of `tokens` reached the FCM stand-in. */
async function pushesPerToken(tokens: string[]): Promise<number[]> {
  const { requests } = await fakeControl("fcm", "requests");
  const seen = new Map<string, number>();
  for (const r of requests) {
    const token = r.body?.message?.token as string | undefined;
    if (token) seen.set(token, (seen.get(token) ?? 0) + 1);
  }
  return tokens.map((t) => seen.get(t) ?? 0);
}

Deno.test("outbox: a lease that ran out is claimed again only then, and its unreported attempt is logged as unknown", async () => {
  const sql = adminSql();
  try {
    await parkPending(sql);
    const user = await createUser(sql, "lease");
    await addTokens(sql, user.id, 1);
    const notificationId = await enqueue(sql, [user.id], { title: "Leased" });

    const [first] = await claimDue(sql, { limit: 10, leaseMs: 1_500, notificationId });
    assert.equal(first.attempt, 1);
    // The claimant "dies": nothing is written back. Until its lease ends nobody else may send.
    assert.deepEqual(await claimDue(sql, { limit: 10, leaseMs: 1_500, notificationId }), []);

    const [second] = await eventually("the lease to run out", async () => {
      const rows = await claimDue(sql, { limit: 10, leaseMs: 60_000, notificationId });
      return rows.length > 0 ? rows : undefined;
    });
    assert.equal(second.id, first.id);
    assert.equal(second.attempt, 2);
    const [row] = await sql`select locked_until, next_attempt_at from herald.deliveries
      where id = ${first.id}`;
    const claimedFirstUntil = new Date(first.lease.replace(" ", "T").replace(/\+00$/, "Z"));
    assert.ok(row.locked_until > claimedFirstUntil, "the new lease starts after the old one ended");
    const attempts = await sql`select attempt, outcome, error from herald.delivery_attempts
      where delivery_id = ${first.id} order by id`;
    assert.equal(attempts.length, 1);
    assert.equal(attempts[0].attempt, 1);
    assert.equal(attempts[0].outcome, "unknown");
    assert.match(attempts[0].error, /never reported its outcome/);
  } finally {
    await sql.end();
  }
});

Deno.test("dispatcher processes started fresh, webhook work already queued, sign every delivery", async () => {
  const sql = adminSql();
  const STARTS = 10;
  const PER_START = 12;
  try {
    await parkPending(sql);
    await fakeControl("webhook", "reset");
    const user = await createUser(sql, "fresh");
    const [endpoint] = await asService(
      sql,
      (tx) =>
        tx`select id from herald.create_webhook_endpoint(
        ${stack.fakes.webhook + "/fresh/" + user.id}, ${user.id})`,
    );
    for (let start = 0; start < STARTS; start++) {
      // Several notifications, so both overlapped rounds have work from their first query.
      for (let i = 0; i < PER_START; i++) {
        await enqueue(sql, [user.id], { title: `Fresh ${start}.${i}`, channels: ["webhook"] });
      }
      const dispatcher = await startDispatcher();
      try {
        await eventually("the queued webhooks to be settled", async () => {
          const [{ pending }] = await sql`select count(*)::integer as pending
            from herald.deliveries where webhook_endpoint_id = ${endpoint.id}
              and status = 'pending' and attempts = 0`;
          return pending === 0 ? true : undefined;
        });
      } finally {
        await dispatcher.stop();
      }
    }
    const rows = await sql`select status, last_error, count(*)::integer from herald.deliveries
      where webhook_endpoint_id = ${endpoint.id} group by status, last_error`;
    assert.deepEqual(
      rows.map((r) => [r.status, r.last_error, r.count]),
      [["sent", null, STARTS * PER_START]],
    );
  } finally {
    await fakeControl("webhook", "reset");
    await sql.end();
  }
});

Deno.test("breaker: 2 % failing at volume stays closed; 5 failures on a quiet target open it; a failing majority opens it", async () => {
  const prefix = `herald:test:${crypto.randomUUID()}:`;
  const breaker = createBreaker({ redis, prefix });
  const local = createBreaker({}); // the per-process fallback decides the same way
  for (const b of [breaker, local]) {
    for (let round = 0; round < 20; round++) {
      const state = await b.record("fcm:busy", { failures: 2, successes: 98, probe: false });
      assert.equal(state.state, "closed", `round ${round}: 2 % failures must not open it`);
    }
    assert.equal(
      (await b.record("fcm:quiet", { failures: 4, successes: 10, probe: false })).state,
      "closed",
    );
    assert.equal(
      (await b.record("fcm:quiet", { failures: 1, successes: 0, probe: false })).state,
      "open",
      "5 failures in the window open a target with few calls",
    );
    assert.equal(
      (await b.record("fcm:half", { failures: 40, successes: 70, probe: false })).state,
      "closed",
    );
    assert.equal(
      (await b.record("fcm:half", { failures: 40, successes: 0, probe: false })).state,
      "open",
      "80 of 150 calls failed: over the 50 % rate",
    );
  }
});

Deno.test("breaker: a provider-wide Retry-After opens it for that long, and a failed probe for at least that", async () => {
  const prefix = `herald:test:${crypto.randomUUID()}:`;
  const clock = { now: Date.now() };
  const breaker = createBreaker({ redis, prefix, cooldownMs: 30_000, now: () => clock.now });
  const state = await breaker.record("email:api.resend.com", {
    failures: 1,
    successes: 20,
    probe: false,
    retryAfterMs: 120_000,
  });
  assert.deepEqual(state, { state: "open", retryAt: clock.now + 120_000, opened: true });
  assert.deepEqual(await breaker.admit("email:api.resend.com"), {
    state: "open",
    retryAt: clock.now + 120_000,
  });
  clock.now += 120_000;
  assert.deepEqual(await breaker.admit("email:api.resend.com"), { state: "probe" });
  const reopened = await breaker.record("email:api.resend.com", {
    failures: 1,
    successes: 0,
    probe: true,
    retryAfterMs: 90_000,
  });
  assert.deepEqual(reopened, { state: "open", retryAt: clock.now + 90_000, opened: true });
});

Deno.test("dispatch: with 2 % of tokens always failing, the other 98 % go out in the same round; their retries never open the breaker", async () => {
  const sql = adminSql();
  // A short recent window, so the retries below come after it as after a backoff.
  const deps = await testDispatcher({}, { recentMs: 300 });
  try {
    await parkPending(sql);
    await fakeControl("fcm", "reset");
    const user = await createUser(sql, "rate");
    const tokens = await addTokens(sql, user.id, 250);
    const failing = tokens.filter((_, i) => i % 50 === 0);
    for (const token of failing) {
      await fakeControl("fcm", "tokens", { token, fcm_error: "UNAVAILABLE" });
    }
    await enqueue(sql, [user.id], { title: "Mostly fine" });
    const report = await dispatchBatch(deps);
    assert.equal(report.claimed, 250);
    assert.equal(report.sent, 245);
    assert.equal(report.retried, 5);
    assert.equal(report.deferred, 0, "5 failures among 250 calls must not open the breaker");
    assert.equal((await deps.breaker.admit(FCM_TARGET)).state, "closed");

    // Their retries come alone, with no healthy call beside them (five failures on a
    // quiet target would open it): they are the deliveries' trouble, not FCM's. They
    // spend their attempts, and a healthy push among them goes out.
    const healthy = await createUser(sql, "healthy");
    await addTokens(sql, healthy.id, 1);
    for (let attempt = 2; attempt <= 4; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 400)); // past the recent window
      await sql`update herald.deliveries set next_attempt_at = now()
        where recipient_id = ${user.id} and status = 'pending'`;
      const again = await dispatchBatch(deps);
      assert.equal(again.retried, 5, `attempt ${attempt}: ${JSON.stringify(again)}`);
      assert.equal(again.deferred, 0, `attempt ${attempt}: the breaker opened`);
      assert.equal((await deps.breaker.admit(FCM_TARGET)).state, "closed");
    }
    const rows = await sql`select attempts from herald.deliveries
      where recipient_id = ${user.id} and status = 'pending'`;
    assert.deepEqual(rows.map((r) => r.attempts), [4, 4, 4, 4, 4]);
    await enqueue(sql, [healthy.id], { title: "Healthy beside the poison" });
    await new Promise((resolve) => setTimeout(resolve, 400));
    await sql`update herald.deliveries set next_attempt_at = now()
      where recipient_id = ${user.id} and status = 'pending'`;
    const mixed = await dispatchBatch(deps);
    assert.equal(mixed.sent, 1, JSON.stringify(mixed));
    assert.equal(mixed.retried, 5);
  } finally {
    await fakeControl("fcm", "reset");
    await deps.close();
    await sql.end();
  }
});

Deno.test("dispatch: a failing webhook endpoint is held back by its own breaker; its neighbours on the same host are not", async () => {
  const sql = adminSql();
  const deps = await testDispatcher({}, { threshold: 3, cooldownMs: 60_000 });
  try {
    await parkPending(sql);
    await fakeControl("webhook", "reset");
    const tag = crypto.randomUUID();
    await fakeControl("webhook", "paths", { prefix: `/bad-${tag}`, status: 500 });
    const bad = await createUser(sql, "bad-tenant");
    const good = await createUser(sql, "good-tenant");
    const endpoint = async (user: { id: string }, path: string) => {
      const [row] = await asService(
        sql,
        (tx) =>
          tx`select id from herald.create_webhook_endpoint(${
            stack.fakes.webhook + path
          }, ${user.id})`,
      );
      return row.id as string;
    };
    const badId = await endpoint(bad, `/bad-${tag}`);
    const goodId = await endpoint(good, `/good-${tag}`);
    for (let i = 0; i < 10; i++) {
      await enqueue(sql, [bad.id, good.id], { title: `Tenants ${i}`, channels: ["webhook"] });
    }

    const first = await dispatchBatch(deps);
    assert.equal(first.claimed, 20);
    const statuses = async (
      id: string,
    ) => (await sql`select status, attempts, last_error from herald.deliveries
        where webhook_endpoint_id = ${id}`);
    assert.deepEqual((await statuses(goodId)).map((r) => r.status), Array(10).fill("sent"));
    assert.ok((await statuses(badId)).every((r) => r.status === "pending"));
    assert.equal((await deps.breaker.admit(`webhook:${badId}`)).state, "open");
    assert.equal((await deps.breaker.admit(`webhook:${goodId}`)).state, "closed");

    // Its retries come due while its breaker is open: no request reaches it, and waiting for
    // its own endpoint counts against each delivery, which backs off towards a dead letter.
    await fakeControl("webhook", "requests", undefined);
    await sql`update herald.deliveries set next_attempt_at = now()
      where webhook_endpoint_id = ${badId}`;
    const second = await dispatchBatch(deps);
    assert.equal(second.claimed, 10);
    assert.equal(second.retried, 10);
    const again = await statuses(badId);
    assert.ok(
      again.every((r) =>
        r.attempts === 2 && /circuit breaker for webhook:.* is open/.test(r.last_error)
      ),
    );
    const { requests } = await fakeControl("webhook", "requests");
    assert.equal(
      requests.filter((r: { path: string }) => r.path.startsWith(`/bad-${tag}`)).length,
      10,
      "only the first round's requests reached the failing endpoint",
    );

    // Its neighbour keeps receiving while the bad endpoint's breaker stays open.
    await enqueue(sql, [good.id], { title: "Still flowing", channels: ["webhook"] });
    assert.equal((await dispatchBatch(deps)).sent, 1);
  } finally {
    await fakeControl("webhook", "reset");
    await deps.close();
    await sql.end();
  }
});

Deno.test("dispatch: a poison token does not win every probe: the breaker closes on a healthy one", async () => {
  // A failed probe refunds its attempt and defers its delivery only by its own backoff, so
  // it is always the first due: probing with the first one probed with it forever.
  const sql = adminSql();
  const deps = await testDispatcher({}, { cooldownMs: 200 });
  try {
    await parkPending(sql);
    await fakeControl("fcm", "reset");
    const user = await createUser(sql, "poison");
    const tokens = await addTokens(sql, user.id, 20);
    await fakeControl("fcm", "tokens", { token: tokens[0], fcm_error: "UNAVAILABLE" });
    await enqueue(sql, [user.id], { title: "Behind a poison probe" });
    await deps.breaker.record(FCM_TARGET, {
      failures: 0,
      successes: 0,
      probe: false,
      retryAfterMs: 200,
    });
    let rounds = 0;
    let sent = 0;
    while (sent === 0 && rounds < 6) {
      await new Promise((resolve) => setTimeout(resolve, 250)); // past the cool-down
      await sql`update herald.deliveries d
        set next_attempt_at = case when t.token = ${tokens[0]}
          then now() - interval '1 minute' else now() end
        from herald.device_tokens t
        where d.recipient_id = ${user.id} and d.status = 'pending' and t.id = d.device_token_id`;
      sent = (await dispatchBatch(deps)).sent;
      rounds++;
    }
    assert.ok(sent > 0, `still open after ${rounds} probes`);
    const [{ n }] = await sql`select count(*)::int as n from herald.deliveries
      where recipient_id = ${user.id} and status = 'sent'`;
    assert.ok(n >= 19, `${n} sent`);
  } finally {
    await fakeControl("fcm", "reset");
    await deps.close();
    await sql.end();
  }
});

Deno.test("dispatch: a failed probe to a provider spends no attempt, and FCM's Retry-After on it holds the breaker open that long", async () => {
  const sql = adminSql();
  const deps = await testDispatcher({}, { threshold: 1, cooldownMs: 1 });
  try {
    await parkPending(sql);
    await fakeControl("fcm", "reset");
    await deps.breaker.record(FCM_TARGET, { failures: 1, successes: 0, probe: false });
    await new Promise((resolve) => setTimeout(resolve, 5)); // past the 1 ms cool-down
    await fakeControl("fcm", "behaviour", {
      responses: [{ fcm_error: "UNAVAILABLE", retry_after: 120 }],
    });
    const user = await createUser(sql, "probe");
    await addTokens(sql, user.id, 1);
    await enqueue(sql, [user.id], { title: "Probe" });

    const report = await dispatchBatch(deps);
    assert.equal(report.retried, 1);
    const [row] = await sql`select d.attempts, a.outcome, a.error_code
      from herald.deliveries d join herald.delivery_attempts a on a.delivery_id = d.id
      where d.recipient_id = ${user.id}`;
    assert.deepEqual(row, { attempts: 0, outcome: "retry", error_code: "UNAVAILABLE" });
    const admission = await deps.breaker.admit(FCM_TARGET);
    assert.equal(admission.state, "open");
    const openFor = admission.state === "open" ? admission.retryAt - Date.now() : 0;
    assert.ok(openFor > 110_000, `open for FCM's 120 s, not the cool-down: ${openFor} ms`);
  } finally {
    await fakeControl("fcm", "reset");
    await deps.close();
    await sql.end();
  }
});

Deno.test("a slow provider: a worker and a dispatch call every 500 ms send each push once, within the per-target limit", async () => {
  const sql = adminSql();
  const LEASE_MS = 3_000;
  const CONCURRENCY = 8;
  const PUSHES = 60;
  const env = {
    HERALD_LEASE_MS: String(LEASE_MS),
    HERALD_CONCURRENCY: String(CONCURRENCY),
    HERALD_BATCH_SIZE: "100",
    HERALD_WORKER_ROUNDS: "2",
  };
  // Each round alone: 100 pushes at 8 in flight and 900 ms each take 11 s, well past the 3 s lease.
  const deps = await testDispatcher({
    leaseMs: LEASE_MS,
    concurrency: CONCURRENCY,
    batchSize: 100,
  });
  let worker;
  let calling = true;
  try {
    await parkPending(sql);
    await fakeControl("fcm", "reset");
    await fakeControl("fcm", "behaviour", { latency_ms: 900 });
    const user = await createUser(sql, "slow");
    const tokens = await addTokens(sql, user.id, PUSHES);
    await enqueue(sql, [user.id], { title: "Slow provider" });

    worker = await startDispatcher(env);
    // What pg_cron does on Supabase: invoke the dispatch function on a schedule, beside the worker.
    const calls = (async () => {
      while (calling) {
        await dispatchBatch(deps);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    })();
    await eventually("every push to be sent", async () => {
      const [{ pending }] = await sql`select count(*)::integer as pending from herald.deliveries
        where recipient_id = ${user.id} and status <> 'sent'`;
      return pending === 0 ? true : undefined;
    }, 120_000);
    calling = false;
    await calls;

    const perToken = await pushesPerToken(tokens);
    assert.deepEqual(perToken.filter((n) => n !== 1), [], "no push was sent twice (or never)");
    const { max_in_flight } = await fakeControl("fcm", "requests");
    assert.ok(
      max_in_flight <= CONCURRENCY,
      `at most ${CONCURRENCY} sends in flight to FCM across both dispatchers, saw ${max_in_flight}`,
    );
    const [{ unknown }] = await sql`select count(*)::integer as unknown
      from herald.delivery_attempts a join herald.deliveries d on d.id = a.delivery_id
      where d.recipient_id = ${user.id} and a.outcome = 'unknown'`;
    assert.equal(unknown, 0, "no lease ran out with a send in flight");
  } finally {
    calling = false;
    await worker?.stop();
    await fakeControl("fcm", "reset");
    await deps.close();
    await sql.end();
  }
});

Deno.test("worker: work enqueued while its round is busy is claimed when the round ends, not at the next poll", async () => {
  const sql = adminSql();
  const deps = await testDispatcher();
  const stop = new AbortController();
  let worker: Promise<void> | undefined;
  try {
    await parkPending(sql);
    await fakeControl("fcm", "reset");
    await fakeControl("fcm", "behaviour", { latency_ms: 1_000 });
    const user = await createUser(sql, "wake");
    const [first, second] = await addTokens(sql, user.id, 2);
    await sql`update herald.device_tokens set user_id = ${(await createUser(sql, "wake-2")).id}
      where token = ${second}`;
    // One round at a time and a poll far beyond the test's patience: only the wake-up can help.
    worker = runWorker({ ...deps, log: () => {}, signal: stop.signal, rounds: 1, pollMs: 600_000 });
    await new Promise((resolve) => setTimeout(resolve, 200)); // listening
    await enqueue(sql, [user.id], { title: "First" });
    await eventually("the first push to be in flight", async () => {
      const [seen] = await pushesPerToken([first]);
      return seen > 0 ? true : undefined;
    });
    const [owner] = await sql`select user_id from herald.device_tokens where token = ${second}`;
    await enqueue(sql, [owner.user_id], { title: "Second, while the round is busy" });
    await eventually("the second push to be sent", async () => {
      const [row] = await sql`select status from herald.deliveries where target = ${second}`;
      return row?.status === "sent" ? true : undefined;
    }, 20_000);
  } finally {
    stop.abort();
    await worker;
    await fakeControl("fcm", "reset");
    await deps.close();
    await sql.end();
  }
});

Deno.test("worker: a database unreachable at start is polled through, not a crash; wake-ups come back with it", async () => {
  const proxy = startTcpProxy(stack.ports.postgres);
  const url = new URL(stack.dbUrl);
  url.port = String(proxy.port);
  const proxied = createSql({ url: url.href, max: 2, applicationName: "herald-worker-outage" });
  const deps = await testDispatcher({ sql: proxied });
  const logged: string[] = [];
  const stop = new AbortController();
  let worker: Promise<void> | undefined;
  try {
    await proxy.cut();
    // Before, the worker's LISTEN rejected out of runWorker and the dispatcher exited.
    worker = runWorker({
      ...deps,
      log: (_level, message) => logged.push(message),
      signal: stop.signal,
      rounds: 1,
      pollMs: 100,
    });
    await eventually(
      "the worker to say it polls",
      () =>
        Promise.resolve(
          logged.includes("outbox wake-ups unavailable: polling every 100 ms") ? true : undefined,
        ),
    );
    proxy.restore();
    await eventually(
      "the worker to listen again",
      () => Promise.resolve(logged.includes("outbox wake-ups restored") ? true : undefined),
      10_000,
    );
    assert.equal(
      logged.filter((m) => m.startsWith("outbox wake-ups unavailable")).length,
      1,
      "said once, not every round",
    );
  } finally {
    stop.abort();
    await worker;
    await deps.close();
    await proxied.end();
    // The guarded socket emits 'close' a timer turn late: let the ended pool's sockets run it.
    await new Promise((resolve) => setTimeout(resolve, 10));
    await proxy.close();
  }
});
