/**
 * The notify function: what apps and backends call. Notifications (one,
 * bulk, status, cancel), devices, topics, preferences, webhook endpoints and
 * the OpenAPI document. Every user-scoped query runs as the caller, so RLS
 * decides what each one sees.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { Caller } from "../_shared/auth/caller.ts";
import type { Sql } from "../_shared/db/sessions.ts";
import type { DispatcherDeps } from "../_shared/dispatch/dispatcher.ts";
import { type AppEnv, authenticate, createHttpApp } from "../_shared/http/app.ts";
import type { Logger } from "../_shared/log.ts";
import { openApiDocument } from "./openapi.ts";
import { serveOpenApi } from "../_shared/http/openapi.ts";
import { accountRoutes } from "./routes/account.ts";
import { notificationRoutes } from "./routes/notifications.ts";

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

/**
 * Builds the notify app.
 *
 * @example
 * ```ts
 * const app = createApp({ sql, resolveCaller, log: consoleLogger });
 * Deno.serve(app.fetch);
 * ```
 */
export function createApp(deps: NotifyDeps) {
  const count = deps.countRequest;
  const app = createHttpApp("notify", deps.log, {
    instance: deps.instance,
    onAnswered: count && ((r) => count(_route(r.method, r.path), r.status, r.seconds)),
  });
  serveOpenApi(app, openApiDocument);

  app.use(authenticate(deps.resolveCaller));
  if (deps.rateLimit) app.use(deps.rateLimit);
  notificationRoutes(app, deps);
  accountRoutes(app, deps);
  return app;
}

/** The metrics' route label: the two calls the notify SLO is about, and the rest. */
function _route(method: string, path: string): "notify" | "bulk" | "other" {
  if (method !== "POST") return "other";
  if (/^\/notify\/?$/.test(path)) return "notify";
  return /^\/notify\/bulk\/?$/.test(path) ? "bulk" : "other";
}
