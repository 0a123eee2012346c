/**
 * A Resend-compatible e-mail API: `POST /emails` with `Authorization: Bearer re_…`,
 * Resend's `{ statusCode, name, message }` error bodies, and `Idempotency-Key`
 * honoured for 24 hours (same key and body → the same id, no second e-mail; same
 * key, other body → 409; a key outside 1–256 characters → 400).
 *
 * Shorthand for the behaviour queue: `{ "resend_error": "daily_quota_exceeded",
 * "retry_after"?: 30 }` answers with that error's status and message; a bare
 * `{ "status": 429 }` is `rate_limit_exceeded` with `retry-after: 1`.
 * Given a `control`, `GET /_control/emails` lists the e-mails accepted, one per
 * id, and `POST /_control/reset` forgets them and their idempotency keys.
 *
 * @module
 */
import { z } from "zod";
import { type FakeControl, type FakeHandler, scriptedResponse } from "./control.ts";

/** Resend error names, with the status and message Resend sends with each. */
export const RESEND_ERRORS = {
  invalid_idempotency_key: [400, "The key must be between 1-256 chars."],
  validation_error: [422, "We found an error with one or more fields in the request."],
  missing_required_field: [422, "The request body is missing one or more required fields."],
  missing_api_key: [
    401,
    "Missing API key in the authorization header. Include the following header 'Authorization: Bearer YOUR_API_KEY' in the request.",
  ],
  invalid_api_key: [403, "API key is invalid"],
  not_found: [404, "The requested endpoint does not exist."],
  invalid_idempotent_request: [
    409,
    "Same idempotency key used with a different request payload. Change your idempotency key or payload.",
  ],
  concurrent_idempotent_requests: [
    409,
    "Same idempotency key used while original request is still in progress. Try the request again later.",
  ],
  rate_limit_exceeded: [429, "Too many requests. You can only make 2 requests per second."],
  daily_quota_exceeded: [429, "You have reached your daily email sending quota."],
  monthly_quota_exceeded: [429, "You have reached your monthly email sending quota."],
  application_error: [500, "An unexpected error occurred."],
  internal_server_error: [500, "An unexpected error occurred."],
} as const;

/** A Resend error name the stand-in can produce. */
export type ResendErrorName = keyof typeof RESEND_ERRORS;

/** Resend's error response for `name`. */
export function resendErrorResponse(
  name: ResendErrorName,
  options: { message?: string; headers?: Record<string, string> } = {},
): Response {
  const [statusCode, message] = RESEND_ERRORS[name];
  return Response.json(
    { statusCode, name, message: options.message ?? message },
    { status: statusCode, headers: options.headers },
  );
}

/** An e-mail the stand-in accepted. */
export interface AcceptedEmail {
  id: string;
  at: string;
  idempotencyKey: string | null;
  /** The request body as sent. */
  email: unknown;
}

const Address = z.string().regex(/^[^\s@<>]+@[^\s@<>]+$|^[^<>]*<[^\s@<>]+@[^\s@<>]+>$/);
/** Resend's tag alphabet, for names and values alike. */
const TagPart = z.string().regex(/^[A-Za-z0-9_-]{1,256}$/);
const Email = z.object({
  from: Address,
  to: z.union([Address, z.array(Address).min(1).max(50)]),
  subject: z.string().min(1),
  html: z.string().optional(),
  text: z.string().optional(),
  cc: z.union([Address, z.array(Address)]).optional(),
  bcc: z.union([Address, z.array(Address)]).optional(),
  reply_to: z.union([Address, z.array(Address)]).optional(),
  headers: z.record(z.string(), z.string()).optional(),
  tags: z.array(z.object({ name: TagPart, value: TagPart })).optional(),
}).refine((e) => e.html !== undefined || e.text !== undefined, {
  message: "Missing `html` or `text` field.",
});

const REQUIRED_FIELDS = ["from", "to", "subject"];

/**
 * Handles `POST /emails`; `apiKeys` empty means any `re_` key is accepted.
 *
 * @param options.control the stand-in's control, to serve `GET /_control/emails`
 */
export function emailHandler(
  options: { apiKeys?: string[]; control?: FakeControl } = {},
): FakeHandler {
  const byKey = new Map<string, { body: string; id: string; at: number }>();
  let accepted: AcceptedEmail[] = [];
  if (options.control) {
    const control = options.control;
    const previousReset = control.onReset;
    control.onReset = () => {
      previousReset();
      byKey.clear();
      accepted = [];
    };
    control.routes.set(
      "GET /_control/emails",
      () => Promise.resolve(Response.json({ emails: accepted })),
    );
  }
  return ({ request, url, text, json }, scripted) => {
    if (request.method !== "POST" || url.pathname !== "/emails") {
      return resendErrorResponse("not_found");
    }
    const key = request.headers.get("authorization")?.match(/^Bearer (.+)$/)?.[1];
    if (!key) return resendErrorResponse("missing_api_key");
    if (options.apiKeys?.length ? !options.apiKeys.includes(key) : !key.startsWith("re_")) {
      return resendErrorResponse("invalid_api_key");
    }
    if (scripted) return _scripted(scripted);
    const idempotencyKey = request.headers.get("idempotency-key");
    if (idempotencyKey !== null && !(idempotencyKey.length >= 1 && idempotencyKey.length <= 256)) {
      return resendErrorResponse("invalid_idempotency_key");
    }
    if (json === undefined) {
      return resendErrorResponse("validation_error", {
        message: "Request body is not valid JSON.",
      });
    }
    const parsed = Email.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue.path.join(".");
      const missing = REQUIRED_FIELDS.includes(field) &&
        (json as Record<string, unknown>)[field] === undefined;
      return missing
        ? resendErrorResponse("missing_required_field", { message: `Missing \`${field}\` field.` })
        : resendErrorResponse("validation_error", {
          message: field ? `Invalid \`${field}\` field.` : issue.message,
        });
    }
    if (idempotencyKey) {
      const previous = byKey.get(idempotencyKey);
      if (previous && Date.now() - previous.at < 24 * 3600_000) {
        if (previous.body !== text) return resendErrorResponse("invalid_idempotent_request");
        return Response.json({ id: previous.id });
      }
    }
    const id = crypto.randomUUID();
    if (idempotencyKey) byKey.set(idempotencyKey, { body: text, id, at: Date.now() });
    accepted.push({ id, at: new Date().toISOString(), idempotencyKey, email: json });
    return Response.json({ id });
  };
}

function _scripted(scripted: Record<string, unknown>): Response {
  const headers = (scripted.headers as Record<string, string> | undefined) ?? {};
  const retryAfter: Record<string, string> = scripted.retry_after === undefined
    ? {}
    : { "retry-after": String(scripted.retry_after) };
  if (typeof scripted.resend_error === "string" && scripted.resend_error in RESEND_ERRORS) {
    return resendErrorResponse(scripted.resend_error as ResendErrorName, {
      headers: { ...retryAfter, ...headers },
    });
  }
  if (scripted.status === 429 && scripted.body === undefined) {
    // Resend sends retry-after with every 429.
    return resendErrorResponse("rate_limit_exceeded", {
      headers: { "retry-after": "1", ...retryAfter, ...headers },
    });
  }
  return scriptedResponse(scripted);
}
