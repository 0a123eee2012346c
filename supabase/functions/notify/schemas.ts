/**
 * The notify function's request and response contract. The OpenAPI document
 * is generated from these schemas (see `openapi.ts`).
 *
 * @module
 */
import { z } from "zod";
import { CHANNEL_NAMES } from "../_shared/channels.ts";
import { Uuid } from "../_shared/db/uuid.ts";
import { buildFcmMessage, MAX_PAYLOAD_BYTES } from "../_shared/providers/fcm_message.ts";
import { DataMap, MAX_TTL_SECONDS, overridesSchema } from "../_shared/providers/fcm_overrides.ts";

/** A flat string map, as FCM's `data` must be. */
export const DataPayload = DataMap.meta({
  description: "String values only (FCM's data payload).",
});

/** A delivery channel. */
export const Channel = z.enum(CHANNEL_NAMES);

/** A category name: what users opt out of. */
export const Category = z.string().regex(
  /^[a-z0-9][a-z0-9._-]{0,63}$/,
  "must be 1–64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
);

/** A topic name. */
export const Topic = z.string().regex(
  /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/,
  "must be 1–128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit",
);

/** A device's FCM registration token. */
export const DeviceToken = z.string().min(1).max(4096).regex(
  /^[\x21-\x7e]+$/,
  "must be printable ASCII without spaces",
);

/** An FCM topic name (FCM's pattern), without the `/topics/` prefix. */
export const FcmTopic = z.string().regex(
  /^[a-zA-Z0-9_.~%-]{1,900}$/,
  "must be 1–900 of a-z, A-Z, 0-9, '-', '_', '.', '~', '%'",
);

/**
 * An FCM condition: `'topic' in topics` terms joined by `&&` and `||`, with
 * `!` and parentheses, naming at most five topics (FCM's limit).
 */
export const FcmCondition = z.string().max(1000).superRefine((condition, ctx) => {
  const terms = condition.match(/'[a-zA-Z0-9_.~%-]+'\s+in\s+topics/g) ?? [];
  const rest = condition.replace(/'[a-zA-Z0-9_.~%-]+'\s+in\s+topics/g, "T");
  if (!/^[\sT()!&|]+$/.test(rest) || terms.length === 0) {
    ctx.addIssue({
      code: "custom",
      message: "must combine 'topic' in topics terms with &&, ||, ! and parentheses",
    });
  } else if (terms.length > 5) {
    ctx.addIssue({ code: "custom", message: "may name at most five topics" });
  }
});

/** A device's platform. */
export const Platform = z.enum(["ios", "android", "web"]);

/**
 * Per-platform FCM overrides plus the e-mail's subject and HTML; every key is
 * optional on its own. `email` is for the service role only: a user's subject
 * and HTML would otherwise go out from the project's sender address.
 */
export const Overrides = overridesSchema({
  email: z.strictObject({
    subject: z.string().min(1).max(998),
    html: z.string().min(1).max(500_000),
  }).partial(),
});

/** A raw address the service role may notify without a user behind it. */
export const RawTarget = z.union([
  z.strictObject({ channel: z.literal("push"), token: DeviceToken, platform: Platform }),
  /** Every device subscribed to the FCM topic: FCM fans out, one request. */
  z.strictObject({ channel: z.literal("push"), topic: FcmTopic }),
  /** Devices whose topics satisfy the condition, e.g. `'news' in topics && !('muted' in topics)`. */
  z.strictObject({ channel: z.literal("push"), condition: FcmCondition }),
  z.strictObject({ channel: z.literal("email"), address: z.email().max(320) }),
  z.strictObject({ channel: z.literal("webhook"), endpoint_id: Uuid }),
], {
  error: "a target is {channel: push, token, platform}, {channel: push, topic}, " +
    "{channel: push, condition}, {channel: email, address} or {channel: webhook, endpoint_id}",
});

