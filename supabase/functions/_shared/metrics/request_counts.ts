/**
 * Request counts and durations of the public API, shared by every isolate in
 * one Redis hash: an isolate's own counters would reset when it is recycled
 * and split across its siblings. An isolate gathers its counts for a second
 * and writes them in one pipeline; counts are lost from the metrics, never
 * from the API, only when an isolate dies with some unwritten.
 *
 * Fields are `<route>|<instance>|<what>`: `c2xx`…`c5xx` counts, `b<i>` the
 * duration bucket `i` of {@linkcode REQUEST_BUCKETS} (not cumulative; past
 * the last bound: +Inf), `sum` seconds, and `limited` (answered 429).
 *
 * @module
 */
import type { Redis } from "@upstash/redis";
import { REQUEST_BUCKETS } from "./catalogue.ts";

/** The hash every isolate counts into. */
export const REQUESTS_KEY = "herald:metrics:requests";

/**
 * Breaker openings: fields `<kind>|<deployment>` (`fcm|canary`), so the
 * deploy gate can tell a canary that opened one. A field without `|` was
 * written before deployments were counted, by stable.
 */
export const BREAKER_OPENINGS_KEY = "herald:metrics:breaker_openings";

/** One route's counts, as {@linkcode readRequestCounts} returns them. */
export interface RouteCounts {
  route: string;
  instance: string;
  byClass: Record<string, number>;
  /** Non-cumulative bucket counts, `REQUEST_BUCKETS.length + 1` of them. */
  buckets: number[];
  sum: number;
  limited: number;
}

/** One answered request, as {@linkcode createRequestCounter} counts it. */
export interface AnsweredRequest {
  route: string;
  instance: string;
  status: number;
  seconds: number;
}

/** Options for {@linkcode createRequestCounter}. */
export interface RequestCounterOptions {
  /** How long counts gather in the isolate before one write takes them all. @default 1_000 */
  flushMs?: number;
  /** Keeps a pending write alive after the response (EdgeRuntime.waitUntil). */
  waitUntil?: (work: Promise<unknown>) => void;
}

/**
 * Counts answered requests into {@linkcode REQUESTS_KEY}. Counts gather for
 * up to `flushMs` and go to Redis in one pipelined write (one per request
 * cost the API a fifth of its throughput); a write Redis refuses is kept
 * and retried with the next, so only an isolate that dies with counts
 * unwritten loses them — at most `flushMs` worth.
 *
 * @example
 * ```ts
 * const count = createRequestCounter(redis, { waitUntil: (p) => EdgeRuntime.waitUntil(p) });
 * count({ route: "notify", instance: "stable", status: 201, seconds: 0.04 });
 * ```
 */
export function createRequestCounter(
  redis: Pick<Redis, "pipeline">,
  options: RequestCounterOptions = {},
): ((answered: AnsweredRequest) => void) & { flush(): Promise<void> } {
  const flushMs = options.flushMs ?? 1_000;
  let counts = new Map<string, number>();
  let sums = new Map<string, number>();
  let scheduled: Promise<void> | undefined;
  let writeNow = () => {};

  const flush = async () => {
    if (counts.size === 0 && sums.size === 0) return;
    const [taken, takenSums] = [counts, sums];
    counts = new Map();
    sums = new Map();
    const pipe = redis.pipeline();
    for (const [field, n] of taken) pipe.hincrby(REQUESTS_KEY, field, n);
    for (const [field, seconds] of takenSums) pipe.hincrbyfloat(REQUESTS_KEY, field, seconds);
    try {
      await pipe.exec();
    } catch {
      // Redis is away: keep them for the next write.
      for (const [field, n] of taken) counts.set(field, (counts.get(field) ?? 0) + n);
      for (const [field, s] of takenSums) sums.set(field, (sums.get(field) ?? 0) + s);
    }
  };

  const count = (at: AnsweredRequest) => {
    const field = `${at.route}|${at.instance}|`;
    const bucket = REQUEST_BUCKETS.findIndex((bound) => at.seconds <= bound);
    const add = (name: string) => counts.set(field + name, (counts.get(field + name) ?? 0) + 1);
    add(`c${Math.floor(at.status / 100)}xx`);
    add(`b${bucket === -1 ? REQUEST_BUCKETS.length : bucket}`);
    if (at.status === 429) add("limited");
    sums.set(`${field}sum`, (sums.get(`${field}sum`) ?? 0) + at.seconds);
    if (!scheduled) {
      scheduled = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, flushMs);
        writeNow = () => {
          clearTimeout(timer);
          resolve();
        };
      }).then(flush).finally(() => (scheduled = undefined));
      options.waitUntil?.(scheduled);
    }
  };
  /** Writes what has gathered now rather than when the timer fires. */
  const flushNow = () => {
    if (!scheduled) return flush();
    writeNow();
    return scheduled;
  };
  return Object.assign(count, { flush: flushNow });
}

