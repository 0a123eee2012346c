/**
 * The Upstash REST client, tuned to fail fast: the breaker falls back to
 * process memory rather than waiting on an unreachable Redis.
 *
 * @module
 */
import { Redis } from "@upstash/redis";

/** Options for {@linkcode createRedis}. */
export interface RedisOptions {
  url: string;
  token: string;
  /** Per-command timeout. @default 2_000 */
  timeoutMs?: number;
}

/**
 * Creates a client.
 *
 * @example
 * ```ts
 * const redis = createRedis({ url: config.redis.url, token: config.redis.token });
 * ```
 */
export function createRedis(options: RedisOptions): Redis {
  const timeoutMs = options.timeoutMs ?? 2_000;
  return new Redis({
    url: options.url,
    token: options.token,
    retry: { retries: 1, backoff: () => 50 },
    signal: () => AbortSignal.timeout(timeoutMs),
    enableTelemetry: false,
  });
}
