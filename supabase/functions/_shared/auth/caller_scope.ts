/**
 * One name per caller for per-caller state (rate limits, idempotency keys):
 * `user:<id>` for users, `key:<keyId>` for services — which of the project's
 * service keys was presented (the first 16 hex digits of its SHA-256), so
 * different secret keys are told apart, no secret is ever stored or logged,
 * and no header can make a new name (a different header, a second copy of
 * the key, a garbage token beside it).
 *
 * @module
 */
import type { Caller } from "./caller.ts";

const encoder = new TextEncoder();

/**
 * Names the caller of a request.
 *
 * @example
 * ```ts
 * const scope = callerScope(c.get("caller")); // "user:…" | "key:…"
 * ```
 */
export function callerScope(caller: Caller): string {
  return caller.kind === "user" ? `user:${caller.userId}` : `key:${caller.keyId}`;
}

/** Hex SHA-256 of a string. */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", encoder.encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
