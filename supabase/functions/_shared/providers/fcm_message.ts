/**
 * Turns a claimed push delivery into an FCM HTTP v1 `Message`, or says why it
 * cannot be sent at all (reserved data keys, invalid overrides, too large).
 *
 * @module
 */
import { z } from "zod";
import type { ClaimedDelivery } from "../outbox/delivery.ts";
import { FcmOverrides, MAX_TTL_SECONDS, RESERVED_DATA_KEY } from "./fcm_overrides.ts";

/**
 * An FCM HTTP v1 `Message` (the `projects.messages` resource) addressed to one
 * device, a topic or a condition, as {@linkcode buildFcmMessage} builds it.
 * The platform blocks are FCM's own, in the wire spelling.
 */
export interface FcmMessage {
  token?: string;
  topic?: string;
  condition?: string;
  notification?: { title?: string; body?: string; image?: string };
  /** Values must be strings; reserved keys are refused before sending. */
  data?: Record<string, string>;
  android?: Record<string, unknown> & {
    priority?: "NORMAL" | "HIGH";
    /** A Duration: seconds with an `s`, e.g. `"3600s"`. */
    ttl?: string;
    notification?: Record<string, unknown>;
    data?: Record<string, string>;
  };
  apns?: Record<string, unknown> & {
    /** APNs request headers (`apns-priority`, `apns-expiration`, …). */
    headers?: Record<string, string>;
    /** The APNs payload: the `aps` dictionary and custom keys. */
    payload?: Record<string, unknown>;
  };
  webpush?: Record<string, unknown> & {
    /** RFC 8030 headers (`TTL`, `Urgency`, `Topic`). */
    headers?: Record<string, string>;
    data?: Record<string, string>;
    notification?: Record<string, unknown>;
    fcm_options?: { link?: string; analytics_label?: string };
  };
  fcm_options?: { analytics_label?: string };
}

/** How a push delivery's `target` names a topic or a condition instead of a device token. */
export const TOPIC_PREFIX = "/topics/";
export const CONDITION_PREFIX = "condition:";

/** FCM's limit on a message's payload. */
export const MAX_PAYLOAD_BYTES = 4096;

/** Why a delivery cannot become an FCM message; sending it would fail the same way every time. */
export type FcmMessageProblem = "PAYLOAD_TOO_LARGE" | "INVALID_DATA";

/** The message to send, or the permanent reason there is none. */
export type FcmMessageResult =
  | { ok: true; message: FcmMessage; payloadBytes: number }
  | { ok: false; code: FcmMessageProblem; reason: string };

/**
 * Builds the message for one device: the notification, the data, and the
 * block for the device's platform. Herald's defaults come from the
 * notification — priority, the time it has left to live (as Android `ttl`,
 * web `TTL`, and `apns-expiration`), web `Urgency` — and the caller's
 * overrides win field by field, headers merged header by header.
 *
 * An iOS message with nothing to show, sound or badge is a background push:
 * `apns-push-type: background` at `apns-priority: 5` (APNs refuses 10 for
 * those), whatever the notification's priority or the caller's overrides.
 * Anything else is `alert`. `ttl_seconds: 0` ("now or never") goes out as
 * Android `ttl: "0s"`, web `TTL: 0` and `apns-expiration: 0`.
 *
 * One piece: FCM's message, built field by field in the order of its schema so it reads against Google's reference.
 *
 * @param now the time the remaining TTL is measured from (ms since the epoch)
 * @returns `ok: false` for content FCM would refuse; nothing about it changes on retry
 *
 * @example
 * ```ts
 * const built = buildFcmMessage(delivery, Date.now());
 * if (built.ok) await send(built.message);
 * ```
 */
