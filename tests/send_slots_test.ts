/**
 * Send slots against the real Redis (through the Upstash-compatible bridge):
 * holders share a target's limit, a lower limit holds alone, slots come back
 * on leave and expire when their holder vanishes; without Redis a process
 * keeps the limit to itself.
 */
import assert from "node:assert/strict";
import { createSendSlots } from "../supabase/functions/_shared/dispatch/send_slots.ts";
import { createRedis } from "../supabase/functions/_shared/redis/client.ts";
import { runScript, SEND_SLOTS } from "../supabase/functions/_shared/redis/scripts.ts";
import { stack } from "./support/stack.ts";

const redis = createRedis({ url: stack.redisRestUrl, token: stack.redisRestToken });

/** Runs `n` tasks through `lane` at once and reports the most in flight and how many ran. */
async function burst(lane: { run<T>(task: () => Promise<T>): Promise<T | undefined> }, n: number) {
  let inFlight = 0;
  let most = 0;
  const ran = await Promise.all(Array.from({ length: n }, () =>
    lane.run(async () => {
      most = Math.max(most, ++inFlight);
      await new Promise((resolve) => setTimeout(resolve, 5));
      inFlight--;
      return true;
    })));
  return { most, ran: ran.filter(Boolean).length };
}

Deno.test("send slots: two holders share one target's limit through Redis, each kept a share", async () => {
  const prefix = `herald:test:slots:${crypto.randomUUID()}:`;
  const a = createSendSlots({ limit: 3, redis, prefix, holdMs: 600 });
  const b = createSendSlots({ limit: 3, redis, prefix, holdMs: 600 });
  const laneA = await a.enter("fcm:p");
  assert.deepEqual(await burst(laneA, 10), { most: 3, ran: 10 }, "alone, the whole limit");
  const laneB = await b.enter("fcm:p");
  assert.equal(b.widestLimit, 0, "none free when it came");
  assert.deepEqual(
    await burst(laneB, 2),
    { most: 1, ran: 2 },
    "it waits for the share the first gives up at its next renewal",
  );
  assert.deepEqual(await burst(laneA, 10), { most: 2, ran: 10 }, "the first keeps the rest");
  await laneA.leave();
  await laneB.leave();
  const again = await b.enter("fcm:p");
  assert.deepEqual(await burst(again, 5), { most: 3, ran: 5 }, "given back on leave");
  await again.leave();
});

Deno.test("send slots: a holder that gets no share in time answers undefined (the limit is below the holders)", async () => {
  const prefix = `herald:test:slots:${crypto.randomUUID()}:`;
  const a = createSendSlots({ limit: 1, redis, prefix, holdMs: 300 });
  const b = createSendSlots({ limit: 1, redis, prefix, holdMs: 300 });
  const laneA = await a.enter("webhook:e");
  const laneB = await b.enter("webhook:e");
  const started = performance.now();
  assert.deepEqual(await burst(laneB, 2), { most: 0, ran: 0 });
  const waited = performance.now() - started;
  assert.ok(waited >= 250 && waited < 2_000, `waited holdMs (300 ms), not ${waited} ms`);
  const ended = new AbortController();
  ended.abort();
  assert.equal(
    await laneB.run(() => Promise.resolve(true), ended.signal),
    undefined,
    "a round already over waits for nothing",
  );
  await laneA.leave();
  await laneB.leave();
});

Deno.test("send slots: a target's own lower limit (one webhook endpoint) holds alone", async () => {
  const prefix = `herald:test:slots:${crypto.randomUUID()}:`;
  const slots = createSendSlots({ limit: 8, redis, prefix });
  const lane = await slots.enter("webhook:e", 2);
  assert.deepEqual(await burst(lane, 6), { most: 2, ran: 6 });
  await lane.leave();
});

Deno.test("send slots: a vanished holder's slots expire after holdMs", async () => {
  const prefix = `herald:test:slots:${crypto.randomUUID()}:`;
  const clock = { now: Date.now() };
  // What a SIGKILLed process leaves behind: its entry, which nobody renews.
  await runScript(redis, SEND_SLOTS, [`${prefix}{fcm:p}`], [clock.now, 2, 2, 1_000, "dead"]);
  const other = createSendSlots({ limit: 2, redis, prefix, holdMs: 1_000, now: () => clock.now });
  const blocked = await other.enter("fcm:p");
  assert.deepEqual(await burst(blocked, 1), { most: 0, ran: 0 });
  await blocked.leave();
  clock.now += 1_001;
  const lane = await other.enter("fcm:p");
  assert.deepEqual(await burst(lane, 4), { most: 2, ran: 4 });
  await lane.leave();
});

Deno.test("send slots: a live holder renews its slots for as long as a round runs, then gives them back", async () => {
  const prefix = `herald:test:slots:${crypto.randomUUID()}:`;
  const holder = createSendSlots({ limit: 2, redis, prefix, holdMs: 300 });
  const other = createSendSlots({ limit: 2, redis, prefix, holdMs: 300 });
  const long = await holder.enter("fcm:p");
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const blocked = await other.enter("fcm:p");
  assert.deepEqual(
    await burst(blocked, 2),
    { most: 1, ran: 2 },
    "after 3 × holdMs the holder still renews; the newcomer gets its share, not more",
  );
  assert.equal(holder.widestLimit, 1, "the holder kept the rest");
  await blocked.leave();
  await long.leave();
  const lane = await other.enter("fcm:p");
  assert.deepEqual(await burst(lane, 4), { most: 2, ran: 4 });
  await lane.leave();
});

Deno.test("send slots: with Redis unreachable each process keeps the limit, and says so once", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  listener.close();
  const reports: (Error | undefined)[] = [];
  const slots = createSendSlots({
    limit: 2,
    redis: createRedis({ url: `http://127.0.0.1:${listener.addr.port}`, token: "x" }),
    onDegraded: (error) => reports.push(error),
  });
  const lane = await slots.enter("fcm:p");
  assert.deepEqual(await burst(lane, 5), { most: 2, ran: 5 });
  await lane.leave();
  assert.equal(reports.length, 1);
  assert.ok(reports[0] instanceof Error);
});

Deno.test("send slots: what a round can use is the share Redis granted, not the whole limit", async () => {
  const prefix = `herald:test:slots:${crypto.randomUUID()}:`;
  const a = createSendSlots({ limit: 8, initialLimit: 8, redis, prefix });
  const b = createSendSlots({ limit: 8, initialLimit: 8, redis, prefix });
  assert.equal(b.widestLimit, 8, "before any round: the limit");
  const laneA = await a.enter("fcm:p", 6);
  assert.equal(a.widestLimit, 6, "alone, its own lower limit");
  const laneB = await b.enter("fcm:p");
  assert.equal(b.widestLimit, 2, "what the other holder left it");
  await laneA.leave();
  await laneB.leave();
  const again = await b.enter("fcm:p");
  assert.equal(b.widestLimit, 8, "the whole limit once it is alone again");
  await again.leave();
});
