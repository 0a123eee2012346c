/**
 * Google's OAuth 2.0 token endpoint for service accounts (JWT-bearer grant):
 * verifies the RS256 assertion against the account's public key, its `aud`
 * (this endpoint) and `scope`, and issues access tokens FCM's stand-in accepts.
 *
 * @module
 */
import { exportJWK, exportPKCS8, generateKeyPair, importJWK, importPKCS8, jwtVerify } from "jose";
import { type FakeHandler, scriptedResponse } from "./control.ts";

/** A Google service-account key file. */
export interface ServiceAccountJson {
  type: "service_account";
  project_id: string;
  private_key_id: string;
  private_key: string;
  client_email: string;
  client_id: string;
  auth_uri: string;
  token_uri: string;
  auth_provider_x509_cert_url: string;
  client_x509_cert_url: string;
  universe_domain: string;
}

/** Creates a complete service account with a fresh RSA-2048 key. */
export async function createServiceAccount(
  options: { projectId: string; tokenUri: string },
): Promise<ServiceAccountJson> {
  const { privateKey } = await generateKeyPair("RS256", { modulusLength: 2048, extractable: true });
  const email = `herald@${options.projectId}.iam.gserviceaccount.com`;
  return {
    type: "service_account",
    project_id: options.projectId,
    private_key_id: crypto.randomUUID().replaceAll("-", ""),
    private_key: await exportPKCS8(privateKey),
    client_email: email,
    client_id: String(100000000000000000000n + BigInt(Math.floor(Math.random() * 1e15))),
    auth_uri: "https://accounts.google.com/o/oauth2/auth",
    token_uri: options.tokenUri,
    auth_provider_x509_cert_url: "https://www.googleapis.com/oauth2/v1/certs",
    client_x509_cert_url: `https://www.googleapis.com/robot/v1/metadata/x509/${
      encodeURIComponent(email)
    }`,
    universe_domain: "googleapis.com",
  };
}

/** An access token the OAuth stand-in issued. */
export interface IssuedToken {
  projectId: string;
  clientEmail: string;
  expiresAt: number;
}

/** Tokens issued by the OAuth stand-in, checked by the FCM stand-in. */
export type TokenRegistry = Map<string, IssuedToken>;

/** The audiences Google's token endpoint accepts (google-auth-library signs for the first). */
const GOOGLE_TOKEN_AUDIENCES = [
  "https://oauth2.googleapis.com/token",
  "https://www.googleapis.com/oauth2/v4/token",
  "https://accounts.google.com/o/oauth2/token",
];

const SCOPES = [
  "https://www.googleapis.com/auth/firebase.messaging",
  "https://www.googleapis.com/auth/cloud-platform",
];

/** Handles `POST /token` for the given accounts. */
export async function googleOAuthHandler(
  options: { accounts: ServiceAccountJson[]; tokens: TokenRegistry; tokenUrl: () => string },
): Promise<FakeHandler> {
  const keys = new Map<string, { account: ServiceAccountJson; key: CryptoKey }>();
  for (const account of options.accounts) {
    const privateJwk = await exportJWK(
      await importPKCS8(account.private_key, "RS256", { extractable: true }),
    );
    const { kty, n, e } = privateJwk;
    keys.set(account.client_email, {
      account,
      key: await importJWK({ kty, n, e }, "RS256") as CryptoKey,
    });
  }
  const refuse = (error: string, description: string) =>
    Response.json({ error, error_description: description }, { status: 400 });

  return async ({ request, url, text }, scripted) => {
    if (request.method !== "POST" || url.pathname !== "/token") {
      return Response.json({ error: "not_found" }, { status: 404 });
    }
    if (scripted) return scriptedResponse(scripted);
    const form = new URLSearchParams(text);
    if (form.get("grant_type") !== "urn:ietf:params:oauth:grant-type:jwt-bearer") {
      return refuse(
        "unsupported_grant_type",
        "Invalid grant_type: " + (form.get("grant_type") ?? ""),
      );
    }
    const assertion = form.get("assertion");
    if (!assertion) return refuse("invalid_request", "Missing required parameter: assertion");
    let issuer: string | undefined;
    try {
      issuer = JSON.parse(atob(assertion.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).iss;
    } catch {
      return refuse("invalid_grant", "Invalid JWT: malformed assertion");
    }
    const known = issuer ? keys.get(issuer) : undefined;
    if (!known) return refuse("invalid_grant", "Invalid JWT Signature.");
    let payload;
    try {
      ({ payload } = await jwtVerify(assertion, known.key, {
        algorithms: ["RS256"],
        // Google takes its token endpoint's URL in any of its spellings; the
        // stand-in also takes its own (Herald signs for the account's token_uri).
        audience: [options.tokenUrl(), ...GOOGLE_TOKEN_AUDIENCES],
        requiredClaims: ["iat", "exp"],
      }));
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === "ERR_JWT_EXPIRED") {
        return refuse(
          "invalid_grant",
          "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
        );
      }
      if (code === "ERR_JWT_CLAIM_VALIDATION_FAILED") {
        return refuse("invalid_grant", `Invalid JWT: ${(error as Error).message}`);
      }
      return refuse("invalid_grant", "Invalid JWT Signature.");
    }
    if ((payload.exp as number) - (payload.iat as number) > 3600) {
      return refuse(
        "invalid_grant",
        "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
      );
    }
    const scopes = String(payload.scope ?? "").split(" ");
    if (!scopes.some((s) => SCOPES.includes(s))) {
      return refuse("invalid_scope", "Invalid OAuth scope or ID token audience provided.");
    }
    const accessToken = `ya29.${crypto.randomUUID().replaceAll("-", "")}`;
    options.tokens.set(accessToken, {
      projectId: known.account.project_id,
      clientEmail: known.account.client_email,
      expiresAt: Date.now() + 3599_000,
    });
    return Response.json({ access_token: accessToken, expires_in: 3599, token_type: "Bearer" });
  };
}
