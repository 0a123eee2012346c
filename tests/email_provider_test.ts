/**
 * The e-mail provider: Resend's answers as a table, and sends against the
 * Resend stand-in on a loopback port, asserted on the wire.
 */
import assert from "node:assert/strict";
import type { ClaimedDelivery } from "../supabase/functions/_shared/outbox/delivery.ts";
import {
  classifyEmail,
  createEmailProvider,
  type EmailProviderOptions,
  QUOTA_WAIT_MS,
} from "../supabase/functions/_shared/providers/email.ts";
import type { SendOutcome } from "../supabase/functions/_shared/providers/outcome.ts";
import { FakeControl, type Recorded, serveFake } from "./fakes/control.ts";
import { emailHandler } from "./fakes/email.ts";
import { claimedDelivery } from "./support/deliveries.ts";

const NOW = Date.parse("2026-11-22T12:00:00Z");
const API_KEY = "re_test_5fK2pQ9xLm";
const FROM = "Herald <herald@example.test>";

/** Resend's error body, built by hand from the documented `{ statusCode, name, message }`. */
function resendError(statusCode: number, name: string, message = `${name} for test`) {
  return { statusCode, name, message };
}

function delivery(
  notification: Partial<ClaimedDelivery["notification"]> = {},
  id = crypto.randomUUID(),
): ClaimedDelivery {
  return claimedDelivery({
    id,
    channel: "email",
    target: "ada@example.test",
    recipientId: crypto.randomUUID(),
    lease: "",
    notification: {
      id: crypto.randomUUID(),
      title: "Your order shipped",
      body: "It arrives on Tuesday.",
      createdAt: new Date(NOW),
      ...notification,
    },
  });
}

