/**
 * The notify function: what apps and backends call. Notifications (one,
 * bulk, status, cancel), devices, topics, preferences, webhook endpoints and
 * the OpenAPI document. Every user-scoped query runs as the caller, so RLS
 * decides what each one sees.
 *
 * @module
 */
import { authenticate, createHttpApp } from "../_shared/http/app.ts";
import { serveOpenApi } from "../_shared/http/openapi.ts";
import type { NotifyDeps } from "./deps.ts";
import { openApiDocument } from "./openapi.ts";
import { deviceRoutes } from "./routes/devices.ts";
import { notificationStatusRoutes } from "./routes/notification_status.ts";
import { notificationRoutes } from "./routes/notifications.ts";
import { preferenceRoutes } from "./routes/preferences.ts";
import { topicRoutes } from "./routes/topics.ts";
import { webhookEndpointRoutes } from "./routes/webhook_endpoints.ts";

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
  app.route("/", notificationRoutes(deps));
  app.route("/", notificationStatusRoutes(deps));
  app.route("/", deviceRoutes(deps));
  app.route("/", topicRoutes(deps));
  app.route("/", preferenceRoutes(deps));
  app.route("/", webhookEndpointRoutes(deps));
  return app;
}

/** The metrics' route label: the two calls the notify SLO is about, and the rest. */
function _route(method: string, path: string): "notify" | "bulk" | "other" {
  if (method !== "POST") return "other";
  if (/^\/notify\/?$/.test(path)) return "notify";
  return /^\/notify\/bulk\/?$/.test(path) ? "bulk" : "other";
}
