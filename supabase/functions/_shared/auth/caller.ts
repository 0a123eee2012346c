/**
 * Who is calling: a signed-in user, or a trusted service (service-role key).
 *
 * @module
 */
import { Uuid } from "../db/uuid.ts";
import { Problem } from "../http/problem.ts";
import { sha256Hex } from "./caller_scope.ts";
import { equalsAnyKey, matchingKey } from "./constant_time.ts";
import { type Claims, InvalidToken, type JwtVerifier, KeysUnavailable } from "./jwt.ts";

/**
 * The authenticated party of a request. A service carries `keyId`: which of
 * the project's service credentials it presented (the first 16 hex digits of
 * the SHA-256 of that configured key, or `jwt` for a signed service-role
 * token that is not one of them), so per-caller state has a fixed set of
 * names that no header can multiply.
 */
export type Caller =
  | { kind: "user"; userId: string; claims: Claims }
  | { kind: "service"; keyId: string; claims: Claims };

/** Options for {@linkcode createCallerResolver}. */
export interface CallerResolverOptions {
  verify: JwtVerifier;
  /**
   * Keys that make the caller the service, accepted verbatim (compared in
   * constant time): the legacy service-role key and secret keys (`sb_secret_…`).
   */
  serviceKeys: string[];
  /** Keys that name the project but no user: publishable keys and the legacy anon key. */
  publicKeys?: string[];
}

/**
 * Resolves the caller as the platform sends credentials: a user's access
 * token in `Authorization: Bearer …`, an API key in `apikey` (or
 * `sb-api-key`), or a legacy key in `Authorization`. A valid user token wins
 * over a key sent beside it (supabase-js sends the publishable key with every
 * user's request). An `Authorization` header that is present decides alone,
 * as PostgREST takes the role from it: a refused token there is a 401 and
 * the anon or a publishable key there is anonymous (403), whatever key is
 * sent beside it, so a backend that forwards its caller's Authorization and
 * adds its own secret key never acts as the service. The API key decides
 * only when there is no `Authorization`; an `sb_…` key that is not this
 * project's is a 401 wherever it is.
 *
 * @throws {Problem} 401 when a credential presented is refused or none is
 *   sent; 403 for the anon or a publishable key alone; 503 when the signing
 *   keys cannot be fetched
 * @example
 * ```ts
 * const resolveCaller = createCallerResolver({ verify, serviceKeys: [secretKey] });
 * const caller = await resolveCaller(request.headers); // { kind: "user", userId, … }
 * ```
 */
export function createCallerResolver(options: CallerResolverOptions) {
  const publicKeys = options.publicKeys ?? [];
  const keyIds = Promise.all(
    options.serviceKeys.map(async (key) => (await sha256Hex(key)).slice(0, 16)),
  );
  const service = async (key: string, claims: Claims = { role: "service_role" }) => {
    const index = matchingKey(key, options.serviceKeys);
    if (index < 0) return undefined;
    return { kind: "service", keyId: (await keyIds)[index], claims } as Caller;
  };
  const notOurs = () =>
    new Problem(401, "invalid-token", "The API key is not one of this project's.");

  return async (headers: Headers): Promise<Caller> => {
    const authorization = headers.get("authorization")?.trim();
    const apiKey = _apiKey(headers);
    if (!authorization && !apiKey) {
      throw new Problem(
        401,
        "unauthenticated",
        "Send 'Authorization: Bearer <access token>' or an API key in 'apikey'.",
      );
    }
    // Each credential is judged on its own: an `sb_…` key we do not know is refused even
    // beside a valid token (a legacy key in apikey only names the project: unchecked).
    for (const key of [headers.get("apikey")?.trim(), headers.get("sb-api-key")?.trim()]) {
      if (
        key?.startsWith("sb_") && !equalsAnyKey(key, options.serviceKeys) &&
        !equalsAnyKey(key, publicKeys)
      ) throw notOurs();
    }
    if (authorization) {
      const bearer = bearerToken(authorization);
      if (!bearer) {
        throw new Problem(
          401,
          "invalid-token",
          "The Authorization header must be 'Bearer <token>'.",
        );
      }
      if (_isJwt(bearer)) {
        const caller = await _tokenCaller(bearer, options.verify, service);
        if (caller) return caller;
      } else {
        const caller = await service(bearer);
        if (caller) return caller;
        if (!equalsAnyKey(bearer, publicKeys)) throw notOurs();
      }
    }
    // Present, valid and naming no one (the anon or a publishable key): the caller is anonymous,
    // whatever key is beside it, as PostgREST takes the role from Authorization.
    if (!authorization && apiKey) {
      const caller = await service(apiKey);
      if (caller) return caller;
    }
    throw new Problem(
      403,
      "sign-in-required",
      "This endpoint needs a signed-in user's token or a secret (service-role) key, not a publishable (anon) key.",
    );
  };
}

