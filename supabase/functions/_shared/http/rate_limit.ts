/**
 * Per-user and per-service-key request limits inside the functions: a
 * sliding one-minute window in Redis (Upstash Ratelimit), announced with the
 * IETF draft `RateLimit-*` headers on every response.
 *
 * Kong limits by client address in front (docs/DESIGN.md, "Rate limits");
 * only the function knows which user a token belongs to, so the per-user
 * budget lives here. It survives a Redis outage: while Redis is unreachable,
 * slow (over `timeoutMs`) or not configured, each instance enforces the same
 * limits in its own memory (so N instances allow up to N times the budget),
 * asks Redis again only every `recheckMs` (no request waits on a dead Redis),
 * and logs the change once.
 *
 * @module
 */
import { Ratelimit } from "@upstash/ratelimit";
import type { Redis } from "@upstash/redis";
import type { MiddlewareHandler } from "hono";
import type { Caller } from "../auth/caller.ts";
import { callerScope } from "../auth/caller_scope.ts";
import type { Logger } from "../log.ts";
import type { AppEnv } from "./app.ts";
import { Problem } from "./problem.ts";

/** Length of the sliding window, in seconds. */
const WINDOW_SECONDS = 60;

/** Options for {@linkcode createRateLimit}. */
export interface RateLimitOptions {
  /** The shared store; without it each instance limits in memory. */
  redis?: Redis;
  /** Requests each user may make per sliding minute. */
  userPerMinute: number;
  /** Requests each service key may make per sliding minute. */
  servicePerMinute: number;
  /** Prefix of every Redis key the limiter writes. @default "herald:ratelimit" */
  prefix?: string;
  /** How long to wait for Redis before limiting in memory instead. @default 250 */
  timeoutMs?: number;
  /** While Redis fails, how often one request tries it again. @default 5_000 */
  recheckMs?: number;
  log: Logger;
  now?: () => number;
}

type LimitResult = Awaited<ReturnType<Ratelimit["limit"]>>;

/**
 * Creates the rate-limit middleware. Mount it after `authenticate`: it reads
 * `c.get("caller")` and counts users by id (`user:<id>`) and services by the
 * configured key they presented (`key:<first 16 hex digits of its SHA-256>`;
 * the key itself is never stored or logged), so no header sent beside a
 * credential opens a new budget.
 *
 * Over the limit it throws a 429 `rate-limited` problem with `Retry-After`.
 *
 * One piece: the middleware and the Redis-down fallback share this closure's local windows and the degraded flag.
 *
 * @throws {RangeError} when a limit is not a positive integer
 * @example
 * ```ts
 * app.use(authenticate(resolveCaller));
 * app.use(createRateLimit({
 *   redis: createRedis(config.redis),
 *   userPerMinute: 600,
 *   servicePerMinute: 60_000,
 *   log: consoleLogger,
 * }));
 * ```
 */
