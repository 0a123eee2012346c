/**
 * The health function: liveness for process supervisors, readiness for load
 * balancers and operators. Anyone may ask and gets the status code and
 * `{status}`; callers presenting the service-role key or the dispatch key also
 * get what was checked, why it is degraded, the queue lag and the circuit
 * breakers.
 *
 * `unavailable` (503): Postgres cannot be reached. `degraded` (200): Redis is
 * unreachable (breakers, send limits and rate limits fall back to each
 * process), a provider's breaker (FCM, the e-mail API) is open, or work has
 * been due for a while and no dispatcher has attempted anything meanwhile.
 * One webhook endpoint's open breaker is its owner's trouble, not Herald's.
 *
 * @module
 */
import type { Redis } from "@upstash/redis";
import { holdsKey } from "../_shared/auth/require_key.ts";
import { withinMs } from "../_shared/resilience/time_limit.ts";
import type { Sql, Tx } from "../_shared/db/sessions.ts";
import { createHttpApp } from "../_shared/http/app.ts";
import { type Answer, serveOpenApi } from "../_shared/http/openapi.ts";
import { Liveness, openApiDocument } from "./openapi.ts";
import { Problem, problemResponse } from "../_shared/http/problem.ts";
import type { Logger } from "../_shared/log.ts";
import { type BreakerReport, readBreakerStates } from "../_shared/resilience/breaker_states.ts";

/** What the health app needs. */
export interface HealthAppDeps {
  /** A small pool of its own (1–2 connections): readiness must not queue behind real work. */
  sql: Sql;
  /** Absent when Redis is not configured: breakers are per-process by choice, not degraded. */
  redis?: Pick<Redis, "ping" | "scan" | "pipeline">;
  /** Secrets that unlock the details, as `Authorization: Bearer <key>`. */
  keys: string[];
  /** The project's anon and publishable keys: allowed beside a secret, never enough alone. */
  publicKeys?: string[];
  /** How the breakers are configured (their key prefix and failure window). */
  breaker?: { prefix?: string; windowMs?: number };
  /** Bound on each check. @default 2_000 */
  timeoutMs?: number;
  /**
   * Configuration that is set but unusable (`fcm-misconfigured: …`), asked on
   * each detailed readiness check; any answer makes readiness degraded.
   */
  configurationProblems?: () => Promise<string[]>;
  log: Logger;
  now?: () => number;
  /** The build answering (version, git sha, deployment), shown to key holders. */
  build?: { instance: string; version: string; gitSha: string };
}

/** The outcome of one check. */
type Check =
  | { status: "ok"; duration_ms: number }
  | { status: "failed"; duration_ms: number; error: string }
  | { status: "not-configured" };

/** More due deliveries than this are reported as "at least". */
const DUE_COUNT_CAP = 10_000;

/** Work due this long with no attempt made meanwhile means no dispatcher is running. */
const STALLED_AFTER_S = 30;

/**
 * Builds the health app.
 *
 * @example
 * ```ts
 * const app = createApp({ sql, redis, keys: config.serviceKeys, log: consoleLogger });
 * Deno.serve(app.fetch);
 * ```
 */
