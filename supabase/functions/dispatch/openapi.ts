/**
 * The dispatch function's OpenAPI document, from the schemas its routes validate with.
 *
 * @module
 */
import { z } from "zod";
import { CHANNEL_NAMES } from "../_shared/channels.ts";
import { Uuid } from "../_shared/db/uuid.ts";
import {
  buildOpenApi,
  DOCUMENT_OPERATION,
  type Operation,
  Timestamp,
} from "../_shared/http/openapi.ts";
import { DeadLetterQuery, ReplayableStatus, ReplayRequest } from "./schemas.ts";

const Count = z.number().int();

/** One round, counted by what happened to each claimed delivery. */
export const RoundReport = z.object({
  claimed: Count,
  sent: Count,
  retried: Count,
  deferred: Count.describe("Not attempted: the target's breaker was open (no attempt spent)"),
  released: Count.describe("Not attempted in time; given back unspent"),
  failed: Count,
  expired: Count,
  dead: Count,
  superseded: Count.describe("Not written: another dispatcher took the lease over"),
  breaker_degraded: z.boolean().describe("The shared breaker store (Redis) is unreachable"),
  ms: Count,
});

export const DeadLetters = z.object({
  dead_letters: z.array(z.object({
    id: Uuid,
    notification_id: Uuid,
    recipient_id: Uuid.nullable(),
    channel: z.enum(CHANNEL_NAMES),
    target: z.string().describe("The token, address or endpoint it was for"),
    attempts: Count,
    last_error: z.string().nullable(),
    created_at: Timestamp,
    died_at: Timestamp,
    status: ReplayableStatus,
  })),
  next_before: Timestamp.nullable().describe("`before` for the next page; null on the last"),
});

export const Replayed = z.object({ replayed: Count, statuses: z.array(ReplayableStatus) });

const QUERY = DeadLetterQuery.shape;

const OPERATIONS: Operation[] = [
  {
    method: "post",
    path: "/",
    summary:
      "One bounded dispatch round: claim due deliveries, send them, write the outcomes back (pg_cron calls it every 5 s).",
    callers: "the dispatch key, the service-role key or a secret key",
    responses: { 200: "The round's report" },
    answers: { 200: RoundReport },
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
    responses: { 200: "A page of dead letters" },
    answers: { 200: DeadLetters },
  },
  {
    method: "post",
    path: "/dead-letters/replay",
    summary:
      "Replay dead letters (or fixed permanent failures): named ids, a notification's, or all.",
    callers: "the dispatch key, the service-role key or a secret key",
    body: ReplayRequest,
    responses: { 200: "How many were replayed" },
    answers: { 200: Replayed },
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
      404:
        "Dead letters or a replay of a notification older than Herald keeps (`past-retention`, saying when it was created)",
      413: "Body over 1 MB",
      415: "Body is not application/json",
      422: "Invalid field(s), named in `errors`",
      503:
        "The database is unavailable or did not answer a read in time (`database-unavailable`), or a write's outcome is unknown (`outcome-unknown`: a claim made comes back at its lease; a replay may be sent again); see Retry-After",
    },
    gateway: {
      403: "a caller outside HERALD_INTERNAL_CIDR (ip-restriction)",
      413: "body over 1 MB (`Request size limit exceeded`)",
      417: "`Expect: 100-continue` declaring a body over 1 MB",
      502: "the functions' runtime did not answer",
      504: "the functions' runtime timed out",
    },
    security: {
      type: "http",
      scheme: "bearer",
      description:
        "HERALD_DISPATCH_KEY, the service-role key, or a secret key (also accepted in apikey).",
    },
  });
}
