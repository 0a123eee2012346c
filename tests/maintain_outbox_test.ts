/**
 * herald.maintain_outbox beside other sessions: a second run while one is in
 * progress does nothing and says so; days it cannot lock in time are left for
 * the next run ("busy"), and between its short tries it holds no lock.
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

Deno.test("maintain_outbox: days past retention that a reader holds are busy after five short tries, released between them; the next run detaches them, and the ones after drop their keys, then their tables", async () => {
  await scratchDatabase(async (url) => {
    await applyMigrations(url);
    const reader = postgres(url, { max: 1, onnotice: () => {} });
    const writer = postgres(url, { max: 1, onnotice: () => {} });
    const upkeep = postgres(url, { max: 1, onnotice: () => {} });
    try {
      // 31 days after the days began, the first day and the legacy partitions are past 30 days' retention.
      const [{ at, first }] = await upkeep`
        select (date_trunc('day', herald.partitioned_since()) + interval '31 days')::text as at,
          to_char(herald.partitioned_since() at time zone 'UTC', 'YYYYMMDD') as first`;
      await reader.begin(async (tx) => {
        await tx`select count(*) from herald.deliveries`; // holds every partition for reading
        const started = performance.now();
        const running = upkeep`select * from herald.maintain_outbox(${at}::timestamptz)`.then((
          r,
        ) => [...r]);
        // Between its tries the run holds nothing: an attempt-log write goes through meanwhile.
        let written = 0;
        while (performance.now() - started < 600) {
          const t = performance.now();
          await writer`select count(*) from herald.delivery_attempts`;
          if (performance.now() - t < 150) written++;
        }
        const rows = (await running).filter((r) => r.action !== "created");
        const ms = performance.now() - started;
        assert.ok(rows.length > 0 && rows.every((r) => r.action === "busy"), JSON.stringify(rows));
        assert.deepEqual(
          rows.find((r) => r.partition_name === "deliveries_legacy")?.note,
          "locked by others past lock_timeout; next run",
        );
        assert.ok(
          rows.some((r) => r.partition_name === `deliveries_p${first}`),
          JSON.stringify(rows),
        );
        assert.ok(ms < 2_000, `five tries of 100 ms with pauses (${Math.round(ms)} ms)`);
        assert.ok(written > 0, "traffic went on between the tries");
      });
      const again = await upkeep`select * from herald.maintain_outbox(${at}::timestamptz)`;
      const detached = again.filter((r) => r.action === "detached").map((r) => r.partition_name);
      assert.ok(
        detached.includes("deliveries_legacy") && detached.includes("notifications_legacy"),
      );
      assert.equal(again.filter((r) => r.action === "busy").length, 0);
      // The detached notifications' own foreign key first (it holds triggers on auth.users), then the tables.
      const third = await upkeep`select * from herald.maintain_outbox(${at}::timestamptz)`;
      assert.deepEqual(
        third.filter((r) => r.action !== "created").map((r) => r.action).filter((a) =>
          a !== "waiting"
        ),
        third.filter((r) => r.action === "unkeyed").map(() => "unkeyed"),
      );
      assert.ok(third.some((r) => r.action === "unkeyed"), JSON.stringify([...third]));
      const fourth = await upkeep`select * from herald.maintain_outbox(${at}::timestamptz)`;
      const dropped = fourth.filter((r) => r.action === "dropped").map((r) => r.partition_name);
      assert.deepEqual(dropped.sort(), [...detached].sort());
      const [{ n }] = await upkeep`select count(*)::int as n from pg_class
        where relnamespace = 'herald'::regnamespace and relname = any(${detached})`;
      assert.equal(n, 0);
    } finally {
      await reader.end();
      await writer.end();
      await upkeep.end();
    }
  });
});
