/**
 * Dispatch rounds against the real database and Redis with the stand-ins as
 * providers: what each provider answer does to a delivery, Retry-After,
 * dead letters and replay, TTL expiry, breaker deferral, and the dispatch
 * function's door.
 */
import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { dispatchBatch } from "../supabase/functions/_shared/dispatch/dispatcher.ts";
import { testDispatcher } from "./support/dispatch.ts";
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

async function addTokens(sql: ReturnType<typeof adminSql>, userId: string, tokens: string[]) {
  await sql`insert into herald.device_tokens (user_id, token, platform)
    select ${userId}, t, 'android' from unnest(${tokens}::text[]) t`;
}

Deno.test("dispatch: each FCM error code leads to its action (send, retry, slow retry, fail, disable token)", async () => {
  const sql = adminSql();
  const deps = await testDispatcher();
  try {
    await parkPending(sql);
    await fakeControl("fcm", "reset");
    const user = await createUser(sql, "codes");
    // `as`: the code Herald records when it differs from the one the stand-in answers.
    const expected: Record<string, { status: string; disabled: boolean; as?: string }> = {
      OK: { status: "sent", disabled: false },
      NOT_FOUND: { status: "failed", disabled: true, as: "UNREGISTERED" },
      INVALID_REGISTRATION_TOKEN: { status: "failed", disabled: true },
      APNS_AUTH_ERROR: { status: "failed", disabled: false, as: "THIRD_PARTY_AUTH_ERROR" },
      UNREGISTERED: { status: "failed", disabled: true },
      SENDER_ID_MISMATCH: { status: "failed", disabled: true },
      INVALID_ARGUMENT: { status: "failed", disabled: false },
      THIRD_PARTY_AUTH_ERROR: { status: "failed", disabled: false },
      QUOTA_EXCEEDED: { status: "pending", disabled: false },
      UNAVAILABLE: { status: "pending", disabled: false },
      INTERNAL: { status: "pending", disabled: false },
    };
    const token = (code: string) => `codes-${code}-${user.id}`;
    await addTokens(sql, user.id, Object.keys(expected).map(token));
    for (const code of Object.keys(expected).filter((c) => c !== "OK")) {
      await fakeControl("fcm", "tokens", { token: token(code), fcm_error: code });
    }
    await enqueue(sql, [user.id], { title: "Codes" });

    const startedAt = Date.now();
    const report = await dispatchBatch(deps);
    assert.equal(report.claimed, Object.keys(expected).length);

    const rows = await sql`
      select d.target, d.status, d.attempts, d.next_attempt_at, d.last_error, t.disabled_at,
        t.disabled_reason, a.outcome, a.error_code
      from herald.deliveries d
      join herald.device_tokens t on t.id = d.device_token_id
      join herald.delivery_attempts a on a.delivery_id = d.id
      where d.recipient_id = ${user.id}`;
    for (const [code, want] of Object.entries(expected)) {
      const row = rows.find((r) => r.target === token(code));
      assert.ok(row, code);
      assert.equal(row.status, want.status, code);
      assert.equal(row.disabled_at !== null, want.disabled, `${code}: token disabled?`);
      if (want.disabled) assert.equal(row.disabled_reason, want.as ?? code);
      if (code !== "OK") assert.equal(row.error_code, want.as ?? code);
      if (row.last_error) {
        const [first, ...rest] = String(row.last_error).split(": ");
        assert.ok(!rest.includes(first), `${code}: last_error repeats itself: ${row.last_error}`);
      }
      if (code === "QUOTA_EXCEEDED") {
        assert.ok(
          row.next_attempt_at.getTime() >= startedAt + 60_000,
          "QUOTA_EXCEEDED waits at least 60 s",
        );
      }
    }

    // Later notifications skip the disabled tokens.
    await enqueue(sql, [user.id], { title: "Codes again" });
    const [{ count }] = await sql`
      select count(*)::integer from herald.deliveries d join herald.notifications n
        on n.id = d.notification_id where n.title = 'Codes again' and d.recipient_id = ${user.id}`;
    assert.equal(count, Object.values(expected).filter((e) => !e.disabled).length);
  } finally {
    await fakeControl("fcm", "reset");
    await deps.close();
    await sql.end();
  }
});

