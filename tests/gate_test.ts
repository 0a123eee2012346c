/**
 * The deploy health gate's arithmetic (scripts/deploy/gate.ts), check by
 * check: exposition parsing, window increases, the p95 interpolation against
 * Prometheus's histogram_quantile, and each threshold on its own. The gate
 * against a live Herald is in deploy_test.ts; the SQL of the canary's
 * dispatch share and the releases table at the end.
 */
import assert from "node:assert/strict";
import {
  errorRatio,
  failsEarly,
  increase,
  judge,
  p95Seconds,
  parseExposition,
  prometheusQueries,
  snapshotFromExposition,
  type Thresholds,
} from "../scripts/deploy/gate.ts";
import { adminSql } from "./support/stack.ts";

const LOOSE: Thresholds = { errorMargin: 0.02, p95Ms: 500, minEvents: 1 };

/** An exposition with `n` canary and stable requests and attempts. */
function exposition(c: {
  deployment: string;
  sent?: number;
  internal?: number;
  unregistered?: number;
  webhookFailed?: number;
  ok?: number;
  failed5xx?: number;
  /** Cumulative buckets: le → count. */
  buckets?: Record<string, number>;
  openings?: number;
}): string {
  const d = `deployment="${c.deployment}"`;
  const lines = [
    "# HELP herald_delivery_attempts_total Provider attempts.",
    "# TYPE herald_delivery_attempts_total counter",
    `herald_delivery_attempts_total{channel="push",error_class="none",${d}} ${c.sent ?? 0}`,
    `herald_delivery_attempts_total{channel="push",error_class="internal",${d}} ${c.internal ?? 0}`,
    `herald_delivery_attempts_total{channel="push",error_class="unregistered",${d}} ${
      c.unregistered ?? 0
    }`,
    `herald_delivery_attempts_total{channel="webhook",error_class="http_5xx",${d}} ${
      c.webhookFailed ?? 0
    }`,
    `herald_http_requests_total{route="notify",code="2xx",${d}} ${c.ok ?? 0}`,
    `herald_http_requests_total{route="notify",code="5xx",${d}} ${c.failed5xx ?? 0}`,
    `herald_circuit_breaker_openings_total{kind="fcm",${d}} ${c.openings ?? 0}`,
  ];
  for (const [le, n] of Object.entries(c.buckets ?? {})) {
    lines.push(`herald_http_request_duration_seconds_bucket{route="notify",${d},le="${le}"} ${n}`);
  }
  return lines.join("\n") + "\n";
}

const window = (...parts: Parameters<typeof exposition>[0][]) =>
  snapshotFromExposition(parts.map(exposition).join(""));

Deno.test("gate: the exposition parser reads names, escaped label values and values; comments are skipped", () => {
  const samples = parseExposition(
    '# HELP x y\nx_total{a="q\\"uote",b="back\\\\slash"} 3\nplain 1.5e3\n\nbad line\n',
  );
  assert.deepEqual(samples, [
    { name: "x_total", labels: { a: 'q"uote', b: "back\\slash" }, value: 3 },
    { name: "plain", labels: {}, value: 1500 },
  ]);
});

Deno.test("gate: the error ratio counts our attempt errors and 5xx answers; a dead token and webhooks are not ours", () => {
  const snap = window({
    deployment: "canary",
    sent: 6,
    internal: 2,
    unregistered: 5,
    webhookFailed: 100,
    ok: 6,
    failed5xx: 1,
  });
  const canary = snap.get("canary")!;
  assert.equal(canary.attempts, 13, "webhook attempts are left out");
  assert.equal(canary.attemptErrors, 2, "unregistered is the recipient's");
  assert.equal(errorRatio(canary), 3 / 20);
});

Deno.test("gate: increase is after minus before, and a counter that went down restarted", () => {
  const before = window({ deployment: "canary", sent: 10, ok: 5 });
  const after = window({ deployment: "canary", sent: 15, ok: 2 });
  const delta = increase(before, after).get("canary")!;
  assert.equal(delta.attempts, 5);
  assert.equal(delta.requests, 2, "restarted: its new value");
});

