/**
 * The batching write-back against the real database: callers handing over
 * results together share one statement and each hears only of its own rows;
 * one caller's bad result, or a provider's NUL, sinks nobody else's.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { claimDue, type DeliveryResult } from "../supabase/functions/_shared/outbox/outbox.ts";
import { createResultWriter } from "../supabase/functions/_shared/outbox/result_writer.ts";
import type { ClaimedDelivery } from "../supabase/functions/_shared/outbox/delivery.ts";
import { adminSql, createUser, enqueue } from "./support/stack.ts";

/** `count` pushes of one new notification (a user with `count` devices), claimed. */
async function claimed(sql: postgres.Sql, count: number): Promise<ClaimedDelivery[]> {
  const user = await createUser(sql, "writer");
  await sql`
    insert into herald.device_tokens (user_id, token, platform)
    select ${user.id}, 'writer-' || gen_random_uuid(), 'android' from generate_series(1, ${count})`;
  const id = await enqueue(sql, [user.id], { title: "result writer test" });
  const rows = await claimDue(sql, { limit: count, leaseMs: 60_000, notificationId: id });
  assert.equal(rows.length, count);
  return rows;
}

const sent = (d: ClaimedDelivery, extra: Partial<DeliveryResult> = {}): DeliveryResult => ({
  ...d,
  status: "sent",
  outcome: "sent",
  providerMessageId: `m-${d.id}`,
  ...extra,
});

Deno.test("createResultWriter(): callers handing results over at once share one statement, each told only of its own rows", async () => {
  const sql = adminSql();
  try {
    const rows = await claimed(sql, 21);
    // One row's lease was lost meanwhile: its caller hears 0.
    const lost = rows[20];
    await sql`update herald.deliveries set locked_until = now() + interval '1 hour'
      where id = ${lost.id}`;
    const write = createResultWriter(sql);
    const recorded = await Promise.all(rows.map((d) => write([sent(d)])));
    assert.deepEqual(recorded, [...Array(20).fill(1), 0]);
    const written = await sql`select status, updated_at from herald.deliveries
      where id = any(${rows.slice(0, 20).map((d) => d.id)}::uuid[])`;
    assert.ok(written.every((r) => r.status === "sent"));
    // The first went at once; the 20 others waited for it and went together.
    const statements = new Set(written.map((r) => (r.updated_at as Date).getTime()));
    assert.equal(statements.size, 2, "two write-backs for 21 callers");
  } finally {
    await sql.end();
  }
});

Deno.test("createResultWriter(): callers under different instance labels are each counted under their own", async () => {
  const sql = adminSql();
  try {
    const rows = await claimed(sql, 4);
    const labels = [
      "",
      `writer-a-${rows[0].id}`,
      `writer-b-${rows[0].id}`,
      `writer-a-${rows[0].id}`,
    ];
    const write = createResultWriter(sql);
    const recorded = await Promise.all(
      rows.map((d, i) => write([sent(d)], { instance: labels[i] })),
    );
    assert.deepEqual(recorded, [1, 1, 1, 1]);
    const counted = await sql`select instance, sum(n)::int as n from herald.metric_counters
      where metric = 'deliveries' and label = 'sent' and instance = any(${labels.slice(1)})
      group by instance order by instance`;
    assert.deepEqual(counted.map((r) => [r.instance, r.n]), [[labels[1], 2], [labels[2], 1]]);
  } finally {
    await sql.end();
  }
});

Deno.test("createResultWriter(): a result Postgres refuses fails its own caller only; the batch's others are written", async () => {
  const sql = adminSql();
  try {
    const rows = await claimed(sql, 4);
    const write = createResultWriter(sql);
    const [first, refused, ...others] = await Promise.allSettled([
      write([sent(rows[0])]),
      write([sent(rows[1], { createdAt: "not a time" })]),
      write([sent(rows[2])]),
      write([sent(rows[3])]),
    ]);
    assert.deepEqual(first, { status: "fulfilled", value: 1 });
    assert.equal(refused.status, "rejected");
    assert.match(String((refused as PromiseRejectedResult).reason), /not a time/);
    assert.deepEqual(others, [{ status: "fulfilled", value: 1 }, {
      status: "fulfilled",
      value: 1,
    }]);
    const [{ pending }] = await sql`select count(*)::int as pending from herald.deliveries
      where id = any(${rows.map((d) => d.id)}::uuid[]) and status = 'pending'`;
    assert.equal(pending, 1, "only the refused result's delivery waits for its lease");
  } finally {
    await sql.end();
  }
});

Deno.test("createResultWriter(): an unreachable database fails every waiting caller with its error", async () => {
  const sql = adminSql();
  const down = postgres("postgres://postgres@127.0.0.1:1/postgres", {
    max: 1,
    connect_timeout: 2,
    onnotice: () => {},
  });
  try {
    const rows = await claimed(sql, 3);
    const write = createResultWriter(down);
    const started = performance.now();
    const settled = await Promise.allSettled(rows.map((d) => write([sent(d)])));
    assert.ok(settled.every((s) => s.status === "rejected"));
    assert.ok(
      settled.every((s) => /ECONNREFUSED/.test(String((s as PromiseRejectedResult).reason?.code))),
    );
    assert.ok(performance.now() - started < 5_000);
  } finally {
    await down.end();
    await sql.end();
  }
});

Deno.test("recordResults(): a provider's answer with NUL in it is stored, not a failed write-back", async () => {
  const sql = adminSql();
  try {
    const [row] = await claimed(sql, 1);
    const write = createResultWriter(sql);
    const recorded = await write([{
      ...row,
      status: "failed",
      outcome: "failed",
      error: "receiver said \0 nothing",
      errorCode: "HTTP_4\x0000",
      providerMessageId: "id\0",
    }]);
    assert.equal(recorded, 1);
    const [stored] =
      await sql`select status, last_error from herald.deliveries where id = ${row.id}`;
    assert.deepEqual(stored, { status: "failed", last_error: "receiver said \uFFFD nothing" });
  } finally {
    await sql.end();
  }
});