Deno.test("dispatch: Retry-After is honoured in seconds and as an HTTP date", async () => {
  const sql = adminSql();
  const deps = await testDispatcher();
  try {
    for (
      const retryAfter of [
        { header: "120", atLeastMs: 120_000 },
        { header: new Date(Date.now() + 300_000).toUTCString(), atLeastMs: 298_000 },
      ]
    ) {
      await parkPending(sql);
      await fakeControl("fcm", "reset");
      await fakeControl("fcm", "behaviour", {
        responses: [{ status: 503, headers: { "retry-after": retryAfter.header } }],
      });
      const user = await createUser(sql, "retry-after");
      await addTokens(sql, user.id, [`retry-after-${user.id}`]);
      await enqueue(sql, [user.id], { title: "Later" });
      const startedAt = Date.now();
      const report = await dispatchBatch(deps);
      assert.equal(report.retried, 1);
      const [row] = await sql`select status, next_attempt_at from herald.deliveries
        where recipient_id = ${user.id}`;
      assert.equal(row.status, "pending");
      assert.ok(
        row.next_attempt_at.getTime() >= startedAt + retryAfter.atLeastMs,
        `Retry-After ${retryAfter.header}: next attempt ${row.next_attempt_at.toISOString()}`,
      );
    }
  } finally {
    await fakeControl("fcm", "reset");
    await deps.close();
    await sql.end();
  }
});

Deno.test("dispatch: attempts exhausted → dead with the reason; the service role lists and replays it", async () => {
  const sql = adminSql();
  const deps = await testDispatcher({ maxAttempts: 2 });
  try {
    await parkPending(sql);
    await fakeControl("fcm", "reset");
    await fakeControl("fcm", "behaviour", {
      responses: [{ fcm_error: "UNAVAILABLE" }],
      repeat_last: true,
    });
    const user = await createUser(sql, "dead");
    await addTokens(sql, user.id, [`dead-${user.id}`]);
    const notificationId = await enqueue(sql, [user.id], { title: "Doomed" });

    assert.equal((await dispatchBatch(deps)).retried, 1);
    // The backoff has passed (made due now rather than waited for).
    await sql`update herald.deliveries set next_attempt_at = now() where recipient_id = ${user.id}`;
    assert.equal((await dispatchBatch(deps)).dead, 1);
    const [dead] = await sql`select id, status, attempts, last_error from herald.deliveries
      where recipient_id = ${user.id}`;
    assert.equal(dead.status, "dead");
    assert.equal(dead.attempts, 2);
    assert.match(dead.last_error, /^attempts exhausted; last: FCM is temporarily unavailable/);

    const dispatch = (path: string, init: RequestInit = {}) =>
      fetch(`${stack.apiUrl}/functions/v1/dispatch${path}`, {
        ...init,
        headers: {
          authorization: `Bearer ${stack.serviceRoleKey}`,
          "content-type": "application/json",
        },
      });
    const listed = await (await dispatch(`/dead-letters?notification_id=${notificationId}`)).json();
    assert.deepEqual(listed.dead_letters.map((d: { id: string }) => d.id), [dead.id]);
    assert.match(listed.dead_letters[0].last_error, /attempts exhausted/);

    const replay = await dispatch("/dead-letters/replay", {
      method: "POST",
      body: JSON.stringify({ delivery_ids: [dead.id] }),
    });
    assert.deepEqual(await replay.json(), { replayed: 1, statuses: ["dead"] });
    const [{ gone }] = await sql`select herald.uuid_v7(now() - interval '40 days') as gone`;
    const late = await dispatch("/dead-letters/replay", {
      method: "POST",
      body: JSON.stringify({ notification_id: gone }),
    });
    assert.equal(late.status, 404, "a notification past retention");
    assert.match((await late.json()).type, /past-retention$/);
    const unlisted = await dispatch(`/dead-letters?notification_id=${gone}`);
    assert.equal(
      unlisted.status,
      404,
      "its dead letters are past retention too, not an empty page",
    );
    assert.match((await unlisted.json()).detail, /created at .*nothing of it is left to list/);
    const none = await dispatch(`/dead-letters?notification_id=${crypto.randomUUID()}`);
    assert.deepEqual((await none.json()).dead_letters, [], "an id that does not say when: a page");
    const [revived] =
      await sql`select status, attempts from herald.deliveries where id = ${dead.id}`;
    assert.deepEqual(revived, { status: "pending", attempts: 0 });

    await fakeControl("fcm", "reset");
    assert.equal((await dispatchBatch(deps)).sent, 1);
    const attempts = await sql`select outcome from herald.delivery_attempts
      where delivery_id = ${dead.id} order by id`;
    assert.deepEqual(attempts.map((a) => a.outcome), ["retry", "dead", "sent"]);
  } finally {
    await fakeControl("fcm", "reset");
    await deps.close();
    await sql.end();
  }
});

