/**
 * Migrations and SQL through the real tools: the stack's schema is what
 * `supabase db push` (the pinned CLI) made of supabase/migrations; pg_cron is
 * preloaded and runs the migrations' jobs; the migrations apply whether
 * pg_cron is preloaded, installed but not loaded, or loaded for another
 * database; the CLI's refusals surface; `supabase db lint` catches a broken
 * function.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { bootstrap, ensureCluster, startPostgres } from "../scripts/stack/postgres.ts";
import { applyMigrations, supabaseCli, withoutTls } from "../scripts/stack/supabase_cli.ts";
import { Supervisor } from "../scripts/stack/supervisor.ts";
import { scratchDatabase, stack, withAdminSql } from "./support/stack.ts";

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

async function migrationVersions(dir = `${ROOT}/supabase/migrations`): Promise<string[]> {
  const versions: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (/^\d{14}_[a-z0-9_]+\.sql$/.test(e.name)) versions.push(e.name.slice(0, 14));
  }
  return versions.sort();
}

async function query<T extends postgres.Row>(url: string, text: string): Promise<T[]> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return [...await sql.unsafe<T[]>(text)];
  } finally {
    await sql.end();
  }
}

/** A copy of the repository's supabase/ folder to add migrations to. */
async function workdirCopy(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "herald-migrations-" });
  await Deno.mkdir(`${dir}/supabase/migrations`, { recursive: true });
  await Deno.copyFile(`${ROOT}/supabase/config.toml`, `${dir}/supabase/config.toml`);
  for await (const e of Deno.readDir(`${ROOT}/supabase/migrations`)) {
    await Deno.copyFile(
      `${ROOT}/supabase/migrations/${e.name}`,
      `${dir}/supabase/migrations/${e.name}`,
    );
  }
  return dir;
}

Deno.test("migrations: the stack's schema is the Supabase CLI's db push of every migration, recorded with its statements", async () => {
  const rows = await withAdminSql((sql) =>
    sql`select version, name, cardinality(statements) as statements
        from supabase_migrations.schema_migrations order by version`
  );
  assert.deepEqual(rows.map((r) => r.version), await migrationVersions());
  // Only the CLI records the statements it ran; an imitation that inserted versions would not.
  for (const row of rows) assert.ok(row.statements > 0, `${row.version} recorded its statements`);
});

Deno.test("pg_cron: the stack preloads it and the migrations schedule Herald's jobs", async () => {
  const jobs = await withAdminSql((sql) =>
    sql`select jobname, schedule, command, database from cron.job order by jobname`
  );
  assert.deepEqual(jobs.map((j) => j.jobname), [
    "herald-maintain-outbox",
    "herald-prune-device-token-moves",
    "herald-prune-device-tokens",
    "herald-prune-hook-events",
    "herald-prune-idempotency-keys",
  ]);
  for (const job of jobs) assert.equal(job.database, "postgres");
});

Deno.test("pg_cron: a scheduled job runs: the idempotency-key cleanup forgets a key older than a day", async () => {
  await withAdminSql(async (sql) => {
    const [job] = await sql`select jobid, schedule from cron.job
                             where jobname = 'herald-prune-idempotency-keys'`;
    const key = `cron-test-${crypto.randomUUID()}`;
    await sql`insert into herald.idempotency_keys (caller, key, request_hash, created_at)
              values ('cron-test', ${key}, 'x', now() - interval '25 hours')`;
    const since = new Date();
    // pg_cron 1.4 (Debian bookworm) schedules by the minute: the next minute boundary runs it.
    await sql`select cron.alter_job(${job.jobid}, schedule := '* * * * *')`;
    try {
      let run: postgres.Row | undefined;
      const deadline = Date.now() + 75_000;
      while (!run && Date.now() < deadline) {
        [run] = await sql`select status, return_message from cron.job_run_details
                          where jobid = ${job.jobid} and start_time >= ${since}
                            and status in ('succeeded', 'failed')`;
        if (!run) await new Promise((r) => setTimeout(r, 500));
      }
      assert.ok(run, "the job ran within 75 s");
      assert.equal(run.status, "succeeded", run.return_message);
      const [left] = await sql`select count(*)::int as n from herald.idempotency_keys
                               where key = ${key}`;
      assert.equal(left.n, 0, "the old key is gone");
    } finally {
      await sql`select cron.alter_job(${job.jobid}, schedule := ${job.schedule})`;
      await sql`delete from herald.idempotency_keys where caller = 'cron-test'`;
    }
  });
});

