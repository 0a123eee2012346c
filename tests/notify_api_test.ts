/**
 * The notify API end to end through the gateway with supabase-js: inline
 * first attempts, per-recipient authorisation, idempotency, scheduling and
 * cancelling, quiet hours and opt-outs, topics and bulk fan-out, raw targets,
 * webhook endpoints — and the RLS boundaries between users.
 */
import assert from "node:assert/strict";
import type postgres from "postgres";
import {
  adminSql,
  apiHeaders,
  clientAs,
  createUser,
  errorOf,
  fakeControl,
  stack,
  type TestUser,
} from "./support/stack.ts";
import { startDispatcher } from "./support/dispatcher_process.ts";

const call = (path: string, token: string, init: RequestInit = {}) => {
  const headers = apiHeaders(init.headers);
  headers.set("authorization", `Bearer ${token}`);
  if (init.body) headers.set("content-type", "application/json");
  return fetch(`${stack.apiUrl}/functions/v1/${path}`, { ...init, headers });
};

async function withUsers(
  count: number,
  work: (sql: postgres.Sql, users: TestUser[]) => Promise<void>,
): Promise<void> {
  const sql = adminSql();
  try {
    const users = [];
    for (let i = 0; i < count; i++) users.push(await createUser(sql, `api${i}`));
    await work(sql, users);
  } finally {
    await sql.end();
  }
}

async function addDevice(user: TestUser, platform = "android"): Promise<string> {
  const token = `api-${crypto.randomUUID()}`;
  const { error } = await clientAs(user.token).functions.invoke("notify/devices", {
    method: "PUT",
    body: { token, platform },
  });
  assert.equal(error, null);
  return token;
}

Deno.test("notify: a small notification is attempted inline and answers each delivery's status", async () => {
  await withUsers(1, async (_sql, [alice]) => {
    await addDevice(alice);
    const response = await call("notify", alice.token, {
      method: "POST",
      // Through Kong, Kong's request id is the one id, whatever the client sends.
      headers: { "x-request-id": `<script>${"x".repeat(4096)}</script>` },
      body: JSON.stringify({ user_ids: [alice.id], title: "Inline hello", body: "inline" }),
    });
    assert.equal(response.status, 201);
    const requestId = response.headers.get("x-kong-request-id") ?? "";
    assert.match(requestId, /^[0-9a-f]{32}$/);
    assert.equal(response.headers.get("x-request-id"), requestId);
    assert.equal(response.headers.get("ratelimit-limit"), "600", "the per-user limit applies");
    assert.ok(Number(response.headers.get("ratelimit-remaining")) < 600);
    const body = await response.json();
    assert.equal(body.deliveries, 1);
    assert.deepEqual(body.results.map((r: { status: string }) => r.status), ["sent"]);
    const { data } = await clientAs(alice.token).functions.invoke(
      `notify/notifications/${body.id}`,
      {
        method: "GET",
      },
    );
    assert.equal(data.request_id, requestId, "the correlation id travels with it");
    assert.equal(data.deliveries[0].attempt_log[0].outcome, "sent");
    assert.equal(data.deliveries[0].attempt_log[0].request_id, requestId);
  });
});

Deno.test("notify: a running dispatcher woken by the commit cannot take the inline attempt's deliveries", async () => {
  const dispatcher = await startDispatcher();
  try {
    await withUsers(1, async (sql, [alice]) => {
      await addDevice(alice);
      for (let i = 0; i < 5; i++) {
        const { data, error } = await clientAs(alice.token).functions.invoke("notify", {
          body: { user_ids: [alice.id], title: `Raced ${i}` },
        });
        assert.equal(error, null);
        assert.deepEqual(data.results.map((r: { status: string }) => r.status), ["sent"]);
        const [{ attempts }] = await sql`select attempts from herald.deliveries
          where notification_id = ${data.id}`;
        assert.equal(attempts, 1, "claimed once, by the inline attempt");
      }
    });
  } finally {
    await dispatcher.stop();
  }
});

