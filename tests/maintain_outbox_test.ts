/**
 * herald.maintain_outbox beside other sessions: a second run while one is in
 * progress does nothing and says so; a day it cannot lock in time is left
 * for the next run ("busy"), not waited on and not an error.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { applyMigrations } from "../scripts/stack/supabase_cli.ts";
import { adminSql, scratchDatabase } from "./support/stack.ts";

Deno.test("maintain_outbox: a run while another holds the lock answers skipped and changes nothing", async () => {
  const holder = adminSql();
  const other = adminSql();
  try {
    await holder.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtext('herald.maintain_outbox'))`;
      const rows = await other`select * from herald.maintain_outbox(now() + interval '60 days')`;
      assert.deepEqual([...rows], [{
        action: "skipped",
        partition_name: null,
        note: "another run is in progress",
      }]);
    });
  } finally {
    await holder.end();
    await other.end();
  }
});

Deno.test("maintain_outbox: a day past retention that a reader holds is busy, and dropped by the next run", async () => {
  await scratchDatabase(async (url) => {
    await applyMigrations(url);
    const reader = postgres(url, { max: 1, onnotice: () => {} });
    const upkeep = postgres(url, { max: 1, onnotice: () => {} });
    try {
      // 31 days after the days began, the first day and the legacy partitions are past 30 days' retention.
      const [{ at, first }] = await upkeep`
        select (date_trunc('day', herald.partitioned_since()) + interval '31 days')::text as at,
          to_char(herald.partitioned_since() at time zone 'UTC', 'YYYYMMDD') as first`;
      await reader.begin(async (tx) => {
        await tx`select count(*) from herald.deliveries`; // holds every partition for reading
        const started = performance.now();
        const rows = await upkeep`select * from herald.maintain_outbox(${at}::timestamptz)`;
        const busy = rows.filter((r) => r.action === "busy").map((r) => r.partition_name);
        assert.deepEqual(busy, ["deliveries_legacy", `deliveries_p${first}`], JSON.stringify(rows));
        const dropped = rows.filter((r) => r.action === "dropped").map((r) => r.partition_name);
        assert.ok(dropped.every((name) => name.startsWith("delivery_attempts_")), dropped.join());
        assert.ok(performance.now() - started < 10_000, "each lock is tried for about a second");
      });
      const again = await upkeep`select * from herald.maintain_outbox(${at}::timestamptz)`;
      const dropped = again.filter((r) => r.action === "dropped").map((r) => r.partition_name);
      assert.ok(dropped.includes("deliveries_legacy") && dropped.includes("notifications_legacy"));
      assert.equal(again.filter((r) => r.action === "busy").length, 0);
    } finally {
      await reader.end();
      await upkeep.end();
    }
  });
});
