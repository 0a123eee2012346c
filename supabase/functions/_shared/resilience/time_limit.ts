/**
 * The one way Herald stops waiting: `work`'s answer, or a rejection once a
 * time limit has passed, the timer cleared either way (Deno's sanitizers and
 * an isolate's event loop see nothing left behind). `AbortSignal.timeout`
 * does the same for what takes a signal (fetch); this is for promises that
 * do not.
 *
 * @module
 */

/** The rejection of a time limit: a `TimeoutError`, as `AbortSignal.timeout` gives fetch. */
export function timeoutError(ms: number): DOMException {
  return new DOMException(`no answer within ${ms} ms`, "TimeoutError");
}

/** Whether `error` is a time limit's rejection. */
export function isTimeout(error: unknown): boolean {
  return error instanceof DOMException && error.name === "TimeoutError";
}

/**
 * `work`'s answer, or a rejection with `late()` (default {@linkcode timeoutError})
 * once `ms` have passed. `work` itself is not cancelled.
 *
 * @example
 * ```ts
 * const pong = await withinMs(1_500, redis.ping());
 * ```
 */
export function withinMs<T>(
  ms: number,
  work: Promise<T>,
  late: () => unknown = () => timeoutError(ms),
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(late()), ms);
  });
  return Promise.race([work, limit]).finally(() => clearTimeout(timer));
}
