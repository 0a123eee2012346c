/**
 * The adaptive per-target limit: its rules one at a time on a fake clock, then
 * against the FCM stand-in over HTTP — a slow FCM gets more sends in flight
 * than the limit starts with (never more than the ceiling), a throttling one
 * gets fewer.
 */
import assert from "node:assert/strict";
import { createSendSlots } from "../supabase/functions/_shared/dispatch/send_slots.ts";
import { createFcmSender } from "../supabase/functions/_shared/providers/fcm.ts";
import { createAccessTokenSource } from "../supabase/functions/_shared/providers/google_access_token.ts";
import { AdaptiveLimit } from "../supabase/functions/_shared/resilience/adaptive_limit.ts";
import { createServiceAccount } from "./fakes/google_oauth.ts";
import { startFakes } from "./fakes/main.ts";

/** A limit on a clock that moves only when told. */
function limited(options: Partial<ConstructorParameters<typeof AdaptiveLimit>[0]> = {}) {
  const clock = { now: 0 };
  const limit = new AdaptiveLimit({ ceiling: 1_000, now: () => clock.now, ...options });
  /** One round trip: `limit` sends answered in `latencyMs` each, with the limit in use. */
  const roundTrip = (latencyMs: number, failed = false) => {
    const sends = limit.limit;
    clock.now += latencyMs;
    for (let i = 0; i < sends; i++) limit.observe(latencyMs, failed, sends);
  };
  return { limit, clock, roundTrip };
}

Deno.test("adaptive limit: starts at 16 and doubles per round trip while answers stay fast", () => {
  const { limit, roundTrip } = limited();
  assert.equal(limit.limit, 16);
  roundTrip(20);
  assert.equal(limit.limit, 32);
  roundTrip(20);
  assert.equal(limit.limit, 64);
});

Deno.test("adaptive limit: never above the ceiling, and `initial` is capped by it", () => {
  const { limit, roundTrip } = limited({ ceiling: 40 });
  for (let i = 0; i < 10; i++) roundTrip(20);
  assert.equal(limit.limit, 40);
  assert.equal(new AdaptiveLimit({ ceiling: 4 }).limit, 4);
  assert.equal(new AdaptiveLimit({ ceiling: 100, initial: 3 }).limit, 3);
});

Deno.test("adaptive limit: a failure halves it, once per round trip, and ends slow start", () => {
  const { limit, clock, roundTrip } = limited();
  roundTrip(20); // 32
  limit.observe(20, true, 32);
  assert.equal(limit.limit, 16);
  // The other answers of the same round trip do not cut again.
  for (let i = 0; i < 10; i++) limit.observe(20, true, 16);
  assert.equal(limit.limit, 16);
  clock.now += 25;
  limit.observe(20, true, 16);
  assert.equal(limit.limit, 8);
  // After slow start: about one more per round trip, not double.
  clock.now += 25;
  roundTrip(20);
  roundTrip(20);
  assert.equal(limit.limit, 9);
});

Deno.test("adaptive limit: latency well above the unloaded latency cuts it by a tenth", () => {
  const { limit, clock, roundTrip } = limited();
  for (let i = 0; i < 3; i++) roundTrip(20); // 128, unloaded latency 20 ms
  assert.equal(limit.limit, 128);
  // 3 × 20 ms + 50 ms slack = 110 ms: answers at 100 ms are still fine …
  for (let i = 0; i < 50; i++) limit.observe(100, false, 10);
  assert.equal(limit.limit, 128);
  // … at 300 ms the target is queueing: cut, once per round trip.
  for (let i = 0; i < 50; i++) limit.observe(300, false, 128);
  assert.equal(limit.limit, 115);
  clock.now += 400;
  limit.observe(300, false, 115);
  assert.equal(limit.limit, 103);
});

Deno.test("adaptive limit: an unused limit does not grow", () => {
  const { limit } = limited();
  for (let i = 0; i < 1_000; i++) limit.observe(20, false, 3);
  assert.equal(limit.limit, 16);
});

Deno.test("adaptive limit: never below the floor", () => {
  const { limit, clock } = limited({ floor: 2 });
  for (let i = 0; i < 20; i++) {
    clock.now += 100;
    limit.observe(20, true, 1);
  }
  assert.equal(limit.limit, 2);
});

Deno.test("adaptive limit: a target that became slower for good is its new normal", () => {
  const { limit, clock, roundTrip } = limited({ ceiling: 64 });
  roundTrip(20);
  roundTrip(20); // 64: at the ceiling, unloaded latency 20 ms
  // Now every answer takes 200 ms: cut at first …
  for (let i = 0; i < 40; i++) {
    clock.now += 250;
    limit.observe(200, false, limit.limit);
  }
  const cut = limit.limit;
  assert.ok(cut < 64, `cut to ${cut}`);
  // … until two windows of 500 answers have passed: 200 ms is then the unloaded latency.
  for (let i = 0; i < 1_000; i++) limit.observe(200, false, limit.limit);
  clock.now += 250;
  roundTrip(200);
  assert.equal(limit.limit, 64, "back at the ceiling");
});

