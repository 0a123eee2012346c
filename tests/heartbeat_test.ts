/**
 * Dispatcher heartbeats against the real database: a silent dispatcher's
 * claims become due within seconds (and their late write-back is fenced
 * out), a beating one's never, and nobody takes over before it has itself
 * beaten steadily for the silence it judges by (a database that was away
 * silenced everyone).
 */
import assert from "node:assert/strict";
import { startHeartbeat } from "../supabase/functions/_shared/dispatch/heartbeat.ts";
import { claimDue, recordResults } from "../supabase/functions/_shared/outbox/outbox.ts";
import { adminSql, createUser, parkPending } from "./support/stack.ts";

type Sql = ReturnType<typeof adminSql>;

async function deliveries(sql: Sql, count: number) {
  const user = await createUser(sql, "heartbeat");
  await sql`insert into herald.device_tokens (user_id, token, platform)
    select ${user.id}, 'heartbeat-' || gen_random_uuid(), 'android' from generate_series(1, ${count})`;
  const [{ id }] = await sql`insert into herald.notifications (title) values ('heartbeat test')
    returning id`;
  await sql`insert into herald.deliveries
      (notification_id, created_at, recipient_id, channel, device_token_id, target, platform)
    select n.id, n.created_at, user_id, 'push', t.id, token, platform
    from herald.device_tokens t, herald.notifications n
    where t.user_id = ${user.id} and n.id = ${id}`;
  return id as string;
}

/** `holder`'s row, last seen `secondsAgo`, and `count` deliveries it claimed under a 60 s lease. */
async function claimedBy(sql: Sql, holder: string, secondsAgo: number, count: number) {
  await parkPending(sql);
  const notification = await deliveries(sql, count);
  await sql`insert into herald.dispatchers (id, seen_at)
    values (${holder}, now() - make_interval(secs => ${secondsAgo}))`;
  const claimed = await claimDue(sql, { limit: count, leaseMs: 60_000, holder });
  assert.equal(claimed.length, count);
  assert.ok(claimed.every((d) => d.notification.id === notification));
  return { notification, claimed };
}

const dueNow = (sql: Sql, notification: string) =>
  sql`select count(*)::integer as n from herald.deliveries
      where notification_id = ${notification} and next_attempt_at <= now()`.then(([r]) => r.n);

const until = async (what: string, check: () => Promise<boolean>, timeoutMs = 5_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
};

Deno.test("heartbeat: a silent dispatcher's claims are due again in seconds, its write-back fenced out", async () => {
  const sql = adminSql();
  const silent = crypto.randomUUID();
  const heartbeat = startHeartbeat({ sql, intervalMs: 100, silentAfterMs: 500 });
  try {
    const { notification, claimed } = await claimedBy(sql, silent, 1, 5);
    await until(
      "the silent dispatcher's rows to be due",
      async () => (await dueNow(sql, notification)) === 5,
    );
    const [{ rows }] = await sql`select count(*)::integer as rows from herald.dispatchers
      where id = ${silent}`;
    assert.equal(rows, 0, "the silent dispatcher's row is gone");

    const again = await claimDue(sql, { limit: 10, leaseMs: 60_000, holder: heartbeat.id });
    assert.deepEqual(again.map((d) => d.id).sort(), claimed.map((d) => d.id).sort());
    const unknown = await sql`select count(*)::integer as n from herald.delivery_attempts a
      join herald.deliveries d on d.id = a.delivery_id
      where d.notification_id = ${notification} and a.outcome = 'unknown' and a.attempt = 1`;
    assert.equal(unknown[0].n, 5, "the silent dispatcher's attempts are logged as unknown");
    const late = await recordResults(
      sql,
      claimed.map((d) => ({ ...d, status: "sent" as const, outcome: "sent" as const })),
    );
    assert.equal(late, 0, "the silent dispatcher's late write-back changes nothing");
    const written = await recordResults(
      sql,
      again.map((d) => ({ ...d, status: "sent" as const, outcome: "sent" as const })),
    );
    assert.equal(written, 5);
    const [{ held }] = await sql`select count(*)::integer as held from herald.deliveries
      where notification_id = ${notification} and locked_by is not null`;
    assert.equal(held, 0, "the write-back clears the holder");
  } finally {
    await heartbeat.stop();
    await sql.end();
  }
});

