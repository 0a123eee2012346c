import assert from "node:assert/strict";
import { z } from "zod";
import type { ClaimedDelivery } from "../supabase/functions/_shared/outbox/delivery.ts";
import {
  buildFcmMessage,
  type FcmMessage,
  fcmPayloadBytes,
  MAX_PAYLOAD_BYTES,
} from "../supabase/functions/_shared/providers/fcm_message.ts";
import {
  FcmOverrides,
  overridesSchema,
} from "../supabase/functions/_shared/providers/fcm_overrides.ts";
import { ALL_FCM_OVERRIDES, claimedDelivery } from "./support/deliveries.ts";

const NOW = Date.parse("2026-11-22T12:00:00Z");
/** NOW + 90 s in UNIX seconds, written out so the test does not repeat the builder's arithmetic. */
const EXPIRES = "1795348890";

type Content = ClaimedDelivery["notification"];

function delivery(
  platform: ClaimedDelivery["platform"],
  content: Partial<Content> = {},
): ClaimedDelivery {
  return claimedDelivery({
    platform,
    notification: {
      data: { order: "42" },
      category: "orders",
      priority: "high",
      expiresAt: new Date(NOW + 90_000),
      createdAt: new Date(NOW - 5_000),
      requestId: "req-1",
      ...content,
    },
  });
}

const ALL_OVERRIDES = ALL_FCM_OVERRIDES;

const BASE = {
  token: "device-token",
  notification: { title: "Hello", body: "World" },
  data: { order: "42" },
};

