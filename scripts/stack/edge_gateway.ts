/**
 * The local edge runtime's front door, standing in for Supabase's: behind the
 * local Kong, `/<name>/…` (as Kong sends it; `/functions/v1/<name>/…` too)
 * reaches that function's own process with the path `/<name>/…`, after the
 * `verify_jwt` check Supabase makes (HS256 with the project secret, or
 * ES256/RS256 against the project's JWKS, which this gateway also publishes
 * at `/auth/v1/.well-known/jwks.json`, standing in for Supabase Auth).
 *
 * @module
 */
import { createLocalJWKSet, decodeProtectedHeader, type JSONWebKeySet, jwtVerify } from "jose";
import { parse } from "smol-toml";
import { refuseOutsider } from "./internal_address.ts";

/** Methods fetch refuses to send (WHATWG Fetch: forbidden methods). */
const FORBIDDEN_METHODS = new Set(["CONNECT", "TRACE", "TRACK"]);

/** A function the gateway routes to. */
export interface RoutedFunction {
  name: string;
  port: number;
  verifyJwt: boolean;
}

/**
 * A request as the front door needs it: its headers are the door's to change,
 * and the body is read (bodies here are small: Kong stops those over 1 MiB).
 * The local Kong hands these over in-process, without building a Request.
 */
export interface EdgeRequest {
  method: string;
  url: URL;
  headers: Headers;
  body?: Uint8Array<ArrayBuffer>;
}

/** Options for {@linkcode startGateway}. */
export interface GatewayOptions {
  port: number;
  functions: RoutedFunction[];
  jwtSecret: string;
  /** Public signing keys published at the JWKS endpoint and used to verify. */
  jwks: JSONWebKeySet;
}

const HOP_BY_HOP = ["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection"];

/** Reads each function folder and its `verify_jwt` (default true) from supabase/config.toml. */
export async function discoverFunctions(
  root: string,
  firstPort: number,
): Promise<RoutedFunction[]> {
  const config = parse(await Deno.readTextFile(`${root}/supabase/config.toml`)) as {
    functions?: Record<string, { verify_jwt?: boolean }>;
  };
  const names: string[] = [];
  for await (const entry of Deno.readDir(`${root}/supabase/functions`)) {
    if (entry.isDirectory && !entry.name.startsWith("_")) names.push(entry.name);
  }
  return names.sort().map((name, i) => ({
    name,
    port: firstPort + i,
    verifyJwt: config.functions?.[name]?.verify_jwt ?? true,
  }));
}

/** Serves the gateway until `close()`. */
export function startGateway(
  options: GatewayOptions,
): { route: (request: EdgeRequest) => Promise<Response>; close(): Promise<void> } {
  const byName = new Map(options.functions.map((f) => [f.name, f]));
  const secret = new TextEncoder().encode(options.jwtSecret);
  const keys = createLocalJWKSet(options.jwks);
  const verify = async (token: string) => {
    const { alg } = decodeProtectedHeader(token);
    // Like the platform's check: a token without an expiry is refused.
    if (alg === "HS256") {
      await jwtVerify(token, secret, { algorithms: ["HS256"], requiredClaims: ["exp"] });
    } else {await jwtVerify(token, keys, {
        algorithms: ["ES256", "RS256"],
        requiredClaims: ["exp"],
      });}
  };

  const route = async (request: EdgeRequest): Promise<Response> => {
    const url = request.url;
    if (url.pathname === "/auth/v1/.well-known/jwks.json") {
      return Response.json(options.jwks, { headers: { "cache-control": "public, max-age=600" } });
    }
    const match = url.pathname.match(/^(?:\/functions\/v1)?\/([^/]+)(\/.*)?$/);
    const fn = match && byName.get(match[1]);
    if (!fn) {
      return Response.json({ code: "NOT_FOUND", message: "Requested function was not found" }, {
        status: 404,
      });
    }
    if (fn.verifyJwt && request.method !== "OPTIONS") {
      const token = request.headers.get("authorization")?.match(/^Bearer\s+(\S+)$/i)?.[1];
      if (!token) {
        return Response.json({
          code: "UNAUTHORIZED_NO_AUTH_HEADER",
          message: "Missing authorization header",
        }, { status: 401 });
      }
      try {
        await verify(token);
      } catch {
        return Response.json({ code: "UNAUTHORIZED_INVALID_JWT_FORMAT", message: "Invalid JWT" }, {
          status: 401,
        });
      }
    }
    if (FORBIDDEN_METHODS.has(request.method.toUpperCase())) {
      // fetch cannot send these (WHATWG's forbidden methods): say so, as a
      // problem, rather than call it a failed start.
      return new Response(
        JSON.stringify({
          type: "https://herald.dev/problems/method-not-allowed",
          title: "Method Not Allowed",
          status: 405,
          detail: `${request.method} cannot be forwarded to a function (fetch refuses it).`,
        }),
        { status: 405, headers: { "content-type": "application/problem+json" } },
      );
    }
    const headers = request.headers;
    for (const name of HOP_BY_HOP) headers.delete(name);
    try {
      const upstream = await fetch(
        `http://127.0.0.1:${fn.port}/${fn.name}${match[2] ?? ""}${url.search}`,
        {
          method: request.method,
          headers,
          body: request.body,
          redirect: "manual",
        },
      );
      return new Response(upstream.body, { status: upstream.status, headers: upstream.headers });
    } catch {
      return Response.json({
        code: "BOOT_ERROR",
        message: "Function failed to start (please check logs)",
      }, { status: 503 });
    }
  };
  const server = Deno.serve(
    { port: options.port, hostname: "127.0.0.1", onListen: () => {} },
    async (request, info) =>
      refuseOutsider(info) ?? route({
        method: request.method,
        url: new URL(request.url),
        headers: new Headers(request.headers),
        body: request.body ? new Uint8Array(await request.arrayBuffer()) : undefined,
      }),
  );
  return { route, close: () => server.shutdown() };
}
