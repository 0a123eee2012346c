/**
 * The rate-limit middleware against the real Redis (through the
 * Upstash-compatible bridge, with the production client), driven through a
 * small Hono app with real tokens and the real caller resolver.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createCallerResolver } from "../supabase/functions/_shared/auth/caller.ts";
import { createJwtVerifier } from "../supabase/functions/_shared/auth/jwt.ts";
import { authenticate, createHttpApp } from "../supabase/functions/_shared/http/app.ts";
import {
  createRateLimit,
  type RateLimitOptions,
} from "../supabase/functions/_shared/http/rate_limit.ts";
import type { Level } from "../supabase/functions/_shared/log.ts";
import type { Redis } from "@upstash/redis";
import { createRedis } from "../supabase/functions/_shared/redis/client.ts";
import { stack, userToken } from "./support/stack.ts";

const resolveCaller = createCallerResolver({
  verify: createJwtVerifier({
    secret: stack.jwtSecret,
    jwksUrl: `${stack.apiUrl}/auth/v1/.well-known/jwks.json`,
  }),
  serviceKeys: [stack.serviceRoleKey],
});

/** A loopback proxy in front of the bridge, switchable off (503s) to play a Redis outage. */
function startRedisProxy() {
  const state = { up: true };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const body = await request.text();
      if (!state.up) return Response.json({ error: "proxy switched off" }, { status: 503 });
      const url = new URL(request.url);
      const headers = new Headers(request.headers);
      headers.delete("host");
      headers.delete("content-length");
      return await fetch(`${stack.redisRestUrl}${url.pathname}${url.search}`, {
        method: request.method,
        headers,
        body: request.method === "GET" ? undefined : body,
      });
    },
  );
  const redis = createRedis({
    url: `http://127.0.0.1:${server.addr.port}`,
    token: stack.redisRestToken,
  });
  return { redis, state, close: () => server.shutdown() };
}

/** An app limited as `options` say, with its own key prefix and a log that records. */
function limitedApp(redis: Redis | undefined, options: Partial<RateLimitOptions> = {}) {
  const lines: { level: Level; message: string; fields: Record<string, unknown> }[] = [];
  const log = (level: Level, message: string, fields: Record<string, unknown> = {}) =>
    lines.push({ level, message, fields });
  const prefix = `test:ratelimit:${crypto.randomUUID()}`;
  const app = createHttpApp("t", () => {}); // records only what the limiter logs
  app.use(authenticate(resolveCaller));
  app.use(
    createRateLimit({ redis, userPerMinute: 3, servicePerMinute: 5, prefix, log, ...options }),
  );
  app.get("/", (c) => c.json({ ok: true }));
  const call = (token: string) =>
    app.request("/t", { headers: { authorization: `Bearer ${token}` } });
  return { call, lines, prefix };
}

/**
 * The library's windows are aligned to the epoch minute, and a request that
 * straddles a boundary is counted partly in the next window. Starting well
 * inside a window keeps every count in these tests exact.
 */
async function awayFromWindowEdge() {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 5_000) await new Promise((resolve) => setTimeout(resolve, left + 50));
}

const rateHeaders = (response: Response) => ({
  limit: response.headers.get("RateLimit-Limit"),
  remaining: response.headers.get("RateLimit-Remaining"),
  reset: Number(response.headers.get("RateLimit-Reset")),
  policy: response.headers.get("RateLimit-Policy"),
});

Deno.test("rate limit: every response carries RateLimit-* headers, remaining counting down", async () => {
  await awayFromWindowEdge();
  const proxy = startRedisProxy();
  try {
    const { call } = limitedApp(proxy.redis);
    const token = await userToken(crypto.randomUUID());
    const seen = [];
    for (let i = 0; i < 3; i++) {
      const response = await call(token);
      assert.equal(response.status, 200);
      await response.body?.cancel();
      seen.push(rateHeaders(response));
    }
    assert.deepEqual(seen.map((h) => [h.limit, h.remaining, h.policy]), [
      ["3", "2", "3;w=60"],
      ["3", "1", "3;w=60"],
      ["3", "0", "3;w=60"],
    ]);
    for (const { reset } of seen) assert.ok(Number.isInteger(reset) && reset >= 0 && reset <= 60);
  } finally {
    await proxy.close();
  }
});

Deno.test("rate limit: the request after the budget is a 429 problem saying when to retry", async () => {
  await awayFromWindowEdge();
  const proxy = startRedisProxy();
  try {
    const { call } = limitedApp(proxy.redis);
    const token = await userToken(crypto.randomUUID());
    for (let i = 0; i < 3; i++) await (await call(token)).body?.cancel();

    const refused = await call(token);
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get("content-type"), "application/problem+json");
    const retryAfter = Number(refused.headers.get("Retry-After"));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60);
    assert.deepEqual(rateHeaders(refused), {
      limit: "3",
      remaining: "0",
      reset: retryAfter,
      policy: "3;w=60",
    });
    const problem = await refused.json();
    assert.equal(problem.type, "https://herald.dev/problems/rate-limited");
    assert.equal(problem.status, 429);
    assert.equal(
      problem.detail,
      `Rate limit exceeded: this user may make 3 requests per 60 s (sliding window). ` +
        `Retry after ${retryAfter} s.`,
    );
    assert.equal(problem.request_id, refused.headers.get("x-request-id"));
  } finally {
    await proxy.close();
  }
});