Deno.test("notify: recipients can_notify refuses are reported one by one; all refused is a 403", async () => {
  await withUsers(2, async (_sql, [alice, bob]) => {
    await addDevice(alice);
    const mixed = await clientAs(alice.token).functions.invoke("notify", {
      body: { user_ids: [alice.id, bob.id], title: "Hi both" },
    });
    assert.equal(mixed.error, null);
    assert.deepEqual(mixed.data.denied, [bob.id]);
    assert.equal(mixed.data.denied_count, 1);
    assert.equal(mixed.data.deliveries, 1);

    const refused = await clientAs(alice.token).functions.invoke("notify", {
      body: { user_ids: [bob.id], title: "Psst" },
    });
    const problem = await errorOf(refused.error);
    assert.equal(problem.status, 403);
    assert.equal(problem.body.type, "https://herald.dev/problems/not-allowed");
    assert.deepEqual(problem.body.errors, [{
      field: "user_ids",
      message: `may not notify ${bob.id}`,
    }]);
  });
});

Deno.test("notify: an Idempotency-Key repeat returns the first answer; another body with it is a 422", async () => {
  await withUsers(1, async (sql, [alice]) => {
    await addDevice(alice);
    const key = `key-${crypto.randomUUID()}`;
    const send = (title: string) =>
      call("notify", alice.token, {
        method: "POST",
        headers: { "idempotency-key": key },
        body: JSON.stringify({ user_ids: [alice.id], title }),
      });
    const first = await send("Once");
    const again = await send("Once");
    assert.equal(again.status, first.status);
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    const [a, b] = [await first.json(), await again.json()];
    assert.equal(b.id, a.id);
    assert.deepEqual(b, a);
    const [{ count }] = await sql`select count(*)::int from herald.notifications
      where sender_id = ${alice.id} and title = 'Once'`;
    assert.equal(count, 1);

    const changed = await send("Twice");
    assert.equal(changed.status, 422);
    assert.equal((await changed.json()).type, "https://herald.dev/problems/idempotency-key-reused");
  });
});

Deno.test("notify: send_at schedules, the sender cancels, a recipient may not", async () => {
  await withUsers(1, async (sql, [alice]) => {
    await addDevice(alice);
    const sendAt = new Date(Date.now() + 3_600_000).toISOString();
    const scheduled = await clientAs(stack.serviceRoleKey).functions.invoke("notify", {
      body: { user_ids: [alice.id], title: "Later", send_at: sendAt, ttl_seconds: 600 },
    });
    assert.equal(scheduled.error, null);
    assert.equal(scheduled.data.results, undefined, "nothing is attempted before send_at");
    const [row] = await sql`select d.next_attempt_at, n.expires_at from herald.deliveries d
      join herald.notifications n on n.id = d.notification_id where n.id = ${scheduled.data.id}`;
    assert.equal(row.next_attempt_at.toISOString(), sendAt);
    assert.equal(
      row.expires_at.getTime(),
      Date.parse(sendAt) + 600_000,
      "the TTL counts from send_at",
    );

    const byRecipient = await clientAs(alice.token).functions.invoke(
      `notify/notifications/${scheduled.data.id}/cancel`,
      { method: "POST" },
    );
    assert.equal((await errorOf(byRecipient.error)).status, 404);

    const cancelled = await clientAs(stack.serviceRoleKey).functions.invoke(
      `notify/notifications/${scheduled.data.id}/cancel`,
      { method: "POST" },
    );
    assert.deepEqual(cancelled.data, { id: scheduled.data.id, cancelled: 1 });
    const { data } = await clientAs(alice.token).functions.invoke(
      `notify/notifications/${scheduled.data.id}`,
      { method: "GET" },
    );
    assert.equal(data.deliveries[0].status, "cancelled");
  });
});

