/**
 * The metrics function: Herald's Prometheus endpoint. It answers the text
 * exposition format, or OpenMetrics when the scraper's `Accept` asks, to
 * callers presenting the service-role key or the dispatch key. Every series
 * comes from state that outlives isolates (Postgres's counter tables, Redis's
 * hashes and breakers), so any isolate answers the same totals.
 *
 * A source that cannot be read is reported, not fatal: `herald_up{source}`
 * is 0 and that source's series are left out, so a scrape during a Postgres
 * outage still says Redis's part and that Postgres is down.
 *
 * @module
 */
import type { Redis } from "@upstash/redis";
import { requireKey } from "../_shared/auth/require_key.ts";
import { withinMs } from "../_shared/resilience/time_limit.ts";
import type { Sql } from "../_shared/db/sessions.ts";
import { BREAKER_KINDS, CHANNEL_NAMES } from "../_shared/channels.ts";
import { createHttpApp } from "../_shared/http/app.ts";
import { serveOpenApi } from "../_shared/http/openapi.ts";
import { openApiDocument } from "./openapi.ts";
import type { Logger } from "../_shared/log.ts";
import {
  ATTEMPT_BUCKETS,
  OUTCOMES,
  QUEUE_BUCKETS,
  REQUEST_BUCKETS,
} from "../_shared/metrics/catalogue.ts";
import { CONTENT_TYPES, Exposition, formatFor } from "../_shared/metrics/exposition.ts";
import { breakerKind } from "../_shared/metrics/request_counts.ts";
import { type DatabaseSnapshot, readDatabase, readRedis, type RedisSnapshot } from "./collect.ts";

/** What the metrics app needs. */
export interface MetricsAppDeps {
  /** A small pool of its own (2 connections). */
  sql: Sql;
  /** Absent when Redis is not configured: no request counts or shared breakers to read. */
  redis?: Pick<Redis, "hgetall" | "scan" | "pipeline">;
  /** Secrets that may scrape, as `Authorization: Bearer <key>` (or `apikey`). */
  keys: string[];
  /** The project's anon and publishable keys: allowed beside a secret, never enough alone. */
  publicKeys?: string[];
  build: { instance: string; version: string; gitSha: string };
  breaker?: { prefix?: string; windowMs?: number };
  /** Bound on each source. @default 2_000 */
  timeoutMs?: number;
  log: Logger;
  now?: () => number;
}

const HISTOGRAMS = {
  attempt_duration: {
    name: "herald_provider_attempt_duration_seconds",
    help: "Time a provider took to answer one send attempt, by channel.",
    bounds: ATTEMPT_BUCKETS,
  },
  enqueue_to_first_attempt: {
    name: "herald_enqueue_to_first_attempt_seconds",
    help: "Time from enqueue (or the requested send time) to a delivery's first attempt.",
    bounds: QUEUE_BUCKETS,
  },
  enqueue_to_sent: {
    name: "herald_enqueue_to_sent_seconds",
    help: "Time from enqueue (or the requested send time) to the provider accepting a delivery.",
    bounds: QUEUE_BUCKETS,
  },
} as const;

const BREAKER_STATES = ["closed", "open", "half-open"] as const;

/**
 * Builds the metrics app.
 *
 * @example
 * ```ts
 * const app = createApp({ sql, redis, keys: config.serviceKeys, build: config.build, log: consoleLogger });
 * Deno.serve(app.fetch);
 * ```
 */
export function createApp(deps: MetricsAppDeps) {
  const app = createHttpApp("metrics", deps.log, { instance: deps.build.instance });
  const timeoutMs = deps.timeoutMs ?? 2_000;
  const now = deps.now ?? Date.now;
  serveOpenApi(app, openApiDocument);

  const scraper = requireKey(deps.keys, {
    missing: "Send 'Authorization: Bearer <key>' with the service-role key or the dispatch key.",
    refused: "This key may not read metrics.",
  }, deps.publicKeys);
  app.get("/", scraper, async (c) => {
    const started = performance.now();
    const [database, redis] = await Promise.all([
      _bounded(timeoutMs, () => readDatabase(deps.sql, timeoutMs)),
      deps.redis
        ? _bounded(timeoutMs, () => readRedis(deps.redis!, { ...deps.breaker, now }))
        : Promise.resolve(undefined),
    ]);
    for (const [source, result] of [["postgres", database], ["redis", redis]] as const) {
      if (result && "error" in result) {
        deps.log("warn", `metrics: ${source} unreadable`, {
          request_id: c.get("requestId"),
          error: result.error,
        });
      }
    }
    const format = formatFor(c.req.header("accept") ?? null);
    const out = new Exposition(format);
    _build(out, deps.build);
    _up(out, database, redis);
    if (database && "value" in database) _database(out, database.value, deps.build.instance);
    if (redis && "value" in redis) _redis(out, redis.value, deps.build.instance);
    out.family(
      "herald_scrape_duration_seconds",
      "gauge",
      "Time this scrape took to read its sources.",
    )
      .sample("herald_scrape_duration_seconds", {}, (performance.now() - started) / 1000);
    return c.body(out.render(), 200, {
      "content-type": CONTENT_TYPES[format],
      "cache-control": "no-store",
    });
  });

  return app;
}

