/**
 * The health gate: is the canary as healthy as stable? Both are read from
 * the same counters (Herald's metrics endpoint, or Prometheus), told apart by
 * their `deployment` label, and compared over an observation window:
 *
 * - error ratio — provider attempts that failed on our side or the provider's
 *   (the SLO's definition: a dead token is the recipient's, not an error) plus
 *   5xx answers, over all attempts and answers — not worse than stable's by
 *   more than the margin;
 * - p95 of the canary's request durations under the limit (500 ms);
 * - no circuit breaker opened by the canary;
 * - enough canary traffic to judge at all.
 *
 * @module
 */

/** Attempt error classes that are the recipient's, not ours (rules.yml's SLO). */
const NOT_OUR_ERRORS = new Set([
  "none",
  "unregistered",
  "sender_id_mismatch",
  "invalid_argument",
  "invalid_data",
  "payload_too_large",
  "target_disabled",
  "empty_email",
  "expired",
]);

/** What one deployment did: counters, or their increase over a window. */
export interface Counts {
  attempts: number;
  attemptErrors: number;
  requests: number;
  requests5xx: number;
  /** Cumulative request-duration buckets summed over routes: upper bound (seconds) → count. */
  buckets: Map<number, number>;
  openings: number;
}

/** Counts by deployment (`stable`, `canary`, …). */
export type Snapshot = Map<string, Counts>;

/** The gate's thresholds. */
export interface Thresholds {
  /** How much worse than stable the canary's error ratio may be (0.02 = two points). */
  errorMargin: number;
  /** The canary's p95 must stay under this many milliseconds. */
  p95Ms: number;
  /** Fewer canary requests plus attempts than this is too little to judge. */
  minEvents: number;
}

/** A verdict: `ok`, and one line per check. */
export interface Verdict {
  ok: boolean;
  lines: string[];
}

function _empty(): Counts {
  return {
    attempts: 0,
    attemptErrors: 0,
    requests: 0,
    requests5xx: 0,
    buckets: new Map(),
    openings: 0,
  };
}

function _of(snapshot: Snapshot, deployment: string | undefined): Counts {
  const key = deployment ?? "";
  let counts = snapshot.get(key);
  if (!counts) snapshot.set(key, counts = _empty());
  return counts;
}

/** One sample line of the Prometheus text format. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (0.0.4) into samples; comments are skipped. */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    const value = Number(m[3]);
    if (Number.isNaN(value) && m[3] !== "NaN") continue; // not a sample line
    samples.push({ name: m[1], labels, value });
  }
  return samples;
}

/** Adds one sample (from a scrape or a Prometheus query) to `snapshot`. */
function _add(snapshot: Snapshot, name: string, labels: Record<string, string>, value: number) {
  if (!Number.isFinite(value)) return;
  const counts = _of(snapshot, labels.deployment);
  switch (name) {
    case "herald_delivery_attempts_total":
      if (labels.channel === "webhook") return; // a receiver's failures are its owner's
      counts.attempts += value;
      if (!NOT_OUR_ERRORS.has(labels.error_class)) counts.attemptErrors += value;
      return;
    case "herald_http_requests_total":
      counts.requests += value;
      if (labels.code === "5xx") counts.requests5xx += value;
      return;
    case "herald_http_request_duration_seconds_bucket": {
      const le = labels.le === "+Inf" ? Infinity : Number(labels.le);
      counts.buckets.set(le, (counts.buckets.get(le) ?? 0) + value);
      return;
    }
    case "herald_circuit_breaker_openings_total":
      counts.openings += value;
  }
}

/** The counters of one scrape of Herald's metrics endpoint, by deployment. */
export function snapshotFromExposition(text: string): Snapshot {
  const snapshot: Snapshot = new Map();
  for (const s of parseExposition(text)) _add(snapshot, s.name, s.labels, s.value);
  return snapshot;
}

/** What happened between two snapshots (a counter that went down restarted: its new value). */
export function increase(before: Snapshot, after: Snapshot): Snapshot {
  const delta: Snapshot = new Map();
  const d = (a: number, b: number) => (a >= b ? a - b : a);
  for (const [deployment, now] of after) {
    const then = before.get(deployment) ?? _empty();
    const buckets = new Map<number, number>();
    for (const [le, n] of now.buckets) buckets.set(le, d(n, then.buckets.get(le) ?? 0));
    delta.set(deployment, {
      attempts: d(now.attempts, then.attempts),
      attemptErrors: d(now.attemptErrors, then.attemptErrors),
      requests: d(now.requests, then.requests),
      requests5xx: d(now.requests5xx, then.requests5xx),
      buckets,
      openings: d(now.openings, then.openings),
    });
  }
  return delta;
}