Deno.test("notify: quiet hours defer non-critical pushes to the window's end; critical ones go now", async () => {
  await withUsers(1, async (_sql, [alice]) => {
    await addDevice(alice);
    // A window around the current minute in Tokyo (no DST), ending in two hours.
    const tokyo = (offsetMin: number) =>
      new Date(Date.now() + (9 * 60 + offsetMin) * 60_000).toISOString().slice(11, 16);
    const quiet = { start: tokyo(-60), end: tokyo(120) };
    const saved = await clientAs(alice.token).functions.invoke("notify/preferences", {
      method: "PUT",
      body: { time_zone: "Asia/Tokyo", quiet_hours: quiet },
    });
    assert.equal(saved.error, null);
    assert.deepEqual(saved.data, { time_zone: "Asia/Tokyo", quiet_hours: quiet, opt_outs: [] });

    const quietOne = await clientAs(alice.token).functions.invoke("notify", {
      body: { user_ids: [alice.id], title: "Not now" },
    });
    assert.equal(quietOne.data.results, undefined, "nothing is due, so nothing is tried inline");
    const { data } = await clientAs(alice.token).functions.invoke(
      `notify/notifications/${quietOne.data.id}`,
      { method: "GET" },
    );
    assert.equal(data.deliveries[0].status, "pending");
    const waitsMin = (Date.parse(data.deliveries[0].next_attempt_at) - Date.now()) / 60_000;
    assert.ok(waitsMin > 115 && waitsMin <= 121, `deferred to the window's end, ${waitsMin} min`);

    const critical = await clientAs(alice.token).functions.invoke("notify", {
      body: { user_ids: [alice.id], title: "Now", critical: true },
    });
    assert.equal(critical.data.results[0].status, "sent");
  });
});

Deno.test("notify: opt-outs by category and channel drop those deliveries", async () => {
  await withUsers(1, async (_sql, [alice]) => {
    await addDevice(alice);
    await clientAs(alice.token).functions.invoke("notify/preferences", {
      method: "PUT",
      body: { opt_outs: [{ category: "promo", channel: "push" }] },
    });
    const promo = await clientAs(alice.token).functions.invoke("notify", {
      body: { user_ids: [alice.id], title: "Sale", category: "promo", channels: ["push", "email"] },
    });
    assert.equal(promo.data.deliveries, 1, "e-mail only");
    const other = await clientAs(alice.token).functions.invoke("notify", {
      body: { user_ids: [alice.id], title: "Receipt", category: "orders" },
    });
    assert.equal(other.data.deliveries, 1);
  });
});

Deno.test("preferences: each user sees and changes only their own; bad zones are a 422 naming the field", async () => {
  await withUsers(2, async (_sql, [alice, bob]) => {
    await clientAs(alice.token).functions.invoke("notify/preferences", {
      method: "PUT",
      body: { time_zone: "Europe/Berlin", opt_outs: [{ category: "*", channel: "email" }] },
    });
    const bobs = await clientAs(bob.token).functions.invoke("notify/preferences", {
      method: "GET",
    });
    assert.deepEqual(bobs.data, { time_zone: "UTC", quiet_hours: null, opt_outs: [] });
    const bad = await clientAs(bob.token).functions.invoke("notify/preferences", {
      method: "PUT",
      body: { time_zone: "Mars/Olympus" },
    });
    const problem = await errorOf(bad.error);
    assert.equal(problem.status, 422);
    assert.deepEqual((problem.body.errors as { field: string }[])[0].field, "time_zone");
  });
});

