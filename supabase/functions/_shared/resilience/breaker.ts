/**
 * A circuit breaker per provider target, its state in Redis so every isolate
 * and worker sees the same thing, with a per-process breaker taking over
 * while Redis is unreachable.
 *
 * Closed → open when the window holds at least `threshold` failures and, once
 * it has seen `minimumCalls` calls, when at least `failureRate` of them
 * failed (as resilience4j and Hystrix decide), or when the last few seconds
 * alone, or one round alone, hold `threshold` failures at that rate (a fresh
 * outage after a busy minute); a provider-wide `Retry-After` opens it at once
 * for that long. Callers report only first attempts' failures: a delivery
 * failing again is its own trouble (a poison token), not the target's. Open for a cool-down; then exactly one
 * caller wins the half-open probe; success closes, failure re-opens. Callers ask once per batch and target
 * ({@linkcode CircuitBreaker.admit}) and report once per batch and target
 * ({@linkcode CircuitBreaker.record}).
 *
 * @module
 */
import { BREAKER_ADMIT, BREAKER_RECORD, runScript, type ScriptRedis } from "../redis/scripts.ts";

/** Where breakers keep their state in Redis: `<prefix>{<target>}` and its `:failures`, `:recent`. */
export const BREAKER_KEY_PREFIX = "herald:breaker:";

/** What a caller may do with a target now. */
export type Admission =
  | { state: "closed" }
  /** This caller won the half-open probe: send one, then record with `probe: true`. */
  | { state: "probe" }
  /** Do not send before `retryAt` (epoch ms). */
  | { state: "open"; retryAt: number };

/** The results of one round of sends to one target. */
export interface RoundResult {
  /** Provider faults (5xx, timeouts, network, quota), not per-message rejections. */
  failures: number;
  successes: number;
  /** The round was this caller's half-open probe. */
  probe: boolean;
  /**
   * The provider asked every caller to wait this long (a provider-wide
   * `Retry-After`), ms: opens the breaker at once. On a failed probe, any
   * wait the target asked for.
   */
  retryAfterMs?: number;
  /** The longest wait the round's failures asked for, ms: the cool-down if this round opens it. */
  waitMs?: number;
}

/** The breaker after a recorded round. */
export type BreakerState =
  | { state: "closed" }
  | { state: "open"; retryAt: number; /** this round opened it */ opened: boolean };

/** A shared circuit breaker. */
export interface CircuitBreaker {
  admit(target: string): Promise<Admission>;
  record(target: string, round: RoundResult): Promise<BreakerState>;
  /** Whether the last call had to use the per-process breaker because Redis failed. */
  readonly degraded: boolean;
  /** Failures within the window below which the breaker never opens. */
  readonly threshold: number;
  /** Whether `failures` of `calls` in one round would open the breaker on their own. */
  trips(failures: number, calls: number): boolean;
}

/** Options for {@linkcode createBreaker}. */
export interface BreakerOptions {
  /** The shared store; without it the breaker is per-process only. */
  redis?: ScriptRedis;
  /** Failures within `windowMs` that open the breaker (at least). @default 5 */
  threshold?: number;
  /**
   * Calls within `windowMs` from which `failureRate` decides; below it
   * `threshold` failures alone open the breaker. @default 100
   */
  minimumCalls?: number;
  /** The share of failed calls that opens the breaker once `minimumCalls` are seen. @default 0.5 */
  failureRate?: number;
  /** @default 60_000 */
  windowMs?: number;
  /**
   * The recent window: `threshold` failures in it, at least `failureRate` of
   * its calls, open the breaker whatever the long window holds. @default 5_000
   */
  recentMs?: number;
  /** How long the breaker stays open before a probe. @default 30_000 */
  cooldownMs?: number;
  /** How long a won probe blocks other probes (longer than a send's timeout). @default 30_000 */
  probeLeaseMs?: number;
  /** How soon callers that lost the probe look again. @default 1_000 */
  recheckMs?: number;
  /** Redis key prefix. @default BREAKER_KEY_PREFIX */
  prefix?: string;
  /** After Redis failed, how long the per-process breaker is used before Redis is tried again. @default 5_000 */
  redisRecheckMs?: number;
  now?: () => number;
  /** A target opened or closed. */
  onStateChange?: (target: string, state: "open" | "closed") => void;
  /** Redis failed (error) or recovered (undefined). */
  onDegraded?: (error: Error | undefined) => void;
}