Deno.test("gate: p95 interpolates within the bucket as histogram_quantile does", () => {
  // 100 observations: 90 ≤ 0.1 s, 100 ≤ 0.5 s. Rank 95 lies halfway between 90 and 100.
  const halfway = p95Seconds(new Map([[0.1, 90], [0.5, 100], [Infinity, 100]]))!;
  assert.ok(Math.abs(halfway - 0.3) < 1e-12, String(halfway));
  assert.equal(p95Seconds(new Map([[0.1, 100], [Infinity, 100]])), 0.095);
  // Past the last finite bound: its value, as Prometheus answers.
  assert.equal(p95Seconds(new Map([[0.1, 10], [1, 50], [Infinity, 100]])), 1);
  assert.equal(p95Seconds(new Map()), undefined);
});

Deno.test("gate: a canary as good as stable passes every check", () => {
  const verdict = judge(
    window(
      { deployment: "canary", sent: 10, ok: 10, buckets: { "0.1": 10, "+Inf": 10 } },
      { deployment: "stable", sent: 90, ok: 90 },
    ),
    LOOSE,
  );
  assert.ok(verdict.ok, verdict.lines.join("\n"));
  assert.equal(verdict.lines.length, 4);
});

Deno.test("gate: too little canary traffic fails on its own", () => {
  const verdict = judge(window({ deployment: "canary", ok: 2 }), { ...LOOSE, minEvents: 3 });
  assert.ok(!verdict.ok);
  assert.deepEqual(verdict.lines.filter((l) => l.startsWith("FAIL")), [
    "FAIL canary traffic: 2 requests and attempts (at least 3 to judge)",
  ]);
});

Deno.test("gate: an error ratio over stable's plus the margin fails on its own; within the margin passes", () => {
  const stable = { deployment: "stable", sent: 98, internal: 2, ok: 100 }; // 1 %
  const over = judge(window({ deployment: "canary", sent: 96, internal: 4, ok: 100 }, stable), {
    ...LOOSE,
    errorMargin: 0.005,
  }); // canary 2 % > 1 % + 0.5 %
  assert.deepEqual(over.lines.filter((l) => l.startsWith("FAIL")).length, 1);
  assert.match(over.lines.find((l) => l.startsWith("FAIL"))!, /error ratio: canary 2\.00 %/);
  const within = judge(window({ deployment: "canary", sent: 96, internal: 4, ok: 100 }, stable), {
    ...LOOSE,
    errorMargin: 0.02,
  });
  assert.ok(within.ok, within.lines.join("\n"));
});

Deno.test("gate: a canary p95 at or over the limit fails on its own", () => {
  const slow = { deployment: "canary", ok: 100, buckets: { "0.5": 10, "1": 100, "+Inf": 100 } };
  const verdict = judge(window(slow), { ...LOOSE, p95Ms: 900 });
  assert.deepEqual(verdict.lines.filter((l) => l.startsWith("FAIL")), [
    "FAIL canary p95: 972 ms (under 900 ms)",
  ]);
  assert.ok(judge(window(slow), { ...LOOSE, p95Ms: 1000 }).ok);
});

Deno.test("gate: one breaker opened by the canary fails on its own; stable's openings do not count", () => {
  const verdict = judge(
    window({ deployment: "canary", ok: 10, openings: 1 }, { deployment: "stable", openings: 7 }),
    LOOSE,
  );
  assert.deepEqual(verdict.lines.filter((l) => l.startsWith("FAIL")), [
    "FAIL circuit breakers opened by the canary: 1",
  ]);
  assert.ok(
    judge(window({ deployment: "canary", ok: 10 }, { deployment: "stable", openings: 7 }), LOOSE)
      .ok,
  );
});

