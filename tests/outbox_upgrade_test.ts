/**
 * The outbox's conversion to day partitions (migrations 20261208100000–0300)
 * on a database the previous release filled, with deliveries in every status,
 * while that release keeps enqueuing, claiming and writing back through the
 * whole `supabase db push`: no row lost or duplicated, the gauge's counts
 * exact, and no statement of the running release waits long on a lock.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { applyMigrations } from "../scripts/stack/supabase_cli.ts";
import { scratchDatabase } from "./support/stack.ts";

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const FIRST_PARTITIONED = "20261208100000";

/** A workdir holding the migrations before (or, with `all`, including) the conversion. */
async function workdir(all: boolean): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "herald-upgrade-" });
  await Deno.mkdir(`${dir}/supabase/migrations`, { recursive: true });
  await Deno.copyFile(`${ROOT}/supabase/config.toml`, `${dir}/supabase/config.toml`);
  for await (const e of Deno.readDir(`${ROOT}/supabase/migrations`)) {
    if (all || e.name.slice(0, 14) < FIRST_PARTITIONED) {
      await Deno.copyFile(
        `${ROOT}/supabase/migrations/${e.name}`,
        `${dir}/supabase/migrations/${e.name}`,
      );
    }
  }
  return dir;
}

/**
 * The previous release (the last commit before the conversion): its outbox
 * module, from git, so the running release claims and writes back with its
 * own statements.
 */
const PREVIOUS_RELEASE = "f48926a";

async function previousOutbox(): Promise<
  typeof import("../supabase/functions/_shared/outbox/outbox.ts")
> {
  const dir = `${ROOT}/.data/previous-release-${PREVIOUS_RELEASE}`;
  const archive = new Deno.Command("sh", {
    args: [
      "-c",
      `rm -rf '${dir}' && mkdir -p '${dir}' && git -C '${ROOT}' archive ${PREVIOUS_RELEASE} supabase/functions | tar -x -C '${dir}'`,
    ],
  });
  const { code, stderr } = await archive.output();
  if (code !== 0) {
    throw new Error(
      `cannot read the previous release ${PREVIOUS_RELEASE} from git (a shallow clone?): ${
        new TextDecoder().decode(stderr)
      }`,
    );
  }
  return await import(`file://${dir}/supabase/functions/_shared/outbox/outbox.ts`);
}

const STATUSES = ["pending", "sent", "failed", "expired", "cancelled", "dead"];

/** The previous release's history: 2,000 notifications, 200,000 deliveries in every status, their attempts. */
async function fill(sql: postgres.Sql): Promise<void> {
  await sql`
    insert into herald.notifications (title, created_at)
    select 'before ' || i, now() - make_interval(mins => i) from generate_series(1, 2000) i`;
  await sql`
    insert into herald.deliveries (notification_id, channel, target, status, attempts,
      next_attempt_at, locked_until, created_at, lane)
    select n.id, 'email', 'u' || k || '@example.com',
      (${STATUSES}::text[])[1 + k % 6], k % 4,
      -- pending ones: due, scheduled 30 days ahead, in back-off, or leased
      n.created_at + case k % 24 when 0 then interval '30 days' when 6 then interval '1 hour'
        else interval '0' end,
      case when k % 24 = 12 then now() + interval '1 minute' end,
      n.created_at, (k % 3)::smallint
    from herald.notifications n, generate_series(1, 100) k`;
  await sql`
    insert into herald.delivery_attempts (delivery_id, attempt, outcome, at)
    select id, 1, 'retry', created_at from herald.deliveries where attempts > 0`;
}

/**
 * The running release: enqueue, claim, write back; the longest wait of each.
 * The claim and the write-back are the previous release's own.
 */
