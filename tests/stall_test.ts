/**
 * A dispatcher that stood still (SIGSTOP, a frozen VM) wakes to the timeouts
 * of every send it had in flight. Those are its own failure: they must not
 * open the shared breaker, spend attempts or teach the adaptive limit.
 */
import assert from "node:assert/strict";
import { functionEnvironment } from "../scripts/stack/stack.ts";
import { loadConfig } from "../supabase/functions/_shared/config.ts";
import { dispatchBatch } from "../supabase/functions/_shared/dispatch/dispatcher.ts";
import { startStallWatch } from "../supabase/functions/_shared/dispatch/stall_watch.ts";
import { createFcmSender } from "../supabase/functions/_shared/providers/fcm.ts";
import { createAccessTokenSource } from "../supabase/functions/_shared/providers/google_access_token.ts";
import { createPushProvider } from "../supabase/functions/_shared/providers/push.ts";
import { testDispatcher } from "./support/dispatch.ts";
import { adminSql, createUser, enqueue, fakeControl, parkPending, stack } from "./support/stack.ts";

/** Keeps the event loop from running for `ms`: what SIGSTOP does to a process. */
function standStill(ms: number) {
  const until = performance.now() + ms;
  while (performance.now() < until) { /* busy */ }
}

Deno.test("stall watch: a blocked event loop is a stall for what was in flight, not for what starts after", async () => {
  const stalls = startStallWatch({ tickMs: 50, stallMs: 300 });
  try {
    const before = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 120));
    standStill(500);
    assert.ok(stalls.stalledSince(before) >= 300, "seen before the next tick");
    await new Promise((resolve) => setTimeout(resolve, 120));
    assert.ok(stalls.stalledSince(before) >= 300, "and after it");
    assert.equal(stalls.stalledSince(performance.now()), 0);
  } finally {
    stalls.stop();
  }
});

Deno.test("dispatch: timeouts that fired because the dispatcher stood still open no breaker and spend no attempt", async () => {
  const sql = adminSql();
  const config = loadConfig(await functionEnvironment(stack, true));
  const { serviceAccount, apiUrl } = config.fcm!;
  const push = createPushProvider({
    projectId: serviceAccount!.project_id,
    timeoutMs: 400,
    sender: createFcmSender({
      projectId: serviceAccount!.project_id,
      tokens: createAccessTokenSource({ serviceAccount: serviceAccount! }),
      baseUrl: apiUrl,
      timeoutMs: 400,
    }),
  });
  const stalls = startStallWatch({ tickMs: 50, stallMs: 300 });
  const deps = await testDispatcher({ stalls }, { threshold: 5, failureRate: 0.5 });
  deps.providers = { ...deps.providers, push };
  try {
    await parkPending(sql);
    await fakeControl("fcm", "reset");
    // Answers would come after the timeout anyway: the stall alone decides how they are counted.
    await fakeControl("fcm", "behaviour", { latency_ms: 2_000 });
    const user = await createUser(sql, "stall");
    await sql`insert into herald.device_tokens (user_id, token, platform)
      select ${user.id}, 'stall-' || ${user.id}::text || '-' || i, 'android'
      from generate_series(1, 10) i`; // all in flight at once (the adaptive limit starts at 16)
    const notification = await enqueue(sql, [user.id], { title: "Standing still" });
    // Stand still once all ten sends are in flight, however long the claim
    // took (a fixed 100 ms fell before the sends on a loaded machine).
    const stoodStill = (async () => {
      while ((await fakeControl("fcm", "requests")).total < 10) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      standStill(1_000);
    })();
    const report = await dispatchBatch(deps);
    await stoodStill;
    assert.equal(report.claimed, 10);
    assert.equal(report.retried, 10, JSON.stringify(report));
    assert.equal((await deps.breaker.admit("fcm:herald-local")).state, "closed");
    const rows = await sql`select attempts, last_error from herald.deliveries
      where notification_id = ${notification}`;
    assert.ok(
      rows.every((r) => r.attempts === 0),
      `no attempt spent: ${JSON.stringify(rows.filter((r) => r.attempts !== 0))}`,
    );
    assert.match(rows[0].last_error, /stood still \d+ ms/);
    const [{ codes }] = await sql`select array_agg(distinct a.error_code) as codes
      from herald.delivery_attempts a join herald.deliveries d on d.id = a.delivery_id
      where d.notification_id = ${notification}`;
    assert.deepEqual(codes, ["DISPATCHER_STALLED"]);
    assert.equal(deps.slots!.adaptiveLimit("fcm:herald-local") >= 16, true);
  } finally {
    stalls.stop();
    await fakeControl("fcm", "reset");
    await parkPending(sql);
    await deps.close();
    await sql.end();
  }
});