Deno.test("heartbeat: a dispatcher that beats keeps its claims", async () => {
  const sql = adminSql();
  const alive = startHeartbeat({ sql, intervalMs: 100, silentAfterMs: 500 });
  const judge = startHeartbeat({ sql, intervalMs: 100, silentAfterMs: 500 });
  try {
    await parkPending(sql);
    const notification = await deliveries(sql, 3);
    await claimDue(sql, { limit: 3, leaseMs: 60_000, holder: alive.id });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.equal(await dueNow(sql, notification), 0);
  } finally {
    await judge.stop();
    await alive.stop();
    const [{ rows }] = await sql`select count(*)::integer as rows from herald.dispatchers
      where id in (${alive.id}, ${judge.id})`;
    assert.equal(rows, 0, "a stopped dispatcher removes its row");
    await sql.end();
  }
});

Deno.test("heartbeat: no takeover before the judge has beaten steadily for the whole silence", async () => {
  const sql = adminSql();
  const silent = crypto.randomUUID();
  let heartbeat;
  try {
    // Silent for an hour: what every dispatcher looks like after the database was away.
    const { notification } = await claimedBy(sql, silent, 3_600, 2);
    const started = Date.now();
    heartbeat = startHeartbeat({ sql, intervalMs: 100, silentAfterMs: 1_000 });
    await until("the rows to be due", async () => (await dueNow(sql, notification)) === 2);
    const after = Date.now() - started;
    assert.ok(after >= 1_000, `taken over ${after} ms after the judge's first beat`);
  } finally {
    await heartbeat?.stop();
    await sql.end();
  }
});

Deno.test("heartbeat: after a Postgres stall silenced everyone, a judge whose own last beat is as old takes no one over", async () => {
  const sql = adminSql();
  const judge = crypto.randomUUID();
  const peer = crypto.randomUUID();
  try {
    // Both last beat 10 s ago (the stall); the peer holds two claims.
    const { notification } = await claimedBy(sql, peer, 10, 2);
    await sql`insert into herald.dispatchers (id, seen_at) values (${judge}, now() - interval '10 s')`;
    const beat = (args: string) =>
      sql.unsafe(`select * from herald.dispatcher_heartbeat('${judge}', '', true, ${args})`);
    // The hung beat runs after the stall: the judge's own previous beat is as old as the peer's.
    const [stalled] = await beat("interval '6 s', interval '3 s'");
    assert.deepEqual({ ...stalled }, { dispatchers: 0, deliveries: 0 });
    assert.equal(await dueNow(sql, notification), 0);
    // The previous release's call (four arguments) judges the same way.
    await sql`update herald.dispatchers set seen_at = now() - interval '10 s' where id = ${judge}`;
    const [previous] = await beat("interval '6 s'");
    assert.deepEqual({ ...previous }, { dispatchers: 0, deliveries: 0 });
    // Its next beat follows a recent one: now a peer still silent is taken over.
    const [steady] = await beat("interval '6 s', interval '3 s'");
    assert.ok(steady.dispatchers >= 1 && steady.deliveries >= 2, JSON.stringify(steady));
    assert.equal(await dueNow(sql, notification), 2);
    const [{ gone }] = await sql`select not exists (
      select 1 from herald.dispatchers where id = ${peer}) as gone`;
    assert.ok(gone);
  } finally {
    await sql`delete from herald.dispatchers where id in (${judge}, ${peer})`;
    await sql.end();
  }
});

Deno.test("heartbeat: the runbook's query lists a live worker", async () => {
  const sql = adminSql();
  const heartbeat = startHeartbeat({ sql, instance: "runbook", intervalMs: 100 });
  try {
    const runbook = await Deno.readTextFile(new URL("../docs/RUNBOOK.md", import.meta.url));
    const query = runbook.match(/`(select [^`]* from herald\.dispatchers;)`/)?.[1];
    assert.ok(query, "RUNBOOK.md shows how to list the workers");
    await until(
      "the first beat",
      async () =>
        (await sql.unsafe(query)).some((r) => r.id === heartbeat.id && r.instance === "runbook"),
    );
  } finally {
    await heartbeat.stop();
    await sql.end();
  }
});
