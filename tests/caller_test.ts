/**
 * Who a request is from, credential by credential and in pairs: a refused
 * token is a 401 beside any key, a valid one keeps its meaning beside any
 * key, and a service is named by the configured key it presented, never by
 * what else the request carries.
 */
import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { type Caller, createCallerResolver } from "../supabase/functions/_shared/auth/caller.ts";
import { callerScope, sha256Hex } from "../supabase/functions/_shared/auth/caller_scope.ts";
import { createJwtVerifier } from "../supabase/functions/_shared/auth/jwt.ts";
import { Problem } from "../supabase/functions/_shared/http/problem.ts";

const SECRET = "caller-test-secret-of-at-least-thirty-two-characters";
const SECRET_KEY = "sb_secret_caller_test_0000000000";
const OTHER_SECRET_KEY = "sb_secret_caller_test_1111111111";
const PUBLISHABLE_KEY = "sb_publishable_caller_test_000000";

const base64url = (value: unknown) =>
  btoa(JSON.stringify(value)).replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");

function sign(claims: Record<string, unknown>, secret = SECRET, exp: number | string = "5m") {
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt().setExpirationTime(exp).sign(new TextEncoder().encode(secret));
}

const userClaims = () => ({
  role: "authenticated",
  aud: "authenticated",
  sub: crypto.randomUUID(),
});

// The legacy keys are HS256 tokens of the project's secret that never expire soon.
const SERVICE_ROLE_KEY = await sign({ role: "service_role", iss: "supabase" }, SECRET, "10y");
const ANON_KEY = await sign({ role: "anon", iss: "supabase" }, SECRET, "10y");

const resolve = createCallerResolver({
  // No JWKS is reachable here: every token in this file is HS256.
  verify: createJwtVerifier({ secret: SECRET, jwksUrl: "http://127.0.0.1:9/jwks.json" }),
  serviceKeys: [SERVICE_ROLE_KEY, SECRET_KEY, OTHER_SECRET_KEY],
  publicKeys: [ANON_KEY, PUBLISHABLE_KEY],
});

async function refusedWith(headers: Record<string, string>, status: number, type: string) {
  await assert.rejects(resolve(new Headers(headers)), (error: unknown) => {
    assert.ok(error instanceof Problem, String(error));
    assert.equal(error.status, status, `${JSON.stringify(headers)}: ${error.detail}`);
    assert.equal(error.type, type);
    return true;
  });
}

/** Each kind of refused Authorization value, on its own. */
const REFUSED_AUTHORIZATION: [string, () => Promise<string>][] = [
  ["an expired user token", async () => `Bearer ${await sign(userClaims(), SECRET, "-1m")}`],
  [
    "an alg:none token",
    () =>
      Promise.resolve(
        `Bearer ${base64url({ alg: "none", typ: "JWT" })}.${
          base64url({ ...userClaims(), exp: 9999999999 })
        }.`,
      ),
  ],
  [
    "a token signed with another secret",
    async () => `Bearer ${await sign(userClaims(), "x".repeat(40))}`,
  ],
  [
    "a re-signed service-role token with another secret",
    async () => `Bearer ${await sign({ role: "service_role" }, "y".repeat(40))}`,
  ],
  ["a token with a tampered payload", async () => {
    const [header, , signature] = (await sign(userClaims())).split(".");
    return `Bearer ${header}.${base64url({ ...userClaims(), exp: 9999999999 })}.${signature}`;
  }],
  [
    "a user's token without a subject",
    async () => `Bearer ${await sign({ role: "authenticated", aud: "authenticated" })}`,
  ],
  [
    "a user's token whose subject is not a user id (a UUID)",
    async () =>
      `Bearer ${await sign({ role: "authenticated", aud: "authenticated", sub: "not-a-uuid" })}`,
  ],
  ["garbage that is not a JWT", () => Promise.resolve("Bearer not-a-token")],
  ["garbage shaped like a JWT", () => Promise.resolve("Bearer aaa.bbb.ccc")],
  ["an unknown secret key", () => Promise.resolve("Bearer sb_secret_not_this_projects_000")],
  ["a Basic credential", () => Promise.resolve(`Basic ${btoa("user:password")}`)],
  ["a bearer with two tokens", () => Promise.resolve(`Bearer ${SECRET_KEY} extra`)],
  ["Bearer with nothing", () => Promise.resolve("Bearer")],
];

for (const [kind, authorization] of REFUSED_AUTHORIZATION) {
  Deno.test(`caller: ${kind} in Authorization is a 401 alone and beside a secret key`, async () => {
    const value = await authorization();
    await refusedWith({ authorization: value }, 401, "invalid-token");
    await refusedWith({ authorization: value, apikey: SECRET_KEY }, 401, "invalid-token");
    await refusedWith({ authorization: value, "sb-api-key": SECRET_KEY }, 401, "invalid-token");
    await refusedWith({ authorization: value, apikey: SERVICE_ROLE_KEY }, 401, "invalid-token");
  });
}

