/**
 * `npm run bench:dispatchers`: how dispatch scales across processes (issue
 * 27's "many dispatchers").
 *
 * On a fresh bench stack (FCM answering after 20 ms), for 1, 2, 4 and 8
 * long-running dispatcher processes in turn: 50,000 push deliveries are
 * enqueued, the processes are started together and drain them. Reported per
 * run: sustained deliveries per minute (first send written to last), the
 * sends FCM received beyond one per delivery (duplicates, from the stand-in's
 * own count), deliveries Herald recorded as sent twice, the most and the mean
 * of sessions waiting on a lock (sampled every 100 ms), and CPU seconds per
 * 10,000 deliveries of the dispatchers and of Postgres. The send slots are
 * shared through Redis, so more processes share one FCM target's limit.
 *
 * The last line is one JSON object with the figures.
 *
 * @module
 */
import { componentCpu, cpuNs, startBenchStack } from "./support.ts";

const USERS = 10_000;
const DEVICES_PER_USER = 5;
const FCM_LATENCY_MS = 20;
const PROCESSES = [1, 2, 4, 8];

const log = (message: string) => console.error(`bench:dispatchers: ${message}`);
const bench = await startBenchStack(log);
const { stack, running, sql } = bench;
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

  const runs = [];
  for (const processes of PROCESSES) {
    const notification = await _enqueue(users);
    const fcmBefore = await _fcmTotal();
    const cpu = componentCpu(running, ["postgres"]);
    await bench.statements(1); // starts counting (HERALD_BENCH_STATEMENTS=1)
    await cpu.start();
    const dispatchers = await Promise.all(
      Array.from({ length: processes }, () => bench.startDispatcher()),
    );
    const cpuBefore = await Promise.all(dispatchers.map((d) => cpuNs(d.pid)));
    const waits: number[] = [];
    while (await _pending()) {
      const [{ waiting }] = await sql`select count(*)::integer as waiting from pg_stat_activity
        where wait_event_type = 'Lock'`;
      waits.push(waiting);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const cpuAfter = await Promise.all(dispatchers.map((d) => cpuNs(d.pid)));
    const postgresMs = (await cpu.stop()).postgres;
    for (const d of dispatchers) d.kill("SIGTERM");
    await Promise.all(dispatchers.map((d) => d.status));
    const [drain] = await sql`
      select count(*) filter (where status = 'sent')::integer as sent,
        count(*) filter (where status <> 'sent')::integer as other,
        extract(epoch from max(sent_at) - min(sent_at)) * 1000 as sending_ms
      from herald.deliveries where notification_id = ${notification}`;
    const [twice] = await sql`
      select count(*)::integer as n from (
        select a.delivery_id from herald.delivery_attempts a
        join herald.deliveries d on d.id = a.delivery_id
        where d.notification_id = ${notification} and a.outcome = 'sent'
        group by a.delivery_id having count(*) > 1) t`;
    const received = (await _fcmTotal()) - fcmBefore;
    const statements = await bench.statements(drain.sent / 10_000);
    const [rounds] = await sql`select count(distinct a.at)::integer as n
      from herald.delivery_attempts a join herald.deliveries d on d.id = a.delivery_id
      where d.notification_id = ${notification}`;
    const dispatcherS = cpuAfter.reduce((sum, ns, i) => sum + ns - cpuBefore[i], 0) / 1e9;
    const per10k = (seconds: number) => Math.round((seconds / drain.sent) * 10_000 * 100) / 100;
    const run = {
      processes,
      deliveries: drain.sent,
      not_sent: drain.other,
      deliveries_per_minute: Math.round(drain.sent / (Number(drain.sending_ms) / 60_000)),
      fcm_duplicates: received - drain.sent,
      recorded_sent_twice: twice.n,
      lock_waiters_max: Math.max(0, ...waits),
      lock_waiters_mean: Math.round(
        (waits.reduce((a, b) => a + b, 0) / Math.max(waits.length, 1)) * 100,
      ) / 100,
      dispatcher_cpu_s_per_10k: per10k(dispatcherS),
      postgres_cpu_s_per_10k: per10k(postgresMs / 1000),
      // Write-backs (one timestamp each): their number says how small the rounds got.
      write_backs: rounds.n,
      ...(statements ? { postgres_statements_per_10k: statements.slice(0, 4) } : {}),
    };
    log(JSON.stringify(run));
    runs.push(run);
  }
  console.log(JSON.stringify({
    fcm_latency_ms: FCM_LATENCY_MS,
    deliveries_per_run: USERS * DEVICES_PER_USER,
    cores: navigator.hardwareConcurrency,
    runs,
  }));
} finally {
  await bench.stop();
}

/** One notification to every user (10,000 recipients per call, as the bulk API allows). */
async function _enqueue(recipients: string[]): Promise<string> {
  const [row] = await sql.begin(async (tx) => {
    await tx`select set_config('role', 'service_role', true),
      set_config('request.jwt.claims', '{"role":"service_role"}', true)`;
    return await tx`select notification_id from herald.enqueue(
      ${recipients}::uuid[], ${tx.json({ title: "scaling", body: "Benchmark" })})`;
  });
  return row.notification_id;
}

/**
 * Whether any delivery is still pending (each run's notification is the only
 * work): asked of the due indexes, which find one at once. By the
 * notification's own index it walked its sent rows first, 45 ms a poll near
 * the end, counted as Postgres's time per delivery.
 */
async function _pending(): Promise<boolean> {
  const [{ pending }] = await sql`select exists (
    select 1 from herald.deliveries where status = 'pending' and lane < 2
    union all
    select 1 from herald.deliveries where status = 'pending' and lane = 2) as pending`;
  return pending;
}

/** Messages the FCM stand-in has accepted so far. */
async function _fcmTotal(): Promise<number> {
  const response = await fetch(`${stack.fakes.fcm}/_control/messages`);
  return (await response.json()).received;
}
