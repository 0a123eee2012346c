/**
 * Request counts and durations of the public API, shared by every isolate in
 * one Redis hash: an isolate's own counters would reset when it is recycled
 * and split across its siblings. One pipelined HINCRBY per request, sent after
 * the answer; a request whose count Redis did not take is lost from the
 * metrics, never from the API (and `herald_redis_up` says why).
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

/** Breaker openings by target kind (`fcm`, `email`, `webhook`). */
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

/**
 * Counts one answered request.
 *
 * @returns the write, already guarded: it never rejects
 */
export function countRequest(
  redis: Pick<Redis, "pipeline">,
  at: { route: string; instance: string; status: number; seconds: number },
): Promise<void> {
  const field = `${at.route}|${at.instance}|`;
  const bucket = REQUEST_BUCKETS.findIndex((bound) => at.seconds <= bound);
  const pipe = redis.pipeline()
    .hincrby(REQUESTS_KEY, `${field}c${Math.floor(at.status / 100)}xx`, 1)
    .hincrby(REQUESTS_KEY, `${field}b${bucket === -1 ? REQUEST_BUCKETS.length : bucket}`, 1)
    .hincrbyfloat(REQUESTS_KEY, `${field}sum`, at.seconds);
  if (at.status === 429) pipe.hincrby(REQUESTS_KEY, `${field}limited`, 1);
  return pipe.exec().then(() => {}, () => {});
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

/** Counts a breaker opening under its target's kind (`fcm:<project>` → `fcm`). */
export function countBreakerOpening(redis: Pick<Redis, "hincrby">, target: string): Promise<void> {
  return redis.hincrby(BREAKER_OPENINGS_KEY, breakerKind(target), 1).then(() => {}, () => {});
}

/** A breaker target's kind: what comes before the first colon. */
export function breakerKind(target: string): string {
  const kind = target.split(":")[0];
  return /^[a-z]{1,16}$/.test(kind) ? kind : "other";
}
