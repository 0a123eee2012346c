/**
 * Validates a rendered DB-less `kong.yml` against Kong 3.9's schemas, as
 * `kong config parse` would, without a Kong install: every entity's fields
 * (unknown ones, types, `one_of`, ranges, required fields, the implicit
 * non-empty strings), every plugin's config from
 * `kong/schema/kong-3.9-plugin-fields.json` (transcribed from Kong 3.9.3's
 * schema files, sources cited inside) with its entity checks and custom
 * validators, DB-less restrictions, uniqueness, and references between
 * entities. Then Herald's own rules on top ({@linkcode houseRules}).
 *
 * Each problem names its path: `services[0](herald-notify).plugins[1](rate-limiting).config.redis.host: required field missing`.
 *
 * @module
 */
import { createPublicKey } from "node:crypto";
import reference from "../../kong/schema/kong-3.9-plugin-fields.json" with { type: "json" };
import { CONSUMER, type FieldSpec, PLUGIN, ROUTE, SERVICE, TARGET, UPSTREAM } from "./entities.ts";

type Json = Record<string, unknown>;
// deno-lint-ignore no-explicit-any
const PLUGINS = (reference as any).plugins as Record<string, PluginSpec>;

interface PluginSpec {
  consumer_scopable: boolean;
  protocols: FieldSpec;
  config: Record<string, FieldSpec>;
  entity_checks?: (Json | string)[];
  credential_entity?: { name: string; fields: Record<string, FieldSpec> };
}

/** Credential collections a consumer may nest, by the plugin that owns each. */
const CREDENTIALS: Record<string, string> = Object.fromEntries(
  Object.entries(PLUGINS).flatMap(([plugin, spec]) =>
    spec.credential_entity ? [[spec.credential_entity.name, plugin]] : []
  ),
);

/** What {@linkcode validateKongConfig} checks beyond Kong's schemas. */
export interface ValidateOptions {
  /** DB-less (`KONG_DATABASE=off`): rate-limiting's `cluster` policy is refused. @default true */
  dbless?: boolean;
}

/**
 * Every problem Kong 3.9 would report for `config` (parsed YAML), each naming
 * its path; empty when Kong would load it.
 */
