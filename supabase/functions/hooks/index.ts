import { loadConfig } from "../_shared/config.ts";
import { createSql } from "../_shared/db/sessions.ts";
import { consoleLogger } from "../_shared/log.ts";
import { createApp } from "./app.ts";

const config = loadConfig(Deno.env.toObject());
const app = createApp({
  sql: createSql({
    url: config.dbUrl,
    max: config.dbPoolSize,
    applicationName: "herald-hooks",
    statementTimeoutMs: config.dbStatementTimeoutMs,
  }),
  secrets: config.hookSecrets,
  instance: config.build.instance,
  log: consoleLogger,
});

Deno.serve(app.fetch);
