/**
 * Postgres going away under the functions: callers get a 503 with
 * Retry-After (problem+json), never a 500 or a hang, and the pool serves
 * again once Postgres is back; a dispatch round keeps its results until it
 * can write them — through a proxy the test cuts, in front of the real
 * database.
 */
import assert from "node:assert/strict";
import { createSql, type Sql } from "../supabase/functions/_shared/db/sessions.ts";
import { databaseUnavailable } from "../supabase/functions/_shared/db/unavailable.ts";
import { dispatchBatch } from "../supabase/functions/_shared/dispatch/dispatcher.ts";
import { testDispatcher } from "./support/dispatch.ts";
import { eventually } from "./support/dispatcher_process.ts";
import {
  adminSql,
  createUser,
  enqueue,
  fakeControl,
  parkPending,
  stack,
  userToken,
} from "./support/stack.ts";
import { startTcpProxy } from "./support/tcp_proxy.ts";
import { notifyApp } from "./support/notify_app.ts";
import { createApp as createDispatchApp } from "../supabase/functions/dispatch/app.ts";
import type { Logger } from "../supabase/functions/_shared/log.ts";
import type { NotifyDeps } from "../supabase/functions/notify/deps.ts";

/**
 * A pool that reaches Postgres through a proxy the test cuts, mutes or
 * freezes, the notify function on it, and a user to notify.
 */
async function behindProxy(
  name: string,
  options: {
    statementTimeoutMs?: number;
    log?: Logger;
    /** More of the notify app's dependencies, over the proxied pool. */
    extra?: (sql: Sql) => Partial<NotifyDeps>;
  } = {},
) {
  const admin = adminSql();
  const proxy = startTcpProxy(stack.ports.postgres);
  const url = new URL(stack.dbUrl);
  url.port = String(proxy.port);
  const sql = createSql({
    url: url.href,
    max: 2,
    applicationName: `herald-${name}-test`, // never "commit": dropAfterClientSends looks for it
    statementTimeoutMs: options.statementTimeoutMs,
  });
  const app = notifyApp(sql, options.log, options.extra?.(sql));
  const user = await createUser(admin, name);
  return {
    admin,
    proxy,
    sql,
    user,
    notify: (body: Record<string, unknown>, idempotencyKey?: string) =>
      app.request("/notify", {
        method: "POST",
        headers: {
          authorization: `Bearer ${stack.serviceRoleKey}`,
          "content-type": "application/json",
          ...(idempotencyKey ? { "idempotency-key": idempotencyKey } : {}),
        },
        body: JSON.stringify({ user_ids: [user.id], ...body }),
      }),
    close: async () => {
      proxy.thaw();
      await sql.end({ timeout: 1 });
      // The guarded socket tells postgres.js of a server's close 60 ms late.
      await new Promise((resolve) => setTimeout(resolve, 100));
      await proxy.close();
      await admin.end();
    },
  };
}

/** An hour ahead: nothing is attempted inline, only the transaction is in question. */
const LATER = () => new Date(Date.now() + 3_600_000).toISOString();

Deno.test("notify: Postgres unreachable → 503 with Retry-After; served again once it is back", async () => {
  const logged: string[] = [];
  const { admin, proxy, user, notify, close } = await behindProxy("outage", {
    log: (_level, message) => logged.push(message),
  });
  const titled = (title: string) => notify({ title: `${title} ${user.id}` });
  try {
    const before = await titled("Before the outage");
    assert.equal(before.status, 202, await before.clone().text());
    await before.body?.cancel();

    await proxy.cut();
    for (const title of ["During the outage", "Still down"]) {
      const during = await titled(title);
      const problem = await during.json();
      assert.equal(during.status, 503, JSON.stringify(problem));
      assert.equal(during.headers.get("content-type"), "application/problem+json");
      assert.equal(during.headers.get("retry-after"), "5");
      assert.equal(problem.type.endsWith("database-unavailable"), true, problem.type);
    }
    assert.ok(!logged.includes("unhandled error"), "an outage is not a bug");

    proxy.restore();
    await eventually("notify to be served again", async () => {
      const after = await titled("After the outage");
      await after.body?.cancel();
      return after.status === 202 ? true : undefined;
    });
    const titles = (await admin`select title from herald.notifications
      where title like ${"% " + user.id} order by created_at`).map((r) => r.title);
    assert.deepEqual(
      titles,
      [`Before the outage ${user.id}`, ...titles.slice(1, -1), `After the outage ${user.id}`],
    );
    assert.ok(
      !titles.some((t) => t.startsWith("During") || t.startsWith("Still")),
      "a 503 accepted nothing",
    );
  } finally {
    await close();
  }
});

