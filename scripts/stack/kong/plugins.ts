/**
 * The Kong 3.9 plugins Herald's `kong.yml` uses, as Kong behaves from the
 * outside: the same statuses, bodies, headers, order and Redis counters
 * (read from Kong/kong tag 3.9.3's handlers, with file and line numbers, in
 * kong/schema/kong-3.9-behaviour.md). Only what the local Kong needs: a field
 * these do not implement is refused at start (see `UNIMPLEMENTED`).
 *
 * @module
 */
import type { Redis } from "ioredis";

type Json = Record<string, unknown>;

/** A consumer and what authenticates as it. */
export interface Consumer {
  id: string;
  username: string;
  groups: string[];
}

/** What the plugins of one request share (Kong's ngx.ctx). */
export interface Exchange {
  request: Request;
  url: URL;
  /** Headers sent upstream; plugins add, change and remove. */
  upstream: Headers;
  clientIp: string;
  requestId: string;
  /** The body, read once when a plugin needs it (size limit, HMAC digest). */
  body(): Promise<Uint8Array<ArrayBuffer>>;
  consumer?: Consumer;
  /** The credential that authenticated the consumer; undefined when anonymous. */
  credential?: { id: string; identifier: string };
  /** Where the plugin applies: its own route and service ids (rate-limiting's key). */
  scope: { route: string; service: string };
  /** Response headers set during access (rate-limiting's), applied to whatever answers. */
  responseHeaders?: Headers;
}

/** One configured plugin. */
export interface Plugin {
  name: string;
  priority: number;
  /** Answers the request itself (an error, a preflight) or lets it through. */
  access?(x: Exchange): Promise<Response | undefined> | Response | undefined;
  /** Adds headers to the response, whoever produced it (Kong's header_filter). */
  headerFilter?(x: Exchange, headers: Headers): void;
}

/** What the plugins need from the gateway. */
export interface PluginContext {
  consumers: Map<string, Consumer>;
  /** Credentials by plugin: key → consumer, jwt key → secret, hmac username → secret. */
  keys: Map<string, { consumer: Consumer; id: string }>;
  jwtSecrets: Map<
    string,
    { consumer: Consumer; algorithm: string; secret?: string; publicKey?: string }
  >;
  hmacCredentials: Map<string, { consumer: Consumer; secret: string }>;
  redis(options: Json): Redis;
  now(): number;
}

/** Tokens whose signatures a jwt plugin remembers as checked. */
const VERIFIED_TOKENS = 10_000;

export const PRIORITY: Record<string, number> = {
  cors: 2000,
  jwt: 1450,
  "key-auth": 1250,
  "hmac-auth": 1030,
  "ip-restriction": 990,
  "request-size-limiting": 951,
  acl: 950,
  "rate-limiting": 910,
  prometheus: 13,
};

/**
 * Config values the local Kong does not implement, by plugin: a field listed
 * here with a value other than the one given makes the gateway refuse to start.
 */
export const UNIMPLEMENTED: Record<string, Record<string, unknown>> = {
  cors: { private_network: false },
  jwt: { secret_is_base64: false },
  "key-auth": { key_in_body: false },
  "hmac-auth": {},
  acl: { always_use_authenticated_groups: false },
  "ip-restriction": {},
  "request-size-limiting": {},
  "rate-limiting": { sync_rate: -1 },
  prometheus: { per_consumer: false, ai_metrics: false },
};

const SERVER = "kong/3.9.3";

/**
 * Kong's templated error (kong.response.error): the JSON template with the
 * request id, byte for byte (the message is not JSON-escaped, as in Kong).
 */
export function kongError(
  x: Pick<Exchange, "requestId">,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): Response {
  const body = `{\n  "message":"${message}",\n  "request_id":"${x.requestId}"\n}`;
  return new Response(body, {
    status,
    headers: { "content-type": "application/json; charset=utf-8", server: SERVER, ...headers },
  });
}