/** What a notification says and how it travels: shared by notify and bulk. */
const Content = {
  title: z.string().min(1).max(1024).optional(),
  body: z.string().min(1).max(4096).optional(),
  image: z.url({ protocol: /^https?$/ }).max(2048).optional(),
  data: DataPayload.optional(),
  /** Channels to deliver on; each recipient gets every one they have an address for. */
  channels: z.array(Channel).min(1).max(CHANNEL_NAMES.length).refine(
    (c) => new Set(c).size === c.length,
    {
      message: "must not repeat a channel",
    },
  ).default(["push"]),
  overrides: Overrides.optional(),
  category: Category.optional(),
  priority: z.enum(["normal", "high"]).default("normal"),
  /** Critical notifications ignore quiet hours (opt-outs still apply). */
  critical: z.boolean().default(false),
  /** Seconds the notification stays worth delivering, counted from send_at (FCM's limit: 28 days). */
  ttl_seconds: z.number().int().min(0).max(MAX_TTL_SECONDS).optional(),
  /** When to send; at most 30 days ahead. A past instant means now. */
  send_at: z.iso.datetime({ offset: true }).refine(
    (at) => Date.parse(at) <= Date.now() + 30 * 86_400_000,
    { message: "must be at most 30 days ahead" },
  ).refine((at) => Date.parse(at) >= Date.UTC(2000, 0, 1), {
    message: "must be after 2000-01-01",
  }).optional(),
  /**
   * FCM checks the whole message and each device token and delivers nothing
   * (HTTP v1's `validate_only`); the delivery ends `sent` with FCM's dry-run
   * message name. For smoke tests. Push only.
   */
  validate_only: z.boolean().optional(),
};

/** validate_only needs push alone: e-mail and webhooks cannot be checked without delivering. */
const validatesPushOnly = (
  n: { validate_only?: boolean; channels: string[]; targets?: { channel: string }[] },
) =>
  !n.validate_only ||
  [...n.channels, ...(n.targets ?? []).map((t) => t.channel)].every((c) => c === "push");
const VALIDATE_ONLY_IS_PUSH = {
  message: "validate_only is for push alone: e-mail and webhooks cannot be checked " +
    "without being delivered",
  path: ["validate_only"],
};

const saysSomething = (n: { title?: string; body?: string; data?: Record<string, string> }) =>
  Boolean(n.title || n.body || (n.data && Object.keys(n.data).length));

/** The fields that fill a push payload, and the overrides block each platform adds. */
type PushContent = {
  title?: string;
  body?: string;
  image?: string;
  data?: Record<string, string>;
  channels: string[];
  overrides?: Record<string, unknown>;
};
const PLATFORM_BLOCK = { android: "android", ios: "apns", web: "webpush" } as const;

/**
 * FCM's 4096-byte payload limit, checked per platform when the request is
 * made (the dispatcher checks again for rows from SQL): a 422 naming the
 * platform's overrides when they tip it over, else the largest of title,
 * body and data.
 */
function _pushFits(n: PushContent, ctx: z.RefinementCtx): void {
  if (!n.channels.includes("push")) return;
  // Every platform's payload is a part of this, give or take key names: when
  // all of it fits with room to spare, no message needs building.
  const { title, body, image, data, overrides } = n;
  const whole = JSON.stringify({ title, body, image, data, overrides });
  if (whole.length * 3 + 256 <= MAX_PAYLOAD_BYTES) return;
  for (const [platform, block] of Object.entries(PLATFORM_BLOCK)) {
    const size = (overrides: Record<string, unknown>) => {
      const built = buildFcmMessage({
        id: "",
        createdAt: "",
        attempt: 1,
        channel: "push",
        target: "size-check",
        platform: platform as keyof typeof PLATFORM_BLOCK,
        recipientId: null,
        webhookEndpointId: null,
        targetDisabled: false,
        secrets: [],
        lease: "",
        notification: {
          id: "",
          title: n.title ?? null,
          body: n.body ?? null,
          image: n.image ?? null,
          data: n.data ?? {},
          category: null,
          priority: "normal",
          overrides,
          expiresAt: null,
          createdAt: new Date(0),
          requestId: null,
        },
      }, 0);
      return built.ok ? built.payloadBytes : built.code === "PAYLOAD_TOO_LARGE" ? Infinity : 0;
    };
    const overrides = n.overrides ?? {};
    if (size(overrides) <= MAX_PAYLOAD_BYTES) continue;
    const { [block]: _, ...without } = overrides;
    const bytes = (value: unknown) => new TextEncoder().encode(JSON.stringify(value ?? "")).length;
    const path = overrides[block] !== undefined && size(without) <= MAX_PAYLOAD_BYTES
      ? ["overrides", block]
      : [(["title", "body", "data"] as const).reduce((a, b) => bytes(n[a]) >= bytes(n[b]) ? a : b)];
    ctx.addIssue({
      code: "custom",
      path,
      message: `makes the ${platform} push payload larger than FCM's ${MAX_PAYLOAD_BYTES} bytes`,
    });
    return;
  }
}
const NOTHING_TO_SAY = { message: "a notification needs a title, a body or data", path: ["title"] };

