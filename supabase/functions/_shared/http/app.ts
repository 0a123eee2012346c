/**
 * The HTTP shell every Herald function shares: correlation ids, a body limit,
 * problem+json for every error, a 404 for unknown routes.
 *
 * @module
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import type { z } from "zod";
import type { Caller } from "../auth/caller.ts";
import { type Logger, withLogContext } from "../log.ts";
import { Problem, problemResponse } from "./problem.ts";
import { databaseUnavailable } from "../db/unavailable.ts";
import { OutcomeUnknown } from "../db/sessions.ts";
import { unexpectedRefusal } from "../db/refusals.ts";
import { requestIdOf } from "./request_id.ts";

/**
 * Per-request values handlers can read with `c.get(...)`: the correlation id
 * and the slug the function was called as always, the caller once
 * {@linkcode authenticate} has run.
 */
export type AppEnv = { Variables: { requestId: string; caller: Caller; slug: string } };

/** What a function slug may look like (Supabase's own rule is looser; ours is what we deploy). */
const SLUG = /^\/([a-z0-9][a-z0-9_-]{0,62})(\/.*)?$/;

/**
 * Where the function answers from outside: `/functions/v1/<slug it was
 * called as>`, so links (a status URL, a `Location`) lead back to the same
 * deployment — the canary's to the canary.
 */
export function publicBase(c: Context<AppEnv>): string {
  return `/functions/v1/${c.get("slug")}`;
}

/** Largest request body any endpoint takes. */
export const MAX_BODY_BYTES = 1024 * 1024;

/**
 * Creates a Hono app rooted at `/<functionName>` (Supabase passes the full path).
 *
 * @example
 * ```ts
 * const app = createHttpApp("notify", consoleLogger);
 * app.get("/health", (c) => c.json({ ok: true }));
 * ```
 */
export function createHttpApp(
  functionName: string,
  log: Logger,
  options: {
    /** Sees every answered request (the metrics' request counts), after its access line. */
    onAnswered?: (answered: Answered) => void;
    /** Which deployment answers (stable, canary), sent as `x-herald-instance`: how a canary's share is seen from outside. */
    instance?: string;
  } = {},
): Hono<AppEnv> {
  // A function deployed under another slug (`notify-canary`) gets paths
  // starting with that slug: it is routed as if called by name.
  const app = new Hono<AppEnv>({
    getPath: (request, env) => _asCalledByName(HONO_PATH(request, env), functionName),
  }).basePath(`/${functionName}`);
  app.use(_correlateAndLog(functionName, log, options));
  // Browsers call with `Authorization: Bearer`, never cookies, so any origin may.
  app.use(cors({
    origin: "*",
    allowMethods: ["GET", "PUT", "POST", "PATCH", "DELETE"],
    allowHeaders: CORS_ALLOW_HEADERS,
    exposeHeaders: CORS_EXPOSE_HEADERS,
    maxAge: 86_400,
  }));
  app.use(bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: () => {
      throw new Problem(
        413,
        "body-too-large",
        `Request bodies are limited to ${MAX_BODY_BYTES} bytes.`,
      );
    },
  }));
  app.notFound((c) => {
    const allowed = _allowedMethods(app, c.req.path);
    const problem = allowed.length
      ? new Problem(
        405,
        "method-not-allowed",
        `${c.req.method} is not allowed on ${c.req.path}; use ${allowed.join(", ")}.`,
        [],
        { allow: allowed.join(", ") },
      )
      : new Problem(404, "not-found", `No route for ${c.req.method} ${c.req.path}.`);
    return problemResponse(problem, c.get("requestId") ?? requestIdOf(c.req.raw.headers));
  });
  app.onError((error, c) => {
    const requestId = c.get("requestId") ?? requestIdOf(c.req.raw.headers);
    return problemResponse(_problemFor(error, requestId, log), requestId);
  });
  return app;
}

/** One answered request, as `onAnswered` sees it. */
interface Answered {
  method: string;
  path: string;
  status: number;
  seconds: number;
}

/** Hono's own path reading (decoding included); `getPath` wraps it. */
const HONO_PATH = new Hono().getPath;

/** `/notify-canary/x` → `/notify/x` for the function `notify`; its own paths unchanged. */
function _asCalledByName(path: string, functionName: string): string {
  if (path.startsWith(`/${functionName}`)) {
    const next = path.charAt(functionName.length + 1);
    if (next === "" || next === "/") return path;
  }
  const called = path.match(SLUG);
  return called ? `/${functionName}${called[2] ?? ""}` : path;
}

