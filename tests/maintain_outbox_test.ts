/**
 * herald.maintain_outbox beside other sessions: a second run while one is in
 * progress does nothing and says so; a day it cannot lock in time is left
 * for the next run ("busy"), and so is every later one, without waiting
 * again while the run's earlier drops hold their locks.
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

Deno.test("maintain_outbox: a day past retention that a reader holds is busy, later days are not tried, and the next run drops them", async () => {
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
        // The oldest first: the legacy outbox waits in vain, and nothing after it is tried.
        const [waited, ...rest] = rows.filter((r) => r.action === "busy");
        assert.deepEqual([waited.partition_name, waited.note], [
          "deliveries_legacy",
          "locked by others past lock_timeout; next run",
        ]);
        assert.ok(
          rest.some((r) => r.partition_name === `deliveries_p${first}`),
          JSON.stringify(rows),
        );
        assert.ok(rest.every((r) => /^not tried/.test(r.note)), JSON.stringify(rest));
        assert.equal(rows.filter((r) => r.action === "dropped").length, 0);
        const ms = performance.now() - started;
        assert.ok(ms < 3_000, `one wait of about a second, then no more (${Math.round(ms)} ms)`);
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
