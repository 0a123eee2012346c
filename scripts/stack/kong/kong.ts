/**
 * The local Kong: serves a rendered `kong.yml` the way Kong 3.9 (DB-less)
 * does, for what Herald's configuration uses — prefix routes, services on a
 * weighted round-robin upstream with active and passive health checks
 * (`balancer.ts`), consumers and their credentials, the plugins of
 * `plugins.ts` in Kong's priority order (a route's plugin may be scoped to a
 * consumer), Kong's proxy headers and error bodies, and Prometheus metrics on
 * a status port (`metrics.ts`). The configuration is first validated against
 * Kong 3.9's schemas; anything valid that this gateway does not implement
 * (a plugin, a field, a route matcher) makes it refuse to start, naming it.
 *
 * @module
 */
import { Redis } from "ioredis";
import { withinMs } from "../../../supabase/functions/_shared/resilience/time_limit.ts";
import { validateKongConfig } from "../../kong/validate.ts";
import { Balancer } from "./balancer.ts";
import { Metrics } from "./metrics.ts";
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
  const redisClients = new Map<string, Redis>();
  const context = _pluginContext(config, options.now ?? Date.now, redisClients);
  const gateway = _gateway(config, context, options);
  const server = Deno.serve({
    port: options.port,
    hostname: options.hostname ?? "127.0.0.1",
    onListen: () => {},
  }, (request, info) => _proxy(gateway, request, info));
  const { metricsOn, promConfig, metrics, upstreams } = gateway;
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

/** What serving a request needs, built once from the configuration. */
interface Gateway {
  routes: Route[];
  globals: Plugin[];
  /** The global plugins in priority order: what runs when no route matches. */
  globalChain: Link[];
  upstreams: Map<string, Balancer>;
  metrics: Metrics;
  metricsOn: boolean;
  promConfig?: Json;
  options: KongOptions;
}

/** Consumers and their credentials, and Redis clients, as the plugins look them up. */
function _pluginContext(
  config: Json,
  now: () => number,
  redisClients: Map<string, Redis>,
): PluginContext {
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

  return context;
}

/**
 * Services, routes and upstreams, each route's plugin chain resolved in
 * Kong's order (route+consumer > route > service > global per name, then
 * priority).
 */
function _gateway(config: Json, context: PluginContext, options: KongOptions): Gateway {
  const consumers = context.consumers;
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

  return {
    routes,
    globals,
    globalChain,
    upstreams,
    metrics: new Metrics(),
    metricsOn: metricsOn !== undefined,
    promConfig,
    options,
  };
}

/** The route whose longest path prefix matches, among those allowing `method`. */
function _match(routes: Route[], method: string, path: string) {
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
}

/**
 * One request: the plugins in priority order (the most specific instance of
 * each name for the consumer known when its turn comes), then the upstream.
 */
async function _proxy(
  gateway: Gateway,
  request: Request,
  info: Deno.ServeHandlerInfo,
): Promise<Response> {
  const { routes, globals, globalChain } = gateway;
  const started = performance.now();
  const url = new URL(request.url);
  const requestId = _requestId();
  const found = _match(routes, request.method, url.pathname);
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
  const ran: Plugin[] = [];
  const finish = (response: Response, proxied: boolean, upstreamMs = 0) =>
    _finish(gateway, { x, found, ran, started }, response, proxied, upstreamMs);
  // Plugins in priority order, the most specific instance of each name for
  // the consumer known when its turn comes.
  const chain = found ? found.route.chain : globalChain;
  if (!found) {
    // Only global plugins run on a 404.
    for (const link of chain) {
      ran.push(link.plugin!);
      await link.plugin!.access?.({ ...x, scope: x.scope });
    }
    return finish(kongError(x, 404, "no Route matched with those values"), false);
  }
  const { route } = found;
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

  return await _forward(gateway, x, found, finish);
}

/** Sends the request upstream (or to an in-process target), as Kong's proxy does. */
async function _forward(
  gateway: Gateway,
  x: Exchange,
  { route, prefix }: { route: Route; prefix: string },
  finish: (response: Response, proxied: boolean, upstreamMs?: number) => Response,
): Promise<Response> {
  const { upstreams, options } = gateway;
  const { request, url, requestId } = x;
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
    const body = request.method === "GET" || request.method === "HEAD" ? undefined : await x.body();
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
}

/**
 * Kong's response headers on whatever answered (a plugin, Kong itself, the
 * upstream): each plugin's header filter, the latencies, `via`, `server`, the
 * request id; and the request counted for the status port's metrics.
 */
function _finish(
  { metrics, metricsOn }: Gateway,
  { x, found, ran, started }: {
    x: Exchange;
    found?: { route: Route };
    ran: Plugin[];
    started: number;
  },
  response: Response,
  proxied: boolean,
  upstreamMs = 0,
): Response {
  // A response made in this process (an in-process upstream, Kong's own) is
  // changed in place; one from fetch has immutable headers and is copied.
  let headers = response.headers;
  let mutable = true;
  try {
    headers.set("x-kong-request-id", x.requestId);
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
  headers.set("x-kong-request-id", x.requestId);
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
