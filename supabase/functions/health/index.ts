import { loadConfig } from "../_shared/config.ts";
import { createSql } from "../_shared/db/sessions.ts";
import { consoleLogger } from "../_shared/log.ts";
import { createRedis } from "../_shared/redis/client.ts";
import { createApp } from "./app.ts";

const config = loadConfig(Deno.env.toObject());
const app = createApp({
  // Two connections: `select 1` and the queue query run side by side.
  sql: createSql({
    url: config.dbUrl,
    max: 2,
    applicationName: "herald-health",
    statementTimeoutMs: config.dbStatementTimeoutMs,
  }),
  redis: config.redis && createRedis({ ...config.redis, timeoutMs: 1_500 }),
  keys: [config.serviceRoleKey, ...(config.dispatchKey ? [config.dispatchKey] : [])],
  breaker: { windowMs: config.breaker.windowMs },
  log: consoleLogger,
});

Deno.serve(app.fetch);
