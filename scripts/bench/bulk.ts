/**
 * `npm run bench:bulk`: one bulk fan-out to a topic of 100,000 subscribers —
 * how long the request takes and how much CPU the notify function spends on
 * it (the edge runtime allows 2 s of CPU per request).
 *
 * On a fresh bench stack (no dispatcher: the deliveries stay pending), with
 * 100,000 users of one device each, all subscribed to one topic, the service
 * role sends `POST /functions/v1/notify/bulk {"topic": …}` three times, one
 * request at a time after a small warm-up fan-out. For each run: the client's
 * wall time; the notify process's CPU during the request (from
 * `/proc/<pid>/task/<tid>/schedstat`, summed over threads); the CPU of the
 * Postgres backends serving the function's pool, and of all of Postgres; and
 * the deliveries created, counted in the database. The job's status route is read once at the end.
 *
 * The peer, in the same run: the floor under any fan-out on this machine at
 * this hour — the same subscribers' rows inserted by one plain `INSERT …
 * SELECT` (a join of the topic to its tokens) into a table with only a
 * primary key, rolled back, the backend's CPU; median of BENCH_RUNS.
 * `vs_floor` is the fan-out's Postgres CPU over it, a figure the machine's
 * drift between hours does not move.
 *
 * Tuning (environment): BENCH_RECIPIENTS (100000), BENCH_RUNS (3).
 *
 * The last line is one JSON object with the figures (medians, and each run).
 *
 * @module
 */
import postgres from "postgres";
import { componentCpu, cpuNs, median, positiveEnv, round1, startBenchStack } from "./support.ts";

const RECIPIENTS = positiveEnv("BENCH_RECIPIENTS", 100_000);
const RUNS = positiveEnv("BENCH_RUNS", 3);
const WARMUP_RECIPIENTS = Math.min(100, RECIPIENTS);

const log = (message: string) => console.error(`bench:bulk: ${message}`);

