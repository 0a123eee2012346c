/**
 * Claimed-delivery fixtures for provider tests, and every FCM override Herald
 * accepts. Tests pass the fields they assert on; the rest are neutral.
 *
 * @module
 */
import type { ClaimedDelivery } from "../../supabase/functions/_shared/outbox/delivery.ts";
import type { FcmOverrides } from "../../supabase/functions/_shared/providers/fcm_overrides.ts";

/** The fields of a fixture, with `notification` itself partial. */
export type DeliveryFields = Partial<Omit<ClaimedDelivery, "notification">> & {
  notification?: Partial<ClaimedDelivery["notification"]>;
};

/** A claimed delivery as the dispatcher would hand it to a provider. */
export function claimedDelivery(fields: DeliveryFields = {}): ClaimedDelivery {
  const { notification, ...delivery } = fields;
  return {
    id: "d-1",
    createdAt: "2026-11-22 12:00:00.000001+00",
    attempt: 1,
    channel: "push",
    target: "device-token",
    platform: null,
    recipientId: "7b0c5c5e-6f0e-4a4e-9d55-0c7f6f3f4a10",
    webhookEndpointId: null,
    targetDisabled: false,
    secrets: [],
    lease: "2026-11-22 12:01:00.123456+00",
    ...delivery,
    notification: {
      id: "n-1",
      title: "Hello",
      body: "World",
      image: null,
      data: {},
      category: null,
      priority: "normal",
      overrides: {},
      expiresAt: null,
      createdAt: new Date("2026-11-22T12:00:00Z"),
      requestId: null,
      ...notification,
    },
  };
}

/** Every override Herald accepts, in the caller's spelling. */
export const ALL_FCM_OVERRIDES = {
  android: {
    priority: "normal",
    ttl: 3600,
    collapse_key: "order-42",
    notification: {
      channel_id: "orders",
      tag: "order-42",
      sound: "chime",
      click_action: "OPEN_ORDER",
      icon: "ic_order",
      color: "#FF8800",
    },
  },
  apns: {
    headers: {
      "apns-priority": "5",
      "apns-push-type": "alert",
      "apns-expiration": "1800000000",
      "apns-collapse-id": "order-42",
    },
    payload: {
      aps: {
        alert: { title: "Shipped", subtitle: "Order 42", body: "On its way" },
        badge: 3,
        sound: "chime.caf",
        "content-available": 1,
      },
    },
  },
  webpush: {
    headers: { TTL: 600, Urgency: "low" },
    fcm_options: { link: "https://shop.example/orders/42" },
  },
  analytics_label: "order_shipped",
} satisfies FcmOverrides;