Deno.test("caller: valid credentials keep their meaning beside a secret key", async () => {
  const claims = userClaims();
  const user = await resolve(
    new Headers({ authorization: `Bearer ${await sign(claims)}`, apikey: SECRET_KEY }),
  );
  assert.deepEqual([user.kind, user.kind === "user" && user.userId], ["user", claims.sub]);
  // The anon or a publishable key in Authorization is anonymous: a signed-out caller's
  // headers forwarded by a backend that adds its secret key do not make the service.
  for (const key of [ANON_KEY, PUBLISHABLE_KEY]) {
    for (const header of ["apikey", "sb-api-key"]) {
      await refusedWith(
        { authorization: `Bearer ${key}`, [header]: SECRET_KEY },
        403,
        "sign-in-required",
      );
    }
  }
});

Deno.test("caller: an unknown sb_ key beside a valid token is a 401, in apikey or sb-api-key", async () => {
  const token = await sign(userClaims());
  for (const header of ["apikey", "sb-api-key"]) {
    for (const key of ["sb_secret_not_this_projects_000", "sb_publishable_not_this_one_00"]) {
      await refusedWith(
        { authorization: `Bearer ${token}`, [header]: key },
        401,
        "invalid-token",
      );
    }
  }
  // The same token beside this project's keys is the user.
  for (const key of [PUBLISHABLE_KEY, SECRET_KEY]) {
    const caller = await resolve(new Headers({ authorization: `Bearer ${token}`, apikey: key }));
    assert.equal(caller.kind, "user");
  }
});

Deno.test("caller: a publishable or anon key alone is a 403; an unknown sb_ key in apikey a 401", async () => {
  await refusedWith({ apikey: PUBLISHABLE_KEY }, 403, "sign-in-required");
  await refusedWith({ authorization: `Bearer ${ANON_KEY}` }, 403, "sign-in-required");
  await refusedWith({ apikey: ANON_KEY }, 403, "sign-in-required");
  await refusedWith({ apikey: "sb_secret_not_this_projects_000" }, 401, "invalid-token");
  await refusedWith({}, 401, "unauthenticated");
});

Deno.test("caller: a service is named by the configured key it presented, however it sent it", async () => {
  const scopeOf = async (headers: Record<string, string>) =>
    callerScope(await resolve(new Headers(headers)));
  const expected = `key:${(await sha256Hex(SECRET_KEY)).slice(0, 16)}`;
  for (
    const headers of <Record<string, string>[]> [
      { apikey: SECRET_KEY },
      { "sb-api-key": SECRET_KEY },
      { authorization: `Bearer ${SECRET_KEY}` },
      { authorization: `Bearer ${SECRET_KEY}`, apikey: SECRET_KEY },
      { authorization: `Bearer ${SECRET_KEY}`, apikey: PUBLISHABLE_KEY },
      { apikey: SECRET_KEY, "sb-api-key": SECRET_KEY },
      { apikey: SECRET_KEY, "x-forwarded-for": "203.0.113.9" },
    ]
  ) {
    assert.equal(await scopeOf(headers), expected, JSON.stringify(Object.keys(headers)));
  }
  assert.notEqual(await scopeOf({ apikey: OTHER_SECRET_KEY }), expected, "each key its own");
  // The legacy service-role key verifies as a token and is still that key.
  assert.equal(
    await scopeOf({ authorization: `Bearer ${SERVICE_ROLE_KEY}` }),
    `key:${(await sha256Hex(SERVICE_ROLE_KEY)).slice(0, 16)}`,
  );
  // Every other signed service-role token is one service, not one per signature.
  const minted = await Promise.all(
    [1, 2, 3].map(() => sign({ role: "service_role", nonce: crypto.randomUUID() })),
  );
  const scopes = new Set(
    await Promise.all(minted.map((t) => scopeOf({ authorization: `Bearer ${t}` }))),
  );
  assert.deepEqual([...scopes], ["key:jwt"]);
});

Deno.test("caller: a user's scope is the user, whatever key or header comes with the token", async () => {
  const claims = userClaims();
  const token = await sign(claims);
  const scopes = new Set<string>();
  for (
    const extra of <Record<string, string>[]> [
      {},
      { apikey: PUBLISHABLE_KEY },
      { apikey: SECRET_KEY },
      { "sb-api-key": ANON_KEY },
    ]
  ) {
    const caller: Caller = await resolve(
      new Headers({ authorization: `Bearer ${token}`, ...extra }),
    );
    scopes.add(callerScope(caller));
  }
  assert.deepEqual([...scopes], [`user:${claims.sub}`]);
});
