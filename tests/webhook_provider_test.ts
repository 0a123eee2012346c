import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import type { Resolve } from "../supabase/functions/_shared/net/ssrf_guard.ts";
import type { ClaimedDelivery } from "../supabase/functions/_shared/outbox/delivery.ts";
import {
  classifyWebhook,
  createWebhookProvider,
} from "../supabase/functions/_shared/providers/webhook.ts";
import { type Fake, type Recorded, serveFake } from "./fakes/control.ts";
import { webhookReceiverHandler } from "./fakes/webhook_receiver.ts";
import { claimedDelivery } from "./support/deliveries.ts";

const NOW = Date.parse("2026-11-22T12:00:00Z");

const classifications: [number, string, { code?: string; disableTarget?: boolean }][] = [
  [200, "sent", {}],
  [202, "sent", {}],
  [204, "sent", {}],
  [410, "permanent", { code: "GONE", disableTarget: true }],
  [301, "permanent", { code: "REDIRECT", disableTarget: false }],
  [302, "permanent", { code: "REDIRECT", disableTarget: false }],
  [307, "permanent", { code: "REDIRECT", disableTarget: false }],
  [308, "permanent", { code: "REDIRECT", disableTarget: false }],
  [408, "retry", { code: "HTTP_408" }],
  [425, "retry", { code: "HTTP_425" }],
  [429, "retry", { code: "HTTP_429" }],
  [500, "retry", { code: "HTTP_500" }],
  [502, "retry", { code: "HTTP_502" }],
  [503, "retry", { code: "HTTP_503" }],
  [504, "retry", { code: "HTTP_504" }],
  [400, "permanent", { code: "HTTP_400", disableTarget: false }],
  [401, "permanent", { code: "HTTP_401", disableTarget: false }],
  [403, "permanent", { code: "HTTP_403", disableTarget: false }],
  [404, "permanent", { code: "HTTP_404", disableTarget: false }],
  [413, "permanent", { code: "HTTP_413", disableTarget: false }],
  [422, "permanent", { code: "HTTP_422", disableTarget: false }],
];

for (const [status, kind, expected] of classifications) {
  Deno.test(`classifyWebhook() maps HTTP ${status} to ${kind}`, () => {
    const outcome = classifyWebhook(status, new Headers(), NOW);
    assert.equal(outcome.kind, kind);
    assert.equal(outcome.statusCode, status);
    if (outcome.kind !== "sent") assert.equal(outcome.code, expected.code);
    if (outcome.kind === "permanent") assert.equal(outcome.disableTarget, expected.disableTarget);
    if (outcome.kind === "retry") assert.equal(outcome.afterMs, undefined);
  });
}

Deno.test("classifyWebhook() honours Retry-After in seconds and as an HTTP-date", () => {
  const seconds = classifyWebhook(429, new Headers({ "retry-after": "30" }), NOW);
  assert.equal(seconds.kind === "retry" && seconds.afterMs, 30_000);
  const date = new Headers({ "retry-after": new Date(NOW + 90_000).toUTCString() });
  const dated = classifyWebhook(503, date, NOW);
  assert.equal(dated.kind === "retry" && dated.afterMs, 90_000);
});

Deno.test("classifyWebhook() names the Location of a redirect it does not follow", () => {
  const outcome = classifyWebhook(
    302,
    new Headers({ location: "https://elsewhere.example/" }),
    NOW,
  );
  assert.equal(outcome.kind, "permanent");
  assert.match(outcome.kind === "permanent" ? outcome.reason : "", /elsewhere\.example/);
});

/** A fresh Standard Webhooks secret, built without the signer under test. */
function newSecret(): string {
  return `whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))}`;
}

function delivery(target: string, overrides: Partial<ClaimedDelivery> = {}): ClaimedDelivery {
  return claimedDelivery({
    id: "7d0c6a5e-2f43-4f5a-9c1e-0b8f3d2a1c44",
    channel: "webhook",
    target,
    recipientId: "c2a8e1f0-5b7d-4e3a-8f6c-1d9b0a7e4c21",
    secrets: [newSecret()],
    lease: "2026-11-22 12:00:30.123456+00",
    notification: {
      id: "0b9e7f3a-6c2d-4a1e-b5f8-3e7d9c1a2b60",
      title: "Your order shipped",
      body: "It arrives on Tuesday.",
      data: { order_id: "A-1042" },
      category: "orders",
      priority: "high",
      createdAt: new Date("2026-11-22T11:59:58.500Z"),
      requestId: "req-1",
    },
    ...overrides,
  });
}

