/**
 * `npm run bench:notify`: request latency of a single-recipient notify
 * through the gateway, on the user path (RLS as `authenticated`).
 *
 * On a fresh bench stack (no long-running dispatcher: notify's inline first
 * attempt sends; the FCM stand-in answers at once), 100 users with one device
 * each notify themselves with their own access tokens — 100 clients, each
 * sending its next request as soon as the last one is answered, for 30 s
 * after a warm-up. A peer phase then sends `GET /functions/v1/notify/devices`
 * the same way: the floor of gateway + authentication + one RLS transaction,
 * so a reader can see what notify adds on top. Each phase also reports the
 * CPU each component spent per request.
 *
 * Tuning (environment): BENCH_SECONDS (30), BENCH_CLIENTS (100),
 * BENCH_WARMUP_SECONDS (3), HERALD_DB_POOL_SIZE (connections per function
 * process; 16 here, the function's default is 4). On 2 cores the pool size
 * barely moves notify (2, 4, 8, 16 and 32 were within ~10 %: the machine is
 * CPU-bound), 16 came out ahead for both phases; larger only adds backends.
 *
 * The last line is one JSON object with the figures.
 *
 * @module
 */
import type { StackConfig } from "../stack/config.ts";
import type { RunningStack } from "../stack/stack.ts";
import {
  componentCpu,
  cpuNs,
  median,
  positiveEnv,
  processTree,
  quantile,
  round1,
  setFcmLatency,
  startBenchStack,
  userToken,
} from "./support.ts";

const SECONDS = positiveEnv("BENCH_SECONDS", 30);
const CLIENTS = positiveEnv("BENCH_CLIENTS", 100);
const WARMUP_SECONDS = positiveEnv("BENCH_WARMUP_SECONDS", 3);
const DB_POOL = positiveEnv("HERALD_DB_POOL_SIZE", 16);
/** Requests of the unloaded probe (one client): the latency floor without queueing. */
const UNLOADED_REQUESTS = 200;
// "kong": the local Kong on the API port, with the edge runtime's front door (verify_jwt) beside it.
const COMPONENTS = ["kong", "notify", "postgres", "fakes", "bridge", "redis"];

const log = (message: string) => console.error(`bench:notify: ${message}`);

