import assert from "node:assert/strict";
import type { ClaimedDelivery } from "../supabase/functions/_shared/outbox/delivery.ts";
import {
  createFcmSender,
  type FcmSender,
  validateToken,
} from "../supabase/functions/_shared/providers/fcm.ts";
import type { FcmMessage } from "../supabase/functions/_shared/providers/fcm_message.ts";
import { createAccessTokenSource } from "../supabase/functions/_shared/providers/google_access_token.ts";
import type { Provider } from "../supabase/functions/_shared/providers/provider.ts";
import { createPushProvider } from "../supabase/functions/_shared/providers/push.ts";
import { type Fakes, startFakes } from "./fakes/main.ts";
import { createServiceAccount } from "./fakes/google_oauth.ts";
import { ALL_FCM_OVERRIDES, claimedDelivery } from "./support/deliveries.ts";

const PROJECT = "herald-test";
const NOW = Date.parse("2026-11-22T12:00:00Z");
/** The account's `token_uri` is pointed at the OAuth stand-in once it listens. */
const ACCOUNT = await createServiceAccount({ projectId: PROJECT, tokenUri: "http://unset/token" });

interface Harness {
  fakes: Fakes;
  sender: FcmSender;
  provider: Provider;
  /** What the FCM stand-in recorded or accepted, read over its control API. */
  control<T>(path: string, init?: RequestInit): Promise<T>;
}

async function withFcm(test: (h: Harness) => Promise<void>) {
  const fakes = await startFakes({
    ports: { fcm: 0, oauth: 0, email: 0, webhook: 0 },
    serviceAccounts: [ACCOUNT],
  });
  try {
    const tokens = createAccessTokenSource({
      serviceAccount: { ...ACCOUNT, token_uri: fakes.tokenUrl },
    });
    const sender = createFcmSender({ projectId: PROJECT, tokens, baseUrl: fakes.fcm.url });
    const provider = createPushProvider({ projectId: PROJECT, sender, now: () => NOW });
    const control = async <T>(path: string, init?: RequestInit) => {
      const response = await fetch(`${fakes.fcm.url}/_control/${path}`, init);
      const text = await response.text();
      assert.ok(response.ok, `control ${path}: ${response.status} ${text}`);
      return (text ? JSON.parse(text) : undefined) as T;
    };
    await test({ fakes, sender, provider, control });
  } finally {
    await fakes.close();
  }
}

interface Recorded {
  total: number;
  requests: { method: string; path: string; body: unknown }[];
}
interface Accepted {
  total: number;
  messages: { name: string; message: unknown }[];
}

function delivery(platform: ClaimedDelivery["platform"], target: string): ClaimedDelivery {
  return claimedDelivery({
    id: `d-${platform}`,
    target,
    platform,
    notification: {
      title: "Shipped",
      body: "Order 42 is on its way",
      image: "https://cdn.example/parcel.png",
      data: { order: "42" },
      category: "orders",
      priority: "high",
      overrides: { ...ALL_FCM_OVERRIDES, email: { subject: "Your order shipped" } },
      expiresAt: new Date(NOW + 90_000),
      createdAt: new Date(NOW - 5_000),
      requestId: "req-1",
    },
  });
}

const COMMON = {
  notification: {
    title: "Shipped",
    body: "Order 42 is on its way",
    image: "https://cdn.example/parcel.png",
  },
  data: { order: "42" },
  fcm_options: { analytics_label: "order_shipped" },
};

