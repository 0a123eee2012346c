/**
 * What the local stand-ins received, as the recipient would see it: an FCM
 * `messages:send` request becomes a push card (the platform's own title,
 * body, image, badge and sound, the way the device would resolve them), an
 * e-mail API request an e-mail, a webhook request a webhook. Pure functions
 * of the stand-ins' records (tests/fakes/control.ts).
 *
 * @module
 */

import type { Recorded } from "../../../tests/fakes/control.ts";

/** A record as `GET /_control/requests` returns it. */
export type { Recorded };

/** A push as a device shows it. */
export interface PushItem {
  kind: "push";
  id: string;
  seq: number;
  at: string;
  /** What the stand-in answered (e.g. 404 for an unregistered token). */
  status?: number;
  platform: "android" | "ios" | "web" | "topic";
  /** The device token, or `/topics/<name>` / `condition:<expr>` for FCM fan-outs. */
  to: string;
  title?: string;
  body?: string;
  image?: string;
  badge?: number;
  sound?: string;
  data: Record<string, string>;
  /** FCM checked it and delivered nothing. */
  validateOnly: boolean;
  message: unknown;
}

/** An e-mail as a mail client shows it. */
export interface EmailItem {
  kind: "email";
  id: string;
  seq: number;
  at: string;
  status?: number;
  from: string;
  to: string[];
  subject: string;
  html?: string;
  text?: string;
  headers: Record<string, string>;
  /** Herald's delivery id (the e-mail API's `Idempotency-Key`). */
  deliveryId?: string;
}

/** A webhook as the receiver got it. */
export interface WebhookItem {
  kind: "webhook";
  id: string;
  seq: number;
  at: string;
  status?: number;
  method: string;
  path: string;
  headers: Record<string, string>;
  /** The body exactly as it arrived: what the signature covers. */
  body: string;
  /** Herald's delivery id (`webhook-id`). */
  deliveryId?: string;
}

export type Item = PushItem | EmailItem | WebhookItem;

type Json = Record<string, unknown>;
const obj = (
  v: unknown,
): Json => (v && typeof v === "object" && !Array.isArray(v) ? v as Json : {});
const str = (v: unknown): string | undefined => (typeof v === "string" && v ? v : undefined);

/** What every item has: its kind, an id from the stand-in's sequence, and the record's time and answer. */
const common = <K extends Item["kind"]>(kind: K, r: Recorded) => ({
  kind,
  id: `${kind}-${r.seq}`,
  seq: r.seq,
  at: r.at,
  status: r.status,
});

/** A push card from an FCM `messages:send` record; undefined for anything else. */
export function pushItem(r: Recorded): PushItem | undefined {
  if (!/\/messages:send$/.test(r.path)) return undefined;
  const body = obj(r.body);
  const message = obj(body.message);
  const notification = obj(message.notification);
  const android = obj(message.android);
  const androidNotification = obj(android.notification);
  const apns = obj(message.apns);
  const aps = obj(obj(apns.payload).aps);
  const alert = typeof aps.alert === "string" ? { body: aps.alert } : obj(aps.alert);
  const webpush = obj(message.webpush);
  const webNotification = obj(webpush.notification);
  const platform = message.topic || message.condition
    ? "topic"
    : message.apns
    ? "ios"
    : message.webpush
    ? "web"
    : "android";
  // What the device resolves: the platform's own block over the common one.
  const pick = (field: "title" | "body") =>
    str(
      platform === "ios"
        ? alert[field]
        : platform === "web"
        ? webNotification[field]
        : androidNotification[field],
    ) ?? str(notification[field]);
  const data: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj(message.data))) data[k] = String(v);
  const badge = platform === "ios"
    ? aps.badge
    : platform === "android"
    ? androidNotification.notification_count
    : undefined;
  return {
    ...common("push", r),
    platform,
    to: str(message.token) ??
      (message.topic ? `/topics/${message.topic}` : `condition:${message.condition}`),
    title: pick("title"),
    body: pick("body"),
    image: str(notification.image) ?? str(androidNotification.image) ??
      str(obj(apns.fcm_options).image) ?? str(webNotification.image),
    badge: typeof badge === "number" ? badge : undefined,
    sound: str(
      platform === "ios"
        ? (typeof aps.sound === "string" ? aps.sound : obj(aps.sound).name)
        : androidNotification.sound,
    ),
    data,
    validateOnly: body.validate_only === true,
    message,
  };
}

/** An e-mail from an e-mail API (`POST /emails`) record; undefined for anything else. */
export function emailItem(r: Recorded): EmailItem | undefined {
  if (r.method !== "POST" || !/\/emails$/.test(r.path)) return undefined;
  const body = obj(r.body);
  const to = Array.isArray(body.to) ? body.to.map(String) : str(body.to) ? [String(body.to)] : [];
  return {
    ...common("email", r),
    from: str(body.from) ?? "",
    to,
    subject: str(body.subject) ?? "(no subject)",
    html: str(body.html),
    text: str(body.text),
    headers: {
      ...r.headers,
      ...Object.fromEntries(Object.entries(obj(body.headers)).map(([k, v]) => [k, String(v)])),
    },
    deliveryId: str(r.headers["idempotency-key"]),
  };
}

/** A webhook from the receiver's record. */
export function webhookItem(r: Recorded): WebhookItem {
  return {
    ...common("webhook", r),
    method: r.method,
    path: r.path,
    headers: r.headers,
    body: r.raw,
    deliveryId: str(r.headers["webhook-id"]),
  };
}
