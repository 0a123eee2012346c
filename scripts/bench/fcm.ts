/**
 * `npm run bench:fcm`: Herald's FCM sender against `firebase-admin`'s
 * `sendEach` (chunks of 500), in one run, alternating, several rounds, N
 * single-token messages each, with the FCM stand-in answering at 0 ms and at
 * 20 ms. The stand-ins run in a process of their own, so the CPU measured
 * here is the sender's alone. Both sides must report no errors and the
 * stand-in must have received exactly N from each, or the run fails.
 *
 * Herald sends as the dispatcher does: through a target's send slots, whose
 * adaptive limit finds how many to keep in flight (ceiling
 * `HERALD_CONCURRENCY`, default 512), learned afresh in each round;
 * `firebase-admin` puts a whole chunk in flight.
 *
 * Last line: `{ "0ms": {...}, "20ms": {...}, ratio_0ms, ratio_20ms, … }`.
 *
 * @module
 */
import https from "node:https";
import net from "node:net";
import process from "node:process";
import { createSendSlots } from "../../supabase/functions/_shared/dispatch/send_slots.ts";
import { createFcmSender } from "../../supabase/functions/_shared/providers/fcm.ts";
import { createAccessTokenSource } from "../../supabase/functions/_shared/providers/google_access_token.ts";
import { createServiceAccount } from "../../tests/fakes/google_oauth.ts";
import { portsFrom } from "../stack/config.ts";

const N = Number(Deno.env.get("HERALD_BENCH_FCM_N") ?? 20_000);
const ROUNDS = Number(Deno.env.get("HERALD_BENCH_FCM_ROUNDS") ?? 3);
const CONCURRENCY = Number(Deno.env.get("HERALD_CONCURRENCY") ?? 512);
const LATENCIES = [0, 20];
const PROJECT = "herald-bench-fcm";
const log = (line: string) => console.error(`bench:fcm: ${line}`);

const ports = portsFrom(26321);
const dataDir = await Deno.makeTempDir({ prefix: "herald-bench-fcm-" });
const account = await createServiceAccount({
  projectId: PROJECT,
  tokenUri: `http://127.0.0.1:${ports.oauth}/token`,
});
await Deno.writeTextFile(`${dataDir}/fcm-service-account.json`, JSON.stringify(account));

const fakes = new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", "--no-prompt", "tests/fakes/main.ts"],
  env: { HERALD_STACK: "bench", HERALD_DATA_DIR: dataDir },
  cwd: new URL("../../", import.meta.url).pathname,
  stdout: "null",
  stderr: "inherit",
}).spawn();
const fcmUrl = `http://127.0.0.1:${ports.fcm}`;

// deno-lint-ignore no-explicit-any
let app: any;
try {
  await _waitFor(`${fcmUrl}/_control/requests`);
  const herald = createFcmSender({
    projectId: PROJECT,
    tokens: createAccessTokenSource({ serviceAccount: account }),
    baseUrl: fcmUrl,
  });
  const admin = await _firebaseAdmin();
  app = admin.app;

  const results: Record<string, Record<string, unknown>> = {};
  for (const latency of LATENCIES) {
    await _control("behaviour", { latency_ms: latency });
    const runs: Record<"herald" | "admin", { perSecond: number; cpuPer10k: number }[]> = {
      herald: [],
      admin: [],
    };
    for (let round = 0; round < ROUNDS; round++) {
      // Alternate who goes first, so neither always meets a warmer machine.
      const order = round % 2 === 0 ? ["herald", "admin"] as const : ["admin", "herald"] as const;
      for (const side of order) {
        const run = side === "herald"
          ? await _measure(() => _sendHerald(herald))
          : await _measure(() => _sendAdmin(admin.messaging));
        runs[side].push(run);
        log(
          `${latency} ms, round ${round + 1}, ${side}: ${run.perSecond.toFixed(0)} msg/s, ` +
            `${run.cpuPer10k.toFixed(2)} CPU-s per 10k`,
        );
      }
    }
    const median = (side: "herald" | "admin", key: "perSecond" | "cpuPer10k") =>
      _median(runs[side].map((r) => r[key]));
    results[`${latency}ms`] = {
      herald_msgs_per_s: Math.round(median("herald", "perSecond")),
      admin_msgs_per_s: Math.round(median("admin", "perSecond")),
      herald_cpu_s_per_10k: Number(median("herald", "cpuPer10k").toFixed(3)),
      admin_cpu_s_per_10k: Number(median("admin", "cpuPer10k").toFixed(3)),
    };
  }
  const ratio = (latency: number, key: "msgs_per_s" | "cpu_s_per_10k") => {
    const r = results[`${latency}ms`];
    return Number(((r[`herald_${key}`] as number) / (r[`admin_${key}`] as number)).toFixed(2));
  };
  console.log(JSON.stringify({
    n: N,
    rounds: ROUNDS,
    herald_concurrency: CONCURRENCY,
    admin_chunk: 500,
    ...results,
    ratio_0ms: ratio(0, "msgs_per_s"),
    ratio_20ms: ratio(20, "msgs_per_s"),
    cpu_ratio_0ms: ratio(0, "cpu_s_per_10k"),
    cpu_ratio_20ms: ratio(20, "cpu_s_per_10k"),
    cores: navigator.hardwareConcurrency,
  }));
} finally {
  await app?.delete?.();
  fakes.kill("SIGTERM");
  await fakes.status;
  await Deno.remove(dataDir, { recursive: true });
}

