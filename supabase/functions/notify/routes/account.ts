/**
 * What a user keeps with Herald: devices, topic subscriptions, preferences
 * and webhook endpoints. Every query runs as the caller; RLS scopes the rows.
 *
 * @module
 */
import type { Hono } from "hono";
import { type Caller, requireUser } from "../../_shared/auth/caller.ts";
import { asCaller, type Tx } from "../../_shared/db/sessions.ts";
import { refused } from "../../_shared/db/refusals.ts";
import { type AppEnv, publicBase, readJson, validate } from "../../_shared/http/app.ts";
import type { Answer } from "../../_shared/http/openapi.ts";
import { Problem } from "../../_shared/http/problem.ts";
import { judgeLiterally, normaliseAllowedHost } from "../../_shared/net/ssrf_guard.ts";
import type { NotifyDeps } from "../app.ts";
import type { StoredPreferences } from "../answers.ts";
import {
  IdParam,
  Preferences,
  RegisterDevice,
  SubscriptionQuery,
  TopicParam,
  WebhookEndpointRequest,
  WebhookEndpointUpdate,
} from "../schemas.ts";

const DEVICE_COLUMNS =
  "id, token, platform, created_at, last_seen_at, disabled_at, disabled_reason";
const ENDPOINT_COLUMNS = "id, url, created_at, disabled_at, disabled_reason";

