/**
 * The health function's OpenAPI document.
 *
 * @module
 */
import { buildOpenApi, DOCUMENT_OPERATION, type Operation } from "../_shared/http/openapi.ts";

const OPERATIONS: Operation[] = [
  {
    method: "get",
    path: "/",
    summary: "Liveness: the process answers (touches neither Postgres nor Redis).",
    callers: "anyone",
    responses: { 200: "{status: ok}" },
    errors: [],
    open: true,
  },
  {
    method: "get",
    path: "/ready",
    summary:
      "Readiness: Postgres, Redis, the queue's lag and the breakers; details and the build for key holders.",
    callers: "anyone; key holders see the details",
    responses: { 200: "ready or degraded", 503: "not ready: Postgres is unreachable" },
    errors: [],
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
    errors: {},
    security: {
      type: "http",
      scheme: "bearer",
      description:
        "Optional: the service-role key, a secret key or the dispatch key shows readiness details.",
    },
  });
}
