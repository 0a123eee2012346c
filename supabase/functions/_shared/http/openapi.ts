/**
 * OpenAPI 3.1 documents for Herald's functions, generated from the zod
 * schemas the routes validate with (never written by hand): each function
 * lists its operations with the schemas of what it answers, this builds the
 * document under the slug it was called as. The function's errors are RFC
 * 9457 problem+json; Kong's own refusals in front of it are Kong's JSON.
 *
 * @module
 */
import type { Hono } from "hono";
import { z } from "zod";
import type { AppEnv } from "./app.ts";

/**
 * A body as a route builds it, held to its answer schema's fields: `body
 * satisfies Answer<typeof Schema>` fails to compile on a field missing or
 * extra (values stay loose: dates are `Date`s until JSON).
 */
export type Answer<T extends z.ZodType> = { [K in keyof z.output<T>]: unknown };

/** One documented operation. */
export interface Operation {
  method: "get" | "put" | "post" | "patch" | "delete";
  /** OpenAPI path template under the function, e.g. `/notifications/{id}`. */
  path: string;
  summary: string;
  /** Who may call, in words (the description says it). */
  callers: string;
  body?: z.ZodType;
  /** Query and header parameters, as OpenAPI parameter objects. */
  parameters?: Record<string, unknown>[];
  /** Status → description of the success answers. */
  responses: Record<number, string>;
  /** Status → schema of each JSON success answer (every one but 204 and text needs one). */
  answers?: Record<number, z.ZodType>;
  /** Status → headers of `HEADERS` a success answer carries besides x-request-id. */
  answerHeaders?: Record<number, (keyof typeof HEADERS)[]>;
  /** The success answer's media type. @default "application/json" */
  produces?: string;
  /** Which of the document's error statuses this operation can answer. @default all that apply */
  errors?: number[];
  /** Callable without credentials (the document itself, liveness). */
  open?: boolean;
}

/** What a function's document says besides its operations. */
export interface DocumentOptions {
  /** The slug the function was called as (`notify`, `notify-canary`). */
  slug: string;
  title: string;
  description: string;
  operations: Operation[];
  /** Status → description of the problems the function answers. */
  errors: Record<number, string>;
  /** Status → when Kong, in front of the function, answers it itself (Kong's JSON, not problem+json). */
  gateway?: Record<number, string>;
  /** The function limits callers: its answers carry `RateLimit-*` (its 429 too). */
  rateLimited?: boolean;
  /** How callers authenticate (an OpenAPI security scheme). */
  security: Record<string, unknown>;
  /** Schemas of path parameters other than UUIDs, by name. */
  pathParameters?: Record<string, z.ZodType>;
  /**
   * Kong's key-auth guards the function's route: every call, open ones
   * included, also carries the project's anon, publishable or secret key in
   * `apikey`.
   */
  gatewayKey?: boolean;
}

/** Kong's key-auth, as supabase-js sends it. */
const API_KEY_SCHEME = {
  type: "apiKey",
  in: "header",
  name: "apikey",
  description: "The project's anon, publishable or secret key (Kong's key-auth).",
};

/** The problem+json body every error answer carries. */
export const Problem = {
  type: "object",
  required: ["type", "title", "status", "detail", "request_id"],
  properties: {
    type: { type: "string", format: "uri" },
    title: { type: "string" },
    status: { type: "integer" },
    detail: { type: "string" },
    request_id: { type: "string" },
    errors: {
      type: "array",
      items: {
        type: "object",
        required: ["field", "message"],
        properties: { field: { type: "string" }, message: { type: "string" } },
      },
    },
  },
};

/** An instant in an answer: `…Z` from a column, `…+00:00` from inside a jsonb document. */
export const Timestamp = z.iso.datetime({ offset: true });

/** The response headers Herald's answers carry, by name (`components.headers`). */
export const HEADERS = {
  "x-request-id": {
    description: "The request's id, also in every log line and stored with what it created",
    schema: { type: "string" },
  },
  "Retry-After": { description: "Seconds to wait before retrying", schema: { type: "integer" } },
  "RateLimit-Limit": {
    description: "Requests allowed per window for this caller",
    schema: { type: "integer" },
  },
  "RateLimit-Remaining": {
    description: "Requests left in the window",
    schema: { type: "integer" },
  },
  "RateLimit-Reset": { description: "Seconds until the window frees", schema: { type: "integer" } },
  "RateLimit-Policy": { description: "`<limit>;w=<window seconds>`", schema: { type: "string" } },
  Location: { description: "Where the created resource is read", schema: { type: "string" } },
  "Idempotent-Replayed": {
    description: "`true` when this is the stored answer to an earlier request with the key",
    schema: { type: "string", enum: ["true"] },
  },
} as const;

/** Response `headers` objects naming `HEADERS` by reference. */
function _headers(names: (keyof typeof HEADERS)[]): Record<string, unknown> {
  return Object.fromEntries(names.map((n) => [n, { $ref: `#/components/headers/${n}` }]));
}

const RATE_LIMIT_HEADERS = [
  "RateLimit-Limit",
  "RateLimit-Remaining",
  "RateLimit-Reset",
  "RateLimit-Policy",
] as const;