/** Reads every route's counts. */
export async function readRequestCounts(redis: Pick<Redis, "hgetall">): Promise<RouteCounts[]> {
  const hash = (await redis.hgetall<Record<string, string | number>>(REQUESTS_KEY)) ?? {};
  const routes = new Map<string, RouteCounts>();
  for (const [key, raw] of Object.entries(hash)) {
    const [route, instance, what] = key.split("|");
    if (what === undefined || !/^[a-z_]{1,32}$/.test(route)) continue;
    const id = `${route}|${instance}`;
    let counts = routes.get(id);
    if (!counts) {
      counts = {
        route,
        instance,
        byClass: {},
        buckets: new Array(REQUEST_BUCKETS.length + 1).fill(0),
        sum: 0,
        limited: 0,
      };
      routes.set(id, counts);
    }
    const value = Number(raw);
    if (!Number.isFinite(value)) continue;
    if (/^c[1-5]xx$/.test(what)) counts.byClass[what.slice(1)] = value;
    else if (what === "sum") counts.sum = value;
    else if (what === "limited") counts.limited = value;
    else if (/^b\d+$/.test(what) && Number(what.slice(1)) <= REQUEST_BUCKETS.length) {
      counts.buckets[Number(what.slice(1))] = value;
    }
  }
  return [...routes.values()].sort((a, b) =>
    (a.route + a.instance).localeCompare(b.route + b.instance)
  );
}

/** Counts a breaker opening under its target's kind (`fcm:<project>` → `fcm`) and the deployment that saw it open. */
export function countBreakerOpening(
  redis: Pick<Redis, "hincrby">,
  target: string,
  deployment: string,
): Promise<void> {
  return redis.hincrby(BREAKER_OPENINGS_KEY, `${breakerKind(target)}|${deployment}`, 1)
    .then(() => {}, () => {});
}

/** Openings by kind and deployment, from the hash's fields. */
export function parseBreakerOpenings(
  hash: Record<string, string | number> | null,
): { kind: string; deployment: string; n: number }[] {
  const out = new Map<string, { kind: string; deployment: string; n: number }>();
  for (const [field, raw] of Object.entries(hash ?? {})) {
    const [kind, deployment = "stable"] = field.split("|");
    const n = Number(raw);
    if (!/^[a-z]{1,16}$/.test(kind) || !/^[a-z0-9][a-z0-9_-]{0,31}$/.test(deployment)) continue;
    if (!Number.isFinite(n)) continue;
    const key = `${kind}|${deployment}`;
    const seen = out.get(key);
    if (seen) seen.n += n;
    else out.set(key, { kind, deployment, n });
  }
  return [...out.values()];
}

/** A breaker target's kind: what comes before the first colon. */
export function breakerKind(target: string): string {
  const kind = target.split(":")[0];
  return /^[a-z]{1,16}$/.test(kind) ? kind : "other";
}