Deno.test("notify: Postgres gone while committing → 503 outcome-unknown; the same Idempotency-Key then replays the saved notification", async () => {
  const { admin, proxy, user, notify, close } = await behindProxy("outcome");
  const key = `outcome-${crypto.randomUUID()}`;
  const title = `Saved unheard ${user.id}`;
  const later = LATER();
  const send = () => notify({ title, send_at: later }, key);
  try {
    const dropped = proxy.dropAfterClientSends("commit");
    const first = await send();
    await dropped;
    const problem = await first.json();
    assert.equal(first.status, 503, JSON.stringify(problem));
    assert.ok(problem.type.endsWith("/outcome-unknown"), problem.type);
    assert.match(problem.detail, /may have been applied.*same Idempotency-Key/);
    assert.equal(first.headers.get("retry-after"), "5");
    const saved = await admin`select id from herald.notifications where title = ${title}`;
    assert.equal(saved.length, 1, "the commit went through although its answer was lost");

    const retry = await send();
    const replayed = await retry.json();
    assert.equal(retry.status, 202, JSON.stringify(replayed));
    assert.equal(retry.headers.get("idempotent-replayed"), "true");
    assert.equal(replayed.id, saved[0].id);
    const after =
      await admin`select count(*)::int as n from herald.notifications where title = ${title}`;
    assert.equal(after[0].n, 1, "one notification for two calls");
  } finally {
    await close();
  }
});

Deno.test("notify: Postgres gone after the notification was committed, during its inline attempt → 202 accepted, never 503", async () => {
  // The inline attempt and the stored answer are written after the accepting commit: an
  // outage then is no reason to say "nothing was accepted" (a retry would send twice).
  const base = await testDispatcher();
  const background: Promise<unknown>[] = [];
  const logged: string[] = [];
  const { admin, proxy, user, notify, close } = await behindProxy("inline", {
    log: (_level, message) => logged.push(message),
    extra: (sql) => ({
      dispatcher: { ...base, sql },
      waitUntil: (work) => background.push(work),
    }),
  });
  try {
    await fakeControl("fcm", "reset");
    await fakeControl("fcm", "behaviour", { latency_ms: 800 });
    await admin`insert into herald.device_tokens (user_id, token, platform)
      values (${user.id}, ${`inline-${user.id}`}, 'android')`;
    const key = `inline-${user.id}`;
    const title = `Committed then cut ${user.id}`;
    const answering = notify({ title }, key);
    await eventually("the inline send to be in flight", async () => {
      const { total } = await fakeControl("fcm", "requests");
      return total >= 1 ? true : undefined;
    });
    await proxy.cut(); // its result, the read-back and the stored answer cannot be written
    const first = await answering;
    const body = await first.json();
    assert.equal(first.status, 202, JSON.stringify(body));
    const saved = await admin`select id from herald.notifications where title = ${title}`;
    assert.deepEqual(saved.map((r) => r.id), [body.id]);
    assert.ok(logged.includes("accepted; the inline attempt's results are unknown"));

    proxy.restore();
    await Promise.all(background);
    const retry = await notify({ title }, key);
    const replayed = await retry.json();
    assert.equal(retry.status, 202, JSON.stringify(replayed));
    assert.equal(replayed.id, body.id, "the key replays the acceptance");
    const [{ n }] = await admin`select count(*)::int as n from herald.notifications
      where title = ${title}`;
    assert.equal(n, 1);
  } finally {
    proxy.restore();
    await Promise.allSettled(background);
    await fakeControl("fcm", "reset");
    await base.close();
    await close();
  }
});

Deno.test("notify: a frozen Postgres (SIGSTOP) → 503 outcome-unknown within the deadline, not a hang; the key then settles it", async () => {
  // Deadline: the statement timeout plus 5 s.
  const { admin, proxy, sql, user, notify, close } = await behindProxy("frozen", {
    statementTimeoutMs: 1_000,
  });
  const later = LATER();
  const send = () => notify({ title: `Frozen ${user.id}`, send_at: later }, `frozen-${user.id}`);
  try {
    await sql`select 1`;
    proxy.freeze();
    const started = performance.now();
    const during = await send();
    const problem = await during.json();
    const waited = performance.now() - started;
    assert.equal(during.status, 503, JSON.stringify(problem));
    assert.ok(problem.type.endsWith("/outcome-unknown"), problem.type);
    assert.match(problem.detail, /no answer within 6 s/);
    assert.ok(waited >= 5_500 && waited < 8_000, `answered after ${waited} ms`);

    proxy.thaw(); // the held transaction may now finish
    await eventually("notify to answer again", async () => {
      const retry = await send();
      const answer = await retry.json();
      return retry.status === 202 ? answer : undefined;
    });
    const [{ n }] = await admin`select count(*)::int as n from herald.notifications
      where title = ${`Frozen ${user.id}`}`;
    assert.equal(n, 1, "one notification for the calls that shared a key");
  } finally {
    await close();
  }
});