async function previousRelease(url: string, stop: AbortSignal) {
  const { claimDue, recordResults } = await previousOutbox();
  const sql = postgres(url, { max: 4, onnotice: () => {} });
  const worst = { enqueue: 0, claim: 0, writeBack: 0 };
  const errors: string[] = [];
  let enqueued = 0;
  let written = 0;
  const timed = async <T>(kind: keyof typeof worst, work: () => Promise<T>) => {
    const start = performance.now();
    try {
      return await work();
    } finally {
      worst[kind] = Math.max(worst[kind], performance.now() - start);
    }
  };
  const enqueuing = (async () => {
    while (!stop.aborted) {
      await timed("enqueue", () =>
        sql.begin(async (tx) => {
          await tx`select set_config('role', 'service_role', true),
            set_config('request.jwt.claims', '{"role":"service_role"}', true)`;
          await tx`select * from herald.enqueue(null, ${
            sql.json({
              channels: ["email"],
              title: "during",
              targets: [
                { channel: "email", address: "a@example.com" },
                { channel: "email", address: "b@example.com" },
              ],
            })
          })`;
        })).then(() => enqueued++, (e) => errors.push(`enqueue: ${e.message}`));
    }
  })();
  const dispatching = (async () => {
    while (!stop.aborted) {
      try {
        const claimed = await timed("claim", () => claimDue(sql, { limit: 50, leaseMs: 30_000 }));
        written += await timed("writeBack", () =>
          recordResults(
            sql,
            claimed.map((d) => ({
              id: d.id,
              createdAt: d.createdAt,
              lease: d.lease,
              attempt: d.attempt,
              status: "sent",
              outcome: "sent",
              latencyMs: 1,
            })),
          ));
      } catch (e) {
        errors.push(`dispatch: ${(e as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    async stopped() {
      await Promise.all([enqueuing, dispatching]);
      await sql.end();
      return { worst, errors, enqueued, written };
    },
  };
}

Deno.test("outbox upgrade: the previous release's history is partitioned with every row once, while that release keeps running", async () => {
  const before = await workdir(false);
  const after = await workdir(true);
  try {
    await scratchDatabase(async (url) => {
      await applyMigrations(url, before);
      const sql = postgres(url, { max: 1, onnotice: () => {} });
      try {
        await fill(sql);
        const [old] = await sql`select
          (select count(*)::int from herald.notifications) as notifications,
          (select count(*)::int from herald.deliveries) as deliveries,
          (select count(*)::int from herald.delivery_attempts) as attempts,
          (select array_agg(distinct status order by status) from herald.deliveries) as statuses`;
        assert.deepEqual(old.statuses, [...STATUSES].sort(), "every status is there before");
        const [{ digest }] = await sql`select md5(string_agg(id::text, ',' order by id)) as digest
          from herald.deliveries`;

        const stop = new AbortController();
        const running = await previousRelease(url, stop.signal);
        await new Promise((r) => setTimeout(r, 300));
        const pushStart = performance.now();
        const applied = await applyMigrations(url, after);
        const pushMs = performance.now() - pushStart;
        await new Promise((r) => setTimeout(r, 300));
        stop.abort();
        const load = await running.stopped();
        console.log(
          `db push ${pushMs.toFixed(0)} ms for ${applied.length} migrations; the running release ` +
            `enqueued ${load.enqueued}, wrote back ${load.written}; its longest waits (ms): ` +
            JSON.stringify(
              Object.fromEntries(Object.entries(load.worst).map(([k, v]) => [k, Math.round(v)])),
            ),
        );
        const expected = [...Deno.readDirSync(`${ROOT}/supabase/migrations`)]
          .map((e) => e.name.slice(0, 14)).filter((v) => v >= FIRST_PARTITIONED).sort();
        assert.deepEqual(applied, expected, "the conversion and everything after it");
        assert.deepEqual(load.errors, [], "the running release saw no error");
        assert.ok(load.enqueued > 0 && load.written > 0, "it kept working");
        for (const [kind, ms] of Object.entries(load.worst)) {
          assert.ok(ms < 3_000, `${kind} waited ${Math.round(ms)} ms: no long exclusive lock`);
        }

        const [now] = await sql`select
          (select relkind::text from pg_class where oid = 'herald.deliveries'::regclass) as kind,
          (select count(*)::int from herald.notifications where title like 'before %') as notifications,
          (select count(*)::int from herald.deliveries d join herald.notifications n
             on n.id = d.notification_id where n.title like 'before %') as deliveries,
          (select count(*)::int from herald.delivery_attempts) as attempts,
          (select count(*)::int from herald.deliveries_legacy) as legacy,
          (select count(*) - count(distinct id) from herald.deliveries)::int as duplicated`;
        assert.equal(now.kind, "p", "deliveries is partitioned");
        assert.equal(now.notifications, old.notifications, "every notification is there");
        assert.equal(now.deliveries, old.deliveries, "every delivery is there");
        assert.ok(now.attempts >= old.attempts, "every attempt is there");
        assert.equal(now.duplicated, 0, "none twice");
        assert.ok(now.legacy >= old.deliveries, "what existed is the legacy partition, not a copy");
        const [{ digest: still }] = await sql`select md5(string_agg(d.id::text, ',' order by d.id))
          as digest from herald.deliveries d join herald.notifications n on n.id = d.notification_id
          where n.title like 'before %'`;
        assert.equal(still, digest, "the same ids");
        const mismatched = await sql`
          (select channel, lane, status, sum(n)::int as n from herald.delivery_status_counts
           group by 1, 2, 3 having sum(n) <> 0
           except select channel, lane, status, count(*)::int from herald.deliveries group by 1, 2, 3)
          union all
          (select channel, lane, status, count(*)::int from herald.deliveries group by 1, 2, 3
           except select channel, lane, status, sum(n)::int from herald.delivery_status_counts
           group by 1, 2, 3 having sum(n) <> 0)`;
        assert.deepEqual([...mismatched], [], "the gauge's counts match the rows");
        const [ahead] = await sql`select count(*)::int as n from pg_inherits
          where inhparent = 'herald.deliveries'::regclass`;
        assert.ok(ahead.n >= 7, `${ahead.n} partitions: the legacy one and the days ahead`);
      } finally {
        await sql.end();
      }
    });
  } finally {
    await Deno.remove(before, { recursive: true });
    await Deno.remove(after, { recursive: true });
  }
});
