/**
 * What happened to a notification: a bulk job's progress (its sender's),
 * one notification with its deliveries and attempt log (sender, recipient
 * or service, as RLS allows), and cancelling what has not been sent.
 *
 * @module
 */
import { Hono } from "hono";
import { SqlState, sqlState } from "../../_shared/db/refusals.ts";
import type { Caller } from "../../_shared/auth/caller.ts";
import { asCaller } from "../../_shared/db/sessions.ts";
import { type AppEnv, validate } from "../../_shared/http/app.ts";
import type { Answer } from "../../_shared/http/openapi.ts";
import { Problem } from "../../_shared/http/problem.ts";
import type { BulkProgress, Cancelled } from "../answers.ts";
import type { NotifyDeps } from "../deps.ts";
import { IdParam } from "../schemas.ts";

/**
 * The status routes, mounted at the function's root.
 *
 * One piece: the route table; each route is its own handler.
 */
export function notificationStatusRoutes(
  { sql, log }: Pick<NotifyDeps, "sql" | "log">,
): Hono<AppEnv> {
  const routes = new Hono<AppEnv>();
  routes.get("/bulk/:id", async (c) => {
    const { id } = validate(IdParam, c.req.param(), "(path)");
    const [job] = await asCaller(sql, c.get("caller"), (tx) =>
      tx`
        select n.id, n.audience, n.created_at, n.send_at,
          count(d.id)::int as total,
          count(d.id) filter (where d.status = 'pending')::int as pending,
          count(d.id) filter (where d.status = 'sent')::int as sent,
          count(d.id) filter (where d.status = 'failed')::int as failed,
          count(d.id) filter (where d.status = 'expired')::int as expired,
          count(d.id) filter (where d.status = 'cancelled')::int as cancelled,
          count(d.id) filter (where d.status = 'dead')::int as dead
        from herald.notifications n
        left join herald.deliveries d on d.notification_id = n.id and d.created_at = n.created_at
        -- Progress is the sender's: a recipient (RLS lets them see the
        -- notification) would count only their own deliveries.
        where n.id = ${id} and n.created_at >= herald.notification_since(${id})
          and (herald.is_service() or n.sender_id = auth.uid())
        group by n.id, n.audience, n.created_at, n.send_at`, "read");
    if (!job) throw await _notFound(sql, c.get("caller"), id);
    const { total, pending, sent, failed, expired, cancelled, dead, ...rest } = job;
    return c.json(
      {
        id: rest.id,
        audience: rest.audience,
        created_at: rest.created_at,
        send_at: rest.send_at,
        total,
        counts: { pending, sent, failed, expired, cancelled, dead },
        done: pending === 0,
      } satisfies Answer<typeof BulkProgress>,
    );
  });

  routes.get("/notifications/:id", async (c) => {
    const { id } = validate(IdParam, c.req.param(), "(path)");
    const [notification] = await asCaller(sql, c.get("caller"), (tx) =>
      tx`
        select n.id, n.sender_id, n.title, n.body, n.image, n.data, n.category, n.priority,
          n.critical, n.overrides, n.send_at, n.expires_at, n.audience, n.request_id, n.created_at,
          (select count(*)::int from herald.deliveries d
           where d.notification_id = n.id and d.created_at = n.created_at) as delivery_count,
          coalesce((
            select jsonb_agg(jsonb_build_object(
              'id', d.id, 'recipient_id', d.recipient_id, 'channel', d.channel,
              'platform', d.platform, 'status', d.status, 'attempts', d.attempts,
              'next_attempt_at', case when d.status = 'pending' then d.next_attempt_at end,
              'last_error', d.last_error, 'provider_message_id', d.provider_message_id,
              'sent_at', d.sent_at,
              'attempt_log', coalesce((
                select jsonb_agg(jsonb_build_object(
                  'attempt', a.attempt, 'at', a.at, 'outcome', a.outcome,
                  'status_code', a.status_code, 'error_code', a.error_code,
                  'error', a.error, 'latency_ms', a.latency_ms, 'request_id', a.request_id)
                  order by a.id)
                from herald.delivery_attempts a
                where a.delivery_id = d.id and a.at >= d.created_at), '[]'::jsonb)
            ) order by d.created_at, d.id)
            from (select d.id, d.recipient_id, d.channel, d.platform, d.status, d.attempts,
                    d.next_attempt_at, d.last_error, d.provider_message_id, d.sent_at, d.created_at
                  from herald.deliveries d
                  where d.notification_id = n.id and d.created_at = n.created_at
                  order by d.created_at, d.id limit 1000) d), '[]'::jsonb) as deliveries
        from herald.notifications n
        -- Its days only: the id says when it was made (herald.notification_since).
        where n.id = ${id} and n.created_at >= herald.notification_since(${id})`, "read");
    if (!notification) throw await _notFound(sql, c.get("caller"), id);
    return c.json(notification);
  });

  routes.post("/notifications/:id/cancel", async (c) => {
    const { id } = validate(IdParam, c.req.param(), "(path)");
    const [{ cancelled }] = await asCaller(
      sql,
      c.get("caller"),
      (tx) => tx`select herald.cancel_notification(${id}) as cancelled`,
    ).catch(async (error) => {
      if (sqlState(error) !== SqlState.no_data_found) throw error;
      throw await _notFound(sql, c.get("caller"), id, `You sent no notification ${id}.`);
    });
    log("info", "notification cancelled", {
      request_id: c.get("requestId"),
      notification_id: id,
      cancelled,
    });
    return c.json({ id, cancelled } satisfies Answer<typeof Cancelled>);
  });
  return routes;
}

/**
 * Why a notification is not there: its id (UUIDv7) says it was created before
 * what the outbox keeps (`past-retention`, with when), or it is not visible
 * to the caller or never existed (`not-found`).
 */
async function _notFound(
  sql: NotifyDeps["sql"],
  caller: Caller,
  id: string,
  detail = `No notification ${id} is visible to you.`,
): Promise<Problem> {
  const [{ created }] = await asCaller(
    sql,
    caller,
    (tx) => tx`select herald.past_retention(${id}) as created`,
    "read",
  );
  if (!created) return new Problem(404, "not-found", detail);
  return new Problem(
    404,
    "past-retention",
    `Notification ${id} was created at ${
      (created as Date).toISOString()
    }, longer ago than Herald keeps notifications (herald.retention 'notifications'); its record is gone.`,
  );
}
