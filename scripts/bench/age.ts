/**
 * `npm run bench:age`: the outbox at production age. One run measures the
 * same code twice on the same partition layout — empty, then holding
 * HERALD_BENCH_AGE_DELIVERIES (20,000,000) historical deliveries spread over
 * 30 days with their notifications and 14 days of attempt log — and reports
 * each hot-path figure side by side:
 * - drain: deliveries per minute draining 50,000 pushes, Postgres CPU per 10,000;
 * - paced: enqueue-to-sent p95 at 60,000 deliveries a minute;
 * - notify: `POST /notify` p95 through the gateway (a user notifying itself);
 * - status: `GET /notify/notifications/{id}` p95;
 * - metrics: a Prometheus scrape's duration.
 * The paced, notify, status and metrics figures are taken in three rounds
 * per phase; each is reported as the median of its rounds, with the rounds
 * (one round's p95 of a few milliseconds swings by 15-45 % on this machine).
 * Then the retention job: the oldest day falls out of retention and
 * `herald.maintain_outbox()` runs during a paced window, which detaches the
 * day, and again during a second, which drops its tables (each run's
 * duration, and the paced p95 while it ran, beside a window with no job).
 * Disk per million deliveries (tables and indexes) is reported for both. The dispatcher-scaling table comes from
 * `bench:dispatchers`, run after on its own fresh stack, its JSON embedded.
 *
 * The layout is that of an installation partitioned for 31 days: the bench
 * database's (empty) partitions are remade so days begin 31 days ago. Both
 * phases start alike: after a checkpoint, with no autovacuum busy, and with
 * 50 unmeasured requests of each kind first.
 *
 * @module
 */
import {
  componentCpu,
  median,
  positiveEnv,
  quantile,
  round1,
  startBenchStack,
  userToken,
} from "./support.ts";

const HISTORY = positiveEnv("HERALD_BENCH_AGE_DELIVERIES", 20_000_000);
const DAYS = 30;
const USERS = 10_000;
const DEVICES_PER_USER = 5;
const FCM_LATENCY_MS = 20;
const PACED_PER_MINUTE = 60_000;
const PACED_SECONDS = 20;
const REQUESTS = 300;
const ROUNDS = 3;
const WARMUP_REQUESTS = 50;

const log = (message: string) => console.error(`bench:age: ${message}`);
// Three rounds of 300 notify and status calls would meet the per-user limit and Kong's per
// address (every bench client is 127.0.0.1).
const bench = await startBenchStack(log, {
  HERALD_LOCAL_KONG_ADDRESS_PER_MIN: "10000000",
  HERALD_RATE_LIMIT_USER_PER_MIN: "1000000",
});
const { stack, running, sql } = bench;

/** Remakes the empty partitions so the days begin 31 days ago, as in an installation that old. */
async function partitionedFor31Days() {
  await sql.begin(async (tx) => {
    const parts = await tx`select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent in ('herald.notifications'::regclass, 'herald.deliveries'::regclass,
                            'herald.delivery_attempts'::regclass)`;
    for (const { relname } of parts) await tx.unsafe(`drop table herald."${relname}"`);
    await tx`create or replace function herald.partitioned_since() returns timestamptz
      language sql immutable parallel safe set search_path = ''
      as $$ select date_trunc('day', now() at time zone 'UTC') at time zone 'UTC' - interval '31 days' $$`;
    // Immutable by contract: pinned to its value now, as the migration writes it.
    const [{ since }] = await tx`select herald.partitioned_since()::text as since`;
    await tx.unsafe(`create or replace function herald.partitioned_since() returns timestamptz
      language sql immutable parallel safe
      as $$ select '${since}'::timestamptz $$`);
    for (const table of ["notifications", "deliveries", "delivery_attempts"]) {
      await tx.unsafe(`create table herald.${table}_legacy
        (like herald.${table} including defaults including constraints)`);
      await tx.unsafe(`alter table herald.${table} attach partition herald.${table}_legacy
        for values from (minvalue) to ('${since}')`);
    }
    await tx`select herald.create_day_partition(t, d::date)
      from unnest(array['notifications', 'deliveries', 'delivery_attempts']) t,
        generate_series(herald.partitioned_since(), now() + interval '7 days', interval '1 day') d`;
  });
}