Deno.test("topics: users subscribe themselves; a bulk send to the topic reaches every subscriber", async () => {
  await withUsers(3, async (_sql, [alice, bob, carol]) => {
    const topic = `news-${crypto.randomUUID()}`;
    for (const user of [alice, bob]) {
      await addDevice(user);
      const { error } = await clientAs(user.token).functions.invoke(`notify/topics/${topic}`, {
        method: "PUT",
      });
      assert.equal(error, null);
    }
    const namespaced = `org:${crypto.randomUUID()}:admins`;
    const joinsItself = await clientAs(carol.token).functions.invoke(
      `notify/topics/${namespaced}`,
      {
        method: "PUT",
      },
    );
    assert.equal((await errorOf(joinsItself.error)).status, 403, "namespaced topics are services'");
    const joinedByService = await clientAs(stack.serviceRoleKey).functions.invoke(
      `notify/topics/${namespaced}?user_id=${carol.id}`,
      { method: "PUT" },
    );
    assert.equal(joinedByService.error, null);
    await clientAs(stack.serviceRoleKey).functions.invoke(
      `notify/topics/${namespaced}?user_id=${carol.id}`,
      { method: "DELETE" },
    );
    const carols = await clientAs(carol.token).functions.invoke("notify/topics", { method: "GET" });
    assert.deepEqual(carols.data, { topics: [] }, "nobody sees another user's subscriptions");
    const forged = await clientAs(carol.token).functions.invoke(
      `notify/topics/${topic}?user_id=${alice.id}`,
      { method: "DELETE" },
    );
    assert.equal((await errorOf(forged.error)).status, 403);

    const byUser = await clientAs(alice.token).functions.invoke("notify/bulk", {
      body: { topic, title: "Hello" },
    });
    assert.equal((await errorOf(byUser.error)).status, 403);

    const job = await clientAs(stack.serviceRoleKey).functions.invoke("notify/bulk", {
      body: { topic, title: "Hello subscribers" },
    });
    assert.equal(job.error, null);
    assert.equal(job.data.deliveries, 2);
    const progress = await clientAs(stack.serviceRoleKey).functions.invoke(
      `notify/bulk/${job.data.id}`,
      { method: "GET" },
    );
    assert.equal(progress.data.total, 2);
    assert.deepEqual(progress.data.audience, { topic });
    assert.equal(
      Object.values(progress.data.counts as Record<string, number>).reduce((a, b) => a + b),
      2,
    );

    await clientAs(bob.token).functions.invoke(`notify/topics/${topic}`, { method: "DELETE" });
    const after = await clientAs(stack.serviceRoleKey).functions.invoke("notify/bulk", {
      body: { topic, title: "Hello again" },
    });
    assert.equal(after.data.deliveries, 1);
  });
});

Deno.test("bulk: 10,000 explicit user ids in one request are expanded in Postgres; 10,001 are refused", async () => {
  const sql = adminSql();
  try {
    const ids = (await sql`
      insert into auth.users (id, email)
      select gen_random_uuid(), 'bulk-' || gen_random_uuid() || '@example.test'
      from generate_series(1, 10000) returning id`).map((r) => r.id as string);
    await sql`insert into herald.device_tokens (user_id, token, platform)
      select id, 'bulk-' || id, 'android' from unnest(${ids}::uuid[]) id`;
    const accepted = await call("notify/bulk", stack.serviceRoleKey, {
      method: "POST",
      body: JSON.stringify({ user_ids: ids, title: "To everyone" }),
    });
    assert.equal(accepted.status, 202);
    const body = await accepted.json();
    assert.equal(body.deliveries, 10_000);
    const [{ count }] = await sql`select count(*)::int from herald.deliveries
      where notification_id = ${body.id}`;
    assert.equal(count, 10_000);
    await sql`update herald.deliveries set status = 'cancelled' where notification_id = ${body.id}`;

    const tooMany = await call("notify/bulk", stack.serviceRoleKey, {
      method: "POST",
      body: JSON.stringify({ user_ids: [...ids, crypto.randomUUID()], title: "x" }),
    });
    assert.equal(tooMany.status, 422);
    assert.equal((await tooMany.json()).errors[0].field, "user_ids");
  } finally {
    await sql.end();
  }
});

