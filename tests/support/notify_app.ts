/**
 * The notify app in-process, over a pool the test gives it and the stack's
 * keys, as the edge runtime would run it: for tests that need to cut its
 * database connection, list its routes or call it under another slug.
 *
 * @module
 */
import { createCallerResolver } from "../../supabase/functions/_shared/auth/caller.ts";
import { createJwtVerifier } from "../../supabase/functions/_shared/auth/jwt.ts";
import type { Sql } from "../../supabase/functions/_shared/db/sessions.ts";
import type { Logger } from "../../supabase/functions/_shared/log.ts";
import { createApp } from "../../supabase/functions/notify/app.ts";
import type { NotifyDeps } from "../../supabase/functions/notify/deps.ts";
import { stack } from "./stack.ts";

/**
 * The notify app over `sql`, accepting the stack's user tokens and service
 * key; `extra` adds what a test needs beyond that (a dispatcher for inline
 * attempts, waitUntil).
 */
export function notifyApp(
  sql: Sql,
  log: Logger = () => {},
  extra: Partial<NotifyDeps> = {},
): ReturnType<typeof createApp> {
  return createApp({
    ...extra,
    sql,
    resolveCaller: createCallerResolver({
      verify: createJwtVerifier({
        secret: stack.jwtSecret,
        jwksUrl: `${stack.apiUrl}/auth/v1/.well-known/jwks.json`,
      }),
      serviceKeys: [stack.serviceRoleKey],
      publicKeys: [stack.anonKey],
    }),
    log,
  });
}