export function validateKongConfig(config: unknown, options: ValidateOptions = {}): string[] {
  const dbless = options.dbless ?? true;
  const errors: string[] = [];
  const fail = (path: string, message: string) => errors.push(`${path}: ${message}`);
  if (!_isRecord(config)) return ["(root): a kong.yml must be a map"];
  const top: Record<string, FieldSpec> = {
    _format_version: { type: "string", required: true, one_of: ["1.1", "2.1", "3.0"] },
    _transform: { type: "boolean", default: true },
    _comment: { type: "string" },
    services: { type: "entities" },
    routes: { type: "entities" },
    consumers: { type: "entities" },
    plugins: { type: "entities" },
    upstreams: { type: "entities" },
    targets: { type: "entities" },
    ...Object.fromEntries(Object.keys(CREDENTIALS).map((c) => [c, { type: "entities" }])),
  };
  _fields(config, top, "", fail, { skipEntities: true });

  const registry = new Registry(fail);
  const list = (value: unknown, path: string): Json[] => {
    if (value === undefined) return [];
    if (!Array.isArray(value)) {
      fail(path, "expected an array of entities");
      return [];
    }
    return value.filter((entry, i) => {
      if (_isRecord(entry)) return true;
      fail(`${path}[${i}]`, "expected a map");
      return false;
    });
  };
  const label = (path: string, entity: Json, key: string) =>
    typeof entity[key] === "string" ? `${path}(${entity[key]})` : path;

  const plugin = (entity: Json, path: string, scope: Partial<Record<Scope, string>>) => {
    const at = label(path, entity, "name");
    const name = entity.name;
    const spec = typeof name === "string" ? PLUGINS[name] : undefined;
    if (typeof name === "string" && !spec) {
      fail(
        `${at}.name`,
        `plugin '${name}' not enabled; add it to the 'plugins' configuration property`,
      );
    }
    _fields(entity, PLUGIN, at, fail, { skip: ["config"] });
    for (const [kind, owner] of Object.entries(scope)) {
      if (entity[kind] !== undefined) {
        fail(`${at}.${kind}`, `a plugin nested under a ${kind} may not name another one`);
      }
      entity[kind] = owner;
    }
    for (const kind of ["route", "service", "consumer"] as const) {
      if (entity[kind] !== undefined) registry.refer(kind, entity[kind], `${at}.${kind}`);
    }
    if (!spec) return;
    if (entity.consumer !== undefined && !spec.consumer_scopable) {
      fail(`${at}.consumer`, `plugin '${name}' cannot be scoped to a consumer`);
    }
    if (entity.protocols !== undefined) {
      _value(entity.protocols, spec.protocols, `${at}.protocols`, fail);
    }
    const config = entity.config ?? {};
    if (!_isRecord(config)) return fail(`${at}.config`, "expected a record");
    _shorthands(config, _deprecatedShorthands(spec));
    const specs = dbless ? _dbless(spec.config) : spec.config;
    _fields(config, specs, `${at}.config`, fail);
    _entityChecks(String(name), entity, spec.entity_checks ?? [], at, fail);
    _pluginRules(String(name), config, `${at}.config`, fail, registry);
    registry.plugin(String(name), entity, at);
  };

  const consumer = (entity: Json, path: string) => {
    const at = label(path, entity, "username");
    _fields(entity, CONSUMER, at, fail, {
      skip: ["plugins", ...Object.keys(CREDENTIALS)],
    });
    if (entity.username === undefined && entity.custom_id === undefined) {
      fail(at, "at least one of these fields must be non-empty: 'custom_id', 'username'");
    }
    registry.add("consumers", entity, at, "username");
    for (const [collection, owner] of Object.entries(CREDENTIALS)) {
      list(entity[collection], `${at}.${collection}`).forEach((credential, i) =>
        credentialEntity(collection, owner, credential, `${at}.${collection}[${i}]`, entity)
      );
    }
    list(entity.plugins, `${at}.plugins`).forEach((p, i) =>
      plugin(p, `${at}.plugins[${i}]`, { consumer: _key(entity, "username") })
    );
  };

  const credentialEntity = (
    collection: string,
    owner: string,
    entity: Json,
    path: string,
    parent?: Json,
  ) => {
    const fields = PLUGINS[owner].credential_entity!.fields;
    if (parent) {
      if (entity.consumer !== undefined) {
        fail(`${path}.consumer`, "a credential nested under a consumer may not name another one");
      }
    } else if (entity.consumer === undefined) fail(`${path}.consumer`, "required field missing");
    else registry.refer("consumer", entity.consumer, `${path}.consumer`);
    _fields(entity, fields, path, fail, { skip: ["consumer"] });
    for (const [field, spec] of Object.entries(fields)) {
      if (spec.unique && entity[field] !== undefined) {
        registry.unique(`${collection}.${field}`, entity[field], `${path}.${field}`);
      }
    }
    if (owner === "jwt") _jwtCredential(entity, path, fail);
  };

  const route = (entity: Json, path: string, service?: string) => {
    const at = label(path, entity, "name");
    _fields(entity, ROUTE, at, fail, { skip: ["plugins"] });
    if (service !== undefined) {
      if (entity.service !== undefined) {
        fail(`${at}.service`, "a route nested under a service may not name another one");
      }
    } else if (entity.service !== undefined) {
      registry.refer("service", entity.service, `${at}.service`);
    }
    (Array.isArray(entity.paths) ? entity.paths : []).forEach((p, i) => {
      if (typeof p === "string" && p.startsWith("~")) {
        _routerRegex(p.slice(1), `${at}.paths[${i}]`, fail);
      }
    });
    const protocols = (entity.protocols ?? ["http", "https"]) as string[];
    if (
      entity.snis !== undefined &&
      !protocols.some((p) => ["https", "grpcs", "tls", "tls_passthrough"].includes(p))
    ) {
      fail(
        `${at}.snis`,
        "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'",
      );
    }
    const matchers = ["methods", "hosts", "paths", "headers", "snis", "sources", "destinations"];
    if (!matchers.some((m) => entity[m] !== undefined)) {
      fail(
        at,
        "must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http' or 'https'",
      );
    }
    registry.add("routes", entity, at, "name");
    list(entity.plugins, `${at}.plugins`).forEach((p, i) =>
      plugin(p, `${at}.plugins[${i}]`, { route: _key(entity, "name") })
    );
  };

  list(config.consumers, "consumers").forEach((c, i) => consumer(c, `consumers[${i}]`));
  list(config.upstreams, "upstreams").forEach((u, i) => {
    const at = label(`upstreams[${i}]`, u, "name");
    _fields(u, UPSTREAM, at, fail, { skip: ["targets"] });
    if (typeof u.name === "string" && !_isHost(u.name)) {
      fail(`${at}.name`, `invalid value: ${u.name}`);
    }
    registry.add("upstreams", u, at, "name");
    list(u.targets, `${at}.targets`).forEach((t, j) => {
      const tat = `${at}.targets[${j}]`;
      if (t.upstream !== undefined) {
        fail(`${tat}.upstream`, "a target nested under an upstream may not name another one");
      }
      _fields(t, TARGET, tat, fail, { skip: ["upstream"] });
      registry.unique(`targets of ${u.name}`, t.target, `${tat}.target`);
    });
  });
  list(config.targets, "targets").forEach((t, i) => {
    _fields(t, TARGET, `targets[${i}]`, fail, { skip: ["upstream"] });
    if (t.upstream === undefined) fail(`targets[${i}].upstream`, "required field missing");
    else registry.refer("upstream", t.upstream, `targets[${i}].upstream`);
  });
  list(config.services, "services").forEach((s, i) => {
    const at = label(`services[${i}]`, s, "name");
    _fields(s, SERVICE, at, fail, { skip: ["routes", "plugins"] });
    if (s.url !== undefined && (s.host !== undefined || s.path !== undefined)) {
      fail(
        `${at}.url`,
        "'url' is shorthand for protocol, host, port and path: set one or the other",
      );
    }
    if (s.url === undefined && s.host === undefined) fail(`${at}.host`, "required field missing");
    registry.add("services", s, at, "name");
    list(s.routes, `${at}.routes`).forEach((r, j) =>
      route(r, `${at}.routes[${j}]`, _key(s, "name"))
    );
    list(s.plugins, `${at}.plugins`).forEach((p, j) =>
      plugin(p, `${at}.plugins[${j}]`, { service: _key(s, "name") })
    );
  });
  list(config.routes, "routes").forEach((r, i) => route(r, `routes[${i}]`));
  for (const [collection, owner] of Object.entries(CREDENTIALS)) {
    list(config[collection], collection).forEach((c, i) =>
      credentialEntity(collection, owner, c, `${collection}[${i}]`)
    );
  }
  list(config.plugins, "plugins").forEach((p, i) => plugin(p, `plugins[${i}]`, {}));
  registry.resolve();
  return errors;
}

