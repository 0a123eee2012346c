/**
 * The notify function's OpenAPI 3.1 document, generated from the zod schemas
 * the routes validate with (never written by hand). A test checks that its
 * paths are exactly the app's routes.
 *
 * @module
 */
import {
  buildOpenApi,
  DOCUMENT_OPERATION,
  jsonSchema,
  type Operation as SharedOperation,
} from "../_shared/http/openapi.ts";
import * as A from "./answers.ts";
import {
  BulkRequest,
  IdempotencyKey,
  NotifyRequest,
  Preferences,
  RegisterDevice,
  Topic,
  WebhookEndpointRequest,
  WebhookEndpointUpdate,
} from "./schemas.ts";

/** One notify operation: who calls it, and whether it takes an Idempotency-Key. */
type Operation = SharedOperation & {
  callers: "users" | "services" | "users and services" | "anyone with the anon key";
  idempotent?: boolean;
};

/** Every route of the notify function. */
export const OPERATIONS: Operation[] = [
  {
    method: "post",
    path: "/",
    summary:
      "Notify users (or, for services, raw tokens, e-mail addresses and webhook endpoints). Small audiences get their first attempt inline.",
    callers: "users and services",
    body: NotifyRequest,
    idempotent: true,
    responses: {
      201: "Created and attempted inline: `results` holds each delivery's status",
      202: "Accepted: deliveries wait for the dispatcher (scheduled, large, or quiet hours)",
    },
    answers: { 201: A.AttemptedInline, 202: A.Accepted },
    answerHeaders: {
      201: ["Location", "Idempotent-Replayed"],
      202: ["Location", "Idempotent-Replayed"],
    },
  },
  {
    method: "post",
    path: "/bulk",
    summary: "Fan one notification out to up to 10,000 user ids or to every subscriber of a topic.",
    callers: "services",
    body: BulkRequest,
    idempotent: true,
    responses: { 202: "Accepted: the id is the job id; read progress at /bulk/{id}" },
    answers: { 202: A.Accepted },
    answerHeaders: { 202: ["Location", "Idempotent-Replayed"] },
  },
  {
    method: "get",
    path: "/bulk/{id}",
    summary:
      "Progress of a bulk notification (or of one a user sent with POST /notify): deliveries counted by status.",
    callers: "users and services",
    responses: { 200: "Counts by status" },
    answers: { 200: A.BulkProgress },
  },
  {
    method: "get",
    path: "/notifications/{id}",
    summary: "A notification with its deliveries (first 1000) and their attempts.",
    callers: "users and services",
    responses: { 200: "The notification, as its sender or a recipient sees it" },
    answers: { 200: A.Notification },
  },
  {
    method: "post",
    path: "/notifications/{id}/cancel",
    summary: "Cancel what has not gone out yet (scheduled or pending deliveries).",
    callers: "users and services",
    responses: { 200: "How many deliveries were cancelled" },
    answers: { 200: A.Cancelled },
  },
  {
    method: "put",
    path: "/devices",
    summary: "Register a device token, or refresh its last_seen_at by registering it again.",
    callers: "users",
    body: RegisterDevice,
    responses: { 200: "The device" },
    answers: { 200: A.Device },
  },
  {
    method: "get",
    path: "/devices",
    summary: "The caller's devices.",
    callers: "users",
    responses: { 200: "The devices" },
    answers: { 200: A.Devices },
  },
  {
    method: "delete",
    path: "/devices/{id}",
    summary: "Remove one of the caller's devices.",
    callers: "users",
    responses: { 204: "Removed" },
  },
  {
    method: "get",
    path: "/topics",
    summary: "The caller's topic subscriptions.",
    callers: "users",
    responses: { 200: "The subscriptions" },
    answers: { 200: A.Topics },
  },
  {
    method: "put",
    path: "/topics/{topic}",
    summary: "Subscribe the caller (services: ?user_id=) to a topic.",
    callers: "users and services",
    responses: { 200: "The subscription" },
    answers: { 200: A.Subscription },
  },
  {
    method: "delete",
    path: "/topics/{topic}",
    summary: "Unsubscribe the caller (services: ?user_id=) from a topic.",
    callers: "users and services",
    responses: { 204: "Unsubscribed" },
  },
  {
    method: "get",
    path: "/preferences",
    summary: "The caller's time zone, quiet hours and opt-outs.",
    callers: "users",
    responses: { 200: "The preferences" },
    answers: { 200: A.StoredPreferences },
  },
  {
    method: "put",
    path: "/preferences",
    summary: "Replace the caller's time zone, quiet hours and opt-outs.",
    callers: "users",
    body: Preferences,
    responses: { 200: "The stored preferences" },
    answers: { 200: A.StoredPreferences },
  },
  {
    method: "post",
    path: "/webhook-endpoints",
    summary: "Register a webhook endpoint; the answer shows its signing secret once.",
    callers: "users",
    body: WebhookEndpointRequest,
    responses: { 201: "The endpoint with its secret" },
    answers: { 201: A.WebhookEndpointWithSecret },
    answerHeaders: { 201: ["Location"] },
  },
  {
    method: "get",
    path: "/webhook-endpoints",
    summary: "The caller's webhook endpoints (without secrets).",
    callers: "users",
    responses: { 200: "The endpoints" },
    answers: { 200: A.WebhookEndpoints },
  },
  {
    method: "delete",
    path: "/webhook-endpoints/{id}",
    summary: "Remove one of the caller's webhook endpoints.",
    callers: "users",
    responses: { 204: "Removed" },
  },
  {
    method: "patch",
    path: "/webhook-endpoints/{id}",
    summary:
      'Re-point one of the caller\'s webhook endpoints (new `url`) or re-enable it where it is (`"enabled": true`); either clears a disabled endpoint.',
    callers: "users",
    body: WebhookEndpointUpdate,
    responses: { 200: "The endpoint" },
    answers: { 200: A.WebhookEndpoint },
  },
  {
    method: "post",
    path: "/webhook-endpoints/{id}/rotate-secret",
    summary: "New signing secret; the previous one keeps signing for 24 hours.",
    callers: "users",
    responses: { 200: "The endpoint with its new secret" },
    answers: { 200: A.RotatedWebhookEndpoint },
  },
  { ...DOCUMENT_OPERATION, callers: "anyone with the anon key" },
];

