/**
 * Every documented `overrides` key on its own, through the gateway: accepted
 * by `POST /notify` and `POST /notify/bulk`, stored as given, and on the wire
 * to FCM (or the e-mail API) in the provider's own form. `overrides.email` is
 * the service role's alone.
 */
import assert from "node:assert/strict";
import {
  adminSql,
  apiHeaders,
  createUser,
  fakeControl,
  stack,
  type TestUser,
} from "./support/stack.ts";

const call = (path: string, token: string, body: unknown) =>
  fetch(`${stack.apiUrl}/functions/v1/${path}`, {
    method: "POST",
    headers: apiHeaders({ authorization: `Bearer ${token}`, "content-type": "application/json" }),
    body: JSON.stringify(body),
  });

/** One case per key: the override, the channel and platform it shows on, and what the provider must receive. */
const CASES: {
  key: string;
  overrides: Record<string, unknown>;
  platform?: "android" | "ios" | "web";
  wire: (request: { body: Record<string, unknown> }) => unknown;
  expected: unknown;
  /** What is stored when it differs from what was sent (stored in FCM's spelling). */
  stored?: Record<string, unknown>;
}[] = [
  {
    key: "android",
    overrides: { android: { collapse_key: "order-1", notification: { channel_id: "orders" } } },
    platform: "android",
    wire: (r) => {
      const android = (r.body.message as { android: Record<string, unknown> }).android;
      return [android.collapse_key, android.notification];
    },
    expected: ["order-1", { channel_id: "orders" }],
  },
  {
    key: "apns",
    overrides: { apns: { payload: { aps: { "thread-id": "orders" } } } },
    platform: "ios",
    wire: (r) => (r.body.message as { apns: { payload: unknown } }).apns.payload,
    expected: { aps: { "thread-id": "orders" } },
  },
  {
    key: "webpush",
    overrides: { webpush: { fcm_options: { link: "https://example.com/orders/1" } } },
    platform: "web",
    wire: (r) => (r.body.message as { webpush: { fcm_options: unknown } }).webpush.fcm_options,
    expected: { link: "https://example.com/orders/1" },
  },
  {
    key: "analytics_label",
    overrides: { analytics_label: "order_shipped" },
    platform: "android",
    wire: (r) => (r.body.message as { fcm_options: unknown }).fcm_options,
    expected: { analytics_label: "order_shipped" },
  },
  {
    key: "fcm_options",
    overrides: { fcm_options: { analytics_label: "order_shipped" } },
    platform: "android",
    wire: (r) => (r.body.message as { fcm_options: unknown }).fcm_options,
    expected: { analytics_label: "order_shipped" },
  },
  {
    key: "fcmOptions (firebase-admin's spelling)",
    overrides: { fcmOptions: { analyticsLabel: "order_shipped" } },
    platform: "web",
    wire: (r) => (r.body.message as { fcm_options: unknown }).fcm_options,
    expected: { analytics_label: "order_shipped" },
    stored: { fcm_options: { analytics_label: "order_shipped" } },
  },
  {
    key: "email",
    overrides: { email: { subject: "Your order shipped" } },
    wire: (r) => r.body.subject,
    expected: "Your order shipped",
  },
];

async function userWithAddress(platform: string | undefined): Promise<[TestUser, string]> {
  const sql = adminSql();
  try {
    const user = await createUser(sql, "overrides");
    const token = `overrides-${crypto.randomUUID()}`;
    if (platform) {
      await sql`insert into herald.device_tokens (user_id, token, platform)
        values (${user.id}, ${token}, ${platform})`;
    }
    return [user, platform ? token : user.email];
  } finally {
    await sql.end();
  }
}

