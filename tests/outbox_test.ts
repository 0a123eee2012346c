/**
 * Outbox leases against the real database: concurrent claimers never share a
 * row, an expired lease makes rows due again, and a write-back from a
 * dispatcher that lost its lease is ignored.
 */
import assert from "node:assert/strict";
import { claimDue, recordResults } from "../supabase/functions/_shared/outbox/outbox.ts";
import { adminSql, createUser } from "./support/stack.ts";

async function enqueueDeliveries(sql: ReturnType<typeof adminSql>, count: number) {
  const user = await createUser(sql, "outbox");
  await sql`
    insert into herald.device_tokens (user_id, token, platform)
    select ${user.id}, 'outbox-' || gen_random_uuid(), 'android' from generate_series(1, ${count})`;
  const [{ id }] = await sql`
    insert into herald.notifications (title) values ('outbox test') returning id`;
  await sql`
    insert into herald.deliveries
      (notification_id, created_at, recipient_id, channel, device_token_id, target, platform)
    select n.id, n.created_at, user_id, 'push', t.id, token, platform
    from herald.device_tokens t, herald.notifications n
    where t.user_id = ${user.id} and n.id = ${id}`;
  return id as string;
}

Deno.test("claimDue(): concurrent claimers never get the same delivery", async () => {
  const sql = adminSql();
  try {
    // Park everything else that is due so only this test's rows are claimable.
    await sql`update herald.deliveries set next_attempt_at = now() + interval '1 hour' where status = 'pending'`;
    const notification = await enqueueDeliveries(sql, 300);
    const batches = await Promise.all(
      Array.from({ length: 4 }, () => claimDue(sql, { limit: 100, leaseMs: 60_000 })),
    );
    const ids = batches.flat().filter((d) => d.notification.id === notification).map((d) => d.id);
    assert.equal(ids.length, 300, "all rows are claimed");
    assert.equal(new Set(ids).size, 300, "no row is claimed twice");
    const again = await claimDue(sql, { limit: 100, leaseMs: 60_000 });
    assert.equal(
      again.filter((d) => d.notification.id === notification).length,
      0,
      "leased rows are not due",
    );
  } finally {
    await sql.end();
  }
});

Deno.test("claimDue(): rows come back after the lease, and the stale holder's write-back is ignored", async () => {
  const sql = adminSql();
  try {
    await sql`update herald.deliveries set next_attempt_at = now() + interval '1 hour' where status = 'pending'`;
    const notification = await enqueueDeliveries(sql, 1);
    const [first] = await claimDue(sql, { limit: 10, leaseMs: 1 });
    assert.equal(first.notification.id, notification);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const [second] = await claimDue(sql, { limit: 10, leaseMs: 60_000 });
    assert.equal(second.id, first.id, "the expired lease made the row due again");
    assert.equal(second.attempt, 2);

    const stale = await recordResults(sql, [{ ...first, status: "sent", outcome: "sent" }]);
    assert.equal(stale, 0, "the first holder lost its lease");
    const current = await recordResults(sql, [{
      ...second,
      status: "sent",
      outcome: "sent",
      providerMessageId: "m1",
    }]);
    assert.equal(current, 1);
    const [row] =
      await sql`select status, provider_message_id, locked_until from herald.deliveries where id = ${first.id}`;
    assert.deepEqual(row, { status: "sent", provider_message_id: "m1", locked_until: null });
  } finally {
    await sql.end();
  }
});

Deno.test("recordResults(): rows of two days written back in one batch, and under a DateStyle that is not ISO", async () => {
  for (const dateStyle of ["ISO, MDY", "SQL, DMY"]) {
    const sql = adminSql({ DateStyle: dateStyle });
    try {
      await sql`update herald.deliveries set next_attempt_at = now() + interval '1 hour' where status = 'pending'`;
      const today = await enqueueDeliveries(sql, 2);
      const yesterday = await enqueueDeliveries(sql, 2);
      // Moved to yesterday, notification and deliveries together (its id still says today).
      await sql`update herald.notifications set created_at = created_at - interval '1 day'
        where id = ${yesterday}`;
      await sql`update herald.deliveries set created_at = created_at - interval '1 day'
        where notification_id = ${yesterday}`;
      const claimed = (await claimDue(sql, { limit: 10, leaseMs: 60_000 }))
        .filter((d) => [today, yesterday].includes(d.notification.id));
      assert.equal(claimed.length, 4, dateStyle);
      const recorded = await recordResults(
        sql,
        claimed.map((d) => ({ ...d, status: "sent", outcome: "sent" })),
      );
      assert.equal(recorded, 4, `every row found across the two days (${dateStyle})`);
    } finally {
      await sql.end();
    }
  }
});