Deno.test("a frozen Postgres: a read answers 503 database-unavailable (nothing to have applied); dispatch's round, dead letters and replay answer 503 within the deadline, not a hang", async () => {
  const { admin, proxy, sql, user, close } = await behindProxy("frozen-reads", {
    statementTimeoutMs: 1_000,
  });
  const dispatcher = await testDispatcher({ sql });
  const dispatch = createDispatchApp({ dispatcher, keys: [stack.serviceRoleKey], log: () => {} });
  const notify = notifyApp(sql);
  const token = await userToken(user.id);
  await parkPending(admin); // the round, once thawed, claims nothing of other tests'
  try {
    await sql`select 1`;
    proxy.freeze();
    // A request either waits on the frozen connection (the deadline: 6 s) or
    // cannot open one (postgres.js's connect timeout: 3 s, nothing was done).
    const timed = async (what: string, answer: Response | Promise<Response>, types: string[]) => {
      const started = performance.now();
      const response = await answer;
      const problem = await response.json();
      const waited = performance.now() - started;
      assert.equal(response.status, 503, `${what}: ${JSON.stringify(problem)}`);
      assert.ok(types.some((t) => problem.type.endsWith(`/${t}`)), `${what}: ${problem.type}`);
      assert.equal(response.headers.get("retry-after"), "5", what);
      assert.ok(waited < 8_000, `${what} answered after ${waited} ms`);
    };
    const service = { authorization: `Bearer ${stack.serviceRoleKey}` };
    await Promise.all([
      timed(
        "GET /preferences",
        notify.request("/notify/preferences", { headers: { authorization: `Bearer ${token}` } }),
        ["database-unavailable"],
      ),
      timed(
        "GET /dead-letters",
        dispatch.request("/dispatch/dead-letters", { headers: service }),
        ["database-unavailable"],
      ),
      timed(
        "POST / (a round's claim)",
        dispatch.request("/dispatch", { method: "POST", headers: service }),
        ["outcome-unknown", "database-unavailable"],
      ),
      timed(
        "POST /dead-letters/replay",
        dispatch.request("/dispatch/dead-letters/replay", {
          method: "POST",
          headers: { ...service, "content-type": "application/json" },
          body: JSON.stringify({ notification_id: crypto.randomUUID() }),
        }),
        ["outcome-unknown", "database-unavailable"],
      ),
    ]);
  } finally {
    proxy.thaw();
    // What was held finishes once thawed; the test ends after it.
    await eventually("the held statements to finish", async () => {
      const [{ n }] = await admin`select count(*)::int as n from pg_stat_activity
        where application_name = 'herald-frozen-reads-test' and state <> 'idle'`;
      return n === 0 ? true : undefined;
    });
    await dispatcher.close();
    await close();
  }
});

Deno.test("databaseUnavailable() names outages and statement timeouts, and nothing else", () => {
  const pg = (code: string) => Object.assign(new Error("x"), { name: "PostgresError", code });
  const net = (code: string) => Object.assign(new Error("x"), { code });
  const cases: [Error, boolean][] = [
    [net("ECONNREFUSED"), true],
    [net("CONNECTION_CLOSED"), true],
    [net("CONNECT_TIMEOUT"), true],
    [net("EPIPE"), true], // "This socket has been ended by the other party"
    [net("ERR_STREAM_DESTROYED"), true],
    [pg("57P01"), true], // admin shutdown
    [pg("57P03"), true], // cannot connect now (starting up)
    [pg("08006"), true],
    [pg("53300"), true], // too many connections
    [pg("57014"), true], // statement timeout
    [pg("23505"), false], // a unique violation is the request's fault
    [pg("42501"), false],
    [new Error("plain"), false],
  ];
  for (const [error, unavailable] of cases) {
    assert.equal(
      databaseUnavailable(error) !== undefined,
      unavailable,
      String((error as { code?: string }).code),
    );
  }
});

