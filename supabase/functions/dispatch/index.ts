import { loadConfig } from "../_shared/config.ts";
import { createSql } from "../_shared/db/sessions.ts";
import { createDispatcherDeps } from "../_shared/dispatch/dispatcher_deps.ts";
import { consoleLogger } from "../_shared/log.ts";
import { createApp } from "./app.ts";

const config = loadConfig(Deno.env.toObject());
const sql = createSql({
  url: config.dbUrl,
  max: config.dbPoolSize,
  applicationName: "herald-dispatch",
  statementTimeoutMs: config.dbStatementTimeoutMs,
});
const app = createApp({
  dispatcher: createDispatcherDeps(config, sql, consoleLogger),
  keys: [...config.serviceKeys, ...(config.dispatchKey ? [config.dispatchKey] : [])],
  publicKeys: config.publicKeys,
  log: consoleLogger,
});

Deno.serve(app.fetch);