/**
 * Creates a breaker.
 *
 * One piece: the returned methods share this closure's local fallback state, script runner and hooks.
 *
 * @throws {RangeError} when a numeric option is not a positive integer
 * @example
 * ```ts
 * const breaker = createBreaker({ redis: Redis.fromEnv(), cooldownMs: 30_000 });
 * const admission = await breaker.admit("fcm:my-project");
 * ```
 */
export function createBreaker(options: BreakerOptions = {}): CircuitBreaker {
  const settings = {
    threshold: _positive("threshold", options.threshold ?? 5),
    windowMs: _positive("windowMs", options.windowMs ?? 60_000),
    recentMs: _positive("recentMs", options.recentMs ?? 5_000),
    cooldownMs: _positive("cooldownMs", options.cooldownMs ?? 30_000),
    probeLeaseMs: _positive("probeLeaseMs", options.probeLeaseMs ?? 30_000),
    recheckMs: _positive("recheckMs", options.recheckMs ?? 1_000),
    minimumCalls: _positive("minimumCalls", options.minimumCalls ?? 100),
    failureRate: _rate(options.failureRate ?? 0.5),
  };
  const trips = (failures: number, calls: number) =>
    failures >= settings.threshold &&
    (calls < settings.minimumCalls || failures >= settings.failureRate * calls);
  const prefix = options.prefix ?? BREAKER_KEY_PREFIX;
  const now = options.now ?? Date.now;
  const local = new LocalBreakerStore(settings, trips);
  const redisRecheckMs = _positive("redisRecheckMs", options.redisRecheckMs ?? 5_000);
  let degraded = false;
  // While Redis is down every call would wait for its timeout: skip it until then.
  let skipRedisUntil = 0;

  // Admissions granted by the local store are recorded there too.
  const localProbes = new Set<string>();

  async function shared<T>(
    remote: (redis: ScriptRedis) => Promise<T>,
    fallback: () => T,
  ): Promise<T> {
    if (!options.redis || now() < skipRedisUntil) return fallback();
    try {
      const value = await remote(options.redis);
      skipRedisUntil = 0;
      if (degraded) {
        degraded = false;
        options.onDegraded?.(undefined);
      }
      return value;
    } catch (error) {
      skipRedisUntil = now() + redisRecheckMs;
      if (!degraded) {
        degraded = true;
        options.onDegraded?.(error as Error);
      }
      return fallback();
    }
  }

  const keys = (target: string) => [
    `${prefix}{${target}}`,
    `${prefix}{${target}}:failures`,
    `${prefix}{${target}}:recent`,
  ];

  return {
    get degraded() {
      return degraded;
    },
    threshold: settings.threshold,
    trips,
    admit(target) {
      const at = now();
      return shared(
        async (redis) => {
          const [state, retryAt] = await runScript<[string, number]>(
            redis,
            BREAKER_ADMIT,
            keys(target).slice(0, 1),
            [at, settings.probeLeaseMs, settings.recheckMs],
          );
          return _admission(state, Number(retryAt));
        },
        () => {
          const admission = local.admit(target, at);
          if (admission.state === "probe") localProbes.add(target);
          return admission;
        },
      );
    },
    async record(target, given) {
      const at = now();
      // A round whose failures alone are `threshold` and `failureRate` of it opens it now:
      // the first failures of a fresh outage must not drown among a busy minute's (or five
      // seconds') successes. The rate always applies here, as a round is a small sample.
      const aloneTrips = given.failures >= settings.threshold &&
        given.failures >= settings.failureRate * (given.failures + given.successes);
      const round = !given.probe && aloneTrips
        ? {
          ...given,
          retryAfterMs: Math.max(given.retryAfterMs ?? 0, settings.cooldownMs, given.waitMs ?? 0),
        }
        : given;
      const useLocal = round.probe && localProbes.delete(target);
      const result = useLocal ? local.record(target, round, at) : await shared(
        async (redis) => {
          const [state, retryAt] = await runScript<[string, number]>(
            redis,
            BREAKER_RECORD,
            keys(target),
            [
              at,
              round.failures,
              round.successes,
              round.probe ? 1 : 0,
              settings.threshold,
              settings.windowMs,
              settings.cooldownMs,
              settings.minimumCalls,
              settings.failureRate,
              Math.round(round.retryAfterMs ?? 0),
              settings.recentMs,
              Math.round(round.waitMs ?? 0),
            ],
          );
          return _state(state, Number(retryAt));
        },
        () => local.record(target, round, at),
      );
      if (result.state === "open" && result.opened) options.onStateChange?.(target, "open");
      if (result.state === "closed" && round.probe) options.onStateChange?.(target, "closed");
      return result;
    },
  };
}

