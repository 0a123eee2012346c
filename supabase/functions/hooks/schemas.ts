/**
 * The hooks function's request contract.
 *
 * @module
 */
import { z } from "zod";

/** A Postgres identifier as it arrives: non-empty, at most NAMEDATALEN - 1 bytes. */
const Identifier = z.string().min(1).max(63);
/** A row as `to_jsonb(row)` renders it. */
const Row = z.record(z.string(), z.unknown());

/**
 * `POST /hooks`: one row event, as Supabase Database Webhooks and
 * `herald.post_database_event` send it. Keys beyond these are dropped, not
 * refused: Supabase may add to the payload, and a new key must not stop events.
 */
export const DatabaseEventPayload = z.object({
  type: z.enum(["INSERT", "UPDATE", "DELETE"]),
  table: Identifier,
  schema: Identifier,
  /** The row after the change; null for DELETE. */
  record: Row.nullable(),
  /** The row before the change; null for INSERT. */
  old_record: Row.nullable(),
});
