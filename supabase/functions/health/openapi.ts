/**
 * The health function's OpenAPI document.
 *
 * @module
 */
import { z } from "zod";
import {
  buildOpenApi,
  DOCUMENT_OPERATION,
  type Operation,
  Timestamp,
} from "../_shared/http/openapi.ts";

/** One dependency's check. */
const Check = z.union([
  z.object({ status: z.literal("ok"), duration_ms: z.number() }),
  z.object({ status: z.literal("failed"), duration_ms: z.number(), error: z.string() }),
  z.object({ status: z.literal("not-configured") }),
]);
const Failed = z.object({ error: z.string() });

/** `GET /ready`: the status for anyone; what it rests on for key holders. */
export const Readiness = z.object({
  status: z.enum(["ok", "degraded"]),
  build: z.object({ version: z.string(), git_sha: z.string(), deployment: z.string() })
    .optional(),
  checks: z.object({ postgres: Check, redis: Check }).optional(),
  reasons: z.array(z.string()).optional().describe("Why degraded"),
  queue: z.union([
    z.object({
      due: z.number().int(),
      due_capped: z.boolean().describe("More are due than `due` says"),
      oldest_due_age_s: z.number(),
      oldest_pending_age_s: z.number().nullable(),
      last_attempt_age_s: z.number().nullable(),
    }),
    Failed,
  ]).optional(),
  breakers: z.union([
    z.object({
      targets: z.array(z.object({
        target: z.string(),
        state: z.enum(["closed", "open", "half-open"]),
        open_until: Timestamp.optional(),
        retry_in_s: z.number().int().optional(),
        probe_until: Timestamp.optional(),
        recent_failures: z.number().int(),
        recent_calls: z.number().int(),
      })),
      truncated: z.boolean(),
    }),
    Failed,
    z.null().describe("Redis is not configured: no shared breakers"),
  ]).optional(),
});

export const Liveness = z.object({ status: z.literal("ok") });

const OPERATIONS: Operation[] = [
  {
    method: "get",
    path: "/",
    summary: "Liveness: the process answers (touches neither Postgres nor Redis).",
    callers: "anyone",
    responses: { 200: "The process answers" },
    answers: { 200: Liveness },
    errors: [],
    open: true,
  },
  {
    method: "get",
    path: "/ready",
    summary:
      "Readiness: Postgres, Redis, the queue's lag and the breakers; details and the build for key holders.",
    callers: "anyone; key holders see the details",
    responses: { 200: "Ready, or degraded (named in `reasons`)" },
    answers: { 200: Readiness },
    errors: [503],
  },
  DOCUMENT_OPERATION,
];

/** The document under the slug called. */
export function openApiDocument(slug = "health"): Record<string, unknown> {
  return buildOpenApi({
    slug,
    title: "Herald health",
    description: "Liveness and readiness for load balancers and operators.",
    operations: OPERATIONS,
    errors: {
      503:
        "Not ready: Postgres is unreachable (problem+json; key holders also get the details above)",
    },
    gateway: {
      429:
        "over 1,000 requests a minute from one address; no Retry-After: retry when the minute turns",
      502: "the functions' runtime did not answer",
      504: "the functions' runtime timed out",
    },
    security: {
      type: "http",
      scheme: "bearer",
      description:
        "Optional: the service-role key, a secret key or the dispatch key shows readiness details.",
    },
  });
}