Deno.test("dispatch: a delivery whose time to live has passed expires instead of arriving late", async () => {
  const sql = adminSql();
  const deps = await testDispatcher();
  try {
    await parkPending(sql);
    await fakeControl("fcm", "reset");
    const user = await createUser(sql, "ttl");
    await addTokens(sql, user.id, [`ttl-${user.id}`]);
    const id = await enqueue(sql, [user.id], { title: "Too late", ttl_seconds: 60 });
    await sql`update herald.notifications set expires_at = now() - interval '1 second'
      where id = ${id}`;
    const report = await dispatchBatch(deps);
    assert.equal(report.expired, 1);
    assert.equal((await fakeControl("fcm", "requests")).total, 0);
    const [row] = await sql`select status from herald.deliveries where recipient_id = ${user.id}`;
    assert.equal(row.status, "expired");
  } finally {
    await deps.close();
    await sql.end();
  }
});

Deno.test("dispatch: ttl_seconds 0 is now or never: sent once with TTL 0s, however late it is claimed", async () => {
  const sql = adminSql();
  const deps = await testDispatcher();
  try {
    await parkPending(sql);
    await fakeControl("fcm", "reset");
    const user = await createUser(sql, "ttl0");
    await addTokens(sql, user.id, [`ttl0-${user.id}`]);
    await enqueue(sql, [user.id], { title: "Now", ttl_seconds: 0 });
    const report = await dispatchBatch(deps);
    assert.equal(report.sent, 1, JSON.stringify(report));
    const { requests } = await fakeControl("fcm", "requests");
    assert.equal(requests.length, 1);
    assert.equal(requests[0].body.message.android.ttl, "0s");
  } finally {
    await deps.close();
    await sql.end();
  }
});

Deno.test("dispatch: ttl_seconds 0 that fails its one attempt expires instead of retrying", async () => {
  const sql = adminSql();
  const deps = await testDispatcher();
  try {
    await parkPending(sql);
    await fakeControl("fcm", "reset");
    await fakeControl("fcm", "behaviour", { responses: [{ fcm_error: "UNAVAILABLE" }] });
    const user = await createUser(sql, "ttl0-fail");
    await addTokens(sql, user.id, [`ttl0-fail-${user.id}`]);
    await enqueue(sql, [user.id], { title: "Now or never", ttl_seconds: 0 });
    const report = await dispatchBatch(deps);
    assert.equal(report.expired, 1, JSON.stringify(report));
    const [row] = await sql`select status, attempts, last_error from herald.deliveries
      where recipient_id = ${user.id}`;
    assert.equal(row.status, "expired");
    assert.equal(row.attempts, 1);
    assert.match(row.last_error, /now or never/);
  } finally {
    await fakeControl("fcm", "reset");
    await deps.close();
    await sql.end();
  }
});

Deno.test("dispatch: an open breaker defers deliveries to the end of the cool-down without spending attempts", async () => {
  const sql = adminSql();
  const deps = await testDispatcher();
  try {
    await parkPending(sql);
    await fakeControl("fcm", "reset");
    const opened = await deps.breaker.record(FCM_TARGET, {
      failures: 5,
      successes: 0,
      probe: false,
    });
    assert.equal(opened.state, "open");
    const user = await createUser(sql, "deferred");
    await addTokens(sql, user.id, [`deferred-1-${user.id}`, `deferred-2-${user.id}`]);
    await enqueue(sql, [user.id], { title: "Wait" });

    const report = await dispatchBatch(deps);
    assert.equal(report.deferred, 2);
    assert.equal((await fakeControl("fcm", "requests")).total, 0, "FCM saw nothing");
    const rows = await sql`select d.status, d.attempts, d.next_attempt_at,
        (select count(*)::integer from herald.delivery_attempts a where a.delivery_id = d.id) as logged
      from herald.deliveries d where recipient_id = ${user.id}`;
    for (const row of rows) {
      assert.equal(row.status, "pending");
      assert.equal(row.attempts, 0, "no attempt spent");
      assert.equal(row.logged, 0, "nothing was attempted");
      assert.equal(row.next_attempt_at.getTime(), (opened as { retryAt: number }).retryAt);
    }
  } finally {
    await deps.close();
    await sql.end();
  }
});

