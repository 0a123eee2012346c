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
  assert.equal(config.dispatch.concurrency, 128);
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