/** Kong's compact exit (kong.response.exit with a table): jwt's errors, no request id. */
function kongExit(status: number, body: Json, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", server: SERVER, ...headers },
  });
}

/** Builds one plugin from its (validated, defaults filled) config. */
export function createPlugin(name: string, config: Json, context: PluginContext): Plugin {
  const factory = FACTORIES[name];
  if (!factory) throw new Error(`plugin '${name}' is not implemented by the local Kong`);
  return { name, priority: PRIORITY[name], ...factory(config, context) };
}

type Factory = (config: Json, context: PluginContext) => Omit<Plugin, "name" | "priority">;

const list = (value: unknown) => (Array.isArray(value) ? value as string[] : []);

const FACTORIES: Record<string, Factory> = {
  cors: (c) => {
    const origins = list(c.origins);
    const wildcard = origins.length === 0 || (origins.length === 1 && origins[0] === "*");
    if (!wildcard) {
      throw new Error('cors: origins other than ["*"] are not implemented by the local Kong');
    }
    const origin = (x: Exchange, headers: Headers) => {
      if (c.credentials && x.request.headers.get("origin")) {
        headers.set("access-control-allow-origin", x.request.headers.get("origin")!);
        headers.set("access-control-allow-credentials", "true");
        headers.append("vary", "Origin");
      } else headers.set("access-control-allow-origin", "*");
    };
    return {
      access(x) {
        const r = x.request;
        const preflight = r.method === "OPTIONS" && r.headers.has("origin") &&
          r.headers.has("access-control-request-method");
        if (!preflight || c.preflight_continue) return undefined;
        const headers = new Headers({ "content-length": "0", server: SERVER });
        origin(x, headers);
        const allowHeaders = c.headers
          ? list(c.headers).join(",")
          : r.headers.get("access-control-request-headers");
        if (allowHeaders) headers.set("access-control-allow-headers", allowHeaders);
        headers.set("access-control-allow-methods", list(c.methods).join(","));
        if (c.max_age !== undefined && c.max_age !== null) {
          headers.set("access-control-max-age", String(c.max_age));
        }
        return new Response(null, { status: 200, headers });
      },
      headerFilter(x, headers) {
        const r = x.request;
        const preflight = r.method === "OPTIONS" && r.headers.has("origin") &&
          r.headers.has("access-control-request-method");
        if (preflight) return;
        origin(x, headers);
        if (c.exposed_headers) {
          headers.set("access-control-expose-headers", list(c.exposed_headers).join(","));
        }
      },
    };
  },

  "key-auth": (c, context) => {
    const realm = c.realm ? `Key realm="${c.realm}"` : "Key";
    const authenticate = (x: Exchange): Response | undefined => {
      let key: string | undefined;
      for (const name of list(c.key_names)) {
        const fromHeader = c.key_in_header ? x.request.headers.get(name) : null;
        const fromQuery = c.key_in_query ? x.url.searchParams.getAll(name) : [];
        if (fromHeader !== null) {
          // Two headers of one name arrive joined by ", ": Kong sees a table.
          if (fromHeader.includes(", ")) {
            return kongError(x, 401, "Duplicate API key found", { "www-authenticate": realm });
          }
          key = fromHeader;
        } else if (fromQuery.length > 1) {
          return kongError(x, 401, "Duplicate API key found", { "www-authenticate": realm });
        } else if (fromQuery.length === 1) key = fromQuery[0];
        if (key !== undefined) {
          if (c.hide_credentials) {
            x.upstream.delete(name);
            x.url.searchParams.delete(name);
          }
          break;
        }
      }
      if (!key) {
        return kongError(x, 401, "No API key found in request", { "www-authenticate": realm });
      }
      const credential = context.keys.get(key);
      if (!credential) return kongError(x, 401, "Unauthorized", { "www-authenticate": realm });
      _setConsumer(x, credential.consumer, { id: credential.id, identifier: credential.id });
      return undefined;
    };
    return { access: _authenticating(c, context, authenticate) };
  },

  jwt: (c, context) => {
    const base = c.realm ? `Bearer realm="${c.realm}"` : "Bearer";
    const invalid = `${base} error="invalid_token"`;
    const claim = String(c.key_claim_name);
    const verified = new Map<string, { header: Json; claims: Json }>();
    const authenticate = async (x: Exchange): Promise<Response | undefined> => {
      const tokens = new Set<string>();
      for (const name of list(c.uri_param_names)) {
        for (const v of x.url.searchParams.getAll(name)) if (v) tokens.add(v);
      }
      const cookies = _cookies(x.request.headers.get("cookie"));
      for (const name of list(c.cookie_names)) if (cookies[name]) tokens.add(cookies[name]);
      for (const name of list(c.header_names)) {
        const m = /\s*[Bb]earer\s+(.+)/.exec(x.request.headers.get(name)?.split(", ")[0] ?? "");
        if (m) tokens.add(m[1]);
      }
      if (tokens.size === 0) {
        return kongExit(401, { message: "Unauthorized" }, { "www-authenticate": base });
      }
      if (tokens.size > 1) {
        return kongExit(401, { message: "Multiple tokens provided" }, {
          "www-authenticate": invalid,
        });
      }
      const token = [...tokens][0];
      // A token whose signature was checked before is not checked again; its claims are.
      const known = verified.get(token);
      const decoded = known ?? _decodeJwt(token);
      if (typeof decoded === "string") {
        return kongExit(401, { message: `Bad token; ${decoded}` }, { "www-authenticate": invalid });
      }
      const key = decoded.claims[claim] ?? decoded.header[claim];
      if (key === undefined) {
        return kongExit(401, { message: `No mandatory '${claim}' in claims` }, {
          "www-authenticate": invalid,
        });
      }
      if (key === "") {
        return kongExit(401, { message: `Invalid '${claim}' in claims` }, {
          "www-authenticate": invalid,
        });
      }
      const secret = context.jwtSecrets.get(String(key));
      if (!secret) {
        return kongExit(401, { message: `No credentials found for given '${claim}'` }, {
          "www-authenticate": invalid,
        });
      }
      if (decoded.header.alg !== secret.algorithm) {
        return kongExit(401, { message: "Invalid algorithm" }, { "www-authenticate": invalid });
      }
      if (!known && !(await _verifySignature(token, secret))) {
        return kongExit(401, { message: "Invalid signature" }, { "www-authenticate": invalid });
      }
      if (!known) {
        // Bounded: forgetting all is cheaper than tracking age, and only costs re-verifying.
        if (verified.size >= VERIFIED_TOKENS) verified.clear();
        verified.set(token, decoded);
      }
      const now = context.now() / 1000;
      const errors: Record<string, string> = {};
      for (const name of list(c.claims_to_verify)) {
        const value = decoded.claims[name];
        if (typeof value !== "number") errors[name] = "must be a number";
        else if (name === "exp" && value <= now) errors.exp = "token expired";
        else if (name === "nbf" && value > now) errors.nbf = "token not valid yet";
      }
      if (Object.keys(errors).length) return kongExit(401, errors, { "www-authenticate": invalid });
      const maximum = Number(c.maximum_expiration ?? 0);
      if (maximum > 0) {
        const exp = decoded.claims.exp as number | undefined;
        if (exp === undefined || exp - now > maximum) {
          return kongExit(401, { exp: "exceeds maximum allowed expiration" }, {
            "www-authenticate": invalid,
          });
        }
      }
      _setConsumer(x, secret.consumer, { id: String(key), identifier: String(key) });
      return undefined;
    };
    return { access: _authenticating(c, context, authenticate) };
  },

  "hmac-auth": (c, context) => {
    const realm = c.realm ? `hmac realm="${c.realm}"` : "hmac";
    const fail = (x: Exchange, message: string) =>
      kongError(x, 401, message, { "www-authenticate": realm });
    const cannot = "HMAC signature cannot be verified";
    const authenticate = async (x: Exchange): Promise<Response | undefined> => {
      const h = x.request.headers;
      const authorization = h.get("proxy-authorization") ?? h.get("authorization");
      if (!h.has("authorization") && !h.has("proxy-authorization")) return fail(x, "Unauthorized");
      const skew = Number(c.clock_skew);
      const fresh = (value: string | null) => {
        const t = value ? Date.parse(value) : NaN;
        return Number.isFinite(t) && Math.abs(context.now() - t) <= skew * 1000;
      };
      if (!fresh(h.get("x-date")) && !fresh(h.get("date"))) {
        return fail(
          x,
          `${cannot}, a valid date or x-date header is required for HMAC Authentication`,
        );
      }
      if (c.hide_credentials) {
        x.upstream.delete(h.has("proxy-authorization") ? "proxy-authorization" : "authorization");
      }
      const m =
        /\s*[Hh]mac\s*username="(.+)",\s*algorithm="(.+)",\s*headers="(.+)",\s*signature="(.+)"/
          .exec(
            authorization ?? "",
          );
      if (!m) return fail(x, cannot);
      const [, username, algorithm, headerList, signature] = m;
      const names = headerList.split(" ");
      if (
        list(c.enforce_headers).some((e) => !names.includes(e)) ||
        !list(c.algorithms).includes(algorithm)
      ) {
        return fail(x, cannot);
      }
      const credential = context.hmacCredentials.get(username);
      if (!credential) return fail(x, cannot);
      const target = `${x.url.pathname}${x.url.search}`;
      const lines = names.map((name) => {
        // "@request-target" is no header name: Headers would throw on it.
        const value = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/.test(name) ? h.get(name) : null;
        if (value !== null) return `${name}: ${value}`;
        if (name === "@request-target") {
          return `@request-target: ${x.request.method.toLowerCase()} ${target}`;
        }
        if (name === "request-line") return `${x.request.method} ${target} HTTP/1.1`;
        return `${name}:`;
      });
      const hash = {
        "hmac-sha1": "SHA-1",
        "hmac-sha256": "SHA-256",
        "hmac-sha384": "SHA-384",
        "hmac-sha512": "SHA-512",
      }[algorithm];
      if (!hash) return fail(x, cannot);
      const key = await crypto.subtle.importKey(
        "raw",
        new TextEncoder().encode(credential.secret),
        { name: "HMAC", hash },
        false,
        ["sign"],
      );
      const expected = new Uint8Array(
        await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(lines.join("\n"))),
      );
      let given: Uint8Array<ArrayBuffer>;
      try {
        given = Uint8Array.from(atob(signature), (ch) => ch.charCodeAt(0));
      } catch {
        return fail(x, "HMAC signature does not match");
      }
      if (!_equal(expected, given)) return fail(x, "HMAC signature does not match");
      if (c.validate_request_body) {
        const body = await x.body();
        const digest = h.get("digest");
        if (
          digest === null ? body.length > 0 : digest !==
            `SHA-256=${_base64(new Uint8Array(await crypto.subtle.digest("SHA-256", body)))}`
        ) {
          return fail(x, "HMAC signature does not match");
        }
      }
      _setConsumer(x, credential.consumer, { id: username, identifier: username });
      return undefined;
    };
    return { access: _authenticating(c, context, authenticate) };
  },

  acl: (c) => ({
    access(x) {
      const allow = c.allow ? list(c.allow) : undefined;
      const deny = c.deny ? list(c.deny) : undefined;
      if (!x.consumer) {
        return x.credential
          ? kongError(x, 403, "You cannot consume this service")
          : kongError(x, 401, "Unauthorized");
      }
      const groups = x.consumer.groups;
      if (groups.length === 0 && allow) {
        return x.credential
          ? kongError(x, 403, "You cannot consume this service")
          : kongError(x, 401, "Unauthorized");
      }
      const blocked = allow
        ? !groups.some((g) => allow.includes(g))
        : groups.some((g) => deny!.includes(g));
      if (blocked) return kongError(x, 403, "You cannot consume this service");
      if (!c.hide_groups_header) x.upstream.set("x-consumer-groups", groups.join(", "));
      return undefined;
    },
  }),

  "ip-restriction": (c) => {
    const allow = list(c.allow).map(_cidr);
    const deny = list(c.deny).map(_cidr);
    return {
      access(x) {
        const ip = x.clientIp;
        const rejected = deny.some((m) => m(ip)) || (allow.length > 0 && !allow.some((m) => m(ip)));
        if (!rejected) return undefined;
        return kongError(
          x,
          Number(c.status ?? 403),
          String(c.message ?? `IP address not allowed: ${ip}`),
        );
      },
    };
  },

  "request-size-limiting": (c) => {
    const factor = { megabytes: 1024 * 1024, kilobytes: 1024, bytes: 1 }[String(c.size_unit)] ?? 1;
    const limit = Number(c.allowed_payload_size) * factor;
    const tooLarge = (x: Exchange) =>
      x.request.headers.get("expect")?.trim().toLowerCase() === "100-continue"
        ? kongError(x, 417, "Request size limit exceeded")
        : kongError(x, 413, "Request size limit exceeded");
    return {
      async access(x) {
        const length = x.request.headers.get("content-length");
        if (length !== null && /^\d+$/.test(length)) {
          return Number(length) > limit ? tooLarge(x) : undefined;
        }
        if (c.require_content_length && x.request.headers.get("transfer-encoding") !== "chunked") {
          return kongError(x, 411, "A valid Content-Length header is required");
        }
        return (await x.body()).length > limit ? tooLarge(x) : undefined;
      },
    };
  },

  "rate-limiting": (c, context) => {
    const periods = (["second", "minute", "hour", "day", "month", "year"] as const)
      .filter((p) => typeof c[p] === "number");
    const seconds: Record<string, number> = {
      second: 1,
      minute: 60,
      hour: 3600,
      day: 86400,
      month: 2592000,
      year: 31536000,
    };
    if (c.limit_by === "path") {
      throw new Error("rate-limiting: limit_by 'path' is not implemented by the local Kong");
    }
    const local = new Map<string, number>();
    const redis = c.policy === "redis" ? context.redis(c.redis as Json) : undefined;
    // Kong's `redis.timeout` bounds each socket operation; here it bounds the whole call.
    const redisTimeout = Number((c.redis as Json | undefined)?.timeout ?? 2000);
    const identifier = (x: Exchange) => {
      switch (c.limit_by) {
        case "consumer":
          return x.consumer?.id ?? x.credential?.id ?? x.clientIp;
        case "credential":
          return x.credential?.id ?? x.clientIp;
        case "header":
          return x.request.headers.get(String(c.header_name)) ?? x.clientIp;
        default:
          return x.clientIp;
      }
    };
    return {
      async access(x) {
        const now = context.now();
        const id = identifier(x);
        const usage: { period: string; limit: number; used: number; reset: number }[] = [];
        try {
          const starts = periods.map((period) => _periodStart(period, now));
          const keys = periods.map((period, i) =>
            `ratelimit:${x.scope.route}:${x.scope.service}:${id}:${starts[i]}:${period}`
          );
          // Kong's per-period script (INCR, EXPIRE on the first hit, the usage read
          // counting this request), for every period in one round trip.
          const used = redis
            ? (await _within(
              redisTimeout,
              redis.eval(
                "local out = {} for i, key in ipairs(KEYS) do local n = redis.call('incr', key) " +
                  "if n == 1 then redis.call('expire', key, ARGV[i]) end out[i] = n - 1 end return out",
                keys.length,
                ...keys,
                ...periods.map((p) => seconds[p]),
              ),
            ) as number[]).map(Number)
            : keys.map((key) => local.get(key) ?? 0);
          periods.forEach((period, i) => {
            const reset = Math.max(1, seconds[period] - Math.floor((now - starts[i]) / 1000));
            usage.push({ period, limit: c[period] as number, used: used[i], reset });
          });
        } catch (error) {
          if (c.fault_tolerant) return undefined;
          throw error;
        }
        const blocked = usage.find((u) => u.limit - u.used <= 0);
        if (!c.hide_client_headers) {
          let lowest: (typeof usage)[number] | undefined;
          for (const u of usage) {
            const remaining = blocked && blocked !== u
              ? u.limit - u.used
              : Math.max(0, u.limit - u.used - 1);
            const name = u.period[0].toUpperCase() + u.period.slice(1);
            (x.responseHeaders ??= new Headers()).set(`x-ratelimit-limit-${name}`, String(u.limit));
            (x.responseHeaders ??= new Headers()).set(
              `x-ratelimit-remaining-${name}`,
              String(remaining),
            );
            if (!lowest || remaining <= Math.max(0, lowest.limit - lowest.used - 1)) lowest = u;
          }
          if (lowest) {
            (x.responseHeaders ??= new Headers()).set("ratelimit-limit", String(lowest.limit));
            (x.responseHeaders ??= new Headers()).set(
              "ratelimit-remaining",
              String(Math.max(0, lowest.limit - lowest.used - 1)),
            );
            (x.responseHeaders ??= new Headers()).set("ratelimit-reset", String(lowest.reset));
            if (blocked) {
              (x.responseHeaders ??= new Headers()).set("retry-after", String(lowest.reset));
            }
          }
        }
        if (blocked) return kongError(x, Number(c.error_code), String(c.error_message));
        if (!redis) {
          for (const u of usage) {
            local.set(
              `ratelimit:${x.scope.route}:${x.scope.service}:${id}:${
                _periodStart(u.period, now)
              }:${u.period}`,
              u.used + 1,
            );
          }
        }
        return undefined;
      },
    };
  },

  // Metrics are counted by the gateway (it sees every response); the plugin only switches them on.
  prometheus: () => ({}),
};

