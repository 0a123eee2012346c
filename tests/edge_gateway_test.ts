/**
 * The local gateway enforces verify_jwt as Supabase does, and the notify
 * function answers bad input with precise problem+json, never a 5xx.
 */
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { discoverFunctions, startGateway } from "../scripts/stack/edge_gateway.ts";
import { adminSql, apiHeaders, createUser, stack, userToken } from "./support/stack.ts";

/** Through the API port (the local Kong), as supabase-js calls: with an apikey. */
const call = (path: string, init: RequestInit & { token?: string } = {}) => {
  const headers = apiHeaders(init.headers);
  if (init.token) headers.set("authorization", `Bearer ${init.token}`);
  return fetch(`${stack.apiUrl}/functions/v1/${path}`, { ...init, headers });
};

/** Straight to the edge runtime behind Kong: what the function does when Kong lets anything through. */
const callFunction = (path: string, init: RequestInit = {}) =>
  fetch(`http://127.0.0.1:${stack.ports.edge}/functions/v1/${path}`, init);

/** A gateway of our own whose notify route has the platform's verify_jwt check on. */
async function withVerifyingGateway(work: (url: string) => Promise<void>): Promise<void> {
  const functions = (await discoverFunctions(stack.root, stack.ports.functions))
    .map((f) => ({ ...f, verifyJwt: true }));
  const { d: _d, ...publicJwk } = JSON.parse(await Deno.readTextFile(stack.jwtSigningKeyPath));
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const gateway = startGateway({
    port,
    functions,
    jwtSecret: stack.jwtSecret,
    jwks: { keys: [publicJwk] },
  });
  try {
    await work(`http://127.0.0.1:${port}/functions/v1`);
  } finally {
    await gateway.close();
  }
}

