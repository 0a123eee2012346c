/**
 * Log attribution: every line is one JSON object, and lines written deep in
 * the work — a breaker falling back because Redis is gone, a callback inside a
 * handler — carry the id of the dispatch round or request they belong to.
 * The real console logger is used; its output is captured.
 */
import assert from "node:assert/strict";
import { functionEnvironment } from "../scripts/stack/stack.ts";
import { loadConfig } from "../supabase/functions/_shared/config.ts";
import { createSql } from "../supabase/functions/_shared/db/sessions.ts";
import { createDispatcherDeps } from "../supabase/functions/_shared/dispatch/dispatcher_deps.ts";
import { runWorker } from "../supabase/functions/_shared/dispatch/worker.ts";
import { createHttpApp } from "../supabase/functions/_shared/http/app.ts";
import { consoleLogger } from "../supabase/functions/_shared/log.ts";
import { adminSql, createUser, enqueue, parkPending, stack } from "./support/stack.ts";

/** Runs `work` with console output captured as parsed JSON lines. */
async function captured(work: () => Promise<void>): Promise<Record<string, unknown>[]> {
  const lines: string[] = [];
  const { log, error } = console;
  console.log = (line: string) => lines.push(line);
  console.error = (line: string) => lines.push(line);
  try {
    await work();
  } finally {
    console.log = log;
    console.error = error;
  }
  return lines.map((line) => JSON.parse(line));
}

Deno.test("logs: a worker round's Redis-degraded and breaker lines carry that round's id, as does its report", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  listener.close();
  const config = loadConfig({
    ...await functionEnvironment(stack, true),
    // Redis unreachable: the breaker and the send limits fall back, and say so.
    UPSTASH_REDIS_REST_URL: `http://127.0.0.1:${listener.addr.port}`,
  });
  const admin = adminSql();
  const sql = createSql({ url: stack.dbUrl, max: 4, applicationName: "herald-log-test" });
  try {
    await parkPending(admin);
    const user = await createUser(admin, "log-round");
    await admin`insert into herald.device_tokens (user_id, token, platform)
      values (${user.id}, ${`log-round-${user.id}`}, 'android')`;
    await enqueue(admin, [user.id], { title: "Attributed" });
    const stop = new AbortController();
    const lines = await captured(async () => {
      const deps = createDispatcherDeps(config, sql, consoleLogger);
      const worker = runWorker({ ...deps, log: consoleLogger, signal: stop.signal, rounds: 1 });
      for (let i = 0; i < 100; i++) {
        const [{ pending }] = await admin`select count(*)::int as pending from herald.deliveries
          where recipient_id = ${user.id} and status = 'pending'`;
        if (pending === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      stop.abort();
      await worker;
    });
    const degraded = lines.filter((l) => String(l.message).startsWith("Redis unreachable"));
    assert.ok(degraded.length > 0, "Redis's absence was logged");
    const round = lines.find((l) => l.message === "dispatch round" && Number(l.sent) === 1);
    assert.ok(round, "the round that sent it was logged");
    assert.match(String(round.round_id), /^[0-9a-f-]{36}$/);
    for (const line of degraded) {
      assert.match(String(line.round_id), /^[0-9a-f-]{36}$/, JSON.stringify(line));
    }
    assert.ok(degraded.some((l) => l.round_id === round.round_id), "same round");
  } finally {
    await sql.end();
    await admin.end();
  }
});

Deno.test("logs: a line written from inside a request's handler carries its request id without being given it", async () => {
  const app = createHttpApp("probe", consoleLogger);
  app.get("/", (c) => {
    consoleLogger("warn", "deep inside");
    return c.text("ok");
  });
  const lines = await captured(async () => {
    const response = await app.request("/probe", { headers: { "x-request-id": "req-abc-123" } });
    await response.body?.cancel();
  });
  const deep = lines.find((l) => l.message === "deep inside");
  assert.equal(deep?.request_id, "req-abc-123");
  const access = lines.find((l) => l.message === "request");
  assert.equal(access?.request_id, "req-abc-123");
  // Outside any request or round, nothing is invented.
  const outside = await captured(() => Promise.resolve(consoleLogger("info", "alone")));
  assert.equal(outside[0].request_id, undefined);
  assert.equal(outside[0].round_id, undefined);
});
