/**
 * Every function's published OpenAPI document against what the function
 * answers: each documented JSON success answer (status by status) is
 * produced live and held to the document's own schema, read back from the
 * served JSON with zod's `fromJSONSchema` (strict: a field the document does
 * not list fails, as does one it lists and the answer lacks). The last test
 * fails when a documented answer was never produced here.
 */
import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { z } from "zod";
import { LOCAL_HOOK_SECRET } from "../scripts/stack/config.ts";
import { adminSql, createUser, stack, type TestUser } from "./support/stack.ts";

// Straight to the edge runtime: Kong's own answers are tests/kong/'s.
const EDGE = `http://127.0.0.1:${stack.ports.edge}/functions/v1`;
const FUNCTIONS = ["dispatch", "health", "hooks", "metrics", "notify"];
const SERVICE = { authorization: `Bearer ${stack.serviceRoleKey}` };

// deno-lint-ignore no-explicit-any
type Json = any;

const documents: Record<string, Json> = {};
for (const fn of FUNCTIONS) {
  const response = await fetch(`${EDGE}/${fn}/openapi.json`);
  assert.equal(response.status, 200, fn);
  documents[fn] = await response.json();
}

/** `<method> <documented path> <status>` of every answer held to its schema. */
const held = new Set<string>();

/**
 * Calls `path` (concrete) as the operation documented at `template`, and holds
 * the answer to that operation's schema for its status. Returns the body.
 */
