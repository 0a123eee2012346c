/**
 * Exponential backoff with full jitter: `uniform(0, min(cap, base · 2^n))`.
 *
 * @module
 */

/** Options for {@linkcode backoffMs}. */
export interface BackoffOptions {
  /** Delay scale for the first retry. @default 1_000 */
  baseMs?: number;
  /** Upper bound of any delay. @default 3_600_000 */
  capMs?: number;
  /** Uniform [0, 1). @default Math.random */
  random?: () => number;
}

/**
 * The delay before retry number `attempt` (1 = first retry).
 *
 * @throws {RangeError} when `attempt` is not a positive integer
 */
export function backoffMs(attempt: number, options: BackoffOptions = {}): number {
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new RangeError(
      `Cannot compute backoff: 'attempt' must be a positive integer, got ${attempt}`,
    );
  }
  const base = options.baseMs ?? 1_000;
  const cap = options.capMs ?? 3_600_000;
  const random = options.random ?? Math.random;
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt - 1, 52));
  return Math.floor(random() * ceiling);
}
