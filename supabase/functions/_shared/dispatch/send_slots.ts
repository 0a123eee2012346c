/**
 * Send slots: a limit on sends in flight per provider target that holds
 * across every round of a process (a worker overlaps rounds) and, through
 * Redis, across processes (pg_cron invokes the dispatch function every few
 * seconds beside any worker). Without it each round and each invocation
 * brought its own concurrency, and a slow provider saw several times the
 * configured limit.
 *
 * A process takes slots from Redis in one script call when a round starts
 * on a target and gives them back when its last round there ends. While it
 * holds any, it renews them every third of `holdMs`; a process that dies
 * (SIGKILL, a lost host) stops renewing, and its slots are free again
 * `holdMs` later — seconds, not a round's lease, so one crash does not stop
 * every other dispatcher's sends. While Redis is unreachable each process
 * keeps its own limit.
 *
 * The limit is a ceiling: within the slots it holds, a process keeps as many
 * sends in flight as the target's answers allow ({@linkcode AdaptiveLimit}),
 * learned per target and kept across rounds.
 *
 * @module
 */
import { runScript, type ScriptRedis, SEND_SLOTS } from "../redis/scripts.ts";
import { AdaptiveLimit } from "../resilience/adaptive_limit.ts";

/** One target's slots as a round uses them. */
export interface Lane {
  /**
   * Runs `task` once a slot is free. When this process holds no slot for the
   * target (others use them all), it waits up to `holdMs` for its share
   * (Redis keeps one for every holder that asks), then answers `undefined`;
   * so does a wait that `signal` ends first (the round's lease).
   */
  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T | undefined>;
  /**
   * A send of this lane ended (call it from inside the task, while the slot is
   * held): its latency, and whether the target failed it in a way that asks
   * for less (throttled, 5xx, timeout). The target's adaptive limit learns from it.
   */
  observe(latencyMs: number, failed: boolean): void;
  /**
   * The round is done with the target: the process gives its slots back with
   * its last round. Resolves once they are back; callers need not wait (a
   * later claim of the process waits for it).
   */
  leave(): Promise<void>;
}

/** Slots per target, shared by every round of one process. */
export interface SendSlots {
  /**
   * The round starts sending to `target`: tops up this process's slots and
   * returns the lane. `limit` lowers the target's limit (never raises it).
   */
  enter(target: string, limit?: number): Promise<Lane>;
  /** Sends in flight at once per target, across all holders: the ceiling of every adaptive limit. */
  readonly limit: number;
  /** What `target`'s adaptive limit allows in this process now (the ceiling before its first send). */
  adaptiveLimit(target: string): number;
  /**
   * What a round can use: the widest of this process's targets' adaptive
   * limits, each no more than the slots Redis last granted it there (other
   * processes hold the rest); the ceiling before any.
   */
  readonly widestLimit: number;
  /** Observes one send's latency (ms): the basis of {@linkcode SendSlots.typicalLatencyMs}. */
  observe(latencyMs: number): void;
  /** A moving average of recent send latencies, undefined before the first send. */
  readonly typicalLatencyMs: number | undefined;
}

/** Options for {@linkcode createSendSlots}. */
export interface SendSlotsOptions {
  /** Sends in flight at once per target, across every process sharing `redis`. @default 512 */
  limit?: number;
  /** Where a target's adaptive limit starts (slow start doubles it per round trip). @default 16 */
  initialLimit?: number;
  /** Where processes share the limit; without it the limit is this process's alone. */
  redis?: ScriptRedis;
  /**
   * How long a holder's slots outlive its last renewal: how soon a dead
   * process's slots are free. A live holder renews every third of it. @default 6_000
   */
  holdMs?: number;
  /** @default "herald:slots:" */
  prefix?: string;
  /** After Redis failed, how long this process keeps the limit to itself before asking again. @default 5_000 */
  redisRecheckMs?: number;
  now?: () => number;
  /** Redis failed (error): this process keeps the limit to itself until it answers (undefined). */
  onDegraded?: (error: Error | undefined) => void;
}

