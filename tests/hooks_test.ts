/**
 * Inbound database events: Standard Webhooks verification, rule matching and
 * template rendering, de-duplication by webhook-id, and a signature made by
 * herald.sign_standard_webhook in SQL verifying in the function. Signed
 * fixtures come from the `standardwebhooks` library, not from the code under test.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { Webhook } from "standardwebhooks";
import { LOCAL_HOOK_SECRET } from "../scripts/stack/config.ts";
import { createSql } from "../supabase/functions/_shared/db/sessions.ts";
import type { Logger } from "../supabase/functions/_shared/log.ts";
import {
  type DatabaseEvent,
  renderRule,
  renderTemplate,
} from "../supabase/functions/_shared/webhooks/render_template.ts";
import { createStandardWebhookVerifier } from "../supabase/functions/_shared/webhooks/standard_webhooks.ts";
import { createApp } from "../supabase/functions/hooks/app.ts";
import { adminSql, createUser, functionsUrl, stack } from "./support/stack.ts";

const ROTATED_OUT = "whsec_" + btoa("herald-hooks-test-previous-secret!");
const ROTATED_IN = "whsec_" + btoa("herald-hooks-test-current-secret!!");
const UNKNOWN = "whsec_" + btoa("herald-hooks-test-someone-elses!!!");

/** Headers of a request signed by the reference library. */
function signedHeaders(
  body: string,
  options: { secret?: string; id?: string; at?: Date } = {},
): Record<string, string> {
  const id = options.id ?? `msg_${crypto.randomUUID()}`;
  const at = options.at ?? new Date();
  return {
    "content-type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": new Webhook(options.secret ?? LOCAL_HOOK_SECRET).sign(id, at, body),
  };
}

/** POSTs to the hooks function through the local gateway. */
function postHook(body: string, headers: Record<string, string>): Promise<Response> {
  return fetch(`${functionsUrl}/hooks`, { method: "POST", headers, body });
}

