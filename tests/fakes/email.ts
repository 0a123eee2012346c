/**
 * A Resend-compatible e-mail API: `POST /emails` with `Authorization: Bearer re_…`,
 * validation errors as 422, and `Idempotency-Key` honoured for 24 hours (same key
 * and body → the same id, no second e-mail; same key, other body → 409).
 *
 * @module
 */
import { z } from "zod";
import { type FakeHandler, scriptedResponse } from "./control.ts";

const Address = z.string().regex(/^[^\s@<>]+@[^\s@<>]+$|^[^<>]*<[^\s@<>]+@[^\s@<>]+>$/);
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
  tags: z.array(z.object({ name: z.string(), value: z.string() })).optional(),
}).refine((e) => e.html !== undefined || e.text !== undefined, {
  message: "Missing `html` or `text` field.",
});

const resendError = (statusCode: number, name: string, message: string) =>
  Response.json({ statusCode, name, message }, { status: statusCode });

/** Handles `POST /emails`; `apiKeys` empty means any `re_` key is accepted. */
export function emailHandler(options: { apiKeys?: string[] } = {}): FakeHandler {
  const sent = new Map<string, { body: string; id: string; at: number }>();
  return ({ request, url, text, json }, scripted) => {
    if (request.method !== "POST" || url.pathname !== "/emails") {
      return resendError(404, "not_found", "The requested endpoint does not exist.");
    }
    const key = request.headers.get("authorization")?.match(/^Bearer (.+)$/)?.[1];
    if (!key) {
      return resendError(
        401,
        "missing_api_key",
        "Missing API key in the authorization header. Include the following header 'Authorization: Bearer YOUR_API_KEY' in the request.",
      );
    }
    if (options.apiKeys?.length ? !options.apiKeys.includes(key) : !key.startsWith("re_")) {
      return resendError(403, "invalid_api_key", "API key is invalid");
    }
    if (scripted) {
      if (scripted.status === 429 && scripted.body === undefined) {
        return resendError(
          429,
          "rate_limit_exceeded",
          "Too many requests. You can only make 2 requests per second.",
        );
      }
      return scriptedResponse(scripted);
    }
    if (json === undefined) {
      return resendError(400, "invalid_request", "Request body is not valid JSON.");
    }
    const parsed = Email.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return resendError(
        422,
        "validation_error",
        issue.path.length ? `Invalid \`${issue.path.join(".")}\` field.` : issue.message,
      );
    }
    const idempotencyKey = request.headers.get("idempotency-key");
    if (idempotencyKey) {
      const previous = sent.get(idempotencyKey);
      if (previous && Date.now() - previous.at < 24 * 3600_000) {
        if (previous.body !== text) {
          return resendError(
            409,
            "invalid_idempotent_request",
            "Same idempotency key used with a different request payload. Change your idempotency key or payload.",
          );
        }
        return Response.json({ id: previous.id });
      }
    }
    const id = crypto.randomUUID();
    if (idempotencyKey) sent.set(idempotencyKey, { body: text, id, at: Date.now() });
    return Response.json({ id });
  };
}