/** The slug the request called, e.g. `notify-canary`; the function's name when it called that. */
function _slugOf(request: Request, functionName: string): string {
  return HONO_PATH(request).match(SLUG)?.[1] ?? functionName;
}

/**
 * The first middleware: the correlation id (and the slug called) for the
 * handlers and every log line, `x-request-id` and `x-herald-instance` on the
 * answer, one access line, and the answer counted.
 */
function _correlateAndLog(
  functionName: string,
  log: Logger,
  options: { onAnswered?: (answered: Answered) => void; instance?: string },
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const started = performance.now();
    c.set("slug", _slugOf(c.req.raw, functionName));
    const requestId = requestIdOf(c.req.raw.headers);
    c.set("requestId", requestId);
    await withLogContext({ request_id: requestId }, next);
    c.res.headers.set("x-request-id", requestId);
    if (options.instance) c.res.headers.set("x-herald-instance", options.instance);
    const ms = performance.now() - started;
    // One access line per request; the path never holds secrets, the query may not be logged.
    log("info", "request", {
      request_id: requestId,
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round(ms),
    });
    try {
      options.onAnswered?.({
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        seconds: ms / 1000,
      });
    } catch (error) {
      // Counting is never worth an answer: the request is done, say why it went uncounted.
      log("error", "a request could not be counted", { error: (error as Error).message });
    }
  };
}

/** Headers a browser may read from Herald's answers. */
const CORS_EXPOSE_HEADERS = [
  "x-request-id",
  "location",
  "retry-after",
  "idempotent-replayed",
  "ratelimit-limit",
  "ratelimit-remaining",
  "ratelimit-reset",
  "ratelimit-policy",
];

/**
 * The problem an error becomes: its own, a 503 for a database that did not
 * answer (or may have applied the request), a 422 for a value the database
 * refused; anything else is logged and becomes a 500 that names nothing.
 */
function _problemFor(error: Error, requestId: string, log: Logger): Problem {
  if (error instanceof Problem) return error;
  const retryAfter = { "Retry-After": String(DATABASE_RETRY_AFTER_S) };
  if (error instanceof OutcomeUnknown) {
    log("warn", "database did not finish a transaction", {
      request_id: requestId,
      reason: error.reason,
      error: error.cause?.message,
    });
    return new Problem(
      503,
      "outcome-unknown",
      `The database did not finish the request (${error.reason}): it may have been ` +
        "applied. Retry with the same Idempotency-Key header: if it was applied you get " +
        "its first answer, otherwise it is applied once. Without one, check before retrying " +
        "(GET the status URL or list the resource).",
      [],
      retryAfter,
    );
  }
  const unavailable = databaseUnavailable(error);
  if (unavailable) {
    log("warn", "database unavailable", {
      request_id: requestId,
      code: (error as { code?: string }).code,
      error: error.message,
    });
    return new Problem(
      503,
      "database-unavailable",
      `The database is unavailable (${unavailable}); nothing was accepted. Retry shortly.`,
      [],
      retryAfter,
    );
  }
  const refused = unexpectedRefusal(error);
  if (refused) {
    log("warn", "database refused a request's value", {
      request_id: requestId,
      code: (error as { code?: string }).code,
      error: error.message,
    });
    return refused;
  }
  log("error", "unhandled error", {
    request_id: requestId,
    error: error.message,
    stack: error.stack,
  });
  return new Problem(500, "internal", "Something went wrong on our side; quote the request id.");
}

/** Methods of the routes (not middleware) whose path pattern matches `path`. */
function _allowedMethods(app: Hono<AppEnv>, path: string): string[] {
  const methods = app.routes
    .filter((route) => route.method !== "ALL" && _pattern(route.path).test(path))
    .map((route) => route.method);
  return [...new Set(methods)].sort();
}

const _patterns = new Map<string, RegExp>();

/** `/notify/devices/:id` → a RegExp matching one segment per parameter. */
function _pattern(routePath: string): RegExp {
  let pattern = _patterns.get(routePath);
  if (!pattern) {
    const source = routePath.split("/").map((part) =>
      part.startsWith(":") ? "[^/]+" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
    ).join("/");
    pattern = new RegExp(`^${source}$`);
    _patterns.set(routePath, pattern);
  }
  return pattern;
}

