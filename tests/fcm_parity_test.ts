/**
 * Parity with `firebase-admin`: for a table of representative messages
 * (every platform, every override group, topic and condition targets), the
 * body Herald sends and the body the SDK sends for the same message are
 * captured at the FCM stand-in and compared. Every remaining difference is
 * intended and removed here with its reason.
 *
 * Pointing the SDK at loopback: the service account is passed to `cert()` as
 * a file path with the agent (as an object, the agent is dropped for the token
 * request — firebase-admin-node#2960); an agent connects
 * `oauth2.googleapis.com` and `fcm.googleapis.com` to the stand-ins (the SDK
 * hard-codes both hosts); `enableLegacyHttpTransport()` makes messaging use
 * HTTP/1.1 through the agent.
 */
import assert from "node:assert/strict";
import https from "node:https";
import net from "node:net";
import type { ClaimedDelivery } from "../supabase/functions/_shared/outbox/delivery.ts";
import { createFcmSender } from "../supabase/functions/_shared/providers/fcm.ts";
import { buildFcmMessage } from "../supabase/functions/_shared/providers/fcm_message.ts";
import { createAccessTokenSource } from "../supabase/functions/_shared/providers/google_access_token.ts";
import { protoFieldNames } from "./fakes/fcm.ts";
import { createServiceAccount } from "./fakes/google_oauth.ts";
import { startFakes } from "./fakes/main.ts";
import { claimedDelivery } from "./support/deliveries.ts";

const PROJECT = "herald-parity";

// Loaded by a specifier the type checker does not follow: firebase-admin's
// typings pull in @types/node, whose globals (CryptoKey, …) clash with Deno's
// in every other file checked with it.
const APP_MODULE = "firebase-admin/app";
const MESSAGING_MODULE = "firebase-admin/messaging";
// deno-lint-ignore no-explicit-any
const { cert, deleteApp, initializeApp } = await import(APP_MODULE) as any;
// deno-lint-ignore no-explicit-any
const { getMessaging } = await import(MESSAGING_MODULE) as any;

/** The subset of firebase-admin's `Message` type these cases use. */
// deno-lint-ignore no-explicit-any
type Message = Record<string, any>;
/** firebase-admin's `Messaging`, as used here. */
interface Messaging {
  send(message: Message): Promise<string>;
  enableLegacyHttpTransport(): void;
}

