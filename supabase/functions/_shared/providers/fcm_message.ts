/**
 * Turns a claimed push delivery into an FCM v1 `Message`.
 *
 * @module
 */
import type { ClaimedDelivery } from "../outbox/delivery.ts";
import type { FcmMessage } from "./fcm.ts";

/**
 * Builds the message for one device: notification, data, and the block for
 * the device's platform carrying priority and the remaining time to live.
 */
export function buildFcmMessage(delivery: ClaimedDelivery, now: number): FcmMessage {
  const n = delivery.notification;
  const high = n.priority === "high";
  const ttlSeconds = n.expiresAt
    ? Math.max(0, Math.floor((n.expiresAt.getTime() - now) / 1000))
    : undefined;
  const message: FcmMessage = { token: delivery.target };
  const notification = _defined({
    title: n.title ?? undefined,
    body: n.body ?? undefined,
    image: n.image ?? undefined,
  });
  if (Object.keys(notification).length) message.notification = notification;
  if (Object.keys(n.data).length) message.data = n.data;
  switch (delivery.platform) {
    case "android":
      message.android = _defined({
        priority: high ? "HIGH" : "NORMAL",
        ttl: ttlSeconds === undefined ? undefined : `${ttlSeconds}s`,
        ...n.overrides.android,
      });
      break;
    case "ios":
      message.apns = {
        ...n.overrides.apns,
        headers: _defined({
          "apns-priority": high ? "10" : "5",
          "apns-expiration": n.expiresAt
            ? String(Math.floor(n.expiresAt.getTime() / 1000))
            : undefined,
          ...(n.overrides.apns?.headers as Record<string, string> | undefined),
        }),
      };
      break;
    case "web":
      message.webpush = {
        ...n.overrides.webpush,
        headers: _defined({
          Urgency: high ? "high" : "normal",
          TTL: ttlSeconds === undefined ? undefined : String(ttlSeconds),
          ...(n.overrides.webpush?.headers as Record<string, string> | undefined),
        }),
      };
      break;
  }
  return message;
}

function _defined<T extends Record<string, unknown>>(record: T): Partial<T> {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined)) as Partial<
    T
  >;
}