export function createApp(deps: HealthAppDeps) {
  const app = createHttpApp("health", deps.log, { instance: deps.build?.instance });
  const timeoutMs = deps.timeoutMs ?? 2_000;
  const now = deps.now ?? Date.now;
  let lastStatus: string | undefined;

  app.use(async (c, next) => {
    await next();
    c.res.headers.set("Cache-Control", "no-store");
  });
  serveOpenApi(app, openApiDocument);

  // Liveness: the process answers. Touching Postgres or Redis here would let
  // their outage restart healthy instances.
  app.get("/", (c) => c.json({ status: "ok" } satisfies Answer<typeof Liveness>));

  app.get("/ready", async (c) => {
    const detailed = holdsKey(c.req.raw.headers, deps.keys, deps.publicKeys);
    const { status, checks, reasons, details } = await _readiness(deps, timeoutMs, now);
    // Load balancers ask every few seconds: log changes, not every answer.
    if (status !== lastStatus) {
      deps.log(status === "ok" ? "info" : "warn", `readiness: ${status}`, {
        request_id: c.get("requestId"),
        was: lastStatus,
        reasons,
        ...checks,
      });
      lastStatus = status;
    }
    if (checks.postgres.status === "failed") {
      const problem = new Problem(
        503,
        "not-ready",
        detailed
          ? `Postgres is unreachable (${checks.postgres.error}); ` +
            "notifications can be neither accepted nor delivered."
          : "Herald is not ready; retry shortly.",
        [],
        { "Retry-After": "5" },
      );
      const response = problemResponse(problem, c.get("requestId"));
      if (!detailed) return response;
      return new Response(JSON.stringify({ ...(await response.json()), ...details }), {
        status: problem.status,
        headers: response.headers,
      });
    }
    return c.json(detailed ? { status, ...details } : { status });
  });

  return app;
}

/** What readiness rests on: each check timed, the reasons it is degraded, the details key holders see. */
async function _readiness(deps: HealthAppDeps, timeoutMs: number, now: () => number) {
  const { sql, redis } = deps;
  const skipped = Promise.resolve(undefined);
  // Every caller gets the same status; only key holders see what it rests on.
  const [postgres, redisPing, queue, breakers, problems] = await Promise.all([
    _timed(timeoutMs, () => sql`select 1`),
    redis ? _timed(timeoutMs, () => redis.ping()) : skipped,
    _timed(timeoutMs, () => _queue(sql, timeoutMs)),
    redis
      ? _timed(timeoutMs, () =>
        readBreakerStates(redis, {
          prefix: deps.breaker?.prefix,
          windowMs: deps.breaker?.windowMs,
          now,
        }))
      : skipped,
    deps.configurationProblems?.().catch((error) => [_message(error)]) ?? [],
  ]);
  const checks = {
    postgres: postgres.check,
    redis: redisPing?.check ?? { status: "not-configured" as const },
  };
  const reasons = [
    ...problems,
    ..._degradedBecause(checks.redis, queue.value, breakers?.value?.breakers ?? []),
  ];
  const status = checks.postgres.status !== "ok"
    ? "unavailable"
    : reasons.length > 0
    ? "degraded"
    : "ok";
  const details = {
    ...(deps.build
      ? {
        build: {
          version: deps.build.version,
          git_sha: deps.build.gitSha,
          deployment: deps.build.instance,
        },
      }
      : {}),
    checks,
    ...(reasons.length > 0 ? { reasons } : {}),
    queue: queue.value ?? { error: _errorOf(queue.check) },
    // null: Redis is not configured, so there are no shared breakers to read.
    breakers: !breakers ? null : breakers.value
      ? {
        targets: breakers.value.breakers.map((b) => _breakerJson(b, now())),
        truncated: breakers.value.truncated,
      }
      : { error: _errorOf(breakers.check) },
  };

  return { status, checks, reasons, details };
}

/** Runs `work` within `timeoutMs`, timing it; failure is data, not an exception. */
async function _timed<T>(
  timeoutMs: number,
  work: () => Promise<T>,
): Promise<{ check: Check; value?: T }> {
  const started = performance.now();
  try {
    const value = await withinMs(timeoutMs, work());
    return { check: { status: "ok", duration_ms: _since(started) }, value };
  } catch (error) {
    return {
      check: { status: "failed", duration_ms: _since(started), error: _message(error) },
    };
  }
}

