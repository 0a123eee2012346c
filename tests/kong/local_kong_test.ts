/**
 * The local Kong itself (scripts/stack/kong/): what the behaviour suite cannot
 * show against the stack's own Kong — a canary at 50 %, a forbidden dispatch
 * caller, rate-limit counters in the real Redis with Kong's key format, Redis
 * down with fault_tolerant — and that it refuses, by name, configuration it
 * does not implement. Each test runs a Kong of its own on a free port, in
 * front of the stack's two edge-runtime pools.
 */
import assert from "node:assert/strict";
import { Redis } from "ioredis";
import { fromAddress, loopbackAddress } from "../support/from_address.ts";
import { startKong } from "../../scripts/stack/kong/kong.ts";
import { localKongConfig } from "../../scripts/stack/kong/main.ts";
import { stack } from "../support/stack.ts";

// deno-lint-ignore no-explicit-any
type Config = any;

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function withKong(config: Config, work: (base: string) => Promise<void>) {
  const port = freePort();
  const kong = startKong({ config, port });
  try {
    await work(`http://127.0.0.1:${port}`);
  } finally {
    await kong.close();
  }
}

const notifyRoute = (config: Config) =>
  config.services.find((s: Config) => s.name === "herald-notify").routes[0];

Deno.test("local kong: a canary weight of 50 sends half the requests to the canary pool", async () => {
  await withKong(await localKongConfig(stack, { canaryWeight: 50 }), async (base) => {
    const seen: Record<string, number> = {};
    for (let i = 0; i < 100; i++) {
      const r = await fetch(`${base}/functions/v1/health`);
      const instance = r.headers.get("x-herald-instance") ?? "none";
      seen[instance] = (seen[instance] ?? 0) + 1;
      await r.body?.cancel();
    }
    assert.deepEqual(seen, { stable: 50, canary: 50 });
  });
});

Deno.test("local kong: weights 0 and 100 send everything one way", async () => {
  for (const [weight, instance] of [[0, "stable"], [100, "canary"]] as const) {
    await withKong(await localKongConfig(stack, { canaryWeight: weight }), async (base) => {
      for (let i = 0; i < 10; i++) {
        const r = await fetch(`${base}/functions/v1/health`);
        assert.equal(r.headers.get("x-herald-instance"), instance);
        await r.body?.cancel();
      }
    });
  }
});

Deno.test("local kong: a dispatch caller outside HERALD_INTERNAL_CIDR is refused with Kong's 403", async () => {
  const config: Config = await localKongConfig(stack);
  const dispatch = config.services.find((s: Config) => s.name === "herald-dispatch");
  dispatch.plugins.find((p: Config) => p.name === "ip-restriction").config.allow = ["10.0.0.0/8"];
  await withKong(config, async (base) => {
    const response = await fetch(`${base}/functions/v1/dispatch`, { method: "POST" });
    assert.equal(response.status, 403);
    const body = await response.json();
    assert.equal(body.message, "Forbidden");
    assert.equal(body.request_id, response.headers.get("x-kong-request-id"));
  });
});

