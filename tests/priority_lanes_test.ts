/**
 * Priority lanes: urgent notifications are not stuck behind a fan-out, and a
 * fan-out still drains while urgent work keeps coming.
 */
import assert from "node:assert/strict";
import { dispatchBatch } from "../supabase/functions/_shared/dispatch/dispatcher.ts";
import { FAN_OUT_SHARE } from "../supabase/functions/_shared/outbox/outbox.ts";
import { testDispatcher } from "./support/dispatch.ts";
import { adminSql, createUser, enqueue, fakeControl, parkPending } from "./support/stack.ts";

const FAN_OUT = 100_000;

Deno.test("lanes: a critical notification enqueued after 100,000 bulk deliveries goes out in the next round", async () => {
  const sql = adminSql();
  const deps = await testDispatcher();
  const topic = `lanes-${crypto.randomUUID().slice(0, 8)}`;
  let bulk: string | undefined;
  try {
    await parkPending(sql);
    await fakeControl("fcm", "reset");
    await sql`
      with users as (
        insert into auth.users (id, email)
        select gen_random_uuid(), ${topic} || '-' || i || '@example.test'
        from generate_series(1, ${FAN_OUT}) i returning id
      ), tokens as (
        insert into herald.device_tokens (user_id, token, platform)
        select id, ${topic} || '-' || id, 'android' from users
      )
      insert into herald.topic_subscriptions (user_id, topic) select id, ${topic} from users`;
    const [row] = await sql.begin(async (tx) => {
      await tx`select set_config('role', 'service_role', true)`;
      return await tx`select notification_id, deliveries
        from herald.enqueue(null, ${
        tx.json({ title: "Everyone", priority: "high" })
      }, null, ${topic})`;
    });
    bulk = row.notification_id as string;
    assert.equal(row.deliveries, FAN_OUT);

    const user = await createUser(sql, "lanes");
    await sql`insert into herald.device_tokens (user_id, token, platform)
      values (${user.id}, ${`lanes-urgent-${user.id}`}, 'android')`;
    const urgent = await enqueue(sql, [user.id], { title: "Urgent", critical: true });
    const lanes = await sql`select d.lane, count(*)::int from herald.deliveries d
      where d.notification_id in (${bulk!}, ${urgent}) group by d.lane order by d.lane`;
    assert.deepEqual(lanes.map((l) => [l.lane, l.count]), [[0, 1], [2, FAN_OUT]]);

    const report = await dispatchBatch(deps);
    assert.ok(report.claimed > 0);
    const [mine] =
      await sql`select status from herald.deliveries where notification_id = ${urgent}`;
    assert.equal(mine.status, "sent", "the critical one went in the first round");
  } finally {
    if (bulk) {
      await sql`update herald.deliveries set status = 'cancelled' where notification_id = ${bulk}`;
    }
    await sql`delete from auth.users where email like ${topic + "-%"}`;
    await deps.close();
    await sql.end();
  }
});

Deno.test("lanes: while urgent work fills every round, the fan-out lane keeps its share", async () => {
  const sql = adminSql();
  const batchSize = 50;
  const deps = await testDispatcher({ batchSize });
  const ids: string[] = [];
  try {
    await parkPending(sql);
    await fakeControl("fcm", "reset");
    const urgentUser = await createUser(sql, "lanes-urgent");
    await sql`insert into herald.device_tokens (user_id, token, platform)
      select ${urgentUser.id}, 'lanes-u-' || i || '-' || ${urgentUser.id}, 'android'
      from generate_series(1, ${batchSize * 2}) i`;
    ids.push(await enqueue(sql, [urgentUser.id], { title: "Urgent", priority: "high" }));
    const fans = [];
    for (let i = 0; i < 101; i++) fans.push(await createUser(sql, `lanes-fan${i}`));
    await sql`insert into herald.device_tokens (user_id, token, platform)
      select u, 'lanes-f-' || u, 'android' from unnest(${fans.map((f) => f.id)}::uuid[]) u`;
    // Enqueued first, so by age alone it would go first; by lane it would wait.
    ids.unshift(await enqueue(sql, fans.map((f) => f.id), { title: "Fan-out" }));

    const report = await dispatchBatch(deps);
    assert.equal(report.claimed, batchSize);
    const sent = await sql`select n.title, count(*)::int from herald.deliveries d
      join herald.notifications n on n.id = d.notification_id
      where d.notification_id in ${sql(ids)} and d.status = 'sent' group by n.title`;
    const byTitle = Object.fromEntries(sent.map((r) => [r.title, r.count]));
    const share = Math.floor(batchSize * FAN_OUT_SHARE);
    assert.equal(byTitle["Fan-out"], share, "the fan-out lane got its share");
    assert.equal(byTitle["Urgent"], batchSize - share, "the urgent lane got the rest");
  } finally {
    await sql`update herald.deliveries set status = 'cancelled'
      where notification_id in ${sql(ids)} and status = 'pending'`;
    await deps.close();
    await sql.end();
  }
});