Deno.test("rate limit: two users have independent budgets", async () => {
  await awayFromWindowEdge();
  const proxy = startRedisProxy();
  try {
    const { call } = limitedApp(proxy.redis);
    const [alice, bob] = await Promise.all([
      userToken(crypto.randomUUID()),
      userToken(crypto.randomUUID()),
    ]);
    for (let i = 0; i < 3; i++) await (await call(alice)).body?.cancel();
    const aliceAgain = await call(alice);
    assert.equal(aliceAgain.status, 429);
    await aliceAgain.body?.cancel();

    const bobFirst = await call(bob);
    assert.equal(bobFirst.status, 200);
    await bobFirst.body?.cancel();
    assert.equal(rateHeaders(bobFirst).remaining, "2");
  } finally {
    await proxy.close();
  }
});

Deno.test("rate limit: a service key has its own limit, counted by a hash of the key", async () => {
  await awayFromWindowEdge();
  const proxy = startRedisProxy();
  try {
    const { call, prefix } = limitedApp(proxy.redis);
    const statuses = [];
    let last: Response | undefined;
    for (let i = 0; i < 6; i++) {
      last = await call(stack.serviceRoleKey);
      statuses.push(last.status);
      if (i < 5) await last.body?.cancel();
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429]);
    assert.equal(last!.headers.get("RateLimit-Limit"), "5");
    assert.match((await last!.json()).detail, /this service key may make 5 requests per 60 s/);

    const keys = await proxy.redis.keys(`${prefix}:*`);
    const id = createHash("sha256").update(stack.serviceRoleKey).digest("hex").slice(0, 16);
    assert.ok(keys.length > 0, "the limiter wrote its counters");
    for (const key of keys) {
      assert.ok(key.startsWith(`${prefix}:key:${id}:`), key);
      assert.ok(!key.includes(stack.serviceRoleKey), "the key itself is never stored");
    }
  } finally {
    await proxy.close();
  }
});

Deno.test("rate limit: with Redis unreachable each instance limits in memory, and one warning is logged", async () => {
  await awayFromWindowEdge();
  // A port nothing listens on (not a well-known one like 9, which fetch refuses by itself).
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  listener.close();
  const { call, lines } = limitedApp(
    createRedis({ url: `http://127.0.0.1:${listener.addr.port}`, token: "unused" }),
  );
  const token = await userToken(crypto.randomUUID());
  const answers = [];
  for (let i = 0; i < 4; i++) {
    const response = await call(token);
    await response.body?.cancel();
    answers.push([response.status, response.headers.get("RateLimit-Remaining")]);
  }
  assert.deepEqual(answers, [[200, "2"], [200, "1"], [200, "0"], [429, "0"]]);
  assert.deepEqual(lines.map((l) => [l.level, l.message]), [
    ["warn", "rate limiting degraded: each instance limits in memory until Redis answers"],
  ]);
  assert.ok(!JSON.stringify(lines).includes(token), "the token is never logged");
});

Deno.test("rate limit: a hanging Redis is asked once, then skipped until the recheck", async () => {
  let asked = 0;
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async () => {
    asked++;
    await released;
    return Response.json({ error: "too late" }, { status: 503 });
  });
  try {
    const { call, lines } = limitedApp(
      createRedis({ url: `http://127.0.0.1:${server.addr.port}`, token: "unused" }),
      { timeoutMs: 50, recheckMs: 600_000 },
    );
    const token = await userToken(crypto.randomUUID());
    const statuses = [];
    for (let i = 0; i < 5; i++) {
      const response = await call(token);
      await response.body?.cancel();
      statuses.push(response.status);
    }
    assert.deepEqual(statuses, [200, 200, 200, 429, 429], "limited in memory meanwhile");
    const askedByRequests = asked;
    assert.ok(
      askedByRequests >= 1 && askedByRequests <= 2,
      `one limit call (and its retry), got ${asked}`,
    );
    assert.equal(lines.filter((l) => l.level === "warn").length, 1);
  } finally {
    release();
    await server.shutdown();
  }
});

Deno.test("rate limit: logs once when Redis fails and once when it answers again", async () => {
  await awayFromWindowEdge();
  const proxy = startRedisProxy();
  try {
    const { call, lines } = limitedApp(proxy.redis, { recheckMs: 1 });
    const token = await userToken(crypto.randomUUID());
    proxy.state.up = false;
    for (let i = 0; i < 2; i++) await (await call(token)).body?.cancel();
    proxy.state.up = true;
    await new Promise((resolve) => setTimeout(resolve, 5)); // past the recheck
    const limited = await call(token);
    await limited.body?.cancel();
    assert.equal(
      limited.headers.get("RateLimit-Remaining"),
      "2",
      "requests while down were counted in memory, not in Redis",
    );
    await (await call(token)).body?.cancel();
    assert.deepEqual(lines.map((l) => [l.level, l.message]), [
      ["warn", "rate limiting degraded: each instance limits in memory until Redis answers"],
      ["info", "rate limiting recovered: Redis answers again"],
    ]);
  } finally {
    await proxy.close();
  }
});

Deno.test("rate limit: without Redis configured each instance limits in memory", async () => {
  const { call } = limitedApp(undefined, { userPerMinute: 1 });
  const token = await userToken(crypto.randomUUID());
  const first = await call(token);
  await first.body?.cancel();
  assert.equal(first.status, 200);
  assert.equal(first.headers.get("RateLimit-Limit"), "1");
  const second = await call(token);
  await second.body?.cancel();
  assert.equal(second.status, 429);
  assert.ok(Number(second.headers.get("Retry-After")) >= 1);
});

Deno.test("rate limit: limits that are not positive integers are refused when it is built", () => {
  assert.throws(
    () => createRateLimit({ userPerMinute: 0, servicePerMinute: 5, log: () => {} }),
    new RangeError("Cannot create rate limit: 'userPerMinute' must be a positive integer, got 0"),
  );
});
