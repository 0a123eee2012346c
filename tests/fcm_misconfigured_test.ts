/**
 * A malformed FCM service account never takes a function down: the key is
 * imported on first use, push deliveries wait with `fcm-misconfigured` as
 * their error, notify keeps accepting, and readiness names the problem.
 */
import assert from "node:assert/strict";
import { createCallerResolver } from "../supabase/functions/_shared/auth/caller.ts";
import { createJwtVerifier } from "../supabase/functions/_shared/auth/jwt.ts";
import { loadConfig } from "../supabase/functions/_shared/config.ts";
import { createSql } from "../supabase/functions/_shared/db/sessions.ts";
import { dispatchBatch } from "../supabase/functions/_shared/dispatch/dispatcher.ts";
import { createDispatcherDeps } from "../supabase/functions/_shared/dispatch/dispatcher_deps.ts";
import { privateKeyProblem } from "../supabase/functions/_shared/providers/google_access_token.ts";
import { createApp as createHealthApp } from "../supabase/functions/health/app.ts";
import { createApp as createNotifyApp } from "../supabase/functions/notify/app.ts";
import { functionEnvironment } from "../scripts/stack/stack.ts";
import { testDispatcher } from "./support/dispatch.ts";
import { adminSql, createUser, enqueue, fakeControl, parkPending, stack } from "./support/stack.ts";

/** A service account that parses but whose key cannot be imported. */
async function brokenKeyAccount(): Promise<string> {
  const account = JSON.parse(await Deno.readTextFile(stack.serviceAccountPath));
  return JSON.stringify({
    ...account,
    private_key: "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
  });
}

for (
  const [name, account] of [
    ["not JSON", () => Promise.resolve("{not json")],
    ["missing fields", () => Promise.resolve(JSON.stringify({ project_id: "herald-local" }))],
    ["a key that cannot be imported", brokenKeyAccount],
  ] as const
) {
  Deno.test(`dispatch: with an FCM service account that is ${name}, push deliveries wait as fcm-misconfigured`, async () => {
    const sql = adminSql();
    const deps = await testDispatcher({}, {}, { FCM_SERVICE_ACCOUNT: await account() });
    try {
      await parkPending(sql);
      await fakeControl("fcm", "reset");
      const user = await createUser(sql, "fcm-misconfigured");
      await sql`insert into herald.device_tokens (user_id, token, platform)
        values (${user.id}, ${`misconfigured-${user.id}`}, 'android')`;
      await enqueue(sql, [user.id], { title: "Waits" });
      const report = await dispatchBatch(deps);
      assert.equal(report.retried, 1, JSON.stringify(report));
      const [row] = await sql`select d.status, d.last_error, a.error_code
        from herald.deliveries d join herald.delivery_attempts a on a.delivery_id = d.id
        where d.recipient_id = ${user.id}`;
      assert.equal(row.status, "pending");
      assert.equal(row.error_code, "FCM_MISCONFIGURED");
      assert.match(row.last_error, /^fcm-misconfigured: /);
      assert.equal((await fakeControl("fcm", "requests")).total, 0, "nothing reached FCM");
    } finally {
      await deps.close();
      await sql.end();
    }
  });
}

Deno.test("privateKeyProblem() names an unimportable key and passes a good one", async () => {
  const good = JSON.parse(await Deno.readTextFile(stack.serviceAccountPath));
  assert.equal(await privateKeyProblem(good), undefined);
  const bad = JSON.parse(await brokenKeyAccount());
  assert.match((await privateKeyProblem(bad)) ?? "", /^fcm-misconfigured: .*private_key/);
});

Deno.test("notify: keeps accepting with a malformed FCM service account; readiness names the problem", async () => {
  const env = { ...await functionEnvironment(stack, true), FCM_SERVICE_ACCOUNT: "{not json" };
  const config = loadConfig(env);
  const sql = createSql({ url: stack.dbUrl, max: 2, applicationName: "herald-misconfigured" });
  const admin = adminSql();
  try {
    const user = await createUser(admin, "misconfigured-notify");
    await admin`insert into herald.device_tokens (user_id, token, platform)
      values (${user.id}, ${`misconfigured-notify-${user.id}`}, 'android')`;
    const notify = createNotifyApp({
      sql,
      resolveCaller: createCallerResolver({
        verify: createJwtVerifier({ secret: stack.jwtSecret, jwksUrl: `${stack.apiUrl}/x` }),
        serviceKeys: config.serviceKeys,
      }),
      log: () => {},
      dispatcher: { ...createDispatcherDeps(config, sql, () => {}), slots: undefined },
    });
    const response = await notify.request("/notify", {
      method: "POST",
      headers: {
        authorization: `Bearer ${stack.serviceRoleKey}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ user_ids: [user.id], title: "Still accepted" }),
    });
    assert.equal(response.status, 201, await response.clone().text());
    const answer = await response.json();
    assert.equal(answer.results[0].status, "pending");
    assert.match(
      answer.results[0].error ?? answer.results[0].last_error ?? "",
      /fcm-misconfigured/,
    );

    const health = createHealthApp({
      sql,
      keys: config.serviceKeys,
      log: () => {},
      configurationProblems: () => Promise.resolve(config.problems),
    });
    const ready = await health.request("/health/ready", {
      headers: { authorization: `Bearer ${stack.serviceRoleKey}` },
    });
    const body = await ready.json();
    assert.equal(ready.status, 200);
    assert.equal(body.status, "degraded");
    assert.ok(body.reasons.some((r: string) => r.startsWith("fcm-misconfigured: ")), body.reasons);
    await admin`update herald.deliveries set status = 'cancelled' where recipient_id = ${user.id}`;
  } finally {
    await sql.end();
    await admin.end();
  }
});
