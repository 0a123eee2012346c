/**
 * What tests need to reach the running test stack (`npm test` starts it; set
 * HERALD_STACK=dev to aim at `npm start`'s): config, an admin SQL client,
 * users with access tokens, supabase-js clients.
 *
 * @module
 */
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { importJWK, SignJWT } from "jose";
import postgres from "postgres";
import { loadStackConfig } from "../../scripts/stack/config.ts";
import { bootstrap } from "../../scripts/stack/postgres.ts";

/** The stack under test. */
export const stack = await loadStackConfig();

/** A superuser connection (bypasses RLS), with `connection` settings; close it with `end()`. */
export function adminSql(connection: Record<string, string> = {}): postgres.Sql {
  return postgres(stack.dbUrl, { max: 4, onnotice: () => {}, connection });
}

/** Runs `work` with a superuser connection of its own, closed after (one test's, for sanitizers). */
export async function withAdminSql<T>(work: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = adminSql();
  try {
    return await work(sql);
  } finally {
    await sql.end();
  }
}

/**
 * Runs `work` with a database of its own on the stack's cluster, bootstrapped
 * as Supabase provides one (no migrations yet); dropped after.
 */
export async function scratchDatabase<T>(work: (url: string) => Promise<T>): Promise<T> {
  const name = `herald_scratch_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  await withAdminSql((sql) => sql.unsafe(`create database ${name}`));
  const url = stack.dbUrl.replace(/\/postgres$/, `/${name}`);
  try {
    await bootstrap({ root: stack.root, dbUrl: url });
    return await work(url);
  } finally {
    await withAdminSql((sql) => sql.unsafe(`drop database ${name} with (force)`));
  }
}

/** A signed-in test user. */
export interface TestUser {
  id: string;
  email: string;
  /** HS256 access token signed with the project's JWT secret. */
  token: string;
}

/** Creates a user in auth.users and signs an access token for it. */
export async function createUser(sql: postgres.Sql, label = "user"): Promise<TestUser> {
  const email = `${label}-${crypto.randomUUID()}@example.test`;
  const [{ id }] = await sql`
    insert into auth.users (id, aud, role, email, email_confirmed_at)
    values (gen_random_uuid(), 'authenticated', 'authenticated', ${email}, now())
    returning id`;
  return { id, email, token: await userToken(id, { email }) };
}

/** Signs a Supabase-shaped user access token (HS256 by default, or ES256 with the stack's key). */
export async function userToken(
  sub: string,
  options: { email?: string; alg?: "HS256" | "ES256"; expiresIn?: string | number } = {},
): Promise<string> {
  const jwt = new SignJWT({ role: "authenticated", aud: "authenticated", email: options.email })
    .setSubject(sub)
    .setIssuer(`${stack.apiUrl}/auth/v1`)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? "1h");
  if (options.alg === "ES256") {
    const jwk = JSON.parse(await Deno.readTextFile(stack.jwtSigningKeyPath));
    return await jwt.setProtectedHeader({ alg: "ES256", typ: "JWT", kid: jwk.kid })
      .sign(await importJWK(jwk, "ES256"));
  }
  return await jwt.setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(stack.jwtSecret));
}

/** A supabase-js client that calls as the holder of `token` (a user's, or the service key). */
export function clientAs(token: string): SupabaseClient {
  return createClient(stack.apiUrl, stack.anonKey, {
    auth: { autoRefreshToken: false, persistSession: false, detectSessionInUrl: false },
    global: { headers: { Authorization: `Bearer ${token}` } },
  });
}

/** Reads a supabase-js FunctionsHttpError's response body (problem+json) and status. */
export async function errorOf(
  error: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = (error as { context?: Response }).context;
  if (!(response instanceof Response)) throw error;
  return { status: response.status, body: await response.json() };
}

/** Runs `work` in a transaction as the service role, as the functions' service paths do. */
export async function asService<T>(
  sql: postgres.Sql,
  work: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  return await sql.begin(async (tx) => {
    await tx`select set_config('role', 'service_role', true),
      set_config('request.jwt.claims', '{"role":"service_role"}', true)`;
    return await work(tx);
  }) as T;
}

/** Enqueues a notification as the service role would (through herald.enqueue); returns its id. */
export async function enqueue(
  sql: postgres.Sql,
  recipients: string[],
  content: Record<string, unknown>,
): Promise<string> {
  return await asService(sql, async (tx) => {
    const [row] = await tx`select notification_id
      from herald.enqueue(${recipients}::uuid[], ${tx.json(content as postgres.JSONValue)})`;
    return row.notification_id as string;
  });
}

/**
 * The edge runtime behind Kong (`/functions/v1/<name>`): for tests of a
 * function's own contract with input Kong would stop first (tests/kong/ covers Kong).
 */
export const functionsUrl = `http://127.0.0.1:${stack.ports.edge}/functions/v1`;

/**
 * Headers as supabase-js sends them through the API port (the local Kong):
 * always an `apikey` — the anon key unless `apikey` or `sb-api-key` is given.
 */
export function apiHeaders(init?: HeadersInit): Headers {
  const headers = new Headers(init);
  if (!headers.has("apikey") && !headers.has("sb-api-key")) headers.set("apikey", stack.anonKey);
  return headers;
}

/** Moves every other test's due deliveries an hour out, so an in-process dispatch round sees only this test's. */
export async function parkPending(sql: postgres.Sql): Promise<void> {
  await sql`update herald.deliveries set next_attempt_at = now() + interval '1 hour'
    where status = 'pending'`;
}

/** Calls a stand-in's control API (`fake` is a key of `stack.fakes`). */
export async function fakeControl(
  fake: keyof typeof stack.fakes,
  path: string,
  body?: unknown,
  // deno-lint-ignore no-explicit-any
): Promise<any> {
  const response = await fetch(`${stack.fakes[fake]}/_control/${path}`, {
    method: body === undefined ? (path === "reset" ? "POST" : "GET") : "POST",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return text ? JSON.parse(text) : undefined;
}