Deno.test("gate: failsEarly only with enough traffic or an opening; a slow start is not a failure yet", () => {
  const thresholds = { ...LOOSE, minEvents: 10 };
  assert.ok(!failsEarly(window({ deployment: "canary", internal: 2, ok: 2 }), thresholds));
  assert.ok(failsEarly(window({ deployment: "canary", internal: 6, ok: 6 }), thresholds));
  assert.ok(failsEarly(window({ deployment: "canary", openings: 1 }), thresholds));
  assert.ok(!failsEarly(window({ deployment: "canary", sent: 10, ok: 10 }), thresholds));
});

Deno.test("gate: the Prometheus queries take each family's increase over the window, by deployment", () => {
  const queries = prometheusQueries(300);
  assert.deepEqual(Object.keys(queries).sort(), [
    "herald_circuit_breaker_openings_total",
    "herald_delivery_attempts_total",
    "herald_http_request_duration_seconds_bucket",
    "herald_http_requests_total",
  ]);
  assert.equal(
    queries.herald_http_request_duration_seconds_bucket,
    "sum by (deployment, le) (increase(herald_http_request_duration_seconds_bucket[300s]))",
  );
  for (const q of Object.values(queries)) assert.match(q, /^sum by \(deployment, .*\[300s\]\)\)$/);
});

Deno.test("canary SQL: herald.dispatch_url sends percent of rounds to <url>-canary", async () => {
  const sql = adminSql();
  try {
    const url = "https://abc.supabase.co/functions/v1/dispatch";
    const share = async (percent: number) => {
      await sql`update herald.dispatch_canary set percent = ${percent}`;
      // One call per row: each round draws its own random number.
      const [{ n }] = await sql`select count(*)::int as n from generate_series(1, 2000)
        where herald.dispatch_url(${url}::text || '') = ${url + "-canary"}`;
      return n;
    };
    assert.equal(await share(0), 0);
    assert.equal(await share(100), 2000);
    const ten = await share(10);
    assert.ok(ten > 100 && ten < 320, `about 200 of 2000 rounds, got ${ten}`);
    await sql`update herald.dispatch_canary set percent = 100`;
    const [{ slash }] = await sql`select herald.dispatch_url(${url + "/"}) as slash`;
    assert.equal(slash, url + "-canary");
    const [{ none }] = await sql`select herald.dispatch_url(null) as none`;
    assert.equal(none, null);
    await assert.rejects(sql`update herald.dispatch_canary set percent = 101`, /check/);
    await assert.rejects(sql`insert into herald.dispatch_canary (id) values (false)`, /check/);
  } finally {
    await sql`update herald.dispatch_canary set percent = 0`;
    await sql.end();
  }
});

Deno.test("canary SQL: releases and the canary share have RLS and no grant to the API's roles", async () => {
  const sql = adminSql();
  try {
    for (const table of ["herald.releases", "herald.dispatch_canary"]) {
      const [{ rls }] = await sql`select relrowsecurity as rls from pg_class
        where oid = ${table}::regclass`;
      assert.equal(rls, true, table);
      for (const role of ["anon", "authenticated"]) {
        const [{ can }] = await sql`select has_table_privilege(${role}, ${table}, 'select') as can`;
        assert.equal(can, false, `${role} on ${table}`);
      }
    }
    const [{ exec }] = await sql`select has_function_privilege('anon',
      'herald.dispatch_url(text)', 'execute') as exec`;
    assert.equal(exec, false);
    await assert.rejects(
      sql`insert into herald.releases (git_sha, state, latest_migration)
          values ('not-a-sha', 'live', '20260101000000_x.sql')`,
      /check/,
    );
    await sql.begin(async (tx) => {
      const row = (state: string) =>
        tx`insert into herald.releases (git_sha, state, latest_migration)
           values ('abcdef0', ${state}, '20260101000000_x.sql')`;
      await row("live");
      await assert.rejects(row("live"), /releases_one_live_idx/);
    }).catch((error) => {
      if (!/releases_one_live_idx/.test(String(error))) throw error;
    });
    await sql`delete from herald.releases where git_sha = 'abcdef0'`;
  } finally {
    await sql.end();
  }
});