/** One representative message per row: what the SDK is given, and the platform Herald targets. */
const CASES: { name: string; platform: "android" | "ios" | "web" | null; message: Message }[] = [
  {
    name: "android, every override group",
    platform: "android",
    message: {
      token: "parity-android",
      notification: { title: "Shipped", body: "Order 42", imageUrl: "https://cdn.example/a.png" },
      data: { order: "42" },
      android: {
        collapseKey: "order-42",
        priority: "high",
        ttl: 3_600_000,
        restrictedPackageName: "com.example.shop",
        data: { screen: "order" },
        notification: {
          title: "A",
          body: "B",
          icon: "ic",
          color: "#ff8800",
          sound: "chime",
          tag: "t",
          clickAction: "OPEN",
          bodyLocKey: "BK",
          bodyLocArgs: ["1"],
          titleLocKey: "TK",
          titleLocArgs: ["2"],
          channelId: "orders",
          imageUrl: "https://cdn.example/b.png",
          ticker: "tick",
          sticky: true,
          eventTimestamp: new Date("2026-11-22T12:00:00.000Z"),
          localOnly: false,
          priority: "max",
          vibrateTimingsMillis: [200, 100],
          defaultVibrateTimings: false,
          defaultSound: false,
          lightSettings: {
            color: "#ff0000",
            lightOnDurationMillis: 500,
            lightOffDurationMillis: 1000,
          },
          defaultLightSettings: false,
          visibility: "private",
          notificationCount: 3,
        },
        fcmOptions: { analyticsLabel: "android_label" },
        directBootOk: true,
      },
      fcmOptions: { analyticsLabel: "message_label" },
    },
  },
  {
    name: "iOS, headers, the aps dictionary and custom keys",
    platform: "ios",
    message: {
      token: "parity-ios",
      notification: { title: "Shipped", body: "Order 42" },
      apns: {
        headers: {
          "apns-priority": "10",
          "apns-collapse-id": "order-42",
          "apns-push-type": "alert",
        },
        payload: {
          aps: {
            alert: {
              title: "T",
              subtitle: "S",
              body: "B",
              locKey: "L",
              locArgs: ["a"],
              launchImage: "l.png",
            },
            badge: 2,
            sound: { critical: true, name: "alarm.caf", volume: 0.5 },
            threadId: "orders",
            category: "ORDER",
            contentAvailable: true,
            mutableContent: true,
          },
          order_id: "42",
        },
        fcmOptions: { analyticsLabel: "apns_label", imageUrl: "https://cdn.example/c.png" },
        liveActivityToken: "live",
      },
    },
  },
  {
    name: "iOS background push",
    platform: "ios",
    message: {
      token: "parity-ios-bg",
      data: { sync: "1" },
      apns: {
        headers: { "apns-priority": "5", "apns-push-type": "background" },
        payload: { aps: { contentAvailable: true } },
      },
    },
  },
  {
    name: "web, headers, data, the notification and its link",
    platform: "web",
    message: {
      token: "parity-web",
      notification: { title: "Shipped" },
      webpush: {
        headers: { TTL: "600", Urgency: "high", Topic: "order-42" },
        data: { screen: "order" },
        notification: {
          body: "B",
          icon: "/i.png",
          badge: "/b.png",
          requireInteraction: true,
          actions: [{ action: "open", title: "Open" }],
        },
        fcmOptions: { link: "https://shop.example/orders/42" },
      },
    },
  },
  {
    name: "a topic, every platform's block",
    platform: null,
    message: {
      topic: "news",
      notification: { title: "News" },
      android: { priority: "normal", collapseKey: "news" },
      apns: {
        headers: { "apns-priority": "10", "apns-push-type": "alert" },
        payload: { aps: { badge: 1 } },
      },
      webpush: { headers: { Urgency: "normal" } },
    },
  },
  {
    name: "a condition",
    platform: null,
    message: {
      condition: "'news' in topics && !('muted' in topics)",
      data: { k: "v" },
      android: { priority: "high" },
      apns: { headers: { "apns-priority": "5", "apns-push-type": "background" } },
      webpush: { headers: { Urgency: "high" } },
    },
  },
];

/** The same message as a Herald delivery: the content fields, and the rest as overrides. */
function asDelivery(c: (typeof CASES)[number]): ClaimedDelivery {
  const m = c.message as Message & { token?: string; topic?: string; condition?: string };
  const { android, apns, webpush, fcmOptions } = m;
  // Intended: Herald's numeric android.ttl is seconds, the SDK's milliseconds.
  const androidOverrides = android?.ttl === undefined
    ? android
    : { ...android, ttl: `${(android.ttl as number) / 1000}s` };
  const target = m.token ?? (m.topic ? `/topics/${m.topic}` : `condition:${m.condition}`);
  return claimedDelivery({
    platform: c.platform,
    target,
    notification: {
      title: m.notification?.title ?? null,
      body: m.notification?.body ?? null,
      image: m.notification?.imageUrl ?? null,
      data: m.data ?? {},
      priority: "normal",
      overrides: JSON.parse(
        JSON.stringify({ android: androidOverrides, apns, webpush, fcmOptions }),
      ),
      expiresAt: null,
    },
  });
}

/**
 * Removes what Herald sends on purpose that the SDK does not: one platform
 * block per device (the SDK sends whatever the caller wrote), and Herald's
 * defaults where the message named none — android `priority`, apns
 * `apns-priority`/`apns-push-type` (Herald sets the type from the payload,
 * APNs requires it), web `Urgency`.
 */