Deno.test("notify: the service role may notify raw targets; users may not", async () => {
  await withUsers(1, async (sql, [alice]) => {
    const token = `raw-${crypto.randomUUID()}`;
    const accepted = await clientAs(stack.serviceRoleKey).functions.invoke("notify", {
      body: {
        targets: [
          { channel: "push", token, platform: "web" },
          { channel: "email", address: "someone@example.test" },
        ],
        title: "Raw",
        body: "to addresses",
      },
    });
    assert.equal(accepted.error, null);
    assert.equal(accepted.data.deliveries, 2);
    const rows = await sql`select channel, target, recipient_id from herald.deliveries
      where notification_id = ${accepted.data.id} order by channel`;
    assert.deepEqual(rows.map((r) => [r.channel, r.target, r.recipient_id]), [
      ["email", "someone@example.test", null],
      ["push", token, null],
    ]);
    const unknownEndpoint = await clientAs(stack.serviceRoleKey).functions.invoke("notify", {
      body: { targets: [{ channel: "webhook", endpoint_id: crypto.randomUUID() }], title: "x" },
    });
    const problem = await errorOf(unknownEndpoint.error);
    assert.equal(problem.status, 422);
    assert.equal((problem.body.errors as { field: string }[])[0].field, "targets");
    const byUser = await clientAs(alice.token).functions.invoke("notify", {
      body: { targets: [{ channel: "email", address: "x@example.test" }], title: "no" },
    });
    assert.equal((await errorOf(byUser.error)).status, 403);
  });
});

Deno.test("notifications, devices and webhook endpoints of one user are invisible and untouchable to another", async () => {
  await withUsers(2, async (_sql, [alice, bob]) => {
    await addDevice(alice);
    const sent = await clientAs(alice.token).functions.invoke("notify", {
      body: { user_ids: [alice.id], title: "Mine" },
    });
    const asBob = clientAs(bob.token);
    const status = await asBob.functions.invoke(`notify/notifications/${sent.data.id}`, {
      method: "GET",
    });
    assert.equal((await errorOf(status.error)).status, 404);
    const cancel = await asBob.functions.invoke(`notify/notifications/${sent.data.id}/cancel`, {
      method: "POST",
    });
    assert.equal((await errorOf(cancel.error)).status, 404);
    const progress = await asBob.functions.invoke(`notify/bulk/${sent.data.id}`, { method: "GET" });
    assert.equal((await errorOf(progress.error)).status, 404);

    const endpoint = await clientAs(alice.token).functions.invoke("notify/webhook-endpoints", {
      body: { url: "https://hooks.example.test/herald" },
    });
    assert.equal(endpoint.error, null);
    assert.match(endpoint.data.secret, /^whsec_/);
    const listed = await clientAs(alice.token).functions.invoke("notify/webhook-endpoints", {
      method: "GET",
    });
    assert.equal(listed.data.webhook_endpoints.length, 1);
    assert.equal(listed.data.webhook_endpoints[0].secret, undefined, "secrets are shown once");
    const bobsList = await asBob.functions.invoke("notify/webhook-endpoints", { method: "GET" });
    assert.deepEqual(bobsList.data, { webhook_endpoints: [] });
    const bobDeletes = await asBob.functions.invoke(
      `notify/webhook-endpoints/${endpoint.data.id}`,
      { method: "DELETE" },
    );
    assert.equal((await errorOf(bobDeletes.error)).status, 404);
    const bobRotates = await asBob.functions.invoke(
      `notify/webhook-endpoints/${endpoint.data.id}/rotate-secret`,
      { method: "POST" },
    );
    assert.equal((await errorOf(bobRotates.error)).status, 404);
    const rotated = await clientAs(alice.token).functions.invoke(
      `notify/webhook-endpoints/${endpoint.data.id}/rotate-secret`,
      { method: "POST" },
    );
    assert.notEqual(rotated.data.secret, endpoint.data.secret);

    const devices = await asBob.functions.invoke("notify/devices", { method: "GET" });
    assert.deepEqual(devices.data, { devices: [] });
  });
});

