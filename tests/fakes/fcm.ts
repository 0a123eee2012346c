/**
 * FCM HTTP v1 `messages:send`: checks the bearer token the OAuth stand-in
 * issued, validates the body against FCM's `Message` schema (unknown fields,
 * targets, string-only data, reserved keys, the 4096-byte limit) and answers
 * with a message name or FCM's own error bodies.
 *
 * Shorthand for the behaviour queue: `{ "fcm_error": "UNREGISTERED", "retry_after"?: 30 }`.
 * Per-token errors: `POST /_control/tokens {"token": "...", "fcm_error": "UNREGISTERED"}`.
 *
 * @module
 */
import { z } from "zod";
import { FakeControl, type FakeHandler, scriptedResponse } from "./control.ts";
import type { TokenRegistry } from "./google_oauth.ts";

/** FCM error codes and the HTTP status and canonical status FCM sends with each. */
export const FCM_ERRORS = {
  UNREGISTERED: [404, "NOT_FOUND", "Requested entity was not found."],
  INVALID_ARGUMENT: [400, "INVALID_ARGUMENT", "Request contains an invalid argument."],
  SENDER_ID_MISMATCH: [403, "PERMISSION_DENIED", "SenderId mismatch"],
  QUOTA_EXCEEDED: [429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Send requests'."],
  UNAVAILABLE: [503, "UNAVAILABLE", "The service is currently unavailable."],
  INTERNAL: [500, "INTERNAL", "Internal error encountered."],
  THIRD_PARTY_AUTH_ERROR: [401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"],
} as const;

/** An FCM error code the stand-in can produce. */
export type FcmErrorCode = keyof typeof FCM_ERRORS;

/** FCM's error response for `code`. */
export function fcmErrorResponse(
  code: FcmErrorCode,
  options: { message?: string; retryAfter?: number; field?: string } = {},
): Response {
  const [status, canonical, message] = FCM_ERRORS[code];
  const details: unknown[] = [{
    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
    errorCode: code,
  }];
  if (options.field) {
    details.push({
      "@type": "type.googleapis.com/google.rpc.BadRequest",
      fieldViolations: [{ field: options.field, description: options.message ?? message }],
    });
  }
  const headers: Record<string, string> = {};
  if (options.retryAfter !== undefined) headers["retry-after"] = String(options.retryAfter);
  return Response.json(
    { error: { code: status, message: options.message ?? message, status: canonical, details } },
    { status, headers },
  );
}

const StringMap = z.record(z.string(), z.string());
const Duration = z.string().regex(/^\d+(\.\d{1,9})?s$/);
const Link = z.string();
const FcmOptions = z.strictObject({
  analytics_label: z.string().regex(/^[a-zA-Z0-9-_.~%]{1,50}$/).optional(),
});

const AndroidNotification = z.strictObject({
  title: z.string(),
  body: z.string(),
  icon: z.string(),
  color: z.string().regex(/^#[0-9a-fA-F]{6}$/),
  sound: z.string(),
  tag: z.string(),
  click_action: z.string(),
  body_loc_key: z.string(),
  body_loc_args: z.array(z.string()),
  title_loc_key: z.string(),
  title_loc_args: z.array(z.string()),
  channel_id: z.string(),
  ticker: z.string(),
  sticky: z.boolean(),
  event_time: z.string(),
  local_only: z.boolean(),
  notification_priority: z.enum([
    "PRIORITY_UNSPECIFIED",
    "PRIORITY_MIN",
    "PRIORITY_LOW",
    "PRIORITY_DEFAULT",
    "PRIORITY_HIGH",
    "PRIORITY_MAX",
  ]),
  default_sound: z.boolean(),
  default_vibrate_timings: z.boolean(),
  default_light_settings: z.boolean(),
  vibrate_timings: z.array(Duration),
  visibility: z.enum(["VISIBILITY_UNSPECIFIED", "PRIVATE", "PUBLIC", "SECRET"]),
  notification_count: z.number().int(),
  light_settings: z.record(z.string(), z.unknown()),
  image: Link,
  bypass_proxy_notification: z.boolean(),
  proxy: z.enum(["PROXY_UNSPECIFIED", "ALLOW", "DENY", "IF_PRIORITY_LOWERED"]),
}).partial(); // deno-fmt-ignore

const Message = z.strictObject({
  name: z.string().optional(),
  token: z.string().min(1).optional(),
  topic: z.string().regex(/^[a-zA-Z0-9-_.~%]+$/).optional(),
  condition: z.string().min(1).optional(),
  data: StringMap.optional(),
  notification: z.strictObject({ title: z.string(), body: z.string(), image: Link }).partial().optional(),
  android: z.strictObject({
    collapse_key: z.string(),
    priority: z.enum(["NORMAL", "HIGH"]),
    ttl: Duration,
    restricted_package_name: z.string(),
    data: StringMap,
    notification: AndroidNotification,
    fcm_options: FcmOptions,
    direct_boot_ok: z.boolean(),
    bandwidth_constrained_ok: z.boolean(),
    restricted_satellite_ok: z.boolean(),
  }).partial().optional(),
  webpush: z.strictObject({
    headers: StringMap,
    data: StringMap,
    notification: z.record(z.string(), z.unknown()),
    fcm_options: z.strictObject({ link: z.string().startsWith("https://"), analytics_label: z.string() }).partial(),
  }).partial().optional(),
  apns: z.strictObject({
    headers: StringMap,
    payload: z.looseObject({ aps: z.record(z.string(), z.unknown()).optional() }),
    fcm_options: z.strictObject({ analytics_label: z.string(), image: z.string() }).partial(),
    live_activity_token: z.string(),
  }).partial().optional(),
  fcm_options: FcmOptions.optional(),
});

const SendRequest = z.strictObject({ message: Message, validate_only: z.boolean().optional() });

const RESERVED_DATA_KEY = /^(from|notification|message_type)$|^(google|gcm)\./;

/** FCM's limit on a message's payload. */
export const MAX_PAYLOAD_BYTES = 4096;

/** Handles `POST /v1/projects/{id}/messages:send`. */
export function fcmHandler(options: { tokens: TokenRegistry; control: FakeControl }): FakeHandler {
  const tokenErrors = new Map<string, FcmErrorCode>();
  const previousReset = options.control.onReset;
  options.control.onReset = () => {
    previousReset();
    tokenErrors.clear();
  };
  options.control.routes.set("POST /_control/tokens", async (request) => {
    const body = await request.json().catch(() => undefined) as {
      token?: unknown;
      fcm_error?: unknown;
    } | undefined;
    if (typeof body?.token !== "string" || !(String(body.fcm_error) in FCM_ERRORS)) {
      return Response.json({ error: "send {token, fcm_error} with a known FCM error code" }, {
        status: 400,
      });
    }
    tokenErrors.set(body.token, body.fcm_error as FcmErrorCode);
    return new Response(null, { status: 204 });
  });
  let sequence = 0;

  return ({ request, url, json }, scripted) => {
    const route = url.pathname.match(/^\/v1\/projects\/([^/]+)\/messages:send$/);
    if (!route || request.method !== "POST") {
      return Response.json({ error: { code: 404, message: "Not Found", status: "NOT_FOUND" } }, {
        status: 404,
      });
    }
    const bearer = request.headers.get("authorization")?.match(/^Bearer (.+)$/)?.[1];
    const issued = bearer ? options.tokens.get(bearer) : undefined;
    if (!issued || issued.expiresAt < Date.now()) {
      return Response.json({
        error: {
          code: 401,
          message:
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
          status: "UNAUTHENTICATED",
        },
      }, { status: 401 });
    }
    if (issued.projectId !== decodeURIComponent(route[1])) {
      return Response.json({
        error: {
          code: 403,
          message: "Permission 'cloudmessaging.messages.create' denied",
          status: "PERMISSION_DENIED",
        },
      }, { status: 403 });
    }
    if (scripted) {
      if (typeof scripted.fcm_error === "string" && scripted.fcm_error in FCM_ERRORS) {
        return fcmErrorResponse(scripted.fcm_error as FcmErrorCode, {
          retryAfter: scripted.retry_after as number | undefined,
        });
      }
      return scriptedResponse(scripted);
    }
    const parsed = SendRequest.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue.path.join(".");
      const message = issue.code === "unrecognized_keys"
        ? `Invalid JSON payload received. Unknown name "${issue.keys[0]}" at '${
          field || "message"
        }': Cannot find field.`
        : `Invalid value at '${field}': ${issue.message}`;
      return fcmErrorResponse("INVALID_ARGUMENT", { message, field });
    }
    const message = parsed.data.message;
    const targets = [message.token, message.topic, message.condition].filter((t) =>
      t !== undefined
    );
    if (targets.length !== 1) {
      return fcmErrorResponse("INVALID_ARGUMENT", {
        message: "Exactly one of token, topic or condition must be specified.",
        field: "message",
      });
    }
    for (const map of [message.data, message.android?.data, message.webpush?.data]) {
      const reserved = Object.keys(map ?? {}).find((key) => RESERVED_DATA_KEY.test(key));
      if (reserved) {
        return fcmErrorResponse("INVALID_ARGUMENT", {
          message: `Invalid data payload key: ${reserved}`,
          field: "message.data",
        });
      }
    }
    const { token: _t, topic: _p, condition: _c, ...payload } = message;
    if (new TextEncoder().encode(JSON.stringify(payload)).length > MAX_PAYLOAD_BYTES) {
      return fcmErrorResponse("INVALID_ARGUMENT", {
        message: "Message is too big",
        field: "message",
      });
    }
    const tokenError = message.token ? tokenErrors.get(message.token) : undefined;
    if (tokenError) return fcmErrorResponse(tokenError);
    const id = parsed.data.validate_only
      ? "fake_message_id"
      : `0:${Date.now()}%${(++sequence).toString(16)}`;
    return Response.json({ name: `projects/${route[1]}/messages/${id}` });
  };
}
