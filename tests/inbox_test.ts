/**
 * The inbox (scripts/stack/inbox/) over HTTP, as the test stack runs it on
 * its own port: what notify sends shows up as items, live over server-sent
 * events, linked to its delivery; webhooks' signatures are checked against
 * the endpoint's secrets; the controls change a stand-in's behaviour; hostile
 * requests are refused. And the pure parts: platform cards, e-mails, the
 * controls' translation and the signature check, each on its own.
 */
import assert from "node:assert/strict";
import { emailItem, pushItem, type Recorded } from "../scripts/stack/inbox/items.ts";
import { _behaviour, verifyStandardWebhook } from "../scripts/stack/inbox/server.ts";
import { serveFake } from "./fakes/control.ts";
import { asService, createUser, stack, withAdminSql } from "./support/stack.ts";

const INBOX = `http://127.0.0.1:${stack.ports.inbox}`;

// deno-lint-ignore no-explicit-any
type Json = any;

function notify(body: Record<string, unknown>, token = stack.serviceRoleKey) {
  return fetch(`${stack.apiUrl}/functions/v1/notify`, {
    method: "POST",
    headers: {
      apikey: token === stack.serviceRoleKey ? stack.serviceRoleKey : stack.anonKey,
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
    },
    body: JSON.stringify(body),
  }).then(async (r) => ({ status: r.status, body: await r.json() }));
}

/** Polls the inbox until an item satisfies `match`. */
async function item(match: (i: Json) => boolean): Promise<Json> {
  for (let i = 0; i < 100; i++) {
    const { items } = await (await fetch(`${INBOX}/api/items`)).json();
    const found = items.find(match);
    if (found) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("no such item in the inbox");
}

const delivery = async (id: string) =>
  await (await fetch(`${INBOX}/api/items/${id}/delivery`)).json();

Deno.test("inbox: a user's push shows as a card with its title, body, device and user, linked to its delivery", async () => {
  const title = `Order ${crypto.randomUUID().slice(0, 8)} shipped`;
  await withAdminSql(async (sql) => {
    const user = await createUser(sql, "inbox");
    const token = `inbox-${crypto.randomUUID()}`;
    await sql`insert into herald.device_tokens (user_id, token, platform)
              values (${user.id}, ${token}, 'ios')`;
    const sent = await notify({
      user_ids: [user.id],
      title,
      body: "On its way",
      data: { order: "42" },
    });
    assert.equal(sent.status, 201, JSON.stringify(sent.body));
    const card = await item((i) => i.kind === "push" && i.title === title);
    assert.equal(card.platform, "ios");
    assert.equal(card.to, token);
    assert.equal(card.user, user.email);
    assert.equal(card.body, "On its way");
    assert.deepEqual(card.data, { order: "42" });
    assert.equal(card.status, 200);
    const linked = await delivery(card.id);
    assert.equal(linked.found, true);
    assert.equal(linked.matched_by, "device token and time");
    assert.equal(linked.delivery.status, "sent");
    assert.equal(linked.delivery.notification_id, sent.body.id);
    assert.equal(linked.attempts[0].outcome, "sent");
    assert.equal(typeof linked.attempts[0].latency_ms, "number");
  });
});

Deno.test("inbox: a push names the user its token belongs to when it arrives (a token registered later, or moved, shows its new user)", async () => {
  await withAdminSql(async (sql) => {
    const [ann, ben] = [await createUser(sql, "inbox-ann"), await createUser(sql, "inbox-ben")];
    const token = `inbox-later-${crypto.randomUUID()}`;
    const push = async (title: string) => {
      const sent = await notify({
        targets: [{ channel: "push", token, platform: "android" }],
        title,
      });
      assert.equal(sent.status, 201, JSON.stringify(sent.body));
      return await item((i) => i.kind === "push" && i.title === title);
    };
    assert.equal((await push(`raw ${token}`)).user, null, "nobody's token yet");
    await sql`insert into herald.device_tokens (user_id, token, platform)
              values (${ann.id}, ${token}, 'android')`;
    assert.equal((await push(`ann's ${token}`)).user, ann.email);
    await sql`update herald.device_tokens set user_id = ${ben.id} where token = ${token}`;
    assert.equal((await push(`ben's ${token}`)).user, ben.email);
  });
});

Deno.test("inbox: new items arrive over server-sent events without asking again", async () => {
  const events = await fetch(`${INBOX}/api/events`);
  assert.equal(events.headers.get("content-type"), "text/event-stream");
  const reader = events.body!.pipeThrough(new TextDecoderStream()).getReader();
  const title = `Live ${crypto.randomUUID().slice(0, 8)}`;
  try {
    const sent = await notify({
      targets: [{ channel: "push", token: `sse-${crypto.randomUUID()}`, platform: "web" }],
      title,
    });
    assert.equal(sent.status, 201);
    let text = "";
    while (!text.includes(title)) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the event stream ended");
      text += value;
    }
    const event = text.slice(text.lastIndexOf("event: item", text.indexOf(title)));
    const data = JSON.parse(event.split("\n")[1].replace(/^data: /, ""));
    assert.equal(data.platform, "web");
    assert.equal(data.title, title);
  } finally {
    await reader.cancel();
  }
});

