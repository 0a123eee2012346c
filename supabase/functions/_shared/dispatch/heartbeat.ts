/**
 * A long-running dispatcher's heartbeat. Every `intervalMs` it tells
 * Postgres it is alive (`herald.dispatchers`); its claims carry the same id.
 * A dispatcher killed mid-round stops beating, and the next beat of another
 * one that finds it silent for `silentAfterMs` makes the rows it held due at
 * once: seconds instead of the rest of a 60 s lease. The lease still fences
 * the write-back, so a dispatcher that was only slow loses its results (their
 * deliveries are sent again), never overwrites the newer claim's.
 *
 * A dispatcher takes others over only after beating without a gap for
 * `silentAfterMs` itself: when the database (or this process) was away,
 * everyone's silence is its own, and the others get the time to beat again.
 * And only if its own previous beat is recent by the database's clock: a
 * beat that hung through a Postgres stall runs after it, when everyone's
 * beats, its own included, look as old as the stall.
 *
 * @module
 */
import type { Sql } from "../db/sessions.ts";
import type { Logger } from "../log.ts";

/** Options for {@linkcode startHeartbeat}. */
export interface HeartbeatOptions {
  sql: Sql;
  log?: Logger;
  /** Stored beside the id, for operators reading `herald.dispatchers`. */
  instance?: string;
  /** @default 2_000 */
  intervalMs?: number;
  /** A dispatcher silent this long is taken over. @default 6_000 */
  silentAfterMs?: number;
  now?: () => number;
}

/** A running heartbeat. */
export interface Heartbeat {
  /** What this dispatcher's claims carry (`herald.deliveries.locked_by`). */
  readonly id: string;
  /** Settles once the first beat was tried: claims made after it can be taken over. */
  readonly started: Promise<void>;
  /** Stops beating and removes this dispatcher's row. */
  stop(): Promise<void>;
}

/**
 * Starts beating at once, then every `intervalMs`.
 *
 * @example
 * ```ts
 * const heartbeat = startHeartbeat({ sql, log });
 * await dispatchBatch({ ...deps, holder: heartbeat.id });
 * await heartbeat.stop();
 * ```
 */
export function startHeartbeat(options: HeartbeatOptions): Heartbeat {
  const { sql, log } = options;
  const intervalMs = options.intervalMs ?? 2_000;
  const silentAfterMs = options.silentAfterMs ?? 6_000;
  const now = options.now ?? Date.now;
  // A stall that makes another look silent lasts at least silentAfterMs -
  // intervalMs (its last beat can be that recent); this process's own
  // previous beat is then older than this, and it does not judge.
  const steadyWithinMs = 0.75 * (silentAfterMs - intervalMs);
  const id = crypto.randomUUID();
  // When the current run of beats without a gap began, and when the last one ended.
  let steadySince: number | undefined;
  let lastBeat = -Infinity;
  let failing = false;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const beat = async (started: number) => {
    if (started - lastBeat > 2 * intervalMs) steadySince = undefined;
    const takeOver = steadySince !== undefined && started - steadySince >= silentAfterMs;
    try {
      const [taken] = await sql`select * from herald.dispatcher_heartbeat(
        ${id}::uuid, ${options.instance ?? ""}, ${takeOver},
        make_interval(secs => ${silentAfterMs / 1000}),
        make_interval(secs => ${steadyWithinMs / 1000}))`;
      steadySince ??= started;
      lastBeat = now();
      if (failing) log?.("info", "dispatcher heartbeat restored");
      failing = false;
      if (taken.dispatchers > 0) {
        log?.("warn", `took over from dispatchers silent for ${silentAfterMs} ms`, {
          dispatchers: taken.dispatchers,
          deliveries: taken.deliveries,
        });
      }
    } catch (error) {
      if (!failing) {
        log?.("warn", "dispatcher heartbeat failed: others may take this one's deliveries over", {
          error: (error as Error).message,
        });
      }
      failing = true;
    }
  };
  let beating = Promise.resolve();
  const loop = () => {
    const started = now();
    beating = beat(started).then(() => {
      if (!stopped) timer = setTimeout(loop, Math.max(0, started + intervalMs - now()));
    });
  };
  loop();

  return {
    id,
    started: beating,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await beating;
      await sql`delete from herald.dispatchers where id = ${id}::uuid`.catch(() => {});
    },
  };
}
