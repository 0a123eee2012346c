/**
 * Kong's jwt plugin: JWTs verified against a consumer's secret or public key,
 * as Kong 3.9.3 does it (`kong/plugins/jwt/handler.lua` and `jwt_parser.lua`
 * (PRIORITY 1450); kong/schema/kong-3.9-behaviour.md, section 2).
 *
 * @module
 */
import {
  authenticating,
  type Exchange,
  type Factory,
  type Json,
  kongExit,
  list,
  setConsumer,
} from "./plugin.ts";

/** Tokens whose signatures a jwt plugin remembers as checked. */
const VERIFIED_TOKENS = 10_000;

export const jwt: Factory = (c, context) => {
  const base = c.realm ? `Bearer realm="${c.realm}"` : "Bearer";
  const invalid = `${base} error="invalid_token"`;
  const claim = String(c.key_claim_name);
  const verified = new Map<string, { header: Json; claims: Json }>();
  const authenticate = async (x: Exchange): Promise<Response | undefined> => {
    const tokens = new Set<string>();
    for (const name of list(c.uri_param_names)) {
      for (const v of x.url.searchParams.getAll(name)) if (v) tokens.add(v);
    }
    const cookies = _cookies(x.request.headers.get("cookie"));
    for (const name of list(c.cookie_names)) if (cookies[name]) tokens.add(cookies[name]);
    for (const name of list(c.header_names)) {
      const m = /\s*[Bb]earer\s+(.+)/.exec(x.request.headers.get(name)?.split(", ")[0] ?? "");
      if (m) tokens.add(m[1]);
    }
    if (tokens.size === 0) {
      return kongExit(401, { message: "Unauthorized" }, { "www-authenticate": base });
    }
    if (tokens.size > 1) {
      return kongExit(401, { message: "Multiple tokens provided" }, {
        "www-authenticate": invalid,
      });
    }
    const token = [...tokens][0];
    // A token whose signature was checked before is not checked again; its claims are.
    const known = verified.get(token);
    const decoded = known ?? _decodeJwt(token);
    if (typeof decoded === "string") {
      return kongExit(401, { message: `Bad token; ${decoded}` }, { "www-authenticate": invalid });
    }
    const key = decoded.claims[claim] ?? decoded.header[claim];
    if (key === undefined) {
      return kongExit(401, { message: `No mandatory '${claim}' in claims` }, {
        "www-authenticate": invalid,
      });
    }
    if (key === "") {
      return kongExit(401, { message: `Invalid '${claim}' in claims` }, {
        "www-authenticate": invalid,
      });
    }
    const secret = context.jwtSecrets.get(String(key));
    if (!secret) {
      return kongExit(401, { message: `No credentials found for given '${claim}'` }, {
        "www-authenticate": invalid,
      });
    }
    if (decoded.header.alg !== secret.algorithm) {
      return kongExit(401, { message: "Invalid algorithm" }, { "www-authenticate": invalid });
    }
    if (!known && !(await _verifySignature(token, secret))) {
      return kongExit(401, { message: "Invalid signature" }, { "www-authenticate": invalid });
    }
    if (!known) {
      // Bounded: forgetting all is cheaper than tracking age, and only costs re-verifying.
      if (verified.size >= VERIFIED_TOKENS) verified.clear();
      verified.set(token, decoded);
    }
    const now = context.now() / 1000;
    const errors: Record<string, string> = {};
    for (const name of list(c.claims_to_verify)) {
      const value = decoded.claims[name];
      if (typeof value !== "number") errors[name] = "must be a number";
      else if (name === "exp" && value <= now) errors.exp = "token expired";
      else if (name === "nbf" && value > now) errors.nbf = "token not valid yet";
    }
    if (Object.keys(errors).length) return kongExit(401, errors, { "www-authenticate": invalid });
    const maximum = Number(c.maximum_expiration ?? 0);
    if (maximum > 0) {
      const exp = decoded.claims.exp as number | undefined;
      if (exp === undefined || exp - now > maximum) {
        return kongExit(401, { exp: "exceeds maximum allowed expiration" }, {
          "www-authenticate": invalid,
        });
      }
    }
    setConsumer(x, secret.consumer, { id: String(key), identifier: String(key) });
    return undefined;
  };
  return { access: authenticating(c, context, authenticate) };
};

function _cookies(header: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

/** jwt_parser.lua's decode, with its error strings. */
function _decodeJwt(token: string): { header: Json; claims: Json } | string {
  const parts = token.split(".");
  if (parts.length !== 3) return "invalid JSON";
  const json = (segment: string) => {
    try {
      return JSON.parse(new TextDecoder().decode(_fromBase64Url(segment)));
    } catch {
      return undefined;
    }
  };
  const header = json(parts[0]);
  const claims = json(parts[1]);
  if (typeof header !== "object" || header === null || claims === undefined) return "invalid JSON";
  const supported = [
    "HS256",
    "HS384",
    "HS512",
    "RS256",
    "RS384",
    "RS512",
    "ES256",
    "ES384",
    "ES512",
    "PS256",
    "PS384",
    "PS512",
    "EdDSA",
  ];
  if (typeof header.alg !== "string" || !supported.includes(header.alg)) return "invalid alg";
  if (claims === null) return "invalid claims";
  try {
    _fromBase64Url(parts[2]);
  } catch {
    return "invalid signature";
  }
  return { header, claims };
}

async function _verifySignature(
  token: string,
  secret: { algorithm: string; secret?: string; publicKey?: string },
): Promise<boolean> {
  const [h, p, s] = token.split(".");
  const data = new TextEncoder().encode(`${h}.${p}`);
  const signature = _fromBase64Url(s);
  const alg = secret.algorithm;
  const bits = alg.slice(2);
  if (alg.startsWith("HS")) {
    const key = await crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(secret.secret ?? ""),
      { name: "HMAC", hash: `SHA-${bits}` },
      false,
      ["verify"],
    );
    return await crypto.subtle.verify("HMAC", key, signature, data);
  }
  const der = _fromBase64(
    (secret.publicKey ?? "").replace(/-----(BEGIN|END) PUBLIC KEY-----/g, "").replace(/\s+/g, ""),
  );
  const params = alg.startsWith("ES")
    ? {
      import: { name: "ECDSA", namedCurve: `P-${bits === "512" ? "521" : bits}` },
      verify: { name: "ECDSA", hash: `SHA-${bits}` },
    }
    : alg.startsWith("PS")
    ? {
      import: { name: "RSA-PSS", hash: `SHA-${bits}` },
      verify: { name: "RSA-PSS", saltLength: Number(bits) / 8 },
    }
    : {
      import: { name: "RSASSA-PKCS1-v1_5", hash: `SHA-${bits}` },
      verify: { name: "RSASSA-PKCS1-v1_5" },
    };
  try {
    const key = await crypto.subtle.importKey("spki", der, params.import, false, ["verify"]);
    return await crypto.subtle.verify(params.verify, key, signature, data);
  } catch {
    return false;
  }
}

function _fromBase64Url(segment: string): Uint8Array<ArrayBuffer> {
  if (!/^[A-Za-z0-9_-]*$/.test(segment)) throw new Error("not base64url");
  return _fromBase64(segment.replace(/-/g, "+").replace(/_/g, "/"));
}

function _fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text + "=".repeat((4 - (text.length % 4)) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