/** Starts the stand-in, hands a provider on it to `fn`, and closes it whatever happens. */
async function withStandIn(
  fn: (
    ctx: {
      url: string;
      provider: (options?: Partial<EmailProviderOptions>) => ReturnType<typeof createEmailProvider>;
      control: (path: string, body?: unknown) => Promise<unknown>;
    },
  ) => Promise<void>,
) {
  const control = new FakeControl();
  const fake = serveFake({
    port: 0,
    control,
    handler: emailHandler({ apiKeys: [API_KEY], control }),
  });
  try {
    await fn({
      url: fake.url,
      provider: (options = {}) =>
        createEmailProvider({ apiKey: API_KEY, from: FROM, baseUrl: fake.url, ...options }),
      control: async (path, body) => {
        const response = await fetch(`${fake.url}/_control/${path}`, {
          method: body === undefined ? "GET" : "POST",
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await response.text();
        assert.ok(response.ok, `control ${path} answered ${response.status}: ${text}`);
        return text ? JSON.parse(text) : undefined;
      },
    });
  } finally {
    await fake.close();
  }
}

type Expected =
  | { kind: "sent"; providerId: string }
  | { kind: "retry"; code: string; afterMs?: number }
  | { kind: "permanent"; code: string; reasonIncludes?: string };

const cases: [string, number, unknown, Headers, Expected][] = [
  ["a success", 200, { id: "4ef9a417-02e9-4d39-ad75-9611e0fcc33c" }, new Headers(), {
    kind: "sent",
    providerId: "4ef9a417-02e9-4d39-ad75-9611e0fcc33c",
  }],
  [
    "rate_limit_exceeded with Retry-After",
    429,
    resendError(429, "rate_limit_exceeded"),
    new Headers({ "retry-after": "2" }),
    {
      kind: "retry",
      code: "rate_limit_exceeded",
      afterMs: 2_000,
    },
  ],
  ["a 429 without a body", 429, undefined, new Headers(), {
    kind: "retry",
    code: "rate_limit_exceeded",
  }],
  [
    "daily_quota_exceeded",
    429,
    resendError(429, "daily_quota_exceeded"),
    new Headers({ "retry-after": "5" }),
    {
      kind: "retry",
      code: "daily_quota_exceeded",
      afterMs: QUOTA_WAIT_MS,
    },
  ],
  ["monthly_quota_exceeded", 429, resendError(429, "monthly_quota_exceeded"), new Headers(), {
    kind: "retry",
    code: "monthly_quota_exceeded",
    afterMs: QUOTA_WAIT_MS,
  }],
  ["missing_api_key", 401, resendError(401, "missing_api_key"), new Headers(), {
    kind: "retry",
    code: "missing_api_key",
  }],
  ["invalid_api_key", 403, resendError(403, "invalid_api_key"), new Headers(), {
    kind: "retry",
    code: "invalid_api_key",
  }],
  [
    "an unverified domain",
    403,
    resendError(403, "validation_error", "The example.test domain is not verified."),
    new Headers(),
    {
      kind: "retry",
      code: "validation_error",
    },
  ],
  [
    "concurrent_idempotent_requests",
    409,
    resendError(409, "concurrent_idempotent_requests"),
    new Headers(),
    {
      kind: "retry",
      code: "concurrent_idempotent_requests",
    },
  ],
  [
    "invalid_idempotent_request",
    409,
    resendError(409, "invalid_idempotent_request"),
    new Headers(),
    {
      kind: "permanent",
      code: "invalid_idempotent_request",
    },
  ],
  [
    "validation_error",
    422,
    resendError(422, "validation_error", "Invalid `to` field."),
    new Headers(),
    {
      kind: "permanent",
      code: "validation_error",
      reasonIncludes: "Invalid `to` field.",
    },
  ],
  [
    "missing_required_field",
    422,
    resendError(422, "missing_required_field", "Missing `subject` field."),
    new Headers(),
    {
      kind: "permanent",
      code: "missing_required_field",
      reasonIncludes: "Missing `subject` field.",
    },
  ],
  [
    "a 400 validation_error",
    400,
    resendError(400, "validation_error", "Invalid `tags` field."),
    new Headers(),
    {
      kind: "permanent",
      code: "validation_error",
      reasonIncludes: "Invalid `tags` field.",
    },
  ],
  ["an unknown 4xx without a body", 418, undefined, new Headers(), {
    kind: "permanent",
    code: "HTTP_418",
  }],
  ["application_error", 500, resendError(500, "application_error"), new Headers(), {
    kind: "retry",
    code: "application_error",
  }],
  [
    "a 502 with an HTML body",
    502,
    undefined,
    new Headers({ "retry-after": "Sun, 22 Nov 2026 12:00:30 GMT" }),
    {
      kind: "retry",
      code: "HTTP_502",
      afterMs: 30_000,
    },
  ],
  [
    "an error name that is an Object.prototype member",
    400,
    resendError(400, "constructor"),
    new Headers(),
    {
      kind: "permanent",
      code: "constructor",
    },
  ],
  ["a 408", 408, undefined, new Headers(), { kind: "retry", code: "HTTP_408" }],
];

for (const [name, status, body, headers, expected] of cases) {
  Deno.test(`classifyEmail() maps ${name} (HTTP ${status}) to ${expected.kind}`, () => {
    const outcome = classifyEmail(status, body, headers, NOW);
    assert.equal(outcome.kind, expected.kind);
    if (outcome.kind === "sent" && expected.kind === "sent") {
      assert.equal(outcome.providerId, expected.providerId);
      return;
    }
    assert.ok(outcome.kind !== "sent" && expected.kind !== "sent");
    assert.equal(outcome.code, expected.code);
    assert.equal(outcome.statusCode, status);
    if (outcome.kind === "retry" && expected.kind === "retry") {
      assert.equal(outcome.afterMs, expected.afterMs);
    }
    if (outcome.kind === "permanent" && expected.kind === "permanent") {
      assert.equal(outcome.disableTarget, false);
      if (expected.reasonIncludes) assert.ok(outcome.reason.includes(expected.reasonIncludes));
    }
  });
}

Deno.test("createEmailProvider() refuses an empty key, an empty sender, a bad URL or timeout", () => {
  const valid = { apiKey: API_KEY, from: FROM };
  for (
    const options of [
      { ...valid, apiKey: "" },
      { ...valid, apiKey: "  " },
      { ...valid, from: "" },
      { ...valid, baseUrl: "not a url" },
      { ...valid, baseUrl: "ftp://api.resend.com" },
      { ...valid, timeoutMs: 0 },
    ]
  ) {
    assert.throws(() => createEmailProvider(options), RangeError, JSON.stringify(options));
  }
});

Deno.test("createEmailProvider() targets email:<host of the API>", () => {
  assert.equal(
    createEmailProvider({ apiKey: API_KEY, from: FROM }).target(delivery()),
    "email:api.resend.com",
  );
  const local = createEmailProvider({
    apiKey: API_KEY,
    from: FROM,
    baseUrl: "http://127.0.0.1:54333/",
  });
  assert.equal(local.target(delivery()), "email:127.0.0.1:54333");
});

Deno.test("send() fails EMPTY_EMAIL without a request when there is no subject or no content", async () => {
  let requests = 0;
  const provider = createEmailProvider({
    apiKey: API_KEY,
    from: FROM,
    fetch: () => {
      requests++;
      return Promise.resolve(Response.json({ id: "x" }));
    },
  });
  for (
    const notification of [
      { title: null, body: null },
      { title: null, body: "A body but no subject" },
      { title: "  ", body: "A blank title is no subject" },
      { title: null, body: null, overrides: { email: { subject: "A subject but no content" } } },
    ]
  ) {
    const outcome = await provider.send(delivery(notification));
    assert.equal(outcome.kind, "permanent", JSON.stringify(notification));
    assert.equal(outcome.kind === "permanent" && outcome.code, "EMPTY_EMAIL");
  }
  assert.equal(requests, 0);
});

Deno.test("send() posts the e-mail to Resend with the key, the delivery id as Idempotency-Key, and JSON", async () => {
  await withStandIn(async ({ provider, control }) => {
    const d = delivery({
      title: "Your order shipped",
      body: "It arrives on Tuesday.",
      category: "order.shipped / EU",
      requestId: "req-42",
      overrides: {
        email: { subject: "Order 42 is on its way", html: "<p>It arrives on <b>Tuesday</b>.</p>" },
      },
    });
    const outcome = await provider().send(d);
    assert.equal(outcome.kind, "sent", JSON.stringify(outcome));

    const { requests } = await control("requests") as { requests: Recorded[] };
    assert.equal(requests.length, 1);
    const [request] = requests;
    assert.equal(request.method, "POST");
    assert.equal(request.path, "/emails");
    assert.equal(request.headers["authorization"], `Bearer ${API_KEY}`);
    assert.equal(request.headers["idempotency-key"], d.id);
    assert.equal(request.headers["content-type"], "application/json");
    assert.deepEqual(request.body, {
      from: FROM,
      to: ["ada@example.test"],
      subject: "Order 42 is on its way",
      text: "It arrives on Tuesday.",
      html: "<p>It arrives on <b>Tuesday</b>.</p>",
      headers: { "X-Herald-Delivery": d.id, "X-Herald-Request-Id": "req-42" },
      tags: [{ name: "category", value: "order_shipped_EU" }],
    });
    const { emails } = await control("emails") as { emails: { id: string }[] };
    assert.deepEqual(emails.map((e) => e.id), [outcome.kind === "sent" && outcome.providerId]);
  });
});

Deno.test("send() uses the title as subject and text when there is no override or body, and no tag without a category", async () => {
  await withStandIn(async ({ provider, control }) => {
    const d = delivery({ title: "Ping", body: null, category: "日本" });
    assert.equal((await provider().send(d)).kind, "sent");
    const { requests } = await control("requests") as { requests: Recorded[] };
    assert.deepEqual(requests[0].body, {
      from: FROM,
      to: ["ada@example.test"],
      subject: "Ping",
      text: "Ping",
      headers: { "X-Herald-Delivery": d.id },
    });
  });
});

Deno.test("send() twice for one delivery returns the same id and Resend sends one e-mail", async () => {
  await withStandIn(async ({ provider, control }) => {
    const d = delivery();
    const first = await provider().send(d);
    const second = await provider().send({ ...d, attempt: 2 });
    assert.equal(first.kind, "sent");
    assert.deepEqual(second, first);

    const { requests } = await control("requests") as { requests: Recorded[] };
    assert.equal(requests.length, 2);
    assert.deepEqual(requests.map((r) => r.headers["idempotency-key"]), [d.id, d.id]);
    assert.equal(requests[0].raw, requests[1].raw);
    const { emails } = await control("emails") as { emails: { id: string }[] };
    assert.equal(emails.length, 1);
    assert.equal(first.kind === "sent" && first.providerId, emails[0].id);
  });
});

Deno.test("send() retries a 429 after the Retry-After Resend asked for, for the whole account", async () => {
  await withStandIn(async ({ provider, control }) => {
    await control("behaviour", { responses: [{ status: 429, headers: { "retry-after": "7" } }] });
    const outcome = await provider().send(delivery());
    assert.deepEqual(outcome, {
      kind: "retry",
      code: "rate_limit_exceeded",
      statusCode: 429,
      reason: "Resend rate limit: Too many requests. You can only make 2 requests per second.",
      afterMs: 7_000,
      throttled: true,
    });
  });
});

Deno.test("send() waits at least an hour on a used-up daily quota", async () => {
  await withStandIn(async ({ provider, control }) => {
    await control("behaviour", {
      responses: [{ resend_error: "daily_quota_exceeded", retry_after: 60 }],
    });
    const outcome = await provider().send(delivery());
    assert.equal(outcome.kind, "retry");
    assert.equal(outcome.kind === "retry" && outcome.code, "daily_quota_exceeded");
    assert.equal(outcome.kind === "retry" && outcome.afterMs, QUOTA_WAIT_MS);
    assert.equal(outcome.kind === "retry" && outcome.throttled, true, "the quota is the account's");
  });
});

Deno.test("send() retries with the error name when the API key is wrong, and never repeats the key", async () => {
  await withStandIn(async ({ provider }) => {
    const wrongKey = "re_wrong_Zx81Qa";
    const outcome = await provider({ apiKey: wrongKey }).send(delivery());
    assert.equal(outcome.kind, "retry");
    assert.equal(outcome.kind === "retry" && outcome.code, "invalid_api_key");
    assert.equal(outcome.kind === "retry" && outcome.statusCode, 403);
    assert.ok(!JSON.stringify(outcome).includes(wrongKey));
  });
});

Deno.test("send() fails permanently on a 422 with Resend's name and message", async () => {
  await withStandIn(async ({ provider }) => {
    const outcome = await provider({ from: "not an address" }).send(delivery());
    assert.equal(outcome.kind, "permanent", JSON.stringify(outcome));
    assert.equal(outcome.kind === "permanent" && outcome.statusCode, 422);
    assert.equal(outcome.kind === "permanent" && outcome.code, "validation_error");
    assert.ok(outcome.kind === "permanent" && outcome.reason.includes("Invalid `from` field."));
    assert.equal(outcome.kind === "permanent" && outcome.disableTarget, false);
  });
});

Deno.test("send() fails permanently when the delivery's payload changed under the same key", async () => {
  await withStandIn(async ({ provider }) => {
    const d = delivery();
    assert.equal((await provider().send(d)).kind, "sent");
    const outcome = await provider({ from: "Other <other@example.test>" }).send(d);
    assert.equal(outcome.kind, "permanent");
    assert.equal(outcome.kind === "permanent" && outcome.code, "invalid_idempotent_request");
  });
});

Deno.test("send() retries TIMEOUT when Resend answers later than timeoutMs", async () => {
  await withStandIn(async ({ provider, control }) => {
    await control("behaviour", { latency_ms: 300 });
    const outcome = await provider({ timeoutMs: 50 }).send(delivery());
    assert.deepEqual(outcome, { kind: "retry", code: "TIMEOUT", reason: "no answer within 50 ms" });
  });
});

Deno.test("send() retries NETWORK when nothing listens, without the key in the reason", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  const outcome: SendOutcome = await createEmailProvider({
    apiKey: API_KEY,
    from: FROM,
    baseUrl: `http://127.0.0.1:${port}`,
  }).send(delivery());
  assert.equal(outcome.kind, "retry");
  assert.equal(outcome.kind === "retry" && outcome.code, "NETWORK");
  assert.ok(!JSON.stringify(outcome).includes(API_KEY));
});

Deno.test("send() retries a 2xx whose body broke off, and the retry gets the first id", async () => {
  const sent: string[] = [];
  let calls = 0;
  const provider = createEmailProvider({
    apiKey: API_KEY,
    from: FROM,
    fetch: (_input, init) => {
      calls++;
      sent.push(new Headers(init?.headers).get("idempotency-key") ?? "");
      if (calls === 1) {
        const body = new ReadableStream({
          start(controller) {
            controller.enqueue(new TextEncoder().encode('{"id":'));
            controller.error(new TypeError("connection reset"));
          },
        });
        return Promise.resolve(new Response(body, { status: 200 }));
      }
      return Promise.resolve(Response.json({ id: "first-id" }));
    },
  });
  const d = delivery();
  const first = await provider.send(d);
  assert.equal(first.kind, "retry");
  assert.equal(first.kind === "retry" && first.code, "NETWORK");
  assert.deepEqual(await provider.send(d), {
    kind: "sent",
    providerId: "first-id",
    statusCode: 200,
  });
  assert.deepEqual(sent, [d.id, d.id]);
});

Deno.test("send() redacts the API key when Resend repeats it in a message", async () => {
  const provider = createEmailProvider({
    apiKey: API_KEY,
    from: FROM,
    fetch: () =>
      Promise.resolve(
        Response.json(resendError(403, "invalid_api_key", `API key ${API_KEY} is invalid`), {
          status: 403,
        }),
      ),
  });
  const outcome = await provider.send(delivery());
  assert.equal(outcome.kind, "retry");
  assert.ok(outcome.kind === "retry" && outcome.reason.includes("API key [redacted] is invalid"));
  assert.ok(!JSON.stringify(outcome).includes(API_KEY));
});