function _build(out: Exposition, build: MetricsAppDeps["build"]) {
  out.family("herald_build_info", "info", "The build answering this scrape; the value is always 1.")
    .sample("herald_build_info", {
      version: build.version,
      git_sha: build.gitSha,
      deployment: build.instance,
    }, 1);
}

function _up(
  out: Exposition,
  database: Bounded<DatabaseSnapshot>,
  redis: Bounded<RedisSnapshot> | undefined,
) {
  out.family(
    "herald_up",
    "gauge",
    "Whether a source of these metrics answered this scrape (1) or not (0).",
  )
    .sample("herald_up", { source: "postgres" }, "value" in database ? 1 : 0);
  if (redis) out.sample("herald_up", { source: "redis" }, "value" in redis ? 1 : 0);
  // Only where Redis is configured: without it, per-process state is a choice, not an outage.
  if (!redis) return;
  out.family(
    "herald_redis_up",
    "gauge",
    "Whether Redis answers (1); at 0 breakers, send limits and rate limits are per process.",
  ).sample("herald_redis_up", {}, "value" in redis ? 1 : 0);
}

/**
 * The database's series. `deployment` is the writer's HERALD_INSTANCE
 * (Prometheus's own `instance` label names the scrape target); `own`, the
 * answering function's, gets every outcome at 0 so rates see the series.
 *
 * One piece: the families in exposition order, one block each, all reading the same snapshot; split, the order would be spread over functions.
 */
function _database(out: Exposition, db: DatabaseSnapshot, own: string) {
  const counter = (metric: string) => db.counters.filter((c) => c.metric === metric);
  const instances = [...new Set([own, ...db.counters.map((c) => c.instance)])].sort();

  out.family(
    "herald_deliveries_total",
    "counter",
    "Delivery outcomes by channel: sent, retried, failed, expired, dead, deferred (breaker open), " +
      "released (no time or send slot left), cancelled.",
  );
  const deliveries = new Map(
    counter("deliveries").map((c) => [`${c.instance}|${c.channel}|${c.label}`, c.n]),
  );
  for (const instance of instances) {
    for (const channel of CHANNEL_NAMES) {
      for (const outcome of OUTCOMES) {
        const n = deliveries.get(`${instance}|${channel}|${outcome}`);
        if (n === undefined && instance !== own) continue;
        out.sample("herald_deliveries_total", { channel, outcome, deployment: instance }, n ?? 0);
      }
    }
  }

  out.family(
    "herald_delivery_attempts_total",
    "counter",
    "Attempts made (the attempt log's rows) by channel and error class; none means it succeeded.",
  );
  for (const c of counter("attempts")) {
    out.sample("herald_delivery_attempts_total", {
      channel: c.channel,
      error_class: c.label,
      deployment: c.instance,
    }, c.n);
  }
  for (const channel of CHANNEL_NAMES) {
    if (!counter("attempts").some((c) => c.channel === channel && c.instance === own)) {
      out.sample(
        "herald_delivery_attempts_total",
        { channel, error_class: "none", deployment: own },
        0,
      );
    }
  }

  for (
    const [metric, name, help] of [
      [
        "device_tokens_disabled",
        "herald_device_tokens_disabled_total",
        "Device tokens disabled because the provider called them dead, by error class.",
      ],
      [
        "webhook_endpoints_disabled",
        "herald_webhook_endpoints_disabled_total",
        "Webhook endpoints disabled because the receiver said they are gone, by error class.",
      ],
    ]
  ) {
    out.family(name, "counter", help);
    for (const c of counter(metric)) {
      out.sample(name, { reason: c.label, deployment: c.instance }, c.n);
    }
  }

  for (const [metric, h] of Object.entries(HISTOGRAMS)) {
    out.family(h.name, "histogram", h.help);
    const rows = db.histograms.filter((r) => r.metric === metric);
    const series = new Map<
      string,
      { instance: string; channel: string; counts: number[]; sum: number }
    >();
    for (const channel of CHANNEL_NAMES) {
      series.set(`${own}|${channel}`, { instance: own, channel, counts: [], sum: 0 });
    }
    for (const r of rows) {
      const key = `${r.instance}|${r.channel}`;
      const s = series.get(key) ?? { instance: r.instance, channel: r.channel, counts: [], sum: 0 };
      s.counts[r.bucket] = (s.counts[r.bucket] ?? 0) + r.n;
      s.sum += r.sum;
      series.set(key, s);
    }
    for (const s of series.values()) {
      out.histogram(
        h.name,
        { channel: s.channel, deployment: s.instance },
        [...h.bounds],
        s.counts,
        s.sum,
      );
    }
  }

  out.family(
    "herald_deliveries",
    "gauge",
    "Deliveries in the outbox now, by channel, lane (0 urgent, 1 normal, 2 fan-out) and status.",
  );
  for (const s of db.statuses) {
    out.sample(
      "herald_deliveries",
      { channel: s.channel, lane: String(s.lane), status: s.status },
      s.n,
    );
  }
  out.family(
    "herald_queue_depth",
    "gauge",
    "Pending deliveries (due now, waiting for a retry, or scheduled) by channel and lane.",
  );
  for (const channel of CHANNEL_NAMES) {
    for (const lane of [0, 1, 2]) {
      const n = db.statuses.find((s) =>
        s.channel === channel && s.lane === lane && s.status === "pending"
      )?.n ?? 0;
      out.sample("herald_queue_depth", { channel, lane: String(lane) }, n);
    }
  }
  out.family(
    "herald_dead_letters",
    "gauge",
    "Dead letters outstanding (attempts exhausted, not replayed), by channel.",
  );
  for (const channel of CHANNEL_NAMES) {
    const n = db.statuses.filter((s) => s.channel === channel && s.status === "dead")
      .reduce((sum, s) => sum + s.n, 0);
    out.sample("herald_dead_letters", { channel }, n);
  }
  out.family(
    "herald_oldest_due_age_seconds",
    "gauge",
    "How long the oldest due delivery of each lane has been due (0: nothing due).",
  );
  for (const d of db.oldestDue) {
    out.sample("herald_oldest_due_age_seconds", { lane: String(d.lane) }, d.seconds);
  }
}

