/**
 * What the notify app and its routes need: typed once here, so the routes
 * and the app that mounts them do not import each other.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { Caller } from "../_shared/auth/caller.ts";
import type { Sql } from "../_shared/db/sessions.ts";
import type { DispatcherDeps } from "../_shared/dispatch/dispatcher.ts";
import type { AppEnv } from "../_shared/http/app.ts";
import type { Logger } from "../_shared/log.ts";

/** What the notify app needs. */
export interface NotifyDeps {
  /** The pool; user paths run through `asCaller`, so RLS applies. */
  sql: Sql;
  resolveCaller: (headers: Headers) => Promise<Caller>;
  log: Logger;
  /** Sends the first attempt of small notifications inline; absent: everything waits for dispatch. */
  dispatcher?: DispatcherDeps;
  /** @default INLINE_SEND_DEFAULTS, in `_shared/config.ts` */
  inline?: { maxDeliveries: number; budgetMs: number };
  /** Per-user / per-key rate limit, run after authentication. */
  rateLimit?: MiddlewareHandler<AppEnv>;
  /** Keeps work alive after the response (EdgeRuntime.waitUntil on Supabase). */
  waitUntil?: (work: Promise<unknown>) => void;
  /** `HERALD_WEBHOOK_ALLOW_HOSTS`: hosts a webhook endpoint may name though not public. @default [] */
  webhookAllowHosts?: string[];
  /** Which deployment this is (`config.build.instance`), sent as `x-herald-instance`. */
  instance?: string;
  /** Counts each answered request for the metrics (Redis); absent: not counted. */
  countRequest?: (route: "notify" | "bulk" | "other", status: number, seconds: number) => void;
}
