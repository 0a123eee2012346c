/**
 * Kong's cors plugin: CORS, preflights answered by Kong, as Kong 3.9.3 does it
 * (`kong/plugins/cors/handler.lua` (PRIORITY 2000);
 * kong/schema/kong-3.9-behaviour.md, section 5).
 *
 * @module
 */
import { type Exchange, type Factory, list, SERVER } from "./plugin.ts";

export const cors: Factory = (c) => {
  const origins = list(c.origins);
  const wildcard = origins.length === 0 || (origins.length === 1 && origins[0] === "*");
  if (!wildcard) {
    throw new Error('cors: origins other than ["*"] are not implemented by the local Kong');
  }
  const origin = (x: Exchange, headers: Headers) => {
    if (c.credentials && x.request.headers.get("origin")) {
      headers.set("access-control-allow-origin", x.request.headers.get("origin")!);
      headers.set("access-control-allow-credentials", "true");
      headers.append("vary", "Origin");
    } else headers.set("access-control-allow-origin", "*");
  };
  return {
    access(x) {
      const r = x.request;
      const preflight = r.method === "OPTIONS" && r.headers.has("origin") &&
        r.headers.has("access-control-request-method");
      if (!preflight || c.preflight_continue) return undefined;
      const headers = new Headers({ "content-length": "0", server: SERVER });
      origin(x, headers);
      const allowHeaders = c.headers
        ? list(c.headers).join(",")
        : r.headers.get("access-control-request-headers");
      if (allowHeaders) headers.set("access-control-allow-headers", allowHeaders);
      headers.set("access-control-allow-methods", list(c.methods).join(","));
      if (c.max_age !== undefined && c.max_age !== null) {
        headers.set("access-control-max-age", String(c.max_age));
      }
      return new Response(null, { status: 200, headers });
    },
    headerFilter(x, headers) {
      const r = x.request;
      const preflight = r.method === "OPTIONS" && r.headers.has("origin") &&
        r.headers.has("access-control-request-method");
      if (preflight) return;
      origin(x, headers);
      if (c.exposed_headers) {
        headers.set("access-control-expose-headers", list(c.exposed_headers).join(","));
      }
    },
  };
};
