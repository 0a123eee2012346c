/**
 * The outbox's upkeep from a long-running dispatcher: `herald.maintain_outbox()`
 * at start and every `intervalMs` (partitions made ahead, days past retention
 * dropped). pg_cron runs the same function hourly where it exists; runs
 * do not overlap (the function takes an advisory lock), so both may.
 *
 * @module
 */
import type { Sql } from "../db/sessions.ts";
import type { Logger } from "../log.ts";

/** A running upkeep. */
export interface Upkeep {
  /** Settles once the first run ended (done or failed). */
  readonly started: Promise<void>;
  /** Stops the timer; settles once a run in progress ended. */
  stop(): Promise<void>;
}

/** Runs the upkeep now, then every `intervalMs` (an hour by default). */
export function startUpkeep(
  options: { sql: Sql; log: Logger; intervalMs?: number },
): Upkeep {
  const { sql, log } = options;
  const run = async () => {
    try {
      const rows = await sql`select * from herald.maintain_outbox()`;
      for (const row of rows) {
        if (row.action === "created" || row.action === "skipped") continue;
        log(row.action === "busy" ? "warn" : "info", `outbox upkeep: ${row.action}`, {
          partition: row.partition_name,
          note: row.note,
        });
      }
    } catch (error) {
      log("warn", "outbox upkeep failed; the next run tries again", {
        error: (error as Error).message,
      });
    }
  };
  let running = run();
  const timer = setInterval(() => running = run(), options.intervalMs ?? 3_600_000);
  return {
    started: running,
    stop: () => {
      clearInterval(timer);
      return running;
    },
  };
}