/** Runs `fn` against a fresh stand-in receiver, closed afterwards. */
async function withReceiver(fn: (receiver: Fake) => Promise<void>): Promise<void> {
  const receiver = serveFake({ port: 0, handler: webhookReceiverHandler() });
  try {
    await fn(receiver);
  } finally {
    await receiver.close();
  }
}

async function behave(receiver: Fake, behaviour: Record<string, unknown>): Promise<void> {
  const response = await fetch(`${receiver.url}/_control/behaviour`, {
    method: "POST",
    body: JSON.stringify(behaviour),
  });
  await response.body?.cancel();
  assert.equal(response.status, 204);
}

async function received(receiver: Fake): Promise<Recorded[]> {
  const response = await fetch(`${receiver.url}/_control/requests`);
  return ((await response.json()) as { requests: Recorded[] }).requests;
}

/** The receiver's own address is loopback, so the wire tests allow-list it. */
const LOCAL = { allowHosts: ["127.0.0.1"] };

Deno.test("send() posts the Standard Webhooks envelope, signed so standardwebhooks verifies it", async () => {
  await withReceiver(async (receiver) => {
    const sent = delivery(`${receiver.url}/hooks/herald`);
    // standardwebhooks checks the timestamp against the real clock, so time stands still at now.
    const at = Date.now();
    const provider = createWebhookProvider({ ...LOCAL, now: () => at });

    const outcome = await provider.send(sent);

    assert.deepEqual(outcome, { kind: "sent", providerId: "", statusCode: 204 });
    const [request] = await received(receiver);
    assert.equal(request.method, "POST");
    assert.equal(request.path, "/hooks/herald");
    assert.equal(request.headers["content-type"], "application/json");
    assert.equal(request.headers["user-agent"], "Herald-Webhooks/1");
    assert.equal(request.headers["webhook-id"], sent.id);
    assert.equal(request.headers["webhook-timestamp"], String(Math.floor(at / 1000)));
    const expected = {
      type: "notification.delivery",
      timestamp: new Date(at).toISOString(),
      data: {
        delivery_id: sent.id,
        notification_id: sent.notification.id,
        recipient_id: sent.recipientId,
        title: "Your order shipped",
        body: "It arrives on Tuesday.",
        image: null,
        data: { order_id: "A-1042" },
        category: "orders",
        priority: "high",
        created_at: "2026-11-22T11:59:58.500Z",
      },
    };
    assert.deepEqual(JSON.parse(request.raw), expected);
    assert.deepEqual(new Webhook(sent.secrets[0]).verify(request.raw, request.headers), expected);
  });
});

Deno.test("send() signs with both secrets during a rotation, newest first", async () => {
  await withReceiver(async (receiver) => {
    const [newest, oldest] = [newSecret(), newSecret()];
    const sent = delivery(`${receiver.url}/hook`, { secrets: [newest, oldest] });

    await createWebhookProvider(LOCAL).send(sent);

    const [request] = await received(receiver);
    const signatures = request.headers["webhook-signature"].split(" ");
    assert.equal(signatures.length, 2);
    for (const [secret, signature] of [[newest, signatures[0]], [oldest, signatures[1]]]) {
      const headers = { ...request.headers, "webhook-signature": signature };
      new Webhook(secret).verify(request.raw, headers);
    }
    assert.throws(() => new Webhook(newSecret()).verify(request.raw, request.headers));
  });
});

Deno.test("send() repeats the webhook-id on every retry of a delivery", async () => {
  await withReceiver(async (receiver) => {
    await behave(receiver, { responses: [{ status: 503 }] });
    const provider = createWebhookProvider(LOCAL);
    const first = delivery(`${receiver.url}/hook`);

    assert.equal((await provider.send(first)).kind, "retry");
    assert.equal((await provider.send({ ...first, attempt: 2 })).kind, "sent");

    const requests = await received(receiver);
    assert.equal(requests.length, 2);
    assert.deepEqual(requests.map((r) => r.headers["webhook-id"]), [first.id, first.id]);
    for (const request of requests) {
      new Webhook(first.secrets[0]).verify(request.raw, request.headers);
    }
  });
});