/**
 * An auth plugin's access phase: skipped for preflights when `run_on_preflight`
 * is false (hmac-auth has no such option and always runs), and in Kong's
 * "logical OR" mode when `anonymous` is set.
 */
function _authenticating(
  c: Json,
  context: PluginContext,
  authenticate: (x: Exchange) => Promise<Response | undefined> | Response | undefined,
): (x: Exchange) => Promise<Response | undefined> | Response | undefined {
  return (x) => {
    if (c.run_on_preflight === false && x.request.method === "OPTIONS") return undefined;
    if (c.anonymous) return _logicalOr(x, c.anonymous as string, context, () => authenticate(x));
    return authenticate(x);
  };
}

/** Kong's "logical OR": an earlier plugin's credential wins; any failure becomes the anonymous consumer. */
async function _logicalOr(
  x: Exchange,
  anonymous: string,
  context: PluginContext,
  authenticate: () => Promise<Response | undefined> | Response | undefined,
): Promise<Response | undefined> {
  if (x.credential) return undefined;
  const failed = await authenticate();
  if (!failed) return undefined;
  const consumer = context.consumers.get(anonymous);
  if (!consumer) return kongError(x, 500, "An unexpected error occurred");
  x.consumer = consumer;
  x.credential = undefined;
  x.upstream.set("x-consumer-id", consumer.id);
  x.upstream.set("x-consumer-username", consumer.username);
  x.upstream.delete("x-credential-identifier");
  x.upstream.set("x-anonymous-consumer", "true");
  return undefined;
}

