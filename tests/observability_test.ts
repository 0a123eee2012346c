/**
 * The alert rules, their unit tests and the Grafana dashboard: promtool
 * checks and tests the rules; every alert is shown firing and silent; every
 * runbook link lands on a heading; the dashboard is well-formed and every
 * PromQL expression in it and in the rules parses and names only series that
 * exist (what the metrics endpoint exposes, the recording rules, Kong's).
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { HERALD_RULES, prometheusConfig } from "../scripts/stack/prometheus.ts";
import { stack } from "./support/stack.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const RULES = `${ROOT}observability/prometheus/rules.yml`;
const RULE_TESTS = `${ROOT}observability/prometheus/tests.yml`;
const DASHBOARD = `${ROOT}observability/grafana/herald.json`;

/**
 * What Kong 3.9.3's prometheus plugin exports (kong/plugins/prometheus/exporter.lua
 * at tag 3.9.3, every name prefixed `kong_` by its init), histograms with
 * their `_bucket`, `_sum` and `_count`.
 */
const KONG_METRICS = [
  "kong_http_requests_total",
  "kong_stream_sessions_total",
  "kong_bandwidth_bytes",
  "kong_upstream_target_health",
  "kong_datastore_reachable",
  "kong_nginx_connections_total",
  "kong_nginx_requests_total",
  "kong_nginx_timers",
  "kong_node_info",
  "kong_memory_workers_lua_vms_bytes",
  "kong_memory_lua_shared_dict_bytes",
  "kong_memory_lua_shared_dict_total_bytes",
  ...["kong_kong_latency_ms", "kong_upstream_latency_ms", "kong_request_latency_ms"]
    .flatMap((h) => [`${h}_bucket`, `${h}_sum`, `${h}_count`]),
];

// deno-lint-ignore no-explicit-any
type Json = any;

const rules: Json = parse(await Deno.readTextFile(RULES));
const allRules: Json[] = rules.groups.flatMap((g: Json) => g.rules);
const alerts = allRules.filter((r) => r.alert);
const dashboard: Json = JSON.parse(await Deno.readTextFile(DASHBOARD));

async function promtool(...args: string[]): Promise<{ ok: boolean; output: string }> {
  const out = await new Deno.Command("promtool", { args, cwd: `${ROOT}observability/prometheus` })
    .output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { ok: out.success, output: text };
}

/** Dashboard expressions as Prometheus sees them once Grafana has filled its variables in. */
function dashboardExpressions(): { panel: string; expr: string }[] {
  return dashboard.panels.flatMap((p: Json) =>
    (p.targets ?? []).map((t: Json) => ({
      panel: p.title,
      expr: String(t.expr).replaceAll("$__rate_interval", "5m").replaceAll("$deployment", ".*"),
    }))
  );
}

/** Series names an expression refers to (Herald's, its recording rules', Kong's). */
function namesIn(expr: string): string[] {
  return [...expr.matchAll(/\b(herald[_:][a-z0-9_:]*|kong_[a-z0-9_]+)\b/g)].map((m) => m[1]);
}

/** What exists: the endpoint's families (histograms with their series), the recording rules, Kong's. */
async function knownSeries(): Promise<Set<string>> {
  const response = await fetch(`${stack.apiUrl}/functions/v1/metrics`, {
    headers: { authorization: `Bearer ${stack.serviceRoleKey}` },
  });
  assert.equal(response.status, 200);
  const known = new Set<string>([
    ...KONG_METRICS,
    ...allRules.filter((r) => r.record).map((r) => r.record),
  ]);
  for (const [, name, type] of (await response.text()).matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    if (type === "histogram") {
      for (const s of ["_bucket", "_sum", "_count"]) known.add(name + s);
    } else known.add(name);
  }
  return known;
}

Deno.test("observability: promtool check rules passes", async () => {
  const { ok, output } = await promtool("check", "rules", RULES);
  assert.ok(ok, output);
  assert.match(output, /SUCCESS: \d+ rules found/);
});

Deno.test("observability: promtool test rules passes every unit test", async () => {
  const { ok, output } = await promtool("test", "rules", RULE_TESTS);
  assert.ok(ok, output);
  assert.match(output, /SUCCESS/);
});

Deno.test("observability: every alert has a unit test where it fires and one where it stays silent", async () => {
  const tests: Json = parse(await Deno.readTextFile(RULE_TESTS));
  const checks = tests.tests.flatMap((t: Json) => t.alert_rule_test ?? []);
  for (const alert of alerts) {
    const mine = checks.filter((c: Json) => c.alertname === alert.alert);
    assert.ok(mine.some((c: Json) => c.exp_alerts?.length > 0), `${alert.alert} never fires`);
    assert.ok(mine.some((c: Json) => !c.exp_alerts?.length), `${alert.alert} is never silent`);
  }
});

Deno.test("observability: the SLO alerts the issue names all exist with a severity", () => {
  const names = alerts.map((a) => a.alert);
  for (
    const name of [
      "HeraldDeliveryErrorBudgetBurn",
      "HeraldDeliveryErrorBudgetBurnSlow",
      "HeraldNotifySlow",
      "HeraldNotifyErrors",
      "HeraldBreakerOpen",
      "HeraldQueueLagging",
      "HeraldDeadLettersGrowing",
      "HeraldFcmCredentialsRejected",
      "HeraldRedisDegraded",
      "HeraldDispatchStalled",
      "HeraldCanaryWorse",
    ]
  ) {
    assert.ok(names.includes(name), name);
  }
  for (const a of alerts) assert.match(a.labels?.severity ?? "", /^(page|ticket)$/, a.alert);
});

