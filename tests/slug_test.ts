/**
 * Canary-ready functions (issue 14): a function deployed under another slug
 * (`notify-canary`) serves the same routes under it, and the links it hands
 * out (a status URL, a `Location`) lead back to the slug that was called.
 * The notify app runs in-process over the real database, as the edge
 * runtime would run it under that slug.
 */
import assert from "node:assert/strict";
import { createSql } from "../supabase/functions/_shared/db/sessions.ts";
import { createHttpApp, publicBase } from "../supabase/functions/_shared/http/app.ts";
import { notifyApp } from "./support/notify_app.ts";
import { adminSql, createUser, stack } from "./support/stack.ts";

Deno.test("slugs: the same routes answer under any slug, and under the function's own name", async () => {
  const app = createHttpApp("probe", () => {});
  app.get("/where", (c) => c.json({ slug: c.get("slug"), base: publicBase(c) }));
  for (const slug of ["probe", "probe-canary", "probe_v2"]) {
    const response = await app.request(`/${slug}/where`);
    assert.equal(response.status, 200, slug);
    assert.deepEqual(await response.json(), { slug, base: `/functions/v1/${slug}` });
  }
  const missing = await app.request("/probe-canary/nowhere");
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
});

Deno.test("slugs: notify called as notify-canary answers with a status URL under notify-canary, which answers", async () => {
  const sql = createSql({ url: stack.dbUrl, max: 2, applicationName: "herald-slug-test" });
  const admin = adminSql();
  const app = notifyApp(sql);
  try {
    const user = await createUser(admin, "slug");
    const send = await app.request("/notify-canary", {
      method: "POST",
      headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json" },
      body: JSON.stringify({
        user_ids: [user.id],
        title: "From the canary",
        send_at: new Date(Date.now() + 3_600_000).toISOString(),
      }),
    });
    assert.equal(send.status, 202);
    const body = await send.json();
    assert.match(body.status_url, /^\/functions\/v1\/notify-canary\/notifications\/[0-9a-f-]{36}$/);
    assert.equal(send.headers.get("location"), body.status_url);
    const status = await app.request(body.status_url.replace("/functions/v1", ""), {
      headers: { authorization: `Bearer ${user.token}` },
    });
    assert.equal(status.status, 200);
    assert.equal((await status.json()).id, body.id);

    const created = await app.request("/notify-canary/webhook-endpoints", {
      method: "POST",
      headers: { authorization: `Bearer ${user.token}`, "content-type": "application/json" },
      body: JSON.stringify({ url: "https://hooks.example.com/herald" }),
    });
    assert.equal(created.status, 201);
    const endpoint = await created.json();
    assert.equal(
      created.headers.get("location"),
      `/functions/v1/notify-canary/webhook-endpoints/${endpoint.id}`,
    );
  } finally {
    await sql.end();
    await admin.end();
  }
});

Deno.test("slugs: the function's own name with a query, and a slug that only starts with it, are told apart", async () => {
  const app = createHttpApp("probe", () => {});
  app.get("/where", (c) => c.json({ slug: c.get("slug"), q: c.req.query("q") ?? null }));
  const own = await app.request("/probe/where?q=1");
  assert.deepEqual(await own.json(), { slug: "probe", q: "1" });
  const longer = await app.request("/probex/where?q=2");
  assert.deepEqual(await longer.json(), { slug: "probex", q: "2" });
});

Deno.test("slugs: notify-canary's OpenAPI document names its paths under notify-canary", async () => {
  const sql = createSql({ url: stack.dbUrl, max: 1, applicationName: "herald-slug-test" });
  try {
    const app = notifyApp(sql);
    for (const slug of ["notify", "notify-canary"]) {
      const response = await app.request(`/${slug}/openapi.json`);
      assert.equal(response.status, 200);
      const paths = Object.keys((await response.json()).paths);
      assert.ok(paths.includes(`/${slug}`), slug);
      assert.ok(paths.includes(`/${slug}/notifications/{id}`), slug);
      assert.ok(paths.every((p) => p === `/${slug}` || p.startsWith(`/${slug}/`)), paths.join());
    }
  } finally {
    await sql.end();
  }
});