function _redis(out: Exposition, redis: RedisSnapshot, own: string) {
  out.family(
    "herald_http_requests_total",
    "counter",
    "Public API requests answered, by route (notify, bulk, other) and status class.",
  );
  for (const r of redis.requests) {
    for (const [code, n] of Object.entries(r.byClass)) {
      out.sample("herald_http_requests_total", { route: r.route, code, deployment: r.instance }, n);
    }
  }
  out.family(
    "herald_http_request_duration_seconds",
    "histogram",
    "Time the function took to answer a public API request, by route.",
  );
  for (const r of redis.requests) {
    out.histogram(
      "herald_http_request_duration_seconds",
      { route: r.route, deployment: r.instance },
      REQUEST_BUCKETS,
      r.buckets,
      r.sum,
    );
  }
  out.family(
    "herald_rate_limited_total",
    "counter",
    "Requests refused by Herald's own rate limit (429), by route.",
  );
  for (const r of redis.requests) {
    out.sample("herald_rate_limited_total", { route: r.route, deployment: r.instance }, r.limited);
  }

  out.family(
    "herald_circuit_breakers",
    "gauge",
    "Circuit breakers by target kind and state (targets without state in Redis are closed, not counted).",
  );
  for (const kind of BREAKER_KINDS) {
    for (const state of BREAKER_STATES) {
      const n = redis.breakers.filter((b) => breakerKind(b.target) === kind && b.state === state)
        .length;
      out.sample("herald_circuit_breakers", { kind, state }, n);
    }
  }
  out.family(
    "herald_circuit_breaker_openings_total",
    "counter",
    "Times a breaker opened, by target kind and the deployment that saw it open.",
  );
  const deployments = [...new Set([own, ...redis.openings.map((o) => o.deployment)])].sort();
  const kinds = [...new Set([...BREAKER_KINDS, ...redis.openings.map((o) => o.kind)])];
  for (const kind of kinds) {
    for (const deployment of deployments) {
      const n = redis.openings.find((o) => o.kind === kind && o.deployment === deployment)?.n;
      out.sample("herald_circuit_breaker_openings_total", { kind, deployment }, n ?? 0);
    }
  }
}

type Bounded<T> = { value: T } | { error: string };

/** Runs `work` within `timeoutMs`; failure is data, not an exception. */
async function _bounded<T>(timeoutMs: number, work: () => Promise<T>): Promise<Bounded<T>> {
  try {
    return { value: await withinMs(timeoutMs, work()) };
  } catch (error) {
    return { error: (error as Error).message || String(error) };
  }
}
