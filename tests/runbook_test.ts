/**
 * docs/RUNBOOK.md's commands, run as written against the test stack: every
 * inline SQL query (each in a transaction rolled back, so one that changes
 * something changes nothing here), every dispatch route it names, with the
 * service-role key through Kong, and its `redis-cli` command that closes a
 * breaker by hand. A query or route that drifts from the
 * schema or the API fails here, not during an incident.
 */
import assert from "node:assert/strict";
import { createRedis } from "../supabase/functions/_shared/redis/client.ts";
import { createBreaker } from "../supabase/functions/_shared/resilience/breaker.ts";
import { adminSql, stack } from "./support/stack.ts";

const RUNBOOK = await Deno.readTextFile(new URL("../docs/RUNBOOK.md", import.meta.url));
// Inline code spans may wrap across lines in the Markdown.
const spans = [...RUNBOOK.matchAll(/`([^`]+)`/g)].map((m) => m[1].replace(/\s*\n\s*/g, " "));

Deno.test("runbook: every SQL query it shows runs", async () => {
  const queries = spans.filter((s) => /^select .*;$/i.test(s));
  assert.ok(queries.length >= 3, `queries found: ${queries.join(" | ")}`);
  const sql = adminSql();
  try {
    for (const query of queries) {
      await sql.begin(async (tx) => {
        await tx.unsafe(query);
        await tx`rollback and chain`; // whatever the query did is undone
      }).catch((error) => {
        throw new Error(`${query}: ${(error as Error).message}`);
      });
    }
  } finally {
    await sql.end();
  }
});

Deno.test("runbook: every dispatch route it names answers the service-role key", async () => {
  const routes = spans.filter((s) => /^(GET|POST) \/functions\/v1\/dispatch\//.test(s));
  assert.ok(routes.length >= 3, `routes found: ${routes.join(" | ")}`);
  // The replay body the runbook shows, its placeholder filled.
  const replayBody = spans.find((s) => s.startsWith('{"statuses"'))!
    .replace('"…"', JSON.stringify(crypto.randomUUID()));
  for (const route of routes) {
    const [method, path] = route.split(" ");
    const response = await fetch(`${stack.apiUrl}${path}`, {
      method,
      headers: {
        apikey: stack.serviceRoleKey,
        authorization: `Bearer ${stack.serviceRoleKey}`,
        "content-type": "application/json",
      },
      body: method === "POST" ? replayBody : undefined,
    });
    const text = await response.text();
    assert.equal(response.status, 200, `${route}: ${text}`);
  }
});

Deno.test("runbook: its redis-cli command closes an open FCM breaker at once", async () => {
  const command = spans.find((s) => s.startsWith("redis-cli DEL "));
  assert.ok(command, "the runbook shows how to close a breaker");
  const key = command.match(/'([^']+)'/)![1].replace("<project id>", "herald-local");
  // The breaker every dispatcher shares (the default prefix), opened by one bad round.
  const breaker = createBreaker({
    redis: createRedis({ url: stack.redisRestUrl, token: stack.redisRestToken }),
  });
  await breaker.record("fcm:herald-local", { failures: 20, successes: 0, probe: false });
  try {
    assert.equal((await breaker.admit("fcm:herald-local")).state, "open");
    // As written, pointed at the test stack's Redis.
    const run = await new Deno.Command("redis-cli", {
      args: ["-h", "127.0.0.1", "-p", String(stack.ports.redis), "DEL", key],
    }).output();
    assert.ok(run.success, new TextDecoder().decode(run.stderr));
    assert.equal((await breaker.admit("fcm:herald-local")).state, "closed");
  } finally {
    await new Deno.Command("redis-cli", {
      args: ["-h", "127.0.0.1", "-p", String(stack.ports.redis), "DEL", key],
    }).output();
  }
});