Deno.test("send() disables an endpoint that answers 410 Gone", async () => {
  await withReceiver(async (receiver) => {
    await behave(receiver, { responses: [{ status: 410 }] });

    const outcome = await createWebhookProvider(LOCAL).send(delivery(`${receiver.url}/hook`));

    assert.deepEqual(outcome, {
      kind: "permanent",
      code: "GONE",
      statusCode: 410,
      reason: "the endpoint answered 410 Gone",
      disableTarget: true,
    });
  });
});

Deno.test("send() retries a 503 after the Retry-After seconds or HTTP-date, for the whole endpoint", async () => {
  await withReceiver(async (receiver) => {
    await behave(receiver, {
      responses: [
        { status: 503, headers: { "retry-after": "7" } },
        { status: 503, headers: { "retry-after": new Date(NOW + 120_000).toUTCString() } },
      ],
    });
    const provider = createWebhookProvider({ ...LOCAL, now: () => NOW });
    const target = `${receiver.url}/hook`;

    const seconds = await provider.send(delivery(target));
    const dated = await provider.send(delivery(target));

    assert.deepEqual(seconds, {
      kind: "retry",
      code: "HTTP_503",
      statusCode: 503,
      reason: "the endpoint answered 503",
      afterMs: 7_000,
      throttled: true,
    });
    assert.equal(dated.kind === "retry" && dated.afterMs, 120_000);
  });
});

Deno.test("send() does not follow a redirect: REDIRECT, and the Location receives nothing", async () => {
  await withReceiver(async (receiver) => {
    await withReceiver(async (elsewhere) => {
      const location = `${elsewhere.url}/stolen`;
      await behave(receiver, { responses: [{ status: 302, headers: { location } }] });

      const outcome = await createWebhookProvider(LOCAL).send(delivery(`${receiver.url}/hook`));

      assert.equal(outcome.kind, "permanent");
      assert.equal(outcome.kind === "permanent" && outcome.code, "REDIRECT");
      assert.equal(outcome.kind === "permanent" && outcome.disableTarget, false);
      assert.match(outcome.kind === "permanent" ? outcome.reason : "", new RegExp(location));
      assert.equal((await received(receiver)).length, 1);
      assert.deepEqual(await received(elsewhere), []);
    });
  });
});

Deno.test("send() gives up on a slow endpoint after timeoutMs and retries with TIMEOUT", async () => {
  await withReceiver(async (receiver) => {
    await behave(receiver, { latency_ms: 400 });
    const provider = createWebhookProvider({ ...LOCAL, timeoutMs: 50 });

    const started = performance.now();
    const outcome = await provider.send(delivery(`${receiver.url}/hook`));

    assert.ok(performance.now() - started < 350, "the attempt outlived its time limit");
    assert.deepEqual(outcome, { kind: "retry", code: "TIMEOUT", reason: "no answer within 50 ms" });
  });
});

Deno.test("send() retries with NETWORK when nothing listens at the endpoint", async () => {
  const gone = serveFake({ port: 0, handler: webhookReceiverHandler() });
  await gone.close();

  const outcome = await createWebhookProvider(LOCAL).send(delivery(`${gone.url}/hook`));

  assert.equal(outcome.kind, "retry");
  assert.equal(outcome.kind === "retry" && outcome.code, "NETWORK");
});

Deno.test("send() refuses private destinations before sending, and reaches the same receiver once allow-listed", async () => {
  await withReceiver(async (receiver) => {
    const port = new URL(receiver.url).port;
    const resolve: Resolve = (hostname) =>
      Promise.resolve(hostname === "hooks.example.test" ? ["10.0.0.5"] : []);
    const guarded = createWebhookProvider({ resolve });
    const refusals: [string, RegExp][] = [
      [`http://127.0.0.1:${port}/hook`, /127\.0\.0\.1 is not a public address \(loopback\)/],
      [`http://localhost:${port}/hook`, /localhost is a loopback name/],
      ["http://169.254.169.254/latest/meta-data/", /169\.254\.169\.254 .*cloud metadata/],
      [`http://[::1]:${port}/hook`, /::1 is not a public address \(loopback\)/],
      [`http://hooks.example.test:${port}/hook`, /hooks\.example\.test resolves to 10\.0\.0\.5/],
    ];

    for (const [target, reason] of refusals) {
      const outcome = await guarded.send(delivery(target));
      assert.equal(outcome.kind, "permanent", target);
      assert.equal(outcome.kind === "permanent" && outcome.code, "SSRF_BLOCKED", target);
      assert.equal(outcome.kind === "permanent" && outcome.disableTarget, true, target);
      assert.match(outcome.kind === "permanent" ? outcome.reason : "", reason);
    }
    assert.deepEqual(await received(receiver), []);

    const allowed = createWebhookProvider({ allowHosts: ["127.0.0.1"], resolve });
    const outcome = await allowed.send(delivery(`http://127.0.0.1:${port}/hook`));
    assert.equal(outcome.kind, "sent");
    assert.equal((await received(receiver)).length, 1);
  });
});

