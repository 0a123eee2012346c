/**
 * Database sessions with the caller's identity, as PostgREST sets them up:
 * a transaction whose role is `authenticated` (or `service_role`) and whose
 * `request.jwt.claims` hold the verified claims, so RLS decides every row.
 *
 * @module
 */
import postgres from "postgres";
import type { Caller } from "../auth/caller.ts";

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
}

/** Creates a pooled client; prepared statements off so it also works through Supavisor. */
export function createSql(options: SqlOptions): Sql {
  return postgres(options.url, {
    max: options.max ?? 4,
    prepare: false,
    idle_timeout: 20,
    connect_timeout: 10,
    onnotice: () => {},
    connection: { application_name: options.applicationName },
  });
}

/**
 * Runs `work` in a transaction as the caller: role `authenticated` with the
 * user's claims, or `service_role` for services.
 */
export function asCaller<T>(sql: Sql, caller: Caller, work: (tx: Tx) => Promise<T>): Promise<T> {
  const role = caller.kind === "user" ? "authenticated" : "service_role";
  const claims = JSON.stringify(
    caller.kind === "user" ? caller.claims : { ...caller.claims, role: "service_role" },
  );
  return sql.begin(async (tx) => {
    await tx`select set_config('role', ${role}, true), set_config('request.jwt.claims', ${claims}, true)`;
    return await work(tx);
  }) as Promise<T>;
}
