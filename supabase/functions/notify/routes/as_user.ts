/**
 * A user's own rows: the caller must be a signed-in user (services name a
 * user with `?user_id=` on the routes that allow it), and the work runs as
 * them, so RLS scopes it.
 *
 * @module
 */
import { type Caller, requireUser } from "../../_shared/auth/caller.ts";
import { asCaller, type Sql, type Tx } from "../../_shared/db/sessions.ts";

/**
 * Runs `work` as the signed-in user `caller`.
 *
 * @throws {Problem} 403 naming `what` when the caller is not a user
 */
export function asUser<T>(
  sql: Sql,
  caller: Caller,
  what: string,
  work: (tx: Tx) => Promise<T>,
  access: "read" | "write" = "write",
): Promise<T> {
  return asCaller(sql, requireUser(caller, what), work, access);
}
