/**
 * The abort signal of one outgoing request: its own time limit, ended early
 * when the caller's signal fires (a dispatch round's lease is running out).
 *
 * @module
 */

/**
 * Combines a request's timeout with the caller's signal.
 *
 * @example
 * ```ts
 * await fetch(url, { signal: requestSignal(10_000, options?.signal) });
 * ```
 */
export function requestSignal(timeoutMs: number, signal?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  return signal ? AbortSignal.any([timeout, signal]) : timeout;
}
