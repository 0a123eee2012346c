/**
 * The circuit breaker against the real Redis (through the Upstash-compatible
 * bridge, with the production client), with time injected so no test waits.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Redis as IORedis } from "ioredis";
import { createRedis } from "../supabase/functions/_shared/redis/client.ts";
import { SCRIPTS } from "../supabase/functions/_shared/redis/scripts.ts";
import {
  type BreakerOptions,
  createBreaker,
} from "../supabase/functions/_shared/resilience/breaker.ts";
import { stack } from "./support/stack.ts";

const redis = createRedis({ url: stack.redisRestUrl, token: stack.redisRestToken });

/** A breaker on its own target with a settable clock. */
function breakerAt(start: number, options: BreakerOptions = {}) {
  const clock = { now: start };
  const changes: string[] = [];
  const breaker = createBreaker({
    redis,
    threshold: 5,
    windowMs: 60_000,
    cooldownMs: 30_000,
    probeLeaseMs: 10_000,
    now: () => clock.now,
    onStateChange: (_target, state) => changes.push(state),
    ...options,
  });
  return { breaker, clock, changes, target: `test:${crypto.randomUUID()}` };
}

const failures = (n: number) => ({ failures: n, successes: 0, probe: false });

Deno.test("Lua scripts: the pinned SHA1 is the hash of the text, and Redis agrees", async () => {
  const direct = new IORedis({ port: stack.ports.redis, lazyConnect: true });
  try {
    for (const script of SCRIPTS) {
      assert.equal(
        createHash("sha1").update(script.source).digest("hex"),
        script.sha1,
        script.name,
      );
      assert.equal(await direct.script("LOAD", script.source), script.sha1, script.name);
    }
  } finally {
    direct.disconnect();
  }
});

Deno.test("breaker: loads its scripts on a Redis that has never seen them (NOSCRIPT → EVAL)", async () => {
  const direct = new IORedis({ port: stack.ports.redis, lazyConnect: true });
  try {
    await direct.script("FLUSH");
    const { breaker, target } = breakerAt(1_000_000);
    assert.deepEqual(await breaker.admit(target), { state: "closed" });
    assert.equal(breaker.degraded, false);
  } finally {
    direct.disconnect();
  }
});

Deno.test("breaker: five failures within the window open it until the cool-down ends", async () => {
  const { breaker, clock, target, changes } = breakerAt(1_000_000);
  assert.deepEqual(await breaker.record(target, failures(2)), { state: "closed" });
  clock.now += 10_000;
  assert.deepEqual(await breaker.record(target, failures(2)), { state: "closed" });
  assert.deepEqual(await breaker.admit(target), { state: "closed" });
  clock.now += 10_000;
  assert.deepEqual(await breaker.record(target, failures(1)), {
    state: "open",
    retryAt: clock.now + 30_000,
    opened: true,
  });
  assert.deepEqual(changes, ["open"]);
  clock.now += 29_999;
  assert.deepEqual(await breaker.admit(target), { state: "open", retryAt: clock.now + 1 });
});

Deno.test("breaker: failures older than the window do not count", async () => {
  const { breaker, clock, target } = breakerAt(2_000_000);
  await breaker.record(target, failures(4));
  clock.now += 60_001;
  assert.deepEqual(await breaker.record(target, failures(4)), { state: "closed" });
  assert.deepEqual(await breaker.admit(target), { state: "closed" });
});

Deno.test("breaker: after the cool-down exactly one of many concurrent callers wins the probe", async () => {
  const { breaker, clock, target } = breakerAt(3_000_000);
  await breaker.record(target, failures(5));
  clock.now += 30_000;
  // Twenty callers, as if from twenty isolates: each its own breaker on the same Redis.
  const others = Array.from(
    { length: 19 },
    () => createBreaker({ redis, cooldownMs: 30_000, probeLeaseMs: 10_000, now: () => clock.now }),
  );
  const admissions = await Promise.all([breaker, ...others].map((b) => b.admit(target)));
  const probes = admissions.filter((a) => a.state === "probe");
  assert.equal(probes.length, 1);
  for (const a of admissions.filter((a) => a.state !== "probe")) {
    assert.deepEqual(a, { state: "open", retryAt: clock.now + 1_000 }, "the rest look again soon");
  }
});

