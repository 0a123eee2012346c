/**
 * One name per caller for per-caller state (rate limits, idempotency keys):
 * `user:<id>` for users, `key:<fingerprint>` for services — the first 16 hex
 * digits of the bearer token's SHA-256, so different service credentials are
 * told apart and no secret is ever stored or logged.
 *
 * @module
 */
import { bearerToken, type Caller } from "./caller.ts";

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
  const token = bearerToken(headers.get("authorization")) ?? "";
  return `key:${(await sha256Hex(token)).slice(0, 16)}`;
}

/** Hex SHA-256 of a string. */
export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", encoder.encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