/** Reads server-sent events from `url` until one's data includes `until` (15 s at most). */
async function eventsUntil(url: string, until: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(15_000) });
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  try {
    while (!text.includes(until)) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the event stream ended");
      text += value;
    }
  } finally {
    await reader.cancel();
  }
  return text.split("\n\n").filter((e) => e.includes("event: item")).map((e) => {
    const field = (name: string) => e.match(new RegExp(`^${name}: (.*)$`, "m"))?.[1];
    return { id: Number(field("id")), item: JSON.parse(field("data")!) };
  });
}

Deno.test("inbox: the stream starts where the page's list ended (?after=N) or where a dropped stream did (Last-Event-ID); nothing in between is missed", async () => {
  const marker = crypto.randomUUID().slice(0, 8);
  const post = async (name: string) => {
    const response = await fetch(`${stack.fakes.webhook}/resume/${marker}/${name}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ marker, name }),
    });
    await response.body?.cancel();
  };
  const path = (i: Json) => i.kind === "webhook" ? i.path : "";
  await post("a");
  await item((i) => path(i).endsWith(`${marker}/a`));
  const { last } = await (await fetch(`${INBOX}/api/items`)).json();
  assert.ok(Number.isInteger(last) && last > 0, `last: ${last}`);
  // b and c arrive after the list was read and before any stream is open.
  await post("b");
  await post("c");
  await item((i) => path(i).endsWith(`${marker}/c`));

  const replayed = (await eventsUntil(`${INBOX}/api/events?after=${last}`, `${marker}/c`))
    .filter((e) => path(e.item).includes(marker));
  assert.deepEqual(replayed.map((e) => path(e.item).split("/").pop()), ["b", "c"]);
  assert.ok(replayed.every((e) => e.id > last && e.id === e.item.n), JSON.stringify(replayed));

  const resumed = (await eventsUntil(`${INBOX}/api/events`, `${marker}/c`, {
    "last-event-id": String(replayed[0].id),
  })).filter((e) => path(e.item).includes(marker));
  assert.deepEqual(resumed.map((e) => path(e.item).split("/").pop()), ["c"]);

  // A number this inbox never gave (it was restarted since): every kind is reset, then all is sent.
  const restarted = await fetch(`${INBOX}/api/events`, {
    headers: { "last-event-id": "999999999999" },
    signal: AbortSignal.timeout(15_000),
  });
  const reader = restarted.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("event: item")) text += (await reader.read()).value ?? "";
  await reader.cancel();
  const resets = text.slice(0, text.indexOf("event: item")).match(/^event: reset$/gm) ?? [];
  assert.equal(resets.length, 3, text.slice(0, 500));

  for (const bad of ["abc", "-1", "1.5"]) {
    const refused = await fetch(`${INBOX}/api/events?after=${bad}`);
    assert.equal(refused.status, 400, bad);
    assert.equal(refused.headers.get("content-type"), "application/problem+json");
    await refused.body?.cancel();
  }
});

Deno.test("stand-ins: a request whose handler throws is recorded as answered 500 (the inbox reads a record only once it has its answer, in order)", async () => {
  const fake = serveFake({
    port: 0,
    handler: () => {
      throw new Error("a stand-in's bug");
    },
  });
  try {
    const response = await fetch(`${fake.url}/anything`, { method: "POST", body: "{}" });
    assert.equal(response.status, 500);
    await response.body?.cancel();
    const { requests } = await (await fetch(`${fake.url}/_control/requests`)).json();
    assert.equal(requests.length, 1);
    assert.equal(requests[0].status, 500);
  } finally {
    await fake.close();
  }
});

Deno.test("inbox: an HTML e-mail keeps its HTML, text and idempotency key, which is its delivery id", async () => {
  const subject = `Receipt ${crypto.randomUUID().slice(0, 8)}`;
  const sent = await notify({
    targets: [{ channel: "email", address: "inbox@example.test" }],
    channels: ["email"],
    title: subject,
    body: "Thanks for your order",
    overrides: { email: { subject, html: "<h1>Thanks</h1><p>for your <b>order</b></p>" } },
  });
  assert.equal(sent.status, 201, JSON.stringify(sent.body));
  const mail = await item((i) => i.kind === "email" && i.subject === subject);
  assert.deepEqual(mail.to, ["inbox@example.test"]);
  assert.match(mail.html, /<h1>Thanks<\/h1>/);
  assert.match(mail.deliveryId, /^[0-9a-f-]{36}$/);
  const linked = await delivery(mail.id);
  assert.equal(linked.matched_by, "delivery id");
  assert.equal(linked.delivery.id, mail.deliveryId);
  assert.equal(linked.delivery.status, "sent");
});

Deno.test("inbox: a signed webhook shows its signature valid against the endpoint's current secret; a tampered body does not verify", async () => {
  await withAdminSql(async (sql) => {
    const user = await createUser(sql, "inbox-hook");
    const [endpoint] = await asService(sql, (tx) =>
      tx`select * from herald.create_webhook_endpoint(
        ${`${stack.fakes.webhook}/inbox/${crypto.randomUUID()}`}, ${user.id})`);
    const title = `Hook ${crypto.randomUUID().slice(0, 8)}`;
    const sent = await notify({ user_ids: [user.id], title, channels: ["webhook"] });
    assert.equal(sent.status, 201, JSON.stringify(sent.body));
    const hook = await item((i) => i.kind === "webhook" && i.body.includes(title));
    const linked = await delivery(hook.id);
    assert.equal(linked.signature.verdict, "valid");
    assert.match(linked.signature.reason, /current secret/);
    assert.equal(await verifyStandardWebhook(hook.headers, hook.body, endpoint.secret), true);
    assert.equal(
      await verifyStandardWebhook(
        hook.headers,
        hook.body.replace(title, "tampered"),
        endpoint.secret,
      ),
      false,
    );
    assert.equal(
      await verifyStandardWebhook(
        { ...hook.headers, "webhook-id": "msg_other" },
        hook.body,
        endpoint.secret,
      ),
      false,
    );
    // After a rotation the old signature verifies with the previous secret, within its window.
    await asService(
      sql,
      (tx) => tx`select herald.rotate_webhook_secret(${endpoint.id}, interval '1 hour')`,
    );
    const rotated = await delivery(hook.id);
    assert.equal(rotated.signature.verdict, "valid");
    assert.match(rotated.signature.reason, /previous secret/);
  });
});

Deno.test("inbox: the FCM control makes the stand-in fail; the card shows the answer and the delivery a retry", async () => {
  const set = (body: unknown) =>
    fetch(`${INBOX}/api/control/fcm`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  const failing = await set({ mode: "fcm_error", fcm_error: "UNAVAILABLE" });
  assert.equal(failing.status, 200, await failing.text());
  try {
    const token = `control-${crypto.randomUUID()}`;
    const sent = await notify({
      targets: [{ channel: "push", token, platform: "android" }],
      title: "during an outage",
    });
    assert.equal(sent.status, 201);
    const card = await item((i) => i.kind === "push" && i.to === token);
    assert.equal(card.status, 503);
    const linked = await delivery(card.id);
    assert.equal(linked.attempts[0].outcome, "retry");
    assert.notEqual(linked.delivery.status, "failed", "a 503 is retried, not failed");
  } finally {
    const normal = await set({ mode: "normal" });
    assert.equal(normal.status, 200);
    await normal.body?.cancel();
  }
});

/**
 * Each control mode on each stand-in, on its own, through Herald: what the stand-in answered
 * (the item's status) and what Herald's attempt recorded. A slow stand-in cannot answer
 * sooner than it was told to wait, so its attempt's latency is at least that (a lower bound,
 * no timing threshold); a 429's Retry-After puts the next attempt at least that far out.
 */
const MODES = [
  { mode: "fail", body: { status: 502 }, answered: 502, outcome: "retry" },
  { mode: "slow", body: { latency_ms: 300 }, answered: 200, outcome: "sent", slower: 300 },
  // Last: a 429 pauses the whole provider (the webhook's endpoint) for its Retry-After.
  { mode: "rate_limited", body: { retry_after: 7 }, answered: 429, outcome: "retry", waits: 7 },
] as const;
for (const fake of ["fcm", "email", "webhook"] as const) {
  for (const { mode, body, answered, outcome, ...expect } of MODES) {
    Deno.test(`inbox control: ${fake} ${mode} on its own reaches Herald's attempt`, async () => {
      await withAdminSql(async (sql) => {
        const marker = crypto.randomUUID();
        let target: Record<string, string>;
        let matches: (i: Json) => boolean;
        if (fake === "fcm") {
          target = { channel: "push", token: `mode-${marker}`, platform: "android" };
          matches = (i) => i.kind === "push" && i.to === target.token;
        } else if (fake === "email") {
          target = { channel: "email", address: `mode-${marker}@example.test` };
          matches = (i) => i.kind === "email" && i.to.includes(target.address);
        } else {
          const user = await createUser(sql, "inbox-mode");
          const [endpoint] = await asService(
            sql,
            (tx) =>
              tx`select * from herald.create_webhook_endpoint(
              ${`${stack.fakes.webhook}/mode/${marker}`}, ${user.id})`,
          );
          target = { channel: "webhook", endpoint_id: endpoint.id };
          matches = (i) => i.kind === "webhook" && i.path === `/mode/${marker}`;
        }
        const set = (b: unknown) =>
          fetch(`${INBOX}/api/control/${fake}`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(b),
          });
        const [{ before }] = await sql`select now() as before`;
        const applied = await set({ mode, ...body });
        assert.equal(applied.status, 200, await applied.text());
        try {
          const sent = await notify({
            targets: [target],
            channels: [target.channel],
            title: `mode ${marker}`,
          });
          assert.equal(sent.status, 201, JSON.stringify(sent.body));
          const received = await item(matches);
          const status = fake === "webhook" && answered === 200 ? 204 : answered;
          assert.equal(received.status, status, `${fake} ${mode}: the stand-in's answer`);
          const [attempt] = await sql`select a.outcome, a.status_code, a.latency_ms,
              d.next_attempt_at
            from herald.delivery_attempts a join herald.deliveries d on d.id = a.delivery_id
            where d.notification_id = ${sent.body.id} order by a.attempt limit 1`;
          assert.equal(attempt.outcome, outcome);
          assert.equal(attempt.status_code, status);
          if ("slower" in expect) {
            assert.ok(attempt.latency_ms >= expect.slower, `${attempt.latency_ms} ms`);
          }
          if ("waits" in expect) {
            // The 429 came after `before`, so its Retry-After puts the next attempt past this.
            const ahead = (attempt.next_attempt_at.getTime() - before.getTime()) / 1000;
            assert.ok(ahead >= expect.waits, `next attempt ${ahead} s after the request`);
          }
        } finally {
          const normal = await set({ mode: "normal" });
          assert.equal(normal.status, 200);
          await normal.body?.cancel();
          if ("waits" in expect && fake !== "webhook") {
            // The provider's pause ends before later tests send on it (an endpoint's is its own).
            const left = before.getTime() + (expect.waits + 1) * 1000 - Date.now();
            if (left > 0) await new Promise((r) => setTimeout(r, left));
          }
        }
      });
    });
  }
}