/**
 * Creates a process's send slots.
 *
 * One piece: the returned methods share this closure's per-target lanes and Redis state; splitting would pass that state around.
 *
 * @throws {RangeError} when `limit` or `holdMs` is not a positive integer
 * @example
 * ```ts
 * const slots = createSendSlots({ limit: 64, redis });
 * const lane = await slots.enter("fcm:my-project");
 * try {
 *   await lane.run(() => send(delivery));
 * } finally {
 *   await lane.leave();
 * }
 * ```
 */
export function createSendSlots(options: SendSlotsOptions = {}): SendSlots {
  const limit = _positive("limit", options.limit ?? 512);
  const initialLimit = _positive("initialLimit", options.initialLimit ?? 16);
  const holdMs = _positive("holdMs", options.holdMs ?? 6_000);
  const prefix = options.prefix ?? "herald:slots:";
  const now = options.now ?? Date.now;
  const holder = crypto.randomUUID();
  const targets = new Map<string, _Target>();
  // Learned per target and kept when its rounds end: the next round starts where the last left off.
  const adaptive = new Map<string, AdaptiveLimit>();
  // The slots last granted per target: a process sizes its claims by its share, not the
  // whole limit (8 dispatchers each claiming for all of it released most of every claim).
  const granted = new Map<string, number>();
  const adaptiveFor = (target: string, cap: number) => {
    let learned = adaptive.get(target);
    if (!learned || learned.ceiling !== cap) {
      // Webhook endpoints are many: forget them all rather than grow without bound.
      if (adaptive.size >= MAX_LEARNED_TARGETS) {
        adaptive.clear();
        granted.clear();
      }
      learned = new AdaptiveLimit({ ceiling: cap, initial: Math.min(cap, initialLimit) });
      adaptive.set(target, learned);
    }
    return learned;
  };
  // A target's claims run one after another, so a late "give back" cannot undo a newer claim.
  const claims = new Map<string, Promise<unknown>>();
  let typicalLatencyMs: number | undefined;
  let degraded = false;
  let skipRedisUntil = 0;

  /** Asks Redis for `wanted` slots in all; without Redis (or while it fails) grants them. */
  const claim = (target: string, wanted: number, cap = limit): Promise<number> => {
    const claimed = (claims.get(target) ?? Promise.resolve()).then(() =>
      _claim(target, wanted, cap)
    );
    const settled = claimed.catch(() => {});
    claims.set(target, settled);
    settled.then(() => {
      if (claims.get(target) === settled) claims.delete(target);
    });
    return claimed;
  };
  const _claim = async (target: string, wanted: number, cap: number): Promise<number> => {
    if (!options.redis || now() < skipRedisUntil) return wanted;
    try {
      const granted = Number(
        await runScript(options.redis, SEND_SLOTS, [`${prefix}{${target}}`], [
          now(),
          cap,
          wanted,
          holdMs,
          holder,
        ]),
      );
      if (degraded) {
        degraded = false;
        options.onDegraded?.(undefined);
      }
      return granted;
    } catch (error) {
      skipRedisUntil = now() + (options.redisRecheckMs ?? 5_000);
      if (!degraded) {
        degraded = true;
        options.onDegraded?.(error as Error);
      }
      return wanted;
    }
  };

  // Renews (and tops up) the slots of every target a round is using, while there is one.
  let renewing: ReturnType<typeof setInterval> | undefined;
  const renew = () => {
    for (const [target, state] of targets) {
      claim(target, state.cap, state.cap).then((slots) => {
        if (targets.get(target) !== state) return;
        state.setCapacity(slots);
        granted.set(target, slots);
      }, () => {});
    }
  };
  const keepRenewing = (on: boolean) => {
    if (on && !renewing && options.redis) renewing = setInterval(renew, Math.ceil(holdMs / 3));
    if (!on && renewing) {
      clearInterval(renewing);
      renewing = undefined;
    }
  };

  return {
    limit,
    adaptiveLimit: (target) => adaptive.get(target)?.limit ?? limit,
    get widestLimit() {
      if (adaptive.size === 0) return limit;
      let widest = 0;
      for (const [target, learned] of adaptive) {
        widest = Math.max(widest, Math.min(learned.limit, granted.get(target) ?? learned.limit));
      }
      return widest;
    },
    get typicalLatencyMs() {
      return typicalLatencyMs;
    },
    observe(latencyMs) {
      typicalLatencyMs = typicalLatencyMs === undefined
        ? latencyMs
        : 0.8 * typicalLatencyMs + 0.2 * latencyMs;
    },
    async enter(target, lower) {
      const cap = Math.min(limit, lower ?? limit);
      let state = targets.get(target);
      if (!state) {
        state = new _Target(adaptiveFor(target, cap));
        targets.set(target, state);
        keepRenewing(true);
      }
      state.rounds++;
      state.cap = cap;
      // Every round tops the process's slots up.
      const slots = await claim(target, cap, cap);
      state.setCapacity(slots);
      granted.set(target, slots);
      const entered = state;
      let left = false;
      return {
        // With no slot yet, its share comes with a renewal (every holdMs / 3), and a
        // vanished holder's slots within holdMs.
        run: (task, signal) => entered.run(task, signal, holdMs),
        observe: (latencyMs, failed) => entered.observe(latencyMs, failed),
        async leave() {
          if (left) return;
          left = true;
          if (--entered.rounds > 0) return;
          targets.delete(target);
          if (targets.size === 0) keepRenewing(false);
          await claim(target, 0, cap);
        },
      };
    },
  };
}