/** A table name no other test's rules match. */
function uniqueTable(): string {
  return `orders_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

/** Runs `work` with an admin client, then deletes the rules on `table` and what its events created. */
async function withHookFixture(
  work: (sql: postgres.Sql, table: string) => Promise<void>,
): Promise<void> {
  const sql = adminSql();
  const table = uniqueTable();
  const started = new Date();
  try {
    await work(sql, table);
  } finally {
    await sql`delete from herald.notifications where id in (
      select unnest(notification_ids) from herald.hook_events where received_at >= ${started})`;
    await sql`delete from herald.hook_events where received_at >= ${started}`;
    await sql`delete from herald.hook_rules where table_name = ${table}`;
    await sql.end();
  }
}

function orderEvent(
  table: string,
  record: Record<string, unknown> | null,
  old: Record<string, unknown> | null = null,
): DatabaseEvent {
  const type = record === null ? "DELETE" : old === null ? "INSERT" : "UPDATE";
  return { type, table, schema: "public", record, old_record: old };
}

async function addRule(
  sql: postgres.Sql,
  table: string,
  rule: { event?: string; condition?: unknown; template: unknown; name?: string },
): Promise<string> {
  const name = rule.name ?? `${table}-${crypto.randomUUID().slice(0, 8)}`;
  await sql`insert into herald.hook_rules (name, table_name, event, condition, template)
    values (${name}, ${table}, ${rule.event ?? "UPDATE"},
      ${sql.json((rule.condition ?? {}) as postgres.JSONValue)},
      ${sql.json(rule.template as postgres.JSONValue)})`;
  return name;
}

const shippedRule = {
  condition: { record: { status: "shipped" } },
  template: {
    recipients: ["{{record.user_id}}", "{{record.reviewer_id}}"],
    title: "Order {{record.id}} shipped",
    body: "Now {{record.status}}, was {{old_record.status}}",
    data: { order: "{{record.id}}", source: "{{type}} {{schema}}.{{table}}" },
    priority: "high",
  },
};

Deno.test("hooks: a signed event matching a rule notifies the rendered recipient on their device", async () => {
  await withHookFixture(async (sql, table) => {
    const user = await createUser(sql, "hooks");
    await sql`insert into herald.device_tokens (user_id, token, platform)
      values (${user.id}, ${`hooks-${user.id}`}, 'android')`;
    const rule = await addRule(sql, table, shippedRule);
    const body = JSON.stringify(
      orderEvent(table, { id: 42, user_id: user.id, status: "shipped" }, {
        id: 42,
        user_id: user.id,
        status: "packed",
      }),
    );
    const headers: Record<string, string> = {
      ...signedHeaders(body),
      "x-request-id": "hooks-req-1",
    };

    const response = await postHook(body, headers);
    assert.equal(response.status, 200);
    const answer = await response.json();
    assert.equal(answer.event_id, headers["webhook-id"]);
    assert.equal(answer.duplicate, false);
    assert.equal(answer.notifications.length, 1);
    const [outcome] = answer.notifications;
    assert.equal(outcome.rule, rule);
    assert.equal(outcome.deliveries, 1);
    assert.deepEqual(
      outcome.skipped,
      [""],
      "the missing reviewer_id rendered empty and was skipped",
    );

    const [notification] = await sql`select title, body, data, priority, request_id
      from herald.notifications where id = ${outcome.notification_id}`;
    assert.deepEqual(notification, {
      title: "Order 42 shipped",
      body: "Now shipped, was packed",
      data: { order: "42", source: `UPDATE public.${table}` },
      priority: "high",
      request_id: "hooks-req-1",
    });
    const [delivery] = await sql`select recipient_id, target from herald.deliveries
      where notification_id = ${outcome.notification_id}`;
    assert.deepEqual(delivery, { recipient_id: user.id, target: `hooks-${user.id}` });
    const [event] = await sql`select rule_count, notification_ids from herald.hook_events
      where id = ${headers["webhook-id"]}`;
    assert.deepEqual(event, { rule_count: 1, notification_ids: [outcome.notification_id] });
  });
});

Deno.test("hooks: an event that does not contain a rule's condition creates no notification", async () => {
  await withHookFixture(async (sql, table) => {
    const user = await createUser(sql, "hooks-nomatch");
    await addRule(sql, table, shippedRule);
    await addRule(sql, table, { ...shippedRule, event: "INSERT", condition: {} });
    const body = JSON.stringify(
      orderEvent(table, { id: 7, user_id: user.id, status: "packed" }, { id: 7, status: "new" }),
    );
    const headers = signedHeaders(body);
    const response = await postHook(body, headers);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), {
      event_id: headers["webhook-id"],
      duplicate: false,
      notifications: [],
    });
    const [event] = await sql`select rule_count, notification_ids from herald.hook_events
      where id = ${headers["webhook-id"]}`;
    assert.deepEqual(event, { rule_count: 0, notification_ids: [] });
  });
});

Deno.test("hooks: a repeated webhook-id is answered as a duplicate and notifies once", async () => {
  await withHookFixture(async (sql, table) => {
    const user = await createUser(sql, "hooks-dup");
    await addRule(sql, table, shippedRule);
    const body = JSON.stringify(orderEvent(table, { id: 1, user_id: user.id, status: "shipped" }, {
      id: 1,
      status: "packed",
    }));
    const id = `msg_${crypto.randomUUID()}`;
    const first = await postHook(body, signedHeaders(body, { id }));
    assert.equal(first.status, 200);
    assert.equal((await first.json()).duplicate, false);
    // A retry is signed again (a new timestamp) but keeps its id.
    const retry = await postHook(
      body,
      signedHeaders(body, { id, at: new Date(Date.now() + 1000) }),
    );
    assert.equal(retry.status, 200);
    assert.deepEqual(await retry.json(), { event_id: id, duplicate: true, notifications: [] });
    const [{ count }] = await sql`select count(*)::integer from herald.notifications
      where data ->> 'source' = ${`UPDATE public.${table}`}`;
    assert.equal(count, 1);
  });
});

Deno.test("hooks: a failure rolls the event back with its notifications, so the sender's retry is processed", async () => {
  await withHookFixture(async (sql, table) => {
    const user = await createUser(sql, "hooks-rollback");
    await addRule(sql, table, shippedRule);
    const failing = `hooks_test_fail_${table}`;
    await sql.unsafe(`create function herald.${failing}() returns trigger language plpgsql as $$
      begin
        if new.data ->> 'source' like '%${table}' then raise exception 'injected failure'; end if;
        return new;
      end $$`);
    await sql.unsafe(`create trigger ${failing} before insert on herald.notifications
      for each row execute function herald.${failing}()`);
    const body = JSON.stringify(orderEvent(table, { id: 9, user_id: user.id, status: "shipped" }, {
      id: 9,
      status: "packed",
    }));
    const id = `msg_${crypto.randomUUID()}`;
    try {
      const failed = await postHook(body, signedHeaders(body, { id }));
      assert.equal(failed.status, 500);
      const problem = await failed.json();
      assert.equal(problem.type, "https://herald.dev/problems/internal");
      assert.doesNotMatch(problem.detail, /injected/, "the 500 says nothing about internals");
      const rows = await sql`select 1 from herald.hook_events where id = ${id}`;
      assert.equal(rows.length, 0, "the dedupe row rolled back with the failure");
    } finally {
      await sql.unsafe(`drop trigger ${failing} on herald.notifications`);
      await sql.unsafe(`drop function herald.${failing}()`);
    }
    const retried = await postHook(body, signedHeaders(body, { id }));
    assert.equal(retried.status, 200);
    const answer = await retried.json();
    assert.equal(answer.duplicate, false);
    assert.equal(answer.notifications.length, 1);
  });
});

Deno.test("hooks: a signature computed in SQL by herald.sign_standard_webhook verifies in the function", async () => {
  await withHookFixture(async (sql, table) => {
    const user = await createUser(sql, "hooks-sql");
    await addRule(sql, table, {
      event: "INSERT",
      template: { recipients: ["{{record.user_id}}"], title: "{{record.note}}" },
    });
    const id = `msg_${crypto.randomUUID().replaceAll("-", "")}`;
    const timestamp = Math.floor(Date.now() / 1000);
    // The payload is built and rendered as text by Postgres, exactly as
    // herald.post_database_event hands it to pg_net; non-ASCII proves UTF-8.
    const [{ body, signature }] = await sql`
      with event as (
        select jsonb_build_object('type', 'INSERT', 'table', ${table}::text, 'schema', 'public',
          'record', jsonb_build_object('id', 5, 'user_id', ${user.id}::uuid, 'note', 'Café ✓ — 5 €'),
          'old_record', null) as payload)
      select payload::text as body,
        herald.sign_standard_webhook(${LOCAL_HOOK_SECRET}::text, ${id}::text, ${timestamp}::bigint,
          payload::text) as signature
      from event`;
    assert.match(signature, /^v1,[A-Za-z0-9+/]{43}=$/);
    const response = await postHook(body, {
      "content-type": "application/json",
      "webhook-id": id,
      "webhook-timestamp": String(timestamp),
      "webhook-signature": signature,
    });
    assert.equal(response.status, 200, await response.clone().text());
    const answer = await response.json();
    assert.equal(answer.notifications.length, 1);
    const [notification] = await sql`select title from herald.notifications
      where id = ${answer.notifications[0].notification_id}`;
    assert.equal(notification.title, "Café ✓ — 5 €");
  });
});

Deno.test("hooks: refuses requests without a valid, fresh signature with a precise 401", async () => {
  const body = JSON.stringify(orderEvent(uniqueTable(), { id: 1 }));
  const headers = signedHeaders(body);
  const { "webhook-signature": _, ...unsigned } = headers;
  const cases: [string, Response, string, RegExp][] = [
    ["no headers", await postHook(body, {}), "missing-signature", /webhook-id/],
    ["no signature", await postHook(body, unsigned), "missing-signature", /webhook-signature/],
    [
      "tampered body",
      await postHook(body.replace('"id":1', '"id":2'), headers),
      "bad-signature",
      /matches/,
    ],
    [
      "signed with another secret",
      await postHook(body, signedHeaders(body, { secret: UNKNOWN })),
      "bad-signature",
      /matches/,
    ],
    [
      "older than 5 minutes",
      await postHook(body, signedHeaders(body, { at: new Date(Date.now() - 301_000) })),
      "stale-timestamp",
      /in the past/,
    ],
    [
      "more than 5 minutes ahead",
      await postHook(body, signedHeaders(body, { at: new Date(Date.now() + 301_000) })),
      "stale-timestamp",
      /in the future/,
    ],
    [
      "only an unknown signature version",
      await postHook(body, { ...headers, "webhook-signature": "v1a,abc" }),
      "bad-signature",
      /no v1 signature/,
    ],
  ];
  for (const [name, response, type, detail] of cases) {
    assert.equal(response.status, 401, name);
    assert.equal(response.headers.get("content-type"), "application/problem+json", name);
    const problem = await response.json();
    assert.equal(problem.type, `https://herald.dev/problems/${type}`, name);
    assert.match(problem.detail, detail, name);
    assert.ok(!JSON.stringify(problem).includes(LOCAL_HOOK_SECRET.slice(6)), name);
  }
});

