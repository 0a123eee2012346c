/**
 * The Kong 3.9 plugins Herald's `kong.yml` uses, as Kong behaves from the
 * outside: the same statuses, bodies, headers, order and Redis counters
 * (read from Kong/kong tag 3.9.3's handlers, with file and line numbers, in
 * kong/schema/kong-3.9-behaviour.md). One file per plugin under `plugins/`,
 * each citing its Kong source. Only what the local Kong needs: a field these
 * do not implement is refused at start (see `UNIMPLEMENTED`).
 *
 * @module
 */
import { cors } from "./plugins/cors.ts";
import { keyAuth } from "./plugins/key_auth.ts";
import { jwt } from "./plugins/jwt.ts";
import { hmacAuth } from "./plugins/hmac_auth.ts";
import { acl } from "./plugins/acl.ts";
import { ipRestriction } from "./plugins/ip_restriction.ts";
import { requestSizeLimiting } from "./plugins/request_size_limiting.ts";
import { rateLimiting } from "./plugins/rate_limiting.ts";
import type { Factory, Json, Plugin, PluginContext } from "./plugins/plugin.ts";

export type { Consumer, Exchange, Plugin, PluginContext } from "./plugins/plugin.ts";
export { kongError } from "./plugins/plugin.ts";

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

/** Builds one plugin from its (validated, defaults filled) config. */
export function createPlugin(name: string, config: Json, context: PluginContext): Plugin {
  const factory = FACTORIES[name];
  if (!factory) throw new Error(`plugin '${name}' is not implemented by the local Kong`);
  return { name, priority: PRIORITY[name], ...factory(config, context) };
}

const FACTORIES: Record<string, Factory> = {
  cors: cors,
  "key-auth": keyAuth,
  jwt: jwt,
  "hmac-auth": hmacAuth,
  acl: acl,
  "ip-restriction": ipRestriction,
  "request-size-limiting": requestSizeLimiting,
  "rate-limiting": rateLimiting,
  // Metrics are counted by the gateway (it sees every response); the plugin only switches them on.
  prometheus: () => ({}),
};
