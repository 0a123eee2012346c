/**
 * The hooks function's OpenAPI document, from the schema its route validates with.
 *
 * @module
 */
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
      415: "Body is not application/json",
      422: "Not a database event",
      503: "No signing secret configured (HERALD_HOOK_SECRETS)",
    },
    security: {
      type: "apiKey",
      in: "header",
      name: "webhook-signature",
      description: "Standard Webhooks signature (see the headers).",
    },
  });
}