function intended(
  herald: Record<string, Record<string, unknown>>,
  sdk: Record<string, Record<string, unknown>>,
  platform: string | null,
) {
  const blocks = { android: "android", ios: "apns", web: "webpush" } as const;
  if (platform) {
    for (const [p, block] of Object.entries(blocks)) if (p !== platform) delete sdk[block];
  }
  const sdkHeaders = (block: string) =>
    (sdk[block] as { headers?: Record<string, string> } | undefined)?.headers ?? {};
  const android = herald.android as Record<string, unknown> | undefined;
  if (android && !(sdk.android as Record<string, unknown> | undefined)?.priority) {
    delete android.priority;
  }
  for (
    const [block, defaults] of [["apns", ["apns-priority", "apns-push-type"]], ["webpush", [
      "Urgency",
    ]]] as const
  ) {
    const headers = (herald[block] as { headers?: Record<string, string> } | undefined)?.headers;
    if (!headers) continue;
    for (const name of defaults) if (!(name in sdkHeaders(block))) delete headers[name];
    if (Object.keys(headers).length === 0) delete (herald[block] as { headers?: unknown }).headers;
    if (Object.keys(herald[block]).length === 0) delete herald[block];
  }
  for (const block of Object.values(blocks)) {
    if (sdk[block] && Object.keys(sdk[block]).length === 0) delete sdk[block];
  }
}

/**
 * The spelling differences proto3 JSON allows, made equal: field names in the
 * .proto spelling (the SDK sends `fcmOptions`), durations as plain seconds
 * (the SDK writes `"0.500000000s"`), and android `priority` in upper case
 * (the SDK sends `"high"`; FCM reads either).
 */
function canonical(message: unknown): Record<string, Record<string, unknown>> {
  const walk = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(walk);
    if (typeof value === "string" && /^\d+(\.\d+)?s$/.test(value)) {
      return `${Number(value.slice(0, -1))}s`;
    }
    if (typeof value !== "object" || value === null) return value;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v)]));
  };
  const body = walk(protoFieldNames({ message })) as {
    message: Record<string, Record<string, unknown>>;
  };
  const android = body.message.android as { priority?: string } | undefined;
  if (android?.priority) android.priority = android.priority.toUpperCase();
  return body.message;
}

/** firebase-admin and Herald's sender, both pointed at one set of stand-ins. */
async function withBoth(
  work: (h: {
    messaging: Messaging;
    herald: ReturnType<typeof createFcmSender>;
    fcmUrl: string;
  }) => Promise<void>,
): Promise<void> {
  const account = await createServiceAccount({ projectId: PROJECT, tokenUri: "http://unused" });
  const fakes = await startFakes({
    ports: { fcm: 0, oauth: 0, email: 0, webhook: 0 },
    serviceAccounts: [account],
  });
  const ports = {
    "oauth2.googleapis.com": Number(new URL(fakes.tokenUrl).port),
    "fcm.googleapis.com": Number(new URL(fakes.fcm.url).port),
  };
  class Loopback extends https.Agent {
    override createConnection(options: { host?: string }) {
      const port = ports[options.host as keyof typeof ports];
      if (!port) {
        throw new Error(`the SDK asked for ${options.host}, which the test does not route`);
      }
      return net.connect(port, "127.0.0.1");
    }
  }
  const agent = new Loopback({ keepAlive: true });
  const path = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(path, JSON.stringify(account));
  const app = initializeApp(
    { credential: cert(path, agent), httpAgent: agent, projectId: PROJECT },
    `parity-${crypto.randomUUID()}`,
  );
  try {
    const messaging: Messaging = getMessaging(app);
    messaging.enableLegacyHttpTransport();
    const herald = createFcmSender({
      projectId: PROJECT,
      tokens: createAccessTokenSource({
        serviceAccount: { ...account, token_uri: fakes.tokenUrl },
      }),
      baseUrl: fakes.fcm.url,
    });
    await work({ messaging, herald, fcmUrl: fakes.fcm.url });
  } finally {
    await deleteApp(app);
    agent.destroy();
    await fakes.close();
    await Deno.remove(path);
  }
}