for (const c of CASES) {
  Deno.test(`notify: overrides.${c.key} alone is accepted and reaches the provider`, async () => {
    const [user, address] = await userWithAddress(c.platform);
    const fake = c.platform ? "fcm" : "email";
    const response = await call("notify", stack.serviceRoleKey, {
      user_ids: [user.id],
      title: "Shipped",
      body: "Order 1",
      channels: [c.platform ? "push" : "email"],
      overrides: c.overrides,
    });
    assert.equal(response.status, 201, await response.clone().text());
    const answer = await response.json();
    assert.deepEqual(answer.results.map((r: { status: string }) => r.status), ["sent"]);
    const { requests } = await fakeControl(fake, "requests");
    const mine = requests.filter((r: { body: Record<string, unknown> }) =>
      JSON.stringify(r.body).includes(address)
    );
    assert.equal(mine.length, 1);
    assert.deepEqual(c.wire(mine[0]), c.expected);
  });

  Deno.test(`bulk: overrides.${c.key} alone is accepted and stored as given`, async () => {
    const [user] = await userWithAddress(c.platform);
    const response = await call("notify/bulk", stack.serviceRoleKey, {
      user_ids: [user.id],
      title: "Shipped",
      overrides: c.overrides,
      send_at: new Date(Date.now() + 3_600_000).toISOString(),
    });
    assert.equal(response.status, 202, await response.clone().text());
    const { id } = await response.json();
    const sql = adminSql();
    try {
      const [row] = await sql`select overrides from herald.notifications where id = ${id}`;
      assert.deepEqual(row.overrides, c.stored ?? c.overrides);
      await sql`update herald.deliveries set status = 'cancelled' where notification_id = ${id}`;
    } finally {
      await sql.end();
    }
  });
}

Deno.test("notify: overrides for every platform together are accepted", async () => {
  const [user] = await userWithAddress("android");
  // One spelling of each field, and one place for the label: giving a field
  // twice (fcmOptions and fcm_options, or analytics_label and
  // fcm_options.analytics_label) is a 422 of its own.
  const overrides = Object.assign(
    {},
    ...CASES.filter((c) => !c.stored && c.key !== "fcm_options").map((c) => c.overrides),
  );
  const response = await call("notify", stack.serviceRoleKey, {
    user_ids: [user.id],
    title: "All",
    overrides,
  });
  assert.equal(response.status, 201, await response.clone().text());
});

Deno.test("notify: a user may set push overrides but not the e-mail's subject or HTML", async () => {
  const [user] = await userWithAddress("android");
  const push = await call("notify", user.token, {
    user_ids: [user.id],
    title: "Mine",
    overrides: { android: { priority: "high" } },
  });
  assert.equal(push.status, 201, await push.clone().text());
  for (const email of [{ subject: "Password expired" }, { html: "<a href='https://evil.test'>" }]) {
    const refused = await call("notify", user.token, {
      user_ids: [user.id],
      title: "Mine",
      channels: ["email"],
      overrides: { email },
    });
    assert.equal(refused.status, 403);
    const problem = await refused.json();
    assert.equal(problem.errors[0].field, "overrides.email");
  }
});

Deno.test("notify and bulk: a push payload over FCM's 4096 bytes is a 422 naming the field that tips it", async () => {
  const [user] = await userWithAddress("android");
  const cases: [string, Record<string, unknown>, string][] = [
    ["data", { data: { a: "x".repeat(3000), b: "y".repeat(1500) } }, "data"],
    ["body", { body: "b".repeat(4096) }, "body"],
    [
      "overrides.apns",
      { overrides: { apns: { payload: { aps: { alert: "x" }, custom: "z".repeat(4100) } } } },
      "overrides.apns",
    ],
    [
      "overrides.android",
      { overrides: { android: { notification: { body: "n".repeat(4096) } } } },
      "overrides.android",
    ],
    [
      "overrides.webpush",
      { overrides: { webpush: { data: { big: "w".repeat(4096) } } } },
      "overrides.webpush",
    ],
  ];
  for (const [name, content, field] of cases) {
    for (
      const [path, audience] of [["notify", { user_ids: [user.id] }], ["notify/bulk", {
        user_ids: [user.id],
      }]] as const
    ) {
      const response = await call(path, stack.serviceRoleKey, {
        ...audience,
        title: "Big",
        ...content,
      });
      assert.equal(response.status, 422, `${path} ${name}: ${await response.clone().text()}`);
      const problem = await response.json();
      assert.equal(problem.errors[0].field, field, `${path} ${name}`);
      assert.match(problem.errors[0].message, /4096 bytes/);
    }
  }
  const emailOnly = await call("notify", stack.serviceRoleKey, {
    user_ids: [user.id],
    title: "Big e-mail",
    body: "b".repeat(4096),
    channels: ["email"],
  });
  assert.equal(emailOnly.status, 201, "the limit is FCM's: an e-mail may be larger");
  await emailOnly.body?.cancel();
});
