/**
 * Per-user and per-service-key request limits inside the functions: a
 * sliding one-minute window in Redis (Upstash Ratelimit), announced with the
 * IETF draft `RateLimit-*` headers on every response.
 *
 * Kong limits by consumer and address in front; only the function knows which
 * user a token belongs to, so the per-user budget lives here. It fails open:
 * while Redis is unreachable or slow, requests pass unlimited (Kong's limits
 * still apply) and the degradation is logged once, not once per request.
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
  /** The shared store; without it nothing is limited and no `RateLimit-*` headers are sent. */
  redis?: Redis;
  /** Requests each user may make per sliding minute. */
  userPerMinute: number;
  /** Requests each service key may make per sliding minute. */
  servicePerMinute: number;
  /** Prefix of every Redis key the limiter writes. @default "herald:ratelimit" */
  prefix?: string;
  /** How long to wait for Redis before letting the request through unlimited. @default 1_000 */
  timeoutMs?: number;
  log: Logger;
}

type LimitResult = Awaited<ReturnType<Ratelimit["limit"]>>;

/**
 * Creates the rate-limit middleware. Mount it after `authenticate`: it reads
 * `c.get("caller")` and counts users by id (`user:<id>`) and services by key
 * (`key:<first 16 hex digits of SHA-256 of the bearer token>`; the token itself
 * is never stored or logged).
 *
 * Over the limit it throws a 429 `rate-limited` problem with `Retry-After`.
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
  const timeoutMs = _positive("timeoutMs", options.timeoutMs ?? 1_000);
  const { redis, log } = options;
  if (!redis) return async (_c, next) => await next();

  const prefix = options.prefix ?? "herald:ratelimit";
  const limiter = (tokens: number) =>
    new Ratelimit({
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
  let degraded = false;

  return async (c, next) => {
    const caller: Caller | undefined = c.get("caller");
    if (!caller) throw new Error("createRateLimit() must run after authenticate()");
    const requestId = c.get("requestId");
    const identity = await callerScope(caller, c.req.raw.headers);

    let result: LimitResult | undefined;
    let failure: string | undefined;
    try {
      result = await limiters[caller.kind].limit(identity);
      // On timeout the library answers `success: true, reason: "timeout"`.
      if (result.reason === "timeout") failure = `Redis did not answer within ${timeoutMs} ms`;
    } catch (error) {
      failure = (error as Error).message;
    }
    if (failure !== undefined || result === undefined) {
      if (!degraded) {
        degraded = true;
        log("warn", "rate limiting degraded: requests pass unlimited until Redis answers", {
          request_id: requestId,
          error: failure,
        });
      }
      return await next();
    }
    // A `cacheBlock` never reached Redis, so it says nothing about whether Redis is back.
    if (degraded && result.reason !== "cacheBlock") {
      degraded = false;
      log("info", "rate limiting recovered: Redis answers again", { request_id: requestId });
    }

    const limit = perMinute[caller.kind];
    const resetSeconds = Math.max(0, Math.ceil((result.reset - Date.now()) / 1000));
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

function _positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(
      `Cannot create rate limit: '${name}' must be a positive integer, got ${value}`,
    );
  }
  return value;
}