Deno.test("send() retries with DNS when the endpoint's host does not resolve", async () => {
  const fetches: unknown[] = [];
  const provider = createWebhookProvider({
    resolve: () => Promise.reject(new Error("lookup timed out")),
    fetch: (input) => {
      fetches.push(input);
      return Promise.resolve(new Response(null, { status: 204 }));
    },
  });

  const outcome = await provider.send(delivery("https://hooks.example.com/herald"));

  assert.deepEqual(outcome, {
    kind: "retry",
    code: "DNS",
    reason: "hooks.example.com did not resolve: lookup timed out",
  });
  assert.deepEqual(fetches, []);
});

Deno.test("send() retries without a request when the endpoint has no usable secret (configuration, not the customer's fault)", async () => {
  const fetches: unknown[] = [];
  const provider = createWebhookProvider({
    resolve: () => Promise.resolve(["93.184.215.14"]),
    fetch: (input) => {
      fetches.push(input);
      return Promise.resolve(new Response(null, { status: 204 }));
    },
  });
  const target = "https://hooks.example.com/herald";

  const none = await provider.send(delivery(target, { secrets: [] }));
  const broken = await provider.send(delivery(target, { secrets: ["whsec_%%%"] }));
  // What a racing array parse once produced: the Postgres array literal as a string.
  const unparsed = await provider.send(
    delivery(target, { secrets: "{whsec_aGVsbG8=}" as unknown as string[] }),
  );

  assert.equal(none.kind === "retry" && none.code, "NO_SECRET");
  assert.equal(broken.kind === "retry" && broken.code, "INVALID_SECRET");
  assert.equal(unparsed.kind === "retry" && unparsed.code, "NO_SECRET");
  assert.deepEqual(fetches, []);
});

Deno.test("target() names the endpoint, so each endpoint has its own breaker and send slots", () => {
  const provider = createWebhookProvider();
  const id = "5b4c4a8e-2f0e-4d8e-9a57-3f1f0f9d8c11";
  assert.equal(
    provider.target(delivery("https://hooks.example.com/a", { webhookEndpointId: id })),
    `webhook:${id}`,
  );
});

Deno.test("target() names the host and port of a delivery that names no endpoint", () => {
  const provider = createWebhookProvider();
  assert.equal(
    provider.target(delivery("https://Hooks.Example.com/a?b=c")),
    "webhook:hooks.example.com",
  );
  assert.equal(provider.target(delivery("http://127.0.0.1:8089/hook")), "webhook:127.0.0.1:8089");
  assert.equal(
    provider.target(delivery("https://hooks.example.com:443/")),
    "webhook:hooks.example.com",
  );
  assert.equal(provider.target(delivery("not a url")), "webhook:invalid-url");
});

Deno.test("createWebhookProvider() rejects a non-positive timeout and a host that is not one", () => {
  assert.throws(() => createWebhookProvider({ timeoutMs: 0 }), RangeError);
  assert.throws(() => createWebhookProvider({ allowHosts: ["not a host"] }), RangeError);
});

Deno.test("maxInFlight caps one endpoint's sends (16 unless set), below the dispatcher's limit", () => {
  assert.equal(createWebhookProvider().maxInFlight, 16);
  assert.equal(createWebhookProvider({ maxInFlight: 4 }).maxInFlight, 4);
  assert.equal(createWebhookProvider().breakerScope, "destination");
  assert.throws(() => createWebhookProvider({ maxInFlight: 0 }), RangeError);
});
