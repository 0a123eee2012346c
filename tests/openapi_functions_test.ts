/**
 * Every public function publishes its OpenAPI document (the inbox's API
 * reference renders them): served to anyone at `/<slug>/openapi.json`, and
 * every documented operation is routed live. (Paths under another slug:
 * slug_test.ts.)
 */
import assert from "node:assert/strict";
import { stack } from "./support/stack.ts";

// Straight to the edge runtime: the contract is public, Kong's key checks are tested elsewhere.
const EDGE = `http://127.0.0.1:${stack.ports.edge}/functions/v1`;
const FUNCTIONS = ["dispatch", "health", "hooks", "metrics", "notify"];

// deno-lint-ignore no-explicit-any
type Json = any;

async function document(slug: string): Promise<Json> {
  const response = await fetch(`${EDGE}/${slug}/openapi.json`);
  assert.equal(response.status, 200, slug);
  return await response.json();
}

for (const fn of FUNCTIONS) {
  Deno.test(`openapi: ${fn} serves its document to anyone, every path under its slug`, async () => {
    const doc = await document(fn);
    assert.equal(doc.openapi, "3.1.0");
    assert.match(doc.info.title, new RegExp(`^Herald ${fn}$`));
    const paths = Object.keys(doc.paths);
    assert.ok(paths.includes(`/${fn}/openapi.json`), fn);
    assert.ok(paths.every((p) => p === `/${fn}` || p.startsWith(`/${fn}/`)), paths.join());
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Json>)) {
      for (const [method, op] of Object.entries(ops as Record<string, Json>)) {
        assert.ok(
          op.summary && op.responses && Object.keys(op.responses).length,
          `${method} ${path}`,
        );
      }
    }
  });
}

Deno.test("openapi: every documented operation of dispatch, health, hooks and metrics is routed live; an undocumented path is 404", async () => {
  const auth = {
    authorization: `Bearer ${stack.serviceRoleKey}`,
    "content-type": "application/json",
  };
  for (const fn of ["dispatch", "health", "hooks", "metrics"]) {
    const doc = await document(fn);
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Json>)) {
      for (const method of Object.keys(ops)) {
        const concrete = path.replace(/\{\w+\}/g, crypto.randomUUID());
        const response = await fetch(`${EDGE}${concrete}`, {
          method: method.toUpperCase(),
          headers: auth,
          body: method === "post" ? "{}" : undefined,
        });
        await response.body?.cancel();
        assert.ok(![404, 405].includes(response.status), `${method} ${path}: ${response.status}`);
      }
    }
    const missing = await fetch(`${EDGE}/${fn}/not-documented`, { headers: auth });
    await missing.body?.cancel();
    assert.equal(missing.status, 404, fn);
  }
});
