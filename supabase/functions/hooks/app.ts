/**
 * The hooks function: database row events in, notifications out. Each event is
 * verified (Standard Webhooks signature) before its body is parsed, recorded
 * by its `webhook-id` so a retry is a no-op, matched against
 * `herald.hook_rules`, and turned into notifications in the same transaction.
 *
 * @module
 */
import type { JSONValue } from "postgres";
import type { Caller } from "../_shared/auth/caller.ts";
import { asCaller, type Sql } from "../_shared/db/sessions.ts";
import { assertStorable, createHttpApp, validate } from "../_shared/http/app.ts";
import { Problem } from "../_shared/http/problem.ts";
import type { Logger } from "../_shared/log.ts";
import { renderRule, type RuleTemplate } from "../_shared/webhooks/render_template.ts";
import { createStandardWebhookVerifier } from "../_shared/webhooks/standard_webhooks.ts";
import { DatabaseEventPayload } from "./schemas.ts";
import { type Answer, serveOpenApi } from "../_shared/http/openapi.ts";
import { EventOutcome, openApiDocument } from "./openapi.ts";

/** What the hooks app needs. */
export interface HooksDeps {
  sql: Sql;
  /** `whsec_…` secrets a request may be signed with; without any, every request is refused. */
  secrets: readonly string[];
  log: Logger;
  /** @default Date.now */
  now?: () => number;
  /** Which deployment this is (`config.build.instance`), sent as `x-herald-instance`. */
  instance?: string;
}

/** What one matching rule produced. */
export interface RuleOutcome {
  rule: string;
  /** Null when no recipient rendered to a user id, or `herald.can_notify` refused them all. */
  notification_id: string | null;
  deliveries: number;
  /** Rendered recipients that are not user ids. */
  skipped: string[];
  /** Recipients `herald.can_notify` refused. */
  denied: string[];
}

/** Rules run as the service role: a database event has no user behind it. */
const SERVICE: Caller = { kind: "service", keyId: "hooks", claims: { role: "service_role" } };
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Builds the hooks app.
 *
 * One piece: the route table; each route is its own handler, the rule matching is below.
 *
 * @throws {RangeError} when a secret is not `whsec_` followed by base64
 * @example
 * ```ts
 * const app = createApp({ sql, secrets: config.hookSecrets, log: consoleLogger });
 * Deno.serve(app.fetch);
 * ```
 */
export function createApp(deps: HooksDeps) {
  const app = createHttpApp("hooks", deps.log, { instance: deps.instance });
  const { sql } = deps;
  const verifier = deps.secrets.length
    ? createStandardWebhookVerifier({ secrets: deps.secrets, now: deps.now })
    : undefined;
  serveOpenApi(app, openApiDocument);

  if (!verifier) {
    // Never fall back to accepting unsigned events: anyone could then notify anyone.
    app.use(() => {
      throw new Problem(
        503,
        "hooks-not-configured",
        "No signing secret is configured for database events (HERALD_HOOK_SECRETS).",
      );
    });
    return app;
  }

  app.post("/", async (c) => {
    const requestId = c.get("requestId");
    const raw = new Uint8Array(await c.req.arrayBuffer());
    const { id } = await verifier.verify(c.req.raw.headers, raw);
    const event = validate(DatabaseEventPayload, assertStorable(_parseJson(raw)));

    const result = await asCaller(sql, SERVICE, async (tx) => {
      const fresh = await tx`
        insert into herald.hook_events (id) values (${id}) on conflict do nothing returning id`;
      if (fresh.length === 0) return { duplicate: true, notifications: [] as RuleOutcome[] };

      const rules = await tx<{ name: string; template: RuleTemplate }[]>`
        select name, template from herald.hook_rules
        where enabled and schema_name = ${event.schema} and table_name = ${event.table}
          and event = ${event.type} and ${tx.json(event as JSONValue)} @> condition
        order by name`;
      const notifications: RuleOutcome[] = [];
      for (const rule of rules) {
        const { recipients, skipped, content } = renderRule(rule.template, event);
        if (recipients.length === 0) {
          notifications.push({
            rule: rule.name,
            notification_id: null,
            deliveries: 0,
            skipped,
            denied: [],
          });
          continue;
        }
        const [row] = await tx`
          select notification_id, deliveries, denied
          from herald.enqueue(${recipients}::uuid[], ${
          tx.json(content as JSONValue)
        }, ${requestId})`;
        notifications.push({
          rule: rule.name,
          notification_id: row.notification_id,
          deliveries: row.deliveries,
          skipped,
          denied: row.denied ?? [],
        });
      }
      const ids = notifications.flatMap((n) => n.notification_id ? [n.notification_id] : []);
      await tx`update herald.hook_events
        set rule_count = ${rules.length}, notification_ids = ${ids}::uuid[]
        where id = ${id}`;
      return { duplicate: false, notifications };
    });

    // Names and counts only: the row itself may hold personal data.
    deps.log("info", "database event", {
      request_id: requestId,
      event_id: id,
      event: `${event.type} ${event.schema}.${event.table}`,
      duplicate: result.duplicate,
      rules: result.notifications.length,
      notification_ids: result.notifications.flatMap((n) =>
        n.notification_id ? [n.notification_id] : []
      ),
    });
    return c.json({ event_id: id, ...result } satisfies Answer<typeof EventOutcome>);
  });

  return app;
}

/** The verified body as JSON; a 400 problem when it is not. */
function _parseJson(raw: Uint8Array): unknown {
  try {
    return JSON.parse(decoder.decode(raw));
  } catch {
    throw new Problem(400, "malformed-json", "The request body is not valid UTF-8 JSON.");
  }
}
