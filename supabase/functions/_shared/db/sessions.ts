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
  return postgres(options.url, {
    ...GUARDED,
    max: options.max ?? 4,
    prepare: !usesTransactionPooler(options.url),
    idle_timeout: 20,
    connect_timeout: 3,
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
    onnotice: () => {},
    connection: {
      application_name: options.applicationName,
      statement_timeout: options.statementTimeoutMs ?? 15_000,
    },
  });
}

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
 * The database went away after a transaction's work was done, while it
 * committed: it may have committed or not, and nothing here can tell.
 */
export class CommitOutcomeUnknown extends Error {
  constructor(override readonly cause: Error, readonly unavailable: string) {
    super(`the database went away while committing (${unavailable})`);
    this.name = "CommitOutcomeUnknown";
  }
}

/**
 * Runs `work` in a transaction as the caller: role `authenticated` with the
 * user's claims, or `service_role` for services.
 *
 * @throws {CommitOutcomeUnknown} when the database went away during the commit
 */
export function asCaller<T>(sql: Sql, caller: Caller, work: (tx: Tx) => Promise<T>): Promise<T> {
  const role = caller.kind === "user" ? "authenticated" : "service_role";
  const claims = JSON.stringify(
    caller.kind === "user" ? caller.claims : { ...caller.claims, role: "service_role" },
  );
  let committing = false;
  return (sql.begin(async (tx) => {
    // Sent now and not awaited alone: it travels in the same round trip as
    // work's first query, which the connection runs after it.
    const identity = tx`select set_config('role', ${role}, true),
      set_config('request.jwt.claims', ${claims}, true)`.execute();
    identity.catch(() => {}); // a failure surfaces through work's queries and the await below
    const result = await work(tx);
    await identity;
    committing = true; // only COMMIT is left
    return result;
  }) as Promise<T>).catch((error) => {
    const unavailable = committing ? databaseUnavailable(error) : undefined;
    throw unavailable ? new CommitOutcomeUnknown(error, unavailable) : error;
  });
}