/** What a 503 for an unreachable database asks callers to wait, in seconds. */
const DATABASE_RETRY_AFTER_S = 5;

/**
 * Middleware resolving the caller once per request (401/403 as problems) and
 * putting it at `c.get("caller")`.
 */
export function authenticate(
  resolveCaller: (headers: Headers) => Promise<Caller>,
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    c.set("caller", await resolveCaller(c.req.raw.headers));
    await next();
  };
}

/**
 * Reads a JSON body and validates it.
 *
 * @throws {Problem} 415 for a non-JSON content type, 400 for malformed JSON,
 *   422 naming each field that fails `schema`
 */
export async function readJson<T extends z.ZodType>(
  request: Request,
  schema: T,
): Promise<z.output<T>> {
  const type = request.headers.get("content-type") ?? "";
  if (!/^application\/([\w.+-]+\+)?json\b/i.test(type)) {
    throw new Problem(
      415,
      "unsupported-media-type",
      "Send the body as 'Content-Type: application/json'.",
    );
  }
  let text: string;
  try {
    // Fatal: `request.json()` would replace invalid bytes with U+FFFD and
    // store a text the caller never sent.
    text = STRICT_UTF8.decode(await request.arrayBuffer());
  } catch {
    throw new Problem(400, "malformed-json", "The request body is not valid UTF-8.");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Problem(400, "malformed-json", "The request body is not valid JSON.");
  }
  return validate(schema, assertStorable(value));
}

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Request headers browsers may send: what supabase-js sends (`apikey`,
 * `x-client-info`, `x-supabase-api-version`, `x-region`), the platform's
 * (`sb-api-key`), tracing (`traceparent`, `tracestate`, `baggage`) and Herald's own.
 */
export const CORS_ALLOW_HEADERS = [
  "authorization",
  "apikey",
  "sb-api-key",
  "content-type",
  "x-client-info",
  "x-supabase-api-version",
  "x-region",
  "traceparent",
  "tracestate",
  "baggage",
  "idempotency-key",
  "x-request-id",
];

/** Deepest nesting a body may have; Postgres's jsonb and our templates need far less. */
export const MAX_JSON_DEPTH = 32;

/** U+0000 and unpaired UTF-16 surrogates: valid in JSON text, refused by Postgres text and jsonb. */
// deno-lint-ignore no-control-regex -- U+0000 is exactly what it must find
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Refuses JSON that parses but cannot be stored: strings (or keys) holding
 * U+0000 or lone surrogates, and nesting deeper than {@linkcode MAX_JSON_DEPTH}.
 *
 * @throws {Problem} 422 naming the field
 */
export function assertStorable(value: unknown): unknown {
  const walk = (node: unknown, path: string[]): void => {
    if (path.length > MAX_JSON_DEPTH) {
      _unstorable(path, `nests deeper than ${MAX_JSON_DEPTH} levels`);
    }
    if (typeof node === "string") {
      if (UNSTORABLE.test(node)) {
        _unstorable(path, "must not contain U+0000 or unpaired surrogates");
      }
    } else if (Array.isArray(node)) {
      node.forEach((item, i) => walk(item, [...path, String(i)]));
    } else if (node && typeof node === "object") {
      for (const [key, item] of Object.entries(node)) {
        if (UNSTORABLE.test(key)) _unstorable(path, "has a key with U+0000 or unpaired surrogates");
        walk(item, [...path, key]);
      }
    }
  };
  walk(value, []);
  return value;
}

function _unstorable(path: string[], message: string): never {
  const field = path.length ? path.join(".") : "(body)";
  throw new Problem(422, "validation", `Invalid ${field}: ${message}.`, [{ field, message }]);
}

/**
 * Validates a value (body, params, query) against a schema; `whole` names
 * the value itself where an issue has no field (an unknown query key).
 *
 * @throws {Problem} 422 naming each field at fault
 */
export function validate<T extends z.ZodType>(
  schema: T,
  value: unknown,
  whole: "(body)" | "(query)" | "(path)" = "(body)",
): z.output<T> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const errors = parsed.error.issues.map((issue) => ({
    field: issue.path.length ? issue.path.join(".") : whole,
    message: issue.message,
  }));
  throw new Problem(
    422,
    "validation",
    `Invalid ${errors.map((e) => e.field).join(", ")}: ${errors[0].message}.`,
    errors,
  );
}
