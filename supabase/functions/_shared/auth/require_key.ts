/**
 * Operator endpoints (dispatch, metrics, health's details) take a secret key
 * as `Authorization: Bearer <key>` or `apikey`: no key is a 401, a key that
 * is not one of theirs a 403. Keys are compared in constant time.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../http/app.ts";
import { Problem } from "../http/problem.ts";
import { presentedCredentials } from "./caller.ts";
import { equalsAnyKey } from "./constant_time.ts";

/** Whether the request presents one of `keys`. */
export function holdsKey(headers: Headers, keys: readonly string[]): boolean {
  return presentedCredentials(headers).some((key) => equalsAnyKey(key, [...keys]));
}

/**
 * Middleware letting through only requests that present one of `keys`.
 *
 * @param wording what the 401 asks for and what the 403 says the key may not do
 */
export function requireKey(
  keys: readonly string[],
  wording: { missing: string; refused: string },
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const presented = presentedCredentials(c.req.raw.headers);
    if (presented.length === 0) throw new Problem(401, "unauthenticated", wording.missing);
    if (!presented.some((key) => equalsAnyKey(key, [...keys]))) {
      throw new Problem(403, "forbidden", wording.refused);
    }
    await next();
  };
}
