/**
 * `validate_only` on notify and bulk: FCM (its stand-in, which answers a dry
 * run with FCM's `fake_message_id` and lists nothing as delivered) receives
 * the request-level `validate_only: true`; without the option, or with it
 * false, the field is absent. Push only, on the API and in SQL alike.
 */
import assert from "node:assert/strict";
import { claimDue } from "../supabase/functions/_shared/outbox/outbox.ts";
import { apiHeaders, asService, fakeControl, stack, withAdminSql } from "./support/stack.ts";

function notify(body: Record<string, unknown>, path = "notify") {
  const headers = apiHeaders({
    authorization: `Bearer ${stack.serviceRoleKey}`,
    "content-type": "application/json",
  });
  headers.set("apikey", stack.serviceRoleKey);
  return fetch(`${stack.apiUrl}/functions/v1/${path}`, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
  });
}

/** What the FCM stand-in received for `token`: the request bodies. */
async function fcmBodiesFor(token: string): Promise<Record<string, unknown>[]> {
  const { requests } = await fakeControl("fcm", "requests");
  return (requests as { body: { message?: { token?: string } } }[])
    .map((r) => r.body as Record<string, unknown> & { message?: { token?: string } })
    .filter((b) => b.message?.token === token);
}

async function pushTo(token: string, extra: Record<string, unknown>) {
  const response = await notify({
    targets: [{ channel: "push", token, platform: "android" }],
    title: "validate_only test",
    ...extra,
  });
  const body = await response.json();
  assert.equal(response.status, 201, JSON.stringify(body));
  return body;
}

Deno.test("validate_only: true reaches FCM as validate_only: true, nothing is delivered, and the delivery ends sent", async () => {
  const token = `validate-${crypto.randomUUID()}`;
  const body = await pushTo(token, { validate_only: true });
  assert.equal(body.results[0].status, "sent");
  const [sent] = await fcmBodiesFor(token);
  assert.equal(sent.validate_only, true);
  const { messages } = await fakeControl("fcm", "messages");
  assert.ok(
    !(messages as { message: { token?: string } }[]).some((m) => m.message.token === token),
    "a dry run is not a delivered message",
  );
  const [delivery] = await withAdminSql((sql) =>
    sql`select d.provider_message_id, n.validate_only
      from herald.deliveries d join herald.notifications n on n.id = d.notification_id
      where d.target = ${token}`
  );
  assert.equal(delivery.validate_only, true);
  assert.match(delivery.provider_message_id, /\/messages\/fake_message_id$/);
});

for (const [label, extra] of [["absent", {}], ["false", { validate_only: false }]] as const) {
  Deno.test(`validate_only: ${label}, FCM gets no validate_only field and the message is delivered`, async () => {
    const token = `deliver-${crypto.randomUUID()}`;
    const before = (await fakeControl("fcm", "messages")).received as number;
    await pushTo(token, extra);
    const after = (await fakeControl("fcm", "messages")).received as number;
    assert.ok(
      after >= before + 1,
      `the stand-in counts every message it accepts: ${before} → ${after}`,
    );
    const [sent] = await fcmBodiesFor(token);
    assert.ok(!("validate_only" in sent), JSON.stringify(sent));
    const [row] = await withAdminSql((sql) =>
      sql`select n.validate_only from herald.deliveries d
        join herald.notifications n on n.id = d.notification_id where d.target = ${token}`
    );
    assert.equal(row.validate_only, false);
  });
}

for (
  const [label, extra] of [
    ["with the e-mail channel", { channels: ["email"] }],
    ["with push and webhook channels", { channels: ["push", "webhook"] }],
    ["with an e-mail target", {
      targets: [{ channel: "email", address: "someone@example.test" }],
    }],
  ] as const
) {
  Deno.test(`validate_only: refused ${label} (422 naming validate_only)`, async () => {
    const response = await notify({
      targets: [{ channel: "push", token: `t-${crypto.randomUUID()}`, platform: "web" }],
      title: "x",
      validate_only: true,
      ...extra,
    });
    const problem = await response.json();
    assert.equal(response.status, 422, JSON.stringify(problem));
    assert.match(JSON.stringify(problem), /validate_only is for push alone/);
  });
}

Deno.test("validate_only: a non-boolean is a 422", async () => {
  const response = await notify({
    targets: [{ channel: "push", token: "t", platform: "ios" }],
    title: "x",
    validate_only: "yes",
  });
  assert.equal(response.status, 422);
  assert.match(JSON.stringify(await response.json()), /validate_only/);
});

Deno.test("validate_only: bulk accepts it for push and refuses it with e-mail", async () => {
  const [user] = await withAdminSql((sql) =>
    sql`insert into auth.users (id, email)
      values (gen_random_uuid(), ${`bulk-validate-${crypto.randomUUID()}@example.test`}) returning id`
  );
  const ok = await notify({ user_ids: [user.id], title: "x", validate_only: true }, "notify/bulk");
  assert.equal(ok.status, 202, await ok.text());
  const refused = await notify(
    { user_ids: [user.id], title: "x", validate_only: true, channels: ["email"] },
    "notify/bulk",
  );
  await refused.body?.cancel();
  assert.equal(refused.status, 422);
});

Deno.test("validate_only: herald.enqueue stores it and the claim carries it to the provider", async () => {
  const token = `claim-${crypto.randomUUID()}`;
  await withAdminSql(async (sql) => {
    const [row] = await asService(
      sql,
      (tx) =>
        tx`select notification_id from herald.enqueue(null, ${
          tx.json({
            title: "x",
            validate_only: true,
            targets: [{ channel: "push", token, platform: "android" }],
          })
        })`,
    );
    const [mine] = await claimDue(sql, {
      limit: 10,
      leaseMs: 30_000,
      notificationId: row.notification_id,
    });
    assert.equal(mine?.notification.validateOnly, true);
    await sql`update herald.deliveries set status = 'cancelled' where id = ${mine!.id}`;
  });
});

for (
  const [label, content, message] of [
    ["an e-mail channel", { channels: ["email"] }, /validate_only is for push alone/],
    ["an e-mail target", {
      targets: [{ channel: "email", address: "a@example.test" }],
    }, /validate_only is for push alone/],
    ["a string", { validate_only: "true" }, /validate_only must be true or false/],
  ] as const
) {
  Deno.test(`validate_only: herald.enqueue refuses it with ${label} (22023)`, async () => {
    await withAdminSql((sql) =>
      assert.rejects(
        asService(sql, (tx) =>
          tx`select * from herald.enqueue(null, ${
            tx.json({
              title: "x",
              validate_only: true,
              targets: [{ channel: "push", token: "t", platform: "android" }],
              ...content,
            })
          })`),
        (error: { code?: string; message: string }) =>
          error.code === "22023" && message.test(error.message),
      )
    );
  });
}
