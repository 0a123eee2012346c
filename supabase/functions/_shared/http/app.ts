/**
 * The HTTP shell every Herald function shares: correlation ids, a body limit,
 * problem+json for every error, a 404 for unknown routes.
 *
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { z } from "zod";
import type { Caller } from "../auth/caller.ts";
import type { Logger } from "../log.ts";
import { Problem, problemResponse } from "./problem.ts";
import { requestIdOf } from "./request_id.ts";

/**
 * Per-request values handlers can read with `c.get(...)`: the correlation id
 * always, the caller once {@linkcode authenticate} has run.
 */
export type AppEnv = { Variables: { requestId: string; caller: Caller } };

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
export function createHttpApp(functionName: string, log: Logger): Hono<AppEnv> {
  const app = new Hono<AppEnv>().basePath(`/${functionName}`);
  app.use(async (c, next) => {
    const started = performance.now();
    const requestId = requestIdOf(c.req.raw.headers);
    c.set("requestId", requestId);
    await next();
    c.res.headers.set("x-request-id", requestId);
    // One access line per request; the path never holds secrets, the query may not be logged.
    log("info", "request", {
      request_id: requestId,
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round(performance.now() - started),
    });
  });
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
  app.notFound((c) =>
    problemResponse(
      new Problem(404, "not-found", `No route for ${c.req.method} ${new URL(c.req.url).pathname}.`),
      c.get("requestId") ?? requestIdOf(c.req.raw.headers),
    )
  );
  app.onError((error, c) => {
    const requestId = c.get("requestId") ?? requestIdOf(c.req.raw.headers);
    if (error instanceof Problem) return problemResponse(error, requestId);
    log("error", "unhandled error", {
      request_id: requestId,
      error: error.message,
      stack: error.stack,
    });
    return problemResponse(
      new Problem(500, "internal", "Something went wrong on our side; quote the request id."),
      requestId,
    );
  });
  return app;
}

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
  let value: unknown;
  try {
    value = await request.json();
  } catch {
    throw new Problem(400, "malformed-json", "The request body is not valid JSON.");
  }
  return validate(schema, value);
}

/**
 * Validates a value (body, params, query) against a schema.
 *
 * @throws {Problem} 422 naming each field at fault
 */
export function validate<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const errors = parsed.error.issues.map((issue) => ({
    field: issue.path.length ? issue.path.join(".") : "(body)",
    message: issue.message,
  }));
  throw new Problem(
    422,
    "validation",
    `Invalid ${errors.map((e) => e.field).join(", ")}: ${errors[0].message}.`,
    errors,
  );
}