type Scope = "route" | "service" | "consumer";

/** Names and ids of declared entities, the references to them, and unique values. */
class Registry {
  #names: Record<string, Set<string>> = {
    services: new Set(),
    routes: new Set(),
    consumers: new Set(),
    upstreams: new Set(),
  };
  #refs: { kind: string; value: unknown; path: string }[] = [];
  #unique = new Map<string, string>();
  #plugins = new Map<string, string>();

  constructor(private fail: (path: string, message: string) => void) {}

  add(kind: string, entity: Json, path: string, key: string) {
    for (const value of [entity[key], entity.id]) {
      if (typeof value !== "string") continue;
      if (this.#names[kind].has(value)) this.fail(`${path}.${key}`, `duplicate ${kind} '${value}'`);
      this.#names[kind].add(value);
    }
  }

  refer(kind: string, value: unknown, path: string) {
    this.#refs.push({ kind, value, path });
  }

  unique(what: string, value: unknown, path: string) {
    const key = `${what}\u0000${JSON.stringify(value)}`;
    const first = this.#unique.get(key);
    if (first) this.fail(path, `${what} must be unique: already used at ${first}`);
    else this.#unique.set(key, path);
  }

  /** A plugin may appear once per name and scope (Kong's cache_key: name, route, service, consumer). */
  plugin(name: string, entity: Json, path: string) {
    const key = JSON.stringify([
      name,
      entity.instance_name,
      entity.route,
      entity.service,
      entity.consumer,
    ]);
    const first = this.#plugins.get(key);
    if (first) this.fail(path, `plugin '${name}' is already configured for this scope at ${first}`);
    else this.#plugins.set(key, path);
  }

  resolve() {
    for (const { kind, value, path } of this.#refs) {
      const name = _isRecord(value) ? (value.id ?? value.name ?? value.username) : value;
      if (typeof name !== "string") {
        this.fail(path, `expected a ${kind} name or id`);
      } else if (!this.#names[`${kind}s`].has(name)) {
        this.fail(path, `references ${kind} '${name}', which is not declared`);
      }
    }
  }
}