const bench = await startBenchStack(log, {
  // Kong limits per client address; every bench client is 127.0.0.1.
  HERALD_LOCAL_KONG_ADDRESS_PER_MIN: "10000000",
  HERALD_RATE_LIMIT_USER_PER_MIN: "1000000",
  HERALD_RATE_LIMIT_SERVICE_PER_MIN: "10000000",
  HERALD_DB_POOL_SIZE: String(DB_POOL),
});
const { stack, running, sql } = bench;
try {
  await setFcmLatency(stack, 0);
  log(`seeding ${CLIENTS} users with one device each`);
  const users: { id: string }[] = await sql`
    insert into auth.users (id, aud, role, email, email_confirmed_at)
    select gen_random_uuid(), 'authenticated', 'authenticated',
      'bench-notify-' || i || '@example.test', now()
    from generate_series(1, ${CLIENTS}) i
    returning id`;
  await sql`insert into herald.device_tokens (user_id, token, platform)
    select id, 'bench-notify-' || id, 'android' from auth.users`;
  const ttl = 3600 + 3 * (SECONDS + WARMUP_SECONDS);
  const clients = await Promise.all(users.map(async ({ id }) => ({
    id,
    authorization: `Bearer ${await userToken(stack, id, ttl)}`,
    apikey: stack.anonKey,
  })));

  const notify = _notifyRequest(stack);
  const devices = _devicesRequest(stack);

  log(`unloaded: ${UNLOADED_REQUESTS} notify and devices requests from one client`);
  await _closedLoop(clients.slice(0, 1), 1, notify); // first-request costs (JIT, connections)
  const unloadedNotify = await _sequential(clients[0], UNLOADED_REQUESTS, notify);
  const unloadedDevices = await _sequential(clients[0], UNLOADED_REQUESTS, devices);

  log(`notify: warming up for ${WARMUP_SECONDS} s`);
  await _closedLoop(clients, WARMUP_SECONDS, notify);
  log(`notify: ${CLIENTS} clients for ${SECONDS} s (db pool ${DB_POOL} per function process)`);
  const notifyCpu = componentCpu(running, COMPONENTS);
  await bench.statements(1); // starts counting (HERALD_BENCH_STATEMENTS=1)
  await notifyCpu.start();
  let clientCpu = await cpuNs(Deno.pid);
  const loaded = await _closedLoop(clients, SECONDS, notify);
  const notifyCpuMs = { ...await notifyCpu.stop(), bench_client: await _msSince(clientCpu) };
  const statements = await bench.statements(loaded.requests);

  log(`peer: GET /functions/v1/notify/devices, warming up for ${WARMUP_SECONDS} s`);
  await _closedLoop(clients, WARMUP_SECONDS, devices);
  log(`peer: ${CLIENTS} clients for ${SECONDS} s`);
  const peerCpu = componentCpu(running, COMPONENTS);
  await peerCpu.start();
  clientCpu = await cpuNs(Deno.pid);
  const peer = await _closedLoop(clients, SECONDS, devices);
  const peerCpuMs = { ...await peerCpu.stop(), bench_client: await _msSince(clientCpu) };

  // The Kong layer's own CPU: the same request through Kong and straight to the edge
  // runtime behind it, alternating, in the one process that hosts both.
  log("kong layer: GET /notify/devices through Kong and straight to the edge runtime, alternating");
  const kongLayer = await _kongLayer(running, stack, clients);

  // Per request, by process; `other_processes` is whatever else kept the machine busy (another
  // stack, a test run): when it is large, the latencies are not this stack's alone.
  const perRequest = ({ machine, ...cpu }: Record<string, number>, requests: number) => {
    const ours = Object.values(cpu).reduce((sum, ms) => sum + ms, 0);
    return Object.fromEntries(
      Object.entries({ ...cpu, other_processes: Math.max(0, machine - ours) })
        .map(([k, ms]) => [k, round1(ms / requests)]),
    );
  };
  log(`notify CPU ms per request: ${JSON.stringify(perRequest(notifyCpuMs, loaded.requests))}`);
  log(`peer CPU ms per request: ${JSON.stringify(perRequest(peerCpuMs, peer.requests))}`);
  log(
    `status codes: notify ${JSON.stringify(loaded.statuses)}, peer ${
      JSON.stringify(peer.statuses)
    }`,
  );
  for (const sample of [...loaded.errorSamples, ...peer.errorSamples]) log(`error: ${sample}`);

  const figures = {
    kong_layer: kongLayer,
    p50_ms: quantile(loaded.latencies, 0.5),
    p95_ms: quantile(loaded.latencies, 0.95),
    p99_ms: quantile(loaded.latencies, 0.99),
    max_ms: quantile(loaded.latencies, 1),
    requests_per_s: round1(loaded.requests / loaded.seconds),
    requests: loaded.requests,
    errors: loaded.errors,
    sent_inline: loaded.sentInline,
    accepted_202: loaded.statuses["202"] ?? 0,
    clients: CLIENTS,
    seconds: SECONDS,
    db_pool: DB_POOL,
    fcm_latency_ms: 0,
    cpu_ms_per_request: perRequest(notifyCpuMs, loaded.requests),
    unloaded: {
      notify_p50_ms: quantile(unloadedNotify, 0.5),
      notify_p95_ms: quantile(unloadedNotify, 0.95),
      devices_p50_ms: quantile(unloadedDevices, 0.5),
      devices_p95_ms: quantile(unloadedDevices, 0.95),
    },
    peer: {
      request: "GET /functions/v1/notify/devices (user token)",
      p50_ms: quantile(peer.latencies, 0.5),
      p95_ms: quantile(peer.latencies, 0.95),
      p99_ms: quantile(peer.latencies, 0.99),
      requests_per_s: round1(peer.requests / peer.seconds),
      requests: peer.requests,
      errors: peer.errors,
      cpu_ms_per_request: perRequest(peerCpuMs, peer.requests),
    },
    cores: navigator.hardwareConcurrency,
    ...(statements ? { postgres_statements_per_request: statements } : {}),
  };
  console.log(JSON.stringify(figures));
} finally {
  await bench.stop();
}

/** One client's identity. */
interface Client {
  id: string;
  authorization: string;
  /** The anon key, as supabase-js sends it (Kong's key-auth wants one). */
  apikey: string;
}

/** What one request came to: `ok` counts as a success, `sentInline` when every delivery went out. */
interface Outcome {
  ok: boolean;
  status: number;
  sentInline?: boolean;
  detail?: string;
}

type Request = (client: Client) => Promise<Outcome>;

/** `POST /functions/v1/notify` to the client itself: 201 (inline attempt) or 202 is a success. */
function _notifyRequest(stack: StackConfig): Request {
  const url = `${stack.apiUrl}/functions/v1/notify`;
  return async (client) => {
    const response = await fetch(url, {
      method: "POST",
      headers: {
        authorization: client.authorization,
        apikey: client.apikey,
        "content-type": "application/json",
      },
      body: JSON.stringify({ user_ids: [client.id], title: "Benchmark", body: "Hello" }),
    });
    const text = await response.text();
    if (response.status !== 201 && response.status !== 202) {
      return { ok: false, status: response.status, detail: text.slice(0, 500) };
    }
    const results = response.status === 201
      ? (JSON.parse(text).results as { status: string }[])
      : [];
    const sentInline = results.length > 0 && results.every((r) => r.status === "sent");
    return { ok: true, status: response.status, sentInline };
  };
}

