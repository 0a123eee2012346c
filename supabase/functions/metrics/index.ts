import { loadConfig } from "../_shared/config.ts";
import { createSql } from "../_shared/db/sessions.ts";
import { consoleLogger } from "../_shared/log.ts";
import { createRedis } from "../_shared/redis/client.ts";
import { createApp } from "./app.ts";

const config = loadConfig(Deno.env.toObject());
const app = createApp({
  // Its own small pool: a scrape must not queue behind deliveries.
  sql: createSql({
    url: config.dbUrl,
    max: 2,
    applicationName: "herald-metrics",
    statementTimeoutMs: config.dbStatementTimeoutMs,
  }),
  redis: config.redis && createRedis({ ...config.redis, timeoutMs: 1_500 }),
  keys: [...config.serviceKeys, ...(config.dispatchKey ? [config.dispatchKey] : [])],
  publicKeys: config.publicKeys,
  build: config.build,
  breaker: { windowMs: config.breaker.windowMs },
  log: consoleLogger,
});

Deno.serve(app.fetch);
