/**
 * Herald's configuration, read once from the environment by an entrypoint.
 *
 * @module
 */
import { z } from "zod";
import { BUILD } from "./build.ts";

/**
 * Notify's inline first attempt: tried when a request creates at most
 * `maxDeliveries`, answered within `budgetMs` (HERALD_INLINE_MAX_DELIVERIES,
 * HERALD_INLINE_BUDGET_MS).
 */
export const INLINE_SEND_DEFAULTS = { maxDeliveries: 10, budgetMs: 1_500 } as const;

const optionalUrl = z.url().optional();
const count = (fallback: number, max: number) =>
  z.coerce.number().int().min(1).max(max).default(fallback);

const ServiceAccount = z.object({
  project_id: z.string().min(1),
  client_email: z.string().min(1),
  private_key: z.string().includes("PRIVATE KEY"),
  private_key_id: z.string().optional(),
  token_uri: z.url(),
});

/** A Google service account as downloaded from the Firebase console (the fields Herald uses). */
export type ServiceAccount = z.infer<typeof ServiceAccount>;

const Env = z.object({
  SUPABASE_URL: z.url(),
  HERALD_DB_URL: z.string().min(1).optional(),
  SUPABASE_DB_URL: z.string().min(1).optional(),
  SUPABASE_SERVICE_ROLE_KEY: z.string().min(1).optional(),
  SUPABASE_SECRET_KEYS: z.string().optional(),
  SUPABASE_SECRET_KEY: z.string().optional(),
  HERALD_SECRET_KEYS: z.string().default(""),
  SUPABASE_PUBLISHABLE_KEYS: z.string().optional(),
  SUPABASE_PUBLISHABLE_KEY: z.string().optional(),
  SUPABASE_ANON_KEY: z.string().optional(),
  HERALD_JWT_SECRET: z.string().min(32).optional(),
  HERALD_JWKS_URL: optionalUrl,
  HERALD_DB_POOL_SIZE: z.coerce.number().int().min(1).max(100).default(4),
  HERALD_DB_STATEMENT_TIMEOUT_MS: count(15_000, 600_000),
  FCM_SERVICE_ACCOUNT: z.string().optional(),
  FCM_API_URL: z.url().default("https://fcm.googleapis.com"),
  UPSTASH_REDIS_REST_URL: optionalUrl,
  UPSTASH_REDIS_REST_TOKEN: z.string().optional(),
  EMAIL_API_URL: z.url().default("https://api.resend.com"),
  EMAIL_API_KEY: z.string().min(1).optional(),
  HERALD_EMAIL_FROM: z.string().min(3).optional(),
  HERALD_WEBHOOK_ALLOW_HOSTS: z.string().default(""),
  HERALD_WEBHOOK_TIMEOUT_MS: count(15_000, 60_000),
  HERALD_DISPATCH_KEY: z.string().min(32).optional(),
  HERALD_BATCH_SIZE: count(500, 5_000),
  HERALD_LEASE_MS: count(60_000, 3_600_000),
  HERALD_CONCURRENCY: count(512, 5_000),
  HERALD_WORKER_ROUNDS: count(2, 16),
  HERALD_MAX_ATTEMPTS: count(8, 100),
  HERALD_BACKOFF_BASE_MS: count(1_000, 3_600_000),
  HERALD_BACKOFF_CAP_MS: count(3_600_000, 86_400_000),
  HERALD_BREAKER_THRESHOLD: count(5, 1_000),
  HERALD_BREAKER_WINDOW_MS: count(60_000, 3_600_000),
  HERALD_BREAKER_RECENT_MS: count(5_000, 600_000),
  HERALD_BREAKER_COOLDOWN_MS: count(30_000, 3_600_000),
  HERALD_BREAKER_MIN_CALLS: count(100, 1_000_000),
  HERALD_BREAKER_FAILURE_RATE: z.coerce.number().gt(0).max(1).default(0.5),
  HERALD_HOOK_SECRETS: z.string().default(""),
  HERALD_RATE_LIMIT_USER_PER_MIN: count(600, 1_000_000),
  HERALD_RATE_LIMIT_SERVICE_PER_MIN: count(60_000, 10_000_000),
  HERALD_INLINE_MAX_DELIVERIES: z.coerce.number().int().min(0).max(100)
    .default(INLINE_SEND_DEFAULTS.maxDeliveries),
  HERALD_INLINE_BUDGET_MS: count(INLINE_SEND_DEFAULTS.budgetMs, 10_000),
  HERALD_INSTANCE: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, "a short lowercase name")
    .optional(),
  HERALD_VERSION: z.string().max(64).optional(),
  HERALD_GIT_SHA: z.string().regex(/^[0-9a-f]{7,40}$/, "a git commit sha").optional(),
});