/**
 * The caller a JWT in `Authorization` names: a user, the service, or no one
 * (a valid anon key).
 *
 * @throws {Problem} 401 when the token is refused; 503 when the keys cannot be fetched
 */
async function _tokenCaller(
  token: string,
  verify: JwtVerifier,
  service: (key: string, claims?: Claims) => Promise<Caller | undefined>,
): Promise<Caller | undefined> {
  let claims: Claims;
  try {
    claims = await verify(token);
  } catch (error) {
    if (error instanceof KeysUnavailable) {
      throw new Problem(503, "keys-unavailable", error.message, [], {
        "retry-after": String(error.retryAfterS),
      });
    }
    if (!(error instanceof InvalidToken)) throw error;
    // A legacy service-role key this project cannot verify (no HS256 secret) is still a key.
    const caller = await service(token);
    if (caller) return caller;
    throw new Problem(401, "invalid-token", `The access token was refused: ${error.message}.`);
  }
  const user = _user(claims);
  if (user) return user;
  if (claims.role === "service_role") {
    return await service(token, claims) ?? { kind: "service", keyId: "jwt", claims };
  }
  if (claims.role === "authenticated") {
    throw new Problem(
      401,
      "invalid-token",
      "The access token was refused: a user's token must name the user (sub, a UUID) and the audience 'authenticated'.",
    );
  }
  return undefined;
}

/**
 * The user a verified token names: role `authenticated`, a `sub` that is a
 * user id (a UUID: Supabase Auth's; anything else would reach SQL as one),
 * and the audience `authenticated`.
 */
function _user(claims: Claims): Caller | undefined {
  const audience = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  const sub = Uuid.safeParse(claims.sub);
  if (claims.role === "authenticated" && sub.success && audience.includes("authenticated")) {
    return { kind: "user", userId: sub.data, claims };
  }
  return undefined;
}

/** Three base64url segments: a compact JWT, as opposed to an `sb_…` key. */
function _isJwt(token: string): boolean {
  return /^[\w-]+\.[\w-]+\.[\w-]*$/.test(token);
}

/**
 * The caller, if a user.
 *
 * @throws {Problem} 403 for services, where only users make sense
 */
export function requireUser(caller: Caller, what: string): Extract<Caller, { kind: "user" }> {
  if (caller.kind !== "user") {
    throw new Problem(403, "user-required", `${what} belong to users: call with a user's token.`);
  }
  return caller;
}

/**
 * The caller, if a service.
 *
 * @throws {Problem} 403 for users
 */
export function requireService(caller: Caller, what: string): Caller {
  if (caller.kind !== "service") {
    throw new Problem(403, "service-required", `${what} needs the service-role key.`);
  }
  return caller;
}

/**
 * Every credential a request presents, where the platform puts them: the
 * bearer token, `apikey` and `sb-api-key`. For endpoints that take keys only.
 */
export function presentedCredentials(headers: Headers): string[] {
  return [
    bearerToken(headers.get("authorization")),
    headers.get("apikey")?.trim(),
    headers.get("sb-api-key")?.trim(),
  ].filter((c): c is string => Boolean(c));
}

/** The API key the platform sends: `apikey`, or `sb-api-key`. */
function _apiKey(headers: Headers): string | undefined {
  return headers.get("apikey")?.trim() || headers.get("sb-api-key")?.trim() || undefined;
}

/** The token of an `Authorization: Bearer <token>` header, if that is what it holds. */
export function bearerToken(authorization: string | null | undefined): string | undefined {
  return authorization?.match(/^Bearer\s+(\S+)$/i)?.[1];
}