Deno.test("webhook endpoints: PATCH re-points or re-enables a disabled endpoint, its owner's only", async () => {
  await withUsers(2, async (sql, [alice, bob]) => {
    const created = await call("notify/webhook-endpoints", alice.token, {
      method: "POST",
      body: JSON.stringify({ url: "https://hooks.example.test/before" }),
    });
    const { id } = await created.json();
    const disable = () =>
      sql`update herald.webhook_endpoints set disabled_at = now(), disabled_reason = 'GONE'
          where id = ${id}`;
    const patch = (token: string, body: unknown) =>
      call(`notify/webhook-endpoints/${id}`, token, {
        method: "PATCH",
        body: JSON.stringify(body),
      });

    await disable();
    const repointed = await patch(alice.token, { url: "HTTPS://Hooks.example.test/after" });
    assert.equal(repointed.status, 200);
    const after = await repointed.json();
    assert.equal(after.url, "https://hooks.example.test/after", "stored normalised");
    assert.equal(after.disabled_at, null);
    assert.equal(after.secret, undefined, "the secret is not shown again");

    await disable();
    const enabled = await patch(alice.token, { enabled: true });
    assert.equal(enabled.status, 200);
    assert.deepEqual(
      [
        (await enabled.json()).url,
        (await sql`select disabled_at, disabled_reason
        from herald.webhook_endpoints where id = ${id}`)[0],
      ],
      ["https://hooks.example.test/after", { disabled_at: null, disabled_reason: null }],
    );

    const refused = await patch(alice.token, { url: "http://127.0.0.1/x" });
    assert.equal(refused.status, 422);
    assert.equal((await refused.json()).errors[0].field, "url");
    const empty = await patch(alice.token, {});
    assert.equal(empty.status, 422);
    await empty.body?.cancel();
    const notHers = await patch(bob.token, { enabled: true });
    assert.equal(notHers.status, 404);
    await notHers.body?.cancel();
    const [row] = await sql`select url from herald.webhook_endpoints where id = ${id}`;
    assert.equal(row.url, "https://hooks.example.test/after", "refused changes change nothing");
  });
});

Deno.test("webhook endpoints: credentials and literal private, loopback or link-local hosts are a 422 naming url", async () => {
  await withUsers(1, async (sql, [alice]) => {
    const receiverPort = Number(new URL(stack.fakes.webhook).port);
    const refused = [
      "https://user:secret@hooks.example.com/",
      "http://10.0.0.5/hook",
      "http://169.254.169.254/latest/meta-data/",
      `http://127.0.0.1:${receiverPort + 1}/hook`,
      "http://[::1]/hook",
      "http://localhost/hook",
      "http://127.1/hook",
      "http://metadata.google.internal/",
    ];
    for (const url of refused) {
      const response = await call("notify/webhook-endpoints", alice.token, {
        method: "POST",
        body: JSON.stringify({ url }),
      });
      assert.equal(response.status, 422, url);
      const problem = await response.json();
      assert.equal(problem.errors[0].field, "url", url);
    }
    const [{ count }] = await sql`select count(*)::int from herald.webhook_endpoints
      where owner_id = ${alice.id}`;
    assert.equal(count, 0, "nothing was stored");
    const receiver = await call("notify/webhook-endpoints", alice.token, {
      method: "POST",
      body: JSON.stringify({ url: `${stack.fakes.webhook}/alice` }),
    });
    assert.equal(receiver.status, 201, "the local receiver's host:port is allow-listed");
  });
});

Deno.test("bulk progress: the sender and the service read it; a recipient may not", async () => {
  await withUsers(2, async (sql, [alice, bob]) => {
    await addDevice(bob);
    // A project where Alice may notify Bob.
    await sql.unsafe(`create or replace function herald.can_notify(p_sender uuid, p_recipient uuid)
      returns boolean language sql stable set search_path = '' as $$
        select p_sender is null or p_sender = p_recipient
          or (p_sender = '${alice.id}' and p_recipient = '${bob.id}') $$`);
    try {
      const sent = await call("notify", alice.token, {
        method: "POST",
        body: JSON.stringify({
          user_ids: [bob.id],
          title: "For Bob",
          send_at: new Date(Date.now() + 3_600_000).toISOString(),
        }),
      });
      assert.equal(sent.status, 202, await sent.clone().text());
      const { id } = await sent.json();
      for (
        const [who, token, status] of [
          ["sender", alice.token, 200],
          ["service", stack.serviceRoleKey, 200],
          ["recipient", bob.token, 404],
        ] as const
      ) {
        const progress = await call(`notify/bulk/${id}`, token);
        assert.equal(progress.status, status, who);
        const body = await progress.json();
        if (status === 200) assert.equal(body.total, 1, who);
      }
      // The recipient still reads the notification itself, without its targets.
      const own = await call(`notify/notifications/${id}`, bob.token);
      assert.equal(own.status, 200);
      assert.ok(
        !JSON.stringify(await own.json()).includes("api-"),
        "no device token in the answer",
      );
      await sql`update herald.deliveries set status = 'cancelled' where notification_id = ${id}`;
    } finally {
      await sql`create or replace function herald.can_notify(p_sender uuid, p_recipient uuid)
        returns boolean language sql stable set search_path = '' as $$
          select p_sender is null or p_sender = p_recipient $$`;
    }
  });
});

