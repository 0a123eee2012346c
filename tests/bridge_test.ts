/**
 * The Upstash-compatible bridge runs the unmodified @upstash/redis client
 * against the stack's real redis-server. Every result is checked against the
 * same command sent to redis-server directly with ioredis, an independent client.
 */
import assert from "node:assert/strict";
import { Redis as Upstash } from "@upstash/redis";
import { Redis as IORedis } from "ioredis";
import { stack } from "./support/stack.ts";

const upstash = (options: { responseEncoding?: false } = {}) =>
  new Upstash({
    url: stack.redisRestUrl,
    token: stack.redisRestToken,
    enableTelemetry: false,
    automaticDeserialization: false,
    ...options,
  });

async function withDirect(fn: (direct: IORedis, prefix: string) => Promise<void>) {
  const direct = new IORedis({ host: "127.0.0.1", port: stack.ports.redis, lazyConnect: true });
  await direct.connect();
  try {
    await fn(direct, `bridge-test:${crypto.randomUUID()}:`);
  } finally {
    await direct.quit();
  }
}

const bridge = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${stack.redisRestUrl}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${stack.redisRestToken}`, ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

Deno.test("bridge: strings with expiry match redis-server", () =>
  withDirect(async (direct, p) => {
    const redis = upstash();
    assert.equal(await redis.set(`${p}s`, "héllo ✓", { ex: 100 }), "OK");
    assert.equal(await redis.get(`${p}s`), await direct.get(`${p}s`));
    assert.equal(await redis.get(`${p}s`), "héllo ✓");
    assert.equal(await redis.ttl(`${p}s`), await direct.ttl(`${p}s`));
    await redis.set(`${p}px`, "v", { px: 50_000 });
    const [viaBridge, viaDirect] = [await redis.pttl(`${p}px`), await direct.pttl(`${p}px`)];
    assert.ok(viaBridge > 0 && viaBridge <= 50_000 && viaDirect <= viaBridge);
    assert.equal(await redis.get(`${p}missing`), null);
    assert.equal(await direct.get(`${p}missing`), null);
    assert.equal(await redis.incr(`${p}n`), 1);
    assert.equal(await redis.incrby(`${p}n`, 41), 42);
    assert.equal(await direct.get(`${p}n`), "42");
  }));

Deno.test("bridge: hashes match redis-server", () =>
  withDirect(async (direct, p) => {
    const redis = upstash();
    assert.equal(await redis.hset(`${p}h`, { a: "1", b: "two" }), 2);
    assert.equal(await redis.hincrby(`${p}h`, "a", 5), 6);
    // Without deserialization the client hands back HGETALL's flat field/value array.
    const flat = (await redis.hgetall(`${p}h`)) as unknown as string[];
    const pairs = Object.fromEntries(flat.flatMap((v, i) => i % 2 ? [] : [[v, flat[i + 1]]]));
    assert.deepEqual(pairs, await direct.hgetall(`${p}h`));
    assert.deepEqual(await direct.hgetall(`${p}h`), { a: "6", b: "two" });
  }));

Deno.test("bridge: sorted sets match redis-server", () =>
  withDirect(async (direct, p) => {
    const redis = upstash();
    await redis.zadd(`${p}z`, { score: 3, member: "c" }, { score: 1, member: "a" }, {
      score: 2,
      member: "b",
    });
    assert.deepEqual(
      await redis.zrange(`${p}z`, 0, -1, { withScores: true }),
      await direct.zrange(`${p}z`, 0, -1, "WITHSCORES"),
    );
    assert.deepEqual(await redis.zrange(`${p}z`, 2, 3, { byScore: true }), ["b", "c"]);
    assert.equal(await redis.zrem(`${p}z`, "a"), 1);
    assert.deepEqual(await direct.zrange(`${p}z`, 0, -1), ["b", "c"]);
  }));

Deno.test("bridge: EVALSHA through createScript runs the script redis-server hashes", () =>
  withDirect(async (direct, p) => {
    const source =
      "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCRBY', KEYS[2], ARGV[2])";
    const script = upstash().createScript<number>(source);
    assert.equal(await script.exec([`${p}k`, `${p}c`], ["v", "5"]), 5);
    // The library hashes the script asynchronously; after an exec the hash is known.
    assert.equal(await direct.script("LOAD", source), script.sha1);
    assert.equal(await script.exec([`${p}k`, `${p}c`], ["v", "5"]), 10);
    assert.equal(await direct.get(`${p}k`), "v");
    const table = "return {1, 'two', ARGV[1]}";
    assert.deepEqual(await upstash().eval(table, [], ["3"]), await direct.eval(table, 0, "3"));
  }));

Deno.test("bridge: pipelines and multi-exec return per-command results", () =>
  withDirect(async (direct, p) => {
    const redis = upstash();
    const piped = await redis.pipeline().set(`${p}a`, "1").incr(`${p}a`).get(`${p}a`).exec();
    assert.deepEqual(piped, ["OK", 2, "2"]);
    const tx = await redis.multi().incr(`${p}t`).incr(`${p}t`).exec();
    assert.deepEqual(tx, [1, 2]);
    assert.equal(await direct.get(`${p}t`), "2");
    const kept = await redis.pipeline().set(`${p}x`, "text").incr(`${p}x`).get(`${p}x`).exec({
      keepErrors: true,
    });
    assert.equal(kept[0].result, "OK");
    assert.match(String(kept[1].error), /not an integer/);
    assert.equal(kept[2].result, "text");
  }));

Deno.test("bridge: a Redis error reply reaches the client as UpstashError with Redis's text", () =>
  withDirect(async (direct, p) => {
    await direct.set(`${p}word`, "abc");
    await assert.rejects(() => upstash().incr(`${p}word`), /ERR value is not an integer/);
    await assert.rejects(() => direct.incr(`${p}word`), /ERR value is not an integer/);
  }));

Deno.test("bridge: base64 encoding leaves OK alone and encodes other simple strings", async () => {
  const key = `bridge-test:${crypto.randomUUID()}`;
  const set = await (await bridge("/", ["SET", key, "v"], { "upstash-encoding": "base64" })).json();
  assert.deepEqual(set, { result: "OK" });
  const type = await (await bridge("/", ["TYPE", key], { "upstash-encoding": "base64" })).json();
  assert.deepEqual(type, { result: btoa("string") });
  assert.equal(await upstash().type(key), "string");
  assert.equal(await upstash({ responseEncoding: false }).get(key), "v");
});

Deno.test("bridge: EXECABORT aborts a multi-exec with 400", async () => {
  const response = await bridge("/multi-exec", [["SET", "k"], ["INCR", "k2"]]);
  assert.equal(response.status, 400);
  assert.match((await response.json()).error, /EXECABORT/);
});

Deno.test("bridge: refuses bad tokens, malformed bodies and connection-state commands", async () => {
  const badToken = await fetch(stack.redisRestUrl, {
    method: "POST",
    headers: { authorization: "Bearer nope" },
    body: '["PING"]',
  });
  assert.equal(badToken.status, 401);
  assert.deepEqual(await badToken.json(), { error: "Unauthorized" });
  for (
    const [body, pattern] of [
      ["{not json", /not valid JSON/],
      ["[]", /non-empty JSON array/],
      [[["GET", { a: 1 }]], /non-empty JSON array|must be a string/],
      [["BLPOP", "q", "0"], /not supported/],
      [["SELECT", "1"], /not supported/],
    ] as const
  ) {
    const response = await bridge("/", body);
    assert.equal(response.status, 400, JSON.stringify(body));
    assert.match((await response.json()).error, pattern);
  }
});

Deno.test("bridge: any content type is read, as Upstash reads it; a web page's request is refused", async () => {
  const key = `bridge-page-${crypto.randomUUID()}`;
  for (const type of ["text/plain", "application/x-www-form-urlencoded", "application/json"]) {
    const response = await fetch(`${stack.redisRestUrl}/?_token=${stack.redisRestToken}`, {
      method: "POST",
      headers: { "content-type": type },
      body: JSON.stringify(["SET", key, type]),
    });
    assert.deepEqual(await response.json(), { result: "OK" }, type);
  }
  // What a drive-by page can send without a preflight: a text/plain POST, the token in the URL.
  const fromPage = await fetch(`${stack.redisRestUrl}/?_token=${stack.redisRestToken}`, {
    method: "POST",
    headers: { "content-type": "text/plain", origin: "https://evil.example" },
    body: JSON.stringify(["SET", key, "planted"]),
  });
  assert.equal(fromPage.status, 403);
  await fromPage.body?.cancel();
  assert.equal(await upstash().get(key), "application/json", "the page changed nothing");
  await upstash().del(key);
});

/** Reads a key through a fresh command on the shared connections: state left behind would show. */
async function sharedConnectionsStillClean(key: string): Promise<void> {
  const redis = upstash();
  for (let i = 0; i < 20; i++) {
    assert.equal(await redis.get(key), "clean", "a later read sees db 0, outside any MULTI");
  }
}

Deno.test("bridge: path-form commands obey the same refusals, and none leaves MULTI or SELECT state", () =>
  withDirect(async (direct, p) => {
    await direct.set(`${p}k`, "clean");
    const get = (path: string, method = "GET") =>
      fetch(`${stack.redisRestUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${stack.redisRestToken}` },
      });
    for (
      const path of [
        "/select/1",
        "/SELECT/1",
        "/multi",
        "/exec",
        "/watch/x",
        "/client/reply/off",
        "/blpop/q/0",
        "/xread/BLOCK/0/STREAMS/s/$",
        "/subscribe/c",
        "/hello/3",
      ]
    ) {
      for (const method of ["GET", "POST"]) {
        const response = await get(path, method);
        assert.equal(response.status, 400, `${method} ${path}`);
        assert.match((await response.json()).error, /not supported/, path);
      }
    }
    for (const body of [["SELECT", "1"], ["MULTI"], ["CLIENT", "REPLY", "OFF"]]) {
      const response = await bridge("/", body);
      assert.equal(response.status, 400);
      await response.body?.cancel();
    }
    const pipeline = await bridge("/pipeline", [["GET", `${p}k`], ["SELECT", "1"]]);
    assert.equal(pipeline.status, 400, "a refused command refuses the whole pipeline");
    await pipeline.body?.cancel();
    const failing = await bridge("/multi-exec", [["SET", `${p}x`], ["GET", `${p}k`]]);
    assert.equal(failing.status, 400);
    await failing.body?.cancel();
    await sharedConnectionsStillClean(`${p}k`);
  }));

Deno.test("bridge: the _token query parameter authenticates, as on Upstash", () =>
  withDirect(async (direct, p) => {
    await direct.set(`${p}k`, "v");
    const ok = await fetch(`${stack.redisRestUrl}/get/${p}k?_token=${stack.redisRestToken}`);
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { result: "v" });
    const wrong = await fetch(`${stack.redisRestUrl}/get/${p}k?_token=nope`);
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
  }));

Deno.test("bridge: a POST body in path form is the command's last argument", () =>
  withDirect(async (direct, p) => {
    const value = 'a value with / slashes, "quotes" and ✓';
    const response = await fetch(`${stack.redisRestUrl}/set/${encodeURIComponent(`${p}k`)}`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.redisRestToken}` },
      body: value,
    });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { result: "OK" });
    assert.equal(await direct.get(`${p}k`), value);
    const withEx = await fetch(`${stack.redisRestUrl}/set/${p}e/v/EX/100`, {
      headers: { authorization: `Bearer ${stack.redisRestToken}` },
    });
    assert.equal(withEx.status, 200);
    await withEx.body?.cancel();
    assert.ok((await direct.ttl(`${p}e`)) > 0);
  }));

Deno.test("bridge: methods other than GET and POST are a 405 naming the allowed ones", async () => {
  for (
    const [path, method, allow] of [
      ["/get/x", "PUT", "GET, POST"],
      ["/get/x", "DELETE", "GET, POST"],
      ["/", "GET", "POST"],
      ["/pipeline", "GET", "POST"],
      ["/multi-exec", "PATCH", "POST"],
    ]
  ) {
    const response = await fetch(`${stack.redisRestUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${stack.redisRestToken}` },
    });
    assert.equal(response.status, 405, `${method} ${path}`);
    assert.equal(response.headers.get("allow"), allow);
    await response.body?.cancel();
  }
});
