/**
 * What Herald counts: label values, histogram bounds and the error classes
 * attempts are counted under. Shared by the code that counts (the outbox's
 * write-back, the HTTP shell) and the metrics function that exposes them, so
 * the two cannot disagree on a bound or a label.
 *
 * @module
 */

/** Delivery outcomes counted by `herald_deliveries_total`. */
export const OUTCOMES = [
  "sent",
  "retried",
  "failed",
  "expired",
  "dead",
  "deferred",
  "released",
  "cancelled",
] as const;

/** Upper bounds (seconds) of the provider attempt latency histogram. */
export const ATTEMPT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Upper bounds (seconds) of the enqueue-to-attempt and enqueue-to-sent histograms. */
export const QUEUE_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/** Upper bounds (seconds) of the notify request duration histogram (the 500 ms SLO is one). */
export const REQUEST_BUCKETS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Error codes counted by name. Anything else a provider says is `other`, and
 * HTTP statuses collapse to their class: the label set stays bounded whatever
 * a receiver answers.
 */
const NAMED_ERRORS = new Set([
  // FCM
  "UNREGISTERED",
  "SENDER_ID_MISMATCH",
  "PERMISSION_DENIED",
  "INVALID_ARGUMENT",
  "THIRD_PARTY_AUTH_ERROR",
  "QUOTA_EXCEEDED",
  "UNAVAILABLE",
  "INTERNAL",
  "UNAUTHENTICATED",
  "FCM_MISCONFIGURED",
  "OAUTH",
  "INVALID_DATA",
  "PAYLOAD_TOO_LARGE",
  // e-mail API
  "rate_limit_exceeded",
  "daily_quota_exceeded",
  "monthly_quota_exceeded",
  "concurrent_idempotent_requests",
  "invalid_idempotent_request",
  "EMPTY_EMAIL",
  // webhooks
  "GONE",
  "REDIRECT",
  "SSRF_BLOCKED",
  "DNS",
  "NO_SECRET",
  "INVALID_SECRET",
  // every channel
  "TIMEOUT",
  "DISPATCHER_STALLED",
  "NETWORK",
  "NOT_CONFIGURED",
  "BREAKER_OPEN",
  "TARGET_DISABLED",
]);

/** The `error_class` label of an attempt: `none` when it succeeded. */
export function errorClass(outcome: string, code: string | undefined): string {
  if (outcome === "sent") return "none";
  if (outcome === "expired") return "expired";
  if (!code) return "unknown";
  if (NAMED_ERRORS.has(code)) return code.toLowerCase();
  const http = code.match(/^HTTP_([1-5])\d\d$/);
  return http ? `http_${http[1]}xx` : "other";
}
