/**
 * The local gateway enforces verify_jwt as Supabase does, and the notify
 * function answers bad input with precise problem+json, never a 5xx.
 */
import assert from "node:assert/strict";
import { adminSql, createUser, stack, userToken } from "./support/stack.ts";

const call = (path: string, init: RequestInit & { token?: string } = {}) => {
  const headers = new Headers(init.headers);
  if (init.token) headers.set("authorization", `Bearer ${init.token}`);
  return fetch(`${stack.apiUrl}/functions/v1/${path}`, { ...init, headers });
};

Deno.test("gateway: refuses a missing or forged JWT before the function runs", async () => {
  const missing = await call("notify/devices");
  assert.equal(missing.status, 401);
  assert.equal((await missing.json()).code, "UNAUTHORIZED_NO_AUTH_HEADER");
  const forged = await userToken(crypto.randomUUID());
  const tampered = forged.slice(0, -4) + (forged.endsWith("AAAA") ? "BBBB" : "AAAA");
  const invalid = await call("notify/devices", { token: tampered });
  assert.equal(invalid.status, 401);
  assert.equal((await invalid.json()).code, "UNAUTHORIZED_INVALID_JWT_FORMAT");
});

Deno.test("gateway: accepts ES256 user tokens verified through the published JWKS", async () => {
  const jwks = await (await fetch(`${stack.apiUrl}/auth/v1/.well-known/jwks.json`)).json();
  assert.equal(jwks.keys[0].alg, "ES256");
  assert.equal(jwks.keys[0].d, undefined, "the private part is never published");
  const sql = adminSql();
  try {
    const user = await createUser(sql, "es256");
    const response = await call("notify/devices", {
      token: await userToken(user.id, { alg: "ES256" }),
    });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { devices: [] });
  } finally {
    await sql.end();
  }
});

Deno.test("gateway: an expired token is refused", async () => {
  const expired = await userToken(crypto.randomUUID(), {
    expiresIn: Math.floor(Date.now() / 1000) - 60,
  });
  assert.equal((await call("notify/devices", { token: expired })).status, 401);
});

Deno.test("gateway: an unknown function is a 404", async () => {
  const response = await call("nope", { token: stack.anonKey });
  assert.equal(response.status, 404);
  assert.equal((await response.json()).code, "NOT_FOUND");
});

Deno.test("notify: the anon key passes the gateway but not the function", async () => {
  const response = await call("notify/devices", { token: stack.anonKey });
  assert.equal(response.status, 403);
  assert.equal(response.headers.get("content-type"), "application/problem+json");
});

Deno.test("notify: bad input gets a precise 4xx problem naming the field", async () => {
  const sql = adminSql();
  try {
    const user = await createUser(sql, "badinput");
    const post = (
      body: string,
      headers: Record<string, string> = { "content-type": "application/json" },
    ) =>
      call("notify", {
        method: "POST",
        token: user.token,
        body,
        headers: { ...headers, "x-request-id": "req-42" },
      });
    const cases: [string, Response, number, string?][] = [
      ["malformed JSON", await post("{"), 400],
      ["wrong content type", await post("{}", { "content-type": "text/plain" }), 415],
      [
        "unknown field",
        await post(JSON.stringify({ user_ids: [user.id], title: "x", colour: "red" })),
        422,
      ],
      [
        "bad UUID",
        await post(JSON.stringify({ user_ids: ["not-a-uuid"], title: "x" })),
        422,
        "user_ids.0",
      ],
      [
        "non-string data value",
        await post(JSON.stringify({ user_ids: [user.id], data: { n: 1 } })),
        422,
        "data.n",
      ],
      [
        "reserved data key",
        await post(JSON.stringify({ user_ids: [user.id], data: { "google.x": "1" } })),
        422,
      ],
      ["nothing to say", await post(JSON.stringify({ user_ids: [user.id] })), 422, "title"],
      [
        "U+0000 in a string",
        await post(JSON.stringify({ user_ids: [user.id], title: "a\u0000b" })),
        422,
        "title",
      ],
      [
        "lone surrogate in a data value",
        await post(JSON.stringify({ user_ids: [user.id], data: { k: "\ud800" } })),
        422,
        "data.k",
      ],
      [
        "send_at out of range",
        await post(
          JSON.stringify({ user_ids: [user.id], title: "x", send_at: "0000-01-01T00:00:00Z" }),
        ),
        422,
        "send_at",
      ],
      [
        "invalid time zone",
        await call("notify/preferences", {
          method: "PUT",
          token: user.token,
          body: JSON.stringify({ time_zone: "Mars/Olympus" }),
          headers: { "content-type": "application/json", "x-request-id": "req-42" },
        }),
        422,
        "time_zone",
      ],
      [
        "oversized body",
        await post(JSON.stringify({ user_ids: [user.id], title: "x".repeat(1_100_000) })),
        413,
      ],
    ];
    for (const [name, response, status, field] of cases) {
      assert.equal(response.status, status, name);
      assert.equal(response.headers.get("content-type"), "application/problem+json", name);
      const problem = await response.json();
      assert.equal(problem.request_id, "req-42", name);
      if (field) {
        assert.ok(
          problem.errors.some((e: { field: string }) => e.field === field),
          `${name}: ${JSON.stringify(problem)}`,
        );
      }
    }
    // A valid token whose account was deleted meanwhile: a 422, not a crash.
    const ghost = await createUser(sql, "ghost");
    await sql`delete from auth.users where id = ${ghost.id}`;
    const orphan = await call("notify/devices", {
      method: "PUT",
      token: ghost.token,
      body: JSON.stringify({ token: `ghost-${crypto.randomUUID()}`, platform: "ios" }),
      headers: { "content-type": "application/json" },
    });
    assert.equal(orphan.status, 422);
    assert.equal((await orphan.json()).type, "https://herald.dev/problems/unknown-reference");
    const badId = await call("notify/devices/123", { method: "DELETE", token: user.token });
    assert.equal(badId.status, 422);
    await badId.body?.cancel();
    const preflight = await call("notify", {
      method: "OPTIONS",
      headers: {
        origin: "https://app.example.test",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, idempotency-key",
      },
    });
    assert.equal(
      preflight.status,
      204,
      "browsers may call from any origin (bearer tokens, no cookies)",
    );
    assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
    assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /idempotency-key/);
    await preflight.body?.cancel();
    const wrongMethod = await call("notify/preferences", { method: "DELETE", token: user.token });
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.get("allow"), "GET, PUT");
    assert.equal((await wrongMethod.json()).type, "https://herald.dev/problems/method-not-allowed");
    const unknownRoute = await call("notify/elsewhere", { token: user.token });
    assert.equal(unknownRoute.status, 404);
    await unknownRoute.body?.cancel();
  } finally {
    await sql.end();
  }
});
