/**
 * The whole FCM v1 `Message` surface through Herald's overrides: every field
 * of `AndroidConfig`, `ApnsConfig`, `WebpushConfig` and `fcm_options`, in
 * FCM's spelling and in `firebase-admin`'s, built into a message that the FCM
 * stand-in — which validates against FCM's schema — accepts; and each
 * SDK-only shape on its own, translated to the wire form.
 */
import assert from "node:assert/strict";
import type { ClaimedDelivery } from "../supabase/functions/_shared/outbox/delivery.ts";
import { createFcmSender } from "../supabase/functions/_shared/providers/fcm.ts";
import { buildFcmMessage } from "../supabase/functions/_shared/providers/fcm_message.ts";
import { FcmOverrides } from "../supabase/functions/_shared/providers/fcm_overrides.ts";
import { createAccessTokenSource } from "../supabase/functions/_shared/providers/google_access_token.ts";
import { protoFieldNames } from "./fakes/fcm.ts";
import { createServiceAccount } from "./fakes/google_oauth.ts";
import { startFakes } from "./fakes/main.ts";
import { claimedDelivery } from "./support/deliveries.ts";

const NOW = Date.parse("2026-11-22T12:00:00Z");
const PROJECT = "herald-surface";

/** Every field FCM documents, in FCM's JSON spelling. */
const EVERYTHING = {
  android: {
    collapse_key: "order-42",
    priority: "HIGH",
    ttl: "3600s",
    restricted_package_name: "com.example.shop",
    data: { screen: "order" },
    notification: {
      title: "Android title",
      body: "Android body",
      icon: "ic_order",
      color: "#ff8800",
      sound: "chime",
      tag: "order-42",
      click_action: "OPEN_ORDER",
      body_loc_key: "BODY_KEY",
      body_loc_args: ["42"],
      title_loc_key: "TITLE_KEY",
      title_loc_args: ["Ana"],
      channel_id: "orders",
      ticker: "Order 42",
      sticky: false,
      event_time: "2026-11-22T11:59:00.000Z",
      local_only: false,
      notification_priority: "PRIORITY_HIGH",
      default_sound: false,
      default_vibrate_timings: false,
      default_light_settings: false,
      vibrate_timings: ["0.2s", "0.1s"],
      visibility: "PRIVATE",
      notification_count: 3,
      light_settings: {
        color: { red: 1, green: 0.5, blue: 0, alpha: 1 },
        light_on_duration: "0.5s",
        light_off_duration: "1s",
      },
      image: "https://cdn.example/a.png",
      bypass_proxy_notification: false,
      proxy: "ALLOW",
    },
    fcm_options: { analytics_label: "android_label" },
    direct_boot_ok: true,
    bandwidth_constrained_ok: true,
    restricted_satellite_ok: false,
  },
  apns: {
    headers: {
      "apns-priority": "10",
      "apns-push-type": "alert",
      "apns-expiration": "1800000000",
      "apns-collapse-id": "order-42",
      "apns-topic": "com.example.shop",
      "apns-id": "1b4e28ba-2fa1-41d2-883f-0016d3cca427",
    },
    payload: {
      aps: {
        alert: {
          title: "Shipped",
          subtitle: "Order 42",
          body: "On its way",
          "launch-image": "launch.png",
          "title-loc-key": "T",
          "title-loc-args": ["a"],
          "subtitle-loc-key": "S",
          "subtitle-loc-args": ["b"],
          "loc-key": "L",
          "loc-args": ["c"],
          "action-loc-key": "VIEW",
        },
        badge: 3,
        sound: { critical: 1, name: "alarm.caf", volume: 0.8 },
        "thread-id": "orders",
        category: "ORDER",
        "content-available": 1,
        "mutable-content": 1,
        "target-content-id": "order-42",
        "interruption-level": "time-sensitive",
        "relevance-score": 0.75,
        "filter-criteria": "work",
      },
      order_id: "42",
      nested: { custom: ["keys", 1, true] },
    },
    fcm_options: { analytics_label: "apns_label", image: "https://cdn.example/a.png" },
    live_activity_token: "live-activity-token",
  },
  webpush: {
    headers: { TTL: "600", Urgency: "high", Topic: "order-42" },
    data: { screen: "order" },
    notification: {
      title: "Web title",
      body: "Web body",
      icon: "/icon.png",
      badge: "/badge.png",
      image: "https://cdn.example/a.png",
      lang: "en",
      tag: "order-42",
      dir: "ltr",
      renotify: true,
      requireInteraction: true,
      silent: false,
      timestamp: 1795348800000,
      vibrate: [200, 100, 200],
      actions: [{ action: "open", title: "Open", icon: "/open.png" }],
      data: { any: ["json"] },
    },
    fcm_options: { link: "https://shop.example/orders/42", analytics_label: "web_label" },
  },
  fcm_options: { analytics_label: "message_label" },
};

