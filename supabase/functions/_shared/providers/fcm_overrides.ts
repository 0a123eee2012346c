/**
 * The per-platform additions to a push notification that Herald accepts:
 * FCM v1's whole `AndroidConfig`, `ApnsConfig` and `WebpushConfig`, and the
 * message's `fcm_options`, validated field by field against the `Message`
 * resource. Unknown fields are refused by name, so a typo never silently
 * drops an option.
 *
 * Every field may be spelt as FCM's JSON spells it (`collapse_key`) or as
 * proto3 JSON and `firebase-admin`'s `Message` type do (`collapseKey`), so
 * code written for the SDK keeps working; a few SDK-only shapes are
 * translated to the wire form as well (`imageUrl`, `vibrateTimingsMillis`,
 * `lightSettings.color: "#rrggbb"`, `aps.contentAvailable: true`,
 * `notification.priority: "high"` → `notification_priority`). Parsing yields
 * the wire spelling; {@linkcode buildFcmMessage} adds Herald's defaults.
 *
 * One difference from the SDK: `android.ttl` as a number is **seconds**
 * (Herald's unit everywhere), where `firebase-admin` takes milliseconds; a
 * duration string (`"3600s"`) means the same to both.
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
/** Data keys FCM reserves, and `notification` / `collapse_key`, which Herald refuses besides. */
export const RESERVED_DATA_KEY = /^(from|notification|message_type|collapse_key)$|^(google|gcm)\./;

/** Seconds of a TTL given as a number or as a Duration string. */
function _ttlSeconds(ttl: number | string): number {
  return typeof ttl === "number" ? ttl : Number(ttl.slice(0, -1));
}

/** Milliseconds as a Duration string: `1500` → `"1.5s"`. */
function _millisToDuration(ms: number): string {
  return `${Number((ms / 1000).toFixed(9))}s`;
}

