/**
 * Who is calling: a signed-in user, or a trusted service (service-role key).
 *
 * @module
 */
import { Problem } from "../http/problem.ts";
import { equalsAnyKey } from "./constant_time.ts";
import { type Claims, InvalidToken, type JwtVerifier, KeysUnavailable } from "./jwt.ts";

/** The authenticated party of a request. */
export type Caller =
  | { kind: "user"; userId: string; claims: Claims }
  | { kind: "service"; claims: Claims };

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
 * user's request); a secret key makes the caller the service wherever it is.
 *
 * @throws {Problem} 401 when no credential is valid; 403 for the anon or a
 *   publishable key alone; 503 when the signing keys cannot be fetched
 */
export function createCallerResolver(options: CallerResolverOptions) {
  const publicKeys = options.publicKeys ?? [];
  const service: Caller = { kind: "service", claims: { role: "service_role" } };
  return async (headers: Headers): Promise<Caller> => {
    const bearer = bearerToken(headers.get("authorization"));
    const apiKey = _apiKey(headers);
    if (!bearer && !apiKey) {
      throw new Problem(
        401,
        "unauthenticated",
        "Send 'Authorization: Bearer <access token>' or an API key in 'apikey'.",
      );
    }
    let refused: string | undefined;
    if (bearer && _isJwt(bearer)) {
      try {
        const claims = await options.verify(bearer);
        const user = _user(claims);
        if (user) return user;
        if (claims.role === "service_role") return { kind: "service", claims };
        if (claims.role === "authenticated") {
          refused = "a user's token must name the user (sub) and the audience 'authenticated'";
        }
      } catch (error) {
        if (error instanceof KeysUnavailable) {
          throw new Problem(503, "keys-unavailable", error.message, [], {
            "retry-after": String(error.retryAfterS),
          });
        }
        if (!(error instanceof InvalidToken)) throw error;
        // A legacy service-role key this project cannot verify (no HS256 secret) is still a key.
        if (equalsAnyKey(bearer, options.serviceKeys)) return service;
        refused = error.message;
      }
    }
    // Keys: in `apikey` / `sb-api-key`, or (the legacy way) a bearer that is not a JWT.
    const keys = [apiKey, bearer && !_isJwt(bearer) ? bearer : undefined]
      .filter((k): k is string => Boolean(k));
    if (keys.some((key) => equalsAnyKey(key, options.serviceKeys))) return service;
    if (refused) {
      throw new Problem(401, "invalid-token", `The access token was refused: ${refused}.`);
    }
    // An `sb_…` key we do not know is refused; legacy keys in apikey are only ever read from Authorization.
    if (
      keys.some((key) =>
        !equalsAnyKey(key, publicKeys) && (key === bearer || key.startsWith("sb_"))
      )
    ) {
      throw new Problem(401, "invalid-token", "The API key is not one of this project's.");
    }
    throw new Problem(
      403,
      "sign-in-required",
      "This endpoint needs a signed-in user's token or a secret (service-role) key, not a publishable (anon) key.",
    );
  };
}

/** The user a verified token names: role `authenticated`, a `sub`, and the audience `authenticated`. */
function _user(claims: Claims): Caller | undefined {
  const audience = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (
    claims.role === "authenticated" && typeof claims.sub === "string" && claims.sub &&
    audience.includes("authenticated")
  ) {
    return { kind: "user", userId: claims.sub, claims };
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
