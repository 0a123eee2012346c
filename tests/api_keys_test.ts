/**
 * Supabase's API keys as the platform sends them, through the gateway: secret
 * keys (`sb_secret_…`) wherever the service-role key works, publishable keys
 * (`sb_publishable_…`) where the anon key does, in `apikey`, `sb-api-key` or
 * (the legacy way) `Authorization`.
 */
import assert from "node:assert/strict";
import {
  adminSql,
  apiHeaders,
  createUser,
  functionsUrl,
  stack,
  userToken,
} from "./support/stack.ts";

const call = (path: string, headers: Record<string, string>, init: RequestInit = {}) =>
  fetch(`${stack.apiUrl}/functions/v1/${path}`, { ...init, headers: apiHeaders(headers) });

const notifyBody = (userId: string) =>
  JSON.stringify({
    user_ids: [userId],
    title: "Keys",
    send_at: new Date(Date.now() + 3_600_000).toISOString(),
  });

Deno.test("api keys: a secret key is the service in apikey, sb-api-key or Authorization", async () => {
  const sql = adminSql();
  try {
    const user = await createUser(sql, "keys");
    for (
      const headers of <Record<string, string>[]> [
        { apikey: stack.secretKey },
        { "sb-api-key": stack.secretKey },
        { authorization: `Bearer ${stack.secretKey}` },
        { apikey: stack.publishableKey, authorization: `Bearer ${stack.secretKey}` },
      ]
    ) {
      const response = await call("notify/bulk", {
        ...headers,
        "content-type": "application/json",
      }, { method: "POST", body: notifyBody(user.id) });
      assert.equal(
        response.status,
        202,
        `${Object.keys(headers)}: ${await response.clone().text()}`,
      );
      const { id } = await response.json();
      await sql`update herald.deliveries set status = 'cancelled' where notification_id = ${id}`;
    }
  } finally {
    await sql.end();
  }
});

Deno.test("api keys: a publishable key alone is the anon key (403); beside a user's token the user calls", async () => {
  const sql = adminSql();
  try {
    const user = await createUser(sql, "keys-user");
    for (
      const headers of <Record<string, string>[]> [
        { apikey: stack.publishableKey },
        { authorization: `Bearer ${stack.publishableKey}` },
      ]
    ) {
      const response = await call("notify/devices", headers);
      assert.equal(response.status, 403, Object.keys(headers).join());
      assert.equal((await response.json()).type, "https://herald.dev/problems/sign-in-required");
    }
    const asUser = await call("notify/devices", {
      apikey: stack.publishableKey,
      authorization: `Bearer ${await userToken(user.id)}`,
    });
    assert.equal(asUser.status, 200);
    assert.deepEqual(await asUser.json(), { devices: [] });
    const bulkAsUser = await call("notify/bulk", {
      apikey: stack.publishableKey,
      authorization: `Bearer ${await userToken(user.id)}`,
      "content-type": "application/json",
    }, { method: "POST", body: notifyBody(user.id) });
    assert.equal(bulkAsUser.status, 403, "a publishable key never adds service powers");
    await bulkAsUser.body?.cancel();
  } finally {
    await sql.end();
  }
});

Deno.test("api keys: the anon key in Authorization is anonymous beside a secret key (403), through Kong", async () => {
  for (const anonymous of [stack.anonKey, stack.publishableKey]) {
    const response = await call("notify/bulk", {
      apikey: stack.secretKey,
      authorization: `Bearer ${anonymous}`,
      "content-type": "application/json",
    }, { method: "POST", body: notifyBody(crypto.randomUUID()) });
    assert.equal(response.status, 403, await response.clone().text());
    assert.equal((await response.json()).type, "https://herald.dev/problems/sign-in-required");
  }
});

Deno.test("api keys: an unknown sb_ key is a 401, never the service", async () => {
  for (
    const headers of <Record<string, string>[]> [
      { apikey: "sb_secret_not-this-projects-key-0000000000" },
      { authorization: "Bearer sb_secret_not-this-projects-key-0000000000" },
      { apikey: "sb_publishable_not-this-projects-key-000000" },
    ]
  ) {
    const response = await call("notify/devices", headers);
    assert.equal(response.status, 401, JSON.stringify(headers));
    const body = await response.json();
    // In apikey, Kong's key-auth refuses it first; in Authorization, the function does.
    if (headers.apikey) assert.equal(body.message, "Unauthorized");
    else assert.equal(body.type, "https://herald.dev/problems/invalid-token");
  }
});

Deno.test("api keys: dispatch and readiness details accept a secret key in apikey", async () => {
  const dispatched = await call("dispatch/dead-letters", { apikey: stack.secretKey });
  assert.equal(dispatched.status, 200, await dispatched.clone().text());
  await dispatched.body?.cancel();
  const refused = await call("dispatch/dead-letters", { apikey: stack.publishableKey });
  assert.equal(refused.status, 403);
  await refused.body?.cancel();
  const ready = await call("health/ready", { apikey: stack.secretKey });
  const body = await ready.json();
  assert.ok(body.checks, "a secret key unlocks the details");
  const anonymous = await (await call("health/ready", { apikey: stack.publishableKey })).json();
  assert.equal(anonymous.checks, undefined);
});

Deno.test("api keys: on operator endpoints a wrong credential beside the right key refuses the request; a public key beside it does not", async () => {
  const sql = adminSql();
  const user = await createUser(sql, "operator-keys");
  await sql.end();
  const wrongSecret = "sb_secret_not-this-projects-key-0000000000";
  const cases: [Record<string, string>, number][] = [
    [{ authorization: `Bearer ${stack.secretKey}`, apikey: stack.publishableKey }, 200],
    [{ authorization: `Bearer ${stack.serviceRoleKey}`, apikey: stack.anonKey }, 200],
    [{ authorization: `Bearer ${stack.secretKey}`, apikey: wrongSecret }, 403],
    [{ authorization: `Bearer ${stack.secretKey}`, "sb-api-key": "not-a-key" }, 403],
    [{ authorization: "Bearer not-a-key", apikey: stack.secretKey }, 403],
    [{ authorization: `Bearer ${user.token}`, apikey: stack.secretKey }, 403],
  ];
  // Straight to the edge runtime: Kong's key-auth would refuse an unknown apikey first.
  for (const path of ["dispatch/dead-letters", "metrics"]) {
    for (const [headers, status] of cases) {
      const response = await fetch(`${functionsUrl}/${path}`, { headers });
      assert.equal(response.status, status, `${path} ${JSON.stringify(headers)}`);
      await response.body?.cancel();
    }
  }
  for (const [headers, status] of cases) {
    const body = await (await fetch(`${functionsUrl}/health/ready`, { headers })).json();
    assert.equal(body.checks !== undefined, status === 200, JSON.stringify(headers));
  }
});