Deno.test("breaker: a successful probe closes it; a failed probe re-opens it for a full cool-down", async () => {
  const { breaker, clock, target, changes } = breakerAt(4_000_000);
  await breaker.record(target, failures(5));
  clock.now += 30_000;
  assert.deepEqual(await breaker.admit(target), { state: "probe" });
  assert.deepEqual(await breaker.record(target, { failures: 1, successes: 0, probe: true }), {
    state: "open",
    retryAt: clock.now + 30_000,
    opened: true,
  });
  assert.deepEqual(await breaker.admit(target), { state: "open", retryAt: clock.now + 30_000 });
  clock.now += 30_000;
  assert.deepEqual(await breaker.admit(target), { state: "probe" });
  assert.deepEqual(await breaker.record(target, { failures: 0, successes: 1, probe: true }), {
    state: "closed",
  });
  assert.deepEqual(await breaker.admit(target), { state: "closed" });
  assert.deepEqual(changes, ["open", "open", "closed"]);
  // Closing forgets old failures: one more failure does not re-open it.
  assert.deepEqual(await breaker.record(target, failures(1)), { state: "closed" });
});

Deno.test("breaker: a probe that never reports is given up after its lease", async () => {
  const { breaker, clock, target } = breakerAt(5_000_000);
  await breaker.record(target, failures(5));
  clock.now += 30_000;
  assert.equal((await breaker.admit(target)).state, "probe");
  clock.now += 10_000;
  assert.equal(
    (await breaker.admit(target)).state,
    "probe",
    "the lease ran out: another may probe",
  );
});

Deno.test("breaker: with Redis unreachable a per-process breaker takes over, and says so", async () => {
  const errors: (Error | undefined)[] = [];
  const clock = { now: 6_000_000 };
  const breaker = createBreaker({
    redis: createRedis({ url: "http://127.0.0.1:9", token: "x", timeoutMs: 500 }),
    now: () => clock.now,
    onDegraded: (error) => errors.push(error),
  });
  const target = "test:unreachable";
  assert.deepEqual(await breaker.admit(target), { state: "closed" });
  assert.equal(breaker.degraded, true);
  assert.equal(errors.length, 1, "reported once, not per call");
  assert.ok(errors[0] instanceof Error);
  assert.equal((await breaker.record(target, failures(5))).state, "open");
  assert.deepEqual(await breaker.admit(target), { state: "open", retryAt: clock.now + 30_000 });
  clock.now += 30_000;
  assert.deepEqual(await breaker.admit(target), { state: "probe" });
  assert.deepEqual(await breaker.record(target, { failures: 0, successes: 1, probe: true }), {
    state: "closed",
  });
  assert.equal(errors.length, 1);
});

Deno.test("createBreaker(): refuses a threshold that is not a positive integer", () => {
  assert.throws(
    () => createBreaker({ threshold: 0 }),
    new RangeError("Cannot create breaker: 'threshold' must be a positive integer, got 0"),
  );
});

Deno.test("breaker: minimumCalls alone decides when the failure rate takes over from the count", async () => {
  for (
    const redis of [
      createRedis({ url: stack.redisRestUrl, token: stack.redisRestToken }),
      undefined,
    ]
  ) {
    const prefix = `herald:test:${crypto.randomUUID()}:`;
    const round = { failures: 5, successes: 15, probe: false };
    // 20 calls: below the default 100 the 5 failures alone open it ...
    assert.equal((await createBreaker({ redis, prefix }).record("a", round)).state, "open");
    // ... but with minimumCalls 10, 25 % failed is under the 50 % rate.
    const early = createBreaker({ redis, prefix, minimumCalls: 10 });
    assert.equal((await early.record("b", round)).state, "closed");
  }
});

