/**
 * Kong's rate-limiting plugin: requests counted per period in Redis, as Kong
 * 3.9.3 does it (`kong/plugins/rate-limiting/handler.lua`, `policies/init.lua`
 * (PRIORITY 910); kong/schema/kong-3.9-behaviour.md, section 9).
 *
 * @module
 */
import { withinMs } from "../../../../supabase/functions/_shared/resilience/time_limit.ts";
import { type Exchange, type Factory, type Json, kongError } from "./plugin.ts";

export const rateLimiting: Factory = (c, context) => {
  const periods = (["second", "minute", "hour", "day", "month", "year"] as const)
    .filter((p) => typeof c[p] === "number");
  const seconds: Record<string, number> = {
    second: 1,
    minute: 60,
    hour: 3600,
    day: 86400,
    month: 2592000,
    year: 31536000,
  };
  if (c.limit_by === "path") {
    throw new Error("rate-limiting: limit_by 'path' is not implemented by the local Kong");
  }
  const local = new Map<string, number>();
  const redis = c.policy === "redis" ? context.redis(c.redis as Json) : undefined;
  // Kong's `redis.timeout` bounds each socket operation; here it bounds the whole call.
  const redisTimeout = Number((c.redis as Json | undefined)?.timeout ?? 2000);
  const identifier = (x: Exchange) => {
    switch (c.limit_by) {
      case "consumer":
        return x.consumer?.id ?? x.credential?.id ?? x.clientIp;
      case "credential":
        return x.credential?.id ?? x.clientIp;
      case "header":
        return x.request.headers.get(String(c.header_name)) ?? x.clientIp;
      default:
        return x.clientIp;
    }
  };
  return {
    async access(x) {
      const now = context.now();
      const id = identifier(x);
      const usage: { period: string; limit: number; used: number; reset: number }[] = [];
      try {
        const starts = periods.map((period) => _periodStart(period, now));
        const keys = periods.map((period, i) =>
          `ratelimit:${x.scope.route}:${x.scope.service}:${id}:${starts[i]}:${period}`
        );
        // Kong's per-period script (INCR, EXPIRE on the first hit, the usage read
        // counting this request), for every period in one round trip.
        const used = redis
          ? (await withinMs(
            redisTimeout,
            redis.eval(
              "local out = {} for i, key in ipairs(KEYS) do local n = redis.call('incr', key) " +
                "if n == 1 then redis.call('expire', key, ARGV[i]) end out[i] = n - 1 end return out",
              keys.length,
              ...keys,
              ...periods.map((p) => seconds[p]),
            ),
            () => new Error(`Redis did not answer within ${redisTimeout} ms`),
          ) as number[]).map(Number)
          : keys.map((key) => local.get(key) ?? 0);
        periods.forEach((period, i) => {
          const reset = Math.max(1, seconds[period] - Math.floor((now - starts[i]) / 1000));
          usage.push({ period, limit: c[period] as number, used: used[i], reset });
        });
      } catch (error) {
        if (c.fault_tolerant) return undefined;
        throw error;
      }
      const blocked = usage.find((u) => u.limit - u.used <= 0);
      if (!c.hide_client_headers) {
        let lowest: (typeof usage)[number] | undefined;
        for (const u of usage) {
          const remaining = blocked && blocked !== u
            ? u.limit - u.used
            : Math.max(0, u.limit - u.used - 1);
          const name = u.period[0].toUpperCase() + u.period.slice(1);
          (x.responseHeaders ??= new Headers()).set(`x-ratelimit-limit-${name}`, String(u.limit));
          (x.responseHeaders ??= new Headers()).set(
            `x-ratelimit-remaining-${name}`,
            String(remaining),
          );
          if (!lowest || remaining <= Math.max(0, lowest.limit - lowest.used - 1)) lowest = u;
        }
        if (lowest) {
          (x.responseHeaders ??= new Headers()).set("ratelimit-limit", String(lowest.limit));
          (x.responseHeaders ??= new Headers()).set(
            "ratelimit-remaining",
            String(Math.max(0, lowest.limit - lowest.used - 1)),
          );
          (x.responseHeaders ??= new Headers()).set("ratelimit-reset", String(lowest.reset));
          if (blocked) {
            (x.responseHeaders ??= new Headers()).set("retry-after", String(lowest.reset));
          }
        }
      }
      if (blocked) return kongError(x, Number(c.error_code), String(c.error_message));
      if (!redis) {
        for (const u of usage) {
          local.set(
            `ratelimit:${x.scope.route}:${x.scope.service}:${id}:${
              _periodStart(u.period, now)
            }:${u.period}`,
            u.used + 1,
          );
        }
      }
      return undefined;
    },
  };
};

/** UTC-aligned start of the period containing `now`, in ms (kong/tools/timestamp.lua). */
function _periodStart(period: string, now: number): number {
  const d = new Date(now);
  switch (period) {
    case "second":
      return Math.floor(now / 1000) * 1000;
    case "minute":
      return Math.floor(now / 60000) * 60000;
    case "hour":
      return Math.floor(now / 3600000) * 3600000;
    case "day":
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    case "month":
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    default:
      return Date.UTC(d.getUTCFullYear(), 0, 1);
  }
}
