/**
 * The local Kong: serves a rendered `kong.yml` the way Kong 3.9 (DB-less)
 * does, for what Herald's configuration uses — prefix routes, services on a
 * weighted round-robin upstream with active and passive health checks,
 * consumers and their credentials, the plugins of `plugins.ts` in Kong's
 * priority order (a route's plugin may be scoped to a consumer), Kong's proxy headers and error bodies, and Prometheus
 * metrics on a status port. The configuration is first validated against
 * Kong 3.9's schemas; anything valid that this gateway does not implement
 * (a plugin, a field, a route matcher) makes it refuse to start, naming it.
 *
 * @module
 */
import { Redis } from "ioredis";
import { withinMs } from "../../../supabase/functions/_shared/resilience/time_limit.ts";
import { validateKongConfig } from "../../kong/validate.ts";
import type { EdgeRequest } from "../edge_gateway.ts";
import {
  type Consumer,
  createPlugin,
  type Exchange,
  kongError,
  type Plugin,
  type PluginContext,
  UNIMPLEMENTED,
} from "./plugins.ts";

type Json = Record<string, unknown>;

/** Options for {@linkcode startKong}. */
export interface KongOptions {
  /** A rendered kong.yml, parsed. */
  config: Json;
  port: number;
  /** Serves `GET /metrics` (Kong's Status API) when the prometheus plugin is on. */
  statusPort?: number;
  hostname?: string;
  now?: () => number;
  /**
   * Upstream targets served in this process (`host:port` → handler): Kong
   * calls them directly instead of over loopback. The local stack's edge
   * runtime lives beside its Kong; a hop less is what keeps the layer cheap.
   */
  inProcess?: Record<string, (request: EdgeRequest) => Promise<Response>>;
}

/** A running local Kong. */
export interface RunningKong {
  close(): Promise<void>;
}

interface Route {
  name: string;
  id: string;
  paths: string[];
  methods?: string[];
  stripPath: boolean;
  preserveHost: boolean;
  service: Service;
  plugins: Plugin[];
  /** Instances of this route scoped to a consumer: name → consumer id → plugin. */
  byConsumer: Map<string, Map<string, Plugin>>;
  /** Every plugin name that applies, in priority order (built once), resolved per request. */
  chain: Link[];
}

/** One plugin name in a route's chain: the instance for a consumer, else the unscoped one. */
interface Link {
  priority: number;
  name: string;
  plugin?: Plugin;
  byConsumer?: Map<string, Plugin>;
}

interface Service {
  name: string;
  id: string;
  protocol: string;
  host: string;
  port: number;
  path: string;
  readTimeout: number;
  plugins: Plugin[];
}

const SERVER = "kong/3.9.3";
const ZERO_UUID = "00000000-0000-0000-0000-000000000000";
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "proxy-connection",
  "te",
  "trailer",
];
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

/**
 * Starts the local Kong on `options.port`.
 *
 * @throws {Error} when the configuration is invalid for Kong 3.9, or uses what this gateway does not implement
 */
