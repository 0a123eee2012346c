/**
 * The local stack's Kong: `kong/kong.yml` rendered with the stack's secrets
 * (as self-hosted Supabase's entrypoint would) and served on the API port by
 * the local Kong. Self-hosted Supabase's own kong.yml also routes `/auth/v1/`;
 * here one service stands in for that part (the JWKS the functions verify
 * ES256 tokens with).
 *
 * @module
 */
import { renderKongConfig } from "../../kong/render.ts";
import { loadStackConfig, type StackConfig } from "../config.ts";
import { discoverFunctions, type EdgeRequest, startGateway } from "../edge_gateway.ts";
import { INTERNAL_ADDRESS } from "../internal_address.ts";
import { startKong } from "./kong.ts";

type Plugin = { name: string; config: Record<string, unknown> };

/** The HMAC secret of the local `herald-backend` credential (local stacks only). */
export const LOCAL_BACKEND_HMAC_SECRET = "herald-local-backend-hmac-secret-not-for-production";

/** The variables kong.yml refers to, for a local stack. */
export function localKongEnv(stack: StackConfig): Record<string, string> {
  return {
    HERALD_FUNCTIONS_STABLE: `127.0.0.1:${stack.ports.edge}`,
    HERALD_FUNCTIONS_CANARY: `127.0.0.1:${stack.ports.edgeCanary}`,
    HERALD_CANARY_WEIGHT: Deno.env.get("HERALD_CANARY_WEIGHT") ?? "0",
    SUPABASE_ANON_KEY: stack.anonKey,
    SUPABASE_PUBLISHABLE_KEY: stack.publishableKey,
    SUPABASE_SERVICE_KEY: stack.serviceRoleKey,
    SUPABASE_SECRET_KEY: stack.secretKey,
    SUPABASE_API_KEY_ISSUER: "supabase-demo",
    SUPABASE_JWT_SECRET: stack.jwtSecret,
    SUPABASE_AUTH_ISSUER: `${stack.apiUrl}/auth/v1`,
    HERALD_BACKEND_HMAC_SECRET: LOCAL_BACKEND_HMAC_SECRET,
    HERALD_KONG_REDIS_HOST: "127.0.0.1",
    HERALD_KONG_REDIS_PORT: String(stack.ports.redis),
    HERALD_KONG_REDIS_PASSWORD: "",
    HERALD_INTERNAL_CIDR: `${INTERNAL_ADDRESS}/32`,
  };
}

/**
 * kong.yml rendered for a local stack, with the stand-in for Supabase's
 * `/auth/v1/` routes. `addressPerMinute` (else `HERALD_LOCAL_KONG_ADDRESS_PER_MIN`)
 * replaces the per-address limits: a benchmark's hundred clients all come
 * from 127.0.0.1, where production's come from a hundred addresses.
 */
export async function localKongConfig(
  stack: StackConfig,
  options: { canaryWeight?: number; addressPerMinute?: number } = {},
): Promise<Record<string, unknown>> {
  const template = await Deno.readTextFile(new URL("../../../kong/kong.yml", import.meta.url));
  const { config } = renderKongConfig(template, localKongEnv(stack), options);
  const perMinute = options.addressPerMinute ??
    Number(Deno.env.get("HERALD_LOCAL_KONG_ADDRESS_PER_MIN") ?? 0);
  if (perMinute > 0) {
    const routes = (config.services as { routes?: { plugins?: Plugin[] }[]; plugins?: Plugin[] }[])
      .flatMap((s) => [s, ...(s.routes ?? [])]);
    for (const plugin of routes.flatMap((r) => r.plugins ?? [])) {
      if (plugin.name === "rate-limiting" && plugin.config.limit_by === "ip") {
        // Only the periods the file sets: each one is a counter per request.
        const scale = { minute: 1, hour: 60, day: 1440 } as const;
        for (const [period, times] of Object.entries(scale)) {
          if (plugin.config[period] !== undefined) plugin.config[period] = perMinute * times;
        }
      }
    }
  }
  (config.services as unknown[]).push({
    name: "supabase-auth-stand-in",
    protocol: "http",
    host: "127.0.0.1",
    port: stack.ports.edge,
    path: "/auth/v1",
    retries: 0,
    routes: [{ name: "supabase-auth-stand-in", paths: ["/auth/v1"], strip_path: true }],
  });
  return config;
}

/**
 * The two edge-runtime front doors (stable, canary pools), listening on their
 * ports and callable in-process by the Kong beside them.
 */
export async function startEdgeRuntimes(stack: StackConfig) {
  const { d: _d, ...publicJwk } = JSON.parse(await Deno.readTextFile(stack.jwtSigningKeyPath));
  const pools = [
    [stack.ports.edge, stack.ports.functions],
    [stack.ports.edgeCanary, stack.ports.functionsCanary],
  ] as const;
  const inProcess: Record<string, (request: EdgeRequest) => Promise<Response>> = {};
  const gateways: { close(): Promise<void> }[] = [];
  for (const [port, firstFunctionPort] of pools) {
    const gateway = startGateway({
      port,
      functions: await discoverFunctions(stack.root, firstFunctionPort),
      jwtSecret: stack.jwtSecret,
      jwks: { keys: [publicJwk] },
    });
    inProcess[`127.0.0.1:${port}`] = gateway.route;
    gateways.push(gateway);
  }
  return { inProcess, close: () => Promise.all(gateways.map((g) => g.close())) };
}

if (import.meta.main) {
  const stack = await loadStackConfig();
  const edges = await startEdgeRuntimes(stack);
  const config = await localKongConfig(stack);
  startKong({
    config,
    port: stack.ports.gateway,
    statusPort: stack.ports.kongStatus,
    inProcess: edges.inProcess,
  });
  console.log(
    `kong (local, from kong/kong.yml) on ${stack.apiUrl}, metrics on :${stack.ports.kongStatus}/metrics; ` +
      `edge runtime on :${stack.ports.edge} (stable), :${stack.ports.edgeCanary} (canary)`,
  );
}