/** Sends N messages through Herald's sender and a target's adaptive send slots. */
async function _sendHerald(send: ReturnType<typeof createFcmSender>): Promise<number> {
  const slots = createSendSlots({ limit: CONCURRENCY });
  const lane = await slots.enter(`fcm:${PROJECT}`);
  let errors = 0;
  let next = 0;
  const one = async () => {
    const started = performance.now();
    const outcome = await send({ token: `bench-${next++}`, notification: { title: "Bench" } });
    lane.observe(performance.now() - started, outcome.kind === "retry");
    if (outcome.kind !== "sent") errors++;
  };
  // As a round does: every send asks for a slot, the lane lets in as many as its limit allows.
  await Promise.all(Array.from({ length: N }, () => lane.run(one)));
  await lane.leave();
  log(`  Herald's adaptive limit ended at ${slots.adaptiveLimit(`fcm:${PROJECT}`)}`);
  return errors;
}

/** Sends N messages through firebase-admin's sendEach, 500 at a time. */
// deno-lint-ignore no-explicit-any
async function _sendAdmin(messaging: any): Promise<number> {
  let errors = 0;
  for (let from = 0; from < N; from += 500) {
    const chunk = Array.from(
      { length: Math.min(500, N - from) },
      (_, i) => ({ token: `bench-${from + i}`, notification: { title: "Bench" } }),
    );
    const response = await messaging.sendEach(chunk);
    errors += response.failureCount;
  }
  return errors;
}

/** Times one side's N sends and its CPU; fails on errors or a short count at the stand-in. */
async function _measure(send: () => Promise<number>) {
  await fetch(`${fcmUrl}/_control/requests`, { method: "DELETE" });
  const cpu = process.cpuUsage();
  const started = performance.now();
  const errors = await send();
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const received = (await (await fetch(`${fcmUrl}/_control/requests`)).json()).total;
  if (errors !== 0 || received !== N) {
    throw new Error(`a side failed: ${errors} errors, the stand-in received ${received} of ${N}`);
  }
  const cpuSeconds = (used.user + used.system) / 1e6;
  return { perSecond: N / seconds, cpuPer10k: (cpuSeconds * 10_000) / N };
}

/**
 * firebase-admin pointed at the stand-ins: the account as a file path with
 * the agent (as an object the agent is dropped for the token request,
 * firebase-admin-node#2960), an agent that connects Google's hosts to the
 * stand-ins, and HTTP/1.1 through it (`enableLegacyHttpTransport`).
 */
async function _firebaseAdmin() {
  // Specifiers the type checker does not follow (firebase-admin's typings bring @types/node).
  const appModule = "firebase-admin/app";
  const messagingModule = "firebase-admin/messaging";
  // deno-lint-ignore no-explicit-any
  const { cert, initializeApp } = await import(appModule) as any;
  // deno-lint-ignore no-explicit-any
  const { getMessaging } = await import(messagingModule) as any;
  const routes: Record<string, number> = {
    "oauth2.googleapis.com": ports.oauth,
    "fcm.googleapis.com": ports.fcm,
  };
  class Loopback extends https.Agent {
    override createConnection(options: { host?: string }) {
      return net.connect(routes[options.host ?? ""] ?? 1, "127.0.0.1");
    }
  }
  const agent = new Loopback({ keepAlive: true, maxSockets: Infinity });
  const path = `${dataDir}/admin-account.json`;
  await Deno.writeTextFile(path, JSON.stringify(account));
  const app = initializeApp({
    credential: cert(path, agent),
    httpAgent: agent,
    projectId: PROJECT,
  });
  const messaging = getMessaging(app);
  messaging.enableLegacyHttpTransport();
  return { app, messaging };
}

async function _control(path: string, body: unknown): Promise<void> {
  const response = await fetch(`${fcmUrl}/_control/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`control ${path}: ${response.status}`);
  await response.body?.cancel();
}

async function _waitFor(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      const response = await fetch(url);
      await response.body?.cancel();
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the stand-ins did not start (${url})`);
}

function _median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