export function startKong(options: KongOptions): RunningKong {
  const config = structuredClone(options.config);
  const problems = validateKongConfig(config);
  if (problems.length) {
    throw new Error(`kong.yml is not valid for Kong 3.9:\n${problems.join("\n")}`);
  }
  const unsupported = _unsupported(config);
  if (unsupported.length) {
    throw new Error(`the local Kong does not implement:\n${unsupported.join("\n")}`);
  }
  const now = options.now ?? Date.now;
  const redisClients = new Map<string, Redis>();
  const consumers = new Map<string, Consumer>();
  const context: PluginContext = {
    consumers,
    keys: new Map(),
    jwtSecrets: new Map(),
    hmacCredentials: new Map(),
    redis(redis) {
      const key = JSON.stringify(redis);
      let client = redisClients.get(key);
      if (!client) {
        client = new Redis({
          host: String(redis.host),
          port: Number(redis.port),
          password: redis.password ? String(redis.password) : undefined,
          db: Number(redis.database ?? 0),
          connectTimeout: Number(redis.timeout),
          commandTimeout: Number(redis.timeout),
          // Commands wait for the connection (at most `timeout`), then fail: fault_tolerant decides.
          maxRetriesPerRequest: 0,
        });
        client.on("error", () => {}); // fault_tolerant decides per request
        redisClients.set(key, client);
      }
      return client;
    },
    now,
  };
  for (const c of (config.consumers ?? []) as Json[]) {
    const consumer: Consumer = {
      id: String(c.id ?? crypto.randomUUID()),
      username: String(c.username),
      groups: ((c.acls ?? []) as Json[]).map((a) => String(a.group)),
    };
    consumers.set(consumer.username, consumer);
    consumers.set(consumer.id, consumer);
    for (const k of (c.keyauth_credentials ?? []) as Json[]) {
      context.keys.set(String(k.key), { consumer, id: String(k.id ?? crypto.randomUUID()) });
    }
    for (const j of (c.jwt_secrets ?? []) as Json[]) {
      context.jwtSecrets.set(String(j.key), {
        consumer,
        algorithm: String(j.algorithm ?? "HS256"),
        secret: j.secret as string | undefined,
        publicKey: j.rsa_public_key as string | undefined,
      });
    }
    for (const h of (c.hmacauth_credentials ?? []) as Json[]) {
      context.hmacCredentials.set(String(h.username), { consumer, secret: String(h.secret) });
    }
  }

  const enabled = (entity: Json) =>
    ((entity.plugins ?? []) as Json[]).filter((p) => p.enabled !== false);
  const pluginsOf = (entity: Json) =>
    enabled(entity).filter((p) => p.consumer === undefined)
      .map((p) => createPlugin(String(p.name), p.config as Json, context));
  // A route's instances for one consumer (Kong's route+consumer combo, looked up
  // once that consumer is known, so after the authentication plugins).
  const byConsumerOf = (route: Json) => {
    const out = new Map<string, Map<string, Plugin>>();
    for (const p of enabled(route).filter((p) => p.consumer !== undefined)) {
      const consumer = consumers.get(String(p.consumer));
      if (!consumer) throw new Error(`kong: no consumer '${p.consumer}'`);
      const name = String(p.name);
      if (!out.has(name)) out.set(name, new Map());
      out.get(name)!.set(consumer.id, createPlugin(name, p.config as Json, context));
    }
    return out;
  };
  const globals = ((config.plugins ?? []) as Json[]).filter((p) => p.enabled !== false)
    .map((p) => createPlugin(String(p.name), p.config as Json, context));
  const metricsOn = globals.find((p) => p.name === "prometheus");
  const promConfig = ((config.plugins ?? []) as Json[]).find((p) => p.name === "prometheus")
    ?.config as Json | undefined;

  const upstreams = new Map<string, Balancer>();
  for (const u of (config.upstreams ?? []) as Json[]) {
    upstreams.set(String(u.name), new Balancer(u, options.inProcess ?? {}));
  }

  const routes: Route[] = [];
  for (const s of (config.services ?? []) as Json[]) {
    const service: Service = {
      name: String(s.name),
      id: String(s.id ?? crypto.randomUUID()),
      protocol: String(s.protocol),
      host: String(s.host),
      port: Number(s.port),
      path: String(s.path ?? "/"),
      readTimeout: Number(s.read_timeout),
      plugins: pluginsOf(s),
    };
    for (const r of (s.routes ?? []) as Json[]) {
      routes.push({
        name: String(r.name),
        id: String(r.id ?? crypto.randomUUID()),
        paths: (r.paths ?? []) as string[],
        methods: r.methods as string[] | undefined,
        stripPath: r.strip_path !== false,
        preserveHost: r.preserve_host === true,
        service,
        plugins: pluginsOf(r),
        byConsumer: byConsumerOf(r),
        chain: [],
      });
    }
  }

  // Kong's plugin iterator: per name, route+consumer > route > service > global; then by priority.
  const chainOf = (levels: Plugin[][], scoped = new Map<string, Map<string, Plugin>>()) => {
    const byName = new Map<string, Link>();
    for (const level of levels) {
      for (const p of level) byName.set(p.name, { priority: p.priority, name: p.name, plugin: p });
    }
    for (const [name, instances] of scoped) {
      const priority = [...instances.values()][0].priority;
      byName.set(name, { priority, name, ...byName.get(name), byConsumer: instances });
    }
    return [...byName.values()].sort((a, b) =>
      b.priority - a.priority || (a.name < b.name ? 1 : -1)
    );
  };
  const globalChain = chainOf([globals]);
  for (const route of routes) {
    route.chain = chainOf([globals, route.service.plugins, route.plugins], route.byConsumer);
  }

  const metrics = new Metrics();
  const match = (method: string, path: string) => {
    let best: { route: Route; prefix: string } | undefined;
    for (const route of routes) {
      if (route.methods && !route.methods.includes(method)) continue;
      for (const prefix of route.paths) {
        if (path.startsWith(prefix) && (!best || prefix.length > best.prefix.length)) {
          best = { route, prefix };
        }
      }
    }
    return best;
  };

  const server = Deno.serve({
    port: options.port,
    hostname: options.hostname ?? "127.0.0.1",
    onListen: () => {},
  }, async (request, info) => {
    const started = performance.now();
    const url = new URL(request.url);
    const requestId = _requestId();
    const found = match(request.method, url.pathname);
    let bodyBytes: Uint8Array<ArrayBuffer> | undefined;
    const x: Exchange = {
      request,
      url,
      upstream: new Headers(request.headers),
      clientIp: (info.remoteAddr as Deno.NetAddr).hostname,
      requestId,
      body: async () => (bodyBytes ??= new Uint8Array(await request.arrayBuffer())),
      scope: { route: ZERO_UUID, service: ZERO_UUID },
    };
    const finish = (response: Response, proxied: boolean, upstreamMs = 0) => {
      // A response made in this process (an in-process upstream, Kong's own) is
      // changed in place; one from fetch has immutable headers and is copied.
      let headers = response.headers;
      let mutable = true;
      try {
        headers.set("x-kong-request-id", requestId);
      } catch {
        headers = new Headers(response.headers);
        mutable = false;
      }
      for (const plugin of ran) plugin.headerFilter?.(x, headers);
      if (x.responseHeaders) {
        for (const [name, value] of x.responseHeaders) headers.set(name, value);
      }
      const totalMs = Math.round(performance.now() - started);
      if (proxied) {
        headers.set("x-kong-upstream-latency", String(Math.round(upstreamMs)));
        headers.set("x-kong-proxy-latency", String(Math.max(0, totalMs - Math.round(upstreamMs))));
        headers.set(
          "via",
          headers.has("via") ? `${headers.get("via")}, 1.1 ${SERVER}` : `1.1 ${SERVER}`,
        );
        if (!headers.has("server")) headers.set("server", SERVER);
      } else {
        headers.set("x-kong-response-latency", String(totalMs));
        headers.set("server", SERVER);
      }
      headers.set("x-kong-request-id", requestId);
      if (metricsOn) {
        metrics.record({
          service: found?.route.service.name ?? "",
          route: found?.route.name ?? "",
          code: response.status,
          source: proxied ? "service" : "kong",
          totalMs,
          upstreamMs: proxied ? upstreamMs : undefined,
        });
      }
      return mutable ? response : new Response(response.body, {
        status: response.status,
        statusText: response.statusText,
        headers,
      });
    };
    // Plugins in priority order, the most specific instance of each name for
    // the consumer known when its turn comes.
    const chain = found ? found.route.chain : globalChain;
    const ran: Plugin[] = [];
    if (!found) {
      // Only global plugins run on a 404.
      for (const link of chain) {
        ran.push(link.plugin!);
        await link.plugin!.access?.({ ...x, scope: x.scope });
      }
      return finish(kongError(x, 404, "no Route matched with those values"), false);
    }
    const { route, prefix } = found;
    for (const link of chain) {
      const plugin = (x.consumer && link.byConsumer?.get(x.consumer.id)) || link.plugin;
      if (!plugin) continue;
      ran.push(plugin);
      x.scope = _scopeOf(plugin, route, globals);
      let answer: Response | undefined;
      try {
        answer = await plugin.access?.(x);
      } catch (error) {
        console.error(`kong: ${plugin.name} failed: ${(error as Error).message}`);
        answer = kongError(x, 500, "An unexpected error occurred");
      }
      if (answer) return finish(answer, false);
    }

    const service = route.service;
    const balancer = upstreams.get(service.host);
    const target = balancer ? balancer.pick() : `${service.host}:${service.port}`;
    if (!target) {
      return finish(kongError(x, 503, "failure to get a peer from the ring-balancer"), false);
    }
    const rest = route.stripPath ? url.pathname.slice(prefix.length) : url.pathname;
    const path = _joinPath(service.path, rest);
    const headers = x.upstream;
    for (const name of HOP_BY_HOP) headers.delete(name);
    const forwardedFor = request.headers.get("x-forwarded-for");
    headers.set("x-forwarded-for", forwardedFor ? `${forwardedFor}, ${x.clientIp}` : x.clientIp);
    headers.set("x-forwarded-proto", url.protocol.slice(0, -1));
    headers.set("x-forwarded-host", url.hostname);
    headers.set("x-forwarded-port", url.port || (url.protocol === "https:" ? "443" : "80"));
    headers.set("x-forwarded-path", url.pathname);
    headers.set("x-forwarded-prefix", prefix);
    headers.set("x-real-ip", x.clientIp);
    headers.set("x-kong-request-id", requestId);
    headers.set("via", `1.1 ${SERVER}`);
    const host = route.preserveHost ? url.host : (balancer?.hostHeader ?? service.host);
    headers.set("host", host);
    const upstreamStarted = performance.now();
    try {
      const upstreamUrl = `${service.protocol}://${target}${path}${url.search}`;
      const body = request.method === "GET" || request.method === "HEAD"
        ? undefined
        : await x.body();
      const local = options.inProcess?.[target];
      // In-process too, Kong's read_timeout bounds the wait for the answer (504).
      const response = local
        ? await withinMs(
          service.readTimeout,
          local({ method: request.method, url: new URL(upstreamUrl), headers, body }),
        )
        : await fetch(upstreamUrl, {
          method: request.method,
          headers,
          body,
          redirect: "manual",
          signal: AbortSignal.timeout(service.readTimeout),
        });
      balancer?.report(target, response.status);
      return finish(response, true, performance.now() - upstreamStarted);
    } catch (error) {
      console.error(`kong: ${service.name} → ${target}: ${(error as Error).message}`);
      balancer?.report(target, (error as Error).name === "TimeoutError" ? "timeout" : "tcp");
      return finish(
        (error as Error).name === "TimeoutError"
          ? kongError(x, 504, "The upstream server is timing out")
          : kongError(x, 502, "An invalid response was received from the upstream server"),
        false,
      );
    }
  });

  const status = metricsOn && options.statusPort !== undefined
    ? Deno.serve(
      { port: options.statusPort, hostname: "127.0.0.1", onListen: () => {} },
      (request) =>
        new URL(request.url).pathname === "/metrics"
          ? new Response(metrics.render(promConfig ?? {}, upstreams), {
            headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
          })
          : new Response("Not Found", { status: 404 }),
    )
    : undefined;

  return {
    async close() {
      for (const b of upstreams.values()) b.stop();
      await Promise.all([server.shutdown(), status?.shutdown()]);
      for (const client of redisClients.values()) client.disconnect();
    },
  };
}