/** The exact messages FCM must receive, written out by hand from the v1 reference. */
const EXPECTED: [ClaimedDelivery["platform"], string, unknown][] = [
  ["android", "android-token", {
    token: "android-token",
    ...COMMON,
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
  }],
  ["ios", "ios-token", {
    token: "ios-token",
    ...COMMON,
    apns: {
      headers: {
        "apns-priority": "5",
        "apns-expiration": "1800000000",
        "apns-push-type": "alert",
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
  }],
  ["web", "web-token", {
    token: "web-token",
    ...COMMON,
    webpush: {
      headers: { Urgency: "low", TTL: "600" },
      fcm_options: { link: "https://shop.example/orders/42" },
    },
  }],
];

Deno.test("push provider targets its Firebase project's breaker", async () => {
  await withFcm(({ provider }) => {
    assert.equal(provider.target(delivery("android", "t")), `fcm:${PROJECT}`);
    return Promise.resolve();
  });
});

Deno.test("push provider sends Android, iOS and web messages with every override; FCM's stand-in accepts each exactly as built", async () => {
  await withFcm(async ({ provider, control }) => {
    for (const [platform, token, expected] of EXPECTED) {
      const outcome = await provider.send(delivery(platform, token));
      assert.equal(outcome.kind, "sent", JSON.stringify(outcome));
      assert.match(
        outcome.kind === "sent" ? outcome.providerId : "",
        new RegExp(`^projects/${PROJECT}/messages/0:`),
      );
      const accepted = await control<Accepted>("messages");
      assert.deepEqual(accepted.messages.at(-1), {
        name: outcome.kind === "sent" ? outcome.providerId : "",
        message: expected,
      });
    }
    const recorded = await control<Recorded>("requests");
    assert.deepEqual(
      recorded.requests.map((r) => [r.method, r.path, r.body]),
      EXPECTED.map(([, , message]) => [
        "POST",
        `/v1/projects/${PROJECT}/messages:send`,
        { message },
      ]),
    );
  });
});

Deno.test("push provider fails content FCM would refuse permanently, without a request and without disabling the token", async () => {
  await withFcm(async ({ fakes, provider, control }) => {
    const tooLarge = delivery("android", "t");
    tooLarge.notification.data = { blob: "x".repeat(4096) };
    const reserved = delivery("ios", "t");
    reserved.notification.data = { "google.c.a.e": "1" };
    const badOverride = delivery("web", "t");
    badOverride.notification.overrides = { webpush: { headers: { Urgency: "asap" } } };

    const outcomes = await Promise.all(
      [tooLarge, reserved, badOverride].map((d) => provider.send(d)),
    );
    assert.deepEqual(
      outcomes.map((o) => o.kind === "permanent" && [o.code, o.disableTarget]),
      [["PAYLOAD_TOO_LARGE", false], ["INVALID_DATA", false], ["INVALID_DATA", false]],
    );
    assert.equal((await control<Recorded>("requests")).total, 0);
    assert.equal(fakes.oauth.control.total, 0, "no access token was even asked for");
  });
});

Deno.test("validate_only reaches FCM's stand-in as validate_only: true and delivers nothing", async () => {
  await withFcm(async ({ sender, control }) => {
    const message: FcmMessage = { token: "device-token", notification: { title: "Dry run" } };
    const outcome = await sender(message, { validateOnly: true });
    assert.deepEqual(outcome, {
      kind: "sent",
      providerId: `projects/${PROJECT}/messages/fake_message_id`,
      statusCode: 200,
    });
    assert.deepEqual(await validateToken(sender, "device-token"), { kind: "valid" });

    const recorded = await control<Recorded>("requests");
    assert.deepEqual(recorded.requests.map((r) => r.body), [
      { message, validate_only: true },
      { message: { token: "device-token" }, validate_only: true },
    ]);
    assert.equal((await control<Accepted>("messages")).total, 0);
  });
});

Deno.test("validateToken() reports unregistered, foreign and malformed tokens as invalid", async () => {
  await withFcm(async ({ sender, control }) => {
    const json = { "content-type": "application/json" };
    for (const [token, fcm_error] of [["gone", "UNREGISTERED"], ["theirs", "SENDER_ID_MISMATCH"]]) {
      await control("tokens", {
        method: "POST",
        headers: json,
        body: JSON.stringify({ token, fcm_error }),
      });
    }
    await control("behaviour", {
      method: "POST",
      headers: json,
      body: JSON.stringify({ responses: [{ fcm_error: "INVALID_ARGUMENT" }] }),
    });
    const checks = [];
    for (const token of ["not a token", "gone", "theirs"]) {
      const check = await validateToken(sender, token);
      checks.push(check.kind === "invalid" ? [check.kind, check.code] : [check.kind]);
    }
    assert.deepEqual(checks, [
      ["invalid", "INVALID_ARGUMENT"],
      ["invalid", "UNREGISTERED"],
      ["invalid", "SENDER_ID_MISMATCH"],
    ]);
  });
});

Deno.test("validateToken() says unknown when FCM cannot tell (quota, outage)", async () => {
  await withFcm(async ({ sender, control }) => {
    await control("behaviour", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        responses: [{ fcm_error: "QUOTA_EXCEEDED" }, { fcm_error: "UNAVAILABLE" }],
      }),
    });
    for (const code of ["QUOTA_EXCEEDED", "UNAVAILABLE"]) {
      const check = await validateToken(sender, "device-token");
      assert.ok(check.kind === "unknown" && check.outcome.kind === "retry", JSON.stringify(check));
      assert.equal(check.outcome.code, code);
    }
  });
});

/** Raw messages for the stand-in itself: it must refuse what FCM refuses and accept what FCM accepts. */
/** `{"data":{"k":""}}` is 17 bytes, so a value of 4096 - 17 bytes makes a 4096-byte payload. */
const WIRE: [string, Record<string, unknown>, "sent" | "INVALID_ARGUMENT"][] = [
  ["a TTL over 4 weeks", { android: { ttl: "2419201s" } }, "INVALID_ARGUMENT"],
  ["a TTL of exactly 4 weeks", { android: { ttl: "2419200s" } }, "sent"],
  ["the data key 'from'", { data: { from: "x" } }, "INVALID_ARGUMENT"],
  ["the data key 'notification', which FCM accepts", { data: { notification: "x" } }, "sent"],
  ["an unknown field", { android: { prority: "HIGH" } }, "INVALID_ARGUMENT"],
  ["a malformed analytics label in apns.fcm_options", {
    apns: { fcm_options: { analytics_label: "a b" } },
  }, "INVALID_ARGUMENT"],
  ["light settings without their durations", {
    android: { notification: { light_settings: { color: { red: 1 } } } },
  }, "INVALID_ARGUMENT"],
  ["a 4097-byte payload", { data: { k: "x".repeat(4096 - 16) } }, "INVALID_ARGUMENT"],
  ["a 4096-byte payload", { data: { k: "x".repeat(4096 - 17) } }, "sent"],
  ["a 4096-byte payload plus headers and TTL, which are not payload", {
    data: { k: "x".repeat(4096 - 17) },
    android: { ttl: "60s", collapse_key: "c" },
    webpush: { headers: { Topic: "t".repeat(32) } },
  }, "sent"],
];

Deno.test("FCM's stand-in follows the v1 reference on fields, enums, reserved keys and size", async () => {
  await withFcm(async ({ sender }) => {
    for (const [name, fields, expected] of WIRE) {
      const outcome = await sender({ token: "device-token", ...fields } as FcmMessage);
      const got = outcome.kind === "sent" ? "sent" : outcome.code;
      assert.equal(got, expected, `${name}: ${JSON.stringify(outcome)}`);
    }
  });
});