Deno.test("dispatch: a round without shared slots (notify's inline attempt) sends all at once, not from an adaptive start", async () => {
  const sql = adminSql();
  const deps = await testDispatcher();
  try {
    await parkPending(sql);
    await fakeControl("fcm", "reset");
    await fakeControl("fcm", "behaviour", { latency_ms: 200 });
    const user = await createUser(sql, "inline-width");
    const tokens = Array.from({ length: 40 }, (_, i) => `inline-width-${i}-${user.id}`);
    await addTokens(sql, user.id, tokens);
    await enqueue(sql, [user.id], { title: "All at once" });

    const report = await dispatchBatch({ ...deps, slots: undefined, concurrency: 100 });
    assert.equal(report.sent, 40);
    // An adaptive limit starting at 16 would have sent 16, then 16 more, then 8.
    assert.equal((await fakeControl("fcm", "requests")).max_in_flight, 40);
  } finally {
    await fakeControl("fcm", "reset");
    await deps.close();
    await sql.end();
  }
});

Deno.test("dispatch function: refuses calls without the dispatch key, runs one round with it", async () => {
  const url = `${stack.apiUrl}/functions/v1/dispatch`;
  const none = await fetch(url, { method: "POST" });
  assert.equal(none.status, 401);
  assert.equal(none.headers.get("content-type"), "application/problem+json");
  await none.body?.cancel();
  const wrong = await fetch(url, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.anonKey}` },
  });
  assert.equal(wrong.status, 403);
  await wrong.body?.cancel();
  const sql = adminSql();
  try {
    await parkPending(sql);
    const ok = await fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.serviceRoleKey}` },
    });
    assert.equal(ok.status, 200);
    const report = await ok.json();
    assert.equal(report.claimed, 0);
    assert.equal(report.breaker_degraded, false);
  } finally {
    await sql.end();
  }
});

Deno.test("dispatch: e-mail goes out once per delivery id; webhooks arrive signed, through a secret rotation", async () => {
  const sql = adminSql();
  const deps = await testDispatcher();
  try {
    await parkPending(sql);
    await fakeControl("email", "reset");
    await fakeControl("webhook", "reset");
    const user = await createUser(sql, "channels");
    const [endpoint] = await asService(sql, (tx) =>
      tx`select * from herald.create_webhook_endpoint(
        ${stack.fakes.webhook + "/hooks/herald"}, ${user.id})`);
    const [rotated] = await asService(
      sql,
      (tx) => tx`select * from herald.rotate_webhook_secret(${endpoint.id}, interval '1 hour')`,
    );
    assert.notEqual(rotated.secret, endpoint.secret);

    await enqueue(sql, [user.id], {
      title: "Invoice ready",
      body: "Your invoice is ready.",
      channels: ["email", "webhook"],
      overrides: { email: { html: "<p>Your invoice is <b>ready</b>.</p>" } },
    });
    const report = await dispatchBatch(deps);
    const deliveries = await sql`select id, channel, status, last_error from herald.deliveries
      where recipient_id = ${user.id}`;
    assert.equal(report.sent, 2, JSON.stringify(deliveries));
    const idOf = (channel: string) => deliveries.find((d) => d.channel === channel)!.id;

    const { requests: mails } = await fakeControl("email", "requests");
    assert.equal(mails.length, 1);
    assert.equal(mails[0].headers["idempotency-key"], idOf("email"));
    assert.deepEqual(mails[0].body.to, [user.email]);
    assert.equal(mails[0].body.subject, "Invoice ready");
    assert.equal(mails[0].body.text, "Your invoice is ready.");
    assert.equal(mails[0].body.html, "<p>Your invoice is <b>ready</b>.</p>");

    const { requests: hooks } = await fakeControl("webhook", "requests");
    assert.equal(hooks.length, 1);
    const [hook] = hooks;
    assert.equal(hook.path, "/hooks/herald");
    assert.equal(hook.headers["webhook-id"], idOf("webhook"));
    assert.equal(hook.headers["webhook-signature"].split(" ").length, 2, "old and new secret sign");
    for (const secret of [rotated.secret, endpoint.secret]) {
      const verified = new Webhook(secret).verify(hook.raw, hook.headers) as {
        data: { title: string };
      };
      assert.equal(verified.data.title, "Invoice ready");
    }
  } finally {
    await deps.close();
    await sql.end();
  }
});

