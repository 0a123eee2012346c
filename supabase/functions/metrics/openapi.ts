/**
 * The metrics function's OpenAPI document.
 *
 * @module
 */
import { buildOpenApi, DOCUMENT_OPERATION, type Operation } from "../_shared/http/openapi.ts";

const OPERATIONS: Operation[] = [
  {
    method: "get",
    path: "/",
    summary:
      "Prometheus scrape: delivery, attempt, queue, request and breaker series (OpenMetrics when Accept asks).",
    callers: "the service-role key, a secret key or the dispatch key",
    parameters: [{
      name: "Accept",
      in: "header",
      required: false,
      description: "application/openmetrics-text for OpenMetrics 1.0; else the text format 0.0.4.",
      schema: { type: "string" },
    }],
    produces: "text/plain; version=0.0.4",
    responses: { 200: "The exposition" },
  },
  DOCUMENT_OPERATION,
];

/** The document under the slug called. */
export function openApiDocument(slug = "metrics"): Record<string, unknown> {
  return buildOpenApi({
    slug,
    title: "Herald metrics",
    description: "Prometheus metrics from state that outlives isolates (docs/OBSERVABILITY.md).",
    operations: OPERATIONS,
    errors: { 401: "No key", 403: "A key that may not read metrics" },
    gateway: {
      403: "a caller outside HERALD_INTERNAL_CIDR (ip-restriction)",
      502: "the functions' runtime did not answer",
      504: "the functions' runtime timed out",
    },
    security: {
      type: "http",
      scheme: "bearer",
      description: "The service-role key, a secret key or HERALD_DISPATCH_KEY.",
    },
  });
}
