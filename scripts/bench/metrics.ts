/**
 * `npm run bench:metrics`: how long a Prometheus scrape of the metrics
 * function takes with 1,000,000 deliveries in the outbox, against the peer
 * it replaces — counting the outbox at scrape time — in the same run.
 *
 * On a fresh bench stack (no dispatcher), one notification with BENCH_ROWS
 * deliveries is inserted in one statement: 80 % sent, 15 % pending and due
 * (across the three lanes), 3 % dead, 2 % failed, on all three channels. The
 * counter tables are then given the rows 500 ended connections would have
 * left, so the first scrape also folds them. Then BENCH_SCRAPES scrapes, one
 * at a time, through Kong as Prometheus sends them (a bearer key), after a
 * few warm-up scrapes; the figures are client wall times and the endpoint's
 * own `herald_scrape_duration_seconds`. The peer: the same queue depth by
 * channel, lane and status computed with `count(*) … group by` over the
 * outbox, BENCH_PEER_RUNS times, timed in the database client.
 *
 * Tuning (environment): BENCH_ROWS (1000000), BENCH_SCRAPES (200), BENCH_PEER_RUNS (5).
 *
 * The last line is one JSON object with the figures.
 *
 * @module
 */
import { median, positiveEnv, quantile, round1, startBenchStack } from "./support.ts";

const ROWS = positiveEnv("BENCH_ROWS", 1_000_000);
const SCRAPES = positiveEnv("BENCH_SCRAPES", 200);
const PEER_RUNS = positiveEnv("BENCH_PEER_RUNS", 5);
const ENDED_CONNECTIONS = 500;

const log = (message: string) => console.error(`bench:metrics: ${message}`);

const bench = await startBenchStack(log);
const { stack, sql } = bench;
try {
  log(`inserting ${ROWS} deliveries in one statement`);
  let started = performance.now();
  const [{ id }] = await sql`insert into herald.notifications (title, body, data, overrides)
    values ('bench', 'metrics', '{}', '{}') returning id`;
  await sql`insert into herald.deliveries
      (notification_id, created_at, channel, target, status, attempts, next_attempt_at, lane)
    select n.id, n.created_at, (array['push', 'email', 'webhook'])[1 + i % 3], 'bench-target-' || i,
      case when i % 100 < 80 then 'sent' when i % 100 < 95 then 'pending'
           when i % 100 < 98 then 'dead' else 'failed' end,
      1, now() - make_interval(secs => i % 600), (i / 3) % 3
    from generate_series(1, ${ROWS}) i, herald.notifications n where n.id = ${id}`;
  const insertS = (performance.now() - started) / 1000;
  log(`inserted in ${insertS.toFixed(1)} s; vacuum analyze`);
  await sql`vacuum analyze herald.deliveries`;

  // The rows ended connections leave until a scrape folds them (pids no backend has).
  await sql`
    insert into herald.metric_counters (metric, instance, channel, label, shard, n)
    select 'deliveries', 'stable', c, o, 4000000 + s, 1
    from generate_series(1, ${ENDED_CONNECTIONS}) s,
      unnest(array['push', 'email', 'webhook']) c, unnest(array['sent', 'retried']) o`;
  await sql`
    insert into herald.metric_histograms (metric, instance, channel, bucket, shard, n, sum)
    select 'attempt_duration', 'stable', c, b, 4000000 + s, 1, 0.05
    from generate_series(1, ${ENDED_CONNECTIONS}) s,
      unnest(array['push', 'email', 'webhook']) c, generate_series(0, 12) b`;

  const scrape = async () => {
    const t = performance.now();
    const response = await fetch(`${stack.apiUrl}/functions/v1/metrics`, {
      headers: { authorization: `Bearer ${stack.serviceRoleKey}` },
    });
    const text = await response.text();
    if (response.status !== 200) throw new Error(`scrape answered ${response.status}: ${text}`);
    const own = Number(text.match(/^herald_scrape_duration_seconds (\S+)$/m)?.[1]) * 1000;
    return { ms: performance.now() - t, own, bytes: text.length, text };
  };

  const first = await scrape();
  const [{ left }] = await sql`select count(*)::int as left from herald.metric_counters
    where shard >= 4000000`;
  log(
    `first scrape ${
      first.ms.toFixed(1)
    } ms (folded ${ENDED_CONNECTIONS} ended connections' rows; ${left} left)`,
  );
  const pending = Number(
    first.text.match(/^herald_queue_depth\{channel="push",lane="0"\} (\d+)$/m)?.[1],
  );
  for (let i = 0; i < 10; i++) await scrape();

  log(`${SCRAPES} scrapes, one at a time`);
  const wall: number[] = [];
  const own: number[] = [];
  let bytes = 0;
  for (let i = 0; i < SCRAPES; i++) {
    const s = await scrape();
    wall.push(s.ms);
    own.push(s.own);
    bytes = s.bytes;
  }
  wall.sort((a, b) => a - b);
  own.sort((a, b) => a - b);

  log(`peer: counting the outbox at scrape time, ${PEER_RUNS} runs`);
  const peer: number[] = [];
  for (let i = 0; i < PEER_RUNS; i++) {
    started = performance.now();
    await sql`select channel, lane, status, count(*) from herald.deliveries group by 1, 2, 3`;
    peer.push(performance.now() - started);
  }

  const figures = {
    rows: ROWS,
    insert_s: round1(insertS),
    queue_depth_push_lane0: pending,
    first_scrape_ms: round1(first.ms),
    ended_connections_folded: ENDED_CONNECTIONS,
    scrapes: SCRAPES,
    scrape_ms: { p50: quantile(wall, 0.5), p95: quantile(wall, 0.95), p99: quantile(wall, 0.99) },
    scrape_own_ms: { p50: quantile(own, 0.5), p95: quantile(own, 0.95), p99: quantile(own, 0.99) },
    response_bytes: bytes,
    peer_count_outbox_ms: { median: round1(median(peer)), runs: peer.map(round1) },
  };
  console.log(JSON.stringify(figures));
} finally {
  await bench.stop();
}