/** A field set with DB-less restrictions applied (`one_of_when_dbless`), recursively. */
function _dbless(fields: Record<string, FieldSpec>): Record<string, FieldSpec> {
  return Object.fromEntries(
    Object.entries(fields).map(([name, spec]) => [
      name,
      {
        ...spec,
        ...(spec.one_of_when_dbless ? { one_of: spec.one_of_when_dbless } : {}),
        ...(spec.fields ? { fields: _dbless(spec.fields) } : {}),
      },
    ]),
  );
}

/** Checks a record's fields: unknown ones, required ones (defaults are filled in), each value. */
function _fields(
  record: Json,
  specs: Record<string, FieldSpec>,
  path: string,
  fail: (path: string, message: string) => void,
  options: { skip?: string[]; skipEntities?: boolean } = {},
) {
  const at = (field: string) => (path ? `${path}.${field}` : field);
  for (const field of Object.keys(record)) {
    if (options.skip?.includes(field) || field === "_comment" || field === "_ignore") continue;
    if (!(field in specs)) fail(at(field), "unknown field");
  }
  for (const [field, spec] of Object.entries(specs)) {
    if (options.skip?.includes(field)) continue;
    if (spec.type === "entities" && options.skipEntities) continue;
    const value = record[field];
    if (value === undefined || value === null) {
      if (spec.default !== undefined && spec.default !== null) {
        record[field] = structuredClone(spec.default);
      } else if (spec.required) fail(at(field), "required field missing");
      continue;
    }
    if (spec.type === "foreign") continue;
    _value(value, spec, at(field), fail);
  }
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
/**
 * Host names as Kong's `hostname_type` takes them: labels of letters, digits,
 * `-` and `_` (Docker and the Supabase CLI name containers
 * `supabase_edge_runtime_<project>`).
 */
const HOSTNAME =
  /^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;
/** kong.tools.http.validate_header_name: letters, digits, `_` and `-` only. */
const HEADER_NAME = /^[A-Za-z0-9_-]+$/;
const UTF8_NAME = /^[\p{L}\p{N}._~-]+$/u;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function _isHost(value: string): boolean {
  return IPV4.test(value) || _isIpv6(value) || HOSTNAME.test(value);
}

function _isIpv6(value: string): boolean {
  try {
    return new URL(`http://[${value}]/`).hostname.length > 2;
  } catch {
    return false;
  }
}

/** One value against its spec; typedefs as kong/db/schema/typedefs.lua defines them. */
function _value(
  value: unknown,
  spec: FieldSpec,
  path: string,
  fail: (path: string, message: string) => void,
): void {
  const type = spec.type;
  const collection = /^(array|set)<(.+)>$/.exec(type);
  if (collection) {
    if (!Array.isArray(value)) {
      return fail(path, `expected ${collection[1] === "set" ? "a set" : "an array"}`);
    }
    if (spec.len_min !== undefined && value.length < spec.len_min) {
      fail(path, `length must be at least ${spec.len_min}`);
    }
    if (
      collection[1] === "set" && new Set(value.map((v) => JSON.stringify(v))).size !== value.length
    ) {
      fail(path, "a set may not hold the same value twice");
    }
    const element: FieldSpec = { type: collection[2], one_of: spec.one_of };
    value.forEach((v, i) => _value(v, element, `${path}[${i}]`, fail));
    return;
  }
  const map = /^map<([^,]+),(.+)>$/.exec(type);
  if (map) {
    if (!_isRecord(value)) return fail(path, "expected a map");
    for (const [k, v] of Object.entries(value)) {
      _value(k, { type: map[1] }, `${path}.${k}`, fail);
      _value(v, { type: map[2] }, `${path}.${k}`, fail);
    }
    return;
  }
  switch (type) {
    case "record":
      if (!_isRecord(value)) return fail(path, "expected a record");
      return _fields(value, spec.fields ?? {}, path, fail);
    case "boolean":
      if (typeof value !== "boolean") return fail(path, "expected a boolean");
      return;
    case "number":
    case "integer":
    case "port":
    case "timeout":
    case "http_status": {
      if (typeof value !== "number" || !Number.isFinite(value)) {
        return fail(path, type === "number" ? "expected a number" : "expected an integer");
      }
      if (type !== "number" && !Number.isInteger(value)) return fail(path, "expected an integer");
      const between = type === "port"
        ? [0, 65535]
        : type === "timeout"
        ? [0, 2 ** 31 - 2]
        : type === "http_status"
        ? [100, 999]
        : spec.between;
      if (between && (value < between[0] || value > between[1])) {
        return fail(path, `value should be between ${between[0]} and ${between[1]}`);
      }
      if (spec.gt !== undefined && !(value > spec.gt)) {
        return fail(path, `value must be greater than ${spec.gt}`);
      }
      if (spec.one_of && !spec.one_of.includes(value)) {
        return fail(path, `expected one of: ${spec.one_of.join(", ")}`);
      }
      return;
    }
  }
  // Every other type is a string, non-empty unless the schema says len_min 0.
  if (typeof value !== "string") return fail(path, "expected a string");
  const lenMin = spec.len_min ?? 1;
  if (value.length < lenMin) return fail(path, `length must be at least ${lenMin}`);
  if (spec.one_of && !spec.one_of.includes(value)) {
    return fail(path, `expected one of: ${spec.one_of.join(", ")}`);
  }
  const invalid = (what: string) => fail(path, `invalid ${what}: '${value}'`);
  switch (type) {
    case "string":
      return;
    case "uuid":
      if (!UUID.test(value)) invalid("uuid");
      return;
    case "utf8_name":
      if (!UTF8_NAME.test(value)) {
        fail(
          path,
          `invalid value '${value}': the only accepted ascii characters are alphanumerics or ., -, _, and ~`,
        );
      }
      return;
    case "header_name":
      if (!HEADER_NAME.test(value)) {
        fail(
          path,
          `bad header name '${value}', allowed characters are A-Z, a-z, 0-9, '_', and '-'`,
        );
      }
      return;
    case "host":
    case "sni":
      if (!_isHost(value)) invalid("hostname");
      if (type === "sni" && (IPV4.test(value) || _isIpv6(value))) {
        invalid("SNI (it is an IP address)");
      }
      return;
    case "path":
      if (!value.startsWith("/")) return fail(path, "should start with: /");
      if (value.includes("//")) fail(path, "must not have empty segments");
      return;
    case "router_path":
      if (!value.startsWith("/") && !value.startsWith("~/")) {
        return fail(path, "should start with: / (fixed path) or ~/ (regex path)");
      }
      if (value.includes("//")) fail(path, "must not have empty segments");
      return;
    case "ip_or_cidr": {
      const [ip, bits, extra] = value.split("/");
      const v4 = IPV4.test(ip);
      const max = v4 ? 32 : 128;
      if (
        !(v4 || _isIpv6(ip)) || extra !== undefined ||
        (bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) <= max))
      ) {
        invalid("ip or cidr range");
      }
      return;
    }
    case "target": {
      const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(value);
      const host = m?.[1]?.replace(/^\[|\]$/g, "");
      if (
        !m || !host || !_isHost(host) ||
        (m[2] !== undefined && Number(m[2]) > 65535)
      ) {
        invalid("target (host:port)");
      }
      return;
    }
    default:
      fail(path, `no validator for type '${type}' (the schema notation is unknown)`);
  }
}

