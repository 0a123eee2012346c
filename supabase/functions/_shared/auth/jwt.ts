/**
 * Verifies Supabase access tokens: HS256 with the project's legacy JWT secret,
 * ES256/RS256 with the project's published signing keys (JWKS, cached, new
 * `kid`s fetched on demand so key rotation needs no restart).
 *
 * @module
 */
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  type FlattenedJWSInput,
  type JWSHeaderParameters,
  type JWTPayload,
  jwtVerify,
} from "jose";

/** Claims Herald relies on. */
export interface Claims extends JWTPayload {
  role?: string;
  email?: string;
}

/** Options for {@linkcode createJwtVerifier}. */
export interface JwtVerifierOptions {
  /** Legacy HS256 secret; HS256 tokens are refused without it. */
  secret?: string;
  /** JWKS URL for asymmetric keys. */
  jwksUrl: string;
  /**
   * Least time between two JWKS fetches; a token with an unknown `kid` fetches
   * the set again once this has passed since the last fetch (key rotation).
   * @default 30_000
   */
  jwksCooldownMs?: number;
  /**
   * How long a failed JWKS fetch is remembered: tokens that need the keys
   * are answered "unavailable" at once meanwhile, without another fetch.
   * @default 10_000
   */
  jwksFailureCooldownMs?: number;
  /** @default Date.now */
  now?: () => number;
}

/** Why a token was refused; safe to show to the caller. */
export class InvalidToken extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidToken";
  }
}

/** The signing keys could not be fetched: the token may be fine; ask again later. */
export class KeysUnavailable extends Error {
  constructor(message: string, readonly retryAfterS: number) {
    super(message);
    this.name = "KeysUnavailable";
  }
}

/** Errors of a JWKS lookup that are about the token, not about fetching the set. */
const TOKEN_ERRORS = [
  errors.JWKSNoMatchingKey,
  errors.JWKSMultipleMatchingKeys,
  errors.JOSENotSupported,
  errors.JOSEAlgNotAllowed,
];

/** Verifies a compact JWT and returns its claims. */
export type JwtVerifier = (token: string) => Promise<Claims>;

/**
 * Builds a verifier. `exp` is required and enforced.
 *
 * @example
 * ```ts
 * const verify = createJwtVerifier({ secret, jwksUrl });
 * const claims = await verify(bearerToken); // throws InvalidToken
 * ```
 */
export function createJwtVerifier(options: JwtVerifierOptions): JwtVerifier {
  const secret = options.secret ? new TextEncoder().encode(options.secret) : undefined;
  const remote = createRemoteJWKSet(new URL(options.jwksUrl), {
    cacheMaxAge: 10 * 60_000,
    cooldownDuration: options.jwksCooldownMs ?? 30_000,
  });
  const now = options.now ?? Date.now;
  const failureCooldownMs = options.jwksFailureCooldownMs ?? 10_000;
  let failedUntil = 0;
  let failure = "";
  const unavailable = () =>
    new KeysUnavailable(
      `The signing keys could not be fetched (${failure}); try again shortly.`,
      Math.max(1, Math.ceil((failedUntil - now()) / 1000)),
    );
  // A set that cannot be fetched is remembered for a cool-down, so an outage
  // of the auth server costs one fetch, not one per request.
  const jwks = async (
    header: JWSHeaderParameters,
    token: FlattenedJWSInput,
  ): ReturnType<typeof remote> => {
    if (now() < failedUntil) throw unavailable();
    try {
      return await remote(header, token);
    } catch (error) {
      if (TOKEN_ERRORS.some((kind) => error instanceof kind)) throw error;
      failure = error instanceof errors.JOSEError ? error.code : (error as Error).name;
      failedUntil = now() + failureCooldownMs;
      throw unavailable();
    }
  };
  return async (token) => {
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw new InvalidToken("token is not a JWT");
    }
    try {
      if (alg === "HS256") {
        if (!secret) throw new InvalidToken("HS256 tokens are not accepted by this project");
        const { payload } = await jwtVerify(token, secret, {
          algorithms: ["HS256"],
          requiredClaims: ["exp"],
        });
        return payload as Claims;
      }
      if (alg === "ES256" || alg === "RS256") {
        const { payload } = await jwtVerify(token, jwks, {
          algorithms: ["ES256", "RS256"],
          requiredClaims: ["exp"],
        });
        return payload as Claims;
      }
    } catch (error) {
      if (error instanceof InvalidToken || error instanceof KeysUnavailable) throw error;
      throw new InvalidToken(_reason(error));
    }
    throw new InvalidToken(`unsupported algorithm ${alg}`);
  };
}

function _reason(error: unknown): string {
  if (error instanceof errors.JWTExpired) return "token expired";
  if (error instanceof errors.JWTClaimValidationFailed) return `claim ${error.claim} is invalid`;
  if (error instanceof errors.JWSSignatureVerificationFailed) return "signature does not verify";
  if (error instanceof errors.JWKSNoMatchingKey) return "no published key matches the token";
  if (error instanceof errors.JOSEError) return error.code;
  throw error; // Not a token problem (e.g. the JWKS endpoint is down): let it surface.
}