/** Targets whose adaptive limits a process remembers at most. */
const MAX_LEARNED_TARGETS = 10_000;

/**
 * One target's slots in this process: how many it holds, how many of those
 * its adaptive limit lets it use, and the sends waiting for one.
 */
class _Target {
  rounds = 0;
  /** The limit the latest round asked for. */
  cap = 0;
  capacity = 0;
  #active = 0;
  #waiting: (() => void)[] = [];
  /** Stops the time limits of sends that came while this process held no slot. */
  #untilSlots = new Set<() => void>();

  constructor(private adaptive: AdaptiveLimit) {}

  get #usable() {
    return Math.min(this.capacity, this.adaptive.limit);
  }

  setCapacity(capacity: number) {
    this.capacity = capacity;
    if (capacity > 0) {
      for (const stop of this.#untilSlots) stop();
      this.#untilSlots.clear();
    }
    this.#admitWaiting();
  }

  observe(latencyMs: number, failed: boolean) {
    this.adaptive.observe(latencyMs, failed, this.#active);
    this.#admitWaiting();
  }

  #admitWaiting() {
    while (this.#active < this.#usable && this.#waiting.length > 0) {
      this.#active++;
      this.#waiting.shift()!();
    }
  }

  /** Runs `task` in a slot; with none held yet, waits at most `slotlessWaitMs` (or `signal`) for one. */
  async run<T>(
    task: () => Promise<T>,
    signal: AbortSignal | undefined,
    slotlessWaitMs: number,
  ): Promise<T | undefined> {
    // A finishing task hands its slot straight to the next waiter, unless the limit shrank.
    if (this.#active < this.#usable) this.#active++;
    else if (this.capacity > 0) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    // Bounded only here: a listener per queued send made every round's queue quadratic.
    else if (!await this.#slotless(signal, slotlessWaitMs)) return undefined;
    try {
      return await task();
    } finally {
      const next = this.#active <= this.#usable ? this.#waiting.shift() : undefined;
      if (next) next();
      else this.#active--;
    }
  }

  /** Waits for this process's first slots; false when `signal` or `maxWaitMs` ends the wait first. */
  #slotless(signal: AbortSignal | undefined, maxWaitMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve(false);
      const stopTimer = () => clearTimeout(timer);
      const settle = (admitted: boolean) => {
        stopTimer();
        this.#untilSlots.delete(stopTimer);
        signal?.removeEventListener("abort", giveUp);
        resolve(admitted);
      };
      const admit = () => settle(true);
      const giveUp = () => {
        const at = this.#waiting.indexOf(admit);
        if (at >= 0) this.#waiting.splice(at, 1);
        settle(false);
      };
      signal?.addEventListener("abort", giveUp, { once: true });
      const timer = setTimeout(giveUp, maxWaitMs);
      // Once slots come, it waits in line like any send.
      this.#untilSlots.add(stopTimer);
      this.#waiting.push(admit);
    });
  }
}

function _positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot create send slots: '${name}' must be a positive integer, got ${value}`,
    );
  }
  return value;
}
