/**
 * The hooks function's OpenAPI document, from the schema its route validates with.
 *
 * @module
 */
import { z } from "zod";
import { Uuid } from "../_shared/db/uuid.ts";
import { buildOpenApi, DOCUMENT_OPERATION, type Operation } from "../_shared/http/openapi.ts";
import { DatabaseEventPayload } from "./schemas.ts";

const SIGNED = ["webhook-id", "webhook-timestamp", "webhook-signature"].map((name) => ({
  name,
  in: "header",
  required: true,
  description:
    "Standard Webhooks: HMAC-SHA256 with one of HERALD_HOOK_SECRETS over id.timestamp.body.",
  schema: { type: "string" },
}));

/** What one event did: a notification per matching rule, or nothing for a repeat. */
export const EventOutcome = z.object({
  event_id: z.string().describe("Its webhook-id"),
  duplicate: z.boolean().describe("Seen before: nothing was done again"),
  notifications: z.array(z.object({
    rule: z.string(),
    notification_id: Uuid.nullable().describe(
      "Null when no recipient rendered to a user id, or herald.can_notify refused them all",
    ),
    deliveries: z.number().int(),
    skipped: z.array(z.string()).describe("Rendered recipients that are not user ids"),
    denied: z.array(Uuid).describe("Recipients herald.can_notify refused"),
  })),
});

const OPERATIONS: Operation[] = [
  {
    method: "post",
    path: "/",
    summary:
      "A Supabase Database Webhook event (pg_net), turned into notifications by the hook rules.",
    callers: "Supabase Database Webhooks, signed",
    body: DatabaseEventPayload,
    parameters: SIGNED,
    responses: { 200: "The event's outcome: notifications made, or why none" },
    answers: { 200: EventOutcome },
    open: true,
  },
  DOCUMENT_OPERATION,
];

/** The document under the slug called. */
export function openApiDocument(slug = "hooks"): Record<string, unknown> {
  return buildOpenApi({
    slug,
    title: "Herald hooks",
    description: "Signed database events in, notifications out, by the rules in herald.hook_rules.",
    operations: OPERATIONS,
    errors: {
      400: "Malformed JSON",
      401: "Missing or invalid signature, or a timestamp outside 5 minutes",
      413: "Body over 1 MB",
      422: "Not a database event",
      503:
        "No signing secret configured (HERALD_HOOK_SECRETS: `hooks-not-configured`), the database is unavailable (`database-unavailable`: nothing was recorded), or it went away while committing (`outcome-unknown`: send the event again; its webhook-id makes a repeat a no-op); see Retry-After",
    },
    gateway: {
      413: "body over 1 MB (`Request size limit exceeded`)",
      417: "`Expect: 100-continue` declaring a body over 1 MB",
      502: "the functions' runtime did not answer",
      504: "the functions' runtime timed out",
    },
    security: {
      type: "apiKey",
      in: "header",
      name: "webhook-signature",
      description: "Standard Webhooks signature (see the headers).",
    },
  });
}
