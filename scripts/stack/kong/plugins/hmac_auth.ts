/**
 * Kong's hmac-auth plugin: HMAC-signed requests (draft-cavage HTTP
 * signatures), as Kong 3.9.3 does it (`kong/plugins/hmac-auth/access.lua`
 * (PRIORITY 1030); kong/schema/kong-3.9-behaviour.md, section 3).
 *
 * @module
 */
import {
  authenticating,
  type Exchange,
  type Factory,
  kongError,
  list,
  setConsumer,
} from "./plugin.ts";

export const hmacAuth: Factory = (c, context) => {
  const realm = c.realm ? `hmac realm="${c.realm}"` : "hmac";
  const fail = (x: Exchange, message: string) =>
    kongError(x, 401, message, { "www-authenticate": realm });
  const cannot = "HMAC signature cannot be verified";
  const authenticate = async (x: Exchange): Promise<Response | undefined> => {
    const h = x.request.headers;
    const authorization = h.get("proxy-authorization") ?? h.get("authorization");
    if (!h.has("authorization") && !h.has("proxy-authorization")) return fail(x, "Unauthorized");
    const skew = Number(c.clock_skew);
    const fresh = (value: string | null) => {
      const t = value ? Date.parse(value) : NaN;
      return Number.isFinite(t) && Math.abs(context.now() - t) <= skew * 1000;
    };
    if (!fresh(h.get("x-date")) && !fresh(h.get("date"))) {
      return fail(
        x,
        `${cannot}, a valid date or x-date header is required for HMAC Authentication`,
      );
    }
    if (c.hide_credentials) {
      x.upstream.delete(h.has("proxy-authorization") ? "proxy-authorization" : "authorization");
    }
    const m =
      /\s*[Hh]mac\s*username="(.+)",\s*algorithm="(.+)",\s*headers="(.+)",\s*signature="(.+)"/
        .exec(
          authorization ?? "",
        );
    if (!m) return fail(x, cannot);
    const [, username, algorithm, headerList, signature] = m;
    const names = headerList.split(" ");
    if (
      list(c.enforce_headers).some((e) => !names.includes(e)) ||
      !list(c.algorithms).includes(algorithm)
    ) {
      return fail(x, cannot);
    }
    const credential = context.hmacCredentials.get(username);
    if (!credential) return fail(x, cannot);
    const target = `${x.url.pathname}${x.url.search}`;
    const lines = names.map((name) => {
      // "@request-target" is no header name: Headers would throw on it.
      const value = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/.test(name) ? h.get(name) : null;
      if (value !== null) return `${name}: ${value}`;
      if (name === "@request-target") {
        return `@request-target: ${x.request.method.toLowerCase()} ${target}`;
      }
      if (name === "request-line") return `${x.request.method} ${target} HTTP/1.1`;
      return `${name}:`;
    });
    const hash = {
      "hmac-sha1": "SHA-1",
      "hmac-sha256": "SHA-256",
      "hmac-sha384": "SHA-384",
      "hmac-sha512": "SHA-512",
    }[algorithm];
    if (!hash) return fail(x, cannot);
    const key = await crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(credential.secret),
      { name: "HMAC", hash },
      false,
      ["sign"],
    );
    const expected = new Uint8Array(
      await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(lines.join("\n"))),
    );
    let given: Uint8Array<ArrayBuffer>;
    try {
      given = Uint8Array.from(atob(signature), (ch) => ch.charCodeAt(0));
    } catch {
      return fail(x, "HMAC signature does not match");
    }
    if (!_equal(expected, given)) return fail(x, "HMAC signature does not match");
    if (c.validate_request_body) {
      const body = await x.body();
      const digest = h.get("digest");
      if (
        digest === null ? body.length > 0 : digest !==
          `SHA-256=${_base64(new Uint8Array(await crypto.subtle.digest("SHA-256", body)))}`
      ) {
        return fail(x, "HMAC signature does not match");
      }
    }
    setConsumer(x, credential.consumer, { id: username, identifier: username });
    return undefined;
  };
  return { access: authenticating(c, context, authenticate) };
};

function _base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function _equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
