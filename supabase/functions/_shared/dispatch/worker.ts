/**
 * The long-running dispatcher (for `npm start` and self-hosting): rounds back
 * to back while there is work, then sleeps until `enqueue` NOTIFYs
 * `herald_outbox` or the poll interval passes (retries come due silently).
 * Its heartbeat lets the others take its claims over if it dies mid-round;
 * it also runs the outbox's hourly upkeep (`upkeep.ts`).
 *
 * @module
 */
import { type Logger, withLogContext } from "../log.ts";
import { dispatchBatch, type DispatcherDeps } from "./dispatcher.ts";
import { startHeartbeat } from "./heartbeat.ts";
import { startStallWatch } from "./stall_watch.ts";
import { startUpkeep } from "./upkeep.ts";

/** Options for {@linkcode runWorker}. */
export interface WorkerOptions extends DispatcherDeps {
  log: Logger;
  /** Stops the loop after the current round. */
  signal: AbortSignal;
  /** Longest sleep between rounds when idle. @default 1_000 */
  pollMs?: number;
  /**
   * Rounds in flight at once. Two keep the provider busy while the other
   * round claims or writes back; leases keep them from sharing rows. @default 2
   */
  rounds?: number;
}

/**
 * Runs rounds until `signal` aborts.
 *
 * @example
 * ```ts
 * const stop = new AbortController();
 * Deno.addSignalListener("SIGTERM", () => stop.abort());
 * const deps = createDispatcherDeps(config, sql, consoleLogger);
 * await runWorker({ ...deps, log: consoleLogger, signal: stop.signal });
 * ```
 */
export async function runWorker(options: WorkerOptions): Promise<void> {
  const { sql, log, signal } = options;
  const pollMs = options.pollMs ?? 1_000;
  const sleepers = new Set<() => void>();
  // Counts wake-ups, so a round that was busy when one came does not sleep past it.
  let notified = 0;
  const wakeAll = () => {
    notified++;
    sleepers.forEach((wake) => wake());
  };
  // Wake-ups are an optimisation: without them (the database unreachable at start) the worker
  // polls and asks again each round; postgres.js re-listens itself after a reconnect.
  let listener: { unlisten(): Promise<void> } | undefined;
  let asking: Promise<void> | undefined;
  let polling = false;
  const listen = () =>
    asking ??= sql.listen("herald_outbox", wakeAll).then((listening) => {
      listener = listening;
      if (polling) log("info", "outbox wake-ups restored");
    }, (error) => {
      asking = undefined;
      if (!polling) {
        log("warn", `outbox wake-ups unavailable: polling every ${pollMs} ms`, {
          error: (error as Error).message,
        });
      }
      polling = true;
    });
  await listen();
  signal.addEventListener("abort", wakeAll);
  const heartbeat = startHeartbeat({ sql, log, instance: options.instance });
  // A claim made before the first beat names a dispatcher nobody could find silent.
  await heartbeat.started;
  const stalls = startStallWatch();
  const upkeep = startUpkeep({ sql, log });
  const deps = { ...options, holder: heartbeat.id, stalls };
  // Rounds that could send nothing (every slot held elsewhere) pause every loop, wake-ups or not.
  let starved = 0;
  let pausedUntil = 0;
  const loop = async () => {
    while (!signal.aborted) {
      const pause = pausedUntil - Date.now();
      if (pause > 0) await _sleep(pause, signal, new Set());
      if (!listener) await listen();
      const seen = notified;
      // Every line of the round, the breaker's and Redis's included, carries its id.
      const report = await withLogContext({ round_id: crypto.randomUUID() }, async () => {
        try {
          const report = await dispatchBatch(deps);
          if (report.claimed > 0) log("info", "dispatch round", { ...report });
          return report;
        } catch (error) {
          // The database went away or a query failed: leases bring the rows back; wait and retry.
          log("error", "dispatch round failed", { error: (error as Error).message });
          return undefined;
        }
      });
      if (!report) {
        await _sleep(pollMs, signal, sleepers);
        continue;
      }
      if (report.released > 0 && report.released === report.claimed) {
        pausedUntil = Date.now() + Math.min(pollMs, STARVED_PAUSE_MS * 2 ** starved++);
        continue;
      }
      starved = 0;
      // New work may have been enqueued after this round claimed: look again at once.
      if (report.claimed < (options.batchSize ?? 500) && notified === seen) {
        await _sleep(pollMs, signal, sleepers);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: options.rounds ?? 2 }, loop));
  } finally {
    stalls.stop();
    await upkeep.stop();
    await heartbeat.stop();
    await listener?.unlisten();
  }
}

/** The first pause after a round that sent nothing; it doubles up to the poll interval. */
const STARVED_PAUSE_MS = 100;

/** Sleeps `ms`, or less when the worker stops or one of `sleepers` is woken. */
function _sleep(ms: number, signal: AbortSignal, sleepers: Set<() => void>): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      sleepers.delete(done);
      resolve();
    }
    sleepers.add(done);
  });
}