Deno.test("hooks: a signed body that is not JSON is a 400, too large a 413, a wrong shape a 422 naming the field", async () => {
  const malformed = "{not json";
  const response = await postHook(malformed, signedHeaders(malformed));
  assert.equal(response.status, 400);
  assert.equal((await response.json()).type, "https://herald.dev/problems/malformed-json");
  const huge = JSON.stringify(orderEvent("t", { note: "x".repeat(1_100_000) }));
  const tooLarge = await postHook(huge, signedHeaders(huge));
  assert.equal(tooLarge.status, 413);
  assert.equal((await tooLarge.json()).type, "https://herald.dev/problems/body-too-large");

  const cases: [string, unknown, string][] = [
    ["unknown type", { ...orderEvent("t", { id: 1 }), type: "TRUNCATE" }, "type"],
    ["empty table", { ...orderEvent("t", { id: 1 }), table: "" }, "table"],
    ["long schema", { ...orderEvent("t", { id: 1 }), schema: "s".repeat(64) }, "schema"],
    ["record not an object", { ...orderEvent("t", { id: 1 }), record: [1] }, "record"],
    [
      "old_record missing",
      { type: "INSERT", table: "t", schema: "public", record: {} },
      "old_record",
    ],
  ];
  for (const [name, payload, field] of cases) {
    const body = JSON.stringify(payload);
    const invalid = await postHook(body, signedHeaders(body));
    assert.equal(invalid.status, 422, name);
    const problem = await invalid.json();
    assert.ok(
      problem.errors.some((e: { field: string }) => e.field === field),
      `${name}: ${JSON.stringify(problem)}`,
    );
  }
});