/** A plugin's entity checks, in the reference's notation. */
function _entityChecks(
  name: string,
  entity: Json,
  checks: (Json | string)[],
  path: string,
  fail: (path: string, message: string) => void,
) {
  const get = (dotted: string) =>
    dotted.split(".").reduce<unknown>((v, k) => (_isRecord(v) ? v[k] : undefined), entity);
  const set = (v: unknown) =>
    v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0);
  for (const check of checks) {
    if (typeof check === "string") continue;
    if (Array.isArray(check.at_least_one_of)) {
      const fields = check.at_least_one_of as string[];
      if (!fields.some((f) => set(get(f)))) {
        fail(
          path,
          `at least one of these fields must be non-empty: ${
            fields.map((f) => `'${f}'`).join(", ")
          }`,
        );
      }
    }
    if (Array.isArray(check.only_one_of)) {
      const fields = check.only_one_of as string[];
      if (fields.filter((f) => set(get(f))).length > 1) {
        fail(
          path,
          `only one of these fields can be set: ${fields.map((f) => `'${f}'`).join(", ")}`,
        );
      }
    }
    if (typeof check.if === "string") {
      const condition = /^([\w.]+) (==|>) (.+)$/.exec(check.if);
      if (!condition) throw new Error(`${name}: unreadable entity check '${check.if}'`);
      const [, field, op, expected] = condition;
      const actual = get(field);
      const holds = op === "==" ? String(actual) === expected : Number(actual) > Number(expected);
      if (!holds) continue;
      for (const required of (check.then_required as string[] | undefined) ?? []) {
        if (!set(get(required))) fail(`${path}.${required}`, `required when ${check.if}`);
      }
      const contains = typeof check.then === "string"
        ? /^([\w.]+) contains '(.+)'$/.exec(check.then)
        : null;
      if (contains) {
        const list = get(contains[1]);
        if (!(Array.isArray(list) && list.includes(contains[2]))) {
          fail(`${path}.${contains[1]}`, `must contain '${contains[2]}' when ${check.if}`);
        }
      }
    }
  }
}

