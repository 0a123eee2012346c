/**
 * Where every piece of the local stack lives: ports, data directory, keys.
 *
 * Three stacks can run side by side: `dev` (what `npm start` runs, Supabase CLI
 * ports from 54321), `test` (what `npm test` runs, from 25321) and `bench`
 * (what `npm run bench:*` runs, from 26321). The test and bench ports lie below
 * Linux's ephemeral range (32768–60999), so no outgoing connection can hold one
 * of them when the stack starts. Everything is derived from `HERALD_STACK`,
 * `HERALD_PORT_BASE` and `HERALD_DATA_DIR`, so a test or a script reaches the
 * same stack as the process that started it.
 *
 * @module
 */
import { SignJWT } from "jose";

/** The Supabase CLI's well-known local JWT secret; never used outside a local stack. */
export const LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";
/** Bearer token the local Upstash-compatible bridge accepts. */
export const LOCAL_REDIS_TOKEN = "herald-local-redis-token";
/** Standard Webhooks secret the local hooks function accepts; never used outside a local stack. */
export const LOCAL_HOOK_SECRET = "whsec_aGVyYWxkLWxvY2FsLWRhdGFiYXNlLXdlYmhvb2tzIQ==";
/** Project id of the local FCM stand-in's service account. */
export const LOCAL_FCM_PROJECT = "herald-local";

/** The local stacks, each with its own ports and data directory. */
export type StackName = "dev" | "test" | "bench";

const BASE_PORTS: Record<StackName, number> = { dev: 54321, test: 25321, bench: 26321 };

/** Ports of one stack, all derived from its base. */
export interface Ports {
  /** The API port (`/functions/v1/<name>`), like `supabase start`'s: the local Kong. */
  gateway: number;
  /** The stable edge runtime's stand-in behind Kong (`/<name>`, verify_jwt). */
  edge: number;
  /** The canary edge runtime's stand-in, with a pool of function processes of its own. */
  edgeCanary: number;
  /** The inbox: what the stand-ins received, as recipients would see it (the CLI's e-mail page port). */
  inbox: number;
  /** Kong's Status API: `GET /metrics` (Prometheus). */
  kongStatus: number;
  /** Prometheus, when `npm run observe` runs it. */
  prometheus: number;
  postgres: number;
  redis: number;
  /** Upstash-compatible REST bridge in front of `redis`. */
  bridge: number;
  fcm: number;
  oauth: number;
  email: number;
  webhook: number;
  /** First port handed to function processes; one per function, in name order. */
  functions: number;
  /** The same for the canary pool's function processes. */
  functionsCanary: number;
}

/** Computes the port layout of a stack from its base port. */
export function portsFrom(base: number): Ports {
  return {
    gateway: base,
    postgres: base + 1,
    edge: base + 2,
    inbox: base + 3,
    edgeCanary: base + 6,
    kongStatus: base + 4,
    prometheus: base + 5,
    redis: base + 8,
    bridge: base + 9,
    fcm: base + 10,
    oauth: base + 11,
    email: base + 12,
    webhook: base + 13,
    functions: base + 20,
    functionsCanary: base + 30,
  };
}

/** Everything a process needs to reach one local stack. */
export interface StackConfig {
  name: StackName;
  /** Repository root (absolute). */
  root: string;
  /** This stack's data directory (absolute), e.g. `<root>/.data/dev`. */
  dataDir: string;
  ports: Ports;
  jwtSecret: string;
  anonKey: string;
  serviceRoleKey: string;
  /** A new-style publishable key (`sb_publishable_…`), as `SUPABASE_PUBLISHABLE_KEYS` holds it. */
  publishableKey: string;
  /** A new-style secret key (`sb_secret_…`), as `SUPABASE_SECRET_KEYS` holds it. */
  secretKey: string;
  /** `http://127.0.0.1:<gateway>`: what `SUPABASE_URL` is for this stack. */
  apiUrl: string;
  /** Superuser connection string, as `SUPABASE_DB_URL` is on Supabase. */
  dbUrl: string;
  redisRestUrl: string;
  redisRestToken: string;
  fakes: { fcm: string; oauth: string; email: string; webhook: string };
  /** Service-account JSON for the FCM stand-in (generated on first start). */
  serviceAccountPath: string;
  /** Private ES256 JWK signing asymmetric user tokens (generated on first start). */
  jwtSigningKeyPath: string;
}

/** Repository root, found from this file's location. */
export const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/**
 * Reads the stack selection from the environment and derives the rest.
 *
 * @example
 * ```ts
 * const stack = await loadStackConfig();
 * const res = await fetch(`${stack.apiUrl}/functions/v1/health`);
 * ```
 */
export async function loadStackConfig(
  env: Pick<typeof Deno.env, "get"> = Deno.env,
): Promise<StackConfig> {
  const selected = env.get("HERALD_STACK") ?? "dev";
  const name: StackName = selected in BASE_PORTS ? selected as StackName : "dev";
  const base = Number(env.get("HERALD_PORT_BASE") ?? BASE_PORTS[name]);
  if (!Number.isInteger(base) || base < 1024 || base > 65000) {
    throw new RangeError(`HERALD_PORT_BASE must be an integer in 1024..65000, got ${base}`);
  }
  const dataDir = env.get("HERALD_DATA_DIR") ?? `${ROOT}/.data/${name}`;
  const ports = portsFrom(base);
  const local = (port: number) => `http://127.0.0.1:${port}`;
  return {
    name,
    root: ROOT,
    dataDir,
    ports,
    jwtSecret: LOCAL_JWT_SECRET,
    anonKey: await signLocalKey("anon"),
    serviceRoleKey: await signLocalKey("service_role"),
    // The Supabase CLI's local development keys: public, like the JWT secret above.
    publishableKey: "sb_publishable_ACJWlzQHlZjBrEguHvfOxg_3BJgxAaH",
    secretKey: "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz",
    apiUrl: local(ports.gateway),
    dbUrl: `postgresql://postgres:postgres@127.0.0.1:${ports.postgres}/postgres`,
    redisRestUrl: local(ports.bridge),
    redisRestToken: LOCAL_REDIS_TOKEN,
    fakes: {
      fcm: local(ports.fcm),
      oauth: local(ports.oauth),
      email: local(ports.email),
      webhook: local(ports.webhook),
    },
    serviceAccountPath: `${dataDir}/fcm-service-account.json`,
    jwtSigningKeyPath: `${dataDir}/jwt-es256.jwk.json`,
  };
}

/** The Supabase CLI's local anon / service-role keys: HS256, issuer `supabase-demo`. */
function signLocalKey(role: "anon" | "service_role"): Promise<string> {
  return new SignJWT({ iss: "supabase-demo", role, exp: 1983812996 })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(LOCAL_JWT_SECRET));
}
