/**
 * The circuit breaker across two real dispatcher processes sharing Redis:
 * a failing FCM opens it; while open, neither process sends anything; after
 * each cool-down exactly one probe goes out; a successful probe closes it
 * and everything is delivered.
 */
import assert from "node:assert/strict";
import { Redis as IORedis } from "ioredis";
import { eventually, startDispatcher } from "./support/dispatcher_process.ts";
import { adminSql, createUser, enqueue, fakeControl, parkPending, stack } from "./support/stack.ts";

const COOLDOWN_MS = 3_000;
const STATE_KEY = "herald:breaker:{fcm:herald-local}";

Deno.test("breaker across two dispatchers: silence while open, one probe per cool-down, then delivery", async () => {
  const sql = adminSql();
  const redis = new IORedis({ port: stack.ports.redis, lazyConnect: true });
  const env = {
    HERALD_BREAKER_COOLDOWN_MS: String(COOLDOWN_MS),
    HERALD_BATCH_SIZE: "3",
    HERALD_BACKOFF_BASE_MS: "100",
  };
  const dispatchers = [];
  // Cleared before watching: an earlier test may have left this target's breaker
  // open, and a stale open_until read first would shift every cycle below.
  await redis.del(STATE_KEY, `${STATE_KEY}:failures`);
  // Every distinct open_until the breaker goes through, as observed.
  const openings: number[] = [];
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const openUntil = Number(await redis.hget(STATE_KEY, "open_until"));
      if (openUntil && openings.at(-1) !== openUntil) openings.push(openUntil);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  try {
    await parkPending(sql);
    await fakeControl("fcm", "reset");
    await fakeControl("fcm", "behaviour", {
      responses: [{ fcm_error: "UNAVAILABLE" }],
      repeat_last: true,
    });
    const user = await createUser(sql, "breaker");
    await sql`insert into herald.device_tokens (user_id, token, platform)
      select ${user.id}, 'breaker-' || ${user.id}::text || '-' || i, 'android'
      from generate_series(1, 12) i`;
    // One dispatcher's failing rounds open it (rounds of 3: the second reaches 5 failures) …
    dispatchers.push(await startDispatcher(env));
    await enqueue(sql, [user.id], { title: "Breaker" });
    await eventually(
      "the breaker to open",
      () => Promise.resolve(openings.length ? true : undefined),
    );
    // … and from then on two processes share it: two cool-downs pass with a failing probe each.
    dispatchers.push(await startDispatcher(env));
    await eventually(
      "the breaker to open and re-open twice",
      () => Promise.resolve(openings.length >= 3 ? true : undefined),
      30_000,
    );
    // FCM recovers (the record of what it saw is kept).
    await fakeControl("fcm", "behaviour", { responses: [] });
    await eventually("every delivery to be sent", async () => {
      const [{ pending }] = await sql`select count(*)::integer as pending from herald.deliveries
        where recipient_id = ${user.id} and status <> 'sent'`;
      return pending === 0 ? true : undefined;
    }, 30_000);

    const { requests } = await fakeControl("fcm", "requests");
    const arrivals = (requests as { at: string; body: { message?: { token?: string } } }[])
      .filter((r) => r.body?.message?.token?.startsWith(`breaker-${user.id}-`))
      .map((r) => Date.parse(r.at));
    const [firstOpen, secondOpen, thirdOpen] = openings.map((until) => until - COOLDOWN_MS);
    assert.ok(arrivals.filter((at) => at <= firstOpen).length >= 5, "failures opened it");
    const between = (from: number, to: number) => arrivals.filter((at) => at > from && at <= to);
    // Arrivals are stamped by the stand-in before it answers, so anything after an
    // opening was sent after the breaker said "open".
    assert.equal(
      between(firstOpen, secondOpen).length,
      1,
      "one probe in the first cool-down cycle",
    );
    assert.ok(
      between(firstOpen, secondOpen)[0] >= openings[0],
      "the probe waited for the cool-down",
    );
    assert.equal(between(secondOpen, thirdOpen).length, 1, "one probe in the second");
    assert.ok(between(secondOpen, thirdOpen)[0] >= openings[1]);
    const afterThird = between(thirdOpen, Infinity);
    assert.ok(afterThird.every((at) => at >= openings[2]), "nothing during the third cool-down");
    assert.equal(await redis.exists(STATE_KEY), 0, "the successful probe closed the breaker");
  } finally {
    watching = false;
    await watcher;
    const logs = await Promise.all(dispatchers.map((d) => d.stop()));
    await fakeControl("fcm", "reset");
    await redis.del(STATE_KEY, `${STATE_KEY}:failures`);
    redis.disconnect();
    await sql.end();
    const claimedBy = logs.map((log) => (log.match(/"dispatch round"/g) ?? []).length);
    console.log(`breaker test: dispatch rounds per process ${claimedBy.join(" and ")}`);
  }
});