Deno.test("parity: Herald sends what firebase-admin sends for the same message, but for the differences listed", async () => {
  await withBoth(async ({ messaging, herald, fcmUrl }) => {
    const requests = async () => {
      const response = await fetch(`${fcmUrl}/_control/requests`);
      return (await response.json()).requests as { body: { message: unknown } }[];
    };
    for (const c of CASES) {
      await fetch(`${fcmUrl}/_control/reset`, { method: "POST" });
      await messaging.send(c.message);
      const built = buildFcmMessage(asDelivery(c), Date.now());
      assert.ok(built.ok, built.ok ? "" : built.reason);
      const outcome = await herald(built.message);
      assert.equal(outcome.kind, "sent", `${c.name}: ${JSON.stringify(outcome)}`);
      const [sdk, ours] = (await requests()).map((r) => canonical(r.body.message));
      assert.ok(sdk && ours, `${c.name}: the stand-in received both`);
      intended(ours, sdk, c.platform);
      assert.deepEqual(ours, sdk, c.name);
    }
  });
});

/**
 * Each error FCM answers, what firebase-admin calls it, and what Herald does:
 * the SDK's classification is the reference (see classifyFcm for the two
 * deliberate departures, neither of which FCM's error bodies here exercise).
 */
const ERRORS: [fakeCode: string, sdkCode: string, herald: { kind: string; disable?: boolean }][] = [
  ["UNREGISTERED", "messaging/registration-token-not-registered", {
    kind: "permanent",
    disable: true,
  }],
  ["NOT_FOUND", "messaging/registration-token-not-registered", {
    kind: "permanent",
    disable: true,
  }],
  ["SENDER_ID_MISMATCH", "messaging/mismatched-credential", { kind: "permanent", disable: true }],
  ["INVALID_ARGUMENT", "messaging/invalid-argument", { kind: "permanent", disable: false }],
  ["INVALID_REGISTRATION_TOKEN", "messaging/invalid-argument", {
    kind: "permanent",
    disable: true,
  }],
  ["THIRD_PARTY_AUTH_ERROR", "messaging/third-party-auth-error", {
    kind: "permanent",
    disable: false,
  }],
  ["APNS_AUTH_ERROR", "messaging/third-party-auth-error", { kind: "permanent", disable: false }],
  ["QUOTA_EXCEEDED", "messaging/message-rate-exceeded", { kind: "retry" }],
  ["INTERNAL", "messaging/internal-error", { kind: "retry" }],
  ["UNAVAILABLE", "messaging/server-unavailable", { kind: "retry" }],
];

Deno.test("parity: each FCM error body means to Herald what firebase-admin says it means", async () => {
  await withBoth(async ({ messaging, herald, fcmUrl }) => {
    for (const [fakeCode, sdkCode, expected] of ERRORS) {
      const token = `parity-error-${fakeCode}`;
      await fetch(`${fcmUrl}/_control/tokens`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ token, fcm_error: fakeCode }),
      });
      const sdkError = await messaging.send({ token, data: { k: "v" } }).then(
        () => undefined,
        (error: { code?: string }) => error.code,
      );
      assert.equal(sdkError, sdkCode, fakeCode);
      const outcome = await herald({ token, data: { k: "v" } });
      assert.equal(outcome.kind, expected.kind, `${fakeCode}: ${JSON.stringify(outcome)}`);
      if (outcome.kind === "permanent") {
        assert.equal(outcome.disableTarget, expected.disable, fakeCode);
      }
    }
  });
});
