/**
 * The notify function's OpenAPI document, held against the function itself:
 * served through the gateway to anyone with the anon key, structurally sound, listing exactly
 * the routes the Hono app registers, every one of which exists live, and
 * every documented request body refusing the unknown fields its schema forbids.
 */
import assert from "node:assert/strict";
import { createSql } from "../supabase/functions/_shared/db/sessions.ts";
import { adminSql, createUser, functionsUrl, stack, type TestUser } from "./support/stack.ts";
import { notifyApp } from "./support/notify_app.ts";

// The function's own routes, behind Kong (which asks for an apikey first).
const API = functionsUrl;
const METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"] as const;
const UNKNOWN_FIELD = "__unknown_field";

/** The parts of an OpenAPI 3.1 document these tests read. */
interface OpenApiDocument {
  openapi: string;
  info?: { title?: string; version?: string };
  paths: Record<string, Record<string, OpenApiOperation>>;
  components?: Record<string, unknown>;
}

interface OpenApiOperation {
  responses?: Record<string, unknown>;
  parameters?: { name: string; in: string; required?: boolean; schema?: unknown }[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: JsonSchema }> };
}

type JsonSchema = Record<string, unknown>;

/** One documented operation, e.g. `post /notify/bulk`. */
interface Documented {
  method: string;
  path: string;
  operation: OpenApiOperation;
}

/**
 * A minimal valid body per documented request body, keyed `<method> <path>`.
 * A new operation with a body fails the tests below until it has one here.
 */
const MINIMAL_BODIES: Record<string, (user: TestUser) => Record<string, unknown>> = {
  "post /notify": (user) => ({ user_ids: [user.id], title: "openapi test" }),
  "post /notify/bulk": (user) => ({ user_ids: [user.id], title: "openapi test" }),
  "put /notify/devices": () => ({ token: `openapi-${crypto.randomUUID()}`, platform: "android" }),
  "put /notify/preferences": () => ({ time_zone: "UTC" }),
  "post /notify/webhook-endpoints": () => ({ url: "https://hooks.example.invalid/herald" }),
  "patch /notify/webhook-endpoints/{id}": () => ({ enabled: true }),
};

async function fetchDocument(init: RequestInit = {}): Promise<Response> {
  return await fetch(`${API}/notify/openapi.json`, init);
}

async function servedDocument(): Promise<OpenApiDocument> {
  const response = await fetchDocument({
    headers: { authorization: `Bearer ${stack.serviceRoleKey}` },
  });
  assert.equal(response.status, 200, await response.clone().text());
  return await response.json();
}

function operationsOf(document: OpenApiDocument): Documented[] {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    METHODS.filter((method) => item[method]).map((method) => ({
      method,
      path,
      operation: item[method],
    }))
  );
}

