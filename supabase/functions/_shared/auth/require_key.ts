/**
 * Operator endpoints (dispatch, metrics, health's details) take a secret key
 * as `Authorization: Bearer <key>` or `apikey`: no key is a 401, a key that
 * is not one of theirs a 403. Each credential presented is judged on its
 * own: beside the right key, only the project's public (anon, publishable)
 * keys may stand, which clients send to name the project; anything else
 * refuses the request, as notify refuses an unknown key beside a valid
 * token. Keys are compared in constant time.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../http/app.ts";
import { Problem } from "../http/problem.ts";
import { presentedCredentials } from "./caller.ts";
import { equalsAnyKey } from "./constant_time.ts";

/** Whether the request presents one of `keys` and nothing but `publicKeys` beside it. */
export function holdsKey(
  headers: Headers,
  keys: readonly string[],
  publicKeys: readonly string[] = [],
): boolean {
  return _judge(presentedCredentials(headers), keys, publicKeys) === "held";
}

/**
 * Middleware letting through only requests that present one of `keys`.
 *
 * @param wording what the 401 asks for and what the 403 says the key may not do
 */
export function requireKey(
  keys: readonly string[],
  wording: { missing: string; refused: string },
  publicKeys: readonly string[] = [],
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const judged = _judge(presentedCredentials(c.req.raw.headers), keys, publicKeys);
    if (judged === "none") throw new Problem(401, "unauthenticated", wording.missing);
    if (judged === "refused") throw new Problem(403, "forbidden", wording.refused);
    await next();
  };
}

/** No credential; one of `keys` with nothing but public keys beside it; or refused. */
function _judge(
  presented: string[],
  keys: readonly string[],
  publicKeys: readonly string[],
): "none" | "held" | "refused" {
  if (presented.length === 0) return "none";
  let held = false;
  for (const credential of presented) {
    if (equalsAnyKey(credential, [...keys])) held = true;
    else if (!equalsAnyKey(credential, [...publicKeys])) return "refused";
  }
  return held ? "held" : "refused";
}