async function call(
  method: string,
  template: string,
  init: { path?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<Json> {
  const response = await fetch(`${EDGE}${init.path ?? template}`, {
    method: method.toUpperCase(),
    headers: {
      ...(init.body === undefined ? {} : { "content-type": "application/json" }),
      ...init.headers,
    },
    body: init.body === undefined
      ? undefined
      : typeof init.body === "string"
      ? init.body
      : JSON.stringify(init.body),
  });
  const text = await response.text();
  const fn = template.split("/")[1];
  const documented = documents[fn].paths[template]?.[method]?.responses?.[response.status];
  assert.ok(
    documented,
    `${method} ${template} answered an undocumented ${response.status}: ${text}`,
  );
  if (response.status === 204) return undefined;
  const schema = documented.content?.["application/json"]?.schema;
  assert.ok(schema, `${method} ${template} ${response.status}: no JSON schema documented`);
  const body = JSON.parse(text);
  const checked = z.fromJSONSchema(schema).safeParse(body);
  assert.ok(
    checked.success,
    `${method} ${template} ${response.status} is not what its document says:\n${
      checked.error?.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`).join("\n")
    }\n${text.slice(0, 2000)}`,
  );
  held.add(`${method} ${template} ${response.status}`);
  return body;
}

const as = (user: TestUser) => ({ authorization: `Bearer ${user.token}` });

Deno.test("openapi answers: notify's account routes (devices, topics, preferences, webhook endpoints)", async () => {
  const sql = adminSql();
  const user = await createUser(sql, "answers");
  try {
    await call("put", "/notify/devices", {
      headers: as(user),
      body: { token: `answers-${crypto.randomUUID()}`, platform: "android" },
    });
    const { devices } = await call("get", "/notify/devices", { headers: as(user) });
    assert.equal(devices.length, 1);
    await call("delete", "/notify/devices/{id}", {
      path: `/notify/devices/${devices[0].id}`,
      headers: as(user),
    });

    const topic = `answers-${crypto.randomUUID().slice(0, 8)}`;
    await call("put", "/notify/topics/{topic}", {
      path: `/notify/topics/${topic}`,
      headers: as(user),
    });
    await call("put", "/notify/topics/{topic}", {
      path: `/notify/topics/${topic}?user_id=${user.id}`,
      headers: SERVICE,
    });
    assert.equal((await call("get", "/notify/topics", { headers: as(user) })).topics.length, 1);
    await call("delete", "/notify/topics/{topic}", {
      path: `/notify/topics/${topic}`,
      headers: as(user),
    });

    assert.equal(
      (await call("get", "/notify/preferences", { headers: as(user) })).quiet_hours,
      null,
    );
    await call("put", "/notify/preferences", {
      headers: as(user),
      body: {
        time_zone: "Europe/Paris",
        quiet_hours: { start: "22:00", end: "07:00" },
        opt_outs: [{ category: "marketing", channel: "email" }],
      },
    });
    await call("get", "/notify/preferences", { headers: as(user) });

    const endpoint = await call("post", "/notify/webhook-endpoints", {
      headers: as(user),
      body: { url: "https://hooks.example.invalid/herald" },
    });
    const at = `/notify/webhook-endpoints/${endpoint.id}`;
    await call("get", "/notify/webhook-endpoints", { headers: as(user) });
    await call("patch", "/notify/webhook-endpoints/{id}", {
      path: at,
      headers: as(user),
      body: { url: "https://hooks.example.invalid/herald/v2" },
    });
    await call("post", "/notify/webhook-endpoints/{id}/rotate-secret", {
      path: `${at}/rotate-secret`,
      headers: as(user),
    });
    await call("delete", "/notify/webhook-endpoints/{id}", { path: at, headers: as(user) });
  } finally {
    await sql`delete from auth.users where id = ${user.id}`;
    await sql.end();
  }
});

Deno.test("openapi answers: notify's notifications (inline 201, accepted 202, status, cancel, bulk)", async () => {
  const sql = adminSql();
  const user = await createUser(sql, "answers");
  try {
    await sql`insert into herald.device_tokens (user_id, token, platform)
      values (${user.id}, ${`answers-${user.id}`}, 'android')`;
    // Due now and small: attempted inline against the FCM stand-in.
    const sent = await call("post", "/notify", {
      headers: SERVICE,
      body: { user_ids: [user.id], title: "answers", data: { k: "v" } },
    });
    assert.ok(sent.results, "attempted inline");
    const status = await call("get", "/notify/notifications/{id}", {
      path: `/notify/notifications/${sent.id}`,
      headers: SERVICE,
    });
    assert.ok(status.deliveries[0].attempt_log.length > 0, "an attempt to show");
    await call("get", "/notify/notifications/{id}", {
      path: `/notify/notifications/${sent.id}`,
      headers: as(user),
    });

    const later = await call("post", "/notify", {
      headers: SERVICE,
      body: {
        user_ids: [user.id],
        title: "answers, later",
        send_at: new Date(Date.now() + 3_600_000).toISOString(),
      },
    });
    assert.equal(later.results, undefined, "scheduled: accepted, not attempted");
    await call("post", "/notify/notifications/{id}/cancel", {
      path: `/notify/notifications/${later.id}/cancel`,
      headers: SERVICE,
    });

    const bulk = await call("post", "/notify/bulk", {
      headers: SERVICE,
      body: {
        user_ids: [user.id],
        title: "answers, bulk",
        send_at: new Date(Date.now() + 3_600_000).toISOString(),
      },
    });
    await call("get", "/notify/bulk/{id}", { path: `/notify/bulk/${bulk.id}`, headers: SERVICE });
    await call("post", "/notify/notifications/{id}/cancel", {
      path: `/notify/notifications/${bulk.id}/cancel`,
      headers: SERVICE,
    });
  } finally {
    await sql`delete from herald.notifications where id in (
      select notification_id from herald.deliveries where recipient_id = ${user.id})`;
    await sql`delete from auth.users where id = ${user.id}`;
    await sql.end();
  }
});

Deno.test("openapi answers: dispatch (a round, dead letters, replay), health, hooks, every document", async () => {
  const sql = adminSql();
  const user = await createUser(sql, "answers");
  const table = `answers_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  try {
    await call("post", "/dispatch", { headers: SERVICE });
    const [{ id }] = await sql`
      insert into herald.notifications (title, audience) values ('answers, dead', '{}')
      returning id`;
    await sql`insert into herald.deliveries (notification_id, created_at, recipient_id, channel,
        platform, target, status, attempts, last_error)
      select id, created_at, ${user.id}, 'push', 'android', ${`answers-dead-${id}`}, 'dead', 8,
        'UNAVAILABLE' from herald.notifications where id = ${id}`;
    const page = await call("get", "/dispatch/dead-letters", {
      path: `/dispatch/dead-letters?notification_id=${id}`,
      headers: SERVICE,
    });
    assert.equal(page.dead_letters.length, 1);
    await call("post", "/dispatch/dead-letters/replay", {
      headers: SERVICE,
      body: { notification_id: id },
    });
    await sql`delete from herald.notifications where id = ${id}`;

    await call("get", "/health");
    await call("get", "/health/ready");
    await call("get", "/health/ready", { headers: SERVICE });

    await sql`insert into herald.hook_rules (name, table_name, event, condition, template)
      values (${table}, ${table}, 'INSERT', '{}',
        ${sql.json({ recipients: ["{{record.user_id}}", "{{record.note}}"], title: "answers" })})`;
    const event = JSON.stringify({
      type: "INSERT",
      table,
      schema: "public",
      record: { user_id: user.id, note: "not a user id" },
      old_record: null,
    });
    const webhookId = `msg_${crypto.randomUUID()}`;
    const now = new Date();
    const signed = {
      "webhook-id": webhookId,
      "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
      "webhook-signature": new Webhook(LOCAL_HOOK_SECRET).sign(webhookId, now, event),
    };
    const outcome = await call("post", "/hooks", { headers: signed, body: event });
    assert.equal(outcome.notifications.length, 1);
    assert.deepEqual(outcome.notifications[0].skipped, ["not a user id"]);
    assert.equal((await call("post", "/hooks", { headers: signed, body: event })).duplicate, true);
    await sql`delete from herald.notifications where id = ${
      outcome.notifications[0].notification_id
    }`;

    for (const fn of FUNCTIONS) await call("get", `/${fn}/openapi.json`);
  } finally {
    await sql`delete from herald.hook_rules where table_name = ${table}`;
    await sql`delete from auth.users where id = ${user.id}`;
    await sql.end();
  }
});

Deno.test("openapi answers: every documented JSON success answer was produced and held to its schema", () => {
  const missing: string[] = [];
  for (const [fn, document] of Object.entries(documents)) {
    for (const [path, item] of Object.entries(document.paths as Record<string, Json>)) {
      for (const [method, operation] of Object.entries(item as Record<string, Json>)) {
        for (
          const [status, answer] of Object.entries(operation.responses as Record<string, Json>)
        ) {
          if (!status.startsWith("2") || !answer.content?.["application/json"]) continue;
          if (!held.has(`${method} ${path} ${status}`)) {
            missing.push(`${fn}: ${method} ${path} ${status}`);
          }
        }
      }
    }
  }
  assert.deepEqual(missing, []);
});