/** Resolves a local JSON pointer (`#/components/schemas/Problem`) in `root`. */
function resolvePointer(root: unknown, ref: string): unknown {
  if (!ref.startsWith("#")) return undefined;
  let node: unknown = root;
  for (const raw of ref.slice(1).split("/").slice(1)) {
    const key = decodeURIComponent(raw).replaceAll("~1", "/").replaceAll("~0", "~");
    if (node === null || typeof node !== "object" || !(key in node)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** Every `$ref` in `node`, with where it was found. */
function refsIn(node: unknown, at = "#"): { at: string; ref: string }[] {
  if (node === null || typeof node !== "object") return [];
  return Object.entries(node).flatMap(([key, value]) =>
    key === "$ref" && typeof value === "string"
      ? [{ at, ref: value }]
      : refsIn(value, `${at}/${key}`)
  );
}

/** `/notify/devices/{id}` with each path parameter filled by a placeholder. */
function placeholderPath(path: string): string {
  return path.replace(
    /\{(\w+)\}/g,
    (_, name: string) => name === "topic" ? "openapi-test-topic" : crypto.randomUUID(),
  );
}

async function withUser(work: (user: TestUser) => Promise<void>): Promise<void> {
  const sql = adminSql();
  const user = await createUser(sql, "openapi");
  try {
    await work(user);
  } finally {
    // Cascades to whatever the requests below managed to create for this user.
    await sql`delete from auth.users where id = ${user.id}`;
    await sql.end();
  }
}

Deno.test("openapi: GET /notify/openapi.json is served to anyone as OpenAPI 3.1", async () => {
  const withKey = await fetchDocument({ headers: { authorization: `Bearer ${stack.anonKey}` } });
  assert.equal(withKey.status, 200);
  await withKey.body?.cancel();
  const response = await fetchDocument();
  const text = await response.text();
  assert.equal(response.status, 200, text);
  assert.match(response.headers.get("content-type") ?? "", /^application\/json\b/);
  const document = JSON.parse(text) as OpenApiDocument;
  assert.equal(document.openapi, "3.1.0");
  assert.equal(typeof document.info?.title, "string");
  assert.equal(typeof document.info?.version, "string");
});

Deno.test("openapi: notify's document asks for the apikey Kong requires, and Kong does require it", async () => {
  const doc = await servedDocument();
  // deno-lint-ignore no-explicit-any
  const schemes = (doc as any).components.securitySchemes;
  assert.deepEqual(
    { type: schemes.apikey?.type, in: schemes.apikey?.in, name: schemes.apikey?.name },
    { type: "apiKey", in: "header", name: "apikey" },
  );
  // deno-lint-ignore no-explicit-any
  assert.deepEqual((doc as any).security, [{ key: [], apikey: [] }]);
  // deno-lint-ignore no-explicit-any
  assert.deepEqual((doc as any).paths["/notify/openapi.json"].get.security, [{ apikey: [] }]);
  const withoutKey = await fetch(`${stack.apiUrl}/functions/v1/notify/openapi.json`);
  assert.equal(withoutKey.status, 401, "Kong refuses a call without apikey");
  await withoutKey.body?.cancel();
});

Deno.test("openapi: every operation has responses, declared path parameters and JSON request bodies; every $ref resolves", async () => {
  const document = await servedDocument();
  const operations = operationsOf(document);
  assert.ok(operations.length > 0, "the document lists no operation");
  for (const { method, path, operation } of operations) {
    const name = `${method.toUpperCase()} ${path}`;
    const statuses = Object.keys(operation.responses ?? {});
    assert.ok(statuses.length > 0, `${name} documents no response`);
    assert.ok(statuses.some((s) => /^2\d\d$/.test(s)), `${name} documents no success response`);
    const templated = [...path.matchAll(/\{(\w+)\}/g)].map(([, param]) => param).sort();
    const declared = (operation.parameters ?? []).filter((p) => p.in === "path");
    assert.deepEqual(declared.map((p) => p.name).sort(), templated, `${name}: path parameters`);
    for (const param of declared) {
      assert.equal(param.required, true, `${name}: path parameter ${param.name} must be required`);
    }
    if (operation.requestBody) {
      const schema = operation.requestBody.content?.["application/json"]?.schema;
      assert.ok(
        schema && typeof schema === "object" && (schema.type || schema.$ref || schema.anyOf),
        `${name}: the request body has no application/json schema`,
      );
    }
  }
  const broken = refsIn(document).filter(({ ref }) => resolvePointer(document, ref) === undefined);
  assert.deepEqual(broken, [], "every $ref resolves within the document");
});

Deno.test("openapi: the documented (method, path) pairs are exactly the routes the notify app registers", async () => {
  const sql = createSql({ url: stack.dbUrl, max: 1, applicationName: "herald-openapi-test" });
  try {
    const app = notifyApp(sql);
    const registered = new Set(
      app.routes
        .filter((route) => route.method !== "ALL") // middleware
        .map((route) =>
          `${route.method.toLowerCase()} ${
            route.path.replace(/:(\w+)/g, "{$1}").replace(/\/$/, "")
          }`
        ),
    );
    const documented = new Set(
      operationsOf(await servedDocument()).map(({ method, path }) => `${method} ${path}`),
    );
    assert.deepEqual([...documented].sort(), [...registered].sort());
  } finally {
    await sql.end();
  }
});

Deno.test("openapi: every documented operation is routed live, for a user and for the service role", async () => {
  const operations = operationsOf(await servedDocument());
  await withUser(async (user) => {
    for (const { method, path, operation } of operations) {
      for (const [who, token] of [["user", user.token], ["service", stack.serviceRoleKey]]) {
        const response = await fetch(`${API}${placeholderPath(path)}`, {
          method: method.toUpperCase(),
          headers: {
            authorization: `Bearer ${token}`,
            ...(operation.requestBody ? { "content-type": "application/json" } : {}),
          },
          body: operation.requestBody ? "{}" : undefined,
        });
        const text = await response.text();
        const name = `${method.toUpperCase()} ${path} as ${who}`;
        assert.ok(response.status < 500, `${name} answered ${response.status} ${text}`);
        if (response.status !== 404) continue;
        const problem = JSON.parse(text);
        assert.notEqual(problem.code, "NOT_FOUND", `${name}: the gateway knows no such function`);
        assert.ok(
          !(problem.type === "https://herald.dev/problems/not-found" &&
            String(problem.detail).startsWith("No route")),
          `${name} is documented but not routed: ${text}`,
        );
      }
    }
  });
});

Deno.test("openapi: every documented request body forbids unknown fields, and the live API refuses them by name", async () => {
  const operations = operationsOf(await servedDocument()).filter((op) => op.operation.requestBody);
  assert.ok(operations.length > 0, "no operation documents a request body");
  await withUser(async (user) => {
    for (const { method, path, operation } of operations) {
      const name = `${method.toUpperCase()} ${path}`;
      const schema = operation.requestBody!.content!["application/json"].schema!;
      assert.equal(
        schema.additionalProperties,
        false,
        `${name}: the schema forbids unknown fields`,
      );
      const minimal = MINIMAL_BODIES[`${method} ${path}`];
      assert.ok(minimal, `${name}: add a minimal valid body to MINIMAL_BODIES in this file`);
      const body = JSON.stringify({ ...minimal(user), [UNKNOWN_FIELD]: 1 });
      const send = (token: string) =>
        fetch(`${API}${placeholderPath(path)}`, {
          method: method.toUpperCase(),
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body,
        });
      // Users first; operations only services may call refuse them with a 403.
      let response = await send(user.token);
      if (response.status === 403) {
        await response.body?.cancel();
        response = await send(stack.serviceRoleKey);
      }
      const text = await response.text();
      assert.equal(response.status, 422, `${name} ${body} answered ${response.status} ${text}`);
      const problem = JSON.parse(text);
      assert.equal(problem.type, "https://herald.dev/problems/validation");
      assert.equal(
        problem.errors?.length,
        1,
        `${name}: only the unknown field is at fault: ${text}`,
      );
      assert.match(
        `${problem.errors[0].field} ${problem.errors[0].message}`,
        new RegExp(UNKNOWN_FIELD),
        `${name}: the 422 names ${UNKNOWN_FIELD}`,
      );
    }
  });
});

Deno.test("openapi: ttl_seconds is at most 28 days in the document, and the live API refuses more by that field's name", async () => {
  const document = await servedDocument();
  const body = document.paths["/notify"].post.requestBody!.content!["application/json"].schema!;
  const resolved = (body.$ref ? resolvePointer(document, body.$ref as string) : body) as JsonSchema;
  const ttl = (resolved.properties as Record<string, JsonSchema>).ttl_seconds;
  assert.deepEqual([ttl.minimum, ttl.maximum], [0, 2_419_200]);
  await withUser(async (user) => {
    for (const [seconds, status] of [[2_419_200, 202], [2_419_201, 422]] as const) {
      const response = await fetch(`${API}/notify`, {
        method: "POST",
        headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json" },
        body: JSON.stringify({ user_ids: [user.id], title: "ttl", ttl_seconds: seconds }),
      });
      const problem = await response.json();
      assert.equal(response.status, status, JSON.stringify(problem));
      if (status === 422) {
        assert.deepEqual(problem.errors.map((e: { field: string }) => e.field), ["ttl_seconds"]);
      }
    }
  });
});