Deno.test("inbox: replay answers with the dispatch function's count", async () => {
  const response = await fetch(`${INBOX}/api/replay`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  assert.equal(typeof body.replayed, "number");
});

Deno.test("inbox: the page and its assets are served from here, with a CSP", async () => {
  for (
    const [path, type] of [["/", "text/html"], ["/inbox.js", "text/javascript"], [
      "/inbox.css",
      "text/css",
    ]]
  ) {
    const response = await fetch(`${INBOX}${path}`);
    assert.equal(response.status, 200);
    assert.ok(response.headers.get("content-type")!.startsWith(type), path);
    assert.match(response.headers.get("content-security-policy")!, /default-src 'self'/);
    const text = await response.text();
    assert.ok(
      !/https?:\/\/(?!127\.0\.0\.1)/.test(text.replace(/"https?:"|https?:\|/g, "")),
      `${path} loads nothing remote`,
    );
  }
});

Deno.test("inbox: another Host (DNS rebinding) is 421, a POST that is not JSON 415, unknown paths 404, bad controls 422", async () => {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: stack.ports.inbox });
  await conn.write(
    new TextEncoder().encode(
      "GET /api/items HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    ),
  );
  const buffer = new Uint8Array(512);
  const n = await conn.read(buffer);
  conn.close();
  assert.match(new TextDecoder().decode(buffer.subarray(0, n!)), /^HTTP\/1\.1 421/);
  const form = await fetch(`${INBOX}/api/replay`, {
    method: "POST",
    body: "all=true",
    headers: { "content-type": "application/x-www-form-urlencoded" },
  });
  assert.equal(form.status, 415);
  await form.body?.cancel();
  const missing = await fetch(`${INBOX}/api/nothing`);
  assert.equal(missing.status, 404);
  assert.equal(missing.headers.get("content-type"), "application/problem+json");
  await missing.body?.cancel();
  for (
    const body of [{ mode: "explode" }, { mode: "slow", latency_ms: -1 }, {
      mode: "fail",
      status: 200,
    }]
  ) {
    const bad = await fetch(`${INBOX}/api/control/email`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    assert.equal(bad.status, 422, JSON.stringify(body));
    await bad.body?.cancel();
  }
  const unknownItem = await fetch(`${INBOX}/api/items/push-999999999/delivery`);
  assert.equal(unknownItem.status, 404);
  await unknownItem.body?.cancel();
});

const record = (path: string, body: unknown, extra: Partial<Recorded> = {}): Recorded => ({
  seq: 1,
  at: "2026-11-30T00:00:00.000Z",
  method: "POST",
  path,
  headers: {},
  body,
  raw: JSON.stringify(body),
  status: 200,
  ...extra,
});
const SEND = "/v1/projects/p/messages:send";

Deno.test("inbox items: Android takes android.notification over notification, with its count and sound", () => {
  const card = pushItem(record(SEND, {
    message: {
      token: "t",
      notification: { title: "common", body: "common body", image: "https://x.test/i.png" },
      android: { notification: { title: "android title", notification_count: 3, sound: "ding" } },
      data: { a: "1" },
    },
  }))!;
  assert.deepEqual(
    [card.platform, card.title, card.body, card.image, card.badge, card.sound, card.data],
    ["android", "android title", "common body", "https://x.test/i.png", 3, "ding", { a: "1" }],
  );
});

Deno.test("inbox items: iOS reads the aps alert, badge and sound (a string alert is the body)", () => {
  const card = pushItem(record(SEND, {
    message: {
      token: "t",
      apns: {
        payload: {
          aps: {
            alert: { title: "iOS title", body: "iOS body" },
            badge: 7,
            sound: { name: "chime" },
          },
        },
      },
    },
  }))!;
  assert.deepEqual([card.platform, card.title, card.body, card.badge, card.sound], [
    "ios",
    "iOS title",
    "iOS body",
    7,
    "chime",
  ]);
  const plain = pushItem(
    record(SEND, { message: { token: "t", apns: { payload: { aps: { alert: "just text" } } } } }),
  )!;
  assert.equal(plain.body, "just text");
});

Deno.test("inbox items: web reads webpush.notification; topics and conditions are fan-outs; validate_only is marked", () => {
  const web = pushItem(record(SEND, {
    message: {
      token: "t",
      webpush: { notification: { title: "web title", image: "https://x.test/w.png" } },
    },
    validate_only: true,
  }))!;
  assert.deepEqual([web.platform, web.title, web.image, web.validateOnly], [
    "web",
    "web title",
    "https://x.test/w.png",
    true,
  ]);
  assert.equal(pushItem(record(SEND, { message: { topic: "news" } }))!.to, "/topics/news");
  assert.equal(
    pushItem(record(SEND, { message: { condition: "'a' in topics" } }))!.platform,
    "topic",
  );
  assert.equal(pushItem(record("/token", {})), undefined, "an OAuth request is no push");
});

Deno.test("inbox items: an e-mail keeps from, to, subject, HTML, text and its idempotency key", () => {
  const mail = emailItem(record("/emails", {
    from: "Acme <n@acme.test>",
    to: ["a@x.test"],
    subject: "Hi",
    html: "<p>Hi</p>",
    text: "Hi",
  }, { headers: { "idempotency-key": "0b0b0b0b-0000-4000-8000-000000000000" } }))!;
  assert.deepEqual(
    [mail.from, mail.to, mail.subject, mail.html, mail.text, mail.deliveryId],
    [
      "Acme <n@acme.test>",
      ["a@x.test"],
      "Hi",
      "<p>Hi</p>",
      "Hi",
      "0b0b0b0b-0000-4000-8000-000000000000",
    ],
  );
  assert.equal(emailItem(record("/emails", {}, { method: "GET" })), undefined);
});

Deno.test("inbox controls: each mode becomes the stand-in's behaviour on its own", () => {
  assert.deepEqual(_behaviour("email", { mode: "normal" }), {
    latency_ms: 0,
    responses: [],
    repeat_last: false,
  });
  assert.deepEqual(_behaviour("email", { mode: "slow", latency_ms: 2000 }), {
    latency_ms: 2000,
    responses: [],
    repeat_last: false,
  });
  assert.deepEqual(
    (_behaviour("webhook", { mode: "fail", status: 503 }) as Json).responses[0].status,
    503,
  );
  assert.deepEqual(_behaviour("fcm", { mode: "fcm_error", fcm_error: "UNREGISTERED" }), {
    latency_ms: 0,
    responses: [{ fcm_error: "UNREGISTERED" }],
    repeat_last: true,
  });
  assert.deepEqual(
    (_behaviour("fcm", { mode: "rate_limited", retry_after: 30 }) as Json).responses,
    [
      { fcm_error: "QUOTA_EXCEEDED", retry_after: 30 },
    ],
  );
  assert.deepEqual(
    (_behaviour("email", { mode: "rate_limited", retry_after: 30 }) as Json).responses[0].headers,
    {
      "retry-after": "30",
    },
  );
  assert.match(
    _behaviour("email", { mode: "fcm_error", fcm_error: "X_Y" }) as string,
    /for the FCM stand-in/,
  );
  assert.match(
    _behaviour("fcm", { mode: "rate_limited", retry_after: 1.5 }) as string,
    /whole seconds/,
  );
});

Deno.test("inbox reference: every function's document, pointed at the same-origin proxy; Swagger UI's files only", async () => {
  const page = await fetch(`${INBOX}/reference`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /swagger-ui-bundle\.js/);
  for (const fn of ["notify", "hooks", "dispatch", "health", "metrics"]) {
    const response = await fetch(`${INBOX}/reference/${fn}.json`);
    assert.equal(response.status, 200, fn);
    const doc = await response.json();
    assert.deepEqual(doc.servers.map((s: Json) => s.url), ["/api/proxy/functions/v1"]);
    assert.ok(Object.keys(doc.paths).some((p) => p.startsWith(`/${fn}`)), fn);
  }
  const unknown = await fetch(`${INBOX}/reference/secrets.json`);
  assert.equal(unknown.status, 404);
  await unknown.body?.cancel();
  const bundle = await fetch(`${INBOX}/vendor/swagger-ui/swagger-ui-bundle.js`);
  assert.equal(bundle.status, 200);
  assert.match(bundle.headers.get("content-type")!, /^text\/javascript/);
  await bundle.body?.cancel();
  for (
    const path of ["/vendor/swagger-ui/package.json", "/vendor/swagger-ui/..%2F..%2Fpackage.json"]
  ) {
    const other = await fetch(`${INBOX}${path}`);
    assert.equal(other.status, 404, path);
    await other.body?.cancel();
  }
});

Deno.test("inbox reference: try-it goes through the proxy to the local API, with an apikey added when absent", async () => {
  const health = await fetch(`${INBOX}/api/proxy/functions/v1/health`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: "ok" });
  const devices = await fetch(`${INBOX}/api/proxy/functions/v1/notify/devices`);
  assert.equal(devices.status, 403, "the anon key alone names no user: the API's own 403");
  assert.equal(devices.headers.get("content-type"), "application/problem+json");
  await devices.body?.cancel();
  const ready = await fetch(`${INBOX}/api/proxy/functions/v1/health/ready`, {
    headers: { authorization: `Bearer ${stack.serviceRoleKey}` },
  });
  const body = await ready.json();
  assert.ok(body.build, "the key went through: readiness shows its details");
});