/** The history: per day, notifications of 10 deliveries each, terminal; attempts for the last 14 days. */
async function fillHistory() {
  const perDay = Math.round(HISTORY / DAYS / 10);
  for (let back = DAYS; back >= 1; back--) {
    const started = performance.now();
    await sql`
      insert into herald.notifications (id, title, body, data, created_at)
      select herald.uuid_v7(t), 'history', 'An aged outbox', '{"k": "v"}', t
      from (select date_trunc('day', now()) - make_interval(days => ${back})
              + i * interval '1 day' / ${perDay} as t
            from generate_series(0, ${perDay - 1}) i) s`;
    // The day's own statistics, so the insert below is planned for its rows
    // whatever autovacuum has or has not analysed by then.
    const [{ day }] = await sql`
      select to_char(date_trunc('day', now()) - make_interval(days => ${back}), 'YYYYMMDD') as day`;
    await sql.unsafe(`analyze herald.notifications_p${day}`);
    await sql`
      with tokens as materialized (
        select row_number() over (order by id) - 1 as j, id, user_id, token
        from herald.device_tokens
      ), n_tokens as (select count(*)::int as n from tokens)
      insert into herald.deliveries (notification_id, recipient_id, channel, device_token_id,
        target, platform, status, attempts, next_attempt_at, created_at, updated_at, sent_at,
        provider_message_id, last_error)
      select n.id, t.user_id, 'push', t.id, t.token, 'android', s.status, 1,
        n.created_at, n.created_at, n.created_at + interval '1 second',
        case when s.status = 'sent' then n.created_at + interval '1 second' end,
        case when s.status = 'sent' then 'projects/bench/messages/' || n.id || '-' || m end,
        case when s.status <> 'sent' then 'UNREGISTERED' end
      from herald.notifications n, n_tokens k, generate_series(1, 10) m,
        lateral (select abs(hashint4(m) # hashtext(n.id::text)) % k.n as j) r
        join tokens t on t.j = r.j,
        lateral (select case when m = 10 and r.j % 25 = 0 then 'dead'
                             when m = 10 and r.j % 25 = 1 then 'failed'
                             when m = 10 and r.j % 50 = 2 then 'expired'
                             when m = 10 and r.j % 50 = 3 then 'cancelled'
                             else 'sent' end as status) s
      where n.created_at >= date_trunc('day', now()) - make_interval(days => ${back})
        and n.created_at < date_trunc('day', now()) - make_interval(days => ${back - 1})
        and n.title = 'history'`;
    if (back <= 14) {
      await sql`
        insert into herald.delivery_attempts (delivery_id, attempt, outcome, at, latency_ms, status_code)
        select id, 1, case status when 'sent' then 'sent' else 'failed' end, updated_at, 20, 200
        from herald.deliveries
        where created_at >= date_trunc('day', now()) - make_interval(days => ${back})
          and created_at < date_trunc('day', now()) - make_interval(days => ${back - 1})`;
    }
    log(`day -${back}: ${perDay * 10} deliveries in ${Math.round(performance.now() - started)} ms`);
  }
  await sql`vacuum analyze herald.notifications, herald.deliveries, herald.delivery_attempts`;
}

const enqueue = async (recipients: string[], title: string) => {
  const [row] = await sql.begin(async (tx) => {
    await tx`select set_config('role', 'service_role', true),
      set_config('request.jwt.claims', '{"role":"service_role"}', true)`;
    return await tx`select notification_id, deliveries from herald.enqueue(
      ${recipients}::uuid[], ${tx.json({ title, body: "Benchmark", data: { k: "v" } })})`;
  });
  return { id: row.notification_id as string, deliveries: row.deliveries as number };
};