Deno.test("gateway: with verify_jwt on, refuses a missing, forged or exp-less JWT before the function runs", async () => {
  await withVerifyingGateway(async (base) => {
    const get = (token?: string) =>
      fetch(`${base}/notify/devices`, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
    const missing = await get();
    assert.equal(missing.status, 401);
    assert.equal((await missing.json()).code, "UNAUTHORIZED_NO_AUTH_HEADER");
    const forged = await userToken(crypto.randomUUID());
    const tampered = forged.slice(0, -4) + (forged.endsWith("AAAA") ? "BBBB" : "AAAA");
    const invalid = await get(tampered);
    assert.equal(invalid.status, 401);
    assert.equal((await invalid.json()).code, "UNAUTHORIZED_INVALID_JWT_FORMAT");
    const noExp = await new SignJWT({ role: "authenticated", aud: "authenticated" })
      .setSubject(crypto.randomUUID()).setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .sign(new TextEncoder().encode(stack.jwtSecret));
    const withoutExp = await get(noExp);
    assert.equal(withoutExp.status, 401, "a token without exp is refused");
    assert.equal((await withoutExp.json()).code, "UNAUTHORIZED_INVALID_JWT_FORMAT");
  });
});

Deno.test("notify: verifies every caller itself (verify_jwt is off so new API keys reach it)", async () => {
  const missing = await callFunction("notify/devices");
  assert.equal(missing.status, 401);
  assert.equal((await missing.json()).type, "https://herald.dev/problems/unauthenticated");
  const forged = await userToken(crypto.randomUUID());
  const tampered = forged.slice(0, -4) + (forged.endsWith("AAAA") ? "BBBB" : "AAAA");
  const invalid = await call("notify/devices", { token: tampered });
  assert.equal(invalid.status, 401);
  assert.equal((await invalid.json()).type, "https://herald.dev/problems/invalid-token");
  const sign = (claims: Record<string, unknown>, exp = true) => {
    const jwt = new SignJWT(claims).setSubject(crypto.randomUUID()).setIssuedAt()
      .setProtectedHeader({ alg: "HS256", typ: "JWT" });
    if (exp) jwt.setExpirationTime("1h");
    return jwt.sign(new TextEncoder().encode(stack.jwtSecret));
  };
  const cases: [string, string][] = [
    ["no exp", await sign({ role: "authenticated", aud: "authenticated" }, false)],
    ["no aud", await sign({ role: "authenticated" })],
    ["another audience", await sign({ role: "authenticated", aud: "someone-else" })],
  ];
  for (const [name, token] of cases) {
    const response = await call("notify/devices", { token });
    assert.equal(response.status, 401, name);
    assert.equal((await response.json()).type, "https://herald.dev/problems/invalid-token", name);
  }
  const listed = await call("notify/devices", {
    token: await sign({ role: "authenticated", aud: ["authenticated", "other"] }),
  });
  assert.equal(listed.status, 200, "an audience list naming authenticated is a user");
  await listed.body?.cancel();
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

Deno.test("gateway: an unknown function is Kong's 404, and the edge runtime's behind it", async () => {
  const response = await call("nope", { token: stack.anonKey });
  assert.equal(response.status, 404);
  assert.equal((await response.json()).message, "no Route matched with those values");
  const behind = await callFunction("nope");
  assert.equal(behind.status, 404);
  assert.equal((await behind.json()).code, "NOT_FOUND");
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
      // Kong refuses an oversized body first (its own 413); the function's limit is the same.
      [
        "oversized body (the function's own limit, behind Kong)",
        await callFunction("notify", {
          method: "POST",
          headers: {
            authorization: `Bearer ${user.token}`,
            "content-type": "application/json",
            "x-request-id": "req-42",
          },
          body: JSON.stringify({ user_ids: [user.id], title: "x".repeat(1_100_000) }),
        }),
        413,
      ],
    ];
    for (const [name, response, status, field] of cases) {
      assert.equal(response.status, status, name);
      assert.equal(response.headers.get("content-type"), "application/problem+json", name);
      const problem = await response.json();
      // Through Kong the id is Kong's own; straight to the function, the caller's.
      assert.equal(
        problem.request_id,
        response.headers.get("x-kong-request-id") ?? "req-42",
        name,
      );
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
    // Answered by Kong's cors plugin (200), as the function would (204) behind it.
    assert.equal(
      preflight.status,
      200,
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

/** What supabase-js, the platform and tracing send, each of which a preflight must allow. */
const BROWSER_HEADERS = [
  "authorization",
  "apikey",
  "sb-api-key",
  "x-client-info",
  "content-type",
  "x-supabase-api-version",
  "traceparent",
  "tracestate",
  "baggage",
  "x-region",
  "idempotency-key",
  "x-request-id",
];

for (const fn of ["notify", "dispatch", "health"]) {
  Deno.test(`gateway: a browser preflight to ${fn} allows each header supabase-js and the platform send`, async () => {
    for (const header of BROWSER_HEADERS) {
      const preflight = await call(fn, {
        method: "OPTIONS",
        headers: {
          origin: "https://app.example.test",
          "access-control-request-method": "POST",
          "access-control-request-headers": header,
        },
      });
      await preflight.body?.cancel();
      // Kong's cors plugin answers notify's preflights (200); the others reach the function (204).
      assert.equal(preflight.status, fn === "notify" ? 200 : 204, header);
      const allowed = (preflight.headers.get("access-control-allow-headers") ?? "")
        .toLowerCase().split(/\s*,\s*/);
      assert.ok(allowed.includes(header), `${fn}: ${header} not in ${allowed}`);
    }
  });
}

Deno.test("gateway: a body that is not valid UTF-8 is a 400, not silently repaired", async () => {
  const sql = adminSql();
  try {
    const user = await createUser(sql, "utf8");
    const prefix = new TextEncoder().encode('{"user_ids":["' + user.id + '"],"title":"caf');
    const suffix = new TextEncoder().encode('"}');
    for (const bad of [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0xc0, 0xaf]]) {
      const body = new Uint8Array([...prefix, ...bad, ...suffix]);
      const response = await call("notify", {
        method: "POST",
        token: user.token,
        headers: { "content-type": "application/json" },
        body,
      });
      assert.equal(response.status, 400, bad.join(","));
      const problem = await response.json();
      assert.equal(problem.type, "https://herald.dev/problems/malformed-json");
      assert.match(problem.detail, /UTF-8/);
    }
    const [{ count }] = await sql`select count(*)::int from herald.notifications n
      join herald.deliveries d on d.notification_id = n.id where d.recipient_id = ${user.id}`;
    assert.equal(count, 0);
  } finally {
    await sql.end();
  }
});

Deno.test("gateway: TRACE, which fetch cannot forward, is a 405 problem, not a failed start", async () => {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: stack.ports.gateway });
  try {
    await conn.write(new TextEncoder().encode(
      "TRACE /functions/v1/notify/devices HTTP/1.1\r\nhost: 127.0.0.1\r\n" +
        `apikey: ${stack.anonKey}\r\nconnection: close\r\n\r\n`,
    ));
    let raw = "";
    const buffer = new Uint8Array(16_384);
    for (let n; (n = await conn.read(buffer)) !== null;) {
      raw += new TextDecoder().decode(buffer.subarray(0, n));
    }
    assert.match(raw, /^HTTP\/1\.1 405 /);
    assert.match(raw, /content-type: application\/problem\+json/i);
    assert.match(raw, /TRACE cannot be forwarded/);
  } finally {
    conn.close();
  }
});