/** The body of an answer Kong makes itself (`kong.response.error`). */
export const KongError = {
  type: "object",
  required: ["message", "request_id"],
  properties: {
    message: { type: "string" },
    request_id: { type: "string", description: "Also in the x-kong-request-id header" },
  },
};

/**
 * Builds a function's document; throws when a JSON success answer has no schema.
 *
 * One piece: the document in the order OpenAPI lays it out, one block per part.
 */
export function buildOpenApi(options: DocumentOptions): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of options.operations) {
    const parameters: unknown[] = [...op.path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({
      name,
      in: "path",
      required: true,
      schema: options.pathParameters?.[name]
        ? jsonSchema(options.pathParameters[name])
        : { type: "string", format: "uuid" },
    }));
    parameters.push(...(op.parameters ?? []));
    const responses: Record<string, unknown> = {};
    for (const [status, description] of Object.entries(op.responses)) {
      const text = op.produces?.startsWith("text/");
      const answer = op.answers?.[Number(status)];
      if (status !== "204" && !text && !answer) {
        throw new Error(`${op.method} ${op.path}: the ${status} answer has no schema`);
      }
      const headers = _headers([
        "x-request-id",
        ...(options.rateLimited && !op.open ? RATE_LIMIT_HEADERS : []),
        ...(op.answerHeaders?.[Number(status)] ?? []),
      ]);
      responses[status] = status === "204" ? { description, headers } : {
        description,
        headers,
        content: {
          [op.produces ?? "application/json"]: {
            schema: text ? { type: "string" } : answerSchema(answer!),
          },
        },
      };
    }
    for (const [status, description] of Object.entries(options.errors)) {
      if (op.errors && !op.errors.includes(Number(status))) continue;
      if (!op.body && ["400", "413", "415"].includes(status)) continue;
      responses[status] = {
        description,
        headers: _headers([
          "x-request-id",
          ...(["429", "503"].includes(status) ? ["Retry-After" as const] : []),
          ...(status === "429" && options.rateLimited ? RATE_LIMIT_HEADERS : []),
        ]),
        content: {
          "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } },
        },
      };
    }
    for (const [status, description] of Object.entries(options.gateway ?? {})) {
      if (!op.body && ["413", "417"].includes(status)) continue;
      const own = responses[status] as
        | { description: string; content: Record<string, unknown> }
        | undefined;
      responses[status] = {
        description: own ? `${own.description}; or, from Kong: ${description}` : description,
        content: {
          ...own?.content,
          "application/json": { schema: { $ref: "#/components/schemas/KongError" } },
        },
      };
    }
    const path = op.path === "/" ? `/${options.slug}` : `/${options.slug}${op.path}`;
    paths[path] ??= {};
    paths[path][op.method] = {
      summary: op.summary,
      description: `Callers: ${op.callers}.`,
      ...(op.open ? { security: options.gatewayKey ? [{ apikey: [] }] : [] } : {}),
      ...(parameters.length ? { parameters } : {}),
      ...(op.body
        ? {
          requestBody: {
            required: true,
            content: { "application/json": { schema: jsonSchema(op.body) } },
          },
        }
        : {}),
      responses,
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: options.title,
      version: "1.0.0",
      description: `${options.description} A path called with a method it does not list ` +
        "answers 405 (problem+json) with `Allow`.",
    },
    servers: [{ url: "/functions/v1" }],
    security: [options.gatewayKey ? { key: [], apikey: [] } : { key: [] }],
    paths,
    components: {
      securitySchemes: {
        key: options.security,
        ...(options.gatewayKey ? { apikey: API_KEY_SCHEME } : {}),
      },
      schemas: { Problem, ...(options.gateway ? { KongError } : {}) },
      headers: HEADERS,
    },
  };
}

/** JSON Schema (2020-12) of what an answer holds: every field, nothing else. */
export function answerSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _, ...json } = z.toJSONSchema(schema, { io: "output" });
  return json;
}

/** JSON Schema (2020-12, as OpenAPI 3.1 uses) of what a request may send. */
export function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _, ...json } = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" });
  return json;
}

/**
 * Serves `GET /openapi.json` to anyone, built once per slug called (a handful
 * at most: `notify`, `notify-canary`). Register it before any credentials
 * check: the contract is public, the data is not.
 */
export function serveOpenApi(
  app: Hono<AppEnv>,
  build: (slug: string) => Record<string, unknown>,
): void {
  const documents = new Map<string, Record<string, unknown>>();
  app.get("/openapi.json", (c) => {
    const slug = c.get("slug");
    let document = documents.get(slug);
    if (!document) documents.set(slug, document = build(slug));
    return c.json(document);
  });
}

/** The operation every function has: its own document. */
export const DOCUMENT_OPERATION: Operation = {
  method: "get",
  path: "/openapi.json",
  summary: "This document.",
  callers: "anyone",
  responses: { 200: "OpenAPI 3.1" },
  answers: {
    200: z.looseObject({
      openapi: z.literal("3.1.0"),
      info: z.looseObject({ title: z.string(), version: z.string() }),
      paths: z.record(z.string(), z.unknown()),
    }),
  },
  errors: [],
  open: true,
};
