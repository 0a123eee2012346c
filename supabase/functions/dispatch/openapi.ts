/**
 * The dispatch function's OpenAPI document, from the schemas its routes validate with.
 *
 * @module
 */
import { buildOpenApi, DOCUMENT_OPERATION, type Operation } from "../_shared/http/openapi.ts";
import { DeadLetterQuery, ReplayRequest } from "./schemas.ts";

const QUERY = DeadLetterQuery.shape;

const OPERATIONS: Operation[] = [
  {
    method: "post",
    path: "/",
    summary:
      "One bounded dispatch round: claim due deliveries, send them, write the outcomes back (pg_cron calls it every 5 s).",
    callers: "the dispatch key, the service-role key or a secret key",
    responses: { 200: "The round's report: claimed, sent, retried, failed, dead, ms" },
  },
  {
    method: "get",
    path: "/dead-letters",
    summary: "Dead letters (or permanent failures), newest first, a page at a time.",
    callers: "the dispatch key, the service-role key or a secret key",
    parameters: Object.entries(QUERY).map(([name, schema]) => ({
      name,
      in: "query",
      required: false,
      schema: { type: name === "limit" ? "integer" : "string" },
      description: (schema as { description?: string }).description,
    })),
    responses: { 200: "{dead_letters, next_before}" },
  },
  {
    method: "post",
    path: "/dead-letters/replay",
    summary:
      "Replay dead letters (or fixed permanent failures): named ids, a notification's, or all.",
    callers: "the dispatch key, the service-role key or a secret key",
    body: ReplayRequest,
    responses: { 200: "{replayed, statuses}" },
  },
  DOCUMENT_OPERATION,
];

/** The document under the slug called. */
export function openApiDocument(slug = "dispatch"): Record<string, unknown> {
  return buildOpenApi({
    slug,
    title: "Herald dispatch",
    description: "Dispatch rounds for schedulers, and the dead-letter queue for operators.",
    operations: OPERATIONS,
    errors: {
      400: "Malformed JSON",
      401: "No key",
      403: "A key that may not dispatch",
      413: "Body over 1 MB",
      415: "Body is not application/json",
      422: "Invalid field(s), named in `errors`",
    },
    security: {
      type: "http",
      scheme: "bearer",
      description:
        "HERALD_DISPATCH_KEY, the service-role key, or a secret key (also accepted in apikey).",
    },
  });
}
