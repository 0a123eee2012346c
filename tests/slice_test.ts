/**
 * The thin slice end to end, through the real gateway with supabase-js: a
 * device registers, a notification is requested, the dispatcher process
 * delivers it to the FCM stand-in, and the outcome reads back.
 */
import assert from "node:assert/strict";
import { adminSql, clientAs, createUser, errorOf, stack } from "./support/stack.ts";
import { eventually, startDispatcher } from "./support/dispatcher_process.ts";

const fcmControl = async (path: string, init?: RequestInit) => {
  const text = await (await fetch(`${stack.fakes.fcm}/_control/${path}`, init)).text();
  return text ? JSON.parse(text) : undefined;
};

Deno.test("slice: a registered device receives a requested push through the outbox and dispatcher", async () => {
  const sql = adminSql();
  const alice = await createUser(sql, "alice");
  const app = clientAs(alice.token);
  const token = `slice-${crypto.randomUUID()}`;
  await fcmControl("reset", { method: "POST" });

  const registered = await app.functions.invoke("notify/devices", {
    method: "PUT",
    body: { token, platform: "android" },
  });
  assert.equal(registered.error, null);
  assert.equal(registered.data.platform, "android");

  const requested = await app.functions.invoke("notify", {
    body: {
      user_ids: [alice.id],
      title: "Order shipped",
      body: "It is on its way",
      data: { order: "42" },
    },
  });
  assert.equal(requested.error, null);
  assert.equal(requested.data.deliveries, 1);
  const notificationId = requested.data.id;

  const dispatcher = await startDispatcher();
  let status;
  try {
    status = await eventually("the delivery to be sent", async () => {
      const { data } = await app.functions.invoke(`notify/notifications/${notificationId}`, {
        method: "GET",
      });
      return data?.deliveries?.[0]?.status === "sent" ? data : undefined;
    });
  } finally {
    const output = await dispatcher.stop();
    await sql.end();
    if (!status) console.error(output);
  }

  const [delivery] = status.deliveries;
  assert.equal(status.title, "Order shipped");
  assert.equal(delivery.attempts, 1);
  assert.match(delivery.provider_message_id, /^projects\/herald-local\/messages\/.+/);
  assert.equal(delivery.attempt_log.length, 1);
  assert.equal(delivery.attempt_log[0].outcome, "sent");

  const { requests } = await fcmControl("requests");
  const sends = requests.filter((r: { path: string }) => r.path.endsWith("/messages:send"));
  assert.equal(sends.length, 1);
  assert.equal(sends[0].path, "/v1/projects/herald-local/messages:send");
  assert.match(sends[0].headers.authorization, /^Bearer ya29\./);
  assert.deepEqual(sends[0].body.message, {
    token,
    notification: { title: "Order shipped", body: "It is on its way" },
    data: { order: "42" },
    android: { priority: "NORMAL" },
  });
});

Deno.test("slice: users manage only their own devices", async () => {
  const sql = adminSql();
  try {
    const alice = await createUser(sql, "alice");
    const bob = await createUser(sql, "bob");
    const asAlice = clientAs(alice.token);
    const asBob = clientAs(bob.token);

    const { data: device } = await asAlice.functions.invoke("notify/devices", {
      method: "PUT",
      body: { token: `own-${crypto.randomUUID()}`, platform: "ios" },
    });
    const bobsList = await asBob.functions.invoke("notify/devices", { method: "GET" });
    assert.deepEqual(bobsList.data.devices, []);

    const bobDeletes = await asBob.functions.invoke(`notify/devices/${device.id}`, {
      method: "DELETE",
    });
    assert.equal((await errorOf(bobDeletes.error)).status, 404);

    const alicesList = await asAlice.functions.invoke("notify/devices", { method: "GET" });
    assert.deepEqual(alicesList.data.devices.map((d: { id: string }) => d.id), [device.id]);

    const aliceDeletes = await asAlice.functions.invoke(`notify/devices/${device.id}`, {
      method: "DELETE",
    });
    assert.equal(aliceDeletes.error, null);
    const [{ count }] =
      await sql`select count(*)::int from herald.device_tokens where id = ${device.id}`;
    assert.equal(count, 0);
  } finally {
    await sql.end();
  }
});

Deno.test("slice: a token registered by another user moves to the last registrant", async () => {
  const sql = adminSql();
  try {
    const alice = await createUser(sql, "alice");
    const bob = await createUser(sql, "bob");
    const token = `shared-${crypto.randomUUID()}`;
    await clientAs(alice.token).functions.invoke("notify/devices", {
      method: "PUT",
      body: { token, platform: "android" },
    });
    await clientAs(bob.token).functions.invoke("notify/devices", {
      method: "PUT",
      body: { token, platform: "android" },
    });
    const [{ user_id }] =
      await sql`select user_id from herald.device_tokens where token = ${token}`;
    assert.equal(user_id, bob.id);
    const alices = await clientAs(alice.token).functions.invoke("notify/devices", {
      method: "GET",
    });
    assert.deepEqual(alices.data.devices, []);
  } finally {
    await sql.end();
  }
});

Deno.test("slice: a user may not notify another user, the service role may", async () => {
  const sql = adminSql();
  try {
    const alice = await createUser(sql, "alice");
    const bob = await createUser(sql, "bob");
    await clientAs(bob.token).functions.invoke("notify/devices", {
      method: "PUT",
      body: { token: `bob-${crypto.randomUUID()}`, platform: "web" },
    });
    const denied = await clientAs(alice.token).functions.invoke("notify", {
      body: { user_ids: [bob.id], body: "hi Bob" },
    });
    const problem = await errorOf(denied.error);
    assert.equal(problem.status, 403);
    assert.equal(problem.body.type, "https://herald.dev/problems/not-allowed");

    const allowed = await clientAs(stack.serviceRoleKey).functions.invoke("notify", {
      body: { user_ids: [bob.id], body: "hi Bob" },
    });
    assert.equal(allowed.error, null);
    assert.equal(allowed.data.deliveries, 1);

    const asAlice = await clientAs(alice.token).functions.invoke(
      `notify/notifications/${allowed.data.id}`,
      {
        method: "GET",
      },
    );
    assert.equal((await errorOf(asAlice.error)).status, 404);
    const asBob = await clientAs(bob.token).functions.invoke(
      `notify/notifications/${allowed.data.id}`,
      {
        method: "GET",
      },
    );
    assert.equal(asBob.data.sender_id, null);
    assert.equal(asBob.data.deliveries.length, 1);
  } finally {
    await sql.end();
  }
});
