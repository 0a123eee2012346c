/**
 * `npm start`: runs the whole service locally until Ctrl-C. With `--observe`
 * (`npm run observe`), Prometheus runs beside it with Herald's rules.
 *
 * @module
 */
import { loadStackConfig } from "./config.ts";
import { startStack } from "./stack.ts";
import { PROMETHEUS_ALERTS_PATH } from "./prometheus.ts";

const stack = await loadStackConfig();
console.log(`herald: starting the ${stack.name} stack in ${stack.dataDir} …`);
const observe = Deno.args.includes("--observe");
const running = await startStack(stack, { watch: true, dispatcher: true, observe });

const rows: [string, string][] = [
  ["API URL", `${stack.apiUrl}  (Kong, from kong/kong.yml)`],
  ["Inbox", `http://127.0.0.1:${stack.ports.inbox}  (every push, e-mail and webhook, as received)`],
  ["Kong metrics", `http://127.0.0.1:${stack.ports.kongStatus}/metrics`],
  ["Herald metrics", `${stack.apiUrl}/functions/v1/metrics  (service_role key as Bearer)`],
  [
    "Prometheus",
    running.prometheusUrl
      ? `${running.prometheusUrl}  (alerts: ${running.prometheusUrl}${PROMETHEUS_ALERTS_PATH})`
      : "not running (npm run observe)",
  ],
  [
    "edge runtime",
    `http://127.0.0.1:${stack.ports.edge} (stable), :${stack.ports.edgeCanary} (canary)`,
  ],
  ...running.functions.map((f): [string, string] => [
    `function ${f.name}`,
    `${stack.apiUrl}/functions/v1/${f.name}${f.verifyJwt ? "" : "  (no JWT check)"}`,
  ]),
  ["JWKS", `${stack.apiUrl}/auth/v1/.well-known/jwks.json`],
  ["DB URL", stack.dbUrl],
  ["Redis REST URL", `${stack.redisRestUrl}  (token ${stack.redisRestToken})`],
  ["Redis", `redis://127.0.0.1:${stack.ports.redis}`],
  ["JWT secret", stack.jwtSecret],
  ["anon key", stack.anonKey],
  ["service_role key", stack.serviceRoleKey],
  ["publishable key", stack.publishableKey],
  ["secret key", stack.secretKey],
  [
    "FCM",
    running.fakeFcm
      ? `local stand-in ${stack.fakes.fcm} (set FCM_SERVICE_ACCOUNT for real FCM)`
      : "real FCM (FCM_SERVICE_ACCOUNT)",
  ],
  ["e-mail stand-in", stack.fakes.email],
  ["webhook receiver", stack.fakes.webhook],
];
const width = Math.max(...rows.map(([k]) => k.length));
console.log("\nHerald is running.\n");
for (const [key, value] of rows) console.log(`  ${key.padStart(width)}: ${value}`);
if (running.migrationsApplied.length) {
  console.log(`\n  applied migrations: ${running.migrationsApplied.join(", ")}`);
}
console.log("\n  Get a user and a token:  npm run user -- alice@example.com\n  Stop: Ctrl-C\n");

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  console.log("\nherald: stopping …");
  await running.stop();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
