/**
 * Which id a request is known by: Kong's own when Kong sent it, else a sane
 * caller's id, else a W3C trace id, else a fresh UUID; never anything
 * unbounded or unsafe.
 */
import assert from "node:assert/strict";
import { requestIdOf } from "../supabase/functions/_shared/http/request_id.ts";

const KONG_ID = "5c0a7d1e9b3f4a6c8d2e1f0a9b8c7d6e";
const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const fresh = () => "fresh-uuid";

Deno.test("request id: the first acceptable of Kong's id, the caller's, a trace id, a fresh one", () => {
  const cases: [Record<string, string>, string][] = [
    [{ "x-kong-request-id": KONG_ID, "x-request-id": "mine-1" }, KONG_ID],
    [{ "x-kong-request-id": KONG_ID, "x-request-id": "<script>" }, KONG_ID],
    [{ "x-kong-request-id": KONG_ID.toUpperCase(), "x-request-id": "mine-1" }, "mine-1"],
    [{ "x-kong-request-id": `${KONG_ID}00`, "x-request-id": "mine-1" }, "mine-1"],
    [{ "x-kong-request-id": "<b>", "x-request-id": "mine-1" }, "mine-1"],
    [{ "x-request-id": "mine-1" }, "mine-1"],
    [{ "x-request-id": "x".repeat(129), traceparent: `00-${TRACE}-00f067aa0ba902b7-01` }, TRACE],
    [{ "x-request-id": "<script>alert(1)</script>" }, "fresh-uuid"],
    [{ traceparent: `00-${"0".repeat(32)}-00f067aa0ba902b7-01` }, "fresh-uuid"],
    [{}, "fresh-uuid"],
  ];
  for (const [headers, expected] of cases) {
    assert.equal(requestIdOf(new Headers(headers), fresh), expected, JSON.stringify(headers));
  }
});