/** Why readiness is degraded, in words an operator can act on; empty when it is not. */
function _degradedBecause(
  redis: Check,
  queue: Awaited<ReturnType<typeof _queue>> | undefined,
  breakers: BreakerReport[],
): string[] {
  const reasons: string[] = [];
  if (redis.status === "failed") {
    reasons.push("Redis is unreachable: breakers, send limits and rate limits are per-process");
  }
  const providers = breakers.filter((b) =>
    b.state !== "closed" && !b.target.startsWith("webhook:")
  );
  for (const b of providers) reasons.push(`the circuit breaker for ${b.target} is ${b.state}`);
  if (
    queue && queue.due > 0 && queue.oldest_due_age_s > STALLED_AFTER_S &&
    (queue.last_attempt_age_s === null || queue.last_attempt_age_s > STALLED_AFTER_S)
  ) {
    reasons.push(
      `deliveries have been due for ${Math.round(queue.oldest_due_age_s)} s and no dispatcher ` +
        `has attempted any for ${STALLED_AFTER_S} s or more`,
    );
  }
  return reasons;
}

/**
 * How far behind the outbox is. `oldest_due_age_s` is the lag dispatchers
 * should keep near zero (0 when nothing is due; served by the lanes' due
 * indexes, one lane at a time) — rows whose lease ran out without a result are due
 * again and count; `oldest_pending_age_s` includes deliveries waiting for a
 * retry or a lease; `last_attempt_age_s` is how long ago any dispatcher last
 * wrote an attempt (null: never).
 */
async function _queue(sql: Sql, timeoutMs: number) {
  const [row] = await sql.begin(async (tx) => {
    // The race in _timed frees the request; this frees the database.
    await tx`select set_config('statement_timeout', ${String(timeoutMs)}, true)`;
    return await tx`
      select
        extract(epoch from now() - least(${_oldestDue(tx, 0)}, ${_oldestDue(tx, 1)},
          ${_oldestDue(tx, 2)}))::float8 as oldest_due_age_s,
        extract(epoch from now() - (
          select min(created_at) from herald.deliveries where status = 'pending'
        ))::float8 as oldest_pending_age_s,
        (select count(*) from (
          select 1 from herald.deliveries
          where status = 'pending' and lane < 2 and next_attempt_at <= now()
          limit ${DUE_COUNT_CAP + 1}
        ) urgent)::int + (select count(*) from (
          select 1 from herald.deliveries
          where status = 'pending' and lane = 2 and next_attempt_at <= now()
          limit ${DUE_COUNT_CAP + 1}
        ) fan_out)::int as due,
        extract(epoch from now() - (
          select at from herald.delivery_attempts order by id desc limit 1
        ))::float8 as last_attempt_age_s`;
  });
  const round = (seconds: number | null) => seconds === null ? null : Math.round(seconds * 10) / 10;
  return {
    due: Math.min(row.due, DUE_COUNT_CAP),
    due_capped: row.due > DUE_COUNT_CAP,
    oldest_due_age_s: round(row.oldest_due_age_s) ?? 0,
    oldest_pending_age_s: round(row.oldest_pending_age_s),
    last_attempt_age_s: round(row.last_attempt_age_s),
  };
}

/** The oldest due row of one lane: one step down that lane's due index. */
function _oldestDue(tx: Tx, lane: 0 | 1 | 2) {
  return tx`(select min(next_attempt_at) from herald.deliveries
    where status = 'pending' and lane = ${tx.unsafe(String(lane))} and next_attempt_at <= now())`;
}

function _breakerJson(b: BreakerReport, now: number) {
  return {
    target: b.target,
    state: b.state,
    ...(b.openUntil !== undefined
      ? {
        open_until: new Date(b.openUntil).toISOString(),
        retry_in_s: Math.max(0, Math.ceil((b.openUntil - now) / 1000)),
      }
      : {}),
    ...(b.probeUntil !== undefined ? { probe_until: new Date(b.probeUntil).toISOString() } : {}),
    recent_failures: b.recentFailures,
    recent_calls: b.recentCalls,
  };
}

function _errorOf(check: Check): string {
  return check.status === "failed" ? check.error : "not run";
}

function _since(started: number): number {
  return Math.round(performance.now() - started);
}

function _message(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message || (error as { code?: string }).code || "unknown error";
}
