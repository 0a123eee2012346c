/**
 * The stack's own Postgres cluster: created under `<dataDir>/pg`, started on
 * the stack's port, given the Supabase compatibility bootstrap, migrated.
 *
 * Postgres refuses to run as root, so when we are root the cluster belongs to
 * the `postgres` system user (created by Debian's package) and is started with
 * `setpriv`, which execs in place: our child *is* the postmaster, and signals
 * reach it directly.
 *
 * @module
 */
import type { StackConfig } from "./config.ts";
import { applyMigrations } from "./supabase_cli.ts";
import { Supervisor } from "./supervisor.ts";

/** The newest installed Postgres ≥ 15, as its `bin` directory. */
export async function postgresBinDir(): Promise<string> {
  const versions: number[] = [];
  try {
    for await (const entry of Deno.readDir("/usr/lib/postgresql")) {
      const version = Number(entry.name);
      if (Number.isInteger(version) && version >= 15) versions.push(version);
    }
  } catch {
    // No Debian Postgres at all: reported below.
  }
  if (versions.length === 0) {
    throw new Error("PostgreSQL 15+ is not installed (Debian package: postgresql)");
  }
  return `/usr/lib/postgresql/${Math.max(...versions)}/bin`;
}

const isRoot = () => Deno.uid() === 0;

/** Runs a Postgres binary as the cluster's owner. */
function asOwner(bin: string, args: string[]): { command: string; args: string[] } {
  return isRoot()
    ? {
      command: "setpriv",
      args: ["--reuid=postgres", "--regid=postgres", "--init-groups", "--", bin, ...args],
    }
    : { command: bin, args };
}

/** Creates the cluster on first start (superuser `postgres`, password `postgres`). */
export async function ensureCluster(stack: Pick<StackConfig, "dataDir">): Promise<void> {
  const pgdata = `${stack.dataDir}/pg`;
  try {
    await Deno.stat(`${pgdata}/PG_VERSION`);
    return;
  } catch {
    // Not created yet.
  }
  const bin = await postgresBinDir();
  await Deno.mkdir(stack.dataDir, { recursive: true });
  await Deno.mkdir(pgdata, { mode: 0o700 });
  const pwfile = `${stack.dataDir}/.pgpass-init`;
  await Deno.writeTextFile(pwfile, "postgres\n");
  if (isRoot()) {
    await Supervisor.run("chown", ["-R", "postgres:postgres", pgdata, pwfile]);
  }
  const initdb = asOwner(`${bin}/initdb`, [
    "-D",
    pgdata,
    "-U",
    "postgres",
    `--pwfile=${pwfile}`,
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    "--encoding=UTF8",
    "--locale=C.UTF-8",
  ]);
  try {
    await Supervisor.run(initdb.command, initdb.args);
  } finally {
    await Deno.remove(pwfile);
  }
}

/**
 * Starts the postmaster under the supervisor and waits until it accepts
 * connections. `preloadCron: false` leaves pg_cron installed but not loaded,
 * the state of any Debian Postgres after `apt-get install postgresql-<major>-cron`.
 */