Deno.test("hooks: keys Supabase may add to the payload are tolerated; the fields used are still checked", async () => {
  await withHookFixture(async (sql, table) => {
    const user = await createUser(sql, "hooks-extra");
    await addRule(sql, table, {
      event: "INSERT",
      template: { recipients: ["{{record.user_id}}"], title: "New" },
    });
    const payload = {
      ...orderEvent(table, { id: 1, user_id: user.id }),
      commit_timestamp: "2026-11-29T10:00:00.000Z",
      columns: [{ name: "id", type: "int8" }],
      errors: null,
    };
    const body = JSON.stringify(payload);
    const response = await postHook(body, signedHeaders(body));
    assert.equal(response.status, 200, await response.clone().text());
    const answer = await response.json();
    assert.equal(answer.notifications.length, 1);
    assert.ok(answer.notifications[0].notification_id);

    const broken = JSON.stringify({ ...payload, type: "TRUNCATE" });
    const refused = await postHook(broken, signedHeaders(broken));
    assert.equal(refused.status, 422);
    await refused.body?.cancel();
  });
});

/** Each documented overrides key, alone in a rule's template. */
const OVERRIDES_ALONE: Record<string, unknown>[] = [
  { android: { priority: "high", notification: { channel_id: "orders" } } },
  { apns: { payload: { aps: { badge: 1 } } } },
  { webpush: { headers: { Urgency: "high" } } },
  { analytics_label: "order_shipped" },
  { email: { subject: "Your order" } },
];

for (const overrides of OVERRIDES_ALONE) {
  const key = Object.keys(overrides)[0];
  Deno.test(`hooks: a rule whose template carries overrides.${key} alone notifies with it`, async () => {
    await withHookFixture(async (sql, table) => {
      const user = await createUser(sql, `hooks-${key}`);
      await addRule(sql, table, {
        event: "INSERT",
        template: { recipients: ["{{record.user_id}}"], title: "Shipped", overrides },
      });
      const body = JSON.stringify(orderEvent(table, { id: 1, user_id: user.id }));
      const response = await postHook(body, signedHeaders(body));
      assert.equal(response.status, 200, await response.clone().text());
      const [outcome] = (await response.json()).notifications;
      const [row] = await sql`select overrides from herald.notifications
        where id = ${outcome.notification_id}`;
      assert.deepEqual(row.overrides, overrides);
    });
  });
}