/** `GET /functions/v1/notify/devices`: 200 with the client's one device is a success. */
function _devicesRequest(stack: StackConfig): Request {
  const url = `${stack.apiUrl}/functions/v1/notify/devices`;
  return async (client) => {
    const response = await fetch(url, {
      headers: { authorization: client.authorization, apikey: client.apikey },
    });
    const text = await response.text();
    const ok = response.status === 200 && JSON.parse(text).devices?.length === 1;
    return { ok, status: response.status, detail: ok ? undefined : text.slice(0, 500) };
  };
}

/** Every client sends its next request when the last is answered, until `seconds` pass. */
async function _closedLoop(clients: Client[], seconds: number, request: Request) {
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const errorSamples: string[] = [];
  let errors = 0;
  let sentInline = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(clients.map(async (client) => {
    while (performance.now() < deadline) {
      const sent = performance.now();
      let outcome: Outcome;
      try {
        outcome = await request(client);
      } catch (error) {
        outcome = { ok: false, status: 0, detail: `network error: ${(error as Error).message}` };
      }
      latencies.push(performance.now() - sent);
      statuses[outcome.status] = (statuses[outcome.status] ?? 0) + 1;
      if (outcome.sentInline) sentInline++;
      if (!outcome.ok) {
        errors++;
        if (errorSamples.length < 5) errorSamples.push(`${outcome.status} ${outcome.detail}`);
      }
    }
  }));
  latencies.sort((a, b) => a - b);
  return {
    latencies,
    requests: latencies.length,
    seconds: (performance.now() - started) / 1000,
    statuses,
    errors,
    errorSamples,
    sentInline,
  };
}

/** `count` requests one after another; sorted latencies. Failures abort: the probe must be clean. */
async function _sequential(client: Client, count: number, request: Request): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const sent = performance.now();
    const outcome = await request(client);
    latencies.push(performance.now() - sent);
    if (!outcome.ok) {
      throw new Error(`unloaded request failed: ${outcome.status} ${outcome.detail}`);
    }
  }
  return latencies.sort((a, b) => a - b);
}

/** This process's CPU milliseconds since `beforeNs` (from {@linkcode cpuNs}). */
async function _msSince(beforeNs: number): Promise<number> {
  return Math.round(((await cpuNs(Deno.pid)) - beforeNs) / 1e6);
}

/**
 * CPU of the local Kong process per request, through Kong and direct to the
 * edge runtime it hosts, over alternating rounds (medians): the difference is
 * what the Kong layer (its plugins, router and proxying) adds.
 */
async function _kongLayer(running: RunningStack, stack: StackConfig, clients: Client[]) {
  const ROUNDS = 5;
  const PER_ROUND = 2_000;
  const kongPids = await processTree(running.pidOf("kong")!);
  const kongCpu = async () =>
    (await Promise.all(kongPids.map((p) => cpuNs(p).catch(() => 0))))
      .reduce((a, b) => a + b, 0);
  const through = `${stack.apiUrl}/functions/v1/notify/devices`;
  const direct = `http://127.0.0.1:${stack.ports.edge}/functions/v1/notify/devices`;
  const measure = async (url: string) => {
    let next = 0;
    const before = await kongCpu();
    // 20 in flight, each request as the next of all the users: Kong's per-user
    // limit (1000 a minute, fixed windows) must not trip on the peer phase's
    // leftovers, wherever the minute boundary falls.
    await Promise.all(
      clients.slice(0, 20).map(async () => {
        while (next < PER_ROUND) {
          const client = clients[next++ % clients.length];
          const response = await fetch(url, {
            headers: { authorization: client.authorization, apikey: client.apikey },
          });
          if (response.status !== 200) {
            throw new Error(`kong layer: ${url} answered ${response.status}`);
          }
          await response.body?.cancel();
        }
      }),
    );
    return (await kongCpu() - before) / 1e6 / PER_ROUND;
  };
  const throughMs: number[] = [];
  const directMs: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which goes first.
    if (round % 2 === 0) {
      throughMs.push(await measure(through));
      directMs.push(await measure(direct));
    } else {
      directMs.push(await measure(direct));
      throughMs.push(await measure(through));
    }
  }
  const t = median(throughMs);
  const d = median(directMs);
  return {
    through_kong_cpu_ms: Math.round(t * 1000) / 1000,
    direct_cpu_ms: Math.round(d * 1000) / 1000,
    added_cpu_ms: Math.round((t - d) * 1000) / 1000,
  };
}