export function buildFcmMessage(delivery: ClaimedDelivery, now: number): FcmMessageResult {
  const n = delivery.notification;
  // Everything but the e-mail's part; a row from SQL may spell fields either way.
  const { email: _email, ...push } = n.overrides as Record<string, unknown>;
  const parsed = FcmOverrides.safeParse(push);
  if (!parsed.success) {
    return {
      ok: false,
      code: "INVALID_DATA",
      reason: `overrides are invalid: ${z.prettifyError(parsed.error).replaceAll("\n", " ")}`,
    };
  }
  const overrides = parsed.data;
  for (const [key, value] of Object.entries(n.data)) {
    if (RESERVED_DATA_KEY.test(key)) {
      return { ok: false, code: "INVALID_DATA", reason: `data key '${key}' is reserved by FCM` };
    }
    if (typeof value !== "string") {
      return { ok: false, code: "INVALID_DATA", reason: `data '${key}' must be a string` };
    }
  }

  const high = n.priority === "high";
  const remaining = n.expiresAt
    ? Math.min(MAX_TTL_SECONDS, Math.max(0, Math.floor((n.expiresAt.getTime() - now) / 1000)))
    : undefined;
  const message: FcmMessage = _addressed(delivery.target);
  const notification = _defined({
    title: n.title ?? undefined,
    body: n.body ?? undefined,
    image: n.image ?? undefined,
  });
  if (Object.keys(notification).length) message.notification = notification;
  if (Object.keys(n.data).length) message.data = n.data;

  // A device gets its platform's block; a topic or condition reaches every platform.
  const platforms = delivery.platform ? [delivery.platform] : ["android", "ios", "web"] as const;
  for (const platform of platforms) {
    switch (platform) {
      case "android": {
        const o = overrides.android ?? {};
        const ttl = o.ttl ?? remaining;
        message.android = _defined({
          ...o,
          priority: (o.priority ?? n.priority).toUpperCase() as "NORMAL" | "HIGH",
          ttl: typeof ttl === "number" ? `${ttl}s` : ttl,
        });
        break;
      }
      case "ios": {
        const o = overrides.apns ?? {};
        const aps = o.payload?.aps;
        // Apple: "alert" for anything the user sees or hears (alert, badge,
        // sound), "background" for content-available alone, which must go at
        // priority 5. Herald sets both from the payload, so they always agree;
        // the other push types (voip, liveactivity, …) are the caller's to name.
        const alert = message.notification !== undefined || aps?.alert !== undefined ||
          aps?.badge !== undefined || aps?.sound !== undefined;
        const named = o.headers?.["apns-push-type"];
        const pushType = named && named !== "alert" && named !== "background"
          ? named
          : alert
          ? "alert"
          : "background";
        message.apns = _defined({
          ...o,
          headers: {
            "apns-priority": high && alert ? "10" : "5",
            ..._defined({
              "apns-expiration": n.nowOrNever
                ? "0"
                : n.expiresAt
                ? String(Math.floor(n.expiresAt.getTime() / 1000))
                : undefined,
            }),
            ...o.headers,
            "apns-push-type": pushType,
            ...(pushType === "background" ? { "apns-priority": "5" } : {}),
          },
        });
        break;
      }
      case "web": {
        const o = overrides.webpush ?? {};
        const ttl = o.headers?.TTL ?? remaining;
        message.webpush = _defined({
          ...o,
          headers: _defined({
            ...o.headers,
            Urgency: o.headers?.Urgency ?? (high ? "high" : "normal"),
            TTL: ttl === undefined ? undefined : String(ttl),
          }),
        });
        break;
      }
    }
  }
  const label = overrides.analytics_label ?? overrides.fcm_options?.analytics_label;
  if (label) message.fcm_options = { analytics_label: label };

  const payloadBytes = fcmPayloadBytes(message);
  if (payloadBytes > MAX_PAYLOAD_BYTES) {
    return {
      ok: false,
      code: "PAYLOAD_TOO_LARGE",
      reason: `the payload is ${payloadBytes} bytes; FCM allows ${MAX_PAYLOAD_BYTES}`,
    };
  }
  return { ok: true, message, payloadBytes };
}

/**
 * The size FCM's 4096-byte limit applies to, as Herald measures it: the UTF-8
 * length of the compact JSON of what reaches the device — `notification`,
 * `data`, and the platform blocks' content (`android.notification` and
 * `data`, `apns.payload`, `webpush.notification` and `data`). Transport options (token, headers, TTL, priority, collapse
 * key, `fcm_options`) are not payload and are not counted. FCM does not
 * publish its exact accounting; the JSON punctuation and key names counted
 * here make this a slight over-estimate, so a message Herald passes fits.
 */
export function fcmPayloadBytes(message: FcmMessage): number {
  const payload = {
    notification: message.notification,
    data: message.data,
    android: message.android?.notification,
    android_data: message.android?.data,
    apns: message.apns?.payload,
    webpush: message.webpush?.notification,
    webpush_data: message.webpush?.data,
  };
  return new TextEncoder().encode(JSON.stringify(payload)).length;
}

/** The message's address: a device token, or the topic or condition a raw target names. */
function _addressed(target: string): FcmMessage {
  if (target.startsWith(TOPIC_PREFIX)) return { topic: target.slice(TOPIC_PREFIX.length) };
  if (target.startsWith(CONDITION_PREFIX)) {
    return { condition: target.slice(CONDITION_PREFIX.length) };
  }
  return { token: target };
}

function _defined<T extends Record<string, unknown>>(record: T): { [K in keyof T]?: T[K] } {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: T[K];
  };
}