Deno.test("hooks: during a rotation a signature made with either secret verifies", async () => {
  const sql = createSql({ url: stack.dbUrl, max: 2, applicationName: "hooks-test" });
  const lines: Record<string, unknown>[] = [];
  const log: Logger = (level, message, fields) => lines.push({ level, message, ...fields });
  const app = createApp({ sql, secrets: [ROTATED_OUT, ROTATED_IN], log });
  const started = new Date();
  try {
    const record = { id: 3, email: "private@example.test" };
    const body = JSON.stringify(orderEvent(uniqueTable(), record));
    for (const secret of [ROTATED_IN, ROTATED_OUT]) {
      const headers = signedHeaders(body, { secret });
      const response = await app.request("/hooks", { method: "POST", headers, body });
      assert.equal(response.status, 200);
      assert.equal((await response.json()).event_id, headers["webhook-id"]);
    }
    const retired = await app.request("/hooks", {
      method: "POST",
      headers: signedHeaders(body, { secret: LOCAL_HOOK_SECRET }),
      body,
    });
    assert.equal(retired.status, 401, "a secret not in the list does not verify");

    const events = lines.filter((l) => l.message === "database event");
    assert.equal(events.length, 2, "one log line per event");
    assert.ok(events.every((l) => l.request_id && l.event_id));
    const logged = JSON.stringify(lines);
    assert.ok(!logged.includes("private@example.test"), "the row's data is not logged");
    assert.ok(!logged.includes(ROTATED_IN.slice(6)) && !logged.includes(ROTATED_OUT.slice(6)));
  } finally {
    await sql`delete from herald.hook_events where received_at >= ${started}`;
    await sql.end();
  }
});

Deno.test("hooks: without a configured secret every request is a 503, signed or not", async () => {
  const sql = createSql({ url: stack.dbUrl, max: 1, applicationName: "hooks-test" });
  try {
    const app = createApp({ sql, secrets: [], log: () => {} });
    const body = JSON.stringify(orderEvent("t", { id: 1 }));
    for (const headers of [{}, signedHeaders(body)]) {
      const response = await app.request("/hooks", { method: "POST", headers, body });
      assert.equal(response.status, 503);
      assert.equal(
        (await response.json()).type,
        "https://herald.dev/problems/hooks-not-configured",
      );
    }
  } finally {
    await sql.end();
  }
});

Deno.test("createStandardWebhookVerifier() refuses secrets that are not whsec_ base64, without echoing them", () => {
  const invalid = [[], ["plain-secret"], ["whsec_"], ["whsec_not base64!"], [
    ROTATED_IN,
    "short-and-wrong",
  ]];
  for (const secrets of invalid) {
    assert.throws(
      () => createStandardWebhookVerifier({ secrets }),
      (error: Error) =>
        error instanceof RangeError &&
        secrets.map((s) => s.replace(/^whsec_/, "")).every((s) => !s || !error.message.includes(s)),
      JSON.stringify(secrets),
    );
  }
  assert.throws(
    () => createStandardWebhookVerifier({ secrets: [ROTATED_IN], toleranceSeconds: 0 }),
    RangeError,
  );
});

Deno.test("createStandardWebhookVerifier() takes time from `now` and accepts exactly the tolerance", async () => {
  const at = new Date("2026-11-24T12:00:00Z");
  const body = '{"hello":"world"}';
  const headers = new Headers(signedHeaders(body, { secret: ROTATED_IN, at }));
  for (const [offsetS, ok] of [[0, true], [300, true], [-300, true], [301, false], [-301, false]]) {
    const verifier = createStandardWebhookVerifier({
      secrets: [ROTATED_IN],
      now: () => at.getTime() + Number(offsetS) * 1000,
    });
    const result = verifier.verify(headers, new TextEncoder().encode(body));
    if (ok) assert.equal((await result).id, headers.get("webhook-id"), `offset ${offsetS}`);
    else await assert.rejects(result, { type: "stale-timestamp" }, `offset ${offsetS}`);
  }
});