Deno.test("observability: every alert's runbook link lands on a heading of docs/RUNBOOK.md", async () => {
  const runbook = await Deno.readTextFile(`${ROOT}docs/RUNBOOK.md`);
  // GitHub's anchors: lowercase, punctuation dropped, spaces to hyphens.
  const anchors = new Set(
    [...runbook.matchAll(/^#{1,6} (.+)$/gm)].map((m) =>
      m[1].trim().toLowerCase().replace(/[^\w\- ]/g, "").replace(/ /g, "-")
    ),
  );
  for (const a of alerts) {
    const url = a.annotations?.runbook_url ?? "";
    const [path, anchor] = url.split("#");
    assert.equal(path, "docs/RUNBOOK.md", a.alert);
    assert.ok(anchors.has(anchor), `${a.alert}: no heading for #${anchor}`);
  }
});

Deno.test("observability: every dashboard panel the runbook names exists", async () => {
  const runbook = await Deno.readTextFile(`${ROOT}docs/RUNBOOK.md`);
  const named = [...runbook.matchAll(/Dashboard\s+"([^"]+)"/g)].map((m) => m[1]);
  assert.ok(named.length > 0, "the runbook names panels");
  const titles = new Set(dashboard.panels.map((p: Json) => p.title));
  for (const title of named) assert.ok(titles.has(title), `no panel "${title}"`);
});

Deno.test("observability: the Grafana dashboard is well-formed dashboard JSON", () => {
  assert.equal(typeof dashboard.uid, "string");
  assert.ok(dashboard.uid.length > 0 && dashboard.uid.length <= 40, "uid of 1-40 characters");
  assert.equal(typeof dashboard.title, "string");
  assert.ok(Number.isInteger(dashboard.schemaVersion) && dashboard.schemaVersion >= 36);
  const variables = dashboard.templating.list.map((v: Json) => v.name);
  assert.ok(variables.includes("datasource"));
  const ids = new Set<number>();
  const cells = new Set<string>();
  for (const p of dashboard.panels) {
    assert.ok(Number.isInteger(p.id) && !ids.has(p.id), `panel id ${p.id} unique`);
    ids.add(p.id);
    assert.ok(
      ["row", "stat", "timeseries", "table", "gauge", "bargauge"].includes(p.type),
      `${p.title}: ${p.type}`,
    );
    const { x, y, w, h } = p.gridPos;
    assert.ok(x >= 0 && w > 0 && x + w <= 24 && y >= 0 && h > 0, `${p.title}: gridPos`);
    for (let i = x; i < x + w; i++) {
      for (let j = y; j < y + h; j++) {
        assert.ok(!cells.has(`${i},${j}`), `${p.title} overlaps another panel at ${i},${j}`);
        cells.add(`${i},${j}`);
      }
    }
    if (p.type === "row") continue;
    assert.equal(p.datasource?.uid, "${datasource}", `${p.title}: datasource variable`);
    assert.ok(p.targets.length > 0, `${p.title}: no query`);
    const refIds = p.targets.map((t: Json) => t.refId);
    assert.equal(new Set(refIds).size, refIds.length, `${p.title}: refIds unique`);
  }
});

Deno.test("observability: every dashboard expression parses as PromQL (promtool)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const asRules = {
      groups: [{
        name: "dashboard",
        rules: dashboardExpressions().map((e, i) => ({
          record: `dashboard:expr_${i}`,
          expr: e.expr,
        })),
      }],
    };
    await Deno.writeTextFile(`${dir}/dashboard.yml`, JSON.stringify(asRules));
    const { ok, output } = await promtool("check", "rules", `${dir}/dashboard.yml`);
    assert.ok(ok, output);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("observability: every series named in the dashboard and the rules exists", async () => {
  const known = await knownSeries();
  const used = [
    ...dashboardExpressions().map((e) => ({ where: `dashboard: ${e.panel}`, expr: e.expr })),
    ...allRules.map((r) => ({ where: `rule ${r.alert ?? r.record}`, expr: String(r.expr) })),
  ];
  const unknown = used.flatMap((u) =>
    namesIn(u.expr).filter((n) => !known.has(n)).map((n) => `${u.where}: ${n}`)
  );
  assert.deepEqual(unknown, []);
  // The check itself can fail: a misspelt name is caught.
  assert.deepEqual(
    namesIn("rate(herald_delivery_atempts_total[5m])").filter((n) => !known.has(n)),
    [
      "herald_delivery_atempts_total",
    ],
  );
});

Deno.test("observability: the Prometheus configuration npm run observe writes passes promtool check config (both jobs, the key, Herald's rules)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const text = prometheusConfig(stack, { port: 1, dataDir: dir });
    const config: Json = parse(text);
    const jobs = Object.fromEntries(config.scrape_configs.map((j: Json) => [j.job_name, j]));
    assert.equal(jobs.herald.metrics_path, "/functions/v1/metrics");
    assert.deepEqual(jobs.herald.authorization, {
      type: "Bearer",
      credentials: stack.serviceRoleKey,
    });
    assert.deepEqual(jobs.herald.static_configs[0].targets, [`127.0.0.1:${stack.ports.gateway}`]);
    assert.deepEqual(jobs.kong.static_configs[0].targets, [`127.0.0.1:${stack.ports.kongStatus}`]);
    assert.deepEqual(config.rule_files, [HERALD_RULES]);
    await Deno.writeTextFile(`${dir}/prometheus.yml`, text);
    const { ok, output } = await promtool("check", "config", `${dir}/prometheus.yml`);
    assert.ok(ok, output);
    assert.match(output, /SUCCESS: \d+ rules found/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
