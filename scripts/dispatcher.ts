/**
 * Long-running dispatcher process: `npm start` runs one; self-hosters run as
 * many as they like (leases keep them from sending a delivery twice).
 * Configured by the same environment as the functions.
 *
 * @module
 */
import { loadConfig } from "../supabase/functions/_shared/config.ts";
import { createSql } from "../supabase/functions/_shared/db/sessions.ts";
import { createDispatcherDeps } from "../supabase/functions/_shared/dispatch/dispatcher_deps.ts";
import { runWorker } from "../supabase/functions/_shared/dispatch/worker.ts";
import { consoleLogger } from "../supabase/functions/_shared/log.ts";

const config = loadConfig(Deno.env.toObject());
const sql = createSql({
  url: config.dbUrl,
  max: 2 * config.dispatch.rounds + 2,
  applicationName: "herald-dispatcher",
  statementTimeoutMs: config.dbStatementTimeoutMs,
});
const deps = createDispatcherDeps(config, sql, consoleLogger);

const stop = new AbortController();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => stop.abort());
}
consoleLogger("info", "dispatcher started");
await runWorker({
  ...deps,
  rounds: config.dispatch.rounds,
  log: consoleLogger,
  signal: stop.signal,
});
await sql.end({ timeout: 5 });
consoleLogger("info", "dispatcher stopped");