const ERRORS: Record<number, string> = {
  400: "Malformed JSON",
  401: "Missing or invalid access token",
  403: "Not allowed (wrong kind of caller, or can_notify refused every recipient)",
  404:
    "Not found or not visible to the caller (`not-found`), or a notification older than Herald keeps (`past-retention`, saying when it was created)",
  413: "Body over 1 MB",
  415: "Body is not application/json",
  422: "Invalid field(s), named in `errors`",
  429: "Rate limited; see Retry-After",
  503:
    "The database is unavailable (`database-unavailable`: nothing was accepted) or went away while committing (`outcome-unknown`: retry with the same Idempotency-Key); see Retry-After",
};

/**
 * Builds the document for the function deployed as `slug` (`notify`, or
 * `notify-canary` on a canary): its paths are the ones that slug answers.
 */
export function openApiDocument(slug = "notify"): Record<string, unknown> {
  return buildOpenApi({
    slug,
    title: "Herald notify",
    description:
      "Notifications by push (FCM), e-mail and signed webhooks. Errors are RFC 9457 problem+json; every answer carries x-request-id.",
    operations: OPERATIONS.map((op) => ({
      ...op,
      parameters: [
        ...(op.path.startsWith("/topics/")
          ? [{
            name: "user_id",
            in: "query",
            required: false,
            description: "Services only: whose subscription.",
            schema: { type: "string", format: "uuid" },
          }]
          : []),
        ...(op.idempotent
          ? [{
            name: "Idempotency-Key",
            in: "header",
            required: false,
            description:
              "A repeat within 24 h returns the first answer; reuse with another body is a 422.",
            schema: jsonSchema(IdempotencyKey),
          }]
          : []),
      ],
      errors: op.callers === "anyone with the anon key" ? [401, 404] : undefined,
      open: op.callers === "anyone with the anon key",
    })),
    errors: ERRORS,
    security: {
      type: "http",
      scheme: "bearer",
      description:
        "A user's Supabase access token, or the service-role key; the anon key reaches only the document itself.",
    },
    pathParameters: { topic: Topic },
    gatewayKey: true,
    rateLimited: true,
    gateway: {
      401: "no API key, or one Kong does not know (`apikey`/`sb-api-key`)",
      413: "body over 1 MB (`Request size limit exceeded`)",
      417: "`Expect: 100-continue` declaring a body over 1 MB",
      429:
        "over 1,000 requests a minute from one address with the publishable/anon key; no Retry-After: retry when the minute turns",
      502: "the functions' runtime did not answer",
      504: "the functions' runtime timed out",
    },
  });
}
