/**
 * Reads what the metrics function exposes: Postgres's counter tables (summed
 * over their shards, after folding ended backends' rows), the outbox's due
 * heads (one step down each lane's due index), and Redis's request counts,
 * breaker openings and breaker states. Nothing here scans the outbox.
 *
 * @module
 */
import type { Redis } from "@upstash/redis";
import type { Sql, Tx } from "../_shared/db/sessions.ts";
import {
  BREAKER_OPENINGS_KEY,
  parseBreakerOpenings,
  readRequestCounts,
  type RouteCounts,
} from "../_shared/metrics/request_counts.ts";
import { type BreakerReport, readBreakerStates } from "../_shared/resilience/breaker_states.ts";

/** What Postgres holds. */
export interface DatabaseSnapshot {
  counters: { metric: string; instance: string; channel: string; label: string; n: number }[];
  histograms: {
    metric: string;
    instance: string;
    channel: string;
    bucket: number;
    n: number;
    sum: number;
  }[];
  statuses: { channel: string; lane: number; status: string; n: number }[];
  /** Age of each lane's oldest due delivery, seconds (0: nothing due). */
  oldestDue: { lane: number; seconds: number }[];
}

/** What Redis holds. */
export interface RedisSnapshot {
  requests: RouteCounts[];
  openings: { kind: string; deployment: string; n: number }[];
  breakers: BreakerReport[];
  /** More breakers exist than were read. */
  truncated: boolean;
}

/** Reads Postgres's side; `timeoutMs` bounds each statement. */
export async function readDatabase(sql: Sql, timeoutMs: number): Promise<DatabaseSnapshot> {
  return await sql.begin(async (tx) => {
    await tx`select set_config('statement_timeout', ${String(timeoutMs)}, true)`;
    await tx`select herald.fold_metric_shards()`;
    const [counters, histograms, statuses, [due]] = await Promise.all([
      tx`select metric, instance, channel, label, sum(n)::float8 as n
         from herald.metric_counters group by 1, 2, 3, 4 order by 1, 2, 3, 4`,
      tx`select metric, instance, channel, bucket, sum(n)::float8 as n, sum(sum) as sum
         from herald.metric_histograms group by 1, 2, 3, 4 order by 1, 2, 3, 4`,
      tx`select channel, lane, status, sum(n)::float8 as n
         from herald.delivery_status_counts group by 1, 2, 3 order by 1, 2, 3`,
      tx`select
           extract(epoch from now() - ${_oldestDue(tx, 0)})::float8 as lane0,
           extract(epoch from now() - ${_oldestDue(tx, 1)})::float8 as lane1,
           extract(epoch from now() - ${_oldestDue(tx, 2)})::float8 as lane2`,
    ]);
    return {
      counters: counters as unknown as DatabaseSnapshot["counters"],
      histograms: histograms as unknown as DatabaseSnapshot["histograms"],
      statuses: statuses as unknown as DatabaseSnapshot["statuses"],
      oldestDue: [0, 1, 2].map((lane) => ({
        lane,
        seconds: Math.max(0, (due[`lane${lane}`] as number | null) ?? 0),
      })),
    };
  });
}

/** Reads Redis's side. */
export async function readRedis(
  redis: Pick<Redis, "hgetall" | "scan" | "pipeline">,
  breaker: { prefix?: string; windowMs?: number; now: () => number },
): Promise<RedisSnapshot> {
  const [requests, openings, states] = await Promise.all([
    readRequestCounts(redis),
    redis.hgetall<Record<string, string | number>>(BREAKER_OPENINGS_KEY),
    readBreakerStates(redis, { ...breaker, limit: 1_000 }),
  ]);
  return {
    requests,
    openings: parseBreakerOpenings(openings),
    breakers: states.breakers,
    truncated: states.truncated,
  };
}

/** The oldest due row of one lane: one step down that lane's due index. */
function _oldestDue(tx: Tx, lane: 0 | 1 | 2) {
  return tx`(select min(next_attempt_at) from herald.deliveries
    where status = 'pending' and lane = ${tx.unsafe(String(lane))} and next_attempt_at <= now())`;
}
