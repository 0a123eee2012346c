/**
 * Standard Webhooks (standardwebhooks.com), both ways, in one place: the
 * signature Herald puts on what it delivers and the one it checks on what
 * it receives. `webhook-id`, `webhook-timestamp` (unix seconds) and
 * `webhook-signature` (space-separated `v1,<base64>` HMAC-SHA256 of
 * `${id}.${timestamp}.${body}`), a timestamp tolerance, and several secrets
 * during a rotation.
 *
 * A secret is read as the reference libraries read it: an optional `whsec_`
 * prefix, then standard base64 of at least one byte. Herald generates
 * `whsec_` secrets; a bare one from another system works too.
 *
 * @module
 */
import { constantTimeEqual } from "../auth/constant_time.ts";
import { Problem } from "../http/problem.ts";

/** Options for {@linkcode createStandardWebhookVerifier}. */
export interface StandardWebhookVerifierOptions {
  /** Signing secrets (see the module); a signature made with any of them is accepted. */
  secrets: readonly string[];
  /** Largest gap between `webhook-timestamp` and now, either way. @default 300 */
  toleranceSeconds?: number;
  /** @default Date.now */
  now?: () => number;
}

/** What a verified request carries besides its body. */
export interface VerifiedWebhook {
  /** `webhook-id`: the same on every retry of one message, so it de-duplicates. */
  id: string;
  /** `webhook-timestamp`, unix seconds. */
  timestamp: number;
}

/** Checks the signature of one request. */
export interface StandardWebhookVerifier {
  /**
   * Verifies `body` (the raw bytes received, before any parsing) against the
   * request's signature headers.
   *
   * @throws {Problem} 401 `missing-signature` when a header is absent or
   *   malformed, `stale-timestamp` outside the tolerance, `bad-signature` when
   *   no `v1` signature matches a secret
   */
  verify(headers: Headers, body: Uint8Array | string): Promise<VerifiedWebhook>;
}

const SECRET = /^(?:whsec_)?([A-Za-z0-9+/]+={0,2})$/;
/** Printable ASCII, and no longer than `herald.hook_events.id` takes. */
const MESSAGE_ID = /^[\x21-\x7e]{1,256}$/;
const UNIX_SECONDS = /^\d{1,12}$/;
const encoder = new TextEncoder();

/**
 * Creates a verifier for the given secrets; their keys are imported once, on
 * first use, and reused.
 *
 * @throws {RangeError} when there is no secret, a secret is not base64
 *   (optionally `whsec_`-prefixed), or the tolerance is not a positive integer
 * @example
 * ```ts
 * const verifier = createStandardWebhookVerifier({ secrets: config.hookSecrets });
 * const raw = new Uint8Array(await request.arrayBuffer());
 * const { id } = await verifier.verify(request.headers, raw); // then parse `raw`
 * ```
 */