Deno.test("dispatch: a webhook endpoint answering 410 is disabled and gets nothing more", async () => {
  const sql = adminSql();
  const deps = await testDispatcher();
  try {
    await parkPending(sql);
    await fakeControl("webhook", "reset");
    await fakeControl("webhook", "behaviour", { responses: [{ status: 410 }] });
    const user = await createUser(sql, "gone");
    const [endpoint] = await asService(
      sql,
      (tx) =>
        tx`select * from herald.create_webhook_endpoint(${
          stack.fakes.webhook + "/gone"
        }, ${user.id})`,
    );
    const first = await enqueue(sql, [user.id], { title: "First", channels: ["webhook"] });
    const report = await dispatchBatch(deps);
    const [row] = await sql`select disabled_at, disabled_reason from herald.webhook_endpoints
      where id = ${endpoint.id}`;
    const deliveries = await sql`select status, last_error from herald.deliveries
      where notification_id = ${first}`;
    assert.equal(report.failed, 1, JSON.stringify({ report, deliveries }));
    assert.ok(row.disabled_at, JSON.stringify({ report, deliveries }));
    assert.equal(row.disabled_reason, "GONE: the endpoint answered 410 Gone");
    await enqueue(sql, [user.id], { title: "Second", channels: ["webhook"] });
    const [{ count }] = await sql`select count(*)::integer from herald.deliveries
      where recipient_id = ${user.id}`;
    assert.equal(count, 1, "no delivery is created for a disabled endpoint");
  } finally {
    await fakeControl("webhook", "reset");
    await deps.close();
    await sql.end();
  }
});

Deno.test("dispatch: webhooks to private, loopback and metadata addresses are refused without a request", async () => {
  const sql = adminSql();
  const deps = await testDispatcher();
  try {
    await parkPending(sql);
    await fakeControl("webhook", "reset");
    const port = new URL(stack.fakes.webhook).port;
    const hostile = [
      `http://localhost:${port}/x`,
      `http://[::1]:${port}/x`,
      `http://127.0.0.2:${port}/x`,
      "http://169.254.169.254/latest/meta-data/",
      "http://10.0.0.5/internal",
      "http://100.64.0.1/cgnat",
      "http://metadata.google.internal/computeMetadata/v1/",
    ];
    const user = await createUser(sql, "ssrf");
    // Registration refuses these now; rows from before that (or a name that
    // resolves privately later) still meet the send-time guard. Replica mode
    // skips the trigger, as those rows did.
    await sql.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      for (const url of hostile) {
        await tx`insert into herald.webhook_endpoints (owner_id, url, secret)
          values (${user.id}, ${url}, herald.new_webhook_secret())`;
      }
    });
    await enqueue(sql, [user.id], { title: "Exfiltrate", channels: ["webhook"] });
    const report = await dispatchBatch(deps);
    assert.equal(report.failed, hostile.length);
    const rows = await sql`select d.target, a.error_code from herald.deliveries d
      join herald.delivery_attempts a on a.delivery_id = d.id where d.recipient_id = ${user.id}`;
    for (const row of rows) assert.equal(row.error_code, "SSRF_BLOCKED", row.target);
    assert.equal((await fakeControl("webhook", "requests")).total, 0);
    const endpoints = await sql`select url, disabled_reason from herald.webhook_endpoints
      where owner_id = ${user.id}`;
    for (const endpoint of endpoints) {
      assert.match(endpoint.disabled_reason ?? "", /^SSRF_BLOCKED: refused: /, endpoint.url);
    }
  } finally {
    await deps.close();
    await sql.end();
  }
});
