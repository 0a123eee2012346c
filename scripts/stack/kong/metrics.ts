/**
 * The local Kong's Prometheus series, as Kong 3.9's prometheus plugin's
 * exporter names them (`kong/plugins/prometheus/exporter.lua`), served on the
 * status port.
 *
 * @module
 */
import type { Balancer } from "./balancer.ts";

type Json = Record<string, unknown>;

const LATENCY_BUCKETS = [
  1,
  2,
  5,
  7,
  10,
  15,
  20,
  25,
  30,
  40,
  50,
  60,
  70,
  80,
  90,
  100,
  200,
  300,
  400,
  500,
  1000,
  2000,
  5000,
  10000,
  30000,
  60000,
];

/** Kong's Prometheus plugin's main series, as its exporter names them. */
export class Metrics {
  #requests = new Map<string, number>();
  #latency = new Map<string, number[]>();

  record(
    r: {
      service: string;
      route: string;
      code: number;
      source: string;
      totalMs: number;
      upstreamMs?: number;
    },
  ) {
    const labels =
      `service="${r.service}",route="${r.route}",code="${r.code}",source="${r.source}",workspace="default",consumer=""`;
    this.#requests.set(labels, (this.#requests.get(labels) ?? 0) + 1);
    const base = `service="${r.service}",route="${r.route}",workspace="default"`;
    this.#observe(`kong_request_latency_ms{${base}`, r.totalMs);
    if (r.upstreamMs !== undefined) {
      this.#observe(`kong_upstream_latency_ms{${base}`, r.upstreamMs);
      this.#observe(`kong_kong_latency_ms{${base}`, Math.max(0, r.totalMs - r.upstreamMs));
    }
  }

  #observe(series: string, value: number) {
    let counts = this.#latency.get(series);
    if (!counts) {
      counts = new Array(LATENCY_BUCKETS.length + 2).fill(0); // per bucket, over the last, sum
      this.#latency.set(series, counts);
    }
    // One count in the first bucket that holds it; render() accumulates.
    let i = 0;
    while (i < LATENCY_BUCKETS.length && value > LATENCY_BUCKETS[i]) i++;
    counts[i]++;
    counts[LATENCY_BUCKETS.length + 1] += value;
  }

  render(config: Json, upstreams: Map<string, Balancer>): string {
    const lines: string[] = [];
    if (config.status_code_metrics) {
      lines.push(
        "# HELP kong_http_requests_total HTTP status codes per consumer/service/route in Kong",
      );
      lines.push("# TYPE kong_http_requests_total counter");
      for (const [labels, n] of this.#requests) {
        lines.push(`kong_http_requests_total{${labels}} ${n}`);
      }
    }
    if (config.latency_metrics) {
      const names = new Set([...this.#latency.keys()].map((k) => k.slice(0, k.indexOf("{"))));
      for (const name of names) {
        lines.push(`# TYPE ${name} histogram`);
        for (const [series, counts] of this.#latency) {
          if (!series.startsWith(`${name}{`)) continue;
          const labels = series.slice(name.length + 1);
          let cumulative = 0;
          LATENCY_BUCKETS.forEach((le, i) => {
            cumulative += counts[i];
            lines.push(
              `${name}_bucket{${labels},le="${String(le).padStart(5, "0")}"} ${cumulative}`,
            );
          });
          const total = cumulative + counts[LATENCY_BUCKETS.length];
          lines.push(`${name}_bucket{${labels},le="+Inf"} ${total}`);
          lines.push(`${name}_count{${labels}} ${total}`);
          lines.push(`${name}_sum{${labels}} ${counts[LATENCY_BUCKETS.length + 1]}`);
        }
      }
    }
    if (config.upstream_health_metrics) {
      lines.push("# TYPE kong_upstream_target_health gauge");
      for (const [name, balancer] of upstreams) {
        for (const t of balancer.states) {
          for (const state of ["healthchecks_off", "healthy", "unhealthy", "dns_error"]) {
            const on = state === (t.healthy ? "healthy" : "unhealthy") ? 1 : 0;
            lines.push(
              `kong_upstream_target_health{upstream="${name}",target="${t.target}",address="${t.target}",state="${state}",subsystem="http"} ${on}`,
            );
          }
        }
      }
    }
    lines.push("# TYPE kong_datastore_reachable gauge", "kong_datastore_reachable 1");
    return `${lines.join("\n")}\n`;
  }
}
