/**
 * A customer's webhook endpoint: takes any method and path, answers 204
 * unless the behaviour queue says otherwise (any status and headers, e.g. a
 * 410, a 503 with `Retry-After`, a 302 with `Location`). What arrived — raw
 * body included — is in `GET /_control/requests`.
 *
 * Per-path behaviour, for several customers' endpoints on one host:
 * `POST /_control/paths {"prefix": "/acme", "status"?: 500, "latency_ms"?: 12000}`
 * makes every request whose path starts with `prefix` wait and answer so
 * (the queue is not consumed); `{"prefix": "/acme"}` alone clears it.
 *
 * @module
 */
import { type FakeControl, type FakeHandler, scriptedResponse } from "./control.ts";

/** How requests under one path prefix are answered. */
interface PathRule {
  status?: number;
  latencyMs?: number;
}

/** Handles every request to the receiver, with per-path rules set through `control`. */
export function webhookReceiverHandler(control?: FakeControl): FakeHandler {
  const rules = new Map<string, PathRule>();
  if (control) {
    const reset = control.onReset;
    control.onReset = () => {
      reset();
      rules.clear();
    };
    control.routes.set("POST /_control/paths", async (request) => {
      const body = await request.json().catch(() => undefined);
      const prefix = body?.prefix;
      if (typeof prefix !== "string" || !prefix.startsWith("/")) {
        return Response.json({ error: "prefix must be a path starting with /" }, { status: 400 });
      }
      const status = body.status;
      const latencyMs = body.latency_ms;
      if (status !== undefined && !(Number.isInteger(status) && status >= 200 && status <= 599)) {
        return Response.json({ error: "status must be an integer in 200..599" }, { status: 400 });
      }
      if (latencyMs !== undefined && !(Number.isInteger(latencyMs) && latencyMs >= 0)) {
        return Response.json({ error: "latency_ms must be a non-negative integer" }, {
          status: 400,
        });
      }
      if (status === undefined && latencyMs === undefined) rules.delete(prefix);
      else rules.set(prefix, { status, latencyMs });
      return new Response(null, { status: 204 });
    });
  }
  return async (req, scripted) => {
    const rule = [...rules].find(([prefix]) => req.url.pathname.startsWith(prefix))?.[1];
    if (rule) {
      if (rule.latencyMs) await new Promise((resolve) => setTimeout(resolve, rule.latencyMs));
      return new Response(null, { status: rule.status ?? 204 });
    }
    return scripted ? scriptedResponse(scripted) : new Response(null, { status: 204 });
  };
}