function delivery(
  platform: ClaimedDelivery["platform"],
  overrides: Record<string, unknown>,
  target = "device-token",
): ClaimedDelivery {
  return claimedDelivery({
    platform,
    target,
    notification: {
      title: "Shipped",
      body: "Order 42",
      data: { order: "42" },
      priority: "high",
      overrides,
      expiresAt: new Date(NOW + 3_600_000),
    },
  });
}

async function withStandIn(work: (send: ReturnType<typeof createFcmSender>) => Promise<void>) {
  const account = await createServiceAccount({ projectId: PROJECT, tokenUri: "http://unused" });
  const fakes = await startFakes({
    ports: { fcm: 0, oauth: 0, email: 0, webhook: 0 },
    serviceAccounts: [account],
  });
  try {
    const tokens = createAccessTokenSource({
      serviceAccount: { ...account, token_uri: fakes.tokenUrl },
    });
    await work(createFcmSender({ projectId: PROJECT, tokens, baseUrl: fakes.fcm.url }));
  } finally {
    await fakes.close();
  }
}

Deno.test("every documented field parses, builds, and is accepted by the FCM stand-in, per platform and for a topic", async () => {
  const parsed = FcmOverrides.parse(EVERYTHING);
  assert.deepEqual(parsed, EVERYTHING, "the wire spelling parses to itself");
  await withStandIn(async (send) => {
    for (
      const d of [
        delivery("android", EVERYTHING),
        delivery("ios", EVERYTHING),
        delivery("web", EVERYTHING),
        delivery(null, EVERYTHING, "/topics/orders"),
        delivery(null, EVERYTHING, "condition:'orders' in topics && 'vip' in topics"),
      ]
    ) {
      const built = buildFcmMessage(d, NOW);
      assert.ok(built.ok, built.ok ? "" : built.reason);
      const outcome = await send(built.message);
      assert.equal(outcome.kind, "sent", `${d.platform ?? d.target}: ${JSON.stringify(outcome)}`);
    }
  });
});

Deno.test("each platform block goes out whole: nothing of the caller's is dropped", () => {
  const android = buildFcmMessage(delivery("android", EVERYTHING), NOW);
  assert.ok(android.ok);
  assert.deepEqual(android.message.android, EVERYTHING.android);
  const ios = buildFcmMessage(delivery("ios", EVERYTHING), NOW);
  assert.ok(ios.ok);
  assert.deepEqual(ios.message.apns, EVERYTHING.apns);
  const web = buildFcmMessage(delivery("web", EVERYTHING), NOW);
  assert.ok(web.ok);
  assert.deepEqual(web.message.webpush, EVERYTHING.webpush);
  assert.deepEqual(web.message.fcm_options, EVERYTHING.fcm_options);
});