export function createStandardWebhookVerifier(
  options: StandardWebhookVerifierOptions,
): StandardWebhookVerifier {
  const toleranceSeconds = options.toleranceSeconds ?? 300;
  if (!(Number.isInteger(toleranceSeconds) && toleranceSeconds > 0)) {
    throw new RangeError(
      `Cannot create webhook verifier: 'toleranceSeconds' must be a positive integer, got ${toleranceSeconds}`,
    );
  }
  if (options.secrets.length === 0) {
    throw new RangeError("Cannot create webhook verifier: 'secrets' must hold at least one secret");
  }
  // Decoded up front so a bad secret fails at start-up, not on the first request.
  // The messages say which secret, never what it is.
  const keyBytes = options.secrets.map((secret, i) =>
    secretKey(
      secret,
      `Cannot create webhook verifier: secret ${i + 1} of ${options.secrets.length}`,
    )
  );
  const now = options.now ?? Date.now;
  let keys: Promise<CryptoKey[]> | undefined;

  return {
    async verify(headers, body) {
      const { id, timestamp, signatures } = _signatureHeaders(headers);
      const skew = Math.floor(now() / 1000) - timestamp;
      if (Math.abs(skew) > toleranceSeconds) {
        throw new Problem(
          401,
          "stale-timestamp",
          `webhook-timestamp is ${Math.abs(skew)} s ${
            skew > 0 ? "in the past" : "in the future"
          }; at most ${toleranceSeconds} s either way is accepted (a replay, or a clock to fix).`,
        );
      }
      keys ??= Promise.all(
        keyBytes.map((bytes) =>
          crypto.subtle.importKey("raw", bytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"])
        ),
      );
      const content = _signedContent(id, timestamp, body);
      const expected = await Promise.all(
        (await keys).map(async (key) =>
          _base64(new Uint8Array(await crypto.subtle.sign("HMAC", key, content)))
        ),
      );
      // Every pair is compared, so the time taken does not tell which secret or
      // which presented signature came close.
      let matched = false;
      for (const mine of expected) {
        for (const theirs of signatures) matched = constantTimeEqual(mine, theirs) || matched;
      }
      if (!matched) {
        throw new Problem(
          401,
          "bad-signature",
          signatures.length === 0
            ? "webhook-signature holds no v1 signature; sign with HMAC-SHA256 as 'v1,<base64>'."
            : "No v1 signature in webhook-signature matches a configured secret for this " +
              "webhook-id, webhook-timestamp and body (sign the raw body exactly as sent).",
        );
      }
      return { id, timestamp };
    },
  };
}

/** The three headers, checked for shape; only `v1` signatures are kept. */
function _signatureHeaders(headers: Headers) {
  const id = headers.get("webhook-id");
  const timestamp = headers.get("webhook-timestamp");
  const signature = headers.get("webhook-signature");
  const missing = [
    ["webhook-id", id],
    ["webhook-timestamp", timestamp],
    ["webhook-signature", signature],
  ].filter(([, value]) => !value).map(([name]) => name);
  if (missing.length) {
    throw new Problem(
      401,
      "missing-signature",
      `Missing ${missing.join(", ")}: sign the request per Standard Webhooks.`,
    );
  }
  if (!MESSAGE_ID.test(id!)) {
    throw new Problem(
      401,
      "missing-signature",
      "webhook-id must be 1 to 256 printable ASCII characters without spaces.",
    );
  }
  if (!UNIX_SECONDS.test(timestamp!)) {
    throw new Problem(
      401,
      "missing-signature",
      "webhook-timestamp must be a whole number of unix seconds.",
    );
  }
  const signatures = signature!.split(" ")
    .filter((entry) => entry.startsWith("v1,"))
    .map((entry) => entry.slice(3));
  return { id: id!, timestamp: Number(timestamp), signatures };
}

/** `${id}.${timestamp}.` followed by the body's bytes exactly as received. */
function _signedContent(
  id: string,
  timestamp: number,
  body: Uint8Array | string,
): Uint8Array<ArrayBuffer> {
  const prefix = encoder.encode(`${id}.${timestamp}.`);
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const content = new Uint8Array(prefix.length + bytes.length);
  content.set(prefix);
  content.set(bytes, prefix.length);
  return content;
}

/**
 * A signing secret's key bytes (see the module for the rule).
 *
 * @param what names the secret in the error, which never shows its value
 * @throws {RangeError} when it is not base64 of at least one byte
 */
export function secretKey(secret: string, what: string): Uint8Array<ArrayBuffer> {
  const base64 = secret.match(SECRET)?.[1];
  let binary = "";
  try {
    if (base64) binary = atob(base64);
  } catch {
    // Reported below, with the same message as any other shape.
  }
  if (!binary) {
    throw new RangeError(
      `${what} must be base64 of at least one byte, optionally 'whsec_'-prefixed`,
    );
  }
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}

/**
 * The `webhook-signature` header value: one `v1,<base64>` HMAC-SHA256 of
 * `${id}.${timestamp}.${body}` per secret, space-separated, in the order given.
 *
 * @param timestamp unix seconds, as sent in `webhook-timestamp`
 * @throws {RangeError} when a secret is not base64 of at least one byte
 */
export async function signWebhook(
  secrets: readonly string[],
  id: string,
  timestamp: number,
  body: Uint8Array | string,
): Promise<string> {
  const content = _signedContent(id, timestamp, body);
  const signatures = await Promise.all(secrets.map(async (secret) => {
    const key = await crypto.subtle.importKey(
      "raw",
      secretKey(secret, "Cannot sign webhook: a signing secret"),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    return `v1,${_base64(new Uint8Array(await crypto.subtle.sign("HMAC", key, content)))}`;
  }));
  return signatures.join(" ");
}

function _base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}