export function createRateLimit(options: RateLimitOptions): MiddlewareHandler<AppEnv> {
  const perMinute = {
    user: _positive("userPerMinute", options.userPerMinute),
    service: _positive("servicePerMinute", options.servicePerMinute),
  };
  const timeoutMs = _positive("timeoutMs", options.timeoutMs ?? 250);
  const recheckMs = _positive("recheckMs", options.recheckMs ?? 5_000);
  const { redis, log } = options;
  const now = options.now ?? Date.now;
  const memory = new _MemoryWindows(WINDOW_SECONDS * 1_000);

  const prefix = options.prefix ?? "herald:ratelimit";
  const limiter = (tokens: number) =>
    redis && new Ratelimit({
      redis,
      limiter: Ratelimit.slidingWindow(tokens, `${WINDOW_SECONDS} s`),
      prefix,
      timeout: timeoutMs,
      // Analytics would cost extra Redis writes on every request and leave work in `pending`.
      analytics: false,
      // Blocks an exhausted identity in this isolate until its window resets, without asking Redis.
      ephemeralCache: new Map(),
      enableTelemetry: false,
    });
  const limiters = { user: limiter(perMinute.user), service: limiter(perMinute.service) };
  // Until when Redis is not asked (after a failure); 0 while it answers.
  let skipRedisUntil = 0;

  return async (c, next) => {
    const caller: Caller | undefined = c.get("caller");
    if (!caller) throw new Error("createRateLimit() must run after authenticate()");
    const requestId = c.get("requestId");
    const identity = callerScope(caller);
    const limit = perMinute[caller.kind];

    let result: Pick<LimitResult, "success" | "remaining" | "reset"> | undefined;
    const shared = limiters[caller.kind];
    if (shared && now() >= skipRedisUntil) {
      let failure: string | undefined;
      try {
        const answer = await shared.limit(identity);
        // On timeout the library answers `success: true, reason: "timeout"`.
        if (answer.reason === "timeout") failure = `Redis did not answer within ${timeoutMs} ms`;
        else result = answer;
        // A `cacheBlock` never reached Redis, so it says nothing about whether Redis is back.
        if (!failure && skipRedisUntil > 0 && answer.reason !== "cacheBlock") {
          skipRedisUntil = 0;
          log("info", "rate limiting recovered: Redis answers again", { request_id: requestId });
        }
      } catch (error) {
        failure = (error as Error).message;
      }
      if (failure !== undefined) {
        if (skipRedisUntil === 0) {
          log(
            "warn",
            "rate limiting degraded: each instance limits in memory until Redis answers",
            {
              request_id: requestId,
              error: failure,
            },
          );
        }
        skipRedisUntil = now() + recheckMs;
      }
    }
    result ??= memory.limit(`${caller.kind}:${identity}`, limit, now());

    const resetSeconds = Math.max(0, Math.ceil((result.reset - now()) / 1000));
    const headers = (remaining: number, reset: number) => ({
      "RateLimit-Limit": String(limit),
      "RateLimit-Remaining": String(remaining),
      "RateLimit-Reset": String(reset),
      "RateLimit-Policy": `${limit};w=${WINDOW_SECONDS}`,
    });

    if (!result.success) {
      // The library's `reset` is the end of the current fixed window: by then a
      // slot is certainly free (the sliding estimate may free one earlier).
      const retryAfter = Math.max(1, resetSeconds);
      const who = caller.kind === "user" ? "this user" : "this service key";
      throw new Problem(
        429,
        "rate-limited",
        `Rate limit exceeded: ${who} may make ${limit} requests per ${WINDOW_SECONDS} s ` +
          `(sliding window). Retry after ${retryAfter} s.`,
        [],
        { "Retry-After": String(retryAfter), ...headers(0, retryAfter) },
      );
    }
    await next();
    for (const [name, value] of Object.entries(headers(result.remaining, resetSeconds))) {
      c.res.headers.set(name, value);
    }
  };
}

/**
 * The same sliding window in process memory: the previous fixed window's
 * count weighted by how much of it the sliding window still covers, plus the
 * current one's (as Upstash's `slidingWindow` estimates).
 */
class _MemoryWindows {
  #counts = new Map<string, { window: number; current: number; previous: number }>();

  constructor(private windowMs: number) {}

  limit(key: string, limit: number, now: number) {
    const window = Math.floor(now / this.windowMs);
    let entry = this.#counts.get(key);
    if (!entry || entry.window < window - 1) entry = { window, current: 0, previous: 0 };
    else if (entry.window === window - 1) {
      entry = { window, current: 0, previous: entry.current };
    }
    this.#counts.set(key, entry);
    if (this.#counts.size > 100_000) this.#prune(window);
    const covered = 1 - (now % this.windowMs) / this.windowMs;
    const used = Math.floor(entry.previous * covered) + entry.current;
    const reset = (window + 1) * this.windowMs;
    if (used >= limit) return { success: false, remaining: 0, reset };
    entry.current++;
    return { success: true, remaining: Math.max(0, limit - used - 1), reset };
  }

  #prune(window: number) {
    for (const [key, entry] of this.#counts) {
      if (entry.window < window - 1) this.#counts.delete(key);
    }
  }
}

function _positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot create rate limit: '${name}' must be a positive integer, got ${value}`,
    );
  }
  return value;
}
