/**
 * Notices when this process itself stopped running for a while (SIGSTOP, a
 * frozen VM, a host swapping): the timeouts of sends in flight then fire
 * the moment it runs again, although the provider may have answered in
 * milliseconds. Counted against the target, one paused worker opened the
 * shared breaker for everyone (issue 24's outside check: 30 s of deferrals
 * after a 10 s SIGSTOP).
 *
 * @module
 */

/** A running watch. */
export interface StallWatch {
  /** How long this process stood still after `since` (a `performance.now()` reading); 0 if it ran. */
  stalledSince(since: number): number;
  stop(): void;
}

/** Options for {@linkcode startStallWatch}. */
export interface StallWatchOptions {
  /** @default 200 */
  tickMs?: number;
  /** A gap between ticks this long is a stall. @default 1_000 */
  stallMs?: number;
  now?: () => number;
}

/**
 * Ticks every `tickMs`; a tick later than `stallMs` marks a stall. Keeps
 * only the latest one: a send overlaps it or it does not.
 *
 * @example
 * ```ts
 * const stalls = startStallWatch();
 * const started = performance.now();
 * const outcome = await send();
 * if (outcome.code === "TIMEOUT" && stalls.stalledSince(started) > 0) { ... }
 * ```
 */
export function startStallWatch(options: StallWatchOptions = {}): StallWatch {
  const tickMs = options.tickMs ?? 200;
  const stallMs = options.stallMs ?? 1_000;
  const now = options.now ?? (() => performance.now());
  let lastTick = now();
  let stall = { end: -Infinity, ms: 0 };
  const timer = setInterval(() => {
    const at = now();
    if (at - lastTick >= stallMs) stall = { end: at, ms: at - lastTick };
    lastTick = at;
  }, tickMs);
  return {
    stalledSince(since) {
      // A stall ending now, that no tick has seen yet.
      const gap = now() - lastTick;
      if (gap >= stallMs) return gap;
      return stall.end > since ? stall.ms : 0;
    },
    stop: () => clearInterval(timer),
  };
}
