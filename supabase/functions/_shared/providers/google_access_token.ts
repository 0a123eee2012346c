/**
 * OAuth 2.0 access tokens for a Google service account (JWT-bearer grant),
 * minted with `jose`, cached until shortly before expiry, one refresh in flight.
 *
 * @module
 */
import { importPKCS8, SignJWT } from "jose";
import type { ServiceAccount } from "../config.ts";

/** The scope FCM HTTP v1 needs. */
export const FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging";

/** Options for {@linkcode createAccessTokenSource}. */
export interface AccessTokenSourceOptions {
  serviceAccount: ServiceAccount;
  scope?: string;
  fetch?: typeof fetch;
  now?: () => number;
  /** Refresh this long before expiry. @default 300_000 */
  refreshMarginMs?: number;
}

/** Hands out a valid access token; `invalidate()` forgets it after a 401. */
export interface AccessTokenSource {
  token(): Promise<string>;
  invalidate(): void;
}

/**
 * Failure to obtain a token: the endpoint was unreachable or refused the
 * assertion, or (`misconfigured`) the service account's key cannot sign.
 */
export class AccessTokenError extends Error {
  constructor(message: string, readonly misconfigured = false) {
    super(message);
    this.name = "AccessTokenError";
  }
}

/**
 * Why the service account's private key cannot sign, or undefined when it
 * can. Readiness asks this; the token source finds the same on first use.
 */
export async function privateKeyProblem(account: ServiceAccount): Promise<string | undefined> {
  try {
    await importPKCS8(account.private_key, "RS256");
    return undefined;
  } catch (error) {
    return `fcm-misconfigured: the service account's private_key cannot be imported (${
      (error as Error).message
    })`;
  }
}

/**
 * Creates a token source for one service account.
 *
 * @example
 * ```ts
 * const tokens = createAccessTokenSource({ serviceAccount });
 * const bearer = await tokens.token();
 * ```
 */
export function createAccessTokenSource(options: AccessTokenSourceOptions): AccessTokenSource {
  const account = options.serviceAccount;
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const margin = options.refreshMarginMs ?? 300_000;
  // Imported on first use, not here: a malformed key must fail deliveries
  // with a clear reason, never the function's start (an unhandled rejection).
  let key: ReturnType<typeof importPKCS8> | undefined;
  const signingKey = () =>
    key ??= importPKCS8(account.private_key, "RS256").catch(async () => {
      throw new AccessTokenError((await privateKeyProblem(account))!, true);
    });
  let cached: { token: string; expiresAt: number } | undefined;
  let inflight: Promise<string> | undefined;

  async function mint(): Promise<string> {
    const issuedAt = Math.floor(now() / 1000);
    const assertion = await new SignJWT({ scope: options.scope ?? FCM_SCOPE })
      .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: account.private_key_id })
      .setIssuer(account.client_email)
      .setAudience(account.token_uri)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + 3600)
      .sign(await signingKey());
    let response: Response;
    try {
      response = await doFetch(account.token_uri, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
          assertion,
        }),
        signal: AbortSignal.timeout(10_000),
      });
    } catch (error) {
      throw new AccessTokenError(`token endpoint unreachable: ${(error as Error).message}`);
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok || typeof body.access_token !== "string") {
      const reason = body.error_description ?? body.error ?? `HTTP ${response.status}`;
      throw new AccessTokenError(`token exchange refused: ${reason}`);
    }
    const lifetimeMs = Number(body.expires_in ?? 3600) * 1000;
    cached = { token: body.access_token, expiresAt: now() + lifetimeMs };
    return body.access_token;
  }

  return {
    token() {
      if (cached && now() < cached.expiresAt - margin) return Promise.resolve(cached.token);
      inflight ??= mint().finally(() => (inflight = undefined));
      return inflight;
    },
    invalidate() {
      cached = undefined;
    },
  };
}