/** Validated configuration. */
export interface Config {
  supabaseUrl: string;
  dbUrl: string;
  dbPoolSize: number;
  /** Longest a statement may run before Postgres cancels it. */
  dbStatementTimeoutMs: number;
  /**
   * Keys that make a caller the service: the legacy service-role JWT and the
   * project's secret keys (`sb_secret_…`). Never empty.
   */
  serviceKeys: string[];
  /** Keys that identify the project but no user: the publishable keys (`sb_publishable_…`) and the legacy anon key. */
  publicKeys: string[];
  /** Legacy HS256 JWT secret; absent when the project only uses asymmetric keys. */
  jwtSecret?: string;
  /** Where asymmetric (ES256/RS256) signing keys are published. */
  jwksUrl: string;
  /**
   * FCM when `FCM_SERVICE_ACCOUNT` is set. A malformed account does not stop
   * the function: `problem` says what is wrong and push deliveries wait.
   */
  fcm?:
    & { apiUrl: string }
    & (
      | { serviceAccount: ServiceAccount; problem?: undefined }
      | { serviceAccount?: undefined; problem: string }
    );
  /** E-mail over a Resend-compatible API; absent when no key is configured. */
  email?: { apiUrl: string; apiKey: string; from: string };
  webhooks: { allowHosts: string[]; timeoutMs: number };
  redis?: { url: string; token: string };
  /** The secret the dispatch function accepts besides the service-role key. */
  dispatchKey?: string;
  dispatch: {
    batchSize: number;
    leaseMs: number;
    concurrency: number;
    /** Rounds the long-running worker keeps in flight. */
    rounds: number;
    maxAttempts: number;
    backoff: { baseMs: number; capMs: number };
  };
  breaker: {
    threshold: number;
    windowMs: number;
    recentMs: number;
    cooldownMs: number;
    minimumCalls: number;
    failureRate: number;
  };
  /** Standard Webhooks secrets (`whsec_…`) the hooks function accepts; several during a rotation. */
  hookSecrets: string[];
  /** Sliding-window request limits per minute, per user and per service key. */
  rateLimit: { userPerMinute: number; servicePerMinute: number };
  /** Notify tries a first attempt inline when it creates at most `maxDeliveries`, within `budgetMs`. */
  inline: { maxDeliveries: number; budgetMs: number };
  /** Configuration that is set but unusable, in words for readiness and logs (e.g. `fcm-misconfigured: …`). */
  problems: string[];
  /**
   * Which deployment this is: `instance` (HERALD_INSTANCE: stable, canary)
   * labels every counter this process writes; version and git sha go to
   * `herald_build_info`.
   */
  build: { instance: string; version: string; gitSha: string };
}

