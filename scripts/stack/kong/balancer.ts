/**
 * The local Kong's load balancer: weighted round-robin over an upstream's
 * healthy targets, with Kong 3.9's active and passive health checks
 * (`kong/runloop/balancer/`, `kong/runloop/balancer/healthcheckers.lua`).
 *
 * @module
 */
import type { EdgeRequest } from "../edge_gateway.ts";

type Json = Record<string, unknown>;

/** Weighted round-robin over an upstream's healthy targets, with Kong's health checks. */
export class Balancer {
  readonly hostHeader?: string;
  #targets: ({
    target: string;
    weight: number;
    current: number;
  } & _Health)[];
  #passive: Json;
  #timer?: ReturnType<typeof setInterval>;

  #inProcess: Record<string, (request: EdgeRequest) => Promise<Response>>;

  constructor(
    upstream: Json,
    inProcess: Record<string, (request: EdgeRequest) => Promise<Response>>,
  ) {
    this.#inProcess = inProcess;
    this.hostHeader = upstream.host_header as string | undefined;
    this.#targets = ((upstream.targets ?? []) as Json[]).map((t) => ({
      target: String(t.target),
      weight: Number(t.weight ?? 100),
      current: 0,
      healthy: true,
      successes: 0,
      http: 0,
      tcp: 0,
      timeout: 0,
    }));
    const checks = (upstream.healthchecks ?? {}) as Json;
    this.#passive = (checks.passive ?? {}) as Json;
    const active = (checks.active ?? {}) as Json;
    const healthyInterval = Number((active.healthy as Json)?.interval ?? 0);
    const unhealthyInterval = Number((active.unhealthy as Json)?.interval ?? 0);
    const interval = Math.min(...[healthyInterval, unhealthyInterval].filter((i) => i > 0));
    if (Number.isFinite(interval)) {
      const timer = setInterval(() => this.#probe(active), interval * 1000);
      Deno.unrefTimer(timer);
      this.#timer = timer;
    }
  }

  /** Nginx's smooth weighted round-robin: Kong's ring spreads weights the same way over time. */
  pick(): string | undefined {
    const live = this.#targets.filter((t) => t.weight > 0 && t.healthy);
    if (live.length === 0) return undefined;
    const total = live.reduce((sum, t) => sum + t.weight, 0);
    let best = live[0];
    for (const t of live) {
      t.current += t.weight;
      if (t.current > best.current) best = t;
    }
    best.current -= total;
    return best.target;
  }

  /** Passive health: counts what proxied requests came to. */
  report(target: string, outcome: Outcome) {
    const t = this.#targets.find((x) => x.target === target);
    if (t) _count(t, outcome, this.#passive, PASSIVE_DEFAULTS);
  }

  get states(): { target: string; healthy: boolean }[] {
    return this.#targets.map((t) => ({ target: t.target, healthy: t.healthy }));
  }

  async #probe(active: Json) {
    await Promise.all(
      this.#targets.filter((t) => t.weight > 0).map(async (t) => {
        let outcome: Outcome;
        try {
          const url = `${active.type ?? "http"}://${t.target}${active.http_path ?? "/"}`;
          const headers = new Headers(this.hostHeader ? { host: this.hostHeader } : {});
          const local = this.#inProcess[t.target];
          const response = local
            ? await local({ method: "GET", url: new URL(url), headers })
            : await fetch(url, {
              headers,
              signal: AbortSignal.timeout(Number(active.timeout ?? 1) * 1000),
            });
          await response.body?.cancel();
          outcome = response.status;
        } catch (error) {
          outcome = (error as Error).name === "TimeoutError" ? "timeout" : "tcp";
        }
        _count(t, outcome, active, ACTIVE_DEFAULTS);
      }),
    );
  }

  stop() {
    if (this.#timer !== undefined) clearInterval(this.#timer);
  }
}

/** What one request or probe to a target came to: a status, or a failure to get one. */
type Outcome = number | "tcp" | "timeout";

/** A target's health and its counters, as lua-resty-healthcheck keeps them. */
interface _Health {
  healthy: boolean;
  successes: number;
  http: number;
  tcp: number;
  timeout: number;
}

/** Kong 3.9's default status lists (kong/db/schema/entities/upstreams.lua). */
const PASSIVE_DEFAULTS = {
  healthy: [
    200,
    201,
    202,
    203,
    204,
    205,
    206,
    207,
    208,
    226,
    300,
    301,
    302,
    303,
    304,
    305,
    306,
    307,
    308,
  ],
  unhealthy: [429, 500, 503],
};
const ACTIVE_DEFAULTS = {
  healthy: [200, 302],
  unhealthy: [429, 404, 500, 501, 502, 503, 504, 505],
};

/**
 * Counts one outcome as lua-resty-healthcheck does: a status in the healthy
 * list is a success, one in the unhealthy list an HTTP failure, any other is
 * not counted; each kind of failure has its own counter and limit (0: not
 * counted), a success clears the failure counters and a failure the successes.
 */
function _count(
  t: _Health,
  outcome: Outcome,
  check: Json,
  defaults: { healthy: number[]; unhealthy: number[] },
) {
  const healthy = (check.healthy ?? {}) as Json;
  const unhealthy = (check.unhealthy ?? {}) as Json;
  const kind = outcome === "tcp" || outcome === "timeout"
    ? outcome
    : ((healthy.http_statuses ?? defaults.healthy) as number[]).includes(outcome)
    ? "success"
    : ((unhealthy.http_statuses ?? defaults.unhealthy) as number[]).includes(outcome)
    ? "http"
    : undefined;
  if (kind === undefined) return;
  if (kind === "success") {
    t.http = t.tcp = t.timeout = 0;
    const limit = Number(healthy.successes ?? 0);
    if (!t.healthy && limit > 0 && ++t.successes >= limit) {
      t.healthy = true;
      t.successes = 0;
    }
    return;
  }
  t.successes = 0;
  const limit = Number(
    kind === "tcp"
      ? unhealthy.tcp_failures
      : kind === "timeout"
      ? unhealthy.timeouts
      : unhealthy.http_failures,
  ) || 0;
  if (t.healthy && limit > 0 && ++t[kind] >= limit) {
    t.healthy = false;
    t.http = t.tcp = t.timeout = 0;
  }
}