Deno.test("adaptive limit: a target that goes from instant to 300 ms keeps 16 in flight, then is near the ceiling within 20 s", () => {
  // The outside check: a dispatcher that had seen FCM answer at once fell to one send
  // in flight when FCM began to take 300 ms, and stayed there for minutes.
  // A fresh one that has seen five answers at once, as the check's dispatcher had.
  const { limit, clock, roundTrip } = limited({ ceiling: 512 });
  for (let i = 0; i < 5; i++) limit.observe(1, false, 5);
  let least = limit.limit;
  while (clock.now < 20_000) {
    roundTrip(300);
    least = Math.min(least, limit.limit);
  }
  assert.ok(least >= 16 && least < 512, `least ${least}: cut, but never below 16 by latency alone`);
  assert.ok(limit.limit >= 256, `back to ${limit.limit} after 20 s at 300 ms`);
  // And it stays there: 300 ms is now the unloaded latency.
  for (let i = 0; i < 20; i++) roundTrip(300);
  assert.ok(limit.limit >= 256, `then ${limit.limit}`);
});

Deno.test("adaptive limit: failures still halve it below where slow start began", () => {
  const { limit, clock } = limited({ ceiling: 512 });
  for (let i = 0; i < 6; i++) {
    clock.now += 100;
    limit.observe(20, true, limit.limit);
  }
  assert.equal(limit.limit, 1);
});

Deno.test("adaptive limit: refuses a ceiling, floor or start that is not a positive integer", () => {
  for (
    const options of [{ ceiling: 0 }, { ceiling: 1.5 }, { ceiling: 8, floor: 0 }, {
      ceiling: 8,
      initial: -1,
    }]
  ) {
    assert.throws(() => new AdaptiveLimit(options), RangeError);
  }
});

const PROJECT = "herald-adaptive";
const ACCOUNT = await createServiceAccount({ projectId: PROJECT, tokenUri: "http://unset/token" });

/** Sends `count` messages to the FCM stand-in through one lane of send slots, as a round does. */
async function sendThroughSlots(
  options: { latencyMs: number; count: number; ceiling: number; behaviour?: unknown },
) {
  const fakes = await startFakes({
    ports: { fcm: 0, oauth: 0, email: 0, webhook: 0 },
    serviceAccounts: [ACCOUNT],
  });
  // Its own connections, closed before the stand-in: a server waits for idle keep-alive ones.
  const client = Deno.createHttpClient({});
  try {
    await fetch(`${fakes.fcm.url}/_control/behaviour`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ latency_ms: options.latencyMs, ...(options.behaviour ?? {}) }),
    }).then((r) => r.body?.cancel());
    const send = createFcmSender({
      projectId: PROJECT,
      tokens: createAccessTokenSource({
        serviceAccount: { ...ACCOUNT, token_uri: fakes.tokenUrl },
      }),
      baseUrl: fakes.fcm.url,
      fetch: (url, init) => fetch(url, { ...init, client }),
    });
    const slots = createSendSlots({ limit: options.ceiling });
    const lane = await slots.enter(`fcm:${PROJECT}`);
    const outcomes = await Promise.all(
      Array.from({ length: options.count }, (_, i) =>
        lane.run(async () => {
          const started = performance.now();
          const outcome = await send({ token: `adaptive-${i}`, notification: { title: "Hi" } });
          lane.observe(performance.now() - started, outcome.kind === "retry");
          return outcome;
        })),
    );
    await lane.leave();
    const seen = await (await fetch(`${fakes.fcm.url}/_control/requests`)).json();
    return {
      outcomes,
      maxInFlight: seen.max_in_flight as number,
      total: seen.total as number,
      limit: slots.adaptiveLimit(`fcm:${PROJECT}`),
    };
  } finally {
    client.close();
    await fakes.close();
  }
}

Deno.test("adaptive limit: a slow FCM (300 ms) gets more than the 16 in flight it starts with, never above the ceiling", async () => {
  const run = await sendThroughSlots({ latencyMs: 300, count: 600, ceiling: 100 });
  assert.equal(run.total, 600);
  assert.ok(run.outcomes.every((o) => o?.kind === "sent"));
  assert.ok(run.maxInFlight > 16, `at most ${run.maxInFlight} in flight`);
  assert.ok(run.maxInFlight <= 100, `${run.maxInFlight} in flight, above the ceiling`);
});

Deno.test("adaptive limit: a throttling FCM (429 QUOTA_EXCEEDED) gets fewer in flight", async () => {
  const run = await sendThroughSlots({
    latencyMs: 20,
    count: 200,
    ceiling: 100,
    behaviour: { responses: [{ fcm_error: "QUOTA_EXCEEDED" }], repeat_last: true },
  });
  assert.ok(run.outcomes.every((o) => o?.kind === "retry"));
  assert.ok(run.limit < 16, `the limit stayed at ${run.limit}`);
  assert.ok(run.maxInFlight <= 16, `${run.maxInFlight} in flight`);
});