const PERIODS = ["second", "minute", "hour", "day", "month", "year"];

/** Plugins' custom validators (the reference's `custom_validator` prose, as code). */
function _pluginRules(
  name: string,
  config: Json,
  path: string,
  fail: (path: string, message: string) => void,
  _registry: Registry,
) {
  if (name === "cors") {
    // cors/schema.lua validate_asterisk_or_regex: "*" or a regex ngx.re compiles.
    (Array.isArray(config.origins) ? config.origins : []).forEach((origin, i) => {
      if (origin === "*" || typeof origin !== "string") return;
      if (_regexProblem(origin, PCRE_ESCAPES)) {
        fail(`${path}.origins[${i}]`, `'${origin}' is not a valid regex`);
      }
    });
  }
  if (name === "rate-limiting") {
    // A longer period may not allow less than a shorter one.
    for (let i = 0; i < PERIODS.length; i++) {
      for (let j = i + 1; j < PERIODS.length; j++) {
        const shorter = config[PERIODS[i]];
        const longer = config[PERIODS[j]];
        if (typeof shorter === "number" && typeof longer === "number" && longer < shorter) {
          fail(
            `${path}.${PERIODS[j]}`,
            `The limit for ${PERIODS[j]}(${longer}) cannot be lower than the limit for ${
              PERIODS[i]
            }(${shorter})`,
          );
        }
      }
    }
    const syncRate = config.sync_rate;
    if (typeof syncRate === "number" && syncRate !== -1) {
      if (config.policy !== "redis") {
        fail(`${path}.sync_rate`, "sync_rate can only be used with the redis policy");
      } else if (syncRate < 0.02) {
        fail(`${path}.sync_rate`, "sync_rate must be -1 or at least 0.02");
      }
    }
  }
}

/** jwt_secrets: asymmetric algorithms need a PEM public key. */
function _jwtCredential(entity: Json, path: string, fail: (path: string, message: string) => void) {
  const algorithm = String(entity.algorithm ?? "HS256");
  const key = entity.rsa_public_key;
  if (/^(RS|PS)\d+$|^EdDSA$/.test(algorithm) && key === undefined) {
    fail(`${path}.rsa_public_key`, `required when algorithm is ${algorithm}`);
  }
  if (
    key !== undefined &&
    !/^-----BEGIN PUBLIC KEY-----\s[\s\S]+\s-----END PUBLIC KEY-----\s*$/.test(String(key))
  ) {
    fail(`${path}.rsa_public_key`, "invalid key: not a PEM public key");
  } else if (key !== undefined && /^(RS|PS)\d+$/.test(algorithm)) {
    // jwt/daos.lua loads RS/PS keys with OpenSSL (pkey.new) and refuses what it cannot read;
    // ES keys it does not check (render.ts does, for SUPABASE_AUTH_JWT_PUBLIC_KEY).
    const problem = publicKeyProblem(String(key), "rsa");
    if (problem) fail(`${path}.rsa_public_key`, `invalid key: ${problem}`);
  }
}

/**
 * Why a PEM public key cannot be used with keys of `type` (`rsa` or `ec`),
 * or undefined when it can.
 */
