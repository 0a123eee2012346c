/**
 * The inbox (`npm start`: http://127.0.0.1:54324): every push, e-mail and
 * webhook the local stand-ins received, as the recipient would see it, live;
 * each linked to its delivery in Herald; with controls that make a stand-in
 * slow, failing or rate-limiting, and a button that replays dead letters.
 *
 * A local development tool: it binds to 127.0.0.1, answers only clients on
 * 127.0.0.1 (its API proxy must not lend that address, which Kong's
 * `ip-restriction` trusts, to another) and only requests addressed to a
 * loopback host (no DNS rebinding), takes state-changing
 * requests only as JSON (a cross-site form cannot send them), reads the
 * local database as its superuser, and serves nothing from the internet.
 * It is never part of a deployed function.
 *
 * @module
 */
import postgres from "postgres";
import type { StackConfig } from "../config.ts";
import { refuseOutsider } from "../internal_address.ts";
import { createStandardWebhookVerifier } from "../../../supabase/functions/_shared/webhooks/standard_webhooks.ts";
import { emailItem, type Item, pushItem, type Recorded, webhookItem } from "./items.ts";

const STATIC = new URL("./static/", import.meta.url);
const PAGES: Record<string, string> = {
  "/": "inbox.html",
  "/inbox.js": "inbox.js",
  "/inbox.css": "inbox.css",
  "/reference": "reference.html",
  "/reference.js": "reference.js",
};
/** Swagger UI's files the reference page loads (swagger-ui-dist, an npm dev dependency). */
const SWAGGER_FILES = ["swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"];
/** The functions whose documents the reference shows. */
const DOCUMENTED = ["notify", "hooks", "dispatch", "health", "metrics"];
/** Request headers the reference's "try it" may send on to the API. */
const FORWARDED = [
  "authorization",
  "apikey",
  "content-type",
  "accept",
  "idempotency-key",
  "prefer",
];
/** The most items the inbox keeps (the oldest go first); the page keeps as many. */
export const MAX_ITEMS = 2_000;
const FAKES = ["fcm", "email", "webhook"] as const;
type FakeName = typeof FAKES[number];

/** A running inbox. */
export interface Inbox {
  url: string;
  close(): Promise<void>;
}