/** Weighted round-robin over an upstream's healthy targets, with Kong's health checks. */
class Balancer {
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

/** Kong's Prometheus plugin's main series, as its exporter names them. */
class Metrics {
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

/** Kong's request id: 32 lowercase hex characters. */
function _requestId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** path_handling v0: the service path, then what the route left of the request path. */
function _joinPath(servicePath: string, rest: string): string {
  if (rest === "") return servicePath;
  if (servicePath.endsWith("/") && rest.startsWith("/")) return servicePath + rest.slice(1);
  if (!servicePath.endsWith("/") && !rest.startsWith("/")) return `${servicePath}/${rest}`;
  return servicePath + rest;
}

/** The route and service ids a plugin instance is scoped to (rate-limiting's counter key). */
function _scopeOf(
  plugin: Plugin,
  route: Route,
  globals: Plugin[],
): { route: string; service: string } {
  if (globals.includes(plugin)) return { route: ZERO_UUID, service: ZERO_UUID };
  if (route.plugins.includes(plugin)) return { route: route.id, service: ZERO_UUID };
  for (const instances of route.byConsumer.values()) {
    if ([...instances.values()].includes(plugin)) return { route: route.id, service: ZERO_UUID };
  }
  return { route: ZERO_UUID, service: route.service.id };
}

/** What a valid configuration asks for that this gateway does not do. */
function _unsupported(config: Json): string[] {
  const out: string[] = [];
  const plugin = (p: Json, at: string, consumerScopable = false) => {
    const name = String(p.name);
    if (p.consumer !== undefined && !consumerScopable) {
      out.push(`${at}: consumer-scoped plugins outside a route`);
    }
    const fixed = UNIMPLEMENTED[name];
    if (!fixed) return void out.push(`${at}: plugin '${name}'`);
    const c = (p.config ?? {}) as Json;
    for (const [field, only] of Object.entries(fixed)) {
      if (c[field] !== undefined && JSON.stringify(c[field]) !== JSON.stringify(only)) {
        out.push(
          `${at}.config.${field}: ${JSON.stringify(c[field])} (only ${JSON.stringify(only)})`,
        );
      }
    }
  };
  ((config.plugins ?? []) as Json[]).forEach((p, i) => plugin(p, `plugins[${i}](${p.name})`));
  ((config.consumers ?? []) as Json[]).forEach((c, i) => {
    ((c.plugins ?? []) as Json[]).forEach((p, j) =>
      plugin({ ...p, consumer: c.username }, `consumers[${i}].plugins[${j}](${p.name})`)
    );
  });
  if (config.routes !== undefined) {
    out.push("routes: top-level routes (nest them under their service)");
  }
  for (
    const key of ["targets", "keyauth_credentials", "jwt_secrets", "hmacauth_credentials", "acls"]
  ) {
    if (config[key] !== undefined) out.push(`${key}: top-level entities (nest them)`);
  }
  ((config.services ?? []) as Json[]).forEach((s, i) => {
    const at = `services[${i}](${s.name})`;
    if (s.url !== undefined) out.push(`${at}.url: the url shorthand`);
    if (!["http", "https"].includes(String(s.protocol))) out.push(`${at}.protocol: ${s.protocol}`);
    if (Number(s.retries ?? 0) !== 0) out.push(`${at}.retries: ${s.retries} (only 0)`);
    ((s.plugins ?? []) as Json[]).forEach((p, j) => plugin(p, `${at}.plugins[${j}](${p.name})`));
    ((s.routes ?? []) as Json[]).forEach((r, j) => {
      const rat = `${at}.routes[${j}](${r.name})`;
      for (const field of ["hosts", "headers", "snis", "sources", "destinations"]) {
        if (r[field] !== undefined) out.push(`${rat}.${field}: route matching on ${field}`);
      }
      if (r.path_handling !== undefined && r.path_handling !== "v0") {
        out.push(`${rat}.path_handling: ${r.path_handling}`);
      }
      for (const path of (r.paths ?? []) as string[]) {
        if (path.startsWith("~")) out.push(`${rat}.paths: regex path ${path}`);
      }
      ((r.plugins ?? []) as Json[]).forEach((p, k) =>
        plugin(p, `${rat}.plugins[${k}](${p.name})`, true)
      );
    });
  });
  ((config.upstreams ?? []) as Json[]).forEach((u, i) => {
    const at = `upstreams[${i}](${u.name})`;
    if (u.algorithm !== undefined && u.algorithm !== "round-robin") {
      out.push(`${at}.algorithm: ${u.algorithm}`);
    }
    if (u.hash_on !== undefined && u.hash_on !== "none") out.push(`${at}.hash_on: ${u.hash_on}`);
  });
  return out;
}
