/**
 * `Idempotency-Key` for requests that create notifications: the first request
 * with a key stores its answer in the same transaction that creates the
 * notification; a repeat within 24 hours gets that answer back, and the same
 * key with a different body is refused. Keys are scoped per caller.
 *
 * @module
 */
import type { Tx } from "../_shared/db/sessions.ts";
import { Problem } from "../_shared/http/problem.ts";

/** A stored answer. */
export interface StoredAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** What a request with a key brings: who asks, the key, a hash of what it asks. */
export interface IdempotentRequest {
  caller: string;
  key: string;
  hash: string;
}

/**
 * Claims the key inside `tx`. Returns the stored answer of an earlier request
 * with the same key and body, or `undefined` when this request is the first
 * (or the earlier one is over 24 hours old) and must proceed.
 *
 * A concurrent request with the same key waits on the first one's row lock
 * and then sees its answer.
 *
 * @throws {Problem} 422 when the key was used with a different body
 */
export async function claimKey(
  tx: Tx,
  request: IdempotentRequest,
): Promise<StoredAnswer | undefined> {
  const claimed = await tx`
    insert into herald.idempotency_keys as k (caller, key, request_hash)
    values (${request.caller}, ${request.key}, ${request.hash})
    on conflict (caller, key) do update
      set request_hash = excluded.request_hash, status = null, response = null,
        notification_id = null, created_at = now()
      where k.created_at < now() - interval '24 hours'
    returning 1`;
  if (claimed.length) return undefined;
  const [earlier] = await tx`
    select request_hash, status, response from herald.idempotency_keys
    where caller = ${request.caller} and key = ${request.key}`;
  if (earlier.request_hash !== request.hash) {
    throw new Problem(
      422,
      "idempotency-key-reused",
      "This Idempotency-Key was used within the last 24 hours with a different request body.",
      [{ field: "Idempotency-Key", message: "already used with a different body" }],
    );
  }
  return { status: earlier.status, body: earlier.response };
}

/** Stores the answer to a request whose key {@linkcode claimKey} claimed. */
export async function storeAnswer(
  tx: Tx,
  request: IdempotentRequest,
  answer: StoredAnswer & { notificationId?: string | null },
): Promise<void> {
  await tx`
    update herald.idempotency_keys
    set status = ${answer.status}, response = ${tx.json(answer.body as never)},
      notification_id = ${answer.notificationId ?? null}
    where caller = ${request.caller} and key = ${request.key}`;
}