/**
 * Validates the environment and shapes it into {@linkcode Config}.
 *
 * One piece: one mapping from the environment to Config, a field per line, so each variable is found in one place.
 *
 * @throws {RangeError} naming every variable that is missing or malformed
 * @example
 * ```ts
 * const config = loadConfig(Deno.env.toObject());
 * ```
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const parsed = Env.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new RangeError(`Invalid configuration: ${problems.join("; ")}`);
  }
  const e = parsed.data;
  // HERALD_DB_URL first: `supabase secrets set` refuses names starting with
  // SUPABASE_, and the provided SUPABASE_DB_URL is a direct connection.
  const dbUrl = e.HERALD_DB_URL ?? e.SUPABASE_DB_URL;
  if (!dbUrl) {
    throw new RangeError(
      "Invalid configuration: HERALD_DB_URL (or SUPABASE_DB_URL): set the database URL",
    );
  }
  const serviceKeys = [
    e.SUPABASE_SERVICE_ROLE_KEY,
    ..._keyDictionary("SUPABASE_SECRET_KEYS", e.SUPABASE_SECRET_KEYS),
    e.SUPABASE_SECRET_KEY,
    ...e.HERALD_SECRET_KEYS.split(/[\s,]+/),
  ].filter((k): k is string => Boolean(k));
  if (serviceKeys.length === 0) {
    throw new RangeError(
      "Invalid configuration: SUPABASE_SERVICE_ROLE_KEY or a secret key (SUPABASE_SECRET_KEYS, " +
        "HERALD_SECRET_KEYS): set at least one",
    );
  }
  const fcm = e.FCM_SERVICE_ACCOUNT === undefined
    ? undefined
    : { apiUrl: e.FCM_API_URL, ..._serviceAccount(e.FCM_SERVICE_ACCOUNT) };
  return {
    supabaseUrl: e.SUPABASE_URL,
    dbUrl,
    dbPoolSize: e.HERALD_DB_POOL_SIZE,
    dbStatementTimeoutMs: e.HERALD_DB_STATEMENT_TIMEOUT_MS,
    serviceKeys: [...new Set(serviceKeys)],
    publicKeys: [
      ...new Set(
        [
          e.SUPABASE_ANON_KEY,
          ..._keyDictionary("SUPABASE_PUBLISHABLE_KEYS", e.SUPABASE_PUBLISHABLE_KEYS),
          e.SUPABASE_PUBLISHABLE_KEY,
        ].filter((k): k is string => Boolean(k)),
      ),
    ],
    jwtSecret: e.HERALD_JWT_SECRET,
    jwksUrl: e.HERALD_JWKS_URL ?? new URL("/auth/v1/.well-known/jwks.json", e.SUPABASE_URL).href,
    fcm,
    email: e.EMAIL_API_KEY && e.HERALD_EMAIL_FROM
      ? { apiUrl: e.EMAIL_API_URL, apiKey: e.EMAIL_API_KEY, from: e.HERALD_EMAIL_FROM }
      : undefined,
    webhooks: {
      allowHosts: e.HERALD_WEBHOOK_ALLOW_HOSTS.split(",").map((h) => h.trim()).filter(Boolean),
      timeoutMs: e.HERALD_WEBHOOK_TIMEOUT_MS,
    },
    redis: e.UPSTASH_REDIS_REST_URL && e.UPSTASH_REDIS_REST_TOKEN
      ? { url: e.UPSTASH_REDIS_REST_URL, token: e.UPSTASH_REDIS_REST_TOKEN }
      : undefined,
    dispatchKey: e.HERALD_DISPATCH_KEY,
    dispatch: {
      batchSize: e.HERALD_BATCH_SIZE,
      leaseMs: e.HERALD_LEASE_MS,
      concurrency: e.HERALD_CONCURRENCY,
      rounds: e.HERALD_WORKER_ROUNDS,
      maxAttempts: e.HERALD_MAX_ATTEMPTS,
      backoff: { baseMs: e.HERALD_BACKOFF_BASE_MS, capMs: e.HERALD_BACKOFF_CAP_MS },
    },
    breaker: {
      threshold: e.HERALD_BREAKER_THRESHOLD,
      windowMs: e.HERALD_BREAKER_WINDOW_MS,
      recentMs: e.HERALD_BREAKER_RECENT_MS,
      cooldownMs: e.HERALD_BREAKER_COOLDOWN_MS,
      minimumCalls: e.HERALD_BREAKER_MIN_CALLS,
      failureRate: e.HERALD_BREAKER_FAILURE_RATE,
    },
    hookSecrets: e.HERALD_HOOK_SECRETS.split(/[\s,]+/).filter(Boolean),
    rateLimit: {
      userPerMinute: e.HERALD_RATE_LIMIT_USER_PER_MIN,
      servicePerMinute: e.HERALD_RATE_LIMIT_SERVICE_PER_MIN,
    },
    inline: {
      maxDeliveries: e.HERALD_INLINE_MAX_DELIVERIES,
      budgetMs: e.HERALD_INLINE_BUDGET_MS,
    },
    problems: fcm?.problem ? [fcm.problem] : [],
    // The stamped build (npm run stamp) describes the code itself and wins; on
    // hosted Supabase every slug shares the secrets, so only it can tell a
    // canary from the stable. Unstamped (a checkout, the local stack): the environment.
    build: {
      instance: BUILD.deployment || (e.HERALD_INSTANCE ?? ""),
      version: BUILD.version || (e.HERALD_VERSION ?? "dev"),
      gitSha: BUILD.gitSha || (e.HERALD_GIT_SHA ?? "unknown"),
    },
  };
}

/**
 * The values of a key dictionary as the platform sets it
 * (`{"default": "sb_secret_…"}`); a bare key is taken as one.
 */
function _keyDictionary(name: string, value: string | undefined): string[] {
  if (!value?.trim()) return [];
  if (!value.trim().startsWith("{")) return [value.trim()];
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new RangeError(`Invalid configuration: ${name} is not a JSON object of keys`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new RangeError(`Invalid configuration: ${name} is not a JSON object of keys`);
  }
  return Object.values(parsed).filter((k): k is string => typeof k === "string" && k !== "");
}

/** The service account, or what is wrong with it (then push deliveries wait, and readiness says why). */
function _serviceAccount(
  json: string,
): { serviceAccount: ServiceAccount; problem?: undefined } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return { problem: "fcm-misconfigured: FCM_SERVICE_ACCOUNT is not JSON" };
  }
  const parsed = ServiceAccount.safeParse(value);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => i.path.join(".") || "(root)").join(", ");
    return { problem: `fcm-misconfigured: FCM_SERVICE_ACCOUNT lacks or mangles ${fields}` };
  }
  return { serviceAccount: parsed.data };
}