Deno.test("a server that accepts and closes before answering fails the query as an outage, once, without spinning", async () => {
  // What a pooler whose Postgres is down can do: accept TCP, then close. postgres.js
  // alone reconnects at once, forever, and the query never settles.
  let accepted = 0;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const conn of listener) {
      accepted++;
      conn.close();
    }
  })();
  const sql = createSql({
    url: `postgresql://postgres:postgres@127.0.0.1:${listener.addr.port}/postgres`,
    max: 1,
    applicationName: "herald-handshake-test",
  });
  try {
    const started = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const error = await Promise.race([
      sql`select 1`.then(() => new Error("answered"), (e) => e),
      new Promise<Error>((resolve) => {
        timer = setTimeout(() => resolve(new Error("still waiting after 5 s")), 5_000);
      }),
    ]);
    clearTimeout(timer);
    assert.equal(databaseUnavailable(error), "connection: ECONNRESET", String(error));
    assert.match(String(error.message), /closed the connection before answering/);
    assert.ok(performance.now() - started < 1_000, "at once, not after a timeout");
    assert.ok(accepted <= 2, `${accepted} connection attempts for one query`);
    // The pool is not stuck: the next query tries again and fails the same way.
    const again = await sql`select 1`.then(() => undefined, (e) => e);
    assert.equal(databaseUnavailable(again), "connection: ECONNRESET");
  } finally {
    await sql.end({ timeout: 0 });
    // The guarded socket tells postgres.js of a close the server made 50 ms late: let the
    // last sockets do so, and postgres.js cancel its timers, before the sanitizers look.
    await new Promise((resolve) => setTimeout(resolve, 100));
    listener.close();
    await serving.catch(() => {});
  }
});

Deno.test("a connection the server closes mid-transaction fails the transaction as an outage; the process lives on", async () => {
  // postgres.js 3.4.9 answers such a close with a rollback on the closed connection,
  // which threw from a timer and ended the process (porsager/postgres#1208).
  const proxy = startTcpProxy(stack.ports.postgres);
  const url = new URL(stack.dbUrl);
  url.port = String(proxy.port);
  const sql = createSql({ url: url.href, max: 2, applicationName: "herald-mid-tx-test" });
  try {
    await sql`select 1`;
    for (let round = 0; round < 3; round++) {
      const transaction = sql.begin(async (tx) => {
        await tx`select pg_sleep(0.5)`;
        await tx`select 1`;
      }).then(() => new Error("committed"), (e) => e);
      await new Promise((resolve) => setTimeout(resolve, 150));
      await proxy.cut();
      const error = await transaction;
      assert.ok(databaseUnavailable(error), `round ${round}: ${error}`);
      await new Promise((resolve) => setTimeout(resolve, 100)); // a crash would surface here
      proxy.restore();
      assert.deepEqual([...await sql`select 2 as two`], [{ two: 2 }]);
    }
  } finally {
    await sql.end({ timeout: 1 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await proxy.close();
  }
});

Deno.test("a statement that runs past HERALD_DB_STATEMENT_TIMEOUT_MS is cancelled, as an outage", async () => {
  const sql = createSql({
    url: stack.dbUrl,
    max: 1,
    applicationName: "herald-timeout-test",
    statementTimeoutMs: 200,
  });
  try {
    const error = await sql`select pg_sleep(5)`.then(() => undefined, (e) => e);
    assert.equal(error?.code, "57014");
    assert.equal(databaseUnavailable(error), "a statement ran past its timeout");
  } finally {
    await sql.end();
  }
});

Deno.test("dispatch: results of a round whose database went away mid-send are written once it is back; nothing is sent twice", async () => {
  const admin = adminSql();
  const proxy = startTcpProxy(stack.ports.postgres);
  const url = new URL(stack.dbUrl);
  url.port = String(proxy.port);
  const sql = createSql({ url: url.href, max: 2, applicationName: "herald-outage-test" });
  const base = await testDispatcher();
  const deps = { ...base, sql };
  try {
    await parkPending(admin);
    await fakeControl("fcm", "reset");
    await fakeControl("fcm", "behaviour", { latency_ms: 1_000 });
    const user = await createUser(admin, "midround");
    const tokens = Array.from({ length: 5 }, (_, i) => `midround-${user.id}-${i}`);
    await admin`insert into herald.device_tokens (user_id, token, platform)
      select ${user.id}, t, 'android' from unnest(${tokens}::text[]) t`;
    await enqueue(admin, [user.id], { title: "Mid-round outage" });

    const round = dispatchBatch(deps);
    await eventually("the sends to be in flight", async () => {
      const { total } = await fakeControl("fcm", "requests");
      return total >= tokens.length ? true : undefined;
    });
    await proxy.cut(); // the answers come back to a dispatcher that cannot write them
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    proxy.restore();
    const report = await round;
    assert.equal(report.sent, tokens.length);
    const rows = await admin`select status from herald.deliveries where recipient_id = ${user.id}`;
    assert.deepEqual(rows.map((r) => r.status), Array(tokens.length).fill("sent"));
    const { requests } = await fakeControl("fcm", "requests");
    assert.equal(requests.length, tokens.length, "each push sent once");
  } finally {
    await fakeControl("fcm", "reset");
    await sql.end({ timeout: 1 });
    await base.close();
    await proxy.close();
    await admin.end();
  }
});