/** firebase-admin's spelling of a field, and the wire form it must become: one per SDK shape. */
const SDK_SPELLINGS: [string, Record<string, unknown>, Record<string, unknown>][] = [
  ["android.collapseKey", { android: { collapseKey: "c" } }, { android: { collapse_key: "c" } }],
  [
    "android.restrictedPackageName",
    { android: { restrictedPackageName: "com.x" } },
    { android: { restricted_package_name: "com.x" } },
  ],
  ["android.directBootOk", { android: { directBootOk: true } }, {
    android: { direct_boot_ok: true },
  }],
  [
    "android.fcmOptions.analyticsLabel",
    { android: { fcmOptions: { analyticsLabel: "l" } } },
    { android: { fcm_options: { analytics_label: "l" } } },
  ],
  [
    "android.notification.clickAction",
    { android: { notification: { clickAction: "OPEN" } } },
    { android: { notification: { click_action: "OPEN" } } },
  ],
  [
    "android.notification.channelId",
    { android: { notification: { channelId: "orders" } } },
    { android: { notification: { channel_id: "orders" } } },
  ],
  [
    "android.notification.bodyLocArgs",
    { android: { notification: { bodyLocKey: "K", bodyLocArgs: ["a"] } } },
    { android: { notification: { body_loc_key: "K", body_loc_args: ["a"] } } },
  ],
  [
    "android.notification.imageUrl",
    { android: { notification: { imageUrl: "https://cdn.example/a.png" } } },
    { android: { notification: { image: "https://cdn.example/a.png" } } },
  ],
  [
    "android.notification.priority (SDK) → notification_priority",
    { android: { notification: { priority: "high" } } },
    { android: { notification: { notification_priority: "PRIORITY_HIGH" } } },
  ],
  [
    "android.notification.notificationPriority",
    { android: { notification: { notificationPriority: "PRIORITY_MIN" } } },
    { android: { notification: { notification_priority: "PRIORITY_MIN" } } },
  ],
  [
    "android.notification.visibility in lower case",
    { android: { notification: { visibility: "secret" } } },
    { android: { notification: { visibility: "SECRET" } } },
  ],
  [
    "android.notification.eventTimestamp",
    { android: { notification: { eventTimestamp: "2026-11-22T13:00:00+01:00" } } },
    { android: { notification: { event_time: "2026-11-22T12:00:00.000Z" } } },
  ],
  [
    "android.notification.vibrateTimingsMillis",
    { android: { notification: { vibrateTimingsMillis: [200, 1500] } } },
    { android: { notification: { vibrate_timings: ["0.2s", "1.5s"] } } },
  ],
  [
    "android.notification.notificationCount",
    { android: { notification: { notificationCount: 2 } } },
    { android: { notification: { notification_count: 2 } } },
  ],
  [
    "android.notification.lightSettings (SDK colour and millis)",
    {
      android: {
        notification: {
          lightSettings: {
            color: "#ff0000",
            lightOnDurationMillis: 500,
            lightOffDurationMillis: 1000,
          },
        },
      },
    },
    {
      android: {
        notification: {
          light_settings: {
            color: { red: 1, green: 0, blue: 0, alpha: 1 },
            light_on_duration: "0.5s",
            light_off_duration: "1s",
          },
        },
      },
    },
  ],
  [
    "android.notification.defaultSound",
    { android: { notification: { defaultSound: true, localOnly: true } } },
    { android: { notification: { default_sound: true, local_only: true } } },
  ],
  [
    "apns.payload.aps.contentAvailable",
    { apns: { payload: { aps: { contentAvailable: true } } } },
    { apns: { payload: { aps: { "content-available": 1 } } } },
  ],
  [
    "apns.payload.aps.mutableContent and threadId",
    { apns: { payload: { aps: { mutableContent: true, threadId: "t" } } } },
    { apns: { payload: { aps: { "mutable-content": 1, "thread-id": "t" } } } },
  ],
  [
    "apns.payload.aps.alert camelCase keys",
    {
      apns: { payload: { aps: { alert: { titleLocKey: "T", locArgs: ["a"], launchImage: "l" } } } },
    },
    {
      apns: {
        payload: {
          aps: { alert: { "title-loc-key": "T", "loc-args": ["a"], "launch-image": "l" } },
        },
      },
    },
  ],
  [
    "apns.payload.aps.sound as a CriticalSound",
    { apns: { payload: { aps: { sound: { critical: true, name: "a.caf", volume: 1 } } } } },
    { apns: { payload: { aps: { sound: { critical: 1, name: "a.caf", volume: 1 } } } } },
  ],
  [
    "apns.fcmOptions.imageUrl",
    { apns: { fcmOptions: { imageUrl: "https://cdn.example/a.png", analyticsLabel: "l" } } },
    { apns: { fcm_options: { image: "https://cdn.example/a.png", analytics_label: "l" } } },
  ],
  [
    "apns.liveActivityToken",
    { apns: { liveActivityToken: "tok" } },
    { apns: { live_activity_token: "tok" } },
  ],
  [
    "webpush.fcmOptions.link",
    { webpush: { fcmOptions: { link: "https://shop.example" } } },
    { webpush: { fcm_options: { link: "https://shop.example" } } },
  ],
  [
    "webpush.notification keeps the Web API's camelCase",
    { webpush: { notification: { requireInteraction: true } } },
    { webpush: { notification: { requireInteraction: true } } },
  ],
  [
    "webpush.notification.renotify with its tag",
    { webpush: { notification: { renotify: true, tag: "order-42" } } },
    { webpush: { notification: { renotify: true, tag: "order-42" } } },
  ],
  [
    "webpush.notification's require_interaction, as the Web API spells it",
    { webpush: { notification: { require_interaction: true } } },
    { webpush: { notification: { requireInteraction: true } } },
  ],
  [
    "fcmOptions.analyticsLabel",
    { fcmOptions: { analyticsLabel: "l" } },
    { fcm_options: { analytics_label: "l" } },
  ],
];