Deno.test("breaker: failureRate alone sets the share that opens it", async () => {
  for (
    const redis of [
      createRedis({ url: stack.redisRestUrl, token: stack.redisRestToken }),
      undefined,
    ]
  ) {
    const prefix = `herald:test:${crypto.randomUUID()}:`;
    const round = { failures: 30, successes: 70, probe: false };
    assert.equal((await createBreaker({ redis, prefix }).record("a", round)).state, "closed");
    const strict = createBreaker({ redis, prefix, failureRate: 0.25 });
    assert.equal((await strict.record("b", round)).state, "open");
  }
});

Deno.test("createBreaker(): refuses a failureRate outside (0, 1] and a minimumCalls below 1", () => {
  for (const failureRate of [0, 1.5, Number.NaN]) {
    assert.throws(() => createBreaker({ failureRate }), RangeError, String(failureRate));
  }
  assert.throws(() => createBreaker({ minimumCalls: 0 }), RangeError);
});

Deno.test("breaker: a total outage after a busy minute opens it within seconds; 2 % failing at any traffic never does", async () => {
  for (const shared of [true, false]) {
    // A round a second per target, `perSecond` calls each, as a dispatcher reports them.
    for (const perSecond of [3, 30, 300, 3_000]) {
      const { breaker, clock, target } = breakerAt(
        10_000_000,
        shared ? {} : { redis: undefined },
      );
      const label = `${shared ? "Redis" : "per-process"}, ${perSecond}/s`;
      // Five minutes of 2 %: failures spread as a real provider spreads them (every 50th call).
      let sent = 0;
      for (let second = 0; second < 300; second++) {
        const failed = Math.floor((sent + perSecond) / 50) - Math.floor(sent / 50);
        sent += perSecond;
        const state = await breaker.record(target, {
          failures: failed,
          successes: perSecond - failed,
          probe: false,
        });
        assert.equal(state.state, "closed", `${label}: 2 % opened it at second ${second}`);
        clock.now += 1_000;
      }
      // Then everything fails: open within 5 s, whatever the minute held.
      let openedAfter: number | undefined;
      for (let second = 1; second <= 60 && openedAfter === undefined; second++) {
        const state = await breaker.record(target, failures(perSecond));
        if (state.state === "open") openedAfter = second;
        clock.now += 1_000;
      }
      assert.ok(
        openedAfter !== undefined && openedAfter <= 5,
        `${label}: a total outage opened it after ${openedAfter} s`,
      );
    }
  }
});

Deno.test("breaker: one round with `threshold` failures, half or more of it, opens it, however many successes came just before", async () => {
  // A burst of fresh sends that all fail, a second after 3,000 that went well: the
  // windows still hold the successes, the round alone says "outage".
  for (const redisOrNot of [{}, { redis: undefined }]) {
    const { breaker, clock, target } = breakerAt(30_000_000, redisOrNot);
    // (With one failure among them: a window of successes alone is not kept.)
    await breaker.record(target, { failures: 1, successes: 3_000, probe: false });
    clock.now += 1_000;
    const few = await breaker.record(target, { failures: 4, successes: 0, probe: false });
    assert.equal(few.state, "closed", "below the threshold, a round alone decides nothing");
    const mixed = await breaker.record(target, { failures: 5, successes: 6, probe: false });
    assert.equal(mixed.state, "closed", "5 of 11 is under half");
    const state = await breaker.record(target, { failures: 5, successes: 3, probe: false });
    assert.equal(state.state, "open");
    assert.equal(state.state === "open" && state.retryAt, clock.now + 30_000);
  }
});

Deno.test("breaker: opened by its failure rate, it stays open for the longest wait those failures asked for", async () => {
  for (const redisOrNot of [{}, { redis: undefined }]) {
    const { breaker, clock, target } = breakerAt(20_000_000, redisOrNot);
    const asked = await breaker.record(target, { ...failures(5), waitMs: 120_000 });
    assert.deepEqual(asked, { state: "open", retryAt: clock.now + 120_000, opened: true });
    const other = breakerAt(20_000_000, redisOrNot);
    const shorter = await other.breaker.record(other.target, { ...failures(5), waitMs: 2_000 });
    assert.deepEqual(shorter, { state: "open", retryAt: clock.now + 30_000, opened: true });
  }
});
