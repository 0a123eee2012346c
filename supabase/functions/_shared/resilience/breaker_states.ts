/**
 * Reads the shared circuit breakers' state for readiness: which targets are
 * closed, open or half-open, and how many recent failures each has. Read-only;
 * it follows the key layout of `createBreaker` in `breaker.ts` and its Lua
 * scripts (a hash `<prefix>{<target>}` with `open_until`/`probe_until`, a
 * hash `<prefix>{<target>}:failures` of per-bucket call and failure counts,
 * ten buckets to the window).
 *
 * Targets are found with SCAN, whose cost grows with the whole keyspace, not
 * with the number of breakers: callers bound it with a timeout.
 *
 * @module
 */
import type { Redis } from "@upstash/redis";
import { BREAKER_KEY_PREFIX } from "./breaker.ts";

/** One target's breaker as readiness reports it. */
export interface BreakerReport {
  target: string;
  /** `half-open`: the cool-down is over; the next caller probes (or one is probing). */
  state: "closed" | "open" | "half-open";
  /** When the cool-down ends (epoch ms), for open and half-open breakers. */
  openUntil?: number;
  /** Until when a won probe blocks other probes (epoch ms), while one is in flight. */
  probeUntil?: number;
  /** Failures within the window (reset when the breaker opens). */
  recentFailures: number;
  /** Calls within the window, failed or not (reset when the breaker opens). */
  recentCalls: number;
}

/** Options for {@linkcode readBreakerStates}. */
export interface BreakerStatesOptions {
  /** Redis key prefix, as given to `createBreaker`. @default BREAKER_KEY_PREFIX */
  prefix?: string;
  /** The breakers' failure window, ms. @default 60_000 */
  windowMs?: number;
  /** At most this many targets are read; beyond it `truncated` is true. @default 100 */
  limit?: number;
  now?: () => number;
}

/** The commands {@linkcode readBreakerStates} needs. */
export type BreakerStatesRedis = Pick<Redis, "scan" | "pipeline">;

/**
 * Lists every target with breaker state in Redis, sorted by target. Targets
 * without a key are closed with no recent failures and are not listed.
 *
 * @returns the targets read, and whether more exist than `limit`
 * @example
 * ```ts
 * const { breakers } = await readBreakerStates(redis, { windowMs: config.breaker.windowMs });
 * const open = breakers.filter((b) => b.state !== "closed");
 * ```
 */
export async function readBreakerStates(
  redis: BreakerStatesRedis,
  options: BreakerStatesOptions = {},
): Promise<{ breakers: BreakerReport[]; truncated: boolean }> {
  const prefix = options.prefix ?? BREAKER_KEY_PREFIX;
  const windowMs = options.windowMs ?? 60_000;
  const limit = options.limit ?? 100;
  const targets = new Set<string>();
  let truncated = false;
  let cursor = "0";
  // SCAN may return a key twice and in any order; the set takes care of both.
  do {
    const [next, keys] = await redis.scan(cursor, {
      match: `${_globEscape(prefix)}*`,
      count: 1_000,
    });
    cursor = String(next);
    for (const key of keys) {
      const target = _targetOf(key.slice(prefix.length));
      if (target === undefined) continue;
      if (targets.size < limit) targets.add(target);
      else if (!targets.has(target)) truncated = true;
    }
  } while (cursor !== "0" && !truncated);
  if (targets.size === 0) return { breakers: [], truncated };

  const sorted = [...targets].sort();
  const now = (options.now ?? Date.now)();
  // One round trip for all targets: an HMGET and an HGETALL each.
  const pipeline = redis.pipeline();
  for (const target of sorted) {
    pipeline.hmget(`${prefix}{${target}}`, "open_until", "probe_until");
    pipeline.hgetall(`${prefix}{${target}}:failures`);
  }
  const replies = await pipeline.exec<unknown[]>();
  const span = Math.max(1, Math.floor(windowMs / 10));
  const oldest = Math.floor(now / span) - 9;
  const breakers = sorted.map((target, i) => {
    const hash = replies[2 * i] as Record<string, unknown> | null;
    const openUntil = _epoch(hash?.open_until);
    const probeUntil = _epoch(hash?.probe_until);
    const recent = { recentFailures: 0, recentCalls: 0 };
    for (const [field, count] of Object.entries(replies[2 * i + 1] ?? {})) {
      const [kind, bucket] = field.split(":");
      if (Number(bucket) < oldest) continue;
      if (kind === "f") recent.recentFailures += Number(count);
      if (kind === "c") recent.recentCalls += Number(count);
    }
    if (openUntil === undefined) return { target, state: "closed" as const, ...recent };
    return {
      target,
      state: now < openUntil ? "open" as const : "half-open" as const,
      openUntil,
      ...(probeUntil !== undefined && probeUntil > now ? { probeUntil } : {}),
      ...recent,
    };
  });
  return { breakers, truncated };
}

/** The target of a breaker key without its prefix: `{t}` or `{t}:failures`. */
function _targetOf(rest: string): string | undefined {
  return rest.match(/^\{(.+)\}(?::failures)?$/)?.[1];
}

function _epoch(value: unknown): number | undefined {
  if (value === null || value === undefined || value === "") return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

/** Escapes SCAN MATCH's glob characters so a prefix matches only itself. */
function _globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, "\\$&");
}