for (const [name, sdk, wire] of SDK_SPELLINGS) {
  Deno.test(`firebase-admin's ${name} is accepted and sent in FCM's spelling`, () => {
    assert.deepEqual(FcmOverrides.parse(sdk), wire);
  });
}

Deno.test("webpush.notification refuses keys the Web Notification API does not have, by name", () => {
  for (
    const [notification, path, message] of [
      [{ requireinteraction: true }, "webpush.notification", /unknown field 'requireinteraction'/],
      [{ click_action: "https://x" }, "webpush.notification", /unknown field 'click_action'/],
      [
        { actions: [{ action: "a", title: "t", url: "x" }] },
        "webpush.notification.actions.0",
        /unknown field 'url'/,
      ],
      [
        { actions: [{ action: "a" }] },
        "webpush.notification.actions.0",
        /needs 'action' and 'title'/,
      ],
      [
        { require_interaction: true, requireInteraction: false },
        "webpush.notification.require_interaction",
        /name the same field/,
      ],
      [{ renotify: true }, "webpush.notification.renotify", /renotify needs a tag/],
      [{ silent: true, vibrate: [100] }, "webpush.notification.vibrate", /cannot vibrate/],
    ] as const
  ) {
    const result = FcmOverrides.safeParse({ webpush: { notification } });
    assert.equal(result.success, false, JSON.stringify(notification));
    const issue = result.error!.issues[0];
    assert.equal(issue.path.join("."), path, JSON.stringify(notification));
    assert.match(issue.message, message);
  }
});

Deno.test("a field given in both spellings is refused, naming it", () => {
  const result = FcmOverrides.safeParse({ android: { collapse_key: "a", collapseKey: "b" } });
  assert.equal(result.success, false);
  const issue = result.error!.issues[0];
  assert.equal(issue.path.join("."), "android.collapseKey");
  assert.match(issue.message, /'collapseKey' and 'collapse_key' name the same field/);
});

Deno.test("the FCM stand-in reads proto3 JSON: either spelling, never both, map keys untouched", () => {
  assert.deepEqual(
    protoFieldNames({
      message: {
        token: "t",
        android: { collapseKey: "c", data: { someKey: "v" } },
        apns: { payload: { aps: { "thread-id": "x" }, customKey: 1 } },
      },
      validateOnly: true,
    }),
    {
      message: {
        token: "t",
        android: { collapse_key: "c", data: { someKey: "v" } },
        apns: { payload: { aps: { "thread-id": "x" }, customKey: 1 } },
      },
      validate_only: true,
    },
  );
  assert.match(
    String(protoFieldNames({ message: { android: { collapse_key: "a", collapseKey: "b" } } })),
    /given twice/,
  );
});
