/**
 * Database sessions with the caller's identity, as PostgREST sets them up:
 * a transaction whose role is `authenticated` (or `service_role`) and whose
 * `request.jwt.claims` hold the verified claims, so RLS decides every row.
 *
 * @module
 */
import postgres from "postgres";
import type { Caller } from "../auth/caller.ts";
import { guardedSocket } from "./guarded_socket.ts";
import { databaseUnavailable } from "./unavailable.ts";
import { withinMs } from "../resilience/time_limit.ts";

/** A postgres.js client. */
export type Sql = postgres.Sql;
/** A postgres.js transaction. */
export type Tx = postgres.TransactionSql;

/** Options for {@linkcode createSql}. */
export interface SqlOptions {
  url: string;
  /** @default 4 */
  max?: number;
  /** Shown in pg_stat_activity. */
  applicationName: string;
  /** Longest a statement may run before Postgres cancels it (a 503). @default 15_000 */
  statementTimeoutMs?: number;
}

/**
 * Creates a pooled client. Statements are prepared (planned once per
 * connection: about half of Postgres's CPU per notify) except through
 * Supavisor's transaction mode (port 6543), which cannot keep them.
 *
 * Tuned to fail fast and come back fast: a connection attempt gives up
 * after 3 s, statements after `statementTimeoutMs`, and reconnecting waits
 * at most about a second (postgres.js's default backoff grows to 20 s, which
 * kept requests failing long after Postgres had returned). Connections go
 * through {@linkcode guardedSocket}: postgres.js 3.4.9 can otherwise end or
 * stall an isolate on the edge runtime's Deno when a connection is cut.
 */
export function createSql(options: SqlOptions): Sql {
  const statementTimeoutMs = options.statementTimeoutMs ?? 15_000;
  const sql = postgres(options.url, {
    ...GUARDED,
    max: options.max ?? 4,
    prepare: !usesTransactionPooler(options.url),
    idle_timeout: 20,
    connect_timeout: 3,
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
    onnotice: () => {},
    connection: {
      application_name: options.applicationName,
      statement_timeout: statementTimeoutMs,
    },
  });
  deadlines.set(sql, statementTimeoutMs + DEADLINE_MARGIN_MS);
  return sql;
}

/**
 * How much longer than the statement timeout {@linkcode asCaller} waits for
 * a transaction. A Postgres that is frozen (SIGSTOP, a hung host, a network
 * that drops packets) cancels nothing itself, and postgres.js has no
 * client-side deadline: without one a request waited until the gateway cut
 * it (Kong's read timeout is 30 s), which counted as a dead upstream.
 */
const DEADLINE_MARGIN_MS = 5_000;
/** Each client's transaction deadline, ms. */
const deadlines = new WeakMap<Sql, number>();

/** postgres.js's `socket` option (in its README, missing from its types). */
const GUARDED = {
  socket: ({ host, port }: { host: string[]; port: number[] }) => guardedSocket(host[0], port[0]),
} as Record<never, never>;

/** Whether a connection string points at Supavisor's transaction mode (port 6543). */
export function usesTransactionPooler(url: string): boolean {
  try {
    return new URL(url).port === "6543";
  } catch {
    return false;
  }
}

/**
 * A transaction's outcome is unknown: the database went away after its work
 * was done, while it committed, or did not answer within its deadline (a
 * frozen Postgres may still commit when it resumes). Nothing here can tell.
 */
export class OutcomeUnknown extends Error {
  constructor(readonly reason: string, override readonly cause?: Error) {
    super(`the database did not finish the transaction: ${reason}`);
    this.name = "OutcomeUnknown";
  }
}

/**
 * The database did not answer a read within the deadline: nothing was
 * changed, so it is an outage like any other (a 503 `database-unavailable`).
 */
export class NoAnswer extends Error {
  /** What {@linkcode databaseUnavailable} reads as a connection that timed out. */
  readonly code = "ETIMEDOUT";
  constructor(deadlineMs: number) {
    super(`the database did not answer within ${deadlineMs / 1000} s`);
    this.name = "NoAnswer";
  }
}

/**
 * `work` (statements on `sql`), or an error once `sql`'s deadline passes: a
 * frozen Postgres cancels nothing itself. A read that times out is
 * {@linkcode NoAnswer}; a write is {@linkcode OutcomeUnknown} (a frozen
 * Postgres may still commit when it resumes).
 */
export function withinDeadline<T>(
  sql: Sql,
  work: Promise<T>,
  access: "read" | "write",
): Promise<T> {
  const deadlineMs = deadlines.get(sql);
  if (deadlineMs === undefined) return work;
  return withinMs(
    deadlineMs,
    work,
    () =>
      access === "read"
        ? new NoAnswer(deadlineMs)
        : new OutcomeUnknown(`no answer within ${deadlineMs / 1000} s`),
  );
}

/**
 * Runs `work` in a transaction as the caller: role `authenticated` with the
 * user's claims, or `service_role` for services. `access: "read"` makes it a
 * read-only transaction, whose outage is never an unknown outcome.
 *
 * @throws {OutcomeUnknown} when the database went away during the commit of
 *   a write, or a write did not end within the statement timeout plus 5 s
 * @throws {NoAnswer} when a read did not end within that time
 */
export function asCaller<T>(
  sql: Sql,
  caller: Caller,
  work: (tx: Tx) => Promise<T>,
  access: "read" | "write" = "write",
): Promise<T> {
  const role = caller.kind === "user" ? "authenticated" : "service_role";
  const claims = JSON.stringify(
    caller.kind === "user" ? caller.claims : { ...caller.claims, role: "service_role" },
  );
  let committing = false;
  const body = async (tx: Tx) => {
    // Sent now and not awaited alone: it travels in the same round trip as
    // work's first query, which the connection runs after it.
    const identity = tx`select set_config('role', ${role}, true),
      set_config('request.jwt.claims', ${claims}, true)`.execute();
    identity.catch(() => {}); // a failure surfaces through work's queries and the await below
    const result = await work(tx);
    await identity;
    committing = true; // only COMMIT is left
    return result;
  };
  const transaction =
    ((access === "read" ? sql.begin("read only", body) : sql.begin(body)) as Promise<
      T
    >).catch((error) => {
      const unavailable = committing && access === "write" ? databaseUnavailable(error) : undefined;
      throw unavailable
        ? new OutcomeUnknown(`gone while committing (${unavailable})`, error)
        : error;
    });
  return withinDeadline(sql, transaction, access);
}
