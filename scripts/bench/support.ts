/**
 * What the API benchmarks share: a fresh bench stack of their own, user
 * tokens, percentiles, and CPU time of the stack's processes read from /proc.
 *
 * @module
 */
import { SignJWT } from "jose";
import postgres from "postgres";
import { loadStackConfig, type StackConfig } from "../stack/config.ts";
import { functionEnvironment, type RunningStack, startStack } from "../stack/stack.ts";

/** A running bench stack with an admin SQL client (superuser: bypasses RLS). */
export interface BenchStack {
  stack: StackConfig;
  running: RunningStack;
  sql: postgres.Sql;
  /**
   * Where Postgres spent its time, by statement, since the last call (the
   * first call starts counting): only with `HERALD_BENCH_STATEMENTS=1`, which
   * preloads pg_stat_statements (it costs a few per cent, so figures compared
   * across commits are taken without it). Undefined otherwise.
   */
  statements(perOperation: number): Promise<StatementCost[] | undefined>;
  /** Starts a long-running dispatcher (`scripts/dispatcher.ts`) on the stack; `stop` ends it if it still runs. */
  startDispatcher(): Promise<Deno.ChildProcess>;
  /**
   * Stops the dispatchers still running, the SQL client and the stack. Also
   * run on SIGINT or SIGTERM, which then end the process: a benchmark
   * stopped half-way leaves nothing behind to disturb the next one.
   */
  stop(): Promise<void>;
}

/**
 * Starts the `bench` stack from an empty data directory, with `env` set first
 * (HERALD_* variables reach the functions).
 */
export async function startBenchStack(
  log: (message: string) => void,
  env: Record<string, string> = {},
): Promise<BenchStack> {
  Deno.env.set("HERALD_STACK", "bench");
  for (const [name, value] of Object.entries(env)) Deno.env.set(name, value);
  const stack = await loadStackConfig();
  await Deno.remove(stack.dataDir, { recursive: true }).catch(() => {}); // absent on a first run
  log(`starting the bench stack in ${stack.dataDir}`);
  const statementStats = Deno.env.get("HERALD_BENCH_STATEMENTS") === "1";
  const running = await startStack(stack, { logToFiles: true, statementStats });
  const sql = postgres(stack.dbUrl, { max: 4, onnotice: () => {} });
  if (statementStats) await sql`create extension if not exists pg_stat_statements`;
  const dispatchers = new Set<Deno.ChildProcess>();
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      for (const child of dispatchers) {
        try {
          child.kill("SIGTERM");
        } catch { /* already ended */ }
        await child.status;
      }
      await sql.end();
      await running.stop();
    })();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      log(`${signal}: stopping the bench stack and its dispatchers`);
      stop().finally(() => Deno.exit(signal === "SIGINT" ? 130 : 143));
    });
  }
  return {
    stack,
    running,
    sql,
    statements: (perOperation) =>
      statementStats ? _statementCosts(sql, perOperation) : Promise.resolve(undefined),
    startDispatcher: async () => {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--no-prompt", "scripts/dispatcher.ts"],
        env: await functionEnvironment(stack, true),
        cwd: stack.root,
        stdout: "null",
        stderr: "null",
      }).spawn();
      dispatchers.add(child);
      child.status.then(() => dispatchers.delete(child));
      return child;
    },
    stop,
  };
}

/** One statement's share of Postgres's time over a measured phase. */
export interface StatementCost {
  /** The normalised statement, shortened. */
  query: string;
  calls_per_op: number;
  /** Execution time per operation (wall time inside Postgres, ms). */
  ms_per_op: number;
  rows_per_call: number;
}

/** The ten costliest statements since the last reset, per operation; then resets. */
async function _statementCosts(sql: postgres.Sql, perOperation: number): Promise<StatementCost[]> {
  const rows = await sql<{ query: string; calls: number; ms: number; rows: number }[]>`
    select regexp_replace(query, '[[:space:]]+', ' ', 'g') as query, calls::float8 as calls,
      total_exec_time as ms, rows::float8 as rows
    from pg_stat_statements
    where dbid = (select oid from pg_database where datname = current_database())
    order by total_exec_time desc limit 10`;
  await sql`select pg_stat_statements_reset()`;
  const per = Math.max(perOperation, 1);
  return rows.map((r) => ({
    query: r.query.length > 160 ? `${r.query.slice(0, 157)}...` : r.query,
    calls_per_op: Math.round((r.calls / per) * 100) / 100,
    ms_per_op: Math.round((r.ms / per) * 1000) / 1000,
    rows_per_call: Math.round((r.rows / Math.max(r.calls, 1)) * 10) / 10,
  }));
}