Deno.test("createStandardWebhookVerifier() finds a v1 signature among several and ignores other versions", async () => {
  const body = "{}";
  const headers = signedHeaders(body, { secret: ROTATED_IN });
  const verifier = createStandardWebhookVerifier({ secrets: [ROTATED_IN] });
  const mine = headers["webhook-signature"];
  const other = signedHeaders(body, { secret: UNKNOWN, id: headers["webhook-id"] });
  const header = `v2,${mine.slice(3)} ${other["webhook-signature"]} ${mine}`;
  const verified = await verifier.verify(
    new Headers({ ...headers, "webhook-signature": header }),
    body,
  );
  assert.equal(verified.id, headers["webhook-id"]);
  await assert.rejects(
    verifier.verify(new Headers({ ...headers, "webhook-signature": `v2,${mine.slice(3)}` }), body),
    { type: "bad-signature" },
  );
});

const event: DatabaseEvent = {
  type: "UPDATE",
  table: "orders",
  schema: "public",
  record: {
    id: 42,
    status: "shipped",
    paid: true,
    total: 12.5,
    note: null,
    address: { city: "Lyon", lines: ["1 rue X", "2e étage"] },
    tags: ["a", "b"],
    ["__proto__"]: "own",
  },
  old_record: { status: "packed" },
};

const templateCases: [string, string][] = [
  ["Order {{record.id}} is {{record.status}}", "Order 42 is shipped"],
  ["{{ record.status }} / {{old_record.status}}", "shipped / packed"],
  ["{{type}} on {{schema}}.{{table}}", "UPDATE on public.orders"],
  ["{{record.paid}} {{record.total}}", "true 12.5"],
  ["[{{record.note}}] [{{record.missing}}] [{{old_record.id}}]", "[] [] []"],
  ["{{record.address.city}} {{record.address.lines.1}}", "Lyon 2e étage"],
  ["{{record.address}}", '{"city":"Lyon","lines":["1 rue X","2e étage"]}'],
  ["{{record.tags}} {{record.tags.length}}", '["a","b"] '],
  ["{{record.__proto__}}{{record.constructor}}{{record.constructor.name}}", ""],
  ["{{record.toString}}{{record.hasOwnProperty}}{{constructor}}{{globalThis}}", ""],
  ["{{record.status.length}} {{type.length}}", " "],
  [
    "{{ 1 + 1 }} {{record['id']}} {record.id} {{}}",
    "{{ 1 + 1 }} {{record['id']}} {record.id} {{}}",
  ],
];
for (const [template, expected] of templateCases) {
  Deno.test(`renderTemplate() renders ${JSON.stringify(template)}`, () => {
    assert.equal(renderTemplate(template, event), expected);
  });
}

Deno.test("renderRule() keeps UUID recipients once, reports the rest and expands an array column", () => {
  const a = "0b7f8a52-3c4b-4c61-9a57-6a1f3b2f7c10";
  const b = "6c1f1d4e-5a2b-4f3e-8d7c-9b0a1e2f3d4c";
  const rendered = renderRule(
    {
      recipients: [
        "{{record.user_id}}",
        "{{record.member_ids}}",
        "{{record.email}}",
        "{{record.nope}}",
        "{{record.user_id}}",
      ],
      title: "Hi {{record.name}}",
      body: "{{record.nope}}",
      data: { kind: "{{table}}", empty: "{{record.nope}}" },
      channels: ["push", "email"],
      priority: "high",
      critical: true,
      ttl_seconds: 60,
    },
    {
      ...event,
      record: {
        user_id: a.toUpperCase(),
        member_ids: [b, "not-a-uuid"],
        email: "x@example.test",
        name: "Ana",
      },
    },
  );
  assert.deepEqual(rendered.recipients, [a, b]);
  assert.deepEqual(rendered.skipped, ["not-a-uuid", "x@example.test", ""]);
  assert.deepEqual(rendered.content, {
    title: "Hi Ana",
    body: undefined,
    image: undefined,
    category: undefined,
    data: { kind: "orders", empty: "" },
    channels: ["push", "email"],
    priority: "high",
    critical: true,
    ttl_seconds: 60,
    overrides: undefined,
  });
});
