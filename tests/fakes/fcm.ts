/**
 * FCM HTTP v1 `messages:send`: checks the bearer token the OAuth stand-in
 * issued, validates the body against FCM's `Message` schema (unknown fields,
 * targets, string-only data, reserved keys, the 4096-byte limit) and answers
 * with a message name or FCM's own error bodies.
 *
 * Shorthand for the behaviour queue: `{ "fcm_error": "UNREGISTERED", "retry_after"?: 30 }`.
 * Per-token errors: `POST /_control/tokens {"token": "...", "fcm_error": "UNREGISTERED"}`.
 * Accepted messages: `GET /_control/messages` → `{ total, received, messages: [{ name, message }] }`,
 * the messages FCM would deliver (the latest 10,000; `received` counts every one since the
 * last reset) — `validate_only` dry runs are answered but not listed.
 *
 * @module
 */
import { z } from "zod";
import { FakeControl, type FakeHandler, scriptedResponse } from "./control.ts";
import type { TokenRegistry } from "./google_oauth.ts";

/**
 * FCM error codes and the HTTP status, canonical status and message FCM sends
 * with each; a fourth element overrides the FcmError detail's `errorCode`
 * (`null`: no details at all, as FCM sometimes answers).
 */
export const FCM_ERRORS: Record<string, readonly [number, string, string, (string | null)?]> = {
  UNREGISTERED: [404, "NOT_FOUND", "Requested entity was not found."],
  INVALID_ARGUMENT: [400, "INVALID_ARGUMENT", "Request contains an invalid argument."],
  SENDER_ID_MISMATCH: [403, "PERMISSION_DENIED", "SenderId mismatch"],
  QUOTA_EXCEEDED: [429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Send requests'."],
  UNAVAILABLE: [503, "UNAVAILABLE", "The service is currently unavailable."],
  INTERNAL: [500, "INTERNAL", "Internal error encountered."],
  THIRD_PARTY_AUTH_ERROR: [401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"],
  APNS_AUTH_ERROR: [401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"],
  /** A malformed token, as FCM reports it: INVALID_ARGUMENT naming the registration token. */
  INVALID_REGISTRATION_TOKEN: [
    400,
    "INVALID_ARGUMENT",
    "The registration token is not a valid FCM registration token",
    "INVALID_ARGUMENT",
  ],
  /** An unregistered token answered without FcmError details. */
  NOT_FOUND: [404, "NOT_FOUND", "Requested entity was not found.", null],
};

/** An FCM error code the stand-in can produce. */
export type FcmErrorCode = string;

/** FCM's error response for `code`. */
export function fcmErrorResponse(
  code: FcmErrorCode,
  options: { message?: string; retryAfter?: number; field?: string } = {},
): Response {
  const [status, canonical, message, errorCode = code] = FCM_ERRORS[code];
  const details: unknown[] = errorCode === null ? [] : [{
    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
    errorCode,
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
    {
      error: {
        code: status,
        message: options.message ?? message,
        status: canonical,
        ...(details.length ? { details } : {}),
      },
    },
    { status, headers },
  );
}

const StringMap = z.record(z.string(), z.string());
const Duration = z.string().regex(/^\d+(\.\d{1,9})?s$/);
/** FCM keeps messages at most 28 days and refuses a longer `ttl`. */
const MAX_TTL_SECONDS = 2_419_200;
const Ttl = Duration.refine((d) => Number(d.slice(0, -1)) <= MAX_TTL_SECONDS, {
  message: "TTL must be at most 4 weeks",
});
/** google.protobuf.Timestamp in JSON: RFC 3339, "Z"-normalized. */
const Timestamp = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/);
const Link = z.string();
const AnalyticsLabel = z.string().regex(/^[a-zA-Z0-9-_.~%]{1,50}$/);
const FcmOptions = z.strictObject({ analytics_label: AnalyticsLabel.optional() });
/** google.type.Color: RGBA components in [0, 1]. */
const Unit = z.number().min(0).max(1);
const LightSettings = z.strictObject({
  color: z.strictObject({ red: Unit, green: Unit, blue: Unit, alpha: Unit }).partial(),
  light_on_duration: Duration,
  light_off_duration: Duration,
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
  event_time: Timestamp,
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
  light_settings: LightSettings,
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
    // FCM reads this enum in any case: firebase-admin sends "high".
    priority: z.string().transform((p) => p.toUpperCase()).pipe(z.enum(["NORMAL", "HIGH"])),
    ttl: Ttl,
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
    fcm_options: z.strictObject({ link: z.string().startsWith("https://"), analytics_label: AnalyticsLabel }).partial(),
  }).partial().optional(),
  apns: z.strictObject({
    headers: StringMap,
    payload: z.looseObject({ aps: z.record(z.string(), z.unknown()).optional() }),
    fcm_options: z.strictObject({ analytics_label: AnalyticsLabel, image: z.string() }).partial(),
    live_activity_token: z.string(),
  }).partial().optional(),
  fcm_options: FcmOptions.optional(),
});

const SendRequest = z.strictObject({ message: Message, validate_only: z.boolean().optional() });

/**
 * Values that are maps or free-form JSON (`google.protobuf.Struct`), whose
 * keys are data, not field names: proto3 JSON leaves them alone.
 */
const OPAQUE = new Set([
  "message.data",
  "message.android.data",
  "message.webpush.data",
  "message.webpush.headers",
  "message.webpush.notification",
  "message.apns.headers",
  "message.apns.payload",
]);

/**
 * Proto3 JSON, as FCM parses it: a field may be spelt as in the .proto
 * (`collapse_key`) or in lowerCamelCase (`collapseKey`), not both. Returns the
 * body with every field name in the .proto spelling, or what is wrong.
 */
export function protoFieldNames(value: unknown): unknown {
  try {
    return _snakeFields(value, "");
  } catch (error) {
    if (error instanceof TwiceGiven) return error.message;
    throw error;
  }
}

class TwiceGiven extends Error {}

function _snakeFields(value: unknown, path: string): unknown {
  if (Array.isArray(value)) return value.map((item) => _snakeFields(item, path));
  if (typeof value !== "object" || value === null || OPAQUE.has(path)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    const snake = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    if (snake in out) throw new TwiceGiven(`Field '${snake}' was given twice (as '${key}' too).`);
    out[snake] = _snakeFields(field, path ? `${path}.${snake}` : snake);
  }
  return out;
}

/**
 * Data keys FCM refuses. The reference names `from`, `message_type`, `google.*`
 * and `gcm.notification.*`; `gcm.*` is refused as a whole here, the stricter
 * reading. `notification` is accepted by FCM despite older documentation.
 */
const RESERVED_DATA_KEY = /^(from|message_type)$|^(google|gcm)\./;

/** FCM's limit on a message's payload. */
export const MAX_PAYLOAD_BYTES = 4096;

/**
 * What the 4096-byte limit counts here: the compact JSON of the content that
 * reaches the device — `notification`, `data` and each platform block's
 * notification, data and APNs payload — not the target, headers, TTL, priority
 * or options, which are transport and never part of the payload.
 */
function payloadBytes(message: z.infer<typeof Message>): number {
  const content = {
    notification: message.notification,
    data: message.data,
    android_notification: message.android?.notification,
    android_data: message.android?.data,
    apns_payload: message.apns?.payload,
    webpush_notification: message.webpush?.notification,
    webpush_data: message.webpush?.data,
  };
  return new TextEncoder().encode(JSON.stringify(content)).length;
}

/** A message the stand-in accepted for delivery. */
export interface AcceptedMessage {
  name: string;
  message: unknown;
}

const MAX_ACCEPTED = 10_000;

/** Handles `POST /v1/projects/{id}/messages:send`. */
export function fcmHandler(options: { tokens: TokenRegistry; control: FakeControl }): FakeHandler {
  const tokenErrors = new Map<string, FcmErrorCode>();
  let accepted: AcceptedMessage[] = [];
  // Every message accepted since the last reset; `accepted` keeps only the latest.
  let received = 0;
  const previousReset = options.control.onReset;
  options.control.onReset = () => {
    previousReset();
    tokenErrors.clear();
    accepted = [];
    received = 0;
  };
  options.control.routes.set(
    "GET /_control/messages",
    () => Promise.resolve(Response.json({ total: accepted.length, received, messages: accepted })),
  );
  options.control.routes.set("POST /_control/tokens", async (request) => {
    const body = await request.json().catch(() => undefined) as {
      token?: unknown;
      fcm_error?: unknown;
    } | undefined;
    if (typeof body?.token !== "string" || !(Object.hasOwn(FCM_ERRORS, String(body.fcm_error)))) {
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
      if (typeof scripted.fcm_error === "string" && Object.hasOwn(FCM_ERRORS, scripted.fcm_error)) {
        return fcmErrorResponse(scripted.fcm_error as FcmErrorCode, {
          retryAfter: scripted.retry_after as number | undefined,
        });
      }
      return scriptedResponse(scripted);
    }
    const spelled = protoFieldNames(json);
    if (typeof spelled === "string") {
      return fcmErrorResponse("INVALID_ARGUMENT", {
        message: `Invalid JSON payload received. ${spelled}`,
        field: "message",
      });
    }
    const parsed = SendRequest.safeParse(spelled);
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
    if (payloadBytes(message) > MAX_PAYLOAD_BYTES) {
      return fcmErrorResponse("INVALID_ARGUMENT", {
        message: "Message is too big",
        field: "message",
      });
    }
    const tokenError = message.token ? tokenErrors.get(message.token) : undefined;
    if (tokenError) return fcmErrorResponse(tokenError);
    if (parsed.data.validate_only) {
      return Response.json({ name: `projects/${route[1]}/messages/fake_message_id` });
    }
    const name = `projects/${route[1]}/messages/0:${Date.now()}%${(++sequence).toString(16)}`;
    accepted.push({ name, message: json && (json as { message: unknown }).message });
    received++;
    // Trimmed in chunks, as the request log is.
    if (accepted.length > MAX_ACCEPTED * 1.25) accepted.splice(0, accepted.length - MAX_ACCEPTED);
    return Response.json({ name });
  };
}
