import { loadConfig } from "../_shared/config.ts";
import { createSql } from "../_shared/db/sessions.ts";
import { consoleLogger } from "../_shared/log.ts";
import { privateKeyProblem } from "../_shared/providers/google_access_token.ts";
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
  keys: [...config.serviceKeys, ...(config.dispatchKey ? [config.dispatchKey] : [])],
  publicKeys: config.publicKeys,
  breaker: { windowMs: config.breaker.windowMs },
  configurationProblems: () => fcmProblems ??= _fcmProblems(),
  build: config.build,
  log: consoleLogger,
});

Deno.serve(app.fetch);

/** What is wrong with the FCM configuration; the key is imported once, on the first readiness check. */
let fcmProblems: Promise<string[]> | undefined;
async function _fcmProblems(): Promise<string[]> {
  const account = config.fcm?.serviceAccount;
  const keyProblem = account ? await privateKeyProblem(account) : undefined;
  return [...config.problems, ...(keyProblem ? [keyProblem] : [])];
}
