import { createCallerResolver } from "../_shared/auth/caller.ts";
import { createJwtVerifier } from "../_shared/auth/jwt.ts";
import { loadConfig } from "../_shared/config.ts";
import { createSql } from "../_shared/db/sessions.ts";
import { createDispatcherDeps } from "../_shared/dispatch/dispatcher_deps.ts";
import { createRateLimit } from "../_shared/http/rate_limit.ts";
import { consoleLogger } from "../_shared/log.ts";
import { createRedis } from "../_shared/redis/client.ts";
import { createRequestCounter } from "../_shared/metrics/request_counts.ts";
import { createResultWriter } from "../_shared/outbox/result_writer.ts";
import { createApp } from "./app.ts";

const config = loadConfig(Deno.env.toObject());
const sql = createSql({
  url: config.dbUrl,
  max: config.dbPoolSize,
  applicationName: "herald-notify",
  statementTimeoutMs: config.dbStatementTimeoutMs,
});
const redis = config.redis && createRedis(config.redis);
const edge = (globalThis as { EdgeRuntime?: { waitUntil(work: Promise<unknown>): void } })
  .EdgeRuntime;

const requestCounter = redis &&
  createRequestCounter(redis, { waitUntil: edge ? (work) => edge.waitUntil(work) : undefined });

const app = createApp({
  sql,
  resolveCaller: createCallerResolver({
    verify: createJwtVerifier({ secret: config.jwtSecret, jwksUrl: config.jwksUrl }),
    serviceKeys: config.serviceKeys,
    publicKeys: config.publicKeys,
  }),
  log: consoleLogger,
  // The inline first attempt (at most HERALD_INLINE_MAX_DELIVERIES sends per
  // request, the request itself rate-limited) takes no shared send slots:
  // asking Redis for them twice per notify halved notify's throughput.
  dispatcher: config.inline.maxDeliveries > 0
    ? {
      ...createDispatcherDeps(config, sql, consoleLogger),
      slots: undefined,
      // Each request writes back a delivery or two: batched with the others
      // answered at the same time, one statement serves many requests.
      writeResults: createResultWriter(sql),
    }
    : undefined,
  inline: config.inline,
  rateLimit: createRateLimit({
    redis,
    userPerMinute: config.rateLimit.userPerMinute,
    servicePerMinute: config.rateLimit.servicePerMinute,
    log: consoleLogger,
  }),
  waitUntil: edge ? (work) => edge.waitUntil(work) : undefined,
  webhookAllowHosts: config.webhooks.allowHosts,
  instance: config.build.instance,
  countRequest: requestCounter &&
    ((route, status, seconds) =>
      requestCounter({ route, instance: config.build.instance, status, seconds })),
});

Deno.serve(app.fetch);