const built: [string, ClaimedDelivery, FcmMessage][] = [
  ["Android gets its priority and remaining TTL", delivery("android"), {
    ...BASE,
    android: { priority: "HIGH", ttl: "90s" },
  }],
  [
    "Android takes every override in FCM's spelling and ignores other platforms' blocks",
    delivery("android", { overrides: ALL_OVERRIDES }),
    {
      ...BASE,
      android: {
        priority: "NORMAL",
        ttl: "3600s",
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
      fcm_options: { analytics_label: "order_shipped" },
    },
  ],
  [
    "Android keeps the defaults an override leaves alone, and a duration string as given",
    delivery("android", {
      priority: "normal",
      overrides: { android: { ttl: "120.5s", collapse_key: "c" } },
    }),
    { ...BASE, android: { priority: "NORMAL", ttl: "120.5s", collapse_key: "c" } },
  ],
  [
    "Android's TTL is capped at FCM's 28 days",
    delivery("android", { expiresAt: new Date(NOW + 60 * 86_400_000) }),
    { ...BASE, android: { priority: "HIGH", ttl: "2419200s" } },
  ],
  ["iOS gets apns-priority and apns-expiration", delivery("ios"), {
    ...BASE,
    apns: {
      headers: { "apns-priority": "10", "apns-expiration": EXPIRES, "apns-push-type": "alert" },
    },
  }],
  ["iOS at normal priority gets apns-priority 5", delivery("ios", { priority: "normal" }), {
    ...BASE,
    apns: {
      headers: { "apns-priority": "5", "apns-expiration": EXPIRES, "apns-push-type": "alert" },
    },
  }],
  [
    "iOS merges the header overrides over the defaults and takes the aps payload",
    delivery("ios", { overrides: ALL_OVERRIDES }),
    {
      ...BASE,
      apns: {
        headers: {
          "apns-priority": "5",
          "apns-push-type": "alert",
          "apns-expiration": "1800000000",
          "apns-collapse-id": "order-42",
        },
        payload: ALL_OVERRIDES.apns.payload,
      },
      fcm_options: { analytics_label: "order_shipped" },
    },
  ],
  [
    "iOS keeps default headers an override does not name",
    delivery("ios", { overrides: { apns: { headers: { "apns-collapse-id": "c" } } } }),
    {
      ...BASE,
      apns: {
        headers: {
          "apns-priority": "10",
          "apns-expiration": EXPIRES,
          "apns-collapse-id": "c",
          "apns-push-type": "alert",
        },
      },
    },
  ],
  [
    "iOS without anything to show is a background push at apns-priority 5 even at high priority",
    delivery("ios", { title: null, body: null, expiresAt: null }),
    {
      token: "device-token",
      data: { order: "42" },
      apns: { headers: { "apns-priority": "5", "apns-push-type": "background" } },
    },
  ],
  [
    "iOS with only an aps alert to show keeps apns-priority 10",
    delivery("ios", {
      title: null,
      body: null,
      expiresAt: null,
      overrides: { apns: { payload: { aps: { alert: "Ping" } } } },
    }),
    {
      token: "device-token",
      data: { order: "42" },
      apns: {
        headers: { "apns-priority": "10", "apns-push-type": "alert" },
        payload: { aps: { alert: "Ping" } },
      },
    },
  ],
  [
    "iOS background push (content-available, no alert) goes at 5 whatever the caller asked",
    delivery("ios", {
      title: null,
      body: null,
      expiresAt: null,
      overrides: {
        apns: {
          headers: { "apns-priority": "10", "apns-push-type": "alert" },
          payload: { aps: { "content-available": 1 } },
        },
      },
    }),
    {
      token: "device-token",
      data: { order: "42" },
      apns: {
        headers: { "apns-priority": "5", "apns-push-type": "background" },
        payload: { aps: { "content-available": 1 } },
      },
    },
  ],
  [
    "iOS alert push named background by the caller still goes as alert",
    delivery("ios", { overrides: { apns: { headers: { "apns-push-type": "background" } } } }),
    {
      ...BASE,
      apns: {
        headers: { "apns-priority": "10", "apns-expiration": EXPIRES, "apns-push-type": "alert" },
      },
    },
  ],
  [
    "iOS badge-only push is an alert push",
    delivery("ios", {
      title: null,
      body: null,
      expiresAt: null,
      overrides: { apns: { payload: { aps: { badge: 3 } } } },
    }),
    {
      token: "device-token",
      data: { order: "42" },
      apns: {
        headers: { "apns-priority": "10", "apns-push-type": "alert" },
        payload: { aps: { badge: 3 } },
      },
    },
  ],
  [
    "iOS keeps a push type other than alert or background as the caller named it",
    delivery("ios", { overrides: { apns: { headers: { "apns-push-type": "voip" } } } }),
    {
      ...BASE,
      apns: {
        headers: { "apns-priority": "10", "apns-expiration": EXPIRES, "apns-push-type": "voip" },
      },
    },
  ],
  [
    "Android ttl_seconds 0 is now or never: ttl 0s",
    delivery("android", { expiresAt: new Date(NOW - 2_000), nowOrNever: true }),
    { ...BASE, android: { priority: "HIGH", ttl: "0s" } },
  ],
  [
    "iOS ttl_seconds 0 is now or never: apns-expiration 0",
    delivery("ios", { expiresAt: new Date(NOW - 2_000), nowOrNever: true }),
    {
      ...BASE,
      apns: {
        headers: { "apns-priority": "10", "apns-expiration": "0", "apns-push-type": "alert" },
      },
    },
  ],
  [
    "web ttl_seconds 0 is now or never: TTL 0",
    delivery("web", { expiresAt: new Date(NOW - 2_000), nowOrNever: true }),
    { ...BASE, webpush: { headers: { Urgency: "high", TTL: "0" } } },
  ],
  ["web gets Urgency and TTL headers", delivery("web", { priority: "normal" }), {
    ...BASE,
    webpush: { headers: { Urgency: "normal", TTL: "90" } },
  }],
  [
    "web takes header overrides as strings and the click-through link",
    delivery("web", { overrides: ALL_OVERRIDES }),
    {
      ...BASE,
      webpush: {
        headers: { Urgency: "low", TTL: "600" },
        fcm_options: { link: "https://shop.example/orders/42" },
      },
      fcm_options: { analytics_label: "order_shipped" },
    },
  ],
  [
    "web omits empty parts",
    delivery("web", { title: null, body: null, data: {}, expiresAt: null }),
    { token: "device-token", webpush: { headers: { Urgency: "high" } } },
  ],
  [
    "an image joins the notification",
    delivery("android", { image: "https://cdn.example/a.png", expiresAt: null }),
    {
      ...BASE,
      notification: { title: "Hello", body: "World", image: "https://cdn.example/a.png" },
      android: { priority: "HIGH" },
    },
  ],
  [
    "a topic (no platform) gets every platform's block",
    claimedDelivery({
      platform: null,
      target: "/topics/news",
      notification: {
        title: "Hello",
        body: "World",
        data: { order: "42" },
        priority: "high",
        expiresAt: new Date(NOW + 90_000),
        overrides: { android: { collapse_key: "c" }, webpush: { headers: { Topic: "t" } } },
      },
    }),
    {
      topic: "news",
      notification: { title: "Hello", body: "World" },
      data: { order: "42" },
      android: { priority: "HIGH", ttl: "90s", collapse_key: "c" },
      apns: {
        headers: { "apns-priority": "10", "apns-expiration": EXPIRES, "apns-push-type": "alert" },
      },
      webpush: { headers: { Topic: "t", Urgency: "high", TTL: "90" } },
    },
  ],
];

for (const [name, input, expected] of built) {
  Deno.test(`buildFcmMessage(): ${name}`, () => {
    const result = buildFcmMessage(input, NOW);
    assert.ok(result.ok, result.ok ? "" : result.reason);
    assert.deepEqual(result.message, expected);
  });
}

Deno.test("buildFcmMessage() leaves non-FCM overrides (e-mail) out of the message", () => {
  const result = buildFcmMessage(
    delivery("android", { overrides: { email: { subject: "Hi" } } }),
    NOW,
  );
  assert.ok(result.ok);
  assert.deepEqual(result.message, { ...BASE, android: { priority: "HIGH", ttl: "90s" } });
});

const reserved = ["from", "notification", "message_type", "collapse_key", "google.x", "gcm.n.e"];
for (const key of reserved) {
  Deno.test(`buildFcmMessage() refuses the reserved data key '${key}' as INVALID_DATA`, () => {
    const result = buildFcmMessage(delivery("android", { data: { [key]: "v" } }), NOW);
    assert.deepEqual(result, {
      ok: false,
      code: "INVALID_DATA",
      reason: `data key '${key}' is reserved by FCM`,
    });
  });
}

Deno.test("buildFcmMessage() accepts keys that only resemble reserved ones", () => {
  const data = { fromage: "brie", google: "1", gcm: "2", notifications: "3", "x.google.y": "4" };
  const result = buildFcmMessage(delivery("android", { data }), NOW);
  assert.ok(result.ok);
  assert.deepEqual(result.message.data, data);
});

Deno.test("buildFcmMessage() refuses a non-string data value from a row enqueued in SQL", () => {
  const data = { count: 3 } as unknown as Record<string, string>;
  const result = buildFcmMessage(delivery("web", { data }), NOW);
  assert.deepEqual(result, {
    ok: false,
    code: "INVALID_DATA",
    reason: "data 'count' must be a string",
  });
});

Deno.test("buildFcmMessage() refuses stored overrides FcmOverrides would refuse, naming the field", () => {
  const result = buildFcmMessage(
    delivery("android", { overrides: { android: { priority: "urgent" } } }),
    NOW,
  );
  assert.equal(result.ok, false);
  assert.ok(!result.ok && result.code === "INVALID_DATA");
  assert.match(result.reason, /^overrides are invalid: .*at android\.priority/);
});

/** A delivery whose payload is exactly `bytes` long, padded in the body. */
function sized(bytes: number, content: Partial<Content> = {}, pad = "a") {
  const probe = buildFcmMessage(delivery("android", { ...content, body: "" }), NOW);
  assert.ok(probe.ok);
  const room = bytes - probe.payloadBytes;
  const padBytes = new TextEncoder().encode(pad).length;
  assert.equal(room % padBytes, 0);
  return delivery("android", { ...content, body: pad.repeat(room / padBytes) });
}

Deno.test("buildFcmMessage() passes a payload of exactly 4096 bytes and refuses 4097", () => {
  const fits = buildFcmMessage(sized(MAX_PAYLOAD_BYTES), NOW);
  assert.ok(fits.ok);
  assert.equal(fits.payloadBytes, MAX_PAYLOAD_BYTES);
  assert.deepEqual(buildFcmMessage(sized(MAX_PAYLOAD_BYTES + 1), NOW), {
    ok: false,
    code: "PAYLOAD_TOO_LARGE",
    reason: "the payload is 4097 bytes; FCM allows 4096",
  });
});

Deno.test("buildFcmMessage() counts UTF-8 bytes, not characters", () => {
  assert.deepEqual(buildFcmMessage(sized(MAX_PAYLOAD_BYTES + 2, {}, "é"), NOW), {
    ok: false,
    code: "PAYLOAD_TOO_LARGE",
    reason: "the payload is 4098 bytes; FCM allows 4096",
  });
});

Deno.test("buildFcmMessage() counts the platform's notification payload but not transport options", () => {
  const atLimit = sized(MAX_PAYLOAD_BYTES);
  const withTransport = structuredClone(atLimit);
  withTransport.notification.overrides = { android: { collapse_key: "c".repeat(500), ttl: 60 } };
  assert.ok(buildFcmMessage(withTransport, NOW).ok);
  const withContent = structuredClone(atLimit);
  withContent.notification.overrides = { android: { notification: { channel_id: "orders" } } };
  const result = buildFcmMessage(withContent, NOW);
  assert.ok(!result.ok && result.code === "PAYLOAD_TOO_LARGE");
});

Deno.test("fcmPayloadBytes() measures notification, data, android.notification and apns.payload", () => {
  const message: FcmMessage = {
    token: "t".repeat(100),
    notification: { title: "é" },
    data: { k: "v" },
    android: { ttl: "60s", notification: { tag: "x" } },
    apns: { headers: { "apns-priority": "10" }, payload: { aps: { badge: 1 } } },
    fcm_options: { analytics_label: "l" },
  };
  const counted = JSON.stringify({
    notification: { title: "é" },
    data: { k: "v" },
    android: { tag: "x" },
    apns: { aps: { badge: 1 } },
  });
  assert.equal(fcmPayloadBytes(message), counted.length + 1);
});

Deno.test("FcmOverrides accepts every field Herald documents", () => {
  assert.deepEqual(FcmOverrides.parse(ALL_OVERRIDES), ALL_OVERRIDES);
  const alternatives = {
    android: { priority: "high", ttl: "3600.5s" },
    apns: { payload: { aps: { alert: "Plain text", "mutable-content": 1, "thread-id": "t" } } },
    webpush: { headers: { TTL: "0", Urgency: "very-low" } },
  };
  assert.deepEqual(FcmOverrides.parse(alternatives), alternatives);
  assert.deepEqual(FcmOverrides.parse({}), {});
});

const refused: [string, unknown, string, RegExp][] = [
  [
    "an unknown top-level field",
    { email: {} },
    "",
    /^unknown field 'email'; allowed: android, apns, webpush, fcm_options, analytics_label \(or their camelCase spellings\)$/,
  ],
  [
    "an unknown android field",
    { android: { prioritty: "high" } },
    "android",
    /^unknown field 'prioritty'; allowed: collapse_key, priority, ttl, restricted_package_name, data, notification, fcm_options, direct_boot_ok/,
  ],
  [
    "an unknown priority",
    { android: { priority: "urgent" } },
    "android.priority",
    /expected one of "normal"\|"high"\|"NORMAL"\|"HIGH"/,
  ],
  [
    "a TTL without its unit",
    { android: { ttl: "3600" } },
    "android.ttl",
    /whole seconds \(3600\) or a duration string \("3600s"\)/,
  ],
  ["a negative TTL", { android: { ttl: -1 } }, "android.ttl", />=0/],
  ["a TTL over 28 days", { android: { ttl: 2_419_201 } }, "android.ttl", /at most 2419200 seconds/],
  [
    "a colour name",
    { android: { notification: { color: "red" } } },
    "android.notification.color",
    /#rrggbb/,
  ],
  [
    "an unknown android notification field",
    { android: { notification: { bodyy: "x" } } },
    "android.notification",
    /^unknown field 'bodyy'; allowed: title, body, icon/,
  ],
  [
    "apns-priority 2",
    { apns: { headers: { "apns-priority": "2" } } },
    "apns.headers.apns-priority",
    /expected one of "1"\|"5"\|"10"/,
  ],
  [
    "apns-priority as a number",
    { apns: { headers: { "apns-priority": 10 } } },
    "apns.headers.apns-priority",
    /expected one of/,
  ],
  [
    "an unknown push type",
    { apns: { headers: { "apns-push-type": "silent" } } },
    "apns.headers.apns-push-type",
    /expected one of "alert"/,
  ],
  [
    "apns-expiration as a number",
    { apns: { headers: { "apns-expiration": 1800000000 } } },
    "apns.headers.apns-expiration",
    /expected string/,
  ],
  [
    "a 65-byte collapse id",
    { apns: { headers: { "apns-collapse-id": "x".repeat(65) } } },
    "apns.headers.apns-collapse-id",
    /at most 64 bytes/,
  ],
  [
    "a 33-character collapse id of 66 bytes",
    { apns: { headers: { "apns-collapse-id": "é".repeat(33) } } },
    "apns.headers.apns-collapse-id",
    /at most 64 bytes/,
  ],
  [
    "an unknown APNs header",
    { apns: { headers: { "apns-topik": "x" } } },
    "apns.headers",
    /^Unrecognized key: "apns-topik"/,
  ],
  [
    "a negative badge",
    { apns: { payload: { aps: { badge: -1 } } } },
    "apns.payload.aps.badge",
    />=0/,
  ],
  [
    "content-available 2",
    { apns: { payload: { aps: { "content-available": 2 } } } },
    "apns.payload.aps.content-available",
    /expected one of 0\|1|Invalid input/,
  ],
  [
    "an unknown alert field",
    { apns: { payload: { aps: { alert: { title: "t", colour: 1 } } } } },
    "apns.payload.aps.alert",
    /^unknown field 'colour'; allowed: title, subtitle, body/,
  ],
  [
    "an unknown Urgency",
    { webpush: { headers: { Urgency: "urgent" } } },
    "webpush.headers.Urgency",
    /expected one of "very-low"/,
  ],
  [
    "a fractional web TTL",
    { webpush: { headers: { TTL: "1.5" } } },
    "webpush.headers.TTL",
    /whole seconds/,
  ],
  [
    "an unknown web header",
    { webpush: { headers: { Topik: "x" } } },
    "webpush.headers",
    /^Unrecognized key: "Topik"/,
  ],
  [
    "a plain-HTTP link",
    { webpush: { fcm_options: { link: "http://shop.example" } } },
    "webpush.fcm_options.link",
    /https:\/\//,
  ],
  [
    "an analytics label with a space",
    { analytics_label: "order shipped" },
    "analytics_label",
    /1–50 characters/,
  ],
  [
    "a 51-character analytics label",
    { analytics_label: "x".repeat(51) },
    "analytics_label",
    /1–50 characters/,
  ],
];

for (const [name, input, path, message] of refused) {
  Deno.test(`FcmOverrides refuses ${name}`, () => {
    const result = FcmOverrides.safeParse(input);
    assert.equal(result.success, false);
    const issue = result.error!.issues[0];
    assert.equal(issue.path.join("."), path);
    assert.match(issue.message, message);
  });
}

Deno.test("overridesSchema() names the extended fields in unknown-field errors", () => {
  const WithEmail = overridesSchema({ email: z.strictObject({ subject: z.string() }) });
  const issue = WithEmail.safeParse({ sms: {} }).error!.issues[0];
  assert.equal(
    issue.message,
    "unknown field 'sms'; allowed: android, apns, webpush, fcm_options, analytics_label, email " +
      "(or their camelCase spellings)",
  );
});
