/**
 * `npm run bench:dispatch`: how fast the dispatcher drains the outbox.
 *
 * On a fresh bench stack (its own Postgres, Redis, stand-ins; FCM answering
 * after 20 ms), with 20,000 users of 5 devices each:
 * 1. drain: 100,000 deliveries are enqueued at once, then one dispatcher
 *    process (the `npm start` / self-hosting worker) drains them — sustained
 *    deliveries per minute, its CPU seconds per 10,000 and its peak RSS;
 * 2. paced: the same users are notified again at an offered load of 100,000
 *    deliveries a minute for 30 s — enqueue-to-sent latency percentiles
 *    under the load the target names, not under a backlog.
 *
 * The last line is one JSON object with the figures.
 *
 * @module
 */
import { componentCpu, startBenchStack } from "./support.ts";

const USERS = 20_000;
const DEVICES_PER_USER = 5;
const FCM_LATENCY_MS = 20;
const PACED_PER_MINUTE = 100_000;
const PACED_SECONDS = 30;

const log = (message: string) => console.error(`bench:dispatch: ${message}`);

const bench = await startBenchStack(log);
const { stack, running, sql } = bench;
// Polled every 50 ms: an existence check the due indexes answer. A count
// scanned the outbox each time, a third of the Postgres time this reported.
const outboxDrained = async () => {
  const [{ pending }] = await sql`select exists (
    select 1 from herald.deliveries where status = 'pending' and lane < 2
    union all
    select 1 from herald.deliveries where status = 'pending' and lane = 2) as pending`;
  return !pending;
};
try {
  await fetch(`${stack.fakes.fcm}/_control/behaviour`, {
    method: "POST",
    body: JSON.stringify({ latency_ms: FCM_LATENCY_MS }),
  }).then((r) => r.body?.cancel());

  log(`seeding ${USERS} users with ${DEVICES_PER_USER} devices each`);
  await sql`insert into auth.users (id, email)
    select gen_random_uuid(), 'bench-' || i || '@example.test' from generate_series(1, ${USERS}) i`;
  await sql`insert into herald.device_tokens (user_id, token, platform)
    select u.id, 'bench-' || u.id || '-' || d, (array['android', 'ios', 'web'])[1 + d % 3]
    from auth.users u, generate_series(1, ${DEVICES_PER_USER}) d`;
  const users: string[] = (await sql`select id from auth.users order by id`).map((r) => r.id);

  const enqueue = async (recipients: string[], title: string) => {
    const [row] = await sql.begin(async (tx) => {
      await tx`select set_config('role', 'service_role', true),
        set_config('request.jwt.claims', '{"role":"service_role"}', true)`;
      return await tx`select notification_id, deliveries from herald.enqueue(
        ${recipients}::uuid[], ${tx.json({ title, body: "Benchmark", data: { k: "v" } })})`;
    });
    return row.deliveries as number;
  };

  // 1. Drain. herald.enqueue takes at most 10,000 recipients per call, as the bulk API does.
  let started = performance.now();
  let drained = 0;
  for (let from = 0; from < users.length; from += 10_000) {
    drained += await enqueue(users.slice(from, from + 10_000), "drain");
  }
  const enqueueMs = performance.now() - started;
  log(`enqueued ${drained} deliveries in ${Math.round(enqueueMs)} ms; starting the dispatcher`);
  const dispatcher = await bench.startDispatcher();
  started = performance.now();
  const cpuBefore = await _cpuSeconds(dispatcher.pid);
  // Where the machine's CPU goes while draining: the budget a faster drain must fit in.
  const stackCpu = componentCpu(running, ["postgres", "fakes"]);
  await bench.statements(1); // starts counting (HERALD_BENCH_STATEMENTS=1)
  await stackCpu.start();
  await _waitUntil(outboxDrained);
  const drainMs = performance.now() - started;
  const cpuDrain = (await _cpuSeconds(dispatcher.pid)) - cpuBefore;
  const drainCpu = await stackCpu.stop();
  const [drain] = await sql`
    select count(*) filter (where status = 'sent')::integer as sent,
      count(*) filter (where status <> 'sent')::integer as other,
      extract(epoch from max(sent_at) - min(sent_at)) * 1000 as sending_ms
    from herald.deliveries`;
  log(`drained ${drain.sent} in ${Math.round(drainMs)} ms (${drain.other} not sent)`);
  const statements = await bench.statements(drain.sent / 10_000);

  // 2. Paced: chunks every 100 ms add up to the offered rate.
  const perChunk = Math.round(PACED_PER_MINUTE / 60 / 10 / DEVICES_PER_USER);
  const chunks = PACED_SECONDS * 10;
  log(`paced: ${perChunk * DEVICES_PER_USER} deliveries every 100 ms for ${PACED_SECONDS} s`);
  const pacedStart = performance.now();
  for (let i = 0; i < chunks; i++) {
    const from = (i * perChunk) % users.length;
    await enqueue(users.slice(from, from + perChunk), "paced");
    const due = pacedStart + (i + 1) * 100;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())));
  }
  await _waitUntil(outboxDrained);
  const [paced] = await sql`
    select count(*)::integer as sent,
      percentile_cont(array[0.5, 0.95, 0.99]) within group (
        order by extract(epoch from d.sent_at - d.created_at) * 1000) as percentiles
    from herald.deliveries d join herald.notifications n on n.id = d.notification_id
    where n.title = 'paced' and d.status = 'sent'`;
  const peakRssMb = await _peakRssMb(dispatcher.pid);

  const [p50, p95, p99] = paced.percentiles.map((ms: number) => Math.round(ms * 10) / 10);
  const figures = {
    deliveries: drain.sent,
    not_sent: drain.other,
    // Sustained: from the first send written to the last, without process start-up.
    deliveries_per_minute: Math.round(drain.sent / (Number(drain.sending_ms) / 60_000)),
    enqueue_ms: Math.round(enqueueMs),
    drain_ms: Math.round(drainMs),
    paced_offered_per_minute: PACED_PER_MINUTE,
    paced_deliveries: paced.sent,
    p50_ms: p50,
    p95_ms: p95,
    p99_ms: p99,
    cpu_s_per_10k: Math.round((cpuDrain / drain.sent) * 10_000 * 100) / 100,
    // The drain's CPU seconds per 10,000 deliveries by component, and how busy the machine was.
    drain_cpu_s_per_10k: {
      dispatcher: Math.round((cpuDrain / drain.sent) * 10_000 * 100) / 100,
      postgres: Math.round((drainCpu.postgres / 1000 / drain.sent) * 10_000 * 100) / 100,
      fcm_stand_in: Math.round((drainCpu.fakes / 1000 / drain.sent) * 10_000 * 100) / 100,
      machine: Math.round((drainCpu.machine / 1000 / drain.sent) * 10_000 * 100) / 100,
    },
    drain_machine_busy: Math.round(
      (drainCpu.machine / (drainMs * navigator.hardwareConcurrency)) * 100,
    ) / 100,
    peak_rss_mb: peakRssMb,
    fcm_latency_ms: FCM_LATENCY_MS,
    cores: navigator.hardwareConcurrency,
    ...(statements ? { postgres_statements_per_10k_drained: statements } : {}),
  };
  console.log(JSON.stringify(figures));
} finally {
  await bench.stop();
}

async function _waitUntil(done: () => Promise<boolean>, timeoutMs = 600_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** User + system CPU seconds of a process, from /proc. */
async function _cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 per second on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The process's peak resident set (VmHWM), in MB. */
async function _peakRssMb(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = Number(status.match(/^VmHWM:\s+(\d+) kB/m)?.[1] ?? 0);
  return Math.round(kb / 1024);
}