/** `collapse_key` → `collapseKey`, `thread-id` → `threadId`. */
function _camel(key: string): string {
  return key.replace(/[_-]([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Another spelling of a field: the wire name it stands for and how its value translates. */
interface Alias {
  to: string;
  schema: z.ZodType;
  convert?: (value: never) => unknown;
}

/**
 * A proto message (or APNs dictionary) in JSON: every field optional, each
 * also accepted in lowerCamelCase (plus `sdk` spellings), unknown fields
 * refused with the allowed names, the same field given twice refused, and
 * the parsed value in the wire spelling.
 */
function _proto<T extends z.ZodRawShape>(shape: T, sdk: Record<string, Alias> = {}) {
  const aliases: Record<string, Alias> = {};
  for (const key of Object.keys(shape)) {
    const camel = _camel(key);
    if (camel !== key) aliases[camel] = { to: key, schema: shape[key] as z.ZodType };
  }
  Object.assign(aliases, sdk);
  const canonical = Object.keys(shape);
  const camelSpellings = Object.keys(aliases).some((name) => name === _camel(aliases[name].to));
  const object = z.strictObject({
    ...shape,
    ...Object.fromEntries(
      Object.entries(aliases).map(([name, alias]) => [name, alias.schema]),
    ),
  }, {
    error: (issue) => {
      if (issue.code !== "unrecognized_keys") return undefined;
      const unknown = issue.keys.map((key) => `'${key}'`).join(", ");
      return `unknown field${issue.keys.length > 1 ? "s" : ""} ${unknown}; allowed: ${
        canonical.join(", ")
      }${camelSpellings ? " (or their camelCase spellings)" : ""}`;
    },
  }).partial(); // deno-fmt-ignore
  return object.superRefine((value, ctx) => {
    for (const [name, alias] of Object.entries(aliases)) {
      if (name in value && alias.to in value) {
        ctx.addIssue({
          code: "custom",
          path: [name],
          message: `'${name}' and '${alias.to}' name the same field; give one`,
        });
      }
    }
  }).transform((value) => {
    const wire: Record<string, unknown> = {};
    for (const [key, field] of Object.entries(value)) {
      const alias = aliases[key];
      if (field === undefined) continue;
      if (!alias) wire[key] = field;
      else wire[alias.to] = alias.convert ? alias.convert(field as never) : field;
    }
    return wire as { [K in keyof T]?: z.output<T[K]> };
  });
}

const text = z.string().min(1).max(1024);
const ANY_TEXT = z.string().max(4096);

/**
 * A flat string map, as FCM's `data` maps must be, without FCM's reserved
 * keys: the message's `data` (the notify API's) and the platforms' own.
 */
export const DataMap = z.record(
  z.string().min(1).max(256).refine((key) => !RESERVED_DATA_KEY.test(key), {
    message: "is reserved by FCM (from, notification, message_type, collapse_key, google.*, gcm.*)",
  }),
  z.string().max(4096, "data values must be strings of at most 4096 characters"),
);

/** A TTL as seconds or as an FCM duration string (`"3600s"`), at most 28 days. */
const TTL_FORM = 'must be whole seconds (3600) or a duration string ("3600s")';
const Ttl = z.union([z.number().int().min(0), z.string().regex(DURATION, TTL_FORM)], {
  error: TTL_FORM,
}).refine((ttl) => _ttlSeconds(ttl) <= MAX_TTL_SECONDS, {
  message: `must be at most ${MAX_TTL_SECONDS} seconds (28 days)`,
});
const Duration = z.string().regex(DURATION, 'must be a duration string ("0.5s")');
/** google.protobuf.Timestamp in JSON: RFC 3339 in UTC. */
const Timestamp = z.iso.datetime({ offset: true }).transform((at) => new Date(at).toISOString());
const HttpsUrl = z.url({ protocol: /^https$/, error: "must be an https:// URL" }).max(2048);
const ImageUrl = z.url({ protocol: /^https?$/ }).max(2048);
const AnalyticsLabel = z.string().regex(
  ANALYTICS_LABEL,
  "must be 1–50 characters of a-z, A-Z, 0-9, '-', '_', '.', '~', '%'",
);
/** An enum FCM spells in upper case; lower case (the SDK's) is accepted and upper-cased. */
function _upperEnum<const V extends string>(values: readonly V[]) {
  return z.string().transform((v) => v.toUpperCase()).pipe(z.enum(values));
}

const FcmOptions = _proto({ analytics_label: AnalyticsLabel });

/** google.type.Color: components in [0, 1]; the SDK's `"#rrggbb"` / `"#rrggbbaa"` is converted. */
const Unit = z.number().min(0).max(1);
const Color = z.union([
  z.strictObject({ red: Unit, green: Unit, blue: Unit, alpha: Unit }).partial(),
  z.string().regex(/^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$/, "must be #rrggbb or #rrggbbaa")
    .transform((hex) => {
      const part = (i: number) => Number(`0x${hex.slice(i, i + 2)}`) / 255;
      return { red: part(1), green: part(3), blue: part(5), alpha: hex.length > 7 ? part(7) : 1 };
    }),
]);
const Millis = z.number().int().min(0);

const LightSettings = _proto({
  color: Color,
  light_on_duration: Duration,
  light_off_duration: Duration,
}, {
  lightOnDurationMillis: { to: "light_on_duration", schema: Millis, convert: _millisToDuration },
  lightOffDurationMillis: { to: "light_off_duration", schema: Millis, convert: _millisToDuration },
});

const NOTIFICATION_PRIORITIES = [
  "PRIORITY_UNSPECIFIED",
  "PRIORITY_MIN",
  "PRIORITY_LOW",
  "PRIORITY_DEFAULT",
  "PRIORITY_HIGH",
  "PRIORITY_MAX",
] as const;

/** FCM's `AndroidNotification`, whole. */
export const AndroidNotification = _proto({
  title: ANY_TEXT,
  body: ANY_TEXT,
  icon: text,
  color: z.string().regex(/^#[0-9a-fA-F]{6}$/, "must be a colour in #rrggbb form"),
  sound: text,
  tag: text,
  click_action: text,
  body_loc_key: text,
  body_loc_args: z.array(z.string()).max(100),
  title_loc_key: text,
  title_loc_args: z.array(z.string()).max(100),
  channel_id: text,
  ticker: text,
  sticky: z.boolean(),
  event_time: Timestamp,
  local_only: z.boolean(),
  notification_priority: _upperEnum(NOTIFICATION_PRIORITIES),
  default_sound: z.boolean(),
  default_vibrate_timings: z.boolean(),
  default_light_settings: z.boolean(),
  vibrate_timings: z.array(Duration).max(100),
  visibility: _upperEnum(["VISIBILITY_UNSPECIFIED", "PRIVATE", "PUBLIC", "SECRET"] as const),
  notification_count: z.number().int().min(0),
  light_settings: LightSettings,
  image: ImageUrl,
  bypass_proxy_notification: z.boolean(),
  proxy: _upperEnum(["PROXY_UNSPECIFIED", "ALLOW", "DENY", "IF_PRIORITY_LOWERED"] as const),
}, {
  imageUrl: { to: "image", schema: ImageUrl },
  eventTimestamp: { to: "event_time", schema: Timestamp },
  vibrateTimingsMillis: {
    to: "vibrate_timings",
    schema: z.array(Millis).max(100),
    convert: (ms: number[]) => ms.map(_millisToDuration),
  },
  priority: {
    to: "notification_priority",
    schema: z.enum(["min", "low", "default", "high", "max"]),
    convert: (p: string) => `PRIORITY_${p.toUpperCase()}`,
  },
});

/** `android`: FCM's whole `AndroidConfig`. `priority` also takes Herald's lower case. */
export const AndroidOverrides = _proto({
  collapse_key: text,
  priority: z.enum(["normal", "high", "NORMAL", "HIGH"]),
  ttl: Ttl,
  restricted_package_name: text,
  data: DataMap,
  notification: AndroidNotification,
  fcm_options: FcmOptions,
  direct_boot_ok: z.boolean(),
  bandwidth_constrained_ok: z.boolean(),
  restricted_satellite_ok: z.boolean(),
});

/** The `alert` of an `aps` dictionary: a plain string or Apple's alert dictionary. */
const ApsAlert = z.union([
  z.string(),
  _proto({
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
    "action-loc-key": z.string(),
  }),
]);

/** `0`/`1` as APNs wants it; the SDK's booleans are converted. */
const Flag = z.union([z.literal([0, 1]), z.boolean().transform((on) => (on ? 1 : 0))]);

/** A critical alert's sound: `{critical, name, volume}`. */
const CriticalSound = _proto({
  critical: Flag,
  name: z.string().min(1),
  volume: z.number().min(0).max(1),
});

/** Apple's `aps` dictionary, every documented key (Live Activity keys included). */
const Aps = _proto({
  alert: ApsAlert,
  badge: z.number().int().min(0),
  sound: z.union([z.string().min(1), CriticalSound]),
  "thread-id": z.string().min(1),
  category: z.string().min(1),
  "content-available": Flag,
  "mutable-content": Flag,
  "target-content-id": z.string().min(1),
  "interruption-level": z.enum(["passive", "active", "time-sensitive", "critical"]),
  "relevance-score": z.number().min(0).max(1),
  "filter-criteria": z.string().min(1),
  "stale-date": z.number().int().min(0),
  "content-state": z.record(z.string(), z.unknown()),
  timestamp: z.number().int().min(0),
  event: z.enum(["start", "update", "end"]),
  "dismissal-date": z.number().int().min(0),
  "attributes-type": z.string().min(1),
  attributes: z.record(z.string(), z.unknown()),
});

const APNS_PUSH_TYPES = [
  "alert",
  "background",
  "location",
  "voip",
  "complication",
  "fileprovider",
  "mdm",
  "liveactivity",
  "pushtotalk",
  "widgets",
] as const;

/** `apns`: FCM's whole `ApnsConfig` — APNs request headers, the payload (`aps` and custom keys). */
export const ApnsOverrides = _proto({
  headers: z.strictObject({
    "apns-priority": z.enum(["1", "5", "10"]),
    "apns-push-type": z.enum(APNS_PUSH_TYPES),
    "apns-expiration": z.string().regex(
      /^\d{1,10}$/,
      "must be a UNIX time in seconds, as a string",
    ),
    "apns-collapse-id": z.string().min(1).refine(
      (id) => new TextEncoder().encode(id).length <= 64,
      "must be at most 64 bytes",
    ),
    "apns-topic": z.string().min(1).max(255),
    "apns-id": z.uuid(),
  }).partial(),
  /** `aps` plus any custom top-level keys the app reads. */
  payload: z.looseObject({ aps: Aps.optional() }),
  fcm_options: _proto({ analytics_label: AnalyticsLabel, image: ImageUrl }, {
    imageUrl: { to: "image", schema: ImageUrl },
  }),
  live_activity_token: z.string().min(1).max(4096),
});

/**
 * The Web Notification API's options, as FCM forwards them to the browser:
 * its camelCase names, each checked; `require_interaction` is taken for
 * `requireInteraction` (the one name of two words). Any other key is refused
 * by name: browsers ignore what they do not know, so it would be dropped
 * silently on the device. Combinations `showNotification()` throws for
 * (`renotify` without a `tag`, `silent` with `vibrate`) are refused too.
 */
const WebNotification = _proto({
  title: z.string(),
  body: z.string(),
  icon: z.string(),
  badge: z.string(),
  image: z.string(),
  lang: z.string(),
  tag: z.string(),
  dir: z.enum(["auto", "ltr", "rtl"]),
  renotify: z.boolean(),
  requireInteraction: z.boolean(),
  silent: z.boolean(),
  timestamp: z.number().int().min(0),
  vibrate: z.union([z.number().int().min(0), z.array(z.number().int().min(0)).max(100)]),
  actions: z.array(
    _proto({
      action: z.string().min(1),
      title: z.string().min(1),
      icon: z.string(),
    }).refine((a) => a.action !== undefined && a.title !== undefined, {
      message: "an action needs 'action' and 'title'",
    }),
  ).max(10),
  data: z.unknown(),
}, { require_interaction: { to: "requireInteraction", schema: z.boolean() } })
  // What showNotification() throws a TypeError for, so the push would never show.
  .superRefine((n, ctx) => {
    if (n.renotify === true && !n.tag) {
      ctx.addIssue({ code: "custom", path: ["renotify"], message: "renotify needs a tag" });
    }
    if (n.silent === true && n.vibrate !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["vibrate"],
        message: "a silent notification cannot vibrate",
      });
    }
  });

/** `webpush`: FCM's whole `WebpushConfig` (RFC 8030 headers, data, the notification, options). */
export const WebpushOverrides = _proto({
  headers: z.strictObject({
    /** Seconds; sent as the header's decimal string. */
    TTL: z.union([z.number().int().min(0), z.string().regex(/^\d+$/, "must be whole seconds")], {
      error: "must be whole seconds",
    }).refine((ttl) => Number(ttl) <= MAX_TTL_SECONDS, {
      message: `must be at most ${MAX_TTL_SECONDS} seconds (28 days)`,
    }),
    Urgency: z.enum(["very-low", "low", "normal", "high"]),
    /** RFC 8030: at most 32 characters of the URL-safe base64 alphabet. */
    Topic: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, "must be 1–32 URL-safe base64 characters"),
  }).partial(),
  data: DataMap,
  notification: WebNotification,
  fcm_options: _proto({ link: HttpsUrl, analytics_label: AnalyticsLabel }),
});

/** The FCM fields of `overrides`; {@linkcode overridesSchema} adds others (e-mail). */
const FCM_SHAPE = {
  android: AndroidOverrides,
  apns: ApnsOverrides,
  webpush: WebpushOverrides,
  fcm_options: FcmOptions,
  /** Herald's shorthand for `fcm_options.analytics_label`. */
  analytics_label: AnalyticsLabel,
};

/**
 * Overrides with the FCM fields plus `extra` (the notify API adds `email`).
 *
 * @example
 * ```ts
 * const Overrides = overridesSchema({ email: EmailOverrides.optional() });
 * ```
 */
export function overridesSchema<E extends z.ZodRawShape>(extra: E = {} as E) {
  return _proto({ ...FCM_SHAPE, ...extra }).superRefine((value, ctx) => {
    if (
      value.analytics_label && (value.fcm_options as { analytics_label?: string })?.analytics_label
    ) {
      ctx.addIssue({
        code: "custom",
        path: ["analytics_label"],
        message: "give analytics_label or fcm_options.analytics_label, not both",
      });
    }
  });
}

/**
 * Everything Herald accepts to tailor a push per platform. The FCM message
 * builder parses stored overrides with it again before use.
 *
 * @example
 * ```ts
 * const overrides = FcmOverrides.parse({
 *   android: { priority: "high", notification: { channelId: "orders" } },
 *   apns: { payload: { aps: { badge: 3 } } },
 *   analytics_label: "order_shipped",
 * });
 * ```
 */
export const FcmOverrides = overridesSchema();

/** Validated push overrides, in the wire spelling. */
export type FcmOverrides = z.output<typeof FcmOverrides>;