/** Registers the account routes. */
export function accountRoutes(app: Hono<AppEnv>, deps: NotifyDeps): void {
  const { sql } = deps;
  const asUser = <T>(
    caller: Caller,
    what: string,
    work: (tx: Tx) => Promise<T>,
    access: "read" | "write" = "write",
  ) => asCaller(sql, requireUser(caller, what), work, access);

  // Devices: register (or refresh last_seen_at by registering again), list, remove.
  app.put("/devices", async (c) => {
    const input = await readJson(c.req.raw, RegisterDevice);
    const [device] = await asUser(
      c.get("caller"),
      "Devices",
      (tx) =>
        tx`select ${tx.unsafe(DEVICE_COLUMNS)}
         from herald.register_device(${input.token}, ${input.platform})`,
    );
    return c.json(device);
  });

  app.get("/devices", async (c) => {
    const devices = await asUser(
      c.get("caller"),
      "Devices",
      (tx) =>
        tx`select ${tx.unsafe(DEVICE_COLUMNS)} from herald.device_tokens order by created_at, id`,
      "read",
    );
    return c.json({ devices });
  });

  app.delete("/devices/:id", async (c) => {
    const { id } = validate(IdParam, c.req.param(), "(path)");
    const deleted = await asUser(
      c.get("caller"),
      "Devices",
      (tx) => tx`delete from herald.device_tokens where id = ${id} returning id`,
    );
    if (deleted.length === 0) throw new Problem(404, "not-found", `You have no device ${id}.`);
    return c.body(null, 204);
  });

  // Topics: users (un)subscribe themselves; services name the user with ?user_id=.
  app.get("/topics", async (c) => {
    const topics = await asUser(
      c.get("caller"),
      "Topic subscriptions",
      (tx) => tx`select topic, created_at from herald.topic_subscriptions order by topic`,
      "read",
    );
    return c.json({ topics });
  });

  app.put("/topics/:topic", async (c) => {
    const { topic } = validate(TopicParam, c.req.param(), "(path)");
    const userId = _subscriber(c.get("caller"), c.req.query());
    const [row] = await asCaller(
      sql,
      c.get("caller"),
      (tx) =>
        tx`with added as (
             insert into herald.topic_subscriptions (topic, user_id) values (${topic}, ${userId})
             on conflict (topic, user_id) do nothing
             returning topic, user_id, created_at)
           select * from added
           union all
           select topic, user_id, created_at from herald.topic_subscriptions
           where topic = ${topic} and user_id = ${userId} and not exists (select 1 from added)`,
    ).catch(_subscriptionRefused);
    return c.json(row);
  });

  app.delete("/topics/:topic", async (c) => {
    const { topic } = validate(TopicParam, c.req.param(), "(path)");
    const userId = _subscriber(c.get("caller"), c.req.query());
    const deleted = await asCaller(
      sql,
      c.get("caller"),
      (tx) =>
        tx`delete from herald.topic_subscriptions where topic = ${topic} and user_id = ${userId}
         returning 1`,
    );
    if (deleted.length === 0) {
      throw new Problem(404, "not-found", `No subscription to '${topic}' for ${userId}.`);
    }
    return c.body(null, 204);
  });

  // Preferences: one document per user, replaced as a whole.
  app.get("/preferences", async (c) => {
    const preferences = await asUser(c.get("caller"), "Preferences", _readPreferences, "read");
    return c.json(preferences);
  });

  app.put("/preferences", async (c) => {
    const input = await readJson(c.req.raw, Preferences);
    const preferences = await asUser(c.get("caller"), "Preferences", async (tx) => {
      await tx`
        insert into herald.preferences (user_id, time_zone, quiet_start, quiet_end, updated_at)
        values (auth.uid(), ${input.time_zone}, ${input.quiet_hours?.start ?? null},
          ${input.quiet_hours?.end ?? null}, now())
        on conflict (user_id) do update
          set time_zone = excluded.time_zone, quiet_start = excluded.quiet_start,
            quiet_end = excluded.quiet_end, updated_at = now()`;
      await tx`delete from herald.opt_outs where user_id = auth.uid()`;
      if (input.opt_outs.length) {
        await tx`
          insert into herald.opt_outs (user_id, category, channel)
          select distinct auth.uid(), o.category, o.channel
          from jsonb_to_recordset(${tx.json(input.opt_outs)}) as o(category text, channel text)`;
      }
      return await _readPreferences(tx);
    }).catch(refused({
      // Intl and Postgres may disagree on a rare zone name; Postgres decides.
      check_violation: {
        detail: "Invalid time_zone: Postgres does not know it.",
        field: "time_zone",
        message: "is not a time zone the database knows",
      },
    }));
    return c.json(preferences);
  });

  // Webhook endpoints: the secret is shown once, when created or rotated.
  const allowHosts = new Set((deps.webhookAllowHosts ?? []).map(normaliseAllowedHost));
  // Refused here and again by the table's trigger, which also guards PostgREST and SQL.
  const refuseBlocked = (url: string) => {
    const verdict = judgeLiterally(url, allowHosts);
    if (verdict.kind === "blocked") _refuseUrl(verdict.reason);
  };
  app.post("/webhook-endpoints", async (c) => {
    const input = await readJson(c.req.raw, WebhookEndpointRequest);
    refuseBlocked(input.url);
    const [endpoint] = await asUser(
      c.get("caller"),
      "Webhook endpoints",
      (tx) =>
        tx`select ${tx.unsafe(ENDPOINT_COLUMNS)}, secret
         from herald.create_webhook_endpoint(${input.url})`,
    ).catch(_refusedByTrigger);
    return c.json(endpoint, 201, {
      location: `${publicBase(c)}/webhook-endpoints/${endpoint.id}`,
    });
  });

  app.get("/webhook-endpoints", async (c) => {
    const endpoints = await asUser(
      c.get("caller"),
      "Webhook endpoints",
      (tx) =>
        tx`select ${tx.unsafe(ENDPOINT_COLUMNS)} from herald.webhook_endpoints
         order by created_at, id`,
      "read",
    );
    return c.json({ webhook_endpoints: endpoints });
  });

  app.delete("/webhook-endpoints/:id", async (c) => {
    const { id } = validate(IdParam, c.req.param(), "(path)");
    const deleted = await asUser(
      c.get("caller"),
      "Webhook endpoints",
      (tx) => tx`delete from herald.webhook_endpoints where id = ${id} returning id`,
    );
    if (deleted.length === 0) {
      throw new Problem(404, "not-found", `You have no webhook endpoint ${id}.`);
    }
    return c.body(null, 204);
  });

  // Re-pointing (or re-enabling in place, once the receiver is fixed) clears a
  // disabled endpoint; the table's trigger checks the URL again.
  app.patch("/webhook-endpoints/:id", async (c) => {
    const { id } = validate(IdParam, c.req.param(), "(path)");
    const input = await readJson(c.req.raw, WebhookEndpointUpdate);
    if (input.url !== undefined) refuseBlocked(input.url);
    const [endpoint] = await asUser(
      c.get("caller"),
      "Webhook endpoints",
      (tx) =>
        tx`update herald.webhook_endpoints
         set url = coalesce(${input.url ?? null}, url), disabled_at = null, disabled_reason = null
         where id = ${id}
         returning ${tx.unsafe(ENDPOINT_COLUMNS)}`,
    ).catch(_refusedByTrigger);
    if (!endpoint) throw new Problem(404, "not-found", `You have no webhook endpoint ${id}.`);
    return c.json(endpoint);
  });

  app.post("/webhook-endpoints/:id/rotate-secret", async (c) => {
    const { id } = validate(IdParam, c.req.param(), "(path)");
    const [endpoint] = await asUser(
      c.get("caller"),
      "Webhook endpoints",
      (tx) =>
        tx`select ${tx.unsafe(ENDPOINT_COLUMNS)}, secret, previous_secret_expires_at
         from herald.rotate_webhook_secret(${id})`,
    ).catch(refused({ no_data_found: { detail: `You have no webhook endpoint ${id}.` } }));
    return c.json(endpoint);
  });
}

