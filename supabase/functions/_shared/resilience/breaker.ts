/**
 * A circuit breaker per provider target, its state in Redis so every isolate
 * and worker sees the same thing, with a per-process breaker taking over
 * while Redis is unreachable.
 *
 * Closed → open when failures within the window reach the threshold; open
 * for a cool-down; then exactly one caller wins the half-open probe; success
 * closes, failure re-opens. Callers ask once per batch and target
 * ({@linkcode CircuitBreaker.admit}) and report once per batch and target
 * ({@linkcode CircuitBreaker.record}).
 *
 * @module
 */
import { BREAKER_ADMIT, BREAKER_RECORD, runScript, type ScriptRedis } from "../redis/scripts.ts";

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
  /** Failures within the window that open the breaker. */
  readonly threshold: number;
}

/** Options for {@linkcode createBreaker}. */
export interface BreakerOptions {
  /** The shared store; without it the breaker is per-process only. */
  redis?: ScriptRedis;
  /** Failures within `windowMs` that open the breaker. @default 5 */
  threshold?: number;
  /** @default 60_000 */
  windowMs?: number;
  /** How long the breaker stays open before a probe. @default 30_000 */
  cooldownMs?: number;
  /** How long a won probe blocks other probes (longer than a send's timeout). @default 30_000 */
  probeLeaseMs?: number;
  /** How soon callers that lost the probe look again. @default 1_000 */
  recheckMs?: number;
  /** Redis key prefix. @default "herald:breaker:" */
  prefix?: string;
  now?: () => number;
  /** A target opened or closed. */
  onStateChange?: (target: string, state: "open" | "closed") => void;
  /** Redis failed (error) or recovered (undefined). */
  onDegraded?: (error: Error | undefined) => void;
}

/**
 * Creates a breaker.
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
    cooldownMs: _positive("cooldownMs", options.cooldownMs ?? 30_000),
    probeLeaseMs: _positive("probeLeaseMs", options.probeLeaseMs ?? 30_000),
    recheckMs: _positive("recheckMs", options.recheckMs ?? 1_000),
  };
  const prefix = options.prefix ?? "herald:breaker:";
  const now = options.now ?? Date.now;
  const local = new LocalBreakerStore(settings);
  const instance = crypto.randomUUID();
  let degraded = false;
  let sequence = 0;

  // Admissions granted by the local store are recorded there too.
  const localProbes = new Set<string>();

  async function shared<T>(
    remote: (redis: ScriptRedis) => Promise<T>,
    fallback: () => T,
  ): Promise<T> {
    if (!options.redis) return fallback();
    try {
      const value = await remote(options.redis);
      if (degraded) {
        degraded = false;
        options.onDegraded?.(undefined);
      }
      return value;
    } catch (error) {
      if (!degraded) {
        degraded = true;
        options.onDegraded?.(error as Error);
      }
      return fallback();
    }
  }

  const keys = (target: string) => [`${prefix}{${target}}`, `${prefix}{${target}}:failures`];

  return {
    get degraded() {
      return degraded;
    },
    threshold: settings.threshold,
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
    async record(target, round) {
      const at = now();
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
              `${instance}:${sequence++}`,
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
  #targets = new Map<string, { failures: number[]; openUntil?: number; probeUntil?: number }>();

  constructor(
    private settings: {
      threshold: number;
      windowMs: number;
      cooldownMs: number;
      probeLeaseMs: number;
      recheckMs: number;
    },
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
    const t = this.#targets.get(target) ?? { failures: [] };
    this.#targets.set(target, t);
    const open = (): BreakerState => {
      t.openUntil = now + this.settings.cooldownMs;
      t.probeUntil = undefined;
      t.failures = [];
      return { state: "open", retryAt: t.openUntil, opened: true };
    };
    if (round.probe) {
      if (round.failures > 0) return open();
      if (round.successes > 0) {
        this.#targets.delete(target);
        return { state: "closed" };
      }
      t.probeUntil = undefined;
      return { state: "open", retryAt: now, opened: false };
    }
    if (t.openUntil !== undefined) return { state: "open", retryAt: t.openUntil, opened: false };
    t.failures = t.failures.filter((at) => at > now - this.settings.windowMs);
    for (let i = 0; i < Math.min(round.failures, this.settings.threshold); i++) {
      t.failures.push(now);
    }
    if (t.failures.length >= this.settings.threshold) return open();
    if (t.failures.length === 0) this.#targets.delete(target);
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