/** Makes the FCM stand-in answer after `latencyMs`. */
export async function setFcmLatency(stack: StackConfig, latencyMs: number): Promise<void> {
  const response = await fetch(`${stack.fakes.fcm}/_control/behaviour`, {
    method: "POST",
    body: JSON.stringify({ latency_ms: latencyMs }),
  });
  await response.body?.cancel();
  if (!response.ok) throw new Error(`the FCM stand-in refused latency_ms: ${response.status}`);
}

/** Signs a Supabase-shaped user access token (HS256 with the project's JWT secret). */
export async function userToken(stack: StackConfig, sub: string, ttlSeconds: number) {
  return await new SignJWT({ role: "authenticated", aud: "authenticated" })
    .setSubject(sub)
    .setIssuer(`${stack.apiUrl}/auth/v1`)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(stack.jwtSecret));
}

/** The `p` quantile (0..1) of ascending `sorted`, nearest rank, rounded to 0.1 ms. */
export function quantile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return round1(sorted[rank]);
}

/** Rounds to one decimal. */
export function round1(value: number): number {
  return Math.round(value * 10) / 10;
}

/** Median of a few numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * CPU time a process has run so far, in nanoseconds: the first field of
 * `/proc/<pid>/task/<tid>/schedstat` summed over its threads (finer than the
 * clock ticks of `/proc/<pid>/stat`). A thread that exits keeps the time last
 * read for it, so two readings never go backwards (bench:bulk's function CPU
 * read -37.9 ms when a worker thread exited between them); what it ran after
 * that last reading is not counted.
 */
export async function cpuNs(pid: number): Promise<number> {
  const threads = threadsSeen.get(pid) ?? new Map<string, number>();
  threadsSeen.set(pid, threads);
  for await (const task of Deno.readDir(`/proc/${pid}/task`)) {
    try {
      const schedstat = await Deno.readTextFile(`/proc/${pid}/task/${task.name}/schedstat`);
      const ns = Number(schedstat.split(" ")[0]);
      threads.set(task.name, Math.max(ns, threads.get(task.name) ?? 0));
    } catch {
      // The thread exited between listing and reading.
    }
  }
  let total = 0;
  for (const ns of threads.values()) total += ns;
  return total;
}

/** Per process, the CPU last read for each of its threads (a benchmark's few processes). */
const threadsSeen = new Map<number, Map<string, number>>();

/** `pid` and every process descended from it (e.g. a postmaster and its backends). */
export async function processTree(pid: number): Promise<number[]> {
  const parents = new Map<number, number>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      // Field 4 (ppid) follows the ")" closing the command name.
      parents.set(Number(entry.name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // Exited while listing.
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of parents) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}

/** CPU milliseconds the whole machine has spent busy (not idle or waiting on I/O), from /proc/stat. */
export async function machineBusyMs(): Promise<number> {
  const line = (await Deno.readTextFile("/proc/stat")).split("\n")[0];
  const [user, nice, system, _idle, _iowait, irq, softirq, steal] = line.split(/\s+/).slice(1)
    .map(Number);
  // USER_HZ is 100 on Linux.
  return (user + nice + system + irq + softirq + steal) * 10;
}

/**
 * CPU time of named stack components (each with its descendants), so a
 * benchmark can show where the CPU of a phase went. Call `start()` before the
 * phase and `stop()` after: milliseconds per component. Processes that exit
 * during the phase lose their share.
 */
export function componentCpu(running: RunningStack, names: string[]) {
  const read = async () => {
    const readings = new Map<string, Map<number, number>>();
    for (const name of names) {
      const pid = running.pidOf(name);
      const perPid = new Map<number, number>();
      if (pid !== undefined) {
        for (const p of await processTree(pid)) {
          perPid.set(p, await cpuNs(p).catch(() => 0));
        }
      }
      readings.set(name, perPid);
    }
    return readings;
  };
  let before = new Map<string, Map<number, number>>();
  let busyBefore = 0;
  return {
    start: async () => {
      before = await read();
      busyBefore = await machineBusyMs();
    },
    /** Milliseconds per component, and `machine`: the whole machine's busy time (every core). */
    stop: async (): Promise<Record<string, number>> => {
      const machine = (await machineBusyMs()) - busyBefore;
      const after = await read();
      const spent: Record<string, number> = {};
      for (const name of names) {
        let ns = 0;
        for (const [pid, now] of after.get(name)!) ns += now - (before.get(name)!.get(pid) ?? 0);
        spent[name] = Math.round(ns / 1e6);
      }
      spent.machine = machine;
      return spent;
    },
  };
}

/**
 * A positive integer setting from the environment, or `fallback` when unset.
 *
 * @throws {RangeError} when it is set to anything else
 */
export function positiveEnv(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got '${raw}'`);
  }
  return value;
}
