/**
 * Herald's rules for its Kong configuration, on top of Kong's schemas: what
 * Kong would accept but Herald must not ship.
 *
 * - every `jwt` verifies `exp` and reads no token from a query string or cookie;
 * - no `key-auth` reads keys from the query string or body;
 * - no literal secret in the template: keys, secrets and passwords are `$NAME`s;
 * - no `correlation-id` plugin: it keeps any client value, unbounded; Herald
 *   correlates on Kong's own request id (`X-Kong-Request-Id`);
 * - every service has a request-size limit equal to the functions' own;
 * - every function under `supabase/functions/` has a route at `/functions/v1/<name>`;
 * - `jwt` never applies to `hooks`, `dispatch`, `health` or `metrics`; `dispatch` and
 *   `metrics` are IP-restricted;
 * - rate limits share Redis and leave `RateLimit-*` headers to Herald, and
 *   never apply to `hooks` (a database webhook refused with 429 is lost); on
 *   `notify` only the public key's callers (consumer `anon`) are Kong's to
 *   limit: a secret key's budget is the function's, per key;
 * - `prometheus` is global;
 * - an upstream's passive health check never counts a status Herald answers
 *   itself (429, 500, 503): a dependency's outage is not a dead runtime.
 *
 * @module
 */
import { MAX_BODY_BYTES } from "../../supabase/functions/_shared/http/app.ts";

type Json = Record<string, unknown>;

const UNIT_BYTES: Record<string, number> = { bytes: 1, kilobytes: 1024, megabytes: 1024 * 1024 };
/** Functions Kong must never ask for a user token: their callers have none. */
const NO_JWT = ["hooks", "dispatch", "health", "metrics"];
/** Functions only the operator's own network may reach. */
const INTERNAL_ONLY = ["dispatch", "metrics"];
/** Statuses Herald's functions answer themselves, alive: never a sign of a dead upstream. */
const APPLICATION_STATUSES = [429, 500, 503];
/** Kong's default passive `unhealthy.http_statuses`. */
const KONG_PASSIVE_UNHEALTHY = [429, 500, 503];
const SECRET_FIELDS: Record<string, string[]> = {
  keyauth_credentials: ["key"],
  jwt_secrets: ["secret", "rsa_public_key"],
  hmacauth_credentials: ["secret"],
};

/** The functions under `supabase/functions/` (every directory not starting with `_`). */
export async function functionNames(): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(new URL("../../supabase/functions/", import.meta.url))) {
    if (entry.isDirectory && !entry.name.startsWith("_")) names.push(entry.name);
  }
  return names.sort();
}

/** A plugin with where it applies. */
interface Placed {
  plugin: Json;
  path: string;
  service?: Json;
  route?: Json;
}

/**
 * Herald's rules broken by `config` (rendered), and by `template` (the file as
 * committed, for literal secrets). `functions` are the function names that
 * need a route.
 */