Deno.test("local kong: a Prometheus outside HERALD_INTERNAL_CIDR is refused metrics with Kong's 403, even with the key", async () => {
  const config: Config = await localKongConfig(stack);
  const metrics = config.services.find((s: Config) => s.name === "herald-metrics");
  metrics.plugins.find((p: Config) => p.name === "ip-restriction").config.allow = ["10.0.0.0/8"];
  await withKong(config, async (base) => {
    const response = await fetch(`${base}/functions/v1/metrics`, {
      headers: { authorization: `Bearer ${stack.serviceRoleKey}` },
    });
    assert.equal(response.status, 403);
    assert.equal((await response.json()).message, "Forbidden");
  });
  // Inside it, the same scrape goes through.
  await withKong(await localKongConfig(stack), async (base) => {
    const response = await fetch(`${base}/functions/v1/metrics`, {
      headers: { authorization: `Bearer ${stack.serviceRoleKey}` },
    });
    assert.equal(response.status, 200);
    assert.match(await response.text(), /^herald_build_info\{/m);
  });
});

Deno.test("local kong: rate limits count in the real Redis under Kong's key, per fixed minute", async () => {
  const redis = new Redis({ port: stack.ports.redis, lazyConnect: true });
  try {
    await withKong(await localKongConfig(stack), async (base) => {
      const address = loopbackAddress();
      for (let i = 0; i < 3; i++) {
        const r = await fromAddress(address, `${base}/functions/v1/notify/devices`, {
          apikey: stack.anonKey,
          authorization: `Bearer counted-${crypto.randomUUID()}`,
        });
        await r.body?.cancel();
      }
      const keys = await redis.keys(`ratelimit:*:${address}:*`);
      const periods = keys.map((k) => k.split(":").at(-1)).sort();
      assert.deepEqual(periods, ["minute"]);
      for (const key of keys) {
        assert.equal(await redis.get(key), "3");
        const [, route, service, , start] = key.split(":");
        assert.match(route, /^[0-9a-f-]{36}$/, "scoped to the route's id");
        assert.equal(service, "00000000-0000-0000-0000-000000000000");
        if (key.endsWith(":minute")) {
          assert.equal(Number(start) % 60_000, 0, "the window starts on the minute");
          const ttl = await redis.ttl(key);
          assert.ok(ttl > 0 && ttl <= 60, `expires with its window (${ttl} s)`);
        }
      }
    });
  } finally {
    redis.disconnect();
  }
});

Deno.test("local kong: with Redis unreachable (fault_tolerant) requests pass, unlimited and unannounced", async () => {
  const config: Config = await localKongConfig(stack);
  const limit = notifyRoute(config).plugins.find((p: Config) => p.name === "rate-limiting");
  limit.config.redis.port = freePort();
  limit.config.hide_client_headers = false;
  await withKong(config, async (base) => {
    const r = await fetch(`${base}/functions/v1/notify/devices`, {
      headers: { apikey: stack.anonKey },
    });
    await r.body?.cancel();
    assert.match(r.headers.get("via") ?? "", /kong/);
    assert.equal(r.headers.get("x-ratelimit-limit-minute"), null);
  });
});

Deno.test("local kong: without hide_client_headers, Kong's rate-limit headers are as Kong sends them", async () => {
  const config: Config = await localKongConfig(stack);
  notifyRoute(config).plugins.find((p: Config) => p.name === "rate-limiting").config
    .hide_client_headers = false;
  await withKong(config, async (base) => {
    const r = await fetch(`${base}/functions/v1/notify/devices`, {
      headers: { apikey: stack.anonKey, authorization: `Bearer shown-${crypto.randomUUID()}` },
    });
    await r.body?.cancel();
    assert.equal(r.headers.get("x-ratelimit-limit-minute"), "1000");
    assert.equal(r.headers.get("x-ratelimit-remaining-minute"), "999");
    assert.equal(r.headers.get("x-ratelimit-limit-hour"), null, "minutes only");
    assert.equal(r.headers.get("ratelimit-limit"), "1000");
    assert.equal(r.headers.get("ratelimit-remaining"), "999");
    assert.ok(
      Number(r.headers.get("ratelimit-reset")) >= 1 &&
        Number(r.headers.get("ratelimit-reset")) <= 60,
    );
  });
});

Deno.test("local kong: notify's limit is the anon consumer's; a secret key from the same address is not counted (Kong's route+consumer lookup)", async () => {
  const config: Config = await localKongConfig(stack);
  notifyRoute(config).plugins.find((p: Config) => p.name === "rate-limiting").config
    .hide_client_headers = false;
  await withKong(config, async (base) => {
    const call = async (apikey: string) => {
      const r = await fetch(`${base}/functions/v1/notify/devices`, { headers: { apikey } });
      await r.body?.cancel();
      return r.headers.get("x-ratelimit-limit-minute");
    };
    assert.equal(await call(stack.anonKey), "1000");
    assert.equal(await call(stack.serviceRoleKey), null);
    assert.equal(await call(stack.anonKey), "1000");
  });
});

Deno.test("local kong: addressPerMinute (HERALD_LOCAL_KONG_ADDRESS_PER_MIN) replaces each per-address minute and adds no period", async () => {
  const config: Config = await localKongConfig(stack, { addressPerMinute: 5 });
  const limits = config.services.flatMap((s: Config) => [s, ...(s.routes ?? [])])
    .flatMap((o: Config) => o.plugins ?? [])
    .filter((p: Config) => p.name === "rate-limiting" && p.config.limit_by === "ip");
  assert.ok(limits.length >= 2, "notify's and health's");
  for (const { config: limit } of limits) {
    assert.equal(limit.minute, 5);
    assert.equal(limit.hour, undefined, "a period the file does not set costs a counter");
    assert.equal(limit.day, undefined);
  }
});

const UNIMPLEMENTED: [string, (config: Config) => void, RegExp][] = [
  [
    "cors origins other than *",
    (c) => notifyRoute(c).plugins[0].config.origins = ["https://app.example"],
    /origins other than/,
  ],
  ["rate-limiting by path", (c) => {
    const p = notifyRoute(c).plugins.find((x: Config) => x.name === "rate-limiting").config;
    p.limit_by = "path";
    p.path = "/x";
  }, /limit_by 'path'/],
  ["rate-limiting sync_rate", (c) => {
    notifyRoute(c).plugins.find((x: Config) => x.name === "rate-limiting").config.sync_rate = 1;
  }, /config\.sync_rate: 1 \(only -1\)/],
  [
    "a least-connections upstream",
    (c) => c.upstreams[0].algorithm = "least-connections",
    /algorithm: least-connections/,
  ],
  [
    "routes matched by host",
    (c) => notifyRoute(c).hosts = ["api.example"],
    /hosts: route matching on hosts/,
  ],
  ["service retries", (c) => c.services[0].retries = 3, /retries: 3 \(only 0\)/],
  [
    "a consumer-scoped plugin",
    (c) => c.consumers[0].plugins = [{ name: "rate-limiting", config: { minute: 5 } }],
    /consumers\[0\]\.plugins\[0\]\(rate-limiting\): consumer-scoped plugins outside a route/,
  ],
];

for (const [what, change, expected] of UNIMPLEMENTED) {
  Deno.test(`local kong: refuses to start on ${what}, naming it`, async () => {
    const config: Config = await localKongConfig(stack);
    change(config);
    assert.throws(() => startKong({ config, port: freePort() }), expected);
  });
}

Deno.test("local kong: refuses a configuration Kong 3.9 would refuse", async () => {
  const config: Config = await localKongConfig(stack);
  notifyRoute(config).plugins.find((p: Config) => p.name === "jwt").config.claims_to_verify = [
    "iat",
  ];
  assert.throws(
    () => startKong({ config, port: freePort() }),
    /not valid for Kong 3\.9[\s\S]*claims_to_verify/,
  );
});

Deno.test("local kong: Herald's own 503s (readiness in a Postgres outage) eject no target; a dead runtime is ejected", async () => {
  // Two edge runtimes that are alive but whose database is down: readiness answers 503.
  const runtimes = [0, 1].map((i) =>
    Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (request) =>
        new URL(request.url).pathname.endsWith("/ready")
          ? new Response(JSON.stringify({ status: 503 }), {
            status: 503,
            headers: { "content-type": "application/problem+json", "retry-after": "5" },
          })
          : Response.json({ status: "ok", runtime: i }),
    )
  );
  const config: Config = await localKongConfig(stack, {});
  config.upstreams[0].targets = runtimes.map((r) => ({
    target: `127.0.0.1:${r.addr.port}`,
    weight: 50,
  }));
  try {
    await withKong(config, async (base) => {
      for (let i = 0; i < 30; i++) {
        const r = await fetch(`${base}/functions/v1/health/ready`);
        assert.equal(r.status, 503);
        assert.equal(r.headers.get("retry-after"), "5", "Herald's 503, not Kong's");
        await r.body?.cancel();
      }
      const live = await fetch(`${base}/functions/v1/health`);
      assert.equal(live.status, 200, await live.clone().text());
      await live.body?.cancel();

      // A runtime that is gone (connections refused) is ejected: everything goes to the other.
      await runtimes[1].shutdown();
      const seen = new Set<number>();
      for (let i = 0; i < 20; i++) {
        const r = await fetch(`${base}/functions/v1/health`);
        if (r.status === 200) seen.add((await r.json()).runtime);
        else await r.body?.cancel();
      }
      assert.deepEqual([...seen], [0]);
      const after = await fetch(`${base}/functions/v1/health`);
      assert.equal(after.status, 200, "after two refused connections only the live one is asked");
      await after.body?.cancel();
    });
  } finally {
    await Promise.all(runtimes.map((r) => r.shutdown().catch(() => {})));
  }
});

Deno.test("local kong: read_timeout bounds an in-process upstream too: 504, as Kong answers", async () => {
  const config: Config = await localKongConfig(stack, {});
  const service = config.services.find((s: Config) => s.name === "herald-health");
  service.read_timeout = 300;
  const target = config.upstreams[0].targets[0].target;
  config.upstreams[0].targets = [{ target, weight: 100 }];
  let release: (() => void) | undefined;
  const held = new Promise<void>((resolve) => release = resolve);
  const port = freePort();
  const kong = startKong({
    config,
    port,
    // A runtime that takes the request and never answers (a function stuck on its database).
    inProcess: { [target]: () => held.then(() => new Response("late")) },
  });
  try {
    const started = performance.now();
    const r = await fetch(`http://127.0.0.1:${port}/functions/v1/health`, {
      signal: AbortSignal.timeout(3_000), // without the bound: a hang, failed here
    });
    const waited = performance.now() - started;
    assert.equal(r.status, 504, await r.clone().text());
    assert.match((await r.json()).message, /timing out/);
    assert.ok(waited >= 280 && waited < 2_000, `answered after ${waited} ms`);
  } finally {
    release!();
    await kong.close();
  }
});
