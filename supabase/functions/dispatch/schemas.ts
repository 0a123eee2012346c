/**
 * What the dispatch function's routes accept, validated with zod.
 *
 * @module
 */
import { z } from "zod";
import { Uuid } from "../_shared/db/uuid.ts";

/** What can be replayed: dead letters, and failures an operator has since fixed. */
export const ReplayableStatus = z.enum(["dead", "failed"], {
  error: "must be 'dead' or 'failed': only dead letters and permanent failures can be replayed",
});

/** `GET /dead-letters`' query. */
export const DeadLetterQuery = z.strictObject({
  /** `failed`: permanent failures (credentials, a rejected payload, a receiver's 4xx). */
  status: ReplayableStatus.default("dead"),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  /** Only dead letters that died before this instant (the previous page's last `died_at`). */
  before: z.iso.datetime({ offset: true }).refine((at) => Date.parse(at) >= Date.UTC(2000, 0, 1), {
    message: "must be after 2000-01-01",
  }).optional(),
  notification_id: Uuid.optional(),
});

/** `POST /dead-letters/replay`'s body. */
export const ReplayRequest = z.strictObject({
  /** Which terminal states to replay. @default ["dead"] */
  statuses: z.array(ReplayableStatus).min(1).max(2).default(["dead"]),
  delivery_ids: z.array(Uuid).min(1).max(10_000).optional(),
  notification_id: Uuid.optional(),
  /** Replaying every dead letter at once must be asked for explicitly. */
  all: z.literal(true).optional(),
}).refine((r) => r.delivery_ids || r.notification_id || r.all, {
  message: "name delivery_ids, a notification_id, or all: true",
  path: ["delivery_ids"],
});
