/**
 * Who is calling: a signed-in user, or a trusted service (service-role key).
 *
 * @module
 */
import { Problem } from "../http/problem.ts";
import { constantTimeEqual } from "./constant_time.ts";
import { type Claims, InvalidToken, type JwtVerifier } from "./jwt.ts";

/** The authenticated party of a request. */
export type Caller =
  | { kind: "user"; userId: string; claims: Claims }
  | { kind: "service"; claims: Claims };

/** Options for {@linkcode createCallerResolver}. */
export interface CallerResolverOptions {
  verify: JwtVerifier;
  /** The project's service-role key, accepted verbatim (compared in constant time). */
  serviceRoleKey: string;
}

/**
 * Resolves the caller from `Authorization: Bearer …`.
 *
 * @throws {Problem} 401 when the token is missing or invalid; 403 for the anon key
 */
export function createCallerResolver(options: CallerResolverOptions) {
  return async (headers: Headers): Promise<Caller> => {
    const token = bearerToken(headers.get("authorization"));
    if (!token) {
      throw new Problem(401, "unauthenticated", "Send 'Authorization: Bearer <access token>'.");
    }
    let claims: Claims;
    try {
      claims = await options.verify(token);
    } catch (error) {
      if (!(error instanceof InvalidToken)) throw error;
      if (constantTimeEqual(token, options.serviceRoleKey)) {
        return { kind: "service", claims: { role: "service_role" } };
      }
      throw new Problem(401, "invalid-token", `The access token was refused: ${error.message}.`);
    }
    if (claims.role === "service_role") return { kind: "service", claims };
    if (claims.role === "authenticated" && typeof claims.sub === "string" && claims.sub) {
      return { kind: "user", userId: claims.sub, claims };
    }
    throw new Problem(
      403,
      "sign-in-required",
      "This endpoint needs a signed-in user's token or the service-role key, not the anon key.",
    );
  };
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

/** The token of an `Authorization: Bearer <token>` header, if that is what it holds. */
export function bearerToken(authorization: string | null | undefined): string | undefined {
  return authorization?.match(/^Bearer\s+(\S+)$/i)?.[1];
}