const drained = async () => {
  const [{ pending }] = await sql`select exists (
    select 1 from herald.deliveries where status = 'pending' and lane < 2
    union all
    select 1 from herald.deliveries where status = 'pending' and lane = 2) as pending`;
  return !pending;
};

async function waitUntil(done: () => Promise<boolean>, timeoutMs = 600_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`gave up after ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Paced enqueues for `seconds`; `during` runs alongside. Enqueue-to-sent percentiles. */
async function paced<T>(users: string[], seconds: number, during?: () => Promise<T>) {
  const perChunk = Math.round(PACED_PER_MINUTE / 60 / 10 / DEVICES_PER_USER);
  const ids: string[] = [];
  const start = performance.now();
  const alongside = during?.();
  for (let i = 0; i < seconds * 10; i++) {
    const from = (i * perChunk) % users.length;
    ids.push((await enqueue(users.slice(from, from + perChunk), "paced")).id);
    const due = start + (i + 1) * 100;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())));
  }
  const extra = await alongside;
  await waitUntil(drained);
  const [row] = await sql`
    select count(*)::int as sent, percentile_cont(array[0.5, 0.95]) within group (
      order by extract(epoch from d.sent_at - d.created_at) * 1000) as p
    from herald.deliveries d where d.notification_id = any(${ids}::uuid[]) and d.status = 'sent'`;
  return { sent: row.sent, p50_ms: round1(row.p[0]), p95_ms: round1(row.p[1]), extra };
}

/** p50 and p95 of `count` sequential calls of `call`, in ms. */
async function latencies(count: number, call: (i: number) => Promise<void>) {
  const ms: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await call(i);
    ms.push(performance.now() - t);
  }
  const first = round1(ms[0]);
  ms.sort((a, b) => a - b);
  return {
    p50_ms: round1(quantile(ms, 0.5)),
    p95_ms: round1(quantile(ms, 0.95)),
    max_ms: round1(ms[ms.length - 1]),
    first_ms: first,
  };
}

/**
 * Both phases start alike: fresh statistics, every dirty page written and
 * synced (a checkpoint), no autovacuum worker busy. Otherwise the aged phase
 * would pay for the fill (gigabytes of writes still being synced under its
 * commits, and the full-page images the next checkpoint's first touches
 * add), and the empty one for tables never analysed.
 */
async function settle(phase: string) {
  const started = performance.now();
  await sql`analyze herald.notifications, herald.deliveries, herald.delivery_attempts`;
  await sql`checkpoint`;
  const busy = async () =>
    (await sql`select count(*)::int as n from pg_stat_activity
      where backend_type = 'autovacuum worker'`)[0].n > 0;
  await waitUntil(async () => !(await busy()), 120_000).catch(() => {
    log(`${phase}: autovacuum still busy after 120 s; measuring anyway`);
  });
  log(`${phase}: settled in ${Math.round(performance.now() - started)} ms`);
}

async function measure(phase: string, users: string[], tokens: string[]) {
  await settle(phase);
  log(`${phase}: drain`);
  const drainIds: string[] = [];
  for (let from = 0; from < users.length; from += 10_000) {
    drainIds.push((await enqueue(users.slice(from, from + 10_000), "drain")).id);
  }
  const cpu = componentCpu(running, ["postgres"]);
  await cpu.start();
  await waitUntil(drained);
  const spent = await cpu.stop();
  const [drain] = await sql`
    select count(*)::int as sent, extract(epoch from max(sent_at) - min(sent_at)) * 1000 as ms
    from herald.deliveries where notification_id = any(${drainIds}::uuid[]) and status = 'sent'`;
  const made: string[] = [];
  const notifyOnce = async (i: number) => {
    const response = await fetch(`${stack.apiUrl}/functions/v1/notify`, {
      method: "POST",
      headers: {
        authorization: tokens[i % tokens.length],
        apikey: stack.anonKey,
        "content-type": "application/json",
      },
      body: JSON.stringify({ user_ids: [users[i % tokens.length]], title: "age", body: "Hi" }),
    });
    const answer = await response.json();
    if (response.status !== 201 && response.status !== 202) {
      throw new Error(`notify answered ${response.status}: ${JSON.stringify(answer)}`);
    }
    made.push(answer.id ?? answer.notification_id);
  };
  const statusOnce = async (i: number) => {
    const response = await fetch(`${stack.apiUrl}/functions/v1/notify/notifications/${made[i]}`, {
      headers: { authorization: tokens[i % tokens.length], apikey: stack.anonKey },
    });
    if (response.status !== 200) throw new Error(`status answered ${response.status}`);
    await response.body?.cancel();
  };
  const scrapeOnce = async () => {
    const response = await fetch(`${stack.apiUrl}/functions/v1/metrics`, {
      headers: { authorization: `Bearer ${stack.serviceRoleKey}` },
    });
    if (response.status !== 200) throw new Error(`metrics answered ${response.status}`);
    await response.body?.cancel();
  };
  // Unmeasured, in both phases: the first phase would otherwise pay alone for
  // the function processes' new connections and first plans.
  for (let i = 0; i < WARMUP_REQUESTS; i++) {
    await notifyOnce(i);
    await statusOnce(i);
    await scrapeOnce();
  }
  const rounds: Round[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    log(`${phase}: round ${round} of ${ROUNDS}: paced, notify, status, metrics`);
    const pace = await paced(users, PACED_SECONDS);
    made.length = 0;
    const notify = await latencies(REQUESTS, notifyOnce);
    const status = await latencies(REQUESTS, statusOnce);
    const metrics = await latencies(20, scrapeOnce);
    rounds.push({
      paced_p50_ms: pace.p50_ms,
      paced_p95_ms: pace.p95_ms,
      notify_p95_ms: notify.p95_ms,
      status_p95_ms: status.p95_ms,
      metrics_scrape_p95_ms: metrics.p95_ms,
      // p50, max and the first call: a p95 far above p50 is a few slow calls (cold plans), not every one.
      notify_ms: notify,
      status_ms: status,
    });
  }
  const mid = (key: Exclude<keyof Round, "notify_ms" | "status_ms">) =>
    median(rounds.map((r) => r[key]));
  const [disk] = await sql`
    select (select count(*) from herald.deliveries)::float8 as deliveries,
      (select sum(pg_total_relation_size(i.inhrelid)) from pg_inherits i
       where i.inhparent = 'herald.deliveries'::regclass)::float8 as deliveries_bytes,
      (select sum(pg_total_relation_size(i.inhrelid)) from pg_inherits i
       where i.inhparent in ('herald.notifications'::regclass,
                             'herald.delivery_attempts'::regclass))::float8 as other_bytes`;
  return {
    drain_per_minute: Math.round(drain.sent / (Number(drain.ms) / 60_000)),
    drain_postgres_cpu_s_per_10k: Math.round((spent.postgres / 1000 / drain.sent) * 10_000 * 100) /
      100,
    paced_p50_ms: mid("paced_p50_ms"),
    paced_p95_ms: mid("paced_p95_ms"),
    notify_p95_ms: mid("notify_p95_ms"),
    status_p95_ms: mid("status_p95_ms"),
    metrics_scrape_p95_ms: mid("metrics_scrape_p95_ms"),
    rounds,
    outbox_deliveries: disk.deliveries,
    mb_per_million_deliveries: Math.round(
      (disk.deliveries_bytes + disk.other_bytes) / 1e6 / (disk.deliveries / 1e6),
    ),
  };
}

try {
  await fetch(`${stack.fakes.fcm}/_control/behaviour`, {
    method: "POST",
    body: JSON.stringify({ latency_ms: FCM_LATENCY_MS }),
  }).then((r) => r.body?.cancel());
  await partitionedFor31Days();
  log(`seeding ${USERS} users with ${DEVICES_PER_USER} devices each`);
  await sql`insert into auth.users (id, email)
    select gen_random_uuid(), 'age-' || i || '@example.test' from generate_series(1, ${USERS}) i`;
  await sql`insert into herald.device_tokens (user_id, token, platform)
    select u.id, 'age-' || u.id || '-' || d, 'android'
    from auth.users u, generate_series(1, ${DEVICES_PER_USER}) d`;
  const users: string[] = (await sql`select id from auth.users order by id`).map((r) => r.id);
  const tokens = await Promise.all(
    users.slice(0, 50).map(async (id) => `Bearer ${await userToken(stack, id, 3600)}`),
  );
  await bench.startDispatcher();

  const empty = await measure("empty", users, tokens);
  log(`filling ${HISTORY} historical deliveries over ${DAYS} days`);
  const fillStart = performance.now();
  await fillHistory();
  const fillMs = performance.now() - fillStart;
  const aged = await measure("aged", users, tokens);

  // The oldest day falls out of retention: one run detaches it, the next drops its tables.
  // First, unmeasured, a run drops what the dispatcher's upkeep detached at its start
  // (the empty days before the history), so the two runs below are about that day alone.
  await sql`select * from herald.maintain_outbox()`;
  await sql`update herald.retention set keep = make_interval(days => ${DAYS - 1})
    where name = 'notifications'`;
  const upkeepDuring = () =>
    paced(users, PACED_SECONDS, async () => {
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      const t = performance.now();
      const rows = await sql`select * from herald.maintain_outbox()`;
      return {
        ms: Math.round(performance.now() - t),
        actions: rows.filter((r) => r.action !== "created" && r.action !== "kept")
          .map((r) => `${r.action} ${r.partition_name}`),
      };
    });
  log("retention: a paced window with no job, then one detaching the oldest day, one dropping it");
  const quiet = await paced(users, PACED_SECONDS);
  const detach = await upkeepDuring();
  const drop = await upkeepDuring();
  await bench.stop();
  log("dispatcher scaling (bench:dispatchers, its own stack)");
  const scaling = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "scripts/bench/dispatchers.ts"],
    cwd: stack.root,
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const scalingJson = new TextDecoder().decode(scaling.stdout).trim().split("\n").pop();

  const within = (a: number, b: number) => Math.round(((b - a) / a) * 1000) / 10;
  console.log(JSON.stringify({
    history_deliveries: HISTORY,
    fill_s: Math.round(fillMs / 1000),
    empty,
    aged,
    aged_vs_empty_percent: {
      drain_per_minute: within(empty.drain_per_minute, aged.drain_per_minute),
      paced_p95: within(empty.paced_p95_ms, aged.paced_p95_ms),
      notify_p95: within(empty.notify_p95_ms, aged.notify_p95_ms),
      status_p95: within(empty.status_p95_ms, aged.status_p95_ms),
      metrics_scrape_p95: within(empty.metrics_scrape_p95_ms, aged.metrics_scrape_p95_ms),
    },
    retention: {
      detach: { ms: detach.extra?.ms, actions: detach.extra?.actions, paced_p95_ms: detach.p95_ms },
      drop: { ms: drop.extra?.ms, actions: drop.extra?.actions, paced_p95_ms: drop.p95_ms },
      paced_p95_no_job_ms: quiet.p95_ms,
      paced_p95_aged_ms: aged.paced_p95_ms,
    },
    dispatchers: scalingJson ? JSON.parse(scalingJson) : null,
    cores: navigator.hardwareConcurrency,
  }));
} finally {
  await bench.stop().catch(() => {});
}

/** One round of a phase's latency figures. */
interface Round {
  paced_p50_ms: number;
  paced_p95_ms: number;
  notify_p95_ms: number;
  status_p95_ms: number;
  metrics_scrape_p95_ms: number;
  notify_ms: Awaited<ReturnType<typeof latencies>>;
  status_ms: Awaited<ReturnType<typeof latencies>>;
}