export function houseRules(config: Json, template: Json, functions: string[]): string[] {
  const errors: string[] = [];
  const fail = (path: string, message: string) => errors.push(`${path}: ${message} (Herald)`);
  const services = (config.services ?? []) as Json[];
  const placed = _plugins(config);

  for (const { plugin, path, service, route } of placed) {
    const c = (plugin.config ?? {}) as Json;
    switch (plugin.name) {
      case "jwt": {
        if (!(Array.isArray(c.claims_to_verify) && c.claims_to_verify.includes("exp"))) {
          fail(`${path}.config.claims_to_verify`, "every jwt must verify exp");
        }
        if (!(Array.isArray(c.uri_param_names) && c.uri_param_names.length === 0)) {
          fail(`${path}.config.uri_param_names`, "tokens in query strings leak into logs: set []");
        }
        if (Array.isArray(c.cookie_names) && c.cookie_names.length > 0) {
          fail(`${path}.config.cookie_names`, "Herald's callers send tokens in headers: set []");
        }
        const target = _functionOf(service, route);
        if (!service && !route) {
          fail(
            path,
            "jwt may not be global: hooks, dispatch, health and metrics take no user token",
          );
        } else if (target && NO_JWT.includes(target)) fail(path, `jwt must never see ${target}`);
        break;
      }
      case "key-auth":
        if (c.key_in_query !== false) {
          fail(`${path}.config.key_in_query`, "keys in query strings leak into logs: set false");
        }
        if (c.key_in_body === true) {
          fail(`${path}.config.key_in_body`, "keys belong in the apikey header");
        }
        break;
      case "correlation-id":
        fail(
          path,
          "no correlation-id: it keeps and echoes any client value (unbounded); Herald correlates on Kong's X-Kong-Request-Id",
        );
        break;
      case "rate-limiting":
        if (_functionOf(service, route) === "hooks") {
          fail(
            path,
            "no rate limit on hooks: pg_net does not retry, a 429 loses the database event",
          );
        }
        if (_functionOf(service, route) === "notify" && plugin.consumer !== "anon") {
          fail(
            path,
            "on notify Kong limits only consumer anon: a per-address limit on secret-key callers would sit below their per-key budget in the function",
          );
        }
        if (c.policy !== "redis") {
          fail(`${path}.config.policy`, "limits must be shared by every Kong node: use redis");
        }
        if (c.hide_client_headers !== true) {
          fail(
            `${path}.config.hide_client_headers`,
            "Herald's own RateLimit-* headers must reach clients: set true",
          );
        }
        break;
      case "request-size-limiting": {
        const bytes = Number(c.allowed_payload_size) * (UNIT_BYTES[String(c.size_unit)] ?? NaN);
        if (bytes !== MAX_BODY_BYTES) {
          fail(
            `${path}.config.allowed_payload_size`,
            `must equal the functions' limit, ${MAX_BODY_BYTES} bytes (is ${bytes})`,
          );
        }
        break;
      }
    }
  }

  services.forEach((service, i) => {
    const at = `services[${i}](${service.name})`;
    const target = _functionOf(service);
    const has = (name: string) =>
      placed.some((p) =>
        p.plugin.name === name &&
        (p.service === service || p.route && _routesOf(service).includes(p.route))
      );
    if (!placed.some((p) => p.plugin.name === "request-size-limiting" && p.service === service)) {
      fail(at, "needs request-size-limiting");
    }
    if (INTERNAL_ONLY.includes(target ?? "") && !has("ip-restriction")) {
      fail(at, `${target} must be ip-restricted`);
    }
  });

  const routed = services.flatMap((s) =>
    _routesOf(s).flatMap((r) => ((r.paths ?? []) as string[]).map((p) => p.replace(/\/$/, "")))
  );
  for (const name of functions) {
    if (!routed.includes(`/functions/v1/${name}`)) {
      fail("services", `function '${name}' has no route at /functions/v1/${name}`);
    }
  }
  ((config.upstreams ?? []) as Json[]).forEach((upstream, i) => {
    const unhealthy = (((upstream.healthchecks as Json)?.passive as Json)?.unhealthy ?? {}) as Json;
    if (!(Number(unhealthy.http_failures) > 0)) return;
    const counted = (unhealthy.http_statuses ?? KONG_PASSIVE_UNHEALTHY) as number[];
    const own = counted.filter((status) => APPLICATION_STATUSES.includes(status));
    if (own.length > 0) {
      fail(
        `upstreams[${i}](${upstream.name}).healthchecks.passive.unhealthy.http_statuses`,
        `Herald answers ${own.join(", ")} itself; counting them ejects a live runtime`,
      );
    }
  });
  if (!placed.some((p) => p.plugin.name === "prometheus" && !p.service && !p.route)) {
    fail("plugins", "prometheus must be global");
  }

  // Literal secrets: in the committed template every secret is a $NAME.
  ((template.consumers ?? []) as Json[]).forEach((consumer, i) => {
    for (const [collection, fields] of Object.entries(SECRET_FIELDS)) {
      ((consumer[collection] ?? []) as Json[]).forEach((credential, j) => {
        for (const field of fields) {
          const value = credential[field];
          if (value !== undefined && !/^\$[A-Z_][A-Z0-9_]*$/.test(String(value))) {
            fail(
              `consumers[${i}].${collection}[${j}].${field}`,
              "a literal secret: use a $NAME reference",
            );
          }
        }
      });
    }
  });
  for (const { plugin, path } of _plugins(template)) {
    const redis = ((plugin.config ?? {}) as Json).redis as Json | undefined;
    if (redis?.password !== undefined && !/^\$[A-Z_][A-Z0-9_]*$/.test(String(redis.password))) {
      fail(`${path}.config.redis.password`, "a literal secret: use a $NAME reference");
    }
  }
  return errors;
}

/** Every plugin of a configuration, global or nested, with the service and route it applies to. */
function _plugins(config: Json): Placed[] {
  const placed: Placed[] = [];
  ((config.plugins ?? []) as Json[]).forEach((plugin, i) =>
    placed.push({ plugin, path: `plugins[${i}](${plugin.name})` })
  );
  ((config.services ?? []) as Json[]).forEach((service, i) => {
    const at = `services[${i}](${service.name})`;
    ((service.plugins ?? []) as Json[]).forEach((plugin, j) =>
      placed.push({ plugin, path: `${at}.plugins[${j}](${plugin.name})`, service })
    );
    _routesOf(service).forEach((route, j) => {
      ((route.plugins ?? []) as Json[]).forEach((plugin, k) =>
        placed.push({
          plugin,
          path: `${at}.routes[${j}](${route.name}).plugins[${k}](${plugin.name})`,
          service,
          route,
        })
      );
    });
  });
  return placed;
}

function _routesOf(service: Json): Json[] {
  return (service.routes ?? []) as Json[];
}

/** The function a service (or route) proxies to, from the service's upstream path. */
function _functionOf(service?: Json, _route?: Json): string | undefined {
  const path = typeof service?.path === "string" ? service.path : undefined;
  return path?.split("/").filter(Boolean)[0];
}