Deno.test("notify: services may target an FCM topic or condition; FCM fans out, one request each, with every platform's block", async () => {
  await withUsers(1, async (sql, [alice]) => {
    const topic = `herald-${crypto.randomUUID().slice(0, 8)}`;
    const condition = `'${topic}' in topics && !('muted' in topics)`;
    const response = await call("notify", stack.serviceRoleKey, {
      method: "POST",
      body: JSON.stringify({
        targets: [{ channel: "push", topic }, { channel: "push", condition }],
        title: "To a topic",
        overrides: { android: { collapseKey: "topic" }, apns: { payload: { aps: { badge: 1 } } } },
      }),
    });
    assert.equal(response.status, 201, await response.clone().text());
    const answer = await response.json();
    assert.deepEqual(answer.results.map((r: { status: string }) => r.status), ["sent", "sent"]);
    const rows = await sql`select target, platform from herald.deliveries
      where notification_id = ${answer.id} order by target`;
    assert.deepEqual(rows.map((r) => [r.target, r.platform]), [
      [`/topics/${topic}`, null],
      [`condition:${condition}`, null],
    ]);
    const { requests } = await fakeControl("fcm", "requests");
    const mine = requests.filter((
      r: { body: { message?: { topic?: string; condition?: string } } },
    ) => r.body.message?.topic === topic || r.body.message?.condition === condition);
    assert.equal(mine.length, 2);
    for (const request of mine) {
      const message = request.body.message;
      assert.equal(message.token, undefined);
      assert.equal(message.android.collapse_key, "topic");
      assert.deepEqual(message.apns.payload, { aps: { badge: 1 } });
      assert.ok(message.webpush, "a topic reaches web devices too");
    }

    for (
      const target of [
        { channel: "push", topic: "has space" },
        { channel: "push", topic: "/topics/news" },
        { channel: "push", condition: "news" },
        { channel: "push", condition: "'a' in topics; drop table" },
        {
          channel: "push",
          condition: ["a", "b", "c", "d", "e", "f"].map((t) => `'${t}' in topics`).join(" || "),
        },
        { channel: "push", topic: "news", token: "t", platform: "web" },
      ]
    ) {
      const refused = await call("notify", stack.serviceRoleKey, {
        method: "POST",
        body: JSON.stringify({ targets: [target], title: "x" }),
      });
      assert.equal(refused.status, 422, JSON.stringify(target));
      const problem = await refused.json();
      assert.ok(problem.errors[0].field.startsWith("targets"), JSON.stringify(problem));
    }
    const byUser = await call("notify", alice.token, {
      method: "POST",
      body: JSON.stringify({ targets: [{ channel: "push", topic }], title: "x" }),
    });
    assert.equal(byUser.status, 403);
    await byUser.body?.cancel();
  });
});

