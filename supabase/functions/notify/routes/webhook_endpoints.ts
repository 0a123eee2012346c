/**
 * A user's webhook endpoints: the secret is shown once, when created or
 * rotated. URLs are refused here and again by the table's trigger, which
 * also guards PostgREST and SQL.
 *
 * @module
 */
import { Hono } from "hono";
import { refused } from "../../_shared/db/refusals.ts";
import { type AppEnv, publicBase, readJson, validate } from "../../_shared/http/app.ts";
import { Problem } from "../../_shared/http/problem.ts";
import { judgeLiterally, normaliseAllowedHost } from "../../_shared/net/ssrf_guard.ts";
import type { NotifyDeps } from "../deps.ts";
import { IdParam, WebhookEndpointRequest, WebhookEndpointUpdate } from "../schemas.ts";
import { asUser } from "./as_user.ts";

const ENDPOINT_COLUMNS = "id, url, created_at, disabled_at, disabled_reason";

/**
 * The webhook endpoint routes, mounted at the function's root.
 *
 * One piece: the route table; each route is its own handler.
 */
export function webhookEndpointRoutes(
  { sql, webhookAllowHosts }: Pick<NotifyDeps, "sql" | "webhookAllowHosts">,
): Hono<AppEnv> {
  const routes = new Hono<AppEnv>();
  const allowHosts = new Set((webhookAllowHosts ?? []).map(normaliseAllowedHost));
  const refuseBlocked = (url: string) => {
    const verdict = judgeLiterally(url, allowHosts);
    if (verdict.kind === "blocked") _refuseUrl(verdict.reason);
  };
  routes.post("/webhook-endpoints", async (c) => {
    const input = await readJson(c.req.raw, WebhookEndpointRequest);
    refuseBlocked(input.url);
    const [endpoint] = await asUser(
      sql,
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

  routes.get("/webhook-endpoints", async (c) => {
    const endpoints = await asUser(
      sql,
      c.get("caller"),
      "Webhook endpoints",
      (tx) =>
        tx`select ${tx.unsafe(ENDPOINT_COLUMNS)} from herald.webhook_endpoints
         order by created_at, id`,
      "read",
    );
    return c.json({ webhook_endpoints: endpoints });
  });

  routes.delete("/webhook-endpoints/:id", async (c) => {
    const { id } = validate(IdParam, c.req.param(), "(path)");
    const deleted = await asUser(
      sql,
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
  routes.patch("/webhook-endpoints/:id", async (c) => {
    const { id } = validate(IdParam, c.req.param(), "(path)");
    const input = await readJson(c.req.raw, WebhookEndpointUpdate);
    if (input.url !== undefined) refuseBlocked(input.url);
    const [endpoint] = await asUser(
      sql,
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

  routes.post("/webhook-endpoints/:id/rotate-secret", async (c) => {
    const { id } = validate(IdParam, c.req.param(), "(path)");
    const [endpoint] = await asUser(
      sql,
      c.get("caller"),
      "Webhook endpoints",
      (tx) =>
        tx`select ${tx.unsafe(ENDPOINT_COLUMNS)}, secret, previous_secret_expires_at
         from herald.rotate_webhook_secret(${id})`,
    ).catch(refused({ no_data_found: { detail: `You have no webhook endpoint ${id}.` } }));
    return c.json(endpoint);
  });
  return routes;
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
