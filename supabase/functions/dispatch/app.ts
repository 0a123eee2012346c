/**
 * The dispatch function: one bounded dispatch round per call (pg_cron calls
 * it through pg_net every few seconds), and the dead-letter queue. Only
 * services call it: the dispatch key or the service-role key.
 *
 * @module
 */
import { requireKey } from "../_shared/auth/require_key.ts";
import { type Sql, withinDeadline } from "../_shared/db/sessions.ts";
import { dispatchBatch, type DispatcherDeps } from "../_shared/dispatch/dispatcher.ts";
import { createHttpApp, readJson, validate } from "../_shared/http/app.ts";
import { Problem } from "../_shared/http/problem.ts";
import { type Answer, serveOpenApi } from "../_shared/http/openapi.ts";
import { DeadLetters, openApiDocument, Replayed, RoundReport } from "./openapi.ts";
import { DeadLetterQuery, ReplayRequest } from "./schemas.ts";
import type { Logger } from "../_shared/log.ts";

/** What the dispatch app needs. */
export interface DispatchAppDeps {
  dispatcher: DispatcherDeps;
  /** Secrets accepted as `Authorization: Bearer <key>`. */
  keys: string[];
  /** The project's anon and publishable keys: allowed beside a secret, never enough alone. */
  publicKeys?: string[];
  log: Logger;
}

/**
 * Builds the dispatch app.
 *
 * @example
 * ```ts
 * const app = createApp({ dispatcher: createDispatcherDeps(config, sql, log), keys, log });
 * Deno.serve(app.fetch);
 * ```
 */
export function createApp(deps: DispatchAppDeps) {
  const app = createHttpApp("dispatch", deps.log, { instance: deps.dispatcher.instance });
  const { sql } = deps.dispatcher;
  serveOpenApi(app, openApiDocument);

  app.use(requireKey(deps.keys, {
    missing: "Send 'Authorization: Bearer <dispatch key>' or a secret key in 'apikey'.",
    refused: "This key may not dispatch.",
  }, deps.publicKeys));

  app.post("/", async (c) => {
    const started = performance.now();
    const report = await dispatchBatch(deps.dispatcher);
    const result = {
      ...report,
      breaker_degraded: deps.dispatcher.breaker.degraded,
      ms: Math.round(performance.now() - started),
    } satisfies Answer<typeof RoundReport>;
    if (report.claimed > 0) {
      deps.log("info", "dispatch round", { request_id: c.get("requestId"), ...result });
    }
    return c.json(result);
  });

  app.get("/dead-letters", async (c) => {
    const query = validate(DeadLetterQuery, c.req.query(), "(query)");
    const rows = await withinDeadline(
      sql,
      sql`
      select id, notification_id, recipient_id, channel, target, attempts, last_error,
        created_at, updated_at as died_at, status
      from herald.deliveries
      where status = ${query.status}
        and (${query.before ?? null}::timestamptz is null or updated_at < ${query.before ?? null})
        and (${query.notification_id ?? null}::uuid is null
             or notification_id = ${query.notification_id ?? null})
      order by updated_at desc
      limit ${query.limit}`.execute(),
      "read",
    );
    if (rows.length === 0 && query.notification_id) {
      await _unlessPastRetention(sql, query.notification_id, "nothing of it is left to list");
    }
    return c.json(
      {
        dead_letters: rows,
        next_before: rows.at(-1)?.died_at ?? null,
      } satisfies Answer<typeof DeadLetters>,
    );
  });

  app.post("/dead-letters/replay", async (c) => {
    const input = await readJson(c.req.raw, ReplayRequest);
    const [{ replayed }] = await withinDeadline(
      sql,
      sql`select herald.replay_deliveries(${input.statuses}, ${input.delivery_ids ?? null},
          ${input.notification_id ?? null}) as replayed`.execute(),
      "write",
    );
    if (replayed === 0 && input.notification_id) {
      await _unlessPastRetention(sql, input.notification_id, "nothing of it is left to replay");
    }
    return c.json({ replayed, statuses: input.statuses } satisfies Answer<typeof Replayed>);
  });

  return app;
}

/**
 * Throws a 404 `past-retention` (saying when it was made) if the
 * notification's id says it is older than what the outbox keeps.
 */
async function _unlessPastRetention(sql: Sql, notificationId: string, what: string) {
  const [{ created }] = await withinDeadline(
    sql,
    sql`select herald.past_retention(${notificationId}) as created`.execute(),
    "read",
  );
  if (!created) return;
  throw new Problem(
    404,
    "past-retention",
    `Notification ${notificationId} was created at ${
      (created as Date).toISOString()
    }, longer ago than Herald keeps notifications (herald.retention 'notifications'): ${what}.`,
  );
}