/** The same state machine in process memory: the fallback while Redis is unreachable. */
class LocalBreakerStore {
  #targets = new Map<
    string,
    {
      calls: { at: number; calls: number; failures: number }[];
      openUntil?: number;
      probeUntil?: number;
    }
  >();

  constructor(
    private settings: {
      windowMs: number;
      recentMs: number;
      threshold: number;
      failureRate: number;
      cooldownMs: number;
      probeLeaseMs: number;
      recheckMs: number;
    },
    private trips: (failures: number, calls: number) => boolean,
  ) {}

  admit(target: string, now: number): Admission {
    const t = this.#targets.get(target);
    if (t?.openUntil === undefined) return { state: "closed" };
    if (now < t.openUntil) return { state: "open", retryAt: t.openUntil };
    if (t.probeUntil !== undefined && now < t.probeUntil) {
      return { state: "open", retryAt: Math.min(t.probeUntil, now + this.settings.recheckMs) };
    }
    t.probeUntil = now + this.settings.probeLeaseMs;
    return { state: "probe" };
  }

  record(target: string, round: RoundResult, now: number): BreakerState {
    const t = this.#targets.get(target) ?? { calls: [] };
    this.#targets.set(target, t);
    const open = (ms: number): BreakerState => {
      t.openUntil = now + ms;
      t.probeUntil = undefined;
      t.calls = [];
      return { state: "open", retryAt: t.openUntil, opened: true };
    };
    const asked = round.retryAfterMs ?? 0;
    if (round.probe) {
      if (round.failures > 0) return open(Math.max(this.settings.cooldownMs, asked));
      if (round.successes > 0) {
        this.#targets.delete(target);
        return { state: "closed" };
      }
      t.probeUntil = undefined;
      return { state: "open", retryAt: now, opened: false };
    }
    if (t.openUntil !== undefined) return { state: "open", retryAt: t.openUntil, opened: false };
    if (asked > 0) return open(asked);
    t.calls = t.calls.filter((c) => c.at > now - this.settings.windowMs);
    t.calls.push({ at: now, calls: round.failures + round.successes, failures: round.failures });
    const failures = t.calls.reduce((sum, c) => sum + c.failures, 0);
    const calls = t.calls.reduce((sum, c) => sum + c.calls, 0);
    const cooldown = Math.max(this.settings.cooldownMs, round.waitMs ?? 0);
    if (this.trips(failures, calls)) return open(cooldown);
    const recent = t.calls.filter((c) => c.at > now - this.settings.recentMs);
    const recentFailures = recent.reduce((sum, c) => sum + c.failures, 0);
    const recentCalls = recent.reduce((sum, c) => sum + c.calls, 0);
    if (
      recentFailures >= this.settings.threshold &&
      recentFailures >= this.settings.failureRate * recentCalls
    ) return open(cooldown);
    if (failures === 0) this.#targets.delete(target);
    return { state: "closed" };
  }
}

function _admission(state: string, retryAt: number): Admission {
  if (state === "closed" || state === "probe") return { state };
  return { state: "open", retryAt };
}

function _state(state: string, retryAt: number): BreakerState {
  if (state === "closed") return { state };
  return { state: "open", retryAt, opened: state === "opened" };
}

function _positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot create breaker: '${name}' must be a positive integer, got ${value}`,
    );
  }
  return value;
}

function _rate(value: number): number {
  if (!(value > 0 && value <= 1)) {
    throw new RangeError(`Cannot create breaker: 'failureRate' must be in (0, 1], got ${value}`);
  }
  return value;
}
