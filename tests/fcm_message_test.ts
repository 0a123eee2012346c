import assert from "node:assert/strict";
import type { ClaimedDelivery } from "../supabase/functions/_shared/outbox/delivery.ts";
import { buildFcmMessage } from "../supabase/functions/_shared/providers/fcm_message.ts";

const NOW = Date.parse("2026-11-22T12:00:00Z");

function delivery(
  platform: ClaimedDelivery["platform"],
  overrides: Partial<ClaimedDelivery["notification"]> = {},
) {
  return {
    id: "d",
    attempt: 1,
    channel: "push",
    target: "device-token",
    platform,
    targetDisabled: false,
    lease: "",
    notification: {
      id: "n",
      title: "Hello",
      body: "World",
      image: null,
      data: { order: "42" },
      priority: "high",
      overrides: {},
      expiresAt: new Date(NOW + 90_000),
      ...overrides,
    },
  } satisfies ClaimedDelivery;
}

Deno.test("buildFcmMessage() gives Android its priority and remaining TTL", () => {
  assert.deepEqual(buildFcmMessage(delivery("android"), NOW), {
    token: "device-token",
    notification: { title: "Hello", body: "World" },
    data: { order: "42" },
    android: { priority: "HIGH", ttl: "90s" },
  });
});

Deno.test("buildFcmMessage() gives iOS apns-priority and apns-expiration headers", () => {
  const message = buildFcmMessage(delivery("ios", { priority: "normal" }), NOW);
  assert.deepEqual(message.apns, {
    headers: { "apns-priority": "5", "apns-expiration": String(NOW / 1000 + 90) },
  });
});

Deno.test("buildFcmMessage() gives web pushes Urgency and TTL headers, and omits empty parts", () => {
  const message = buildFcmMessage(
    delivery("web", { title: null, body: null, data: {}, expiresAt: null }),
    NOW,
  );
  assert.deepEqual(message, { token: "device-token", webpush: { headers: { Urgency: "high" } } });
});
