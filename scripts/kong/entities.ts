/**
 * Kong 3.9's core entities as a DB-less `kong.yml` may declare them, in the
 * field notation of `kong/schema/kong-3.9-plugin-fields.json` (type, default,
 * required, one_of, between, len_min, fields). Transcribed from Kong/kong tag
 * 3.9.3 (commit a643428bc4d5397152164a63bcc0f8bc65fce69d):
 * kong/db/schema/entities/{services,routes,consumers,plugins,upstreams,targets}.lua
 * and kong/db/schema/typedefs.lua. Fields Herald has no use for (TLS client
 * certificates, stream routes, SNIs) are left out, so using one is reported
 * as unknown rather than accepted unchecked.
 *
 * @module
 */

/** One field: a plugin's config field or an entity's, as the reference writes them. */
export interface FieldSpec {
  type: string;
  required?: boolean;
  default?: unknown;
  one_of?: (string | number)[];
  one_of_when_dbless?: string[];
  between?: [number, number];
  gt?: number;
  len_min?: number;
  fields?: Record<string, FieldSpec>;
  /** Names another entity (`foreign`): checked as a reference, not as a value. */
  reference?: string;
  unique?: boolean;
  [annotation: string]: unknown;
}

const PROTOCOLS = [
  "grpc",
  "grpcs",
  "http",
  "https",
  "tcp",
  "tls",
  "tls_passthrough",
  "udp",
  "ws",
  "wss",
];
const tags: FieldSpec = { type: "set<string>" };
const name: FieldSpec = { type: "utf8_name", unique: true };
const id: FieldSpec = { type: "uuid" };
const nonzeroTimeout = (fallback: number): FieldSpec => ({
  type: "integer",
  between: [1, 2 ** 31 - 2],
  default: fallback,
});

/** services.lua */
export const SERVICE: Record<string, FieldSpec> = {
  id,
  name,
  retries: { type: "integer", default: 5, between: [0, 32767] },
  protocol: { type: "string", required: true, default: "http", one_of: PROTOCOLS },
  host: { type: "host", required: true },
  port: { type: "port", required: true, default: 80 },
  path: { type: "path" },
  url: { type: "string" },
  connect_timeout: nonzeroTimeout(60000),
  write_timeout: nonzeroTimeout(60000),
  read_timeout: nonzeroTimeout(60000),
  tags,
  tls_verify: { type: "boolean" },
  tls_verify_depth: { type: "integer", between: [0, 64] },
  enabled: { type: "boolean", required: true, default: true },
};

/** routes.lua (traditional_compatible router, Kong's default) */
export const ROUTE: Record<string, FieldSpec> = {
  id,
  name,
  protocols: {
    type: "set<string>",
    required: true,
    len_min: 1,
    default: ["http", "https"],
    one_of: PROTOCOLS,
  },
  https_redirect_status_code: {
    type: "integer",
    required: true,
    default: 426,
    one_of: [426, 301, 302, 307, 308],
  },
  strip_path: { type: "boolean", required: true, default: true },
  preserve_host: { type: "boolean", required: true, default: false },
  request_buffering: { type: "boolean", required: true, default: true },
  response_buffering: { type: "boolean", required: true, default: true },
  tags,
  service: { type: "foreign", reference: "services" },
  methods: {
    type: "set<string>",
    one_of: ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT"],
  },
  hosts: { type: "array<string>" },
  paths: { type: "array<router_path>" },
  headers: { type: "map<header_name,array<string>>" },
  snis: { type: "set<sni>" },
  regex_priority: { type: "integer", default: 0 },
  path_handling: { type: "string", default: "v0", one_of: ["v0", "v1"] },
};

/** consumers.lua: at least one of username and custom_id. */
export const CONSUMER: Record<string, FieldSpec> = {
  id,
  username: { type: "string", unique: true },
  custom_id: { type: "string", unique: true },
  tags,
};

/** plugins.lua: `config` is the plugin's own schema. */
export const PLUGIN: Record<string, FieldSpec> = {
  id,
  name: { type: "string", required: true },
  instance_name: name,
  route: { type: "foreign", reference: "routes" },
  service: { type: "foreign", reference: "services" },
  consumer: { type: "foreign", reference: "consumers" },
  config: { type: "record", fields: {} },
  protocols: { type: "set<string>", one_of: PROTOCOLS },
  enabled: { type: "boolean", required: true, default: true },
  tags,
};

const healthyActive: Record<string, FieldSpec> = {
  interval: { type: "number", default: 0, between: [0, 65535] },
  http_statuses: { type: "array<http_status>", default: [200, 302] },
  successes: { type: "integer", default: 0, between: [0, 255] },
};
const unhealthyActive: Record<string, FieldSpec> = {
  interval: { type: "number", default: 0, between: [0, 65535] },
  http_statuses: { type: "array<http_status>", default: [429, 404, 500, 501, 502, 503, 504, 505] },
  tcp_failures: { type: "integer", default: 0, between: [0, 255] },
  timeouts: { type: "integer", default: 0, between: [0, 255] },
  http_failures: { type: "integer", default: 0, between: [0, 255] },
};

/** upstreams.lua (health checks: kong/db/schema/entities/upstreams.lua check_type / healthchecks). */
export const UPSTREAM: Record<string, FieldSpec> = {
  id,
  name: { type: "string", required: true, unique: true },
  algorithm: {
    type: "string",
    default: "round-robin",
    one_of: ["consistent-hashing", "least-connections", "round-robin", "latency"],
  },
  hash_on: {
    type: "string",
    default: "none",
    one_of: ["none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture"],
  },
  hash_fallback: {
    type: "string",
    default: "none",
    one_of: ["none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture"],
  },
  hash_on_header: { type: "header_name" },
  slots: { type: "integer", default: 10000, between: [10, 2 ** 16] },
  host_header: { type: "host" },
  use_srv_name: { type: "boolean", default: false },
  tags,
  healthchecks: {
    type: "record",
    fields: {
      threshold: { type: "number", default: 0, between: [0, 100] },
      active: {
        type: "record",
        fields: {
          type: {
            type: "string",
            default: "http",
            one_of: ["tcp", "http", "https", "grpc", "grpcs"],
          },
          timeout: { type: "number", default: 1, between: [0, 65535] },
          concurrency: { type: "integer", default: 10, between: [1, 2 ** 31] },
          http_path: { type: "path", default: "/" },
          https_verify_certificate: { type: "boolean", default: true },
          healthy: { type: "record", fields: healthyActive },
          unhealthy: { type: "record", fields: unhealthyActive },
        },
      },
      passive: {
        type: "record",
        fields: {
          type: {
            type: "string",
            default: "http",
            one_of: ["tcp", "http", "https", "grpc", "grpcs"],
          },
          healthy: {
            type: "record",
            fields: {
              http_statuses: { type: "array<http_status>" },
              successes: { type: "integer", default: 0, between: [0, 255] },
            },
          },
          unhealthy: {
            type: "record",
            fields: {
              http_statuses: { type: "array<http_status>", default: [429, 500, 503] },
              tcp_failures: { type: "integer", default: 0, between: [0, 255] },
              timeouts: { type: "integer", default: 0, between: [0, 255] },
              http_failures: { type: "integer", default: 0, between: [0, 255] },
            },
          },
        },
      },
    },
  },
};

/** targets.lua: `target` is host:port (or ip:port), weight 0 disables it. */
export const TARGET: Record<string, FieldSpec> = {
  id,
  upstream: { type: "foreign", reference: "upstreams" },
  target: { type: "target", required: true },
  weight: { type: "integer", default: 100, between: [0, 65535] },
  tags,
};