const bench = await startBenchStack(log, {
  HERALD_RATE_LIMIT_USER_PER_MIN: "1000000",
  HERALD_RATE_LIMIT_SERVICE_PER_MIN: "10000000",
});
const { stack, running, sql } = bench;
try {
  const notifyPid = running.pidOf("notify");
  if (notifyPid === undefined) throw new Error("the stack runs no notify function");
  const topic = `bench-${crypto.randomUUID()}`;
  const warmupTopic = `bench-warmup-${crypto.randomUUID()}`;

  log(`seeding ${RECIPIENTS} users with one device each, all subscribed to ${topic}`);
  let started = performance.now();
  await sql`insert into auth.users (id, aud, role, email, email_confirmed_at)
    select gen_random_uuid(), 'authenticated', 'authenticated',
      'bench-bulk-' || i || '@example.test', now()
    from generate_series(1, ${RECIPIENTS}) i`;
  await sql`insert into herald.device_tokens (user_id, token, platform)
    select id, 'bench-bulk-' || id, (array['android', 'ios', 'web'])[1 + (hashtext(id::text) & 1)]
    from auth.users`;
  await sql`insert into herald.topic_subscriptions (topic, user_id)
    select ${topic}, id from auth.users`;
  await sql`insert into herald.topic_subscriptions (topic, user_id)
    select ${warmupTopic}, id from auth.users limit ${WARMUP_RECIPIENTS}`;
  await sql`analyze`;
  log(`seeded in ${Math.round(performance.now() - started)} ms`);

  const bulk = async (to: string) => {
    const response = await fetch(`${stack.apiUrl}/functions/v1/notify/bulk`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${stack.serviceRoleKey}`,
        apikey: stack.serviceRoleKey,
        "content-type": "application/json",
      },
      body: JSON.stringify({ topic: to, title: "Benchmark", body: "To every subscriber" }),
    });
    const text = await response.text();
    if (response.status !== 202) {
      throw new Error(
        `POST /functions/v1/notify/bulk {"topic":"${to}"} answered ${response.status}: ${
          text.slice(0, 1000)
        }`,
      );
    }
    return JSON.parse(text) as { id: string; deliveries: number };
  };

  log(`warm-up: a fan-out to ${WARMUP_RECIPIENTS} subscribers and a status read (not counted)`);
  const warm = await bulk(warmupTopic);
  await _status(warm.id);

  const runs: Run[] = [];
  for (let run = 1; run <= RUNS; run++) {
    const backends = await _poolBackendCpu(sql);
    const postgresCpu = componentCpu(running, ["postgres"]);
    await postgresCpu.start();
    const cpuBefore = await cpuNs(notifyPid);
    started = performance.now();
    const answer = await bulk(topic);
    const wallMs = performance.now() - started;
    const cpuMs = ((await cpuNs(notifyPid)) - cpuBefore) / 1e6;
    const { postgres: postgresMs } = await postgresCpu.stop();
    const dbCpuMs = await backends.spentMs();
    const [{ created }] = await sql`select count(*)::integer as created from herald.deliveries
      where notification_id = ${answer.id}`;
    const figures: Run = {
      id: answer.id,
      recipients: created as number,
      answered_deliveries: answer.deliveries,
      wall_ms: Math.round(wallMs),
      cpu_ms: round1(cpuMs),
      // What the function spent off its CPU: waiting on Postgres, mostly.
      wait_ms: Math.round(wallMs - cpuMs),
      db_cpu_ms: Math.round(dbCpuMs),
      postgres_cpu_ms: postgresMs,
    };
    log(`run ${run}: ${JSON.stringify(figures)}`);
    if (created !== answer.deliveries) {
      throw new Error(`the answer says ${answer.deliveries} deliveries, the table has ${created}`);
    }
    runs.push(figures);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }

  const floorMs: number[] = [];
  for (let run = 1; run <= RUNS; run++) floorMs.push(await _bareInsertMs(topic));
  const floor = Math.round(median(floorMs));
  log(`floor: a bare insert of the same rows ${floorMs.map(Math.round).join(", ")} ms`);

  const poll = await _status(runs[runs.length - 1].id);
  log(`GET /functions/v1/notify/bulk/<id>: ${poll.status} in ${poll.ms} ms ${poll.text}`);
  if (poll.status !== 200) throw new Error(`the status route answered ${poll.status}`);
  const job = JSON.parse(poll.text);

  const pick = (key: "recipients" | "wall_ms" | "cpu_ms" | "wait_ms" | "db_cpu_ms") =>
    median(runs.map((r) => r[key]));
  console.log(JSON.stringify({
    recipients: pick("recipients"),
    wall_ms: pick("wall_ms"),
    cpu_ms: pick("cpu_ms"),
    wait_ms: pick("wait_ms"),
    db_cpu_ms: pick("db_cpu_ms"),
    db_cpu_us_per_row: round1((pick("db_cpu_ms") * 1000) / pick("recipients")),
    floor_db_cpu_ms: floor,
    vs_floor: Math.round((pick("db_cpu_ms") / floor) * 100) / 100,
    cpu_limit_ms: 2000,
    runs: runs.map(({ id: _id, ...figures }) => figures),
    status_poll: { status: poll.status, ms: poll.ms, total: job.total, counts: job.counts },
    subscribers: RECIPIENTS,
    devices_per_user: 1,
    cores: navigator.hardwareConcurrency,
  }));
} finally {
  await bench.stop();
}

/** The figures of one bulk request. */
interface Run {
  id: string;
  recipients: number;
  answered_deliveries: number;
  wall_ms: number;
  cpu_ms: number;
  wait_ms: number;
  db_cpu_ms: number;
  postgres_cpu_ms: number;
}

/**
 * The Postgres CPU of inserting the topic's rows with one plain statement
 * into a table with only a primary key, rolled back: the floor under the
 * fan-out at this moment on this machine.
 */
async function _bareInsertMs(topic: string) {
  const one = postgres(stack.dbUrl, { max: 1, onnotice: () => {} });
  try {
    const [{ pid }] = await one`select pg_backend_pid() as pid`;
    await one`begin`; // one connection (max: 1), so the same transaction
    // A logged table, rolled back: WAL is part of the floor.
    await one`create table public.bench_floor (like herald.deliveries including defaults)`;
    await one`alter table public.bench_floor add primary key (id)`;
    const before = await cpuNs(pid);
    await one`insert into public.bench_floor (notification_id, recipient_id, channel, device_token_id,
        target, platform, next_attempt_at, lane)
      select gen_random_uuid(), t.user_id, 'push', t.id, t.token, t.platform, now(), 2
      from herald.topic_subscriptions s join herald.device_tokens t on t.user_id = s.user_id
      where s.topic = ${topic}`;
    const ms = ((await cpuNs(pid)) - before) / 1e6;
    await one`rollback`;
    return ms;
  } finally {
    await one.end();
  }
}

/** `GET /functions/v1/notify/bulk/<id>` as the service role. */
async function _status(id: string) {
  const started = performance.now();
  const response = await fetch(`${stack.apiUrl}/functions/v1/notify/bulk/${id}`, {
    headers: { authorization: `Bearer ${stack.serviceRoleKey}`, apikey: stack.serviceRoleKey },
  });
  const text = await response.text();
  return { status: response.status, text, ms: Math.round(performance.now() - started) };
}

/**
 * CPU of the Postgres backends serving the notify function's pool, from now
 * on. A connection the pool opens meanwhile counts from its start.
 */
async function _poolBackendCpu(admin: postgres.Sql) {
  const read = async () => {
    const rows = await admin`select pid from pg_stat_activity
      where application_name = 'herald-notify'`;
    const cpu = new Map<number, number>();
    for (const { pid } of rows) cpu.set(pid, await cpuNs(pid).catch(() => 0));
    return cpu;
  };
  const before = await read();
  return {
    spentMs: async () => {
      let ns = 0;
      for (const [pid, now] of await read()) ns += now - (before.get(pid) ?? 0);
      return ns / 1e6;
    },
  };
}