/** `POST /notify`: notify users (and, for services, raw addresses). */
export const NotifyRequest = z.strictObject({
  user_ids: z.array(Uuid).max(1000).optional(),
  /** Service role only: device tokens, e-mail addresses, webhook endpoints. */
  targets: z.array(RawTarget).max(1000).optional(),
  ...Content,
})
  .refine(saysSomething, NOTHING_TO_SAY)
  .refine(validatesPushOnly, VALIDATE_ONLY_IS_PUSH)
  .superRefine(_pushFits)
  .refine((n) => (n.user_ids?.length ?? 0) + (n.targets?.length ?? 0) > 0, {
    message: "name at least one recipient in user_ids or targets",
    path: ["user_ids"],
  });

/** Largest explicit audience of one bulk request (10,000 UUIDs fit well under 1 MB). */
export const MAX_BULK_USER_IDS = 10_000;

/** `POST /notify/bulk`: one notification to many users or to a topic (services only). */
export const BulkRequest = z.strictObject({
  user_ids: z.array(Uuid).min(1).max(MAX_BULK_USER_IDS).optional(),
  topic: Topic.optional(),
  ...Content,
})
  .refine(saysSomething, NOTHING_TO_SAY)
  .refine(validatesPushOnly, VALIDATE_ONLY_IS_PUSH)
  .superRefine(_pushFits)
  .refine((n) => Boolean(n.user_ids) !== Boolean(n.topic), {
    message: "name exactly one audience: user_ids or topic",
    path: ["user_ids"],
  });

/** `PUT /notify/devices`: register or refresh the caller's device token. */
export const RegisterDevice = z.strictObject({ token: DeviceToken, platform: Platform });

/** A wall-clock time `HH:MM`. */
const ClockTime = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "must be HH:MM (00:00–23:59)");

/** `PUT /notify/preferences`: the caller's whole preferences. */
export const Preferences = z.strictObject({
  /** IANA time zone, e.g. `Europe/Berlin`. */
  time_zone: z.string().min(1).max(64).refine(_isTimeZone, {
    message: "is not an IANA time zone (e.g. Europe/Berlin)",
  }).default("UTC"),
  /** Non-critical pushes wait until `end`; may cross midnight. `null` switches them off. */
  quiet_hours: z.strictObject({ start: ClockTime, end: ClockTime })
    .refine((q) => q.start !== q.end, { message: "start and end must differ", path: ["end"] })
    .nullable().default(null),
  /** Channels the user does not want for a category (`*`: every category). */
  opt_outs: z.array(
    z.strictObject({ category: z.union([Category, z.literal("*")]), channel: Channel }),
  )
    .max(200).default([]),
});

/** `PUT /notify/topics/{topic}` / `DELETE …`: services name the user in the query. */
export const SubscriptionQuery = z.strictObject({ user_id: Uuid.optional() });

/** A path parameter that must be a UUID. */
export const IdParam = z.strictObject({ id: Uuid });

/** A path parameter naming a topic. */
export const TopicParam = z.strictObject({ topic: Topic });

/** The `Idempotency-Key` header: 1–255 printable ASCII characters. */
export const IdempotencyKey = z.string().regex(
  /^[\x21-\x7e]{1,255}$/,
  "must be 1–255 printable ASCII characters, no spaces",
);

function _isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** `POST /notify/webhook-endpoints`: where to POST the caller's notifications. */
const WebhookUrl = z.url({ protocol: /^https?$/ }).transform((url) => new URL(url).href)
  .pipe(z.string().max(2048));

export const WebhookEndpointRequest = z.strictObject({
  /** Stored normalised (`HTTPS://Example.com` → `https://example.com/`). */
  url: WebhookUrl,
});

/** `PATCH /webhook-endpoints/{id}`: re-point it, or re-enable it where it is; either clears a disabled one. */
export const WebhookEndpointUpdate = z.strictObject({
  url: WebhookUrl.optional(),
  enabled: z.literal(true).optional(),
}).refine((u) => u.url !== undefined || u.enabled !== undefined, {
  message: 'name a new url, or "enabled": true',
  path: ["url"],
});