export function publicKeyProblem(pem: string, type: "rsa" | "ec"): string | undefined {
  try {
    const key = createPublicKey(pem);
    if (key.asymmetricKeyType !== type) {
      return `a ${key.asymmetricKeyType} key where ${type} is needed`;
    }
    return undefined;
  } catch (error) {
    return `it does not parse (${(error as Error).message})`;
  }
}

/** The deprecated shorthand fields a plugin still takes (`redis_host` → `redis.host`). */
function _deprecatedShorthands(spec: PluginSpec): Record<string, string[]> {
  const table = (spec as { deprecated_shorthands_removal_in_4_0?: Record<string, string> })
    .deprecated_shorthands_removal_in_4_0 ?? {};
  return Object.fromEntries(
    Object.entries(table).map(([field, rule]) => [field, rule.split("->")[1].trim().split(".")]),
  );
}

/**
 * Moves deprecated shorthand fields to where they now live, as Kong does
 * (with a deprecation warning in its log) before validating; a value set in
 * both places keeps the new field's.
 */
function _shorthands(config: Json, shorthands: Record<string, string[]>) {
  for (const [field, [parent, child]] of Object.entries(shorthands)) {
    if (!(field in config)) continue;
    const value = config[field];
    delete config[field];
    const record = (_isRecord(config[parent]) ? config[parent] : (config[parent] = {})) as Json;
    if (record[child] === undefined && value !== null) record[child] = value;
  }
}

/**
 * A route's regex path as Kong 3.9's default router (`traditional_compatible`,
 * ATC over Rust's regex crate) takes it: no look-around, no back-references.
 */
function _routerRegex(regex: string, path: string, fail: (path: string, message: string) => void) {
  const unsupported = /\(\?<?[=!]/.test(regex)
    ? "look-around"
    : /\\[1-9]|\\k<|\(\?P=/.test(regex)
    ? "back-references"
    : undefined;
  const problem = unsupported
    ? `the router's regex engine has no ${unsupported}`
    : _regexProblem(regex, RUST_ESCAPES);
  if (problem) fail(path, `invalid regex: '${regex}' (${problem})`);
}

/** Letters Rust's regex crate takes after a backslash (outside Unicode classes' names). */
const RUST_ESCAPES = "aAbBdDfnprsStuUvwWxz";
/** Letters PCRE2 (Kong's ngx.re, for cors origins) takes after a backslash. */
const PCRE_ESCAPES = "aAbBcCdDeEfgGhHkKnNopPQrRsStvVwWxXzZ";

/**
 * Why a PCRE or Rust regex does not compile, or undefined: checked with
 * JavaScript's engine after translating what both take and it does not
 * (inline flags `(?i)`, named groups `(?P<name>…)`), and refusing a letter
 * escape the engine does not know (`\q`), which JavaScript would read as the
 * letter. An approximation of either engine, not a copy.
 */
function _regexProblem(regex: string, escapes: string): string | undefined {
  const unknown = [...regex.matchAll(/\\(.)/g)].map((m) => m[1])
    .find((c) => /[A-Za-z]/.test(c) && !escapes.includes(c));
  if (unknown) return `unknown escape \\${unknown}`;
  const translated = regex
    .replaceAll("(?P<", "(?<")
    .replace(/\(\?[imsxU-]+\)/g, "")
    .replace(/\(\?[imsxU-]+:/g, "(?:");
  try {
    new RegExp(translated);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

function _isRecord(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function _key(entity: Json, field: string): string {
  return typeof entity[field] === "string" ? entity[field] as string : String(entity.id ?? "?");
}

if (import.meta.main) {
  // `npm run kong:validate -- FILE`: a rendered kong.yml against Kong 3.9 and Herald's rules.
  const { parse } = await import("yaml");
  const { functionNames, houseRules } = await import("./house_rules.ts");
  const file = Deno.args[0];
  if (!file) {
    console.error("usage: npm run kong:validate -- <rendered kong.yml>");
    Deno.exit(2);
  }
  const config = parse(await Deno.readTextFile(file));
  const template = parse(await Deno.readTextFile(new URL("../../kong/kong.yml", import.meta.url)));
  const errors = [
    ...validateKongConfig(structuredClone(config)),
    ...houseRules(config, template, await functionNames()),
  ];
  for (const error of errors) console.error(error);
  console.error(
    errors.length
      ? `kong:validate: ${errors.length} problems`
      : "kong:validate: valid for Kong 3.9",
  );
  Deno.exit(errors.length ? 1 : 0);
}