Deno.test("migrations: a Postgres with pg_cron installed but not preloaded (its cron.database_name already set) takes every migration and schedules nothing", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "herald-nocron-" });
  await Deno.chmod(dataDir, 0o755); // the cluster's owner (postgres, when we are root) reads it
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const supervisor = new Supervisor({ logDir: `${dataDir}/logs` });
  const cluster = { name: "test" as const, dataDir, ports: { ...stack.ports, postgres: port } };
  const url = `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`;
  try {
    await ensureCluster(cluster);
    await startPostgres(cluster, supervisor, { preloadCron: false });
    await bootstrap({ root: ROOT, dbUrl: url });
    const [available] = await query(
      url,
      "select count(*)::int as n from pg_available_extensions where name = 'pg_cron'",
    );
    assert.equal(available.n, 1, "the package is installed");
    // Its setting written before the restart that would load it: a placeholder, not pg_cron.
    await Deno.writeTextFile(`${dataDir}/pg/postgresql.conf`, "cron.database_name = 'postgres'\n", {
      append: true,
    });
    await query(url, "select pg_reload_conf()");
    const [placeholder] = await query(url, "select current_setting('cron.database_name') as db");
    assert.equal(placeholder.db, "postgres");
    assert.deepEqual(await applyMigrations(url), await migrationVersions());
    const [cron] = await query(url, "select to_regclass('cron.job') as job");
    assert.equal(cron.job, null, "no pg_cron, no jobs");
  } finally {
    await supervisor.stopAll();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("migrations: a database other than cron.database_name on a cluster that preloads pg_cron takes every migration", async () => {
  await scratchDatabase(async (url) => {
    assert.deepEqual(await applyMigrations(url), await migrationVersions());
    const [cron] = await query(url, "select to_regclass('cron.job') as job");
    assert.equal(cron.job, null);
    assert.deepEqual(await applyMigrations(url), [], "a second push applies nothing");
  });
});

Deno.test("migrations: a migration the CLI refuses fails with the CLI's message and is not recorded", async () => {
  const workdir = await workdirCopy();
  try {
    await Deno.writeTextFile(
      `${workdir}/supabase/migrations/20991231000000_broken.sql`,
      "create table herald.half_done (id int);\nselect nope from herald.half_done;\n",
    );
    await scratchDatabase(async (url) => {
      await assert.rejects(() => applyMigrations(url, workdir), /column "nope" does not exist/);
      const [row] = await query(
        url,
        `select (select count(*)::int from supabase_migrations.schema_migrations
                 where version = '20991231000000') as recorded,
                to_regclass('herald.half_done') as half`,
      );
      assert.equal(row.recorded, 0);
      assert.equal(row.half, null, "its own transaction rolled back");
    });
  } finally {
    await Deno.remove(workdir, { recursive: true });
  }
});

Deno.test("migrations: an out-of-order migration is refused by a plain db push and applied with --include-all", async () => {
  const workdir = await workdirCopy();
  try {
    await scratchDatabase(async (url) => {
      await applyMigrations(url, workdir);
      // A branch merged after a later migration shipped: its version sorts before the newest.
      await Deno.writeTextFile(
        `${workdir}/supabase/migrations/20261122150000_late_branch.sql`,
        "create table herald.late_branch (id int);\n",
      );
      const plain = await supabaseCli(
        ["db", "push", "--db-url", withoutTls(url), "--yes", "--workdir", workdir],
      );
      assert.notEqual(plain.code, 0);
      assert.match(plain.stderr + plain.stdout, /--include-all/);
      assert.deepEqual(await applyMigrations(url, workdir), ["20261122150000"]);
      const [row] = await query(url, "select to_regclass('herald.late_branch') as t");
      assert.equal(row.t, "herald.late_branch");
    });
  } finally {
    await Deno.remove(workdir, { recursive: true });
  }
});

Deno.test("db lint: the Supabase CLI's lint (plpgsql_check) finds nothing in herald and public, and catches a broken function", async () => {
  await scratchDatabase(async (url) => {
    await applyMigrations(url);
    const lint = (schemas: string) =>
      supabaseCli([
        "db",
        "lint",
        "--db-url",
        withoutTls(url),
        "--schema",
        schemas,
        "--level",
        "warning",
        "--fail-on",
        "warning",
      ]);
    const clean = await lint("herald,public");
    assert.equal(clean.code, 0, clean.stderr + clean.stdout);
    assert.match(clean.stderr + clean.stdout, /No schema errors found/);
    await query(
      url,
      `create function herald.broken_for_lint() returns int language plpgsql as $$
         begin return (select no_such_column from herald.releases limit 1); end $$`,
    );
    const caught = await lint("herald,public");
    assert.notEqual(caught.code, 0);
    const findings = JSON.parse(caught.stdout) as {
      function: string;
      issues: { level: string; message: string }[];
    }[];
    assert.deepEqual(
      findings.map((f) => [f.function, f.issues.map((i) => `${i.level}: ${i.message}`)]),
      [["herald.broken_for_lint", ['error: column "no_such_column" does not exist']]],
    );
  });
});
