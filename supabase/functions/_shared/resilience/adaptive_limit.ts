/**
 * How many sends one target gets in flight, adapted to how it answers:
 * additive increase, multiplicative decrease (AIMD), as TCP sizes its window.
 * A fixed limit either starves a slow provider (64 in flight at 30 ms caps a
 * sender near 2,000/s) or floods a struggling one; this one grows while the
 * target answers as fast as it did unloaded and shrinks when it slows down or
 * fails, never above the configured ceiling.
 *
 * - Slow start: from `initial`, each uncongested answer adds one (the limit
 *   doubles per round trip) until the first sign of congestion.
 * - Then each uncongested answer adds `1 / limit` (one per round trip).
 * - Congestion: the smoothed latency above `tolerance` (3) × the unloaded
 *   latency (the least seen lately) plus `slackMs` (50 ms) cuts the limit by a
 *   tenth, never below where slow start began; a failure (throttled, 5xx,
 *   timeout) halves it, down to `floor` — FCM says "too much" with 429 and
 *   503, so failures are the main signal and latency the guard for receivers
 *   that slow down before they fail. At most one cut per round trip.
 * - A target that became slower for good (the least latency of a window far
 *   above the one before) is the new normal: slow start again from there.
 *   Windows end after 500 answers or 5 s, so a slower target is judged by its
 *   new latency within 10 s — before, 1,000 answers at one in flight took
 *   minutes, and a FCM that went from 0 to 300 ms was sent 3 pushes a second.
 * - The limit grows only while it is used: a target sent a trickle keeps a
 *   small limit, so a burst after a quiet hour does not arrive all at once.
 *
 * @module
 */

/** Options for {@linkcode AdaptiveLimit}. */
export interface AdaptiveLimitOptions {
  /** The most in flight, whatever the target's answers. */
  ceiling: number;
  /** Where slow start begins. @default min(16, ceiling) */
  initial?: number;
  /** The least in flight. @default 1 */
  floor?: number;
  /** Congested once the smoothed latency exceeds this multiple of the unloaded one. @default 3 */
  tolerance?: number;
  /**
   * Added to the congestion threshold: a sender's own busy event loop (a burst
   * of sends) and jitter on a fast target are not congestion. @default 50
   */
  slackMs?: number;
  now?: () => number;
}

/** Answers per window of the unloaded-latency estimate (the least of this window and the last). */
const BASE_WINDOW = 500;
/** …or milliseconds, whichever ends it first. */
const BASE_WINDOW_MS = 5_000;

/** One target's adaptive limit. */
export class AdaptiveLimit {
  readonly ceiling: number;
  #limit: number;
  #floor: number;
  /** Latency alone cuts no lower: where slow start began. */
  #latencyFloor: number;
  #tolerance: number;
  #slackMs: number;
  #now: () => number;
  #slowStart = true;
  #smoothed: number | undefined;
  #baseNow = Infinity;
  #baseBefore = Infinity;
  #samples = 0;
  #windowEnds: number | undefined;
  #holdCutsUntil = 0;

  constructor(options: AdaptiveLimitOptions) {
    this.ceiling = _atLeastOne("ceiling", options.ceiling);
    this.#floor = Math.min(this.ceiling, _atLeastOne("floor", options.floor ?? 1));
    this.#limit = Math.max(
      this.#floor,
      Math.min(this.ceiling, _atLeastOne("initial", options.initial ?? 16)),
    );
    this.#latencyFloor = this.#limit;
    this.#tolerance = options.tolerance ?? 3;
    this.#slackMs = options.slackMs ?? 50;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Sends allowed in flight now. */
  get limit(): number {
    return Math.floor(this.#limit);
  }

  /**
   * One send ended.
   *
   * @param latencyMs how long it took
   * @param failed the target failed it in a way that says "less, please" (throttled, 5xx, timeout)
   * @param inFlight sends in flight when it ended, itself included
   */
  observe(latencyMs: number, failed: boolean, inFlight: number): void {
    const now = this.#now();
    this.#track(latencyMs, now);
    if (failed) return this.#cut(0.5, this.#floor, now);
    const base = Math.min(this.#baseNow, this.#baseBefore);
    if (this.#smoothed! > this.#tolerance * base + this.#slackMs) {
      return this.#cut(0.9, this.#latencyFloor, now);
    }
    // Only a limit in use has shown that it is enough: grow it then.
    if (inFlight < this.#limit / 2) return;
    this.#limit = Math.min(this.ceiling, this.#limit + (this.#slowStart ? 1 : 1 / this.#limit));
  }

  #track(latencyMs: number, now: number) {
    this.#smoothed = this.#smoothed === undefined
      ? latencyMs
      : 0.9 * this.#smoothed + 0.1 * latencyMs;
    this.#baseNow = Math.min(this.#baseNow, latencyMs);
    this.#windowEnds ??= now + BASE_WINDOW_MS;
    if (++this.#samples % BASE_WINDOW === 0 || now >= this.#windowEnds) {
      // A target that became slower for good is its new normal after two windows,
      // and the limit it was cut to under the old one says nothing: slow start again.
      if (this.#baseNow > this.#tolerance * this.#baseBefore + this.#slackMs) {
        this.#slowStart = true;
      }
      this.#baseBefore = this.#baseNow;
      this.#baseNow = Infinity;
      this.#samples = 0;
      this.#windowEnds = now + BASE_WINDOW_MS;
    }
  }

  #cut(factor: number, floor: number, now: number) {
    this.#slowStart = false;
    // Answers to sends started before the last cut say nothing new about it.
    if (now < this.#holdCutsUntil) return;
    this.#limit = Math.max(Math.min(floor, this.#limit), this.#limit * factor);
    this.#holdCutsUntil = now + (this.#smoothed ?? 0);
  }
}

function _atLeastOne(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot create an adaptive limit: '${name}' must be a positive integer, got ${value}`,
    );
  }
  return value;
}