export async function startPostgres(
  stack: Pick<StackConfig, "name" | "dataDir" | "ports">,
  supervisor: Supervisor,
  options: {
    preloadCron?: boolean;
    /** Also preload pg_stat_statements (benchmarks' per-statement costs). */
    statementStats?: boolean;
  } = {},
): Promise<void> {
  const bin = await postgresBinDir();
  const pgdata = `${stack.dataDir}/pg`;
  await _stopStalePostmaster(bin, pgdata);
  // The test stack trades durability for speed. The others keep Supabase's settings: with
  // synchronous_commit off a crash forgets commits already answered (chaos's postgres_stop
  // saw 500 pushes sent twice: their results were written, acknowledged, and lost).
  const durability = stack.name === "test"
    ? ["-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off"]
    : [];
  const postgres = asOwner(`${bin}/postgres`, [
    "-D",
    pgdata,
    "-p",
    String(stack.ports.postgres),
    "-c",
    "listen_addresses=127.0.0.1",
    "-c",
    `unix_socket_directories=${pgdata}`,
    "-c",
    "max_connections=300",
    "-c",
    "shared_buffers=256MB",
    "-c",
    "log_min_messages=warning",
    "-c",
    "log_min_error_statement=panic",
    ...durability,
    // pg_cron runs the migrations' jobs as on Supabase; jobs run in background
    // workers, so no job needs a password to connect.
    ...(options.preloadCron === false ? [] : [
      "-c",
      `shared_preload_libraries=pg_cron${options.statementStats ? ",pg_stat_statements" : ""}`,
      "-c",
      "cron.database_name=postgres",
      "-c",
      "cron.use_background_workers=on",
      "-c",
      "max_worker_processes=32",
    ]),
  ]);
  await supervisor.spawn({ name: "postgres", ...postgres, stopSignal: "SIGINT" });
  await _waitReady(bin, stack.ports.postgres);
  supervisor.keepAlive("postgres"); // a crash later: back after crash recovery
}

/**
 * Stops the cluster as a crash would (`pg_ctl stop -m immediate`: no
 * checkpoint, every connection cut); the stack's supervisor starts it again.
 * For `npm run chaos`.
 */
export async function crashPostgres(stack: Pick<StackConfig, "dataDir">): Promise<void> {
  const ctl = asOwner(`${await postgresBinDir()}/pg_ctl`, [
    "stop",
    "-D",
    `${stack.dataDir}/pg`,
    "-m",
    "immediate",
    "-w",
  ]);
  await Supervisor.run(ctl.command, ctl.args);
}

/** Applies the Supabase compatibility bootstrap (idempotent). */
export async function bootstrap(stack: Pick<StackConfig, "root" | "dbUrl">): Promise<void> {
  await psql(stack, ["-f", `${stack.root}/scripts/stack/supabase_bootstrap.sql`]);
}

/**
 * Applies the migrations not yet recorded with the real Supabase CLI
 * (`supabase db push`), as a deploy does; a migration it refuses fails the
 * start with the CLI's message.
 *
 * @returns the versions applied now
 */
export function migrate(stack: StackConfig): Promise<string[]> {
  return applyMigrations(stack.dbUrl, stack.root);
}

/** Runs psql against the stack's cluster as `postgres`, stopping at the first error. */
export async function psql(stack: Pick<StackConfig, "dbUrl">, args: string[]): Promise<string> {
  const bin = await postgresBinDir();
  return await Supervisor.run(`${bin}/psql`, [
    stack.dbUrl,
    "-X",
    "-q",
    "-v",
    "ON_ERROR_STOP=1",
    ...args,
  ], { env: { PGOPTIONS: "-c client_min_messages=warning" } });
}

/** A postmaster left behind by a killed `npm start` still holds the port: stop it. */
async function _stopStalePostmaster(bin: string, pgdata: string): Promise<void> {
  let pid: number;
  try {
    pid = Number((await Deno.readTextFile(`${pgdata}/postmaster.pid`)).split("\n")[0]);
  } catch {
    return;
  }
  try {
    Deno.kill(pid, "SIGINT");
  } catch {
    return; // Not running: Postgres removes a stale pid file itself.
  }
  const ctl = asOwner(`${bin}/pg_ctl`, ["stop", "-D", pgdata, "-m", "fast", "-w"]);
  await Supervisor.run(ctl.command, ctl.args).catch((error) =>
    console.warn(`herald: could not stop the old postmaster ${pid}: ${error.message}`)
  );
}

async function _waitReady(bin: string, port: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const ready = await new Deno.Command(`${bin}/pg_isready`, {
      args: ["-q", "-h", "127.0.0.1", "-p", String(port)],
    }).output();
    if (ready.success) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`Postgres did not accept connections on port ${port} within 60 s`);
}