/** The table's trigger refused the URL: the same 422 as the route's own check. */
const _refusedByTrigger = refused({
  invalid_parameter_value: {
    detail: (message) => `The webhook URL is refused: ${_triggerReason(message)}.`,
    field: "url",
    message: _triggerReason,
  },
});

function _triggerReason(message: string): string {
  return message.replace(/^webhook URL refused: /, "");
}

function _refuseUrl(reason: string): never {
  throw new Problem(422, "validation", `The webhook URL is refused: ${reason}.`, [
    { field: "url", message: reason },
  ]);
}

async function _readPreferences(tx: Tx) {
  const [row] = await tx`
    select p.time_zone, to_char(p.quiet_start, 'HH24:MI') as quiet_start,
      to_char(p.quiet_end, 'HH24:MI') as quiet_end,
      coalesce((select jsonb_agg(jsonb_build_object('category', o.category, 'channel', o.channel)
                order by o.category, o.channel)
                from herald.opt_outs o where o.user_id = auth.uid()), '[]') as opt_outs
    from (select auth.uid() as user_id) me
    left join herald.preferences p on p.user_id = me.user_id`;
  return {
    time_zone: row.time_zone ?? "UTC",
    quiet_hours: row.quiet_start ? { start: row.quiet_start, end: row.quiet_end } : null,
    opt_outs: row.opt_outs,
  } satisfies Answer<typeof StoredPreferences>;
}

/** Whose subscription: the user's own; a service must say whose. */
function _subscriber(caller: Caller, query: Record<string, string>): string {
  const { user_id: userId } = validate(SubscriptionQuery, query, "(query)");
  if (caller.kind === "user") {
    if (userId && userId !== caller.userId) {
      throw new Problem(403, "not-allowed", "Users manage only their own subscriptions.", [
        { field: "user_id", message: "must be yours or absent" },
      ]);
    }
    return caller.userId;
  }
  if (!userId) {
    throw new Problem(422, "validation", "Invalid user_id: services must name the subscriber.", [
      { field: "user_id", message: "is required with the service-role key" },
    ]);
  }
  return userId;
}

const _subscriptionRefused = refused({
  insufficient_privilege: {
    detail:
      "You may not join this topic yourself (herald.can_subscribe): topics with a ':' are managed by services.",
  },
  foreign_key_violation: {
    detail: "Invalid user_id: no such user.",
    field: "user_id",
    message: "no such user",
  },
});