function _setConsumer(
  x: Exchange,
  consumer: Consumer,
  credential: { id: string; identifier: string },
) {
  x.consumer = consumer;
  x.credential = credential;
  x.upstream.set("x-consumer-id", consumer.id);
  x.upstream.set("x-consumer-username", consumer.username);
  x.upstream.delete("x-consumer-custom-id");
  x.upstream.set("x-credential-identifier", credential.identifier);
  x.upstream.delete("x-anonymous-consumer");
}

/** `work`, or a rejection once `ms` have passed. */
function _within<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

/** UTC-aligned start of the period containing `now`, in ms (kong/tools/timestamp.lua). */
function _periodStart(period: string, now: number): number {
  const d = new Date(now);
  switch (period) {
    case "second":
      return Math.floor(now / 1000) * 1000;
    case "minute":
      return Math.floor(now / 60000) * 60000;
    case "hour":
      return Math.floor(now / 3600000) * 3600000;
    case "day":
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    case "month":
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    default:
      return Date.UTC(d.getUTCFullYear(), 0, 1);
  }
}

function _cookies(header: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

/** jwt_parser.lua's decode, with its error strings. */
function _decodeJwt(token: string): { header: Json; claims: Json } | string {
  const parts = token.split(".");
  if (parts.length !== 3) return "invalid JSON";
  const json = (segment: string) => {
    try {
      return JSON.parse(new TextDecoder().decode(_fromBase64Url(segment)));
    } catch {
      return undefined;
    }
  };
  const header = json(parts[0]);
  const claims = json(parts[1]);
  if (typeof header !== "object" || header === null || claims === undefined) return "invalid JSON";
  const supported = [
    "HS256",
    "HS384",
    "HS512",
    "RS256",
    "RS384",
    "RS512",
    "ES256",
    "ES384",
    "ES512",
    "PS256",
    "PS384",
    "PS512",
    "EdDSA",
  ];
  if (typeof header.alg !== "string" || !supported.includes(header.alg)) return "invalid alg";
  if (claims === null) return "invalid claims";
  try {
    _fromBase64Url(parts[2]);
  } catch {
    return "invalid signature";
  }
  return { header, claims };
}

async function _verifySignature(
  token: string,
  secret: { algorithm: string; secret?: string; publicKey?: string },
): Promise<boolean> {
  const [h, p, s] = token.split(".");
  const data = new TextEncoder().encode(`${h}.${p}`);
  const signature = _fromBase64Url(s);
  const alg = secret.algorithm;
  const bits = alg.slice(2);
  if (alg.startsWith("HS")) {
    const key = await crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(secret.secret ?? ""),
      { name: "HMAC", hash: `SHA-${bits}` },
      false,
      ["verify"],
    );
    return await crypto.subtle.verify("HMAC", key, signature, data);
  }
  const der = _fromBase64(
    (secret.publicKey ?? "").replace(/-----(BEGIN|END) PUBLIC KEY-----/g, "").replace(/\s+/g, ""),
  );
  const params = alg.startsWith("ES")
    ? {
      import: { name: "ECDSA", namedCurve: `P-${bits === "512" ? "521" : bits}` },
      verify: { name: "ECDSA", hash: `SHA-${bits}` },
    }
    : alg.startsWith("PS")
    ? {
      import: { name: "RSA-PSS", hash: `SHA-${bits}` },
      verify: { name: "RSA-PSS", saltLength: Number(bits) / 8 },
    }
    : {
      import: { name: "RSASSA-PKCS1-v1_5", hash: `SHA-${bits}` },
      verify: { name: "RSASSA-PKCS1-v1_5" },
    };
  try {
    const key = await crypto.subtle.importKey("spki", der, params.import, false, ["verify"]);
    return await crypto.subtle.verify(params.verify, key, signature, data);
  } catch {
    return false;
  }
}

function _fromBase64Url(segment: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9_-]*$/.test(segment)) throw new Error("not base64url");
  return _fromBase64(segment.replace(/-/g, "+").replace(/_/g, "/"));
}

function _fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text + "=".repeat((4 - (text.length % 4)) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function _base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function _equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** An IPv4 address or CIDR range as a predicate (Herald's configuration uses IPv4). */
function _cidr(range: string): (ip: string) => boolean {
  const [base, bitsText] = range.split("/");
  const toInt = (ip: string) => ip.split(".").reduce((n, part) => (n << 8) + Number(part), 0) >>> 0;
  if (base.includes(":")) return (ip) => ip === base;
  const bits = bitsText === undefined ? 32 : Number(bitsText);
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  const network = toInt(base) & mask;
  return (ip) => !ip.includes(":") && (toInt(ip) & mask) === network;
}
