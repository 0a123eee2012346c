/**
 * The notify function: devices, notifications, their status.
 *
 * @module
 */
import type { Caller } from "../_shared/auth/caller.ts";
import { asCaller, type Sql } from "../_shared/db/sessions.ts";
import { createHttpApp, readJson, validate } from "../_shared/http/app.ts";
import { Problem } from "../_shared/http/problem.ts";
import type { Logger } from "../_shared/log.ts";
import { IdParam, NotifyRequest, RegisterDevice } from "./schemas.ts";

/** What the notify app needs. */
export interface NotifyDeps {
  sql: Sql;
  resolveCaller: (headers: Headers) => Promise<Caller>;
  log: Logger;
}

/**
 * Builds the notify app.
 *
 * @example
 * ```ts
 * const app = createApp({ sql, resolveCaller, log: consoleLogger });
 * Deno.serve(app.fetch);
 * ```
 */
export function createApp(deps: NotifyDeps) {
  const app = createHttpApp("notify", deps.log);
  const { sql } = deps;

  const userOnly = (caller: Caller) => {
    if (caller.kind !== "user") {
      throw new Problem(
        403,
        "user-required",
        "Devices belong to users: call with a user's access token.",
      );
    }
    return caller;
  };

  app.post("/", async (c) => {
    const caller = await deps.resolveCaller(c.req.raw.headers);
    const input = await readJson(c.req.raw, NotifyRequest);
    const content = {
      title: input.title,
      body: input.body,
      image: input.image,
      data: input.data ?? {},
      priority: input.priority,
      ttl_seconds: input.ttl_seconds,
    };
    const [row] = await asCaller(sql, caller, (tx) =>
      tx`select notification_id, deliveries
         from herald.enqueue(${input.user_ids}::uuid[], ${tx.json(content)}, ${
        c.get("requestId")
      })`).catch(_permissionToProblem);
    deps.log("info", "notification accepted", {
      request_id: c.get("requestId"),
      notification_id: row.notification_id,
      deliveries: row.deliveries,
    });
    return c.json(
      { id: row.notification_id, deliveries: row.deliveries, status: "accepted" },
      202,
      { location: `/functions/v1/notify/notifications/${row.notification_id}` },
    );
  });

  app.get("/notifications/:id", async (c) => {
    const caller = await deps.resolveCaller(c.req.raw.headers);
    const { id } = validate(IdParam, c.req.param());
    const [notification] = await asCaller(sql, caller, (tx) =>
      tx`
        select n.id, n.sender_id, n.title, n.body, n.image, n.data, n.priority,
          n.expires_at, n.request_id, n.created_at,
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
                  'error', a.error, 'latency_ms', a.latency_ms) order by a.id)
                from herald.delivery_attempts a where a.delivery_id = d.id), '[]'::jsonb)
            ) order by d.created_at, d.id)
            from herald.deliveries d where d.notification_id = n.id), '[]'::jsonb) as deliveries
        from herald.notifications n
        where n.id = ${id}`);
    if (!notification) {
      throw new Problem(404, "not-found", `No notification ${id} is visible to you.`);
    }
    return c.json(notification);
  });

  app.put("/devices", async (c) => {
    const caller = userOnly(await deps.resolveCaller(c.req.raw.headers));
    const input = await readJson(c.req.raw, RegisterDevice);
    const [device] = await asCaller(
      sql,
      caller,
      (tx) =>
        tx`select id, token, platform, created_at, last_seen_at, disabled_at, disabled_reason
         from herald.register_device(${input.token}, ${input.platform})`,
    );
    return c.json(device);
  });

  app.get("/devices", async (c) => {
    const caller = userOnly(await deps.resolveCaller(c.req.raw.headers));
    const devices = await asCaller(
      sql,
      caller,
      (tx) =>
        tx`select id, token, platform, created_at, last_seen_at, disabled_at, disabled_reason
         from herald.device_tokens order by created_at, id`,
    );
    return c.json({ devices });
  });

  app.delete("/devices/:id", async (c) => {
    const caller = userOnly(await deps.resolveCaller(c.req.raw.headers));
    const { id } = validate(IdParam, c.req.param());
    const deleted = await asCaller(
      sql,
      caller,
      (tx) => tx`delete from herald.device_tokens where id = ${id} returning id`,
    );
    if (deleted.length === 0) throw new Problem(404, "not-found", `You have no device ${id}.`);
    return c.body(null, 204);
  });

  return app;
}

/** `can_notify` refusals arrive as SQLSTATE 42501 from herald.enqueue. */
function _permissionToProblem(error: unknown): never {
  if ((error as { code?: string }).code === "42501") {
    throw new Problem(403, "not-allowed", (error as Error).message);
  }
  throw error;
}