Deno.test("notify: ids Postgres takes but RFC 9562 does not (a seeded 00000000-…-0001-style user) are accepted everywhere, as hooks accept them", async () => {
  const sql = adminSql();
  // Version nibble 0 and variant nibble 0: z.uuid() refuses it, Postgres stores it.
  const hex = crypto.randomUUID().replaceAll("-", "");
  const id = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-0${hex.slice(13, 16)}-0${hex.slice(17, 20)}-${
    hex.slice(20, 32)
  }`;
  try {
    await sql`insert into auth.users (id, aud, role, email, email_confirmed_at)
      values (${id}, 'authenticated', 'authenticated', ${`seeded-${id}@example.test`}, now())`;
    const [endpoint] = await sql`insert into herald.webhook_endpoints (id, owner_id, url, secret)
      values (${id}, ${id}, 'https://hooks.example.invalid/seeded', ${"whsec_" + btoa(hex)})
      returning id`;
    await sql`insert into herald.device_tokens (user_id, token, platform)
      values (${id}, ${`seeded-${id}`}, 'android')`;
    const response = await call("notify", stack.serviceRoleKey, {
      method: "POST",
      body: JSON.stringify({
        user_ids: [id],
        // Upper case, as some clients print ids: the same endpoint.
        targets: [{ channel: "webhook", endpoint_id: endpoint.id.toUpperCase() }],
        title: "seeded",
        send_at: new Date(Date.now() + 3_600_000).toISOString(),
      }),
    });
    const accepted = await response.json();
    assert.equal(response.status, 202, JSON.stringify(accepted));
    const status = await call(
      `notify/notifications/${accepted.id.toUpperCase()}`,
      stack.serviceRoleKey,
    );
    assert.equal(status.status, 200);
    assert.ok(
      (await status.json()).deliveries.some((d: { recipient_id: string }) => d.recipient_id === id),
    );
    const subscribe = await call(`notify/topics/seeded-users?user_id=${id}`, stack.serviceRoleKey, {
      method: "PUT",
    });
    assert.equal(subscribe.status, 200, await subscribe.text());
    await sql`delete from herald.notifications where id = ${accepted.id}`;
  } finally {
    await sql`delete from auth.users where id = ${id}`;
    await sql.end();
  }
});

Deno.test("notify: a notification older than the outbox keeps is a 404 past-retention, with when it was made; others stay not-found", async () => {
  await withUsers(1, async (sql, [user]) => {
    const [ids] = await sql`select
      herald.uuid_v7(now() - interval '40 days') as gone,
      herald.uuid_v7(now()) as recent,
      gen_random_uuid() as v4,
      (now() - interval '40 days') as made`;
    const v7 = await call(`notify/notifications/${ids.recent}`, user.token);
    assert.equal(v7.status, 404);
    assert.equal((await v7.json()).type.endsWith("not-found"), true, "a recent id not there");
    const v4 = await call(`notify/notifications/${ids.v4}`, user.token);
    assert.equal(
      (await v4.json()).type.endsWith("not-found"),
      true,
      "an id that does not say when",
    );
    for (
      const [path, init] of [
        [`notify/notifications/${ids.gone}`, {}],
        [`notify/bulk/${ids.gone}`, {}],
        [`notify/notifications/${ids.gone}/cancel`, { method: "POST" }],
      ] as const
    ) {
      const response = await call(path, user.token, init);
      assert.equal(response.status, 404, path);
      const problem = await response.json();
      assert.match(problem.type, /past-retention$/, path);
      const day = (ids.made as Date).toISOString().slice(0, 10);
      assert.match(problem.detail, new RegExp(`created at ${day}T`), path);
    }
  });
});

Deno.test("notify: a send_at offset the database refuses names send_at, not targets", async () => {
  await withUsers(1, async (_sql, [user]) => {
    const day = new Date(Date.now() + 2 * 86_400_000).toISOString().slice(0, 19);
    for (
      const [body, field] of [
        [{ send_at: `${day}+18:00` }, "send_at"],
        [{ send_at: `${day}+23:59` }, "send_at"],
      ] as const
    ) {
      const response = await call("notify", user.token, {
        method: "POST",
        body: JSON.stringify({ user_ids: [user.id], title: "Field", ...body }),
      });
      assert.equal(response.status, 422, JSON.stringify(body));
      const problem = await response.json();
      assert.equal(problem.errors[0].field, field, JSON.stringify(problem));
    }
  });
});