/** The error ratio of `c`: our failures over everything it did; 0 when it did nothing. */
export function errorRatio(c: Counts): number {
  const all = c.attempts + c.requests;
  return all === 0 ? 0 : (c.attemptErrors + c.requests5xx) / all;
}

/**
 * The 95th percentile of cumulative buckets, interpolated within its bucket
 * as Prometheus's `histogram_quantile` does; undefined without observations.
 */
export function p95Seconds(buckets: Map<number, number>): number | undefined {
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  const total = buckets.get(Infinity) ?? (bounds.length ? buckets.get(bounds.at(-1)!)! : 0);
  if (!total) return undefined;
  const rank = 0.95 * total;
  let lower = 0;
  let below = 0;
  for (const bound of bounds) {
    const count = buckets.get(bound)!;
    if (count >= rank) {
      if (bound === Infinity) return lower; // past the last bound: its lower edge, as Prometheus
      return lower + (bound - lower) * ((rank - below) / Math.max(count - below, 1e-9));
    }
    lower = bound;
    below = count;
  }
  return lower;
}

/** Judges the canary's window against stable's. */
export function judge(window: Snapshot, thresholds: Thresholds): Verdict {
  const canary = window.get("canary") ?? _empty();
  const stable = window.get("stable") ?? _empty();
  const lines: string[] = [];
  let ok = true;
  const check = (pass: boolean, line: string) => {
    ok &&= pass;
    lines.push(`${pass ? "ok  " : "FAIL"} ${line}`);
  };
  const events = canary.attempts + canary.requests;
  check(
    events >= thresholds.minEvents,
    `canary traffic: ${events} requests and attempts (at least ${thresholds.minEvents} to judge)`,
  );
  const [c, s] = [errorRatio(canary), errorRatio(stable)];
  check(
    c <= s + thresholds.errorMargin,
    `error ratio: canary ${_pct(c)}, stable ${_pct(s)} (margin ${_pct(thresholds.errorMargin)})`,
  );
  const p95 = p95Seconds(canary.buckets);
  check(
    p95 === undefined || p95 * 1000 < thresholds.p95Ms,
    `canary p95: ${p95 === undefined ? "no requests" : `${Math.round(p95 * 1000)} ms`} ` +
      `(under ${thresholds.p95Ms} ms)`,
  );
  check(canary.openings === 0, `circuit breakers opened by the canary: ${canary.openings}`);
  return { ok, lines };
}

/** A definite failure before the window ends: enough traffic and already over a limit. */
export function failsEarly(window: Snapshot, thresholds: Thresholds): boolean {
  const verdict = judge(window, thresholds);
  const canary = window.get("canary");
  return !verdict.ok && canary !== undefined &&
    (canary.openings > 0 || canary.attempts + canary.requests >= thresholds.minEvents);
}

const _pct = (r: number) => `${(r * 100).toFixed(2)} %`;

/** The queries whose results {@linkcode snapshotFromPrometheus} folds, for a window of `s` seconds. */
export function prometheusQueries(seconds: number): Record<string, string> {
  const inc = (m: string, by: string) => `sum by (deployment, ${by}) (increase(${m}[${seconds}s]))`;
  return {
    herald_delivery_attempts_total: inc("herald_delivery_attempts_total", "channel, error_class"),
    herald_http_requests_total: inc("herald_http_requests_total", "code"),
    herald_http_request_duration_seconds_bucket: inc(
      "herald_http_request_duration_seconds_bucket",
      "le",
    ),
    herald_circuit_breaker_openings_total: inc("herald_circuit_breaker_openings_total", "kind"),
  };
}

/** Asks Prometheus (`/api/v1/query`) for the window's increase, by deployment. */
export async function snapshotFromPrometheus(
  prometheusUrl: string,
  seconds: number,
): Promise<Snapshot> {
  const snapshot: Snapshot = new Map();
  for (const [name, query] of Object.entries(prometheusQueries(seconds))) {
    const url = new URL("/api/v1/query", prometheusUrl);
    url.searchParams.set("query", query);
    const response = await fetch(url, { signal: AbortSignal.timeout(10_000) }).catch((error) => {
      throw new Error(`Prometheus at ${url.origin} did not answer: ${error.message}`);
    });
    const body = await response.json().catch(() => ({ status: "not JSON" })) as {
      status: string;
      error?: string;
      data?: { result: { metric: Record<string, string>; value: [number, string] }[] };
    };
    if (!response.ok || body.status !== "success") {
      throw new Error(`Prometheus refused ${name}: ${body.error ?? response.status}`);
    }
    for (const r of body.data!.result) _add(snapshot, name, r.metric, Number(r.value[1]));
  }
  return snapshot;
}