/** Starts the inbox for `stack` on `port` (default the stack's inbox port). */
export function startInbox(
  stack: StackConfig,
  options: { port?: number; pollMs?: number } = {},
): Inbox {
  const sql = postgres(stack.dbUrl, {
    max: 2,
    onnotice: () => {},
    connection: { application_name: "herald-inbox" },
  });
  /** What the stand-ins received, oldest first; `n` numbers items 1, 2, … as they arrive. */
  const items: Array<Item & { n: number }> = [];
  let arrived = 0;
  const cursors: Record<FakeName, number> = { fcm: 0, email: 0, webhook: 0 };
  const listeners = new Set<(event: string, data: unknown, id?: number) => void>();
  const broadcast = (event: string, data: unknown, id?: number) => {
    for (const listener of listeners) listener(event, data, id);
  };

  /**
   * The user a device token belongs to (e-mail) when its push arrived; null for raw targets.
   * Not cached: a token moves to whoever registers it next, and may be registered later.
   */
  const userOf = async (token: string): Promise<string | null> => {
    const [row] = await sql`select u.email from herald.device_tokens t
      join auth.users u on u.id = t.user_id where t.token = ${token}`.catch(() => []);
    return (row?.email as string | undefined) ?? null;
  };

  const poll = async (fake: FakeName) => {
    const response = await fetch(
      `${stack.fakes[fake]}/_control/requests?after=${cursors[fake]}`,
      { signal: AbortSignal.timeout(5_000) },
    );
    const { total, requests } = await response.json() as { total: number; requests: Recorded[] };
    if (total < cursors[fake]) {
      // The stand-in was reset: what it recorded before is gone from its side too.
      cursors[fake] = 0;
      const kind = fake === "fcm" ? "push" : fake;
      for (let i = items.length - 1; i >= 0; i--) if (items[i].kind === kind) items.splice(i, 1);
      broadcast("reset", { kind });
      return;
    }
    for (const r of requests) {
      if (r.status === undefined) break; // still being answered: next time, in order
      cursors[fake] = r.seq;
      const item = fake === "fcm" ? pushItem(r) : fake === "email" ? emailItem(r) : webhookItem(r);
      if (!item) continue;
      const enriched = item.kind === "push" ? { ...item, user: await userOf(item.to) } : item;
      const entry = { ...enriched, n: ++arrived };
      items.push(entry);
      if (items.length > MAX_ITEMS) items.shift();
      broadcast("item", entry, entry.n);
    }
  };

  let polling = true;
  const loop = (async () => {
    while (polling) {
      await Promise.all(FAKES.map((f) => poll(f).catch(() => {})));
      await new Promise((r) => setTimeout(r, options.pollMs ?? 250));
    }
  })();

  const server = Deno.serve(
    { hostname: "127.0.0.1", port: options.port ?? stack.ports.inbox, onListen: () => {} },
    async (request, info) => {
      // Its API proxy calls Kong from 127.0.0.1: anyone else would borrow that address.
      const outsider = refuseOutsider(info);
      if (outsider) return outsider;
      const url = new URL(request.url);
      const host = request.headers.get("host")?.replace(/:\d+$/, "");
      if (host !== "127.0.0.1" && host !== "localhost") {
        return _problem(421, "the inbox answers only on 127.0.0.1 or localhost");
      }
      // The inbox's own actions take JSON only (a cross-site form cannot send it). The API
      // proxy passes requests on as they are: it adds no credentials of its own.
      if (
        request.method === "POST" && !url.pathname.startsWith("/api/proxy/") &&
        !request.headers.get("content-type")?.startsWith("application/json")
      ) {
        return _problem(415, "send application/json");
      }
      try {
        return await route(request, url);
      } catch (error) {
        return _problem(500, (error as Error).message);
      }
    },
  );

  const route = async (request: Request, url: URL): Promise<Response> => {
    const path = url.pathname;
    if (request.method === "GET" && PAGES[path]) {
      return _file(new URL(PAGES[path], STATIC));
    }
    const vendor = path.match(/^\/vendor\/swagger-ui\/([\w.-]+)$/);
    if (request.method === "GET" && vendor && SWAGGER_FILES.includes(vendor[1])) {
      const file = `${stack.root}/node_modules/swagger-ui-dist/${vendor[1]}`;
      if (!(await Deno.stat(file).catch(() => undefined))) {
        return _problem(503, "swagger-ui-dist is not installed: run npm install");
      }
      return _file(new URL(`file://${file}`));
    }
    const reference = path.match(/^\/reference\/(\w+)\.json$/);
    if (request.method === "GET" && reference && DOCUMENTED.includes(reference[1])) {
      // The function's own document, pointed at this origin's proxy for "try it".
      const response = await fetch(
        `http://127.0.0.1:${stack.ports.edge}/functions/v1/${reference[1]}/openapi.json`,
      );
      if (!response.ok) return _problem(502, `${reference[1]} answered ${response.status}`);
      const document = await response.json();
      document.servers = [{
        url: "/api/proxy/functions/v1",
        description: "the local stack, through Kong",
      }];
      return Response.json(document, { headers: { "cache-control": "no-store" } });
    }
    if (path.startsWith("/api/proxy/functions/v1/")) return await proxy(request, url);
    if (request.method === "GET" && path === "/api/items") {
      return Response.json({ items: [...items].reverse(), last: arrived });
    }
    if (request.method === "GET" && path === "/api/events") {
      // From where the page's list ends (`after`), or where a dropped stream ended (the
      // browser's Last-Event-ID): nothing that arrived in between is missed.
      const after = request.headers.get("last-event-id") ?? url.searchParams.get("after");
      if (after !== null && !/^\d{1,15}$/.test(after)) {
        return _problem(400, "after (or Last-Event-ID) must be an item number");
      }
      return events(after === null ? arrived : Number(after));
    }
    const delivery = path.match(/^\/api\/items\/((?:push|email|webhook)-\d+)\/delivery$/);
    if (request.method === "GET" && delivery) {
      const item = items.find((i) => i.id === delivery[1]);
      if (!item) return _problem(404, `no item ${delivery[1]}`);
      return Response.json(await deliveryOf(item));
    }
    const control = path.match(/^\/api\/control\/(fcm|email|webhook)$/);
    if (request.method === "POST" && control) {
      return await controlFake(control[1] as FakeName, await request.json().catch(() => undefined));
    }
    if (request.method === "POST" && path === "/api/replay") return await replay();
    return _problem(404, `nothing at ${request.method} ${path}`);
  };

  /**
   * "Try it" from the reference: the request, with only API headers, to the
   * local Kong (an `apikey` added when absent, as supabase-js sends one).
   */
  const proxy = async (request: Request, url: URL): Promise<Response> => {
    const headers = new Headers();
    for (const name of FORWARDED) {
      const value = request.headers.get(name);
      if (value) headers.set(name, value);
    }
    if (!headers.has("apikey")) headers.set("apikey", stack.anonKey);
    const target = `${stack.apiUrl}${url.pathname.replace(/^\/api\/proxy/, "")}${url.search}`;
    const answer = await fetch(target, {
      method: request.method,
      headers,
      body: ["GET", "HEAD"].includes(request.method) ? undefined : await request.arrayBuffer(),
      redirect: "manual",
    });
    const out = new Headers();
    for (
      const name of ["content-type", "retry-after", "location", "x-request-id", "x-herald-instance"]
    ) {
      const value = answer.headers.get(name);
      if (value) out.set(name, value);
    }
    return new Response(answer.body, { status: answer.status, headers: out });
  };

  /**
   * Server-sent events: the items after item `after` (each with its number as the event id),
   * then every new item as it arrives, and resets.
   */
  const events = (after: number) => {
    let send: (event: string, data: unknown, id?: number) => void = () => {};
    let keepAlive: ReturnType<typeof setInterval> | undefined;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        const encoder = new TextEncoder();
        send = (event, data, id) => {
          try {
            controller.enqueue(encoder.encode(
              `${id === undefined ? "" : `id: ${id}\n`}event: ${event}\ndata: ${
                JSON.stringify(data)
              }\n\n`,
            ));
          } catch {
            listeners.delete(send);
          }
        };
        controller.enqueue(encoder.encode(": herald inbox\nretry: 1000\n\n"));
        if (after > arrived) {
          // Numbers this inbox never gave: it was restarted. The page starts over.
          for (const kind of ["push", "email", "webhook"]) send("reset", { kind });
          after = 0;
        }
        // Replayed and subscribed in one turn of the event loop: no item falls between.
        for (const item of items) if (item.n > after) send("item", item, item.n);
        listeners.add(send);
        keepAlive = setInterval(() => send("ping", {}), 15_000);
      },
      cancel() {
        listeners.delete(send);
        clearInterval(keepAlive);
      },
    });
    return new Response(stream, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-store" },
    });
  };

  /** The item's delivery in Herald, its attempts, and for a webhook whether its signature verifies. */
  const deliveryOf = async (item: Item) => {
    let id: string | undefined;
    let matchedBy = "delivery id";
    if (item.kind === "push") {
      // FCM messages carry no delivery id: the attempt to this token nearest in time.
      const [row] = await sql`select a.delivery_id from herald.delivery_attempts a
        join herald.deliveries d on d.id = a.delivery_id
        where d.target = ${item.to} and a.at between ${item.at}::timestamptz - interval '30 seconds'
                                                 and ${item.at}::timestamptz + interval '30 seconds'
        order by abs(extract(epoch from a.at - ${item.at}::timestamptz)) limit 1`;
      id = row?.delivery_id;
      matchedBy = "device token and time";
    } else {
      id = item.deliveryId;
    }
    if (!id || !/^[0-9a-f-]{36}$/.test(id)) return { found: false, matched_by: matchedBy };
    const [d] = await sql`select d.id, d.channel, d.status, d.attempts, d.last_error,
        d.provider_message_id, d.notification_id, n.request_id, n.title
      from herald.deliveries d join herald.notifications n on n.id = d.notification_id
      where d.id = ${id}`;
    if (!d) return { found: false, matched_by: matchedBy };
    const attempts = await sql`select attempt, outcome, status_code, error_code, error, latency_ms,
        to_char(at at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as at
      from herald.delivery_attempts where delivery_id = ${id} order by attempt, id`;
    return {
      found: true,
      matched_by: matchedBy,
      delivery: { ...d },
      status_url: `/functions/v1/notify/notifications/${d.notification_id}`,
      attempts: [...attempts],
      signature: item.kind === "webhook"
        ? await signatureOf(item.headers, item.body, id)
        : undefined,
    };
  };

  /** Verifies a Standard Webhooks signature against the endpoint's current (and previous) secret. */
  const signatureOf = async (headers: Record<string, string>, body: string, deliveryId: string) => {
    const [e] = await sql`select e.secret, e.previous_secret,
        e.previous_secret_expires_at > now() as previous_live
      from herald.deliveries d join herald.webhook_endpoints e on e.id = d.webhook_endpoint_id
      where d.id = ${deliveryId}`;
    if (!e) return { verdict: "unknown", reason: "the endpoint no longer exists" };
    const signed = await verifyStandardWebhook(headers, body, e.secret);
    if (signed) return { verdict: "valid", reason: "signed with the endpoint's current secret" };
    if (e.previous_secret && await verifyStandardWebhook(headers, body, e.previous_secret)) {
      return {
        verdict: e.previous_live ? "valid" : "invalid",
        reason: e.previous_live
          ? "signed with the previous secret, still valid during the rotation"
          : "signed with a previous secret that has expired",
      };
    }
    return { verdict: "invalid", reason: "no signature matches the endpoint's secrets" };
  };

  const controlFake = async (fake: FakeName, body: unknown): Promise<Response> => {
    const b = (body ?? {}) as Record<string, unknown>;
    const behaviour = _behaviour(fake, b);
    if (typeof behaviour === "string") return _problem(422, behaviour);
    const response = await fetch(`${stack.fakes[fake]}/_control/behaviour`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(behaviour),
    });
    if (!response.ok) {
      return _problem(502, `the ${fake} stand-in refused: ${await response.text()}`);
    }
    await response.body?.cancel();
    return Response.json({ fake, mode: b.mode, behaviour });
  };

  const replay = async (): Promise<Response> => {
    const response = await fetch(`${stack.apiUrl}/functions/v1/dispatch/dead-letters/replay`, {
      method: "POST",
      headers: {
        apikey: stack.serviceRoleKey,
        authorization: `Bearer ${stack.serviceRoleKey}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ all: true }),
    });
    const answer = await response.json().catch(() => ({}));
    return Response.json(answer, { status: response.status });
  };

  return {
    url: `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`,
    async close() {
      polling = false;
      await loop;
      for (const listener of [...listeners]) listeners.delete(listener);
      await server.shutdown();
      await sql.end();
    },
  };
}

/** No script, style, image or frame from anywhere but here (e-mail HTML goes in a sandboxed srcdoc frame). */
const _CSP = {
  "content-security-policy": "default-src 'self'; img-src 'self' data: https: http:; " +
    "style-src 'self' 'unsafe-inline'; frame-src 'self' about:; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
};

/** A control-panel request as the stand-in's behaviour, or what is wrong with it. */
export function _behaviour(
  fake: FakeName,
  b: Record<string, unknown>,
): Record<string, unknown> | string {
  const seconds = (v: unknown) =>
    Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 3600;
  switch (b.mode) {
    case "normal":
      return { latency_ms: 0, responses: [], repeat_last: false };
    case "slow": {
      const ms = b.latency_ms;
      if (!Number.isInteger(ms) || (ms as number) < 1 || (ms as number) > 60_000) {
        return "latency_ms must be 1…60000";
      }
      return { latency_ms: ms, responses: [], repeat_last: false };
    }
    case "fail": {
      const status = b.status;
      if (!Number.isInteger(status) || (status as number) < 400 || (status as number) > 599) {
        return "status must be 400…599";
      }
      return {
        latency_ms: 0,
        responses: [{ status, body: { error: `the inbox made this stand-in answer ${status}` } }],
        repeat_last: true,
      };
    }
    case "fcm_error": {
      if (fake !== "fcm") return "fcm_error is for the FCM stand-in";
      if (typeof b.fcm_error !== "string" || !/^[A-Z_]{3,40}$/.test(b.fcm_error)) {
        return "fcm_error must be an FCM error code such as UNAVAILABLE";
      }
      return { latency_ms: 0, responses: [{ fcm_error: b.fcm_error }], repeat_last: true };
    }
    case "rate_limited": {
      if (!seconds(b.retry_after)) return "retry_after must be whole seconds 0…3600";
      return {
        latency_ms: 0,
        responses: [
          fake === "fcm" ? { fcm_error: "QUOTA_EXCEEDED", retry_after: b.retry_after } : {
            status: 429,
            headers: { "retry-after": String(b.retry_after) },
            body: { error: "rate limited" },
          },
        ],
        repeat_last: true,
      };
    }
    default:
      return "mode must be normal, slow, fail, fcm_error or rate_limited";
  }
}

/**
 * Whether the webhook's signature verifies under `secret` (`whsec_<base64>`),
 * by the verifier the hooks function uses. No timestamp tolerance: "now" is
 * the message's own time, so the inbox shows old webhooks too.
 */
export async function verifyStandardWebhook(
  headers: Record<string, string>,
  body: string,
  secret: string,
): Promise<boolean> {
  const sent = Number(headers["webhook-timestamp"]) * 1000;
  const verifier = createStandardWebhookVerifier({ secrets: [secret], now: () => sent });
  return await verifier.verify(new Headers(headers), body).then(() => true, () => false);
}

async function _file(url: URL): Promise<Response> {
  const path = url.pathname;
  const type = path.endsWith(".js")
    ? "text/javascript"
    : path.endsWith(".css")
    ? "text/css"
    : "text/html";
  return new Response(await Deno.readFile(url), {
    headers: { "content-type": `${type}; charset=utf-8`, "cache-control": "no-store", ..._CSP },
  });
}

function _problem(status: number, detail: string): Response {
  return Response.json(
    { type: "about:blank", title: detail, status, detail },
    { status, headers: { "content-type": "application/problem+json" } },
  );
}

if (import.meta.main) {
  const { loadStackConfig } = await import("../config.ts");
  const stack = await loadStackConfig();
  const inbox = startInbox(stack);
  console.log(`inbox on ${inbox.url}`);
}
