/**
 * Configuration: each setting added for the engine under faults, on its
 * own, read from the environment as the functions read it.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../supabase/functions/_shared/config.ts";

const BASE = {
  SUPABASE_URL: "http://127.0.0.1:54321",
  SUPABASE_DB_URL: "postgresql://postgres:postgres@127.0.0.1:54322/postgres",
  SUPABASE_SERVICE_ROLE_KEY: "service-role-key",
};

Deno.test("config: the defaults of the dispatch, breaker and database settings", () => {
  const config = loadConfig(BASE);
  assert.equal(config.dispatch.concurrency, 512);
  assert.equal(config.breaker.minimumCalls, 100);
  assert.equal(config.breaker.failureRate, 0.5);
  assert.equal(config.dbStatementTimeoutMs, 15_000);
});

Deno.test("config: HERALD_BREAKER_MIN_CALLS alone", () => {
  const config = loadConfig({ ...BASE, HERALD_BREAKER_MIN_CALLS: "20" });
  assert.equal(config.breaker.minimumCalls, 20);
  assert.equal(config.breaker.failureRate, 0.5);
  assert.throws(
    () => loadConfig({ ...BASE, HERALD_BREAKER_MIN_CALLS: "0" }),
    /HERALD_BREAKER_MIN_CALLS/,
  );
});

Deno.test("config: HERALD_BREAKER_FAILURE_RATE alone, a share in (0, 1]", () => {
  assert.equal(
    loadConfig({ ...BASE, HERALD_BREAKER_FAILURE_RATE: "0.25" }).breaker.failureRate,
    0.25,
  );
  assert.equal(loadConfig({ ...BASE, HERALD_BREAKER_FAILURE_RATE: "1" }).breaker.failureRate, 1);
  for (const bad of ["0", "1.5", "-0.1", "half"]) {
    assert.throws(
      () => loadConfig({ ...BASE, HERALD_BREAKER_FAILURE_RATE: bad }),
      /HERALD_BREAKER_FAILURE_RATE/,
      bad,
    );
  }
});

Deno.test("config: HERALD_DB_STATEMENT_TIMEOUT_MS alone", () => {
  assert.equal(
    loadConfig({ ...BASE, HERALD_DB_STATEMENT_TIMEOUT_MS: "2500" }).dbStatementTimeoutMs,
    2_500,
  );
  assert.throws(
    () => loadConfig({ ...BASE, HERALD_DB_STATEMENT_TIMEOUT_MS: "0" }),
    /HERALD_DB_STATEMENT_TIMEOUT_MS/,
  );
});

Deno.test("config: HERALD_CONCURRENCY alone is the per-target limit", () => {
  assert.equal(loadConfig({ ...BASE, HERALD_CONCURRENCY: "16" }).dispatch.concurrency, 16);
});

Deno.test("config: HERALD_DB_URL takes precedence over SUPABASE_DB_URL, and either alone works", () => {
  const herald = "postgresql://postgres.ref:pw@aws-0-eu.pooler.supabase.com:6543/postgres";
  assert.equal(loadConfig({ ...BASE, HERALD_DB_URL: herald }).dbUrl, herald);
  const { SUPABASE_DB_URL: _, ...withoutSupabase } = BASE;
  assert.equal(loadConfig({ ...withoutSupabase, HERALD_DB_URL: herald }).dbUrl, herald);
  assert.equal(loadConfig(BASE).dbUrl, BASE.SUPABASE_DB_URL);
  assert.throws(() => loadConfig(withoutSupabase), /HERALD_DB_URL/);
});

Deno.test("config: secret and publishable keys from the platform's JSON dictionaries, the singular forms and HERALD_SECRET_KEYS", () => {
  const config = loadConfig({
    ...BASE,
    SUPABASE_SECRET_KEYS: JSON.stringify({ default: "sb_secret_a", ci: "sb_secret_b" }),
    SUPABASE_SECRET_KEY: "sb_secret_c",
    HERALD_SECRET_KEYS: "sb_secret_d, sb_secret_a",
    SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: "sb_publishable_a" }),
    SUPABASE_PUBLISHABLE_KEY: "sb_publishable_b",
    SUPABASE_ANON_KEY: "anon-jwt",
  });
  assert.deepEqual(config.serviceKeys.sort(), [
    "sb_secret_a",
    "sb_secret_b",
    "sb_secret_c",
    "sb_secret_d",
    "service-role-key",
  ]);
  assert.deepEqual(config.publicKeys.sort(), ["anon-jwt", "sb_publishable_a", "sb_publishable_b"]);
  const { SUPABASE_SERVICE_ROLE_KEY: _, ...legacyGone } = BASE;
  assert.deepEqual(
    loadConfig({ ...legacyGone, SUPABASE_SECRET_KEYS: '{"default":"sb_secret_a"}' }).serviceKeys,
    ["sb_secret_a"],
    "a project that deactivated its legacy keys runs on secret keys alone",
  );
  assert.throws(() => loadConfig(legacyGone), /SUPABASE_SERVICE_ROLE_KEY or a secret key/);
  assert.throws(
    () => loadConfig({ ...BASE, SUPABASE_SECRET_KEYS: "{not json" }),
    /SUPABASE_SECRET_KEYS/,
  );
});

Deno.test("config: a malformed FCM_SERVICE_ACCOUNT is a named problem, never a crash", () => {
  for (
    const [account, problem] of [
      ["{not json", /not JSON/],
      [
        JSON.stringify({ project_id: "p" }),
        /lacks or mangles client_email, private_key, token_uri/,
      ],
      ["[]", /lacks or mangles/],
    ] as const
  ) {
    const config = loadConfig({ ...BASE, FCM_SERVICE_ACCOUNT: account });
    assert.equal(config.fcm?.serviceAccount, undefined);
    assert.match(config.fcm?.problem ?? "", /^fcm-misconfigured: /);
    assert.match(config.fcm?.problem ?? "", problem);
    assert.deepEqual(config.problems, [config.fcm?.problem]);
  }
  assert.equal(loadConfig(BASE).fcm, undefined, "unset is not a problem");
  assert.deepEqual(loadConfig(BASE).problems, []);
});

Deno.test("config: the build's defaults when nothing is set or stamped", () => {
  assert.deepEqual(loadConfig(BASE).build, { instance: "", version: "dev", gitSha: "unknown" });
});

Deno.test("config: HERALD_INSTANCE alone, a short lowercase name (the metrics' deployment label)", () => {
  assert.equal(loadConfig({ ...BASE, HERALD_INSTANCE: "canary" }).build.instance, "canary");
  assert.equal(loadConfig({ ...BASE, HERALD_INSTANCE: "canary" }).build.gitSha, "unknown");
  for (const bad of ["Canary", "canary release", "-x", "a".repeat(33), 'x"y']) {
    assert.throws(() => loadConfig({ ...BASE, HERALD_INSTANCE: bad }), /HERALD_INSTANCE/, bad);
  }
});

Deno.test("config: HERALD_GIT_SHA alone, 7 to 40 hex digits", () => {
  assert.equal(loadConfig({ ...BASE, HERALD_GIT_SHA: "abcdef1" }).build.gitSha, "abcdef1");
  assert.equal(loadConfig({ ...BASE, HERALD_GIT_SHA: "abcdef1" }).build.version, "dev");
  for (const bad of ["abc", "ABCDEF1", "g".repeat(40), "a".repeat(41)]) {
    assert.throws(() => loadConfig({ ...BASE, HERALD_GIT_SHA: bad }), /HERALD_GIT_SHA/, bad);
  }
});

Deno.test("config: HERALD_VERSION alone, at most 64 characters", () => {
  assert.equal(loadConfig({ ...BASE, HERALD_VERSION: "1.4.0-rc.1" }).build.version, "1.4.0-rc.1");
  assert.equal(loadConfig({ ...BASE, HERALD_VERSION: "1.4.0-rc.1" }).build.instance, "");
  assert.throws(() => loadConfig({ ...BASE, HERALD_VERSION: "v".repeat(65) }), /HERALD_VERSION/);
});

Deno.test("config: HERALD_BREAKER_RECENT_MS alone", () => {
  assert.equal(loadConfig(BASE).breaker.recentMs, 5_000);
  assert.equal(loadConfig({ ...BASE, HERALD_BREAKER_RECENT_MS: "2000" }).breaker.recentMs, 2_000);
  assert.throws(
    () => loadConfig({ ...BASE, HERALD_BREAKER_RECENT_MS: "0" }),
    /HERALD_BREAKER_RECENT_MS/,
  );
});

Deno.test("config: the README's rate-limit table states the functions' default budgets", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const table = readme.slice(readme.indexOf("- **Rate limits**"), readme.indexOf("- **HTTP**"));
  const { rateLimit } = loadConfig(BASE);
  assert.ok(table.includes(`${rateLimit.userPerMinute.toLocaleString("en")} a minute per user`));
  assert.ok(table.includes(`${rateLimit.servicePerMinute.toLocaleString("en")} a minute per key`));
});
