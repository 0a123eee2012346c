/**
 * One name per caller for per-caller state (rate limits, idempotency keys):
 * `user:<id>` for users, `key:<fingerprint>` for services — the first 16 hex
 * digits of the SHA-256 of the credentials presented (bearer, `apikey`), so
 * different service credentials are told apart and no secret is ever stored
 * or logged.
 *
 * @module
 */
import { type Caller, presentedCredentials } from "./caller.ts";

const encoder = new TextEncoder();

/**
 * Names the caller of a request.
 *
 * @example
 * ```ts
 * const scope = await callerScope(c.get("caller"), c.req.raw.headers); // "user:…" | "key:…"
 * ```
 */
export async function callerScope(caller: Caller, headers: Headers): Promise<string> {
  if (caller.kind === "user") return `user:${caller.userId}`;
  const credentials = presentedCredentials(headers).join("\n");
  return `key:${(await sha256Hex(credentials)).slice(0, 16)}`;
}

/** Hex SHA-256 of a string. */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", encoder.encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
