/**
 * The per-platform additions to a push notification that Herald accepts from
 * callers: small, checked subsets of FCM's `AndroidConfig`, `ApnsConfig` and
 * `WebpushConfig`, plus the message's analytics label. Unknown fields are
 * refused by name, so a typo never silently drops an option.
 *
 * The schemas validate and do not transform: what the notify API stores is
 * what the caller sent, and {@linkcode buildFcmMessage} maps it to FCM's wire
 * form (`"high"` → `"HIGH"`, `3600` → `"3600s"`) when it builds the message.
 *
 * @module
 */
import { z } from "zod";

/** FCM keeps an undelivered message at most 28 days; longer TTLs are refused. */
export const MAX_TTL_SECONDS = 2_419_200;

/** FCM's pattern for `fcm_options.analytics_label`. */
const ANALYTICS_LABEL = /^[a-zA-Z0-9-_.~%]{1,50}$/;
/** A google.protobuf.Duration in JSON: seconds with up to nine fractional digits and an `s`. */
const DURATION = /^\d+(\.\d{1,9})?s$/;

/** Seconds of a TTL given as a number or as a Duration string. */
function _ttlSeconds(ttl: number | string): number {
  return typeof ttl === "number" ? ttl : Number(ttl.slice(0, -1));
}

/**
 * A strict object whose unknown-field error names the field and the allowed
 * ones (read from the schema that raised it, so `.extend()` stays truthful).
 */
function _strict<T extends z.ZodRawShape>(shape: T) {
  return z.strictObject(shape, {
    error: (issue) => {
      if (issue.code !== "unrecognized_keys") return undefined;
      const allowed = Object.keys((issue.inst as z.ZodObject | undefined)?.shape ?? shape);
      const unknown = issue.keys.map((key) => `'${key}'`).join(", ");
      return `unknown field${issue.keys.length > 1 ? "s" : ""} ${unknown}; allowed: ${
        allowed.join(", ")
      }`;
    },
  }).partial();
}

const text = z.string().min(1).max(1024);

/** A TTL as seconds or as an FCM duration string (`"3600s"`), at most 28 days. */
const TTL_FORM = 'must be whole seconds (3600) or a duration string ("3600s")';
const Ttl = z.union([z.number().int().min(0), z.string().regex(DURATION, TTL_FORM)], {
  error: TTL_FORM,
}).refine((ttl) => _ttlSeconds(ttl) <= MAX_TTL_SECONDS, {
  message: `must be at most ${MAX_TTL_SECONDS} seconds (28 days)`,
});

/** `android`: a subset of FCM's `AndroidConfig`. */
export const AndroidOverrides = _strict({
  /** Herald's spelling; sent as FCM's `NORMAL` / `HIGH`. */
  priority: z.enum(["normal", "high"]),
  ttl: Ttl,
  collapse_key: text,
  notification: _strict({
    channel_id: text,
    tag: text,
    sound: text,
    click_action: text,
    icon: text,
    color: z.string().regex(/^#[0-9a-fA-F]{6}$/, "must be a colour in #rrggbb form"),
  }),
});

/** The `alert` of an `aps` dictionary: a plain string or Apple's alert dictionary. */
const ApsAlert = z.union([
  z.string(),
  _strict({
    title: z.string(),
    subtitle: z.string(),
    body: z.string(),
    "launch-image": z.string(),
    "title-loc-key": z.string(),
    "title-loc-args": z.array(z.string()),
    "subtitle-loc-key": z.string(),
    "subtitle-loc-args": z.array(z.string()),
    "loc-key": z.string(),
    "loc-args": z.array(z.string()),
  }),
]);

/** `apns`: a subset of FCM's `ApnsConfig` (APNs request headers and the `aps` dictionary). */
export const ApnsOverrides = _strict({
  headers: _strict({
    "apns-priority": z.enum(["5", "10"]),
    "apns-push-type": z.enum([
      "alert",
      "background",
      "location",
      "voip",
      "complication",
      "fileprovider",
      "mdm",
      "liveactivity",
      "pushtotalk",
    ]),
    "apns-expiration": z.string().regex(
      /^\d{1,10}$/,
      "must be a UNIX time in seconds, as a string",
    ),
    "apns-collapse-id": z.string().min(1).refine(
      (id) => new TextEncoder().encode(id).length <= 64,
      "must be at most 64 bytes",
    ),
  }),
  payload: _strict({
    aps: _strict({
      alert: ApsAlert,
      badge: z.number().int().min(0),
      sound: z.string().min(1),
      "content-available": z.literal([0, 1]),
      "mutable-content": z.literal([0, 1]),
      "thread-id": z.string().min(1),
    }),
  }),
});

/** `webpush`: a subset of FCM's `WebpushConfig` (RFC 8030 headers and the click-through link). */
export const WebpushOverrides = _strict({
  headers: _strict({
    /** Seconds; sent as the header's decimal string. */
    TTL: z.union([z.number().int().min(0), z.string().regex(/^\d+$/, "must be whole seconds")], {
      error: "must be whole seconds",
    }).refine((ttl) => Number(ttl) <= MAX_TTL_SECONDS, {
      message: `must be at most ${MAX_TTL_SECONDS} seconds (28 days)`,
    }),
    Urgency: z.enum(["very-low", "low", "normal", "high"]),
  }),
  fcm_options: _strict({
    link: z.url({ protocol: /^https$/, error: "must be an https:// URL" }).max(2048),
  }),
});

/** FCM's `fcm_options.analytics_label`. */
export const AnalyticsLabel = z.string().regex(
  ANALYTICS_LABEL,
  "must be 1–50 characters of a-z, A-Z, 0-9, '-', '_', '.', '~', '%'",
);

/**
 * Everything Herald accepts to tailor a push per platform. The notify API
 * validates a request's `overrides` with it (extend it for non-push channels,
 * e.g. `FcmOverrides.extend({ email })`); the FCM message builder parses the
 * stored overrides with it again before use.
 *
 * @example
 * ```ts
 * const overrides = FcmOverrides.parse({
 *   android: { priority: "high", notification: { channel_id: "orders" } },
 *   apns: { payload: { aps: { badge: 3 } } },
 *   analytics_label: "order_shipped",
 * });
 * ```
 */
export const FcmOverrides = _strict({
  android: AndroidOverrides,
  apns: ApnsOverrides,
  webpush: WebpushOverrides,
  analytics_label: AnalyticsLabel,
});

/** Validated push overrides. */
export type FcmOverrides = z.infer<typeof FcmOverrides>;
